//! A practice's figures from the call records (`RecordReader::
//! practice_figures`), and the schema step to version 7 that gave every
//! abandon its phase.

mod common;

use std::path::Path;

use common::{minimal_call, secs, t0, TempDir};
use permanence_records::{
    AbandonPhase, CallRecord, Outcome, PracticeFigures, RecordReader, Recorder, RecordsConfig,
};

/// The records of 2025 stay within retention whenever the test runs.
fn config(path: std::path::PathBuf) -> RecordsConfig {
    let mut c = common::config(path);
    c.retention = RecordsConfig::days(36_500);
    c
}

fn abandoned(id: &str, at_s: i64, phase: AbandonPhase) -> CallRecord {
    CallRecord {
        abandon_phase: Some(phase),
        ..minimal_call(id, "tilleuls", t0() + secs(at_s), Outcome::Abandoned)
    }
}

fn overflowed(id: &str, at_s: i64, target: &str) -> CallRecord {
    CallRecord {
        overflow_target: Some(target.into()),
        ..minimal_call(id, "tilleuls", t0() + secs(at_s), Outcome::Overflowed)
    }
}

#[test]
fn figures_count_each_call_once_by_what_it_counts_as() {
    let dir = TempDir::new("figures");
    let rec = Recorder::open(config(dir.db())).expect("open");
    let h = rec.handle();
    let at = |s: i64| t0() + secs(s);
    for r in [
        abandoned("g", 1, AbandonPhase::Greeting),
        abandoned("t", 2, AbandonPhase::Triage),
        abandoned("q", 3, AbandonPhase::Queue),
        abandoned("r", 4, AbandonPhase::Ringing),
        abandoned("r2", 5, AbandonPhase::Ringing),
        minimal_call("a", "tilleuls", at(6), Outcome::Answered),
        overflowed("v", 7, "voicemail"),
        minimal_call("cb", "tilleuls", at(8), Outcome::CallbackRequested),
        minimal_call("f", "tilleuls", at(9), Outcome::Failed),
        minimal_call("c", "tilleuls", at(10), Outcome::Closed),
        minimal_call("u", "tilleuls", at(11), Outcome::Unanswered),
        minimal_call("x", "tilleuls", at(12), Outcome::Rejected),
        minimal_call("p", "tilleuls", at(13), Outcome::InProgress),
        // Another practice, and a call outside the period.
        minimal_call("other", "caron", at(6), Outcome::Answered),
        minimal_call("late", "tilleuls", at(100), Outcome::Answered),
    ] {
        h.record_call(r);
    }
    rec.shutdown().expect("shutdown");
    let r = RecordReader::open(dir.db()).expect("reader");
    let f = r
        .practice_figures("tilleuls", t0(), t0() + secs(60))
        .expect("figures");
    let expected = PracticeFigures {
        offered: 9,
        answered: 1,
        abandoned: [
            (AbandonPhase::Greeting, 1),
            (AbandonPhase::Triage, 1),
            (AbandonPhase::Queue, 1),
            (AbandonPhase::Ringing, 2),
        ]
        .into(),
        overflowed: [("voicemail".to_string(), 1)].into(),
        callback_requested: 1,
        failed: 1,
        closed: 1,
        unanswered: 1,
        rejected: 1,
        open_or_interrupted: 1,
    };
    assert_eq!(f, expected);
    assert!(f.balanced());
    assert_eq!(f.abandoned_total(), 5);
    let none = r
        .practice_figures("dupont", t0(), t0() + secs(60))
        .expect("figures");
    assert_eq!(none, PracticeFigures::default());
}

/// What the previous build (schema version 6) created, verbatim.
const SCHEMA_V6_SQL: &str = include_str!("fixtures/schema_v6.sql");

fn create_v6(path: &Path) {
    let c = rusqlite::Connection::open(path).expect("create v6");
    c.execute_batch(SCHEMA_V6_SQL).expect("v6 schema");
    c.execute_batch(
        "INSERT INTO schema_version (version, applied_at) VALUES
             (1, '2025-01-06T09:00:00.000000Z'), (2, '2025-02-03T09:00:00.000000Z'),
             (3, '2025-02-17T09:00:00.000000Z'), (4, '2025-02-24T09:00:00.000000Z'),
             (5, '2025-03-01T09:00:00.000000Z'), (6, '2025-03-02T09:00:00.000000Z');
         INSERT INTO calls (call_id, sip_call_id, practice_id, trunk, caller_hashed,
             received_at, outcome, abandon_phase, end_reason, offers) VALUES
         ('greeting', 's1', 'tilleuls', 'ovh', 0, '2025-03-03T08:15:03.000000Z',
             'abandoned', NULL, 'caller-hangup-before-queue', 0),
         ('cancel', 's2', 'tilleuls', 'ovh', 0, '2025-03-03T08:15:04.000000Z',
             'abandoned', NULL, 'caller-cancel', 0),
         ('queue', 's3', 'tilleuls', 'ovh', 0, '2025-03-03T08:15:05.000000Z',
             'abandoned', 'queue', 'abandoned-queue', 0),
         ('answered', 's4', 'tilleuls', 'ovh', 0, '2025-03-03T08:15:06.000000Z',
             'answered', NULL, 'caller-hangup', 1);",
    )
    .expect("v6 rows");
}

#[test]
fn a_version_6_database_gets_every_abandon_phase() {
    let dir = TempDir::new("figures-migrate");
    let path = dir.path().join("records.db");
    create_v6(&path);
    let period = (t0(), t0() + secs(60));
    let expected = PracticeFigures {
        offered: 3,
        answered: 1,
        abandoned: [(AbandonPhase::BeforeQueue, 1), (AbandonPhase::Queue, 1)].into(),
        unanswered: 1,
        ..PracticeFigures::default()
    };

    // A reader of this build reads the unmigrated file as the migration
    // will rewrite it.
    let r = RecordReader::open(&path).expect("reader on v6");
    let before = r.practice_figures("tilleuls", period.0, period.1);
    assert_eq!(before.expect("figures on v6"), expected);
    drop(r);

    // Opening it for writing migrates it in place.
    let rec = Recorder::open(config(path.clone())).expect("open v6");
    let r = rec.reader().expect("reader");
    let after = r.practice_figures("tilleuls", period.0, period.1);
    assert_eq!(after.expect("figures on v7"), expected);
    let greeting = r.call("greeting").expect("call").expect("row");
    assert_eq!(greeting.abandon_phase, Some(AbandonPhase::BeforeQueue));
    let cancel = r.call("cancel").expect("call").expect("row");
    assert_eq!(cancel.outcome, Outcome::Unanswered);
    assert_eq!(cancel.abandon_phase, None);
    drop(r);
    rec.shutdown().expect("shutdown");
}
