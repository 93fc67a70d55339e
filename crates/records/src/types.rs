//! The records themselves: one [`CallRecord`] per inbound call,
//! [`QueueEvent`]s for the queue event log, [`CallbackRequest`]s and the
//! [`CallbackState`] of each, one [`OutboundRecord`] per outbound call, and
//! the small enums they use.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Call detail record: everything the ops team needs to know about one call,
/// written once the call has ended (writing the same [`call_id`] again
/// replaces the earlier row, so a provisional record may be refined).
///
/// Timestamps are UTC and stored with microsecond precision (finer parts are
/// truncated). Fields that may be unknown (the call never got that far, or
/// the information was missing) are `Option`s.
///
/// `caller` is personal data: with
/// [`RecordsConfig::hash_callers`](crate::RecordsConfig::hash_callers) the
/// store keeps `sha256(salt || caller)` in hex instead of the number, and the
/// record read back carries that hash in `caller`.
///
/// [`call_id`]: CallRecord::call_id
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Our call id (unique key of the record).
    pub call_id: String,
    /// SIP `Call-ID` of the inbound leg.
    pub sip_call_id: String,
    /// Practice the call was routed to (empty if it could not be identified).
    pub practice_id: String,
    /// Name of the trunk the call came in on.
    pub trunk: String,
    /// Caller number: E.164 (`+33…`) when it could be normalised, else the
    /// raw user part; `None` for anonymous calls.
    pub caller: Option<String>,
    /// Called number: the practice number that identified the call.
    pub called: Option<String>,
    /// Which header or part of the INVITE the called number was taken from.
    pub identified_by: Option<IdentifiedBy>,
    /// When the INVITE was received.
    pub received_at: DateTime<Utc>,
    /// When the engine answered the caller (200 OK sent).
    pub engine_answered_at: Option<DateTime<Utc>>,
    /// When the call joined the queue.
    pub queued_at: Option<DateTime<Utc>>,
    /// When the call was first offered to an agent.
    pub first_offered_at: Option<DateTime<Utc>>,
    /// When an agent answered.
    pub agent_answered_at: Option<DateTime<Utc>>,
    /// When the call ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Username of the agent who answered, if any.
    pub agent: Option<String>,
    /// How the call ended.
    pub outcome: Outcome,
    /// Where the caller was when they hung up (set when `outcome` is
    /// [`Outcome::Abandoned`]).
    pub abandon_phase: Option<AbandonPhase>,
    /// Seconds waited in the queue before being answered, abandoning or
    /// overflowing.
    pub wait_secs: Option<f64>,
    /// Seconds of conversation with the agent.
    pub talk_secs: Option<f64>,
    /// The caller's choice in the triage menu, if the practice has one.
    pub triage: Option<TriageChoice>,
    /// Where the call overflowed to (number or pool), if it did.
    pub overflow_target: Option<String>,
    /// Free-form reason the call ended (`caller-hangup`, `agent-hangup`,
    /// `max-wait`, …).
    pub end_reason: Option<String>,
    /// How many times the call was offered to an agent.
    pub offers: u32,
    /// RTP packet counters of the caller leg, if media was set up.
    pub rtp: Option<RtpCounters>,
}

/// A choice made by the caller in a triage menu.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriageChoice {
    /// The DTMF digit pressed (`1`…`9`, `0`, `*`, `#`).
    pub digit: String,
    /// The label of that choice in the practice configuration.
    pub label: String,
}

/// RTP packet counters of a call's caller leg. Values above `i64::MAX`
/// (never reached in practice) are stored as `i64::MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RtpCounters {
    /// Packets received from the caller.
    pub packets_in: u64,
    /// Packets sent to the caller.
    pub packets_out: u64,
    /// Packets detected as lost (sequence gaps) on the inbound stream.
    pub packets_lost: u64,
}

/// One entry of the queue event log.
///
/// `detail` is a JSON value with the kind-specific data (wait, position,
/// reason, from/to state…). It must not contain personal data such as the
/// caller number: only [`CallRecord::caller`] is hashed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueEvent {
    /// When it happened (stored with microsecond precision).
    pub at: DateTime<Utc>,
    /// Our call id; `None` for events not about a call
    /// ([`QueueEventKind::AgentState`]).
    pub call_id: Option<String>,
    /// Practice of the call; `None` for events not about a practice.
    pub practice_id: Option<String>,
    /// What happened.
    pub kind: QueueEventKind,
    /// Agent username concerned, if any.
    pub agent: Option<String>,
    /// Kind-specific details as JSON (`Value::Null` when there are none).
    pub detail: serde_json::Value,
}

/// A patient's request to be called back, recorded when a call overflows to
/// "callback".
///
/// Unlike [`CallRecord::caller`], `number` is **always stored in clear**,
/// even with [`RecordsConfig::hash_callers`](crate::RecordsConfig::hash_callers)
/// on: calling the patient back is the very purpose the patient consented to
/// when asking for it, and a hash cannot be dialled. The number is used for
/// that purpose only; keep it out of logs and of the other tables.
///
/// Retention applies as to the other tables once the request is closed: a
/// closed request (any status but [`CallbackStatus::Pending`] and
/// [`CallbackStatus::Dialling`]) older than
/// [`RecordsConfig::retention`](crate::RecordsConfig::retention) (by
/// `requested_at`) is deleted and its number overwritten in the file
/// (`secure_delete`). An open request is never purged: a patient waiting to
/// be called back must not vanish silently, so close (or cancel) it.
///
/// Stored through [`RecorderHandle::record_callback`](crate::RecorderHandle::record_callback),
/// it becomes a [`CallbackState`] with origin [`CallbackOrigin::Overflow`],
/// a generated key and a deadline one hour after `requested_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackRequest {
    /// When the patient asked to be called back (stored with microsecond
    /// precision).
    pub requested_at: DateTime<Utc>,
    /// Our call id of the call that overflowed to callback.
    pub call_id: String,
    /// Practice the patient was calling.
    pub practice_id: String,
    /// Number to call back, in clear (E.164 when it could be normalised).
    pub number: String,
}

/// A [`CallbackRequest`] as stored, with its handling state (the legacy view
/// of a callback; [`CallbackState`] is the whole row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCallback {
    /// Row id, to pass to
    /// [`RecorderHandle::mark_callback_handled`](crate::RecorderHandle::mark_callback_handled).
    pub id: i64,
    /// The request itself.
    pub request: CallbackRequest,
    /// Where the request stands (pending, being dialled, closed and how).
    pub status: CallbackStatus,
    /// When it was marked [`CallbackStatus::Handled`].
    pub handled_at: Option<DateTime<Utc>>,
    /// Username of the agent who marked it [`CallbackStatus::Handled`].
    pub handled_by: Option<String>,
}

/// The whole lifecycle of a callback request, one row of `callbacks`
/// identified by [`key`](Self::key): what the engine writes at each step
/// (requested, offered and dialled, retried, closed) with
/// [`RecorderHandle::record_callback_state`](crate::RecorderHandle::record_callback_state)
/// and reads back at start-up with
/// [`RecordReader::pending_callbacks`](crate::RecordReader::pending_callbacks)
/// to re-queue the patients still waiting, in their original order.
///
/// Timestamps are UTC and stored with microsecond precision (finer parts are
/// truncated). `number` is stored **in clear**, whatever
/// [`RecordsConfig::hash_callers`](crate::RecordsConfig::hash_callers) says,
/// for the reasons given on [`CallbackRequest`]; the same retention rule
/// applies (an open request is never purged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackState {
    /// The engine's id of the request: the unique key of the row, which
    /// every later write replaces. Keys starting with `legacy-` are
    /// reserved for requests stored by
    /// [`RecorderHandle::record_callback`](crate::RecorderHandle::record_callback)
    /// and for those migrated from schema version 5 (`legacy-<row id>`).
    pub key: String,
    /// Whether the caller asked for it from the queue or the queue
    /// overflowed to it.
    pub origin: CallbackOrigin,
    /// Our call id of the call during which the patient asked.
    pub call_id: String,
    /// Practice the patient was calling.
    pub practice_id: String,
    /// Number to call back, in clear: E.164 (`+33…`) when it could be
    /// normalised.
    pub number: String,
    /// When the patient asked to be called back.
    pub requested_at: DateTime<Utc>,
    /// When the original call joined the queue: the patient's place, kept
    /// while they wait for the callback.
    pub joined_at: DateTime<Utc>,
    /// The dispatcher priority the call had (higher is served first).
    pub priority: i32,
    /// The digit the caller chose in the triage menu, if the practice has
    /// one.
    pub triage_digit: Option<String>,
    /// When the practice wants the patient called back by ("rappelé dans
    /// l'heure": one hour after the request, unless configured otherwise).
    pub deadline_at: DateTime<Utc>,
    /// Where the request stands.
    pub status: CallbackStatus,
    /// Dialling attempts made so far.
    pub attempts: u32,
    /// When the next attempt may be made after a failed one; `None` when
    /// the request may be offered to an agent now.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the last attempt started.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// How the last attempt went.
    pub last_result: Option<CallbackResult>,
    /// Username of the last agent who handled the request (offered,
    /// dialled, or closed it).
    pub agent: Option<String>,
    /// When the request was closed: for [`CallbackStatus::Completed`] the
    /// time the patient was reached (what the deadline is measured
    /// against), else when it failed, was cancelled or was marked handled.
    pub completed_at: Option<DateTime<Utc>>,
    /// Id of the [`OutboundRecord`] of the attempt that reached the patient
    /// (see [`OutboundRecord::id`]).
    pub outbound_id: Option<String>,
}

/// Record of one outbound call placed by a telesecretary (dialled from their
/// softphone, and later callbacks and transfers), stored in the
/// `outbound_calls` table with the direction `outbound`.
///
/// Like a [`CallRecord`], it is meant to be written when the call starts
/// (outcome [`OutboundOutcome::InProgress`]) and again when it ends: writing
/// the same [`id`] again replaces the earlier row. A row still in progress
/// when the engine stopped is closed as [`OutboundOutcome::Interrupted`] by
/// [`RecorderHandle::close_interrupted`](crate::RecorderHandle::close_interrupted).
///
/// Timestamps are UTC and stored with microsecond precision (finer parts are
/// truncated).
///
/// `destination` is personal data (a patient's number, most of the time):
/// with [`RecordsConfig::hash_callers`](crate::RecordsConfig::hash_callers)
/// the store keeps `sha256(salt || destination)` in hex instead, exactly as
/// for [`CallRecord::caller`], and the record read back carries that hash.
/// `destination_class` and `caller_id` (a practice number) stay in clear.
///
/// [`id`]: OutboundRecord::id
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundRecord {
    /// Our id of the outbound call (unique key of the record).
    pub id: String,
    /// SIP `Call-ID` of the agent's INVITE (the leg from the softphone).
    pub sip_call_id: String,
    /// What started the call: an agent dialling, a callback, a transfer.
    pub origin: OutboundOrigin,
    /// Username of the agent placing the call.
    pub agent: String,
    /// Practice the call was placed for; `None` when it was refused before
    /// a practice was known.
    pub practice_id: Option<String>,
    /// Calling number presented to the destination (a number of the
    /// practice), if one was chosen.
    pub caller_id: Option<String>,
    /// Number dialled: E.164 (`+33…`) or a short code (`15`); `None` if the
    /// dialled string could not be read as a number. Hashed in the store
    /// when callers are (see the type's documentation).
    pub destination: Option<String>,
    /// Class of the destination in the numbering plan (`mobile`, `fixed`,
    /// `emergency`, `premium`…), if it was classified.
    pub destination_class: Option<String>,
    /// When the agent's INVITE was received.
    pub started_at: DateTime<Utc>,
    /// When the destination answered.
    pub answered_at: Option<DateTime<Utc>>,
    /// When the call ended (or was refused).
    pub ended_at: Option<DateTime<Utc>>,
    /// How the call went.
    pub outcome: OutboundOutcome,
    /// Why the call was refused (set when `outcome` is
    /// [`OutboundOutcome::Refused`]): destination class not allowed, agent
    /// not logged in, unknown practice…
    pub refusal: Option<String>,
    /// Final SIP status the gateway answered with when the call failed
    /// (`486`, `503`…).
    pub status_code: Option<u16>,
    /// Seconds of conversation with the destination.
    pub talk_secs: Option<f64>,
}

/// Error returned when a stored enum value is not one this version knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} value `{value}`")]
pub struct UnknownValue {
    /// Which enum was being parsed.
    pub what: &'static str,
    /// The text that did not match.
    pub value: String,
}

macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $what:literal, $serde:literal {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = $serde)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The text stored in the database (same as the serde name).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue { what: $what, value: s.to_owned() }),
                }
            }
        }
    };
}

text_enum! {
    /// Where the called (practice) number was found in the INVITE.
    IdentifiedBy, "identified-by", "kebab-case" {
        /// `History-Info` header (the diverting number).
        HistoryInfo => "history-info",
        /// `Diversion` header.
        Diversion => "diversion",
        /// User part of the Request-URI.
        RequestUri => "request-uri",
        /// `To` header.
        To => "to",
    }
}

text_enum! {
    /// How a call ended.
    Outcome, "outcome", "kebab-case" {
        /// An agent answered.
        Answered => "answered",
        /// The caller hung up before an agent answered (offered to the
        /// practice; the phase is in [`CallRecord::abandon_phase`]).
        Abandoned => "abandoned",
        /// The call was sent to its overflow target.
        Overflowed => "overflowed",
        /// The caller asked to be called back from the queue and hung up:
        /// the call's place is kept by a callback request (its own row in
        /// `callbacks`, whose `call_id` is this call's).
        CallbackRequested => "callback-requested",
        /// The practice was closed (closed-hours prompt).
        Closed => "closed",
        /// The call was refused (unknown practice, untrusted source, …).
        Rejected => "rejected",
        /// A technical failure ended the call before anyone answered.
        Failed => "failed",
        /// The caller hung up while the engine let the call ring, before
        /// it answered: the practice's greeting was never heard, the call
        /// is not offered (records before schema version 7 said
        /// `abandoned`, end reason `caller-cancel`).
        Unanswered => "unanswered",
        /// The call is still going on (its record is updated as it goes).
        InProgress => "in-progress",
        /// The engine stopped (crash, kill) during the call; closed at the
        /// next start.
        Interrupted => "interrupted",
    }
}

text_enum! {
    /// Where an abandoned caller was when they hung up.
    AbandonPhase, "abandon phase", "kebab-case" {
        /// During the practice's greeting.
        Greeting => "greeting",
        /// In the triage menu.
        Triage => "triage",
        /// While the number of a direct-route triage option was ringing.
        Route => "route",
        /// Before joining the queue, greeting or triage not told apart:
        /// calls recorded before schema version 7 only.
        BeforeQueue => "before-queue",
        /// Waiting in the queue.
        Queue => "queue",
        /// While an agent's phone was ringing.
        Ringing => "ringing",
        /// In the callback menu (number read back or being typed), still
        /// queued.
        CallbackPrompt => "callback-prompt",
    }
}

text_enum! {
    /// Kind of a [`QueueEvent`].
    QueueEventKind, "queue event kind", "snake_case" {
        /// The call joined a queue.
        Entered => "entered",
        /// The call was offered to an agent.
        Offered => "offered",
        /// An agent answered the call.
        Answered => "answered",
        /// The caller hung up while queued or ringing.
        Abandoned => "abandoned",
        /// The call left the queue for its overflow target.
        Overflowed => "overflowed",
        /// Ring-no-answer: the agent did not pick up in time.
        Rona => "rona",
        /// The offer could not be delivered (agent unreachable, busy, …).
        OfferFailed => "offer_failed",
        /// An agent changed state (available, paused, logged out, …).
        AgentState => "agent_state",
    }
}

text_enum! {
    /// Where a callback request stands ([`CallbackState::status`],
    /// [`StoredCallback::status`]). [`Pending`](Self::Pending) and
    /// [`Dialling`](Self::Dialling) are open (see
    /// [`is_open`](Self::is_open)); the others are final.
    CallbackStatus, "callback status", "kebab-case" {
        /// Waiting for its turn in the queue, or for its next attempt.
        Pending => "pending",
        /// An attempt is in progress (after a crash, the request is pending
        /// again).
        Dialling => "dialling",
        /// The patient was reached.
        Completed => "completed",
        /// The attempts were exhausted, or the call was refused.
        Failed => "failed",
        /// Cancelled by an operator.
        Cancelled => "cancelled",
        /// Marked done by an operator without dialling (the patient called
        /// again, for instance).
        Handled => "handled",
    }
}

impl CallbackStatus {
    /// Whether a request in this status still waits for a callback
    /// ([`Pending`](Self::Pending) or [`Dialling`](Self::Dialling)): it is
    /// re-queued at start-up and never purged by retention.
    pub fn is_open(self) -> bool {
        matches!(self, CallbackStatus::Pending | CallbackStatus::Dialling)
    }
}

text_enum! {
    /// Why a callback request exists ([`CallbackState::origin`]).
    CallbackOrigin, "callback origin", "kebab-case" {
        /// The caller asked from the queue to be called back, keeping their
        /// place.
        Caller => "caller",
        /// The queue overflowed to a callback.
        Overflow => "overflow",
    }
}

text_enum! {
    /// How one attempt to call a patient back went
    /// ([`CallbackState::last_result`]). The texts are those of the
    /// matching [`OutboundOutcome`]s.
    CallbackResult, "callback result", "kebab-case" {
        /// The patient answered.
        Answered => "answered",
        /// The patient did not answer (ring timeout, unavailable).
        NoAnswer => "no-answer",
        /// The patient's line was busy.
        Busy => "busy",
        /// The gateway or the network failed the call.
        Failed => "failed",
        /// The engine refused to place the call (destination not allowed…):
        /// retrying cannot help.
        Refused => "refused",
    }
}

text_enum! {
    /// What started an [`OutboundRecord`].
    OutboundOrigin, "outbound origin", "kebab-case" {
        /// The agent dialled the number from their softphone.
        Agent => "agent",
        /// The agent called back a patient who asked for it (a
        /// [`CallbackState`]; see [`CallbackState::outbound_id`]).
        Callback => "callback",
        /// The agent transferred a call to an outside number.
        Transfer => "transfer",
    }
}

text_enum! {
    /// How an outbound call went.
    OutboundOutcome, "outbound outcome", "kebab-case" {
        /// The call is still going on (its record is updated as it goes).
        InProgress => "in-progress",
        /// The destination answered.
        Answered => "answered",
        /// The destination was busy.
        Busy => "busy",
        /// The destination did not answer (ring timeout, unavailable).
        NoAnswer => "no-answer",
        /// The gateway or the network failed the call (see
        /// [`OutboundRecord::status_code`]).
        Failed => "failed",
        /// The agent hung up before the destination answered.
        Cancelled => "cancelled",
        /// The engine refused to place the call (see
        /// [`OutboundRecord::refusal`]).
        Refused => "refused",
        /// The engine stopped (crash, kill) during the call; closed at the
        /// next start.
        Interrupted => "interrupted",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_texts_match_serde_and_parse_back() {
        fn check<T>(all: &[T])
        where
            T: Copy + fmt::Display + FromStr + Serialize + PartialEq + fmt::Debug,
        {
            for v in all {
                let text = v.to_string();
                let json = serde_json::to_string(v).unwrap_or_default();
                assert_eq!(json, format!("\"{text}\""));
                assert!(matches!(text.parse::<T>(), Ok(back) if back == *v));
            }
        }
        check(IdentifiedBy::ALL);
        check(Outcome::ALL);
        check(AbandonPhase::ALL);
        check(QueueEventKind::ALL);
        check(CallbackStatus::ALL);
        check(CallbackOrigin::ALL);
        check(CallbackResult::ALL);
        assert_eq!(CallbackResult::NoAnswer.as_str(), "no-answer");
        assert_eq!(CallbackStatus::Dialling.as_str(), "dialling");
        assert_eq!(
            CallbackStatus::ALL
                .iter()
                .filter(|s| s.is_open())
                .collect::<Vec<_>>(),
            [&CallbackStatus::Pending, &CallbackStatus::Dialling]
        );
        check(OutboundOrigin::ALL);
        check(OutboundOutcome::ALL);
        assert_eq!(OutboundOutcome::NoAnswer.as_str(), "no-answer");
        assert_eq!(OutboundOutcome::InProgress.as_str(), "in-progress");
        assert!("bogus".parse::<OutboundOrigin>().is_err());
        assert_eq!(QueueEventKind::OfferFailed.as_str(), "offer_failed");
        assert_eq!(IdentifiedBy::HistoryInfo.as_str(), "history-info");
        assert!("bogus".parse::<Outcome>().is_err());
    }
}
