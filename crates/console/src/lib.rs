//! The telesecretary web console, server side.
//!
//! Served by the engine on its HTTP listener, under `/console`:
//!
//! - `GET /console`: the page; `GET /console/assets/{file}`: its script,
//!   style sheet and the vendored SIP library (a fixed list, embedded in
//!   the binary: see [`assets`]);
//! - `POST /console/api/login` (`{"username","password"}`) and
//!   `POST /console/api/logout`;
//! - `GET /console/api/me` (the agent, their CSRF token, the SIP over
//!   WebSocket settings, the practices they serve with their cards,
//!   colleagues and pools: [`Me`]);
//! - `GET /console/api/state` ([`StateView`]) and `POST /console/api/state`
//!   (`{"action":"pause","reason":"..."}`, `unpause`, `login`, `logout`);
//! - `GET /console/api/callbacks?practice=ID` ([`CallbackItem`]s of a
//!   practice the agent serves) and `POST
//!   /console/api/callbacks/{key}/handled`;
//! - `GET /console/api/today` ([`Today`]);
//! - `GET /console/api/events`: server-sent events `state`, `callbacks` and
//!   `today`, pushed from the dispatcher's events ([`ConsoleEvent`]), with
//!   a keep-alive comment every 15 s.
//!
//! Every API call needs the session cookie (401 `{"error":"unauthenticated"}`
//! otherwise) and every POST but the login the session's CSRF token in
//! `X-CSRF-Token` (403 `{"error":"csrf"}`). Logins and sessions are the
//! sans-IO [`core`]; the engine implements [`ConsoleBackend`].

#![forbid(unsafe_code)]

pub mod assets;
pub mod core;
mod events;
mod router;

pub use crate::core::{Credentials, SessionSettings};
pub use permanence_http::{AgentAction, CallbackRefused};
pub use router::{router, ConsoleSettings, COOKIE};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use tokio::sync::broadcast;

/// Who the agent is, as `/me` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// Username (the SIP user too).
    pub username: String,
    /// Name shown to colleagues.
    pub display_name: String,
    /// Languages spoken (`fr`, `en`).
    pub languages: Vec<String>,
}

/// How the page's softphone reaches the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SipInfo {
    /// SIP over WebSocket URL (`ws://127.0.0.1:5066`, `wss://` under
    /// TLS); `None` when no WebSocket listener is configured.
    pub ws_url: Option<String>,
    /// The agent's SIP URI (`sip:alice@127.0.0.1`).
    pub uri: String,
    /// The digest realm.
    pub realm: String,
}

/// One labelled entry of a practice card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardEntry {
    /// Label (`Urgences`).
    pub label: String,
    /// Instructions.
    pub text: String,
}

/// A practice's card: the telesecretary's instructions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    /// Free text.
    pub summary: String,
    /// Labelled entries, in the dialplan's order.
    pub entries: Vec<CardEntry>,
}

/// A transfer target of a practice (what `session.refer` is given).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// The code to transfer to (`sip:<code>@host`).
    pub code: String,
    /// What the agent sees.
    pub label: String,
}

/// A practice the agent serves, with what they need on a call for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PracticeInfo {
    /// Practice id (`X-Permanence-Practice`).
    pub id: String,
    /// Name.
    pub name: String,
    /// Specialty.
    pub specialty: String,
    /// Code for outbound calls (`*8<code>*<number>`), if any.
    pub outbound_code: Option<String>,
    /// Number presented on outbound calls, if any.
    pub caller_id: Option<String>,
    /// The card, if the dialplan has one.
    pub card: Option<Card>,
    /// Opening hours today in the practice's zone (`08:00-12:00,
    /// 14:00-19:00`, `fermé`, `24h/24`).
    pub hours_today: String,
    /// Transfer targets.
    pub transfers: Vec<Transfer>,
}

/// Another agent (a transfer target).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Colleague {
    /// Username.
    pub username: String,
    /// Display name.
    pub display_name: String,
}

/// An agent pool (a transfer target).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolInfo {
    /// Pool id.
    pub id: String,
    /// Name.
    pub name: String,
}

/// Everything `/me` shows but the CSRF token, from the backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// The agent.
    pub agent: AgentInfo,
    /// Softphone settings.
    pub sip: SipInfo,
    /// Practices the agent serves (the rule of outbound calls).
    pub practices: Vec<PracticeInfo>,
    /// The other agents.
    pub colleagues: Vec<Colleague>,
    /// Agent pools.
    pub pools: Vec<PoolInfo>,
}

/// The body of `GET /console/api/me`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    /// The agent.
    pub agent: AgentInfo,
    /// The session's CSRF token.
    pub csrf: String,
    /// Softphone settings.
    pub sip: SipInfo,
    /// Practices the agent serves.
    pub practices: Vec<PracticeInfo>,
    /// The other agents.
    pub colleagues: Vec<Colleague>,
    /// Agent pools.
    pub pools: Vec<PoolInfo>,
}

/// An agent's dispatcher state, as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateView {
    /// `available`, `paused`, `wrap_up`, `ringing`, `on_call`,
    /// `logged_out` or `unreachable` (logged in, no softphone answering).
    pub state: String,
    /// Pause reason, when paused (or pausing after the call).
    pub reason: Option<String>,
    /// Seconds of wrap-up left, in wrap-up.
    pub wrap_up_remaining_s: Option<u64>,
    /// A softphone (desk or browser) is registered and answering.
    pub registered: bool,
}

/// A pending callback request of a practice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackItem {
    /// The request's key (what `handled` takes).
    pub key: String,
    /// Practice id.
    pub practice: String,
    /// The number to call back, in clear (the agent calls it).
    pub number: String,
    /// When the patient asked (RFC 3339).
    pub requested_at: String,
    /// When they should have been called back by (RFC 3339).
    pub deadline: String,
    /// Tries made.
    pub attempts: u32,
    /// The caller's triage choice (its label), if any.
    pub triage: Option<String>,
    /// `pending` (waiting for a try) or `trying` (an agent is ringing or
    /// calling).
    pub state: String,
}

/// The agent's own figures since local midnight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Today {
    /// Calls answered (ended).
    pub calls: u64,
    /// Average talk time of those calls, seconds.
    pub handle_seconds_avg: Option<u64>,
    /// Callback requests completed or marked handled by the agent.
    pub callbacks_done: u64,
    /// Outbound calls placed (refused ones not counted).
    pub outbound_calls: u64,
}

/// Something a console may want to show again, published by the engine
/// from the dispatcher's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleEvent {
    /// The agent's state may have changed.
    State {
        /// The agent.
        agent: String,
    },
    /// A practice's callback requests changed.
    Callbacks {
        /// The practice.
        practice: String,
    },
    /// The agent's figures of the day changed.
    Today {
        /// The agent.
        agent: String,
    },
}

/// How an audited console action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOutcome {
    /// Done.
    Ok,
    /// Refused (bad credentials, throttled).
    Refused,
}

/// A console action to audit (never with a password or a token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleAudit<'a> {
    /// The agent, when known (a failed login for an unknown name: `None`).
    pub agent: Option<&'a str>,
    /// `console.login`, `console.logout`.
    pub action: &'static str,
    /// Where from.
    pub source: IpAddr,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// More (`throttled 30 s`).
    pub detail: Option<String>,
}

/// What the engine provides to the console. Agent actions and closing a
/// callback request are audited by the backend (as the agent); logins and
/// logouts through [`ConsoleBackend::audit`].
#[async_trait::async_trait]
pub trait ConsoleBackend: Send + Sync + 'static {
    /// Engine time (sessions and throttles run on it).
    fn now(&self) -> DateTime<Utc>;
    /// The stored credentials of agent `username`; `None` if there is no
    /// such agent.
    fn credentials(&self, username: &str) -> Option<Credentials>;
    /// The agent's profile; `None` if the agent is gone (reload).
    async fn profile(&self, agent: &str) -> Option<Profile>;
    /// The agent's dispatcher state.
    async fn state(&self, agent: &str) -> StateView;
    /// Applies a state change for the agent (the same dispatcher input as
    /// `*21`/`*22` and the admin API), audited; `Err` with the reason.
    async fn act(&self, agent: &str, source: IpAddr, action: AgentAction) -> Result<(), String>;
    /// Whether the agent serves the practice (the rule of outbound
    /// calls).
    fn serves(&self, agent: &str, practice: &str) -> bool;
    /// The open callback requests of a practice, in place order.
    async fn callbacks(&self, practice: &str) -> Vec<CallbackItem>;
    /// Marks a callback request handled by the agent (audited). A request
    /// of a practice the agent does not serve is
    /// [`CallbackRefused::Unknown`].
    async fn callback_handled(
        &self,
        agent: &str,
        source: IpAddr,
        key: &str,
    ) -> Result<(), CallbackRefused>;
    /// The agent's figures since local midnight.
    async fn today(&self, agent: &str) -> Today;
    /// A new subscription to console events.
    fn subscribe(&self) -> broadcast::Receiver<ConsoleEvent>;
    /// Audits a login or logout.
    fn audit(&self, entry: ConsoleAudit<'_>);
}
