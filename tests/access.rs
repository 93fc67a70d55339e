//! People, roles and the audit trail: named users of the admin API with
//! hashed, revocable tokens; each route open from a role up; every action,
//! refusal and failed attempt audited (API, feature codes); guessing tokens
//! throttled; `permanence audit` lists it.

mod common;

use common::{field, http_call, sipp, Engine, TestConfig};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const VIEWER: &str = "viewer-token-1111111111111111";
const SUPERVISOR: &str = "supervisor-token-222222222222";
const ADMIN: &str = "admin-token-33333333333333333";
const REVOKED: &str = "revoked-token-4444444444444444";

/// The lowercase hex SHA-256 of a token, as `[[http.users]]` stores it
/// (computed by coreutils, independently of the engine).
fn sha256(token: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(token.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("sha256sum output");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn config() -> TestConfig {
    let mut cfg = TestConfig::demo();
    let http = cfg
        .main
        .get_mut("http")
        .and_then(|h| h.as_table_mut())
        .expect("[http]");
    http.remove("admin_token");
    let users: Vec<toml::Value> = [
        ("vera", "viewer", VIEWER, false),
        ("sam", "supervisor", SUPERVISOR, false),
        ("ada", "admin", ADMIN, false),
        ("rex", "admin", REVOKED, true),
    ]
    .into_iter()
    .map(|(name, role, token, revoked)| {
        let mut t = toml::Table::new();
        t.insert("name".into(), name.into());
        t.insert("role".into(), role.into());
        t.insert("token_sha256".into(), sha256(token).into());
        t.insert("revoked".into(), revoked.into());
        toml::Value::Table(t)
    })
    .collect();
    http.insert("users".into(), toml::Value::Array(users));
    cfg
}

fn audit(engine: &Engine) -> Vec<Value> {
    let (code, body) = http_call(engine, "GET", "/api/audit?limit=100", ADMIN, None);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("json")
}

fn has(entries: &[Value], actor: &str, action: &str, outcome: &str) -> bool {
    entries.iter().any(|e| {
        field(e, "actor") == actor && field(e, "action") == action && field(e, "outcome") == outcome
    })
}

#[test]
fn roles_gate_the_admin_api_and_everything_is_audited() {
    let cfg = config();
    let engine = Engine::start(&cfg, &[]);
    let call =
        |method: &str, path: &str, token: &str| http_call(&engine, method, path, token, None).0;
    // A viewer reads and may do nothing else.
    assert_eq!(call("GET", "/api/agents", VIEWER), 200);
    assert_eq!(call("POST", "/api/agents/bob/pause", VIEWER), 403);
    // A supervisor controls agents, not the engine.
    assert_eq!(call("POST", "/api/agents/bob/pause", SUPERVISOR), 200);
    assert_eq!(call("POST", "/api/agents/nobody/pause", SUPERVISOR), 409);
    assert_eq!(call("POST", "/api/reload", SUPERVISOR), 403);
    assert_eq!(call("GET", "/api/audit", SUPERVISOR), 403);
    // An admin does everything; a revoked admin nothing.
    assert_eq!(call("POST", "/api/reload", ADMIN), 200);
    assert_eq!(call("GET", "/api/agents", REVOKED), 401);
    // An agent's own feature code is audited too.
    let run = sipp(
        "agent_feature.xml",
        engine.sip,
        "127.0.0.1",
        &[("user", "alice".to_string())],
        &["-s", "*21", "-au", "alice", "-ap", "alice-demo"],
        Duration::from_secs(30),
    );
    assert!(run.success, "{}\n{}", run.output, run.errors);

    let entries = audit(&engine);
    assert!(has(&entries, "sam", "agent.pause", "ok"), "{entries:#?}");
    assert!(
        has(&entries, "sam", "agent.pause", "failed"),
        "{entries:#?}"
    );
    assert!(
        has(&entries, "vera", "agent control", "refused"),
        "{entries:#?}"
    );
    assert!(has(&entries, "sam", "reload", "refused"), "{entries:#?}");
    assert!(has(&entries, "ada", "config.reload", "ok"), "{entries:#?}");
    assert!(
        has(&entries, "unknown", "auth.failed", "refused"),
        "{entries:#?}"
    );
    assert!(
        has(&entries, "agent:alice", "agent.pause", "ok"),
        "{entries:#?}"
    );
    let pause = entries
        .iter()
        .find(|e| field(e, "actor") == "sam" && field(e, "outcome") == "ok")
        .expect("sam's pause");
    assert_eq!(field(pause, "target"), "bob");
    assert_eq!(field(pause, "role"), "supervisor");
    assert_eq!(field(pause, "source"), "127.0.0.1");

    // `permanence audit` prints the same trail for an admin.
    let out = Command::new(env!("CARGO_BIN_EXE_permanence"))
        .args(["audit", "--limit", "20", "--config"])
        .arg(engine.dir().join("permanence.toml"))
        .env("PERMANENCE_TOKEN", ADMIN)
        .output()
        .expect("permanence audit");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("ACTION") && text.contains("config.reload") && text.contains("sam"),
        "{text}"
    );

    // Guessing tokens: a few tries, then the address is blocked (429),
    // even for a right token, and the block is audited.
    let codes: Vec<u16> = (0..6)
        .map(|i| call("GET", "/api/agents", &format!("guess-{i}-0000000000000000")))
        .collect();
    assert_eq!(&codes[..4], &[401, 401, 401, 401], "{codes:?}");
    assert_eq!(codes[4], 429, "{codes:?}");
    assert_eq!(call("GET", "/api/agents", ADMIN), 429);
}
