//! Erlang A (M/M/N+M): Poisson arrivals, exponential service, exponential
//! patience, N agents, first come first served.
//!
//! Solved exactly through its birth–death process: states `n = 0, 1, ...`
//! (calls in the system), birth rate `λ`, death rate
//! `min(n, N)·μ + max(n − N, 0)·θ`. The stationary distribution is computed
//! in log space and truncated once the probabilities become negligible
//! (below `1e-18` of the mode, past `N`), which is exact to double precision
//! since `θ > 0` makes the tail decay faster than geometrically.
//!
//! Per-caller quantities (PASTA: an arrival sees the stationary
//! distribution) follow the tagged caller: arriving with `k = n − N ≥ 0`
//! callers ahead in queue, while `j` callers are ahead it moves forward at
//! rate `N·μ + j·θ` (a service completion or an abandonment ahead) and
//! abandons at rate `θ`. Hence
//! `P(served | k) = Π_{j=0..k} (Nμ + jθ) / (Nμ + (j+1)θ)` and the wait of a
//! served caller is a sum of exponentials of rates `Nμ + (j+1)θ`. The
//! probability of being answered within `T` is computed by uniformization of
//! that absorbing chain.

use serde::{Deserialize, Serialize};

/// Parameters of an M/M/N+M queue (rates per second).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ErlangA {
    /// Number of agents `N`.
    pub agents: u32,
    /// Arrival rate `λ` (calls per second).
    pub arrival_rate: f64,
    /// Service rate `μ` (1 / mean handle time in seconds).
    pub service_rate: f64,
    /// Abandonment rate `θ` (1 / mean patience in seconds).
    pub patience_rate: f64,
}

/// Steady-state results of [`ErlangA::solve`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ErlangAResult {
    /// Probability that an arriving caller waits (all agents busy).
    pub p_wait: f64,
    /// Probability that a caller abandons.
    pub p_abandon: f64,
    /// Fraction of callers answered (`1 − p_abandon`).
    pub pickup_rate: f64,
    /// Mean wait of answered callers, seconds.
    pub asa_seconds: f64,
    /// Mean wait over all callers (answered or not), seconds.
    pub mean_wait_seconds: f64,
    /// Fraction of callers answered within the service-level threshold.
    pub service_level: f64,
    /// The threshold used for `service_level`, seconds.
    pub service_level_secs: f64,
    /// Mean number of callers waiting.
    pub mean_queue_length: f64,
    /// Agent occupancy (busy agents / N).
    pub occupancy: f64,
}

/// Errors of [`ErlangA::solve`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ErlangError {
    /// A parameter is not a positive finite number (or N is 0).
    #[error("invalid Erlang A parameter: {0}")]
    InvalidParameter(&'static str),
}

impl ErlangA {
    /// Builds the model from per-hour arrivals and mean times in seconds.
    pub fn from_means(
        agents: u32,
        calls_per_hour: f64,
        mean_handle: f64,
        mean_patience: f64,
    ) -> Self {
        Self {
            agents,
            arrival_rate: calls_per_hour / 3600.0,
            service_rate: 1.0 / mean_handle,
            patience_rate: 1.0 / mean_patience,
        }
    }

    /// The stationary distribution `π_n`, truncated.
    pub fn stationary(&self) -> Result<Vec<f64>, ErlangError> {
        let ok = |x: f64| x.is_finite() && x > 0.0;
        if self.agents == 0 {
            return Err(ErlangError::InvalidParameter("agents must be at least 1"));
        }
        if !ok(self.arrival_rate) {
            return Err(ErlangError::InvalidParameter("arrival rate"));
        }
        if !ok(self.service_rate) {
            return Err(ErlangError::InvalidParameter("service rate"));
        }
        if !ok(self.patience_rate) {
            return Err(ErlangError::InvalidParameter("patience rate"));
        }
        let n_agents = f64::from(self.agents);
        let mut logs = vec![0.0f64];
        let mut max = 0.0f64;
        let mut n = 0u64;
        loop {
            n += 1;
            let nf = n as f64;
            let death = nf.min(n_agents) * self.service_rate
                + (nf - n_agents).max(0.0) * self.patience_rate;
            let l = logs[logs.len() - 1] + self.arrival_rate.ln() - death.ln();
            logs.push(l);
            max = max.max(l);
            if nf > n_agents && l < max - 41.5 && l < logs[logs.len() - 2] {
                break;
            }
            if n > 10_000_000 {
                break;
            }
        }
        let mut p: Vec<f64> = logs.iter().map(|l| (l - max).exp()).collect();
        let sum: f64 = p.iter().sum();
        for x in &mut p {
            *x /= sum;
        }
        Ok(p)
    }

    /// Solves the model; `service_level_secs` is the service-level threshold
    /// (e.g. 20 s).
    pub fn solve(&self, service_level_secs: f64) -> Result<ErlangAResult, ErlangError> {
        let pi = self.stationary()?;
        let n_agents = self.agents as usize;
        let nmu = f64::from(self.agents) * self.service_rate;
        let theta = self.patience_rate;
        let lambda = self.arrival_rate;
        let mut p_wait = 0.0;
        let mut lq = 0.0;
        let mut busy = 0.0;
        for (n, &p) in pi.iter().enumerate() {
            busy += p * n.min(n_agents) as f64;
            if n >= n_agents {
                p_wait += p;
                lq += p * (n - n_agents) as f64;
            }
        }
        let p_abandon = theta * lq / lambda;
        // Tagged caller: P(served | k ahead) and E[wait; served | k].
        let kmax = pi.len().saturating_sub(n_agents);
        let mut p_served_k = Vec::with_capacity(kmax);
        let mut wait_served_k = Vec::with_capacity(kmax);
        let mut prod = 1.0;
        let mut mean = 0.0;
        for j in 0..kmax {
            let jf = j as f64;
            let r = nmu + (jf + 1.0) * theta;
            prod *= (nmu + jf * theta) / r;
            mean += 1.0 / r;
            p_served_k.push(prod);
            wait_served_k.push(mean);
        }
        let mut served = 0.0;
        let mut wait_served = 0.0;
        for (n, &p) in pi.iter().enumerate() {
            if n < n_agents {
                served += p;
            } else {
                let k = n - n_agents;
                served += p * p_served_k[k];
                wait_served += p * p_served_k[k] * wait_served_k[k];
            }
        }
        let within = served_within(nmu, theta, kmax, service_level_secs);
        let mut sl = 0.0;
        for (n, &p) in pi.iter().enumerate() {
            if n < n_agents {
                sl += p;
            } else {
                sl += p * within[n - n_agents];
            }
        }
        Ok(ErlangAResult {
            p_wait,
            p_abandon,
            pickup_rate: 1.0 - p_abandon,
            asa_seconds: if served > 0.0 {
                wait_served / served
            } else {
                0.0
            },
            mean_wait_seconds: lq / lambda,
            service_level: sl,
            service_level_secs,
            mean_queue_length: lq,
            occupancy: busy / f64::from(self.agents),
        })
    }
}

/// `P(served within t | k callers ahead)` for `k = 0..kmax`, by
/// uniformization of the tagged caller's absorbing chain.
fn served_within(nmu: f64, theta: f64, kmax: usize, t: f64) -> Vec<f64> {
    if kmax == 0 {
        return Vec::new();
    }
    if t <= 0.0 {
        return vec![0.0; kmax];
    }
    let big = nmu + kmax as f64 * theta + theta;
    let lt = big * t;
    let steps = (lt + 12.0 * lt.sqrt() + 30.0).ceil() as usize;
    // h[j]: probability of having reached service within m steps from j.
    let mut h = vec![0.0f64; kmax];
    let mut next = vec![0.0f64; kmax];
    let mut acc = vec![0.0f64; kmax];
    let mut log_w = -lt; // log Poisson(0; lt)
    for m in 0..=steps {
        let w = log_w.exp();
        for j in 0..kmax {
            acc[j] += w * h[j];
        }
        for j in 0..kmax {
            let jf = j as f64;
            let prog = (nmu + jf * theta) / big;
            let stay = 1.0 - (nmu + (jf + 1.0) * theta) / big;
            let ahead = if j == 0 { 1.0 } else { h[j - 1] };
            next[j] = prog * ahead + stay * h[j];
        }
        std::mem::swap(&mut h, &mut next);
        log_w += lt.ln() - ((m + 1) as f64).ln();
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_example_is_about_96_3_percent() {
        let m = ErlangA::from_means(8, 120.0, 150.0, 60.0);
        let r = m.solve(20.0).expect("valid");
        assert!(
            (r.pickup_rate - 0.963).abs() < 0.0015,
            "pickup {}",
            r.pickup_rate
        );
        assert!(r.service_level < r.pickup_rate);
        assert!(r.asa_seconds > 0.0 && r.asa_seconds < r.mean_wait_seconds * 2.0);
    }

    #[test]
    fn abandonment_by_little_matches_tagged_caller() {
        // 1 − P(served), summed over the tagged caller, equals θ·E[Lq]/λ.
        for &(n, cph, h, p) in &[
            (8u32, 120.0, 150.0, 60.0),
            (3, 60.0, 200.0, 30.0),
            (20, 500.0, 180.0, 120.0),
            (1, 10.0, 300.0, 600.0),
        ] {
            let m = ErlangA::from_means(n, cph, h, p);
            let pi = m.stationary().expect("valid");
            let r = m.solve(20.0).expect("valid");
            let nmu = f64::from(n) * m.service_rate;
            let mut served = 0.0;
            for (k, &q) in pi.iter().enumerate() {
                if k < n as usize {
                    served += q;
                } else {
                    let mut prod = 1.0;
                    for j in 0..=(k - n as usize) {
                        let jf = j as f64;
                        prod *= (nmu + jf * m.patience_rate) / (nmu + (jf + 1.0) * m.patience_rate);
                    }
                    served += q * prod;
                }
            }
            assert!(
                ((1.0 - served) - r.p_abandon).abs() < 1e-9,
                "{n} {cph}: {} vs {}",
                1.0 - served,
                r.p_abandon
            );
            // Service level grows with the threshold, towards the pickup rate.
            let long = m.solve(1e5).expect("valid");
            assert!((long.service_level - long.pickup_rate).abs() < 1e-6);
            let zero = m.solve(0.0).expect("valid");
            assert!((zero.service_level - (1.0 - zero.p_wait)).abs() < 1e-9);
        }
    }

    #[test]
    fn single_agent_limit_matches_closed_form() {
        // N = 1: P(n) has a closed form ratio; check P(wait) = 1 − π0 and
        // occupancy = 1 − π0.
        let m = ErlangA::from_means(1, 6.0, 300.0, 100.0);
        let r = m.solve(20.0).expect("valid");
        let pi = m.stationary().expect("valid");
        assert!((r.p_wait - (1.0 - pi[0])).abs() < 1e-12);
        assert!((r.occupancy - (1.0 - pi[0])).abs() < 1e-12);
        // Throughput balance: λ·(1 − P_ab) = μ·E[busy].
        let lhs = m.arrival_rate * r.pickup_rate;
        let rhs = m.service_rate * r.occupancy;
        assert!((lhs - rhs).abs() < 1e-12);
    }

    #[test]
    fn rejects_bad_parameters() {
        assert!(ErlangA::from_means(0, 1.0, 1.0, 1.0).solve(20.0).is_err());
        assert!(ErlangA::from_means(1, 0.0, 1.0, 1.0).solve(20.0).is_err());
        assert!(ErlangA::from_means(1, 1.0, f64::NAN, 1.0)
            .solve(20.0)
            .is_err());
    }
}
