//! The callback lifecycle (schema version 6): states written by key, the
//! open requests read back in their original order (a `dialling` one as
//! pending), retention that never purges an open request, the admin
//! lists, the legacy `record_callback` path, and the migration from
//! version 5.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::*;
use permanence_records::{
    CallbackOrigin, CallbackResult, CallbackState, CallbackStatus, Clock, Purged, RecordReader,
    Recorder, RecordsConfig, RecordsState,
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

/// A recorder whose clock stands one hour after [`t0`], so that rows
/// around `t0` are inside retention.
fn open(db: &Path) -> Recorder {
    let (clock, _) = manual_clock(t0() + secs(3600));
    Recorder::open_with_clock(config(db.to_path_buf()), clock).expect("open")
}

/// A request as the engine writes it when the caller asks from the queue.
fn requested(key: &str, practice: &str, joined_at: DateTime<Utc>) -> CallbackState {
    CallbackState {
        key: key.to_owned(),
        origin: CallbackOrigin::Caller,
        call_id: format!("call-{key}"),
        practice_id: practice.to_owned(),
        number: "+33612345678".to_owned(),
        requested_at: joined_at + secs(90),
        joined_at,
        priority: 5,
        triage_digit: Some("2".to_owned()),
        deadline_at: joined_at + secs(90) + TimeDelta::minutes(60),
        status: CallbackStatus::Pending,
        attempts: 0,
        next_attempt_at: None,
        last_attempt_at: None,
        last_result: None,
        agent: None,
        completed_at: None,
        outbound_id: None,
    }
}

fn keys(list: &[CallbackState]) -> Vec<&str> {
    list.iter().map(|c| c.key.as_str()).collect()
}

/// Number of rows of `callbacks`, read with a raw connection.
fn raw_count(db: &Path) -> i64 {
    let c = rusqlite::Connection::open(db).expect("raw");
    c.query_row("SELECT count(*) FROM callbacks", [], |r| r.get(0))
        .expect("count")
}

#[test]
fn writing_a_key_again_replaces_the_whole_row() {
    let dir = TempDir::new("cbs-upsert");
    let mut cfg = config(dir.db());
    // Numbers of callbacks stay in clear even when callers are hashed.
    cfg.hash_callers = true;
    cfg.salt = "s3cr3t".into();
    let (clock, _) = manual_clock(t0() + secs(3600));
    let rec = Recorder::open_with_clock(cfg, clock).expect("open");
    let h = rec.handle();

    let first = requested("k1", "tilleuls", t0());
    let dialling = CallbackState {
        status: CallbackStatus::Dialling,
        attempts: 1,
        last_attempt_at: Some(t0() + secs(600)),
        agent: Some("claire".into()),
        ..first.clone()
    };
    let retry = CallbackState {
        status: CallbackStatus::Pending,
        next_attempt_at: Some(t0() + secs(1200)),
        last_result: Some(CallbackResult::NoAnswer),
        ..dialling.clone()
    };
    let done = CallbackState {
        status: CallbackStatus::Completed,
        attempts: 2,
        next_attempt_at: None,
        last_attempt_at: Some(t0() + secs(1300)),
        last_result: Some(CallbackResult::Answered),
        agent: Some("marc".into()),
        completed_at: Some(t0() + secs(1310)),
        outbound_id: Some("o42".into()),
        ..retry.clone()
    };
    for s in [&first, &dialling, &retry] {
        assert!(h.record_callback_state(s.clone()));
    }
    h.flush().expect("flush");
    let r = rec.reader().expect("reader");
    assert_eq!(
        r.callback_by_key("k1").expect("by key"),
        Some(retry.clone())
    );
    let id = r.callbacks(None, false, 10).expect("cb")[0].id;

    assert!(h.record_callback_state(done.clone()));
    h.flush().expect("flush");
    assert_eq!(h.stats().written, 4);
    assert_eq!(raw_count(&dir.db()), 1, "one row per key");
    assert_eq!(r.callback_by_key("k1").expect("by key"), Some(done.clone()));
    assert_eq!(r.callback_by_key("nope").expect("by key"), None);
    assert!(r.pending_callbacks().expect("pending").is_empty());

    // The legacy view of the same row: same id, final status, not
    // "handled" (handled_at/handled_by are for that status only).
    let legacy = r.callbacks(None, false, 10).expect("cb");
    assert_eq!(legacy.len(), 1);
    assert_eq!(legacy[0].id, id, "the row id survives the updates");
    assert_eq!(legacy[0].status, CallbackStatus::Completed);
    assert_eq!(legacy[0].request.number, "+33612345678", "in clear");
    assert_eq!(
        (legacy[0].handled_at, legacy[0].handled_by.as_deref()),
        (None, None)
    );

    // Marked handled by an operator through a state: the legacy columns
    // follow.
    let handled = CallbackState {
        status: CallbackStatus::Handled,
        agent: Some("secretariat".into()),
        completed_at: Some(t0() + secs(2000)),
        outbound_id: None,
        ..done.clone()
    };
    assert!(h.record_callback_state(handled.clone()));
    h.flush().expect("flush");
    let legacy = r.callbacks(None, false, 10).expect("cb");
    assert_eq!(legacy[0].status, CallbackStatus::Handled);
    assert_eq!(legacy[0].handled_at, Some(t0() + secs(2000)));
    assert_eq!(legacy[0].handled_by.as_deref(), Some("secretariat"));
    assert_eq!(r.callback_by_key("k1").expect("by key"), Some(handled));
    drop(r);
    rec.shutdown().expect("shutdown");
}

#[test]
fn open_requests_come_back_in_their_original_order() {
    let dir = TempDir::new("cbs-order");
    let rec = open(&dir.db());
    let h = rec.handle();
    // Written in an order unrelated to their places in the queue.
    let late = requested("late", "tilleuls", t0() + secs(300));
    let first = requested("first", "caron", t0());
    // Same place as `b-tie` but asked earlier: it comes first.
    let a_tie = CallbackState {
        requested_at: t0() + secs(100),
        ..requested("z-tie", "tilleuls", t0() + secs(60))
    };
    // Same place and same request time as `c-tie`: the key decides.
    let b_tie = CallbackState {
        requested_at: t0() + secs(200),
        ..requested("b-tie", "tilleuls", t0() + secs(60))
    };
    let c_tie = CallbackState {
        requested_at: t0() + secs(200),
        ..requested("c-tie", "caron", t0() + secs(60))
    };
    // An attempt was in progress when the engine died.
    let dialling = CallbackState {
        status: CallbackStatus::Dialling,
        attempts: 1,
        last_attempt_at: Some(t0() + secs(900)),
        agent: Some("claire".into()),
        ..requested("dialling", "caron", t0() + secs(120))
    };
    let closed: Vec<CallbackState> = [
        CallbackStatus::Completed,
        CallbackStatus::Failed,
        CallbackStatus::Cancelled,
        CallbackStatus::Handled,
    ]
    .into_iter()
    .map(|status| CallbackState {
        status,
        completed_at: Some(t0() + secs(1000)),
        ..requested(&format!("closed-{status}"), "tilleuls", t0() - secs(10))
    })
    .collect();
    for s in [&late, &c_tie, &dialling, &first, &b_tie, &a_tie]
        .into_iter()
        .chain(&closed)
    {
        assert!(h.record_callback_state(s.clone()));
    }
    h.flush().expect("flush");
    // A clean restart, or a crash: what is in the file is what counts.
    rec.shutdown().expect("shutdown");

    let rec = open(&dir.db());
    let r = rec.reader().expect("reader");
    let pending = r.pending_callbacks().expect("pending");
    assert_eq!(
        keys(&pending),
        ["first", "z-tie", "b-tie", "c-tie", "dialling", "late"]
    );
    // The interrupted attempt is pending again, everything else as stored.
    let back = &pending[4];
    assert_eq!(back.status, CallbackStatus::Pending);
    assert_eq!(
        back,
        &CallbackState {
            status: CallbackStatus::Pending,
            ..dialling.clone()
        }
    );
    assert_eq!(pending[0], first);
    assert_eq!(pending[5], late);
    // The admin view shows what is stored.
    assert_eq!(
        r.callback_by_key("dialling").expect("by key"),
        Some(dialling.clone())
    );
    let open_list = r
        .callbacks_list(
            None,
            &[CallbackStatus::Pending, CallbackStatus::Dialling],
            10,
        )
        .expect("list");
    assert_eq!(open_list.len(), 6);
    assert!(open_list.contains(&dialling));
    // The legacy list's "pending only" means still open.
    assert_eq!(r.callbacks(None, true, 10).expect("cb").len(), 6);
    assert_eq!(r.callbacks(None, false, 10).expect("cb").len(), 10);
    drop(r);
    rec.shutdown().expect("shutdown");
}

#[test]
fn retention_never_purges_an_open_request() {
    let dir = TempDir::new("cbs-retention");
    let now = t0();
    let (clock, _) = manual_clock(now);
    let rec = Recorder::open_with_clock(config(dir.db()), clock).expect("open");
    let h = rec.handle();
    let old = now - TimeDelta::days(400);
    let rows: Vec<CallbackState> = [
        ("old-pending", CallbackStatus::Pending, old),
        ("old-dialling", CallbackStatus::Dialling, old),
        ("old-completed", CallbackStatus::Completed, old),
        ("old-failed", CallbackStatus::Failed, old),
        ("old-cancelled", CallbackStatus::Cancelled, old),
        ("old-handled", CallbackStatus::Handled, old),
        (
            "young-completed",
            CallbackStatus::Completed,
            now - TimeDelta::days(2),
        ),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (key, status, at))| CallbackState {
        status,
        number: format!("+336110010{i}"),
        ..requested(key, "tilleuls", at)
    })
    .collect();
    for s in &rows {
        assert!(h.record_callback_state(s.clone()));
    }
    // The legacy path too: a 400-day-old pending request and a handled one.
    assert!(h.record_callback(callback("legacy-open", "tilleuls", old, "+33611999901")));
    assert!(h.record_callback(callback("legacy-done", "tilleuls", old, "+33611999902")));
    h.flush().expect("flush");
    let r = rec.reader().expect("reader");
    let done_id = r
        .callbacks(None, false, 10)
        .expect("cb")
        .iter()
        .find(|c| c.request.call_id == "legacy-done")
        .map(|c| c.id)
        .expect("legacy-done");
    assert!(h
        .mark_callback_handled(done_id, "claire", old + secs(60))
        .expect("mark"));

    assert_eq!(
        h.apply_retention().expect("retention"),
        Purged {
            calls: 0,
            events: 0,
            callbacks: 5,
            outbound: 0
        }
    );
    assert_eq!(h.stats().purged_callbacks, 5);
    let mut left: Vec<String> = r
        .callbacks_list(None, &[], 100)
        .expect("list")
        .into_iter()
        .map(|c| c.call_id)
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "call-old-dialling",
            "call-old-pending",
            "call-young-completed",
            "legacy-open"
        ]
    );
    assert_eq!(
        r.pending_callbacks()
            .expect("pending")
            .iter()
            .map(|c| c.call_id.as_str())
            .collect::<Vec<_>>(),
        // Same place for all; the legacy one asked first, then by key.
        ["legacy-open", "call-old-dialling", "call-old-pending"]
    );
    // An explicit cutoff in the future does not take them either.
    assert_eq!(
        h.purge_older_than(now + TimeDelta::days(1))
            .expect("purge")
            .callbacks,
        1,
        "only the young closed one"
    );
    drop(r);
    rec.shutdown().expect("shutdown");

    // Nor does the purge at start-up, years later.
    let (clock, _) = manual_clock(now + TimeDelta::days(3 * 365));
    let rec = Recorder::open_with_clock(config(dir.db()), clock).expect("reopen");
    assert_eq!(rec.stats().purged_callbacks, 0);
    let r = rec.reader().expect("reader");
    assert_eq!(r.pending_callbacks().expect("pending").len(), 3);
    drop(r);
    rec.shutdown().expect("shutdown");

    // secure_delete: the numbers of purged requests are overwritten.
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir.db().parent().expect("parent")).expect("dir") {
        bytes.extend(std::fs::read(entry.expect("entry").path()).expect("read"));
    }
    let has = |n: &str| bytes.windows(n.len()).any(|w| w == n.as_bytes());
    assert!(has("+33611999901"), "the open request's number is kept");
    assert!(!has("+33611999902"), "the purged request's number lingers");
    for s in &rows[2..] {
        assert!(!has(&s.number), "{} lingers", s.key);
    }
}

#[test]
fn lists_filter_by_practice_and_status_newest_first() {
    let dir = TempDir::new("cbs-list");
    let rec = open(&dir.db());
    let h = rec.handle();
    let states = [
        ("a", "tilleuls", CallbackStatus::Pending, 0),
        ("b", "caron", CallbackStatus::Completed, 10),
        ("c", "tilleuls", CallbackStatus::Failed, 20),
        ("d", "tilleuls", CallbackStatus::Dialling, 30),
        ("e", "caron", CallbackStatus::Cancelled, 40),
        // Same request time as `e`: the later row comes first.
        ("f", "tilleuls", CallbackStatus::Pending, 40),
    ];
    for (key, practice, status, at) in states {
        assert!(h.record_callback_state(CallbackState {
            status,
            requested_at: t0() + secs(at),
            ..requested(key, practice, t0())
        }));
    }
    h.flush().expect("flush");
    let r = rec.reader().expect("reader");
    let list = |practice: Option<&str>, statuses: &[CallbackStatus], limit: usize| {
        keys(&r.callbacks_list(practice, statuses, limit).expect("list"))
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(list(None, &[], 10), ["f", "e", "d", "c", "b", "a"]);
    assert_eq!(list(None, CallbackStatus::ALL, 10), list(None, &[], 10));
    assert_eq!(list(None, &[], 2), ["f", "e"]);
    assert!(list(None, &[], 0).is_empty());
    assert_eq!(list(Some("tilleuls"), &[], 10), ["f", "d", "c", "a"]);
    assert_eq!(list(Some("caron"), &[], 10), ["e", "b"]);
    assert!(list(Some("nope"), &[], 10).is_empty());
    assert_eq!(list(None, &[CallbackStatus::Pending], 10), ["f", "a"]);
    assert_eq!(
        list(
            Some("tilleuls"),
            &[CallbackStatus::Pending, CallbackStatus::Dialling],
            10
        ),
        ["f", "d", "a"]
    );
    assert_eq!(
        list(
            None,
            &[CallbackStatus::Completed, CallbackStatus::Cancelled],
            10
        ),
        ["e", "b"]
    );
    assert_eq!(
        list(Some("caron"), &[CallbackStatus::Failed], 10),
        Vec::<String>::new()
    );
    assert!(list(None, &[CallbackStatus::Handled], 10).is_empty());
    drop(r);
    rec.shutdown().expect("shutdown");
}

#[test]
fn record_callback_fills_the_lifecycle_columns() {
    let dir = TempDir::new("cbs-legacy");
    let rec = open(&dir.db());
    let h = rec.handle();
    let at = t0();
    // Twice the same request: two rows, two keys.
    assert!(h.record_callback(callback("c1", "tilleuls", at, "+33612345678")));
    assert!(h.record_callback(callback("c1", "tilleuls", at, "+33612345678")));
    assert!(h.record_callback(callback("c2", "caron", at + secs(5), "+33698765432")));
    h.flush().expect("flush");
    let r = rec.reader().expect("reader");
    let pending = r.pending_callbacks().expect("pending");
    assert_eq!(keys(&pending), ["legacy-1", "legacy-2", "legacy-3"]);
    let expected = CallbackState {
        key: "legacy-1".into(),
        origin: CallbackOrigin::Overflow,
        call_id: "c1".into(),
        practice_id: "tilleuls".into(),
        number: "+33612345678".into(),
        requested_at: at,
        joined_at: at,
        priority: 0,
        triage_digit: None,
        deadline_at: at + TimeDelta::minutes(60),
        status: CallbackStatus::Pending,
        attempts: 0,
        next_attempt_at: None,
        last_attempt_at: None,
        last_result: None,
        agent: None,
        completed_at: None,
        outbound_id: None,
    };
    assert_eq!(pending[0], expected);
    assert_eq!(
        pending[1],
        CallbackState {
            key: "legacy-2".into(),
            ..expected.clone()
        }
    );
    assert_eq!(
        pending[2].deadline_at,
        at + secs(5) + TimeDelta::minutes(60)
    );
    let ids: Vec<i64> = r
        .callbacks(None, false, 10)
        .expect("cb")
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, [3, 2, 1], "the key is `legacy-<row id>`");

    // The engine takes it over by key.
    let taken = CallbackState {
        status: CallbackStatus::Dialling,
        attempts: 1,
        agent: Some("claire".into()),
        ..expected.clone()
    };
    assert!(h.record_callback_state(taken.clone()));
    // The legacy marking: only while pending, and it closes the state.
    assert!(!h
        .mark_callback_handled(1, "marc", at)
        .expect("mark dialling"));
    assert!(h
        .mark_callback_handled(2, "marc", at + secs(60))
        .expect("mark"));
    assert_eq!(r.callback_by_key("legacy-1").expect("key"), Some(taken));
    let handled = r.callback_by_key("legacy-2").expect("key").expect("row");
    assert_eq!(handled.status, CallbackStatus::Handled);
    assert_eq!(handled.agent.as_deref(), Some("marc"));
    assert_eq!(handled.completed_at, Some(at + secs(60)));
    // A new request after that gets the next free key.
    assert!(h.record_callback(callback("c3", "caron", at + secs(9), "+33600000003")));
    h.flush().expect("flush");
    assert!(r.callback_by_key("legacy-4").expect("key").is_some());
    assert_eq!(h.stats().write_errors, 0);
    drop(r);
    rec.shutdown().expect("shutdown");
}

#[test]
fn callback_states_are_kept_while_the_store_is_locked() {
    let dir = TempDir::new("cbs-locked");
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
    let first = requested("k1", "tilleuls", t0());
    let last = CallbackState {
        status: CallbackStatus::Dialling,
        attempts: 1,
        ..first.clone()
    };
    assert!(h.record_callback_state(first));
    assert!(h.record_callback_state(last.clone()));
    assert!(eventually(|| {
        let h = h.health();
        h.state == RecordsState::Degraded && h.backlog == 2
    }));
    lock.execute_batch("COMMIT").expect("release");
    assert!(eventually(|| h.health().state == RecordsState::Ok));
    h.flush().expect("flush");
    let r = rec.reader().expect("reader");
    assert_eq!(r.callbacks_list(None, &[], 10).expect("list"), vec![last]);
    drop(r);
    rec.shutdown().expect("shutdown");
}

#[test]
fn states_serialise_with_kebab_case_values() {
    let s = CallbackState {
        status: CallbackStatus::Dialling,
        last_result: Some(CallbackResult::NoAnswer),
        ..requested("k1", "tilleuls", t0())
    };
    let json = serde_json::to_value(&s).expect("json");
    assert_eq!(json["origin"], "caller");
    assert_eq!(json["status"], "dialling");
    assert_eq!(json["last_result"], "no-answer");
    assert_eq!(json["joined_at"], "2025-03-03T08:15:02.123456Z");
    let back: CallbackState = serde_json::from_value(json).expect("back");
    assert_eq!(back, s);
    assert_eq!(
        "overflow".parse::<CallbackOrigin>().ok(),
        Some(CallbackOrigin::Overflow)
    );
    assert!("expired".parse::<CallbackStatus>().is_err());
}

/// What the previous build (schema version 5) created, verbatim.
const SCHEMA_V5_SQL: &str = include_str!("fixtures/schema_v5.sql");

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

fn versions(db: &Path) -> Vec<(i64, String)> {
    let c = rusqlite::Connection::open(db).expect("raw");
    c.prepare("SELECT version, applied_at FROM schema_version ORDER BY version")
        .and_then(|mut st| {
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()
        })
        .expect("versions")
}

#[test]
fn a_version_5_database_is_migrated_in_place() {
    let dir = TempDir::new("cbs-migrate");
    let path = dir.path().join("records.db");

    // A database as the previous build left it: callbacks pending and
    // handled (with gaps in the ids, one requested just before midnight),
    // and a row in the other tables.
    {
        let c = rusqlite::Connection::open(&path).expect("create v5");
        let mode: String = c
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .expect("wal");
        assert_eq!(mode, "wal");
        c.execute_batch(SCHEMA_V5_SQL).expect("v5 schema");
        c.execute_batch(
            "INSERT INTO schema_version (version, applied_at) VALUES
                 (1, '2025-01-06T09:00:00.000000Z'),
                 (2, '2025-02-03T09:00:00.000000Z'),
                 (3, '2025-02-17T09:00:00.000000Z'),
                 (4, '2025-02-24T09:00:00.000000Z'),
                 (5, '2025-03-01T09:00:00.000000Z');
             INSERT INTO calls (call_id, sip_call_id, practice_id, trunk, caller,
                 caller_hashed, received_at, outcome, offers)
             VALUES ('old', 'sip-old@trunk', 'tilleuls', 'ovh', '+33612345678', 0,
                 '2025-03-03T08:15:02.123456Z', 'overflowed', 0);
             INSERT INTO callbacks (id, requested_at, call_id, practice_id, number)
             VALUES (3, '2025-03-03T08:16:02.123456Z', 'old', 'tilleuls', '+33612345678');
             INSERT INTO callbacks (id, requested_at, call_id, practice_id, number, status,
                 handled_at, handled_by)
             VALUES (5, '2025-03-02T23:30:59.999999Z', 'older', 'caron', '+33698765432',
                 'handled', '2025-03-03T07:00:00.000000Z', 'claire');
             INSERT INTO callbacks (id, requested_at, call_id, practice_id, number)
             VALUES (7, '2025-03-02T22:00:00.000001Z', 'oldest', 'caron', '+33600000007');
             INSERT INTO outbound_calls (id, sip_call_id, origin, agent, destination,
                 destination_hashed, started_at, outcome)
             VALUES ('o1', 'out-o1', 'callback', 'claire', '+33698765432', 0,
                 '2025-03-03T06:59:00.000000Z', 'answered');",
        )
        .expect("v5 rows");
    }
    let at = |s: &str| -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("timestamp")
            .with_timezone(&Utc)
    };
    let legacy =
        |key: &str, call: &str, practice: &str, number: &str, requested: &str| CallbackState {
            key: key.into(),
            origin: CallbackOrigin::Overflow,
            call_id: call.into(),
            practice_id: practice.into(),
            number: number.into(),
            requested_at: at(requested),
            joined_at: at(requested),
            priority: 0,
            triage_digit: None,
            deadline_at: at(requested) + TimeDelta::minutes(60),
            status: CallbackStatus::Pending,
            attempts: 0,
            next_attempt_at: None,
            last_attempt_at: None,
            last_result: None,
            agent: None,
            completed_at: None,
            outbound_id: None,
        };
    let k3 = legacy(
        "legacy-3",
        "old",
        "tilleuls",
        "+33612345678",
        "2025-03-03T08:16:02.123456Z",
    );
    let k5 = CallbackState {
        status: CallbackStatus::Handled,
        agent: Some("claire".into()),
        completed_at: Some(at("2025-03-03T07:00:00.000000Z")),
        ..legacy(
            "legacy-5",
            "older",
            "caron",
            "+33698765432",
            "2025-03-02T23:30:59.999999Z",
        )
    };
    let k7 = legacy(
        "legacy-7",
        "oldest",
        "caron",
        "+33600000007",
        "2025-03-02T22:00:00.000001Z",
    );
    assert_eq!(
        k5.deadline_at,
        at("2025-03-03T00:30:59.999999Z"),
        "over midnight, microseconds kept"
    );

    // A reader of this build on the unmigrated file sees the requests as
    // the migration will make them.
    let r = RecordReader::open(&path).expect("reader on v5");
    assert_eq!(
        r.pending_callbacks().expect("pending on v5"),
        vec![k7.clone(), k3.clone()]
    );
    assert_eq!(
        r.callbacks_list(None, &[], 10).expect("list on v5"),
        vec![k3.clone(), k5.clone(), k7.clone()]
    );
    assert_eq!(
        r.callbacks_list(Some("caron"), &[CallbackStatus::Handled], 10)
            .expect("list on v5"),
        vec![k5.clone()]
    );
    assert_eq!(
        r.callback_by_key("legacy-5").expect("key"),
        Some(k5.clone())
    );
    assert_eq!(r.callback_by_key("legacy-4").expect("key"), None);
    let legacy_view = r.callbacks(None, false, 10).expect("cb on v5");
    drop(r);

    // Opening it for writing migrates it; the clock keeps the 2025 rows
    // inside retention.
    let (clock, _) = manual_clock(t0() + secs(3600));
    let rec = Recorder::open_with_clock(config(path.clone()), clock.clone()).expect("open v5");
    let h = rec.handle();
    let r = rec.reader().expect("reader");
    assert_eq!(
        r.pending_callbacks().expect("pending"),
        vec![k7.clone(), k3.clone()]
    );
    assert_eq!(
        r.callbacks_list(None, &[], 10).expect("list"),
        vec![k3.clone(), k5.clone(), k7.clone()]
    );
    assert_eq!(
        r.callback_by_key("legacy-5").expect("key"),
        Some(k5.clone())
    );
    assert_eq!(
        r.callbacks(None, false, 10).expect("cb"),
        legacy_view,
        "ids, statuses and handling kept"
    );
    assert_eq!(r.row_counts().expect("n"), (1, 0));
    assert_eq!(r.outbound_calls(None, 10).expect("out").len(), 1);

    // The engine takes a migrated request over by its key; a new legacy
    // request gets the next id.
    let taken = CallbackState {
        status: CallbackStatus::Completed,
        attempts: 1,
        last_result: Some(CallbackResult::Answered),
        agent: Some("marc".into()),
        completed_at: Some(t0() + secs(1800)),
        outbound_id: Some("o2".into()),
        ..k3.clone()
    };
    assert!(h.record_callback_state(taken.clone()));
    assert!(h.record_callback(callback("new", "tilleuls", t0() + secs(60), "+33600000008")));
    h.flush().expect("flush");
    assert_eq!(
        r.callback_by_key("legacy-3").expect("key"),
        Some(taken.clone())
    );
    assert_eq!(
        keys(&r.pending_callbacks().expect("pending")),
        ["legacy-7", "legacy-8"]
    );
    assert_eq!(raw_count(&path), 4);
    drop(r);
    rec.shutdown().expect("shutdown");

    let applied = versions(&path);
    assert_eq!(
        applied.iter().map(|v| v.0).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6, 7, 8]
    );
    assert_eq!(applied[4].1, "2025-03-01T09:00:00.000000Z", "v5 row kept");

    let c = rusqlite::Connection::open(&path).expect("raw");
    let columns: Vec<(String, String, bool, Option<String>)> = c
        .prepare("PRAGMA table_info(callbacks)")
        .and_then(|mut st| {
            st.query_map([], |r| Ok((r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
                .collect::<Result<Vec<_>, _>>()
        })
        .expect("columns");
    let described: Vec<(&str, &str, bool, Option<&str>)> = columns
        .iter()
        .map(|c| (c.0.as_str(), c.1.as_str(), c.2, c.3.as_deref()))
        .collect();
    assert_eq!(
        described,
        [
            ("id", "INTEGER", false, None),
            ("requested_at", "TEXT", true, None),
            ("call_id", "TEXT", true, None),
            ("practice_id", "TEXT", true, None),
            ("number", "TEXT", true, None),
            ("status", "TEXT", true, Some("'pending'")),
            ("handled_at", "TEXT", false, None),
            ("handled_by", "TEXT", false, None),
            ("key", "TEXT", true, None),
            ("origin", "TEXT", true, None),
            ("joined_at", "TEXT", true, None),
            ("priority", "INTEGER", true, Some("0")),
            ("triage_digit", "TEXT", false, None),
            ("deadline_at", "TEXT", true, None),
            ("attempts", "INTEGER", true, Some("0")),
            ("next_attempt_at", "TEXT", false, None),
            ("last_attempt_at", "TEXT", false, None),
            ("last_result", "TEXT", false, None),
            ("agent", "TEXT", false, None),
            ("completed_at", "TEXT", false, None),
            ("outbound_id", "TEXT", false, None),
        ]
    );
    for (index, expected, unique) in [
        (
            "callbacks_practice_status_requested",
            vec!["practice_id", "status", "requested_at"],
            false,
        ),
        ("callbacks_requested", vec!["requested_at"], false),
        (
            "callbacks_status_practice_joined",
            vec!["status", "practice_id", "joined_at"],
            false,
        ),
        ("callbacks_key", vec!["key"], true),
    ] {
        let cols: Vec<String> = c
            .prepare(&format!("PRAGMA index_info({index})"))
            .and_then(|mut st| {
                st.query_map([], |r| r.get(2))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .expect("index");
        assert_eq!(cols, expected, "{index}");
        let is_unique: bool = c
            .query_row(
                "SELECT \"unique\" FROM pragma_index_list('callbacks') WHERE name = ?1",
                [index],
                |r| r.get(0),
            )
            .expect("index list");
        assert_eq!(is_unique, unique, "{index}");
    }
    // The key is unique, and required.
    assert!(c
        .execute(
            "INSERT INTO callbacks (requested_at, call_id, practice_id, number, key, origin, \
             joined_at, deadline_at) VALUES ('x', 'x', 'x', 'x', 'legacy-7', 'caller', 'x', 'x')",
            [],
        )
        .is_err());
    assert!(c
        .execute(
            "INSERT INTO callbacks (requested_at, call_id, practice_id, number, origin, \
             joined_at, deadline_at) VALUES ('x', 'x', 'x', 'x', 'caller', 'x', 'x')",
            [],
        )
        .is_err());
    // Nothing of the rebuild is left behind.
    let leftovers: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name LIKE 'callbacks_v5%'",
            [],
            |r| r.get(0),
        )
        .expect("leftovers");
    assert_eq!(leftovers, 0);
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
    assert_eq!(r.callback_by_key("legacy-3").expect("key"), Some(taken));
    assert_eq!(r.callbacks_list(None, &[], 10).expect("list").len(), 4);
    drop(r);
    rec.shutdown().expect("shutdown");
    assert_eq!(versions(&path).len(), 8);
}
