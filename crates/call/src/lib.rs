//! The life of one caller's call, as a pure state machine.
//!
//! A [`Call`] is driven by [`Call::handle`] with an [`Input`] and the
//! current time, and by [`Call::handle_timeout`] at [`Call::poll_timeout`];
//! it answers with [`Action`]s that a driver carries out (send the 200 OK,
//! play a playlist, queue the call with the dispatcher, invite a
//! telesecretary, bridge the two legs, send a BYE...). It never touches a
//! socket, a clock or a file, so every path is tested on virtual time.
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
//! 4. when the dispatcher **offers** the call to a telesecretary, invite
//!    them while the caller keeps hearing hold audio; on their answer,
//!    **bridge** the two legs; a failed offer goes back to the dispatcher;
//! 5. the call ends when either side hangs up; the telesecretary may put
//!    the caller on hold (hold audio) and back.
//!
//! Other exits: a closed practice plays the closed prompt (dial 15 in an
//! emergency) and hangs up; at max wait the dispatcher sends the call to
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

use chrono::{DateTime, Duration, Utc};
use std::collections::VecDeque;

/// A prompt, named by role; the driver maps it to the practice's audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prompt {
    /// The practice greeting.
    Greeting,
    /// Hold audio.
    Hold,
    /// The closed message (with the "dial 15" advice).
    Closed,
    /// The triage menu.
    Triage,
    /// Played before recording a voicemail message.
    Voicemail,
    /// "Your callback request is recorded".
    Callback,
    /// Apology when the call overflows to a hang-up.
    Overflow,
    /// Position in queue and estimated wait (composed by the driver).
    Announcement {
        /// Position in the queue (1 = next), 0 if unknown.
        position: u32,
        /// Estimated wait in seconds, if known.
        wait_secs: Option<u32>,
    },
}

/// What a caller leg should hear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Playlist {
    /// Prompts in order.
    pub items: Vec<Prompt>,
    /// Whether the last item repeats until something else is played.
    pub loop_last: bool,
}

impl Playlist {
    /// Plays `p` once.
    pub fn once(p: Prompt) -> Self {
        Self {
            items: vec![p],
            loop_last: false,
        }
    }

    /// Plays `p` in a loop.
    pub fn looped(p: Prompt) -> Self {
        Self {
            items: vec![p],
            loop_last: true,
        }
    }
}

/// One triage option as the call core needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriageChoice {
    /// The DTMF digit.
    pub digit: char,
    /// The option sends the call straight to a number (not the queue).
    pub direct_route: bool,
}

/// A practice's DTMF menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriageMenu {
    /// Time to press a digit once the menu has been played.
    pub timeout: Duration,
    /// Digit taken when none is pressed (`None`: queue without a choice).
    pub default: Option<char>,
    /// The options.
    pub options: Vec<TriageChoice>,
}

impl TriageMenu {
    fn option(&self, digit: char) -> Option<&TriageChoice> {
        self.options.iter().find(|o| o.digit == digit)
    }
}

/// Settings of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSettings {
    /// Longest a call may last.
    pub max_duration: Duration,
    /// The triage menu, if the practice has one.
    pub triage: Option<TriageMenu>,
    /// Period of position/wait announcements while queued (`None`: off).
    pub announce_every: Option<Duration>,
    /// Longest voicemail message.
    pub voicemail_max: Duration,
}

impl Default for CallSettings {
    fn default() -> Self {
        Self {
            max_duration: Duration::hours(4),
            triage: None,
            announce_every: None,
            voicemail_max: Duration::minutes(2),
        }
    }
}

/// Why an offer to a telesecretary failed, as seen by the SIP side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OfferFailure {
    /// 486 Busy Here / 600 Busy Everywhere.
    Busy,
    /// 603 Decline and other final refusals.
    Rejected,
    /// 480, 408, transport failure, no registered contact.
    Unreachable,
}

/// Where an overflowing call goes (pool overflow stays in the queue and
/// never reaches the call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OverflowKind {
    /// Voicemail prompt then a recorded message.
    Voicemail,
    /// Callback prompt; the request is recorded with the caller's number.
    Callback,
    /// Apology, then hang up.
    Hangup,
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// The caller cancelled before the answer.
    CallerCancel,
    /// The caller hung up before reaching the queue (greeting, triage).
    CallerHangupBeforeQueue,
    /// The caller hung up while waiting in the queue.
    AbandonedInQueue,
    /// The caller hung up while a telesecretary's phone was ringing.
    AbandonedRinging,
    /// Answered by a telesecretary; the caller hung up.
    CallerHangup,
    /// Answered by a telesecretary; the telesecretary hung up.
    AgentHangup,
    /// The practice was closed: closed prompt, then BYE.
    Closed,
    /// Overflow to voicemail (a message may have been recorded).
    Voicemail,
    /// Overflow to a callback request.
    Callback,
    /// Overflow to a hang-up with an apology.
    OverflowHangup,
    /// Sent straight to a number by triage, and connected there.
    Transferred,
    /// No RTP from the caller for too long.
    MediaTimeout,
    /// The call hit its maximum duration.
    MaxDuration,
    /// The driver failed to carry out an action.
    Failure,
}

impl EndReason {
    /// Short name for logs and records.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::CallerCancel => "caller-cancel",
            EndReason::CallerHangupBeforeQueue => "caller-hangup-before-queue",
            EndReason::AbandonedInQueue => "abandoned-queue",
            EndReason::AbandonedRinging => "abandoned-ringing",
            EndReason::CallerHangup => "caller-hangup",
            EndReason::AgentHangup => "agent-hangup",
            EndReason::Closed => "closed",
            EndReason::Voicemail => "voicemail",
            EndReason::Callback => "callback",
            EndReason::OverflowHangup => "overflow-hangup",
            EndReason::Transferred => "transferred",
            EndReason::MediaTimeout => "media-timeout",
            EndReason::MaxDuration => "max-duration",
            EndReason::Failure => "failure",
        }
    }

    /// Whether a telesecretary (or the direct-route number) talked with
    /// the caller.
    pub fn was_answered(self) -> bool {
        matches!(
            self,
            EndReason::CallerHangup | EndReason::AgentHangup | EndReason::Transferred
        )
    }
}

/// Something that happened to the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Begin: the practice is `open` (or closed) right now.
    Start {
        /// Whether the practice is open.
        open: bool,
    },
    /// The caller sent BYE.
    CallerBye,
    /// The caller sent CANCEL before the answer.
    CallerCancel,
    /// The non-looping playlist finished.
    PlaybackFinished,
    /// A DTMF digit from the caller (RFC 4733 or SIP INFO).
    Dtmf(char),
    /// No RTP from the caller for the configured time.
    MediaTimeout,
    /// The driver could not carry out an action.
    DriverFailure,
    /// The dispatcher refused the call: the practice is closed.
    Closed,
    /// The dispatcher offers the call to this telesecretary.
    Offer {
        /// Agent user name.
        agent: String,
    },
    /// The dispatcher withdrew its offer (ring timeout, agent paused...).
    OfferCancelled {
        /// Agent user name.
        agent: String,
    },
    /// The dispatcher sends the call to its overflow.
    Overflow(OverflowKind),
    /// The dispatcher's position and estimated wait (after
    /// [`Action::RequestPosition`]).
    Position {
        /// Position in queue (1 = next).
        position: u32,
        /// Estimated wait.
        wait: Option<Duration>,
    },
    /// The telesecretary's phone is ringing (180/183).
    AgentRinging {
        /// Agent user name.
        agent: String,
    },
    /// The telesecretary answered (200 OK to our INVITE).
    AgentAnswered {
        /// Agent user name.
        agent: String,
    },
    /// The telesecretary's INVITE failed.
    AgentFailed {
        /// Agent user name.
        agent: String,
        /// Why.
        reason: OfferFailure,
    },
    /// The dispatcher refused an answer it had already withdrawn.
    AnswerRefused {
        /// Agent user name.
        agent: String,
    },
    /// The telesecretary hung up (or their leg vanished).
    AgentBye,
    /// The telesecretary put the caller on hold (re-INVITE sendonly).
    AgentHold,
    /// The telesecretary resumed the call.
    AgentUnhold,
    /// The direct-route number answered.
    TransferAnswered,
    /// The direct-route number did not answer or refused.
    TransferFailed,
    /// The direct-route party hung up.
    TransferBye,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send 200 OK with our SDP and start media.
    Answer,
    /// Play this playlist on the caller's leg (replacing what plays).
    Play(Playlist),
    /// Send BYE to the caller.
    HangUp,
    /// Queue the call with the dispatcher, with the triage digit chosen.
    Enqueue {
        /// The triage option (its priority, skills, language apply).
        triage: Option<char>,
    },
    /// Ask the dispatcher for the position and estimated wait.
    RequestPosition,
    /// Tell the dispatcher the caller hung up (abandon).
    ReportAbandoned,
    /// Tell the dispatcher the telesecretary answered.
    ReportAnswered {
        /// Agent user name.
        agent: String,
    },
    /// Tell the dispatcher the offer failed.
    ReportOfferFailed {
        /// Agent user name.
        agent: String,
        /// Why.
        reason: OfferFailure,
    },
    /// Tell the dispatcher the answered call ended (wrap-up starts).
    ReportEnded,
    /// Invite the telesecretary's registered contacts.
    InviteAgent {
        /// Agent user name.
        agent: String,
    },
    /// Cancel the INVITE to the telesecretary.
    CancelAgent {
        /// Agent user name.
        agent: String,
    },
    /// Hang up the telesecretary's leg (BYE).
    HangUpAgent {
        /// Agent user name.
        agent: String,
    },
    /// Relay RTP between the caller and the other leg.
    Bridge,
    /// Stop relaying (the caller gets a playlist next).
    Unbridge,
    /// Record what the caller says (voicemail) for at most this long.
    StartRecording(Duration),
    /// Stop and keep the recording.
    StopRecording,
    /// Record a callback request with the caller's number.
    SaveCallback,
    /// Call the number of this triage option and connect the caller.
    Transfer {
        /// The triage digit whose `route_to` to call.
        digit: char,
    },
    /// Cancel or hang up the direct-route leg.
    HangUpTransfer,
    /// Release everything; the call is over. Emitted exactly once.
    Finished(EndReason),
}

/// Where the call is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Created; nothing sent yet.
    New,
    /// Greeting playing.
    Greeting,
    /// Triage menu playing (`deadline` set once it has been played).
    Triage {
        /// When the default option is taken.
        deadline: Option<DateTime<Utc>>,
    },
    /// Waiting in the dispatcher's queue.
    Queued {
        /// The telesecretary being rung, if any.
        ringing: Option<String>,
    },
    /// Talking with a telesecretary.
    Bridged {
        /// Agent user name.
        agent: String,
        /// Whether the telesecretary put the caller on hold.
        held: bool,
    },
    /// Ringing the direct-route number of triage option `digit`.
    Transferring {
        /// The triage digit.
        digit: char,
    },
    /// Connected to the direct-route number.
    Transferred,
    /// Playing an overflow prompt.
    Overflowing(OverflowKind),
    /// Recording a voicemail message.
    Recording {
        /// When the recording is cut.
        until: DateTime<Utc>,
    },
    /// Closed prompt playing; the call ends when it finishes.
    ClosedMessage,
    /// Over.
    Ended(EndReason),
}

/// One caller's call.
#[derive(Debug)]
pub struct Call {
    settings: CallSettings,
    phase: Phase,
    started: Option<DateTime<Utc>>,
    /// The dispatcher holds the call (queued, ringing or talking).
    in_dispatcher: bool,
    triage_choice: Option<char>,
    next_announce: Option<DateTime<Utc>>,
    awaiting_position: bool,
    actions: VecDeque<Action>,
}

impl Call {
    /// A new call.
    pub fn new(settings: CallSettings) -> Self {
        Self {
            settings,
            phase: Phase::New,
            started: None,
            in_dispatcher: false,
            triage_choice: None,
            next_announce: None,
            awaiting_position: false,
            actions: VecDeque::new(),
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

    /// Whether the dispatcher still holds this call (queued, ringing or
    /// talking) and must be told how it ends.
    pub fn holds_dispatcher_call(&self) -> bool {
        self.in_dispatcher
    }

    /// Whether the call is over.
    pub fn is_ended(&self) -> bool {
        matches!(self.phase, Phase::Ended(_))
    }

    fn push(&mut self, a: Action) {
        self.actions.push_back(a);
    }

    fn finish(&mut self, reason: EndReason) {
        self.phase = Phase::Ended(reason);
        self.next_announce = None;
        self.push(Action::Finished(reason));
    }

    fn hold_loop(&mut self) {
        self.push(Action::Play(Playlist::looped(Prompt::Hold)));
    }

    fn enqueue(&mut self, now: DateTime<Utc>) {
        self.phase = Phase::Queued { ringing: None };
        self.in_dispatcher = true;
        self.push(Action::Enqueue {
            triage: self.triage_choice,
        });
        self.hold_loop();
        self.next_announce = self.settings.announce_every.map(|e| now + e);
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
            Phase::Greeting | Phase::Triage { .. } => EndReason::CallerHangupBeforeQueue,
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
                self.push(Action::Unbridge);
                self.push(Action::HangUpAgent { agent });
                if self.in_dispatcher {
                    self.push(Action::ReportEnded);
                    self.in_dispatcher = false;
                }
                EndReason::CallerHangup
            }
            Phase::Transferring { .. } | Phase::Transferred => {
                self.push(Action::HangUpTransfer);
                EndReason::Transferred
            }
            Phase::Overflowing(OverflowKind::Voicemail) => EndReason::Voicemail,
            Phase::Overflowing(OverflowKind::Callback) => EndReason::Callback,
            Phase::Overflowing(OverflowKind::Hangup) => EndReason::OverflowHangup,
            Phase::Recording { .. } => {
                self.push(Action::StopRecording);
                EndReason::Voicemail
            }
            Phase::ClosedMessage => EndReason::Closed,
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
                self.hold_loop();
                self.push(Action::Transfer { digit: d });
            }
            None => self.enqueue(now),
        }
    }

    fn after_greeting(&mut self, now: DateTime<Utc>) {
        match &self.settings.triage {
            Some(_) => {
                self.phase = Phase::Triage { deadline: None };
                self.push(Action::Play(Playlist::once(Prompt::Triage)));
            }
            None => self.enqueue(now),
        }
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
        self.next_announce = None;
        self.push(Action::Play(Playlist::once(prompt)));
    }

    /// Feeds one input.
    pub fn handle(&mut self, input: Input, now: DateTime<Utc>) {
        if self.is_ended() {
            return;
        }
        match input {
            Input::Start { open } => {
                if self.phase != Phase::New {
                    return;
                }
                self.started = Some(now);
                self.push(Action::Answer);
                if open {
                    self.phase = Phase::Greeting;
                    self.push(Action::Play(Playlist::once(Prompt::Greeting)));
                } else {
                    self.phase = Phase::ClosedMessage;
                    self.push(Action::Play(Playlist::once(Prompt::Closed)));
                }
            }
            Input::CallerCancel | Input::CallerBye => self.caller_gone(None, false),
            Input::MediaTimeout => self.caller_gone(Some(EndReason::MediaTimeout), true),
            Input::DriverFailure => self.caller_gone(Some(EndReason::Failure), true),
            Input::PlaybackFinished => match self.phase.clone() {
                Phase::Greeting => self.after_greeting(now),
                Phase::Triage { deadline: None } => {
                    let timeout = self
                        .settings
                        .triage
                        .as_ref()
                        .map(|m| m.timeout)
                        .unwrap_or_else(Duration::zero);
                    self.phase = Phase::Triage {
                        deadline: Some(now + timeout),
                    };
                }
                Phase::ClosedMessage => {
                    self.push(Action::HangUp);
                    self.finish(EndReason::Closed);
                }
                Phase::Overflowing(OverflowKind::Voicemail) => {
                    let until = now + self.settings.voicemail_max;
                    self.phase = Phase::Recording { until };
                    self.push(Action::StartRecording(self.settings.voicemail_max));
                }
                Phase::Overflowing(kind) => {
                    self.push(Action::HangUp);
                    self.finish(match kind {
                        OverflowKind::Callback => EndReason::Callback,
                        _ => EndReason::OverflowHangup,
                    });
                }
                _ => {}
            },
            Input::Dtmf(d) => {
                let menu_has = self
                    .settings
                    .triage
                    .as_ref()
                    .is_some_and(|m| m.option(d).is_some());
                match self.phase {
                    Phase::Greeting | Phase::Triage { .. } if menu_has => {
                        self.triage_decided(Some(d), now)
                    }
                    // A wrong key during the menu: play it again.
                    Phase::Triage { .. } => {
                        self.phase = Phase::Triage { deadline: None };
                        self.push(Action::Play(Playlist::once(Prompt::Triage)));
                    }
                    _ => {}
                }
            }
            Input::Closed => {
                // Only a queued call can be refused by the dispatcher.
                if let Phase::Queued { ringing } = self.phase.clone() {
                    self.in_dispatcher = false;
                    if let Some(agent) = ringing {
                        self.push(Action::CancelAgent { agent });
                    }
                    self.next_announce = None;
                    self.phase = Phase::ClosedMessage;
                    self.push(Action::Play(Playlist::once(Prompt::Closed)));
                }
            }
            Input::Offer { agent } => {
                if let Phase::Queued { ringing } = self.phase.clone() {
                    if let Some(old) = ringing {
                        if old == agent {
                            return;
                        }
                        self.push(Action::CancelAgent { agent: old });
                    }
                    self.phase = Phase::Queued {
                        ringing: Some(agent.clone()),
                    };
                    self.push(Action::InviteAgent { agent });
                }
            }
            Input::OfferCancelled { agent } => {
                if let Phase::Queued { ringing: Some(r) } = &self.phase {
                    if *r == agent {
                        self.phase = Phase::Queued { ringing: None };
                        self.push(Action::CancelAgent { agent });
                    }
                }
            }
            Input::AgentRinging { .. } => {}
            Input::AgentAnswered { agent } => match &self.phase {
                Phase::Queued { ringing: Some(r) } if *r == agent => {
                    self.phase = Phase::Bridged {
                        agent: agent.clone(),
                        held: false,
                    };
                    self.next_announce = None;
                    self.awaiting_position = false;
                    self.push(Action::ReportAnswered {
                        agent: agent.clone(),
                    });
                    self.push(Action::Bridge);
                }
                // Answered after the offer was withdrawn: release that leg.
                _ => self.push(Action::HangUpAgent { agent }),
            },
            Input::AnswerRefused { agent } => {
                if let Phase::Bridged { agent: a, .. } = &self.phase {
                    if *a == agent {
                        self.push(Action::Unbridge);
                        self.push(Action::HangUpAgent { agent });
                        self.phase = Phase::Queued { ringing: None };
                        self.hold_loop();
                    }
                }
            }
            Input::AgentFailed { agent, reason } => {
                if let Phase::Queued { ringing: Some(r) } = &self.phase {
                    if *r == agent {
                        self.phase = Phase::Queued { ringing: None };
                        self.push(Action::ReportOfferFailed { agent, reason });
                    }
                }
            }
            Input::AgentBye => {
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
            Input::AgentHold => {
                if let Phase::Bridged { agent, held: false } = self.phase.clone() {
                    self.phase = Phase::Bridged { agent, held: true };
                    self.push(Action::Unbridge);
                    self.hold_loop();
                }
            }
            Input::AgentUnhold => {
                if let Phase::Bridged { agent, held: true } = self.phase.clone() {
                    self.phase = Phase::Bridged { agent, held: false };
                    self.push(Action::Bridge);
                }
            }
            Input::Overflow(kind) => {
                if let Phase::Queued { ringing } = self.phase.clone() {
                    self.in_dispatcher = false;
                    if let Some(agent) = ringing {
                        self.push(Action::CancelAgent { agent });
                    }
                    self.overflow(kind);
                }
            }
            Input::Position { position, wait } => {
                if !self.awaiting_position {
                    return;
                }
                self.awaiting_position = false;
                if let Phase::Queued { ringing: None } = self.phase {
                    let wait_secs = wait.map(|w| u32::try_from(w.num_seconds()).unwrap_or(0));
                    self.push(Action::Play(Playlist {
                        items: vec![
                            Prompt::Announcement {
                                position,
                                wait_secs,
                            },
                            Prompt::Hold,
                        ],
                        loop_last: true,
                    }));
                }
            }
            Input::TransferAnswered => {
                if let Phase::Transferring { .. } = self.phase {
                    self.phase = Phase::Transferred;
                    self.push(Action::Bridge);
                }
            }
            Input::TransferFailed => {
                if let Phase::Transferring { .. } = self.phase {
                    // The number did not answer: queue the call, keeping
                    // its triage choice (urgent priority).
                    self.enqueue(now);
                }
            }
            Input::TransferBye => {
                if let Phase::Transferred = self.phase {
                    self.push(Action::Unbridge);
                    self.push(Action::HangUp);
                    self.finish(EndReason::Transferred);
                }
            }
        }
    }

    /// When [`Call::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<DateTime<Utc>> {
        if self.is_ended() {
            return None;
        }
        let max = self.started.map(|s| s + self.settings.max_duration);
        let phase = match &self.phase {
            Phase::Triage { deadline } => *deadline,
            Phase::Recording { until } => Some(*until),
            _ => None,
        };
        let announce = match (&self.phase, self.awaiting_position) {
            (Phase::Queued { ringing: None }, false) => self.next_announce,
            _ => None,
        };
        [max, phase, announce].into_iter().flatten().min()
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
            Phase::Queued { ringing: None } if !self.awaiting_position => {
                if let (Some(at), Some(every)) = (self.next_announce, self.settings.announce_every)
                {
                    if now >= at {
                        self.awaiting_position = true;
                        self.next_announce = Some(now + every);
                        self.push(Action::RequestPosition);
                    }
                }
            }
            _ => {}
        }
    }

    /// Next action to carry out.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }
}

#[cfg(test)]
mod tests;
