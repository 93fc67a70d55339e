//! What the HTTP side sees of the engine: metrics scrapes, the admin API
//! views (queues, agents, calls in progress), agent controls, reload and
//! drain.

use crate::live::LiveCall;
use crate::switch::Switch;
use chrono::{DateTime, Utc};
use permanence_acd::{AgentId, AgentState, Input};
use permanence_http::{AgentAction, AgentView, Backend, CallView, Health, QueueView};
use permanence_metrics::AcdGauges;
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
    /// Records dropped already reported.
    reported_records_dropped: AtomicU64,
}

/// The engine as the HTTP side sees it.
pub struct EngineBackend {
    switch: Arc<Switch>,
}

impl EngineBackend {
    /// Wraps the engine.
    pub fn new(switch: Arc<Switch>) -> Self {
        Self { switch }
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
    if let Some(r) = &switch.records {
        let dropped = r.stats().dropped;
        let before = c.reported_records_dropped.swap(dropped, Ordering::Relaxed);
        if dropped > before {
            m.records_dropped(dropped - before);
        }
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

    async fn agent_action(&self, agent: &str, action: AgentAction) -> Result<(), String> {
        if self.switch.config().agent(agent).is_none() {
            return Err(format!("unknown agent {agent:?}"));
        }
        let id = AgentId::from(agent);
        let input = match action {
            AgentAction::Pause(reason) => Input::AgentPause { agent: id, reason },
            AgentAction::Unpause => Input::AgentUnpause { agent: id },
            AgentAction::Login => Input::AgentLogin { agent: id },
            AgentAction::Logout => Input::AgentLogout { agent: id },
        };
        self.switch.dispatch.input_checked(input).await
    }

    async fn reload(&self) -> Result<String, String> {
        crate::reload(&self.switch).await
    }

    async fn drain(&self) -> Result<(), String> {
        self.switch.start_drain();
        Ok(())
    }
}
