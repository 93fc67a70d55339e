//! The routes against a fake backend, through `ServiceExt::oneshot`.

use super::*;
use crate::{CallbackItem, ConsoleEvent, Credentials, Profile, StateView, Today};
use axum::body::Body;
use axum::http::Request;
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use permanence_types::DigestAlgorithm;
use std::net::SocketAddr;
use std::sync::Mutex;
use tokio::sync::broadcast;
use tower::ServiceExt;

struct Fake {
    now: Mutex<DateTime<Utc>>,
    state: Mutex<String>,
    actions: Mutex<Vec<AgentAction>>,
    handled: Mutex<Vec<String>>,
    audits: Mutex<Vec<(Option<String>, &'static str, AuditOutcome)>>,
    events: broadcast::Sender<ConsoleEvent>,
}

impl Fake {
    fn new() -> Arc<Self> {
        Arc::new(Fake {
            now: Mutex::new(DateTime::from_timestamp(1_800_000_000, 0).unwrap()),
            state: Mutex::new("available".into()),
            actions: Mutex::default(),
            handled: Mutex::default(),
            audits: Mutex::default(),
            events: broadcast::channel(16).0,
        })
    }

    fn advance(&self, secs: i64) {
        *self.now.lock().unwrap() += chrono::Duration::seconds(secs);
    }
}

#[async_trait::async_trait]
impl ConsoleBackend for Fake {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap()
    }
    fn credentials(&self, username: &str) -> Option<Credentials> {
        (username == "alice").then(|| Credentials {
            username: "alice".into(),
            realm: "permanence".into(),
            ha1_md5: Some(permanence_sip::digest::ha1(
                DigestAlgorithm::Md5,
                "alice",
                "permanence",
                "alice-demo",
            )),
            ha1_sha256: None,
        })
    }
    async fn profile(&self, agent: &str) -> Option<Profile> {
        (agent == "alice").then(|| Profile {
            agent: crate::AgentInfo {
                username: "alice".into(),
                display_name: "Alice Morel".into(),
                languages: vec!["fr".into()],
            },
            sip: crate::SipInfo {
                ws_url: Some("ws://127.0.0.1:5066".into()),
                uri: "sip:alice@127.0.0.1".into(),
                realm: "permanence".into(),
            },
            practices: vec![],
            colleagues: vec![],
            pools: vec![],
        })
    }
    async fn state(&self, _agent: &str) -> StateView {
        StateView {
            state: self.state.lock().unwrap().clone(),
            reason: None,
            wrap_up_remaining_s: None,
            registered: true,
        }
    }
    async fn act(&self, _agent: &str, _source: IpAddr, action: AgentAction) -> Result<(), String> {
        if action == AgentAction::Login {
            return Err("already logged in".into());
        }
        if let AgentAction::Pause(_) = &action {
            *self.state.lock().unwrap() = "paused".into();
        }
        self.actions.lock().unwrap().push(action);
        Ok(())
    }
    fn serves(&self, agent: &str, practice: &str) -> bool {
        agent == "alice" && practice == "martin"
    }
    async fn callbacks(&self, practice: &str) -> Vec<CallbackItem> {
        vec![CallbackItem {
            key: "k1".into(),
            practice: practice.into(),
            number: "+33612345678".into(),
            requested_at: "2027-01-15T08:00:00Z".into(),
            deadline: "2027-01-15T09:00:00Z".into(),
            attempts: 0,
            triage: None,
            state: "pending".into(),
        }]
    }
    async fn callback_handled(
        &self,
        _agent: &str,
        _source: IpAddr,
        key: &str,
    ) -> Result<(), CallbackRefused> {
        match key {
            "k1" => {
                self.handled.lock().unwrap().push(key.into());
                Ok(())
            }
            "busy" => Err(CallbackRefused::Conflict("being dialled".into())),
            _ => Err(CallbackRefused::Unknown("no such request".into())),
        }
    }
    async fn today(&self, _agent: &str) -> Today {
        Today {
            calls: 3,
            handle_seconds_avg: Some(95),
            callbacks_done: 1,
            outbound_calls: 2,
        }
    }
    fn subscribe(&self) -> broadcast::Receiver<ConsoleEvent> {
        self.events.subscribe()
    }
    fn audit(&self, e: ConsoleAudit<'_>) {
        self.audits
            .lock()
            .unwrap()
            .push((e.agent.map(str::to_string), e.action, e.outcome));
    }
}

fn app(fake: &Arc<Fake>) -> Router {
    router(
        fake.clone(),
        ConsoleSettings {
            secure_cookie: false,
            ws_urls: vec!["ws://127.0.0.1:5066".into()],
            sessions: SessionSettings::default(),
        },
    )
}

#[derive(Default)]
struct Req<'a> {
    method: &'a str,
    path: &'a str,
    cookie: Option<&'a str>,
    csrf: Option<&'a str>,
    body: Option<&'a str>,
    from: Option<u8>,
    origin: Option<&'a str>,
}

async fn send(app: &Router, r: Req<'_>) -> Response {
    let mut b = Request::builder()
        .method(if r.method.is_empty() { "GET" } else { r.method })
        .uri(r.path)
        .header("host", "127.0.0.1:8080")
        .header("content-type", "application/json");
    if let Some(c) = r.cookie {
        b = b.header("cookie", format!("theme=dark; {COOKIE}={c}"));
    }
    if let Some(c) = r.csrf {
        b = b.header("x-csrf-token", c);
    }
    if let Some(o) = r.origin {
        b = b.header("origin", o);
    }
    let mut req = b
        .body(r.body.map_or(Body::empty(), |s| Body::from(s.to_string())))
        .unwrap();
    let from = SocketAddr::from(([192, 0, 2, r.from.unwrap_or(1)], 40000));
    req.extensions_mut().insert(ConnectInfo(PeerAddr(from)));
    app.clone().oneshot(req).await.unwrap()
}

async fn json(res: Response) -> serde_json::Value {
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

const GOOD: &str = r#"{"username":"alice","password":"alice-demo"}"#;
const BAD: &str = r#"{"username":"alice","password":"guess"}"#;

/// Logs alice in: (cookie value, csrf).
async fn log_in(app: &Router) -> (String, String) {
    let res = send(
        app,
        Req {
            method: "POST",
            path: "/console/api/login",
            body: Some(GOOD),
            ..Req::default()
        },
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Path=/console"), "{cookie}");
    assert!(!cookie.contains("Secure"), "{cookie}");
    let token = cookie
        .strip_prefix(&format!("{COOKIE}="))
        .and_then(|r| r.split(';').next())
        .unwrap()
        .to_string();
    let v = json(res).await;
    assert_eq!(v["agent"], "alice");
    (token, v["csrf"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn login_me_and_logout() {
    let fake = Fake::new();
    let app = app(&fake);
    let (cookie, csrf) = log_in(&app).await;
    let res = send(
        &app,
        Req {
            path: "/console/api/me",
            cookie: Some(&cookie),
            ..Req::default()
        },
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    let me = json(res).await;
    assert_eq!(me["agent"]["username"], "alice");
    assert_eq!(me["csrf"], csrf.as_str());
    assert_eq!(me["sip"]["ws_url"], "ws://127.0.0.1:5066");
    // Logout needs the CSRF token, then clears the cookie.
    let out = Req {
        method: "POST",
        path: "/console/api/logout",
        cookie: Some(&cookie),
        ..Req::default()
    };
    assert_eq!(send(&app, out).await.status(), StatusCode::FORBIDDEN);
    let res = send(
        &app,
        Req {
            method: "POST",
            path: "/console/api/logout",
            cookie: Some(&cookie),
            csrf: Some(&csrf),
            ..Req::default()
        },
    )
    .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(res.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let res = send(
        &app,
        Req {
            path: "/console/api/me",
            cookie: Some(&cookie),
            ..Req::default()
        },
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let audits = fake.audits.lock().unwrap().clone();
    assert_eq!(
        audits,
        vec![
            (Some("alice".into()), "console.login", AuditOutcome::Ok),
            (Some("alice".into()), "console.logout", AuditOutcome::Ok),
        ]
    );
}

#[tokio::test]
async fn without_a_session_every_api_route_is_401() {
    let fake = Fake::new();
    let app = app(&fake);
    for (method, path) in [
        ("GET", "/console/api/me"),
        ("GET", "/console/api/state"),
        ("POST", "/console/api/state"),
        ("GET", "/console/api/callbacks?practice=martin"),
        ("POST", "/console/api/callbacks/k1/handled"),
        ("GET", "/console/api/today"),
        ("GET", "/console/api/events"),
        ("POST", "/console/api/logout"),
    ] {
        for cookie in [None, Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")] {
            let res = send(
                &app,
                Req {
                    method,
                    path,
                    cookie,
                    csrf: Some("x"),
                    body: Some(r#"{"action":"unpause"}"#),
                    ..Req::default()
                },
            )
            .await;
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
            assert_eq!(
                json(res).await,
                serde_json::json!({"error": "unauthenticated"})
            );
        }
    }
    assert!(fake.actions.lock().unwrap().is_empty());
}

#[tokio::test]
async fn posts_need_the_sessions_csrf_token() {
    let fake = Fake::new();
    let app = app(&fake);
    let (cookie, csrf) = log_in(&app).await;
    let (_, other_csrf) = log_in(&app).await;
    let pause = Some(r#"{"action":"pause","reason":"pause déjeuner"}"#);
    for bad in [None, Some(""), Some(other_csrf.as_str())] {
        let res = send(
            &app,
            Req {
                method: "POST",
                path: "/console/api/state",
                cookie: Some(&cookie),
                csrf: bad,
                body: pause,
                ..Req::default()
            },
        )
        .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(json(res).await, serde_json::json!({"error": "csrf"}));
    }
    // From another site, even with the token.
    let res = send(
        &app,
        Req {
            method: "POST",
            path: "/console/api/state",
            cookie: Some(&cookie),
            csrf: Some(&csrf),
            body: pause,
            origin: Some("https://evil.example"),
            ..Req::default()
        },
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(fake.actions.lock().unwrap().is_empty());
    let res = send(
        &app,
        Req {
            method: "POST",
            path: "/console/api/state",
            cookie: Some(&cookie),
            csrf: Some(&csrf),
            body: pause,
            origin: Some("http://127.0.0.1:8080"),
            ..Req::default()
        },
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(json(res).await["state"], "paused");
    assert_eq!(
        fake.actions.lock().unwrap().clone(),
        vec![AgentAction::Pause("pause déjeuner".into())]
    );
}

#[tokio::test]
async fn state_actions_are_checked() {
    let fake = Fake::new();
    let app = app(&fake);
    let (cookie, csrf) = log_in(&app).await;
    let post = |body: &'static str| Req {
        method: "POST",
        path: "/console/api/state",
        cookie: Some(&cookie),
        csrf: Some(&csrf),
        body: Some(body),
        ..Req::default()
    };
    assert_eq!(
        send(&app, post(r#"{"action":"dance"}"#)).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        send(&app, post(r#"{"action":"pause","reason":"a\nb"}"#))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        send(&app, post("not json")).await.status(),
        StatusCode::BAD_REQUEST
    );
    let res = send(&app, post(r#"{"action":"login"}"#)).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(json(res).await["detail"], "already logged in");
    assert_eq!(
        send(&app, post(r#"{"action":"unpause"}"#)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        send(&app, post(r#"{"action":"pause"}"#)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        fake.actions.lock().unwrap().clone(),
        vec![AgentAction::Unpause, AgentAction::Pause("pause".into())]
    );
    let big = format!(r#"{{"action":"pause","reason":"{}"}}"#, "x".repeat(10_000));
    let res = send(
        &app,
        Req {
            method: "POST",
            path: "/console/api/state",
            cookie: Some(&cookie),
            csrf: Some(&csrf),
            body: Some(&big),
            ..Req::default()
        },
    )
    .await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn callbacks_only_of_served_practices() {
    let fake = Fake::new();
    let app = app(&fake);
    let (cookie, csrf) = log_in(&app).await;
    let get = |path| Req {
        path,
        cookie: Some(&cookie),
        ..Req::default()
    };
    let res = send(&app, get("/console/api/callbacks?practice=martin")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let v = json(res).await;
    assert_eq!(v["callbacks"][0]["number"], "+33612345678");
    assert_eq!(v["callbacks"][0]["state"], "pending");
    let res = send(&app, get("/console/api/callbacks?practice=caron")).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        send(&app, get("/console/api/callbacks")).await.status(),
        StatusCode::BAD_REQUEST
    );
    let post = |path| Req {
        method: "POST",
        path,
        cookie: Some(&cookie),
        csrf: Some(&csrf),
        ..Req::default()
    };
    assert_eq!(
        send(&app, post("/console/api/callbacks/k1/handled"))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        send(&app, post("/console/api/callbacks/busy/handled"))
            .await
            .status(),
        StatusCode::CONFLICT
    );
    assert_eq!(
        send(&app, post("/console/api/callbacks/nope/handled"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(fake.handled.lock().unwrap().clone(), vec!["k1".to_string()]);
    let res = send(&app, get("/console/api/today")).await;
    assert_eq!(
        json(res).await,
        serde_json::json!({"calls": 3, "handle_seconds_avg": 95, "callbacks_done": 1, "outbound_calls": 2})
    );
}

#[tokio::test]
async fn wrong_passwords_are_throttled_with_429() {
    let fake = Fake::new();
    let app = app(&fake);
    let login = |body, from| Req {
        method: "POST",
        path: "/console/api/login",
        body: Some(body),
        from: Some(from),
        ..Req::default()
    };
    for _ in 0..4 {
        let res = send(&app, login(BAD, 9)).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            json(res).await,
            serde_json::json!({"error": "bad_credentials"})
        );
    }
    // Blocked: the right password too, without a check.
    let res = send(&app, login(GOOD, 9)).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()[header::RETRY_AFTER], "2");
    assert_eq!(
        json(res).await,
        serde_json::json!({"error": "throttled", "retry_after": 2})
    );
    // Another source gets in; so does this one once the block is over.
    assert_eq!(send(&app, login(GOOD, 10)).await.status(), StatusCode::OK);
    fake.advance(3);
    assert_eq!(send(&app, login(GOOD, 9)).await.status(), StatusCode::OK);
    // Per user: guesses from many sources block alice for new sources.
    for i in 0..11 {
        send(&app, login(BAD, 100 + i)).await;
    }
    assert_eq!(
        send(&app, login(GOOD, 200)).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(send(&app, login(GOOD, 10)).await.status(), StatusCode::OK);
    // Unknown users are refused the same way; garbage is a 400.
    let res = send(&app, login(r#"{"username":"mallory","password":"x"}"#, 50)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        send(&app, login("{", 50)).await.status(),
        StatusCode::BAD_REQUEST
    );
    let refused = fake
        .audits
        .lock()
        .unwrap()
        .iter()
        .filter(|a| a.2 == AuditOutcome::Refused)
        .count();
    assert_eq!(refused, 4 + 1 + 11 + 1 + 1);
}

#[tokio::test]
async fn sessions_expire_when_idle() {
    let fake = Fake::new();
    let app = app(&fake);
    let (cookie, _) = log_in(&app).await;
    let me = || Req {
        path: "/console/api/state",
        cookie: Some(&cookie),
        ..Req::default()
    };
    fake.advance(3000);
    assert_eq!(send(&app, me()).await.status(), StatusCode::OK);
    fake.advance(3000);
    assert_eq!(send(&app, me()).await.status(), StatusCode::OK);
    fake.advance(3600);
    assert_eq!(send(&app, me()).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn page_and_assets_with_security_headers_and_no_traversal() {
    let fake = Fake::new();
    let app = app(&fake);
    let res = send(
        &app,
        Req {
            path: "/console",
            ..Req::default()
        },
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers();
    assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
    assert_eq!(h[header::CACHE_CONTROL], "no-store");
    let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(
        csp.contains("connect-src 'self' ws://127.0.0.1:5066"),
        "{csp}"
    );
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    for (file, ty) in [
        ("console.js", "text/javascript; charset=utf-8"),
        ("console.css", "text/css; charset=utf-8"),
        ("jssip.min.js", "text/javascript; charset=utf-8"),
        ("index.html", "text/html; charset=utf-8"),
    ] {
        let res = send(
            &app,
            Req {
                path: &format!("/console/assets/{file}"),
                ..Req::default()
            },
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK, "{file}");
        assert_eq!(res.headers()[header::CONTENT_TYPE], ty);
        assert!(res.headers().contains_key(header::CONTENT_SECURITY_POLICY));
    }
    for bad in [
        "/console/assets/..%2FCargo.toml",
        "/console/assets/%2e%2e%2fsrc%2flib.rs",
        "/console/assets/../src/lib.rs",
        "/console/assets/LICENSE",
        "/console/assets/console.js%00",
        "/console/assets/",
    ] {
        let res = send(
            &app,
            Req {
                path: bad,
                ..Req::default()
            },
        )
        .await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{bad}");
    }
}

/// The next SSE frame's text, within a second of (virtual) time.
async fn frame(body: &mut Body) -> String {
    let f = tokio::time::timeout(Duration::from_secs(1), body.frame())
        .await
        .expect("an event in time")
        .expect("stream open")
        .unwrap();
    String::from_utf8(f.into_data().unwrap().to_vec()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn events_follow_the_engine_and_keep_alive() {
    let fake = Fake::new();
    let app = app(&fake);
    let (cookie, _) = log_in(&app).await;
    let res = send(
        &app,
        Req {
            path: "/console/api/events",
            cookie: Some(&cookie),
            ..Req::default()
        },
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = res.into_body();
    let first = frame(&mut body).await;
    assert!(first.starts_with("event: state\ndata: {"), "{first}");
    assert!(first.contains(r#""state":"available""#), "{first}");
    assert!(frame(&mut body).await.starts_with("event: today\n"));
    // Events of others and practices alice does not serve are skipped.
    *fake.state.lock().unwrap() = "on_call".into();
    fake.events
        .send(ConsoleEvent::State {
            agent: "bob".into(),
        })
        .unwrap();
    fake.events
        .send(ConsoleEvent::Callbacks {
            practice: "caron".into(),
        })
        .unwrap();
    fake.events
        .send(ConsoleEvent::State {
            agent: "alice".into(),
        })
        .unwrap();
    let s = frame(&mut body).await;
    assert!(
        s.starts_with("event: state\n") && s.contains("on_call"),
        "{s}"
    );
    fake.events
        .send(ConsoleEvent::Callbacks {
            practice: "martin".into(),
        })
        .unwrap();
    assert_eq!(
        frame(&mut body).await,
        "event: callbacks\ndata: {\"practice\":\"martin\"}\n\n"
    );
    // Nothing for 15 s: a keep-alive comment.
    let f = tokio::time::timeout(Duration::from_secs(16), body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(f.into_data().unwrap(), ": keep-alive\n\n");
    // Logged out: the stream ends at its next session check.
    fake.advance(7200);
    let end = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            match body.frame().await {
                None => return,
                Some(_) => continue,
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the stream ended with the session");
}
