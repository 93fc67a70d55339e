//! The write side: a bounded channel from the call path to a dedicated
//! writer thread that batches inserts into SQLite transactions.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use rusqlite::Connection;

use crate::db::{self, Batch, CallerPolicy, Purged};
use crate::reader::RecordReader;
use crate::{CallRecord, CallbackRequest, QueueEvent, RecordsConfig, RecordsError};

/// Source of the current time, injectable for tests. Used only for
/// retention (the cutoff is `clock() - retention`).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// At most one "records dropped" warning (and one write error) is logged per
/// this interval; the counters keep the exact totals.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Counters of the records store, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecorderStats {
    /// Rows (calls, events and callback requests) committed to the database.
    pub written: u64,
    /// Rows refused on the call path because the channel was full or the
    /// recorder was shut down.
    pub dropped: u64,
    /// Rows lost because their transaction failed (disk full, I/O error…).
    pub write_errors: u64,
    /// Call records deleted by retention.
    pub purged_calls: u64,
    /// Queue events deleted by retention.
    pub purged_events: u64,
    /// Callback requests deleted by retention.
    pub purged_callbacks: u64,
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
    purged_calls: AtomicU64,
    purged_events: AtomicU64,
    purged_callbacks: AtomicU64,
    /// Set by shutdown: producers stop sending.
    closed: AtomicBool,
    /// Producers between their `closed` check and the end of their send.
    in_flight: AtomicUsize,
    base: Instant,
    drop_log: RateLimit,
    error_log: RateLimit,
}

impl Shared {
    fn stats(&self) -> RecorderStats {
        RecorderStats {
            written: self.written.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            write_errors: self.write_errors.load(Ordering::Relaxed),
            purged_calls: self.purged_calls.load(Ordering::Relaxed),
            purged_events: self.purged_events.load(Ordering::Relaxed),
            purged_callbacks: self.purged_callbacks.load(Ordering::Relaxed),
        }
    }
}

/// Messages to the writer thread.
enum Msg {
    Call(Box<CallRecord>),
    Event(Box<QueueEvent>),
    Callback(Box<CallbackRequest>),
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
/// events and callback requests.
///
/// [`record_call`](Self::record_call), [`record_event`](Self::record_event)
/// and [`record_callback`](Self::record_callback) never block and never
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
    /// [`CallbackRequest`]); the request is stored as pending.
    pub fn record_callback(&self, req: CallbackRequest) -> bool {
        self.send(Msg::Callback(Box::new(req)), "callback request")
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

    /// The form in which `number` is stored in the `caller` column: the
    /// number itself, or `sha256(salt || number)` in hex when hashing is on.
    /// Use it to look up a caller with [`CallFilter::caller`](crate::CallFilter::caller).
    pub fn caller_key(&self, number: &str) -> String {
        self.policy.apply(number)
    }

    /// Waits until everything queued before this call is committed.
    ///
    /// Blocking (not for the call path): from async code, use
    /// `spawn_blocking`.
    pub fn flush(&self) -> Result<(), RecordsError> {
        let (reply, rx) = mpsc::sync_channel(1);
        self.control(Msg::Flush(reply))?;
        rx.recv().map_err(|_| RecordsError::WriterGone)?
    }

    /// Commits pending rows, then deletes calls received, events that
    /// happened and callbacks requested before `cutoff`. Blocking, like
    /// [`flush`](Self::flush).
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
    /// `agent` at `at`. Returns `true` if a pending request was updated,
    /// `false` if there is no such request or it was already handled (the
    /// first `handled_at`/`handled_by` are kept).
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
    /// Every failure is returned here, never as a panic later.
    pub fn open_with_clock(config: RecordsConfig, clock: Clock) -> Result<Recorder, RecordsError> {
        validate(&config)?;
        if let Some(parent) = config.path.parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|source| RecordsError::Io {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
        }
        let mut conn = db::open_writer(&config.path)?;

        let shared = Arc::new(Shared {
            written: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            purged_calls: AtomicU64::new(0),
            purged_events: AtomicU64::new(0),
            purged_callbacks: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            base: Instant::now(),
            drop_log: RateLimit::new(),
            error_log: RateLimit::new(),
        });
        let policy = CallerPolicy {
            salt: config.hash_callers.then(|| config.salt.clone()),
        };

        if let Some(cutoff) = cutoff(clock(), config.retention) {
            let purged = db::purge(&mut conn, cutoff)?;
            record_purge(&shared, purged, cutoff);
        }

        let (tx, rx) = mpsc::sync_channel(config.queue_capacity);
        let writer = Writer {
            conn,
            rx,
            shared: shared.clone(),
            policy: policy.clone(),
            clock,
            retention: config.retention,
            batch_size: config.batch_size,
            flush_interval: config.flush_interval,
            purge_interval: config.purge_interval,
            batch: Batch::default(),
            oldest_pending: None,
            next_purge: Instant::now() + config.purge_interval,
        };
        let thread = std::thread::Builder::new()
            .name("records-writer".into())
            .spawn(move || writer.run())
            .map_err(RecordsError::Spawn)?;
        tracing::info!(
            path = %config.path.display(),
            hash_callers = config.hash_callers,
            retention_days = config.retention.as_secs() / 86_400,
            "records store open"
        );
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

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens a read-only connection to the same database.
    pub fn reader(&self) -> Result<RecordReader, RecordsError> {
        RecordReader::open(&self.path)
    }

    /// Stops accepting records, drains the channel, commits everything that
    /// was accepted, closes the database and joins the writer thread.
    /// Returns the error of the last failed commit, if any.
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
    if config.hash_callers && config.salt.is_empty() {
        return bad("hash_callers needs a non-empty salt");
    }
    Ok(())
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
    if purged.total() > 0 {
        tracing::info!(
            calls = purged.calls,
            events = purged.events,
            callbacks = purged.callbacks,
            cutoff = %cutoff,
            "records retention purge"
        );
    }
}

/// The writer thread's state.
struct Writer {
    conn: Connection,
    rx: Receiver<Msg>,
    shared: Arc<Shared>,
    policy: CallerPolicy,
    clock: Clock,
    retention: Duration,
    batch_size: usize,
    flush_interval: Duration,
    purge_interval: Duration,
    batch: Batch,
    /// When the oldest uncommitted row arrived.
    oldest_pending: Option<Instant>,
    next_purge: Instant,
}

impl Writer {
    fn run(mut self) -> Result<(), RecordsError> {
        let mut last = Ok(());
        loop {
            let deadline = match self.oldest_pending {
                Some(t) => (t + self.flush_interval).min(self.next_purge),
                None => self.next_purge,
            };
            let timeout = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(timeout) {
                Ok(Msg::Shutdown) => break,
                Ok(msg) => self.handle(msg),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let now = Instant::now();
            if self
                .oldest_pending
                .is_some_and(|t| now >= t + self.flush_interval)
            {
                let _ = self.flush();
            }
            if now >= self.next_purge {
                self.next_purge = now + self.purge_interval;
                if let Err(e) = self.purge(None) {
                    tracing::error!(error = %e, "records retention purge failed");
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
        if let Err(e) = self.flush() {
            last = Err(e);
        }
        // Copy the WAL into the main file and truncate it, even if a reader
        // still has the database open (closing the last connection would
        // also do it, but only when it is the last one).
        if let Err(e) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        {
            tracing::warn!(error = %e, "records WAL checkpoint at shutdown failed");
        }
        if let Err((_, e)) = self.conn.close() {
            last = Err(e.into());
        }
        last
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Call(c) => {
                self.batch.calls.push(*c);
                self.pending_added();
            }
            Msg::Event(e) => {
                self.batch.events.push(*e);
                self.pending_added();
            }
            Msg::Callback(c) => {
                self.batch.callbacks.push(*c);
                self.pending_added();
            }
            Msg::Flush(reply) => {
                let _ = reply.send(self.flush());
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
                // be marked; a failed batch is already counted and logged.
                let _ = self.flush();
                let _ = reply.send(db::mark_callback_handled(&self.conn, id, &agent, &at));
            }
            Msg::Shutdown => {}
            #[cfg(test)]
            Msg::Pause(ack, gate) => {
                let _ = ack.send(());
                let _ = gate.recv();
            }
        }
    }

    fn pending_added(&mut self) {
        if self.oldest_pending.is_none() {
            self.oldest_pending = Some(Instant::now());
        }
        if self.batch.len() >= self.batch_size {
            let _ = self.flush();
        }
    }

    /// Commits pending rows in one transaction. On failure the batch is
    /// discarded and counted in `write_errors`.
    fn flush(&mut self) -> Result<(), RecordsError> {
        self.oldest_pending = None;
        let n = self.batch.len() as u64;
        if n == 0 {
            return Ok(());
        }
        let result = db::insert_batch(&mut self.conn, &self.batch, &self.policy);
        self.batch.clear();
        match result {
            Ok(()) => {
                self.shared.written.fetch_add(n, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                let total = self.shared.write_errors.fetch_add(n, Ordering::Relaxed) + n;
                if self.shared.error_log.allow(self.shared.base) {
                    tracing::error!(
                        error = %e,
                        rows = n,
                        write_errors_total = total,
                        "records batch could not be written"
                    );
                }
                Err(e.into())
            }
        }
    }

    fn purge(&mut self, cutoff_at: Option<DateTime<Utc>>) -> Result<Purged, RecordsError> {
        // Commit first so the purge sees every row queued before it; a
        // failed batch is already counted and logged, and must not stop
        // retention.
        let _ = self.flush();
        let Some(cutoff_at) = cutoff_at.or_else(|| cutoff((self.clock)(), self.retention)) else {
            return Ok(Purged::default());
        };
        let purged = db::purge(&mut self.conn, cutoff_at)?;
        record_purge(&self.shared, purged, cutoff_at);
        Ok(purged)
    }
}
