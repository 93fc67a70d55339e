//! The caller's side of a forwarded call: rsipstack's server dialog for the
//! carrier's INVITE and the caller's RTP leg. Turns what happens there into
//! the call core's inputs. An agent's outbound call uses it for the agent's
//! INVITE too (the agent is the calling party there); a browser's INVITE
//! (WebRTC offer) is answered by its own WebRTC peer, whose relay socket is
//! the media leg's remote (see `permanence_webrtc`).

use crate::context::CallContext;
use crate::reply;
use permanence_call::Input;
use permanence_media::sdp::{
    build_answer, negotiate, LocalSession, Negotiated, SessionDescription,
};
use permanence_media::{Direction, Leg, MediaError, MediaEvent, RemoteMedia};
use permanence_webrtc::Peer;
use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver, TerminatedReason};
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{Header, StatusCode};
use rsipstack::transaction::Transaction;
use std::net::{IpAddr, SocketAddr};
use tokio::sync::mpsc;
use tracing::{info, warn};

/// The caller's dialog and media.
pub struct Caller {
    dialog: InviteDialog,
    /// The dialog's state changes.
    pub states: DialogStateReceiver,
    invite_task: crate::context::InviteTaskStop,
    /// The caller's RTP leg.
    pub media: Leg,
    /// Its events (DTMF, playback finished, silence, recording verdicts).
    pub media_events: mpsc::Receiver<MediaEvent>,
    session: LocalSession,
    negotiated: Negotiated,
    /// Where the carrier's INVITE came from: RTP is learnt from there or
    /// from the SDP address only.
    signalling_ip: Option<IpAddr>,
    /// A browser caller's WebRTC peer and our answer to its offer.
    browser: Option<Box<Browser>>,
}

/// A browser on the calling side.
struct Browser {
    peer: Peer,
    answer: String,
}

/// The caller's media before the dialog exists.
struct Media {
    leg: Leg,
    events: mpsc::Receiver<MediaEvent>,
    negotiated: Negotiated,
    signalling_ip: Option<IpAddr>,
    browser: Option<Box<Browser>>,
}

/// Opens the caller's media leg; without one the INVITE gets 503 (ports
/// exhausted, counted as overload) or 500, and `None`.
async fn open_media(
    ctx: &CallContext,
    tx: &mut Transaction,
    call_id: &str,
) -> Option<(Leg, mpsc::Receiver<MediaEvent>)> {
    match ctx.media.engine.open_leg() {
        Ok(x) => Some(x),
        Err(e) => {
            warn!(event = "media.unavailable", call_id, error = %e, "cannot open a media leg");
            ctx.metrics
                .sip_rejected(permanence_metrics::SipReject::Overload);
            let code = match e {
                MediaError::PortsExhausted { .. } => StatusCode::ServiceUnavailable,
                _ => StatusCode::ServerInternalError,
            };
            reply(tx, code, vec![]).await;
            None
        }
    }
}

impl Caller {
    /// Takes the carrier's INVITE: negotiates its SDP offer, opens the
    /// caller's media leg and creates the server dialog. On failure the
    /// INVITE is answered here (488, 503, 500) and `None` returned.
    pub async fn take(ctx: &CallContext, mut tx: Box<Transaction>, call_id: &str) -> Option<Self> {
        if std::str::from_utf8(&tx.original.body).is_ok_and(permanence_webrtc::is_webrtc_offer) {
            return Box::pin(Self::take_browser(ctx, tx, call_id)).await;
        }
        // A carrier always sends an offer (late offer is not supported).
        let offer = std::str::from_utf8(&tx.original.body)
            .map_err(|_| permanence_media::sdp::SdpError::NoAudio)
            .and_then(SessionDescription::parse);
        let negotiated = match offer.and_then(|o| negotiate(&o)) {
            Ok(n) => n,
            Err(e) => {
                info!(event = "invite.bad_sdp", call_id, error = %e, "unusable SDP offer");
                reply(&mut tx, StatusCode::from(e.sip_status()), vec![]).await;
                return None;
            }
        };
        let signalling_ip = crate::signalling_ip(&tx);
        let (media, media_events) = open_media(ctx, &mut tx, call_id).await?;
        let media = Media {
            leg: media,
            events: media_events,
            negotiated,
            signalling_ip,
            browser: None,
        };
        Self::with_dialog(ctx, tx, call_id, media).await
    }

    /// Takes a browser's INVITE: its WebRTC offer is answered by a new
    /// peer relaying to the media leg (488 if that fails).
    async fn take_browser(
        ctx: &CallContext,
        mut tx: Box<Transaction>,
        call_id: &str,
    ) -> Option<Self> {
        let (media, media_events) = open_media(ctx, &mut tx, call_id).await?;
        let offer = String::from_utf8_lossy(&tx.original.body).into_owned();
        let at = SocketAddr::new(media.local_addr().ip(), media.port());
        let (peer, answer) = match Peer::answer(ctx.sip.webrtc, at, &offer).await {
            Ok(x) => x,
            Err(e) => {
                info!(event = "invite.bad_sdp", call_id, error = %e, "unusable WebRTC offer");
                reply(&mut tx, StatusCode::NotAcceptableHere, vec![]).await;
                media.close().await;
                return None;
            }
        };
        let relay = peer.relay_addr();
        let media = Media {
            leg: media,
            events: media_events,
            negotiated: relay_negotiated(relay),
            signalling_ip: Some(relay.ip()),
            browser: Some(Box::new(Browser { peer, answer })),
        };
        Self::with_dialog(ctx, tx, call_id, media).await
    }

    /// Creates the server dialog of the INVITE around the caller's media;
    /// on failure the INVITE gets 500 and the media is closed.
    async fn with_dialog(
        ctx: &CallContext,
        tx: Box<Transaction>,
        call_id: &str,
        m: Media,
    ) -> Option<Self> {
        let sd = match ctx.sip.server_dialog(*tx) {
            Ok(sd) => sd,
            Err(boxed) => {
                let (mut tx, e) = *boxed;
                warn!(call_id, error = %e, "cannot create dialog");
                reply(&mut tx, StatusCode::ServerInternalError, vec![]).await;
                m.leg.close().await;
                if let Some(b) = m.browser {
                    b.peer.close().await;
                }
                return None;
            }
        };
        Some(Self {
            dialog: sd.dialog,
            states: sd.states,
            invite_task: sd.stop,
            media: m.leg,
            media_events: m.events,
            session: LocalSession::new(ctx.media.advertise),
            negotiated: m.negotiated,
            signalling_ip: m.signalling_ip,
            browser: m.browser,
        })
    }

    /// Resolves when a browser caller's media is gone (tab closed, network
    /// lost); never for a SIP caller.
    pub fn browser_gone(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let signal = self.browser.as_ref().map(|b| b.peer.gone_signal());
        async move {
            match signal {
                Some(s) => s.await,
                None => std::future::pending().await,
            }
        }
    }

    /// The codec negotiated with the carrier.
    pub fn codec(&self) -> permanence_media::Codec {
        self.negotiated.codec
    }

    /// Whether the caller's media is SRTP (the carrier offered SDES keys).
    pub fn srtp(&self) -> bool {
        self.negotiated.srtp.is_some()
    }

    /// Sends `180 Ringing`.
    pub fn ringing(&self) {
        if let Err(e) = self.dialog.ringing(None, None) {
            tracing::debug!(error = %e, "could not send 180");
        }
    }

    /// Sends `183 Session Progress` with our SDP and starts sending media
    /// (early media: a prompt before a failure status). False if either
    /// failed.
    pub fn early_media(&mut self) -> bool {
        let sdp = self.answer_sdp();
        self.media.set_remote(self.remote(&self.negotiated)).is_ok()
            && self
                .dialog
                .ringing(
                    Some(vec![Header::ContentType("application/sdp".into())]),
                    Some(sdp.into_bytes()),
                )
                .is_ok()
    }

    /// Refuses the INVITE with a final failure `status` (nothing happens
    /// once it is answered or over).
    pub fn reject(&self, status: u16) {
        if let Err(e) = self.dialog.reject(Some(StatusCode::from(status)), None) {
            tracing::debug!(error = %e, status, "could not send the final status");
        }
    }

    fn answer_sdp(&mut self) -> String {
        if let Some(b) = &self.browser {
            return b.answer.clone();
        }
        build_answer(
            &mut self.session,
            self.media.port(),
            &self.negotiated,
            Direction::SendRecv,
            &self.media.srtp_key(),
        )
    }

    /// Answers (200 OK with our SDP) and starts sending media to the
    /// caller. False if either failed.
    pub fn answer(&mut self) -> bool {
        let headers = vec![
            Header::ContentType("application/sdp".into()),
            Header::Allow(crate::ALLOW.into()),
        ];
        let sdp = self.answer_sdp();
        self.media.set_remote(self.remote(&self.negotiated)).is_ok()
            && self
                .dialog
                .accept(Some(headers), Some(sdp.into_bytes()))
                .is_ok()
    }

    /// The caller's media as negotiated, with the INVITE's source.
    fn remote(&self, n: &Negotiated) -> RemoteMedia {
        RemoteMedia::from(n).with_signalling(self.signalling_ip)
    }

    /// Sends BYE.
    pub async fn hang_up(&self) {
        if let Err(e) = self.dialog.bye().await {
            tracing::debug!(error = %e, "BYE to caller failed");
        }
    }

    /// Handles a state change of the caller's dialog; returns the input it
    /// means for the call core, if any. In-dialog requests are answered
    /// here.
    pub async fn on_dialog(&mut self, state: Option<DialogState>) -> Option<Input> {
        let Some(state) = state else {
            return Some(Input::DriverFailure);
        };
        match state {
            DialogState::Terminated(_, reason) => match reason {
                TerminatedReason::UacCancel => Some(Input::CallerCancel),
                TerminatedReason::UacBye => Some(Input::CallerBye),
                TerminatedReason::UasBye => None,
                _ => Some(Input::DriverFailure),
            },
            DialogState::Info(_, req, handle) => {
                let _ = handle.reply(StatusCode::OK).await;
                info_digit(&req.body).map(Input::Dtmf)
            }
            DialogState::Updated(_, req, handle) => {
                let (code, body) = match &self.browser {
                    Some(b) => browser_reinvite(&b.peer, &req.body).await,
                    None => self.reinvite(&req.body),
                };
                let _ = match body {
                    Some(b) => {
                        handle
                            .respond(
                                code,
                                Some(vec![Header::ContentType("application/sdp".into())]),
                                Some(b.into_bytes()),
                            )
                            .await
                    }
                    None => handle.reply(code).await,
                };
                None
            }
            DialogState::Options(_, _, handle)
            | DialogState::Message(_, _, handle)
            | DialogState::Notify(_, _, handle) => {
                let _ = handle.reply(StatusCode::OK).await;
                None
            }
            DialogState::Refer(_, _, handle) => {
                let _ = handle.reply(StatusCode::NotImplemented).await;
                None
            }
            _ => None,
        }
    }

    /// The caller's re-INVITE or UPDATE (session refresh, codec change):
    /// answer with our port and follow their address. Without a body our
    /// current SDP is offered again.
    fn reinvite(&mut self, body: &[u8]) -> (StatusCode, Option<String>) {
        let offered = std::str::from_utf8(body)
            .ok()
            .and_then(|s| SessionDescription::parse(s).ok())
            .and_then(|sd| negotiate(&sd).ok());
        let port = self.media.port();
        let key = self.media.srtp_key();
        match offered {
            Some(n) => {
                let sdp = build_answer(&mut self.session, port, &n, Direction::SendRecv, &key);
                let _ = self.media.set_remote(self.remote(&n));
                (StatusCode::OK, Some(sdp))
            }
            None if body.is_empty() => {
                let sdp = build_answer(
                    &mut self.session,
                    port,
                    &self.negotiated,
                    Direction::SendRecv,
                    &key,
                );
                (StatusCode::OK, Some(sdp))
            }
            None => (StatusCode::NotAcceptableHere, None),
        }
    }

    /// Releases the dialog, the media leg, the browser's peer and the
    /// INVITE task.
    pub async fn close(self, ctx: &CallContext) {
        self.media.close().await;
        if let Some(b) = self.browser {
            b.peer.close().await;
        }
        ctx.sip.dialogs.remove_dialog(&self.dialog.id());
        self.invite_task.stop();
    }
}

/// The media leg's view of a browser: its peer's relay socket, PCMU, DTMF.
fn relay_negotiated(relay: SocketAddr) -> Negotiated {
    Negotiated {
        codec: permanence_media::Codec::Pcmu,
        payload_type: permanence_webrtc::PCMU,
        dtmf_payload_type: Some(permanence_webrtc::TELEPHONE_EVENT),
        remote: Some(relay),
        remote_direction: Direction::SendRecv,
        ptime: None,
        origin: None,
        profile: permanence_media::sdp::Profile::Avp,
        srtp: None,
    }
}

/// A browser caller's re-INVITE (hold, resume, ICE restart): answered by
/// its peer; without a body, our last answer is repeated by the peer.
async fn browser_reinvite(peer: &Peer, body: &[u8]) -> (StatusCode, Option<String>) {
    let offer = std::str::from_utf8(body).unwrap_or("");
    if offer.trim().is_empty() {
        return (StatusCode::OK, None);
    }
    match peer.answer_offer(offer).await {
        Ok(answer) => (StatusCode::OK, Some(answer)),
        Err(e) => {
            info!(error = %e, "browser re-INVITE refused");
            (StatusCode::NotAcceptableHere, None)
        }
    }
}

/// Parses a SIP INFO DTMF body (`application/dtmf-relay`: `Signal=5`, or
/// `application/dtmf`: `5`).
pub fn info_digit(body: &[u8]) -> Option<char> {
    let text = std::str::from_utf8(body).ok()?;
    let value = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then_some(v.trim())
        })
        .unwrap_or(text.trim());
    let c = value.chars().next()?;
    (value.chars().count() == 1 && (c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D')))
        .then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_bodies() {
        assert_eq!(info_digit(b"Signal=5\r\nDuration=160\r\n"), Some('5'));
        assert_eq!(info_digit(b"Signal= #\r\n"), Some('#'));
        assert_eq!(info_digit(b"1"), Some('1'));
        assert_eq!(info_digit(b"Signal=55"), None);
        assert_eq!(info_digit(b""), None);
        assert_eq!(info_digit(&[0xff, 0xfe]), None);
    }
}
