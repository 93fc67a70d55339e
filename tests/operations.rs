//! Operations end to end: exact metrics and call records after real calls,
//! configuration reload under a call, and draining.

mod common;

use common::{
    field, free_udp_port, metric, register_agent, sipp, Engine, RtpPeer, SippBg, TestConfig,
};
use std::time::Duration;

const TOKEN: &str = "test-admin-token-0123456789";
const MARTIN: &str = "Diversion: <sip:+33450000001@carrier.example>;reason=unconditional";

/// Martin open at all hours, short greeting and voicemail prompts, no
/// triage, Alice only (dedicated), a 10 s max wait to voicemail, 1 s
/// wrap-up; no OPTIONS probes; admin token set.
fn config() -> TestConfig {
    let mut cfg = TestConfig::demo();
    cfg.always_open("martin");
    cfg.tone_prompt("martin", "greeting", 0.3, 440.0);
    cfg.tone_prompt("martin", "voicemail", 0.3, 880.0);
    let m = cfg.practice("martin");
    m.remove("triage");
    let routing = m
        .get_mut("routing")
        .and_then(|r| r.as_table_mut())
        .expect("[routing]");
    routing.insert("max_wait_seconds".into(), 10.into());
    routing.insert("wrap_up_seconds".into(), 1.into());
    let mut step = toml::Table::new();
    step.insert("after_seconds".into(), 0.into());
    step.insert("dedicated".into(), true.into());
    routing.insert(
        "steps".into(),
        toml::Value::Array(vec![toml::Value::Table(step)]),
    );
    let mut overflow = toml::Table::new();
    overflow.insert("action".into(), "voicemail".into());
    routing.insert("overflow".into(), toml::Value::Table(overflow));
    cfg.no_qualify();
    cfg.main
        .get_mut("http")
        .and_then(|h| h.as_table_mut())
        .expect("[http]")
        .insert("admin_token".into(), TOKEN.into());
    cfg
}

/// The engine's call records (latest 10), once at least `n` are written
/// and none is still in progress (or after 5 s), with the reader for more
/// queries.
fn call_records(
    engine: &Engine,
    n: usize,
) -> (
    permanence_records::RecordReader,
    Vec<permanence_records::CallRecord>,
) {
    let db = engine.data.join("permanence.db");
    let reader = permanence_records::RecordReader::open(&db).expect("records db");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let rows = reader
            .calls(&permanence_records::CallFilter::latest(10))
            .expect("calls");
        let done = rows.len() >= n && rows.iter().all(|r| r.outcome.as_str() != "in-progress");
        if done || std::time::Instant::now() > deadline {
            return (reader, rows);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn http(engine: &Engine, method: &str, path: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let url = format!("http://{}{}", engine.http, path);
    let auth = format!("Bearer {TOKEN}");
    let resp = if method == "GET" {
        agent.get(&url).header("Authorization", &auth).call()
    } else {
        agent.post(&url).header("Authorization", &auth).send_empty()
    };
    match resp {
        Ok(mut r) => (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        ),
        Err(e) => panic!("{url}: {e}"),
    }
}

fn place_call(
    engine: &Engine,
    hold_ms: u64,
) -> (std::thread::JoinHandle<common::SippRun>, RtpPeer) {
    let caller = RtpPeer::start(0, 0x55);
    let vars = vec![
        ("called", "+33970000000".to_string()),
        ("hdr", MARTIN.to_string()),
        ("rtp_port", caller.port.to_string()),
    ];
    let target = engine.sip;
    let d = hold_ms.to_string();
    let h = std::thread::spawn(move || {
        sipp(
            "carrier_call.xml",
            target,
            "127.0.0.1",
            &vars,
            &["-d", &d],
            Duration::from_secs(40),
        )
    });
    (h, caller)
}

/// Alice's softphone: registered, answering every offer after 200 ms, her
/// RTP endpoint sending 0x2a payloads.
fn alice_answers(engine: &Engine) -> (SippBg, RtpPeer) {
    let port = free_udp_port();
    register_agent(engine.sip, "alice", "alice-demo", port);
    let rtp = RtpPeer::start(0, 0x2a);
    let uas = SippBg::uas(
        "agent_answer.xml",
        port,
        &[("rtp_port", rtp.port.to_string()), ("pt", "0".into())],
        &["-d", "200"],
        Duration::from_secs(60),
    );
    (uas, rtp)
}

#[test]
fn metrics_and_call_records_match_the_calls() {
    let engine = Engine::start(&config(), &[]);
    let (alice, _alice_rtp) = alice_answers(&engine);

    // 1. Answered by Alice, about 3 s of talk.
    let (a, _a_rtp) = place_call(&engine, 3500);
    let run = a.join().expect("call 1");
    assert!(run.success, "call 1: {}\n{}", run.output, run.errors);
    assert!(alice.finish(Duration::from_secs(10)).success);
    assert!(engine
        .wait_event("acd.completed", Duration::from_secs(3))
        .is_some());

    // 2. Alice paused (admin API): the caller waits in queue, gives up
    //    after about 2 s in queue (short abandon: under 5 s).
    let (code, body) = http(&engine, "POST", "/api/agents/alice/pause");
    assert_eq!(code, 200, "{body}");
    let (b, _b_rtp) = place_call(&engine, 2500);
    let run = b.join().expect("call 2");
    assert!(run.success, "call 2: {}\n{}", run.output, run.errors);
    assert!(engine
        .wait_event("acd.abandoned", Duration::from_secs(3))
        .is_some());

    // 3. Still nobody: after 10 s in queue, voicemail; the caller leaves a
    //    message and hangs up.
    let (c, _c_rtp) = place_call(&engine, 13500);
    let run = c.join().expect("call 3");
    assert!(run.success, "call 3: {}\n{}", run.output, run.errors);
    assert!(engine
        .wait_event("acd.overflowed", Duration::from_secs(3))
        .is_some());
    std::thread::sleep(Duration::from_millis(500));

    let (code, text) = http(&engine, "GET", "/metrics");
    assert_eq!(code, 200);
    let m = |s: &str| metric(&text, s).unwrap_or_else(|| panic!("no series {s}\n{text}"));
    assert_eq!(
        m(r#"permanence_calls_offered_total{practice="martin"}"#),
        3.0
    );
    assert_eq!(
        m(r#"permanence_calls_answered_total{practice="martin"}"#),
        1.0
    );
    assert_eq!(
        m(r#"permanence_calls_abandoned_total{practice="martin",phase="queue",short="true"}"#),
        1.0
    );
    assert_eq!(
        m(r#"permanence_calls_abandoned_total{practice="martin",phase="queue",short="false"}"#),
        0.0
    );
    assert_eq!(
        m(r#"permanence_calls_overflowed_total{practice="martin",target="voicemail"}"#),
        1.0
    );
    assert_eq!(
        m(r#"permanence_offers_total{practice="martin",result="answered"}"#),
        1.0
    );
    assert_eq!(
        m(r#"permanence_calls_closed_total{practice="martin"}"#),
        0.0
    );
    // Waits: the answered call waited well under 5 s; the abandoned one
    // about 2 s.
    assert_eq!(
        m(r#"permanence_wait_seconds_bucket{practice="martin",outcome="answered",le="5"}"#),
        1.0
    );
    assert_eq!(
        m(r#"permanence_wait_seconds_count{practice="martin",outcome="answered"}"#),
        1.0
    );
    assert_eq!(
        m(r#"permanence_wait_seconds_bucket{practice="martin",outcome="abandoned",le="5"}"#),
        1.0
    );
    assert_eq!(
        m(r#"permanence_wait_seconds_count{practice="martin",outcome="abandoned"}"#),
        1.0
    );
    assert_eq!(
        m(r#"permanence_talk_seconds_count{practice="martin"}"#),
        1.0
    );
    // Other practices saw nothing.
    assert_eq!(
        m(r#"permanence_calls_offered_total{practice="tilleuls"}"#),
        0.0
    );
    assert!(m(r#"permanence_rtp_packets_total{direction="out"}"#) > 100.0);
    assert!(m(r#"permanence_sip_requests_total{method="INVITE"}"#) >= 3.0);
    assert_eq!(m(r#"permanence_active_calls"#), 0.0);

    // The call records: one row per call, matching.
    let (reader, rows) = call_records(&engine, 3);
    let mut outcomes: Vec<(String, Option<String>, Option<String>)> = rows
        .iter()
        .map(|r| {
            (
                r.outcome.as_str().to_string(),
                r.agent.clone(),
                r.abandon_phase.map(|p| p.as_str().to_string()),
            )
        })
        .collect();
    outcomes.sort();
    assert_eq!(
        outcomes,
        vec![
            ("abandoned".into(), None, Some("queue".into())),
            ("answered".into(), Some("alice".into()), None),
            ("overflowed".into(), None, None),
        ]
    );
    for r in &rows {
        assert_eq!(r.practice_id, "martin");
        assert_eq!(r.trunk, "demo-carrier");
        assert_eq!(r.called.as_deref(), Some("+33450000001"));
        assert_eq!(r.caller.as_deref(), Some("+33612345678"));
        assert!(r.queued_at.is_some());
    }
    let answered = rows.iter().find(|r| r.agent.is_some()).expect("answered");
    assert!(answered.talk_secs.unwrap_or(0.0) > 0.5);
    let overflowed = rows
        .iter()
        .find(|r| r.overflow_target.is_some())
        .expect("overflowed");
    assert_eq!(overflowed.overflow_target.as_deref(), Some("voicemail"));
    // Queue events for the answered call: entered, offered, answered.
    let kinds: Vec<String> = reader
        .events_for_call(&answered.call_id)
        .expect("events")
        .iter()
        .map(|e| e.kind.as_str().to_string())
        .collect();
    assert_eq!(kinds, vec!["entered", "offered", "answered"]);
    // The voicemail message exists.
    let vm = engine
        .wait_event("voicemail.recorded", Duration::from_secs(2))
        .expect("voicemail recorded");
    assert!(std::path::Path::new(field(&vm, "path")).exists());
}

#[test]
fn reload_under_a_call_and_broken_reload_refused() {
    let cfg = config();
    let engine = Engine::start(&cfg, &[]);
    let (alice, _alice_rtp) = alice_answers(&engine);
    let (call, caller_rtp) = place_call(&engine, 12000);
    assert!(engine
        .wait_event("acd.answered", Duration::from_secs(10))
        .is_some());

    // A new practice appears on disk; reload through the admin API.
    let dir = engine.data.parent().expect("config dir").to_path_buf();
    let mut extra = common::load_toml(&dir.join("dialplans/tilleuls.toml"));
    extra.insert("id".into(), "nouveau".into());
    extra.insert("name".into(), "Cabinet Nouveau".into());
    extra.insert(
        "forwarded_from".into(),
        toml::Value::Array(vec!["+33390000077".into()]),
    );
    extra.insert("dids".into(), toml::Value::Array(vec![]));
    // A practice code is unique: the copy has none.
    extra.remove("outbound");
    std::fs::write(
        dir.join("dialplans/nouveau.toml"),
        toml::to_string(&extra).expect("toml"),
    )
    .expect("write");
    let (code, body) = http(&engine, "POST", "/api/reload");
    assert_eq!(code, 200, "{body}");
    assert!(engine
        .wait_event("config.reloaded", Duration::from_secs(3))
        .is_some());
    // The call in progress did not notice: audio still flows both ways.
    let before = caller_rtp
        .received()
        .iter()
        .filter(|p| p.payload == vec![0x2au8; 160])
        .count();
    std::thread::sleep(Duration::from_millis(1000));
    let after = caller_rtp
        .received()
        .iter()
        .filter(|p| p.payload == vec![0x2au8; 160])
        .count();
    assert!(
        after > before + 30,
        "audio stopped after reload ({before} -> {after})"
    );

    // A broken file: the reload is refused, with file, line and field.
    let mut broken = extra.clone();
    broken.insert("id".into(), "broken".into());
    broken.insert("timezone".into(), "Europe/Pariss".into());
    broken.insert(
        "forwarded_from".into(),
        toml::Value::Array(vec!["+33390000078".into()]),
    );
    std::fs::write(
        dir.join("dialplans/zz-broken.toml"),
        toml::to_string(&broken).expect("toml"),
    )
    .expect("write");
    let (code, body) = http(&engine, "POST", "/api/reload");
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("zz-broken.toml:") && body.contains(": timezone: "),
        "{body}"
    );
    assert!(engine
        .wait_event("config.reload_failed", Duration::from_secs(3))
        .is_some());

    let run = call.join().expect("call");
    assert!(run.success, "call: {}\n{}", run.output, run.errors);
    assert!(alice.finish(Duration::from_secs(10)).success);
    let ended = engine
        .wait_event("call.ended", Duration::from_secs(3))
        .expect("ended");
    assert_eq!(field(&ended, "reason"), "caller-hangup");

    // The new practice (from the good reload) answers; the broken one did
    // not replace the running configuration.
    let probe = RtpPeer::start(0, 0x11);
    let run = sipp(
        "carrier_call.xml",
        engine.sip,
        "127.0.0.1",
        &[
            ("called", "+33970000000".to_string()),
            ("hdr", "Diversion: <sip:+33390000077@c>".to_string()),
            ("rtp_port", probe.port.to_string()),
        ],
        &["-d", "1000"],
        Duration::from_secs(20),
    );
    assert!(run.success, "{}\n{}", run.output, run.errors);
    assert!(engine
        .wait_for("call.identified", Duration::from_secs(2), |v| {
            field(v, "practice") == "nouveau"
        })
        .is_some());
}

#[test]
fn drain_finishes_the_call_refuses_new_ones_and_exits_zero() {
    let mut engine = Engine::start(&config(), &[]);
    let (alice, _alice_rtp) = alice_answers(&engine);
    let (call, _caller_rtp) = place_call(&engine, 9000);
    assert!(engine
        .wait_event("acd.answered", Duration::from_secs(10))
        .is_some());
    // SIGTERM: drain.
    let pid = engine.pid().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    assert!(engine
        .wait_event("engine.draining", Duration::from_secs(3))
        .is_some());
    // A new call is refused with 503.
    let refused = refused_call(&engine);
    assert!(refused.contains("SIP/2.0 503"), "{refused}");
    assert!(engine.is_alive(), "exited before the call ended");
    // The call in progress ends normally...
    let run = call.join().expect("call");
    assert!(run.success, "call: {}\n{}", run.output, run.errors);
    assert!(alice.finish(Duration::from_secs(10)).success);
    // ... then the process exits 0 by itself.
    let code = engine.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0));
    assert!(engine
        .wait_event("engine.stopped", Duration::from_secs(1))
        .is_some());
}

#[test]
fn cli_prints_queues_agents_and_calls() {
    let engine = Engine::start(&config(), &[]);
    let config_file = engine.data.parent().expect("dir").join("permanence.toml");
    let (code, body) = http(&engine, "POST", "/api/agents/bob/pause");
    assert_eq!(code, 200, "{body}");
    // A caller waiting in Dr Martin's queue (Alice is not registered).
    let (call, _rtp) = place_call(&engine, 5000);
    assert!(engine
        .wait_event("acd.queued", Duration::from_secs(10))
        .is_some());
    let cli = |what: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_permanence"))
            .arg(what)
            .arg("--config")
            .arg(&config_file)
            .output()
            .expect("run permanence");
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let queues = cli("queues");
    let martin = queues
        .lines()
        .find(|l| l.starts_with("martin "))
        .unwrap_or_else(|| panic!("{queues}"));
    assert!(martin.contains("Cabinet du Dr Martin"), "{martin}");
    let cols: Vec<&str> = martin.split_whitespace().collect();
    assert!(cols.contains(&"yes"), "{martin}");
    let agents = cli("agents");
    let bob = agents
        .lines()
        .find(|l| l.starts_with("bob "))
        .unwrap_or_else(|| panic!("{agents}"));
    assert!(bob.contains("paused") && bob.contains("pause"), "{bob}");
    let calls = cli("calls");
    let line = calls
        .lines()
        .find(|l| l.contains(" martin "))
        .unwrap_or_else(|| panic!("{calls}"));
    // The caller number is masked; the call is queued, first in line.
    assert!(line.contains("+3361xxxxx78"), "{line}");
    assert!(line.contains("queued"), "{line}");
    assert!(line.trim_end().ends_with(" 1"), "{line}");
    assert!(!calls.contains("+33612345678"));
    let _ = call.join();
}

/// A dialplan that stops resolving (its symbolic link left dangling, then
/// looping) makes a reload fail with the file named; the practice keeps
/// answering on the running configuration instead of vanishing (404).
#[test]
fn reload_refuses_an_unresolvable_dialplan_and_the_practice_stays() {
    let engine = Engine::start(&config(), &[]);
    let dialplans = engine.data.parent().expect("config dir").join("dialplans");
    let link = dialplans.join("tilleuls.toml");
    let real = engine.dir().join("tilleuls-real.toml");
    std::fs::rename(&link, &real).expect("move tilleuls.toml");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    let (code, body) = http(&engine, "POST", "/api/reload");
    assert_eq!(code, 200, "a resolving link is a valid dialplan: {body}");

    // The link's target disappears: refused, with the path and why.
    std::fs::remove_file(&real).expect("remove target");
    let (code, body) = http(&engine, "POST", "/api/reload");
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("tilleuls.toml:1: symbolic link to")
            && body.contains("cannot be resolved: target not found (dangling link)"),
        "{body}"
    );
    // The target becomes a link back to the dialplan: a loop, refused too.
    std::os::unix::fs::symlink(&link, &real).expect("loop");
    let (code, body) = http(&engine, "POST", "/api/reload");
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("symbolic link loop"), "{body}");
    assert!(engine
        .wait_n("config.reload_failed", 2, Duration::from_secs(3), |_| true)
        .is_some());

    // Tilleuls (DID +33980000004) still answers.
    let probe = RtpPeer::start(0, 0x11);
    let run = sipp(
        "carrier_call.xml",
        engine.sip,
        "127.0.0.1",
        &[
            ("called", "+33980000004".to_string()),
            ("hdr", "X-Test: reload".to_string()),
            ("rtp_port", probe.port.to_string()),
        ],
        &["-d", "1000"],
        Duration::from_secs(20),
    );
    assert!(run.success, "{}\n{}", run.output, run.errors);
    assert!(engine
        .wait_for("call.identified", Duration::from_secs(2), |v| {
            field(v, "practice") == "tilleuls"
        })
        .is_some());
}

/// A carrier call the engine must refuse; returns the code it got.
fn refused_call(engine: &Engine) -> String {
    let run = sipp(
        "carrier_rejected.xml",
        engine.sip,
        "127.0.0.1",
        &[
            ("called", "+33970000000".to_string()),
            ("hdr", MARTIN.to_string()),
            ("rtp_port", "9".to_string()),
        ],
        &[],
        Duration::from_secs(10),
    );
    assert!(run.success, "{}\n{}", run.output, run.errors);
    run.messages
}

#[test]
fn calls_beyond_max_calls_get_503_counted_and_recorded() {
    let mut cfg = config();
    cfg.sip_limit("max_calls", 1);
    let engine = Engine::start(&cfg, &[]);
    // Nobody answers: the first caller waits in queue, then hangs up.
    let (first, _rtp) = place_call(&engine, 4000);
    assert!(engine
        .wait_event("acd.queued", Duration::from_secs(10))
        .is_some());
    let messages = refused_call(&engine);
    assert!(messages.contains("SIP/2.0 503"), "{messages}");
    assert!(!messages.contains("Retry-After"), "{messages}");
    assert!(engine
        .wait_event("call.overload", Duration::from_secs(2))
        .is_some());
    let run = first.join().expect("first call");
    assert!(run.success, "first call: {}\n{}", run.output, run.errors);
    assert!(engine
        .wait_event("acd.abandoned", Duration::from_secs(3))
        .is_some());

    // The slot is free again: the next call is taken (and abandoned).
    let (next, _rtp) = place_call(&engine, 1500);
    let run = next.join().expect("next call");
    assert!(run.success, "next call: {}\n{}", run.output, run.errors);

    let (code, text) = http(&engine, "GET", "/metrics");
    assert_eq!(code, 200);
    let m = |s: &str| metric(&text, s).unwrap_or_else(|| panic!("no series {s}\n{text}"));
    assert_eq!(
        m(r#"permanence_sip_rejected_total{reason="overload"}"#),
        1.0
    );
    assert_eq!(
        m(r#"permanence_calls_offered_total{practice="martin"}"#),
        2.0
    );
    // The records: two abandoned calls and the refused one, with why.
    let (_, rows) = call_records(&engine, 3);
    let mut outcomes: Vec<(String, Option<String>)> = rows
        .iter()
        .map(|r| (r.outcome.as_str().to_string(), r.end_reason.clone()))
        .collect();
    outcomes.sort();
    assert_eq!(outcomes.len(), 3, "{outcomes:?}");
    assert_eq!(outcomes[0].0, "abandoned");
    assert_eq!(outcomes[1].0, "abandoned");
    assert_eq!(
        outcomes[2],
        ("rejected".to_string(), Some("overload".to_string()))
    );
    let rejected = rows
        .iter()
        .find(|r| r.outcome.as_str() == "rejected")
        .expect("rejected row");
    assert_eq!(rejected.practice_id, "martin");
    assert_eq!(rejected.trunk, "demo-carrier");
}

#[test]
fn over_the_heap_cap_new_work_gets_503_and_calls_in_progress_end() {
    let engine = Engine::start(&config(), &[]);
    let (alice, _alice_rtp) = alice_answers(&engine);
    let (call, _caller_rtp) = place_call(&engine, 5000);
    assert!(engine
        .wait_event("acd.answered", Duration::from_secs(10))
        .is_some());

    // The cap drops below what the engine holds at rest (reload).
    let dir = engine.data.parent().expect("config dir").to_path_buf();
    let mut main = common::load_toml(&dir.join("permanence.toml"));
    common::set_sip_limit(&mut main, "max_heap_mb", 1);
    std::fs::write(
        dir.join("permanence.toml"),
        toml::to_string(&main).expect("toml"),
    )
    .expect("write");
    let (code, body) = http(&engine, "POST", "/api/reload");
    assert_eq!(code, 200, "{body}");

    // A new call: 503 at the door, no transaction, nothing queued.
    let messages = refused_call(&engine);
    assert!(messages.contains("SIP/2.0 503"), "{messages}");
    assert!(engine
        .wait_event("sip.overloaded", Duration::from_secs(2))
        .is_some());
    // The call in progress still ends with its BYE.
    let run = call.join().expect("call");
    assert!(run.success, "call: {}\n{}", run.output, run.errors);
    assert!(alice.finish(Duration::from_secs(10)).success);
    assert!(engine
        .wait_event("acd.completed", Duration::from_secs(3))
        .is_some());

    let (code, text) = http(&engine, "GET", "/metrics");
    assert_eq!(code, 200);
    let m = |s: &str| metric(&text, s).unwrap_or_else(|| panic!("no series {s}\n{text}"));
    assert!(m(r#"permanence_sip_stateless_replies_total{code="503"}"#) >= 1.0);
    assert!(m("permanence_memory_heap_bytes") > 1048576.0);
    assert_eq!(
        m(r#"permanence_calls_offered_total{practice="martin"}"#),
        1.0
    );
}

/// Callback requests for operators: a patient of Les Tilleuls waits 10 s
/// with nobody to answer, the queue overflows to a callback; the admin API
/// and `permanence callbacks` list it (the number in clear for a
/// supervisor or an admin, masked for a viewer), a supervisor cancels it
/// (a viewer may not), it moves to the closed ones, a second cancel is
/// refused, and the audit log says who did what.
#[test]
fn callbacks_are_listed_cancelled_and_audited_from_the_api_and_cli() {
    const VIEWER: &str = "callbacks-viewer-token-000000";
    const SUPERVISOR: &str = "callbacks-supervisor-token-00";
    let mut cfg = config();
    cfg.tone_prompt("tilleuls", "greeting", 0.3, 440.0);
    cfg.routing("tilleuls")
        .insert("max_wait_seconds".into(), 10.into());
    // No callback offer (nor its key): the queue's overflow makes the
    // request.
    let callback = common::sub_table(cfg.practice("tilleuls"), "callback");
    callback.insert("offer".into(), false.into());
    callback.remove("digit");
    callback.remove("offer_after_seconds");
    let users: Vec<toml::Value> = [
        ("vera", "viewer", VIEWER),
        ("sam", "supervisor", SUPERVISOR),
    ]
    .into_iter()
    .map(|(name, role, token)| {
        let mut t = toml::Table::new();
        t.insert("name".into(), name.into());
        t.insert("role".into(), role.into());
        t.insert(
            "token_sha256".into(),
            permanence_engine::admin::token_sha256(token).into(),
        );
        toml::Value::Table(t)
    })
    .collect();
    cfg.main_table("http")
        .insert("users".into(), toml::Value::Array(users));
    let engine = Engine::start(&cfg, &[]);
    let config_file = engine.data.parent().expect("dir").join("permanence.toml");
    let api = |method: &str, path: &str, token: &str| {
        let (code, body) = common::http_call(&engine, method, path, token, None);
        let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
        (code, body, json)
    };
    let cli = |token: &str, args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_permanence"))
            .arg("callbacks")
            .args(args)
            .arg("--config")
            .arg(&config_file)
            .env("PERMANENCE_TOKEN", token)
            .output()
            .expect("run permanence");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };

    // The patient waits, overflows to a callback, hears the prompt, and
    // the engine hangs up.
    let rtp = RtpPeer::start(0, 0x33);
    let patient = common::sipp_thread(
        "carrier_wait_bye.xml",
        engine.sip,
        vec![
            ("called", "+33970000000".into()),
            (
                "hdr",
                "Diversion: <sip:+33380000004@carrier.example>;reason=unconditional".into(),
            ),
            ("rtp_port", rtp.port.to_string()),
        ],
        vec![],
        Duration::from_secs(60),
    );
    assert!(engine
        .wait_event("callback.requested", Duration::from_secs(30))
        .is_some());

    // A viewer sees it open, the number masked.
    let (code, body, v) = api("GET", "/api/callbacks", VIEWER);
    assert_eq!(code, 200, "{body}");
    let open = v["open"].as_array().expect("open");
    assert_eq!(open.len(), 1, "{body}");
    let key = field(&open[0], "key").to_string();
    assert_eq!(field(&open[0], "practice"), "tilleuls");
    assert_eq!(field(&open[0], "number"), "+3361xxxxx78");
    assert_eq!(field(&open[0], "origin"), "overflow");
    assert_eq!(field(&open[0], "status"), "queued");
    assert_eq!(open[0]["attempts"], 0);
    assert!(open[0]["completed_at"].is_null(), "{body}");
    let left = open[0]["seconds_to_deadline"].as_i64().expect("seconds");
    assert!((3500..=3600).contains(&left), "{body}");
    assert!(!body.contains("+33612345678"), "{body}");
    assert_eq!(v["recent"].as_array().map(Vec::len), Some(0), "{body}");
    // A supervisor or an admin sees the number to call.
    let (_, body, v) = api("GET", "/api/callbacks", SUPERVISOR);
    assert_eq!(field(&v["open"][0], "number"), "+33612345678", "{body}");
    let (_, body, v) = api("GET", "/api/callbacks?practice=tilleuls", TOKEN);
    assert_eq!(field(&v["open"][0], "number"), "+33612345678", "{body}");
    let (_, body, v) = api("GET", "/api/callbacks?practice=martin", TOKEN);
    assert_eq!(v["open"].as_array().map(Vec::len), Some(0), "{body}");

    // `permanence callbacks`: the table, number as the token allows.
    let (ok, table, err) = cli(TOKEN, &[]);
    assert!(ok, "{err}");
    assert!(table.starts_with("KEY "), "{table}");
    let line = table
        .lines()
        .find(|l| l.starts_with(&format!("{key} ")))
        .unwrap_or_else(|| panic!("{table}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        cols[1..5],
        ["tilleuls", "+33612345678", "queued", "0"],
        "{line}"
    );
    // Deadline (local date and time), then whole minutes left.
    assert!(cols[7] == "59" || cols[7] == "58", "{line}");
    let (ok, table, err) = cli(VIEWER, &["--practice", "tilleuls"]);
    assert!(ok, "{err}");
    assert!(table.contains(" +3361xxxxx78 "), "{table}");
    assert!(!table.contains("+33612345678"), "{table}");

    // Closing is for supervisors: a viewer is refused.
    let (code, body, _) = api("POST", &format!("/api/callbacks/{key}/cancel"), VIEWER);
    assert_eq!(code, 403, "{body}");
    let (code, body, _) = api("POST", "/api/callbacks/no-such-cb/cancel", SUPERVISOR);
    assert_eq!(code, 404, "{body}");
    // The supervisor cancels it.
    let (code, body, v) = api("POST", &format!("/api/callbacks/{key}/cancel"), SUPERVISOR);
    assert_eq!(code, 200, "{body}");
    assert_eq!(v["ok"], true);
    assert!(engine
        .wait_for("callback.failed", Duration::from_secs(3), |e| {
            field(e, "reason") == "cancelled"
        })
        .is_some());
    // The dispatcher's queue no longer holds it: nothing waits at Les
    // Tilleuls (a cancelled request left queued would ring agents for ever).
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        let (_, body, v) = api("GET", "/api/queues", SUPERVISOR);
        let tilleuls = v
            .as_array()
            .and_then(|a| a.iter().find(|q| field(q, "practice") == "tilleuls"))
            .cloned()
            .unwrap_or_default();
        if tilleuls["waiting"] == 0 && tilleuls["ringing"] == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still queued: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Closed: among the recent ones, cancelled.
    let (_, body, v) = api("GET", "/api/callbacks", SUPERVISOR);
    assert_eq!(v["open"].as_array().map(Vec::len), Some(0), "{body}");
    let recent = v["recent"].as_array().expect("recent");
    assert_eq!(recent.len(), 1, "{body}");
    assert_eq!(field(&recent[0], "key"), key);
    assert_eq!(field(&recent[0], "status"), "cancelled");
    assert_eq!(field(&recent[0], "number"), "+33612345678");
    assert!(recent[0]["completed_at"].is_string(), "{body}");
    // Once closed it cannot be closed again.
    let (code, body, v) = api("POST", &format!("/api/callbacks/{key}/cancel"), SUPERVISOR);
    assert_eq!(code, 409, "{body}");
    assert!(
        field(&v, "error").contains("already closed (cancelled)"),
        "{body}"
    );
    let (ok, out, err) = cli(SUPERVISOR, &["handled", &key]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("not marked handled") && err.contains("409"),
        "{err}"
    );
    let (ok, out, err) = cli(VIEWER, &["cancel", "no-such-cb"]);
    assert!(!ok, "{out}");
    assert!(err.contains("403"), "{err}");
    let (ok, table, err) = cli(TOKEN, &[]);
    assert!(ok, "{err}");
    let line = table
        .lines()
        .find(|l| l.starts_with(&format!("{key} ")))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(line.contains(" cancelled "), "{line}");

    // The audit log: who, what, on which request, how it ended.
    let (code, body, v) = api("GET", "/api/audit?limit=100", TOKEN);
    assert_eq!(code, 200, "{body}");
    let entries = v.as_array().expect("entries");
    let has = |actor: &str, action: &str, target: Option<&str>, outcome: &str| {
        entries.iter().any(|e| {
            field(e, "actor") == actor
                && field(e, "action") == action
                && target.is_none_or(|t| e["target"] == t)
                && field(e, "outcome") == outcome
        })
    };
    assert!(has("sam", "callback.cancel", Some(&key), "ok"), "{body}");
    assert!(
        has("sam", "callback.cancel", Some(&key), "failed"),
        "{body}"
    );
    assert!(
        has("sam", "callback.cancel", Some("no-such-cb"), "failed"),
        "{body}"
    );
    assert!(
        has("sam", "callback.handled", Some(&key), "failed"),
        "{body}"
    );
    assert!(has("vera", "callback.cancel", None, "refused"), "{body}");
    // The patient's number is in no audit entry.
    assert!(!body.contains("+33612345678"), "{body}");

    let run = patient.join().expect("patient");
    assert!(run.success, "patient: {}\n{}", run.output, run.errors);
}
