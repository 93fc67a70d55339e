//! The dispatcher state machine.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};
use permanence_calendar::Schedule;

use crate::config::{AcdConfig, AcdSettings, OverflowTarget, Strategy};
use crate::error::AcdError;
use crate::heap::{agent_score, call_score, Entry, LazyHeap};
use crate::ids::{AgentId, CallId, PauseReason, PoolId, PracticeId};
use crate::io::{
    AbandonPhase, Action, AgentState, CallArrival, CancelReason, ChangeReason, Event, Input,
    OfferFailure, Output, OverflowReason,
};
use crate::snapshot::{AgentSnapshot, CallPhase, CallSnapshot, EligibleAgents, QueueSnapshot};

/// Milliseconds since the Unix epoch (internal time).
type Ms = i64;

const NONE: u32 = u32::MAX;
/// How far ahead a schedule with no change in sight is looked at again.
const RECHECK_MS: Ms = 30 * 86_400_000;

fn ms_of(t: DateTime<Utc>) -> Ms {
    t.timestamp_millis()
}

fn time_of(ms: Ms) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn dur(ms: Ms) -> Duration {
    Duration::from_millis(ms.max(0) as u64)
}

fn secs_ms(s: u32) -> Ms {
    Ms::from(s) * 1000
}

/// String interner (skills, languages).
#[derive(Debug, Default, Clone)]
struct Interner {
    map: HashMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.map.get(s) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(s.to_string());
        self.map.insert(s.to_string(), i);
        i
    }

    fn name(&self, i: u32) -> &str {
        self.names.get(i as usize).map(String::as_str).unwrap_or("")
    }
}

/// How agents are ranked inside a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Ranking {
    strategy: Strategy,
    /// Skill whose level ranks agents (most-skilled only).
    skill: Option<u32>,
}

/// A resolved conjunction of criteria plus a ranking: the unit of indexing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GroupKey {
    dedicated: Option<u32>,
    pool: Option<u32>,
    /// Sorted by skill, one entry per skill (highest minimum kept).
    skills: Vec<(u32, u8)>,
    /// Sorted, deduplicated.
    langs: Vec<u32>,
    ranking: Ranking,
}

/// A group: its static members, its available agents and its waiting calls.
#[derive(Debug, Clone)]
struct Group {
    key: GroupKey,
    members: Vec<u32>,
    /// Dispatchable agents, best first by the group's ranking.
    agents: LazyHeap,
    /// Waiting calls having this group active, best first.
    calls: LazyHeap,
    live_calls: u32,
}

/// Extra requirements of a call (language, skills).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
struct ReqKey {
    lang: Option<u32>,
    skills: Vec<(u32, u8)>,
}

/// The groups a (practice, requirements) pair uses, by step.
#[derive(Debug, Clone)]
struct Route {
    /// (after_ms, group); groups already present in an earlier step are
    /// left out.
    steps: Vec<(Ms, u32)>,
    /// Group of the overflow pool, if the overflow target is a pool.
    overflow: Option<u32>,
}

/// A resolved routing selector.
#[derive(Debug, Clone, Copy)]
struct Sel {
    dedicated: bool,
    pool: Option<u32>,
    skill: Option<(u32, u8)>,
    lang: Option<u32>,
}

#[derive(Debug, Clone)]
struct PracticeRt {
    id: PracticeId,
    hours: Option<Schedule>,
    /// Cached open state valid on `[open_from, open_until)`.
    open: bool,
    open_from: Ms,
    open_until: Ms,
    steps: Vec<(Ms, Sel)>,
    /// Routes by requirement id (index 0 = no requirement).
    routes: Vec<(u32, u32)>,
    priority: i32,
    max_wait_ms: Option<Ms>,
    overflow: OverflowTarget,
    overflow_pool: Option<u32>,
    wrap_ms: Ms,
    ring_ms: Ms,
    max_strikes: u32,
    aht_ms: f64,
    rank_skill: Option<u32>,
    strategy: Strategy,
    /// Slots of waiting and ringing calls.
    calls: Vec<u32>,
    /// Dedicated agents.
    dedicated: Vec<u32>,
}

#[derive(Debug, Clone)]
struct AgentRt {
    id: AgentId,
    skills: Vec<(u32, u8)>,
    langs: Vec<u32>,
    pools: Vec<u32>,
    dedicated: Vec<u32>,
    shift: Option<Schedule>,
    groups: Vec<u32>,
    retired: bool,
    logged_in_at_start: bool,
    state: AgentState,
    pause_reason: Option<PauseReason>,
    in_shift: bool,
    shift_next: Option<Ms>,
    reachable: bool,
    backoff_until: Ms,
    idle_since: Ms,
    last_offer: u64,
    strikes: u32,
    dispatchable: bool,
    gen: u32,
    call: u32,
    pending_logout: bool,
    pending_pause: Option<PauseReason>,
    wrap_until: Ms,
    /// The agent's own wrap-up time, if it overrides the practice's.
    wrap_override: Option<Ms>,
}

impl AgentRt {
    fn level(&self, skill: u32) -> u8 {
        match self.skills.binary_search_by_key(&skill, |s| s.0) {
            Ok(i) => self.skills[i].1,
            Err(_) => 0,
        }
    }

    fn matches(&self, key: &GroupKey) -> bool {
        if let Some(p) = key.dedicated {
            if self.dedicated.binary_search(&p).is_err() {
                return false;
            }
        }
        if let Some(p) = key.pool {
            if self.pools.binary_search(&p).is_err() {
                return false;
            }
        }
        key.skills.iter().all(|&(s, l)| self.level(s) >= l.max(1))
            && key
                .langs
                .iter()
                .all(|l| self.langs.binary_search(l).is_ok())
    }

    fn score(&self, ranking: Ranking, idx: u32) -> u128 {
        match ranking.strategy {
            Strategy::LongestIdle => agent_score(0, self.idle_since, u64::from(idx)),
            Strategy::MostSkilled => agent_score(
                ranking.skill.map_or(0, |s| u32::from(self.level(s))),
                self.idle_since,
                u64::from(idx),
            ),
            Strategy::RoundRobin => agent_score(0, self.last_offer as i64, u64::from(idx)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Waiting,
    Ringing,
    Connected,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Waiting => "waiting",
            Phase::Ringing => "ringing",
            Phase::Connected => "connected",
        }
    }
}

#[derive(Debug, Clone)]
struct CallRt {
    id: CallId,
    seq: u64,
    practice: u32,
    req: u32,
    route: u32,
    step: u32,
    retargeted: bool,
    priority: i32,
    joined: Ms,
    phase: Phase,
    agent: u32,
    next_relax: Option<Ms>,
    max_wait_at: Option<Ms>,
    overflow_pending: bool,
    ring_deadline: Ms,
    offer_seq: u64,
    answered_at: Ms,
    wrap_ms: Ms,
}

#[derive(Debug, Clone, Default)]
struct Slot {
    gen: u32,
    call: Option<CallRt>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    Ring { call: u32, offer: u64 },
    Relax { call: u32, seq: u64 },
    MaxWait { call: u32, seq: u64 },
    Wrap { agent: u32 },
    Backoff { agent: u32 },
    Shift { agent: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    at: Ms,
    order: u64,
    kind: TimerKind,
}

/// The ACD dispatcher: a sans-IO state machine.
///
/// Drive it like quinn-proto or str0m:
///
/// * feed driver events with [`Dispatcher::handle_input`] and the clock with
///   [`Dispatcher::handle_timeout`] (call it when [`Dispatcher::poll_timeout`]
///   is reached; calling it early is harmless);
/// * after each call, drain [`Dispatcher::poll_output`]: [`Output::Action`]s
///   go to the SIP driver, [`Output::Event`]s to metrics and the call log.
///
/// Time is always passed in; the dispatcher never reads a clock. Time going
/// backwards is clamped to the latest time seen. The first `handle_*` call
/// starts the clock: agents configured `logged_in` become available then,
/// and shift windows are evaluated from that instant.
///
/// Indexing: every (practice, call requirements) pair resolves each routing
/// step to a *group* (a conjunction of criteria plus a ranking), shared by
/// all practices with the same criteria (a shared pool is one group). Each
/// group keeps a heap of its dispatchable agents (by the ranking) and a heap
/// of the waiting calls for which it is active (by priority, then join
/// time). A new or relaxed call peeks the agent heaps of its active groups;
/// an agent becoming dispatchable peeks the call heaps of its groups. A
/// decision therefore costs O(groups involved × log n), independent of the
/// number of practices and of the agents outside the groups. Invariant after
/// every method returns: no waiting call has a dispatchable eligible agent.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    config: AcdConfig,
    settings: AcdSettings,
    skills: Interner,
    langs: Interner,
    agents: Vec<AgentRt>,
    agent_by_id: HashMap<AgentId, u32>,
    pools: Vec<PoolId>,
    pool_by_id: HashMap<PoolId, u32>,
    pool_members: Vec<Vec<u32>>,
    practices: Vec<PracticeRt>,
    practice_by_id: HashMap<PracticeId, u32>,
    groups: Vec<Group>,
    group_by_key: HashMap<GroupKey, u32>,
    routes: Vec<Route>,
    reqs: Vec<ReqKey>,
    req_by_key: HashMap<ReqKey, u32>,
    slots: Vec<Slot>,
    free_slots: Vec<u32>,
    call_by_id: HashMap<CallId, u32>,
    timers: BinaryHeap<Reverse<Timer>>,
    timer_order: u64,
    outputs: VecDeque<Output>,
    started: bool,
    now: Ms,
    call_seq: u64,
    offer_seq: u64,
    no_answer: PauseReason,
}

impl Dispatcher {
    /// Builds a dispatcher, validating every reference of the configuration.
    pub fn new(config: AcdConfig) -> Result<Self, AcdError> {
        config.validate()?;
        let settings = config.settings.clone();
        let mut d = Dispatcher {
            config: AcdConfig::default(),
            settings,
            skills: Interner::default(),
            langs: Interner::default(),
            agents: Vec::with_capacity(config.agents.len()),
            agent_by_id: HashMap::with_capacity(config.agents.len()),
            pools: Vec::new(),
            pool_by_id: HashMap::new(),
            pool_members: Vec::new(),
            practices: Vec::with_capacity(config.practices.len()),
            practice_by_id: HashMap::with_capacity(config.practices.len()),
            groups: Vec::new(),
            group_by_key: HashMap::new(),
            routes: Vec::new(),
            reqs: vec![ReqKey::default()],
            req_by_key: HashMap::from([(ReqKey::default(), 0)]),
            slots: Vec::new(),
            free_slots: Vec::new(),
            call_by_id: HashMap::new(),
            timers: BinaryHeap::new(),
            timer_order: 0,
            outputs: VecDeque::new(),
            started: false,
            now: Ms::MIN,
            call_seq: 0,
            offer_seq: 0,
            no_answer: PauseReason::new("no-answer"),
        };
        for (i, p) in config.pools.iter().enumerate() {
            d.pools.push(p.id.clone());
            d.pool_by_id.insert(p.id.clone(), i as u32);
        }
        for (i, p) in config.practices.iter().enumerate() {
            d.practice_by_id.insert(p.id.clone(), i as u32);
        }
        for (i, a) in config.agents.iter().enumerate() {
            d.agent_by_id.insert(a.id.clone(), i as u32);
        }
        let mut pool_members: Vec<Vec<u32>> = vec![Vec::new(); config.pools.len()];
        let mut dedicated_agents: Vec<Vec<u32>> = vec![Vec::new(); config.practices.len()];
        for (pi, pool) in config.pools.iter().enumerate() {
            for m in &pool.members {
                if let Some(&ai) = d.agent_by_id.get(m) {
                    pool_members[pi].push(ai);
                }
            }
        }
        for (pi, pr) in config.practices.iter().enumerate() {
            for m in &pr.dedicated_agents {
                if let Some(&ai) = d.agent_by_id.get(m) {
                    dedicated_agents[pi].push(ai);
                }
            }
        }
        for (i, a) in config.agents.iter().enumerate() {
            for p in &a.pools {
                if let Some(&pi) = d.pool_by_id.get(p) {
                    pool_members[pi as usize].push(i as u32);
                }
            }
            for p in &a.practices {
                if let Some(&pi) = d.practice_by_id.get(p) {
                    dedicated_agents[pi as usize].push(i as u32);
                }
            }
        }
        let mut agent_pools: Vec<Vec<u32>> = vec![Vec::new(); config.agents.len()];
        let mut agent_dedicated: Vec<Vec<u32>> = vec![Vec::new(); config.agents.len()];
        for list in pool_members.iter_mut().chain(dedicated_agents.iter_mut()) {
            list.sort_unstable();
            list.dedup();
        }
        for (pi, list) in pool_members.iter().enumerate() {
            for &ai in list {
                agent_pools[ai as usize].push(pi as u32);
            }
        }
        for (pi, list) in dedicated_agents.iter().enumerate() {
            for &ai in list {
                agent_dedicated[ai as usize].push(pi as u32);
            }
        }
        d.pool_members = pool_members;
        for (i, a) in config.agents.iter().enumerate() {
            let mut skills: Vec<(u32, u8)> = a
                .skills
                .iter()
                .map(|(s, &l)| (d.skills.intern(s), l))
                .collect();
            skills.sort_unstable();
            let mut langs: Vec<u32> = a.languages.iter().map(|l| d.langs.intern(l)).collect();
            langs.sort_unstable();
            langs.dedup();
            d.agents.push(AgentRt {
                id: a.id.clone(),
                skills,
                langs,
                pools: std::mem::take(&mut agent_pools[i]),
                dedicated: std::mem::take(&mut agent_dedicated[i]),
                shift: a.shift.clone(),
                groups: Vec::new(),
                retired: false,
                logged_in_at_start: a.logged_in,
                state: AgentState::LoggedOut,
                pause_reason: None,
                in_shift: a.shift.is_none(),
                shift_next: None,
                reachable: true,
                backoff_until: Ms::MIN,
                idle_since: 0,
                last_offer: 0,
                strikes: 0,
                dispatchable: false,
                gen: 0,
                call: NONE,
                pending_logout: false,
                pending_pause: None,
                wrap_until: 0,
                wrap_override: a.wrap_up_secs.map(secs_ms),
            });
        }
        let s = &d.settings;
        for p in &config.practices {
            let mut steps = Vec::with_capacity(p.steps.len());
            for st in &p.steps {
                let sel = &st.select;
                steps.push((
                    secs_ms(st.after_secs),
                    Sel {
                        dedicated: sel.dedicated,
                        pool: sel.pool.as_ref().and_then(|x| d.pool_by_id.get(x).copied()),
                        skill: sel
                            .skill
                            .as_ref()
                            .map(|x| (d.skills.intern(x), sel.min_level.max(1))),
                        lang: sel.language.as_ref().map(|x| d.langs.intern(x)),
                    },
                ));
            }
            let strategy = p.strategy.unwrap_or(s.strategy);
            d.practices.push(PracticeRt {
                id: p.id.clone(),
                dedicated: std::mem::take(&mut dedicated_agents[d.practices.len()]),
                hours: p.hours.clone(),
                open: true,
                open_from: Ms::MAX,
                open_until: Ms::MIN,
                steps,
                routes: Vec::new(),
                priority: p.priority,
                max_wait_ms: p.max_wait_secs.map(secs_ms),
                overflow: p.overflow.clone(),
                overflow_pool: match &p.overflow {
                    OverflowTarget::Pool(id) => d.pool_by_id.get(id).copied(),
                    _ => None,
                },
                wrap_ms: secs_ms(p.wrap_up_secs.unwrap_or(s.wrap_up_secs)),
                ring_ms: secs_ms(p.ring_timeout_secs.unwrap_or(s.ring_timeout_secs)),
                max_strikes: p.max_no_answer_strikes.unwrap_or(s.max_no_answer_strikes),
                aht_ms: f64::from(p.default_handle_secs.unwrap_or(s.default_handle_secs)) * 1000.0,
                rank_skill: if strategy == Strategy::MostSkilled {
                    p.specialty.as_ref().map(|x| d.skills.intern(x))
                } else {
                    None
                },
                strategy,
                calls: Vec::new(),
            });
        }
        // Default routes (no call requirement) are built eagerly so that the
        // common arrival path never creates groups.
        for pi in 0..d.practices.len() {
            d.route_for(pi as u32, 0);
        }
        d.config = config;
        Ok(d)
    }

    /// The configuration in force.
    pub fn config(&self) -> &AcdConfig {
        &self.config
    }

    // ----------------------------------------------------------------- API

    /// Applies a driver event at `now`.
    ///
    /// Errors (unknown ids, an answer for an offer already withdrawn, ...)
    /// leave the state unchanged; the driver should log them.
    pub fn handle_input(&mut self, input: Input, now: DateTime<Utc>) -> Result<(), AcdError> {
        self.advance(now);
        let r = match input {
            Input::CallArrived(a) => self.on_arrival(a),
            Input::CallAbandoned { call } => self.on_abandon(call),
            Input::OfferAnswered { call, agent } => self.on_answer(call, &agent),
            Input::OfferFailed {
                call,
                agent,
                reason,
            } => self.on_offer_failed(call, &agent, reason),
            Input::CallEnded { call } => self.on_call_ended(call),
            Input::SetPriority { call, priority } => self.on_set_priority(call, priority),
            Input::AgentLogin { agent } => self.agent_idx(&agent).map(|a| self.on_login(a)),
            Input::AgentLogout { agent } => self.agent_idx(&agent).map(|a| self.on_logout(a)),
            Input::AgentPause { agent, reason } => self
                .agent_idx(&agent)
                .and_then(|a| self.on_pause(a, PauseReason::from(reason))),
            Input::AgentUnpause { agent } => self.agent_idx(&agent).map(|a| self.on_unpause(a)),
            Input::AgentReachability { agent, reachable } => self
                .agent_idx(&agent)
                .map(|a| self.on_reachability(a, reachable)),
        };
        self.run_timers();
        r
    }

    /// Fires every timer due at or before `now` (ring timeouts, step
    /// relaxation, maximum waits, wrap-up ends, back-off ends, shift
    /// boundaries).
    pub fn handle_timeout(&mut self, now: DateTime<Utc>) {
        self.advance(now);
        self.run_timers();
    }

    /// The next instant [`Dispatcher::handle_timeout`] must be called at.
    pub fn poll_timeout(&self) -> Option<DateTime<Utc>> {
        self.timers.peek().map(|Reverse(t)| time_of(t.at))
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Number of outputs waiting to be polled.
    pub fn pending_outputs(&self) -> usize {
        self.outputs.len()
    }

    /// Applies a new configuration at `now`, keeping waiting calls in place
    /// (original join time and priority) and agents in their states.
    ///
    /// * Agents that disappear: an offer ringing them is withdrawn and the
    ///   call re-dispatched; one on a call finishes it (then leaves); the
    ///   others leave at once (`AgentStateChanged` to logged out, reason
    ///   `Removed`).
    /// * Calls of a practice that disappears are overflowed to
    ///   `settings.orphan_overflow` with reason `PracticeRemoved` (a ringing
    ///   offer is cancelled first); connected calls are kept.
    /// * Remaining calls take the new routing steps and maximum wait, counted
    ///   from their original join time (a maximum wait already exceeded
    ///   fires at once).
    ///
    /// On error the current configuration stays in force.
    pub fn reconfigure(&mut self, config: AcdConfig, now: DateTime<Utc>) -> Result<(), AcdError> {
        let mut next = Dispatcher::new(config)?;
        self.advance(now);
        let now = self.now;
        next.started = true;
        next.now = now;
        next.call_seq = self.call_seq;
        next.offer_seq = self.offer_seq;
        next.timer_order = self.timer_order;
        next.outputs = std::mem::take(&mut self.outputs);

        // Practices: carry the learned handle times.
        for p in &mut next.practices {
            if let Some(&op) = self.practice_by_id.get(&p.id) {
                p.aht_ms = self.practices[op as usize].aht_ms;
            }
        }
        // Agents present in both: carry the dynamic state.
        let mut prev_shift = vec![None; next.agents.len()];
        for (ni, a) in next.agents.iter_mut().enumerate() {
            match self.agent_by_id.get(&a.id) {
                Some(&oi) => {
                    let o = &self.agents[oi as usize];
                    a.state = o.state;
                    a.pause_reason = o.pause_reason.clone();
                    a.reachable = o.reachable;
                    a.backoff_until = o.backoff_until;
                    a.idle_since = o.idle_since;
                    a.last_offer = o.last_offer;
                    a.strikes = o.strikes;
                    a.pending_logout = o.pending_logout;
                    a.pending_pause = o.pending_pause.clone();
                    a.wrap_until = o.wrap_until;
                    prev_shift[ni] = Some(o.in_shift);
                }
                None => {
                    if a.logged_in_at_start {
                        a.state = AgentState::Available;
                        a.idle_since = now;
                        let id = a.id.clone();
                        next.outputs
                            .push_back(Output::Event(Event::AgentStateChanged {
                                agent: id,
                                from: AgentState::LoggedOut,
                                to: AgentState::Available,
                                reason: ChangeReason::Login,
                            }));
                    }
                }
            }
        }
        // Agents removed.
        for o in &self.agents {
            if next.agent_by_id.contains_key(&o.id) {
                continue;
            }
            if o.state == AgentState::OnCall {
                let mut r = o.clone();
                r.retired = true;
                r.groups = Vec::new();
                r.dedicated = Vec::new();
                r.pools = Vec::new();
                r.dispatchable = false;
                r.call = NONE;
                let idx = next.agents.len() as u32;
                next.agent_by_id.insert(r.id.clone(), idx);
                next.agents.push(r);
                prev_shift.push(Some(o.in_shift));
            } else {
                if o.state != AgentState::LoggedOut {
                    next.emit(Event::AgentStateChanged {
                        agent: o.id.clone(),
                        from: o.state,
                        to: AgentState::LoggedOut,
                        reason: ChangeReason::Removed,
                    });
                }
                next.emit(Event::AgentRemoved {
                    agent: o.id.clone(),
                });
            }
        }
        // Calls.
        let mut to_overflow: Vec<(CallId, Ms)> = Vec::new();
        for slot in &self.slots {
            let Some(c) = &slot.call else { continue };
            let old_agent = (c.agent != NONE).then(|| self.agents[c.agent as usize].id.clone());
            let new_agent = old_agent
                .as_ref()
                .and_then(|id| next.agent_by_id.get(id).copied());
            let new_practice = self
                .practices
                .get(c.practice as usize)
                .and_then(|p| next.practice_by_id.get(&p.id).copied());
            if c.phase == Phase::Connected {
                let ns = next.alloc_slot(CallRt {
                    practice: new_practice.unwrap_or(NONE),
                    agent: new_agent.unwrap_or(NONE),
                    ..c.clone()
                });
                if let Some(a) = new_agent {
                    next.agents[a as usize].call = ns;
                }
                next.call_by_id.insert(c.id, ns);
                continue;
            }
            let keep_ring =
                c.phase == Phase::Ringing && new_agent.is_some() && new_practice.is_some();
            if c.phase == Phase::Ringing && !keep_ring {
                if let Some(agent) = old_agent.clone() {
                    next.emit_action(Action::CancelOffer {
                        call: c.id,
                        agent: agent.clone(),
                        reason: CancelReason::Reconfigured,
                    });
                    if new_practice.is_some() {
                        next.emit(Event::OfferWithdrawn {
                            call: c.id,
                            agent,
                            reason: CancelReason::Reconfigured,
                        });
                    }
                }
            }
            let Some(np) = new_practice else {
                to_overflow.push((c.id, c.joined));
                continue;
            };
            // Re-resolve the call's requirements in the new tables.
            let old_req = self.reqs.get(c.req as usize).cloned().unwrap_or_default();
            let req = ReqKey {
                lang: old_req.lang.map(|l| next.langs.intern(self.langs.name(l))),
                skills: old_req
                    .skills
                    .iter()
                    .map(|&(s, l)| (next.skills.intern(self.skills.name(s)), l))
                    .collect(),
            };
            let req = next.intern_req(req);
            let route = next.route_for(np, req);
            let pr = &next.practices[np as usize];
            let elapsed = now - c.joined;
            let step = active_step(&next.routes[route as usize], elapsed);
            let retargeted = c.retargeted && pr.overflow_pool.is_some();
            let max_wait_at = if c.retargeted {
                None
            } else {
                pr.max_wait_ms.map(|m| c.joined + m)
            };
            let mut nc = CallRt {
                practice: np,
                req,
                route,
                step,
                retargeted,
                max_wait_at,
                next_relax: next_relax(&next.routes[route as usize], step, c.joined),
                agent: NONE,
                phase: Phase::Waiting,
                ..c.clone()
            };
            if keep_ring {
                if let Some(a) = new_agent {
                    nc.phase = Phase::Ringing;
                    nc.agent = a;
                }
            } else {
                nc.overflow_pending = false;
            }
            let ns = next.alloc_slot(nc);
            next.call_by_id.insert(c.id, ns);
            next.practices[np as usize].calls.push(ns);
            if keep_ring {
                if let Some(a) = new_agent {
                    next.agents[a as usize].call = ns;
                }
            }
        }
        for (call, joined) in to_overflow {
            let target = next.settings.orphan_overflow.clone();
            next.emit_action(Action::Overflow {
                call,
                target: target.clone(),
            });
            next.emit(Event::Overflowed {
                call,
                target,
                wait: dur(now - joined),
                reason: OverflowReason::PracticeRemoved,
            });
        }
        // Agents left "offered" without a call get their offer back.
        for ai in 0..next.agents.len() {
            let a = &mut next.agents[ai];
            let stale = matches!(a.state, AgentState::Offered | AgentState::OnCall)
                && a.call == NONE
                && !a.retired;
            if stale {
                // Offer withdrawn above (or, for a call that could not be
                // carried over, which cannot happen: connected calls are
                // always kept): the agent is available again. Set directly:
                // the indices are built below.
                let from = std::mem::replace(&mut a.state, AgentState::Available);
                let id = a.id.clone();
                next.emit(Event::AgentStateChanged {
                    agent: id,
                    from,
                    to: AgentState::Available,
                    reason: ChangeReason::OfferEnded,
                });
            }
        }
        // Shifts, timers and indices.
        for ai in 0..next.agents.len() {
            next.init_shift(ai as u32, prev_shift.get(ai).copied().flatten());
            let a = &next.agents[ai];
            let (wrap, backoff) = (
                (a.state == AgentState::WrapUp).then_some(a.wrap_until),
                (a.backoff_until > now).then_some(a.backoff_until),
            );
            if let Some(at) = wrap {
                next.push_timer(at, TimerKind::Wrap { agent: ai as u32 });
            }
            if let Some(at) = backoff {
                next.push_timer(at, TimerKind::Backoff { agent: ai as u32 });
            }
        }
        for si in 0..next.slots.len() {
            let Some(c) = next.slots[si].call.clone() else {
                continue;
            };
            let si = si as u32;
            match c.phase {
                Phase::Connected => {}
                Phase::Ringing => {
                    next.push_timer(
                        c.ring_deadline,
                        TimerKind::Ring {
                            call: si,
                            offer: c.offer_seq,
                        },
                    );
                }
                Phase::Waiting => next.index_call(si),
            }
            if c.phase != Phase::Connected {
                if let Some(t) = c.next_relax {
                    next.push_timer(
                        t,
                        TimerKind::Relax {
                            call: si,
                            seq: c.seq,
                        },
                    );
                }
                if let Some(t) = c.max_wait_at {
                    next.push_timer(
                        t,
                        TimerKind::MaxWait {
                            call: si,
                            seq: c.seq,
                        },
                    );
                }
            }
        }
        for ai in 0..next.agents.len() {
            next.refresh_agent(ai as u32);
        }
        *self = next;
        self.run_timers();
        Ok(())
    }

    // ------------------------------------------------------------- queries

    /// Whether the practice is open at `now` (`None`: unknown practice).
    pub fn is_open(&self, practice: &str, now: DateTime<Utc>) -> Option<bool> {
        let p = self
            .practices
            .get(*self.practice_by_id.get(practice)? as usize)?;
        Some(p.hours.as_ref().is_none_or(|h| h.is_open(now)))
    }

    /// The phase, position and estimated wait of one call.
    pub fn call(&self, call: CallId, now: DateTime<Utc>) -> Option<CallSnapshot> {
        let si = *self.call_by_id.get(&call)?;
        Some(self.call_snapshot(si, ms_of(now).max(self.now)))
    }

    /// Ids of all calls the dispatcher knows (waiting, ringing, connected).
    pub fn calls(&self) -> impl Iterator<Item = CallId> + '_ {
        self.call_by_id.keys().copied()
    }

    /// A practice queue: counts, oldest wait, estimated wait for a new
    /// call, and every waiting/ringing call in queue order.
    pub fn queue_snapshot(&self, practice: &str, now: DateTime<Utc>) -> Option<QueueSnapshot> {
        let pi = *self.practice_by_id.get(practice)?;
        let p = &self.practices[pi as usize];
        let now_ms = ms_of(now).max(self.now);
        let mut calls: Vec<CallSnapshot> = p
            .calls
            .iter()
            .map(|&si| self.call_snapshot(si, now_ms))
            .collect();
        calls.sort_by_key(|c| c.position);
        let waiting = calls
            .iter()
            .filter(|c| c.phase == CallPhase::Waiting)
            .count() as u32;
        Some(QueueSnapshot {
            practice: p.id.clone(),
            open: p.hours.as_ref().is_none_or(|h| h.is_open(time_of(now_ms))),
            waiting,
            ringing: calls.len() as u32 - waiting,
            oldest_wait: calls.iter().map(|c| c.wait).max(),
            estimated_wait: self.practice_ewt(pi, now_ms).map(dur),
            calls,
        })
    }

    /// Snapshots of every practice queue.
    pub fn queue_snapshots(&self, now: DateTime<Utc>) -> Vec<QueueSnapshot> {
        self.practices
            .iter()
            .filter_map(|p| self.queue_snapshot(p.id.as_str(), now))
            .collect()
    }

    /// One agent's state.
    pub fn agent(&self, agent: &str) -> Option<AgentSnapshot> {
        let ai = *self.agent_by_id.get(agent)?;
        Some(self.agent_snapshot(ai))
    }

    /// Every agent's state, in configuration order (retired agents last).
    pub fn agents(&self) -> Vec<AgentSnapshot> {
        (0..self.agents.len() as u32)
            .map(|a| self.agent_snapshot(a))
            .collect()
    }

    /// Counts of agents eligible for a practice's calls (union of all its
    /// routing steps, plus its overflow pool).
    pub fn eligible_agents(&self, practice: &str) -> Option<EligibleAgents> {
        let pi = *self.practice_by_id.get(practice)? as usize;
        let route = &self.routes[self.practices[pi].routes.first()?.1 as usize];
        let mut seen = vec![false; self.agents.len()];
        let mut out = EligibleAgents::default();
        let groups = route.steps.iter().map(|s| s.1).chain(route.overflow);
        for g in groups {
            for &a in &self.groups[g as usize].members {
                if std::mem::replace(&mut seen[a as usize], true) {
                    continue;
                }
                let ag = &self.agents[a as usize];
                out.configured += 1;
                if ag.state != AgentState::LoggedOut {
                    out.logged_in += 1;
                    if ag.in_shift && ag.reachable {
                        out.staffed += 1;
                    }
                }
                if ag.dispatchable {
                    out.dispatchable += 1;
                }
            }
        }
        Some(out)
    }

    /// Ids of the agents eligible for a practice's calls without extra
    /// requirements (union of all its routing steps and its overflow pool),
    /// in configuration order.
    pub fn eligible_agent_ids(&self, practice: &str) -> Option<Vec<AgentId>> {
        let pi = *self.practice_by_id.get(practice)? as usize;
        let route = &self.routes[self.practices[pi].routes.first()?.1 as usize];
        let mut seen = vec![false; self.agents.len()];
        for g in route.steps.iter().map(|s| s.1).chain(route.overflow) {
            for &a in &self.groups[g as usize].members {
                seen[a as usize] = true;
            }
        }
        Some(
            seen.iter()
                .enumerate()
                .filter(|(_, s)| **s)
                .map(|(a, _)| self.agents[a].id.clone())
                .collect(),
        )
    }

    /// Estimated remaining wait of a waiting call.
    ///
    /// Model: the call is at position `k` = 1 + the number of distinct
    /// waiting calls ranked before it (priority, then join time) in any of
    /// its active groups. For each routing step `s` (reached or not), let
    /// `A_s` be the agents of steps `0..=s` (and of the overflow pool once
    /// retargeted) that are logged in, in shift, reachable and not paused.
    /// Each agent frees up at `f_a`: now if available (or at the end of its
    /// back-off), the end of its wrap-up, or, on a call of practice `q`,
    /// `answered + AHT_q` (at least now) plus `wrap_q`; an offered agent is
    /// counted as starting a call now. Freed agents serve the queue in order,
    /// each next call taking `S = AHT_p + wrap_p` of the call's practice
    /// `p`, so the `k`-th slot `T_s(k)` is the `k`-th smallest value of the
    /// multiset `{f_a + j·S : a ∈ A_s, j ≥ 0}`. The estimate is
    /// `min_s max(start_s, T_s(k)) − now`, where `start_s` is when step `s`
    /// applies (join + `after_s`). `AHT_p` is an exponentially weighted
    /// average of the practice's talk times (weight `settings.aht_alpha`),
    /// seeded with its `default_handle_secs`. `None` when no agent could
    /// ever serve the call.
    pub fn estimated_wait(&self, call: CallId, now: DateTime<Utc>) -> Option<Duration> {
        let si = *self.call_by_id.get(&call)?;
        self.call_ewt(si, ms_of(now).max(self.now)).map(dur)
    }

    /// The practice's current average handle time (talk time).
    pub fn average_handle_time(&self, practice: &str) -> Option<Duration> {
        let pi = *self.practice_by_id.get(practice)? as usize;
        Some(dur(self.practices[pi].aht_ms.round() as Ms))
    }

    // ------------------------------------------------------------ internals

    fn advance(&mut self, now: DateTime<Utc>) {
        let t = ms_of(now);
        if t > self.now {
            self.now = t;
        }
        if !self.started {
            self.started = true;
            for ai in 0..self.agents.len() {
                if self.agents[ai].logged_in_at_start {
                    self.agents[ai].state = AgentState::Available;
                    self.agents[ai].idle_since = self.now;
                    let id = self.agents[ai].id.clone();
                    self.emit(Event::AgentStateChanged {
                        agent: id,
                        from: AgentState::LoggedOut,
                        to: AgentState::Available,
                        reason: ChangeReason::Login,
                    });
                }
                self.init_shift(ai as u32, None);
            }
            for ai in 0..self.agents.len() {
                self.refresh_agent(ai as u32);
            }
        }
    }

    fn emit(&mut self, e: Event) {
        self.outputs.push_back(Output::Event(e));
    }

    fn emit_action(&mut self, a: Action) {
        self.outputs.push_back(Output::Action(a));
    }

    fn push_timer(&mut self, at: Ms, kind: TimerKind) {
        self.timer_order += 1;
        self.timers.push(Reverse(Timer {
            at,
            order: self.timer_order,
            kind,
        }));
    }

    fn agent_idx(&self, id: &AgentId) -> Result<u32, AcdError> {
        self.agent_by_id
            .get(id)
            .copied()
            .ok_or_else(|| AcdError::UnknownAgent(id.clone()))
    }

    fn call_idx(&self, id: CallId) -> Result<u32, AcdError> {
        self.call_by_id
            .get(&id)
            .copied()
            .ok_or(AcdError::UnknownCall(id))
    }

    fn call_ref(&self, si: u32) -> Option<&CallRt> {
        self.slots.get(si as usize).and_then(|s| s.call.as_ref())
    }

    fn call_mut(&mut self, si: u32) -> Option<&mut CallRt> {
        self.slots
            .get_mut(si as usize)
            .and_then(|s| s.call.as_mut())
    }

    fn alloc_slot(&mut self, c: CallRt) -> u32 {
        match self.free_slots.pop() {
            Some(i) => {
                let s = &mut self.slots[i as usize];
                s.gen = s.gen.wrapping_add(1);
                s.call = Some(c);
                i
            }
            None => {
                self.slots.push(Slot {
                    gen: 0,
                    call: Some(c),
                });
                (self.slots.len() - 1) as u32
            }
        }
    }

    /// Removes a waiting/ringing call from its practice list and frees it.
    fn free_call(&mut self, si: u32) -> Option<CallRt> {
        let slot = self.slots.get_mut(si as usize)?;
        let c = slot.call.take()?;
        slot.gen = slot.gen.wrapping_add(1);
        self.free_slots.push(si);
        self.call_by_id.remove(&c.id);
        if let Some(p) = self.practices.get_mut(c.practice as usize) {
            if let Some(pos) = p.calls.iter().position(|&x| x == si) {
                p.calls.swap_remove(pos);
            }
        }
        Some(c)
    }

    fn intern_req(&mut self, key: ReqKey) -> u32 {
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
    fn route_for(&mut self, pi: u32, req: u32) -> u32 {
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

    fn intern_group(&mut self, key: GroupKey) -> u32 {
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

    fn practice_open(&mut self, pi: u32) -> bool {
        let now = self.now;
        let p = &mut self.practices[pi as usize];
        let Some(h) = &p.hours else { return true };
        if now >= p.open_from && now < p.open_until {
            return p.open;
        }
        p.open = h.is_open(time_of(now));
        p.open_from = now;
        p.open_until = schedule_next(h, now).unwrap_or(Ms::MAX);
        p.open
    }

    fn init_shift(&mut self, ai: u32, previous: Option<bool>) {
        let now = self.now;
        let a = &mut self.agents[ai as usize];
        let (in_shift, next) = match &a.shift {
            None => (true, None),
            Some(s) => (s.is_open(time_of(now)), schedule_next(s, now)),
        };
        a.in_shift = in_shift;
        a.shift_next = next;
        if let Some(prev) = previous {
            if prev != in_shift {
                let id = a.id.clone();
                self.emit(Event::ShiftChanged {
                    agent: id,
                    in_shift,
                });
            }
        }
        if let Some(at) = next {
            self.push_timer(at, TimerKind::Shift { agent: ai });
        }
    }

    fn set_state(&mut self, ai: u32, to: AgentState, reason: ChangeReason) {
        let a = &mut self.agents[ai as usize];
        let from = a.state;
        if from == to {
            return;
        }
        a.state = to;
        if to != AgentState::Paused {
            a.pause_reason = None;
        }
        let id = a.id.clone();
        self.emit(Event::AgentStateChanged {
            agent: id,
            from,
            to,
            reason,
        });
        self.refresh_agent(ai);
    }

    /// Recomputes whether the agent can get an offer now; when it becomes
    /// able to, indexes it and gives it the best eligible waiting call.
    fn refresh_agent(&mut self, ai: u32) {
        let now = self.now;
        let a = &mut self.agents[ai as usize];
        let should = !a.retired
            && a.state == AgentState::Available
            && a.in_shift
            && a.reachable
            && a.backoff_until <= now;
        if should == a.dispatchable {
            return;
        }
        a.gen = a.gen.wrapping_add(1);
        a.dispatchable = should;
        if !should {
            return;
        }
        let a = &self.agents[ai as usize];
        for &g in &a.groups {
            let group = &mut self.groups[g as usize];
            group.agents.push(Entry {
                score: a.score(group.key.ranking, ai),
                idx: ai,
                gen: a.gen,
            });
            if group.agents.len() > 2 * group.members.len() + 32 {
                let agents = &self.agents;
                group.agents.compact(|e| agent_live(agents, e));
            }
        }
        self.dispatch_agent(ai);
    }

    /// Gives the dispatchable agent the best waiting call of its groups.
    fn dispatch_agent(&mut self, ai: u32) {
        let mut best: Option<Entry> = None;
        let slots = &self.slots;
        for &g in &self.agents[ai as usize].groups {
            if let Some(e) = self.groups[g as usize]
                .calls
                .peek_live(|e| call_live(slots, e))
            {
                if best.is_none_or(|b| e.score > b.score) {
                    best = Some(e);
                }
            }
        }
        if let Some(b) = best {
            self.offer(b.idx, ai);
        }
    }

    /// Offers the waiting call to the best dispatchable agent of its active
    /// groups, if any.
    fn dispatch_call(&mut self, si: u32) {
        let Some(c) = self.slots.get(si as usize).and_then(|s| s.call.as_ref()) else {
            return;
        };
        if c.phase != Phase::Waiting {
            return;
        }
        let route = &self.routes[c.route as usize];
        let n = (c.step as usize + 1).min(route.steps.len());
        let overflow = if c.retargeted { route.overflow } else { None };
        let agents = &self.agents;
        let mut best: Option<Entry> = None;
        for g in route.steps[..n].iter().map(|s| s.1).chain(overflow) {
            if let Some(e) = self.groups[g as usize]
                .agents
                .peek_live(|e| agent_live(agents, e))
            {
                if best.is_none_or(|b| e.score > b.score) {
                    best = Some(e);
                }
            }
        }
        if let Some(b) = best {
            self.offer(si, b.idx);
        }
    }

    /// Puts a waiting call into the call heaps of its active groups.
    fn index_call(&mut self, si: u32) {
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
    fn unindex_call(&mut self, si: u32) {
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

    fn offer(&mut self, si: u32, ai: u32) {
        self.unindex_call(si);
        self.offer_seq += 1;
        let offer = self.offer_seq;
        let now = self.now;
        let Some(c) = self
            .slots
            .get_mut(si as usize)
            .and_then(|s| s.call.as_mut())
        else {
            return;
        };
        let ring_ms = self
            .practices
            .get(c.practice as usize)
            .map_or(secs_ms(self.settings.ring_timeout_secs), |p| p.ring_ms);
        c.phase = Phase::Ringing;
        c.agent = ai;
        c.offer_seq = offer;
        c.ring_deadline = now + ring_ms;
        let call = c.id;
        self.push_timer(now + ring_ms, TimerKind::Ring { call: si, offer });
        let a = &mut self.agents[ai as usize];
        a.call = si;
        a.last_offer = offer;
        let agent = a.id.clone();
        self.emit_action(Action::Offer {
            call,
            agent: agent.clone(),
            ring_timeout: dur(ring_ms),
        });
        self.emit(Event::Offered { call, agent });
        self.set_state(ai, AgentState::Offered, ChangeReason::Offer);
    }

    /// After an offer ended without an answer: the call goes back to the
    /// queue with its place (or overflows if its maximum wait passed while
    /// it rang).
    fn requeue(&mut self, si: u32) {
        let Some(c) = self.call_mut(si) else { return };
        c.agent = NONE;
        if c.overflow_pending {
            let pi = c.practice;
            let target = self
                .practices
                .get(pi as usize)
                .map_or(OverflowTarget::Voicemail, |p| p.overflow.clone());
            self.overflow_out(si, target, OverflowReason::MaxWait);
            return;
        }
        c.phase = Phase::Waiting;
        // The slot generation changed when the call left the queue, so old
        // heap entries are stale; push fresh ones.
        if let Some(s) = self.slots.get_mut(si as usize) {
            s.gen = s.gen.wrapping_add(1);
        }
        self.index_call(si);
        self.dispatch_call(si);
    }

    /// Takes the call out of the ACD to a non-pool target.
    fn overflow_out(&mut self, si: u32, target: OverflowTarget, reason: OverflowReason) {
        self.unindex_call(si);
        let Some(c) = self.call_ref(si) else { return };
        if c.phase == Phase::Ringing && c.agent != NONE {
            let (call, ai) = (c.id, c.agent);
            let agent = self.agents[ai as usize].id.clone();
            self.emit_action(Action::CancelOffer {
                call,
                agent,
                reason: CancelReason::Overflow,
            });
            self.agents[ai as usize].call = NONE;
            self.set_state(ai, AgentState::Available, ChangeReason::OfferEnded);
        }
        let Some(c) = self.free_call(si) else { return };
        self.emit_action(Action::Overflow {
            call: c.id,
            target: target.clone(),
        });
        self.emit(Event::Overflowed {
            call: c.id,
            target,
            wait: dur(self.now - c.joined),
            reason,
        });
    }

    fn position(&self, si: u32) -> u32 {
        let Some(c) = self.call_ref(si) else { return 0 };
        if c.phase == Phase::Connected {
            return 0;
        }
        let score = call_score(c.priority, c.joined, c.seq);
        let Some(p) = self.practices.get(c.practice as usize) else {
            return 0;
        };
        1 + p
            .calls
            .iter()
            .filter_map(|&o| self.call_ref(o))
            .filter(|o| call_score(o.priority, o.joined, o.seq) > score)
            .count() as u32
    }

    // --------------------------------------------------------- call inputs

    fn on_arrival(&mut self, a: CallArrival) -> Result<(), AcdError> {
        let pi = *self
            .practice_by_id
            .get(&a.practice)
            .ok_or_else(|| AcdError::UnknownPractice(a.practice.clone()))?;
        if self.call_by_id.contains_key(&a.call) {
            return Err(AcdError::DuplicateCall(a.call));
        }
        if !self.practice_open(pi) {
            self.emit_action(Action::Closed {
                call: a.call,
                practice: a.practice.clone(),
            });
            self.emit(Event::Closed {
                call: a.call,
                practice: a.practice,
            });
            return Ok(());
        }
        let req = if a.language.is_none() && a.skills.is_empty() {
            0
        } else {
            let mut skills: Vec<(u32, u8)> = a
                .skills
                .iter()
                .map(|s| (self.skills.intern(&s.skill), s.min_level.max(1)))
                .collect();
            normalize_skills(&mut skills);
            let key = ReqKey {
                lang: a.language.as_deref().map(|l| self.langs.intern(l)),
                skills,
            };
            self.intern_req(key)
        };
        let route = self.route_for(pi, req);
        let now = self.now;
        self.call_seq += 1;
        let p = &self.practices[pi as usize];
        let priority = a.priority.unwrap_or(p.priority);
        let r = &self.routes[route as usize];
        let step = active_step(r, 0);
        let c = CallRt {
            id: a.call,
            seq: self.call_seq,
            practice: pi,
            req,
            route,
            step,
            retargeted: false,
            priority,
            joined: now,
            phase: Phase::Waiting,
            agent: NONE,
            next_relax: next_relax(r, step, now),
            max_wait_at: p.max_wait_ms.map(|m| now + m),
            overflow_pending: false,
            ring_deadline: 0,
            offer_seq: 0,
            answered_at: 0,
            wrap_ms: 0,
        };
        let (relax, max_wait, seq) = (c.next_relax, c.max_wait_at, c.seq);
        let si = self.alloc_slot(c);
        self.call_by_id.insert(a.call, si);
        self.practices[pi as usize].calls.push(si);
        if let Some(t) = relax {
            self.push_timer(t, TimerKind::Relax { call: si, seq });
        }
        if let Some(t) = max_wait {
            self.push_timer(t, TimerKind::MaxWait { call: si, seq });
        }
        self.emit(Event::CallQueued {
            call: a.call,
            practice: a.practice,
            priority,
        });
        self.index_call(si);
        self.dispatch_call(si);
        Ok(())
    }

    fn on_abandon(&mut self, call: CallId) -> Result<(), AcdError> {
        let si = self.call_idx(call)?;
        let Some(c) = self.call_ref(si) else {
            return Err(AcdError::UnknownCall(call));
        };
        let phase = match c.phase {
            Phase::Waiting => AbandonPhase::Queue,
            Phase::Ringing => AbandonPhase::Ringing,
            Phase::Connected => {
                return Err(AcdError::WrongCallPhase {
                    call,
                    actual: "connected",
                    expected: "waiting or ringing (use CallEnded)",
                })
            }
        };
        let position = self.position(si);
        let (joined, ai) = (c.joined, c.agent);
        if phase == AbandonPhase::Ringing && ai != NONE {
            let agent = self.agents[ai as usize].id.clone();
            self.emit_action(Action::CancelOffer {
                call,
                agent,
                reason: CancelReason::CallerHangup,
            });
        }
        self.unindex_call(si);
        self.free_call(si);
        self.emit(Event::Abandoned {
            call,
            phase,
            wait: dur(self.now - joined),
            position,
        });
        if phase == AbandonPhase::Ringing && ai != NONE {
            self.agents[ai as usize].call = NONE;
            self.set_state(ai, AgentState::Available, ChangeReason::OfferEnded);
        }
        Ok(())
    }

    fn ringing_pair(&self, call: CallId, agent: &AgentId) -> Result<(u32, u32), AcdError> {
        let si = self.call_idx(call)?;
        let ai = self.agent_idx(agent)?;
        match self.call_ref(si) {
            Some(c) if c.phase == Phase::Ringing && c.agent == ai => Ok((si, ai)),
            _ => Err(AcdError::NotOffered {
                call,
                agent: agent.clone(),
            }),
        }
    }

    fn on_answer(&mut self, call: CallId, agent: &AgentId) -> Result<(), AcdError> {
        let (si, ai) = self.ringing_pair(call, agent)?;
        let now = self.now;
        let (joined, pi) = {
            let Some(c) = self.call_mut(si) else {
                return Err(AcdError::UnknownCall(call));
            };
            c.phase = Phase::Connected;
            c.answered_at = now;
            c.next_relax = None;
            c.max_wait_at = None;
            c.overflow_pending = false;
            (c.joined, c.practice)
        };
        let wrap = self.agents[ai as usize].wrap_override.unwrap_or_else(|| {
            self.practices
                .get(pi as usize)
                .map_or(secs_ms(self.settings.wrap_up_secs), |p| p.wrap_ms)
        });
        if let Some(c) = self.call_mut(si) {
            c.wrap_ms = wrap;
        }
        if let Some(p) = self.practices.get_mut(pi as usize) {
            if let Some(pos) = p.calls.iter().position(|&x| x == si) {
                p.calls.swap_remove(pos);
            }
        }
        self.agents[ai as usize].strikes = 0;
        self.emit(Event::Answered {
            call,
            agent: agent.clone(),
            wait: dur(now - joined),
        });
        self.set_state(ai, AgentState::OnCall, ChangeReason::Answer);
        Ok(())
    }

    fn on_offer_failed(
        &mut self,
        call: CallId,
        agent: &AgentId,
        reason: OfferFailure,
    ) -> Result<(), AcdError> {
        let (si, ai) = self.ringing_pair(call, agent)?;
        self.emit(Event::OfferFailed {
            call,
            agent: agent.clone(),
            reason,
        });
        self.agents[ai as usize].call = NONE;
        let until = self.now + secs_ms(self.settings.busy_backoff_secs);
        self.back_off(ai, until);
        self.set_state(ai, AgentState::Available, ChangeReason::OfferEnded);
        self.requeue(si);
        Ok(())
    }

    fn back_off(&mut self, ai: u32, until: Ms) {
        if until > self.now {
            self.agents[ai as usize].backoff_until = until;
            self.push_timer(until, TimerKind::Backoff { agent: ai });
        }
    }

    fn on_call_ended(&mut self, call: CallId) -> Result<(), AcdError> {
        let si = self.call_idx(call)?;
        let Some(c) = self.call_ref(si) else {
            return Err(AcdError::UnknownCall(call));
        };
        if c.phase != Phase::Connected {
            return Err(AcdError::WrongCallPhase {
                call,
                actual: c.phase.name(),
                expected: "connected",
            });
        }
        let (ai, pi, answered, wrap) = (c.agent, c.practice, c.answered_at, c.wrap_ms);
        let now = self.now;
        let talk = now - answered;
        let alpha = self.settings.aht_alpha;
        if let Some(p) = self.practices.get_mut(pi as usize) {
            p.aht_ms += alpha * (talk as f64 - p.aht_ms);
        }
        let _ = self.free_call(si);
        if ai == NONE {
            return Ok(());
        }
        let agent = self.agents[ai as usize].id.clone();
        self.emit(Event::CallCompleted {
            call,
            agent,
            talk: dur(talk),
        });
        let a = &mut self.agents[ai as usize];
        a.call = NONE;
        if a.retired {
            let from = a.state;
            let id = a.id.clone();
            a.state = AgentState::LoggedOut;
            self.emit(Event::AgentStateChanged {
                agent: id.clone(),
                from,
                to: AgentState::LoggedOut,
                reason: ChangeReason::Removed,
            });
            self.emit(Event::AgentRemoved { agent: id.clone() });
            self.agent_by_id.remove(&id);
            return Ok(());
        }
        if std::mem::take(&mut a.pending_logout) {
            a.pending_pause = None;
            self.set_state(ai, AgentState::LoggedOut, ChangeReason::Logout);
        } else if let Some(r) = a.pending_pause.take() {
            a.pause_reason = Some(r.clone());
            self.set_state(ai, AgentState::Paused, ChangeReason::Pause(r));
        } else if wrap > 0 {
            a.wrap_until = now + wrap;
            self.push_timer(now + wrap, TimerKind::Wrap { agent: ai });
            self.set_state(ai, AgentState::WrapUp, ChangeReason::CallEnded);
        } else {
            a.idle_since = now;
            self.set_state(ai, AgentState::Available, ChangeReason::CallEnded);
        }
        Ok(())
    }

    fn on_set_priority(&mut self, call: CallId, priority: i32) -> Result<(), AcdError> {
        let si = self.call_idx(call)?;
        let Some(c) = self.call_ref(si) else {
            return Err(AcdError::UnknownCall(call));
        };
        match c.phase {
            Phase::Connected => Err(AcdError::WrongCallPhase {
                call,
                actual: "connected",
                expected: "waiting or ringing",
            }),
            Phase::Ringing => {
                if let Some(c) = self.call_mut(si) {
                    c.priority = priority;
                }
                Ok(())
            }
            Phase::Waiting => {
                self.unindex_call(si);
                if let Some(c) = self.call_mut(si) {
                    c.priority = priority;
                }
                self.index_call(si);
                Ok(())
            }
        }
    }

    // -------------------------------------------------------- agent inputs

    /// Withdraws the agent's ringing offer (action + event); returns the
    /// call slot to re-queue once the agent's state is settled.
    fn withdraw_offer(&mut self, ai: u32, reason: CancelReason) -> Option<u32> {
        let a = &mut self.agents[ai as usize];
        if a.state != AgentState::Offered || a.call == NONE {
            return None;
        }
        let si = std::mem::replace(&mut a.call, NONE);
        let agent = a.id.clone();
        let call = self.call_ref(si)?.id;
        self.emit_action(Action::CancelOffer {
            call,
            agent: agent.clone(),
            reason,
        });
        self.emit(Event::OfferWithdrawn {
            call,
            agent,
            reason,
        });
        Some(si)
    }

    fn on_login(&mut self, ai: u32) {
        let a = &mut self.agents[ai as usize];
        if a.retired {
            return;
        }
        if a.state == AgentState::LoggedOut {
            a.idle_since = self.now;
            a.strikes = 0;
            self.set_state(ai, AgentState::Available, ChangeReason::Login);
        } else {
            a.pending_logout = false;
        }
    }

    fn on_logout(&mut self, ai: u32) {
        match self.agents[ai as usize].state {
            AgentState::LoggedOut => {}
            AgentState::OnCall => self.agents[ai as usize].pending_logout = true,
            AgentState::Offered => {
                let si = self.withdraw_offer(ai, CancelReason::AgentLoggedOut);
                self.set_state(ai, AgentState::LoggedOut, ChangeReason::Logout);
                if let Some(si) = si {
                    self.requeue(si);
                }
            }
            _ => self.set_state(ai, AgentState::LoggedOut, ChangeReason::Logout),
        }
    }

    fn on_pause(&mut self, ai: u32, reason: PauseReason) -> Result<(), AcdError> {
        let a = &mut self.agents[ai as usize];
        match a.state {
            AgentState::LoggedOut => Err(AcdError::AgentLoggedOut(a.id.clone())),
            AgentState::OnCall => {
                a.pending_pause = Some(reason);
                Ok(())
            }
            AgentState::Paused => {
                a.pause_reason = Some(reason);
                Ok(())
            }
            AgentState::Offered => {
                let si = self.withdraw_offer(ai, CancelReason::AgentPaused);
                self.agents[ai as usize].pause_reason = Some(reason.clone());
                self.set_state(ai, AgentState::Paused, ChangeReason::Pause(reason));
                if let Some(si) = si {
                    self.requeue(si);
                }
                Ok(())
            }
            AgentState::Available | AgentState::WrapUp => {
                a.pause_reason = Some(reason.clone());
                self.set_state(ai, AgentState::Paused, ChangeReason::Pause(reason));
                Ok(())
            }
        }
    }

    fn on_unpause(&mut self, ai: u32) {
        let now = self.now;
        let a = &mut self.agents[ai as usize];
        match a.state {
            AgentState::Paused => {
                a.idle_since = now;
                a.strikes = 0;
                self.set_state(ai, AgentState::Available, ChangeReason::Unpause);
            }
            AgentState::OnCall => a.pending_pause = None,
            _ => {}
        }
    }

    fn on_reachability(&mut self, ai: u32, reachable: bool) {
        let now = self.now;
        let a = &mut self.agents[ai as usize];
        if a.reachable == reachable {
            return;
        }
        a.reachable = reachable;
        if reachable {
            a.idle_since = now;
        }
        let id = a.id.clone();
        self.emit(Event::ReachabilityChanged {
            agent: id,
            reachable,
        });
        if !reachable && self.agents[ai as usize].state == AgentState::Offered {
            let si = self.withdraw_offer(ai, CancelReason::AgentUnreachable);
            self.set_state(ai, AgentState::Available, ChangeReason::OfferEnded);
            if let Some(si) = si {
                self.requeue(si);
            }
        } else {
            self.refresh_agent(ai);
        }
    }

    // --------------------------------------------------------------- timers

    fn run_timers(&mut self) {
        while let Some(Reverse(t)) = self.timers.peek().copied() {
            if t.at > self.now {
                break;
            }
            self.timers.pop();
            self.fire(t);
        }
        // Keep the top live so poll_timeout is exact.
        while let Some(Reverse(t)) = self.timers.peek().copied() {
            if self.timer_live(&t) {
                break;
            }
            self.timers.pop();
        }
    }

    fn timer_live(&self, t: &Timer) -> bool {
        match t.kind {
            TimerKind::Ring { call, offer } => self
                .call_ref(call)
                .is_some_and(|c| c.phase == Phase::Ringing && c.offer_seq == offer),
            TimerKind::Relax { call, seq } => self
                .call_ref(call)
                .is_some_and(|c| c.seq == seq && c.next_relax == Some(t.at)),
            TimerKind::MaxWait { call, seq } => self
                .call_ref(call)
                .is_some_and(|c| c.seq == seq && c.max_wait_at == Some(t.at)),
            TimerKind::Wrap { agent } => self
                .agents
                .get(agent as usize)
                .is_some_and(|a| a.state == AgentState::WrapUp && a.wrap_until == t.at),
            TimerKind::Backoff { agent } => self
                .agents
                .get(agent as usize)
                .is_some_and(|a| a.backoff_until == t.at),
            TimerKind::Shift { agent } => self
                .agents
                .get(agent as usize)
                .is_some_and(|a| a.shift_next == Some(t.at)),
        }
    }

    fn fire(&mut self, t: Timer) {
        if !self.timer_live(&t) {
            return;
        }
        match t.kind {
            TimerKind::Ring { call, .. } => self.on_ring_timeout(call),
            TimerKind::Relax { call, .. } => self.on_relax(call),
            TimerKind::MaxWait { call, .. } => self.on_max_wait(call),
            TimerKind::Wrap { agent } => {
                self.agents[agent as usize].idle_since = self.now;
                self.set_state(agent, AgentState::Available, ChangeReason::WrapUpEnded);
            }
            TimerKind::Backoff { agent } => {
                self.agents[agent as usize].backoff_until = Ms::MIN;
                self.refresh_agent(agent);
            }
            TimerKind::Shift { agent } => {
                let was = self.agents[agent as usize].in_shift;
                self.init_shift(agent, Some(was));
                let a = &mut self.agents[agent as usize];
                if a.in_shift && !was {
                    a.idle_since = self.now;
                }
                self.refresh_agent(agent);
            }
        }
    }

    fn on_ring_timeout(&mut self, si: u32) {
        let Some(c) = self.call_ref(si) else { return };
        let (call, ai, pi) = (c.id, c.agent, c.practice);
        if ai == NONE {
            return;
        }
        let max_strikes = self
            .practices
            .get(pi as usize)
            .map_or(self.settings.max_no_answer_strikes, |p| p.max_strikes);
        let a = &mut self.agents[ai as usize];
        a.strikes += 1;
        a.call = NONE;
        let strikes = a.strikes;
        let agent = a.id.clone();
        self.emit_action(Action::CancelOffer {
            call,
            agent: agent.clone(),
            reason: CancelReason::RingTimeout,
        });
        self.emit(Event::Rona {
            call,
            agent,
            strikes,
        });
        if strikes >= max_strikes {
            let a = &mut self.agents[ai as usize];
            a.strikes = 0;
            a.pause_reason = Some(self.no_answer.clone());
            self.set_state(ai, AgentState::Paused, ChangeReason::NoAnswer);
        } else {
            let until = self.now + secs_ms(self.settings.rona_backoff_secs);
            self.back_off(ai, until);
            self.set_state(ai, AgentState::Available, ChangeReason::OfferEnded);
        }
        self.requeue(si);
    }

    fn on_relax(&mut self, si: u32) {
        let now = self.now;
        let Some(c) = self.call_ref(si) else { return };
        let r = c.route as usize;
        let route = &self.routes[r];
        let old = c.step as usize;
        let step = (active_step(route, now - c.joined) as usize).max(old);
        let relax = next_relax(route, step as u32, c.joined);
        let (seq, phase, gen) = (c.seq, c.phase, self.slots[si as usize].gen);
        let score = call_score(c.priority, c.joined, c.seq);
        let len = route.steps.len();
        if let Some(c) = self.call_mut(si) {
            c.step = step as u32;
            c.next_relax = relax;
        }
        if let Some(t) = relax {
            self.push_timer(t, TimerKind::Relax { call: si, seq });
        }
        if phase == Phase::Waiting {
            for i in (old + 1).min(len)..(step + 1).min(len) {
                let g = self.routes[r].steps[i].1;
                push_call(&mut self.groups, &self.slots, g, score, si, gen);
            }
            self.dispatch_call(si);
        }
    }

    fn on_max_wait(&mut self, si: u32) {
        let now = self.now;
        let Some(c) = self.call_mut(si) else { return };
        c.max_wait_at = None;
        let (pi, phase, call, joined) = (c.practice, c.phase, c.id, c.joined);
        let Some(p) = self.practices.get(pi as usize) else {
            return;
        };
        let target = p.overflow.clone();
        match (&target, p.overflow_pool) {
            (OverflowTarget::Pool(pool), Some(_)) => {
                let pool = pool.clone();
                let route = self.call_ref(si).map(|c| c.route);
                let og = route.and_then(|r| self.routes[r as usize].overflow);
                if let Some(c) = self.call_mut(si) {
                    c.retargeted = true;
                }
                self.emit(Event::Retargeted {
                    call,
                    pool,
                    wait: dur(now - joined),
                });
                if phase == Phase::Waiting {
                    if let Some(g) = og {
                        let gen = self.slots[si as usize].gen;
                        if let Some(c) = self.call_ref(si) {
                            let score = call_score(c.priority, c.joined, c.seq);
                            push_call(&mut self.groups, &self.slots, g, score, si, gen);
                        }
                    }
                    self.dispatch_call(si);
                }
            }
            _ => {
                if phase == Phase::Ringing {
                    // Let the agent's phone ring out; overflow if unanswered.
                    if let Some(c) = self.call_mut(si) {
                        c.overflow_pending = true;
                    }
                } else {
                    self.overflow_out(si, target, OverflowReason::MaxWait);
                }
            }
        }
    }

    // ------------------------------------------------------------- queries

    fn call_snapshot(&self, si: u32, now: Ms) -> CallSnapshot {
        let Some(c) = self.call_ref(si) else {
            return CallSnapshot {
                call: CallId(0),
                practice: None,
                phase: CallPhase::Waiting,
                agent: None,
                priority: 0,
                wait: Duration::ZERO,
                step: 0,
                retargeted: false,
                position: 0,
                estimated_wait: None,
            };
        };
        CallSnapshot {
            call: c.id,
            practice: self
                .practices
                .get(c.practice as usize)
                .map(|p| p.id.clone()),
            phase: match c.phase {
                Phase::Waiting => CallPhase::Waiting,
                Phase::Ringing => CallPhase::Ringing,
                Phase::Connected => CallPhase::Connected,
            },
            agent: self.agents.get(c.agent as usize).map(|a| a.id.clone()),
            priority: c.priority,
            wait: dur(match c.phase {
                Phase::Connected => c.answered_at - c.joined,
                _ => now - c.joined,
            }),
            step: c.step,
            retargeted: c.retargeted,
            position: self.position(si),
            estimated_wait: if c.phase == Phase::Waiting {
                self.call_ewt(si, now).map(dur)
            } else {
                None
            },
        }
    }

    fn agent_snapshot(&self, ai: u32) -> AgentSnapshot {
        let a = &self.agents[ai as usize];
        AgentSnapshot {
            agent: a.id.clone(),
            state: a.state,
            pause_reason: a
                .pause_reason
                .as_ref()
                .or(a.pending_pause.as_ref())
                .map(|r| r.to_string()),
            in_shift: a.in_shift,
            reachable: a.reachable,
            dispatchable: a.dispatchable,
            backoff: (a.backoff_until > self.now).then(|| dur(a.backoff_until - self.now)),
            strikes: a.strikes,
            call: self.call_ref(a.call).map(|c| c.id),
            pending_logout: a.pending_logout,
            retired: a.retired,
        }
    }

    /// When the agent is expected to be free for a new call (None: cannot
    /// serve: logged out, paused, out of shift, unreachable).
    fn agent_free_at(&self, ai: u32, now: Ms) -> Option<f64> {
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
    fn ewt_core(
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

    fn call_ewt(&self, si: u32, now: Ms) -> Option<Ms> {
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

    fn practice_ewt(&self, pi: u32, now: Ms) -> Option<Ms> {
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

    /// Whether the agent is currently inside its shift (for tests/admin).
    pub fn agent_in_shift(&self, agent: &str) -> Option<bool> {
        Some(self.agents[*self.agent_by_id.get(agent)? as usize].in_shift)
    }

    /// Number of indexing groups (diagnostics).
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// The practice ids, in configuration order.
    pub fn practice_ids(&self) -> impl Iterator<Item = &PracticeId> {
        self.practices.iter().map(|p| &p.id)
    }
}

/// When `s` next changes between open and closed (`None`: never, as far
/// as the calendar looks ahead; a re-check is then scheduled anyway, so a
/// schedule that only changes beyond the horizon is still followed).
fn schedule_next(s: &Schedule, now: Ms) -> Option<Ms> {
    if s.always_open {
        return None;
    }
    Some(s.next_change(time_of(now)).map_or(now + RECHECK_MS, ms_of))
}

fn call_live(slots: &[Slot], e: &Entry) -> bool {
    slots.get(e.idx as usize).is_some_and(|s| {
        s.gen == e.gen && s.call.as_ref().is_some_and(|c| c.phase == Phase::Waiting)
    })
}

fn agent_live(agents: &[AgentRt], e: &Entry) -> bool {
    agents
        .get(e.idx as usize)
        .is_some_and(|a| a.dispatchable && a.gen == e.gen)
}

fn push_call(groups: &mut [Group], slots: &[Slot], g: u32, score: u128, si: u32, gen: u32) {
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

/// Highest step index whose delay has elapsed (0 if none has: a call is
/// always at least at step 0, eligible or not).
fn active_step(route: &Route, elapsed: Ms) -> u32 {
    let n = route.steps.iter().take_while(|s| s.0 <= elapsed).count();
    n.saturating_sub(1) as u32
}

fn next_relax(route: &Route, step: u32, joined: Ms) -> Option<Ms> {
    route.steps.get(step as usize + 1).map(|s| joined + s.0)
}

fn normalize_skills(skills: &mut Vec<(u32, u8)>) {
    skills.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    skills.dedup_by_key(|s| s.0);
}

fn make_key(
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

/// The `k`-th smallest value of `{f + j·service : f ∈ free, j ≥ 0}`.
fn kth_slot(free: &[f64], k: usize, service: f64) -> f64 {
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
