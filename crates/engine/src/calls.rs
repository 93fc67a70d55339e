//! The driver of one forwarded call: connects the call core to rsipstack's
//! server dialog (the caller), the dispatcher task, the outgoing leg to a
//! telesecretary (or a direct-route number) and the media legs.

use crate::dispatch::{CallCmd, DispatchMsg};
use crate::leg::{self, LegCmd, LegEvent, LegHandle, LegRequest, Target};
use crate::{reply, Shared};
use arc_swap::ArcSwap;
use chrono::Utc;
use permanence_acd::{AgentId, CallArrival, CallId, Input as AcdInput, SkillRequirement};
use permanence_call::{
    Action, Call, CallSettings, EndReason, Input, OfferFailure, Prompt as Role, TriageChoice,
    TriageMenu,
};
use permanence_config::{Config, Practice, PromptKind};
use permanence_media::sdp::{
    build_answer, build_offer, negotiate, LocalSession, SessionDescription,
};
use permanence_media::{
    Direction, FrenchPrompts, Leg, MediaConfig, MediaEngine, MediaError, MediaEvent, Playlist,
    Prompt, RemoteMedia,
};
use rsipstack::dialog::dialog::{DialogState, TerminatedReason};
use rsipstack::sip::{Header, StatusCode};
use rsipstack::transaction::Transaction;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// The audio of one practice, decoded once and shared by its calls.
#[derive(Debug, Clone)]
pub struct PracticePrompts {
    /// Greeting.
    pub greeting: Arc<Prompt>,
    /// Hold audio.
    pub hold: Arc<Prompt>,
    /// Closed message.
    pub closed: Arc<Prompt>,
    /// Triage menu.
    pub triage: Arc<Prompt>,
    /// Before a voicemail recording.
    pub voicemail: Arc<Prompt>,
    /// Callback request taken.
    pub callback: Arc<Prompt>,
    /// Overflow apology.
    pub overflow: Arc<Prompt>,
}

impl PracticePrompts {
    fn expand(&self, role: Role) -> Vec<Arc<Prompt>> {
        match role {
            Role::Greeting => vec![self.greeting.clone()],
            Role::Hold => vec![self.hold.clone()],
            Role::Closed => vec![self.closed.clone()],
            Role::Triage => vec![self.triage.clone()],
            Role::Voicemail => vec![self.voicemail.clone()],
            Role::Callback => vec![self.callback.clone()],
            Role::Overflow => vec![self.overflow.clone()],
            Role::Announcement {
                position,
                wait_secs,
            } => permanence_media::announcement(
                position,
                wait_secs.map(|s| Duration::from_secs(u64::from(s))),
            ),
        }
    }

    fn playlist(&self, pl: &permanence_call::Playlist) -> Playlist {
        let mut items: Vec<Vec<Arc<Prompt>>> = pl.items.iter().map(|r| self.expand(*r)).collect();
        if pl.loop_last {
            let last = items.pop().unwrap_or_default();
            Playlist::once(items.concat()).then_loop(last)
        } else {
            Playlist::once(items.concat())
        }
    }
}

/// Loads every practice's prompts: its own files where configured, the
/// embedded French defaults elsewhere. Errors name the file, line and field
/// that configured the prompt.
pub fn load_prompts(cfg: &Config) -> Result<HashMap<String, PracticePrompts>, Vec<String>> {
    let defaults = FrenchPrompts::get().map_err(|e| vec![format!("embedded prompts: {e}")])?;
    let mut out = HashMap::new();
    let mut errors = Vec::new();
    for p in cfg.practices() {
        let mut load = |kind: PromptKind, default: &Arc<Prompt>| -> Arc<Prompt> {
            match p.prompts.get(kind) {
                None => default.clone(),
                Some(conf) => match Prompt::from_wav_file(&conf.path) {
                    Ok(prompt) => Arc::new(prompt),
                    Err(e) => {
                        errors.push(conf.origin.error(e.to_string()).to_string());
                        default.clone()
                    }
                },
            }
        };
        let prompts = PracticePrompts {
            greeting: load(PromptKind::Greeting, &defaults.greeting),
            hold: load(PromptKind::Hold, &defaults.hold_music),
            closed: load(PromptKind::Closed, &defaults.closed),
            triage: load(PromptKind::Triage, &defaults.menu),
            voicemail: load(PromptKind::Voicemail, &defaults.voicemail),
            callback: load(PromptKind::Callback, &defaults.callback_taken),
            overflow: defaults.overflow.clone(),
        };
        out.insert(p.id.clone(), prompts);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Media state shared by all calls.
pub struct MediaContext {
    /// RTP legs.
    pub engine: MediaEngine,
    /// Address written in our SDP.
    pub advertise: IpAddr,
    /// Read by every call, replaced by reloads: lock-free snapshot.
    prompts: ArcSwap<HashMap<String, PracticePrompts>>,
}

impl MediaContext {
    /// Opens the media engine on the configured range and loads prompts.
    pub fn new(cfg: &Config, rtp_timeout: Duration) -> Result<Self, String> {
        let mut mc = MediaConfig::new(cfg.rtp.bind, cfg.rtp.port_min, cfg.rtp.port_max);
        mc.advertise_ip = cfg.rtp.advertise;
        mc.rtp_timeout = rtp_timeout;
        let engine = MediaEngine::new(mc).map_err(|e| e.to_string())?;
        let prompts = load_prompts(cfg).map_err(|e| e.join("\n"))?;
        Ok(Self {
            engine,
            advertise: cfg.rtp.advertise,
            prompts: ArcSwap::from_pointee(prompts),
        })
    }

    /// A practice's prompts.
    pub fn prompts(&self, practice: &str) -> Option<PracticePrompts> {
        self.prompts.load().get(practice).cloned()
    }

    /// Replaces the prompts (configuration reload).
    pub fn set_prompts(&self, prompts: HashMap<String, PracticePrompts>) {
        self.prompts.store(Arc::new(prompts));
    }
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

/// Our call ids (dispatcher `CallId`), unique per process.
static NEXT_CALL: AtomicU64 = AtomicU64::new(1);

/// What the call driver knows about the incoming call.
#[derive(Debug, Clone)]
pub struct IncomingCall {
    /// Practice id.
    pub practice: String,
    /// Whether the practice is open now.
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
    /// When the INVITE arrived.
    pub received_at: chrono::DateTime<Utc>,
}

fn triage_menu(p: &Practice) -> Option<TriageMenu> {
    p.triage.as_ref().map(|t| TriageMenu {
        timeout: chrono::Duration::from_std(t.timeout).unwrap_or(chrono::Duration::seconds(5)),
        default: t.default,
        options: t
            .options
            .iter()
            .map(|o| TriageChoice {
                digit: o.digit,
                direct_route: o.route_to.is_some(),
            })
            .collect(),
    })
}

fn arrival(p: &Practice, call: CallId, triage: Option<char>) -> CallArrival {
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

/// The telesecretary's (or direct-route) side of a call.
struct OtherSide {
    name: String,
    leg: LegHandle,
    media: Leg,
    media_events: mpsc::Receiver<MediaEvent>,
    answered: bool,
}

impl OtherSide {
    /// Ends the leg; returns its media counters.
    async fn close(self) -> permanence_metrics::RtpTotals {
        let _ = self.leg.cmd.send(LegCmd::End);
        let totals = rtp_totals(&self.media.stats());
        self.media.close().await;
        totals
    }
}

fn rtp_totals(s: &permanence_media::LegStats) -> permanence_metrics::RtpTotals {
    permanence_metrics::RtpTotals {
        packets_in: s.packets_in,
        bytes_in: s.bytes_in,
        packets_out: s.packets_out,
        bytes_out: s.bytes_out,
        lost: s.lost,
        late: s.late,
    }
}

/// Logs the verdict of a voicemail recording.
fn log_recording(
    practice: &str,
    call_id: &str,
    path: &std::path::Path,
    verdict: Result<Duration, &str>,
) {
    match verdict {
        Ok(duration) => info!(
            event = "voicemail.recorded",
            practice = %practice,
            call_id,
            path = %path.display(),
            seconds = duration.as_secs_f64(),
            "voicemail message recorded"
        ),
        Err(error) => warn!(call_id, path = %path.display(), error, "voicemail recording failed"),
    }
}

fn phase_name(p: &permanence_call::Phase) -> &'static str {
    use permanence_call::Phase;
    match p {
        Phase::New => "answering",
        Phase::Greeting => "greeting",
        Phase::Triage { .. } => "triage",
        Phase::Queued { ringing: None } => "queued",
        Phase::Queued { ringing: Some(_) } => "ringing",
        Phase::Bridged { held: false, .. } => "talking",
        Phase::Bridged { held: true, .. } => "on-hold",
        Phase::Transferring { .. } => "transferring",
        Phase::Transferred => "transferred",
        Phase::Overflowing(_) => "overflow",
        Phase::Recording { .. } => "voicemail",
        Phase::ClosedMessage => "closed",
        Phase::Ended(_) => "ended",
    }
}

/// News from the other side: its signalling or its media.
enum SideEvent {
    Leg(Option<LegEvent>),
    Media(Option<MediaEvent>),
}

async fn next_side_event(side: &mut Option<OtherSide>) -> SideEvent {
    match side {
        Some(s) => tokio::select! {
            e = s.leg.events.recv() => SideEvent::Leg(e),
            m = s.media_events.recv() => SideEvent::Media(m),
        },
        None => std::future::pending().await,
    }
}

async fn next_cmd(rx: &mut Option<mpsc::UnboundedReceiver<CallCmd>>) -> Option<CallCmd> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

/// Parses a SIP INFO DTMF body (`application/dtmf-relay`: `Signal=5`, or
/// `application/dtmf`: `5`).
fn info_digit(body: &[u8]) -> Option<char> {
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

fn sleep_until(t: Option<chrono::DateTime<Utc>>) -> Duration {
    match t {
        Some(t) => (t - Utc::now()).to_std().unwrap_or(Duration::ZERO),
        None => Duration::from_secs(3600),
    }
}

/// Answers and runs one forwarded call until it ends.
pub async fn run_call(shared: Arc<Shared>, mut tx: Transaction, incoming: IncomingCall) {
    let cfg = shared.config();
    let Some(practice) = cfg.practice(&incoming.practice).cloned() else {
        reply(&mut tx, StatusCode::NotFound, vec![]).await;
        return;
    };
    drop(cfg);
    let call_id = incoming.sip_call_id.clone();
    let Some(prompts) = shared.media.prompts(&practice.id) else {
        warn!(practice = %practice.id, "no prompts for practice");
        reply(&mut tx, StatusCode::ServerInternalError, vec![]).await;
        return;
    };
    // SDP offer (a carrier always sends one; late offer is not supported).
    let offer = std::str::from_utf8(&tx.original.body)
        .map_err(|_| permanence_media::sdp::SdpError::NoAudio)
        .and_then(SessionDescription::parse);
    let negotiated = match offer.and_then(|o| negotiate(&o)) {
        Ok(n) => n,
        Err(e) => {
            info!(event = "invite.bad_sdp", call_id, error = %e, "unusable SDP offer");
            reply(&mut tx, StatusCode::from(e.sip_status()), vec![]).await;
            return;
        }
    };
    let (leg, mut media_events) = match shared.media.engine.open_leg() {
        Ok(x) => x,
        Err(e) => {
            warn!(event = "media.unavailable", call_id, error = %e, "cannot open a media leg");
            shared
                .metrics
                .sip_rejected(permanence_metrics::SipReject::Overload);
            let code = match e {
                MediaError::PortsExhausted { .. } => StatusCode::ServiceUnavailable,
                _ => StatusCode::ServerInternalError,
            };
            reply(&mut tx, code, vec![]).await;
            return;
        }
    };
    let mut session = LocalSession::new(shared.media.advertise);
    let answer_sdp = build_answer(&mut session, leg.port(), &negotiated, Direction::SendRecv);
    let remote = RemoteMedia::from(&negotiated);

    let (dialog, mut state_rx, invite_task) = match shared.server_dialog(tx) {
        Ok(sd) => (sd.dialog, sd.states, sd.task),
        Err(boxed) => {
            let (mut tx, e) = *boxed;
            warn!(call_id, error = %e, "cannot create dialog");
            reply(&mut tx, StatusCode::ServerInternalError, vec![]).await;
            leg.close().await;
            return;
        }
    };
    let dialog_id = dialog.id();

    let acd_call = CallId(NEXT_CALL.fetch_add(1, Ordering::Relaxed));
    let started = Utc::now();
    let mut cdr = crate::cdr::CdrBuilder {
        id: crate::cdr::record_id(acd_call),
        sip_call_id: incoming.sip_call_id.clone(),
        practice: practice.id.clone(),
        trunk: incoming.trunk.clone(),
        caller: incoming.caller.clone(),
        called: incoming.called.clone(),
        via: Some(incoming.via),
        received_at: incoming.received_at,
        answered_at: None,
        queued_at: None,
        first_offered_at: None,
        agent_answered_at: None,
        agent: None,
        offers: 0,
        triage: None,
        overflow: None,
    };
    let mut queued_at: Option<chrono::DateTime<Utc>> = None;
    let settings = CallSettings {
        max_duration: chrono::Duration::from_std(shared.options.max_call)
            .unwrap_or(chrono::Duration::hours(4)),
        triage: triage_menu(&practice),
        announce_every: (practice.queue.announce_position || practice.queue.announce_wait)
            .then(|| chrono::Duration::from_std(practice.queue.announce_every).ok())
            .flatten(),
        voicemail_max: chrono::Duration::from_std(shared.config().records.voicemail_max)
            .unwrap_or(chrono::Duration::minutes(2)),
    };
    let mut core = Call::new(settings);
    shared.live.insert(
        acd_call.0,
        crate::admin::LiveCall {
            call_id: cdr.id.clone(),
            call: acd_call.0,
            practice: practice.id.clone(),
            caller: permanence_numbers::mask(&incoming.caller),
            phase: "answering",
            agent: None,
            started,
            queued_at: None,
            answered_at: None,
        },
    );
    if !incoming.open {
        if let Ok(m) = shared.metrics.practice(&practice.id) {
            m.call_closed();
        }
    }
    let mut rtp_other = permanence_metrics::RtpTotals::default();
    let mut cmds: Option<mpsc::UnboundedReceiver<CallCmd>> = None;
    let mut other: Option<OtherSide> = None;
    let mut recording: Option<PathBuf> = None;
    let mut recording_done = false;
    let mut agent_answered: Option<String> = None;

    // Optional ringing before the answer; the caller may cancel meanwhile.
    if !shared.options.answer_delay.is_zero() {
        if let Err(e) = dialog.ringing(None, None) {
            debug!(error = %e, "could not send 180");
        }
        let deadline = tokio::time::sleep(shared.options.answer_delay);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                st = state_rx.recv() => match st {
                    Some(DialogState::Terminated(_, _)) | None => {
                        core.handle(Input::CallerCancel, Utc::now());
                        break;
                    }
                    _ => {}
                },
            }
        }
    }
    if !core.is_ended() {
        core.handle(
            Input::Start {
                open: incoming.open,
            },
            Utc::now(),
        );
    }

    let end_reason: EndReason = 'run: loop {
        while let Some(action) = core.poll_action() {
            let now = Utc::now();
            match action {
                Action::Answer => {
                    let headers = vec![
                        Header::ContentType("application/sdp".into()),
                        Header::Allow(crate::ALLOW.into()),
                    ];
                    let ok = leg.set_remote(remote).is_ok()
                        && dialog
                            .accept(Some(headers), Some(answer_sdp.clone().into_bytes()))
                            .is_ok();
                    if ok {
                        cdr.answered_at = Some(now);
                        info!(
                            event = "call.answered",
                            practice = %practice.id,
                            open = incoming.open,
                            call_id,
                            call = acd_call.0,
                            rtp_port = leg.port(),
                            codec = ?negotiated.codec,
                            "call answered"
                        );
                    } else {
                        core.handle(Input::DriverFailure, now);
                    }
                }
                Action::Play(pl) => {
                    if leg.play(prompts.playlist(&pl)).is_err() {
                        core.handle(Input::DriverFailure, now);
                    }
                }
                Action::HangUp => {
                    if let Err(e) = dialog.bye().await {
                        debug!(error = %e, "BYE to caller failed");
                    }
                }
                Action::Enqueue { triage } => {
                    let (ctx, crx) = mpsc::unbounded_channel();
                    cmds = Some(crx);
                    queued_at = Some(now);
                    let label = triage
                        .and_then(|d| practice.triage.as_ref().and_then(|t| t.option(d)))
                        .map(|o| o.label.clone());
                    cdr.queued_at = Some(now);
                    cdr.triage = triage.map(|d| (d, label.clone().unwrap_or_default()));
                    info!(
                        event = "call.queued",
                        practice = %practice.id,
                        call_id,
                        call = acd_call.0,
                        triage = triage.map(String::from).unwrap_or_default(),
                        triage_label = label.unwrap_or_default(),
                        "call queued"
                    );
                    shared.dispatch.send(DispatchMsg::Arrive {
                        arrival: arrival(&practice, acd_call, triage),
                        tx: ctx,
                    });
                }
                Action::RequestPosition => shared
                    .dispatch
                    .send(DispatchMsg::Position { call: acd_call }),
                Action::ReportAbandoned => shared
                    .dispatch
                    .input(AcdInput::CallAbandoned { call: acd_call }),
                Action::ReportAnswered { agent } => {
                    agent_answered = Some(agent.clone());
                    cdr.agent = Some(agent.clone());
                    cdr.agent_answered_at = Some(now);
                    shared.dispatch.input(AcdInput::OfferAnswered {
                        call: acd_call,
                        agent: AgentId::from(agent.as_str()),
                    })
                }
                Action::ReportOfferFailed { agent, reason } => {
                    shared.dispatch.input(AcdInput::OfferFailed {
                        call: acd_call,
                        agent: AgentId::from(agent.as_str()),
                        reason: match reason {
                            OfferFailure::Busy => permanence_acd::OfferFailure::Busy,
                            OfferFailure::Rejected => permanence_acd::OfferFailure::Rejected,
                            OfferFailure::Unreachable => permanence_acd::OfferFailure::Unreachable,
                        },
                    })
                }
                Action::ReportEnded => shared
                    .dispatch
                    .input(AcdInput::CallEnded { call: acd_call }),
                Action::InviteAgent { agent } => {
                    if let Some(old) = other.take() {
                        rtp_other += old.close().await;
                    }
                    let targets = shared.registrations.contacts(&agent).to_vec();
                    let wait = queued_at.map(|q| (now - q).num_seconds()).unwrap_or(0);
                    cdr.offers += 1;
                    cdr.first_offered_at.get_or_insert(now);
                    match open_side(
                        &shared,
                        &practice,
                        &incoming,
                        core.triage_choice(),
                        wait,
                        agent.clone(),
                        targets,
                    ) {
                        Ok(side) => other = Some(side),
                        Err(reason) => core.handle(Input::AgentFailed { agent, reason }, now),
                    }
                }
                Action::CancelAgent { .. } => {
                    if let Some(old) = other.take() {
                        rtp_other += old.close().await;
                    }
                }
                Action::HangUpAgent { agent } => {
                    if let Some(old) = other.take() {
                        if old.name == agent {
                            rtp_other += old.close().await;
                        } else {
                            other = Some(old);
                        }
                    }
                }
                Action::HangUpTransfer => {
                    if let Some(old) = other.take() {
                        rtp_other += old.close().await;
                    }
                }
                Action::Bridge => {
                    let ok = other
                        .as_ref()
                        .is_some_and(|o| permanence_media::bridge(&leg, &o.media).is_ok());
                    if !ok {
                        warn!(call_id, "bridge failed");
                        core.handle(Input::AgentBye, now);
                    }
                }
                Action::Unbridge => {
                    if let Some(o) = &other {
                        permanence_media::unbridge(&leg, &o.media);
                    }
                }
                Action::StartRecording(max) => {
                    let dir = shared.config().records.voicemail_dir.join(&practice.id);
                    let name = format!("{}-{}.wav", now.format("%Y%m%dT%H%M%SZ"), acd_call.0);
                    let path = dir.join(name);
                    let started = tokio::fs::create_dir_all(&dir).await.is_ok()
                        && leg
                            .record(&path, max.to_std().unwrap_or(Duration::from_secs(120)))
                            .is_ok();
                    if started {
                        recording = Some(path);
                    } else {
                        warn!(call_id, dir = %dir.display(), "cannot record voicemail");
                    }
                }
                Action::StopRecording => {
                    let _ = leg.stop_recording();
                }
                Action::SaveCallback => {
                    info!(
                        event = "callback.requested",
                        practice = %practice.id,
                        call_id,
                        call = acd_call.0,
                        caller = %permanence_numbers::mask(&incoming.caller),
                        "callback requested"
                    );
                    shared.save_callback(&practice.id, &incoming.caller, &cdr.id, now);
                }
                Action::Transfer { digit } => {
                    let number = practice
                        .triage
                        .as_ref()
                        .and_then(|t| t.option(digit))
                        .and_then(|o| o.route_to.clone());
                    let cfg = shared.config();
                    let trunk = cfg.outbound_trunk().and_then(|t| t.outbound);
                    match (number, trunk) {
                        (Some(n), Some(dest)) => {
                            let targets = vec![Target {
                                uri: format!("sip:{}@{}", n.as_str(), dest),
                                destination: dest,
                                transport: "UDP".into(),
                            }];
                            info!(event = "call.transfer", call_id, practice = %practice.id, number = %n.masked(), "direct route");
                            match open_side(
                                &shared,
                                &practice,
                                &incoming,
                                Some(digit),
                                0,
                                format!("route:{digit}"),
                                targets,
                            ) {
                                Ok(side) => other = Some(side),
                                Err(_) => core.handle(Input::TransferFailed, now),
                            }
                        }
                        _ => {
                            warn!(call_id, practice = %practice.id, "direct route impossible (no route_to or no outbound trunk): queueing");
                            core.handle(Input::TransferFailed, now);
                        }
                    }
                }
                Action::Finished(reason) => break 'run reason,
            }
        }
        if let Some(mut l) = shared.live.get_mut(&acd_call.0) {
            l.phase = phase_name(core.phase());
            l.queued_at = cdr.queued_at;
            l.answered_at = cdr.agent_answered_at;
            l.agent = match core.phase() {
                permanence_call::Phase::Queued { ringing } => ringing.clone(),
                permanence_call::Phase::Bridged { agent, .. } => Some(agent.clone()),
                _ => None,
            };
        }
        let sleep = sleep_until(core.poll_timeout());
        tokio::select! {
            st = state_rx.recv() => {
                let now = Utc::now();
                match st {
                    Some(DialogState::Terminated(_, reason)) => {
                        let input = match reason {
                            TerminatedReason::UacCancel => Input::CallerCancel,
                            TerminatedReason::UacBye => Input::CallerBye,
                            TerminatedReason::UasBye => continue,
                            _ => Input::DriverFailure,
                        };
                        core.handle(input, now);
                    }
                    Some(DialogState::Info(_, req, handle)) => {
                        let _ = handle.reply(StatusCode::OK).await;
                        if let Some(d) = info_digit(&req.body) {
                            core.handle(Input::Dtmf(d), now);
                        }
                    }
                    Some(DialogState::Updated(_, req, handle)) => {
                        // The caller's re-INVITE/UPDATE (session refresh,
                        // codec change): answer with our port, follow their
                        // address.
                        match std::str::from_utf8(&req.body).ok().and_then(|s| SessionDescription::parse(s).ok()).and_then(|sd| negotiate(&sd).ok()) {
                            Some(n) => {
                                let body = build_answer(&mut session, leg.port(), &n, Direction::SendRecv);
                                let _ = leg.set_remote(RemoteMedia::from(&n));
                                let _ = handle.respond(StatusCode::OK, Some(vec![Header::ContentType("application/sdp".into())]), Some(body.into_bytes())).await;
                            }
                            None if req.body.is_empty() => {
                                let body = build_answer(&mut session, leg.port(), &negotiated, Direction::SendRecv);
                                let _ = handle.respond(StatusCode::OK, Some(vec![Header::ContentType("application/sdp".into())]), Some(body.into_bytes())).await;
                            }
                            None => { let _ = handle.reply(StatusCode::NotAcceptableHere).await; }
                        }
                    }
                    Some(DialogState::Options(_, _, handle))
                    | Some(DialogState::Message(_, _, handle))
                    | Some(DialogState::Notify(_, _, handle)) => {
                        let _ = handle.reply(StatusCode::OK).await;
                    }
                    Some(DialogState::Refer(_, _, handle)) => {
                        let _ = handle.reply(StatusCode::NotImplemented).await;
                    }
                    Some(_) => {}
                    None => core.handle(Input::DriverFailure, now),
                }
            }
            ev = media_events.recv() => {
                let now = Utc::now();
                match ev {
                    Some(MediaEvent::PlaybackFinished) => core.handle(Input::PlaybackFinished, now),
                    Some(MediaEvent::Dtmf(d)) => core.handle(Input::Dtmf(d), now),
                    Some(MediaEvent::RtpTimeout) | Some(MediaEvent::NoRtp) => core.handle(Input::MediaTimeout, now),
                    Some(MediaEvent::Latched(addr)) => debug!(call_id, %addr, "caller RTP latched"),
                    Some(MediaEvent::RecordingFinished { path, duration, .. }) => {
                        recording_done = true;
                        log_recording(&practice.id, &call_id, &path, Ok(duration));
                    }
                    Some(MediaEvent::RecordingFailed { path, error }) => {
                        recording_done = true;
                        log_recording(&practice.id, &call_id, &path, Err(&error));
                    }
                    Some(_) => {}
                    None => core.handle(Input::DriverFailure, now),
                }
            }
            cmd = next_cmd(&mut cmds) => {
                let now = Utc::now();
                match cmd {
                    Some(CallCmd::Offer { agent }) => core.handle(Input::Offer { agent }, now),
                    Some(CallCmd::CancelOffer { agent }) => core.handle(Input::OfferCancelled { agent }, now),
                    Some(CallCmd::Overflow(kind)) => {
                        cdr.overflow = Some(format!("{kind:?}").to_lowercase());
                        core.handle(Input::Overflow(kind), now)
                    }
                    Some(CallCmd::Closed) => core.handle(Input::Closed, now),
                    Some(CallCmd::Position { position, wait }) => core.handle(
                        Input::Position { position, wait: wait.and_then(|w| chrono::Duration::from_std(w).ok()) },
                        now,
                    ),
                    Some(CallCmd::AnswerRefused { agent }) => core.handle(Input::AnswerRefused { agent }, now),
                    None => cmds = None,
                }
            }
            side_ev = next_side_event(&mut other) => match side_ev {
              SideEvent::Leg(ev) => {
                let now = Utc::now();
                let transfer = matches!(core.phase(), permanence_call::Phase::Transferring { .. } | permanence_call::Phase::Transferred);
                let name = other.as_ref().map(|o| o.name.clone()).unwrap_or_default();
                match ev {
                    Some(LegEvent::Ringing) => core.handle(Input::AgentRinging { agent: name }, now),
                    Some(LegEvent::Answered(remote)) => {
                        if let Some(o) = other.as_mut() {
                            o.answered = true;
                            let _ = o.media.set_remote(remote);
                        }
                        if transfer {
                            core.handle(Input::TransferAnswered, now);
                        } else {
                            core.handle(Input::AgentAnswered { agent: name }, now);
                        }
                    }
                    Some(LegEvent::Failed(reason)) => {
                        if let Some(o) = other.take() {
                            rtp_other += rtp_totals(&o.media.stats());
                            o.media.close().await;
                        }
                        if transfer {
                            core.handle(Input::TransferFailed, now);
                        } else {
                            core.handle(Input::AgentFailed { agent: name, reason }, now);
                        }
                    }
                    Some(LegEvent::Bye) | None => {
                        if let Some(o) = other.take() {
                            permanence_media::unbridge(&leg, &o.media);
                            rtp_other += rtp_totals(&o.media.stats());
                            o.media.close().await;
                        }
                        if transfer {
                            core.handle(Input::TransferBye, now);
                        } else {
                            core.handle(Input::AgentBye, now);
                        }
                    }
                    Some(LegEvent::Hold) => core.handle(Input::AgentHold, now),
                    Some(LegEvent::Unhold(remote)) => {
                        if let Some(o) = other.as_ref() {
                            let _ = o.media.set_remote(remote);
                        }
                        core.handle(Input::AgentUnhold, now)
                    }
                }
            }
              SideEvent::Media(ev) => {
                // The telesecretary's media stopped: their side vanished.
                if let Some(MediaEvent::RtpTimeout) = ev {
                    if other.as_ref().is_some_and(|o| o.answered) {
                        info!(call_id, "agent RTP timeout: ending the call");
                        if let Some(o) = other.take() {
                            rtp_other += o.close().await;
                        }
                        core.handle(Input::AgentBye, Utc::now());
                    }
                }
              }
            },
            _ = tokio::time::sleep(sleep) => core.handle_timeout(Utc::now()),
        }
    };

    if let Some(o) = other.take() {
        rtp_other += o.close().await;
    }
    if let Some(path) = recording.as_ref().filter(|_| !recording_done) {
        // The recorder finalises the WAV after StopRecording: wait (bounded)
        // for its verdict so the message is never reported before it is
        // on disk.
        let _ = leg.stop_recording();
        let verdict = tokio::time::timeout(Duration::from_secs(3), async {
            while let Some(ev) = media_events.recv().await {
                match ev {
                    MediaEvent::RecordingFinished { duration, .. } => return Ok(duration),
                    MediaEvent::RecordingFailed { error, .. } => return Err(error),
                    _ => {}
                }
            }
            Err("media leg closed".to_string())
        })
        .await;
        match verdict {
            Ok(v) => log_recording(
                &practice.id,
                &call_id,
                path,
                v.as_ref().copied().map_err(String::as_str),
            ),
            Err(_) => warn!(call_id, path = %path.display(), "voicemail recording not confirmed"),
        }
    }
    let stats = leg.stats();
    rtp_other += rtp_totals(&stats);
    shared.metrics.rtp_add(&rtp_other);
    shared.live.remove(&acd_call.0);
    if let Some(r) = &shared.records {
        r.record_call(cdr.finish(
            end_reason,
            permanence_records::RtpCounters {
                packets_in: stats.packets_in,
                packets_out: stats.packets_out,
                packets_lost: stats.lost,
            },
        ));
    }
    leg.close().await;
    shared.dialogs.remove_dialog(&dialog_id);
    invite_task.abort();
    let seconds = (Utc::now() - started).num_milliseconds() as f64 / 1000.0;
    info!(
        event = "call.ended",
        practice = %practice.id,
        reason = end_reason.as_str(),
        call_id,
        call = acd_call.0,
        agent = agent_answered.as_deref().unwrap_or(""),
        voicemail = recording.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
        seconds,
        packets_out = stats.packets_out,
        packets_in = stats.packets_in,
        "call ended"
    );
}

/// Opens the media leg for the other side and starts the outgoing INVITE.
#[allow(clippy::too_many_arguments)]
fn open_side(
    shared: &Arc<Shared>,
    practice: &Practice,
    incoming: &IncomingCall,
    triage: Option<char>,
    wait_secs: i64,
    name: String,
    targets: Vec<Target>,
) -> Result<OtherSide, OfferFailure> {
    if targets.is_empty() {
        info!(leg = %name, "no registered contact");
        return Err(OfferFailure::Unreachable);
    }
    let (media, media_events) = shared.media.engine.open_leg().map_err(|e| {
        warn!(error = %e, "no media leg for the outgoing call");
        OfferFailure::Unreachable
    })?;
    let mut session = LocalSession::new(shared.media.advertise);
    let offer = build_offer(&mut session, media.port(), Direction::SendRecv);
    let mut headers = vec![
        Header::Other("X-Permanence-Practice".into(), practice.id.clone()),
        Header::Other("X-Permanence-Wait".into(), wait_secs.max(0).to_string()),
    ];
    if let Some(d) = triage {
        let label = practice
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
    if let Some(url) = &practice.info_url {
        headers.push(Header::CallInfo(format!("<{url}>;purpose=info").into()));
    }
    let caller_user = if incoming.caller.is_empty() {
        "anonymous".to_string()
    } else {
        incoming.caller.clone()
    };
    let req = LegRequest {
        display_name: format!(
            "{} - {}",
            practice.name,
            specialty_label(&practice.specialty)
        ),
        caller_user,
        headers,
        sdp_offer: offer,
        local_port: media.port(),
    };
    let leg = leg::start(shared.clone(), targets, req, name.clone());
    Ok(OtherSide {
        name,
        leg,
        media,
        media_events,
        answered: false,
    })
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

    #[test]
    fn specialty_labels() {
        assert_eq!(specialty_label("generaliste"), "Médecine générale");
        assert_eq!(specialty_label("orthophonie"), "Orthophonie");
        assert_eq!(specialty_label(""), "");
    }
}
