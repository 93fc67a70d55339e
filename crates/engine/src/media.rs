//! Media shared by every call: the RTP engine, the address written in our
//! SDP, and each practice's prompts (decoded once, swapped lock-free by
//! reloads).

use arc_swap::ArcSwap;
use permanence_call::Prompt as Role;
use permanence_config::{Config, PromptKind};
use permanence_media::{Language, MediaConfig, MediaEngine, Playlist, Prompt, Prompts};
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
    /// The dated announcements, in the order of `[[announcements]]`.
    pub dated: Vec<Arc<Prompt>>,
    /// The language of this set: the embedded prompts it plays (callback
    /// menu, announcements...) are of that language.
    pub language: Language,
    /// The English set of a practice offering English (`None`: French
    /// only, or this is the English set).
    pub english: Option<Box<PracticePrompts>>,
}

impl PracticePrompts {
    fn expand(&self, role: Role) -> Vec<Arc<Prompt>> {
        let lang = self.language;
        match role {
            Role::Greeting => vec![self.greeting.clone()],
            Role::Hold => vec![self.hold.clone()],
            Role::Closed => vec![self.closed.clone()],
            Role::Triage => vec![self.triage.clone()],
            Role::Voicemail => vec![self.voicemail.clone()],
            Role::Callback => vec![self.callback.clone()],
            Role::Overflow => vec![self.overflow.clone()],
            Role::CallbackOffer => builtin(lang, |p| p.callback_offer.clone()),
            Role::CallbackConfirmPrefix => builtin(lang, |p| p.callback_confirm_prefix.clone()),
            Role::Digit(c) => Prompts::get(lang)
                .ok()
                .and_then(|p| p.digit(c))
                .into_iter()
                .collect(),
            Role::CallbackConfirmChoice => builtin(lang, |p| p.callback_confirm_choice.clone()),
            Role::CallbackEnterNumber => builtin(lang, |p| p.callback_enter_number.clone()),
            Role::CallbackInvalidNumber => builtin(lang, |p| p.callback_invalid_number.clone()),
            Role::CallbackKeptPlace => builtin(lang, |p| p.callback_kept_place.clone()),
            Role::TransferFailed => builtin(lang, |p| p.transfer_failed.clone()),
            Role::EnglishOffer => builtin(lang, |p| p.english_offer.clone()),
            Role::Dated(i) => self
                .dated
                .get(usize::from(i))
                .cloned()
                .into_iter()
                .collect(),
            Role::Announcement {
                position,
                wait_secs,
            } => permanence_media::announcement(
                lang,
                position,
                wait_secs.map(|s| Duration::from_secs(u64::from(s))),
            ),
        }
    }

    /// The audio of the call core's playlist, for a caller served in
    /// `language` (the English set if the practice offers English).
    pub fn playlist(&self, pl: &permanence_call::Playlist, language: Language) -> Playlist {
        let set = match language {
            Language::En => self.english.as_deref().unwrap_or(self),
            Language::Fr => self,
        };
        let mut items: Vec<Vec<Arc<Prompt>>> = pl.items.iter().map(|r| set.expand(*r)).collect();
        if pl.loop_last {
            let last = items.pop().unwrap_or_default();
            Playlist::once(items.concat()).then_loop(last)
        } else {
            Playlist::once(items.concat())
        }
    }

    /// The practice's prompt of `kind`.
    fn of_kind(&self, kind: PromptKind) -> &Arc<Prompt> {
        match kind {
            PromptKind::Greeting => &self.greeting,
            PromptKind::Hold => &self.hold,
            PromptKind::Closed => &self.closed,
            PromptKind::Voicemail => &self.voicemail,
            PromptKind::Callback => &self.callback,
            PromptKind::Triage => &self.triage,
        }
    }
}

/// An embedded prompt of `language` (the ones a practice cannot replace),
/// as a playlist piece; empty if the embedded set failed to load (checked
/// at start-up, so never in practice).
fn builtin(language: Language, pick: impl Fn(&Prompts) -> Arc<Prompt>) -> Vec<Arc<Prompt>> {
    Prompts::get(language).ok().map(pick).into_iter().collect()
}

/// Loads every practice's prompts: its own files where configured, the
/// embedded defaults elsewhere; for a practice offering English, the
/// English set too. Errors name the file, line and field that configured
/// the prompt.
pub fn load_prompts(cfg: &Config) -> Result<HashMap<String, PracticePrompts>, Vec<String>> {
    let mut out = HashMap::new();
    let mut errors = Vec::new();
    for p in cfg.practices() {
        let dated = dated_prompts(p, &mut errors);
        let mut french = load_set(p, Language::Fr, None, dated.clone(), &mut errors)?;
        if p.english_digit().is_some() {
            let english = load_set(p, Language::En, Some(&french), dated, &mut errors)?;
            french.english = Some(Box::new(english));
        }
        out.insert(p.id.clone(), french);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// One language's prompts of practice `p`: its recording for that
/// language where configured; in English, else its own (French) recording
/// as decoded in `french`; else the embedded prompt of the language.
fn load_set(
    p: &permanence_config::Practice,
    language: Language,
    french: Option<&PracticePrompts>,
    dated: Vec<Arc<Prompt>>,
    errors: &mut Vec<String>,
) -> Result<PracticePrompts, Vec<String>> {
    let defaults = Prompts::get(language).map_err(|e| vec![format!("embedded prompts: {e}")])?;
    let mut load = |kind: PromptKind, default: &Arc<Prompt>| -> Arc<Prompt> {
        let own = match language {
            Language::Fr => p.prompts.get(kind),
            Language::En => p.prompts.en.as_ref().and_then(|en| en.get(kind)),
        };
        let fallback = match french {
            Some(f) if p.prompts.get(kind).is_some() => f.of_kind(kind).clone(),
            _ => default.clone(),
        };
        match own {
            None => fallback,
            Some(conf) => match Prompt::from_wav_file(&conf.path) {
                Ok(prompt) => Arc::new(prompt),
                Err(e) => {
                    errors.push(conf.origin.error(e.to_string()).to_string());
                    fallback
                }
            },
        }
    };
    Ok(PracticePrompts {
        language,
        greeting: load(PromptKind::Greeting, &defaults.greeting),
        hold: load(PromptKind::Hold, &defaults.hold_music),
        closed: load(PromptKind::Closed, &defaults.closed),
        triage: load(PromptKind::Triage, &defaults.menu),
        voicemail: load(PromptKind::Voicemail, &defaults.voicemail),
        callback: load(PromptKind::Callback, &defaults.callback_taken),
        overflow: defaults.overflow.clone(),
        dated,
        english: None,
    })
}

/// A practice's dated announcements, decoded; a file that cannot be
/// decoded is an error naming its `file:line: field` (the prompts are then
/// refused as a whole, so the indexes of the others do not matter).
fn dated_prompts(p: &permanence_config::Practice, errors: &mut Vec<String>) -> Vec<Arc<Prompt>> {
    p.announcements
        .iter()
        .filter_map(|a| match Prompt::from_wav_file(&a.prompt.path) {
            Ok(prompt) => Some(Arc::new(prompt)),
            Err(e) => {
                errors.push(a.prompt.origin.error(e.to_string()).to_string());
                None
            }
        })
        .collect()
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
