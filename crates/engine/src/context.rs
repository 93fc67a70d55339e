//! What each driver is given: narrow contexts instead of the whole engine.
//!
//! - [`SipContext`]: the transaction endpoint, the dialog layer and our
//!   Contact; what every SIP leg needs (outgoing legs get only this and
//!   the media context);
//! - [`CallContext`]: what a forwarded call's driver uses (configuration
//!   snapshot, media, dispatcher, registered contacts, records, metrics,
//!   the live-call view, the clock);
//! - [`FeatureContext`]: what an agent's own call (feature codes) uses:
//!   the registrar and dispatcher handles, media and SIP.
//!
//! The engine as a whole ([`crate::Switch`]) is only seen by startup,
//! reload, SIP routing and the admin side.

use crate::clock::Clock;
use crate::dispatch::DispatchHandle;
use crate::live::LiveCalls;
use crate::media::MediaContext;
use crate::registrations::Registrations;
use arc_swap::ArcSwap;
use permanence_config::Config;
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::transaction::endpoint::EndpointInnerRef;
use rsipstack::transaction::Transaction;
use std::sync::Arc;
use std::time::Duration;
use tracing::debug;

/// The SIP stack as a leg sees it.
pub struct SipContext {
    /// The transaction endpoint.
    pub endpoint: EndpointInnerRef,
    /// The dialog layer.
    pub dialogs: Arc<DialogLayer>,
    /// Host written in our Contact headers.
    pub contact_host: String,
    /// Port written in our Contact headers (first UDP listener).
    pub contact_port: u16,
    /// Port of the first TCP listener, if any.
    pub tcp_port: Option<u16>,
    /// Port of the first TLS listener, if any.
    pub tls_port: Option<u16>,
    /// Port of the first WebSocket listener, if any.
    pub ws_port: Option<u16>,
    /// Port of the first secure WebSocket listener, if any.
    pub wss_port: Option<u16>,
    /// Where the WebRTC peers of browser agents open their sockets.
    pub webrtc: permanence_webrtc::WebRtcSettings,
}

impl SipContext {
    /// Our Contact URI (`sip:permanence@host:port`).
    pub fn contact(&self) -> String {
        self.uri_for("permanence")
    }

    /// Our Contact URI for a request sent over `transport`: the port of
    /// that transport's listener and a `transport` parameter, so that the
    /// peer's in-dialog requests come back over it.
    pub fn contact_over(&self, transport: permanence_types::Transport) -> String {
        use permanence_types::Transport;
        let with = |port: Option<u16>, t: &str| match port {
            Some(p) => format!("sip:permanence@{}:{p};transport={t}", self.contact_host),
            None => self.contact(),
        };
        match transport {
            Transport::Udp => self.contact(),
            Transport::Tcp => with(self.tcp_port, "tcp"),
            Transport::Tls => with(self.tls_port, "tls"),
            Transport::Ws => with(self.ws_port, "ws"),
            Transport::Wss => with(self.wss_port, "wss"),
        }
    }

    /// A SIP URI with `user` at our host and port (the From of the calls
    /// we place).
    pub fn uri_for(&self, user: &str) -> String {
        format!("sip:{user}@{}:{}", self.contact_host, self.contact_port)
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
                let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                // No JoinHandle is kept: a task's memory (its ~6 KB future)
                // is freed only once it has ended *and* its handle is gone,
                // and this one ends with the ACK, long before the call.
                tokio::spawn(async move {
                    tokio::select! {
                        r = handler.handle(&mut tx) => if let Err(e) = r {
                            debug!(error = %e, "INVITE transaction ended with an error");
                        },
                        _ = stopped => {}
                    }
                });
                Ok(ServerDialog {
                    dialog,
                    states,
                    stop: InviteTaskStop(stop),
                })
            }
            Err(e) => Err(Box::new((tx, e.to_string()))),
        }
    }
}

/// The server side of an incoming INVITE.
pub struct ServerDialog {
    /// The dialog (accept, reject, bye).
    pub dialog: rsipstack::dialog::invite_dialog::InviteDialog,
    /// Its state changes (confirmed, terminated, in-dialog requests).
    pub states: rsipstack::dialog::dialog::DialogStateReceiver,
    /// Ends the task driving the INVITE transaction, if it still runs.
    pub stop: InviteTaskStop,
}

/// Stops the task driving an incoming INVITE's transaction (when the call
/// ends before the transaction does); dropping it does the same.
#[derive(Debug)]
pub struct InviteTaskStop(tokio::sync::oneshot::Sender<()>);

impl InviteTaskStop {
    /// Ends the task now (nothing happens if it has ended already).
    pub fn stop(self) {
        let _ = self.0.send(());
    }
}

/// Call-level settings from the command line.
#[derive(Debug, Clone)]
pub struct CallOptions {
    /// Delay between `180 Ringing` and the answer of a forwarded call.
    pub answer_delay: Duration,
    /// Longest call.
    pub max_call: Duration,
}

/// What the driver of a forwarded call uses.
pub struct CallContext {
    /// The configuration snapshot (replaced by reloads).
    pub config: Arc<ArcSwap<Config>>,
    /// SIP.
    pub sip: Arc<SipContext>,
    /// Media legs and prompts.
    pub media: Arc<MediaContext>,
    /// The dispatcher task.
    pub dispatch: DispatchHandle,
    /// Registered contacts (where to ring an agent).
    pub registrations: Arc<Registrations>,
    /// The call records store, if open.
    pub records: Option<permanence_records::RecorderHandle>,
    /// Prometheus metrics.
    pub metrics: Arc<permanence_metrics::Metrics>,
    /// Calls in progress (admin API).
    pub live: Arc<LiveCalls>,
    /// Settings.
    pub options: CallOptions,
    /// Engine time and the wall clock.
    pub clock: Clock,
    /// The agents' recent practices and outbound calls in progress.
    pub activity: Arc<crate::activity::AgentActivity>,
    /// Callback requests (the callbacks task).
    pub callbacks: crate::callbacks::CallbackHandle,
    /// Recorded voicemail messages, to be e-mailed (the mailer task).
    pub mailer: crate::mailer::MailerHandle,
}

/// What an agent's own call (a feature code) uses.
pub struct FeatureContext {
    /// SIP.
    pub sip: Arc<SipContext>,
    /// Media legs and prompts.
    pub media: Arc<MediaContext>,
    /// The dispatcher task (agent state changes).
    pub dispatch: DispatchHandle,
    /// The registrar (the agent's contacts).
    pub registrations: Arc<Registrations>,
    /// Agents' own actions are audited.
    pub audit: crate::audit::AuditLog,
}
