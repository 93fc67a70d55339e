//! Every callback request of the engine, as a pure state machine.
//!
//! The [`CallbackBook`] holds the open requests: their place in their
//! practice's queue, their tries, the next try's time and their deadline.
//! It is driven by [`CallbackBook::handle`] with an [`Input`] and the
//! current time, and by [`CallbackBook::handle_timeout`] at
//! [`CallbackBook::poll_timeout`] (a waiting request's next try is due). It
//! answers through [`CallbackBook::poll_output`] with [`Action`]s for the
//! driver (persist, and the dispatcher's side) and [`Event`]s for the
//! records, metrics and logs.
//!
//! The life of a request ([`Status`]):
//!
//! ```text
//!   Add ──► Queued ──Offered──► Offered ──AttemptStarted──► Dialling
//!             ▲  ◄──OfferEnded──┘                             │
//!             │                          AttemptFinished ─────┤
//!   timer ────┤                    answered: Completed        │
//!             │                    refused: Failed            │
//!          Waiting ◄── not reached, tries left ───────────────┤
//!             ▲        not reached, no try left: Failed ◄─────┘
//!   Lost ─────┘ (from Queued/Offered, not a try)
//!   Cancel / Handled: from Waiting, Queued or Offered
//! ```
//!
//! Rules:
//! * **Persistence**: every change of a request is followed by
//!   [`Action::Persist`] with a copy of the request as it now is, its
//!   closing included; a driver that writes every `Persist` (and deletes the
//!   closed ones) holds exactly the open requests, which it feeds back with
//!   [`Input::Restore`] at start-up.
//! * **Bounded memory**: a request is forgotten as soon as it closes
//!   (completed, failed, cancelled, handled), after its events and its
//!   `Persist`; the book holds open requests only.
//! * **Order of outputs** for one input: events first, then `Persist`, then
//!   the dispatcher's action (`Enqueue`, `Release`, `Withdraw`).
//! * **Errors**: [`CallbackBook::handle`] returns a [`BookError`] for an
//!   input that does not apply (an unknown or closed key, a status that does
//!   not allow it, a cancel while the patient is being dialled); such an
//!   input changes nothing and emits nothing. An operator's cancel gets its
//!   answer at once (the admin API can say 409), and the driver can log
//!   and drop the late inputs of races (an offer ending after a cancel).
//! * **Deadline**: it is the promise made to the patient ("rappelé dans
//!   l'heure"), reported by [`Event::Completed`] and the summaries; tries go
//!   on past it until the policy's count is used.

use crate::attempt::{later, AttemptResult};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;
use thiserror::Error;

/// How a request came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The caller asked for it while waiting (virtual hold): their call in
    /// the dispatcher's queue became the request, keeping its place.
    Caller,
    /// The queue overflowed to a callback (maximum wait reached).
    Overflow,
}

impl Origin {
    /// Stable name (`caller`, `overflow`), also the serde form.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Caller => "caller",
            Origin::Overflow => "overflow",
        }
    }
}

/// A practice's retry policy, stored in each of its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Tries before the request fails (at least 1; the try that answers
    /// counts). Tries are the agent's answers: an offer the agent does not
    /// answer, or a request lost by the dispatcher, is not a try.
    pub max_attempts: u32,
    /// Wait between a try that did not reach the patient (or a lost
    /// dispatcher call) and the request's return to the queue.
    pub spacing: Duration,
}

impl Default for Policy {
    /// 3 tries, 10 minutes apart.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            spacing: Duration::from_secs(600),
        }
    }
}

/// Where a request is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Out of the dispatcher until [`Request::next_attempt_at`] (after an
    /// unanswered try or a lost dispatcher call).
    Waiting,
    /// In the dispatcher's queue, at its place.
    Queued,
    /// The dispatcher offered it: this agent's phone rings.
    Offered {
        /// The agent rung.
        agent: String,
    },
    /// This agent answered: the patient is being called, or talks to them.
    Dialling {
        /// The agent making the try.
        agent: String,
    },
    /// The patient was reached (closed).
    Completed,
    /// No try left, or the number refused (closed).
    Failed,
    /// An operator cancelled it (closed).
    Cancelled,
    /// An operator marked it handled, e.g. called back by other means
    /// (closed).
    Handled,
}

impl Status {
    /// Stable name for logs, metrics and the store.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Waiting => "waiting",
            Status::Queued => "queued",
            Status::Offered { .. } => "offered",
            Status::Dialling { .. } => "dialling",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::Handled => "handled",
        }
    }

    /// Whether the request is still to be called back (waiting, queued,
    /// offered or dialling).
    pub fn is_open(&self) -> bool {
        matches!(
            self,
            Status::Waiting | Status::Queued | Status::Offered { .. } | Status::Dialling { .. }
        )
    }

    /// Whether the dispatcher holds the request (queued or offered), so a
    /// cancel must withdraw it there.
    pub fn in_dispatcher(&self) -> bool {
        matches!(self, Status::Queued | Status::Offered { .. })
    }
}

/// One callback request, as the book holds it and the store saves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The driver's key, unique among open requests (also the dispatcher
    /// call's id while it is queued).
    pub key: String,
    /// The practice the patient called.
    pub practice: String,
    /// The number to call back, E.164 (`+33612345678`).
    pub number: String,
    /// How the request came to be.
    pub origin: Origin,
    /// When the patient asked (or the queue overflowed): the age and the
    /// summaries' oldest wait are counted from it.
    pub requested_at: DateTime<Utc>,
    /// When the patient's call joined the queue: the request's place,
    /// given back to the dispatcher each time it is queued again.
    pub joined_at: DateTime<Utc>,
    /// The priority in the dispatcher's queue.
    pub priority: i32,
    /// The triage digit chosen by the caller, if any.
    pub triage: Option<char>,
    /// When the patient should have been called back by (the practice's
    /// `within` after the request).
    pub deadline: DateTime<Utc>,
    /// Tries made so far (agent answers); set to 0 by [`Input::Add`].
    pub attempts: u32,
    /// When a waiting request goes back to the queue; `None` otherwise.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The result of the last try, if any.
    pub last_result: Option<AttemptResult>,
    /// The agent of the current offer or try, else of the last one (kept
    /// for the record).
    pub agent: Option<String>,
    /// Where it is; set by the book ([`Input::Add`] makes it
    /// [`Status::Queued`]).
    pub status: Status,
    /// The practice's retry policy, set from the policy given with
    /// [`Input::Add`] or [`Input::Restore`].
    pub policy: Policy,
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailReason {
    /// Every try of the policy was made without reaching the patient; the
    /// last one's result.
    Exhausted(AttemptResult),
    /// The practice's allow-list forbids the number: not retried.
    Refused,
    /// An operator cancelled the request.
    Cancelled,
}

impl FailReason {
    /// Stable name (`exhausted`, `refused`, `cancelled`).
    pub fn as_str(self) -> &'static str {
        match self {
            FailReason::Exhausted(_) => "exhausted",
            FailReason::Refused => "refused",
            FailReason::Cancelled => "cancelled",
        }
    }
}

/// Something that happened to a request. The policy given with `Add` and
/// `Restore` is stored in [`Request::policy`] (it replaces what the request
/// carried: at `Restore`, the practice's configuration of now applies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A new request, already in the dispatcher's queue at its place: for
    /// [`Origin::Caller`] it is still the caller's dispatcher call; for
    /// [`Origin::Overflow`] the driver queued it again with its
    /// `joined_at` (or feeds [`Input::Lost`] if it could not). The book
    /// sets its status to [`Status::Queued`], its tries to 0 and clears
    /// `next_attempt_at`, `last_result` and `agent`.
    Add(Request, Policy),
    /// An open request from the store, at start-up: waiting until its
    /// `next_attempt_at` if that is still to come, else queued at once
    /// ([`Action::Enqueue`]). A request cut while offered or dialling goes
    /// back to the queue: a try cut by a restart stays counted, and the
    /// request gets its try even if that one was its last (a restart must
    /// not cost a patient their callback).
    Restore(Request, Policy),
    /// The dispatcher offered the request to an agent (a new agent replaces
    /// the one rung before).
    Offered {
        /// The request.
        key: String,
        /// The agent.
        agent: String,
    },
    /// The offer ended without the agent's answer: back to the queue (the
    /// dispatcher keeps it).
    OfferEnded {
        /// The request.
        key: String,
    },
    /// The agent answered the offer: the patient is being dialled. Counts
    /// a try.
    AttemptStarted {
        /// The request.
        key: String,
        /// The agent.
        agent: String,
    },
    /// The try ended with this result.
    AttemptFinished {
        /// The request.
        key: String,
        /// Its result.
        result: AttemptResult,
    },
    /// An operator cancels the request. Refused while it is dialling
    /// ([`BookError::Dialling`]): the try in progress finishes first.
    Cancel {
        /// The request.
        key: String,
    },
    /// An operator marks the request handled (called back by other
    /// means). Refused while dialling, like a cancel.
    Handled {
        /// The request.
        key: String,
        /// Who (the operator's login).
        by: String,
    },
    /// The driver lost the request's dispatcher call while it was queued or
    /// offered (the practice closed and the dispatcher refused it, or it
    /// overflowed): it waits one spacing of its policy and is queued again.
    /// Not a try.
    Lost {
        /// The request.
        key: String,
    },
}

impl Input {
    /// Short name, for errors and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Input::Add(..) => "add",
            Input::Restore(..) => "restore",
            Input::Offered { .. } => "offered",
            Input::OfferEnded { .. } => "offer_ended",
            Input::AttemptStarted { .. } => "attempt_started",
            Input::AttemptFinished { .. } => "attempt_finished",
            Input::Cancel { .. } => "cancel",
            Input::Handled { .. } => "handled",
            Input::Lost { .. } => "lost",
        }
    }
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write this request to the store as it now is (a closed status: it
    /// is closed, the store keeps it out of the pending ones). The book may
    /// already have forgotten it.
    Persist(Box<Request>),
    /// Put the request in its practice's dispatcher queue, with its
    /// `joined_at` as the join time (its place), its priority and triage
    /// ([`CallbackBook::get`] has them).
    Enqueue(String),
    /// The request's dispatcher call ended after a try (the attempt already
    /// told the dispatcher how: released or ended); the driver drops what
    /// links them.
    Release(String),
    /// Take the request out of the dispatcher (queued, or offered: the
    /// dispatcher then withdraws the offer), as an abandoned call.
    Withdraw(String),
}

/// What happened, for the records, metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new request (not emitted at `Restore`: already counted).
    Requested {
        /// The request.
        key: String,
        /// Its practice.
        practice: String,
        /// How it came.
        origin: Origin,
    },
    /// A try ended.
    Attempt {
        /// The request.
        key: String,
        /// Which try (1 for the first).
        number: u32,
        /// The agent who made it.
        agent: String,
        /// Its result.
        result: AttemptResult,
    },
    /// The patient was reached (final).
    Completed {
        /// The request.
        key: String,
        /// Whether it was by the deadline (`now <= deadline`).
        within_deadline: bool,
    },
    /// The request failed or was cancelled (final).
    Failed {
        /// The request.
        key: String,
        /// Why.
        reason: FailReason,
    },
    /// An operator marked the request handled (final).
    Handled {
        /// The request.
        key: String,
        /// Who.
        by: String,
    },
}

/// One output, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// For the driver.
    Action(Action),
    /// For the observers.
    Event(Event),
}

/// Why an input was not applied (it changed nothing).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BookError {
    /// `Add` or `Restore` of a key already open.
    #[error("callback request {0:?} is already in the book")]
    Duplicate(String),
    /// No open request has this key (never added, or closed and forgotten).
    #[error("no open callback request {0:?}")]
    Unknown(String),
    /// The request's status does not allow the input.
    #[error("callback request {key:?} is {status}: {input} does not apply")]
    WrongStatus {
        /// The request.
        key: String,
        /// Its status ([`Status::as_str`]).
        status: &'static str,
        /// The input ([`Input::as_str`]).
        input: &'static str,
    },
    /// A cancel or handled mark while the patient is being dialled or
    /// talks to the agent: the try in progress finishes first.
    #[error("callback request {0:?} is being dialled: the try in progress finishes first")]
    Dialling(String),
    /// A policy with no try (`max_attempts` 0).
    #[error("callback request {0:?}: the policy must allow at least one try")]
    NoAttempt(String),
}

/// The state of one practice's callbacks, for gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueSummary {
    /// Open requests.
    pub pending: u32,
    /// Age of the oldest open request (since it was requested); zero when
    /// none.
    pub oldest_age: Duration,
    /// Seconds left before the nearest deadline of an open request,
    /// negative when one is overdue; `None` when none is open.
    pub deadline_margin: Option<i64>,
}

/// The place of a request: the order of [`CallbackBook::open`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Place {
    joined_at: DateTime<Utc>,
    requested_at: DateTime<Utc>,
    key: String,
}

impl Place {
    fn of(r: &Request) -> Self {
        Self {
            joined_at: r.joined_at,
            requested_at: r.requested_at,
            key: r.key.clone(),
        }
    }
}

/// How an operator closes a request.
enum Closing {
    Cancel,
    Handled { by: String },
}

/// Every open callback request of the engine (one book per engine).
#[derive(Debug, Default)]
pub struct CallbackBook {
    /// Open requests in place order.
    requests: BTreeMap<Place, Request>,
    /// Key to place.
    places: HashMap<String, Place>,
    /// Waiting requests by next try time.
    waiting: BTreeSet<(DateTime<Utc>, String)>,
    /// Every practice that had a request, so its gauges go back to zero.
    practices: BTreeSet<String>,
    outputs: VecDeque<Output>,
}

impl CallbackBook {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// The open request with this key.
    pub fn get(&self, key: &str) -> Option<&Request> {
        self.places.get(key).and_then(|p| self.requests.get(p))
    }

    /// The open requests in place order: `joined_at`, then `requested_at`,
    /// then key.
    pub fn open(&self) -> impl Iterator<Item = &Request> {
        self.requests.values()
    }

    /// How many requests are open.
    pub fn len(&self) -> usize {
        self.requests.len()
    }

    /// Whether no request is open.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// The summary of one practice's open requests at `now` (all zero for a
    /// practice without any).
    pub fn summary(&self, practice: &str, now: DateTime<Utc>) -> QueueSummary {
        let mut s = QueueSummary::default();
        for r in self.open().filter(|r| r.practice == practice) {
            add_to_summary(&mut s, r, now);
        }
        s
    }

    /// The summary of every practice that ever had a request in this book,
    /// by practice name; a practice whose requests all closed reads zero,
    /// so its gauges go back to 0.
    pub fn summaries(&self, now: DateTime<Utc>) -> Vec<(String, QueueSummary)> {
        let mut all: BTreeMap<&str, QueueSummary> = self
            .practices
            .iter()
            .map(|p| (p.as_str(), QueueSummary::default()))
            .collect();
        for r in self.open() {
            add_to_summary(all.entry(r.practice.as_str()).or_default(), r, now);
        }
        all.into_iter().map(|(p, s)| (p.to_owned(), s)).collect()
    }

    /// Feeds one input. On error nothing changed and nothing was emitted.
    pub fn handle(&mut self, input: Input, now: DateTime<Utc>) -> Result<(), BookError> {
        match input {
            Input::Add(request, policy) => self.add(request, policy),
            Input::Restore(request, policy) => self.restore(request, policy, now),
            Input::Offered { key, agent } => self.offered(&key, agent),
            Input::OfferEnded { key } => self.offer_ended(&key),
            Input::AttemptStarted { key, agent } => self.attempt_started(&key, agent),
            Input::AttemptFinished { key, result } => self.attempt_finished(&key, result, now),
            Input::Cancel { key } => self.close_by_operator(&key, Closing::Cancel),
            Input::Handled { key, by } => self.close_by_operator(&key, Closing::Handled { by }),
            Input::Lost { key } => self.lost(&key, now),
        }
    }

    /// When [`CallbackBook::handle_timeout`] must be called next: the
    /// earliest next try of a waiting request.
    pub fn poll_timeout(&self) -> Option<DateTime<Utc>> {
        self.waiting.first().map(|(at, _)| *at)
    }

    /// Queues every waiting request whose next try is due at `now`, the
    /// earliest first: [`Action::Persist`] then [`Action::Enqueue`] for
    /// each.
    pub fn handle_timeout(&mut self, now: DateTime<Utc>) {
        let due: Vec<String> = self
            .waiting
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, key)| key.clone())
            .collect();
        for key in due {
            if let Some(mut r) = self.take(&key) {
                r.status = Status::Queued;
                r.next_attempt_at = None;
                self.save(r);
                self.act(Action::Enqueue(key));
            }
        }
    }

    /// The next output, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    // ------------------------------------------------------------ inputs

    fn add(&mut self, mut r: Request, policy: Policy) -> Result<(), BookError> {
        self.admissible(&r.key, policy)?;
        r.policy = policy;
        r.status = Status::Queued;
        r.attempts = 0;
        r.next_attempt_at = None;
        r.last_result = None;
        r.agent = None;
        self.practices.insert(r.practice.clone());
        self.emit(Event::Requested {
            key: r.key.clone(),
            practice: r.practice.clone(),
            origin: r.origin,
        });
        self.save(r);
        Ok(())
    }

    fn restore(
        &mut self,
        mut r: Request,
        policy: Policy,
        now: DateTime<Utc>,
    ) -> Result<(), BookError> {
        self.admissible(&r.key, policy)?;
        if !r.status.is_open() {
            return Err(BookError::WrongStatus {
                key: r.key,
                status: r.status.as_str(),
                input: "restore",
            });
        }
        let stored = r.clone();
        r.policy = policy;
        let enqueue = match r.next_attempt_at {
            Some(at) if at > now => {
                r.status = Status::Waiting;
                false
            }
            _ => {
                r.status = Status::Queued;
                r.next_attempt_at = None;
                true
            }
        };
        self.practices.insert(r.practice.clone());
        let key = r.key.clone();
        if r == stored {
            self.put(r);
        } else {
            self.save(r);
        }
        if enqueue {
            self.act(Action::Enqueue(key));
        }
        Ok(())
    }

    fn offered(&mut self, key: &str, agent: String) -> Result<(), BookError> {
        let status = &self.open_request(key)?.status;
        match status {
            Status::Offered { agent: rung } if *rung == agent => return Ok(()),
            Status::Queued | Status::Offered { .. } => {}
            other => return Err(wrong(key, other, "offered")),
        }
        let mut r = self.take_open(key)?;
        r.agent = Some(agent.clone());
        r.status = Status::Offered { agent };
        self.save(r);
        Ok(())
    }

    fn offer_ended(&mut self, key: &str) -> Result<(), BookError> {
        self.check(key, "offer_ended", |s| matches!(s, Status::Offered { .. }))?;
        let mut r = self.take_open(key)?;
        r.status = Status::Queued;
        self.save(r);
        Ok(())
    }

    fn attempt_started(&mut self, key: &str, agent: String) -> Result<(), BookError> {
        self.check(key, "attempt_started", |s| {
            matches!(s, Status::Offered { .. })
        })?;
        let mut r = self.take_open(key)?;
        r.attempts = r.attempts.saturating_add(1);
        r.agent = Some(agent.clone());
        r.status = Status::Dialling { agent };
        self.save(r);
        Ok(())
    }

    fn attempt_finished(
        &mut self,
        key: &str,
        result: AttemptResult,
        now: DateTime<Utc>,
    ) -> Result<(), BookError> {
        self.check(key, "attempt_finished", |s| {
            matches!(s, Status::Dialling { .. })
        })?;
        let mut r = self.take_open(key)?;
        let agent = match &r.status {
            Status::Dialling { agent } => agent.clone(),
            _ => r.agent.clone().unwrap_or_default(),
        };
        r.last_result = Some(result);
        self.emit(Event::Attempt {
            key: key.to_owned(),
            number: r.attempts,
            agent,
            result,
        });
        match result {
            AttemptResult::Answered => {
                r.status = Status::Completed;
                self.emit(Event::Completed {
                    key: key.to_owned(),
                    within_deadline: now <= r.deadline,
                });
                self.close(r);
            }
            AttemptResult::Refused => {
                r.status = Status::Failed;
                self.emit(Event::Failed {
                    key: key.to_owned(),
                    reason: FailReason::Refused,
                });
                self.close(r);
            }
            _ if r.attempts < r.policy.max_attempts => {
                r.status = Status::Waiting;
                r.next_attempt_at = Some(later(now, r.policy.spacing));
                self.save(r);
            }
            _ => {
                r.status = Status::Failed;
                self.emit(Event::Failed {
                    key: key.to_owned(),
                    reason: FailReason::Exhausted(result),
                });
                self.close(r);
            }
        }
        self.act(Action::Release(key.to_owned()));
        Ok(())
    }

    fn close_by_operator(&mut self, key: &str, closing: Closing) -> Result<(), BookError> {
        if let Status::Dialling { .. } = self.open_request(key)?.status {
            return Err(BookError::Dialling(key.to_owned()));
        }
        let mut r = self.take_open(key)?;
        let withdraw = r.status.in_dispatcher();
        match closing {
            Closing::Cancel => {
                r.status = Status::Cancelled;
                self.emit(Event::Failed {
                    key: key.to_owned(),
                    reason: FailReason::Cancelled,
                });
            }
            Closing::Handled { by } => {
                r.status = Status::Handled;
                self.emit(Event::Handled {
                    key: key.to_owned(),
                    by,
                });
            }
        }
        self.close(r);
        if withdraw {
            self.act(Action::Withdraw(key.to_owned()));
        }
        Ok(())
    }

    fn lost(&mut self, key: &str, now: DateTime<Utc>) -> Result<(), BookError> {
        self.check(key, "lost", Status::in_dispatcher)?;
        let mut r = self.take_open(key)?;
        r.status = Status::Waiting;
        r.next_attempt_at = Some(later(now, r.policy.spacing));
        self.save(r);
        Ok(())
    }

    // ----------------------------------------------------------- helpers

    fn act(&mut self, a: Action) {
        self.outputs.push_back(Output::Action(a));
    }

    fn emit(&mut self, e: Event) {
        self.outputs.push_back(Output::Event(e));
    }

    /// A new key with a policy allowing a try.
    fn admissible(&self, key: &str, policy: Policy) -> Result<(), BookError> {
        if policy.max_attempts == 0 {
            return Err(BookError::NoAttempt(key.to_owned()));
        }
        if self.places.contains_key(key) {
            return Err(BookError::Duplicate(key.to_owned()));
        }
        Ok(())
    }

    fn open_request(&self, key: &str) -> Result<&Request, BookError> {
        self.get(key)
            .ok_or_else(|| BookError::Unknown(key.to_owned()))
    }

    /// The request is open and its status passes `ok`.
    fn check(
        &self,
        key: &str,
        input: &'static str,
        ok: impl Fn(&Status) -> bool,
    ) -> Result<(), BookError> {
        let status = &self.open_request(key)?.status;
        if ok(status) {
            Ok(())
        } else {
            Err(wrong(key, status, input))
        }
    }

    /// Takes the request out of the book and its indexes, to change it
    /// (then [`Self::save`] or [`Self::close`]).
    fn take(&mut self, key: &str) -> Option<Request> {
        let place = self.places.remove(key)?;
        let r = self.requests.remove(&place)?;
        if let Some(at) = r.next_attempt_at {
            self.waiting.remove(&(at, r.key.clone()));
        }
        Some(r)
    }

    fn take_open(&mut self, key: &str) -> Result<Request, BookError> {
        self.take(key)
            .ok_or_else(|| BookError::Unknown(key.to_owned()))
    }

    /// Puts an open request (back) in the book and its indexes.
    fn put(&mut self, r: Request) {
        if let (Status::Waiting, Some(at)) = (&r.status, r.next_attempt_at) {
            self.waiting.insert((at, r.key.clone()));
        }
        let place = Place::of(&r);
        self.places.insert(r.key.clone(), place.clone());
        self.requests.insert(place, r);
    }

    fn persist(&mut self, r: &Request) {
        self.act(Action::Persist(Box::new(r.clone())));
    }

    /// Persists a changed open request and puts it back.
    fn save(&mut self, r: Request) {
        self.persist(&r);
        self.put(r);
    }

    /// Persists a closed request and forgets it.
    fn close(&mut self, r: Request) {
        self.persist(&r);
    }
}

fn wrong(key: &str, status: &Status, input: &'static str) -> BookError {
    BookError::WrongStatus {
        key: key.to_owned(),
        status: status.as_str(),
        input,
    }
}

fn add_to_summary(s: &mut QueueSummary, r: &Request, now: DateTime<Utc>) {
    s.pending = s.pending.saturating_add(1);
    let age = now
        .signed_duration_since(r.requested_at)
        .to_std()
        .unwrap_or_default();
    s.oldest_age = s.oldest_age.max(age);
    let margin = r.deadline.signed_duration_since(now).num_seconds();
    s.deadline_margin = Some(s.deadline_margin.map_or(margin, |m| m.min(margin)));
}

#[cfg(test)]
mod tests;
