//! The SIP front door of Permanence.
//!
//! rsipstack carries transport, transactions and dialogs; this crate holds
//! what Permanence itself decides at the SIP edge, as pure functions and
//! sans-IO state machines:
//! - [`gate`]: per-source rate limits, bans, a global budget for untrusted
//!   sources, and stateless challenges (no transaction for strangers);
//! - [`guard`]: checks each UDP datagram before the stack parses it, answers
//!   malformed requests with the right 4xx/5xx and drops unanswerable junk;
//!   its [`guard::FrontDoor`] applies the gate then the checks;
//! - [`digest`]: server-side digest authentication (MD5, SHA-256) with
//!   expiring, replay-proof nonces;
//! - [`registrar`]: telesecretary softphone registrations and OPTIONS
//!   qualify;
//! - [`stream`]: SIP over TCP and TLS: message framing (RFC 3261 §18.3)
//!   and per-source connection caps;
//! - [`throttle`]: per-source throttling of wrong digest answers;
//! - [`intake`]: which practice a forwarded call is for (History-Info,
//!   Diversion, Request-URI, To).

#![forbid(unsafe_code)]

pub mod digest;
pub mod extract;
pub mod gate;
pub mod guard;
pub mod intake;
pub mod registrar;
pub mod stream;
pub mod throttle;
