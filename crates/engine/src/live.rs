//! The live view of calls in progress (admin API, active-calls gauge). It
//! follows each call by observing the call core's events; nobody writes
//! a phase into it by hand.

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use permanence_call::{AgentId, Event};

/// A call in progress, as the admin API lists it.
#[derive(Debug, Clone)]
pub struct LiveCall {
    /// Stored call id.
    pub call_id: String,
    /// Dispatcher call number.
    pub call: u64,
    /// Practice.
    pub practice: String,
    /// Caller, masked.
    pub caller: String,
    /// Phase name.
    pub phase: &'static str,
    /// Telesecretary ringing or talking.
    pub agent: Option<AgentId>,
    /// Arrival.
    pub started: DateTime<Utc>,
    /// Queued at.
    pub queued_at: Option<DateTime<Utc>>,
    /// Answered by a telesecretary at.
    pub answered_at: Option<DateTime<Utc>>,
}

impl LiveCall {
    /// A call just received, being answered.
    pub fn new(
        call: u64,
        call_id: String,
        practice: String,
        caller: String,
        started: DateTime<Utc>,
    ) -> Self {
        Self {
            call_id,
            call,
            practice,
            caller,
            phase: "answering",
            agent: None,
            started,
            queued_at: None,
            answered_at: None,
        }
    }

    /// Follows one event of the call core (`at`: wall-clock time).
    pub fn observe(&mut self, event: &Event, at: DateTime<Utc>) {
        let (phase, agent) = match event {
            Event::Answered { open: true } => ("greeting", None),
            Event::Answered { open: false } | Event::QueueClosed => ("closed", None),
            Event::TriageMenu => ("triage", None),
            Event::LanguageChosen(_) => (self.phase, self.agent.clone()),
            Event::Queued { .. } => {
                self.queued_at = Some(at);
                ("queued", None)
            }
            Event::Offered { agent } => ("ringing", Some(agent.clone())),
            Event::OfferEnded { .. } => ("queued", None),
            Event::Connected { agent } => {
                self.answered_at = Some(at);
                ("talking", Some(agent.clone()))
            }
            Event::Held => ("on-hold", self.agent.clone()),
            Event::AgentLost => ("queued", None),
            Event::Resumed => ("talking", self.agent.clone()),
            Event::RouteDialled { .. } => ("transferring", None),
            Event::RouteConnected => ("transferred", None),
            Event::TransferDialled { .. } => ("transferring", None),
            Event::TransferConnected => ("transferred", None),
            Event::Overflowed(_) => ("overflow", None),
            Event::Recording => ("voicemail", None),
            Event::CallbackMenu => ("callback-menu", None),
            Event::BackInQueue => ("queued", None),
            Event::CallbackRequested => ("callback-requested", None),
            Event::Ended(_) => ("ended", None),
        };
        self.phase = phase;
        self.agent = agent;
    }
}

/// Calls in progress, by dispatcher call number.
#[derive(Debug, Default)]
pub struct LiveCalls {
    calls: DashMap<u64, LiveCall>,
}

impl LiveCalls {
    /// Adds a call.
    pub fn insert(&self, call: LiveCall) {
        self.calls.insert(call.call, call);
    }

    /// Follows an event of call `call`.
    pub fn observe(&self, call: u64, event: &Event, at: DateTime<Utc>) {
        if let Some(mut c) = self.calls.get_mut(&call) {
            c.observe(event, at);
        }
    }

    /// Removes an ended call.
    pub fn remove(&self, call: u64) {
        self.calls.remove(&call);
    }

    /// Number of calls in progress.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// Whether no call is in progress.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// A copy of every call in progress.
    pub fn snapshot(&self) -> Vec<LiveCall> {
        self.calls.iter().map(|e| e.value().clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_follow_events() {
        let t = Utc::now();
        let mut c = LiveCall::new(1, "x-1".into(), "martin".into(), "+33xxx".into(), t);
        c.observe(&Event::Answered { open: true }, t);
        assert_eq!(c.phase, "greeting");
        c.observe(&Event::Queued { triage: None }, t);
        assert_eq!((c.phase, c.queued_at), ("queued", Some(t)));
        c.observe(
            &Event::Offered {
                agent: "alice".into(),
            },
            t,
        );
        assert_eq!(c.phase, "ringing");
        assert_eq!(c.agent.as_ref().map(|a| a.as_str()), Some("alice"));
        c.observe(
            &Event::Connected {
                agent: "alice".into(),
            },
            t,
        );
        c.observe(&Event::Held, t);
        assert_eq!(c.phase, "on-hold");
        assert_eq!(c.agent.as_ref().map(|a| a.as_str()), Some("alice"));
        c.observe(&Event::Resumed, t);
        assert_eq!(c.phase, "talking");
        assert_eq!(c.answered_at, Some(t));
    }
}
