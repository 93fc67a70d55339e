//! Pickup-rate simulator for Permanence.
//!
//! A discrete-event simulation that drives the **real**
//! [`permanence_acd::Dispatcher`] on virtual time: Poisson arrivals per
//! practice with an hourly/weekday rate profile, handle times (exponential,
//! lognormal or constant), caller patience (abandonment while waiting or
//! ringing), agent answer delay and no-answer probability, agent shifts and
//! practice opening hours (both from the dispatcher configuration), wrap-up.
//! Runs are deterministic for a given seed.
//!
//! For single-pool scenarios the [`Summary`] carries the exact Erlang-A
//! (M/M/N+M) prediction ([`ErlangA`]) for the same parameters, listing the
//! scenario's deviations from the model's assumptions.
//!
//! ```no_run
//! let scenario = permanence_sim::Scenario::from_toml_file("benches/scenarios/monday_peak.toml")?;
//! let summary = permanence_sim::run_scenario(&scenario)?;
//! println!("{}", serde_json::to_string_pretty(&summary.to_json())?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod erlang;
mod run;
mod scenario;

pub use erlang::{ErlangA, ErlangAResult, ErlangError};
pub use run::{erlang_report, run_scenario, Counts, ErlangAReport, Summary};
pub use scenario::{AnswerBehaviour, Dist, Profile, Scenario, ScenarioError, Traffic};

/// Loads a scenario file and runs it: the one call the CLI needs.
pub fn simulate_file(path: impl AsRef<std::path::Path>) -> Result<Summary, ScenarioError> {
    run_scenario(&Scenario::from_toml_file(path)?)
}
