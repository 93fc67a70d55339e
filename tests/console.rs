//! The telesecretary's web console (issue 11) end to end, in a real
//! browser: headless Chromium (tests/common/browser.rs) whose microphone
//! is a 440 Hz tone logs Alice in at `/console` on the engine's HTTP
//! listener; its JsSIP softphone registers over SIP-over-WebSocket; a SIPp
//! carrier brings a patient whose RTP (from the test) is a 1 kHz tone;
//! the page answers, holds, transfers, hangs up, pauses. Audio is checked
//! both ways: the tone of each side, decoded and measured at the other.
//! Page ids, API and headers: /work/notes/console-contract.md.
//!
//! Also the interop test: a bare JsSIP page of the test's own (not the
//! console) registers over the WebSocket and answers a call.

mod common;

use common::browser::{js_string, tone_wav, visible_js, Browser, LaunchOptions, PageServer};
use common::{
    carrier_vars, count_fill, decode, field, http_call, joined, parse_rtp, prompt_frames, repo,
    rtp_packet, sipp_thread, sub_table, ulaw_to_linear, Engine, RtpPacket, SippBg, SippRun,
    TempDir, TestConfig,
};
use serde_json::Value;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const MARTIN: &str = "Diversion: <sip:+33450000001@carrier.example>;reason=unconditional";
/// The demo's admin token (config/permanence.toml).
const ADMIN: &str = "demo-admin-token-change-me";
/// Alice's microphone (the browser's fake capture).
const BROWSER_HZ: f64 = 440.0;
/// The patient's voice (the test's RTP).
const CALLER_HZ: f64 = 1000.0;
/// What the practitioner's mobile sends (PCMU bytes), at the gateway.
const MOBILE_FILL: u8 = 0x4d;

/// `n` seconds.
const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// One browser test at a time: two Chromiums and two engines on the CI's
/// two cores would make the audio checks flaky.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// The demo with Dr Martin open at all hours, short greeting and triage
/// prompts (300 Hz: neither side's tone), the triage menu answering itself
/// after 1 s (default: 2, "rendez-vous"), 3 s of wrap-up, qualify off, the
/// outbound gateway on a free port of the test; SIP over WebSocket on
/// another (`[sip] listen_ws`, set by `TestConfig::demo`). Returns the
/// config, the WebSocket and the gateway ports.
fn config() -> (TestConfig, u16, u16) {
    let mut cfg = TestConfig::demo();
    cfg.always_open("martin");
    cfg.tone_prompt("martin", "greeting", 0.5, 300.0);
    cfg.tone_prompt("martin", "triage", 0.5, 300.0);
    sub_table(cfg.practice("martin"), "triage").insert("timeout_seconds".into(), 1.into());
    cfg.routing("martin")
        .insert("wrap_up_seconds".into(), 3.into());
    cfg.no_qualify();
    let gw = cfg.outbound_gateway();
    let ws = cfg.ws_port;
    (cfg, ws, gw)
}

/// Chromium with the 440 Hz microphone (the WAV in `dir`).
fn browser(dir: &TempDir) -> Browser {
    let wav = dir.path().join("alice-440.wav");
    tone_wav(&wav, BROWSER_HZ, 1.0);
    Browser::launch(LaunchOptions::with_wav(&wav))
}

// ---------------------------------------------------------------------------
// The console, end to end.

#[test]
fn console_answers_holds_transfers_hangs_up_and_pauses_in_a_real_browser() {
    let _one = serial();
    let (cfg, _ws, gw_port) = config();
    let card = cfg_card(&cfg);
    let engine = Engine::start(&cfg, &[]);
    let dir = TempDir::new("console-e2e");
    let mut b = browser(&dir);

    log_in(&mut b, &engine);
    let (caller, carrier) = call_martin(&engine, "carrier_wait_bye.xml", &[]);
    shows_the_offer_and_its_card(&mut b, &card);
    // The README's picture: refreshed with PERMANENCE_UPDATE_DOCS=1, else
    // kept with the test's files (so a test run leaves the tree clean).
    let shot = match std::env::var_os("PERMANENCE_UPDATE_DOCS") {
        Some(_) => repo().join("docs/console.png"),
        None => dir.path().join("console.png"),
    };
    b.screenshot(&shot);
    answer_and_talk(&mut b, &engine, &caller);
    hold_and_resume(&mut b, &engine, &caller);
    blind_transfer_to_the_mobile(&mut b, &engine, &caller, gw_port);
    joined(carrier, "first caller");

    answer_with_the_keyboard_then_hang_up(&mut b, &engine);
    pause_and_unpause(&mut b, &engine);
    let exceptions = b.exceptions();
    assert!(exceptions.is_empty(), "page errors: {exceptions:?}");
}

/// Dr Martin's `[card]` as the config has it: summary and entry labels.
fn cfg_card(cfg: &TestConfig) -> (String, Vec<String>) {
    let card = cfg
        .dialplans
        .iter()
        .map(|(_, t)| t)
        .find(|t| t.get("id").and_then(|v| v.as_str()) == Some("martin"))
        .and_then(|t| t.get("card"))
        .expect("[card] in dialplans/martin.toml");
    let summary = card["summary"].as_str().expect("card summary").to_string();
    let labels = card
        .get("entries")
        .and_then(|e| e.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|e| e.get("label").and_then(|l| l.as_str()).map(String::from))
                .collect()
        })
        .unwrap_or_default();
    (summary, labels)
}

/// Alice logs in through the page; her softphone registers over the
/// WebSocket; she is available, and the engine sees her registered.
fn log_in(b: &mut Browser, engine: &Engine) {
    b.navigate(&format!("http://{}/console", engine.http));
    b.wait_for(&visible_js("#login-form"), secs(10));
    b.type_into("#username", "alice");
    b.type_into("#password", "alice-demo");
    b.click("#login-button");
    wait_data(b, "#sip-status", "status", "registered", secs(15));
    // The engine first (its view decides), then the page's.
    let alice = wait_agent(engine, "alice", secs(5), |a| {
        a["reachable"] == true
            && a["contacts"].as_u64().unwrap_or(0) >= 1
            && a["state"] == "available"
    });
    wait_data(b, "#agent-state", "state", "available", secs(5));
    assert!(
        !b.is_visible("#login-form"),
        "the login form is still shown: {alice}"
    );
}

/// The offer on screen while Alice's page rings: practice, specialty,
/// triage choice, wait, caller, and the practice card with its transfer
/// targets.
fn shows_the_offer_and_its_card(b: &mut Browser, (summary, labels): &(String, Vec<String>)) {
    b.wait_for(&visible_js("#offer"), secs(15));
    wait_data(b, "#call-status", "status", "ringing", secs(5));
    assert!(b.text("#offer-practice").contains("Cabinet du Dr Martin"));
    assert!(
        !b.text("#offer-specialty").trim().is_empty(),
        "no specialty"
    );
    let triage = b.text("#offer-triage");
    assert!(triage.contains("rendez-vous"), "triage shown: {triage:?}");
    let wait = b.text("#offer-wait");
    assert!(wait.chars().any(|c| c.is_ascii_digit()), "wait: {wait:?}");
    let caller: String = b
        .text("#offer-caller")
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    assert!(caller.contains("612345678"), "caller shown: {caller:?}");
    let shown = words(&b.text("#practice-card"));
    assert!(shown.contains(&words(summary)), "card: {shown}");
    for l in labels {
        assert!(
            shown.contains(&words(l)),
            "card entry {l:?} missing: {shown}"
        );
    }
    assert!(!b.text("#card-hours").trim().is_empty(), "no hours today");
    assert!(
        b.is_visible("#card-transfers button.transfer[data-target=\"1\"]"),
        "no button for transfer target 1"
    );
}

/// Alice clicks Answer: the caller hears her 440 Hz microphone (RTP
/// payload decoded), the page hears the caller's 1 kHz tone.
fn answer_and_talk(b: &mut Browser, engine: &Engine, caller: &TonePeer) {
    let t = Instant::now();
    b.click("#btn-answer");
    wait_data(b, "#call-status", "status", "connected", secs(10));
    let heard = wait_tone("the caller", &|| caller.received(), t, BROWSER_HZ, secs(10));
    eprintln!("the caller hears alice: {heard:?}");
    b.wait_for(
        "window.permanenceConsole && window.permanenceConsole.remoteAudioLevel() > 0.01",
        secs(10),
    );
    let alice = wait_agent(engine, "alice", secs(5), |a| a["state"] == "on-call");
    assert_eq!(field(&alice, "state"), "on-call");
}

/// Hold: the caller hears the hold music instead of Alice, the engine
/// shows the call on hold; resume: Alice's tone again.
fn hold_and_resume(b: &mut Browser, engine: &Engine, caller: &TonePeer) {
    let t = Instant::now();
    b.click("#btn-hold");
    wait_data(b, "#btn-hold", "held", "true", secs(5));
    wait_data(b, "#call-status", "status", "held", secs(5));
    let music = common::default_prompt("hold_music");
    let held = caller.wait_until(secs(10), |p| {
        let since: Vec<RtpPacket> = p.iter().filter(|q| q.at > t).cloned().collect();
        prompt_frames(&since, &music).iter().flatten().count() >= 50
    });
    assert!(held, "the caller does not hear the hold music");
    let calls = admin_get(engine, "/api/calls");
    assert!(
        calls.as_array().is_some_and(|c| c
            .iter()
            .any(|c| c["phase"] == "on-hold" && c["agent"] == "alice")),
        "{calls}"
    );
    let t = Instant::now();
    b.click("#btn-hold");
    wait_data(b, "#btn-hold", "held", "false", secs(5));
    wait_data(b, "#call-status", "status", "connected", secs(5));
    wait_tone(
        "the caller, resumed",
        &|| caller.received(),
        t,
        BROWSER_HZ,
        secs(10),
    );
}

/// Blind transfer to Dr Martin's mobile (code 1): a SIPp UAS at the
/// trunk's gateway answers +33611223344, talks 4 s and hangs up. The
/// caller and the mobile hear each other; Alice is free (wrap-up).
fn blind_transfer_to_the_mobile(b: &mut Browser, engine: &Engine, caller: &TonePeer, gw: u16) {
    let (mobile_rtp, mobile) = SippBg::uas_with_rtp(
        "agent_answer_bye.xml",
        gw,
        0,
        MOBILE_FILL,
        &["-d", "4000"],
        secs(40),
    );
    let t = Instant::now();
    b.type_into("#transfer-target", "1");
    b.click("#btn-blind-transfer");
    let bridged = caller.wait_until(secs(10), |p| {
        let since: Vec<RtpPacket> = p.iter().filter(|q| q.at > t).cloned().collect();
        count_fill(&since, MOBILE_FILL) > 50
    });
    assert!(bridged, "the caller does not hear the practitioner");
    wait_tone(
        "the mobile",
        &|| mobile_rtp.received(),
        t,
        CALLER_HZ,
        secs(5),
    );
    let refer = engine
        .wait_event("call.refer", secs(2))
        .expect("call.refer logged");
    assert_eq!(refer["accepted"], true, "{refer}");
    b.wait_for(
        "['ended', 'idle'].includes(document.querySelector('#call-status').dataset.status)",
        secs(10),
    );
    wait_data(b, "#agent-state", "state", "wrap_up", secs(5));
    let gw_run = mobile.finish_ok(secs(15), "gateway (the mobile)");
    let invite = common::received_request(&gw_run, "INVITE").expect("INVITE at the gateway");
    assert!(invite.starts_with("INVITE sip:+33611223344@"), "{invite}");
    let ended = engine
        .wait_for("call.ended", secs(10), |e| {
            field(e, "reason") == "transferred"
        })
        .unwrap_or_else(|| panic!("no transferred call.ended\n{}", engine.dump()));
    assert_eq!(field(&ended, "agent"), "alice", "{ended}");
}

/// After her wrap-up Alice is offered a second call, answers it with the
/// keyboard (Alt+A), then hangs up with the button: the caller gets the
/// engine's BYE.
fn answer_with_the_keyboard_then_hang_up(b: &mut Browser, engine: &Engine) {
    wait_data(b, "#agent-state", "state", "available", secs(10));
    let (caller, carrier) = call_martin(engine, "carrier_wait_bye.xml", &[]);
    b.wait_for(&visible_js("#offer"), secs(15));
    wait_data(b, "#call-status", "status", "ringing", secs(5));
    let t = Instant::now();
    b.key("Alt+A");
    wait_data(b, "#call-status", "status", "connected", secs(10));
    wait_tone(
        "the second caller",
        &|| caller.received(),
        t,
        BROWSER_HZ,
        secs(10),
    );
    b.click("#btn-hangup");
    joined(carrier, "second caller");
    let ended = engine
        .wait_for("call.ended", secs(5), |e| {
            field(e, "reason") == "agent-hangup"
        })
        .unwrap_or_else(|| panic!("no agent-hangup call.ended\n{}", engine.dump()));
    assert_eq!(field(&ended, "agent"), "alice", "{ended}");
    b.wait_for(
        "['ended', 'idle'].includes(document.querySelector('#call-status').dataset.status)",
        secs(5),
    );
}

/// Pause with the first reason of the list, then unpause, through the
/// page: the page, the console API and the admin API agree.
fn pause_and_unpause(b: &mut Browser, engine: &Engine) {
    wait_data(b, "#agent-state", "state", "available", secs(10));
    let reason = b.eval(
        "(() => { const o = [...document.querySelector('#pause-reason').options]\
         .find(o => o.value); if (!o) throw new Error('#pause-reason has no reason'); \
         return [o.value, o.textContent.trim()]; })()",
    );
    let (value, label) = (
        reason[0].as_str().unwrap_or_default().to_string(),
        reason[1].as_str().unwrap_or_default().to_string(),
    );
    b.select("#pause-reason", &value);
    b.click("#btn-pause");
    wait_data(b, "#agent-state", "state", "paused", secs(5));
    let alice = wait_agent(engine, "alice", secs(5), |a| a["state"] == "paused");
    let why = field(&alice, "pause_reason");
    assert!(
        why == value || why == label,
        "pause reason {why:?}: {alice}"
    );
    let state = b.eval("fetch('/console/api/state').then(r => r.json())");
    assert_eq!(state["state"], "paused", "{state}");
    b.click("#btn-unpause");
    wait_data(b, "#agent-state", "state", "available", secs(5));
    wait_agent(engine, "alice", secs(5), |a| a["state"] == "available");
}

// ---------------------------------------------------------------------------
// Interop: any WebRTC SIP client can be an agent.

/// A bare JsSIP softphone: registers with the query's credentials and
/// answers every call; `window.interop` tells the test what happened.
const JSSIP_PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>JsSIP interop</title>
<script src="/jssip.min.js"></script></head>
<body><audio id="remote" autoplay></audio>
<script>
const q = new URLSearchParams(location.search);
const t = window.interop = { registered: false, error: null, incoming: null,
  confirmed: false, ended: null, level: () => 0 };
function watch(pc) {
  if (t.pc) return;
  t.pc = pc;
  pc.addEventListener('track', (ev) => {
    const stream = ev.streams[0] || new MediaStream([ev.track]);
    const el = document.getElementById('remote');
    el.srcObject = stream;
    el.play().catch(() => {});
    const ctx = new AudioContext();
    const an = ctx.createAnalyser();
    an.fftSize = 2048;
    ctx.createMediaStreamSource(stream).connect(an);
    const buf = new Float32Array(an.fftSize);
    t.level = () => { an.getFloatTimeDomainData(buf);
      let s = 0; for (const x of buf) s += x * x; return Math.sqrt(s / buf.length); };
  });
}
t.inbound = async () => {
  if (!t.pc) return null;
  let out = null;
  (await t.pc.getStats()).forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'audio') out = { packets: r.packetsReceived };
  });
  return out;
};
try {
  const ua = new JsSIP.UA({
    sockets: [new JsSIP.WebSocketInterface(q.get('ws'))],
    uri: q.get('uri'), authorization_user: q.get('user'), password: q.get('password'),
    register: true, session_timers: false,
  });
  ua.on('registered', () => { t.registered = true; });
  ua.on('registrationFailed', (e) => { t.error = 'registration failed: ' + e.cause; });
  ua.on('newRTCSession', (e) => {
    if (e.originator !== 'remote') return;
    const s = e.session, r = e.request;
    t.incoming = { display: r.from.display_name, user: r.from.uri.user,
      practice: r.getHeader('X-Permanence-Practice'), wait: r.getHeader('X-Permanence-Wait') };
    s.on('peerconnection', (ev) => watch(ev.peerconnection));
    s.on('confirmed', () => { t.confirmed = true; });
    s.on('ended', (ev) => { t.ended = 'ended: ' + ev.cause; });
    s.on('failed', (ev) => { t.ended = 'failed: ' + ev.cause; });
    s.answer({ mediaConstraints: { audio: true, video: false } });
    if (s.connection) watch(s.connection);
  });
  ua.start();
  window.ua = ua;
} catch (e) { t.error = 'exception: ' + e; }
</script></body></html>
"#;

#[test]
fn jssip_softphone_registers_over_websocket_and_answers() {
    let _one = serial();
    let (cfg, ws, _gw) = config();
    let engine = Engine::start(&cfg, &[]);
    let dir = TempDir::new("console-interop");
    let mut b = browser(&dir);
    let server = jssip_page_server();
    let query =
        format!("?ws=ws://127.0.0.1:{ws}&uri=sip:alice@127.0.0.1&user=alice&password=alice-demo");
    b.navigate(&server.url(&format!("/{query}")));
    b.wait_for(
        "window.interop.registered || window.interop.error",
        secs(10),
    );
    assert_eq!(b.eval("window.interop.error"), Value::Null);
    wait_agent(&engine, "alice", secs(5), |a| a["reachable"] == true);

    let (caller, carrier) = call_martin(&engine, "carrier_call.xml", &["-d", "9000"]);
    let incoming = b.wait_for("window.interop.incoming", secs(15));
    assert_eq!(incoming["practice"], "martin", "{incoming}");
    // The practice's name shows first (the engine adds the specialty).
    assert!(
        incoming["display"]
            .as_str()
            .is_some_and(|d| d.starts_with("Cabinet du Dr Martin")),
        "{incoming}"
    );
    assert_eq!(incoming["user"], "+33612345678", "{incoming}");
    let t = Instant::now();
    b.wait_for("window.interop.confirmed || window.interop.ended", secs(10));
    assert_eq!(b.eval("window.interop.ended"), Value::Null);
    let heard = wait_tone("the caller", &|| caller.received(), t, BROWSER_HZ, secs(10));
    eprintln!("the caller hears the JsSIP phone: {heard:?}");
    b.wait_for("window.interop.level() > 0.01", secs(10));
    let stats = b.wait_for(
        "window.interop.inbound().then(s => s && s.packets > 50 && s)",
        secs(5),
    );
    eprintln!("JsSIP inbound RTP: {stats}");
    joined(carrier, "caller");
    b.wait_for("window.interop.ended", secs(5));
    let ended = engine
        .wait_event("call.ended", secs(5))
        .expect("call.ended logged");
    assert_eq!(field(&ended, "agent"), "alice", "{ended}");
}

/// The console's dialler calls a patient as the practice: the browser's
/// own INVITE (a WebRTC offer, answered by the engine's peer) goes out
/// through the trunk's gateway with Dr Martin's number, and the two talk.
#[test]
fn console_dials_a_patient_as_the_practice() {
    let _one = serial();
    let (cfg, _ws, gw_port) = config();
    let engine = Engine::start(&cfg, &[]);
    let dir = TempDir::new("console-dial");
    let mut b = browser(&dir);
    let (patient_rtp, gateway) = SippBg::uas_with_rtp(
        "agent_answer.xml",
        gw_port,
        0,
        0x55,
        &["-d", "300"],
        secs(40),
    );
    log_in(&mut b, &engine);
    b.select("#dial-practice", "martin");
    b.type_into("#dial-number", "06 12 34 56 78");
    b.click("#btn-dial");
    wait_data(&mut b, "#call-status", "status", "connected", secs(15));
    // The patient hears the browser's tone; the page hears the patient.
    let t = Instant::now();
    let pcm = || {
        patient_rtp
            .received()
            .into_iter()
            .filter(|p| p.pt == 0)
            .collect::<Vec<_>>()
    };
    wait_tone("the patient", &pcm, t, BROWSER_HZ, secs(10));
    b.wait_for(
        "window.permanenceConsole.remoteAudioLevel() > 0.001",
        secs(10),
    );
    b.click("#btn-hangup");
    let gw = gateway.finish_ok(secs(10), "gateway");
    let invite = common::received_request(&gw, "INVITE").expect("INVITE at the gateway");
    assert!(
        invite.starts_with(&format!("INVITE sip:+33612345678@127.0.0.1:{gw_port}")),
        "{invite}"
    );
    assert!(
        invite.contains("From: \"Cabinet du Dr Martin\" <sip:+33450000001@"),
        "{invite}"
    );
    let placed = engine
        .wait_event("outbound.ended", secs(5))
        .or_else(|| engine.wait_event("outbound.answered", secs(1)));
    assert!(placed.is_some(), "the outbound call is logged");
}

/// The console's API without a session, with a wrong CSRF token, and
/// under password guessing, against the real engine.
#[test]
fn console_api_refuses_strangers_and_throttles_guessing() {
    let (cfg, _ws, _gw) = config();
    let engine = Engine::start(&cfg, &[]);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(secs(10)))
        .build()
        .into();
    let url = |p: &str| format!("http://{}{p}", engine.http);
    for path in [
        "/console/api/me",
        "/console/api/state",
        "/console/api/today",
    ] {
        let r = agent.get(&url(path)).call().expect("GET");
        assert_eq!(r.status().as_u16(), 401, "{path}");
    }
    let r = agent
        .post(&url("/console/api/state"))
        .header("Content-Type", "application/json")
        .send(r#"{"action":"pause"}"#)
        .expect("POST");
    assert_eq!(r.status().as_u16(), 401);
    let login = |password: &str| {
        agent
            .post(&url("/console/api/login"))
            .header("Content-Type", "application/json")
            .send(format!(r#"{{"username":"alice","password":"{password}"}}"#))
            .expect("login")
    };
    // The right password: a session cookie, HttpOnly, SameSite=Strict.
    let ok = login("alice-demo");
    assert_eq!(ok.status().as_u16(), 200);
    let cookie = ok
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap_or("").to_string();
    // A POST with the session but without the CSRF token: 403.
    let r = agent
        .post(&url("/console/api/state"))
        .header("Content-Type", "application/json")
        .header("Cookie", &session)
        .send(r#"{"action":"pause"}"#)
        .expect("POST");
    assert_eq!(r.status().as_u16(), 403);
    // Guessing: wrong answers are throttled (429 with Retry-After), and
    // audited.
    let mut statuses = Vec::new();
    for i in 0..12 {
        statuses.push(login(&format!("guess-{i}")).status().as_u16());
    }
    assert_eq!(statuses.first(), Some(&401), "{statuses:?}");
    assert!(statuses.contains(&429), "never throttled: {statuses:?}");
    let (_, audit) = http_call(&engine, "GET", "/api/audit?limit=50", ADMIN, None);
    assert!(audit.contains("console"), "logins audited: {audit}");
    assert!(!audit.contains("guess-"), "no password in the audit log");
}

/// A browser that vanishes mid-call (its tab closed: no BYE, its
/// WebSocket gone, its WebRTC media stops): its registration goes at once,
/// the engine notices the media is gone within seconds, counts it, and the
/// caller goes back to the head of the queue where Bob (a SIPp softphone)
/// takes them.
#[test]
fn a_closed_tab_frees_the_agent_and_the_caller_is_served_by_another() {
    let _one = serial();
    let (mut cfg, ws, _gw) = config();
    cfg.routing("martin").insert(
        "dedicated".into(),
        toml::Value::Array(vec!["alice".into(), "bob".into()]),
    );
    let engine = Engine::start(&cfg, &[]);
    let dir = TempDir::new("console-vanish");
    let mut b = browser(&dir);
    let server = jssip_page_server();
    let query =
        format!("?ws=ws://127.0.0.1:{ws}&uri=sip:alice@127.0.0.1&user=alice&password=alice-demo");
    b.navigate(&server.url(&format!("/{query}")));
    b.wait_for(
        "window.interop.registered || window.interop.error",
        secs(10),
    );
    wait_agent(&engine, "alice", secs(5), |a| a["reachable"] == true);
    let (caller, carrier) = call_martin(&engine, "carrier_call.xml", &["-d", "30000"]);
    b.wait_for("window.interop.confirmed || window.interop.ended", secs(15));
    let t = Instant::now();
    wait_tone("the caller", &|| caller.received(), t, BROWSER_HZ, secs(10));
    // Bob's desk phone comes online only now: the call was Alice's.
    let bob_port = common::free_udp_port();
    common::register_agent(engine.sip, "bob", "bob-demo", bob_port);
    let (bob_rtp, bob) = SippBg::uas_with_rtp("agent_answer.xml", bob_port, 0, 0x2b, &[], secs(50));
    b.navigate("about:blank");
    let lost = engine
        .wait_event("call.agent_lost", secs(15))
        .expect("the vanished browser is noticed");
    eprintln!("browser gone noticed after {:?}", t.elapsed());
    let gone = engine
        .wait_event("agent.unregistered", secs(1))
        .expect("alice's contact removed with her connection");
    assert_eq!(field(&gone, "reason"), "ConnectionClosed", "{gone}");
    assert_eq!(field(&lost, "practice"), "martin", "{lost}");
    wait_agent(&engine, "alice", secs(2), |a| a["reachable"] == false);
    // Back at the head of the queue, Bob answers: the caller hears him.
    let deadline = Instant::now() + secs(15);
    while count_fill(&caller.received(), 0x2b) <= 50 {
        assert!(
            Instant::now() < deadline,
            "the caller does not hear Bob after Alice's tab closed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        bob_rtp.wait_until(secs(5), |p| p.len() > 50),
        "Bob hears nothing"
    );
    let (_, metrics) = http_call(&engine, "GET", "/metrics", "", None);
    assert_eq!(
        common::metric(&metrics, "permanence_agents_lost_total"),
        Some(1.0),
        "counted once"
    );
    joined(carrier, "caller");
    drop(bob);
    let ended = engine
        .wait_event("call.ended", secs(5))
        .expect("call.ended logged");
    assert_eq!(field(&ended, "agent"), "bob", "{ended}");
}

/// The JsSIP page and the console's vendored JsSIP build, served by the
/// test.
fn jssip_page_server() -> PageServer {
    let jssip_path = repo().join("crates/console/assets/jssip.min.js");
    let jssip = std::fs::read(&jssip_path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the console vendors JsSIP there)",
            jssip_path.display()
        )
    });
    PageServer::start(vec![
        (
            "/".into(),
            "text/html; charset=utf-8".into(),
            JSSIP_PAGE.as_bytes().to_vec(),
        ),
        (
            "/jssip.min.js".into(),
            "text/javascript; charset=utf-8".into(),
            jssip,
        ),
    ])
}

// ---------------------------------------------------------------------------
// Helpers.

/// Waits until `selector`'s `data-<key>` is `value`; panics with what it
/// is on timeout.
fn wait_data(b: &mut Browser, selector: &str, key: &str, value: &str, timeout: Duration) {
    if let Err(e) = b.try_wait_for(&data_is(selector, key, value), timeout) {
        let now = b.eval(&format!(
            "(() => {{ const el = document.querySelector({}); \
             return el ? [el.dataset[{}], el.textContent.trim()] : 'no such element'; }})()",
            js_string(selector),
            js_string(key)
        ));
        b.fail(&format!(
            "{selector} data-{key} is not {value:?} after {timeout:?}: [data-{key}, text] = {now} ({e})"
        ));
    }
}

/// JavaScript: whether `selector`'s `data-<key>` is `value`.
fn data_is(selector: &str, key: &str, value: &str) -> String {
    format!(
        "(() => {{ const el = document.querySelector({}); return !!el && el.dataset[{}] === {}; }})()",
        js_string(selector),
        js_string(key),
        js_string(value)
    )
}

/// Whitespace collapsed (text from the page against text from a TOML
/// file).
fn words(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A patient of Dr Martin whose RTP is a 1 kHz tone: SIPp runs `scenario`
/// (with SIPp arguments `extra`) on a thread, bounded to 50 s.
fn call_martin(
    engine: &Engine,
    scenario: &'static str,
    extra: &[&str],
) -> (TonePeer, JoinHandle<SippRun>) {
    let rtp = TonePeer::start(CALLER_HZ);
    let run = sipp_thread(
        scenario,
        engine.sip,
        carrier_vars(MARTIN, rtp.port),
        extra.iter().map(|s| s.to_string()).collect(),
        secs(50),
    );
    (rtp, run)
}

/// `GET path` on the admin API (the demo's admin token): JSON.
fn admin_get(engine: &Engine, path: &str) -> Value {
    let (code, body) = http_call(engine, "GET", path, ADMIN, None);
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// Waits until the admin API's view of `agent` satisfies `pred`; returns
/// it (panics with the last view on timeout).
fn wait_agent(
    engine: &Engine,
    agent: &str,
    timeout: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let agents = admin_get(engine, "/api/agents");
        let view = agents
            .as_array()
            .and_then(|a| a.iter().find(|v| field(v, "agent") == agent))
            .cloned()
            .unwrap_or(Value::Null);
        if pred(&view) {
            return view;
        }
        assert!(Instant::now() < deadline, "agent {agent}: {view}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------
// Tones over RTP.

/// The patient's RTP endpoint: sends 20 ms PCMU frames of a sine (8000
/// peak) to where the engine's RTP comes from (symmetric RTP), keeps what
/// it receives.
struct TonePeer {
    port: u16,
    stop: Arc<AtomicBool>,
    received: Arc<Mutex<Vec<RtpPacket>>>,
    thread: Option<JoinHandle<()>>,
}

impl TonePeer {
    fn start(hz: f64) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind the caller's RTP");
        let port = sock.local_addr().expect("RTP address").port();
        sock.set_read_timeout(Some(Duration::from_millis(5)))
            .expect("RTP read timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (stop2, received2) = (stop.clone(), received.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut remote: Option<SocketAddr> = None;
            let (mut seq, mut n) = (7000u16, 0u32);
            let mut next = Instant::now();
            while !stop2.load(Ordering::Relaxed) {
                if let Ok((len, from)) = sock.recv_from(&mut buf) {
                    if let Some(p) = parse_rtp(&buf[..len], from) {
                        remote.get_or_insert(from);
                        received2.lock().expect("received RTP").push(p);
                    }
                }
                let Some(to) = remote else { continue };
                if Instant::now() < next {
                    continue;
                }
                next += Duration::from_millis(20);
                let frame: Vec<u8> = (n..n + 160)
                    .map(|i| {
                        let x = (2.0 * std::f64::consts::PI * hz * f64::from(i) / 8000.0).sin();
                        linear_to_ulaw((8000.0 * x) as i16)
                    })
                    .collect();
                let _ = sock.send_to(&rtp_packet(0, seq, n, 0x70_4e_00_01, false, &frame), to);
                seq = seq.wrapping_add(1);
                n = n.wrapping_add(160);
            }
        });
        Self {
            port,
            stop,
            received,
            thread: Some(thread),
        }
    }

    fn received(&self) -> Vec<RtpPacket> {
        self.received.lock().expect("received RTP").clone()
    }

    fn wait_until(&self, timeout: Duration, pred: impl Fn(&[RtpPacket]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if pred(&self.received()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for TonePeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// G.711 µ-law encoding of a linear sample.
fn linear_to_ulaw(s: i16) -> u8 {
    let mut x = i32::from(s);
    let sign = if x < 0 {
        x = -x;
        0x80
    } else {
        0
    };
    let x = x.min(32_635) + 0x84;
    let exponent = (31 - x.leading_zeros() as i32 - 7).clamp(0, 7);
    let mantissa = (x >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) as u8 | mantissa as u8)
}

/// What a stretch of decoded audio sounds like.
#[derive(Debug, Clone, Copy)]
struct Tone {
    /// RMS in 16-bit units.
    rms: f64,
    /// Upward crossings of a ±RMS/2 band per second.
    hz: f64,
    /// Share of the power at the expected frequency (Goertzel, 100 ms
    /// blocks): near 1 for a clean sine, low for music or noise.
    purity: f64,
}

/// Measures 8 kHz samples against the expected frequency `hz`.
fn tone_of(pcm: &[i16], hz: f64) -> Tone {
    let x: Vec<f64> = pcm.iter().map(|&s| f64::from(s)).collect();
    let rms = (x.iter().map(|v| v * v).sum::<f64>() / x.len().max(1) as f64).sqrt();
    let band = rms / 2.0;
    let (mut ups, mut low) = (0usize, false);
    for &v in &x {
        if v < -band {
            low = true;
        } else if v > band && low {
            ups += 1;
            low = false;
        }
    }
    let freq = ups as f64 * 8000.0 / x.len().max(1) as f64;
    let (mut at_hz, mut total) = (0.0, 0.0);
    let w = 2.0 * std::f64::consts::PI * hz / 8000.0;
    for block in x.chunks_exact(800) {
        let (mut s1, mut s2) = (0.0, 0.0);
        for &v in block {
            let s0 = v + 2.0 * w.cos() * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        let mag2 = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
        at_hz += 2.0 * mag2 / (800.0 * 800.0);
        total += block.iter().map(|v| v * v).sum::<f64>() / 800.0;
    }
    let purity = if total > 0.0 { at_hz / total } else { 0.0 };
    Tone {
        rms,
        hz: freq,
        purity,
    }
}

/// Waits until the last second of G.711 audio that `packets` returns
/// (received after `since`) is a clear tone of `hz`: RMS over 300,
/// frequency within 10 %, most of the power at `hz`. Panics with the last
/// measure on timeout; `who` names the listener.
fn wait_tone(
    who: &str,
    packets: &dyn Fn() -> Vec<RtpPacket>,
    since: Instant,
    hz: f64,
    timeout: Duration,
) -> Tone {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    loop {
        let now = Instant::now();
        let from = since.max(now.checked_sub(secs(1)).unwrap_or(since));
        let window: Vec<RtpPacket> = packets()
            .into_iter()
            .filter(|p| p.at >= from && matches!(p.pt, 0 | 8))
            .collect();
        if window.len() >= 25 {
            let pcm: Vec<i16> = window.iter().flat_map(decode).collect();
            let tone = tone_of(&pcm, hz);
            if tone.rms > 300.0 && (tone.hz - hz).abs() < hz * 0.1 && tone.purity > 0.5 {
                return tone;
            }
            last = Some((window.len(), tone));
        }
        assert!(
            now < deadline,
            "{who} does not hear a {hz} Hz tone (last second: {last:?} (packets, measure))"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_tone_checks_tell_tones_apart() {
    let sine = |hz: f64, amp: f64| -> Vec<i16> {
        (0..8000)
            .map(|i| {
                let x = (2.0 * std::f64::consts::PI * hz * f64::from(i) / 8000.0).sin();
                ulaw_to_linear(linear_to_ulaw((amp * x) as i16))
            })
            .collect()
    };
    for s in [-32768i16, -1000, -1, 0, 1, 100, 5000, 32767] {
        let back = ulaw_to_linear(linear_to_ulaw(s));
        assert!(common::g711_close(back, s), "{s} -> {back}");
    }
    let t = tone_of(&sine(440.0, 8000.0), 440.0);
    assert!((t.hz - 440.0).abs() < 5.0 && t.purity > 0.9, "{t:?}");
    assert!((t.rms - 8000.0 / 2f64.sqrt()).abs() < 200.0, "{t:?}");
    let t = tone_of(&sine(1000.0, 8000.0), 440.0);
    assert!((t.hz - 1000.0).abs() < 10.0 && t.purity < 0.05, "{t:?}");
    let mixed: Vec<i16> = sine(440.0, 4000.0)
        .iter()
        .zip(sine(1000.0, 4000.0))
        .map(|(a, b)| a.saturating_add(b))
        .collect();
    assert!(tone_of(&mixed, 440.0).purity < 0.6);
    assert!(tone_of(&[0; 8000], 440.0).rms == 0.0);
}
