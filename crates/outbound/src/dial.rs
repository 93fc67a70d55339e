//! What the agent dialled.
//! (Being written: see the brief.)

/// An outbound call request from the softphone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialRequest {
    /// The practice code after `*8`, if given.
    pub practice_code: Option<String>,
    /// The number to call, as dialled (not yet classified).
    pub number: String,
}

/// Parses the Request-URI user part of an agent's INVITE.
pub fn parse_dialled(_user: &str) -> Option<DialRequest> {
    None
}
