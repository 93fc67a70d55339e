//! What the SIP front door refused: floods (the gate), authentication
//! failures and throttling (guessing), as counters the alert rules watch.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use crate::render::Block;
use crate::MetricsError;

/// Why the gate dropped a datagram (`reason` label of
/// `permanence_sip_flood_dropped_total`).
pub const FLOOD_REASONS: [&str; 4] = ["banned", "rate", "budget", "stateless_ack"];

/// Why an authentication failed (`reason` label of
/// `permanence_auth_failures_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthFailure {
    /// The digest answer was wrong.
    WrongCredentials,
    /// The user does not exist.
    UnknownUser,
    /// Refused unverified: the source is blocked after failures.
    Throttled,
}

impl AuthFailure {
    /// Every reason, in label order.
    pub const ALL: [AuthFailure; 3] = [
        AuthFailure::WrongCredentials,
        AuthFailure::UnknownUser,
        AuthFailure::Throttled,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            AuthFailure::WrongCredentials => "wrong_credentials",
            AuthFailure::UnknownUser => "unknown_user",
            AuthFailure::Throttled => "throttled",
        }
    }
}

/// A counter brought up to a cumulative total kept elsewhere (atomics of
/// the gate, read at scrape time).
#[derive(Debug)]
struct Synced {
    counter: IntCounter,
    seen: AtomicU64,
}

impl Synced {
    fn new(counter: IntCounter) -> Self {
        Self {
            counter,
            seen: AtomicU64::new(0),
        }
    }

    fn sync(&self, total: u64) {
        let prev = self.seen.swap(total, Ordering::Relaxed);
        if total > prev {
            self.counter.inc_by(total - prev);
        }
    }
}

/// The gate's cumulative counts, as [`SecurityMetrics::sync_gate`] takes
/// them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GateTotals {
    /// Dropped, in [`FLOOD_REASONS`] order.
    pub dropped: [u64; 4],
    /// 401 challenges sent without a transaction.
    pub challenged_401: u64,
    /// 407 challenges sent without a transaction.
    pub challenged_407: u64,
    /// OPTIONS answered without a transaction.
    pub options_200: u64,
    /// New work (INVITE, REGISTER, OPTIONS) refused with 503 at the door
    /// because the heap reached `[sip.limits] max_heap_mb`.
    pub overloaded_503: u64,
    /// Bans so far.
    pub bans: u64,
    /// Sources banned now.
    pub banned_now: u64,
}

/// Why a TCP/TLS connection was refused or closed (`reason` labels).
pub const CONNECTION_REFUSALS: [&str; 3] = ["total", "per_source", "banned"];
/// Why the engine closed a TCP/TLS connection.
pub const CONNECTION_CLOSES: [&str; 3] = ["idle", "framing", "tls_handshake"];

/// The stream listeners' cumulative counts, as
/// [`SecurityMetrics::sync_streams`] takes them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamTotals {
    /// Connections open now.
    pub open: u64,
    /// Refused, in [`CONNECTION_REFUSALS`] order.
    pub refused: [u64; 3],
    /// Closed by the engine, in [`CONNECTION_CLOSES`] order.
    pub closed: [u64; 3],
    /// Failed `accept` calls (descriptor limit...).
    pub accept_errors: u64,
}

/// The security families.
#[derive(Debug)]
pub struct SecurityMetrics {
    connections: IntGauge,
    refused_vec: IntCounterVec,
    refused: Vec<Synced>,
    closed_vec: IntCounterVec,
    closed: Vec<Synced>,
    accept_errors_counter: IntCounter,
    accept_errors: Synced,
    flood_dropped_vec: IntCounterVec,
    flood_dropped: Vec<Synced>,
    stateless_vec: IntCounterVec,
    stateless: [Synced; 4],
    bans: Synced,
    bans_counter: IntCounter,
    banned: IntGauge,
    auth_failures_vec: IntCounterVec,
    auth_failures: Vec<IntCounter>,
    auth_blocks: IntCounter,
}

impl SecurityMetrics {
    pub(crate) fn new(r: &Registry) -> Result<Self, MetricsError> {
        let flood_dropped_vec = IntCounterVec::new(
            Opts::new(
                "permanence_sip_flood_dropped_total",
                "SIP datagrams from untrusted sources dropped by the gate, by reason (banned source, over its rate, over the global budget, ACK of a stateless response).",
            ),
            &["reason"],
        )?;
        r.register(Box::new(flood_dropped_vec.clone()))?;
        let flood_dropped = FLOOD_REASONS
            .iter()
            .map(|l| {
                flood_dropped_vec
                    .get_metric_with_label_values(&[l])
                    .map(Synced::new)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let stateless_vec = IntCounterVec::new(
            Opts::new(
                "permanence_sip_stateless_replies_total",
                "Responses sent to untrusted sources without creating a transaction, by status code (401/407 challenges, 200 to OPTIONS, 503 to new requests while the heap is at [sip.limits] max_heap_mb).",
            ),
            &["code"],
        )?;
        r.register(Box::new(stateless_vec.clone()))?;
        let st = |c: &str| {
            stateless_vec
                .get_metric_with_label_values(&[c])
                .map(Synced::new)
        };
        let stateless = [st("401")?, st("407")?, st("200")?, st("503")?];
        let bans_counter = IntCounter::with_opts(Opts::new(
            "permanence_sip_bans_total",
            "Sources banned for flooding.",
        ))?;
        r.register(Box::new(bans_counter.clone()))?;
        let banned = IntGauge::with_opts(Opts::new(
            "permanence_sip_banned_sources",
            "Sources banned now.",
        ))?;
        r.register(Box::new(banned.clone()))?;
        let auth_failures_vec = IntCounterVec::new(
            Opts::new(
                "permanence_auth_failures_total",
                "Failed digest authentications (REGISTER, agent INVITE), by reason.",
            ),
            &["reason"],
        )?;
        r.register(Box::new(auth_failures_vec.clone()))?;
        let auth_failures = AuthFailure::ALL
            .iter()
            .map(|f| auth_failures_vec.get_metric_with_label_values(&[f.label()]))
            .collect::<Result<Vec<_>, _>>()?;
        let auth_blocks = IntCounter::with_opts(Opts::new(
            "permanence_auth_blocks_total",
            "Times a source was blocked after repeated authentication failures.",
        ))?;
        r.register(Box::new(auth_blocks.clone()))?;
        let connections = IntGauge::with_opts(Opts::new(
            "permanence_sip_connections",
            "SIP over TCP and TLS connections open now.",
        ))?;
        r.register(Box::new(connections.clone()))?;
        let refused_vec = IntCounterVec::new(
            Opts::new(
                "permanence_sip_connections_refused_total",
                "TCP/TLS connections refused at accept, by reason (total cap, per-source cap, banned source).",
            ),
            &["reason"],
        )?;
        r.register(Box::new(refused_vec.clone()))?;
        let refused = CONNECTION_REFUSALS
            .iter()
            .map(|l| {
                refused_vec
                    .get_metric_with_label_values(&[l])
                    .map(Synced::new)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let closed_vec = IntCounterVec::new(
            Opts::new(
                "permanence_sip_connections_closed_total",
                "TCP/TLS connections closed by the engine, by reason (idle, unframeable stream, failed TLS handshake).",
            ),
            &["reason"],
        )?;
        r.register(Box::new(closed_vec.clone()))?;
        let closed = CONNECTION_CLOSES
            .iter()
            .map(|l| {
                closed_vec
                    .get_metric_with_label_values(&[l])
                    .map(Synced::new)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let accept_errors_counter = IntCounter::with_opts(Opts::new(
            "permanence_sip_accept_errors_total",
            "Failed accepts on the TCP/TLS listeners (descriptor limit...); the listener backs off.",
        ))?;
        r.register(Box::new(accept_errors_counter.clone()))?;
        Ok(Self {
            connections,
            refused_vec,
            refused,
            closed_vec,
            closed,
            accept_errors: Synced::new(accept_errors_counter.clone()),
            accept_errors_counter,
            flood_dropped_vec,
            flood_dropped,
            stateless_vec,
            stateless,
            bans: Synced::new(bans_counter.clone()),
            bans_counter,
            banned,
            auth_failures_vec,
            auth_failures,
            auth_blocks,
        })
    }

    pub(crate) fn blocks(&self) -> Vec<Block> {
        vec![
            Block::Global(Box::new(self.flood_dropped_vec.clone())),
            Block::Global(Box::new(self.stateless_vec.clone())),
            Block::Global(Box::new(self.bans_counter.clone())),
            Block::Global(Box::new(self.banned.clone())),
            Block::Global(Box::new(self.auth_failures_vec.clone())),
            Block::Global(Box::new(self.auth_blocks.clone())),
            Block::Global(Box::new(self.connections.clone())),
            Block::Global(Box::new(self.refused_vec.clone())),
            Block::Global(Box::new(self.closed_vec.clone())),
            Block::Global(Box::new(self.accept_errors_counter.clone())),
        ]
    }

    /// Brings the stream families up to the listeners' cumulative counts
    /// (call before each scrape).
    pub fn sync_streams(&self, t: &StreamTotals) {
        self.connections
            .set(i64::try_from(t.open).unwrap_or(i64::MAX));
        for (s, total) in self.refused.iter().zip(t.refused) {
            s.sync(total);
        }
        for (s, total) in self.closed.iter().zip(t.closed) {
            s.sync(total);
        }
        self.accept_errors.sync(t.accept_errors);
    }

    /// Brings the gate's families up to its cumulative counts (call before
    /// each scrape).
    pub fn sync_gate(&self, t: &GateTotals) {
        for (s, total) in self.flood_dropped.iter().zip(t.dropped) {
            s.sync(total);
        }
        self.stateless[0].sync(t.challenged_401);
        self.stateless[1].sync(t.challenged_407);
        self.stateless[2].sync(t.options_200);
        self.stateless[3].sync(t.overloaded_503);
        self.bans.sync(t.bans);
        self.banned
            .set(i64::try_from(t.banned_now).unwrap_or(i64::MAX));
    }

    /// An authentication failed.
    pub fn auth_failed(&self, reason: AuthFailure) {
        if let Some(c) = self.auth_failures.get(reason as usize) {
            c.inc();
        }
    }

    /// A source was blocked after repeated failures.
    pub fn auth_blocked(&self) {
        self.auth_blocks.inc();
    }
}
