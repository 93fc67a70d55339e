//! The media engine: call legs (one UDP socket on a random even port and
//! one tokio task each) with playout, DTMF detection, strict source
//! learning (see [`crate::source`]), inactivity timeout, bridging and
//! recording.
//!
//! Concurrency model: each leg's task owns the receive side of its socket
//! and all receive state. The outgoing stream of a leg ([`TxStream`],
//! destination, negotiated codec) sits behind a per-leg mutex so that, when
//! two legs are bridged, the task of leg A can stamp and send A's received
//! packets directly on leg B's socket (`try_send_to`, never blocking)
//! without an extra hop. Only the two legs of a bridge ever touch that
//! mutex; nothing on the packet path is shared by all calls. The port
//! allocator's mutex is taken only when a leg opens or closes.
//!
//! SRTP (see [`crate::srtp`]): when a leg's remote media carries a key,
//! what the leg receives is authenticated (and checked against replays)
//! before anything else looks at it, then decrypted in the receive buffer;
//! a packet that fails is dropped and counted, and teaches the source
//! guard nothing. What is sent on the leg (playout, relayed audio and DTMF)
//! is encrypted last, in the sender's packet buffer, under the leg's
//! outgoing-stream mutex. Each leg has its own random master key for the
//! life of the leg ([`Leg::srtp_key`]), announced in its SDP.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rtp_rs::RtpReader;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};

use crate::ports::{PortAllocator, PortLease};
use crate::record::{Recorder, RecordingEnd};
use crate::rtp::{
    self, DtmfDetector, InLeg, OutLeg, Player, Playlist, RemoteMedia, SeqEvent, SeqTracker,
    TxStream, MAX_PACKET,
};
use crate::source::{ForeignKind, SignalledPeer, SourceGuard, Verdict, DEFAULT_PROBATION};
use crate::srtp::{MasterKey, SrtpError, SrtpReceiver, SrtpSender, SuiteKey, MAX_TAG_LEN};

/// Playout packet interval.
const PTIME: Duration = Duration::from_millis(20);
/// If the playout ticker falls this far behind, it re-synchronises instead
/// of bursting the missed packets.
const MAX_PLAYOUT_LAG: Duration = Duration::from_millis(100);
/// Distinct foreign source IPs logged per leg (each once); beyond them one
/// last line says that further ones are only counted.
const FOREIGN_LOG_MAX: usize = 4;
/// Receive buffer size (larger datagrams are truncated and counted as
/// garbage if they fail to parse).
const RECV_BUF: usize = 2048;
/// Datagrams a leg reads in one wake-up before it lets its other inputs
/// (commands, playout, timeout) and other tasks run.
const RECV_BATCH: usize = 32;

thread_local! {
    /// What a leg receives, read straight from its socket. One buffer per
    /// worker thread, not per leg: a leg never holds it across an await
    /// (readiness first, then non-blocking reads), which saves 2 KB per
    /// leg.
    static RX_BUF: std::cell::RefCell<[u8; RECV_BUF]> =
        const { std::cell::RefCell::new([0; RECV_BUF]) };
    /// Packets built for sending (playout, relay), with room for an SRTP
    /// tag; sends are synchronous, so one per worker thread is enough.
    static TX_BUF: std::cell::RefCell<[u8; MAX_PACKET + MAX_TAG_LEN]> =
        const { std::cell::RefCell::new([0; MAX_PACKET + MAX_TAG_LEN]) };
}

/// Errors of the media engine.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// Invalid [`MediaConfig`].
    #[error("invalid media configuration: {0}")]
    Config(String),
    /// Every even port of the range is in use.
    #[error("no free RTP port in {min}-{max}")]
    PortsExhausted {
        /// Range start.
        min: u16,
        /// Range end.
        max: u16,
    },
    /// Binding failed for a reason other than the port being in use.
    #[error("cannot bind RTP socket on {addr}: {error}")]
    Bind {
        /// Address tried.
        addr: SocketAddr,
        /// OS error.
        #[source]
        error: std::io::Error,
    },
    /// Not called from within a tokio runtime.
    #[error("the media engine must be used from within a tokio runtime")]
    NoRuntime,
    /// The leg's task has ended (leg closed).
    #[error("leg is closed")]
    Closed,
    /// A leg cannot be bridged to itself.
    #[error("cannot bridge a leg to itself")]
    SelfBridge,
}

/// Engine configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaConfig {
    /// Local address RTP sockets bind to (e.g. 0.0.0.0 or a specific IP).
    pub bind_ip: IpAddr,
    /// Address written in SDP (public address of the switch).
    pub advertise_ip: IpAddr,
    /// First port of the RTP range (inclusive).
    pub port_min: u16,
    /// Last port of the RTP range (inclusive). Only even ports are used.
    pub port_max: u16,
    /// Inactivity timeout: a leg reports [`MediaEvent::RtpTimeout`] (or
    /// [`MediaEvent::NoRtp`]) when no RTP arrived for this long.
    pub rtp_timeout: Duration,
    /// Capacity of each leg's event channel (events beyond it are dropped
    /// if the consumer does not keep up).
    pub event_capacity: usize,
    /// Strict source learning: packets in sequence (one SSRC, consecutive
    /// sequence numbers) a source must send before a leg accepts its media
    /// and sends there; those packets are dropped (see [`crate::source`]).
    /// 1 learns at the first packet from an expected address.
    pub probation: u8,
}

impl MediaConfig {
    /// A configuration binding and advertising `ip`, ports `port_min..=port_max`,
    /// 30 s RTP timeout, probation of [`DEFAULT_PROBATION`] packets.
    pub fn new(ip: IpAddr, port_min: u16, port_max: u16) -> Self {
        MediaConfig {
            bind_ip: ip,
            advertise_ip: ip,
            port_min,
            port_max,
            rtp_timeout: Duration::from_secs(30),
            event_capacity: 64,
            probation: DEFAULT_PROBATION,
        }
    }
}

/// Events a leg reports on its channel.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaEvent {
    /// The leg learnt this source address (after its probation, or after
    /// it proved to continue the locked stream from a new address: NAT
    /// rebinding); media is accepted from it only, and sent there.
    Latched(SocketAddr),
    /// A non-looping playlist played to the end.
    PlaybackFinished,
    /// An RFC 4733 DTMF digit (`0-9`, `*`, `#`, `A-D`), reported once per
    /// key press.
    Dtmf(char),
    /// RTP stopped: none for `rtp_timeout` after packets had been received.
    RtpTimeout,
    /// No RTP at all within `rtp_timeout` of the remote being set.
    NoRtp,
    /// A recording was finalised.
    RecordingFinished {
        /// The WAV file written.
        path: PathBuf,
        /// Audio length written.
        duration: Duration,
        /// Why it ended.
        reason: RecordingEnd,
    },
    /// A recording could not be written.
    RecordingFailed {
        /// The WAV file attempted.
        path: PathBuf,
        /// What went wrong.
        error: String,
    },
}

/// A snapshot of a leg's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LegStats {
    /// Valid RTP packets received from the far end.
    pub packets_in: u64,
    /// Bytes of those packets.
    pub bytes_in: u64,
    /// RTP packets sent to the far end (playout and relayed).
    pub packets_out: u64,
    /// Bytes of those packets.
    pub bytes_out: u64,
    /// Packets missing in the received sequence numbers.
    pub lost: u64,
    /// Packets received late / out of order / duplicated.
    pub late: u64,
    /// Datagrams that were not valid RTP, or of an unexpected payload type.
    pub garbage: u64,
    /// Valid RTP from a source the leg does not accept (not the expected
    /// peer, or another source than the locked one): dropped. Hijack
    /// attempts show here.
    pub foreign: u64,
    /// Valid RTP from a source in probation (dropped until it is learnt).
    pub probation: u64,
    /// DTMF digits detected.
    pub dtmf: u64,
    /// Packets that could not be sent (socket buffer full or error).
    pub send_errors: u64,
    /// Recorded samples dropped because the writer fell behind.
    pub record_dropped: u64,
    /// SRTP packets that failed authentication (forged, corrupted, another
    /// key) or were not SRTP: dropped.
    pub srtp_auth_failed: u64,
    /// SRTP packets replayed or too old for the replay window: dropped.
    pub srtp_replayed: u64,
}

#[derive(Default)]
struct Counters {
    packets_in: AtomicU64,
    bytes_in: AtomicU64,
    packets_out: AtomicU64,
    bytes_out: AtomicU64,
    lost: AtomicU64,
    late: AtomicU64,
    garbage: AtomicU64,
    foreign: AtomicU64,
    probation: AtomicU64,
    dtmf: AtomicU64,
    send_errors: AtomicU64,
    record_dropped: AtomicU64,
    srtp_auth_failed: AtomicU64,
    srtp_replayed: AtomicU64,
}

#[inline]
fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    fn snapshot(&self) -> LegStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        LegStats {
            packets_in: g(&self.packets_in),
            bytes_in: g(&self.bytes_in),
            packets_out: g(&self.packets_out),
            bytes_out: g(&self.bytes_out),
            lost: g(&self.lost),
            late: g(&self.late),
            garbage: g(&self.garbage),
            foreign: g(&self.foreign),
            probation: g(&self.probation),
            dtmf: g(&self.dtmf),
            send_errors: g(&self.send_errors),
            record_dropped: g(&self.record_dropped),
            srtp_auth_failed: g(&self.srtp_auth_failed),
            srtp_replayed: g(&self.srtp_replayed),
        }
    }
}

/// Who may send on a leg's outgoing stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// The leg's own playout.
    Local,
    /// The bridged peer's relay, for this bridge id.
    Bridge(u64),
}

/// Per-leg outgoing state, shared with a bridged peer's task.
struct TxState {
    stream: TxStream,
    remote: Option<RemoteMedia>,
    /// The peer as signalled (as the leg task's [`SourceGuard`] sees it).
    peer: Option<SignalledPeer>,
    /// The learnt source, else the SDP address (never an unverified
    /// source).
    dest: Option<SocketAddr>,
    owner: Owner,
    /// SRTP protection of what is sent, when negotiated (boxed: only SRTP
    /// legs pay for its ~900 bytes of key schedule).
    srtp: Option<Box<SrtpSender>>,
}

impl TxState {
    /// Destination and settings if the far end currently wants our media.
    fn sendable(&self) -> Option<(SocketAddr, RemoteMedia)> {
        let r = self.remote?;
        // Held with c=0.0.0.0, or not receiving: send nothing.
        if r.addr.is_none() || !r.direction.receives() {
            return None;
        }
        Some((self.dest?, r))
    }

    /// Encrypts the RTP packet `buf[..len]` in place when the leg is SRTP;
    /// returns the length to send (`None`: not sendable).
    #[inline]
    fn seal(&mut self, buf: &mut [u8], len: usize) -> Option<usize> {
        match self.srtp.as_mut() {
            None => Some(len),
            Some(s) => s.protect(buf, len).ok(),
        }
    }
}

struct LegShared {
    socket: UdpSocket,
    tx: Mutex<TxState>,
    counters: Counters,
    /// Our SRTP master key (what we encrypt with when SRTP is negotiated).
    srtp_key: MasterKey,
    _lease: PortLease,
}

impl LegShared {
    #[inline]
    fn send(&self, buf: &[u8], dest: SocketAddr) {
        match self.socket.try_send_to(buf, dest) {
            Ok(n) => {
                bump(&self.counters.packets_out, 1);
                bump(&self.counters.bytes_out, n as u64);
            }
            Err(_) => bump(&self.counters.send_errors, 1),
        }
    }
}

// ---------------------------------------------------------------------------
// Engine

struct EngineInner {
    config: MediaConfig,
    ports: Arc<PortAllocator>,
    next_bridge: AtomicU64,
}

/// The media engine: cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct MediaEngine {
    inner: Arc<EngineInner>,
}

impl std::fmt::Debug for MediaEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaEngine")
            .field("config", &self.inner.config)
            .field("ports_in_use", &self.ports_in_use())
            .finish()
    }
}

impl MediaEngine {
    /// Creates an engine; checks that the port range holds an even port.
    pub fn new(config: MediaConfig) -> Result<Self, MediaError> {
        if config.port_min == 0 || config.port_min > config.port_max {
            return Err(MediaError::Config(format!(
                "port range {}-{} is empty or starts at 0",
                config.port_min, config.port_max
            )));
        }
        if config.port_min == config.port_max && config.port_min % 2 == 1 {
            return Err(MediaError::Config(format!(
                "port range {}-{} holds no even port",
                config.port_min, config.port_max
            )));
        }
        if config.rtp_timeout.is_zero() || config.event_capacity == 0 {
            return Err(MediaError::Config(
                "rtp_timeout and event_capacity must be non-zero".into(),
            ));
        }
        let ports = Arc::new(PortAllocator::new(
            config.bind_ip,
            config.port_min,
            config.port_max,
        ));
        Ok(MediaEngine {
            inner: Arc::new(EngineInner {
                config,
                ports,
                next_bridge: AtomicU64::new(1),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &MediaConfig {
        &self.inner.config
    }

    /// Number of RTP ports currently held by open legs.
    pub fn ports_in_use(&self) -> usize {
        self.inner.ports.in_use()
    }

    /// Opens a leg on a random free even port and starts its task. Must be
    /// called within a tokio runtime. Returns the leg and its event
    /// receiver.
    pub fn open_leg(&self) -> Result<(Leg, mpsc::Receiver<MediaEvent>), MediaError> {
        let rt = tokio::runtime::Handle::try_current().map_err(|_| MediaError::NoRuntime)?;
        let (std_sock, lease) = self.inner.ports.allocate()?;
        let port = lease.port;
        let addr = SocketAddr::new(self.inner.config.bind_ip, port);
        let bind_err = |error| MediaError::Bind { addr, error };
        std_sock.set_nonblocking(true).map_err(bind_err)?;
        let socket = {
            let _guard = rt.enter();
            UdpSocket::from_std(std_sock).map_err(bind_err)?
        };
        let shared = Arc::new(LegShared {
            socket,
            tx: Mutex::new(TxState {
                stream: TxStream::new(),
                remote: None,
                peer: None,
                dest: None,
                owner: Owner::Local,
                srtp: None,
            }),
            counters: Counters::default(),
            srtp_key: MasterKey::random(),
            _lease: lease,
        });
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::channel(self.inner.config.event_capacity);
        let task = LegTask::new(shared.clone(), cmd_rx, ev_tx, &self.inner.config, port);
        let join = rt.spawn(task.run());
        Ok((
            Leg {
                shared,
                cmd: cmd_tx,
                local: SocketAddr::new(self.inner.config.advertise_ip, port),
                join: Some(join),
                engine: self.clone(),
            },
            ev_rx,
        ))
    }

    /// Bridges two legs (see [`bridge`]).
    pub fn bridge(&self, a: &Leg, b: &Leg) -> Result<(), MediaError> {
        bridge(a, b)
    }

    /// Unbridges two legs (see [`unbridge`]).
    pub fn unbridge(&self, a: &Leg, b: &Leg) {
        unbridge(a, b)
    }
}

// ---------------------------------------------------------------------------
// Leg handle

/// A command to a leg's task. The large payloads are boxed: a channel
/// allocates its slots in blocks of 32 commands, so the largest variant
/// sets what each leg's command channel costs (88 bytes a slot inline).
enum Command {
    SetRemote(Box<RemoteMedia>),
    Play(Box<Playlist>),
    StopPlayback,
    Bridge {
        id: u64,
        peer: Arc<LegShared>,
        peer_cmd: mpsc::UnboundedSender<Command>,
    },
    /// Leave bridge `id` (or any bridge with `None`).
    Unbridge(Option<u64>),
    Record(Box<(PathBuf, Duration)>),
    StopRecording,
    Close,
}

/// One call side: a UDP socket on an even port and the task serving it.
/// Dropping it (or [`Leg::close`]) stops the task and frees the port.
pub struct Leg {
    shared: Arc<LegShared>,
    cmd: mpsc::UnboundedSender<Command>,
    local: SocketAddr,
    join: Option<JoinHandle<()>>,
    engine: MediaEngine,
}

impl std::fmt::Debug for Leg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leg").field("local", &self.local).finish()
    }
}

impl Leg {
    fn send(&self, c: Command) -> Result<(), MediaError> {
        self.cmd.send(c).map_err(|_| MediaError::Closed)
    }

    /// Advertised address and RTP port, for SDP.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The RTP port.
    pub fn port(&self) -> u16 {
        self.local.port()
    }

    /// The SSRC of the stream this leg sends.
    pub fn ssrc(&self) -> u32 {
        self.shared.tx.lock().stream.ssrc()
    }

    /// This leg's own SRTP master key, fresh and random for each leg and
    /// kept for its life: the key our SDP announces (offer or answer) and
    /// that what the leg sends is encrypted with when the remote media
    /// carries SRTP. Never log it.
    pub fn srtp_key(&self) -> MasterKey {
        self.shared.srtp_key
    }

    /// Sets (or updates, on re-INVITE/UPDATE) the negotiated remote media
    /// and re-arms the inactivity timeout. The first call, and any call
    /// naming another peer (SDP address or signalling IP changed), starts
    /// source learning afresh and sends to the SDP address until a source
    /// is learnt; a call naming the same peer (refresh, hold and resume,
    /// codec change) keeps the learnt source. A hold with `c=0.0.0.0`
    /// stops sending and keeps the peer.
    ///
    /// With [`RemoteMedia::srtp`], the leg speaks SRTP: it sends encrypted
    /// with [`Leg::srtp_key`] and accepts only what authenticates with the
    /// remote's key. The same keys again (re-INVITE) keep the SRTP state
    /// (rollover counters, replay window); a new key starts afresh.
    pub fn set_remote(&self, remote: RemoteMedia) -> Result<(), MediaError> {
        {
            let mut tx = self.shared.tx.lock();
            let ours = remote.srtp.map(|r| SuiteKey {
                suite: r.suite,
                key: self.shared.srtp_key,
            });
            if tx.srtp.as_ref().map(|s| *s.suite_key()) != ours {
                tx.srtp = ours.map(|k| Box::new(SrtpSender::new(k)));
            }
            let peer = SignalledPeer::next(tx.peer, remote.addr, remote.signalling_ip);
            if tx.peer != Some(peer) {
                tx.dest = remote.addr;
            }
            tx.peer = Some(peer);
            tx.remote = Some(remote);
        }
        self.send(Command::SetRemote(Box::new(remote)))
    }

    /// Replaces what is playing with `playlist` (sequence numbers and
    /// timestamps continue; the first packet carries the marker bit).
    /// Ignored while the leg is bridged.
    pub fn play(&self, playlist: Playlist) -> Result<(), MediaError> {
        self.send(Command::Play(Box::new(playlist)))
    }

    /// Stops playback (no `PlaybackFinished`); the leg sends nothing.
    pub fn stop_playback(&self) -> Result<(), MediaError> {
        self.send(Command::StopPlayback)
    }

    /// Records what the far end sends to `path` (8 kHz mono 16-bit WAV), at
    /// most `max` long; replaces a recording in progress. Completion or
    /// failure is reported as an event.
    pub fn record(&self, path: impl Into<PathBuf>, max: Duration) -> Result<(), MediaError> {
        self.send(Command::Record(Box::new((path.into(), max))))
    }

    /// Stops and finalises the recording in progress.
    pub fn stop_recording(&self) -> Result<(), MediaError> {
        self.send(Command::StopRecording)
    }

    /// Leaves any bridge (both legs return to idle).
    pub fn unbridge(&self) -> Result<(), MediaError> {
        self.send(Command::Unbridge(None))
    }

    /// Current counters.
    pub fn stats(&self) -> LegStats {
        self.shared.counters.snapshot()
    }

    /// The engine this leg belongs to.
    pub fn engine(&self) -> &MediaEngine {
        &self.engine
    }

    /// Stops the task, waits for it and frees the port.
    pub async fn close(mut self) {
        let _ = self.cmd.send(Command::Close);
        if let Some(j) = self.join.take() {
            let _ = j.await;
        }
    }
}

impl Drop for Leg {
    fn drop(&mut self) {
        let _ = self.cmd.send(Command::Close);
    }
}

/// Bridges legs `a` and `b`: RTP received on each is relayed to the other
/// (payload copied, or transcoded PCMU<->PCMA; telephone-event payload type
/// rewritten, or dropped if the other side negotiated none), re-stamped on
/// the receiving leg's own continuous stream. Playback stops on both legs.
/// Replaces any previous bridge of either leg.
pub fn bridge(a: &Leg, b: &Leg) -> Result<(), MediaError> {
    if Arc::ptr_eq(&a.shared, &b.shared) {
        return Err(MediaError::SelfBridge);
    }
    if a.cmd.is_closed() || b.cmd.is_closed() {
        return Err(MediaError::Closed);
    }
    let id = a.engine.inner.next_bridge.fetch_add(1, Ordering::Relaxed);
    // Take ownership of both outgoing streams now so no playout packet
    // interleaves with relayed ones.
    a.shared.tx.lock().owner = Owner::Bridge(id);
    b.shared.tx.lock().owner = Owner::Bridge(id);
    let sent = a
        .send(Command::Bridge {
            id,
            peer: b.shared.clone(),
            peer_cmd: b.cmd.clone(),
        })
        .and_then(|()| {
            b.send(Command::Bridge {
                id,
                peer: a.shared.clone(),
                peer_cmd: a.cmd.clone(),
            })
        });
    if sent.is_err() {
        unbridge(a, b);
    }
    sent
}

/// Ends the bridge between `a` and `b` (if any); both legs become idle and
/// can `play` again.
pub fn unbridge(a: &Leg, b: &Leg) {
    for l in [a, b] {
        {
            let mut tx = l.shared.tx.lock();
            tx.owner = Owner::Local;
        }
        let _ = l.cmd.send(Command::Unbridge(None));
    }
}

// ---------------------------------------------------------------------------
// Leg task

struct Peer {
    id: u64,
    shared: Arc<LegShared>,
    cmd: mpsc::UnboundedSender<Command>,
}

struct Playing {
    player: Player,
    start: Instant,
    ticks: u64,
    restart: bool,
}

struct LegTask {
    shared: Arc<LegShared>,
    cmd_rx: mpsc::UnboundedReceiver<Command>,
    events: mpsc::Sender<MediaEvent>,
    timeout: Duration,
    /// Our RTP port (logs).
    port: u16,
    remote: Option<RemoteMedia>,
    guard: SourceGuard,
    /// Foreign source IPs already logged.
    foreign_logged: [Option<IpAddr>; FOREIGN_LOG_MAX],
    /// Whether the line saying further foreign sources are not logged was
    /// written.
    foreign_log_full: bool,
    last_rx: Option<Instant>,
    /// When the inactivity timeout was armed; `None` = disarmed.
    armed_at: Option<Instant>,
    received_any: bool,
    seq: SeqTracker,
    dtmf: DtmfDetector,
    playing: Option<Playing>,
    peer: Option<Peer>,
    recorder: Option<Recorder>,
    /// SRTP check and decryption of what is received, when negotiated.
    /// (Boxed: only SRTP legs pay for its ~900 bytes.)
    srtp: Option<Box<SrtpReceiver>>,
    /// Whether an SRTP authentication failure was logged (once per leg).
    srtp_failure_logged: bool,
}

impl LegTask {
    fn new(
        shared: Arc<LegShared>,
        cmd_rx: mpsc::UnboundedReceiver<Command>,
        events: mpsc::Sender<MediaEvent>,
        config: &MediaConfig,
        port: u16,
    ) -> Box<Self> {
        Box::new(LegTask {
            shared,
            cmd_rx,
            events,
            timeout: config.rtp_timeout,
            port,
            remote: None,
            guard: SourceGuard::new(config.probation),
            foreign_logged: [None; FOREIGN_LOG_MAX],
            foreign_log_full: false,
            last_rx: None,
            armed_at: None,
            received_any: false,
            seq: SeqTracker::default(),
            dtmf: DtmfDetector::default(),
            playing: None,
            peer: None,
            recorder: None,
            srtp: None,
            srtp_failure_logged: false,
        })
    }

    fn emit(&self, ev: MediaEvent) {
        if self.events.try_send(ev).is_err() {
            tracing::debug!("media event dropped (channel full or closed)");
        }
    }

    async fn run(mut self: Box<Self>) {
        let shared = self.shared.clone();
        let far = Instant::now() + Duration::from_secs(86400 * 365);
        let play_sleep = sleep_until(far);
        let timeout_sleep = sleep_until(far);
        tokio::pin!(play_sleep);
        tokio::pin!(timeout_sleep);
        loop {
            let playing = self.playing.is_some();
            let armed = self.armed_at.is_some();
            tokio::select! {
                biased;
                cmd = self.cmd_rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    if matches!(cmd, Command::Close) {
                        break;
                    }
                    self.handle(cmd);
                    if let Some(p) = &self.playing {
                        if p.ticks == 0 {
                            play_sleep.as_mut().reset(p.start);
                        }
                    }
                    if let Some(deadline) = self.timeout_deadline() {
                        timeout_sleep.as_mut().reset(deadline);
                    }
                }
                () = &mut play_sleep, if playing => {
                    if let Some(next) = self.tick() {
                        play_sleep.as_mut().reset(next);
                    }
                }
                () = &mut timeout_sleep, if armed => {
                    if let Some(next) = self.check_timeout() {
                        timeout_sleep.as_mut().reset(next);
                    }
                }
                res = shared.socket.readable() => {
                    if res.is_ok() && self.read_datagrams(&shared.socket) {
                        if let Some(deadline) = self.timeout_deadline() {
                            timeout_sleep.as_mut().reset(deadline);
                        }
                    }
                }
            }
        }
        self.shutdown();
    }

    /// Reads what the socket holds (at most [`RECV_BATCH`] datagrams) into
    /// the thread's receive buffer and handles each. Returns true when the
    /// inactivity timer must be re-armed.
    fn read_datagrams(&mut self, socket: &UdpSocket) -> bool {
        RX_BUF.with_borrow_mut(|buf| {
            let mut resumed = false;
            for _ in 0..RECV_BATCH {
                match socket.try_recv_from(&mut buf[..]) {
                    Ok((n, src)) => {
                        resumed |= self.on_datagram(buf.get_mut(..n).unwrap_or(&mut []), src);
                    }
                    // WouldBlock: drained, readiness cleared. Any other
                    // error (ICMP unreachable reported on the socket):
                    // the next datagram is read on the next wake-up.
                    Err(_) => break,
                }
            }
            resumed
        })
    }

    fn shutdown(&mut self) {
        if let Some(r) = self.recorder.take() {
            bump(&self.shared.counters.record_dropped, r.dropped);
            r.finish(RecordingEnd::LegClosed);
        }
        self.leave_bridge(None);
    }

    fn leave_bridge(&mut self, only: Option<u64>) {
        let matches = match (&self.peer, only) {
            (Some(p), Some(id)) => p.id == id,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if !matches {
            return;
        }
        if let Some(p) = self.peer.take() {
            {
                let mut tx = p.shared.tx.lock();
                if tx.owner == Owner::Bridge(p.id) {
                    tx.owner = Owner::Local;
                }
            }
            let mut own = self.shared.tx.lock();
            if own.owner == Owner::Bridge(p.id) {
                own.owner = Owner::Local;
            }
            drop(own);
            let _ = p.cmd.send(Command::Unbridge(Some(p.id)));
        }
    }

    fn timeout_deadline(&self) -> Option<Instant> {
        let armed = self.armed_at?;
        let since = match self.last_rx {
            Some(t) if t > armed => t,
            _ => armed,
        };
        Some(since + self.timeout)
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::SetRemote(r) => {
                let r = *r;
                if self.srtp.as_ref().map(|s| *s.suite_key()) != r.srtp {
                    self.srtp = r.srtp.map(|k| Box::new(SrtpReceiver::new(k)));
                }
                self.remote = Some(r);
                if self.guard.signal(r.addr, r.signalling_ip) {
                    // A new peer: learn again; until then, send where SDP
                    // says (a source learnt meanwhile is forgotten).
                    self.shared.tx.lock().dest = r.addr;
                }
                self.armed_at = r.direction.sends().then(Instant::now);
            }
            Command::Play(list) => {
                if self.peer.is_some() {
                    return;
                }
                self.playing = Some(Playing {
                    player: Player::new(*list),
                    start: Instant::now(),
                    ticks: 0,
                    restart: true,
                });
            }
            Command::StopPlayback => self.playing = None,
            Command::Bridge { id, peer, peer_cmd } => {
                self.playing = None;
                if let Some(old) = self.peer.take() {
                    if old.id != id {
                        let mut tx = old.shared.tx.lock();
                        if tx.owner == Owner::Bridge(old.id) {
                            tx.owner = Owner::Local;
                        }
                        drop(tx);
                        let _ = old.cmd.send(Command::Unbridge(Some(old.id)));
                    }
                }
                self.peer = Some(Peer {
                    id,
                    shared: peer,
                    cmd: peer_cmd,
                });
            }
            Command::Unbridge(only) => self.leave_bridge(only),
            Command::Record(rec) => {
                let (path, max) = *rec;
                if let Some(r) = self.recorder.take() {
                    bump(&self.shared.counters.record_dropped, r.dropped);
                    r.finish(RecordingEnd::Stopped);
                }
                self.recorder = Some(Recorder::start(path, max, self.events.clone()));
            }
            Command::StopRecording => {
                if let Some(r) = self.recorder.take() {
                    bump(&self.shared.counters.record_dropped, r.dropped);
                    r.finish(RecordingEnd::Stopped);
                }
            }
            Command::Close => {}
        }
    }

    /// Sends one playout frame; returns the next deadline, or `None` when
    /// playback ended.
    fn tick(&mut self) -> Option<Instant> {
        let now = Instant::now();
        let p = self.playing.as_mut()?;
        let mut restart = std::mem::replace(&mut p.restart, false);
        let deadline = p.start + PTIME * (p.ticks as u32);
        if now.saturating_duration_since(deadline) > MAX_PLAYOUT_LAG {
            // Starved: re-synchronise rather than burst.
            p.start = now;
            p.ticks = 0;
            restart = true;
        }
        let mut tx = self.shared.tx.lock();
        let codec = tx.remote.map(|r| r.codec).unwrap_or(crate::Codec::Pcmu);
        let Some(frame) = p.player.next_frame(codec) else {
            drop(tx);
            self.playing = None;
            self.emit(MediaEvent::PlaybackFinished);
            return None;
        };
        p.ticks += 1;
        let next = p.start + PTIME * (p.ticks.min(u64::from(u32::MAX)) as u32);
        if tx.owner != Owner::Local {
            return Some(next);
        }
        let Some((dest, remote)) = tx.sendable() else {
            return Some(next);
        };
        TX_BUF.with_borrow_mut(|buf| {
            let built = rtp::build_playout_packet(
                buf,
                &mut tx.stream,
                remote.payload_type,
                frame,
                now.into_std(),
                restart,
            )
            .and_then(|len| tx.seal(buf, len));
            drop(tx);
            if let Some(pkt) = built.and_then(|len| buf.get(..len)) {
                self.shared.send(pkt, dest);
            }
        });
        Some(next)
    }

    /// Inactivity check; returns the next deadline to wait for, `None` once
    /// reported (re-armed by the next packet).
    fn check_timeout(&mut self) -> Option<Instant> {
        let deadline = self.timeout_deadline()?;
        if Instant::now() < deadline {
            return Some(deadline);
        }
        self.armed_at = None;
        self.emit(if self.received_any {
            MediaEvent::RtpTimeout
        } else {
            MediaEvent::NoRtp
        });
        None
    }

    /// Handles one datagram (decrypted in place first on an SRTP leg).
    /// Returns true when the inactivity timer must be re-armed (RTP
    /// resumed after a timeout).
    fn on_datagram(&mut self, data: &mut [u8], src: SocketAddr) -> bool {
        let c = &self.shared.counters;
        let data: &[u8] = match self.srtp.as_mut() {
            None => data,
            // RTCP multiplexed on the RTP port (RFC 5761): we use none.
            Some(_) if data.get(1).is_some_and(|b| (192..=223).contains(b)) => {
                bump(&c.garbage, 1);
                return false;
            }
            Some(rx) => match rx.unprotect(data) {
                Ok(n) => data.get(..n).unwrap_or(&[]),
                Err(e) => {
                    self.srtp_refused(e, src);
                    return false;
                }
            },
        };
        let c = &self.shared.counters;
        let Ok(pkt) = RtpReader::new(data) else {
            bump(&c.garbage, 1);
            return false;
        };
        let Some(remote) = self.remote else {
            // No SDP yet: cannot validate nor learn.
            bump(&c.garbage, 1);
            return false;
        };
        let pt = pkt.payload_type();
        let is_audio = pt == remote.payload_type;
        let is_dtmf = Some(pt) == remote.dtmf_payload_type;
        let is_cn = pt == rtp::PT_COMFORT_NOISE;
        if !is_audio && !is_dtmf && !is_cn {
            bump(&c.garbage, 1);
            return false;
        }
        // Strict source: only the learnt source's packets go further;
        // comfort noise and DTMF from it are signs of life like audio.
        match self
            .guard
            .check(src, pkt.ssrc(), pkt.sequence_number().into())
        {
            Verdict::Accept => {}
            Verdict::Learned(addr) => self.learnt(addr, false, &remote),
            Verdict::Moved(addr) => self.learnt(addr, true, &remote),
            Verdict::Probation => {
                bump(&c.probation, 1);
                return false;
            }
            Verdict::Foreign(kind) => {
                bump(&c.foreign, 1);
                self.log_foreign(src, kind, &remote);
                return false;
            }
        }
        let c = &self.shared.counters;
        let now = Instant::now();
        bump(&c.packets_in, 1);
        bump(&c.bytes_in, data.len() as u64);
        self.last_rx = Some(now);
        self.received_any = true;
        match self.seq.on_packet(pkt.ssrc(), pkt.sequence_number().into()) {
            SeqEvent::InOrder => {}
            SeqEvent::Gap(n) => bump(&c.lost, u64::from(n)),
            SeqEvent::Late => bump(&c.late, 1),
        }
        if is_dtmf {
            if let Some(d) = self.dtmf.on_packet(pkt.timestamp(), pkt.payload()) {
                bump(&c.dtmf, 1);
                self.emit(MediaEvent::Dtmf(d));
            }
        } else if !is_audio {
            // Comfort noise: a sign of life (timeout, source), never
            // recorded nor relayed.
        } else if let Some(r) = self.recorder.as_mut() {
            if !r.push(remote.codec, pkt.payload()) {
                if let Some(r) = self.recorder.take() {
                    bump(&c.record_dropped, r.dropped);
                    r.finish(RecordingEnd::MaxDuration);
                }
            }
        }
        if let Some(peer) = self.peer.as_ref().filter(|_| !is_cn) {
            let mut tx = peer.shared.tx.lock();
            if tx.owner == Owner::Bridge(peer.id) {
                if let Some((dest, out)) = tx.sendable() {
                    let from = InLeg {
                        codec: remote.codec,
                        payload_type: remote.payload_type,
                        dtmf_payload_type: remote.dtmf_payload_type,
                    };
                    let to = OutLeg {
                        codec: out.codec,
                        payload_type: out.payload_type,
                        dtmf_payload_type: out.dtmf_payload_type,
                    };
                    TX_BUF.with_borrow_mut(|buf| {
                        let len = rtp::relay_packet(
                            &pkt,
                            peer.id,
                            from,
                            to,
                            &mut tx.stream,
                            buf,
                            now.into_std(),
                        )
                        .and_then(|len| tx.seal(buf, len));
                        drop(tx);
                        if let Some(out_pkt) = len.and_then(|l| buf.get(..l)) {
                            peer.shared.send(out_pkt, dest);
                        }
                    });
                }
            }
        }
        // Re-arm the inactivity timer if it had fired.
        if self.armed_at.is_none() && remote.direction.sends() {
            self.armed_at = Some(now);
            return true;
        }
        false
    }

    /// Counts an SRTP packet refused; logs the first authentication failure
    /// of the leg (a key mismatch shows there), never a key, never per
    /// packet.
    #[cold]
    fn srtp_refused(&mut self, e: SrtpError, src: SocketAddr) {
        let c = &self.shared.counters;
        if e == SrtpError::Replay {
            bump(&c.srtp_replayed, 1);
            return;
        }
        bump(&c.srtp_auth_failed, 1);
        if !self.srtp_failure_logged {
            self.srtp_failure_logged = true;
            tracing::info!(
                event = "rtp.srtp_refused",
                port = self.port,
                source = %src,
                error = %e,
                "SRTP packet refused: dropped (counted, not logged again for this leg)"
            );
        }
    }

    /// A source was learnt (or the locked stream moved, `moved`): send
    /// there from now on.
    #[cold]
    fn learnt(&mut self, addr: SocketAddr, moved: bool, remote: &RemoteMedia) {
        self.shared.tx.lock().dest = Some(addr);
        if moved {
            tracing::info!(
                event = "rtp.source_moved",
                port = self.port,
                source = %addr,
                "RTP stream continued from a new address (NAT rebinding): now locked there"
            );
        } else {
            tracing::debug!(
                event = "rtp.learnt",
                port = self.port,
                source = %addr,
                sdp = ?remote.addr,
                "RTP source learnt"
            );
        }
        self.emit(MediaEvent::Latched(addr));
    }

    /// Logs a refused source: once per source IP, for at most
    /// [`FOREIGN_LOG_MAX`] IPs per leg, then one line saying the rest are
    /// only counted. Never per packet.
    #[cold]
    fn log_foreign(&mut self, src: SocketAddr, kind: ForeignKind, remote: &RemoteMedia) {
        let ip = src.ip();
        if self.foreign_log_full || self.foreign_logged.contains(&Some(ip)) {
            return;
        }
        match self.foreign_logged.iter_mut().find(|s| s.is_none()) {
            Some(slot) => {
                *slot = Some(ip);
                tracing::warn!(
                    event = "rtp.foreign_source",
                    port = self.port,
                    source = %src,
                    reason = kind.as_str(),
                    locked = ?self.guard.locked(),
                    sdp = ?remote.addr,
                    "RTP from a source this leg does not accept: dropped (counted, not logged again for this address)"
                );
            }
            None => {
                self.foreign_log_full = true;
                tracing::warn!(
                    event = "rtp.foreign_sources_suppressed",
                    port = self.port,
                    "RTP from more foreign sources: dropped and counted, no longer logged for this leg"
                );
            }
        }
    }
}
