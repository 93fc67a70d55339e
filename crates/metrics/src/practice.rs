//! Per-practice series: one compact block of atomics per practice,
//! updated lock-free and read in place by the exposition.

use std::time::Duration;

use permanence_acd::{AbandonPhase, OfferFailure, OverflowTarget, PracticeId};

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

/// Where an overflowing call went: the `target` label values of
/// `permanence_calls_overflowed_total`, in exposition order. A pool
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
    pub(crate) offered: Counter,
    pub(crate) answered: Counter,
    pub(crate) closed: Counter,
    /// `[phase][short]`: (queue, ringing) × (false, true).
    pub(crate) abandoned: [[Counter; 2]; 2],
    /// By [`OVERFLOW_LABELS`] index.
    pub(crate) overflowed: [Counter; 4],
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
            offered: Counter::default(),
            answered: Counter::default(),
            closed: Counter::default(),
            abandoned: Default::default(),
            overflowed: Default::default(),
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

    /// A call joined the practice's queue (`permanence_calls_offered_total`).
    pub fn call_offered(&self) {
        self.offered.inc();
    }

    /// A call arrived while the practice was closed
    /// (`permanence_calls_closed_total`; not counted as offered).
    pub fn call_closed(&self) {
        self.closed.inc();
    }

    /// An agent answered after `wait` in queue; `ring` is how long the
    /// answering agent's phone rang, if known. Also counts the offer as
    /// answered.
    pub fn call_answered(&self, wait: Duration, ring: Option<Duration>) {
        self.answered.inc();
        self.wait_answered.observe(wait.as_secs_f64());
        self.offers[OfferResult::Answered.index()].inc();
        if let Some(r) = ring {
            self.ring.observe(r.as_secs_f64());
        }
    }

    /// The caller hung up before an answer after `wait`; `short` is
    /// `wait <= short_abandon` (the threshold given to
    /// [`crate::Metrics::new`]). Also counts the ringing offer as cancelled
    /// when `offer_ringing`.
    pub fn call_abandoned(&self, phase: AbandonPhase, wait: Duration, offer_ringing: bool) {
        let short = wait <= self.short_abandon;
        let pi = match phase {
            AbandonPhase::Queue => 0,
            AbandonPhase::Ringing => 1,
        };
        self.abandoned[pi][usize::from(short)].inc();
        self.wait_abandoned.observe(wait.as_secs_f64());
        if offer_ringing {
            self.offers[OfferResult::Cancelled.index()].inc();
        }
    }

    /// The call overflowed (left to `target`, or retargeted to a pool).
    pub fn call_overflowed(&self, target: &OverflowTarget) {
        self.overflowed[overflow_index(target)].inc();
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
