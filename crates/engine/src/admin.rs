//! What the HTTP side sees of the engine: metrics scrapes, the admin API
//! views (queues, agents, calls in progress, callback requests, a
//! practice's figures), agent and callback controls, reload and drain.

pub(crate) mod callbacks;
mod figures;
mod report;

use crate::audit::{Action, Outcome};
use crate::live::LiveCall;
use crate::switch::Switch;
use chrono::{DateTime, Utc};
use permanence_acd::{AgentId, AgentState, Input};
use permanence_http::{
    AgentAction, AgentView, AuditView, Backend, CallView, CallbackAction, CallbackRefused,
    CallbacksView, Degraded, Denied, FiguresQuery, FiguresRefused, FiguresView, Health, Principal,
    QueueView,
};
use permanence_metrics::AcdGauges;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Counters mirrored into metrics at scrape time.
#[derive(Debug, Default)]
pub struct SipCounts {
    /// Requests seen by the transport (retransmissions included, ACK
    /// excluded).
    pub raw_requests: AtomicU64,
    /// Requests that reached the transaction layer (ACK excluded).
    pub new_requests: AtomicU64,
    /// Retransmissions already reported to metrics.
    reported_retrans: AtomicU64,
    /// Records lost (dropped or refused) already reported.
    reported_records_dropped: AtomicU64,
}

/// The engine as the HTTP side sees it.
pub struct EngineBackend {
    switch: Arc<Switch>,
    /// Wrong tokens, per source address.
    guesses: parking_lot::Mutex<permanence_sip::throttle::AuthThrottle>,
}

impl EngineBackend {
    /// Wraps the engine.
    pub fn new(switch: Arc<Switch>) -> Self {
        Self {
            switch,
            guesses: parking_lot::Mutex::new(permanence_sip::throttle::AuthThrottle::new(
                permanence_sip::throttle::ThrottleSettings::default(),
            )),
        }
    }
}

fn state_name(s: AgentState) -> &'static str {
    match s {
        AgentState::LoggedOut => "logged-out",
        AgentState::Available => "available",
        AgentState::Offered => "offered",
        AgentState::OnCall => "on-call",
        AgentState::WrapUp => "wrap-up",
        AgentState::Paused => "paused",
    }
}

/// Why the call records store is not writing, `None` when it is.
fn records_problem(records: Option<&permanence_records::RecorderHandle>) -> Option<Degraded> {
    let rfc3339 = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let Some(r) = records else {
        return Some(Degraded {
            cause: "records store not running (see the records.unavailable log line)".into(),
            since: None,
            last_failure_at: None,
            backlog: 0,
        });
    };
    let h = r.health();
    let cause = h.problem()?.to_string();
    Some(Degraded {
        cause,
        since: Some(rfc3339(h.since)),
        last_failure_at: h.last_failure.as_ref().map(|f| rfc3339(f.at)),
        backlog: h.backlog,
    })
}

fn secs(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds().max(0) as f64 / 1000.0
}

/// Refreshes gauges and synced counters, then renders the exposition.
pub async fn scrape(switch: &Switch) -> String {
    let m = &switch.metrics;
    if let Some(g) = switch.dispatch.query(AcdGauges::from_dispatcher).await {
        m.set_gauges_from(&g);
    }
    m.set_active_calls(switch.live.len() as u64);
    m.set_registered_contacts(switch.registrations.contact_count() as u64);
    m.set_memory(
        permanence_memory::heap_bytes(),
        permanence_memory::resident_bytes(),
    );
    m.sync_sip_parse_errors(
        switch.guard_stats.answered.load(Ordering::Relaxed),
        switch.guard_stats.dropped.load(Ordering::Relaxed),
    );
    let mut gate = gate_totals(&switch.door.stats);
    gate.banned_now = switch.door.banned() as u64;
    m.security().sync_gate(&gate);
    m.security().sync_streams(&switch.streams.totals());
    // Retransmissions: requests the transport saw that the transaction
    // layer absorbed.
    let c = &switch.sip_counts;
    let retrans = c
        .raw_requests
        .load(Ordering::Relaxed)
        .saturating_sub(c.new_requests.load(Ordering::Relaxed));
    let before = c.reported_retrans.swap(retrans, Ordering::Relaxed);
    for _ in before..retrans {
        m.sip_retransmission();
    }
    match &switch.records {
        Some(r) => {
            let s = r.stats();
            let lost = s.dropped.saturating_add(s.write_errors);
            let before = c.reported_records_dropped.swap(lost, Ordering::Relaxed);
            if lost > before {
                m.records_dropped(lost - before);
            }
            m.sync_records(r.health().is_ok(), s.backlog, s.write_failures);
        }
        None => m.sync_records(false, 0, 0),
    }
    m.render()
}

/// The gate's counters as the metrics take them.
fn gate_totals(s: &permanence_sip::guard::GateStats) -> permanence_metrics::GateTotals {
    use permanence_sip::gate::DropReason;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let mut dropped = [0u64; 4];
    for (slot, label) in dropped.iter_mut().zip(permanence_metrics::FLOOD_REASONS) {
        if let Some(r) = DropReason::ALL.iter().find(|r| r.as_str() == label) {
            *slot = s.dropped(*r);
        }
    }
    permanence_metrics::GateTotals {
        dropped,
        challenged_401: load(&s.challenged_401),
        challenged_407: load(&s.challenged_407),
        options_200: load(&s.options_200),
        overloaded_503: load(&s.overloaded_503),
        bans: load(&s.bans),
        banned_now: 0,
    }
}

#[async_trait::async_trait]
impl Backend for EngineBackend {
    async fn metrics(&self) -> String {
        scrape(&self.switch).await
    }

    fn health(&self) -> Health {
        Health {
            ok: true,
            draining: self.switch.is_draining(),
            records: records_problem(self.switch.records.as_ref()),
        }
    }

    async fn queues(&self) -> Vec<QueueView> {
        let cfg = self.switch.config();
        let names: std::collections::HashMap<String, String> = cfg
            .practices()
            .iter()
            .map(|p| (p.id.clone(), p.name.clone()))
            .collect();
        self.switch
            .dispatch
            .query(move |d, now| {
                d.queue_snapshots(now)
                    .into_iter()
                    .map(|q| {
                        let e = d.eligible_agents(q.practice.as_str()).unwrap_or_default();
                        QueueView {
                            name: names.get(q.practice.as_str()).cloned().unwrap_or_default(),
                            practice: q.practice.to_string(),
                            open: q.open,
                            waiting: q.waiting,
                            ringing: q.ringing,
                            oldest_wait_s: q.oldest_wait.map(|w| w.as_secs_f64()),
                            estimated_wait_s: q.estimated_wait.map(|w| w.as_secs_f64()),
                            agents_dispatchable: e.dispatchable,
                            agents_staffed: e.staffed,
                        }
                    })
                    .collect()
            })
            .await
            .unwrap_or_default()
    }

    async fn agents(&self) -> Vec<AgentView> {
        let cfg = self.switch.config();
        let snaps = self
            .switch
            .dispatch
            .query(|d, _| d.agents())
            .await
            .unwrap_or_default();
        snaps
            .into_iter()
            .map(|a| {
                let id = a.agent.to_string();
                let presence = a.presence().as_str().to_string();
                AgentView {
                    display_name: cfg
                        .agent(&id)
                        .map(|x| x.display_name.clone())
                        .unwrap_or_default(),
                    contacts: self.switch.registrations.contacts(&id).len() as u32,
                    agent: id,
                    state: state_name(a.state).to_string(),
                    pause_reason: a.pause_reason,
                    in_shift: a.in_shift,
                    reachable: a.reachable,
                    presence,
                    strikes: a.strikes,
                }
            })
            .collect()
    }

    async fn calls(&self) -> Vec<CallView> {
        let now = Utc::now();
        let live: Vec<LiveCall> = self.switch.live.snapshot();
        let positions: std::collections::HashMap<u64, u32> = self
            .switch
            .dispatch
            .query(|d, now| {
                d.queue_snapshots(now)
                    .into_iter()
                    .flat_map(|q| q.calls.into_iter().map(|c| (c.call.0, c.position)))
                    .collect()
            })
            .await
            .unwrap_or_default();
        let mut out: Vec<CallView> = live
            .into_iter()
            .map(|c| CallView {
                position: positions.get(&c.call).copied().filter(|p| *p > 0),
                call_id: c.call_id,
                practice: c.practice,
                caller: c.caller,
                phase: c.phase.to_string(),
                agent: c.agent.map(|a| a.to_string()),
                age_s: secs(c.started, now),
                wait_s: c.queued_at.map(|q| secs(q, c.answered_at.unwrap_or(now))),
            })
            .collect();
        out.sort_by(|a, b| b.age_s.total_cmp(&a.age_s));
        out
    }

    async fn authenticate(&self, token: Option<&str>, source: IpAddr) -> Result<Principal, Denied> {
        let cfg = self.switch.config();
        if cfg.http.admin_token.is_none() && cfg.http.users.is_empty() {
            return Err(Denied::Disabled);
        }
        let now = self.switch.clock.now();
        if let Some(wait) = self.guesses.lock().blocked(source, now) {
            return Err(Denied::Throttled {
                retry_after_s: wait.as_secs().max(1),
            });
        }
        match token.and_then(|t| principal(&cfg.http, t)) {
            Some(p) => {
                self.guesses.lock().succeeded(source);
                Ok(p)
            }
            None => {
                let blocked = self.guesses.lock().failed(source, "http", now);
                self.switch.audit.write(Action {
                    actor: "unknown",
                    role: None,
                    action: "auth.failed",
                    target: None,
                    source: Some(source.to_string()),
                    outcome: Outcome::Refused,
                    detail: blocked.map(|b| format!("source blocked {} s", b.duration.as_secs())),
                });
                Err(Denied::Unauthorized)
            }
        }
    }

    async fn forbidden(&self, who: &Principal, source: IpAddr, action: &str) {
        self.switch.audit.write(Action {
            actor: &who.name,
            role: Some(who.role.as_str()),
            action,
            target: None,
            source: Some(source.to_string()),
            outcome: Outcome::Refused,
            detail: Some("role too low".into()),
        });
    }

    async fn agent_action(
        &self,
        who: &Principal,
        source: IpAddr,
        agent: &str,
        action: AgentAction,
    ) -> Result<(), String> {
        let (name, result) = apply_agent_action(&self.switch, agent, action).await;
        self.audit(who, source, name, Some(agent), &result);
        result
    }

    async fn reload(&self, who: &Principal, source: IpAddr) -> Result<String, String> {
        let result = crate::reload(&self.switch).await;
        self.audit(who, source, "config.reload", None, &result);
        result
    }

    async fn drain(&self, who: &Principal, source: IpAddr) -> Result<(), String> {
        self.switch.start_drain();
        self.audit(who, source, "engine.drain", None, &Ok::<(), String>(()));
        Ok(())
    }

    async fn audit(&self, limit: usize) -> Vec<AuditView> {
        let Some(handle) = self.switch.records.clone() else {
            return Vec::new();
        };
        let path = self.switch.config().records.path.clone();
        tokio::task::spawn_blocking(move || {
            // What was just audited is on disk before it is read.
            let _ = handle.flush();
            permanence_records::RecordReader::open(&path)
                .and_then(|r| r.audit(None, limit))
                .unwrap_or_default()
        })
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|e| AuditView {
            at: e.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            actor: e.actor,
            role: e.role,
            action: e.action,
            target: e.target,
            source: e.source,
            outcome: e.outcome,
            detail: e.detail,
        })
        .collect()
    }

    async fn callbacks(&self, practice: Option<&str>, reveal_numbers: bool) -> CallbacksView {
        callbacks::list(&self.switch, practice, reveal_numbers).await
    }

    async fn figures(&self, query: &FiguresQuery) -> Result<FiguresView, FiguresRefused> {
        figures::figures(&self.switch, query).await
    }

    async fn report(
        &self,
        query: &permanence_http::ReportQuery,
    ) -> Result<permanence_http::ReportDocument, FiguresRefused> {
        report::report(&self.switch, query).await
    }

    async fn callback_action(
        &self,
        who: &Principal,
        source: IpAddr,
        key: &str,
        action: CallbackAction,
    ) -> Result<(), CallbackRefused> {
        let result = callbacks::close(&self.switch, &who.name, key, action).await;
        let audited = result.as_ref().map_err(|e| e.to_string());
        self.audit(who, source, action.audit_name(), Some(key), &audited);
        result
    }
}

impl EngineBackend {
    /// Audits what `who` did and how it ended.
    fn audit<T>(
        &self,
        who: &Principal,
        source: IpAddr,
        action: &str,
        target: Option<&str>,
        result: &Result<T, String>,
    ) {
        self.switch.audit.write(Action {
            actor: &who.name,
            role: Some(who.role.as_str()),
            action,
            target,
            source: Some(source.to_string()),
            outcome: if result.is_ok() {
                Outcome::Ok
            } else {
                Outcome::Failed
            },
            detail: result
                .as_ref()
                .err()
                .map(|e| e.lines().next().unwrap_or("").to_string()),
        });
    }
}

/// Applies an agent control (admin API, web console): the dispatcher input
/// of `*21`/`*22`/`*31`/`*32`, refused for an agent not configured.
/// Returns the action's audit name and the outcome (not audited here).
pub(crate) async fn apply_agent_action(
    switch: &Switch,
    agent: &str,
    action: AgentAction,
) -> (&'static str, Result<(), String>) {
    let (name, input) = agent_input(agent, action);
    let result = if switch.config().agent(agent).is_none() {
        Err(format!("unknown agent {agent:?}"))
    } else {
        switch.dispatch.input_checked(input).await
    };
    (name, result)
}

/// The audit name and the dispatcher input of an agent control.
fn agent_input(agent: &str, action: AgentAction) -> (&'static str, Input) {
    let id = AgentId::from(agent);
    match action {
        AgentAction::Pause(reason) => ("agent.pause", Input::AgentPause { agent: id, reason }),
        AgentAction::Unpause => ("agent.unpause", Input::AgentUnpause { agent: id }),
        AgentAction::Login => ("agent.login", Input::AgentLogin { agent: id }),
        AgentAction::Logout => ("agent.logout", Input::AgentLogout { agent: id }),
    }
}

/// The user a bearer token belongs to: the shared `http.admin_token`
/// (admin), or a `[[http.users]]` entry whose token hashes to its
/// `token_sha256` and is not revoked. Compared in constant time.
pub fn principal(http: &permanence_config::HttpConfig, token: &str) -> Option<Principal> {
    if let Some(shared) = &http.admin_token {
        if ct_eq(token.as_bytes(), shared.as_bytes()) {
            return Some(Principal {
                name: "admin-token".into(),
                role: permanence_config::Role::Admin,
            });
        }
    }
    let hash = token_sha256(token);
    http.users
        .iter()
        .find(|u| !u.revoked && ct_eq(hash.as_bytes(), u.token_sha256.as_bytes()))
        .map(|u| Principal {
            name: u.name.clone(),
            role: u.role,
        })
}

/// The lowercase hex SHA-256 of a token (what `[[http.users]]` stores).
pub fn token_sha256(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// Equality in time independent of where the inputs differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
