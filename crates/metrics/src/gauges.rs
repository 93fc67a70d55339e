//! Queue and agent gauges, refreshed just before a scrape.

use std::time::Duration;

use chrono::{DateTime, Utc};
use permanence_acd::{AgentState, Dispatcher, PracticeId};

/// Every agent state, in the order of [`AgentCounts`].
pub const AGENT_STATES: [AgentState; 6] = [
    AgentState::LoggedOut,
    AgentState::Available,
    AgentState::Offered,
    AgentState::OnCall,
    AgentState::WrapUp,
    AgentState::Paused,
];

/// The `state` label value of an agent state.
pub fn agent_state_label(s: AgentState) -> &'static str {
    match s {
        AgentState::LoggedOut => "logged_out",
        AgentState::Available => "available",
        AgentState::Offered => "offered",
        AgentState::OnCall => "on_call",
        AgentState::WrapUp => "wrap_up",
        AgentState::Paused => "paused",
    }
}

pub(crate) fn agent_state_index(s: AgentState) -> usize {
    match s {
        AgentState::LoggedOut => 0,
        AgentState::Available => 1,
        AgentState::Offered => 2,
        AgentState::OnCall => 3,
        AgentState::WrapUp => 4,
        AgentState::Paused => 5,
    }
}

/// Number of agents in each state, indexed like [`AGENT_STATES`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentCounts(pub [u32; 6]);

impl AgentCounts {
    /// Counts one more agent in `state`.
    pub fn add(&mut self, state: AgentState) {
        self.0[agent_state_index(state)] += 1;
    }

    /// Agents in `state`.
    pub fn get(&self, state: AgentState) -> u32 {
        self.0[agent_state_index(state)]
    }
}

/// The gauges of one practice.
#[derive(Debug, Clone, PartialEq)]
pub struct PracticeGauges {
    /// The practice.
    pub practice: PracticeId,
    /// Open now.
    pub open: bool,
    /// Calls not answered yet (waiting or ringing).
    pub waiting: u32,
    /// Wait of the oldest of them.
    pub oldest_wait: Option<Duration>,
    /// Estimated wait of a call arriving now (`None`: no agent could
    /// serve it).
    pub estimated_wait: Option<Duration>,
    /// Eligible agents logged in, inside their shift, with a reachable
    /// softphone.
    pub eligible: u32,
}

/// A snapshot of the dispatcher's queues and agents, taken by the
/// dispatcher task and applied with [`crate::Metrics::set_gauges_from`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AcdGauges {
    /// One entry per practice.
    pub practices: Vec<PracticeGauges>,
    /// Agents by state.
    pub agents: AgentCounts,
}

impl AcdGauges {
    /// Reads the gauges from the dispatcher at `now` (its queue snapshots,
    /// eligible-agent counts and agent states).
    pub fn from_dispatcher(d: &Dispatcher, now: DateTime<Utc>) -> Self {
        let practices = d
            .queue_snapshots(now)
            .into_iter()
            .map(|q| {
                let eligible = d
                    .eligible_agents(q.practice.as_str())
                    .map_or(0, |e| e.staffed);
                PracticeGauges {
                    open: q.open,
                    waiting: q.waiting + q.ringing,
                    oldest_wait: q.oldest_wait,
                    estimated_wait: q.estimated_wait,
                    eligible,
                    practice: q.practice,
                }
            })
            .collect();
        let mut agents = AgentCounts::default();
        for a in d.agents() {
            // An available agent on an outbound call is busy on the phone.
            let outbound = a.state == AgentState::Available && a.outbound_calls > 0;
            agents.add(if outbound {
                AgentState::OnCall
            } else {
                a.state
            });
        }
        Self { practices, agents }
    }
}
