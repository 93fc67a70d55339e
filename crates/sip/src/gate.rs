//! The gate: what a source that is not a trunk may send, decided before any
//! parsing beyond the first lines and before any transaction exists (the
//! approach of Kamailio's `pike` and `sl` modules).
//!
//! - **Per-source rate**: every datagram from an untrusted address spends a
//!   token of that address's bucket (`source_rate` per second, bursts of
//!   `source_burst`). Without a token it is dropped.
//! - **Bans**: a source that keeps sending over its rate (`ban_after`
//!   datagrams dropped in a row of over-rate periods) is banned for
//!   `ban_for`, doubled for each new ban within an hour (at most 64 times):
//!   everything it sends is dropped unread. One event per ban, not per
//!   packet.
//! - **Global budget**: requests from untrusted sources that would reach
//!   the transaction layer (those carrying credentials, and in-dialog
//!   requests) share `total_rate` per second, so that no number of sources
//!   can load the stack beyond it; trunks never count.
//! - **Stateless answers** ([`Disposition`]): an out-of-dialog INVITE
//!   without `Proxy-Authorization` gets a 407 challenge, a REGISTER without
//!   `Authorization` a 401, an OPTIONS a 200, all built and sent without a
//!   transaction; the ACK of such a response is dropped.
//!
//! [`Gate`] is the pure state machine (time is passed in); the UDP socket
//! adapter in [`crate::guard`] applies it. Memory is bounded: at most
//! `max_sources` addresses are tracked; idle ones are forgotten.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// The gate's limits.
#[derive(Debug, Clone, PartialEq)]
pub struct GateSettings {
    /// Datagrams per second an untrusted source may send, sustained.
    pub source_rate: f64,
    /// Datagrams an untrusted source may send in a burst.
    pub source_burst: f64,
    /// Datagrams dropped over the rate before the source is banned.
    pub ban_after: u32,
    /// First ban length (doubled for each new ban within an hour).
    pub ban_for: Duration,
    /// Requests per second from all untrusted sources together that may
    /// reach the transaction layer.
    pub total_rate: f64,
    /// Burst of the global budget.
    pub total_burst: f64,
    /// Most source addresses tracked at once.
    pub max_sources: usize,
}

impl Default for GateSettings {
    fn default() -> Self {
        Self {
            source_rate: 20.0,
            source_burst: 60.0,
            ban_after: 200,
            ban_for: Duration::from_secs(60),
            total_rate: 300.0,
            total_burst: 600.0,
            max_sources: 100_000,
        }
    }
}

/// What the first lines of a datagram say (cheap to extract).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A response.
    Response,
    /// A request: its method, whether it is out of dialog (no To tag),
    /// whether it carries credentials, and whether its To tag is one of
    /// our stateless responses' (an ACK of them).
    Request {
        /// The method.
        method: Method,
        /// No To tag: a new dialog or a standalone request.
        out_of_dialog: bool,
        /// `Authorization` or `Proxy-Authorization` present.
        credentials: bool,
        /// Its To tag is one of the gate's stateless responses'.
        stateless_tag: bool,
    },
    /// Keep-alive or anything else the stack judges.
    Other,
}

/// The methods the gate treats apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// INVITE.
    Invite,
    /// REGISTER.
    Register,
    /// OPTIONS.
    Options,
    /// ACK.
    Ack,
    /// Any other.
    Other,
}

impl Method {
    /// The method of a request line's first token.
    pub fn parse(token: &str) -> Self {
        match token {
            "INVITE" => Method::Invite,
            "REGISTER" => Method::Register,
            "OPTIONS" => Method::Options,
            "ACK" => Method::Ack,
            _ => Method::Other,
        }
    }
}

/// What to do with a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Hand it to the stack.
    Pass,
    /// Drop it unanswered.
    Drop(DropReason),
    /// Answer 407 with a fresh challenge, statelessly.
    Challenge407,
    /// Answer 401 with a fresh challenge, statelessly.
    Challenge401,
    /// Answer 200 (OPTIONS), statelessly.
    Options200,
}

/// Why the gate dropped a datagram (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The source is banned.
    Banned,
    /// The source is over its rate.
    Rate,
    /// Untrusted sources together are over the global budget.
    Budget,
    /// The ACK of one of our stateless responses.
    StatelessAck,
}

impl DropReason {
    /// Every reason, in label order.
    pub const ALL: [DropReason; 4] = [
        DropReason::Banned,
        DropReason::Rate,
        DropReason::Budget,
        DropReason::StatelessAck,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Banned => "banned",
            DropReason::Rate => "rate",
            DropReason::Budget => "budget",
            DropReason::StatelessAck => "stateless_ack",
        }
    }
}

/// Something worth a log line and a metric.
#[derive(Debug, Clone, PartialEq)]
pub enum GateEvent {
    /// `source` is banned for `duration` after `dropped` datagrams over its
    /// rate.
    Banned {
        /// The address.
        source: IpAddr,
        /// How long.
        duration: Duration,
        /// Datagrams dropped over the rate before the ban.
        dropped: u64,
    },
}

/// A token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Duration,
}

impl Bucket {
    fn full(burst: f64, now: Duration) -> Self {
        Self {
            tokens: burst,
            at: now,
        }
    }

    /// Refills, then takes a token if there is one.
    fn take(&mut self, rate: f64, burst: f64, now: Duration) -> bool {
        let elapsed = now.saturating_sub(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug, Clone)]
struct Source {
    bucket: Bucket,
    /// Datagrams dropped over the rate since the source last had tokens.
    over: u64,
    banned_until: Option<Duration>,
    /// Bans in the last hour (the next one lasts `ban_for << bans`).
    bans: u32,
    last_ban: Option<Duration>,
    last_seen: Duration,
}

/// The gate's state. `now` is a monotonic time since any origin.
#[derive(Debug)]
pub struct Gate {
    settings: GateSettings,
    sources: HashMap<IpAddr, Source>,
    budget: Bucket,
    events: Vec<GateEvent>,
    /// Inserts since the last sweep of idle sources.
    inserts: usize,
}

impl Gate {
    /// A gate with `settings`.
    pub fn new(settings: GateSettings) -> Self {
        let budget = Bucket::full(settings.total_burst, Duration::ZERO);
        Self {
            settings,
            sources: HashMap::new(),
            budget,
            events: Vec::new(),
            inserts: 0,
        }
    }

    /// Replaces the limits (reload); tracked sources and bans are kept.
    pub fn set_settings(&mut self, settings: GateSettings) {
        self.settings = settings;
    }

    /// Whether `source` is banned at `now` (checked before anything is
    /// read from the datagram).
    pub fn is_banned(&self, source: IpAddr, now: Duration) -> bool {
        self.sources
            .get(&source)
            .and_then(|s| s.banned_until)
            .is_some_and(|until| now < until)
    }

    /// Decides what to do with a datagram of `kind` from `source`;
    /// `trusted` sources (trunks) always pass.
    pub fn admit(
        &mut self,
        source: IpAddr,
        trusted: bool,
        kind: Kind,
        now: Duration,
    ) -> Disposition {
        if trusted {
            return Disposition::Pass;
        }
        if let Some(reason) = self.spend_source(source, now) {
            return Disposition::Drop(reason);
        }
        match kind {
            Kind::Request {
                stateless_tag: true,
                method: Method::Ack,
                ..
            } => Disposition::Drop(DropReason::StatelessAck),
            Kind::Request {
                method: Method::Invite,
                out_of_dialog: true,
                credentials: false,
                ..
            } => Disposition::Challenge407,
            Kind::Request {
                method: Method::Register,
                credentials: false,
                ..
            } => Disposition::Challenge401,
            Kind::Request {
                method: Method::Options,
                out_of_dialog: true,
                ..
            } => Disposition::Options200,
            Kind::Request { .. } => {
                let s = &self.settings;
                if self.budget.take(s.total_rate, s.total_burst, now) {
                    Disposition::Pass
                } else {
                    Disposition::Drop(DropReason::Budget)
                }
            }
            Kind::Response | Kind::Other => Disposition::Pass,
        }
    }

    /// The next event to log and count.
    pub fn poll_event(&mut self) -> Option<GateEvent> {
        self.events.pop()
    }

    /// Number of addresses tracked.
    pub fn tracked(&self) -> usize {
        self.sources.len()
    }

    /// Number of addresses banned at `now`.
    pub fn banned(&self, now: Duration) -> usize {
        self.sources
            .values()
            .filter(|s| s.banned_until.is_some_and(|u| now < u))
            .count()
    }

    /// Spends a token of `source`; `Some(reason)` if it must be dropped.
    fn spend_source(&mut self, source: IpAddr, now: Duration) -> Option<DropReason> {
        if !self.sources.contains_key(&source) && !self.make_room(now) {
            // Table full of active sources: only the global budget applies.
            let s = &self.settings;
            return (!self.budget.take(s.total_rate, s.total_burst, now))
                .then_some(DropReason::Budget);
        }
        let settings = &self.settings;
        let entry = self.sources.entry(source).or_insert_with(|| Source {
            bucket: Bucket::full(settings.source_burst, now),
            over: 0,
            banned_until: None,
            bans: 0,
            last_ban: None,
            last_seen: now,
        });
        entry.last_seen = now;
        if let Some(until) = entry.banned_until {
            if now < until {
                return Some(DropReason::Banned);
            }
            entry.banned_until = None;
            entry.over = 0;
        }
        if entry
            .bucket
            .take(settings.source_rate, settings.source_burst, now)
        {
            entry.over = 0;
            return None;
        }
        entry.over += 1;
        if entry.over >= u64::from(settings.ban_after) {
            if entry
                .last_ban
                .is_some_and(|t| now.saturating_sub(t) > Duration::from_secs(3600))
            {
                entry.bans = 0;
            }
            let duration = settings.ban_for.saturating_mul(1 << entry.bans.min(6));
            entry.bans = entry.bans.saturating_add(1);
            entry.last_ban = Some(now);
            entry.banned_until = Some(now + duration);
            self.events.push(GateEvent::Banned {
                source,
                duration,
                dropped: entry.over,
            });
            entry.over = 0;
        }
        Some(DropReason::Rate)
    }

    /// Makes room for one more source: forgets sources idle for a minute
    /// (and not banned) when the table is full or every 10,000 new
    /// sources. False if the table is still full.
    fn make_room(&mut self, now: Duration) -> bool {
        self.inserts += 1;
        if self.sources.len() >= self.settings.max_sources || self.inserts >= 10_000 {
            self.inserts = 0;
            self.sources.retain(|_, s| {
                s.banned_until.is_some_and(|u| now < u)
                    || now.saturating_sub(s.last_seen) < Duration::from_secs(60)
            });
        }
        self.sources.len() < self.settings.max_sources
    }
}

/// Whether a datagram would start new work in the stack: an INVITE out of
/// any dialog, a REGISTER or an OPTIONS. What an overloaded engine refuses
/// (responses, ACK, CANCEL, BYE and every in-dialog request still pass, so
/// calls in progress can end).
pub fn is_new_work(kind: &Kind) -> bool {
    match kind {
        Kind::Request {
            method: Method::Invite,
            out_of_dialog,
            ..
        } => *out_of_dialog,
        Kind::Request {
            method: Method::Register | Method::Options,
            ..
        } => true,
        _ => false,
    }
}

/// Reads what the gate needs from a datagram's first lines: the start line,
/// the To header's tag, and whether credentials are present. Never fails:
/// what it cannot read is [`Kind::Other`] (the syntax check decides).
pub fn classify(buf: &[u8]) -> Kind {
    let head_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(buf.len().min(4096));
    let Some(Ok(head)) = buf.get(..head_end).map(std::str::from_utf8) else {
        return Kind::Other;
    };
    let mut lines = head.lines();
    let Some(start) = lines.next() else {
        return Kind::Other;
    };
    if start.starts_with("SIP/") {
        return Kind::Response;
    }
    let Some(token) = start.split(' ').next().filter(|t| !t.is_empty()) else {
        return Kind::Other;
    };
    let mut out_of_dialog = true;
    let mut credentials = false;
    let mut stateless_tag = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("To") || name == "t" {
            if let Some(tag) = to_tag(value) {
                out_of_dialog = false;
                stateless_tag = is_stateless_tag(tag);
            }
        } else if name.eq_ignore_ascii_case("Authorization")
            || name.eq_ignore_ascii_case("Proxy-Authorization")
        {
            credentials = true;
        }
    }
    Kind::Request {
        method: Method::parse(token),
        out_of_dialog,
        credentials,
        stateless_tag,
    }
}

/// The `tag` parameter of a To header value.
fn to_tag(value: &str) -> Option<&str> {
    let lower = value.to_ascii_lowercase();
    let i = lower.find(";tag=")?;
    let rest = value.get(i + 5..)?;
    let end = rest.find([';', ' ', '>', '\r']).unwrap_or(rest.len());
    rest.get(..end).filter(|t| !t.is_empty())
}

/// Prefix of the To tags of the responses sent without a transaction
/// (malformed requests' errors and the gate's answers).
pub const STATELESS_TAG_PREFIXES: [&str; 2] = ["pg", "sl"];

fn is_stateless_tag(tag: &str) -> bool {
    STATELESS_TAG_PREFIXES.iter().any(|p| tag.starts_with(p))
        && tag.len() == 10
        && tag.bytes().skip(2).all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    fn invite(auth: bool) -> Kind {
        Kind::Request {
            method: Method::Invite,
            out_of_dialog: true,
            credentials: auth,
            stateless_tag: false,
        }
    }

    #[test]
    fn trunks_always_pass_and_strangers_are_challenged_statelessly() {
        let mut g = Gate::new(GateSettings::default());
        for i in 0..10_000 {
            let now = s(f64::from(i) / 10_000.0);
            assert_eq!(g.admit(ip(1), true, invite(false), now), Disposition::Pass);
        }
        assert_eq!(g.tracked(), 0);
        assert_eq!(
            g.admit(ip(2), false, invite(false), s(0.0)),
            Disposition::Challenge407
        );
        let register = Kind::Request {
            method: Method::Register,
            out_of_dialog: true,
            credentials: false,
            stateless_tag: false,
        };
        assert_eq!(
            g.admit(ip(2), false, register, s(0.0)),
            Disposition::Challenge401
        );
        assert_eq!(
            g.admit(ip(2), false, invite(true), s(0.0)),
            Disposition::Pass
        );
    }

    #[test]
    fn a_flooding_source_is_limited_then_banned_once() {
        let settings = GateSettings::default();
        let mut g = Gate::new(settings.clone());
        let mut passed = 0;
        let mut events = Vec::new();
        // 10,000 datagrams per second for 10 s.
        for i in 0..100_000u32 {
            let now = s(f64::from(i) / 10_000.0);
            if !matches!(
                g.admit(ip(9), false, invite(false), now),
                Disposition::Drop(_)
            ) {
                passed += 1;
            }
            events.extend(std::iter::from_fn(|| g.poll_event()));
        }
        // The burst, then the rate until the ban (a few ms in), then
        // nothing: banned for 60 s.
        assert!(passed <= 61, "{passed} passed");
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(g.is_banned(ip(9), s(10.0)));
        assert!(!g.is_banned(ip(9), s(61.0)));
        // Another source is not affected.
        assert_eq!(
            g.admit(ip(10), false, invite(false), s(10.0)),
            Disposition::Challenge407
        );
    }

    #[test]
    fn repeated_bans_grow() {
        let mut g = Gate::new(GateSettings {
            ban_after: 10,
            ..GateSettings::default()
        });
        let mut t = 0.0;
        let mut durations = Vec::new();
        for _ in 0..3 {
            loop {
                t += 0.0001;
                g.admit(ip(9), false, invite(false), s(t));
                if let Some(GateEvent::Banned { duration, .. }) = g.poll_event() {
                    durations.push(duration);
                    break;
                }
            }
            t += durations.last().map_or(0.0, Duration::as_secs_f64) + 1.0;
        }
        assert_eq!(durations, vec![s(60.0), s(120.0), s(240.0)]);
    }

    #[test]
    fn the_global_budget_caps_what_reaches_the_stack() {
        let mut g = Gate::new(GateSettings::default());
        let bye = Kind::Request {
            method: Method::Other,
            out_of_dialog: false,
            credentials: false,
            stateless_tag: false,
        };
        // 5,000 sources, one request each, within 1 s.
        let passed = (0..5_000u32)
            .filter(|i| {
                let src = IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8]);
                g.admit(src, false, bye, s(f64::from(*i) / 5_000.0)) == Disposition::Pass
            })
            .count();
        assert!((600..=910).contains(&passed), "{passed}");
    }

    #[test]
    fn the_table_is_bounded() {
        let mut g = Gate::new(GateSettings {
            max_sources: 100,
            ..GateSettings::default()
        });
        for i in 0..1_000u32 {
            let src = IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8]);
            g.admit(src, false, invite(false), s(f64::from(i) * 0.001));
        }
        assert!(g.tracked() <= 100);
        // Once they are idle, room is made again.
        g.admit(ip(77), false, invite(false), s(120.0));
        assert!(g.tracked() <= 2, "{}", g.tracked());
    }

    #[test]
    fn classify_reads_the_first_lines() {
        let m = b"INVITE sip:x@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:x@h>\r\nProxy-Authorization: Digest x\r\n\r\n";
        assert_eq!(classify(m), invite(true));
        let m = b"ACK sip:x@h SIP/2.0\r\nTo: <sip:x@h>;tag=sl0a1b2c3d\r\n\r\n";
        assert_eq!(
            classify(m),
            Kind::Request {
                method: Method::Ack,
                out_of_dialog: false,
                credentials: false,
                stateless_tag: true,
            }
        );
        let m = b"BYE sip:x@h SIP/2.0\r\nt: <sip:x@h>;tag=abc\r\n\r\n";
        assert!(matches!(
            classify(m),
            Kind::Request {
                out_of_dialog: false,
                stateless_tag: false,
                ..
            }
        ));
        assert_eq!(classify(b"SIP/2.0 200 OK\r\n\r\n"), Kind::Response);
        assert_eq!(classify(&[0xff, 0xfe]), Kind::Other);
        assert_eq!(classify(b""), Kind::Other);
    }

    proptest::proptest! {
        #[test]
        fn classify_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = classify(&bytes);
        }
    }

    #[test]
    fn new_work_is_what_opens_a_dialog_or_a_binding() {
        let new = |m: &[u8]| is_new_work(&classify(m));
        assert!(new(b"INVITE sip:b@h SIP/2.0\r\nTo: <sip:b@h>\r\n\r\n"));
        assert!(!new(
            b"INVITE sip:b@h SIP/2.0\r\nTo: <sip:b@h>;tag=x\r\n\r\n"
        ));
        assert!(new(b"REGISTER sip:h SIP/2.0\r\nTo: <sip:a@h>\r\n\r\n"));
        assert!(new(b"OPTIONS sip:h SIP/2.0\r\nTo: <sip:a@h>\r\n\r\n"));
        for m in [
            &b"BYE sip:b@h SIP/2.0\r\nTo: <sip:b@h>;tag=x\r\n\r\n"[..],
            b"ACK sip:b@h SIP/2.0\r\nTo: <sip:b@h>\r\n\r\n",
            b"CANCEL sip:b@h SIP/2.0\r\nTo: <sip:b@h>\r\n\r\n",
            b"SIP/2.0 200 OK\r\nTo: <sip:b@h>;tag=x\r\n\r\n",
            b"\r\n\r\n",
        ] {
            assert!(!new(m), "{}", String::from_utf8_lossy(m));
        }
    }
}
