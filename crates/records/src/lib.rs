//! Call detail records and the queue event log of Permanence, stored in a
//! local SQLite database, RGPD-aware.
//!
//! * [`Recorder::open`] opens (or creates) the database in WAL mode, creates
//!   the schema, applies retention and starts a dedicated writer **thread**.
//! * [`RecorderHandle::record_call`] / [`RecorderHandle::record_event`] /
//!   [`RecorderHandle::record_callback`] are what the call path uses: a
//!   `try_send` into a bounded channel, never blocking and never touching
//!   the disk, callable from async code. When the channel is full the record
//!   is dropped, counted ([`RecorderStats::dropped`]) and a rate-limited
//!   warning is logged.
//! * The writer commits in batches: as soon as
//!   [`batch_size`](RecordsConfig::batch_size) rows are pending, or
//!   [`flush_interval`](RecordsConfig::flush_interval) after the oldest
//!   pending row arrived.
//! * [`Recorder::shutdown`] (or dropping the [`Recorder`]) stops accepting
//!   records, drains the channel and commits everything accepted before
//!   returning: nothing accepted is lost on a clean restart.
//! * Retention: rows older than [`retention`](RecordsConfig::retention) are
//!   purged at startup and every
//!   [`purge_interval`](RecordsConfig::purge_interval); the clock is
//!   injectable ([`Recorder::open_with_clock`]) and a purge can be requested
//!   explicitly ([`RecorderHandle::purge_older_than`]).
//! * Caller numbers are personal (health-related) data: with
//!   [`hash_callers`](RecordsConfig::hash_callers) the database only holds
//!   `sha256(salt || number)` in hex ([`hash_caller`]), which still lets the
//!   ops team count repeat callers. Nothing else in a record is meant to
//!   hold personal data: keep caller numbers out of
//!   [`QueueEvent::detail`] and free-text fields.
//! * The one exception is [`CallbackRequest::number`], kept **in clear**
//!   even with hashing on: the patient asked to be called back, which needs
//!   the number, and that is the purpose they consented to. Retention (and
//!   `secure_delete`) applies to callback requests as to the rest. Agents
//!   list them with [`RecordReader::callbacks`] and close them with
//!   [`RecorderHandle::mark_callback_handled`].
//! * [`RecordReader`] reads through its own read-only connection.
//!
//! # Schema (version 2)
//!
//! * `schema_version(version, applied_at)`
//! * `calls`: one row per [`CallRecord`], keyed by `call_id`; indexes on
//!   `(practice_id, received_at)`, `received_at` and `caller`.
//! * `queue_events`: one row per [`QueueEvent`] (`detail` as JSON text);
//!   indexes on `(call_id, at)`, `(practice_id, at)` and `at`.
//! * `callbacks` (since version 2): one row per [`CallbackRequest`], with
//!   `status` (`pending`/`handled`), `handled_at` and `handled_by`; indexes
//!   on `(practice_id, status, requested_at)` and `requested_at`.
//!
//! Opening a database of an older version with [`Recorder::open`] migrates
//! it in place (in one transaction) and records each version applied in
//! `schema_version`; a database of a newer version is refused.
//!
//! Timestamps are stored as UTC RFC 3339 text with microseconds
//! (`2025-03-03T08:15:02.123456Z`): text order is time order and the
//! `sqlite3` shell's date functions work on them.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod db;
mod error;
mod reader;
mod recorder;
mod types;

#[cfg(test)]
mod tests;

pub use config::RecordsConfig;
pub use db::{hash_caller, Purged};
pub use error::RecordsError;
pub use reader::{CallFilter, RecordReader};
pub use recorder::{Clock, Recorder, RecorderHandle, RecorderStats};
pub use types::{
    AbandonPhase, CallRecord, CallbackRequest, CallbackStatus, IdentifiedBy, Outcome, QueueEvent,
    QueueEventKind, RtpCounters, StoredCallback, TriageChoice, UnknownValue,
};
