//! Runs a scenario file and prints the JSON summary:
//! `cargo run --release -p permanence-sim --example simulate -- benches/scenarios/monday_peak.toml`

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: simulate SCENARIO.toml [SEED]")?;
    let mut scenario = permanence_sim::Scenario::from_toml_file(&path)?;
    if let Some(seed) = args.next() {
        scenario.seed = seed.parse()?;
    }
    let summary = permanence_sim::run_scenario(&scenario)?;
    println!("{}", serde_json::to_string_pretty(&summary.to_json())?);
    Ok(())
}
