//! The estimated-wait computation (the model is documented on
//! [`Dispatcher::estimated_wait`]).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::heap::call_score;
use crate::io::AgentState;

use super::calls::{CallRt, Phase};
use super::index::{active_step, call_live, Route};
use super::time::{secs_ms, Ms};
use super::Dispatcher;

/// The `k`-th smallest value of `{f + j·service : f ∈ free, j ≥ 0}`.
pub(super) fn kth_slot(free: &[f64], k: usize, service: f64) -> f64 {
    let service = service.max(1.0);
    let mut heap: BinaryHeap<Reverse<u64>> =
        free.iter().map(|f| Reverse(f.max(0.0).to_bits())).collect();
    let mut t = 0.0;
    for _ in 0..k.max(1) {
        let Some(Reverse(b)) = heap.pop() else { break };
        t = f64::from_bits(b);
        heap.push(Reverse((t + service).to_bits()));
    }
    t
}

impl Dispatcher {
    /// When the agent is expected to be free for a new call (None: cannot
    /// serve: logged out, paused, out of shift, unreachable).
    pub(super) fn agent_free_at(&self, ai: u32, now: Ms) -> Option<f64> {
        let a = &self.agents[ai as usize];
        if a.retired || !a.in_shift || !a.reachable {
            return None;
        }
        let busy = |c: Option<&CallRt>, from: Ms| -> f64 {
            let (aht, wrap) = c
                .and_then(|c| self.practices.get(c.practice as usize))
                .map_or(
                    (
                        f64::from(self.settings.default_handle_secs) * 1000.0,
                        secs_ms(self.settings.wrap_up_secs),
                    ),
                    |p| (p.aht_ms, p.wrap_ms),
                );
            (from as f64 + aht).max(now as f64) + wrap as f64
        };
        match a.state {
            AgentState::LoggedOut | AgentState::Paused => None,
            AgentState::Available => Some(a.backoff_until.max(now) as f64),
            AgentState::WrapUp => Some(a.wrap_until.max(now) as f64),
            AgentState::Offered => Some(busy(self.call_ref(a.call), now)),
            AgentState::OnCall => {
                if a.pending_logout || a.pending_pause.is_some() {
                    return None;
                }
                let c = self.call_ref(a.call);
                Some(busy(c, c.map_or(now, |c| c.answered_at)))
            }
        }
    }

    /// Core of the estimate: see [`Dispatcher::estimated_wait`].
    pub(super) fn ewt_core(
        &self,
        pi: u32,
        route: &Route,
        joined: Ms,
        retargeted: bool,
        k: usize,
        now: Ms,
    ) -> Option<Ms> {
        let p = self.practices.get(pi as usize)?;
        let service = p.aht_ms + p.wrap_ms as f64;
        let mut seen = vec![false; self.agents.len()];
        let mut free: Vec<f64> = Vec::new();
        let mut best: Option<f64> = None;
        let overflow = if retargeted { route.overflow } else { None };
        let mut first = true;
        for &(after, g) in &route.steps {
            let groups = std::iter::once(g).chain(if first { overflow } else { None });
            first = false;
            for g in groups {
                for &ai in &self.groups[g as usize].members {
                    if std::mem::replace(&mut seen[ai as usize], true) {
                        continue;
                    }
                    if let Some(f) = self.agent_free_at(ai, now) {
                        free.push(f);
                    }
                }
            }
            if free.is_empty() {
                continue;
            }
            let t_k = kth_slot(&free, k, service);
            let start = (joined + after) as f64;
            let est = t_k.max(start);
            best = Some(best.map_or(est, |b: f64| b.min(est)));
        }
        best.map(|b| ((b - now as f64).max(0.0)).round() as Ms)
    }

    pub(super) fn call_ewt(&self, si: u32, now: Ms) -> Option<Ms> {
        let c = self.call_ref(si)?;
        if c.phase != Phase::Waiting {
            return None;
        }
        let route = &self.routes[c.route as usize];
        let score = call_score(c.priority, c.joined, c.seq);
        let n = (c.step as usize + 1).min(route.steps.len());
        let overflow = if c.retargeted { route.overflow } else { None };
        let mut ahead = std::collections::HashSet::new();
        for g in route.steps[..n].iter().map(|s| s.1).chain(overflow) {
            for e in self.groups[g as usize].calls.iter() {
                if e.score > score && call_live(&self.slots, e) {
                    ahead.insert(e.idx);
                }
            }
        }
        self.ewt_core(
            c.practice,
            route,
            c.joined,
            c.retargeted,
            ahead.len() + 1,
            now,
        )
    }

    pub(super) fn practice_ewt(&self, pi: u32, now: Ms) -> Option<Ms> {
        let p = &self.practices[pi as usize];
        let route = &self.routes[p.routes.first()?.1 as usize];
        let score = call_score(p.priority, now, u64::MAX);
        let mut ahead = std::collections::HashSet::new();
        let n = active_step(route, 0) as usize + 1;
        for &(_, g) in route.steps.iter().take(n) {
            for e in self.groups[g as usize].calls.iter() {
                if e.score > score && call_live(&self.slots, e) {
                    ahead.insert(e.idx);
                }
            }
        }
        self.ewt_core(pi, route, now, false, ahead.len() + 1, now)
    }
}
