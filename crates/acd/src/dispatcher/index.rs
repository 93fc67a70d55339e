//! The routing index: interned skills and languages, groups (a conjunction
//! of criteria plus a ranking, with a heap of dispatchable agents and a heap
//! of waiting calls), call requirements, and routes (the groups a practice
//! uses for a requirement, by step).

use std::collections::HashMap;

use crate::config::Strategy;
use crate::heap::{call_score, Entry, LazyHeap};

use super::agents::AgentRt;
use super::calls::{Phase, Slot};
use super::time::Ms;
use super::Dispatcher;

/// String interner (skills, languages).
#[derive(Debug, Default, Clone)]
pub(super) struct Interner {
    pub(super) map: HashMap<String, u32>,
    pub(super) names: Vec<String>,
}

impl Interner {
    pub(super) fn intern(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.map.get(s) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(s.to_string());
        self.map.insert(s.to_string(), i);
        i
    }

    pub(super) fn name(&self, i: u32) -> &str {
        self.names.get(i as usize).map(String::as_str).unwrap_or("")
    }
}

/// How agents are ranked inside a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Ranking {
    pub(super) strategy: Strategy,
    /// Skill whose level ranks agents (most-skilled only).
    pub(super) skill: Option<u32>,
}

/// A resolved conjunction of criteria plus a ranking: the unit of indexing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct GroupKey {
    pub(super) dedicated: Option<u32>,
    pub(super) pool: Option<u32>,
    /// Sorted by skill, one entry per skill (highest minimum kept).
    pub(super) skills: Vec<(u32, u8)>,
    /// Sorted, deduplicated.
    pub(super) langs: Vec<u32>,
    pub(super) ranking: Ranking,
}

/// A group: its static members, its available agents and its waiting calls.
#[derive(Debug, Clone)]
pub(super) struct Group {
    pub(super) key: GroupKey,
    pub(super) members: Vec<u32>,
    /// Dispatchable agents, best first by the group's ranking.
    pub(super) agents: LazyHeap,
    /// Waiting calls having this group active, best first.
    pub(super) calls: LazyHeap,
    pub(super) live_calls: u32,
}

/// Extra requirements of a call (language, skills).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub(super) struct ReqKey {
    pub(super) lang: Option<u32>,
    pub(super) skills: Vec<(u32, u8)>,
}

/// The groups a (practice, requirements) pair uses, by step.
#[derive(Debug, Clone)]
pub(super) struct Route {
    /// (after_ms, group); groups already present in an earlier step are
    /// left out.
    pub(super) steps: Vec<(Ms, u32)>,
    /// Group of the overflow pool, if the overflow target is a pool.
    pub(super) overflow: Option<u32>,
}

pub(super) fn make_key(
    dedicated: Option<u32>,
    pool: Option<u32>,
    skill: Option<(u32, u8)>,
    lang: Option<u32>,
    req: &ReqKey,
    ranking: Ranking,
) -> GroupKey {
    let mut skills: Vec<(u32, u8)> = skill
        .into_iter()
        .chain(req.skills.iter().copied())
        .collect();
    normalize_skills(&mut skills);
    let mut langs: Vec<u32> = lang.into_iter().chain(req.lang).collect();
    langs.sort_unstable();
    langs.dedup();
    GroupKey {
        dedicated,
        pool,
        skills,
        langs,
        ranking,
    }
}

pub(super) fn normalize_skills(skills: &mut Vec<(u32, u8)>) {
    skills.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    skills.dedup_by_key(|s| s.0);
}

/// Highest step index whose delay has elapsed (0 if none has: a call is
/// always at least at step 0, eligible or not).
pub(super) fn active_step(route: &Route, elapsed: Ms) -> u32 {
    let n = route.steps.iter().take_while(|s| s.0 <= elapsed).count();
    n.saturating_sub(1) as u32
}

pub(super) fn next_relax(route: &Route, step: u32, joined: Ms) -> Option<Ms> {
    route.steps.get(step as usize + 1).map(|s| joined + s.0)
}

pub(super) fn push_call(
    groups: &mut [Group],
    slots: &[Slot],
    g: u32,
    score: u128,
    si: u32,
    gen: u32,
) {
    let group = &mut groups[g as usize];
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

pub(super) fn call_live(slots: &[Slot], e: &Entry) -> bool {
    slots.get(e.idx as usize).is_some_and(|s| {
        s.gen == e.gen && s.call.as_ref().is_some_and(|c| c.phase == Phase::Waiting)
    })
}

pub(super) fn agent_live(agents: &[AgentRt], e: &Entry) -> bool {
    agents
        .get(e.idx as usize)
        .is_some_and(|a| a.dispatchable && a.gen == e.gen)
}

impl Dispatcher {
    pub(super) fn intern_req(&mut self, key: ReqKey) -> u32 {
        if let Some(&r) = self.req_by_key.get(&key) {
            return r;
        }
        let r = self.reqs.len() as u32;
        self.reqs.push(key.clone());
        self.req_by_key.insert(key, r);
        r
    }

    /// The route of (practice, requirement), built (and its groups
    /// interned) on first use.
    pub(super) fn route_for(&mut self, pi: u32, req: u32) -> u32 {
        let p = &self.practices[pi as usize];
        if let Some(&(_, r)) = p.routes.iter().find(|(q, _)| *q == req) {
            return r;
        }
        let rk = self.reqs.get(req as usize).cloned().unwrap_or_default();
        let ranking = Ranking {
            strategy: p.strategy,
            skill: if p.strategy == Strategy::MostSkilled {
                rk.skills.first().map(|s| s.0).or(p.rank_skill)
            } else {
                None
            },
        };
        let steps = p.steps.clone();
        let overflow_pool = p.overflow_pool;
        let mut route = Route {
            steps: Vec::with_capacity(steps.len()),
            overflow: None,
        };
        for (after, sel) in steps {
            let key = make_key(
                sel.dedicated.then_some(pi),
                sel.pool,
                sel.skill,
                sel.lang,
                &rk,
                ranking,
            );
            let g = self.intern_group(key);
            if !route.steps.iter().any(|s| s.1 == g) {
                route.steps.push((after, g));
            }
        }
        if let Some(pool) = overflow_pool {
            let key = make_key(None, Some(pool), None, None, &rk, ranking);
            let g = self.intern_group(key);
            if !route.steps.iter().any(|s| s.1 == g) {
                route.overflow = Some(g);
            }
        }
        let r = self.routes.len() as u32;
        self.routes.push(route);
        self.practices[pi as usize].routes.push((req, r));
        r
    }

    pub(super) fn intern_group(&mut self, key: GroupKey) -> u32 {
        if let Some(&g) = self.group_by_key.get(&key) {
            return g;
        }
        let g = self.groups.len() as u32;
        // Candidates: the narrowest static list the key names.
        let candidates: Vec<u32> = if let Some(p) = key.dedicated {
            self.practices
                .get(p as usize)
                .map(|p| p.dedicated.clone())
                .unwrap_or_default()
        } else if let Some(p) = key.pool {
            self.pool_members
                .get(p as usize)
                .cloned()
                .unwrap_or_default()
        } else {
            (0..self.agents.len() as u32).collect()
        };
        let mut members = Vec::new();
        for ai in candidates {
            let a = &mut self.agents[ai as usize];
            if !a.retired && a.matches(&key) {
                members.push(ai);
                a.groups.push(g);
            }
        }
        self.groups.push(Group {
            key: key.clone(),
            members,
            agents: LazyHeap::default(),
            calls: LazyHeap::default(),
            live_calls: 0,
        });
        self.group_by_key.insert(key, g);
        // Agents already dispatchable join the new group's heap.
        let ranking = self.groups[g as usize].key.ranking;
        for i in 0..self.groups[g as usize].members.len() {
            let ai = self.groups[g as usize].members[i];
            let a = &self.agents[ai as usize];
            if a.dispatchable {
                let e = Entry {
                    score: a.score(ranking, ai),
                    idx: ai,
                    gen: a.gen,
                };
                self.groups[g as usize].agents.push(e);
            }
        }
        g
    }

    /// Puts a waiting call into the call heaps of its active groups.
    pub(super) fn index_call(&mut self, si: u32) {
        let Some(slot) = self.slots.get(si as usize) else {
            return;
        };
        let gen = slot.gen;
        let Some(c) = &slot.call else { return };
        let score = call_score(c.priority, c.joined, c.seq);
        let route = &self.routes[c.route as usize];
        let n = (c.step as usize + 1).min(route.steps.len());
        let overflow = if c.retargeted { route.overflow } else { None };
        for g in route.steps[..n].iter().map(|s| s.1).chain(overflow) {
            push_call(&mut self.groups, &self.slots, g, score, si, gen);
        }
    }

    /// Takes a waiting call out of the call heaps (lazily).
    pub(super) fn unindex_call(&mut self, si: u32) {
        let Some(slot) = self.slots.get_mut(si as usize) else {
            return;
        };
        let Some(c) = &slot.call else { return };
        if c.phase != Phase::Waiting {
            return;
        }
        slot.gen = slot.gen.wrapping_add(1);
        let route = &self.routes[c.route as usize];
        let n = (c.step as usize + 1).min(route.steps.len());
        let overflow = if c.retargeted { route.overflow } else { None };
        for g in route.steps[..n].iter().map(|s| s.1).chain(overflow) {
            let group = &mut self.groups[g as usize];
            group.live_calls = group.live_calls.saturating_sub(1);
        }
    }
}
