//! What the engine hands to the records store (SQLite, written off the call
//! path) besides a call's own record (see `call::record`): the stored id of
//! a call, the record of a call refused before any dialog, and the queue
//! event log, which observes every dispatcher event. Stored values use the
//! types' stable serde names, never `Debug` text.

use crate::dispatch::EventObserver;
use chrono::Utc;
use permanence_acd::{CallId, Event};
use permanence_records::{CallRecord, Outcome, QueueEvent, QueueEventKind, RecorderHandle};
use serde_json::json;
use std::sync::LazyLock;

/// Milliseconds since the epoch when the process started: with the
/// dispatcher's call number it makes call ids unique across restarts.
static BOOT_MS: LazyLock<i64> = LazyLock::new(|| Utc::now().timestamp_millis());

/// The stored id of a call.
pub fn record_id(call: CallId) -> String {
    format!("{}-{}", *BOOT_MS, call.0)
}

/// The record id of outbound call number `n` of this process.
pub fn outbound_record_id(n: u64) -> String {
    format!("{}-out-{n}", *BOOT_MS)
}

/// The outbound record id of callback try number `n` of this process.
pub fn callback_try_record_id(n: u64) -> String {
    format!("{}-cbtry-{n}", *BOOT_MS)
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
                json!({ "phase": phase, "wait_s": secs(*wait), "position": position }),
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
                json!({ "target": target.as_str(), "wait_s": secs(*wait), "reason": reason }),
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
                json!({ "reason": reason.as_str() }),
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
                detail: json!({ "from": from, "to": to, "reason": reason }),
            },
            _ => return,
        };
        self.handle.record_event(ev);
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

/// Saves each agent's chosen state (logged out, paused with a reason,
/// back) so that a restart, even after a crash, restores it.
pub struct AgentStateLog {
    handle: RecorderHandle,
}

impl AgentStateLog {
    /// Saves into `handle`.
    pub fn new(handle: RecorderHandle) -> Self {
        Self { handle }
    }
}

/// The state an agent chose, if this change is one: paused (with the
/// reason), logged out, or back (logged in or unpaused). Offers, calls and
/// wrap-up are not choices.
pub fn chosen_state(
    to: permanence_acd::AgentState,
    reason: &permanence_acd::ChangeReason,
) -> Option<(bool, Option<String>)> {
    use permanence_acd::{AgentState, ChangeReason};
    match (to, reason) {
        (AgentState::Paused, ChangeReason::Pause(r)) => Some((true, Some(r.to_string()))),
        (AgentState::Paused, ChangeReason::NoAnswer) => Some((true, Some("no-answer".into()))),
        (AgentState::LoggedOut, ChangeReason::Logout) => Some((false, None)),
        (_, ChangeReason::Login | ChangeReason::Unpause) => Some((true, None)),
        _ => None,
    }
}

impl EventObserver for AgentStateLog {
    fn on_event(&self, e: &Event, _practice: Option<&str>) {
        let Event::AgentStateChanged {
            agent, to, reason, ..
        } = e
        else {
            return;
        };
        if let Some((logged_in, pause_reason)) = chosen_state(*to, reason) {
            self.handle
                .record_agent_state(permanence_records::AgentStateRow {
                    agent: agent.to_string(),
                    logged_in,
                    pause_reason,
                    updated_at: Utc::now(),
                });
        }
    }
}

/// The dispatcher inputs that bring an agent back to the state saved for
/// them (nothing for an agent logged in and not paused).
pub fn restore_inputs(s: &permanence_records::AgentStateRow) -> Vec<permanence_acd::Input> {
    let agent = permanence_acd::AgentId::from(s.agent.as_str());
    match (s.logged_in, &s.pause_reason) {
        (false, _) => vec![permanence_acd::Input::AgentLogout { agent }],
        (true, Some(reason)) => vec![permanence_acd::Input::AgentPause {
            agent,
            reason: reason.clone(),
        }],
        (true, None) => Vec::new(),
    }
}
