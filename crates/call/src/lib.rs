//! The life of one caller's call, as a pure state machine.
//!
//! A [`Call`] is driven by [`Call::handle`] with an [`Input`] and the
//! current time, and by [`Call::handle_timeout`] at [`Call::poll_timeout`];
//! it answers with [`Action`]s that a driver carries out (send the 200 OK,
//! play a playlist, send a BYE, release the media port). It never touches a
//! socket, a clock or a file, so every path is tested on virtual time.
//!
//! Phases of a call to a practice:
//! - **open**: answer, play the practice greeting once, then hold audio in a
//!   loop while the call waits (the dispatcher takes it from there);
//! - **closed**: answer, play the closed prompt (which tells the caller to
//!   dial 15 in an emergency), then hang up;
//! - at any point the caller may hang up (BYE) or cancel (CANCEL before the
//!   answer): the call ends and every resource is released.
//!
//! Every call ends exactly once, with an [`EndReason`] in
//! [`Action::Finished`], so no call is lost silently.

#![forbid(unsafe_code)]

use chrono::{DateTime, Duration, Utc};
use std::collections::VecDeque;

/// A prompt, named by role; the driver maps it to the practice's own audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prompt {
    /// The practice greeting.
    Greeting,
    /// Hold audio.
    Hold,
    /// The closed message (with the "dial 15" advice).
    Closed,
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

/// Where the call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Created; nothing sent yet.
    New,
    /// 200 OK sent, greeting playing.
    Greeting,
    /// Waiting with hold audio.
    Waiting,
    /// Closed prompt playing; the call ends when it finishes.
    ClosedMessage,
    /// Over.
    Ended(EndReason),
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// The caller hung up (BYE) after the answer.
    CallerHangup,
    /// The caller cancelled before the answer.
    CallerCancel,
    /// The practice was closed: the closed prompt was played, then BYE.
    Closed,
    /// No RTP from the caller for too long: their side vanished.
    MediaTimeout,
    /// The call hit its maximum duration.
    MaxDuration,
    /// The driver failed to carry out an action (answer could not be sent,
    /// media could not start).
    Failure,
}

impl EndReason {
    /// Short name for logs and records.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::CallerHangup => "caller-hangup",
            EndReason::CallerCancel => "caller-cancel",
            EndReason::Closed => "closed",
            EndReason::MediaTimeout => "media-timeout",
            EndReason::MaxDuration => "max-duration",
            EndReason::Failure => "failure",
        }
    }
}

/// Something that happened to the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// A DTMF digit from the caller.
    Dtmf(char),
    /// No RTP from the caller for the configured time.
    MediaTimeout,
    /// The driver could not carry out an action.
    DriverFailure,
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
    /// Release everything (media port, dialog); the call is over. Emitted
    /// exactly once.
    Finished(EndReason),
}

/// Settings of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallSettings {
    /// Longest a call may last before it is ended (protects the port pool
    /// against calls whose far end vanished without BYE and kept RTP going).
    pub max_duration: Duration,
}

impl Default for CallSettings {
    fn default() -> Self {
        Self {
            max_duration: Duration::hours(4),
        }
    }
}

/// One caller's call.
#[derive(Debug)]
pub struct Call {
    settings: CallSettings,
    phase: Phase,
    started: Option<DateTime<Utc>>,
    actions: VecDeque<Action>,
}

impl Call {
    /// A new call.
    pub fn new(settings: CallSettings) -> Self {
        Self {
            settings,
            phase: Phase::New,
            started: None,
            actions: VecDeque::new(),
        }
    }

    /// Current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether the call is over.
    pub fn is_ended(&self) -> bool {
        matches!(self.phase, Phase::Ended(_))
    }

    fn end(&mut self, reason: EndReason, send_bye: bool) {
        if self.is_ended() {
            return;
        }
        if send_bye {
            self.actions.push_back(Action::HangUp);
        }
        self.phase = Phase::Ended(reason);
        self.actions.push_back(Action::Finished(reason));
    }

    /// Feeds one input.
    pub fn handle(&mut self, input: Input, now: DateTime<Utc>) {
        if self.is_ended() {
            return;
        }
        match (self.phase, input) {
            (Phase::New, Input::Start { open }) => {
                self.started = Some(now);
                self.actions.push_back(Action::Answer);
                if open {
                    self.phase = Phase::Greeting;
                    self.actions
                        .push_back(Action::Play(Playlist::once(Prompt::Greeting)));
                } else {
                    self.phase = Phase::ClosedMessage;
                    self.actions
                        .push_back(Action::Play(Playlist::once(Prompt::Closed)));
                }
            }
            (Phase::New, Input::CallerCancel) => self.end(EndReason::CallerCancel, false),
            (Phase::New, Input::CallerBye) => self.end(EndReason::CallerCancel, false),
            (_, Input::CallerCancel) | (_, Input::CallerBye) => {
                let reason = if self.phase == Phase::ClosedMessage {
                    EndReason::Closed
                } else {
                    EndReason::CallerHangup
                };
                self.end(reason, false)
            }
            (Phase::Greeting, Input::PlaybackFinished) => {
                self.phase = Phase::Waiting;
                self.actions
                    .push_back(Action::Play(Playlist::looped(Prompt::Hold)));
            }
            (Phase::ClosedMessage, Input::PlaybackFinished) => self.end(EndReason::Closed, true),
            (_, Input::MediaTimeout) => self.end(EndReason::MediaTimeout, true),
            (_, Input::DriverFailure) => self.end(EndReason::Failure, true),
            // Digits are only used by triage menus; stray events are ignored.
            _ => {}
        }
    }

    /// When [`Call::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<DateTime<Utc>> {
        match (self.phase, self.started) {
            (Phase::Ended(_), _) | (_, None) => None,
            (_, Some(s)) => Some(s + self.settings.max_duration),
        }
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: DateTime<Utc>) {
        if let Some(t) = self.poll_timeout() {
            if now >= t {
                self.end(EndReason::MaxDuration, true);
            }
        }
    }

    /// Next action to carry out.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).expect("valid")
    }

    fn drain(c: &mut Call) -> Vec<Action> {
        std::iter::from_fn(|| c.poll_action()).collect()
    }

    #[test]
    fn open_practice_greeting_then_hold_then_caller_hangs_up() {
        let mut c = Call::new(CallSettings::default());
        c.handle(Input::Start { open: true }, t(0));
        assert_eq!(
            drain(&mut c),
            vec![
                Action::Answer,
                Action::Play(Playlist::once(Prompt::Greeting))
            ]
        );
        c.handle(Input::PlaybackFinished, t(4));
        assert_eq!(
            drain(&mut c),
            vec![Action::Play(Playlist::looped(Prompt::Hold))]
        );
        assert_eq!(c.phase(), Phase::Waiting);
        c.handle(Input::CallerBye, t(60));
        assert_eq!(
            drain(&mut c),
            vec![Action::Finished(EndReason::CallerHangup)]
        );
        // Nothing after the end.
        c.handle(Input::PlaybackFinished, t(61));
        c.handle_timeout(t(100_000));
        assert_eq!(drain(&mut c), vec![]);
    }

    #[test]
    fn closed_practice_plays_closed_prompt_then_hangs_up() {
        let mut c = Call::new(CallSettings::default());
        c.handle(Input::Start { open: false }, t(0));
        assert_eq!(
            drain(&mut c),
            vec![Action::Answer, Action::Play(Playlist::once(Prompt::Closed))]
        );
        c.handle(Input::PlaybackFinished, t(12));
        assert_eq!(
            drain(&mut c),
            vec![Action::HangUp, Action::Finished(EndReason::Closed)]
        );
    }

    #[test]
    fn caller_hangs_up_during_closed_message() {
        let mut c = Call::new(CallSettings::default());
        c.handle(Input::Start { open: false }, t(0));
        drain(&mut c);
        c.handle(Input::CallerBye, t(3));
        assert_eq!(drain(&mut c), vec![Action::Finished(EndReason::Closed)]);
    }

    #[test]
    fn cancel_before_answer() {
        let mut c = Call::new(CallSettings::default());
        c.handle(Input::CallerCancel, t(0));
        assert_eq!(
            drain(&mut c),
            vec![Action::Finished(EndReason::CallerCancel)]
        );
    }

    #[test]
    fn media_timeout_and_max_duration() {
        let mut c = Call::new(CallSettings::default());
        c.handle(Input::Start { open: true }, t(0));
        drain(&mut c);
        c.handle(Input::MediaTimeout, t(30));
        assert_eq!(
            drain(&mut c),
            vec![Action::HangUp, Action::Finished(EndReason::MediaTimeout)]
        );
        let mut c = Call::new(CallSettings {
            max_duration: Duration::seconds(100),
        });
        c.handle(Input::Start { open: true }, t(0));
        drain(&mut c);
        assert_eq!(c.poll_timeout(), Some(t(100)));
        c.handle_timeout(t(99));
        assert_eq!(drain(&mut c), vec![]);
        c.handle_timeout(t(100));
        assert_eq!(
            drain(&mut c),
            vec![Action::HangUp, Action::Finished(EndReason::MaxDuration)]
        );
        assert_eq!(c.poll_timeout(), None);
    }

    proptest::proptest! {
        /// Whatever happens, a started call finishes exactly once, and
        /// nothing is asked of the driver after that.
        #[test]
        fn finishes_exactly_once(inputs in proptest::collection::vec(0u8..7, 0..30), open in proptest::bool::ANY) {
            let mut c = Call::new(CallSettings { max_duration: Duration::seconds(50) });
            c.handle(Input::Start { open }, t(0));
            let mut finished = 0;
            let mut after_finish = 0;
            for (i, k) in inputs.iter().enumerate() {
                let now = t(i as i64 * 10);
                match k {
                    0 => c.handle(Input::CallerBye, now),
                    1 => c.handle(Input::CallerCancel, now),
                    2 => c.handle(Input::PlaybackFinished, now),
                    3 => c.handle(Input::Dtmf('1'), now),
                    4 => c.handle(Input::MediaTimeout, now),
                    5 => c.handle(Input::DriverFailure, now),
                    _ => c.handle_timeout(now),
                }
                for a in drain(&mut c) {
                    if finished > 0 { after_finish += 1; }
                    if matches!(a, Action::Finished(_)) { finished += 1; }
                }
            }
            c.handle(Input::CallerBye, t(10_000));
            for a in drain(&mut c) {
                if finished > 0 { after_finish += 1; }
                if matches!(a, Action::Finished(_)) { finished += 1; }
            }
            proptest::prop_assert_eq!(finished, 1);
            proptest::prop_assert_eq!(after_finish, 0);
        }
    }
}
