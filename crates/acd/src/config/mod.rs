//! Dispatcher configuration: agents, pools, practice policies, settings.
//!
//! All types deserialize from TOML/JSON (the simulator scenarios reuse them).
//! Schedules (opening hours, shifts) are written in a compact form, see
//! [`ScheduleSpec`]:
//!
//! ```toml
//! [[practices]]
//! id = "cabinet-martin"
//! hours = { tz = "Europe/Paris", holidays = "fr", weekly = { mon-fri = ["08:00-12:00", "14:00-19:00"], sat = ["08:00-12:00"] } }
//! steps = [
//!   { after_secs = 0, dedicated = true },
//!   { after_secs = 20, pool = "shared", skill = "generaliste", min_level = 3 },
//!   { after_secs = 60, language = "fr" },
//! ]
//! max_wait_secs = 180
//! overflow = "voicemail"
//! ```
//!
//! [`AcdConfig::validate`] (in `config/validate.rs`) checks a whole
//! configuration before the dispatcher takes it.

mod validate;

use std::collections::BTreeMap;

use permanence_calendar::{
    parse_date, parse_time_range, parse_tz, parse_weekday, DateException, DayHours, HolidayRule,
    MinuteRange, Schedule, Weekday, WeeklyHours,
};
use serde::{Deserialize, Serialize};

use crate::ids::{AgentId, PoolId, PracticeId};

/// The whole dispatcher configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AcdConfig {
    /// Global settings and defaults.
    #[serde(default)]
    pub settings: AcdSettings,
    /// Agents (telesecretaries).
    #[serde(default)]
    pub agents: Vec<AgentProfile>,
    /// Named pools of agents.
    #[serde(default)]
    pub pools: Vec<PoolDef>,
    /// Practices and their routing policy.
    #[serde(default)]
    pub practices: Vec<PracticePolicy>,
}

use permanence_types::serde_secs;
pub use permanence_types::{OverflowTarget, RoutingStep, Selector, Strategy};
use std::time::Duration;

/// Global settings; every per-practice value falls back to these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AcdSettings {
    /// Default agent selection strategy.
    pub strategy: Strategy,
    /// Default ring timeout of an offer (`ring_timeout_secs`).
    #[serde(rename = "ring_timeout_secs", with = "serde_secs")]
    pub ring_timeout: Duration,
    /// After an offer failed (busy, rejected, unreachable), the agent is not
    /// offered calls for this long (`busy_backoff_secs`).
    #[serde(rename = "busy_backoff_secs", with = "serde_secs")]
    pub busy_backoff: Duration,
    /// After a ring-no-answer the agent is not offered calls for this long,
    /// so the call moves on to another agent (`rona_backoff_secs`).
    #[serde(rename = "rona_backoff_secs", with = "serde_secs")]
    pub rona_backoff: Duration,
    /// Default number of consecutive ring-no-answers that pause an agent.
    pub max_no_answer_strikes: u32,
    /// Default wrap-up after each call (`wrap_up_secs`).
    #[serde(rename = "wrap_up_secs", with = "serde_secs")]
    pub wrap_up: Duration,
    /// Default seed of the per-practice average handle time
    /// (`default_handle_secs`).
    #[serde(rename = "default_handle_secs", with = "serde_secs")]
    pub default_handle: Duration,
    /// Weight of the newest call in the exponentially weighted average
    /// handle time, in `(0, 1]`.
    pub aht_alpha: f64,
    /// Target of waiting calls whose practice disappears in a
    /// reconfiguration (must not be a pool).
    pub orphan_overflow: OverflowTarget,
}

impl Default for AcdSettings {
    fn default() -> Self {
        Self {
            strategy: Strategy::LongestIdle,
            ring_timeout: Duration::from_secs(20),
            busy_backoff: Duration::from_secs(10),
            rona_backoff: Duration::from_secs(10),
            max_no_answer_strikes: 3,
            wrap_up: Duration::from_secs(15),
            default_handle: Duration::from_secs(180),
            aht_alpha: 0.1,
            orphan_overflow: OverflowTarget::Voicemail,
        }
    }
}

/// One agent's static profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentProfile {
    /// Unique id.
    pub id: AgentId,
    /// Skills with proficiency 1..=5 (`cardiologie = 4`, practice-specific
    /// training, ...).
    #[serde(default)]
    pub skills: BTreeMap<String, u8>,
    /// Languages spoken (`["fr", "en"]`).
    #[serde(default)]
    pub languages: Vec<String>,
    /// Pools the agent belongs to (merged with [`PoolDef::members`]).
    #[serde(default)]
    pub pools: Vec<PoolId>,
    /// Practices the agent is dedicated to (merged with
    /// [`PracticePolicy::dedicated_agents`]).
    #[serde(default)]
    pub practices: Vec<PracticeId>,
    /// Shift windows in the agent's time zone; `None` means no limit.
    #[serde(
        default,
        serialize_with = "schedule_serde::ser_opt",
        deserialize_with = "schedule_serde::de_opt"
    )]
    pub shift: Option<Schedule>,
    /// Whether a newly configured agent starts logged in (existing agents
    /// keep their state across reconfigurations).
    #[serde(default)]
    pub logged_in: bool,
    /// The agent's own wrap-up time, overriding the practice's
    /// (`wrap_up_secs`).
    #[serde(default, rename = "wrap_up_secs", with = "serde_secs::option")]
    pub wrap_up: Option<Duration>,
}

impl AgentProfile {
    /// A logged-out agent with no skills, languages or memberships.
    pub fn new(id: impl Into<AgentId>) -> Self {
        Self {
            id: id.into(),
            skills: BTreeMap::new(),
            languages: Vec::new(),
            pools: Vec::new(),
            practices: Vec::new(),
            shift: None,
            logged_in: false,
            wrap_up: None,
        }
    }
}

/// A named pool of agents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolDef {
    /// Unique id.
    pub id: PoolId,
    /// Members (merged with [`AgentProfile::pools`]).
    #[serde(default)]
    pub members: Vec<AgentId>,
}

fn default_steps() -> Vec<RoutingStep> {
    vec![RoutingStep::dedicated(Duration::ZERO)]
}

/// A practice's routing policy (mapped from its dialplan file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PracticePolicy {
    /// Unique id.
    pub id: PracticeId,
    /// Opening hours; `None` means always open.
    #[serde(
        default,
        serialize_with = "schedule_serde::ser_opt",
        deserialize_with = "schedule_serde::de_opt"
    )]
    pub hours: Option<Schedule>,
    /// Dedicated agents (merged with [`AgentProfile::practices`]).
    #[serde(default)]
    pub dedicated_agents: Vec<AgentId>,
    /// Routing steps, by non-decreasing `after_secs`; default: the
    /// dedicated agents from 0 s.
    #[serde(default = "default_steps")]
    pub steps: Vec<RoutingStep>,
    /// Base priority of the practice's calls (higher is served first).
    #[serde(default)]
    pub priority: i32,
    /// Maximum wait before overflow (`max_wait_secs`); `None`: wait until
    /// answered or abandoned.
    #[serde(default, rename = "max_wait_secs", with = "serde_secs::option")]
    pub max_wait: Option<Duration>,
    /// Where calls go at the maximum wait.
    #[serde(default = "default_overflow")]
    pub overflow: OverflowTarget,
    /// Wrap-up after each call (`wrap_up_secs`; default: settings).
    #[serde(default, rename = "wrap_up_secs", with = "serde_secs::option")]
    pub wrap_up: Option<Duration>,
    /// Ring timeout of offers (`ring_timeout_secs`; default: settings).
    #[serde(default, rename = "ring_timeout_secs", with = "serde_secs::option")]
    pub ring_timeout: Option<Duration>,
    /// Consecutive ring-no-answers (on this practice's calls) that pause
    /// the agent (default: settings).
    #[serde(default)]
    pub max_no_answer_strikes: Option<u32>,
    /// Seed of the average handle time (`default_handle_secs`; default:
    /// settings).
    #[serde(default, rename = "default_handle_secs", with = "serde_secs::option")]
    pub default_handle: Option<Duration>,
    /// Specialty skill used to rank agents with [`Strategy::MostSkilled`].
    #[serde(default)]
    pub specialty: Option<String>,
    /// Agent selection strategy (default: settings).
    #[serde(default)]
    pub strategy: Option<Strategy>,
}

fn default_overflow() -> OverflowTarget {
    OverflowTarget::Voicemail
}

impl PracticePolicy {
    /// An always-open practice served by its dedicated agents only, with no
    /// maximum wait.
    pub fn new(id: impl Into<PracticeId>) -> Self {
        Self {
            id: id.into(),
            hours: None,
            dedicated_agents: Vec::new(),
            steps: default_steps(),
            priority: 0,
            max_wait: None,
            overflow: default_overflow(),
            wrap_up: None,
            ring_timeout: None,
            max_no_answer_strikes: None,
            default_handle: None,
            specialty: None,
            strategy: None,
        }
    }
}

/// Compact, human-writable form of a [`Schedule`].
///
/// `weekly` keys are weekday names (`mon`, `lundi`, ...) or the groups
/// `mon-fri` / `weekdays` and `daily`; values are lists of `HH:MM-HH:MM`
/// ranges (a range ending before it starts crosses midnight).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// IANA time zone.
    #[serde(default = "default_tz")]
    pub tz: String,
    /// Open around the clock.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub always_open: bool,
    /// Weekly ranges by day.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub weekly: BTreeMap<String, Vec<String>>,
    /// Public holidays closing the schedule.
    #[serde(default)]
    pub holidays: HolidayRule,
    /// Dated exceptions (closures or special hours).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exceptions: Vec<ExceptionSpec>,
}

/// A dated exception in a [`ScheduleSpec`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExceptionSpec {
    /// First date, `YYYY-MM-DD`.
    pub from: String,
    /// Last date (inclusive); default: `from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Open ranges on those dates; empty: closed.
    #[serde(default)]
    pub hours: Vec<String>,
    /// Free text.
    #[serde(default)]
    pub label: String,
}

fn default_tz() -> String {
    "Europe/Paris".to_string()
}

impl ScheduleSpec {
    /// Builds the schedule.
    pub fn to_schedule(&self) -> Result<Schedule, permanence_calendar::CalendarError> {
        let tz = parse_tz(&self.tz)?;
        if self.always_open {
            return Ok(Schedule::always(tz));
        }
        let mut weekly = WeeklyHours::default();
        for (day, ranges) in &self.weekly {
            let days: Vec<Weekday> = match day.to_ascii_lowercase().as_str() {
                "mon-fri" | "weekdays" => vec![
                    Weekday::Mon,
                    Weekday::Tue,
                    Weekday::Wed,
                    Weekday::Thu,
                    Weekday::Fri,
                ],
                "mon-sat" => vec![
                    Weekday::Mon,
                    Weekday::Tue,
                    Weekday::Wed,
                    Weekday::Thu,
                    Weekday::Fri,
                    Weekday::Sat,
                ],
                "daily" => vec![
                    Weekday::Mon,
                    Weekday::Tue,
                    Weekday::Wed,
                    Weekday::Thu,
                    Weekday::Fri,
                    Weekday::Sat,
                    Weekday::Sun,
                ],
                other => vec![parse_weekday(other)?],
            };
            for d in days {
                for r in ranges {
                    weekly.add_text(d, r)?;
                }
            }
        }
        let mut schedule = Schedule::weekly(tz, weekly, self.holidays);
        for e in &self.exceptions {
            let from = parse_date(&e.from)?;
            let to = match &e.to {
                Some(t) => parse_date(t)?,
                None => from,
            };
            let mut hours = DayHours::closed();
            for r in &e.hours {
                let (s, end) = parse_time_range(r)?;
                let range = MinuteRange::new(s, end)
                    .ok_or_else(|| permanence_calendar::CalendarError::BadRange(r.clone()))?;
                hours.insert(&e.from, range)?;
            }
            schedule
                .exceptions
                .push(DateException::new(from, to, hours, e.label.clone())?);
        }
        Ok(schedule)
    }

    /// The compact form of a schedule (inverse of [`ScheduleSpec::to_schedule`]).
    pub fn from_schedule(s: &Schedule) -> Self {
        let mut weekly = BTreeMap::new();
        if !s.always_open {
            for d in [
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
                Weekday::Sat,
                Weekday::Sun,
            ] {
                let ranges: Vec<String> = s
                    .weekly
                    .day(d)
                    .ranges()
                    .iter()
                    .map(|r| r.to_string())
                    .collect();
                if !ranges.is_empty() {
                    weekly.insert(format!("{d:?}").to_ascii_lowercase(), ranges);
                }
            }
        }
        Self {
            tz: s.tz.name().to_string(),
            always_open: s.always_open,
            weekly,
            holidays: s.holidays,
            exceptions: s
                .exceptions
                .iter()
                .map(|e| ExceptionSpec {
                    from: e.from.to_string(),
                    to: Some(e.to.to_string()),
                    hours: e.hours.ranges().iter().map(|r| r.to_string()).collect(),
                    label: e.label.clone(),
                })
                .collect(),
        }
    }
}

/// Serde helpers writing `Option<Schedule>` as a [`ScheduleSpec`].
pub mod schedule_serde {
    use super::*;
    use serde::{Deserializer, Serializer};

    /// Serializes an optional schedule in compact form.
    pub fn ser_opt<S: Serializer>(v: &Option<Schedule>, s: S) -> Result<S::Ok, S::Error> {
        v.as_ref().map(ScheduleSpec::from_schedule).serialize(s)
    }

    /// Deserializes an optional schedule from its compact form.
    pub fn de_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Schedule>, D::Error> {
        let spec = Option::<ScheduleSpec>::deserialize(d)?;
        spec.map(|s| s.to_schedule().map_err(serde::de::Error::custom))
            .transpose()
    }
}
