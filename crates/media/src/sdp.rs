//! SDP offer/answer (RFC 4566 / RFC 3264) for the subset a G.711 B2BUA needs.
//!
//! Own small parser rather than a general SDP crate: we need one audio
//! stream, a handful of attributes and full control over failure modes (no
//! panic on any input, bounded size, tolerant of LF-only endings, unknown
//! lines and attributes, strict on the fields we use). It is a few hundred
//! lines with no extra dependency.
//!
//! SRTP keyed with SDES (RFC 4568): `a=crypto` lines of the audio stream
//! are parsed ([`Crypto`]), the first one of a suite we support is chosen
//! ([`Negotiated::srtp`]); an `RTP/SAVP` offer without one is refused (488).
//! Crypto lines on a plain `RTP/AVP` offer (best-effort SRTP, as some
//! softphones send) are honoured too. Our answers carry our own key (never
//! the offerer's) with the offerer's tag; our offers are `RTP/SAVP` with
//! our key when a key is given ([`build_offer`]).
//!
//! Typical use on the caller side (we answer):
//! ```
//! use permanence_media::sdp::{self, Direction, LocalSession};
//! let offer = "v=0\r\no=- 1 1 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\n\
//!              m=audio 40000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";
//! let offer = sdp::SessionDescription::parse(offer).unwrap();
//! let neg = sdp::negotiate(&offer).unwrap(); // Err(e) => reply e.sip_status() (488)
//! let mut ours = LocalSession::new("203.0.113.5".parse().unwrap());
//! let key = permanence_media::srtp::MasterKey::random(); // the leg's own
//! let answer = sdp::build_answer(&mut ours, 30000, &neg, Direction::SendRecv, &key);
//! assert!(answer.contains("m=audio 30000 RTP/AVP 8 101\r\n"));
//! ```

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::g711::Codec;
use crate::srtp::{MasterKey, Suite, SuiteKey};

/// Largest SDP body accepted.
pub const MAX_SDP_LEN: usize = 64 * 1024;
/// Payload type we offer for telephone-event.
pub const OFFER_DTMF_PT: u8 = 101;

/// Why an SDP body could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// The body is larger than [`MAX_SDP_LEN`].
    #[error("SDP body too large ({0} bytes)")]
    TooLarge(usize),
    /// A line the parser cannot make sense of.
    #[error("malformed SDP line {line}: {reason}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// No `v=0` line.
    #[error("SDP has no v=0 line")]
    MissingVersion,
    /// No usable `m=audio` line (absent, or port 0).
    #[error("SDP has no active audio stream")]
    NoAudio,
    /// The audio stream has neither a media nor a session `c=` line.
    #[error("SDP has no connection address for the audio stream")]
    NoConnection,
    /// None of PCMU or PCMA is offered.
    #[error("no common codec (we support PCMU and PCMA)")]
    NoCommonCodec,
    /// A transport profile other than `RTP/AVP`, `RTP/AVPF`, `RTP/SAVP`
    /// and `RTP/SAVPF` (e.g. DTLS-SRTP's `UDP/TLS/RTP/SAVP`).
    #[error("unsupported media transport {0:?}")]
    UnsupportedTransport(String),
    /// `RTP/SAVP(F)` without an `a=crypto` line of a suite we support
    /// (`AES_CM_128_HMAC_SHA1_80`, `AES_CM_128_HMAC_SHA1_32`, inline key,
    /// no MKI).
    #[error("no common SRTP crypto suite")]
    NoCommonCrypto,
}

impl SdpError {
    /// The SIP status code a UAS should answer an offer with this error:
    /// 488 Not Acceptable Here for unusable media, 400 Bad Request for a
    /// malformed body.
    pub fn sip_status(&self) -> u16 {
        match self {
            SdpError::NoAudio
            | SdpError::NoCommonCodec
            | SdpError::UnsupportedTransport(_)
            | SdpError::NoCommonCrypto => 488,
            _ => 400,
        }
    }
}

/// Media direction attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// `a=sendrecv` (the default).
    #[default]
    SendRecv,
    /// `a=sendonly`: the describing side sends but does not receive.
    SendOnly,
    /// `a=recvonly`: the describing side receives but does not send.
    RecvOnly,
    /// `a=inactive`: neither.
    Inactive,
}

impl Direction {
    fn from_flags(send: bool, recv: bool) -> Self {
        match (send, recv) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// Whether the describing side sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the describing side receives media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The direction the other side must use (sendonly <-> recvonly).
    pub fn mirror(self) -> Self {
        Self::from_flags(self.receives(), self.sends())
    }

    /// Both restrictions at once (what `self` and `other` both allow).
    pub fn intersect(self, other: Direction) -> Self {
        Self::from_flags(
            self.sends() && other.sends(),
            self.receives() && other.receives(),
        )
    }

    /// The attribute text, e.g. `sendrecv`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }
}

/// An `a=rtpmap` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// Payload type number.
    pub payload_type: u8,
    /// Encoding name as written (e.g. `PCMU`, `telephone-event`).
    pub encoding: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Channel count, when given.
    pub channels: Option<u16>,
}

/// The RTP profile of an `m=` line (RFC 3551, RFC 3711, RFC 4585,
/// RFC 5124).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Profile {
    /// `RTP/AVP`: plain RTP.
    #[default]
    Avp,
    /// `RTP/AVPF`: plain RTP with feedback (we send none).
    Avpf,
    /// `RTP/SAVP`: SRTP.
    Savp,
    /// `RTP/SAVPF`: SRTP with feedback (we send none).
    Savpf,
}

impl Profile {
    /// The profile named `proto` (case-insensitive), if an RTP one we
    /// support.
    pub fn parse(proto: &str) -> Option<Self> {
        [Profile::Avp, Profile::Avpf, Profile::Savp, Profile::Savpf]
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(proto))
    }

    /// The text of the `m=` line.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Avp => "RTP/AVP",
            Profile::Avpf => "RTP/AVPF",
            Profile::Savp => "RTP/SAVP",
            Profile::Savpf => "RTP/SAVPF",
        }
    }

    /// Whether it mandates SRTP.
    pub fn is_secure(self) -> bool {
        matches!(self, Profile::Savp | Profile::Savpf)
    }
}

/// An `a=crypto` line of a suite we support (RFC 4568 §9.1): its tag, its
/// suite and the master key of the side that wrote it (the key that side
/// encrypts what it sends with). `Debug` does not show the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crypto {
    /// The tag the answer must repeat.
    pub tag: u32,
    /// The crypto suite.
    pub suite: Suite,
    /// The `inline:` master key and salt.
    pub key: MasterKey,
}

impl Crypto {
    /// The suite with the key.
    pub fn suite_key(&self) -> SuiteKey {
        SuiteKey {
            suite: self.suite,
            key: self.key,
        }
    }
}

/// Parses the value of an `a=crypto` attribute; `None` for suites we do not
/// support and for what we cannot honour: several keys, an MKI, session
/// parameters other than `WSH=` (window size hint) and `KDR=0`.
fn parse_crypto(v: &str) -> Option<Crypto> {
    let mut it = v.split_ascii_whitespace();
    let tag = it.next()?;
    if tag.is_empty() || tag.len() > 9 || !tag.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let tag = tag.parse().ok()?;
    let suite = Suite::parse(it.next()?)?;
    let key_params = it.next()?;
    if key_params.contains(';') {
        return None;
    }
    let mut parts = key_params.strip_prefix("inline:")?.split('|');
    let key = MasterKey::from_inline(parts.next()?)?;
    // Lifetime (`2^31` or a number) is accepted and ignored (a call never
    // comes near it); an MKI (`1:4`) is not supported.
    for p in parts {
        if p.contains(':') {
            return None;
        }
    }
    for session_param in it {
        let ok = session_param.starts_with("WSH=") || session_param == "KDR=0";
        if !ok {
            return None;
        }
    }
    Some(Crypto { tag, suite, key })
}

/// The `o=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// User name (`-` usually).
    pub username: String,
    /// Session id, as written.
    pub session_id: String,
    /// Session version, as written.
    pub session_version: String,
    /// Unicast address, as written.
    pub address: String,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// Media type (`audio`, `video`, ...).
    pub media: String,
    /// Transport port (0 = stream rejected/disabled).
    pub port: u16,
    /// Transport protocol (`RTP/AVP`, ...).
    pub proto: String,
    /// Payload types in preference order (RTP transports only).
    pub payload_types: Vec<u8>,
    /// Media-level `c=` address.
    pub connection: Option<IpAddr>,
    /// `a=rtpmap` attributes.
    pub rtpmaps: Vec<RtpMap>,
    /// `a=fmtp` attributes: payload type and parameters.
    pub fmtps: Vec<(u8, String)>,
    /// `a=ptime` in milliseconds.
    pub ptime: Option<u32>,
    /// Media-level direction attribute.
    pub direction: Option<Direction>,
    /// `a=crypto` attributes of suites we support, in the order given.
    pub crypto: Vec<Crypto>,
}

impl MediaDescription {
    fn rtpmap(&self, pt: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|m| m.payload_type == pt)
    }

    /// The G.711 law carried by payload type `pt` in this section, if any
    /// (rtpmap when present, else the static assignment 0/8).
    pub fn codec_of(&self, pt: u8) -> Option<Codec> {
        match self.rtpmap(pt) {
            Some(m) => {
                let mono = m.channels.is_none_or(|c| c == 1);
                if m.clock_rate != 8000 || !mono {
                    None
                } else if m.encoding.eq_ignore_ascii_case("PCMU") {
                    Some(Codec::Pcmu)
                } else if m.encoding.eq_ignore_ascii_case("PCMA") {
                    Some(Codec::Pcma)
                } else {
                    None
                }
            }
            None => match pt {
                0 => Some(Codec::Pcmu),
                8 => Some(Codec::Pcma),
                _ => None,
            },
        }
    }

    /// The first payload type listed that is `telephone-event/8000`.
    pub fn telephone_event_pt(&self) -> Option<u8> {
        self.payload_types.iter().copied().find(|&pt| {
            self.rtpmap(pt).is_some_and(|m| {
                m.encoding.eq_ignore_ascii_case("telephone-event") && m.clock_rate == 8000
            })
        })
    }
}

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionDescription {
    /// The `o=` line, when present and well formed.
    pub origin: Option<Origin>,
    /// Session-level `c=` address.
    pub connection: Option<IpAddr>,
    /// Session-level direction attribute.
    pub direction: Option<Direction>,
    /// Media sections in order.
    pub media: Vec<MediaDescription>,
}

fn malformed(line: usize, reason: impl Into<String>) -> SdpError {
    SdpError::Malformed {
        line,
        reason: reason.into(),
    }
}

fn parse_connection(line: usize, v: &str) -> Result<IpAddr, SdpError> {
    let mut it = v.split_ascii_whitespace();
    let (net, kind, addr) = (it.next(), it.next(), it.next());
    if net != Some("IN") {
        return Err(malformed(line, "c= network type is not IN"));
    }
    // Multicast TTL / count suffixes ("/127") are tolerated and ignored.
    let addr = addr
        .and_then(|a| a.split('/').next())
        .ok_or_else(|| malformed(line, "c= without address"))?;
    match kind {
        Some("IP4") => addr
            .parse::<Ipv4Addr>()
            .map(IpAddr::V4)
            .map_err(|_| malformed(line, "c= IP4 address invalid")),
        Some("IP6") => addr
            .parse::<Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| malformed(line, "c= IP6 address invalid")),
        _ => Err(malformed(line, "c= address type is not IP4 or IP6")),
    }
}

fn parse_media(line: usize, v: &str) -> Result<MediaDescription, SdpError> {
    let mut it = v.split_ascii_whitespace();
    let media = it
        .next()
        .ok_or_else(|| malformed(line, "empty m= line"))?
        .to_owned();
    let port = it
        .next()
        .and_then(|p| p.split('/').next())
        .and_then(|p| p.parse::<u16>().ok())
        .ok_or_else(|| malformed(line, "m= port invalid"))?;
    let proto = it
        .next()
        .ok_or_else(|| malformed(line, "m= without protocol"))?
        .to_owned();
    let mut payload_types = Vec::new();
    if proto.to_ascii_uppercase().starts_with("RTP/") {
        for f in it {
            match f.parse::<u8>() {
                Ok(pt) if pt < 128 => payload_types.push(pt),
                _ => return Err(malformed(line, format!("m= payload type {f:?} invalid"))),
            }
        }
    }
    Ok(MediaDescription {
        media,
        port,
        proto,
        payload_types,
        connection: None,
        rtpmaps: Vec::new(),
        fmtps: Vec::new(),
        ptime: None,
        direction: None,
        crypto: Vec::new(),
    })
}

fn parse_rtpmap(v: &str) -> Option<RtpMap> {
    let (pt, rest) = v.split_once(char::is_whitespace)?;
    let payload_type = pt.parse::<u8>().ok().filter(|&p| p < 128)?;
    let mut parts = rest.trim().split('/');
    let encoding = parts.next()?.to_owned();
    let clock_rate = parts.next()?.parse().ok()?;
    let channels = match parts.next() {
        Some(c) => Some(c.parse().ok()?),
        None => None,
    };
    Some(RtpMap {
        payload_type,
        encoding,
        clock_rate,
        channels,
    })
}

impl SessionDescription {
    /// Parses an SDP body. Accepts CRLF or LF line endings, ignores blank
    /// lines, unknown line types and unknown attributes; rejects lines not of
    /// the `x=value` form and malformed `v=`, `c=` and `m=` lines.
    pub fn parse(text: &str) -> Result<Self, SdpError> {
        if text.len() > MAX_SDP_LEN {
            return Err(SdpError::TooLarge(text.len()));
        }
        let mut sd = SessionDescription::default();
        let mut saw_version = false;
        for (idx, raw) in text.split('\n').enumerate() {
            let line_no = idx + 1;
            let line = raw.trim_end_matches('\r').trim_end();
            if line.is_empty() {
                continue;
            }
            let mut chars = line.chars();
            let (kind, eq) = (chars.next(), chars.next());
            let (Some(kind), Some('=')) = (kind, eq) else {
                return Err(malformed(line_no, "not of the form x=value"));
            };
            // `kind` and '=' are ASCII here (checked above), so byte 2 is a
            // char boundary.
            let value = line.get(2..).unwrap_or("");
            let current = sd.media.last_mut();
            match kind {
                'v' => {
                    if value.trim() != "0" {
                        return Err(malformed(line_no, "unsupported SDP version"));
                    }
                    saw_version = true;
                }
                'o' => {
                    let f: Vec<&str> = value.split_ascii_whitespace().collect();
                    if let [user, id, ver, _, _, addr] = f.as_slice() {
                        sd.origin = Some(Origin {
                            username: (*user).to_owned(),
                            session_id: (*id).to_owned(),
                            session_version: (*ver).to_owned(),
                            address: (*addr).to_owned(),
                        });
                    }
                }
                'c' => {
                    let addr = parse_connection(line_no, value)?;
                    match current {
                        Some(m) => m.connection = Some(addr),
                        None => sd.connection = Some(addr),
                    }
                }
                'm' => sd.media.push(parse_media(line_no, value)?),
                'a' => {
                    let (name, arg) = match value.split_once(':') {
                        Some((n, a)) => (n, Some(a.trim())),
                        None => (value, None),
                    };
                    if let Some(dir) = Direction::parse(name) {
                        match current {
                            Some(m) => m.direction = Some(dir),
                            None => sd.direction = Some(dir),
                        }
                        continue;
                    }
                    let (Some(m), Some(arg)) = (current, arg) else {
                        continue;
                    };
                    match name {
                        "rtpmap" => {
                            if let Some(map) = parse_rtpmap(arg) {
                                m.rtpmaps.push(map);
                            }
                        }
                        "fmtp" => {
                            if let Some((pt, params)) = arg.split_once(char::is_whitespace) {
                                if let Ok(pt) = pt.parse::<u8>() {
                                    m.fmtps.push((pt, params.trim().to_owned()));
                                }
                            }
                        }
                        "ptime" => m.ptime = arg.parse().ok(),
                        "crypto" => {
                            if let Some(c) = parse_crypto(arg) {
                                m.crypto.push(c);
                            }
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        if !saw_version {
            return Err(SdpError::MissingVersion);
        }
        Ok(sd)
    }

    /// The first `m=audio` section, whatever its port.
    pub fn first_audio(&self) -> Option<&MediaDescription> {
        self.media.iter().find(|m| m.media == "audio")
    }
}

/// The outcome of negotiating a remote offer or answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The G.711 law chosen (the remote's first PCMU/PCMA).
    pub codec: Codec,
    /// The payload type the remote uses for it.
    pub payload_type: u8,
    /// The remote's telephone-event payload type, when offered.
    pub dtmf_payload_type: Option<u8>,
    /// Where to send RTP; `None` when the remote is on hold with
    /// `c=0.0.0.0` (or `::`).
    pub remote: Option<SocketAddr>,
    /// The remote's effective direction: its direction attribute, with
    /// receiving removed when the address is `0.0.0.0`.
    pub remote_direction: Direction,
    /// The remote's `a=ptime`, if any (we always send 20 ms).
    pub ptime: Option<u32>,
    /// The remote's `o=` session id and version, to spot re-offers.
    pub origin: Option<(String, String)>,
    /// The remote's RTP profile (an answer repeats it).
    pub profile: Profile,
    /// SRTP: the remote's chosen `a=crypto` (the first of a suite we
    /// support), whose key decrypts what it sends; `None` for plain RTP.
    pub srtp: Option<Crypto>,
}

impl Negotiated {
    /// Whether the remote put the call on hold (it does not want to receive:
    /// `sendonly`, `inactive` or `c=0.0.0.0`).
    pub fn is_hold(&self) -> bool {
        !self.remote_direction.receives()
    }

    /// The direction our answer must carry (mirror of the remote's).
    pub fn answer_direction(&self) -> Direction {
        self.remote_direction.mirror()
    }
}

/// Negotiates against a remote SDP (an offer we answer, or the answer to our
/// offer): picks the first of PCMU/PCMA in the remote's order, its
/// telephone-event payload type, address and direction.
pub fn negotiate(remote: &SessionDescription) -> Result<Negotiated, SdpError> {
    let audio = remote
        .first_audio()
        .filter(|m| m.port != 0)
        .ok_or(SdpError::NoAudio)?;
    let profile = Profile::parse(&audio.proto)
        .ok_or_else(|| SdpError::UnsupportedTransport(audio.proto.chars().take(32).collect()))?;
    let (payload_type, codec) = audio
        .payload_types
        .iter()
        .find_map(|&pt| audio.codec_of(pt).map(|c| (pt, c)))
        .ok_or(SdpError::NoCommonCodec)?;
    let ip = audio
        .connection
        .or(remote.connection)
        .ok_or(SdpError::NoConnection)?;
    let srtp = audio.crypto.first().copied();
    if profile.is_secure() && srtp.is_none() {
        return Err(SdpError::NoCommonCrypto);
    }
    let mut direction = audio.direction.or(remote.direction).unwrap_or_default();
    let remote_addr = if ip.is_unspecified() {
        direction = direction.intersect(Direction::SendOnly);
        None
    } else {
        Some(SocketAddr::new(ip, audio.port))
    };
    Ok(Negotiated {
        codec,
        payload_type,
        dtmf_payload_type: audio.telephone_event_pt(),
        remote: remote_addr,
        remote_direction: direction,
        ptime: audio.ptime,
        origin: remote
            .origin
            .as_ref()
            .map(|o| (o.session_id.clone(), o.session_version.clone())),
        profile,
        srtp,
    })
}

/// Our side of an SDP session: the `o=` identity, whose version increments
/// with every description built after the first (re-offers, re-answers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSession {
    /// Address written in `o=` and `c=`.
    pub address: IpAddr,
    session_id: u64,
    version: u64,
    built: bool,
}

impl LocalSession {
    /// A new session with a random id, advertising `address`.
    pub fn new(address: IpAddr) -> Self {
        let session_id = rand::random::<u32>() as u64 + 1;
        LocalSession {
            address,
            session_id,
            version: session_id,
            built: false,
        }
    }

    /// Session id written in `o=`.
    pub fn session_id(&self) -> u64 {
        self.session_id
    }

    /// Version written in the last description built.
    pub fn version(&self) -> u64 {
        self.version
    }

    fn next_version(&mut self) -> u64 {
        if self.built {
            self.version = self.version.wrapping_add(1);
        }
        self.built = true;
        self.version
    }

    fn header(&mut self, out: &mut String) {
        let v = self.next_version();
        let ip = match self.address {
            IpAddr::V4(a) => format!("IP4 {a}"),
            IpAddr::V6(a) => format!("IP6 {a}"),
        };
        let _ = write!(
            out,
            "v=0\r\no=permanence {} {v} IN {ip}\r\ns=permanence\r\nc=IN {ip}\r\nt=0 0\r\n",
            self.session_id
        );
    }
}

/// Tag of the `a=crypto` line of our offers.
pub const OFFER_CRYPTO_TAG: u32 = 1;
/// Suite of our offers.
pub const OFFER_SUITE: Suite = Suite::AesCm128HmacSha1_80;

/// Builds our offer: PCMU 0, PCMA 8, telephone-event 101 (0-16), ptime 20,
/// with `direction` (normally sendrecv; sendonly to put the remote on hold).
/// With `srtp`, the offer is `RTP/SAVP` with one `a=crypto` line
/// ([`OFFER_CRYPTO_TAG`], [`OFFER_SUITE`], that key: the one we encrypt
/// with); without, plain `RTP/AVP`.
pub fn build_offer(
    session: &mut LocalSession,
    rtp_port: u16,
    direction: Direction,
    srtp: Option<&MasterKey>,
) -> String {
    let mut s = String::with_capacity(400);
    session.header(&mut s);
    let profile = if srtp.is_some() {
        Profile::Savp
    } else {
        Profile::Avp
    };
    let _ = write!(
        s,
        "m=audio {rtp_port} {} 0 8 {dt}\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:{dt} telephone-event/8000\r\na=fmtp:{dt} 0-16\r\na=ptime:20\r\na={}\r\n",
        profile.as_str(),
        direction.as_str(),
        dt = OFFER_DTMF_PT
    );
    if let Some(key) = srtp {
        let _ = write!(
            s,
            "a=crypto:{OFFER_CRYPTO_TAG} {} inline:{}\r\n",
            OFFER_SUITE.name(),
            key.to_inline()
        );
    }
    s
}

/// Builds our answer to a negotiated offer: the offer's profile, the chosen
/// codec with the offerer's payload type, telephone-event with the
/// offerer's payload type if it offered one, ptime 20, and the mirrored
/// direction restricted by `local` (pass `SendRecv` unless we hold the
/// remote ourselves). When the offer's crypto was chosen
/// ([`Negotiated::srtp`]), the answer carries its tag and suite with
/// `srtp_key`, our own key for that leg (never the offerer's).
pub fn build_answer(
    session: &mut LocalSession,
    rtp_port: u16,
    negotiated: &Negotiated,
    local: Direction,
    srtp_key: &MasterKey,
) -> String {
    let mut s = String::with_capacity(400);
    session.header(&mut s);
    let pt = negotiated.payload_type;
    let _ = write!(s, "m=audio {rtp_port} {} {pt}", negotiated.profile.as_str());
    if let Some(dt) = negotiated.dtmf_payload_type {
        let _ = write!(s, " {dt}");
    }
    let _ = write!(
        s,
        "\r\na=rtpmap:{pt} {}/8000\r\n",
        negotiated.codec.encoding_name()
    );
    if let Some(dt) = negotiated.dtmf_payload_type {
        let _ = write!(
            s,
            "a=rtpmap:{dt} telephone-event/8000\r\na=fmtp:{dt} 0-16\r\n"
        );
    }
    let dir = negotiated.answer_direction().intersect(local);
    let _ = write!(s, "a=ptime:20\r\na={}\r\n", dir.as_str());
    if let Some(c) = &negotiated.srtp {
        let _ = write!(
            s,
            "a=crypto:{} {} inline:{}\r\n",
            c.tag,
            c.suite.name(),
            srtp_key.to_inline()
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: MasterKey = MasterKey::from_bytes([7; crate::srtp::INLINE_LEN]);

    const LINPHONE_OFFER: &str = "v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n\
s=Talk\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\r\n\
m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 useinbandfec=1\r\n\
a=rtpmap:97 speex/16000\r\n\
a=rtpmap:98 speex/8000\r\n\
a=rtpmap:101 telephone-event/48000\r\n\
a=rtpmap:99 telephone-event/16000\r\n\
a=rtpmap:100 telephone-event/8000\r\n\
a=rtcp-fb:* trr-int 1000\r\n";

    #[test]
    fn parses_realistic_offer_and_negotiates() {
        let sd = SessionDescription::parse(LINPHONE_OFFER).unwrap();
        assert_eq!(sd.origin.as_ref().unwrap().session_version, "2890844526");
        let n = negotiate(&sd).unwrap();
        assert_eq!(n.codec, Codec::Pcmu);
        assert_eq!(n.payload_type, 0);
        assert_eq!(n.dtmf_payload_type, Some(100));
        assert_eq!(n.remote, Some("192.0.2.10:7078".parse().unwrap()));
        assert_eq!(n.remote_direction, Direction::SendRecv);
        assert!(!n.is_hold());
    }

    #[test]
    fn prefers_offerer_order_and_media_connection() {
        let sdp = "v=0\no=- 1 2 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\n\
                   m=audio 4000 RTP/AVP 8 0\nc=IN IP4 198.51.100.4\na=ptime:30\na=sendonly\n";
        let n = negotiate(&SessionDescription::parse(sdp).unwrap()).unwrap();
        assert_eq!(n.codec, Codec::Pcma);
        assert_eq!(n.payload_type, 8);
        assert_eq!(n.dtmf_payload_type, None);
        assert_eq!(n.ptime, Some(30));
        assert_eq!(n.remote, Some("198.51.100.4:4000".parse().unwrap()));
        assert_eq!(n.remote_direction, Direction::SendOnly);
        assert!(n.is_hold());
        assert_eq!(n.answer_direction(), Direction::RecvOnly);
        assert_eq!(n.origin, Some(("1".into(), "2".into())));
    }

    #[test]
    fn dynamic_pt_g711_and_session_level_direction() {
        let sdp = "v=0\r\nc=IN IP4 10.1.1.1\r\na=inactive\r\nm=audio 5000 RTP/AVP 112 0\r\n\
                   a=rtpmap:112 pcma/8000/1\r\n";
        let n = negotiate(&SessionDescription::parse(sdp).unwrap()).unwrap();
        assert_eq!((n.codec, n.payload_type), (Codec::Pcma, 112));
        assert_eq!(n.remote_direction, Direction::Inactive);
    }

    #[test]
    fn zero_address_means_hold() {
        let sdp = "v=0\nc=IN IP4 0.0.0.0\nm=audio 5000 RTP/AVP 0\n";
        let n = negotiate(&SessionDescription::parse(sdp).unwrap()).unwrap();
        assert_eq!(n.remote, None);
        assert_eq!(n.remote_direction, Direction::SendOnly);
        assert!(n.is_hold());
        assert_eq!(n.answer_direction(), Direction::RecvOnly);
    }

    #[test]
    fn errors_map_to_sip_statuses() {
        let no_codec = "v=0\nc=IN IP4 10.0.0.1\nm=audio 5000 RTP/AVP 18 9\na=rtpmap:18 G729/8000\n";
        let e = negotiate(&SessionDescription::parse(no_codec).unwrap()).unwrap_err();
        assert_eq!(e, SdpError::NoCommonCodec);
        assert_eq!(e.sip_status(), 488);
        // PCMU remapped to a non-8000 clock is not PCMU.
        let odd = "v=0\nc=IN IP4 10.0.0.1\nm=audio 5000 RTP/AVP 0\na=rtpmap:0 PCMU/16000\n";
        assert_eq!(
            negotiate(&SessionDescription::parse(odd).unwrap()),
            Err(SdpError::NoCommonCodec)
        );
        let video_only = "v=0\nc=IN IP4 10.0.0.1\nm=video 5000 RTP/AVP 96\n";
        let e = negotiate(&SessionDescription::parse(video_only).unwrap()).unwrap_err();
        assert_eq!((e.clone(), e.sip_status()), (SdpError::NoAudio, 488));
        let port0 = "v=0\nc=IN IP4 10.0.0.1\nm=audio 0 RTP/AVP 0\n";
        assert_eq!(
            negotiate(&SessionDescription::parse(port0).unwrap()),
            Err(SdpError::NoAudio)
        );
        let no_c = "v=0\nm=audio 5000 RTP/AVP 0\n";
        assert_eq!(
            negotiate(&SessionDescription::parse(no_c).unwrap()),
            Err(SdpError::NoConnection)
        );
        for bad in [
            "v=1\n",
            "hello\n",
            "v=0\nc=IN IP4 999.1.1.1\n",
            "v=0\nc=IN IP4\n",
            "v=0\nc=XX IP4 1.2.3.4\n",
            "v=0\nm=audio port RTP/AVP 0\n",
            "v=0\nm=audio 70000 RTP/AVP 0\n",
            "v=0\nm=audio 5000 RTP/AVP 0 abc\n",
            "v=0\nm=audio 5000 RTP/AVP 200\n",
            "v=0\nm=audio\n",
            "m=audio 5000 RTP/AVP 0\n",
            "",
        ] {
            let e = SessionDescription::parse(bad).unwrap_err();
            assert_eq!(e.sip_status(), 400, "{bad:?} -> {e}");
        }
        let big = "a".repeat(MAX_SDP_LEN + 1);
        assert!(matches!(
            SessionDescription::parse(&big),
            Err(SdpError::TooLarge(_))
        ));
    }

    #[test]
    fn tolerant_of_unknown_lines_and_ipv6() {
        let sdp = "v=0\r\nx=whatever\r\nb=AS:64\r\nc=IN IP6 2001:db8::1\r\nm=audio 6000 RTP/AVP 0\r\n\
                   a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:xyz\r\na=rtpmap:bogus\r\na=ptime:x\r\n   \r\n";
        let n = negotiate(&SessionDescription::parse(sdp).unwrap()).unwrap();
        assert_eq!(n.remote, Some("[2001:db8::1]:6000".parse().unwrap()));
        assert_eq!(n.ptime, None);
        assert_eq!(n.srtp, None, "an unusable key is no crypto");
    }

    const BARESIP_SAVP: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
        m=audio 10000 RTP/SAVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n\
        a=crypto:1 AEAD_AES_256_GCM inline:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n\
        a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20\r\n\
        a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n";

    #[test]
    fn sdes_offer_first_supported_suite_and_our_own_key_in_the_answer() {
        let sd = SessionDescription::parse(BARESIP_SAVP).unwrap();
        let audio = sd.first_audio().unwrap();
        assert_eq!(audio.crypto.len(), 2, "GCM skipped");
        let n = negotiate(&sd).unwrap();
        assert_eq!(n.profile, Profile::Savp);
        let c = n.srtp.unwrap();
        assert_eq!((c.tag, c.suite), (2, Suite::AesCm128HmacSha1_32));
        assert_eq!(
            c.key,
            MasterKey::from_inline("WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz").unwrap()
        );
        let ours = MasterKey::random();
        let mut session = LocalSession::new("192.0.2.1".parse().unwrap());
        let a = build_answer(&mut session, 30000, &n, Direction::SendRecv, &ours);
        assert!(a.contains("m=audio 30000 RTP/SAVP 0 101\r\n"), "{a}");
        assert!(
            a.contains(&format!(
                "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{}\r\n",
                ours.to_inline()
            )),
            "{a}"
        );
        assert!(!a.contains("WVNfX19z"), "never their key: {a}");
        assert_eq!(a.matches("a=crypto").count(), 1);
        // Our answer negotiates back to our key.
        let back = negotiate(&SessionDescription::parse(&a).unwrap()).unwrap();
        assert_eq!(back.srtp.map(|c| c.key), Some(ours));
        // The key never shows in Debug output.
        assert!(!format!("{n:?}").contains("WVNfX19z"));
    }

    #[test]
    fn savp_without_usable_crypto_is_refused_with_488() {
        for crypto in [
            "",
            "a=crypto:1 AEAD_AES_128_GCM inline:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:short\n",
            // MKI, several keys, session parameters we cannot honour.
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA|2^20|1:4\n",
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA;inline:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA UNENCRYPTED_SRTP\n",
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA KDR=10\n",
            "a=crypto:x AES_CM_128_HMAC_SHA1_80 inline:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
        ] {
            for proto in ["RTP/SAVP", "RTP/SAVPF", "rtp/savp"] {
                let sdp = format!("v=0\nc=IN IP4 10.0.0.1\nm=audio 5000 {proto} 0\n{crypto}");
                let e = negotiate(&SessionDescription::parse(&sdp).unwrap()).unwrap_err();
                assert_eq!((e.clone(), e.sip_status()), (SdpError::NoCommonCrypto, 488), "{sdp}");
            }
        }
        let ok = "a=crypto:7 AES_CM_128_HMAC_SHA1_80 inline:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA|2^31 WSH=64 KDR=0\n";
        let sdp = format!("v=0\nc=IN IP4 10.0.0.1\nm=audio 5000 RTP/SAVPF 0\n{ok}");
        let n = negotiate(&SessionDescription::parse(&sdp).unwrap()).unwrap();
        assert_eq!((n.profile, n.srtp.unwrap().tag), (Profile::Savpf, 7));
        // DTLS-SRTP and other transports are not ours.
        let dtls = "v=0\nc=IN IP4 10.0.0.1\nm=audio 5000 UDP/TLS/RTP/SAVP 0\n";
        let e = negotiate(&SessionDescription::parse(dtls).unwrap()).unwrap_err();
        assert_eq!(e.sip_status(), 488);
        assert!(matches!(e, SdpError::UnsupportedTransport(_)));
    }

    #[test]
    fn best_effort_crypto_on_avp_is_answered_on_avp() {
        let sdp = "v=0\nc=IN IP4 10.0.0.1\nm=audio 5000 RTP/AVP 8\n\
                   a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n";
        let n = negotiate(&SessionDescription::parse(sdp).unwrap()).unwrap();
        assert_eq!(n.profile, Profile::Avp);
        assert!(n.srtp.is_some());
        let mut ours = LocalSession::new("192.0.2.1".parse().unwrap());
        let a = build_answer(&mut ours, 4000, &n, Direction::SendRecv, &KEY);
        assert!(a.contains("m=audio 4000 RTP/AVP 8\r\n"), "{a}");
        assert!(
            a.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"),
            "{a}"
        );
        // Plain offers get plain answers.
        let plain = negotiate(&SessionDescription::parse(LINPHONE_OFFER).unwrap()).unwrap();
        let a = build_answer(&mut ours, 4000, &plain, Direction::SendRecv, &KEY);
        assert!(!a.contains("crypto"), "{a}");
    }

    #[test]
    fn srtp_offer() {
        let key = MasterKey::random();
        let mut ours = LocalSession::new("192.0.2.1".parse().unwrap());
        let o = build_offer(&mut ours, 20000, Direction::SendRecv, Some(&key));
        assert!(o.contains("m=audio 20000 RTP/SAVP 0 8 101\r\n"), "{o}");
        assert!(o.contains(&format!(
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{}\r\n",
            key.to_inline()
        )));
        let n = negotiate(&SessionDescription::parse(&o).unwrap()).unwrap();
        assert_eq!(n.srtp.map(|c| c.suite_key().key), Some(key));
    }

    #[test]
    fn answer_mirrors_direction_and_keeps_offerer_pts() {
        let sd = SessionDescription::parse(LINPHONE_OFFER).unwrap();
        let n = negotiate(&sd).unwrap();
        let mut ours = LocalSession::new("203.0.113.9".parse().unwrap());
        let a = build_answer(&mut ours, 30000, &n, Direction::SendRecv, &KEY);
        assert!(a.contains("c=IN IP4 203.0.113.9\r\n"), "{a}");
        assert!(a.contains("m=audio 30000 RTP/AVP 0 100\r\n"), "{a}");
        assert!(a.contains("a=rtpmap:0 PCMU/8000\r\n"));
        assert!(a.contains("a=rtpmap:100 telephone-event/8000\r\na=fmtp:100 0-16\r\n"));
        assert!(a.contains("a=sendrecv\r\n"));
        let v1 = ours.version();
        // The answer parses back and negotiates to the same codec.
        let back = negotiate(&SessionDescription::parse(&a).unwrap()).unwrap();
        assert_eq!((back.codec, back.payload_type), (Codec::Pcmu, 0));
        assert_eq!(back.dtmf_payload_type, Some(100));

        for (offer_dir, local, expected) in [
            ("sendonly", Direction::SendRecv, "recvonly"),
            ("recvonly", Direction::SendRecv, "sendonly"),
            ("inactive", Direction::SendRecv, "inactive"),
            ("sendrecv", Direction::SendOnly, "sendonly"),
            ("recvonly", Direction::RecvOnly, "inactive"),
        ] {
            let sdp = format!("v=0\nc=IN IP4 10.0.0.2\nm=audio 5000 RTP/AVP 8\na={offer_dir}\n");
            let n = negotiate(&SessionDescription::parse(&sdp).unwrap()).unwrap();
            let a = build_answer(&mut ours, 30000, &n, local, &KEY);
            assert!(a.contains(&format!("a={expected}\r\n")), "{offer_dir}: {a}");
            assert!(a.contains("m=audio 30000 RTP/AVP 8\r\n"), "{a}");
            assert!(!a.contains("telephone-event"));
        }
        // Version increments on every re-answer, id stays.
        assert_eq!(ours.version(), v1 + 5);
        assert!(
            build_answer(&mut ours, 1, &n, Direction::SendRecv, &KEY).contains(&format!(
                "o=permanence {} {} IN IP4",
                ours.session_id(),
                v1 + 6
            ))
        );
    }

    #[test]
    fn offer_content_and_reoffer_version() {
        let mut ours = LocalSession::new("192.0.2.1".parse().unwrap());
        let o1 = build_offer(&mut ours, 20000, Direction::SendRecv, None);
        let v1 = ours.version();
        assert!(o1.contains("m=audio 20000 RTP/AVP 0 8 101\r\n"), "{o1}");
        assert!(o1.contains("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"));
        assert!(o1.contains("a=ptime:20\r\na=sendrecv\r\n"));
        let sd = SessionDescription::parse(&o1).unwrap();
        assert_eq!(sd.origin.as_ref().unwrap().session_version, v1.to_string());
        let o2 = build_offer(&mut ours, 20000, Direction::SendOnly, None);
        assert!(o2.contains("a=sendonly\r\n"));
        let sd2 = SessionDescription::parse(&o2).unwrap();
        assert_eq!(
            sd2.origin.as_ref().unwrap().session_version,
            (v1 + 1).to_string()
        );
        assert_eq!(
            sd2.origin.as_ref().unwrap().session_id,
            sd.origin.as_ref().unwrap().session_id
        );
        let n = negotiate(&sd).unwrap();
        assert_eq!((n.codec, n.dtmf_payload_type), (Codec::Pcmu, Some(101)));
    }

    fn sdp_line() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("v=0".to_owned()),
            Just("m=audio 4000 RTP/AVP 0 8 101".to_owned()),
            Just("c=IN IP4 0.0.0.0".to_owned()),
            Just("c=IN IP4 10.0.0.1".to_owned()),
            Just("a=rtpmap:101 telephone-event/8000".to_owned()),
            Just("a=sendonly".to_owned()),
            Just("m=audio 4000 RTP/SAVP 0".to_owned()),
            Just("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned()),
            "a=crypto:[0-9]{0,3} [A-Z_0-9]{0,24} inline:[A-Za-z0-9+/=|^:]{0,50}( [ -~]{0,10})?",
            "[a-z]=[ -~]{0,40}",
            "m=[a-z]{0,6} [0-9]{0,6} [A-Z/]{0,8}( [0-9]{1,4}){0,4}",
            "a=(rtpmap|fmtp|ptime):[ -~]{0,30}",
            "c=IN IP[46] [0-9a-f.:]{0,20}",
            "\\PC{0,30}",
        ]
    }

    proptest! {
        #[test]
        fn garbage_never_panics(s in "\\PC{0,300}") {
            if let Ok(sd) = SessionDescription::parse(&s) {
                let _ = negotiate(&sd);
            }
        }

        #[test]
        fn structured_garbage_never_panics(
            lines in proptest::collection::vec(sdp_line(), 0..20),
            crlf in any::<bool>(),
        ) {
            let text = lines.join(if crlf { "\r\n" } else { "\n" });
            if let Ok(sd) = SessionDescription::parse(&text) {
                if let Ok(n) = negotiate(&sd) {
                    let mut ours = LocalSession::new("127.0.0.1".parse().unwrap());
                    let a = build_answer(&mut ours, 1234, &n, Direction::SendRecv, &KEY);
                    let back = negotiate(&SessionDescription::parse(&a).unwrap()).unwrap();
                    prop_assert_eq!(back.codec, n.codec);
                    prop_assert_eq!(back.dtmf_payload_type, n.dtmf_payload_type);
                    prop_assert_eq!(back.profile, n.profile);
                    prop_assert_eq!(back.srtp.map(|c| (c.tag, c.suite, c.key)), n.srtp.map(|c| (c.tag, c.suite, KEY)));
                }
            }
        }
    }
}
