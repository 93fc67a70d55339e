//! Agent controls: feature codes dialled from the softphone (pause,
//! unpause, queue login/logout), with digest authentication, and the state
//! surviving a re-registration.

mod common;

use common::{field, free_udp_port, register_agent, sipp, Engine, RtpPeer, SippBg, TestConfig};
use std::time::Duration;

fn config() -> TestConfig {
    let mut cfg = TestConfig::demo();
    cfg.always_open("martin");
    cfg.practice("martin").remove("triage");
    cfg.no_qualify();
    cfg
}

fn dial(engine: &Engine, user: &str, code: &str) -> common::SippRun {
    sipp(
        "agent_feature.xml",
        engine.sip,
        "127.0.0.1",
        &[("user", user.to_string())],
        &["-s", code, "-au", user, "-ap", &format!("{user}-demo")],
        Duration::from_secs(30),
    )
}

fn agent_state_to(engine: &Engine, agent: &str, to: &str, timeout: Duration) -> bool {
    engine
        .wait_for("agent.state", timeout, |v| {
            field(v, "agent") == agent && field(v, "to") == to
        })
        .is_some()
}

#[test]
fn pause_survives_reregistration_and_unpause_gets_calls_again() {
    let engine = Engine::start(&config(), &[]);
    let port = free_udp_port();
    register_agent(engine.sip, "alice", "alice-demo", port);
    assert!(engine
        .wait_for("agent.reachability", Duration::from_secs(3), |v| {
            field(v, "agent") == "alice"
                && v.get("reachable").and_then(|r| r.as_bool()) == Some(true)
        })
        .is_some());

    // *21: pause. The softphone hears the confirmation, then a BYE.
    let run = dial(&engine, "alice", "*21");
    assert!(
        run.success,
        "feature call failed: {}\n{}",
        run.output, run.errors
    );
    assert!(agent_state_to(
        &engine,
        "alice",
        "Paused",
        Duration::from_secs(3)
    ));
    let ev = engine
        .wait_event("agent.feature", Duration::from_secs(1))
        .expect("feature logged");
    assert_eq!(ev.get("ok").and_then(|v| v.as_bool()), Some(true));

    // The softphone registers again (new port): still paused.
    let port2 = free_udp_port();
    register_agent(engine.sip, "alice", "alice-demo", port2);
    std::thread::sleep(Duration::from_millis(300));
    let states: Vec<String> = engine
        .events("agent.state")
        .iter()
        .filter(|v| field(v, "agent") == "alice")
        .map(|v| field(v, "to").to_string())
        .collect();
    assert_eq!(
        states.last().map(String::as_str),
        Some("Paused"),
        "{states:?}"
    );

    // A Martin call waits: not offered to paused Alice.
    let alice_rtp = RtpPeer::start(0, 0x2a);
    let alice = SippBg::uas(
        "agent_answer.xml",
        port2,
        &[("rtp_port", alice_rtp.port.to_string()), ("pt", "0".into())],
        &["-d", "200"],
        Duration::from_secs(40),
    );
    let caller_rtp = RtpPeer::start(0, 0x55);
    let target = engine.sip;
    let vars = vec![
        ("called", "+33970000000".to_string()),
        (
            "hdr",
            "Diversion: <sip:+33450000001@carrier>;reason=unconditional".to_string(),
        ),
        ("rtp_port", caller_rtp.port.to_string()),
    ];
    let carrier = std::thread::spawn(move || {
        sipp(
            "carrier_call.xml",
            target,
            "127.0.0.1",
            &vars,
            &["-d", "12000"],
            Duration::from_secs(40),
        )
    });
    assert!(engine
        .wait_event("acd.queued", Duration::from_secs(10))
        .is_some());
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        engine.events("acd.offered").is_empty(),
        "a paused agent was offered a call"
    );

    // *22: back from pause; the waiting call is offered to her.
    let run = dial(&engine, "alice", "*22");
    assert!(
        run.success,
        "feature call failed: {}\n{}",
        run.output, run.errors
    );
    let offered = engine
        .wait_event("acd.offered", Duration::from_secs(5))
        .expect("offered after unpause");
    assert_eq!(field(&offered, "agent"), "alice");
    let run = carrier.join().expect("carrier");
    assert!(run.success, "carrier: {}\n{}", run.output, run.errors);
    let agent = alice.finish(Duration::from_secs(10));
    assert!(agent.success, "agent: {}\n{}", agent.messages, agent.errors);
}

#[test]
fn logout_and_login_and_unknown_code() {
    let engine = Engine::start(&config(), &[]);
    register_agent(engine.sip, "bob", "bob-demo", free_udp_port());
    let run = dial(&engine, "bob", "*32");
    assert!(run.success, "{}\n{}", run.output, run.errors);
    assert!(agent_state_to(
        &engine,
        "bob",
        "LoggedOut",
        Duration::from_secs(3)
    ));
    let run = dial(&engine, "bob", "*31");
    assert!(run.success, "{}\n{}", run.output, run.errors);
    assert!(agent_state_to(
        &engine,
        "bob",
        "Available",
        Duration::from_secs(3)
    ));
    // A code that does not exist: 404, nothing changes.
    let out = sipp(
        "carrier_rejected.xml",
        engine.sip,
        "127.0.0.2",
        &[
            ("called", "*99".to_string()),
            ("hdr", "X-Test: 1".to_string()),
            ("rtp_port", "9".to_string()),
        ],
        &[],
        Duration::from_secs(10),
    );
    // From a non-trunk source without credentials it is challenged first.
    assert!(out.messages.contains("SIP/2.0 407"), "{}", out.messages);
}
