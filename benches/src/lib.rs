//! Benchmark helpers: synthetic dispatcher topologies and drivers.
//!
//! The topology mimics a telesecretariat at scale: every practice has a
//! specialty and two dedicated agents; agents belong to the pool of their
//! specialty with a level 1..=5; everyone speaks French, some English or
//! German. Practices route: dedicated agents at 0 s, the specialty pool
//! (level >= 3) at 20 s, any French speaker at 60 s.

use chrono::{DateTime, Utc};
use permanence_acd::{
    AcdConfig, Action, AgentProfile, CallArrival, CallId, Dispatcher, Input, Output, PoolDef,
    PracticePolicy, RoutingStep, Selector,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

/// Specialty skills used by the synthetic topology.
pub const SPECIALTIES: [&str; 10] = [
    "generaliste",
    "cardiologie",
    "kine",
    "pediatrie",
    "dermatologie",
    "ophtalmologie",
    "gynecologie",
    "orl",
    "psychiatrie",
    "radiologie",
];

/// Builds the synthetic configuration.
pub fn topology(agents: usize, practices: usize) -> AcdConfig {
    let mut cfg = AcdConfig::default();
    cfg.settings.wrap_up = Duration::from_secs(0);
    // Benchmarks answer offers in batches: no ring timeout in the way.
    cfg.settings.ring_timeout = Duration::from_secs(3600);
    for s in SPECIALTIES {
        cfg.pools.push(PoolDef {
            id: format!("pool-{s}").into(),
            members: vec![],
        });
    }
    for i in 0..agents {
        let mut a = AgentProfile::new(format!("agent-{i:05}"));
        a.logged_in = true;
        let spec = SPECIALTIES[i % SPECIALTIES.len()];
        a.skills.insert(spec.into(), (i * 7 % 5) as u8 + 1);
        a.skills.insert("generaliste".into(), (i * 3 % 5) as u8 + 1);
        a.languages.push("fr".into());
        if i % 5 == 0 {
            a.languages.push("en".into());
        }
        if i % 20 == 0 {
            a.languages.push("de".into());
        }
        a.pools.push(format!("pool-{spec}").into());
        cfg.agents.push(a);
    }
    for p in 0..practices {
        let spec = SPECIALTIES[p % SPECIALTIES.len()];
        let mut pol = PracticePolicy::new(format!("practice-{p:05}"));
        // Dedicated agents of the practice's specialty when possible.
        let base = (p * 2) % agents.max(1);
        pol.dedicated_agents = vec![
            format!("agent-{base:05}").into(),
            format!("agent-{:05}", (base + 1) % agents.max(1)).into(),
        ];
        pol.dedicated_agents.dedup();
        pol.specialty = Some(spec.into());
        pol.steps = vec![
            RoutingStep::dedicated(Duration::ZERO),
            RoutingStep {
                after: Duration::from_secs(20),
                select: Selector {
                    pool: Some(format!("pool-{spec}").into()),
                    skill: Some(spec.into()),
                    min_level: 3,
                    ..Selector::default()
                },
            },
            RoutingStep {
                after: Duration::from_secs(60),
                select: Selector {
                    language: Some("fr".into()),
                    ..Selector::default()
                },
            },
        ];
        pol.wrap_up = Some(Duration::from_secs(0));
        cfg.practices.push(pol);
    }
    cfg
}

/// A dispatcher driven by the benchmarks.
pub struct Bench {
    /// The dispatcher.
    pub d: Dispatcher,
    /// Virtual now.
    pub now: DateTime<Utc>,
    /// Practice ids.
    pub practices: Vec<String>,
    /// RNG for practice choice.
    pub rng: StdRng,
    /// Next call id.
    pub next_call: u64,
    /// Offers made and not yet answered: (call, agent).
    pub offers: Vec<(CallId, permanence_acd::AgentId)>,
}

impl Bench {
    /// A dispatcher over [`topology`], all agents logged in and available.
    pub fn new(agents: usize, practices: usize) -> Self {
        let cfg = topology(agents, practices);
        let practices = cfg.practices.iter().map(|p| p.id.to_string()).collect();
        let mut d = Dispatcher::new(cfg).unwrap_or_else(|e| panic!("bench config: {e}"));
        let now = DateTime::from_timestamp(1_780_000_000, 0).unwrap_or_default();
        d.handle_timeout(now);
        let mut b = Bench {
            d,
            now,
            practices,
            rng: StdRng::seed_from_u64(42),
            next_call: 1,
            offers: Vec::new(),
        };
        b.drain();
        b
    }

    /// Drains outputs, remembering offers.
    pub fn drain(&mut self) {
        while let Some(o) = self.d.poll_output() {
            if let Output::Action(Action::Offer { call, agent, .. }) = o {
                self.offers.push((call, agent));
            }
        }
    }

    /// A call arrives for a random practice.
    pub fn arrive(&mut self) -> CallId {
        let p = self.rng.random_range(0..self.practices.len());
        let id = CallId(self.next_call);
        self.next_call += 1;
        let _ = self.d.handle_input(
            Input::CallArrived(CallArrival::new(id, self.practices[p].as_str())),
            self.now,
        );
        self.drain();
        id
    }

    /// Answers every pending offer; returns the answered calls.
    pub fn answer_all(&mut self) -> Vec<CallId> {
        let offers = std::mem::take(&mut self.offers);
        let mut out = Vec::with_capacity(offers.len());
        for (call, agent) in offers {
            if self
                .d
                .handle_input(Input::OfferAnswered { call, agent }, self.now)
                .is_ok()
            {
                out.push(call);
            }
        }
        self.drain();
        out
    }

    /// Ends a connected call (the agent becomes available at once: no
    /// wrap-up in the topology) and returns whether it was known.
    pub fn end(&mut self, call: CallId) -> bool {
        let ok = self
            .d
            .handle_input(Input::CallEnded { call }, self.now)
            .is_ok();
        self.drain();
        ok
    }

    /// Advances virtual time, firing timers.
    pub fn advance(&mut self, ms: i64) {
        let target = self.now + chrono::Duration::milliseconds(ms);
        while let Some(t) = self.d.poll_timeout() {
            if t > target {
                break;
            }
            self.now = t.max(self.now);
            self.d.handle_timeout(self.now);
            self.drain();
        }
        self.now = target;
        self.d.handle_timeout(target);
        self.drain();
    }

    /// Saturates the agents: every agent on a call, then `waiting` extra
    /// calls queued and relaxed to their last step (60 s). Returns the
    /// connected calls (one per agent).
    pub fn saturate(&mut self, waiting: usize) -> Vec<CallId> {
        let agents = self.d.agents().len();
        let mut connected = Vec::with_capacity(agents);
        // Keep arriving until every agent has answered a call.
        let mut guard = 0;
        while connected.len() < agents && guard < agents * 50 {
            self.arrive();
            connected.extend(self.answer_all());
            guard += 1;
            if guard % 64 == 0 {
                self.advance(61_000);
                connected.extend(self.answer_all());
            }
        }
        self.advance(61_000);
        connected.extend(self.answer_all());
        for _ in 0..waiting {
            self.arrive();
        }
        self.advance(61_000);
        connected.extend(self.answer_all());
        connected
    }
}
