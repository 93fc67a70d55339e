//! Registrar for telesecretary softphones (RFC 3261 §10), sans-IO.
//!
//! The edge extracts a [`RegisterRequest`] from a REGISTER and turns the
//! returned [`RegisterOutcome`] into a response; the registrar itself never
//! touches a socket or a clock. It keeps each agent's contacts (several per
//! agent: desk softphone and browser, say), expires them, and schedules
//! OPTIONS "qualify" probes so a softphone that vanished is noticed.
//!
//! Drive it with [`Registrar::handle_register`], [`Registrar::handle_timeout`]
//! at [`Registrar::poll_timeout`], [`Registrar::due_qualify`] /
//! [`Registrar::qualify_result`], and drain [`Registrar::poll_event`].

use crate::digest::{self, DigestAlgorithm, NonceError, NonceManager};
use crate::throttle::{AuthThrottle, ThrottleSettings};
use chrono::{DateTime, Utc};
use permanence_types::Transport;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

/// Registrar settings (from `[sip.registrar]`).
#[derive(Debug, Clone)]
pub struct RegistrarSettings {
    /// Digest realm.
    pub realm: String,
    /// Shortest registration accepted (shorter: 423 Interval Too Brief).
    pub min_expires: u32,
    /// Longest registration granted (longer requests are shortened).
    pub max_expires: u32,
    /// Registration time when the client asks none.
    pub default_expires: u32,
    /// Nonce lifetime.
    pub nonce_ttl: Duration,
    /// Interval between OPTIONS probes of a contact; zero disables.
    pub qualify_interval: Duration,
    /// Time a probe may take before the contact counts as unreachable.
    pub qualify_timeout: Duration,
    /// Contacts kept per agent; registering one more evicts the oldest.
    pub max_contacts: usize,
    /// Algorithms offered in challenges, most preferred first.
    pub algorithms: Vec<DigestAlgorithm>,
    /// Throttling of wrong digest answers.
    pub throttle: ThrottleSettings,
}

impl Default for RegistrarSettings {
    fn default() -> Self {
        Self {
            realm: "permanence".into(),
            min_expires: 60,
            max_expires: 3600,
            default_expires: 600,
            nonce_ttl: Duration::from_secs(300),
            qualify_interval: Duration::from_secs(30),
            qualify_timeout: Duration::from_secs(5),
            max_contacts: 10,
            algorithms: vec![DigestAlgorithm::Sha256, DigestAlgorithm::Md5],
            throttle: ThrottleSettings::default(),
        }
    }
}

/// The digest secrets of one agent (HA1 values, hex).
#[derive(Debug, Clone, Default)]
pub struct AgentSecrets {
    /// `MD5(username:realm:password)`.
    pub ha1_md5: Option<String>,
    /// `SHA-256(username:realm:password)`.
    pub ha1_sha256: Option<String>,
}

impl AgentSecrets {
    /// The HA1 for an algorithm, if configured.
    pub fn ha1(&self, alg: DigestAlgorithm) -> Option<&str> {
        match alg {
            DigestAlgorithm::Md5 => self.ha1_md5.as_deref(),
            DigestAlgorithm::Sha256 => self.ha1_sha256.as_deref(),
        }
    }

    /// Which of `offered` (in that order) this agent can authenticate with.
    pub fn algorithms(&self, offered: &[DigestAlgorithm]) -> Vec<DigestAlgorithm> {
        offered
            .iter()
            .copied()
            .filter(|a| self.ha1(*a).is_some())
            .collect()
    }
}

/// The Contact field of a REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactField {
    /// No Contact header: a query of current bindings.
    None,
    /// `Contact: *` (remove all, only with `Expires: 0`).
    Star,
    /// One or more contacts.
    List(Vec<ContactEntry>),
}

/// One contact of a REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactEntry {
    /// The contact URI, as written.
    pub uri: String,
    /// Its `expires` parameter.
    pub expires: Option<u32>,
    /// Its `+sip.instance` parameter (identifies the device across URIs).
    pub instance: Option<String>,
}

/// What the registrar needs from a REGISTER.
#[derive(Debug, Clone)]
pub struct RegisterRequest {
    /// User part of the To URI (the address of record).
    pub to_user: String,
    /// Raw `Authorization` header value, if any.
    pub authorization: Option<String>,
    /// The Contact field.
    pub contacts: ContactField,
    /// `Expires` header.
    pub expires_header: Option<u32>,
    /// Call-ID.
    pub call_id: String,
    /// CSeq number.
    pub cseq: u32,
    /// Where the request came from (the address to reach the softphone).
    pub source: SocketAddr,
    /// Transport it came over.
    pub transport: Transport,
    /// User-Agent, for logs.
    pub user_agent: Option<String>,
}

/// How to answer a REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// 401 with these `WWW-Authenticate` values (one per algorithm).
    Challenge {
        /// Header values, preferred algorithm first.
        www_authenticate: Vec<String>,
    },
    /// 200 with the current bindings (`Contact: <uri>;expires=N`).
    Ok {
        /// Bindings of the agent after the request, with seconds left.
        bindings: Vec<(String, u32)>,
    },
    /// 423 Interval Too Brief with this `Min-Expires`.
    IntervalTooBrief {
        /// Minimum accepted.
        min_expires: u32,
    },
    /// 403: wrong credentials, unknown user, or username/AOR mismatch.
    Forbidden(&'static str),
    /// 400 with a reason.
    BadRequest(&'static str),
    /// 500: an older CSeq for the same Call-ID (RFC 3261 §10.3 step 7).
    OutOfOrder,
}

/// Changes in registration state, for logs and (later) metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationEvent {
    /// A new contact.
    Registered {
        /// Agent user name.
        user: String,
        /// Contact URI.
        contact: String,
        /// Where it registered from.
        source: SocketAddr,
        /// Seconds granted.
        expires: u32,
        /// User-Agent header.
        user_agent: Option<String>,
    },
    /// A contact was removed.
    Unregistered {
        /// Agent user name.
        user: String,
        /// Contact URI.
        contact: String,
        /// Why.
        reason: UnregisterReason,
    },
    /// A contact stopped answering OPTIONS.
    Unreachable {
        /// Agent user name.
        user: String,
        /// Contact URI.
        contact: String,
    },
    /// A contact answers OPTIONS again.
    Reachable {
        /// Agent user name.
        user: String,
        /// Contact URI.
        contact: String,
    },
    /// Authentication failed (wrong password, replayed nonce, unknown user).
    AuthFailed {
        /// The user name claimed.
        user: String,
        /// Source address.
        source: SocketAddr,
        /// Why.
        reason: &'static str,
    },
    /// A source is blocked after repeated wrong answers (once per block).
    SourceBlocked {
        /// The address.
        source: SocketAddr,
        /// The user name it last claimed.
        user: String,
        /// Its wrong answers so far.
        failures: u32,
        /// How long it is blocked.
        duration: Duration,
    },
    /// An answer from a blocked source was refused unverified.
    Throttled {
        /// The user name claimed.
        user: String,
        /// Source address.
        source: SocketAddr,
    },
}

/// Why a contact went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnregisterReason {
    /// `Expires: 0` for it, or `Contact: *`.
    Removed,
    /// Its registration ran out.
    Expired,
    /// Evicted by a newer contact beyond the per-agent limit.
    Replaced,
    /// The connection it registered over closed, and it cannot be reached
    /// any other way (a browser over WebSocket: RFC 7118 §5, its contact's
    /// host is a `.invalid` name).
    ConnectionClosed,
}

/// One registered contact.
#[derive(Debug, Clone)]
pub struct Binding {
    /// Contact URI, as registered.
    pub uri: String,
    /// Device identity (`+sip.instance`), if given.
    pub instance: Option<String>,
    /// Address the REGISTER came from (used to reach a NATed softphone).
    pub source: SocketAddr,
    /// Transport.
    pub transport: Transport,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// Call-ID of the registering dialog.
    pub call_id: String,
    /// Last CSeq seen.
    pub cseq: u32,
    /// User-Agent.
    pub user_agent: Option<String>,
    /// Whether it answered its last OPTIONS probe (true until a probe fails).
    pub reachable: bool,
    /// Probe id in flight and when it was sent.
    pending_probe: Option<(u64, DateTime<Utc>)>,
    /// When to probe next.
    next_probe: DateTime<Utc>,
    /// When it was registered first (for eviction order).
    registered_at: DateTime<Utc>,
}

impl Binding {
    fn same_device(&self, c: &ContactEntry) -> bool {
        match (&self.instance, &c.instance) {
            (Some(a), Some(b)) => a == b,
            _ => self.uri.eq_ignore_ascii_case(&c.uri),
        }
    }
}

/// A binding as persisted, to restore after a restart (see
/// [`Registrar::restore`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedBinding {
    /// Contact URI.
    pub uri: String,
    /// Device identity (`+sip.instance`).
    pub instance: Option<String>,
    /// Address the REGISTER came from.
    pub source: SocketAddr,
    /// Transport.
    pub transport: Transport,
    /// When it expires (engine time).
    pub expires_at: DateTime<Utc>,
    /// Call-ID of the registering dialog.
    pub call_id: String,
    /// Last CSeq seen.
    pub cseq: u32,
    /// User-Agent.
    pub user_agent: Option<String>,
}

impl From<&Binding> for SavedBinding {
    fn from(b: &Binding) -> Self {
        Self {
            uri: b.uri.clone(),
            instance: b.instance.clone(),
            source: b.source,
            transport: b.transport,
            expires_at: b.expires_at,
            call_id: b.call_id.clone(),
            cseq: b.cseq,
            user_agent: b.user_agent.clone(),
        }
    }
}

/// An OPTIONS probe the edge must send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QualifyTarget {
    /// Probe id, to report the result with.
    pub id: u64,
    /// Agent user name.
    pub user: String,
    /// Contact URI (the Request-URI of the OPTIONS).
    pub contact: String,
    /// Where to send it.
    pub destination: SocketAddr,
    /// Transport to use.
    pub transport: Transport,
}

/// The registrar state machine.
#[derive(Debug)]
pub struct Registrar {
    settings: RegistrarSettings,
    nonce_key: [u8; 32],
    nonces: NonceManager,
    bindings: BTreeMap<String, Vec<Binding>>,
    events: VecDeque<RegistrationEvent>,
    next_probe_id: u64,
    throttle: AuthThrottle,
}

impl Registrar {
    /// A registrar; `nonce_key` authenticates nonces (random per process).
    pub fn new(settings: RegistrarSettings, nonce_key: [u8; 32]) -> Self {
        let nonces = NonceManager::new(nonce_key, settings.nonce_ttl);
        Self {
            throttle: AuthThrottle::new(settings.throttle.clone()),
            settings,
            nonce_key,
            nonces,
            bindings: BTreeMap::new(),
            events: VecDeque::new(),
            next_probe_id: 0,
        }
    }

    /// Current settings.
    pub fn settings(&self) -> &RegistrarSettings {
        &self.settings
    }

    /// Restores a binding of `user` saved before a restart, unless it has
    /// expired or the contact is already bound. It counts as a
    /// registration ([`RegistrationEvent::Registered`]) and is qualified at
    /// once when OPTIONS probes are on, since the device may have gone
    /// meanwhile.
    pub fn restore(&mut self, user: &str, saved: SavedBinding, now: DateTime<Utc>) {
        if saved.expires_at <= now {
            return;
        }
        let key = user.to_ascii_lowercase();
        let list = self.bindings.entry(key.clone()).or_default();
        if list.iter().any(|b| b.uri.eq_ignore_ascii_case(&saved.uri))
            || list.len() >= self.settings.max_contacts.max(1)
        {
            return;
        }
        let expires = u32::try_from((saved.expires_at - now).num_seconds()).unwrap_or(u32::MAX);
        self.events.push_back(RegistrationEvent::Registered {
            user: key,
            contact: saved.uri.clone(),
            source: saved.source,
            expires,
            user_agent: saved.user_agent.clone(),
        });
        list.push(Binding {
            uri: saved.uri,
            instance: saved.instance,
            source: saved.source,
            transport: saved.transport,
            expires_at: saved.expires_at,
            call_id: saved.call_id,
            cseq: saved.cseq,
            user_agent: saved.user_agent,
            reachable: true,
            pending_probe: None,
            next_probe: now,
            registered_at: now,
        });
    }

    /// Replaces the settings (config reload); bindings are kept.
    pub fn set_settings(&mut self, settings: RegistrarSettings) {
        if settings.nonce_ttl != self.settings.nonce_ttl {
            // Outstanding nonces stay valid (same key); only their lifetime
            // changes for the ones issued from now on.
            self.nonces = NonceManager::new(self.nonce_key, settings.nonce_ttl);
        }
        self.throttle.set_settings(settings.throttle.clone());
        self.settings = settings;
    }

    /// A fresh challenge for a request without credentials (every offered
    /// algorithm; what the gate sends without a transaction).
    pub fn challenge_anyone(&mut self, now: DateTime<Utc>) -> Vec<String> {
        self.challenge(None, false, now)
    }

    /// Builds the challenge headers for `secrets` (both algorithms when the
    /// user is unknown, so the answer does not reveal which users exist).
    fn challenge(
        &mut self,
        secrets: Option<&AgentSecrets>,
        stale: bool,
        now: DateTime<Utc>,
    ) -> Vec<String> {
        let offered = &self.settings.algorithms;
        let algs = match secrets.map(|s| s.algorithms(offered)) {
            Some(a) if !a.is_empty() => a,
            _ => offered.clone(),
        };
        let nonce = self.nonces.issue(now);
        algs.into_iter()
            .map(|a| digest::challenge(&self.settings.realm, &nonce, a, stale))
            .collect()
    }

    /// Authenticates a request carrying `authorization` (raw header value)
    /// for `method` from `source`; `lookup` returns the secrets of a user
    /// name. Used for REGISTER and for INVITEs from agents (407
    /// challenges). Wrong answers are throttled per source (see
    /// [`crate::throttle`]): a blocked source's answers are refused
    /// unverified.
    pub fn authenticate(
        &mut self,
        authorization: Option<&str>,
        method: &str,
        lookup: &dyn Fn(&str) -> Option<AgentSecrets>,
        source: SocketAddr,
        now: DateTime<Utc>,
    ) -> AuthResult {
        let Some(raw) = authorization else {
            return AuthResult::Challenge(self.challenge(None, false, now));
        };
        let params = match digest::parse_digest(raw) {
            Ok(p) => p,
            Err(_) => return AuthResult::Challenge(self.challenge(None, false, now)),
        };
        if let Some(retry_after) = self.throttle.blocked(source.ip(), now) {
            self.events.push_back(RegistrationEvent::Throttled {
                user: params.username.clone(),
                source,
            });
            return AuthResult::Throttled {
                user: params.username,
                retry_after,
            };
        }
        if params.realm != self.settings.realm {
            return AuthResult::Challenge(self.challenge(None, false, now));
        }
        let secrets = lookup(&params.username);
        match self.nonces.validate(&params.nonce, now) {
            Ok(()) => {}
            Err(NonceError::Stale) => {
                return AuthResult::Challenge(self.challenge(secrets.as_ref(), true, now))
            }
            Err(_) => return AuthResult::Challenge(self.challenge(secrets.as_ref(), false, now)),
        }
        let Some(secrets) = secrets else {
            return self.wrong_answer(params, source, "unknown user", now);
        };
        let allowed = self.settings.algorithms.contains(&params.algorithm);
        let Some(ha1) = secrets.ha1(params.algorithm).filter(|_| allowed) else {
            return AuthResult::Challenge(self.challenge(Some(&secrets), false, now));
        };
        if !digest::verify(&params, ha1, method) {
            return self.wrong_answer(params, source, "wrong credentials", now);
        }
        match self.nonces.consume(&params.nonce, params.nc, now) {
            Ok(()) => {
                self.throttle.succeeded(source.ip());
                AuthResult::Authenticated(params.username)
            }
            Err(NonceError::Replayed) => {
                self.events.push_back(RegistrationEvent::AuthFailed {
                    user: params.username.clone(),
                    source,
                    reason: "replayed nonce",
                });
                AuthResult::Replayed {
                    user: params.username,
                    challenge: self.challenge(Some(&secrets), false, now),
                }
            }
            Err(_) => AuthResult::Challenge(self.challenge(Some(&secrets), true, now)),
        }
    }

    /// A wrong answer (or an unknown user): counted against the nonce and
    /// the source, which may get blocked.
    fn wrong_answer(
        &mut self,
        params: digest::DigestParams,
        source: SocketAddr,
        reason: &'static str,
        now: DateTime<Utc>,
    ) -> AuthResult {
        self.nonces.wrong_answer(&params.nonce, now);
        self.events.push_back(RegistrationEvent::AuthFailed {
            user: params.username.clone(),
            source,
            reason,
        });
        if let Some(b) = self.throttle.failed(source.ip(), &params.username, now) {
            self.events.push_back(RegistrationEvent::SourceBlocked {
                source,
                user: params.username.clone(),
                failures: b.failures,
                duration: b.duration,
            });
        }
        AuthResult::Failed {
            user: params.username,
            reason,
        }
    }

    /// Handles one REGISTER.
    pub fn handle_register(
        &mut self,
        req: &RegisterRequest,
        lookup: &dyn Fn(&str) -> Option<AgentSecrets>,
        now: DateTime<Utc>,
    ) -> RegisterOutcome {
        let user = match self.authenticate(
            req.authorization.as_deref(),
            "REGISTER",
            lookup,
            req.source,
            now,
        ) {
            AuthResult::Authenticated(u) => u,
            AuthResult::Challenge(h) => {
                return RegisterOutcome::Challenge {
                    www_authenticate: h,
                }
            }
            AuthResult::Failed { reason, .. } => return RegisterOutcome::Forbidden(reason),
            AuthResult::Replayed { challenge, .. } => {
                return RegisterOutcome::Challenge {
                    www_authenticate: challenge,
                };
            }
            AuthResult::Throttled { .. } => return RegisterOutcome::Forbidden("throttled"),
        };
        if !user.eq_ignore_ascii_case(&req.to_user) {
            self.events.push_back(RegistrationEvent::AuthFailed {
                user: user.clone(),
                source: req.source,
                reason: "authenticated user differs from the To user",
            });
            return RegisterOutcome::Forbidden("authenticated user differs from the To user");
        }
        let key = user.to_ascii_lowercase();
        match &req.contacts {
            ContactField::None => {}
            ContactField::Star => {
                if req.expires_header != Some(0) {
                    return RegisterOutcome::BadRequest("Contact: * requires Expires: 0");
                }
                if let Some(list) = self.bindings.remove(&key) {
                    for b in list {
                        self.events.push_back(RegistrationEvent::Unregistered {
                            user: key.clone(),
                            contact: b.uri,
                            reason: UnregisterReason::Removed,
                        });
                    }
                }
            }
            ContactField::List(contacts) => {
                // Validate everything before changing anything.
                for c in contacts {
                    let e = c
                        .expires
                        .or(req.expires_header)
                        .unwrap_or(self.settings.default_expires);
                    if e != 0 && e < self.settings.min_expires {
                        return RegisterOutcome::IntervalTooBrief {
                            min_expires: self.settings.min_expires,
                        };
                    }
                    if let Some(b) = self
                        .bindings
                        .get(&key)
                        .and_then(|l| l.iter().find(|b| b.same_device(c)))
                    {
                        if b.call_id == req.call_id && req.cseq <= b.cseq {
                            return RegisterOutcome::OutOfOrder;
                        }
                    }
                }
                for c in contacts {
                    let e = c
                        .expires
                        .or(req.expires_header)
                        .unwrap_or(self.settings.default_expires)
                        .min(self.settings.max_expires);
                    self.apply_contact(&key, c, e, req, now);
                }
            }
        }
        RegisterOutcome::Ok {
            bindings: self.current(&key, now),
        }
    }

    fn apply_contact(
        &mut self,
        key: &str,
        c: &ContactEntry,
        expires: u32,
        req: &RegisterRequest,
        now: DateTime<Utc>,
    ) {
        let list = self.bindings.entry(key.to_string()).or_default();
        let pos = list.iter().position(|b| b.same_device(c));
        if expires == 0 {
            if let Some(i) = pos {
                let b = list.remove(i);
                self.events.push_back(RegistrationEvent::Unregistered {
                    user: key.to_string(),
                    contact: b.uri,
                    reason: UnregisterReason::Removed,
                });
            }
            if list.is_empty() {
                self.bindings.remove(key);
            }
            return;
        }
        let expires_at = now + Duration::from_secs(u64::from(expires));
        let first_probe = now + self.settings.qualify_interval;
        match pos {
            Some(i) => {
                let b = &mut list[i];
                let moved = b.source != req.source || !b.uri.eq_ignore_ascii_case(&c.uri);
                b.uri = c.uri.clone();
                b.source = req.source;
                b.transport = req.transport;
                b.expires_at = expires_at;
                b.call_id = req.call_id.clone();
                b.cseq = req.cseq;
                b.user_agent = req.user_agent.clone();
                if moved {
                    self.events.push_back(RegistrationEvent::Registered {
                        user: key.to_string(),
                        contact: c.uri.clone(),
                        source: req.source,
                        expires,
                        user_agent: req.user_agent.clone(),
                    });
                }
                if !b.reachable {
                    // A fresh REGISTER proves the device is back.
                    b.reachable = true;
                    b.pending_probe = None;
                    self.events.push_back(RegistrationEvent::Reachable {
                        user: key.to_string(),
                        contact: c.uri.clone(),
                    });
                }
            }
            None => {
                if list.len() >= self.settings.max_contacts.max(1) {
                    if let Some((oldest, _)) =
                        list.iter().enumerate().min_by_key(|(_, b)| b.registered_at)
                    {
                        let b = list.remove(oldest);
                        self.events.push_back(RegistrationEvent::Unregistered {
                            user: key.to_string(),
                            contact: b.uri,
                            reason: UnregisterReason::Replaced,
                        });
                    }
                }
                list.push(Binding {
                    uri: c.uri.clone(),
                    instance: c.instance.clone(),
                    source: req.source,
                    transport: req.transport,
                    expires_at,
                    call_id: req.call_id.clone(),
                    cseq: req.cseq,
                    user_agent: req.user_agent.clone(),
                    reachable: true,
                    pending_probe: None,
                    next_probe: first_probe,
                    registered_at: now,
                });
                self.events.push_back(RegistrationEvent::Registered {
                    user: key.to_string(),
                    contact: c.uri.clone(),
                    source: req.source,
                    expires,
                    user_agent: req.user_agent.clone(),
                });
            }
        }
    }

    fn current(&self, key: &str, now: DateTime<Utc>) -> Vec<(String, u32)> {
        self.bindings
            .get(key)
            .map(|l| {
                l.iter()
                    .map(|b| {
                        let left = (b.expires_at - now).num_seconds().max(0);
                        (b.uri.clone(), u32::try_from(left).unwrap_or(u32::MAX))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Contacts of `user` that are registered and reachable, most recently
    /// registered first (the device the agent just logged in on).
    pub fn reachable_contacts(&self, user: &str) -> Vec<&Binding> {
        let mut v: Vec<&Binding> = self
            .bindings
            .get(&user.to_ascii_lowercase())
            .map(|l| l.iter().filter(|b| b.reachable).collect())
            .unwrap_or_default();
        v.sort_by_key(|b| std::cmp::Reverse(b.registered_at));
        v
    }

    /// All bindings of `user`.
    pub fn bindings(&self, user: &str) -> &[Binding] {
        self.bindings
            .get(&user.to_ascii_lowercase())
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Number of registered contacts, all agents.
    pub fn contact_count(&self) -> usize {
        self.bindings.values().map(Vec::len).sum()
    }

    /// Whether `user` has at least one reachable contact.
    pub fn is_reachable(&self, user: &str) -> bool {
        !self.reachable_contacts(user).is_empty()
    }

    /// The next instant [`Registrar::handle_timeout`] has work to do.
    pub fn poll_timeout(&self) -> Option<DateTime<Utc>> {
        let qualify = self.settings.qualify_interval > Duration::ZERO;
        self.bindings
            .values()
            .flatten()
            .flat_map(|b| {
                let probe = match b.pending_probe {
                    Some((_, sent)) => Some(sent + self.settings.qualify_timeout),
                    None if qualify => Some(b.next_probe),
                    None => None,
                };
                [Some(b.expires_at), probe]
            })
            .flatten()
            .min()
    }

    /// The connection from `source` over `transport` closed: the contacts
    /// registered over it are removed when the transport is a WebSocket
    /// (nothing else can reach a browser); returns how many. A softphone
    /// over TCP or TLS keeps its binding (it may be reached on a new
    /// connection, and reconnects to refresh it).
    pub fn connection_closed(&mut self, source: SocketAddr, transport: Transport) -> usize {
        if !transport.is_websocket() {
            return 0;
        }
        let mut removed = 0;
        for (user, list) in self.bindings.iter_mut() {
            list.retain(|b| {
                let gone = b.source == source && b.transport == transport;
                if gone {
                    removed += 1;
                    self.events.push_back(RegistrationEvent::Unregistered {
                        user: user.clone(),
                        contact: b.uri.clone(),
                        reason: UnregisterReason::ConnectionClosed,
                    });
                }
                !gone
            });
        }
        self.bindings.retain(|_, l| !l.is_empty());
        removed
    }

    /// Expires registrations and overdue probes.
    pub fn handle_timeout(&mut self, now: DateTime<Utc>) {
        let timeout = self.settings.qualify_timeout;
        for (user, list) in self.bindings.iter_mut() {
            list.retain(|b| {
                if b.expires_at <= now {
                    self.events.push_back(RegistrationEvent::Unregistered {
                        user: user.clone(),
                        contact: b.uri.clone(),
                        reason: UnregisterReason::Expired,
                    });
                    false
                } else {
                    true
                }
            });
            for b in list.iter_mut() {
                if let Some((_, sent)) = b.pending_probe {
                    if sent + timeout <= now {
                        b.pending_probe = None;
                        b.next_probe = now + self.settings.qualify_interval;
                        if b.reachable {
                            b.reachable = false;
                            self.events.push_back(RegistrationEvent::Unreachable {
                                user: user.clone(),
                                contact: b.uri.clone(),
                            });
                        }
                    }
                }
            }
        }
        self.bindings.retain(|_, l| !l.is_empty());
        self.nonces.purge(now);
    }

    /// Probes due now; each is marked in flight. Empty when qualify is off.
    pub fn due_qualify(&mut self, now: DateTime<Utc>) -> Vec<QualifyTarget> {
        let mut out = Vec::new();
        if self.settings.qualify_interval <= Duration::ZERO {
            return out;
        }
        for (user, list) in self.bindings.iter_mut() {
            for b in list.iter_mut() {
                if b.pending_probe.is_none() && b.next_probe <= now {
                    self.next_probe_id += 1;
                    b.pending_probe = Some((self.next_probe_id, now));
                    out.push(QualifyTarget {
                        id: self.next_probe_id,
                        user: user.clone(),
                        contact: b.uri.clone(),
                        destination: b.source,
                        transport: b.transport,
                    });
                }
            }
        }
        out
    }

    /// Reports a probe's outcome: `ok` when the softphone answered (any
    /// final response but 408), false on timeout or transport error.
    pub fn qualify_result(&mut self, id: u64, ok: bool, now: DateTime<Utc>) {
        let interval = self.settings.qualify_interval;
        for (user, list) in self.bindings.iter_mut() {
            for b in list.iter_mut() {
                if matches!(b.pending_probe, Some((p, _)) if p == id) {
                    b.pending_probe = None;
                    b.next_probe = now + interval;
                    if ok && !b.reachable {
                        b.reachable = true;
                        self.events.push_back(RegistrationEvent::Reachable {
                            user: user.clone(),
                            contact: b.uri.clone(),
                        });
                    } else if !ok && b.reachable {
                        b.reachable = false;
                        self.events.push_back(RegistrationEvent::Unreachable {
                            user: user.clone(),
                            contact: b.uri.clone(),
                        });
                    }
                    return;
                }
            }
        }
    }

    /// Next registration event, if any.
    pub fn poll_event(&mut self) -> Option<RegistrationEvent> {
        self.events.pop_front()
    }
}

/// Outcome of [`Registrar::authenticate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthResult {
    /// The request is from this user.
    Authenticated(String),
    /// Send a challenge with these header values.
    Challenge(Vec<String>),
    /// Wrong credentials or unknown user: refuse (403).
    Failed {
        /// User name claimed.
        user: String,
        /// Why.
        reason: &'static str,
    },
    /// A nonce count was replayed: refuse and challenge again.
    Replayed {
        /// User name claimed.
        user: String,
        /// A fresh challenge.
        challenge: Vec<String>,
    },
    /// The source is blocked after wrong answers: refused unverified (403).
    Throttled {
        /// User name claimed.
        user: String,
        /// How long the block lasts.
        retry_after: Duration,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::ha1;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).expect("valid")
    }

    fn secrets(user: &str) -> Option<AgentSecrets> {
        let pw = format!("{user}-demo");
        matches!(user, "alice" | "bob").then(|| AgentSecrets {
            ha1_md5: Some(ha1(DigestAlgorithm::Md5, user, "permanence", &pw)),
            ha1_sha256: Some(ha1(DigestAlgorithm::Sha256, user, "permanence", &pw)),
        })
    }

    fn req(user: &str, contact: &str, expires: Option<u32>, cseq: u32) -> RegisterRequest {
        RegisterRequest {
            to_user: user.into(),
            authorization: None,
            contacts: ContactField::List(vec![ContactEntry {
                uri: contact.into(),
                expires,
                instance: None,
            }]),
            expires_header: None,
            call_id: "c1".into(),
            cseq,
            source: "127.0.0.1:5070".parse().expect("addr"),
            transport: Transport::Udp,
            user_agent: Some("test".into()),
        }
    }

    /// Answers a challenge like a softphone would.
    fn answer(challenge: &str, user: &str, password: &str, nc: u32) -> String {
        let rest = challenge.strip_prefix("Digest ").expect("digest challenge");
        let params = crate::digest::split_params(rest);
        let get = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .expect("challenge parameter")
        };
        let alg = DigestAlgorithm::parse(&get("algorithm")).expect("algorithm");
        let p = crate::digest::DigestParams {
            username: user.into(),
            realm: get("realm"),
            nonce: get("nonce"),
            uri: "sip:permanence".into(),
            response: String::new(),
            algorithm: alg,
            qop: Some("auth".into()),
            nc: Some(nc),
            cnonce: Some("abcdef".into()),
            opaque: None,
        };
        let h = ha1(alg, user, &p.realm, password);
        let r = crate::digest::expected_response(&p, &h, "REGISTER");
        format!(
            "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"sip:permanence\", response=\"{r}\", algorithm={}, qop=auth, nc={nc:08x}, cnonce=\"abcdef\"",
            p.realm,
            p.nonce,
            alg.token()
        )
    }

    fn register(
        r: &mut Registrar,
        mut rq: RegisterRequest,
        password: &str,
        alg_index: usize,
        now: DateTime<Utc>,
    ) -> RegisterOutcome {
        let RegisterOutcome::Challenge { www_authenticate } = r.handle_register(&rq, &secrets, now)
        else {
            panic!("expected a challenge");
        };
        rq.authorization = Some(answer(
            &www_authenticate[alg_index],
            &rq.to_user.clone(),
            password,
            1,
        ));
        r.handle_register(&rq, &secrets, now)
    }

    #[test]
    fn register_with_sha256_and_md5() {
        let mut r = Registrar::new(RegistrarSettings::default(), [1; 32]);
        let out = register(
            &mut r,
            req("alice", "sip:alice@127.0.0.1:5070", None, 1),
            "alice-demo",
            0,
            t0(),
        );
        assert_eq!(
            out,
            RegisterOutcome::Ok {
                bindings: vec![("sip:alice@127.0.0.1:5070".into(), 600)]
            }
        );
        let out = register(
            &mut r,
            req("bob", "sip:bob@127.0.0.1:5071", Some(120), 1),
            "bob-demo",
            1,
            t0(),
        );
        assert!(matches!(out, RegisterOutcome::Ok { .. }));
        assert!(r.is_reachable("alice"));
        assert!(r.is_reachable("BOB"));
        assert_eq!(r.contact_count(), 2);
        assert!(matches!(
            r.poll_event(),
            Some(RegistrationEvent::Registered { .. })
        ));
    }

    #[test]
    fn wrong_password_and_replay_fail() {
        let mut r = Registrar::new(RegistrarSettings::default(), [1; 32]);
        let out = register(&mut r, req("alice", "sip:a@h", None, 1), "wrong", 0, t0());
        assert_eq!(out, RegisterOutcome::Forbidden("wrong credentials"));
        assert_eq!(r.contact_count(), 0);
        // A captured valid request replayed later is refused.
        let mut rq = req("alice", "sip:a@h", None, 2);
        let RegisterOutcome::Challenge { www_authenticate } =
            r.handle_register(&rq, &secrets, t0())
        else {
            panic!("challenge")
        };
        rq.authorization = Some(answer(&www_authenticate[0], "alice", "alice-demo", 1));
        assert!(matches!(
            r.handle_register(&rq, &secrets, t0()),
            RegisterOutcome::Ok { .. }
        ));
        rq.cseq = 3;
        assert!(matches!(
            r.handle_register(&rq, &secrets, t0()),
            RegisterOutcome::Challenge { .. }
        ));
        // Unknown user.
        let out = register(&mut r, req("mallory", "sip:m@h", None, 1), "x", 0, t0());
        assert_eq!(out, RegisterOutcome::Forbidden("unknown user"));
        // Authenticated as bob, registering alice's AOR.
        let mut rq = req("alice", "sip:b@h", None, 1);
        let RegisterOutcome::Challenge { www_authenticate } =
            r.handle_register(&rq, &secrets, t0())
        else {
            panic!("challenge")
        };
        rq.authorization = Some(answer(&www_authenticate[0], "bob", "bob-demo", 1));
        assert!(matches!(
            r.handle_register(&rq, &secrets, t0()),
            RegisterOutcome::Forbidden(_)
        ));
    }

    #[test]
    fn guessing_is_throttled_per_source_and_the_user_still_registers_elsewhere() {
        let mut r = Registrar::new(RegistrarSettings::default(), [1; 32]);
        let from = |ip: &str, cseq| {
            let mut rq = req("alice", "sip:a@h", None, cseq);
            rq.source = format!("{ip}:5070").parse().expect("addr");
            rq
        };
        let mut outcomes = Vec::new();
        for i in 0..6 {
            outcomes.push(register(&mut r, from("192.0.2.66", i), "guess", 0, t0()));
        }
        // Three wrong answers, the fourth blocks, then refused unverified.
        assert_eq!(
            outcomes,
            vec![
                RegisterOutcome::Forbidden("wrong credentials"),
                RegisterOutcome::Forbidden("wrong credentials"),
                RegisterOutcome::Forbidden("wrong credentials"),
                RegisterOutcome::Forbidden("wrong credentials"),
                RegisterOutcome::Forbidden("throttled"),
                RegisterOutcome::Forbidden("throttled"),
            ]
        );
        let events: Vec<_> = std::iter::from_fn(|| r.poll_event()).collect();
        let blocks = events
            .iter()
            .filter(|e| matches!(e, RegistrationEvent::SourceBlocked { .. }))
            .count();
        assert_eq!(blocks, 1);
        // Even the right password is not verified from the blocked source.
        assert_eq!(
            register(&mut r, from("192.0.2.66", 10), "alice-demo", 0, t0()),
            RegisterOutcome::Forbidden("throttled")
        );
        // From elsewhere it works at once.
        assert!(matches!(
            register(&mut r, from("198.51.100.7", 11), "alice-demo", 0, t0()),
            RegisterOutcome::Ok { .. }
        ));
        // After the block (2 s), the source may try again.
        let later = t0() + Duration::from_secs(3);
        assert!(matches!(
            register(&mut r, from("192.0.2.66", 12), "alice-demo", 0, later),
            RegisterOutcome::Ok { .. }
        ));
    }

    #[test]
    fn saved_bindings_are_restored_until_they_expire() {
        let mut r = Registrar::new(RegistrarSettings::default(), [1; 32]);
        assert!(matches!(
            register(
                &mut r,
                req("alice", "sip:a@h", Some(300), 1),
                "alice-demo",
                0,
                t0()
            ),
            RegisterOutcome::Ok { .. }
        ));
        let saved: Vec<SavedBinding> = r.bindings("alice").iter().map(SavedBinding::from).collect();
        // A new process: the binding comes back, an expired one does not.
        let mut r2 = Registrar::new(RegistrarSettings::default(), [2; 32]);
        let later = t0() + Duration::from_secs(100);
        r2.restore("alice", saved[0].clone(), later);
        let mut expired = saved[0].clone();
        expired.uri = "sip:old@h".into();
        expired.expires_at = later;
        r2.restore("alice", expired, later);
        assert_eq!(r2.bindings("alice").len(), 1);
        assert!(r2.is_reachable("alice"));
        assert!(matches!(
            r2.poll_event(),
            Some(RegistrationEvent::Registered { expires: 200, .. })
        ));
        // Restoring twice does not duplicate it.
        r2.restore("alice", saved[0].clone(), later);
        assert_eq!(r2.bindings("alice").len(), 1);
    }

    #[test]
    fn stale_nonce_is_challenged_again_with_stale() {
        let mut r = Registrar::new(RegistrarSettings::default(), [1; 32]);
        let mut rq = req("alice", "sip:a@h", None, 1);
        let RegisterOutcome::Challenge { www_authenticate } =
            r.handle_register(&rq, &secrets, t0())
        else {
            panic!("challenge")
        };
        rq.authorization = Some(answer(&www_authenticate[0], "alice", "alice-demo", 1));
        let later = t0() + Duration::from_secs(301);
        match r.handle_register(&rq, &secrets, later) {
            RegisterOutcome::Challenge { www_authenticate } => {
                assert!(www_authenticate[0].contains("stale=true"))
            }
            o => panic!("unexpected {o:?}"),
        }
    }

    #[test]
    fn expires_rules() {
        let mut r = Registrar::new(RegistrarSettings::default(), [1; 32]);
        let out = register(
            &mut r,
            req("alice", "sip:a@h", Some(10), 1),
            "alice-demo",
            0,
            t0(),
        );
        assert_eq!(out, RegisterOutcome::IntervalTooBrief { min_expires: 60 });
        let out = register(
            &mut r,
            req("alice", "sip:a@h", Some(99999), 2),
            "alice-demo",
            0,
            t0(),
        );
        assert_eq!(
            out,
            RegisterOutcome::Ok {
                bindings: vec![("sip:a@h".into(), 3600)]
            }
        );
        // Second device.
        let mut rq = req("alice", "sip:a2@h", None, 3);
        rq.expires_header = Some(300);
        let out = register(&mut r, rq, "alice-demo", 0, t0());
        let RegisterOutcome::Ok { bindings } = out else {
            panic!("ok")
        };
        assert_eq!(bindings.len(), 2);
        // Expires: 0 on one contact.
        let out = register(
            &mut r,
            req("alice", "sip:a2@h", Some(0), 4),
            "alice-demo",
            0,
            t0(),
        );
        assert_eq!(
            out,
            RegisterOutcome::Ok {
                bindings: vec![("sip:a@h".into(), 3600)]
            }
        );
        // Contact: * needs Expires: 0.
        let mut rq = req("alice", "", None, 5);
        rq.contacts = ContactField::Star;
        let out = register(&mut r, rq.clone(), "alice-demo", 0, t0());
        assert!(matches!(out, RegisterOutcome::BadRequest(_)));
        rq.expires_header = Some(0);
        rq.cseq = 6;
        let out = register(&mut r, rq, "alice-demo", 0, t0());
        assert_eq!(out, RegisterOutcome::Ok { bindings: vec![] });
        assert_eq!(r.contact_count(), 0);
    }

    #[test]
    fn out_of_order_cseq_is_refused() {
        let mut r = Registrar::new(RegistrarSettings::default(), [1; 32]);
        assert!(matches!(
            register(
                &mut r,
                req("alice", "sip:a@h", None, 5),
                "alice-demo",
                0,
                t0()
            ),
            RegisterOutcome::Ok { .. }
        ));
        assert_eq!(
            register(
                &mut r,
                req("alice", "sip:a@h", None, 4),
                "alice-demo",
                0,
                t0()
            ),
            RegisterOutcome::OutOfOrder
        );
    }

    #[test]
    fn expiry_and_qualify() {
        let mut r = Registrar::new(RegistrarSettings::default(), [1; 32]);
        register(
            &mut r,
            req("alice", "sip:a@h", Some(120), 1),
            "alice-demo",
            0,
            t0(),
        );
        while r.poll_event().is_some() {}
        // First probe after the qualify interval.
        assert_eq!(r.poll_timeout(), Some(t0() + Duration::from_secs(30)));
        assert!(r.due_qualify(t0()).is_empty());
        let t1 = t0() + Duration::from_secs(30);
        let probes = r.due_qualify(t1);
        assert_eq!(probes.len(), 1);
        assert_eq!(
            probes[0].destination,
            "127.0.0.1:5070".parse().expect("addr")
        );
        // No answer within the timeout: unreachable.
        r.handle_timeout(t1 + Duration::from_secs(5));
        assert_eq!(
            r.poll_event(),
            Some(RegistrationEvent::Unreachable {
                user: "alice".into(),
                contact: "sip:a@h".into()
            })
        );
        assert!(!r.is_reachable("alice"));
        // Next probe answers: reachable again.
        let t2 = t1 + Duration::from_secs(35);
        let probes = r.due_qualify(t2);
        assert_eq!(probes.len(), 1);
        r.qualify_result(probes[0].id, true, t2);
        assert!(r.is_reachable("alice"));
        assert!(matches!(
            r.poll_event(),
            Some(RegistrationEvent::Reachable { .. })
        ));
        // Registration runs out.
        r.handle_timeout(t0() + Duration::from_secs(120));
        assert!(matches!(
            r.poll_event(),
            Some(RegistrationEvent::Unregistered {
                reason: UnregisterReason::Expired,
                ..
            })
        ));
        assert_eq!(r.contact_count(), 0);
        assert_eq!(r.poll_timeout(), None);
    }

    #[test]
    fn contact_limit_evicts_oldest() {
        let settings = RegistrarSettings {
            max_contacts: 2,
            ..RegistrarSettings::default()
        };
        let mut r = Registrar::new(settings, [1; 32]);
        for (i, c) in ["sip:1@h", "sip:2@h", "sip:3@h"].iter().enumerate() {
            let mut rq = req("alice", c, None, 1);
            rq.call_id = format!("c{i}");
            register(
                &mut r,
                rq,
                "alice-demo",
                0,
                t0() + Duration::from_secs(i as u64),
            );
        }
        let uris: Vec<_> = r.bindings("alice").iter().map(|b| b.uri.clone()).collect();
        assert_eq!(uris, vec!["sip:2@h".to_string(), "sip:3@h".to_string()]);
    }
}
