//! Health of the records store under real failures: the writer keeps rows
//! in memory while the database cannot be written, retries with back-off,
//! reports `degraded` with the cause, and writes the kept rows once the
//! store recovers.
//!
//! The tests run as root, where permission bits (a read-only file, an
//! unwritable directory) do not stop a write. The failures used are ones
//! root cannot override, produced from outside the recorder (no fault
//! injection inside it):
//!
//! * another connection holding the database's write lock
//!   (`BEGIN IMMEDIATE`): SQLite answers "database is locked" once the busy
//!   timeout expires, as it would for a backup tool or a stuck `sqlite3`
//!   shell;
//! * the database file deleted while open (an operator's `rm`, a cleanup
//!   script): the writer would otherwise go on writing, successfully, into
//!   the unlinked file;
//! * the database's parent path being a regular file, and `/proc`, a file
//!   system that refuses new files even to root: the store cannot be opened;
//! * a table dropped, and a trigger refusing one row, from another
//!   connection: a broken schema (a store failure) and a row the database
//!   refuses for its content (not one).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use permanence_records::{
    Outcome, QueueEventKind, RecordReader, Recorder, RecordsConfig, RecordsError, RecordsState,
};
use serde_json::json;

/// Fast timings: 50 ms busy timeout, retries from 20 ms to 200 ms; a
/// retention long enough for the fixed dates of the rows (a reopen applies
/// retention, as an open does).
fn fast(path: std::path::PathBuf) -> RecordsConfig {
    let mut c = config(path);
    c.retention = RecordsConfig::days(100 * 365);
    c.busy_timeout = Duration::from_millis(50);
    c.retry_min = Duration::from_millis(20);
    c.retry_max = Duration::from_millis(200);
    c.flush_interval = Duration::from_millis(10);
    c
}

/// Another connection holding the write lock until dropped.
struct WriteLock(rusqlite::Connection);

impl WriteLock {
    fn take(db: &Path) -> Self {
        let c = rusqlite::Connection::open(db).expect("second connection");
        c.execute_batch("BEGIN IMMEDIATE")
            .expect("take the write lock");
        WriteLock(c)
    }

    fn release(self) {
        self.0
            .execute_batch("COMMIT")
            .expect("release the write lock");
    }
}

fn counts(db: &Path) -> (u64, u64) {
    RecordReader::open(db)
        .expect("reader")
        .row_counts()
        .expect("counts")
}

fn ev(call: &str, kind: QueueEventKind) -> permanence_records::QueueEvent {
    event(t0(), call, "p", kind, None, json!({}))
}

#[test]
fn a_locked_database_degrades_the_store_keeps_the_rows_and_recovers() {
    let dir = TempDir::new("health-locked");
    let rec = Recorder::open(fast(dir.db())).expect("open");
    let h = rec.handle();
    assert!(h.record_call(minimal_call("c0", "p", t0(), Outcome::Answered)));
    h.flush().expect("flush");
    let before = h.health();
    assert_eq!(before.state, RecordsState::Ok);
    assert_eq!(before.last_failure, None);

    let lock = WriteLock::take(&dir.db());
    let started = Instant::now();
    for i in 1..=5 {
        assert!(h.record_call(minimal_call(&format!("c{i}"), "p", t0(), Outcome::Answered)));
        assert!(h.record_event(ev(&format!("c{i}"), QueueEventKind::Entered)));
    }
    // The call path never waits for the failing store.
    assert!(started.elapsed() < Duration::from_millis(500));
    assert!(eventually(|| {
        let h = h.health();
        h.state == RecordsState::Degraded && h.backlog == 10
    }));
    let health = h.health();
    assert_eq!(
        health.problem(),
        Some("write failed: database is locked"),
        "{health:?}"
    );
    assert!(health.since >= before.since);
    assert!(h.stats().write_failures >= 1);
    // An explicit flush tries at once and says why it cannot.
    assert!(matches!(h.flush(), Err(RecordsError::Sqlite(_))));
    // Retries back off: over 300 ms, far fewer than one attempt per busy
    // timeout (50 ms) once the wait reached 200 ms.
    let f0 = h.stats().write_failures;
    std::thread::sleep(Duration::from_millis(600));
    let retries = h.stats().write_failures - f0;
    assert!((1..=6).contains(&retries), "{retries} retries in 600 ms");
    assert_eq!(counts(&dir.db()), (1, 0), "nothing written while locked");

    lock.release();
    assert!(eventually(|| h.health().state == RecordsState::Ok));
    let health = h.health();
    assert_eq!(health.backlog, 0);
    assert_eq!(health.problem(), None);
    assert!(
        health
            .last_failure
            .as_ref()
            .is_some_and(|f| f.cause.contains("database is locked")),
        "the last failure is kept after the recovery: {health:?}"
    );
    assert_eq!(counts(&dir.db()), (6, 5), "every kept row was written");
    let s = h.stats();
    assert_eq!((s.written, s.dropped, s.write_errors), (11, 0, 0));
    rec.shutdown().expect("shutdown");
}

#[test]
fn the_backlog_is_bounded_drops_are_counted_and_sends_never_block() {
    let dir = TempDir::new("health-backlog");
    let mut cfg = fast(dir.db());
    cfg.backlog_capacity = 10;
    cfg.batch_size = 5;
    let rec = Recorder::open(cfg).expect("open");
    let h = rec.handle();
    h.flush().expect("flush");
    let lock = WriteLock::take(&dir.db());
    let started = Instant::now();
    for i in 0..25 {
        assert!(h.record_call(minimal_call(&format!("c{i}"), "p", t0(), Outcome::Answered)));
    }
    assert!(started.elapsed() < Duration::from_millis(500));
    assert!(eventually(|| {
        let s = h.stats();
        s.backlog == 10 && s.dropped == 15
    }));
    assert_eq!(h.health().state, RecordsState::Degraded);
    lock.release();
    assert!(eventually(|| h.health().state == RecordsState::Ok));
    assert_eq!(counts(&dir.db()).0, 10, "the kept rows, the oldest ones");
    let s = h.stats();
    assert_eq!((s.written, s.dropped, s.backlog), (10, 15, 0));
    // The cap is per episode: once recovered, rows flow again.
    assert!(h.record_call(minimal_call("after", "p", t0(), Outcome::Answered)));
    h.flush().expect("flush");
    assert_eq!(counts(&dir.db()).0, 11);
    rec.shutdown().expect("shutdown");
}

#[test]
fn a_database_file_removed_while_open_is_noticed_and_created_again() {
    let dir = TempDir::new("health-removed");
    let rec = Recorder::open(fast(dir.db())).expect("open");
    let h = rec.handle();
    assert!(h.record_call(minimal_call("before", "p", t0(), Outcome::Answered)));
    h.flush().expect("flush");
    std::fs::remove_file(dir.db()).expect("rm the database file");

    assert!(h.record_call(minimal_call("after", "p", t0(), Outcome::Answered)));
    // The first attempt notices, reports and closes the connection.
    assert!(matches!(h.flush(), Err(RecordsError::FileReplaced(_))));
    let health = h.health();
    assert_eq!(health.state, RecordsState::Degraded);
    assert!(
        health.problem().is_some_and(|p| p.contains("was removed")),
        "{health:?}"
    );
    // The retry creates a new database at the path and writes the row.
    assert!(eventually(|| h.health().state == RecordsState::Ok));
    let r = RecordReader::open(dir.db()).expect("the new database");
    let ids: Vec<String> = r
        .calls(&permanence_records::CallFilter::latest(10))
        .expect("calls")
        .into_iter()
        .map(|c| c.call_id)
        .collect();
    assert_eq!(ids, ["after"]);
    assert_eq!(h.stats().write_failures, 1);
    rec.shutdown().expect("shutdown");
}

#[test]
fn a_store_that_cannot_be_opened_starts_degraded_and_opens_when_it_can() {
    let dir = TempDir::new("health-unopenable");
    let blocker = dir.path().join("data");
    std::fs::write(&blocker, b"a file where the data directory should be").expect("blocker");
    // The strict constructor refuses; the resilient one starts degraded.
    assert!(Recorder::open(fast(dir.db())).is_err());
    let rec = Recorder::start(fast(dir.db())).expect("start");
    let h = rec.handle();
    let health = h.health();
    assert_eq!(health.state, RecordsState::Degraded);
    assert!(
        health
            .problem()
            .is_some_and(|p| p.starts_with("open failed: records store")),
        "{health:?}"
    );
    assert!(h.record_call(minimal_call("c1", "p", t0(), Outcome::Answered)));
    assert!(h.record_callback(callback("c1", "p", t0(), "+33600000001")));
    assert!(eventually(|| h.stats().backlog == 2));
    assert!(matches!(
        h.purge_older_than(t0()),
        Err(RecordsError::Unavailable(_))
    ));
    let failures = h.stats().write_failures;
    std::thread::sleep(Duration::from_millis(500));
    assert!(h.stats().write_failures > failures, "the open is retried");
    assert_eq!(h.health().state, RecordsState::Degraded);

    std::fs::remove_file(&blocker).expect("remove the blocker");
    assert!(eventually(|| h.health().state == RecordsState::Ok));
    assert_eq!(counts(&dir.db()), (1, 0));
    let r = RecordReader::open(dir.db()).expect("reader");
    assert_eq!(r.callbacks(None, false, 10).expect("callbacks").len(), 1);
    rec.shutdown().expect("shutdown");

    // A read-only file system (procfs refuses new files, even to root).
    #[cfg(target_os = "linux")]
    {
        let rec = Recorder::start(fast("/proc/self/permanence-records.db".into())).expect("start");
        assert_eq!(rec.health().state, RecordsState::Degraded);
        assert!(rec
            .handle()
            .record_call(minimal_call("x", "p", t0(), Outcome::Answered)));
        // Shutting down while failing loses the kept row, and says so.
        let h = rec.handle();
        assert!(eventually(|| h.stats().backlog == 1));
        assert!(rec.shutdown().is_err());
        assert_eq!(h.stats().write_errors, 1);
    }
}

#[test]
fn a_broken_schema_degrades_the_store_until_it_is_repaired() {
    let dir = TempDir::new("health-schema");
    let rec = Recorder::open(fast(dir.db())).expect("open");
    let h = rec.handle();
    assert!(h.record_call(minimal_call("ok", "p", t0(), Outcome::Answered)));
    h.flush().expect("flush");
    let other = rusqlite::Connection::open(dir.db()).expect("other connection");
    let ddl: String = other
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'queue_events'",
            [],
            |r| r.get(0),
        )
        .expect("queue_events DDL");
    other
        .execute_batch("DROP TABLE queue_events")
        .expect("drop table");
    assert!(h.record_event(ev("ok", QueueEventKind::Entered)));
    assert!(h.record_call(minimal_call("ok2", "p", t0(), Outcome::Answered)));
    assert!(matches!(h.flush(), Err(RecordsError::Sqlite(_))));
    let health = h.health();
    assert!(
        health
            .problem()
            .is_some_and(|p| p.contains("no such table: queue_events")),
        "{health:?}"
    );
    // Nothing is thrown away: the rows wait for the table.
    assert_eq!(h.stats().write_errors, 0);
    other.execute_batch(&ddl).expect("table back");
    assert!(eventually(|| h.health().state == RecordsState::Ok));
    assert_eq!(counts(&dir.db()), (2, 1));
    rec.shutdown().expect("shutdown");
}

#[test]
fn a_row_the_database_refuses_is_dropped_alone_and_the_store_stays_ok() {
    let dir = TempDir::new("health-poison");
    let mut cfg = fast(dir.db());
    // The nine rows go in one transaction, at the explicit flush.
    cfg.batch_size = 10;
    cfg.flush_interval = Duration::from_secs(60);
    let rec = Recorder::open(cfg).expect("open");
    let h = rec.handle();
    let other = rusqlite::Connection::open(dir.db()).expect("other connection");
    other
        .execute_batch(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON queue_events \
             WHEN NEW.agent = 'poison' BEGIN SELECT RAISE(ABORT, 'poison row'); END;",
        )
        .expect("trigger");
    drop(other);
    for i in 0..4 {
        assert!(h.record_event(ev(&format!("c{i}"), QueueEventKind::Offered)));
    }
    let mut poison = ev("c4", QueueEventKind::Offered);
    poison.agent = Some("poison".into());
    assert!(h.record_event(poison));
    for i in 5..9 {
        assert!(h.record_event(ev(&format!("c{i}"), QueueEventKind::Offered)));
    }
    h.flush().expect("the other rows are written");
    let s = h.stats();
    assert_eq!((s.written, s.write_errors, s.write_failures), (8, 1, 0));
    assert_eq!(counts(&dir.db()), (0, 8));
    assert_eq!(h.health().state, RecordsState::Ok);
    rec.shutdown().expect("shutdown");
}

#[test]
fn shutdown_while_locked_loses_the_kept_rows_and_counts_them() {
    let dir = TempDir::new("health-shutdown");
    let rec = Recorder::open(fast(dir.db())).expect("open");
    let h = rec.handle();
    let lock = WriteLock::take(&dir.db());
    for i in 0..3 {
        assert!(h.record_call(minimal_call(&format!("c{i}"), "p", t0(), Outcome::Answered)));
    }
    assert!(eventually(|| h.health().state == RecordsState::Degraded));
    assert!(matches!(rec.shutdown(), Err(RecordsError::Sqlite(_))));
    let s = h.stats();
    assert_eq!((s.written, s.write_errors, s.backlog), (0, 3, 0));
    lock.release();
}

#[test]
fn invalid_retry_settings_are_refused() {
    let dir = TempDir::new("health-config");
    let invalid = |f: &dyn Fn(&mut RecordsConfig)| {
        let mut c = fast(dir.db());
        f(&mut c);
        matches!(
            Recorder::start(c).err(),
            Some(RecordsError::InvalidConfig(_))
        )
    };
    assert!(invalid(&|c| c.retry_min = Duration::ZERO));
    assert!(invalid(&|c| c.retry_max = Duration::from_millis(1)));
    assert!(!invalid(&|_| {}));
}
