//! SIP vocabulary shared by the configuration, the registrar and the
//! drivers.

use serde::{Deserialize, Serialize};

/// A SIP transport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Transport {
    /// UDP (the default of RFC 3261).
    #[default]
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP (RFC 3261 §26.2).
    Tls,
}

impl Transport {
    /// The token of a Via header (`UDP`, `TCP`, `TLS`).
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// Parses a Via or `transport=` token, case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("udp") {
            Some(Transport::Udp)
        } else if s.eq_ignore_ascii_case("tcp") {
            Some(Transport::Tcp)
        } else if s.eq_ignore_ascii_case("tls") {
            Some(Transport::Tls)
        } else {
            None
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A digest algorithm of RFC 8760 (`MD5` or `SHA-256`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    /// MD5 (RFC 2617; still what most softphones use). HA1 is 32 hex
    /// digits.
    Md5,
    /// SHA-256 (RFC 7616, RFC 8760). HA1 is 64 hex digits.
    Sha256,
}

impl DigestAlgorithm {
    /// The `algorithm=` token of challenges (`MD5`, `SHA-256`).
    pub fn token(self) -> &'static str {
        match self {
            DigestAlgorithm::Md5 => "MD5",
            DigestAlgorithm::Sha256 => "SHA-256",
        }
    }

    /// Length of a hex digest (and of an HA1) for this algorithm.
    pub fn hex_len(self) -> usize {
        match self {
            DigestAlgorithm::Md5 => 32,
            DigestAlgorithm::Sha256 => 64,
        }
    }

    /// Parses an algorithm token; accepts `SHA256` as seen in the wild.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().trim_matches('"');
        if s.eq_ignore_ascii_case("MD5") {
            Some(DigestAlgorithm::Md5)
        } else if s.eq_ignore_ascii_case("SHA-256") || s.eq_ignore_ascii_case("SHA256") {
            Some(DigestAlgorithm::Sha256)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transports() {
        assert_eq!(Transport::parse("tcp"), Some(Transport::Tcp));
        assert_eq!(Transport::parse(" UDP "), Some(Transport::Udp));
        assert_eq!(Transport::parse("sctp"), None);
        assert_eq!(Transport::Tcp.to_string(), "TCP");
        assert_eq!(Transport::parse("tls"), Some(Transport::Tls));
        assert_eq!(Transport::Tls.to_string(), "TLS");
    }

    #[test]
    fn algorithms() {
        assert_eq!(
            DigestAlgorithm::parse("sha256"),
            Some(DigestAlgorithm::Sha256)
        );
        assert_eq!(
            DigestAlgorithm::parse("\"MD5\""),
            Some(DigestAlgorithm::Md5)
        );
        assert_eq!(DigestAlgorithm::Sha256.token(), "SHA-256");
        assert_eq!(DigestAlgorithm::Md5.hex_len(), 32);
    }
}
