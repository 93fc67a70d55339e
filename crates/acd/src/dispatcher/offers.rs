//! Matching and offering: an agent takes the best waiting call, a call goes
//! to the best dispatchable agent; offers, withdrawals, re-queueing and
//! overflow out of the ACD.

use crate::config::OverflowTarget;
use crate::heap::Entry;
use crate::io::{Action, AgentState, CancelReason, ChangeReason, Event, OverflowReason};

use super::calls::Phase;
use super::index::{agent_live, call_live};
use super::time::{dur, secs_ms};
use super::timers::TimerKind;
use super::{Dispatcher, NONE};

impl Dispatcher {
    /// Gives the dispatchable agent the best waiting call of its groups.
    pub(super) fn dispatch_agent(&mut self, ai: u32) {
        let mut best: Option<Entry> = None;
        let slots = &self.slots;
        for &g in &self.agents[ai as usize].groups {
            if let Some(e) = self.groups[g as usize]
                .calls
                .peek_live(|e| call_live(slots, e))
            {
                if best.is_none_or(|b| e.score > b.score) {
                    best = Some(e);
                }
            }
        }
        if let Some(b) = best {
            self.offer(b.idx, ai);
        }
    }

    /// Offers the waiting call to the best dispatchable agent of its active
    /// groups, if any.
    pub(super) fn dispatch_call(&mut self, si: u32) {
        let Some(c) = self.slots.get(si as usize).and_then(|s| s.call.as_ref()) else {
            return;
        };
        if c.phase != Phase::Waiting {
            return;
        }
        let route = &self.routes[c.route as usize];
        let n = (c.step as usize + 1).min(route.steps.len());
        let overflow = if c.retargeted { route.overflow } else { None };
        let agents = &self.agents;
        let mut best: Option<Entry> = None;
        for g in route.steps[..n].iter().map(|s| s.1).chain(overflow) {
            if let Some(e) = self.groups[g as usize]
                .agents
                .peek_live(|e| agent_live(agents, e))
            {
                if best.is_none_or(|b| e.score > b.score) {
                    best = Some(e);
                }
            }
        }
        if let Some(b) = best {
            self.offer(si, b.idx);
        }
    }

    pub(super) fn offer(&mut self, si: u32, ai: u32) {
        self.unindex_call(si);
        self.offer_seq += 1;
        let offer = self.offer_seq;
        let now = self.now;
        let Some(c) = self
            .slots
            .get_mut(si as usize)
            .and_then(|s| s.call.as_mut())
        else {
            return;
        };
        let ring_ms = self
            .practices
            .get(c.practice as usize)
            .map_or(secs_ms(self.settings.ring_timeout_secs), |p| p.ring_ms);
        c.phase = Phase::Ringing;
        c.agent = ai;
        c.offer_seq = offer;
        c.ring_deadline = now + ring_ms;
        let call = c.id;
        self.push_timer(now + ring_ms, TimerKind::Ring { call: si, offer });
        let a = &mut self.agents[ai as usize];
        a.call = si;
        a.last_offer = offer;
        let agent = a.id.clone();
        self.emit_action(Action::Offer {
            call,
            agent: agent.clone(),
            ring_timeout: dur(ring_ms),
        });
        self.emit(Event::Offered { call, agent });
        self.set_state(ai, AgentState::Offered, ChangeReason::Offer);
    }

    /// Withdraws the agent's ringing offer (action + event); returns the
    /// call slot to re-queue once the agent's state is settled.
    pub(super) fn withdraw_offer(&mut self, ai: u32, reason: CancelReason) -> Option<u32> {
        let a = &mut self.agents[ai as usize];
        if a.state != AgentState::Offered || a.call == NONE {
            return None;
        }
        let si = std::mem::replace(&mut a.call, NONE);
        let agent = a.id.clone();
        let call = self.call_ref(si)?.id;
        self.emit_action(Action::CancelOffer {
            call,
            agent: agent.clone(),
            reason,
        });
        self.emit(Event::OfferWithdrawn {
            call,
            agent,
            reason,
        });
        Some(si)
    }

    /// After an offer ended without an answer: the call goes back to the
    /// queue with its place (or overflows if its maximum wait passed while
    /// it rang).
    pub(super) fn requeue(&mut self, si: u32) {
        let Some(c) = self.call_mut(si) else { return };
        c.agent = NONE;
        if c.overflow_pending {
            let pi = c.practice;
            let target = self
                .practices
                .get(pi as usize)
                .map_or(OverflowTarget::Voicemail, |p| p.overflow.clone());
            self.overflow_out(si, target, OverflowReason::MaxWait);
            return;
        }
        c.phase = Phase::Waiting;
        // The slot generation changed when the call left the queue, so old
        // heap entries are stale; push fresh ones.
        if let Some(s) = self.slots.get_mut(si as usize) {
            s.gen = s.gen.wrapping_add(1);
        }
        self.index_call(si);
        self.dispatch_call(si);
    }

    /// Takes the call out of the ACD to a non-pool target.
    pub(super) fn overflow_out(&mut self, si: u32, target: OverflowTarget, reason: OverflowReason) {
        self.unindex_call(si);
        let Some(c) = self.call_ref(si) else { return };
        if c.phase == Phase::Ringing && c.agent != NONE {
            let (call, ai) = (c.id, c.agent);
            let agent = self.agents[ai as usize].id.clone();
            self.emit_action(Action::CancelOffer {
                call,
                agent,
                reason: CancelReason::Overflow,
            });
            self.agents[ai as usize].call = NONE;
            self.set_state(ai, AgentState::Available, ChangeReason::OfferEnded);
        }
        let Some(c) = self.free_call(si) else { return };
        self.emit_action(Action::Overflow {
            call: c.id,
            target: target.clone(),
        });
        self.emit(Event::Overflowed {
            call: c.id,
            target,
            wait: dur(self.now - c.joined),
            reason,
        });
    }
}
