//! The routing index.
//!
//! * Skill and language names are interned ([`Interner`]).
//! * A call's extra requirements (language, skills) are interned as a
//!   [`ReqKey`]; index 0 is "no requirement".
//! * A [`Group`] is a conjunction of criteria plus a ranking ([`GroupKey`]):
//!   its static members, a heap of its dispatchable agents (best first by
//!   the ranking) and a heap of the waiting calls for which it is active
//!   (priority, then join time). Groups are shared by every practice using
//!   the same criteria (a shared pool is one group).
//! * A [`Route`] lists, for a (practice, requirement) pair, the group of
//!   each routing step and of the overflow pool; it is built on first use
//!   ([`Dispatcher::route_for`]).
//! * A call transferred to an agent or a pool (`CallArrival::target`) has
//!   a *targeted* route instead ([`Dispatcher::target_route`]): one step at
//!   0 s, the group of the target alone (an agent's own group: key
//!   `agent`, shared by every practice; or the pool's members), plus the
//!   practice's overflow pool. Nothing else ever relaxes it, and the
//!   matching code (heaps, dispatch, invariants) is the same as for any
//!   route: an agent's own group is one more group in its list, with an
//!   empty call heap unless a call is transferred to it.
//!
//! Heap entries are removed lazily: an entry is live while its agent or
//! call slot still has the generation it was pushed with (see `heap.rs`).

use std::collections::HashMap;

use crate::config::Strategy;
use crate::heap::{Entry, LazyHeap};

use super::agents::AgentRt;
use super::calls::{Phase, Slot};
use super::idx::{
    AgentIdx, GroupIdx, Idx, IdxVec, LangIdx, PoolIdx, PracticeIdx, ReqIdx, RouteIdx, SkillIdx,
    SlotIdx,
};
use super::time::Ms;
use super::Dispatcher;

/// String interner (skills, languages).
#[derive(Debug, Clone)]
pub(super) struct Interner<I> {
    map: HashMap<String, I>,
    names: IdxVec<I, String>,
}

impl<I: Idx> Default for Interner<I> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            names: IdxVec::new(),
        }
    }
}

impl<I: Idx> Interner<I> {
    pub(super) fn intern(&mut self, s: &str) -> I {
        if let Some(&i) = self.map.get(s) {
            return i;
        }
        let i = self.names.push(s.to_string());
        self.map.insert(s.to_string(), i);
        i
    }

    pub(super) fn name(&self, i: I) -> &str {
        self.names.get(i).map(String::as_str).unwrap_or("")
    }
}

/// A skill requirement: the skill and its minimum level.
pub(super) type SkillLevel = (SkillIdx, u8);

/// How agents are ranked inside a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Ranking {
    pub(super) strategy: Strategy,
    /// Skill whose level ranks agents (most-skilled only).
    pub(super) skill: Option<SkillIdx>,
}

/// Ranking of an agent's own group (one member: any ranking would do; a
/// fixed one lets every practice share the group).
const SOLE_AGENT: Ranking = Ranking {
    strategy: Strategy::LongestIdle,
    skill: None,
};

/// A resolved conjunction of criteria plus a ranking: the unit of indexing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct GroupKey {
    /// This agent only (the group of a call transferred to it).
    pub(super) agent: Option<AgentIdx>,
    pub(super) dedicated: Option<PracticeIdx>,
    pub(super) pool: Option<PoolIdx>,
    /// Sorted by skill, one entry per skill (highest minimum kept).
    pub(super) skills: Vec<SkillLevel>,
    /// Sorted, deduplicated.
    pub(super) langs: Vec<LangIdx>,
    pub(super) ranking: Ranking,
}

/// A group: its static members, its available agents and its waiting calls.
#[derive(Debug, Clone)]
pub(super) struct Group {
    pub(super) key: GroupKey,
    pub(super) members: Vec<AgentIdx>,
    /// Dispatchable agents, best first by the group's ranking.
    pub(super) agents: LazyHeap<AgentIdx>,
    /// Waiting calls having this group active, best first.
    pub(super) calls: LazyHeap<SlotIdx>,
    /// Calls pushed and not unindexed since (bounds the stale entries).
    pub(super) live_calls: u32,
}

/// Extra requirements of a call (language, skills).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub(super) struct ReqKey {
    pub(super) lang: Option<LangIdx>,
    pub(super) skills: Vec<SkillLevel>,
}

/// Whom a transferred call may go to (`CallArrival::target`), resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Target {
    Agent(AgentIdx),
    Pool(PoolIdx),
}

/// The key of the group of a target: the agent alone, or the pool's
/// members ranked by `ranking`, without any other criterion.
pub(super) fn target_key(target: Target, ranking: Ranking) -> GroupKey {
    match target {
        Target::Agent(a) => GroupKey {
            agent: Some(a),
            dedicated: None,
            pool: None,
            skills: Vec::new(),
            langs: Vec::new(),
            ranking: SOLE_AGENT,
        },
        Target::Pool(p) => make_key(None, Some(p), None, None, &ReqKey::default(), ranking),
    }
}

/// The groups a (practice, requirements) pair uses, by step.
#[derive(Debug, Clone)]
pub(super) struct Route {
    /// (after_ms, group); groups already present in an earlier step are
    /// left out.
    pub(super) steps: Vec<(Ms, GroupIdx)>,
    /// Group of the overflow pool, if the overflow target is a pool.
    pub(super) overflow: Option<GroupIdx>,
}

impl Route {
    /// The groups active for a call at `step`: steps `0..=step`, plus the
    /// overflow pool's group once the call is retargeted.
    #[inline]
    pub(super) fn active_groups(
        &self,
        step: u32,
        retargeted: bool,
    ) -> impl Iterator<Item = GroupIdx> + '_ {
        let n = (step as usize + 1).min(self.steps.len());
        let overflow = if retargeted { self.overflow } else { None };
        self.steps[..n].iter().map(|s| s.1).chain(overflow)
    }
}

/// The key of a step's group: the step's selector combined with the call's
/// requirements.
pub(super) fn make_key(
    dedicated: Option<PracticeIdx>,
    pool: Option<PoolIdx>,
    skill: Option<SkillLevel>,
    lang: Option<LangIdx>,
    req: &ReqKey,
    ranking: Ranking,
) -> GroupKey {
    let mut skills: Vec<SkillLevel> = skill
        .into_iter()
        .chain(req.skills.iter().copied())
        .collect();
    normalize_skills(&mut skills);
    let mut langs: Vec<LangIdx> = lang.into_iter().chain(req.lang).collect();
    langs.sort_unstable();
    langs.dedup();
    GroupKey {
        agent: None,
        dedicated,
        pool,
        skills,
        langs,
        ranking,
    }
}

/// Sorts by skill and keeps one entry per skill, the highest minimum.
pub(super) fn normalize_skills(skills: &mut Vec<SkillLevel>) {
    skills.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    skills.dedup_by_key(|s| s.0);
}

/// Highest step index whose delay has elapsed (0 if none has: a call is
/// always at least at step 0, eligible or not).
pub(super) fn active_step(route: &Route, elapsed: Ms) -> u32 {
    let n = route.steps.iter().take_while(|s| s.0 <= elapsed).count();
    n.saturating_sub(1) as u32
}

/// When a call at `step` that joined at `joined` reaches its next step.
pub(super) fn next_relax(route: &Route, step: u32, joined: Ms) -> Option<Ms> {
    route.steps.get(step as usize + 1).map(|s| joined + s.0)
}

/// Pushes a waiting call into a group's call heap, compacting the heap when
/// stale entries outnumber the live ones.
#[inline]
pub(super) fn push_call(
    groups: &mut IdxVec<GroupIdx, Group>,
    slots: &IdxVec<SlotIdx, Slot>,
    g: GroupIdx,
    score: u128,
    si: SlotIdx,
    gen: u32,
) {
    let group = &mut groups[g];
    group.calls.push(Entry {
        score,
        idx: si,
        gen,
    });
    group.live_calls += 1;
    if group.calls.len() > 2 * group.live_calls as usize + 32 {
        group.calls.compact(|e| call_live(slots, e));
        group.live_calls = group.calls.len() as u32;
    }
}

/// A call heap entry is live while its slot has the same generation and
/// holds a waiting call.
#[inline]
pub(super) fn call_live(slots: &IdxVec<SlotIdx, Slot>, e: &Entry<SlotIdx>) -> bool {
    slots.get(e.idx).is_some_and(|s| {
        s.gen == e.gen && s.call.as_ref().is_some_and(|c| c.phase == Phase::Waiting)
    })
}

/// An agent heap entry is live while the agent is dispatchable with the
/// same generation.
#[inline]
pub(super) fn agent_live(agents: &IdxVec<AgentIdx, AgentRt>, e: &Entry<AgentIdx>) -> bool {
    agents
        .get(e.idx)
        .is_some_and(|a| a.dispatchable && a.gen == e.gen)
}

impl Dispatcher {
    pub(super) fn intern_req(&mut self, key: ReqKey) -> ReqIdx {
        if let Some(&r) = self.req_by_key.get(&key) {
            return r;
        }
        let r = self.reqs.push(key.clone());
        self.req_by_key.insert(key, r);
        r
    }

    /// How a practice ranks the agents of the groups of a call with
    /// requirement `rk`.
    fn ranking(&self, pi: PracticeIdx, rk: &ReqKey) -> Ranking {
        let p = &self.practices[pi];
        Ranking {
            strategy: p.strategy,
            skill: if p.strategy == Strategy::MostSkilled {
                rk.skills.first().map(|s| s.0).or(p.rank_skill)
            } else {
                None
            },
        }
    }

    /// The route of (practice, requirement), built (and its groups
    /// interned) on first use.
    pub(super) fn route_for(&mut self, pi: PracticeIdx, req: ReqIdx) -> RouteIdx {
        let p = &self.practices[pi];
        if let Some(&(_, r)) = p.routes.iter().find(|(q, _)| *q == req) {
            return r;
        }
        let rk = self.reqs.get(req).cloned().unwrap_or_default();
        let ranking = self.ranking(pi, &rk);
        let p = &self.practices[pi];
        let steps = p.steps.clone();
        let overflow_pool = p.overflow_pool;
        let mut route = Route {
            steps: Vec::with_capacity(steps.len()),
            overflow: None,
        };
        for (after, sel) in steps {
            let dedicated = sel.dedicated.then_some(pi);
            let key = make_key(dedicated, sel.pool, sel.skill, sel.lang, &rk, ranking);
            let g = self.intern_group(key);
            if !route.steps.iter().any(|s| s.1 == g) {
                route.steps.push((after, g));
            }
        }
        route.overflow = self.overflow_group(overflow_pool, &rk, ranking, &route);
        let r = self.routes.push(route);
        self.practices[pi].routes.push((req, r));
        r
    }

    /// The route of a call of (practice, requirement) transferred to
    /// `target`, built on first use: one step at 0 s, the target's group
    /// (the requirement does not narrow it), then the practice's overflow
    /// pool (with the requirement) once the call is retargeted.
    pub(super) fn target_route(
        &mut self,
        pi: PracticeIdx,
        req: ReqIdx,
        target: Target,
    ) -> RouteIdx {
        let p = &self.practices[pi];
        let known = p.target_routes.iter().find(|e| e.0 == target && e.1 == req);
        if let Some(&(_, _, r)) = known {
            return r;
        }
        let rk = self.reqs.get(req).cloned().unwrap_or_default();
        let ranking = self.ranking(pi, &rk);
        let overflow_pool = self.practices[pi].overflow_pool;
        let g = self.intern_group(target_key(target, ranking));
        let mut route = Route {
            steps: vec![(0, g)],
            overflow: None,
        };
        route.overflow = self.overflow_group(overflow_pool, &rk, ranking, &route);
        let r = self.routes.push(route);
        self.practices[pi].target_routes.push((target, req, r));
        r
    }

    /// The group of the overflow pool of a route, unless a step already
    /// has it.
    fn overflow_group(
        &mut self,
        pool: Option<PoolIdx>,
        rk: &ReqKey,
        ranking: Ranking,
        route: &Route,
    ) -> Option<GroupIdx> {
        let key = make_key(None, Some(pool?), None, None, rk, ranking);
        let g = self.intern_group(key);
        (!route.steps.iter().any(|s| s.1 == g)).then_some(g)
    }

    /// The group of `key`, created on first use with its matching agents
    /// (the already dispatchable ones go into its agent heap).
    pub(super) fn intern_group(&mut self, key: GroupKey) -> GroupIdx {
        if let Some(&g) = self.group_by_key.get(&key) {
            return g;
        }
        let g = self.groups.push(Group {
            key: key.clone(),
            members: Vec::new(),
            agents: LazyHeap::default(),
            calls: LazyHeap::default(),
            live_calls: 0,
        });
        self.group_by_key.insert(key, g);
        for ai in self.group_candidates(&self.groups[g].key) {
            let a = &mut self.agents[ai];
            if a.retired || !a.matches(ai, &self.groups[g].key) {
                continue;
            }
            a.groups.push(g);
            let group = &mut self.groups[g];
            group.members.push(ai);
            if a.dispatchable {
                group.agents.push(Entry {
                    score: a.score(group.key.ranking, ai),
                    idx: ai,
                    gen: a.gen,
                });
            }
        }
        g
    }

    /// The narrowest static list of agents a group key names.
    fn group_candidates(&self, key: &GroupKey) -> Vec<AgentIdx> {
        if let Some(a) = key.agent {
            vec![a]
        } else if let Some(p) = key.dedicated {
            self.practices
                .get(p)
                .map(|p| p.dedicated.clone())
                .unwrap_or_default()
        } else if let Some(p) = key.pool {
            self.pool_members.get(p).cloned().unwrap_or_default()
        } else {
            self.agents.indices().collect()
        }
    }

    /// Whether `ai` belongs to a group active for a call on `route` at
    /// `step` (`retargeted`: with the overflow pool). Scans the members:
    /// for reconfigurations and invariant checks, not the dispatch path.
    pub(super) fn route_allows(
        &self,
        route: RouteIdx,
        step: u32,
        retargeted: bool,
        ai: AgentIdx,
    ) -> bool {
        self.routes.get(route).is_some_and(|r| {
            r.active_groups(step, retargeted)
                .any(|g| self.groups[g].members.contains(&ai))
        })
    }

    /// Puts a waiting call into the call heaps of its active groups.
    pub(super) fn index_call(&mut self, si: SlotIdx) {
        let Some(slot) = self.slots.get(si) else {
            return;
        };
        let gen = slot.gen;
        let Some(c) = &slot.call else { return };
        let score = c.score();
        let route = &self.routes[c.route];
        for g in route.active_groups(c.step, c.retargeted) {
            push_call(&mut self.groups, &self.slots, g, score, si, gen);
        }
    }

    /// Takes a waiting call out of the call heaps (lazily: bumps the slot
    /// generation).
    pub(super) fn unindex_call(&mut self, si: SlotIdx) {
        let Some(slot) = self.slots.get_mut(si) else {
            return;
        };
        let Some(c) = &slot.call else { return };
        if c.phase != Phase::Waiting {
            return;
        }
        slot.gen = slot.gen.wrapping_add(1);
        for g in self.routes[c.route].active_groups(c.step, c.retargeted) {
            let group = &mut self.groups[g];
            group.live_calls = group.live_calls.saturating_sub(1);
        }
    }
}
