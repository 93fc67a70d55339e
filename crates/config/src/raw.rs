//! The files as written: serde structures with `deny_unknown_fields`.
//!
//! Each section (and each element of an array of tables) is deserialized on
//! its own so that an error in one does not hide errors in the others; the
//! top-level structures therefore only check which sections exist
//! ([`IgnoredAny`]) and the top-level scalar keys.
//!
//! Integers are read as `i64` and range-checked during validation, so the
//! messages say which range is allowed. Values that need parsing (addresses,
//! CIDRs, time zones, time ranges, numbers) are read as strings and parsed
//! during validation for the same reason.

use std::collections::BTreeMap;

use permanence_calendar::HolidayRule;
use permanence_numbers::Country;
use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::model::Strategy;

/// Top level of the main file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(crate) struct MainTop {
    pub dialplans_dir: String,
    pub sip: IgnoredAny,
    pub rtp: IgnoredAny,
    pub http: IgnoredAny,
    pub dispatcher: Option<IgnoredAny>,
    pub trunks: Option<IgnoredAny>,
    pub agents: Option<IgnoredAny>,
    pub pools: Option<IgnoredAny>,
    pub records: Option<IgnoredAny>,
    pub outbound: Option<IgnoredAny>,
    pub mail: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Sip {
    #[serde(default)]
    pub listen_udp: Vec<String>,
    #[serde(default)]
    pub listen_tcp: Vec<String>,
    #[serde(default)]
    pub listen_tls: Vec<String>,
    #[serde(default)]
    pub listen_ws: Vec<String>,
    #[serde(default)]
    pub listen_wss: Vec<String>,
    #[serde(default)]
    pub tls: Tls,
    pub realm: String,
    pub public_host: Option<String>,
    pub user_agent: Option<String>,
    #[serde(default)]
    pub registrar: Registrar,
    #[serde(default)]
    pub limits: Limits,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Limits {
    pub source_rate: Option<i64>,
    pub source_burst: Option<i64>,
    pub ban_after: Option<i64>,
    pub ban_seconds: Option<i64>,
    pub total_rate: Option<i64>,
    #[serde(default)]
    pub trusted: Vec<String>,
    pub max_connections: Option<i64>,
    pub max_connections_per_source: Option<i64>,
    pub idle_seconds: Option<i64>,
    pub max_calls: Option<i64>,
    pub max_heap_mb: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Tls {
    pub cert: Option<String>,
    pub key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Registrar {
    pub min_expires: Option<i64>,
    pub max_expires: Option<i64>,
    pub default_expires: Option<i64>,
    pub nonce_ttl_seconds: Option<i64>,
    pub qualify_interval_seconds: Option<i64>,
    pub qualify_timeout_seconds: Option<i64>,
    pub algorithms: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Rtp {
    pub bind: String,
    pub advertise: Option<String>,
    pub port_min: i64,
    pub port_max: i64,
    pub probation_packets: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Http {
    pub listen: String,
    pub admin_token: Option<String>,
    #[serde(default)]
    pub users: Vec<HttpUser>,
    #[serde(default)]
    pub tls: bool,
    pub console_session_minutes: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpUser {
    pub name: String,
    pub role: String,
    pub token_sha256: String,
    #[serde(default)]
    pub revoked: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Records {
    pub path: Option<String>,
    pub retention_days: Option<i64>,
    pub audit_retention_days: Option<i64>,
    pub hash_callers: Option<bool>,
    pub salt: Option<String>,
    pub voicemail_dir: Option<String>,
    pub voicemail_max_seconds: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Dispatcher {
    pub strategy: Option<Strategy>,
    pub max_no_answer_strikes: Option<i64>,
    pub busy_backoff_seconds: Option<i64>,
    pub no_answer_backoff_seconds: Option<i64>,
    pub default_ring_timeout_seconds: Option<i64>,
    pub default_wrap_up_seconds: Option<i64>,
    pub default_handle_seconds: Option<i64>,
}

/// `[mail]` of the main file: the SMTP server voicemail messages go
/// through.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Mail {
    pub server: String,
    pub port: Option<i64>,
    pub starttls: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
    pub from: String,
    pub retry_seconds: Option<Vec<i64>>,
    pub expire_hours: Option<i64>,
    pub timeout_seconds: Option<i64>,
}

/// `[outbound]` of the main file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Outbound {
    pub allow: Option<Vec<String>>,
    pub allow_numbers: Option<Vec<String>>,
    pub max_calls_per_agent: Option<i64>,
    pub ring_timeout_seconds: Option<i64>,
    pub recent_practice_minutes: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Trunk {
    pub name: String,
    pub sources: Vec<String>,
    pub outbound: Option<String>,
}

/// Weekday keys of a shift.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Week {
    pub mon: Option<Vec<String>>,
    pub tue: Option<Vec<String>>,
    pub wed: Option<Vec<String>>,
    pub thu: Option<Vec<String>>,
    pub fri: Option<Vec<String>>,
    pub sat: Option<Vec<String>>,
    pub sun: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Agent {
    pub username: String,
    pub display_name: String,
    pub ha1_md5: Option<String>,
    pub ha1_sha256: Option<String>,
    pub languages: Vec<String>,
    #[serde(default)]
    pub skills: BTreeMap<String, i64>,
    pub timezone: Option<String>,
    pub wrap_up_seconds: Option<i64>,
    pub srtp: Option<String>,
    pub outbound_allow: Option<Vec<String>>,
    pub outbound_allow_numbers: Option<Vec<String>>,
    pub shift: Option<Week>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Pool {
    pub id: String,
    pub name: String,
    pub agents: Vec<String>,
}

/// Top level of a dialplan file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(crate) struct PracticeTop {
    pub id: String,
    pub name: String,
    pub specialty: String,
    pub language: String,
    pub languages: Option<Vec<String>>,
    pub timezone: String,
    pub country: Option<Country>,
    #[serde(default)]
    pub forwarded_from: Vec<String>,
    #[serde(default)]
    pub dids: Vec<String>,
    pub info_url: Option<String>,
    pub hours: IgnoredAny,
    pub prompts: Option<IgnoredAny>,
    pub queue: Option<IgnoredAny>,
    pub triage: Option<IgnoredAny>,
    pub routing: IgnoredAny,
    pub outbound: Option<IgnoredAny>,
    pub callback: Option<IgnoredAny>,
    pub transfers: Option<IgnoredAny>,
    pub card: Option<IgnoredAny>,
    pub voicemail: Option<IgnoredAny>,
    pub announcements: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Hours {
    pub holidays: Option<HolidayRule>,
    pub always_open: Option<bool>,
    pub mon: Option<Vec<String>>,
    pub tue: Option<Vec<String>>,
    pub wed: Option<Vec<String>>,
    pub thu: Option<Vec<String>>,
    pub fri: Option<Vec<String>>,
    pub sat: Option<Vec<String>>,
    pub sun: Option<Vec<String>>,
    #[serde(default)]
    pub exceptions: Vec<Exception>,
    /// What a closed practice does after its closed prompt.
    pub when_closed: Option<WhenClosed>,
}

/// `[hours] when_closed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum WhenClosed {
    Hangup,
    Voicemail,
}

/// One `[[announcements]]` of a dialplan.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Announcement {
    /// A TOML local date (`2026-12-24`) or a string (`"2026-12-24"`).
    pub from: toml::Value,
    pub to: Option<toml::Value>,
    pub file: String,
    pub mode: Option<permanence_types::AnnouncementMode>,
    #[serde(default)]
    pub label: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Exception {
    /// A TOML local date (`2026-08-03`) or a string (`"2026-08-03"`).
    pub from: toml::Value,
    pub to: Option<toml::Value>,
    #[serde(default)]
    pub hours: Vec<String>,
    #[serde(default)]
    pub label: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Prompts {
    pub greeting: Option<String>,
    pub hold: Option<String>,
    pub closed: Option<String>,
    pub voicemail: Option<String>,
    pub callback: Option<String>,
    pub triage: Option<String>,
    /// `[prompts.en]`: the same keys, English recordings.
    pub en: Option<Box<Prompts>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Queue {
    pub announce_position: Option<bool>,
    pub announce_wait: Option<bool>,
    pub announce_every_seconds: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Triage {
    pub timeout_seconds: Option<i64>,
    /// A string (`"2"`) or an integer (`2`).
    pub default: Option<toml::Value>,
    pub options: Vec<TriageOption>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TriageOption {
    /// A string (`"1"`, `"*"`) or an integer (`1`).
    pub digit: toml::Value,
    pub label: String,
    pub priority: Option<i64>,
    #[serde(default)]
    pub skills: BTreeMap<String, i64>,
    pub route_to: Option<String>,
    pub language: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Routing {
    #[serde(default)]
    pub dedicated: Vec<String>,
    pub priority: Option<i64>,
    pub max_wait_seconds: i64,
    pub wrap_up_seconds: Option<i64>,
    pub ring_timeout_seconds: Option<i64>,
    pub steps: Vec<Step>,
    pub overflow: Overflow,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Step {
    pub after_seconds: i64,
    #[serde(default)]
    pub dedicated: bool,
    pub pool: Option<String>,
    pub skill: Option<String>,
    pub min_level: Option<i64>,
    pub language: Option<String>,
}

/// `routing.overflow.action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OverflowAction {
    Voicemail,
    Callback,
    Pool,
    Hangup,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Overflow {
    pub action: OverflowAction,
    pub pool: Option<String>,
}

/// `[outbound]` of a dialplan.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PracticeOutbound {
    pub code: Option<String>,
    pub caller_id: Option<String>,
    pub allow: Option<Vec<String>>,
    pub allow_numbers: Option<Vec<String>>,
}

/// One `[[transfers]]` of a dialplan. The code is a string only (an
/// integer would lose leading zeros, like `outbound.code`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Transfer {
    pub code: String,
    pub label: String,
    pub number: Option<String>,
    pub agent: Option<String>,
    pub pool: Option<String>,
}

/// `[callback]` of a dialplan.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Callback {
    pub offer: Option<bool>,
    /// A string (`"2"`) or an integer (`2`).
    pub digit: Option<toml::Value>,
    pub offer_after_seconds: Option<i64>,
    pub within_minutes: Option<i64>,
    pub max_attempts: Option<i64>,
    pub retry_minutes: Option<i64>,
}

/// `[voicemail]` of a dialplan.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Voicemail {
    #[serde(default)]
    pub email: Vec<String>,
}

/// `[card]` of a dialplan. The entries are deserialized one by one (see
/// [`CardEntry`]), so that a broken entry does not hide the next ones.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(crate) struct Card {
    pub summary: String,
    pub entries: Option<IgnoredAny>,
}

/// One `[[card.entries]]` of a dialplan.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CardEntry {
    pub label: String,
    pub text: String,
}
