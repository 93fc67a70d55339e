//! Matching and offering: an agent takes the best waiting call, a call goes
//! to the best dispatchable agent; offers, withdrawals, re-queueing and
//! overflow out of the ACD.

use crate::config::OverflowTarget;
use crate::heap::Entry;
use crate::io::{Action, AgentState, CancelReason, ChangeReason, Event, OverflowReason};

use super::calls::Phase;
use super::idx::{AgentIdx, SlotIdx};
use super::index::{agent_live, call_live};
use super::time::{dur, dur_ms};
use super::timers::TimerKind;
use super::Dispatcher;

impl Dispatcher {
    /// Gives the dispatchable agent the best waiting call of its groups.
    pub(super) fn dispatch_agent(&mut self, ai: AgentIdx) {
        let mut best: Option<Entry<SlotIdx>> = None;
        let slots = &self.slots;
        for &g in &self.agents[ai].groups {
            if let Some(e) = self.groups[g].calls.peek_live(|e| call_live(slots, e)) {
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
    pub(super) fn dispatch_call(&mut self, si: SlotIdx) {
        let Some(c) = self.slots.get(si).and_then(|s| s.call.as_ref()) else {
            return;
        };
        if c.phase != Phase::Waiting {
            return;
        }
        let agents = &self.agents;
        let mut best: Option<Entry<AgentIdx>> = None;
        for g in self.routes[c.route].active_groups(c.step, c.retargeted) {
            if let Some(e) = self.groups[g].agents.peek_live(|e| agent_live(agents, e)) {
                if best.is_none_or(|b| e.score > b.score) {
                    best = Some(e);
                }
            }
        }
        if let Some(b) = best {
            self.offer(si, b.idx);
        }
    }

    pub(super) fn offer(&mut self, si: SlotIdx, ai: AgentIdx) {
        self.unindex_call(si);
        self.offer_seq += 1;
        let offer = self.offer_seq;
        let now = self.now;
        let Some(c) = self.slots.get_mut(si).and_then(|s| s.call.as_mut()) else {
            return;
        };
        let ring_ms = self
            .practices
            .get_opt(c.practice)
            .map_or(dur_ms(self.settings.ring_timeout), |p| p.ring_ms);
        c.phase = Phase::Ringing;
        c.agent = Some(ai);
        c.offer_seq = offer;
        c.ring_deadline = now + ring_ms;
        let call = c.id;
        self.push_timer(now + ring_ms, TimerKind::Ring { call: si, offer });
        let a = &mut self.agents[ai];
        a.call = Some(si);
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
    pub(super) fn withdraw_offer(&mut self, ai: AgentIdx, reason: CancelReason) -> Option<SlotIdx> {
        let a = &mut self.agents[ai];
        if a.state != AgentState::Offered {
            return None;
        }
        let si = a.call.take()?;
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
    pub(super) fn requeue(&mut self, si: SlotIdx) {
        let Some(c) = self.call_mut(si) else { return };
        c.agent = None;
        if c.overflow_pending {
            let pi = c.practice;
            let target = self
                .practices
                .get_opt(pi)
                .map_or(OverflowTarget::Voicemail, |p| p.overflow.clone());
            self.overflow_out(si, target, OverflowReason::MaxWait);
            return;
        }
        c.phase = Phase::Waiting;
        // The slot generation changed when the call left the queue, so old
        // heap entries are stale; push fresh ones.
        if let Some(s) = self.slots.get_mut(si) {
            s.gen = s.gen.wrapping_add(1);
        }
        self.index_call(si);
        self.dispatch_call(si);
    }

    /// Takes the call out of the ACD to a non-pool target.
    pub(super) fn overflow_out(
        &mut self,
        si: SlotIdx,
        target: OverflowTarget,
        reason: OverflowReason,
    ) {
        self.unindex_call(si);
        let Some(c) = self.call_ref(si) else { return };
        if let (Phase::Ringing, Some(ai)) = (c.phase, c.agent) {
            let call = c.id;
            let agent = self.agents[ai].id.clone();
            self.emit_action(Action::CancelOffer {
                call,
                agent,
                reason: CancelReason::Overflow,
            });
            self.agents[ai].call = None;
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
