//! Driver of the dispatcher core: one tokio task owns the
//! [`Dispatcher`]; call tasks, the registrar and
//! the admin side talk to it through a channel, and it routes the
//! dispatcher's actions to the call tasks and its events to logs and
//! observers (metrics, call records).

use crate::clock::Clock;
use chrono::Utc;
use permanence_acd::{Action, AgentId, CallArrival, CallId, Dispatcher, Event, Input, Output};
use permanence_types::OverflowKind;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// A command the dispatcher sends to one call task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallCmd {
    /// Ring this telesecretary.
    Offer {
        /// The agent.
        agent: AgentId,
    },
    /// Stop ringing this telesecretary.
    CancelOffer {
        /// The agent.
        agent: AgentId,
    },
    /// The call overflows.
    Overflow(OverflowKind),
    /// The practice is closed: the call was not queued.
    Closed,
    /// Position and estimated wait (answer to a position request).
    Position {
        /// 1-based position.
        position: u32,
        /// Estimated wait.
        wait: Option<Duration>,
    },
    /// The dispatcher refused an answer (the offer had been withdrawn).
    AnswerRefused {
        /// The agent.
        agent: AgentId,
    },
}

/// Something that observes every dispatcher event (metrics, call records).
pub trait EventObserver: Send + Sync {
    /// One event; `practice` is the call's practice when the event concerns
    /// a call.
    fn on_event(&self, event: &Event, practice: Option<&str>);
}

/// A read-only query run on the dispatcher task.
pub type Query = Box<dyn FnOnce(&Dispatcher, chrono::DateTime<Utc>) + Send>;

/// Messages to the dispatcher task.
pub enum DispatchMsg {
    /// A call joins its practice queue; its task listens on `tx`.
    Arrive {
        /// The arrival.
        arrival: CallArrival,
        /// Where commands for the call go.
        tx: mpsc::UnboundedSender<CallCmd>,
    },
    /// Any other dispatcher input.
    Input(Input),
    /// An input whose outcome the sender wants.
    InputChecked {
        /// The input.
        input: Input,
        /// Outcome (the dispatcher's error text if refused).
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// The caller's position and estimated wait, sent back as
    /// [`CallCmd::Position`].
    Position {
        /// The call.
        call: CallId,
    },
    /// A read-only query.
    Query(Query),
    /// A new configuration (reload); the result is sent back.
    Reconfigure {
        /// The new dispatcher configuration.
        config: Box<permanence_acd::AcdConfig>,
        /// Outcome.
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// Handle to the dispatcher task.
#[derive(Clone)]
pub struct DispatchHandle {
    tx: mpsc::UnboundedSender<DispatchMsg>,
}

impl DispatchHandle {
    /// Sends a message (dropped silently if the task stopped: shutdown).
    pub fn send(&self, msg: DispatchMsg) {
        if self.tx.send(msg).is_err() {
            debug!("dispatcher task is gone");
        }
    }

    /// Sends an input.
    pub fn input(&self, input: Input) {
        self.send(DispatchMsg::Input(input));
    }

    /// Sends an input and waits for the dispatcher's verdict.
    pub async fn input_checked(&self, input: Input) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.send(DispatchMsg::InputChecked { input, reply });
        rx.await
            .unwrap_or_else(|_| Err("dispatcher stopped".to_string()))
    }

    /// Runs a read-only query on the dispatcher and returns its result.
    pub async fn query<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Dispatcher, chrono::DateTime<Utc>) -> T + Send + 'static,
    ) -> Option<T> {
        let (reply, rx) = oneshot::channel();
        self.send(DispatchMsg::Query(Box::new(move |d, now| {
            let _ = reply.send(f(d, now));
        })));
        rx.await.ok()
    }

    /// Applies a new configuration.
    pub async fn reconfigure(&self, config: permanence_acd::AcdConfig) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        self.send(DispatchMsg::Reconfigure {
            config: Box::new(config),
            reply,
        });
        rx.await
            .unwrap_or_else(|_| Err("dispatcher stopped".to_string()))
    }
}

struct CallEntry {
    tx: mpsc::UnboundedSender<CallCmd>,
    practice: permanence_acd::PracticeId,
}

struct Driver {
    d: Dispatcher,
    calls: HashMap<CallId, CallEntry>,
    observers: Vec<Arc<dyn EventObserver>>,
    metrics: Option<permanence_metrics::AcdRecorder>,
    /// The engine time given to the dispatcher's last call (metrics need
    /// it).
    now: chrono::DateTime<Utc>,
    clock: Clock,
    /// The wall clock's offset from engine time last told to the
    /// dispatcher.
    wall_offset: chrono::Duration,
}

/// How far the wall clock may drift from what the dispatcher was told
/// before calendars are re-evaluated.
const WALL_TOLERANCE: chrono::Duration = chrono::Duration::seconds(1);

impl Driver {
    /// Tells the dispatcher where the wall clock is when it has moved
    /// (an NTP step, or drift) by more than [`WALL_TOLERANCE`]: opening
    /// hours and shifts follow the wall clock, no other timer moves.
    fn follow_wall_clock(&mut self) {
        let now = self.clock.now();
        let offset = self.clock.wall() - now;
        if (offset - self.wall_offset).abs() > WALL_TOLERANCE {
            info!(
                event = "clock.wall_step",
                offset_ms = offset.num_milliseconds(),
                previous_ms = self.wall_offset.num_milliseconds(),
                "wall clock moved: calendars follow it, timers do not"
            );
            self.wall_offset = offset;
            self.now = now;
            self.d.set_wall_clock(now + offset, now);
        }
    }

    fn to_call(&self, call: CallId, cmd: CallCmd) {
        match self.calls.get(&call) {
            Some(e) => {
                if e.tx.send(cmd).is_err() {
                    debug!(call = call.0, "call task already gone");
                }
            }
            None => debug!(call = call.0, ?cmd, "command for an unknown call"),
        }
    }

    fn event_call(e: &Event) -> Option<CallId> {
        match e {
            Event::CallQueued { call, .. }
            | Event::CallbackKept { call }
            | Event::Closed { call, .. }
            | Event::Offered { call, .. }
            | Event::Answered { call, .. }
            | Event::CallCompleted { call, .. }
            | Event::Abandoned { call, .. }
            | Event::Rona { call, .. }
            | Event::OfferFailed { call, .. }
            | Event::OfferWithdrawn { call, .. }
            | Event::Retargeted { call, .. }
            | Event::Overflowed { call, .. } => Some(*call),
            _ => None,
        }
    }

    fn log(e: &Event, practice: Option<&str>) {
        let p = practice.unwrap_or("");
        match e {
            Event::CallQueued { call, priority, .. } => {
                info!(
                    event = "acd.queued",
                    call = call.0,
                    practice = p,
                    priority,
                    "call queued"
                )
            }
            Event::CallbackKept { call } => info!(
                event = "acd.callback_kept",
                call = call.0,
                practice = p,
                "queued call kept as a callback request"
            ),
            Event::Closed { call, .. } => {
                info!(
                    event = "acd.closed",
                    call = call.0,
                    practice = p,
                    "practice closed"
                )
            }
            Event::Offered { call, agent } => {
                info!(event = "acd.offered", call = call.0, practice = p, agent = %agent, "call offered")
            }
            Event::Answered { call, agent, wait } => info!(
                event = "acd.answered",
                call = call.0,
                practice = p,
                agent = %agent,
                wait_s = wait.as_secs_f64(),
                "call answered by an agent"
            ),
            Event::CallCompleted { call, agent, talk } => info!(
                event = "acd.completed",
                call = call.0,
                practice = p,
                agent = %agent,
                talk_s = talk.as_secs_f64(),
                "call completed"
            ),
            Event::Abandoned {
                call,
                phase,
                wait,
                position,
            } => info!(
                event = "acd.abandoned",
                call = call.0,
                practice = p,
                phase = ?phase,
                wait_s = wait.as_secs_f64(),
                position,
                "caller abandoned"
            ),
            Event::Rona {
                call,
                agent,
                strikes,
            } => info!(
                event = "acd.rona",
                call = call.0,
                practice = p,
                agent = %agent,
                strikes,
                "ring no answer"
            ),
            Event::OfferFailed {
                call,
                agent,
                reason,
            } => info!(
                event = "acd.offer_failed",
                call = call.0,
                practice = p,
                agent = %agent,
                reason = ?reason,
                "offer failed"
            ),
            Event::OfferWithdrawn {
                call,
                agent,
                reason,
            } => info!(
                event = "acd.offer_withdrawn",
                call = call.0,
                practice = p,
                agent = %agent,
                reason = ?reason,
                "offer withdrawn"
            ),
            Event::Retargeted { call, pool, wait } => info!(
                event = "acd.retargeted",
                call = call.0,
                practice = p,
                pool = %pool,
                wait_s = wait.as_secs_f64(),
                "call overflowed to a pool"
            ),
            Event::Overflowed {
                call,
                target,
                wait,
                reason,
            } => info!(
                event = "acd.overflowed",
                call = call.0,
                practice = p,
                overflow_target = ?target,
                wait_s = wait.as_secs_f64(),
                reason = ?reason,
                "call overflowed"
            ),
            Event::AgentStateChanged {
                agent,
                from,
                to,
                reason,
            } => info!(
                event = "agent.state",
                agent = %agent,
                from = ?from,
                to = ?to,
                reason = ?reason,
                "agent state changed"
            ),
            Event::AgentRemoved { agent } => {
                info!(event = "agent.removed", agent = %agent, "agent removed")
            }
            Event::ShiftChanged { agent, in_shift } => {
                info!(event = "agent.shift", agent = %agent, in_shift, "agent shift changed")
            }
            Event::ReachabilityChanged { agent, reachable } => info!(
                event = "agent.reachability",
                agent = %agent,
                reachable,
                "agent reachability changed"
            ),
        }
    }

    fn drain(&mut self) {
        while let Some(out) = self.d.poll_output() {
            match out {
                Output::Action(a) => match a {
                    Action::Offer { call, agent, .. } => {
                        self.to_call(call, CallCmd::Offer { agent })
                    }
                    Action::CancelOffer { call, agent, .. } => {
                        self.to_call(call, CallCmd::CancelOffer { agent })
                    }
                    Action::Overflow { call, target } => match target.exit() {
                        Some(kind) => self.to_call(call, CallCmd::Overflow(kind)),
                        None => debug!(call = call.0, "pool overflow keeps the call queued"),
                    },
                    Action::Closed { call, .. } => self.to_call(call, CallCmd::Closed),
                },
                Output::Event(e) => {
                    if let Some(m) = self.metrics.as_mut() {
                        m.on_event(&e, self.now);
                    }
                    let call = Self::event_call(&e);
                    let practice = call
                        .and_then(|c| self.calls.get(&c))
                        .map(|c| c.practice.clone());
                    Self::log(&e, practice.as_ref().map(|p| p.as_str()));
                    for o in &self.observers {
                        o.on_event(&e, practice.as_ref().map(|p| p.as_str()));
                    }
                    // The call's life in the dispatcher is over.
                    if let Some(c) = call {
                        let terminal = match &e {
                            Event::Closed { .. }
                            | Event::Abandoned { .. }
                            | Event::CallCompleted { .. } => true,
                            Event::Overflowed { target, .. } => target.exit().is_some(),
                            _ => false,
                        };
                        if terminal {
                            self.calls.remove(&c);
                        }
                    }
                }
            }
        }
    }

    fn handle(&mut self, msg: DispatchMsg) {
        let now = self.clock.now();
        self.now = now;
        match msg {
            DispatchMsg::Arrive { arrival, tx } => {
                let call = arrival.call;
                self.calls.insert(
                    call,
                    CallEntry {
                        tx,
                        practice: arrival.practice.clone(),
                    },
                );
                // A transfer's target may be gone (a reload): then the call
                // is queued without it rather than refused.
                let untargeted = arrival.target.is_some().then(|| CallArrival {
                    target: None,
                    ..arrival.clone()
                });
                let mut result = self.d.handle_input(Input::CallArrived(arrival), now);
                if let (Err(e), Some(a)) = (&result, untargeted) {
                    warn!(call = call.0, error = %e, "transfer target refused: queued without it");
                    result = self.d.handle_input(Input::CallArrived(a), now);
                }
                if let Err(e) = result {
                    warn!(call = call.0, error = %e, "dispatcher refused the call");
                    // Never lose it: the call plays the closed prompt.
                    self.to_call(call, CallCmd::Closed);
                    self.calls.remove(&call);
                }
            }
            DispatchMsg::Input(input) => {
                let answered = match &input {
                    Input::OfferAnswered { call, agent } => Some((*call, agent.clone())),
                    _ => None,
                };
                if let Err(e) = self.d.handle_input(input, now) {
                    match answered {
                        Some((call, agent)) => {
                            info!(call = call.0, agent = %agent, error = %e, "late answer refused");
                            self.to_call(call, CallCmd::AnswerRefused { agent });
                        }
                        None => debug!(error = %e, "dispatcher input ignored"),
                    }
                }
            }
            DispatchMsg::InputChecked { input, reply } => {
                let r = self.d.handle_input(input, now).map_err(|e| e.to_string());
                let _ = reply.send(r);
            }
            DispatchMsg::Position { call } => {
                let (position, wait) = match self.d.call(call, now) {
                    Some(s) => (s.position, s.estimated_wait),
                    None => (0, None),
                };
                self.to_call(call, CallCmd::Position { position, wait });
            }
            DispatchMsg::Query(q) => q(&self.d, now),
            DispatchMsg::Reconfigure { config, reply } => {
                let r = self.d.reconfigure(*config, now).map_err(|e| e.to_string());
                if r.is_ok() {
                    if let Some(m) = self.metrics.as_mut() {
                        m.reload();
                    }
                }
                let _ = reply.send(r);
            }
        }
        self.drain();
    }
}

/// Starts the dispatcher task. The dispatcher runs on `clock`'s engine
/// time: a step of the wall clock fires none of its timers early and delays
/// none.
pub fn start(
    dispatcher: Dispatcher,
    observers: Vec<Arc<dyn EventObserver>>,
    metrics: Option<permanence_metrics::AcdRecorder>,
    clock: Clock,
    cancel: CancellationToken,
) -> (DispatchHandle, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut driver = Driver {
        d: dispatcher,
        calls: HashMap::new(),
        observers,
        metrics,
        now: clock.now(),
        clock,
        wall_offset: chrono::Duration::zero(),
    };
    let task = tokio::spawn(async move {
        // The wall clock is looked at every second, even when idle, so
        // that a shift or opening boundary is never missed after a step.
        let mut wall_check = tokio::time::interval(Duration::from_secs(1));
        wall_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            driver.drain();
            let deadline = driver.clock.instant_or_idle(driver.d.poll_timeout());
            tokio::select! {
                _ = cancel.cancelled() => break,
                msg = rx.recv() => match msg {
                    Some(m) => driver.handle(m),
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => {
                    driver.now = driver.clock.now();
                    driver.d.handle_timeout(driver.now);
                }
                _ = wall_check.tick() => driver.follow_wall_clock(),
            }
        }
    });
    (DispatchHandle { tx }, task)
}
