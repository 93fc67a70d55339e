//! The dispatcher state machine.

mod agents;
mod calendar;
mod calls;
mod estimate;
mod index;
mod invariants;
mod offers;
mod practices;
mod queries;
mod reconfigure;
mod time;
mod timers;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use chrono::{DateTime, Utc};

use crate::config::{AcdConfig, AcdSettings, OverflowTarget, Strategy};
use crate::error::AcdError;
use crate::ids::{AgentId, CallId, PauseReason, PoolId, PracticeId};
use crate::io::{Action, AgentState, ChangeReason, Event, Input, Output};

use self::agents::AgentRt;
use self::calls::Slot;
use self::index::{Group, GroupKey, Interner, ReqKey, Route};
use self::practices::{PracticeRt, Sel};
use self::time::{ms_of, secs_ms, time_of, Ms};
use self::timers::Timer;

pub(super) const NONE: u32 = u32::MAX;

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

    pub(super) fn advance(&mut self, now: DateTime<Utc>) {
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

    pub(super) fn emit(&mut self, e: Event) {
        self.outputs.push_back(Output::Event(e));
    }

    pub(super) fn emit_action(&mut self, a: Action) {
        self.outputs.push_back(Output::Action(a));
    }
}
