//! Scenario files: traffic, behaviour and the dispatcher configuration.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Datelike, Timelike, Utc};
use permanence_acd::{AcdConfig, PracticeId};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// A duration distribution (seconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Dist {
    /// Always the same value.
    Constant {
        /// Seconds.
        secs: f64,
    },
    /// Exponential with this mean.
    Exponential {
        /// Mean, seconds.
        mean_secs: f64,
    },
    /// Lognormal with this mean and standard deviation (of the value, not
    /// of its logarithm).
    Lognormal {
        /// Mean, seconds.
        mean_secs: f64,
        /// Standard deviation, seconds.
        sd_secs: f64,
    },
}

impl Dist {
    /// Draws a value in seconds (never negative).
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match *self {
            Dist::Constant { secs } => secs.max(0.0),
            Dist::Exponential { mean_secs } => {
                // Inverse CDF; 1 − U lies in (0, 1].
                let u: f64 = rng.random::<f64>();
                -mean_secs * (1.0 - u).ln()
            }
            Dist::Lognormal { mean_secs, sd_secs } => {
                let s2 = (1.0 + (sd_secs / mean_secs).powi(2)).ln();
                let mu = mean_secs.ln() - s2 / 2.0;
                // Box–Muller.
                let u1: f64 = 1.0 - rng.random::<f64>();
                let u2: f64 = rng.random::<f64>();
                let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                (mu + s2.sqrt() * z).exp()
            }
        }
    }

    /// The mean, seconds.
    pub fn mean(&self) -> f64 {
        match *self {
            Dist::Constant { secs } => secs,
            Dist::Exponential { mean_secs } | Dist::Lognormal { mean_secs, .. } => mean_secs,
        }
    }

    /// Whether the distribution is exponential.
    pub fn is_exponential(&self) -> bool {
        matches!(self, Dist::Exponential { .. })
    }

    fn validate(&self, what: &str) -> Result<(), ScenarioError> {
        let bad = |m: &str| Err(ScenarioError::Invalid(format!("{what}: {m}")));
        match *self {
            Dist::Constant { secs } if !(secs >= 0.0 && secs.is_finite()) => {
                bad("secs must be >= 0")
            }
            Dist::Exponential { mean_secs } if !(mean_secs > 0.0 && mean_secs.is_finite()) => {
                bad("mean_secs must be > 0")
            }
            Dist::Lognormal { mean_secs, sd_secs }
                if !(mean_secs > 0.0 && sd_secs >= 0.0 && mean_secs.is_finite()) =>
            {
                bad("mean_secs must be > 0 and sd_secs >= 0")
            }
            _ => Ok(()),
        }
    }
}

/// An arrival-rate profile: multipliers by local hour and weekday.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Time zone of the hours.
    #[serde(default = "default_tz")]
    pub tz: String,
    /// 24 multipliers, local hour 0 to 23 (default all 1).
    #[serde(default)]
    pub hourly: Vec<f64>,
    /// Multipliers by weekday (`mon` .. `sun`, default 1).
    #[serde(default)]
    pub weekday: BTreeMap<String, f64>,
}

fn default_tz() -> String {
    "Europe/Paris".into()
}

/// Traffic offered to one practice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Traffic {
    /// The practice.
    pub practice: PracticeId,
    /// Base Poisson rate, calls per hour (times the profile multiplier).
    pub calls_per_hour: f64,
    /// Name of a profile in [`Scenario::profiles`]; none: constant rate.
    #[serde(default)]
    pub profile: Option<String>,
    /// Handle time override for this practice.
    #[serde(default)]
    pub handle_time: Option<Dist>,
    /// Patience override for this practice.
    #[serde(default)]
    pub patience: Option<Dist>,
}

/// How agents react to offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerBehaviour {
    /// Delay between the offer and the answer.
    #[serde(default = "zero")]
    pub delay: Dist,
    /// Probability that an offer is not answered at all (ring-no-answer).
    #[serde(default)]
    pub no_answer_probability: f64,
}

fn zero() -> Dist {
    Dist::Constant { secs: 0.0 }
}

impl Default for AnswerBehaviour {
    fn default() -> Self {
        Self {
            delay: zero(),
            no_answer_probability: 0.0,
        }
    }
}

/// A complete simulation scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name, echoed in the summary.
    #[serde(default)]
    pub name: String,
    /// RNG seed: the same scenario and seed give the same summary.
    #[serde(default)]
    pub seed: u64,
    /// Simulated start instant.
    pub start: DateTime<Utc>,
    /// Arrivals are generated for this many days (calls in progress at the
    /// end are run to completion).
    pub days: f64,
    /// Calls arriving in the first hours are simulated but not counted.
    #[serde(default)]
    pub warmup_hours: f64,
    /// Service-level threshold, seconds.
    #[serde(default = "default_sl")]
    pub service_level_secs: f64,
    /// Default handle time (talk time).
    pub handle_time: Dist,
    /// Default caller patience (abandonment while waiting or ringing).
    pub patience: Dist,
    /// Agent answer behaviour.
    #[serde(default)]
    pub answer: AnswerBehaviour,
    /// Arrival profiles by name.
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
    /// Traffic per practice.
    pub traffic: Vec<Traffic>,
    /// The dispatcher configuration (agents, pools, practices, settings).
    pub acd: AcdConfig,
}

fn default_sl() -> f64 {
    20.0
}

/// Errors loading or validating a scenario.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The TOML is malformed or does not match the scenario format.
    #[error("invalid scenario TOML: {0}")]
    Toml(#[from] toml::de::Error),
    /// A value is out of range or a reference is unknown.
    #[error("invalid scenario: {0}")]
    Invalid(String),
    /// The dispatcher rejected the configuration.
    #[error("invalid dispatcher configuration: {0}")]
    Acd(#[from] permanence_acd::AcdError),
}

impl Scenario {
    /// Parses a scenario from TOML text.
    pub fn from_toml_str(text: &str) -> Result<Self, ScenarioError> {
        let s: Scenario = toml::from_str(text)?;
        s.validate()?;
        Ok(s)
    }

    /// Reads a scenario file.
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Self, ScenarioError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml_str(&text)
    }

    /// Checks values and references.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        if !(self.days > 0.0 && self.days.is_finite()) {
            return Err(ScenarioError::Invalid("days must be > 0".into()));
        }
        if !(self.warmup_hours >= 0.0 && self.warmup_hours < self.days * 24.0) {
            return Err(ScenarioError::Invalid(
                "warmup_hours must be >= 0 and shorter than the run".into(),
            ));
        }
        self.handle_time.validate("handle_time")?;
        self.patience.validate("patience")?;
        self.answer.delay.validate("answer.delay")?;
        if !(0.0..=1.0).contains(&self.answer.no_answer_probability) {
            return Err(ScenarioError::Invalid(
                "answer.no_answer_probability must be in [0, 1]".into(),
            ));
        }
        for (name, p) in &self.profiles {
            permanence_calendar::parse_tz(&p.tz)
                .map_err(|e| ScenarioError::Invalid(format!("profile {name}: {e}")))?;
            if !(p.hourly.is_empty() || p.hourly.len() == 24) {
                return Err(ScenarioError::Invalid(format!(
                    "profile {name}: hourly needs 24 values"
                )));
            }
            if p.hourly
                .iter()
                .chain(p.weekday.values())
                .any(|m| m.is_nan() || *m < 0.0)
            {
                return Err(ScenarioError::Invalid(format!(
                    "profile {name}: multipliers must be >= 0"
                )));
            }
            for d in p.weekday.keys() {
                permanence_calendar::parse_weekday(d)
                    .map_err(|e| ScenarioError::Invalid(format!("profile {name}: {e}")))?;
            }
        }
        for t in &self.traffic {
            if !self.acd.practices.iter().any(|p| p.id == t.practice) {
                return Err(ScenarioError::Invalid(format!(
                    "traffic for unknown practice {}",
                    t.practice
                )));
            }
            if !(t.calls_per_hour >= 0.0 && t.calls_per_hour.is_finite()) {
                return Err(ScenarioError::Invalid(format!(
                    "traffic {}: calls_per_hour must be >= 0",
                    t.practice
                )));
            }
            if let Some(name) = &t.profile {
                if !self.profiles.contains_key(name) {
                    return Err(ScenarioError::Invalid(format!(
                        "traffic {}: unknown profile {name}",
                        t.practice
                    )));
                }
            }
            if let Some(d) = &t.handle_time {
                d.validate("traffic handle_time")?;
            }
            if let Some(d) = &t.patience {
                d.validate("traffic patience")?;
            }
        }
        Ok(())
    }
}

/// A profile resolved for fast evaluation.
#[derive(Debug, Clone)]
pub(crate) struct RateFn {
    tz: Option<chrono_tz::Tz>,
    /// multiplier[weekday 0..7][hour 0..24]
    table: [[f64; 24]; 7],
    pub max: f64,
}

impl RateFn {
    pub fn constant() -> Self {
        Self {
            tz: None,
            table: [[1.0; 24]; 7],
            max: 1.0,
        }
    }

    pub fn from_profile(p: &Profile) -> Self {
        let tz = permanence_calendar::parse_tz(&p.tz).ok();
        let mut table = [[1.0; 24]; 7];
        for (d, row) in table.iter_mut().enumerate() {
            for (h, v) in row.iter_mut().enumerate() {
                let hourly = p.hourly.get(h).copied().unwrap_or(1.0);
                let wd = p
                    .weekday
                    .iter()
                    .find(|(k, _)| {
                        permanence_calendar::parse_weekday(k)
                            .map(|w| w.num_days_from_monday() as usize == d)
                            .unwrap_or(false)
                    })
                    .map(|(_, m)| *m)
                    .unwrap_or(1.0);
                *v = hourly * wd;
            }
        }
        let max = table.iter().flatten().copied().fold(0.0, f64::max);
        Self { tz, table, max }
    }

    pub fn at(&self, t: DateTime<Utc>) -> f64 {
        match self.tz {
            None => self.table[0][0],
            Some(tz) => {
                let l = t.with_timezone(&tz);
                self.table[l.weekday().num_days_from_monday() as usize][l.hour() as usize]
            }
        }
    }
}
