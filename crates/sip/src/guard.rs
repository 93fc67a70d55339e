//! Checks every UDP datagram before the SIP stack sees it.
//!
//! rsipstack silently drops what it cannot parse and is lenient about
//! framing (a Content-Length larger than the body is truncated, not
//! refused). RFC 3261 wants more: a request whose body is shorter than its
//! Content-Length gets 400 (§18.3), an unknown method gets 501 (§8.2.1), a
//! wrong SIP version 505 (§8.2.2.1... via §21.5.7), and a CSeq method that does
//! not match the request line 400. [`check_datagram`] decides, as a pure
//! function; [`GuardedUdpSocket`] applies it under rsipstack's UDP transport
//! so malformed traffic is answered (or dropped when no response is
//! possible: no Via, no Call-ID, or an ACK) and never reaches a call.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Methods rsipstack parses (anything else is answered 501).
const KNOWN_METHODS: [&str; 14] = [
    "ACK",
    "BYE",
    "CANCEL",
    "INFO",
    "INVITE",
    "MESSAGE",
    "NOTIFY",
    "OPTIONS",
    "PRACK",
    "PUBLISH",
    "REFER",
    "REGISTER",
    "SUBSCRIBE",
    "UPDATE",
];

/// What to do with a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Hand it to the SIP stack.
    Pass,
    /// Discard it (no response is possible or allowed).
    Drop(&'static str),
    /// Answer it with this response and discard it.
    Respond {
        /// Status code sent.
        code: u16,
        /// Why (also the reason phrase).
        reason: &'static str,
        /// The serialized response.
        response: Vec<u8>,
    },
}

/// Counters of what the guard did (read by metrics).
#[derive(Debug, Default)]
pub struct GuardStats {
    /// Datagrams passed to the stack.
    pub passed: AtomicU64,
    /// Datagrams answered with an error response.
    pub answered: AtomicU64,
    /// Datagrams dropped.
    pub dropped: AtomicU64,
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

struct Head<'a> {
    vias: Vec<&'a str>,
    from: Option<&'a str>,
    to: Option<&'a str>,
    call_id: Option<&'a str>,
    cseq: Option<&'a str>,
    content_length: Option<&'a str>,
}

/// Header lines with folding undone is not needed for the few headers we
/// copy; folded lines are ignored (they belong to the previous header).
fn read_head<'a>(lines: &[&'a str]) -> Head<'a> {
    let mut h = Head {
        vias: Vec::new(),
        from: None,
        to: None,
        call_id: None,
        cseq: None,
        content_length: None,
    };
    for line in lines {
        if line.starts_with(' ') || line.starts_with('\t') {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let value = value.trim();
        let is = |long: &str, short: &str| {
            name.eq_ignore_ascii_case(long)
                || (!short.is_empty() && name.eq_ignore_ascii_case(short))
        };
        if is("Via", "v") {
            h.vias.push(value);
        } else if is("From", "f") {
            h.from = Some(value);
        } else if is("To", "t") {
            h.to = Some(value);
        } else if is("Call-ID", "i") {
            h.call_id = Some(value);
        } else if is("CSeq", "") {
            h.cseq = Some(value);
        } else if is("Content-Length", "l") {
            h.content_length = Some(value);
        }
    }
    h
}

fn build_response(code: u16, reason: &str, h: &Head<'_>, source: SocketAddr) -> Option<Vec<u8>> {
    let (Some(from), Some(to), Some(call_id), Some(cseq)) = (h.from, h.to, h.call_id, h.cseq)
    else {
        return None;
    };
    if h.vias.is_empty() {
        return None;
    }
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for (i, via) in h.vias.iter().enumerate() {
        if i == 0 {
            // RFC 3581: tell the client where its request came from.
            let mut v = via.replace(";rport;", &format!(";rport={};", source.port()));
            if v.ends_with(";rport") {
                v = format!("{}={}", v, source.port());
            }
            out.push_str(&format!("Via: {v};received={}\r\n", source.ip()));
        } else {
            out.push_str(&format!("Via: {via}\r\n"));
        }
    }
    out.push_str(&format!("From: {from}\r\n"));
    if to.to_ascii_lowercase().contains(";tag=") {
        out.push_str(&format!("To: {to}\r\n"));
    } else {
        out.push_str(&format!("To: {to};tag=pg{:08x}\r\n", fxhash(call_id)));
    }
    out.push_str(&format!("Call-ID: {call_id}\r\nCSeq: {cseq}\r\n"));
    if code == 501 || code == 405 {
        out.push_str(&format!("Allow: {}\r\n", KNOWN_METHODS.join(", ")));
    }
    out.push_str("Server: Permanence\r\nContent-Length: 0\r\n\r\n");
    Some(out.into_bytes())
}

/// A small stable hash for generated To tags (not security relevant).
fn fxhash(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Decides what to do with one datagram received from `source`.
pub fn check_datagram(buf: &[u8], source: SocketAddr) -> Verdict {
    if buf.iter().all(u8::is_ascii_whitespace) {
        // Keep-alives (CRLF) are the stack's business.
        return Verdict::Pass;
    }
    // Header section: up to the first empty line (CRLF CRLF, tolerating LF).
    let (head_end, body_start) = match find_blank_line(buf) {
        Some(x) => (x.0, Some(x.1)),
        None => (buf.len(), None),
    };
    let Ok(head) = std::str::from_utf8(&buf[..head_end]) else {
        return Verdict::Drop("header section is not UTF-8");
    };
    let lines: Vec<&str> = head.lines().map(|l| l.trim_end_matches('\r')).collect();
    let Some(start) = lines.first() else {
        return Verdict::Drop("empty message");
    };
    if start.starts_with("SIP/") {
        // A response: nothing can be answered; let the stack judge it.
        return if body_start.is_some() {
            Verdict::Pass
        } else {
            Verdict::Drop("truncated response")
        };
    }
    let h = read_head(lines.get(1..).unwrap_or(&[]));
    let parts: Vec<&str> = start.split_whitespace().collect();
    let method = parts.first().copied().unwrap_or("");
    let respond = |code: u16, reason: &'static str| {
        if method.eq_ignore_ascii_case("ACK") {
            return Verdict::Drop(reason);
        }
        match build_response(code, reason, &h, source) {
            Some(response) => Verdict::Respond {
                code,
                reason,
                response,
            },
            None => Verdict::Drop(reason),
        }
    };
    if parts.len() != 3 || !is_token(method) {
        return respond(400, "Bad Request Line");
    }
    if !parts[2].eq_ignore_ascii_case("SIP/2.0") {
        return respond(505, "Version Not Supported");
    }
    if body_start.is_none() {
        return respond(400, "Truncated Message");
    }
    if h.vias.is_empty()
        || h.from.is_none()
        || h.to.is_none()
        || h.call_id.is_none()
        || h.cseq.is_none()
    {
        return respond(400, "Missing Mandatory Header");
    }
    let cseq_ok = h.cseq.is_some_and(|c| {
        let mut it = c.split_whitespace();
        let num_ok = it.next().is_some_and(|n| n.parse::<u32>().is_ok());
        let m_ok = it.next().is_some_and(|m| m.eq_ignore_ascii_case(method));
        num_ok && m_ok && it.next().is_none()
    });
    if !cseq_ok {
        return respond(400, "Bad CSeq");
    }
    let body_len = body_start.map(|b| buf.len().saturating_sub(b)).unwrap_or(0);
    if let Some(cl) = h.content_length {
        match cl.trim().parse::<usize>() {
            Ok(n) if n > body_len => return respond(400, "Bad Content-Length"),
            Ok(_) => {}
            Err(_) => return respond(400, "Bad Content-Length"),
        }
    }
    if !KNOWN_METHODS.iter().any(|m| m.eq_ignore_ascii_case(method)) {
        return respond(501, "Not Implemented");
    }
    // Finally the stack's own parser, and the Via it needs to answer.
    match rsipstack::sip::SipMessage::try_from(buf) {
        Ok(rsipstack::sip::SipMessage::Request(req)) => {
            use rsipstack::sip::prelude::HeadersExt;
            if req.top_via_header().is_err() {
                return respond(400, "Bad Via");
            }
            if req.from_header().and_then(|f| f.tag()).is_err() || req.to_header().is_err() {
                return respond(400, "Bad From or To");
            }
            Verdict::Pass
        }
        Ok(_) => Verdict::Drop("request line parsed as a response"),
        Err(_) => respond(400, "Malformed Request"),
    }
}

fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4));
    let lf = buf
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| (i, i + 2));
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// A UDP socket that applies [`check_datagram`] to everything it receives
/// before rsipstack's transport reads it.
pub struct GuardedUdpSocket {
    inner: tokio::net::UdpSocket,
    stats: Arc<GuardStats>,
}

impl GuardedUdpSocket {
    /// Wraps a bound tokio socket.
    pub fn new(inner: tokio::net::UdpSocket, stats: Arc<GuardStats>) -> Self {
        Self { inner, stats }
    }
}

#[async_trait::async_trait]
impl rsipstack::platform::net::UdpSocket for GuardedUdpSocket {
    async fn recv_from(&self, buf: &mut [u8]) -> rsipstack::Result<(usize, SocketAddr)> {
        loop {
            let (n, from) = self.inner.recv_from(buf).await?;
            let Some(datagram) = buf.get(..n) else {
                continue;
            };
            match check_datagram(datagram, from) {
                Verdict::Pass => {
                    self.stats.passed.fetch_add(1, Ordering::Relaxed);
                    return Ok((n, from));
                }
                Verdict::Drop(reason) => {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%from, reason, "malformed datagram dropped");
                }
                Verdict::Respond {
                    code,
                    reason,
                    response,
                } => {
                    self.stats.answered.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%from, code, reason, "malformed request answered");
                    if let Err(e) = self.inner.send_to(&response, from).await {
                        tracing::debug!(%from, error = %e, "could not answer malformed request");
                    }
                }
            }
        }
    }

    async fn send_to(&self, buf: &[u8], addr: SocketAddr) -> rsipstack::Result<usize> {
        Ok(self.inner.send_to(buf, addr).await?)
    }

    fn local_addr(&self) -> rsipstack::Result<SocketAddr> {
        Ok(self.inner.local_addr()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> SocketAddr {
        "127.0.0.1:5099".parse().expect("addr")
    }

    fn msg(start: &str, extra: &str, body: &str, cl: Option<&str>) -> Vec<u8> {
        let cl = cl
            .map(|c| format!("Content-Length: {c}\r\n"))
            .unwrap_or_default();
        format!(
            "{start}\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-1;rport\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c1\r\n{extra}{cl}\r\n{body}"
        )
        .into_bytes()
    }

    fn code(v: &Verdict) -> Option<u16> {
        match v {
            Verdict::Respond { code, .. } => Some(*code),
            _ => None,
        }
    }

    #[test]
    fn good_requests_pass() {
        let m = msg(
            "OPTIONS sip:b@h SIP/2.0",
            "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n",
            "",
            Some("0"),
        );
        assert_eq!(check_datagram(&m, src()), Verdict::Pass);
        let m = msg(
            "INVITE sip:b@h SIP/2.0",
            "CSeq: 1 INVITE\r\n",
            "v=0\r\n",
            Some("5"),
        );
        assert_eq!(check_datagram(&m, src()), Verdict::Pass);
        assert_eq!(check_datagram(b"\r\n\r\n", src()), Verdict::Pass);
        let resp = b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n";
        assert_eq!(check_datagram(resp, src()), Verdict::Pass);
    }

    #[test]
    fn bad_content_length_is_400() {
        let m = msg(
            "INVITE sip:b@h SIP/2.0",
            "CSeq: 1 INVITE\r\n",
            "v=0\r\n",
            Some("500"),
        );
        let v = check_datagram(&m, src());
        assert_eq!(code(&v), Some(400));
        let Verdict::Respond { response, .. } = v else {
            panic!("respond")
        };
        let text = String::from_utf8(response).expect("utf8");
        assert!(text.starts_with("SIP/2.0 400 Bad Content-Length\r\n"));
        assert!(text.contains(
            "Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-1;rport=5099;received=127.0.0.1\r\n"
        ));
        assert!(text.contains("To: <sip:b@h>;tag=pg"));
        assert!(text.contains("CSeq: 1 INVITE\r\n"));
        let m = msg(
            "INVITE sip:b@h SIP/2.0",
            "CSeq: 1 INVITE\r\n",
            "",
            Some("abc"),
        );
        assert_eq!(code(&check_datagram(&m, src())), Some(400));
    }

    #[test]
    fn unknown_method_is_501_and_ack_never_answered() {
        let m = msg(
            "FROBNICATE sip:b@h SIP/2.0",
            "CSeq: 1 FROBNICATE\r\n",
            "",
            Some("0"),
        );
        let v = check_datagram(&m, src());
        assert_eq!(code(&v), Some(501));
        let m = msg("ACK sip:b@h SIP/2.0", "CSeq: 1 ACK\r\n", "x", Some("9"));
        assert!(matches!(check_datagram(&m, src()), Verdict::Drop(_)));
    }

    #[test]
    fn truncated_and_garbage() {
        let m = msg(
            "INVITE sip:b@h SIP/2.0",
            "CSeq: 1 INVITE\r\n",
            "",
            Some("0"),
        );
        let cut = &m[..m.len() - 30];
        assert_eq!(code(&check_datagram(cut, src())), Some(400));
        let cut = &m[..40];
        assert!(matches!(check_datagram(cut, src()), Verdict::Drop(_)));
        assert!(matches!(
            check_datagram(&[0xff, 0xfe, 0, 1, 2], src()),
            Verdict::Drop(_)
        ));
        assert!(matches!(
            check_datagram(b"hello world", src()),
            Verdict::Drop(_)
        ));
    }

    #[test]
    fn version_and_cseq() {
        let m = msg(
            "INVITE sip:b@h SIP/3.0",
            "CSeq: 1 INVITE\r\n",
            "",
            Some("0"),
        );
        assert_eq!(code(&check_datagram(&m, src())), Some(505));
        let m = msg("INVITE sip:b@h SIP/2.0", "CSeq: 1 BYE\r\n", "", Some("0"));
        assert_eq!(code(&check_datagram(&m, src())), Some(400));
        // Without a CSeq no response can be matched by the client: dropped.
        let m = msg("INVITE sip:b@h SIP/2.0", "", "", Some("0"));
        assert!(matches!(check_datagram(&m, src()), Verdict::Drop(_)));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = check_datagram(&bytes, src());
        }

        #[test]
        fn mutations_of_a_valid_request_never_panic(pos in 0usize..200, byte in proptest::num::u8::ANY, cut in 0usize..220) {
            let mut m = msg("INVITE sip:b@h SIP/2.0", "CSeq: 1 INVITE\r\n", "v=0\r\n", Some("5"));
            if pos < m.len() { m[pos] = byte; }
            m.truncate(cut.min(m.len()));
            let _ = check_datagram(&m, src());
        }
    }
}
