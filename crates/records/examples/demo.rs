//! Writes a few call records and queue events to `data/records.db` (under
//! the working directory), then reads them back.
//!
//! `cargo run -p permanence-records --example demo`

use chrono::{TimeDelta, Utc};
use permanence_records::{
    CallFilter, CallRecord, IdentifiedBy, Outcome, QueueEvent, QueueEventKind, Recorder,
    RecordsConfig, RecordsError,
};
use serde_json::json;

fn main() -> Result<(), RecordsError> {
    let mut config = RecordsConfig::new("data/records.db");
    config.retention = RecordsConfig::days(90);
    config.hash_callers = true;
    config.salt = std::env::var("RECORDS_SALT").unwrap_or_else(|_| "demo-salt".into());
    let recorder = Recorder::open(config)?;
    let h = recorder.handle();

    let now = Utc::now();
    let id = format!("demo-{}", now.timestamp_micros());
    h.record_event(QueueEvent {
        at: now,
        call_id: Some(id.clone()),
        practice_id: Some("tilleuls".into()),
        kind: QueueEventKind::Entered,
        agent: None,
        detail: json!({"position": 1}),
    });
    h.record_call(CallRecord {
        call_id: id.clone(),
        sip_call_id: format!("{id}@demo"),
        practice_id: "tilleuls".into(),
        trunk: "demo".into(),
        caller: Some("+33612345678".into()),
        called: Some("+33144556677".into()),
        identified_by: Some(IdentifiedBy::Diversion),
        received_at: now,
        engine_answered_at: Some(now),
        queued_at: Some(now + TimeDelta::seconds(8)),
        first_offered_at: None,
        agent_answered_at: None,
        ended_at: Some(now + TimeDelta::seconds(20)),
        agent: None,
        outcome: Outcome::Abandoned,
        abandon_phase: Some(permanence_records::AbandonPhase::Queue),
        wait_secs: Some(12.0),
        talk_secs: None,
        triage: None,
        overflow_target: None,
        end_reason: Some("caller-hangup".into()),
        offers: 0,
        rtp: None,
    });
    h.flush()?;

    let reader = recorder.reader()?;
    for call in reader.calls(&CallFilter::latest(5))? {
        println!(
            "{} {} {} caller={}",
            call.received_at,
            call.practice_id,
            call.outcome,
            call.caller.unwrap_or_default()
        );
    }
    println!("by outcome: {:?}", reader.counts_by_outcome(None, None)?);
    println!("stats: {:?}", h.stats());
    drop(reader);
    recorder.shutdown()
}
