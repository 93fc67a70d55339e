//! The pure report on synthetic records: exact figures, percentiles, the
//! heat map's buckets, time zones and a DST change.

use chrono::{DateTime, Duration, TimeZone, Utc};
use permanence_records::{
    AbandonPhase, CallRecord, CallbackOrigin, CallbackState, CallbackStatus, OutboundOrigin,
    OutboundOutcome, OutboundRecord, Outcome, PracticeFigures,
};

use crate::{build, percentile, render, Format, Period, ReportInput};

const CALLER: &str = "+33612345678";

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .unwrap_or(DateTime::UNIX_EPOCH)
}

/// A call of `martin` received at `received` (UTC) that ended as `outcome`.
fn call(id: &str, received: DateTime<Utc>, outcome: Outcome) -> CallRecord {
    let offered = !matches!(
        outcome,
        Outcome::Closed | Outcome::Rejected | Outcome::Unanswered
    );
    CallRecord {
        call_id: id.into(),
        sip_call_id: format!("sip-{id}"),
        practice_id: "martin".into(),
        trunk: "carrier".into(),
        caller: Some(CALLER.into()),
        called: Some("+33450000001".into()),
        identified_by: None,
        received_at: received,
        engine_answered_at: offered.then_some(received),
        queued_at: None,
        first_offered_at: None,
        agent_answered_at: None,
        ended_at: Some(received + Duration::minutes(3)),
        agent: None,
        outcome,
        abandon_phase: None,
        wait_secs: None,
        talk_secs: None,
        triage: None,
        overflow_target: None,
        end_reason: None,
        offers: 0,
        rtp: None,
    }
}

fn answered(id: &str, received: DateTime<Utc>, wait: f64, talk: f64) -> CallRecord {
    CallRecord {
        wait_secs: Some(wait),
        talk_secs: Some(talk),
        agent: Some("alice".into()),
        agent_answered_at: Some(received + Duration::seconds(wait as i64 + 5)),
        ..call(id, received, Outcome::Answered)
    }
}

fn abandoned(id: &str, received: DateTime<Utc>, phase: AbandonPhase) -> CallRecord {
    CallRecord {
        abandon_phase: Some(phase),
        ..call(id, received, Outcome::Abandoned)
    }
}

fn callback(
    key: &str,
    requested: DateTime<Utc>,
    status: CallbackStatus,
    late: bool,
) -> CallbackState {
    let deadline = requested + Duration::hours(1);
    CallbackState {
        key: key.into(),
        origin: CallbackOrigin::Caller,
        call_id: format!("call-{key}"),
        practice_id: "martin".into(),
        number: CALLER.into(),
        requested_at: requested,
        joined_at: requested,
        priority: 0,
        triage_digit: None,
        deadline_at: deadline,
        status,
        attempts: 1,
        next_attempt_at: None,
        last_attempt_at: None,
        last_result: None,
        agent: None,
        completed_at: (!status.is_open())
            .then(|| deadline + Duration::minutes(if late { 5 } else { -5 })),
        outbound_id: None,
    }
}

fn outbound(
    id: &str,
    started: DateTime<Utc>,
    outcome: OutboundOutcome,
    talk: f64,
) -> OutboundRecord {
    OutboundRecord {
        id: id.into(),
        sip_call_id: format!("sip-{id}"),
        origin: OutboundOrigin::Agent,
        agent: "alice".into(),
        practice_id: Some("martin".into()),
        caller_id: Some("+33450000001".into()),
        destination: Some(CALLER.into()),
        destination_class: Some("mobile".into()),
        started_at: started,
        answered_at: None,
        ended_at: None,
        outcome,
        refusal: None,
        status_code: None,
        talk_secs: (talk > 0.0).then_some(talk),
    }
}

/// March 2025 in Paris: winter time until Sunday 30 March 02:00.
fn march_calls() -> Vec<CallRecord> {
    vec![
        // Monday 3 March 08:10 Paris (07:10 UTC): answered after 4 s, 120 s talk.
        answered("a1", at(2025, 3, 3, 7, 10), 4.0, 120.0),
        // Monday 3 March 08:40 Paris: answered after 30 s.
        answered("a2", at(2025, 3, 3, 7, 40), 30.0, 60.0),
        // Tuesday 4 March 14:05 Paris: answered after 12 s.
        answered("a3", at(2025, 3, 4, 13, 5), 12.0, 90.0),
        // Monday 31 March 09:30 Paris, summer time (07:30 UTC).
        answered("a4", at(2025, 3, 31, 7, 30), 20.0, 30.0),
        abandoned("g1", at(2025, 3, 3, 7, 15), AbandonPhase::Greeting),
        abandoned("t1", at(2025, 3, 5, 9, 0), AbandonPhase::Triage),
        abandoned("q1", at(2025, 3, 5, 9, 30), AbandonPhase::Queue),
        CallRecord {
            overflow_target: Some("voicemail".into()),
            ..call("v1", at(2025, 3, 6, 17, 0), Outcome::Overflowed)
        },
        call("c1", at(2025, 3, 8, 20, 0), Outcome::Closed),
        // Saturday 1 March 00:30 Paris = 28 Feb 23:30 UTC: in March.
        abandoned("edge-in", at(2025, 2, 28, 23, 30), AbandonPhase::Ringing),
        // 28 Feb 22:59 UTC = 23:59 Paris: February, not in the report.
        answered("edge-out", at(2025, 2, 28, 22, 59), 1.0, 10.0),
        // 31 March 22:00 UTC = 1 April 00:00 Paris (summer): April.
        answered("april", at(2025, 3, 31, 22, 0), 1.0, 10.0),
        // Another practice's call.
        CallRecord {
            practice_id: "caron".into(),
            ..answered("other", at(2025, 3, 3, 8, 0), 1.0, 10.0)
        },
    ]
}

fn march_report() -> crate::Report {
    let calls = march_calls();
    let callbacks = vec![
        callback("k1", at(2025, 3, 3, 8, 0), CallbackStatus::Completed, false),
        callback("k2", at(2025, 3, 3, 9, 0), CallbackStatus::Completed, true),
        callback("k3", at(2025, 3, 4, 9, 0), CallbackStatus::Failed, false),
        callback("k4", at(2025, 3, 4, 10, 0), CallbackStatus::Pending, false),
        callback("k5", at(2025, 2, 4, 10, 0), CallbackStatus::Failed, false),
    ];
    let outbound = vec![
        outbound("o1", at(2025, 3, 3, 10, 0), OutboundOutcome::Answered, 90.0),
        outbound("o2", at(2025, 3, 3, 11, 0), OutboundOutcome::NoAnswer, 0.0),
        outbound("o3", at(2025, 3, 3, 12, 0), OutboundOutcome::Refused, 0.0),
    ];
    let voicemails = vec![(at(2025, 3, 6, 17, 1), 25.0), (at(2025, 4, 6, 17, 1), 5.0)];
    build(&ReportInput {
        practice_id: "martin",
        practice_name: "Cabinet du Dr Martin <test> & associés",
        timezone: chrono_tz::Europe::Paris,
        period: Period::Month {
            year: 2025,
            month: 3,
        },
        service_level_secs: 20,
        calls: &calls,
        callbacks: &callbacks,
        outbound: &outbound,
        voicemails: &voicemails,
    })
}

#[test]
fn the_figures_of_a_month_are_exact() {
    let r = march_report();
    let c = &r.calls;
    assert_eq!((c.offered, c.answered, c.abandoned), (9, 4, 4));
    assert_eq!(c.abandoned_by_phase.get("greeting"), Some(&1));
    assert_eq!(c.abandoned_by_phase.get("triage"), Some(&1));
    assert_eq!(c.abandoned_by_phase.get("queue"), Some(&1));
    assert_eq!(c.abandoned_by_phase.get("ringing"), Some(&1));
    assert_eq!(c.overflowed.get("voicemail"), Some(&1));
    assert_eq!(c.closed, 1);
    assert_eq!(c.pickup_rate, Some(4.0 / 9.0));
    // Waits 4, 12, 20, 30: average 16.5, nearest-rank p90 is the 4th.
    assert_eq!(r.wait.average_secs, Some(16.5));
    assert_eq!(r.wait.p90_secs, Some(30.0));
    assert_eq!(r.wait.answered_within_threshold, 3);
    assert_eq!(r.wait.service_level, Some(3.0 / 9.0));
    let cb = &r.callbacks;
    assert_eq!(
        (
            cb.requested,
            cb.done_within_deadline,
            cb.done_late,
            cb.failed,
            cb.open
        ),
        (4, 1, 1, 1, 1)
    );
    assert_eq!((r.voicemail.calls, r.voicemail.messages), (1, 1));
    assert_eq!(
        (r.outbound.placed, r.outbound.answered, r.outbound.refused),
        (2, 1, 1)
    );
    assert_eq!(r.minutes.inbound, 300.0 / 60.0);
    assert_eq!(r.minutes.outbound, 1.5);
    assert_eq!(r.minutes.total, 6.5);
    assert_eq!(r.since, "2025-02-28T23:00:00Z");
    assert_eq!(r.until, "2025-03-31T22:00:00Z");
    assert_eq!(r.period_label, "mars 2025");
}

#[test]
fn the_figures_match_the_records_definition() {
    let calls = march_calls();
    let r = march_report();
    let (since, until) = Period::month("2025-03")
        .map(|p| p.bounds(chrono_tz::Europe::Paris))
        .unwrap_or_default();
    let figures =
        PracticeFigures::tally(calls.iter().filter(|c| {
            c.practice_id == "martin" && c.received_at >= since && c.received_at < until
        }));
    assert!(figures.balanced());
    assert_eq!(r.calls.offered, figures.offered);
    assert_eq!(r.calls.answered, figures.answered);
    assert_eq!(r.calls.abandoned, figures.abandoned_total());
}

#[test]
fn hours_and_weekdays_are_local_across_the_dst_change() {
    let r = march_report();
    // Monday: a1 08:10, a2 08:40, g1 08:15 (winter), a4 09:30 (summer).
    assert_eq!(r.heat_map[0][8], 3);
    assert_eq!(r.heat_map[0][9], 1);
    assert_eq!(r.by_weekday[0].offered, 4);
    assert_eq!(r.by_weekday[0].answered, 3);
    // Tuesday 14:05; Wednesday 10:00 and 10:30; Thursday 18:00.
    assert_eq!(r.heat_map[1][14], 1);
    assert_eq!(r.heat_map[2][10], 2);
    assert_eq!(r.heat_map[3][18], 1);
    // Saturday 1 March 00:30 (the first minutes of the month).
    assert_eq!(r.heat_map[5][0], 1);
    // The closed call is not offered: not in the map.
    assert_eq!(r.heat_map.iter().flatten().sum::<u64>(), 9);
    assert_eq!(
        r.by_hour[8],
        crate::Bucket {
            offered: 3,
            answered: 2
        }
    );
    assert_eq!(r.by_hour.iter().map(|b| b.offered).sum::<u64>(), 9);
}

#[test]
fn a_week_holds_its_seven_local_days() {
    let calls = march_calls();
    let r = build(&ReportInput {
        practice_id: "martin",
        practice_name: "Cabinet du Dr Martin",
        timezone: chrono_tz::Europe::Paris,
        period: Period::Week {
            year: 2025,
            week: 10,
        },
        service_level_secs: 10,
        calls: &calls,
        callbacks: &[],
        outbound: &[],
        voicemails: &[],
    });
    // Week 10: Monday 3 to Sunday 9 March; a1 a2 a3 g1 t1 q1 v1 offered.
    assert_eq!(r.calls.offered, 7);
    assert_eq!(r.calls.closed, 1);
    assert_eq!(r.wait.answered_within_threshold, 1);
    assert_eq!(r.wait.service_level_threshold_secs, 10);
}

#[test]
fn nearest_rank_percentiles() {
    assert_eq!(percentile(&[], 90.0), None);
    assert_eq!(percentile(&[7.0], 90.0), Some(7.0));
    let ten: Vec<f64> = (1..=10).map(f64::from).collect();
    assert_eq!(percentile(&ten, 90.0), Some(9.0));
    assert_eq!(percentile(&ten, 100.0), Some(10.0));
    let eleven: Vec<f64> = (1..=11).map(f64::from).collect();
    assert_eq!(percentile(&eleven, 90.0), Some(10.0));
}

#[test]
fn no_caller_number_in_any_rendering() {
    let r = march_report();
    for format in [Format::Json, Format::Csv, Format::Html] {
        let text = render(&r, format).unwrap_or_default();
        assert!(!text.is_empty());
        assert!(!text.contains(CALLER), "{format:?}");
        assert!(!text.contains("612345678"), "{format:?}");
    }
}

#[test]
fn the_html_is_french_self_contained_and_escaped() {
    let html = render(&march_report(), Format::Html).unwrap_or_default();
    assert!(html.contains("<html lang=\"fr\">"));
    assert!(html.contains("Cabinet du Dr Martin &lt;test&gt; &amp; associés"));
    assert!(html.contains("mars 2025"));
    assert!(html.contains("Niveau de service (20 s)"));
    assert!(html.contains("<b id=\"pickup\">44,4 %</b>"));
    for external in ["<script", "src=", "href=", "@import", "url("] {
        assert!(!html.contains(external), "{external}");
    }
}

#[test]
fn the_csv_has_one_quoted_line_per_figure() {
    let csv = render(&march_report(), Format::Csv).unwrap_or_default();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.first(), Some(&"section,metric,value"));
    assert!(lines.contains(&"calls,offered,9"));
    assert!(lines.contains(&"abandoned,greeting,1"));
    assert!(lines.contains(&"practice,name,Cabinet du Dr Martin <test> & associés"));
    assert!(lines.contains(&"wait,p90_secs,30.0000"));
    assert!(lines.contains(&"callbacks,done_within_deadline,1"));
}
