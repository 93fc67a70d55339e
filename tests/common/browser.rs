//! Headless Chromium driven from a test over the Chrome DevTools Protocol
//! (CDP): Debian's `/usr/bin/chromium` with fake media (a generated tone
//! WAV as the microphone), one page, and the few commands a test needs:
//! navigate, evaluate JavaScript, wait for a condition, click, type, press
//! keys, take screenshots. The page's console messages and uncaught
//! exceptions are collected and printed when a test fails.
//!
//! One blocking WebSocket to the browser (tungstenite), the page attached
//! with `flatten` (commands carry its `sessionId`); every call is bounded
//! in time. Chromium runs in a process group of its own, killed by its id
//! on drop (browser, renderers, zygotes), and its profile directory is
//! removed. Chromium missing is a failure, not a skip: CI installs it
//! (`.ci/run`).
//!
//! Also here: [`PageServer`], a tiny HTTP server on 127.0.0.1 for pages a
//! test writes itself, [`tone_wav`] for the fake microphone, and
//! [`png_size`] to check screenshots.

use super::TempDir;
use serde_json::{json, Value};
use std::collections::{HashSet, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

/// Debian's Chromium (package `chromium`).
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Viewport of the page (the issue: readable at 1280×720).
pub const VIEWPORT: (u32, u32) = (1280, 720);

/// How long Chromium may take to print its DevTools address.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Console lines and stderr lines kept for diagnostics.
const KEEP_LINES: usize = 400;

/// What to start Chromium with.
#[derive(Debug, Clone, Default)]
pub struct LaunchOptions {
    /// The fake microphone: a 16-bit PCM WAV (looped), see [`tone_wav`].
    /// Without it Chromium's fake device plays its own beeps.
    pub audio_wav: Option<PathBuf>,
    /// More command-line switches.
    pub extra_args: Vec<String>,
}

impl LaunchOptions {
    /// Options with `wav` as the microphone.
    pub fn with_wav(wav: &Path) -> Self {
        Self {
            audio_wav: Some(wav.to_path_buf()),
            ..Self::default()
        }
    }
}

/// The Chromium process group: killed (SIGKILL to the group, by id) and
/// reaped on drop, also when a launch fails half-way.
struct ChromiumProcess {
    child: Child,
}

impl ChromiumProcess {
    fn kill(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // The browser is the leader of its own process group (spawned
            // with process_group(0)): its id is the group's.
            let group = format!("-{}", self.child.id());
            let _ = Command::new("kill")
                .args(["-KILL", "--", &group])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for ChromiumProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A headless Chromium with one page, driven over CDP.
pub struct Browser {
    // Field order is drop order: the process dies (Drop::drop) before the
    // socket closes and before its profile directory is removed.
    process: ChromiumProcess,
    ws: WebSocket<TcpStream>,
    session: String,
    target: String,
    next_id: u64,
    /// `loaderId`s whose document fired `load`.
    loaded: HashSet<String>,
    console: VecDeque<String>,
    exceptions: Vec<String>,
    crashed: Option<String>,
    /// The diagnostics went into a panic message already.
    reported: std::cell::Cell<bool>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    /// Bound on each command (navigate, evaluate...) unless told otherwise.
    pub timeout: Duration,
    profile: TempDir,
}

impl Browser {
    /// Starts Chromium (see the module doc), waits (bounded) for its
    /// DevTools address, connects and opens a page of 1280×720. Panics
    /// with a clear message when Chromium is missing or does not start.
    pub fn launch(opts: LaunchOptions) -> Browser {
        assert!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: the browser tests need Debian's `chromium` package \
             (apt-get install chromium; .ci/run installs it)"
        );
        let profile = TempDir::new("chromium");
        let mut cmd = Command::new(CHROMIUM);
        cmd.args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--disable-dev-shm-usage",
            "--window-size=1280,720",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            "--autoplay-policy=no-user-gesture-required",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()));
        if let Some(wav) = &opts.audio_wav {
            assert!(wav.is_file(), "fake microphone {} missing", wav.display());
            cmd.arg(format!(
                "--use-file-for-fake-audio-capture={}",
                wav.display()
            ));
        }
        cmd.args(&opts.extra_args).arg("about:blank");
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {CHROMIUM}: {e}"));
        let mut process = ChromiumProcess { child };
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let pipe = process.child.stderr.take().expect("chromium stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            // Reads to the end so that Chromium never blocks on a full pipe.
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.split("DevTools listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_string());
                }
                if std::env::var_os("PERMANENCE_TEST_LOGS").is_some() {
                    eprintln!("chromium: {line}");
                }
                push_bounded(&mut sink.lock().expect("chromium stderr"), line);
            }
        });
        let url = match rx.recv_timeout(LAUNCH_TIMEOUT) {
            Ok(url) => url,
            Err(e) => {
                process.kill();
                let tail = tail_text(&stderr);
                panic!("Chromium printed no DevTools address ({e:?}); its stderr:\n{tail}");
            }
        };
        let ws = connect_ws(&url, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("connecting to Chromium's DevTools at {url}: {e}"));
        let mut b = Browser {
            process,
            ws,
            session: String::new(),
            target: String::new(),
            next_id: 1,
            loaded: HashSet::new(),
            console: VecDeque::new(),
            exceptions: Vec::new(),
            crashed: None,
            reported: std::cell::Cell::new(false),
            stderr,
            timeout: Duration::from_secs(15),
            profile,
        };
        b.open_page();
        b
    }

    /// Creates the page target, attaches to it and enables the domains
    /// whose events the harness reads.
    fn open_page(&mut self) {
        let created = self
            .browser_command("Target.createTarget", json!({"url": "about:blank"}))
            .unwrap_or_else(|e| self.fail(&format!("Target.createTarget: {e}")));
        self.target = created["targetId"]
            .as_str()
            .unwrap_or_else(|| self.fail(&format!("no targetId in {created}")))
            .to_string();
        let attached = self
            .browser_command(
                "Target.attachToTarget",
                json!({"targetId": self.target, "flatten": true}),
            )
            .unwrap_or_else(|e| self.fail(&format!("Target.attachToTarget: {e}")));
        self.session = attached["sessionId"]
            .as_str()
            .unwrap_or_else(|| self.fail(&format!("no sessionId in {attached}")))
            .to_string();
        let (w, h) = VIEWPORT;
        for (method, params) in [
            ("Page.enable", json!({})),
            ("Page.setLifecycleEventsEnabled", json!({"enabled": true})),
            ("Runtime.enable", json!({})),
            ("Log.enable", json!({})),
            (
                "Emulation.setDeviceMetricsOverride",
                json!({"width": w, "height": h, "deviceScaleFactor": 1, "mobile": false}),
            ),
            (
                "Emulation.setFocusEmulationEnabled",
                json!({"enabled": true}),
            ),
            ("Page.bringToFront", json!({})),
        ] {
            if let Err(e) = self.command(method, params) {
                self.fail(&format!("{method}: {e}"));
            }
        }
    }

    /// Chromium's process id (leader of its process group).
    pub fn pid(&self) -> u32 {
        self.process.child.id()
    }

    /// Chromium's profile directory (removed on drop).
    pub fn profile_dir(&self) -> &Path {
        self.profile.path()
    }

    // -- Protocol ----------------------------------------------------------

    /// Sends a command to the page; its `result`, or the protocol error.
    pub fn command(&mut self, method: &str, params: Value) -> Result<Value, String> {
        let t = self.timeout;
        self.command_within(method, params, t)
    }

    /// [`Browser::command`] bounded by `timeout`.
    pub fn command_within(
        &mut self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, String> {
        let session = self.session.clone();
        self.send(Some(&session), method, params, timeout)
    }

    /// A command to the browser itself (no session).
    fn browser_command(&mut self, method: &str, params: Value) -> Result<Value, String> {
        let t = self.timeout;
        self.send(None, method, params, t)
    }

    fn send(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, String> {
        if let Some(why) = &self.crashed {
            return Err(format!("{method}: the page is gone ({why})"));
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = Value::String(s.to_string());
        }
        self.ws
            .send(Message::text(msg.to_string()))
            .map_err(|e| format!("{method}: sending: {e}"))?;
        let deadline = Instant::now() + timeout;
        loop {
            let Some(v) = self.read_message(deadline)? else {
                return Err(format!("{method}: no answer within {timeout:?}"));
            };
            if v.get("id").and_then(Value::as_u64) == Some(id) {
                if let Some(err) = v.get("error") {
                    return Err(format!("{method}: {err}"));
                }
                return Ok(v.get("result").cloned().unwrap_or(Value::Null));
            }
            if v.get("method").is_some() {
                self.on_event(&v);
                if let Some(why) = &self.crashed {
                    return Err(format!("{method}: the page is gone ({why})"));
                }
            }
            // Answers to commands given up on earlier are dropped.
        }
    }

    /// The next protocol message, or `None` once `deadline` has passed.
    fn read_message(&mut self, deadline: Instant) -> Result<Option<Value>, String> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.ws
                .get_mut()
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .map_err(|e| format!("socket timeout: {e}"))?;
            match self.ws.read() {
                Ok(Message::Text(t)) => {
                    return serde_json::from_str(t.as_str())
                        .map(Some)
                        .map_err(|e| format!("bad CDP message {e}: {}", t.as_str()));
                }
                Ok(Message::Close(c)) => return Err(format!("DevTools closed the socket: {c:?}")),
                Ok(_) => continue,
                // A read timeout: tungstenite keeps any partial frame and
                // resumes on the next read.
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(format!("DevTools socket: {e}")),
            }
        }
    }

    fn on_event(&mut self, v: &Value) {
        let p = &v["params"];
        match v["method"].as_str().unwrap_or("") {
            "Page.lifecycleEvent" if p["name"] == "load" => {
                if let Some(l) = p["loaderId"].as_str() {
                    self.loaded.insert(l.to_string());
                }
            }
            "Runtime.consoleAPICalled" => {
                let args: Vec<String> = p["args"]
                    .as_array()
                    .map(|a| a.iter().map(remote_object_text).collect())
                    .unwrap_or_default();
                let line = format!(
                    "console.{}: {}",
                    p["type"].as_str().unwrap_or("log"),
                    args.join(" ")
                );
                push_bounded(&mut self.console, line);
            }
            "Runtime.exceptionThrown" => {
                let text = exception_text(&p["exceptionDetails"]);
                push_bounded(&mut self.console, format!("exception: {text}"));
                self.exceptions.push(text);
            }
            "Log.entryAdded" => {
                let e = &p["entry"];
                let line = format!(
                    "log.{} ({}): {} {}",
                    e["level"].as_str().unwrap_or("?"),
                    e["source"].as_str().unwrap_or("?"),
                    e["text"].as_str().unwrap_or(""),
                    e["url"].as_str().unwrap_or("")
                );
                push_bounded(&mut self.console, line);
            }
            "Inspector.targetCrashed" => self.crashed = Some("renderer crashed".into()),
            "Target.detachedFromTarget" if p["sessionId"] == self.session.as_str() => {
                self.crashed = Some("detached from the page".into());
            }
            _ => {}
        }
    }

    /// Reads events for `dur` (console messages, exceptions, loads).
    pub fn pump(&mut self, dur: Duration) {
        let deadline = Instant::now() + dur;
        while let Ok(Some(v)) = self.read_message(deadline) {
            if v.get("method").is_some() {
                self.on_event(&v);
            }
        }
    }

    // -- Diagnostics -------------------------------------------------------

    /// The page's console messages (and log entries, exceptions) so far.
    pub fn console_messages(&mut self) -> Vec<String> {
        self.pump(Duration::from_millis(1));
        self.console.iter().cloned().collect()
    }

    /// Uncaught exceptions of the page so far.
    pub fn exceptions(&mut self) -> Vec<String> {
        self.pump(Duration::from_millis(1));
        self.exceptions.clone()
    }

    /// Console, exceptions and Chromium's last stderr lines, for a failure
    /// message.
    pub fn diagnostics(&self) -> String {
        let console: Vec<&str> = self.console.iter().map(String::as_str).collect();
        let stderr = tail_text(&self.stderr);
        // Without a system bus nor a sound card (CI, containers) Chromium
        // logs D-Bus and ALSA errors by the dozen: noise.
        let noise = |l: &str| {
            l.contains("dbus/") || l.starts_with("ALSA lib") || l.contains("alsa_util.cc")
        };
        let stderr: Vec<&str> = stderr
            .lines()
            .filter(|l| !noise(l) && !l.trim().is_empty())
            .rev()
            .take(30)
            .collect();
        let stderr: Vec<&str> = stderr.into_iter().rev().collect();
        format!(
            "--- page console ({} lines) ---\n{}\n--- chromium stderr (last lines) ---\n{}",
            console.len(),
            console.join("\n"),
            stderr.join("\n")
        )
    }

    /// Panics with `msg` and the diagnostics.
    pub fn fail(&self, msg: &str) -> ! {
        self.reported.set(true);
        panic!("{msg}\n{}", self.diagnostics())
    }

    // -- Page ----------------------------------------------------------------

    /// Loads `url` and waits (bounded) for its `load` event.
    pub fn navigate(&mut self, url: &str) {
        if let Err(e) = self.try_navigate(url) {
            self.fail(&format!("navigate {url}: {e}"));
        }
    }

    /// [`Browser::navigate`], the error returned.
    pub fn try_navigate(&mut self, url: &str) -> Result<(), String> {
        let deadline = Instant::now() + self.timeout;
        let r = self.command("Page.navigate", json!({"url": url}))?;
        if let Some(e) = r["errorText"].as_str().filter(|e| !e.is_empty()) {
            return Err(e.to_string());
        }
        let Some(loader) = r["loaderId"].as_str().map(str::to_string) else {
            // Same-document navigation (a fragment): nothing to load.
            return Ok(());
        };
        while !self.loaded.contains(&loader) {
            match self.read_message(deadline)? {
                Some(v) if v.get("method").is_some() => self.on_event(&v),
                Some(_) => {}
                None => return Err(format!("no load event within {:?}", self.timeout)),
            }
            if let Some(why) = &self.crashed {
                return Err(format!("the page is gone ({why})"));
            }
        }
        Ok(())
    }

    /// Evaluates `js` in the page (an expression; a promise is awaited) and
    /// returns its value as JSON (`Null` for undefined). Panics with the
    /// JavaScript exception's text and the diagnostics on error.
    pub fn eval(&mut self, js: &str) -> Value {
        match self.try_eval(js) {
            Ok(v) => v,
            Err(e) => self.fail(&format!("eval failed: {e}\n--- script ---\n{js}")),
        }
    }

    /// [`Browser::eval`], the error (exception text) returned.
    pub fn try_eval(&mut self, js: &str) -> Result<Value, String> {
        let t = self.timeout;
        self.try_eval_within(js, t)
    }

    /// [`Browser::try_eval`] bounded by `timeout`.
    pub fn try_eval_within(&mut self, js: &str, timeout: Duration) -> Result<Value, String> {
        let r = self.command_within(
            "Runtime.evaluate",
            json!({
                "expression": js,
                "awaitPromise": true,
                "returnByValue": true,
                "userGesture": true,
            }),
            timeout,
        )?;
        if let Some(ex) = r.get("exceptionDetails") {
            return Err(exception_text(ex));
        }
        Ok(r["result"].get("value").cloned().unwrap_or(Value::Null))
    }

    /// Evaluates `condition` every 100 ms until it is truthy (JavaScript's
    /// sense); returns its value. Panics after `timeout` with the last
    /// value or error and the diagnostics.
    pub fn wait_for(&mut self, condition: &str, timeout: Duration) -> Value {
        match self.try_wait_for(condition, timeout) {
            Ok(v) => v,
            Err(e) => self.fail(&format!("wait_for: {e}")),
        }
    }

    /// [`Browser::wait_for`], the error returned.
    pub fn try_wait_for(&mut self, condition: &str, timeout: Duration) -> Result<Value, String> {
        let deadline = Instant::now() + timeout;
        let mut last;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.try_eval_within(condition, left.max(Duration::from_millis(500))) {
                Ok(v) if truthy(&v) => return Ok(v),
                Ok(v) => last = format!("last value {v}"),
                Err(e) if self.crashed.is_some() => return Err(e),
                Err(e) => last = format!("last error {e}"),
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "`{condition}` still not true after {timeout:?} ({last})"
                ));
            }
            self.pump(Duration::from_millis(100));
        }
    }

    /// Clicks the first element matching `selector` (JavaScript `click()`).
    /// Panics if there is none, or it is hidden or disabled.
    pub fn click(&mut self, selector: &str) {
        if let Err(e) = self.try_click(selector) {
            self.fail(&format!("click {selector}: {e}"));
        }
    }

    /// [`Browser::click`], the error returned.
    pub fn try_click(&mut self, selector: &str) -> Result<(), String> {
        let sel = js_string(selector);
        self.try_eval(&format!(
            "(() => {{ const el = document.querySelector({sel}); \
             if (!el) throw new Error('no element matches ' + {sel}); \
             if (el.disabled) throw new Error({sel} + ' is disabled'); \
             if (el.getClientRects().length === 0) throw new Error({sel} + ' is not displayed'); \
             el.scrollIntoView({{block: 'nearest'}}); el.click(); return true; }})()"
        ))
        .map(|_| ())
    }

    /// Replaces the value of the input matching `selector` by `text`,
    /// typed as the keyboard would (focus, then `Input.insertText`:
    /// `input` events), and fires `change`.
    pub fn type_into(&mut self, selector: &str, text: &str) {
        if let Err(e) = self.try_type_into(selector, text) {
            self.fail(&format!("type into {selector}: {e}"));
        }
    }

    /// [`Browser::type_into`], the error returned.
    pub fn try_type_into(&mut self, selector: &str, text: &str) -> Result<(), String> {
        let sel = js_string(selector);
        self.try_eval(&format!(
            "(() => {{ const el = document.querySelector({sel}); \
             if (!el) throw new Error('no element matches ' + {sel}); \
             if (!('value' in el)) throw new Error({sel} + ' takes no text'); \
             if (el.disabled) throw new Error({sel} + ' is disabled'); \
             el.focus(); el.value = ''; \
             el.dispatchEvent(new Event('input', {{bubbles: true}})); return true; }})()"
        ))?;
        self.command("Input.insertText", json!({"text": text}))?;
        let got = self.try_eval(&format!(
            "(() => {{ const el = document.querySelector({sel}); \
             el.dispatchEvent(new Event('change', {{bubbles: true}})); return el.value; }})()"
        ))?;
        if got.as_str() != Some(text) {
            return Err(format!("typed {text:?}, the field holds {got}"));
        }
        Ok(())
    }

    /// Chooses `value` in the `<select>` matching `selector` and fires
    /// `input` and `change`.
    pub fn select(&mut self, selector: &str, value: &str) {
        let sel = js_string(selector);
        let val = js_string(value);
        let r = self.try_eval(&format!(
            "(() => {{ const el = document.querySelector({sel}); \
             if (!el) throw new Error('no element matches ' + {sel}); \
             if (![...el.options].some(o => o.value === {val})) \
               throw new Error({sel} + ' has no option ' + {val}); \
             el.value = {val}; \
             el.dispatchEvent(new Event('input', {{bubbles: true}})); \
             el.dispatchEvent(new Event('change', {{bubbles: true}})); return true; }})()"
        ));
        if let Err(e) = r {
            self.fail(&format!("select {value:?} in {selector}: {e}"));
        }
    }

    /// Presses and releases a key combination, e.g. `Enter`, `Escape`,
    /// `Alt+A`, `Control+Shift+K`, `5` (`Input.dispatchKeyEvent`, to the
    /// focused element or the document).
    pub fn key(&mut self, combo: &str) {
        if let Err(e) = self.try_key(combo) {
            self.fail(&format!("key {combo}: {e}"));
        }
    }

    /// [`Browser::key`], the error returned.
    pub fn try_key(&mut self, combo: &str) -> Result<(), String> {
        let k = parse_key(combo)?;
        let mut down = json!({
            "type": if k.text.is_some() { "keyDown" } else { "rawKeyDown" },
            "modifiers": k.modifiers,
            "key": k.key,
            "code": k.code,
            "windowsVirtualKeyCode": k.vk,
            "nativeVirtualKeyCode": k.vk,
        });
        if let Some(t) = &k.text {
            down["text"] = Value::String(t.clone());
            down["unmodifiedText"] = Value::String(t.clone());
        }
        self.command("Input.dispatchKeyEvent", down)?;
        self.command(
            "Input.dispatchKeyEvent",
            json!({
                "type": "keyUp",
                "modifiers": k.modifiers,
                "key": k.key,
                "code": k.code,
                "windowsVirtualKeyCode": k.vk,
                "nativeVirtualKeyCode": k.vk,
            }),
        )?;
        Ok(())
    }

    /// The text content of the element matching `selector` (panics if
    /// none).
    pub fn text(&mut self, selector: &str) -> String {
        let sel = js_string(selector);
        let v = self.eval(&format!(
            "(() => {{ const el = document.querySelector({sel}); \
             if (!el) throw new Error('no element matches ' + {sel}); \
             return el.textContent; }})()"
        ));
        v.as_str().unwrap_or_default().to_string()
    }

    /// Whether an element matches `selector` and is displayed.
    pub fn is_visible(&mut self, selector: &str) -> bool {
        self.eval(&visible_js(selector)) == Value::Bool(true)
    }

    /// Captures the page as PNG, writes it to `path` (parent directories
    /// created) and returns the bytes.
    pub fn screenshot(&mut self, path: &Path) -> Vec<u8> {
        match self.try_screenshot(path) {
            Ok(png) => png,
            Err(e) => self.fail(&format!("screenshot {}: {e}", path.display())),
        }
    }

    /// [`Browser::screenshot`], the error returned.
    pub fn try_screenshot(&mut self, path: &Path) -> Result<Vec<u8>, String> {
        use base64::Engine as _;
        let r = self.command(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": false}),
        )?;
        let data = r["data"]
            .as_str()
            .ok_or_else(|| format!("no data in {r}"))?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| format!("base64: {e}"))?;
        if png_size(&png).is_none() {
            return Err("not a PNG".into());
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(path, &png).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(png)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The test failed: say what the page said (the panic message
            // may not include it) and keep a picture of it.
            let shot = std::env::temp_dir().join(format!(
                "permanence-browser-failure-{}-{}.png",
                std::process::id(),
                self.pid()
            ));
            self.timeout = Duration::from_secs(5);
            self.pump(Duration::from_millis(50));
            let saved = match self.try_screenshot(&shot) {
                Ok(_) => format!("screenshot of the page: {}", shot.display()),
                Err(e) => format!("no screenshot: {e}"),
            };
            if self.reported.get() {
                eprintln!("browser at failure: {saved}");
            } else {
                eprintln!("browser at failure: {saved}\n{}", self.diagnostics());
            }
        }
        let _ = self.ws.close(None);
        self.process.kill();
    }
}

// -- Helpers ----------------------------------------------------------------

/// Connects to a DevTools WebSocket URL (`ws://127.0.0.1:PORT/...`),
/// handshake bounded by `timeout`.
fn connect_ws(url: &str, timeout: Duration) -> Result<WebSocket<TcpStream>, String> {
    let hostport = url
        .strip_prefix("ws://")
        .and_then(|r| r.split('/').next())
        .ok_or_else(|| format!("unexpected DevTools URL {url}"))?;
    let addr: SocketAddr = hostport
        .parse()
        .map_err(|e| format!("DevTools address {hostport}: {e}"))?;
    let stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (ws, _) = tungstenite::client::client(url, stream).map_err(|e| e.to_string())?;
    Ok(ws)
}

fn push_bounded(q: &mut VecDeque<String>, line: String) {
    if q.len() >= KEEP_LINES {
        q.pop_front();
    }
    q.push_back(line);
}

fn tail_text(q: &Arc<Mutex<VecDeque<String>>>) -> String {
    q.lock()
        .map(|q| q.iter().cloned().collect::<Vec<_>>().join("\n"))
        .unwrap_or_default()
}

/// A CDP `RemoteObject` as text (a console argument).
fn remote_object_text(o: &Value) -> String {
    match o.get("value") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => o["description"]
            .as_str()
            .or(o["unserializableValue"].as_str())
            .or(o["type"].as_str())
            .unwrap_or("?")
            .to_string(),
    }
}

/// The text of a CDP `ExceptionDetails`: the exception's description
/// (message and stack) when there is one, with where it was thrown.
fn exception_text(d: &Value) -> String {
    let what = d["exception"]["description"]
        .as_str()
        .map(str::to_string)
        .or_else(|| d["exception"].get("value").map(|v| v.to_string()))
        .unwrap_or_else(|| d["text"].as_str().unwrap_or("exception").to_string());
    match d["url"].as_str().filter(|u| !u.is_empty()) {
        Some(url) => format!(
            "{what} (at {url}:{}:{})",
            d["lineNumber"].as_i64().unwrap_or(0) + 1,
            d["columnNumber"].as_i64().unwrap_or(0) + 1
        ),
        None => what,
    }
}

/// JavaScript's truthiness of a JSON value.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0 && !x.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// `s` as a JavaScript string literal.
pub fn js_string(s: &str) -> String {
    serde_json::to_string(s).expect("a JSON string")
}

/// A JavaScript expression: whether an element matches `selector` and is
/// displayed (has a layout box), for [`Browser::wait_for`].
pub fn visible_js(selector: &str) -> String {
    let sel = js_string(selector);
    format!(
        "(() => {{ const el = document.querySelector({sel}); \
         return !!el && el.getClientRects().length > 0; }})()"
    )
}

struct Key {
    key: String,
    code: String,
    vk: u32,
    text: Option<String>,
    modifiers: u32,
}

/// Parses `Alt+A`, `Control+Shift+k`, `Enter`, `Escape`, `5`, `*`...
fn parse_key(combo: &str) -> Result<Key, String> {
    let parts: Vec<&str> = combo.split('+').collect();
    let (name, mods) = match parts.split_last() {
        // "Control++" or "+": the plus key itself.
        Some((&"", rest)) if combo.ends_with('+') => ("+", &rest[..rest.len().saturating_sub(1)]),
        Some((last, rest)) => (*last, rest),
        None => return Err("empty key".into()),
    };
    let mut modifiers = 0u32;
    for m in mods {
        modifiers |= match m.to_ascii_lowercase().as_str() {
            "alt" => 1,
            "ctrl" | "control" => 2,
            "meta" | "cmd" => 4,
            "shift" => 8,
            other => return Err(format!("unknown modifier {other:?} in {combo:?}")),
        };
    }
    let shift = modifiers & 8 != 0;
    // Characters are typed only without Alt, Control or Meta.
    let types = modifiers & 7 == 0;
    let named = |key: &str, vk: u32, text: Option<&str>| Key {
        key: key.into(),
        code: key.into(),
        vk,
        text: text.map(str::to_string),
        modifiers,
    };
    let k = match name {
        "Enter" => named("Enter", 13, types.then_some("\r")),
        "Escape" | "Esc" => named("Escape", 27, None),
        "Tab" => named("Tab", 9, None),
        "Backspace" => named("Backspace", 8, None),
        "Delete" => named("Delete", 46, None),
        "Home" => named("Home", 36, None),
        "End" => named("End", 35, None),
        "ArrowUp" => named("ArrowUp", 38, None),
        "ArrowDown" => named("ArrowDown", 40, None),
        "ArrowLeft" => named("ArrowLeft", 37, None),
        "ArrowRight" => named("ArrowRight", 39, None),
        "Space" | " " => Key {
            key: " ".into(),
            code: "Space".into(),
            vk: 32,
            text: types.then(|| " ".to_string()),
            modifiers,
        },
        f if f.len() >= 2
            && f.starts_with('F')
            && f[1..].parse::<u32>().is_ok_and(|n| (1..=12).contains(&n)) =>
        {
            let n: u32 = f[1..].parse().expect("F-key number");
            named(f, 111 + n, None)
        }
        c if c.chars().count() == 1 => {
            let ch = c.chars().next().expect("one character");
            if ch.is_ascii_alphabetic() {
                let key = if shift {
                    ch.to_ascii_uppercase()
                } else {
                    ch.to_ascii_lowercase()
                };
                Key {
                    key: key.to_string(),
                    code: format!("Key{}", ch.to_ascii_uppercase()),
                    vk: u32::from(ch.to_ascii_uppercase()),
                    text: types.then(|| key.to_string()),
                    modifiers,
                }
            } else if ch.is_ascii_digit() {
                Key {
                    key: ch.to_string(),
                    code: format!("Digit{ch}"),
                    vk: u32::from(ch),
                    text: types.then(|| ch.to_string()),
                    modifiers,
                }
            } else {
                Key {
                    key: ch.to_string(),
                    code: String::new(),
                    vk: 0,
                    text: types.then(|| ch.to_string()),
                    modifiers,
                }
            }
        }
        other => return Err(format!("unknown key {other:?} in {combo:?}")),
    };
    Ok(k)
}

// -- Pages served by the test -------------------------------------------------

/// A tiny HTTP/1.1 server on 127.0.0.1 (free port) serving fixed files to
/// the browser: `GET <path>` answers the file, anything else 404. One
/// request per connection. Stopped on drop.
pub struct PageServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// One file of a [`PageServer`]: path (`/index.html`), content type, body.
pub type Page = (String, String, Vec<u8>);

impl PageServer {
    /// Serves `pages` until dropped.
    pub fn start(pages: Vec<Page>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind page server");
        let addr = listener.local_addr().expect("page server address");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let _ = serve_one(&mut conn, &pages);
            }
        });
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

fn serve_one(conn: &mut TcpStream, pages: &[Page]) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    conn.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let target = head.split_whitespace().nth(1).unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/");
    let found = head
        .starts_with("GET ")
        .then(|| pages.iter().find(|(p, _, _)| p == path))
        .flatten();
    let (status, ctype, body): (&str, &str, &[u8]) = match found {
        Some((_, ctype, body)) => ("200 OK", ctype, body),
        // Asked by every page: no icon, and no 404 in the console.
        None if path == "/favicon.ico" => ("204 No Content", "image/x-icon", b""),
        None => ("404 Not Found", "text/plain", b"not found"),
    };
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    conn.write_all(body)?;
    conn.flush()
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop up.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// -- Media and pictures -------------------------------------------------------

/// Sample rate of [`tone_wav`]: Chromium's fake capture resamples any rate
/// to the capture format, 48 kHz is what it asks for.
pub const TONE_WAV_RATE: u32 = 48_000;

/// Writes a sine of `freq_hz` for `seconds` at half of full scale as a
/// 16-bit mono 48 kHz WAV: the fake microphone for
/// `--use-file-for-fake-audio-capture` (Chromium loops it; with
/// `freq_hz * seconds` a whole number the loop has no click). Returns the
/// samples.
pub fn tone_wav(path: &Path, freq_hz: f64, seconds: f64) -> Vec<i16> {
    let rate = f64::from(TONE_WAV_RATE);
    let n = (seconds * rate).round() as usize;
    let samples: Vec<i16> = (0..n)
        .map(|i| {
            let t = i as f64 / rate;
            (16_384.0 * (2.0 * std::f64::consts::PI * freq_hz * t).sin()) as i16
        })
        .collect();
    write_wav_at(path, TONE_WAV_RATE, &samples);
    samples
}

/// Writes mono 16-bit PCM samples at `rate` as a WAV file.
pub fn write_wav_at(path: &Path, rate: u32, samples: &[i16]) {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, out).expect("write wav");
}

/// Width and height of a PNG (its signature and IHDR chunk), `None` if it
/// is not one.
pub fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    const SIG: &[u8] = b"\x89PNG\r\n\x1a\n";
    if png.len() < 33 || &png[..8] != SIG || &png[12..16] != b"IHDR" {
        return None;
    }
    let w = u32::from_be_bytes(png[16..20].try_into().ok()?);
    let h = u32::from_be_bytes(png[20..24].try_into().ok()?);
    Some((w, h))
}

/// Whether a process of the group `pgid` is still running (from
/// `/proc/*/stat`, zombies ignored): to check that a browser was killed.
pub fn process_group_alive(pgid: u32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .any(|stat| {
            // Fields after the command name: state, ppid, pgrp.
            let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
            let f: Vec<&str> = rest.split_whitespace().collect();
            f.first().is_some_and(|s| *s != "Z") && f.get(2) == Some(&pgid.to_string().as_str())
        })
}
