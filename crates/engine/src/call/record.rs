//! A call's record, built by observing the call core's events: each
//! timestamp is the time of the event that defines it, never stamped by
//! hand in the driver.

use chrono::{DateTime, Utc};
use permanence_call::{AbandonPhase, AgentId, Disposition, EndReason, Event, OverflowKind};
use permanence_records::AbandonPhase as StoredPhase;
use permanence_records::{CallRecord, IdentifiedBy, Outcome, RtpCounters, TriageChoice};
use permanence_sip::intake::NumberSource;

use super::IncomingCall;

/// What a call's record is made of, filled in as its events arrive.
/// Times are engine time (monotonic), so waits and talk times are exact
/// whatever the wall clock does; they are moved to the wall clock when the
/// record is written ([`CallRecordBuilder::finish`]).
#[derive(Debug, Clone)]
pub struct CallRecordBuilder {
    id: String,
    sip_call_id: String,
    practice: String,
    trunk: String,
    caller: String,
    called: String,
    via: NumberSource,
    /// Wall-clock time of the INVITE.
    received_at: DateTime<Utc>,
    answered_at: Option<DateTime<Utc>>,
    queued_at: Option<DateTime<Utc>>,
    first_offered_at: Option<DateTime<Utc>>,
    agent_answered_at: Option<DateTime<Utc>>,
    agent: Option<AgentId>,
    offers: u32,
    triage: Option<char>,
    overflow: Option<OverflowKind>,
}

impl CallRecordBuilder {
    /// The record of `incoming`, stored as `id`.
    pub fn new(id: String, incoming: &IncomingCall) -> Self {
        Self {
            id,
            sip_call_id: incoming.sip_call_id.clone(),
            practice: incoming.practice.clone(),
            trunk: incoming.trunk.clone(),
            caller: incoming.caller.clone(),
            called: incoming.called.clone(),
            via: incoming.via,
            received_at: incoming.received_at,
            answered_at: None,
            queued_at: None,
            first_offered_at: None,
            agent_answered_at: None,
            agent: None,
            offers: 0,
            triage: None,
            overflow: None,
        }
    }

    /// The stored id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// When the call joined the queue (engine time).
    pub fn queued_at(&self) -> Option<DateTime<Utc>> {
        self.queued_at
    }

    /// The caller's triage choice, if any.
    pub fn triage(&self) -> Option<char> {
        self.triage
    }

    /// Who answered, if someone did.
    pub fn agent(&self) -> Option<&AgentId> {
        self.agent.as_ref()
    }

    /// Follows one event (`at`: engine time).
    pub fn observe(&mut self, event: &Event, at: DateTime<Utc>) {
        match event {
            Event::Answered { .. } => self.answered_at = Some(at),
            Event::Queued { triage } => {
                // Back in the queue after a transfer, the call keeps the
                // time it first joined (its place and its total wait).
                self.queued_at.get_or_insert(at);
                self.triage = *triage;
            }
            Event::Offered { .. } => {
                self.offers += 1;
                self.first_offered_at.get_or_insert(at);
            }
            Event::Connected { agent } => {
                self.agent = Some(agent.clone());
                self.agent_answered_at = Some(at);
            }
            Event::Overflowed(kind) => self.overflow = Some(*kind),
            _ => {}
        }
    }

    /// The record of the ended call: its outcome and abandon phase follow
    /// its `disposition` (decided by the call core, the same the metrics
    /// count). `now` is engine time; `wall_offset` (wall clock minus engine
    /// time) moves the timestamps to the wall clock; `triage_label` names
    /// the triage option chosen.
    pub fn finish(
        &self,
        reason: EndReason,
        disposition: Disposition,
        rtp: RtpCounters,
        now: DateTime<Utc>,
        wall_offset: chrono::Duration,
        triage_label: impl Fn(char) -> String,
    ) -> CallRecord {
        let mut r = self.record(now, wall_offset, triage_label);
        r.outcome = outcome(disposition);
        r.abandon_phase = disposition.abandon_phase().map(stored_phase);
        r.ended_at = Some(now + wall_offset);
        r.end_reason = Some(reason.as_str().to_string());
        r.rtp = Some(rtp);
        r
    }

    /// The record of the call still in progress (outcome `in-progress`, no
    /// end): written as the call goes, so that a crash leaves a record the
    /// next start closes as interrupted.
    pub fn in_progress(
        &self,
        now: DateTime<Utc>,
        wall_offset: chrono::Duration,
        triage_label: impl Fn(char) -> String,
    ) -> CallRecord {
        self.record(now, wall_offset, triage_label)
    }

    /// What is known of the call at `now`, as an in-progress record.
    fn record(
        &self,
        now: DateTime<Utc>,
        wall_offset: chrono::Duration,
        triage_label: impl Fn(char) -> String,
    ) -> CallRecord {
        let wall = |t: DateTime<Utc>| t + wall_offset;
        let secs = |from: DateTime<Utc>, to: DateTime<Utc>| {
            (to - from).num_milliseconds().max(0) as f64 / 1000.0
        };
        let wait_end = self.agent_answered_at.unwrap_or(now);
        CallRecord {
            call_id: self.id.clone(),
            sip_call_id: self.sip_call_id.clone(),
            practice_id: self.practice.clone(),
            trunk: self.trunk.clone(),
            caller: (!self.caller.is_empty()).then(|| self.caller.clone()),
            called: (!self.called.is_empty()).then(|| self.called.clone()),
            identified_by: Some(identified_by(self.via)),
            received_at: self.received_at,
            engine_answered_at: self.answered_at.map(wall),
            queued_at: self.queued_at.map(wall),
            first_offered_at: self.first_offered_at.map(wall),
            agent_answered_at: self.agent_answered_at.map(wall),
            ended_at: None,
            agent: self.agent.as_ref().map(|a| a.to_string()),
            outcome: Outcome::InProgress,
            abandon_phase: None,
            wait_secs: self.queued_at.map(|q| secs(q, wait_end)),
            talk_secs: self.agent_answered_at.map(|a| secs(a, now)),
            triage: self.triage.map(|d| TriageChoice {
                digit: d.to_string(),
                label: triage_label(d),
            }),
            overflow_target: self.overflow.map(|k| k.as_str().to_string()),
            end_reason: None,
            offers: self.offers,
            rtp: None,
        }
    }
}

/// The stored outcome of a call that ended with `d`.
fn outcome(d: Disposition) -> Outcome {
    match d {
        Disposition::Closed => Outcome::Closed,
        Disposition::Unanswered => Outcome::Unanswered,
        Disposition::Answered => Outcome::Answered,
        Disposition::Abandoned(_) => Outcome::Abandoned,
        Disposition::Overflowed(_) => Outcome::Overflowed,
        Disposition::CallbackRequested => Outcome::CallbackRequested,
        Disposition::Failed => Outcome::Failed,
    }
}

/// The stored form of an abandon phase.
fn stored_phase(p: AbandonPhase) -> StoredPhase {
    match p {
        AbandonPhase::Greeting => StoredPhase::Greeting,
        AbandonPhase::Triage => StoredPhase::Triage,
        AbandonPhase::Route => StoredPhase::Route,
        AbandonPhase::Queue => StoredPhase::Queue,
        AbandonPhase::Ringing => StoredPhase::Ringing,
        AbandonPhase::CallbackPrompt => StoredPhase::CallbackPrompt,
    }
}

fn identified_by(via: NumberSource) -> IdentifiedBy {
    match via {
        NumberSource::HistoryInfo => IdentifiedBy::HistoryInfo,
        NumberSource::Diversion => IdentifiedBy::Diversion,
        NumberSource::RequestUri => IdentifiedBy::RequestUri,
        NumberSource::To => IdentifiedBy::To,
    }
}
