//! Per-decision latency percentiles (p50/p90/p99/max), complementing the
//! criterion means: each decision is timed on its own with `Instant` (adds
//! ~20-30 ns of timer overhead to every sample).
//!
//! `cargo bench -p permanence-benches --bench latency`

use std::hint::black_box;
use std::time::Instant;

use permanence_acd::{Action, CallArrival, CallId, Input, Output};
use permanence_benches::Bench;

const SIZES: [(usize, usize); 4] = [(10, 100), (100, 500), (1000, 2000), (10_000, 5000)];

fn pct(v: &mut [u64], p: f64) -> u64 {
    v.sort_unstable();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

static OFFERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn drain_timed(b: &mut Bench) {
    while let Some(o) = b.d.poll_output() {
        if let Output::Action(Action::Offer { call, agent, .. }) = o {
            OFFERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            b.offers.push((call, agent));
        } else {
            black_box(&o);
        }
    }
}

fn arrival(agents: usize, practices: usize, n: usize) -> Vec<u64> {
    let mut b = Bench::new(agents, practices);
    let mut out = Vec::with_capacity(n);
    for i in 0..n + 1000 {
        let p = b.next_call as usize * 7919 % b.practices.len();
        let id = CallId(b.next_call);
        b.next_call += 1;
        let input = Input::CallArrived(CallArrival::new(id, b.practices[p].as_str()));
        let t = Instant::now();
        let _ = black_box(b.d.handle_input(input, b.now));
        drain_timed(&mut b);
        let ns = t.elapsed().as_nanos() as u64;
        if i >= 1000 {
            out.push(ns);
        }
        for call in b.answer_all() {
            b.end(call);
        }
        let _ = b.d.handle_input(Input::CallAbandoned { call: id }, b.now);
        b.drain();
    }
    out
}

fn agent_free(agents: usize, practices: usize, n: usize) -> Vec<u64> {
    let mut b = Bench::new(agents, practices);
    let mut connected = std::collections::VecDeque::from(b.saturate(practices.min(4 * agents)));
    let mut out = Vec::with_capacity(n);
    for i in 0..n + 1000 {
        let Some(call) = connected.pop_front() else {
            break;
        };
        let t = Instant::now();
        let _ = black_box(b.d.handle_input(Input::CallEnded { call }, b.now));
        drain_timed(&mut b);
        let ns = t.elapsed().as_nanos() as u64;
        if i >= 1000 {
            out.push(ns);
        }
        connected.extend(b.answer_all());
        b.arrive();
        connected.extend(b.answer_all());
    }
    out
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let n = 200_000;
    println!(
        "| decision | agents | practices | p50 | p90 | p99 | max | decisions ending in an offer |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (agents, practices) in SIZES {
        for name in ["arrival -> offer", "agent free -> offer"] {
            OFFERS.store(0, std::sync::atomic::Ordering::Relaxed);
            let mut v = if name.starts_with("arrival") {
                arrival(agents, practices, n)
            } else {
                agent_free(agents, practices, n)
            };
            let offered =
                OFFERS.load(std::sync::atomic::Ordering::Relaxed) as f64 / (v.len() + 1000) as f64;
            let (p50, p90, p99) = (pct(&mut v, 0.5), pct(&mut v, 0.9), pct(&mut v, 0.99));
            let max = v.last().copied().unwrap_or(0);
            println!(
                "| {name} | {agents} | {practices} | {:.2} µs | {:.2} µs | {:.2} µs | {:.1} µs | {:.1} % |",
                p50 as f64 / 1000.0,
                p90 as f64 / 1000.0,
                p99 as f64 / 1000.0,
                max as f64 / 1000.0,
                offered * 100.0
            );
        }
    }
}
