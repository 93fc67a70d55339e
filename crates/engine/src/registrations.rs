//! Driver of the registrar core: REGISTER answers, expiry timers and OPTIONS
//! qualify probes.

use crate::clock::Clock;
use crate::leg::{sip_transport, Target};
use dashmap::DashMap;
use parking_lot::Mutex;
use permanence_sip::registrar::{
    AgentSecrets, AuthResult, Binding, QualifyTarget, RegisterOutcome, RegisterRequest, Registrar,
    RegistrationEvent,
};
use rsipstack::sip::{Header, Method, SipMessage, StatusCode};
use rsipstack::transaction::endpoint::EndpointInnerRef;
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::{make_tag, Transaction};
use rsipstack::transport::SipAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// A registered contact is offered calls at the address it registered
/// from.
impl From<&Binding> for Target {
    fn from(b: &Binding) -> Self {
        Self {
            uri: b.uri.clone(),
            destination: b.source,
            transport: b.transport,
        }
    }
}

/// Called when an agent becomes reachable (has a registered contact that
/// answers) or unreachable.
pub type ReachabilityListener = Box<dyn Fn(&str, bool) + Send + Sync>;

struct Inner {
    core: Registrar,
    /// Last reachability reported per agent.
    known: std::collections::HashMap<String, bool>,
}

/// Reachability changes of a REGISTER, announced once it is answered.
#[must_use = "announce the changes once the REGISTER is answered"]
pub struct Registered<'a> {
    owner: &'a Registrations,
    changes: Vec<(String, bool)>,
}

impl Registered<'_> {
    /// Tells the dispatcher.
    pub fn announce(self) {
        for (user, reachable) in self.changes {
            self.owner.notify(&user, reachable);
        }
    }
}

/// Shared registrar with its timer task.
pub struct Registrations {
    core: Mutex<Inner>,
    /// Reachable contacts per agent (lowercase username), newest first:
    /// rebuilt for an agent whenever the core changes its bindings, so
    /// offering a call reads it without taking the registrar lock.
    reachable: DashMap<String, Arc<[Target]>>,
    wake: Notify,
    listener: std::sync::OnceLock<ReachabilityListener>,
    /// Expiry and qualify timers run on engine time.
    clock: Clock,
    /// Authentication failures and blocks are counted there.
    metrics: Arc<permanence_metrics::Metrics>,
    /// Where bindings are saved to survive a restart.
    store: std::sync::OnceLock<permanence_records::RecorderHandle>,
    /// Failed authentications and blocks are audited there.
    audit: std::sync::OnceLock<crate::audit::AuditLog>,
}

fn log_event(e: &RegistrationEvent) {
    match e {
        RegistrationEvent::Registered {
            user,
            contact,
            source,
            expires,
            user_agent,
        } => info!(
            event = "agent.registered",
            agent = %user,
            contact = %contact,
            %source,
            expires,
            user_agent = user_agent.as_deref().unwrap_or(""),
            "agent registered"
        ),
        RegistrationEvent::Unregistered {
            user,
            contact,
            reason,
        } => info!(
            event = "agent.unregistered",
            agent = %user,
            contact = %contact,
            reason = ?reason,
            "agent contact removed"
        ),
        RegistrationEvent::Unreachable { user, contact } => warn!(
            event = "agent.unreachable",
            agent = %user,
            contact = %contact,
            "agent contact stopped answering OPTIONS"
        ),
        RegistrationEvent::Reachable { user, contact } => info!(
            event = "agent.reachable",
            agent = %user,
            contact = %contact,
            "agent contact reachable again"
        ),
        RegistrationEvent::AuthFailed {
            user,
            source,
            reason,
        } => warn!(
            event = "auth.failed",
            user = %user,
            %source,
            reason,
            "authentication failed"
        ),
        RegistrationEvent::SourceBlocked {
            source,
            user,
            failures,
            duration,
        } => warn!(
            event = "auth.blocked",
            user = %user,
            %source,
            failures,
            seconds = duration.as_secs(),
            "source blocked after wrong passwords"
        ),
        RegistrationEvent::Throttled { user, source } => debug!(
            event = "auth.throttled",
            user = %user,
            %source,
            "answer from a blocked source refused"
        ),
    }
}

impl Registrations {
    /// Wraps a registrar core.
    pub fn new(
        core: Registrar,
        clock: Clock,
        metrics: Arc<permanence_metrics::Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            core: Mutex::new(Inner {
                core,
                known: std::collections::HashMap::new(),
            }),
            reachable: DashMap::new(),
            wake: Notify::new(),
            listener: std::sync::OnceLock::new(),
            clock,
            metrics,
            store: std::sync::OnceLock::new(),
            audit: std::sync::OnceLock::new(),
        })
    }

    /// Sets the reachability listener (once).
    pub fn set_listener(&self, l: ReachabilityListener) {
        let _ = self.listener.set(l);
    }

    /// Logs the core's events, then refreshes the contact index and the
    /// reachability of every agent they concern.
    fn drain_events(&self, inner: &mut Inner) {
        for (user, reachable) in self.take_events(inner) {
            self.notify(&user, reachable);
        }
    }

    /// Tells the listener (the dispatcher) that `user` became reachable or
    /// not.
    fn notify(&self, user: &str, reachable: bool) {
        if let Some(l) = self.listener.get() {
            l(user, reachable);
        }
    }

    /// Logs, counts, audits and saves the core's events, refreshes the
    /// contact index; returns the reachability changes to announce.
    fn take_events(&self, inner: &mut Inner) -> Vec<(String, bool)> {
        let mut touched: Vec<String> = Vec::new();
        while let Some(e) = inner.core.poll_event() {
            log_event(&e);
            self.count(&e);
            self.audit_failure(&e);
            match &e {
                RegistrationEvent::Registered { user, .. }
                | RegistrationEvent::Unregistered { user, .. }
                | RegistrationEvent::Unreachable { user, .. }
                | RegistrationEvent::Reachable { user, .. } => touched.push(user.clone()),
                RegistrationEvent::AuthFailed { .. }
                | RegistrationEvent::SourceBlocked { .. }
                | RegistrationEvent::Throttled { .. } => {}
            }
        }
        let mut changes = Vec::new();
        for user in touched {
            self.save(inner, &user);
            let now = self.refresh_index(inner, &user);
            if inner.known.get(&user) != Some(&now) {
                inner.known.insert(user.clone(), now);
                changes.push((user, now));
            }
        }
        changes
    }

    /// Saves bindings in `store` from now on (and restores nothing: see
    /// [`Registrations::restore`]).
    pub fn save_to(&self, store: permanence_records::RecorderHandle) {
        let _ = self.store.set(store);
    }

    /// Writes the current bindings of `user` to the store (expiry times on
    /// the wall clock).
    fn save(&self, inner: &Inner, user: &str) {
        let Some(store) = self.store.get() else {
            return;
        };
        let key = user.to_ascii_lowercase();
        let offset = self.clock.wall_offset();
        let rows = inner
            .core
            .bindings(&key)
            .iter()
            .map(|b| permanence_records::RegistrationRow {
                agent: key.clone(),
                uri: b.uri.clone(),
                instance: b.instance.clone(),
                source: b.source.to_string(),
                transport: b.transport.as_str().to_string(),
                expires_at: b.expires_at + offset,
                call_id: b.call_id.clone(),
                cseq: b.cseq,
                user_agent: b.user_agent.clone(),
            })
            .collect();
        store.record_registrations(&key, rows);
    }

    /// Restores registrations saved before a restart (unexpired ones), as
    /// if the softphones had registered: the contact index and the agents'
    /// reachability follow. Returns how many contacts came back.
    pub fn restore(&self, rows: Vec<permanence_records::RegistrationRow>) -> usize {
        let mut inner = self.core.lock();
        let now = self.clock.now();
        let offset = self.clock.wall_offset();
        let before = inner.core.contact_count();
        for r in rows {
            let (Ok(source), Some(transport)) = (
                r.source.parse::<std::net::SocketAddr>(),
                permanence_types::Transport::parse(&r.transport),
            ) else {
                warn!(agent = %r.agent, "saved registration unreadable: skipped");
                continue;
            };
            let saved = permanence_sip::registrar::SavedBinding {
                uri: r.uri,
                instance: r.instance,
                source,
                transport,
                expires_at: r.expires_at - offset,
                call_id: r.call_id,
                cseq: r.cseq,
                user_agent: r.user_agent,
            };
            inner.core.restore(&r.agent, saved, now);
        }
        self.drain_events(&mut inner);
        let restored = inner.core.contact_count().saturating_sub(before);
        drop(inner);
        self.wake.notify_one();
        restored
    }

    /// Audits failed authentications and blocks in `audit` from now on.
    pub fn audit_to(&self, audit: crate::audit::AuditLog) {
        let _ = self.audit.set(audit);
    }

    /// Writes an audit entry for a failed authentication or a block.
    fn audit_failure(&self, e: &RegistrationEvent) {
        let Some(audit) = self.audit.get() else {
            return;
        };
        let (user, source, action, detail) = match e {
            RegistrationEvent::AuthFailed {
                user,
                source,
                reason,
            } => (user, source, "sip.auth_failed", reason.to_string()),
            RegistrationEvent::SourceBlocked {
                user,
                source,
                failures,
                duration,
            } => (
                user,
                source,
                "sip.source_blocked",
                format!("{failures} wrong answers, blocked {} s", duration.as_secs()),
            ),
            _ => return,
        };
        let actor = format!("agent:{user}");
        audit.write(crate::audit::Action {
            actor: &actor,
            role: None,
            action,
            target: Some(user),
            source: Some(format!("sip:{}", source.ip())),
            outcome: crate::audit::Outcome::Refused,
            detail: Some(detail),
        });
    }

    /// Counts authentication failures and blocks.
    fn count(&self, e: &RegistrationEvent) {
        use permanence_metrics::AuthFailure;
        let m = self.metrics.security();
        match e {
            RegistrationEvent::AuthFailed { reason, .. } => {
                m.auth_failed(if *reason == "unknown user" {
                    AuthFailure::UnknownUser
                } else {
                    AuthFailure::WrongCredentials
                })
            }
            RegistrationEvent::Throttled { .. } => m.auth_failed(AuthFailure::Throttled),
            RegistrationEvent::SourceBlocked { .. } => m.auth_blocked(),
            _ => {}
        }
    }

    /// Rebuilds the index entry of `user` from the core; returns whether
    /// the agent has a reachable contact.
    fn refresh_index(&self, inner: &Inner, user: &str) -> bool {
        let key = user.to_ascii_lowercase();
        let contacts: Arc<[Target]> = inner
            .core
            .reachable_contacts(&key)
            .into_iter()
            .map(Target::from)
            .collect();
        if contacts.is_empty() {
            self.reachable.remove(&key);
            false
        } else {
            self.reachable.insert(key, contacts);
            true
        }
    }

    /// A connection closed: a browser's contacts registered over it go at
    /// once (the dispatcher hears that the agent is unreachable), instead
    /// of being offered calls until their registration expires.
    pub fn connection_closed(
        &self,
        source: std::net::SocketAddr,
        transport: permanence_types::Transport,
    ) {
        let mut inner = self.core.lock();
        if inner.core.connection_closed(source, transport) == 0 {
            return;
        }
        let changes = self.take_events(&mut inner);
        drop(inner);
        for (user, reachable) in changes {
            self.notify(&user, reachable);
        }
        self.wake.notify_one();
    }

    /// Answers a REGISTER. The reachability changes it causes are returned,
    /// to announce (with [`Registered::announce`]) once the 200 OK is sent:
    /// an agent who becomes reachable may be offered a call at once, and
    /// the softphone must see its 200 before that INVITE.
    pub fn register(
        &self,
        req: &RegisterRequest,
        lookup: &dyn Fn(&str) -> Option<AgentSecrets>,
    ) -> (RegisterOutcome, Registered<'_>) {
        let mut inner = self.core.lock();
        let out = inner.core.handle_register(req, lookup, self.clock.now());
        let changes = self.take_events(&mut inner);
        // A refresh may change a binding (its transport, its expiry)
        // without an event.
        self.refresh_index(&inner, &req.to_user);
        if matches!(out, RegisterOutcome::Ok { .. }) {
            self.save(&inner, &req.to_user);
        }
        drop(inner);
        self.wake.notify_one();
        (
            out,
            Registered {
                owner: self,
                changes,
            },
        )
    }

    /// Authenticates a request (an INVITE from an agent) from `source`.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        method: &str,
        lookup: &dyn Fn(&str) -> Option<AgentSecrets>,
        source: std::net::SocketAddr,
    ) -> AuthResult {
        let mut inner = self.core.lock();
        let now = self.clock.now();
        let out = inner
            .core
            .authenticate(authorization, method, lookup, source, now);
        self.drain_events(&mut inner);
        out
    }

    /// A fresh challenge for a request without credentials (the gate's
    /// stateless 401/407).
    pub fn challenge(&self) -> Vec<String> {
        let now = self.clock.now();
        self.core.lock().core.challenge_anyone(now)
    }

    /// Reachable contacts of an agent, newest first. Takes no registrar
    /// lock (called for every offer).
    pub fn contacts(&self, user: &str) -> Arc<[Target]> {
        let found = if user.bytes().any(|b| b.is_ascii_uppercase()) {
            self.reachable.get(&user.to_ascii_lowercase())
        } else {
            self.reachable.get(user)
        };
        found
            .map(|c| c.value().clone())
            .unwrap_or_else(|| Arc::from([]))
    }

    /// Number of registered contacts.
    pub fn contact_count(&self) -> usize {
        self.core.lock().core.contact_count()
    }

    /// Applies new registrar settings (config reload).
    pub fn set_settings(&self, s: permanence_sip::registrar::RegistrarSettings) {
        self.core.lock().core.set_settings(s);
        self.wake.notify_one();
    }

    /// Runs expiry timers and qualify probes until `cancel`.
    pub async fn run(
        self: Arc<Self>,
        endpoint: EndpointInnerRef,
        contact_host: String,
        cancel: CancellationToken,
    ) {
        loop {
            let (next, probes) = {
                let mut inner = self.core.lock();
                let now = self.clock.now();
                inner.core.handle_timeout(now);
                let probes = inner.core.due_qualify(now);
                self.drain_events(&mut inner);
                (inner.core.poll_timeout(), probes)
            };
            for p in probes {
                let me = self.clone();
                let endpoint = endpoint.clone();
                let host = contact_host.clone();
                tokio::spawn(async move {
                    let ok = send_options(&endpoint, &p, &host).await;
                    let mut inner = me.core.lock();
                    let now = me.clock.now();
                    inner.core.qualify_result(p.id, ok, now);
                    me.drain_events(&mut inner);
                    drop(inner);
                    me.wake.notify_one();
                });
            }
            let earliest = tokio::time::Instant::now() + Duration::from_millis(5);
            let deadline = self.clock.instant_or_idle(next).max(earliest);
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}

/// Sends one OPTIONS probe; true if the softphone answered (any final
/// response but 408/503 from our own stack).
async fn send_options(endpoint: &EndpointInnerRef, p: &QualifyTarget, host: &str) -> bool {
    let Ok(uri) = rsipstack::sip::Uri::try_from(p.contact.as_str()) else {
        debug!(contact = %p.contact, "cannot parse contact URI for OPTIONS");
        return false;
    };
    let dest = SipAddr {
        r#type: Some(sip_transport(p.transport)),
        addr: p.destination.into(),
    };
    // The Via names the transport the probe goes over (RFC 3261 §18.1.1).
    let via_addr = endpoint
        .transport_layer
        .get_listen_addrs()
        .into_iter()
        .find(|a| a.r#type == dest.r#type);
    let Ok(via) = endpoint.get_via(via_addr, None) else {
        return false;
    };
    let Ok(from_uri) = rsipstack::sip::Uri::try_from(format!("sip:permanence@{host}").as_str())
    else {
        return false;
    };
    let from = rsipstack::sip::typed::From {
        display_name: None,
        uri: from_uri,
        params: vec![],
    }
    .with_tag(make_tag());
    let to = rsipstack::sip::typed::To {
        display_name: None,
        uri: uri.clone(),
        params: vec![],
    };
    let mut req = endpoint.make_request(Method::Options, uri, via, from, to, 1, None);
    req.headers
        .unique_push(Header::Other("Accept".into(), "application/sdp".into()));
    let Ok(key) = TransactionKey::from_request(&req, TransactionRole::Client) else {
        return false;
    };
    let mut tx = Transaction::new_client(key, req, endpoint.clone(), None);
    tx.destination = Some(dest);
    if tx.send().await.is_err() {
        return false;
    }
    let wait = async {
        while let Some(msg) = tx.receive().await {
            if let SipMessage::Response(resp) = msg {
                if resp.status_code.kind() != rsipstack::sip::StatusCodeKind::Provisional {
                    return !matches!(
                        resp.status_code,
                        StatusCode::RequestTimeout | StatusCode::ServiceUnavailable
                    );
                }
            }
        }
        false
    };
    tokio::time::timeout(Duration::from_secs(32), wait)
        .await
        .unwrap_or(false)
}
