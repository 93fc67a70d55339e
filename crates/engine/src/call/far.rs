//! The far side of a forwarded call: the telesecretary the dispatcher
//! offered it to, or the practitioner's number a triage option routes
//! urgent calls to. One outgoing leg (its signalling task and its media leg)
//! at a time.

use crate::context::CallContext;
use crate::leg::{self, LegCmd, LegEvent, LegHandle, LegRequest, Target};
use permanence_call::{AgentId, OfferFailure};
use permanence_config::Practice;
use permanence_media::sdp::{build_offer, LocalSession};
use permanence_media::{Direction, Leg, MediaEvent};
use permanence_metrics::RtpTotals;
use permanence_types::SrtpPolicy;
use rsipstack::sip::Header;
use std::fmt;
use tokio::sync::mpsc;
use tracing::{info, warn};

/// Who the caller is put through to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtherParty {
    /// A telesecretary offered the call by the dispatcher.
    Agent(AgentId),
    /// The number of a triage option (`route_to`), through the outbound
    /// trunk.
    Route(char),
    /// The destination of a telesecretary's outbound call, through the
    /// outbound trunk.
    Destination,
    /// The number a telesecretary transferred the call to, through the
    /// outbound trunk.
    TransferNumber,
}

impl fmt::Display for OtherParty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OtherParty::Agent(a) => write!(f, "{a}"),
            OtherParty::Route(d) => write!(f, "route:{d}"),
            OtherParty::Destination => f.write_str("destination"),
            OtherParty::TransferNumber => f.write_str("transfer"),
        }
    }
}

/// The far side's outgoing leg and its media.
pub struct FarSide {
    /// Who it is.
    pub party: OtherParty,
    leg: LegHandle,
    /// Its RTP leg (bridged to the caller's once answered).
    pub media: Leg,
    media_events: mpsc::Receiver<MediaEvent>,
    /// Whether it answered.
    pub answered: bool,
}

/// News from the far side: its signalling or its media.
pub enum FarEvent {
    /// From the leg's task (`None`: the task ended).
    Leg(Option<LegEvent>),
    /// From its media leg (`None`: closed).
    Media(Option<MediaEvent>),
}

/// What an event of the far side means to the driver of its call, once
/// the leg's own bookkeeping is done.
#[derive(Debug)]
pub enum FarNews {
    /// 180/183.
    Ringing,
    /// Answered (its media applied to the leg).
    Answered,
    /// Every target failed before an answer.
    Failed {
        /// As the dispatcher counts it.
        reason: OfferFailure,
        /// The final status, if one came.
        status: Option<u16>,
    },
    /// Hung up after the answer, or the leg's task ended.
    Gone,
    /// Vanished after the answer without hanging up (a browser's media
    /// gone).
    Lost,
    /// Put on hold by the far end (its media applied).
    Hold,
    /// Taken off hold (its media applied).
    Unhold,
    /// Its media stopped after the answer.
    MediaTimeout,
    /// It asks to transfer the call (REFER): answer through the request.
    Refer(Box<crate::leg::ReferRequest>),
}

/// Waits for the next event of `far`, forever if there is none.
pub async fn next(far: &mut Option<FarSide>) -> FarEvent {
    match far {
        Some(f) => f.next().await,
        None => std::future::pending().await,
    }
}

impl FarSide {
    /// Reads one event of this side: applies the far end's media (answer,
    /// hold, resume) to the leg and says what it means; `None` when it
    /// means nothing to the driver.
    pub fn digest(&mut self, ev: FarEvent) -> Option<FarNews> {
        Some(match ev {
            FarEvent::Leg(Some(LegEvent::Ringing)) => FarNews::Ringing,
            FarEvent::Leg(Some(LegEvent::Answered(remote))) => {
                self.answered = true;
                let _ = self.media.set_remote(*remote);
                FarNews::Answered
            }
            FarEvent::Leg(Some(LegEvent::Failed { reason, status })) => {
                FarNews::Failed { reason, status }
            }
            FarEvent::Leg(Some(LegEvent::Bye) | None) => FarNews::Gone,
            FarEvent::Leg(Some(LegEvent::Lost)) => FarNews::Lost,
            FarEvent::Leg(Some(LegEvent::Refer(r))) => FarNews::Refer(r),
            FarEvent::Leg(Some(LegEvent::Hold(remote))) => {
                let _ = self.media.set_remote(*remote);
                FarNews::Hold
            }
            FarEvent::Leg(Some(LegEvent::Unhold(remote))) => {
                let _ = self.media.set_remote(*remote);
                FarNews::Unhold
            }
            FarEvent::Media(Some(MediaEvent::RtpTimeout)) if self.answered => FarNews::MediaTimeout,
            FarEvent::Media(_) => return None,
        })
    }

    /// Waits for the next news.
    pub async fn next(&mut self) -> FarEvent {
        tokio::select! {
            e = self.leg.events.recv() => FarEvent::Leg(e),
            m = self.media_events.recv() => FarEvent::Media(m),
        }
    }

    /// Ends the leg (CANCEL while it rings, BYE once answered) and closes
    /// its media; returns the media counters.
    pub async fn close(self) -> RtpTotals {
        let _ = self.leg.cmd.send(LegCmd::End);
        let totals = rtp_totals(&self.media.stats());
        self.media.close().await;
        totals
    }
}

/// Media counters in the form metrics add up.
pub fn rtp_totals(s: &permanence_media::LegStats) -> RtpTotals {
    RtpTotals {
        packets_in: s.packets_in,
        bytes_in: s.bytes_in,
        packets_out: s.packets_out,
        bytes_out: s.bytes_out,
        lost: s.lost,
        late: s.late,
        foreign: s.foreign,
        srtp_refused: s.srtp_auth_failed + s.srtp_replayed,
    }
}

/// What the far side is told about the call.
pub struct Presentation<'a> {
    /// The practice.
    pub practice: &'a Practice,
    /// The caller's number (E.164 when it is one; empty if withheld).
    pub caller: &'a str,
    /// The triage option chosen.
    pub triage: Option<char>,
    /// Seconds the caller has waited in the queue.
    pub wait_secs: i64,
}

/// Where the triage option `digit` routes: its number through the
/// outbound trunk, if both are configured, with the number masked for logs.
pub fn route_target(
    ctx: &CallContext,
    practice: &Practice,
    digit: char,
) -> Option<(Target, String)> {
    let number = practice
        .triage
        .as_ref()
        .and_then(|t| t.option(digit))
        .and_then(|o| o.route_to.clone())?;
    let target = gateway_target(ctx, number.as_str())?;
    Some((target, number.masked()))
}

/// Who the outgoing INVITE says is calling.
pub struct Identity {
    /// Display name in From.
    pub display_name: String,
    /// User part of From (a number, or `anonymous`).
    pub user: String,
    /// Extra headers.
    pub headers: Vec<Header>,
}

impl Identity {
    /// What a telesecretary's softphone is told about a forwarded call:
    /// the practice and specialty as the display name, the caller's
    /// number, and the practice, triage and wait headers.
    pub fn for_agent(shown: &Presentation<'_>) -> Self {
        Self {
            display_name: format!(
                "{} - {}",
                shown.practice.name,
                specialty_label(&shown.practice.specialty)
            ),
            user: if shown.caller.is_empty() {
                "anonymous".to_string()
            } else {
                shown.caller.to_string()
            },
            headers: headers(shown),
        }
    }

    /// A call placed for `practice` through the outbound trunk: the
    /// practice's name and number in From, the number in
    /// P-Asserted-Identity, so the called party sees the practice calling.
    pub fn as_practice(ctx: &CallContext, practice_name: &str, number: &str) -> Self {
        let pai = format!("<{}>", ctx.sip.uri_for(number));
        Self {
            display_name: practice_name.to_string(),
            user: number.to_string(),
            headers: vec![Header::Other("P-Asserted-Identity".into(), pai)],
        }
    }
}

/// The outbound trunk's gateway as a target for `number` (E.164 or a
/// short code), if a trunk has one.
pub fn gateway_target(ctx: &CallContext, number: &str) -> Option<Target> {
    let dest = ctx
        .config
        .load()
        .outbound_trunk()
        .and_then(|t| t.outbound)?;
    Some(Target {
        uri: format!("sip:{number}@{dest}"),
        destination: dest,
        transport: permanence_types::Transport::Udp,
    })
}

/// Opens the media leg for `party` and starts the outgoing INVITE to
/// `targets`, presenting the forwarded call `shown`; `srtp` says which of
/// them are offered SRTP (and, for `require`, which may be called at all).
pub fn open(
    ctx: &CallContext,
    party: OtherParty,
    targets: Vec<Target>,
    shown: &Presentation<'_>,
    srtp: SrtpPolicy,
) -> Result<FarSide, OfferFailure> {
    dial(ctx, party, targets, Identity::for_agent(shown), srtp)
}

/// Opens the media leg for `party` and starts the outgoing INVITE to
/// `targets` as `identity`; `srtp` as in [`open`].
pub fn dial(
    ctx: &CallContext,
    party: OtherParty,
    targets: Vec<Target>,
    identity: Identity,
    srtp: SrtpPolicy,
) -> Result<FarSide, OfferFailure> {
    if targets.is_empty() {
        info!(leg = %party, "no registered contact");
        return Err(OfferFailure::Unreachable);
    }
    let count = targets.len();
    let targets: Vec<Target> = targets
        .into_iter()
        .filter(|t| srtp.allows(t.transport))
        .collect();
    if targets.len() < count {
        info!(
            leg = %party,
            skipped = count - targets.len(),
            "srtp = \"require\": contacts not registered over TLS are not called"
        );
    }
    if targets.is_empty() {
        return Err(OfferFailure::Unreachable);
    }
    let with_srtp = targets.iter().any(|t| srtp.offers_srtp(t.transport));
    let (media, media_events) = ctx.media.engine.open_leg().map_err(|e| {
        warn!(error = %e, "no media leg for the outgoing call");
        OfferFailure::Unreachable
    })?;
    let mut session = LocalSession::new(ctx.media.advertise);
    let srtp_key = media.srtp_key();
    let sdp_offer = build_offer(&mut session, media.port(), Direction::SendRecv, None);
    let sdp_offer_srtp = with_srtp.then(|| {
        build_offer(
            &mut session,
            media.port(),
            Direction::SendRecv,
            Some(&srtp_key),
        )
    });
    let req = LegRequest {
        display_name: identity.display_name,
        caller_user: identity.user,
        headers: identity.headers,
        sdp_offer,
        sdp_offer_srtp,
        srtp,
        srtp_key,
        local_port: media.port(),
        local_ip: media.local_addr().ip(),
        session,
    };
    let leg = leg::start(ctx.sip.clone(), targets, req, party.to_string());
    Ok(FarSide {
        party,
        leg,
        media,
        media_events,
        answered: false,
    })
}

/// The headers that tell the telesecretary's softphone about the call.
fn headers(shown: &Presentation<'_>) -> Vec<Header> {
    let p = shown.practice;
    let mut headers = vec![
        Header::Other("X-Permanence-Practice".into(), p.id.clone()),
        Header::Other(
            "X-Permanence-Wait".into(),
            shown.wait_secs.max(0).to_string(),
        ),
    ];
    if let Some(d) = shown.triage {
        let label = p
            .triage
            .as_ref()
            .and_then(|t| t.option(d))
            .map(|o| o.label.clone())
            .unwrap_or_default();
        headers.push(Header::Other(
            "X-Permanence-Triage".into(),
            format!("{d};label=\"{label}\""),
        ));
    }
    if let Some(url) = &p.info_url {
        headers.push(Header::CallInfo(format!("<{url}>;purpose=info").into()));
    }
    headers
}

/// Human label of a specialty skill, for the agent's display.
pub fn specialty_label(skill: &str) -> String {
    match skill {
        "generaliste" => "Médecine générale".into(),
        "cardiologie" => "Cardiologie".into(),
        "kine" => "Kinésithérapie".into(),
        "pediatrie" => "Pédiatrie".into(),
        "infirmier" => "Soins infirmiers".into(),
        "dermatologie" => "Dermatologie".into(),
        "gynecologie" => "Gynécologie".into(),
        other => {
            let mut c = other.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect(),
                None => String::new(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specialty_labels() {
        assert_eq!(specialty_label("generaliste"), "Médecine générale");
        assert_eq!(specialty_label("orthophonie"), "Orthophonie");
        assert_eq!(specialty_label(""), "");
    }

    #[test]
    fn parties_name_themselves_in_logs() {
        assert_eq!(OtherParty::Agent("alice".into()).to_string(), "alice");
        assert_eq!(OtherParty::Route('7').to_string(), "route:7");
    }
}
