//! A crash loses nothing: after SIGKILL with one call talking and two
//! queued, the restarted engine closes their three records as interrupted
//! (counted), and the agents' chosen states and the softphones'
//! registrations are back without anyone doing anything.

mod common;

use common::{
    field, free_udp_port, http_call, metric, register_agent, sipp_thread, Engine, RtpPeer, SippBg,
    TestConfig,
};
use permanence_records::{CallFilter, Outcome, RecordReader};
use serde_json::Value;
use std::time::Duration;

const TOKEN: &str = "demo-admin-token-change-me";
const MARTIN: &str = "Diversion: <sip:+33450000001@carrier.example>;reason=unconditional";

/// Martin open at all hours, no triage, Alice only, long max wait; no
/// OPTIONS probes.
fn config() -> TestConfig {
    let mut cfg = TestConfig::demo();
    cfg.always_open("martin");
    cfg.tone_prompt("martin", "greeting", 0.3, 440.0);
    let m = cfg.practice("martin");
    m.remove("triage");
    let routing = m
        .get_mut("routing")
        .and_then(|r| r.as_table_mut())
        .expect("[routing]");
    routing.insert("max_wait_seconds".into(), 600.into());
    let mut step = toml::Table::new();
    step.insert("after_seconds".into(), 0.into());
    step.insert("dedicated".into(), true.into());
    routing.insert(
        "steps".into(),
        toml::Value::Array(vec![toml::Value::Table(step)]),
    );
    cfg.no_qualify();
    cfg
}

fn carrier_vars(rtp_port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("called", "+33970000000".to_string()),
        ("hdr", MARTIN.to_string()),
        ("rtp_port", rtp_port.to_string()),
    ]
}

fn agent<'a>(agents: &'a Value, name: &str) -> &'a Value {
    agents
        .as_array()
        .and_then(|a| a.iter().find(|v| field(v, "agent") == name))
        .expect("agent listed")
}

#[test]
fn sigkill_mid_call_loses_no_record_nor_agent_state() {
    let cfg = config();
    let engine = Engine::start(&cfg, &[]);
    // Alice's softphone answers the first offer; Bob pauses for lunch;
    // Carol logs out.
    let alice_port = free_udp_port();
    register_agent(engine.sip, "alice", "alice-demo", alice_port);
    let alice_rtp = RtpPeer::start(0, 0x2a);
    let _alice = SippBg::uas(
        "agent_answer.xml",
        alice_port,
        &[("rtp_port", alice_rtp.port.to_string()), ("pt", "0".into())],
        &["-d", "200"],
        Duration::from_secs(60),
    );
    let (code, body) = http_call(
        &engine,
        "POST",
        "/api/agents/bob/pause",
        TOKEN,
        Some(r#"{"reason": "lunch"}"#),
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = http_call(&engine, "POST", "/api/agents/carol/logout", TOKEN, None);
    assert_eq!(code, 200, "{body}");
    // One call answered by Alice, then two waiting.
    let talking_rtp = RtpPeer::start(0, 0x55);
    let _talking = sipp_thread(
        "carrier_call.xml",
        engine.sip,
        carrier_vars(talking_rtp.port),
        vec!["-d".into(), "30000".into()],
        Duration::from_secs(40),
    );
    engine
        .wait_event("acd.answered", Duration::from_secs(10))
        .expect("alice answered");
    let mut waiting = Vec::new();
    for fill in [0x61u8, 0x62] {
        let rtp = RtpPeer::start(0, fill);
        let run = sipp_thread(
            "carrier_call.xml",
            engine.sip,
            carrier_vars(rtp.port),
            vec!["-d".into(), "30000".into()],
            Duration::from_secs(40),
        );
        waiting.push((rtp, run));
    }
    assert!(engine
        .wait_n("call.queued", 3, Duration::from_secs(10), |_| true)
        .is_some());
    // Let the records writer commit (it flushes every 200 ms).
    std::thread::sleep(Duration::from_millis(800));

    let engine = engine.crash_and_restart(&cfg, &[]);

    // The three calls have their record, closed as interrupted.
    let db = engine.data.join("permanence.db");
    let calls = RecordReader::open(&db)
        .expect("records")
        .calls(&CallFilter::latest(10))
        .expect("calls");
    assert_eq!(calls.len(), 3, "{calls:#?}");
    assert!(
        calls.iter().all(|c| c.outcome == Outcome::Interrupted
            && c.end_reason.as_deref() == Some("interrupted")
            && c.ended_at.is_some()
            && c.queued_at.is_some()),
        "{calls:#?}"
    );
    let answered: Vec<_> = calls
        .iter()
        .filter(|c| c.agent_answered_at.is_some())
        .collect();
    assert_eq!(answered.len(), 1, "{calls:#?}");
    assert_eq!(answered[0].agent.as_deref(), Some("alice"));
    let (_, text) = common::http_get(&engine, "/metrics");
    assert_eq!(
        metric(&text, "permanence_calls_interrupted_total"),
        Some(3.0)
    );
    assert!(engine
        .wait_event("records.interrupted", Duration::from_secs(1))
        .is_some());

    // Bob is still at lunch, Carol still logged out, and Alice's softphone
    // is registered again without re-registering.
    let (code, body) = http_call(&engine, "GET", "/api/agents", TOKEN, None);
    assert_eq!(code, 200, "{body}");
    let agents: Value = serde_json::from_str(&body).expect("json");
    let bob = agent(&agents, "bob");
    assert_eq!(field(bob, "state"), "paused", "{bob}");
    assert_eq!(field(bob, "pause_reason"), "lunch", "{bob}");
    assert_eq!(field(agent(&agents, "carol"), "state"), "logged-out");
    let alice = agent(&agents, "alice");
    assert_eq!(
        alice.get("contacts").and_then(Value::as_u64),
        Some(1),
        "{alice}"
    );
    assert_eq!(
        alice.get("reachable").and_then(Value::as_bool),
        Some(true),
        "{alice}"
    );
    assert_eq!(field(alice, "state"), "available", "{alice}");
}
