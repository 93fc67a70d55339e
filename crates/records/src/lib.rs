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
//! * When the database cannot be written (locked by another connection,
//!   read-only or full file system, I/O error, file deleted or replaced
//!   under it, broken schema), the rows are **kept** in the writer's memory
//!   and retried with back-off
//!   ([`retry_min`](RecordsConfig::retry_min) doubling up to
//!   [`retry_max`](RecordsConfig::retry_max)); past
//!   [`backlog_capacity`](RecordsConfig::backlog_capacity) kept rows, new
//!   ones are dropped and counted. Nothing of this ever blocks the call
//!   path. The store's [`RecordsHealth`] ([`RecorderHandle::health`]) says
//!   `degraded`, since when and why, until a write succeeds again and
//!   the kept rows are written. One log line per change of state
//!   (`records.degraded`, `records.backlog_full`, `records.recovered`), none
//!   per row. A row the database refuses for its own content (a
//!   constraint) is not a store failure: it alone is dropped
//!   ([`RecorderStats::write_errors`]) and its batch written.
//! * [`Recorder::open`] fails if the database cannot be opened;
//!   [`Recorder::start`] starts degraded instead and retries opening, for
//!   a service that must run (and say so) without its store.
//! * [`Recorder::shutdown`] (or dropping the [`Recorder`]) stops accepting
//!   records, drains the channel and commits everything accepted before
//!   returning: nothing accepted is lost on a clean restart, unless the
//!   store is failing then (the kept rows are lost, counted and logged).
//! * Retention: rows older than [`retention`](RecordsConfig::retention) are
//!   purged at startup and every
//!   [`purge_interval`](RecordsConfig::purge_interval); the clock is
//!   injectable ([`Recorder::open_with_clock`]) and a purge can be requested
//!   explicitly ([`RecorderHandle::purge_older_than`]).
//! * Caller numbers are personal (health-related) data: with
//!   [`hash_callers`](RecordsConfig::hash_callers) the database only holds
//!   `sha256(salt || number)` in hex ([`hash_caller`]), which still lets the
//!   ops team count repeat callers. The destination of an outbound call
//!   ([`OutboundRecord::destination`]) is hashed the same way. Nothing else
//!   in a record is meant to hold personal data: keep caller numbers out of
//!   [`QueueEvent::detail`] and free-text fields (such as
//!   [`OutboundRecord::refusal`]).
//! * The one exception is [`CallbackRequest::number`], kept **in clear**
//!   even with hashing on: the patient asked to be called back, which needs
//!   the number, and that is the purpose they consented to. Retention (and
//!   `secure_delete`) applies to closed callback requests as to the rest;
//!   an open one (pending or dialling) is never purged, so that a patient
//!   waiting to be called back cannot vanish silently. Agents list them
//!   with [`RecordReader::callbacks`] and close them with
//!   [`RecorderHandle::mark_callback_handled`].
//! * A callback request has a lifecycle ([`CallbackState`]): the engine
//!   writes it at each step with [`RecorderHandle::record_callback_state`]
//!   (insert or replace by key), re-queues the open ones at start-up from
//!   [`RecordReader::pending_callbacks`] in their original order (a request
//!   a crash left `dialling` is pending again), and the admin side lists
//!   them with [`RecordReader::callbacks_list`] and
//!   [`RecordReader::callback_by_key`].
//! * Outbound calls placed by the agents are recorded with
//!   [`RecorderHandle::record_outbound`] (one [`OutboundRecord`] per call,
//!   written at the start and replaced at the end, like a call); their
//!   destination is hashed like a caller number. Agents and the admin API
//!   list them with [`RecordReader::outbound_calls`].
//! * [`RecordReader`] reads through its own read-only connection.
//!
//! # Schema (version 8)
//!
//! * `schema_version(version, applied_at)`
//! * `calls`: one row per [`CallRecord`], keyed by `call_id`; indexes on
//!   `(practice_id, received_at)`, `received_at`, `caller` and (since
//!   version 7) `(practice_id, outcome)`. Since version 7 every
//!   `abandoned` call has its [`AbandonPhase`] (`greeting`, `triage`,
//!   `route` are new; older rows lost before the queue are
//!   `before-queue`) and a caller gone before the engine answered is
//!   `unanswered`, not `abandoned`: [`RecordReader::practice_figures`]
//!   counts a practice's calls as the metrics do.
//! * `queue_events`: one row per [`QueueEvent`] (`detail` as JSON text);
//!   indexes on `(call_id, at)`, `(practice_id, at)` and `at`.
//! * `callbacks` (since version 2): one row per [`CallbackRequest`], with
//!   `status` (`pending`/`handled`), `handled_at` and `handled_by`; indexes
//!   on `(practice_id, status, requested_at)` and `requested_at`. Rebuilt
//!   in version 6 with the [`CallbackState`] columns (`key`, `origin`,
//!   `joined_at`, `priority`, `triage_digit`, `deadline_at`, `attempts`,
//!   `next_attempt_at`, `last_attempt_at`, `last_result`, `agent`,
//!   `completed_at`, `outbound_id`) and the statuses of
//!   [`CallbackStatus`]; more indexes on `(status, practice_id, joined_at)`
//!   and, unique, on `key`. Rows of version 5 became `overflow` requests
//!   keyed `legacy-<id>`, placed at their request time, due one hour later.
//!
//! * `agent_states` and `registrations` (since version 3): what must
//!   survive a crash besides the calls (see the `state` module).
//! * `audit` (since version 4): who did what ([`AuditEntry`]), with its
//!   own retention.
//! * `outbound_calls` (since version 5): one row per [`OutboundRecord`],
//!   keyed by `id`, with `direction` always `outbound` and
//!   `destination_hashed`; indexes on `(practice_id, started_at)`,
//!   `started_at` and `(agent, started_at)`.
//! * `voicemail_deliveries` (since version 8): one row per
//!   [`VoicemailDeliveryRow`], keyed by `call_id`: a voicemail message on
//!   its way to the practice by e-mail (status `pending`, `delivered`,
//!   `expired`, attempts, next try). The engine writes each step with
//!   [`RecorderHandle::record_voicemail_delivery`] and resumes the pending
//!   ones at start-up from [`RecordReader::pending_voicemail_deliveries`].
//!   The caller's number is kept while pending only. A pending row is
//!   never purged; closed ones go with the calls' retention.
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

mod audit;
mod callbacks;
mod config;
mod db;
mod error;
mod figures;
mod health;
mod outbound;
mod reader;
mod recorder;
mod state;
mod types;
mod voicemail;

#[cfg(test)]
mod tests;

pub use audit::AuditEntry;
pub use config::RecordsConfig;
pub use db::{hash_caller, Purged};
pub use error::RecordsError;
pub use figures::{AgentFigures, PracticeFigures};
pub use health::{RecordsHealth, RecordsState, WriteFailure};
pub use reader::{CallFilter, RecordReader};
pub use recorder::{Clock, Recorder, RecorderHandle, RecorderStats};
pub use state::{AgentStateRow, RegistrationRow};
pub use types::{
    AbandonPhase, CallRecord, CallbackOrigin, CallbackRequest, CallbackResult, CallbackState,
    CallbackStatus, IdentifiedBy, OutboundOrigin, OutboundOutcome, OutboundRecord, Outcome,
    QueueEvent, QueueEventKind, RtpCounters, StoredCallback, TriageChoice, UnknownValue,
};
pub use voicemail::VoicemailDeliveryRow;
