//! What the engine remembers of each telesecretary's own calls, for the
//! outbound calls they place:
//!
//! - the practice of their last conversation (a bare number dialled soon
//!   after goes out as that practice);
//! - their outbound calls in progress (capped per agent), each held as an
//!   [`OutboundSlot`] that gives its place back, and tells the dispatcher,
//!   when dropped: a slot is never leaked, whatever way the call ends;
//! - those calls by SIP Call-ID ([`Consult`]), so that an attended
//!   transfer (REFER with Replaces naming one) can take over its
//!   destination's leg.
//!
//! The recent practices are written once per answered call (a sharded
//! map); the rest changes once per outbound call (a mutex is enough).

use crate::call::far::FarSide;
use crate::dispatch::DispatchHandle;
use permanence_acd::{AgentId, Input as AcdInput};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// The agents' recent practices and outbound calls in progress.
#[derive(Default)]
pub struct AgentActivity {
    /// Written once per answered call: sharded, no lock every call takes.
    recent: dashmap::DashMap<AgentId, (String, Instant)>,
    outbound: parking_lot::Mutex<HashMap<AgentId, u32>>,
    consults: parking_lot::Mutex<HashMap<String, (AgentId, mpsc::UnboundedSender<HandOver>)>>,
}

/// A request for an outbound call's destination leg (an attended
/// transfer): the call answers with the leg if it is talking, else `None`.
pub struct HandOver {
    /// Where the leg goes.
    pub reply: oneshot::Sender<Option<FarSide>>,
}

/// An outbound call registered for attended transfers; dropping it
/// unregisters it.
pub struct Consult {
    activity: Arc<AgentActivity>,
    call_id: String,
}

impl Drop for Consult {
    fn drop(&mut self) {
        self.activity.consults.lock().remove(&self.call_id);
    }
}

impl AgentActivity {
    /// `agent` is talking with a caller of `practice` (at `at`, monotonic).
    pub fn talked(&self, agent: &AgentId, practice: &str, at: Instant) {
        self.recent
            .insert(agent.clone(), (practice.to_string(), at));
    }

    /// The practice of `agent`'s last conversation if it started within
    /// `within` of `now` (`within` zero: never).
    pub fn recent_practice(
        &self,
        agent: &AgentId,
        within: Duration,
        now: Instant,
    ) -> Option<String> {
        let entry = self.recent.get(agent)?;
        let (practice, at) = entry.value();
        (!within.is_zero() && now.saturating_duration_since(*at) <= within)
            .then(|| practice.clone())
    }

    /// Outbound calls `agent` has in progress.
    pub fn outbound_calls(&self, agent: &AgentId) -> u32 {
        self.outbound.lock().get(agent).copied().unwrap_or(0)
    }

    /// Takes one of `agent`'s `max` outbound places, or `None` if all are
    /// taken. The dispatcher is told, so the agent is not offered queued
    /// calls while it is held.
    pub fn begin_outbound(
        self: &Arc<Self>,
        agent: &AgentId,
        max: u32,
        dispatch: &DispatchHandle,
    ) -> Option<OutboundSlot> {
        {
            let mut map = self.outbound.lock();
            let n = map.entry(agent.clone()).or_insert(0);
            if *n >= max {
                return None;
            }
            *n += 1;
        }
        dispatch.input(AcdInput::AgentOutboundStarted {
            agent: agent.clone(),
        });
        Some(OutboundSlot {
            activity: self.clone(),
            agent: agent.clone(),
            dispatch: dispatch.clone(),
        })
    }

    fn end_outbound(&self, agent: &AgentId) {
        let mut map = self.outbound.lock();
        if let Some(n) = map.get_mut(agent) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(agent);
            }
        }
    }

    /// Registers `agent`'s outbound call `call_id` (its SIP Call-ID): an
    /// attended transfer of theirs naming it reaches `hand_over`.
    pub fn consult(
        self: &Arc<Self>,
        call_id: &str,
        agent: &AgentId,
        hand_over: mpsc::UnboundedSender<HandOver>,
    ) -> Consult {
        self.consults
            .lock()
            .insert(call_id.to_string(), (agent.clone(), hand_over));
        Consult {
            activity: self.clone(),
            call_id: call_id.to_string(),
        }
    }

    /// The outbound call `call_id` of `agent` (another agent's is never
    /// given), to ask for its destination's leg.
    pub fn consult_of(
        &self,
        call_id: &str,
        agent: &AgentId,
    ) -> Option<mpsc::UnboundedSender<HandOver>> {
        let consults = self.consults.lock();
        let (owner, tx) = consults.get(call_id)?;
        (owner == agent).then(|| tx.clone())
    }

    /// Forgets conversations older than `keep` (called now and then so the
    /// map holds only agents of the last hours).
    pub fn prune(&self, keep: Duration, now: Instant) {
        self.recent
            .retain(|_, (_, at)| now.saturating_duration_since(*at) <= keep);
    }
}

/// One outbound call in progress of an agent; dropping it frees the place
/// and tells the dispatcher.
pub struct OutboundSlot {
    activity: Arc<AgentActivity>,
    agent: AgentId,
    dispatch: DispatchHandle,
}

impl Drop for OutboundSlot {
    fn drop(&mut self) {
        self.activity.end_outbound(&self.agent);
        self.dispatch.input(AcdInput::AgentOutboundEnded {
            agent: self.agent.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_practice_expires() {
        let a = AgentActivity::default();
        let alice = AgentId::from("alice");
        let t = Instant::now();
        assert_eq!(
            a.recent_practice(&alice, Duration::from_secs(1800), t),
            None
        );
        a.talked(&alice, "martin", t);
        let later = t + Duration::from_secs(1799);
        assert_eq!(
            a.recent_practice(&alice, Duration::from_secs(1800), later)
                .as_deref(),
            Some("martin")
        );
        let too_late = t + Duration::from_secs(1801);
        assert_eq!(
            a.recent_practice(&alice, Duration::from_secs(1800), too_late),
            None
        );
        assert_eq!(a.recent_practice(&alice, Duration::ZERO, t), None);
        a.prune(Duration::from_secs(60), too_late);
        assert_eq!(
            a.recent_practice(&alice, Duration::from_secs(3600), too_late),
            None
        );
    }
}
