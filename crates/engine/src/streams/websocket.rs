//! SIP over WebSocket (RFC 7118): browser softphones (the web console) and
//! any WebRTC SIP client (JsSIP, SIP.js) register and take calls here.
//!
//! The connection is admitted like a TCP or TLS one (same caps, bans and
//! idle timeout; a WebSocket peer is never trusted, even from a trunk's
//! address), then:
//!
//! - the opening handshake must ask for the `sip` subprotocol (RFC 7118
//!   §4), else it is refused with 400; messages are capped at 64 KiB;
//! - each WebSocket message (text or binary) is one SIP message, judged by
//!   the same [`FrontDoor`](permanence_sip::guard::FrontDoor) as a datagram
//!   (gate, syntax, stateless answers) and handed to rsipstack as a
//!   connection with the `WS`/`WSS` transport;
//! - what rsipstack sends on the connection goes out as one text message
//!   (binary if it is not UTF-8);
//! - browsers send no keep-alive of their own: a ping every
//!   [`PING_EVERY`] makes their pong count as activity, so an open but
//!   idle console stays connected while a vanished one is closed after the
//!   idle timeout.

use super::{Conn, End, WRITE_TIMEOUT};
use futures_util::{SinkExt, StreamExt};
use permanence_sip::guard::Judged;
use rsipstack::transport::{SipAddr, TransportEvent};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tracing::debug;

/// A ping this often keeps a live browser's connection active.
pub(crate) const PING_EVERY: Duration = Duration::from_secs(30);
/// Largest SIP message accepted over a WebSocket.
const MAX_MESSAGE: usize = 64 * 1024;
/// The opening handshake must be done within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether a `Sec-WebSocket-Protocol` header value offers `sip`.
fn offers_sip(value: &str) -> bool {
    value
        .split(',')
        .any(|p| p.trim().eq_ignore_ascii_case("sip"))
}

/// The handshake callback: the `sip` subprotocol or 400.
#[allow(clippy::result_large_err)] // the signature tungstenite asks for
fn choose_sip(req: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
    let offered = req
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(offers_sip);
    if !offered {
        let mut refusal = ErrorResponse::new(Some(
            "SIP over WebSocket needs the 'sip' subprotocol".into(),
        ));
        *refusal.status_mut() = StatusCode::BAD_REQUEST;
        return Err(refusal);
    }
    resp.headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static("sip"));
    Ok(resp)
}

/// Messages capped; a 4 KiB read buffer (tungstenite's default of 128 KiB
/// per connection made each idle browser cost 155 KiB: benches/README.md,
/// "WebRTC agents").
fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
        .read_buffer_size(4 * 1024)
}

impl Conn {
    /// Serves a WebSocket connection until it closes, then releases its
    /// place.
    pub(crate) async fn serve_ws<S>(self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let handshake =
            tokio_tungstenite::accept_hdr_async_with_config(stream, choose_sip, Some(config()));
        let end = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
            Ok(Ok(ws)) => self.run_ws(ws).await,
            Ok(Err(e)) => {
                debug!(peer = %self.peer, error = %e, "WebSocket handshake refused");
                End::Handshake
            }
            Err(_) => End::Handshake,
        };
        self.finish(end);
    }

    async fn run_ws<S>(&self, mut ws: WebSocketStream<S>) -> End
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let remote = SipAddr {
            r#type: Some(self.transport),
            addr: self.peer.into(),
        };
        let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel::<TransportEvent>();
        let mut handover = None;
        let mut deadline = Instant::now() + self.front.idle();
        let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
        let end = loop {
            tokio::select! {
                _ = self.cancel.cancelled() => break End::Cancelled,
                _ = tokio::time::sleep_until(deadline) => break End::Idle,
                _ = ping.tick() => {
                    if !send(&mut ws, Message::Ping(Default::default())).await {
                        break End::Io;
                    }
                }
                ev = out_rx.recv() => {
                    let Some(TransportEvent::Incoming(msg, _, _)) = ev else { continue };
                    if !send(&mut ws, as_message(msg.to_bytes())).await {
                        break End::Io;
                    }
                }
                m = ws.next() => {
                    let data = match m {
                        None | Some(Ok(Message::Close(_))) => break End::Closed,
                        Some(Err(e)) => {
                            debug!(peer = %self.peer, error = %e, "WebSocket error: closing");
                            break End::Framing;
                        }
                        Some(Ok(Message::Text(t))) => t.as_bytes().to_vec(),
                        Some(Ok(Message::Binary(b))) => b.to_vec(),
                        Some(Ok(_)) => {
                            // Ping (answered by tungstenite at the next
                            // write: flushed here), pong.
                            let _ = ws.flush().await;
                            deadline = Instant::now() + self.front.idle();
                            continue;
                        }
                    };
                    deadline = Instant::now() + self.front.idle();
                    match self.on_ws_message(&data, &mut handover, &remote, &out_tx).await {
                        Ok(Some(reply)) => {
                            if !send(&mut ws, as_message(reply)).await {
                                break End::Io;
                            }
                        }
                        Ok(None) => {}
                        Err(end) => break end,
                    }
                }
            }
        };
        drop(handover);
        let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
        end
    }

    /// One SIP message from the browser: handed over, answered (the
    /// reply comes back), or dropped.
    async fn on_ws_message(
        &self,
        data: &[u8],
        handover: &mut Option<super::Handover>,
        remote: &SipAddr,
        out_tx: &tokio::sync::mpsc::UnboundedSender<TransportEvent>,
    ) -> Result<Option<Vec<u8>>, End> {
        if data.iter().all(u8::is_ascii_whitespace) {
            // A CRLF keep-alive (RFC 5626 style), sent by some clients.
            return Ok(None);
        }
        match self.front.door.judge(data, self.peer, &self.front.guard) {
            Judged::Pass => {
                self.pass(data, handover, remote, out_tx).await;
                Ok(None)
            }
            Judged::Respond(r) => Ok(Some(r)),
            Judged::Nothing if self.front.door.is_banned(self.peer.ip()) => Err(End::Banned),
            Judged::Nothing => Ok(None),
        }
    }
}

/// A SIP message as a WebSocket message: text when it is UTF-8.
fn as_message(bytes: Vec<u8>) -> Message {
    match String::from_utf8(bytes) {
        Ok(text) => Message::text(text),
        Err(e) => Message::binary(e.into_bytes()),
    }
}

/// Sends one message; false if the peer is gone or does not read.
async fn send<S>(ws: &mut WebSocketStream<S>, msg: Message) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, ws.send(msg)).await,
        Ok(Ok(()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sip_subprotocol_is_found_among_others() {
        assert!(offers_sip("sip"));
        assert!(offers_sip("chat, SIP"));
        assert!(!offers_sip("sips"));
        assert!(!offers_sip(""));
    }

    #[test]
    fn handshake_without_sip_is_refused() {
        let req = Request::builder()
            .uri("/")
            .header("sec-websocket-protocol", "chat")
            .body(())
            .unwrap();
        let refused = choose_sip(&req, Response::new(())).unwrap_err();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        let req = Request::builder()
            .uri("/")
            .header("sec-websocket-protocol", "sip")
            .body(())
            .unwrap();
        let ok = choose_sip(&req, Response::new(())).unwrap();
        assert_eq!(ok.headers()["sec-websocket-protocol"], "sip");
    }

    #[test]
    fn non_utf8_goes_binary() {
        assert!(matches!(as_message(b"OPTIONS".to_vec()), Message::Text(_)));
        assert!(matches!(as_message(vec![0xff, 0xfe]), Message::Binary(_)));
    }
}
