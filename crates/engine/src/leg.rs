//! The outgoing leg of a call: an INVITE to a telesecretary's registered
//! contacts (forked to all of them, first answer wins) or to a number
//! through an outbound trunk. The leg runs in its own task and talks to the
//! call task through channels; media is owned by the call task.

use crate::context::SipContext;
use permanence_call::OfferFailure;
use permanence_media::sdp::{build_answer, negotiate, LocalSession, SessionDescription};
use permanence_media::{Direction, RemoteMedia};
use permanence_types::Transport;
use rsipstack::dialog::dialog::DialogState;
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{Header, StatusCode};
use rsipstack::transport::SipAddr;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::{debug, info};

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

/// What the INVITE says about the call.
#[derive(Debug, Clone)]
pub struct LegRequest {
    /// Display name in From (the practice the call is for).
    pub display_name: String,
    /// User part of From (the caller's number, or `anonymous`).
    pub caller_user: String,
    /// Extra headers (practice id, triage, wait, Call-Info).
    pub headers: Vec<Header>,
    /// Our SDP offer.
    pub sdp_offer: String,
    /// The media leg's local port (to answer re-INVITEs).
    pub local_port: u16,
}

/// News from the leg.
#[derive(Debug)]
pub enum LegEvent {
    /// 180/183 received.
    Ringing,
    /// Answered; send media there.
    Answered(RemoteMedia),
    /// Every fork failed.
    Failed(OfferFailure),
    /// The far end hung up after answering.
    Bye,
    /// The far end put the call on hold (re-INVITE sendonly/inactive).
    Hold,
    /// The far end resumed (re-INVITE sendrecv), maybe with a new address.
    Unhold(RemoteMedia),
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
    }
}

/// Starts the leg towards `targets`; `advertise` is the address written in
/// our SDP answers to re-INVITEs, `tag` names the leg in logs. Returns at
/// once; the outcome comes as events.
pub fn start(
    sip: Arc<SipContext>,
    advertise: IpAddr,
    targets: Vec<Target>,
    req: LegRequest,
    tag: String,
) -> LegHandle {
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    tokio::spawn(run(sip, advertise, targets, req, tag, cmd_rx, ev_tx));
    LegHandle {
        cmd: cmd_tx,
        events: ev_rx,
    }
}

/// What the leg's task needs besides its channels.
struct LegTask {
    sip: Arc<SipContext>,
    advertise: IpAddr,
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
    /// Final results, by fork index.
    results: mpsc::UnboundedReceiver<ForkResult>,
    /// Dialog states of every fork (they name their dialog).
    states: rsipstack::dialog::dialog::DialogStateReceiver,
    pending: usize,
}

async fn run(
    sip: Arc<SipContext>,
    advertise: IpAddr,
    targets: Vec<Target>,
    req: LegRequest,
    tag: String,
    cmd: mpsc::UnboundedReceiver<LegCmd>,
    events: mpsc::UnboundedSender<LegEvent>,
) {
    let mut task = LegTask {
        sip,
        advertise,
        req,
        tag,
        cmd,
        events,
        peer_ip: None,
    };
    let Some(mut forks) = task.invite(&targets) else {
        task.send(LegEvent::Failed(OfferFailure::Unreachable));
        return;
    };
    let Some((i, win, answer)) = task.await_answer(&mut forks).await else {
        return;
    };
    task.peer_ip = targets.get(i).map(|t| t.destination.ip());
    let Some(remote) = negotiated(&answer) else {
        info!(tag = %task.tag, "answer without usable SDP: hanging up");
        let _ = win.bye().await;
        task.send(LegEvent::Failed(OfferFailure::Rejected));
        return;
    };
    task.send(LegEvent::Answered(task.remote(&remote)));
    task.talk(&win, &mut forks.states).await;
    task.sip.dialogs.remove_dialog(&win.id());
}

/// The SDP of a message body, negotiated.
fn negotiated(body: &[u8]) -> Option<permanence_media::sdp::Negotiated> {
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
    fn remote(&self, n: &permanence_media::sdp::Negotiated) -> RemoteMedia {
        RemoteMedia::from(n).with_signalling(self.peer_ip)
    }

    /// Starts one INVITE per target; `None` if none could be sent.
    fn invite(&self, targets: &[Target]) -> Option<Forks> {
        let caller =
            rsipstack::sip::Uri::try_from(self.sip.uri_for(&self.req.caller_user).as_str()).ok()?;
        let (res_tx, results) = mpsc::unbounded_channel();
        // One state channel for every fork: states name their dialog, so the
        // winner's are told apart by its id (no channel and task per fork).
        let (states_tx, states) = self.sip.dialogs.new_dialog_state_channel();
        let mut dialogs = Vec::with_capacity(targets.len());
        for (i, t) in targets.iter().enumerate() {
            let Ok(callee) = rsipstack::sip::Uri::try_from(t.uri.as_str()) else {
                debug!(uri = %t.uri, "unusable contact URI");
                dialogs.push(None);
                continue;
            };
            let Ok(contact) =
                rsipstack::sip::Uri::try_from(self.sip.contact_over(t.transport).as_str())
            else {
                dialogs.push(None);
                continue;
            };
            let opt = InviteOption {
                caller_display_name: Some(self.req.display_name.clone()),
                caller: caller.clone(),
                callee,
                destination: Some(SipAddr {
                    r#type: Some(sip_transport(t.transport)),
                    addr: t.destination.into(),
                }),
                content_type: Some("application/sdp".into()),
                offer: Some(self.req.sdp_offer.clone().into_bytes()),
                contact: contact.clone(),
                headers: Some(self.req.headers.clone()),
                ..Default::default()
            };
            match self.sip.dialogs.do_invite_async(opt, states_tx.clone()) {
                Ok((dialog, handle)) => {
                    let res_tx = res_tx.clone();
                    tokio::spawn(async move {
                        let r = match handle.await {
                            Ok(Ok((_, Some(resp)))) => Ok((resp.status_code.code(), resp.body)),
                            Ok(Ok((_, None))) => Err("no response".to_string()),
                            Ok(Err(e)) => Err(e.to_string()),
                            Err(e) => Err(e.to_string()),
                        };
                        let _ = res_tx.send((i, r));
                    });
                    dialogs.push(Some(dialog));
                }
                Err(e) => {
                    debug!(error = %e, "INVITE could not be sent");
                    dialogs.push(None);
                }
            }
        }
        let pending = dialogs.iter().filter(|f| f.is_some()).count();
        (pending > 0).then_some(Forks {
            dialogs,
            results,
            states,
            pending,
        })
    }

    /// Waits for the first 2xx (the other forks are cancelled), reporting
    /// the first ringing; returns the winning fork's index, dialog and
    /// answer, or `None` when every fork failed (reported) or the call task
    /// ended the leg.
    async fn await_answer(&mut self, forks: &mut Forks) -> Option<(usize, InviteDialog, Vec<u8>)> {
        let mut best_failure: Option<OfferFailure> = None;
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
                        Ok((code, _)) => {
                            let f = OfferFailure::from_status(code);
                            debug!(tag = %self.tag, code, "fork failed");
                            best_failure = Some(best_failure.map_or(f, |b| b.most_telling(f)));
                        }
                        Err(e) => {
                            debug!(tag = %self.tag, error = %e, "fork failed");
                            best_failure.get_or_insert(OfferFailure::Unreachable);
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
            self.send(LegEvent::Failed(
                best_failure.unwrap_or(OfferFailure::Unreachable),
            ));
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
    ) {
        let mut session = LocalSession::new(self.advertise);
        let id = win.id();
        loop {
            tokio::select! {
                _ = self.cmd.recv() => {
                    if let Err(e) = win.bye().await {
                        debug!(error = %e, "BYE to agent failed");
                    }
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
                    Some(st) => self.in_dialog(st, &mut session).await,
                },
            }
        }
    }

    /// Answers a request of the far end inside the answered dialog.
    async fn in_dialog(&self, st: DialogState, session: &mut LocalSession) {
        match st {
            DialogState::Updated(_, request, handle) => {
                // re-INVITE (hold/unhold) or UPDATE with SDP.
                match negotiated(&request.body) {
                    Some(n) => {
                        let body =
                            build_answer(session, self.req.local_port, &n, Direction::SendRecv);
                        let _ = handle
                            .respond(
                                StatusCode::OK,
                                Some(vec![Header::ContentType("application/sdp".into())]),
                                Some(body.into_bytes()),
                            )
                            .await;
                        self.send(if n.is_hold() {
                            LegEvent::Hold
                        } else {
                            LegEvent::Unhold(self.remote(&n))
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
            DialogState::Refer(_, _, handle) => {
                let _ = handle.reply(StatusCode::NotImplemented).await;
            }
            _ => {}
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
