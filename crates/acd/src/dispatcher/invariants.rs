//! Internal invariants, checked by the tests after every step.

use crate::io::AgentState;

use super::agents::AgentRt;
use super::calls::{CallRt, Phase};
use super::idx::{AgentIdx, SlotIdx};
use super::index::Target;
use super::Dispatcher;

impl Dispatcher {
    /// Checks the internal invariants (for tests): no call joined after it
    /// arrived, every waiting call is indexed, no waiting call has a
    /// dispatchable eligible agent, offers are one-to-one, no agent on an
    /// outbound call is offered a call, a transferred call is on the route
    /// of its target and rings only an agent the target (or, once
    /// retargeted, the overflow pool) allows.
    /// Returns a description of the first violation.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        for (si, slot) in self.slots.iter_enumerated() {
            let Some(c) = &slot.call else { continue };
            if self.call_by_id.get(&c.id) != Some(&si) {
                return Err(format!("{} not in the id map", c.id));
            }
            if c.joined > c.arrived {
                return Err(format!("{} joined after it arrived", c.id));
            }
            self.check_target(c)?;
            match c.phase {
                Phase::Ringing | Phase::Connected => self.check_call_agent(si, c)?,
                Phase::Waiting => self.check_waiting_call(si, slot.gen, c)?,
            }
        }
        for (ai, a) in self.agents.iter_enumerated() {
            self.check_agent(ai, a)?;
        }
        Ok(())
    }

    /// A ringing or connected call and its agent point at each other, and
    /// the agent is in the matching state.
    fn check_call_agent(&self, si: SlotIdx, c: &CallRt) -> Result<(), String> {
        let a = self
            .agents
            .get_opt(c.agent)
            .ok_or(format!("{} has no agent", c.id))?;
        if a.call != Some(si) {
            return Err(format!("{} agent {} points elsewhere", c.id, a.id));
        }
        let want = if c.phase == Phase::Ringing {
            AgentState::Offered
        } else {
            AgentState::OnCall
        };
        if a.state != want {
            return Err(format!("{} agent {} is {:?}", c.id, a.id, a.state));
        }
        Ok(())
    }

    /// A transferred call waiting or ringing is on the route of its target:
    /// the target's group alone (then at most the overflow pool); ringing,
    /// its agent is allowed. (A connected call is past routing: its target
    /// may have been removed since.)
    fn check_target(&self, c: &CallRt) -> Result<(), String> {
        let Some(t) = &c.target else { return Ok(()) };
        if c.phase == Phase::Connected {
            return Ok(());
        }
        let target = self
            .resolve_target(t)
            .map_err(|e| format!("{}: {e}", c.id))?;
        let route = &self.routes[c.route];
        let want = match (target, route.steps.as_slice()) {
            (Target::Agent(a), [(0, g)]) => self.groups[*g].key.agent == Some(a),
            (Target::Pool(p), [(0, g)]) => {
                let k = &self.groups[*g].key;
                k.pool == Some(p)
                    && k.agent.is_none()
                    && k.dedicated.is_none()
                    && k.skills.is_empty()
                    && k.langs.is_empty()
            }
            _ => false,
        };
        if !want {
            return Err(format!("{} is not on the route of its target {t:?}", c.id));
        }
        if c.phase == Phase::Ringing {
            let allowed = c
                .agent
                .is_some_and(|a| self.route_allows(c.route, c.step, c.retargeted, a));
            if !allowed {
                return Err(format!("{} (target {t:?}) rings a disallowed agent", c.id));
            }
        }
        Ok(())
    }

    /// A waiting call is in the call heap of each of its active groups, and
    /// none of their members is dispatchable.
    fn check_waiting_call(&self, si: SlotIdx, gen: u32, c: &CallRt) -> Result<(), String> {
        for g in self.routes[c.route].active_groups(c.step, c.retargeted) {
            let group = &self.groups[g];
            if !group.calls.iter().any(|e| e.idx == si && e.gen == gen) {
                return Err(format!("{} missing from group {g}", c.id));
            }
            for &ai in &group.members {
                if self.agents[ai].dispatchable {
                    return Err(format!(
                        "{} waits while eligible agent {} is dispatchable",
                        c.id, self.agents[ai].id
                    ));
                }
            }
        }
        Ok(())
    }

    /// An agent has a call exactly when offered or on a call (a retired
    /// agent that finished may keep none), the call points back, a
    /// dispatchable agent can take an offer, and no offer rings an agent on
    /// an outbound call.
    fn check_agent(&self, ai: AgentIdx, a: &AgentRt) -> Result<(), String> {
        let needs_call = matches!(a.state, AgentState::Offered | AgentState::OnCall);
        if a.call.is_some() != needs_call && !(a.retired && a.state == AgentState::LoggedOut) {
            return Err(format!(
                "agent {} is {:?} with call {:?}",
                a.id, a.state, a.call
            ));
        }
        if let Some(si) = a.call {
            let c = self
                .call_ref(si)
                .ok_or(format!("agent {} dangling", a.id))?;
            if c.agent != Some(ai) {
                return Err(format!("agent {} call points elsewhere", a.id));
            }
        }
        if a.dispatchable
            && !(a.state == AgentState::Available
                && a.in_shift
                && a.reachable
                && a.outbound_calls == 0
                && a.backoff_until <= self.now)
        {
            return Err(format!("agent {} dispatchable in {:?}", a.id, a.state));
        }
        if a.state == AgentState::Offered && a.outbound_calls > 0 {
            return Err(format!(
                "agent {} offered a call during {} outbound call(s)",
                a.id, a.outbound_calls
            ));
        }
        Ok(())
    }
}
