//! One truth for the figures: a mixed set of calls to Dr Martin (hang-ups
//! during the greeting, the triage menu, the queue and while Alice's phone
//! rings, a voicemail, an answered call) is counted the same way by the
//! Prometheus metrics, the call records and the admin API
//! (`GET /api/figures`), and `permanence_agents` counts an agent without a
//! reachable softphone as `unreachable`, never `available`.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::time::Duration;

const TOKEN: &str = "test-admin-token-0123456789";
const MARTIN: &str = "Diversion: <sip:+33450000001@carrier.example>;reason=unconditional";

/// Martin open at all hours: a 1.5 s greeting, a 1.5 s triage menu waiting
/// 2 s for a digit (so a call is queued about 5 s after the answer), a
/// 1 s voicemail prompt; Alice only, a 10 s maximum wait to voicemail, 1 s
/// wrap-up; no OPTIONS probes; admin token set.
fn config() -> TestConfig {
    let mut cfg = TestConfig::demo();
    cfg.always_open("martin");
    cfg.tone_prompt("martin", "greeting", 1.5, 440.0);
    cfg.tone_prompt("martin", "triage", 1.5, 660.0);
    cfg.tone_prompt("martin", "voicemail", 1.0, 880.0);
    let m = cfg.practice("martin");
    m.get_mut("triage")
        .and_then(|t| t.as_table_mut())
        .expect("[triage]")
        .insert("timeout_seconds".into(), 2.into());
    let routing = cfg.routing("martin");
    routing.insert("max_wait_seconds".into(), 10.into());
    routing.insert("wrap_up_seconds".into(), 1.into());
    let mut step = toml::Table::new();
    step.insert("after_seconds".into(), 0.into());
    step.insert("dedicated".into(), true.into());
    routing.insert(
        "steps".into(),
        toml::Value::Array(vec![toml::Value::Table(step)]),
    );
    // Callbacks that keep the caller's place, offered as soon as the
    // caller is queued (digit 8).
    let mut callback = toml::Table::new();
    callback.insert("offer".into(), true.into());
    callback.insert("digit".into(), "8".into());
    callback.insert("offer_after_seconds".into(), 0.into());
    cfg.practice("martin")
        .insert("callback".into(), toml::Value::Table(callback));
    cfg.no_qualify();
    cfg.main_table("http")
        .insert("admin_token".into(), TOKEN.into());
    cfg
}

/// A patient of Martin, queued while nobody can answer, asks to be called
/// back on their number: hears the offer, presses 8, confirms with 1 as
/// soon as the number is being read back (the 10 s maximum wait would
/// send them to voicemail before the read-back ends), hears that their
/// place is kept; the engine hangs up. Waits until the call has ended in
/// the engine (the `n`th).
fn ask_callback(engine: &Engine, n: usize) {
    let heard = |rtp: &RtpPeer, prompt: &str| {
        let p = default_prompt(prompt);
        rtp.wait_until(Duration::from_secs(15), |pk| prompt_coverage(pk, &p) > 0.8)
    };
    let (rtp, run) = patient(
        engine,
        MARTIN,
        "carrier_wait_bye.xml",
        0x55,
        &[],
        Duration::from_secs(60),
    );
    assert!(heard(&rtp, "callback_offer"), "no callback offer heard");
    rtp.press('8');
    assert!(heard(&rtp, "callback_confirm_prefix"), "no read-back");
    rtp.press('1');
    assert!(
        heard(&rtp, "callback_kept_place"),
        "no kept-place confirmation"
    );
    joined(run, "patient (callback)");
    engine
        .wait_n("call.ended", n, Duration::from_secs(10), |_| true)
        .unwrap_or_else(|| panic!("call {n} did not end\n{}", engine.dump()));
}

/// A patient calls Martin and hangs up `hang_up_ms` after the answer;
/// waits until the call has ended in the engine.
fn call_and_hang_up(engine: &Engine, hang_up_ms: u64, n: usize) {
    let ms = hang_up_ms.to_string();
    let (_rtp, run) = patient(
        engine,
        MARTIN,
        "carrier_call.xml",
        0x55,
        &["-d", &ms],
        Duration::from_secs(60),
    );
    joined(run, "patient");
    engine
        .wait_n("call.ended", n, Duration::from_secs(10), |_| true)
        .unwrap_or_else(|| panic!("call {n} did not end\n{}", engine.dump()));
}

fn api(engine: &Engine, method: &str, path: &str) -> serde_json::Value {
    let (code, body) = http_call(engine, method, path, TOKEN, None);
    assert_eq!(code, 200, "{method} {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// Alice's presence in the admin API and the agents gauge, once it is
/// `presence`.
fn alice_is(engine: &Engine, presence: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let agents = api(engine, "GET", "/api/agents");
        let alice = agents
            .as_array()
            .and_then(|a| a.iter().find(|x| x["agent"] == "alice"))
            .cloned()
            .expect("alice");
        if alice["presence"] == presence {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "alice is {alice} instead of {presence}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The practice's figures from `/metrics`: (offered, answered, abandoned
/// by phase, overflowed by target, failed).
type Figures = (u64, u64, BTreeMap<String, u64>, BTreeMap<String, u64>, u64);

fn metrics_figures(engine: &Engine) -> Figures {
    let (code, text) = http_get(engine, "/metrics");
    assert_eq!(code, 200);
    let m = |s: String| metric(&text, &s).unwrap_or_else(|| panic!("no series {s}")) as u64;
    let p = "practice=\"martin\"";
    let mut abandoned = BTreeMap::new();
    for phase in [
        "greeting",
        "triage",
        "route",
        "queue",
        "ringing",
        "callback_prompt",
    ] {
        let n: u64 = ["true", "false"]
            .iter()
            .map(|short| {
                m(format!(
                    "permanence_calls_abandoned_total{{phase=\"{phase}\",{p},short=\"{short}\"}}"
                ))
            })
            .sum();
        if n > 0 {
            abandoned.insert(phase.to_string(), n);
        }
    }
    let mut overflowed = BTreeMap::new();
    for target in ["voicemail", "callback", "hangup", "callback_request"] {
        let n = m(format!(
            "permanence_calls_overflowed_total{{{p},target=\"{target}\"}}"
        ));
        if n > 0 {
            overflowed.insert(target.to_string(), n);
        }
    }
    (
        m(format!("permanence_calls_offered_total{{{p}}}")),
        m(format!("permanence_calls_answered_total{{{p}}}")),
        abandoned,
        overflowed,
        m(format!("permanence_calls_failed_total{{{p}}}")),
    )
}

fn api_figures(engine: &Engine) -> Figures {
    let f = api(engine, "GET", "/api/figures?practice=martin");
    let map = |v: &serde_json::Value| -> BTreeMap<String, u64> {
        v.as_object()
            .expect("object")
            .iter()
            .map(|(k, n)| (k.clone(), n.as_u64().expect("count")))
            .filter(|(_, n)| *n > 0)
            .collect()
    };
    let n = |k: &str| f[k].as_u64().unwrap_or_else(|| panic!("{k}: {f}"));
    assert_eq!(n("in_progress"), 0, "{f}");
    (
        n("offered"),
        n("answered"),
        map(&f["abandoned"]),
        map(&f["overflowed"]),
        n("failed"),
    )
}

/// The monthly report of this month (`GET /api/report`, JSON: what
/// `permanence report` prints).
fn report_figures(engine: &Engine) -> Figures {
    let month = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Paris)
        .format("%Y-%m")
        .to_string();
    let r = api(
        engine,
        "GET",
        &format!("/api/report?practice=martin&month={month}&format=json"),
    );
    // The callback request is in the report's callbacks too, still open.
    assert_eq!(r["callbacks"]["requested"], 1, "{}", r["callbacks"]);
    assert_eq!(r["callbacks"]["open"], 1, "{}", r["callbacks"]);
    let c = &r["calls"];
    let map = |v: &serde_json::Value| -> BTreeMap<String, u64> {
        v.as_object()
            .expect("object")
            .iter()
            .map(|(k, n)| (k.clone(), n.as_u64().expect("count")))
            .filter(|(_, n)| *n > 0)
            .collect()
    };
    let n = |k: &str| c[k].as_u64().unwrap_or_else(|| panic!("{k}: {r}"));
    (
        n("offered"),
        n("answered"),
        map(&c["abandoned_by_phase"]),
        map(&c["overflowed"]),
        n("failed"),
    )
}

/// Counted row by row from the call records (not through the API's
/// aggregation).
fn records_figures(engine: &Engine) -> Figures {
    use permanence_records::{CallFilter, Outcome};
    let db = engine.data.join("permanence.db");
    let reader = permanence_records::RecordReader::open(&db).expect("records db");
    let rows = reader
        .calls(&CallFilter {
            practice_id: Some("martin".into()),
            limit: 100,
            ..CallFilter::default()
        })
        .expect("calls");
    let mut f: Figures = (0, 0, BTreeMap::new(), BTreeMap::new(), 0);
    for r in &rows {
        match r.outcome {
            Outcome::Answered => f.1 += 1,
            Outcome::Abandoned => {
                let phase = r.abandon_phase.expect("abandon phase");
                *f.2.entry(phase.as_str().replace('-', "_")).or_insert(0) += 1;
            }
            Outcome::Overflowed => {
                let target = r.overflow_target.clone().expect("overflow target");
                *f.3.entry(target).or_insert(0) += 1;
            }
            Outcome::CallbackRequested => {
                *f.3.entry("callback_request".into()).or_insert(0) += 1;
            }
            Outcome::Failed => f.4 += 1,
            Outcome::Closed | Outcome::Unanswered | Outcome::Rejected => continue,
            other => panic!("call {} still {other}", r.call_id),
        }
        f.0 += 1;
    }
    f
}

#[test]
fn metrics_records_and_admin_api_agree_on_a_mixed_set_of_calls() {
    let engine = Engine::start(&config(), &[]);
    let (code, text) = http_get(&engine, "/metrics");
    assert_eq!(code, 200);
    // No softphone registered: the demo agents are logged in but not
    // available.
    assert_eq!(
        metric(&text, r#"permanence_agents{state="available"}"#),
        Some(0.0)
    );
    assert_eq!(
        metric(&text, r#"permanence_agents{state="unreachable"}"#),
        Some(3.0)
    );
    alice_is(&engine, "unreachable");

    // 1. Gone during the 1.5 s greeting; 2. during the triage menu.
    call_and_hang_up(&engine, 700, 1);
    call_and_hang_up(&engine, 2500, 2);

    // Alice's softphone registers (it never answers) and she pauses.
    let port = free_udp_port();
    register_agent(engine.sip, "alice", "alice-demo", port);
    let (_noanswer_rtp, noanswer) = SippBg::uas_with_rtp(
        "agent_noanswer.xml",
        port,
        0,
        0x2a,
        &[],
        Duration::from_secs(120),
    );
    alice_is(&engine, "available");
    api(&engine, "POST", "/api/agents/alice/pause");
    alice_is(&engine, "paused");

    // 3. Gone 2.5 s into the queue; 4. still waiting at the 10 s maximum
    //    wait: voicemail, a message, then the hang-up.
    call_and_hang_up(&engine, 7500, 3);
    call_and_hang_up(&engine, 18_500, 4);

    // 5. Alice back: her phone rings, the caller hangs up meanwhile.
    api(&engine, "POST", "/api/agents/alice/unpause");
    alice_is(&engine, "available");
    call_and_hang_up(&engine, 7500, 5);
    noanswer.finish_ok(Duration::from_secs(20), "alice (no answer)");

    // 6. Her softphone answers now: a conversation of a few seconds.
    unregister_agent(engine.sip, "alice", "alice-demo", port);
    let answer_port = free_udp_port();
    register_agent(engine.sip, "alice", "alice-demo", answer_port);
    let (_answer_rtp, answers) = SippBg::uas_with_rtp(
        "agent_answer.xml",
        answer_port,
        0,
        0x2a,
        &["-d", "200"],
        Duration::from_secs(60),
    );
    alice_is(&engine, "available");
    call_and_hang_up(&engine, 9000, 6);
    answers.finish_ok(Duration::from_secs(20), "alice (answers)");

    // 7. Alice paused again: a caller asks to be called back, keeping
    //    their place (the request stays open: nobody takes it here).
    api(&engine, "POST", "/api/agents/alice/pause");
    alice_is(&engine, "paused");
    ask_callback(&engine, 7);

    let reasons: Vec<String> = engine
        .events("call.ended")
        .iter()
        .map(|e| field(e, "reason").to_string())
        .collect();
    assert_eq!(
        reasons,
        [
            "abandoned-greeting",
            "abandoned-triage",
            "abandoned-queue",
            "voicemail",
            "abandoned-ringing",
            "caller-hangup",
            "callback-requested"
        ]
    );

    let expected: Figures = (
        7,
        1,
        [("greeting", 1), ("triage", 1), ("queue", 1), ("ringing", 1)]
            .into_iter()
            .map(|(k, n)| (k.to_string(), n))
            .collect(),
        [
            ("callback_request".to_string(), 1),
            ("voicemail".to_string(), 1),
        ]
        .into(),
        0,
    );
    // The API flushes the records before reading them.
    assert_eq!(api_figures(&engine), expected, "admin API");
    assert_eq!(records_figures(&engine), expected, "call records");
    assert_eq!(metrics_figures(&engine), expected, "metrics");
    assert_eq!(report_figures(&engine), expected, "the monthly report");
    let f = api(&engine, "GET", "/api/figures?practice=martin");
    assert_eq!(f["pickup_rate"].as_f64(), Some(1.0 / 7.0));
    let (_, text) = http_get(&engine, "/metrics");
    assert_eq!(
        metric(
            &text,
            r#"permanence_callbacks_requested_total{origin="caller",practice="martin"}"#
        ),
        Some(1.0),
        "the callback request in the callbacks' own figures"
    );

    // The queue's own figure is another thing: the five calls that got
    // past the greeting and the triage menu entered the queue.
    let (_, text) = http_get(&engine, "/metrics");
    assert_eq!(
        metric(
            &text,
            r#"permanence_queue_entered_total{practice="martin"}"#
        ),
        Some(5.0)
    );
    // Bad queries are refused.
    let (code, _) = http_call(&engine, "GET", "/api/figures?practice=nobody", TOKEN, None);
    assert_eq!(code, 404);
    let (code, _) = http_call(
        &engine,
        "GET",
        "/api/figures?practice=martin&since=yesterday",
        TOKEN,
        None,
    );
    assert_eq!(code, 400);
}
