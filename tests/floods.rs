//! Floods from one address that is not a trunk (INVITE, REGISTER, OPTIONS
//! at 10,000 datagrams/s for 10 s) while a trunk call runs: the call's
//! audio never stops for more than 200 ms, new trunk calls are answered
//! throughout, the flooding source is banned once, and almost nothing of
//! the flood reaches the SIP stack.

mod common;

use common::{cpu_time, http_get, metric, sipp, sipp_thread, Engine, RtpPeer, SippRun, TestConfig};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

const MARTIN: &str = "Diversion: <sip:+33450000001@carrier.example>;reason=unconditional";
const RATE: u32 = 10_000;
const FLOOD: Duration = Duration::from_secs(10);

fn config() -> TestConfig {
    let mut cfg = TestConfig::demo();
    cfg.always_open("martin");
    cfg.practice("martin").remove("triage");
    cfg.tone_prompt("martin", "greeting", 0.3, 440.0);
    cfg
}

fn carrier_vars(rtp_port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("called", "+33970000000".to_string()),
        ("hdr", MARTIN.to_string()),
        ("rtp_port", rtp_port.to_string()),
    ]
}

/// One datagram of the flood, numbered `i`.
fn datagram(method: &str, i: u64, engine: SocketAddr, port: u16) -> Vec<u8> {
    let (ruri, to, extra) = match method {
        "REGISTER" => (
            format!("sip:{}", engine.ip()),
            format!("<sip:alice@{}>", engine.ip()),
            format!("Contact: <sip:alice@127.0.0.2:{port}>\r\nExpires: 3600\r\n"),
        ),
        "OPTIONS" => (
            format!("sip:permanence@{engine}"),
            format!("<sip:permanence@{engine}>"),
            String::new(),
        ),
        _ => (
            format!("sip:+33980000004@{engine}"),
            format!("<sip:+33980000004@{}>", engine.ip()),
            format!("Contact: <sip:x@127.0.0.2:{port}>\r\n"),
        ),
    };
    let body = if method == "INVITE" {
        "v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
    } else {
        ""
    };
    let ctype = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:{port};branch=z9hG4bK-fl{i};rport\r\nFrom: <sip:flood@127.0.0.2>;tag=f{i}\r\nTo: {to}\r\nCall-ID: flood-{i}@127.0.0.2\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n{extra}{ctype}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Sends `method` from 127.0.0.2 at `RATE` per second for `FLOOD`; returns
/// how many were sent and how many responses came back.
fn flood(method: &'static str, engine: SocketAddr) -> std::thread::JoinHandle<(u64, u64)> {
    std::thread::spawn(move || {
        let sock = UdpSocket::bind("127.0.0.2:0").expect("bind 127.0.0.2");
        sock.set_nonblocking(true).expect("nonblocking");
        let port = sock.local_addr().map(|a| a.port()).unwrap_or(0);
        let start = Instant::now();
        let (mut sent, mut answers) = (0u64, 0u64);
        let mut buf = [0u8; 4096];
        while start.elapsed() < FLOOD {
            // Catch up with the schedule in small batches.
            let due = (start.elapsed().as_secs_f64() * f64::from(RATE)) as u64;
            while sent < due {
                if sock
                    .send_to(&datagram(method, sent, engine, port), engine)
                    .is_ok()
                {
                    sent += 1;
                } else {
                    break;
                }
            }
            while sock.recv_from(&mut buf).is_ok() {
                answers += 1;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        (sent, answers)
    })
}

/// The longest silence between two packets received in `window`.
fn longest_gap(rtp: &RtpPeer, window: (Instant, Instant)) -> Duration {
    let times: Vec<Instant> = rtp
        .received()
        .iter()
        .map(|p| p.at)
        .filter(|t| *t >= window.0 && *t <= window.1)
        .collect();
    assert!(
        times.len() > 100,
        "only {} packets in the window",
        times.len()
    );
    times
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .max()
        .unwrap_or_default()
}

fn flood_test(method: &'static str) {
    let engine = Engine::start(&config(), &[]);
    // A trunk call in the queue, hearing hold audio for the whole flood.
    let caller = RtpPeer::start(0, 0x55);
    let call = sipp_thread(
        "carrier_call.xml",
        engine.sip,
        carrier_vars(caller.port),
        vec!["-d".into(), "16000".into()],
        Duration::from_secs(40),
    );
    assert!(caller.wait_until(Duration::from_secs(5), |p| p.len() > 20));
    let cpu_before = cpu_time(engine.pid());
    let started = Instant::now();
    let attack = flood(method, engine.sip);
    // New trunk calls during the flood, one every 2 s.
    let mut answered = Vec::new();
    while started.elapsed() < FLOOD - Duration::from_secs(2) {
        let rtp = RtpPeer::start(0, 0x66);
        let run: SippRun = sipp(
            "carrier_call.xml",
            engine.sip,
            "127.0.0.1",
            &carrier_vars(rtp.port),
            &["-d", "500"],
            Duration::from_secs(10),
        );
        answered.push((
            started.elapsed(),
            run.success,
            run.messages.contains("SIP/2.0 200"),
        ));
        std::thread::sleep(Duration::from_millis(1000));
    }
    let (sent, answers) = attack.join().expect("flood thread");
    let ended = Instant::now();
    let cpu = cpu_time(engine.pid()) - cpu_before;
    let run = call.join().expect("call thread");
    assert!(
        run.success,
        "the running call failed:\n{}\n{}",
        run.output, run.errors
    );
    let gap = longest_gap(&caller, (started, ended));
    let (_, text) = http_get(&engine, "/metrics");
    let m = |s: &str| metric(&text, s).unwrap_or(0.0);
    let dropped: f64 = ["banned", "rate", "budget", "stateless_ack"]
        .iter()
        .map(|r| {
            m(&format!(
                "permanence_sip_flood_dropped_total{{reason=\"{r}\"}}"
            ))
        })
        .sum();
    let reached = m(&format!(
        "permanence_sip_requests_total{{method=\"{method}\"}}"
    ));
    eprintln!(
        "{method} flood: {sent} sent in {:.1} s, {answers} answered, {dropped} dropped by the gate, {reached} reached the stack, bans {}; engine CPU {:.2} s ({:.0} % of a core); longest audio gap {:?}; calls during the flood: {answered:?}",
        FLOOD.as_secs_f64(),
        m("permanence_sip_bans_total"),
        cpu.as_secs_f64(),
        100.0 * cpu.as_secs_f64() / ended.duration_since(started).as_secs_f64(),
        gap,
    );
    assert!(
        sent >= u64::from(RATE) * 9,
        "the flood generator fell short: {sent}"
    );
    assert!(
        gap <= Duration::from_millis(200),
        "audio gap of {gap:?} during the flood"
    );
    assert!(answered.len() >= 3, "{answered:?}");
    assert!(
        answered.iter().all(|(_, ok, got_200)| *ok && *got_200),
        "a trunk call was not answered during the flood: {answered:?}"
    );
    assert_eq!(m("permanence_sip_bans_total"), 1.0);
    // At least 99 % of the flood was absorbed before the stack.
    assert!(dropped >= 0.99 * sent as f64, "dropped {dropped} of {sent}");
    assert!(reached < 100.0, "{reached} {method} reached the stack");
    assert!(answers < 100, "{answers} responses to the flooding source");
}

#[test]
fn invite_flood_from_one_source() {
    flood_test("INVITE");
}

#[test]
fn register_flood_from_one_source() {
    flood_test("REGISTER");
}

#[test]
fn options_flood_from_one_source() {
    flood_test("OPTIONS");
}
