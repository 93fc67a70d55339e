//! The life of one caller's call, as a pure state machine.
//!
//! A [`Call`] is driven by [`Call::handle`] with an [`Input`] and the
//! current time, and by [`Call::handle_timeout`] at [`Call::poll_timeout`].
//! It answers, through [`Call::poll_output`], with [`Action`]s that a driver
//! carries out (send the 200 OK, play a playlist, queue the call with the
//! dispatcher, invite a telesecretary, bridge the two legs, send a BYE...)
//! and [`Event`]s that observers follow (call records, the live view of
//! calls in progress, logs), like `permanence-acd`'s `Output`. It never
//! touches a socket, a clock or a file, so every path is tested on virtual
//! time.
//!
//! `now` is the engine's monotonic timeline (a `DateTime<Utc>` that a wall
//! clock step never moves): deadlines from [`Call::poll_timeout`] are on
//! that timeline too.
//!
//! Files: `io.rs` holds the inputs, actions, events and settings; this file
//! the machine.
//!
//! The path of a call to an open practice:
//! 1. **answer** and play the practice **greeting**;
//! 2. if the practice has a **triage** menu, play it and wait for a digit
//!    (a digit pressed during the greeting counts); no digit before the
//!    timeout takes the default option;
//! 3. **queue** the call with the dispatcher (hold audio, periodic position
//!    and estimated-wait announcements); or, for a triage option that routes
//!    straight to a number, **transfer** it there (back to the queue if that
//!    number does not answer);
//! 4. while waiting, the caller may ask to be **called back without losing
//!    their place** (virtual hold, if the practice offers it): they press
//!    the offered digit, confirm the number spoken back (their own) or type
//!    another one, and the call becomes a callback request that keeps its
//!    place in the dispatcher's queue; a confirmation plays and the engine
//!    hangs up. A silent or mistaken caller goes back to waiting;
//! 5. when the dispatcher **offers** the call to a telesecretary, invite
//!    them while the caller keeps hearing hold audio; on their answer,
//!    **bridge** the two legs; a failed offer goes back to the dispatcher;
//! 6. the call ends when either side hangs up; the telesecretary may put
//!    the caller on hold (hold audio) and back;
//! 7. the telesecretary may **blind-transfer** the caller (REFER from their
//!    softphone, see [`Call::can_transfer`]): they leave the call (the
//!    dispatcher's call ends, wrap-up starts) and either a number is
//!    dialled while the caller hears hold audio (connected on its answer;
//!    on a failure the caller goes back to the **head** of the queue after
//!    a short prompt), or the call goes back to the head of the queue for
//!    the telesecretary or pool named, and the offer/answer of step 5
//!    applies. The caller never hears silence and is never dropped.
//!
//! A practice's **dated announcement** of the day (holidays, an epidemic
//! notice: [`CallSettings::announcement`]) plays right after the greeting
//! (a triage digit pressed during it counts, a hang-up is a greeting
//! abandon), then the call goes on; one that replaces the queue
//! ([`AnnouncementMode::InsteadOfQueue`]) makes the day closed: greeting,
//! announcement, closed prompt, then the closed exit below, counted as a
//! closed-hours call.
//!
//! A practice whose languages include English ([`CallSettings::english`])
//! says "For English, press 9" right after its greeting. The digit,
//! pressed during the greeting, the offer or the triage menu, switches the
//! call to English ([`Call::language`]): [`Action::SetLanguage`] (the
//! driver plays English prompts from then on), the greeting again in
//! English, the menu in English, and the call is queued with the English
//! requirement ([`Action::Enqueue`]'s `language`). Without a triage menu
//! the caller has a few seconds after the offer to press it.
//!
//! Other exits: a closed practice plays the closed prompt (dial 15 in an
//! emergency) and hangs up, or, when it takes messages when closed
//! ([`CallSettings::closed_voicemail`]), plays the voicemail prompt and
//! records one (still a closed-hours call in the figures); at max wait the dispatcher sends the call to
//! its overflow (voicemail: prompt then recording; callback: prompt and the
//! request recorded; hangup: apology then BYE); the caller may hang up at
//! any point (abandon, reported to the dispatcher with the phase); RTP
//! silence and a maximum duration end calls whose far end vanished.
//!
//! Every call ends exactly once, with an [`EndReason`] in
//! [`Action::Finished`], and a call the dispatcher knows about is always
//! closed on its side too (abandon, end of talk, or the dispatcher's own
//! overflow), so no call is lost silently.

#![forbid(unsafe_code)]

mod io;

use chrono::{DateTime, Utc};
use permanence_outbound::DestinationClass;
use std::collections::VecDeque;
use std::time::Duration;

pub use io::{
    Action, Announcement, CallSettings, CallbackSettings, EndReason, Event, Input, Output, Phase,
    Playlist, Prompt, QueueTarget, TransferTo, TriageChoice, TriageMenu,
};
pub use permanence_types::{
    AbandonPhase, AgentId, AnnouncementMode, Disposition, Language, OfferFailure, OverflowKind,
};

/// Silence allowed in the callback menu: after the number is spoken back,
/// and between two digits of a typed number.
const CALLBACK_MENU_TIMEOUT: Duration = Duration::from_secs(10);

/// Most digits of a typed callback number (one more makes it invalid).
const CALLBACK_MAX_DIGITS: usize = 20;

/// Invalid numbers typed before the caller goes back to waiting.
const CALLBACK_MAX_ATTEMPTS: u8 = 2;

/// Silence allowed after "For English, press 9" when no triage menu
/// follows, before the call is queued in French.
const LANGUAGE_WAIT: Duration = Duration::from_secs(3);

/// One caller's call.
#[derive(Debug)]
pub struct Call {
    settings: CallSettings,
    phase: Phase,
    started: Option<DateTime<Utc>>,
    /// Whether the practice was open at the start (`None`: not started).
    open: Option<bool>,
    /// The dispatcher refused the call as closed.
    queue_closed: bool,
    /// A telesecretary or the direct-route number answered at some point.
    answered: bool,
    /// The dispatcher holds the call (queued, ringing or talking).
    in_dispatcher: bool,
    triage_choice: Option<char>,
    next_announce: Option<DateTime<Utc>>,
    awaiting_position: bool,
    /// When the callback offer is first played in this stay in the queue.
    offer_at: Option<DateTime<Utc>>,
    /// The callback offer has been played in this stay in the queue: the
    /// position announcements repeat it.
    offer_made: bool,
    /// A position announcement that arrived during the callback menu, for
    /// the return to the queue.
    held_announcement: Option<Prompt>,
    /// The caller's language: French until they press the English digit.
    language: Language,
    /// When the call is queued in French if the English digit is not
    /// pressed (a practice offering English, without a triage menu).
    language_wait: Option<DateTime<Utc>>,
    outputs: VecDeque<Output>,
}

impl Call {
    /// A new call.
    pub fn new(settings: CallSettings) -> Self {
        Self {
            settings,
            phase: Phase::New,
            started: None,
            open: None,
            queue_closed: false,
            answered: false,
            in_dispatcher: false,
            triage_choice: None,
            next_announce: None,
            awaiting_position: false,
            offer_at: None,
            offer_made: false,
            held_announcement: None,
            language: Language::Fr,
            language_wait: None,
            outputs: VecDeque::new(),
        }
    }

    /// Current phase.
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// The triage digit chosen (or defaulted), if any.
    pub fn triage_choice(&self) -> Option<char> {
        self.triage_choice
    }

    /// The language the caller is served in (prompts, and the agents the
    /// dispatcher may offer the call to).
    pub fn language(&self) -> Language {
        self.language
    }

    /// Whether the dispatcher still holds this call (queued, ringing or
    /// talking) and must be told how it ends.
    pub fn holds_dispatcher_call(&self) -> bool {
        self.in_dispatcher
    }

    /// Whether a blind transfer ([`Input::TransferRequested`]) would be
    /// taken now: only while a telesecretary talks with the caller, held
    /// or not. The driver answers a REFER it cannot take with an error
    /// instead of 202 Accepted; the core ignores the input anyway.
    pub fn can_transfer(&self) -> bool {
        matches!(self.phase, Phase::Bridged { .. })
    }

    /// What the call counts as in the practice's figures, once it has
    /// ended (`None` before): the one definition the metrics, the call
    /// record and the admin API follow.
    pub fn disposition(&self) -> Option<Disposition> {
        let Phase::Ended(reason) = self.phase else {
            return None;
        };
        Some(if self.answered || reason.was_answered() {
            Disposition::Answered
        } else if self.open == Some(false) || self.queue_closed || reason == EndReason::Closed {
            Disposition::Closed
        } else if self.open.is_none() {
            Disposition::Unanswered
        } else if let Some(phase) = reason.abandon_phase() {
            Disposition::Abandoned(phase)
        } else {
            match reason {
                EndReason::Voicemail => Disposition::Overflowed(OverflowKind::Voicemail),
                EndReason::Callback => Disposition::Overflowed(OverflowKind::Callback),
                EndReason::OverflowHangup => Disposition::Overflowed(OverflowKind::Hangup),
                EndReason::CallbackRequested => Disposition::CallbackRequested,
                _ => Disposition::Failed,
            }
        })
    }

    /// When the engine answered the caller (engine time), if it has.
    pub fn started_at(&self) -> Option<DateTime<Utc>> {
        self.started
    }

    /// Whether the call is over.
    pub fn is_ended(&self) -> bool {
        matches!(self.phase, Phase::Ended(_))
    }

    fn push(&mut self, a: Action) {
        self.outputs.push_back(Output::Action(a));
    }

    fn emit(&mut self, e: Event) {
        self.outputs.push_back(Output::Event(e));
    }

    fn finish(&mut self, reason: EndReason) {
        self.phase = Phase::Ended(reason);
        self.next_announce = None;
        self.offer_at = None;
        self.held_announcement = None;
        self.emit(Event::Ended(reason));
        self.push(Action::Finished(reason));
    }

    fn hold_loop(&mut self) {
        self.push(Action::Play(Playlist::looped(Prompt::Hold)));
    }

    /// Joins the dispatcher's queue normally (behind the waiting calls,
    /// for the practice's routing).
    fn enqueue(&mut self, now: DateTime<Utc>) {
        self.join_queue(Vec::new(), false, None, now);
    }

    /// Joins the dispatcher's queue as a new dispatcher call: at its head
    /// when `head`, for `target` only if given; the caller hears `lead`
    /// then the hold audio of a stay in the queue (with the callback offer
    /// as at any enqueue).
    fn join_queue(
        &mut self,
        lead: Vec<Prompt>,
        head: bool,
        target: Option<QueueTarget>,
        now: DateTime<Utc>,
    ) {
        self.phase = Phase::Queued { ringing: None };
        self.in_dispatcher = true;
        self.emit(Event::Queued {
            triage: self.triage_choice,
        });
        self.push(Action::Enqueue {
            triage: self.triage_choice,
            head,
            target,
            language: self.language,
        });
        self.queue_audio(lead, now);
        self.next_announce = self.settings.announce_every.map(|e| now + e);
    }

    /// The telesecretary's leg leaves a bridged call: stop relaying, hang
    /// it up, and close the dispatcher's call (their wrap-up starts).
    fn release_agent(&mut self, agent: AgentId) {
        self.push(Action::Unbridge);
        self.push(Action::HangUpAgent { agent });
        if self.in_dispatcher {
            self.push(Action::ReportEnded);
            self.in_dispatcher = false;
        }
    }

    /// Plays `lead` then the hold audio of a stay in the queue beginning
    /// `now`: with the callback offer first if it is due right away, else
    /// the offer is timed for later.
    fn queue_audio(&mut self, mut items: Vec<Prompt>, now: DateTime<Utc>) {
        self.offer_at = None;
        self.offer_made = false;
        if let Some(cb) = &self.settings.callback {
            if cb.offer_after.is_zero() {
                self.offer_made = true;
                items.push(Prompt::CallbackOffer);
            } else {
                self.offer_at = Some(now + cb.offer_after);
            }
        }
        items.push(Prompt::Hold);
        self.push(Action::Play(Playlist {
            items,
            loop_last: true,
        }));
    }

    /// The caller's side ended (BYE, CANCEL, media gone, failure, max
    /// duration): close every other leg and the dispatcher side.
    fn caller_gone(&mut self, cause: Option<EndReason>, send_bye: bool) {
        if send_bye {
            self.push(Action::HangUp);
        }
        let phase = std::mem::replace(&mut self.phase, Phase::New);
        let reason = match phase {
            Phase::New => EndReason::CallerCancel,
            Phase::Greeting => EndReason::AbandonedGreeting,
            Phase::Triage { .. } => EndReason::AbandonedTriage,
            Phase::CallbackConfirm { .. } | Phase::CallbackEnter { .. } => {
                if self.in_dispatcher {
                    self.push(Action::ReportAbandoned);
                    self.in_dispatcher = false;
                }
                EndReason::AbandonedCallbackPrompt
            }
            // The dispatcher's call is the driver's callback now.
            Phase::CallbackRequested => EndReason::CallbackRequested,
            Phase::Queued { ringing } => {
                if let Some(agent) = ringing.clone() {
                    self.push(Action::CancelAgent { agent });
                }
                if self.in_dispatcher {
                    self.push(Action::ReportAbandoned);
                    self.in_dispatcher = false;
                }
                if ringing.is_some() {
                    EndReason::AbandonedRinging
                } else {
                    EndReason::AbandonedInQueue
                }
            }
            Phase::Bridged { agent, .. } => {
                self.release_agent(agent);
                EndReason::CallerHangup
            }
            // The direct-route number still rings: nobody answered.
            Phase::Transferring { .. } => {
                self.push(Action::HangUpTransfer);
                EndReason::AbandonedRoute
            }
            Phase::Transferred => {
                self.push(Action::HangUpTransfer);
                EndReason::Transferred
            }
            // The telesecretary has left; the number still rings.
            Phase::BlindTransfer { .. } => {
                self.push(Action::HangUpTransfer);
                EndReason::AbandonedTransfer
            }
            Phase::Overflowing(OverflowKind::Voicemail) => EndReason::Voicemail,
            Phase::Overflowing(OverflowKind::Callback) => EndReason::Callback,
            Phase::Overflowing(OverflowKind::Hangup) => EndReason::OverflowHangup,
            Phase::Recording { .. } => {
                self.push(Action::StopRecording);
                EndReason::Voicemail
            }
            Phase::ClosedMessage | Phase::ClosedVoicemail => EndReason::Closed,
            Phase::Ended(r) => {
                self.phase = Phase::Ended(r);
                return;
            }
        };
        self.finish(cause.unwrap_or(reason));
    }

    fn triage_decided(&mut self, digit: Option<char>, now: DateTime<Utc>) {
        self.triage_choice = digit;
        let direct = digit.and_then(|d| {
            self.settings
                .triage
                .as_ref()
                .and_then(|m| m.option(d))
                .filter(|o| o.direct_route)
                .map(|o| o.digit)
        });
        match direct {
            Some(d) => {
                self.phase = Phase::Transferring { digit: d };
                self.emit(Event::RouteDialled { digit: d });
                self.hold_loop();
                self.push(Action::Transfer { digit: d });
            }
            None => self.enqueue(now),
        }
    }

    fn after_greeting(&mut self, now: DateTime<Utc>) {
        if self.settings.triage.is_some() {
            self.phase = Phase::Triage { deadline: None };
            self.emit(Event::TriageMenu);
            self.push(Action::Play(Playlist::once(Prompt::Triage)));
        } else if !self.await_language(now) {
            self.enqueue(now);
        }
    }

    // ------------------------------------------------ the language choice

    /// "For English, press 9", after the greeting while the caller may
    /// still choose English.
    fn english_offer(&self) -> Option<Prompt> {
        self.english_digit().map(|_| Prompt::EnglishOffer)
    }

    /// The digit that switches to English, while it still can: the
    /// practice offers English and the caller has not chosen it yet.
    fn english_digit(&self) -> Option<char> {
        self.settings
            .english
            .filter(|_| self.language == Language::Fr)
    }

    /// No triage menu follows the offer: give the caller a moment to press
    /// the English digit before queueing (once). True if now waiting.
    fn await_language(&mut self, now: DateTime<Utc>) -> bool {
        if self.english_digit().is_none() || self.language_wait.is_some() {
            return false;
        }
        self.language_wait = Some(now + LANGUAGE_WAIT);
        true
    }

    /// The caller pressed the English digit during the greeting or the
    /// triage menu: English from now on (prompts, and an English-speaking
    /// agent), the greeting again in English, then on as usual.
    fn choose_english(&mut self) {
        self.language = Language::En;
        self.language_wait = None;
        self.phase = Phase::Greeting;
        self.emit(Event::LanguageChosen(Language::En));
        self.push(Action::SetLanguage(Language::En));
        let dated = self.settings.announcement.map(|a| Prompt::Dated(a.index));
        self.push(Action::Play(Playlist {
            items: [Some(Prompt::Greeting), dated]
                .into_iter()
                .flatten()
                .collect(),
            loop_last: false,
        }));
    }

    fn overflow(&mut self, kind: OverflowKind) {
        let prompt = match kind {
            OverflowKind::Voicemail => Prompt::Voicemail,
            OverflowKind::Callback => {
                self.push(Action::SaveCallback);
                Prompt::Callback
            }
            OverflowKind::Hangup => Prompt::Overflow,
        };
        self.phase = Phase::Overflowing(kind);
        self.emit(Event::Overflowed(kind));
        self.next_announce = None;
        self.push(Action::Play(Playlist::once(prompt)));
    }

    /// Feeds one input.
    pub fn handle(&mut self, input: Input, now: DateTime<Utc>) {
        if self.is_ended() {
            return;
        }
        match input {
            Input::Start { open } => self.on_start(open, now),
            Input::CallerCancel | Input::CallerBye => self.caller_gone(None, false),
            Input::MediaTimeout => self.caller_gone(Some(EndReason::MediaTimeout), true),
            Input::DriverFailure => self.caller_gone(Some(EndReason::Failure), true),
            Input::PlaybackFinished => self.on_playback_finished(now),
            Input::Dtmf(d) => self.on_dtmf(d, now),
            Input::Closed => self.on_queue_closed(),
            Input::Offer { agent } => self.on_offer(agent),
            Input::OfferCancelled { agent } => self.on_offer_cancelled(agent),
            Input::Overflow(kind) => self.on_overflow(kind),
            Input::Position { position, wait } => self.on_position(position, wait),
            Input::AgentRinging { .. } => {}
            Input::AgentAnswered { agent } => self.on_agent_answered(agent),
            Input::AnswerRefused { agent } => self.on_answer_refused(agent),
            Input::AgentFailed { agent, reason } => self.on_agent_failed(agent, reason),
            Input::AgentBye => self.on_agent_bye(),
            Input::AgentLost => self.on_agent_lost(now),
            Input::AgentHold => self.on_agent_hold(true),
            Input::AgentUnhold => self.on_agent_hold(false),
            Input::TransferRequested { to } => self.on_transfer_requested(to, now),
            Input::AttendedTransfer => self.on_attended_transfer(),
            Input::TransferAnswered => self.on_route_answered(),
            Input::TransferFailed => self.on_route_failed(now),
            Input::TransferBye => self.on_route_bye(now),
        }
    }

    // --------------------------------------------------- the caller's side

    /// Answers: the greeting (then the dated announcement of the day, if
    /// any) when the practice is open; the closed prompt when it is closed.
    /// An announcement that replaces the queue makes the day closed: the
    /// greeting, the announcement, then the closed prompt (it names the
    /// 15), and the call counts as a closed-hours call (`open` false).
    fn on_start(&mut self, open: bool, now: DateTime<Utc>) {
        if self.phase != Phase::New {
            return;
        }
        let dated = self.settings.announcement;
        let closed_today = dated.is_some_and(|a| a.mode == AnnouncementMode::InsteadOfQueue);
        let dated = dated.map(|a| Prompt::Dated(a.index));
        let open_now = open && !closed_today;
        self.started = Some(now);
        self.open = Some(open_now);
        self.push(Action::Answer);
        self.emit(Event::Answered { open: open_now });
        let items: Vec<Prompt> = if open_now {
            self.phase = Phase::Greeting;
            [Some(Prompt::Greeting), self.english_offer(), dated]
                .into_iter()
                .flatten()
                .collect()
        } else {
            self.phase = Phase::ClosedMessage;
            let greeting = open.then_some(Prompt::Greeting);
            // Closed by the hours: the closure's announcement, if one
            // replaces the queue today, comes first; a notice that plays
            // after the greeting is not played.
            let dated = dated.filter(|_| closed_today);
            [greeting, dated, Some(Prompt::Closed)]
                .into_iter()
                .flatten()
                .collect()
        };
        self.push(Action::Play(Playlist {
            items,
            loop_last: false,
        }));
    }

    /// The closed prompt has played: the voicemail prompt then a recording
    /// when the practice takes messages when closed, else hang up.
    fn after_closed_prompt(&mut self) {
        if self.settings.closed_voicemail {
            self.phase = Phase::ClosedVoicemail;
            self.push(Action::Play(Playlist::once(Prompt::Voicemail)));
        } else {
            self.push(Action::HangUp);
            self.finish(EndReason::Closed);
        }
    }

    /// The voicemail prompt has played: record the caller's message.
    fn start_recording(&mut self, now: DateTime<Utc>) {
        let until = now + self.settings.voicemail_max;
        self.phase = Phase::Recording { until };
        self.emit(Event::Recording);
        self.push(Action::StartRecording(self.settings.voicemail_max));
    }

    fn on_playback_finished(&mut self, now: DateTime<Utc>) {
        match self.phase.clone() {
            Phase::Greeting => self.after_greeting(now),
            Phase::Triage { deadline: None } => {
                let timeout = self
                    .settings
                    .triage
                    .as_ref()
                    .map(|m| m.timeout)
                    .unwrap_or_default();
                self.phase = Phase::Triage {
                    deadline: Some(now + timeout),
                };
            }
            Phase::ClosedMessage => self.after_closed_prompt(),
            Phase::Overflowing(OverflowKind::Voicemail) | Phase::ClosedVoicemail => {
                self.start_recording(now)
            }
            Phase::Overflowing(kind) => {
                self.push(Action::HangUp);
                self.finish(match kind {
                    OverflowKind::Callback => EndReason::Callback,
                    _ => EndReason::OverflowHangup,
                });
            }
            Phase::CallbackConfirm {
                number,
                deadline: None,
                replayed,
            } => {
                self.phase = Phase::CallbackConfirm {
                    number,
                    deadline: Some(now + CALLBACK_MENU_TIMEOUT),
                    replayed,
                };
            }
            Phase::CallbackEnter {
                digits, attempts, ..
            } => {
                self.phase = Phase::CallbackEnter {
                    digits,
                    attempts,
                    deadline: Some(now + CALLBACK_MENU_TIMEOUT),
                };
            }
            Phase::CallbackRequested => {
                self.push(Action::HangUp);
                self.finish(EndReason::CallbackRequested);
            }
            _ => {}
        }
    }

    fn on_dtmf(&mut self, d: char, now: DateTime<Utc>) {
        let menu_has = self
            .settings
            .triage
            .as_ref()
            .is_some_and(|m| m.option(d).is_some());
        match self.phase {
            Phase::Greeting | Phase::Triage { .. } if self.english_digit() == Some(d) => {
                self.choose_english()
            }
            Phase::Greeting | Phase::Triage { .. } if menu_has => self.triage_decided(Some(d), now),
            // A wrong key during the menu: play it again.
            Phase::Triage { .. } => {
                self.phase = Phase::Triage { deadline: None };
                self.push(Action::Play(Playlist::once(Prompt::Triage)));
            }
            // While a telesecretary's phone rings, the caller is about to
            // be answered: the callback digit does nothing.
            Phase::Queued { ringing: None } if self.is_callback_digit(d) => {
                self.open_callback_menu()
            }
            Phase::CallbackConfirm { .. } => self.on_confirm_key(d),
            Phase::CallbackEnter { .. } => self.on_entry_key(d, now),
            _ => {}
        }
    }

    // ---------------------------------------------------- the callback menu

    fn is_callback_digit(&self, d: char) -> bool {
        self.settings
            .callback
            .as_ref()
            .is_some_and(|c| c.digit == d)
    }

    /// The E.164 number a callback may go to, from a dialled or presented
    /// `number`: a valid number of the accepted list, never an emergency
    /// number or a short code (a callback goes to a patient's line).
    fn callback_number(&self, number: &str) -> Option<String> {
        let cb = self.settings.callback.as_ref()?;
        permanence_outbound::classify(number)
            .ok()
            .filter(|d| {
                !matches!(
                    d.class,
                    DestinationClass::Emergency | DestinationClass::Short
                )
            })
            .filter(|d| cb.accept.allows(d))
            .map(|d| d.dial)
    }

    /// The caller pressed the callback digit while waiting: speak their
    /// number back, or ask for one if it is withheld or cannot be called.
    fn open_callback_menu(&mut self) {
        let presented = self
            .settings
            .callback
            .as_ref()
            .and_then(|c| c.presented.clone())
            .and_then(|p| self.callback_number(&p));
        // The caller knows the offer now: announcements repeat it if they
        // come back to waiting through an offer to a telesecretary.
        self.offer_at = None;
        self.offer_made = true;
        self.emit(Event::CallbackMenu);
        match presented {
            Some(number) => self.confirm_number(number),
            None => self.ask_number(0),
        }
    }

    /// Speaks `number` back and waits for 1 (confirm) or 3 (another one).
    fn confirm_number(&mut self, number: String) {
        self.push(Action::Play(confirmation(&number)));
        self.phase = Phase::CallbackConfirm {
            number,
            deadline: None,
            replayed: false,
        };
    }

    /// Asks for the number to call back, `attempts` invalid ones typed so
    /// far (the prompt then says the last one was invalid).
    fn ask_number(&mut self, attempts: u8) {
        self.phase = Phase::CallbackEnter {
            digits: String::new(),
            attempts,
            deadline: None,
        };
        let items = if attempts == 0 {
            vec![Prompt::CallbackEnterNumber]
        } else {
            vec![Prompt::CallbackInvalidNumber, Prompt::CallbackEnterNumber]
        };
        self.push(Action::Play(Playlist {
            items,
            loop_last: false,
        }));
    }

    fn on_confirm_key(&mut self, d: char) {
        let Phase::CallbackConfirm { number, .. } = self.phase.clone() else {
            return;
        };
        match d {
            '1' => self.request_callback(number),
            '3' => self.ask_number(0),
            _ => {}
        }
    }

    fn on_entry_key(&mut self, d: char, now: DateTime<Utc>) {
        let Phase::CallbackEnter {
            mut digits,
            attempts,
            ..
        } = self.phase.clone()
        else {
            return;
        };
        match d {
            '#' => self.number_typed(&digits, attempts, now),
            // One digit too many: no number is that long.
            '0'..='9' if digits.len() >= CALLBACK_MAX_DIGITS => self.number_invalid(attempts, now),
            '0'..='9' => {
                digits.push(d);
                self.phase = Phase::CallbackEnter {
                    digits,
                    attempts,
                    deadline: Some(now + CALLBACK_MENU_TIMEOUT),
                };
            }
            // `*` and the letter keys are ignored.
            _ => {}
        }
    }

    /// The caller finished typing `digits` (`#` or silence).
    fn number_typed(&mut self, digits: &str, attempts: u8, now: DateTime<Utc>) {
        match self.callback_number(digits) {
            Some(number) => self.confirm_number(number),
            None => self.number_invalid(attempts, now),
        }
    }

    /// No valid number typed: a second try, or back to waiting.
    fn number_invalid(&mut self, attempts: u8, now: DateTime<Utc>) {
        let attempts = attempts.saturating_add(1);
        if attempts < CALLBACK_MAX_ATTEMPTS {
            self.ask_number(attempts);
        } else {
            self.back_to_queue(Some(Prompt::CallbackInvalidNumber), now);
        }
    }

    /// The caller confirmed: the dispatcher's call becomes the driver's
    /// callback request, keeping its place.
    fn request_callback(&mut self, number: String) {
        self.in_dispatcher = false;
        self.next_announce = None;
        self.offer_at = None;
        self.held_announcement = None;
        self.phase = Phase::CallbackRequested;
        self.push(Action::RequestCallback { number });
        self.emit(Event::CallbackRequested);
        self.push(Action::Play(Playlist::once(Prompt::CallbackKeptPlace)));
    }

    /// Leaves the callback menu for the queue: `lead` (why), the position
    /// announcement that came during the menu, then the hold audio of a new
    /// stay in the queue (the offer as at enqueue).
    fn back_to_queue(&mut self, lead: Option<Prompt>, now: DateTime<Utc>) {
        self.phase = Phase::Queued { ringing: None };
        self.emit(Event::BackInQueue);
        let mut items: Vec<Prompt> = lead.into_iter().collect();
        items.extend(self.held_announcement.take());
        self.queue_audio(items, now);
        self.next_announce = self.settings.announce_every.map(|e| now + e);
    }

    /// Silence after the number was spoken back: once more, then back to
    /// waiting.
    fn on_confirm_silence(&mut self, now: DateTime<Utc>) {
        let Phase::CallbackConfirm {
            number, replayed, ..
        } = self.phase.clone()
        else {
            return;
        };
        if replayed {
            self.back_to_queue(None, now);
        } else {
            self.push(Action::Play(confirmation(&number)));
            self.phase = Phase::CallbackConfirm {
                number,
                deadline: None,
                replayed: true,
            };
        }
    }

    /// Silence while typing: ends the number like `#`, or is a failed try
    /// when nothing was typed.
    fn on_entry_silence(&mut self, now: DateTime<Utc>) {
        let Phase::CallbackEnter {
            digits, attempts, ..
        } = self.phase.clone()
        else {
            return;
        };
        if digits.is_empty() {
            self.number_invalid(attempts, now);
        } else {
            self.number_typed(&digits, attempts, now);
        }
    }

    // ------------------------------------------------------ the dispatcher

    /// The caller waits in the dispatcher's queue: `Some` with the agent
    /// being rung, if any, when queued or in the callback menu (the call
    /// never leaves the queue there).
    fn waiting(&self) -> Option<Option<AgentId>> {
        match &self.phase {
            Phase::Queued { ringing } => Some(ringing.clone()),
            Phase::CallbackConfirm { .. } | Phase::CallbackEnter { .. } => Some(None),
            _ => None,
        }
    }

    fn in_callback_menu(&self) -> bool {
        matches!(
            self.phase,
            Phase::CallbackConfirm { .. } | Phase::CallbackEnter { .. }
        )
    }

    fn on_queue_closed(&mut self) {
        // Only a queued call can be refused by the dispatcher.
        if let Some(ringing) = self.waiting() {
            self.queue_closed = true;
            self.in_dispatcher = false;
            self.held_announcement = None;
            if let Some(agent) = ringing {
                self.push(Action::CancelAgent { agent });
            }
            self.next_announce = None;
            self.phase = Phase::ClosedMessage;
            self.emit(Event::QueueClosed);
            self.push(Action::Play(Playlist::once(Prompt::Closed)));
        }
    }

    fn on_offer(&mut self, agent: AgentId) {
        let in_menu = self.in_callback_menu();
        let Some(ringing) = self.waiting() else {
            return;
        };
        if let Some(old) = ringing {
            if old == agent {
                return;
            }
            self.emit(Event::OfferEnded { agent: old.clone() });
            self.push(Action::CancelAgent { agent: old });
        }
        self.phase = Phase::Queued {
            ringing: Some(agent.clone()),
        };
        self.emit(Event::Offered {
            agent: agent.clone(),
        });
        self.push(Action::InviteAgent { agent });
        if in_menu {
            // The menu is dropped: the caller waits for the telesecretary.
            self.held_announcement = None;
            self.hold_loop();
        }
    }

    fn on_offer_cancelled(&mut self, agent: AgentId) {
        if self.ringing() == Some(&agent) {
            self.phase = Phase::Queued { ringing: None };
            self.emit(Event::OfferEnded {
                agent: agent.clone(),
            });
            self.push(Action::CancelAgent { agent });
        }
    }

    fn on_overflow(&mut self, kind: OverflowKind) {
        if let Some(ringing) = self.waiting() {
            self.in_dispatcher = false;
            self.held_announcement = None;
            if let Some(agent) = ringing {
                self.push(Action::CancelAgent { agent });
            }
            self.overflow(kind);
        }
    }

    fn on_position(&mut self, position: u32, wait: Option<std::time::Duration>) {
        if !self.awaiting_position {
            return;
        }
        self.awaiting_position = false;
        let wait_secs = wait.map(|w| u32::try_from(w.as_secs()).unwrap_or(0));
        let announcement = Prompt::Announcement {
            position,
            wait_secs,
        };
        match self.phase {
            Phase::Queued { ringing: None } => {
                let mut items = vec![announcement];
                if self.offer_made {
                    items.push(Prompt::CallbackOffer);
                }
                items.push(Prompt::Hold);
                self.push(Action::Play(Playlist {
                    items,
                    loop_last: true,
                }));
            }
            // Not to cut the menu: heard when back to waiting.
            Phase::CallbackConfirm { .. } | Phase::CallbackEnter { .. } => {
                self.held_announcement = Some(announcement);
            }
            _ => {}
        }
    }

    // ------------------------------------------------- the telesecretary

    /// The agent whose phone rings with the call, if any.
    fn ringing(&self) -> Option<&AgentId> {
        match &self.phase {
            Phase::Queued { ringing } => ringing.as_ref(),
            _ => None,
        }
    }

    fn on_agent_answered(&mut self, agent: AgentId) {
        if self.ringing() != Some(&agent) {
            // Answered after the offer was withdrawn: release that leg.
            self.push(Action::HangUpAgent { agent });
            return;
        }
        self.phase = Phase::Bridged {
            agent: agent.clone(),
            held: false,
        };
        self.answered = true;
        self.emit(Event::Connected {
            agent: agent.clone(),
        });
        self.next_announce = None;
        self.awaiting_position = false;
        self.push(Action::ReportAnswered { agent });
        self.push(Action::Bridge);
    }

    fn on_answer_refused(&mut self, agent: AgentId) {
        if matches!(&self.phase, Phase::Bridged { agent: a, .. } if *a == agent) {
            self.push(Action::Unbridge);
            self.emit(Event::OfferEnded {
                agent: agent.clone(),
            });
            self.push(Action::HangUpAgent { agent });
            self.phase = Phase::Queued { ringing: None };
            self.hold_loop();
        }
    }

    fn on_agent_failed(&mut self, agent: AgentId, reason: OfferFailure) {
        if self.ringing() == Some(&agent) {
            self.phase = Phase::Queued { ringing: None };
            self.emit(Event::OfferEnded {
                agent: agent.clone(),
            });
            self.push(Action::ReportOfferFailed { agent, reason });
        }
    }

    fn on_agent_bye(&mut self) {
        if let Phase::Bridged { .. } = self.phase {
            self.push(Action::Unbridge);
            self.push(Action::HangUp);
            if self.in_dispatcher {
                self.push(Action::ReportEnded);
                self.in_dispatcher = false;
            }
            self.finish(EndReason::AgentHangup);
        }
    }

    /// The agent's softphone vanished while talking or holding: rather
    /// than hang up on the caller, the call goes back to the head of the
    /// queue (the caller hears that their party is unreachable), for the
    /// next telesecretary. Elsewhere it is a hang-up.
    fn on_agent_lost(&mut self, now: DateTime<Utc>) {
        let Phase::Bridged { agent, .. } = self.phase.clone() else {
            return self.on_agent_bye();
        };
        self.emit(Event::AgentLost);
        self.release_agent(agent);
        self.join_queue(vec![Prompt::TransferFailed], true, None, now);
    }

    /// The agent puts the caller on hold (`hold`) or takes them back.
    fn on_agent_hold(&mut self, hold: bool) {
        let Phase::Bridged { agent, held } = self.phase.clone() else {
            return;
        };
        if held == hold {
            return;
        }
        self.phase = Phase::Bridged { agent, held: hold };
        if hold {
            self.emit(Event::Held);
            self.push(Action::Unbridge);
            self.hold_loop();
        } else {
            self.emit(Event::Resumed);
            self.push(Action::Bridge);
        }
    }

    /// The telesecretary blind-transferred the caller (REFER), bridged or
    /// holding them: they leave the call (the dispatcher's call is over,
    /// their wrap-up starts). A number is dialled while the caller hears
    /// hold audio; a telesecretary or a pool gets the call back from the
    /// dispatcher, at the head of the queue (a new dispatcher call). Any
    /// other phase ignores it.
    fn on_transfer_requested(&mut self, to: TransferTo, now: DateTime<Utc>) {
        let Phase::Bridged { agent, .. } = self.phase.clone() else {
            return;
        };
        self.emit(Event::TransferDialled { kind: to.kind() });
        self.release_agent(agent);
        match to {
            TransferTo::Number(number) => {
                self.phase = Phase::BlindTransfer {
                    number: number.clone(),
                };
                self.hold_loop();
                self.push(Action::DialTransfer { number });
            }
            TransferTo::Agent(a) => {
                self.join_queue(Vec::new(), true, Some(QueueTarget::Agent(a)), now)
            }
            TransferTo::Pool(p) => {
                self.join_queue(Vec::new(), true, Some(QueueTarget::Pool(p)), now)
            }
        }
    }

    /// The agent joined the caller with the party they had called
    /// (REFER with Replaces): the agent leaves, the two talk.
    fn on_attended_transfer(&mut self) {
        let Phase::Bridged { agent, .. } = self.phase.clone() else {
            return;
        };
        self.emit(Event::TransferDialled { kind: "attended" });
        self.release_agent(agent);
        self.phase = Phase::Transferred;
        self.emit(Event::TransferConnected);
        self.push(Action::JoinTransferred);
    }

    // ------------------------------------ the direct route, the transfer

    fn on_route_answered(&mut self) {
        let event = match self.phase {
            Phase::Transferring { .. } => Event::RouteConnected,
            Phase::BlindTransfer { .. } => Event::TransferConnected,
            _ => return,
        };
        self.phase = Phase::Transferred;
        self.answered = true;
        self.emit(event);
        self.push(Action::Bridge);
    }

    fn on_route_failed(&mut self, now: DateTime<Utc>) {
        match self.phase {
            // The number did not answer: queue the call, keeping its
            // triage choice (urgent priority).
            Phase::Transferring { .. } => self.enqueue(now),
            // The transfer's number did not answer: back to the head of
            // the queue (the caller has already waited and been answered),
            // told why.
            Phase::BlindTransfer { .. } => {
                self.join_queue(vec![Prompt::TransferFailed], true, None, now)
            }
            _ => {}
        }
    }

    fn on_route_bye(&mut self, now: DateTime<Utc>) {
        match self.phase {
            Phase::Transferred => {
                self.push(Action::Unbridge);
                self.push(Action::HangUp);
                self.finish(EndReason::Transferred);
            }
            // The transfer's leg vanished before answering: a failure, the
            // caller must not wait on hold for nobody.
            Phase::BlindTransfer { .. } => self.on_route_failed(now),
            _ => {}
        }
    }

    /// When [`Call::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<DateTime<Utc>> {
        if self.is_ended() {
            return None;
        }
        let max = self.started.map(|s| s + self.settings.max_duration);
        let phase = match &self.phase {
            Phase::Greeting => self.language_wait,
            Phase::Triage { deadline } => *deadline,
            Phase::Recording { until } => Some(*until),
            Phase::CallbackConfirm { deadline, .. } | Phase::CallbackEnter { deadline, .. } => {
                *deadline
            }
            _ => None,
        };
        let announce = match (&self.phase, self.awaiting_position) {
            (Phase::Queued { ringing: None }, false) => self.next_announce,
            _ => None,
        };
        let offer = match &self.phase {
            Phase::Queued { ringing: None } => self.offer_at,
            _ => None,
        };
        [max, phase, announce, offer].into_iter().flatten().min()
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: DateTime<Utc>) {
        if self.is_ended() {
            return;
        }
        if let Some(max) = self.started.map(|s| s + self.settings.max_duration) {
            if now >= max {
                self.caller_gone(Some(EndReason::MaxDuration), true);
                return;
            }
        }
        match self.phase.clone() {
            Phase::Greeting if self.language_wait.is_some_and(|d| now >= d) => {
                self.language_wait = None;
                self.enqueue(now);
            }
            Phase::Triage {
                deadline: Some(d), ..
            } if now >= d => {
                let default = self.settings.triage.as_ref().and_then(|m| m.default);
                self.triage_decided(default, now);
            }
            Phase::Recording { until } if now >= until => {
                self.push(Action::StopRecording);
                self.push(Action::HangUp);
                self.finish(EndReason::Voicemail);
            }
            Phase::CallbackConfirm {
                deadline: Some(d), ..
            } if now >= d => self.on_confirm_silence(now),
            Phase::CallbackEnter {
                deadline: Some(d), ..
            } if now >= d => self.on_entry_silence(now),
            Phase::Queued { ringing: None } => {
                self.offer_timer(now);
                self.announce_timer(now);
            }
            _ => {}
        }
    }

    /// Plays the callback offer once the caller has waited long enough.
    fn offer_timer(&mut self, now: DateTime<Utc>) {
        if self.offer_at.is_some_and(|at| now >= at) {
            self.offer_at = None;
            self.offer_made = true;
            self.push(Action::Play(Playlist {
                items: vec![Prompt::CallbackOffer, Prompt::Hold],
                loop_last: true,
            }));
        }
    }

    /// Asks for the position when an announcement is due.
    fn announce_timer(&mut self, now: DateTime<Utc>) {
        if self.awaiting_position {
            return;
        }
        if let (Some(at), Some(every)) = (self.next_announce, self.settings.announce_every) {
            if now >= at {
                self.awaiting_position = true;
                self.next_announce = Some(now + every);
                self.push(Action::RequestPosition);
            }
        }
    }

    /// Next output: an action to carry out or an event to observe, in the
    /// order they happened.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }
}

/// The number spoken back for confirmation: the prefix, `number` digit by
/// digit (in national form when it is French, `0 6 1 2…`; else E.164 with
/// its `+`), then the choice (1 to confirm, 3 for another number).
fn confirmation(number: &str) -> Playlist {
    let mut items = vec![Prompt::CallbackConfirmPrefix];
    items.extend(national_form(number).chars().map(Prompt::Digit));
    items.push(Prompt::CallbackConfirmChoice);
    Playlist {
        items,
        loop_last: false,
    }
}

/// `number` (E.164) as dialled in France: `0` and the 9 digits of a French
/// number, overseas departments included (`+262692123456` is
/// `0692123456`); other numbers as they are.
fn national_form(number: &str) -> String {
    let nsn_start = number.len().saturating_sub(9);
    let national = number
        .get(nsn_start..)
        .filter(|nsn| nsn.len() == 9)
        .map(|nsn| format!("0{nsn}"));
    match national {
        Some(n) if permanence_outbound::classify(&n).is_ok_and(|d| d.dial == number) => n,
        _ => number.to_string(),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod english_tests;

#[cfg(test)]
mod dated_tests;
