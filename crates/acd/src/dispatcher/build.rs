//! Building the runtime tables from a validated [`AcdConfig`]: the id maps,
//! pool and dedicated memberships (declared on either side, merged), the
//! agents and practices with their names interned and selectors resolved,
//! and the default route of every practice.

use std::collections::{BinaryHeap, HashMap, VecDeque};

use crate::config::{AcdConfig, AgentProfile, OverflowTarget, PracticePolicy, Selector, Strategy};
use crate::ids::PauseReason;
use crate::io::AgentState;

use super::agents::AgentRt;
use super::idx::{AgentIdx, Idx, IdxVec, PoolIdx, PracticeIdx, ReqIdx};
use super::index::{Interner, ReqKey};
use super::practices::{PracticeRt, Sel};
use super::time::{dur_ms, Ms};
use super::Dispatcher;

/// Who belongs where, both ways, each list sorted and deduplicated.
struct Memberships {
    pool_members: IdxVec<PoolIdx, Vec<AgentIdx>>,
    dedicated: IdxVec<PracticeIdx, Vec<AgentIdx>>,
    agent_pools: IdxVec<AgentIdx, Vec<PoolIdx>>,
    agent_dedicated: IdxVec<AgentIdx, Vec<PracticeIdx>>,
}

impl Dispatcher {
    /// A dispatcher with empty tables (and an empty configuration).
    pub(super) fn empty(config: &AcdConfig) -> Self {
        Dispatcher {
            config: AcdConfig::default(),
            settings: config.settings.clone(),
            skills: Interner::default(),
            langs: Interner::default(),
            agents: IdxVec::with_capacity(config.agents.len()),
            agent_by_id: HashMap::with_capacity(config.agents.len()),
            pool_by_id: HashMap::new(),
            pool_members: IdxVec::new(),
            practices: IdxVec::with_capacity(config.practices.len()),
            practice_by_id: HashMap::with_capacity(config.practices.len()),
            groups: IdxVec::new(),
            group_by_key: HashMap::new(),
            routes: IdxVec::new(),
            reqs: IdxVec::from_vec(vec![ReqKey::default()]),
            req_by_key: HashMap::from([(ReqKey::default(), ReqIdx::EMPTY)]),
            slots: IdxVec::new(),
            free_slots: Vec::new(),
            call_by_id: HashMap::new(),
            timers: BinaryHeap::new(),
            timer_order: 0,
            outputs: VecDeque::new(),
            started: false,
            now: Ms::MIN,
            wall_offset: 0,
            call_seq: 0,
            offer_seq: 0,
            no_answer: PauseReason::new("no-answer"),
        }
    }

    /// Fills the tables from `config` (validated: every reference resolves).
    pub(super) fn build(&mut self, config: &AcdConfig) {
        self.map_ids(config);
        let mut m = self.memberships(config);
        for (a, profile) in config.agents.iter().enumerate() {
            let ai = AgentIdx::from_usize(a);
            let pools = std::mem::take(&mut m.agent_pools[ai]);
            let dedicated = std::mem::take(&mut m.agent_dedicated[ai]);
            self.add_agent(profile, pools, dedicated);
        }
        for (p, policy) in config.practices.iter().enumerate() {
            let dedicated = std::mem::take(&mut m.dedicated[PracticeIdx::from_usize(p)]);
            self.add_practice(policy, dedicated);
        }
        self.pool_members = m.pool_members;
        // Default routes (no call requirement) are built eagerly so that the
        // common arrival path never creates groups.
        for pi in self.practices.indices() {
            self.route_for(pi, ReqIdx::EMPTY);
        }
    }

    /// Configuration order gives every agent, pool and practice its index.
    fn map_ids(&mut self, config: &AcdConfig) {
        for (i, p) in config.pools.iter().enumerate() {
            self.pool_by_id.insert(p.id.clone(), PoolIdx::from_usize(i));
        }
        for (i, p) in config.practices.iter().enumerate() {
            self.practice_by_id
                .insert(p.id.clone(), PracticeIdx::from_usize(i));
        }
        for (i, a) in config.agents.iter().enumerate() {
            self.agent_by_id
                .insert(a.id.clone(), AgentIdx::from_usize(i));
        }
    }

    /// Pool and dedicated memberships, merged from the pools and practices
    /// (`members`, `dedicated_agents`) and from the agents (`pools`,
    /// `practices`).
    fn memberships(&self, config: &AcdConfig) -> Memberships {
        let mut pool_members = IdxVec::filled(Vec::new(), config.pools.len());
        let mut dedicated = IdxVec::filled(Vec::new(), config.practices.len());
        for (pool, list) in config.pools.iter().zip(pool_members.iter_mut()) {
            list.extend(pool.members.iter().filter_map(|m| self.agent_by_id.get(m)));
        }
        for (pr, list) in config.practices.iter().zip(dedicated.iter_mut()) {
            list.extend(
                pr.dedicated_agents
                    .iter()
                    .filter_map(|m| self.agent_by_id.get(m)),
            );
        }
        for (i, a) in config.agents.iter().enumerate() {
            let ai = AgentIdx::from_usize(i);
            for p in a.pools.iter().filter_map(|p| self.pool_by_id.get(p)) {
                pool_members[*p].push(ai);
            }
            for p in a
                .practices
                .iter()
                .filter_map(|p| self.practice_by_id.get(p))
            {
                dedicated[*p].push(ai);
            }
        }
        for list in pool_members.iter_mut().chain(dedicated.iter_mut()) {
            list.sort_unstable();
            list.dedup();
        }
        Memberships {
            agent_pools: invert(&pool_members, config.agents.len()),
            agent_dedicated: invert(&dedicated, config.agents.len()),
            pool_members,
            dedicated,
        }
    }

    fn add_agent(
        &mut self,
        a: &AgentProfile,
        pools: Vec<PoolIdx>,
        dedicated: Vec<PracticeIdx>,
    ) -> AgentIdx {
        let mut skills: Vec<_> = a
            .skills
            .iter()
            .map(|(s, &l)| (self.skills.intern(s), l))
            .collect();
        skills.sort_unstable();
        let mut langs: Vec<_> = a.languages.iter().map(|l| self.langs.intern(l)).collect();
        langs.sort_unstable();
        langs.dedup();
        self.agents.push(AgentRt {
            id: a.id.clone(),
            skills,
            langs,
            pools,
            dedicated,
            shift: a.shift.clone(),
            groups: Vec::new(),
            retired: false,
            logged_in_at_start: a.logged_in,
            state: AgentState::LoggedOut,
            pause_reason: None,
            in_shift: a.shift.is_none(),
            shift_next: None,
            reachable: true,
            outbound_calls: 0,
            backoff_until: Ms::MIN,
            idle_since: 0,
            last_offer: 0,
            strikes: 0,
            dispatchable: false,
            gen: 0,
            call: None,
            pending_logout: false,
            pending_pause: None,
            wrap_until: 0,
            wrap_override: a.wrap_up.map(dur_ms),
        })
    }

    fn add_practice(&mut self, p: &PracticePolicy, dedicated: Vec<AgentIdx>) -> PracticeIdx {
        let steps = p
            .steps
            .iter()
            .map(|st| (dur_ms(st.after), self.resolve(&st.select)))
            .collect();
        let s = &self.settings;
        let strategy = p.strategy.unwrap_or(s.strategy);
        let mut rt = PracticeRt {
            id: p.id.clone(),
            dedicated,
            hours: p.hours.clone(),
            open: true,
            open_from: Ms::MAX,
            open_until: Ms::MIN,
            steps,
            routes: Vec::new(),
            target_routes: Vec::new(),
            priority: p.priority,
            max_wait_ms: p.max_wait.map(dur_ms),
            overflow: p.overflow.clone(),
            overflow_pool: match &p.overflow {
                OverflowTarget::Pool(id) => self.pool_by_id.get(id).copied(),
                _ => None,
            },
            wrap_ms: dur_ms(p.wrap_up.unwrap_or(s.wrap_up)),
            ring_ms: dur_ms(p.ring_timeout.unwrap_or(s.ring_timeout)),
            max_strikes: p.max_no_answer_strikes.unwrap_or(s.max_no_answer_strikes),
            aht_ms: p.default_handle.unwrap_or(s.default_handle).as_secs_f64() * 1000.0,
            rank_skill: None,
            strategy,
            calls: Vec::new(),
        };
        if strategy == Strategy::MostSkilled {
            rt.rank_skill = p.specialty.as_ref().map(|x| self.skills.intern(x));
        }
        self.practices.push(rt)
    }

    /// A routing selector with its names interned and its pool resolved.
    fn resolve(&mut self, sel: &Selector) -> Sel {
        Sel {
            dedicated: sel.dedicated,
            pool: sel
                .pool
                .as_ref()
                .and_then(|x| self.pool_by_id.get(x).copied()),
            skill: sel
                .skill
                .as_ref()
                .map(|x| (self.skills.intern(x), sel.min_level.max(1))),
            lang: sel.language.as_ref().map(|x| self.langs.intern(x)),
        }
    }
}

/// For each agent, the entities (pools or practices) whose list holds it,
/// in entity order.
fn invert<I: Idx>(lists: &IdxVec<I, Vec<AgentIdx>>, agents: usize) -> IdxVec<AgentIdx, Vec<I>> {
    let mut out = IdxVec::filled(Vec::new(), agents);
    for (e, list) in lists.iter_enumerated() {
        for &ai in list {
            out[ai].push(e);
        }
    }
    out
}
