//! Test harness: runs the real `permanence` binary on a generated copy of
//! the demo configuration (free ports on 127.0.0.1, tweaks per test), reads
//! its JSON logs, and drives real peers (SIPp, baresip) against it. Every
//! process is bounded in time and killed by PID when the test ends.

#![allow(dead_code)]

pub mod browser;

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let base = std::env::temp_dir().join(format!(
            "permanence-{tag}-{}-{}",
            std::process::id(),
            rand_u32()
        ));
        std::fs::create_dir_all(&base).expect("temp dir");
        Self(base)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("PERMANENCE_KEEP_TMP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish() as u32
}

/// A port free for both UDP and TCP on 127.0.0.1.
pub fn free_port() -> u16 {
    for _ in 0..200 {
        let Ok(t) = TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = t.local_addr() else { continue };
        if UdpSocket::bind(addr).is_ok() {
            return addr.port();
        }
    }
    panic!("no free port");
}

/// The `sip_listen` port for a baresip softphone: baresip listens on it
/// for UDP and TCP and on the next port for TLS, so both must be free. Taken
/// at random in 10000-19999, below the kernel's ephemeral ports (which
/// other tests' outgoing connections take at any moment) and outside the
/// tests' RTP range (20000-40000).
pub fn free_baresip_port() -> u16 {
    let free = |p: u16| {
        TcpListener::bind(("127.0.0.1", p)).is_ok() && UdpSocket::bind(("127.0.0.1", p)).is_ok()
    };
    for _ in 0..500 {
        let p = 10_000 + (rand_u32() % 9_998) as u16;
        if free(p) && free(p + 1) {
            return p;
        }
    }
    panic!("no free port pair for baresip");
}

/// A free UDP port on 127.0.0.1 (released before return).
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free udp port")
}

/// An even-aligned range of `n` UDP ports that are all free right now.
pub fn free_rtp_range(n: u16) -> (u16, u16) {
    for _ in 0..500 {
        let base = (20_000 + (rand_u32() % 20_000) as u16) & !1;
        let ok = (base..base + n).all(|p| UdpSocket::bind(("127.0.0.1", p)).is_ok());
        if ok {
            return (base, base + n - 1);
        }
    }
    panic!("no free RTP range");
}

/// Loads a TOML file as a table.
pub fn load_toml(path: &Path) -> toml::Table {
    let text = std::fs::read_to_string(path).expect("read toml");
    text.parse::<toml::Table>().expect("parse toml")
}

/// A test configuration: the demo config and dialplans, with ports and
/// anything else a test needs changed, written to a temp dir.
pub struct TestConfig {
    pub main: toml::Table,
    pub dialplans: Vec<(String, toml::Table)>,
    pub sip_port: u16,
    /// SIP over TLS.
    pub tls_port: u16,
    /// SIP over WebSocket (browsers).
    pub ws_port: u16,
    pub http_port: u16,
    pub rtp: (u16, u16),
    /// Scratch directory for files the configuration refers to (generated
    /// prompts); kept alive by the engine started on this configuration.
    pub scratch: Option<Arc<TempDir>>,
    /// The call records database, when a test puts it elsewhere than the
    /// engine's `data/permanence.db`.
    pub records_path: Option<PathBuf>,
}

impl TestConfig {
    /// The demo configuration on free ports.
    pub fn demo() -> Self {
        let root = repo();
        let mut main = load_toml(&root.join("config/permanence.toml"));
        let sip_port = free_port();
        let tls_port = free_port();
        let ws_port = free_port();
        let http_port = free_port();
        let rtp = free_rtp_range(40);
        {
            let sip = main
                .get_mut("sip")
                .and_then(|v| v.as_table_mut())
                .expect("[sip]");
            sip.insert(
                "listen_udp".into(),
                toml::Value::Array(vec![format!("127.0.0.1:{sip_port}").into()]),
            );
            sip.insert(
                "listen_tcp".into(),
                toml::Value::Array(vec![format!("127.0.0.1:{sip_port}").into()]),
            );
            sip.insert(
                "listen_tls".into(),
                toml::Value::Array(vec![format!("127.0.0.1:{tls_port}").into()]),
            );
            sip.insert(
                "listen_ws".into(),
                toml::Value::Array(vec![format!("127.0.0.1:{ws_port}").into()]),
            );
        }
        {
            let r = main
                .get_mut("rtp")
                .and_then(|v| v.as_table_mut())
                .expect("[rtp]");
            r.insert("port_min".into(), i64::from(rtp.0).into());
            r.insert("port_max".into(), i64::from(rtp.1).into());
        }
        if let Some(h) = main.get_mut("http").and_then(|v| v.as_table_mut()) {
            h.insert("listen".into(), format!("127.0.0.1:{http_port}").into());
        }
        let mut dialplans = Vec::new();
        let dir = root.join("dialplans");
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .expect("dialplans dir")
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        entries.sort();
        for p in entries {
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("x.toml")
                .to_string();
            dialplans.push((name, load_toml(&p)));
        }
        Self {
            main,
            dialplans,
            sip_port,
            tls_port,
            ws_port,
            http_port,
            rtp,
            scratch: None,
            records_path: None,
        }
    }

    /// Moves the demo trunk's outbound gateway to a free UDP port of the
    /// test (where a SIPp UAS or a socket plays the carrier) and returns it.
    pub fn outbound_gateway(&mut self) -> u16 {
        let port = free_udp_port();
        let trunk = self
            .main
            .get_mut("trunks")
            .and_then(|t| t.as_array_mut())
            .and_then(|a| a.first_mut())
            .and_then(|t| t.as_table_mut())
            .expect("[[trunks]]");
        trunk.insert("outbound".into(), format!("127.0.0.1:{port}").into());
        port
    }

    /// A practice's table, by id.
    pub fn practice(&mut self, id: &str) -> &mut toml::Table {
        self.dialplans
            .iter_mut()
            .map(|(_, t)| t)
            .find(|t| t.get("id").and_then(|v| v.as_str()) == Some(id))
            .expect("practice in demo")
    }

    /// Makes a practice open around the clock.
    pub fn always_open(&mut self, id: &str) -> &mut Self {
        let p = self.practice(id);
        let mut hours = toml::Table::new();
        hours.insert("always_open".into(), true.into());
        hours.insert("holidays".into(), "none".into());
        p.insert("hours".into(), toml::Value::Table(hours));
        self
    }

    /// Makes a practice closed at all times (a closure covering every date).
    pub fn always_closed(&mut self, id: &str) -> &mut Self {
        let p = self.practice(id);
        let mut hours = toml::Table::new();
        hours.insert("holidays".into(), "none".into());
        hours.insert("mon".into(), toml::Value::Array(vec!["08:00-09:00".into()]));
        let mut exc = toml::Table::new();
        exc.insert("from".into(), "2000-01-01".into());
        exc.insert("to".into(), "2999-12-31".into());
        exc.insert("hours".into(), toml::Value::Array(vec![]));
        exc.insert("label".into(), "fermeture de test".into());
        hours.insert(
            "exceptions".into(),
            toml::Value::Array(vec![toml::Value::Table(exc)]),
        );
        p.insert("hours".into(), toml::Value::Table(hours));
        self
    }

    /// A table of the main file (`dispatcher`, `sip`...), created if absent.
    pub fn main_table(&mut self, name: &str) -> &mut toml::Table {
        sub_table(&mut self.main, name)
    }

    /// The demo with Dr Martin open at all hours, no triage menu, a
    /// `greeting_s` greeting at 440 Hz, and no OPTIONS probes: the shortest
    /// path from a carrier's call to Alice's softphone.
    pub fn martin_direct(greeting_s: f64) -> Self {
        let mut cfg = Self::demo();
        cfg.always_open("martin");
        cfg.practice("martin").remove("triage");
        cfg.tone_prompt("martin", "greeting", greeting_s, 440.0);
        cfg.no_qualify();
        cfg
    }

    /// Turns the registrar's OPTIONS probes off (`qualify_interval_seconds
    /// = 0`): a test's SIPp softphone then sees only the calls.
    pub fn no_qualify(&mut self) -> &mut Self {
        sub_table(self.main_table("sip"), "registrar")
            .insert("qualify_interval_seconds".into(), 0.into());
        self
    }

    /// Sets `[sip.limits] key = value`.
    pub fn sip_limit(&mut self, key: &str, value: i64) -> &mut Self {
        set_sip_limit(&mut self.main, key, value);
        self
    }

    /// A practice's `[routing]` table.
    pub fn routing(&mut self, id: &str) -> &mut toml::Table {
        self.practice(id)
            .get_mut("routing")
            .and_then(|v| v.as_table_mut())
            .expect("[routing]")
    }

    /// A practice's `[[routing.steps]]`, as tables.
    pub fn steps(&mut self, id: &str) -> &mut Vec<toml::Value> {
        self.routing(id)
            .get_mut("steps")
            .and_then(|v| v.as_array_mut())
            .expect("[[routing.steps]]")
    }

    /// Replaces a practice's prompt `kind` (`greeting`, `voicemail`...) by
    /// a generated tone of `seconds` at `freq` Hz (8 kHz mono 16-bit WAV in
    /// the scratch directory). Returns the samples written.
    pub fn tone_prompt(&mut self, id: &str, kind: &str, seconds: f64, freq: f64) -> Vec<i16> {
        let dir = self
            .scratch
            .get_or_insert_with(|| Arc::new(TempDir::new("prompts")))
            .clone();
        let n = (seconds * 8000.0) as usize;
        let samples: Vec<i16> = (0..n)
            .map(|i| {
                let t = i as f64 / 8000.0;
                (8000.0 * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16
            })
            .collect();
        let path = dir.path().join(format!("{id}-{kind}.wav"));
        write_wav(&path, &samples);
        let p = self.practice(id);
        let prompts = p
            .entry("prompts".to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .expect("[prompts]");
        prompts.insert(kind.into(), path.to_string_lossy().to_string().into());
        samples
    }

    /// Writes the configuration; returns the main file path. Prompt paths
    /// in dialplans are made absolute so the copies find the demo WAVs.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let root = repo();
        let dp_dir = dir.join("dialplans");
        std::fs::create_dir_all(&dp_dir).expect("mkdir");
        let mut main = self.main.clone();
        main.insert("dialplans_dir".into(), "dialplans".into());
        // Call records and voicemail of the test stay in its temp dir.
        let records = main
            .entry("records")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let Some(r) = records.as_table_mut() {
            let db = self
                .records_path
                .clone()
                .unwrap_or_else(|| dir.join("data/permanence.db"));
            r.insert("path".into(), db.to_string_lossy().to_string().into());
            r.insert(
                "voicemail_dir".into(),
                dir.join("data/voicemail")
                    .to_string_lossy()
                    .to_string()
                    .into(),
            );
        }
        for (name, t) in &self.dialplans {
            let mut t = t.clone();
            let abs = |v: &mut toml::Value| {
                if let Some(s) = v.as_str() {
                    *v = root
                        .join("dialplans")
                        .join(s)
                        .to_string_lossy()
                        .to_string()
                        .into();
                }
            };
            if let Some(prompts) = t.get_mut("prompts").and_then(|v| v.as_table_mut()) {
                for (_, v) in prompts.iter_mut() {
                    match v.as_table_mut() {
                        // [prompts.en]: the English recordings.
                        Some(en) => en.iter_mut().for_each(|(_, v)| abs(v)),
                        None => abs(v),
                    }
                }
            }
            if let Some(list) = t.get_mut("announcements").and_then(|v| v.as_array_mut()) {
                for a in list.iter_mut().filter_map(|a| a.as_table_mut()) {
                    a.get_mut("file").into_iter().for_each(abs);
                }
            }
            std::fs::write(dp_dir.join(name), toml::to_string(&t).expect("toml")).expect("write");
        }
        let path = dir.join("permanence.toml");
        std::fs::write(&path, toml::to_string(&main).expect("toml")).expect("write");
        path
    }
}

/// The engine under test.
pub struct Engine {
    /// The engine's data directory (records database, voicemail).
    pub data: PathBuf,
    child: Child,
    pub logs: Arc<Mutex<Vec<Value>>>,
    pub sip: SocketAddr,
    /// SIP over TLS.
    pub tls: SocketAddr,
    pub http: SocketAddr,
    pub rtp: (u16, u16),
    _dir: TempDir,
    _scratch: Option<Arc<TempDir>>,
}

impl Engine {
    /// Starts the engine on `cfg` with extra CLI arguments; waits until it
    /// logs `engine.ready`.
    pub fn start(cfg: &TestConfig, extra: &[&str]) -> Self {
        Self::start_in(TempDir::new("engine"), cfg, extra, None)
    }

    /// [`Engine::start`] with at most `nofile` open descriptors (`ulimit
    /// -n`, set through `prlimit`) when given.
    pub fn start_limited(cfg: &TestConfig, extra: &[&str], nofile: Option<u32>) -> Self {
        Self::start_in(TempDir::new("engine"), cfg, extra, nofile)
    }

    /// Kills the engine with SIGKILL (no shutdown, as in a crash) and
    /// starts a new one in the same directory, on the same configuration
    /// (its data directory, records and voicemail, are kept).
    pub fn crash_and_restart(mut self, cfg: &TestConfig, extra: &[&str]) -> Self {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = std::mem::replace(&mut self._dir, TempDir(PathBuf::new()));
        Self::start_in(dir, cfg, extra, None)
    }

    fn start_in(dir: TempDir, cfg: &TestConfig, extra: &[&str], nofile: Option<u32>) -> Self {
        let path = cfg.write(dir.path());
        let mut command = match nofile {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}"))
                    .arg("--")
                    .arg(env!("CARGO_BIN_EXE_permanence"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_permanence")),
        };
        let mut child = command
            .current_dir(dir.path())
            .arg("run")
            .arg("--config")
            .arg(&path)
            .args(["--log-format", "json"])
            .args(extra)
            .env("RUST_LOG", "info,rsipstack=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn permanence");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout");
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if std::env::var_os("PERMANENCE_TEST_LOGS").is_some() {
                    eprintln!("engine: {line}");
                }
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().expect("logs").push(v);
                }
            }
        });
        let engine = Self {
            data: dir.path().join("data"),
            child,
            logs,
            sip: SocketAddr::from(([127, 0, 0, 1], cfg.sip_port)),
            tls: SocketAddr::from(([127, 0, 0, 1], cfg.tls_port)),
            http: SocketAddr::from(([127, 0, 0, 1], cfg.http_port)),
            rtp: cfg.rtp,
            _dir: dir,
            _scratch: cfg.scratch.clone(),
        };
        engine
            .wait_event("engine.ready", Duration::from_secs(20))
            .expect("engine did not become ready");
        engine
    }

    /// The engine's working directory (relative paths it logs, such as a
    /// voicemail recording, are relative to it). Removed with the engine.
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// Waits until `n` records with `event == name` match `pred`; returns
    /// them (in log order) or `None` on timeout.
    pub fn wait_n(
        &self,
        name: &str,
        n: usize,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Vec<Value>> {
        let deadline = Instant::now() + timeout;
        loop {
            let found: Vec<Value> = self.events(name).into_iter().filter(|v| pred(v)).collect();
            if found.len() >= n {
                return Some(found);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every log record, for failure messages (one JSON object a line,
    /// `event` records only).
    pub fn dump(&self) -> String {
        self.logs
            .lock()
            .expect("logs")
            .iter()
            .filter(|v| v.get("event").is_some())
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Whether the process is still running.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Log records with `event == name`.
    pub fn events(&self, name: &str) -> Vec<Value> {
        self.logs
            .lock()
            .expect("logs")
            .iter()
            .filter(|v| v.get("event").and_then(|e| e.as_str()) == Some(name))
            .cloned()
            .collect()
    }

    /// Waits for a log record with `event == name` matching `pred`.
    pub fn wait_for(
        &self,
        name: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = self.events(name).into_iter().find(|v| pred(v)) {
                return Some(v);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for any record with `event == name`.
    pub fn wait_event(&self, name: &str, timeout: Duration) -> Option<Value> {
        self.wait_for(name, timeout, |_| true)
    }

    /// Waits (bounded) for the process to exit by itself; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Sends SIGTERM and waits (bounded) for exit; returns the exit code.
    pub fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A record's string field.
pub fn field<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(|x| x.as_str()).unwrap_or("")
}

/// A record's integer field (`call`, `strikes`, `position`...).
pub fn num(v: &Value, k: &str) -> Option<i64> {
    v.get(k).and_then(|x| x.as_i64())
}

/// A record's float field (`wait_s`, `seconds`...).
pub fn float(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(|x| x.as_f64())
}

/// A record's `timestamp` (RFC 3339 UTC as the JSON log writes it, e.g.
/// `2026-11-30T01:13:39.314087Z`) in seconds since the Unix epoch.
pub fn ts(v: &Value) -> f64 {
    let t = field(v, "timestamp");
    parse_timestamp(t).unwrap_or_else(|| panic!("bad timestamp {t:?} in {v}"))
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac]Z` into seconds since the epoch.
pub fn parse_timestamp(t: &str) -> Option<f64> {
    let t = t.strip_suffix('Z')?;
    let (date, time) = t.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut h = time.splitn(3, ':');
    let (hh, mm) = (
        h.next()?.parse::<i64>().ok()?,
        h.next()?.parse::<i64>().ok()?,
    );
    let ss = h.next()?.parse::<f64>().ok()?;
    // Days from civil (proleptic Gregorian), H. Hinnant's algorithm.
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3600 + mm * 60) as f64 + ss)
}

/// Result of a SIPp run.
#[derive(Debug)]
pub struct SippRun {
    pub success: bool,
    pub code: Option<i32>,
    pub output: String,
    pub messages: String,
    pub errors: String,
}

/// Runs SIPp with a scenario from `tests/sipp/`, bounded by `limit`.
/// `vars` are passed with `-set`.
pub fn sipp(
    scenario: &str,
    target: SocketAddr,
    local_ip: &str,
    vars: &[(&str, String)],
    extra: &[&str],
    limit: Duration,
) -> SippRun {
    let dir = TempDir::new("sipp");
    let port = free_udp_port();
    let mut cmd = Command::new("timeout");
    cmd.arg("-k")
        .arg("5")
        .arg(limit.as_secs().max(1).to_string())
        .arg("sipp")
        .arg(target.to_string())
        .arg("-sf")
        .arg(repo().join("tests/sipp").join(scenario))
        .args(["-i", local_ip])
        .args(["-p", &port.to_string()])
        .args(["-m", "1", "-l", "1"])
        .arg("-nostdin")
        .args(["-timeout_error", "-max_recv_loops", "1000"])
        .arg("-trace_msg")
        .arg("-trace_err")
        .arg("-message_file")
        .arg(dir.path().join("messages.log"))
        .arg("-error_file")
        .arg(dir.path().join("errors.log"));
    for (k, v) in vars {
        cmd.arg("-set").arg(k).arg(v);
    }
    cmd.args(extra);
    cmd.current_dir(dir.path());
    let out = cmd.output().expect("run sipp (apt-get install sip-tester)");
    let read = |n: &str| std::fs::read_to_string(dir.path().join(n)).unwrap_or_default();
    SippRun {
        success: out.status.success(),
        code: out.status.code(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        messages: read("messages.log"),
        errors: read("errors.log"),
    }
}

/// RTP received on a socket.
#[derive(Debug, Default, Clone)]
pub struct RtpCapture {
    pub packets: Vec<RtpPacket>,
}

/// One RTP packet.
#[derive(Debug, Clone)]
pub struct RtpPacket {
    pub pt: u8,
    pub marker: bool,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
    pub payload: Vec<u8>,
    pub from: SocketAddr,
    /// When the test received it (parse time).
    pub at: Instant,
}

/// Parses an RTP packet (no extensions needed for our peers).
pub fn parse_rtp(buf: &[u8], from: SocketAddr) -> Option<RtpPacket> {
    if buf.len() < 12 || buf[0] >> 6 != 2 {
        return None;
    }
    let cc = usize::from(buf[0] & 0x0f);
    let start = 12 + 4 * cc;
    Some(RtpPacket {
        pt: buf[1] & 0x7f,
        marker: buf[1] & 0x80 != 0,
        seq: u16::from_be_bytes([buf[2], buf[3]]),
        ts: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
        ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
        payload: buf.get(start..)?.to_vec(),
        from,
        at: Instant::now(),
    })
}

/// Receives RTP on `socket` for `dur`.
pub fn capture_rtp(socket: &UdpSocket, dur: Duration) -> RtpCapture {
    let deadline = Instant::now() + dur;
    let mut cap = RtpCapture::default();
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("timeout");
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                if let Some(p) = parse_rtp(&buf[..n], from) {
                    cap.packets.push(p);
                }
            }
            Err(_) => continue,
        }
    }
    cap
}

/// G.711 µ-law to linear.
pub fn ulaw_to_linear(u: u8) -> i16 {
    let u = !u;
    let sign = u & 0x80;
    let exponent = (u >> 4) & 0x07;
    let mantissa = u & 0x0f;
    let mut sample = ((i32::from(mantissa) << 3) + 0x84) << exponent;
    sample -= 0x84;
    (if sign != 0 { -sample } else { sample }) as i16
}

/// G.711 A-law to linear.
pub fn alaw_to_linear(a: u8) -> i16 {
    let a = a ^ 0x55;
    let sign = a & 0x80;
    let exponent = (a >> 4) & 0x07;
    let mantissa = i32::from(a & 0x0f);
    let mut sample = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    if sign == 0 {
        sample = -sample;
    }
    sample as i16
}

impl RtpCapture {
    /// Packets of a payload type.
    pub fn of_pt(&self, pt: u8) -> Vec<&RtpPacket> {
        self.packets.iter().filter(|p| p.pt == pt).collect()
    }

    /// Decoded PCM of all audio packets (PT 0 or 8), in arrival order.
    pub fn pcm(&self) -> Vec<i16> {
        let mut out = Vec::new();
        for p in &self.packets {
            match p.pt {
                0 => out.extend(p.payload.iter().map(|&b| ulaw_to_linear(b))),
                8 => out.extend(p.payload.iter().map(|&b| alaw_to_linear(b))),
                _ => {}
            }
        }
        out
    }

    /// RMS level of the decoded audio (0 for silence).
    pub fn rms(&self) -> f64 {
        let pcm = self.pcm();
        if pcm.is_empty() {
            return 0.0;
        }
        let sum: f64 = pcm.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
        (sum / pcm.len() as f64).sqrt()
    }
}

/// Checks the basic shape of a received stream: one SSRC, sequence +1,
/// 160-byte payloads, and an 8 kHz clock: the timestamp moves by 160 per
/// packet, by a larger multiple of 160 where the sender skipped frames to
/// stay on time, or by the real time elapsed at the start of a new prompt
/// (marker bit) (RFC 3550: the timestamp follows the sampling clock, the
/// sequence number the packets). Most steps must be exactly 160.
pub fn assert_well_formed_stream(cap: &RtpCapture, pt: u8) {
    let pkts = cap.of_pt(pt);
    assert!(pkts.len() > 10, "too few RTP packets: {}", pkts.len());
    let ssrc = pkts[0].ssrc;
    let mut exact = 0usize;
    for w in pkts.windows(2) {
        assert_eq!(w[1].ssrc, ssrc, "SSRC changed");
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "sequence gap");
        let step = w[1].ts.wrapping_sub(w[0].ts);
        // A new prompt starts a talkspurt (marker bit): its timestamp is the
        // real time elapsed since the previous one, in samples.
        let ok = if w[1].marker {
            (160..8000 * 5).contains(&step)
        } else {
            step >= 160 && step % 160 == 0 && step < 8000 * 5
        };
        assert!(
            ok,
            "timestamp step {step} (seq {}, marker {})",
            w[1].seq, w[1].marker
        );
        exact += usize::from(step == 160);
        assert_eq!(w[1].payload.len(), 160, "payload size");
    }
    assert!(
        exact * 10 >= (pkts.len() - 1) * 9,
        "timestamps too irregular: {exact} exact steps of {}",
        pkts.len() - 1
    );
}

/// Writes 8 kHz mono 16-bit PCM samples as a WAV file.
pub fn write_wav(path: &Path, samples: &[i16]) {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&8000u32.to_le_bytes());
    out.extend_from_slice(&16000u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, out).expect("write wav");
}

/// Registers `user` from local UDP port `port` (digest MD5, the demo's
/// algorithm), expires 300 s. Panics unless the registrar answers 200.
pub fn register_agent(engine: SocketAddr, user: &str, password: &str, port: u16) {
    let ok = register_contact(engine, user, password, port, port, 300);
    assert!(ok.starts_with("SIP/2.0 200"), "registration failed: {ok}");
}

/// Removes the binding `<sip:user@127.0.0.1:contact_port>` (REGISTER with
/// Expires: 0, digest MD5), sent from a free port of its own: the
/// softphone's port may be held by the SIPp UAS answering on it, and the
/// registrar matches the binding by its contact URI, not by the source.
/// Panics unless the registrar answers 200.
pub fn unregister_agent(engine: SocketAddr, user: &str, password: &str, contact_port: u16) {
    let from = free_udp_port();
    let ok = register_contact(engine, user, password, from, contact_port, 0);
    assert!(ok.starts_with("SIP/2.0 200"), "unregistration failed: {ok}");
}

/// Sends a REGISTER for `user` from local UDP port `from_port` with
/// Contact `<sip:user@127.0.0.1:contact_port>` and `Expires: expires`,
/// answers the digest challenge (MD5) and returns the final response.
/// The Call-ID depends on both ports, so a registration and a later
/// removal from another port are independent REGISTER sequences.
pub fn register_contact(
    engine: SocketAddr,
    user: &str,
    password: &str,
    from_port: u16,
    contact_port: u16,
    expires: u32,
) -> String {
    use permanence_sip::digest::{expected_response, ha1, DigestAlgorithm, DigestParams};
    let port = from_port;
    let sock = UdpSocket::bind(("127.0.0.1", port)).expect("bind agent port");
    sock.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let call_id = if from_port == contact_port {
        format!("reg-{user}-{port}@127.0.0.1")
    } else {
        format!("reg-{user}-{port}-{contact_port}@127.0.0.1")
    };
    let msg = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKreg{port}x{cseq};rport\r\n\
             From: <sip:{user}@127.0.0.1>;tag=r{port}\r\n\
             To: <sip:{user}@127.0.0.1>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{user}@127.0.0.1:{contact_port}>\r\n\
             Expires: {expires}\r\nMax-Forwards: 70\r\nUser-Agent: test-agent\r\n\
             {auth}Content-Length: 0\r\n\r\n"
        )
    };
    let send = |m: String| -> String {
        sock.send_to(m.as_bytes(), engine).expect("send");
        let mut buf = [0u8; 4096];
        loop {
            let (n, _) = sock.recv_from(&mut buf).expect("registrar answer");
            let t = String::from_utf8_lossy(&buf[..n]).to_string();
            if !t.starts_with("SIP/2.0 1") {
                return t;
            }
        }
    };
    let challenge = send(msg(1, ""));
    let nonce = challenge
        .split("nonce=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("nonce")
        .to_string();
    let p = DigestParams {
        username: user.into(),
        realm: "permanence".into(),
        nonce: nonce.clone(),
        uri: "sip:127.0.0.1".into(),
        response: String::new(),
        algorithm: DigestAlgorithm::Md5,
        qop: Some("auth".into()),
        nc: Some(1),
        cnonce: "c0ffee".to_string().into(),
        opaque: None,
    };
    let r = expected_response(
        &p,
        &ha1(DigestAlgorithm::Md5, user, "permanence", password),
        "REGISTER",
    );
    let auth = format!(
        "Authorization: Digest username=\"{user}\", realm=\"permanence\", nonce=\"{nonce}\", \
         uri=\"sip:127.0.0.1\", response=\"{r}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c0ffee\"\r\n"
    );
    send(msg(2, &auth))
}

/// A SIPp process started in the background (a UAS softphone).
pub struct SippBg {
    child: Child,
    dir: TempDir,
}

impl SippBg {
    /// Starts `scenario` listening on `port`.
    pub fn uas(
        scenario: &str,
        port: u16,
        vars: &[(&str, String)],
        extra: &[&str],
        limit: Duration,
    ) -> Self {
        Self::spawn(scenario, None, port, vars, extra, limit)
    }

    /// Starts `scenario` listening on `port` (a softphone, or the carrier's
    /// outbound gateway where a patient answers) with its media: an
    /// [`RtpPeer`] sending `fill` bytes of payload type `pt`, announced to
    /// the scenario as `rtp_port` and `pt`. Scenarios that never answer
    /// (`agent_noanswer.xml`, `agent_busy.xml`) declare no media variables:
    /// the peer is started but not announced. More SIPp variables go in
    /// `extra` (`-set name value`).
    pub fn uas_with_rtp(
        scenario: &str,
        port: u16,
        pt: u8,
        fill: u8,
        extra: &[&str],
        limit: Duration,
    ) -> (RtpPeer, Self) {
        let rtp = RtpPeer::start(pt, fill);
        let text =
            std::fs::read_to_string(repo().join("tests/sipp").join(scenario)).expect("scenario");
        let vars = if text.contains("rtp_port") {
            vec![("rtp_port", rtp.port.to_string()), ("pt", pt.to_string())]
        } else {
            Vec::new()
        };
        let uas = Self::uas(scenario, port, &vars, extra, limit);
        (rtp, uas)
    }

    /// Starts `scenario` as a UAC towards `target` (e.g. a carrier's
    /// call), from a free local port; unlike [`sipp`], its messages can be
    /// read while it runs ([`SippBg::messages`]).
    pub fn uac(
        scenario: &str,
        target: SocketAddr,
        vars: &[(&str, String)],
        extra: &[&str],
        limit: Duration,
    ) -> Self {
        let port = free_udp_port();
        let mut extra: Vec<&str> = extra.to_vec();
        extra.extend(["-l", "1", "-timeout_error", "-max_recv_loops", "1000"]);
        Self::spawn(scenario, Some(target), port, vars, &extra, limit)
    }

    fn spawn(
        scenario: &str,
        target: Option<SocketAddr>,
        port: u16,
        vars: &[(&str, String)],
        extra: &[&str],
        limit: Duration,
    ) -> Self {
        let dir = TempDir::new(if target.is_some() {
            "sipp-uac"
        } else {
            "sipp-uas"
        });
        let mut cmd = Command::new("timeout");
        cmd.arg("-k")
            .arg("5")
            .arg(limit.as_secs().max(1).to_string())
            .arg("sipp");
        if let Some(t) = target {
            cmd.arg(t.to_string());
        }
        cmd.arg("-sf")
            .arg(repo().join("tests/sipp").join(scenario))
            .args(["-i", "127.0.0.1"])
            .args(["-p", &port.to_string()])
            .args(["-m", "1"])
            .arg("-nostdin")
            .arg("-trace_msg")
            .arg("-trace_err")
            .arg("-message_file")
            .arg(dir.path().join("messages.log"))
            .arg("-error_file")
            .arg(dir.path().join("errors.log"));
        for (k, v) in vars {
            cmd.arg("-set").arg(k).arg(v);
        }
        cmd.args(extra)
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().expect("sipp");
        // Let SIPp bind its port.
        std::thread::sleep(Duration::from_millis(300));
        Self { child, dir }
    }

    /// Waits (bounded) for SIPp to finish; returns success and its logs.
    pub fn finish(mut self, timeout: Duration) -> SippRun {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                break Some(st);
            }
            if Instant::now() > deadline {
                self.stop();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let read = |n: &str| std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        SippRun {
            success: status.is_some_and(|s| s.success()),
            code: status.and_then(|s| s.code()),
            output: String::new(),
            messages: read("messages.log"),
            errors: read("errors.log"),
        }
    }

    /// [`SippBg::finish`], asserting that SIPp succeeded (`who`, its
    /// errors and messages in the failure).
    pub fn finish_ok(self, timeout: Duration, who: &str) -> SippRun {
        let run = self.finish(timeout);
        assert!(
            run.success,
            "{who}: SIPp failed\n{}\n{}",
            run.errors, run.messages
        );
        run
    }

    /// The messages exchanged so far.
    pub fn messages(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("messages.log")).unwrap_or_default()
    }
}

impl SippBg {
    /// Stops SIPp: SIGTERM to the `timeout` wrapper, which passes it on to
    /// SIPp (a SIGKILL of the wrapper alone would leave SIPp running), then
    /// SIGKILL if it is still there after 2 s.
    fn stop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SippBg {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Builds an RTP packet.
pub fn rtp_packet(pt: u8, seq: u16, ts: u32, ssrc: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + payload.len());
    p.push(0x80);
    p.push(pt | if marker { 0x80 } else { 0 });
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// An RTP endpoint of the test: receives everything on its socket and,
/// once it has learnt where the engine sends from, sends 20 ms packets of
/// a fixed payload byte back there (symmetric RTP), plus DTMF on request.
pub struct RtpPeer {
    pub port: u16,
    stop: Arc<std::sync::atomic::AtomicBool>,
    received: Arc<Mutex<Vec<RtpPacket>>>,
    dtmf: Arc<Mutex<Vec<char>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RtpPeer {
    /// Starts a peer sending `fill` bytes with payload type `pt` once the
    /// engine's address is known.
    pub fn start(pt: u8, fill: u8) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind rtp peer");
        let port = sock.local_addr().expect("addr").port();
        sock.set_read_timeout(Some(Duration::from_millis(5)))
            .expect("timeout");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let received = Arc::new(Mutex::new(Vec::new()));
        let dtmf: Arc<Mutex<Vec<char>>> = Arc::new(Mutex::new(Vec::new()));
        let (s2, r2, d2) = (stop.clone(), received.clone(), dtmf.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut remote: Option<SocketAddr> = None;
            let (mut seq, mut ts) = (1000u16, 50_000u32);
            let ssrc = 0x5e55_0000 | u32::from(fill);
            let mut next = Instant::now();
            let payload = [fill; 160];
            while !s2.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    if let Some(p) = parse_rtp(&buf[..n], from) {
                        remote.get_or_insert(from);
                        r2.lock().expect("rtp").push(p);
                    }
                }
                if let Some(to) = remote {
                    if Instant::now() >= next {
                        next += Duration::from_millis(20);
                        let pending = d2.lock().expect("dtmf").pop();
                        if let Some(d) = pending {
                            // RFC 4733: 3 updates then 3 end packets, same timestamp.
                            let ev = match d {
                                '0'..='9' => d as u8 - b'0',
                                '*' => 10,
                                '#' => 11,
                                _ => 0,
                            };
                            for i in 0..6u16 {
                                let end = i >= 3;
                                let dur = 160u16 * (i.min(3) + 1);
                                let mut pl = [ev, 10, 0, 0];
                                if end {
                                    pl[1] |= 0x80;
                                }
                                pl[2..].copy_from_slice(&dur.to_be_bytes());
                                let pkt = rtp_packet(101, seq, ts, ssrc, i == 0, &pl);
                                let _ = sock.send_to(&pkt, to);
                                seq = seq.wrapping_add(1);
                            }
                            ts = ts.wrapping_add(160 * 4);
                        } else {
                            let pkt = rtp_packet(pt, seq, ts, ssrc, false, &payload);
                            let _ = sock.send_to(&pkt, to);
                            seq = seq.wrapping_add(1);
                            ts = ts.wrapping_add(160);
                        }
                    }
                }
            }
        });
        Self {
            port,
            stop,
            received,
            dtmf,
            thread: Some(thread),
        }
    }

    /// Queues a DTMF digit (sent as RFC 4733 events).
    pub fn press(&self, d: char) {
        self.dtmf.lock().expect("dtmf").insert(0, d);
    }

    /// Packets received so far.
    pub fn received(&self) -> Vec<RtpPacket> {
        self.received.lock().expect("rtp").clone()
    }

    /// Waits until `pred` holds on the received packets.
    pub fn wait_until(&self, timeout: Duration, pred: impl Fn(&[RtpPacket]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if pred(&self.received()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for RtpPeer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How many of `packets` are PCMU (payload type 0) carrying 160 bytes of
/// `fill`: the audio of an [`RtpPeer`] started with `fill`, relayed
/// unchanged.
pub fn count_fill(packets: &[RtpPacket], fill: u8) -> usize {
    packets
        .iter()
        .filter(|p| p.pt == 0 && p.payload.len() == 160 && p.payload.iter().all(|&b| b == fill))
        .count()
}

/// Runs [`sipp`] (a UAC: the carrier) on a thread; join it for the result.
pub fn sipp_thread(
    scenario: &'static str,
    target: SocketAddr,
    vars: Vec<(&'static str, String)>,
    extra: Vec<String>,
    limit: Duration,
) -> std::thread::JoinHandle<SippRun> {
    std::thread::spawn(move || {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        sipp(scenario, target, "127.0.0.1", &vars, &extra, limit)
    })
}

/// The SIPp variables of a carrier's call to the service number
/// (+33970000000) forwarded by a practice: `hdr` is its `Diversion`
/// header (or empty), `rtp_port` the caller's media.
pub fn carrier_vars(hdr: &str, rtp_port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("called", "+33970000000".to_string()),
        ("hdr", hdr.to_string()),
        ("rtp_port", rtp_port.to_string()),
    ]
}

/// A patient calling a practice (`hdr`, see [`carrier_vars`]): an RTP
/// peer sending PCMU `fill` bytes and a SIPp carrier running `scenario`
/// (with `extra` args, e.g. `-d` for carrier_call.xml) on a thread,
/// bounded by `limit`. Join the thread with [`joined`].
pub fn patient(
    engine: &Engine,
    hdr: &str,
    scenario: &'static str,
    fill: u8,
    extra: &[&str],
    limit: Duration,
) -> (RtpPeer, std::thread::JoinHandle<SippRun>) {
    let rtp = RtpPeer::start(0, fill);
    let run = sipp_thread(
        scenario,
        engine.sip,
        carrier_vars(hdr, rtp.port),
        extra.iter().map(|s| s.to_string()).collect(),
        limit,
    );
    (rtp, run)
}

/// Joins a [`sipp_thread`] and asserts that SIPp succeeded (`who`, its
/// output, errors and messages in the failure); returns the run.
pub fn joined(h: std::thread::JoinHandle<SippRun>, who: &str) -> SippRun {
    let run = h.join().expect("sipp thread");
    assert!(
        run.success,
        "{who}: SIPp failed\n{}\n{}\n{}",
        run.output, run.errors, run.messages
    );
    run
}

/// The SIP messages of a SIPp message log (`-trace_msg`), in order, with
/// whether SIPp received (`true`) or sent (`false`) each; the text starts
/// at the start line (`INVITE sip:...`, `SIP/2.0 200 OK`).
pub fn sip_messages_dir(log: &str) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    for block in log.split("\n-----------------------------------------------") {
        let mut lines = block.lines().skip_while(|l| !l.contains(" message "));
        let Some(head) = lines.next() else { continue };
        let received = head.contains("received");
        let text: Vec<&str> = lines.skip_while(|l| l.trim().is_empty()).collect();
        let text = text.join("\n").trim_end().to_string();
        if !text.is_empty() {
            out.push((received, text));
        }
    }
    out
}

/// The SIP messages of a SIPp message log, sent and received, in order.
pub fn sip_messages(log: &str) -> Vec<String> {
    sip_messages_dir(log).into_iter().map(|(_, m)| m).collect()
}

/// The requests `method` (`INVITE`, `CANCEL`...) that a SIPp run
/// received, in order (a retransmission is one more), each from its
/// request line.
pub fn received_requests(run: &SippRun, method: &str) -> Vec<String> {
    let start = format!("{method} ");
    sip_messages_dir(&run.messages)
        .into_iter()
        .filter(|(received, m)| *received && m.starts_with(&start))
        .map(|(_, m)| m)
        .collect()
}

/// The first request `method` that a SIPp run received, if any.
pub fn received_request(run: &SippRun, method: &str) -> Option<String> {
    received_requests(run, method).into_iter().next()
}

/// A WAV file's format and samples.
#[derive(Debug, Clone)]
pub struct Wav {
    pub rate: u32,
    pub channels: u16,
    pub bits: u16,
    pub format: u16,
    pub samples: Vec<i16>,
}

/// Reads a 16-bit PCM WAV file (walks the RIFF chunks to `fmt ` and
/// `data`).
pub fn read_wav(path: &Path) -> Result<Wav, String> {
    let b = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if b.len() < 12 || &b[0..4] != b"RIFF" || &b[8..12] != b"WAVE" {
        return Err(format!("{}: not a RIFF/WAVE file", path.display()));
    }
    let mut i = 12;
    let mut fmt: Option<(u16, u16, u32, u16)> = None;
    while i + 8 <= b.len() {
        let id = &b[i..i + 4];
        let len = u32::from_le_bytes([b[i + 4], b[i + 5], b[i + 6], b[i + 7]]) as usize;
        let body = &b[i + 8..(i + 8 + len).min(b.len())];
        if id == b"fmt " && body.len() >= 16 {
            fmt = Some((
                u16::from_le_bytes([body[0], body[1]]),
                u16::from_le_bytes([body[2], body[3]]),
                u32::from_le_bytes([body[4], body[5], body[6], body[7]]),
                u16::from_le_bytes([body[14], body[15]]),
            ));
        }
        if id == b"data" {
            let (format, channels, rate, bits) =
                fmt.ok_or_else(|| format!("{}: data before fmt", path.display()))?;
            if bits != 16 {
                return Err(format!("{}: {bits}-bit samples", path.display()));
            }
            let samples = body
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
            return Ok(Wav {
                rate,
                channels,
                bits,
                format,
                samples,
            });
        }
        i += 8 + len + (len & 1);
    }
    Err(format!("{}: no data chunk", path.display()))
}

/// Whether a decoded G.711 sample is `want` up to one quantisation step of
/// either law (µ-law: step 2^(seg+3), A-law: 2^(seg+3) above 256, 16
/// below; both at most (|want| + 132) / 16 + 16).
pub fn g711_close(got: i16, want: i16) -> bool {
    let tol = (i32::from(want).abs() + 132) / 16 + 16;
    (i32::from(got) - i32::from(want)).abs() <= tol
}

/// Decoded samples of one PCMU/PCMA packet (empty for other types).
pub fn decode(p: &RtpPacket) -> Vec<i16> {
    match p.pt {
        0 => p.payload.iter().map(|&b| ulaw_to_linear(b)).collect(),
        8 => p.payload.iter().map(|&b| alaw_to_linear(b)).collect(),
        _ => Vec::new(),
    }
}

/// RMS of samples.
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / samples.len() as f64).sqrt()
}

/// Which 20 ms frame of `prompt` (8 kHz samples) each received packet
/// carries: `Some(frame index)` when the packet's decoded samples equal
/// that frame's up to G.711 quantisation, `None` otherwise (another
/// sound, silence, DTMF). Frames are searched from the one after the last
/// match first (playout order), then everywhere.
pub fn prompt_frames(packets: &[RtpPacket], prompt: &[i16]) -> Vec<Option<usize>> {
    let frames: Vec<&[i16]> = prompt.chunks_exact(160).collect();
    let audible: Vec<bool> = frames.iter().map(|f| rms(f) >= 100.0).collect();
    let matches = |pcm: &[i16], k: usize| {
        audible[k] && pcm.len() == 160 && pcm.iter().zip(frames[k]).all(|(&g, &w)| g711_close(g, w))
    };
    let mut hint = 0usize;
    packets
        .iter()
        .map(|p| {
            let pcm = decode(p);
            if pcm.len() != 160 || frames.is_empty() {
                return None;
            }
            let n = frames.len();
            let k = (0..n).map(|d| (hint + d) % n).find(|&k| matches(&pcm, k))?;
            hint = k + 1;
            Some(k)
        })
        .collect()
}

/// Share of the audible frames of `prompt` heard (in any order) among
/// `packets`: 1.0 when the whole prompt was played.
pub fn prompt_coverage(packets: &[RtpPacket], prompt: &[i16]) -> f64 {
    let frames: Vec<&[i16]> = prompt.chunks_exact(160).collect();
    let audible = frames.iter().filter(|f| rms(f) >= 100.0).count();
    if audible == 0 {
        return 0.0;
    }
    let heard: std::collections::HashSet<usize> = prompt_frames(packets, prompt)
        .into_iter()
        .flatten()
        .collect();
    heard.len() as f64 / audible as f64
}

/// Samples of one of the engine's embedded French prompts
/// (`crates/media/prompts/fr/<name>.wav`).
pub fn default_prompt(name: &str) -> Vec<i16> {
    let path = repo()
        .join("crates/media/prompts/fr")
        .join(format!("{name}.wav"));
    read_wav(&path).expect("default prompt").samples
}

/// The value of one series in a Prometheus exposition, written
/// `name{a="x",b="y"}` (label order does not matter).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    fn split(s: &str) -> (String, Vec<String>) {
        match s.split_once('{') {
            Some((name, rest)) => {
                let mut labels: Vec<String> = rest
                    .trim_end_matches('}')
                    .split(',')
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect();
                labels.sort();
                (name.to_string(), labels)
            }
            None => (s.to_string(), Vec::new()),
        }
    }
    let want = split(series);
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        (split(series) == want)
            .then(|| value.parse().ok())
            .flatten()
    })
}

/// An admin API request with a bearer token and an optional JSON body:
/// status and body.
pub fn http_call(
    engine: &Engine,
    method: &str,
    path: &str,
    token: &str,
    json: Option<&str>,
) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let url = format!("http://{}{}", engine.http, path);
    let auth = format!("Bearer {token}");
    let resp = match (method, json) {
        ("GET", _) => agent.get(&url).header("Authorization", &auth).call(),
        (_, Some(body)) => agent
            .post(&url)
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .send(body),
        (_, None) => agent.post(&url).header("Authorization", &auth).send_empty(),
    };
    match resp {
        Ok(mut r) => (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        ),
        Err(e) => panic!("{url}: {e}"),
    }
}

/// `GET http://<engine>/path` without credentials: status and body.
pub fn http_get(engine: &Engine, path: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let url = format!("http://{}{}", engine.http, path);
    match agent.get(&url).call() {
        Ok(mut r) => (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        ),
        Err(e) => panic!("{url}: {e}"),
    }
}

/// CPU time (user + system) a process has used so far, from
/// `/proc/PID/stat` (clock ticks of 10 ms).
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses).
    let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 here.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// A sub-table of `t`, created if absent.
pub fn sub_table<'a>(t: &'a mut toml::Table, name: &str) -> &'a mut toml::Table {
    t.entry(name.to_string())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .expect("a table")
}

/// Sets `[sip.limits] key = value` in a main file's table (also for a file
/// read back from disk before a reload).
pub fn set_sip_limit(main: &mut toml::Table, key: &str, value: i64) {
    sub_table(sub_table(main, "sip"), "limits").insert(key.into(), value.into());
}

/// A TLS client trusting only the certificate in `cert_pem`.
pub fn tls_connect(
    addr: SocketAddr,
    cert_pem: &[u8],
) -> std::io::Result<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem) {
        roots
            .add(c.map_err(std::io::Error::other)?)
            .map_err(std::io::Error::other)?;
    }
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1")
        .map_err(std::io::Error::other)?
        .to_owned();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
    let sock = std::net::TcpStream::connect(addr)?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut stream = rustls::StreamOwned::new(conn, sock);
    // Complete the handshake now (errors surface here).
    let deadline = Instant::now() + Duration::from_secs(3);
    while stream.conn.is_handshaking() {
        if Instant::now() > deadline {
            return Err(std::io::Error::other("handshake timeout"));
        }
        match stream.conn.complete_io(&mut stream.sock) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(stream)
}
