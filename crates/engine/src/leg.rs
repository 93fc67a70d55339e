//! The outgoing leg of a call: an INVITE to a telesecretary's registered
//! contacts (forked to all of them, first answer wins) or to a number
//! through an outbound trunk. The leg runs in its own task and talks to the
//! call task through channels; media is owned by the call task.
//!
//! SRTP: each target gets the plain offer, or the `RTP/SAVP` one when the
//! agent's [`SrtpPolicy`] offers SRTP over the target's transport (TLS
//! only). With `offer`, a target refusing the SRTP offer with 488 is
//! invited again with the plain one; with `require`, an answer or a
//! re-INVITE without SRTP ends the leg or is refused.
//!
//! WebRTC: a target registered over WebSocket (a browser) gets the offer of
//! its own [`Peer`] instead (ICE, DTLS-SRTP; see `permanence_webrtc`). Once
//! it answers, the call's media leg sends to and hears from the peer's relay
//! socket, as from any softphone; the browser's re-INVITEs (hold, resume)
//! are answered by the peer; a browser gone without a BYE (tab closed,
//! network lost) ends the leg.

use crate::context::SipContext;
use permanence_call::OfferFailure;
use permanence_media::sdp::{
    build_answer, negotiate, LocalSession, Negotiated, SessionDescription, OFFER_CRYPTO_TAG,
    OFFER_SUITE,
};
use permanence_media::srtp::MasterKey;
use permanence_media::{Direction, RemoteMedia};
use permanence_types::{SrtpPolicy, Transport};
use permanence_webrtc::Peer;
use rsipstack::dialog::dialog::DialogState;
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{Header, StatusCode};
use rsipstack::transport::SipAddr;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// One destination of the INVITE.
#[derive(Debug, Clone)]
pub struct Target {
    /// Request-URI.
    pub uri: String,
    /// Where to send it.
    pub destination: SocketAddr,
    /// How.
    pub transport: Transport,
}

/// What the INVITE says about the call. `Debug` leaves out the SDP
/// offers (the SRTP one holds our key).
#[derive(Clone)]
pub struct LegRequest {
    /// Display name in From (the practice the call is for).
    pub display_name: String,
    /// User part of From (the caller's number, or `anonymous`).
    pub caller_user: String,
    /// Extra headers (practice id, triage, wait, Call-Info).
    pub headers: Vec<Header>,
    /// Our plain SDP offer (`RTP/AVP`).
    pub sdp_offer: String,
    /// Our SRTP offer (`RTP/SAVP` with [`LegRequest::srtp_key`]), for the
    /// targets `srtp` offers SRTP to.
    pub sdp_offer_srtp: Option<String>,
    /// Who is offered SRTP, and whether plain RTP is acceptable.
    pub srtp: SrtpPolicy,
    /// The media leg's SRTP key (to answer re-INVITEs).
    pub srtp_key: MasterKey,
    /// The media leg's local port (to answer re-INVITEs).
    pub local_port: u16,
    /// Our SDP session (its `o=` line goes on in answers to re-INVITEs).
    pub session: LocalSession,
    /// The media leg's IP (where a browser target's relay sends).
    pub local_ip: IpAddr,
}

impl std::fmt::Debug for LegRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegRequest")
            .field("display_name", &self.display_name)
            .field("srtp", &self.srtp)
            .field("local_port", &self.local_port)
            .finish_non_exhaustive()
    }
}

impl LegRequest {
    /// Whether `target` gets the SRTP offer.
    fn srtp_for(&self, target: &Target) -> bool {
        self.sdp_offer_srtp.is_some() && self.srtp.offers_srtp(target.transport)
    }
}

/// News from the leg.
///
/// The media descriptions are boxed: a channel allocates 32 slots at once,
/// so the largest variant sets what each leg's event channel costs (92
/// bytes a slot inline, 3 KB per leg).
#[derive(Debug)]
pub enum LegEvent {
    /// 180/183 received.
    Ringing,
    /// Answered; send media there.
    Answered(Box<RemoteMedia>),
    /// Every fork failed: the most telling failure, with the final status
    /// it came with (`None`: no response, or nothing could be sent).
    Failed {
        /// As the dispatcher counts it.
        reason: OfferFailure,
        /// The SIP status (an outbound call relays it to the agent).
        status: Option<u16>,
    },
    /// The far end hung up after answering.
    Bye,
    /// The far end vanished after answering without hanging up: a
    /// browser's WebRTC media is gone (tab closed, network lost).
    Lost,
    /// The far end put the call on hold (re-INVITE sendonly/inactive),
    /// with its media as now negotiated.
    Hold(Box<RemoteMedia>),
    /// The far end resumed (re-INVITE sendrecv), maybe with a new address.
    Unhold(Box<RemoteMedia>),
    /// The far end asks to transfer the call (REFER, RFC 3515): the
    /// driver answers through the request (202 or 403 follows).
    Refer(Box<ReferRequest>),
}

/// A REFER of the far end, waiting for its driver's verdict.
#[derive(Debug)]
pub struct ReferRequest {
    /// The user part of Refer-To (a code of the practice's transfer list,
    /// a number, an agent, a pool).
    pub target: String,
    /// An attended transfer: the SIP Call-ID of the agent's other call
    /// whose far party replaces the agent (Refer-To's `Replaces`).
    pub replaces: Option<String>,
    /// Whether the transfer was accepted.
    pub verdict: tokio::sync::oneshot::Sender<bool>,
}

/// Orders to the leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegCmd {
    /// End the leg: CANCEL while it rings, BYE once answered (the leg
    /// knows which applies).
    End,
}

/// Handle kept by the call task.
pub struct LegHandle {
    /// Orders.
    pub cmd: mpsc::UnboundedSender<LegCmd>,
    /// News.
    pub events: mpsc::UnboundedReceiver<LegEvent>,
}

/// The rsipstack transport of ours.
pub(crate) fn sip_transport(t: Transport) -> rsipstack::sip::Transport {
    match t {
        Transport::Udp => rsipstack::sip::Transport::Udp,
        Transport::Tcp => rsipstack::sip::Transport::Tcp,
        Transport::Tls => rsipstack::sip::Transport::Tls,
        Transport::Ws => rsipstack::sip::Transport::Ws,
        Transport::Wss => rsipstack::sip::Transport::Wss,
    }
}

/// Starts the leg towards `targets`; `tag` names the leg in logs. Returns
/// at once; the outcome comes as events.
pub fn start(
    sip: Arc<SipContext>,
    targets: Vec<Target>,
    req: LegRequest,
    tag: String,
) -> LegHandle {
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    tokio::spawn(run(sip, targets, req, tag, cmd_rx, ev_tx));
    LegHandle {
        cmd: cmd_tx,
        events: ev_rx,
    }
}

/// What the leg's task needs besides its channels.
struct LegTask {
    sip: Arc<SipContext>,
    req: LegRequest,
    tag: String,
    cmd: mpsc::UnboundedReceiver<LegCmd>,
    events: mpsc::UnboundedSender<LegEvent>,
    /// The IP of the target that answered (the registered contact's source
    /// for an agent): its RTP is learnt from there or its SDP address.
    peer_ip: Option<IpAddr>,
}

/// The final result of one fork (by index): its status code and body.
type ForkResult = (usize, Result<(u16, Vec<u8>), String>);

/// The INVITEs of one leg, one per target ("forks").
struct Forks {
    dialogs: Vec<Option<InviteDialog>>,
    /// The WebRTC peer of each browser fork.
    peers: Vec<Option<Peer>>,
    /// Whether each fork was offered SRTP.
    srtp: Vec<bool>,
    /// Final results, by fork index.
    results: mpsc::UnboundedReceiver<ForkResult>,
    results_tx: mpsc::UnboundedSender<ForkResult>,
    /// Dialog states of every fork (they name their dialog).
    states: rsipstack::dialog::dialog::DialogStateReceiver,
    states_tx: rsipstack::dialog::dialog::DialogStateSender,
    pending: usize,
}

async fn run(
    sip: Arc<SipContext>,
    targets: Vec<Target>,
    req: LegRequest,
    tag: String,
    cmd: mpsc::UnboundedReceiver<LegCmd>,
    events: mpsc::UnboundedSender<LegEvent>,
) {
    let mut task = LegTask {
        sip,
        req,
        tag,
        cmd,
        events,
        peer_ip: None,
    };
    let Some(mut forks) = Box::pin(task.invite(&targets)).await else {
        task.send(LegEvent::Failed {
            reason: OfferFailure::Unreachable,
            status: None,
        });
        return;
    };
    // The transient steps are boxed for their duration: inline, each would
    // size this task's future for the whole call.
    let Some((i, win, answer)) = Box::pin(task.await_answer(&mut forks, &targets)).await else {
        return;
    };
    task.peer_ip = targets.get(i).map(|t| t.destination.ip());
    let peer = forks.peers.get_mut(i).and_then(Option::take);
    forks.peers.clear();
    if let Some(peer) = peer {
        Box::pin(task.browser_answered(&win, peer, &answer, &mut forks.states)).await;
        return;
    }
    let offered_srtp = forks.srtp.get(i).copied().unwrap_or(false);
    let Some(remote) = task.answered(negotiated(&answer), offered_srtp) else {
        info!(tag = %task.tag, "answer without usable SDP: hanging up");
        let _ = Box::pin(win.bye()).await;
        task.send(LegEvent::Failed {
            reason: OfferFailure::Rejected,
            status: Some(488),
        });
        return;
    };
    info!(
        event = "leg.answered",
        tag = %task.tag,
        transport = targets.get(i).map(|t| t.transport.as_str()).unwrap_or(""),
        srtp = remote.srtp.as_ref().map(|c| c.suite.name()).unwrap_or("none"),
        "far side answered"
    );
    task.send(LegEvent::Answered(Box::new(task.remote(&remote))));
    // Only the dialog states are needed from now on: the forks' result
    // channel and the losing forks go (2.4 KB per call otherwise).
    let Forks { mut states, .. } = forks;
    task.talk(&win, &mut states, None).await;
    task.sip.dialogs.remove_dialog(&win.id());
}

/// The SDP of a message body, negotiated.
fn negotiated(body: &[u8]) -> Option<Negotiated> {
    std::str::from_utf8(body)
        .ok()
        .and_then(|s| SessionDescription::parse(s).ok())
        .and_then(|sd| negotiate(&sd).ok())
}

impl LegTask {
    fn send(&self, ev: LegEvent) {
        let _ = self.events.send(ev);
    }

    /// The far end's media as negotiated, with the answering target's IP.
    fn remote(&self, n: &Negotiated) -> RemoteMedia {
        RemoteMedia::from(n).with_signalling(self.peer_ip)
    }

    /// The answer to our offer (SRTP or not), checked: an SRTP offer must
    /// be answered with our suite and tag (or, under `offer`, with plain
    /// RTP: a non-compliant answerer, used plain); crypto in the answer to
    /// a plain offer is ignored.
    fn answered(&self, n: Option<Negotiated>, offered_srtp: bool) -> Option<Negotiated> {
        let mut n = n?;
        if !offered_srtp {
            n.srtp = None;
            return Some(n);
        }
        match &n.srtp {
            Some(c) if c.tag == OFFER_CRYPTO_TAG && c.suite == OFFER_SUITE => Some(n),
            Some(_) => None,
            None if self.req.srtp == SrtpPolicy::Offer && !n.profile.is_secure() => {
                warn!(tag = %self.tag, "SRTP offer answered with plain RTP: media not encrypted");
                Some(n)
            }
            None => None,
        }
    }

    /// Starts one INVITE per target; `None` if none could be sent.
    async fn invite(&self, targets: &[Target]) -> Option<Forks> {
        let (results_tx, results) = mpsc::unbounded_channel();
        // One state channel for every fork: states name their dialog, so the
        // winner's are told apart by its id (no channel and task per fork).
        let (states_tx, states) = self.sip.dialogs.new_dialog_state_channel();
        let mut forks = Forks {
            dialogs: Vec::with_capacity(targets.len()),
            peers: Vec::new(),
            srtp: Vec::with_capacity(targets.len()),
            results,
            results_tx,
            states,
            states_tx,
            pending: 0,
        };
        for (i, t) in targets.iter().enumerate() {
            let srtp = self.req.srtp_for(t);
            let (peer, offer) = match t.transport.is_websocket() {
                true => self.browser_offer().await,
                false => (None, None),
            };
            let dialog = match (t.transport.is_websocket(), offer) {
                (true, None) => None,
                (_, offer) => self.invite_one(&forks, i, t, srtp, offer.as_deref()),
            };
            forks.pending += usize::from(dialog.is_some());
            forks.dialogs.push(dialog);
            forks.srtp.push(srtp);
            if peer.is_some() {
                forks.peers.resize_with(i, || None);
                forks.peers.push(peer);
            }
        }
        (forks.pending > 0).then_some(forks)
    }

    /// Sends the INVITE of fork `i` to `t`, with the SRTP offer, the plain
    /// one, or a browser's WebRTC `webrtc` offer; its final result comes on
    /// the forks' channel.
    fn invite_one(
        &self,
        forks: &Forks,
        i: usize,
        t: &Target,
        srtp: bool,
        webrtc: Option<&str>,
    ) -> Option<InviteDialog> {
        let caller =
            rsipstack::sip::Uri::try_from(self.sip.uri_for(&self.req.caller_user).as_str()).ok()?;
        let Ok(callee) = rsipstack::sip::Uri::try_from(t.uri.as_str()) else {
            debug!(uri = %t.uri, "unusable contact URI");
            return None;
        };
        let contact =
            rsipstack::sip::Uri::try_from(self.sip.contact_over(t.transport).as_str()).ok()?;
        let offer = match (&self.req.sdp_offer_srtp, srtp, webrtc) {
            (_, _, Some(o)) => o,
            (Some(o), true, None) => o.as_str(),
            _ => self.req.sdp_offer.as_str(),
        };
        let opt = InviteOption {
            caller_display_name: Some(self.req.display_name.clone()),
            caller,
            callee,
            destination: Some(SipAddr {
                r#type: Some(sip_transport(t.transport)),
                addr: t.destination.into(),
            }),
            content_type: Some("application/sdp".into()),
            offer: Some(offer.as_bytes().to_vec()),
            contact,
            headers: Some(self.req.headers.clone()),
            ..Default::default()
        };
        match self
            .sip
            .dialogs
            .do_invite_async(opt, forks.states_tx.clone())
        {
            Ok((dialog, handle)) => {
                let res_tx = forks.results_tx.clone();
                tokio::spawn(async move {
                    let r = match handle.await {
                        Ok(Ok((_, Some(resp)))) => Ok((resp.status_code.code(), resp.body)),
                        Ok(Ok((_, None))) => Err("no response".to_string()),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    let _ = res_tx.send((i, r));
                });
                Some(dialog)
            }
            Err(e) => {
                debug!(error = %e, "INVITE could not be sent");
                None
            }
        }
    }

    /// Under `offer`, a target that refused our SRTP offer with 488 is
    /// invited again with the plain one; true if that INVITE went out.
    fn retry_plain(&self, forks: &mut Forks, i: usize, code: u16, targets: &[Target]) -> bool {
        let refused_srtp = code == 488 && forks.srtp.get(i).copied().unwrap_or(false);
        if !refused_srtp || self.req.srtp != SrtpPolicy::Offer {
            return false;
        }
        let Some(t) = targets.get(i) else {
            return false;
        };
        info!(
            event = "leg.srtp_refused",
            tag = %self.tag,
            "SRTP offer refused (488): calling the contact again with plain RTP"
        );
        let Some(dialog) = self.invite_one(forks, i, t, false, None) else {
            return false;
        };
        if let Some(slot) = forks.dialogs.get_mut(i) {
            *slot = Some(dialog);
        }
        if let Some(s) = forks.srtp.get_mut(i) {
            *s = false;
        }
        forks.pending += 1;
        true
    }

    /// Waits for the first 2xx (the other forks are cancelled), reporting
    /// the first ringing; returns the winning fork's index, dialog and
    /// answer, or `None` when every fork failed (reported) or the call task
    /// ended the leg.
    async fn await_answer(
        &mut self,
        forks: &mut Forks,
        targets: &[Target],
    ) -> Option<(usize, InviteDialog, Vec<u8>)> {
        let mut best_failure: Option<(OfferFailure, Option<u16>)> = None;
        let mut ringing_sent = false;
        let (winner, answer) = loop {
            tokio::select! {
                _ = self.cmd.recv() => {
                    // End (or the call task is gone) while ringing.
                    forks.cancel_all().await;
                    return None;
                }
                Some(st) = forks.states.recv() => {
                    if matches!(st, DialogState::Early(..)) && !ringing_sent {
                        ringing_sent = true;
                        self.send(LegEvent::Ringing);
                    }
                }
                r = forks.results.recv() => {
                    let Some((i, r)) = r else { break (None, Vec::new()) };
                    forks.pending = forks.pending.saturating_sub(1);
                    match r {
                        Ok((code, body)) if (200..300).contains(&code) => break (Some(i), body),
                        Ok((code, _)) if self.retry_plain(forks, i, code, targets) => {}
                        Ok((code, _)) => {
                            let f = (OfferFailure::from_status(code), Some(code));
                            debug!(tag = %self.tag, code, "fork failed");
                            best_failure = Some(best_failure.map_or(f, |b| {
                                if b.0.most_telling(f.0) == b.0 { b } else { f }
                            }));
                        }
                        Err(e) => {
                            debug!(tag = %self.tag, error = %e, "fork failed");
                            best_failure.get_or_insert((OfferFailure::Unreachable, None));
                        }
                    }
                    if forks.pending == 0 {
                        break (None, Vec::new());
                    }
                }
            }
        };
        let win = winner.and_then(|w| Some((w, forks.dialogs.get_mut(w)?.take()?)));
        let Some((index, win)) = win else {
            let (reason, status) = best_failure.unwrap_or((OfferFailure::Unreachable, None));
            self.send(LegEvent::Failed { reason, status });
            return None;
        };
        for f in forks.dialogs.iter().flatten() {
            let _ = f.cancel().await;
        }
        Some((index, win, answer))
    }

    /// The answered leg: relays hold/unhold and the far end's BYE until
    /// either side ends it.
    async fn talk(
        &mut self,
        win: &InviteDialog,
        states: &mut rsipstack::dialog::dialog::DialogStateReceiver,
        peer: Option<&Peer>,
    ) {
        let mut session = self.req.session.clone();
        let id = win.id();
        loop {
            tokio::select! {
                _ = self.cmd.recv() => {
                    if let Err(e) = Box::pin(win.bye()).await {
                        debug!(error = %e, "BYE to agent failed");
                    }
                    return;
                }
                _ = webrtc::gone(peer) => {
                    warn!(
                        event = "leg.browser_gone",
                        tag = %self.tag,
                        "the browser's media is gone (tab closed, network lost): ending its leg"
                    );
                    self.send(LegEvent::Lost);
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), Box::pin(win.bye())).await;
                    return;
                }
                st = states.recv() => match st {
                    None => {
                        self.send(LegEvent::Bye);
                        return;
                    }
                    Some(st) if st.id() != &id => {}
                    Some(DialogState::Terminated(..)) => {
                        self.send(LegEvent::Bye);
                        return;
                    }
                    Some(st) => Box::pin(self.in_dialog(win, st, &mut session, peer)).await,
                },
            }
        }
    }

    /// Answers a request of the far end inside the answered dialog.
    async fn in_dialog(
        &self,
        win: &InviteDialog,
        st: DialogState,
        session: &mut LocalSession,
        peer: Option<&Peer>,
    ) {
        match st {
            DialogState::Updated(_, request, handle) if peer.is_some() => {
                if let Some(peer) = peer {
                    Box::pin(self.browser_reoffer(peer, &request, handle)).await;
                }
            }
            DialogState::Updated(_, request, handle) => {
                // re-INVITE (hold/unhold) or UPDATE with SDP; under
                // `require`, one that drops SRTP is refused.
                let offer = negotiated(&request.body)
                    .filter(|n| n.srtp.is_some() || self.req.srtp != SrtpPolicy::Require);
                match offer {
                    Some(n) => {
                        let body = build_answer(
                            session,
                            self.req.local_port,
                            &n,
                            Direction::SendRecv,
                            &self.req.srtp_key,
                        );
                        let _ = handle
                            .respond(
                                StatusCode::OK,
                                Some(vec![Header::ContentType("application/sdp".into())]),
                                Some(body.into_bytes()),
                            )
                            .await;
                        self.send(if n.is_hold() {
                            LegEvent::Hold(Box::new(self.remote(&n)))
                        } else {
                            LegEvent::Unhold(Box::new(self.remote(&n)))
                        });
                    }
                    None if request.body.is_empty() => {
                        let _ = handle.reply(StatusCode::OK).await;
                    }
                    None => {
                        let _ = handle.reply(StatusCode::NotAcceptableHere).await;
                    }
                }
            }
            DialogState::Info(_, _, handle)
            | DialogState::Options(_, _, handle)
            | DialogState::Message(_, _, handle)
            | DialogState::Notify(_, _, handle) => {
                let _ = handle.reply(StatusCode::OK).await;
            }
            DialogState::Refer(_, request, handle) => {
                Box::pin(self.refer(win, &request, handle)).await
            }
            _ => {}
        }
    }
}

mod webrtc;

impl LegTask {
    /// A REFER from the answered far end (a blind transfer, or an attended
    /// one with Replaces): the call's driver decides; accepted,
    /// the REFER gets 202 and its progress is reported with NOTIFY
    /// (sipfrag 100 then 200, the subscription terminated: the transfer
    /// is the switch's business from then on, and the transferor is hung
    /// up); refused, 403. A REFER is never passed on to the carrier.
    async fn refer(
        &self,
        win: &InviteDialog,
        request: &rsipstack::sip::Request,
        handle: rsipstack::dialog::dialog::TransactionHandle,
    ) {
        let refer_to = permanence_sip::extract::header_value(&request.headers, "Refer-To");
        let replaces = refer_to.and_then(permanence_sip::extract::refer_replaces_call_id);
        let target = refer_to
            .and_then(|v| permanence_sip::extract::percent_decode(permanence_numbers::user_part(v)))
            .filter(|t| !t.is_empty());
        let Some(target) = target else {
            let _ = handle.reply(StatusCode::BadRequest).await;
            return;
        };
        let (verdict, answer) = tokio::sync::oneshot::channel();
        self.send(LegEvent::Refer(Box::new(ReferRequest {
            target,
            replaces,
            verdict,
        })));
        let accepted = tokio::time::timeout(std::time::Duration::from_secs(5), answer)
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or(false);
        if !accepted {
            let _ = handle.reply(StatusCode::Forbidden).await;
            return;
        }
        let _ = handle.reply(StatusCode::Accepted).await;
        // The 202 leaves through the REFER's server transaction, the NOTIFY
        // through a new client one: give the 202 a head start, so that
        // softphones that insist on seeing it first are not confused
        // (RFC 3515 allows either order).
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        for (status, state) in [
            (StatusCode::Trying, "active;expires=60"),
            (StatusCode::OK, "terminated;reason=noresource"),
        ] {
            if let Err(e) = Box::pin(win.notify_refer(status, state)).await {
                debug!(tag = %self.tag, error = %e, "NOTIFY of the transfer failed");
            }
        }
    }
}

impl Forks {
    /// Cancels every fork and waits (bounded) for them to finish, so late
    /// 2xx are ACKed and BYEd by the stack.
    async fn cancel_all(&mut self) {
        for f in self.dialogs.iter().flatten() {
            if let Err(e) = f.cancel().await {
                debug!(error = %e, "CANCEL failed");
            }
        }
        let pending = &mut self.pending;
        let results = &mut self.results;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while *pending > 0 && results.recv().await.is_some() {
                *pending -= 1;
            }
        })
        .await;
    }
}
