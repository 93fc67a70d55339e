//! Applying a new configuration while calls wait and agents work.

use chrono::{DateTime, Utc};

use crate::config::AcdConfig;
use crate::error::AcdError;
use crate::ids::CallId;
use crate::io::{Action, AgentState, CancelReason, ChangeReason, Event, Output, OverflowReason};

use super::calls::{CallRt, Phase};
use super::index::{active_step, next_relax, ReqKey};
use super::time::{dur, Ms};
use super::timers::TimerKind;
use super::{Dispatcher, NONE};

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
    ///
    /// On error the current configuration stays in force.
    pub fn reconfigure(&mut self, config: AcdConfig, now: DateTime<Utc>) -> Result<(), AcdError> {
        let mut next = Dispatcher::new(config)?;
        self.advance(now);
        let now = self.now;
        next.started = true;
        next.now = now;
        next.call_seq = self.call_seq;
        next.offer_seq = self.offer_seq;
        next.timer_order = self.timer_order;
        next.outputs = std::mem::take(&mut self.outputs);

        // Practices: carry the learned handle times.
        for p in &mut next.practices {
            if let Some(&op) = self.practice_by_id.get(&p.id) {
                p.aht_ms = self.practices[op as usize].aht_ms;
            }
        }
        // Agents present in both: carry the dynamic state.
        let mut prev_shift = vec![None; next.agents.len()];
        for (ni, a) in next.agents.iter_mut().enumerate() {
            match self.agent_by_id.get(&a.id) {
                Some(&oi) => {
                    let o = &self.agents[oi as usize];
                    a.state = o.state;
                    a.pause_reason = o.pause_reason.clone();
                    a.reachable = o.reachable;
                    a.backoff_until = o.backoff_until;
                    a.idle_since = o.idle_since;
                    a.last_offer = o.last_offer;
                    a.strikes = o.strikes;
                    a.pending_logout = o.pending_logout;
                    a.pending_pause = o.pending_pause.clone();
                    a.wrap_until = o.wrap_until;
                    prev_shift[ni] = Some(o.in_shift);
                }
                None => {
                    if a.logged_in_at_start {
                        a.state = AgentState::Available;
                        a.idle_since = now;
                        let id = a.id.clone();
                        next.outputs
                            .push_back(Output::Event(Event::AgentStateChanged {
                                agent: id,
                                from: AgentState::LoggedOut,
                                to: AgentState::Available,
                                reason: ChangeReason::Login,
                            }));
                    }
                }
            }
        }
        // Agents removed.
        for o in &self.agents {
            if next.agent_by_id.contains_key(&o.id) {
                continue;
            }
            if o.state == AgentState::OnCall {
                let mut r = o.clone();
                r.retired = true;
                r.groups = Vec::new();
                r.dedicated = Vec::new();
                r.pools = Vec::new();
                r.dispatchable = false;
                r.call = NONE;
                let idx = next.agents.len() as u32;
                next.agent_by_id.insert(r.id.clone(), idx);
                next.agents.push(r);
                prev_shift.push(Some(o.in_shift));
            } else {
                if o.state != AgentState::LoggedOut {
                    next.emit(Event::AgentStateChanged {
                        agent: o.id.clone(),
                        from: o.state,
                        to: AgentState::LoggedOut,
                        reason: ChangeReason::Removed,
                    });
                }
                next.emit(Event::AgentRemoved {
                    agent: o.id.clone(),
                });
            }
        }
        // Calls.
        let mut to_overflow: Vec<(CallId, Ms)> = Vec::new();
        for slot in &self.slots {
            let Some(c) = &slot.call else { continue };
            let old_agent = (c.agent != NONE).then(|| self.agents[c.agent as usize].id.clone());
            let new_agent = old_agent
                .as_ref()
                .and_then(|id| next.agent_by_id.get(id).copied());
            let new_practice = self
                .practices
                .get(c.practice as usize)
                .and_then(|p| next.practice_by_id.get(&p.id).copied());
            if c.phase == Phase::Connected {
                let ns = next.alloc_slot(CallRt {
                    practice: new_practice.unwrap_or(NONE),
                    agent: new_agent.unwrap_or(NONE),
                    ..c.clone()
                });
                if let Some(a) = new_agent {
                    next.agents[a as usize].call = ns;
                }
                next.call_by_id.insert(c.id, ns);
                continue;
            }
            let keep_ring =
                c.phase == Phase::Ringing && new_agent.is_some() && new_practice.is_some();
            if c.phase == Phase::Ringing && !keep_ring {
                if let Some(agent) = old_agent.clone() {
                    next.emit_action(Action::CancelOffer {
                        call: c.id,
                        agent: agent.clone(),
                        reason: CancelReason::Reconfigured,
                    });
                    if new_practice.is_some() {
                        next.emit(Event::OfferWithdrawn {
                            call: c.id,
                            agent,
                            reason: CancelReason::Reconfigured,
                        });
                    }
                }
            }
            let Some(np) = new_practice else {
                to_overflow.push((c.id, c.joined));
                continue;
            };
            // Re-resolve the call's requirements in the new tables.
            let old_req = self.reqs.get(c.req as usize).cloned().unwrap_or_default();
            let req = ReqKey {
                lang: old_req.lang.map(|l| next.langs.intern(self.langs.name(l))),
                skills: old_req
                    .skills
                    .iter()
                    .map(|&(s, l)| (next.skills.intern(self.skills.name(s)), l))
                    .collect(),
            };
            let req = next.intern_req(req);
            let route = next.route_for(np, req);
            let pr = &next.practices[np as usize];
            let elapsed = now - c.joined;
            let step = active_step(&next.routes[route as usize], elapsed);
            let retargeted = c.retargeted && pr.overflow_pool.is_some();
            let max_wait_at = if c.retargeted {
                None
            } else {
                pr.max_wait_ms.map(|m| c.joined + m)
            };
            let mut nc = CallRt {
                practice: np,
                req,
                route,
                step,
                retargeted,
                max_wait_at,
                next_relax: next_relax(&next.routes[route as usize], step, c.joined),
                agent: NONE,
                phase: Phase::Waiting,
                ..c.clone()
            };
            if keep_ring {
                if let Some(a) = new_agent {
                    nc.phase = Phase::Ringing;
                    nc.agent = a;
                }
            } else {
                nc.overflow_pending = false;
            }
            let ns = next.alloc_slot(nc);
            next.call_by_id.insert(c.id, ns);
            next.practices[np as usize].calls.push(ns);
            if keep_ring {
                if let Some(a) = new_agent {
                    next.agents[a as usize].call = ns;
                }
            }
        }
        for (call, joined) in to_overflow {
            let target = next.settings.orphan_overflow.clone();
            next.emit_action(Action::Overflow {
                call,
                target: target.clone(),
            });
            next.emit(Event::Overflowed {
                call,
                target,
                wait: dur(now - joined),
                reason: OverflowReason::PracticeRemoved,
            });
        }
        // Agents left "offered" without a call get their offer back.
        for ai in 0..next.agents.len() {
            let a = &mut next.agents[ai];
            let stale = matches!(a.state, AgentState::Offered | AgentState::OnCall)
                && a.call == NONE
                && !a.retired;
            if stale {
                // Offer withdrawn above (or, for a call that could not be
                // carried over, which cannot happen: connected calls are
                // always kept): the agent is available again. Set directly:
                // the indices are built below.
                let from = std::mem::replace(&mut a.state, AgentState::Available);
                let id = a.id.clone();
                next.emit(Event::AgentStateChanged {
                    agent: id,
                    from,
                    to: AgentState::Available,
                    reason: ChangeReason::OfferEnded,
                });
            }
        }
        // Shifts, timers and indices.
        for ai in 0..next.agents.len() {
            next.init_shift(ai as u32, prev_shift.get(ai).copied().flatten());
            let a = &next.agents[ai];
            let (wrap, backoff) = (
                (a.state == AgentState::WrapUp).then_some(a.wrap_until),
                (a.backoff_until > now).then_some(a.backoff_until),
            );
            if let Some(at) = wrap {
                next.push_timer(at, TimerKind::Wrap { agent: ai as u32 });
            }
            if let Some(at) = backoff {
                next.push_timer(at, TimerKind::Backoff { agent: ai as u32 });
            }
        }
        for si in 0..next.slots.len() {
            let Some(c) = next.slots[si].call.clone() else {
                continue;
            };
            let si = si as u32;
            match c.phase {
                Phase::Connected => {}
                Phase::Ringing => {
                    next.push_timer(
                        c.ring_deadline,
                        TimerKind::Ring {
                            call: si,
                            offer: c.offer_seq,
                        },
                    );
                }
                Phase::Waiting => next.index_call(si),
            }
            if c.phase != Phase::Connected {
                if let Some(t) = c.next_relax {
                    next.push_timer(
                        t,
                        TimerKind::Relax {
                            call: si,
                            seq: c.seq,
                        },
                    );
                }
                if let Some(t) = c.max_wait_at {
                    next.push_timer(
                        t,
                        TimerKind::MaxWait {
                            call: si,
                            seq: c.seq,
                        },
                    );
                }
            }
        }
        for ai in 0..next.agents.len() {
            next.refresh_agent(ai as u32);
        }
        *self = next;
        self.run_timers();
        Ok(())
    }
}
