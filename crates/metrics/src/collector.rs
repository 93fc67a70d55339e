//! The per-practice families as registry collectors.

use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, LabelPair, MetricFamily, MetricType};

use crate::atomics::{AtomicHistogram, HistogramSnapshot};
use crate::callbacks::{CallbackAttemptResult, CallbackFailure, CallbackOrigin, TIMELINESS_LABELS};
use crate::outbound::OutboundOutcome;
use crate::practice::{OfferResult, CALL_OVERFLOW_LABELS, OVERFLOW_LABELS};
use crate::{MetricsError, PracticeMetrics, PracticeSet, BUCKETS};
use permanence_types::AbandonPhase;

/// A per-practice family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PracticeFamily {
    Offered,
    Answered,
    Closed,
    Abandoned,
    Overflowed,
    Failed,
    QueueEntered,
    QueueAnswered,
    QueueAbandoned,
    QueueOverflowed,
    Offers,
    Wait,
    Ring,
    Talk,
    Wrapup,
    QueueWaiting,
    QueueOldestWait,
    QueueEstimatedWait,
    AgentsEligible,
    PracticeOpen,
    OutboundCalls,
    OutboundTalk,
    CallbacksRequested,
    CallbackAttempts,
    CallbacksCompleted,
    CallbacksFailed,
    CallbacksHandled,
    CallbacksPending,
    CallbacksOldestAge,
    CallbacksMargin,
}

/// The metric type of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A monotonic counter.
    Counter,
    /// A gauge.
    Gauge,
    /// A histogram (`_bucket`, `_sum` and `_count` series).
    Histogram,
}

impl Kind {
    /// As written on the `# TYPE` line.
    pub fn text(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One value of a series.
#[derive(Debug, Clone, Copy)]
enum Value {
    Counter(u64),
    /// A counter with a fractional value (seconds).
    FloatCounter(f64),
    Gauge(f64),
    Histogram(HistogramSnapshot),
}

/// Receives a series: its labels besides `practice`, and its value.
type SeriesSink<'a> = dyn FnMut(&[(&str, &str)], Value) + 'a;

/// `outcome` values of `permanence_wait_seconds`, sorted.
pub(crate) const WAIT_OUTCOMES: [&str; 2] = ["abandoned", "answered"];

/// `phase` values of `permanence_queue_abandoned_total`, sorted (index of
/// [`PracticeMetrics::queue_abandoned`]).
pub(crate) const PHASES: [&str; 2] = ["queue", "ringing"];

/// The phases of `permanence_calls_abandoned_total` in label order (the
/// counters are indexed by [`AbandonPhase::index`]).
pub(crate) fn call_phases_sorted() -> [AbandonPhase; 6] {
    let mut all = AbandonPhase::ALL;
    all.sort_by_key(|p| p.as_str());
    all
}

/// `short` values, sorted (second index of [`PracticeMetrics::abandoned`]).
pub(crate) const SHORT: [&str; 2] = ["false", "true"];

/// `result` values, sorted.
pub(crate) const OFFER_ORDER: [OfferResult; 6] = [
    OfferResult::Answered,
    OfferResult::Busy,
    OfferResult::Cancelled,
    OfferResult::NoAnswer,
    OfferResult::Rejected,
    OfferResult::Unreachable,
];

impl PracticeFamily {
    /// Every per-practice family.
    pub const ALL: [PracticeFamily; 30] = [
        PracticeFamily::Offered,
        PracticeFamily::Answered,
        PracticeFamily::Closed,
        PracticeFamily::Abandoned,
        PracticeFamily::Overflowed,
        PracticeFamily::Failed,
        PracticeFamily::QueueEntered,
        PracticeFamily::QueueAnswered,
        PracticeFamily::QueueAbandoned,
        PracticeFamily::QueueOverflowed,
        PracticeFamily::Offers,
        PracticeFamily::Wait,
        PracticeFamily::Ring,
        PracticeFamily::Talk,
        PracticeFamily::Wrapup,
        PracticeFamily::QueueWaiting,
        PracticeFamily::QueueOldestWait,
        PracticeFamily::QueueEstimatedWait,
        PracticeFamily::AgentsEligible,
        PracticeFamily::PracticeOpen,
        PracticeFamily::OutboundCalls,
        PracticeFamily::OutboundTalk,
        PracticeFamily::CallbacksRequested,
        PracticeFamily::CallbackAttempts,
        PracticeFamily::CallbacksCompleted,
        PracticeFamily::CallbacksFailed,
        PracticeFamily::CallbacksHandled,
        PracticeFamily::CallbacksPending,
        PracticeFamily::CallbacksOldestAge,
        PracticeFamily::CallbacksMargin,
    ];

    /// Name, help and label names (sorted).
    pub fn info(self) -> (&'static str, &'static str, &'static [&'static str]) {
        use PracticeFamily::*;
        const P: &[&str] = &["practice"];
        match self {
            Offered => (
                "permanence_calls_offered_total",
                "Forwarded calls that reached the open practice (the engine answered with its greeting), counted when they end: each is also counted in exactly one of permanence_calls_answered_total, permanence_calls_abandoned_total, permanence_calls_overflowed_total or permanence_calls_failed_total. Closed-hours calls, calls refused at the door and callers gone before the engine answered are not offered.",
                P,
            ),
            Answered => (
                "permanence_calls_answered_total",
                "Offered calls a telesecretary (or the number of a direct-route triage option) answered, counted when they end. Pickup rate = this / permanence_calls_offered_total.",
                P,
            ),
            Closed => (
                "permanence_calls_closed_total",
                "Calls that arrived while the practice was closed, or that the dispatcher refused as closed (closed prompt; not offered), counted when they end.",
                P,
            ),
            Abandoned => (
                "permanence_calls_abandoned_total",
                "Offered calls whose caller hung up before anyone answered, by phase (greeting, triage, route: a direct-route number ringing, queue, ringing: a telesecretary's phone ringing, callback_prompt); short=\"true\" when within the short-abandon threshold of the engine's answer (pocket dials, wrong numbers).",
                &["phase", "practice", "short"],
            ),
            Overflowed => (
                "permanence_calls_overflowed_total",
                "Offered calls sent to a defined exit instead of an answer: the practice's overflow at maximum wait (voicemail, callback, hangup), or callback_request (the caller asked from the queue to be called back, keeping their place).",
                &["practice", "target"],
            ),
            Failed => (
                "permanence_calls_failed_total",
                "Offered calls ended by a technical cause before anyone answered (no RTP from the caller, maximum duration, a driver failure).",
                P,
            ),
            QueueEntered => (
                "permanence_queue_entered_total",
                "Calls that joined the practice's queue in the dispatcher (the queue's own figure: callers lost during the greeting or the triage never get there; for the practice's pickup rate use permanence_calls_*).",
                P,
            ),
            QueueAnswered => (
                "permanence_queue_answered_total",
                "Queued calls answered by an agent (dispatcher figure; a call sent back to the queue by a transfer and answered again counts again).",
                P,
            ),
            QueueAbandoned => (
                "permanence_queue_abandoned_total",
                "Queued calls whose caller hung up before an answer, by phase (queue, or ringing an agent); short=\"true\" when within the short-abandon threshold of joining the queue.",
                &["phase", "practice", "short"],
            ),
            QueueOverflowed => (
                "permanence_queue_overflowed_total",
                "Calls the dispatcher sent to an overflow target at their maximum wait (voicemail, callback, hangup: they leave the queue; pool: they stay queued and an overflow pool's agents are added).",
                &["practice", "target"],
            ),
            Offers => (
                "permanence_offers_total",
                "Offers of a call to an agent's phone, by result (no_answer is ring-no-answer; cancelled: caller hang-up, overflow, agent logout/pause/unreachable).",
                &["practice", "result"],
            ),
            Wait => (
                "permanence_wait_seconds",
                "Time from joining the queue to the answer (outcome=\"answered\") or to the caller hanging up (outcome=\"abandoned\").",
                &["outcome", "practice"],
            ),
            Ring => (
                "permanence_ring_seconds",
                "How long the answering agent's phone rang before the answer.",
                P,
            ),
            Talk => (
                "permanence_talk_seconds",
                "Talk time of answered calls (answer to hang-up).",
                P,
            ),
            Wrapup => (
                "permanence_wrapup_seconds",
                "After-call work time of agents, attributed to the practice of the call before it.",
                P,
            ),
            QueueWaiting => (
                "permanence_queue_waiting",
                "Calls in the practice's queue not answered yet (waiting or ringing an agent).",
                P,
            ),
            QueueOldestWait => (
                "permanence_queue_oldest_wait_seconds",
                "Wait of the oldest call in the practice's queue (0 when empty).",
                P,
            ),
            QueueEstimatedWait => (
                "permanence_queue_estimated_wait_seconds",
                "Estimated wait of a call arriving now with the practice's base priority (NaN when no agent could serve it).",
                P,
            ),
            AgentsEligible => (
                "permanence_agents_eligible",
                "Agents eligible for the practice's calls that are logged in, inside their shift and with a reachable softphone (they may be busy or paused).",
                P,
            ),
            PracticeOpen => (
                "permanence_practice_open",
                "1 when the practice is open now (by its opening hours), else 0.",
                P,
            ),
            OutboundCalls => (
                "permanence_outbound_calls_total",
                "Outbound calls placed by agents for the practice (presented with its caller ID) that ended, by outcome (cancelled: the agent hung up before the answer). Attempts refused before leaving the switch are in permanence_outbound_refused_total.",
                &["outcome", "practice"],
            ),
            OutboundTalk => (
                "permanence_outbound_talk_seconds_total",
                "Talk time of the practice's answered outbound calls (answer to hang-up), in seconds: the usage to bill.",
                P,
            ),
            CallbacksRequested => (
                "permanence_callbacks_requested_total",
                "Callback requests, by origin (caller: the caller asked to be called back, keeping their place; overflow: the queue overflowed to a callback).",
                &["origin", "practice"],
            ),
            CallbackAttempts => (
                "permanence_callback_attempts_total",
                "Dialling attempts of callback requests (the engine calling the patient back, retried), by result.",
                &["practice", "result"],
            ),
            CallbacksCompleted => (
                "permanence_callbacks_completed_total",
                "Callback requests that reached the patient, within or after the practice's deadline.",
                &["practice", "timeliness"],
            ),
            CallbacksFailed => (
                "permanence_callbacks_failed_total",
                "Callback requests that ended without reaching the patient, by reason (no_answer, busy, failed: the attempts ran out; refused: the number is not an allowed destination; cancelled: by an operator).",
                &["practice", "reason"],
            ),
            CallbacksHandled => (
                "permanence_callbacks_handled_total",
                "Callback requests marked done by an operator without dialling.",
                P,
            ),
            CallbacksPending => (
                "permanence_callbacks_pending",
                "Callback requests waiting, including those being dialled.",
                P,
            ),
            CallbacksOldestAge => (
                "permanence_callbacks_oldest_pending_age_seconds",
                "Age of the oldest pending callback request (0 when none).",
                P,
            ),
            CallbacksMargin => (
                "permanence_callbacks_deadline_margin_seconds",
                "Seconds until the nearest deadline among the pending callback requests, negative once missed; 1e9 when none is pending (or no deadline is known).",
                P,
            ),
        }
    }

    /// The metric type.
    pub fn kind(self) -> Kind {
        use PracticeFamily::*;
        match self {
            Offered | Answered | Closed | Abandoned | Overflowed | Failed | QueueEntered
            | QueueAnswered | QueueAbandoned | QueueOverflowed | Offers | OutboundCalls
            | OutboundTalk | CallbacksRequested | CallbackAttempts | CallbacksCompleted
            | CallbacksFailed | CallbacksHandled => Kind::Counter,
            Wait | Ring | Talk | Wrapup => Kind::Histogram,
            QueueWaiting | QueueOldestWait | QueueEstimatedWait | AgentsEligible | PracticeOpen
            | CallbacksPending | CallbacksOldestAge | CallbacksMargin => Kind::Gauge,
        }
    }

    /// The histogram of a single-series histogram family.
    pub fn histogram(self, p: &PracticeMetrics) -> Option<&AtomicHistogram> {
        match self {
            PracticeFamily::Ring => Some(&p.ring),
            PracticeFamily::Talk => Some(&p.talk),
            PracticeFamily::Wrapup => Some(&p.wrapup),
            _ => None,
        }
    }

    /// Calls `f` with each series of the practice: its extra labels
    /// (besides `practice`, each with its position among the sorted label
    /// names) and its value.
    fn for_each(self, p: &PracticeMetrics, f: &mut SeriesSink<'_>) {
        use PracticeFamily::*;
        let c = |v: &crate::atomics::Counter| Value::Counter(v.get());
        match self {
            Offered => f(&[], c(&p.calls_offered)),
            Answered => f(&[], c(&p.calls_answered)),
            Closed => f(&[], c(&p.closed)),
            Abandoned => {
                for phase in call_phases_sorted() {
                    for (si, short) in SHORT.iter().enumerate() {
                        f(
                            &[("phase", phase.as_str()), ("short", short)],
                            c(&p.calls_abandoned[phase.index()][si]),
                        );
                    }
                }
            }
            Overflowed => {
                for (i, label) in CALL_OVERFLOW_LABELS.iter().enumerate() {
                    f(&[("target", label)], c(&p.calls_overflowed[i]));
                }
            }
            Failed => f(&[], c(&p.calls_failed)),
            QueueEntered => f(&[], c(&p.queue_entered)),
            QueueAnswered => f(&[], c(&p.queue_answered)),
            QueueAbandoned => {
                for (pi, phase) in PHASES.iter().enumerate() {
                    for (si, short) in SHORT.iter().enumerate() {
                        f(
                            &[("phase", phase), ("short", short)],
                            c(&p.queue_abandoned[pi][si]),
                        );
                    }
                }
            }
            QueueOverflowed => {
                for (i, label) in OVERFLOW_LABELS.iter().enumerate() {
                    f(&[("target", label)], c(&p.queue_overflowed[i]));
                }
            }
            Offers => {
                for r in OFFER_ORDER {
                    f(&[("result", r.label())], c(&p.offers[r.index()]));
                }
            }
            Wait => {
                f(
                    &[("outcome", WAIT_OUTCOMES[0])],
                    Value::Histogram(p.wait_abandoned.snapshot()),
                );
                f(
                    &[("outcome", WAIT_OUTCOMES[1])],
                    Value::Histogram(p.wait_answered.snapshot()),
                );
            }
            Ring | Talk | Wrapup => {
                if let Some(h) = self.histogram(p) {
                    f(&[], Value::Histogram(h.snapshot()));
                }
            }
            QueueWaiting => f(&[], Value::Gauge(p.waiting.get() as f64)),
            QueueOldestWait => f(&[], Value::Gauge(p.oldest_wait.get())),
            QueueEstimatedWait => f(&[], Value::Gauge(p.estimated_wait.get())),
            AgentsEligible => f(&[], Value::Gauge(p.eligible.get() as f64)),
            PracticeOpen => f(&[], Value::Gauge(p.open.get() as f64)),
            OutboundCalls => {
                for o in OutboundOutcome::ALL {
                    f(&[("outcome", o.as_str())], c(&p.outbound[o.index()]));
                }
            }
            OutboundTalk => f(&[], Value::FloatCounter(p.outbound_talk_seconds())),
            // `ALL` is in index order: zipping pairs each label with its cell.
            CallbacksRequested => {
                for (o, v) in CallbackOrigin::ALL.iter().zip(&p.callbacks_requested) {
                    f(&[("origin", o.as_str())], c(v));
                }
            }
            CallbackAttempts => {
                for (r, v) in CallbackAttemptResult::ALL.iter().zip(&p.callback_attempts) {
                    f(&[("result", r.as_str())], c(v));
                }
            }
            CallbacksCompleted => {
                for (t, v) in TIMELINESS_LABELS.iter().zip(&p.callbacks_completed) {
                    f(&[("timeliness", t)], c(v));
                }
            }
            CallbacksFailed => {
                for (r, v) in CallbackFailure::ALL.iter().zip(&p.callbacks_failed) {
                    f(&[("reason", r.as_str())], c(v));
                }
            }
            CallbacksHandled => f(&[], c(&p.callbacks_handled)),
            CallbacksPending => f(&[], Value::Gauge(p.callbacks_pending.get() as f64)),
            CallbacksOldestAge => f(&[], Value::Gauge(p.callbacks_oldest_age.get())),
            CallbacksMargin => f(&[], Value::Gauge(p.callbacks_margin.get() as f64)),
        }
    }
}

/// One per-practice family over the current practice set, registered in
/// the registry so `Registry::gather` sees it (the fast exposition reads
/// the same cells directly).
#[derive(Debug, Clone)]
pub(crate) struct PracticeCollector {
    desc: Arc<Desc>,
    family: PracticeFamily,
    set: Arc<ArcSwap<PracticeSet>>,
}

impl PracticeCollector {
    pub fn new(
        family: PracticeFamily,
        set: Arc<ArcSwap<PracticeSet>>,
    ) -> Result<Self, MetricsError> {
        let (name, help, labels) = family.info();
        Ok(Self {
            desc: Arc::new(Desc::new(
                name.to_string(),
                help.to_string(),
                labels.iter().map(|l| l.to_string()).collect(),
                HashMap::new(),
            )?),
            family,
            set,
        })
    }
}

fn label(name: &str, value: &str) -> LabelPair {
    let mut l = LabelPair::default();
    l.set_name(name.to_string());
    l.set_value(value.to_string());
    l
}

impl Collector for PracticeCollector {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let set = self.set.load_full();
        let mut metrics = Vec::new();
        for p in set.iter() {
            self.family.for_each(p, &mut |extra, value| {
                let mut labels: Vec<LabelPair> = extra
                    .iter()
                    .map(|(k, v)| label(k, v))
                    .chain(std::iter::once(label("practice", p.id.as_str())))
                    .collect();
                labels.sort_by(|a, b| a.name().cmp(b.name()));
                let mut m = proto::Metric::default();
                m.set_label(labels);
                match value {
                    Value::Counter(v) => {
                        let mut c = proto::Counter::default();
                        c.set_value(v as f64);
                        m.set_counter(c);
                    }
                    Value::FloatCounter(v) => {
                        let mut c = proto::Counter::default();
                        c.set_value(v);
                        m.set_counter(c);
                    }
                    Value::Gauge(v) => {
                        let mut g = proto::Gauge::default();
                        g.set_value(v);
                        m.set_gauge(g);
                    }
                    Value::Histogram(s) => {
                        let mut h = proto::Histogram::default();
                        h.set_sample_count(s.count);
                        h.set_sample_sum(s.sum);
                        h.set_bucket(
                            BUCKETS
                                .iter()
                                .zip(s.cumulative)
                                .map(|(ub, n)| {
                                    let mut b = proto::Bucket::default();
                                    b.set_upper_bound(*ub);
                                    b.set_cumulative_count(n);
                                    b
                                })
                                .collect(),
                        );
                        m.set_histogram(h);
                    }
                }
                metrics.push(m);
            });
        }
        let mut mf = MetricFamily::default();
        mf.set_name(self.desc.fq_name.clone());
        mf.set_help(self.desc.help.clone());
        mf.set_field_type(match self.family.kind() {
            Kind::Counter => MetricType::COUNTER,
            Kind::Gauge => MetricType::GAUGE,
            Kind::Histogram => MetricType::HISTOGRAM,
        });
        mf.set_metric(metrics);
        vec![mf]
    }
}
