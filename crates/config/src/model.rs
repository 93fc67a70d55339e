//! The validated configuration model.
//!
//! Every value here has been checked by [`crate::load`]: addresses parse,
//! references resolve (agents, pools), numbers are E.164, prompt files are
//! 8 kHz mono 16-bit PCM WAV. Durations are [`std::time::Duration`]s; the
//! doc comment of each field names the key it comes from.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use permanence_calendar::{Schedule, Tz};
use permanence_numbers::{normalize, Country, E164};
use permanence_outbound::AllowList;
use permanence_types::{AgentId, PoolId};
pub use permanence_types::{
    AnnouncementMode, DigestAlgorithm, OverflowTarget, Role, RoutingStep, Selector, SrtpPolicy,
    Strategy,
};

use crate::error::{ConfigError, Origin};

/// The whole validated configuration: main file plus practice dialplans.
#[derive(Debug, Clone)]
pub struct Config {
    /// The main file, as given to [`crate::load`].
    pub source: PathBuf,
    /// The dialplans directory (`dialplans_dir`, resolved against the main
    /// file's directory).
    pub dialplans_dir: PathBuf,
    /// `[sip]`: listening sockets, realm, registrar settings.
    pub sip: SipConfig,
    /// `[rtp]`: media address and port range.
    pub rtp: RtpConfig,
    /// `[http]`: the HTTP (status, metrics, admin) listener.
    pub http: HttpConfig,
    /// `[dispatcher]`: call distribution settings.
    pub dispatcher: DispatcherConfig,
    /// `[records]`: call records, voicemail storage, retention.
    pub records: RecordsSettings,
    /// `[outbound]`: calls placed by telesecretaries through the outbound
    /// trunk (default allow-list, limits).
    pub outbound: OutboundSettings,
    /// `[mail]`: the SMTP server voicemail messages are e-mailed through;
    /// `None` when absent (messages are recorded, not e-mailed).
    pub mail: Option<MailSettings>,
    pub(crate) trunks: Vec<Trunk>,
    pub(crate) agents: Vec<Agent>,
    pub(crate) pools: Vec<Pool>,
    pub(crate) practices: Vec<Practice>,
    pub(crate) agent_index: HashMap<String, usize>,
    pub(crate) pool_index: HashMap<String, usize>,
    pub(crate) practice_index: HashMap<String, usize>,
    pub(crate) numbers: HashMap<E164, (usize, NumberKind)>,
    pub(crate) warnings: Vec<ConfigError>,
}

/// How a number reaches a practice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NumberKind {
    /// A number the practice forwards from (`forwarded_from`): found in
    /// `Diversion` / `History-Info` of the incoming INVITE.
    ForwardedFrom,
    /// A number dialled directly (`dids`): found in the Request-URI / `To`.
    Did,
}

impl Config {
    /// The practices, in load order (dialplan files sorted by name).
    pub fn practices(&self) -> &[Practice] {
        &self.practices
    }

    /// A practice by its `id`.
    pub fn practice(&self, id: &str) -> Option<&Practice> {
        self.practice_index
            .get(id)
            .and_then(|&i| self.practices.get(i))
    }

    /// The practice a number belongs to (one of its `forwarded_from`
    /// numbers or DIDs).
    pub fn practice_by_number(&self, number: &E164) -> Option<&Practice> {
        self.number_owner(number).map(|(p, _)| p)
    }

    /// The practice a number belongs to, and whether it is a forwarded-from
    /// number or a DID.
    pub fn number_owner(&self, number: &E164) -> Option<(&Practice, NumberKind)> {
        let &(i, kind) = self.numbers.get(number)?;
        self.practices.get(i).map(|p| (p, kind))
    }

    /// Normalises a raw number or URI (`0450000001`, `tel:+33450000001`,
    /// `sip:+33450000001@carrier;user=phone`, `+33 4 50 00 00 01`) and
    /// finds its practice. National forms are read in each numbering plan
    /// used by a practice (France first), and the first plan that yields a
    /// configured number wins. Returns the practice and the normalised
    /// number.
    pub fn find_practice(&self, raw: &str) -> Option<(&Practice, E164)> {
        let mut plans = vec![Country::Fr];
        for p in &self.practices {
            if !plans.contains(&p.country) {
                plans.push(p.country);
            }
        }
        plans.into_iter().find_map(|c| {
            let n = normalize(raw, c)?;
            self.practice_by_number(&n).map(|p| (p, n))
        })
    }

    /// Every configured number with its practice and kind, sorted by number.
    pub fn numbers(&self) -> Vec<(&E164, &Practice, NumberKind)> {
        let mut v: Vec<_> = self
            .numbers
            .iter()
            .filter_map(|(n, &(i, k))| self.practices.get(i).map(|p| (n, p, k)))
            .collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v
    }

    /// The agents, in file order.
    pub fn agents(&self) -> &[Agent] {
        &self.agents
    }

    /// An agent by SIP user name.
    pub fn agent(&self, username: &str) -> Option<&Agent> {
        self.agent_index
            .get(username)
            .and_then(|&i| self.agents.get(i))
    }

    /// The pools, in file order.
    pub fn pools(&self) -> &[Pool] {
        &self.pools
    }

    /// A pool by id.
    pub fn pool(&self, id: &str) -> Option<&Pool> {
        self.pool_index.get(id).and_then(|&i| self.pools.get(i))
    }

    /// The trunks, in file order.
    pub fn trunks(&self) -> &[Trunk] {
        &self.trunks
    }

    /// The practice whose `outbound.code` is `code` (what an agent dials
    /// after `*8`). Codes are unique across practices (validated).
    pub fn practice_by_code(&self, code: &str) -> Option<&Practice> {
        self.practices
            .iter()
            .find(|p| p.outbound.code.as_deref() == Some(code))
    }

    /// The first trunk that can place outgoing calls (has `outbound`).
    pub fn outbound_trunk(&self) -> Option<&Trunk> {
        self.trunks.iter().find(|t| t.outbound.is_some())
    }

    /// The trunk a packet from `ip` belongs to, if any. IPv4-mapped IPv6
    /// addresses (`::ffff:127.0.0.1`) are matched as IPv4. Trunk sources
    /// never overlap (validated), so at most one trunk matches.
    pub fn trunk_for(&self, ip: IpAddr) -> Option<&Trunk> {
        let ip = ip.to_canonical();
        self.trunks.iter().find(|t| t.contains(ip))
    }

    /// Non-fatal findings (a routing step no agent can satisfy, a trunk open
    /// to any address, ...), in the same located form as errors.
    pub fn warnings(&self) -> &[ConfigError] {
        &self.warnings
    }

    /// Whether `agent` satisfies every criterion of `step` of `practice`:
    /// listed in the practice's `routing.dedicated` when `dedicated = true`,
    /// member of `pool`, `skill` at `min_level` or more, speaks `language`.
    pub fn step_admits(&self, practice: &Practice, step: &RoutingStep, agent: &Agent) -> bool {
        let sel = &step.select;
        if sel.dedicated && !practice.routing.dedicated.contains(&agent.username) {
            return false;
        }
        if let Some(pool) = &sel.pool {
            if !self
                .pool(pool.as_str())
                .is_some_and(|p| p.has(&agent.username))
            {
                return false;
            }
        }
        if let Some(skill) = &sel.skill {
            if agent.skill(skill) < sel.min_level {
                return false;
            }
        }
        if let Some(lang) = &sel.language {
            if !agent.speaks(lang) {
                return false;
            }
        }
        true
    }

    /// The agents that may be offered a call to `practice` that has waited
    /// `waited` in queue: the union of the steps already reached (steps are
    /// cumulative), before any triage requirement. Ignores shifts and
    /// presence, which are run-time state.
    pub fn eligible_agents(&self, practice: &Practice, waited: Duration) -> Vec<&Agent> {
        let steps = practice.routing.active_steps(waited);
        self.agents
            .iter()
            .filter(|a| steps.iter().any(|s| self.step_admits(practice, &s.step, a)))
            .collect()
    }

    /// Whether `agent` serves `practice`: one of the practice's routing
    /// steps, at any wait, admits the agent (see [`Config::step_admits`]).
    /// The overflow pool and triage requirements are not considered, nor
    /// shifts and presence. An agent may place outbound calls only for the
    /// practices it serves.
    pub fn serves(&self, agent: &Agent, practice: &Practice) -> bool {
        practice
            .routing
            .steps
            .iter()
            .any(|s| self.step_admits(practice, &s.step, agent))
    }

    /// Wrap-up time after a call to `practice` answered by `agent`: the
    /// agent's `wrap_up_seconds` if set, else the practice's
    /// `routing.wrap_up_seconds`, else `dispatcher.default_wrap_up_seconds`.
    pub fn wrap_up(&self, agent: &Agent, practice: &Practice) -> Duration {
        agent.wrap_up.unwrap_or(practice.routing.wrap_up)
    }
}

/// `[sip]`.
#[derive(Debug, Clone)]
pub struct SipConfig {
    /// `listen_udp`: UDP sockets to listen on (may be empty if TCP is not).
    /// Port 0 means "any free port": the SIP front must then advertise the
    /// port it actually bound.
    pub listen_udp: Vec<SocketAddr>,
    /// `listen_tcp`: TCP sockets to listen on.
    pub listen_tcp: Vec<SocketAddr>,
    /// `listen_tls`: SIP over TLS sockets to listen on (RFC 3261 §26.2;
    /// usually port 5061).
    pub listen_tls: Vec<SocketAddr>,
    /// `listen_ws`: SIP over WebSocket sockets (RFC 7118, subprotocol
    /// `sip`), for browser softphones and WebRTC SIP clients. Plain `ws:`
    /// is only for 127.0.0.1 (a browser's secure context); use
    /// `listen_wss` anywhere else.
    pub listen_ws: Vec<SocketAddr>,
    /// `listen_wss`: SIP over secure WebSocket sockets (TLS with the
    /// certificate of `[sip.tls]`).
    pub listen_wss: Vec<SocketAddr>,
    /// `[sip.tls]`: the certificate of the TLS listeners.
    pub tls: TlsFiles,
    /// `realm`: the digest authentication realm.
    pub realm: String,
    /// `public_host`: host (IP or DNS name, no port, IPv6 without brackets)
    /// advertised in Contact / Via; defaults to the IP of the first listen
    /// socket (UDP first), which must then not be unspecified.
    pub public_host: String,
    /// `user_agent`: the `User-Agent` / `Server` header value (default
    /// `Permanence`; empty: no such header, the product is not named).
    pub user_agent: String,
    /// `[sip.registrar]`.
    pub registrar: RegistrarConfig,
    /// `[sip.limits]`.
    pub limits: SipLimits,
}

/// `[sip.limits]`: what a source that is not a trunk may send before the
/// gate drops it (see `permanence_sip::gate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipLimits {
    /// `source_rate` (default 20, 1..=10000): datagrams per second an
    /// untrusted address may send, sustained.
    pub source_rate: u32,
    /// `source_burst` (default 60, 1..=100000): datagrams it may send in a
    /// burst.
    pub source_burst: u32,
    /// `ban_after` (default 200, 1..=1000000): datagrams dropped over the
    /// rate before the address is banned.
    pub ban_after: u32,
    /// `ban_seconds` (default 60, 1..=86400): first ban length, doubled for
    /// each new ban of the same address within an hour.
    pub ban_for: Duration,
    /// `total_rate` (default 300, 1..=100000): requests per second all
    /// untrusted sources together may bring to the transaction layer.
    pub total_rate: u32,
    /// `trusted`: networks exempt from the gate (for example the office LAN
    /// of the telesecretaries); trunks always are.
    pub trusted: Vec<IpNet>,
    /// `max_connections` (default 1024, 1..=1000000): TCP and TLS
    /// connections open at once, all sources together. The engine lowers it
    /// to half its descriptor limit (`ulimit -n`) so that RTP sockets, the
    /// database and the HTTP server always find descriptors.
    pub max_connections: u32,
    /// `max_connections_per_source` (default 16, 1..=100000): connections
    /// one untrusted address may hold open; trunks and `trusted` networks
    /// are exempt.
    pub max_connections_per_source: u32,
    /// `idle_seconds` (default 120, 1..=86400): a connection of an untrusted
    /// source that brings no complete SIP message (or CRLF keep-alive) for
    /// this long is closed.
    pub idle: Duration,
    /// `max_calls` (default 2000, 1..=1000000): forwarded calls in progress
    /// at once (greeting, triage, queue, ringing, talking). A call arriving
    /// beyond it is refused with 503 and recorded as rejected (`overload`),
    /// so that the carrier can route it elsewhere.
    pub max_calls: u32,
    /// `max_heap_mb` (default 2048, 1..=1048576): memory the engine may
    /// hold (its heap, `permanence_memory_heap_bytes`). Beyond it, new
    /// INVITE, REGISTER and OPTIONS requests get a 503 at the door, before
    /// any transaction is created; requests within dialogs (BYE, re-INVITE,
    /// ACK, CANCEL) still go through, so calls in progress can end. Memory
    /// stays bounded under floods and overload. The engine itself holds a
    /// few MB at rest: a cap below that refuses all new work.
    pub max_heap_mb: u32,
}

impl Default for SipLimits {
    fn default() -> Self {
        Self {
            source_rate: 20,
            source_burst: 60,
            ban_after: 200,
            ban_for: Duration::from_secs(60),
            total_rate: 300,
            trusted: Vec::new(),
            max_connections: 1024,
            max_connections_per_source: 16,
            idle: Duration::from_secs(120),
            max_calls: 2000,
            max_heap_mb: 2048,
        }
    }
}

/// `[sip.tls]`: where the TLS certificate and key are (PEM). Relative paths
/// are taken from the working directory, like `records.path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// `cert` (default `data/tls/cert.pem`): the certificate chain.
    pub cert: PathBuf,
    /// `key` (default `data/tls/key.pem`): the private key (PKCS#8).
    pub key: PathBuf,
    /// Whether neither `cert` nor `key` is configured: the engine then
    /// creates a self-signed certificate at the default paths when they do
    /// not exist yet.
    pub self_signed: bool,
}

impl Default for TlsFiles {
    fn default() -> Self {
        Self {
            cert: PathBuf::from("data/tls/cert.pem"),
            key: PathBuf::from("data/tls/key.pem"),
            self_signed: true,
        }
    }
}

impl SipLimits {
    /// Whether `ip` is in a trusted network.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted.iter().any(|n| n.contains(&ip))
    }
}

/// `[sip.registrar]`: REGISTER handling and contact qualification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// `min_expires` (seconds, default 60): shorter requests get
    /// `423 Interval Too Brief`.
    pub min_expires: u32,
    /// `max_expires` (seconds, default 3600): longer requests are capped.
    pub max_expires: u32,
    /// `default_expires` (seconds, default 600): used when the REGISTER
    /// gives none.
    pub default_expires: u32,
    /// `nonce_ttl_seconds` (default 300): lifetime of a digest nonce.
    pub nonce_ttl: Duration,
    /// `qualify_interval_seconds` (default 30): OPTIONS ping period for
    /// registered contacts; `None` when set to 0 (disabled).
    pub qualify_interval: Option<Duration>,
    /// `qualify_timeout_seconds` (default 5): a contact that does not answer
    /// an OPTIONS ping within this time is considered unreachable.
    pub qualify_timeout: Duration,
    /// `algorithms` (default `["SHA-256", "MD5"]`): the digest algorithms
    /// offered in challenges, most preferred first (RFC 8760). Softphones
    /// that only read the first challenge and only know MD5 (SIPp, some
    /// older phones) need `"MD5"` first.
    pub algorithms: Vec<DigestAlgorithm>,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        Self {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 600,
            nonce_ttl: Duration::from_secs(300),
            qualify_interval: Some(Duration::from_secs(30)),
            qualify_timeout: Duration::from_secs(5),
            algorithms: vec![DigestAlgorithm::Sha256, DigestAlgorithm::Md5],
        }
    }
}

/// `[rtp]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpConfig {
    /// `bind`: the IP media sockets bind to.
    pub bind: IpAddr,
    /// `advertise`: the IP written in SDP (`c=`); defaults to `bind`, never
    /// unspecified (`0.0.0.0` / `::`).
    pub advertise: IpAddr,
    /// `port_min`: first port of the range, even (an RTP port; RTCP uses
    /// the next odd port).
    pub port_min: u16,
    /// `port_max`: last port of the range, odd.
    pub port_max: u16,
    /// `probation_packets` (1-20, default 3): packets in sequence a media
    /// source must send before a call leg accepts its audio and sends
    /// there; only the SDP address or the SIP signalling source can be
    /// learnt, and once learnt a leg refuses every other source.
    pub probation_packets: u8,
}

impl RtpConfig {
    /// Default of `probation_packets` (40 ms of audio dropped at the start
    /// of a stream).
    pub const DEFAULT_PROBATION: u8 = 3;

    /// The even RTP ports of the range (each with its RTCP port + 1).
    pub fn rtp_ports(&self) -> impl Iterator<Item = u16> + '_ {
        (self.port_min..self.port_max).step_by(2)
    }

    /// How many RTP/RTCP port pairs the range holds (one per media leg).
    pub fn pair_count(&self) -> usize {
        (usize::from(self.port_max) + 1).saturating_sub(usize::from(self.port_min)) / 2
    }
}

/// `[http]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// `listen`: the HTTP listener socket.
    pub listen: SocketAddr,
    /// `admin_token`: a shared bearer token with the admin role
    /// (`Authorization: Bearer <token>`), kept for the demo; real
    /// deployments name their users in `[[http.users]]`.
    pub admin_token: Option<String>,
    /// `[[http.users]]`: named users of the admin API, each with a role and
    /// the SHA-256 of their token (`permanence new-token` makes one).
    pub users: Vec<HttpUser>,
    /// `tls = true`: serve HTTPS, with the certificate of `[sip.tls]` (a
    /// self-signed one is created at first start without it).
    pub tls: bool,
    /// `console_session_minutes`: a telesecretary's web console session
    /// ends this long after login, used or not (5..=1440, default 600);
    /// it also ends after an hour without a request.
    pub console_session: Duration,
}

impl HttpConfig {
    /// Default of `console_session_minutes` (a ten-hour shift).
    pub const DEFAULT_CONSOLE_SESSION_MINUTES: u32 = 600;
}

/// One `[[http.users]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUser {
    /// `name`, unique (written in the audit log).
    pub name: String,
    /// `role`: `viewer`, `supervisor` or `admin`.
    pub role: Role,
    /// `token_sha256`: lowercase hex SHA-256 of the user's bearer token
    /// (the token itself is never stored).
    pub token_sha256: String,
    /// `revoked = true`: the token is refused (kept for the record).
    pub revoked: bool,
}

/// `[records]`: where call records and voicemail messages go, and for how
/// long (RGPD). Paths are relative to the working directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordsSettings {
    /// `path` (default `data/permanence.db`): the SQLite file.
    pub path: PathBuf,
    /// `retention_days` (default 365, 1..=3650): rows older are purged.
    pub retention: Duration,
    /// `audit_retention_days` (default 365, 1..=3650): audit entries older
    /// are purged.
    pub audit_retention: Duration,
    /// `hash_callers` (default false): store `sha256(salt || number)`
    /// instead of caller numbers in call records.
    pub hash_callers: bool,
    /// `salt`: required (non-empty) when `hash_callers` is true.
    pub salt: String,
    /// `voicemail_dir` (default `data/voicemail`): voicemail WAVs, one
    /// directory per practice.
    pub voicemail_dir: PathBuf,
    /// `voicemail_max_seconds` (default 120, 10..=600): longest message.
    pub voicemail_max: Duration,
}

impl Default for RecordsSettings {
    fn default() -> Self {
        Self {
            path: PathBuf::from("data/permanence.db"),
            retention: Duration::from_secs(365 * 86_400),
            audit_retention: Duration::from_secs(365 * 86_400),
            hash_callers: false,
            salt: String::new(),
            voicemail_dir: PathBuf::from("data/voicemail"),
            voicemail_max: Duration::from_secs(120),
        }
    }
}

/// `[mail]`: the SMTP server the voicemail messages are e-mailed through,
/// and how failed deliveries are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailSettings {
    /// `server`: host name or IP address of the SMTP server.
    pub server: String,
    /// `port` (default 587, submission with STARTTLS).
    pub port: u16,
    /// `starttls` (default `required`).
    pub starttls: StartTls,
    /// `username`, with `password` or `password_file`: SMTP AUTH; `None`:
    /// no authentication.
    pub username: Option<String>,
    /// `password` or `password_file`.
    pub password: Option<MailPassword>,
    /// `from`: the sender address (`permanence@telesecretariat.example`).
    pub from: String,
    /// `retry_seconds` (default `[60, 300, 900, 1800, 3600]`): the wait
    /// after the 1st, 2nd... failed attempt; the last one repeats.
    pub retry: Vec<Duration>,
    /// `expire_hours` (default 72, 1..=720): a message still undelivered
    /// after that is given up (counted `expired`; its WAV stays on disk).
    pub expire_after: Duration,
    /// `timeout_seconds` (default 30, 1..=300): one SMTP attempt at most.
    pub timeout: Duration,
}

/// `mail.starttls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartTls {
    /// `required`: no message without TLS (the certificate is checked).
    Required,
    /// `opportunistic`: TLS when the server offers it, else in clear.
    Opportunistic,
    /// `off`: in clear (a local relay only).
    Off,
}

/// Where the SMTP password is. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub enum MailPassword {
    /// `password`: in the main file.
    Inline(String),
    /// `password_file`: read at start-up (relative to the working
    /// directory), trailing newline removed.
    File(PathBuf),
}

impl std::fmt::Debug for MailPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MailPassword::Inline(_) => f.write_str("Inline(<redacted>)"),
            MailPassword::File(p) => f.debug_tuple("File").field(p).finish(),
        }
    }
}

/// `[dispatcher]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatcherConfig {
    /// `strategy` (default `longest-idle`).
    pub strategy: Strategy,
    /// `max_no_answer_strikes` (default 3): consecutive unanswered offers
    /// after which an agent is made unavailable.
    pub max_no_answer_strikes: u32,
    /// `busy_backoff_seconds` (default 10): how long an agent that answered
    /// busy is skipped.
    pub busy_backoff: Duration,
    /// `no_answer_backoff_seconds` (default 10): how long an agent that let
    /// an offer ring out is skipped (so the call is not offered straight
    /// back to them).
    pub no_answer_backoff: Duration,
    /// `default_ring_timeout_seconds` (default 20): ring time of an offer
    /// when the practice sets none.
    pub default_ring_timeout: Duration,
    /// `default_wrap_up_seconds` (default 30): wrap-up time when neither the
    /// practice nor the agent sets one.
    pub default_wrap_up: Duration,
    /// `default_handle_seconds` (default 180): seed of the handle-time
    /// estimate used for wait-time announcements.
    pub default_handle: Duration,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self {
            strategy: Strategy::LongestIdle,
            max_no_answer_strikes: 3,
            busy_backoff: Duration::from_secs(10),
            no_answer_backoff: Duration::from_secs(10),
            default_ring_timeout: Duration::from_secs(20),
            default_wrap_up: Duration::from_secs(30),
            default_handle: Duration::from_secs(180),
        }
    }
}

/// `[outbound]`: calls placed by telesecretaries from their softphones
/// (`*8<practice code>*<number>`, or a bare number for the practice of
/// their last call), through the outbound trunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundSettings {
    /// `allow` (default `["emergency", "fixed", "mobile"]`) and
    /// `allow_numbers` (default none): what a practice may call unless its
    /// dialplan's `[outbound]` says otherwise (each key separately).
    pub allow: AllowList,
    /// `max_calls_per_agent` (default 2, 1..=10): outbound calls one agent
    /// may have in progress at once.
    pub max_calls_per_agent: u32,
    /// `ring_timeout_seconds` (default 60, 10..=300): how long the called
    /// party may ring before the call is given up.
    pub ring_timeout: Duration,
    /// `recent_practice_minutes` (default 30, 0..=1440): a bare number is
    /// called for the practice of the agent's last call within this time;
    /// zero means a bare number is never attributed to a practice.
    pub recent_practice: Duration,
}

impl Default for OutboundSettings {
    fn default() -> Self {
        Self {
            allow: AllowList::french_default(),
            max_calls_per_agent: 2,
            ring_timeout: Duration::from_secs(60),
            recent_practice: Duration::from_secs(30 * 60),
        }
    }
}

/// A carrier trunk (`[[trunks]]`): calls are accepted only from its sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    /// `name`, unique.
    pub name: String,
    /// `sources`: networks calls may come from (a bare IP is a /32 or
    /// /128); host bits are cleared (`10.0.0.1/24` is `10.0.0.0/24`).
    pub sources: Vec<IpNet>,
    /// `outbound`: where to send calls out through this carrier (`host:port`
    /// as an IP socket address), used when triage routes an urgent call
    /// straight to a practitioner's number and for the telesecretaries'
    /// outbound calls (`[outbound]`); `None` if the trunk only delivers
    /// calls. The first trunk with one is [`Config::outbound_trunk`].
    pub outbound: Option<SocketAddr>,
    /// Where the trunk is defined.
    pub origin: Origin,
}

impl Trunk {
    /// Whether `ip` is in one of the sources (no IPv4-mapped conversion;
    /// see [`Config::trunk_for`]).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.sources.iter().any(|n| n.contains(&ip))
    }
}

/// A telesecretary (`[[agents]]`), registered from a SIP softphone.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    /// `username`: SIP user name, `[a-z0-9._-]+`, unique.
    pub username: String,
    /// `display_name`.
    pub display_name: String,
    /// `ha1_md5`: MD5(username:realm:password), 32 lowercase hex digits.
    pub ha1_md5: Option<String>,
    /// `ha1_sha256`: SHA-256(username:realm:password), 64 lowercase hex
    /// digits.
    pub ha1_sha256: Option<String>,
    /// `languages`: ISO 639-1 codes, at least one, no duplicates.
    pub languages: Vec<String>,
    /// `skills`: skill name to level 1..=5.
    pub skills: BTreeMap<String, u8>,
    /// `timezone` (default Europe/Paris): the zone the shift is read in.
    pub timezone: Tz,
    /// `wrap_up_seconds`: overrides the practice and dispatcher wrap-up.
    pub wrap_up: Option<Duration>,
    /// `srtp` (`off`, `offer` (default), `require`): when calls to this
    /// agent offer SRTP; see [`SrtpPolicy`].
    pub srtp: SrtpPolicy,
    /// `outbound_allow` and `outbound_allow_numbers`: what this agent's
    /// outbound calls may reach, on top of the practice's own list (a
    /// destination must be allowed by both). `None` when neither key is
    /// given: no restriction beyond the practice's list. When one is given,
    /// the other one absent means none (`outbound_allow = ["emergency"]`
    /// alone: emergency numbers only).
    pub outbound_allow: Option<AllowList>,
    /// `[agents.shift]`, in `timezone`; without a shift section this is
    /// [`Schedule::always`] (`always_open = true`: no shift limit).
    pub shift: Schedule,
    /// Where the agent is defined (its `[[agents]]` header).
    pub origin: Origin,
}

impl Agent {
    /// The HA1 for `alg`, if configured.
    pub fn ha1(&self, alg: DigestAlgorithm) -> Option<&str> {
        match alg {
            DigestAlgorithm::Md5 => self.ha1_md5.as_deref(),
            DigestAlgorithm::Sha256 => self.ha1_sha256.as_deref(),
        }
    }

    /// The algorithms this agent can authenticate with, SHA-256 first.
    pub fn algorithms(&self) -> Vec<DigestAlgorithm> {
        let mut v = Vec::with_capacity(2);
        if self.ha1_sha256.is_some() {
            v.push(DigestAlgorithm::Sha256);
        }
        if self.ha1_md5.is_some() {
            v.push(DigestAlgorithm::Md5);
        }
        v
    }

    /// Level in `skill`, 0 if the agent does not have it.
    pub fn skill(&self, skill: &str) -> u8 {
        self.skills.get(skill).copied().unwrap_or(0)
    }

    /// Whether the agent speaks `language`.
    pub fn speaks(&self, language: &str) -> bool {
        self.languages.iter().any(|l| l == language)
    }

    /// Whether the agent has a shift limit (an `[agents.shift]` section).
    pub fn has_shift(&self) -> bool {
        !self.shift.always_open
    }
}

/// A named group of agents (`[[pools]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// `id`, `[a-z0-9-]+`, unique.
    pub id: String,
    /// `name`, for display.
    pub name: String,
    /// `agents`: user names of defined agents, no duplicates, at least one.
    pub agents: Vec<String>,
    /// Where the pool is defined.
    pub origin: Origin,
}

impl Pool {
    /// Whether `username` is a member.
    pub fn has(&self, username: &str) -> bool {
        self.agents.iter().any(|a| a == username)
    }
}

/// A doctor's practice (one dialplan file).
#[derive(Debug, Clone)]
pub struct Practice {
    /// `id`, `[a-z0-9-]+`, unique across dialplans.
    pub id: String,
    /// `name`, shown to agents ("Cabinet du Dr Martin").
    pub name: String,
    /// `specialty`: a skill name.
    pub specialty: String,
    /// `language`: default language of the callers (ISO 639-1).
    pub language: String,
    /// `languages`: languages offered (default `[language]`); always
    /// contains `language`, first. With `"en"`, callers hear "For English,
    /// press 9" after the greeting ([`Practice::english_digit`]).
    pub languages: Vec<String>,
    /// `timezone`: the zone the hours are read in.
    pub timezone: Tz,
    /// `country` (default `fr`): numbering plan of national number forms.
    pub country: Country,
    /// `forwarded_from`: numbers the practice forwards from.
    pub forwarded_from: Vec<E164>,
    /// `dids`: numbers dialled directly.
    pub dids: Vec<E164>,
    /// `info_url`: for a `Call-Info` header to agents (http or https, no
    /// spaces, quotes or angle brackets).
    pub info_url: Option<String>,
    /// `[hours]`, in `timezone`.
    pub hours: Schedule,
    /// `[prompts]`.
    pub prompts: Prompts,
    /// `[queue]`.
    pub queue: QueueSettings,
    /// `[triage]`, if the practice has a DTMF menu.
    pub triage: Option<Triage>,
    /// `[routing]`.
    pub routing: Routing,
    /// `[outbound]`: the practice's code and caller ID for the agents'
    /// outbound calls, and what they may reach.
    pub outbound: PracticeOutbound,
    /// `[callback]`: whether waiting callers are offered a callback that
    /// keeps their place, and how callback requests are called back (also
    /// those of an overflow to `callback`). All defaults when absent.
    pub callback: CallbackPolicy,
    /// `[[transfers]]`: where a telesecretary talking with a caller of the
    /// practice may blind-transfer them (REFER to `sip:<code>@<engine>`),
    /// in file order, codes unique. Empty when absent: no transfer.
    pub transfers: Vec<TransferTarget>,
    /// `[card]`: the practice's instructions for the telesecretaries
    /// answering its calls ("consignes"). `None` when absent.
    pub card: Option<PracticeCard>,
    /// `[voicemail] email`: where the practice's voicemail messages are
    /// e-mailed. Required when the overflow goes to voicemail, or when the
    /// practice takes messages when closed.
    pub voicemail_email: Vec<String>,
    /// `[hours] when_closed`: after the closed prompt, hang up (default)
    /// or record a voicemail message.
    pub when_closed: WhenClosed,
    /// `[[announcements]]`: dated messages, in file order, their date
    /// ranges never overlapping (so at most one applies on a day).
    pub announcements: Vec<DatedAnnouncement>,
    /// The dialplan file.
    pub source: PathBuf,
}

impl Practice {
    /// The digit that switches a caller to English (« For English, press
    /// 9 »); no triage option may use it in a practice offering English.
    pub const ENGLISH_DIGIT: char = '9';

    /// [`Practice::ENGLISH_DIGIT`] if the practice's `languages` include
    /// English, else `None` (French only, no offer).
    pub fn english_digit(&self) -> Option<char> {
        offers_english(&self.languages).then_some(Self::ENGLISH_DIGIT)
    }

    /// The dated announcement of the day `at` falls on in the practice's
    /// time zone, with its index in [`Practice::announcements`].
    pub fn announcement_at(
        &self,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Option<(usize, &DatedAnnouncement)> {
        let day = at.with_timezone(&self.timezone).date_naive();
        self.announcements
            .iter()
            .enumerate()
            .find(|(_, a)| a.covers(day))
    }

    /// All the numbers of the practice (forwarded-from first, then DIDs).
    pub fn numbers(&self) -> impl Iterator<Item = &E164> {
        self.forwarded_from.iter().chain(self.dids.iter())
    }

    /// The transfer target whose `code` is `code` (the user part of the
    /// REFER's `Refer-To`), if the practice has one.
    pub fn transfer(&self, code: &str) -> Option<&TransferTarget> {
        self.transfers.iter().find(|t| t.code == code)
    }
}

/// `[hours] when_closed` of a dialplan: what a closed practice does after
/// its closed prompt (which always names the 15).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum WhenClosed {
    /// Hang up (`"hangup"`, the default).
    #[default]
    Hangup,
    /// The voicemail prompt, then record a message, e-mailed like any
    /// other (`"voicemail"`; needs `[voicemail] email`).
    Voicemail,
}

/// One `[[announcements]]` of a dialplan: a message for a date range, e.g.
/// « Le cabinet est fermé du 24 décembre au 2 janvier... » or an epidemic
/// notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatedAnnouncement {
    /// `from`: first day, in the practice's time zone.
    pub from: chrono::NaiveDate,
    /// `to`: last day, inclusive (default: `from`).
    pub to: chrono::NaiveDate,
    /// `file`: the recording (8 kHz mono 16-bit PCM WAV).
    pub prompt: Prompt,
    /// `mode`: after the greeting (default) or instead of the queue.
    pub mode: AnnouncementMode,
    /// `label`: what it is, for people (logs, the console).
    pub label: String,
}

impl DatedAnnouncement {
    /// At most this many per practice.
    pub const MAX: usize = 50;

    /// Whether it applies on `day` (the practice's local date).
    pub fn covers(&self, day: chrono::NaiveDate) -> bool {
        self.from <= day && day <= self.to
    }
}

/// `[card]` of a dialplan: the instructions ("consignes") a telesecretary
/// reads while answering a call of the practice, shown by the agents'
/// console. Texts are free text for people: they may contain newlines and
/// tabs but no other control character (they end up in a browser and in
/// logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PracticeCard {
    /// `summary`: what to know first about the practice, 1 to
    /// [`PracticeCard::MAX_SUMMARY_CHARS`] characters.
    pub summary: String,
    /// `[[card.entries]]`: structured instructions, in display (file)
    /// order, at most [`PracticeCard::MAX_ENTRIES`], labels unique
    /// (ignoring case and surrounding spaces). Empty when absent.
    pub entries: Vec<CardEntry>,
}

impl PracticeCard {
    /// Maximum length of `summary`, in characters.
    pub const MAX_SUMMARY_CHARS: usize = 2000;
    /// Maximum number of entries.
    pub const MAX_ENTRIES: usize = 50;
}

/// One `[[card.entries]]` of a dialplan: a titled instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardEntry {
    /// `label`: the title ("Renouvellement d'ordonnance"), one line, 1 to
    /// [`CardEntry::MAX_LABEL_CHARS`] characters.
    pub label: String,
    /// `text`: what to do, 1 to [`CardEntry::MAX_TEXT_CHARS`] characters.
    pub text: String,
}

impl CardEntry {
    /// Maximum length of `label`, in characters.
    pub const MAX_LABEL_CHARS: usize = 80;
    /// Maximum length of `text`, in characters.
    pub const MAX_TEXT_CHARS: usize = 1000;
}

/// One `[[transfers]]` of a dialplan: a target a telesecretary may
/// blind-transfer a caller of the practice to, from their softphone
/// (REFER to `sip:<code>@<engine>`; the REFER itself is never passed to
/// the carrier). If the target does not answer, the caller goes back to
/// the head of the practice's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferTarget {
    /// `code`: 1 to 4 digits, unique in the practice, written as a string
    /// (`"1"`, `"0042"`).
    pub code: String,
    /// `label`: shown to agents and in logs ("Dr Martin - portable").
    pub label: String,
    /// Exactly one of `number`, `agent` or `pool`.
    pub to: TransferTo,
    /// Where the entry is defined (its `[[transfers]]` header).
    pub origin: Origin,
}

/// Where a [`TransferTarget`] sends the caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TransferTo {
    /// `number`: a telephone number (E.164; national forms read in the
    /// practice's `country`), dialled through the outbound trunk with the
    /// practice's caller ID. It must be allowed by the practice's outbound
    /// allow-list (`[outbound]` `allow` / `allow_numbers`, the toll-fraud
    /// guard of the agents' calls), and must not be a number of a practice
    /// (the call would loop back into Permanence). Short codes, the
    /// emergency numbers among them, are not telephone numbers: a caller
    /// is not transferred to them. Stored as dialled: a French overseas
    /// number gets its own country code (`0692…` is `+262692…`).
    Number(E164),
    /// `agent`: a defined telesecretary (`[[agents]]` user name); the call
    /// goes back to the dispatcher, at the head of the queue, for them.
    Agent(AgentId),
    /// `pool`: a defined pool (`[[pools]]` id); the call goes back to the
    /// dispatcher, at the head of the queue, for its members.
    Pool(PoolId),
}

/// `[outbound]` of a dialplan: how agents call out on behalf of the
/// practice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PracticeOutbound {
    /// `code`: 1 to 4 digits, unique across practices; an agent dials
    /// `*8<code>*<number>` to call as this practice. `None`: the practice
    /// can only be called out for with a bare number (its agents' recent
    /// practice).
    pub code: Option<String>,
    /// `caller_id`: the number shown to the called party (E.164; national
    /// forms read in the practice's `country`). Default: the first
    /// `forwarded_from` number, else the first DID; `None` only when the
    /// practice has no number, and then it cannot call out.
    pub caller_id: Option<E164>,
    /// `allow` and `allow_numbers`: what calls for the practice may reach;
    /// each key absent takes the main file's `[outbound]` value.
    pub allow: AllowList,
}

/// `[callback]` of a dialplan: callbacks that keep the caller's place in
/// the queue ("pour être rappelé sans perdre votre place, tapez 2"), and
/// the deadline and retries of every callback request of the practice,
/// whether the caller asked for it from the queue or the queue overflowed
/// to it (`routing.overflow.action = "callback"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackPolicy {
    /// `offer` (default false): the offer played to waiting callers, with
    /// its `digit` and `offer_after_seconds`; `None` when not offered.
    pub offer: Option<CallbackOffer>,
    /// `within_minutes` (default 60, 5..=1440): the practice's deadline for
    /// calling the patient back, from the request ("rappelé dans
    /// l'heure").
    pub within: Duration,
    /// `max_attempts` (default 3, 1..=10): dialling attempts before the
    /// request fails.
    pub max_attempts: u32,
    /// `retry_minutes` (default 10, 1..=240): spacing between attempts.
    pub retry_spacing: Duration,
}

impl CallbackPolicy {
    /// Default of `within_minutes`.
    pub const DEFAULT_WITHIN: Duration = Duration::from_secs(60 * 60);
    /// Default of `max_attempts`.
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
    /// Default of `retry_minutes`.
    pub const DEFAULT_RETRY_SPACING: Duration = Duration::from_secs(10 * 60);
}

impl Default for CallbackPolicy {
    /// No offer; called back within 60 minutes, 3 attempts 10 minutes
    /// apart.
    fn default() -> Self {
        Self {
            offer: None,
            within: Self::DEFAULT_WITHIN,
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            retry_spacing: Self::DEFAULT_RETRY_SPACING,
        }
    }
}

/// The callback offered while a caller waits in the queue (`offer = true`
/// in `[callback]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallbackOffer {
    /// `digit` (default `'2'`): the key, one of `0-9`, that asks for a
    /// callback while queued.
    ///
    /// Nothing else listens to keys while a caller waits in the queue, so
    /// no digit conflicts with it: the triage menu (`[triage]`) is played
    /// and answered before the call joins the queue, and its digits are not
    /// listened to once queued (a triage option `"2"` and a callback digit
    /// `"2"` coexist). The keys of the callback menu itself (1 to confirm
    /// the number, 3 to give another one, digits and `#` to type it) are
    /// only listened to after this digit was pressed.
    pub digit: char,
    /// `offer_after_seconds` (default 0, 0..=3600): time in the queue
    /// before the offer is first played; zero: right after the greeting
    /// (and the triage menu), with the first hold audio.
    pub after: Duration,
}

impl CallbackOffer {
    /// Default of `digit`.
    pub const DEFAULT_DIGIT: char = '2';
}

impl Default for CallbackOffer {
    /// Digit 2, offered as soon as the call is queued.
    fn default() -> Self {
        Self {
            digit: Self::DEFAULT_DIGIT,
            after: Duration::ZERO,
        }
    }
}

/// The prompts a practice can override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PromptKind {
    /// `greeting`: played when the call is answered.
    Greeting,
    /// `hold`: played while waiting in queue.
    Hold,
    /// `closed`: played outside opening hours.
    Closed,
    /// `voicemail`: played before recording a message on voicemail overflow.
    Voicemail,
    /// `callback`: played when a callback request is taken.
    Callback,
    /// `triage`: the triage menu.
    Triage,
}

impl PromptKind {
    /// Every kind, in schema order.
    pub const ALL: [PromptKind; 6] = [
        PromptKind::Greeting,
        PromptKind::Hold,
        PromptKind::Closed,
        PromptKind::Voicemail,
        PromptKind::Callback,
        PromptKind::Triage,
    ];

    /// The key in `[prompts]`.
    pub fn key(self) -> &'static str {
        match self {
            PromptKind::Greeting => "greeting",
            PromptKind::Hold => "hold",
            PromptKind::Closed => "closed",
            PromptKind::Voicemail => "voicemail",
            PromptKind::Callback => "callback",
            PromptKind::Triage => "triage",
        }
    }
}

/// A prompt WAV file configured by a practice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// The file, resolved against the dialplan file's directory.
    pub path: PathBuf,
    /// Audio length, from the WAV header (8 kHz mono 16-bit PCM).
    pub duration: Duration,
    /// Where it is configured (`prompts.greeting` of a dialplan), to report
    /// a decoding problem as `file:line: field: message`.
    pub origin: Origin,
}

/// `[prompts]`: each absent prompt means the engine's embedded French
/// default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prompts {
    /// `greeting`.
    pub greeting: Option<Prompt>,
    /// `hold`.
    pub hold: Option<Prompt>,
    /// `closed`.
    pub closed: Option<Prompt>,
    /// `voicemail`.
    pub voicemail: Option<Prompt>,
    /// `callback`.
    pub callback: Option<Prompt>,
    /// `triage`.
    pub triage: Option<Prompt>,
    /// `[prompts.en]`: the practice's English recordings (same keys), for
    /// callers who pressed 9 (a practice whose `languages` include `"en"`).
    pub en: Option<Box<Prompts>>,
}

impl Prompts {
    /// The configured prompt of a kind.
    pub fn get(&self, kind: PromptKind) -> Option<&Prompt> {
        match kind {
            PromptKind::Greeting => self.greeting.as_ref(),
            PromptKind::Hold => self.hold.as_ref(),
            PromptKind::Closed => self.closed.as_ref(),
            PromptKind::Voicemail => self.voicemail.as_ref(),
            PromptKind::Callback => self.callback.as_ref(),
            PromptKind::Triage => self.triage.as_ref(),
        }
    }

    /// The prompt of a kind a caller speaking `language` hears, if the
    /// practice recorded one: in English, its English recording, else its
    /// own (French) one; `None`: the built-in prompt of that language.
    pub fn get_in(
        &self,
        kind: PromptKind,
        language: permanence_types::Language,
    ) -> Option<&Prompt> {
        let english = match language {
            permanence_types::Language::En => self.en.as_ref().and_then(|en| en.get(kind)),
            permanence_types::Language::Fr => None,
        };
        english.or_else(|| self.get(kind))
    }

    pub(crate) fn slot(&mut self, kind: PromptKind) -> &mut Option<Prompt> {
        match kind {
            PromptKind::Greeting => &mut self.greeting,
            PromptKind::Hold => &mut self.hold,
            PromptKind::Closed => &mut self.closed,
            PromptKind::Voicemail => &mut self.voicemail,
            PromptKind::Callback => &mut self.callback,
            PromptKind::Triage => &mut self.triage,
        }
    }
}

/// `[queue]`: announcements to waiting callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    /// `announce_position` (default false).
    pub announce_position: bool,
    /// `announce_wait` (default false): announce the estimated wait.
    pub announce_wait: bool,
    /// `announce_every_seconds` (default 60, 10..=600): period of the
    /// announcements.
    pub announce_every: Duration,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            announce_position: false,
            announce_wait: false,
            announce_every: Duration::from_secs(60),
        }
    }
}

/// `[triage]`: a DTMF menu played after the greeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Triage {
    /// `timeout_seconds` (default 5, 1..=30): wait for a digit.
    pub timeout: Duration,
    /// `default`: digit of the option taken when no digit is pressed; `None`
    /// = queue the call as if there were no triage.
    pub default: Option<char>,
    /// `options`, in file order, digits unique.
    pub options: Vec<TriageOption>,
}

impl Triage {
    /// The option for a pressed digit.
    pub fn option(&self, digit: char) -> Option<&TriageOption> {
        self.options.iter().find(|o| o.digit == digit)
    }

    /// The option taken on timeout.
    pub fn default_option(&self) -> Option<&TriageOption> {
        self.default.and_then(|d| self.option(d))
    }
}

/// One `[[triage.options]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriageOption {
    /// `digit`: one of `0-9*#`.
    pub digit: char,
    /// `label`: shown to agents ("urgence").
    pub label: String,
    /// `priority` (default 0): added to the practice priority.
    pub priority: i32,
    /// `skills`: required skills, name to minimum level 1..=5.
    pub skills: BTreeMap<String, u8>,
    /// `route_to`: send the call to this number instead of the queue.
    pub route_to: Option<E164>,
    /// `language`: the call then needs an agent speaking it (one of the
    /// practice's `languages`).
    pub language: Option<String>,
    /// Where the option is defined.
    pub origin: Origin,
}

/// `[routing]`: who may answer, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    /// `dedicated`: the practice's dedicated telesecretaries (defined
    /// agents, no duplicates).
    pub dedicated: Vec<String>,
    /// `priority` (default 0, -1000..=1000): higher is served first.
    pub priority: i32,
    /// `max_wait_seconds`: queue time after which `overflow` applies.
    pub max_wait: Duration,
    /// `wrap_up_seconds`, or `dispatcher.default_wrap_up_seconds`.
    pub wrap_up: Duration,
    /// `ring_timeout_seconds`, or `dispatcher.default_ring_timeout_seconds`.
    pub ring_timeout: Duration,
    /// `steps`: cumulative, `after` strictly increasing from 0, all before
    /// `max_wait`.
    pub steps: Vec<ConfiguredStep>,
    /// `[routing.overflow]`.
    pub overflow: OverflowTarget,
}

impl Routing {
    /// The steps reached after waiting `waited` (at least the first).
    pub fn active_steps(&self, waited: Duration) -> &[ConfiguredStep] {
        let n = self.steps.partition_point(|s| s.step.after <= waited);
        self.steps.get(..n.max(1)).unwrap_or(&self.steps)
    }
}

/// One `[[routing.steps]]`: the dispatcher's [`RoutingStep`] and where it
/// is defined (for located warnings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredStep {
    /// The step: from `after_seconds` on, agents matching all the given
    /// criteria (`dedicated`, `pool`, `skill` at `min_level` (default 1),
    /// `language`) become eligible, in addition to those of earlier steps.
    pub step: RoutingStep,
    /// Where the step is defined.
    pub origin: Origin,
}

/// Whether a practice's `languages` include English.
pub(crate) fn offers_english(languages: &[String]) -> bool {
    languages.iter().any(|l| l == "en")
}
