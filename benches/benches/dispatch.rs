//! Dispatch decision latency and routing throughput.
//!
//! * `arrival_offer`: a call arrives while eligible agents are free; time of
//!   `handle_input(CallArrived)` including the choice of the agent and the
//!   outputs (queue insert, group heap peeks, offer, events).
//! * `agent_free_offer`: every agent busy, calls waiting in all practices
//!   (relaxed to their last step); an agent ends its call and takes the best
//!   eligible waiting call across all practices; time of
//!   `handle_input(CallEnded)`.
//! * `call_cycle`: throughput of a full routed call (arrive, offer, answer,
//!   end) with all agents free: calls routed per second.
//!
//! Sizes: (agents, practices) = (10, 100), (100, 500), (1000, 2000),
//! (10000, 5000).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use permanence_acd::{CallArrival, CallId, Input};
use permanence_benches::Bench;

const SIZES: [(usize, usize); 4] = [(10, 100), (100, 500), (1000, 2000), (10_000, 5000)];

fn arrival_offer(c: &mut Criterion) {
    let mut g = c.benchmark_group("arrival_offer");
    for (agents, practices) in SIZES {
        let mut b = Bench::new(agents, practices);
        g.throughput(Throughput::Elements(1));
        g.bench_function(
            BenchmarkId::from_parameter(format!("{agents}a_{practices}p")),
            |bch| {
                bch.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let p = b.next_call as usize * 7919 % b.practices.len();
                        let id = CallId(b.next_call);
                        b.next_call += 1;
                        let input =
                            Input::CallArrived(CallArrival::new(id, b.practices[p].as_str()));
                        let t = Instant::now();
                        let _ = black_box(b.d.handle_input(input, b.now));
                        while let Some(o) = b.d.poll_output() {
                            black_box(&o);
                            if let permanence_acd::Output::Action(permanence_acd::Action::Offer {
                                call,
                                agent,
                                ..
                            }) = o
                            {
                                b.offers.push((call, agent));
                            }
                        }
                        total += t.elapsed();
                        // Untimed: answer and hang up so the agent is free again.
                        for call in b.answer_all() {
                            b.end(call);
                        }
                        // A call whose dedicated agents were both busy waits:
                        // clear it too.
                        let _ = b.d.handle_input(Input::CallAbandoned { call: id }, b.now);
                        b.drain();
                    }
                    total
                })
            },
        );
    }
    g.finish();
}

fn agent_free_offer(c: &mut Criterion) {
    let mut g = c.benchmark_group("agent_free_offer");
    for (agents, practices) in SIZES {
        let mut b = Bench::new(agents, practices);
        let mut connected = b.saturate(practices.min(4 * agents));
        connected.reverse();
        g.throughput(Throughput::Elements(1));
        g.bench_function(
            BenchmarkId::from_parameter(format!("{agents}a_{practices}p")),
            |bch| {
                bch.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let Some(call) = connected.pop() else {
                            break;
                        };
                        let t = Instant::now();
                        let _ = black_box(b.d.handle_input(Input::CallEnded { call }, b.now));
                        while let Some(o) = b.d.poll_output() {
                            if let permanence_acd::Output::Action(permanence_acd::Action::Offer {
                                call,
                                agent,
                                ..
                            }) = o
                            {
                                b.offers.push((call, agent));
                            } else {
                                black_box(&o);
                            }
                        }
                        total += t.elapsed();
                        // Untimed: the agent answers its new call (which joins
                        // the end of the line) and a new call keeps the queue
                        // length constant.
                        let answered = b.answer_all();
                        connected.splice(0..0, answered);
                        b.arrive();
                        connected.splice(0..0, b.answer_all());
                    }
                    total
                })
            },
        );
    }
    g.finish();
}

fn call_cycle(c: &mut Criterion) {
    let mut g = c.benchmark_group("call_cycle");
    for (agents, practices) in SIZES {
        let mut b = Bench::new(agents, practices);
        g.throughput(Throughput::Elements(1));
        g.bench_function(
            BenchmarkId::from_parameter(format!("{agents}a_{practices}p")),
            |bch| {
                bch.iter(|| {
                    let id = b.arrive();
                    for call in b.answer_all() {
                        b.end(call);
                    }
                    let _ = b.d.handle_input(Input::CallAbandoned { call: id }, b.now);
                    b.drain();
                })
            },
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = arrival_offer, agent_free_offer, call_cycle
}
criterion_main!(benches);
