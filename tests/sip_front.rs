//! The SIP front door end to end, with real peers: SIPp plays the carrier
//! delivering forwarded calls and a softphone registering; baresip
//! registers as a real softphone. Every test runs its own engine on free
//! ports of 127.0.0.1.

mod common;

use common::{capture_rtp, field, http_get, metric, sipp, Engine, TestConfig};
use std::net::UdpSocket;
use std::time::Duration;

const SERVICE: &str = "+33970000000";

fn rtp_socket() -> (UdpSocket, u16) {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind rtp");
    let port = s.local_addr().expect("addr").port();
    (s, port)
}

fn vars(called: &str, hdr: &str, rtp_port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("called", called.to_string()),
        ("hdr", hdr.to_string()),
        ("rtp_port", rtp_port.to_string()),
    ]
}

/// Places a call with `carrier_call.xml` lasting `hold_ms`, capturing the
/// RTP the engine sends. Returns (sipp run, capture).
fn call(
    engine: &Engine,
    called: &str,
    hdr: &str,
    hold_ms: u64,
) -> (common::SippRun, common::RtpCapture) {
    let (sock, port) = rtp_socket();
    let v = vars(called, hdr, port);
    let target = engine.sip;
    let d = hold_ms.to_string();
    let handle = std::thread::spawn(move || {
        sipp(
            "carrier_call.xml",
            target,
            "127.0.0.1",
            &v,
            &["-d", &d],
            Duration::from_secs(30),
        )
    });
    let cap = capture_rtp(&sock, Duration::from_millis(hold_ms + 500));
    let run = handle.join().expect("sipp thread");
    (run, cap)
}

fn assert_audible(cap: &common::RtpCapture, pt: u8) {
    common::assert_well_formed_stream(cap, pt);
    let rms = cap.rms();
    assert!(rms > 200.0, "audio is silent (RMS {rms:.1})");
}

#[test]
fn diversion_lands_on_martin_with_audio_and_bye() {
    let mut cfg = TestConfig::demo();
    cfg.always_open("martin");
    let engine = Engine::start(&cfg, &[]);
    let (run, cap) = call(
        &engine,
        SERVICE,
        "Diversion: <sip:+33450000001@carrier.example>;reason=unconditional;counter=1",
        3000,
    );
    assert!(run.success, "SIPp failed: {}\n{}", run.output, run.errors);
    let ev = engine
        .wait_event("call.identified", Duration::from_secs(2))
        .expect("call identified");
    assert_eq!(field(&ev, "practice"), "martin");
    assert_eq!(field(&ev, "via"), "diversion");
    // The caller number is masked in logs.
    assert_eq!(field(&ev, "caller"), "+3361xxxxx78");
    assert_audible(&cap, 0);
    // About 3 s of 20 ms packets (generous bounds: loaded CI machine).
    assert!(cap.packets.len() > 100, "{} packets", cap.packets.len());
    let ended = engine
        .wait_for("call.ended", Duration::from_secs(5), |v| {
            field(v, "practice") == "martin"
        })
        .expect("call ended");
    // Three seconds in, the caller was still hearing the greeting.
    assert_eq!(field(&ended, "reason"), "abandoned-greeting");
    assert_eq!(field(&ended, "abandon_phase"), "greeting");
}

#[test]
fn history_info_multi_hop_lands_on_caron() {
    let mut cfg = TestConfig::demo();
    cfg.always_open("caron");
    let engine = Engine::start(&cfg, &[]);
    // The patient dialled Caron's old number (unknown), which forwards to
    // Caron's current line, which forwards to the service.
    let hi = "History-Info: <sip:+33140000099@carrier.example>;index=1, \
              <sip:+33140000002@carrier.example?Reason=SIP%3Bcause%3D302>;index=1.1, \
              <sip:+33970000000@permanence.example>;index=1.1.1";
    let (run, cap) = call(&engine, SERVICE, hi, 2000);
    assert!(run.success, "SIPp failed: {}\n{}", run.output, run.errors);
    let ev = engine
        .wait_event("call.identified", Duration::from_secs(2))
        .expect("identified");
    assert_eq!(field(&ev, "practice"), "caron");
    assert_eq!(field(&ev, "via"), "history-info");
    assert_audible(&cap, 0);
}

#[test]
fn did_in_request_uri_lands_on_tilleuls() {
    let cfg = TestConfig::demo();
    let engine = Engine::start(&cfg, &[]);
    let (run, cap) = call(&engine, "+33980000004", "X-Test: did", 2000);
    assert!(run.success, "SIPp failed: {}\n{}", run.output, run.errors);
    let ev = engine
        .wait_event("call.identified", Duration::from_secs(2))
        .expect("identified");
    assert_eq!(field(&ev, "practice"), "tilleuls");
    assert_eq!(field(&ev, "via"), "request-uri");
    assert_audible(&cap, 0);
}

#[test]
fn closed_practice_plays_closed_prompt_then_hangs_up() {
    let mut cfg = TestConfig::demo();
    cfg.always_closed("martin");
    let engine = Engine::start(&cfg, &[]);
    let (sock, port) = rtp_socket();
    let v = vars(
        SERVICE,
        "Diversion: <tel:0450000001>;reason=unconditional",
        port,
    );
    let target = engine.sip;
    let handle = std::thread::spawn(move || {
        sipp(
            "carrier_closed.xml",
            target,
            "127.0.0.1",
            &v,
            &[],
            Duration::from_secs(40),
        )
    });
    let cap = capture_rtp(&sock, Duration::from_secs(4));
    let run = handle.join().expect("sipp");
    assert!(run.success, "SIPp failed: {}\n{}", run.output, run.errors);
    // The carrier offered PCMA first: the prompt comes in PCMA.
    assert_audible(&cap, 8);
    let ended = engine
        .wait_event("call.ended", Duration::from_secs(5))
        .expect("ended");
    assert_eq!(field(&ended, "reason"), "closed");
    let answered = engine
        .wait_event("call.answered", Duration::from_secs(1))
        .expect("answered");
    assert_eq!(answered.get("open").and_then(|v| v.as_bool()), Some(false));
}

#[test]
fn cancel_while_ringing_is_answered_487() {
    let cfg = TestConfig::demo();
    let engine = Engine::start(&cfg, &["--answer-delay-ms", "3000"]);
    let (_sock, port) = rtp_socket();
    let run = sipp(
        "carrier_cancel.xml",
        engine.sip,
        "127.0.0.1",
        &vars("+33980000004", "X-Test: cancel", port),
        &[],
        Duration::from_secs(20),
    );
    assert!(run.success, "SIPp failed: {}\n{}", run.output, run.errors);
    let ended = engine
        .wait_event("call.ended", Duration::from_secs(5))
        .expect("ended");
    assert_eq!(field(&ended, "reason"), "caller-cancel");
    assert!(engine.events("call.answered").is_empty());
}

#[test]
fn unknown_number_gets_404() {
    let cfg = TestConfig::demo();
    let engine = Engine::start(&cfg, &[]);
    let (_sock, port) = rtp_socket();
    let run = sipp(
        "carrier_rejected.xml",
        engine.sip,
        "127.0.0.1",
        &vars(
            SERVICE,
            "Diversion: <sip:+33199999999@carrier>;reason=unconditional",
            port,
        ),
        &["-trace_logs"],
        Duration::from_secs(20),
    );
    assert!(run.success, "SIPp failed: {}\n{}", run.output, run.errors);
    assert!(
        run.messages.contains("SIP/2.0 404"),
        "no 404 in:\n{}",
        run.messages
    );
    let ev = engine
        .wait_event("intake.unknown_number", Duration::from_secs(2))
        .expect("logged");
    assert_eq!(field(&ev, "trunk"), "demo-carrier");
    assert!(engine.events("call.identified").is_empty());
}

#[test]
fn invite_from_a_non_trunk_source_never_reaches_a_practice() {
    let cfg = TestConfig::demo();
    let engine = Engine::start(&cfg, &[]);
    let (sock, port) = rtp_socket();
    // 127.0.0.2 is not in the demo trunk (127.0.0.1/32 only); the number
    // is a valid practice DID.
    let run = sipp(
        "carrier_rejected.xml",
        engine.sip,
        "127.0.0.2",
        &vars(
            "+33980000004",
            "Diversion: <sip:+33450000001@carrier>",
            port,
        ),
        &[],
        Duration::from_secs(20),
    );
    assert!(run.success, "SIPp failed: {}\n{}", run.output, run.errors);
    assert!(
        run.messages.contains("SIP/2.0 407"),
        "no 407 challenge in:\n{}",
        run.messages
    );
    let cap = capture_rtp(&sock, Duration::from_millis(500));
    assert!(
        cap.packets.is_empty(),
        "media was sent to a non-trunk caller"
    );
    // Challenged by the gate, without a transaction (and without a log
    // line per INVITE: a flood would write one each).
    let (_, text) = http_get(&engine, "/metrics");
    assert!(
        metric(
            &text,
            r#"permanence_sip_stateless_replies_total{code="407"}"#
        )
        .unwrap_or(0.0)
            >= 1.0,
        "no stateless 407 counted"
    );
    assert!(engine.events("call.identified").is_empty());
    assert!(engine.events("call.answered").is_empty());
}

#[test]
fn register_right_credentials_succeed_wrong_fail() {
    let cfg = TestConfig::demo();
    let engine = Engine::start(&cfg, &[]);
    let ok = sipp(
        "register.xml",
        engine.sip,
        "127.0.0.1",
        &[("user", "alice".into())],
        &["-au", "alice", "-ap", "alice-demo"],
        Duration::from_secs(20),
    );
    assert!(ok.success, "SIPp failed: {}\n{}", ok.output, ok.errors);
    assert!(ok.messages.contains("SIP/2.0 200"), "{}", ok.messages);
    let ev = engine
        .wait_event("agent.registered", Duration::from_secs(2))
        .expect("registered");
    assert_eq!(field(&ev, "agent"), "alice");

    let bad = sipp(
        "register.xml",
        engine.sip,
        "127.0.0.1",
        &[("user", "bob".into())],
        &["-au", "bob", "-ap", "not-bobs-password"],
        Duration::from_secs(20),
    );
    assert!(bad.success, "SIPp failed: {}\n{}", bad.output, bad.errors);
    assert!(bad.messages.contains("SIP/2.0 403"), "{}", bad.messages);
    assert!(engine
        .wait_for("auth.failed", Duration::from_secs(2), |v| field(v, "user")
            == "bob")
        .is_some());
    assert!(engine
        .events("agent.registered")
        .iter()
        .all(|v| field(v, "agent") != "bob"));
}

/// A minimal softphone over UDP to replay requests byte for byte.
mod raw {
    use permanence_sip::digest::{expected_response, ha1, DigestAlgorithm, DigestParams};
    use std::net::{SocketAddr, UdpSocket};
    use std::time::Duration;

    pub struct Phone {
        pub sock: UdpSocket,
        pub port: u16,
        pub server: SocketAddr,
    }

    impl Phone {
        pub fn new(server: SocketAddr) -> Self {
            Self::bound("127.0.0.1", server)
        }

        /// A phone sending from `ip` (any 127/8 address is local).
        pub fn bound(ip: &str, server: SocketAddr) -> Self {
            let sock = UdpSocket::bind(format!("{ip}:0")).expect("bind");
            sock.set_read_timeout(Some(Duration::from_secs(3)))
                .expect("timeout");
            let port = sock.local_addr().expect("addr").port();
            Self { sock, port, server }
        }

        pub fn register(&self, user: &str, cseq: u32, branch: &str, auth: Option<&str>) -> String {
            let auth = auth
                .map(|a| format!("Authorization: {a}\r\n"))
                .unwrap_or_default();
            format!(
                "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
                 Via: SIP/2.0/UDP 127.0.0.1:{p};branch=z9hG4bK{branch};rport\r\n\
                 From: <sip:{user}@127.0.0.1>;tag=t{p}\r\n\
                 To: <sip:{user}@127.0.0.1>\r\n\
                 Call-ID: replay-{p}@127.0.0.1\r\n\
                 CSeq: {cseq} REGISTER\r\n\
                 Contact: <sip:{user}@127.0.0.1:{p}>\r\n\
                 Expires: 300\r\n\
                 Max-Forwards: 70\r\n\
                 {auth}Content-Length: 0\r\n\r\n",
                p = self.port
            )
        }

        /// Sends and returns the first final response.
        pub fn send(&self, msg: &str) -> String {
            self.sock
                .send_to(msg.as_bytes(), self.server)
                .expect("send");
            let mut buf = [0u8; 4096];
            loop {
                let (n, _) = self.sock.recv_from(&mut buf).expect("response");
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                if !text.starts_with("SIP/2.0 1") {
                    return text;
                }
            }
        }
    }

    pub fn status(resp: &str) -> u16 {
        resp.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }

    /// Answers the challenge of `alg` in a 401.
    pub fn answer(resp: &str, alg: DigestAlgorithm, user: &str, password: &str, nc: u32) -> String {
        let line = resp
            .lines()
            .find(|l| {
                l.starts_with("WWW-Authenticate:")
                    && l.contains(&format!("algorithm={}", alg.token()))
            })
            .expect("challenge for the algorithm");
        let get = |k: &str| {
            let start = line.find(&format!("{k}=\"")).expect("param") + k.len() + 2;
            let end = line[start..].find('"').expect("quote") + start;
            line[start..end].to_string()
        };
        let p = DigestParams {
            username: user.into(),
            realm: get("realm"),
            nonce: get("nonce"),
            uri: "sip:127.0.0.1".into(),
            response: String::new(),
            algorithm: alg,
            qop: Some("auth".into()),
            nc: Some(nc),
            cnonce: Some("0a4f113b".into()),
            opaque: None,
        };
        let h = ha1(alg, user, &p.realm, password);
        let r = expected_response(&p, &h, "REGISTER");
        format!(
            "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"sip:127.0.0.1\", \
             response=\"{r}\", algorithm={}, qop=auth, nc={nc:08x}, cnonce=\"0a4f113b\"",
            p.realm,
            p.nonce,
            alg.token()
        )
    }
}

fn replay_test(algorithms: &str, alg: permanence_sip::digest::DigestAlgorithm) {
    let mut cfg = TestConfig::demo();
    cfg.main
        .get_mut("sip")
        .and_then(|s| s.as_table_mut())
        .and_then(|s| s.get_mut("registrar"))
        .and_then(|r| r.as_table_mut())
        .expect("[sip.registrar]")
        .insert(
            "algorithms".into(),
            toml::Value::Array(algorithms.split(',').map(|a| a.into()).collect()),
        );
    let engine = Engine::start(&cfg, &[]);
    let phone = raw::Phone::new(engine.sip);
    let challenge = phone.send(&phone.register("carol", 1, "a1", None));
    assert_eq!(raw::status(&challenge), 401, "{challenge}");
    let auth = raw::answer(&challenge, alg, "carol", "carol-demo", 1);
    let ok = phone.send(&phone.register("carol", 2, "a2", Some(&auth)));
    assert_eq!(raw::status(&ok), 200, "{ok}");
    assert!(ok.contains("expires=300"), "{ok}");
    // The same credentials replayed (a captured request sent again as a new
    // transaction) must not be accepted.
    let replayed = phone.send(&phone.register("carol", 3, "a3", Some(&auth)));
    assert_ne!(
        raw::status(&replayed),
        200,
        "replayed nonce accepted: {replayed}"
    );
    assert!(engine
        .wait_for("auth.failed", Duration::from_secs(2), |v| {
            field(v, "reason") == "replayed nonce"
        })
        .is_some());
    // A fresh nonce count on the same nonce is fine (RFC 7616 nc).
    let auth2 = raw::answer(&challenge, alg, "carol", "carol-demo", 2);
    let ok2 = phone.send(&phone.register("carol", 4, "a4", Some(&auth2)));
    assert_eq!(raw::status(&ok2), 200, "{ok2}");
    // Unregister with Expires: 0 and Contact: *.
    let auth3 = raw::answer(&challenge, alg, "carol", "carol-demo", 3);
    let unreg = phone
        .register("carol", 5, "a5", Some(&auth3))
        .replace(
            &format!("Contact: <sip:carol@127.0.0.1:{}>\r\n", phone.port),
            "Contact: *\r\n",
        )
        .replace("Expires: 300", "Expires: 0");
    let done = phone.send(&unreg);
    assert_eq!(raw::status(&done), 200, "{done}");
    assert!(engine
        .wait_for("agent.unregistered", Duration::from_secs(2), |v| {
            field(v, "agent") == "carol"
        })
        .is_some());
}

/// Password guessing from one address is blocked within a few tries; the
/// right password from another address still registers at once.
#[test]
fn password_guessing_is_throttled_per_source() {
    use permanence_sip::digest::DigestAlgorithm;
    let engine = Engine::start(&TestConfig::demo(), &[]);
    let attacker = raw::Phone::bound("127.0.0.2", engine.sip);
    let try_password = |phone: &raw::Phone, password: &str, n: u32| {
        let challenge = phone.send(&phone.register("alice", 2 * n + 1, &format!("c{n}"), None));
        assert_eq!(raw::status(&challenge), 401, "{challenge}");
        let auth = raw::answer(&challenge, DigestAlgorithm::Md5, "alice", password, 1);
        let r = phone.send(&phone.register("alice", 2 * n + 2, &format!("r{n}"), Some(&auth)));
        raw::status(&r)
    };
    let codes: Vec<u16> = (0..8)
        .map(|i| try_password(&attacker, &format!("guess-{i}"), i))
        .collect();
    assert_eq!(codes, vec![403; 8]);
    // Blocked after the fourth wrong answer: even the right password is
    // refused unverified from there...
    assert_eq!(try_password(&attacker, "alice-demo", 8), 403);
    // ...while alice's own softphone registers from another address.
    let alice = raw::Phone::new(engine.sip);
    assert_eq!(try_password(&alice, "alice-demo", 9), 200);
    let blocked = engine
        .wait_event("auth.blocked", Duration::from_secs(2))
        .expect("one block logged");
    assert_eq!(field(&blocked, "user"), "alice");
    // One log line per block, not per guess.
    assert_eq!(engine.events("auth.blocked").len(), 1);
    let (_, text) = http_get(&engine, "/metrics");
    let m = |s: &str| metric(&text, s).unwrap_or(0.0);
    assert_eq!(
        m(r#"permanence_auth_failures_total{reason="wrong_credentials"}"#),
        4.0
    );
    assert_eq!(
        m(r#"permanence_auth_failures_total{reason="throttled"}"#),
        5.0
    );
    assert_eq!(m("permanence_auth_blocks_total"), 1.0);
}

#[test]
fn replayed_nonce_is_refused_sha256() {
    replay_test(
        "SHA-256,MD5",
        permanence_sip::digest::DigestAlgorithm::Sha256,
    );
}

#[test]
fn replayed_nonce_is_refused_md5() {
    replay_test("MD5", permanence_sip::digest::DigestAlgorithm::Md5);
}

#[test]
fn baresip_registers_with_demo_credentials() {
    let cfg = TestConfig::demo();
    let engine = Engine::start(&cfg, &[]);
    let dir = common::TempDir::new("baresip");
    let port = common::free_baresip_port();
    let silence = dir.path().join("silence.wav");
    common::write_wav(&silence, &vec![0i16; 8000 * 5]);
    std::fs::write(
        dir.path().join("config"),
        format!(
            "sip_listen 127.0.0.1:{port}\nnet_interface 127.0.0.1\n\
             audio_player aufile,{out}\naudio_source aufile,{inp}\n\
             module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aufile.so\n\
             module_app account.so\nmodule_app menu.so\n",
            out = dir.path().join("out.wav").display(),
            inp = silence.display()
        ),
    )
    .expect("config");
    std::fs::write(
        dir.path().join("accounts"),
        format!(
            "<sip:bob@127.0.0.1:{}>;auth_pass=bob-demo;answermode=auto;audio_codecs=PCMU,PCMA;regint=120\n",
            engine.sip.port()
        ),
    )
    .expect("accounts");
    let mut child = std::process::Command::new("timeout")
        .args(["-k", "2", "15", "baresip", "-f"])
        .arg(dir.path())
        .args(["-t", "10"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("baresip (apt-get install baresip-core)");
    let ev = engine.wait_for("agent.registered", Duration::from_secs(10), |v| {
        field(v, "agent") == "bob"
    });
    let _ = child.kill();
    let _ = child.wait();
    let ev = ev.expect("baresip did not register");
    assert!(field(&ev, "user_agent").contains("baresip"), "{ev}");
}

#[test]
fn malformed_sip_never_crashes_nor_disturbs_a_call() {
    let cfg = TestConfig::demo();
    let mut engine = Engine::start(&cfg, &[]);
    // A call in progress on Les Tilleuls (open 24/7), 8 s long.
    let (sock, port) = rtp_socket();
    let v = vars("+33980000004", "X-Test: during-garbage", port);
    let target = engine.sip;
    let handle = std::thread::spawn(move || {
        sipp(
            "carrier_call.xml",
            target,
            "127.0.0.1",
            &v,
            &["-d", "8000"],
            Duration::from_secs(30),
        )
    });
    let before = capture_rtp(&sock, Duration::from_millis(1500));
    assert!(
        before.packets.len() > 30,
        "call not flowing before the garbage"
    );

    let junk = UdpSocket::bind("127.0.0.1:0").expect("bind");
    junk.set_read_timeout(Some(Duration::from_millis(800)))
        .expect("timeout");
    let head = |method: &str, cseq: &str, extra: &str| {
        format!(
            "{method} sip:+33980000004@127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKjunk{}\r\n\
             From: <sip:x@127.0.0.1>;tag=j\r\nTo: <sip:y@127.0.0.1>\r\n\
             Call-ID: junk-{}\r\nCSeq: {cseq}\r\nMax-Forwards: 70\r\n{extra}",
            common::free_udp_port(),
            common::free_udp_port()
        )
    };
    let cases: Vec<(Vec<u8>, Option<&str>)> = vec![
        // Content-Length larger than the body.
        (
            format!(
                "{}Content-Length: 400\r\n\r\nv=0\r\n",
                head("INVITE", "1 INVITE", "")
            )
            .into_bytes(),
            Some("400"),
        ),
        // Unknown method.
        (
            format!(
                "{}Content-Length: 0\r\n\r\n",
                head("FROBNICATE", "1 FROBNICATE", "")
            )
            .into_bytes(),
            Some("501"),
        ),
        // Truncated in the middle of the headers.
        (
            head("INVITE", "1 INVITE", "Content-Ty").into_bytes(),
            Some("400"),
        ),
        // Non-numeric Content-Length.
        (
            format!(
                "{}Content-Length: lots\r\n\r\n",
                head("OPTIONS", "1 OPTIONS", "")
            )
            .into_bytes(),
            Some("400"),
        ),
        // Garbage bytes and a bare start line: nothing to answer.
        ((0u8..=255).cycle().take(1400).collect(), None),
        (b"INVITE\r\n\r\n".to_vec(), None),
        (vec![0xff; 64], None),
    ];
    for (bytes, want) in cases {
        junk.send_to(&bytes, engine.sip).expect("send junk");
        let mut buf = [0u8; 4096];
        match (junk.recv_from(&mut buf), want) {
            (Ok((n, _)), Some(code)) => {
                let text = String::from_utf8_lossy(&buf[..n]);
                assert!(
                    text.starts_with(&format!("SIP/2.0 {code}")),
                    "expected {code}, got {text}"
                );
            }
            (Ok((n, _)), None) => panic!(
                "unexpected answer to garbage: {}",
                String::from_utf8_lossy(&buf[..n])
            ),
            (Err(_), Some(code)) => panic!("no {code} response"),
            (Err(_), None) => {}
        }
    }
    // The same over TCP: garbage on a connection must not take anything down.
    if let Ok(mut tcp) = std::net::TcpStream::connect(engine.sip) {
        use std::io::Write;
        let _ = tcp.write_all(&(0u8..=255).cycle().take(5000).collect::<Vec<_>>());
        let _ = tcp.write_all(b"INVITE sip:x SIP/2.0\r\nContent-Length: 99999999\r\n\r\n");
        let _ = tcp.write_all(b"BOGUS\r\n\r\n");
    }

    let after = capture_rtp(&sock, Duration::from_millis(1500));
    assert!(
        after.packets.len() > 30,
        "call disturbed: {} packets after the garbage",
        after.packets.len()
    );
    let run = handle.join().expect("sipp");
    assert!(run.success, "call failed: {}\n{}", run.output, run.errors);
    assert!(engine.is_alive(), "engine died");
    // Still serving new requests.
    let phone = raw::Phone::new(engine.sip);
    let resp = phone.send(&phone.register("alice", 1, "after", None));
    assert_eq!(raw::status(&resp), 401);
}
