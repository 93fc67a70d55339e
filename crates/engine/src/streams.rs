//! SIP over TCP, TLS and WebSocket: our own accept loops and connection
//! tasks (WebSocket framing in [`websocket`]).
//!
//! rsipstack 0.7.14's listeners accept without any cap, retry a failing
//! `accept` at once (at the descriptor limit: a 100 % CPU loop and a log
//! line per try), give each connection two 64 KiB buffers, and parse what
//! they frame without our checks. Here instead:
//!
//! - each listener accepts in its own loop; a failing `accept` (EMFILE,
//!   ENFILE...) backs off with a growing delay (10 ms to 1 s) and is logged
//!   once when it starts, at most every 10 s while it lasts (with a count),
//!   and once when it ends;
//! - connections are capped in total and per untrusted source
//!   ([`permanence_sip::stream::ConnTable`]), banned sources are refused;
//! - a connection of an untrusted source that brings no complete message
//!   nor keep-alive for `idle_seconds` is closed;
//! - each framed message ([`permanence_sip::stream::next_frame`]) goes
//!   through the same [`FrontDoor`] as a UDP datagram (the gate, then the
//!   syntax checks): malformed requests get their 4xx on the connection,
//!   strangers the gate's stateless answers; a stream that cannot be framed
//!   any more is answered if possible and closed (RFC 3261 §18.3).
//!
//! What passes reaches rsipstack through a `ChannelConnection` whose
//! address is the peer's (with the TCP or TLS transport): rsipstack's
//! transactions and dialogs answer and send on it as on any connection, its
//! connection table finds it for requests to a registered contact, and
//! rsipstack never reads the socket itself. A connection is handed to
//! rsipstack with its first valid message only.

mod websocket;

use crate::tls::TlsServer;
use permanence_sip::guard::{check_datagram_as, stateless_reply, FrontDoor, GuardStats, Judged};
use permanence_sip::stream::{next_frame, ConnLimits, ConnTable, Frame, Refusal};
use rsipstack::sip::{SipMessage, Transport};
use rsipstack::transaction::endpoint::EndpointInnerRef;
use rsipstack::transport::channel::ChannelConnection;
use rsipstack::transport::{SipAddr, SipConnection, TransportEvent};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// A write that takes longer (the peer does not read) closes the
/// connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// A TLS handshake that takes longer closes the connection.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// At most one log line per this period for a repeating condition.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// Back-off after a failed `accept`: first delay, doubled at each failure...
const BACKOFF_MIN: Duration = Duration::from_millis(10);
/// ... up to this one.
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What the stream listeners did (read by metrics and tests).
#[derive(Debug, Default)]
pub struct StreamStats {
    /// Connections accepted and admitted.
    pub accepted: AtomicU64,
    /// Connections refused: total cap reached.
    pub refused_total: AtomicU64,
    /// Connections refused: the source holds its share.
    pub refused_per_source: AtomicU64,
    /// Connections refused: the source is banned.
    pub refused_banned: AtomicU64,
    /// `accept` failures (descriptor limit...).
    pub accept_errors: AtomicU64,
    /// Connections closed for idleness.
    pub closed_idle: AtomicU64,
    /// Connections closed because the stream could not be framed.
    pub closed_framing: AtomicU64,
    /// TLS handshakes that failed or timed out.
    pub tls_failed: AtomicU64,
}

/// Settings that a reload may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSettings {
    /// Connection caps.
    pub limits: ConnLimits,
    /// Idle timeout of untrusted connections.
    pub idle: Duration,
}

/// The state shared by every stream listener and connection.
pub struct StreamFront {
    table: parking_lot::Mutex<ConnTable>,
    idle_ms: AtomicU64,
    door: Arc<FrontDoor>,
    guard: Arc<GuardStats>,
    /// Counters.
    pub stats: StreamStats,
    refusals: parking_lot::Mutex<Throttle>,
    /// Told when a connection closes (the registrar drops a browser's
    /// contacts).
    on_close: std::sync::OnceLock<CloseListener>,
    /// Whether a browser's address is in a trusted network (`[sip.limits]
    /// trusted`: the telesecretaries' office, whose agents share one
    /// address), exempt from the per-source cap. A trunk's address is not
    /// trusted for WebSocket connections.
    websocket_trust: std::sync::OnceLock<TrustCheck>,
}

/// Whether an address is trusted.
pub type TrustCheck = Box<dyn Fn(IpAddr) -> bool + Send + Sync>;

/// Called with a closed connection's peer and transport.
pub type CloseListener = Box<dyn Fn(SocketAddr, permanence_types::Transport) + Send + Sync>;

impl StreamFront {
    /// A front with `settings`, judging messages with `door`.
    pub fn new(settings: StreamSettings, door: Arc<FrontDoor>, guard: Arc<GuardStats>) -> Self {
        Self {
            table: parking_lot::Mutex::new(ConnTable::new(settings.limits)),
            idle_ms: AtomicU64::new(duration_ms(settings.idle)),
            door,
            guard,
            stats: StreamStats::default(),
            refusals: parking_lot::Mutex::new(Throttle::default()),
            on_close: std::sync::OnceLock::new(),
            websocket_trust: std::sync::OnceLock::new(),
        }
    }

    /// Sets which browser addresses are trusted (once).
    pub fn set_websocket_trust(&self, check: TrustCheck) {
        let _ = self.websocket_trust.set(check);
    }

    /// Whether a connection from `ip` over `kind` is trusted: a trunk or
    /// a trusted network for SIP over TCP/TLS, a trusted network only for
    /// WebSocket (a browser is never a carrier).
    fn trusts(&self, ip: IpAddr, kind: &Kind) -> bool {
        if kind.is_websocket() {
            self.websocket_trust.get().is_some_and(|t| t(ip))
        } else {
            self.door.is_trusted(ip)
        }
    }

    /// Sets what to tell when a connection closes (once).
    pub fn set_close_listener(&self, l: CloseListener) {
        let _ = self.on_close.set(l);
    }

    /// Applies new settings (reload); open connections stay.
    pub fn set_settings(&self, settings: StreamSettings) {
        self.table.lock().set_limits(settings.limits);
        self.idle_ms
            .store(duration_ms(settings.idle), Ordering::Relaxed);
    }

    /// Connections open now.
    pub fn open(&self) -> u32 {
        self.table.lock().open()
    }

    /// The counters, for metrics.
    pub fn totals(&self) -> permanence_metrics::StreamTotals {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let s = &self.stats;
        permanence_metrics::StreamTotals {
            open: u64::from(self.open()),
            refused: [
                l(&s.refused_total),
                l(&s.refused_per_source),
                l(&s.refused_banned),
            ],
            closed: [l(&s.closed_idle), l(&s.closed_framing), l(&s.tls_failed)],
            accept_errors: l(&s.accept_errors),
        }
    }

    /// The caps in force.
    pub fn limits(&self) -> ConnLimits {
        self.table.lock().limits()
    }

    fn idle(&self) -> Duration {
        Duration::from_millis(self.idle_ms.load(Ordering::Relaxed))
    }

    /// Admits a connection from `peer`, or says why not (counted, and
    /// logged at most every [`LOG_EVERY`]).
    fn admit(&self, peer: IpAddr, trusted: bool) -> bool {
        let refused = if !trusted && self.door.is_banned(peer) {
            self.stats.refused_banned.fetch_add(1, Ordering::Relaxed);
            "banned"
        } else {
            match self.table.lock().admit(peer, trusted) {
                Ok(()) => {
                    self.stats.accepted.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
                Err(r) => {
                    let counter = match r {
                        Refusal::Total => &self.stats.refused_total,
                        Refusal::PerSource => &self.stats.refused_per_source,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    r.as_str()
                }
            }
        };
        if let Some(count) = self.refusals.lock().note(std::time::Instant::now()) {
            let limits = self.limits();
            warn!(
                event = "sip.connections_refused",
                last_source = %peer,
                last_reason = refused,
                refused = count,
                max_connections = limits.total,
                max_connections_per_source = limits.per_source,
                "SIP connections refused (caps of [sip.limits])"
            );
        }
        false
    }

    fn release(&self, peer: IpAddr) {
        self.table.lock().release(peer);
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Logs a repeating condition at most once per [`LOG_EVERY`], with the
/// number of occurrences since the previous line.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    last: Option<std::time::Instant>,
    pending: u64,
}

impl Throttle {
    /// Nothing noted yet (usable in a `static`).
    pub(crate) const fn new() -> Self {
        Self {
            last: None,
            pending: 0,
        }
    }

    /// Notes one occurrence; `Some(count)` when a line is due.
    pub(crate) fn note(&mut self, now: std::time::Instant) -> Option<u64> {
        self.pending += 1;
        match self.last {
            Some(t) if now.duration_since(t) < LOG_EVERY => None,
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.pending))
            }
        }
    }
}

/// TCP, TLS, WebSocket or secure WebSocket.
#[derive(Clone)]
pub enum Kind {
    /// Plain TCP.
    Tcp,
    /// TLS, with the certificate holder.
    Tls(Arc<TlsServer>),
    /// WebSocket (RFC 7118), see [`crate::websocket`].
    Ws,
    /// WebSocket over TLS, with the certificate holder.
    Wss(Arc<TlsServer>),
}

impl Kind {
    /// The transport rsipstack knows the connections by.
    pub fn transport(&self) -> Transport {
        match self {
            Kind::Tcp => Transport::Tcp,
            Kind::Tls(_) => Transport::Tls,
            Kind::Ws => Transport::Ws,
            Kind::Wss(_) => Transport::Wss,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Kind::Tcp => "tcp",
            Kind::Tls(_) => "tls",
            Kind::Ws => "ws",
            Kind::Wss(_) => "wss",
        }
    }

    fn is_websocket(&self) -> bool {
        matches!(self, Kind::Ws | Kind::Wss(_))
    }

    fn tls(&self) -> Option<&Arc<TlsServer>> {
        match self {
            Kind::Tls(t) | Kind::Wss(t) => Some(t),
            Kind::Tcp | Kind::Ws => None,
        }
    }
}

/// Binds a stream listener (SO_REUSEADDR, backlog 1024).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let domain = if addr.is_ipv6() {
        socket2::Domain::IPV6
    } else {
        socket2::Domain::IPV4
    };
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// Accepts connections on `listener` until `cancel`, and serves each in
/// its own task.
pub fn spawn_listener(
    front: Arc<StreamFront>,
    listener: TcpListener,
    kind: Kind,
    endpoint: EndpointInnerRef,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(accept_loop(front, listener, kind, endpoint, cancel))
}

async fn accept_loop(
    front: Arc<StreamFront>,
    listener: TcpListener,
    kind: Kind,
    endpoint: EndpointInnerRef,
    cancel: CancellationToken,
) {
    let local = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            warn!(error = %e, "stream listener without a local address");
            return;
        }
    };
    let mut backoff = BACKOFF_MIN;
    let mut failing: Option<Failing> = None;
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                front.stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                let now = std::time::Instant::now();
                match &mut failing {
                    None => {
                        warn!(
                            event = "sip.accept_failing",
                            transport = kind.name(),
                            %local,
                            error = %e,
                            "cannot accept SIP connections (descriptor limit?): backing off"
                        );
                        failing = Some(Failing {
                            since: now,
                            errors: 1,
                            throttle: Throttle {
                                last: Some(now),
                                pending: 0,
                            },
                        });
                    }
                    Some(f) => {
                        f.errors += 1;
                        if let Some(n) = f.throttle.note(now) {
                            warn!(
                                event = "sip.accept_failing",
                                transport = kind.name(),
                                %local,
                                error = %e,
                                errors = n,
                                "still cannot accept SIP connections"
                            );
                        }
                    }
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        backoff = BACKOFF_MIN;
        if let Some(f) = failing.take() {
            info!(
                event = "sip.accept_recovered",
                transport = kind.name(),
                %local,
                errors = f.errors,
                seconds = f.since.elapsed().as_secs(),
                "accepting SIP connections again"
            );
        }
        let trusted = front.trusts(peer.ip(), &kind);
        if !front.admit(peer.ip(), trusted) {
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let conn = Conn {
            front: front.clone(),
            endpoint: endpoint.clone(),
            peer,
            transport: kind.transport(),
            trusted,
            cancel: cancel.child_token(),
        };
        let websocket = kind.is_websocket();
        match kind.tls() {
            None if websocket => {
                tokio::spawn(conn.serve_ws(stream));
            }
            None => {
                tokio::spawn(conn.serve(stream));
            }
            Some(tls) => {
                let acceptor = tls.acceptor();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(s)) if websocket => conn.serve_ws(s).await,
                        Ok(Ok(s)) => conn.serve(s).await,
                        Ok(Err(e)) => {
                            conn.front.stats.tls_failed.fetch_add(1, Ordering::Relaxed);
                            debug!(peer = %conn.peer, error = %e, "TLS handshake failed");
                            conn.front.release(conn.peer.ip());
                        }
                        Err(_) => {
                            conn.front.stats.tls_failed.fetch_add(1, Ordering::Relaxed);
                            debug!(peer = %conn.peer, "TLS handshake timed out");
                            conn.front.release(conn.peer.ip());
                        }
                    }
                });
            }
        }
    }
}

/// A run of failed `accept`s.
struct Failing {
    since: std::time::Instant,
    errors: u64,
    throttle: Throttle,
}

/// One accepted connection.
pub(crate) struct Conn {
    front: Arc<StreamFront>,
    endpoint: EndpointInnerRef,
    peer: SocketAddr,
    transport: Transport,
    trusted: bool,
    cancel: CancellationToken,
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Closed,
    Idle,
    Framing,
    Banned,
    Io,
    Cancelled,
    /// The WebSocket opening handshake failed or was refused.
    Handshake,
}

/// The connection as rsipstack knows it, once handed over.
pub(crate) struct Handover {
    connection: SipConnection,
    /// Feeds rsipstack (dropping it retires the connection there).
    inject: tokio::sync::mpsc::UnboundedSender<TransportEvent>,
}

impl Conn {
    /// Serves the connection until it closes, then releases its place.
    async fn serve<S>(self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let end = self.run(stream).await;
        self.finish(end);
    }

    /// Counts how the connection ended and releases its place.
    pub(crate) fn finish(&self, end: End) {
        match end {
            End::Idle => {
                self.front.stats.closed_idle.fetch_add(1, Ordering::Relaxed);
            }
            End::Framing | End::Handshake => {
                self.front
                    .stats
                    .closed_framing
                    .fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        debug!(peer = %self.peer, ?end, "SIP connection closed");
        if let (Some(l), Some(t)) = (
            self.front.on_close.get(),
            permanence_types::Transport::parse(&self.transport.to_string()),
        ) {
            l(self.peer, t);
        }
        self.cancel.cancel();
        self.front.release(self.peer.ip());
    }

    async fn run<S>(&self, stream: S) -> End
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut rd, mut wr) = tokio::io::split(stream);
        let remote = SipAddr {
            r#type: Some(self.transport),
            addr: self.peer.into(),
        };
        let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel::<TransportEvent>();
        let mut handover: Option<Handover> = None;
        let mut buf: Vec<u8> = Vec::with_capacity(2048);
        let mut chunk = [0u8; 4096];
        let mut deadline = Instant::now() + self.front.idle();
        let end = loop {
            tokio::select! {
                _ = self.cancel.cancelled() => break End::Cancelled,
                _ = tokio::time::sleep_until(deadline), if !self.trusted => break End::Idle,
                ev = out_rx.recv() => {
                    // What rsipstack sends on this connection.
                    let Some(TransportEvent::Incoming(msg, _, _)) = ev else { continue };
                    if !write(&mut wr, &msg.to_bytes()).await {
                        break End::Io;
                    }
                }
                r = rd.read(&mut chunk) => {
                    let n = match r {
                        Ok(0) => break End::Closed,
                        Ok(n) => n,
                        Err(_) => break End::Io,
                    };
                    buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
                    match self.frames(&mut buf, &mut wr, &mut handover, &remote, &out_tx).await {
                        Ok(true) => deadline = Instant::now() + self.front.idle(),
                        Ok(false) => {}
                        Err(end) => break end,
                    }
                    if buf.capacity() > 16_384 && buf.len() < 2048 {
                        buf.shrink_to(2048);
                    }
                }
            }
        };
        // Dropping the sender ends rsipstack's side: it retires the
        // connection and its flow token.
        drop(handover);
        let _ = tokio::time::timeout(Duration::from_secs(1), wr.shutdown()).await;
        end
    }

    /// Handles every complete item at the start of `buf`. `Ok(true)` when
    /// a complete message or keep-alive arrived (activity).
    async fn frames<W: AsyncWrite + Unpin>(
        &self,
        buf: &mut Vec<u8>,
        wr: &mut W,
        handover: &mut Option<Handover>,
        remote: &SipAddr,
        out_tx: &tokio::sync::mpsc::UnboundedSender<TransportEvent>,
    ) -> Result<bool, End> {
        let mut active = false;
        loop {
            match next_frame(buf) {
                Frame::Incomplete => return Ok(active),
                Frame::KeepAlive { len, ping } => {
                    buf.drain(..len.min(buf.len()));
                    active = true;
                    if ping && !write(wr, b"\r\n").await {
                        return Err(End::Io);
                    }
                }
                Frame::Message { len, no_length } => {
                    let msg: Vec<u8> = buf.drain(..len.min(buf.len())).collect();
                    active = true;
                    if no_length {
                        // RFC 3261 §20.14: mandatory on streams.
                        if let Some(r) = self.answer(&msg, 400, "Missing Content-Length") {
                            if !write(wr, &r).await {
                                return Err(End::Io);
                            }
                        }
                        continue;
                    }
                    match self.front.door.judge(&msg, self.peer, &self.front.guard) {
                        Judged::Pass => self.pass(&msg, handover, remote, out_tx).await,
                        Judged::Respond(r) => {
                            if !write(wr, &r).await {
                                return Err(End::Io);
                            }
                        }
                        Judged::Nothing => {
                            if self.front.door.is_banned(self.peer.ip()) {
                                return Err(End::Banned);
                            }
                        }
                    }
                }
                Frame::Broken { reason, head } => {
                    debug!(peer = %self.peer, reason, "SIP stream cannot be framed: closing");
                    let head = buf.get(..head).unwrap_or(&[]);
                    let code = if reason == "Message Too Large" {
                        413
                    } else {
                        400
                    };
                    let response =
                        match check_datagram_as(head, self.peer, self.front.door.server()) {
                            permanence_sip::guard::Verdict::Respond { response, .. } => {
                                Some(response)
                            }
                            _ => self.answer(head, code, reason),
                        };
                    if let Some(r) = response {
                        let _ = write(wr, &r).await;
                    }
                    return Err(End::Framing);
                }
            }
        }
    }

    /// A stateless answer to a request (never to an ACK or a response).
    fn answer(&self, msg: &[u8], code: u16, reason: &str) -> Option<Vec<u8>> {
        if msg.is_empty() || msg.starts_with(b"SIP/") || msg.starts_with(b"ACK ") {
            return None;
        }
        stateless_reply(msg, self.peer, code, reason, &[], self.front.door.server())
    }

    /// Hands a checked message to rsipstack.
    pub(crate) async fn pass(
        &self,
        msg: &[u8],
        handover: &mut Option<Handover>,
        remote: &SipAddr,
        out_tx: &tokio::sync::mpsc::UnboundedSender<TransportEvent>,
    ) {
        let normalized = permanence_sip::guard::normalize(msg);
        let parsed = match SipMessage::try_from(normalized.as_deref().unwrap_or(msg)) {
            Ok(m) => m,
            Err(e) => {
                debug!(peer = %self.peer, error = %e, "unparsable SIP message dropped");
                return;
            }
        };
        let parsed = match SipConnection::update_msg_received(parsed, self.peer, self.transport) {
            Ok(m) => m,
            Err(e) => {
                debug!(peer = %self.peer, error = %e, "SIP message without a usable Via dropped");
                return;
            }
        };
        if handover.is_none() {
            let (inject, inject_rx) = tokio::sync::mpsc::unbounded_channel();
            let channel = match ChannelConnection::create_connection(
                inject_rx,
                out_tx.clone(),
                remote.clone(),
                Some(self.cancel.child_token()),
            )
            .await
            {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "cannot hand a connection to the SIP stack");
                    return;
                }
            };
            let connection = SipConnection::Channel(channel);
            self.endpoint
                .transport_layer
                .add_connection(connection.clone());
            *handover = Some(Handover { connection, inject });
        }
        if let Some(h) = handover {
            let _ = h.inject.send(TransportEvent::Incoming(
                parsed,
                h.connection.clone(),
                remote.clone(),
            ));
        }
    }
}

/// Writes all of `data`; false if the peer is gone or does not read.
pub(crate) async fn write<W: AsyncWrite + Unpin>(wr: &mut W, data: &[u8]) -> bool {
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, async {
            wr.write_all(data).await?;
            wr.flush().await
        })
        .await,
        Ok(Ok(()))
    )
}

/// The soft limit of open descriptors of this process (Linux
/// `/proc/self/limits`), if known.
pub fn descriptor_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The total connection cap actually used: `configured`, at most half the
/// descriptor limit `nofile` so that RTP sockets, the database and HTTP
/// always find descriptors (at least 1).
pub fn effective_total(configured: u32, nofile: Option<u64>) -> u32 {
    match nofile {
        Some(n) => {
            let half = u32::try_from(n / 2).unwrap_or(u32::MAX).max(1);
            configured.min(half)
        }
        None => configured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_counts_between_lines() {
        let mut t = Throttle::default();
        let t0 = std::time::Instant::now();
        assert_eq!(t.note(t0), Some(1));
        assert_eq!(t.note(t0 + Duration::from_secs(1)), None);
        assert_eq!(t.note(t0 + Duration::from_secs(2)), None);
        assert_eq!(t.note(t0 + Duration::from_secs(11)), Some(3));
    }

    #[test]
    fn total_cap_follows_descriptors() {
        assert_eq!(effective_total(1024, Some(256)), 128);
        assert_eq!(effective_total(100, Some(65_536)), 100);
        assert_eq!(effective_total(100, None), 100);
        assert_eq!(effective_total(100, Some(1)), 1);
    }

    #[test]
    fn reads_the_descriptor_limit() {
        if cfg!(target_os = "linux") {
            assert!(descriptor_limit().is_some_and(|n| n > 0));
        }
    }
}
