//! The engine: thin tokio drivers around the sans-IO cores.
//!
//! - [`edge`] brings up rsipstack (UDP behind the datagram guard, TCP);
//! - [`registrations`] drives the registrar core (REGISTER, expiry, OPTIONS
//!   qualify);
//! - [`calls`] drives one call core per forwarded call (answer, greeting,
//!   hold audio, closed prompt, hang-up);
//! - this module receives every new SIP transaction and routes it.
//!
//! Time is read here (`Utc::now()`) and passed to the cores; nothing below
//! reads a clock.

#![forbid(unsafe_code)]

pub mod acd_map;
pub mod admin;
pub mod calls;
pub mod cdr;
pub mod dispatch;
pub mod edge;
pub mod features;
pub mod leg;
pub mod registrations;

use arc_swap::ArcSwap;
use chrono::Utc;
use permanence_config::{Config, DigestAlgorithm};
use permanence_numbers::{mask, Country};
use permanence_sip::digest::Algorithm;
use permanence_sip::registrar::{
    AgentSecrets, AuthResult, RegisterOutcome, Registrar, RegistrarSettings,
};
use permanence_sip::{extract, intake};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, Method, StatusCode};
use rsipstack::transaction::endpoint::EndpointInnerRef;
use rsipstack::transaction::Transaction;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use edge::EdgeError;

/// Methods we answer (Allow header).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REGISTER, UPDATE";

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

/// What every driver shares.
pub struct Shared {
    /// Read by every call, replaced by reloads: lock-free snapshot.
    config: ArcSwap<Config>,
    /// The transaction endpoint.
    pub endpoint: EndpointInnerRef,
    /// The dialog layer.
    pub dialogs: Arc<DialogLayer>,
    /// The registrar driver.
    pub registrations: Arc<registrations::Registrations>,
    /// Media (RTP legs, prompts).
    pub media: calls::MediaContext,
    /// The dispatcher task.
    pub dispatch: dispatch::DispatchHandle,
    /// The call records store (`None` if it could not be opened: calls
    /// still flow, records are lost and an error was logged).
    pub records: Option<permanence_records::RecorderHandle>,
    /// Settings.
    pub options: EngineOptions,
    /// Host written in our Contact headers.
    pub contact_host: String,
    /// Port written in our Contact headers (first UDP listener).
    pub contact_port: u16,
    /// Prometheus metrics.
    pub metrics: Arc<permanence_metrics::Metrics>,
    /// Calls in progress (admin API, active-calls gauge), by call number.
    pub live: dashmap::DashMap<u64, admin::LiveCall>,
    /// What the datagram guard did.
    pub guard_stats: Arc<permanence_sip::guard::GuardStats>,
    /// SIP request counts for the retransmission metric.
    pub sip_counts: Arc<admin::SipCounts>,
    draining: std::sync::atomic::AtomicBool,
    /// Serialises reloads.
    reload_lock: tokio::sync::Mutex<()>,
    cancel: CancellationToken,
}

impl Shared {
    /// The current configuration.
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// Digest secrets of an agent, from the current configuration.
    pub fn secrets(&self, user: &str) -> Option<AgentSecrets> {
        let cfg = self.config();
        cfg.agent(user).map(|a| AgentSecrets {
            ha1_md5: a.ha1(DigestAlgorithm::Md5).map(str::to_string),
            ha1_sha256: a.ha1(DigestAlgorithm::Sha256).map(str::to_string),
        })
    }

    /// Records a callback request (the caller's number is needed in clear
    /// to call back).
    pub fn save_callback(
        &self,
        practice: &str,
        number: &str,
        call_id: &str,
        at: chrono::DateTime<Utc>,
    ) {
        let saved = self.records.as_ref().is_some_and(|r| {
            r.record_callback(permanence_records::CallbackRequest {
                requested_at: at,
                call_id: call_id.to_string(),
                practice_id: practice.to_string(),
                number: number.to_string(),
            })
        });
        if !saved {
            // A patient waits for a call that nobody will make: make it
            // visible to ops (the number itself stays masked in logs).
            tracing::error!(
                event = "callback.lost",
                practice,
                call_id,
                caller = %mask(number),
                "callback request could not be stored"
            );
        }
    }

    /// Records a call refused before any dialog.
    pub fn record_rejected(
        &self,
        sip_call_id: &str,
        practice: &str,
        trunk: &str,
        caller: &str,
        reason: &str,
    ) {
        if let Some(r) = &self.records {
            r.record_call(cdr::rejected(sip_call_id, practice, trunk, caller, reason));
        }
    }

    /// Our Contact URI (`sip:permanence@host:port`).
    pub fn contact(&self) -> String {
        format!("sip:permanence@{}:{}", self.contact_host, self.contact_port)
    }

    /// Creates the server dialog of an incoming INVITE and starts the task
    /// that drives its transaction (ACK, CANCEL). On failure the
    /// transaction comes back so the caller can answer it.
    pub fn server_dialog(
        &self,
        tx: Transaction,
    ) -> Result<ServerDialog, Box<(Transaction, String)>> {
        let contact = rsipstack::sip::Uri::try_from(self.contact().as_str()).ok();
        let (state_tx, states) = self.dialogs.new_dialog_state_channel();
        match self
            .dialogs
            .get_or_create_server_invite(&tx, state_tx, None, contact)
        {
            Ok(dialog) => {
                let mut handler = dialog.clone();
                let mut tx = tx;
                let task = tokio::spawn(async move {
                    if let Err(e) = handler.handle(&mut tx).await {
                        debug!(error = %e, "INVITE transaction ended with an error");
                    }
                });
                Ok(ServerDialog {
                    dialog,
                    states,
                    task,
                })
            }
            Err(e) => Err(Box::new((tx, e.to_string()))),
        }
    }

    /// Whether the engine is shutting down.
    pub fn is_stopping(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Whether the engine refuses new calls (draining or stopping).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed) || self.is_stopping()
    }

    /// Stops taking new calls; calls in progress go on.
    pub fn start_drain(&self) {
        if !self.draining.swap(true, Ordering::Relaxed) {
            info!(
                event = "engine.draining",
                calls = self.live.len(),
                "draining: new calls get 503"
            );
        }
    }
}

/// The server side of an incoming INVITE.
pub struct ServerDialog {
    /// The dialog (accept, reject, bye).
    pub dialog: rsipstack::dialog::invite_dialog::InviteDialog,
    /// Its state changes (confirmed, terminated, in-dialog requests).
    pub states: rsipstack::dialog::dialog::DialogStateReceiver,
    /// The task driving the INVITE transaction.
    pub task: JoinHandle<()>,
}

fn registrar_settings(cfg: &Config) -> RegistrarSettings {
    let r = &cfg.sip.registrar;
    let secs = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    RegistrarSettings {
        realm: cfg.sip.realm.clone(),
        min_expires: r.min_expires,
        max_expires: r.max_expires,
        default_expires: r.default_expires,
        nonce_ttl: secs(r.nonce_ttl),
        qualify_interval: r
            .qualify_interval
            .map(secs)
            .unwrap_or_else(chrono::Duration::zero),
        qualify_timeout: secs(r.qualify_timeout),
        max_contacts: 10,
        algorithms: r
            .algorithms
            .iter()
            .map(|a| match a {
                DigestAlgorithm::Md5 => Algorithm::Md5,
                DigestAlgorithm::Sha256 => Algorithm::Sha256,
            })
            .collect(),
    }
}

/// A running engine.
pub struct Engine {
    shared: Arc<Shared>,
    recorder: Option<permanence_records::Recorder>,
    tasks: Vec<JoinHandle<()>>,
    /// Bound SIP UDP addresses.
    pub sip_udp: Vec<SocketAddr>,
    /// Bound SIP TCP addresses.
    pub sip_tcp: Vec<SocketAddr>,
}

impl Engine {
    /// Starts listening and serving.
    pub async fn start(config: Config, options: EngineOptions) -> Result<Self, EngineError> {
        let cancel = CancellationToken::new();
        let metrics = permanence_metrics::Metrics::new(permanence_metrics::DEFAULT_SHORT_ABANDON)
            .map_err(|e| EngineError::Startup(format!("metrics: {e}")))?;
        let ids: Vec<&str> = config.practices().iter().map(|p| p.id.as_str()).collect();
        metrics
            .practices(&ids)
            .map_err(|e| EngineError::Startup(format!("metrics: {e}")))?;
        let sip_counts = Arc::new(admin::SipCounts::default());
        let (edge, mut incoming) = edge::start(
            &config.sip.listen_udp,
            &config.sip.listen_tcp,
            &config.sip.user_agent,
            metrics.clone(),
            sip_counts.clone(),
            cancel.clone(),
        )
        .await?;
        let media = calls::MediaContext::new(&config, options.rtp_timeout)
            .map_err(|e| EngineError::Startup(format!("media: {e}")))?;
        let mut key = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut key);
        let registrations =
            registrations::Registrations::new(Registrar::new(registrar_settings(&config), key));
        let dispatcher = permanence_acd::Dispatcher::new(acd_map::acd_config(&config))
            .map_err(|e| EngineError::Startup(format!("dispatcher: {e}")))?;
        let recorder = open_records(&config);
        let records = recorder.as_ref().map(|r| r.handle());
        let mut observers: Vec<Arc<dyn dispatch::EventObserver>> = Vec::new();
        if let Some(h) = &records {
            observers.push(Arc::new(cdr::QueueLog::new(h.clone())));
        }
        let (dispatch, dispatch_task) = dispatch::start(
            dispatcher,
            observers,
            Some(metrics.recorder()),
            cancel.clone(),
        );
        // Agents are unreachable until their softphone registers.
        for a in config.agents() {
            dispatch.input(permanence_acd::Input::AgentReachability {
                agent: a.username.as_str().into(),
                reachable: false,
            });
        }
        {
            let d = dispatch.clone();
            registrations.set_listener(Box::new(move |user, reachable| {
                d.input(permanence_acd::Input::AgentReachability {
                    agent: user.into(),
                    reachable,
                });
            }));
        }
        let contact_port = edge
            .udp
            .first()
            .or(edge.tcp.first())
            .map(|a| a.port())
            .unwrap_or(5060);
        let shared = Arc::new(Shared {
            contact_host: config.sip.public_host.clone(),
            contact_port,
            config: ArcSwap::from_pointee(config),
            endpoint: edge.inner(),
            dialogs: edge.dialogs.clone(),
            registrations: registrations.clone(),
            media,
            dispatch,
            records,
            options,
            metrics,
            live: dashmap::DashMap::new(),
            guard_stats: edge.guard_stats.clone(),
            sip_counts,
            draining: std::sync::atomic::AtomicBool::new(false),
            reload_lock: tokio::sync::Mutex::new(()),
            cancel: cancel.clone(),
        });
        let mut tasks = vec![dispatch_task];
        let endpoint = edge.endpoint;
        let serve_cancel = cancel.clone();
        tasks.push(tokio::spawn(async move {
            tokio::select! {
                _ = endpoint.serve() => {}
                _ = serve_cancel.cancelled() => endpoint.shutdown(),
            }
        }));
        tasks.push(tokio::spawn(registrations.run(
            shared.endpoint.clone(),
            shared.contact_host.clone(),
            cancel.clone(),
        )));
        let http_listen = shared.config().http.listen;
        let token = shared.config().http.admin_token.clone();
        let backend = Arc::new(admin::EngineBackend::new(shared.clone()));
        let (http_addr, http_task) =
            permanence_http::serve(http_listen, backend, token, cancel.clone())
                .await
                .map_err(|e| EngineError::Startup(format!("http: {e}")))?;
        tasks.push(http_task);
        let s = shared.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(tx) = incoming.recv().await {
                let s = s.clone();
                tokio::spawn(async move { handle_transaction(s, tx).await });
            }
        }));
        info!(
            event = "engine.ready",
            sip_udp = ?edge.udp,
            sip_tcp = ?edge.tcp,
            http = %http_addr,
            "Permanence is ready"
        );
        Ok(Self {
            shared,
            recorder,
            tasks,
            sip_udp: edge.udp,
            sip_tcp: edge.tcp,
        })
    }

    /// Drains: refuses new calls (503), waits for calls in progress to end
    /// (at most `options.drain_timeout`). Returns how many calls were still
    /// in progress when it gave up (0 when all ended).
    pub async fn drain(&self) -> usize {
        self.shared.start_drain();
        let deadline = tokio::time::Instant::now() + self.shared.options.drain_timeout;
        loop {
            let n = self.shared.live.len();
            if n == 0 || tokio::time::Instant::now() >= deadline {
                info!(event = "engine.drained", remaining = n, "drain finished");
                return n;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether a drain was requested (signal or admin API).
    pub fn is_draining(&self) -> bool {
        self.shared.is_draining()
    }

    /// Shared state (for tests and the admin side).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Stops everything; pending call records are committed.
    pub async fn shutdown(self) {
        self.shared.cancel.cancel();
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

/// Reloads the configuration file and dialplans: everything is validated
/// first (config, prompts, dispatcher); if anything is wrong the running
/// configuration stays and the errors are returned. Calls in progress and
/// waiting callers keep their place. Listening addresses and the RTP range
/// need a restart (a change is reported, not applied).
pub async fn reload(shared: &Arc<Shared>) -> Result<String, String> {
    let _guard = shared.reload_lock.lock().await;
    let path = shared.options.config_path.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        let cfg = permanence_config::load(&path)
            .map_err(|errs| errs.iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
        let prompts = calls::load_prompts(&cfg)?;
        Ok::<_, Vec<String>>((cfg, prompts))
    })
    .await
    .map_err(|e| e.to_string())?;
    let (cfg, prompts) = match loaded {
        Ok(x) => x,
        Err(errors) => {
            shared.metrics.config_reload(false);
            warn!(
                event = "config.reload_failed",
                errors = errors.len(),
                "configuration reload refused: the running configuration stays"
            );
            for e in &errors {
                warn!(event = "config.error", error = %e, "configuration error");
            }
            return Err(errors.join("\n"));
        }
    };
    let old = shared.config();
    let mut restart = Vec::new();
    if old.sip.listen_udp != cfg.sip.listen_udp || old.sip.listen_tcp != cfg.sip.listen_tcp {
        restart.push("sip listen addresses");
    }
    if old.rtp != cfg.rtp {
        restart.push("rtp");
    }
    if old.http.listen != cfg.http.listen {
        restart.push("http.listen");
    }
    if old.records.path != cfg.records.path {
        restart.push("records.path");
    }
    // Metrics first: the dispatcher task's metrics recorder takes the new
    // practice set when the reconfiguration succeeds.
    let ids: Vec<&str> = cfg.practices().iter().map(|p| p.id.as_str()).collect();
    if let Err(e) = shared.metrics.practices(&ids) {
        warn!(error = %e, "metrics: practices not updated");
    }
    if let Err(e) = shared.dispatch.reconfigure(acd_map::acd_config(&cfg)).await {
        let old_ids: Vec<&str> = old.practices().iter().map(|p| p.id.as_str()).collect();
        let _ = shared.metrics.practices(&old_ids);
        shared.metrics.config_reload(false);
        warn!(event = "config.reload_failed", error = %e, "dispatcher refused the new configuration");
        return Err(format!("dispatcher: {e}"));
    }
    shared.media.set_prompts(prompts);
    shared.registrations.set_settings(registrar_settings(&cfg));
    // Agents added by the reload are unreachable until they register.
    for a in cfg.agents() {
        if old.agent(&a.username).is_none() {
            let reachable = !shared.registrations.contacts(&a.username).is_empty();
            shared
                .dispatch
                .input(permanence_acd::Input::AgentReachability {
                    agent: a.username.as_str().into(),
                    reachable,
                });
        }
    }
    let summary = format!(
        "{} practices, {} agents, {} pools, {} trunks{}",
        cfg.practices().len(),
        cfg.agents().len(),
        cfg.pools().len(),
        cfg.trunks().len(),
        if restart.is_empty() {
            String::new()
        } else {
            format!("; needs a restart to apply: {}", restart.join(", "))
        }
    );
    shared.config.store(Arc::new(cfg));
    shared.metrics.config_reload(true);
    info!(event = "config.reloaded", summary, "configuration reloaded");
    Ok(summary)
}

/// Opens the call records store; a failure is logged and the engine runs
/// without records (calls matter more than their records).
fn open_records(cfg: &Config) -> Option<permanence_records::Recorder> {
    let r = &cfg.records;
    let mut rc = permanence_records::RecordsConfig::new(&r.path);
    rc.retention = r.retention;
    rc.hash_callers = r.hash_callers;
    rc.salt = r.salt.clone();
    match permanence_records::Recorder::open(rc) {
        Ok(rec) => {
            info!(event = "records.open", path = %r.path.display(), hash_callers = r.hash_callers, "call records store open");
            Some(rec)
        }
        Err(e) => {
            tracing::error!(event = "records.unavailable", path = %r.path.display(), error = %e, "cannot open the call records store: running without records");
            None
        }
    }
}

/// Where a transaction's request came from.
fn source_of(tx: &Transaction) -> Option<SocketAddr> {
    tx.connection
        .as_ref()
        .and_then(|c| c.get_remote_addr())
        .and_then(|a| a.get_socketaddr().ok())
}

async fn reply(tx: &mut Transaction, code: StatusCode, headers: Vec<Header>) {
    if let Err(e) = tx.reply_with(code, headers, None).await {
        debug!(error = %e, "could not send response");
    }
}

async fn handle_transaction(shared: Arc<Shared>, mut tx: Transaction) {
    let method = tx.original.method;
    let in_dialog = tx
        .original
        .to_header()
        .ok()
        .and_then(|t| t.tag().ok().flatten())
        .is_some();
    let Some(source) = source_of(&tx) else {
        debug!("transaction without a source address");
        return;
    };
    match method {
        Method::Register => handle_register(&shared, &mut tx, source).await,
        Method::Invite if !in_dialog => handle_invite(shared, tx, source).await,
        Method::Ack => {}
        _ if in_dialog => match shared.dialogs.match_dialog(&tx) {
            Some(mut d) => {
                if let Err(e) = d.handle(&mut tx).await {
                    debug!(error = %e, %method, "in-dialog request failed");
                }
            }
            None => reply(&mut tx, StatusCode::CallTransactionDoesNotExist, vec![]).await,
        },
        Method::Options => {
            let headers = vec![
                Header::Allow(ALLOW.into()),
                Header::Other("Accept".into(), "application/sdp".into()),
            ];
            reply(&mut tx, StatusCode::OK, headers).await
        }
        Method::Bye | Method::Info | Method::Update | Method::PRack => {
            reply(&mut tx, StatusCode::CallTransactionDoesNotExist, vec![]).await
        }
        _ => {
            reply(
                &mut tx,
                StatusCode::MethodNotAllowed,
                vec![Header::Allow(ALLOW.into())],
            )
            .await
        }
    }
}

async fn handle_register(shared: &Shared, tx: &mut Transaction, source: SocketAddr) {
    let transport = tx
        .connection
        .as_ref()
        .map(|c| c.transport().to_string().to_ascii_uppercase())
        .unwrap_or_else(|| extract::via_transport(&tx.original));
    let req = match extract::register_request(&tx.original, source, &transport) {
        Ok(r) => r,
        Err(reason) => {
            info!(event = "register.bad_request", %source, reason, "malformed REGISTER");
            reply(tx, StatusCode::BadRequest, vec![]).await;
            return;
        }
    };
    let lookup = |u: &str| shared.secrets(u);
    match shared.registrations.register(&req, &lookup) {
        RegisterOutcome::Challenge { www_authenticate } => {
            let h = www_authenticate
                .into_iter()
                .map(|v| Header::WwwAuthenticate(v.into()))
                .collect();
            reply(tx, StatusCode::Unauthorized, h).await
        }
        RegisterOutcome::Ok { bindings } => {
            let h = bindings
                .into_iter()
                .map(|(uri, exp)| Header::Contact(format!("<{uri}>;expires={exp}").into()))
                .collect();
            reply(tx, StatusCode::OK, h).await
        }
        RegisterOutcome::IntervalTooBrief { min_expires } => {
            reply(
                tx,
                StatusCode::IntervalTooBrief,
                vec![Header::MinExpires(min_expires.to_string().into())],
            )
            .await
        }
        RegisterOutcome::Forbidden(_) => reply(tx, StatusCode::Forbidden, vec![]).await,
        RegisterOutcome::BadRequest(_) => reply(tx, StatusCode::BadRequest, vec![]).await,
        RegisterOutcome::OutOfOrder => reply(tx, StatusCode::ServerInternalError, vec![]).await,
    }
}

/// An INVITE that is not a carrier's: authenticate the telesecretary
/// (407 challenge), then run the feature code.
async fn agent_invite(
    shared: Arc<Shared>,
    mut tx: Transaction,
    source: SocketAddr,
    call_id: String,
    dialled: String,
) {
    let authz = extract::header_value(&tx.original.headers, "Proxy-Authorization");
    let lookup = |u: &str| shared.secrets(u);
    match shared.registrations.authenticate(authz, "INVITE", &lookup) {
        AuthResult::Challenge(h) | AuthResult::Replayed { challenge: h, .. } => {
            info!(event = "invite.challenged", %source, call_id, "INVITE from a non-trunk source challenged");
            shared
                .metrics
                .sip_rejected(permanence_metrics::SipReject::Acl);
            let h = h
                .into_iter()
                .map(|v| Header::ProxyAuthenticate(v.into()))
                .collect();
            reply(&mut tx, StatusCode::ProxyAuthenticationRequired, h).await;
        }
        AuthResult::Failed { user, reason } => {
            warn!(event = "invite.forbidden", %source, user, reason, "INVITE refused");
            shared
                .metrics
                .sip_rejected(permanence_metrics::SipReject::Auth);
            reply(&mut tx, StatusCode::Forbidden, vec![]).await;
        }
        AuthResult::Authenticated(user) => {
            features::agent_call(shared.clone(), tx, user, dialled).await;
        }
    }
}

async fn handle_invite(shared: Arc<Shared>, mut tx: Transaction, source: SocketAddr) {
    let cfg = shared.config();
    let call_id = extract::call_id(&tx.original).unwrap_or_default();
    if shared.is_draining() {
        shared
            .metrics
            .sip_rejected(permanence_metrics::SipReject::Overload);
        reply(
            &mut tx,
            StatusCode::ServiceUnavailable,
            vec![Header::RetryAfter("30".into())],
        )
        .await;
        return;
    }
    let dialled = extract::uri_user(&tx.original.uri.to_string())
        .map(str::to_string)
        .unwrap_or_default();
    let feature_code = dialled.starts_with('*') || dialled.starts_with("%2A");
    let trunk = cfg.trunk_for(source.ip()).filter(|_| !feature_code);
    let Some(trunk) = trunk else {
        // Not a carrier (or a feature code, which no carrier delivers):
        // only an authenticated telesecretary may call in.
        drop(cfg);
        agent_invite(shared, tx, source, call_id, dialled).await;
        return;
    };
    let ruri = tx.original.uri.to_string();
    let view = extract::intake_view(&tx.original, &ruri);
    let found = intake::identify(&view, Country::Fr, |n| cfg.practice_by_number(n));
    let Some((practice, number, via)) = found else {
        let candidates: Vec<String> = intake::called_numbers(&view, Country::Fr)
            .into_iter()
            .map(|(s, n)| format!("{}:{}", s.as_str(), n.masked()))
            .collect();
        info!(
            event = "intake.unknown_number",
            trunk = %trunk.name,
            call_id,
            candidates = ?candidates,
            "no practice for this call: 404"
        );
        reply(&mut tx, StatusCode::NotFound, vec![]).await;
        return;
    };
    let caller = extract::caller_id(&tx.original);
    let caller_user = extract::uri_user(&caller).unwrap_or(&caller).to_string();
    info!(
        event = "call.identified",
        practice = %practice.id,
        number = %number.masked(),
        via = via.as_str(),
        trunk = %trunk.name,
        caller = %mask(&caller_user),
        call_id,
        "forwarded call identified"
    );
    let incoming = calls::IncomingCall {
        practice: practice.id.clone(),
        open: practice.hours.is_open(Utc::now()),
        trunk: trunk.name.clone(),
        called: number.as_str().to_string(),
        via,
        received_at: Utc::now(),
        sip_call_id: call_id,
        caller: permanence_numbers::normalize(&caller, practice.country)
            .map(|n| n.as_str().to_string())
            .unwrap_or(caller_user),
    };
    drop(cfg);
    calls::run_call(shared, tx, incoming).await;
}
