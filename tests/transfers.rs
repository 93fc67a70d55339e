//! Transfers (REFER, RFC 3515) from the telesecretary's softphone, with
//! real peers: a SIPp carrier delivers the patient's call, a SIPp softphone
//! answers and sends REFER, a SIPp UAS plays the outbound gateway where the
//! practitioner's mobile answers (or is busy). Blind transfers name a
//! target; an attended one names, with Replaces, the agent's consultation
//! call (a second SIPp session of the same agent, an outbound call).

mod common;

use common::{
    count_fill, field, free_udp_port, joined, received_request, received_requests, register_agent,
    Engine, RtpPeer, SippBg, SippRun, TestConfig,
};
use std::time::Duration;

const MARTIN: &str = "Diversion: <sip:+33450000001@carrier.example>;reason=unconditional";

/// Dr Martin open at all hours, no triage menu, a short greeting, qualify
/// off, the outbound gateway on a free port of the test. His transfer list
/// (demo): code 1, "Dr Martin - portable", +33611223344.
fn config() -> (TestConfig, u16) {
    let mut cfg = TestConfig::demo();
    cfg.always_open("martin");
    cfg.practice("martin").remove("triage");
    cfg.tone_prompt("martin", "greeting", 0.5, 440.0);
    cfg.no_qualify();
    let gw = cfg.outbound_gateway();
    (cfg, gw)
}

/// Alice's softphone: answers, talks 1.5 s, transfers to `refer_to`.
fn alice_transferring(engine: &Engine, refer_to: &str) -> (RtpPeer, SippBg) {
    let port = free_udp_port();
    register_agent(engine.sip, "alice", "alice-demo", port);
    SippBg::uas_with_rtp(
        "agent_answer_refer.xml",
        port,
        0,
        0x2a,
        &["-set", "refer_to", refer_to, "-d", "1500"],
        Duration::from_secs(60),
    )
}

/// A patient of Dr Martin (PCMU 0x55) on the line, SIPp args `extra`.
fn patient(engine: &Engine, extra: &[&str]) -> (RtpPeer, std::thread::JoinHandle<SippRun>) {
    common::patient(
        engine,
        MARTIN,
        "carrier_call.xml",
        0x55,
        extra,
        Duration::from_secs(60),
    )
}

#[test]
fn blind_transfer_to_the_practitioners_mobile_with_two_way_audio() {
    let (cfg, gw_port) = config();
    let engine = Engine::start(&cfg, &[]);
    let (mobile_rtp, mobile) = SippBg::uas_with_rtp(
        "agent_answer.xml",
        gw_port,
        0,
        0x4d,
        &["-d", "300"],
        Duration::from_secs(60),
    );
    let (_alice_rtp, alice) = alice_transferring(&engine, "1");
    let (caller_rtp, carrier) = patient(&engine, &["-d", "9000"]);
    // Alice answered, transferred: she is released (BYE after the NOTIFYs).
    let alice_run = alice.finish_ok(Duration::from_secs(20), "alice");
    let notifies = received_requests(&alice_run, "NOTIFY");
    assert!(
        notifies
            .iter()
            .any(|n| n.contains("message/sipfrag") && n.contains("SIP/2.0 100")),
        "{notifies:?}"
    );
    assert!(
        notifies.iter().any(|n| n.contains("SIP/2.0 200")),
        "{notifies:?}"
    );
    // The caller now talks with the mobile: two-way audio, payload-checked.
    assert!(
        caller_rtp.wait_until(Duration::from_secs(10), |p| count_fill(p, 0x4d) > 50),
        "the caller does not hear the practitioner"
    );
    assert!(
        mobile_rtp.wait_until(Duration::from_secs(5), |p| count_fill(p, 0x55) > 50),
        "the practitioner does not hear the caller"
    );
    joined(carrier, "carrier");
    let gw = mobile.finish_ok(Duration::from_secs(10), "gateway");
    let invite = received_request(&gw, "INVITE").expect("INVITE at the gateway");
    assert!(
        invite.starts_with(&format!("INVITE sip:+33611223344@127.0.0.1:{gw_port}")),
        "{invite}"
    );
    assert!(!invite.contains("REFER"), "{invite}");
    let refer = engine
        .wait_event("call.refer", Duration::from_secs(2))
        .expect("call.refer");
    assert_eq!(refer["accepted"], serde_json::Value::Bool(true));
    let ended = engine
        .wait_event("call.ended", Duration::from_secs(5))
        .expect("ended");
    assert_eq!(field(&ended, "reason"), "transferred");
}

#[test]
fn a_transfer_outside_the_list_is_refused_and_the_call_goes_on() {
    let (cfg, gw_port) = config();
    let gw = std::net::UdpSocket::bind(("127.0.0.1", gw_port)).expect("gateway port");
    gw.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let engine = Engine::start(&cfg, &[]);
    // A premium number is not in Dr Martin's transfer list: 403, and the
    // softphone (this scenario expects 202) fails; the call goes on.
    let port = free_udp_port();
    register_agent(engine.sip, "alice", "alice-demo", port);
    let (_rtp, alice) = SippBg::uas_with_rtp(
        "agent_answer_refer.xml",
        port,
        0,
        0x2a,
        &["-set", "refer_to", "+33899123456", "-d", "1000"],
        Duration::from_secs(30),
    );
    let (caller_rtp, carrier) = patient(&engine, &["-d", "6000"]);
    let refer = engine
        .wait_event("call.refer", Duration::from_secs(15))
        .expect("call.refer");
    assert_eq!(refer["accepted"], serde_json::Value::Bool(false));
    let run = alice.finish(Duration::from_secs(15));
    assert!(run.messages.contains("SIP/2.0 403"), "{}", run.messages);
    let mut buf = [0u8; 2048];
    assert!(
        gw.recv_from(&mut buf).is_err(),
        "something reached the gateway"
    );
    // The caller still hears Alice.
    assert!(caller_rtp.wait_until(Duration::from_secs(3), |p| count_fill(p, 0x2a) > 20));
    let _ = carrier.join();
}

#[test]
fn a_failed_transfer_brings_the_caller_back_to_the_head_of_the_queue() {
    let (mut cfg, gw_port) = config();
    // Bob (shared pool) may take Dr Martin's calls after 1 s.
    if let Some(t) = cfg.steps("martin")[1].as_table_mut() {
        t.insert("after_seconds".into(), 1.into());
    }
    let engine = Engine::start(&cfg, &[]);
    // The practitioner's mobile is busy.
    let mobile = SippBg::uas("agent_busy.xml", gw_port, &[], &[], Duration::from_secs(60));
    let (_alice_rtp, alice) = alice_transferring(&engine, "1");
    let (caller_rtp, carrier) = patient(&engine, &["-d", "14000"]);
    alice.finish_ok(Duration::from_secs(20), "alice");
    // The caller hears why, and is back in the queue (Alice is in wrap-up):
    // Bob is offered the call and talks with the caller.
    let prompt = common::default_prompt("transfer_failed");
    assert!(
        caller_rtp.wait_until(Duration::from_secs(10), |p| {
            common::prompt_coverage(p, &prompt) > 0.8
        }),
        "the caller did not hear that the transfer failed"
    );
    let bob_port = free_udp_port();
    register_agent(engine.sip, "bob", "bob-demo", bob_port);
    let (bob_rtp, bob) = SippBg::uas_with_rtp(
        "agent_answer.xml",
        bob_port,
        0,
        0x3b,
        &["-d", "300"],
        Duration::from_secs(60),
    );
    assert!(
        caller_rtp.wait_until(Duration::from_secs(10), |p| count_fill(p, 0x3b) > 50),
        "the caller does not hear Bob"
    );
    assert!(bob_rtp.wait_until(Duration::from_secs(5), |p| count_fill(p, 0x55) > 50));
    mobile.finish_ok(Duration::from_secs(5), "gateway");
    joined(carrier, "carrier");
    let _ = bob.finish(Duration::from_secs(10));
    let queued = engine.events("call.queued");
    assert_eq!(queued.len(), 2, "{queued:?}");
    let ended = engine
        .wait_event("call.ended", Duration::from_secs(5))
        .expect("ended");
    assert_eq!(field(&ended, "agent"), "bob");
}

#[test]
fn blind_transfer_to_a_colleague_rings_only_them() {
    let (cfg, _gw) = config();
    let engine = Engine::start(&cfg, &[]);
    // Carol (also in the shared pool) is free, but the transfer names Bob.
    let carol_port = free_udp_port();
    register_agent(engine.sip, "carol", "carol-demo", carol_port);
    let carol = SippBg::uas(
        "agent_noanswer.xml",
        carol_port,
        &[],
        &[],
        Duration::from_secs(30),
    );
    let bob_port = free_udp_port();
    register_agent(engine.sip, "bob", "bob-demo", bob_port);
    let (bob_rtp, bob) = SippBg::uas_with_rtp(
        "agent_answer.xml",
        bob_port,
        0,
        0x3b,
        &["-d", "300"],
        Duration::from_secs(60),
    );
    let (_alice_rtp, alice) = alice_transferring(&engine, "bob");
    let (caller_rtp, carrier) = patient(&engine, &["-d", "9000"]);
    alice.finish_ok(Duration::from_secs(20), "alice");
    assert!(
        caller_rtp.wait_until(Duration::from_secs(10), |p| count_fill(p, 0x3b) > 50),
        "the caller does not hear Bob"
    );
    assert!(bob_rtp.wait_until(Duration::from_secs(5), |p| count_fill(p, 0x55) > 50));
    joined(carrier, "carrier");
    bob.finish_ok(Duration::from_secs(10), "bob");
    // Carol's phone never rang with it.
    drop(carol);
    let offered: Vec<String> = engine
        .events("acd.offered")
        .iter()
        .map(|e| field(e, "agent").to_string())
        .collect();
    assert_eq!(offered, vec!["alice", "bob"]);
    let ended = engine
        .wait_event("call.ended", Duration::from_secs(5))
        .expect("ended");
    assert_eq!(field(&ended, "agent"), "bob");
}

// ---------------------------------------------------------------------------
// Attended transfer: REFER with Replaces (RFC 3891) naming the agent's
// consultation call, an outbound call of theirs.

#[test]
fn attended_transfer_joins_the_caller_with_the_agents_consultation_call() {
    let (cfg, gw_port) = config();
    let engine = Engine::start(&cfg, &[]);
    // The practitioner's mobile answers Alice's consultation call.
    let (mobile_rtp, mobile) = SippBg::uas_with_rtp(
        "agent_answer.xml",
        gw_port,
        0,
        0x4d,
        &["-d", "300"],
        Duration::from_secs(60),
    );
    // Alice answers the patient; 5 s later her softphone refers the
    // patient to her consultation call (REFER with Replaces naming it).
    let consult_id = format!("consult-{}@permanence.test", std::process::id());
    let refer_uri = format!(
        "sip:+33611223344@127.0.0.1:{}?Replaces={}%3Bto-tag%3Dunknown%3Bfrom-tag%3Dunknown",
        engine.sip.port(),
        consult_id.replace('@', "%40")
    );
    let alice_port = free_udp_port();
    register_agent(engine.sip, "alice", "alice-demo", alice_port);
    let (_alice_rtp, alice) = SippBg::uas_with_rtp(
        "agent_attended_refer.xml",
        alice_port,
        0,
        0x2a,
        &["-set", "refer_uri", &refer_uri, "-d", "5000"],
        Duration::from_secs(60),
    );
    let (caller_rtp, carrier) = patient(&engine, &["-d", "14000"]);
    assert!(engine
        .wait_event("acd.answered", Duration::from_secs(15))
        .is_some());
    // The consultation: Alice dials the mobile as Dr Martin.
    let consult_rtp = RtpPeer::start(0, 0x2c);
    let consult = SippBg::uac(
        "agent_dial_wait_bye.xml",
        engine.sip,
        &[
            ("user", "alice".to_string()),
            ("rtp_port", consult_rtp.port.to_string()),
        ],
        &[
            "-s",
            "*81*0611223344",
            "-au",
            "alice",
            "-ap",
            "alice-demo",
            "-mi",
            "127.0.0.1",
            "-cid_str",
            &consult_id,
        ],
        Duration::from_secs(40),
    );
    assert!(
        mobile_rtp.wait_until(Duration::from_secs(10), |p| count_fill(p, 0x2c) > 20),
        "the consultation did not reach the mobile"
    );
    let refer = engine
        .wait_for("call.refer", Duration::from_secs(15), |_| true)
        .expect("call.refer");
    assert_eq!(refer["attended"], serde_json::Value::Bool(true));
    assert_eq!(refer["accepted"], serde_json::Value::Bool(true));
    // The patient and the practitioner now talk, payload-checked.
    assert!(
        caller_rtp.wait_until(Duration::from_secs(10), |p| count_fill(p, 0x4d) > 50),
        "the caller does not hear the practitioner"
    );
    assert!(
        mobile_rtp.wait_until(Duration::from_secs(10), |p| count_fill(p, 0x55) > 50),
        "the practitioner does not hear the caller"
    );
    // Alice was released from both calls by the engine.
    alice.finish_ok(Duration::from_secs(20), "alice");
    consult.finish_ok(Duration::from_secs(10), "consultation");
    assert!(engine
        .wait_event("outbound.transferred", Duration::from_secs(2))
        .is_some());
    joined(carrier, "carrier");
    mobile.finish_ok(Duration::from_secs(10), "mobile");
    let ended = engine
        .wait_event("call.ended", Duration::from_secs(5))
        .expect("ended");
    assert_eq!(field(&ended, "reason"), "transferred");
}

#[test]
fn replaces_naming_no_call_of_the_agent_is_refused() {
    let (cfg, _gw) = config();
    let engine = Engine::start(&cfg, &[]);
    // Replaces names a call that is not one of Alice's outbound calls.
    let refer_uri = format!(
        "sip:+33611223344@127.0.0.1:{}?Replaces=someone-else%40elsewhere%3Bto-tag%3Da%3Bfrom-tag%3Db",
        engine.sip.port()
    );
    let alice_port = free_udp_port();
    register_agent(engine.sip, "alice", "alice-demo", alice_port);
    let (_alice_rtp, alice) = SippBg::uas_with_rtp(
        "agent_attended_refer.xml",
        alice_port,
        0,
        0x2a,
        &["-set", "refer_uri", &refer_uri, "-d", "1000"],
        Duration::from_secs(30),
    );
    let (caller_rtp, carrier) = patient(&engine, &["-d", "6000"]);
    let refer = engine
        .wait_for("call.refer", Duration::from_secs(15), |_| true)
        .expect("call.refer");
    assert_eq!(refer["accepted"], serde_json::Value::Bool(false));
    let run = alice.finish(Duration::from_secs(15));
    assert!(run.messages.contains("SIP/2.0 403"), "{}", run.messages);
    // The conversation with Alice goes on.
    let before = count_fill(&caller_rtp.received(), 0x2a);
    assert!(
        caller_rtp.wait_until(Duration::from_secs(3), |p| count_fill(p, 0x2a)
            > before + 20)
    );
    let _ = carrier.join();
    let ended = engine
        .wait_event("call.ended", Duration::from_secs(10))
        .expect("ended");
    assert_eq!(field(&ended, "agent"), "alice");
}
