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
    /// WebSocket (RFC 7118): browser softphones, media in WebRTC.
    Ws,
    /// Secure WebSocket (RFC 7118, over TLS).
    Wss,
}

impl Transport {
    /// The token of a Via header (`UDP`, `TCP`, `TLS`, `WS`, `WSS`).
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
        }
    }

    /// Whether this is a WebSocket transport: its peers are browsers (or
    /// WebRTC SIP clients) whose media is WebRTC (ICE, DTLS-SRTP), never a
    /// carrier.
    pub fn is_websocket(self) -> bool {
        matches!(self, Transport::Ws | Transport::Wss)
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
        } else if s.eq_ignore_ascii_case("ws") {
            Some(Transport::Ws)
        } else if s.eq_ignore_ascii_case("wss") {
            Some(Transport::Wss)
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

/// When Permanence offers SRTP (SDES keys, RFC 4568) to an agent's
/// softphone (`[[agents]] srtp`). SDES keys travel in the SDP, so they are
/// only secret when the signalling is encrypted (RFC 4568 §8.3): SRTP is
/// only ever offered to contacts registered over TLS. Browsers (contacts
/// registered over WebSocket) always get WebRTC's DTLS-SRTP instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SrtpPolicy {
    /// Never: plain RTP to every contact.
    Off,
    /// The default: `RTP/SAVP` with our key to contacts registered over
    /// TLS (a softphone refusing it with 488 is called again with plain
    /// RTP); plain RTP to the others.
    #[default]
    Offer,
    /// SRTP only: `RTP/SAVP` to contacts registered over TLS, no plain
    /// fallback; contacts registered over UDP or TCP are not called.
    Require,
}

impl SrtpPolicy {
    /// The configuration token (`off`, `offer`, `require`).
    pub fn as_str(self) -> &'static str {
        match self {
            SrtpPolicy::Off => "off",
            SrtpPolicy::Offer => "offer",
            SrtpPolicy::Require => "require",
        }
    }

    /// Parses a configuration token.
    pub fn parse(s: &str) -> Option<Self> {
        [SrtpPolicy::Off, SrtpPolicy::Offer, SrtpPolicy::Require]
            .into_iter()
            .find(|p| p.as_str() == s)
    }

    /// Whether a contact registered over `transport` is offered SRTP.
    pub fn offers_srtp(self, transport: Transport) -> bool {
        self != SrtpPolicy::Off && transport == Transport::Tls
    }

    /// Whether a contact registered over `transport` may be called at all.
    /// A WebSocket contact always is: its media is DTLS-SRTP (WebRTC).
    pub fn allows(self, transport: Transport) -> bool {
        self != SrtpPolicy::Require || transport == Transport::Tls || transport.is_websocket()
    }
}

impl std::fmt::Display for SrtpPolicy {
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

#[cfg(test)]
mod srtp_policy_tests {
    use super::*;

    #[test]
    fn srtp_policy_tokens_and_rules() {
        for p in [SrtpPolicy::Off, SrtpPolicy::Offer, SrtpPolicy::Require] {
            assert_eq!(SrtpPolicy::parse(p.as_str()), Some(p));
        }
        assert_eq!(SrtpPolicy::parse("OFFER"), None);
        assert_eq!(SrtpPolicy::default(), SrtpPolicy::Offer);
        assert!(SrtpPolicy::Offer.offers_srtp(Transport::Tls));
        assert!(!SrtpPolicy::Offer.offers_srtp(Transport::Udp));
        assert!(!SrtpPolicy::Off.offers_srtp(Transport::Tls));
        assert!(SrtpPolicy::Offer.allows(Transport::Tcp));
        assert!(!SrtpPolicy::Require.allows(Transport::Udp));
        assert!(SrtpPolicy::Require.allows(Transport::Tls));
    }
}
