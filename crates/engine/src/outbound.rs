//! The driver of a telesecretary's outbound call.
//!
//! An authenticated agent dials a number from the softphone
//! (`*8<practice code>*<number>`, or a bare number for the practice of
//! their last conversation). [`place`] looks up what the verdict needs and
//! asks [`permanence_outbound::decide`]; the [`OutboundDriver`] then runs
//! the call core ([`permanence_outbound::OutboundCall`]): the agent's
//! INVITE on one side (a [`Caller`], since the agent is the calling party
//! here), the gateway leg on the other ([`FarSide`], through the outbound
//! trunk, with the practice's number in From and P-Asserted-Identity).
//!
//! A refused call (the toll-fraud guard, no practice, the per-agent cap)
//! hears its reason as early media, then gets 403 (484 for a number that
//! is not one); it is counted, logged with the number masked, audited and
//! recorded. Nothing reaches the gateway.

use crate::activity::{Consult, HandOver, OutboundSlot};
use crate::audit::{Action as Audited, AuditLog, Outcome as AuditOutcome};
use crate::call::caller::Caller;
use crate::call::far::{self, FarEvent, FarNews, FarSide, Identity, OtherParty};
use crate::context::CallContext;
use crate::reply;
use chrono::{DateTime, Utc};
use permanence_acd::AgentId;
use permanence_media::{MediaEvent, Playlist};
use permanence_outbound::call::{Action, Event, Input, Output};
use permanence_outbound::{
    decide, parse_dialled, CallLimits, DialFacts, OutboundCall, Outcome, Placement, PracticeView,
    Refusal,
};
use permanence_records::{OutboundOrigin, OutboundRecord};
use rsipstack::sip::StatusCode;
use rsipstack::transaction::Transaction;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::{info, warn};

/// Our outbound call numbers, unique per process.
static NEXT_OUTBOUND: AtomicU64 = AtomicU64::new(1);

/// Whether `dialled` asks for an outbound call (a number, or the `*8`
/// prefix), rather than a feature code.
pub fn is_outbound(dialled: &str) -> bool {
    parse_dialled(dialled).is_some()
}

/// Who asks for the call and from where.
pub struct Request {
    /// The authenticated agent.
    pub agent: AgentId,
    /// The Request-URI user part.
    pub dialled: String,
    /// The INVITE's source (audit).
    pub source: SocketAddr,
}

/// Handles an authenticated agent's INVITE to a number: decides, then
/// runs the call until it ends.
pub async fn place(ctx: Arc<CallContext>, audit: AuditLog, mut tx: Box<Transaction>, req: Request) {
    let Some(dial) = parse_dialled(&req.dialled) else {
        reply(&mut tx, StatusCode::NotFound, vec![]).await;
        return;
    };
    let sip_call_id = permanence_sip::extract::call_id(&tx.original).unwrap_or_default();
    ctx.activity.prune(
        std::time::Duration::from_secs(24 * 3600),
        std::time::Instant::now(),
    );
    let Some(agent_side) = Caller::take(&ctx, tx, &sip_call_id).await else {
        return;
    };
    let verdict = verdict(
        &ctx,
        &req.agent,
        dial.practice_code.as_deref(),
        &dial.number,
    );
    let mut driver = Box::new(OutboundDriver::new(
        ctx,
        audit,
        req,
        sip_call_id,
        agent_side,
    ));
    driver.start(verdict);
    driver.run().await;
}

/// What the call may do: a placement with the agent's outbound slot held,
/// or a refusal (with the practice, when one was found, for the record).
type Verdict = Result<(Placement, OutboundSlot), (Refusal, Option<String>)>;

/// Looks up the practice (by code, else the agent's recent one), the
/// allow-lists and the agent's calls in progress, and decides.
fn verdict(ctx: &CallContext, agent: &AgentId, code: Option<&str>, number: &str) -> Verdict {
    let cfg = ctx.config.load();
    let settings = &cfg.outbound;
    // A practice named by its code must be one the agent serves; the
    // practice of their last conversation is one they just served (an
    // overflow pool's call included).
    let (practice, recent) = match code {
        Some(code) => (cfg.practice_by_code(code), false),
        None => (
            ctx.activity
                .recent_practice(agent, settings.recent_practice, std::time::Instant::now())
                .and_then(|id| cfg.practice(&id)),
            true,
        ),
    };
    let agent_cfg = cfg.agent(agent.as_str());
    let view = practice.map(|p| PracticeView {
        id: &p.id,
        caller_id: p.outbound.caller_id.as_ref().map(|n| n.as_str()),
        allow: &p.outbound.allow,
        agent_serves: agent_cfg.is_some_and(|a| recent || cfg.serves(a, p)),
    });
    let facts = DialFacts {
        number,
        practice: view,
        agent_allow: agent_cfg.and_then(|a| a.outbound_allow.as_ref()),
        in_progress: ctx.activity.outbound_calls(agent),
        max_per_agent: settings.max_calls_per_agent,
    };
    let practice_id = practice.map(|p| p.id.clone());
    let placement = decide(&facts).map_err(|r| (r, practice_id.clone()))?;
    // The count may have moved since `facts`: the slot is the real check.
    match ctx
        .activity
        .begin_outbound(agent, settings.max_calls_per_agent, &ctx.dispatch)
    {
        Some(slot) => Ok((placement, slot)),
        None => Err((Refusal::TooManyCalls, practice_id)),
    }
}

/// One outbound call: its core, the agent's side and the gateway leg.
pub struct OutboundDriver {
    ctx: Arc<CallContext>,
    audit: AuditLog,
    req: Request,
    core: OutboundCall,
    agent_side: Caller,
    far: Option<FarSide>,
    placement: Option<Placement>,
    slot: Option<OutboundSlot>,
    /// Requests for the destination's leg (an attended transfer naming
    /// this call), and the registration that lets them arrive.
    hand_over: mpsc::UnboundedReceiver<HandOver>,
    _consult: Option<Consult>,
    record: OutboundRecord,
    /// When the conversation started (engine time), for its duration.
    talk_from: Option<DateTime<Utc>>,
    /// The gateway's failure status, for the record.
    far_status: Option<u16>,
    /// Whether the call was placed (counted as in progress).
    dialled: bool,
    ended: Option<Outcome>,
}

impl OutboundDriver {
    fn new(
        ctx: Arc<CallContext>,
        audit: AuditLog,
        req: Request,
        sip_call_id: String,
        agent_side: Caller,
    ) -> Self {
        let n = NEXT_OUTBOUND.fetch_add(1, Ordering::Relaxed);
        let (hand_over_tx, hand_over) = mpsc::unbounded_channel();
        let consult = (!sip_call_id.is_empty())
            .then(|| ctx.activity.consult(&sip_call_id, &req.agent, hand_over_tx));
        let limits = CallLimits {
            ring_timeout: ctx.config.load().outbound.ring_timeout,
            max_duration: ctx.options.max_call,
            ..CallLimits::default()
        };
        let record = OutboundRecord {
            id: crate::records::outbound_record_id(n),
            sip_call_id,
            origin: OutboundOrigin::Agent,
            agent: req.agent.to_string(),
            practice_id: None,
            caller_id: None,
            destination: None,
            destination_class: None,
            started_at: ctx.clock.wall(),
            answered_at: None,
            ended_at: None,
            outcome: permanence_records::OutboundOutcome::InProgress,
            refusal: None,
            status_code: None,
            talk_secs: None,
        };
        Self {
            ctx,
            audit,
            req,
            core: OutboundCall::new(limits),
            agent_side,
            far: None,
            placement: None,
            slot: None,
            hand_over,
            _consult: consult,
            record,
            talk_from: None,
            far_status: None,
            dialled: false,
            ended: None,
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.ctx.clock.now()
    }

    fn input(&mut self, input: Input) {
        let now = self.now();
        self.core.handle(input, now);
    }

    /// Feeds the verdict to the core.
    fn start(&mut self, verdict: Verdict) {
        let refused = match verdict {
            Ok((placement, slot)) => {
                self.record.practice_id = Some(placement.practice.clone());
                self.record.caller_id = Some(placement.caller_id.clone());
                self.record.destination = Some(placement.destination.dial.clone());
                self.record.destination_class =
                    Some(placement.destination.class.as_str().to_string());
                self.placement = Some(placement);
                self.slot = Some(slot);
                None
            }
            Err((refusal, practice)) => {
                self.record.practice_id = practice;
                Some(refusal)
            }
        };
        self.input(Input::Start { refused });
    }

    /// Runs the call until it ends, then releases everything.
    async fn run(mut self: Box<Self>) {
        loop {
            self.pump().await;
            if self.ended.is_some() {
                break;
            }
            let deadline = self.ctx.clock.instant_or_idle(self.core.poll_timeout());
            let browser_gone = self.agent_side.browser_gone();
            tokio::select! {
                st = self.agent_side.states.recv() => {
                    if let Some(input) = self.agent_side.on_dialog(st).await {
                        self.on_agent(input);
                    }
                }
                ev = self.agent_side.media_events.recv() => self.on_agent_media(ev),
                _ = browser_gone => {
                    info!(event = "outbound.browser_gone", agent = %self.req.agent, "the agent's browser is gone: ending the call");
                    self.on_agent(permanence_call::Input::CallerBye);
                }
                ev = far::next(&mut self.far) => self.on_far(ev).await,
                Some(req) = self.hand_over.recv() => self.on_hand_over(req),
                _ = tokio::time::sleep_until(deadline) => {
                    let now = self.now();
                    self.core.handle_timeout(now);
                }
            }
        }
        self.finish().await;
    }

    async fn pump(&mut self) {
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::Action(a) => self.apply(a).await,
                Output::Event(e) => self.observe(e),
            }
        }
    }

    fn on_agent(&mut self, input: permanence_call::Input) {
        use permanence_call::Input as C;
        match input {
            C::CallerCancel | C::CallerBye => self.input(Input::AgentGone),
            C::DriverFailure => self.input(Input::DriverFailure),
            _ => {}
        }
    }

    fn on_agent_media(&mut self, ev: Option<MediaEvent>) {
        match ev {
            Some(MediaEvent::PlaybackFinished) => self.input(Input::PlaybackFinished),
            Some(MediaEvent::RtpTimeout) if self.core.is_talking() => {
                self.input(Input::MediaTimeout)
            }
            Some(_) => {}
            None => self.input(Input::DriverFailure),
        }
    }

    async fn on_far(&mut self, ev: FarEvent) {
        let Some(news) = self.far.as_mut().and_then(|f| f.digest(ev)) else {
            return;
        };
        let input = match news {
            FarNews::Ringing => Input::FarRinging,
            FarNews::Answered => Input::FarAnswered,
            FarNews::Failed { status, .. } => {
                self.far_status = status;
                self.close_far().await;
                Input::FarFailed { status }
            }
            FarNews::Gone | FarNews::Lost => {
                self.close_far().await;
                Input::FarBye
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

    /// An attended transfer of the agent names this call: while the
    /// destination talks with the agent, its leg goes to the call the
    /// agent transfers (the agent's side here is hung up); else nothing.
    fn on_hand_over(&mut self, req: HandOver) {
        let leg = match self.far.take() {
            Some(f) if self.core.is_talking() => {
                permanence_media::unbridge(&self.agent_side.media, &f.media);
                Some(f)
            }
            other => {
                self.far = other;
                None
            }
        };
        let handed = leg.is_some();
        match req.reply.send(leg) {
            Ok(()) if handed => {
                info!(event = "outbound.transferred", agent = %self.req.agent, "destination handed over to an attended transfer");
                self.input(Input::HandedOver);
            }
            Ok(()) => {}
            // The transferring call is gone meanwhile: the conversation
            // here goes on.
            Err(back) => {
                self.far = back;
                if let Some(f) = &self.far {
                    let _ = permanence_media::bridge(&self.agent_side.media, &f.media);
                }
            }
        }
    }

    async fn apply(&mut self, action: Action) {
        match action {
            Action::PlayRefusal(refusal) => self.play_refusal(refusal),
            Action::Reject { status } => self.agent_side.reject(status),
            Action::Dial => self.dial(),
            Action::RingAgent => self.ring_agent(),
            Action::AnswerAgent => {
                if !self.agent_side.answer() {
                    self.input(Input::DriverFailure);
                }
            }
            Action::Bridge => {
                let ok = self.far.as_ref().is_some_and(|f| {
                    permanence_media::bridge(&self.agent_side.media, &f.media).is_ok()
                });
                if !ok {
                    self.input(Input::DriverFailure);
                }
            }
            Action::CancelFar | Action::HangUpFar => self.close_far().await,
            Action::HangUpAgent => self.agent_side.hang_up().await,
            Action::Finished(outcome) => self.ended = Some(outcome),
        }
    }

    /// Early media with the refusal's reason (the final status follows
    /// when it has played).
    fn play_refusal(&mut self, refusal: Refusal) {
        let prompt = permanence_media::Prompts::get(permanence_media::Language::Fr)
            .ok()
            .map(|p| match refusal {
                Refusal::InvalidNumber => p.outbound_invalid.clone(),
                Refusal::NoPractice => p.outbound_no_practice.clone(),
                Refusal::NotServed => p.outbound_not_served.clone(),
                Refusal::Destination(_) => p.outbound_refused.clone(),
                Refusal::TooManyCalls => p.outbound_limit.clone(),
            });
        let played = prompt.is_some_and(|p| {
            self.agent_side.early_media() && self.agent_side.media.play(Playlist::single(p)).is_ok()
        });
        if !played {
            self.input(Input::DriverFailure);
        }
    }

    /// The destination rings: the agent hears a French ringback tone as
    /// early media (183 with our SDP), whatever their softphone plays by
    /// itself; the bridge replaces it when the destination answers.
    fn ring_agent(&mut self) {
        let ringback = permanence_media::Prompts::get(permanence_media::Language::Fr)
            .ok()
            .map(|p| p.ringback.clone());
        let playing = ringback.is_some_and(|r| {
            self.agent_side.early_media()
                && self.agent_side.media.play(Playlist::looping(r)).is_ok()
        });
        if !playing {
            // Without early media the softphone rings on its own on 180.
            self.agent_side.ringing();
        }
    }

    /// Places the gateway leg as the practice.
    fn dial(&mut self) {
        let Some(placement) = self.placement.as_ref() else {
            self.input(Input::DriverFailure);
            return;
        };
        let Some(target) = far::gateway_target(&self.ctx, &placement.destination.dial) else {
            warn!(event = "outbound.no_gateway", agent = %self.req.agent, "no trunk has an outbound gateway: the call cannot go out");
            self.input(Input::FarFailed { status: Some(503) });
            return;
        };
        let name = self
            .ctx
            .config
            .load()
            .practice(&placement.practice)
            .map(|p| p.name.clone())
            .unwrap_or_default();
        let identity = Identity::as_practice(&self.ctx, &name, &placement.caller_id);
        // The trunk's signalling is not ours to secure: plain RTP.
        let srtp = permanence_types::SrtpPolicy::Off;
        match far::dial(
            &self.ctx,
            OtherParty::Destination,
            vec![target],
            identity,
            srtp,
        ) {
            Ok(side) => self.far = Some(side),
            Err(_) => self.input(Input::FarFailed { status: None }),
        }
    }

    /// Releases the gateway leg (CANCEL or BYE) and its media.
    async fn close_far(&mut self) {
        if let Some(f) = self.far.take() {
            permanence_media::unbridge(&self.agent_side.media, &f.media);
            let rtp = f.close().await;
            self.ctx.metrics.rtp_add(&rtp);
        }
    }

    fn observe(&mut self, event: Event) {
        let now = self.now();
        match event {
            Event::Refused(refusal) => self.refused(refusal),
            Event::Dialled => {
                self.dialled = true;
                self.ctx.metrics.outbound_started();
                info!(
                    event = "outbound.dialled",
                    agent = %self.req.agent,
                    practice = self.record.practice_id.as_deref().unwrap_or(""),
                    destination = %self.placement.as_ref().map(|p| p.destination.masked()).unwrap_or_default(),
                    class = self.record.destination_class.as_deref().unwrap_or(""),
                    "outbound call placed"
                );
                self.save();
            }
            Event::Ringing => {}
            Event::Answered => {
                self.talk_from = Some(now);
                self.record.answered_at = Some(self.ctx.clock.wall());
                self.save();
            }
            Event::Ended(_) => {}
        }
    }

    /// Counts, logs and audits a refusal (the number masked).
    fn refused(&mut self, refusal: Refusal) {
        self.ctx.metrics.outbound_refused(metrics_refusal(refusal));
        let masked = permanence_numbers::mask(&self.req.dialled);
        warn!(
            event = "outbound.refused",
            agent = %self.req.agent,
            reason = refusal.as_str(),
            class = match refusal {
                Refusal::Destination(c) => c.as_str(),
                _ => "",
            },
            practice = self.record.practice_id.as_deref().unwrap_or(""),
            dialled = %masked,
            source = %self.req.source.ip(),
            "outbound call refused"
        );
        let actor = format!("agent:{}", self.req.agent);
        self.audit.write(Audited {
            actor: &actor,
            role: Some("agent"),
            action: "outbound.call",
            target: self.record.practice_id.as_deref(),
            source: Some(format!("sip:{}", self.req.source.ip())),
            outcome: AuditOutcome::Failed,
            detail: Some(format!("refused: {} ({masked})", refusal.as_str())),
        });
        self.record.refusal = Some(refusal.as_str().to_string());
    }

    /// Writes the record as it stands.
    fn save(&self) {
        if let Some(r) = &self.ctx.records {
            r.record_outbound(self.record.clone());
        }
    }

    /// After the core finished: release both legs and the agent's slot,
    /// count, record, log.
    async fn finish(mut self: Box<Self>) {
        let outcome = self.ended.unwrap_or(Outcome::Failed(None));
        self.close_far().await;
        let talk = match (self.talk_from, outcome) {
            (Some(from), Outcome::Answered) => (self.now() - from).to_std().unwrap_or_default(),
            _ => std::time::Duration::ZERO,
        };
        if let Some(m) = metrics_outcome(outcome).filter(|_| self.dialled) {
            let practice = self.record.practice_id.clone().unwrap_or_default();
            self.ctx.metrics.outbound_ended(&practice, m, talk);
        }
        self.record.ended_at = Some(self.ctx.clock.wall());
        self.record.outcome = record_outcome(outcome);
        self.record.status_code = match outcome {
            Outcome::Failed(s) => s.or(self.far_status),
            _ => None,
        };
        self.record.talk_secs = (outcome == Outcome::Answered).then_some(talk.as_secs_f64());
        self.save();
        info!(
            event = "outbound.ended",
            agent = %self.req.agent,
            practice = self.record.practice_id.as_deref().unwrap_or(""),
            outcome = outcome.as_str(),
            status = self.record.status_code.unwrap_or(0),
            seconds = talk.as_secs_f64(),
            "outbound call ended"
        );
        self.slot = None;
        let ctx = self.ctx.clone();
        self.agent_side.close(&ctx).await;
    }
}

fn metrics_refusal(r: Refusal) -> permanence_metrics::OutboundRefusal {
    use permanence_metrics::OutboundRefusal as M;
    match r {
        Refusal::InvalidNumber => M::InvalidNumber,
        Refusal::NoPractice => M::NoPractice,
        Refusal::NotServed => M::NotServed,
        Refusal::Destination(_) => M::Destination,
        Refusal::TooManyCalls => M::TooManyCalls,
    }
}

/// The metrics outcome of a call that was placed (`None` for a refusal,
/// counted as such).
fn metrics_outcome(o: Outcome) -> Option<permanence_metrics::OutboundOutcome> {
    use permanence_metrics::OutboundOutcome as M;
    Some(match o {
        Outcome::Answered => M::Answered,
        Outcome::Busy => M::Busy,
        Outcome::NoAnswer => M::NoAnswer,
        Outcome::Failed(_) => M::Failed,
        Outcome::Cancelled => M::Cancelled,
        Outcome::Refused(_) => return None,
    })
}

fn record_outcome(o: Outcome) -> permanence_records::OutboundOutcome {
    use permanence_records::OutboundOutcome as R;
    match o {
        Outcome::Answered => R::Answered,
        Outcome::Busy => R::Busy,
        Outcome::NoAnswer => R::NoAnswer,
        Outcome::Failed(_) => R::Failed,
        Outcome::Cancelled => R::Cancelled,
        Outcome::Refused(_) => R::Refused,
    }
}
