//! webrtc_agents: browser telesecretaries for the load benchmark
//! (`benches/load/run.sh webrtc`, issue 11).
//!
//! Build: `cargo build --release -p permanence-benches --bin webrtc_agents`.
//!
//! Plays N browser agents and, optionally, every caller:
//!
//! - each agent opens a WebSocket (subprotocol `sip`, RFC 7118) to the
//!   engine, REGISTERs with digest auth (MD5), and answers every INVITE as
//!   a browser softphone would: 100, 180, then 200 with the SDP answer of a
//!   [`permanence_webrtc::Peer`] (ICE, DTLS-SRTP, rtcp-mux); ACK awaited,
//!   BYE and CANCEL answered, in-dialog OPTIONS/INFO/UPDATE and re-INVITEs
//!   answered;
//! - each answered call gets an RTP endpoint behind its peer: a local UDP
//!   socket (the peer's `media` address) that sends 50 packets/s of PCMU
//!   (160-byte payloads) to the peer's relay and counts what comes back
//!   (the peer decrypts what the engine sends and relays it here);
//! - with `--caller-port P`: the callers, as `rtpload media` plays them
//!   (every carrier SDP offer points at P): once RTP arrives from an engine
//!   port, a 50 packet/s stream goes back to it, until it is silent for 2 s.
//!
//! Every payload carries a magic, the stream's key, its side, a "measured"
//! flag, a counter and the send time. Both ends are in this process, so
//! loss and latency per direction through the engine (and, on the agent
//! side, through two WebRTC peers and their relays) are exact. Phases and
//! JSON report are those of `rtpload media` (analyze.py reads both): wait
//! until `--calls` streams flow both ways (or `--max-wait`), settle,
//! measure (packets sent in the window are flagged), drain, report on
//! stdout, keep the calls up for `--linger` s (or until SIGTERM), then a
//! last line with the SIP counters.
//!
//! Every network read is bounded in time; odd input is counted, answered
//! (481) or ignored, never a panic.

use futures_util::{SinkExt, StreamExt};
use permanence_webrtc::{Peer, PeerState, WebRtcSettings};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep, sleep_until, timeout};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

// ---------------------------------------------------------------------------
// Options

struct Opts {
    ws: SocketAddr,
    agents: u32,
    first: u32,
    prefix: String,
    password_prefix: String,
    domain: String,
    expires: u32,
    register_rate: f64,
    caller_port: Option<u16>,
    calls: u64,
    max_wait: f64,
    settle: f64,
    measure: f64,
    linger: f64,
    threads: usize,
}

const USAGE: &str = "usage: webrtc_agents --ws IP:PORT --agents N [--first 1] [--prefix load] \
[--password-prefix pw-] [--domain 127.0.0.1] [--expires 7200] [--register-rate 100] \
[--caller-port P --calls N [--max-wait 120] [--settle 3] [--measure 30] [--linger 5]] [--threads 2]";

fn opts() -> Result<Opts, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |name: &str| -> Option<&str> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(String::as_str)
    };
    fn num<T: std::str::FromStr>(v: Option<&str>, name: &str, d: T) -> Result<T, String> {
        match v {
            None => Ok(d),
            Some(s) => s.parse().map_err(|_| format!("bad value for {name}: {s}")),
        }
    }
    let ws = get("--ws")
        .ok_or("missing --ws IP:PORT")?
        .parse()
        .map_err(|_| "bad --ws (want IP:PORT)")?;
    let caller_port = match get("--caller-port") {
        None => None,
        Some(p) => Some(p.parse().map_err(|_| "bad --caller-port")?),
    };
    let o = Opts {
        ws,
        agents: num(get("--agents"), "--agents", 1)?,
        first: num(get("--first"), "--first", 1)?,
        prefix: get("--prefix").unwrap_or("load").to_owned(),
        password_prefix: get("--password-prefix").unwrap_or("pw-").to_owned(),
        domain: get("--domain").unwrap_or("127.0.0.1").to_owned(),
        expires: num(get("--expires"), "--expires", 7200)?,
        register_rate: num(get("--register-rate"), "--register-rate", 100.0)?,
        caller_port,
        calls: num(get("--calls"), "--calls", 0)?,
        max_wait: num(get("--max-wait"), "--max-wait", 120.0)?,
        settle: num(get("--settle"), "--settle", 3.0)?,
        measure: num(get("--measure"), "--measure", 30.0)?,
        linger: num(get("--linger"), "--linger", 5.0)?,
        threads: num(get("--threads"), "--threads", 2)?,
    };
    let secs = [o.max_wait, o.settle, o.measure, o.linger, o.register_rate];
    if secs.iter().any(|x| !x.is_finite() || *x < 0.0 || *x > 1e6) {
        return Err("durations and rates must be between 0 and 1e6".into());
    }
    Ok(o)
}

// ---------------------------------------------------------------------------
// Shared counters

const SIDE_CALLER: usize = 0;
const SIDE_AGENT: usize = 1;
const MAGIC: [u8; 4] = *b"PLw1";
const FLAG_MEASURED: u8 = 1;
const PKT: usize = 12 + 160;

/// Latency histogram: 10 µs buckets up to 200 ms (as rtpload).
struct Histo {
    b: Vec<u64>,
    over: u64,
    max_us: u64,
    n: u64,
}

impl Histo {
    fn new() -> Self {
        Histo {
            b: vec![0; 20_000],
            over: 0,
            max_us: 0,
            n: 0,
        }
    }
    fn add(&mut self, us: u64) {
        self.n += 1;
        self.max_us = self.max_us.max(us);
        match self.b.get_mut((us / 10) as usize) {
            Some(c) => *c += 1,
            None => self.over += 1,
        }
    }
    fn pct(&self, p: f64) -> f64 {
        if self.n == 0 {
            return -1.0;
        }
        let want = ((self.n as f64) * p).ceil().max(1.0) as u64;
        let mut acc = 0;
        for (i, c) in self.b.iter().enumerate() {
            acc += c;
            if acc >= want {
                return (i as f64) * 10.0 + 5.0;
            }
        }
        self.max_us as f64
    }
}

/// What one side (the callers, or the agents) sent and received.
#[derive(Default)]
struct Side {
    sent: AtomicU64,
    measured_sent: AtomicU64,
    received: AtomicU64,
    measured_received: AtomicU64,
    other: AtomicU64,
    dups_or_late: AtomicU64,
    send_errors: AtomicU64,
    late_ticks: AtomicU64,
    /// Streams that received relayed audio of the other side.
    established: AtomicU64,
    streams: AtomicU64,
    streams_max: AtomicU64,
    /// Measured packets sent per stream key (recorded when the window has
    /// closed, or when the stream ends).
    sent_by_key: Mutex<HashMap<u32, u64>>,
    /// Measured packets received, per sender's key.
    recv_by_key: Mutex<HashMap<u32, u64>>,
    histo: Mutex<Option<Histo>>,
}

macro_rules! counters {
    ($($name:ident),* $(,)?) => {
        #[derive(Default)]
        struct Sip { $($name: AtomicU64,)* }
        impl Sip {
            fn json(&self) -> String {
                let parts: Vec<String> = vec![$(format!("\"{}\":{}", stringify!($name), self.$name.load(Relaxed)),)*];
                format!("{{{}}}", parts.join(","))
            }
        }
    };
}
counters!(
    ws_connected,
    ws_failed,
    ws_closed,
    registered,
    register_failed,
    invites,
    answered,
    answer_failed,
    acks,
    byes,
    cancels,
    reinvites,
    options,
    other_requests,
    unknown_dialog,
    unparsable,
    peers_connected,
    peers_connect_timeout,
    peers_gone,
    calls_active,
    calls_active_max,
);

struct Shared {
    t0: Instant,
    /// 0 warm-up, 1 measuring, 2 drain and after.
    phase: AtomicU8,
    stop: AtomicBool,
    sides: [Side; 2],
    sip: Sip,
    next_key: AtomicU32,
    /// Time to build a peer and its answer, and from the INVITE until the
    /// peer is connected (ICE + DTLS), ms.
    answer_ms: Mutex<Vec<f64>>,
    connect_ms: Mutex<Vec<f64>>,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64
    }
}

fn log(sh: &Shared, msg: &str) {
    eprintln!("webrtc_agents {:7.1}s {msg}", sh.t0.elapsed().as_secs_f64());
}

fn unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn rand_hex() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn push(v: &Mutex<Vec<f64>>, x: f64) {
    if let Ok(mut v) = v.lock() {
        v.push(x);
    }
}

// ---------------------------------------------------------------------------
// RTP streams

/// One 50 packet/s PCMU stream.
struct TxStream {
    side: usize,
    key: u32,
    seq: u16,
    ts: u32,
    ssrc: u32,
    ctr: u32,
    measured: u64,
    recorded: bool,
}

impl TxStream {
    fn new(side: usize, key: u32) -> Self {
        TxStream {
            side,
            key,
            seq: rand::random(),
            ts: rand::random(),
            ssrc: rand::random(),
            ctr: 0,
            measured: 0,
            recorded: false,
        }
    }

    /// Writes the next packet into `buf` and counts it.
    fn packet(&mut self, sh: &Shared, buf: &mut [u8; PKT]) {
        let phase = sh.phase.load(Relaxed);
        let measuring = phase == 1;
        buf[0] = 0x80;
        buf[1] = 0; // PCMU
        buf[2..4].copy_from_slice(&self.seq.to_be_bytes());
        buf[4..8].copy_from_slice(&self.ts.to_be_bytes());
        buf[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        let p = &mut buf[12..];
        p[..4].copy_from_slice(&MAGIC);
        p[4..8].copy_from_slice(&self.key.to_be_bytes());
        p[8] = self.side as u8;
        p[9] = if measuring { FLAG_MEASURED } else { 0 };
        p[10..14].copy_from_slice(&self.ctr.to_be_bytes());
        p[14..22].copy_from_slice(&sh.now_ns().to_be_bytes());
        p[22..].fill(0xff);
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(160);
        self.ctr = self.ctr.wrapping_add(1);
        let side = &sh.sides[self.side];
        side.sent.fetch_add(1, Relaxed);
        if measuring {
            self.measured += 1;
            side.measured_sent.fetch_add(1, Relaxed);
        }
        if phase >= 2 {
            self.record(sh);
        }
    }

    /// Records what this stream sent in the window (once: after the
    /// window, or when the stream ends).
    fn record(&mut self, sh: &Shared) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        if self.measured > 0 {
            if let Ok(mut m) = sh.sides[self.side].sent_by_key.lock() {
                *m.entry(self.key).or_insert(0) += self.measured;
            }
        }
    }
}

/// A packet received by `side`; true if it is relayed audio of the other
/// side.
fn received(sh: &Shared, side: usize, data: &[u8], last_ctr: &mut HashMap<u32, u32>) -> bool {
    let me = &sh.sides[side];
    if data.len() < 12 + 22 || data[0] >> 6 != 2 {
        me.other.fetch_add(1, Relaxed);
        return false;
    }
    me.received.fetch_add(1, Relaxed);
    let p = &data[12..];
    if p[..4] != MAGIC || usize::from(p[8]) == side {
        me.other.fetch_add(1, Relaxed);
        return false;
    }
    let key = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
    let ctr = u32::from_be_bytes([p[10], p[11], p[12], p[13]]);
    let sent = u64::from_be_bytes([p[14], p[15], p[16], p[17], p[18], p[19], p[20], p[21]]);
    match last_ctr.get_mut(&key) {
        Some(l) if ctr <= *l => {
            me.dups_or_late.fetch_add(1, Relaxed);
        }
        Some(l) => *l = ctr,
        None => {
            last_ctr.insert(key, ctr);
        }
    }
    if p[9] & FLAG_MEASURED != 0 {
        me.measured_received.fetch_add(1, Relaxed);
        if let Ok(mut m) = me.recv_by_key.lock() {
            *m.entry(key).or_insert(0) += 1;
        }
        if let Ok(mut h) = me.histo.lock() {
            h.get_or_insert_with(Histo::new)
                .add(sh.now_ns().saturating_sub(sent) / 1000);
        }
    }
    true
}

fn stream_started(side: &Side) {
    let n = side.streams.fetch_add(1, Relaxed) + 1;
    side.streams_max.fetch_max(n, Relaxed);
}

/// The agent's end of one call ("the browser's microphone and speaker"):
/// sends to the peer's relay from `sock`, counts what the relay sends back,
/// until `stop`.
async fn agent_media(
    sh: Arc<Shared>,
    sock: UdpSocket,
    relay: SocketAddr,
    stop: watch::Receiver<bool>,
) {
    let sock = Arc::new(sock);
    let side = &sh.sides[SIDE_AGENT];
    stream_started(side);
    let key = sh.next_key.fetch_add(1, Relaxed);
    let rx = {
        let (sh, sock, mut stop) = (sh.clone(), sock.clone(), stop.clone());
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            let mut last_ctr = HashMap::new();
            let mut relayed = false;
            loop {
                let r = tokio::select! {
                    _ = stop.changed() => break,
                    r = timeout(Duration::from_millis(500), sock.recv_from(&mut buf)) => r,
                };
                if sh.stop.load(Relaxed) {
                    break;
                }
                let Ok(Ok((n, from))) = r else { continue };
                if from != relay {
                    sh.sides[SIDE_AGENT].other.fetch_add(1, Relaxed);
                    continue;
                }
                let data = buf.get(..n).unwrap_or(&[]);
                if received(&sh, SIDE_AGENT, data, &mut last_ctr) && !relayed {
                    relayed = true;
                    sh.sides[SIDE_AGENT].established.fetch_add(1, Relaxed);
                }
            }
        })
    };
    let mut stop = stop;
    let mut tx = TxStream::new(SIDE_AGENT, key);
    let mut buf = [0u8; PKT];
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        let t = tokio::select! {
            _ = stop.changed() => break,
            t = tick.tick() => t,
        };
        if sh.stop.load(Relaxed) {
            break;
        }
        if t.elapsed() > Duration::from_millis(5) {
            side.late_ticks.fetch_add(1, Relaxed);
        }
        tx.packet(&sh, &mut buf);
        if sock.try_send_to(&buf, relay).is_err() {
            side.send_errors.fetch_add(1, Relaxed);
        }
    }
    tx.record(&sh);
    rx.abort();
    side.streams.fetch_sub(1, Relaxed);
}

/// The callers: one socket (every carrier offer points at it); a stream
/// back to each engine port heard, until that port is silent for 2 s.
async fn callers(sh: Arc<Shared>, port: u16) {
    let sock = match UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).await {
        Ok(s) => {
            // All the callers' audio arrives here (50 packets/s per call):
            // a large buffer, as rtpload has, so that a busy moment of this
            // process does not drop what the engine relayed.
            set_rcvbuf(&s, 16 << 20);
            Arc::new(s)
        }
        Err(e) => {
            log(&sh, &format!("cannot bind the caller port {port}: {e}"));
            std::process::exit(1);
        }
    };
    // Per engine port: last packet (ms since t0), relayed audio seen.
    let mut streams: HashMap<u16, (Arc<AtomicU64>, bool)> = HashMap::new();
    let mut last_ctr = HashMap::new();
    let mut buf = [0u8; 1500];
    while !sh.stop.load(Relaxed) {
        let Ok(Ok((n, from))) = timeout(Duration::from_millis(500), sock.recv_from(&mut buf)).await
        else {
            continue;
        };
        let now_ms = (sh.t0.elapsed().as_millis() as u64).max(1);
        let entry = streams
            .entry(from.port())
            .or_insert_with(|| (Arc::new(AtomicU64::new(0)), false));
        let prev = entry.0.swap(now_ms, Relaxed);
        if prev == 0 || now_ms.saturating_sub(prev) > 2000 {
            // A new stream (or one revived after its sender gave up).
            let last = entry.0.clone();
            tokio::spawn(caller_stream(sh.clone(), sock.clone(), from, last));
        }
        let data = buf.get(..n).unwrap_or(&[]);
        if received(&sh, SIDE_CALLER, data, &mut last_ctr) && !entry.1 {
            entry.1 = true;
            sh.sides[SIDE_CALLER].established.fetch_add(1, Relaxed);
        }
    }
}

/// SO_RCVBUF (SO_RCVBUFFORCE when allowed), as rtpload does.
fn set_rcvbuf(sock: &UdpSocket, bytes: i32) {
    use std::os::fd::AsRawFd;
    extern "C" {
        fn setsockopt(fd: i32, level: i32, name: i32, val: *const u8, len: u32) -> i32;
    }
    const SOL_SOCKET: i32 = 1;
    const SO_RCVBUF: i32 = 8;
    const SO_RCVBUFFORCE: i32 = 33;
    let v = bytes.to_ne_bytes();
    let fd = sock.as_raw_fd();
    // SAFETY: a valid descriptor and a pointer to 4 bytes.
    unsafe {
        if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, v.as_ptr(), 4) != 0 {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, v.as_ptr(), 4);
        }
    }
}

async fn caller_stream(
    sh: Arc<Shared>,
    sock: Arc<UdpSocket>,
    to: SocketAddr,
    last_rx: Arc<AtomicU64>,
) {
    let side = &sh.sides[SIDE_CALLER];
    stream_started(side);
    let mut tx = TxStream::new(SIDE_CALLER, 0x0001_0000 | u32::from(to.port()));
    let mut buf = [0u8; PKT];
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    while !sh.stop.load(Relaxed) {
        let t = tick.tick().await;
        let now_ms = sh.t0.elapsed().as_millis() as u64;
        if now_ms.saturating_sub(last_rx.load(Relaxed)) > 2000 {
            break;
        }
        if t.elapsed() > Duration::from_millis(5) {
            side.late_ticks.fetch_add(1, Relaxed);
        }
        tx.packet(&sh, &mut buf);
        if sock.try_send_to(&buf, to).is_err() {
            side.send_errors.fetch_add(1, Relaxed);
        }
    }
    tx.record(&sh);
    side.streams.fetch_sub(1, Relaxed);
}

// ---------------------------------------------------------------------------
// SIP messages: a minimal parser and builder

struct Msg {
    first: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// Header name, lower case, compact forms expanded.
fn long_name(n: &str) -> String {
    let l = n.trim().to_ascii_lowercase();
    let long = match l.as_str() {
        "v" => "via",
        "f" => "from",
        "t" => "to",
        "i" => "call-id",
        "m" => "contact",
        "l" => "content-length",
        "c" => "content-type",
        "k" => "supported",
        _ => return l,
    };
    long.to_owned()
}

impl Msg {
    /// None unless a SIP start line, `name: value` headers, Call-ID and CSeq.
    fn parse(text: &str) -> Option<Msg> {
        let (head, body) = match text.find("\r\n\r\n") {
            Some(i) => (text.get(..i)?, text.get(i + 4..)?),
            None => match text.find("\n\n") {
                Some(i) => (text.get(..i)?, text.get(i + 2..)?),
                None => (text, ""),
            },
        };
        let mut lines = head.lines();
        let first = lines.next()?.trim().to_owned();
        if !first.contains("SIP/2.0") {
            return None;
        }
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with(' ') || line.starts_with('\t') {
                let h = headers.last_mut()?;
                h.1.push(' ');
                h.1.push_str(line.trim());
                continue;
            }
            let (n, v) = line.split_once(':')?;
            headers.push((long_name(n), v.trim().to_owned()));
        }
        let m = Msg {
            first,
            headers,
            body: body.to_owned(),
        };
        m.get("call-id")?;
        m.get("cseq")?;
        Some(m)
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    fn is_response(&self) -> bool {
        self.first.starts_with("SIP/2.0")
    }
    fn method(&self) -> &str {
        if self.is_response() {
            ""
        } else {
            self.first.split_whitespace().next().unwrap_or("")
        }
    }
    fn status(&self) -> u16 {
        if !self.is_response() {
            return 0;
        }
        self.first
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }
    fn call_id(&self) -> &str {
        self.get("call-id").unwrap_or("")
    }
    fn cseq_num(&self) -> u32 {
        self.get("cseq")
            .and_then(|v| v.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
    fn to_has_tag(&self) -> bool {
        self.get("to")
            .map(|t| t.to_ascii_lowercase().contains(";tag="))
            .unwrap_or(false)
    }
}

/// A response to `req`: Via, Record-Route, From, To (with `to_tag` added if
/// it has none), Call-ID and CSeq copied; `extra` header lines (each ending
/// with CRLF); an SDP body if any.
fn response(
    req: &Msg,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
    extra: &str,
    sdp: Option<&str>,
) -> String {
    let mut r = format!("SIP/2.0 {code} {reason}\r\n");
    for v in req.all("via") {
        r += &format!("Via: {v}\r\n");
    }
    for v in req.all("record-route") {
        r += &format!("Record-Route: {v}\r\n");
    }
    r += &format!("From: {}\r\n", req.get("from").unwrap_or(""));
    let to = req.get("to").unwrap_or("");
    match to_tag {
        Some(t) if !req.to_has_tag() => r += &format!("To: {to};tag={t}\r\n"),
        _ => r += &format!("To: {to}\r\n"),
    }
    r += &format!("Call-ID: {}\r\n", req.call_id());
    r += &format!("CSeq: {}\r\n", req.get("cseq").unwrap_or(""));
    r += extra;
    r += "User-Agent: permanence-webrtc-agents\r\n";
    match sdp {
        Some(b) => {
            r += &format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            )
        }
        None => r += "Content-Length: 0\r\n\r\n",
    }
    r
}

/// A parameter of a digest challenge (`name=value` or `name="value"`).
fn auth_param(challenge: &str, name: &str) -> Option<String> {
    let lower = challenge.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower.get(from..)?.find(name) {
        let at = from + i;
        from = at + name.len();
        let before_ok =
            at == 0 || matches!(lower.as_bytes().get(at - 1), Some(b' ' | b',' | b'\t'));
        let rest = challenge.get(from..)?.trim_start();
        let Some(v) = rest.strip_prefix('=') else {
            continue;
        };
        if !before_ok {
            continue;
        }
        let v = v.trim_start();
        return Some(match v.strip_prefix('"') {
            Some(q) => q.split('"').next().unwrap_or("").to_owned(),
            None => v.split(',').next().unwrap_or("").trim().to_owned(),
        });
    }
    None
}

fn md5_hex(s: &str) -> String {
    use md5::{Digest, Md5};
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ---------------------------------------------------------------------------
// Agents

struct Agent {
    user: String,
    password: String,
    host: String,
    contact: String,
}

type Out = mpsc::UnboundedSender<String>;
type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

const ALLOW: &str = "Allow: INVITE,ACK,CANCEL,BYE,OPTIONS,INFO,NOTIFY,UPDATE\r\n";
/// Bound of every connect, handshake, registration answer and write.
const IO_LIMIT: Duration = Duration::from_secs(5);

fn register_msg(o: &Opts, a: &Agent, call_id: &str, tag: &str, cseq: u32, auth: &str) -> String {
    format!(
        "REGISTER sip:{d} SIP/2.0\r\n\
         Via: SIP/2.0/WS {h};branch=z9hG4bK{b}\r\n\
         Max-Forwards: 70\r\n\
         To: <sip:{u}@{d}>\r\n\
         From: <sip:{u}@{d}>;tag={tag}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: {c};expires={e}\r\n\
         Expires: {e}\r\n\
         {auth}{ALLOW}\
         User-Agent: permanence-webrtc-agents\r\n\
         Content-Length: 0\r\n\r\n",
        d = o.domain,
        h = a.host,
        b = rand_hex(),
        u = a.user,
        c = a.contact,
        e = o.expires,
    )
}

/// The digest answer (MD5) to a 401 or 407 for REGISTER.
fn authorization(o: &Opts, a: &Agent, resp: &Msg) -> Option<String> {
    let (hname, aname) = if resp.status() == 407 {
        ("proxy-authenticate", "Proxy-Authorization")
    } else {
        ("www-authenticate", "Authorization")
    };
    let ch = resp.all(hname).find(|c| {
        auth_param(c, "algorithm")
            .map(|x| x.eq_ignore_ascii_case("md5"))
            .unwrap_or(true)
    })?;
    let realm = auth_param(ch, "realm")?;
    let nonce = auth_param(ch, "nonce")?;
    let uri = format!("sip:{}", o.domain);
    let ha1 = md5_hex(&format!("{}:{realm}:{}", a.user, a.password));
    let ha2 = md5_hex(&format!("REGISTER:{uri}"));
    let opaque = auth_param(ch, "opaque")
        .map(|x| format!(", opaque=\"{x}\""))
        .unwrap_or_default();
    let qop_auth = auth_param(ch, "qop")
        .map(|q| q.split(',').any(|x| x.trim() == "auth"))
        .unwrap_or(false);
    let user = &a.user;
    Some(if qop_auth {
        let cnonce = rand_hex();
        let r = md5_hex(&format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}"));
        format!(
            "{aname}: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{r}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"{cnonce}\"{opaque}\r\n"
        )
    } else {
        let r = md5_hex(&format!("{ha1}:{nonce}:{ha2}"));
        format!(
            "{aname}: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{r}\", algorithm=MD5{opaque}\r\n"
        )
    })
}

async fn connect(o: &Opts) -> Result<Ws, String> {
    let tcp = timeout(IO_LIMIT, TcpStream::connect(o.ws))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let mut req = format!("ws://{}/", o.ws)
        .into_client_request()
        .map_err(|e| e.to_string())?;
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "sip".parse().map_err(|_| "header")?,
    );
    // A small initial read buffer (tungstenite allocates 128 KiB per
    // connection by default; SIP messages are a few KB and it grows).
    let cfg = WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .max_message_size(Some(256 * 1024))
        .max_frame_size(Some(256 * 1024));
    let (ws, _) = timeout(
        IO_LIMIT,
        tokio_tungstenite::client_async_with_config(req, tcp, Some(cfg)),
    )
    .await
    .map_err(|_| "handshake timed out".to_owned())?
    .map_err(|e| e.to_string())?;
    Ok(ws)
}

/// The text of a WebSocket message; Err(()) when the connection is over;
/// Ok(None) for control frames.
fn text_of(
    m: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
) -> Result<Option<String>, ()> {
    match m {
        Some(Ok(Message::Text(t))) => Ok(Some(t.as_str().to_owned())),
        Some(Ok(Message::Binary(b))) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => Err(()),
        Some(Ok(_)) => Ok(None), // ping (tungstenite answers it), pong
    }
}

/// One agent: connect, register, answer calls until `deadline`.
async fn agent(
    sh: Arc<Shared>,
    o: Arc<Opts>,
    a: Agent,
    deadline: tokio::time::Instant,
    registered: mpsc::UnboundedSender<bool>,
) {
    let ws = match connect(&o).await {
        Ok(ws) => ws,
        Err(e) => {
            sh.sip.ws_failed.fetch_add(1, Relaxed);
            log(&sh, &format!("{}: WebSocket: {e}", a.user));
            let _ = registered.send(false);
            return;
        }
    };
    sh.sip.ws_connected.fetch_add(1, Relaxed);
    let (mut sink, mut stream) = ws.split();
    let (out, mut out_rx) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            match timeout(IO_LIMIT, sink.send(Message::text(m))).await {
                Ok(Ok(())) => {}
                _ => break,
            }
        }
        let _ = timeout(Duration::from_secs(1), sink.close()).await;
    });
    // Registration: the 401, then the digest answer.
    let call_id = format!("{}@reg", rand_hex());
    let tag = rand_hex();
    let mut cseq = 1;
    let mut auth = String::new();
    let mut ok = false;
    'reg: for _ in 0..3 {
        let _ = out.send(register_msg(&o, &a, &call_id, &tag, cseq, &auth));
        let until = tokio::time::Instant::now() + IO_LIMIT;
        loop {
            let m = tokio::select! {
                m = stream.next() => m,
                _ = sleep_until(until) => break 'reg,
            };
            let Ok(text) = text_of(m) else { break 'reg };
            let Some(r) = text.as_deref().and_then(Msg::parse) else {
                continue;
            };
            if !r.is_response() || r.call_id() != call_id || r.cseq_num() != cseq {
                continue;
            }
            match r.status() {
                100..=199 => continue,
                200..=299 => {
                    ok = true;
                    break 'reg;
                }
                401 | 407 if auth.is_empty() => match authorization(&o, &a, &r) {
                    Some(x) => {
                        auth = x;
                        cseq += 1;
                        continue 'reg;
                    }
                    None => break 'reg,
                },
                s => {
                    log(&sh, &format!("{}: REGISTER answered {s}", a.user));
                    break 'reg;
                }
            }
        }
    }
    let _ = registered.send(ok);
    if !ok {
        sh.sip.register_failed.fetch_add(1, Relaxed);
        drop(out);
        let _ = timeout(Duration::from_secs(2), writer).await;
        return;
    }
    sh.sip.registered.fetch_add(1, Relaxed);
    // Calls: requests of a known dialog (Call-ID) go to its task.
    let mut dialogs: HashMap<String, mpsc::UnboundedSender<Msg>> = HashMap::new();
    loop {
        let m = tokio::select! {
            m = stream.next() => m,
            _ = sleep_until(deadline) => break,
        };
        let text = match text_of(m) {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            Err(()) => {
                sh.sip.ws_closed.fetch_add(1, Relaxed);
                log(&sh, &format!("{}: WebSocket closed by the engine", a.user));
                break;
            }
        };
        if text.trim().is_empty() {
            continue; // CRLF keep-alive
        }
        let Some(msg) = Msg::parse(&text) else {
            sh.sip.unparsable.fetch_add(1, Relaxed);
            continue;
        };
        if msg.is_response() {
            continue; // no request of ours is pending after the REGISTER
        }
        let cid = msg.call_id().to_owned();
        if let Some(tx) = dialogs.get(&cid) {
            if let Err(e) = tx.send(msg) {
                // Its call is over.
                dialogs.remove(&cid);
                let msg = e.0;
                if msg.method() != "ACK" {
                    sh.sip.unknown_dialog.fetch_add(1, Relaxed);
                    let _ = out.send(response(
                        &msg,
                        481,
                        "Call/Transaction Does Not Exist",
                        None,
                        "",
                        None,
                    ));
                }
            }
            continue;
        }
        match msg.method() {
            "INVITE" if !msg.to_has_tag() => {
                dialogs.retain(|_, tx| !tx.is_closed());
                let (tx, rx) = mpsc::unbounded_channel();
                dialogs.insert(cid, tx);
                tokio::spawn(call(
                    sh.clone(),
                    a.contact.clone(),
                    msg,
                    out.clone(),
                    rx,
                    deadline,
                ));
            }
            "ACK" => {}
            "OPTIONS" if !msg.to_has_tag() => {
                sh.sip.options.fetch_add(1, Relaxed);
                let _ = out.send(response(&msg, 200, "OK", Some(&rand_hex()), ALLOW, None));
            }
            _ => {
                sh.sip.unknown_dialog.fetch_add(1, Relaxed);
                let _ = out.send(response(
                    &msg,
                    481,
                    "Call/Transaction Does Not Exist",
                    Some(&rand_hex()),
                    "",
                    None,
                ));
            }
        }
    }
    drop(dialogs);
    drop(out);
    let _ = timeout(Duration::from_secs(2), writer).await;
}

/// Builds the peer answering `offer`, relaying to a new local socket.
async fn answer(offer: &str) -> Result<(UdpSocket, Peer, String), String> {
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(|e| e.to_string())?;
    let media = sock.local_addr().map_err(|e| e.to_string())?;
    let settings = WebRtcSettings::on(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let (peer, sdp) = timeout(
        Duration::from_secs(10),
        Peer::answer(settings, media, offer),
    )
    .await
    .map_err(|_| "Peer::answer timed out".to_owned())?
    .map_err(|e| e.to_string())?;
    Ok((sock, peer, sdp))
}

/// One call offered to the agent, answered by a WebRTC peer.
async fn call(
    sh: Arc<Shared>,
    contact: String,
    invite: Msg,
    out: Out,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    deadline: tokio::time::Instant,
) {
    sh.sip.invites.fetch_add(1, Relaxed);
    let tag = rand_hex();
    let extra = format!("Contact: {contact}\r\n{ALLOW}");
    let _ = out.send(response(&invite, 100, "Trying", None, "", None));
    let _ = out.send(response(&invite, 180, "Ringing", Some(&tag), &extra, None));
    let started = Instant::now();
    let (sock, peer, sdp) = match answer(&invite.body).await {
        Ok(x) => x,
        Err(e) => {
            sh.sip.answer_failed.fetch_add(1, Relaxed);
            log(&sh, &format!("cannot answer {}: {e}", invite.call_id()));
            let _ = out.send(response(
                &invite,
                488,
                "Not Acceptable Here",
                Some(&tag),
                "",
                None,
            ));
            return;
        }
    };
    push(&sh.answer_ms, started.elapsed().as_secs_f64() * 1000.0);
    // A CANCEL that came while the peer was being built.
    while let Ok(m) = rx.try_recv() {
        if m.method() == "CANCEL" {
            sh.sip.cancels.fetch_add(1, Relaxed);
            let _ = out.send(response(&m, 200, "OK", Some(&tag), "", None));
            let _ = out.send(response(
                &invite,
                487,
                "Request Terminated",
                Some(&tag),
                "",
                None,
            ));
            let _ = timeout(Duration::from_secs(2), peer.close()).await;
            return;
        }
    }
    let _ = out.send(response(&invite, 200, "OK", Some(&tag), &extra, Some(&sdp)));
    sh.sip.answered.fetch_add(1, Relaxed);
    let active = sh.sip.calls_active.fetch_add(1, Relaxed) + 1;
    sh.sip.calls_active_max.fetch_max(active, Relaxed);
    let (stop_tx, stop_rx) = watch::channel(false);
    let media = tokio::spawn(agent_media(sh.clone(), sock, peer.relay_addr(), stop_rx));
    {
        let mut connected = std::pin::pin!(timeout(Duration::from_secs(10), peer.connected()));
        let mut gone = std::pin::pin!(peer.gone_signal());
        let (mut connected_done, mut gone_seen, mut acked) = (false, false, false);
        let mut sdp_now = sdp;
        loop {
            tokio::select! {
                m = rx.recv() => {
                    let Some(m) = m else { break };
                    match m.method() {
                        "ACK" => {
                            if !acked {
                                acked = true;
                                sh.sip.acks.fetch_add(1, Relaxed);
                            }
                        }
                        "BYE" => {
                            sh.sip.byes.fetch_add(1, Relaxed);
                            let _ = out.send(response(&m, 200, "OK", None, "", None));
                            break;
                        }
                        "CANCEL" => {
                            // Too late: the call is answered.
                            let _ = out.send(response(&m, 200, "OK", None, "", None));
                        }
                        "INVITE" => {
                            sh.sip.reinvites.fetch_add(1, Relaxed);
                            if !m.body.trim().is_empty() {
                                match timeout(Duration::from_secs(5), peer.answer_offer(&m.body)).await {
                                    Ok(Ok(s)) => sdp_now = s,
                                    _ => {
                                        let _ = out.send(response(&m, 488, "Not Acceptable Here", None, "", None));
                                        continue;
                                    }
                                }
                            }
                            let _ = out.send(response(&m, 200, "OK", None, &extra, Some(&sdp_now)));
                        }
                        "OPTIONS" => {
                            sh.sip.options.fetch_add(1, Relaxed);
                            let _ = out.send(response(&m, 200, "OK", None, ALLOW, None));
                        }
                        _ => {
                            sh.sip.other_requests.fetch_add(1, Relaxed);
                            let _ = out.send(response(&m, 200, "OK", None, "", None));
                        }
                    }
                }
                r = &mut connected, if !connected_done => {
                    connected_done = true;
                    if r.is_ok() && peer.state() == PeerState::Connected {
                        sh.sip.peers_connected.fetch_add(1, Relaxed);
                        push(&sh.connect_ms, started.elapsed().as_secs_f64() * 1000.0);
                    } else {
                        sh.sip.peers_connect_timeout.fetch_add(1, Relaxed);
                    }
                }
                _ = &mut gone, if !gone_seen => {
                    gone_seen = true;
                    sh.sip.peers_gone.fetch_add(1, Relaxed);
                }
                _ = sleep_until(deadline) => break,
            }
        }
    }
    let _ = stop_tx.send(true);
    let _ = timeout(Duration::from_secs(2), media).await;
    let _ = timeout(Duration::from_secs(2), peer.close()).await;
    sh.sip.calls_active.fetch_sub(1, Relaxed);
}

// ---------------------------------------------------------------------------
// Measurement and report

fn direction(sh: &Shared, from: usize, to: usize) -> String {
    let sent = sh.sides[from].measured_sent.load(Relaxed);
    let recv = sh.sides[to].measured_received.load(Relaxed);
    let sent_by = sh.sides[from]
        .sent_by_key
        .lock()
        .map(|m| m.clone())
        .unwrap_or_default();
    let recv_by = sh.sides[to]
        .recv_by_key
        .lock()
        .map(|m| m.clone())
        .unwrap_or_default();
    let (mut with_loss, mut worst) = (0u64, 0u64);
    for (k, s) in &sent_by {
        let r = recv_by.get(k).copied().unwrap_or(0);
        if r < *s {
            with_loss += 1;
            worst = worst.max(s - r);
        }
    }
    let (p50, p90, p99, p999, max, over) = match sh.sides[to].histo.lock().as_deref() {
        Ok(Some(h)) => (
            h.pct(0.5),
            h.pct(0.9),
            h.pct(0.99),
            h.pct(0.999),
            h.max_us,
            h.over,
        ),
        _ => (-1.0, -1.0, -1.0, -1.0, 0, 0),
    };
    format!(
        "{{\"sent\":{sent},\"received\":{recv},\"lost\":{},\"loss_pct\":{:.5},\"streams\":{},\
         \"streams_with_loss\":{with_loss},\"worst_stream_lost\":{worst},\"dups_or_late\":{},\
         \"latency_us\":{{\"p50\":{p50:.0},\"p90\":{p90:.0},\"p99\":{p99:.0},\"p999\":{p999:.0},\
         \"max\":{max},\"over_200ms\":{over}}}}}",
        sent as i64 - recv as i64,
        if sent > 0 {
            100.0 * (sent as f64 - recv as f64) / sent as f64
        } else {
            0.0
        },
        sent_by.len(),
        sh.sides[to].dups_or_late.load(Relaxed),
    )
}

fn pcts(v: &Mutex<Vec<f64>>) -> String {
    let mut v = v.lock().map(|v| v.clone()).unwrap_or_default();
    if v.is_empty() {
        return "null".into();
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let p = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    format!(
        "{{\"n\":{},\"p50\":{:.1},\"p99\":{:.1},\"max\":{:.1}}}",
        v.len(),
        p(0.5),
        p(0.99),
        p(1.0)
    )
}

/// The phases of `rtpload media`: established, settle, window, drain,
/// report (one JSON line on stdout).
async fn measure(sh: Arc<Shared>, o: Arc<Opts>) {
    log(
        &sh,
        &format!("waiting for {} calls flowing both ways", o.calls),
    );
    let until = Instant::now() + Duration::from_secs_f64(o.max_wait);
    let mut last_print = Instant::now();
    let (c, a) = (&sh.sides[SIDE_CALLER], &sh.sides[SIDE_AGENT]);
    let established = loop {
        let (ce, ae) = (c.established.load(Relaxed), a.established.load(Relaxed));
        if ce >= o.calls && ae >= o.calls {
            break true;
        }
        if Instant::now() > until {
            break false;
        }
        if last_print.elapsed() > Duration::from_secs(5) {
            last_print = Instant::now();
            log(
                &sh,
                &format!(
                    "bridged streams: agent->caller {ce}, caller->agent {ae}; sip {}",
                    sh.sip.json()
                ),
            );
        }
        sleep(Duration::from_millis(50)).await;
    };
    let t_est = sh.t0.elapsed().as_secs_f64();
    log(
        &sh,
        &format!("established={established}; settling {}s", o.settle),
    );
    sleep(Duration::from_secs_f64(o.settle)).await;
    log(&sh, &format!("measuring for {}s", o.measure));
    let m0 = Instant::now();
    let w_start = unix();
    sh.phase.store(1, Relaxed);
    sleep(Duration::from_secs_f64(o.measure)).await;
    sh.phase.store(2, Relaxed);
    let window = m0.elapsed().as_secs_f64();
    let w_end = unix();
    log(&sh, "window closed; draining");
    // Packets of the window may still be queued: at least 1 s, then until
    // nothing measured arrived for 1 s (at most 15 s).
    let d0 = Instant::now();
    sleep(Duration::from_secs(1)).await;
    let rx = || c.measured_received.load(Relaxed) + a.measured_received.load(Relaxed);
    let mut last = rx();
    while d0.elapsed() < Duration::from_secs(15) {
        sleep(Duration::from_secs(1)).await;
        let now = rx();
        if now == last {
            break;
        }
        last = now;
    }
    let drain_s = d0.elapsed().as_secs_f64();
    log(&sh, &format!("drained in {drain_s:.1}s"));
    let measured_sent = c.measured_sent.load(Relaxed) + a.measured_sent.load(Relaxed);
    let measured_recv = c.measured_received.load(Relaxed) + a.measured_received.load(Relaxed);
    println!(
        "{{\"window_start_unix\":{w_start:.3},\"window_end_unix\":{w_end:.3},\"established\":{established},\
         \"t_established_s\":{t_est:.2},\"calls_expected\":{},\
         \"bridged_streams\":{{\"agent_to_caller\":{},\"caller_to_agent\":{}}},\"window_s\":{window:.3},\
         \"drain_s\":{drain_s:.1},\"caller_to_agent\":{},\"agent_to_caller\":{},\
         \"pps_sent_by_endpoints\":{:.0},\"pps_received_by_endpoints\":{:.0},\"total_sent\":{},\
         \"total_received_rtp\":{},\"other_packets\":{},\"send_errors\":{},\"streams_max\":{},\
         \"late_ticks\":{},\"late_ticks_by_side\":{{\"caller\":{},\"agent\":{}}},\"sip\":{},\
         \"peer_answer_ms\":{},\"peer_connected_ms\":{}}}",
        o.calls,
        c.established.load(Relaxed),
        a.established.load(Relaxed),
        direction(&sh, SIDE_CALLER, SIDE_AGENT),
        direction(&sh, SIDE_AGENT, SIDE_CALLER),
        measured_sent as f64 / window,
        measured_recv as f64 / window,
        c.sent.load(Relaxed) + a.sent.load(Relaxed),
        c.received.load(Relaxed) + a.received.load(Relaxed),
        c.other.load(Relaxed) + a.other.load(Relaxed),
        c.send_errors.load(Relaxed) + a.send_errors.load(Relaxed),
        c.streams_max.load(Relaxed) + a.streams_max.load(Relaxed),
        c.late_ticks.load(Relaxed) + a.late_ticks.load(Relaxed),
        c.late_ticks.load(Relaxed),
        a.late_ticks.load(Relaxed),
        sh.sip.json(),
        pcts(&sh.answer_ms),
        pcts(&sh.connect_ms),
    );
}

async fn run(o: Arc<Opts>) {
    let sh = Arc::new(Shared {
        t0: Instant::now(),
        phase: AtomicU8::new(0),
        stop: AtomicBool::new(false),
        sides: [Side::default(), Side::default()],
        sip: Sip::default(),
        next_key: AtomicU32::new(1),
        answer_ms: Mutex::new(Vec::new()),
        connect_ms: Mutex::new(Vec::new()),
    });
    let reg_s = o.agents as f64 / o.register_rate.max(1.0) + 30.0;
    let total = reg_s + o.max_wait + o.settle + o.measure + 20.0 + o.linger + 30.0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(total);
    if let Some(p) = o.caller_port {
        tokio::spawn(callers(sh.clone(), p));
    }
    // Agents, started at --register-rate.
    let (reg_tx, mut reg_rx) = mpsc::unbounded_channel();
    {
        let (sh, o) = (sh.clone(), o.clone());
        let gap = Duration::from_secs_f64(1.0 / o.register_rate.max(1.0));
        tokio::spawn(async move {
            for i in o.first..o.first.saturating_add(o.agents) {
                let user = format!("{}{i:04}", o.prefix);
                let host = format!("{}.invalid", rand_hex());
                let a = Agent {
                    password: format!("{}{user}", o.password_prefix),
                    contact: format!("<sip:{user}@{host};transport=ws>"),
                    user,
                    host,
                };
                tokio::spawn(agent(sh.clone(), o.clone(), a, deadline, reg_tx.clone()));
                sleep(gap).await;
            }
        });
    }
    let (mut ok, mut failed) = (0u32, 0u32);
    let reg_deadline = tokio::time::Instant::now() + Duration::from_secs_f64(reg_s);
    while ok + failed < o.agents {
        tokio::select! {
            r = reg_rx.recv() => match r {
                Some(true) => ok += 1,
                Some(false) => failed += 1,
                None => break,
            },
            _ = sleep_until(reg_deadline) => break,
        }
    }
    println!("{{\"ready\":true,\"registered\":{ok},\"register_failed\":{failed}}}");
    log(
        &sh,
        &format!("all registered: {ok}/{} ({failed} failed)", o.agents),
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let terminated = async move {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    let mut terminated = std::pin::pin!(terminated);
    if o.calls > 0 && o.caller_port.is_some() {
        tokio::select! {
            _ = measure(sh.clone(), o.clone()) => {
                log(&sh, &format!("report printed; keeping the calls up for {}s", o.linger));
                tokio::select! {
                    _ = sleep(Duration::from_secs_f64(o.linger)) => {}
                    _ = &mut terminated => log(&sh, "SIGTERM"),
                }
            }
            _ = &mut terminated => log(&sh, "SIGTERM before the report"),
        }
    } else {
        tokio::select! {
            _ = sleep_until(deadline) => {}
            _ = &mut terminated => log(&sh, "SIGTERM"),
        }
    }
    sh.stop.store(true, Relaxed);
    let sip = sh.sip.json();
    println!(
        "{{\"final\":true,\"sip\":{sip},\"peer_answer_ms\":{},\"peer_connected_ms\":{}}}",
        pcts(&sh.answer_ms),
        pcts(&sh.connect_ms)
    );
    log(&sh, &format!("final: {sip}"));
}

fn main() {
    let o = match opts() {
        Ok(o) => Arc::new(o),
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            std::process::exit(1);
        }
    };
    rt.block_on(run(o));
    // Peers still closing, sockets: the process ends here.
    rt.shutdown_timeout(Duration::from_secs(1));
}
