//! The write side: a bounded channel from the call path to a dedicated
//! writer thread that batches inserts into SQLite transactions, keeps the
//! rows in memory and retries with back-off while the database cannot be
//! written, and reports its health.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use rusqlite::Connection;

use crate::db::{self, CallerPolicy, FailureKind, FileId, PendingRow, Purged};
use crate::health::{HealthCell, RecordsHealth, Transition, WriteFailure};
use crate::reader::RecordReader;
use crate::{
    AgentStateRow, CallRecord, CallbackRequest, CallbackState, OutboundRecord, QueueEvent,
    RecordsConfig, RecordsError, RegistrationRow,
};

/// Source of the current time, injectable for tests. Used only for
/// retention (the cutoff is `clock() - retention`).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// At most one "records dropped" warning (and one "row refused by the
/// database" error) is logged per this interval; the counters keep the
/// exact totals.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Counters of the records store, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecorderStats {
    /// Rows (calls, events, callback requests, outbound calls…) committed
    /// to the database.
    pub written: u64,
    /// Rows lost before reaching the database: refused on the call path
    /// because the channel was full or the recorder was shut down, or
    /// dropped by the writer because the store was failing and
    /// [`RecordsConfig::backlog_capacity`] rows were already kept.
    pub dropped: u64,
    /// Rows lost at the database: refused by it for their own content (a
    /// constraint, a value too big; the other rows of their transaction
    /// are written), or still kept in memory when the recorder was shut
    /// down with the store failing.
    pub write_errors: u64,
    /// Failed attempts to write (or open) the store: each failed
    /// transaction or open counts once, whatever the number of rows it
    /// carried (those rows are kept and retried).
    pub write_failures: u64,
    /// Rows waiting in the writer's memory (normally under one batch; grows
    /// while the store is failing, up to the backlog capacity).
    pub backlog: u64,
    /// Call records deleted by retention.
    pub purged_calls: u64,
    /// Queue events deleted by retention.
    pub purged_events: u64,
    /// Callback requests deleted by retention.
    pub purged_callbacks: u64,
    /// Outbound call records deleted by retention.
    pub purged_outbound: u64,
}

/// A `warn!`/`error!` rate limiter that never blocks.
struct RateLimit {
    next_ms: AtomicU64,
}

impl RateLimit {
    fn new() -> Self {
        RateLimit {
            next_ms: AtomicU64::new(0),
        }
    }

    /// True at most once per [`LOG_INTERVAL`].
    fn allow(&self, base: Instant) -> bool {
        let now = u64::try_from(base.elapsed().as_millis()).unwrap_or(u64::MAX);
        let next = self.next_ms.load(Ordering::Relaxed);
        now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now.saturating_add(LOG_INTERVAL.as_millis() as u64),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}

/// State shared by the handles, the owner and the writer thread.
struct Shared {
    written: AtomicU64,
    dropped: AtomicU64,
    write_errors: AtomicU64,
    write_failures: AtomicU64,
    backlog: AtomicU64,
    purged_calls: AtomicU64,
    purged_events: AtomicU64,
    purged_callbacks: AtomicU64,
    purged_outbound: AtomicU64,
    /// Set by shutdown: producers stop sending.
    closed: AtomicBool,
    /// Producers between their `closed` check and the end of their send.
    in_flight: AtomicUsize,
    base: Instant,
    drop_log: RateLimit,
    error_log: RateLimit,
    health: HealthCell,
}

impl Shared {
    fn new() -> Self {
        Shared {
            written: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            write_failures: AtomicU64::new(0),
            backlog: AtomicU64::new(0),
            purged_calls: AtomicU64::new(0),
            purged_events: AtomicU64::new(0),
            purged_callbacks: AtomicU64::new(0),
            purged_outbound: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            base: Instant::now(),
            drop_log: RateLimit::new(),
            error_log: RateLimit::new(),
            health: HealthCell::new(Utc::now()),
        }
    }

    fn stats(&self) -> RecorderStats {
        RecorderStats {
            written: self.written.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            write_errors: self.write_errors.load(Ordering::Relaxed),
            write_failures: self.write_failures.load(Ordering::Relaxed),
            backlog: self.backlog.load(Ordering::Relaxed),
            purged_calls: self.purged_calls.load(Ordering::Relaxed),
            purged_events: self.purged_events.load(Ordering::Relaxed),
            purged_callbacks: self.purged_callbacks.load(Ordering::Relaxed),
            purged_outbound: self.purged_outbound.load(Ordering::Relaxed),
        }
    }

    fn health(&self) -> RecordsHealth {
        self.health.snapshot(self.backlog.load(Ordering::Relaxed))
    }
}

/// Messages to the writer thread.
enum Msg {
    Call(Box<CallRecord>),
    Event(Box<QueueEvent>),
    Callback(Box<CallbackRequest>),
    CallbackState(Box<CallbackState>),
    AgentState(Box<AgentStateRow>),
    Registrations(Box<(String, Vec<RegistrationRow>)>),
    Audit(Box<crate::AuditEntry>),
    Outbound(Box<OutboundRecord>),
    Voicemail(Box<crate::VoicemailDeliveryRow>),
    CloseInterrupted(SyncSender<Result<u64, RecordsError>>),
    Flush(SyncSender<Result<(), RecordsError>>),
    Purge(
        Option<DateTime<Utc>>,
        SyncSender<Result<Purged, RecordsError>>,
    ),
    MarkCallbackHandled {
        id: i64,
        agent: String,
        at: DateTime<Utc>,
        reply: SyncSender<Result<bool, RecordsError>>,
    },
    Shutdown,
    /// Test hook: acknowledge, then block until the gate is released.
    #[cfg(test)]
    Pause(SyncSender<()>, Receiver<()>),
}

/// Cheap, cloneable handle used on the call path to record calls, queue
/// events, callback requests and outbound calls.
///
/// [`record_call`](Self::record_call), [`record_event`](Self::record_event),
/// [`record_callback`](Self::record_callback) and
/// [`record_outbound`](Self::record_outbound) never block and never
/// touch the disk: they hand the record to the writer thread through a
/// bounded channel, or count it as dropped when the channel is full. They
/// are safe to call from async code.
#[derive(Clone)]
pub struct RecorderHandle {
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
    policy: CallerPolicy,
}

impl RecorderHandle {
    /// Queues a call record for writing. Returns `false` (and counts it in
    /// [`RecorderStats::dropped`]) if the channel is full or the recorder is
    /// shut down. Never blocks.
    pub fn record_call(&self, rec: CallRecord) -> bool {
        self.send(Msg::Call(Box::new(rec)), "call record")
    }

    /// Queues a queue event for writing; same contract as
    /// [`record_call`](Self::record_call).
    pub fn record_event(&self, ev: QueueEvent) -> bool {
        self.send(Msg::Event(Box::new(ev)), "queue event")
    }

    /// Queues a callback request for writing; same contract (and same
    /// channel) as [`record_call`](Self::record_call). The number is stored
    /// in clear whatever [`RecordsConfig::hash_callers`] says (see
    /// [`CallbackRequest`]); the request is stored as a pending
    /// [`CallbackState`] with origin
    /// [`Overflow`](crate::CallbackOrigin::Overflow), the key
    /// `legacy-<row id>`, its place in the queue at `requested_at`,
    /// priority 0 and a deadline one hour after `requested_at`. Each call
    /// stores a new request.
    pub fn record_callback(&self, req: CallbackRequest) -> bool {
        self.send(Msg::Callback(Box::new(req)), "callback request")
    }

    /// Queues the state of a callback request for writing: inserts it, or
    /// replaces the whole stored row with the same
    /// [`key`](CallbackState::key) (its row id, hence
    /// [`StoredCallback::id`](crate::StoredCallback::id), is kept). Same
    /// contract (and same channel, back-off and backlog while the store is
    /// failing) as [`record_call`](Self::record_call); states of the same
    /// key are written in the order they were queued. Write it at each
    /// step of the request's life (requested, dialling, retry planned,
    /// closed). The number is stored in clear, as for
    /// [`record_callback`](Self::record_callback).
    pub fn record_callback_state(&self, s: CallbackState) -> bool {
        self.send(Msg::CallbackState(Box::new(s)), "callback state")
    }

    /// Queues an agent's chosen state (logged in or out, paused with a
    /// reason) for writing; same contract as [`record_call`](Self::record_call).
    pub fn record_agent_state(&self, state: AgentStateRow) -> bool {
        self.send(Msg::AgentState(Box::new(state)), "agent state")
    }

    /// Queues the registrations of `agent`, replacing those stored (an
    /// empty list removes them); same contract as
    /// [`record_call`](Self::record_call).
    pub fn record_registrations(&self, agent: &str, rows: Vec<RegistrationRow>) -> bool {
        self.send(
            Msg::Registrations(Box::new((agent.to_string(), rows))),
            "registrations",
        )
    }

    /// Queues an audit entry for writing; same contract as
    /// [`record_call`](Self::record_call).
    pub fn record_audit(&self, entry: crate::AuditEntry) -> bool {
        self.send(Msg::Audit(Box::new(entry)), "audit entry")
    }

    /// Queues an outbound call record for writing; same contract (and same
    /// channel, back-off and backlog while the store is failing) as
    /// [`record_call`](Self::record_call). Writing a record with the same
    /// [`id`](OutboundRecord::id) replaces the stored one: write it when the
    /// call starts ([`InProgress`](crate::OutboundOutcome::InProgress)) and
    /// again when it ends. The destination is hashed like a caller number
    /// when [`RecordsConfig::hash_callers`] is on.
    pub fn record_outbound(&self, rec: OutboundRecord) -> bool {
        self.send(Msg::Outbound(Box::new(rec)), "outbound call record")
    }

    /// Queues a voicemail delivery's state for writing (insert or replace
    /// by [`call_id`](crate::VoicemailDeliveryRow::call_id)); same
    /// contract, channel and back-off as [`record_call`](Self::record_call).
    /// The caller's number is stored while the delivery is pending only.
    pub fn record_voicemail_delivery(&self, row: crate::VoicemailDeliveryRow) -> bool {
        self.send(Msg::Voicemail(Box::new(row)), "voicemail delivery")
    }

    /// Closes the call records and outbound call records a crash left
    /// `in-progress` as `interrupted` (call it once at startup, before new
    /// calls); returns how many, both kinds together. Blocking, like
    /// [`flush`](Self::flush).
    pub fn close_interrupted(&self) -> Result<u64, RecordsError> {
        let (reply, rx) = mpsc::sync_channel(1);
        self.control(Msg::CloseInterrupted(reply))?;
        rx.recv().map_err(|_| RecordsError::WriterGone)?
    }

    fn send(&self, msg: Msg, what: &'static str) -> bool {
        let shared = &*self.shared;
        // Announce the send before checking `closed`; shutdown sets `closed`
        // then waits for `in_flight` to reach zero. With SeqCst on both
        // sides, either this send sees `closed`, or shutdown sees it in
        // flight and waits: nothing lands behind the final drain.
        shared.in_flight.fetch_add(1, Ordering::SeqCst);
        let accepted = !shared.closed.load(Ordering::SeqCst) && {
            match self.tx.try_send(msg) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
            }
        };
        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        if !accepted {
            let total = shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if shared.drop_log.allow(shared.base) {
                tracing::warn!(
                    dropped_total = total,
                    closed = shared.closed.load(Ordering::Relaxed),
                    "records channel full or closed: {what} dropped"
                );
            }
        }
        accepted
    }

    /// Counters for metrics (atomic reads, never blocks).
    pub fn stats(&self) -> RecorderStats {
        self.shared.stats()
    }

    /// Whether the store is writing, and if not since when and why (see
    /// [`RecordsHealth`]). Never blocks on the writer: an atomic load and a
    /// copy under a mutex the writer holds only to record a failure or a
    /// recovery.
    pub fn health(&self) -> RecordsHealth {
        self.shared.health()
    }

    /// The form in which `number` is stored in the `caller` column (and in
    /// the `destination` column of outbound calls): the number itself, or
    /// `sha256(salt || number)` in hex when hashing is on.
    /// Use it to look up a caller with [`CallFilter::caller`](crate::CallFilter::caller).
    pub fn caller_key(&self, number: &str) -> String {
        self.policy.apply(number)
    }

    /// Waits until everything queued before this call is committed: tries
    /// to write every row the writer keeps now, even while it waits to
    /// retry a failed write (the back-off is not reset by a failure here).
    /// Returns the error of that attempt; the rows stay kept.
    ///
    /// Blocking (not for the call path): from async code, use
    /// `spawn_blocking`.
    pub fn flush(&self) -> Result<(), RecordsError> {
        let (reply, rx) = mpsc::sync_channel(1);
        self.control(Msg::Flush(reply))?;
        rx.recv().map_err(|_| RecordsError::WriterGone)?
    }

    /// Commits pending rows, then deletes calls received, events that
    /// happened, closed callbacks requested and outbound calls started
    /// before `cutoff` (an open callback request, pending or dialling, is
    /// never purged). Blocking, like [`flush`](Self::flush).
    pub fn purge_older_than(&self, cutoff: DateTime<Utc>) -> Result<Purged, RecordsError> {
        self.purge(Some(cutoff))
    }

    /// Applies the configured retention now (cutoff = clock − retention), as
    /// the writer does at startup and every `purge_interval`. Blocking.
    pub fn apply_retention(&self) -> Result<Purged, RecordsError> {
        self.purge(None)
    }

    fn purge(&self, cutoff: Option<DateTime<Utc>>) -> Result<Purged, RecordsError> {
        let (reply, rx) = mpsc::sync_channel(1);
        self.control(Msg::Purge(cutoff, reply))?;
        rx.recv().map_err(|_| RecordsError::WriterGone)?
    }

    /// Marks the callback request `id` (see
    /// [`StoredCallback::id`](crate::StoredCallback::id)) as handled by
    /// `agent` at `at` (which also become its
    /// [`completed_at`](CallbackState::completed_at) and
    /// [`agent`](CallbackState::agent)). Returns `true` if a pending
    /// request was updated, `false` if there is no such request or it is
    /// not pending any more: being dialled, or closed (the first
    /// `handled_at`/`handled_by` are kept).
    ///
    /// Rows queued before this call are committed first. Blocking, like
    /// [`flush`](Self::flush).
    pub fn mark_callback_handled(
        &self,
        id: i64,
        agent: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, RecordsError> {
        let (reply, rx) = mpsc::sync_channel(1);
        self.control(Msg::MarkCallbackHandled {
            id,
            agent: agent.to_owned(),
            at,
            reply,
        })?;
        rx.recv().map_err(|_| RecordsError::WriterGone)?
    }

    /// Sends a control message, waiting for room in the channel.
    fn control(&self, msg: Msg) -> Result<(), RecordsError> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(RecordsError::WriterGone);
        }
        self.tx.send(msg).map_err(|_| RecordsError::WriterGone)
    }

    /// Test hook: blocks the writer thread until the returned sender is
    /// dropped or sent to. Returns once the writer is parked.
    #[cfg(test)]
    pub(crate) fn pause_writer(&self) -> Result<SyncSender<()>, RecordsError> {
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        let (gate_tx, gate_rx) = mpsc::sync_channel(1);
        self.control(Msg::Pause(ack_tx, gate_rx))?;
        ack_rx.recv().map_err(|_| RecordsError::WriterGone)?;
        Ok(gate_tx)
    }
}

/// Owner of the records store: starts the writer thread, hands out
/// [`RecorderHandle`]s and shuts the writer down.
///
/// Dropping it shuts the writer down like [`shutdown`](Self::shutdown)
/// (errors are then only logged). After shutdown, handles still alive count
/// whatever they are given as dropped.
pub struct Recorder {
    handle: RecorderHandle,
    thread: Option<JoinHandle<Result<(), RecordsError>>>,
    path: PathBuf,
}

impl Recorder {
    /// Opens the store with the system clock; see
    /// [`open_with_clock`](Self::open_with_clock).
    pub fn open(config: RecordsConfig) -> Result<Recorder, RecordsError> {
        Self::open_with_clock(config, Arc::new(Utc::now))
    }

    /// Opens the store: validates `config`, creates the parent directories,
    /// opens the database in WAL mode, creates or checks the schema, applies
    /// retention (cutoff `clock() - retention`) and starts the writer thread.
    /// Every failure to open is returned here, never as a panic later;
    /// failures to write later are retried (see [`start`](Self::start) for
    /// a store that also retries opening).
    pub fn open_with_clock(config: RecordsConfig, clock: Clock) -> Result<Recorder, RecordsError> {
        validate(&config)?;
        let shared = Arc::new(Shared::new());
        let opened = open_store(&config, &clock, &shared)?;
        Self::spawn(config, clock, shared, Some(opened))
    }

    /// Starts the store with the system clock; see
    /// [`start_with_clock`](Self::start_with_clock).
    pub fn start(config: RecordsConfig) -> Result<Recorder, RecordsError> {
        Self::start_with_clock(config, Arc::new(Utc::now))
    }

    /// Like [`open_with_clock`](Self::open_with_clock), except that a
    /// database that cannot be opened (directory missing and not creatable,
    /// file unreadable, locked, corrupt, of a newer schema...) is not an
    /// error: the recorder starts [degraded](crate::RecordsState::Degraded)
    /// with the cause in its [`health`](Self::health), keeps the rows it is
    /// given (up to [`RecordsConfig::backlog_capacity`]) and retries
    /// opening with back-off; once open, it writes them. For a service that
    /// must run, and say so, while its records cannot be stored.
    ///
    /// Errors only for an invalid `config` or a writer thread that cannot
    /// be started.
    pub fn start_with_clock(config: RecordsConfig, clock: Clock) -> Result<Recorder, RecordsError> {
        validate(&config)?;
        let shared = Arc::new(Shared::new());
        let opened = match open_store(&config, &clock, &shared) {
            Ok(o) => Some(o),
            Err(e) => {
                let cause = format!("open failed: {e}");
                shared.write_failures.fetch_add(1, Ordering::Relaxed);
                shared.health.failed(WriteFailure {
                    at: Utc::now(),
                    cause: cause.clone(),
                });
                tracing::error!(
                    event = "records.degraded",
                    path = %config.path.display(),
                    cause,
                    retry_in_s = config.retry_min.as_secs_f64(),
                    "records store cannot be opened: rows are kept in memory and the open is retried"
                );
                None
            }
        };
        Self::spawn(config, clock, shared, opened)
    }

    fn spawn(
        config: RecordsConfig,
        clock: Clock,
        shared: Arc<Shared>,
        opened: Option<(Connection, Option<FileId>)>,
    ) -> Result<Recorder, RecordsError> {
        let policy = CallerPolicy {
            salt: config.hash_callers.then(|| config.salt.clone()),
        };
        let (tx, rx) = mpsc::sync_channel(config.queue_capacity);
        let is_open = opened.is_some();
        let (conn, file) = match opened {
            Some((c, f)) => (Some(c), f),
            None => (None, None),
        };
        let now = Instant::now();
        let writer = Writer {
            path: config.path.clone(),
            conn,
            file,
            rx,
            shared: shared.clone(),
            policy: policy.clone(),
            clock,
            retention: config.retention,
            audit_retention: config.audit_retention,
            batch_size: config.batch_size,
            flush_interval: config.flush_interval,
            purge_interval: config.purge_interval,
            busy_timeout: config.busy_timeout,
            backlog_capacity: config.backlog_capacity,
            retry_min: config.retry_min,
            retry_max: config.retry_max,
            pending: VecDeque::new(),
            oldest_pending: None,
            next_purge: now + config.purge_interval,
            retry_at: (!is_open).then(|| now + config.retry_min),
            backoff: if is_open {
                config.retry_min
            } else {
                config.retry_min.saturating_mul(2).min(config.retry_max)
            },
            dropped_since_degraded: 0,
            backlog_full_logged: false,
        };
        let thread = std::thread::Builder::new()
            .name("records-writer".into())
            .spawn(move || writer.run())
            .map_err(RecordsError::Spawn)?;
        if is_open {
            tracing::info!(
                path = %config.path.display(),
                hash_callers = config.hash_callers,
                retention_days = config.retention.as_secs() / 86_400,
                "records store open"
            );
        }
        Ok(Recorder {
            handle: RecorderHandle { tx, shared, policy },
            thread: Some(thread),
            path: config.path,
        })
    }

    /// A handle for the call path (cheap to clone).
    pub fn handle(&self) -> RecorderHandle {
        self.handle.clone()
    }

    /// Counters for metrics.
    pub fn stats(&self) -> RecorderStats {
        self.handle.stats()
    }

    /// Whether the store is writing; see [`RecorderHandle::health`].
    pub fn health(&self) -> RecordsHealth {
        self.handle.health()
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens a read-only connection to the same database.
    pub fn reader(&self) -> Result<RecordReader, RecordsError> {
        RecordReader::open(&self.path)
    }

    /// Stops accepting records, drains the channel, commits everything that
    /// was accepted (one last attempt, whatever the back-off, if the store
    /// is failing), closes the database and joins the writer thread.
    /// Returns the error of the last failed commit, if any; rows that could
    /// not be written then are counted in [`RecorderStats::write_errors`].
    ///
    /// Blocking: from async code, call it from `spawn_blocking` (or after the
    /// runtime has stopped).
    pub fn shutdown(mut self) -> Result<(), RecordsError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), RecordsError> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let shared = &*self.handle.shared;
        shared.closed.store(true, Ordering::SeqCst);
        while shared.in_flight.load(Ordering::SeqCst) != 0 {
            std::thread::yield_now();
        }
        // Every accepted record is now in the channel ahead of this message.
        // If the writer is already gone, `join` reports why.
        let _ = self.handle.tx.send(Msg::Shutdown);
        match thread.join() {
            Ok(result) => result,
            Err(_) => Err(RecordsError::WriterGone),
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::error!(error = %e, "records store shutdown failed");
        }
    }
}

fn validate(config: &RecordsConfig) -> Result<(), RecordsError> {
    let bad = |m: &str| Err(RecordsError::InvalidConfig(m.to_owned()));
    if config.path.as_os_str().is_empty() {
        return bad("path is empty");
    }
    if config.queue_capacity == 0 {
        return bad("queue_capacity must be at least 1");
    }
    if config.batch_size == 0 {
        return bad("batch_size must be at least 1");
    }
    if config.retention.is_zero() {
        return bad("retention must be positive");
    }
    if config.purge_interval.is_zero() {
        return bad("purge_interval must be positive");
    }
    if config.retry_min.is_zero() || config.retry_max < config.retry_min {
        return bad("retry_min must be positive and at most retry_max");
    }
    if config.hash_callers && config.salt.is_empty() {
        return bad("hash_callers needs a non-empty salt");
    }
    Ok(())
}

/// Creates the parent directories, opens the database for writing and
/// applies retention: what opening the store means, at startup and when
/// the writer retries.
fn open_store(
    config: &RecordsConfig,
    clock: &Clock,
    shared: &Shared,
) -> Result<(Connection, Option<FileId>), RecordsError> {
    open_at(
        &config.path,
        config.busy_timeout,
        cutoff(clock(), config.retention),
        shared,
    )
}

fn open_at(
    path: &Path,
    busy_timeout: Duration,
    cutoff_at: Option<DateTime<Utc>>,
    shared: &Shared,
) -> Result<(Connection, Option<FileId>), RecordsError> {
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(|source| RecordsError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
    }
    let mut conn = db::open_writer(path, busy_timeout)?;
    if let Some(cutoff_at) = cutoff_at {
        let purged = db::purge(&mut conn, cutoff_at)?;
        record_purge(shared, purged, cutoff_at);
    }
    let file = db::file_id(path).map_err(|source| RecordsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok((conn, file))
}

/// `now - retention`, or `None` if that is before the representable range
/// (nothing can be that old).
fn cutoff(now: DateTime<Utc>, retention: Duration) -> Option<DateTime<Utc>> {
    TimeDelta::from_std(retention)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
}

fn record_purge(shared: &Shared, purged: Purged, cutoff: DateTime<Utc>) {
    shared
        .purged_calls
        .fetch_add(purged.calls, Ordering::Relaxed);
    shared
        .purged_events
        .fetch_add(purged.events, Ordering::Relaxed);
    shared
        .purged_callbacks
        .fetch_add(purged.callbacks, Ordering::Relaxed);
    shared
        .purged_outbound
        .fetch_add(purged.outbound, Ordering::Relaxed);
    if purged.total() > 0 {
        tracing::info!(
            calls = purged.calls,
            events = purged.events,
            callbacks = purged.callbacks,
            outbound = purged.outbound,
            cutoff = %cutoff,
            "records retention purge"
        );
    }
}

/// Closes what a crash left `in-progress` (calls, then outbound calls) as
/// `interrupted`, in one transaction; returns how many rows, together.
fn close_interrupted(conn: &Connection) -> rusqlite::Result<u64> {
    let tx = conn.unchecked_transaction()?;
    let calls = crate::state::close_interrupted(&tx)?;
    let outbound = crate::outbound::close_interrupted(&tx)?;
    tx.commit()?;
    Ok(calls + outbound)
}

/// A failed attempt to write or open: the error for whoever asked (a
/// flush), and its one-line cause for the health.
struct Failed {
    cause: String,
    error: RecordsError,
}

impl Failed {
    fn write(e: rusqlite::Error) -> Self {
        Failed {
            cause: format!("write failed: {e}"),
            error: RecordsError::Sqlite(e),
        }
    }

    fn open(e: RecordsError) -> Self {
        Failed {
            cause: format!("open failed: {e}"),
            error: e,
        }
    }
}

/// The writer thread's state.
struct Writer {
    path: PathBuf,
    /// `None` until the database could be opened (or after its file was
    /// found removed or replaced).
    conn: Option<Connection>,
    /// Identity of the file `conn` has open.
    file: Option<FileId>,
    rx: Receiver<Msg>,
    shared: Arc<Shared>,
    policy: CallerPolicy,
    clock: Clock,
    retention: Duration,
    audit_retention: Duration,
    batch_size: usize,
    flush_interval: Duration,
    purge_interval: Duration,
    busy_timeout: Duration,
    backlog_capacity: usize,
    retry_min: Duration,
    retry_max: Duration,
    /// Rows not committed yet, oldest first.
    pending: VecDeque<PendingRow>,
    /// When the oldest uncommitted row arrived (while healthy).
    oldest_pending: Option<Instant>,
    next_purge: Instant,
    /// While degraded: when to try again.
    retry_at: Option<Instant>,
    /// The wait after the next failure.
    backoff: Duration,
    /// Rows dropped at the backlog cap since the store degraded.
    dropped_since_degraded: u64,
    backlog_full_logged: bool,
}

impl Writer {
    fn run(mut self) -> Result<(), RecordsError> {
        loop {
            let timeout = self
                .next_deadline()
                .saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(timeout) {
                Ok(Msg::Shutdown) => break,
                Ok(msg) => self.handle(msg),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let now = Instant::now();
            let due = match self.retry_at {
                Some(t) => now >= t,
                None => self
                    .oldest_pending
                    .is_some_and(|t| now >= t + self.flush_interval),
            };
            if due {
                let _ = self.write_pending();
            }
            if now >= self.next_purge {
                self.next_purge = now + self.purge_interval;
                // While degraded the failure is already reported; retention
                // waits for the next interval after the recovery.
                if self.retry_at.is_none() {
                    if let Err(e) = self.purge(None) {
                        tracing::error!(error = %e, "records retention purge failed");
                    }
                }
            }
        }
        // Drain whatever is still queued (nothing after a clean shutdown,
        // which is ordered behind every accepted record).
        while let Ok(msg) = self.rx.try_recv() {
            if !matches!(msg, Msg::Shutdown) {
                self.handle(msg);
            }
        }
        let mut last = Ok(());
        if !self.pending.is_empty() {
            if let Err(e) = self.write_pending() {
                let lost = self.pending.len() as u64;
                self.pending.clear();
                self.update_backlog();
                self.shared.write_errors.fetch_add(lost, Ordering::Relaxed);
                tracing::error!(
                    event = "records.lost",
                    rows = lost,
                    error = %e,
                    "records store still failing at shutdown: the rows kept in memory are lost"
                );
                last = Err(e);
            }
        }
        let Some(conn) = self.conn.take() else {
            return last;
        };
        // Copy the WAL into the main file and truncate it, even if a reader
        // still has the database open (closing the last connection would
        // also do it, but only when it is the last one).
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "records WAL checkpoint at shutdown failed");
        }
        if let Err((_, e)) = conn.close() {
            last = Err(e.into());
        }
        last
    }

    /// When the loop must wake up without a message: the retry while
    /// degraded, else the age limit of the oldest pending row; and the next
    /// retention purge.
    fn next_deadline(&self) -> Instant {
        let work = match self.retry_at {
            Some(t) => Some(t),
            None => self.oldest_pending.map(|t| t + self.flush_interval),
        };
        work.map_or(self.next_purge, |t| t.min(self.next_purge))
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Call(c) => self.add(PendingRow::Call(c)),
            Msg::Event(e) => self.add(PendingRow::Event(e)),
            Msg::Callback(c) => self.add(PendingRow::Callback(c)),
            Msg::CallbackState(c) => self.add(PendingRow::CallbackState(c)),
            Msg::AgentState(a) => self.add(PendingRow::AgentState(a)),
            Msg::Registrations(r) => self.add(PendingRow::Registrations(r)),
            Msg::Audit(a) => self.add(PendingRow::Audit(a)),
            Msg::Outbound(o) => self.add(PendingRow::Outbound(o)),
            Msg::Voicemail(v) => self.add(PendingRow::Voicemail(v)),
            Msg::CloseInterrupted(reply) => {
                let _ = self.write_pending();
                let result = match &self.conn {
                    Some(conn) => close_interrupted(conn).map_err(Into::into),
                    None => Err(self.unavailable()),
                };
                let _ = reply.send(result);
            }
            Msg::Flush(reply) => {
                let _ = reply.send(self.write_pending());
            }
            Msg::Purge(cutoff, reply) => {
                let _ = reply.send(self.purge(cutoff));
            }
            Msg::MarkCallbackHandled {
                id,
                agent,
                at,
                reply,
            } => {
                // Commit first so a request queued before this message can
                // be marked; a failure is recorded in the health.
                let _ = self.write_pending();
                let result = match &self.conn {
                    Some(conn) => db::mark_callback_handled(conn, id, &agent, &at),
                    None => Err(self.unavailable()),
                };
                let _ = reply.send(result);
            }
            Msg::Shutdown => {}
            #[cfg(test)]
            Msg::Pause(ack, gate) => {
                let _ = ack.send(());
                let _ = gate.recv();
            }
        }
    }

    /// The error for a request that needs the database while it is not
    /// open.
    fn unavailable(&self) -> RecordsError {
        RecordsError::Unavailable(
            self.shared
                .health()
                .problem()
                .unwrap_or("not open")
                .to_string(),
        )
    }

    /// Keeps a row for the next write; writes a full batch at once while
    /// healthy. While degraded, past the backlog capacity, the row is
    /// dropped and counted.
    fn add(&mut self, row: PendingRow) {
        if self.retry_at.is_some() && self.pending.len() >= self.backlog_capacity {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            self.dropped_since_degraded = self.dropped_since_degraded.saturating_add(1);
            if !self.backlog_full_logged {
                self.backlog_full_logged = true;
                tracing::error!(
                    event = "records.backlog_full",
                    capacity = self.backlog_capacity,
                    "records store still failing and its backlog is full: new rows are dropped (and counted) until it recovers"
                );
            }
            return;
        }
        self.pending.push_back(row);
        self.update_backlog();
        if self.oldest_pending.is_none() {
            self.oldest_pending = Some(Instant::now());
        }
        if self.retry_at.is_none() && self.pending.len() >= self.batch_size {
            let _ = self.write_pending();
        }
    }

    fn update_backlog(&self) {
        self.shared
            .backlog
            .store(self.pending.len() as u64, Ordering::Relaxed);
    }

    /// One attempt to write every pending row (opening the database first
    /// if it is not open). Success clears the degraded state; a failure
    /// enters or prolongs it and schedules the next attempt.
    fn write_pending(&mut self) -> Result<(), RecordsError> {
        let result = self.try_write_pending();
        if self.pending.is_empty() {
            self.oldest_pending = None;
        }
        self.update_backlog();
        match result {
            Ok(()) => {
                self.succeeded();
                Ok(())
            }
            Err(f) => {
                self.failed(f.cause);
                Err(f.error)
            }
        }
    }

    fn try_write_pending(&mut self) -> Result<(), Failed> {
        self.check_file()?;
        self.ensure_open()?;
        while !self.pending.is_empty() {
            let Some(conn) = self.conn.as_mut() else {
                return Err(Failed::open(RecordsError::Unavailable("not open".into())));
            };
            let n = self.pending.len().min(self.batch_size);
            match db::insert_rows(conn, self.pending.range(..n), &self.policy) {
                Ok(()) => {
                    self.pending.drain(..n);
                    self.shared.written.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) if db::failure_kind(&e) == FailureKind::Row => self.write_one_by_one(n)?,
                Err(e) => return Err(self.write_failed(e)),
            }
        }
        Ok(())
    }

    /// A failed write: the connection is kept when another connection's
    /// lock was in the way (it will do once the lock is released), else
    /// closed so that the retry opens the database afresh (after an I/O
    /// error, a read-only or full file system, a broken schema).
    fn write_failed(&mut self, e: rusqlite::Error) -> Failed {
        use rusqlite::ErrorCode as C;
        let busy = matches!(
            e.sqlite_error_code(),
            Some(C::DatabaseBusy | C::DatabaseLocked)
        );
        if !busy {
            self.close();
        }
        Failed::write(e)
    }

    /// Writes the first `n` pending rows one transaction each, after their
    /// batch was refused for a row's content: the rows the database refuses
    /// are dropped and counted in `write_errors`, the others are written.
    fn write_one_by_one(&mut self, n: usize) -> Result<(), Failed> {
        for _ in 0..n {
            let (Some(conn), Some(row)) = (self.conn.as_mut(), self.pending.front()) else {
                break;
            };
            match db::insert_rows(conn, std::iter::once(row), &self.policy) {
                Ok(()) => {
                    self.shared.written.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) if db::failure_kind(&e) == FailureKind::Row => {
                    let total = self.shared.write_errors.fetch_add(1, Ordering::Relaxed) + 1;
                    if self.shared.error_log.allow(self.shared.base) {
                        tracing::error!(
                            error = %e,
                            write_errors_total = total,
                            "records row refused by the database: dropped"
                        );
                    }
                }
                Err(e) => return Err(self.write_failed(e)),
            }
            self.pending.pop_front();
        }
        Ok(())
    }

    /// Notices that the database file was removed or replaced under the
    /// open connection (which would go on writing into a file nobody can
    /// open): closes the connection, so that the next attempt opens (and
    /// creates) the file at the path again.
    fn check_file(&mut self) -> Result<(), Failed> {
        let (Some(_), Some(expected)) = (&self.conn, self.file) else {
            return Ok(());
        };
        let why = match db::file_id(&self.path) {
            Ok(Some(id)) if id == expected => return Ok(()),
            Ok(None) => return Ok(()),
            Ok(Some(_)) => "was replaced",
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "was removed",
            Err(_) => "cannot be checked",
        };
        self.close();
        let error = RecordsError::FileReplaced(self.path.clone());
        Err(Failed {
            cause: format!("database file {} {why} while open", self.path.display()),
            error,
        })
    }

    /// Opens the database if it is not open.
    fn ensure_open(&mut self) -> Result<(), Failed> {
        if self.conn.is_some() {
            return Ok(());
        }
        let cutoff_at = cutoff((self.clock)(), self.retention);
        let (conn, file) = open_at(&self.path, self.busy_timeout, cutoff_at, &self.shared)
            .map_err(Failed::open)?;
        self.conn = Some(conn);
        self.file = file;
        tracing::info!(path = %self.path.display(), "records store open");
        Ok(())
    }

    /// Closes the connection (closing the last one checkpoints and removes
    /// its WAL files).
    fn close(&mut self) {
        self.file = None;
        if let Some(conn) = self.conn.take() {
            if let Err((_, e)) = conn.close() {
                tracing::debug!(error = %e, "records connection close failed");
            }
        }
    }

    fn succeeded(&mut self) {
        self.retry_at = None;
        self.backoff = self.retry_min;
        let since = self.shared.health.since();
        if self.shared.health.recovered(Utc::now()) == Transition::Changed {
            let degraded_s = (Utc::now() - since).num_milliseconds().max(0) as f64 / 1000.0;
            tracing::info!(
                event = "records.recovered",
                degraded_s,
                dropped = self.dropped_since_degraded,
                "records store writing again: the rows kept in memory are written"
            );
            self.dropped_since_degraded = 0;
            self.backlog_full_logged = false;
        }
    }

    fn failed(&mut self, cause: String) {
        self.shared.write_failures.fetch_add(1, Ordering::Relaxed);
        let wait = self.backoff;
        self.retry_at = Some(Instant::now() + wait);
        self.backoff = self.backoff.saturating_mul(2).min(self.retry_max);
        let failure = WriteFailure {
            at: Utc::now(),
            cause: cause.clone(),
        };
        match self.shared.health.failed(failure) {
            Transition::Changed => tracing::error!(
                event = "records.degraded",
                path = %self.path.display(),
                cause,
                backlog = self.pending.len(),
                retry_in_s = wait.as_secs_f64(),
                "records store cannot write: rows are kept in memory and retried"
            ),
            Transition::Same => tracing::debug!(
                cause,
                backlog = self.pending.len(),
                retry_in_s = wait.as_secs_f64(),
                "records store still failing"
            ),
        }
    }

    fn purge(&mut self, cutoff_at: Option<DateTime<Utc>>) -> Result<Purged, RecordsError> {
        // Commit first so the purge sees every row queued before it; a
        // failure is recorded in the health and must not stop retention.
        let _ = self.write_pending();
        let Some(cutoff_at) = cutoff_at.or_else(|| cutoff((self.clock)(), self.retention)) else {
            return Ok(Purged::default());
        };
        if self.conn.is_none() {
            return Err(self.unavailable());
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(RecordsError::Unavailable("not open".into()));
        };
        let purged = db::purge(conn, cutoff_at)?;
        record_purge(&self.shared, purged, cutoff_at);
        if let Some(audit_cutoff) = cutoff((self.clock)(), self.audit_retention) {
            match crate::audit::purge(conn, audit_cutoff) {
                Ok(0) => {}
                Ok(n) => tracing::info!(audit = n, "audit entries past their retention purged"),
                Err(e) => tracing::warn!(error = %e, "audit retention failed"),
            }
        }
        Ok(purged)
    }
}
