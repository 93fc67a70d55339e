//! The delivery queue: every voicemail message not yet delivered, its
//! attempts and its next try, driven by `(input, now)`.
//!
//! Rules:
//!
//! - A new message is tried at once; each failed attempt waits the next
//!   delay of the [`Policy`]'s schedule (the last delay repeats) before the
//!   next one.
//! - One attempt at a time per message: a message being sent is neither
//!   sent again nor expired until its result comes back.
//! - An attempt is counted (and saved) when it starts, so that a crash in
//!   the middle of sending still spaces the next try after a restart.
//! - A message still undelivered [`Policy::expire_after`] after it was
//!   queued expires: it is saved as [`Status::Expired`] and reported, and
//!   nobody tries it again. Nothing else ever removes a message.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::VoicemailMessage;

/// When to try again and when to stop.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Delay after the 1st, 2nd, ... failed attempt; the last one repeats.
    /// Empty: one minute.
    pub retry: Vec<Duration>,
    /// How long after it was queued an undelivered message expires.
    pub expire_after: Duration,
}

impl Default for Policy {
    /// 1, 5, 15, 30 minutes, then every hour; expiry after 3 days.
    fn default() -> Self {
        Policy {
            retry: [60, 300, 900, 1800, 3600].map(Duration::from_secs).to_vec(),
            expire_after: Duration::from_secs(72 * 3600),
        }
    }
}

impl Policy {
    /// The wait after `failures` failed attempts (at least 1).
    pub fn delay(&self, failures: u32) -> Duration {
        let i = usize::try_from(failures.saturating_sub(1)).unwrap_or(usize::MAX);
        self.retry
            .get(i)
            .or(self.retry.last())
            .copied()
            .unwrap_or(Duration::from_secs(60))
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Not delivered yet: being tried, or waiting for its next try.
    Pending,
    /// The mail server accepted the message.
    Delivered,
    /// Given up after [`Policy::expire_after`].
    Expired,
}

impl Status {
    /// The stored name: `pending`, `delivered`, `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Delivered => "delivered",
            Status::Expired => "expired",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s names.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Status::Pending),
            "delivered" => Some(Status::Delivered),
            "expired" => Some(Status::Expired),
            _ => None,
        }
    }
}

/// One message and its delivery state, as saved.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The message.
    pub message: VoicemailMessage,
    /// Where it stands.
    pub status: Status,
    /// Attempts started so far.
    pub attempts: u32,
    /// When it entered the queue (expiry is counted from there).
    pub queued_at: DateTime<Utc>,
    /// When it is due next (pending only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the last attempt started.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// Why the last attempt failed (no personal data: the mail server's
    /// answer or the connection error).
    pub last_error: Option<String>,
    /// When it was delivered or expired.
    pub closed_at: Option<DateTime<Utc>>,
}

impl Delivery {
    /// The key: the message's call id.
    pub fn key(&self) -> &str {
        &self.message.call_id
    }

    /// When it expires.
    pub fn expires_at(&self, policy: &Policy) -> DateTime<Utc> {
        add(self.queued_at, policy.expire_after)
    }
}

/// What the driver feeds the queue.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A message was just recorded: queue it, due at once. Ignored if its
    /// key is already queued.
    New(Box<VoicemailMessage>),
    /// A saved pending delivery, at start-up. Ignored unless pending, or
    /// if its key is already queued.
    Restore(Box<Delivery>),
    /// The attempt on `key` succeeded.
    Sent {
        /// The message's key.
        key: String,
    },
    /// The attempt on `key` failed.
    Failed {
        /// The message's key.
        key: String,
        /// Why (no personal data).
        error: String,
    },
}

/// How an attempt or a message ended, for the metrics
/// (`permanence_voicemail_deliveries_total{result}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryResult {
    /// Delivered.
    Delivered,
    /// An attempt failed; the message will be tried again.
    Failed,
    /// Given up: the message expired undelivered.
    Expired,
}

impl DeliveryResult {
    /// The metric label: `delivered`, `failed`, `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryResult::Delivered => "delivered",
            DeliveryResult::Failed => "failed",
            DeliveryResult::Expired => "expired",
        }
    }
}

/// What the queue asks of the driver.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send this message now, then feed [`Input::Sent`] or
    /// [`Input::Failed`].
    Send(Box<Delivery>),
    /// Write this state (insert or replace by key).
    Save(Box<Delivery>),
    /// An attempt or a message ended so.
    Outcome {
        /// The message's key.
        key: String,
        /// How.
        result: DeliveryResult,
    },
}

/// Every pending voicemail delivery of the engine.
#[derive(Debug)]
pub struct DeliveryQueue {
    policy: Policy,
    pending: BTreeMap<String, Delivery>,
    sending: BTreeSet<String>,
    out: VecDeque<Output>,
}

impl DeliveryQueue {
    /// An empty queue following `policy`.
    pub fn new(policy: Policy) -> Self {
        DeliveryQueue {
            policy,
            pending: BTreeMap::new(),
            sending: BTreeSet::new(),
            out: VecDeque::new(),
        }
    }

    /// Feeds one input at `now`, then starts what is due.
    pub fn handle(&mut self, input: Input, now: DateTime<Utc>) {
        match input {
            Input::New(message) => self.add_new(*message, now),
            Input::Restore(d) => self.restore(*d),
            Input::Sent { key } => self.sent(&key, now),
            Input::Failed { key, error } => self.failed(&key, error, now),
        }
        self.handle_timeout(now);
    }

    /// Starts the attempts that are due and expires what is too old.
    pub fn handle_timeout(&mut self, now: DateTime<Utc>) {
        let idle: Vec<String> = self
            .pending
            .keys()
            .filter(|k| !self.sending.contains(*k))
            .cloned()
            .collect();
        for key in idle {
            self.step(&key, now);
        }
    }

    /// The next time [`handle_timeout`](Self::handle_timeout) has something
    /// to do (a retry or an expiry), if any.
    pub fn poll_timeout(&self) -> Option<DateTime<Utc>> {
        self.pending
            .values()
            .filter(|d| !self.sending.contains(d.key()))
            .map(|d| {
                let expiry = d.expires_at(&self.policy);
                d.next_attempt_at.map_or(expiry, |n| n.min(expiry))
            })
            .min()
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Messages not delivered yet (being sent included).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// When the oldest pending message was queued.
    pub fn oldest_queued_at(&self) -> Option<DateTime<Utc>> {
        self.pending.values().map(|d| d.queued_at).min()
    }

    fn add_new(&mut self, message: VoicemailMessage, now: DateTime<Utc>) {
        if self.pending.contains_key(&message.call_id) {
            return;
        }
        let d = Delivery {
            message,
            status: Status::Pending,
            attempts: 0,
            queued_at: now,
            next_attempt_at: Some(now),
            last_attempt_at: None,
            last_error: None,
            closed_at: None,
        };
        self.out.push_back(Output::Save(Box::new(d.clone())));
        self.pending.insert(d.key().to_owned(), d);
    }

    fn restore(&mut self, d: Delivery) {
        if d.status == Status::Pending && !self.pending.contains_key(d.key()) {
            self.pending.insert(d.key().to_owned(), d);
        }
    }

    fn sent(&mut self, key: &str, now: DateTime<Utc>) {
        if !self.sending.remove(key) {
            return;
        }
        let Some(mut d) = self.pending.remove(key) else {
            return;
        };
        d.status = Status::Delivered;
        d.next_attempt_at = None;
        d.last_error = None;
        d.closed_at = Some(now);
        self.close(d, DeliveryResult::Delivered);
    }

    fn failed(&mut self, key: &str, error: String, now: DateTime<Utc>) {
        if !self.sending.remove(key) {
            return;
        }
        let policy = &self.policy;
        let Some(d) = self.pending.get_mut(key) else {
            return;
        };
        d.next_attempt_at = Some(add(now, policy.delay(d.attempts)));
        d.last_error = Some(error);
        self.out.push_back(Output::Save(Box::new(d.clone())));
        self.out.push_back(Output::Outcome {
            key: key.to_owned(),
            result: DeliveryResult::Failed,
        });
    }

    /// Expires or starts the idle pending delivery `key` if it is time.
    fn step(&mut self, key: &str, now: DateTime<Utc>) {
        let policy = &self.policy;
        let Some(d) = self.pending.get_mut(key) else {
            return;
        };
        if now >= d.expires_at(policy) {
            if let Some(mut d) = self.pending.remove(key) {
                d.status = Status::Expired;
                d.next_attempt_at = None;
                d.closed_at = Some(now);
                self.close(d, DeliveryResult::Expired);
            }
            return;
        }
        if d.next_attempt_at.is_some_and(|t| t > now) {
            return;
        }
        d.attempts = d.attempts.saturating_add(1);
        d.last_attempt_at = Some(now);
        // If the engine stops during the attempt, the next one waits as
        // after a failure.
        d.next_attempt_at = Some(add(now, policy.delay(d.attempts)));
        self.sending.insert(key.to_owned());
        self.out.push_back(Output::Save(Box::new(d.clone())));
        self.out.push_back(Output::Send(Box::new(d.clone())));
    }

    fn close(&mut self, d: Delivery, result: DeliveryResult) {
        let key = d.key().to_owned();
        self.out.push_back(Output::Save(Box::new(d)));
        self.out.push_back(Output::Outcome { key, result });
    }
}

/// `t + d`, saturating at the end of time.
fn add(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests;
