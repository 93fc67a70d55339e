//! The browser forks of a leg: their WebRTC peer, its answer, its
//! re-INVITEs, its disappearance.

use super::{LegEvent, LegTask};
use permanence_call::OfferFailure;
use permanence_media::{Codec, RemoteMedia};
use permanence_webrtc::{audio_direction, Peer, TELEPHONE_EVENT};
use rsipstack::dialog::dialog::{DialogStateReceiver, TransactionHandle};
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{Header, StatusCode};
use std::net::SocketAddr;
use tracing::{info, warn};

/// Resolves when `peer`'s browser is gone; never without a peer.
pub(super) async fn gone(peer: Option<&Peer>) {
    match peer {
        Some(p) => p.gone().await,
        None => std::future::pending().await,
    }
}

/// The media leg's view of the browser: the relay socket, PCMU, DTMF.
fn relay_remote(peer: &Peer) -> RemoteMedia {
    let relay = peer.relay_addr();
    RemoteMedia::new(relay, Codec::Pcmu)
        .with_dtmf(TELEPHONE_EVENT)
        .with_signalling(Some(relay.ip()))
}

impl LegTask {
    /// A new peer for a browser fork and its offer; nothing if the WebRTC
    /// side cannot start (logged: the fork is skipped).
    pub(super) async fn browser_offer(&self) -> (Option<Peer>, Option<String>) {
        let media = SocketAddr::new(self.req.local_ip, self.req.local_port);
        match Peer::offer(self.sip.webrtc, media).await {
            Ok((peer, sdp)) => (Some(peer), Some(sdp)),
            Err(e) => {
                warn!(tag = %self.tag, error = %e, "cannot offer WebRTC to a browser");
                (None, None)
            }
        }
    }

    /// A browser answered: its answer goes to its peer, the call hears it
    /// through the relay, until either side ends.
    pub(super) async fn browser_answered(
        &mut self,
        win: &InviteDialog,
        peer: Peer,
        answer: &[u8],
        states: &mut DialogStateReceiver,
    ) {
        let accepted = match std::str::from_utf8(answer) {
            Ok(sdp) => peer.accept_answer(sdp).await,
            Err(_) => Err(permanence_webrtc::WebRtcError::Stack(
                "SDP not UTF-8".into(),
            )),
        };
        if let Err(e) = accepted {
            info!(tag = %self.tag, error = %e, "browser answer refused: hanging up");
            let _ = Box::pin(win.bye()).await;
            self.send(LegEvent::Failed {
                reason: OfferFailure::Rejected,
                status: Some(488),
            });
            peer.close().await;
            self.sip.dialogs.remove_dialog(&win.id());
            return;
        }
        info!(
            event = "leg.answered",
            tag = %self.tag,
            transport = "WS",
            srtp = "dtls",
            "browser answered (WebRTC)"
        );
        self.send(LegEvent::Answered(Box::new(relay_remote(&peer))));
        self.talk(win, states, Some(&peer)).await;
        self.sip.dialogs.remove_dialog(&win.id());
        peer.close().await;
    }

    /// A re-INVITE of the browser (hold, resume): answered by its peer.
    pub(super) async fn browser_reoffer(
        &self,
        peer: &Peer,
        request: &rsipstack::sip::Request,
        handle: TransactionHandle,
    ) {
        let offer = std::str::from_utf8(&request.body).unwrap_or("");
        if offer.trim().is_empty() {
            // A re-INVITE without SDP (session refresh): nothing changes.
            let _ = handle.reply(StatusCode::OK).await;
            return;
        }
        match peer.answer_offer(offer).await {
            Ok(answer) => {
                let _ = handle
                    .respond(
                        StatusCode::OK,
                        Some(vec![Header::ContentType("application/sdp".into())]),
                        Some(answer.into_bytes()),
                    )
                    .await;
                let remote = Box::new(relay_remote(peer));
                self.send(match audio_direction(offer).is_hold() {
                    true => LegEvent::Hold(remote),
                    false => LegEvent::Unhold(remote),
                });
            }
            Err(e) => {
                info!(tag = %self.tag, error = %e, "browser re-INVITE refused");
                let _ = handle.reply(StatusCode::NotAcceptableHere).await;
            }
        }
    }
}
