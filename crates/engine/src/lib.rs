//! The engine: thin tokio drivers around the sans-IO cores.
//!
//! Where things are:
//!
//! - [`startup`] starts and stops the engine ([`Engine`]), [`reload`]
//!   re-reads the configuration, `routing` sends each new SIP transaction
//!   where it belongs; [`switch`] is the running engine as a whole, which
//!   only those three and [`admin`] see;
//! - [`context`]: what each driver gets ([`context::SipContext`] for legs,
//!   [`context::CallContext`] for calls, [`context::FeatureContext`] for
//!   feature codes);
//! - [`call`]: the driver of one forwarded call ([`call::CallDriver`]:
//!   the caller's side, the far side, actions, the call record);
//! - [`leg`]: an outgoing INVITE (to an agent's contacts or a number) and
//!   its dialog; [`features`]: agent feature codes;
//! - [`dispatch`] drives the dispatcher core, [`registrations`] the
//!   registrar core; [`edge`] brings up rsipstack, [`streams`] accepts
//!   and checks TCP and TLS connections, [`tls`] holds the certificate;
//! - [`audit`]: the audit trail of admin and agent actions;
//! - [`media`]: the RTP engine and practice prompts; [`live`]: the view of
//!   calls in progress; [`records`]: the queue log and refused-call
//!   records; [`acd_map`]: configuration to dispatcher configuration;
//! - [`clock`]: engine time (monotonic) for every timer, the wall clock for
//!   calendars and records only.

#![forbid(unsafe_code)]

pub mod acd_map;
pub mod activity;
pub mod admin;
pub mod audit;
pub mod call;
pub mod callbacks;
pub mod clock;
pub mod console;
pub mod context;
pub mod dispatch;
pub mod edge;
pub mod features;
pub mod leg;
pub mod live;
pub mod mailer;
pub mod media;
pub mod outbound;
pub mod records;
pub mod registrations;
mod reload;
mod routing;
pub mod startup;
pub mod streams;
pub mod switch;
pub mod tls;

pub use edge::EdgeError;
pub use reload::reload;
pub use startup::{Engine, EngineError, EngineOptions};
pub use switch::Switch;

use rsipstack::sip::{Header, StatusCode};
use rsipstack::transaction::Transaction;

/// Methods we answer (Allow header).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REGISTER, UPDATE";

/// Where a transaction's request came from (its connection's remote
/// address).
pub(crate) fn source_of(tx: &Transaction) -> Option<std::net::SocketAddr> {
    tx.connection
        .as_ref()
        .and_then(|c| c.get_remote_addr())
        .and_then(|a| a.get_socketaddr().ok())
}

/// The IP a transaction's request came from: the peer's signalling source,
/// from which its RTP is also accepted (see `permanence_media::source`).
pub(crate) fn signalling_ip(tx: &Transaction) -> Option<std::net::IpAddr> {
    source_of(tx).map(|a| a.ip())
}

/// Answers a transaction; a failure to send is only logged (the peer
/// retransmits or gives up). rsipstack's send future (about 2 KB) is boxed
/// for the time of the send: inline, it would size every task that may
/// reply, for the whole life of a call.
pub(crate) async fn reply(tx: &mut Transaction, code: StatusCode, headers: Vec<Header>) {
    if let Err(e) = Box::pin(tx.reply_with(code, headers, None)).await {
        tracing::debug!(error = %e, "could not send response");
    }
}
