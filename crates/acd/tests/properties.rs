//! Property tests: random input sequences, invariants checked after each step.

mod common;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use common::*;
use permanence_acd::*;
use proptest::prelude::*;
use proptest::strategy::Strategy as _;

#[derive(Debug, Clone)]
enum Op {
    Arrive {
        practice: usize,
        priority: Option<i32>,
        english: bool,
        /// `joined_at`, in ms before now (negative: in the future).
        joined_ago: Option<i64>,
        /// `CallArrival::head`.
        head: bool,
        /// `CallArrival::target`: an index into [`TARGETS`].
        target: Option<usize>,
    },
    Abandon(usize),
    Answer(usize),
    Fail(usize, u8),
    End(usize),
    Release(usize),
    SetPriority(usize, i32),
    Pause(usize),
    Unpause(usize),
    Login(usize),
    Logout(usize),
    Reach(usize, bool),
    OutStart(usize),
    OutEnd(usize),
    Advance(i64),
    Reconfigure(bool),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    prop_oneof![
        6 => (
            0..3usize,
            prop::option::of(-1..3i32),
            prop::bool::weighted(0.2),
            prop::option::weighted(0.3, -60_000..900_000i64),
            prop::bool::weighted(0.2),
            prop::option::weighted(0.3, 0..TARGETS.len()),
        )
            .prop_map(
                |(practice, priority, english, joined_ago, head, target)| Op::Arrive {
                    practice,
                    priority,
                    english,
                    joined_ago,
                    head,
                    target,
                }
            ),
        2 => (0..64usize).prop_map(Op::Abandon),
        5 => (0..64usize).prop_map(Op::Answer),
        1 => (0..64usize, 0..3u8).prop_map(|(c, r)| Op::Fail(c, r)),
        4 => (0..64usize).prop_map(Op::End),
        2 => (0..64usize).prop_map(Op::Release),
        1 => (0..64usize, -2..5i32).prop_map(|(c, p)| Op::SetPriority(c, p)),
        1 => (0..6usize).prop_map(Op::Pause),
        1 => (0..6usize).prop_map(Op::Unpause),
        1 => (0..6usize).prop_map(Op::Login),
        1 => (0..6usize).prop_map(Op::Logout),
        1 => (0..6usize, any::<bool>()).prop_map(|(a, r)| Op::Reach(a, r)),
        1 => (0..6usize).prop_map(Op::OutStart),
        1 => (0..6usize).prop_map(Op::OutEnd),
        6 => (0..90_000i64).prop_map(Op::Advance),
        1 => any::<bool>().prop_map(Op::Reconfigure),
    ]
}

const AGENTS: [&str; 6] = ["a0", "a1", "a2", "a3", "a4", "a5"];
const PRACTICES: [&str; 3] = ["p0", "p1", "p2"];
/// Transfer targets: every agent and pool, and unknown ones.
const TARGETS: [(bool, &str); 10] = [
    (false, "a0"),
    (false, "a1"),
    (false, "a2"),
    (false, "a3"),
    (false, "a4"),
    (false, "a5"),
    (false, "ghost"),
    (true, "shared"),
    (true, "backup"),
    (true, "ghost-pool"),
];

fn target(i: usize) -> ArrivalTarget {
    let (pool, id) = TARGETS[i % TARGETS.len()];
    if pool {
        ArrivalTarget::Pool(id.into())
    } else {
        ArrivalTarget::Agent(id.into())
    }
}

/// The members of `pool` in `prop_config(alternate)` (`None`: no such pool).
fn pool_members(pool: &str, alternate: bool) -> Option<Vec<&'static str>> {
    match pool {
        "shared" if alternate => Some(vec!["a3", "a4"]),
        "shared" => Some(vec!["a3", "a4", "a5"]),
        "backup" => Some(vec!["a4"]),
        _ => None,
    }
}

/// Whether `prop_config(alternate)` knows the target.
fn target_known(t: &ArrivalTarget, alternate: bool) -> bool {
    match t {
        ArrivalTarget::Agent(a) => {
            let n = if alternate { 5 } else { 6 };
            AGENTS[..n].contains(&a.as_str())
        }
        ArrivalTarget::Pool(p) => pool_members(p.as_str(), alternate).is_some(),
    }
}

fn spec(ranges: &str) -> Schedule {
    ScheduleSpec {
        tz: "Europe/Paris".into(),
        always_open: false,
        weekly: [("daily".to_string(), vec![ranges.to_string()])]
            .into_iter()
            .collect(),
        holidays: permanence_calendar::HolidayRule::None,
        exceptions: vec![],
    }
    .to_schedule()
    .expect("valid")
}

fn prop_config(alternate: bool) -> AcdConfig {
    let mut agents: Vec<AgentProfile> = AGENTS.iter().map(|a| agent(a)).collect();
    agents[0].shift = Some(spec("08:00-08:10"));
    agents[1].shift = Some(spec("08:05-09:00"));
    agents[2].languages.push("en".into());
    for a in &mut agents[3..] {
        a.pools.push("shared".into());
        a.skills.insert("generaliste".into(), 3);
    }
    agents[4].logged_in = false;
    let mut p0 = practice("p0", &["a0", "a1"]);
    p0.steps.push(RoutingStep {
        after: std::time::Duration::from_secs(15),
        select: Selector {
            pool: Some("shared".into()),
            skill: Some("generaliste".into()),
            min_level: 3,
            ..Selector::default()
        },
    });
    p0.max_wait = Some(std::time::Duration::from_secs(120));
    p0.overflow = OverflowTarget::Pool("backup".into());
    p0.wrap_up = Some(std::time::Duration::from_secs(5));
    let mut p1 = practice("p1", &["a2"]);
    p1.hours = Some(spec("08:00-08:20"));
    p1.max_wait = Some(std::time::Duration::from_secs(60));
    p1.overflow = OverflowTarget::Voicemail;
    p1.ring_timeout = Some(std::time::Duration::from_secs(8));
    p1.steps.push(RoutingStep {
        after: std::time::Duration::from_secs(30),
        select: Selector {
            language: Some("fr".into()),
            ..Selector::default()
        },
    });
    let mut p2 = practice("p2", &["a5"]);
    p2.max_wait = Some(std::time::Duration::from_secs(45));
    p2.overflow = OverflowTarget::Callback;
    p2.strategy = Some(permanence_acd::Strategy::RoundRobin);
    let mut practices = vec![p0, p1, p2];
    if alternate {
        agents.pop();
        practices.pop();
        practices[0].steps.truncate(1);
        practices[1].max_wait = Some(std::time::Duration::from_secs(20));
    }
    let mut c = config(agents, practices);
    c.pools.push(PoolDef {
        id: "shared".into(),
        members: vec![],
    });
    c.pools.push(PoolDef {
        id: "backup".into(),
        members: vec!["a4".into()],
    });
    c.settings.max_no_answer_strikes = 2;
    c
}

#[derive(Default)]
struct Model {
    /// Terminal events per call.
    terminal: HashMap<u64, Vec<&'static str>>,
    /// Outstanding offers call -> agent.
    offers: HashMap<u64, String>,
    /// Agent state as told by events.
    state: HashMap<String, AgentState>,
    in_shift: HashMap<String, bool>,
    reachable: HashMap<String, bool>,
    backoff_until: HashMap<String, DateTime<Utc>>,
    /// Outbound calls in progress, as told by the accepted inputs.
    outbound: HashMap<String, u32>,
    /// The configuration in force is the alternate one.
    alternate: bool,
    /// Targets of the transferred calls (dropped when a reconfiguration
    /// removes them).
    targets: HashMap<u64, ArrivalTarget>,
    /// Calls retargeted to their practice's overflow pool.
    retargeted: HashSet<u64>,
}

impl Model {
    /// Whether a call transferred to `t` may be offered to `agent`: the
    /// target agent, a member of the target pool, or (once retargeted) a
    /// member of the overflow pool (`backup`, p0's only: the other
    /// practices have no pool overflow).
    fn allowed(&self, call: u64, t: &ArrivalTarget, agent: &str) -> bool {
        let members = |p: &str| pool_members(p, self.alternate).unwrap_or_default();
        let by_target = match t {
            ArrivalTarget::Agent(a) => a.as_str() == agent,
            ArrivalTarget::Pool(p) => members(p.as_str()).contains(&agent),
        };
        by_target || (self.retargeted.contains(&call) && members("backup").contains(&agent))
    }

    /// A reconfiguration to `prop_config(alternate)`: targets it does not
    /// know are dropped for good.
    fn reconfigure(&mut self, alternate: bool) {
        self.alternate = alternate;
        self.targets.retain(|_, t| target_known(t, alternate));
    }

    fn apply(&mut self, outputs: &[Output], now: DateTime<Utc>) -> Result<(), String> {
        for o in outputs {
            match o {
                Output::Action(Action::Offer { call, agent, .. }) => {
                    let a = agent.to_string();
                    if self.offers.contains_key(&call.0) {
                        return Err(format!("call {} offered twice", call.0));
                    }
                    if self.offers.values().any(|x| *x == a) {
                        return Err(format!("agent {a} has two offers"));
                    }
                    let st = self.state.get(&a).copied();
                    if st != Some(AgentState::Available) {
                        return Err(format!("offer to {a} in state {st:?}"));
                    }
                    if self.in_shift.get(&a) == Some(&false) {
                        return Err(format!("offer to {a} outside its shift"));
                    }
                    if self.reachable.get(&a) == Some(&false) {
                        return Err(format!("offer to unreachable {a}"));
                    }
                    if self.backoff_until.get(&a).is_some_and(|t| *t > now) {
                        return Err(format!("offer to {a} during its back-off"));
                    }
                    if self.outbound.get(&a).is_some_and(|n| *n > 0) {
                        return Err(format!("offer to {a} during an outbound call"));
                    }
                    if let Some(t) = self.targets.get(&call.0) {
                        if !self.allowed(call.0, t, &a) {
                            return Err(format!("call {} for {t:?} offered to {a}", call.0));
                        }
                    }
                    self.offers.insert(call.0, a);
                }
                Output::Action(Action::CancelOffer { call, agent, .. })
                    if self.offers.remove(&call.0).as_deref() != Some(agent.as_str()) =>
                {
                    return Err(format!("cancel of an offer not made: {}", call.0));
                }
                Output::Event(e) => match e {
                    Event::Answered { call, agent, .. } => {
                        if self.offers.remove(&call.0).as_deref() != Some(agent.as_str()) {
                            return Err(format!("answer of an offer not made: {}", call.0));
                        }
                        self.terminal.entry(call.0).or_default().push("answered");
                    }
                    Event::CallCompleted { call, .. } => {
                        self.terminal.entry(call.0).or_default().push("completed");
                    }
                    Event::Abandoned { call, .. } => {
                        self.terminal.entry(call.0).or_default().push("abandoned");
                    }
                    Event::Overflowed { call, .. } => {
                        self.terminal.entry(call.0).or_default().push("overflowed");
                    }
                    Event::Closed { call, .. } => {
                        self.terminal.entry(call.0).or_default().push("closed");
                    }
                    Event::OfferFailed { call, agent, .. } => {
                        if self.offers.remove(&call.0).as_deref() != Some(agent.as_str()) {
                            return Err(format!("failure of an offer not made: {}", call.0));
                        }
                        self.backoff_until
                            .insert(agent.to_string(), now + Duration::seconds(10));
                    }
                    Event::Rona { agent, .. } => {
                        self.backoff_until
                            .insert(agent.to_string(), now + Duration::seconds(10));
                    }
                    Event::AgentStateChanged {
                        agent,
                        from,
                        to,
                        reason,
                    } => {
                        if *reason == ChangeReason::NoAnswer {
                            // Auto-pause replaces the back-off.
                            self.backoff_until.remove(agent.as_str());
                        }
                        let prev = self.state.insert(agent.to_string(), *to);
                        if prev.is_some_and(|p| p != *from) {
                            return Err(format!("{agent}: from {from:?} but was {prev:?}"));
                        }
                    }
                    Event::AgentRemoved { agent } => {
                        // A re-added agent starts afresh.
                        self.reachable.remove(agent.as_str());
                        self.backoff_until.remove(agent.as_str());
                        self.in_shift.remove(agent.as_str());
                        self.outbound.remove(agent.as_str());
                        self.state.insert(agent.to_string(), AgentState::LoggedOut);
                    }
                    Event::Retargeted { call, .. } => {
                        self.retargeted.insert(call.0);
                    }
                    Event::ShiftChanged { agent, in_shift } => {
                        self.in_shift.insert(agent.to_string(), *in_shift);
                    }
                    Event::ReachabilityChanged { agent, reachable } => {
                        self.reachable.insert(agent.to_string(), *reachable);
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        Ok(())
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    // Monday 2026-01-12 07:58 Paris: shifts and opening hours flip during
    // the run.
    let start = utc("2026-01-12T06:58:00Z");
    let mut d = Dispatcher::new(prop_config(false)).expect("valid");
    let mut t = start;
    let mut model = Model::default();
    for a in AGENTS {
        model.state.insert(a.to_string(), AgentState::LoggedOut);
    }
    // Initial shift state as the dispatcher sees it.
    d.handle_timeout(t);
    for a in AGENTS {
        model
            .in_shift
            .insert(a.to_string(), d.agent_in_shift(a).expect("agent"));
    }
    let mut calls: Vec<u64> = Vec::new();
    let mut next_call = 1u64;
    let mut outs = Vec::new();
    while let Some(o) = d.poll_output() {
        outs.push(o);
    }
    model.apply(&outs, t).map_err(TestCaseError::fail)?;
    let pick = |calls: &Vec<u64>, i: usize| -> CallId {
        if calls.is_empty() {
            CallId(999_999)
        } else {
            CallId(calls[i % calls.len()])
        }
    };
    for op in ops {
        let mut step_outputs: Vec<(Vec<Output>, DateTime<Utc>)> = Vec::new();
        let input = match op {
            Op::Arrive {
                practice,
                priority,
                english,
                joined_ago,
                head,
                target: to,
            } => {
                let id = next_call;
                next_call += 1;
                let mut a = CallArrival::new(CallId(id), PRACTICES[practice]);
                a.priority = priority;
                a.joined_at = joined_ago.map(|ms| t - Duration::milliseconds(ms));
                a.head = head;
                a.target = to.map(target);
                if english {
                    a.language = Some("en".into());
                }
                Some(Input::CallArrived(a))
            }
            Op::Abandon(i) => Some(Input::CallAbandoned {
                call: pick(&calls, i),
            }),
            Op::Answer(i) | Op::Fail(i, _) => {
                let mut offers: Vec<(&u64, &String)> = model.offers.iter().collect();
                offers.sort();
                if offers.is_empty() {
                    None
                } else {
                    let (c, a) = offers[i % offers.len()];
                    let (call, agent) = (CallId(*c), AgentId::from(a.as_str()));
                    Some(match op {
                        Op::Fail(_, r) => Input::OfferFailed {
                            call,
                            agent,
                            reason: [
                                OfferFailure::Busy,
                                OfferFailure::Rejected,
                                OfferFailure::Unreachable,
                            ][r as usize % 3],
                        },
                        _ => Input::OfferAnswered { call, agent },
                    })
                }
            }
            Op::End(i) => Some(Input::CallEnded {
                call: pick(&calls, i),
            }),
            Op::Release(i) => Some(Input::CallReleased {
                call: pick(&calls, i),
            }),
            Op::SetPriority(i, p) => Some(Input::SetPriority {
                call: pick(&calls, i),
                priority: p,
            }),
            Op::Pause(a) => Some(Input::AgentPause {
                agent: AGENTS[a].into(),
                reason: "break".into(),
            }),
            Op::Unpause(a) => Some(Input::AgentUnpause {
                agent: AGENTS[a].into(),
            }),
            Op::Login(a) => Some(Input::AgentLogin {
                agent: AGENTS[a].into(),
            }),
            Op::Logout(a) => Some(Input::AgentLogout {
                agent: AGENTS[a].into(),
            }),
            Op::Reach(a, r) => Some(Input::AgentReachability {
                agent: AGENTS[a].into(),
                reachable: r,
            }),
            Op::OutStart(a) => Some(Input::AgentOutboundStarted {
                agent: AGENTS[a].into(),
            }),
            Op::OutEnd(a) => Some(Input::AgentOutboundEnded {
                agent: AGENTS[a].into(),
            }),
            Op::Advance(ms) => {
                let target = t + Duration::milliseconds(ms);
                while let Some(next) = d.poll_timeout() {
                    if next > target {
                        break;
                    }
                    t = next.max(t);
                    d.handle_timeout(t);
                    let mut o = Vec::new();
                    while let Some(x) = d.poll_output() {
                        o.push(x);
                    }
                    step_outputs.push((o, t));
                    d.check_invariants().map_err(TestCaseError::fail)?;
                }
                t = target;
                d.handle_timeout(t);
                None
            }
            Op::Reconfigure(alt) => {
                d.reconfigure(prop_config(alt), t)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                model.reconfigure(alt);
                None
            }
        };
        let mut arrived = None;
        if let Some(input) = input {
            let arrival = match &input {
                Input::CallArrived(a) => Some(a.call.0),
                _ => None,
            };
            // Known practice, unknown target: refused.
            let refused = match &input {
                Input::CallArrived(a) => {
                    let known = d.practice_ids().any(|p| *p == a.practice);
                    let bad = a
                        .target
                        .as_ref()
                        .filter(|t| known && !target_known(t, model.alternate));
                    Some(bad.cloned())
                }
                _ => None,
            };
            let target = match &input {
                Input::CallArrived(a) => a.target.clone(),
                _ => None,
            };
            let outbound = match &input {
                Input::AgentOutboundStarted { agent } => Some((agent.to_string(), true)),
                Input::AgentOutboundEnded { agent } => Some((agent.to_string(), false)),
                _ => None,
            };
            let r = d.handle_input(input, t);
            match (refused, &r) {
                (Some(Some(ArrivalTarget::Agent(a))), r) => {
                    prop_assert_eq!(r, &Err(AcdError::UnknownAgent(a)))
                }
                (Some(Some(ArrivalTarget::Pool(p))), r) => {
                    prop_assert_eq!(r, &Err(AcdError::UnknownPool(p)))
                }
                (Some(None), Err(AcdError::UnknownPractice(_))) => {}
                (Some(None), r) => prop_assert!(r.is_ok(), "arrival refused: {:?}", r),
                (None, _) => {}
            }
            if let (Some(id), Ok(())) = (arrival, &r) {
                calls.push(id);
                arrived = Some(id);
                if let Some(to) = target {
                    model.targets.insert(id, to);
                }
            }
            if let (Some((agent, start)), Ok(())) = (outbound, &r) {
                let n = model.outbound.entry(agent).or_default();
                *n = if start { *n + 1 } else { n.saturating_sub(1) };
            }
        }
        let mut o = Vec::new();
        while let Some(x) = d.poll_output() {
            o.push(x);
        }
        // An arrival never overflows at once, whatever its join time (the
        // maximum wait runs from the arrival).
        if let Some(id) = arrived {
            let overflowed = o.iter().any(
                |x| matches!(x, Output::Action(Action::Overflow { call, .. }) if call.0 == id),
            );
            prop_assert!(!overflowed, "call {id} overflowed on arrival");
        }
        step_outputs.push((o, t));
        for (o, at) in &step_outputs {
            model.apply(o, *at).map_err(TestCaseError::fail)?;
        }
        d.check_invariants().map_err(TestCaseError::fail)?;
        // The snapshots count the outbound calls the model counts.
        for a in d.agents().iter().filter(|a| !a.retired) {
            let want = model.outbound.get(a.agent.as_str()).copied().unwrap_or(0);
            prop_assert_eq!(a.outbound_calls, want, "outbound calls of {}", a.agent);
        }
        // Head calls lead every queue, first come first served; the
        // snapshots report the targets in force.
        for q in d.queue_snapshots(t) {
            let heads: Vec<u64> = q
                .calls
                .iter()
                .take_while(|c| c.head)
                .map(|c| c.call.0)
                .collect();
            let all_heads = q.calls.iter().filter(|c| c.head).count();
            prop_assert_eq!(
                heads.len(),
                all_heads,
                "heads not first in {:?}",
                q.practice
            );
            prop_assert!(
                heads.windows(2).all(|w| w[0] < w[1]),
                "heads of {:?} out of arrival order: {:?}",
                q.practice,
                heads
            );
            for c in &q.calls {
                prop_assert_eq!(
                    c.target.as_ref(),
                    model.targets.get(&c.call.0),
                    "target of {}",
                    c.call
                );
            }
        }
        // No call is lost.
        let live: HashSet<CallId> = d.calls().collect();
        for &c in &calls {
            let term = model.terminal.get(&c).cloned().unwrap_or_default();
            let snap = d.call(CallId(c), t);
            match snap {
                Some(s) => {
                    let ok = match s.phase {
                        CallPhase::Connected => term == ["answered"],
                        CallPhase::Ringing => {
                            term.is_empty()
                                && model.offers.get(&c).map(|a| a.as_str())
                                    == s.agent.as_ref().map(|a| a.as_str())
                        }
                        CallPhase::Waiting => term.is_empty() && !model.offers.contains_key(&c),
                    };
                    prop_assert!(ok, "call {c} {:?} with terminal {term:?}", s.phase);
                }
                None => {
                    let ok = matches!(
                        term.as_slice(),
                        ["abandoned"] | ["overflowed"] | ["closed"] | ["answered", "completed"]
                    );
                    prop_assert!(ok, "call {c} gone with terminal events {term:?}");
                }
            }
        }
        prop_assert_eq!(
            live.len(),
            calls
                .iter()
                .filter(|c| d.call(CallId(**c), t).is_some())
                .count()
        );
    }
    Ok(())
}

proptest! {
    // 256 cases by default; PROPTEST_CASES=N runs more.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_sequences_keep_invariants(ops in prop::collection::vec(op(), 1..120)) {
        run(ops)?;
    }
}
