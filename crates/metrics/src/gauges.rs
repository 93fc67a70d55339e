//! Queue and agent gauges, refreshed just before a scrape.

use std::time::Duration;

use chrono::{DateTime, Utc};
use permanence_acd::{Dispatcher, PracticeId, Presence};

/// Number of agents in each [`Presence`] (the `state` label of
/// `permanence_agents`: an agent whose softphone is unreachable is counted
/// as `unreachable`, never `available`), indexed like [`Presence::ALL`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentCounts(pub [u32; 7]);

impl AgentCounts {
    /// Counts one more agent in `presence`.
    pub fn add(&mut self, presence: Presence) {
        self.0[presence.index()] += 1;
    }

    /// Agents in `presence`.
    pub fn get(&self, presence: Presence) -> u32 {
        self.0[presence.index()]
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
            agents.add(a.presence());
        }
        Self { practices, agents }
    }
}
