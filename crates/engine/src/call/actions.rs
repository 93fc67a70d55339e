//! [`CallDriver::apply`]: what each of the call core's actions does to the
//! caller's side, the far side, the dispatcher and the records. A failed
//! action is reported back to the core as an input.

use super::far::{self, OtherParty, Presentation};
use super::CallDriver;
use crate::dispatch::DispatchMsg;
use permanence_acd::{ArrivalTarget, CallArrival, Input as AcdInput, SkillRequirement};
use permanence_call::{Action, AgentId, Input, Language, QueueTarget};
use permanence_config::Practice;
use tokio::sync::mpsc;
use tracing::{info, warn};

impl CallDriver {
    /// Carries out one action of the core.
    pub(super) async fn apply(&mut self, action: Action) {
        match action {
            Action::Answer => self.answer(),
            Action::Play(pl) => {
                let audio = self.prompts.playlist(&pl, self.core.language());
                if self.caller.media.play(audio).is_err() {
                    self.input(Input::DriverFailure);
                }
            }
            Action::HangUp => self.caller.hang_up().await,
            Action::Enqueue {
                triage,
                head,
                target,
                language,
            } => self.enqueue(triage, head, target, language),
            Action::SetLanguage(language) => info!(
                event = "call.language",
                practice = %self.practice.id,
                call_id = %self.incoming.sip_call_id,
                call = self.id.0,
                language = language.code(),
                "the caller chose a language"
            ),
            Action::RequestPosition => self.to_dispatcher(DispatchMsg::Position { call: self.id }),
            Action::ReportAbandoned => self.to_acd(AcdInput::CallAbandoned { call: self.id }),
            Action::ReportAnswered { agent } => self.to_acd(AcdInput::OfferAnswered {
                call: self.id,
                agent,
            }),
            Action::ReportOfferFailed { agent, reason } => self.to_acd(AcdInput::OfferFailed {
                call: self.id,
                agent,
                reason,
            }),
            Action::ReportEnded => self.to_acd(AcdInput::CallEnded { call: self.id }),
            Action::InviteAgent { agent } => self.invite_agent(agent).await,
            Action::CancelAgent { agent } | Action::HangUpAgent { agent } => {
                self.close_far_if(&OtherParty::Agent(agent)).await
            }
            Action::HangUpTransfer => {
                if matches!(
                    self.far.as_ref().map(|f| &f.party),
                    Some(OtherParty::Route(_))
                ) {
                    self.close_far().await;
                }
            }
            Action::Bridge => self.bridge(),
            Action::Unbridge => {
                if let Some(f) = &self.far {
                    permanence_media::unbridge(&self.caller.media, &f.media);
                }
            }
            Action::StartRecording(max) => {
                let dir = self.ctx.config.load().records.voicemail_dir.clone();
                let at = self.ctx.clock.wall();
                self.voicemail
                    .start(
                        &dir,
                        &self.practice.id,
                        self.id,
                        at,
                        &self.caller.media,
                        max,
                    )
                    .await;
            }
            Action::StopRecording => {
                let _ = self.caller.media.stop_recording();
            }
            Action::SaveCallback => self.save_callback(),
            Action::RequestCallback { number } => self.request_callback(number),
            Action::Transfer { digit } => self.dial_route(digit),
            Action::DialTransfer { number } => self.dial_transfer(&number),
            Action::JoinTransferred => self.join_transferred(),
            Action::Finished(reason) => self.ended = Some(reason),
        }
    }

    fn answer(&mut self) {
        if !self.caller.answer() {
            self.input(Input::DriverFailure);
            return;
        }
        info!(
            event = "call.answered",
            practice = %self.practice.id,
            open = self.incoming.open,
            call_id = %self.incoming.sip_call_id,
            call = self.id.0,
            rtp_port = self.caller.media.port(),
            codec = ?self.caller.codec(),
            srtp = self.caller.srtp(),
            "call answered"
        );
    }

    fn to_dispatcher(&self, msg: DispatchMsg) {
        self.ctx.dispatch.send(msg);
    }

    fn to_acd(&self, input: AcdInput) {
        self.ctx.dispatch.input(input);
    }

    /// Joins the practice's queue; the dispatcher's commands come back on
    /// a channel of the call's own.
    ///
    /// A call coming back from an agent (a transfer to a colleague or a
    /// pool, or a failed transfer to a number) keeps the time it first
    /// joined (its waits, its routing steps), goes to the head of the
    /// queue when `head`, and only to `target` when given. A caller who
    /// chose English needs an agent who speaks it.
    fn enqueue(
        &mut self,
        triage: Option<char>,
        head: bool,
        target: Option<QueueTarget>,
        language: Language,
    ) {
        let mut a = arrival(&self.practice, self.id, triage);
        if language != Language::Fr {
            a.language = Some(language.code().to_string());
        }
        if head || target.is_some() {
            a.joined_at = self.record.queued_at();
            a.head = head;
            a.target = target.map(|t| match t {
                QueueTarget::Agent(agent) => ArrivalTarget::Agent(agent),
                QueueTarget::Pool(pool) => ArrivalTarget::Pool(pool.as_str().into()),
            });
        }
        let (tx, rx) = mpsc::unbounded_channel();
        self.queue = Some(rx);
        self.to_dispatcher(DispatchMsg::Arrive { arrival: a, tx });
    }

    /// Rings the telesecretary's registered contacts (any previous far side
    /// is released first).
    async fn invite_agent(&mut self, agent: AgentId) {
        self.close_far().await;
        let targets = self.ctx.registrations.contacts(agent.as_str()).to_vec();
        let now = self.now();
        let wait_secs = self
            .record
            .queued_at()
            .map(|q| (now - q).num_seconds())
            .unwrap_or(0);
        let shown = Presentation {
            practice: &self.practice,
            caller: &self.incoming.caller,
            triage: self.core.triage_choice(),
            wait_secs,
        };
        let srtp = self
            .ctx
            .config
            .load()
            .agent(agent.as_str())
            .map(|a| a.srtp)
            .unwrap_or_default();
        match far::open(
            &self.ctx,
            OtherParty::Agent(agent.clone()),
            targets,
            &shown,
            srtp,
        ) {
            Ok(side) => self.far = Some(side),
            Err(reason) => self.input(Input::AgentFailed { agent, reason }),
        }
    }

    /// Calls the number of triage option `digit` through the outbound
    /// trunk; without a number or a trunk the call is queued instead.
    fn dial_route(&mut self, digit: char) {
        let Some((target, masked)) = far::route_target(&self.ctx, &self.practice, digit) else {
            warn!(call_id = %self.incoming.sip_call_id, practice = %self.practice.id, "direct route impossible (no route_to or no outbound trunk): queueing");
            self.input(Input::TransferFailed);
            return;
        };
        info!(event = "call.transfer", call_id = %self.incoming.sip_call_id, practice = %self.practice.id, number = %masked, "direct route");
        let shown = Presentation {
            practice: &self.practice,
            caller: &self.incoming.caller,
            triage: Some(digit),
            wait_secs: 0,
        };
        // The outbound trunk: plain RTP (its signalling is not ours to
        // secure).
        let srtp = permanence_types::SrtpPolicy::Off;
        match far::open(
            &self.ctx,
            OtherParty::Route(digit),
            vec![target],
            &shown,
            srtp,
        ) {
            Ok(side) => self.far = Some(side),
            Err(_) => self.input(Input::TransferFailed),
        }
    }

    /// Calls the number an agent transferred the call to, through the
    /// outbound trunk, presented like a direct route (the practice and the
    /// caller's number): the number comes from the practice's transfer
    /// list, checked against its allow-list when the dialplan was loaded.
    fn dial_transfer(&mut self, number: &str) {
        let Some(target) = far::gateway_target(&self.ctx, number) else {
            warn!(call_id = %self.incoming.sip_call_id, practice = %self.practice.id, "transfer impossible (no outbound trunk): back to the queue");
            self.input(Input::TransferFailed);
            return;
        };
        info!(event = "call.transfer", call_id = %self.incoming.sip_call_id, practice = %self.practice.id, number = %permanence_numbers::mask(number), kind = "blind", "blind transfer");
        let shown = Presentation {
            practice: &self.practice,
            caller: &self.incoming.caller,
            triage: self.core.triage_choice(),
            wait_secs: 0,
        };
        let srtp = permanence_types::SrtpPolicy::Off;
        match far::open(
            &self.ctx,
            OtherParty::TransferNumber,
            vec![target],
            &shown,
            srtp,
        ) {
            Ok(side) => self.far = Some(side),
            Err(_) => self.input(Input::TransferFailed),
        }
    }

    /// Bridges the caller with the other party of an attended transfer.
    fn join_transferred(&mut self) {
        self.far = self.joining.take();
        let ok = self
            .far
            .as_ref()
            .is_some_and(|f| permanence_media::bridge(&self.caller.media, &f.media).is_ok());
        if !ok {
            warn!(call_id = %self.incoming.sip_call_id, "attended transfer: bridge failed");
            self.input(Input::TransferBye);
        }
    }

    fn bridge(&mut self) {
        let ok = self
            .far
            .as_ref()
            .is_some_and(|f| permanence_media::bridge(&self.caller.media, &f.media).is_ok());
        if !ok {
            warn!(call_id = %self.incoming.sip_call_id, "bridge failed");
            self.input(Input::AgentBye);
        }
    }

    /// The caller asked to be called back from the queue: their
    /// dispatcher call, with its place, goes to the callbacks task.
    fn request_callback(&mut self, number: String) {
        let Some(rx) = self.queue.take() else {
            tracing::error!(event = "callback.lost", practice = %self.practice.id, call = self.id.0, "callback asked without a dispatcher call");
            return;
        };
        let now = self.now();
        let triage = self.core.triage_choice();
        let a = arrival(&self.practice, self.id, triage);
        self.to_acd(AcdInput::CallbackRequested { call: self.id });
        info!(
            event = "callback.asked",
            practice = %self.practice.id,
            call_id = %self.incoming.sip_call_id,
            call = self.id.0,
            number = %permanence_numbers::mask(&number),
            "caller asked to be called back, keeping their place"
        );
        let request = crate::callbacks::NewRequest {
            key: format!("{}-cb", self.record.id()),
            call_record: self.record.id().to_string(),
            practice: self.practice.id.clone(),
            number,
            origin: permanence_callbacks::Origin::Caller,
            requested_at: now,
            joined_at: self.record.queued_at().unwrap_or(now),
            priority: a.priority.unwrap_or(self.practice.routing.priority),
            triage,
            queued: Some((self.id, rx)),
        };
        if !self.ctx.callbacks.request(request) {
            tracing::error!(event = "callback.lost", practice = %self.practice.id, call = self.id.0, "callbacks task gone: request not taken");
        }
    }

    /// The queue overflowed to a callback: the caller's number becomes a
    /// request queued again at the call's place. A number that cannot be
    /// called back (withheld, not allowed) is recorded as a failed
    /// request, counted and logged: never dropped silently.
    fn save_callback(&self) {
        let now = self.now();
        let number = callback_number(&self.practice, &self.incoming.caller);
        let key = format!("{}-cb", self.record.id());
        info!(
            event = "callback.overflow",
            practice = %self.practice.id,
            call_id = %self.incoming.sip_call_id,
            call = self.id.0,
            caller = %permanence_numbers::mask(&self.incoming.caller),
            "queue overflowed to a callback request"
        );
        let triage = self.core.triage_choice();
        let joined_at = self.record.queued_at().unwrap_or(now);
        let priority = arrival(&self.practice, self.id, triage)
            .priority
            .unwrap_or(self.practice.routing.priority);
        let Some(number) = number else {
            tracing::error!(
                event = "callback.unreachable",
                practice = %self.practice.id,
                call_id = %self.record.id(),
                caller = %permanence_numbers::mask(&self.incoming.caller),
                "no number to call back (withheld or not allowed): request recorded as failed"
            );
            self.ctx.metrics.callback_requested(
                &self.practice.id,
                permanence_metrics::CallbackOrigin::Overflow,
            );
            self.ctx.metrics.callback_failed(
                &self.practice.id,
                permanence_metrics::CallbackFailure::Refused,
            );
            if let Some(r) = &self.ctx.records {
                r.record_callback_state(permanence_records::CallbackState {
                    key,
                    origin: permanence_records::CallbackOrigin::Overflow,
                    call_id: self.record.id().to_string(),
                    practice_id: self.practice.id.clone(),
                    number: self.incoming.caller.clone(),
                    requested_at: now,
                    joined_at,
                    priority,
                    triage_digit: triage.map(String::from),
                    deadline_at: now + self.practice.callback.within,
                    status: permanence_records::CallbackStatus::Failed,
                    attempts: 0,
                    next_attempt_at: None,
                    last_attempt_at: None,
                    last_result: Some(permanence_records::CallbackResult::Refused),
                    agent: None,
                    completed_at: Some(now),
                    outbound_id: None,
                });
            }
            return;
        };
        let request = crate::callbacks::NewRequest {
            key,
            call_record: self.record.id().to_string(),
            practice: self.practice.id.clone(),
            number,
            origin: permanence_callbacks::Origin::Overflow,
            requested_at: now,
            joined_at,
            priority,
            triage,
            queued: None,
        };
        if !self.ctx.callbacks.request(request) {
            tracing::error!(event = "callback.lost", practice = %self.practice.id, call = self.id.0, "callbacks task gone: request not taken");
        }
    }
}

/// The caller's number as a callback may dial it: a French or E.164 number
/// the practice's allow-list lets out, not an emergency or short code.
fn callback_number(p: &Practice, caller: &str) -> Option<String> {
    use permanence_outbound::DestinationClass as C;
    let n = permanence_numbers::normalize(caller, p.country)?;
    let d = permanence_outbound::classify(n.as_str()).ok()?;
    (!matches!(d.class, C::Emergency | C::Short) && p.outbound.allow.allows(&d)).then_some(d.dial)
}

/// The dispatcher's view of a call to `p` with triage option `triage`:
/// the practice's priority plus the option's, and the option's skills and
/// language.
pub fn arrival(p: &Practice, call: permanence_acd::CallId, triage: Option<char>) -> CallArrival {
    let mut a = CallArrival::new(call, p.id.as_str());
    let option = triage.and_then(|d| p.triage.as_ref().and_then(|t| t.option(d)));
    a.priority = Some(p.routing.priority + option.map(|o| o.priority).unwrap_or(0));
    if let Some(o) = option {
        a.language = o.language.clone();
        a.skills = o
            .skills
            .iter()
            .map(|(skill, level)| SkillRequirement {
                skill: skill.clone(),
                min_level: *level,
            })
            .collect();
    }
    a
}
