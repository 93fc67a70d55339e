//! The timer table (ring timeouts, step relaxation, maximum waits, wrap-up
//! and back-off ends, shift boundaries) and what each timer does when it
//! fires.

use std::cmp::Reverse;

use crate::config::OverflowTarget;
use crate::heap::call_score;
use crate::io::{Action, AgentState, CancelReason, ChangeReason, Event, OverflowReason};

use super::calls::Phase;
use super::index::{active_step, next_relax, push_call};
use super::time::{dur, secs_ms, Ms};
use super::{Dispatcher, NONE};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TimerKind {
    Ring { call: u32, offer: u64 },
    Relax { call: u32, seq: u64 },
    MaxWait { call: u32, seq: u64 },
    Wrap { agent: u32 },
    Backoff { agent: u32 },
    Shift { agent: u32 },
}

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
                .get(agent as usize)
                .is_some_and(|a| a.state == AgentState::WrapUp && a.wrap_until == t.at),
            TimerKind::Backoff { agent } => self
                .agents
                .get(agent as usize)
                .is_some_and(|a| a.backoff_until == t.at),
            TimerKind::Shift { agent } => self
                .agents
                .get(agent as usize)
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
                self.agents[agent as usize].idle_since = self.now;
                self.set_state(agent, AgentState::Available, ChangeReason::WrapUpEnded);
            }
            TimerKind::Backoff { agent } => {
                self.agents[agent as usize].backoff_until = Ms::MIN;
                self.refresh_agent(agent);
            }
            TimerKind::Shift { agent } => {
                let was = self.agents[agent as usize].in_shift;
                self.init_shift(agent, Some(was));
                let a = &mut self.agents[agent as usize];
                if a.in_shift && !was {
                    a.idle_since = self.now;
                }
                self.refresh_agent(agent);
            }
        }
    }

    pub(super) fn on_ring_timeout(&mut self, si: u32) {
        let Some(c) = self.call_ref(si) else { return };
        let (call, ai, pi) = (c.id, c.agent, c.practice);
        if ai == NONE {
            return;
        }
        let max_strikes = self
            .practices
            .get(pi as usize)
            .map_or(self.settings.max_no_answer_strikes, |p| p.max_strikes);
        let a = &mut self.agents[ai as usize];
        a.strikes += 1;
        a.call = NONE;
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
            let a = &mut self.agents[ai as usize];
            a.strikes = 0;
            a.pause_reason = Some(self.no_answer.clone());
            self.set_state(ai, AgentState::Paused, ChangeReason::NoAnswer);
        } else {
            let until = self.now + secs_ms(self.settings.rona_backoff_secs);
            self.back_off(ai, until);
            self.set_state(ai, AgentState::Available, ChangeReason::OfferEnded);
        }
        self.requeue(si);
    }

    pub(super) fn on_relax(&mut self, si: u32) {
        let now = self.now;
        let Some(c) = self.call_ref(si) else { return };
        let r = c.route as usize;
        let route = &self.routes[r];
        let old = c.step as usize;
        let step = (active_step(route, now - c.joined) as usize).max(old);
        let relax = next_relax(route, step as u32, c.joined);
        let (seq, phase, gen) = (c.seq, c.phase, self.slots[si as usize].gen);
        let score = call_score(c.priority, c.joined, c.seq);
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

    pub(super) fn on_max_wait(&mut self, si: u32) {
        let now = self.now;
        let Some(c) = self.call_mut(si) else { return };
        c.max_wait_at = None;
        let (pi, phase, call, joined) = (c.practice, c.phase, c.id, c.joined);
        let Some(p) = self.practices.get(pi as usize) else {
            return;
        };
        let target = p.overflow.clone();
        match (&target, p.overflow_pool) {
            (OverflowTarget::Pool(pool), Some(_)) => {
                let pool = pool.clone();
                let route = self.call_ref(si).map(|c| c.route);
                let og = route.and_then(|r| self.routes[r as usize].overflow);
                if let Some(c) = self.call_mut(si) {
                    c.retargeted = true;
                }
                self.emit(Event::Retargeted {
                    call,
                    pool,
                    wait: dur(now - joined),
                });
                if phase == Phase::Waiting {
                    if let Some(g) = og {
                        let gen = self.slots[si as usize].gen;
                        if let Some(c) = self.call_ref(si) {
                            let score = call_score(c.priority, c.joined, c.seq);
                            push_call(&mut self.groups, &self.slots, g, score, si, gen);
                        }
                    }
                    self.dispatch_call(si);
                }
            }
            _ => {
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
}
