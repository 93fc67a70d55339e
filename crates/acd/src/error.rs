//! Dispatcher errors.

use crate::ids::{AgentId, CallId, PoolId, PracticeId};

/// Errors from building the dispatcher or from an input it cannot apply.
///
/// An input that returns an error has not changed the dispatcher's state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcdError {
    /// Two configuration items of the same kind share an id.
    #[error("duplicate {kind} id {id:?}")]
    DuplicateId {
        /// `agent`, `pool` or `practice`.
        kind: &'static str,
        /// The id.
        id: String,
    },
    /// A configuration item references an id that does not exist.
    #[error("{context} references unknown {kind} {id:?}")]
    UnknownReference {
        /// Where the reference is.
        context: String,
        /// `agent`, `pool` or `practice`.
        kind: &'static str,
        /// The id.
        id: String,
    },
    /// A configuration value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// An input names a practice that is not configured.
    #[error("unknown practice {0}")]
    UnknownPractice(PracticeId),
    /// An input names an agent that is not configured.
    #[error("unknown agent {0}")]
    UnknownAgent(AgentId),
    /// An input names a pool that is not configured.
    #[error("unknown pool {0}")]
    UnknownPool(PoolId),
    /// An input names a call the dispatcher does not know (never arrived or
    /// already finished).
    #[error("unknown call {0}")]
    UnknownCall(CallId),
    /// A call arrived with the id of a live call.
    #[error("call {0} is already known")]
    DuplicateCall(CallId),
    /// An answer or failure for an offer that is not (or no longer) ringing
    /// that agent: the offer was cancelled meanwhile.
    #[error("call {call} is not being offered to agent {agent}")]
    NotOffered {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
    },
    /// The input does not apply to the call in its current phase.
    #[error("call {call} is {actual}; the input needs it {expected}")]
    WrongCallPhase {
        /// The call.
        call: CallId,
        /// Its phase.
        actual: &'static str,
        /// The phase the input needs.
        expected: &'static str,
    },
    /// The input does not apply to a logged-out agent.
    #[error("agent {0} is logged out")]
    AgentLoggedOut(AgentId),
}
