//! Dispatcher events to metrics.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use permanence_acd::{
    AbandonPhase, AgentId, AgentState, CallId, Event, OverflowTarget, PracticeId,
};

use crate::practice::{OfferResult, PracticeMetrics};
use crate::{Metrics, PracticeSet};

/// What the recorder remembers of a live call.
#[derive(Debug)]
struct CallTrack {
    practice: Arc<PracticeMetrics>,
    /// When the current offer started ringing, if one is ringing.
    ringing_since: Option<DateTime<Utc>>,
}

/// What the recorder remembers of an agent between the end of a call and
/// the end of its wrap-up.
#[derive(Debug)]
struct AgentTrack {
    /// Practice of the agent's last completed call.
    practice: Arc<PracticeMetrics>,
    /// When the wrap-up started, once it has.
    wrap_since: Option<DateTime<Utc>>,
}

/// Maps dispatcher [`Event`]s to the metrics. Owned by the task that
/// drives the dispatcher (it is `&mut self`, no lock): practice ids are
/// looked up in its own copy of the practice map (refreshed by
/// [`AcdRecorder::reload`]), then the pre-resolved handles are updated with
/// atomic operations only.
///
/// Most events carry only a call id; the recorder keeps, per live call, the
/// practice handle (from `CallQueued`) and the ring start (from
/// `Offered`), and per agent in wrap-up the practice of its last call.
/// Both maps hold only live calls and agents between call end and wrap-up
/// end.
#[derive(Debug)]
pub struct AcdRecorder {
    metrics: Arc<Metrics>,
    practices: Arc<PracticeSet>,
    calls: HashMap<CallId, CallTrack>,
    agents: HashMap<AgentId, AgentTrack>,
}

impl AcdRecorder {
    /// A recorder using the metrics' current practice set.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        let practices = metrics.practice_set();
        Self {
            metrics,
            practices,
            calls: HashMap::new(),
            agents: HashMap::new(),
        }
    }

    /// Takes the metrics' current practice set (call after
    /// [`Metrics::practices`] at a reload). Live calls keep their handles.
    pub fn reload(&mut self) {
        self.practices = self.metrics.practice_set();
    }

    /// Number of calls tracked (for tests and leak checks).
    pub fn tracked_calls(&self) -> usize {
        self.calls.len()
    }

    /// Number of agents tracked between call end and wrap-up end.
    pub fn tracked_agents(&self) -> usize {
        self.agents.len()
    }

    fn handle(&mut self, practice: &PracticeId) -> Option<Arc<PracticeMetrics>> {
        if let Some(h) = self.practices.get(practice.as_str()) {
            return Some(h.clone());
        }
        // Not in our copy (a practice added without `reload`): resolve it
        // once under the metrics' lock, then use the refreshed copy.
        let h = self.metrics.practice(practice.as_str()).ok()?;
        self.practices = self.metrics.practice_set();
        Some(h)
    }

    /// Records one event; `now` is the time the driver passed to the
    /// dispatcher call that produced it.
    pub fn on_event(&mut self, event: &Event, now: DateTime<Utc>) {
        match event {
            // Back with its first join time: counted when it first joined
            // (a callback request queued again is followed by the
            // callbacks' own figures, a call transferred back was answered).
            Event::CallQueued { rejoined: true, .. } => {}
            Event::CallbackKept { call } => {
                self.calls.remove(call);
            }
            Event::CallQueued { call, practice, .. } => {
                if let Some(h) = self.handle(practice) {
                    h.queue_entered();
                    self.calls.insert(
                        *call,
                        CallTrack {
                            practice: h,
                            ringing_since: None,
                        },
                    );
                }
            }
            // Counted by the call itself, as closed (its disposition).
            Event::Closed { .. } => {}
            Event::Offered { call, .. } => {
                if let Some(c) = self.calls.get_mut(call) {
                    c.ringing_since = Some(now);
                }
            }
            Event::Answered { call, wait, .. } => {
                if let Some(c) = self.calls.get_mut(call) {
                    let ring = c.ringing_since.take().map(|t| elapsed(t, now));
                    c.practice.queue_answered(*wait, ring);
                }
            }
            Event::CallCompleted { call, agent, talk } => {
                if let Some(c) = self.calls.remove(call) {
                    c.practice.call_completed(*talk);
                    self.agents.insert(
                        agent.clone(),
                        AgentTrack {
                            practice: c.practice,
                            wrap_since: None,
                        },
                    );
                }
            }
            Event::Abandoned {
                call, phase, wait, ..
            } => {
                if let Some(c) = self.calls.remove(call) {
                    let ringing = c.ringing_since.is_some() || *phase == AbandonPhase::Ringing;
                    c.practice.queue_abandoned(*phase, *wait, ringing);
                }
            }
            Event::Rona { call, .. } => self.offer_ended(*call, OfferResult::NoAnswer),
            Event::OfferFailed { call, reason, .. } => {
                self.offer_ended(*call, OfferResult::from(*reason))
            }
            Event::OfferWithdrawn { call, .. } => self.offer_ended(*call, OfferResult::Cancelled),
            Event::Retargeted { call, pool, .. } => {
                if let Some(c) = self.calls.get(call) {
                    c.practice
                        .queue_overflowed(&OverflowTarget::Pool(pool.clone()));
                }
            }
            Event::Overflowed { call, target, .. } => {
                if let Some(c) = self.calls.remove(call) {
                    if c.ringing_since.is_some() {
                        c.practice.offer_ended(OfferResult::Cancelled);
                    }
                    c.practice.queue_overflowed(target);
                }
            }
            Event::AgentStateChanged {
                agent, from, to, ..
            } => {
                if *from == AgentState::WrapUp {
                    if let Some(a) = self.agents.remove(agent) {
                        if let Some(t) = a.wrap_since {
                            a.practice.wrap_up_done(elapsed(t, now));
                        }
                    }
                }
                if *to == AgentState::WrapUp {
                    if let Some(a) = self.agents.get_mut(agent) {
                        a.wrap_since = Some(now);
                    }
                } else if *from == AgentState::OnCall {
                    // The call ended without wrap-up (none configured,
                    // logout, pause): nothing to time.
                    self.agents.remove(agent);
                }
            }
            Event::AgentRemoved { agent } => {
                self.agents.remove(agent);
            }
            Event::ShiftChanged { .. } | Event::ReachabilityChanged { .. } => {}
        }
    }

    fn offer_ended(&mut self, call: CallId, result: OfferResult) {
        if let Some(c) = self.calls.get_mut(&call) {
            c.ringing_since = None;
            c.practice.offer_ended(result);
        }
    }
}

fn elapsed(from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
    (to - from).to_std().unwrap_or(Duration::ZERO)
}
