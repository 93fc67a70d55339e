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
use tokio::task::JoinHandle;
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
