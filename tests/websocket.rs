//! SIP over WebSocket (RFC 7118) at the protocol level, with a plain
//! WebSocket client (no browser): the `sip` subprotocol is required, a
//! WebSocket peer is never a carrier even from a trunk's address (every
//! request is authenticated), garbage and oversized frames close only their
//! own connection, a browser's registration ends with its connection, and
//! WSS works with the engine's certificate. The browser itself (JsSIP,
//! WebRTC media) is in tests/console.rs.

mod common;

use common::{tls_connect, Engine, TestConfig};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

/// Dr Martin's number (a carrier's INVITE to it is a forwarded call).
const MARTIN: &str = "+33450000001";

/// Opens `ws[s]://127.0.0.1:port/` over `stream`, offering `protocol`.
fn handshake<S: Read + Write>(
    stream: S,
    scheme: &str,
    port: u16,
    protocol: Option<&str>,
) -> Result<WebSocket<S>, String> {
    let mut req = format!("{scheme}://127.0.0.1:{port}/")
        .into_client_request()
        .map_err(|e| e.to_string())?;
    if let Some(p) = protocol {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", p.parse().map_err(|_| "header")?);
    }
    match tungstenite::client::client(req, stream) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
            Err(format!("HTTP {}", r.status().as_u16()))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// A plain WebSocket to the engine's `ws_port`, with the `sip`
/// subprotocol.
fn ws(cfg: &TestConfig) -> WebSocket<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", cfg.ws_port)).expect("connect ws");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    handshake(s, "ws", cfg.ws_port, Some("sip")).expect("WebSocket handshake")
}

/// The next SIP message from `ws` within `limit` (text or binary), or
/// `None` (timeout or closed).
fn recv<S: Read + Write>(ws: &mut WebSocket<S>, limit: Duration) -> Option<String> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        match ws.read() {
            Ok(Message::Text(t)) => return Some(t.to_string()),
            Ok(Message::Binary(b)) => return Some(String::from_utf8_lossy(&b).into_owned()),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return None,
        }
    }
    None
}

/// The status code of a SIP response.
fn status(msg: &str) -> u16 {
    msg.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// A request as a browser sends it (JsSIP's `.invalid` Via host).
fn request(method: &str, ruri: &str, from_user: &str, branch: &str, extra: &str) -> String {
    let body = if method == "INVITE" {
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
         m=audio 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\n\
         a=fingerprint:sha-256 00:11\r\na=setup:actpass\r\n"
    } else {
        ""
    };
    format!(
        "{method} {ruri} SIP/2.0\r\n\
         Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK{branch}\r\n\
         Max-Forwards: 69\r\n\
         To: <sip:{from_user}@127.0.0.1>\r\n\
         From: <sip:{from_user}@127.0.0.1>;tag={branch}t\r\n\
         Call-ID: {branch}@test\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:{from_user}@df7jal23ls0d.invalid;transport=ws>\r\n\
         {extra}\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Sends `msg` and returns the first final response (provisional ones
/// skipped).
fn ask<S: Read + Write>(ws: &mut WebSocket<S>, msg: String) -> Option<String> {
    ws.send(Message::text(msg)).ok()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let r = recv(ws, Duration::from_secs(5))?;
        if status(&r) >= 200 {
            return Some(r);
        }
    }
    None
}

#[test]
fn websocket_needs_the_sip_subprotocol_and_every_request_is_authenticated() {
    let cfg = TestConfig::martin_direct(1.0);
    let engine = Engine::start(&cfg, &[]);
    // Without the subprotocol, or with another one: 400, no connection.
    for protocol in [None, Some("chat")] {
        let s = TcpStream::connect(("127.0.0.1", cfg.ws_port)).expect("connect");
        let refused = handshake(s, "ws", cfg.ws_port, protocol).err();
        assert_eq!(refused.as_deref(), Some("HTTP 400"), "{protocol:?}");
    }
    let mut ws = ws(&cfg);
    // The engine is on 127.0.0.1, a trunk's address: over WebSocket an
    // INVITE to a practice is still not a carrier's call.
    let ruri = format!("sip:{MARTIN}@127.0.0.1");
    let r = ask(&mut ws, request("INVITE", &ruri, "mallory", "inv1", "")).expect("INVITE answer");
    assert_eq!(status(&r), 407, "{r}");
    assert!(r.contains("Proxy-Authenticate"), "{r}");
    // An outbound number: 407 too (toll fraud needs a password).
    let r = ask(
        &mut ws,
        request(
            "INVITE",
            "sip:*81*0612345678@127.0.0.1",
            "mallory",
            "inv2",
            "",
        ),
    )
    .expect("INVITE answer");
    assert_eq!(status(&r), 407, "{r}");
    let r = ask(
        &mut ws,
        request(
            "REGISTER",
            "sip:127.0.0.1",
            "alice",
            "reg1",
            "Expires: 600\r\n",
        ),
    )
    .expect("REGISTER answer");
    assert_eq!(status(&r), 401, "{r}");
    assert!(r.contains("WWW-Authenticate"), "{r}");
    assert!(
        engine.events("call.identified").is_empty(),
        "no forwarded call"
    );
    assert!(
        engine.events("agent.registered").is_empty(),
        "nobody registered"
    );
}

#[test]
fn garbage_frames_close_only_their_own_connection() {
    let mut cfg = TestConfig::martin_direct(1.0);
    cfg.no_qualify();
    let engine = Engine::start(&cfg, &[]);
    let mut good = ws(&cfg);
    let options = |b: &str| request("OPTIONS", "sip:127.0.0.1", "carol", b, "");
    assert!(
        ask(&mut good, options("opt1")).is_some(),
        "OPTIONS answered"
    );
    // Junk that is no SIP: dropped or answered 400, the connection stays.
    let mut junk = ws(&cfg);
    for frame in [
        Message::text("hello"),
        Message::binary(vec![0xff, 0x00, 0x13, 0x37, 0xfe]),
        Message::text("INVITE sip:x SIP/2.0\r\nVia: nonsense\r\n\r\n"),
        Message::text("\r\n\r\n"),
    ] {
        junk.send(frame).expect("send junk");
    }
    while let Some(r) = recv(&mut junk, Duration::from_millis(500)) {
        assert!(r.starts_with("SIP/2.0 4"), "only 4xx answers: {r}");
    }
    // An oversized message (over 64 KiB): that connection is closed...
    let mut big = ws(&cfg);
    let huge = "X".repeat(100 * 1024);
    let _ = big.send(Message::text(huge));
    let closed = (0..50).any(|_| {
        matches!(
            big.read(),
            Err(tungstenite::Error::ConnectionClosed
                | tungstenite::Error::AlreadyClosed
                | tungstenite::Error::Protocol(_))
                | Ok(Message::Close(_))
        ) || big.send(Message::text("OPTIONS")).is_err()
    });
    assert!(closed, "the oversized sender is disconnected");
    // ... while the others go on.
    assert!(
        ask(&mut good, options("opt2")).is_some(),
        "the other connection still works"
    );
    assert!(
        ask(&mut junk, options("opt3")).is_some(),
        "the junk sender's connection still works"
    );
    let mut fresh = ws(&cfg);
    assert!(
        ask(&mut fresh, options("opt4")).is_some(),
        "new connections work"
    );
    let mut e = engine;
    assert!(e.is_alive());
}

/// The digest response of RFC 2617 (MD5, qop=auth) for `user`.
fn digest(user: &str, password: &str, realm: &str, nonce: &str, uri: &str) -> String {
    use md5::{Digest, Md5};
    let h = |s: String| hex::encode(Md5::digest(s.as_bytes()));
    let ha1 = h(format!("{user}:{realm}:{password}"));
    let ha2 = h(format!("REGISTER:{uri}"));
    let response = h(format!("{ha1}:{nonce}:00000001:0a4f113b:auth:{ha2}"));
    format!(
        "Authorization: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", \
         uri=\"{uri}\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, \
         cnonce=\"0a4f113b\"\r\n"
    )
}

/// A parameter of the WWW-Authenticate header of `r`.
fn challenge_param(r: &str, name: &str) -> Option<String> {
    let line = r
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("www-authenticate"))?;
    let at = line.find(&format!("{name}=\""))? + name.len() + 2;
    let rest = line.get(at..)?;
    Some(rest.get(..rest.find('"')?)?.to_string())
}

/// Registers `user` over `ws` (401, then the digest answer): the 200.
fn register<S: Read + Write>(ws: &mut WebSocket<S>, user: &str) -> String {
    let first = ask(
        ws,
        request("REGISTER", "sip:127.0.0.1", user, "r1", "Expires: 600\r\n"),
    )
    .expect("challenge");
    assert_eq!(status(&first), 401, "{first}");
    let realm = challenge_param(&first, "realm").expect("realm");
    let nonce = challenge_param(&first, "nonce").expect("nonce");
    let auth = digest(
        user,
        &format!("{user}-demo"),
        &realm,
        &nonce,
        "sip:127.0.0.1",
    );
    let extra = format!("Expires: 600\r\n{auth}");
    let msg =
        request("REGISTER", "sip:127.0.0.1", user, "r2", &extra).replace("CSeq: 1", "CSeq: 2");
    ask(ws, msg).expect("REGISTER answered")
}

#[test]
fn a_browser_registration_ends_with_its_connection() {
    let mut cfg = TestConfig::martin_direct(1.0);
    cfg.no_qualify();
    let engine = Engine::start(&cfg, &[]);
    let mut ws = ws(&cfg);
    let ok = register(&mut ws, "alice");
    assert_eq!(status(&ok), 200, "{ok}");
    let reg = engine
        .wait_event("agent.registered", Duration::from_secs(3))
        .expect("registered");
    assert!(reg.to_string().contains("transport=ws"), "{reg}");
    // The tab closes: no REGISTER with Expires: 0 ever comes.
    drop(ws);
    let gone = engine
        .wait_event("agent.unregistered", Duration::from_secs(3))
        .expect("contact removed when its connection closed");
    assert_eq!(common::field(&gone, "reason"), "ConnectionClosed", "{gone}");
    let unreachable = engine.wait_for("agent.reachability", Duration::from_secs(3), |v| {
        common::field(v, "agent") == "alice"
            && v.get("reachable") == Some(&serde_json::Value::Bool(false))
            && common::field(v, "timestamp") > common::field(&reg, "timestamp")
    });
    assert!(
        unreachable.is_some(),
        "alice is unreachable at once: {:?}",
        engine.events("agent.reachability")
    );
}

#[test]
fn secure_websocket_with_the_engines_certificate() {
    let mut cfg = TestConfig::martin_direct(1.0);
    let wss_port = common::free_port();
    cfg.main_table("sip").insert(
        "listen_wss".into(),
        toml::Value::Array(vec![format!("127.0.0.1:{wss_port}").into()]),
    );
    let engine = Engine::start(&cfg, &[]);
    let cert = std::fs::read(engine.dir().join("data/tls/cert.pem")).expect("self-signed cert");
    let tls = tls_connect(
        std::net::SocketAddr::from(([127, 0, 0, 1], wss_port)),
        &cert,
    )
    .expect("TLS to the WSS listener");
    let mut wss = handshake(tls, "wss", wss_port, Some("sip")).expect("WSS handshake");
    let ok = register(&mut wss, "bob");
    assert_eq!(status(&ok), 200, "{ok}");
    let reg = engine
        .wait_event("agent.registered", Duration::from_secs(3))
        .expect("registered");
    assert_eq!(common::field(&reg, "agent"), "bob");
}

/// Whether a WebSocket handshake to `port` succeeds (the connection is
/// dropped at once).
fn opens(port: u16) -> Option<WebSocket<TcpStream>> {
    let s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    handshake(s, "ws", port, Some("sip")).ok()
}

#[test]
fn browsers_are_capped_per_source_unless_their_office_is_trusted() {
    // Two connections per source: the third browser from 127.0.0.1 is
    // refused, although 127.0.0.1 is the demo trunk's address.
    let mut cfg = TestConfig::martin_direct(1.0);
    cfg.sip_limit("max_connections_per_source", 2);
    let engine = Engine::start(&cfg, &[]);
    let held: Vec<_> = (0..2).map(|_| opens(cfg.ws_port)).collect();
    assert!(held.iter().all(Option::is_some), "two browsers admitted");
    assert!(opens(cfg.ws_port).is_none(), "the third is refused");
    drop(held);
    drop(engine);
    // The office network is trusted: its browsers share its address.
    let mut cfg = TestConfig::martin_direct(1.0);
    cfg.sip_limit("max_connections_per_source", 2);
    common::sub_table(cfg.main_table("sip"), "limits").insert(
        "trusted".into(),
        toml::Value::Array(vec!["127.0.0.1/32".into()]),
    );
    let _engine = Engine::start(&cfg, &[]);
    let held: Vec<_> = (0..5).map(|_| opens(cfg.ws_port)).collect();
    assert!(
        held.iter().all(Option::is_some),
        "an office's browsers are not capped per source"
    );
}
