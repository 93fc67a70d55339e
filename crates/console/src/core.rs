//! Logins and sessions, sans IO: a state machine driven by `now` (engine
//! time) and a random source, with no clock, socket or task of its own.
//!
//! - **Login**: a username and password are checked against the agent's
//!   stored HA1 (`H(username:realm:password)`, SHA-256 when the agent has
//!   one, else MD5), compared in constant time. The password is never kept.
//! - **Throttling**: failed logins are counted per source address (the
//!   SIP registrar's [`AuthThrottle`]: a few free failures, then blocks
//!   doubling up to an hour, and one try per source for a user under a
//!   distributed attack) **and** per user ([`UserThrottle`]: after
//!   `free_failures` failures the user is blocked from every address that
//!   has not logged in as them before, for doubling periods). A blocked
//!   attempt is refused without checking the password.
//! - **Sessions**: a random 256-bit token (base64url, the cookie) and a
//!   random 256-bit CSRF token per session; a session ends at its absolute
//!   expiry, after `idle` without a request, or at logout. Only the
//!   SHA-256 of a token is kept, so a memory dump gives no usable cookie.
//! - **Bounded memory**: at most `max_sessions` sessions (the least
//!   recently used one goes first) and `max_per_agent` per agent; the
//!   throttles track a bounded number of sources and users.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use permanence_sip::throttle::{AuthThrottle, ThrottleSettings};
use permanence_types::DigestAlgorithm;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// Longest username looked at; longer ones are refused unhashed.
pub const MAX_USERNAME: usize = 64;
/// Longest password looked at; longer ones are refused unhashed.
pub const MAX_PASSWORD: usize = 256;
/// Length of a token in base64url without padding (32 bytes).
const TOKEN_LEN: usize = 43;

/// What an agent's password is checked against: the digest secrets of the
/// configuration (the same the SIP registrar uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The agent's username, exactly as configured (part of the HA1).
    pub username: String,
    /// The digest realm (part of the HA1).
    pub realm: String,
    /// Lowercase hex `MD5(username:realm:password)`, if configured.
    pub ha1_md5: Option<String>,
    /// Lowercase hex `SHA-256(username:realm:password)`, if configured;
    /// preferred over MD5.
    pub ha1_sha256: Option<String>,
}

impl Credentials {
    /// Whether `password` is the agent's: its HA1 (SHA-256 if stored, else
    /// MD5) equals the stored one, compared in constant time. No stored
    /// HA1 at all matches nothing.
    pub fn matches(&self, password: &str) -> bool {
        let (alg, stored) = match (&self.ha1_sha256, &self.ha1_md5) {
            (Some(s), _) => (DigestAlgorithm::Sha256, s),
            (None, Some(m)) => (DigestAlgorithm::Md5, m),
            (None, None) => return false,
        };
        let computed = permanence_sip::digest::ha1(alg, &self.username, &self.realm, password);
        ct_eq(
            computed.as_bytes(),
            stored.trim().to_ascii_lowercase().as_bytes(),
        )
    }
}

/// Equality in time independent of where the inputs differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Limits of the per-user throttle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserThrottleSettings {
    /// Failures for one user (from any address) before it is blocked.
    pub free_failures: u32,
    /// The first block.
    pub first_block: Duration,
    /// The longest block.
    pub max_block: Duration,
    /// A user with no failure for this long starts again from zero.
    pub forget_after: Duration,
    /// How long an address that logged in as a user stays exempt from
    /// that user's block (the agent's own desk keeps working while
    /// someone guesses their password from elsewhere).
    pub known_for: Duration,
    /// Most users (and known addresses) tracked.
    pub max_tracked: usize,
}

impl Default for UserThrottleSettings {
    fn default() -> Self {
        Self {
            free_failures: 10,
            first_block: Duration::from_secs(30),
            max_block: Duration::from_secs(900),
            forget_after: Duration::from_secs(3600),
            known_for: Duration::from_secs(30 * 86_400),
            max_tracked: 10_000,
        }
    }
}

#[derive(Debug, Clone)]
struct UserPenalty {
    failures: u32,
    blocked_until: Option<DateTime<Utc>>,
    last: DateTime<Utc>,
}

/// Failed logins per user, across addresses (see the module's
/// documentation). Keys are lowercased usernames, claimed or real.
#[derive(Debug, Default)]
pub struct UserThrottle {
    settings: UserThrottleSettings,
    users: HashMap<String, UserPenalty>,
    /// Addresses that logged in as a user, and when last.
    known: HashMap<(String, IpAddr), DateTime<Utc>>,
}

impl UserThrottle {
    /// A throttle with `settings`.
    pub fn new(settings: UserThrottleSettings) -> Self {
        Self {
            settings,
            users: HashMap::new(),
            known: HashMap::new(),
        }
    }

    fn key(user: &str) -> String {
        user.to_ascii_lowercase()
    }

    /// If `user` is blocked at `now` for `source`, how long it still is.
    pub fn blocked(&self, user: &str, source: IpAddr, now: DateTime<Utc>) -> Option<Duration> {
        let key = Self::key(user);
        let until = self.users.get(&key)?.blocked_until?;
        let left = (until - now).to_std().ok().filter(|d| !d.is_zero())?;
        let known = self
            .known
            .get(&(key, source))
            .is_some_and(|at| elapsed(*at, now) < self.settings.known_for);
        (!known).then_some(left)
    }

    /// Records a failure for `user`; returns the block it starts, if any.
    pub fn failed(&mut self, user: &str, now: DateTime<Utc>) -> Option<Duration> {
        let key = Self::key(user);
        let s = &self.settings;
        if !self.users.contains_key(&key) && self.users.len() >= s.max_tracked {
            let forget = s.forget_after;
            self.users.retain(|_, p| {
                elapsed(p.last, now) < forget || p.blocked_until.is_some_and(|u| u > now)
            });
            if self.users.len() >= s.max_tracked {
                // Full of users under attack: the per-source throttle
                // still applies to this one.
                return None;
            }
        }
        let p = self.users.entry(key).or_insert(UserPenalty {
            failures: 0,
            blocked_until: None,
            last: now,
        });
        if elapsed(p.last, now) >= s.forget_after {
            p.failures = 0;
        }
        p.failures = p.failures.saturating_add(1);
        p.last = now;
        if p.failures <= s.free_failures {
            return None;
        }
        let doublings = (p.failures - s.free_failures - 1).min(20);
        let block = s
            .first_block
            .saturating_mul(1u32 << doublings)
            .min(s.max_block);
        p.blocked_until = Some(now + block);
        Some(block)
    }

    /// `user` logged in from `source`: the address is remembered as
    /// theirs. Their count is kept (it fades after `forget_after`): the
    /// agent's own login must not give a guesser a fresh allowance.
    pub fn succeeded(&mut self, user: &str, source: IpAddr, now: DateTime<Utc>) {
        let key = Self::key(user);
        if self.known.len() >= self.settings.max_tracked {
            let keep = self.settings.known_for;
            self.known.retain(|_, at| elapsed(*at, now) < keep);
            if self.known.len() >= self.settings.max_tracked {
                // Still full: forget the oldest one.
                if let Some(oldest) = self.known.iter().min_by_key(|e| *e.1).map(|e| e.0.clone()) {
                    self.known.remove(&oldest);
                }
            }
        }
        self.known.insert((key, source), now);
    }

    /// Users and known addresses tracked (for tests).
    pub fn tracked(&self) -> (usize, usize) {
        (self.users.len(), self.known.len())
    }
}

fn elapsed(since: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (now - since).to_std().unwrap_or_default()
}

/// Limits of the session store and the login throttles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSettings {
    /// A session ends this long after login, whatever happens
    /// (`[http] console_session_minutes`).
    pub lifetime: Duration,
    /// A session ends after this long without a request.
    pub idle: Duration,
    /// Most sessions in all.
    pub max_sessions: usize,
    /// Most sessions of one agent (browsers, tabs logged in separately).
    pub max_per_agent: usize,
    /// Failed logins per source address.
    pub sources: ThrottleSettings,
    /// Failed logins per user.
    pub users: UserThrottleSettings,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            lifetime: Duration::from_secs(600 * 60),
            idle: Duration::from_secs(60 * 60),
            max_sessions: 2_000,
            max_per_agent: 8,
            sources: ThrottleSettings {
                max_tracked: 10_000,
                ..ThrottleSettings::default()
            },
            users: UserThrottleSettings::default(),
        }
    }
}

/// A session just opened: what the browser gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    /// The agent's username (as configured).
    pub agent: String,
    /// The session token (the cookie's value): 256 random bits, base64url.
    pub token: String,
    /// The session's CSRF token (the `X-CSRF-Token` header of every POST).
    pub csrf: String,
}

/// How a login went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// Right password: a new session.
    Ok(NewSession),
    /// Wrong password or unknown user (not told apart); `blocked` is the
    /// block this failure started, if any.
    BadCredentials {
        /// The block started (per source or per user), if any.
        blocked: Option<Duration>,
    },
    /// The source or the user is blocked: the password was not checked.
    Throttled {
        /// How long before trying again.
        retry_after: Duration,
    },
}

/// A valid session, as a request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// Whose session it is.
    pub agent: String,
    /// Its CSRF token.
    pub csrf: String,
    /// When it ends at the latest (absolute expiry).
    pub expires: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct Session {
    agent: String,
    csrf: String,
    created: DateTime<Utc>,
    last_seen: DateTime<Utc>,
}

/// The console's logins and sessions.
#[derive(Debug)]
pub struct Core {
    settings: SessionSettings,
    sources: AuthThrottle,
    users: UserThrottle,
    /// By SHA-256 of the token.
    sessions: HashMap<[u8; 32], Session>,
}

/// Credentials used for unknown users, so that a wrong username costs the
/// same hashing as a wrong password.
fn decoy() -> Credentials {
    Credentials {
        username: "decoy".into(),
        realm: "decoy".into(),
        ha1_md5: None,
        ha1_sha256: Some("0".repeat(64)),
    }
}

impl Core {
    /// An empty store with `settings`.
    pub fn new(settings: SessionSettings) -> Self {
        Self {
            sources: AuthThrottle::new(settings.sources.clone()),
            users: UserThrottle::new(settings.users.clone()),
            settings,
            sessions: HashMap::new(),
        }
    }

    /// Tries to log `username` in from `source` with `password`, checked
    /// against `stored` (`None`: no such agent). Blocked sources and users
    /// are refused before any check.
    pub fn login<R: rand::RngCore + ?Sized>(
        &mut self,
        username: &str,
        password: &str,
        stored: Option<&Credentials>,
        source: IpAddr,
        now: DateTime<Utc>,
        rng: &mut R,
    ) -> Login {
        let by_source = self.sources.blocked(source, now);
        let by_user = self.users.blocked(username, source, now);
        if let Some(retry_after) = by_source.max(by_user) {
            return Login::Throttled { retry_after };
        }
        let sane = username.len() <= MAX_USERNAME && password.len() <= MAX_PASSWORD;
        let ok = match stored {
            Some(c) if sane => c.matches(password),
            // The same work for an unknown user (no timing tells).
            _ => {
                let _ = decoy().matches(if sane { password } else { "" });
                false
            }
        };
        let Some(agent) = stored.filter(|_| ok).map(|c| c.username.clone()) else {
            let claimed = if username.len() <= MAX_USERNAME {
                username
            } else {
                "(long)"
            };
            let by_source = self
                .sources
                .failed(source, claimed, now)
                .map(|b| b.duration);
            let by_user = self.users.failed(claimed, now);
            return Login::BadCredentials {
                blocked: by_source.max(by_user),
            };
        };
        self.sources.succeeded(source);
        self.users.succeeded(&agent, source, now);
        Login::Ok(self.open(agent, now, rng))
    }

    /// Opens a session for `agent`, making room first.
    fn open<R: rand::RngCore + ?Sized>(
        &mut self,
        agent: String,
        now: DateTime<Utc>,
        rng: &mut R,
    ) -> NewSession {
        self.purge(now);
        let own = self.sessions.values().filter(|s| s.agent == agent).count();
        if own >= self.settings.max_per_agent {
            self.evict_lru(|s| s.agent == agent);
        }
        if self.sessions.len() >= self.settings.max_sessions {
            self.evict_lru(|_| true);
        }
        let token = random_token(rng);
        let csrf = random_token(rng);
        self.sessions.insert(
            digest(&token),
            Session {
                agent: agent.clone(),
                csrf: csrf.clone(),
                created: now,
                last_seen: now,
            },
        );
        NewSession { agent, token, csrf }
    }

    /// Removes the least recently used session among those `which` picks.
    fn evict_lru(&mut self, which: impl Fn(&Session) -> bool) {
        let oldest = self
            .sessions
            .iter()
            .filter(|(_, s)| which(s))
            .min_by_key(|(_, s)| s.last_seen)
            .map(|(k, _)| *k);
        if let Some(k) = oldest {
            self.sessions.remove(&k);
        }
    }

    /// The session of `token` if it is valid at `now`, which counts as
    /// activity (the idle timer restarts). An expired one is removed.
    pub fn session(&mut self, token: &str, now: DateTime<Utc>) -> Option<SessionInfo> {
        let info = self.peek(token, now)?;
        if let Some(s) = self.sessions.get_mut(&digest(token)) {
            s.last_seen = now;
        }
        Some(info)
    }

    /// The session of `token` if it is valid at `now`, without counting as
    /// activity (a live event stream checking it is still open). An
    /// expired one is removed.
    pub fn peek(&mut self, token: &str, now: DateTime<Utc>) -> Option<SessionInfo> {
        if token.len() != TOKEN_LEN {
            return None;
        }
        let key = digest(token);
        let s = self.sessions.get(&key)?;
        if !self.alive(s, now) {
            self.sessions.remove(&key);
            return None;
        }
        Some(SessionInfo {
            agent: s.agent.clone(),
            csrf: s.csrf.clone(),
            expires: s.created + self.settings.lifetime,
        })
    }

    fn alive(&self, s: &Session, now: DateTime<Utc>) -> bool {
        elapsed(s.created, now) < self.settings.lifetime
            && elapsed(s.last_seen, now) < self.settings.idle
    }

    /// Ends the session of `token`; returns whose it was.
    pub fn logout(&mut self, token: &str) -> Option<String> {
        self.sessions.remove(&digest(token)).map(|s| s.agent)
    }

    /// Ends every session of `agent` (removed from the configuration);
    /// returns how many.
    pub fn end_agent(&mut self, agent: &str) -> usize {
        let before = self.sessions.len();
        self.sessions.retain(|_, s| s.agent != agent);
        before - self.sessions.len()
    }

    /// Forgets the sessions expired at `now`.
    pub fn purge(&mut self, now: DateTime<Utc>) {
        let (lifetime, idle) = (self.settings.lifetime, self.settings.idle);
        self.sessions
            .retain(|_, s| elapsed(s.created, now) < lifetime && elapsed(s.last_seen, now) < idle);
    }

    /// Sessions held (expired ones included until purged).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Sources and users tracked by the throttles (for tests).
    pub fn tracked(&self) -> (usize, usize) {
        (self.sources.tracked(), self.users.tracked().0)
    }
}

/// Whether the CSRF token presented matches the session's (constant time).
pub fn csrf_ok(session: &SessionInfo, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| ct_eq(p.as_bytes(), session.csrf.as_bytes()))
}

fn random_token<R: rand::RngCore + ?Sized>(rng: &mut R) -> String {
    let mut bytes = [0u8; 32];
    rng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests;
