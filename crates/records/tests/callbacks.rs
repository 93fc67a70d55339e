//! Callback requests: storage, listing, handling, retention, clear numbers
//! and the schema migration that introduced them.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::*;
use permanence_records::{
    hash_caller, CallFilter, CallbackStatus, Clock, Outcome, Purged, QueueEventKind, RecordReader,
    Recorder, RecordsError, StoredCallback,
};
use serde_json::json;

/// A clock the test moves by hand.
fn manual_clock(start: DateTime<Utc>) -> (Clock, Arc<AtomicI64>) {
    let micros = Arc::new(AtomicI64::new(start.timestamp_micros()));
    let m = micros.clone();
    let clock: Clock = Arc::new(move || {
        DateTime::from_timestamp_micros(m.load(Ordering::SeqCst)).unwrap_or_default()
    });
    (clock, micros)
}

fn ids(list: &[StoredCallback]) -> Vec<&str> {
    list.iter().map(|c| c.request.call_id.as_str()).collect()
}

fn file_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        all.extend(std::fs::read(entry.expect("entry").path()).expect("read file"));
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn callbacks_round_trip_newest_first() {
    let dir = TempDir::new("cb-roundtrip");
    let rec = Recorder::open(config(dir.db())).expect("open");
    let h = rec.handle();
    let a = callback("c1", "tilleuls", t0(), "+33612345678");
    let b = callback("c2", "caron", t0() + secs(30), "+33698765432");
    // Same instant as `b`: the later row comes first.
    let c = callback("c3", "tilleuls", t0() + secs(30), "0612345678");
    assert!(h.record_callback(a.clone()));
    assert!(h.record_call(minimal_call("c1", "tilleuls", t0(), Outcome::Overflowed)));
    assert!(h.record_callback(b.clone()));
    assert!(h.record_callback(c.clone()));
    h.flush().expect("flush");
    assert_eq!(h.stats().written, 4, "callbacks count as written rows");

    let r = rec.reader().expect("reader");
    let all = r.callbacks(None, false, 10).expect("callbacks");
    assert_eq!(
        all.iter().map(|s| s.request.clone()).collect::<Vec<_>>(),
        vec![c.clone(), b.clone(), a.clone()]
    );
    for s in &all {
        assert_eq!(s.status, CallbackStatus::Pending);
        assert_eq!((s.handled_at, s.handled_by.as_deref()), (None, None));
    }
    let mut row_ids: Vec<i64> = all.iter().map(|s| s.id).collect();
    row_ids.sort_unstable();
    row_ids.dedup();
    assert_eq!(row_ids.len(), 3, "distinct ids");
    assert_eq!(ids(&r.callbacks(None, false, 2).expect("cb")), ["c3", "c2"]);
    assert!(r.callbacks(None, false, 0).expect("cb").is_empty());
    assert_eq!(
        ids(&r.callbacks(Some("tilleuls"), false, 10).expect("cb")),
        ["c3", "c1"]
    );
    assert!(r.callbacks(Some("nope"), false, 10).expect("cb").is_empty());
    // The call tables are untouched by callbacks.
    assert_eq!(r.row_counts().expect("n"), (1, 0));

    // Serde round trip of the public types.
    let json = serde_json::to_string(&all[0]).expect("serialize");
    assert!(json.contains("\"status\":\"pending\""), "{json}");
    let back: StoredCallback = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back, all[0]);

    rec.shutdown().expect("shutdown");
    let r = RecordReader::open(dir.db()).expect("reopen");
    assert_eq!(r.callbacks(None, false, 10).expect("cb"), all);
}

#[test]
fn pending_filter_and_marking_handled() {
    let dir = TempDir::new("cb-handled");
    let rec = Recorder::open(config(dir.db())).expect("open");
    let h = rec.handle();
    for (i, practice) in ["tilleuls", "tilleuls", "caron", "tilleuls"]
        .iter()
        .enumerate()
    {
        let i = i as i64;
        h.record_callback(callback(
            &format!("c{i}"),
            practice,
            t0() + secs(i),
            "+33612345678",
        ));
    }
    h.flush().expect("flush");
    let r = rec.reader().expect("reader");
    let all = r.callbacks(None, false, 10).expect("cb");
    assert_eq!(ids(&all), ["c3", "c2", "c1", "c0"]);
    let c1 = all[2].id;

    let at = t0() + secs(600);
    assert!(h.mark_callback_handled(c1, "claire", at).expect("mark"));
    // Twice: nothing pending any more, the first handling is kept.
    assert!(!h
        .mark_callback_handled(c1, "marc", at + secs(60))
        .expect("mark again"));
    // Unknown id.
    assert!(!h
        .mark_callback_handled(i64::MAX, "claire", at)
        .expect("mark unknown"));

    let all = r.callbacks(None, false, 10).expect("cb");
    assert_eq!(
        ids(&all),
        ["c3", "c2", "c1", "c0"],
        "handled ones still listed"
    );
    let handled = &all[2];
    assert_eq!(handled.id, c1);
    assert_eq!(handled.status, CallbackStatus::Handled);
    assert_eq!(handled.handled_at, Some(at));
    assert_eq!(handled.handled_by.as_deref(), Some("claire"));
    assert!(all
        .iter()
        .filter(|s| s.id != c1)
        .all(|s| s.status == CallbackStatus::Pending && s.handled_at.is_none()));

    assert_eq!(
        ids(&r.callbacks(None, true, 10).expect("cb")),
        ["c3", "c2", "c0"]
    );
    assert_eq!(
        ids(&r.callbacks(Some("tilleuls"), true, 10).expect("cb")),
        ["c3", "c0"]
    );
    assert_eq!(
        ids(&r.callbacks(Some("tilleuls"), true, 1).expect("cb")),
        ["c3"]
    );
    assert_eq!(
        ids(&r.callbacks(Some("caron"), true, 10).expect("cb")),
        ["c2"]
    );
    assert_eq!(
        ids(&r.callbacks(Some("tilleuls"), false, 10).expect("cb")),
        ["c3", "c1", "c0"]
    );

    rec.shutdown().expect("shutdown");
    assert!(matches!(
        h.mark_callback_handled(all[0].id, "claire", at),
        Err(RecordsError::WriterGone)
    ));
}

#[test]
fn marking_commits_requests_queued_before_it() {
    let dir = TempDir::new("cb-mark-order");
    let mut cfg = config(dir.db());
    // Nothing is committed by size or age during the test.
    cfg.batch_size = 1_000;
    cfg.flush_interval = Duration::from_secs(3600);
    let rec = Recorder::open(cfg).expect("open");
    let h = rec.handle();
    assert!(h.record_callback(callback("c1", "p", t0(), "+33612345678")));
    // The first row of an empty table gets id 1.
    assert!(h
        .mark_callback_handled(1, "claire", t0() + secs(5))
        .expect("mark"));
    let r = rec.reader().expect("reader");
    let all = r.callbacks(None, false, 10).expect("cb");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].status, CallbackStatus::Handled);
}

#[test]
fn callback_numbers_stay_in_clear_when_callers_are_hashed() {
    let number = "+33698765432";
    for hash in [true, false] {
        let dir = TempDir::new("cb-clear");
        let mut cfg = config(dir.db());
        cfg.hash_callers = hash;
        cfg.salt = "s3cr3t-salt".into();
        let rec = Recorder::open(cfg).expect("open");
        let h = rec.handle();
        h.record_call(full_call("c1", "tilleuls", t0(), number));
        h.record_callback(callback("c1", "tilleuls", t0() + secs(40), number));
        h.flush().expect("flush");

        let r = rec.reader().expect("reader");
        let cb = r.callbacks(None, false, 10).expect("cb");
        assert_eq!(cb.len(), 1);
        assert_eq!(cb[0].request.number, number, "callback number in clear");
        let stored_caller = r.call("c1").expect("call").and_then(|c| c.caller);
        let hashed = hash_caller("s3cr3t-salt", number);
        if hash {
            assert_eq!(stored_caller.as_deref(), Some(hashed.as_str()));
        } else {
            assert_eq!(stored_caller.as_deref(), Some(number));
        }
        drop(r);
        rec.shutdown().expect("shutdown");

        // Straight from the file: the `calls` table holds the hash only.
        let c = rusqlite::Connection::open(dir.db()).expect("open raw");
        let clear_in_calls: i64 = c
            .query_row(
                "SELECT count(*) FROM calls WHERE caller = ?1",
                [number],
                |r| r.get(0),
            )
            .expect("query");
        assert_eq!(clear_in_calls, i64::from(!hash));
        let clear_in_callbacks: i64 = c
            .query_row(
                "SELECT count(*) FROM callbacks WHERE number = ?1",
                [number],
                |r| r.get(0),
            )
            .expect("query");
        assert_eq!(clear_in_callbacks, 1);
        drop(c);
        let bytes = file_bytes(dir.db().parent().expect("parent"));
        assert!(contains(&bytes, number.as_bytes()));
        assert_eq!(contains(&bytes, hashed.as_bytes()), hash);
        assert!(!contains(&bytes, b"s3cr3t-salt"));
    }
}

#[test]
fn retention_purges_callbacks_and_overwrites_their_numbers() {
    let dir = TempDir::new("cb-retention");
    let now = t0();
    let (clock, _) = manual_clock(now);
    let rec = Recorder::open_with_clock(config(dir.db()), clock).expect("open");
    let h = rec.handle();
    // Ages in days; the three oldest are handled (closed), the newest
    // pending. (An open request is never purged: see callback_states.rs.)
    for days in [40i64, 31, 29, 1] {
        h.record_callback(callback(
            &format!("c{days}"),
            "tilleuls",
            now - TimeDelta::days(days),
            &format!("+336110000{days:02}"),
        ));
    }
    h.flush().expect("flush");
    let r = rec.reader().expect("reader");
    for old in &r.callbacks(None, false, 10).expect("cb")[1..] {
        assert!(h
            .mark_callback_handled(old.id, "claire", now - TimeDelta::days(28))
            .expect("mark"));
    }

    // Explicit cutoff: strictly older closed requests go.
    assert_eq!(
        h.purge_older_than(now - TimeDelta::days(31))
            .expect("purge"),
        Purged {
            calls: 0,
            events: 0,
            callbacks: 1,
            outbound: 0
        }
    );
    assert_eq!(
        h.apply_retention().expect("retention"),
        Purged {
            calls: 0,
            events: 0,
            callbacks: 1,
            outbound: 0
        }
    );
    assert_eq!(
        ids(&r.callbacks(None, false, 10).expect("cb")),
        ["c1", "c29"]
    );
    assert_eq!(h.stats().purged_callbacks, 2);
    drop(r);
    rec.shutdown().expect("shutdown");

    // Reopened 5 days later: the startup purge takes the 29+5-day-old one.
    let (clock, _) = manual_clock(now + TimeDelta::days(5));
    let rec = Recorder::open_with_clock(config(dir.db()), clock).expect("reopen");
    assert_eq!(rec.stats().purged_callbacks, 1);
    let r = rec.reader().expect("reader");
    assert_eq!(ids(&r.callbacks(None, false, 10).expect("cb")), ["c1"]);
    drop(r);
    rec.shutdown().expect("shutdown");

    // secure_delete: purged numbers are overwritten in the file.
    let bytes = file_bytes(dir.db().parent().expect("parent"));
    assert!(contains(&bytes, b"+33611000001"), "kept number is there");
    for gone in ["+33611000040", "+33611000031", "+33611000029"] {
        assert!(!contains(&bytes, gone.as_bytes()), "{gone} lingers");
    }
}

/// What the previous build (schema version 1) created, verbatim.
const SCHEMA_V1_SQL: &str = include_str!("fixtures/schema_v1.sql");

#[test]
fn a_version_1_database_is_migrated_in_place() {
    let dir = TempDir::new("cb-migrate");
    let path = dir.path().join("records.db");

    // A database as the previous build left it, with one call and one event.
    {
        let c = rusqlite::Connection::open(&path).expect("create v1");
        let mode: String = c
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .expect("wal");
        assert_eq!(mode, "wal");
        c.execute_batch(SCHEMA_V1_SQL).expect("v1 schema");
        c.execute(
            "INSERT INTO schema_version (version, applied_at) \
             VALUES (1, '2025-01-06T09:00:00.000000Z')",
            [],
        )
        .expect("version row");
        c.execute(
            "INSERT INTO calls (call_id, sip_call_id, practice_id, trunk, caller, \
             caller_hashed, received_at, outcome, offers) \
             VALUES ('old', 'sip-old@trunk', 'tilleuls', 'ovh', '+33612345678', 0, \
             '2025-03-03T08:15:02.123456Z', 'answered', 0)",
            [],
        )
        .expect("v1 call");
        c.execute(
            "INSERT INTO queue_events (at, call_id, practice_id, kind, agent, detail) \
             VALUES ('2025-03-03T08:15:11.123456Z', 'old', 'tilleuls', 'entered', NULL, \
             '{\"position\":1}')",
            [],
        )
        .expect("v1 event");
    }
    let expected_call = permanence_records::CallRecord {
        caller: Some("+33612345678".into()),
        ..minimal_call("old", "tilleuls", t0(), Outcome::Answered)
    };
    let expected_event = event(
        t0() + secs(9),
        "old",
        "tilleuls",
        QueueEventKind::Entered,
        None,
        json!({"position": 1}),
    );

    // A reader of this build copes with the unmigrated file.
    let r = RecordReader::open(&path).expect("reader on v1");
    assert_eq!(r.call("old").expect("call"), Some(expected_call.clone()));
    assert!(r.callbacks(None, false, 10).expect("cb on v1").is_empty());
    drop(r);

    // Opening it for writing migrates it; the clock keeps the 2025 rows
    // inside retention.
    let (clock, _) = manual_clock(t0() + secs(3600));
    let rec = Recorder::open_with_clock(config(path.clone()), clock.clone()).expect("open v1");
    let h = rec.handle();
    let r = rec.reader().expect("reader");
    assert_eq!(r.call("old").expect("call"), Some(expected_call.clone()));
    assert_eq!(
        r.events_for_call("old").expect("events"),
        vec![expected_event.clone()]
    );
    assert!(r.callbacks(None, false, 10).expect("cb").is_empty());
    assert!(h.record_callback(callback("old", "tilleuls", t0() + secs(40), "+33612345678")));
    assert!(h.record_call(minimal_call(
        "new",
        "tilleuls",
        t0() + secs(60),
        Outcome::Closed
    )));
    h.flush().expect("flush");
    let cb = r.callbacks(Some("tilleuls"), true, 10).expect("cb");
    assert_eq!(cb.len(), 1);
    assert_eq!(cb[0].request.number, "+33612345678");
    assert_eq!(r.calls(&CallFilter::latest(10)).expect("calls").len(), 2);
    drop(r);
    rec.shutdown().expect("shutdown");

    let check_schema = |path: &std::path::Path| {
        let c = rusqlite::Connection::open(path).expect("raw");
        let versions: Vec<(i64, String)> = c
            .prepare("SELECT version, applied_at FROM schema_version ORDER BY version")
            .and_then(|mut st| {
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .expect("versions");
        assert_eq!(
            versions.iter().map(|v| v.0).collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5, 6, 7, 8]
        );
        assert_eq!(versions[0].1, "2025-01-06T09:00:00.000000Z", "v1 row kept");
        let columns: Vec<(String, String, bool, Option<String>)> = c
            .prepare("PRAGMA table_info(callbacks)")
            .and_then(|mut st| {
                st.query_map([], |r| Ok((r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .expect("columns");
        let names: Vec<&str> = columns.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "id",
                "requested_at",
                "call_id",
                "practice_id",
                "number",
                "status",
                "handled_at",
                "handled_by",
                "key",
                "origin",
                "joined_at",
                "priority",
                "triage_digit",
                "deadline_at",
                "attempts",
                "next_attempt_at",
                "last_attempt_at",
                "last_result",
                "agent",
                "completed_at",
                "outbound_id"
            ]
        );
        let status = &columns[5];
        assert_eq!(
            (status.1.as_str(), status.2, status.3.as_deref()),
            ("TEXT", true, Some("'pending'"))
        );
        let index_columns: Vec<String> = c
            .prepare("PRAGMA index_info(callbacks_practice_status_requested)")
            .and_then(|mut st| {
                st.query_map([], |r| r.get(2))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .expect("index");
        assert_eq!(index_columns, ["practice_id", "status", "requested_at"]);
    };
    check_schema(&path);

    // Opening again is a no-op for the schema and keeps every row.
    let rec = Recorder::open_with_clock(config(path.clone()), clock).expect("reopen");
    let r = rec.reader().expect("reader");
    assert_eq!(r.call("old").expect("call"), Some(expected_call));
    assert_eq!(r.row_counts().expect("n"), (2, 1));
    assert_eq!(r.callbacks(None, false, 10).expect("cb").len(), 1);
    drop(r);
    rec.shutdown().expect("shutdown");
    check_schema(&path);

    // A fresh database records both versions too.
    let fresh = dir.path().join("fresh.db");
    Recorder::open(config(fresh.clone()))
        .expect("fresh")
        .shutdown()
        .expect("shutdown");
    let c = rusqlite::Connection::open(&fresh).expect("raw");
    let n: i64 = c
        .query_row(
            "SELECT count(*) FROM schema_version WHERE version IN (1, 2)",
            [],
            |r| r.get(0),
        )
        .expect("versions");
    assert_eq!(n, 2);
}
