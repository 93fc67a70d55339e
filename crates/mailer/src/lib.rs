//! Voicemail messages e-mailed to the practices, as pure logic.
//!
//! A caller leaves a voicemail message; the practice gets it by e-mail,
//! with the WAV attached, the caller's number, the time (in the practice's
//! time zone), the triage choice and the duration. Mail servers fail: the
//! message is then tried again with back-off, and nothing is forgotten
//! until it was delivered or it expired.
//!
//! Two parts, neither touching a socket, a clock or a file:
//!
//! - [`queue`]: the [`DeliveryQueue`], **one per engine**, driven by
//!   `(input, now)` like the other sans-IO cores (`handle`,
//!   `handle_timeout`, `poll_timeout`, `poll_output`): every pending
//!   message, its attempts, its next try and its expiry. It asks the
//!   driver to [`Output::Send`] a message (one attempt at a time per
//!   message), to [`Output::Save`] each change (the engine writes it to
//!   the records store, so that a restart resumes where it stopped) and
//!   reports each [`Output::Outcome`] for the metrics.
//! - [`letter`]: the French subject and body of the e-mail
//!   (« Nouveau message vocal — Cabinet du Dr Martin ») and the name of
//!   the attached WAV.
//!
//! How the engine drives them:
//!
//! 1. **Recorded**: the call's voicemail WAV is on disk: the driver feeds
//!    [`queue::Input::New`].
//! 2. **Send**: for each [`Output::Send`], the driver builds the e-mail
//!    with [`letter::compose`] and sends it (SMTP), then feeds
//!    [`queue::Input::Sent`] or [`queue::Input::Failed`].
//! 3. **Wait**: it sleeps until [`DeliveryQueue::poll_timeout`] and calls
//!    [`DeliveryQueue::handle_timeout`]: retries and expiries happen there.
//! 4. **Restart**: every [`Output::Save`] is written; at start-up the
//!    driver feeds each pending delivery back with
//!    [`queue::Input::Restore`].
//!
//! The WAV file itself is never deleted here: the queue only decides
//! when to send and when to stop trying.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod letter;
pub mod queue;

pub use letter::{compose, Letter};
pub use queue::{Delivery, DeliveryQueue, DeliveryResult, Input, Output, Policy, Status};

use std::path::PathBuf;

use chrono::{DateTime, Utc};

/// One voicemail message to deliver: everything the e-mail says, kept
/// with the delivery so that it can be sent after a restart without the
/// call.
#[derive(Debug, Clone, PartialEq)]
pub struct VoicemailMessage {
    /// The engine's call id (the call record's `call_id`): the delivery's
    /// key.
    pub call_id: String,
    /// The practice's id.
    pub practice_id: String,
    /// The practice's name, for the subject (« Cabinet du Dr Martin »).
    pub practice_name: String,
    /// The practice's time zone (IANA name such as `Europe/Paris`): the
    /// time in the e-mail is the practice's.
    pub timezone: String,
    /// The addresses of the practice's dialplan (`[voicemail] email`).
    pub recipients: Vec<String>,
    /// The recorded WAV.
    pub wav: PathBuf,
    /// The caller's number as presented (`None`: withheld). Personal data:
    /// it goes in the e-mail, never in a log line.
    pub caller: Option<String>,
    /// When the caller started the message.
    pub recorded_at: DateTime<Utc>,
    /// Length of the message, in seconds.
    pub duration_secs: f64,
    /// The caller's triage choice (« Urgence (touche 1) »), if the practice
    /// has a menu and the caller chose.
    pub triage: Option<String>,
}
