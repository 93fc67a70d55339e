//! Bringing up rsipstack: UDP listeners behind the datagram guard, TCP and
//! TLS listeners served by our own accept loops ([`crate::streams`]), the
//! transaction endpoint and the dialog layer.

use crate::admin::SipCounts;
use crate::streams::{self, Kind, StreamFront, StreamSettings};
use crate::tls::TlsServer;
use permanence_metrics::{Metrics, SipMethod};
use permanence_sip::guard::{FrontDoor, GuardStats, GuardedUdpSocket};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::SipMessage;
use rsipstack::transaction::endpoint::EndpointInnerRef;
use rsipstack::transaction::endpoint::{MessageInspector, TransportEventInspector};
use rsipstack::transaction::{Endpoint, EndpointBuilder, TransactionReceiver};
use rsipstack::transport::channel::ChannelConnection;
use rsipstack::transport::udp::UdpConnection;
use rsipstack::transport::TransportLayer;
use rsipstack::transport::{SipAddr, SipConnection, TransportEvent};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// Errors while starting the SIP edge.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// A socket could not be bound.
    #[error("cannot listen on {transport} {addr}: {source}")]
    Bind {
        /// `udp`, `tcp` or `tls`.
        transport: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// rsipstack refused the setup.
    #[error("SIP stack: {0}")]
    Stack(String),
    /// Nothing to listen on.
    #[error("no SIP listener configured")]
    NoListener,
    /// TLS listeners without a usable certificate.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// What the SIP edge listens on and how.
pub struct EdgeSetup<'a> {
    /// UDP sockets.
    pub udp: &'a [SocketAddr],
    /// TCP sockets.
    pub tcp: &'a [SocketAddr],
    /// TLS sockets.
    pub tls: &'a [SocketAddr],
    /// SIP over WebSocket sockets (RFC 7118).
    pub ws: &'a [SocketAddr],
    /// SIP over secure WebSocket sockets.
    pub wss: &'a [SocketAddr],
    /// The certificate of the TLS and WSS sockets (needed when `tls` or
    /// `wss` is not empty).
    pub tls_server: Option<Arc<TlsServer>>,
    /// Connection caps and idle timeout of the TCP and TLS connections.
    pub streams: StreamSettings,
    /// User-Agent / Server header (empty: none).
    pub user_agent: &'a str,
}

/// Counts SIP traffic for metrics: requests reaching the transaction layer
/// and responses we send (by method and code).
struct CountingInspector {
    metrics: Arc<Metrics>,
    counts: Arc<SipCounts>,
    /// Strip the User-Agent / Server headers.
    hide_product: bool,
}

fn method_of(msg: &SipMessage) -> SipMethod {
    match msg {
        SipMessage::Request(r) => SipMethod::parse(&r.method.to_string()),
        SipMessage::Response(r) => r
            .cseq_header()
            .ok()
            .and_then(|c| c.method().ok())
            .map(|m| SipMethod::parse(&m.to_string()))
            .unwrap_or(SipMethod::Other),
    }
}

impl MessageInspector for CountingInspector {
    fn before_send(&self, mut msg: SipMessage, _dest: Option<&SipAddr>) -> SipMessage {
        if let SipMessage::Response(r) = &msg {
            self.metrics
                .sip_response(method_of(&msg), r.status_code.code());
        }
        if self.hide_product {
            // `sip.user_agent = ""`: name no product (rsipstack always
            // writes the header).
            let headers = match &mut msg {
                SipMessage::Request(r) => &mut r.headers,
                SipMessage::Response(r) => &mut r.headers,
            };
            headers.retain(|h| {
                !matches!(
                    h,
                    rsipstack::sip::Header::UserAgent(_) | rsipstack::sip::Header::Server(_)
                )
            });
        }
        msg
    }

    fn after_received(&self, msg: SipMessage, _from: Option<&SipAddr>) -> SipMessage {
        if let SipMessage::Request(r) = &msg {
            if r.method != rsipstack::sip::Method::Ack {
                self.counts
                    .new_requests
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            self.metrics.sip_request(method_of(&msg));
        }
        msg
    }
}

/// Counts every request the transport delivers, retransmissions included.
struct TransportCounter {
    counts: Arc<SipCounts>,
}

#[async_trait::async_trait]
impl TransportEventInspector for TransportCounter {
    async fn handle(&self, event: TransportEvent) -> Option<TransportEvent> {
        if let TransportEvent::Incoming(SipMessage::Request(r), _, _) = &event {
            if r.method != rsipstack::sip::Method::Ack {
                self.counts
                    .raw_requests
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        Some(event)
    }
}

/// The running SIP stack.
pub struct SipEdge {
    /// The transaction endpoint.
    pub endpoint: Endpoint,
    /// The dialog layer on top of it.
    pub dialogs: Arc<DialogLayer>,
    /// What the datagram guard did.
    pub guard_stats: Arc<GuardStats>,
    /// Bound UDP addresses (ports resolved).
    pub udp: Vec<SocketAddr>,
    /// Bound TCP addresses.
    pub tcp: Vec<SocketAddr>,
    /// Bound TLS addresses.
    pub tls: Vec<SocketAddr>,
    /// Bound WebSocket addresses.
    pub ws: Vec<SocketAddr>,
    /// Bound secure WebSocket addresses.
    pub wss: Vec<SocketAddr>,
    /// The TCP, TLS and WebSocket connections.
    pub streams: Arc<StreamFront>,
}

impl SipEdge {
    /// The endpoint's shared core.
    pub fn inner(&self) -> EndpointInnerRef {
        self.endpoint.inner.clone()
    }
}

/// Binds the listeners and builds the endpoint; every UDP datagram, and
/// every message framed on a TCP or TLS connection, goes through `door`
/// (the gate, then the syntax checks) first. The stream listeners accept at
/// once; the endpoint is not served yet: call `endpoint.serve()` in a task,
/// then read the returned receiver.
pub async fn start(
    setup: EdgeSetup<'_>,
    door: Arc<FrontDoor>,
    metrics: Arc<Metrics>,
    counts: Arc<SipCounts>,
    cancel: CancellationToken,
) -> Result<(SipEdge, TransactionReceiver), EdgeError> {
    let EdgeSetup {
        udp,
        tcp,
        tls,
        ws,
        wss,
        tls_server,
        streams: stream_settings,
        user_agent,
    } = setup;
    if udp.is_empty() && tcp.is_empty() && tls.is_empty() {
        return Err(EdgeError::NoListener);
    }
    let transport_layer = TransportLayer::new(cancel.child_token());
    let guard_stats = Arc::new(GuardStats::default());
    let mut bound_udp = Vec::new();
    for addr in udp {
        let socket = tokio::net::UdpSocket::bind(addr)
            .await
            .map_err(|source| EdgeError::Bind {
                transport: "udp",
                addr: *addr,
                source,
            })?;
        let local = socket.local_addr().map_err(|source| EdgeError::Bind {
            transport: "udp",
            addr: *addr,
            source,
        })?;
        bound_udp.push(local);
        // Bursts at high call rates overflow the default receive buffer
        // (net.core.rmem_default, about 208 KiB): ask for 8 MiB (the kernel
        // caps it at net.core.rmem_max; best effort, see deploy/README.md).
        {
            let s = socket2::SockRef::from(&socket);
            if let Err(e) = s.set_recv_buffer_size(8 << 20) {
                warn!(%local, error = %e, "cannot enlarge the SIP receive buffer");
            }
            let _ = s.set_send_buffer_size(4 << 20);
        }
        let guarded = Arc::new(GuardedUdpSocket::new(
            socket,
            guard_stats.clone(),
            door.clone(),
        ));
        let conn = UdpConnection::from_socket(guarded, None, Some(cancel.child_token()))
            .await
            .map_err(|e| EdgeError::Stack(e.to_string()))?;
        transport_layer.add_transport(conn.into());
    }
    // Stream listeners: bound here (a port in use fails startup with a
    // clear error), accepted by our own loops once the endpoint exists.
    let mut listeners = Vec::new();
    let tls_server = match (tls.is_empty() && wss.is_empty(), tls_server) {
        (true, _) => None,
        (false, Some(t)) => Some(t),
        (false, None) => {
            return Err(EdgeError::Stack(
                "TLS listener without a certificate".into(),
            ))
        }
    };
    for (addrs, name) in [(tcp, "tcp"), (tls, "tls"), (ws, "ws"), (wss, "wss")] {
        for addr in addrs {
            let listener = streams::bind(*addr).map_err(|source| EdgeError::Bind {
                transport: name,
                addr: *addr,
                source,
            })?;
            let local = listener.local_addr().map_err(|source| EdgeError::Bind {
                transport: name,
                addr: *addr,
                source,
            })?;
            let kind = match (&tls_server, name) {
                (Some(t), "tls") => Kind::Tls(t.clone()),
                (Some(t), "wss") => Kind::Wss(t.clone()),
                (_, "ws") => Kind::Ws,
                _ => Kind::Tcp,
            };
            // rsipstack picks the Via and Record-Route of a transport among
            // its listeners: announce ours with a channel it never serves
            // (it logs once that it cannot serve it).
            let transport = kind.transport();
            let (_never, idle_rx) = tokio::sync::mpsc::unbounded_channel();
            let (announce_tx, _) = tokio::sync::mpsc::unbounded_channel();
            let announce = ChannelConnection::create_connection(
                idle_rx,
                announce_tx,
                SipAddr {
                    r#type: Some(transport),
                    addr: local.into(),
                },
                None,
            )
            .await
            .map_err(|e| EdgeError::Stack(e.to_string()))?;
            transport_layer.add_transport(SipConnection::Channel(announce));
            listeners.push((listener, kind, local));
        }
    }
    let endpoint = EndpointBuilder::new()
        .with_user_agent(user_agent)
        .with_inspector(Box::new(CountingInspector {
            metrics,
            counts: counts.clone(),
            hide_product: user_agent.is_empty(),
        }))
        .with_transport_inspector(Box::new(TransportCounter { counts }))
        .with_transport_layer(transport_layer)
        .with_cancel_token(cancel.child_token())
        .build();
    let incoming = endpoint
        .incoming_transactions()
        .map_err(|e| EdgeError::Stack(e.to_string()))?;
    let dialogs = Arc::new(DialogLayer::new(endpoint.inner.clone()));
    let front = Arc::new(StreamFront::new(
        stream_settings,
        door.clone(),
        guard_stats.clone(),
    ));
    let (mut bound_tcp, mut bound_tls) = (Vec::new(), Vec::new());
    let (mut bound_ws, mut bound_wss) = (Vec::new(), Vec::new());
    for (listener, kind, local) in listeners {
        match kind {
            Kind::Tcp => bound_tcp.push(local),
            Kind::Tls(_) => bound_tls.push(local),
            Kind::Ws => bound_ws.push(local),
            Kind::Wss(_) => bound_wss.push(local),
        }
        streams::spawn_listener(
            front.clone(),
            listener,
            kind,
            endpoint.inner.clone(),
            cancel.child_token(),
        );
    }
    Ok((
        SipEdge {
            endpoint,
            dialogs,
            guard_stats,
            udp: bound_udp,
            tcp: bound_tcp,
            tls: bound_tls,
            ws: bound_ws,
            wss: bound_wss,
            streams: front,
        },
        incoming,
    ))
}
