//! Simulator speed: simulated calls per second of wall time for the shipped
//! scenarios (scaled down to a few days).

use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use permanence_sim::{run_scenario, Scenario};

fn load(name: &str, days: f64) -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"));
    let mut s = Scenario::from_toml_file(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    s.days = days;
    s.warmup_hours = 0.0;
    s
}

fn simulate(c: &mut Criterion) {
    let mut g = c.benchmark_group("simulate");
    for (name, days) in [
        ("erlang_a_single_pool", 5.0),
        ("monday_peak", 7.0),
        ("dedicated_then_shared", 7.0),
    ] {
        let s = load(name, days);
        let calls = run_scenario(&s)
            .map(|r| r.totals.offered + r.totals.closed)
            .unwrap_or(1);
        g.throughput(Throughput::Elements(calls));
        g.bench_function(name, |b| b.iter(|| run_scenario(&s)));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = simulate
}
criterion_main!(benches);
