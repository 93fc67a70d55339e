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

#[test]
fn an_agents_figures_count_their_own_work_since_a_time() {
    use crate::{CallbackOrigin, CallbackState, CallbackStatus};
    let dir = TempDir::new("agent-figures");
    let rec = Recorder::open(RecordsConfig::new(dir.0.join("records.db"))).expect("open");
    let h = rec.handle();
    let at = |h, m| Utc.with_ymd_and_hms(2025, 1, 6, h, m, 0).unwrap();
    let answered = |id, agent: &str, received, answered, talk: Option<f64>| CallRecord {
        received_at: received,
        agent_answered_at: Some(answered),
        ended_at: talk.map(|_| answered),
        agent: Some(agent.into()),
        talk_secs: talk,
        ..call(id)
    };
    // Before midnight (received the day before, answered after: counted).
    h.record_call(answered(
        1,
        "alice",
        at(0, 0) - chrono::Duration::minutes(5),
        at(0, 1),
        Some(60.0),
    ));
    h.record_call(answered(2, "alice", at(9, 0), at(9, 1), Some(120.0)));
    h.record_call(answered(3, "bob", at(9, 0), at(9, 1), Some(30.0)));
    // In progress: not counted yet.
    h.record_call(answered(4, "alice", at(10, 0), at(10, 1), None));
    h.record_call(answered(
        5,
        "alice",
        at(0, 0) - chrono::Duration::hours(2),
        at(0, 0) - chrono::Duration::hours(1),
        Some(10.0),
    ));
    let cb = |key: &str, status, agent: &str, done| CallbackState {
        key: key.into(),
        origin: CallbackOrigin::Caller,
        call_id: format!("call-{key}"),
        practice_id: "p".into(),
        number: "+33612345678".into(),
        requested_at: at(8, 0),
        joined_at: at(8, 0),
        priority: 0,
        triage_digit: None,
        deadline_at: at(9, 0),
        status,
        attempts: 1,
        next_attempt_at: None,
        last_attempt_at: None,
        last_result: None,
        agent: Some(agent.into()),
        completed_at: Some(done),
        outbound_id: None,
    };
    h.record_callback_state(cb("a", CallbackStatus::Completed, "alice", at(8, 30)));
    h.record_callback_state(cb("b", CallbackStatus::Handled, "alice", at(8, 40)));
    h.record_callback_state(cb("c", CallbackStatus::Failed, "alice", at(8, 50)));
    h.record_callback_state(cb("d", CallbackStatus::Completed, "bob", at(8, 50)));
    let out = |id, outcome| OutboundRecord {
        agent: "alice".into(),
        started_at: at(11, 0),
        outcome,
        ..outbound(id)
    };
    h.record_outbound(out(1, OutboundOutcome::Answered));
    h.record_outbound(out(2, OutboundOutcome::NoAnswer));
    h.record_outbound(out(3, OutboundOutcome::Refused));
    h.flush().expect("flush");
    let r = RecordReader::open(rec.path()).expect("reader");
    let f = r.agent_figures("alice", at(0, 0)).expect("figures");
    assert_eq!(f.calls, 2);
    assert_eq!(f.talk_secs_avg, Some(90.0));
    assert_eq!(f.callbacks_done, 2);
    assert_eq!(f.outbound_calls, 2);
    let none = r.agent_figures("carol", at(0, 0)).expect("figures");
    assert_eq!(none, crate::AgentFigures::default());
    rec.shutdown().expect("shutdown");
}
