//! SIP over TCP and TLS end to end: connection caps per source and in
//! total, idle timeout and keep-alives, the engine at its descriptor limit
//! (UDP calls still work, the log stays small), OPTIONS and a full call
//! over TLS against the self-signed certificate, and its reload on SIGHUP.

mod common;

use common::{field, sipp, tls_connect, Engine, TestConfig};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

fn limits(cfg: &mut TestConfig) -> &mut toml::Table {
    cfg.main_table("sip")
        .entry("limits")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .expect("[sip.limits]")
}

/// Opens a connection from `ip`.
fn connect_from(ip: &str, engine: SocketAddr) -> std::io::Result<TcpStream> {
    let ip: IpAddr = ip.parse().expect("ip");
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.bind(&SocketAddr::new(ip, 0).into())?;
    s.connect_timeout(&engine.into(), Duration::from_secs(2))?;
    Ok(s.into())
}

/// Whether the engine closed the connection (EOF or reset within `wait`).
fn closed(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).expect("timeout");
    let mut b = [0u8; 512];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

fn options(branch: &str, transport: &str, local: SocketAddr) -> String {
    format!(
        "OPTIONS sip:permanence@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {local};branch=z9hG4bK{branch}\r\n\
         From: <sip:probe@example.com>;tag={branch}\r\nTo: <sip:permanence@127.0.0.1>\r\n\
         Call-ID: {branch}@test\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Reads until a whole response came (or `wait`).
fn response(s: &mut impl Read, wait: Duration) -> String {
    let end = Instant::now() + wait;
    let mut got = Vec::new();
    let mut b = [0u8; 4096];
    while Instant::now() < end {
        match s.read(&mut b) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&b[..n]);
                if got.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(_) => {}
        }
    }
    String::from_utf8_lossy(&got).to_string()
}

#[test]
fn connections_are_capped_per_source_and_idle_ones_closed() {
    let mut cfg = TestConfig::demo();
    limits(&mut cfg).insert("max_connections_per_source".into(), 4.into());
    limits(&mut cfg).insert("idle_seconds".into(), 2.into());
    let engine = Engine::start(&cfg, &[]);

    // Seven idle connections from one untrusted address: four are kept,
    // the others closed at once.
    let mut conns: Vec<TcpStream> = (0..7)
        .map(|_| connect_from("127.0.0.6", engine.sip).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let refused = conns
        .iter_mut()
        .filter_map(|c| closed(c, Duration::from_millis(200)).then_some(()))
        .count();
    assert_eq!(refused, 3, "connections over the per-source cap");
    // Another address is not affected; a trunk (127.0.0.1) is exempt.
    let mut other = connect_from("127.0.0.7", engine.sip).expect("connect");
    let local = other.local_addr().expect("local");
    other
        .write_all(options("other", "TCP", local).as_bytes())
        .expect("write");
    let r = response(&mut other, Duration::from_secs(3));
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    let mut trunk: Vec<TcpStream> = (0..6)
        .map(|_| connect_from("127.0.0.1", engine.sip).expect("connect"))
        .collect();
    assert!(trunk
        .iter_mut()
        .all(|c| !closed(c, Duration::from_millis(100))));

    // A softphone's keep-alives (RFC 5626 CRLF ping, CRLF pong) keep its
    // connection open past the idle timeout; silent ones are closed.
    let mut alive = connect_from("127.0.0.8", engine.sip).expect("connect");
    alive
        .set_read_timeout(Some(Duration::from_millis(600)))
        .expect("timeout");
    let mut pongs = 0;
    for _ in 0..5 {
        alive.write_all(b"\r\n\r\n").expect("ping");
        let mut b = [0u8; 16];
        if let Ok(n) = alive.read(&mut b) {
            if &b[..n] == b"\r\n" {
                pongs += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(pongs, 5, "every ping answered");
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        alive.write_all(b"\r\n\r\n").expect("ping");
        std::thread::sleep(Duration::from_millis(500));
    }
    // By now (3.5 s) the silent untrusted connections are gone...
    let still_open = conns
        .iter_mut()
        .map(|c| closed(c, Duration::from_millis(100)))
        .filter(|closed| !closed)
        .count();
    assert_eq!(still_open, 0, "idle connections closed");
    assert!(closed(&mut other, Duration::from_millis(100)));
    // ... the pinging one and the trunk's stay.
    alive.write_all(b"\r\n\r\n").expect("still open");
    let mut b = [0u8; 8];
    alive
        .set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    // The pongs of the pings above, and of this one.
    let n = alive.read(&mut b).unwrap_or(0);
    assert!(
        n >= 2 && n % 2 == 0 && b[..n].chunks(2).all(|c| c == b"\r\n"),
        "pongs after the idle time: {:?}",
        &b[..n]
    );
    assert!(trunk
        .iter_mut()
        .all(|c| !closed(c, Duration::from_millis(100))));
    // What metrics show.
    let (_, text) = common::http_get(&engine, "/metrics");
    assert_eq!(
        common::metric(
            &text,
            "permanence_sip_connections_refused_total{reason=\"per_source\"}"
        ),
        Some(3.0),
        "{text}"
    );
    assert!(
        common::metric(
            &text,
            "permanence_sip_connections_closed_total{reason=\"idle\"}"
        )
        .is_some_and(|n| n >= 5.0),
        "{text}"
    );
    // Their places are free again.
    let mut again = connect_from("127.0.0.6", engine.sip).expect("connect");
    assert!(!closed(&mut again, Duration::from_millis(300)));
}

/// Descriptors a process has open.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn at_the_descriptor_limit_udp_calls_still_work_and_the_log_stays_small() {
    let mut cfg = TestConfig::demo();
    cfg.always_open("tilleuls");
    // No agent registered: the call waits in the queue, with audio.
    let mut engine = Engine::start_limited(&cfg, &[], Some(256));
    let pid = engine.pid();
    let lowered = engine
        .wait_event("sip.max_connections_lowered", Duration::from_secs(2))
        .expect("cap lowered to the descriptor limit");
    assert_eq!(common::num(&lowered, "used"), Some(128), "{lowered}");
    let lines_before = engine.logs.lock().expect("logs").len();
    let cpu_before = common::cpu_time(pid);
    let fds_before = open_fds(pid);

    // 400 connections from 40 untrusted addresses (10 each, under the
    // per-source cap of 16), held open.
    let t0 = Instant::now();
    let mut held = Vec::new();
    let mut failed = 0;
    for i in 0..40 {
        for _ in 0..10 {
            match connect_from(&format!("127.0.1.{}", i + 1), engine.sip) {
                Ok(c) => held.push(c),
                Err(_) => failed += 1,
            }
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let open = held
        .iter_mut()
        .map(|c| closed(c, Duration::from_millis(20)))
        .filter(|closed| !closed)
        .count();
    let fds_full = open_fds(pid);
    eprintln!(
        "descriptor limit 256: {} attempts ({failed} failed to connect), {open} kept, engine fds {fds_before} -> {fds_full}",
        held.len() + failed
    );
    assert_eq!(open, 128, "the total cap holds");
    assert!(fds_full < 256, "descriptors left: {fds_full}/256");

    // A trunk call over UDP still works (RTP sockets, records).
    let rtp = UdpSocket::bind("127.0.0.1:0").expect("rtp");
    let port = rtp.local_addr().expect("addr").port();
    let vars = vec![
        ("called", "+33980000004".to_string()),
        ("hdr", "X-Test: descriptor-limit".to_string()),
        ("rtp_port", port.to_string()),
    ];
    let target = engine.sip;
    let call = std::thread::spawn(move || {
        sipp(
            "carrier_call.xml",
            target,
            "127.0.0.1",
            &vars,
            &["-d", "3000"],
            Duration::from_secs(30),
        )
    });
    let cap = common::capture_rtp(&rtp, Duration::from_millis(3000));
    let run = call.join().expect("sipp");
    assert!(run.success, "trunk call: {}\n{}", run.output, run.errors);
    assert!(
        cap.packets.len() > 50,
        "audio flowed: {}",
        cap.packets.len()
    );
    let (status, _) = common::http_get(&engine, "/healthz");
    assert_eq!(status, 200);

    // More attempts while full: refused without a log line each.
    for i in 0..100 {
        if let Ok(mut c) = connect_from(&format!("127.0.2.{}", i % 50 + 1), engine.sip) {
            let _ = closed(&mut c, Duration::from_millis(5));
        }
    }
    let elapsed = t0.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let cpu = common::cpu_time(pid) - cpu_before;
    let lines: Vec<serde_json::Value> = engine.logs.lock().expect("logs")[lines_before..].to_vec();
    let refused_lines = lines
        .iter()
        .filter(|v| field(v, "event") == "sip.connections_refused")
        .count();
    eprintln!(
        "over {:.1} s: {} log lines ({} about refused connections), engine CPU {:?}",
        elapsed.as_secs_f64(),
        lines.len(),
        refused_lines,
        cpu
    );
    assert!(
        refused_lines <= 2,
        "refusals are logged at most every 10 s: {refused_lines}"
    );
    assert!(lines.len() < 40, "the log stays small: {}", lines.len());
    assert!(cpu < Duration::from_secs(3), "no busy loop: {cpu:?}");
    drop(held);
    assert!(engine.is_alive());
}

fn tls_options(engine: &Engine, cert_pem: &[u8], branch: &str) -> std::io::Result<String> {
    let mut s = tls_connect(engine.tls, cert_pem)?;
    let local = s.sock.local_addr()?;
    s.write_all(options(branch, "TLS", local).as_bytes())?;
    Ok(response(&mut s, Duration::from_secs(3)))
}

#[test]
fn options_over_tls_and_certificate_reload_on_sighup() {
    let a = Engine::start(&TestConfig::demo(), &[]);
    let cert_a = std::fs::read(a.dir().join("data/tls/cert.pem")).expect("self-signed cert");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(a.dir().join("data/tls/key.pem"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "private key readable by its owner only"
        );
    }
    let r = tls_options(&a, &cert_a, "tls1").expect("TLS OPTIONS");
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    // Plain text on the TLS port is not SIP for us: closed, no answer.
    let mut plain = TcpStream::connect(a.tls).expect("connect");
    let local = plain.local_addr().expect("local");
    plain
        .write_all(options("plain", "TCP", local).as_bytes())
        .expect("write");
    assert!(!response(&mut plain, Duration::from_secs(2)).contains("SIP/2.0"));

    // A renewed certificate (here: another engine's) is used after SIGHUP.
    let b = Engine::start(&TestConfig::demo(), &[]);
    let cert_b = std::fs::read(b.dir().join("data/tls/cert.pem")).expect("cert b");
    let key_b = std::fs::read(b.dir().join("data/tls/key.pem")).expect("key b");
    assert!(tls_connect(a.tls, &cert_b).is_err(), "a still shows cert a");
    std::fs::remove_file(a.dir().join("data/tls/key.pem")).expect("rm");
    std::fs::write(a.dir().join("data/tls/key.pem"), key_b).expect("key");
    std::fs::write(a.dir().join("data/tls/cert.pem"), &cert_b).expect("cert");
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &a.pid().to_string()])
        .status()
        .expect("kill");
    assert!(hup.success());
    a.wait_event("tls.reloaded", Duration::from_secs(5))
        .expect("certificate reloaded");
    let r = tls_options(&a, &cert_b, "tls2").expect("TLS with the new certificate");
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    assert!(tls_connect(a.tls, &cert_a).is_err(), "old certificate gone");
}

#[test]
fn full_call_to_a_softphone_registered_over_tls() {
    let mut cfg = TestConfig::demo();
    cfg.always_open("martin");
    cfg.practice("martin").remove("triage");
    let engine = Engine::start(&cfg, &[]);
    let dir = common::TempDir::new("baresip-tls");
    let port = common::free_baresip_port();
    let tone = dir.path().join("tone.wav");
    let samples: Vec<i16> = (0..8000 * 20)
        .map(|i| (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 8000.0).sin()) as i16)
        .collect();
    common::write_wav(&tone, &samples);
    std::fs::write(
        dir.path().join("config"),
        format!(
            "sip_listen 127.0.0.1:{port}\nnet_interface 127.0.0.1\nsip_trans_def tls\n\
             audio_player aufile,{out}\naudio_source aufile,{inp}\n\
             module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aufile.so\n\
             module_app account.so\nmodule_app menu.so\n",
            out = dir.path().join("out.wav").display(),
            inp = tone.display()
        ),
    )
    .expect("config");
    std::fs::write(
        dir.path().join("accounts"),
        format!(
            "<sip:alice@127.0.0.1:{};transport=tls>;auth_pass=alice-demo;answermode=auto;audio_codecs=PCMU,PCMA;regint=120\n",
            engine.tls.port()
        ),
    )
    .expect("accounts");
    let mut phone = std::process::Command::new("timeout")
        .args(["-k", "2", "40", "baresip", "-f"])
        .arg(dir.path())
        .args(["-t", "35"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("baresip (apt-get install baresip-core)");
    let registered = engine.wait_for("agent.registered", Duration::from_secs(10), |v| {
        field(v, "agent") == "alice"
    });
    let Some(registered) = registered else {
        let _ = phone.kill();
        let _ = phone.wait();
        panic!("baresip did not register over TLS\n{}", engine.dump());
    };
    assert!(
        field(&registered, "contact").contains("transport=tls"),
        "{registered}"
    );
    // A forwarded call for Dr Martin reaches Alice over TLS; she answers.
    let rtp = UdpSocket::bind("127.0.0.1:0").expect("rtp");
    let rtp_port = rtp.local_addr().expect("addr").port();
    let vars = vec![
        ("called", "+33970000000".to_string()),
        (
            "hdr",
            "Diversion: <sip:+33450000001@carrier.example>;reason=unconditional".to_string(),
        ),
        ("rtp_port", rtp_port.to_string()),
    ];
    let target = engine.sip;
    let call = std::thread::spawn(move || {
        sipp(
            "carrier_call.xml",
            target,
            "127.0.0.1",
            &vars,
            &["-d", "8000"],
            Duration::from_secs(40),
        )
    });
    let answered = engine.wait_event("acd.answered", Duration::from_secs(15));
    let cap = common::capture_rtp(&rtp, Duration::from_secs(6));
    let run = call.join().expect("carrier");
    let ended = engine.wait_event("call.ended", Duration::from_secs(10));
    let _ = phone.kill();
    let _ = phone.wait();
    assert!(
        answered.is_some(),
        "not answered over TLS\n{}",
        engine.dump()
    );
    assert!(run.success, "carrier: {}\n{}", run.output, run.errors);
    let ended = ended.expect("call ended");
    assert_eq!(field(&ended, "agent"), "alice", "{ended}");
    assert_eq!(field(&ended, "reason"), "caller-hangup", "{ended}");
    // The agent's audio (a 440 Hz tone) reached the caller.
    assert!(cap.rms() > 200.0, "agent audio: RMS {}", cap.rms());
}

/// The admin API over HTTPS (`http.tls = true`), with the same certificate
/// as SIP over TLS: curl trusting only that certificate gets in, plain HTTP
/// on the port does not.
#[test]
fn admin_api_over_https() {
    let mut cfg = TestConfig::demo();
    cfg.main
        .get_mut("http")
        .and_then(|h| h.as_table_mut())
        .expect("[http]")
        .insert("tls".into(), true.into());
    let engine = Engine::start(&cfg, &[]);
    let cert = engine.dir().join("data/tls/cert.pem");
    assert!(cert.exists(), "self-signed certificate created");
    let curl = |url: String, extra: &[&str]| {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "5", "-o", "-", "-w", "\n%{http_code}"])
            .arg("--cacert")
            .arg(&cert)
            .args(extra)
            .arg(url)
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let https = format!("https://127.0.0.1:{}", engine.http.port());
    let health = curl(format!("{https}/healthz"), &[]);
    assert!(
        health.ends_with("200") && health.contains("\"ok\""),
        "{health}"
    );
    let agents = curl(
        format!("{https}/api/agents"),
        &["-H", "Authorization: Bearer demo-admin-token-change-me"],
    );
    assert!(
        agents.ends_with("200") && agents.contains("alice"),
        "{agents}"
    );
    // Plain HTTP is not served on that port.
    let plain = curl(
        format!("http://127.0.0.1:{}/healthz", engine.http.port()),
        &[],
    );
    assert!(!plain.ends_with("200"), "{plain}");
}
