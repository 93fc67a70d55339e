//! Applying a new configuration while calls wait and agents work.
//!
//! A fresh dispatcher is built from the new configuration, then the state of
//! the old one is carried over by id, step by step: clock and sequences,
//! learned handle times, agents (kept, new, removed), calls (connected,
//! queued, orphaned), stale offers, then timers and indices are rebuilt
//! from the carried state. Indices of the old dispatcher are never used in
//! the new one: everything is translated through ids.

use chrono::{DateTime, Utc};

use crate::config::AcdConfig;
use crate::error::AcdError;
use crate::ids::{AgentId, CallId};
use crate::io::{Action, AgentState, CancelReason, ChangeReason, Event, Output, OverflowReason};

use super::calls::{CallRt, Phase};
use super::idx::{AgentIdx, IdxVec, PracticeIdx, ReqIdx};
use super::index::{active_step, next_relax, ReqKey};
use super::time::{dur, Ms};
use super::timers::TimerKind;
use super::Dispatcher;

/// Each new agent's shift state in the old dispatcher (`None`: new agent).
type PrevShift = IdxVec<AgentIdx, Option<bool>>;

/// A queued call whose practice disappeared: (call, join time).
type Orphan = (CallId, Ms);

impl Dispatcher {
    /// Applies a new configuration at `now`, keeping waiting calls in place
    /// (original join time and priority) and agents in their states.
    ///
    /// * Agents that disappear: an offer ringing them is withdrawn and the
    ///   call re-dispatched; one on a call finishes it (then leaves); the
    ///   others leave at once (`AgentStateChanged` to logged out, reason
    ///   `Removed`).
    /// * Calls of a practice that disappears are overflowed to
    ///   `settings.orphan_overflow` with reason `PracticeRemoved` (a ringing
    ///   offer is cancelled first); connected calls are kept.
    /// * Remaining calls take the new routing steps and maximum wait, counted
    ///   from their original join time (a maximum wait already exceeded
    ///   fires at once).
    /// * Head calls stay at the head; transferred calls keep their target
    ///   while it exists (an offer ringing an agent it no longer allows is
    ///   withdrawn); a target removed (or an agent retired) is dropped and
    ///   the call routed like any call of its practice, keeping its place
    ///   (see [`crate::CallArrival::target`]).
    ///
    /// The configuration is checked with [`AcdConfig::validate`]; on error
    /// the current configuration stays in force.
    pub fn reconfigure(&mut self, config: AcdConfig, now: DateTime<Utc>) -> Result<(), AcdError> {
        let mut next = Dispatcher::new(config)?;
        self.advance(now);
        next.take_over_clock(self);
        next.carry_handle_times(self);
        let mut prev_shift = next.carry_agents(self);
        next.retire_removed_agents(self, &mut prev_shift);
        let orphans = next.carry_calls(self);
        next.overflow_orphans(orphans);
        next.release_stale_offers();
        next.restore_agent_timers(&prev_shift);
        next.restore_calls();
        for ai in next.agents.indices() {
            next.refresh_agent(ai);
        }
        *self = next;
        self.run_timers();
        Ok(())
    }

    /// Clock (and wall-clock offset), sequence numbers and pending outputs
    /// continue.
    fn take_over_clock(&mut self, old: &mut Dispatcher) {
        self.started = true;
        self.now = old.now;
        self.wall_offset = old.wall_offset;
        self.call_seq = old.call_seq;
        self.offer_seq = old.offer_seq;
        self.timer_order = old.timer_order;
        self.outputs = std::mem::take(&mut old.outputs);
    }

    /// Practices keep their learned average handle times.
    fn carry_handle_times(&mut self, old: &Dispatcher) {
        for p in self.practices.iter_mut() {
            if let Some(&op) = old.practice_by_id.get(&p.id) {
                p.aht_ms = old.practices[op].aht_ms;
            }
        }
    }

    /// Agents present in both keep their dynamic state; new agents
    /// configured `logged_in` become available now.
    fn carry_agents(&mut self, old: &Dispatcher) -> PrevShift {
        let now = self.now;
        let mut prev_shift = IdxVec::filled(None, self.agents.len());
        for (a, prev) in self.agents.iter_mut().zip(prev_shift.iter_mut()) {
            if let Some(&oi) = old.agent_by_id.get(&a.id) {
                let o = &old.agents[oi];
                a.state = o.state;
                a.pause_reason = o.pause_reason.clone();
                a.reachable = o.reachable;
                a.outbound_calls = o.outbound_calls;
                a.backoff_until = o.backoff_until;
                a.idle_since = o.idle_since;
                a.last_offer = o.last_offer;
                a.strikes = o.strikes;
                a.pending_logout = o.pending_logout;
                a.pending_pause = o.pending_pause.clone();
                a.wrap_until = o.wrap_until;
                *prev = Some(o.in_shift);
            } else if a.logged_in_at_start {
                a.state = AgentState::Available;
                a.idle_since = now;
                // Not `emit`: `self.agents` is borrowed.
                self.outputs
                    .push_back(Output::Event(Event::AgentStateChanged {
                        agent: a.id.clone(),
                        from: AgentState::LoggedOut,
                        to: AgentState::Available,
                        reason: ChangeReason::Login,
                    }));
            }
        }
        prev_shift
    }

    /// Agents that disappear: one on a call stays, retired, until the call
    /// ends; the others leave now. (Retired agents that already left are
    /// dropped silently.)
    fn retire_removed_agents(&mut self, old: &Dispatcher, prev_shift: &mut PrevShift) {
        for o in old.agents.iter() {
            // A retired agent that finished its call was reported removed
            // then (and is no longer in `agent_by_id`).
            let gone = o.retired && o.state == AgentState::LoggedOut;
            if gone || self.agent_by_id.contains_key(&o.id) {
                continue;
            }
            if o.state == AgentState::OnCall {
                let mut r = o.clone();
                r.retired = true;
                r.groups = Vec::new();
                r.dedicated = Vec::new();
                r.pools = Vec::new();
                r.dispatchable = false;
                r.call = None;
                let idx = self.agents.push(r);
                self.agent_by_id.insert(o.id.clone(), idx);
                prev_shift.push(Some(o.in_shift));
            } else {
                if o.state != AgentState::LoggedOut {
                    self.emit(Event::AgentStateChanged {
                        agent: o.id.clone(),
                        from: o.state,
                        to: AgentState::LoggedOut,
                        reason: ChangeReason::Removed,
                    });
                }
                self.emit(Event::AgentRemoved {
                    agent: o.id.clone(),
                });
            }
        }
    }

    /// Carries every call over, in slot order; returns the queued calls
    /// whose practice disappeared.
    fn carry_calls(&mut self, old: &Dispatcher) -> Vec<Orphan> {
        let mut orphans = Vec::new();
        for c in old.slots.iter().filter_map(|s| s.call.as_ref()) {
            let agent = c.agent.map(|a| &old.agents[a].id);
            let new_agent = agent.and_then(|id| self.agent_by_id.get(id).copied());
            let new_practice = old
                .practices
                .get_opt(c.practice)
                .and_then(|p| self.practice_by_id.get(&p.id).copied());
            if c.phase == Phase::Connected {
                // Kept even if its practice is gone; its agent is kept too
                // (retired if removed).
                let ns = self.alloc_slot(CallRt {
                    practice: new_practice,
                    agent: new_agent,
                    ..c.clone()
                });
                if let Some(a) = new_agent {
                    self.agents[a].call = Some(ns);
                }
                self.call_by_id.insert(c.id, ns);
                continue;
            }
            let ring_agent = new_agent.filter(|_| c.phase == Phase::Ringing);
            let kept_ring = match new_practice {
                Some(np) => self.carry_queued(old, c, np, ring_agent),
                None => {
                    orphans.push((c.id, c.joined));
                    false
                }
            };
            if c.phase == Phase::Ringing && !kept_ring {
                if let Some(agent) = agent {
                    self.cancel_carried_offer(c.id, agent, new_practice.is_some());
                }
            }
        }
        orphans
    }

    /// An offer that cannot survive the reconfiguration is cancelled
    /// (withdrawn, if the call stays).
    fn cancel_carried_offer(&mut self, call: CallId, agent: &AgentId, stays: bool) {
        self.emit_action(Action::CancelOffer {
            call,
            agent: agent.clone(),
            reason: CancelReason::Reconfigured,
        });
        if stays {
            self.emit(Event::OfferWithdrawn {
                call,
                agent: agent.clone(),
                reason: CancelReason::Reconfigured,
            });
        }
    }

    /// A waiting or ringing call of a practice that stays: its requirement,
    /// target and route are resolved in the new tables, its step
    /// recomputed from its join time and its maximum wait from its arrival
    /// (see `CallArrival::joined_at`); it keeps `head`. A target that
    /// disappeared (or whose agent is retired) is dropped: the call takes
    /// the practice's route like any other. `ringing`: the agent of the
    /// offer ringing, kept unless the call's target no longer allows that
    /// agent. Returns whether the offer is kept.
    fn carry_queued(
        &mut self,
        old: &Dispatcher,
        c: &CallRt,
        np: PracticeIdx,
        ringing: Option<AgentIdx>,
    ) -> bool {
        let req = self.translate_req(old, c.req);
        let target = c.target.as_ref().and_then(|t| self.resolve_target(t).ok());
        let route = match target {
            Some(t) => self.target_route(np, req, t),
            None => self.route_for(np, req),
        };
        let pr = &self.practices[np];
        let step = active_step(&self.routes[route], self.now - c.joined);
        // A retargeted call stays so while the overflow is still a pool;
        // otherwise it gets the new maximum wait like any other call.
        let retargeted = c.retargeted && pr.overflow_pool.is_some();
        let max_wait_ms = pr.max_wait_ms;
        let ringing =
            ringing.filter(|&a| target.is_none() || self.route_allows(route, step, retargeted, a));
        let mut nc = CallRt {
            practice: Some(np),
            req,
            route,
            step,
            retargeted,
            max_wait_at: if retargeted {
                None
            } else {
                max_wait_ms.map(|m| c.arrived + m)
            },
            target: c.target.clone().filter(|_| target.is_some()),
            next_relax: next_relax(&self.routes[route], step, c.joined),
            agent: None,
            phase: Phase::Waiting,
            // A pending overflow was decided under the old policy; the
            // recomputed maximum wait, already exceeded, fires again at once
            // under the new one (overflow pending again, or retarget).
            overflow_pending: false,
            ..c.clone()
        };
        if ringing.is_some() {
            nc.phase = Phase::Ringing;
            nc.agent = ringing;
        }
        let ns = self.alloc_slot(nc);
        self.call_by_id.insert(c.id, ns);
        self.practices[np].calls.push(ns);
        if let Some(a) = ringing {
            self.agents[a].call = Some(ns);
        }
        ringing.is_some()
    }

    /// A call requirement of the old dispatcher, interned in this one.
    fn translate_req(&mut self, old: &Dispatcher, req: ReqIdx) -> ReqIdx {
        let old_req = old.reqs.get(req).cloned().unwrap_or_default();
        let req = ReqKey {
            lang: old_req.lang.map(|l| self.langs.intern(old.langs.name(l))),
            skills: old_req
                .skills
                .iter()
                .map(|&(s, l)| (self.skills.intern(old.skills.name(s)), l))
                .collect(),
        };
        self.intern_req(req)
    }

    /// Queued calls whose practice disappeared go to the orphan overflow.
    fn overflow_orphans(&mut self, orphans: Vec<Orphan>) {
        let now = self.now;
        for (call, joined) in orphans {
            let target = self.settings.orphan_overflow.clone();
            self.emit_action(Action::Overflow {
                call,
                target: target.clone(),
            });
            self.emit(Event::Overflowed {
                call,
                target,
                wait: dur(now - joined),
                reason: OverflowReason::PracticeRemoved,
            });
        }
    }

    /// Agents left "offered" without a call (offer withdrawn above) are
    /// available again. Set directly: the indices are built afterwards.
    /// (Connected calls are always carried, so no agent is left on a call
    /// without one.)
    fn release_stale_offers(&mut self) {
        for ai in self.agents.indices() {
            let a = &mut self.agents[ai];
            let stale = matches!(a.state, AgentState::Offered | AgentState::OnCall)
                && a.call.is_none()
                && !a.retired;
            if stale {
                let from = std::mem::replace(&mut a.state, AgentState::Available);
                let id = a.id.clone();
                self.emit(Event::AgentStateChanged {
                    agent: id,
                    from,
                    to: AgentState::Available,
                    reason: ChangeReason::OfferEnded,
                });
            }
        }
    }

    /// Shifts (re-evaluated, `ShiftChanged` where they changed), wrap-up and
    /// back-off timers.
    fn restore_agent_timers(&mut self, prev_shift: &PrevShift) {
        let now = self.now;
        for ai in self.agents.indices() {
            self.init_shift(ai, prev_shift.get(ai).copied().flatten());
            let a = &self.agents[ai];
            let wrap = (a.state == AgentState::WrapUp).then_some(a.wrap_until);
            let backoff = (a.backoff_until > now).then_some(a.backoff_until);
            if let Some(at) = wrap {
                self.push_timer(at, TimerKind::Wrap { agent: ai });
            }
            if let Some(at) = backoff {
                self.push_timer(at, TimerKind::Backoff { agent: ai });
            }
        }
    }

    /// Ring, relax and max-wait timers of the carried calls; waiting calls
    /// are indexed.
    fn restore_calls(&mut self) {
        for si in self.slots.indices() {
            let Some(c) = self.slots[si].call.as_ref() else {
                continue;
            };
            let (phase, seq, relax, max_wait) = (c.phase, c.seq, c.next_relax, c.max_wait_at);
            match phase {
                Phase::Connected => continue,
                Phase::Ringing => {
                    let (at, offer) = (c.ring_deadline, c.offer_seq);
                    self.push_timer(at, TimerKind::Ring { call: si, offer });
                }
                Phase::Waiting => self.index_call(si),
            }
            if let Some(t) = relax {
                self.push_timer(t, TimerKind::Relax { call: si, seq });
            }
            if let Some(t) = max_wait {
                self.push_timer(t, TimerKind::MaxWait { call: si, seq });
            }
        }
    }
}
