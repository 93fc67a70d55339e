//! Read-only views for the admin API and metrics.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::{AgentId, CallId, PracticeId};
use crate::io::{AgentState, ArrivalTarget};

/// Phase of a call known to the dispatcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallPhase {
    /// Waiting in the queue.
    Waiting,
    /// Ringing an agent.
    Ringing,
    /// Answered, not ended yet.
    Connected,
}

/// One call as seen by the dispatcher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallSnapshot {
    /// The call.
    pub call: CallId,
    /// Its practice (`None` if a reconfiguration removed it while connected).
    pub practice: Option<PracticeId>,
    /// Its phase.
    pub phase: CallPhase,
    /// The agent ringing or talking, if any.
    pub agent: Option<AgentId>,
    /// Priority.
    pub priority: i32,
    /// Time since joining the queue (from [`crate::CallArrival::joined_at`]
    /// for a re-arrival); for a connected call, from joining to the answer.
    pub wait: Duration,
    /// Highest routing step reached (0-based).
    pub step: u32,
    /// Whether the call was retargeted to an overflow pool.
    pub retargeted: bool,
    /// 1-based position in the practice queue (waiting and ringing calls);
    /// 0 once connected.
    pub position: u32,
    /// Estimated remaining wait (waiting calls), see
    /// [`crate::Dispatcher::estimated_wait`].
    pub estimated_wait: Option<Duration>,
    /// Placed at the head of the queue ([`crate::CallArrival::head`]).
    #[serde(default)]
    pub head: bool,
    /// Whom the call was transferred to ([`crate::CallArrival::target`]);
    /// `None` also once a reconfiguration dropped a removed target.
    #[serde(default)]
    pub target: Option<ArrivalTarget>,
}

/// A practice queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueSnapshot {
    /// The practice.
    pub practice: PracticeId,
    /// Whether the practice is open now.
    pub open: bool,
    /// Calls waiting (not ringing).
    pub waiting: u32,
    /// Calls ringing an agent.
    pub ringing: u32,
    /// Wait of the oldest waiting or ringing call.
    pub oldest_wait: Option<Duration>,
    /// Estimated wait of a call arriving now with the base priority.
    pub estimated_wait: Option<Duration>,
    /// The calls in queue order (position 1 first).
    pub calls: Vec<CallSnapshot>,
}

/// One agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSnapshot {
    /// The agent.
    pub agent: AgentId,
    /// State.
    pub state: AgentState,
    /// Pause reason when paused (or pending pause while on a call).
    pub pause_reason: Option<String>,
    /// Inside a shift window.
    pub in_shift: bool,
    /// Phone reachable.
    pub reachable: bool,
    /// Outbound calls in progress (the agent gets no offer while any is).
    #[serde(default)]
    pub outbound_calls: u32,
    /// Would get an offer now if an eligible call waited.
    pub dispatchable: bool,
    /// Back-off remaining after a failed or unanswered offer.
    pub backoff: Option<Duration>,
    /// Consecutive ring-no-answers.
    pub strikes: u32,
    /// The call ringing or connected, if any.
    pub call: Option<CallId>,
    /// Logs out when the current call ends.
    pub pending_logout: bool,
    /// Removed by a reconfiguration, finishing its call.
    pub retired: bool,
    /// When the wrap-up ends (engine time), while in wrap-up: a console
    /// counts down to it.
    #[serde(default)]
    pub wrap_up_until: Option<chrono::DateTime<chrono::Utc>>,
}

/// What an agent is doing as operators see it (the `state` label of
/// `permanence_agents`, the web console's state): the dispatcher's
/// [`AgentState`] with the softphone's reachability and the outbound calls
/// folded in. One definition for every view of an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// Not logged in to the queues.
    LoggedOut,
    /// Logged in and free, but no registered softphone (or browser)
    /// answers: offered no call, so not available.
    Unreachable,
    /// Logged in, free and reachable: may be offered a call.
    Available,
    /// A call rings on their softphone.
    Offered,
    /// Talking: a queued call, or an outbound call of their own.
    OnCall,
    /// After-call work.
    WrapUp,
    /// Paused.
    Paused,
}

impl Presence {
    /// Every presence, in the order of their counts.
    pub const ALL: [Presence; 7] = [
        Presence::LoggedOut,
        Presence::Unreachable,
        Presence::Available,
        Presence::Offered,
        Presence::OnCall,
        Presence::WrapUp,
        Presence::Paused,
    ];

    /// Stable name (metric label, serde form): `logged_out`,
    /// `unreachable`, `available`, `offered`, `on_call`, `wrap_up`,
    /// `paused`.
    pub fn as_str(self) -> &'static str {
        match self {
            Presence::LoggedOut => "logged_out",
            Presence::Unreachable => "unreachable",
            Presence::Available => "available",
            Presence::Offered => "offered",
            Presence::OnCall => "on_call",
            Presence::WrapUp => "wrap_up",
            Presence::Paused => "paused",
        }
    }

    /// Position in [`Self::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl AgentSnapshot {
    /// The agent's [`Presence`]: an available agent on an outbound call is
    /// on the phone; one whose softphone is unreachable is not available.
    pub fn presence(&self) -> Presence {
        match self.state {
            AgentState::LoggedOut => Presence::LoggedOut,
            AgentState::Available if self.outbound_calls > 0 => Presence::OnCall,
            AgentState::Available if !self.reachable => Presence::Unreachable,
            AgentState::Available => Presence::Available,
            AgentState::Offered => Presence::Offered,
            AgentState::OnCall => Presence::OnCall,
            AgentState::WrapUp => Presence::WrapUp,
            AgentState::Paused => Presence::Paused,
        }
    }
}

/// Agents eligible for a practice's calls (union of all routing steps).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EligibleAgents {
    /// Configured agents matching at least one step.
    pub configured: u32,
    /// Of which logged in.
    pub logged_in: u32,
    /// Of which logged in, inside their shift and with a reachable
    /// softphone (they may be busy or paused).
    pub staffed: u32,
    /// Of which would get an offer right now.
    pub dispatchable: u32,
}
