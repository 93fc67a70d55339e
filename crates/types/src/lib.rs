//! The vocabulary shared by Permanence's crates.
//!
//! One definition per domain idea, so that the configuration, the
//! dispatcher, the call core, metrics and records speak of the same thing
//! with the same type:
//!
//! - [`ids`]: agent, practice and pool ids, pause reasons (cheap shared
//!   strings, carried end to end: never turned into `String` and back);
//! - [`overflow`]: where a practice's overflowing calls go
//!   ([`OverflowTarget`]) and how a call leaves the queue
//!   ([`OverflowKind`]);
//! - [`routing`]: agent selection [`Strategy`], [`Selector`] and
//!   [`RoutingStep`] (the relaxing steps of a practice's routing), and why
//!   an offer to an agent failed ([`OfferFailure`]);
//! - [`sip`]: SIP [`Transport`], digest [`DigestAlgorithm`], agents'
//!   [`SrtpPolicy`];
//! - [`access`]: the [`Role`] of a user of the admin API;
//! - [`disposition`]: what an ended call counts as in a practice's figures
//!   ([`Disposition`]) and where an abandoning caller was
//!   ([`AbandonPhase`]);
//! - [`announcement`]: where a practice's dated announcement plays
//!   ([`AnnouncementMode`]);
//! - [`language`]: the [`Language`] a caller is served in.
//!
//! Each type has a stable text form (`as_str`, also its serde form) for
//! logs, labels and stored records: `Debug` output is never stored as data.
//! Durations are [`std::time::Duration`] everywhere; [`serde_secs`] writes
//! them as whole seconds in configuration files.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod access;
pub mod announcement;
pub mod disposition;
pub mod ids;
pub mod language;
pub mod overflow;
pub mod routing;
pub mod serde_secs;
pub mod sip;

pub use access::Role;
pub use announcement::AnnouncementMode;
pub use disposition::{AbandonPhase, Disposition};
pub use ids::{AgentId, PauseReason, PoolId, PracticeId};
pub use language::Language;
pub use overflow::{OverflowKind, OverflowTarget};
pub use routing::{OfferFailure, RoutingStep, Selector, Strategy};
pub use sip::{DigestAlgorithm, SrtpPolicy, Transport};
