//! Simulator acceptance: Erlang A agreement and the shipped scenarios.

use std::path::PathBuf;
use std::time::Duration;

use permanence_sim::*;

fn scenario(name: &str) -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../benches/scenarios")
        .join(format!("{name}.toml"));
    Scenario::from_toml_file(&path).expect("scenario parses")
}

/// Simulated days for the Erlang-A check: long enough for a standard error
/// well below 1 pp (about 0.1 pp at 30 days), shorter in debug builds.
fn erlang_days() -> f64 {
    if cfg!(debug_assertions) {
        30.0
    } else {
        60.0
    }
}

#[test]
fn erlang_a_reference_value() {
    let r = ErlangA::from_means(8, 120.0, 150.0, 60.0)
        .solve(20.0)
        .expect("valid");
    println!("Erlang A M/M/8+M: {r:?}");
    assert!((r.pickup_rate - 0.963).abs() < 0.001, "{}", r.pickup_rate);
}

#[test]
fn simulation_matches_erlang_a_within_one_point() {
    let mut s = scenario("erlang_a_single_pool");
    s.days = erlang_days();
    for seed in [1, 2, 3] {
        s.seed = seed;
        let sum = run_scenario(&s).expect("runs");
        let ea = sum.erlang_a.clone().expect("single pool");
        assert!(ea.assumptions_met, "{:?}", ea.deviations);
        assert_eq!(ea.agents, 8);
        let diff = sum.totals.pickup_rate - ea.result.pickup_rate;
        println!(
            "seed {seed}: simulated pickup {:.4} vs Erlang A {:.4} (diff {:+.2} pp), SL {:.4} vs {:.4}, ASA {:.2}s vs {:.2}s, occupancy {:.4} vs {:.4}",
            sum.totals.pickup_rate,
            ea.result.pickup_rate,
            diff * 100.0,
            sum.totals.service_level,
            ea.result.service_level,
            sum.totals.asa_seconds,
            ea.result.asa_seconds,
            sum.agent_occupancy,
            ea.result.occupancy
        );
        assert!(
            diff.abs() < 0.01,
            "pickup differs by {:.2} pp",
            diff * 100.0
        );
        assert!((sum.totals.service_level - ea.result.service_level).abs() < 0.015);
        assert!((sum.agent_occupancy - ea.result.occupancy).abs() < 0.015);
        // Every counted call is accounted for.
        let t = &sum.totals;
        assert_eq!(t.answered + t.abandoned + t.overflowed, t.offered);
    }
}

#[test]
fn erlang_comparison_detects_a_model_mismatch() {
    // Negative control: a 60 s wrap-up removes capacity the model does not
    // know about; the simulated pickup rate must fall clearly below it.
    let mut s = scenario("erlang_a_single_pool");
    s.days = erlang_days() / 2.0;
    s.acd.settings.wrap_up = Duration::from_secs(60);
    let sum = run_scenario(&s).expect("runs");
    let ea = sum.erlang_a.expect("still a single pool");
    assert!(!ea.assumptions_met);
    assert!(ea.deviations.iter().any(|d| d.contains("wrap-up")));
    assert!(
        ea.result.pickup_rate - sum.totals.pickup_rate > 0.02,
        "sim {} vs model {}",
        sum.totals.pickup_rate,
        ea.result.pickup_rate
    );
}

#[test]
fn runs_are_deterministic_per_seed() {
    let mut s = scenario("monday_peak");
    s.days = 2.0;
    let a = run_scenario(&s).expect("runs");
    let b = run_scenario(&s).expect("runs");
    assert_eq!(a, b);
    s.seed += 1;
    let c = run_scenario(&s).expect("runs");
    assert_ne!(a.totals.offered, c.totals.offered);
}

#[test]
fn relaxing_to_a_shared_pool_raises_the_pickup_rate() {
    let mut only = scenario("dedicated_only");
    let mut shared = scenario("dedicated_then_shared");
    only.days = 7.0;
    shared.days = 7.0;
    let a = run_scenario(&only).expect("runs");
    let b = run_scenario(&shared).expect("runs");
    println!(
        "dedicated only: pickup {:.4}, ASA {:.1}s; dedicated then shared: pickup {:.4}, ASA {:.1}s",
        a.totals.pickup_rate, a.totals.asa_seconds, b.totals.pickup_rate, b.totals.asa_seconds
    );
    // Same calls offered (independent random streams per traffic source).
    assert_eq!(a.totals.offered, b.totals.offered);
    assert_eq!(a.totals.closed, b.totals.closed);
    assert!(
        a.totals.closed > 0,
        "calls outside opening hours are closed"
    );
    assert!(
        b.totals.pickup_rate > a.totals.pickup_rate + 0.10,
        "{} vs {}",
        b.totals.pickup_rate,
        a.totals.pickup_rate
    );
    for s in [&a, &b] {
        let t = &s.totals;
        assert_eq!(t.answered + t.abandoned + t.overflowed, t.offered);
        assert!(s.erlang_a.is_none(), "time-varying traffic: no Erlang A");
    }
}

#[test]
fn monday_peak_runs_and_accounts_for_every_call() {
    let s = scenario("monday_peak");
    let sum = run_scenario(&s).expect("runs");
    let t = &sum.totals;
    assert!(t.offered > 1000);
    assert_eq!(t.answered + t.abandoned + t.overflowed, t.offered);
    assert!(t.closed > 0);
    assert!(sum.rona > 0, "2 % of offers go unanswered");
    assert!(sum.agent_occupancy > 0.0 && sum.agent_occupancy < 1.0);
    assert_eq!(sum.practices.len(), 8);
    let json = sum.to_json();
    for key in [
        "offered",
        "answered",
        "abandoned",
        "overflowed",
        "pickup_rate",
        "asa_seconds",
        "service_level",
        "agent_occupancy",
        "practices",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
}

#[test]
fn distributions_have_the_requested_means() {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for d in [
        Dist::Exponential { mean_secs: 150.0 },
        Dist::Lognormal {
            mean_secs: 150.0,
            sd_secs: 90.0,
        },
        Dist::Constant { secs: 150.0 },
    ] {
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| d.sample(&mut rng)).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        assert!((mean - 150.0).abs() < 1.5, "{d:?}: {mean}");
        if let Dist::Lognormal { .. } = d {
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
            assert!((var.sqrt() - 90.0).abs() < 3.0, "sd {}", var.sqrt());
        }
    }
}

#[test]
fn bad_scenarios_are_rejected() {
    let mut s = scenario("erlang_a_single_pool");
    s.traffic[0].practice = "nowhere".into();
    assert!(run_scenario(&s).is_err());
    let mut s = scenario("erlang_a_single_pool");
    s.days = 0.0;
    assert!(run_scenario(&s).is_err());
    assert!(Scenario::from_toml_str("name = 1").is_err());
}
