//! Per-practice series: one compact block of atomics per practice,
//! updated lock-free and read in place by the exposition.

use std::time::Duration;

use permanence_acd::{AbandonPhase, OfferFailure, OverflowTarget, PracticeId};
use permanence_types::{Disposition, OverflowKind};

use crate::atomics::{AtomicHistogram, Counter, FloatGauge, IntGauge};
use crate::callbacks::{
    CallbackAttemptResult, CallbackFailure, CallbackOrigin, CALLBACK_MARGIN_NONE_PENDING,
};
use crate::outbound::OutboundOutcome;

/// How an offer to an agent ended (`result` label of
/// `permanence_offers_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OfferResult {
    /// The agent answered.
    Answered,
    /// Ring-no-answer: the ring timeout elapsed.
    NoAnswer,
    /// 486 Busy Here.
    Busy,
    /// 603 Decline.
    Rejected,
    /// 480/408/transport error.
    Unreachable,
    /// Withdrawn: the caller hung up while it rang, the call overflowed,
    /// the agent logged out, paused, became unreachable or was removed.
    Cancelled,
}

impl OfferResult {
    /// Every result, in label order.
    pub const ALL: [OfferResult; 6] = [
        OfferResult::Answered,
        OfferResult::NoAnswer,
        OfferResult::Busy,
        OfferResult::Rejected,
        OfferResult::Unreachable,
        OfferResult::Cancelled,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            OfferResult::Answered => "answered",
            OfferResult::NoAnswer => "no_answer",
            OfferResult::Busy => "busy",
            OfferResult::Rejected => "rejected",
            OfferResult::Unreachable => "unreachable",
            OfferResult::Cancelled => "cancelled",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl From<OfferFailure> for OfferResult {
    fn from(f: OfferFailure) -> Self {
        match f {
            OfferFailure::Busy => OfferResult::Busy,
            OfferFailure::Rejected => OfferResult::Rejected,
            OfferFailure::Unreachable => OfferResult::Unreachable,
        }
    }
}

/// How an offered call left to a defined exit: the `target` label values
/// of `permanence_calls_overflowed_total`, in exposition order
/// (`callback_request`: the caller asked from the queue to be called back,
/// keeping their place).
pub(crate) const CALL_OVERFLOW_LABELS: [&str; 4] =
    ["callback", "callback_request", "hangup", "voicemail"];

/// Index of a call's exit in [`CALL_OVERFLOW_LABELS`] (`None`: the
/// caller's callback request).
fn call_overflow_index(kind: Option<OverflowKind>) -> usize {
    match kind {
        Some(OverflowKind::Callback) => 0,
        None => 1,
        Some(OverflowKind::Hangup) => 2,
        Some(OverflowKind::Voicemail) => 3,
    }
}

/// Where an overflowing call went: the `target` label values of
/// `permanence_queue_overflowed_total`, in exposition order. A pool
/// overflow is counted too (the call stays queued and an overflow pool's
/// agents are added), under `pool` whatever the pool.
pub(crate) const OVERFLOW_LABELS: [&str; 4] = ["callback", "hangup", "pool", "voicemail"];

/// Index of `target` in [`OVERFLOW_LABELS`].
fn overflow_index(target: &OverflowTarget) -> usize {
    match target {
        OverflowTarget::Callback => 0,
        OverflowTarget::Hangup => 1,
        OverflowTarget::Pool(_) => 2,
        OverflowTarget::Voicemail => 3,
    }
}

/// Every series of one practice, in one allocation: updating them is an
/// atomic operation, with no lookup and no lock shared with other
/// practices. Obtained from [`crate::Metrics::practices`] /
/// [`crate::Metrics::practice`] and cached by the caller.
///
/// The exposition reads the practices of the current set
/// ([`crate::Metrics::practice_set`]); a handle of a practice removed by a
/// reload stays usable, its updates are simply no longer exported.
#[derive(Debug)]
pub struct PracticeMetrics {
    pub(crate) id: PracticeId,
    /// The id escaped as a label value (rendering).
    pub(crate) escaped: Box<str>,
    pub(crate) short_abandon: Duration,
    // The practice's calls, by their disposition (counted when they end).
    pub(crate) calls_offered: Counter,
    pub(crate) calls_answered: Counter,
    /// `[phase][short]`: [`permanence_types::AbandonPhase::index`] ×
    /// (false, true).
    pub(crate) calls_abandoned: [[Counter; 2]; 6],
    /// By [`CALL_OVERFLOW_LABELS`] index.
    pub(crate) calls_overflowed: [Counter; 4],
    pub(crate) calls_failed: Counter,
    pub(crate) closed: Counter,
    // The dispatcher's queue (counted as its events happen).
    pub(crate) queue_entered: Counter,
    pub(crate) queue_answered: Counter,
    /// `[phase][short]`: (queue, ringing) × (false, true).
    pub(crate) queue_abandoned: [[Counter; 2]; 2],
    /// By [`OVERFLOW_LABELS`] index.
    pub(crate) queue_overflowed: [Counter; 4],
    /// By [`OfferResult`] index.
    pub(crate) offers: [Counter; 6],
    pub(crate) wait_answered: AtomicHistogram,
    pub(crate) wait_abandoned: AtomicHistogram,
    pub(crate) ring: AtomicHistogram,
    pub(crate) talk: AtomicHistogram,
    pub(crate) wrapup: AtomicHistogram,
    pub(crate) waiting: IntGauge,
    pub(crate) oldest_wait: FloatGauge,
    pub(crate) estimated_wait: FloatGauge,
    pub(crate) eligible: IntGauge,
    pub(crate) open: IntGauge,
    /// Outbound calls ended, by [`OutboundOutcome::index`].
    pub(crate) outbound: [Counter; 5],
    /// Talk time of answered outbound calls, in milliseconds (exported in
    /// seconds).
    pub(crate) outbound_talk_ms: Counter,
    /// Callback requests, by [`CallbackOrigin::index`].
    pub(crate) callbacks_requested: [Counter; 2],
    /// Callback dialling attempts, by [`CallbackAttemptResult::index`].
    pub(crate) callback_attempts: [Counter; 4],
    /// Callbacks that reached the patient, by
    /// [`crate::callbacks::TIMELINESS_LABELS`] index (after, within).
    pub(crate) callbacks_completed: [Counter; 2],
    /// Callbacks that ended without reaching the patient, by
    /// [`CallbackFailure::index`].
    pub(crate) callbacks_failed: [Counter; 5],
    /// Callbacks marked done by an operator without dialling.
    pub(crate) callbacks_handled: Counter,
    pub(crate) callbacks_pending: IntGauge,
    /// Seconds.
    pub(crate) callbacks_oldest_age: FloatGauge,
    /// Seconds; [`CALLBACK_MARGIN_NONE_PENDING`] while nothing is pending.
    pub(crate) callbacks_margin: IntGauge,
}

impl PracticeMetrics {
    /// A practice with every series at zero.
    pub(crate) fn new(id: PracticeId, short_abandon: Duration) -> Self {
        Self {
            escaped: crate::render::escape(id.as_str(), true).into(),
            id,
            short_abandon,
            calls_offered: Counter::default(),
            calls_answered: Counter::default(),
            calls_abandoned: Default::default(),
            calls_overflowed: Default::default(),
            calls_failed: Counter::default(),
            closed: Counter::default(),
            queue_entered: Counter::default(),
            queue_answered: Counter::default(),
            queue_abandoned: Default::default(),
            queue_overflowed: Default::default(),
            offers: Default::default(),
            wait_answered: AtomicHistogram::default(),
            wait_abandoned: AtomicHistogram::default(),
            ring: AtomicHistogram::default(),
            talk: AtomicHistogram::default(),
            wrapup: AtomicHistogram::default(),
            waiting: IntGauge::default(),
            oldest_wait: FloatGauge::default(),
            estimated_wait: FloatGauge::default(),
            eligible: IntGauge::default(),
            open: IntGauge::default(),
            outbound: Default::default(),
            outbound_talk_ms: Counter::default(),
            callbacks_requested: Default::default(),
            callback_attempts: Default::default(),
            callbacks_completed: Default::default(),
            callbacks_failed: Default::default(),
            callbacks_handled: Counter::default(),
            callbacks_pending: IntGauge::default(),
            callbacks_oldest_age: FloatGauge::default(),
            // Nothing pending yet: the sentinel, not 0 (a deadline due now).
            callbacks_margin: IntGauge::new(CALLBACK_MARGIN_NONE_PENDING),
        }
    }

    /// The practice id.
    pub fn id(&self) -> &PracticeId {
        &self.id
    }

    /// A forwarded call of the practice ended with `disposition`, `since_answer`
    /// after the engine answered it (zero if it never did): the
    /// practice's call figures (`permanence_calls_*_total`), one count per
    /// call. An offered call is counted in `permanence_calls_offered_total`
    /// and in exactly one of answered, abandoned (with its phase, `short`
    /// when `since_answer <= short_abandon`), overflowed or failed.
    pub fn call_ended(&self, disposition: Disposition, since_answer: Duration) {
        if disposition.offered() {
            self.calls_offered.inc();
        }
        match disposition {
            Disposition::Closed => self.closed.inc(),
            Disposition::Unanswered => {}
            Disposition::Answered => self.calls_answered.inc(),
            Disposition::Abandoned(phase) => {
                let short = since_answer <= self.short_abandon;
                self.calls_abandoned[phase.index()][usize::from(short)].inc();
            }
            Disposition::Overflowed(kind) => {
                self.calls_overflowed[call_overflow_index(Some(kind))].inc()
            }
            Disposition::CallbackRequested => {
                self.calls_overflowed[call_overflow_index(None)].inc()
            }
            Disposition::Failed => self.calls_failed.inc(),
        }
    }

    /// A call joined the practice's queue, in the dispatcher
    /// (`permanence_queue_entered_total`).
    pub fn queue_entered(&self) {
        self.queue_entered.inc();
    }

    /// An agent answered after `wait` in queue
    /// (`permanence_queue_answered_total`); `ring` is how long the
    /// answering agent's phone rang, if known. Also counts the offer as
    /// answered.
    pub fn queue_answered(&self, wait: Duration, ring: Option<Duration>) {
        self.queue_answered.inc();
        self.wait_answered.observe(wait.as_secs_f64());
        self.offers[OfferResult::Answered.index()].inc();
        if let Some(r) = ring {
            self.ring.observe(r.as_secs_f64());
        }
    }

    /// The caller hung up in the queue before an answer after `wait`
    /// (`permanence_queue_abandoned_total`); `short` is `wait <=
    /// short_abandon` (the threshold given to [`crate::Metrics::new`]).
    /// Also counts the ringing offer as cancelled when `offer_ringing`.
    pub fn queue_abandoned(&self, phase: AbandonPhase, wait: Duration, offer_ringing: bool) {
        let short = wait <= self.short_abandon;
        let pi = match phase {
            AbandonPhase::Queue => 0,
            AbandonPhase::Ringing => 1,
        };
        self.queue_abandoned[pi][usize::from(short)].inc();
        self.wait_abandoned.observe(wait.as_secs_f64());
        if offer_ringing {
            self.offers[OfferResult::Cancelled.index()].inc();
        }
    }

    /// The call overflowed in the dispatcher (left to `target`, or
    /// retargeted to a pool: `permanence_queue_overflowed_total`).
    pub fn queue_overflowed(&self, target: &OverflowTarget) {
        self.queue_overflowed[overflow_index(target)].inc();
    }

    /// An offer to an agent ended without an answer (an answered offer is
    /// counted by [`Self::call_answered`]).
    pub fn offer_ended(&self, result: OfferResult) {
        self.offers[result.index()].inc();
    }

    /// An answered call of the practice ended after `talk`.
    pub fn call_completed(&self, talk: Duration) {
        self.talk.observe(talk.as_secs_f64());
    }

    /// An agent finished the wrap-up of one of the practice's calls.
    pub fn wrap_up_done(&self, wrap_up: Duration) {
        self.wrapup.observe(wrap_up.as_secs_f64());
    }

    /// Talk time of the answered outbound calls so far, in seconds (the
    /// exported value).
    pub(crate) fn outbound_talk_seconds(&self) -> f64 {
        self.outbound_talk_ms.get() as f64 / 1000.0
    }

    /// An outbound call placed for the practice ended with `outcome`
    /// (`permanence_outbound_calls_total`); when it was answered, `talk`
    /// (answer to hang-up) is added to
    /// `permanence_outbound_talk_seconds_total` at millisecond precision,
    /// otherwise it is ignored. The practice half of
    /// [`crate::Metrics::outbound_ended`], which also moves the
    /// in-progress gauge.
    pub(crate) fn outbound_call_ended(&self, outcome: OutboundOutcome, talk: Duration) {
        if let Some(c) = self.outbound.get(outcome.index()) {
            c.inc();
        }
        if outcome == OutboundOutcome::Answered {
            self.outbound_talk_ms
                .add(u64::try_from(talk.as_millis()).unwrap_or(u64::MAX));
        }
    }

    /// A callback was requested (`permanence_callbacks_requested_total`).
    /// The practice half of [`crate::Metrics::callback_requested`].
    pub(crate) fn callback_requested(&self, origin: CallbackOrigin) {
        if let Some(c) = self.callbacks_requested.get(origin.index()) {
            c.inc();
        }
    }

    /// A callback dialling attempt ended
    /// (`permanence_callback_attempts_total`).
    pub(crate) fn callback_attempt(&self, result: CallbackAttemptResult) {
        if let Some(c) = self.callback_attempts.get(result.index()) {
            c.inc();
        }
    }

    /// A callback reached the patient
    /// (`permanence_callbacks_completed_total`).
    pub(crate) fn callback_completed(&self, within_deadline: bool) {
        if let Some(c) = self.callbacks_completed.get(usize::from(within_deadline)) {
            c.inc();
        }
    }

    /// A callback ended without reaching the patient
    /// (`permanence_callbacks_failed_total`).
    pub(crate) fn callback_failed(&self, reason: CallbackFailure) {
        if let Some(c) = self.callbacks_failed.get(reason.index()) {
            c.inc();
        }
    }

    /// A callback was marked done without dialling
    /// (`permanence_callbacks_handled_total`).
    pub(crate) fn callback_handled(&self) {
        self.callbacks_handled.inc();
    }

    /// Sets the callback queue gauges; see
    /// [`crate::Metrics::set_callback_queue`].
    pub(crate) fn set_callback_queue(
        &self,
        pending: u32,
        oldest_age: Duration,
        deadline_margin: Option<i64>,
    ) {
        self.callbacks_pending.set(i64::from(pending));
        if pending == 0 {
            self.callbacks_oldest_age.set(0.0);
            self.callbacks_margin.set(CALLBACK_MARGIN_NONE_PENDING);
        } else {
            self.callbacks_oldest_age.set(oldest_age.as_secs_f64());
            self.callbacks_margin
                .set(deadline_margin.unwrap_or(CALLBACK_MARGIN_NONE_PENDING));
        }
    }
}
