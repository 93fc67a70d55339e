//! Outbound calls: written at the start and replaced at the end, destination
//! hashed like a caller number, closed as interrupted after a crash, purged
//! with the calls, listed newest first, kept while the store is failing, and
//! the schema migration that introduced them.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::*;
use permanence_records::{
    hash_caller, CallFilter, Clock, OutboundOrigin, OutboundOutcome, OutboundRecord, Outcome,
    Purged, RecordReader, Recorder, RecordsConfig, RecordsState,
};

/// A clock the test moves by hand.
fn manual_clock(start: DateTime<Utc>) -> (Clock, Arc<AtomicI64>) {
    let micros = Arc::new(AtomicI64::new(start.timestamp_micros()));
    let m = micros.clone();
    let clock: Clock = Arc::new(move || {
        DateTime::from_timestamp_micros(m.load(Ordering::SeqCst)).unwrap_or_default()
    });
    (clock, micros)
}

fn file_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        all.extend(std::fs::read(entry.expect("entry").path()).expect("read file"));
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// An outbound call as the driver writes it when the agent's INVITE
/// arrives.
fn started(id: &str, practice: &str, at: DateTime<Utc>, destination: &str) -> OutboundRecord {
    OutboundRecord {
        id: id.to_owned(),
        sip_call_id: format!("out-{id}@softphone"),
        origin: OutboundOrigin::Agent,
        agent: "claire".to_owned(),
        practice_id: Some(practice.to_owned()),
        caller_id: Some("+33144556677".to_owned()),
        destination: Some(destination.to_owned()),
        destination_class: Some("mobile".to_owned()),
        started_at: at,
        answered_at: None,
        ended_at: None,
        outcome: OutboundOutcome::InProgress,
        refusal: None,
        status_code: None,
        talk_secs: None,
    }
}

/// The same call as the driver writes it when it ends, answered.
fn answered(first: &OutboundRecord) -> OutboundRecord {
    OutboundRecord {
        answered_at: Some(first.started_at + secs(6)),
        ended_at: Some(first.started_at + secs(126)),
        outcome: OutboundOutcome::Answered,
        talk_secs: Some(120.25),
        ..first.clone()
    }
}

fn ids(list: &[OutboundRecord]) -> Vec<&str> {
    list.iter().map(|o| o.id.as_str()).collect()
}

/// `(destination, destination_hashed, direction)` of every outbound row,
/// by id, read with a raw connection.
fn raw_rows(db: &Path) -> Vec<(String, Option<String>, bool, String)> {
    let c = rusqlite::Connection::open(db).expect("raw");
    c.prepare(
        "SELECT id, destination, destination_hashed, direction FROM outbound_calls ORDER BY id",
    )
    .and_then(|mut st| {
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<Vec<_>, _>>()
    })
    .expect("rows")
}

#[test]
fn written_at_start_then_at_end_is_one_row_with_the_final_values() {
    let dir = TempDir::new("out-start-end");
    let rec = Recorder::open(config(dir.db())).expect("open");
    let h = rec.handle();
    let first = started("o1", "tilleuls", t0(), "+33612345678");
    assert!(h.record_outbound(first.clone()));
    h.flush().expect("flush");
    let r = rec.reader().expect("reader");
    assert_eq!(
        r.outbound_calls(None, 10).expect("list"),
        vec![first.clone()]
    );

    let last = answered(&first);
    assert!(h.record_outbound(last.clone()));
    h.flush().expect("flush");
    assert_eq!(r.outbound_calls(None, 10).expect("list"), vec![last]);

    // Every optional field survives the round trip, a failure's status
    // code and a refusal without practice or destination too.
    let failed = OutboundRecord {
        origin: OutboundOrigin::Callback,
        ended_at: Some(t0() + secs(70)),
        outcome: OutboundOutcome::Failed,
        status_code: Some(503),
        ..started("o2", "tilleuls", t0() + secs(60), "15")
    };
    let refused = OutboundRecord {
        origin: OutboundOrigin::Transfer,
        practice_id: None,
        caller_id: None,
        destination: None,
        destination_class: None,
        ended_at: Some(t0() + secs(120)),
        outcome: OutboundOutcome::Refused,
        refusal: Some("agent not logged in".to_owned()),
        ..started("o3", "", t0() + secs(120), "")
    };
    assert!(h.record_outbound(failed.clone()));
    assert!(h.record_outbound(refused.clone()));
    h.flush().expect("flush");
    let list = r.outbound_calls(None, 10).expect("list");
    assert_eq!(list.len(), 3);
    assert_eq!(list[0], refused);
    assert_eq!(list[1], failed);
    assert_eq!(h.stats().written, 4);
    assert_eq!(
        r.row_counts().expect("n"),
        (0, 0),
        "no inbound call written"
    );
    assert!(raw_rows(&dir.db()).iter().all(|row| row.3 == "outbound"));
    drop(r);
    rec.shutdown().expect("shutdown");
}

#[test]
fn destinations_are_hashed_like_callers() {
    let number = "+33698765432";
    for hash in [true, false] {
        let dir = TempDir::new("out-hash");
        let mut cfg = config(dir.db());
        cfg.hash_callers = hash;
        cfg.salt = "s3cr3t-salt".into();
        let rec = Recorder::open(cfg).expect("open");
        let h = rec.handle();
        let first = started("o1", "tilleuls", t0(), number);
        h.record_outbound(first.clone());
        h.record_outbound(answered(&first));
        h.record_outbound(started("o2", "caron", t0() + secs(1), number));
        h.record_outbound(OutboundRecord {
            destination: None,
            outcome: OutboundOutcome::Refused,
            ..started("o3", "caron", t0() + secs(2), "")
        });
        h.flush().expect("flush");
        let r = rec.reader().expect("reader");
        let list = r.outbound_calls(None, 10).expect("list");
        assert_eq!(ids(&list), ["o3", "o2", "o1"]);
        let expected = hash_caller("s3cr3t-salt", number);
        assert_eq!(list[0].destination, None, "no destination stays none");
        if hash {
            assert_eq!(list[2].destination.as_deref(), Some(expected.as_str()));
            assert_eq!(list[1].destination, list[2].destination);
            // The lookup key of callers works for destinations.
            assert_eq!(h.caller_key(number), expected);
        } else {
            assert_eq!(list[2].destination.as_deref(), Some(number));
        }
        // The practice number presented and the class are not personal.
        assert_eq!(list[2].caller_id.as_deref(), Some("+33144556677"));
        assert_eq!(list[2].destination_class.as_deref(), Some("mobile"));
        let flags: Vec<(String, bool)> = raw_rows(&dir.db())
            .into_iter()
            .map(|row| (row.0, row.2))
            .collect();
        assert_eq!(
            flags,
            [
                ("o1".to_owned(), hash),
                ("o2".to_owned(), hash),
                ("o3".to_owned(), false)
            ]
        );
        drop(r);
        rec.shutdown().expect("shutdown");

        let bytes = file_bytes(dir.db().parent().expect("parent"));
        let found = contains(&bytes, number.as_bytes()) || contains(&bytes, b"33698765432");
        assert_eq!(found, !hash, "clear number in the file iff hashing is off");
        assert_eq!(contains(&bytes, expected.as_bytes()), hash);
        assert!(!contains(&bytes, b"s3cr3t-salt"));
    }
}

#[test]
fn outbound_calls_left_in_progress_are_closed_as_interrupted_at_reopen() {
    let dir = TempDir::new("out-interrupted");
    // A clock that keeps the rows inside retention at the reopen.
    let (clock, _) = manual_clock(t0() + secs(3600));
    let rec = Recorder::open_with_clock(config(dir.db()), clock.clone()).expect("open");
    let h = rec.handle();
    // Talking when the engine stopped: ends when it was answered.
    let talking = OutboundRecord {
        answered_at: Some(t0() + secs(6)),
        ..started("talking", "tilleuls", t0(), "+33612345678")
    };
    // Still ringing: ends when it started.
    let ringing = started("ringing", "tilleuls", t0() + secs(30), "+33612345679");
    let first = started("done", "tilleuls", t0() + secs(60), "+33612345670");
    let done = answered(&first);
    h.record_outbound(talking.clone());
    h.record_outbound(ringing.clone());
    h.record_outbound(first);
    h.record_outbound(done.clone());
    // An inbound call left open too: both kinds are closed and counted.
    h.record_call(minimal_call("in", "tilleuls", t0(), Outcome::InProgress));
    h.flush().expect("flush");
    // The process stops without the ends being written.
    rec.shutdown().expect("shutdown");

    let rec = Recorder::open_with_clock(config(dir.db()), clock).expect("reopen");
    let h = rec.handle();
    assert_eq!(h.close_interrupted().expect("close"), 3);
    assert_eq!(h.close_interrupted().expect("close"), 0, "nothing left");
    let r = rec.reader().expect("reader");
    let list = r.outbound_calls(None, 10).expect("list");
    assert_eq!(ids(&list), ["done", "ringing", "talking"]);
    assert_eq!(list[0], done, "a finished call is untouched");
    assert_eq!(
        list[1],
        OutboundRecord {
            outcome: OutboundOutcome::Interrupted,
            ended_at: Some(ringing.started_at),
            ..ringing
        }
    );
    assert_eq!(
        list[2],
        OutboundRecord {
            outcome: OutboundOutcome::Interrupted,
            ended_at: talking.answered_at,
            ..talking
        }
    );
    let calls = r.calls(&CallFilter::latest(10)).expect("calls");
    assert_eq!(calls[0].outcome, Outcome::Interrupted);
    drop(r);
    rec.shutdown().expect("shutdown");
}

#[test]
fn outbound_calls_are_purged_with_the_calls_and_overwritten() {
    let dir = TempDir::new("out-retention");
    let now = t0();
    let (clock, micros) = manual_clock(now);
    let rec = Recorder::open_with_clock(config(dir.db()), clock).expect("open");
    let h = rec.handle();
    for days in [40i64, 31, 29, 1] {
        let at = now - TimeDelta::days(days);
        h.record_outbound(started(
            &format!("o{days}"),
            "tilleuls",
            at,
            &format!("+336220000{days:02}"),
        ));
        h.record_call(minimal_call(
            &format!("c{days}"),
            "tilleuls",
            at,
            Outcome::Answered,
        ));
    }
    // One that outlives every purge below, to show numbers do reach the
    // file.
    h.record_outbound(started(
        "keep",
        "tilleuls",
        now + TimeDelta::days(1),
        "+33622000099",
    ));
    h.flush().expect("flush");

    // Explicit cutoff: strictly older rows go.
    assert_eq!(
        h.purge_older_than(now - TimeDelta::days(31))
            .expect("purge"),
        Purged {
            calls: 1,
            events: 0,
            callbacks: 0,
            outbound: 1
        }
    );
    // The configured retention (30 days), by the clock.
    assert_eq!(
        h.apply_retention().expect("retention"),
        Purged {
            calls: 1,
            events: 0,
            callbacks: 0,
            outbound: 1
        }
    );
    micros.fetch_add(
        TimeDelta::days(2).num_microseconds().unwrap_or(0),
        Ordering::SeqCst,
    );
    let purged = h.apply_retention().expect("retention");
    assert_eq!((purged.outbound, purged.total()), (1, 2));
    let r = rec.reader().expect("reader");
    assert_eq!(
        ids(&r.outbound_calls(None, 10).expect("list")),
        ["keep", "o1"]
    );
    assert_eq!(h.stats().purged_outbound, 3);
    assert_eq!(h.stats().purged_calls, 3);
    drop(r);
    rec.shutdown().expect("shutdown");

    // Reopened 30 days later: the startup purge takes o1.
    let (clock, _) = manual_clock(now + TimeDelta::days(30));
    let rec = Recorder::open_with_clock(config(dir.db()), clock).expect("reopen");
    assert_eq!(rec.stats().purged_outbound, 1);
    let r = rec.reader().expect("reader");
    assert_eq!(ids(&r.outbound_calls(None, 10).expect("list")), ["keep"]);
    drop(r);
    rec.shutdown().expect("shutdown");

    // secure_delete: purged destinations are overwritten in the file.
    let bytes = file_bytes(dir.db().parent().expect("parent"));
    assert!(contains(&bytes, b"+33622000099"), "kept number is there");
    for gone in [
        "+33622000040",
        "+33622000031",
        "+33622000029",
        "+33622000001",
    ] {
        assert!(!contains(&bytes, gone.as_bytes()), "{gone} lingers");
    }
}

#[test]
fn listed_newest_first_with_a_limit_and_per_practice() {
    let dir = TempDir::new("out-list");
    let rec = Recorder::open(config(dir.db())).expect("open");
    let h = rec.handle();
    // Written out of order; two share their start instant.
    for (id, practice, at) in [
        ("b", "tilleuls", 20),
        ("a", "caron", 10),
        ("d", "tilleuls", 40),
        ("c2", "caron", 30),
        ("c1", "tilleuls", 30),
    ] {
        h.record_outbound(started(id, practice, t0() + secs(at), "+33612345678"));
    }
    h.record_outbound(OutboundRecord {
        practice_id: None,
        outcome: OutboundOutcome::Refused,
        refusal: Some("unknown practice".to_owned()),
        ..started("x", "", t0() + secs(50), "+33612345678")
    });
    h.flush().expect("flush");
    let r = rec.reader().expect("reader");
    assert_eq!(
        ids(&r.outbound_calls(None, 100).expect("all")),
        ["x", "d", "c1", "c2", "b", "a"]
    );
    assert_eq!(
        ids(&r.outbound_calls(None, 3).expect("limit")),
        ["x", "d", "c1"]
    );
    assert!(r.outbound_calls(None, 0).expect("zero").is_empty());
    assert_eq!(
        ids(&r.outbound_calls(Some("tilleuls"), 100).expect("practice")),
        ["d", "c1", "b"]
    );
    assert_eq!(
        ids(&r.outbound_calls(Some("caron"), 1).expect("practice")),
        ["c2"]
    );
    assert!(r
        .outbound_calls(Some("nobody"), 10)
        .expect("none")
        .is_empty());
    drop(r);
    rec.shutdown().expect("shutdown");
}

#[test]
fn records_serialise_with_kebab_case_values() {
    let rec = OutboundRecord {
        outcome: OutboundOutcome::NoAnswer,
        ..started("o1", "tilleuls", t0(), "+33612345678")
    };
    let json = serde_json::to_value(&rec).expect("json");
    assert_eq!(json["outcome"], "no-answer");
    assert_eq!(json["origin"], "agent");
    assert_eq!(json["started_at"], "2025-03-03T08:15:02.123456Z");
    let back: OutboundRecord = serde_json::from_value(json).expect("back");
    assert_eq!(back, rec);
    assert_eq!(
        "in-progress".parse::<OutboundOutcome>().ok(),
        Some(OutboundOutcome::InProgress)
    );
    assert_eq!(
        "transfer".parse::<OutboundOrigin>().ok(),
        Some(OutboundOrigin::Transfer)
    );
}

#[test]
fn outbound_rows_are_kept_while_the_store_is_locked() {
    let dir = TempDir::new("out-locked");
    let mut cfg = config(dir.db());
    cfg.retention = RecordsConfig::days(100 * 365);
    cfg.busy_timeout = Duration::from_millis(50);
    cfg.retry_min = Duration::from_millis(20);
    cfg.retry_max = Duration::from_millis(200);
    cfg.flush_interval = Duration::from_millis(10);
    let rec = Recorder::open(cfg).expect("open");
    let h = rec.handle();

    let lock = rusqlite::Connection::open(dir.db()).expect("second connection");
    lock.execute_batch("BEGIN IMMEDIATE").expect("write lock");
    let first = started("o1", "tilleuls", t0(), "+33612345678");
    let last = answered(&first);
    assert!(h.record_outbound(first));
    assert!(h.record_outbound(last.clone()));
    assert!(eventually(|| {
        let h = h.health();
        h.state == RecordsState::Degraded && h.backlog == 2
    }));
    lock.execute_batch("COMMIT").expect("release");
    assert!(eventually(|| h.health().state == RecordsState::Ok));
    h.flush().expect("flush");
    let r = rec.reader().expect("reader");
    assert_eq!(r.outbound_calls(None, 10).expect("list"), vec![last]);
    drop(r);
    rec.shutdown().expect("shutdown");
}

/// What the previous build (schema version 4) created, verbatim.
const SCHEMA_V4_SQL: &str = include_str!("fixtures/schema_v4.sql");

/// `(type, name, sql)` of every table and index but `sqlite_*` ones.
fn schema_of(db: &Path) -> Vec<(String, String, Option<String>)> {
    let c = rusqlite::Connection::open(db).expect("raw");
    c.prepare(
        "SELECT type, name, sql FROM sqlite_master \
         WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
    )
    .and_then(|mut st| {
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<Vec<_>, _>>()
    })
    .expect("schema")
}

#[test]
fn a_version_4_database_is_migrated_in_place() {
    let dir = TempDir::new("out-migrate");
    let path = dir.path().join("records.db");

    // A database as the previous build left it, with a row in each table.
    {
        let c = rusqlite::Connection::open(&path).expect("create v4");
        let mode: String = c
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .expect("wal");
        assert_eq!(mode, "wal");
        c.execute_batch(SCHEMA_V4_SQL).expect("v4 schema");
        c.execute_batch(
            "INSERT INTO schema_version (version, applied_at) VALUES
                 (1, '2025-01-06T09:00:00.000000Z'),
                 (2, '2025-02-03T09:00:00.000000Z'),
                 (3, '2025-02-17T09:00:00.000000Z'),
                 (4, '2025-02-24T09:00:00.000000Z');
             INSERT INTO calls (call_id, sip_call_id, practice_id, trunk, caller,
                 caller_hashed, received_at, outcome, offers)
             VALUES ('old', 'sip-old@trunk', 'tilleuls', 'ovh', '+33612345678', 0,
                 '2025-03-03T08:15:02.123456Z', 'answered', 0);
             INSERT INTO queue_events (at, call_id, practice_id, kind, agent, detail)
             VALUES ('2025-03-03T08:15:11.123456Z', 'old', 'tilleuls', 'entered', NULL, '{}');
             INSERT INTO callbacks (requested_at, call_id, practice_id, number)
             VALUES ('2025-03-03T08:16:02.123456Z', 'old', 'tilleuls', '+33612345678');
             INSERT INTO agent_states (agent, logged_in, pause_reason, updated_at)
             VALUES ('claire', 1, NULL, '2025-03-03T08:00:00.000000Z');
             INSERT INTO audit (at, actor, role, action, target, source, outcome, detail)
             VALUES ('2025-03-03T08:00:00.000000Z', 'agent:claire', 'agent',
                 'agent.login', NULL, NULL, 'ok', NULL);",
        )
        .expect("v4 rows");
    }
    let expected_call = permanence_records::CallRecord {
        caller: Some("+33612345678".into()),
        ..minimal_call("old", "tilleuls", t0(), Outcome::Answered)
    };

    // A reader of this build copes with the unmigrated file.
    let r = RecordReader::open(&path).expect("reader on v4");
    assert!(r.outbound_calls(None, 10).expect("out on v4").is_empty());
    assert_eq!(r.call("old").expect("call"), Some(expected_call.clone()));
    drop(r);

    // Opening it for writing migrates it; the clock keeps the 2025 rows
    // inside retention.
    let (clock, _) = manual_clock(t0() + secs(3600));
    let rec = Recorder::open_with_clock(config(path.clone()), clock.clone()).expect("open v4");
    let h = rec.handle();
    let r = rec.reader().expect("reader");
    assert_eq!(r.call("old").expect("call"), Some(expected_call.clone()));
    assert_eq!(r.row_counts().expect("n"), (1, 1));
    assert_eq!(r.callbacks(None, false, 10).expect("cb").len(), 1);
    assert_eq!(r.agent_states().expect("states").len(), 1);
    assert_eq!(r.audit(None, 10).expect("audit").len(), 1);
    assert!(r.outbound_calls(None, 10).expect("out").is_empty());
    let out = started("o1", "tilleuls", t0() + secs(60), "+33612345678");
    assert!(h.record_outbound(out.clone()));
    h.flush().expect("flush");
    assert_eq!(r.outbound_calls(None, 10).expect("out"), vec![out.clone()]);
    drop(r);
    rec.shutdown().expect("shutdown");

    let versions = |path: &Path| -> Vec<(i64, String)> {
        let c = rusqlite::Connection::open(path).expect("raw");
        c.prepare("SELECT version, applied_at FROM schema_version ORDER BY version")
            .and_then(|mut st| {
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .expect("versions")
    };
    let applied = versions(&path);
    assert_eq!(
        applied.iter().map(|v| v.0).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6, 7, 8]
    );
    assert_eq!(applied[3].1, "2025-02-24T09:00:00.000000Z", "v4 row kept");

    let c = rusqlite::Connection::open(&path).expect("raw");
    let columns: Vec<(String, String, bool, Option<String>, bool)> = c
        .prepare("PRAGMA table_info(outbound_calls)")
        .and_then(|mut st| {
            st.query_map([], |r| {
                Ok((
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get::<_, i64>(5)? > 0,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()
        })
        .expect("columns");
    let described: Vec<(&str, &str, bool)> = columns
        .iter()
        .map(|c| (c.0.as_str(), c.1.as_str(), c.2))
        .collect();
    assert_eq!(
        described,
        [
            ("id", "TEXT", true),
            ("sip_call_id", "TEXT", true),
            ("direction", "TEXT", true),
            ("origin", "TEXT", true),
            ("agent", "TEXT", true),
            ("practice_id", "TEXT", false),
            ("caller_id", "TEXT", false),
            ("destination", "TEXT", false),
            ("destination_hashed", "INTEGER", true),
            ("destination_class", "TEXT", false),
            ("started_at", "TEXT", true),
            ("answered_at", "TEXT", false),
            ("ended_at", "TEXT", false),
            ("outcome", "TEXT", true),
            ("refusal", "TEXT", false),
            ("status_code", "INTEGER", false),
            ("talk_secs", "REAL", false),
        ]
    );
    assert!(columns[0].4, "id is the primary key");
    assert_eq!(columns[2].3.as_deref(), Some("'outbound'"));
    for (index, expected) in [
        (
            "outbound_calls_practice_started",
            vec!["practice_id", "started_at"],
        ),
        ("outbound_calls_started", vec!["started_at"]),
        ("outbound_calls_agent_started", vec!["agent", "started_at"]),
    ] {
        let cols: Vec<String> = c
            .prepare(&format!("PRAGMA index_info({index})"))
            .and_then(|mut st| {
                st.query_map([], |r| r.get(2))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .expect("index");
        assert_eq!(cols, expected, "{index}");
    }
    drop(c);

    // The migrated schema is exactly what a fresh database gets.
    let fresh = dir.path().join("fresh.db");
    Recorder::open(config(fresh.clone()))
        .expect("fresh")
        .shutdown()
        .expect("shutdown");
    assert_eq!(schema_of(&path), schema_of(&fresh));
    assert_eq!(
        versions(&fresh).iter().map(|v| v.0).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6, 7, 8]
    );

    // Opening again is a no-op for the schema and keeps every row.
    let rec = Recorder::open_with_clock(config(path.clone()), clock).expect("reopen");
    let r = rec.reader().expect("reader");
    assert_eq!(r.call("old").expect("call"), Some(expected_call));
    assert_eq!(r.outbound_calls(None, 10).expect("out"), vec![out]);
    drop(r);
    rec.shutdown().expect("shutdown");
    assert_eq!(versions(&path).len(), 8);
}
