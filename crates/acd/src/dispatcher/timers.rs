//! The timer table (ring timeouts, step relaxation, maximum waits, wrap-up
//! and back-off ends, shift boundaries) and what each timer does when it
//! fires.
//!
//! Timers are never removed: a timer is *live* while the state it was set
//! for still holds (same offer, same relax instant, ...), and a dead timer
//! is skipped when it surfaces. Every timer is on the engine timeline
//! (`Dispatcher::now`); shift timers are placed there from the wall clock
//! by `calendar.rs`.

use std::cmp::Reverse;

use crate::config::OverflowTarget;
use crate::ids::PoolId;
use crate::io::{Action, AgentState, CancelReason, ChangeReason, Event, OverflowReason};

use super::calls::Phase;
use super::idx::{AgentIdx, SlotIdx};
use super::index::{active_step, next_relax, push_call};
use super::time::{dur, dur_ms, Ms};
use super::Dispatcher;

/// What a timer is for; slot and agent indices are checked for liveness
/// before the timer acts (`timer_live`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TimerKind {
    Ring { call: SlotIdx, offer: u64 },
    Relax { call: SlotIdx, seq: u64 },
    MaxWait { call: SlotIdx, seq: u64 },
    Wrap { agent: AgentIdx },
    Backoff { agent: AgentIdx },
    Shift { agent: AgentIdx },
}

/// A timer: due `at`, in push `order` among timers due at the same time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Timer {
    pub(super) at: Ms,
    pub(super) order: u64,
    pub(super) kind: TimerKind,
}

impl Dispatcher {
    pub(super) fn push_timer(&mut self, at: Ms, kind: TimerKind) {
        self.timer_order += 1;
        self.timers.push(Reverse(Timer {
            at,
            order: self.timer_order,
            kind,
        }));
    }

    /// Fires every live timer due at or before `now`, in order.
    pub(super) fn run_timers(&mut self) {
        while let Some(Reverse(t)) = self.timers.peek().copied() {
            if t.at > self.now {
                break;
            }
            self.timers.pop();
            self.fire(t);
        }
        // Keep the top live so poll_timeout is exact.
        while let Some(Reverse(t)) = self.timers.peek().copied() {
            if self.timer_live(&t) {
                break;
            }
            self.timers.pop();
        }
    }

    /// Whether the state the timer was set for still holds.
    pub(super) fn timer_live(&self, t: &Timer) -> bool {
        match t.kind {
            TimerKind::Ring { call, offer } => self
                .call_ref(call)
                .is_some_and(|c| c.phase == Phase::Ringing && c.offer_seq == offer),
            TimerKind::Relax { call, seq } => self
                .call_ref(call)
                .is_some_and(|c| c.seq == seq && c.next_relax == Some(t.at)),
            TimerKind::MaxWait { call, seq } => self
                .call_ref(call)
                .is_some_and(|c| c.seq == seq && c.max_wait_at == Some(t.at)),
            TimerKind::Wrap { agent } => self
                .agents
                .get(agent)
                .is_some_and(|a| a.state == AgentState::WrapUp && a.wrap_until == t.at),
            TimerKind::Backoff { agent } => self
                .agents
                .get(agent)
                .is_some_and(|a| a.backoff_until == t.at),
            TimerKind::Shift { agent } => self
                .agents
                .get(agent)
                .is_some_and(|a| a.shift_next == Some(t.at)),
        }
    }

    pub(super) fn fire(&mut self, t: Timer) {
        if !self.timer_live(&t) {
            return;
        }
        match t.kind {
            TimerKind::Ring { call, .. } => self.on_ring_timeout(call),
            TimerKind::Relax { call, .. } => self.on_relax(call),
            TimerKind::MaxWait { call, .. } => self.on_max_wait(call),
            TimerKind::Wrap { agent } => {
                self.agents[agent].idle_since = self.now;
                self.set_state(agent, AgentState::Available, ChangeReason::WrapUpEnded);
            }
            TimerKind::Backoff { agent } => {
                self.agents[agent].backoff_until = Ms::MIN;
                self.refresh_agent(agent);
            }
            TimerKind::Shift { agent } => self.on_shift_boundary(agent),
        }
    }

    /// Ring-no-answer: strike, then auto-pause or back-off; the call goes
    /// back to the queue.
    fn on_ring_timeout(&mut self, si: SlotIdx) {
        let Some(c) = self.call_ref(si) else { return };
        let (call, pi) = (c.id, c.practice);
        let Some(ai) = c.agent else {
            return;
        };
        let max_strikes = self
            .practices
            .get_opt(pi)
            .map_or(self.settings.max_no_answer_strikes, |p| p.max_strikes);
        let a = &mut self.agents[ai];
        a.strikes += 1;
        a.call = None;
        let strikes = a.strikes;
        let agent = a.id.clone();
        self.emit_action(Action::CancelOffer {
            call,
            agent: agent.clone(),
            reason: CancelReason::RingTimeout,
        });
        self.emit(Event::Rona {
            call,
            agent,
            strikes,
        });
        if strikes >= max_strikes {
            let a = &mut self.agents[ai];
            a.strikes = 0;
            a.pause_reason = Some(self.no_answer.clone());
            self.set_state(ai, AgentState::Paused, ChangeReason::NoAnswer);
        } else {
            let until = self.now + dur_ms(self.settings.rona_backoff);
            self.back_off(ai, until);
            self.set_state(ai, AgentState::Available, ChangeReason::OfferEnded);
        }
        self.requeue(si);
    }

    /// The call reaches its next routing step(s): the new groups index it.
    fn on_relax(&mut self, si: SlotIdx) {
        let now = self.now;
        let Some(c) = self.call_ref(si) else { return };
        let r = c.route;
        let route = &self.routes[r];
        let old = c.step as usize;
        let step = (active_step(route, now - c.joined) as usize).max(old);
        let relax = next_relax(route, step as u32, c.joined);
        let (seq, phase, gen) = (c.seq, c.phase, self.slots[si].gen);
        let score = c.score();
        let len = route.steps.len();
        if let Some(c) = self.call_mut(si) {
            c.step = step as u32;
            c.next_relax = relax;
        }
        if let Some(t) = relax {
            self.push_timer(t, TimerKind::Relax { call: si, seq });
        }
        if phase == Phase::Waiting {
            for i in (old + 1).min(len)..(step + 1).min(len) {
                let g = self.routes[r].steps[i].1;
                push_call(&mut self.groups, &self.slots, g, score, si, gen);
            }
            self.dispatch_call(si);
        }
    }

    /// The maximum wait: retarget to the overflow pool, or overflow out
    /// (once the offer ends if the call is ringing).
    fn on_max_wait(&mut self, si: SlotIdx) {
        let Some(c) = self.call_mut(si) else { return };
        c.max_wait_at = None;
        let (phase, pi, callback) = (c.phase, c.practice, c.callback);
        let Some(p) = self.practices.get_opt(pi) else {
            return;
        };
        let target = p.overflow.clone();
        match (target, p.overflow_pool) {
            (OverflowTarget::Pool(pool), Some(_)) => self.retarget(si, pool),
            // A callback request has nowhere better to go: it waits.
            _ if callback => {}
            (target, _) => {
                if phase == Phase::Ringing {
                    // Let the agent's phone ring out; overflow if unanswered.
                    if let Some(c) = self.call_mut(si) {
                        c.overflow_pending = true;
                    }
                } else {
                    self.overflow_out(si, target, OverflowReason::MaxWait);
                }
            }
        }
    }

    /// The call stays queued (same place) and the overflow pool's group
    /// becomes active for it.
    fn retarget(&mut self, si: SlotIdx, pool: PoolId) {
        let gen = self.slots.get(si).map_or(0, |s| s.gen);
        let Some(c) = self.call_mut(si) else { return };
        c.retargeted = true;
        let (call, joined, phase, route) = (c.id, c.joined, c.phase, c.route);
        let score = c.score();
        self.emit(Event::Retargeted {
            call,
            pool,
            wait: dur(self.now - joined),
        });
        if phase == Phase::Waiting {
            if let Some(g) = self.routes[route].overflow {
                push_call(&mut self.groups, &self.slots, g, score, si, gen);
            }
            self.dispatch_call(si);
        }
    }
}
