//! Configuration of the records store.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Seconds in a day, for [`RecordsConfig::retention`].
const DAY: u64 = 24 * 60 * 60;

/// How and where call records and queue events are stored.
///
/// Build one with [`RecordsConfig::new`] and adjust the public fields.
#[derive(Clone)]
pub struct RecordsConfig {
    /// SQLite database file. Missing parent directories are created.
    pub path: PathBuf,
    /// How long rows are kept. Rows older than this (calls by
    /// `received_at`, events by `at`, callback requests by `requested_at`,
    /// handled or not, outbound calls by `started_at`) are purged at startup and every
    /// [`purge_interval`](Self::purge_interval). Default: 365 days.
    pub retention: Duration,
    /// How long audit entries ([`AuditEntry`](crate::AuditEntry)) are kept,
    /// apart from the other rows (an audit trail usually outlives the
    /// records it audits). Default: 365 days.
    pub audit_retention: Duration,
    /// Store `sha256(salt || caller)` (lowercase hex) instead of the caller
    /// number, and likewise for the destination of an outbound call
    /// ([`OutboundRecord::destination`](crate::OutboundRecord::destination)).
    /// The same number always gives the same hash, so repeat callers
    /// can still be counted. This is pseudonymisation, not anonymisation:
    /// whoever knows the salt can recompute the hash of any number, so keep
    /// the salt secret and out of the database. Callback request numbers
    /// ([`CallbackRequest`](crate::CallbackRequest)) are never hashed: they
    /// are kept to call the patient back. Default: `false`.
    pub hash_callers: bool,
    /// Secret salt prepended to the number before hashing. Must not be empty
    /// when `hash_callers` is on (the space of phone numbers is small enough
    /// to brute-force an unsalted hash).
    pub salt: String,
    /// Capacity of the channel between the call path and the writer thread.
    /// When it is full, further records are dropped (and counted), never
    /// waited for. Must be at least 1. Default: 10 000.
    pub queue_capacity: usize,
    /// Rows per transaction: the writer commits as soon as this many are
    /// pending. Default: 100.
    pub batch_size: usize,
    /// Longest time a row waits in the writer before being committed.
    /// Default: 200 ms.
    pub flush_interval: Duration,
    /// How often the writer thread applies retention. Default: 1 hour.
    pub purge_interval: Duration,
    /// Rows kept in the writer's memory while the database cannot be
    /// written (or opened): they are written, oldest first, once it can be
    /// again. Rows arriving while this many are kept are dropped and
    /// counted in [`RecorderStats::dropped`](crate::RecorderStats::dropped)
    /// (never waited for). Kept rows are lost if the process stops before
    /// the store recovers. Default: 50 000 (a few tens of megabytes at
    /// most; hours of a busy service's rows).
    pub backlog_capacity: usize,
    /// First wait before retrying a failed write or open; doubled after
    /// each failure, up to [`retry_max`](Self::retry_max). Default: 1 s.
    pub retry_min: Duration,
    /// Longest wait between two retries. Default: 30 s.
    pub retry_max: Duration,
    /// How long the writer waits for a lock held by another connection
    /// before the write fails with "database is locked" (SQLite busy
    /// timeout). Default: 5 s.
    pub busy_timeout: Duration,
}

impl RecordsConfig {
    /// A configuration storing into `path` with the defaults listed on each
    /// field (365 days of retention, callers in clear).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        RecordsConfig {
            path: path.into(),
            retention: Self::days(365),
            audit_retention: Self::days(365),
            hash_callers: false,
            salt: String::new(),
            queue_capacity: 10_000,
            batch_size: 100,
            flush_interval: Duration::from_millis(200),
            purge_interval: Duration::from_secs(60 * 60),
            backlog_capacity: 50_000,
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(30),
            busy_timeout: Duration::from_secs(5),
        }
    }

    /// A duration of `n` days, for [`retention`](Self::retention).
    pub fn days(n: u64) -> Duration {
        Duration::from_secs(n.saturating_mul(DAY))
    }
}

impl fmt::Debug for RecordsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The salt is a secret: never print it.
        f.debug_struct("RecordsConfig")
            .field("path", &self.path)
            .field("retention", &self.retention)
            .field("audit_retention", &self.audit_retention)
            .field("hash_callers", &self.hash_callers)
            .field(
                "salt",
                &if self.salt.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("queue_capacity", &self.queue_capacity)
            .field("batch_size", &self.batch_size)
            .field("flush_interval", &self.flush_interval)
            .field("purge_interval", &self.purge_interval)
            .field("backlog_capacity", &self.backlog_capacity)
            .field("retry_min", &self.retry_min)
            .field("retry_max", &self.retry_max)
            .field("busy_timeout", &self.busy_timeout)
            .finish()
    }
}
