//! HTTP digest authentication for SIP, server side (RFC 3261 §22, RFC 7616,
//! RFC 8760: MD5 and SHA-256).
//!
//! Passwords are never stored: the configuration holds HA1 values
//! (`H(username:realm:password)`) per algorithm. Nonces are
//! self-authenticating (an HMAC over a timestamp and a counter), expire after
//! a configured time, and each nonce-count may be used once: a replayed
//! request is refused.
//!
//! rsipstack's typed `Authorization` header is not used here because it
//! rejects the RFC 8760 algorithm name `SHA-256` and limits the nonce count
//! to 255; [`parse_digest`] parses the header value itself.

use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use md5::Md5;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::time::Duration;

pub use permanence_types::DigestAlgorithm;

/// Lower-case hex digest of `data` with `alg`.
pub fn hex_digest(alg: DigestAlgorithm, data: &[u8]) -> String {
    match alg {
        DigestAlgorithm::Md5 => hex::encode(Md5::digest(data)),
        DigestAlgorithm::Sha256 => hex::encode(Sha256::digest(data)),
    }
}

/// HA1 for a user: `H(username:realm:password)`, as stored in config.
pub fn ha1(alg: DigestAlgorithm, username: &str, realm: &str, password: &str) -> String {
    hex_digest(alg, format!("{username}:{realm}:{password}").as_bytes())
}

/// Why a digest header could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The scheme is not `Digest`.
    #[error("authorization scheme is not Digest")]
    NotDigest,
    /// A mandatory parameter is missing.
    #[error("digest parameter {0} is missing")]
    Missing(&'static str),
    /// A parameter has an invalid value.
    #[error("digest parameter {0} is invalid")]
    Invalid(&'static str),
    /// The algorithm is not MD5 or SHA-256.
    #[error("unsupported digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),
}

/// The parameters of an `Authorization` / `Proxy-Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestParams {
    /// `username`.
    pub username: String,
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `uri` (the digest-uri, kept verbatim).
    pub uri: String,
    /// `response` (hex).
    pub response: String,
    /// `algorithm` (MD5 when absent).
    pub algorithm: DigestAlgorithm,
    /// `qop` (only `auth` is supported; `None` for RFC 2069 clients).
    pub qop: Option<String>,
    /// `nc`, the nonce count (hex on the wire).
    pub nc: Option<u32>,
    /// `cnonce`.
    pub cnonce: Option<String>,
    /// `opaque`.
    pub opaque: Option<String>,
}

/// Splits `k=v, k="v, with comma"` into pairs, honouring quotes and escapes.
pub(crate) fn split_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        // Skip separators.
        while matches!(chars.peek(), Some(c) if *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.trim().is_empty() && chars.peek().is_none() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            while matches!(chars.peek(), Some(c) if c.is_whitespace()) {
                chars.next();
            }
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                value.push(n);
                            }
                        }
                        '"' => break,
                        _ => value.push(c),
                    }
                }
                // Skip to the next separator.
                while matches!(chars.peek(), Some(c) if *c != ',') {
                    chars.next();
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        let key = key.trim().to_ascii_lowercase();
        if !key.is_empty() {
            out.push((key, value.trim().to_string()));
        }
        if chars.peek().is_none() {
            break;
        }
    }
    out
}

/// Parses a `Digest ...` credentials header value.
pub fn parse_digest(value: &str) -> Result<DigestParams, DigestError> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(DigestError::NotDigest);
    }
    let params = split_params(rest);
    let get = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let algorithm = match get("algorithm") {
        None => DigestAlgorithm::Md5,
        Some(a) => DigestAlgorithm::parse(&a).ok_or(DigestError::UnsupportedAlgorithm(a))?,
    };
    let nc = match get("nc") {
        None => None,
        Some(nc) => Some(u32::from_str_radix(&nc, 16).map_err(|_| DigestError::Invalid("nc"))?),
    };
    let qop = get("qop");
    if let Some(q) = &qop {
        if !q.eq_ignore_ascii_case("auth") {
            return Err(DigestError::Invalid("qop"));
        }
    }
    let p = DigestParams {
        username: get("username").ok_or(DigestError::Missing("username"))?,
        realm: get("realm").ok_or(DigestError::Missing("realm"))?,
        nonce: get("nonce").ok_or(DigestError::Missing("nonce"))?,
        uri: get("uri").ok_or(DigestError::Missing("uri"))?,
        response: get("response").ok_or(DigestError::Missing("response"))?,
        algorithm,
        qop,
        nc,
        cnonce: get("cnonce"),
        opaque: get("opaque"),
    };
    if p.qop.is_some() && (p.nc.is_none() || p.cnonce.is_none()) {
        return Err(DigestError::Missing("nc/cnonce"));
    }
    Ok(p)
}

/// The response a client with `ha1_hex` must have computed.
pub fn expected_response(p: &DigestParams, ha1_hex: &str, method: &str) -> String {
    let alg = p.algorithm;
    let ha2 = hex_digest(alg, format!("{method}:{}", p.uri).as_bytes());
    let data = match (&p.qop, p.nc, &p.cnonce) {
        (Some(qop), Some(nc), Some(cnonce)) => {
            format!("{ha1_hex}:{}:{nc:08x}:{cnonce}:{qop}:{ha2}", p.nonce)
        }
        _ => format!("{ha1_hex}:{}:{ha2}", p.nonce),
    };
    hex_digest(alg, data.as_bytes())
}

/// Compares the client's response with the expected one (case-insensitive
/// hex, constant time over the length).
pub fn verify(p: &DigestParams, ha1_hex: &str, method: &str) -> bool {
    let want = expected_response(p, &ha1_hex.to_ascii_lowercase(), method);
    let got = p.response.to_ascii_lowercase();
    if want.len() != got.len() {
        return false;
    }
    want.bytes()
        .zip(got.bytes())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// A `WWW-Authenticate` / `Proxy-Authenticate` header value.
pub fn challenge(realm: &str, nonce: &str, alg: DigestAlgorithm, stale: bool) -> String {
    let mut s = format!(
        "Digest realm=\"{realm}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"",
        alg.token()
    );
    if stale {
        s.push_str(", stale=true");
    }
    s
}

/// Why a nonce was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NonceError {
    /// Not a nonce we issued (bad format or MAC).
    #[error("nonce was not issued by this server")]
    Unknown,
    /// Issued by us but expired: the client should retry with a new one.
    #[error("nonce expired")]
    Stale,
    /// This nonce count (or this nonce, without qop) was already used.
    #[error("nonce count replayed")]
    Replayed,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    expires: DateTime<Utc>,
    /// Highest nonce count used (0: none yet).
    last_nc: u32,
    /// Wrong answers given with this nonce.
    wrong: u8,
}

/// Wrong answers a nonce accepts; then it is stale (the client must fetch
/// a new one, and each new one costs a round trip).
pub const MAX_WRONG_ANSWERS: u8 = 3;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Issues and checks nonces. Pure: the caller passes `now`.
#[derive(Debug)]
pub struct NonceManager {
    key: [u8; 32],
    ttl: Duration,
    counter: u64,
    seen: HashMap<String, Seen>,
}

impl NonceManager {
    /// A manager whose nonces live `ttl`, authenticated with `key` (random
    /// at startup; nonces do not survive a restart, clients re-register).
    pub fn new(key: [u8; 32], ttl: Duration) -> Self {
        Self {
            key,
            ttl,
            counter: 0,
            seen: HashMap::new(),
        }
    }

    fn mac(&self, payload: &[u8]) -> [u8; 16] {
        let mut out = [0u8; 16];
        if let Ok(mut m) = <HmacSha256 as KeyInit>::new_from_slice(&self.key) {
            m.update(payload);
            let full = m.finalize().into_bytes();
            out.copy_from_slice(&full[..16]);
        }
        out
    }

    /// A new nonce: timestamp, counter, MAC (64 hex characters).
    pub fn issue(&mut self, now: DateTime<Utc>) -> String {
        self.counter = self.counter.wrapping_add(1);
        let mut payload = [0u8; 16];
        payload[..8].copy_from_slice(&now.timestamp_millis().to_be_bytes());
        payload[8..].copy_from_slice(&self.counter.to_be_bytes());
        let mac = self.mac(&payload);
        format!("{}{}", hex::encode(payload), hex::encode(mac))
    }

    /// Checks that `nonce` is ours and fresh, without consuming it.
    pub fn validate(&self, nonce: &str, now: DateTime<Utc>) -> Result<(), NonceError> {
        let bytes = hex::decode(nonce).map_err(|_| NonceError::Unknown)?;
        if bytes.len() != 32 {
            return Err(NonceError::Unknown);
        }
        let (payload, mac) = bytes.split_at(16);
        if self.mac(payload) != mac {
            return Err(NonceError::Unknown);
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&payload[..8]);
        let issued =
            DateTime::from_timestamp_millis(i64::from_be_bytes(ts)).ok_or(NonceError::Unknown)?;
        if now >= issued + self.ttl || issued > now + Duration::from_secs(5) {
            return Err(NonceError::Stale);
        }
        if self
            .seen
            .get(nonce)
            .is_some_and(|s| s.wrong >= MAX_WRONG_ANSWERS)
        {
            return Err(NonceError::Stale);
        }
        Ok(())
    }

    /// Records a wrong answer given with `nonce` (after [`MAX_WRONG_ANSWERS`]
    /// of them, the nonce is stale).
    pub fn wrong_answer(&mut self, nonce: &str, now: DateTime<Utc>) {
        if self.validate(nonce, now).is_err() {
            return;
        }
        let expires = now + self.ttl;
        let s = self.seen.entry(nonce.to_string()).or_insert(Seen {
            expires,
            last_nc: 0,
            wrong: 0,
        });
        s.wrong = s.wrong.saturating_add(1);
    }

    /// Records one use of `nonce` with nonce-count `nc` (None: a client
    /// without qop, allowed once per nonce). Call after the digest response
    /// was verified. Fails if that count was already used.
    pub fn consume(
        &mut self,
        nonce: &str,
        nc: Option<u32>,
        now: DateTime<Utc>,
    ) -> Result<(), NonceError> {
        self.validate(nonce, now)?;
        let nc = nc.unwrap_or(1);
        let expires = now + self.ttl;
        match self.seen.get_mut(nonce) {
            Some(s) if nc <= s.last_nc => Err(NonceError::Replayed),
            Some(s) => {
                s.last_nc = nc;
                Ok(())
            }
            None => {
                self.seen.insert(
                    nonce.to_string(),
                    Seen {
                        expires,
                        last_nc: nc,
                        wrong: 0,
                    },
                );
                Ok(())
            }
        }
    }

    /// Forgets nonces that expired (their replays are refused as stale).
    /// The registrar calls it from its timer.
    pub fn purge(&mut self, now: DateTime<Utc>) {
        self.seen.retain(|_, s| s.expires > now);
    }

    /// Number of nonces currently tracked for replay protection.
    pub fn tracked(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).expect("valid")
    }

    #[test]
    fn rfc2617_example() {
        // RFC 2617 §3.5 example (HTTP, but the computation is the same).
        let p = parse_digest(
            r#"Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
        )
        .expect("parses");
        let h = ha1(
            DigestAlgorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        assert!(verify(&p, &h, "GET"));
        assert!(!verify(&p, &h, "POST"));
        assert_eq!(p.nc, Some(1));
    }

    #[test]
    fn rfc7616_sha256_example() {
        // RFC 7616 §3.9.1, SHA-256 variant.
        let p = parse_digest(
            r#"Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#,
        )
        .expect("parses");
        assert_eq!(p.algorithm, DigestAlgorithm::Sha256);
        let h = ha1(
            DigestAlgorithm::Sha256,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
        );
        assert!(verify(&p, &h, "GET"));
    }

    #[test]
    fn rejects_bad_headers() {
        assert_eq!(parse_digest("Basic abc"), Err(DigestError::NotDigest));
        assert!(matches!(
            parse_digest(
                r#"Digest username="a", realm="r", nonce="n", uri="u", response="x", algorithm=SHA-512"#
            ),
            Err(DigestError::UnsupportedAlgorithm(_))
        ));
        assert_eq!(
            parse_digest(r#"Digest username="a", realm="r", nonce="n", uri="u""#),
            Err(DigestError::Missing("response"))
        );
        assert_eq!(
            parse_digest(
                r#"Digest username="a", realm="r", nonce="n", uri="u", response="x", qop=auth"#
            ),
            Err(DigestError::Missing("nc/cnonce"))
        );
    }

    #[test]
    fn a_nonce_accepts_only_a_few_wrong_answers() {
        let mut m = NonceManager::new([7; 32], Duration::from_secs(300));
        let n = m.issue(t0());
        for _ in 0..MAX_WRONG_ANSWERS - 1 {
            m.wrong_answer(&n, t0());
            assert_eq!(m.validate(&n, t0()), Ok(()));
        }
        m.wrong_answer(&n, t0());
        assert_eq!(m.validate(&n, t0()), Err(NonceError::Stale));
        // Even the right answer is refused now.
        assert_eq!(m.consume(&n, Some(1), t0()), Err(NonceError::Stale));
        // A fresh nonce works.
        let fresh = m.issue(t0());
        assert_eq!(m.consume(&fresh, Some(1), t0()), Ok(()));
    }

    #[test]
    fn nonces_expire_and_cannot_be_replayed() {
        let mut m = NonceManager::new([7; 32], Duration::from_secs(300));
        let n = m.issue(t0());
        assert_eq!(m.validate(&n, t0()), Ok(()));
        assert_eq!(m.consume(&n, Some(1), t0()), Ok(()));
        assert_eq!(m.consume(&n, Some(1), t0()), Err(NonceError::Replayed));
        assert_eq!(m.consume(&n, Some(2), t0()), Ok(()));
        assert_eq!(m.consume(&n, Some(2), t0()), Err(NonceError::Replayed));
        assert_eq!(
            m.validate(&n, t0() + Duration::from_secs(300)),
            Err(NonceError::Stale)
        );
        // Without qop, a nonce is good once.
        let n2 = m.issue(t0());
        assert_eq!(m.consume(&n2, None, t0()), Ok(()));
        assert_eq!(m.consume(&n2, None, t0()), Err(NonceError::Replayed));
        // Forged or foreign nonces.
        assert_eq!(m.validate("abc", t0()), Err(NonceError::Unknown));
        let other = NonceManager::new([8; 32], Duration::from_secs(300)).issue(t0());
        assert_eq!(m.validate(&other, t0()), Err(NonceError::Unknown));
        let mut tampered = n.clone().into_bytes();
        tampered[0] = if tampered[0] == b'0' { b'1' } else { b'0' };
        let tampered = String::from_utf8(tampered).expect("ascii");
        assert_eq!(m.validate(&tampered, t0()), Err(NonceError::Unknown));
        m.purge(t0() + Duration::from_secs(301));
        assert_eq!(m.tracked(), 0);
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,200}") {
            let _ = parse_digest(&s);
            let _ = parse_digest(&format!("Digest {s}"));
        }
    }
}
