//! One outbound call, as a pure state machine: the agent's INVITE on one
//! side, the gateway leg to the destination on the other.
//!
//! An [`OutboundCall`] is driven by [`OutboundCall::handle`] with an
//! [`Input`] and the current time, and by [`OutboundCall::handle_timeout`]
//! at [`OutboundCall::poll_timeout`]. It answers through
//! [`OutboundCall::poll_output`] with [`Action`]s for the driver and
//! [`Event`]s for observers (the record, metrics, logs), like the inbound
//! call core.
//!
//! The path:
//! 1. **refused** ([`Refusal`]): the agent hears why (183 with early
//!    media), then gets the refusal's final status; nothing leaves;
//! 2. **dialling**: the gateway leg is placed; its ringing is passed on
//!    (180); no answer within the ring timeout cancels it (480);
//! 3. **answered**: the agent's INVITE is answered (200) and the two legs
//!    bridged, until either side hangs up, media stops, or the maximum
//!    duration;
//! 4. a gateway failure is passed on to the agent with its status (5xx
//!    becomes 502, no response 408).
//!
//! Every call ends exactly once with an [`Outcome`] in
//! [`Action::Finished`], right after [`Event::Ended`].

use crate::decide::Refusal;
use chrono::{DateTime, Utc};
use std::collections::VecDeque;
use std::time::Duration;

/// Timers of an outbound call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    /// How long the destination may ring.
    pub ring_timeout: Duration,
    /// Longest conversation.
    pub max_duration: Duration,
    /// Longest the spoken reason of a refusal may play before the final
    /// status is sent anyway.
    pub refusal_prompt_max: Duration,
}

impl Default for CallLimits {
    fn default() -> Self {
        Self {
            ring_timeout: Duration::from_secs(60),
            max_duration: Duration::from_secs(4 * 3600),
            refusal_prompt_max: Duration::from_secs(15),
        }
    }
}

/// How an outbound call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The destination answered (then either side hung up).
    Answered,
    /// Busy or declined (486, 600, 603).
    Busy,
    /// No answer (ring timeout, 408, 480, 487).
    NoAnswer,
    /// The gateway refused or failed: its status, `None` without one.
    Failed(Option<u16>),
    /// The agent hung up before the answer.
    Cancelled,
    /// Refused before anything left the switch.
    Refused(Refusal),
}

impl Outcome {
    /// Short name for logs, metrics and records.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Busy => "busy",
            Outcome::NoAnswer => "no_answer",
            Outcome::Failed(_) => "failed",
            Outcome::Cancelled => "cancelled",
            Outcome::Refused(_) => "refused",
        }
    }

    /// The outcome of a gateway's final failure status (`None`: no
    /// response at all).
    pub fn of_failure(status: Option<u16>) -> Self {
        match status {
            Some(486 | 600 | 603) => Outcome::Busy,
            Some(408 | 480 | 487) => Outcome::NoAnswer,
            other => Outcome::Failed(other),
        }
    }
}

/// The status relayed to the agent for a gateway failure: the gateway's
/// 4xx and 6xx as they are (a 487 the agent did not ask for becomes 480),
/// a 5xx becomes 502, no response 408.
pub fn relayed_status(status: Option<u16>) -> u16 {
    match status {
        Some(487) => 480,
        Some(s) if (400..500).contains(&s) || (600..700).contains(&s) => s,
        Some(_) => 502,
        None => 408,
    }
}

/// Something that happened to the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The verdict on the agent's INVITE: `None` to dial, or why not.
    Start {
        /// The refusal, if refused.
        refused: Option<Refusal>,
    },
    /// The agent hung up: CANCEL before the answer, BYE after.
    AgentGone,
    /// The destination rings (180/183).
    FarRinging,
    /// The destination answered.
    FarAnswered,
    /// The gateway leg failed with this final status (`None`: no
    /// response).
    FarFailed {
        /// Its status.
        status: Option<u16>,
    },
    /// The destination hung up.
    FarBye,
    /// The refusal's spoken reason finished.
    PlaybackFinished,
    /// The agent completed an attended transfer: the destination's leg
    /// now belongs to the call it was joined with (the driver handed it
    /// over); the agent's side is hung up.
    HandedOver,
    /// Media stopped on either leg of the conversation.
    MediaTimeout,
    /// The driver could not carry out an action.
    DriverFailure,
}

/// What the driver must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send 183 with our SDP and play the refusal's reason to the agent.
    PlayRefusal(Refusal),
    /// Answer the agent's INVITE with this final failure status.
    Reject {
        /// The status.
        status: u16,
    },
    /// Place the gateway leg.
    Dial,
    /// Send 180 to the agent.
    RingAgent,
    /// Answer the agent's INVITE (200 with our SDP).
    AnswerAgent,
    /// Relay media between the two legs.
    Bridge,
    /// Cancel the gateway leg (not answered).
    CancelFar,
    /// Hang up the gateway leg (BYE).
    HangUpFar,
    /// Hang up the agent (BYE).
    HangUpAgent,
    /// Release everything; emitted exactly once.
    Finished(Outcome),
}

/// Where the call is, for observers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Refused; the reason plays.
    Refused(Refusal),
    /// The gateway leg was placed.
    Dialled,
    /// The destination rings.
    Ringing,
    /// The destination answered: the conversation starts.
    Answered,
    /// Over.
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
    Refusing {
        refusal: Refusal,
        until: DateTime<Utc>,
    },
    Dialling {
        ringing: bool,
        until: DateTime<Utc>,
    },
    Talking {
        until: DateTime<Utc>,
    },
    Ended(Outcome),
}

/// One outbound call.
#[derive(Debug)]
pub struct OutboundCall {
    limits: CallLimits,
    phase: Phase,
    outputs: VecDeque<Output>,
}

impl OutboundCall {
    /// A new call, waiting for [`Input::Start`].
    pub fn new(limits: CallLimits) -> Self {
        Self {
            limits,
            phase: Phase::New,
            outputs: VecDeque::new(),
        }
    }

    /// Whether the call is over.
    pub fn is_ended(&self) -> bool {
        matches!(self.phase, Phase::Ended(_))
    }

    /// Whether the destination answered (the conversation is on).
    pub fn is_talking(&self) -> bool {
        matches!(self.phase, Phase::Talking { .. })
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

    /// Feeds one input.
    pub fn handle(&mut self, input: Input, now: DateTime<Utc>) {
        match (self.phase, input) {
            (Phase::Ended(_), _) => {}
            (Phase::New, Input::Start { refused }) => self.start(refused, now),
            (Phase::New, Input::AgentGone) => self.finish(Outcome::Cancelled),
            (Phase::New, _) => {}
            (Phase::Refusing { refusal, .. }, i) => self.refusing(refusal, i),
            (Phase::Dialling { ringing, .. }, i) => self.dialling(ringing, i, now),
            (Phase::Talking { .. }, i) => self.talking(i),
        }
    }

    fn start(&mut self, refused: Option<Refusal>, now: DateTime<Utc>) {
        match refused {
            Some(refusal) => {
                self.phase = Phase::Refusing {
                    refusal,
                    until: now + self.limits.refusal_prompt_max,
                };
                self.emit(Event::Refused(refusal));
                self.act(Action::PlayRefusal(refusal));
            }
            None => {
                self.phase = Phase::Dialling {
                    ringing: false,
                    until: now + self.limits.ring_timeout,
                };
                self.emit(Event::Dialled);
                self.act(Action::Dial);
            }
        }
    }

    fn refusing(&mut self, refusal: Refusal, input: Input) {
        match input {
            Input::PlaybackFinished | Input::DriverFailure => self.refuse_now(refusal),
            // The agent cancelled: the stack answers 487 itself.
            Input::AgentGone => self.finish(Outcome::Refused(refusal)),
            _ => {}
        }
    }

    fn refuse_now(&mut self, refusal: Refusal) {
        self.act(Action::Reject {
            status: refusal.status(),
        });
        self.finish(Outcome::Refused(refusal));
    }

    fn dialling(&mut self, ringing: bool, input: Input, now: DateTime<Utc>) {
        match input {
            Input::FarRinging if !ringing => {
                if let Phase::Dialling { ringing, .. } = &mut self.phase {
                    *ringing = true;
                }
                self.emit(Event::Ringing);
                self.act(Action::RingAgent);
            }
            Input::FarAnswered => {
                self.phase = Phase::Talking {
                    until: now + self.limits.max_duration,
                };
                self.emit(Event::Answered);
                self.act(Action::AnswerAgent);
                self.act(Action::Bridge);
            }
            Input::FarFailed { status } => {
                self.act(Action::Reject {
                    status: relayed_status(status),
                });
                self.finish(Outcome::of_failure(status));
            }
            // A BYE before any answer: the leg failed.
            Input::FarBye => {
                self.act(Action::Reject { status: 502 });
                self.finish(Outcome::Failed(None));
            }
            Input::AgentGone => {
                self.act(Action::CancelFar);
                self.finish(Outcome::Cancelled);
            }
            Input::DriverFailure => {
                self.act(Action::CancelFar);
                self.act(Action::Reject { status: 500 });
                self.finish(Outcome::Failed(None));
            }
            _ => {}
        }
    }

    fn talking(&mut self, input: Input) {
        match input {
            Input::AgentGone => {
                self.act(Action::HangUpFar);
                self.finish(Outcome::Answered);
            }
            Input::FarBye | Input::HandedOver => {
                self.act(Action::HangUpAgent);
                self.finish(Outcome::Answered);
            }
            Input::MediaTimeout | Input::DriverFailure => self.hang_up_both(),
            _ => {}
        }
    }

    fn hang_up_both(&mut self) {
        self.act(Action::HangUpFar);
        self.act(Action::HangUpAgent);
        self.finish(Outcome::Answered);
    }

    /// When [`OutboundCall::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<DateTime<Utc>> {
        match self.phase {
            Phase::Refusing { until, .. }
            | Phase::Dialling { until, .. }
            | Phase::Talking { until } => Some(until),
            Phase::New | Phase::Ended(_) => None,
        }
    }

    /// Fires the timer due at `now`, if any: the refusal's final status,
    /// the ring timeout (480), the maximum duration.
    pub fn handle_timeout(&mut self, now: DateTime<Utc>) {
        match self.phase {
            Phase::Refusing { refusal, until } if now >= until => self.refuse_now(refusal),
            Phase::Dialling { until, .. } if now >= until => {
                self.act(Action::CancelFar);
                self.act(Action::Reject { status: 480 });
                self.finish(Outcome::NoAnswer);
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
    use crate::destination::DestinationClass;
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
    }

    fn drain(c: &mut OutboundCall) -> Vec<Output> {
        std::iter::from_fn(|| c.poll_output()).collect()
    }

    fn actions(c: &mut OutboundCall) -> Vec<Action> {
        drain(c)
            .into_iter()
            .filter_map(|o| match o {
                Output::Action(a) => Some(a),
                Output::Event(_) => None,
            })
            .collect()
    }

    fn started() -> OutboundCall {
        let mut c = OutboundCall::new(CallLimits::default());
        c.handle(Input::Start { refused: None }, t0());
        c
    }

    #[test]
    fn answered_call() {
        let mut c = started();
        assert_eq!(
            drain(&mut c),
            vec![Output::Event(Event::Dialled), Output::Action(Action::Dial)]
        );
        c.handle(Input::FarRinging, t0());
        c.handle(Input::FarRinging, t0());
        assert_eq!(actions(&mut c), vec![Action::RingAgent]);
        c.handle(Input::FarAnswered, t0());
        assert_eq!(actions(&mut c), vec![Action::AnswerAgent, Action::Bridge]);
        assert!(c.is_talking());
        c.handle(Input::FarBye, t0());
        assert_eq!(
            drain(&mut c),
            vec![
                Output::Action(Action::HangUpAgent),
                Output::Event(Event::Ended(Outcome::Answered)),
                Output::Action(Action::Finished(Outcome::Answered)),
            ]
        );
        assert!(c.is_ended());
        assert_eq!(c.poll_timeout(), None);
    }

    #[test]
    fn handed_over_to_an_attended_transfer() {
        let mut c = started();
        c.handle(Input::HandedOver, t0());
        c.handle(Input::FarAnswered, t0());
        drain(&mut c);
        c.handle(Input::HandedOver, t0());
        assert_eq!(
            actions(&mut c),
            vec![Action::HangUpAgent, Action::Finished(Outcome::Answered)]
        );
    }

    #[test]
    fn agent_hangs_up_after_the_answer() {
        let mut c = started();
        c.handle(Input::FarAnswered, t0());
        drain(&mut c);
        c.handle(Input::AgentGone, t0());
        assert_eq!(
            actions(&mut c),
            vec![Action::HangUpFar, Action::Finished(Outcome::Answered)]
        );
    }

    #[test]
    fn refusal_plays_then_sends_its_status() {
        let r = Refusal::Destination(DestinationClass::Premium);
        let mut c = OutboundCall::new(CallLimits::default());
        c.handle(Input::Start { refused: Some(r) }, t0());
        assert_eq!(
            drain(&mut c),
            vec![
                Output::Event(Event::Refused(r)),
                Output::Action(Action::PlayRefusal(r))
            ]
        );
        c.handle(Input::FarAnswered, t0());
        assert!(actions(&mut c).is_empty());
        c.handle(Input::PlaybackFinished, t0());
        assert_eq!(
            actions(&mut c),
            vec![
                Action::Reject { status: 403 },
                Action::Finished(Outcome::Refused(r))
            ]
        );
    }

    #[test]
    fn refusal_prompt_is_bounded() {
        let mut c = OutboundCall::new(CallLimits::default());
        c.handle(
            Input::Start {
                refused: Some(Refusal::InvalidNumber),
            },
            t0(),
        );
        drain(&mut c);
        let due = c.poll_timeout().unwrap();
        assert_eq!(due, t0() + Duration::from_secs(15));
        c.handle_timeout(due - Duration::from_secs(1));
        assert!(actions(&mut c).is_empty());
        c.handle_timeout(due);
        assert_eq!(
            actions(&mut c),
            vec![
                Action::Reject { status: 484 },
                Action::Finished(Outcome::Refused(Refusal::InvalidNumber))
            ]
        );
    }

    #[test]
    fn ring_timeout_cancels_and_says_480() {
        let mut c = started();
        drain(&mut c);
        let due = c.poll_timeout().unwrap();
        assert_eq!(due, t0() + Duration::from_secs(60));
        c.handle_timeout(due);
        assert_eq!(
            actions(&mut c),
            vec![
                Action::CancelFar,
                Action::Reject { status: 480 },
                Action::Finished(Outcome::NoAnswer)
            ]
        );
    }

    #[test]
    fn gateway_failures_are_relayed() {
        for (status, relayed, outcome) in [
            (Some(486), 486, Outcome::Busy),
            (Some(603), 603, Outcome::Busy),
            (Some(480), 480, Outcome::NoAnswer),
            (Some(487), 480, Outcome::NoAnswer),
            (Some(404), 404, Outcome::Failed(Some(404))),
            (Some(503), 502, Outcome::Failed(Some(503))),
            (None, 408, Outcome::Failed(None)),
        ] {
            let mut c = started();
            drain(&mut c);
            c.handle(Input::FarFailed { status }, t0());
            assert_eq!(
                actions(&mut c),
                vec![
                    Action::Reject { status: relayed },
                    Action::Finished(outcome)
                ],
                "{status:?}"
            );
        }
    }

    #[test]
    fn agent_cancels_while_ringing() {
        let mut c = started();
        c.handle(Input::FarRinging, t0());
        drain(&mut c);
        c.handle(Input::AgentGone, t0());
        assert_eq!(
            actions(&mut c),
            vec![Action::CancelFar, Action::Finished(Outcome::Cancelled)]
        );
    }

    #[test]
    fn max_duration_hangs_up_both() {
        let mut c = OutboundCall::new(CallLimits {
            max_duration: Duration::from_secs(100),
            ..CallLimits::default()
        });
        c.handle(Input::Start { refused: None }, t0());
        c.handle(Input::FarAnswered, t0() + Duration::from_secs(5));
        drain(&mut c);
        assert_eq!(c.poll_timeout(), Some(t0() + Duration::from_secs(105)));
        c.handle_timeout(t0() + Duration::from_secs(105));
        assert_eq!(
            actions(&mut c),
            vec![
                Action::HangUpFar,
                Action::HangUpAgent,
                Action::Finished(Outcome::Answered)
            ]
        );
    }

    fn any_input() -> impl Strategy<Value = Input> {
        prop_oneof![
            Just(Input::Start { refused: None }),
            Just(Input::Start {
                refused: Some(Refusal::TooManyCalls)
            }),
            Just(Input::AgentGone),
            Just(Input::FarRinging),
            Just(Input::FarAnswered),
            proptest::option::of(400u16..700).prop_map(|status| Input::FarFailed { status }),
            Just(Input::FarBye),
            Just(Input::PlaybackFinished),
            Just(Input::MediaTimeout),
            Just(Input::HandedOver),
            Just(Input::DriverFailure),
        ]
    }

    proptest! {
        /// Whatever happens, a started call ends exactly once, `Ended`
        /// right before `Finished`, and nothing follows; every started
        /// call ends once its timers have run.
        #[test]
        fn ends_exactly_once(inputs in proptest::collection::vec((any_input(), 0u64..200), 0..30)) {
            let mut c = OutboundCall::new(CallLimits::default());
            let mut now = t0();
            let mut outs = Vec::new();
            for (input, step) in inputs {
                now += Duration::from_secs(step);
                if c.poll_timeout().is_some_and(|d| d <= now) {
                    c.handle_timeout(now);
                }
                c.handle(input, now);
                outs.extend(drain(&mut c));
            }
            while let Some(d) = c.poll_timeout() {
                c.handle_timeout(d);
                outs.extend(drain(&mut c));
            }
            let finished: Vec<usize> = outs.iter().enumerate()
                .filter(|(_, o)| matches!(o, Output::Action(Action::Finished(_))))
                .map(|(i, _)| i).collect();
            let started = outs.iter().any(|o| matches!(o, Output::Action(Action::Dial | Action::PlayRefusal(_))));
            if started {
                prop_assert_eq!(finished.len(), 1);
            }
            prop_assert!(finished.len() <= 1);
            if let Some(&i) = finished.first() {
                prop_assert_eq!(i, outs.len() - 1);
                prop_assert!(i >= 1 && matches!(outs[i - 1], Output::Event(Event::Ended(_))));
            }
        }
    }
}
