//! Blind transfers (REFER, RFC 3515) from the telesecretary's softphone,
//! with real peers: a SIPp carrier delivers the patient's call, a SIPp
//! softphone answers and sends REFER, a SIPp UAS plays the outbound
//! gateway where the practitioner's mobile answers (or is busy).

mod common;

use common::{
    field, free_udp_port, register_agent, sip_messages_dir, sipp_thread, Engine, RtpPacket,
    RtpPeer, SippBg, SippRun, TestConfig,
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

fn count_fill(p: &[RtpPacket], fill: u8) -> usize {
    p.iter()
        .filter(|p| p.pt == 0 && p.payload == vec![fill; 160])
        .count()
}

/// Alice's softphone: answers, talks 1.5 s, transfers to `refer_to`.
fn alice_transferring(engine: &Engine, refer_to: &str) -> (RtpPeer, SippBg) {
    let port = free_udp_port();
    register_agent(engine.sip, "alice", "alice-demo", port);
    let rtp = RtpPeer::start(0, 0x2a);
    let uas = SippBg::uas(
        "agent_answer_refer.xml",
        port,
        &[
            ("rtp_port", rtp.port.to_string()),
            ("pt", "0".into()),
            ("refer_to", refer_to.to_string()),
        ],
        &["-d", "1500"],
        Duration::from_secs(60),
    );
    (rtp, uas)
}

fn patient(engine: &Engine, extra: &[&str]) -> (RtpPeer, std::thread::JoinHandle<SippRun>) {
    let rtp = RtpPeer::start(0, 0x55);
    let run = sipp_thread(
        "carrier_call.xml",
        engine.sip,
        vec![
            ("called", "+33970000000".into()),
            ("hdr", MARTIN.into()),
            ("rtp_port", rtp.port.to_string()),
        ],
        extra.iter().map(|s| s.to_string()).collect(),
        Duration::from_secs(60),
    );
    (rtp, run)
}

#[test]
fn blind_transfer_to_the_practitioners_mobile_with_two_way_audio() {
    let (cfg, gw_port) = config();
    let engine = Engine::start(&cfg, &[]);
    let mobile_rtp = RtpPeer::start(0, 0x4d);
    let mobile = SippBg::uas(
        "agent_answer.xml",
        gw_port,
        &[
            ("rtp_port", mobile_rtp.port.to_string()),
            ("pt", "0".into()),
        ],
        &["-d", "300"],
        Duration::from_secs(60),
    );
    let (_alice_rtp, alice) = alice_transferring(&engine, "1");
    let (caller_rtp, carrier) = patient(&engine, &["-d", "9000"]);
    // Alice answered, transferred: she is released (BYE after the NOTIFYs).
    let alice_run = alice.finish(Duration::from_secs(20));
    assert!(
        alice_run.success,
        "alice: {}\n{}",
        alice_run.errors, alice_run.messages
    );
    let notifies: Vec<String> = sip_messages_dir(&alice_run.messages)
        .into_iter()
        .filter(|(received, m)| *received && m.starts_with("NOTIFY "))
        .map(|(_, m)| m)
        .collect();
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
    let run = carrier.join().expect("carrier");
    assert!(run.success, "carrier: {}\n{}", run.errors, run.messages);
    let gw = mobile.finish(Duration::from_secs(10));
    assert!(gw.success, "gateway: {}\n{}", gw.errors, gw.messages);
    let invite = sip_messages_dir(&gw.messages)
        .into_iter()
        .find(|(received, m)| *received && m.starts_with("INVITE "))
        .map(|(_, m)| m)
        .expect("INVITE at the gateway");
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
    let rtp = RtpPeer::start(0, 0x2a);
    let alice = SippBg::uas(
        "agent_answer_refer.xml",
        port,
        &[
            ("rtp_port", rtp.port.to_string()),
            ("pt", "0".into()),
            ("refer_to", "+33899123456".into()),
        ],
        &["-d", "1000"],
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
    assert!(alice.finish(Duration::from_secs(20)).success, "alice");
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
    let bob_rtp = RtpPeer::start(0, 0x3b);
    let bob = SippBg::uas(
        "agent_answer.xml",
        bob_port,
        &[("rtp_port", bob_rtp.port.to_string()), ("pt", "0".into())],
        &["-d", "300"],
        Duration::from_secs(60),
    );
    assert!(
        caller_rtp.wait_until(Duration::from_secs(10), |p| count_fill(p, 0x3b) > 50),
        "the caller does not hear Bob"
    );
    assert!(bob_rtp.wait_until(Duration::from_secs(5), |p| count_fill(p, 0x55) > 50));
    assert!(mobile.finish(Duration::from_secs(5)).success, "gateway");
    let run = carrier.join().expect("carrier");
    assert!(run.success, "carrier: {}\n{}", run.errors, run.messages);
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
    let bob_rtp = RtpPeer::start(0, 0x3b);
    let bob = SippBg::uas(
        "agent_answer.xml",
        bob_port,
        &[("rtp_port", bob_rtp.port.to_string()), ("pt", "0".into())],
        &["-d", "300"],
        Duration::from_secs(60),
    );
    let (_alice_rtp, alice) = alice_transferring(&engine, "bob");
    let (caller_rtp, carrier) = patient(&engine, &["-d", "9000"]);
    assert!(alice.finish(Duration::from_secs(20)).success, "alice");
    assert!(
        caller_rtp.wait_until(Duration::from_secs(10), |p| count_fill(p, 0x3b) > 50),
        "the caller does not hear Bob"
    );
    assert!(bob_rtp.wait_until(Duration::from_secs(5), |p| count_fill(p, 0x55) > 50));
    let run = carrier.join().expect("carrier");
    assert!(run.success, "carrier: {}\n{}", run.errors, run.messages);
    assert!(bob.finish(Duration::from_secs(10)).success, "bob");
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
