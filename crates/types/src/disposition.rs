//! What a forwarded call counts as in a practice's figures: one
//! definition for the Prometheus counters, the call records and the admin
//! API.
//!
//! The call core (`permanence-call`) decides a call's [`Disposition`] when
//! it ends; every figure is derived from it, so that for each practice
//!
//! ```text
//! offered = answered + abandoned (all phases) + overflowed + callback requested + failed
//! ```
//!
//! holds exactly, in the metrics as in the records. Calls that never
//! reached the practice ([`Disposition::Closed`], [`Disposition::Unanswered`])
//! and calls refused at the door (no call core at all) are not offered.

use serde::{Deserialize, Serialize};

use crate::overflow::OverflowKind;

/// Where a caller was when they hung up before anyone answered.
///
/// The dispatcher's own `permanence_acd::AbandonPhase` is the queue-level
/// subset of this ([`Queue`](Self::Queue), [`Ringing`](Self::Ringing)): it
/// never sees a call before it is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AbandonPhase {
    /// The practice's greeting was playing.
    Greeting,
    /// The triage menu was playing, or waited for a digit.
    Triage,
    /// The number of a triage option that routes straight to a number
    /// (direct route) was ringing.
    Route,
    /// Waiting in the queue (hold audio, announcements).
    Queue,
    /// A telesecretary's phone was ringing with the call.
    Ringing,
    /// In the callback menu (number read back or being typed), still
    /// queued.
    CallbackPrompt,
}

impl AbandonPhase {
    /// Every phase, in the order a call goes through them.
    pub const ALL: [AbandonPhase; 6] = [
        AbandonPhase::Greeting,
        AbandonPhase::Triage,
        AbandonPhase::Route,
        AbandonPhase::Queue,
        AbandonPhase::Ringing,
        AbandonPhase::CallbackPrompt,
    ];

    /// Stable name for logs, labels and the admin API (`greeting`,
    /// `triage`, `route`, `queue`, `ringing`, `callback_prompt`).
    pub fn as_str(self) -> &'static str {
        match self {
            AbandonPhase::Greeting => "greeting",
            AbandonPhase::Triage => "triage",
            AbandonPhase::Route => "route",
            AbandonPhase::Queue => "queue",
            AbandonPhase::Ringing => "ringing",
            AbandonPhase::CallbackPrompt => "callback_prompt",
        }
    }

    /// Position in [`Self::ALL`] (for tables indexed by phase).
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for AbandonPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an ended forwarded call counts as. Exactly one per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Disposition {
    /// Not offered: the practice was closed (closed prompt), by its hours
    /// or because the dispatcher refused the call as closed.
    Closed,
    /// Not offered: the caller hung up while the engine let the call ring,
    /// before it answered (`--answer-delay-ms`): the practice's greeting
    /// was never heard.
    Unanswered,
    /// Offered and answered: a telesecretary (or the number of a direct
    /// route) talked with the caller, whatever happened next (transfer,
    /// hang-up, media timeout).
    Answered,
    /// Offered; the caller hung up before anyone answered.
    Abandoned(AbandonPhase),
    /// Offered; sent to the practice's overflow at its maximum wait
    /// (voicemail, a callback request, or an apology and hang-up).
    Overflowed(OverflowKind),
    /// Offered; the caller asked from the queue to be called back, keeping
    /// their place (the request is followed by the callback figures).
    CallbackRequested,
    /// Offered; ended by a technical cause before anyone answered (no RTP
    /// from the caller, maximum duration, a driver failure).
    Failed,
}

impl Disposition {
    /// Whether the call counts as offered to the practice (it reached the
    /// open practice: the engine answered with its greeting).
    pub fn offered(self) -> bool {
        !matches!(self, Disposition::Closed | Disposition::Unanswered)
    }

    /// The phase of an abandon.
    pub fn abandon_phase(self) -> Option<AbandonPhase> {
        match self {
            Disposition::Abandoned(p) => Some(p),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_have_stable_names_and_indices() {
        for (i, p) in AbandonPhase::ALL.iter().enumerate() {
            assert_eq!(p.index(), i);
            assert_eq!(
                serde_json::to_value(p).ok(),
                Some(serde_json::Value::String(p.as_str().into()))
            );
        }
    }

    #[test]
    fn only_calls_that_reached_the_open_practice_are_offered() {
        assert!(!Disposition::Closed.offered());
        assert!(!Disposition::Unanswered.offered());
        for d in [
            Disposition::Answered,
            Disposition::Abandoned(AbandonPhase::Greeting),
            Disposition::Overflowed(OverflowKind::Voicemail),
            Disposition::CallbackRequested,
            Disposition::Failed,
        ] {
            assert!(d.offered(), "{d:?}");
        }
        assert_eq!(
            Disposition::Abandoned(AbandonPhase::Triage).abandon_phase(),
            Some(AbandonPhase::Triage)
        );
        assert_eq!(Disposition::Answered.abandon_phase(), None);
    }
}
