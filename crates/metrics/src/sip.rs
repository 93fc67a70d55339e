//! SIP label values.

/// A SIP request method (`method` label). Methods outside the list are
/// counted as `other`, so a flood of invented methods cannot grow the
/// series count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SipMethod {
    /// INVITE.
    Invite,
    /// ACK.
    Ack,
    /// BYE.
    Bye,
    /// CANCEL.
    Cancel,
    /// OPTIONS.
    Options,
    /// REGISTER.
    Register,
    /// INFO.
    Info,
    /// UPDATE.
    Update,
    /// PRACK.
    Prack,
    /// SUBSCRIBE.
    Subscribe,
    /// NOTIFY.
    Notify,
    /// MESSAGE.
    Message,
    /// REFER.
    Refer,
    /// PUBLISH.
    Publish,
    /// Anything else.
    Other,
}

impl SipMethod {
    /// Every method, in label order.
    pub const ALL: [SipMethod; 15] = [
        SipMethod::Invite,
        SipMethod::Ack,
        SipMethod::Bye,
        SipMethod::Cancel,
        SipMethod::Options,
        SipMethod::Register,
        SipMethod::Info,
        SipMethod::Update,
        SipMethod::Prack,
        SipMethod::Subscribe,
        SipMethod::Notify,
        SipMethod::Message,
        SipMethod::Refer,
        SipMethod::Publish,
        SipMethod::Other,
    ];

    /// Parses a method token (case-sensitive, as in RFC 3261); unknown
    /// tokens give [`SipMethod::Other`].
    pub fn parse(s: &str) -> Self {
        match s {
            "INVITE" => SipMethod::Invite,
            "ACK" => SipMethod::Ack,
            "BYE" => SipMethod::Bye,
            "CANCEL" => SipMethod::Cancel,
            "OPTIONS" => SipMethod::Options,
            "REGISTER" => SipMethod::Register,
            "INFO" => SipMethod::Info,
            "UPDATE" => SipMethod::Update,
            "PRACK" => SipMethod::Prack,
            "SUBSCRIBE" => SipMethod::Subscribe,
            "NOTIFY" => SipMethod::Notify,
            "MESSAGE" => SipMethod::Message,
            "REFER" => SipMethod::Refer,
            "PUBLISH" => SipMethod::Publish,
            _ => SipMethod::Other,
        }
    }

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            SipMethod::Invite => "INVITE",
            SipMethod::Ack => "ACK",
            SipMethod::Bye => "BYE",
            SipMethod::Cancel => "CANCEL",
            SipMethod::Options => "OPTIONS",
            SipMethod::Register => "REGISTER",
            SipMethod::Info => "INFO",
            SipMethod::Update => "UPDATE",
            SipMethod::Prack => "PRACK",
            SipMethod::Subscribe => "SUBSCRIBE",
            SipMethod::Notify => "NOTIFY",
            SipMethod::Message => "MESSAGE",
            SipMethod::Refer => "REFER",
            SipMethod::Publish => "PUBLISH",
            SipMethod::Other => "other",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Why a SIP request was refused (`reason` label of
/// `permanence_sip_rejected_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SipReject {
    /// The source is not an allowed trunk or network.
    Acl,
    /// Digest authentication failed.
    Auth,
    /// The dialled number belongs to no practice.
    UnknownNumber,
    /// Refused under load (503).
    Overload,
}

impl SipReject {
    /// Every reason, in label order.
    pub const ALL: [SipReject; 4] = [
        SipReject::Acl,
        SipReject::Auth,
        SipReject::UnknownNumber,
        SipReject::Overload,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            SipReject::Acl => "acl",
            SipReject::Auth => "auth",
            SipReject::UnknownNumber => "unknown_number",
            SipReject::Overload => "overload",
        }
    }
}

/// What the datagram guard did with a malformed datagram (`action` label
/// of `permanence_sip_parse_errors_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParseErrorAction {
    /// Answered with an error response.
    Answered,
    /// Dropped silently.
    Dropped,
}

impl ParseErrorAction {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            ParseErrorAction::Answered => "answered",
            ParseErrorAction::Dropped => "dropped",
        }
    }
}

/// Lowest status code with its own series; the codes 100..=699 map to
/// 600 slots, anything else to one `other` slot.
pub(crate) const CODE_MIN: u16 = 100;
/// Number of status-code slots per method (600 codes + `other`).
pub(crate) const CODE_SLOTS: usize = 601;

/// The slot of a status code.
pub(crate) fn code_slot(code: u16) -> usize {
    if (CODE_MIN..=699).contains(&code) {
        usize::from(code - CODE_MIN)
    } else {
        CODE_SLOTS - 1
    }
}
