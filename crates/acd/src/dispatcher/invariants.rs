//! Internal invariants, checked by the tests after every step.

use crate::io::AgentState;

use super::calls::Phase;
use super::{Dispatcher, NONE};

impl Dispatcher {
    /// Checks the internal invariants (for tests): every waiting call is
    /// indexed, no waiting call has a dispatchable eligible agent, offers
    /// are one-to-one. Returns a description of the first violation.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        for (si, slot) in self.slots.iter().enumerate() {
            let Some(c) = &slot.call else { continue };
            if self.call_by_id.get(&c.id) != Some(&(si as u32)) {
                return Err(format!("{} not in the id map", c.id));
            }
            match c.phase {
                Phase::Ringing | Phase::Connected => {
                    let a = self
                        .agents
                        .get(c.agent as usize)
                        .ok_or(format!("{} has no agent", c.id))?;
                    if a.call != si as u32 {
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
                }
                Phase::Waiting => {
                    let route = &self.routes[c.route as usize];
                    let n = (c.step as usize + 1).min(route.steps.len());
                    let overflow = if c.retargeted { route.overflow } else { None };
                    for g in route.steps[..n].iter().map(|s| s.1).chain(overflow) {
                        let group = &self.groups[g as usize];
                        if !group
                            .calls
                            .iter()
                            .any(|e| e.idx == si as u32 && e.gen == slot.gen)
                        {
                            return Err(format!("{} missing from group {g}", c.id));
                        }
                        for &ai in &group.members {
                            if self.agents[ai as usize].dispatchable {
                                return Err(format!(
                                    "{} waits while eligible agent {} is dispatchable",
                                    c.id, self.agents[ai as usize].id
                                ));
                            }
                        }
                    }
                }
            }
        }
        for (ai, a) in self.agents.iter().enumerate() {
            let has_call = a.call != NONE;
            let needs_call = matches!(a.state, AgentState::Offered | AgentState::OnCall);
            if has_call != needs_call && !(a.retired && a.state == AgentState::LoggedOut) {
                return Err(format!(
                    "agent {} is {:?} with call {}",
                    a.id, a.state, a.call
                ));
            }
            if has_call {
                let c = self
                    .call_ref(a.call)
                    .ok_or(format!("agent {} dangling", a.id))?;
                if c.agent != ai as u32 {
                    return Err(format!("agent {} call points elsewhere", a.id));
                }
            }
            if a.dispatchable
                && !(a.state == AgentState::Available
                    && a.in_shift
                    && a.reachable
                    && a.backoff_until <= self.now)
            {
                return Err(format!("agent {} dispatchable in {:?}", a.id, a.state));
            }
        }
        Ok(())
    }
}
