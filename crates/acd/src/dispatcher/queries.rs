//! Read-only queries: snapshots of calls, queues and agents, eligible agents,
//! estimated waits, opening state.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::ids::{AgentId, CallId, PracticeId};
use crate::io::AgentState;
use crate::snapshot::{AgentSnapshot, CallPhase, CallSnapshot, EligibleAgents, QueueSnapshot};

use super::calls::Phase;
use super::idx::{AgentIdx, IdxVec, SlotIdx};
use super::time::{dur, ms_of, time_of, Ms};
use super::Dispatcher;

impl Dispatcher {
    /// Whether the practice is open at engine time `now`, that is at the
    /// wall time `now` + the wall-clock offset (see
    /// [`Dispatcher::set_wall_clock`]; `None`: unknown practice).
    pub fn is_open(&self, practice: &str, now: DateTime<Utc>) -> Option<bool> {
        let p = self.practices.get(*self.practice_by_id.get(practice)?)?;
        Some(
            p.hours
                .as_ref()
                .is_none_or(|h| h.is_open(self.wall_at(now))),
        )
    }

    /// The phase, position and estimated wait of one call.
    pub fn call(&self, call: CallId, now: DateTime<Utc>) -> Option<CallSnapshot> {
        let si = *self.call_by_id.get(&call)?;
        Some(self.call_snapshot(si, ms_of(now).max(self.now)))
    }

    /// Ids of all calls the dispatcher knows (waiting, ringing, connected).
    pub fn calls(&self) -> impl Iterator<Item = CallId> + '_ {
        self.call_by_id.keys().copied()
    }

    /// A practice queue: counts, oldest wait, estimated wait for a new
    /// call, and every waiting/ringing call in queue order.
    pub fn queue_snapshot(&self, practice: &str, now: DateTime<Utc>) -> Option<QueueSnapshot> {
        let pi = *self.practice_by_id.get(practice)?;
        let p = &self.practices[pi];
        let now_ms = ms_of(now).max(self.now);
        let mut calls: Vec<CallSnapshot> = p
            .calls
            .iter()
            .map(|&si| self.call_snapshot(si, now_ms))
            .collect();
        calls.sort_by_key(|c| c.position);
        let waiting = calls
            .iter()
            .filter(|c| c.phase == CallPhase::Waiting)
            .count() as u32;
        Some(QueueSnapshot {
            practice: p.id.clone(),
            open: p
                .hours
                .as_ref()
                .is_none_or(|h| h.is_open(time_of(self.wall_at_ms(now_ms)))),
            waiting,
            ringing: calls.len() as u32 - waiting,
            oldest_wait: calls.iter().map(|c| c.wait).max(),
            estimated_wait: self.practice_ewt(pi, now_ms).map(dur),
            calls,
        })
    }

    /// Snapshots of every practice queue.
    pub fn queue_snapshots(&self, now: DateTime<Utc>) -> Vec<QueueSnapshot> {
        self.practices
            .iter()
            .filter_map(|p| self.queue_snapshot(p.id.as_str(), now))
            .collect()
    }

    /// One agent's state.
    pub fn agent(&self, agent: &str) -> Option<AgentSnapshot> {
        let ai = *self.agent_by_id.get(agent)?;
        Some(self.agent_snapshot(ai))
    }

    /// Every agent's state, in configuration order (retired agents last).
    pub fn agents(&self) -> Vec<AgentSnapshot> {
        self.agents
            .indices()
            .map(|a| self.agent_snapshot(a))
            .collect()
    }

    /// Counts of agents eligible for a practice's calls (union of all its
    /// routing steps, plus its overflow pool).
    pub fn eligible_agents(&self, practice: &str) -> Option<EligibleAgents> {
        let eligible = self.eligible_mask(practice)?;
        let mut out = EligibleAgents::default();
        for (ag, _) in self.agents.iter().zip(eligible.iter()).filter(|e| *e.1) {
            out.configured += 1;
            if ag.state != AgentState::LoggedOut {
                out.logged_in += 1;
                if ag.in_shift && ag.reachable {
                    out.staffed += 1;
                }
            }
            if ag.dispatchable {
                out.dispatchable += 1;
            }
        }
        Some(out)
    }

    /// Ids of the agents eligible for a practice's calls without extra
    /// requirements (union of all its routing steps and its overflow pool),
    /// in configuration order.
    pub fn eligible_agent_ids(&self, practice: &str) -> Option<Vec<AgentId>> {
        let eligible = self.eligible_mask(practice)?;
        let agents = self.agents.iter().zip(eligible.iter());
        Some(agents.filter(|e| *e.1).map(|(a, _)| a.id.clone()).collect())
    }

    /// Which agents are members of a group of the practice's default route
    /// (any step, or the overflow pool).
    fn eligible_mask(&self, practice: &str) -> Option<IdxVec<AgentIdx, bool>> {
        let p = &self.practices[*self.practice_by_id.get(practice)?];
        let route = &self.routes[p.routes.first()?.1];
        let mut eligible = IdxVec::filled(false, self.agents.len());
        for g in route.steps.iter().map(|s| s.1).chain(route.overflow) {
            for &a in &self.groups[g].members {
                eligible[a] = true;
            }
        }
        Some(eligible)
    }

    /// Estimated remaining wait of a waiting call.
    ///
    /// Model: the call is at position `k` = 1 + the number of distinct
    /// waiting calls ranked before it (priority, then join time) in any of
    /// its active groups. For each routing step `s` (reached or not), let
    /// `A_s` be the agents of steps `0..=s` (and of the overflow pool once
    /// retargeted) that are logged in, in shift, reachable and not paused.
    /// Each agent frees up at `f_a`: now if available (or at the end of its
    /// back-off), the end of its wrap-up, or, on a call of practice `q`,
    /// `answered + AHT_q` (at least now) plus `wrap_q`; an offered agent is
    /// counted as starting a call now. Freed agents serve the queue in order,
    /// each next call taking `S = AHT_p + wrap_p` of the call's practice
    /// `p`, so the `k`-th slot `T_s(k)` is the `k`-th smallest value of the
    /// multiset `{f_a + j·S : a ∈ A_s, j ≥ 0}`. The estimate is
    /// `min_s max(start_s, T_s(k)) − now`, where `start_s` is when step `s`
    /// applies (join + `after_s`). `AHT_p` is an exponentially weighted
    /// average of the practice's talk times (weight `settings.aht_alpha`),
    /// seeded with its `default_handle_secs`. `None` when no agent could
    /// ever serve the call.
    pub fn estimated_wait(&self, call: CallId, now: DateTime<Utc>) -> Option<Duration> {
        let si = *self.call_by_id.get(&call)?;
        self.call_ewt(si, ms_of(now).max(self.now)).map(dur)
    }

    /// The practice's current average handle time (talk time).
    pub fn average_handle_time(&self, practice: &str) -> Option<Duration> {
        let pi = *self.practice_by_id.get(practice)?;
        Some(dur(self.practices[pi].aht_ms.round() as Ms))
    }

    /// Whether the agent is currently inside its shift (for tests/admin).
    pub fn agent_in_shift(&self, agent: &str) -> Option<bool> {
        Some(self.agents[*self.agent_by_id.get(agent)?].in_shift)
    }

    /// Number of indexing groups (diagnostics).
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// The practice ids, in configuration order.
    pub fn practice_ids(&self) -> impl Iterator<Item = &PracticeId> {
        self.practices.iter().map(|p| &p.id)
    }

    pub(super) fn call_snapshot(&self, si: SlotIdx, now: Ms) -> CallSnapshot {
        let Some(c) = self.call_ref(si) else {
            return CallSnapshot {
                call: CallId(0),
                practice: None,
                phase: CallPhase::Waiting,
                agent: None,
                priority: 0,
                wait: Duration::ZERO,
                step: 0,
                retargeted: false,
                position: 0,
                estimated_wait: None,
                head: false,
                target: None,
            };
        };
        CallSnapshot {
            call: c.id,
            practice: self.practices.get_opt(c.practice).map(|p| p.id.clone()),
            phase: match c.phase {
                Phase::Waiting => CallPhase::Waiting,
                Phase::Ringing => CallPhase::Ringing,
                Phase::Connected => CallPhase::Connected,
            },
            agent: self.agents.get_opt(c.agent).map(|a| a.id.clone()),
            priority: c.priority,
            wait: dur(match c.phase {
                Phase::Connected => c.answered_at - c.joined,
                _ => now - c.joined,
            }),
            step: c.step,
            retargeted: c.retargeted,
            position: self.position(si),
            estimated_wait: if c.phase == Phase::Waiting {
                self.call_ewt(si, now).map(dur)
            } else {
                None
            },
            head: c.head,
            target: c.target.clone(),
        }
    }

    pub(super) fn agent_snapshot(&self, ai: AgentIdx) -> AgentSnapshot {
        let a = &self.agents[ai];
        AgentSnapshot {
            agent: a.id.clone(),
            state: a.state,
            pause_reason: a
                .pause_reason
                .as_ref()
                .or(a.pending_pause.as_ref())
                .map(|r| r.to_string()),
            in_shift: a.in_shift,
            reachable: a.reachable,
            outbound_calls: a.outbound_calls,
            dispatchable: a.dispatchable,
            backoff: (a.backoff_until > self.now).then(|| dur(a.backoff_until - self.now)),
            strikes: a.strikes,
            call: a.call.and_then(|s| self.call_ref(s)).map(|c| c.id),
            pending_logout: a.pending_logout,
            retired: a.retired,
            wrap_up_until: (a.state == AgentState::WrapUp).then(|| time_of(a.wrap_until)),
        }
    }
}
