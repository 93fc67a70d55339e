//! Health of the records store: whether the writer can write, and if not
//! since when and why.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};

/// Whether the records store is writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordsState {
    /// The last write (or open) succeeded and nothing is waiting for a
    /// retry.
    Ok,
    /// Writes (or opening the database) fail: rows are kept in memory, up
    /// to [`RecordsConfig::backlog_capacity`](crate::RecordsConfig::backlog_capacity),
    /// and retried with back-off.
    Degraded,
}

impl RecordsState {
    /// `"ok"` or `"degraded"`.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordsState::Ok => "ok",
            RecordsState::Degraded => "degraded",
        }
    }
}

/// One failed attempt to write (or open) the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteFailure {
    /// When the attempt failed (wall clock).
    pub at: DateTime<Utc>,
    /// Why, on one line: `write failed: database is locked`,
    /// `open failed: ...`, `database file ... was removed or replaced`.
    pub cause: String,
}

/// A snapshot of the store's health ([`RecorderHandle::health`](crate::RecorderHandle::health)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordsHealth {
    /// Writing, or not.
    pub state: RecordsState,
    /// When the store entered `state` (when it was opened, first failed, or
    /// recovered).
    pub since: DateTime<Utc>,
    /// The most recent failure, kept after a recovery (so a flapping store
    /// can be diagnosed); `None` if no attempt ever failed.
    pub last_failure: Option<WriteFailure>,
    /// Rows waiting in the writer's memory for the store to accept them.
    pub backlog: u64,
}

impl RecordsHealth {
    /// Whether the store is [`RecordsState::Ok`].
    pub fn is_ok(&self) -> bool {
        self.state == RecordsState::Ok
    }

    /// The cause of the current degradation: the last failure's, while
    /// degraded; `None` when the store is ok.
    pub fn problem(&self) -> Option<&str> {
        match self.state {
            RecordsState::Ok => None,
            RecordsState::Degraded => self.last_failure.as_ref().map(|f| f.cause.as_str()),
        }
    }
}

struct Detail {
    since: DateTime<Utc>,
    last_failure: Option<WriteFailure>,
}

/// The health shared by the writer (which changes it) and the handles
/// (which read it). Reads are a relaxed atomic load plus, for the details,
/// a mutex held only to copy two fields; the writer takes it only when an
/// attempt fails or the state changes.
pub(crate) struct HealthCell {
    healthy: AtomicBool,
    detail: Mutex<Detail>,
}

/// What [`HealthCell::failed`] and [`HealthCell::recovered`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    /// The state changed.
    Changed,
    /// The state was already the one set.
    Same,
}

impl HealthCell {
    /// A store that is ok since `now`.
    pub(crate) fn new(now: DateTime<Utc>) -> Self {
        HealthCell {
            healthy: AtomicBool::new(true),
            detail: Mutex::new(Detail {
                since: now,
                last_failure: None,
            }),
        }
    }

    /// Records a failed attempt; degraded from now on.
    pub(crate) fn failed(&self, failure: WriteFailure) -> Transition {
        let mut d = self.detail.lock().unwrap_or_else(PoisonError::into_inner);
        let was_ok = self.healthy.swap(false, Ordering::Relaxed);
        if was_ok {
            d.since = failure.at;
        }
        d.last_failure = Some(failure);
        if was_ok {
            Transition::Changed
        } else {
            Transition::Same
        }
    }

    /// Records a successful attempt with nothing left to retry.
    pub(crate) fn recovered(&self, now: DateTime<Utc>) -> Transition {
        let mut d = self.detail.lock().unwrap_or_else(PoisonError::into_inner);
        if self.healthy.swap(true, Ordering::Relaxed) {
            Transition::Same
        } else {
            d.since = now;
            Transition::Changed
        }
    }

    /// When the current state began.
    pub(crate) fn since(&self) -> DateTime<Utc> {
        self.detail
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .since
    }

    pub(crate) fn snapshot(&self, backlog: u64) -> RecordsHealth {
        let d = self.detail.lock().unwrap_or_else(PoisonError::into_inner);
        RecordsHealth {
            state: if self.healthy.load(Ordering::Relaxed) {
                RecordsState::Ok
            } else {
                RecordsState::Degraded
            },
            since: d.since,
            last_failure: d.last_failure.clone(),
            backlog,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 6, 9, 0, s)
            .single()
            .unwrap_or_default()
    }

    #[test]
    fn transitions_and_snapshots() {
        let h = HealthCell::new(at(0));
        assert!(h.snapshot(0).is_ok());
        assert_eq!(h.snapshot(0).problem(), None);
        let fail = |s, c: &str| WriteFailure {
            at: at(s),
            cause: c.into(),
        };
        assert_eq!(h.failed(fail(1, "write failed: a")), Transition::Changed);
        assert_eq!(h.failed(fail(2, "write failed: b")), Transition::Same);
        let s = h.snapshot(7);
        assert_eq!(s.state, RecordsState::Degraded);
        assert_eq!(s.since, at(1), "degraded since the first failure");
        assert_eq!(s.problem(), Some("write failed: b"), "the latest cause");
        assert_eq!(s.backlog, 7);
        assert_eq!(h.recovered(at(3)), Transition::Changed);
        assert_eq!(h.recovered(at(4)), Transition::Same);
        let s = h.snapshot(0);
        assert!(s.is_ok());
        assert_eq!(s.since, at(3));
        assert_eq!(s.problem(), None);
        assert_eq!(
            s.last_failure.map(|f| f.cause),
            Some("write failed: b".into())
        );
        assert_eq!(RecordsState::Degraded.as_str(), "degraded");
    }
}
