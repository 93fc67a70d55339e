//! The call records store failing under a running engine, end to end: the
//! real binary, real SIP calls (SIPp), a real SQLite failure.
//!
//! * Another connection holds the database's write lock (as a backup tool
//!   or a forgotten `sqlite3` shell would): the writer's transactions fail
//!   with "database is locked" once the busy timeout (5 s) expires. This
//!   works as root, where permission bits would not stop a write.
//! * The database's directory cannot be created (a regular file stands
//!   where it should be): the store cannot be opened at startup.
//!
//! In both, `/healthz` turns 503 `degraded` with the cause and
//! `permanence_records_healthy` drops to 0 while calls still flow; once the
//! store can be written again, the rows kept in memory are written and
//! both return to ok.

mod common;

use common::{field, sipp, Engine, RtpPeer, TempDir, TestConfig};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

const MARTIN: &str = "Diversion: <sip:+33450000001@carrier.example>;reason=unconditional";

/// Martin open at all hours, a short greeting, no triage; nobody
/// registered, so a call waits in queue until the caller hangs up.
fn config() -> TestConfig {
    let mut cfg = TestConfig::demo();
    cfg.always_open("martin");
    cfg.tone_prompt("martin", "greeting", 0.3, 440.0);
    cfg.practice("martin").remove("triage");
    cfg
}

fn get(engine: &Engine, path: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let url = format!("http://{}{}", engine.http, path);
    match agent.get(&url).call() {
        Ok(mut r) => (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        ),
        Err(e) => panic!("{url}: {e}"),
    }
}

fn healthz(engine: &Engine) -> (u16, Value) {
    let (code, body) = get(engine, "/healthz");
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("/healthz {body:?}: {e}"));
    (code, v)
}

/// Polls `/healthz` until its status code is `code`.
fn wait_health(engine: &Engine, code: u16, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (c, v) = healthz(engine);
        if c == code {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "/healthz still {c} {v} after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The value of an unlabelled series.
fn metric(engine: &Engine, name: &str) -> f64 {
    let (code, text) = get(engine, "/metrics");
    assert_eq!(code, 200);
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no series {name}"))
}

/// A forwarded call to Dr Martin, waiting in queue until the caller hangs
/// up after `hold_ms`; asserts the SIP dialog went through.
fn call(engine: &Engine, hold_ms: u64) {
    let rtp = RtpPeer::start(0, 0x55);
    let run = sipp(
        "carrier_call.xml",
        engine.sip,
        "127.0.0.1",
        &[
            ("called", "+33970000000".to_string()),
            ("hdr", MARTIN.to_string()),
            ("rtp_port", rtp.port.to_string()),
        ],
        &["-d", &hold_ms.to_string()],
        Duration::from_secs(30),
    );
    assert!(run.success, "call: {}\n{}", run.output, run.errors);
}

fn stored_calls(db: &Path) -> Vec<permanence_records::CallRecord> {
    permanence_records::RecordReader::open(db)
        .expect("records db")
        .calls(&permanence_records::CallFilter::latest(100))
        .expect("calls")
}

#[test]
fn a_locked_store_turns_healthz_degraded_while_calls_flow_then_recovers() {
    let engine = Engine::start(&config(), &[]);
    let db = engine.data.join("permanence.db");
    let (code, v) = healthz(&engine);
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        v,
        serde_json::json!({"status": "ok", "records": "ok", "draining": false})
    );
    assert_eq!(metric(&engine, "permanence_records_healthy"), 1.0);
    assert_eq!(
        metric(&engine, "permanence_records_write_failures_total"),
        0.0
    );

    // Another process takes the write lock and keeps it.
    let lock = rusqlite::Connection::open(&db).expect("second connection");
    lock.execute_batch("BEGIN IMMEDIATE").expect("write lock");

    call(&engine, 1500);
    let v = wait_health(&engine, 503, Duration::from_secs(20));
    assert_eq!(v["status"], "degraded", "{v}");
    assert_eq!(v["records"], "write failed: database is locked", "{v}");
    assert_eq!(v["draining"], false, "{v}");
    assert!(v["records_since"].is_string(), "{v}");
    assert!(v["records_backlog"].as_u64().is_some_and(|n| n >= 1), "{v}");
    let degraded = engine
        .wait_event("records.degraded", Duration::from_secs(2))
        .expect("records.degraded logged");
    assert_eq!(
        field(&degraded, "cause"),
        "write failed: database is locked"
    );
    assert_eq!(metric(&engine, "permanence_records_healthy"), 0.0);
    assert!(metric(&engine, "permanence_records_write_failures_total") >= 1.0);
    assert!(metric(&engine, "permanence_records_backlog") >= 1.0);

    // Calls still flow while the store fails.
    let started = Instant::now();
    call(&engine, 1500);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the call took {:?}",
        started.elapsed()
    );
    assert!(engine
        .wait_n("call.ended", 2, Duration::from_secs(5), |_| true)
        .is_some());
    let (code, _) = healthz(&engine);
    assert_eq!(code, 503, "still degraded while the lock is held");
    assert!(stored_calls(&db).is_empty(), "nothing written while locked");

    // The lock goes: the kept rows are written, health returns to ok.
    lock.execute_batch("COMMIT").expect("release");
    drop(lock);
    let v = wait_health(&engine, 200, Duration::from_secs(30));
    assert_eq!(
        v,
        serde_json::json!({"status": "ok", "records": "ok", "draining": false})
    );
    assert!(engine
        .wait_event("records.recovered", Duration::from_secs(2))
        .is_some());
    assert_eq!(metric(&engine, "permanence_records_healthy"), 1.0);
    // Rows of the second call may still wait for their batch (200 ms).
    let deadline = Instant::now() + Duration::from_secs(3);
    while metric(&engine, "permanence_records_backlog") > 0.0 {
        assert!(Instant::now() < deadline, "backlog not written");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(metric(&engine, "permanence_records_dropped_total"), 0.0);
    let calls = stored_calls(&db);
    assert_eq!(calls.len(), 2, "both calls' records were kept and written");
    for c in &calls {
        assert_eq!(c.practice_id, "martin");
        assert_eq!(c.outcome.as_str(), "abandoned");
    }
}

#[test]
fn a_store_that_cannot_open_at_startup_is_degraded_and_opened_later() {
    let place = TempDir::new("records-blocked");
    let blocker = place.path().join("data");
    std::fs::write(&blocker, b"a file where the data directory should be").expect("blocker");
    let db = blocker.join("permanence.db");
    let mut cfg = config();
    cfg.records_path = Some(db.clone());
    let engine = Engine::start(&cfg, &[]);

    let v = wait_health(&engine, 503, Duration::from_secs(5));
    assert_eq!(v["status"], "degraded", "{v}");
    let cause = v["records"].as_str().unwrap_or("");
    assert!(cause.starts_with("open failed: "), "{v}");
    assert!(cause.contains(&blocker.display().to_string()), "{v}");
    assert_eq!(metric(&engine, "permanence_records_healthy"), 0.0);
    assert!(engine.events("records.open").is_empty());

    // The engine serves calls meanwhile, and keeps their records.
    call(&engine, 1000);
    assert!(engine
        .wait_event("call.ended", Duration::from_secs(5))
        .is_some());
    let failures = metric(&engine, "permanence_records_write_failures_total");
    assert!(failures >= 1.0);

    // The directory can be created now: the next retry opens the store.
    std::fs::remove_file(&blocker).expect("remove blocker");
    wait_health(&engine, 200, Duration::from_secs(40));
    assert_eq!(metric(&engine, "permanence_records_healthy"), 1.0);
    let calls = stored_calls(&db);
    assert_eq!(calls.len(), 1, "the call kept in memory was written");
}
