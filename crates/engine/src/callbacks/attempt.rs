//! The driver of one try of a callback: the dispatcher offered the request
//! to an agent. Runs the [`Attempt`] core: rings the agent's softphone
//! ("Rappel - <practice>", the patient's number), and once they answer,
//! plays them a ringback tone while the patient is dialled through the
//! outbound trunk as the practice (its number in From and
//! P-Asserted-Identity), then bridges the two. Reports to the dispatcher
//! as the core says (answered, offer failed, released, ended) and its end
//! to the callbacks task. The patient's leg is recorded as an outbound
//! call of origin `callback`.

use super::Msg;
use crate::call::far::{self, FarEvent, FarNews, FarSide, Identity, OtherParty};
use crate::context::CallContext;
use chrono::{DateTime, Utc};
use permanence_acd::{AgentId, CallId, Input as AcdInput, OfferFailure};
use permanence_callbacks::attempt::{Action, Event, Input, Output};
use permanence_callbacks::{AgentFailure, Attempt, AttemptSettings, Outcome};
use permanence_media::Playlist;
use permanence_records::{OutboundOrigin, OutboundOutcome, OutboundRecord};
use rsipstack::sip::Header;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::{info, warn};

/// What the callbacks task tells a try.
pub(super) enum Cmd {
    /// The dispatcher (or an operator) withdrew the offer.
    Withdrawn,
    /// The dispatcher refused the agent's answer (it had withdrawn).
    Refused,
}

/// The request being tried.
pub(super) struct TryInfo {
    pub key: String,
    pub call: CallId,
    pub agent: AgentId,
    pub practice: String,
    pub number: String,
    pub requested_at: DateTime<Utc>,
    /// The try's number (1 for the first).
    pub attempt: u32,
}

/// Tries of this process, for their outbound records' ids.
static NEXT_TRY: AtomicU64 = AtomicU64::new(1);

struct TryDriver {
    ctx: Arc<CallContext>,
    manager: mpsc::UnboundedSender<Msg>,
    /// This try's id for the callbacks task.
    id: u64,
    info: TryInfo,
    core: Attempt,
    agent: Option<FarSide>,
    patient: Option<FarSide>,
    record: Option<OutboundRecord>,
    talk_from: Option<DateTime<Utc>>,
    ended: Option<Outcome>,
}

/// Runs one try until it ends.
pub(super) async fn run(
    ctx: Arc<CallContext>,
    manager: mpsc::UnboundedSender<Msg>,
    id: u64,
    info: TryInfo,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
) {
    let settings = AttemptSettings {
        max_duration: ctx.options.max_call,
        ..AttemptSettings::default()
    };
    let mut d = Box::new(TryDriver {
        ctx,
        manager,
        id,
        info,
        core: Attempt::new(settings),
        agent: None,
        patient: None,
        record: None,
        talk_from: None,
        ended: None,
    });
    d.input(Input::Start);
    loop {
        d.pump().await;
        if d.ended.is_some() {
            break;
        }
        let deadline = d.ctx.clock.instant_or_idle(d.core.poll_timeout());
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                Some(Cmd::Withdrawn) => d.input(Input::OfferCancelled),
                Some(Cmd::Refused) | None => d.input(Input::DriverFailure),
            },
            ev = far::next(&mut d.agent) => d.on_agent(ev).await,
            ev = far::next(&mut d.patient) => d.on_patient(ev).await,
            _ = tokio::time::sleep_until(deadline) => {
                let now = d.now();
                d.core.handle_timeout(now);
            }
        }
    }
    d.finish().await;
}

impl TryDriver {
    fn now(&self) -> DateTime<Utc> {
        self.ctx.clock.now()
    }

    fn input(&mut self, input: Input) {
        let now = self.now();
        self.core.handle(input, now);
    }

    async fn pump(&mut self) {
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::Action(a) => self.apply(a).await,
                Output::Event(e) => self.observe(e),
            }
        }
    }

    async fn on_agent(&mut self, ev: FarEvent) {
        let Some(news) = self.agent.as_mut().and_then(|f| f.digest(ev)) else {
            return;
        };
        let input = match news {
            FarNews::Ringing => Input::AgentRinging,
            FarNews::Answered => Input::AgentAnswered,
            FarNews::Failed { reason, .. } => {
                self.close_agent().await;
                Input::AgentFailed {
                    reason: agent_failure(reason),
                }
            }
            FarNews::Gone | FarNews::Lost => {
                self.close_agent().await;
                Input::AgentBye
            }
            FarNews::MediaTimeout => Input::MediaTimeout,
            FarNews::Hold | FarNews::Unhold => return,
            // Transfers are taken on forwarded calls only.
            FarNews::Refer(r) => {
                let _ = r.verdict.send(false);
                return;
            }
        };
        self.input(input);
    }

    async fn on_patient(&mut self, ev: FarEvent) {
        let Some(news) = self.patient.as_mut().and_then(|f| f.digest(ev)) else {
            return;
        };
        let input = match news {
            FarNews::Ringing => Input::PatientRinging,
            FarNews::Answered => Input::PatientAnswered,
            FarNews::Failed { status, .. } => {
                if let Some(r) = self.record.as_mut() {
                    r.status_code = status;
                }
                self.close_patient().await;
                Input::PatientFailed { status }
            }
            FarNews::Gone | FarNews::Lost => {
                self.close_patient().await;
                Input::PatientBye
            }
            FarNews::MediaTimeout => Input::MediaTimeout,
            FarNews::Hold | FarNews::Unhold => return,
            // Transfers are taken on forwarded calls only.
            FarNews::Refer(r) => {
                let _ = r.verdict.send(false);
                return;
            }
        };
        self.input(input);
    }

    async fn apply(&mut self, action: Action) {
        let call = self.info.call;
        let agent = self.info.agent.clone();
        match action {
            Action::InviteAgent => self.invite_agent(),
            Action::CancelAgent | Action::HangUpAgent => self.close_agent().await,
            Action::ReportAnswered => {
                self.ctx
                    .dispatch
                    .input(AcdInput::OfferAnswered { call, agent });
                let _ = self.manager.send(Msg::AttemptStarted {
                    key: self.info.key.clone(),
                    id: self.id,
                    agent: self.info.agent.to_string(),
                });
            }
            Action::ReportOfferFailed { reason } => {
                self.ctx.dispatch.input(AcdInput::OfferFailed {
                    call,
                    agent,
                    reason: offer_failure(reason),
                })
            }
            Action::PlayRingback => self.play_ringback(),
            Action::DialPatient => self.dial_patient(),
            Action::CancelPatient | Action::HangUpPatient => self.close_patient().await,
            Action::Bridge => {
                let ok = match (&self.agent, &self.patient) {
                    (Some(a), Some(p)) => permanence_media::bridge(&a.media, &p.media).is_ok(),
                    _ => false,
                };
                if !ok {
                    self.input(Input::DriverFailure);
                }
            }
            Action::ReleaseAgent => self.ctx.dispatch.input(AcdInput::CallReleased { call }),
            Action::ReportEnded => self.ctx.dispatch.input(AcdInput::CallEnded { call }),
            Action::Finished(outcome) => self.ended = Some(outcome),
        }
    }

    /// Rings the agent's registered contacts with the callback.
    fn invite_agent(&mut self) {
        let cfg = self.ctx.config.load();
        let Some(practice) = cfg.practice(&self.info.practice) else {
            self.input(Input::DriverFailure);
            return;
        };
        let age = (self.now() - self.info.requested_at).num_seconds().max(0);
        let identity = Identity {
            display_name: format!("Rappel - {}", practice.name),
            user: self.info.number.clone(),
            headers: vec![
                Header::Other("X-Permanence-Practice".into(), practice.id.clone()),
                Header::Other(
                    "X-Permanence-Callback".into(),
                    format!("attempt={};requested-ago={age}", self.info.attempt),
                ),
            ],
        };
        let srtp = cfg
            .agent(self.info.agent.as_str())
            .map(|a| a.srtp)
            .unwrap_or_default();
        drop(cfg);
        let targets = self
            .ctx
            .registrations
            .contacts(self.info.agent.as_str())
            .to_vec();
        let party = OtherParty::Agent(self.info.agent.clone());
        match far::dial(&self.ctx, party, targets, identity, srtp) {
            Ok(side) => self.agent = Some(side),
            Err(reason) => self.input(Input::AgentFailed {
                reason: agent_failure(reason),
            }),
        }
    }

    fn play_ringback(&mut self) {
        let ringback = permanence_media::Prompts::get(permanence_media::Language::Fr)
            .ok()
            .map(|p| p.ringback.clone());
        if let (Some(r), Some(a)) = (ringback, self.agent.as_ref()) {
            let _ = a.media.play(Playlist::looping(r));
        }
    }

    /// Dials the patient as the practice, if its allow-list lets the
    /// number out.
    fn dial_patient(&mut self) {
        let cfg = self.ctx.config.load();
        let Some(practice) = cfg.practice(&self.info.practice) else {
            self.input(Input::DriverFailure);
            return;
        };
        let dest = permanence_outbound::classify(&self.info.number).ok();
        let allowed = dest
            .as_ref()
            .is_some_and(|d| practice.outbound.allow.allows(d));
        let caller_id = practice
            .outbound
            .caller_id
            .as_ref()
            .map(|n| n.as_str().to_string());
        let (Some(dest), true, Some(caller_id)) = (dest, allowed, caller_id) else {
            warn!(event = "callback.refused", key = %self.info.key, practice = %practice.id, number = %permanence_numbers::mask(&self.info.number), "the practice's allow-list (or caller ID) does not let this callback out");
            drop(cfg);
            self.input(Input::Refused);
            return;
        };
        let identity = Identity::as_practice(&self.ctx, &practice.name, &caller_id);
        let name = practice.id.clone();
        drop(cfg);
        let Some(target) = far::gateway_target(&self.ctx, &dest.dial) else {
            warn!(event = "outbound.no_gateway", key = %self.info.key, "no trunk has an outbound gateway: the callback cannot go out");
            self.input(Input::PatientFailed { status: Some(503) });
            return;
        };
        self.record = Some(OutboundRecord {
            id: crate::records::callback_try_record_id(NEXT_TRY.fetch_add(1, Ordering::Relaxed)),
            sip_call_id: String::new(),
            origin: OutboundOrigin::Callback,
            agent: self.info.agent.to_string(),
            practice_id: Some(name),
            caller_id: Some(caller_id),
            destination: Some(dest.dial.clone()),
            destination_class: Some(dest.class.as_str().to_string()),
            started_at: self.ctx.clock.wall(),
            answered_at: None,
            ended_at: None,
            outcome: OutboundOutcome::InProgress,
            refusal: None,
            status_code: None,
            talk_secs: None,
        });
        self.save();
        let srtp = permanence_types::SrtpPolicy::Off;
        match far::dial(
            &self.ctx,
            OtherParty::Destination,
            vec![target],
            identity,
            srtp,
        ) {
            Ok(side) => self.patient = Some(side),
            Err(_) => self.input(Input::PatientFailed { status: None }),
        }
    }

    fn observe(&mut self, e: Event) {
        match e {
            Event::Talking => {
                self.talk_from = Some(self.now());
                if let Some(r) = self.record.as_mut() {
                    r.answered_at = Some(self.ctx.clock.wall());
                }
                self.save();
                self.ctx.activity.talked(
                    &self.info.agent,
                    &self.info.practice,
                    std::time::Instant::now(),
                );
            }
            Event::AgentConnected => info!(
                event = "callback.dialling",
                key = %self.info.key,
                agent = %self.info.agent,
                number = %permanence_numbers::mask(&self.info.number),
                "agent answered the callback: dialling the patient"
            ),
            _ => {}
        }
    }

    fn save(&self) {
        if let (Some(rec), Some(r)) = (&self.ctx.records, &self.record) {
            rec.record_outbound(r.clone());
        }
    }

    async fn close_agent(&mut self) {
        if let Some(a) = self.agent.take() {
            if let Some(p) = &self.patient {
                permanence_media::unbridge(&a.media, &p.media);
            }
            self.ctx.metrics.rtp_add(&a.close().await);
        }
    }

    async fn close_patient(&mut self) {
        if let Some(p) = self.patient.take() {
            if let Some(a) = &self.agent {
                permanence_media::unbridge(&a.media, &p.media);
            }
            self.ctx.metrics.rtp_add(&p.close().await);
        }
    }

    /// Releases both legs, closes the try's outbound record and tells the
    /// callbacks task.
    async fn finish(mut self: Box<Self>) {
        self.close_patient().await;
        self.close_agent().await;
        let outcome = self.ended.unwrap_or(Outcome::OfferFailed);
        if let Some(mut r) = self.record.take() {
            let talk = self
                .talk_from
                .map(|t| (self.now() - t).num_milliseconds() as f64 / 1000.0);
            r.ended_at = Some(self.ctx.clock.wall());
            r.outcome = match outcome.result() {
                Some(permanence_callbacks::AttemptResult::Answered) => OutboundOutcome::Answered,
                Some(permanence_callbacks::AttemptResult::Busy) => OutboundOutcome::Busy,
                Some(permanence_callbacks::AttemptResult::NoAnswer) => OutboundOutcome::NoAnswer,
                Some(permanence_callbacks::AttemptResult::Refused) => OutboundOutcome::Refused,
                _ => OutboundOutcome::Failed,
            };
            r.talk_secs = talk;
            self.record = Some(r);
            self.save();
        }
        let outbound_id = self.record.as_ref().map(|r| r.id.clone());
        let _ = self.manager.send(Msg::AttemptDone {
            key: self.info.key.clone(),
            id: self.id,
            outcome,
            outbound_id,
        });
    }
}

fn agent_failure(f: OfferFailure) -> AgentFailure {
    match f {
        OfferFailure::Busy => AgentFailure::Busy,
        OfferFailure::Rejected => AgentFailure::Rejected,
        OfferFailure::Unreachable => AgentFailure::Unreachable,
    }
}

fn offer_failure(f: AgentFailure) -> OfferFailure {
    match f {
        AgentFailure::Busy => OfferFailure::Busy,
        AgentFailure::Rejected => OfferFailure::Rejected,
        AgentFailure::Unreachable => OfferFailure::Unreachable,
    }
}
