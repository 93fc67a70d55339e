//! Unit tests that need the writer's test hook (pausing the writer thread).

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};

use crate::{
    CallRecord, CallbackRequest, OutboundOrigin, OutboundOutcome, OutboundRecord, Outcome,
    RecordReader, Recorder, RecordsConfig,
};

struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "permanence-records-unit-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn call(id: usize) -> CallRecord {
    CallRecord {
        call_id: format!("c{id}"),
        sip_call_id: format!("sip-{id}"),
        practice_id: "p".into(),
        trunk: "t".into(),
        caller: Some("+33600000000".into()),
        called: None,
        identified_by: None,
        received_at: Utc.with_ymd_and_hms(2025, 1, 6, 9, 0, 0).unwrap(),
        engine_answered_at: None,
        queued_at: None,
        first_offered_at: None,
        agent_answered_at: None,
        ended_at: None,
        agent: None,
        outcome: Outcome::Answered,
        abandon_phase: None,
        wait_secs: None,
        talk_secs: None,
        triage: None,
        overflow_target: None,
        end_reason: None,
        offers: 0,
        rtp: None,
    }
}

#[test]
fn a_full_channel_drops_and_counts_without_blocking() {
    let dir = TempDir::new("dropped");
    let mut cfg = RecordsConfig::new(dir.0.join("records.db"));
    cfg.queue_capacity = 4;
    let rec = Recorder::open(cfg).expect("open");
    let h = rec.handle();

    let gate = h.pause_writer().expect("pause");
    let started = Instant::now();
    let accepted: Vec<bool> = (0..10).map(|i| h.record_call(call(i))).collect();
    // Ten sends against a stalled writer return at once.
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(accepted, [[true; 4].as_slice(), &[false; 6]].concat());
    assert_eq!(h.stats().dropped, 6);
    assert_eq!(h.stats().written, 0);

    drop(gate);
    h.flush().expect("flush");
    assert_eq!(h.stats().written, 4);
    assert!(h.record_call(call(10)), "room again once the writer runs");
    rec.shutdown().expect("shutdown");
    assert_eq!(h.stats().written, 5);
    assert_eq!(h.stats().dropped, 6);
}

#[test]
fn shutdown_waits_for_a_stalled_writer_and_loses_nothing() {
    let dir = TempDir::new("stalled");
    let mut cfg = RecordsConfig::new(dir.0.join("records.db"));
    cfg.queue_capacity = 8;
    let rec = Recorder::open(cfg).expect("open");
    let h = rec.handle();
    let gate = h.pause_writer().expect("pause");
    for i in 0..8 {
        assert!(h.record_call(call(i)));
    }
    // Release the writer a little after shutdown starts waiting for room.
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        drop(gate);
    });
    rec.shutdown().expect("shutdown");
    releaser.join().expect("join");
    assert_eq!(h.stats().written, 8);
    assert!(!h.record_call(call(99)));
}

fn callback(id: usize) -> CallbackRequest {
    CallbackRequest {
        requested_at: Utc.with_ymd_and_hms(2025, 1, 6, 9, 0, 0).unwrap(),
        call_id: format!("c{id}"),
        practice_id: "p".into(),
        number: "+33600000000".into(),
    }
}

#[test]
fn callbacks_share_the_channel_and_the_dropped_counter() {
    let dir = TempDir::new("dropped-callbacks");
    let mut cfg = RecordsConfig::new(dir.0.join("records.db"));
    cfg.queue_capacity = 4;
    let rec = Recorder::open(cfg).expect("open");
    let h = rec.handle();

    let gate = h.pause_writer().expect("pause");
    let started = Instant::now();
    assert!(h.record_call(call(0)));
    assert!(h.record_callback(callback(1)));
    assert!(h.record_callback(callback(2)));
    assert!(h.record_call(call(3)));
    // The channel is full: callbacks are refused at once and counted.
    let refused: Vec<bool> = (4..9).map(|i| h.record_callback(callback(i))).collect();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(refused, [false; 5]);
    assert!(!h.record_call(call(9)));
    assert_eq!(h.stats().dropped, 6);

    drop(gate);
    h.flush().expect("flush");
    assert_eq!(h.stats().written, 4);
    let path = rec.path().to_path_buf();
    rec.shutdown().expect("shutdown");
    assert!(!h.record_callback(callback(10)), "refused after shutdown");
    assert_eq!(h.stats().dropped, 7);

    let r = RecordReader::open(path).expect("reader");
    let stored = r.callbacks(None, false, 100).expect("callbacks");
    assert_eq!(stored.len(), 2);
    assert_eq!(r.row_counts().expect("counts"), (2, 0));
}

fn outbound(id: usize) -> OutboundRecord {
    OutboundRecord {
        id: format!("o{id}"),
        sip_call_id: format!("out-{id}"),
        origin: OutboundOrigin::Agent,
        agent: "claire".into(),
        practice_id: Some("p".into()),
        caller_id: None,
        destination: Some("+33600000000".into()),
        destination_class: Some("mobile".into()),
        started_at: Utc.with_ymd_and_hms(2025, 1, 6, 9, 0, 0).unwrap(),
        answered_at: None,
        ended_at: None,
        outcome: OutboundOutcome::InProgress,
        refusal: None,
        status_code: None,
        talk_secs: None,
    }
}

#[test]
fn outbound_calls_share_the_channel_and_the_dropped_counter() {
    let dir = TempDir::new("dropped-outbound");
    let mut cfg = RecordsConfig::new(dir.0.join("records.db"));
    cfg.queue_capacity = 3;
    let rec = Recorder::open(cfg).expect("open");
    let h = rec.handle();

    let gate = h.pause_writer().expect("pause");
    let started = Instant::now();
    assert!(h.record_outbound(outbound(0)));
    assert!(h.record_call(call(1)));
    assert!(h.record_outbound(outbound(2)));
    let refused: Vec<bool> = (3..6).map(|i| h.record_outbound(outbound(i))).collect();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(refused, [false; 3]);
    assert_eq!(h.stats().dropped, 3);

    drop(gate);
    h.flush().expect("flush");
    assert_eq!(h.stats().written, 3);
    let path = rec.path().to_path_buf();
    rec.shutdown().expect("shutdown");
    assert!(!h.record_outbound(outbound(9)), "refused after shutdown");
    assert_eq!(h.stats().dropped, 4);

    let r = RecordReader::open(path).expect("reader");
    assert_eq!(r.outbound_calls(None, 100).expect("outbound").len(), 2);
    assert_eq!(r.row_counts().expect("counts"), (1, 0));
}
