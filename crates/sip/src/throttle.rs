//! Throttling of password guessing: failed digest answers are counted per
//! source address, and per user across sources.
//!
//! - A source gets `free_failures` wrong answers; each one after that
//!   blocks it for `first_block · 2^(n - free_failures - 1)` (at most
//!   `max_block`). While blocked, its answers are refused **without being
//!   verified**, so guessing is slowed to a few tries per hour.
//! - Blocking is per source: a source guessing at a user does not lock that
//!   user out. The right password from another address still works.
//! - When a user draws more than `user_alarm` failures within
//!   `user_window` (guessing from many addresses), every source gets a
//!   single free failure for that user instead of `free_failures`.
//! - A success from a source clears its count.
//!
//! Pure: time is passed in. Memory is bounded: at most `max_tracked`
//! sources and users are kept, quiet ones are forgotten after
//! `forget_after`.

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// The throttle's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Wrong answers a source may give before it is blocked.
    pub free_failures: u32,
    /// The first block.
    pub first_block: Duration,
    /// The longest block.
    pub max_block: Duration,
    /// Failures for one user within `user_window` that reduce every
    /// source's allowance for that user to one.
    pub user_alarm: u32,
    /// The window of `user_alarm`.
    pub user_window: Duration,
    /// A source or user quiet this long is forgotten.
    pub forget_after: Duration,
    /// Most sources (and users) tracked.
    pub max_tracked: usize,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        Self {
            free_failures: 3,
            first_block: Duration::from_secs(2),
            max_block: Duration::from_secs(3600),
            user_alarm: 20,
            user_window: Duration::from_secs(600),
            forget_after: Duration::from_secs(3600),
            max_tracked: 50_000,
        }
    }
}

#[derive(Debug, Clone)]
struct Penalty {
    failures: u32,
    blocked_until: Option<DateTime<Utc>>,
    last: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct UserAlarm {
    failures: u32,
    since: DateTime<Utc>,
    last: DateTime<Utc>,
}

/// A source just got blocked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// The address.
    pub source: IpAddr,
    /// Its failures so far.
    pub failures: u32,
    /// How long.
    pub duration: Duration,
}

/// The throttle's state.
#[derive(Debug, Default)]
pub struct AuthThrottle {
    settings: ThrottleSettings,
    sources: HashMap<IpAddr, Penalty>,
    users: HashMap<String, UserAlarm>,
}

impl AuthThrottle {
    /// A throttle with `settings`.
    pub fn new(settings: ThrottleSettings) -> Self {
        Self {
            settings,
            sources: HashMap::new(),
            users: HashMap::new(),
        }
    }

    /// Replaces the limits (reload); counts and blocks are kept.
    pub fn set_settings(&mut self, settings: ThrottleSettings) {
        self.settings = settings;
    }

    /// If `source` is blocked at `now`, how long it still is.
    pub fn blocked(&self, source: IpAddr, now: DateTime<Utc>) -> Option<Duration> {
        let until = self.sources.get(&source)?.blocked_until?;
        (until - now).to_std().ok().filter(|d| !d.is_zero())
    }

    /// Records a wrong answer from `source` claiming `user`; returns the
    /// block it starts, if any.
    pub fn failed(&mut self, source: IpAddr, user: &str, now: DateTime<Utc>) -> Option<Blocked> {
        let alarm = self.note_user(user, now);
        self.make_room(now);
        let s = &self.settings;
        let p = self.sources.entry(source).or_insert(Penalty {
            failures: 0,
            blocked_until: None,
            last: now,
        });
        p.failures = p.failures.saturating_add(1);
        p.last = now;
        let free = if alarm { 1 } else { s.free_failures };
        if p.failures <= free {
            return None;
        }
        let doublings = (p.failures - free - 1).min(20);
        let duration = s
            .first_block
            .saturating_mul(1u32 << doublings)
            .min(s.max_block);
        p.blocked_until = Some(now + duration);
        Some(Blocked {
            source,
            failures: p.failures,
            duration,
        })
    }

    /// A success from `source`: its count is cleared.
    pub fn succeeded(&mut self, source: IpAddr) {
        self.sources.remove(&source);
    }

    /// Counts a failure against `user`; true if the user is under attack.
    fn note_user(&mut self, user: &str, now: DateTime<Utc>) -> bool {
        let s = &self.settings;
        let key = user.to_ascii_lowercase();
        if !self.users.contains_key(&key) && self.users.len() >= s.max_tracked {
            return false;
        }
        let a = self.users.entry(key).or_insert(UserAlarm {
            failures: 0,
            since: now,
            last: now,
        });
        if (now - a.since).to_std().unwrap_or_default() > s.user_window {
            a.failures = 0;
            a.since = now;
        }
        a.failures = a.failures.saturating_add(1);
        a.last = now;
        a.failures > s.user_alarm
    }

    /// Forgets quiet sources and users when the tables are full.
    fn make_room(&mut self, now: DateTime<Utc>) {
        let s = &self.settings;
        if self.sources.len() < s.max_tracked && self.users.len() < s.max_tracked {
            return;
        }
        let quiet =
            |last: DateTime<Utc>| (now - last).to_std().unwrap_or_default() > s.forget_after;
        self.sources
            .retain(|_, p| !quiet(p.last) || p.blocked_until.is_some_and(|u| u > now));
        self.users.retain(|_, a| !quiet(a.last));
        if self.sources.len() >= s.max_tracked {
            // Still full of recent attackers: keep the blocked ones.
            self.sources
                .retain(|_, p| p.blocked_until.is_some_and(|u| u > now));
        }
    }

    /// Sources tracked (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: f64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).expect("valid")
            + chrono::Duration::milliseconds((s * 1000.0) as i64)
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn a_guessing_source_is_blocked_within_a_few_tries_and_longer_each_time() {
        let mut th = AuthThrottle::new(ThrottleSettings::default());
        let mut blocks = Vec::new();
        let mut now = 0.0;
        let mut tries = 0;
        // Guess as fast as allowed for an hour.
        while now < 3600.0 {
            if th.blocked(ip(1), t(now)).is_none() {
                tries += 1;
                if let Some(b) = th.failed(ip(1), "alice", t(now)) {
                    blocks.push(b.duration);
                }
            }
            now += 0.5;
        }
        assert_eq!(blocks[0], Duration::from_secs(2));
        assert_eq!(blocks[1], Duration::from_secs(4));
        assert!(tries < 20, "{tries} guesses in an hour");
        // Another address is not blocked, and a success clears.
        assert!(th.blocked(ip(2), t(10.0)).is_none());
        th.succeeded(ip(1));
        assert!(th.blocked(ip(1), t(3600.0)).is_none());
    }

    #[test]
    fn many_sources_guessing_one_user_get_one_try_each() {
        let mut th = AuthThrottle::new(ThrottleSettings::default());
        let mut blocked_at_first_failure = 0;
        for i in 0..100u8 {
            if th.failed(ip(i), "alice", t(f64::from(i))).is_some() {
                blocked_at_first_failure += 1;
            }
        }
        // The alarm starts after 20 failures for alice; from then on the
        // second failure of any source blocks it.
        let blocked = (0..100u8)
            .filter(|i| {
                th.failed(ip(*i), "alice", t(100.0 + f64::from(*i)))
                    .is_some()
            })
            .count();
        assert_eq!(blocked_at_first_failure, 0);
        assert_eq!(blocked, 100);
        // Bob is not concerned.
        assert!(th.failed(ip(250), "bob", t(201.0)).is_none());
    }

    #[test]
    fn memory_is_bounded() {
        let mut th = AuthThrottle::new(ThrottleSettings {
            max_tracked: 100,
            ..ThrottleSettings::default()
        });
        for i in 0..10_000u32 {
            let src = IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
            th.failed(src, &format!("u{i}"), t(f64::from(i) * 10.0));
        }
        assert!(th.tracked() <= 100);
    }
}
