//! The driver of one forwarded call: connects the call core to rsipstack's
//! server dialog and to a media leg.

use crate::{reply, Shared};
use chrono::Utc;
use parking_lot::RwLock;
use permanence_call::{Action, Call, CallSettings, EndReason, Input, Prompt as PromptRole};
use permanence_config::{Config, PromptKind};
use permanence_media::sdp::{build_answer, negotiate, LocalSession, SessionDescription};
use permanence_media::{
    Direction, FrenchPrompts, MediaConfig, MediaEngine, MediaError, MediaEvent, Playlist, Prompt,
    RemoteMedia,
};
use rsipstack::dialog::dialog::{DialogState, TerminatedReason};
use rsipstack::sip::{Header, StatusCode};
use rsipstack::transaction::Transaction;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
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
}

impl PracticePrompts {
    fn get(&self, role: PromptRole) -> Arc<Prompt> {
        match role {
            PromptRole::Greeting => self.greeting.clone(),
            PromptRole::Hold => self.hold.clone(),
            PromptRole::Closed => self.closed.clone(),
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
    prompts: RwLock<Arc<HashMap<String, PracticePrompts>>>,
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
            prompts: RwLock::new(Arc::new(prompts)),
        })
    }

    /// A practice's prompts (defaults for an unknown id).
    pub fn prompts(&self, practice: &str) -> Option<PracticePrompts> {
        self.prompts.read().get(practice).cloned()
    }
}

fn playlist(prompts: &PracticePrompts, pl: &permanence_call::Playlist) -> Playlist {
    let items: Vec<Arc<Prompt>> = pl.items.iter().map(|r| prompts.get(*r)).collect();
    if pl.loop_last {
        let mut once = items;
        let last = once.pop();
        Playlist::once(once).then_loop(last.into_iter().collect())
    } else {
        Playlist::once(items)
    }
}

/// Answers and runs one forwarded call until it ends.
pub async fn run_call(
    shared: Arc<Shared>,
    mut tx: Transaction,
    practice_id: String,
    open: bool,
    call_id: String,
) {
    let Some(prompts) = shared.media.prompts(&practice_id) else {
        warn!(practice = %practice_id, "no prompts for practice");
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
            shared
                .counters
                .invites_rejected
                .fetch_add(1, Ordering::Relaxed);
            let code = StatusCode::from(e.sip_status());
            reply(&mut tx, code, vec![]).await;
            return;
        }
    };
    let (leg, mut media_events) = match shared.media.engine.open_leg() {
        Ok(x) => x,
        Err(e) => {
            warn!(event = "media.unavailable", call_id, error = %e, "cannot open a media leg");
            shared
                .counters
                .invites_rejected
                .fetch_add(1, Ordering::Relaxed);
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

    let contact = format!(
        "sip:permanence@{}:{}",
        shared.contact_host, shared.contact_port
    );
    let contact_uri = rsipstack::sip::Uri::try_from(contact.as_str()).ok();
    let (state_tx, mut state_rx) = shared.dialogs.new_dialog_state_channel();
    let dialog = match shared
        .dialogs
        .get_or_create_server_invite(&tx, state_tx, None, contact_uri)
    {
        Ok(d) => d,
        Err(e) => {
            warn!(call_id, error = %e, "cannot create dialog");
            reply(&mut tx, StatusCode::ServerInternalError, vec![]).await;
            leg.close().await;
            return;
        }
    };
    let dialog_id = dialog.id();
    let mut handler = dialog.clone();
    let invite_task = tokio::spawn(async move {
        if let Err(e) = handler.handle(&mut tx).await {
            debug!(error = %e, "INVITE transaction ended with an error");
        }
    });

    let started = Utc::now();
    shared
        .counters
        .calls_started
        .fetch_add(1, Ordering::Relaxed);
    let mut core = Call::new(CallSettings {
        max_duration: chrono::Duration::from_std(shared.options.max_call)
            .unwrap_or(chrono::Duration::hours(4)),
    });

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
        core.handle(Input::Start { open }, Utc::now());
    }

    let end_reason: EndReason = 'run: loop {
        while let Some(action) = core.poll_action() {
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
                        info!(
                            event = "call.answered",
                            practice = %practice_id,
                            open,
                            call_id,
                            rtp_port = leg.port(),
                            codec = ?negotiated.codec,
                            "call answered"
                        );
                    } else {
                        core.handle(Input::DriverFailure, Utc::now());
                    }
                }
                Action::Play(pl) => {
                    if leg.play(playlist(&prompts, &pl)).is_err() {
                        core.handle(Input::DriverFailure, Utc::now());
                    }
                }
                Action::HangUp => {
                    if let Err(e) = dialog.bye().await {
                        debug!(error = %e, "BYE to caller failed");
                    }
                }
                Action::Finished(reason) => break 'run reason,
            }
        }
        let sleep = core
            .poll_timeout()
            .and_then(|t| (t - Utc::now()).to_std().ok())
            .unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            st = state_rx.recv() => match st {
                Some(DialogState::Terminated(_, reason)) => {
                    let input = match reason {
                        TerminatedReason::UacCancel => Input::CallerCancel,
                        TerminatedReason::UacBye => Input::CallerBye,
                        TerminatedReason::UasBye => continue,
                        _ => Input::DriverFailure,
                    };
                    core.handle(input, Utc::now());
                }
                Some(_) => {}
                None => core.handle(Input::DriverFailure, Utc::now()),
            },
            ev = media_events.recv() => match ev {
                Some(MediaEvent::PlaybackFinished) => core.handle(Input::PlaybackFinished, Utc::now()),
                Some(MediaEvent::Dtmf(d)) => core.handle(Input::Dtmf(d), Utc::now()),
                Some(MediaEvent::RtpTimeout) | Some(MediaEvent::NoRtp) => core.handle(Input::MediaTimeout, Utc::now()),
                Some(MediaEvent::Latched(addr)) => debug!(call_id, %addr, "caller RTP latched"),
                Some(_) => {}
                None => core.handle(Input::DriverFailure, Utc::now()),
            },
            _ = tokio::time::sleep(sleep) => core.handle_timeout(Utc::now()),
        }
    };

    let stats = leg.stats();
    leg.close().await;
    shared.dialogs.remove_dialog(&dialog_id);
    invite_task.abort();
    shared.counters.calls_ended.fetch_add(1, Ordering::Relaxed);
    let seconds = (Utc::now() - started).num_milliseconds() as f64 / 1000.0;
    info!(
        event = "call.ended",
        practice = %practice_id,
        reason = end_reason.as_str(),
        call_id,
        seconds,
        packets_out = stats.packets_out,
        packets_in = stats.packets_in,
        "call ended"
    );
}
