//! Test harness: drives a dispatcher on virtual time.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use permanence_acd::*;
use std::time::Duration;

pub fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test literal")
        .with_timezone(&Utc)
}

pub struct H {
    pub d: Dispatcher,
    pub t: DateTime<Utc>,
    pub out: Vec<Output>,
}

impl H {
    /// Starts at Monday 2026-01-12 10:00 Paris (09:00 UTC).
    pub fn new(cfg: AcdConfig) -> Self {
        Self::at(cfg, utc("2026-01-12T09:00:00Z"))
    }

    pub fn at(cfg: AcdConfig, t: DateTime<Utc>) -> Self {
        let mut d = Dispatcher::new(cfg).expect("valid config");
        d.handle_timeout(t);
        let mut h = H {
            d,
            t,
            out: Vec::new(),
        };
        h.collect();
        h.check();
        h
    }

    pub fn collect(&mut self) {
        while let Some(o) = self.d.poll_output() {
            self.out.push(o);
        }
    }

    pub fn check(&self) {
        if let Err(e) = self.d.check_invariants() {
            panic!("invariant violated at {}: {e}", self.t);
        }
    }

    pub fn input(&mut self, i: Input) -> Result<(), AcdError> {
        let r = self.d.handle_input(i, self.t);
        self.collect();
        self.check();
        r
    }

    /// Advances virtual time by `ms`, firing every timer on the way at its
    /// exact instant.
    pub fn advance_ms(&mut self, ms: i64) {
        let target = self.t + chrono::Duration::milliseconds(ms);
        while let Some(next) = self.d.poll_timeout() {
            if next > target {
                break;
            }
            self.t = next.max(self.t);
            self.d.handle_timeout(self.t);
            self.collect();
            self.check();
        }
        self.t = target;
        self.d.handle_timeout(target);
        self.collect();
        self.check();
    }

    pub fn advance(&mut self, secs: i64) {
        self.advance_ms(secs * 1000);
    }

    pub fn advance_to(&mut self, t: DateTime<Utc>) {
        let ms = (t - self.t).num_milliseconds();
        self.advance_ms(ms);
    }

    pub fn take(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }

    pub fn arrive(&mut self, call: u64, practice: &str) {
        self.input(Input::CallArrived(CallArrival::new(CallId(call), practice)))
            .expect("arrival accepted");
    }

    pub fn arrive_prio(&mut self, call: u64, practice: &str, priority: i32) {
        let mut a = CallArrival::new(CallId(call), practice);
        a.priority = Some(priority);
        self.input(Input::CallArrived(a)).expect("arrival accepted");
    }

    pub fn answer(&mut self, call: u64, agent: &str) {
        self.input(Input::OfferAnswered {
            call: CallId(call),
            agent: agent.into(),
        })
        .expect("answer accepted");
    }

    pub fn end(&mut self, call: u64) {
        self.input(Input::CallEnded { call: CallId(call) })
            .expect("end accepted");
    }

    /// Offers made since the last take, as (call, agent).
    pub fn offers(&mut self) -> Vec<(u64, String)> {
        self.out
            .iter()
            .filter_map(|o| match o {
                Output::Action(Action::Offer { call, agent, .. }) => {
                    Some((call.0, agent.to_string()))
                }
                _ => None,
            })
            .collect()
    }

    pub fn events(&self) -> Vec<Event> {
        self.out
            .iter()
            .filter_map(|o| match o {
                Output::Event(e) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn actions(&self) -> Vec<Action> {
        self.out
            .iter()
            .filter_map(|o| match o {
                Output::Action(a) => Some(a.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn state(&self, agent: &str) -> AgentState {
        self.d.agent(agent).expect("known agent").state
    }

    /// Offers a call to whoever gets it, asserting it goes to `agent`.
    pub fn expect_offer(&mut self, call: u64, agent: &str) {
        let offers = self.offers();
        assert!(
            offers.contains(&(call, agent.to_string())),
            "expected offer of {call} to {agent}, got {offers:?}"
        );
    }
}

pub fn agent(id: &str) -> AgentProfile {
    let mut a = AgentProfile::new(id);
    a.logged_in = true;
    a.languages = vec!["fr".into()];
    a
}

pub fn practice(id: &str, dedicated: &[&str]) -> PracticePolicy {
    let mut p = PracticePolicy::new(id);
    p.dedicated_agents = dedicated.iter().map(|a| AgentId::from(*a)).collect();
    p.wrap_up = Some(Duration::from_secs(0));
    p
}

pub fn config(agents: Vec<AgentProfile>, practices: Vec<PracticePolicy>) -> AcdConfig {
    AcdConfig {
        agents,
        practices,
        ..AcdConfig::default()
    }
}
