//! The discrete-event loop driving the real dispatcher.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use chrono::{DateTime, Utc};
use permanence_acd::{
    AbandonPhase, Action, AgentId, AgentState, CallArrival, CallId, Dispatcher, Event, Input,
    Output,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::erlang::{ErlangA, ErlangAResult};
use crate::scenario::{Dist, RateFn, Scenario, ScenarioError};

type Ms = i64;

fn ms(t: DateTime<Utc>) -> Ms {
    t.timestamp_millis()
}

fn time(ms: Ms) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn secs_to_ms(s: f64) -> Ms {
    (s * 1000.0).round() as Ms
}

/// Counters for one practice (or all of them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Calls that entered the queue (practice open), after the warm-up.
    pub offered: u64,
    /// Of which answered by an agent.
    pub answered: u64,
    /// Of which abandoned by the caller (queue or ringing).
    pub abandoned: u64,
    /// Of which abandoned while an agent's phone was ringing.
    pub abandoned_ringing: u64,
    /// Of which sent to a non-pool overflow target.
    pub overflowed: u64,
    /// Calls that arrived while the practice was closed (not offered).
    pub closed: u64,
    /// `answered / offered`.
    pub pickup_rate: f64,
    /// Mean wait of answered calls, seconds.
    pub asa_seconds: f64,
    /// Calls answered within the threshold / offered.
    pub service_level: f64,
    /// Mean wait of abandoned calls, seconds.
    pub mean_abandon_wait_seconds: f64,
    #[serde(skip)]
    answered_wait_ms: i128,
    #[serde(skip)]
    abandoned_wait_ms: i128,
    #[serde(skip)]
    within_sl: u64,
}

impl Counts {
    fn finish(&mut self) {
        let f = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        self.pickup_rate = f(self.answered, self.offered);
        self.service_level = f(self.within_sl, self.offered);
        self.asa_seconds = if self.answered == 0 {
            0.0
        } else {
            self.answered_wait_ms as f64 / 1000.0 / self.answered as f64
        };
        self.mean_abandon_wait_seconds = if self.abandoned == 0 {
            0.0
        } else {
            self.abandoned_wait_ms as f64 / 1000.0 / self.abandoned as f64
        };
    }

    fn add(&mut self, o: &Counts) {
        self.offered += o.offered;
        self.answered += o.answered;
        self.abandoned += o.abandoned;
        self.abandoned_ringing += o.abandoned_ringing;
        self.overflowed += o.overflowed;
        self.closed += o.closed;
        self.answered_wait_ms += o.answered_wait_ms;
        self.abandoned_wait_ms += o.abandoned_wait_ms;
        self.within_sl += o.within_sl;
    }
}

/// The Erlang-A prediction for a single-pool scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErlangAReport {
    /// Agents `N` (the common eligible set).
    pub agents: u32,
    /// Arrival rate λ, calls per hour (sum of the traffic).
    pub calls_per_hour: f64,
    /// Mean handle time 1/μ, seconds.
    pub mean_handle_secs: f64,
    /// Mean patience 1/θ, seconds.
    pub mean_patience_secs: f64,
    /// The model's results.
    #[serde(flatten)]
    pub result: ErlangAResult,
    /// Whether the scenario satisfies the model's assumptions (exponential
    /// handle time and patience, no wrap-up, no maximum wait, agents logged
    /// in, immediate answers). Scenarios with time-varying rates, opening
    /// hours or shifts get no prediction at all.
    pub assumptions_met: bool,
    /// The assumptions the scenario breaks, if any.
    pub deviations: Vec<String>,
}

/// The result of a simulation run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Scenario name.
    pub scenario: String,
    /// Seed used.
    pub seed: u64,
    /// Simulated days of arrivals.
    pub days: f64,
    /// Warm-up excluded from the counts, hours.
    pub warmup_hours: f64,
    /// Service-level threshold, seconds.
    pub service_level_secs: f64,
    /// All practices together.
    #[serde(flatten)]
    pub totals: Counts,
    /// Ring-no-answers.
    pub rona: u64,
    /// Busy time (offered, on call, wrap-up) / staffed time (those plus
    /// available while in shift), over all agents, after the warm-up.
    pub agent_occupancy: f64,
    /// Per practice.
    pub practices: BTreeMap<String, Counts>,
    /// Erlang-A prediction, for stationary single-pool scenarios (every
    /// practice with traffic is served by the same set of agents, constant
    /// rates, no opening hours or shifts).
    pub erlang_a: Option<ErlangAReport>,
    /// Dispatcher decisions processed (inputs + timer firings).
    pub dispatcher_steps: u64,
}

impl Summary {
    /// The summary as JSON (for the `permanence simulate` command).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum SimEv {
    Arrival { stream: usize },
    Patience { call: u64 },
    Answer { call: u64, offer: u64 },
    End { call: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Waiting,
    Ringing,
    Connected,
}

#[derive(Debug, Clone)]
struct SimCall {
    stream: usize,
    counted: bool,
    status: Status,
    offer: u64,
    agent: Option<AgentId>,
    handle_ms: Ms,
}

#[derive(Debug, Clone, Copy)]
struct AgentTrack {
    state: AgentState,
    in_shift: bool,
    since: Ms,
}

struct Stream {
    practice: String,
    rate_per_ms: f64,
    rate: RateFn,
    handle: Dist,
    patience: Dist,
}

/// Runs a scenario to completion (deterministic for a given seed).
pub fn run_scenario(s: &Scenario) -> Result<Summary, ScenarioError> {
    s.validate()?;
    let mut d = Dispatcher::new(s.acd.clone())?;
    // Independent random streams: one per traffic stream (arrivals, patience,
    // handle time) and one for agent behaviour, so two scenarios with the
    // same traffic and seed see exactly the same calls whatever the routing.
    let derive = |k: u64| {
        StdRng::seed_from_u64(
            s.seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(k.wrapping_mul(0xBF58_476D_1CE4_E5B9)),
        )
    };
    let mut rng = derive(0);
    let mut stream_rngs: Vec<StdRng> = (0..s.traffic.len() as u64).map(|i| derive(i + 1)).collect();
    let start = ms(s.start);
    let end = start + secs_to_ms(s.days * 86_400.0);
    let warm = start + secs_to_ms(s.warmup_hours * 3600.0);
    let sl_ms = secs_to_ms(s.service_level_secs);

    let streams: Vec<Stream> = s
        .traffic
        .iter()
        .map(|t| Stream {
            practice: t.practice.to_string(),
            rate_per_ms: t.calls_per_hour / 3_600_000.0,
            rate: t
                .profile
                .as_ref()
                .and_then(|p| s.profiles.get(p))
                .map_or_else(RateFn::constant, RateFn::from_profile),
            handle: t
                .handle_time
                .clone()
                .unwrap_or_else(|| s.handle_time.clone()),
            patience: t.patience.clone().unwrap_or_else(|| s.patience.clone()),
        })
        .collect();

    let mut events: BinaryHeap<Reverse<(Ms, u64, SimEv)>> = BinaryHeap::new();
    let mut order = 0u64;
    let mut push = |events: &mut BinaryHeap<Reverse<(Ms, u64, SimEv)>>, at: Ms, ev: SimEv| {
        order += 1;
        events.push(Reverse((at, order, ev)));
    };

    // Next arrival of a stream after `from` (thinning of a piecewise
    // constant rate); None past the end.
    let next_arrival = |rng: &mut StdRng, st: &Stream, from: Ms| -> Option<Ms> {
        let max = st.rate_per_ms * st.rate.max;
        if max <= 0.0 {
            return None;
        }
        let mut t = from as f64;
        loop {
            let u: f64 = rng.random::<f64>();
            t += -(1.0 - u).ln() / max;
            if t >= end as f64 {
                return None;
            }
            let accept = st.rate.at(time(t as Ms)) / st.rate.max;
            if rng.random::<f64>() < accept {
                return Some(t.round() as Ms);
            }
        }
    };

    for (i, st) in streams.iter().enumerate() {
        if let Some(t) = next_arrival(&mut stream_rngs[i], st, start) {
            push(&mut events, t, SimEv::Arrival { stream: i });
        }
    }

    let mut counts: Vec<Counts> = vec![Counts::default(); streams.len()];
    let practice_stream: HashMap<String, usize> = streams
        .iter()
        .enumerate()
        .map(|(i, st)| (st.practice.clone(), i))
        .collect();
    let mut calls: HashMap<u64, SimCall> = HashMap::new();
    let mut next_id = 1u64;
    let mut rona = 0u64;
    let mut steps = 0u64;
    let mut now = start;
    let mut tracks: HashMap<String, AgentTrack> = HashMap::new();
    let mut busy_ms: i128 = 0;
    let mut staffed_ms: i128 = 0;

    d.handle_timeout(time(now));
    steps += 1;
    for a in &s.acd.agents {
        tracks.insert(
            a.id.to_string(),
            AgentTrack {
                state: AgentState::LoggedOut,
                in_shift: d.agent_in_shift(a.id.as_str()).unwrap_or(true),
                since: now,
            },
        );
    }

    // Accumulates an agent's interval [since, now) clipped to [warm, end].
    let account = |tr: &mut AgentTrack, now: Ms, busy: &mut i128, staffed: &mut i128| {
        let a = tr.since.max(warm);
        let b = now.min(end);
        if b > a {
            let len = i128::from(b - a);
            let is_busy = matches!(
                tr.state,
                AgentState::Offered | AgentState::OnCall | AgentState::WrapUp
            );
            if is_busy {
                *busy += len;
                *staffed += len;
            } else if tr.state == AgentState::Available && tr.in_shift {
                *staffed += len;
            }
        }
        tr.since = now;
    };

    loop {
        // Drain the dispatcher's outputs.
        while let Some(o) = d.poll_output() {
            match o {
                Output::Action(Action::Offer {
                    call,
                    ring_timeout,
                    agent,
                }) => {
                    if let Some(c) = calls.get_mut(&call.0) {
                        c.status = Status::Ringing;
                        c.agent = Some(agent);
                        c.offer += 1;
                        let offer = c.offer;
                        if rng.random::<f64>() >= s.answer.no_answer_probability {
                            let delay = secs_to_ms(s.answer.delay.sample(&mut rng));
                            if (delay as u128) < ring_timeout.as_millis() {
                                push(
                                    &mut events,
                                    now + delay,
                                    SimEv::Answer {
                                        call: call.0,
                                        offer,
                                    },
                                );
                            }
                        }
                    }
                }
                Output::Action(Action::CancelOffer { call, .. }) => {
                    if let Some(c) = calls.get_mut(&call.0) {
                        c.status = Status::Waiting;
                    }
                }
                Output::Action(_) => {}
                Output::Event(e) => match e {
                    Event::Answered { call, wait, .. } => {
                        if let Some(c) = calls.get_mut(&call.0) {
                            c.status = Status::Connected;
                            push(&mut events, now + c.handle_ms, SimEv::End { call: call.0 });
                            if c.counted {
                                let k = &mut counts[c.stream];
                                k.answered += 1;
                                k.answered_wait_ms += wait.as_millis() as i128;
                                if wait.as_millis() as i64 <= sl_ms {
                                    k.within_sl += 1;
                                }
                            }
                        }
                    }
                    Event::Abandoned {
                        call, phase, wait, ..
                    } => {
                        if let Some(c) = calls.remove(&call.0) {
                            if c.counted {
                                let k = &mut counts[c.stream];
                                k.abandoned += 1;
                                k.abandoned_wait_ms += wait.as_millis() as i128;
                                if phase == AbandonPhase::Ringing {
                                    k.abandoned_ringing += 1;
                                }
                            }
                        }
                    }
                    Event::Overflowed { call, .. } => {
                        if let Some(c) = calls.remove(&call.0) {
                            if c.counted {
                                counts[c.stream].overflowed += 1;
                            }
                        }
                    }
                    Event::Closed { call, .. } => {
                        if let Some(c) = calls.remove(&call.0) {
                            if c.counted {
                                counts[c.stream].closed += 1;
                                counts[c.stream].offered -= 1;
                            }
                        }
                    }
                    Event::Rona { .. } if now >= warm => rona += 1,
                    Event::AgentStateChanged { agent, to, .. } => {
                        if let Some(tr) = tracks.get_mut(agent.as_str()) {
                            account(tr, now, &mut busy_ms, &mut staffed_ms);
                            tr.state = to;
                        }
                    }
                    Event::ShiftChanged { agent, in_shift } => {
                        if let Some(tr) = tracks.get_mut(agent.as_str()) {
                            account(tr, now, &mut busy_ms, &mut staffed_ms);
                            tr.in_shift = in_shift;
                        }
                    }
                    _ => {}
                },
            }
        }

        // Next step: a dispatcher timer or a simulation event, whichever is
        // first (timers first on ties, as a real driver would).
        let next_sim = events.peek().map(|Reverse((t, _, _))| *t);
        let next_timer = d.poll_timeout().map(ms);
        if next_sim.is_none() && calls.is_empty() {
            break;
        }
        match (next_timer, next_sim) {
            (Some(t), Some(e)) if t <= e => {
                now = now.max(t);
                d.handle_timeout(time(now));
                steps += 1;
            }
            (Some(t), None) => {
                now = now.max(t);
                d.handle_timeout(time(now));
                steps += 1;
            }
            (_, Some(_)) => {
                let Some(Reverse((t, _, ev))) = events.pop() else {
                    break;
                };
                now = now.max(t);
                match ev {
                    SimEv::Arrival { stream } => {
                        let st = &streams[stream];
                        let srng = &mut stream_rngs[stream];
                        let patience = secs_to_ms(st.patience.sample(srng));
                        let handle_ms = secs_to_ms(st.handle.sample(srng)).max(1);
                        if let Some(t) = next_arrival(srng, st, now) {
                            push(&mut events, t, SimEv::Arrival { stream });
                        }
                        let id = next_id;
                        next_id += 1;
                        let counted = now >= warm;
                        calls.insert(
                            id,
                            SimCall {
                                stream,
                                counted,
                                status: Status::Waiting,
                                offer: 0,
                                agent: None,
                                handle_ms,
                            },
                        );
                        if counted {
                            counts[stream].offered += 1;
                        }
                        push(&mut events, now + patience, SimEv::Patience { call: id });
                        let input =
                            Input::CallArrived(CallArrival::new(CallId(id), st.practice.as_str()));
                        d.handle_input(input, time(now))?;
                        steps += 1;
                    }
                    SimEv::Patience { call } => {
                        if let Some(c) = calls.get(&call) {
                            if c.status != Status::Connected {
                                d.handle_input(
                                    Input::CallAbandoned { call: CallId(call) },
                                    time(now),
                                )?;
                                steps += 1;
                            }
                        }
                    }
                    SimEv::Answer { call, offer } => {
                        let agent = calls
                            .get(&call)
                            .filter(|c| c.status == Status::Ringing && c.offer == offer)
                            .and_then(|c| c.agent.clone());
                        if let Some(agent) = agent {
                            d.handle_input(
                                Input::OfferAnswered {
                                    call: CallId(call),
                                    agent,
                                },
                                time(now),
                            )?;
                            steps += 1;
                        }
                    }
                    SimEv::End { call } => {
                        if calls.remove(&call).is_some() {
                            d.handle_input(Input::CallEnded { call: CallId(call) }, time(now))?;
                            steps += 1;
                        }
                    }
                }
            }
            (None, None) => break,
        }
    }
    for tr in tracks.values_mut() {
        account(tr, now.max(end), &mut busy_ms, &mut staffed_ms);
    }

    let mut totals = Counts::default();
    let mut practices = BTreeMap::new();
    for (i, st) in streams.iter().enumerate() {
        let mut c = counts[i].clone();
        c.finish();
        totals.add(&c);
        practices.insert(st.practice.clone(), c);
    }
    totals.finish();
    let _ = practice_stream;

    Ok(Summary {
        scenario: s.name.clone(),
        seed: s.seed,
        days: s.days,
        warmup_hours: s.warmup_hours,
        service_level_secs: s.service_level_secs,
        totals,
        rona,
        agent_occupancy: if staffed_ms > 0 {
            busy_ms as f64 / staffed_ms as f64
        } else {
            0.0
        },
        practices,
        erlang_a: erlang_report(s, &d),
        dispatcher_steps: steps,
    })
}

/// The Erlang-A prediction when every practice with traffic is served by
/// the same agents; `None` otherwise.
pub fn erlang_report(s: &Scenario, d: &Dispatcher) -> Option<ErlangAReport> {
    let active: Vec<_> = s
        .traffic
        .iter()
        .filter(|t| t.calls_per_hour > 0.0)
        .collect();
    let first = active.first()?;
    let pool = d.eligible_agent_ids(first.practice.as_str())?;
    for t in &active[1..] {
        if d.eligible_agent_ids(t.practice.as_str())? != pool {
            return None;
        }
    }
    if pool.is_empty() {
        return None;
    }
    // The model needs a stationary system: constant arrival rates, always
    // open, always staffed. Other departures from its assumptions are listed.
    for t in &active {
        if t.profile.is_some() {
            return None;
        }
        let p = s.acd.practices.iter().find(|p| p.id == t.practice)?;
        if p.hours.as_ref().is_some_and(|h| !h.always_open) {
            return None;
        }
    }
    for a in &s.acd.agents {
        if pool.contains(&a.id) && a.shift.as_ref().is_some_and(|h| !h.always_open) {
            return None;
        }
    }
    let mut deviations = Vec::new();
    let lambda: f64 = active.iter().map(|t| t.calls_per_hour).sum();
    // Rate-weighted means (identical when the traffic shares its
    // distributions).
    let mean = |f: &dyn Fn(&crate::scenario::Traffic) -> Dist| -> f64 {
        active
            .iter()
            .map(|t| t.calls_per_hour * f(t).mean())
            .sum::<f64>()
            / lambda
    };
    let handle = mean(&|t| {
        t.handle_time
            .clone()
            .unwrap_or_else(|| s.handle_time.clone())
    });
    let patience = mean(&|t| t.patience.clone().unwrap_or_else(|| s.patience.clone()));
    for t in &active {
        if !t
            .handle_time
            .as_ref()
            .unwrap_or(&s.handle_time)
            .is_exponential()
        {
            deviations.push(format!("{}: handle time not exponential", t.practice));
        }
        if !t.patience.as_ref().unwrap_or(&s.patience).is_exponential() {
            deviations.push(format!("{}: patience not exponential", t.practice));
        }
        if let Some(p) = s.acd.practices.iter().find(|p| p.id == t.practice) {
            if !p.wrap_up.unwrap_or(s.acd.settings.wrap_up).is_zero() {
                deviations.push(format!("{}: wrap-up time", t.practice));
            }
            if p.max_wait.is_some() {
                deviations.push(format!("{}: maximum wait (overflow)", t.practice));
            }
        }
    }
    for a in &s.acd.agents {
        if pool.contains(&a.id) && !a.logged_in {
            deviations.push(format!("agent {} starts logged out", a.id));
        }
    }
    if s.answer.delay.mean() > 0.0 {
        deviations.push("answer delay".into());
    }
    if s.answer.no_answer_probability > 0.0 {
        deviations.push("unanswered offers".into());
    }
    let model = ErlangA::from_means(pool.len() as u32, lambda, handle, patience);
    let result = model.solve(s.service_level_secs).ok()?;
    Some(ErlangAReport {
        agents: pool.len() as u32,
        calls_per_hour: lambda,
        mean_handle_secs: handle,
        mean_patience_secs: patience,
        result,
        assumptions_met: deviations.is_empty(),
        deviations,
    })
}
