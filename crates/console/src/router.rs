//! The `/console` routes: the page and its assets, the JSON API, the event
//! stream; the session cookie, the CSRF check and the security headers.

use crate::core::{csrf_ok, Core, Login, SessionInfo, SessionSettings};
use crate::{assets, AuditOutcome, ConsoleAudit, ConsoleBackend, Me};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use permanence_http::{AgentAction, CallbackRefused, PeerAddr};
use serde::Deserialize;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// The session cookie's name.
pub const COOKIE: &str = "permanence_console";

/// The header carrying the CSRF token of a POST.
const CSRF_HEADER: &str = "x-csrf-token";

/// Largest request body (a login or a state change).
const MAX_BODY: usize = 4096;

/// Longest pause reason.
const MAX_REASON: usize = 64;

/// How the console is served.
#[derive(Debug, Clone, Default)]
pub struct ConsoleSettings {
    /// Mark the cookie `Secure` (the listener is HTTPS).
    pub secure_cookie: bool,
    /// The SIP over WebSocket URLs the page may connect to (the CSP's
    /// `connect-src`), e.g. `ws://127.0.0.1:5066`.
    pub ws_urls: Vec<String>,
    /// Sessions and login throttles.
    pub sessions: SessionSettings,
}

/// The console's shared state.
pub(crate) struct Console {
    pub(crate) backend: Arc<dyn ConsoleBackend>,
    pub(crate) core: parking_lot::Mutex<Core>,
    secure: bool,
    lifetime: Duration,
    csp: HeaderValue,
}

pub(crate) type St = Arc<Console>;

/// The `/console` router (serve it with [`PeerAddr`] as `ConnectInfo`,
/// as `permanence_http::serve_router` does; merge it with the admin API's).
pub fn router(backend: Arc<dyn ConsoleBackend>, settings: ConsoleSettings) -> Router {
    let csp = content_security_policy(&settings.ws_urls);
    let console = Arc::new(Console {
        backend,
        secure: settings.secure_cookie,
        lifetime: settings.sessions.lifetime,
        core: parking_lot::Mutex::new(Core::new(settings.sessions)),
        csp,
    });
    Router::new()
        .route("/console", get(page))
        .route("/console/", get(page))
        .route("/console/assets/{file}", get(asset))
        .route("/console/api/login", post(login))
        .route("/console/api/logout", post(logout))
        .route("/console/api/me", get(me))
        .route("/console/api/state", get(state).post(set_state))
        .route("/console/api/callbacks", get(callbacks))
        .route("/console/api/callbacks/{key}/handled", post(handled))
        .route("/console/api/today", get(today))
        .route("/console/api/events", get(crate::events::events))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response_with_state(
            console.clone(),
            security_headers,
        ))
        .with_state(console)
}

/// `default-src 'self'`, the WebSocket URLs, no inline code, no framing.
fn content_security_policy(ws_urls: &[String]) -> HeaderValue {
    let ws: Vec<&str> = ws_urls
        .iter()
        .map(String::as_str)
        .filter(|u| {
            u.bytes()
                .all(|b| b.is_ascii_graphic() && b != b';' && b != b',')
        })
        .collect();
    let connect = if ws.is_empty() {
        "'self'".to_string()
    } else {
        format!("'self' {}", ws.join(" "))
    };
    let policy = format!(
        "default-src 'self'; connect-src {connect}; media-src 'self' blob:; img-src 'self' data:; \
         style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    );
    HeaderValue::from_str(&policy)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"))
}

/// Every console answer: CSP, no sniffing, no referrer, no framing, and
/// `no-store` unless the handler chose (the assets).
async fn security_headers(State(c): State<St>, mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, c.csp.clone());
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// A JSON error body `{"error": what}`.
pub(crate) fn error(code: StatusCode, what: &str) -> Response {
    (code, Json(serde_json::json!({ "error": what }))).into_response()
}

async fn page() -> Response {
    let a = assets::INDEX;
    ([(header::CONTENT_TYPE, a.content_type)], a.body).into_response()
}

async fn asset(Path(file): Path<String>) -> Response {
    match assets::find(&file) {
        Some(a) => (
            [
                (header::CONTENT_TYPE, a.content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            a.body,
        )
            .into_response(),
        None => error(StatusCode::NOT_FOUND, "not_found"),
    }
}

/// The session cookie's value, if the request has one.
fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim())
}

/// Why a request was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// No valid session: 401 `{"error":"unauthenticated"}`.
    Unauthenticated,
    /// A POST without the session's CSRF token, or from another site: 403
    /// `{"error":"csrf"}`.
    Csrf,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::Unauthenticated => error(StatusCode::UNAUTHORIZED, "unauthenticated"),
            Refused::Csrf => error(StatusCode::FORBIDDEN, "csrf"),
        }
    }
}

impl Console {
    /// The request's valid session (restarting its idle timer) and token.
    pub(crate) fn authed(&self, headers: &HeaderMap) -> Result<(SessionInfo, String), Refused> {
        let now = self.backend.now();
        cookie_token(headers)
            .and_then(|t| Some((self.core.lock().session(t, now)?, t.to_string())))
            .ok_or(Refused::Unauthenticated)
    }

    /// As [`Console::authed`], for a POST: the CSRF token must match too,
    /// and the request must not come from another site.
    fn authed_post(&self, headers: &HeaderMap) -> Result<(SessionInfo, String), Refused> {
        let (session, token) = self.authed(headers)?;
        let presented = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if cross_site(headers) || !csrf_ok(&session, presented) {
            return Err(Refused::Csrf);
        }
        Ok((session, token))
    }

    fn cookie(&self, token: &str, max_age: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!(
            "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/console; Max-Age={max_age}{secure}"
        )
    }
}

/// Whether the browser says the request comes from another site: an
/// `Origin` other than the `Host`, or `Sec-Fetch-Site: cross-site`.
fn cross_site(headers: &HeaderMap) -> bool {
    let get = |h| headers.get(h).and_then(|v: &HeaderValue| v.to_str().ok());
    if get(header::HeaderName::from_static("sec-fetch-site")) == Some("cross-site") {
        return true;
    }
    match (get(header::ORIGIN), get(header::HOST)) {
        (None, _) => false,
        (Some(origin), Some(host)) => {
            let authority = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            authority != Some(host)
        }
        (Some(_), None) => true,
    }
}

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
}

async fn login(
    State(c): State<St>,
    ConnectInfo(src): ConnectInfo<PeerAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if cross_site(&headers) {
        return error(StatusCode::FORBIDDEN, "csrf");
    }
    let Ok(b) = serde_json::from_slice::<LoginBody>(&body) else {
        return error(StatusCode::BAD_REQUEST, "bad_request");
    };
    let source = src.0.ip();
    let stored = c.backend.credentials(&b.username);
    let now = c.backend.now();
    let outcome = c.core.lock().login(
        &b.username,
        &b.password,
        stored.as_ref(),
        source,
        now,
        &mut rand::rng(),
    );
    let known = stored.as_ref().map(|s| s.username.as_str());
    match outcome {
        Login::Ok(s) => {
            tracing::info!(event = "console.login", agent = %s.agent, %source, "agent logged in to the console");
            audit(&c, known, "console.login", source, AuditOutcome::Ok, None);
            let cookie = c.cookie(&s.token, c.lifetime.as_secs());
            (
                [(header::SET_COOKIE, cookie)],
                Json(serde_json::json!({ "agent": s.agent, "csrf": s.csrf })),
            )
                .into_response()
        }
        Login::BadCredentials { blocked } => {
            let detail = blocked.map(|b| format!("blocked {} s", b.as_secs().max(1)));
            tracing::info!(event = "console.login_failed", agent = known.unwrap_or(""), %source, blocked_s = blocked.map_or(0, |b| b.as_secs()), "console login refused");
            audit(
                &c,
                known,
                "console.login",
                source,
                AuditOutcome::Refused,
                detail,
            );
            error(StatusCode::UNAUTHORIZED, "bad_credentials")
        }
        Login::Throttled { retry_after } => {
            // Rounded up: a client waiting this long is let in.
            let secs = (retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0)).max(1);
            tracing::info!(event = "console.login_throttled", agent = known.unwrap_or(""), %source, retry_after_s = secs, "console login throttled");
            let detail = Some(format!("throttled {secs} s"));
            audit(
                &c,
                known,
                "console.login",
                source,
                AuditOutcome::Refused,
                detail,
            );
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, secs.to_string())],
                Json(serde_json::json!({ "error": "throttled", "retry_after": secs })),
            )
                .into_response()
        }
    }
}

fn audit(
    c: &Console,
    agent: Option<&str>,
    action: &'static str,
    source: IpAddr,
    outcome: AuditOutcome,
    detail: Option<String>,
) {
    c.backend.audit(ConsoleAudit {
        agent,
        action,
        source,
        outcome,
        detail,
    });
}

async fn logout(
    State(c): State<St>,
    ConnectInfo(src): ConnectInfo<PeerAddr>,
    headers: HeaderMap,
) -> Response {
    let (session, token) = match c.authed_post(&headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    c.core.lock().logout(&token);
    let source = src.0.ip();
    audit(
        &c,
        Some(&session.agent),
        "console.logout",
        source,
        AuditOutcome::Ok,
        None,
    );
    (
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, c.cookie("", 0))],
    )
        .into_response()
}

async fn me(State(c): State<St>, headers: HeaderMap) -> Response {
    let (session, _) = match c.authed(&headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let Some(p) = c.backend.profile(&session.agent).await else {
        // The agent was removed from the configuration.
        c.core.lock().end_agent(&session.agent);
        return error(StatusCode::UNAUTHORIZED, "unauthenticated");
    };
    Json(Me {
        agent: p.agent,
        csrf: session.csrf,
        sip: p.sip,
        practices: p.practices,
        colleagues: p.colleagues,
        pools: p.pools,
    })
    .into_response()
}

async fn state(State(c): State<St>, headers: HeaderMap) -> Response {
    match c.authed(&headers) {
        Ok((s, _)) => Json(c.backend.state(&s.agent).await).into_response(),
        Err(r) => r.into_response(),
    }
}

#[derive(Deserialize)]
struct StateBody {
    action: String,
    reason: Option<String>,
}

/// The agent action of a `POST /console/api/state` body, or why not.
fn parse_action(body: &[u8]) -> Result<AgentAction, &'static str> {
    let b: StateBody = serde_json::from_slice(body).map_err(|_| "bad_request")?;
    match b.action.as_str() {
        "pause" => {
            let reason = b.reason.unwrap_or_default();
            let reason = reason.trim();
            if reason.chars().count() > MAX_REASON || reason.chars().any(char::is_control) {
                return Err("bad_reason");
            }
            Ok(AgentAction::Pause(if reason.is_empty() {
                "pause".to_string()
            } else {
                reason.to_string()
            }))
        }
        "unpause" => Ok(AgentAction::Unpause),
        "login" => Ok(AgentAction::Login),
        "logout" => Ok(AgentAction::Logout),
        _ => Err("bad_action"),
    }
}

async fn set_state(
    State(c): State<St>,
    ConnectInfo(src): ConnectInfo<PeerAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (session, _) = match c.authed_post(&headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let action = match parse_action(&body) {
        Ok(a) => a,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match c.backend.act(&session.agent, src.0.ip(), action).await {
        Ok(()) => Json(c.backend.state(&session.agent).await).into_response(),
        Err(detail) => (
            StatusCode::CONFLICT,
            Json(serde_json::json!({ "error": "refused", "detail": detail })),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct PracticeQuery {
    practice: Option<String>,
}

async fn callbacks(
    State(c): State<St>,
    headers: HeaderMap,
    Query(q): Query<PracticeQuery>,
) -> Response {
    let (session, _) = match c.authed(&headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    let Some(practice) = q.practice.filter(|p| !p.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "practice");
    };
    if !c.backend.serves(&session.agent, &practice) {
        return error(StatusCode::FORBIDDEN, "forbidden");
    }
    let list = c.backend.callbacks(&practice).await;
    Json(serde_json::json!({ "callbacks": list })).into_response()
}

async fn handled(
    State(c): State<St>,
    ConnectInfo(src): ConnectInfo<PeerAddr>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Response {
    let (session, _) = match c.authed_post(&headers) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    match c
        .backend
        .callback_handled(&session.agent, src.0.ip(), &key)
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(CallbackRefused::Unknown(_)) => error(StatusCode::NOT_FOUND, "unknown"),
        Err(CallbackRefused::Conflict(detail)) => (
            StatusCode::CONFLICT,
            Json(serde_json::json!({ "error": "conflict", "detail": detail })),
        )
            .into_response(),
    }
}

async fn today(State(c): State<St>, headers: HeaderMap) -> Response {
    match c.authed(&headers) {
        Ok((s, _)) => Json(c.backend.today(&s.agent).await).into_response(),
        Err(r) => r.into_response(),
    }
}

#[cfg(test)]
mod tests;
