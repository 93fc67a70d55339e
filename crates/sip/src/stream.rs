//! SIP over stream transports (TCP, TLS), as pure decisions: where each
//! message ends in the byte stream ([`next_frame`], RFC 3261 §18.3) and how
//! many connections a source may hold ([`ConnTable`]).
//!
//! The engine's accept loop (`permanence_engine::streams`) reads the
//! sockets; every framed message then goes through the same
//! [`crate::guard::FrontDoor`] as a UDP datagram.

use std::collections::HashMap;
use std::net::IpAddr;

/// Longest SIP message accepted on a stream (header section and body).
pub const MAX_MESSAGE: usize = 65_535;

/// Longest header section: past this without an empty line, the stream
/// cannot be framed.
pub const MAX_HEAD: usize = 16_384;

/// What the start of a stream buffer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Not enough bytes yet.
    Incomplete,
    /// `len` bytes of CRLF: a keep-alive. `ping` for the double CRLF of
    /// RFC 5626 §4.4.1, to be answered with a single CRLF; otherwise a pong
    /// or CRLF before a start line (ignored, RFC 3261 §7.5).
    KeepAlive {
        /// Bytes to consume.
        len: usize,
        /// Whether a pong is owed.
        ping: bool,
    },
    /// A whole message of `len` bytes.
    Message {
        /// Bytes to consume.
        len: usize,
        /// The message had no Content-Length header (mandatory on streams,
        /// RFC 3261 §20.14); it was framed with an empty body.
        no_length: bool,
    },
    /// The stream cannot be framed any more (RFC 3261 §18.3: the
    /// connection must be closed). The first `head` bytes are a header
    /// section that may be answered before closing (0: nothing to answer).
    Broken {
        /// Why.
        reason: &'static str,
        /// Length of the header section that can be answered.
        head: usize,
    },
}

/// Finds the end of the header section: the index of the empty line and
/// the start of the body (CRLF CRLF, tolerating bare LF).
pub fn blank_line(buf: &[u8]) -> Option<(usize, usize)> {
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

/// The values of the Content-Length headers (`Content-Length` or `l`) of a
/// header section, folding undone and whitespace before the colon allowed.
fn content_lengths(head: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        let name = name.trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            out.push(value.get(1..).unwrap_or(&[]).trim_ascii());
        }
    }
    out
}

/// Frames the next item at the start of `buf` (see [`Frame`]).
pub fn next_frame(buf: &[u8]) -> Frame {
    if buf.is_empty() {
        return Frame::Incomplete;
    }
    if buf.starts_with(b"\r\n\r\n") {
        return Frame::KeepAlive { len: 4, ping: true };
    }
    if buf.len() < 4 && b"\r\n\r\n".starts_with(buf) {
        // Maybe the start of a ping.
        return if buf == b"\r\n" {
            Frame::KeepAlive {
                len: 2,
                ping: false,
            }
        } else {
            Frame::Incomplete
        };
    }
    if buf.starts_with(b"\r\n") {
        return Frame::KeepAlive {
            len: 2,
            ping: false,
        };
    }
    if buf.starts_with(b"\n") {
        return Frame::KeepAlive {
            len: 1,
            ping: false,
        };
    }
    let Some((head_end, body_start)) = blank_line(buf) else {
        return if buf.len() > MAX_HEAD {
            Frame::Broken {
                reason: "header section too long",
                head: 0,
            }
        } else {
            Frame::Incomplete
        };
    };
    if head_end > MAX_HEAD {
        return Frame::Broken {
            reason: "header section too long",
            head: 0,
        };
    }
    let head = buf.get(..body_start).unwrap_or(buf);
    let lengths = content_lengths(buf.get(..head_end).unwrap_or(buf));
    let mut parsed = None;
    for v in &lengths {
        let n = std::str::from_utf8(v)
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<usize>().ok());
        match (n, parsed) {
            (None, _) => {
                return Frame::Broken {
                    reason: "Bad Content-Length",
                    head: head.len(),
                }
            }
            (Some(n), Some(p)) if n != p => {
                return Frame::Broken {
                    reason: "Conflicting Content-Length",
                    head: head.len(),
                }
            }
            (Some(n), _) => parsed = Some(n),
        }
    }
    let body = parsed.unwrap_or(0);
    if body_start.saturating_add(body) > MAX_MESSAGE {
        return Frame::Broken {
            reason: "Message Too Large",
            head: head.len(),
        };
    }
    let len = body_start + body;
    if buf.len() < len {
        return Frame::Incomplete;
    }
    Frame::Message {
        len,
        no_length: parsed.is_none(),
    }
}

/// Connection caps (from `[sip.limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Connections open at once, all sources together.
    pub total: u32,
    /// Connections one untrusted address may hold.
    pub per_source: u32,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The total cap is reached.
    Total,
    /// The source holds its share already.
    PerSource,
}

impl Refusal {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Total => "total",
            Refusal::PerSource => "per_source",
        }
    }
}

/// Open connections by source, against [`ConnLimits`].
#[derive(Debug)]
pub struct ConnTable {
    limits: ConnLimits,
    by_source: HashMap<IpAddr, u32>,
    total: u32,
}

impl ConnTable {
    /// An empty table.
    pub fn new(limits: ConnLimits) -> Self {
        Self {
            limits,
            by_source: HashMap::new(),
            total: 0,
        }
    }

    /// Replaces the caps (reload); open connections stay.
    pub fn set_limits(&mut self, limits: ConnLimits) {
        self.limits = limits;
    }

    /// The caps in force.
    pub fn limits(&self) -> ConnLimits {
        self.limits
    }

    /// Admits a new connection from `source` (a trusted source skips the
    /// per-source cap, never the total one) and counts it.
    pub fn admit(&mut self, source: IpAddr, trusted: bool) -> Result<(), Refusal> {
        let source = source.to_canonical();
        if self.total >= self.limits.total {
            return Err(Refusal::Total);
        }
        let held = self.by_source.get(&source).copied().unwrap_or(0);
        if !trusted && held >= self.limits.per_source {
            return Err(Refusal::PerSource);
        }
        self.total += 1;
        self.by_source.insert(source, held + 1);
        Ok(())
    }

    /// A connection admitted from `source` has closed.
    pub fn release(&mut self, source: IpAddr) {
        let source = source.to_canonical();
        if let Some(n) = self.by_source.get_mut(&source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.by_source.remove(&source);
            }
            self.total = self.total.saturating_sub(1);
        }
    }

    /// Connections open now.
    pub fn open(&self) -> u32 {
        self.total
    }

    /// Connections `source` holds.
    pub fn held_by(&self, source: IpAddr) -> u32 {
        self.by_source
            .get(&source.to_canonical())
            .copied()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: &[u8] =
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nContent-Length: 5\r\n\r\nhello";

    #[test]
    fn frames_messages_and_keepalives() {
        assert_eq!(
            next_frame(REQ),
            Frame::Message {
                len: REQ.len(),
                no_length: false
            }
        );
        let mut two = REQ.to_vec();
        two.extend_from_slice(REQ);
        assert_eq!(
            next_frame(&two),
            Frame::Message {
                len: REQ.len(),
                no_length: false
            }
        );
        assert_eq!(
            next_frame(REQ.get(..REQ.len() - 1).unwrap_or(REQ)),
            Frame::Incomplete
        );
        assert_eq!(next_frame(b"OPTIONS sip:a@b"), Frame::Incomplete);
        assert_eq!(
            next_frame(b"\r\n\r\nOPTIONS"),
            Frame::KeepAlive { len: 4, ping: true }
        );
        assert_eq!(
            next_frame(b"\r\n"),
            Frame::KeepAlive {
                len: 2,
                ping: false
            }
        );
        assert_eq!(next_frame(b"\r\n\r"), Frame::Incomplete);
        assert_eq!(
            next_frame(b"\r\nOPTIONS"),
            Frame::KeepAlive {
                len: 2,
                ping: false
            }
        );
    }

    #[test]
    fn content_length_forms() {
        let m = b"INVITE sip:a@b SIP/2.0\r\nContent-Length   : 3\r\n\r\nabcdef";
        assert!(matches!(next_frame(m), Frame::Message { len, .. } if len == m.len() - 3));
        let m = b"INVITE sip:a@b SIP/2.0\r\nl: 2\r\n\r\nab";
        assert!(matches!(next_frame(m), Frame::Message { len, .. } if len == m.len()));
        let m = b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n\r\n";
        assert_eq!(
            next_frame(m),
            Frame::Message {
                len: m.len(),
                no_length: true
            }
        );
        let m = b"INVITE sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\n";
        assert!(matches!(next_frame(m), Frame::Broken { head, .. } if head == m.len()));
        let m = b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 99999999999999999999999\r\n\r\n";
        assert!(matches!(next_frame(m), Frame::Broken { .. }));
        let m = b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nab";
        assert!(matches!(next_frame(m), Frame::Broken { .. }));
        let m = b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 70000\r\n\r\n";
        assert!(matches!(
            next_frame(m),
            Frame::Broken {
                reason: "Message Too Large",
                ..
            }
        ));
        let junk = vec![b'x'; MAX_HEAD + 1];
        assert!(matches!(next_frame(&junk), Frame::Broken { head: 0, .. }));
    }

    #[test]
    fn caps() {
        let mut t = ConnTable::new(ConnLimits {
            total: 3,
            per_source: 2,
        });
        let a: IpAddr = "127.0.0.2".parse().expect("ip");
        let b: IpAddr = "127.0.0.3".parse().expect("ip");
        assert_eq!(t.admit(a, false), Ok(()));
        assert_eq!(t.admit(a, false), Ok(()));
        assert_eq!(t.admit(a, false), Err(Refusal::PerSource));
        assert_eq!(t.admit(b, true), Ok(()));
        assert_eq!(t.admit(b, true), Err(Refusal::Total));
        t.release(a);
        assert_eq!(t.open(), 2);
        assert_eq!(t.held_by(a), 1);
        assert_eq!(t.admit(a, false), Ok(()));
        // Releasing an unknown source changes nothing.
        t.release("10.0.0.1".parse().expect("ip"));
        assert_eq!(t.open(), 3);
    }

    proptest::proptest! {
        #[test]
        fn framing_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2000)) {
            match next_frame(&bytes) {
                Frame::Message { len, .. } => proptest::prop_assert!(len <= bytes.len() && len > 0),
                Frame::KeepAlive { len, .. } => proptest::prop_assert!(len <= bytes.len() && len > 0),
                Frame::Broken { head, .. } => proptest::prop_assert!(head <= bytes.len()),
                Frame::Incomplete => {}
            }
        }
    }
}
