//! Call runtime state, call slots, and the call inputs: arrival (with its
//! join time: see `CallArrival::joined_at`; at the head of the queue:
//! `CallArrival::head`; for one agent or pool only: `CallArrival::target`),
//! abandon, answer, failed offer, end (with wrap-up, or released without),
//! priority change.
//!
//! A call lives in a [`Slot`] from arrival until it leaves the ACD (answered
//! and ended, abandoned, overflowed). Slots are reused; each reuse, and each
//! time a waiting call leaves the queue, bumps the slot generation so that
//! heap entries and timers naming the slot go stale.

use crate::error::AcdError;
use crate::heap::{call_score, head_call_score};
use crate::ids::{AgentId, CallId};
use crate::io::{
    AbandonPhase, Action, AgentState, ArrivalTarget, CallArrival, CancelReason, ChangeReason,
    Event, OfferFailure,
};

use super::idx::{AgentIdx, PracticeIdx, ReqIdx, RouteIdx, SlotIdx};
use super::index::{active_step, next_relax, normalize_skills, ReqKey, Target};
use super::time::{dur, dur_ms, ms_of, Ms};
use super::timers::TimerKind;
use super::Dispatcher;

/// How far back a `CallArrival::joined_at` may go (about 73 million years):
/// only a guard against overflow in `now - joined`, never reached by a real
/// join time.
const MAX_BACKDATE: Ms = Ms::MAX / 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Waiting,
    Ringing,
    Connected,
}

impl Phase {
    pub(super) fn name(self) -> &'static str {
        match self {
            Phase::Waiting => "waiting",
            Phase::Ringing => "ringing",
            Phase::Connected => "connected",
        }
    }
}

/// One call known to the dispatcher.
#[derive(Debug, Clone)]
pub(super) struct CallRt {
    pub(super) id: CallId,
    /// Arrival sequence number (tie-break, timer liveness).
    pub(super) seq: u64,
    /// `None` only for a connected call whose practice a reconfiguration
    /// removed.
    pub(super) practice: Option<PracticeIdx>,
    pub(super) req: ReqIdx,
    /// The route of (practice, req), or of (practice, req, target) for a
    /// transferred call (`Dispatcher::target_route`).
    pub(super) route: RouteIdx,
    /// Highest routing step reached.
    pub(super) step: u32,
    /// Retargeted to the overflow pool (its group is active).
    pub(super) retargeted: bool,
    pub(super) priority: i32,
    /// When the caller joined the queue (the arrival, or the earlier join
    /// time of a re-arrival, `CallArrival::joined_at`): queue order, step
    /// relaxation and reported waits.
    pub(super) joined: Ms,
    /// When the call arrived at the dispatcher (at or after `joined`): the
    /// maximum wait runs from here.
    pub(super) arrived: Ms,
    pub(super) phase: Phase,
    /// The agent ringing (ringing) or talking (connected).
    pub(super) agent: Option<AgentIdx>,
    pub(super) next_relax: Option<Ms>,
    pub(super) max_wait_at: Option<Ms>,
    /// A callback request: never overflows out at its maximum wait.
    pub(super) callback: bool,
    /// At the head of the queue (`CallArrival::head`): scored above every
    /// priority ([`CallRt::score`]).
    pub(super) head: bool,
    /// Whom the call was transferred to (`CallArrival::target`); its route
    /// is then the target's. Ids, not indices: a reconfiguration resolves
    /// them again (or drops a target that disappeared).
    pub(super) target: Option<ArrivalTarget>,
    /// The maximum wait passed while ringing: overflow if unanswered.
    pub(super) overflow_pending: bool,
    pub(super) ring_deadline: Ms,
    pub(super) offer_seq: u64,
    pub(super) answered_at: Ms,
    pub(super) wrap_ms: Ms,
}

impl CallRt {
    /// The call's place in the queue (higher first): the head band for a
    /// head call (first come, first served), else priority, join time and
    /// arrival sequence.
    #[inline]
    pub(super) fn score(&self) -> u128 {
        if self.head {
            head_call_score(self.arrived, self.seq)
        } else {
            call_score(self.priority, self.joined, self.seq)
        }
    }
}

/// A call slot: the call, if any, and its generation.
#[derive(Debug, Clone, Default)]
pub(super) struct Slot {
    pub(super) gen: u32,
    pub(super) call: Option<CallRt>,
}

impl Dispatcher {
    pub(super) fn call_idx(&self, id: CallId) -> Result<SlotIdx, AcdError> {
        self.call_by_id
            .get(&id)
            .copied()
            .ok_or(AcdError::UnknownCall(id))
    }

    pub(super) fn call_ref(&self, si: SlotIdx) -> Option<&CallRt> {
        self.slots.get(si).and_then(|s| s.call.as_ref())
    }

    pub(super) fn call_mut(&mut self, si: SlotIdx) -> Option<&mut CallRt> {
        self.slots.get_mut(si).and_then(|s| s.call.as_mut())
    }

    pub(super) fn alloc_slot(&mut self, c: CallRt) -> SlotIdx {
        match self.free_slots.pop() {
            Some(i) => {
                let s = &mut self.slots[i];
                s.gen = s.gen.wrapping_add(1);
                s.call = Some(c);
                i
            }
            None => self.slots.push(Slot {
                gen: 0,
                call: Some(c),
            }),
        }
    }

    /// Removes a waiting/ringing call from its practice list and frees it.
    pub(super) fn free_call(&mut self, si: SlotIdx) -> Option<CallRt> {
        let slot = self.slots.get_mut(si)?;
        let c = slot.call.take()?;
        slot.gen = slot.gen.wrapping_add(1);
        self.free_slots.push(si);
        self.call_by_id.remove(&c.id);
        self.unlist_call(c.practice, si);
        Some(c)
    }

    /// Takes a call out of its practice's list of waiting and ringing calls.
    fn unlist_call(&mut self, practice: Option<PracticeIdx>, si: SlotIdx) {
        if let Some(p) = practice.and_then(|p| self.practices.get_mut(p)) {
            if let Some(pos) = p.calls.iter().position(|&x| x == si) {
                p.calls.swap_remove(pos);
            }
        }
    }

    /// 1-based position of a waiting or ringing call in its practice queue
    /// (0 once connected).
    pub(super) fn position(&self, si: SlotIdx) -> u32 {
        let Some(c) = self.call_ref(si) else { return 0 };
        if c.phase == Phase::Connected {
            return 0;
        }
        let score = c.score();
        let Some(p) = c.practice.and_then(|p| self.practices.get(p)) else {
            return 0;
        };
        1 + p
            .calls
            .iter()
            .filter_map(|&o| self.call_ref(o))
            .filter(|o| o.score() > score)
            .count() as u32
    }

    pub(super) fn on_arrival(&mut self, a: CallArrival) -> Result<(), AcdError> {
        let pi = *self
            .practice_by_id
            .get(&a.practice)
            .ok_or_else(|| AcdError::UnknownPractice(a.practice.clone()))?;
        if self.call_by_id.contains_key(&a.call) {
            return Err(AcdError::DuplicateCall(a.call));
        }
        let target = a
            .target
            .as_ref()
            .map(|t| self.resolve_target(t))
            .transpose()?;
        if !self.practice_open(pi) {
            self.emit_action(Action::Closed {
                call: a.call,
                practice: a.practice.clone(),
            });
            self.emit(Event::Closed {
                call: a.call,
                practice: a.practice,
            });
            return Ok(());
        }
        let req = self.arrival_req(&a);
        let priority = a.priority.unwrap_or(self.practices[pi].priority);
        let joined = self.join_time(&a);
        let si = self.queue_call(a.call, pi, req, priority, joined, target);
        if let Some(c) = self.call_mut(si) {
            c.callback = a.callback;
            c.head = a.head;
            c.target = a.target;
        }
        self.emit(Event::CallQueued {
            call: a.call,
            practice: a.practice,
            priority,
            rejoined: a.joined_at.is_some(),
        });
        self.index_call(si);
        self.dispatch_call(si);
        Ok(())
    }

    /// The target of a transferred call in this configuration: a known
    /// agent (not one a reconfiguration removed, finishing a call) or a
    /// known pool.
    pub(super) fn resolve_target(&self, t: &ArrivalTarget) -> Result<Target, AcdError> {
        match t {
            ArrivalTarget::Agent(id) => self
                .agent_by_id
                .get(id)
                .copied()
                .filter(|&ai| !self.agents[ai].retired)
                .map(Target::Agent)
                .ok_or_else(|| AcdError::UnknownAgent(id.clone())),
            ArrivalTarget::Pool(id) => self
                .pool_by_id
                .get(id)
                .copied()
                .map(Target::Pool)
                .ok_or_else(|| AcdError::UnknownPool(id.clone())),
        }
    }

    /// The interned requirement of an arriving call.
    fn arrival_req(&mut self, a: &CallArrival) -> ReqIdx {
        if a.language.is_none() && a.skills.is_empty() {
            return ReqIdx::EMPTY;
        }
        let mut skills: Vec<_> = a
            .skills
            .iter()
            .map(|s| (self.skills.intern(&s.skill), s.min_level.max(1)))
            .collect();
        normalize_skills(&mut skills);
        let key = ReqKey {
            lang: a.language.as_deref().map(|l| self.langs.intern(l)),
            skills,
        };
        self.intern_req(key)
    }

    /// The join time of an arriving call: its `joined_at` if any, clamped
    /// to now (a join time in the future) and to [`MAX_BACKDATE`] before
    /// now (an absurd one, so that wait arithmetic cannot overflow).
    fn join_time(&self, a: &CallArrival) -> Ms {
        let now = self.now;
        a.joined_at
            .map_or(now, |t| ms_of(t).max(now.saturating_sub(MAX_BACKDATE)))
            .min(now)
    }

    /// Creates a waiting call that joined at `joined` (now or earlier) and
    /// arrives now, on the practice's route for `req` (or the route of
    /// `target`), at the routing step its wait since `joined` reached,
    /// with its relax timer (from `joined`) and max-wait timer (from now);
    /// not indexed yet.
    fn queue_call(
        &mut self,
        id: CallId,
        pi: PracticeIdx,
        req: ReqIdx,
        priority: i32,
        joined: Ms,
        target: Option<Target>,
    ) -> SlotIdx {
        let route = match target {
            Some(t) => self.target_route(pi, req, t),
            None => self.route_for(pi, req),
        };
        let now = self.now;
        self.call_seq += 1;
        let r = &self.routes[route];
        let step = active_step(r, now - joined);
        let c = CallRt {
            id,
            seq: self.call_seq,
            practice: Some(pi),
            req,
            route,
            step,
            retargeted: false,
            priority,
            joined,
            arrived: now,
            phase: Phase::Waiting,
            agent: None,
            next_relax: next_relax(r, step, joined),
            max_wait_at: self.practices[pi].max_wait_ms.map(|m| now + m),
            callback: false,
            head: false,
            target: None,
            overflow_pending: false,
            ring_deadline: 0,
            offer_seq: 0,
            answered_at: 0,
            wrap_ms: 0,
        };
        let (relax, max_wait, seq) = (c.next_relax, c.max_wait_at, c.seq);
        let si = self.alloc_slot(c);
        self.call_by_id.insert(id, si);
        self.practices[pi].calls.push(si);
        if let Some(t) = relax {
            self.push_timer(t, TimerKind::Relax { call: si, seq });
        }
        if let Some(t) = max_wait {
            self.push_timer(t, TimerKind::MaxWait { call: si, seq });
        }
        si
    }

    /// The call's caller asked to be called back: it stays where it is, as
    /// a callback request.
    pub(super) fn on_callback_requested(&mut self, call: CallId) -> Result<(), AcdError> {
        let si = self.call_idx(call)?;
        match self.call_mut(si) {
            Some(c) if c.phase != Phase::Connected => {
                c.callback = true;
                self.emit(Event::CallbackKept { call });
                Ok(())
            }
            Some(_) => Err(AcdError::WrongCallPhase {
                call,
                actual: "connected",
                expected: "waiting or ringing",
            }),
            None => Err(AcdError::UnknownCall(call)),
        }
    }

    pub(super) fn on_abandon(&mut self, call: CallId) -> Result<(), AcdError> {
        let si = self.call_idx(call)?;
        let Some(c) = self.call_ref(si) else {
            return Err(AcdError::UnknownCall(call));
        };
        let phase = match c.phase {
            Phase::Waiting => AbandonPhase::Queue,
            Phase::Ringing => AbandonPhase::Ringing,
            Phase::Connected => {
                return Err(AcdError::WrongCallPhase {
                    call,
                    actual: "connected",
                    expected: "waiting or ringing (use CallEnded)",
                })
            }
        };
        let position = self.position(si);
        let joined = c.joined;
        let ringing = c.agent.filter(|_| phase == AbandonPhase::Ringing);
        if let Some(ai) = ringing {
            let agent = self.agents[ai].id.clone();
            self.emit_action(Action::CancelOffer {
                call,
                agent,
                reason: CancelReason::CallerHangup,
            });
        }
        self.unindex_call(si);
        self.free_call(si);
        self.emit(Event::Abandoned {
            call,
            phase,
            wait: dur(self.now - joined),
            position,
        });
        if let Some(ai) = ringing {
            self.agents[ai].call = None;
            self.set_state(ai, AgentState::Available, ChangeReason::OfferEnded);
        }
        Ok(())
    }

    /// The slot and agent of the offer of `call` to `agent`, if it rings.
    pub(super) fn ringing_pair(
        &self,
        call: CallId,
        agent: &AgentId,
    ) -> Result<(SlotIdx, AgentIdx), AcdError> {
        let si = self.call_idx(call)?;
        let ai = self.agent_idx(agent)?;
        match self.call_ref(si) {
            Some(c) if c.phase == Phase::Ringing && c.agent == Some(ai) => Ok((si, ai)),
            _ => Err(AcdError::NotOffered {
                call,
                agent: agent.clone(),
            }),
        }
    }

    pub(super) fn on_answer(&mut self, call: CallId, agent: &AgentId) -> Result<(), AcdError> {
        let (si, ai) = self.ringing_pair(call, agent)?;
        let now = self.now;
        let (joined, pi) = {
            let Some(c) = self.call_mut(si) else {
                return Err(AcdError::UnknownCall(call));
            };
            c.phase = Phase::Connected;
            c.answered_at = now;
            c.next_relax = None;
            c.max_wait_at = None;
            c.overflow_pending = false;
            (c.joined, c.practice)
        };
        let wrap = self.agents[ai].wrap_override.unwrap_or_else(|| {
            pi.and_then(|p| self.practices.get(p))
                .map_or(dur_ms(self.settings.wrap_up), |p| p.wrap_ms)
        });
        if let Some(c) = self.call_mut(si) {
            c.wrap_ms = wrap;
        }
        self.unlist_call(pi, si);
        self.agents[ai].strikes = 0;
        self.emit(Event::Answered {
            call,
            agent: agent.clone(),
            wait: dur(now - joined),
        });
        self.set_state(ai, AgentState::OnCall, ChangeReason::Answer);
        Ok(())
    }

    pub(super) fn on_offer_failed(
        &mut self,
        call: CallId,
        agent: &AgentId,
        reason: OfferFailure,
    ) -> Result<(), AcdError> {
        let (si, ai) = self.ringing_pair(call, agent)?;
        self.emit(Event::OfferFailed {
            call,
            agent: agent.clone(),
            reason,
        });
        self.agents[ai].call = None;
        let until = self.now + dur_ms(self.settings.busy_backoff);
        self.back_off(ai, until);
        self.set_state(ai, AgentState::Available, ChangeReason::OfferEnded);
        self.requeue(si);
        Ok(())
    }

    /// An answered call ended: `CallCompleted`, then the agent goes to
    /// wrap-up (`wrap_up`) or is free at once (`!wrap_up`: `CallReleased`).
    pub(super) fn on_call_ended(&mut self, call: CallId, wrap_up: bool) -> Result<(), AcdError> {
        let si = self.call_idx(call)?;
        let Some(c) = self.call_ref(si) else {
            return Err(AcdError::UnknownCall(call));
        };
        if c.phase != Phase::Connected {
            return Err(AcdError::WrongCallPhase {
                call,
                actual: c.phase.name(),
                expected: "connected",
            });
        }
        let (agent, pi, answered, wrap) = (c.agent, c.practice, c.answered_at, c.wrap_ms);
        let talk = self.now - answered;
        let alpha = self.settings.aht_alpha;
        // A released call (a callback try the patient did not answer) was
        // no conversation: it would pull the average handle time, and so
        // the waits announced, towards zero.
        if let Some(p) = pi
            .and_then(|p| self.practices.get_mut(p))
            .filter(|_| wrap_up)
        {
            p.aht_ms += alpha * (talk as f64 - p.aht_ms);
        }
        let _ = self.free_call(si);
        let Some(ai) = agent else {
            return Ok(());
        };
        let id = self.agents[ai].id.clone();
        self.emit(Event::CallCompleted {
            call,
            agent: id,
            talk: dur(talk),
        });
        self.agents[ai].call = None;
        self.after_call(ai, if wrap_up { wrap } else { 0 });
        Ok(())
    }

    /// The agent's next state once its call ended: removed (retired),
    /// logged out or paused (pending), wrap-up, or available.
    fn after_call(&mut self, ai: AgentIdx, wrap: Ms) {
        let now = self.now;
        let a = &mut self.agents[ai];
        if a.retired {
            let from = std::mem::replace(&mut a.state, AgentState::LoggedOut);
            let id = a.id.clone();
            self.emit(Event::AgentStateChanged {
                agent: id.clone(),
                from,
                to: AgentState::LoggedOut,
                reason: ChangeReason::Removed,
            });
            self.emit(Event::AgentRemoved { agent: id.clone() });
            self.agent_by_id.remove(&id);
        } else if std::mem::take(&mut a.pending_logout) {
            a.pending_pause = None;
            self.set_state(ai, AgentState::LoggedOut, ChangeReason::Logout);
        } else if let Some(r) = a.pending_pause.take() {
            a.pause_reason = Some(r.clone());
            self.set_state(ai, AgentState::Paused, ChangeReason::Pause(r));
        } else if wrap > 0 {
            a.wrap_until = now + wrap;
            self.push_timer(now + wrap, TimerKind::Wrap { agent: ai });
            self.set_state(ai, AgentState::WrapUp, ChangeReason::CallEnded);
        } else {
            a.idle_since = now;
            self.set_state(ai, AgentState::Available, ChangeReason::CallEnded);
        }
    }

    pub(super) fn on_set_priority(&mut self, call: CallId, priority: i32) -> Result<(), AcdError> {
        let si = self.call_idx(call)?;
        let Some(c) = self.call_ref(si) else {
            return Err(AcdError::UnknownCall(call));
        };
        match c.phase {
            Phase::Connected => Err(AcdError::WrongCallPhase {
                call,
                actual: "connected",
                expected: "waiting or ringing",
            }),
            Phase::Ringing => {
                if let Some(c) = self.call_mut(si) {
                    c.priority = priority;
                }
                Ok(())
            }
            Phase::Waiting => {
                self.unindex_call(si);
                if let Some(c) = self.call_mut(si) {
                    c.priority = priority;
                }
                self.index_call(si);
                Ok(())
            }
        }
    }
}
