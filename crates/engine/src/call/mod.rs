//! The driver of one forwarded call.
//!
//! A [`CallDriver`] owns everything of the call: the call core
//! ([`permanence_call::Call`]), the caller's side ([`caller`]), the far side
//! ([`far`]: the telesecretary or the practitioner's number), the
//! dispatcher's command channel, the voicemail recording (`voicemail.rs`)
//! and the call's record ([`record`]). Its loop waits for the next input
//! from one of those sources, hands it to the core through one handler per
//! source, then carries out the core's outputs: actions through
//! `CallDriver::apply` (in `actions.rs`), events to the observers (the
//! call record, the live view, the log). The far side is closed in one
//! place, `CallDriver::close_far`.

mod actions;
pub mod caller;
pub mod far;
pub mod record;
mod voicemail;

use crate::context::CallContext;
use crate::dispatch::CallCmd;
use crate::live::LiveCall;
use crate::media::PracticePrompts;
use crate::reply;
use caller::Caller;
use chrono::{DateTime, Utc};
use far::{FarEvent, FarNews, FarSide, OtherParty};
use permanence_acd::CallId;
use permanence_call::{
    AbandonPhase, Call, CallSettings, Disposition, EndReason, Event, Input, Output, TriageChoice,
    TriageMenu,
};
use permanence_config::Practice;
use permanence_media::MediaEvent;
use permanence_metrics::RtpTotals;
use record::CallRecordBuilder;
use rsipstack::sip::StatusCode;
use rsipstack::transaction::Transaction;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};
use voicemail::Voicemail;

/// What the SIP front knows about a forwarded call when it hands it over.
#[derive(Debug, Clone)]
pub struct IncomingCall {
    /// Practice id.
    pub practice: String,
    /// Whether the practice is open now (wall clock).
    pub open: bool,
    /// SIP Call-ID of the carrier leg.
    pub sip_call_id: String,
    /// Caller's number in E.164 when it is one, else the raw user part.
    pub caller: String,
    /// The carrier trunk.
    pub trunk: String,
    /// The practice number that identified the call.
    pub called: String,
    /// Where that number was found.
    pub via: permanence_sip::intake::NumberSource,
    /// When the INVITE arrived (wall clock).
    pub received_at: DateTime<Utc>,
}

/// Our call numbers (dispatcher `CallId`), unique per process.
static NEXT_CALL: AtomicU64 = AtomicU64::new(1);

/// A new dispatcher call number (forwarded calls, and callback requests
/// queued again).
pub fn next_call_id() -> CallId {
    CallId(NEXT_CALL.fetch_add(1, Ordering::Relaxed))
}

pub use actions::arrival;

/// Answers and runs one forwarded call until it ends.
pub async fn run_call(ctx: Arc<CallContext>, tx: Box<Transaction>, incoming: IncomingCall) {
    // Answering is a future of its own, boxed for its duration: what it
    // holds (the practice, the caller's transaction) must not stay in the
    // call's future for the life of the call.
    if let Some(driver) = Box::pin(answer(ctx, tx, incoming)).await {
        driver.run().await;
    }
}

/// Finds the practice and its prompts, answers the caller and builds the
/// call's driver (boxed: about 2.3 KB, held once).
async fn answer(
    ctx: Arc<CallContext>,
    mut tx: Box<Transaction>,
    incoming: IncomingCall,
) -> Option<Box<CallDriver>> {
    let Some(practice) = ctx.config.load().practice(&incoming.practice).cloned() else {
        reply(&mut tx, StatusCode::NotFound, vec![]).await;
        return None;
    };
    let Some(prompts) = ctx.media.prompts(&practice.id) else {
        warn!(practice = %practice.id, "no prompts for practice");
        reply(&mut tx, StatusCode::ServerInternalError, vec![]).await;
        return None;
    };
    let caller = Caller::take(&ctx, tx, &incoming.sip_call_id).await?;
    Some(Box::new(CallDriver::new(
        ctx, practice, prompts, incoming, caller,
    )))
}

/// One forwarded call: its core and every source of its inputs.
pub struct CallDriver {
    ctx: Arc<CallContext>,
    id: CallId,
    practice: Practice,
    prompts: PracticePrompts,
    incoming: IncomingCall,
    core: Call,
    caller: Caller,
    far: Option<FarSide>,
    /// The other party of an attended transfer, until the core joins it.
    joining: Option<FarSide>,
    /// Commands from the dispatcher, once the call is queued.
    queue: Option<mpsc::UnboundedReceiver<CallCmd>>,
    record: CallRecordBuilder,
    voicemail: Voicemail,
    /// Media counters of far sides already closed.
    rtp_far: RtpTotals,
    ended: Option<EndReason>,
}

impl CallDriver {
    fn new(
        ctx: Arc<CallContext>,
        practice: Practice,
        prompts: PracticePrompts,
        incoming: IncomingCall,
        caller: Caller,
    ) -> Self {
        let id = next_call_id();
        let record = CallRecordBuilder::new(crate::records::record_id(id), &incoming);
        ctx.live.insert(LiveCall::new(
            id.0,
            record.id().to_string(),
            practice.id.clone(),
            permanence_numbers::mask(&incoming.caller),
            ctx.clock.wall(),
        ));
        let core = Call::new(settings(&ctx, &practice, &incoming.caller));
        Self {
            ctx,
            id,
            practice,
            prompts,
            incoming,
            core,
            caller,
            far: None,
            joining: None,
            queue: None,
            record,
            voicemail: Voicemail::default(),
            rtp_far: RtpTotals::default(),
            ended: None,
        }
    }

    /// Runs the call until it ends, then releases everything.
    pub async fn run(mut self: Box<Self>) {
        self.start().await;
        loop {
            self.pump().await;
            if self.ended.is_some() {
                break;
            }
            let deadline = self.ctx.clock.instant_or_idle(self.core.poll_timeout());
            tokio::select! {
                st = self.caller.states.recv() => Box::pin(self.on_caller_dialog(st)).await,
                ev = self.caller.media_events.recv() => self.on_caller_media(ev),
                cmd = next_cmd(&mut self.queue) => self.on_dispatcher(cmd),
                ev = far::next(&mut self.far) => Box::pin(self.on_far(ev)).await,
                _ = tokio::time::sleep_until(deadline) => self.core.handle_timeout(self.now()),
            }
        }
        Box::pin(self.finish()).await;
    }

    /// Engine time (monotonic), for the core.
    fn now(&self) -> DateTime<Utc> {
        self.ctx.clock.now()
    }

    /// Feeds one input to the core.
    fn input(&mut self, input: Input) {
        let now = self.now();
        self.core.handle(input, now);
    }

    /// The optional ringing before the answer (the caller may cancel
    /// meanwhile), then the core's start.
    async fn start(&mut self) {
        let delay = self.ctx.options.answer_delay;
        if !delay.is_zero() {
            self.caller.ringing();
            let until = tokio::time::Instant::now() + delay;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => break,
                    st = self.caller.states.recv() => {
                        if matches!(st, Some(rsipstack::dialog::dialog::DialogState::Terminated(..)) | None) {
                            self.input(Input::CallerCancel);
                            return;
                        }
                    }
                }
            }
        }
        let open = self.incoming.open;
        self.input(Input::Start { open });
    }

    /// Carries out the core's outputs, in order, until none is left.
    async fn pump(&mut self) {
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::Action(a) => self.apply(a).await,
                Output::Event(e) => self.observe(&e),
            }
        }
    }

    /// Hands an event to the observers: the call record, the live view and
    /// the log.
    fn observe(&mut self, event: &Event) {
        self.record.observe(event, self.now());
        self.ctx
            .live
            .observe(self.id.0, event, self.ctx.clock.wall());
        match event {
            Event::AgentLost => {
                self.ctx.metrics.agent_lost();
                warn!(
                    event = "call.agent_lost",
                    practice = %self.practice.id,
                    call_id = %self.incoming.sip_call_id,
                    call = self.id.0,
                    "the telesecretary's softphone vanished: the caller goes back to the head of the queue"
                );
            }
            Event::Queued { triage } => info!(
                event = "call.queued",
                practice = %self.practice.id,
                call_id = %self.incoming.sip_call_id,
                call = self.id.0,
                triage = triage.map(String::from).unwrap_or_default(),
                triage_label = triage.map(|d| self.triage_label(d)).unwrap_or_default(),
                language = self.core.language().code(),
                "call queued"
            ),
            Event::Ended(reason) => self.ended = Some(*reason),
            Event::Connected { agent } => {
                self.ctx
                    .activity
                    .talked(agent, &self.practice.id, std::time::Instant::now())
            }
            _ => {}
        }
        if matches!(
            event,
            Event::Answered { .. } | Event::Queued { .. } | Event::Connected { .. }
        ) {
            self.save_progress();
        }
    }

    /// Writes the call's record as it stands (in progress), so that a crash
    /// never leaves a call without one.
    fn save_progress(&self) {
        if let Some(r) = &self.ctx.records {
            let practice = &self.practice;
            r.record_call(self.record.in_progress(
                self.ctx.clock.now(),
                self.ctx.clock.wall_offset(),
                |d| triage_label(practice, d),
            ));
        }
    }

    /// The label of triage option `digit` of the practice.
    fn triage_label(&self, digit: char) -> String {
        triage_label(&self.practice, digit)
    }

    // ---------------------------------------------------------- handlers

    async fn on_caller_dialog(&mut self, st: Option<rsipstack::dialog::dialog::DialogState>) {
        if let Some(input) = self.caller.on_dialog(st).await {
            self.input(input);
        }
    }

    fn on_caller_media(&mut self, ev: Option<MediaEvent>) {
        let input = match ev {
            Some(MediaEvent::PlaybackFinished) => Input::PlaybackFinished,
            Some(MediaEvent::Dtmf(d)) => Input::Dtmf(d),
            Some(MediaEvent::RtpTimeout) | Some(MediaEvent::NoRtp) => Input::MediaTimeout,
            Some(MediaEvent::Latched(addr)) => {
                debug!(call_id = %self.incoming.sip_call_id, %addr, "caller RTP latched");
                return;
            }
            Some(MediaEvent::RecordingFinished { path, duration, .. }) => {
                self.voicemail.verdict(
                    &self.practice.id,
                    &self.incoming.sip_call_id,
                    &path,
                    Ok(duration),
                );
                return;
            }
            Some(MediaEvent::RecordingFailed { path, error }) => {
                self.voicemail.verdict(
                    &self.practice.id,
                    &self.incoming.sip_call_id,
                    &path,
                    Err(&error),
                );
                return;
            }
            Some(_) => return,
            None => Input::DriverFailure,
        };
        self.input(input);
    }

    fn on_dispatcher(&mut self, cmd: Option<CallCmd>) {
        let input = match cmd {
            Some(CallCmd::Offer { agent }) => Input::Offer { agent },
            Some(CallCmd::CancelOffer { agent }) => Input::OfferCancelled { agent },
            Some(CallCmd::Overflow(kind)) => Input::Overflow(kind),
            Some(CallCmd::Closed) => Input::Closed,
            Some(CallCmd::Position { position, wait }) => Input::Position { position, wait },
            Some(CallCmd::AnswerRefused { agent }) => Input::AnswerRefused { agent },
            None => {
                self.queue = None;
                return;
            }
        };
        self.input(input);
    }

    async fn on_far(&mut self, ev: FarEvent) {
        let Some(f) = self.far.as_mut() else {
            return;
        };
        let party = f.party.clone();
        let Some(mut news) = f.digest(ev) else {
            return;
        };
        match news {
            FarNews::Refer(r) => return Box::pin(self.on_refer(&party, *r)).await,
            FarNews::Failed { .. } | FarNews::Gone | FarNews::Lost => self.close_far().await,
            // The far side's media stopped once answered: it vanished.
            FarNews::MediaTimeout => {
                info!(call_id = %self.incoming.sip_call_id, "agent RTP timeout: ending the call");
                self.close_far().await;
                news = FarNews::Gone;
            }
            _ => {}
        }
        if let Some(input) = far_input(&party, news) {
            self.input(input);
        }
    }

    /// The agent's softphone asks to transfer the call (REFER): accepted
    /// when the agent is talking with the caller and the target is one of
    /// the practice's transfer list (by code, number, agent or pool) or
    /// an agent or pool of the service; the core then does the rest.
    async fn on_refer(&mut self, party: &OtherParty, r: crate::leg::ReferRequest) {
        if let Some(call_id) = r.replaces.clone() {
            return self.on_attended_refer(party, r, &call_id).await;
        }
        let to = match party {
            OtherParty::Agent(_) if self.core.can_transfer() => {
                transfer_target(&self.ctx.config.load(), &self.practice, &r.target)
            }
            _ => None,
        };
        info!(
            event = "call.refer",
            practice = %self.practice.id,
            call_id = %self.incoming.sip_call_id,
            call = self.id.0,
            target = %permanence_numbers::mask(&r.target),
            accepted = to.is_some(),
            "agent asked to transfer the call"
        );
        let _ = r.verdict.send(to.is_some());
        if let Some(to) = to {
            self.input(Input::TransferRequested { to });
        }
    }

    /// An attended transfer: the agent talking with the caller called
    /// someone else from their softphone (an outbound call, through the
    /// toll-fraud guard) and asks to replace themselves with that party
    /// (REFER with Replaces naming that call). The outbound call hands its
    /// destination's leg over; the agent leaves both calls.
    async fn on_attended_refer(
        &mut self,
        party: &OtherParty,
        r: crate::leg::ReferRequest,
        call_id: &str,
    ) {
        let consult = match party {
            OtherParty::Agent(agent) if self.core.can_transfer() => {
                self.ctx.activity.consult_of(call_id, agent)
            }
            _ => None,
        };
        let mut leg = None;
        if let Some(tx) = consult {
            let (reply, rx) = tokio::sync::oneshot::channel();
            if tx.send(crate::activity::HandOver { reply }).is_ok() {
                leg = tokio::time::timeout(std::time::Duration::from_secs(2), rx)
                    .await
                    .ok()
                    .and_then(|r| r.ok())
                    .flatten();
            }
        }
        info!(
            event = "call.refer",
            practice = %self.practice.id,
            call_id = %self.incoming.sip_call_id,
            call = self.id.0,
            target = %permanence_numbers::mask(&r.target),
            attended = true,
            accepted = leg.is_some(),
            "agent asked to transfer the call"
        );
        let _ = r.verdict.send(leg.is_some());
        if let Some(mut leg) = leg {
            leg.party = OtherParty::TransferNumber;
            self.joining = Some(leg);
            self.input(Input::AttendedTransfer);
        }
    }

    /// The one way the far side is released: unbridged from the caller,
    /// its leg ended (CANCEL or BYE), its media closed and counted.
    async fn close_far(&mut self) {
        if let Some(f) = self.far.take() {
            permanence_media::unbridge(&self.caller.media, &f.media);
            self.rtp_far += f.close().await;
        }
    }

    /// Releases the far side if it is `party`.
    async fn close_far_if(&mut self, party: &OtherParty) {
        if self.far.as_ref().is_some_and(|f| &f.party == party) {
            self.close_far().await;
        }
    }

    /// Counts the ended call in its practice's figures
    /// (`permanence_calls_*_total`), from the disposition the core decided;
    /// `short` abandons are measured from the engine's answer.
    fn count(&self, disposition: Disposition) {
        let since_answer = self
            .core
            .started_at()
            .and_then(|t| (self.now() - t).to_std().ok())
            .unwrap_or_default();
        if let Ok(m) = self.ctx.metrics.practice(&self.practice.id) {
            m.call_ended(disposition, since_answer);
        }
    }

    /// After the core finished: release every leg, account for media and
    /// the voicemail, count the call, write the record and the log line.
    async fn finish(mut self) {
        let reason = self.ended.unwrap_or(EndReason::Failure);
        self.close_far().await;
        if let Some(j) = self.joining.take() {
            self.rtp_far += j.close().await;
        }
        self.voicemail
            .confirm(
                &self.practice.id,
                &self.incoming.sip_call_id,
                &mut self.caller,
            )
            .await;
        let disposition = self.core.disposition().unwrap_or(Disposition::Failed);
        self.count(disposition);
        self.mail_voicemail();
        let stats = self.caller.media.stats();
        let mut rtp = self.rtp_far;
        rtp += far::rtp_totals(&stats);
        self.ctx.metrics.rtp_add(&rtp);
        self.ctx.live.remove(self.id.0);
        if let Some(r) = &self.ctx.records {
            let practice = &self.practice;
            r.record_call(self.record.finish(
                reason,
                disposition,
                permanence_records::RtpCounters {
                    packets_in: stats.packets_in,
                    packets_out: stats.packets_out,
                    packets_lost: stats.lost,
                },
                self.ctx.clock.now(),
                self.ctx.clock.wall_offset(),
                |d| triage_label(practice, d),
            ));
        }
        let started = self.incoming.received_at;
        let seconds = (self.ctx.clock.wall() - started).num_milliseconds() as f64 / 1000.0;
        info!(
            event = "call.ended",
            practice = %self.practice.id,
            reason = reason.as_str(),
            offered = disposition.offered(),
            abandon_phase = disposition.abandon_phase().map_or("", AbandonPhase::as_str),
            call_id = %self.incoming.sip_call_id,
            call = self.id.0,
            agent = self.record.agent().map(|a| a.as_str()).unwrap_or(""),
            voicemail = self.voicemail.path_text(),
            seconds,
            packets_out = stats.packets_out,
            packets_in = stats.packets_in,
            "call ended"
        );
        self.caller.close(&self.ctx).await;
    }
}

impl CallDriver {
    /// Hands a finalised voicemail message to the mailer: e-mailed to the
    /// practice's `[voicemail] email` addresses with the caller's number,
    /// the time, the triage choice and the duration.
    fn mail_voicemail(&self) {
        let Some((wav, at, duration)) = self.voicemail.message() else {
            return;
        };
        let p = &self.practice;
        let caller = &self.incoming.caller;
        let message = permanence_mailer::VoicemailMessage {
            call_id: self.record.id().to_owned(),
            practice_id: p.id.clone(),
            practice_name: p.name.clone(),
            timezone: p.timezone.name().to_owned(),
            recipients: p.voicemail_email.clone(),
            wav: wav.to_path_buf(),
            caller: (!caller.is_empty() && caller != "anonymous").then(|| caller.clone()),
            recorded_at: at,
            duration_secs: duration.as_secs_f64(),
            triage: self
                .record
                .triage()
                .map(|d| format!("{} (touche {d})", triage_label(p, d))),
        };
        if p.voicemail_email.is_empty() || !self.ctx.mailer.deliver(message) {
            info!(
                event = "voicemail.not_mailed",
                practice = %p.id,
                call = self.id.0,
                "voicemail message kept on disk only (no e-mail configured)"
            );
        }
    }
}

/// The core's input for news of the far side: a telesecretary's inputs for
/// an agent, the direct route's for a triage number (whose ringing or hold
/// changes nothing).
fn far_input(party: &OtherParty, news: FarNews) -> Option<Input> {
    Some(match (party, news) {
        (OtherParty::Agent(a), FarNews::Ringing) => Input::AgentRinging { agent: a.clone() },
        (OtherParty::Agent(a), FarNews::Answered) => Input::AgentAnswered { agent: a.clone() },
        (OtherParty::Agent(a), FarNews::Failed { reason, .. }) => Input::AgentFailed {
            agent: a.clone(),
            reason,
        },
        (OtherParty::Agent(_), FarNews::Gone) => Input::AgentBye,
        (OtherParty::Agent(_), FarNews::Lost) => Input::AgentLost,
        (OtherParty::Agent(_), FarNews::Hold) => Input::AgentHold,
        // Answered by `on_far` before this mapping.
        (_, FarNews::MediaTimeout | FarNews::Refer(_)) => return None,
        (OtherParty::Agent(_), FarNews::Unhold) => Input::AgentUnhold,
        (OtherParty::Route(_), FarNews::Answered) => Input::TransferAnswered,
        (OtherParty::Route(_), FarNews::Failed { .. }) => Input::TransferFailed,
        (OtherParty::Route(_), FarNews::Gone | FarNews::Lost) => Input::TransferBye,
        (OtherParty::Route(_), FarNews::Ringing | FarNews::Hold | FarNews::Unhold) => return None,
        (OtherParty::TransferNumber, FarNews::Answered) => Input::TransferAnswered,
        (OtherParty::TransferNumber, FarNews::Failed { .. }) => Input::TransferFailed,
        (OtherParty::TransferNumber, FarNews::Gone | FarNews::Lost) => Input::TransferBye,
        // A forwarded call never dials an outbound destination itself.
        (OtherParty::Destination | OtherParty::TransferNumber, _) => return None,
    })
}

/// Where a REFER's target sends the call: an entry of the practice's
/// transfer list (by code, or by its number written any way), else an
/// agent or a pool of the service by name. Anything else is refused: a
/// number outside the list never leaves through a transfer.
fn transfer_target(
    cfg: &permanence_config::Config,
    practice: &Practice,
    target: &str,
) -> Option<permanence_call::TransferTo> {
    use permanence_call::TransferTo as T;
    use permanence_config::TransferTo as C;
    let number = permanence_numbers::normalize(target, practice.country);
    let entry = practice.transfers.iter().find(|t| {
        t.code == target || matches!((&t.to, &number), (C::Number(n), Some(m)) if n == m)
    });
    let to = match entry.map(|e| &e.to) {
        Some(C::Number(n)) => T::Number(n.as_str().to_string()),
        Some(C::Agent(a)) => T::Agent(a.clone()),
        Some(C::Pool(p)) => T::Pool(p.to_string()),
        None if cfg.agent(target).is_some() => T::Agent(target.into()),
        None if cfg.pool(target).is_some() => T::Pool(target.to_string()),
        None => return None,
    };
    Some(to)
}

/// The label of triage option `digit` of `practice` (empty if unknown).
fn triage_label(practice: &Practice, digit: char) -> String {
    practice
        .triage
        .as_ref()
        .and_then(|t| t.option(digit))
        .map(|o| o.label.clone())
        .unwrap_or_default()
}

/// The call core's settings for a call to `practice` from `caller`.
fn settings(ctx: &CallContext, practice: &Practice, caller: &str) -> CallSettings {
    let q = &practice.queue;
    CallSettings {
        max_duration: ctx.options.max_call,
        triage: practice.triage.as_ref().map(|t| TriageMenu {
            timeout: t.timeout,
            default: t.default,
            options: t
                .options
                .iter()
                .map(|o| TriageChoice {
                    digit: o.digit,
                    direct_route: o.route_to.is_some(),
                })
                .collect(),
        }),
        announce_every: (q.announce_position || q.announce_wait).then_some(q.announce_every),
        english: practice.english_digit(),
        voicemail_max: ctx.config.load().records.voicemail_max,
        callback: practice
            .callback
            .offer
            .as_ref()
            .map(|o| permanence_call::CallbackSettings {
                digit: o.digit,
                offer_after: o.after,
                presented: permanence_numbers::normalize(caller, practice.country)
                    .map(|n| n.as_str().to_string()),
                accept: practice.outbound.allow.clone(),
            }),
        announcement: announcement(ctx, practice),
        closed_voicemail: practice.when_closed == permanence_config::WhenClosed::Voicemail,
    }
}

/// The practice's dated announcement of today (wall clock, in its time
/// zone), for the call core.
fn announcement(ctx: &CallContext, practice: &Practice) -> Option<permanence_call::Announcement> {
    let (index, a) = practice.announcement_at(ctx.clock.wall())?;
    info!(
        event = "call.announcement",
        practice = %practice.id,
        index,
        mode = a.mode.as_str(),
        label = %a.label,
        "dated announcement of the day"
    );
    Some(permanence_call::Announcement {
        index: u16::try_from(index).ok()?,
        mode: a.mode,
    })
}

async fn next_cmd(rx: &mut Option<mpsc::UnboundedReceiver<CallCmd>>) -> Option<CallCmd> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}
