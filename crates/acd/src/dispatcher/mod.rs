//! The dispatcher state machine, one concern per file:
//!
//! | file | holds |
//! |---|---|
//! | `mod.rs` | [`Dispatcher`], its construction and the driving API (`handle_input`, `handle_timeout`, `set_wall_clock`, `poll_timeout`, `poll_output`) |
//! | `idx.rs` | typed table indices (`AgentIdx`, `SlotIdx`, `GroupIdx`, ...) and `IdxVec` |
//! | `time.rs` | internal time (`Ms`) and conversions |
//! | `build.rs` | turning an [`AcdConfig`] into the runtime tables |
//! | `index.rs` | the routing index: interners, groups, requirement keys, routes, call indexing |
//! | `practices.rs` | practice runtime state |
//! | `agents.rs` | agent runtime state, agent inputs (outbound calls included), dispatchability, back-off |
//! | `calls.rs` | call runtime state and slots, call inputs |
//! | `offers.rs` | matching calls and agents: offers, withdrawals, re-queueing, overflow |
//! | `timers.rs` | the timer table and what each timer does |
//! | `calendar.rs` | opening hours, shifts, the wall-clock offset |
//! | `reconfigure.rs` | applying a new configuration in flight |
//! | `estimate.rs` | the estimated-wait computation |
//! | `queries.rs` | read-only snapshots and queries |
//! | `invariants.rs` | `check_invariants` (tests) |

mod agents;
mod build;
mod calendar;
mod calls;
mod estimate;
mod idx;
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

use crate::config::{AcdConfig, AcdSettings};
use crate::error::AcdError;
use crate::ids::{AgentId, CallId, PauseReason, PoolId, PracticeId};
use crate::io::{Action, AgentState, ChangeReason, Event, Input, Output};

use self::agents::AgentRt;
use self::calls::Slot;
use self::idx::{
    AgentIdx, GroupIdx, IdxVec, LangIdx, PoolIdx, PracticeIdx, ReqIdx, RouteIdx, SkillIdx, SlotIdx,
};
use self::index::{Group, GroupKey, Interner, ReqKey, Route};
use self::practices::PracticeRt;
use self::time::{ms_of, time_of, Ms};
use self::timers::Timer;

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
/// backwards is clamped to the latest time seen. The first call given a
/// time (`handle_*`, `set_wall_clock`, `reconfigure`) starts the clock:
/// agents configured `logged_in` become available then, and shift windows
/// are evaluated from that instant.
///
/// Engine time and wall time: the `now` passed in is *engine time*; the
/// driver may take it from a monotonic clock (the wall clock at start plus
/// the monotonic time elapsed), so that a step of the system clock (NTP)
/// never fires a ring, relax, maximum-wait, wrap-up or back-off timer early
/// or late. Calendars (opening hours, shifts, holidays) are evaluated at
/// the true wall time: the driver reports it with
/// [`Dispatcher::set_wall_clock`] and the dispatcher evaluates calendars at
/// `now + offset` (`offset` = wall − engine time, 0 until reported, i.e.
/// engine time is then taken as wall time), schedules shift boundaries at
/// `wall boundary − offset` on the engine timeline, and answers
/// [`Dispatcher::is_open`] and the snapshots' `open` at the wall time too.
///
/// Indexing: every (practice, call requirements) pair resolves each routing
/// step to a *group* (a conjunction of criteria plus a ranking), shared by
/// all practices with the same criteria (a shared pool is one group). Each
/// group keeps a heap of its dispatchable agents (by the ranking) and a heap
/// of the waiting calls for which it is active (by priority, then join
/// time). A new or relaxed call peeks the agent heaps of its active groups;
/// an agent becoming dispatchable peeks the call heaps of its groups. A
/// decision therefore costs O(groups involved × log n), independent of the
/// number of practices and of the agents outside the groups. A call placed
/// at the head of its queue (`CallArrival::head`) only scores in a band
/// above every priority; a call transferred to an agent or a pool
/// (`CallArrival::target`) has a route of its own whose one step is the
/// target's group (an agent's own group, or the pool's), so neither costs
/// the dispatch path anything. Invariant after every method returns: no
/// waiting call has a dispatchable eligible agent.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    /// The configuration in force, and its settings (defaults).
    config: AcdConfig,
    settings: AcdSettings,
    // Tables, each indexed by its own index type (see `idx.rs`), and the
    // maps from configuration ids into them.
    skills: Interner<SkillIdx>,
    langs: Interner<LangIdx>,
    agents: IdxVec<AgentIdx, AgentRt>,
    agent_by_id: HashMap<AgentId, AgentIdx>,
    pool_by_id: HashMap<PoolId, PoolIdx>,
    pool_members: IdxVec<PoolIdx, Vec<AgentIdx>>,
    practices: IdxVec<PracticeIdx, PracticeRt>,
    practice_by_id: HashMap<PracticeId, PracticeIdx>,
    groups: IdxVec<GroupIdx, Group>,
    group_by_key: HashMap<GroupKey, GroupIdx>,
    routes: IdxVec<RouteIdx, Route>,
    reqs: IdxVec<ReqIdx, ReqKey>,
    req_by_key: HashMap<ReqKey, ReqIdx>,
    slots: IdxVec<SlotIdx, Slot>,
    free_slots: Vec<SlotIdx>,
    call_by_id: HashMap<CallId, SlotIdx>,
    // Timers (`timers.rs`), outputs and clock.
    timers: BinaryHeap<Reverse<Timer>>,
    timer_order: u64,
    outputs: VecDeque<Output>,
    started: bool,
    /// Latest time seen (engine time).
    now: Ms,
    /// Wall clock minus engine time, in ms (calendars: `calendar.rs`).
    wall_offset: Ms,
    call_seq: u64,
    offer_seq: u64,
    no_answer: PauseReason,
}

impl Dispatcher {
    /// Builds a dispatcher, validating every reference of the configuration
    /// ([`AcdConfig::validate`]).
    pub fn new(config: AcdConfig) -> Result<Self, AcdError> {
        config.validate()?;
        let mut d = Dispatcher::empty(&config);
        d.build(&config);
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
            Input::CallEnded { call } => self.on_call_ended(call, true),
            Input::CallReleased { call } => self.on_call_ended(call, false),
            Input::CallbackRequested { call } => self.on_callback_requested(call),
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
            Input::AgentOutboundStarted { agent } => {
                self.agent_idx(&agent).map(|a| self.on_outbound_started(a))
            }
            Input::AgentOutboundEnded { agent } => {
                self.agent_idx(&agent).map(|a| self.on_outbound_ended(a))
            }
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

    /// Tells the dispatcher that at engine time `now` the wall clock reads
    /// `wall` (see "Engine time and wall time" above).
    ///
    /// The dispatcher keeps `offset = wall - now` (ms). If it changed (by
    /// any amount: the driver only calls when it moved by more than a
    /// second), the practices' cached open states are dropped and every
    /// agent's shift is re-evaluated at the new wall time, as a shift
    /// boundary does (`ShiftChanged` where it changed, new shift timer,
    /// dispatchability refreshed, a waiting call offered to an agent
    /// entering its shift). Then time advances to `now` and the due timers
    /// fire, as in [`Dispatcher::handle_timeout`]. Timers other than shift
    /// boundaries (ring, relax, max wait, wrap-up, back-off) do not move.
    pub fn set_wall_clock(&mut self, wall: DateTime<Utc>, now: DateTime<Utc>) {
        let offset = ms_of(wall).saturating_sub(ms_of(now));
        let moved = offset != self.wall_offset;
        let was_started = self.started;
        self.wall_offset = offset;
        // Starting evaluates the shifts with the new offset already.
        self.advance(now);
        if moved && was_started {
            self.wall_clock_moved();
        }
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

    /// Moves the clock to `now` (never backwards); the first call starts
    /// the dispatcher: agents configured `logged_in` become available and
    /// shifts are evaluated.
    fn advance(&mut self, now: DateTime<Utc>) {
        let t = ms_of(now);
        if t > self.now {
            self.now = t;
        }
        if !self.started {
            self.start();
        }
    }

    fn start(&mut self) {
        self.started = true;
        for ai in self.agents.indices() {
            let a = &mut self.agents[ai];
            if a.logged_in_at_start {
                a.state = AgentState::Available;
                a.idle_since = self.now;
                let id = a.id.clone();
                self.emit(Event::AgentStateChanged {
                    agent: id,
                    from: AgentState::LoggedOut,
                    to: AgentState::Available,
                    reason: ChangeReason::Login,
                });
            }
            self.init_shift(ai, None);
        }
        for ai in self.agents.indices() {
            self.refresh_agent(ai);
        }
    }

    fn emit(&mut self, e: Event) {
        self.outputs.push_back(Output::Event(e));
    }

    fn emit_action(&mut self, a: Action) {
        self.outputs.push_back(Output::Action(a));
    }
}
