//! The report itself: [`build`] turns a practice's rows of a period into a
//! [`Report`], with no I/O.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;
use permanence_records::{
    CallRecord, CallbackState, CallbackStatus, OutboundOutcome, OutboundRecord, Outcome,
    PracticeFigures,
};
use serde::Serialize;

use crate::Period;

/// Default service-level threshold: answered within 20 seconds of waiting.
pub const DEFAULT_SERVICE_LEVEL_SECS: u32 = 20;

/// What a report is made of: the practice, the period and the rows of that
/// period (calls by reception, callbacks by request, outbound calls by
/// start, voicemail messages by recording; rows outside it are ignored).
#[derive(Debug, Clone)]
pub struct ReportInput<'a> {
    /// The practice's id.
    pub practice_id: &'a str,
    /// The practice's name, as shown to agents.
    pub practice_name: &'a str,
    /// The practice's time zone: periods, hours and weekdays are local.
    pub timezone: Tz,
    /// The period.
    pub period: Period,
    /// Service-level threshold, seconds.
    pub service_level_secs: u32,
    /// The practice's calls.
    pub calls: &'a [CallRecord],
    /// The practice's callback requests.
    pub callbacks: &'a [CallbackState],
    /// The practice's outbound calls.
    pub outbound: &'a [OutboundRecord],
    /// When each voicemail message of the practice was recorded, and its
    /// length in seconds.
    pub voicemails: &'a [(DateTime<Utc>, f64)],
}

/// A practice's report over a period. Holds counts and durations only:
/// never a caller's or a patient's number.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The practice's id.
    pub practice_id: String,
    /// The practice's name.
    pub practice_name: String,
    /// The time zone of the period, hours and weekdays (IANA name).
    pub timezone: String,
    /// The period (`2025-03`, `2025-W10`).
    pub period: String,
    /// The period in French.
    pub period_label: String,
    /// Start of the period (included), RFC 3339 UTC.
    pub since: String,
    /// End of the period (excluded), RFC 3339 UTC.
    pub until: String,
    /// The calls: offered, answered, abandoned by phase... (see
    /// [`CallFigures`]).
    pub calls: CallFigures,
    /// Waiting before an answer.
    pub wait: WaitFigures,
    /// Callback requests.
    pub callbacks: CallbackFigures,
    /// Voicemail.
    pub voicemail: VoicemailFigures,
    /// Outbound calls placed by the telesecretaries for the practice.
    pub outbound: OutboundFigures,
    /// Minutes of conversation (usage-based billing).
    pub minutes: MinuteFigures,
    /// Offered calls by local hour of day (0 to 23).
    pub by_hour: Vec<Bucket>,
    /// Offered calls by local weekday, Monday first.
    pub by_weekday: Vec<Bucket>,
    /// Offered calls by weekday (rows, Monday first) and hour (columns).
    pub heat_map: Vec<Vec<u64>>,
}

/// The calls of the period, by what they count as (the definition of
/// `/api/figures` and the metrics).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CallFigures {
    /// Calls that reached the open practice and have ended.
    pub offered: u64,
    /// Offered calls answered.
    pub answered: u64,
    /// All abandons.
    pub abandoned: u64,
    /// Abandons by phase (`greeting`, `triage`, `route`, `queue`,
    /// `ringing`, `callback_prompt`, `before_queue`).
    pub abandoned_by_phase: BTreeMap<String, u64>,
    /// Offered calls sent to an exit, by target (`voicemail`, `callback`,
    /// `hangup`, `callback_request`).
    pub overflowed: BTreeMap<String, u64>,
    /// Offered calls ended by a technical failure.
    pub failed: u64,
    /// Not offered: closed hours.
    pub closed: u64,
    /// Not offered: caller gone before the engine answered.
    pub unanswered: u64,
    /// Not offered: refused at the door.
    pub rejected: u64,
    /// Still in progress or cut by a crash: counted nowhere else.
    pub in_progress: u64,
    /// `answered / offered`; `None` without offered calls.
    pub pickup_rate: Option<f64>,
}

/// Waiting of the answered calls (in the queue, and an agent's phone
/// ringing), and the service level.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WaitFigures {
    /// Average wait of the answered calls, seconds.
    pub average_secs: Option<f64>,
    /// 90th percentile (nearest rank) of the same, seconds.
    pub p90_secs: Option<f64>,
    /// The service-level threshold, seconds.
    pub service_level_threshold_secs: u32,
    /// Offered calls answered within the threshold.
    pub answered_within_threshold: u64,
    /// `answered_within_threshold / offered`; `None` without offered calls.
    pub service_level: Option<f64>,
}

/// Callback requests made in the period.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CallbackFigures {
    /// Requests made (from the queue, or an overflow to callback).
    pub requested: u64,
    /// Patients reached by the deadline.
    pub done_within_deadline: u64,
    /// Patients reached after the deadline.
    pub done_late: u64,
    /// Requests marked handled by an operator.
    pub handled: u64,
    /// Requests whose attempts failed.
    pub failed: u64,
    /// Requests cancelled by an operator.
    pub cancelled: u64,
    /// Requests still open.
    pub open: u64,
}

/// Voicemail in the period.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VoicemailFigures {
    /// Calls sent to voicemail.
    pub calls: u64,
    /// Messages recorded.
    pub messages: u64,
    /// Their total length, seconds.
    pub message_secs: f64,
}

/// Outbound calls started in the period.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OutboundFigures {
    /// Calls placed (refused ones not counted).
    pub placed: u64,
    /// Of them, answered.
    pub answered: u64,
    /// Calls the toll-fraud guard refused.
    pub refused: u64,
    /// Placed calls by origin (`agent`, `callback`, `transfer`).
    pub by_origin: BTreeMap<String, u64>,
}

/// Minutes of conversation, what usage-based billing counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MinuteFigures {
    /// Answered calls' talk time.
    pub inbound: f64,
    /// Outbound calls' talk time.
    pub outbound: f64,
    /// Both.
    pub total: f64,
}

/// Calls of one hour or weekday.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Bucket {
    /// Offered calls.
    pub offered: u64,
    /// Of them, answered.
    pub answered: u64,
}

/// Builds the report of `input` (a pure function).
pub fn build(input: &ReportInput<'_>) -> Report {
    let (since, until) = input.period.bounds(input.timezone);
    let within = |t: &DateTime<Utc>| *t >= since && *t < until;
    let calls: Vec<&CallRecord> = input
        .calls
        .iter()
        .filter(|c| c.practice_id == input.practice_id && within(&c.received_at))
        .collect();
    let figures = PracticeFigures::tally(calls.iter().copied());
    let offered: Vec<&CallRecord> = calls.iter().copied().filter(|c| is_offered(c)).collect();
    let (by_hour, by_weekday, heat_map) = buckets(&offered, input.timezone);
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    Report {
        practice_id: input.practice_id.to_string(),
        practice_name: input.practice_name.to_string(),
        timezone: input.timezone.name().to_string(),
        period: input.period.code(),
        period_label: input.period.label_fr(),
        since: time(since),
        until: time(until),
        wait: wait(&offered, figures.offered, input.service_level_secs),
        calls: call_figures(&figures),
        callbacks: callbacks(input, &within),
        voicemail: voicemail(&calls, input.voicemails, &within),
        outbound: outbound(input, &within),
        minutes: minutes(&calls, input, &within),
        by_hour,
        by_weekday,
        heat_map,
    }
}

/// Whether a call counts as offered (the definition of
/// [`PracticeFigures`]).
fn is_offered(c: &CallRecord) -> bool {
    PracticeFigures::tally([c]).offered == 1
}

/// The metrics' label form of a stored name (`callback-prompt` →
/// `callback_prompt`).
fn label(s: &str) -> String {
    s.replace('-', "_")
}

fn ratio(n: u64, d: u64) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

fn call_figures(f: &PracticeFigures) -> CallFigures {
    CallFigures {
        offered: f.offered,
        answered: f.answered,
        abandoned: f.abandoned_total(),
        abandoned_by_phase: f.abandoned_by_label(),
        overflowed: f.overflowed_by_label(),
        failed: f.failed,
        closed: f.closed,
        unanswered: f.unanswered,
        rejected: f.rejected,
        in_progress: f.open_or_interrupted,
        pickup_rate: f.pickup_rate(),
    }
}

/// How long an answered call waited: its queue wait as recorded, else
/// from joining the queue (or the engine's answer) to the agent's.
fn waited(c: &CallRecord) -> f64 {
    let since = c.queued_at.or(c.engine_answered_at);
    let measured = match (since, c.agent_answered_at) {
        (Some(from), Some(to)) => Some((to - from).num_milliseconds() as f64 / 1000.0),
        _ => None,
    };
    c.wait_secs.or(measured).unwrap_or(0.0).max(0.0)
}

/// Nearest-rank percentile `p` (0 < p <= 100) of sorted `values`.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted.get(rank.clamp(1, n) - 1).copied()
}

fn wait(offered: &[&CallRecord], n_offered: u64, threshold: u32) -> WaitFigures {
    let mut waits: Vec<f64> = offered
        .iter()
        .filter(|c| c.outcome == Outcome::Answered)
        .map(|c| waited(c))
        .collect();
    waits.sort_by(f64::total_cmp);
    let within = waits.iter().filter(|w| **w <= f64::from(threshold)).count() as u64;
    WaitFigures {
        average_secs: (!waits.is_empty()).then(|| waits.iter().sum::<f64>() / waits.len() as f64),
        p90_secs: percentile(&waits, 90.0),
        service_level_threshold_secs: threshold,
        answered_within_threshold: within,
        service_level: ratio(within, n_offered),
    }
}

fn callbacks(input: &ReportInput<'_>, within: &dyn Fn(&DateTime<Utc>) -> bool) -> CallbackFigures {
    let mut f = CallbackFigures::default();
    for cb in input
        .callbacks
        .iter()
        .filter(|c| c.practice_id == input.practice_id && within(&c.requested_at))
    {
        f.requested += 1;
        let slot = match cb.status {
            CallbackStatus::Completed if cb.completed_at.is_some_and(|t| t <= cb.deadline_at) => {
                &mut f.done_within_deadline
            }
            CallbackStatus::Completed => &mut f.done_late,
            CallbackStatus::Handled => &mut f.handled,
            CallbackStatus::Failed => &mut f.failed,
            CallbackStatus::Cancelled => &mut f.cancelled,
            CallbackStatus::Pending | CallbackStatus::Dialling => &mut f.open,
        };
        *slot += 1;
    }
    f
}

fn voicemail(
    calls: &[&CallRecord],
    messages: &[(DateTime<Utc>, f64)],
    within: &dyn Fn(&DateTime<Utc>) -> bool,
) -> VoicemailFigures {
    let kept: Vec<f64> = messages
        .iter()
        .filter(|(at, _)| within(at))
        .map(|(_, secs)| *secs)
        .collect();
    VoicemailFigures {
        calls: calls
            .iter()
            .filter(|c| c.overflow_target.as_deref() == Some("voicemail"))
            .count() as u64,
        messages: kept.len() as u64,
        message_secs: kept.iter().sum(),
    }
}

fn practice_outbound<'a>(
    input: &'a ReportInput<'_>,
    within: &'a dyn Fn(&DateTime<Utc>) -> bool,
) -> impl Iterator<Item = &'a OutboundRecord> {
    input.outbound.iter().filter(move |o| {
        o.practice_id.as_deref() == Some(input.practice_id) && within(&o.started_at)
    })
}

fn outbound(input: &ReportInput<'_>, within: &dyn Fn(&DateTime<Utc>) -> bool) -> OutboundFigures {
    let mut f = OutboundFigures::default();
    for o in practice_outbound(input, within) {
        if o.outcome == OutboundOutcome::Refused {
            f.refused += 1;
            continue;
        }
        f.placed += 1;
        f.answered += u64::from(o.outcome == OutboundOutcome::Answered);
        *f.by_origin.entry(label(o.origin.as_str())).or_insert(0) += 1;
    }
    f
}

fn minutes(
    calls: &[&CallRecord],
    input: &ReportInput<'_>,
    within: &dyn Fn(&DateTime<Utc>) -> bool,
) -> MinuteFigures {
    let inbound: f64 = calls.iter().filter_map(|c| c.talk_secs).sum::<f64>() / 60.0;
    let outbound: f64 = practice_outbound(input, within)
        .filter_map(|o| o.talk_secs)
        .sum::<f64>()
        / 60.0;
    MinuteFigures {
        inbound,
        outbound,
        total: inbound + outbound,
    }
}

type Buckets = (Vec<Bucket>, Vec<Bucket>, Vec<Vec<u64>>);

/// Offered calls by local hour, weekday, and both.
fn buckets(offered: &[&CallRecord], tz: Tz) -> Buckets {
    let mut hours = vec![Bucket::default(); 24];
    let mut days = vec![Bucket::default(); 7];
    let mut heat = vec![vec![0u64; 24]; 7];
    for c in offered {
        let local = c.received_at.with_timezone(&tz);
        let (h, d) = (
            local.hour() as usize,
            local.weekday().num_days_from_monday() as usize,
        );
        let answered = u64::from(c.outcome == Outcome::Answered);
        for b in [hours.get_mut(h), days.get_mut(d)].into_iter().flatten() {
            b.offered += 1;
            b.answered += answered;
        }
        if let Some(cell) = heat.get_mut(d).and_then(|row| row.get_mut(h)) {
            *cell += 1;
        }
    }
    (hours, days, heat)
}
