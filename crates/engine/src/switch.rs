//! [`Switch`]: the running engine as a whole, as startup, reload, SIP
//! routing and the admin side see it. Drivers never get it: each gets its
//! narrow context (see [`crate::context`]).

use crate::clock::Clock;
use crate::context::{CallContext, CallOptions, FeatureContext, SipContext};
use crate::dispatch::DispatchHandle;
use crate::live::LiveCalls;
use crate::media::MediaContext;
use crate::registrations::Registrations;
use arc_swap::ArcSwap;
use permanence_config::{Config, DigestAlgorithm};
use permanence_sip::registrar::AgentSecrets;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// The running engine.
pub struct Switch {
    /// The configuration snapshot, replaced by reloads (shared with the
    /// call drivers).
    pub(crate) config: Arc<ArcSwap<Config>>,
    /// SIP endpoint, dialogs and our Contact.
    pub(crate) sip: Arc<SipContext>,
    /// Media legs and prompts.
    pub(crate) media: Arc<MediaContext>,
    /// The dispatcher task.
    pub(crate) dispatch: DispatchHandle,
    /// The registrar driver.
    pub(crate) registrations: Arc<Registrations>,
    /// The call records store. It starts (degraded, retrying) even when
    /// the database cannot be opened yet; `None` only if its writer could
    /// not start at all (invalid settings: an error was logged, calls still
    /// flow without records).
    pub(crate) records: Option<permanence_records::RecorderHandle>,
    /// Prometheus metrics.
    pub(crate) metrics: Arc<permanence_metrics::Metrics>,
    /// Calls in progress.
    pub(crate) live: Arc<LiveCalls>,
    /// What the datagram guard did.
    pub(crate) guard_stats: Arc<permanence_sip::guard::GuardStats>,
    /// The gate in front of the SIP stack (its limits follow reloads).
    pub(crate) door: Arc<permanence_sip::guard::FrontDoor>,
    /// SIP request counts for the retransmission metric.
    pub(crate) sip_counts: Arc<crate::admin::SipCounts>,
    /// The TCP and TLS connections (caps follow reloads).
    pub(crate) streams: Arc<crate::streams::StreamFront>,
    /// The certificate of the TLS listeners (reloaded with the
    /// configuration), if any.
    pub(crate) tls: Option<Arc<crate::tls::TlsServer>>,
    /// What a forwarded call's driver gets.
    pub(crate) calls: Arc<CallContext>,
    /// What an agent's feature-code call gets.
    pub(crate) features: Arc<FeatureContext>,
    /// Engine time and the wall clock.
    pub(crate) clock: Clock,
    /// Who did what.
    pub(crate) audit: crate::audit::AuditLog,
    /// The main configuration file (re-read on reload).
    pub(crate) config_path: std::path::PathBuf,
    /// How long a drain waits for calls in progress.
    pub(crate) drain_timeout: Duration,
    pub(crate) draining: AtomicBool,
    /// Serialises reloads.
    pub(crate) reload_lock: tokio::sync::Mutex<()>,
    pub(crate) cancel: CancellationToken,
    /// Callback requests (operators' list, cancel, handled).
    pub(crate) callbacks: crate::callbacks::CallbackHandle,
    /// Where the callbacks task's messages wait until startup starts it.
    pub(crate) callbacks_inbox: parking_lot::Mutex<Option<crate::callbacks::CallbackInbox>>,
    /// The mailer task's inbox, until it starts.
    pub(crate) mailer_inbox: parking_lot::Mutex<Option<crate::mailer::MailerInbox>>,
}

/// The engine's parts, once started (see [`crate::Engine::start`]).
pub(crate) struct Parts {
    pub config: Arc<ArcSwap<Config>>,
    pub sip: Arc<SipContext>,
    pub media: Arc<MediaContext>,
    pub dispatch: DispatchHandle,
    pub registrations: Arc<Registrations>,
    pub records: Option<permanence_records::RecorderHandle>,
    pub metrics: Arc<permanence_metrics::Metrics>,
    pub guard_stats: Arc<permanence_sip::guard::GuardStats>,
    pub door: Arc<permanence_sip::guard::FrontDoor>,
    pub sip_counts: Arc<crate::admin::SipCounts>,
    pub streams: Arc<crate::streams::StreamFront>,
    pub tls: Option<Arc<crate::tls::TlsServer>>,
    pub clock: Clock,
    pub cancel: CancellationToken,
}

impl Switch {
    /// Assembles the switch and each driver's context from its parts.
    pub(crate) fn new(p: Parts, options: crate::EngineOptions) -> Self {
        let config = p.config;
        let live = Arc::new(LiveCalls::default());
        let (callbacks, callbacks_inbox) = crate::callbacks::channel();
        let (mailer, mailer_inbox) = crate::mailer::channel();
        let calls = Arc::new(CallContext {
            config: config.clone(),
            sip: p.sip.clone(),
            media: p.media.clone(),
            dispatch: p.dispatch.clone(),
            registrations: p.registrations.clone(),
            records: p.records.clone(),
            metrics: p.metrics.clone(),
            live: live.clone(),
            options: CallOptions {
                answer_delay: options.answer_delay,
                max_call: options.max_call,
            },
            clock: p.clock.clone(),
            activity: Arc::default(),
            callbacks: callbacks.clone(),
            mailer,
        });
        let audit = crate::audit::AuditLog::new(p.records.clone(), p.clock.clone());
        let features = Arc::new(FeatureContext {
            sip: p.sip.clone(),
            media: p.media.clone(),
            dispatch: p.dispatch.clone(),
            registrations: p.registrations.clone(),
            audit: audit.clone(),
        });
        Self {
            config,
            sip: p.sip,
            media: p.media,
            dispatch: p.dispatch,
            registrations: p.registrations,
            records: p.records,
            metrics: p.metrics,
            live,
            guard_stats: p.guard_stats,
            door: p.door,
            sip_counts: p.sip_counts,
            streams: p.streams,
            tls: p.tls,
            calls,
            features,
            clock: p.clock,
            audit,
            config_path: options.config_path,
            drain_timeout: options.drain_timeout,
            draining: AtomicBool::new(false),
            reload_lock: tokio::sync::Mutex::new(()),
            cancel: p.cancel,
            callbacks,
            callbacks_inbox: parking_lot::Mutex::new(Some(callbacks_inbox)),
            mailer_inbox: parking_lot::Mutex::new(Some(mailer_inbox)),
        }
    }

    /// The current configuration.
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// Digest secrets of an agent, from the current configuration.
    pub fn secrets(&self, user: &str) -> Option<AgentSecrets> {
        let cfg = self.config.load();
        cfg.agent(user).map(|a| AgentSecrets {
            ha1_md5: a.ha1(DigestAlgorithm::Md5).map(str::to_string),
            ha1_sha256: a.ha1(DigestAlgorithm::Sha256).map(str::to_string),
        })
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
            r.record_call(crate::records::rejected(
                sip_call_id,
                practice,
                trunk,
                caller,
                reason,
            ));
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
