//! Call runtime state, call slots, and the call inputs: arrival, abandon,
//! answer, failed offer, end, priority change.

use crate::error::AcdError;
use crate::heap::call_score;
use crate::ids::{AgentId, CallId};
use crate::io::{
    AbandonPhase, Action, AgentState, CallArrival, CancelReason, ChangeReason, Event, OfferFailure,
};

use super::index::{active_step, next_relax, normalize_skills, ReqKey};
use super::time::{dur, secs_ms, Ms};
use super::timers::TimerKind;
use super::{Dispatcher, NONE};

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

#[derive(Debug, Clone)]
pub(super) struct CallRt {
    pub(super) id: CallId,
    pub(super) seq: u64,
    pub(super) practice: u32,
    pub(super) req: u32,
    pub(super) route: u32,
    pub(super) step: u32,
    pub(super) retargeted: bool,
    pub(super) priority: i32,
    pub(super) joined: Ms,
    pub(super) phase: Phase,
    pub(super) agent: u32,
    pub(super) next_relax: Option<Ms>,
    pub(super) max_wait_at: Option<Ms>,
    pub(super) overflow_pending: bool,
    pub(super) ring_deadline: Ms,
    pub(super) offer_seq: u64,
    pub(super) answered_at: Ms,
    pub(super) wrap_ms: Ms,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Slot {
    pub(super) gen: u32,
    pub(super) call: Option<CallRt>,
}

impl Dispatcher {
    pub(super) fn call_idx(&self, id: CallId) -> Result<u32, AcdError> {
        self.call_by_id
            .get(&id)
            .copied()
            .ok_or(AcdError::UnknownCall(id))
    }

    pub(super) fn call_ref(&self, si: u32) -> Option<&CallRt> {
        self.slots.get(si as usize).and_then(|s| s.call.as_ref())
    }

    pub(super) fn call_mut(&mut self, si: u32) -> Option<&mut CallRt> {
        self.slots
            .get_mut(si as usize)
            .and_then(|s| s.call.as_mut())
    }

    pub(super) fn alloc_slot(&mut self, c: CallRt) -> u32 {
        match self.free_slots.pop() {
            Some(i) => {
                let s = &mut self.slots[i as usize];
                s.gen = s.gen.wrapping_add(1);
                s.call = Some(c);
                i
            }
            None => {
                self.slots.push(Slot {
                    gen: 0,
                    call: Some(c),
                });
                (self.slots.len() - 1) as u32
            }
        }
    }

    /// Removes a waiting/ringing call from its practice list and frees it.
    pub(super) fn free_call(&mut self, si: u32) -> Option<CallRt> {
        let slot = self.slots.get_mut(si as usize)?;
        let c = slot.call.take()?;
        slot.gen = slot.gen.wrapping_add(1);
        self.free_slots.push(si);
        self.call_by_id.remove(&c.id);
        if let Some(p) = self.practices.get_mut(c.practice as usize) {
            if let Some(pos) = p.calls.iter().position(|&x| x == si) {
                p.calls.swap_remove(pos);
            }
        }
        Some(c)
    }

    pub(super) fn position(&self, si: u32) -> u32 {
        let Some(c) = self.call_ref(si) else { return 0 };
        if c.phase == Phase::Connected {
            return 0;
        }
        let score = call_score(c.priority, c.joined, c.seq);
        let Some(p) = self.practices.get(c.practice as usize) else {
            return 0;
        };
        1 + p
            .calls
            .iter()
            .filter_map(|&o| self.call_ref(o))
            .filter(|o| call_score(o.priority, o.joined, o.seq) > score)
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
        let req = if a.language.is_none() && a.skills.is_empty() {
            0
        } else {
            let mut skills: Vec<(u32, u8)> = a
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
        };
        let route = self.route_for(pi, req);
        let now = self.now;
        self.call_seq += 1;
        let p = &self.practices[pi as usize];
        let priority = a.priority.unwrap_or(p.priority);
        let r = &self.routes[route as usize];
        let step = active_step(r, 0);
        let c = CallRt {
            id: a.call,
            seq: self.call_seq,
            practice: pi,
            req,
            route,
            step,
            retargeted: false,
            priority,
            joined: now,
            phase: Phase::Waiting,
            agent: NONE,
            next_relax: next_relax(r, step, now),
            max_wait_at: p.max_wait_ms.map(|m| now + m),
            overflow_pending: false,
            ring_deadline: 0,
            offer_seq: 0,
            answered_at: 0,
            wrap_ms: 0,
        };
        let (relax, max_wait, seq) = (c.next_relax, c.max_wait_at, c.seq);
        let si = self.alloc_slot(c);
        self.call_by_id.insert(a.call, si);
        self.practices[pi as usize].calls.push(si);
        if let Some(t) = relax {
            self.push_timer(t, TimerKind::Relax { call: si, seq });
        }
        if let Some(t) = max_wait {
            self.push_timer(t, TimerKind::MaxWait { call: si, seq });
        }
        self.emit(Event::CallQueued {
            call: a.call,
            practice: a.practice,
            priority,
        });
        self.index_call(si);
        self.dispatch_call(si);
        Ok(())
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
        let (joined, ai) = (c.joined, c.agent);
        if phase == AbandonPhase::Ringing && ai != NONE {
            let agent = self.agents[ai as usize].id.clone();
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
        if phase == AbandonPhase::Ringing && ai != NONE {
            self.agents[ai as usize].call = NONE;
            self.set_state(ai, AgentState::Available, ChangeReason::OfferEnded);
        }
        Ok(())
    }

    pub(super) fn ringing_pair(
        &self,
        call: CallId,
        agent: &AgentId,
    ) -> Result<(u32, u32), AcdError> {
        let si = self.call_idx(call)?;
        let ai = self.agent_idx(agent)?;
        match self.call_ref(si) {
            Some(c) if c.phase == Phase::Ringing && c.agent == ai => Ok((si, ai)),
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
        let wrap = self.agents[ai as usize].wrap_override.unwrap_or_else(|| {
            self.practices
                .get(pi as usize)
                .map_or(secs_ms(self.settings.wrap_up_secs), |p| p.wrap_ms)
        });
        if let Some(c) = self.call_mut(si) {
            c.wrap_ms = wrap;
        }
        if let Some(p) = self.practices.get_mut(pi as usize) {
            if let Some(pos) = p.calls.iter().position(|&x| x == si) {
                p.calls.swap_remove(pos);
            }
        }
        self.agents[ai as usize].strikes = 0;
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
        self.agents[ai as usize].call = NONE;
        let until = self.now + secs_ms(self.settings.busy_backoff_secs);
        self.back_off(ai, until);
        self.set_state(ai, AgentState::Available, ChangeReason::OfferEnded);
        self.requeue(si);
        Ok(())
    }

    pub(super) fn on_call_ended(&mut self, call: CallId) -> Result<(), AcdError> {
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
        let (ai, pi, answered, wrap) = (c.agent, c.practice, c.answered_at, c.wrap_ms);
        let now = self.now;
        let talk = now - answered;
        let alpha = self.settings.aht_alpha;
        if let Some(p) = self.practices.get_mut(pi as usize) {
            p.aht_ms += alpha * (talk as f64 - p.aht_ms);
        }
        let _ = self.free_call(si);
        if ai == NONE {
            return Ok(());
        }
        let agent = self.agents[ai as usize].id.clone();
        self.emit(Event::CallCompleted {
            call,
            agent,
            talk: dur(talk),
        });
        let a = &mut self.agents[ai as usize];
        a.call = NONE;
        if a.retired {
            let from = a.state;
            let id = a.id.clone();
            a.state = AgentState::LoggedOut;
            self.emit(Event::AgentStateChanged {
                agent: id.clone(),
                from,
                to: AgentState::LoggedOut,
                reason: ChangeReason::Removed,
            });
            self.emit(Event::AgentRemoved { agent: id.clone() });
            self.agent_by_id.remove(&id);
            return Ok(());
        }
        if std::mem::take(&mut a.pending_logout) {
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
        Ok(())
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
