//! Call detail records and the queue event log: what the engine hands to
//! the records store (SQLite, written off the call path).

use crate::dispatch::EventObserver;
use chrono::{DateTime, Utc};
use permanence_acd::{AbandonPhase, CallId, Event};
use permanence_call::EndReason;
use permanence_records::{
    CallRecord, IdentifiedBy, Outcome, QueueEvent, QueueEventKind, RecorderHandle, RtpCounters,
    TriageChoice,
};
use permanence_sip::intake::NumberSource;
use serde_json::json;
use std::sync::LazyLock;

/// Milliseconds since the epoch when the process started: with the
/// dispatcher's call number it makes call ids unique across restarts.
static BOOT_MS: LazyLock<i64> = LazyLock::new(|| Utc::now().timestamp_millis());

/// The stored id of a call.
pub fn record_id(call: CallId) -> String {
    format!("{}-{}", *BOOT_MS, call.0)
}

/// Writes every dispatcher event to the queue event log.
pub struct QueueLog {
    handle: RecorderHandle,
}

impl QueueLog {
    /// Logs into `handle`.
    pub fn new(handle: RecorderHandle) -> Self {
        Self { handle }
    }
}

fn secs(d: std::time::Duration) -> f64 {
    d.as_secs_f64()
}

impl EventObserver for QueueLog {
    fn on_event(&self, e: &Event, practice: Option<&str>) {
        let call_ev = |call: &CallId, kind, agent: Option<String>, detail| QueueEvent {
            at: Utc::now(),
            call_id: Some(record_id(*call)),
            practice_id: practice.map(str::to_string),
            kind,
            agent,
            detail,
        };
        let ev = match e {
            Event::CallQueued { call, priority, .. } => call_ev(
                call,
                QueueEventKind::Entered,
                None,
                json!({ "priority": priority }),
            ),
            Event::Offered { call, agent } => call_ev(
                call,
                QueueEventKind::Offered,
                Some(agent.to_string()),
                serde_json::Value::Null,
            ),
            Event::Answered { call, agent, wait } => call_ev(
                call,
                QueueEventKind::Answered,
                Some(agent.to_string()),
                json!({ "wait_s": secs(*wait) }),
            ),
            Event::Abandoned {
                call,
                phase,
                wait,
                position,
            } => call_ev(
                call,
                QueueEventKind::Abandoned,
                None,
                json!({
                    "phase": match phase { AbandonPhase::Queue => "queue", AbandonPhase::Ringing => "ringing" },
                    "wait_s": secs(*wait),
                    "position": position,
                }),
            ),
            Event::Overflowed {
                call,
                target,
                wait,
                reason,
            } => call_ev(
                call,
                QueueEventKind::Overflowed,
                None,
                json!({ "target": format!("{target:?}"), "wait_s": secs(*wait), "reason": format!("{reason:?}") }),
            ),
            Event::Retargeted { call, pool, wait } => call_ev(
                call,
                QueueEventKind::Overflowed,
                None,
                json!({ "target": "pool", "pool": pool.as_str(), "wait_s": secs(*wait) }),
            ),
            Event::Rona {
                call,
                agent,
                strikes,
            } => call_ev(
                call,
                QueueEventKind::Rona,
                Some(agent.to_string()),
                json!({ "strikes": strikes }),
            ),
            Event::OfferFailed {
                call,
                agent,
                reason,
            } => call_ev(
                call,
                QueueEventKind::OfferFailed,
                Some(agent.to_string()),
                json!({ "reason": format!("{reason:?}") }),
            ),
            Event::AgentStateChanged {
                agent,
                from,
                to,
                reason,
            } => QueueEvent {
                at: Utc::now(),
                call_id: None,
                practice_id: None,
                kind: QueueEventKind::AgentState,
                agent: Some(agent.to_string()),
                detail: json!({ "from": format!("{from:?}"), "to": format!("{to:?}"), "reason": format!("{reason:?}") }),
            },
            _ => return,
        };
        self.handle.record_event(ev);
    }
}

/// What the call driver notes along the way, turned into one record.
#[derive(Debug, Clone)]
pub struct CdrBuilder {
    /// Stored id.
    pub id: String,
    /// SIP Call-ID of the carrier leg.
    pub sip_call_id: String,
    /// Practice.
    pub practice: String,
    /// Trunk name.
    pub trunk: String,
    /// Caller number (E.164 when it is one).
    pub caller: String,
    /// The practice number found.
    pub called: String,
    /// Where it was found.
    pub via: Option<NumberSource>,
    /// INVITE received.
    pub received_at: DateTime<Utc>,
    /// 200 OK sent.
    pub answered_at: Option<DateTime<Utc>>,
    /// Queued with the dispatcher.
    pub queued_at: Option<DateTime<Utc>>,
    /// First INVITE to a telesecretary.
    pub first_offered_at: Option<DateTime<Utc>>,
    /// Telesecretary answered.
    pub agent_answered_at: Option<DateTime<Utc>>,
    /// Who answered.
    pub agent: Option<String>,
    /// Offers made.
    pub offers: u32,
    /// Triage digit and label.
    pub triage: Option<(char, String)>,
    /// Overflow target, when the call overflowed.
    pub overflow: Option<String>,
}

impl CdrBuilder {
    /// The record of the ended call.
    pub fn finish(&self, reason: EndReason, rtp: RtpCounters) -> CallRecord {
        let now = Utc::now();
        let outcome = if self.agent_answered_at.is_some() || reason == EndReason::Transferred {
            Outcome::Answered
        } else {
            match reason {
                EndReason::CallerCancel
                | EndReason::CallerHangupBeforeQueue
                | EndReason::AbandonedInQueue
                | EndReason::AbandonedRinging => Outcome::Abandoned,
                EndReason::Voicemail | EndReason::Callback | EndReason::OverflowHangup => {
                    Outcome::Overflowed
                }
                EndReason::Closed => Outcome::Closed,
                _ => Outcome::Failed,
            }
        };
        let abandon_phase = match reason {
            EndReason::AbandonedInQueue => Some(permanence_records::AbandonPhase::Queue),
            EndReason::AbandonedRinging => Some(permanence_records::AbandonPhase::Ringing),
            _ => None,
        };
        let wait_end = self.agent_answered_at.unwrap_or(now);
        let wait_secs = self
            .queued_at
            .map(|q| (wait_end - q).num_milliseconds().max(0) as f64 / 1000.0);
        let talk_secs = self
            .agent_answered_at
            .map(|a| (now - a).num_milliseconds().max(0) as f64 / 1000.0);
        CallRecord {
            call_id: self.id.clone(),
            sip_call_id: self.sip_call_id.clone(),
            practice_id: self.practice.clone(),
            trunk: self.trunk.clone(),
            caller: (!self.caller.is_empty()).then(|| self.caller.clone()),
            called: (!self.called.is_empty()).then(|| self.called.clone()),
            identified_by: self.via.map(|v| match v {
                NumberSource::HistoryInfo => IdentifiedBy::HistoryInfo,
                NumberSource::Diversion => IdentifiedBy::Diversion,
                NumberSource::RequestUri => IdentifiedBy::RequestUri,
                NumberSource::To => IdentifiedBy::To,
            }),
            received_at: self.received_at,
            engine_answered_at: self.answered_at,
            queued_at: self.queued_at,
            first_offered_at: self.first_offered_at,
            agent_answered_at: self.agent_answered_at,
            ended_at: Some(now),
            agent: self.agent.clone(),
            outcome,
            abandon_phase,
            wait_secs,
            talk_secs,
            triage: self.triage.as_ref().map(|(d, l)| TriageChoice {
                digit: d.to_string(),
                label: l.clone(),
            }),
            overflow_target: self.overflow.clone(),
            end_reason: Some(reason.as_str().to_string()),
            offers: self.offers,
            rtp: Some(rtp),
        }
    }
}

/// The record of a call refused before any dialog (unknown number,
/// untrusted source, unusable SDP, no media port).
pub fn rejected(
    sip_call_id: &str,
    practice: &str,
    trunk: &str,
    caller: &str,
    reason: &str,
) -> CallRecord {
    let now = Utc::now();
    CallRecord {
        call_id: format!("{}-r{}", *BOOT_MS, rand::random::<u32>()),
        sip_call_id: sip_call_id.to_string(),
        practice_id: practice.to_string(),
        trunk: trunk.to_string(),
        caller: (!caller.is_empty()).then(|| caller.to_string()),
        called: None,
        identified_by: None,
        received_at: now,
        engine_answered_at: None,
        queued_at: None,
        first_offered_at: None,
        agent_answered_at: None,
        ended_at: Some(now),
        agent: None,
        outcome: Outcome::Rejected,
        abandon_phase: None,
        wait_secs: None,
        talk_secs: None,
        triage: None,
        overflow_target: None,
        end_reason: Some(reason.to_string()),
        offers: 0,
        rtp: None,
    }
}
