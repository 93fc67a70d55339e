//! What goes into a call ([`Input`]) and what comes out ([`Output`]): the
//! actions a driver carries out and the events observers (call records,
//! the live-call view, logs) follow.

use std::time::Duration;

use chrono::{DateTime, Utc};
use permanence_outbound::AllowList;
use permanence_types::{
    AbandonPhase, AgentId, AnnouncementMode, Language, OfferFailure, OverflowKind,
};

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
    /// "Pour être rappelé sans perdre votre place, tapez 2" (the digit of
    /// [`CallbackSettings::digit`]), played with the hold audio.
    CallbackOffer,
    /// "Nous vous rappellerons au", before the number is spoken back.
    CallbackConfirmPrefix,
    /// One character of a number spoken back: `'0'..='9'` or `'+'`.
    Digit(char),
    /// "Pour confirmer, tapez 1. Pour indiquer un autre numéro, tapez 3."
    CallbackConfirmChoice,
    /// "Composez le numéro auquel vous souhaitez être rappelé, suivi de la
    /// touche dièse."
    CallbackEnterNumber,
    /// The number typed cannot be called back.
    CallbackInvalidNumber,
    /// "Votre demande de rappel est enregistrée. Vous gardez votre place
    /// dans la file d'attente... Au revoir."
    CallbackKeptPlace,
    /// "Votre correspondant n'est pas joignable. Vous êtes replacé en tête
    /// de file...": the number a telesecretary transferred the caller to
    /// did not answer; the caller waits again, first in the queue.
    TransferFailed,
    /// "For English, press 9" (the digit of [`CallSettings::english`]),
    /// after the greeting of a practice that offers English.
    EnglishOffer,
    /// The practice's dated announcement of the day: the `n`th of its
    /// `[[announcements]]` ([`Announcement::index`]).
    Dated(u16),
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
    pub(crate) fn option(&self, digit: char) -> Option<&TriageChoice> {
        self.options.iter().find(|o| o.digit == digit)
    }
}

/// The callback offered while waiting (virtual hold): the caller presses
/// [`CallbackSettings::digit`], confirms or types the number to call back,
/// and the call becomes a callback request that keeps its place in the
/// dispatcher's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackSettings {
    /// The digit that asks for a callback while queued.
    pub digit: char,
    /// Time in the queue before the offer is first played (zero: with the
    /// first hold audio).
    pub offer_after: Duration,
    /// The caller's number as presented, already normalised to E.164 by
    /// the driver; `None` when withheld, anonymous or not a number.
    pub presented: Option<String>,
    /// The numbers a callback may go to (the practice's list). Emergency
    /// numbers and short codes are refused whatever it says.
    pub accept: AllowList,
}

/// Where a telesecretary blind-transfers the caller (RFC 3515 REFER from
/// their softphone), as the driver resolved it from the practice's
/// transfer list: the call core trusts it (the list is validated when the
/// configuration is loaded, numbers against the practice's outbound
/// allow-list).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TransferTo {
    /// A telephone number, E.164 (`+33611223344`), dialled through the
    /// outbound trunk.
    Number(String),
    /// A telesecretary: the call goes back to the dispatcher, at the head
    /// of the queue, offered to them.
    Agent(AgentId),
    /// A pool of telesecretaries: the call goes back to the dispatcher, at
    /// the head of the queue, offered to the pool's members.
    Pool(String),
}

impl TransferTo {
    /// The kind of target, for events, logs and records: `"number"`,
    /// `"agent"` or `"pool"`.
    pub fn kind(&self) -> &'static str {
        match self {
            TransferTo::Number(_) => "number",
            TransferTo::Agent(_) => "agent",
            TransferTo::Pool(_) => "pool",
        }
    }
}

/// Who the dispatcher must offer a call to, when a blind transfer sent it
/// back to the queue for a telesecretary or a pool (the `target` of
/// [`Action::Enqueue`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum QueueTarget {
    /// Only this telesecretary.
    Agent(AgentId),
    /// Only the members of this pool (its id).
    Pool(String),
}

/// The practice's dated announcement active on the day of the call (the
/// driver resolved it from the wall clock in the practice's time zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announcement {
    /// Which one, for the driver's audio ([`Prompt::Dated`]).
    pub index: u16,
    /// After the greeting then on as usual, or instead of the queue.
    pub mode: AnnouncementMode,
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
    /// The callback offered while queued (`None`: not offered).
    pub callback: Option<CallbackSettings>,
    /// The digit that switches the caller to English (9), when the
    /// practice's languages include English: offered after the greeting,
    /// taken during the greeting and the triage menu. `None`: French only.
    pub english: Option<char>,
    /// The dated announcement of the day, if any.
    pub announcement: Option<Announcement>,
    /// When closed, record a voicemail message after the closed prompt
    /// (`[hours] when_closed = "voicemail"`) instead of hanging up.
    pub closed_voicemail: bool,
}

impl Default for CallSettings {
    fn default() -> Self {
        Self {
            max_duration: Duration::from_secs(4 * 3600),
            triage: None,
            announce_every: None,
            voicemail_max: Duration::from_secs(120),
            callback: None,
            english: None,
            announcement: None,
            closed_voicemail: false,
        }
    }
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// The caller cancelled before the answer.
    CallerCancel,
    /// The caller hung up during the practice's greeting.
    AbandonedGreeting,
    /// The caller hung up in the triage menu (played, or waiting for a
    /// digit).
    AbandonedTriage,
    /// The caller hung up while the number of a direct-route triage option
    /// was ringing (nobody had answered yet).
    AbandonedRoute,
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
    /// Connected to a number, and ended there: sent straight to it by
    /// triage (direct route), or blind-transferred to it by the
    /// telesecretary who answered.
    Transferred,
    /// No RTP from the caller for too long.
    MediaTimeout,
    /// The call hit its maximum duration.
    MaxDuration,
    /// The driver failed to carry out an action.
    Failure,
    /// The caller hung up in the callback menu (confirming or typing the
    /// number), before asking for the callback: an abandon.
    AbandonedCallbackPrompt,
    /// The caller asked to be called back: the request keeps the call's
    /// place in the queue, the engine hung up after the confirmation.
    CallbackRequested,
    /// A telesecretary answered and blind-transferred the caller to a
    /// number; the caller hung up while that number was ringing (hold
    /// audio playing). The call was answered (by the telesecretary), see
    /// [`EndReason::was_answered`].
    AbandonedTransfer,
}

impl EndReason {
    /// Short name for logs and records.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::CallerCancel => "caller-cancel",
            EndReason::AbandonedGreeting => "abandoned-greeting",
            EndReason::AbandonedTriage => "abandoned-triage",
            EndReason::AbandonedRoute => "abandoned-route",
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
            EndReason::AbandonedCallbackPrompt => "abandoned-callback-prompt",
            EndReason::CallbackRequested => "callback-requested",
            EndReason::AbandonedTransfer => "abandoned-transfer",
        }
    }

    /// Whether a telesecretary (or the direct-route number) talked with
    /// the caller. A caller who hung up while a blind transfer rang
    /// ([`EndReason::AbandonedTransfer`]) was answered: the telesecretary
    /// talked with them before transferring (the abandon is of the
    /// transfer, not of the queue).
    pub fn was_answered(self) -> bool {
        matches!(
            self,
            EndReason::CallerHangup
                | EndReason::AgentHangup
                | EndReason::Transferred
                | EndReason::AbandonedTransfer
        )
    }

    /// Where the caller was, for a caller who hung up before anyone
    /// answered (the abandons of the figures); `None` for every other end.
    /// The call core decides the call's [`permanence_types::Disposition`]
    /// with it ([`crate::Call::disposition`]).
    pub fn abandon_phase(self) -> Option<AbandonPhase> {
        match self {
            EndReason::AbandonedGreeting => Some(AbandonPhase::Greeting),
            EndReason::AbandonedTriage => Some(AbandonPhase::Triage),
            EndReason::AbandonedRoute => Some(AbandonPhase::Route),
            EndReason::AbandonedInQueue => Some(AbandonPhase::Queue),
            EndReason::AbandonedRinging => Some(AbandonPhase::Ringing),
            EndReason::AbandonedCallbackPrompt => Some(AbandonPhase::CallbackPrompt),
            _ => None,
        }
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
        agent: AgentId,
    },
    /// The dispatcher withdrew its offer (ring timeout, agent paused...).
    OfferCancelled {
        /// Agent user name.
        agent: AgentId,
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
        agent: AgentId,
    },
    /// The telesecretary answered (200 OK to our INVITE).
    AgentAnswered {
        /// Agent user name.
        agent: AgentId,
    },
    /// The telesecretary's INVITE failed.
    AgentFailed {
        /// Agent user name.
        agent: AgentId,
        /// Why.
        reason: OfferFailure,
    },
    /// The dispatcher refused an answer it had already withdrawn.
    AnswerRefused {
        /// Agent user name.
        agent: AgentId,
    },
    /// The telesecretary hung up (or their leg vanished).
    AgentBye,
    /// The agent's softphone vanished mid-call without hanging up (a
    /// browser tab closed, its network lost: its WebRTC media is gone).
    AgentLost,
    /// The telesecretary put the caller on hold (re-INVITE sendonly).
    AgentHold,
    /// The telesecretary resumed the call.
    AgentUnhold,
    /// The telesecretary talking with the caller blind-transferred them
    /// (REFER). Only taken while bridged with a telesecretary, held or not
    /// (see [`crate::Call::can_transfer`]); ignored anywhere else.
    TransferRequested {
        /// Where to.
        to: TransferTo,
    },
    /// The telesecretary talking with the caller completed an attended
    /// transfer (REFER with Replaces): the driver holds the other party,
    /// already talking with them on a call of their own, and joins it to
    /// the caller ([`Action::JoinTransferred`]). Only taken while bridged
    /// with a telesecretary, like [`Input::TransferRequested`].
    AttendedTransfer,
    /// The number being dialled (direct route, or blind transfer to a
    /// number) answered.
    TransferAnswered,
    /// The number being dialled (direct route, or blind transfer to a
    /// number) did not answer or refused.
    TransferFailed,
    /// The party of the direct route or of the blind transfer hung up.
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
    ///
    /// After a blind transfer (the telesecretary's call with the caller was
    /// reported ended just before), the call comes back as a new
    /// dispatcher call: at the head of the queue (`head`), and, for a
    /// transfer to a telesecretary or a pool, offered only to them
    /// (`target`). One action, so the dispatcher learns the place and the
    /// target with the arrival, never after it.
    Enqueue {
        /// The triage option (its priority, skills, language apply).
        triage: Option<char>,
        /// Ahead of every waiting call of the practice (a caller whose
        /// transfer failed, or transferred to a colleague), instead of
        /// behind them. False for a call joining the queue normally.
        head: bool,
        /// Who to offer the call to; `None`: the practice's routing steps.
        target: Option<QueueTarget>,
        /// The caller's language: English needs an agent who speaks it.
        language: Language,
    },
    /// From now on, play the caller's prompts in this language (the
    /// practice's own recording for that language if it has one, else the
    /// built-in set): the caller chose it.
    SetLanguage(Language),
    /// Ask the dispatcher for the position and estimated wait.
    RequestPosition,
    /// Tell the dispatcher the caller hung up (abandon).
    ReportAbandoned,
    /// Tell the dispatcher the telesecretary answered.
    ReportAnswered {
        /// Agent user name.
        agent: AgentId,
    },
    /// Tell the dispatcher the offer failed.
    ReportOfferFailed {
        /// Agent user name.
        agent: AgentId,
        /// Why.
        reason: OfferFailure,
    },
    /// Tell the dispatcher the answered call ended (wrap-up starts).
    ReportEnded,
    /// Invite the telesecretary's registered contacts.
    InviteAgent {
        /// Agent user name.
        agent: AgentId,
    },
    /// Cancel the INVITE to the telesecretary.
    CancelAgent {
        /// Agent user name.
        agent: AgentId,
    },
    /// Hang up the telesecretary's leg (BYE).
    HangUpAgent {
        /// Agent user name.
        agent: AgentId,
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
    /// Cancel or hang up the leg of the direct route or of the blind
    /// transfer.
    HangUpTransfer,
    /// Call this number (E.164) through the outbound trunk for a blind
    /// transfer, and report with [`Input::TransferAnswered`],
    /// [`Input::TransferFailed`] (also when it cannot be placed) and
    /// [`Input::TransferBye`]. The caller hears hold audio meanwhile; the
    /// driver bounds the ringing (the outbound ring timeout).
    DialTransfer {
        /// The number, E.164.
        number: String,
    },
    /// Bridge the caller with the other party of an attended transfer (the
    /// driver holds it; it answered already). Its end comes as
    /// [`Input::TransferBye`].
    JoinTransferred,
    /// The caller asked to be called back on `number`: hand the
    /// dispatcher's call over to the callback machinery, keeping its place
    /// in the queue. The call core no longer reports on it (no abandon).
    RequestCallback {
        /// The number to call back, E.164.
        number: String,
    },
    /// Release everything; the call is over. Emitted exactly once.
    Finished(EndReason),
}

/// Something that happened to the call, for the call records, the live
/// view of calls in progress and the logs. Actions say what to do; events
/// say where the call is. A call emits [`Event::Ended`] exactly once, right
/// before [`Action::Finished`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The engine answered the caller (200 OK); the greeting plays if the
    /// practice is `open`, else the closed prompt.
    Answered {
        /// Whether the practice was open.
        open: bool,
    },
    /// The triage menu plays.
    TriageMenu,
    /// The caller chose to be served in this language.
    LanguageChosen(Language),
    /// The caller left the callback menu without a request (two invalid
    /// numbers, or silence) and waits in the queue again (the call never
    /// left it).
    BackInQueue,
    /// The caller joined the practice's queue.
    Queued {
        /// The triage option chosen (or defaulted), if any.
        triage: Option<char>,
    },
    /// The dispatcher refused the call (the practice is closed): the closed
    /// prompt plays, then the call ends.
    QueueClosed,
    /// A telesecretary's phone rings with the call.
    Offered {
        /// The agent.
        agent: AgentId,
    },
    /// The ringing offer ended without an answer; the caller is back to
    /// waiting.
    OfferEnded {
        /// The agent.
        agent: AgentId,
    },
    /// A telesecretary answered: caller and agent are talking.
    Connected {
        /// The agent.
        agent: AgentId,
    },
    /// The telesecretary's softphone vanished mid-call (see
    /// [`Input::AgentLost`]): the telesecretary is released and the caller
    /// goes back to the head of the queue, told why ([`Event::Queued`]
    /// follows).
    AgentLost,
    /// The telesecretary put the caller on hold.
    Held,
    /// The telesecretary took the caller back.
    Resumed,
    /// Triage sent the call straight to the number of this option.
    RouteDialled {
        /// The triage digit.
        digit: char,
    },
    /// The direct-route number answered.
    RouteConnected,
    /// The telesecretary blind-transferred the caller and left the call
    /// (their talk with the caller is over, for observers too): `kind` is
    /// `"number"` (the number is being dialled, hold audio meanwhile),
    /// `"agent"` or `"pool"` (the call goes back to the queue, at its head,
    /// for that telesecretary or pool: [`Event::Queued`] follows). See
    /// [`TransferTo::kind`].
    TransferDialled {
        /// `"number"`, `"agent"` or `"pool"`.
        kind: &'static str,
    },
    /// The number of a blind transfer answered: the caller talks with it.
    TransferConnected,
    /// The call left the queue to an overflow.
    Overflowed(OverflowKind),
    /// A voicemail message is being recorded.
    Recording,
    /// The caller pressed the callback digit while waiting: the callback
    /// menu plays (the number to confirm, or to type).
    CallbackMenu,
    /// The caller confirmed a callback: the call keeps its place in the
    /// queue as a callback request; the confirmation plays, then the
    /// engine hangs up.
    CallbackRequested,
    /// The call is over.
    Ended(EndReason),
}

/// One output of the call core, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// For the driver to carry out.
    Action(Action),
    /// For the observers.
    Event(Event),
}

impl Output {
    /// The action, if this is one.
    pub fn action(self) -> Option<Action> {
        match self {
            Output::Action(a) => Some(a),
            Output::Event(_) => None,
        }
    }

    /// The event, if this is one.
    pub fn event(self) -> Option<Event> {
        match self {
            Output::Event(e) => Some(e),
            Output::Action(_) => None,
        }
    }
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
        ringing: Option<AgentId>,
    },
    /// Callback menu, still queued: `number` is spoken back, waiting for
    /// 1 (confirm) or 3 (another number).
    CallbackConfirm {
        /// The number to call back, E.164.
        number: String,
        /// When silence counts as no answer (set once the playlist has
        /// been heard).
        deadline: Option<DateTime<Utc>>,
        /// Whether the number has already been spoken again after a first
        /// silence (a second silence goes back to the queue).
        replayed: bool,
    },
    /// Callback menu, still queued: the caller types the number to call
    /// back, ended by `#`.
    CallbackEnter {
        /// The digits typed so far.
        digits: String,
        /// Invalid numbers typed so far (the second one goes back to the
        /// queue).
        attempts: u8,
        /// When the entry times out (set once the prompt has been heard,
        /// and again at each digit).
        deadline: Option<DateTime<Utc>>,
    },
    /// The callback is requested: the kept-place confirmation plays, then
    /// the engine hangs up. The dispatcher's call belongs to the driver's
    /// callback now.
    CallbackRequested,
    /// Talking with a telesecretary.
    Bridged {
        /// Agent user name.
        agent: AgentId,
        /// Whether the telesecretary put the caller on hold.
        held: bool,
    },
    /// Ringing the direct-route number of triage option `digit`.
    Transferring {
        /// The triage digit.
        digit: char,
    },
    /// A telesecretary blind-transferred the caller to `number`, which is
    /// ringing (hold audio playing). The telesecretary has left; the
    /// dispatcher's call is over. A failure sends the caller back to the
    /// head of the queue.
    BlindTransfer {
        /// The number being dialled, E.164.
        number: String,
    },
    /// Connected to the direct-route number, or to the number of a blind
    /// transfer.
    Transferred,
    /// Playing an overflow prompt.
    Overflowing(OverflowKind),
    /// Recording a voicemail message.
    Recording {
        /// When the recording is cut.
        until: DateTime<Utc>,
    },
    /// Closed prompt playing (after the greeting and the dated
    /// announcement when the announcement replaces the queue); then the
    /// call ends, or records a voicemail message when the practice takes
    /// them when closed ([`CallSettings::closed_voicemail`]).
    ClosedMessage,
    /// Closed, voicemail prompt playing; the recording follows.
    ClosedVoicemail,
    /// Over.
    Ended(EndReason),
}
