//! The browser harness itself (tests/common/browser.rs) on this machine:
//! headless Chromium with a generated tone as its microphone, a page
//! served by the test, the DevTools commands the console tests use
//! (navigate, evaluate, wait, click, type, keys, screenshot), page errors
//! surfaced, and nothing left running afterwards.

mod common;

use common::browser::{
    png_size, process_group_alive, tone_wav, visible_js, Browser, LaunchOptions, PageServer,
    VIEWPORT,
};
use common::TempDir;
use std::time::{Duration, Instant};

/// The fake microphone's tone.
const TONE_HZ: f64 = 440.0;

/// A page that plays the microphone into an AnalyserNode and exposes its
/// level and frequency, with a button, a text field and a key handler.
const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>browser smoke</title></head>
<body>
<h1>Permanence browser smoke test</h1>
<p>Microphone: <span id="mic">starting</span></p>
<button id="btn" type="button" data-clicks="0">Click me</button>
<button id="hidden-btn" type="button" hidden>Hidden</button>
<input id="name" type="text">
<p id="echo"></p>
<script>
window.smoke = { clicks: 0, keys: [], error: null, ready: false };
document.getElementById('btn').addEventListener('click', (e) => {
  window.smoke.clicks += 1;
  e.target.dataset.clicks = String(window.smoke.clicks);
});
document.getElementById('name').addEventListener('input', (e) => {
  document.getElementById('echo').textContent = e.target.value;
});
document.addEventListener('keydown', (e) => {
  window.smoke.keys.push((e.altKey ? 'Alt+' : '') + (e.ctrlKey ? 'Control+' : '') + e.key + '/' + e.code);
});
async function start() {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const ctx = new AudioContext();
    await ctx.resume();
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 4096;
    ctx.createMediaStreamSource(stream).connect(analyser);
    const buf = new Float32Array(analyser.fftSize);
    window.smoke.level = () => {
      analyser.getFloatTimeDomainData(buf);
      let s = 0;
      for (const x of buf) s += x * x;
      return Math.sqrt(s / buf.length);
    };
    // Upward crossings of a band around zero, per second.
    window.smoke.freq = () => {
      analyser.getFloatTimeDomainData(buf);
      const t = 0.5 * window.smoke.level();
      let up = 0, low = false;
      for (const x of buf) {
        if (x < -t) low = true;
        else if (x > t && low) { up += 1; low = false; }
      }
      return up * ctx.sampleRate / buf.length;
    };
    window.smoke.track = stream.getAudioTracks()[0].label;
    window.smoke.ready = true;
    document.getElementById('mic').textContent = 'on';
  } catch (e) {
    window.smoke.error = String(e);
    document.getElementById('mic').textContent = 'error: ' + e;
  }
}
start();
console.log('smoke page loaded');
</script>
</body></html>
"#;

#[test]
fn headless_chromium_hears_the_fake_tone_and_is_driven_over_devtools() {
    let started = Instant::now();
    let dir = TempDir::new("browser-smoke");
    eprintln!("scratch: {}", dir.path().display());
    let wav = dir.path().join("tone.wav");
    tone_wav(&wav, TONE_HZ, 2.0);
    let server = PageServer::start(vec![(
        "/".into(),
        "text/html; charset=utf-8".into(),
        PAGE.as_bytes().to_vec(),
    )]);
    let mut b = Browser::launch(LaunchOptions::with_wav(&wav));
    let pid = b.pid();
    let profile = b.profile_dir().to_path_buf();
    b.navigate(&server.url("/"));
    assert_eq!(b.eval("document.title"), "browser smoke");

    // The fake microphone plays the tone: the page hears it at about
    // half of full scale (RMS 0.35), at 440 Hz.
    b.wait_for(
        "window.smoke.ready || window.smoke.error",
        Duration::from_secs(10),
    );
    let err = b.eval("window.smoke.error");
    assert!(err.is_null(), "getUserMedia failed: {err}");
    let steady = "(() => { const l = window.smoke.level(), f = window.smoke.freq(); \
                  return l > 0.01 && f > 396 && f < 484 && [l, f]; })()";
    if let Err(e) = b.try_wait_for(steady, Duration::from_secs(10)) {
        let now = b.eval("[window.smoke.level(), window.smoke.freq()]");
        b.fail(&format!(
            "no steady {TONE_HZ} Hz tone: {e}; [level, Hz] now {now}"
        ));
    }
    // Still there seconds later: the capture's audio processing (noise
    // suppression, gain control: on by default) does not fade it out.
    let mut levels = Vec::new();
    for _ in 0..6 {
        b.pump(Duration::from_millis(500));
        let v = b.eval("[window.smoke.level(), window.smoke.freq()]");
        levels.push((v[0].as_f64().unwrap_or(0.0), v[1].as_f64().unwrap_or(0.0)));
    }
    eprintln!(
        "microphone {}: [level, Hz] every 0.5 s: {levels:.3?}",
        b.eval("window.smoke.track")
    );
    for (level, freq) in &levels {
        assert!(*level > 0.01, "level {level}: {levels:?}");
        assert!(
            (TONE_HZ * 0.9..TONE_HZ * 1.1).contains(freq),
            "the page hears {freq} Hz, not the {TONE_HZ} Hz tone: {levels:?}"
        );
    }

    // Clicks: visible buttons only, a missing element is an error.
    b.click("#btn");
    b.wait_for(
        "document.querySelector('#btn').dataset.clicks === '1'",
        Duration::from_secs(2),
    );
    let missing = b.try_click("#no-such-button").expect_err("missing element");
    assert!(missing.contains("#no-such-button"), "{missing}");
    let hidden = b.try_click("#hidden-btn").expect_err("hidden element");
    assert!(hidden.contains("not displayed"), "{hidden}");
    assert!(b.is_visible("#btn"));
    assert!(!b.is_visible("#hidden-btn"));
    assert_eq!(b.eval(&visible_js("#nothing")), false);

    // Typing fires input events; keys carry their modifiers.
    b.type_into("#name", "Cabinet du Dr Martin");
    assert_eq!(b.text("#echo"), "Cabinet du Dr Martin");
    b.key("Alt+A");
    b.key("Escape");
    b.key("Enter");
    let keys = b.wait_for(
        "window.smoke.keys.length >= 3 && window.smoke.keys",
        Duration::from_secs(2),
    );
    assert_eq!(
        keys,
        serde_json::json!(["Alt+a/KeyA", "Escape/Escape", "Enter/Enter"])
    );

    // Script errors come back with the exception's text; the console and
    // uncaught exceptions are collected.
    let e = b
        .try_eval("(() => { throw new Error('boom from the page'); })()")
        .expect_err("a throwing script");
    assert!(e.contains("boom from the page"), "{e}");
    let e = b
        .try_eval("Promise.reject(new TypeError('rejected here'))")
        .expect_err("a rejected promise");
    assert!(e.contains("rejected here"), "{e}");
    assert_eq!(b.eval("Promise.resolve(40 + 2)"), 42);
    b.eval("setTimeout(() => { throw new Error('uncaught later'); }, 0); true");
    b.eval("console.warn('warned', 7); true");
    b.wait_for(
        "new Promise(r => setTimeout(() => r(true), 200))",
        Duration::from_secs(2),
    );
    let console = b.console_messages();
    assert!(
        console
            .iter()
            .any(|l| l == "console.log: smoke page loaded"),
        "{console:?}"
    );
    assert!(
        console.iter().any(|l| l == "console.warning: warned 7"),
        "{console:?}"
    );
    let exceptions = b.exceptions();
    assert!(
        exceptions.iter().any(|x| x.contains("uncaught later")),
        "{exceptions:?}"
    );
    // A condition that never holds times out with what it last saw.
    let t0 = Instant::now();
    let e = b
        .try_wait_for("window.smoke.clicks > 5", Duration::from_millis(500))
        .expect_err("never true");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert!(e.contains("last value false"), "{e}");

    // A screenshot of the whole 1280x720 page.
    let shot = dir.path().join("smoke.png");
    let png = b.screenshot(&shot);
    assert_eq!(png_size(&png), Some(VIEWPORT));
    assert!(png.len() > 2_000, "PNG of {} bytes", png.len());
    assert_eq!(std::fs::read(&shot).expect("screenshot file"), png);

    // Dropped: Chromium's whole process group is gone, its profile too.
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(5);
    while process_group_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!process_group_alive(pid), "Chromium ({pid}) still running");
    if std::env::var_os("PERMANENCE_KEEP_TMP").is_none() {
        assert!(!profile.exists(), "profile {} left", profile.display());
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}
