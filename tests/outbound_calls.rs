//! Outbound calls placed by telesecretaries, with real peers: a SIPp
//! softphone dials (digest-authenticated), a SIPp UAS plays the carrier's
//! outbound gateway, RTP endpoints of the test send and check audio.
//! Refused calls are checked at the gateway too: nothing may arrive there.

mod common;

use common::{
    count_fill, field, free_udp_port, http_get, joined, metric, patient, prompt_coverage,
    received_request, register_agent, sip_messages_dir, sipp, sipp_thread, Engine, RtpPeer, SippBg,
    SippRun, TestConfig,
};
use std::net::UdpSocket;
use std::time::Duration;

const MARTIN: &str = "Diversion: <sip:+33450000001@carrier.example>;reason=unconditional";

/// The demo, Dr Martin open at all hours without triage, qualify off, and
/// the demo trunk's outbound gateway moved to a free port of the test.
fn config() -> (TestConfig, u16) {
    let mut cfg = TestConfig::demo();
    cfg.always_open("martin");
    cfg.practice("martin").remove("triage");
    cfg.no_qualify();
    let gw = cfg.outbound_gateway();
    (cfg, gw)
}

/// Alice dials `dialled` from `local_ip` with her softphone's media at
/// `rtp`; `scenario` is `agent_dial.xml` (answered, she hangs up after
/// `talk_ms`) or `agent_dial_refused.xml`.
fn dial(
    engine: &Engine,
    scenario: &'static str,
    local_ip: &str,
    dialled: &str,
    password: &str,
    rtp: &RtpPeer,
    talk_ms: u64,
) -> SippRun {
    let vars = [
        ("user", "alice".to_string()),
        ("rtp_port", rtp.port.to_string()),
    ];
    let talk = talk_ms.to_string();
    sipp(
        scenario,
        engine.sip,
        local_ip,
        &vars,
        // The softphone's media is the test's RTP peer, on 127.0.0.1
        // whatever address its SIP comes from.
        &[
            "-s",
            dialled,
            "-au",
            "alice",
            "-ap",
            password,
            "-d",
            &talk,
            "-mi",
            "127.0.0.1",
        ],
        Duration::from_secs(40),
    )
}

/// The final status SIPp received for the INVITE (the last response to
/// it), e.g. `403`.
fn final_status(run: &SippRun) -> Option<u16> {
    sip_messages_dir(&run.messages)
        .into_iter()
        .filter(|(received, m)| *received && m.starts_with("SIP/2.0 ") && m.contains(" INVITE"))
        .filter_map(|(_, m)| m.get(8..11).and_then(|c| c.parse().ok()))
        .rfind(|c| *c >= 200)
}

fn received_183(run: &SippRun) -> bool {
    sip_messages_dir(&run.messages)
        .iter()
        .any(|(received, m)| *received && m.starts_with("SIP/2.0 183"))
}

/// A UDP socket on the gateway's port that records whatever arrives.
fn silent_gateway(port: u16) -> UdpSocket {
    let s = UdpSocket::bind(("127.0.0.1", port)).expect("bind gateway port");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    s
}

fn nothing_arrived(gw: &UdpSocket) -> bool {
    let mut buf = [0u8; 4096];
    gw.recv_from(&mut buf).is_err()
}

fn metrics(engine: &Engine) -> String {
    http_get(engine, "/metrics").1
}

/// The outbound call records, oldest first: (agent, practice, destination,
/// outcome, refusal, talk_secs, caller_id).
type Row = (
    String,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    Option<f64>,
    Option<String>,
);

fn outbound_rows(engine: &Engine) -> Vec<Row> {
    let db = engine.data.join("permanence.db");
    let conn = rusqlite::Connection::open(&db).expect("open records");
    let mut st = conn
        .prepare(
            "SELECT agent, practice_id, destination, outcome, refusal, talk_secs, caller_id \
             FROM outbound_calls ORDER BY started_at",
        )
        .expect("prepare");
    st.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
        ))
    })
    .expect("query")
    .collect::<Result<Vec<_>, _>>()
    .expect("rows")
}

/// Waits until `n` outbound records are closed (not `in-progress`).
fn closed_rows(engine: &Engine, n: usize) -> Vec<Row> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let rows = outbound_rows(engine);
        if rows.iter().filter(|r| r.3 != "in-progress").count() >= n
            || std::time::Instant::now() > deadline
        {
            return rows;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn agent_call_goes_out_as_the_practice_with_two_way_audio() {
    let (cfg, gw_port) = config();
    let engine = Engine::start(&cfg, &[]);
    // The patient's phone, behind the carrier's gateway: answers, PCMU 0x55.
    let (patient_rtp, gateway) = SippBg::uas_with_rtp(
        "agent_answer.xml",
        gw_port,
        0,
        0x55,
        &["-d", "300"],
        Duration::from_secs(40),
    );
    // Alice dials *81* (Dr Martin's code) and the patient's mobile; she
    // talks for 4 s, then hangs up.
    let alice_rtp = RtpPeer::start(0, 0x2a);
    let run = dial(
        &engine,
        "agent_dial.xml",
        "127.0.0.1",
        "*81*0612345678",
        "alice-demo",
        &alice_rtp,
        4000,
    );
    assert!(run.success, "alice: {}\n{}", run.errors, run.messages);
    // Two-way audio, payload-checked.
    assert!(
        count_fill(&alice_rtp.received(), 0x55) > 50,
        "the patient's audio did not reach the agent"
    );
    assert!(
        count_fill(&patient_rtp.received(), 0x2a) > 50,
        "the agent's audio did not reach the patient"
    );
    // The gateway saw the practice calling: name and number in From, the
    // number in P-Asserted-Identity, the patient's number in E.164.
    let gw = gateway.finish_ok(Duration::from_secs(10), "gateway");
    let invite = received_request(&gw, "INVITE").expect("INVITE at the gateway");
    assert!(
        invite.starts_with(&format!("INVITE sip:+33612345678@127.0.0.1:{gw_port}")),
        "{invite}"
    );
    assert!(
        invite.contains("From: \"Cabinet du Dr Martin\" <sip:+33450000001@"),
        "{invite}"
    );
    assert!(
        invite.contains("P-Asserted-Identity: <sip:+33450000001@"),
        "{invite}"
    );
    assert!(
        !invite.contains("alice"),
        "the agent leaks to the carrier: {invite}"
    );
    // Log, metrics, record.
    let ended = engine
        .wait_event("outbound.ended", Duration::from_secs(5))
        .expect("outbound.ended");
    assert_eq!(field(&ended, "outcome"), "answered");
    assert_eq!(field(&ended, "practice"), "martin");
    let dialled = engine.events("outbound.dialled");
    assert_eq!(field(&dialled[0], "destination"), "+3361xxxxx78");
    let m = metrics(&engine);
    assert_eq!(
        metric(
            &m,
            "permanence_outbound_calls_total{practice=\"martin\",outcome=\"answered\"}"
        ),
        Some(1.0)
    );
    assert_eq!(metric(&m, "permanence_outbound_calls_active"), Some(0.0));
    let talk = metric(
        &m,
        "permanence_outbound_talk_seconds_total{practice=\"martin\"}",
    )
    .unwrap_or(0.0);
    assert!((3.0..8.0).contains(&talk), "talk seconds {talk}");
    let rows = closed_rows(&engine, 1);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (agent, practice, dest, outcome, refusal, secs, caller_id) = &rows[0];
    assert_eq!(agent, "alice");
    assert_eq!(practice.as_deref(), Some("martin"));
    assert_eq!(dest.as_deref(), Some("+33612345678"));
    assert_eq!(outcome, "answered");
    assert_eq!(refusal, &None);
    assert_eq!(caller_id.as_deref(), Some("+33450000001"));
    assert!(secs.is_some_and(|s| (3.0..8.0).contains(&s)), "{secs:?}");
}

#[test]
fn premium_international_and_unknown_numbers_are_refused_and_nothing_leaves() {
    let (cfg, gw_port) = config();
    let gw = silent_gateway(gw_port);
    let engine = Engine::start(&cfg, &[]);
    let alice_rtp = RtpPeer::start(0, 0x2a);
    // Premium rate: 183 with the spoken reason, then 403.
    let run = dial(
        &engine,
        "agent_dial_refused.xml",
        "127.0.0.1",
        "*81*0899123456",
        "alice-demo",
        &alice_rtp,
        0,
    );
    assert!(run.success, "{}\n{}", run.errors, run.messages);
    assert_eq!(final_status(&run), Some(403), "{}", run.messages);
    assert!(received_183(&run), "no early media: {}", run.messages);
    let reason = common::default_prompt("outbound_refused");
    let coverage = prompt_coverage(&alice_rtp.received(), &reason);
    assert!(coverage > 0.8, "spoken reason covered {coverage:.2}");
    // International, then a number that is not one.
    for (dialled, status) in [("*81*0041221234567", 403), ("*81*12", 484)] {
        let run = dial(
            &engine,
            "agent_dial_refused.xml",
            "127.0.0.1",
            dialled,
            "alice-demo",
            &alice_rtp,
            0,
        );
        assert!(run.success, "{dialled}: {}\n{}", run.errors, run.messages);
        assert_eq!(final_status(&run), Some(status), "{dialled}");
    }
    // An unknown practice code: 403 with its own reason.
    let run = dial(
        &engine,
        "agent_dial_refused.xml",
        "127.0.0.1",
        "*899*0612345678",
        "alice-demo",
        &alice_rtp,
        0,
    );
    assert_eq!(final_status(&run), Some(403), "{}", run.messages);
    assert!(nothing_arrived(&gw), "a refused call reached the gateway");
    // Counted, logged (number masked), audited, recorded.
    let m = metrics(&engine);
    let refused = |r: &str| {
        metric(
            &m,
            &format!("permanence_outbound_refused_total{{reason=\"{r}\"}}"),
        )
    };
    assert_eq!(refused("destination"), Some(2.0));
    assert_eq!(refused("invalid_number"), Some(1.0));
    assert_eq!(refused("no_practice"), Some(1.0));
    let logs = engine.events("outbound.refused");
    assert_eq!(logs.len(), 4);
    assert_eq!(field(&logs[0], "class"), "premium");
    assert!(
        !engine.dump().contains("0899123456"),
        "a dialled number is readable in the logs"
    );
    let rows = closed_rows(&engine, 4);
    let outcomes: Vec<(&str, Option<&str>)> = rows
        .iter()
        .map(|r| (r.3.as_str(), r.4.as_deref()))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("refused", Some("destination")),
            ("refused", Some("destination")),
            ("refused", Some("invalid_number")),
            ("refused", Some("no_practice")),
        ]
    );
    let (code, audit) = common::http_call(
        &engine,
        "GET",
        "/api/audit",
        "demo-admin-token-change-me",
        None,
    );
    assert_eq!(code, 200);
    assert!(audit.contains("outbound.call"), "{audit}");
    assert!(!audit.contains("0899123456"), "{audit}");
}

#[test]
fn unauthenticated_and_carrier_sources_never_get_out() {
    let (cfg, gw_port) = config();
    let gw = silent_gateway(gw_port);
    let engine = Engine::start(&cfg, &[]);
    let rtp = RtpPeer::start(0, 0x2a);
    // A wrong password: 403 after the challenge.
    let run = dial(
        &engine,
        "agent_dial_refused.xml",
        "127.0.0.2",
        "0612345678",
        "guessed",
        &rtp,
        0,
    );
    assert_eq!(final_status(&run), Some(403), "{}", run.messages);
    // No credentials at all: the challenge, and nothing else.
    let run = sipp(
        "carrier_rejected.xml",
        engine.sip,
        "127.0.0.2",
        &[("called", "0612345678".into()), ("hdr", String::new())],
        &["-set", "rtp_port", &rtp.port.to_string()],
        Duration::from_secs(20),
    );
    let statuses: Vec<String> = sip_messages_dir(&run.messages)
        .into_iter()
        .filter(|(received, m)| *received && m.starts_with("SIP/2.0"))
        .map(|(_, m)| m.lines().next().unwrap_or_default().to_string())
        .collect();
    assert!(
        statuses.iter().any(|s| s.starts_with("SIP/2.0 407")),
        "{statuses:?}"
    );
    // The carrier's own address asking for a number that is no practice's.
    let call = sipp_thread(
        "carrier_rejected.xml",
        engine.sip,
        vec![
            ("called", "+33612345678".into()),
            ("hdr", String::new()),
            ("rtp_port", rtp.port.to_string()),
        ],
        Vec::new(),
        Duration::from_secs(20),
    );
    let run = call.join().expect("carrier");
    assert!(
        run.messages.contains("SIP/2.0 404"),
        "{}\n{}",
        run.output,
        run.messages
    );
    assert!(
        nothing_arrived(&gw),
        "an unauthenticated call reached the gateway"
    );
    assert!(engine.events("outbound.dialled").is_empty());
}

#[test]
fn bare_number_goes_out_as_the_practice_of_the_agents_last_call() {
    let (mut cfg, gw_port) = config();
    // A short greeting: the patient reaches the queue at once.
    cfg.tone_prompt("martin", "greeting", 0.5, 440.0);
    let engine = Engine::start(&cfg, &[]);
    // Bob dials a bare number without any call before: no practice.
    let bob_rtp = RtpPeer::start(0, 0x2b);
    let run = sipp(
        "agent_dial_refused.xml",
        engine.sip,
        "127.0.0.2",
        &[
            ("user", "bob".to_string()),
            ("rtp_port", bob_rtp.port.to_string()),
        ],
        &[
            "-s",
            "0612345678",
            "-au",
            "bob",
            "-ap",
            "bob-demo",
            "-mi",
            "127.0.0.1",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(final_status(&run), Some(403), "{}", run.messages);
    let reason = common::default_prompt("outbound_no_practice");
    assert!(prompt_coverage(&bob_rtp.received(), &reason) > 0.8);
    // A patient of Dr Martin talks with Alice...
    let alice_port = free_udp_port();
    register_agent(engine.sip, "alice", "alice-demo", alice_port);
    let (alice_media, alice) = SippBg::uas_with_rtp(
        "agent_answer.xml",
        alice_port,
        0,
        0x2a,
        &["-d", "300"],
        Duration::from_secs(40),
    );
    let (_caller_rtp, carrier) = patient(
        &engine,
        MARTIN,
        "carrier_call.xml",
        0x55,
        &["-d", "4000"],
        Duration::from_secs(40),
    );
    assert!(
        engine
            .wait_event("acd.answered", Duration::from_secs(15))
            .is_some(),
        "{}",
        engine.dump()
    );
    joined(carrier, "carrier");
    alice.finish_ok(Duration::from_secs(10), "alice");
    // ... then calls a number back with the bare number: it goes out as
    // Dr Martin (the gateway answers; she hangs up after 1 s).
    let (_patient_rtp, gateway) = SippBg::uas_with_rtp(
        "agent_answer.xml",
        gw_port,
        0,
        0x55,
        &["-d", "300"],
        Duration::from_secs(40),
    );
    let run = dial(
        &engine,
        "agent_dial.xml",
        "127.0.0.2",
        "0612345678",
        "alice-demo",
        &alice_media,
        1000,
    );
    assert!(run.success, "{}\n{}", run.errors, run.messages);
    let gw = gateway.finish(Duration::from_secs(10));
    assert!(
        gw.messages
            .contains("P-Asserted-Identity: <sip:+33450000001@"),
        "{}",
        gw.messages
    );
}

#[test]
fn gateway_busy_is_relayed_and_the_cap_refuses_a_second_call() {
    let (mut cfg, gw_port) = config();
    common::sub_table(&mut cfg.main, "outbound").insert("max_calls_per_agent".into(), 1.into());
    let engine = Engine::start(&cfg, &[]);
    // The patient's line is busy: 486 comes back to Alice.
    let gateway = SippBg::uas("agent_busy.xml", gw_port, &[], &[], Duration::from_secs(30));
    let rtp = RtpPeer::start(0, 0x2a);
    let run = dial(
        &engine,
        "agent_dial_refused.xml",
        "127.0.0.1",
        "*81*0612345678",
        "alice-demo",
        &rtp,
        0,
    );
    assert_eq!(final_status(&run), Some(486), "{}", run.messages);
    gateway.finish_ok(Duration::from_secs(10), "gateway");
    // The gateway rings without answering; meanwhile a second call of
    // Alice's is over her cap (1).
    let ringing = SippBg::uas(
        "agent_noanswer.xml",
        gw_port,
        &[],
        &[],
        Duration::from_secs(30),
    );
    let first = {
        let sip = engine.sip;
        let port = rtp.port;
        std::thread::spawn(move || {
            sipp(
                "agent_dial_refused.xml",
                sip,
                "127.0.0.1",
                &[
                    ("user", "alice".to_string()),
                    ("rtp_port", port.to_string()),
                ],
                &["-s", "*81*0612345679", "-au", "alice", "-ap", "alice-demo"],
                Duration::from_secs(30),
            )
        })
    };
    assert!(engine
        .wait_event("outbound.dialled", Duration::from_secs(10))
        .is_some());
    std::thread::sleep(Duration::from_millis(300));
    let second_rtp = RtpPeer::start(0, 0x2c);
    let second = dial(
        &engine,
        "agent_dial_refused.xml",
        "127.0.0.1",
        "*81*0612345670",
        "alice-demo",
        &second_rtp,
        0,
    );
    assert_eq!(final_status(&second), Some(403), "{}", second.messages);
    let logs = engine.events("outbound.refused");
    assert_eq!(field(&logs[0], "reason"), "too_many_calls");
    drop(ringing);
    let _ = first.join();
    let m = metrics(&engine);
    assert_eq!(
        metric(
            &m,
            "permanence_outbound_calls_total{practice=\"martin\",outcome=\"busy\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &m,
            "permanence_outbound_refused_total{reason=\"too_many_calls\"}"
        ),
        Some(1.0)
    );
}
