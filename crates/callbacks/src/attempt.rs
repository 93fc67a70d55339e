//! One try of a callback request, as a pure state machine: the agent's leg
//! first, then the patient's leg through the carrier's gateway.
//!
//! An [`Attempt`] is created for one offer of the dispatcher and driven by
//! [`Attempt::handle`] with an [`Input`] and the current time, and by
//! [`Attempt::handle_timeout`] at [`Attempt::poll_timeout`]. It answers
//! through [`Attempt::poll_output`] with [`Action`]s for the driver and
//! [`Event`]s for observers, like the outbound call core.
//!
//! The path:
//! 1. **offering**: the agent's phone rings ([`Action::InviteAgent`]); the
//!    dispatcher times the ring out itself and withdraws the offer
//!    ([`Input::OfferCancelled`]); a failed or withdrawn offer ends as
//!    [`Outcome::OfferFailed`], which is not a try: the request keeps its
//!    place and its count of tries;
//! 2. **dialling**: the agent answered; the dispatcher is told
//!    ([`Action::ReportAnswered`]), the agent hears a ringback tone and the
//!    patient is dialled. The driver checks the number against the
//!    practice's allow-list before it dials and feeds [`Input::Refused`] if
//!    it may not. No answer within
//!    [`AttemptSettings::patient_ring_timeout`] cancels the patient's leg;
//! 3. **talking**: the patient answered and the legs are bridged, until
//!    either side hangs up, media stops, or the maximum duration.
//!
//! A try that does not reach the patient frees the agent at once
//! ([`Action::ReleaseAgent`]: no wrap-up); a conversation ends with
//! [`Action::ReportEnded`] (the agent goes to wrap-up).
//!
//! Every attempt that starts ends exactly once with an [`Outcome`] in
//! [`Action::Finished`], right after [`Event::Ended`]; nothing follows.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::Duration;

/// How long the patient's phone must have rung before an agent who hangs
/// up makes the try count as [`AttemptResult::NoAnswer`] (retried like any
/// unanswered call); an agent who gives up sooner makes it
/// [`AttemptResult::Failed`].
pub const PATIENT_RANG_ENOUGH: Duration = Duration::from_secs(20);

/// `now + d`, saturating at the end of time instead of panicking.
pub(crate) fn later(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(d)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Timers of one try. The agent's ring timeout is not here: the
/// dispatcher times the offer out and sends [`Input::OfferCancelled`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptSettings {
    /// How long the patient's phone may ring, counted from the moment the
    /// patient is dialled (the agent's answer). Default 45 s.
    pub patient_ring_timeout: Duration,
    /// Longest conversation, after which both legs are hung up. Default
    /// 4 hours.
    pub max_duration: Duration,
}

impl Default for AttemptSettings {
    fn default() -> Self {
        Self {
            patient_ring_timeout: Duration::from_secs(45),
            max_duration: Duration::from_secs(4 * 3600),
        }
    }
}

/// The result of one try to reach the patient, as the book records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptResult {
    /// The patient answered and talked to the agent: the request is done.
    Answered,
    /// The patient did not answer (408, 480, 487, the ring timeout, or an
    /// agent who gave up after [`PATIENT_RANG_ENOUGH`]): retried.
    NoAnswer,
    /// Busy or declined (486, 600, 603): retried.
    Busy,
    /// The gateway failed, or the try broke down: retried.
    Failed,
    /// The practice's allow-list forbids the number: never retried.
    Refused,
}

impl AttemptResult {
    /// Stable name for logs, metrics and records (also the serde form).
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptResult::Answered => "answered",
            AttemptResult::NoAnswer => "no_answer",
            AttemptResult::Busy => "busy",
            AttemptResult::Failed => "failed",
            AttemptResult::Refused => "refused",
        }
    }

    /// The result of the gateway's final failure status for the patient's
    /// leg (`None`: no response at all): 486/600/603 busy, 408/480/487 no
    /// answer, anything else failed.
    pub fn of_failure(status: Option<u16>) -> Self {
        match status {
            Some(486 | 600 | 603) => AttemptResult::Busy,
            Some(408 | 480 | 487) => AttemptResult::NoAnswer,
            _ => AttemptResult::Failed,
        }
    }
}

/// Why the agent's phone did not take the offer. The same three cases as
/// the dispatcher's `OfferFailure` (`permanence-types`), with the same
/// names, so the driver maps one to the other by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentFailure {
    /// 486 Busy Here / 600 Busy Everywhere.
    Busy,
    /// 603 Decline and other final refusals (403, 488, 606).
    Rejected,
    /// 480, 408, a transport failure, no registered contact, or a failure
    /// of the driver.
    Unreachable,
}

impl AgentFailure {
    /// Stable name (`busy`, `rejected`, `unreachable`), as the
    /// dispatcher's.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentFailure::Busy => "busy",
            AgentFailure::Rejected => "rejected",
            AgentFailure::Unreachable => "unreachable",
        }
    }

    /// The failure a final SIP status of the agent's leg means (non-2xx),
    /// with the dispatcher's mapping.
    pub fn from_status(code: u16) -> Self {
        match code {
            486 | 600 => AgentFailure::Busy,
            403 | 488 | 603 | 606 => AgentFailure::Rejected,
            _ => AgentFailure::Unreachable,
        }
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The agent never answered (failed, or the offer was withdrawn): not
    /// a try. The book gets `OfferEnded` (unless it withdrew the offer
    /// itself); the request keeps its place in the queue.
    OfferFailed,
    /// The agent answered and the patient was (to be) dialled: a try, with
    /// its result. The book gets `AttemptFinished` with it.
    Attempted(AttemptResult),
}

impl Outcome {
    /// Short name for logs, metrics and records: `offer_failed`, or the
    /// try's result.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::OfferFailed => "offer_failed",
            Outcome::Attempted(r) => r.as_str(),
        }
    }

    /// The try's result, `None` when the offer failed (no try).
    pub fn result(self) -> Option<AttemptResult> {
        match self {
            Outcome::OfferFailed => None,
            Outcome::Attempted(r) => Some(r),
        }
    }
}

/// Something that happened to the attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The dispatcher offered the request to the agent: ring them.
    Start,
    /// The agent's phone rings (180/183).
    AgentRinging,
    /// The agent answered (200).
    AgentAnswered,
    /// The agent's leg failed before an answer.
    AgentFailed {
        /// Why.
        reason: AgentFailure,
    },
    /// The dispatcher withdrew the offer before the agent answered (ring
    /// timeout, the request cancelled or lost, the agent paused...).
    /// Ignored once the agent has answered.
    OfferCancelled,
    /// The patient's phone rings (180/183).
    PatientRinging,
    /// The patient answered (200).
    PatientAnswered,
    /// The patient's leg failed with this final status (`None`: no
    /// response).
    PatientFailed {
        /// Its status.
        status: Option<u16>,
    },
    /// The practice's allow-list forbids the patient's number: the driver
    /// checked it instead of dialling. Only heeded between the agent's
    /// answer and the patient's.
    Refused,
    /// The agent hung up (BYE) after answering.
    AgentBye,
    /// The patient hung up (BYE); before the answer it counts as a failed
    /// leg.
    PatientBye,
    /// Media stopped during the conversation. Ignored before it (the
    /// patient ring timeout bounds that phase).
    MediaTimeout,
    /// The driver could not carry out an action: everything in progress is
    /// torn down.
    DriverFailure,
}

/// What the driver must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Ring the agent (INVITE to their phone).
    InviteAgent,
    /// Stop ringing the agent (CANCEL).
    CancelAgent,
    /// Tell the dispatcher the agent answered the offer (its
    /// `OfferAnswered`), and the book (`AttemptStarted`).
    ReportAnswered,
    /// Tell the dispatcher the offer failed (its `OfferFailed`).
    ReportOfferFailed {
        /// Why.
        reason: AgentFailure,
    },
    /// Play a ringback tone to the agent while the patient is dialled.
    PlayRingback,
    /// Place the patient's leg through the carrier's gateway, after checking
    /// the number against the practice's allow-list ([`Input::Refused`] if
    /// it may not be called).
    DialPatient,
    /// Cancel the patient's leg (not answered).
    CancelPatient,
    /// Stop the ringback and relay media between the agent and the patient.
    Bridge,
    /// Hang up the agent's leg (BYE).
    HangUpAgent,
    /// Hang up the patient's leg (BYE).
    HangUpPatient,
    /// Tell the dispatcher the call ended without after-call work (its
    /// `CallReleased`): the agent is free at once.
    ReleaseAgent,
    /// Tell the dispatcher the conversation ended (its `CallEnded`): the
    /// agent goes to wrap-up.
    ReportEnded,
    /// Release everything; emitted exactly once, last.
    Finished(Outcome),
}

/// Where the attempt is, for observers (the live view, logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The agent's phone rings.
    AgentRinging,
    /// The agent answered: the patient is being dialled.
    AgentConnected,
    /// The patient's phone rings.
    PatientRinging,
    /// The patient answered: the conversation starts.
    Talking,
    /// Over, with this outcome.
    Ended(Outcome),
}

/// One output, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// For the driver.
    Action(Action),
    /// For the observers.
    Event(Event),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    New,
    Offering {
        ringing: bool,
    },
    Dialling {
        /// When the patient's phone started ringing.
        ringing_since: Option<DateTime<Utc>>,
        until: DateTime<Utc>,
    },
    Talking {
        until: DateTime<Utc>,
    },
    Ended(Outcome),
}

/// One try of a callback request: one per offer of the dispatcher.
#[derive(Debug)]
pub struct Attempt {
    settings: AttemptSettings,
    phase: Phase,
    outputs: VecDeque<Output>,
}

impl Attempt {
    /// A new attempt, waiting for [`Input::Start`].
    pub fn new(settings: AttemptSettings) -> Self {
        Self {
            settings,
            phase: Phase::New,
            outputs: VecDeque::new(),
        }
    }

    /// Whether the attempt is over.
    pub fn is_ended(&self) -> bool {
        matches!(self.phase, Phase::Ended(_))
    }

    /// Whether the agent and the patient are talking.
    pub fn is_talking(&self) -> bool {
        matches!(self.phase, Phase::Talking { .. })
    }

    /// Whether the agent answered (the attempt counts as a try from then
    /// on), ended or not.
    pub fn agent_answered(&self) -> bool {
        match self.phase {
            Phase::Dialling { .. } | Phase::Talking { .. } => true,
            Phase::Ended(o) => o != Outcome::OfferFailed,
            Phase::New | Phase::Offering { .. } => false,
        }
    }

    /// How it ended, once it has.
    pub fn outcome(&self) -> Option<Outcome> {
        match self.phase {
            Phase::Ended(o) => Some(o),
            _ => None,
        }
    }

    fn act(&mut self, a: Action) {
        self.outputs.push_back(Output::Action(a));
    }

    fn emit(&mut self, e: Event) {
        self.outputs.push_back(Output::Event(e));
    }

    fn finish(&mut self, outcome: Outcome) {
        self.phase = Phase::Ended(outcome);
        self.emit(Event::Ended(outcome));
        self.act(Action::Finished(outcome));
    }

    /// Feeds one input. Inputs that do not apply where the attempt is are
    /// ignored; nothing follows the end.
    pub fn handle(&mut self, input: Input, now: DateTime<Utc>) {
        match self.phase {
            Phase::Ended(_) => {}
            Phase::New => self.new_input(input),
            Phase::Offering { ringing } => self.offering(ringing, input, now),
            Phase::Dialling { ringing_since, .. } => self.dialling(ringing_since, input, now),
            Phase::Talking { .. } => self.talking(input),
        }
    }

    fn new_input(&mut self, input: Input) {
        match input {
            Input::Start => {
                self.phase = Phase::Offering { ringing: false };
                self.act(Action::InviteAgent);
            }
            // Withdrawn before anything was sent: nothing to undo.
            Input::OfferCancelled => self.finish(Outcome::OfferFailed),
            Input::DriverFailure => {
                self.act(Action::ReportOfferFailed {
                    reason: AgentFailure::Unreachable,
                });
                self.finish(Outcome::OfferFailed);
            }
            _ => {}
        }
    }

    fn offering(&mut self, ringing: bool, input: Input, now: DateTime<Utc>) {
        match input {
            Input::AgentRinging if !ringing => {
                self.phase = Phase::Offering { ringing: true };
                self.emit(Event::AgentRinging);
            }
            Input::AgentAnswered => {
                self.phase = Phase::Dialling {
                    ringing_since: None,
                    until: later(now, self.settings.patient_ring_timeout),
                };
                self.emit(Event::AgentConnected);
                self.act(Action::ReportAnswered);
                self.act(Action::PlayRingback);
                self.act(Action::DialPatient);
            }
            Input::AgentFailed { reason } => {
                self.act(Action::ReportOfferFailed { reason });
                self.finish(Outcome::OfferFailed);
            }
            // The dispatcher knows: no report.
            Input::OfferCancelled => {
                self.act(Action::CancelAgent);
                self.finish(Outcome::OfferFailed);
            }
            Input::DriverFailure => {
                self.act(Action::CancelAgent);
                self.act(Action::ReportOfferFailed {
                    reason: AgentFailure::Unreachable,
                });
                self.finish(Outcome::OfferFailed);
            }
            _ => {}
        }
    }

    /// The patient's leg did not connect: hang up the agent and free them.
    fn not_reached(&mut self, result: AttemptResult) {
        self.act(Action::HangUpAgent);
        self.act(Action::ReleaseAgent);
        self.finish(Outcome::Attempted(result));
    }

    fn dialling(&mut self, ringing_since: Option<DateTime<Utc>>, input: Input, now: DateTime<Utc>) {
        match input {
            Input::PatientRinging if ringing_since.is_none() => {
                if let Phase::Dialling { ringing_since, .. } = &mut self.phase {
                    *ringing_since = Some(now);
                }
                self.emit(Event::PatientRinging);
            }
            Input::PatientAnswered => {
                self.phase = Phase::Talking {
                    until: later(now, self.settings.max_duration),
                };
                self.emit(Event::Talking);
                self.act(Action::Bridge);
            }
            Input::PatientFailed { status } => {
                self.not_reached(AttemptResult::of_failure(status));
            }
            Input::Refused => self.not_reached(AttemptResult::Refused),
            // A BYE before any answer: the leg failed.
            Input::PatientBye => self.not_reached(AttemptResult::Failed),
            // The agent gave up: an unanswered call if the patient's phone
            // rang long enough, else a failed try.
            Input::AgentBye => {
                let rang_enough = ringing_since.is_some_and(|since| {
                    now.signed_duration_since(since)
                        .to_std()
                        .is_ok_and(|rang| rang >= PATIENT_RANG_ENOUGH)
                });
                self.act(Action::CancelPatient);
                self.act(Action::ReleaseAgent);
                self.finish(Outcome::Attempted(if rang_enough {
                    AttemptResult::NoAnswer
                } else {
                    AttemptResult::Failed
                }));
            }
            Input::DriverFailure => {
                self.act(Action::CancelPatient);
                self.not_reached(AttemptResult::Failed);
            }
            _ => {}
        }
    }

    fn talking(&mut self, input: Input) {
        match input {
            Input::AgentBye => {
                self.act(Action::HangUpPatient);
                self.end_talk();
            }
            Input::PatientBye => {
                self.act(Action::HangUpAgent);
                self.end_talk();
            }
            Input::MediaTimeout | Input::DriverFailure => self.hang_up_both(),
            _ => {}
        }
    }

    fn end_talk(&mut self) {
        self.act(Action::ReportEnded);
        self.finish(Outcome::Attempted(AttemptResult::Answered));
    }

    fn hang_up_both(&mut self) {
        self.act(Action::HangUpPatient);
        self.act(Action::HangUpAgent);
        self.end_talk();
    }

    /// When [`Attempt::handle_timeout`] must be called next: the patient
    /// ring timeout or the end of the maximum duration.
    pub fn poll_timeout(&self) -> Option<DateTime<Utc>> {
        match self.phase {
            Phase::Dialling { until, .. } | Phase::Talking { until } => Some(until),
            Phase::New | Phase::Offering { .. } | Phase::Ended(_) => None,
        }
    }

    /// Fires the timer due at `now`, if any: the patient ring timeout
    /// (cancel the patient's leg, hang up and free the agent: no answer),
    /// or the maximum duration (hang up both).
    pub fn handle_timeout(&mut self, now: DateTime<Utc>) {
        match self.phase {
            Phase::Dialling { until, .. } if now >= until => {
                self.act(Action::CancelPatient);
                self.not_reached(AttemptResult::NoAnswer);
            }
            Phase::Talking { until } if now >= until => self.hang_up_both(),
            _ => {}
        }
    }

    /// The next output, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn drain(a: &mut Attempt) -> Vec<Output> {
        std::iter::from_fn(|| a.poll_output()).collect()
    }

    fn actions(a: &mut Attempt) -> Vec<Action> {
        drain(a)
            .into_iter()
            .filter_map(|o| match o {
                Output::Action(a) => Some(a),
                Output::Event(_) => None,
            })
            .collect()
    }

    fn offering() -> Attempt {
        let mut a = Attempt::new(AttemptSettings::default());
        a.handle(Input::Start, t0());
        drain(&mut a);
        a
    }

    fn dialling() -> Attempt {
        let mut a = offering();
        a.handle(Input::AgentAnswered, t0());
        drain(&mut a);
        a
    }

    fn talking() -> Attempt {
        let mut a = dialling();
        a.handle(Input::PatientAnswered, t0() + secs(10));
        drain(&mut a);
        a
    }

    fn end(outcome: Outcome) -> [Output; 2] {
        [
            Output::Event(Event::Ended(outcome)),
            Output::Action(Action::Finished(outcome)),
        ]
    }

    const ANSWERED: Outcome = Outcome::Attempted(AttemptResult::Answered);

    #[test]
    fn answered_try_then_patient_hangs_up() {
        let mut a = Attempt::new(AttemptSettings::default());
        assert_eq!(a.poll_timeout(), None);
        a.handle(Input::Start, t0());
        assert_eq!(drain(&mut a), vec![Output::Action(Action::InviteAgent)]);
        a.handle(Input::AgentRinging, t0());
        a.handle(Input::AgentRinging, t0());
        assert_eq!(drain(&mut a), vec![Output::Event(Event::AgentRinging)]);
        assert!(!a.agent_answered());
        a.handle(Input::AgentAnswered, t0() + secs(3));
        assert_eq!(
            drain(&mut a),
            vec![
                Output::Event(Event::AgentConnected),
                Output::Action(Action::ReportAnswered),
                Output::Action(Action::PlayRingback),
                Output::Action(Action::DialPatient),
            ]
        );
        assert!(a.agent_answered());
        assert_eq!(a.poll_timeout(), Some(t0() + secs(48)));
        a.handle(Input::PatientRinging, t0() + secs(4));
        a.handle(Input::PatientRinging, t0() + secs(5));
        assert_eq!(drain(&mut a), vec![Output::Event(Event::PatientRinging)]);
        a.handle(Input::PatientAnswered, t0() + secs(10));
        assert_eq!(
            drain(&mut a),
            vec![
                Output::Event(Event::Talking),
                Output::Action(Action::Bridge)
            ]
        );
        assert!(a.is_talking());
        assert_eq!(a.poll_timeout(), Some(t0() + secs(10 + 4 * 3600)));
        a.handle(Input::PatientBye, t0() + secs(100));
        let mut expected = vec![
            Output::Action(Action::HangUpAgent),
            Output::Action(Action::ReportEnded),
        ];
        expected.extend(end(ANSWERED));
        assert_eq!(drain(&mut a), expected);
        assert!(a.is_ended());
        assert_eq!(a.outcome(), Some(ANSWERED));
        assert_eq!(a.poll_timeout(), None);
        a.handle(Input::AgentBye, t0() + secs(101));
        assert!(drain(&mut a).is_empty());
    }

    #[test]
    fn agent_hangs_up_during_talk() {
        let mut a = talking();
        a.handle(Input::AgentBye, t0() + secs(60));
        assert_eq!(
            actions(&mut a),
            vec![
                Action::HangUpPatient,
                Action::ReportEnded,
                Action::Finished(ANSWERED)
            ]
        );
    }

    #[test]
    fn media_timeout_and_driver_failure_during_talk_hang_up_both() {
        for input in [Input::MediaTimeout, Input::DriverFailure] {
            let mut a = talking();
            a.handle(input, t0() + secs(60));
            assert_eq!(
                actions(&mut a),
                vec![
                    Action::HangUpPatient,
                    Action::HangUpAgent,
                    Action::ReportEnded,
                    Action::Finished(ANSWERED)
                ],
                "{input:?}"
            );
        }
    }

    #[test]
    fn max_duration_hangs_up_both() {
        let mut a = Attempt::new(AttemptSettings {
            max_duration: secs(600),
            ..AttemptSettings::default()
        });
        a.handle(Input::Start, t0());
        a.handle(Input::AgentAnswered, t0());
        a.handle(Input::PatientAnswered, t0() + secs(5));
        drain(&mut a);
        let due = a.poll_timeout();
        assert_eq!(due, Some(t0() + secs(605)));
        a.handle_timeout(t0() + secs(604));
        assert!(drain(&mut a).is_empty());
        a.handle_timeout(t0() + secs(605));
        assert_eq!(
            actions(&mut a),
            vec![
                Action::HangUpPatient,
                Action::HangUpAgent,
                Action::ReportEnded,
                Action::Finished(ANSWERED)
            ]
        );
    }

    #[test]
    fn agent_failure_is_reported_and_is_not_a_try() {
        for reason in [
            AgentFailure::Busy,
            AgentFailure::Rejected,
            AgentFailure::Unreachable,
        ] {
            let mut a = offering();
            a.handle(Input::AgentFailed { reason }, t0());
            let mut expected = vec![Output::Action(Action::ReportOfferFailed { reason })];
            expected.extend(end(Outcome::OfferFailed));
            assert_eq!(drain(&mut a), expected);
            assert!(!a.agent_answered());
            assert_eq!(a.outcome().and_then(Outcome::result), None);
        }
    }

    #[test]
    fn withdrawn_offer_cancels_the_agent_without_report() {
        let mut a = offering();
        a.handle(Input::AgentRinging, t0());
        drain(&mut a);
        a.handle(Input::OfferCancelled, t0() + secs(20));
        assert_eq!(
            actions(&mut a),
            vec![Action::CancelAgent, Action::Finished(Outcome::OfferFailed)]
        );
    }

    #[test]
    fn offer_withdrawn_after_the_answer_is_ignored() {
        let mut a = dialling();
        a.handle(Input::OfferCancelled, t0());
        assert!(drain(&mut a).is_empty());
        assert!(!a.is_ended());
    }

    #[test]
    fn driver_failure_while_offering() {
        let mut a = offering();
        a.handle(Input::DriverFailure, t0());
        assert_eq!(
            actions(&mut a),
            vec![
                Action::CancelAgent,
                Action::ReportOfferFailed {
                    reason: AgentFailure::Unreachable
                },
                Action::Finished(Outcome::OfferFailed)
            ]
        );
    }

    #[test]
    fn before_start() {
        let mut a = Attempt::new(AttemptSettings::default());
        for input in [
            Input::AgentAnswered,
            Input::PatientAnswered,
            Input::AgentBye,
            Input::Refused,
        ] {
            a.handle(input, t0());
        }
        assert!(drain(&mut a).is_empty());
        a.handle(Input::OfferCancelled, t0());
        assert_eq!(drain(&mut a).to_vec(), end(Outcome::OfferFailed).to_vec());

        let mut a = Attempt::new(AttemptSettings::default());
        a.handle(Input::DriverFailure, t0());
        assert_eq!(
            actions(&mut a),
            vec![
                Action::ReportOfferFailed {
                    reason: AgentFailure::Unreachable
                },
                Action::Finished(Outcome::OfferFailed)
            ]
        );
    }

    #[test]
    fn patient_failures_free_the_agent_at_once() {
        for (status, result) in [
            (Some(486), AttemptResult::Busy),
            (Some(600), AttemptResult::Busy),
            (Some(603), AttemptResult::Busy),
            (Some(408), AttemptResult::NoAnswer),
            (Some(480), AttemptResult::NoAnswer),
            (Some(487), AttemptResult::NoAnswer),
            (Some(404), AttemptResult::Failed),
            (Some(503), AttemptResult::Failed),
            (None, AttemptResult::Failed),
        ] {
            let mut a = dialling();
            a.handle(Input::PatientFailed { status }, t0() + secs(5));
            let mut expected = vec![
                Output::Action(Action::HangUpAgent),
                Output::Action(Action::ReleaseAgent),
            ];
            expected.extend(end(Outcome::Attempted(result)));
            assert_eq!(drain(&mut a), expected, "{status:?}");
        }
    }

    #[test]
    fn patient_ring_timeout_cancels_the_leg() {
        let mut a = dialling();
        a.handle(Input::PatientRinging, t0() + secs(2));
        drain(&mut a);
        assert_eq!(a.poll_timeout(), Some(t0() + secs(45)));
        a.handle_timeout(t0() + secs(44));
        assert!(drain(&mut a).is_empty());
        a.handle_timeout(t0() + secs(45));
        assert_eq!(
            actions(&mut a),
            vec![
                Action::CancelPatient,
                Action::HangUpAgent,
                Action::ReleaseAgent,
                Action::Finished(Outcome::Attempted(AttemptResult::NoAnswer))
            ]
        );
    }

    #[test]
    fn refused_number_is_a_refused_try() {
        let mut a = dialling();
        a.handle(Input::Refused, t0());
        assert_eq!(
            actions(&mut a),
            vec![
                Action::HangUpAgent,
                Action::ReleaseAgent,
                Action::Finished(Outcome::Attempted(AttemptResult::Refused))
            ]
        );
        // Only heeded before the patient answers.
        let mut a = talking();
        a.handle(Input::Refused, t0());
        assert!(drain(&mut a).is_empty());
        let mut a = offering();
        a.handle(Input::Refused, t0());
        assert!(drain(&mut a).is_empty());
    }

    #[test]
    fn agent_gives_up_while_the_patient_rings() {
        // Rang 20 s or more: no answer (retried like one).
        let mut a = dialling();
        a.handle(Input::PatientRinging, t0() + secs(2));
        drain(&mut a);
        a.handle(Input::AgentBye, t0() + secs(22));
        assert_eq!(
            actions(&mut a),
            vec![
                Action::CancelPatient,
                Action::ReleaseAgent,
                Action::Finished(Outcome::Attempted(AttemptResult::NoAnswer))
            ]
        );
        // Rang less: a failed try.
        let mut a = dialling();
        a.handle(Input::PatientRinging, t0() + secs(2));
        drain(&mut a);
        a.handle(Input::AgentBye, t0() + secs(21));
        assert_eq!(
            actions(&mut a),
            vec![
                Action::CancelPatient,
                Action::ReleaseAgent,
                Action::Finished(Outcome::Attempted(AttemptResult::Failed))
            ]
        );
        // Never rang: failed, however long the agent waited.
        let mut a = dialling();
        a.handle(Input::AgentBye, t0() + secs(40));
        assert_eq!(
            actions(&mut a),
            vec![
                Action::CancelPatient,
                Action::ReleaseAgent,
                Action::Finished(Outcome::Attempted(AttemptResult::Failed))
            ]
        );
    }

    #[test]
    fn patient_bye_before_answer_is_a_failed_leg() {
        let mut a = dialling();
        a.handle(Input::PatientBye, t0());
        assert_eq!(
            actions(&mut a),
            vec![
                Action::HangUpAgent,
                Action::ReleaseAgent,
                Action::Finished(Outcome::Attempted(AttemptResult::Failed))
            ]
        );
    }

    #[test]
    fn driver_failure_while_dialling() {
        let mut a = dialling();
        a.handle(Input::MediaTimeout, t0());
        assert!(drain(&mut a).is_empty());
        a.handle(Input::DriverFailure, t0());
        assert_eq!(
            actions(&mut a),
            vec![
                Action::CancelPatient,
                Action::HangUpAgent,
                Action::ReleaseAgent,
                Action::Finished(Outcome::Attempted(AttemptResult::Failed))
            ]
        );
    }

    #[test]
    fn names_and_mappings() {
        assert_eq!(AttemptResult::of_failure(Some(600)), AttemptResult::Busy);
        assert_eq!(AgentFailure::from_status(600), AgentFailure::Busy);
        assert_eq!(AgentFailure::from_status(603), AgentFailure::Rejected);
        assert_eq!(AgentFailure::from_status(480), AgentFailure::Unreachable);
        assert_eq!(AgentFailure::Rejected.as_str(), "rejected");
        assert_eq!(Outcome::OfferFailed.as_str(), "offer_failed");
        assert_eq!(
            Outcome::Attempted(AttemptResult::NoAnswer).as_str(),
            "no_answer"
        );
        assert_eq!(
            Outcome::Attempted(AttemptResult::Busy).result(),
            Some(AttemptResult::Busy)
        );
        assert_eq!(
            later(DateTime::<Utc>::MAX_UTC, secs(1)),
            DateTime::<Utc>::MAX_UTC
        );
    }

    fn any_input() -> impl Strategy<Value = Input> {
        prop_oneof![
            Just(Input::Start),
            Just(Input::AgentRinging),
            Just(Input::AgentAnswered),
            prop_oneof![
                Just(AgentFailure::Busy),
                Just(AgentFailure::Rejected),
                Just(AgentFailure::Unreachable)
            ]
            .prop_map(|reason| Input::AgentFailed { reason }),
            Just(Input::OfferCancelled),
            Just(Input::PatientRinging),
            Just(Input::PatientAnswered),
            proptest::option::of(400u16..700).prop_map(|status| Input::PatientFailed { status }),
            Just(Input::Refused),
            Just(Input::AgentBye),
            Just(Input::PatientBye),
            Just(Input::MediaTimeout),
            Just(Input::DriverFailure),
        ]
    }

    proptest! {
        /// Whatever happens, a started attempt ends exactly once once the
        /// dispatcher's ring timeout and its own timers have run, `Ended` right before `Finished` and nothing
        /// after; the dispatcher hears of the answer at most once, and an
        /// answered agent is always let go (released or reported ended)
        /// exactly once, a never-answered one never.
        #[test]
        fn ends_exactly_once(inputs in proptest::collection::vec((any_input(), 0u64..120), 0..30)) {
            let mut a = Attempt::new(AttemptSettings::default());
            let mut now = t0();
            let mut outs = Vec::new();
            for (input, step) in inputs {
                now += secs(step);
                if a.poll_timeout().is_some_and(|d| d <= now) {
                    a.handle_timeout(now);
                }
                a.handle(input, now);
                outs.extend(drain(&mut a));
            }
            // The dispatcher's ring timeout always ends an unanswered
            // offer; the attempt's own timers end the rest.
            now += secs(30);
            a.handle(Input::OfferCancelled, now);
            outs.extend(drain(&mut a));
            while let Some(d) = a.poll_timeout() {
                a.handle_timeout(d);
                outs.extend(drain(&mut a));
            }
            let count = |f: &dyn Fn(&Output) -> bool| outs.iter().filter(|o| f(o)).count();
            let finished: Vec<usize> = outs.iter().enumerate()
                .filter(|(_, o)| matches!(o, Output::Action(Action::Finished(_))))
                .map(|(i, _)| i).collect();
            let started = outs.contains(&Output::Action(Action::InviteAgent));
            if started {
                prop_assert_eq!(finished.len(), 1);
            }
            prop_assert!(finished.len() <= 1);
            if let Some(&i) = finished.first() {
                prop_assert_eq!(i, outs.len() - 1);
                prop_assert!(i >= 1);
                let (Output::Event(Event::Ended(e)), Output::Action(Action::Finished(f))) = (outs[i - 1], outs[i]) else {
                    return Err(TestCaseError::fail("Ended must come right before Finished"));
                };
                prop_assert_eq!(e, f);
                let answered = count(&|o| *o == Output::Action(Action::ReportAnswered));
                prop_assert!(answered <= 1);
                let let_go = count(&|o| matches!(o, Output::Action(Action::ReleaseAgent | Action::ReportEnded)));
                let offer_failed = count(&|o| matches!(o, Output::Action(Action::ReportOfferFailed { .. })));
                match f {
                    Outcome::OfferFailed => {
                        prop_assert_eq!(answered, 0);
                        prop_assert_eq!(let_go, 0);
                        prop_assert!(offer_failed <= 1);
                    }
                    Outcome::Attempted(r) => {
                        prop_assert_eq!(answered, 1);
                        prop_assert_eq!(let_go, 1);
                        prop_assert_eq!(offer_failed, 0);
                        let talked = outs.contains(&Output::Event(Event::Talking));
                        prop_assert_eq!(talked, r == AttemptResult::Answered);
                        let ended = outs.contains(&Output::Action(Action::ReportEnded));
                        prop_assert_eq!(ended, r == AttemptResult::Answered);
                    }
                }
            }
        }
    }
}
