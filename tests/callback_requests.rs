//! Callbacks that keep the caller's place, with real peers: SIPp carriers
//! deliver the patients' calls (RTP endpoints of the test press the keys
//! and check the audio), a SIPp softphone is the telesecretary, a SIPp UAS
//! plays the carrier's outbound gateway where the patient is called back.

mod common;

use common::{
    field, free_udp_port, http_get, metric, prompt_coverage, register_agent, sip_messages_dir,
    sipp_thread, Engine, RtpPacket, RtpPeer, SippBg, SippRun, TestConfig,
};
use std::time::Duration;

const TILLEULS: &str = "Diversion: <sip:+33380000004@carrier.example>;reason=unconditional";

/// The demo with Les Tilleuls' greeting cut to a short tone (its callback
/// offer, digit 2, comes right after), qualify off, and the outbound
/// gateway on a free port of the test.
fn config() -> (TestConfig, u16) {
    let mut cfg = TestConfig::demo();
    cfg.tone_prompt("tilleuls", "greeting", 0.5, 440.0);
    cfg.no_qualify();
    let gw = cfg.outbound_gateway();
    (cfg, gw)
}

/// A patient of Les Tilleuls on the line (`scenario`, extra SIPp args).
fn patient(
    engine: &Engine,
    scenario: &'static str,
    fill: u8,
    extra: &[&str],
) -> (RtpPeer, std::thread::JoinHandle<SippRun>) {
    let rtp = RtpPeer::start(0, fill);
    let run = sipp_thread(
        scenario,
        engine.sip,
        vec![
            ("called", "+33970000000".into()),
            ("hdr", TILLEULS.into()),
            ("rtp_port", rtp.port.to_string()),
        ],
        extra.iter().map(|s| s.to_string()).collect(),
        Duration::from_secs(90),
    );
    (rtp, run)
}

fn heard(rtp: &RtpPeer, prompt: &str, timeout: Duration) -> bool {
    let p = common::default_prompt(prompt);
    rtp.wait_until(timeout, |pk| prompt_coverage(pk, &p) > 0.8)
}

fn count_fill(p: &[RtpPacket], fill: u8) -> usize {
    p.iter()
        .filter(|p| p.pt == 0 && p.payload == vec![fill; 160])
        .count()
}

fn joined(h: std::thread::JoinHandle<SippRun>, who: &str) -> SippRun {
    let run = h.join().expect("sipp thread");
    assert!(
        run.success,
        "{who}: {}\n{}\n{}",
        run.output, run.errors, run.messages
    );
    run
}

fn received_invite(run: &SippRun) -> String {
    sip_messages_dir(&run.messages)
        .into_iter()
        .find(|(received, m)| *received && m.starts_with("INVITE "))
        .map(|(_, m)| m)
        .unwrap_or_default()
}

#[test]
fn caller_keeps_their_place_and_is_called_back_with_two_way_audio() {
    let (cfg, gw_port) = config();
    let engine = Engine::start(&cfg, &[]);
    // Patient A waits (no telesecretary yet), hears the offer, presses 2,
    // hears their number read back, confirms with 1: the engine says the
    // place is kept and hangs up.
    let (a_rtp, a) = patient(&engine, "carrier_wait_bye.xml", 0x11, &[]);
    assert!(
        heard(&a_rtp, "callback_offer", Duration::from_secs(10)),
        "no callback offer heard"
    );
    a_rtp.press('2');
    assert!(
        heard(&a_rtp, "callback_confirm_choice", Duration::from_secs(15)),
        "the number was not read back"
    );
    a_rtp.press('1');
    assert!(heard(
        &a_rtp,
        "callback_kept_place",
        Duration::from_secs(15)
    ));
    joined(a, "patient A");
    assert!(engine
        .wait_event("callback.requested", Duration::from_secs(5))
        .is_some());
    let ended = engine
        .wait_event("call.ended", Duration::from_secs(5))
        .expect("A's call ended");
    assert_eq!(field(&ended, "reason"), "callback-requested");
    // Patient B calls later and stays on the line.
    let (_b_rtp, b) = patient(&engine, "carrier_call.xml", 0x22, &["-d", "12000"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while engine.events("call.queued").len() < 2 {
        assert!(std::time::Instant::now() < deadline, "B not queued");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    // Alice comes in: A's callback is offered first (its place), she
    // answers, the engine calls the patient as Les Tilleuls.
    let patient_rtp = RtpPeer::start(0, 0x55);
    let gateway = SippBg::uas(
        "agent_answer.xml",
        gw_port,
        &[
            ("rtp_port", patient_rtp.port.to_string()),
            ("pt", "0".into()),
        ],
        &["-d", "500"],
        Duration::from_secs(60),
    );
    let alice_port = free_udp_port();
    register_agent(engine.sip, "alice", "alice-demo", alice_port);
    let alice_rtp = RtpPeer::start(0, 0x2a);
    let alice = SippBg::uas(
        "agent_answer_bye.xml",
        alice_port,
        &[("rtp_port", alice_rtp.port.to_string()), ("pt", "0".into())],
        &["-d", "4000"],
        Duration::from_secs(60),
    );
    let alice_run = alice.finish(Duration::from_secs(30));
    assert!(
        alice_run.success,
        "alice: {}\n{}",
        alice_run.errors, alice_run.messages
    );
    let invite = received_invite(&alice_run);
    assert!(
        invite.contains("From: \"Rappel - Maison de santé Les Tilleuls\" <sip:+33612345678@"),
        "the first call offered to Alice is not A's callback: {invite}"
    );
    assert!(
        invite.contains("X-Permanence-Callback: attempt=1"),
        "{invite}"
    );
    // Two-way audio between Alice and the patient, payload-checked.
    assert!(
        count_fill(&alice_rtp.received(), 0x55) > 50,
        "the patient's audio did not reach Alice"
    );
    assert!(
        count_fill(&patient_rtp.received(), 0x2a) > 50,
        "Alice's audio did not reach the patient"
    );
    let gw = gateway.finish(Duration::from_secs(10));
    assert!(gw.success, "gateway: {}\n{}", gw.errors, gw.messages);
    let out = received_invite(&gw);
    assert!(
        out.starts_with(&format!("INVITE sip:+33612345678@127.0.0.1:{gw_port}")),
        "{out}"
    );
    assert!(
        out.contains("From: \"Maison de santé Les Tilleuls\" <sip:+33380000004@"),
        "{out}"
    );
    assert!(
        out.contains("P-Asserted-Identity: <sip:+33380000004@"),
        "{out}"
    );
    let done = engine
        .wait_event("callback.completed", Duration::from_secs(5))
        .expect("callback completed");
    assert_eq!(done["within_deadline"], serde_json::Value::Bool(true));
    joined(b, "patient B");
    // Counted and recorded.
    let m = http_get(&engine, "/metrics").1;
    let series = |s: &str| metric(&m, s);
    assert_eq!(
        series("permanence_callbacks_requested_total{practice=\"tilleuls\",origin=\"caller\"}"),
        Some(1.0)
    );
    assert_eq!(
        series(
            "permanence_callbacks_completed_total{practice=\"tilleuls\",timeliness=\"within_deadline\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        series("permanence_callbacks_pending{practice=\"tilleuls\"}"),
        Some(0.0)
    );
    let db = rusqlite::Connection::open(engine.data.join("permanence.db")).expect("db");
    let (status, attempts, number): (String, i64, String) = db
        .query_row(
            "SELECT status, attempts, number FROM callbacks WHERE origin = 'caller'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("callback row");
    assert_eq!(
        (status.as_str(), attempts, number.as_str()),
        ("completed", 1, "+33612345678")
    );
}
