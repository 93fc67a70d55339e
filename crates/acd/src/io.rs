//! What goes into the dispatcher ([`Input`]) and what comes out ([`Output`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::OverflowTarget;
use crate::ids::{AgentId, CallId, PauseReason, PoolId, PracticeId};

/// A skill a call requires (`cardiologie` at level 3 or more).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SkillRequirement {
    /// Skill name.
    pub skill: String,
    /// Minimum level (1..=5; 0 is treated as 1).
    #[serde(default)]
    pub min_level: u8,
}

/// A new call entering the ACD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallArrival {
    /// Driver-assigned id, unique among live calls.
    pub call: CallId,
    /// The practice whose line was dialled.
    pub practice: PracticeId,
    /// Priority; `None`: the practice's base priority. Urgent triage raises it.
    #[serde(default)]
    pub priority: Option<i32>,
    /// Language the caller wants, if any (`"en"`).
    #[serde(default)]
    pub language: Option<String>,
    /// Skills the call requires (besides the routing steps' criteria).
    #[serde(default)]
    pub skills: Vec<SkillRequirement>,
    /// When the caller originally joined the queue (engine time, like the
    /// `now` passed to the dispatcher); `None`: now.
    ///
    /// Set when a call re-enters the queue keeping its place: a callback
    /// request re-queued after an engine restart or after a failed try. The
    /// call then counts as having joined at that time for
    ///
    /// * its place in the queue: before the calls of the same priority that
    ///   joined later, whatever the arrival order (a higher priority still
    ///   goes first);
    /// * routing-step relaxation: a step opening after `N` seconds applies
    ///   from `joined_at + N`, at once if that is already past;
    /// * the waits reported (`Answered`, `Abandoned`, `Retargeted`,
    ///   `Overflowed`, the snapshots' `wait` and `oldest_wait`) and the
    ///   estimated wait, which are all measured from the join time.
    ///
    /// The maximum wait (overflow or retarget to a pool) is *not* backdated:
    /// it runs from the actual arrival, so a re-arrival never overflows at
    /// once (a reported overflow wait may therefore exceed the practice's
    /// maximum wait). A join time in the future is taken as now.
    #[serde(default)]
    pub joined_at: Option<DateTime<Utc>>,
    /// A callback request (no caller on the line): it never overflows out
    /// of the queue at its maximum wait (a retarget to the practice's
    /// overflow pool still applies); it waits for an agent.
    #[serde(default)]
    pub callback: bool,
    /// Placed at the head of the practice's queue: ahead of every call
    /// waiting in it, whatever their priority and join time (several head
    /// calls: first come, first served, by arrival at the dispatcher).
    ///
    /// Set when a call comes back to the dispatcher after an agent let it
    /// go: a blind transfer to a number that failed. The place is a band
    /// above every priority, so in a group shared with other practices (a
    /// shared pool) the call also goes before their calls, as a higher
    /// priority would. `joined_at` keeps its meaning for the routing steps
    /// and the waits reported; a later [`Input::SetPriority`] changes the
    /// priority reported but not the place.
    #[serde(default)]
    pub head: bool,
    /// Only this agent, or only the members of this pool, may be offered
    /// the call (a blind transfer by an agent to a colleague or a pool).
    ///
    /// * Their usual eligibility still applies: logged in, reachable, not
    ///   paused, in shift, not ringing or on another call, not on an
    ///   outbound call, not backing off.
    /// * The target replaces the practice's routing steps and the call's
    ///   requirements (`language`, `skills`): the transferring agent chose
    ///   whom to send it to, and no routing step ever widens it to other
    ///   agents.
    /// * The practice's maximum wait and overflow still apply, from the
    ///   arrival: a caller waiting for an absent colleague overflows out,
    ///   or is retargeted to the practice's overflow pool, whose agents
    ///   (with the call's requirements) may then take it too. A callback
    ///   request (`callback`) still never overflows out.
    /// * An agent or pool the configuration does not know (or an agent
    ///   a reconfiguration removed, finishing a call) is refused:
    ///   [`AcdError::UnknownAgent`](crate::AcdError::UnknownAgent) or
    ///   [`AcdError::UnknownPool`](crate::AcdError::UnknownPool), nothing
    ///   queued; the driver then queues the call untargeted.
    /// * A reconfiguration that removes the target (or retires the agent)
    ///   drops it: the call stays queued in its place as an ordinary call
    ///   of its practice (routing steps from its join time, requirements
    ///   back in force); `head` is kept. An offer ringing an agent the
    ///   target no longer allows (a pool member removed from the pool) is
    ///   withdrawn (`Reconfigured`) and the call re-dispatched.
    #[serde(default)]
    pub target: Option<ArrivalTarget>,
}

/// Who may take a call transferred by an agent ([`CallArrival::target`]).
///
/// Serde form: `{ "agent": "id" }` or `{ "pool": "id" }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArrivalTarget {
    /// This agent only.
    Agent(AgentId),
    /// The members of this pool only.
    Pool(PoolId),
}

impl CallArrival {
    /// A call with the practice's base priority and no extra requirement.
    pub fn new(call: CallId, practice: impl Into<PracticeId>) -> Self {
        Self {
            call,
            practice: practice.into(),
            priority: None,
            language: None,
            skills: Vec::new(),
            joined_at: None,
            callback: false,
            head: false,
            target: None,
        }
    }
}

pub use permanence_types::OfferFailure;

/// An event reported by the driver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Input {
    /// A call enters the ACD, or re-enters it keeping its place (see
    /// [`CallArrival::joined_at`]).
    CallArrived(CallArrival),
    /// The caller hung up while queued or ringing.
    CallAbandoned {
        /// The call.
        call: CallId,
    },
    /// The agent answered the offer (200 OK).
    OfferAnswered {
        /// The call.
        call: CallId,
        /// The agent it was offered to.
        agent: AgentId,
    },
    /// The offer failed at once (486/603/480).
    OfferFailed {
        /// The call.
        call: CallId,
        /// The agent it was offered to.
        agent: AgentId,
        /// Why.
        reason: OfferFailure,
    },
    /// An answered call ended (either side hung up or it was transferred
    /// away): the agent goes to wrap-up.
    CallEnded {
        /// The call.
        call: CallId,
    },
    /// The caller of a queued call asked to be called back: the call keeps
    /// its place as a callback request, and from now on never overflows
    /// out of the queue at its maximum wait (see [`CallArrival::callback`]).
    CallbackRequested {
        /// The call.
        call: CallId,
    },
    /// An answered call ended with no after-call work (a callback try the
    /// patient did not answer): the agent is free at once, as at the end of
    /// a wrap-up (available, or their deferred pause or logout applies).
    /// Otherwise as [`Input::CallEnded`]: the call must be connected, and
    /// `CallCompleted` reports it; its time does not feed the practice's
    /// average handle time (it was no conversation).
    CallReleased {
        /// The call.
        call: CallId,
    },
    /// Change the priority of a queued or ringing call (keeps its join time).
    SetPriority {
        /// The call.
        call: CallId,
        /// New priority.
        priority: i32,
    },
    /// The agent logs in (becomes available).
    AgentLogin {
        /// The agent.
        agent: AgentId,
    },
    /// The agent logs out (after their current call, if any).
    AgentLogout {
        /// The agent.
        agent: AgentId,
    },
    /// The agent pauses (after their current call, if any).
    AgentPause {
        /// The agent.
        agent: AgentId,
        /// Free text (`lunch`, `training`, ...).
        reason: String,
    },
    /// The agent ends a pause.
    AgentUnpause {
        /// The agent.
        agent: AgentId,
    },
    /// The agent's softphone registered/unregistered or stopped/resumed
    /// answering OPTIONS.
    AgentReachability {
        /// The agent.
        agent: AgentId,
        /// Whether it can be reached.
        reachable: bool,
    },
    /// The agent started an outbound call from their softphone (a call or a
    /// callback they place). While any outbound call of theirs is in
    /// progress the agent gets no offer (an offer ringing them is
    /// withdrawn); their state does not change. An agent may have several
    /// at once (one on hold while consulting): each start is matched by an
    /// [`Input::AgentOutboundEnded`].
    AgentOutboundStarted {
        /// The agent.
        agent: AgentId,
    },
    /// One of the agent's outbound calls ended. When none is left, an
    /// available agent takes a waiting call at once. An end without a
    /// matching start is ignored (the count stays at 0).
    AgentOutboundEnded {
        /// The agent.
        agent: AgentId,
    },
}

/// An agent's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentState {
    /// Not working.
    LoggedOut,
    /// Waiting for a call (it gets offers only when also in shift,
    /// reachable, not in a back-off and not on an outbound call).
    Available,
    /// A call is ringing on the agent's phone.
    Offered,
    /// On a call.
    OnCall,
    /// After-call work (timed).
    WrapUp,
    /// Paused, with a reason.
    Paused,
}

/// Why an agent's state changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeReason {
    /// Login request.
    Login,
    /// Logout request (or the deferred logout after a call).
    Logout,
    /// Pause request, with its reason.
    Pause(PauseReason),
    /// Automatic pause after consecutive ring-no-answers.
    NoAnswer,
    /// Unpause request.
    Unpause,
    /// A call was offered.
    Offer,
    /// The offer was answered.
    Answer,
    /// The offer ended without an answer (timeout, failure, caller hang-up,
    /// withdrawal).
    OfferEnded,
    /// The call ended.
    CallEnded,
    /// The wrap-up time elapsed.
    WrapUpEnded,
    /// The agent was removed by a reconfiguration.
    Removed,
}

/// Why the dispatcher withdraws an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CancelReason {
    /// The ring timeout elapsed (ring-no-answer).
    RingTimeout,
    /// The caller hung up.
    CallerHangup,
    /// The agent logged out.
    AgentLoggedOut,
    /// The agent paused.
    AgentPaused,
    /// The agent's phone became unreachable.
    AgentUnreachable,
    /// The agent started an outbound call.
    AgentOutbound,
    /// A reconfiguration removed the agent or the practice.
    Reconfigured,
    /// The call reached its maximum wait and leaves the queue.
    Overflow,
}

/// Where the caller was when they hung up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AbandonPhase {
    /// Waiting in the queue.
    Queue,
    /// While an agent's phone was ringing.
    Ringing,
}

/// Why a call overflowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OverflowReason {
    /// The practice's maximum wait was reached.
    MaxWait,
    /// The practice was removed by a reconfiguration.
    PracticeRemoved,
}

/// Something the driver must carry out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Ring the agent's phone with the call. The dispatcher times the
    /// offer out by itself after `ring_timeout` (then emits `CancelOffer`).
    Offer {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
        /// How long the dispatcher lets it ring.
        ring_timeout: Duration,
    },
    /// Stop ringing the agent (CANCEL); the call stays with the dispatcher
    /// unless another output says otherwise.
    CancelOffer {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
        /// Why.
        reason: CancelReason,
    },
    /// Take the call out of the ACD to this target (voicemail, callback,
    /// hang-up message). Never a pool: pool overflow stays inside the ACD.
    Overflow {
        /// The call.
        call: CallId,
        /// Where it goes.
        target: OverflowTarget,
    },
    /// The practice is closed: play the closed prompt (the call was not
    /// queued).
    Closed {
        /// The call.
        call: CallId,
        /// Its practice.
        practice: PracticeId,
    },
}

/// A decision or state change, for metrics and the call log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A call joined its practice's queue.
    CallQueued {
        /// The call.
        call: CallId,
        /// Its practice.
        practice: PracticeId,
        /// Its priority.
        priority: i32,
        /// Back in the queue with the time it first joined
        /// ([`CallArrival::joined_at`]: a callback request queued again, a
        /// call transferred back by an agent): counted when it first
        /// joined, not a new call.
        #[serde(default)]
        rejoined: bool,
    },
    /// A queued call's caller asked to be called back
    /// ([`Input::CallbackRequested`]): the call stays queued as a callback
    /// request, which the callbacks' own figures follow from now on.
    CallbackKept {
        /// The call.
        call: CallId,
    },
    /// A call arrived while its practice was closed (terminal).
    Closed {
        /// The call.
        call: CallId,
        /// Its practice.
        practice: PracticeId,
    },
    /// A call was offered to an agent.
    Offered {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
    },
    /// The agent answered (terminal for the queue; the call then ends with
    /// `CallCompleted`).
    Answered {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
        /// Time from joining the queue to the answer.
        wait: Duration,
    },
    /// An answered call ended.
    CallCompleted {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
        /// Talk time (answer to end).
        talk: Duration,
    },
    /// The caller hung up before an answer (terminal).
    Abandoned {
        /// The call.
        call: CallId,
        /// Queued or ringing.
        phase: AbandonPhase,
        /// Time since joining the queue.
        wait: Duration,
        /// 1-based position in the practice queue (ringing calls included).
        position: u32,
    },
    /// Ring-no-answer: the offer timed out; the call is re-dispatched.
    Rona {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
        /// The agent's consecutive no-answer count after this one.
        strikes: u32,
    },
    /// The offer failed at once; the agent backs off, the call is
    /// re-dispatched.
    OfferFailed {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
        /// Why.
        reason: OfferFailure,
    },
    /// The dispatcher withdrew an offer for a reason other than a ring
    /// timeout or a caller hang-up (the agent logged out, paused, became
    /// unreachable, started an outbound call or was removed); the call is
    /// re-dispatched.
    OfferWithdrawn {
        /// The call.
        call: CallId,
        /// The agent.
        agent: AgentId,
        /// Why.
        reason: CancelReason,
    },
    /// The call reached its maximum wait and became eligible for a pool's
    /// agents (it keeps its place; not terminal).
    Retargeted {
        /// The call.
        call: CallId,
        /// The pool.
        pool: PoolId,
        /// Time since joining the queue.
        wait: Duration,
    },
    /// The call left the queue to an overflow target (terminal).
    Overflowed {
        /// The call.
        call: CallId,
        /// Where it went.
        target: OverflowTarget,
        /// Time since joining the queue.
        wait: Duration,
        /// Why.
        reason: OverflowReason,
    },
    /// An agent's state changed.
    AgentStateChanged {
        /// The agent.
        agent: AgentId,
        /// Previous state.
        from: AgentState,
        /// New state.
        to: AgentState,
        /// Why.
        reason: ChangeReason,
    },
    /// An agent left the configuration (at the reconfiguration, or when it
    /// finished the call it was on then). Re-adding the id later starts a
    /// new agent.
    AgentRemoved {
        /// The agent.
        agent: AgentId,
    },
    /// An agent's shift started or ended.
    ShiftChanged {
        /// The agent.
        agent: AgentId,
        /// Whether the agent is now inside a shift window.
        in_shift: bool,
    },
    /// An agent's phone became reachable or unreachable.
    ReachabilityChanged {
        /// The agent.
        agent: AgentId,
        /// Whether it can be reached.
        reachable: bool,
    },
}

/// One output: an action for the driver or an event for metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Output {
    /// To be carried out by the driver.
    Action(Action),
    /// To be recorded by metrics and the call log.
    Event(Event),
}
