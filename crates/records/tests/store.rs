//! Integration tests of the records store through its public API.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::*;
use permanence_records::{
    hash_caller, CallFilter, Clock, Outcome, Purged, QueueEvent, QueueEventKind, RecordReader,
    Recorder, RecordsConfig, RecordsError,
};
use serde_json::json;

#[test]
fn round_trip_of_calls_and_events() {
    let dir = TempDir::new("roundtrip");
    let rec = Recorder::open(config(dir.db())).expect("open");
    let h = rec.handle();

    let full = full_call("c1", "tilleuls", t0(), "+33612345678");
    let minimal = minimal_call("c2", "tilleuls", t0() + secs(60), Outcome::Closed);
    let abandoned = abandoned_call("c3", "caron", t0() + secs(120));
    let events = vec![
        event(
            t0() + secs(9),
            "c1",
            "tilleuls",
            QueueEventKind::Entered,
            None,
            json!({"position": 1}),
        ),
        event(
            t0() + secs(10),
            "c1",
            "tilleuls",
            QueueEventKind::Offered,
            Some("marc"),
            json!({"wait": 1.0}),
        ),
        event(
            t0() + secs(12),
            "c1",
            "tilleuls",
            QueueEventKind::Rona,
            Some("marc"),
            json!({"after_secs": 2}),
        ),
        event(
            t0() + secs(12),
            "c1",
            "tilleuls",
            QueueEventKind::Offered,
            Some("claire"),
            json!(null),
        ),
        event(
            t0() + secs(14),
            "c1",
            "tilleuls",
            QueueEventKind::Answered,
            Some("claire"),
            json!({"wait": 5.25}),
        ),
        event(
            t0() + secs(130),
            "c3",
            "caron",
            QueueEventKind::Abandoned,
            None,
            json!({"phase": "ringing"}),
        ),
        QueueEvent {
            at: t0() + secs(5),
            call_id: None,
            practice_id: None,
            kind: QueueEventKind::AgentState,
            agent: Some("claire".into()),
            detail: json!({"from": "paused", "to": "available"}),
        },
    ];
    assert!(h.record_call(full.clone()));
    assert!(h.record_call(minimal.clone()));
    assert!(h.record_call(abandoned.clone()));
    for e in &events {
        assert!(h.record_event(e.clone()));
    }
    h.flush().expect("flush");
    assert_eq!(h.stats().written, 10);
    assert_eq!(h.stats().dropped, 0);

    let r = rec.reader().expect("reader");
    assert_eq!(r.call("c1").expect("c1"), Some(full.clone()));
    assert_eq!(r.call("c2").expect("c2"), Some(minimal.clone()));
    assert_eq!(r.call("nope").expect("nope"), None);

    // Newest first, filters.
    let all = r.calls(&CallFilter::latest(10)).expect("calls");
    assert_eq!(all, vec![abandoned.clone(), minimal.clone(), full.clone()]);
    let tilleuls = r
        .calls(&CallFilter {
            practice_id: Some("tilleuls".into()),
            ..CallFilter::latest(10)
        })
        .expect("calls");
    assert_eq!(tilleuls, vec![minimal.clone(), full.clone()]);
    let recent = r
        .calls(&CallFilter {
            since: Some(t0() + secs(60)),
            ..CallFilter::latest(10)
        })
        .expect("calls");
    assert_eq!(recent, vec![abandoned.clone(), minimal.clone()]);
    assert_eq!(
        r.calls(&CallFilter::latest(1)).expect("calls"),
        vec![abandoned.clone()]
    );
    assert!(r.calls(&CallFilter::latest(0)).expect("calls").is_empty());
    let by_caller = r
        .calls(&CallFilter {
            caller: Some(h.caller_key("+33612345678")),
            ..CallFilter::latest(10)
        })
        .expect("calls");
    assert_eq!(by_caller, vec![full.clone()]);

    // Events: per call in time order (insertion order on ties), log paging.
    let c1 = r.events_for_call("c1").expect("events");
    assert_eq!(c1, events[..5].to_vec());
    let log = r.events(None, 100).expect("events");
    assert_eq!(log.len(), 7);
    assert_eq!(log[0], events[6], "agent_state at t0+5 comes first");
    let page = r.events(Some(t0() + secs(12)), 2).expect("events");
    assert_eq!(page, vec![events[2].clone(), events[3].clone()]);

    // Counts.
    let counts = r.counts_by_outcome(None, None).expect("counts");
    assert_eq!(counts.get(&Outcome::Answered), Some(&1));
    assert_eq!(counts.get(&Outcome::Closed), Some(&1));
    assert_eq!(counts.get(&Outcome::Abandoned), Some(&1));
    assert_eq!(counts.len(), 3);
    let counts = r
        .counts_by_outcome(Some("tilleuls"), Some(t0() + secs(1)))
        .expect("counts");
    assert_eq!(
        counts.into_iter().collect::<Vec<_>>(),
        vec![(Outcome::Closed, 1)]
    );

    rec.shutdown().expect("shutdown");
    // Still readable after a clean shutdown (WAL checkpointed and removed).
    let r = RecordReader::open(dir.db()).expect("reopen reader");
    assert_eq!(r.row_counts().expect("counts"), (3, 7));
}

#[test]
fn writing_a_call_id_again_replaces_the_record() {
    let dir = TempDir::new("upsert");
    let rec = Recorder::open(config(dir.db())).expect("open");
    let h = rec.handle();
    let provisional = minimal_call("c1", "tilleuls", t0(), Outcome::Failed);
    let final_ = full_call("c1", "tilleuls", t0(), "+33612345678");
    h.record_call(provisional);
    h.record_call(final_.clone());
    h.flush().expect("flush");
    let r = rec.reader().expect("reader");
    assert_eq!(
        r.calls(&CallFilter::latest(10)).expect("calls"),
        vec![final_]
    );
}

fn file_bytes(dir: &std::path::Path) -> Vec<u8> {
    // The database and any -wal/-shm beside it.
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        all.extend(std::fs::read(&path).expect("read file"));
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn hashed_callers_never_reach_the_file() {
    let number = "+33698765432";
    for hash in [true, false] {
        let dir = TempDir::new("hash");
        let mut cfg = config(dir.db());
        cfg.hash_callers = hash;
        cfg.salt = "s3cr3t-salt".into();
        let rec = Recorder::open(cfg).expect("open");
        let h = rec.handle();
        h.record_call(full_call("c1", "tilleuls", t0(), number));
        h.record_call(full_call("c2", "caron", t0() + secs(1), number));
        h.record_call(minimal_call(
            "c3",
            "caron",
            t0() + secs(2),
            Outcome::Rejected,
        ));
        h.flush().expect("flush");
        let r = rec.reader().expect("reader");
        let calls = r.calls(&CallFilter::latest(10)).expect("calls");
        let c1 = calls.iter().find(|c| c.call_id == "c1").expect("c1");
        let c2 = calls.iter().find(|c| c.call_id == "c2").expect("c2");
        let c3 = calls.iter().find(|c| c.call_id == "c3").expect("c3");
        assert_eq!(c3.caller, None, "anonymous stays anonymous");
        let expected = hash_caller("s3cr3t-salt", number);
        assert_eq!(expected.len(), 64);
        if hash {
            assert_eq!(c1.caller.as_deref(), Some(expected.as_str()));
            assert_eq!(c1.caller, c2.caller, "same number, same hash");
            assert_eq!(h.caller_key(number), expected);
        } else {
            assert_eq!(c1.caller.as_deref(), Some(number));
            assert_eq!(h.caller_key(number), number);
        }
        drop(r);
        rec.shutdown().expect("shutdown");

        let bytes = file_bytes(dir.db().parent().expect("parent"));
        // The digits without the `+` too, in case of any normalisation.
        let found = contains(&bytes, number.as_bytes()) || contains(&bytes, b"33698765432");
        assert_eq!(found, !hash, "clear number in the file iff hashing is off");
        assert_eq!(contains(&bytes, expected.as_bytes()), hash);
        assert!(
            !contains(&bytes, b"s3cr3t-salt"),
            "the salt is never stored"
        );
    }
    // Different salts give different hashes; the hash is sha256(salt||number).
    assert_ne!(hash_caller("a", number), hash_caller("b", number));
    assert_eq!(
        hash_caller("", "abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(hash_caller("ab", "c"), hash_caller("", "abc"));
}

/// A clock the test moves by hand.
fn manual_clock(start: DateTime<Utc>) -> (Clock, Arc<AtomicI64>) {
    let micros = Arc::new(AtomicI64::new(start.timestamp_micros()));
    let m = micros.clone();
    let clock: Clock = Arc::new(move || {
        DateTime::from_timestamp_micros(m.load(Ordering::SeqCst)).unwrap_or_default()
    });
    (clock, micros)
}

fn write_aged_rows(h: &permanence_records::RecorderHandle, now: DateTime<Utc>) {
    for (i, days) in [40i64, 31, 29, 1].iter().enumerate() {
        let at = now - TimeDelta::days(*days);
        let id = format!("c{days}");
        h.record_call(minimal_call(&id, "tilleuls", at, Outcome::Answered));
        h.record_event(event(
            at,
            &id,
            "tilleuls",
            QueueEventKind::Entered,
            None,
            json!({"i": i}),
        ));
    }
}

#[test]
fn retention_purges_at_startup_with_the_injected_clock() {
    let dir = TempDir::new("retention-startup");
    let now = t0();
    let (clock, _) = manual_clock(now);
    let rec = Recorder::open_with_clock(config(dir.db()), clock).expect("open");
    write_aged_rows(&rec.handle(), now);
    rec.shutdown().expect("shutdown");
    assert_eq!(
        RecordReader::open(dir.db())
            .expect("r")
            .row_counts()
            .expect("n"),
        (4, 4)
    );

    // Reopened 5 days later: rows older than 30 days (40, 31 and 29+5 days)
    // go, the one from 1+5 days ago stays.
    let (clock, _) = manual_clock(now + TimeDelta::days(5));
    let rec = Recorder::open_with_clock(config(dir.db()), clock).expect("reopen");
    let stats = rec.stats();
    assert_eq!((stats.purged_calls, stats.purged_events), (3, 3));
    let r = rec.reader().expect("reader");
    let left: Vec<String> = r
        .calls(&CallFilter::latest(10))
        .expect("calls")
        .into_iter()
        .map(|c| c.call_id)
        .collect();
    assert_eq!(left, vec!["c1".to_string()]);
    assert_eq!(r.row_counts().expect("n"), (1, 1));
}

#[test]
fn explicit_and_clock_driven_purges() {
    let dir = TempDir::new("retention-explicit");
    let now = t0();
    let (clock, micros) = manual_clock(now);
    let rec = Recorder::open_with_clock(config(dir.db()), clock).expect("open");
    let h = rec.handle();
    write_aged_rows(&h, now);

    // Explicit cutoff: strictly older rows go (40 and 31 days).
    let purged = h
        .purge_older_than(now - TimeDelta::days(31))
        .expect("purge");
    assert_eq!(
        purged,
        Purged {
            calls: 1,
            events: 1,
            callbacks: 0,
            outbound: 0
        }
    );
    let purged = h
        .purge_older_than(now - TimeDelta::days(30))
        .expect("purge");
    assert_eq!(
        purged,
        Purged {
            calls: 1,
            events: 1,
            callbacks: 0,
            outbound: 0
        }
    );
    // Retention with the clock unchanged: nothing else is 30 days old.
    assert_eq!(h.apply_retention().expect("retention"), Purged::default());
    // Two days later, the 29-day-old rows are past retention.
    micros.fetch_add(
        TimeDelta::days(2).num_microseconds().unwrap_or(0),
        Ordering::SeqCst,
    );
    assert_eq!(
        h.apply_retention().expect("retention"),
        Purged {
            calls: 1,
            events: 1,
            callbacks: 0,
            outbound: 0
        }
    );
    let r = rec.reader().expect("reader");
    assert_eq!(r.row_counts().expect("n"), (1, 1));
    assert_eq!(h.stats().purged_calls, 3);
}

#[test]
fn writer_purges_periodically() {
    let dir = TempDir::new("retention-periodic");
    let now = t0();
    let (clock, micros) = manual_clock(now);
    let mut cfg = config(dir.db());
    cfg.purge_interval = Duration::from_millis(20);
    let rec = Recorder::open_with_clock(cfg, clock).expect("open");
    let h = rec.handle();
    h.record_call(minimal_call(
        "old",
        "tilleuls",
        now - TimeDelta::days(20),
        Outcome::Answered,
    ));
    h.flush().expect("flush");
    let r = rec.reader().expect("reader");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(r.row_counts().expect("n").0, 1, "not yet past retention");
    // Eleven days later the writer's own hourly-style purge removes it.
    micros.fetch_add(
        TimeDelta::days(11).num_microseconds().unwrap_or(0),
        Ordering::SeqCst,
    );
    assert!(eventually(|| r
        .row_counts()
        .map(|n| n.0 == 0)
        .unwrap_or(false)));
    assert_eq!(h.stats().purged_calls, 1);
}

#[test]
fn shutdown_commits_everything_accepted() {
    const N: usize = 5_000;
    for use_drop in [false, true] {
        let dir = TempDir::new("shutdown");
        let mut cfg = config(dir.db());
        // Nothing would be committed before shutdown without the drain.
        cfg.batch_size = 1_000_000;
        cfg.flush_interval = Duration::from_secs(3600);
        cfg.queue_capacity = N * 2;
        let rec = Recorder::open(cfg).expect("open");
        let h = rec.handle();
        for i in 0..N {
            assert!(h.record_call(minimal_call(&format!("c{i}"), "p", t0(), Outcome::Answered)));
            assert!(h.record_event(event(
                t0(),
                &format!("c{i}"),
                "p",
                QueueEventKind::Entered,
                None,
                json!({})
            )));
        }
        let r = rec.reader().expect("reader");
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(r.row_counts().expect("n"), (0, 0), "still batched");
        drop(r);
        if use_drop {
            drop(rec);
        } else {
            rec.shutdown().expect("shutdown");
        }
        assert_eq!(h.stats().written, 2 * N as u64);
        // After shutdown, handles refuse and count.
        assert!(!h.record_call(minimal_call("late", "p", t0(), Outcome::Answered)));
        assert_eq!(h.stats().dropped, 1);
        assert!(matches!(h.flush(), Err(RecordsError::WriterGone)));

        let r = RecordReader::open(dir.db()).expect("reopen");
        assert_eq!(r.row_counts().expect("n"), (N as u64, N as u64));
    }
}

#[test]
fn rows_are_committed_by_size_and_by_age() {
    let dir = TempDir::new("batching");
    let mut cfg = config(dir.db());
    cfg.batch_size = 10;
    cfg.flush_interval = Duration::from_secs(3600);
    let rec = Recorder::open(cfg).expect("open");
    let h = rec.handle();
    for i in 0..15 {
        h.record_call(minimal_call(&format!("c{i}"), "p", t0(), Outcome::Answered));
    }
    assert!(eventually(|| h.stats().written == 10));
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(h.stats().written, 10, "the last 5 wait for size or age");
    rec.shutdown().expect("shutdown");
    assert_eq!(h.stats().written, 15);

    let dir = TempDir::new("batching-age");
    let mut cfg = config(dir.db());
    cfg.flush_interval = Duration::from_millis(30);
    let rec = Recorder::open(cfg).expect("open");
    let h = rec.handle();
    h.record_call(minimal_call("c", "p", t0(), Outcome::Answered));
    let r = rec.reader().expect("reader");
    assert!(eventually(|| r
        .row_counts()
        .map(|n| n.0 == 1)
        .unwrap_or(false)));
}

#[test]
fn concurrent_producers_lose_nothing_when_there_is_room() {
    const THREADS: usize = 8;
    const PER: usize = 1_000;
    let dir = TempDir::new("concurrent");
    let mut cfg = config(dir.db());
    cfg.queue_capacity = THREADS * PER * 2;
    let rec = Recorder::open(cfg).expect("open");
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let h = rec.handle();
            s.spawn(move || {
                for i in 0..PER {
                    let id = format!("t{t}-{i}");
                    assert!(h.record_call(minimal_call(
                        &id,
                        &format!("p{t}"),
                        t0(),
                        Outcome::Answered
                    )));
                    assert!(h.record_event(event(
                        t0(),
                        &id,
                        "p",
                        QueueEventKind::Entered,
                        None,
                        json!({"i": i})
                    )));
                }
            });
        }
    });
    let h = rec.handle();
    rec.shutdown().expect("shutdown");
    let stats = h.stats();
    assert_eq!(
        (stats.written, stats.dropped, stats.write_errors),
        (2 * (THREADS * PER) as u64, 0, 0)
    );
    let r = RecordReader::open(dir.db()).expect("reader");
    assert_eq!(
        r.row_counts().expect("n"),
        ((THREADS * PER) as u64, (THREADS * PER) as u64)
    );
    let p3 = r
        .calls(&CallFilter {
            practice_id: Some("p3".into()),
            ..CallFilter::latest(10_000)
        })
        .expect("calls");
    assert_eq!(p3.len(), PER);
}

#[test]
fn concurrent_producers_against_a_tiny_channel_account_for_every_record() {
    const THREADS: usize = 6;
    const PER: usize = 2_000;
    let dir = TempDir::new("concurrent-tiny");
    let mut cfg = config(dir.db());
    cfg.queue_capacity = 2;
    cfg.batch_size = 1; // one transaction per row: the writer falls behind
    let rec = Recorder::open(cfg).expect("open");
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let h = rec.handle();
            s.spawn(move || {
                for i in 0..PER {
                    h.record_event(event(
                        t0(),
                        &format!("t{t}-{i}"),
                        "p",
                        QueueEventKind::Offered,
                        None,
                        json!({}),
                    ));
                }
            });
        }
    });
    let h = rec.handle();
    rec.shutdown().expect("shutdown");
    let stats = h.stats();
    assert_eq!(stats.written + stats.dropped, (THREADS * PER) as u64);
    assert_eq!(stats.write_errors, 0);
    let r = RecordReader::open(dir.db()).expect("reader");
    assert_eq!(r.row_counts().expect("n").1, stats.written);
}

#[test]
fn bad_paths_and_configs_are_errors_at_open() {
    let dir = TempDir::new("bad-open");

    // Parent "directory" is a regular file.
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").expect("write");
    let err = Recorder::open(config(file.join("records.db"))).err();
    assert!(matches!(err, Some(RecordsError::Io { .. })), "{err:?}");

    // The path is a directory.
    let err = Recorder::open(config(dir.path().to_path_buf())).err();
    assert!(matches!(err, Some(RecordsError::Sqlite(_))), "{err:?}");

    // Garbage where the database should be.
    let corrupt = dir.path().join("corrupt.db");
    std::fs::write(&corrupt, vec![0xA5u8; 8192]).expect("write");
    let err = Recorder::open(config(corrupt.clone())).err();
    assert!(matches!(err, Some(RecordsError::Sqlite(_))), "{err:?}");
    assert!(matches!(
        RecordReader::open(&corrupt).err(),
        Some(RecordsError::Sqlite(_))
    ));

    // A read-only filesystem (procfs refuses new files, even to root).
    #[cfg(target_os = "linux")]
    {
        let err = Recorder::open(config("/proc/self/permanence-records.db".into())).err();
        assert!(err.is_some(), "{err:?}");
    }

    // A database from a future version of this crate.
    let future = dir.path().join("future.db");
    Recorder::open(config(future.clone()))
        .expect("create")
        .shutdown()
        .expect("shutdown");
    let c = rusqlite::Connection::open(&future).expect("open");
    c.execute(
        "INSERT INTO schema_version (version, applied_at) VALUES (99, 'x')",
        [],
    )
    .expect("insert");
    drop(c);
    let err = Recorder::open(config(future.clone())).err();
    assert!(
        matches!(err, Some(RecordsError::UnsupportedSchema { found: 99, .. })),
        "{err:?}"
    );
    assert!(matches!(
        RecordReader::open(&future).err(),
        Some(RecordsError::UnsupportedSchema { .. })
    ));

    // A SQLite database that is not ours.
    let foreign = dir.path().join("foreign.db");
    rusqlite::Connection::open(&foreign)
        .expect("open")
        .execute_batch("CREATE TABLE t (x)")
        .expect("create");
    assert!(matches!(
        RecordReader::open(&foreign).err(),
        Some(RecordsError::Corrupt { .. })
    ));

    // Missing file for a reader.
    assert!(RecordReader::open(dir.path().join("missing.db")).is_err());

    // Invalid configurations.
    let invalid = |f: &dyn Fn(&mut RecordsConfig)| {
        let mut c = config(dir.path().join("ok.db"));
        f(&mut c);
        matches!(
            Recorder::open(c).err(),
            Some(RecordsError::InvalidConfig(_))
        )
    };
    assert!(invalid(&|c| c.queue_capacity = 0));
    assert!(invalid(&|c| c.batch_size = 0));
    assert!(invalid(&|c| c.retention = Duration::ZERO));
    assert!(invalid(&|c| c.purge_interval = Duration::ZERO));
    assert!(invalid(&|c| c.hash_callers = true));
    assert!(invalid(&|c| c.path = "".into()));
    assert!(!invalid(&|c| {
        c.hash_callers = true;
        c.salt = "x".into();
    }));
}

#[test]
fn the_salt_is_not_printed() {
    let mut c = RecordsConfig::new("x.db");
    c.salt = "very-secret".into();
    assert!(!format!("{c:?}").contains("very-secret"));
}

#[test]
fn purged_numbers_do_not_linger_in_the_file() {
    let number = "+33611223344";
    let dir = TempDir::new("secure-delete");
    let rec = Recorder::open(config(dir.db())).expect("open");
    let h = rec.handle();
    for i in 0..50 {
        h.record_call(full_call(
            &format!("old{i}"),
            "p",
            t0() - TimeDelta::days(60),
            number,
        ));
    }
    h.record_call(full_call("new", "p", t0(), "+33700000000"));
    h.flush().expect("flush");
    h.purge_older_than(t0() - TimeDelta::days(30))
        .expect("purge");
    rec.shutdown().expect("shutdown");
    let bytes = file_bytes(dir.db().parent().expect("parent"));
    assert!(contains(&bytes, b"+33700000000"), "kept row is there");
    assert!(
        !contains(&bytes, number.as_bytes()),
        "purged number was overwritten"
    );
    assert_eq!(
        RecordReader::open(dir.db())
            .expect("r")
            .row_counts()
            .expect("n"),
        (1, 0)
    );
}
