//! A browser softphone's audio, terminated in the engine.
//!
//! A telesecretary on the web console (or any WebRTC SIP client) speaks
//! ICE, DTLS-SRTP, rtcp-mux and bundle; the rest of the engine speaks plain
//! RTP between UDP media legs ([`permanence_media`'s engine]). A [`Peer`]
//! joins the two: it is a WebRTC peer connection (the `webrtc` crate, over
//! its sans-IO `rtc` core) with one audio track each way, and a **relay
//! socket** on the media address that stands for the browser towards the
//! engine's media leg of the agent:
//!
//! - what the browser sends (decrypted by the peer connection) is sent from
//!   the relay socket to the media leg, as RTP, payload type unchanged
//!   (PCMU 0, or telephone-event);
//! - what the media leg sends to the relay socket (it is the leg's remote
//!   address) is written to the browser's track, re-stamped with the track's
//!   SSRC and encrypted by the peer connection. Only the media leg's address
//!   is accepted on the relay socket.
//!
//! The engine's media leg therefore needs no change: source learning,
//! bridging, playout, DTMF detection and recording work as for a desk
//! softphone. The price is one loopback hop each way (measured in
//! `benches/README.md`, "WebRTC agents").
//!
//! When the engine calls the agent, [`Peer::offer`] gathers its host
//! candidate before returning the SDP (no trickle ICE, as SIP needs) and
//! [`Peer::accept_answer`] takes the browser's answer from the 200; when
//! the agent calls out (dialler, call back, attended transfer),
//! [`Peer::answer`] answers the INVITE's offer. [`Peer::answer_offer`]
//! answers a re-INVITE of the browser (hold, resume). [`Peer::gone`] resolves when the browser is unreachable (ICE or
//! DTLS failed, consent lost, closed): a closed tab is noticed even without
//! a BYE.
//!
//! [`permanence_media`'s engine]: https://docs.rs/permanence-media

#![forbid(unsafe_code)]

mod peer;
mod sdp;

pub use peer::{Peer, PeerState, WebRtcSettings};
pub use sdp::{audio_direction, has_payload_type, is_webrtc_offer, AudioDirection};

/// The payload type of G.711 µ-law, what the browser and the relay use.
pub const PCMU: u8 = 0;
/// The payload type of G.711 A-law, also offered.
pub const PCMA: u8 = 8;
/// The telephone-event payload type we offer (RFC 4733, DTMF from the
/// browser's keypad).
pub const TELEPHONE_EVENT: u8 = 101;

/// Why a WebRTC peer could not be set up or renegotiated.
#[derive(Debug, thiserror::Error)]
pub enum WebRtcError {
    /// The WebRTC stack refused (bad SDP, state, DTLS...).
    #[error("WebRTC: {0}")]
    Stack(String),
    /// A socket could not be opened.
    #[error("WebRTC socket: {0}")]
    Io(#[from] std::io::Error),
    /// ICE gathering did not complete in time.
    #[error("WebRTC: ICE gathering timed out")]
    GatheringTimeout,
    /// The answer does not accept PCMU.
    #[error("WebRTC: the answer accepts no PCMU audio")]
    NoCommonCodec,
}

impl From<webrtc::error::Error> for WebRtcError {
    fn from(e: webrtc::error::Error) -> Self {
        WebRtcError::Stack(e.to_string())
    }
}
