//! The estimated-wait computation: when each eligible agent frees up
//! (`agent_free_at`), how many calls are ahead (`calls_ahead`), and the
//! `k`-th service slot over the routing steps (`ewt_core`, `kth_slot`). The
//! model is documented on [`Dispatcher::estimated_wait`] (`queries.rs`).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};

use crate::heap::call_score;
use crate::io::AgentState;

use super::calls::{CallRt, Phase};
use super::idx::{AgentIdx, IdxVec, PracticeIdx, SlotIdx};
use super::index::{active_step, call_live, Route};
use super::time::{dur_ms, Ms};
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
    pub(super) fn agent_free_at(&self, ai: AgentIdx, now: Ms) -> Option<f64> {
        let a = &self.agents[ai];
        if a.retired || !a.in_shift || !a.reachable {
            return None;
        }
        let busy = |c: Option<&CallRt>, from: Ms| -> f64 {
            let (aht, wrap) = c.and_then(|c| self.practices.get_opt(c.practice)).map_or(
                (
                    self.settings.default_handle.as_secs_f64() * 1000.0,
                    dur_ms(self.settings.wrap_up),
                ),
                |p| (p.aht_ms, p.wrap_ms),
            );
            (from as f64 + aht).max(now as f64) + wrap as f64
        };
        match a.state {
            AgentState::LoggedOut | AgentState::Paused => None,
            AgentState::Available => Some(a.backoff_until.max(now) as f64),
            AgentState::WrapUp => Some(a.wrap_until.max(now) as f64),
            AgentState::Offered => Some(busy(a.call.and_then(|s| self.call_ref(s)), now)),
            AgentState::OnCall => {
                if a.pending_logout || a.pending_pause.is_some() {
                    return None;
                }
                let c = a.call.and_then(|s| self.call_ref(s));
                Some(busy(c, c.map_or(now, |c| c.answered_at)))
            }
        }
    }

    /// Core of the estimate: see [`Dispatcher::estimated_wait`].
    pub(super) fn ewt_core(
        &self,
        pi: PracticeIdx,
        route: &Route,
        joined: Ms,
        retargeted: bool,
        k: usize,
        now: Ms,
    ) -> Option<Ms> {
        let p = self.practices.get(pi)?;
        let service = p.aht_ms + p.wrap_ms as f64;
        let mut seen: IdxVec<AgentIdx, bool> = IdxVec::filled(false, self.agents.len());
        let mut free: Vec<f64> = Vec::new();
        let mut best: Option<f64> = None;
        let overflow = if retargeted { route.overflow } else { None };
        let mut first = true;
        for &(after, g) in &route.steps {
            let groups = std::iter::once(g).chain(if first { overflow } else { None });
            first = false;
            for g in groups {
                for &ai in &self.groups[g].members {
                    if std::mem::replace(&mut seen[ai], true) {
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

    /// Estimated remaining wait of a waiting call.
    pub(super) fn call_ewt(&self, si: SlotIdx, now: Ms) -> Option<Ms> {
        let c = self.call_ref(si)?;
        if c.phase != Phase::Waiting {
            return None;
        }
        let route = &self.routes[c.route];
        let score = c.score();
        let k = self.calls_ahead(route, c.step, c.retargeted, score) + 1;
        self.ewt_core(c.practice?, route, c.joined, c.retargeted, k, now)
    }

    /// Estimated wait of a call of the practice arriving now with the base
    /// priority and no requirement.
    pub(super) fn practice_ewt(&self, pi: PracticeIdx, now: Ms) -> Option<Ms> {
        let p = &self.practices[pi];
        let route = &self.routes[p.routes.first()?.1];
        let score = call_score(p.priority, now, u64::MAX);
        let k = self.calls_ahead(route, active_step(route, 0), false, score) + 1;
        self.ewt_core(pi, route, now, false, k, now)
    }

    /// Distinct waiting calls scoring above `score` in the groups active at
    /// `step`.
    fn calls_ahead(&self, route: &Route, step: u32, retargeted: bool, score: u128) -> usize {
        let mut ahead = HashSet::new();
        for g in route.active_groups(step, retargeted) {
            for e in self.groups[g].calls.iter() {
                if e.score > score && call_live(&self.slots, e) {
                    ahead.insert(e.idx);
                }
            }
        }
        ahead.len()
    }
}
