//! Identifiers used at the dispatcher boundary.
//!
//! Agents, practices, pools and pause reasons use the shared ids of
//! `permanence-types` (cheap-to-clone `Arc<str>`: outputs carry them without
//! allocating). Calls are identified by a driver-assigned [`CallId`] number.

use std::fmt;

use serde::{Deserialize, Serialize};

pub use permanence_types::{AgentId, PauseReason, PoolId, PracticeId};

/// A call id, assigned by the driver (unique among calls known to the
/// dispatcher at the same time; reuse after the call has ended is allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CallId(pub u64);

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "call-{}", self.0)
    }
}
