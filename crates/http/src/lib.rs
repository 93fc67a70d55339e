//! The HTTP side of Permanence.
//!
//! - `GET /metrics`: Prometheus text exposition (no authentication: bind
//!   the HTTP address to a private interface);
//! - `GET /healthz`: JSON `{"status": ..., "records": ..., "draining": ...}`;
//!   `200` with status `ok`, or `503` with status `draining` while the
//!   engine drains, `not ready`, or `degraded` while the call records store
//!   cannot write (`records` then says why, with `records_since`,
//!   `records_last_failure_at` and `records_backlog`; it is `"ok"`
//!   otherwise). See [`Health`];
//! - the admin API, JSON, for authenticated users (`Authorization: Bearer
//!   <token>`; the engine checks the token, throttles guessing and audits),
//!   each route open from a [`Role`] up:
//!   - viewer: `GET /api/queues`, `GET /api/agents`, `GET /api/calls`,
//!     `GET /api/callbacks?practice=ID` (open callback requests and the
//!     latest closed ones, see [`CallbacksView`]; patients' numbers masked
//!     below the supervisor role), `GET
//!     /api/figures?practice=ID&since=RFC3339&until=RFC3339` (the
//!     practice's calls over the period, from the call records, as the
//!     metrics count them: see [`FiguresView`]), `GET
//!     /api/report?practice=ID&month=YYYY-MM` (or `week=YYYY-Www`;
//!     `format=html|csv|json`, default html: the practice's report, see
//!     [`ReportQuery`]);
//!   - supervisor: `POST /api/agents/{agent}/pause` (body
//!     `{"reason": "..."}`, optional), `/unpause`, `/login`, `/logout`;
//!     `POST /api/callbacks/{key}/cancel` and `/handled` (404 for an
//!     unknown request, 409 when it cannot be closed now);
//!   - admin: `POST /api/reload` (reload configuration and dialplans),
//!     `POST /api/drain` (stop taking calls, exit when they are done),
//!     `GET /api/audit?limit=N` (the audit log, newest first).
//!
//!   Answers: 401 without a valid token, 429 while the source is blocked
//!   after wrong tokens, 403 below the route's role, 404 when no user is
//!   configured at all.
//!
//! The engine implements [`Backend`]; this crate knows nothing of SIP.

#![forbid(unsafe_code)]

pub mod tls;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub use permanence_types::Role;

/// Who made a request, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// The user's name (in the audit log).
    pub name: String,
    /// What they may do.
    pub role: Role,
}

/// Why a request was not let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No user is configured: the admin API is off (404).
    Disabled,
    /// Missing or wrong token (401).
    Unauthorized,
    /// The source is blocked after wrong tokens (429).
    Throttled {
        /// Seconds before it may try again.
        retry_after_s: u64,
    },
}

/// One audit entry, as `GET /api/audit` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditView {
    /// When (RFC 3339).
    pub at: String,
    /// Who.
    pub actor: String,
    /// Their role, if known.
    pub role: Option<String>,
    /// What.
    pub action: String,
    /// On what.
    pub target: Option<String>,
    /// From where.
    pub source: Option<String>,
    /// `ok`, `refused`, `failed`.
    pub outcome: String,
    /// More.
    pub detail: Option<String>,
}

/// One practice queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueView {
    /// Practice id.
    pub practice: String,
    /// Practice name.
    pub name: String,
    /// Open now.
    pub open: bool,
    /// Calls waiting (not ringing).
    pub waiting: u32,
    /// Calls ringing a telesecretary.
    pub ringing: u32,
    /// Oldest wait, seconds.
    pub oldest_wait_s: Option<f64>,
    /// Estimated wait of a new call, seconds.
    pub estimated_wait_s: Option<f64>,
    /// Agents who could take its calls now.
    pub agents_dispatchable: u32,
    /// Agents logged in and in shift for it.
    pub agents_staffed: u32,
}

/// One telesecretary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentView {
    /// User name.
    pub agent: String,
    /// Display name.
    pub display_name: String,
    /// Dispatcher state (`available`, `offered`, `on-call`, `wrap-up`,
    /// `paused`, `logged-out`).
    pub state: String,
    /// Pause reason.
    pub pause_reason: Option<String>,
    /// Inside a shift window.
    pub in_shift: bool,
    /// Softphone registered and answering.
    pub reachable: bool,
    /// What the agent is doing, as the metrics count it (the `state` label
    /// of `permanence_agents`): `logged_out`, `unreachable` (free but no
    /// softphone answers), `available`, `offered`, `on_call`, `wrap_up`,
    /// `paused`.
    #[serde(default)]
    pub presence: String,
    /// Registered contacts.
    pub contacts: u32,
    /// Consecutive unanswered offers.
    pub strikes: u32,
}

/// One call in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallView {
    /// Call id (as in call records).
    pub call_id: String,
    /// Practice id.
    pub practice: String,
    /// Caller number, masked.
    pub caller: String,
    /// Phase (`greeting`, `triage`, `queued`, `ringing`, `talking`, ...).
    pub phase: String,
    /// Telesecretary ringing or talking.
    pub agent: Option<String>,
    /// Seconds since the call arrived.
    pub age_s: f64,
    /// Seconds waiting in queue (until answered), if queued.
    pub wait_s: Option<f64>,
    /// Position in the practice queue (1 = next), if waiting.
    pub position: Option<u32>,
}

/// One callback request, as `GET /api/callbacks` lists it. Times are
/// RFC 3339 (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackView {
    /// The request's key (what `cancel` and `handled` take).
    pub key: String,
    /// Practice id.
    pub practice: String,
    /// The number to call back: in clear for a supervisor or an admin
    /// (they call the patient), masked for a viewer.
    pub number: String,
    /// `caller` (asked from the queue) or `overflow` (the queue overflowed
    /// to a callback).
    pub origin: String,
    /// Open: `waiting` (for its next try), `queued`, `offered`, `dialling`;
    /// closed: `completed`, `failed`, `cancelled`, `handled`.
    pub status: String,
    /// When the patient asked (or the queue overflowed).
    pub requested_at: String,
    /// When the patient's call joined the queue: the request's place.
    pub joined_at: String,
    /// When the patient should have been called back by.
    pub deadline_at: String,
    /// Seconds from now to the deadline (for a closed request, from its
    /// closing); negative past it.
    pub seconds_to_deadline: i64,
    /// Tries made so far.
    pub attempts: u32,
    /// When a waiting request goes back to the queue.
    pub next_attempt_at: Option<String>,
    /// How the last try went (`answered`, `no-answer`, `busy`, `failed`,
    /// `refused`).
    pub last_result: Option<String>,
    /// The telesecretary of the current (else the last) offer or try.
    pub agent: Option<String>,
    /// When a closed request was closed; `None` while open.
    pub completed_at: Option<String>,
}

/// `GET /api/callbacks`: the open callback requests (in place order) and
/// the latest closed ones (most recently requested first).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CallbacksView {
    /// Open requests, from the engine.
    pub open: Vec<CallbackView>,
    /// The latest closed requests (at most [`RECENT_CALLBACKS`]), from the
    /// call records store.
    pub recent: Vec<CallbackView>,
}

/// How many closed callback requests `GET /api/callbacks` lists.
pub const RECENT_CALLBACKS: usize = 50;

/// An operator closing a callback request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallbackAction {
    /// Cancel it: nobody calls the patient back.
    Cancel,
    /// Mark it handled (the patient was reached by other means), by the
    /// requesting user.
    Handled,
}

impl CallbackAction {
    /// The action's name in the audit log (`callback.cancel`,
    /// `callback.handled`).
    pub fn audit_name(self) -> &'static str {
        match self {
            CallbackAction::Cancel => "callback.cancel",
            CallbackAction::Handled => "callback.handled",
        }
    }

    /// The action of a `POST /api/callbacks/{key}/{action}` path.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "cancel" => Some(CallbackAction::Cancel),
            "handled" => Some(CallbackAction::Handled),
            _ => None,
        }
    }
}

/// Why a callback request was not closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackRefused {
    /// No such request (404).
    #[error("{0}")]
    Unknown(String),
    /// The request exists but cannot be closed now: already closed, or a
    /// try is in progress (409).
    #[error("{0}")]
    Conflict(String),
}

/// Which figures `GET /api/figures` returns: `practice` (required), the
/// calls received from `since` (RFC 3339; default: every call still
/// retained) until `until` (RFC 3339, excluded; default: now).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FiguresQuery {
    /// The practice id.
    #[serde(default)]
    pub practice: String,
    /// Start of the period (calls received at or after it).
    pub since: Option<String>,
    /// End of the period (calls received before it).
    pub until: Option<String>,
}

/// A practice's call figures over a period, computed from the call records
/// with the same definition as the `permanence_calls_*_total` metrics:
/// `offered = answered + sum(abandoned) + sum(overflowed) + failed` (the
/// label values are the metrics').
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FiguresView {
    /// The practice id.
    pub practice: String,
    /// Start of the period, RFC 3339.
    pub since: String,
    /// End of the period (excluded), RFC 3339.
    pub until: String,
    /// Calls that reached the open practice and have ended.
    pub offered: u64,
    /// Offered calls someone answered.
    pub answered: u64,
    /// Offered calls abandoned before an answer, by phase (`greeting`,
    /// `triage`, `route`, `queue`, `ringing`, `callback_prompt`;
    /// `before_queue` for calls recorded before the phases were told
    /// apart).
    pub abandoned: std::collections::BTreeMap<String, u64>,
    /// Offered calls sent to a defined exit, by target (`voicemail`,
    /// `callback`, `hangup`, `callback_request`).
    pub overflowed: std::collections::BTreeMap<String, u64>,
    /// Offered calls ended by a technical failure before an answer.
    pub failed: u64,
    /// Not offered: closed-hours calls.
    pub closed: u64,
    /// Not offered: callers gone before the engine answered.
    pub unanswered: u64,
    /// Not offered: calls refused at the door.
    pub rejected: u64,
    /// Calls in progress (or cut by a crash), counted nowhere else.
    pub in_progress: u64,
    /// `answered / offered`, `None` without offered calls.
    pub pickup_rate: Option<f64>,
}

/// Which report `GET /api/report` returns: `practice` (required), one of
/// `month` (`YYYY-MM`) or `week` (`YYYY-Www`), in the practice's time
/// zone, and `format` (`html`, `csv` or `json`; default `html`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportQuery {
    /// The practice id.
    #[serde(default)]
    pub practice: String,
    /// A calendar month, `YYYY-MM`.
    pub month: Option<String>,
    /// An ISO week, `YYYY-Www`.
    pub week: Option<String>,
    /// `html`, `csv` or `json`.
    pub format: Option<String>,
}

/// A rendered report: its content type and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportDocument {
    /// `text/html; charset=utf-8`, `text/csv; charset=utf-8` or
    /// `application/json`.
    pub content_type: &'static str,
    /// The suggested file name (`rapport-martin-2025-03.html`).
    pub file_name: String,
    /// The report itself.
    pub body: String,
}

/// Why `GET /api/figures` has no figures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FiguresRefused {
    /// A bad query: no practice, a date that is not RFC 3339 (400).
    #[error("{0}")]
    BadRequest(String),
    /// No such practice (404).
    #[error("{0}")]
    UnknownPractice(String),
    /// The call records cannot be read (503).
    #[error("{0}")]
    Unavailable(String),
}

impl FiguresRefused {
    fn status(&self) -> StatusCode {
        match self {
            FiguresRefused::BadRequest(_) => StatusCode::BAD_REQUEST,
            FiguresRefused::UnknownPractice(_) => StatusCode::NOT_FOUND,
            FiguresRefused::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// An agent control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentAction {
    /// Pause with a reason.
    Pause(String),
    /// End of pause.
    Unpause,
    /// Log in to the queues.
    Login,
    /// Log out of the queues.
    Logout,
}

/// Health of the engine, as `GET /healthz` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Serving.
    pub ok: bool,
    /// Draining: new calls are refused.
    pub draining: bool,
    /// The call records store: `None` while it writes; while it cannot
    /// (calls still flow, their records wait in memory), why. `/healthz`
    /// answers 503 `degraded` meanwhile.
    pub records: Option<Degraded>,
}

/// Why a part of the engine works below par.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Degraded {
    /// The cause, on one line (`write failed: database is locked`).
    pub cause: String,
    /// Since when (RFC 3339), if known.
    pub since: Option<String>,
    /// When the latest attempt failed (RFC 3339), if any.
    pub last_failure_at: Option<String>,
    /// Rows kept in memory meanwhile, waiting to be written.
    pub backlog: u64,
}

impl Health {
    /// The `/healthz` answer: status code and JSON body. Draining and not
    /// ready take precedence over degraded (all three are 503).
    pub fn response(&self) -> (StatusCode, serde_json::Value) {
        let (code, status) = if self.draining {
            (StatusCode::SERVICE_UNAVAILABLE, "draining")
        } else if !self.ok {
            (StatusCode::SERVICE_UNAVAILABLE, "not ready")
        } else if self.records.is_some() {
            (StatusCode::SERVICE_UNAVAILABLE, "degraded")
        } else {
            (StatusCode::OK, "ok")
        };
        let mut body = serde_json::json!({
            "status": status,
            "records": self.records.as_ref().map_or("ok", |d| d.cause.as_str()),
            "draining": self.draining,
        });
        if let (Some(d), Some(obj)) = (&self.records, body.as_object_mut()) {
            obj.insert("records_since".into(), serde_json::json!(d.since));
            obj.insert(
                "records_last_failure_at".into(),
                serde_json::json!(d.last_failure_at),
            );
            obj.insert("records_backlog".into(), serde_json::json!(d.backlog));
        }
        (code, body)
    }
}

/// What the engine provides to the HTTP side.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Prometheus text exposition.
    async fn metrics(&self) -> String;
    /// Health.
    fn health(&self) -> Health;
    /// Practice queues.
    async fn queues(&self) -> Vec<QueueView>;
    /// Telesecretaries.
    async fn agents(&self) -> Vec<AgentView>;
    /// Calls in progress.
    async fn calls(&self) -> Vec<CallView>;
    /// Authenticates a bearer token from `source` (throttling guesses and
    /// auditing failures).
    async fn authenticate(&self, token: Option<&str>, source: IpAddr) -> Result<Principal, Denied>;
    /// Audits a request refused because `who`'s role is below `action`'s.
    async fn forbidden(&self, who: &Principal, source: IpAddr, action: &str);
    /// Applies an agent control for `who`; `Err` with a message if refused.
    async fn agent_action(
        &self,
        who: &Principal,
        source: IpAddr,
        agent: &str,
        action: AgentAction,
    ) -> Result<(), String>;
    /// Reloads the configuration; `Ok(summary)` or `Err(errors)`.
    async fn reload(&self, who: &Principal, source: IpAddr) -> Result<String, String>;
    /// Starts draining.
    async fn drain(&self, who: &Principal, source: IpAddr) -> Result<(), String>;
    /// The latest `limit` audit entries, newest first.
    async fn audit(&self, limit: usize) -> Vec<AuditView>;
    /// Callback requests, of one practice or all: the open ones and the
    /// latest [`RECENT_CALLBACKS`] closed ones; numbers in clear when
    /// `reveal_numbers`, else masked.
    async fn callbacks(&self, practice: Option<&str>, reveal_numbers: bool) -> CallbacksView;
    /// A practice's call figures over a period, from the call records.
    async fn figures(&self, query: &FiguresQuery) -> Result<FiguresView, FiguresRefused>;
    /// A practice's report over a month or a week, from the call records
    /// (refused as unavailable unless the backend makes reports).
    async fn report(&self, query: &ReportQuery) -> Result<ReportDocument, FiguresRefused> {
        let _ = query;
        Err(FiguresRefused::Unavailable(
            "reports are not available".into(),
        ))
    }
    /// Closes a callback request for `who` (audited).
    async fn callback_action(
        &self,
        who: &Principal,
        source: IpAddr,
        key: &str,
        action: CallbackAction,
    ) -> Result<(), CallbackRefused>;
}

/// Errors of the HTTP side.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The listener could not be bound.
    #[error("cannot listen on HTTP {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
}

struct App {
    backend: Arc<dyn Backend>,
}

type AppState = Arc<App>;

/// Lets in the bearer of a valid token whose role is at least `needed` for
/// `action`; otherwise the response to send.
async fn admit(
    app: &App,
    headers: &HeaderMap,
    source: IpAddr,
    needed: Role,
    action: &str,
) -> Result<Principal, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let who = match app.backend.authenticate(token, source).await {
        Ok(p) => p,
        Err(Denied::Disabled) => {
            return Err((
                StatusCode::NOT_FOUND,
                "admin API disabled (no http.admin_token nor [[http.users]] configured)\n",
            )
                .into_response())
        }
        Err(Denied::Unauthorized) => {
            return Err((
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "missing or wrong bearer token\n",
            )
                .into_response())
        }
        Err(Denied::Throttled { retry_after_s }) => {
            return Err((
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, retry_after_s.to_string())],
                "too many wrong tokens from this address: try again later\n",
            )
                .into_response())
        }
    };
    if who.role < needed {
        app.backend.forbidden(&who, source, action).await;
        return Err((
            StatusCode::FORBIDDEN,
            format!("{action} needs the {} role\n", needed.as_str()),
        )
            .into_response());
    }
    Ok(who)
}

async fn metrics(State(app): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.backend.metrics().await,
    )
        .into_response()
}

async fn healthz(State(app): State<AppState>) -> Response {
    let (code, body) = app.backend.health().response();
    (code, Json(body)).into_response()
}

type Source = ConnectInfo<PeerAddr>;

/// The address a request came from (over plain HTTP or HTTPS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

impl PeerAddr {
    fn ip(&self) -> IpAddr {
        self.0.ip()
    }
}

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tls::TlsListener>>
    for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tls::TlsListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

async fn queues(
    State(app): State<AppState>,
    ConnectInfo(src): Source,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = admit(&app, &headers, src.ip(), Role::Viewer, "queues").await {
        return r;
    }
    Json(app.backend.queues().await).into_response()
}

async fn agents(
    State(app): State<AppState>,
    ConnectInfo(src): Source,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = admit(&app, &headers, src.ip(), Role::Viewer, "agents").await {
        return r;
    }
    Json(app.backend.agents().await).into_response()
}

async fn calls(
    State(app): State<AppState>,
    ConnectInfo(src): Source,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = admit(&app, &headers, src.ip(), Role::Viewer, "calls").await {
        return r;
    }
    Json(app.backend.calls().await).into_response()
}

#[derive(Debug, Default, Deserialize)]
struct AuditQuery {
    limit: Option<usize>,
}

async fn audit(
    State(app): State<AppState>,
    ConnectInfo(src): Source,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> Response {
    if let Err(r) = admit(&app, &headers, src.ip(), Role::Admin, "audit").await {
        return r;
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    Json(app.backend.audit(limit).await).into_response()
}

#[derive(Debug, Default, Deserialize)]
struct PauseBody {
    reason: Option<String>,
}

async fn agent_action(
    State(app): State<AppState>,
    ConnectInfo(src): Source,
    headers: HeaderMap,
    Path((agent, action)): Path<(String, String)>,
    body: Option<Json<PauseBody>>,
) -> Response {
    let who = match admit(&app, &headers, src.ip(), Role::Supervisor, "agent control").await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let action = match action.as_str() {
        "pause" => AgentAction::Pause(
            body.and_then(|Json(b)| b.reason)
                .filter(|r| !r.trim().is_empty())
                .unwrap_or_else(|| "pause".to_string()),
        ),
        "unpause" => AgentAction::Unpause,
        "login" => AgentAction::Login,
        "logout" => AgentAction::Logout,
        _ => return (StatusCode::NOT_FOUND, "unknown agent action\n").into_response(),
    };
    match app
        .backend
        .agent_action(&who, src.ip(), &agent, action)
        .await
    {
        Ok(()) => Json(serde_json::json!({ "ok": true })).into_response(),
        Err(e) => (
            StatusCode::CONFLICT,
            Json(serde_json::json!({ "ok": false, "error": e })),
        )
            .into_response(),
    }
}

async fn figures(
    State(app): State<AppState>,
    ConnectInfo(src): Source,
    headers: HeaderMap,
    Query(q): Query<FiguresQuery>,
) -> Response {
    if let Err(r) = admit(&app, &headers, src.ip(), Role::Viewer, "figures").await {
        return r;
    }
    match app.backend.figures(&q).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => (
            e.status(),
            Json(serde_json::json!({ "error": e.to_string() })),
        )
            .into_response(),
    }
}

async fn report(
    State(app): State<AppState>,
    ConnectInfo(src): Source,
    headers: HeaderMap,
    Query(q): Query<ReportQuery>,
) -> Response {
    if let Err(r) = admit(&app, &headers, src.ip(), Role::Viewer, "report").await {
        return r;
    }
    match app.backend.report(&q).await {
        Ok(doc) => {
            let disposition = format!("inline; filename=\"{}\"", doc.file_name);
            (
                [
                    (header::CONTENT_TYPE, doc.content_type.to_string()),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                doc.body,
            )
                .into_response()
        }
        Err(e) => (
            e.status(),
            Json(serde_json::json!({ "error": e.to_string() })),
        )
            .into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
struct CallbacksQuery {
    practice: Option<String>,
}

async fn callbacks(
    State(app): State<AppState>,
    ConnectInfo(src): Source,
    headers: HeaderMap,
    Query(q): Query<CallbacksQuery>,
) -> Response {
    let who = match admit(&app, &headers, src.ip(), Role::Viewer, "callbacks").await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let practice = q.practice.filter(|p| !p.is_empty());
    // A supervisor calls the patient back: they see the number.
    let reveal = who.role >= Role::Supervisor;
    Json(app.backend.callbacks(practice.as_deref(), reveal).await).into_response()
}

async fn callback_action(
    State(app): State<AppState>,
    ConnectInfo(src): Source,
    headers: HeaderMap,
    Path((key, action)): Path<(String, String)>,
) -> Response {
    let parsed = CallbackAction::parse(&action);
    let name = parsed.map_or("callback control", CallbackAction::audit_name);
    let who = match admit(&app, &headers, src.ip(), Role::Supervisor, name).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(action) = parsed else {
        return (StatusCode::NOT_FOUND, "unknown callback action\n").into_response();
    };
    match app
        .backend
        .callback_action(&who, src.ip(), &key, action)
        .await
    {
        Ok(()) => Json(serde_json::json!({ "ok": true })).into_response(),
        Err(e) => {
            let code = match e {
                CallbackRefused::Unknown(_) => StatusCode::NOT_FOUND,
                CallbackRefused::Conflict(_) => StatusCode::CONFLICT,
            };
            (
                code,
                Json(serde_json::json!({ "ok": false, "error": e.to_string() })),
            )
                .into_response()
        }
    }
}

async fn reload(
    State(app): State<AppState>,
    ConnectInfo(src): Source,
    headers: HeaderMap,
) -> Response {
    let who = match admit(&app, &headers, src.ip(), Role::Admin, "reload").await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match app.backend.reload(&who, src.ip()).await {
        Ok(summary) => Json(serde_json::json!({ "ok": true, "summary": summary })).into_response(),
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(serde_json::json!({ "ok": false, "errors": e })),
        )
            .into_response(),
    }
}

async fn drain(
    State(app): State<AppState>,
    ConnectInfo(src): Source,
    headers: HeaderMap,
) -> Response {
    let who = match admit(&app, &headers, src.ip(), Role::Admin, "drain").await {
        Ok(p) => p,
        Err(r) => return r,
    };
    match app.backend.drain(&who, src.ip()).await {
        Ok(()) => Json(serde_json::json!({ "ok": true })).into_response(),
        Err(e) => (
            StatusCode::CONFLICT,
            Json(serde_json::json!({ "ok": false, "error": e })),
        )
            .into_response(),
    }
}

/// The router (serve it with the peer's address as `ConnectInfo`, as
/// [`serve`] does).
pub fn router(backend: Arc<dyn Backend>) -> Router {
    let app = Arc::new(App { backend });
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/api/queues", get(queues))
        .route("/api/agents", get(agents))
        .route("/api/calls", get(calls))
        .route("/api/agents/{agent}/{action}", post(agent_action))
        .route("/api/reload", post(reload))
        .route("/api/drain", post(drain))
        .route("/api/audit", get(audit))
        .route("/api/figures", get(figures))
        .route("/api/report", get(report))
        .route("/api/callbacks", get(callbacks))
        .route("/api/callbacks/{key}/{action}", post(callback_action))
        .with_state(app)
}

/// Binds `addr` and serves until `cancel`, over HTTPS when `tls` is given
/// (plain HTTP otherwise); returns the bound address and the server task.
pub async fn serve(
    addr: SocketAddr,
    backend: Arc<dyn Backend>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    cancel: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), HttpError> {
    serve_router(addr, router(backend), tls, cancel).await
}

/// As [`serve`], for any router (this crate's merged with others, such as
/// the web console's); its handlers get the peer as
/// `ConnectInfo<PeerAddr>`.
pub async fn serve_router(
    addr: SocketAddr,
    app: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    cancel: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), HttpError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| HttpError::Bind { addr, source })?;
    let app = app.into_make_service_with_connect_info::<PeerAddr>();
    let shutdown = async move { cancel.cancelled().await };
    let task = match tls {
        None => tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::warn!(error = %e, "HTTP server stopped");
            }
        }),
        Some(acceptor) => {
            let listener = tls::TlsListener::new(listener, acceptor);
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
                {
                    tracing::warn!(error = %e, "HTTPS server stopped");
                }
            })
        }
    };
    Ok((local, task))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Fake {
        actions: Mutex<Vec<(String, AgentAction)>>,
        records: Mutex<Option<Degraded>>,
        draining: std::sync::atomic::AtomicBool,
        /// Tokens and their principals; none: the API is disabled.
        tokens: Vec<(&'static str, Principal)>,
        forbidden: Mutex<Vec<(String, String)>>,
        callback_actions: Mutex<Vec<(String, String, CallbackAction)>>,
    }

    fn with_tokens() -> Fake {
        let p = |name: &str, role| Principal {
            name: name.into(),
            role,
        };
        Fake {
            tokens: vec![
                ("0123456789abcdef", p("root", Role::Admin)),
                ("viewer-token-0000", p("vera", Role::Viewer)),
            ],
            ..Fake::default()
        }
    }

    #[async_trait::async_trait]
    impl Backend for Fake {
        async fn metrics(&self) -> String {
            "permanence_build_info{version=\"x\"} 1\n".into()
        }
        fn health(&self) -> Health {
            Health {
                ok: true,
                draining: self.draining.load(std::sync::atomic::Ordering::Relaxed),
                records: self.records.lock().map(|r| r.clone()).unwrap_or(None),
            }
        }
        async fn queues(&self) -> Vec<QueueView> {
            vec![QueueView {
                practice: "martin".into(),
                name: "Cabinet du Dr Martin".into(),
                open: true,
                waiting: 2,
                ringing: 1,
                oldest_wait_s: Some(42.0),
                estimated_wait_s: Some(60.0),
                agents_dispatchable: 1,
                agents_staffed: 3,
            }]
        }
        async fn agents(&self) -> Vec<AgentView> {
            vec![]
        }
        async fn calls(&self) -> Vec<CallView> {
            vec![]
        }
        async fn authenticate(
            &self,
            token: Option<&str>,
            _source: IpAddr,
        ) -> Result<Principal, Denied> {
            if self.tokens.is_empty() {
                return Err(Denied::Disabled);
            }
            if token == Some("blocked-token-000") {
                return Err(Denied::Throttled { retry_after_s: 8 });
            }
            self.tokens
                .iter()
                .find(|(t, _)| Some(*t) == token)
                .map(|(_, p)| p.clone())
                .ok_or(Denied::Unauthorized)
        }
        async fn forbidden(&self, who: &Principal, _source: IpAddr, action: &str) {
            if let Ok(mut f) = self.forbidden.lock() {
                f.push((who.name.clone(), action.to_string()));
            }
        }
        async fn audit(&self, limit: usize) -> Vec<AuditView> {
            vec![
                AuditView {
                    at: "2026-12-07T10:00:00Z".into(),
                    actor: "root".into(),
                    role: Some("admin".into()),
                    action: "config.reload".into(),
                    target: None,
                    source: Some("127.0.0.1".into()),
                    outcome: "ok".into(),
                    detail: None,
                };
                limit.min(3)
            ]
        }
        async fn agent_action(
            &self,
            _who: &Principal,
            _source: IpAddr,
            agent: &str,
            action: AgentAction,
        ) -> Result<(), String> {
            if agent == "nobody" {
                return Err("unknown agent".into());
            }
            self.actions
                .lock()
                .map_err(|_| "poisoned".to_string())?
                .push((agent.to_string(), action));
            Ok(())
        }
        async fn reload(&self, _who: &Principal, _source: IpAddr) -> Result<String, String> {
            Err("config/permanence.toml:3: sip.realm: must not be empty".into())
        }
        async fn drain(&self, _who: &Principal, _source: IpAddr) -> Result<(), String> {
            Ok(())
        }
        async fn callbacks(&self, practice: Option<&str>, reveal_numbers: bool) -> CallbacksView {
            let view = CallbackView {
                key: "c1-cb".into(),
                practice: practice.unwrap_or("tilleuls").into(),
                number: if reveal_numbers {
                    "+33612345678"
                } else {
                    "+3361xxxxx78"
                }
                .into(),
                origin: "caller".into(),
                status: "queued".into(),
                requested_at: "2026-12-07T10:00:00Z".into(),
                joined_at: "2026-12-07T09:58:00Z".into(),
                deadline_at: "2026-12-07T11:00:00Z".into(),
                seconds_to_deadline: 3600,
                attempts: 0,
                next_attempt_at: None,
                last_result: None,
                agent: None,
                completed_at: None,
            };
            CallbacksView {
                open: vec![view],
                recent: vec![],
            }
        }
        async fn figures(&self, q: &FiguresQuery) -> Result<FiguresView, FiguresRefused> {
            Err(FiguresRefused::UnknownPractice(q.practice.clone()))
        }
        async fn callback_action(
            &self,
            who: &Principal,
            _source: IpAddr,
            key: &str,
            action: CallbackAction,
        ) -> Result<(), CallbackRefused> {
            match key {
                "c1-cb" => {
                    if let Ok(mut a) = self.callback_actions.lock() {
                        a.push((who.name.clone(), key.to_string(), action));
                    }
                    Ok(())
                }
                "busy-cb" => Err(CallbackRefused::Conflict("being dialled".into())),
                _ => Err(CallbackRefused::Unknown("no such request".into())),
            }
        }
    }

    fn call(
        addr: SocketAddr,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let url = format!("http://{addr}{path}");
        let resp = match (method, body) {
            ("GET", _) => {
                let mut r = agent.get(&url);
                if let Some(t) = token {
                    r = r.header("Authorization", &format!("Bearer {t}"));
                }
                r.call()
            }
            (_, b) => {
                let mut r = agent.post(&url);
                if let Some(t) = token {
                    r = r.header("Authorization", &format!("Bearer {t}"));
                }
                match b {
                    Some(b) => r.content_type("application/json").send(b),
                    None => r.send_empty(),
                }
            }
        };
        match resp {
            Ok(mut r) => (
                r.status().as_u16(),
                r.body_mut().read_to_string().unwrap_or_default(),
            ),
            Err(e) => panic!("request failed: {e}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn routes_and_auth() {
        let fake = Arc::new(with_tokens());
        let cancel = CancellationToken::new();
        let (addr, task) = serve(
            "127.0.0.1:0".parse().expect("addr"),
            fake.clone(),
            None,
            cancel.clone(),
        )
        .await
        .expect("serve");
        let results = tokio::task::spawn_blocking(move || {
            let tok = Some("0123456789abcdef");
            vec![
                call(addr, "GET", "/metrics", None, None),
                call(addr, "GET", "/healthz", None, None),
                call(addr, "GET", "/api/queues", None, None),
                call(addr, "GET", "/api/queues", Some("wrong-token-0000"), None),
                call(addr, "GET", "/api/queues", tok, None),
                call(
                    addr,
                    "POST",
                    "/api/agents/alice/pause",
                    tok,
                    Some(r#"{"reason":"formation"}"#),
                ),
                call(addr, "POST", "/api/agents/alice/unpause", tok, None),
                call(addr, "POST", "/api/agents/nobody/logout", tok, None),
                call(addr, "POST", "/api/agents/alice/dance", tok, None),
                call(addr, "POST", "/api/reload", tok, None),
                call(addr, "GET", "/api/queues", Some("viewer-token-0000"), None),
                call(
                    addr,
                    "POST",
                    "/api/agents/alice/pause",
                    Some("viewer-token-0000"),
                    None,
                ),
                call(addr, "POST", "/api/drain", Some("viewer-token-0000"), None),
                call(
                    addr,
                    "GET",
                    "/api/audit?limit=2",
                    Some("viewer-token-0000"),
                    None,
                ),
                call(addr, "GET", "/api/audit?limit=2", tok, None),
                call(addr, "GET", "/api/agents", Some("blocked-token-000"), None),
            ]
        })
        .await
        .expect("client");
        assert_eq!(results[0].0, 200);
        assert!(results[0].1.contains("permanence_build_info"));
        assert_eq!(results[1].0, 200);
        let health: serde_json::Value = serde_json::from_str(&results[1].1).expect("json");
        assert_eq!(
            health,
            serde_json::json!({"status": "ok", "records": "ok", "draining": false})
        );
        assert_eq!(results[2].0, 401);
        assert_eq!(results[3].0, 401);
        assert_eq!(results[4].0, 200);
        let q: Vec<QueueView> = serde_json::from_str(&results[4].1).expect("json");
        assert_eq!(q[0].practice, "martin");
        assert_eq!(results[5].0, 200);
        assert_eq!(results[6].0, 200);
        assert_eq!(results[7].0, 409);
        assert_eq!(results[8].0, 404);
        assert_eq!(results[9].0, 422);
        assert!(results[9].1.contains("sip.realm"));
        // A viewer reads, and is refused (and audited) above that.
        assert_eq!(results[10].0, 200);
        assert_eq!(results[11].0, 403);
        assert_eq!(results[12].0, 403);
        assert_eq!(results[13].0, 403);
        assert_eq!(results[14].0, 200);
        let audit: Vec<AuditView> = serde_json::from_str(&results[14].1).expect("json");
        assert_eq!(audit.len(), 2);
        assert_eq!(results[15].0, 429);
        assert_eq!(
            fake.forbidden.lock().expect("lock").clone(),
            vec![
                ("vera".to_string(), "agent control".to_string()),
                ("vera".to_string(), "drain".to_string()),
                ("vera".to_string(), "audit".to_string()),
            ]
        );
        let acts = fake.actions.lock().expect("lock").clone();
        assert_eq!(
            acts,
            vec![
                ("alice".to_string(), AgentAction::Pause("formation".into())),
                ("alice".to_string(), AgentAction::Unpause)
            ]
        );
        cancel.cancel();
        let _ = task.await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn healthz_says_degraded_and_why_then_recovers() {
        let fake = Arc::new(Fake::default());
        let cancel = CancellationToken::new();
        let (addr, _task) = serve(
            "127.0.0.1:0".parse().expect("addr"),
            fake.clone(),
            None,
            cancel.clone(),
        )
        .await
        .expect("serve");
        let get = move || {
            tokio::task::spawn_blocking(move || {
                let (code, body) = call(addr, "GET", "/healthz", None, None);
                let v: serde_json::Value = serde_json::from_str(&body).expect("json body");
                (code, v)
            })
        };
        *fake.records.lock().expect("lock") = Some(Degraded {
            cause: "write failed: database is locked".into(),
            since: Some("2025-03-03T08:15:02Z".into()),
            last_failure_at: Some("2025-03-03T08:16:02Z".into()),
            backlog: 42,
        });
        let (code, v) = get().await.expect("client");
        assert_eq!(code, 503);
        assert_eq!(
            v,
            serde_json::json!({
                "status": "degraded",
                "records": "write failed: database is locked",
                "draining": false,
                "records_since": "2025-03-03T08:15:02Z",
                "records_last_failure_at": "2025-03-03T08:16:02Z",
                "records_backlog": 42,
            })
        );
        // Draining takes precedence; the records cause is still shown.
        fake.draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let (code, v) = get().await.expect("client");
        assert_eq!((code, v["status"].as_str()), (503, Some("draining")));
        assert_eq!(v["records"], "write failed: database is locked");
        fake.draining
            .store(false, std::sync::atomic::Ordering::Relaxed);
        // Recovered.
        *fake.records.lock().expect("lock") = None;
        let (code, v) = get().await.expect("client");
        assert_eq!(code, 200);
        assert_eq!(v["status"], "ok");
        assert_eq!(v["records"], "ok");
        cancel.cancel();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn callback_routes_roles_and_answers() {
        let mut fake = with_tokens();
        fake.tokens.push((
            "supervisor-token-0",
            Principal {
                name: "sam".into(),
                role: Role::Supervisor,
            },
        ));
        let fake = Arc::new(fake);
        let cancel = CancellationToken::new();
        let (addr, _task) = serve(
            "127.0.0.1:0".parse().expect("addr"),
            fake.clone(),
            None,
            cancel.clone(),
        )
        .await
        .expect("serve");
        let r = tokio::task::spawn_blocking(move || {
            let viewer = Some("viewer-token-0000");
            let sup = Some("supervisor-token-0");
            vec![
                call(addr, "GET", "/api/callbacks", viewer, None),
                call(addr, "GET", "/api/callbacks?practice=caron", sup, None),
                call(addr, "POST", "/api/callbacks/c1-cb/cancel", viewer, None),
                call(addr, "POST", "/api/callbacks/c1-cb/cancel", sup, None),
                call(addr, "POST", "/api/callbacks/c1-cb/handled", sup, None),
                call(addr, "POST", "/api/callbacks/busy-cb/cancel", sup, None),
                call(addr, "POST", "/api/callbacks/nope/handled", sup, None),
                call(addr, "POST", "/api/callbacks/c1-cb/dance", sup, None),
                call(addr, "GET", "/api/callbacks", None, None),
            ]
        })
        .await
        .expect("client");
        assert_eq!(r[0].0, 200);
        let v: CallbacksView = serde_json::from_str(&r[0].1).expect("json");
        assert_eq!(v.open[0].number, "+3361xxxxx78");
        assert_eq!(v.open[0].practice, "tilleuls");
        assert_eq!(r[1].0, 200);
        let v: CallbacksView = serde_json::from_str(&r[1].1).expect("json");
        assert_eq!(v.open[0].number, "+33612345678");
        assert_eq!(v.open[0].practice, "caron");
        assert_eq!(r[2].0, 403);
        assert_eq!((r[3].0, r[4].0), (200, 200));
        assert_eq!(r[5].0, 409);
        assert!(r[5].1.contains("being dialled"), "{}", r[5].1);
        assert_eq!(r[6].0, 404);
        assert_eq!(r[7].0, 404);
        assert_eq!(r[8].0, 401);
        assert_eq!(
            fake.forbidden.lock().expect("lock").clone(),
            vec![("vera".to_string(), "callback.cancel".to_string())]
        );
        assert_eq!(
            fake.callback_actions.lock().expect("lock").clone(),
            vec![
                (
                    "sam".to_string(),
                    "c1-cb".to_string(),
                    CallbackAction::Cancel
                ),
                (
                    "sam".to_string(),
                    "c1-cb".to_string(),
                    CallbackAction::Handled
                ),
            ]
        );
        cancel.cancel();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn admin_disabled_without_token() {
        let cancel = CancellationToken::new();
        let (addr, _task) = serve(
            "127.0.0.1:0".parse().expect("addr"),
            Arc::new(Fake::default()),
            None,
            cancel.clone(),
        )
        .await
        .expect("serve");
        let r = tokio::task::spawn_blocking(move || {
            (
                call(
                    addr,
                    "GET",
                    "/api/agents",
                    Some("whatever-long-token"),
                    None,
                ),
                call(addr, "GET", "/metrics", None, None),
            )
        })
        .await
        .expect("client");
        assert_eq!(r.0 .0, 404);
        assert_eq!(r.1 .0, 200);
        cancel.cancel();
    }
}
