//! Agent runtime state and the agent inputs: login, logout, pause, unpause,
//! reachability, outbound calls; state changes, dispatchability (an agent
//! enters the agent heaps of its groups when it can take an offer) and
//! back-off. Offers and their withdrawal are in `offers.rs`, shifts in
//! `calendar.rs`.

use permanence_calendar::Schedule;

use crate::config::Strategy;
use crate::error::AcdError;
use crate::heap::{agent_score, Entry};
use crate::ids::{AgentId, PauseReason};
use crate::io::{AgentState, CancelReason, ChangeReason, Event};

use super::idx::{AgentIdx, GroupIdx, LangIdx, PoolIdx, PracticeIdx, SkillIdx, SlotIdx};
use super::index::{agent_live, GroupKey, Ranking, SkillLevel};
use super::time::Ms;
use super::timers::TimerKind;
use super::Dispatcher;

/// One agent: static profile (resolved) and dynamic state.
#[derive(Debug, Clone)]
pub(super) struct AgentRt {
    pub(super) id: AgentId,
    /// Sorted by skill.
    pub(super) skills: Vec<SkillLevel>,
    /// Sorted, deduplicated.
    pub(super) langs: Vec<LangIdx>,
    /// Sorted (binary-searched by `matches`).
    pub(super) pools: Vec<PoolIdx>,
    /// Practices the agent is dedicated to, sorted.
    pub(super) dedicated: Vec<PracticeIdx>,
    pub(super) shift: Option<Schedule>,
    /// Groups the agent is a member of.
    pub(super) groups: Vec<GroupIdx>,
    /// Removed by a reconfiguration while on a call: finishes it, then
    /// leaves.
    pub(super) retired: bool,
    pub(super) logged_in_at_start: bool,
    pub(super) state: AgentState,
    pub(super) pause_reason: Option<PauseReason>,
    pub(super) in_shift: bool,
    /// Next shift boundary (engine time), the live `Shift` timer.
    pub(super) shift_next: Option<Ms>,
    pub(super) reachable: bool,
    /// Outbound calls in progress (the agent gets no offer while > 0).
    pub(super) outbound_calls: u32,
    pub(super) backoff_until: Ms,
    pub(super) idle_since: Ms,
    /// Offer sequence number of the last offer (round robin).
    pub(super) last_offer: u64,
    /// Consecutive ring-no-answers.
    pub(super) strikes: u32,
    /// In the agent heaps of its groups (see `refresh_agent`).
    pub(super) dispatchable: bool,
    /// Generation: bumped when dispatchability changes (heap liveness).
    pub(super) gen: u32,
    /// The call ringing or connected.
    pub(super) call: Option<SlotIdx>,
    pub(super) pending_logout: bool,
    pub(super) pending_pause: Option<PauseReason>,
    pub(super) wrap_until: Ms,
    /// The agent's own wrap-up time, if it overrides the practice's.
    pub(super) wrap_override: Option<Ms>,
}

impl AgentRt {
    /// The agent's level in `skill` (0: not skilled).
    pub(super) fn level(&self, skill: SkillIdx) -> u8 {
        match self.skills.binary_search_by_key(&skill, |s| s.0) {
            Ok(i) => self.skills[i].1,
            Err(_) => 0,
        }
    }

    /// Whether the agent (`ai`, this one's index) meets every criterion of
    /// a group key.
    pub(super) fn matches(&self, ai: AgentIdx, key: &GroupKey) -> bool {
        if key.agent.is_some_and(|a| a != ai) {
            return false;
        }
        if let Some(p) = key.dedicated {
            if self.dedicated.binary_search(&p).is_err() {
                return false;
            }
        }
        if let Some(p) = key.pool {
            if self.pools.binary_search(&p).is_err() {
                return false;
            }
        }
        key.skills.iter().all(|&(s, l)| self.level(s) >= l.max(1))
            && key
                .langs
                .iter()
                .all(|l| self.langs.binary_search(l).is_ok())
    }

    /// The agent's heap score in a group with `ranking` (`idx` breaks
    /// ties: configuration order).
    pub(super) fn score(&self, ranking: Ranking, idx: AgentIdx) -> u128 {
        let idx = idx.raw();
        match ranking.strategy {
            Strategy::LongestIdle => agent_score(0, self.idle_since, u64::from(idx)),
            Strategy::MostSkilled => agent_score(
                ranking.skill.map_or(0, |s| u32::from(self.level(s))),
                self.idle_since,
                u64::from(idx),
            ),
            Strategy::RoundRobin => agent_score(0, self.last_offer as i64, u64::from(idx)),
        }
    }
}

impl Dispatcher {
    pub(super) fn agent_idx(&self, id: &AgentId) -> Result<AgentIdx, AcdError> {
        self.agent_by_id
            .get(id)
            .copied()
            .ok_or_else(|| AcdError::UnknownAgent(id.clone()))
    }

    pub(super) fn set_state(&mut self, ai: AgentIdx, to: AgentState, reason: ChangeReason) {
        let a = &mut self.agents[ai];
        let from = a.state;
        if from == to {
            return;
        }
        a.state = to;
        if to != AgentState::Paused {
            a.pause_reason = None;
        }
        let id = a.id.clone();
        self.emit(Event::AgentStateChanged {
            agent: id,
            from,
            to,
            reason,
        });
        self.refresh_agent(ai);
    }

    /// Recomputes whether the agent can get an offer now; when it becomes
    /// able to, indexes it and gives it the best eligible waiting call.
    pub(super) fn refresh_agent(&mut self, ai: AgentIdx) {
        let now = self.now;
        let a = &mut self.agents[ai];
        let should = !a.retired
            && a.state == AgentState::Available
            && a.in_shift
            && a.reachable
            && a.outbound_calls == 0
            && a.backoff_until <= now;
        if should == a.dispatchable {
            return;
        }
        a.gen = a.gen.wrapping_add(1);
        a.dispatchable = should;
        if !should {
            return;
        }
        let a = &self.agents[ai];
        for &g in &a.groups {
            let group = &mut self.groups[g];
            group.agents.push(Entry {
                score: a.score(group.key.ranking, ai),
                idx: ai,
                gen: a.gen,
            });
            if group.agents.len() > 2 * group.members.len() + 32 {
                let agents = &self.agents;
                group.agents.compact(|e| agent_live(agents, e));
            }
        }
        self.dispatch_agent(ai);
    }

    pub(super) fn back_off(&mut self, ai: AgentIdx, until: Ms) {
        if until > self.now {
            self.agents[ai].backoff_until = until;
            self.push_timer(until, TimerKind::Backoff { agent: ai });
        }
    }

    pub(super) fn on_login(&mut self, ai: AgentIdx) {
        let a = &mut self.agents[ai];
        if a.retired {
            return;
        }
        if a.state == AgentState::LoggedOut {
            a.idle_since = self.now;
            a.strikes = 0;
            self.set_state(ai, AgentState::Available, ChangeReason::Login);
        } else {
            a.pending_logout = false;
        }
    }

    pub(super) fn on_logout(&mut self, ai: AgentIdx) {
        match self.agents[ai].state {
            AgentState::LoggedOut => {}
            AgentState::OnCall => self.agents[ai].pending_logout = true,
            AgentState::Offered => {
                let si = self.withdraw_offer(ai, CancelReason::AgentLoggedOut);
                self.set_state(ai, AgentState::LoggedOut, ChangeReason::Logout);
                if let Some(si) = si {
                    self.requeue(si);
                }
            }
            _ => self.set_state(ai, AgentState::LoggedOut, ChangeReason::Logout),
        }
    }

    pub(super) fn on_pause(&mut self, ai: AgentIdx, reason: PauseReason) -> Result<(), AcdError> {
        let a = &mut self.agents[ai];
        match a.state {
            AgentState::LoggedOut => Err(AcdError::AgentLoggedOut(a.id.clone())),
            AgentState::OnCall => {
                a.pending_pause = Some(reason);
                Ok(())
            }
            AgentState::Paused => {
                a.pause_reason = Some(reason);
                Ok(())
            }
            AgentState::Offered => {
                let si = self.withdraw_offer(ai, CancelReason::AgentPaused);
                self.agents[ai].pause_reason = Some(reason.clone());
                self.set_state(ai, AgentState::Paused, ChangeReason::Pause(reason));
                if let Some(si) = si {
                    self.requeue(si);
                }
                Ok(())
            }
            AgentState::Available | AgentState::WrapUp => {
                a.pause_reason = Some(reason.clone());
                self.set_state(ai, AgentState::Paused, ChangeReason::Pause(reason));
                Ok(())
            }
        }
    }

    pub(super) fn on_unpause(&mut self, ai: AgentIdx) {
        let now = self.now;
        let a = &mut self.agents[ai];
        match a.state {
            AgentState::Paused => {
                a.idle_since = now;
                a.strikes = 0;
                self.set_state(ai, AgentState::Available, ChangeReason::Unpause);
            }
            AgentState::OnCall => a.pending_pause = None,
            _ => {}
        }
    }

    pub(super) fn on_reachability(&mut self, ai: AgentIdx, reachable: bool) {
        let now = self.now;
        let a = &mut self.agents[ai];
        if a.reachable == reachable {
            return;
        }
        a.reachable = reachable;
        if reachable {
            a.idle_since = now;
        }
        let id = a.id.clone();
        self.emit(Event::ReachabilityChanged {
            agent: id,
            reachable,
        });
        if !reachable && self.agents[ai].state == AgentState::Offered {
            let si = self.withdraw_offer(ai, CancelReason::AgentUnreachable);
            self.set_state(ai, AgentState::Available, ChangeReason::OfferEnded);
            if let Some(si) = si {
                self.requeue(si);
            }
        } else {
            self.refresh_agent(ai);
        }
    }

    /// One more outbound call in progress: the agent leaves the agent heaps
    /// (its state does not change); an offer ringing it is withdrawn and the
    /// call re-dispatched.
    pub(super) fn on_outbound_started(&mut self, ai: AgentIdx) {
        let a = &mut self.agents[ai];
        a.outbound_calls = a.outbound_calls.saturating_add(1);
        if a.state == AgentState::Offered {
            let si = self.withdraw_offer(ai, CancelReason::AgentOutbound);
            self.set_state(ai, AgentState::Available, ChangeReason::OfferEnded);
            if let Some(si) = si {
                self.requeue(si);
            }
        } else {
            self.refresh_agent(ai);
        }
    }

    /// One outbound call fewer (saturating at 0); with none left, an
    /// available agent becomes dispatchable and takes a waiting call at
    /// once.
    pub(super) fn on_outbound_ended(&mut self, ai: AgentIdx) {
        let now = self.now;
        let a = &mut self.agents[ai];
        if a.outbound_calls == 0 {
            return;
        }
        a.outbound_calls -= 1;
        if a.outbound_calls == 0 && a.state == AgentState::Available {
            // Idle from now on, as after a call (longest-idle ranking).
            a.idle_since = now;
        }
        self.refresh_agent(ai);
    }
}
