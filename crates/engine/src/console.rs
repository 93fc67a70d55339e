//! The telesecretaries' web console, engine side: [`EngineConsole`]
//! implements [`ConsoleBackend`] over the running engine, and
//! [`ConsoleEvents`] publishes the dispatcher's agent-related events (the
//! same events the metrics and the queue log observe) to the consoles'
//! event streams.
//!
//! - Credentials: the agents' HA1 of the configuration (the registrar's).
//! - Practices an agent sees: those whose routing steps admit them
//!   ([`permanence_config::Config::serves`], the rule of outbound calls).
//! - State and actions: the dispatcher's agent snapshot, and the admin
//!   API's [`admin::apply_agent_action`] (audited as `agent:<name>`).
//! - Callbacks: the callbacks task's open requests (as `/api/callbacks`);
//!   closing one is the admin API's [`admin::callbacks::close`].
//! - Today: the call records store ([`permanence_records::AgentFigures`]):
//!   exact across restarts, one indexed query over the day's rows.

use crate::admin;
use crate::audit::{Action, Outcome};
use crate::dispatch::EventObserver;
use crate::switch::Switch;
use chrono::{DateTime, Utc};
use permanence_acd::{AgentSnapshot, Event, Presence};
use permanence_config::{Config, Practice};
use permanence_console::{
    AgentAction, AgentInfo, AuditOutcome, CallbackItem, CallbackRefused, Card, CardEntry,
    Colleague, ConsoleAudit, ConsoleBackend, ConsoleEvent, ConsoleSettings, Credentials, PoolInfo,
    PracticeInfo, Profile, SipInfo, StateView, Today, Transfer,
};
use permanence_http::CallbackAction;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// Events waiting for a slow console before it is told it lagged.
const EVENT_BACKLOG: usize = 256;

/// How long after a call ends its record is looked for (the call task
/// writes it once its legs are released).
const RECORD_DELAY: Duration = Duration::from_secs(2);

/// Publishes console events from the dispatcher's events.
#[derive(Clone)]
pub struct ConsoleEvents {
    tx: broadcast::Sender<ConsoleEvent>,
}

impl Default for ConsoleEvents {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(EVENT_BACKLOG).0,
        }
    }
}

impl ConsoleEvents {
    /// Sends `e` to every open event stream (none: dropped).
    pub fn publish(&self, e: ConsoleEvent) {
        let _ = self.tx.send(e);
    }

    /// Sends the agent's figures again once the record of the call that
    /// just ended is written.
    fn today_later(&self, agent: String) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let tx = self.tx.clone();
        rt.spawn(async move {
            tokio::time::sleep(RECORD_DELAY).await;
            let _ = tx.send(ConsoleEvent::Today { agent });
        });
    }
}

/// The agent an event concerns, if any.
fn event_agent(e: &Event) -> Option<&permanence_acd::AgentId> {
    match e {
        Event::Offered { agent, .. }
        | Event::Answered { agent, .. }
        | Event::CallCompleted { agent, .. }
        | Event::Rona { agent, .. }
        | Event::OfferFailed { agent, .. }
        | Event::OfferWithdrawn { agent, .. }
        | Event::AgentStateChanged { agent, .. }
        | Event::AgentRemoved { agent }
        | Event::ShiftChanged { agent, .. }
        | Event::ReachabilityChanged { agent, .. } => Some(agent),
        _ => None,
    }
}

impl EventObserver for ConsoleEvents {
    fn on_event(&self, event: &Event, practice: Option<&str>) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        if let Some(agent) = event_agent(event) {
            self.publish(ConsoleEvent::State {
                agent: agent.to_string(),
            });
        }
        if let Event::CallCompleted { agent, .. } = event {
            self.today_later(agent.to_string());
        }
        // A callback request kept, queued again (a new try) or answered.
        let callbacks = matches!(
            event,
            Event::CallbackKept { .. }
                | Event::CallQueued { rejoined: true, .. }
                | Event::Answered { .. }
        );
        if let (true, Some(p)) = (callbacks, practice) {
            self.publish(ConsoleEvent::Callbacks {
                practice: p.to_string(),
            });
        }
    }
}

/// The engine as the console sees it.
pub struct EngineConsole {
    switch: Arc<Switch>,
    events: ConsoleEvents,
}

impl EngineConsole {
    /// Wraps the engine; `events` is the observer given to the dispatcher.
    pub fn new(switch: Arc<Switch>, events: ConsoleEvents) -> Self {
        Self { switch, events }
    }

    fn audit_agent<T>(
        &self,
        agent: &str,
        source: IpAddr,
        action: &str,
        target: &str,
        r: &Result<T, String>,
    ) {
        let actor = format!("agent:{agent}");
        self.switch.audit.write(Action {
            actor: &actor,
            role: Some("agent"),
            action,
            target: Some(target),
            source: Some(format!("console:{source}")),
            outcome: if r.is_ok() {
                Outcome::Ok
            } else {
                Outcome::Failed
            },
            detail: r.as_ref().err().cloned(),
        });
    }
}

/// The `/console` router of the running engine.
pub fn router(switch: &Arc<Switch>, events: ConsoleEvents) -> axum::Router {
    let cfg = switch.config();
    let settings = ConsoleSettings {
        secure_cookie: cfg.http.tls,
        ws_urls: ws_urls(switch, &cfg),
        sessions: permanence_console::SessionSettings {
            lifetime: cfg.http.console_session,
            ..Default::default()
        },
    };
    let backend = Arc::new(EngineConsole::new(switch.clone(), events));
    permanence_console::router(backend, settings)
}

/// `ws://host:port` and `wss://host:port` of the bound SIP over
/// WebSocket listeners (the secure one first under HTTPS).
fn ws_urls(switch: &Switch, cfg: &Config) -> Vec<String> {
    let url = |scheme: &str, listen: &[SocketAddr], port: Option<u16>| {
        let first = listen.first()?;
        let host = if first.ip().is_unspecified() {
            cfg.sip.public_host.clone()
        } else {
            first.ip().to_string()
        };
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        Some(format!(
            "{scheme}://{host}:{}",
            port.unwrap_or(first.port())
        ))
    };
    let ws = url("ws", &cfg.sip.listen_ws, switch.sip.ws_port);
    let wss = url("wss", &cfg.sip.listen_wss, switch.sip.wss_port);
    let ordered = if cfg.http.tls { [wss, ws] } else { [ws, wss] };
    ordered.into_iter().flatten().collect()
}

/// The console's name of a dispatcher state.
fn state_view(snap: Option<AgentSnapshot>, registered: bool, now: DateTime<Utc>) -> StateView {
    let Some(a) = snap else {
        return StateView {
            state: "logged_out".into(),
            reason: None,
            wrap_up_remaining_s: None,
            registered,
        };
    };
    // One definition of what an agent is doing (the metrics' too); the
    // console calls an offered call ringing.
    let state = match a.presence() {
        Presence::Offered => "ringing",
        p => p.as_str(),
    };
    let remaining = a.wrap_up_until.map(|until| {
        u64::try_from((until - now).num_milliseconds())
            .unwrap_or(0)
            .div_ceil(1000)
    });
    StateView {
        state: state.into(),
        reason: a.pause_reason,
        wrap_up_remaining_s: remaining,
        registered,
    }
}

/// Opening hours of `p` on today's local date: `08:00-12:00, 14:00-19:00`,
/// `24h/24` or `fermé`.
fn hours_today(p: &Practice, wall: DateTime<Utc>) -> String {
    let h = &p.hours;
    let (day, _) = h.hours_on(h.local(wall).date());
    let ranges = day.ranges();
    if h.always_open || ranges.iter().any(|r| r.start == 0 && r.end == 1440) {
        return "24h/24".into();
    }
    if ranges.is_empty() {
        return "fermé".into();
    }
    let text: Vec<String> = ranges.iter().map(ToString::to_string).collect();
    text.join(", ")
}

fn practice_info(p: &Practice, wall: DateTime<Utc>) -> PracticeInfo {
    PracticeInfo {
        id: p.id.clone(),
        name: p.name.clone(),
        specialty: p.specialty.clone(),
        outbound_code: p.outbound.code.clone(),
        caller_id: p
            .outbound
            .caller_id
            .as_ref()
            .map(|n| n.as_str().to_string()),
        card: p.card.as_ref().map(|c| Card {
            summary: c.summary.clone(),
            entries: c
                .entries
                .iter()
                .map(|e| CardEntry {
                    label: e.label.clone(),
                    text: e.text.clone(),
                })
                .collect(),
        }),
        hours_today: hours_today(p, wall),
        transfers: p
            .transfers
            .iter()
            .map(|t| Transfer {
                code: t.code.clone(),
                label: t.label.clone(),
            })
            .collect(),
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A callback request as the console lists it.
fn callback_item(r: permanence_callbacks::Request, cfg: &Config) -> CallbackItem {
    use permanence_callbacks::Status;
    let triage = r.triage.map(|d| {
        cfg.practice(&r.practice)
            .and_then(|p| p.triage.as_ref())
            .and_then(|t| t.option(d))
            .map_or_else(|| d.to_string(), |o| o.label.clone())
    });
    let trying = matches!(r.status, Status::Offered { .. } | Status::Dialling { .. });
    CallbackItem {
        key: r.key,
        practice: r.practice,
        number: r.number,
        requested_at: rfc3339(r.requested_at),
        deadline: rfc3339(r.deadline),
        attempts: r.attempts,
        triage,
        state: if trying { "trying" } else { "pending" }.into(),
    }
}

/// Midnight of `wall`'s local date in `tz`, as an instant.
fn local_midnight(tz: permanence_calendar::Tz, wall: DateTime<Utc>) -> DateTime<Utc> {
    let date = wall.with_timezone(&tz).date_naive();
    date.and_hms_opt(0, 0, 0)
        .and_then(|m| m.and_local_timezone(tz).earliest())
        .map_or(wall, |m| m.with_timezone(&Utc))
}

#[async_trait::async_trait]
impl ConsoleBackend for EngineConsole {
    fn now(&self) -> DateTime<Utc> {
        self.switch.clock.now()
    }

    fn credentials(&self, username: &str) -> Option<Credentials> {
        let cfg = self.switch.config();
        let a = cfg.agent(username)?;
        Some(Credentials {
            username: a.username.clone(),
            realm: cfg.sip.realm.clone(),
            ha1_md5: a.ha1_md5.clone(),
            ha1_sha256: a.ha1_sha256.clone(),
        })
    }

    async fn profile(&self, agent: &str) -> Option<Profile> {
        let cfg = self.switch.config();
        let a = cfg.agent(agent)?;
        let wall = self.switch.clock.wall();
        let practices = cfg
            .practices()
            .iter()
            .filter(|p| cfg.serves(a, p))
            .map(|p| practice_info(p, wall))
            .collect();
        let colleagues = cfg
            .agents()
            .iter()
            .filter(|c| c.username != a.username)
            .map(|c| Colleague {
                username: c.username.clone(),
                display_name: c.display_name.clone(),
            })
            .collect();
        let pools = cfg
            .pools()
            .iter()
            .map(|p| PoolInfo {
                id: p.id.clone(),
                name: p.name.clone(),
            })
            .collect();
        Some(Profile {
            agent: AgentInfo {
                username: a.username.clone(),
                display_name: a.display_name.clone(),
                languages: a.languages.clone(),
            },
            sip: SipInfo {
                ws_url: ws_urls(&self.switch, &cfg).into_iter().next(),
                uri: format!("sip:{}@{}", a.username, cfg.sip.public_host),
                realm: cfg.sip.realm.clone(),
            },
            practices,
            colleagues,
            pools,
        })
    }

    async fn state(&self, agent: &str) -> StateView {
        let id = agent.to_string();
        let snap = self
            .switch
            .dispatch
            .query(move |d, _| d.agent(&id))
            .await
            .flatten();
        let registered = !self.switch.registrations.contacts(agent).is_empty();
        state_view(snap, registered, self.switch.clock.now())
    }

    async fn act(&self, agent: &str, source: IpAddr, action: AgentAction) -> Result<(), String> {
        let (name, result) = admin::apply_agent_action(&self.switch, agent, action).await;
        self.audit_agent(agent, source, name, agent, &result);
        result
    }

    fn serves(&self, agent: &str, practice: &str) -> bool {
        let cfg = self.switch.config();
        match (cfg.agent(agent), cfg.practice(practice)) {
            (Some(a), Some(p)) => cfg.serves(a, p),
            _ => false,
        }
    }

    async fn callbacks(&self, practice: &str) -> Vec<CallbackItem> {
        let cfg = self.switch.config();
        self.switch
            .callbacks
            .open()
            .await
            .into_iter()
            .filter(|r| r.practice == practice)
            .map(|r| callback_item(r, &cfg))
            .collect()
    }

    async fn callback_handled(
        &self,
        agent: &str,
        source: IpAddr,
        key: &str,
    ) -> Result<(), CallbackRefused> {
        let open = self.switch.callbacks.open().await;
        let practice = open
            .into_iter()
            .find(|r| r.key == key)
            .map(|r| r.practice)
            .filter(|p| self.serves(agent, p))
            .ok_or_else(|| CallbackRefused::Unknown(format!("no open callback request {key:?}")))?;
        let result =
            admin::callbacks::close(&self.switch, agent, key, CallbackAction::Handled).await;
        let audited = result.as_ref().map_err(|e| e.to_string());
        self.audit_agent(
            agent,
            source,
            CallbackAction::Handled.audit_name(),
            key,
            &audited,
        );
        if result.is_ok() {
            self.events.publish(ConsoleEvent::Callbacks { practice });
            self.events.publish(ConsoleEvent::Today {
                agent: agent.to_string(),
            });
        }
        result
    }

    async fn today(&self, agent: &str) -> Today {
        let Some(tz) = self.switch.config().agent(agent).map(|a| a.timezone) else {
            return Today::default();
        };
        let since = local_midnight(tz, self.switch.clock.wall());
        let who = agent.to_string();
        let figures =
            admin::callbacks::read_store(&self.switch, move |r| r.agent_figures(&who, since))
                .await
                .unwrap_or_default();
        Today {
            calls: figures.calls,
            handle_seconds_avg: figures.talk_secs_avg.map(|s| s.round().max(0.0) as u64),
            callbacks_done: figures.callbacks_done,
            outbound_calls: figures.outbound_calls,
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<ConsoleEvent> {
        self.events.tx.subscribe()
    }

    fn audit(&self, e: ConsoleAudit<'_>) {
        let actor = e
            .agent
            .map_or_else(|| "unknown".to_string(), |a| format!("agent:{a}"));
        self.switch.audit.write(Action {
            actor: &actor,
            role: Some("agent"),
            action: e.action,
            target: e.agent,
            source: Some(format!("console:{}", e.source)),
            outcome: match e.outcome {
                AuditOutcome::Ok => Outcome::Ok,
                AuditOutcome::Refused => Outcome::Refused,
            },
            detail: e.detail,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use permanence_acd::AgentState;

    fn snap(state: AgentState) -> AgentSnapshot {
        AgentSnapshot {
            agent: "alice".into(),
            state,
            pause_reason: None,
            in_shift: true,
            reachable: true,
            outbound_calls: 0,
            dispatchable: false,
            backoff: None,
            strikes: 0,
            call: None,
            pending_logout: false,
            retired: false,
            wrap_up_until: None,
        }
    }

    #[test]
    fn dispatcher_states_get_the_consoles_names() {
        let now = Utc.with_ymd_and_hms(2027, 1, 15, 9, 0, 0).unwrap();
        assert_eq!(state_view(None, false, now).state, "logged_out");
        let names: Vec<String> = [
            AgentState::LoggedOut,
            AgentState::Available,
            AgentState::Offered,
            AgentState::OnCall,
            AgentState::WrapUp,
            AgentState::Paused,
        ]
        .into_iter()
        .map(|s| state_view(Some(snap(s)), true, now).state)
        .collect();
        assert_eq!(
            names,
            [
                "logged_out",
                "available",
                "ringing",
                "on_call",
                "wrap_up",
                "paused"
            ]
        );
        let mut away = snap(AgentState::Available);
        away.reachable = false;
        assert_eq!(state_view(Some(away), false, now).state, "unreachable");
        let mut outbound = snap(AgentState::Available);
        outbound.outbound_calls = 1;
        assert_eq!(state_view(Some(outbound), true, now).state, "on_call");
        let mut wrap = snap(AgentState::WrapUp);
        wrap.wrap_up_until = Some(now + chrono::Duration::milliseconds(12_300));
        assert_eq!(
            state_view(Some(wrap), true, now).wrap_up_remaining_s,
            Some(13)
        );
        let mut paused = snap(AgentState::Paused);
        paused.pause_reason = Some("pause déjeuner".into());
        let v = state_view(Some(paused), true, now);
        assert_eq!(v.reason.as_deref(), Some("pause déjeuner"));
        assert!(v.registered);
    }

    #[test]
    fn local_midnight_follows_the_agents_zone() {
        let tz: permanence_calendar::Tz = "Europe/Paris".parse().unwrap();
        // 00:30 in Paris in winter is 23:30 UTC the day before.
        let wall = Utc.with_ymd_and_hms(2027, 1, 14, 23, 30, 0).unwrap();
        assert_eq!(
            local_midnight(tz, wall),
            Utc.with_ymd_and_hms(2027, 1, 14, 23, 0, 0).unwrap()
        );
    }

    #[test]
    fn events_for_consoles_come_from_the_dispatchers() {
        let events = ConsoleEvents::default();
        let mut rx = events.tx.subscribe();
        events.on_event(
            &Event::ReachabilityChanged {
                agent: "alice".into(),
                reachable: true,
            },
            None,
        );
        events.on_event(
            &Event::CallbackKept {
                call: permanence_acd::CallId(7),
            },
            Some("tilleuls"),
        );
        assert_eq!(
            rx.try_recv().unwrap(),
            ConsoleEvent::State {
                agent: "alice".into()
            }
        );
        assert_eq!(
            rx.try_recv().unwrap(),
            ConsoleEvent::Callbacks {
                practice: "tilleuls".into()
            }
        );
        assert!(rx.try_recv().is_err());
    }
}
