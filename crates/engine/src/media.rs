//! Media shared by every call: the RTP engine, the address written in our
//! SDP, and each practice's prompts (decoded once, swapped lock-free by
//! reloads).

use arc_swap::ArcSwap;
use permanence_call::Prompt as Role;
use permanence_config::{Config, PromptKind};
use permanence_media::{FrenchPrompts, MediaConfig, MediaEngine, Playlist, Prompt};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

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
            Role::CallbackOffer => fr(|p| p.callback_offer.clone()),
            Role::CallbackConfirmPrefix => fr(|p| p.callback_confirm_prefix.clone()),
            Role::Digit(c) => FrenchPrompts::get()
                .ok()
                .and_then(|p| p.digit(c))
                .into_iter()
                .collect(),
            Role::CallbackConfirmChoice => fr(|p| p.callback_confirm_choice.clone()),
            Role::CallbackEnterNumber => fr(|p| p.callback_enter_number.clone()),
            Role::CallbackInvalidNumber => fr(|p| p.callback_invalid_number.clone()),
            Role::CallbackKeptPlace => fr(|p| p.callback_kept_place.clone()),
            Role::TransferFailed => fr(|p| p.transfer_failed.clone()),
            Role::Announcement {
                position,
                wait_secs,
            } => permanence_media::announcement(
                position,
                wait_secs.map(|s| Duration::from_secs(u64::from(s))),
            ),
        }
    }

    /// The audio of the call core's playlist.
    pub fn playlist(&self, pl: &permanence_call::Playlist) -> Playlist {
        let mut items: Vec<Vec<Arc<Prompt>>> = pl.items.iter().map(|r| self.expand(*r)).collect();
        if pl.loop_last {
            let last = items.pop().unwrap_or_default();
            Playlist::once(items.concat()).then_loop(last)
        } else {
            Playlist::once(items.concat())
        }
    }
}

/// An embedded French prompt (the ones a practice cannot replace), as a
/// playlist piece; empty if the embedded set failed to load (checked at
/// start-up, so never in practice).
fn fr(pick: impl Fn(&FrenchPrompts) -> Arc<Prompt>) -> Vec<Arc<Prompt>> {
    FrenchPrompts::get().ok().map(pick).into_iter().collect()
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
        mc.probation = cfg.rtp.probation_packets;
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
