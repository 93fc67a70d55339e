//! Starting and stopping the engine: [`Engine::start`] opens every part
//! (SIP edge, media, registrar, dispatcher, records, metrics, HTTP), builds
//! the [`Switch`] and each driver's context, and spawns the tasks;
//! [`Engine::drain`] and [`Engine::shutdown`] end them.

use crate::clock::Clock;
use crate::context::SipContext;
use crate::dispatch::{self, DispatchHandle, EventObserver};
use crate::edge::{self, EdgeError};
use crate::media::MediaContext;
use crate::registrations::Registrations;
use crate::streams::{self, StreamSettings};
use crate::switch::{Parts, Switch};
use crate::tls::TlsServer;
use crate::{acd_map, admin, records, routing};
use arc_swap::ArcSwap;
use permanence_acd::Input as AcdInput;
use permanence_config::Config;
use permanence_sip::gate::GateSettings;
use permanence_sip::guard::FrontDoor;
use permanence_sip::registrar::{Registrar, RegistrarSettings};
use permanence_sip::stream::ConnLimits;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Engine-wide settings not (yet) in the configuration file.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Delay between `180 Ringing` and the answer of a forwarded call.
    pub answer_delay: Duration,
    /// A call whose caller sends no RTP for this long is ended.
    pub rtp_timeout: Duration,
    /// Longest call.
    pub max_call: Duration,
    /// The main configuration file (re-read on reload).
    pub config_path: std::path::PathBuf,
    /// How long a drain waits for calls in progress before exiting anyway.
    pub drain_timeout: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            answer_delay: Duration::ZERO,
            rtp_timeout: Duration::from_secs(60),
            max_call: Duration::from_secs(4 * 3600),
            config_path: std::path::PathBuf::from("config/permanence.toml"),
            drain_timeout: Duration::from_secs(600),
        }
    }
}

/// Errors at startup.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The SIP edge failed to start.
    #[error(transparent)]
    Edge(#[from] EdgeError),
    /// Another part of the engine (media and prompts, dispatcher,
    /// metrics, HTTP listener) failed to start; the message names it.
    #[error("{0}")]
    Startup(String),
}

fn startup(part: &str) -> impl Fn(String) -> EngineError + '_ {
    move |e| EngineError::Startup(format!("{part}: {e}"))
}

/// The registrar's settings from the configuration.
pub(crate) fn registrar_settings(cfg: &Config) -> RegistrarSettings {
    let r = &cfg.sip.registrar;
    RegistrarSettings {
        realm: cfg.sip.realm.clone(),
        min_expires: r.min_expires,
        max_expires: r.max_expires,
        default_expires: r.default_expires,
        nonce_ttl: r.nonce_ttl,
        qualify_interval: r.qualify_interval.unwrap_or(Duration::ZERO),
        qualify_timeout: r.qualify_timeout,
        max_contacts: 10,
        algorithms: r.algorithms.clone(),
        throttle: Default::default(),
    }
}

/// A running engine.
pub struct Engine {
    switch: Arc<Switch>,
    recorder: Option<permanence_records::Recorder>,
    tasks: Vec<JoinHandle<()>>,
    /// Bound SIP UDP addresses.
    pub sip_udp: Vec<SocketAddr>,
    /// Bound SIP TCP addresses.
    pub sip_tcp: Vec<SocketAddr>,
    /// Bound SIP TLS addresses.
    pub sip_tls: Vec<SocketAddr>,
}

impl Engine {
    /// Starts listening and serving.
    pub async fn start(config: Config, options: EngineOptions) -> Result<Self, EngineError> {
        Self::start_with_clock(config, options, Clock::default()).await
    }

    /// Starts listening and serving on `clock` (tests step its wall clock).
    pub async fn start_with_clock(
        config: Config,
        options: EngineOptions,
        clock: Clock,
    ) -> Result<Self, EngineError> {
        let cancel = CancellationToken::new();
        let metrics = permanence_metrics::Metrics::new(permanence_metrics::DEFAULT_SHORT_ABANDON)
            .map_err(|e| startup("metrics")(e.to_string()))?;
        metrics
            .practices(&practice_ids(&config))
            .map_err(|e| startup("metrics")(e.to_string()))?;
        let sip_counts = Arc::new(admin::SipCounts::default());
        let registrations =
            Registrations::new(new_registrar(&config), clock.clone(), metrics.clone());
        let user_agent = config.sip.user_agent.clone();
        let limits = gate_settings(&config.sip.limits);
        let (listen_udp, listen_tcp, listen_tls, listen_ws, listen_wss) = (
            config.sip.listen_udp.clone(),
            config.sip.listen_tcp.clone(),
            config.sip.listen_tls.clone(),
            config.sip.listen_ws.clone(),
            config.sip.listen_wss.clone(),
        );
        let tls = tls_server(&config)?;
        let stream_settings = stream_settings(&config.sip.limits);
        let config = Arc::new(ArcSwap::from_pointee(config));
        let door = front_door(&config, &registrations, limits, &user_agent);
        let (edge, mut incoming) = edge::start(
            edge::EdgeSetup {
                udp: &listen_udp,
                tcp: &listen_tcp,
                tls: &listen_tls,
                ws: &listen_ws,
                wss: &listen_wss,
                tls_server: tls.clone(),
                streams: stream_settings,
                user_agent: &user_agent,
            },
            door.clone(),
            metrics.clone(),
            sip_counts.clone(),
            cancel.clone(),
        )
        .await?;
        let cfg = config.load_full();
        let media =
            Arc::new(MediaContext::new(&cfg, options.rtp_timeout).map_err(startup("media"))?);
        let recorder = open_records(&cfg);
        let records = recorder.as_ref().map(|r| r.handle());
        let mut saved = recover(&records, &cfg, &metrics).await;
        let console_events = crate::console::ConsoleEvents::default();
        let (dispatch, dispatch_task) =
            start_dispatcher(&cfg, &records, &metrics, &console_events, &clock, &cancel)?;
        wire_reachability(&cfg, &dispatch, &registrations);
        let saved_callbacks = std::mem::take(&mut saved.callbacks);
        let saved_voicemails = std::mem::take(&mut saved.voicemails);
        restore(saved, &cfg, &dispatch, &registrations);
        if let Some(h) = &records {
            registrations.save_to(h.clone());
        }
        {
            let regs = registrations.clone();
            edge.streams
                .set_close_listener(Box::new(move |peer, transport| {
                    regs.connection_closed(peer, transport)
                }));
            let cfg = config.clone();
            edge.streams
                .set_websocket_trust(Box::new(move |ip| cfg.load().sip.limits.is_trusted(ip)));
        }
        let sip = Arc::new(SipContext {
            endpoint: edge.inner(),
            dialogs: edge.dialogs.clone(),
            contact_host: cfg.sip.public_host.clone(),
            contact_port: contact_port(&edge),
            tcp_port: edge.tcp.first().map(|a| a.port()),
            tls_port: edge.tls.first().map(|a| a.port()),
            ws_port: edge.ws.first().map(|a| a.port()),
            wss_port: edge.wss.first().map(|a| a.port()),
            webrtc: webrtc_settings(&cfg.rtp),
        });
        let switch = Arc::new(Switch::new(
            Parts {
                config,
                sip,
                media,
                dispatch,
                registrations,
                records,
                metrics,
                guard_stats: edge.guard_stats.clone(),
                door,
                sip_counts,
                streams: edge.streams.clone(),
                tls,
                clock,
                cancel: cancel.clone(),
            },
            options,
        ));
        switch.registrations.audit_to(switch.audit.clone());
        let (sip_udp, sip_tcp, sip_tls) = (edge.udp.clone(), edge.tcp.clone(), edge.tls.clone());
        let mut tasks = vec![dispatch_task, serve_sip(edge.endpoint, &cancel)];
        if let Some(inbox) = switch.callbacks_inbox.lock().take() {
            tasks.push(crate::callbacks::start(
                switch.calls.clone(),
                &switch.callbacks,
                inbox,
                saved_callbacks,
            ));
        }
        tasks.extend(start_mailer(&switch, &cfg, saved_voicemails, &cancel));
        tasks.push(tokio::spawn(switch.registrations.clone().run(
            switch.sip.endpoint.clone(),
            switch.sip.contact_host.clone(),
            cancel.clone(),
        )));
        let (http_addr, http_task) = serve_http(&switch, console_events, &cancel).await?;
        tasks.push(http_task);
        let s = switch.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(tx) = incoming.recv().await {
                tokio::spawn(routing::handle_transaction(s.clone(), Box::new(tx)));
            }
        }));
        info!(event = "engine.ready", ?sip_udp, ?sip_tcp, ?sip_tls, http = %http_addr, "Permanence is ready");
        Ok(Self {
            switch,
            recorder,
            tasks,
            sip_udp,
            sip_tcp,
            sip_tls,
        })
    }

    /// Drains: refuses new calls (503), waits for calls in progress to end
    /// (at most `options.drain_timeout`). Returns how many calls were still
    /// in progress when it gave up (0 when all ended).
    pub async fn drain(&self) -> usize {
        self.switch.start_drain();
        let deadline = tokio::time::Instant::now() + self.switch.drain_timeout;
        loop {
            let n = self.switch.live.len();
            if n == 0 || tokio::time::Instant::now() >= deadline {
                info!(event = "engine.drained", remaining = n, "drain finished");
                return n;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether a drain was requested (signal or admin API).
    pub fn is_draining(&self) -> bool {
        self.switch.is_draining()
    }

    /// Reloads the configuration (see [`crate::reload`]).
    pub async fn reload(&self) -> Result<String, String> {
        crate::reload(&self.switch).await
    }

    /// The running engine as a whole (for tests and the admin side).
    pub fn switch(&self) -> &Arc<Switch> {
        &self.switch
    }

    /// Stops everything; pending call records are committed.
    pub async fn shutdown(self) {
        self.switch.cancel.cancel();
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
        if let Some(r) = self.recorder {
            match tokio::task::spawn_blocking(move || r.shutdown()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!(error = %e, "call records: shutdown failed"),
                Err(e) => warn!(error = %e, "call records: shutdown task failed"),
            }
        }
    }
}

fn practice_ids(cfg: &Config) -> Vec<&str> {
    cfg.practices().iter().map(|p| p.id.as_str()).collect()
}

/// The gate's limits from `[sip.limits]`.
pub(crate) fn gate_settings(l: &permanence_config::SipLimits) -> GateSettings {
    GateSettings {
        source_rate: f64::from(l.source_rate),
        source_burst: f64::from(l.source_burst),
        ban_after: l.ban_after,
        ban_for: l.ban_for,
        total_rate: f64::from(l.total_rate),
        total_burst: 2.0 * f64::from(l.total_rate),
        ..GateSettings::default()
    }
}

/// The caps and idle timeout of TCP and TLS connections from `[sip.limits]`;
/// the total cap is lowered to half the descriptor limit (logged once).
pub(crate) fn stream_settings(l: &permanence_config::SipLimits) -> StreamSettings {
    let nofile = streams::descriptor_limit();
    let total = streams::effective_total(l.max_connections, nofile);
    if total < l.max_connections {
        warn!(
            event = "sip.max_connections_lowered",
            configured = l.max_connections,
            used = total,
            descriptor_limit = nofile.unwrap_or(0),
            "sip.limits.max_connections lowered to half the descriptor limit (ulimit -n)"
        );
    }
    StreamSettings {
        limits: ConnLimits {
            total,
            per_source: l.max_connections_per_source,
        },
        idle: l.idle,
    }
}

/// Browser agents' WebRTC sockets: on the media address, announcing the
/// advertised one when it differs (1:1 NAT).
fn webrtc_settings(rtp: &permanence_config::RtpConfig) -> permanence_webrtc::WebRtcSettings {
    let mut w = permanence_webrtc::WebRtcSettings::on(rtp.bind);
    if rtp.advertise != rtp.bind {
        w.advertise = Some(rtp.advertise);
    }
    w
}

/// The TLS certificate when SIP TLS listeners or HTTPS are configured:
/// `[sip.tls]`, or a self-signed one created at first start.
fn tls_server(cfg: &Config) -> Result<Option<Arc<TlsServer>>, EngineError> {
    if cfg.sip.listen_tls.is_empty() && cfg.sip.listen_wss.is_empty() && !cfg.http.tls {
        return Ok(None);
    }
    let mut names = vec![cfg.sip.public_host.clone()];
    let https = cfg.http.tls.then_some(cfg.http.listen);
    for a in cfg
        .sip
        .listen_tls
        .iter()
        .chain(cfg.sip.listen_wss.iter())
        .chain(https.iter())
    {
        if !a.ip().is_unspecified() {
            names.push(a.ip().to_string());
        }
    }
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    let server = TlsServer::load(&cfg.sip.tls, &names).map_err(EdgeError::from)?;
    Ok(Some(Arc::new(server)))
}

/// The SIP front door: trunks and `[sip.limits] trusted` networks skip the
/// gate (read from the current configuration, so reloads apply at once);
/// strangers are challenged by the registrar's nonces.
fn front_door(
    config: &Arc<ArcSwap<Config>>,
    registrations: &Arc<Registrations>,
    limits: GateSettings,
    user_agent: &str,
) -> Arc<FrontDoor> {
    let cfg = config.clone();
    let trusted = Box::new(move |ip| {
        let c = cfg.load();
        c.trunk_for(ip).is_some() || c.sip.limits.is_trusted(ip)
    });
    let cfg = config.clone();
    let overloaded = Box::new(move || {
        let cap = u64::from(cfg.load().sip.limits.max_heap_mb) << 20;
        permanence_memory::heap_bytes().is_some_and(|heap| heap >= cap)
    });
    let r = registrations.clone();
    let challenger = Box::new(move || r.challenge());
    Arc::new(FrontDoor::new(
        limits,
        trusted,
        overloaded,
        challenger,
        user_agent.to_string(),
    ))
}

/// The registrar core, with a fresh random key for its nonces.
fn new_registrar(cfg: &Config) -> Registrar {
    let mut key = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut key);
    Registrar::new(registrar_settings(cfg), key)
}

/// Port written in our Contact headers: the first UDP listener's, else the
/// first TCP one's.
fn contact_port(edge: &edge::SipEdge) -> u16 {
    edge.udp
        .first()
        .or(edge.tcp.first())
        .map(|a| a.port())
        .unwrap_or(5060)
}

/// Starts the dispatcher task, observed by metrics, the queue log and the
/// web consoles.
fn start_dispatcher(
    cfg: &Config,
    records: &Option<permanence_records::RecorderHandle>,
    metrics: &Arc<permanence_metrics::Metrics>,
    console: &crate::console::ConsoleEvents,
    clock: &Clock,
    cancel: &CancellationToken,
) -> Result<(DispatchHandle, JoinHandle<()>), EngineError> {
    let dispatcher = permanence_acd::Dispatcher::new(acd_map::acd_config(cfg))
        .map_err(|e| startup("dispatcher")(e.to_string()))?;
    let mut observers: Vec<Arc<dyn EventObserver>> = vec![Arc::new(console.clone())];
    if let Some(h) = records {
        observers.push(Arc::new(records::QueueLog::new(h.clone())));
        observers.push(Arc::new(records::AgentStateLog::new(h.clone())));
    }
    Ok(dispatch::start(
        dispatcher,
        observers,
        Some(metrics.recorder()),
        clock.clone(),
        cancel.clone(),
    ))
}

/// Starts the voicemail e-mail driver when `[mail]` is configured (else
/// says that messages are only recorded).
fn start_mailer(
    switch: &Switch,
    cfg: &Config,
    saved: Vec<permanence_records::VoicemailDeliveryRow>,
    cancel: &tokio_util::sync::CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    let inbox = switch.mailer_inbox.lock().take()?;
    let Some(settings) = cfg.mail.clone() else {
        warn!(
            event = "voicemail.mail_disabled",
            kept = saved.len(),
            "no [mail]: voicemail messages are recorded but not e-mailed"
        );
        return None;
    };
    crate::mailer::start(
        inbox,
        crate::mailer::MailerParts {
            settings,
            records: switch.records.clone(),
            saved,
            metrics: switch.metrics.clone(),
            clock: switch.clock.clone(),
            cancel: cancel.clone(),
        },
    )
}

/// What a previous run left to take up again.
#[derive(Default)]
struct Saved {
    agent_states: Vec<permanence_records::AgentStateRow>,
    registrations: Vec<permanence_records::RegistrationRow>,
    /// Open callback requests, in place order.
    callbacks: Vec<permanence_records::CallbackState>,
    /// Voicemail e-mails not delivered yet, in queue order.
    voicemails: Vec<permanence_records::VoicemailDeliveryRow>,
}

/// Closes the call records a crash left open (counted and logged) and
/// reads the saved agent states and registrations, off the runtime.
async fn recover(
    records: &Option<permanence_records::RecorderHandle>,
    cfg: &Config,
    metrics: &Arc<permanence_metrics::Metrics>,
) -> Saved {
    let Some(handle) = records.clone() else {
        return Saved::default();
    };
    let path = cfg.records.path.clone();
    let work = tokio::task::spawn_blocking(move || {
        let interrupted = handle.close_interrupted();
        let reader = permanence_records::RecordReader::open(&path);
        let (states, regs, callbacks, voicemails) = match &reader {
            Ok(r) => (
                r.agent_states(),
                r.registrations(chrono::Utc::now()),
                r.pending_callbacks(),
                r.pending_voicemail_deliveries(),
            ),
            Err(_) => (
                Ok(Vec::new()),
                Ok(Vec::new()),
                Ok(Vec::new()),
                Ok(Vec::new()),
            ),
        };
        (interrupted, states, regs, (callbacks, voicemails))
    });
    let Ok((interrupted, states, regs, (callbacks, voicemails))) = work.await else {
        return Saved::default();
    };
    match interrupted {
        Ok(0) => {}
        Ok(n) => {
            metrics.calls_interrupted(n);
            warn!(
                event = "records.interrupted",
                calls = n,
                "calls interrupted by the previous stop closed as interrupted"
            );
        }
        Err(e) => warn!(error = %e, "call records: cannot close interrupted calls"),
    }
    fn or_log<T>(what: &str, r: Result<Vec<T>, permanence_records::RecordsError>) -> Vec<T> {
        r.unwrap_or_else(|e| {
            warn!(error = %e, "{what} not restored");
            Vec::new()
        })
    }
    Saved {
        agent_states: or_log("agent states", states),
        registrations: or_log("registrations", regs),
        callbacks: or_log("pending callbacks", callbacks),
        voicemails: or_log("pending voicemail e-mails", voicemails),
    }
}

/// Brings agents back to the states they chose and softphones back to
/// their registrations (agents no longer configured are skipped).
fn restore(saved: Saved, cfg: &Config, dispatch: &DispatchHandle, registrations: &Registrations) {
    let mut agents = 0;
    for s in saved
        .agent_states
        .iter()
        .filter(|s| cfg.agent(&s.agent).is_some())
    {
        for input in records::restore_inputs(s) {
            agents += 1;
            dispatch.input(input);
        }
    }
    let rows: Vec<_> = saved
        .registrations
        .into_iter()
        .filter(|r| cfg.agent(&r.agent).is_some())
        .collect();
    let contacts = registrations.restore(rows);
    if agents + contacts > 0 {
        info!(
            event = "engine.restored",
            agent_states = agents,
            contacts,
            "state of the previous run restored"
        );
    }
}

/// Agents are unreachable until their softphone registers; the registrar
/// tells the dispatcher when that changes.
fn wire_reachability(cfg: &Config, dispatch: &DispatchHandle, registrations: &Registrations) {
    for a in cfg.agents() {
        dispatch.input(AcdInput::AgentReachability {
            agent: a.username.as_str().into(),
            reachable: false,
        });
    }
    let d = dispatch.clone();
    registrations.set_listener(Box::new(move |user, reachable| {
        d.input(AcdInput::AgentReachability {
            agent: user.into(),
            reachable,
        });
    }));
}

/// Serves the SIP endpoint until `cancel`.
fn serve_sip(
    endpoint: rsipstack::transaction::Endpoint,
    cancel: &CancellationToken,
) -> JoinHandle<()> {
    let cancel = cancel.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = endpoint.serve() => {}
            _ = cancel.cancelled() => endpoint.shutdown(),
        }
    })
}

/// Serves `/metrics`, `/healthz`, the admin API and the web console.
async fn serve_http(
    switch: &Arc<Switch>,
    console: crate::console::ConsoleEvents,
    cancel: &CancellationToken,
) -> Result<(SocketAddr, JoinHandle<()>), EngineError> {
    let cfg = switch.config();
    let backend = Arc::new(admin::EngineBackend::new(switch.clone()));
    if cfg.http.admin_token.is_some() {
        warn!(
            event = "http.shared_token",
            "the admin API accepts the shared http.admin_token (admin role): for the demo only; name your users in [[http.users]]"
        );
    }
    let tls = switch
        .tls
        .as_ref()
        .filter(|_| cfg.http.tls)
        .map(|t| t.acceptor());
    let app = permanence_http::router(backend).merge(crate::console::router(switch, console));
    permanence_http::serve_router(cfg.http.listen, app, tls, cancel.clone())
        .await
        .map_err(|e| startup("http")(e.to_string()))
}

/// Starts the call records store. A database that cannot be opened does not
/// stop the engine (calls matter more than their records): the store starts
/// degraded (it logs `records.degraded` with the cause; `/healthz` and
/// `permanence_records_healthy` show it), keeps the rows in memory and
/// retries opening with back-off. `None` only when the store cannot run at
/// all (invalid settings, no writer thread): calls then go on without
/// records and `/healthz` says so.
fn open_records(cfg: &Config) -> Option<permanence_records::Recorder> {
    let r = &cfg.records;
    let mut rc = permanence_records::RecordsConfig::new(&r.path);
    rc.retention = r.retention;
    rc.hash_callers = r.hash_callers;
    rc.salt = r.salt.clone();
    match permanence_records::Recorder::start(rc) {
        Ok(rec) => {
            if rec.health().is_ok() {
                info!(event = "records.open", path = %r.path.display(), hash_callers = r.hash_callers, "call records store open");
            }
            Some(rec)
        }
        Err(e) => {
            tracing::error!(event = "records.unavailable", path = %r.path.display(), error = %e, "cannot start the call records store: running without records");
            None
        }
    }
}
