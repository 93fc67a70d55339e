//! RTP media for Permanence, the SIP call-routing engine of French medical
//! telesecretariats.
//!
//! * [`g711`]: µ-law / A-law tables and PCMU<->PCMA transcoding.
//! * [`Prompt`]: WAV prompts pre-encoded into 20 ms frames of both laws;
//!   [`prompts`]: the default French and English prompts embedded in the binary and the
//!   queue announcement composer.
//! * [`sdp`]: offer/answer parsing, negotiation and building.
//! * [`MediaEngine`] / [`Leg`]: RTP legs on random even ports with
//!   playout, DTMF, strict source learning, inactivity timeout, bridging
//!   and recording; events arrive as [`MediaEvent`]s on a per-leg channel.
//! * [`source`]: which source a leg accepts media from and sends to
//!   (probation, lock, re-learning on signalled changes, NAT rebinding).
//! * [`rtp`]: the allocation-free per-packet building blocks.
//! * [`srtp`]: SRTP (RFC 3711, `AES_CM_128_HMAC_SHA1_80`/`_32`) keyed by
//!   SDES (RFC 4568, [`sdp`]'s `a=crypto`), in place and allocation-free;
//!   a leg encrypts what it sends last and authenticates what it receives
//!   first when its [`RemoteMedia::srtp`] is set.
#![deny(missing_docs)]

mod engine;
pub mod g711;
mod ports;
pub mod prompt;
pub mod prompts;
mod record;
pub mod rtp;
pub mod sdp;
pub mod source;
pub mod srtp;

pub use engine::{
    bridge, unbridge, Leg, LegStats, MediaConfig, MediaEngine, MediaError, MediaEvent,
};
pub use g711::Codec;
pub use prompt::{Prompt, PromptError};
pub use prompts::{announcement, Language, Prompts};
pub use record::RecordingEnd;
pub use rtp::{Playlist, RemoteMedia};
pub use sdp::Direction;
