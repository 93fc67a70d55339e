//! The end-to-end call path with real peers: SIPp as the carrier, SIPp
//! softphones as telesecretaries (registered from the port they answer
//! on), and RTP endpoints of the test that send and check audio payloads.

mod common;

use common::{field, free_udp_port, register_agent, sipp, Engine, RtpPeer, SippBg, TestConfig};
use std::time::Duration;

const SERVICE: &str = "+33970000000";

/// The demo, with Dr Martin open at all hours and no triage menu (tests
/// that need triage keep it), qualify probes off (SIPp softphones do not
/// answer OPTIONS between calls).
fn config() -> TestConfig {
    let mut cfg = TestConfig::demo();
    cfg.always_open("martin");
    cfg.always_open("caron");
    cfg.practice("martin").remove("triage");
    cfg.main
        .get_mut("sip")
        .and_then(|s| s.as_table_mut())
        .and_then(|s| s.get_mut("registrar"))
        .and_then(|r| r.as_table_mut())
        .expect("[sip.registrar]")
        .insert("qualify_interval_seconds".into(), 0.into());
    cfg
}

fn carrier_vars(hdr: &str, rtp_port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("called", SERVICE.to_string()),
        ("hdr", hdr.to_string()),
        ("rtp_port", rtp_port.to_string()),
    ]
}

const MARTIN: &str = "Diversion: <sip:+33450000001@carrier.example>;reason=unconditional";

#[test]
fn martin_call_reaches_alice_with_two_way_audio() {
    let engine = Engine::start(&config(), &[]);
    // Alice's softphone: registered, answers after 300 ms, PCMU.
    let alice_port = free_udp_port();
    register_agent(engine.sip, "alice", "alice-demo", alice_port);
    let alice_rtp = RtpPeer::start(0, 0x2a);
    let alice = SippBg::uas(
        "agent_answer.xml",
        alice_port,
        &[("rtp_port", alice_rtp.port.to_string()), ("pt", "0".into())],
        &["-d", "300"],
        Duration::from_secs(40),
    );
    // The patient: audio payload 0x55, on the line for 9 s.
    let caller_rtp = RtpPeer::start(0, 0x55);
    let target = engine.sip;
    let vars = carrier_vars(MARTIN, caller_rtp.port);
    let carrier = std::thread::spawn(move || {
        sipp(
            "carrier_call.xml",
            target,
            "127.0.0.1",
            &vars,
            &["-d", "9000"],
            Duration::from_secs(40),
        )
    });

    // The call is offered to Alice, the practice's dedicated secretary.
    let offered = engine
        .wait_event("acd.offered", Duration::from_secs(10))
        .expect("offered");
    assert_eq!(field(&offered, "agent"), "alice");
    assert_eq!(field(&offered, "practice"), "martin");
    assert!(engine
        .wait_event("acd.answered", Duration::from_secs(5))
        .is_some());
    // Caller audio reaches Alice unchanged (same codec: same bytes)...
    assert!(
        alice_rtp.wait_until(Duration::from_secs(5), |p| p
            .iter()
            .filter(|p| p.pt == 0 && p.payload == vec![0x55u8; 160])
            .count()
            > 20),
        "caller audio did not reach the agent"
    );
    // ... and Alice's reaches the caller.
    assert!(
        caller_rtp.wait_until(Duration::from_secs(5), |p| p
            .iter()
            .filter(|p| p.pt == 0 && p.payload == vec![0x2au8; 160])
            .count()
            > 20),
        "agent audio did not reach the caller"
    );
    // The caller heard the greeting and hold audio before: not silence.
    let before: Vec<_> = caller_rtp
        .received()
        .into_iter()
        .take_while(|p| p.payload != vec![0x2au8; 160])
        .collect();
    let cap = common::RtpCapture { packets: before };
    assert!(cap.rms() > 200.0, "greeting was silent");

    let run = carrier.join().expect("carrier thread");
    assert!(run.success, "carrier: {}\n{}", run.output, run.errors);
    let agent_run = alice.finish(Duration::from_secs(10));
    assert!(
        agent_run.success,
        "agent: {}\n{}",
        agent_run.messages, agent_run.errors
    );
    // What Alice's phone showed: the practice, the caller, the headers.
    let invite = agent_run
        .messages
        .split("\n\n")
        .find(|m| m.contains("INVITE sip:"))
        .unwrap_or_default()
        .to_string();
    assert!(
        invite.contains("From: \"Cabinet du Dr Martin - Médecine générale\" <sip:+33612345678@"),
        "{invite}"
    );
    assert!(invite.contains("X-Permanence-Practice: martin"), "{invite}");
    assert!(invite.contains("X-Permanence-Wait: "), "{invite}");
    assert!(invite.contains("Call-Info: <https://"), "{invite}");

    let ended = engine
        .wait_event("call.ended", Duration::from_secs(5))
        .expect("ended");
    assert_eq!(field(&ended, "reason"), "caller-hangup");
    assert_eq!(field(&ended, "agent"), "alice");
    assert!(engine
        .wait_event("acd.completed", Duration::from_secs(2))
        .is_some());
}
