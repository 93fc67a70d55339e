//! The monthly report per practice, end to end: a few calls to Dr Martin
//! (hung up during the greeting, during the triage menu, answered by
//! Alice), then `permanence report --practice martin --month <current>` in
//! each format. Its figures agree with the call records (`/api/figures` and
//! the database), the admin API's `GET /api/report` gives the same, the
//! HTML is rendered in headless Chromium (screenshot; `docs/report.png`
//! with PERMANENCE_UPDATE_DOCS=1) and no caller number appears anywhere.

mod common;

use common::browser::{Browser, LaunchOptions};
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const TOKEN: &str = "test-admin-token-0123456789";
const MARTIN: &str = "Diversion: <sip:+33450000001@carrier.example>;reason=unconditional";
/// The patient's number in the SIPp scenarios.
const CALLER: &str = "+33612345678";

/// Martin alone, open at all hours, a 1 s greeting, a 1 s triage menu waiting 1 s
/// for a digit; no OPTIONS probes; admin token set.
fn config() -> TestConfig {
    let mut cfg = TestConfig::demo();
    // Only Dr Martin's dialplan: the report is about it alone.
    cfg.dialplans.retain(|(name, _)| name.starts_with("martin"));
    cfg.always_open("martin");
    cfg.tone_prompt("martin", "greeting", 1.0, 440.0);
    cfg.tone_prompt("martin", "triage", 1.0, 660.0);
    cfg.practice("martin")
        .get_mut("triage")
        .and_then(|t| t.as_table_mut())
        .expect("[triage]")
        .insert("timeout_seconds".into(), 1.into());
    cfg.routing("martin")
        .insert("wrap_up_seconds".into(), 1.into());
    cfg.no_qualify();
    cfg.main_table("http")
        .insert("admin_token".into(), TOKEN.into());
    cfg
}

/// A patient calls Martin and hangs up `hang_up_ms` after the answer.
fn call_and_hang_up(engine: &Engine, hang_up_ms: u64, n: usize) {
    let ms = hang_up_ms.to_string();
    let (_rtp, run) = patient(
        engine,
        MARTIN,
        "carrier_call.xml",
        0x55,
        &["-d", &ms],
        Duration::from_secs(60),
    );
    joined(run, "patient");
    engine
        .wait_n("call.ended", n, Duration::from_secs(10), |_| true)
        .unwrap_or_else(|| panic!("call {n} did not end\n{}", engine.dump()));
}

/// The current month in Paris (`YYYY-MM`).
fn this_month() -> String {
    let out = Command::new("date")
        .env("TZ", "Europe/Paris")
        .arg("+%Y-%m")
        .output()
        .expect("date");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `permanence report` on the engine's configuration, run where the
/// engine runs (the records path is relative to it); its output.
fn report(engine: &Engine, month: &str, format: &str) -> String {
    let dir = engine.data.parent().expect("engine directory");
    let out = Command::new(env!("CARGO_BIN_EXE_permanence"))
        .current_dir(dir)
        .args([
            "report",
            "--config",
            "permanence.toml",
            "--practice",
            "martin",
        ])
        .args(["--month", month, "--format", format])
        .output()
        .expect("permanence report");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "permanence report --format {format}: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains(CALLER), "{format}: a caller number");
    assert!(!text.contains("612345678"), "{format}: a caller number");
    text
}

fn api(engine: &Engine, path: &str) -> String {
    let (code, body) = http_call(engine, "GET", path, TOKEN, None);
    assert_eq!(code, 200, "GET {path}: {body}");
    body
}

/// Waits (5 s at most) until the admin API shows Alice available.
fn alice_available(engine: &Engine) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        let agents: serde_json::Value =
            serde_json::from_str(&api(engine, "/api/agents")).expect("agents");
        let alice = agents
            .as_array()
            .and_then(|a| a.iter().find(|a| a["agent"] == "alice").cloned());
        if alice.is_some_and(|a| a["presence"] == "available") {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("alice not available\n{}", engine.dump());
}

/// Places the calls: gone during the greeting, during the triage menu,
/// then a conversation with Alice.
fn place_calls(engine: &Engine) {
    call_and_hang_up(engine, 500, 1);
    call_and_hang_up(engine, 1700, 2);
    let port = free_udp_port();
    register_agent(engine.sip, "alice", "alice-demo", port);
    let (_rtp, answers) = SippBg::uas_with_rtp(
        "agent_answer.xml",
        port,
        0,
        0x2a,
        &["-d", "1500"],
        Duration::from_secs(60),
    );
    alice_available(engine);
    call_and_hang_up(engine, 6000, 3);
    answers.finish_ok(Duration::from_secs(20), "alice (answers)");
}

/// The JSON report's figures against `/api/figures` over the same period
/// and against the records database.
fn check_against_the_records(engine: &Engine, json: &serde_json::Value) {
    let c = &json["calls"];
    assert_eq!(c["offered"], 3, "{json}");
    assert_eq!(c["answered"], 1, "{json}");
    assert_eq!(c["abandoned_by_phase"]["greeting"], 1, "{json}");
    assert_eq!(c["abandoned_by_phase"]["triage"], 1, "{json}");
    let since = json["since"].as_str().expect("since");
    let until = json["until"].as_str().expect("until");
    let figures: serde_json::Value = serde_json::from_str(&api(
        engine,
        &format!("/api/figures?practice=martin&since={since}&until={until}"),
    ))
    .expect("figures");
    for key in ["offered", "answered", "failed", "closed", "pickup_rate"] {
        assert_eq!(c[key], figures[key], "{key}: {figures}");
    }
    assert_eq!(c["abandoned_by_phase"], figures["abandoned"], "{figures}");
    let reader = permanence_records::RecordReader::open(engine.data.join("permanence.db"))
        .expect("records db");
    let talk: f64 = reader
        .calls(&permanence_records::CallFilter::latest(100))
        .expect("calls")
        .iter()
        .filter_map(|r| r.talk_secs)
        .sum();
    let minutes = json["minutes"]["inbound"].as_f64().expect("minutes");
    assert!(
        (minutes - talk / 60.0).abs() < 1e-9,
        "{minutes} vs {talk} s"
    );
    assert!(talk > 0.5, "talk {talk} s");
    assert_eq!(json["wait"]["service_level_threshold_secs"], 20);
}

/// The CSV's lines hold the same figures.
fn check_csv(csv: &str) {
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.first(), Some(&"section,metric,value"));
    for line in [
        "calls,offered,3",
        "calls,answered,1",
        "abandoned,greeting,1",
    ] {
        assert!(lines.contains(&line), "{line} in\n{csv}");
    }
}

/// The HTML page in headless Chromium: screenshot, and a few figures read
/// in the rendered page.
fn check_html(html_path: &Path, shot: &Path) {
    let mut b = Browser::launch(LaunchOptions::default());
    b.navigate(&format!("file://{}", html_path.display()));
    assert_eq!(b.text("h1"), "Cabinet du Dr Martin");
    assert_eq!(b.text("#offered"), "3");
    assert_eq!(b.text("#answered"), "1");
    assert_eq!(b.text("#abandoned"), "2");
    assert_eq!(b.text("#pickup"), "33,3 %");
    let body = b.text("body");
    assert!(body.contains("Niveau de service (20 s)"), "{body}");
    assert!(body.contains("pendant l'accueil"), "{body}");
    assert!(!body.contains("612345678"));
    let cells = b.eval("document.querySelectorAll('#heat-map td').length");
    assert_eq!(cells, 7 * 24);
    let png = b.screenshot(shot);
    assert!(png.len() > 1000, "screenshot of {} bytes", png.len());
    assert!(b.exceptions().is_empty(), "{:?}", b.exceptions());
}

#[test]
fn the_monthly_report_matches_the_call_records_in_every_format() {
    let engine = Engine::start(&config(), &[]);
    place_calls(&engine);
    let month = this_month();
    // The API flushes the records; the CLI reads them from the file.
    let from_api = api(
        &engine,
        &format!("/api/report?practice=martin&month={month}&format=json"),
    );
    let json_text = report(&engine, &month, "json");
    assert_eq!(json_text, from_api, "CLI and admin API");
    let json: serde_json::Value = serde_json::from_str(&json_text).expect("json report");
    check_against_the_records(&engine, &json);
    check_csv(&report(&engine, &month, "csv"));

    let html = report(&engine, &month, "html");
    let dir = TempDir::new("report-e2e");
    let html_path = dir.path().join("report.html");
    std::fs::write(&html_path, &html).expect("write html");
    let shot = match std::env::var_os("PERMANENCE_UPDATE_DOCS") {
        Some(_) => repo().join("docs/report.png"),
        None => dir.path().join("report.png"),
    };
    check_html(&html_path, &shot);

    // The admin API's other formats and refusals.
    let (code, body) = http_call(
        &engine,
        "GET",
        &format!("/api/report?practice=martin&month={month}"),
        TOKEN,
        None,
    );
    assert_eq!(code, 200);
    assert_eq!(body, html, "HTML by default, the same as the CLI");
    for (query, want) in [
        ("practice=nobody&month=2025-03", 404),
        ("practice=martin&month=2025-3", 400),
        ("practice=martin", 400),
        ("practice=martin&week=2025-W10&format=pdf", 400),
    ] {
        let (code, _) = http_call(&engine, "GET", &format!("/api/report?{query}"), TOKEN, None);
        assert_eq!(code, want, "{query}");
    }
    let (code, _) = http_call(&engine, "GET", "/api/report?practice=martin", "", None);
    assert_eq!(code, 401);
}
