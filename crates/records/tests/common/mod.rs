//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use permanence_records::{
    AbandonPhase, CallRecord, CallbackRequest, IdentifiedBy, Outcome, QueueEvent, QueueEventKind,
    RecordsConfig, RtpCounters, TriageChoice,
};

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "permanence-records-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A database path inside a not-yet-existing subdirectory (so `open`
    /// has to create it).
    pub fn db(&self) -> PathBuf {
        self.0.join("data").join("records.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fixed instant: Monday 3 March 2025, 08:15:02.123456 UTC.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 3, 8, 15, 2).unwrap() + TimeDelta::microseconds(123_456)
}

pub fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

/// Config for tests: small batches are not forced, long flush interval,
/// long purge interval, retention 30 days.
pub fn config(path: PathBuf) -> RecordsConfig {
    let mut c = RecordsConfig::new(path);
    c.retention = RecordsConfig::days(30);
    c
}

/// A minimal record (only mandatory fields).
pub fn minimal_call(id: &str, practice: &str, at: DateTime<Utc>, outcome: Outcome) -> CallRecord {
    CallRecord {
        call_id: id.to_owned(),
        sip_call_id: format!("sip-{id}@trunk"),
        practice_id: practice.to_owned(),
        trunk: "ovh".to_owned(),
        caller: None,
        called: None,
        identified_by: None,
        received_at: at,
        engine_answered_at: None,
        queued_at: None,
        first_offered_at: None,
        agent_answered_at: None,
        ended_at: None,
        agent: None,
        outcome,
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

/// A record with every field set.
pub fn full_call(id: &str, practice: &str, at: DateTime<Utc>, caller: &str) -> CallRecord {
    CallRecord {
        call_id: id.to_owned(),
        sip_call_id: format!("a84b4c76e66710@pc33-{id}"),
        practice_id: practice.to_owned(),
        trunk: "ovh-main".to_owned(),
        caller: Some(caller.to_owned()),
        called: Some("+33144556677".to_owned()),
        identified_by: Some(IdentifiedBy::HistoryInfo),
        received_at: at,
        engine_answered_at: Some(at + secs(1)),
        queued_at: Some(at + secs(9)),
        first_offered_at: Some(at + secs(10)),
        agent_answered_at: Some(at + secs(14)),
        ended_at: Some(at + secs(200)),
        agent: Some("claire".to_owned()),
        outcome: Outcome::Answered,
        abandon_phase: None,
        wait_secs: Some(5.25),
        talk_secs: Some(186.5),
        triage: Some(TriageChoice {
            digit: "2".to_owned(),
            label: "Prise de rendez-vous".to_owned(),
        }),
        overflow_target: None,
        end_reason: Some("agent-hangup".to_owned()),
        offers: 2,
        rtp: Some(RtpCounters {
            packets_in: 9_300,
            packets_out: 9_310,
            packets_lost: 7,
        }),
    }
}

pub fn abandoned_call(id: &str, practice: &str, at: DateTime<Utc>) -> CallRecord {
    CallRecord {
        abandon_phase: Some(AbandonPhase::Ringing),
        outcome: Outcome::Abandoned,
        wait_secs: Some(31.0),
        end_reason: Some("caller-hangup".to_owned()),
        offers: 1,
        ..minimal_call(id, practice, at, Outcome::Abandoned)
    }
}

pub fn event(
    at: DateTime<Utc>,
    call: &str,
    practice: &str,
    kind: QueueEventKind,
    agent: Option<&str>,
    detail: serde_json::Value,
) -> QueueEvent {
    QueueEvent {
        at,
        call_id: Some(call.to_owned()),
        practice_id: Some(practice.to_owned()),
        kind,
        agent: agent.map(str::to_owned),
        detail,
    }
}

pub fn callback(call: &str, practice: &str, at: DateTime<Utc>, number: &str) -> CallbackRequest {
    CallbackRequest {
        requested_at: at,
        call_id: call.to_owned(),
        practice_id: practice.to_owned(),
        number: number.to_owned(),
    }
}

/// Polls `f` every 5 ms until it returns true or 5 s pass.
pub fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    f()
}
