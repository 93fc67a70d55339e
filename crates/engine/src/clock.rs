//! Time for the drivers: the monotonic timeline the cores run on, and the
//! wall clock for calendars and records.
//!
//! The cores (call, dispatcher, registrar) take `now` as a
//! `DateTime<Utc>` and return deadlines in the same form. The drivers feed
//! them **engine time**: the wall clock read once at start, advanced by the
//! monotonic clock ([`tokio::time::Instant`]). An NTP step of the wall clock
//! therefore never moves a ring, no-answer, max-wait, wrap-up, triage or
//! registration timer: a deadline is converted to an `Instant` once
//! ([`Clock::instant`]) and slept until.
//!
//! The wall clock ([`Clock::wall`]) is read only where the true date
//! matters: opening hours, shifts and holidays (the dispatcher is told the
//! wall clock's offset from engine time, see `dispatch`), whether a
//! practice is open when a call arrives, and the timestamps of records and
//! logs.

use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Where the wall clock is read (the system clock, or a test's).
pub trait WallClock: Send + Sync {
    /// The current wall-clock time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemWall;

impl WallClock for SystemWall {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Engine time and the wall clock. Cheap to clone; every clone shares the
/// same origin, so every driver sees the same timeline.
#[derive(Clone)]
pub struct Clock {
    origin: Instant,
    origin_engine: DateTime<Utc>,
    wall: Arc<dyn WallClock>,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clock")
            .field("origin_engine", &self.origin_engine)
            .finish_non_exhaustive()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new(Arc::new(SystemWall))
    }
}

impl Clock {
    /// A timeline starting now, reading the wall clock from `wall`.
    pub fn new(wall: Arc<dyn WallClock>) -> Self {
        Self {
            origin: Instant::now(),
            origin_engine: wall.now(),
            wall,
        }
    }

    /// Engine time: what the cores get as `now` (monotonic; equal to the
    /// wall clock at start).
    pub fn now(&self) -> DateTime<Utc> {
        self.at(Instant::now())
    }

    /// Engine time at `instant`.
    pub fn at(&self, instant: Instant) -> DateTime<Utc> {
        let elapsed = instant.saturating_duration_since(self.origin);
        self.origin_engine + chrono::Duration::from_std(elapsed).unwrap_or(chrono::Duration::MAX)
    }

    /// The monotonic instant of an engine-time deadline (a deadline in the
    /// past is the origin, which has passed).
    pub fn instant(&self, deadline: DateTime<Utc>) -> Instant {
        let after = (deadline - self.origin_engine)
            .to_std()
            .unwrap_or(Duration::ZERO);
        self.origin
            .checked_add(after)
            .unwrap_or_else(|| self.origin + Duration::from_secs(86_400 * 365))
    }

    /// The instant of an optional deadline; `None` sleeps for an hour (the
    /// driver loops and asks again).
    pub fn instant_or_idle(&self, deadline: Option<DateTime<Utc>>) -> Instant {
        match deadline {
            Some(d) => self.instant(d),
            None => Instant::now() + Duration::from_secs(3600),
        }
    }

    /// The wall clock: for calendars (opening hours, shifts, holidays) and
    /// for timestamps of records and logs only.
    pub fn wall(&self) -> DateTime<Utc> {
        self.wall.now()
    }

    /// How far the wall clock is ahead of engine time (negative: behind).
    pub fn wall_offset(&self) -> chrono::Duration {
        self.wall() - self.now()
    }
}

/// A wall clock a test can step (forward or back), for checking that no
/// timer follows it.
#[derive(Debug, Default)]
pub struct SteppedWall {
    offset_ms: std::sync::atomic::AtomicI64,
}

impl SteppedWall {
    /// Moves the wall clock by `by` (negative: back).
    pub fn step(&self, by: chrono::Duration) {
        self.offset_ms
            .fetch_add(by.num_milliseconds(), std::sync::atomic::Ordering::SeqCst);
    }
}

impl WallClock for SteppedWall {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
            + chrono::Duration::milliseconds(
                self.offset_ms.load(std::sync::atomic::Ordering::SeqCst),
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn engine_time_ignores_wall_steps() {
        let wall = Arc::new(SteppedWall::default());
        let clock = Clock::new(wall.clone());
        let t0 = clock.now();
        let deadline = t0 + chrono::Duration::seconds(20);
        let at = clock.instant(deadline);
        wall.step(chrono::Duration::hours(1));
        assert_eq!(clock.instant(deadline), at);
        tokio::time::advance(Duration::from_secs(5)).await;
        let elapsed = (clock.now() - t0).num_milliseconds();
        assert!((5000..5100).contains(&elapsed), "{elapsed}");
        wall.step(chrono::Duration::hours(-2));
        assert_eq!(clock.instant(deadline), at);
        let off = clock.wall_offset().num_minutes();
        assert!((-61..=-59).contains(&off), "{off}");
    }
}
