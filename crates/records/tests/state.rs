//! What survives a crash: calls left in progress closed as interrupted,
//! agent states and registrations read back.

mod common;

use common::*;
use permanence_records::{
    AgentStateRow, CallFilter, Outcome, RecordReader, Recorder, RegistrationRow,
};

fn registration(agent: &str, uri: &str, expires_in: i64) -> RegistrationRow {
    RegistrationRow {
        agent: agent.into(),
        uri: uri.into(),
        instance: Some("<urn:uuid:1>".into()),
        source: "192.0.2.7:5070".into(),
        transport: "UDP".into(),
        expires_at: t0() + secs(expires_in),
        call_id: "reg-1".into(),
        cseq: 7,
        user_agent: Some("baresip".into()),
    }
}

#[test]
fn calls_left_in_progress_are_closed_as_interrupted() {
    let dir = TempDir::new("interrupted");
    let rec = Recorder::open(config(dir.db())).expect("open");
    let h = rec.handle();
    let mut talking = full_call("talking", "martin", t0(), "+33612345678");
    talking.outcome = Outcome::InProgress;
    talking.ended_at = None;
    talking.end_reason = None;
    let mut queued = minimal_call("queued", "martin", t0() + secs(5), Outcome::InProgress);
    queued.queued_at = Some(t0() + secs(8));
    assert!(h.record_call(talking.clone()));
    assert!(h.record_call(queued));
    assert!(h.record_call(minimal_call("done", "martin", t0(), Outcome::Answered)));
    h.flush().expect("flush");
    assert_eq!(h.close_interrupted().expect("close"), 2);
    // Nothing left to close the second time.
    assert_eq!(h.close_interrupted().expect("close"), 0);
    let r = RecordReader::open(dir.db()).expect("reader");
    let calls = r.calls(&CallFilter::latest(10)).expect("calls");
    let by_id = |id: &str| {
        calls
            .iter()
            .find(|c| c.call_id == id)
            .expect("call")
            .clone()
    };
    let t = by_id("talking");
    assert_eq!(t.outcome, Outcome::Interrupted);
    assert_eq!(t.end_reason.as_deref(), Some("interrupted"));
    assert_eq!(t.ended_at, talking.agent_answered_at);
    let q = by_id("queued");
    assert_eq!(q.outcome, Outcome::Interrupted);
    assert_eq!(q.ended_at, Some(t0() + secs(8)));
    assert_eq!(by_id("done").outcome, Outcome::Answered);
    rec.shutdown().expect("shutdown");
}

#[test]
fn agent_states_and_registrations_are_kept() {
    let dir = TempDir::new("state");
    let rec = Recorder::open(config(dir.db())).expect("open");
    let h = rec.handle();
    let paused = AgentStateRow {
        agent: "alice".into(),
        logged_in: true,
        pause_reason: Some("pause-3".into()),
        updated_at: t0(),
    };
    assert!(h.record_agent_state(paused.clone()));
    assert!(h.record_agent_state(AgentStateRow {
        agent: "bob".into(),
        logged_in: false,
        pause_reason: None,
        updated_at: t0(),
    }));
    assert!(h.record_registrations(
        "alice",
        vec![
            registration("alice", "sip:alice@192.0.2.7:5070", 600),
            registration("alice", "sip:alice@192.0.2.8:5070", 30),
        ]
    ));
    assert!(h.record_registrations("bob", vec![registration("bob", "sip:bob@h", 600)]));
    // Bob unregisters: his rows go.
    assert!(h.record_registrations("bob", Vec::new()));
    h.flush().expect("flush");
    rec.shutdown().expect("shutdown");

    // After a restart.
    let r = RecordReader::open(dir.db()).expect("reader");
    let states = r.agent_states().expect("states");
    assert_eq!(states.len(), 2);
    assert_eq!(states[0], paused);
    assert!(!states[1].logged_in);
    let regs = r.registrations(t0() + secs(60)).expect("registrations");
    // The one expiring at +30 s is gone by +60 s.
    assert_eq!(regs.len(), 1);
    assert_eq!(regs[0].uri, "sip:alice@192.0.2.7:5070");
    assert_eq!(regs[0].cseq, 7);
    assert_eq!(r.registrations(t0()).expect("all").len(), 2);
}
