//! Practice set reloads, gauges, SIP/RTP/service counters, buckets, and a
//! real dispatcher driving the recorder.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use permanence_acd::{
    AcdConfig, AgentProfile, CallArrival, CallId, Dispatcher, Input, Output, PracticeId,
    PracticePolicy,
};
use permanence_metrics::{
    AcdGauges, AcdRecorder, AgentCounts, Metrics, PracticeGauges, Presence, RtpTotals, SipMethod,
    SipReject, BUCKETS, CONTENT_TYPE, DEFAULT_SHORT_ABANDON,
};

fn series(m: &Metrics) -> BTreeMap<String, String> {
    m.render()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').expect("sample line");
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn value(m: &Metrics, key: &str) -> f64 {
    series(m)
        .get(key)
        .unwrap_or_else(|| panic!("no series {key}"))
        .parse()
        .expect("number")
}

fn practices_in(m: &Metrics) -> Vec<String> {
    let mut v: Vec<String> = series(m)
        .keys()
        .filter_map(|k| {
            let i = k.find("practice=\"")? + 10;
            let j = k[i..].find('"')? + i;
            Some(k[i..j].to_string())
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

#[test]
fn histogram_buckets_are_the_service_level_thresholds() {
    assert_eq!(
        BUCKETS,
        [5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0]
    );
    let m = Metrics::new(DEFAULT_SHORT_ABANDON).expect("metrics");
    m.practices(&["x"]).expect("practices");
    let text = m.render();
    for family in [
        "permanence_wait_seconds",
        "permanence_ring_seconds",
        "permanence_talk_seconds",
        "permanence_wrapup_seconds",
    ] {
        assert!(text.contains(&format!("# TYPE {family} histogram\n")));
        let les: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.starts_with(&format!("{family}_bucket{{"))
                    && (family != "permanence_wait_seconds" || l.contains("outcome=\"answered\""))
            })
            .map(|l| {
                let i = l.find("le=\"").expect("le") + 4;
                &l[i..i + l[i..].find('"').expect("quote")]
            })
            .collect();
        assert_eq!(
            les,
            ["5", "10", "15", "20", "30", "45", "60", "90", "120", "180", "300", "+Inf"],
            "{family}"
        );
    }
}

#[test]
fn reload_adds_new_practices_removes_deleted_ones_and_keeps_values() {
    let m = Metrics::new(DEFAULT_SHORT_ABANDON).expect("metrics");
    m.practices(&["a", "b"]).expect("practices");
    assert_eq!(practices_in(&m), ["a", "b"]);
    let a = m.practice("a").expect("a");
    let b = m.practice("b").expect("b");
    a.queue_entered();
    b.queue_entered();
    b.queue_entered();
    let mut recorder = m.recorder();

    m.practices(&["b", "c"]).expect("reload");
    recorder.reload();
    assert_eq!(practices_in(&m), ["b", "c"]);
    assert_eq!(
        value(&m, "permanence_queue_entered_total{practice=\"b\"}"),
        2.0
    );
    assert_eq!(
        value(&m, "permanence_queue_entered_total{practice=\"c\"}"),
        0.0
    );
    // Same handle for a kept practice.
    assert!(std::sync::Arc::ptr_eq(&b, &m.practice("b").expect("b")));
    // A removed practice's handle still works, unexported.
    a.queue_entered();
    assert!(!m.render().contains("practice=\"a\""));
    // Re-adding it starts from zero.
    m.practices(&["a", "b", "c"]).expect("reload");
    assert_eq!(
        value(&m, "permanence_queue_entered_total{practice=\"a\"}"),
        0.0
    );
    // Duplicates are harmless.
    m.practices(&["c", "c"]).expect("reload");
    assert_eq!(practices_in(&m), ["c"]);
    assert_eq!(m.practice_set().len(), 1);
    // practice() adds one practice.
    m.practice("d").expect("d");
    assert_eq!(practices_in(&m), ["c", "d"]);
    // The recorder's own copy follows after reload().
    recorder.reload();
    recorder.on_event(
        &permanence_acd::Event::CallQueued {
            call: CallId(1),
            practice: "d".into(),
            priority: 0,
            rejoined: false,
        },
        Utc::now(),
    );
    assert_eq!(
        value(&m, "permanence_queue_entered_total{practice=\"d\"}"),
        1.0
    );
    // The registry's own gather sees the same set.
    let gathered: Vec<String> = m
        .registry()
        .gather()
        .iter()
        .filter(|f| f.name() == "permanence_queue_entered_total")
        .flat_map(|f| f.get_metric().to_vec())
        .map(|m| m.get_label()[0].value().to_string())
        .collect();
    assert_eq!(gathered, ["c", "d"]);
}

#[test]
fn gauges_are_set_from_a_snapshot() {
    let m = Metrics::new(DEFAULT_SHORT_ABANDON).expect("metrics");
    m.practices(&["martin", "caron"]).expect("practices");
    // Every agent state is exported, zeros included.
    for s in [
        "logged_out",
        "unreachable",
        "available",
        "offered",
        "on_call",
        "wrap_up",
        "paused",
    ] {
        assert_eq!(
            value(&m, &format!("permanence_agents{{state=\"{s}\"}}")),
            0.0
        );
    }
    let mut agents = AgentCounts::default();
    agents.add(Presence::Available);
    agents.add(Presence::Available);
    agents.add(Presence::WrapUp);
    agents.add(Presence::Unreachable);
    m.set_gauges_from(&AcdGauges {
        practices: vec![
            PracticeGauges {
                practice: "martin".into(),
                open: true,
                waiting: 3,
                oldest_wait: Some(Duration::from_millis(42_500)),
                estimated_wait: Some(Duration::from_secs(30)),
                eligible: 2,
            },
            PracticeGauges {
                practice: "caron".into(),
                open: false,
                waiting: 0,
                oldest_wait: None,
                estimated_wait: None,
                eligible: 0,
            },
            // Unknown practice: skipped, not created.
            PracticeGauges {
                practice: "ghost".into(),
                open: true,
                waiting: 1,
                oldest_wait: None,
                estimated_wait: None,
                eligible: 0,
            },
        ],
        agents,
    });
    let s = series(&m);
    let g = |k: &str| s.get(k).map(String::as_str);
    assert_eq!(
        g("permanence_queue_waiting{practice=\"martin\"}"),
        Some("3")
    );
    assert_eq!(
        g("permanence_queue_oldest_wait_seconds{practice=\"martin\"}"),
        Some("42.5")
    );
    assert_eq!(
        g("permanence_queue_estimated_wait_seconds{practice=\"martin\"}"),
        Some("30")
    );
    assert_eq!(
        g("permanence_agents_eligible{practice=\"martin\"}"),
        Some("2")
    );
    assert_eq!(
        g("permanence_practice_open{practice=\"martin\"}"),
        Some("1")
    );
    assert_eq!(g("permanence_practice_open{practice=\"caron\"}"), Some("0"));
    assert_eq!(
        g("permanence_queue_oldest_wait_seconds{practice=\"caron\"}"),
        Some("0")
    );
    assert_eq!(
        g("permanence_queue_estimated_wait_seconds{practice=\"caron\"}"),
        Some("NaN")
    );
    assert_eq!(g("permanence_agents{state=\"available\"}"), Some("2"));
    assert_eq!(g("permanence_agents{state=\"wrap_up\"}"), Some("1"));
    assert_eq!(g("permanence_agents{state=\"paused\"}"), Some("0"));
    assert_eq!(g("permanence_agents{state=\"unreachable\"}"), Some("1"));
    assert!(!m.render().contains("ghost"));

    m.set_active_calls(7);
    m.set_registered_contacts(12);
    assert_eq!(value(&m, "permanence_active_calls"), 7.0);
    assert_eq!(value(&m, "permanence_registered_contacts"), 12.0);
}

#[test]
fn sip_counters() {
    let m = Metrics::new(DEFAULT_SHORT_ABANDON).expect("metrics");
    // Request counters exist at zero for every method.
    assert_eq!(
        value(&m, "permanence_sip_requests_total{method=\"REGISTER\"}"),
        0.0
    );
    m.sip_request(SipMethod::parse("INVITE"));
    m.sip_request(SipMethod::parse("INVITE"));
    m.sip_request(SipMethod::parse("invite")); // case-sensitive: other
    m.sip_request(SipMethod::parse("FOO"));
    m.sip_response(SipMethod::Invite, 200);
    m.sip_response(SipMethod::Invite, 200);
    m.sip_response(SipMethod::Invite, 503);
    m.sip_response(SipMethod::Register, 401);
    m.sip_response(SipMethod::Options, 42);
    m.sip_retransmission();
    m.sip_rejected(SipReject::Acl);
    m.sip_rejected(SipReject::UnknownNumber);
    m.sip_rejected(SipReject::UnknownNumber);
    let s = series(&m);
    let g = |k: &str| s.get(k).map(String::as_str);
    assert_eq!(
        g("permanence_sip_requests_total{method=\"INVITE\"}"),
        Some("2")
    );
    assert_eq!(
        g("permanence_sip_requests_total{method=\"other\"}"),
        Some("2")
    );
    assert_eq!(
        g("permanence_sip_responses_total{code=\"200\",method=\"INVITE\"}"),
        Some("2")
    );
    assert_eq!(
        g("permanence_sip_responses_total{code=\"503\",method=\"INVITE\"}"),
        Some("1")
    );
    assert_eq!(
        g("permanence_sip_responses_total{code=\"401\",method=\"REGISTER\"}"),
        Some("1")
    );
    assert_eq!(
        g("permanence_sip_responses_total{code=\"other\",method=\"OPTIONS\"}"),
        Some("1")
    );
    assert_eq!(g("permanence_sip_retransmissions_total"), Some("1"));
    assert_eq!(
        g("permanence_sip_rejected_total{reason=\"acl\"}"),
        Some("1")
    );
    assert_eq!(
        g("permanence_sip_rejected_total{reason=\"unknown_number\"}"),
        Some("2")
    );
    assert_eq!(
        g("permanence_sip_rejected_total{reason=\"auth\"}"),
        Some("0")
    );
    assert_eq!(
        g("permanence_sip_rejected_total{reason=\"overload\"}"),
        Some("0")
    );

    // Parse errors follow the guard's cumulative totals.
    m.sync_sip_parse_errors(2, 5);
    m.sync_sip_parse_errors(3, 5);
    assert_eq!(
        value(&m, "permanence_sip_parse_errors_total{action=\"answered\"}"),
        3.0
    );
    assert_eq!(
        value(&m, "permanence_sip_parse_errors_total{action=\"dropped\"}"),
        5.0
    );
    // A total going backwards (a new guard) adds nothing, then counts on.
    m.sync_sip_parse_errors(1, 1);
    m.sync_sip_parse_errors(2, 1);
    assert_eq!(
        value(&m, "permanence_sip_parse_errors_total{action=\"answered\"}"),
        4.0
    );
}

#[test]
fn rtp_counters_add_increments() {
    let m = Metrics::new(DEFAULT_SHORT_ABANDON).expect("metrics");
    let first = RtpTotals {
        packets_in: 100,
        bytes_in: 17_200,
        packets_out: 90,
        bytes_out: 15_480,
        lost: 2,
        late: 1,
        foreign: 0,
        srtp_refused: 0,
    };
    m.rtp_add(&first);
    let later = RtpTotals {
        packets_in: 150,
        bytes_in: 25_800,
        packets_out: 140,
        bytes_out: 24_080,
        lost: 3,
        late: 1,
        foreign: 40,
        srtp_refused: 7,
    };
    m.rtp_add(&later.delta_since(&first));
    let s = series(&m);
    let g = |k: &str| s.get(k).map(String::as_str);
    assert_eq!(
        g("permanence_rtp_packets_total{direction=\"in\"}"),
        Some("150")
    );
    assert_eq!(
        g("permanence_rtp_packets_total{direction=\"out\"}"),
        Some("140")
    );
    assert_eq!(
        g("permanence_rtp_bytes_total{direction=\"in\"}"),
        Some("25800")
    );
    assert_eq!(
        g("permanence_rtp_bytes_total{direction=\"out\"}"),
        Some("24080")
    );
    assert_eq!(g("permanence_rtp_lost_packets_total"), Some("3"));
    assert_eq!(g("permanence_rtp_late_packets_total"), Some("1"));
    assert_eq!(g("permanence_rtp_foreign_packets_total"), Some("40"));
    assert_eq!(g("permanence_rtp_srtp_refused_packets_total"), Some("7"));
    assert_eq!(first.delta_since(&later), RtpTotals::default());
}

#[test]
fn service_counters_and_build_info() {
    let m = Metrics::new(DEFAULT_SHORT_ABANDON).expect("metrics");
    assert_eq!(
        value(
            &m,
            &format!(
                "permanence_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        1.0
    );
    assert_eq!(value(&m, "permanence_records_dropped_total"), 0.0);
    m.records_dropped(3);
    m.config_reload(true);
    m.config_reload(false);
    m.config_reload(false);
    assert_eq!(value(&m, "permanence_records_dropped_total"), 3.0);
    // The records store: healthy until told otherwise; failures are synced
    // from the store's cumulative count.
    assert_eq!(value(&m, "permanence_records_healthy"), 1.0);
    assert_eq!(value(&m, "permanence_records_write_failures_total"), 0.0);
    m.sync_records(false, 12, 2);
    assert_eq!(value(&m, "permanence_records_healthy"), 0.0);
    assert_eq!(value(&m, "permanence_records_backlog"), 12.0);
    assert_eq!(value(&m, "permanence_records_write_failures_total"), 2.0);
    m.sync_records(false, 40, 5);
    m.sync_records(false, 40, 5);
    assert_eq!(value(&m, "permanence_records_write_failures_total"), 5.0);
    m.sync_records(true, 0, 5);
    assert_eq!(value(&m, "permanence_records_healthy"), 1.0);
    assert_eq!(value(&m, "permanence_records_backlog"), 0.0);
    assert_eq!(value(&m, "permanence_records_write_failures_total"), 5.0);
    assert_eq!(
        value(&m, "permanence_config_reloads_total{result=\"ok\"}"),
        1.0
    );
    assert_eq!(
        value(&m, "permanence_config_reloads_total{result=\"failed\"}"),
        2.0
    );
    assert_eq!(CONTENT_TYPE, "text/plain; version=0.0.4");
    let mut buf = String::from("stale");
    buf.clear();
    m.render_into(&mut buf);
    assert_eq!(buf, m.render());
}

// ------------------------------------------------------ real dispatcher

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 12, 9, 0, 0)
        .single()
        .expect("t0")
}

fn at(secs: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::seconds(secs)
}

/// Drains the dispatcher's outputs into the recorder, stamped `now`.
fn drain(d: &mut Dispatcher, r: &mut AcdRecorder, now: DateTime<Utc>) -> Vec<Output> {
    let mut out = Vec::new();
    while let Some(o) = d.poll_output() {
        if let Output::Event(e) = &o {
            r.on_event(e, now);
        }
        out.push(o);
    }
    out
}

/// Fires every timer up to `target` at its own instant, like a driver.
fn advance(d: &mut Dispatcher, r: &mut AcdRecorder, target: DateTime<Utc>) {
    while let Some(next) = d.poll_timeout() {
        if next > target {
            break;
        }
        d.handle_timeout(next);
        drain(d, r, next);
    }
    d.handle_timeout(target);
    drain(d, r, target);
}

fn input(d: &mut Dispatcher, r: &mut AcdRecorder, i: Input, now: DateTime<Utc>) {
    d.handle_input(i, now).expect("input");
    drain(d, r, now);
}

#[test]
fn a_real_dispatcher_feeds_the_recorder() {
    let mut alice = AgentProfile::new("alice");
    alice.logged_in = true;
    alice.practices.push("martin".into());
    let mut martin = PracticePolicy::new("martin");
    martin.wrap_up = Some(Duration::from_secs(10));
    martin.dedicated_agents.push("alice".into());
    // caron has no agent: its calls wait.
    let caron = PracticePolicy::new("caron");
    let cfg = AcdConfig {
        agents: vec![alice],
        practices: vec![martin, caron],
        ..AcdConfig::default()
    };
    let mut d = Dispatcher::new(cfg).expect("config");
    let m = Metrics::new(DEFAULT_SHORT_ABANDON).expect("metrics");
    let ids: Vec<PracticeId> = d.practice_ids().cloned().collect();
    m.practices(&ids.iter().map(PracticeId::as_str).collect::<Vec<_>>())
        .expect("practices");
    let mut r = m.recorder();
    advance(&mut d, &mut r, t0());

    // Call 1 for martin: offered at once, answered after 3 s, 60 s talk,
    // 10 s wrap-up.
    input(
        &mut d,
        &mut r,
        Input::CallArrived(CallArrival::new(CallId(1), "martin")),
        t0(),
    );
    // Call 2 for caron waits.
    input(
        &mut d,
        &mut r,
        Input::CallArrived(CallArrival::new(CallId(2), "caron")),
        t0(),
    );
    advance(&mut d, &mut r, at(3));
    input(
        &mut d,
        &mut r,
        Input::OfferAnswered {
            call: CallId(1),
            agent: "alice".into(),
        },
        at(3),
    );
    advance(&mut d, &mut r, at(30));
    // Gauges mid-call.
    m.set_gauges_from(&AcdGauges::from_dispatcher(&d, at(30)));
    let s = series(&m);
    let g = |k: &str| s.get(k).map(String::as_str);
    assert_eq!(g("permanence_queue_waiting{practice=\"caron\"}"), Some("1"));
    assert_eq!(
        g("permanence_queue_oldest_wait_seconds{practice=\"caron\"}"),
        Some("30")
    );
    assert_eq!(
        g("permanence_queue_estimated_wait_seconds{practice=\"caron\"}"),
        Some("NaN")
    );
    assert_eq!(
        g("permanence_agents_eligible{practice=\"caron\"}"),
        Some("0")
    );
    assert_eq!(
        g("permanence_agents_eligible{practice=\"martin\"}"),
        Some("1")
    );
    assert_eq!(
        g("permanence_practice_open{practice=\"martin\"}"),
        Some("1")
    );
    assert_eq!(
        g("permanence_queue_waiting{practice=\"martin\"}"),
        Some("0")
    );
    assert_eq!(g("permanence_agents{state=\"on_call\"}"), Some("1"));
    assert_eq!(g("permanence_agents{state=\"available\"}"), Some("0"));

    advance(&mut d, &mut r, at(63));
    input(&mut d, &mut r, Input::CallEnded { call: CallId(1) }, at(63));
    advance(&mut d, &mut r, at(100));
    // Caller 2 gives up after 100 s.
    input(
        &mut d,
        &mut r,
        Input::CallAbandoned { call: CallId(2) },
        at(100),
    );

    let s = series(&m);
    let g = |k: &str| s.get(k).map(String::as_str);
    assert_eq!(
        g("permanence_queue_entered_total{practice=\"martin\"}"),
        Some("1")
    );
    assert_eq!(
        g("permanence_queue_answered_total{practice=\"martin\"}"),
        Some("1")
    );
    assert_eq!(
        g("permanence_offers_total{practice=\"martin\",result=\"answered\"}"),
        Some("1")
    );
    assert_eq!(
        g("permanence_wait_seconds_sum{outcome=\"answered\",practice=\"martin\"}"),
        Some("3")
    );
    assert_eq!(
        g("permanence_wait_seconds_bucket{outcome=\"answered\",practice=\"martin\",le=\"5\"}"),
        Some("1")
    );
    assert_eq!(
        g("permanence_ring_seconds_sum{practice=\"martin\"}"),
        Some("3")
    );
    assert_eq!(
        g("permanence_talk_seconds_sum{practice=\"martin\"}"),
        Some("60")
    );
    assert_eq!(
        g("permanence_wrapup_seconds_sum{practice=\"martin\"}"),
        Some("10")
    );
    assert_eq!(
        g("permanence_wrapup_seconds_count{practice=\"martin\"}"),
        Some("1")
    );
    assert_eq!(
        g("permanence_queue_entered_total{practice=\"caron\"}"),
        Some("1")
    );
    assert_eq!(
        g("permanence_queue_abandoned_total{phase=\"queue\",practice=\"caron\",short=\"false\"}"),
        Some("1")
    );
    assert_eq!(
        g("permanence_wait_seconds_sum{outcome=\"abandoned\",practice=\"caron\"}"),
        Some("100")
    );
    assert_eq!(r.tracked_calls(), 0);
    assert_eq!(r.tracked_agents(), 0);
}

/// The practice's call figures follow each call's disposition: every
/// offered call in exactly one outcome, closed and unanswered calls not
/// offered, abandons by phase with `short` measured from the engine's
/// answer.
#[test]
fn call_dispositions_give_balanced_call_figures() {
    use permanence_types::{AbandonPhase, Disposition, OverflowKind};
    let m = Metrics::new(DEFAULT_SHORT_ABANDON).expect("metrics");
    m.practices(&["tilleuls"]).expect("practices");
    let h = m.practice("tilleuls").expect("practice");
    let s = Duration::from_secs;
    for (d, since) in [
        (Disposition::Abandoned(AbandonPhase::Greeting), s(2)),
        (Disposition::Abandoned(AbandonPhase::Triage), s(9)),
        (Disposition::Abandoned(AbandonPhase::Queue), s(40)),
        (Disposition::Abandoned(AbandonPhase::Ringing), s(50)),
        (Disposition::Abandoned(AbandonPhase::CallbackPrompt), s(70)),
        (Disposition::Answered, s(300)),
        (Disposition::Overflowed(OverflowKind::Voicemail), s(200)),
        (Disposition::CallbackRequested, s(90)),
        (Disposition::Failed, s(100)),
        (Disposition::Closed, s(10)),
        (Disposition::Unanswered, s(0)),
    ] {
        h.call_ended(d, since);
    }
    let v = |k: &str| value(&m, k);
    let p = "practice=\"tilleuls\"";
    assert_eq!(v(&format!("permanence_calls_offered_total{{{p}}}")), 9.0);
    assert_eq!(v(&format!("permanence_calls_answered_total{{{p}}}")), 1.0);
    assert_eq!(v(&format!("permanence_calls_failed_total{{{p}}}")), 1.0);
    assert_eq!(v(&format!("permanence_calls_closed_total{{{p}}}")), 1.0);
    let abandoned = |phase: &str, short: &str| {
        v(&format!(
            "permanence_calls_abandoned_total{{phase=\"{phase}\",{p},short=\"{short}\"}}"
        ))
    };
    assert_eq!(abandoned("greeting", "true"), 1.0);
    assert_eq!(abandoned("triage", "false"), 1.0);
    assert_eq!(abandoned("queue", "false"), 1.0);
    assert_eq!(abandoned("ringing", "false"), 1.0);
    assert_eq!(abandoned("callback_prompt", "false"), 1.0);
    assert_eq!(abandoned("route", "false"), 0.0);
    let overflowed = |t: &str| {
        v(&format!(
            "permanence_calls_overflowed_total{{{p},target=\"{t}\"}}"
        ))
    };
    assert_eq!(overflowed("voicemail"), 1.0);
    assert_eq!(overflowed("callback_request"), 1.0);
    assert_eq!(overflowed("callback"), 0.0);
    // The queue's own figures did not move.
    assert_eq!(v(&format!("permanence_queue_entered_total{{{p}}}")), 0.0);
}
