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

async fn run(
    sip: Arc<SipContext>,
    advertise: IpAddr,
    targets: Vec<Target>,
    req: LegRequest,
    tag: String,
    mut cmd: mpsc::UnboundedReceiver<LegCmd>,
    events: mpsc::UnboundedSender<LegEvent>,
) {
    let contact = sip.contact();
    let caller = sip.uri_for(&req.caller_user);
    let (Ok(contact_uri), Ok(caller_uri)) = (
        rsipstack::sip::Uri::try_from(contact.as_str()),
        rsipstack::sip::Uri::try_from(caller.as_str()),
    ) else {
        let _ = events.send(LegEvent::Failed(OfferFailure::Unreachable));
        return;
    };
    // Start one INVITE per target; results come back on one channel.
    let (res_tx, mut res_rx) = mpsc::unbounded_channel::<(usize, Result<(u16, Vec<u8>), String>)>();
    // One state channel for every fork: states name their dialog, so the
    // winner's are told apart by its id (no channel and task per fork).
    let (states_tx, mut states_rx) = sip.dialogs.new_dialog_state_channel();
    let mut forks: Vec<Option<InviteDialog>> = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let Ok(callee) = rsipstack::sip::Uri::try_from(t.uri.as_str()) else {
            debug!(uri = %t.uri, "unusable contact URI");
            forks.push(None);
            continue;
        };
        let opt = InviteOption {
            caller_display_name: Some(req.display_name.clone()),
            caller: caller_uri.clone(),
            callee,
            destination: Some(SipAddr {
                r#type: Some(sip_transport(t.transport)),
                addr: t.destination.into(),
            }),
            content_type: Some("application/sdp".into()),
            offer: Some(req.sdp_offer.clone().into_bytes()),
            contact: contact_uri.clone(),
            headers: Some(req.headers.clone()),
            ..Default::default()
        };
        match sip.dialogs.do_invite_async(opt, states_tx.clone()) {
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
                forks.push(Some(dialog));
            }
            Err(e) => {
                debug!(error = %e, "INVITE could not be sent");
                forks.push(None);
            }
        }
    }
    drop(res_tx);
    drop(states_tx);
    let mut pending = forks.iter().filter(|f| f.is_some()).count();
    let mut best_failure: Option<OfferFailure> = None;
    let mut ringing_sent = false;
    if pending == 0 {
        let _ = events.send(LegEvent::Failed(OfferFailure::Unreachable));
        return;
    }

    // Wait for the first answer, watching the forks' states for ringing.
    let (winner, answer) = loop {
        tokio::select! {
            c = cmd.recv() => {
                // End (or the call task is gone) while ringing: stop every
                // fork.
                let _ = c;
                for f in forks.iter().flatten() {
                    if let Err(e) = f.cancel().await {
                        debug!(error = %e, "CANCEL failed");
                    }
                }
                // Wait (bounded) for the forks to finish so late 2xx are
                // ACKed and BYEd by the stack.
                let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                    while pending > 0 && res_rx.recv().await.is_some() { pending -= 1; }
                }).await;
                return;
            }
            Some(st) = states_rx.recv() => {
                if let DialogState::Early(_, _) = st {
                    if !ringing_sent {
                        ringing_sent = true;
                        let _ = events.send(LegEvent::Ringing);
                    }
                }
            }
            r = res_rx.recv() => {
                let Some((i, r)) = r else {
                    let _ = events.send(LegEvent::Failed(best_failure.unwrap_or(OfferFailure::Unreachable)));
                    return;
                };
                pending = pending.saturating_sub(1);
                match r {
                    Ok((code, body)) if (200..300).contains(&code) => break (i, body),
                    Ok((code, _)) => {
                        let f = OfferFailure::from_status(code);
                        debug!(tag, code, "fork failed");
                        best_failure = Some(best_failure.map_or(f, |b| b.most_telling(f)));
                    }
                    Err(e) => {
                        debug!(tag, error = %e, "fork failed");
                        best_failure.get_or_insert(OfferFailure::Unreachable);
                    }
                }
                if pending == 0 {
                    let _ = events.send(LegEvent::Failed(best_failure.unwrap_or(OfferFailure::Unreachable)));
                    return;
                }
            }
        }
    };

    // Cancel the other forks.
    let Some(Some(win)) = forks.get_mut(winner).map(Option::take) else {
        let _ = events.send(LegEvent::Failed(OfferFailure::Unreachable));
        return;
    };
    for f in forks.iter().flatten() {
        let _ = f.cancel().await;
    }
    // The answer's SDP.
    let remote = std::str::from_utf8(&answer)
        .ok()
        .and_then(|s| SessionDescription::parse(s).ok())
        .and_then(|sd| negotiate(&sd).ok());
    let Some(neg) = remote else {
        info!(tag, "answer without usable SDP: hanging up");
        let _ = win.bye().await;
        let _ = events.send(LegEvent::Failed(OfferFailure::Rejected));
        return;
    };
    let _ = events.send(LegEvent::Answered(RemoteMedia::from(&neg)));
    let dialog_id = win.id();
    let mut session = LocalSession::new(advertise);
    loop {
        tokio::select! {
            c = cmd.recv() => {
                let _ = c;
                if let Err(e) = win.bye().await {
                    debug!(error = %e, "BYE to agent failed");
                }
                break;
            }
            st = states_rx.recv() => match st.map(|st| (st.id() == &win.id(), st)) {
                Some((false, _)) => {}
                Some((true, DialogState::Terminated(_, _))) | None => {
                    let _ = events.send(LegEvent::Bye);
                    break;
                }
                Some((true, DialogState::Updated(_, request, handle))) => {
                    // re-INVITE (hold/unhold) or UPDATE with SDP.
                    let sd = std::str::from_utf8(&request.body)
                        .ok()
                        .and_then(|s| SessionDescription::parse(s).ok())
                        .and_then(|sd| negotiate(&sd).ok());
                    match sd {
                        Some(n) => {
                            let body = build_answer(&mut session, req.local_port, &n, Direction::SendRecv);
                            let _ = handle
                                .respond(
                                    StatusCode::OK,
                                    Some(vec![Header::ContentType("application/sdp".into())]),
                                    Some(body.into_bytes()),
                                )
                                .await;
                            let ev = if n.is_hold() {
                                LegEvent::Hold
                            } else {
                                LegEvent::Unhold(RemoteMedia::from(&n))
                            };
                            let _ = events.send(ev);
                        }
                        None if request.body.is_empty() => {
                            let _ = handle.reply(StatusCode::OK).await;
                        }
                        None => {
                            let _ = handle.reply(StatusCode::NotAcceptableHere).await;
                        }
                    }
                }
                Some((true, DialogState::Info(_, _, handle)))
                | Some((true, DialogState::Options(_, _, handle)))
                | Some((true, DialogState::Message(_, _, handle)))
                | Some((true, DialogState::Notify(_, _, handle))) => {
                    let _ = handle.reply(StatusCode::OK).await;
                }
                Some((true, DialogState::Refer(_, _, handle))) => {
                    let _ = handle.reply(StatusCode::NotImplemented).await;
                }
                Some(_) => {}
            },
        }
    }
    sip.dialogs.remove_dialog(&dialog_id);
}
