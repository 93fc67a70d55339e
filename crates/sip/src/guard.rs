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

use crate::gate::{classify, is_new_work, Disposition, DropReason, Gate, GateEvent, GateSettings};
use parking_lot::Mutex;
use std::net::{IpAddr, SocketAddr};
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

/// The lines of a header section with folding undone (RFC 3261 §7.3.1: a
/// line starting with SP or HT continues the previous one; the line break
/// and the leading whitespace count as one SP).
fn unfold_lines(head: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in head.lines().map(|l| l.trim_end_matches('\r')) {
        // The start line cannot be continued.
        let folded = (line.starts_with(' ') || line.starts_with('\t')) && out.len() > 1;
        match out.last_mut() {
            Some(prev) if folded => {
                prev.push(' ');
                prev.push_str(line.trim_start());
            }
            _ => out.push(line.to_string()),
        }
    }
    out
}

/// Reads the headers a stateless response copies, from unfolded lines.
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

/// Builds a response to the request whose headers are `h`, sent without a
/// transaction: Via (with `received`/`rport`), From, To (with a generated
/// tag, `tag_prefix` then 8 hex digits, when the request has none),
/// Call-ID and CSeq copied; then `extra` header lines; `server` is the
/// Server header (none if empty).
fn build_response(
    code: u16,
    reason: &str,
    h: &Head<'_>,
    source: SocketAddr,
    tag_prefix: &str,
    extra: &[String],
    server: &str,
) -> Option<Vec<u8>> {
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
        out.push_str(&format!(
            "To: {to};tag={tag_prefix}{:08x}\r\n",
            fxhash(call_id)
        ));
    }
    out.push_str(&format!("Call-ID: {call_id}\r\nCSeq: {cseq}\r\n"));
    if code == 501 || code == 405 {
        out.push_str(&format!("Allow: {}\r\n", KNOWN_METHODS.join(", ")));
    }
    for line in extra {
        out.push_str(line);
        out.push_str("\r\n");
    }
    if !server.is_empty() {
        out.push_str(&format!("Server: {server}\r\n"));
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    Some(out.into_bytes())
}

/// A small stable hash for generated To tags (not security relevant).
fn fxhash(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Decides what to do with one datagram received from `source` (responses
/// carry `Server: Permanence`; see [`check_datagram_as`]).
pub fn check_datagram(buf: &[u8], source: SocketAddr) -> Verdict {
    check_datagram_as(buf, source, "Permanence")
}

/// [`check_datagram`] with `server` as the Server header of the responses
/// (none if empty).
pub fn check_datagram_as(buf: &[u8], source: SocketAddr, server: &str) -> Verdict {
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
    let unfolded = unfold_lines(head);
    let lines: Vec<&str> = unfolded.iter().map(String::as_str).collect();
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
        match build_response(code, reason, &h, source, "pg", &[], server) {
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
    // An unknown method is 501 even when its CSeq does not match (RFC 4475
    // §3.1.2.18, mismatch02: 501 is the better answer).
    if !KNOWN_METHODS.iter().any(|m| m.eq_ignore_ascii_case(method)) {
        return respond(501, "Not Implemented");
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
    // RFC 4475 §3.1.2.7 (ltgtruri): a Request-URI is not a name-addr.
    let uri = parts.get(1).copied().unwrap_or("");
    if uri.starts_with('<') || !uri.contains(':') {
        return respond(400, "Bad Request-URI");
    }
    for line in lines.iter().skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let addr = ["From", "f", "To", "t", "Contact", "m"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n));
        let via = name.eq_ignore_ascii_case("Via") || name.eq_ignore_ascii_case("v");
        // RFC 4475 §3.1.2.6 (quotbal): an unterminated quoted string.
        if (addr || via) && !quotes_balanced(value) {
            return respond(400, "Unterminated Quoted String");
        }
        // RFC 4475 §3.1.2.1 (badinv01): empty parameters or values.
        if ((via || name.eq_ignore_ascii_case("Contact") || name.eq_ignore_ascii_case("m"))
            && has_empty_element(value, via))
            || (addr && has_empty_element(value, false))
        {
            return respond(400, "Empty Header Parameter");
        }
    }
    // Finally the stack's own parser (on the form it reads, see
    // [`normalize`]), and the Via it needs to answer.
    let normalized = normalize(buf);
    match rsipstack::sip::SipMessage::try_from(normalized.as_deref().unwrap_or(buf)) {
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

/// Whether every quoted string of a header value is closed (a backslash
/// escapes the next character inside quotes, RFC 3261 §25.1).
fn quotes_balanced(value: &str) -> bool {
    let mut in_quote = false;
    let mut escaped = false;
    for c in value.chars() {
        if in_quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quote = false;
            }
        } else if c == '"' {
            in_quote = true;
        }
    }
    !in_quote
}

/// Whether a header value has an empty parameter (`;;`, a trailing `;`)
/// or, for a list (`list`: Via), an empty element (`,,`, a trailing `,`),
/// outside quoted strings and `<...>`.
fn has_empty_element(value: &str, list: bool) -> bool {
    let mut in_quote = false;
    let mut escaped = false;
    let mut angle = false;
    // The last separator seen with only whitespace after it.
    let mut pending: Option<char> = None;
    for c in value.chars() {
        if in_quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quote = false;
            }
            pending = None;
            continue;
        }
        match c {
            '"' => {
                in_quote = true;
                pending = None;
            }
            '<' => {
                angle = true;
                pending = None;
            }
            '>' => {
                angle = false;
                pending = None;
            }
            ';' | ',' if !angle => {
                if pending.is_some() && (c == ';' || list) {
                    return true;
                }
                if c == ';' || list {
                    pending = Some(c);
                }
            }
            c if c.is_whitespace() => {}
            _ => pending = None,
        }
    }
    pending.is_some()
}

/// Headers whose values [`normalize`] compacts: name-addr and Via lists.
const ADDRESS_HEADERS: [&str; 12] = [
    "From",
    "f",
    "To",
    "t",
    "Contact",
    "m",
    "Via",
    "v",
    "Route",
    "Record-Route",
    "Reply-To",
    "Refer-To",
];

/// Removes the whitespace next to `;`, `=` and `,` (and, in a Via, `/`)
/// outside quoted strings and `<...>`: RFC 3261 allows it (`SEMI`, `EQUAL`,
/// `COMMA`, `SLASH` are `SWS x SWS`), rsipstack's parser does not.
fn compact(value: &str, via: bool) -> String {
    let seps: &[char] = if via {
        &[';', '=', ',', '/']
    } else {
        &[';', '=', ',']
    };
    let mut out = String::with_capacity(value.len());
    let mut in_quote = false;
    let mut escaped = false;
    let mut angle = false;
    let mut after_sep = false;
    for c in value.chars() {
        if in_quote {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quote = false;
            }
            continue;
        }
        if !angle && seps.contains(&c) {
            while out.ends_with([' ', '\t']) {
                out.pop();
            }
            out.push(c);
            after_sep = true;
            continue;
        }
        if after_sep && (c == ' ' || c == '\t') {
            continue;
        }
        after_sep = false;
        match c {
            '"' => in_quote = true,
            '<' => angle = true,
            '>' => angle = false,
            _ => {}
        }
        out.push(c);
    }
    out
}

/// The message as rsipstack can parse it, when it differs: folded header
/// lines unfolded, whitespace before a header's colon removed, and address
/// and Via values compacted (see `compact`). RFC 4475's `wsinv` is valid
/// SIP that rsipstack 0.7.14 drops without an answer otherwise (it reads no
/// From tag in `From: ... ; tag = 98asjd8`). Never longer than the input;
/// the body is untouched.
pub fn normalize(buf: &[u8]) -> Option<Vec<u8>> {
    let (head_end, body_start) = find_blank_line(buf)?;
    let head = std::str::from_utf8(buf.get(..head_end)?).ok()?;
    let lines = unfold_lines(head);
    let mut out: Vec<u8> = Vec::with_capacity(buf.len());
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        let rewritten = match line.split_once(':') {
            Some((name, value)) if i > 0 => {
                let name = name.trim_end();
                let via = name.eq_ignore_ascii_case("Via") || name.eq_ignore_ascii_case("v");
                if via || ADDRESS_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h)) {
                    format!("{name}: {}", compact(value.trim(), via))
                } else {
                    format!("{name}:{value}")
                }
            }
            _ => line.clone(),
        };
        out.extend_from_slice(rewritten.as_bytes());
    }
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(buf.get(body_start..)?);
    (out.len() <= buf.len() && out != buf).then_some(out)
}

fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    crate::stream::blank_line(buf)
}

/// A response to a well-formed request, sent without a transaction (the
/// gate's challenges and OPTIONS answers). `None` if the request lacks what
/// a response must copy.
pub fn stateless_reply(
    buf: &[u8],
    source: SocketAddr,
    code: u16,
    reason: &str,
    extra: &[String],
    server: &str,
) -> Option<Vec<u8>> {
    let head_end = find_blank_line(buf).map_or(buf.len(), |x| x.0);
    let head = std::str::from_utf8(buf.get(..head_end)?).ok()?;
    let unfolded = unfold_lines(head);
    let lines: Vec<&str> = unfolded.iter().map(String::as_str).collect();
    let h = read_head(lines.get(1..).unwrap_or(&[]));
    build_response(code, reason, &h, source, "sl", extra, server)
}

/// Counters of what the gate did (read by metrics).
#[derive(Debug, Default)]
pub struct GateStats {
    /// Datagrams dropped, by [`DropReason`] (in [`DropReason::ALL`] order).
    pub dropped: [AtomicU64; 4],
    /// 407 challenges sent without a transaction.
    pub challenged_407: AtomicU64,
    /// 401 challenges sent without a transaction.
    pub challenged_401: AtomicU64,
    /// OPTIONS answered without a transaction.
    pub options_200: AtomicU64,
    /// New requests refused with 503 without a transaction because the
    /// engine was over its memory cap.
    pub overloaded_503: AtomicU64,
    /// Bans so far.
    pub bans: AtomicU64,
}

impl GateStats {
    /// Datagrams dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        let i = DropReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.dropped.get(i).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    fn count_drop(&self, reason: DropReason) {
        if let Some(i) = DropReason::ALL.iter().position(|r| *r == reason) {
            if let Some(c) = self.dropped.get(i) {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Builds fresh challenge header values (`Digest realm=..., nonce=...`),
/// one per offered algorithm.
pub type Challenger = Box<dyn Fn() -> Vec<String> + Send + Sync>;

/// Says whether an address is trusted (a trunk, or a configured network):
/// trusted sources skip the gate.
pub type TrustPolicy = Box<dyn Fn(IpAddr) -> bool + Send + Sync>;

/// Says whether the engine is over its memory cap: new work
/// ([`crate::gate::is_new_work`]) is then refused at the door.
pub type OverloadPolicy = Box<dyn Fn() -> bool + Send + Sync>;

/// The front door shared by the SIP listeners: the gate's state, who is
/// trusted, how to challenge, when the engine is overloaded, and the
/// Server header.
pub struct FrontDoor {
    gate: Mutex<Gate>,
    trusted: TrustPolicy,
    overloaded: OverloadPolicy,
    /// When the last `sip.overloaded` line was logged (ms since `origin`).
    overload_logged: AtomicU64,
    challenger: Challenger,
    server: String,
    origin: std::time::Instant,
    /// What the gate did.
    pub stats: GateStats,
}

impl FrontDoor {
    /// A front door with `settings`.
    pub fn new(
        settings: GateSettings,
        trusted: TrustPolicy,
        overloaded: OverloadPolicy,
        challenger: Challenger,
        server: String,
    ) -> Self {
        Self {
            gate: Mutex::new(Gate::new(settings)),
            trusted,
            overloaded,
            overload_logged: AtomicU64::new(0),
            challenger,
            server,
            origin: std::time::Instant::now(),
            stats: GateStats::default(),
        }
    }

    /// Replaces the gate's limits (reload).
    pub fn set_settings(&self, settings: GateSettings) {
        self.gate.lock().set_settings(settings);
    }

    /// Whether `ip` is trusted (a trunk or a trusted network).
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        (self.trusted)(ip)
    }

    /// Whether `ip` is banned now (never for a trusted source).
    pub fn is_banned(&self, ip: IpAddr) -> bool {
        !self.is_trusted(ip) && self.gate.lock().is_banned(ip, self.origin.elapsed())
    }

    /// The Server header of stateless responses.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Number of source addresses the gate tracks.
    pub fn tracked(&self) -> usize {
        self.gate.lock().tracked()
    }

    /// Number of source addresses banned now.
    pub fn banned(&self) -> usize {
        self.gate.lock().banned(self.origin.elapsed())
    }

    /// Decides the fate of a datagram: what the gate says, then the syntax
    /// check for what is not dropped. Returns the datagram to pass, or the
    /// response to send (or nothing).
    pub fn judge(&self, buf: &[u8], from: SocketAddr, guard: &GuardStats) -> Judged {
        let now = self.origin.elapsed();
        let trusted = (self.trusted)(from.ip());
        let kind = classify(buf);
        let disposition = {
            let mut gate = self.gate.lock();
            let d = if !trusted && gate.is_banned(from.ip(), now) {
                Disposition::Drop(DropReason::Banned)
            } else {
                gate.admit(from.ip(), trusted, kind, now)
            };
            while let Some(ev) = gate.poll_event() {
                let GateEvent::Banned {
                    source,
                    duration,
                    dropped,
                } = ev;
                self.stats.bans.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    event = "sip.source_banned",
                    %source,
                    seconds = duration.as_secs(),
                    dropped,
                    "source flooding SIP: banned"
                );
            }
            d
        };
        if let Disposition::Drop(reason) = disposition {
            self.stats.count_drop(reason);
            return Judged::Nothing;
        }
        match check_datagram_as(buf, from, &self.server) {
            Verdict::Pass => {}
            Verdict::Drop(reason) => {
                guard.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%from, reason, "malformed datagram dropped");
                return Judged::Nothing;
            }
            Verdict::Respond {
                code,
                reason,
                response,
            } => {
                guard.answered.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%from, code, reason, "malformed request answered");
                return Judged::Respond(response);
            }
        }
        let (code, reason, header, counter) = match disposition {
            Disposition::Challenge407 => (
                407,
                "Proxy Authentication Required",
                "Proxy-Authenticate",
                &self.stats.challenged_407,
            ),
            Disposition::Challenge401 => (
                401,
                "Unauthorized",
                "WWW-Authenticate",
                &self.stats.challenged_401,
            ),
            Disposition::Options200 => (200, "OK", "", &self.stats.options_200),
            Disposition::Pass | Disposition::Drop(_) => {
                if is_new_work(&kind) && (self.overloaded)() {
                    return self.refuse_overloaded(buf, from, now);
                }
                guard.passed.fetch_add(1, Ordering::Relaxed);
                return Judged::Pass;
            }
        };
        let extra: Vec<String> = if header.is_empty() {
            vec![
                format!("Allow: {ALLOW_STATELESS}"),
                "Accept: application/sdp".to_string(),
            ]
        } else {
            (self.challenger)()
                .into_iter()
                .map(|v| format!("{header}: {v}"))
                .collect()
        };
        match stateless_reply(buf, from, code, reason, &extra, &self.server) {
            Some(r) => {
                counter.fetch_add(1, Ordering::Relaxed);
                Judged::Respond(r)
            }
            None => Judged::Nothing,
        }
    }
}

impl FrontDoor {
    /// A 503 without a transaction (no Retry-After: only this request is
    /// refused, the carrier may route it elsewhere), logged at most every
    /// 10 s with the count of refusals.
    fn refuse_overloaded(&self, buf: &[u8], from: SocketAddr, now: std::time::Duration) -> Judged {
        let n = self.stats.overloaded_503.fetch_add(1, Ordering::Relaxed) + 1;
        let now_ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
        let last = self.overload_logged.load(Ordering::Relaxed);
        if (last == 0 || now_ms.saturating_sub(last) >= 10_000)
            && self
                .overload_logged
                .compare_exchange(last, now_ms.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                event = "sip.overloaded",
                refused_total = n,
                "memory cap reached (sip.limits.max_heap_mb): new requests get 503"
            );
        }
        match stateless_reply(buf, from, 503, "Service Unavailable", &[], &self.server) {
            Some(r) => Judged::Respond(r),
            None => Judged::Nothing,
        }
    }
}

/// What the engine answers to (the Allow header of stateless OPTIONS
/// answers).
const ALLOW_STATELESS: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REGISTER, UPDATE";

/// The front door's decision on one datagram.
#[derive(Debug, PartialEq, Eq)]
pub enum Judged {
    /// Hand it to the stack.
    Pass,
    /// Send this response back, hand nothing to the stack.
    Respond(Vec<u8>),
    /// Drop it.
    Nothing,
}

/// A UDP socket that applies the [`FrontDoor`] (gate, then
/// [`check_datagram`]) to everything it receives before rsipstack's
/// transport reads it.
pub struct GuardedUdpSocket {
    inner: tokio::net::UdpSocket,
    stats: Arc<GuardStats>,
    door: Arc<FrontDoor>,
}

impl GuardedUdpSocket {
    /// Wraps a bound tokio socket.
    pub fn new(inner: tokio::net::UdpSocket, stats: Arc<GuardStats>, door: Arc<FrontDoor>) -> Self {
        Self { inner, stats, door }
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
            match self.door.judge(datagram, from, &self.stats) {
                Judged::Pass => {
                    // Hand the stack the form it parses (never longer).
                    if let Some(norm) = normalize(datagram) {
                        if let Some(dst) = buf.get_mut(..norm.len()) {
                            dst.copy_from_slice(&norm);
                            return Ok((norm.len(), from));
                        }
                    }
                    return Ok((n, from));
                }
                Judged::Nothing => {}
                Judged::Respond(response) => {
                    if let Err(e) = self.inner.send_to(&response, from).await {
                        tracing::debug!(%from, error = %e, "could not send a stateless response");
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

    #[test]
    fn folded_headers_are_unfolded() {
        // RFC 4475 §3.1.1.1 (wsinv) folds its CSeq over two lines.
        let m = b"INVITE sip:b@h SIP/2.0\r\nVia  : SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw\r\nFrom: <sip:a@h>\r\n  ;\r\n  tag = 98asjd8\r\nTO :\r\n sip:b@h ;   tag    = 1918181833n\r\nCall-ID: c1\r\ncseq: 0009\r\n  INVITE\r\nContent-Length   : 0\r\n\r\n";
        assert_eq!(check_datagram(m, src()), Verdict::Pass);
        let r = stateless_reply(m, src(), 401, "Unauthorized", &[], "").expect("reply");
        let text = String::from_utf8(r).expect("utf8");
        assert!(text.contains("CSeq: 0009 INVITE\r\n"), "{text}");
        assert!(
            text.contains(
                "Via: SIP  /   2.0 /UDP 192.0.2.2;branch=390skdjuw;received=127.0.0.1\r\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn normalize_compacts_what_rsipstack_cannot_read() {
        let m = b"INVITE sip:b@h SIP/2.0\r\nVia  : SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw\r\nfrom   : \"J \\\"\"  <sip:a@h>\r\n  ;\r\n  tag = 98asjd8\r\nTO :\r\n sip:b@h ;   tag    = 1n\r\nCall-ID: c1\r\ncseq: 0009\r\n  INVITE\r\nX-Other:  a ; b = c\r\nContent-Length   : 4\r\n\r\nab\r\n";
        let n = normalize(m).expect("rewritten");
        let text = String::from_utf8(n.clone()).expect("utf8");
        assert!(n.len() <= m.len());
        assert!(
            text.contains("\r\nVia: SIP/2.0/UDP 192.0.2.2;branch=390skdjuw\r\n"),
            "{text}"
        );
        assert!(
            text.contains("\r\nfrom: \"J \\\"\"  <sip:a@h>;tag=98asjd8\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nTO: sip:b@h;tag=1n\r\n"), "{text}");
        assert!(text.contains("\r\ncseq: 0009 INVITE\r\n"), "{text}");
        assert!(text.contains("\r\nX-Other:  a ; b = c\r\n"), "{text}");
        assert!(text.ends_with("Content-Length: 4\r\n\r\nab\r\n"), "{text}");
        let req = match rsipstack::sip::SipMessage::try_from(n.as_slice()) {
            Ok(rsipstack::sip::SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        };
        use rsipstack::sip::prelude::HeadersExt;
        assert_eq!(
            req.from_header()
                .and_then(|f| f.tag())
                .ok()
                .flatten()
                .map(|t| t.to_string()),
            Some("98asjd8".to_string())
        );
        // Already canonical: nothing to rewrite.
        let m = msg(
            "OPTIONS sip:b@h SIP/2.0",
            "CSeq: 1 OPTIONS\r\n",
            "",
            Some("0"),
        );
        assert_eq!(normalize(&m), None);
    }

    #[test]
    fn invalid_parameters_and_quotes() {
        assert!(has_empty_element("SIP/2.0/UDP 192.0.2.15;;,;,,", true));
        assert!(has_empty_element(
            "\"Joe\" <sip:joe@example.org>;;;;",
            false
        ));
        assert!(!has_empty_element("\"a;;b\" <sip:x@y;;z>;tag=1", false));
        assert!(!has_empty_element(
            "SIP/2.0/TCP a;branch=z9hG4bK1 , SIP/2.0/UDP b",
            true
        ));
        assert!(!has_empty_element("<sip:x@y>, <sip:z@w>", false));
        assert!(quotes_balanced("\"J Rosenberg \\\\\\\"\"  <sip:a@b>"));
        assert!(!quotes_balanced("\"Mr. J. User <sip:j.user@example.com>"));
        let m = msg(
            "INVITE <sip:b@h> SIP/2.0",
            "CSeq: 1 INVITE\r\n",
            "",
            Some("0"),
        );
        assert_eq!(code(&check_datagram(&m, src())), Some(400));
    }

    proptest::proptest! {
        #[test]
        fn normalize_never_grows(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            if let Some(n) = normalize(&bytes) {
                proptest::prop_assert!(n.len() <= bytes.len());
            }
        }

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

    /// A front door whose overload switch the test flips.
    fn door_with(overloaded: Arc<std::sync::atomic::AtomicBool>) -> FrontDoor {
        FrontDoor::new(
            crate::gate::GateSettings::default(),
            Box::new(|_| true),
            Box::new(move || overloaded.load(Ordering::Relaxed)),
            Box::new(Vec::new),
            "test".to_string(),
        )
    }

    #[test]
    fn overloaded_door_refuses_new_work_and_lets_dialogs_end() {
        let over = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let door = door_with(over.clone());
        let guard = GuardStats::default();
        let invite = msg(
            "INVITE sip:b@h SIP/2.0",
            "CSeq: 1 INVITE\r\nMax-Forwards: 70\r\n",
            "",
            Some("0"),
        );
        let register = msg(
            "REGISTER sip:h SIP/2.0",
            "CSeq: 1 REGISTER\r\nMax-Forwards: 70\r\n",
            "",
            Some("0"),
        );
        let bye = b"BYE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-2\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c1\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
        let reinvite = String::from_utf8_lossy(bye).replace("BYE", "INVITE");
        let response = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-3\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c2\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";

        assert_eq!(door.judge(&invite, src(), &guard), Judged::Pass);
        over.store(true, Ordering::Relaxed);
        for new_work in [&invite, &register] {
            let Judged::Respond(r) = door.judge(new_work, src(), &guard) else {
                panic!("new work must be refused while overloaded")
            };
            let text = String::from_utf8(r).expect("utf8");
            assert!(
                text.starts_with("SIP/2.0 503 Service Unavailable\r\n"),
                "{text}"
            );
            assert!(!text.contains("Retry-After"), "{text}");
        }
        assert_eq!(door.judge(bye, src(), &guard), Judged::Pass);
        assert_eq!(door.judge(reinvite.as_bytes(), src(), &guard), Judged::Pass);
        assert_eq!(door.judge(response, src(), &guard), Judged::Pass);
        assert_eq!(door.stats.overloaded_503.load(Ordering::Relaxed), 2);
        over.store(false, Ordering::Relaxed);
        assert_eq!(door.judge(&register, src(), &guard), Judged::Pass);
        assert_eq!(door.stats.overloaded_503.load(Ordering::Relaxed), 2);
    }
}
