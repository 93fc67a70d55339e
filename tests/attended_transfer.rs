//! Attended transfer (REFER with Replaces, RFC 3515 and RFC 3891) from
//! the telesecretary's softphone, with real peers: a SIPp carrier delivers
//! the patient's call, a SIPp softphone answers it, a second SIPp session of
//! the same agent places the consultation call through the outbound
//! gateway (a SIPp UAS: the practitioner's mobile), then the first sends
//! REFER with Replaces naming the consultation: the engine joins the
//! patient with the practitioner and releases the agent from both calls.

mod common;

use common::{
    field, free_udp_port, register_agent, sipp_thread, Engine, RtpPacket, RtpPeer, SippBg, SippRun,
    TestConfig,
};
use std::time::Duration;

const MARTIN: &str = "Diversion: <sip:+33450000001@carrier.example>;reason=unconditional";

/// Dr Martin open at all hours, no triage menu, a short greeting, qualify
/// off, the outbound gateway on a free port of the test.
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
fn attended_transfer_joins_the_caller_with_the_agents_consultation_call() {
    let (cfg, gw_port) = config();
    let engine = Engine::start(&cfg, &[]);
    // The practitioner's mobile answers Alice's consultation call.
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
    let alice_rtp = RtpPeer::start(0, 0x2a);
    let alice = SippBg::uas(
        "agent_attended_refer.xml",
        alice_port,
        &[
            ("rtp_port", alice_rtp.port.to_string()),
            ("pt", "0".into()),
            ("refer_uri", refer_uri),
        ],
        &["-d", "5000"],
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
    let a = alice.finish(Duration::from_secs(20));
    assert!(a.success, "alice: {}\n{}", a.errors, a.messages);
    let c = consult.finish(Duration::from_secs(10));
    assert!(c.success, "consultation: {}\n{}", c.errors, c.messages);
    assert!(engine
        .wait_event("outbound.transferred", Duration::from_secs(2))
        .is_some());
    let run = carrier.join().expect("carrier");
    assert!(run.success, "carrier: {}\n{}", run.errors, run.messages);
    let gw = mobile.finish(Duration::from_secs(10));
    assert!(gw.success, "mobile: {}\n{}", gw.errors, gw.messages);
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
    let alice_rtp = RtpPeer::start(0, 0x2a);
    let alice = SippBg::uas(
        "agent_attended_refer.xml",
        alice_port,
        &[
            ("rtp_port", alice_rtp.port.to_string()),
            ("pt", "0".into()),
            ("refer_uri", refer_uri),
        ],
        &["-d", "1000"],
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
