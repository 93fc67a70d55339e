//! The driver of callback requests (callbacks that keep the caller's
//! place).
//!
//! One task owns the [`CallbackBook`] (every open request) and carries out
//! what it asks: persist each change to the records store (the source of
//! truth across restarts), put a request in the dispatcher's queue with
//! its original join time, release or withdraw it there. The dispatcher's
//! commands for a request's call come back here; an offer starts a try
//! ([`attempt`]: the agent's leg, then the patient's through the gateway),
//! whose end goes back to the book. The book's events feed the metrics and
//! the log; its summaries the per-practice gauges.
//!
//! Requests come from the forwarded-call driver: a caller who asked to be
//! called back hands over their dispatcher call (it keeps its place), and
//! an overflow to a callback hands over the number (the request is queued
//! again at its original place).

mod attempt;

use crate::context::CallContext;
use crate::dispatch::{CallCmd, DispatchMsg};
use chrono::{DateTime, Utc};
use permanence_acd::{CallId, Input as AcdInput};
use permanence_callbacks::book::{Action, Event, Input, Output};
use permanence_callbacks::{
    AttemptResult, CallbackBook, FailReason, Origin, Outcome, Policy, Request, Status,
};
use permanence_records::{CallbackResult, CallbackState, CallbackStatus};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

/// A new request, from a forwarded call.
pub struct NewRequest {
    /// Its key (unique; derived from the call's record id).
    pub key: String,
    /// The record id of the call it came from.
    pub call_record: String,
    /// The practice.
    pub practice: String,
    /// The number to call back (E.164).
    pub number: String,
    /// Asked by the caller, or the queue's overflow.
    pub origin: Origin,
    /// When it was asked (engine time).
    pub requested_at: DateTime<Utc>,
    /// When the call joined the queue (engine time): its place.
    pub joined_at: DateTime<Utc>,
    /// Its priority in the queue.
    pub priority: i32,
    /// The caller's triage choice.
    pub triage: Option<char>,
    /// The dispatcher call it keeps (asked from the queue), with the
    /// channel the dispatcher's commands for it arrive on.
    pub queued: Option<(CallId, mpsc::UnboundedReceiver<CallCmd>)>,
}

/// An open request as the admin API shows it.
pub type OpenRequest = Request;

/// Messages to the callbacks task.
pub(crate) enum Msg {
    Request(Box<NewRequest>),
    Cmd {
        key: String,
        call: CallId,
        cmd: Option<CallCmd>,
    },
    AttemptStarted {
        key: String,
        id: u64,
        agent: String,
    },
    AttemptDone {
        key: String,
        id: u64,
        outcome: Outcome,
        /// The try's outbound record (its call to the patient), if made.
        outbound_id: Option<String>,
    },
    Close {
        key: String,
        handled_by: Option<String>,
        reply: oneshot::Sender<Result<(), String>>,
    },
    List {
        reply: oneshot::Sender<Vec<OpenRequest>>,
    },
}

/// Sends requests and operators' actions to the callbacks task.
#[derive(Clone)]
pub struct CallbackHandle {
    tx: mpsc::UnboundedSender<Msg>,
}

/// The receiving end, until the task starts.
pub struct CallbackInbox(mpsc::UnboundedReceiver<Msg>);

/// A handle and the inbox its messages arrive in.
pub fn channel() -> (CallbackHandle, CallbackInbox) {
    let (tx, rx) = mpsc::unbounded_channel();
    (CallbackHandle { tx }, CallbackInbox(rx))
}

impl CallbackHandle {
    /// Hands a request over; false if the task is gone (shutdown).
    pub fn request(&self, r: NewRequest) -> bool {
        self.tx.send(Msg::Request(Box::new(r))).is_ok()
    }

    /// The open requests, in place order.
    pub async fn open(&self) -> Vec<OpenRequest> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::List { reply }).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Cancels a request (`handled_by: None`) or marks it handled by
    /// someone, without dialling.
    pub async fn close(&self, key: &str, handled_by: Option<String>) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        let msg = Msg::Close {
            key: key.to_string(),
            handled_by,
            reply,
        };
        self.tx
            .send(msg)
            .map_err(|_| "callbacks stopped".to_string())?;
        rx.await.map_err(|_| "callbacks stopped".to_string())?
    }
}

/// What the task keeps about a request besides the book's view.
struct Meta {
    practice: String,
    call_record: String,
    /// The dispatcher call while it is in the dispatcher.
    call: Option<CallId>,
    /// Tries still running: the current one (the book's offer) last; an
    /// earlier one, whose offer the dispatcher withdrew, may still be
    /// ending.
    tries: Vec<TryRef>,
    /// When the last try ended, and its call to the patient.
    last_attempt_at: Option<DateTime<Utc>>,
    outbound_id: Option<String>,
}

/// A try the task started.
struct TryRef {
    id: u64,
    agent: permanence_acd::AgentId,
    /// Whether the book still counts on it (its offer was not withdrawn).
    current: bool,
    tx: mpsc::UnboundedSender<attempt::Cmd>,
}

impl Meta {
    fn new(practice: String, call_record: String) -> Self {
        Self {
            practice,
            call_record,
            call: None,
            tries: Vec::new(),
            last_attempt_at: None,
            outbound_id: None,
        }
    }

    fn current_try(&self) -> Option<&TryRef> {
        self.tries.iter().rev().find(|t| t.current)
    }
}

/// Tries of this process.
static NEXT_TRY_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The callbacks task.
struct Manager {
    ctx: Arc<CallContext>,
    book: CallbackBook,
    meta: HashMap<String, Meta>,
    tx: mpsc::UnboundedSender<Msg>,
}

/// Starts the callbacks task with the requests a previous run left open
/// (in place order).
pub fn start(
    ctx: Arc<CallContext>,
    handle: &CallbackHandle,
    inbox: CallbackInbox,
    saved: Vec<CallbackState>,
) -> tokio::task::JoinHandle<()> {
    let mut m = Manager {
        ctx,
        book: CallbackBook::new(),
        meta: HashMap::new(),
        tx: handle.tx.clone(),
    };
    m.restore(saved);
    tokio::spawn(m.run(inbox.0))
}

impl Manager {
    fn now(&self) -> DateTime<Utc> {
        self.ctx.clock.now()
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        let mut gauges = tokio::time::interval(Duration::from_secs(5));
        loop {
            self.pump();
            let deadline = self.ctx.clock.instant_or_idle(self.book.poll_timeout());
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(msg) => self.on_msg(msg),
                    None => return,
                },
                _ = tokio::time::sleep_until(deadline) => {
                    let now = self.now();
                    self.book.handle_timeout(now);
                }
                _ = gauges.tick() => self.gauges(),
            }
        }
    }

    /// The practice's retry policy (its current configuration).
    fn policy(&self, practice: &str) -> Policy {
        self.ctx
            .config
            .load()
            .practice(practice)
            .map(|p| Policy {
                max_attempts: p.callback.max_attempts,
                spacing: p.callback.retry_spacing,
            })
            .unwrap_or_default()
    }

    /// Feeds back the requests a previous run left open.
    fn restore(&mut self, saved: Vec<CallbackState>) {
        let count = saved.len();
        for s in saved {
            let policy = self.policy(&s.practice_id);
            self.meta.insert(
                s.key.clone(),
                Meta::new(s.practice_id.clone(), s.call_id.clone()),
            );
            let key = s.key.clone();
            let now = self.now();
            if let Err(e) = self.book.handle(Input::Restore(request_of(s), policy), now) {
                warn!(event = "callback.restore_failed", key, error = %e, "saved callback not restored");
                self.meta.remove(&key);
            }
        }
        if count > 0 {
            info!(
                event = "callback.restored",
                count, "pending callbacks queued again at their place"
            );
        }
    }

    fn on_msg(&mut self, msg: Msg) {
        let now = self.now();
        match msg {
            Msg::Request(r) => self.add(*r),
            Msg::Cmd { key, call, cmd } => self.on_cmd(key, call, cmd),
            Msg::AttemptStarted { key, id, agent } => {
                if self.is_current_try(&key, id) {
                    self.feed(Input::AttemptStarted { key, agent }, now)
                }
            }
            Msg::AttemptDone {
                key,
                id,
                outcome,
                outbound_id,
            } => self.attempt_done(key, id, outcome, outbound_id),
            Msg::Close {
                key,
                handled_by,
                reply,
            } => {
                let input = match handled_by {
                    Some(by) => Input::Handled { key, by },
                    None => Input::Cancel { key },
                };
                let r = self.book.handle(input, now).map_err(|e| e.to_string());
                let _ = reply.send(r);
            }
            Msg::List { reply } => {
                let _ = reply.send(self.book.open().cloned().collect());
            }
        }
    }

    fn is_current_try(&self, key: &str, id: u64) -> bool {
        self.meta
            .get(key)
            .and_then(Meta::current_try)
            .is_some_and(|t| t.id == id)
    }

    /// A try ended: the book hears of it if it still counted on it (a try
    /// whose offer was withdrawn was already given up).
    fn attempt_done(
        &mut self,
        key: String,
        id: u64,
        outcome: Outcome,
        outbound_id: Option<String>,
    ) {
        let now = self.now();
        let current = self.is_current_try(&key, id);
        if let Some(m) = self.meta.get_mut(&key) {
            m.tries.retain(|t| t.id != id);
            if let Outcome::Attempted(_) = outcome {
                m.last_attempt_at = Some(now);
                m.outbound_id = outbound_id.or(m.outbound_id.take());
            }
        }
        if !current {
            debug!(
                event = "callback.stale_try",
                key,
                id,
                outcome = outcome.as_str(),
                "a try given up earlier ended"
            );
            if self.book.get(&key).is_none()
                && self.meta.get(&key).is_some_and(|m| m.tries.is_empty())
            {
                self.meta.remove(&key);
            }
            return;
        }
        let input = match outcome {
            Outcome::OfferFailed => Input::OfferEnded { key },
            Outcome::Attempted(result) => Input::AttemptFinished { key, result },
        };
        self.feed(input, now);
    }

    /// Feeds an input; a refusal (a late input after a race) is logged.
    fn feed(&mut self, input: Input, now: DateTime<Utc>) {
        let what = input.as_str();
        if let Err(e) = self.book.handle(input, now) {
            debug!(event = "callback.input_ignored", input = what, error = %e, "callback input ignored");
        }
    }

    /// A new request: into the book; its dispatcher call is forwarded
    /// here, or, after an overflow, it is queued again at its place.
    fn add(&mut self, r: NewRequest) {
        let now = self.now();
        let deadline = self
            .ctx
            .config
            .load()
            .practice(&r.practice)
            .map(|p| p.callback.within)
            .unwrap_or(Duration::from_secs(3600));
        let request = Request {
            key: r.key.clone(),
            practice: r.practice.clone(),
            number: r.number,
            origin: r.origin,
            requested_at: r.requested_at,
            joined_at: r.joined_at,
            priority: r.priority,
            triage: r.triage,
            deadline: r.requested_at + deadline,
            attempts: 0,
            next_attempt_at: None,
            last_result: None,
            agent: None,
            status: Status::Queued,
            policy: Policy::default(),
        };
        let policy = self.policy(&r.practice);
        self.meta
            .insert(r.key.clone(), Meta::new(r.practice, r.call_record));
        if let Err(e) = self.book.handle(Input::Add(request, policy), now) {
            warn!(event = "callback.lost", key = r.key, error = %e, "callback request refused by the book");
            self.meta.remove(&r.key);
            return;
        }
        match r.queued {
            Some((call, rx)) => self.forward(r.key, call, rx),
            None => self.enqueue(&r.key),
        }
    }

    /// Forwards the dispatcher's commands for `call` to this task.
    fn forward(&mut self, key: String, call: CallId, mut rx: mpsc::UnboundedReceiver<CallCmd>) {
        if let Some(m) = self.meta.get_mut(&key) {
            m.call = Some(call);
        }
        let tx = self.tx.clone();
        tokio::spawn(async move {
            loop {
                let cmd = rx.recv().await;
                let end = cmd.is_none();
                let msg = Msg::Cmd {
                    key: key.clone(),
                    call,
                    cmd,
                };
                if tx.send(msg).is_err() || end {
                    return;
                }
            }
        });
    }

    /// Puts a request in the dispatcher's queue with its original join
    /// time, flagged as a callback (it never overflows out).
    fn enqueue(&mut self, key: &str) {
        let Some(r) = self.book.get(key) else { return };
        let cfg = self.ctx.config.load();
        let Some(practice) = cfg.practice(&r.practice) else {
            // Nobody can call back for a practice that is gone: closed as
            // cancelled (counted and recorded), never left open for ever.
            warn!(event = "callback.practice_gone", key, practice = %r.practice, "practice no longer configured: callback request cancelled");
            drop(cfg);
            let now = self.now();
            self.feed(
                Input::Cancel {
                    key: key.to_string(),
                },
                now,
            );
            return;
        };
        let call = crate::call::next_call_id();
        let mut a = crate::call::arrival(practice, call, r.triage);
        a.priority = Some(r.priority);
        a.joined_at = Some(r.joined_at);
        a.callback = true;
        drop(cfg);
        let (tx, rx) = mpsc::unbounded_channel();
        self.ctx
            .dispatch
            .send(DispatchMsg::Arrive { arrival: a, tx });
        self.forward(key.to_string(), call, rx);
    }

    /// A dispatcher command for a request's call.
    fn on_cmd(&mut self, key: String, call: CallId, cmd: Option<CallCmd>) {
        let now = self.now();
        let current = self.meta.get(&key).and_then(|m| m.call) == Some(call);
        if !current {
            return;
        }
        match cmd {
            Some(CallCmd::Offer { agent }) => {
                let offered = Input::Offered {
                    key: key.clone(),
                    agent: agent.to_string(),
                };
                match self.book.handle(offered, now) {
                    Ok(()) => self.start_attempt(&key, call, agent),
                    Err(e) => {
                        // A try of this request is still going on: the
                        // dispatcher gets its offer back.
                        debug!(event = "callback.offer_refused", key, error = %e, "offer of a callback refused");
                        self.ctx.dispatch.input(AcdInput::OfferFailed {
                            call,
                            agent,
                            reason: permanence_acd::OfferFailure::Rejected,
                        });
                    }
                }
            }
            Some(CallCmd::CancelOffer { agent }) => {
                self.withdraw_try(&key, &agent);
                self.feed(Input::OfferEnded { key }, now);
            }
            Some(CallCmd::AnswerRefused { agent }) => {
                self.to_try(&key, Some(&agent), attempt::Cmd::Refused)
            }
            Some(CallCmd::Position { .. }) => {}
            Some(CallCmd::Overflow(_)) | Some(CallCmd::Closed) => {
                // Not queued after all (the practice is closed): try again
                // after the spacing.
                info!(
                    event = "callback.not_queued",
                    key, "the dispatcher did not keep the callback: it waits for its next try"
                );
                if let Some(m) = self.meta.get_mut(&key) {
                    m.call = None;
                }
                self.feed(Input::Lost { key }, now);
            }
            None => {}
        }
    }

    /// Sends `cmd` to the try of `agent`.
    fn to_try(&self, key: &str, agent: Option<&permanence_acd::AgentId>, cmd: attempt::Cmd) {
        let Some(m) = self.meta.get(key) else { return };
        let t = match agent {
            Some(a) => m.tries.iter().rev().find(|t| &t.agent == a),
            None => m.current_try(),
        };
        if let Some(t) = t {
            let _ = t.tx.send(cmd);
        }
    }

    /// `agent`'s offer is withdrawn: their try is given up (it cancels the
    /// agent's INVITE and ends on its own).
    fn withdraw_try(&mut self, key: &str, agent: &permanence_acd::AgentId) {
        self.to_try(key, Some(agent), attempt::Cmd::Withdrawn);
        if let Some(t) = self
            .meta
            .get_mut(key)
            .and_then(|m| m.tries.iter_mut().rev().find(|t| &t.agent == agent))
        {
            t.current = false;
        }
    }

    fn start_attempt(&mut self, key: &str, call: CallId, agent: permanence_acd::AgentId) {
        let Some(r) = self.book.get(key) else { return };
        let info = attempt::TryInfo {
            key: key.to_string(),
            call,
            agent,
            practice: r.practice.clone(),
            number: r.number.clone(),
            requested_at: r.requested_at,
            attempt: r.attempts + 1,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let id = NEXT_TRY_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(m) = self.meta.get_mut(key) {
            m.tries.push(TryRef {
                id,
                agent: info.agent.clone(),
                current: true,
                tx,
            });
        }
        tokio::spawn(attempt::run(
            self.ctx.clone(),
            self.tx.clone(),
            id,
            info,
            rx,
        ));
    }

    /// Carries out the book's outputs.
    fn pump(&mut self) {
        let mut changed = false;
        let mut closed = Vec::new();
        while let Some(out) = self.book.poll_output() {
            changed = true;
            if let Output::Action(Action::Persist(r)) = &out {
                if !r.status.is_open() {
                    closed.push(r.key.clone());
                }
            }
            match out {
                Output::Action(a) => self.apply(a),
                Output::Event(e) => self.observe(e),
            }
        }
        // Forgotten once every output of the change is carried out (a
        // withdrawal comes after the persist of the closing) and no try
        // of it is still ending.
        for key in closed {
            if self.meta.get(&key).is_some_and(|m| m.tries.is_empty()) {
                self.meta.remove(&key);
            }
        }
        if changed {
            self.gauges();
        }
    }

    fn apply(&mut self, action: Action) {
        match action {
            Action::Persist(r) => self.persist(&r),
            Action::Enqueue(key) => self.enqueue(&key),
            Action::Release(key) => {
                if let Some(m) = self.meta.get_mut(&key) {
                    m.call = None;
                }
            }
            Action::Withdraw(key) => {
                let call = self.meta.get_mut(&key).and_then(|m| m.call.take());
                let agent = self
                    .meta
                    .get(&key)
                    .and_then(Meta::current_try)
                    .map(|t| t.agent.clone());
                if let Some(agent) = agent {
                    self.withdraw_try(&key, &agent);
                }
                // The dispatcher takes the request out of its queue (it
                // has no other way to drop a waiting call than as one
                // whose caller left).
                if let Some(call) = call {
                    self.ctx.dispatch.input(AcdInput::CallAbandoned { call });
                }
            }
        }
    }

    /// Writes the request as it stands; forgets a closed one.
    fn persist(&mut self, r: &Request) {
        let call_record = self
            .meta
            .get(&r.key)
            .map(|m| m.call_record.clone())
            .unwrap_or_default();
        if let Some(rec) = &self.ctx.records {
            let meta = self.meta.get(&r.key);
            let tried = (
                meta.and_then(|m| m.last_attempt_at),
                meta.and_then(|m| m.outbound_id.clone()),
            );
            if !rec.record_callback_state(state_of(r, &call_record, tried, self.now())) {
                warn!(event = "callback.persist_failed", key = %r.key, "callback state not written (records store full or closed)");
            }
        }
    }

    fn observe(&mut self, e: Event) {
        use permanence_metrics::{CallbackAttemptResult as M, CallbackFailure as F};
        let m = &self.ctx.metrics;
        match e {
            Event::Requested {
                key,
                practice,
                origin,
            } => {
                m.callback_requested(&practice, metrics_origin(origin));
                info!(
                    event = "callback.requested",
                    key,
                    practice,
                    origin = origin.as_str(),
                    "callback request keeps its place"
                );
            }
            Event::Attempt {
                key,
                number,
                agent,
                result,
            } => {
                let practice = self.practice_of(&key);
                let r = match result {
                    AttemptResult::Answered => Some(M::Answered),
                    AttemptResult::NoAnswer => Some(M::NoAnswer),
                    AttemptResult::Busy => Some(M::Busy),
                    AttemptResult::Failed => Some(M::Failed),
                    AttemptResult::Refused => None,
                };
                if let Some(r) = r {
                    m.callback_attempt(&practice, r);
                }
                info!(
                    event = "callback.attempt",
                    key,
                    practice,
                    attempt = number,
                    agent,
                    result = result.as_str(),
                    "callback try"
                );
            }
            Event::Completed {
                key,
                within_deadline,
            } => {
                let practice = self.practice_of(&key);
                m.callback_completed(&practice, within_deadline);
                info!(
                    event = "callback.completed",
                    key, practice, within_deadline, "patient called back"
                );
            }
            Event::Failed { key, reason } => {
                let practice = self.practice_of(&key);
                let f = match reason {
                    FailReason::Exhausted(AttemptResult::NoAnswer) => F::NoAnswer,
                    FailReason::Exhausted(AttemptResult::Busy) => F::Busy,
                    FailReason::Exhausted(_) => F::Failed,
                    FailReason::Refused => F::Refused,
                    FailReason::Cancelled => F::Cancelled,
                };
                m.callback_failed(&practice, f);
                warn!(
                    event = "callback.failed",
                    key,
                    practice,
                    reason = reason.as_str(),
                    "callback request closed without reaching the patient"
                );
            }
            Event::Handled { key, by } => {
                let practice = self.practice_of(&key);
                m.callback_handled(&practice);
                info!(
                    event = "callback.handled",
                    key, practice, by, "callback marked handled"
                );
            }
        }
    }

    fn practice_of(&self, key: &str) -> String {
        self.meta
            .get(key)
            .map(|m| m.practice.clone())
            .or_else(|| self.book.get(key).map(|r| r.practice.clone()))
            .unwrap_or_default()
    }

    /// The per-practice gauges from the book's summaries.
    fn gauges(&self) {
        for (practice, s) in self.book.summaries(self.now()) {
            self.ctx.metrics.set_callback_queue(
                &practice,
                s.pending,
                s.oldest_age,
                s.deadline_margin,
            );
        }
    }
}

fn metrics_origin(o: Origin) -> permanence_metrics::CallbackOrigin {
    match o {
        Origin::Caller => permanence_metrics::CallbackOrigin::Caller,
        Origin::Overflow => permanence_metrics::CallbackOrigin::Overflow,
    }
}

/// The stored row of a request; `tried`: when its last try ended and that
/// try's outbound record, as the task saw them.
fn state_of(
    r: &Request,
    call_record: &str,
    tried: (Option<DateTime<Utc>>, Option<String>),
    now: DateTime<Utc>,
) -> CallbackState {
    let status = match r.status {
        Status::Waiting | Status::Queued | Status::Offered { .. } => CallbackStatus::Pending,
        Status::Dialling { .. } => CallbackStatus::Dialling,
        Status::Completed => CallbackStatus::Completed,
        Status::Failed => CallbackStatus::Failed,
        Status::Cancelled => CallbackStatus::Cancelled,
        Status::Handled => CallbackStatus::Handled,
    };
    let agent = match &r.status {
        Status::Offered { agent } | Status::Dialling { agent } => Some(agent.clone()),
        _ => r.agent.clone(),
    };
    CallbackState {
        key: r.key.clone(),
        origin: match r.origin {
            Origin::Caller => permanence_records::CallbackOrigin::Caller,
            Origin::Overflow => permanence_records::CallbackOrigin::Overflow,
        },
        call_id: call_record.to_string(),
        practice_id: r.practice.clone(),
        number: r.number.clone(),
        requested_at: r.requested_at,
        joined_at: r.joined_at,
        priority: r.priority,
        triage_digit: r.triage.map(String::from),
        deadline_at: r.deadline,
        status,
        attempts: r.attempts,
        next_attempt_at: r.next_attempt_at,
        last_attempt_at: tried.0,
        last_result: r.last_result.map(|x| match x {
            AttemptResult::Answered => CallbackResult::Answered,
            AttemptResult::NoAnswer => CallbackResult::NoAnswer,
            AttemptResult::Busy => CallbackResult::Busy,
            AttemptResult::Failed => CallbackResult::Failed,
            AttemptResult::Refused => CallbackResult::Refused,
        }),
        agent,
        completed_at: (!r.status.is_open()).then_some(now),
        outbound_id: tried.1,
    }
}

/// A saved open request, for the book.
fn request_of(s: CallbackState) -> Request {
    Request {
        key: s.key,
        practice: s.practice_id,
        number: s.number,
        origin: match s.origin {
            permanence_records::CallbackOrigin::Caller => Origin::Caller,
            permanence_records::CallbackOrigin::Overflow => Origin::Overflow,
        },
        requested_at: s.requested_at,
        joined_at: s.joined_at,
        priority: s.priority,
        triage: s.triage_digit.and_then(|d| d.chars().next()),
        deadline: s.deadline_at,
        attempts: s.attempts,
        next_attempt_at: s.next_attempt_at,
        last_result: s.last_result.map(|x| match x {
            CallbackResult::Answered => AttemptResult::Answered,
            CallbackResult::NoAnswer => AttemptResult::NoAnswer,
            CallbackResult::Busy => AttemptResult::Busy,
            CallbackResult::Failed => AttemptResult::Failed,
            CallbackResult::Refused => AttemptResult::Refused,
        }),
        agent: s.agent,
        status: Status::Queued,
        policy: Policy::default(),
    }
}
