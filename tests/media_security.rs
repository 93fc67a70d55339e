//! Media security end to end: a third party on another address (an
//! attacker socket on 127.0.0.3) sending RTP at a call's media ports can
//! neither hijack an established call while the caller is silent nor get
//! latched by spraying the RTP range before the call is set up. Real peers:
//! SIPp as the carrier and as Alice's softphone, RTP endpoints of the test
//! that send and check payload bytes.

mod common;

use common::{
    field, free_udp_port, parse_rtp, register_agent, Engine, RtpPacket, RtpPeer, SippBg, SippRun,
    TestConfig,
};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SERVICE: &str = "+33970000000";
const MARTIN: &str = "Diversion: <sip:+33450000001@carrier.example>;reason=unconditional";
/// Payload bytes of each party: caller, agent, attacker.
const CALLER: u8 = 0x55;
const AGENT: u8 = 0x2a;
const ATTACKER: u8 = 0x66;

/// The demo with Dr Martin open at all hours, no triage menu, a 1 s
/// greeting (the call reaches Alice quickly), qualify probes off.
fn config() -> TestConfig {
    TestConfig::martin_direct(1.0)
}

/// Number of packets carrying exactly `fill` bytes of PCMU.
fn count_fill(p: &[RtpPacket], fill: u8) -> usize {
    p.iter()
        .filter(|p| p.pt == 0 && p.payload.len() == 160 && p.payload.iter().all(|&b| b == fill))
        .count()
}

/// Same, among the packets received after `t`.
fn count_fill_after(p: &[RtpPacket], fill: u8, t: Instant) -> usize {
    let after: Vec<RtpPacket> = p.iter().filter(|p| p.at > t).cloned().collect();
    count_fill(&after, fill)
}

/// The caller's RTP endpoint: symmetric (sends to where the engine's
/// packets come from), PCMU `fill` every 20 ms while talking; one SSRC and
/// consecutive sequence numbers throughout, as a phone with silence
/// suppression sends nothing while the patient is silent.
struct Caller {
    port: u16,
    talking: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    received: Arc<Mutex<Vec<RtpPacket>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Caller {
    fn start(fill: u8) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind caller rtp");
        let port = sock.local_addr().expect("addr").port();
        sock.set_read_timeout(Some(Duration::from_millis(5)))
            .expect("timeout");
        let talking = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (t2, s2, r2) = (talking.clone(), stop.clone(), received.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut remote: Option<SocketAddr> = None;
            let (mut seq, mut ts) = (7000u16, 80_000u32);
            let mut next = Instant::now();
            while !s2.load(Ordering::Relaxed) {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    if let Some(p) = parse_rtp(&buf[..n], from) {
                        remote.get_or_insert(from);
                        r2.lock().expect("rtp").push(p);
                    }
                }
                let now = Instant::now();
                if now < next {
                    continue;
                }
                next += Duration::from_millis(20);
                // The clock runs on while silent; the sequence does not.
                ts = ts.wrapping_add(160);
                if let (Some(to), true) = (remote, t2.load(Ordering::Relaxed)) {
                    let pkt = common::rtp_packet(0, seq, ts, 0xca11_e400, false, &[fill; 160]);
                    let _ = sock.send_to(&pkt, to);
                    seq = seq.wrapping_add(1);
                }
            }
        });
        Self {
            port,
            talking,
            stop,
            received,
            thread: Some(thread),
        }
    }

    fn set_talking(&self, on: bool) {
        self.talking.store(on, Ordering::Relaxed);
    }

    fn received(&self) -> Vec<RtpPacket> {
        self.received.lock().expect("rtp").clone()
    }

    fn wait_until(&self, timeout: Duration, pred: impl Fn(&[RtpPacket]) -> bool) -> bool {
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

impl Drop for Caller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The attacker: one UDP socket on 127.0.0.3, sending PCMU `ATTACKER`
/// bytes (one SSRC, consecutive sequence numbers per target port, as a
/// real stream) to `targets` every 20 ms while running, and counting every
/// datagram it receives.
struct Attacker {
    received: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Attacker {
    fn start(targets: Vec<SocketAddr>) -> Self {
        let sock =
            UdpSocket::bind("127.0.0.3:0").expect("bind 127.0.0.3 (Linux routes 127/8 to lo)");
        sock.set_read_timeout(Some(Duration::from_millis(2)))
            .expect("timeout");
        let received = Arc::new(AtomicU64::new(0));
        let sent = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r2, n2, s2) = (received.clone(), sent.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut seq = 1u16;
            let mut next = Instant::now();
            while !s2.load(Ordering::Relaxed) {
                if sock.recv_from(&mut buf).is_ok() {
                    r2.fetch_add(1, Ordering::Relaxed);
                }
                if Instant::now() < next {
                    continue;
                }
                next += Duration::from_millis(20);
                for to in &targets {
                    let pkt = common::rtp_packet(
                        0,
                        seq,
                        u32::from(seq) * 160,
                        0xbad0_0bad,
                        false,
                        &[ATTACKER; 160],
                    );
                    if sock.send_to(&pkt, to).is_ok() {
                        n2.fetch_add(1, Ordering::Relaxed);
                    }
                }
                seq = seq.wrapping_add(1);
            }
            // Anything still in flight towards us counts too.
            let deadline = Instant::now() + Duration::from_millis(300);
            while Instant::now() < deadline {
                if sock.recv_from(&mut buf).is_ok() {
                    r2.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Self {
            received,
            sent,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops sending; returns (packets sent, datagrams received).
    fn stop(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        (
            self.sent.load(Ordering::Relaxed),
            self.received.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Alice's softphone: registered, answers after 300 ms with PCMU, her RTP
/// endpoint sending `AGENT` bytes.
fn alice(engine: &Engine) -> (SippBg, RtpPeer) {
    let port = free_udp_port();
    register_agent(engine.sip, "alice", "alice-demo", port);
    let rtp = RtpPeer::start(0, AGENT);
    let uas = SippBg::uas(
        "agent_answer.xml",
        port,
        &[("rtp_port", rtp.port.to_string()), ("pt", "0".into())],
        &["-d", "300"],
        Duration::from_secs(60),
    );
    (uas, rtp)
}

/// The carrier's call to Dr Martin's forwarded line, held `hold_ms` after
/// the answer, the caller's RTP at `caller`.
fn carrier(engine: &Engine, caller: &Caller, hold_ms: u64) -> SippBg {
    SippBg::uac(
        "carrier_call.xml",
        engine.sip,
        &[
            ("called", SERVICE.to_string()),
            ("hdr", MARTIN.to_string()),
            ("rtp_port", caller.port.to_string()),
        ],
        &["-d", &hold_ms.to_string()],
        Duration::from_secs(60),
    )
}

/// The RTP port of the engine's 200 OK SDP to the carrier (the caller
/// leg's port), read from SIPp's message log while the call runs.
fn answered_rtp_port(carrier: &SippBg, timeout: Duration) -> Option<u16> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let log = carrier.messages();
        for (received, m) in common::sip_messages_dir(&log) {
            if received && m.starts_with("SIP/2.0 200") && m.contains("INVITE") {
                let port = m
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("m=audio "))
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|p| p.parse().ok());
                if port.is_some() {
                    return port;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn finished(run: SippRun, who: &str) {
    assert!(
        run.success,
        "{who}: SIPp failed\n{}\n{}\n{}",
        run.output, run.errors, run.messages
    );
}

/// Both directions carry exactly the parties' payloads (more than `n`
/// packets each after `since`).
fn two_way_audio(caller: &Caller, agent: &RtpPeer, since: Instant, n: usize) {
    assert!(
        agent.wait_until(Duration::from_secs(5), |p| count_fill_after(
            p, CALLER, since
        ) > n),
        "caller audio did not reach the agent (after {:?})",
        since.elapsed()
    );
    assert!(
        caller.wait_until(Duration::from_secs(5), |p| count_fill_after(
            p, AGENT, since
        ) > n),
        "agent audio did not reach the caller"
    );
}

/// A Prometheus series' value from `/metrics`.
fn metric(engine: &Engine, name: &str) -> Option<f64> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut resp = agent
        .get(&format!("http://{}/metrics", engine.http))
        .call()
        .ok()?;
    let text = resp.body_mut().read_to_string().ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The engine's `rtp.foreign_source` log lines for sources on 127.0.0.3.
fn attacker_log_lines(engine: &Engine) -> Vec<serde_json::Value> {
    engine
        .events("rtp.foreign_source")
        .into_iter()
        .filter(|v| field(v, "source").starts_with("127.0.0.3:"))
        .collect()
}

/// Caller numbers never appear in the media logs.
fn no_caller_number_in_media_logs(engine: &Engine) {
    for v in engine.logs.lock().expect("logs").iter() {
        if field(v, "event").starts_with("rtp.") {
            let text = v.to_string();
            assert!(!text.contains("612345678"), "caller number in {text}");
        }
    }
}

#[test]
fn silent_caller_cannot_be_hijacked_by_a_third_party() {
    let engine = Engine::start(&config(), &[]);
    let (alice_uas, alice_rtp) = alice(&engine);
    let caller = Caller::start(CALLER);
    let call = carrier(&engine, &caller, 14_000);
    let port = answered_rtp_port(&call, Duration::from_secs(10)).expect("200 OK with SDP");
    assert!(
        (engine.rtp.0..=engine.rtp.1).contains(&port),
        "caller leg port {port}"
    );
    let answered = engine
        .wait_event("acd.answered", Duration::from_secs(15))
        .unwrap_or_else(|| panic!("not answered\n{}", engine.dump()));
    assert_eq!(field(&answered, "agent"), "alice");
    let start = Instant::now();
    two_way_audio(&caller, &alice_rtp, start, 20);

    // The caller goes silent; well after the old 500 ms re-latch delay a
    // third party streams PCMU at the caller leg's port for 2 s.
    caller.set_talking(false);
    std::thread::sleep(Duration::from_millis(1200));
    let attack_start = Instant::now();
    let attacker = Attacker::start(vec![SocketAddr::from(([127, 0, 0, 1], port))]);
    std::thread::sleep(Duration::from_secs(2));
    let (sent, got) = attacker.stop();
    let attack_end = Instant::now();
    assert!(sent >= 80, "the attacker sent only {sent} packets");
    assert_eq!(got, 0, "the attacker received {got} datagrams");
    // Meanwhile the caller still heard the agent, and only the agent.
    let heard = caller.received();
    let during: Vec<RtpPacket> = heard
        .iter()
        .filter(|p| p.at > attack_start && p.at < attack_end)
        .cloned()
        .collect();
    assert!(
        count_fill(&during, AGENT) > 50,
        "the caller stopped hearing the agent during the attack: {} packets",
        count_fill(&during, AGENT)
    );

    // The caller resumes: both ways again, payload-exact.
    caller.set_talking(true);
    let resumed = Instant::now();
    two_way_audio(&caller, &alice_rtp, resumed, 25);
    assert_eq!(
        count_fill(&alice_rtp.received(), ATTACKER),
        0,
        "the agent heard the attacker"
    );
    assert_eq!(count_fill(&caller.received(), ATTACKER), 0);

    finished(call.finish(Duration::from_secs(30)), "carrier");
    finished(alice_uas.finish(Duration::from_secs(20)), "alice");
    let ended = engine
        .wait_event("call.ended", Duration::from_secs(5))
        .expect("call ended");
    assert_eq!(field(&ended, "reason"), "caller-hangup");
    // Visible: one log line for the attacker's address on the caller leg,
    // and every refused packet counted.
    let lines = attacker_log_lines(&engine);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(
        lines[0].get("port").and_then(|p| p.as_u64()),
        Some(u64::from(port))
    );
    assert_eq!(field(&lines[0], "reason"), "source-locked");
    let foreign = metric(&engine, "permanence_rtp_foreign_packets_total").unwrap_or(0.0);
    assert!(
        foreign >= sent as f64 - 5.0,
        "foreign {foreign} of {sent} sent"
    );
    no_caller_number_in_media_logs(&engine);
}

#[test]
fn spraying_the_rtp_range_before_the_call_latches_nothing() {
    let engine = Engine::start(&config(), &[]);
    let (alice_uas, alice_rtp) = alice(&engine);
    // Every port of the range, RTP and RTCP, from before the call exists
    // until well after both legs are set up.
    let targets: Vec<SocketAddr> = (engine.rtp.0..=engine.rtp.1)
        .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
        .collect();
    let attacker = Attacker::start(targets);
    std::thread::sleep(Duration::from_millis(500));
    let caller = Caller::start(CALLER);
    let call = carrier(&engine, &caller, 9_000);
    let port = answered_rtp_port(&call, Duration::from_secs(10)).expect("200 OK with SDP");
    assert!((engine.rtp.0..=engine.rtp.1).contains(&port));
    engine
        .wait_event("acd.answered", Duration::from_secs(15))
        .unwrap_or_else(|| panic!("not answered\n{}", engine.dump()));
    let start = Instant::now();
    two_way_audio(&caller, &alice_rtp, start, 50);
    let (sent, got) = attacker.stop();
    assert!(sent > 1000, "the attacker sent only {sent} packets");
    assert_eq!(got, 0, "the attacker received {got} datagrams");
    assert_eq!(
        count_fill(&alice_rtp.received(), ATTACKER),
        0,
        "the agent heard the attacker"
    );
    assert_eq!(
        count_fill(&caller.received(), ATTACKER),
        0,
        "the caller heard the attacker"
    );
    // Audio went on both ways after the spray stopped too.
    two_way_audio(&caller, &alice_rtp, Instant::now(), 25);

    finished(call.finish(Duration::from_secs(30)), "carrier");
    finished(alice_uas.finish(Duration::from_secs(20)), "alice");
    engine
        .wait_event("call.ended", Duration::from_secs(5))
        .expect("call ended");
    // At most one log line per leg for the attacker's address.
    let lines = attacker_log_lines(&engine);
    let mut ports: Vec<u64> = lines
        .iter()
        .filter_map(|v| v.get("port").and_then(|p| p.as_u64()))
        .collect();
    let n = ports.len();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), n, "more than one line per leg: {lines:?}");
    assert!(ports.contains(&u64::from(port)), "{lines:?}");
    assert!(
        metric(&engine, "permanence_rtp_foreign_packets_total").unwrap_or(0.0) > 0.0,
        "refused packets not counted"
    );
    no_caller_number_in_media_logs(&engine);
}
