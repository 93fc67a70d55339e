//! Prometheus metrics of Permanence.
//!
//! [`Metrics`] owns a [`prometheus::Registry`] holding every family the
//! service exports (`deploy/README.md` lists them, with the PromQL of
//! pickup rate, service level and ASA). Hot paths never look a series up
//! by label:
//!
//! * each practice's series live in one [`PracticeMetrics`] block of
//!   atomics, created for every configured practice by
//!   [`Metrics::practices`] (startup and reload) so scrapes show zeros;
//! * the dispatcher task owns an [`AcdRecorder`] that maps the
//!   dispatcher's [`permanence_acd::Event`]s to those blocks through its
//!   own copy of the practice map: no lock shared with other tasks, only
//!   relaxed atomic adds;
//! * callback requests (virtual hold) are per-practice cells too, updated
//!   by [`Metrics::callback_requested`] and its siblings with one lookup
//!   in the current practice set, their queue gauges set by
//!   [`Metrics::set_callback_queue`] before each scrape;
//! * SIP, RTP, outbound-refusal and service counters are pre-resolved
//!   arrays indexed by enum ([`SipMethod`], [`SipReject`],
//!   [`OutboundRefusal`], ...); SIP response counters are
//!   resolved on first use per (method, code) and cached lock-free.
//!
//! Gauges (queues, agents) are set from a dispatcher snapshot just before
//! each scrape ([`Metrics::set_gauges_from`]), then [`Metrics::render`]
//! writes the text exposition format. The per-practice families are
//! written straight from the atomics, byte-identical to
//! `TextEncoder::encode(registry.gather())` but about ten times faster
//! (5,000 practices, ~575,000 series: see `benches/scrape.rs`).
//!
//! # Wiring in the engine
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use permanence_metrics::*;
//! # fn demo(d: &mut permanence_acd::Dispatcher, now: chrono::DateTime<chrono::Utc>)
//! #     -> Result<(), MetricsError> {
//! // Startup: one Metrics for the process.
//! let metrics: Arc<Metrics> = Metrics::new(DEFAULT_SHORT_ABANDON)?;
//! let ids: Vec<&str> = d.practice_ids().map(|p| p.as_str()).collect();
//! metrics.practices(&ids)?;
//!
//! // Dispatcher task: owns the recorder; after every handle_input /
//! // handle_timeout, each polled event goes to it with the same `now`.
//! let mut recorder = metrics.recorder();
//! while let Some(out) = d.poll_output() {
//!     if let permanence_acd::Output::Event(e) = &out {
//!         recorder.on_event(e, now);
//!     }
//!     // ... carry out actions, write the call log ...
//! }
//! // Reload: after Dispatcher::reconfigure and draining its events,
//! // metrics.practices(&new_ids)?; then, in the dispatcher task:
//! recorder.reload();
//! metrics.config_reload(true);
//!
//! // Scrape (HTTP task): ask the dispatcher task for a snapshot
//! // (AcdGauges::from_dispatcher runs there), then render.
//! metrics.set_gauges_from(&AcdGauges::from_dispatcher(d, now));
//! metrics.set_active_calls(12);
//! metrics.set_registered_contacts(40);
//! metrics.sync_sip_parse_errors(/* GuardStats::answered */ 0, /* dropped */ 0);
//! metrics.sync_records(/* healthy */ true, /* backlog */ 0, /* write failures */ 0);
//! let body: String = metrics.render(); // Content-Type: CONTENT_TYPE
//!
//! // SIP edge: per request received / response sent / refusal.
//! metrics.sip_request(SipMethod::parse("INVITE"));
//! metrics.sip_response(SipMethod::Invite, 200);
//! metrics.sip_rejected(SipReject::UnknownNumber);
//!
//! // Outbound calls of agents: refused before leaving the switch, or
//! // started then ended (with the practice whose caller ID was shown).
//! metrics.outbound_refused(OutboundRefusal::Destination);
//! metrics.outbound_started();
//! metrics.outbound_ended("cabinet-martin", OutboundOutcome::Answered, std::time::Duration::from_secs(95));
//!
//! // Callbacks (virtual hold): requested, each dialling attempt, how the
//! // request ended; before each scrape, each practice's callback queue.
//! metrics.callback_requested("cabinet-martin", CallbackOrigin::Caller);
//! metrics.callback_attempt("cabinet-martin", CallbackAttemptResult::NoAnswer);
//! metrics.callback_attempt("cabinet-martin", CallbackAttemptResult::Answered);
//! metrics.callback_completed("cabinet-martin", /* within the deadline */ true);
//! metrics.set_callback_queue("cabinet-martin", 2, std::time::Duration::from_secs(840), Some(2760));
//!
//! // Media: when a leg closes (or periodically, as a delta), from LegStats.
//! metrics.rtp_add(&RtpTotals { packets_in: 1500, bytes_in: 258_000, ..Default::default() });
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod atomics;
mod callbacks;
mod collector;
mod families;
mod gauges;
mod outbound;
mod practice;
mod recorder;
mod render;
mod rtp;
mod security;
mod sip;
mod voicemail;

use arc_swap::ArcSwap;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use permanence_acd::PracticeId;
use prometheus::{IntCounter, IntGauge, Registry};

pub use callbacks::{
    CallbackAttemptResult, CallbackFailure, CallbackOrigin, CALLBACK_MARGIN_NONE_PENDING,
};
pub use collector::Kind as MetricKind;
use families::Families;
pub use gauges::{AcdGauges, AgentCounts, PracticeGauges};
pub use outbound::{OutboundOutcome, OutboundRefusal};
pub use permanence_acd::Presence;
pub use practice::{OfferResult, PracticeMetrics};
pub use recorder::AcdRecorder;
pub use rtp::RtpTotals;
pub use security::{
    AuthFailure, GateTotals, SecurityMetrics, StreamTotals, CONNECTION_CLOSES, CONNECTION_REFUSALS,
    FLOOD_REASONS,
};
pub use sip::{ParseErrorAction, SipMethod, SipReject};
pub use voicemail::{VoicemailMetrics, VOICEMAIL_RESULTS};

/// Upper bounds (seconds) of every duration histogram's buckets: the
/// service-level thresholds, so that "answered within 20 s" is the
/// `le="20"` bucket.
pub const BUCKETS: [f64; 11] = [
    5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0,
];

/// Default short-abandon threshold: callers hanging up within 5 s are
/// counted with `short="true"`.
pub const DEFAULT_SHORT_ABANDON: Duration = Duration::from_secs(5);

/// Content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// The practice handles, by id and in id order. Shared copy-on-write: a
/// reload builds a new set, holders of the old one keep a consistent view.
#[derive(Debug, Default)]
pub struct PracticeSet {
    map: HashMap<PracticeId, Arc<PracticeMetrics>>,
    /// Sorted by id (byte order), for rendering.
    sorted: Vec<Arc<PracticeMetrics>>,
}

impl PracticeSet {
    fn from_handles(handles: Vec<Arc<PracticeMetrics>>) -> Self {
        let mut sorted = handles;
        sorted.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        sorted.dedup_by(|a, b| a.id == b.id);
        let map = sorted.iter().map(|h| (h.id.clone(), h.clone())).collect();
        Self { map, sorted }
    }

    /// The handles of a practice.
    pub fn get(&self, id: &str) -> Option<&Arc<PracticeMetrics>> {
        self.map.get(id)
    }

    /// Number of practices.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether there is no practice.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The handles in id order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<PracticeMetrics>> {
        self.sorted.iter()
    }
}

/// A registered metric family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyInfo {
    /// Its name (`permanence_calls_offered_total`).
    pub name: String,
    /// Its type.
    pub kind: MetricKind,
    /// Its help text.
    pub help: String,
}

/// Errors building the metrics.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A family could not be created or registered, or a series could not
    /// be resolved (a bug: names and label counts are fixed here).
    #[error("prometheus: {0}")]
    Prometheus(#[from] prometheus::Error),
}

/// Every metric of the service; shared as `Arc<Metrics>`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    f: Families,
    short_abandon: Duration,
    /// Copy-on-write: readers load the `Arc` without a lock, an update
    /// swaps it.
    practices: Arc<ArcSwap<PracticeSet>>,
    /// Serialises the (rare) updates of `practices`.
    practices_update: Mutex<()>,
    /// The families in exposition order.
    blocks: Vec<render::Block>,
    sip_requests: Vec<IntCounter>,
    /// `method index * CODE_SLOTS + code slot`, resolved on first use.
    sip_responses: Vec<OnceLock<IntCounter>>,
    sip_parse_errors: [IntCounter; 2],
    sip_parse_seen: [AtomicU64; 2],
    sip_rejected: Vec<IntCounter>,
    /// By [`OutboundRefusal::index`].
    outbound_refused: Vec<IntCounter>,
    rtp_packets: [IntCounter; 2],
    rtp_bytes: [IntCounter; 2],
    agents: Vec<IntGauge>,
    config_reloads: [IntCounter; 2],
    /// Write failures of the records store already added to the counter.
    records_write_failures_seen: AtomicU64,
    /// Floods and authentication failures.
    security: SecurityMetrics,
    /// Voicemail messages e-mailed to the practices.
    voicemail: VoicemailMetrics,
}

impl Metrics {
    /// Builds every family in a new registry, with `short_abandon` as the
    /// short-abandon threshold ([`DEFAULT_SHORT_ABANDON`] is 5 s), and
    /// `permanence_build_info{version}` set to this crate's version.
    /// Per-practice series appear with [`Metrics::practices`].
    pub fn new(short_abandon: Duration) -> Result<Arc<Self>, MetricsError> {
        let registry = Registry::new();
        let practices = Arc::new(ArcSwap::from_pointee(PracticeSet::default()));
        let f = Families::new(&registry, &practices)?;
        f.build_info
            .get_metric_with_label_values(&[env!("CARGO_PKG_VERSION")])?
            .set(1);
        let sip_requests = SipMethod::ALL
            .iter()
            .map(|m| f.sip_requests.get_metric_with_label_values(&[m.label()]))
            .collect::<Result<Vec<_>, _>>()?;
        let sip_responses = (0..SipMethod::ALL.len() * sip::CODE_SLOTS)
            .map(|_| OnceLock::new())
            .collect();
        let sip_rejected = SipReject::ALL
            .iter()
            .map(|r| f.sip_rejected.get_metric_with_label_values(&[r.label()]))
            .collect::<Result<Vec<_>, _>>()?;
        let outbound_refused = OutboundRefusal::ALL
            .iter()
            .map(|r| {
                f.outbound_refused
                    .get_metric_with_label_values(&[r.as_str()])
            })
            .collect::<Result<Vec<_>, _>>()?;
        let agents = Presence::ALL
            .iter()
            .map(|s| f.agents.get_metric_with_label_values(&[s.as_str()]))
            .collect::<Result<Vec<_>, _>>()?;
        let pe = |a: ParseErrorAction| {
            f.sip_parse_errors
                .get_metric_with_label_values(&[a.label()])
        };
        let dir = |v: &prometheus::IntCounterVec, d: &str| v.get_metric_with_label_values(&[d]);
        let reloads = |r: &str| f.config_reloads.get_metric_with_label_values(&[r]);
        // Nothing has failed before the first sync.
        f.records_healthy.set(1);
        let security = SecurityMetrics::new(&registry)?;
        let mut blocks = f.blocks();
        blocks.extend(security.blocks());
        let voicemail = VoicemailMetrics::new(&registry)?;
        blocks.extend(voicemail.blocks());
        blocks.sort_by_key(render::Block::name);
        Ok(Arc::new(Self {
            security,
            voicemail,
            blocks,
            sip_parse_errors: [
                pe(ParseErrorAction::Answered)?,
                pe(ParseErrorAction::Dropped)?,
            ],
            sip_parse_seen: [AtomicU64::new(0), AtomicU64::new(0)],
            rtp_packets: [dir(&f.rtp_packets, "in")?, dir(&f.rtp_packets, "out")?],
            rtp_bytes: [dir(&f.rtp_bytes, "in")?, dir(&f.rtp_bytes, "out")?],
            config_reloads: [reloads("ok")?, reloads("failed")?],
            registry,
            f,
            short_abandon,
            practices,
            practices_update: Mutex::new(()),
            sip_requests,
            sip_responses,
            sip_rejected,
            outbound_refused,
            agents,
            records_write_failures_seen: AtomicU64::new(0),
        }))
    }

    /// The voicemail e-mail delivery families
    /// (`permanence_voicemail_deliveries_total{result}`, `..._pending`,
    /// `permanence_voicemail_oldest_pending_age_seconds`).
    pub fn voicemail(&self) -> &VoicemailMetrics {
        &self.voicemail
    }

    /// The SIP front door's families (floods, authentication).
    pub fn security(&self) -> &SecurityMetrics {
        &self.security
    }

    /// The registry (every family is registered in it).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Every registered family, in name order, whether or not it has
    /// series yet (`Registry::gather` leaves out families without series,
    /// such as SIP responses before the first one).
    pub fn families(&self) -> Vec<FamilyInfo> {
        self.blocks.iter().map(render::Block::family).collect()
    }

    /// The short-abandon threshold.
    pub fn short_abandon(&self) -> Duration {
        self.short_abandon
    }

    // ------------------------------------------------------------ practices

    /// Makes the practice set exactly `ids`: creates every series of new
    /// practices (so scrapes show zeros, and handles are resolved now, not
    /// on the hot path) and removes every series of practices not listed
    /// any more. Existing practices keep their values. Call at startup and
    /// at each reload, then [`AcdRecorder::reload`] in the dispatcher task.
    ///
    /// Handles of removed practices held by callers stay usable; their
    /// updates are no longer exported (a call of a removed practice that
    /// ends later is not counted).
    pub fn practices<S: AsRef<str>>(&self, ids: &[S]) -> Result<(), MetricsError> {
        let _update = self
            .practices_update
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = self.practices.load();
        let wanted: HashSet<&str> = ids.iter().map(AsRef::as_ref).collect();
        let mut handles = Vec::with_capacity(wanted.len());
        for id in &wanted {
            handles.push(match current.get(id) {
                Some(h) => h.clone(),
                None => Arc::new(PracticeMetrics::new(
                    PracticeId::new(id),
                    self.short_abandon,
                )),
            });
        }
        self.practices
            .store(Arc::new(PracticeSet::from_handles(handles)));
        Ok(())
    }

    /// The handles of one practice, created (with all its series) if it
    /// is not in the set yet. Finding a known practice takes no lock;
    /// creating one takes the update lock.
    pub fn practice(&self, id: &str) -> Result<Arc<PracticeMetrics>, MetricsError> {
        if let Some(h) = self.practices.load().get(id) {
            return Ok(h.clone());
        }
        let _update = self
            .practices_update
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = self.practices.load();
        if let Some(h) = current.get(id) {
            return Ok(h.clone());
        }
        let h = Arc::new(PracticeMetrics::new(
            PracticeId::new(id),
            self.short_abandon,
        ));
        let mut handles = current.sorted.clone();
        handles.push(h.clone());
        self.practices
            .store(Arc::new(PracticeSet::from_handles(handles)));
        Ok(h)
    }

    /// The current practice set (a cheap `Arc` clone).
    pub fn practice_set(&self) -> Arc<PracticeSet> {
        self.practices.load_full()
    }

    /// A dispatcher-event recorder for the task that drives the
    /// dispatcher.
    pub fn recorder(self: &Arc<Self>) -> AcdRecorder {
        AcdRecorder::new(self.clone())
    }

    // --------------------------------------------------------------- gauges

    /// Sets the queue, eligible-agent, open and agent-state gauges from a
    /// dispatcher snapshot (call just before rendering a scrape).
    /// Practices of the snapshot that are not in the practice set are
    /// skipped.
    pub fn set_gauges_from(&self, g: &AcdGauges) {
        let map = self.practice_set();
        for p in &g.practices {
            let Some(h) = map.get(p.practice.as_str()) else {
                continue;
            };
            h.open.set(i64::from(p.open));
            h.waiting.set(i64::from(p.waiting));
            h.oldest_wait
                .set(p.oldest_wait.map_or(0.0, |d| d.as_secs_f64()));
            h.estimated_wait
                .set(p.estimated_wait.map_or(f64::NAN, |d| d.as_secs_f64()));
            h.eligible.set(i64::from(p.eligible));
        }
        for (gauge, n) in self.agents.iter().zip(g.agents.0) {
            gauge.set(i64::from(n));
        }
    }

    /// Sets `permanence_active_calls`.
    pub fn set_active_calls(&self, n: u64) {
        self.f.active_calls.set(saturate(n));
    }

    /// Sets `permanence_registered_contacts`.
    pub fn set_registered_contacts(&self, n: u64) {
        self.f.registered_contacts.set(saturate(n));
    }

    /// Sets `permanence_memory_heap_bytes` and
    /// `permanence_memory_resident_bytes`; a figure the process cannot
    /// tell (no counting allocator, no `/proc`) is left at 0.
    pub fn set_memory(&self, heap_bytes: Option<u64>, resident_bytes: Option<u64>) {
        self.f.memory_heap.set(saturate(heap_bytes.unwrap_or(0)));
        self.f
            .memory_resident
            .set(saturate(resident_bytes.unwrap_or(0)));
    }

    // ------------------------------------------------------------------ SIP

    /// A SIP request was received.
    pub fn sip_request(&self, method: SipMethod) {
        if let Some(c) = self.sip_requests.get(method.index()) {
            c.inc();
        }
    }

    /// A SIP response was sent to a received `method` request.
    pub fn sip_response(&self, method: SipMethod, code: u16) {
        let slot = method.index() * sip::CODE_SLOTS + sip::code_slot(code);
        let Some(cell) = self.sip_responses.get(slot) else {
            return;
        };
        if let Some(c) = cell.get() {
            c.inc();
            return;
        }
        let label = if sip::code_slot(code) == sip::CODE_SLOTS - 1 {
            "other".to_string()
        } else {
            code.to_string()
        };
        if let Ok(c) = self
            .f
            .sip_responses
            .get_metric_with_label_values(&[method.label(), label.as_str()])
        {
            cell.get_or_init(|| c).inc();
        }
    }

    /// A SIP message was retransmitted.
    pub fn sip_retransmission(&self) {
        self.f.sip_retransmissions.inc();
    }

    /// A telesecretary's softphone vanished mid-conversation (the caller
    /// was queued again).
    pub fn agent_lost(&self) {
        self.f.agents_lost.inc();
    }

    /// A SIP request was refused.
    pub fn sip_rejected(&self, reason: SipReject) {
        if let Some(c) = self.sip_rejected.get(reason as usize) {
            c.inc();
        }
    }

    /// Brings `permanence_sip_parse_errors_total` up to the datagram
    /// guard's cumulative counts (`GuardStats::answered` and `dropped`,
    /// summed over guards sharing one `Metrics`): adds what they grew by
    /// since the previous call. Call before each scrape.
    pub fn sync_sip_parse_errors(&self, answered_total: u64, dropped_total: u64) {
        for (i, total) in [answered_total, dropped_total].into_iter().enumerate() {
            let prev = self.sip_parse_seen[i].swap(total, Ordering::Relaxed);
            if total > prev {
                self.sip_parse_errors[i].inc_by(total - prev);
            }
        }
    }

    // ------------------------------------------------------------- outbound

    /// An agent's outbound call attempt was refused before anything left
    /// the switch (`permanence_outbound_refused_total{reason}`). Such an
    /// attempt is neither started nor ended.
    pub fn outbound_refused(&self, reason: OutboundRefusal) {
        if let Some(c) = self.outbound_refused.get(reason.index()) {
            c.inc();
        }
    }

    /// An agent's outbound call passed the checks and is being placed:
    /// `permanence_outbound_calls_active` + 1. Pair every call with one
    /// [`Metrics::outbound_ended`].
    pub fn outbound_started(&self) {
        self.f.outbound_active.inc();
    }

    /// An outbound call started with [`Metrics::outbound_started`] ended:
    /// `permanence_outbound_calls_active` − 1, and
    /// `permanence_outbound_calls_total{practice,outcome}` + 1; `talk`
    /// (answer to hang-up) is added to
    /// `permanence_outbound_talk_seconds_total{practice}` when `outcome`
    /// is [`OutboundOutcome::Answered`] and ignored otherwise.
    ///
    /// `practice` is the practice whose caller ID was presented. A
    /// practice not in the set (unknown, or removed by a reload while the
    /// call was up) is not counted and no series is created for it, as
    /// for the gauges of a practice outside the set
    /// ([`Metrics::set_gauges_from`]) and the calls of a removed practice
    /// ([`Metrics::practices`]); the gauge is decremented all the same. No lock and no allocation: one lookup in
    /// the current practice set (as [`Metrics::practice`] does for a
    /// known practice) and relaxed atomic adds.
    pub fn outbound_ended(&self, practice: &str, outcome: OutboundOutcome, talk: Duration) {
        self.f.outbound_active.dec();
        if let Some(h) = self.practices.load().get(practice) {
            h.outbound_call_ended(outcome, talk);
        }
    }

    // ------------------------------------------------------------ callbacks

    /// A callback was requested for `practice`:
    /// `permanence_callbacks_requested_total{practice,origin}` + 1.
    ///
    /// Like every callback method below, a practice not in the set
    /// (unknown, or removed by a reload while the request was pending) is
    /// not counted and no series is created for it, as for
    /// [`Metrics::outbound_ended`]. No lock and no allocation: one lookup
    /// in the current practice set and a relaxed atomic add.
    pub fn callback_requested(&self, practice: &str, origin: CallbackOrigin) {
        if let Some(h) = self.practices.load().get(practice) {
            h.callback_requested(origin);
        }
    }

    /// One dialling attempt of a callback of `practice` ended:
    /// `permanence_callback_attempts_total{practice,result}` + 1. An
    /// answered attempt is also reported as the request's end with
    /// [`Metrics::callback_completed`]; the last unanswered one, when no
    /// retry is left, with [`Metrics::callback_failed`].
    pub fn callback_attempt(&self, practice: &str, result: CallbackAttemptResult) {
        if let Some(h) = self.practices.load().get(practice) {
            h.callback_attempt(result);
        }
    }

    /// A callback of `practice` reached the patient, `within_deadline`
    /// the practice's promise or after it:
    /// `permanence_callbacks_completed_total{practice,timeliness}` + 1
    /// (`within_deadline` / `after_deadline`).
    pub fn callback_completed(&self, practice: &str, within_deadline: bool) {
        if let Some(h) = self.practices.load().get(practice) {
            h.callback_completed(within_deadline);
        }
    }

    /// A callback of `practice` ended without reaching the patient:
    /// `permanence_callbacks_failed_total{practice,reason}` + 1.
    pub fn callback_failed(&self, practice: &str, reason: CallbackFailure) {
        if let Some(h) = self.practices.load().get(practice) {
            h.callback_failed(reason);
        }
    }

    /// A callback of `practice` was marked done by an operator without
    /// dialling: `permanence_callbacks_handled_total{practice}` + 1.
    pub fn callback_handled(&self, practice: &str) {
        if let Some(h) = self.practices.load().get(practice) {
            h.callback_handled();
        }
    }

    /// Sets the callback queue gauges of `practice` (call just before
    /// rendering a scrape, like [`Metrics::set_gauges_from`]):
    ///
    /// * `permanence_callbacks_pending` to `pending`, the requests waiting
    ///   including those being dialled;
    /// * `permanence_callbacks_oldest_pending_age_seconds` to `oldest_age`,
    ///   the age of the oldest of them;
    /// * `permanence_callbacks_deadline_margin_seconds` to
    ///   `deadline_margin`, the seconds until the nearest of their
    ///   deadlines (negative once missed), or to
    ///   [`CALLBACK_MARGIN_NONE_PENDING`] (10⁹) when `None`.
    ///
    /// When `pending` is 0 the age is set to 0 and the margin to the
    /// sentinel whatever the other arguments say, so an empty queue never
    /// looks late. A practice not in the set is skipped.
    pub fn set_callback_queue(
        &self,
        practice: &str,
        pending: u32,
        oldest_age: Duration,
        deadline_margin: Option<i64>,
    ) {
        if let Some(h) = self.practices.load().get(practice) {
            h.set_callback_queue(pending, oldest_age, deadline_margin);
        }
    }

    // ------------------------------------------------------------------ RTP

    /// Adds RTP counts (an increment: a closed leg's final stats, or the
    /// delta of a live leg since it was last reported).
    pub fn rtp_add(&self, d: &RtpTotals) {
        self.rtp_packets[0].inc_by(d.packets_in);
        self.rtp_packets[1].inc_by(d.packets_out);
        self.rtp_bytes[0].inc_by(d.bytes_in);
        self.rtp_bytes[1].inc_by(d.bytes_out);
        self.f.rtp_lost.inc_by(d.lost);
        self.f.rtp_late.inc_by(d.late);
        self.f.rtp_foreign.inc_by(d.foreign);
        self.f.rtp_srtp_refused.inc_by(d.srtp_refused);
    }

    // -------------------------------------------------------------- service

    /// `n` rows of the records store (call records, queue events, callback
    /// requests) were lost: dropped under load or beyond the backlog of a
    /// failing store, or refused by the database.
    pub fn calls_interrupted(&self, n: u64) {
        self.f.calls_interrupted.inc_by(n);
    }

    /// `n` call records were dropped under load.
    pub fn records_dropped(&self, n: u64) {
        self.f.records_dropped.inc_by(n);
    }

    /// Brings the records store's series up to date: `healthy` sets
    /// `permanence_records_healthy` (1/0), `backlog` the rows kept in
    /// memory, and `write_failures_total` (the store's cumulative count of
    /// failed write or open attempts) adds what it grew by since the
    /// previous call to `permanence_records_write_failures_total`. Call
    /// before each scrape.
    pub fn sync_records(&self, healthy: bool, backlog: u64, write_failures_total: u64) {
        self.f.records_healthy.set(i64::from(healthy));
        self.f.records_backlog.set(saturate(backlog));
        let prev = self
            .records_write_failures_seen
            .swap(write_failures_total, Ordering::Relaxed);
        if write_failures_total > prev {
            self.f
                .records_write_failures
                .inc_by(write_failures_total - prev);
        }
    }

    /// A configuration reload succeeded (`ok`) or failed.
    pub fn config_reload(&self, ok: bool) {
        self.config_reloads[usize::from(!ok)].inc();
    }

    // ------------------------------------------------------------ rendering

    /// Every family in the Prometheus text exposition format
    /// ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out);
        out
    }

    /// Like [`Metrics::render`], appending to `out` (reuse the buffer
    /// between scrapes to avoid regrowing it).
    pub fn render_into(&self, out: &mut String) {
        let set = self.practice_set();
        out.reserve(set.len() * 8192 + 16384);
        render::render(&self.blocks, &set, out);
    }
}

fn saturate(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
