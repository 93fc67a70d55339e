//! RTP media for Permanence.
pub mod g711;
pub mod prompt;
pub mod prompts;
pub mod sdp;
