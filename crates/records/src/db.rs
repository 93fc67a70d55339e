//! SQLite schema, connections, inserts, purge and row decoding.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OpenFlags, Row, TransactionBehavior};
use sha2::{Digest, Sha256};

use crate::state::{AgentStateRow, RegistrationRow};
use crate::types::{
    CallRecord, CallbackRequest, CallbackState, CallbackStatus, QueueEvent, RtpCounters,
    StoredCallback, TriageChoice,
};
use crate::RecordsError;

/// Schema version written by this build.
pub(crate) const SCHEMA_VERSION: i64 = 8;

/// How long a reader connection waits for a lock held by another
/// connection (the writer's is [`RecordsConfig::busy_timeout`](crate::RecordsConfig::busy_timeout)).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Version 1 of the schema (frozen: released databases hold exactly this;
/// change the schema with a new step in [`MIGRATIONS`]). Timestamps are UTC
/// RFC 3339 text with microseconds and a `Z` suffix (fixed width, so text
/// order is time order and SQLite's date functions understand them).
const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS calls (
    call_id            TEXT PRIMARY KEY NOT NULL,
    sip_call_id        TEXT NOT NULL,
    practice_id        TEXT NOT NULL,
    trunk              TEXT NOT NULL,
    caller             TEXT,
    caller_hashed      INTEGER NOT NULL,
    called             TEXT,
    identified_by      TEXT,
    received_at        TEXT NOT NULL,
    engine_answered_at TEXT,
    queued_at          TEXT,
    first_offered_at   TEXT,
    agent_answered_at  TEXT,
    ended_at           TEXT,
    agent              TEXT,
    outcome            TEXT NOT NULL,
    abandon_phase      TEXT,
    wait_secs          REAL,
    talk_secs          REAL,
    triage_digit       TEXT,
    triage_label       TEXT,
    overflow_target    TEXT,
    end_reason         TEXT,
    offers             INTEGER NOT NULL,
    rtp_packets_in     INTEGER,
    rtp_packets_out    INTEGER,
    rtp_packets_lost   INTEGER
);
CREATE INDEX IF NOT EXISTS calls_practice_received ON calls (practice_id, received_at);
CREATE INDEX IF NOT EXISTS calls_received ON calls (received_at);
CREATE INDEX IF NOT EXISTS calls_caller ON calls (caller);

CREATE TABLE IF NOT EXISTS queue_events (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    call_id     TEXT,
    practice_id TEXT,
    kind        TEXT NOT NULL,
    agent       TEXT,
    detail      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_events_call ON queue_events (call_id, at);
CREATE INDEX IF NOT EXISTS queue_events_practice_at ON queue_events (practice_id, at);
CREATE INDEX IF NOT EXISTS queue_events_at ON queue_events (at);
";

/// Version 2: callback requests. `number` is in clear on purpose (see
/// [`CallbackRequest`]). The first index serves the per-practice lists of
/// pending requests, the second the retention purge and the all-practices
/// list. (Version 6 rebuilds this table with more columns: see
/// [`SCHEMA_V6`](crate::callbacks::SCHEMA_V6).)
const SCHEMA_V2: &str = "
CREATE TABLE IF NOT EXISTS callbacks (
    id           INTEGER PRIMARY KEY,
    requested_at TEXT NOT NULL,
    call_id      TEXT NOT NULL,
    practice_id  TEXT NOT NULL,
    number       TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'pending',
    handled_at   TEXT,
    handled_by   TEXT
);
CREATE INDEX IF NOT EXISTS callbacks_practice_status_requested
    ON callbacks (practice_id, status, requested_at);
CREATE INDEX IF NOT EXISTS callbacks_requested ON callbacks (requested_at);
";

/// Schema steps: `MIGRATIONS[i]` takes a database from version `i` to
/// version `i + 1`. A fresh database runs them all.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    SCHEMA_V1,
    SCHEMA_V2,
    crate::state::SCHEMA_V3,
    crate::audit::SCHEMA_V4,
    crate::outbound::SCHEMA_V5,
    crate::callbacks::SCHEMA_V6,
    crate::figures::SCHEMA_V7,
    crate::voicemail::SCHEMA_V8,
];

/// Columns of `calls`, in the order used by inserts and selects.
pub(crate) const CALL_COLUMNS: &str = "call_id, sip_call_id, practice_id, trunk, caller, \
    caller_hashed, called, identified_by, received_at, engine_answered_at, queued_at, \
    first_offered_at, agent_answered_at, ended_at, agent, outcome, abandon_phase, wait_secs, \
    talk_secs, triage_digit, triage_label, overflow_target, end_reason, offers, \
    rtp_packets_in, rtp_packets_out, rtp_packets_lost";

/// Columns of `queue_events` selected by the readers.
pub(crate) const EVENT_COLUMNS: &str = "at, call_id, practice_id, kind, agent, detail";

/// Columns of `callbacks` selected by the legacy reader
/// ([`StoredCallback`]).
pub(crate) const CALLBACK_COLUMNS: &str =
    "id, requested_at, call_id, practice_id, number, status, handled_at, handled_by";

/// Text form of a timestamp as stored.
pub(crate) fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// `sha256(salt || number)` as lowercase hex: what the store keeps instead
/// of a caller number when hashing is on.
pub fn hash_caller(salt: &str, number: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(number.as_bytes());
    hex::encode(h.finalize())
}

/// What to do with caller numbers before they reach the disk.
#[derive(Clone)]
pub(crate) struct CallerPolicy {
    /// `Some(salt)` to hash, `None` to store numbers in clear.
    pub(crate) salt: Option<String>,
}

impl CallerPolicy {
    /// The stored form of `number`.
    pub(crate) fn apply(&self, number: &str) -> String {
        match &self.salt {
            Some(salt) => hash_caller(salt, number),
            None => number.to_owned(),
        }
    }

    /// Whether numbers are hashed.
    pub(crate) fn hashing(&self) -> bool {
        self.salt.is_some()
    }
}

/// Opens (creating it if needed) the database for writing: WAL journal,
/// `synchronous = NORMAL`, schema created or checked; `busy_timeout` is how
/// long a statement waits for another connection's lock.
pub(crate) fn open_writer(path: &Path, busy_timeout: Duration) -> Result<Connection, RecordsError> {
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(busy_timeout)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(RecordsError::NotWal(mode));
    }
    // In WAL mode NORMAL keeps the database consistent on power loss (the
    // last commits may be lost, never corrupted) and avoids an fsync per
    // transaction; a clean shutdown loses nothing.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Overwrite deleted content with zeros: rows removed by retention must
    // not linger in free pages of the file (personal data).
    conn.pragma_update(None, "secure_delete", "ON")?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// Opens the database read-only (for the admin side and tests).
pub(crate) fn open_reader(path: &Path) -> Result<Connection, RecordsError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let found = schema_version(&conn)?;
    match found {
        Some(v) if v <= SCHEMA_VERSION => Ok(conn),
        Some(v) => Err(RecordsError::UnsupportedSchema {
            found: v,
            supported: SCHEMA_VERSION,
        }),
        None => Err(RecordsError::Corrupt {
            column: "schema_version",
            message: "not a records database (no schema version)".into(),
        }),
    }
}

/// Highest version recorded in `schema_version`, `None` if the table is
/// missing or empty.
pub(crate) fn schema_version(conn: &Connection) -> Result<Option<i64>, RecordsError> {
    let has_table: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
        [],
        |r| r.get(0),
    )?;
    if has_table == 0 {
        return Ok(None);
    }
    Ok(conn.query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))?)
}

/// Creates the schema in a fresh database, or checks an existing one and
/// brings it up to [`SCHEMA_VERSION`] in place, one step of [`MIGRATIONS`]
/// at a time, recording each version applied. Everything happens in one
/// immediate transaction: a failed step leaves the database as it was, and
/// two processes opening the same old database migrate it once.
fn migrate(conn: &mut Connection) -> Result<(), RecordsError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version    INTEGER PRIMARY KEY NOT NULL,
             applied_at TEXT NOT NULL
         );",
    )?;
    let found = schema_version(&tx)?.unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(RecordsError::UnsupportedSchema {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    let done = usize::try_from(found)
        .map_err(|_| corrupt("schema_version", format!("negative version {found}")))?;
    let applied_at = ts(&Utc::now());
    for (version, step) in (1i64..).zip(MIGRATIONS).skip(done) {
        tx.execute_batch(step)?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (?1, ?2)",
            params![version, applied_at],
        )?;
        if found > 0 {
            tracing::info!(from = version - 1, to = version, "records schema migrated");
        }
    }
    tx.commit()?;
    Ok(())
}

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// One row waiting in the writer for its transaction.
pub(crate) enum PendingRow {
    Call(Box<CallRecord>),
    Event(Box<QueueEvent>),
    /// A callback request stored the legacy way (a new row, with a
    /// generated key).
    Callback(Box<CallbackRequest>),
    /// A callback request's state, replacing the row with the same key.
    CallbackState(Box<CallbackState>),
    AgentState(Box<AgentStateRow>),
    /// An agent's registrations, replacing those stored.
    Registrations(Box<(String, Vec<RegistrationRow>)>),
    Audit(Box<crate::AuditEntry>),
    /// An outbound call, replacing an earlier row with the same id.
    Outbound(Box<crate::OutboundRecord>),
    /// A voicemail delivery's state, replacing the row with the same call
    /// id.
    Voicemail(Box<crate::VoicemailDeliveryRow>),
}

/// Whether a failed insert is the store's fault (retry the same rows
/// later) or the rows' own (retrying them can never succeed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureKind {
    /// Locked, busy, read-only, I/O error, disk full, cannot open, corrupt,
    /// missing table...: the same rows will go in once the store is fixed.
    Store,
    /// A value the database refuses (constraint, too big, type mismatch)
    /// or that cannot be bound: only this row is at fault.
    Row,
}

/// Classifies an insert error (see [`FailureKind`]).
pub(crate) fn failure_kind(e: &rusqlite::Error) -> FailureKind {
    use rusqlite::ErrorCode as C;
    match e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            C::ConstraintViolation | C::TooBig | C::TypeMismatch | C::ParameterOutOfRange => {
                FailureKind::Row
            }
            _ => FailureKind::Store,
        },
        rusqlite::Error::ToSqlConversionFailure(_)
        | rusqlite::Error::InvalidParameterCount(..)
        | rusqlite::Error::InvalidParameterName(_) => FailureKind::Row,
        _ => FailureKind::Store,
    }
}

/// The insert statements of one transaction, prepared on first use.
struct Inserts<'t> {
    tx: &'t Connection,
    calls: Option<rusqlite::Statement<'t>>,
    events: Option<rusqlite::Statement<'t>>,
    callbacks: Option<rusqlite::Statement<'t>>,
    callback_states: Option<rusqlite::Statement<'t>>,
    outbound: Option<rusqlite::Statement<'t>>,
}

fn prepared<'a, 't>(
    slot: &'a mut Option<rusqlite::Statement<'t>>,
    tx: &'t Connection,
    sql: &str,
) -> Result<&'a mut rusqlite::Statement<'t>, rusqlite::Error> {
    if slot.is_none() {
        *slot = Some(tx.prepare(sql)?);
    }
    // Just filled: never `None`.
    slot.as_mut().ok_or(rusqlite::Error::InvalidQuery)
}

impl<'t> Inserts<'t> {
    /// Statements of the transaction `tx` (a `Transaction` derefs to its
    /// connection).
    fn new(tx: &'t Connection) -> Self {
        Inserts {
            tx,
            calls: None,
            events: None,
            callbacks: None,
            callback_states: None,
            outbound: None,
        }
    }

    fn insert(&mut self, row: &PendingRow, policy: &CallerPolicy) -> Result<(), rusqlite::Error> {
        match row {
            PendingRow::Call(c) => {
                let sql = format!(
                    "INSERT OR REPLACE INTO calls ({CALL_COLUMNS}) VALUES \
                     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, \
                      ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27)"
                );
                let st = prepared(&mut self.calls, self.tx, &sql)?;
                let caller = c.caller.as_deref().map(|n| policy.apply(n));
                st.execute(params![
                    c.call_id,
                    c.sip_call_id,
                    c.practice_id,
                    c.trunk,
                    caller,
                    policy.hashing() && caller.is_some(),
                    c.called,
                    c.identified_by.map(|v| v.as_str()),
                    ts(&c.received_at),
                    c.engine_answered_at.as_ref().map(ts),
                    c.queued_at.as_ref().map(ts),
                    c.first_offered_at.as_ref().map(ts),
                    c.agent_answered_at.as_ref().map(ts),
                    c.ended_at.as_ref().map(ts),
                    c.agent,
                    c.outcome.as_str(),
                    c.abandon_phase.map(|v| v.as_str()),
                    c.wait_secs,
                    c.talk_secs,
                    c.triage.as_ref().map(|t| t.digit.as_str()),
                    c.triage.as_ref().map(|t| t.label.as_str()),
                    c.overflow_target,
                    c.end_reason,
                    c.offers,
                    c.rtp.map(|r| clamp_i64(r.packets_in)),
                    c.rtp.map(|r| clamp_i64(r.packets_out)),
                    c.rtp.map(|r| clamp_i64(r.packets_lost)),
                ])?;
            }
            PendingRow::Event(e) => {
                let st = prepared(
                    &mut self.events,
                    self.tx,
                    "INSERT INTO queue_events (at, call_id, practice_id, kind, agent, detail) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                st.execute(params![
                    ts(&e.at),
                    e.call_id,
                    e.practice_id,
                    e.kind.as_str(),
                    e.agent,
                    e.detail.to_string(),
                ])?;
            }
            PendingRow::AgentState(a) => crate::state::upsert_agent_state(self.tx, a)?,
            PendingRow::Audit(a) => crate::audit::insert(self.tx, a)?,
            PendingRow::Voicemail(v) => crate::voicemail::upsert(self.tx, v)?,
            PendingRow::Outbound(o) => {
                let st = prepared(&mut self.outbound, self.tx, &crate::outbound::insert_sql())?;
                crate::outbound::insert(st, o, policy)?;
            }
            PendingRow::Registrations(r) => {
                crate::state::replace_registrations(self.tx, &r.0, &r.1)?
            }
            PendingRow::Callback(c) => {
                let st = prepared(
                    &mut self.callbacks,
                    self.tx,
                    crate::callbacks::INSERT_REQUEST_SQL,
                )?;
                crate::callbacks::insert_request(st, c)?;
            }
            PendingRow::CallbackState(c) => {
                let st = prepared(
                    &mut self.callback_states,
                    self.tx,
                    &crate::callbacks::upsert_sql(),
                )?;
                crate::callbacks::upsert(st, c)?;
            }
        }
        Ok(())
    }
}

/// Inserts `rows` in one transaction: all or none. Calls replace an
/// earlier row with the same `call_id`, outbound calls one with the same
/// `id`, callback states one with the same `key`. Callback numbers are stored as given: `policy` applies to
/// `calls.caller` and `outbound_calls.destination` only.
pub(crate) fn insert_rows<'r>(
    conn: &mut Connection,
    rows: impl IntoIterator<Item = &'r PendingRow>,
    policy: &CallerPolicy,
) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction()?;
    {
        let mut ins = Inserts::new(&tx);
        for row in rows {
            ins.insert(row, policy)?;
        }
    }
    tx.commit()
}

/// Identity of a file on disk (device and inode), to notice that the
/// database file was deleted or replaced under an open connection (which
/// would otherwise go on writing, successfully, into a file nobody can
/// open any more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId {
    #[cfg(unix)]
    dev: u64,
    #[cfg(unix)]
    ino: u64,
}

/// The identity of the file at `path` (`Ok(None)` where the platform has
/// no inode numbers).
pub(crate) fn file_id(path: &Path) -> std::io::Result<Option<FileId>> {
    let meta = std::fs::metadata(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Ok(Some(FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        Ok(None)
    }
}

/// Marks callback `id` handled by `agent` at `at`, if it is still pending
/// (not while an attempt is in progress); `agent` and `completed_at` follow
/// `handled_by` and `handled_at`. Returns whether a row changed.
pub(crate) fn mark_callback_handled(
    conn: &Connection,
    id: i64,
    agent: &str,
    at: &DateTime<Utc>,
) -> Result<bool, RecordsError> {
    let n = conn.execute(
        "UPDATE callbacks SET status = ?1, handled_at = ?2, handled_by = ?3, \
         completed_at = ?2, agent = ?3 WHERE id = ?4 AND status = ?5",
        params![
            CallbackStatus::Handled.as_str(),
            ts(at),
            agent,
            id,
            CallbackStatus::Pending.as_str(),
        ],
    )?;
    Ok(n > 0)
}

/// Rows deleted by a purge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Call records deleted.
    pub calls: u64,
    /// Queue events deleted.
    pub events: u64,
    /// Callback requests deleted (closed ones only: an open request is
    /// never purged).
    pub callbacks: u64,
    /// Outbound call records deleted.
    pub outbound: u64,
}

impl Purged {
    /// Rows deleted, all tables together (the audit log, purged on its own
    /// retention, is not counted).
    pub fn total(&self) -> u64 {
        self.calls + self.events + self.callbacks + self.outbound
    }
}

/// Deletes calls received, events that happened, closed callbacks
/// requested and outbound calls started strictly before `cutoff` (open
/// callbacks stay, whatever their age).
pub(crate) fn purge(conn: &mut Connection, cutoff: DateTime<Utc>) -> Result<Purged, RecordsError> {
    let cutoff = ts(&cutoff);
    let tx = conn.transaction()?;
    let calls = tx.execute("DELETE FROM calls WHERE received_at < ?1", [&cutoff])?;
    let events = tx.execute("DELETE FROM queue_events WHERE at < ?1", [&cutoff])?;
    let callbacks = crate::callbacks::purge(&tx, &cutoff)?;
    let outbound = crate::outbound::purge(&tx, &cutoff)?;
    // Closed voicemail deliveries go with the calls (not counted apart).
    crate::voicemail::purge(&tx, &cutoff)?;
    tx.commit()?;
    Ok(Purged {
        calls: calls as u64,
        events: events as u64,
        callbacks,
        outbound,
    })
}

pub(crate) fn corrupt(column: &'static str, message: impl ToString) -> RecordsError {
    RecordsError::Corrupt {
        column,
        message: message.to_string(),
    }
}

pub(crate) fn parse_ts(column: &'static str, s: &str) -> Result<DateTime<Utc>, RecordsError> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| corrupt(column, format!("`{s}`: {e}")))
}

pub(crate) fn opt_ts(
    row: &Row<'_>,
    idx: usize,
    column: &'static str,
) -> Result<Option<DateTime<Utc>>, RecordsError> {
    row.get::<_, Option<String>>(idx)?
        .map(|s| parse_ts(column, &s))
        .transpose()
}

pub(crate) fn opt_enum<T: std::str::FromStr<Err = crate::UnknownValue>>(
    row: &Row<'_>,
    idx: usize,
    column: &'static str,
) -> Result<Option<T>, RecordsError> {
    row.get::<_, Option<String>>(idx)?
        .map(|s| s.parse::<T>().map_err(|e| corrupt(column, e)))
        .transpose()
}

fn opt_u64(row: &Row<'_>, idx: usize, column: &'static str) -> Result<Option<u64>, RecordsError> {
    row.get::<_, Option<i64>>(idx)?
        .map(|v| u64::try_from(v).map_err(|_| corrupt(column, format!("negative value {v}"))))
        .transpose()
}

/// Decodes a row selected with [`CALL_COLUMNS`].
pub(crate) fn decode_call(row: &Row<'_>) -> Result<CallRecord, RecordsError> {
    let received: String = row.get(8)?;
    let outcome: String = row.get(15)?;
    let offers: i64 = row.get(23)?;
    let triage = match (
        row.get::<_, Option<String>>(19)?,
        row.get::<_, Option<String>>(20)?,
    ) {
        (None, None) => None,
        (digit, label) => Some(TriageChoice {
            digit: digit.unwrap_or_default(),
            label: label.unwrap_or_default(),
        }),
    };
    let rtp = match (
        opt_u64(row, 24, "rtp_packets_in")?,
        opt_u64(row, 25, "rtp_packets_out")?,
        opt_u64(row, 26, "rtp_packets_lost")?,
    ) {
        (None, None, None) => None,
        (i, o, l) => Some(RtpCounters {
            packets_in: i.unwrap_or(0),
            packets_out: o.unwrap_or(0),
            packets_lost: l.unwrap_or(0),
        }),
    };
    Ok(CallRecord {
        call_id: row.get(0)?,
        sip_call_id: row.get(1)?,
        practice_id: row.get(2)?,
        trunk: row.get(3)?,
        caller: row.get(4)?,
        called: row.get(6)?,
        identified_by: opt_enum(row, 7, "identified_by")?,
        received_at: parse_ts("received_at", &received)?,
        engine_answered_at: opt_ts(row, 9, "engine_answered_at")?,
        queued_at: opt_ts(row, 10, "queued_at")?,
        first_offered_at: opt_ts(row, 11, "first_offered_at")?,
        agent_answered_at: opt_ts(row, 12, "agent_answered_at")?,
        ended_at: opt_ts(row, 13, "ended_at")?,
        agent: row.get(14)?,
        outcome: outcome.parse().map_err(|e| corrupt("outcome", e))?,
        abandon_phase: opt_enum(row, 16, "abandon_phase")?,
        wait_secs: row.get(17)?,
        talk_secs: row.get(18)?,
        triage,
        overflow_target: row.get(21)?,
        end_reason: row.get(22)?,
        offers: u32::try_from(offers)
            .map_err(|_| corrupt("offers", format!("out of range: {offers}")))?,
        rtp,
    })
}

/// Decodes a row selected with [`EVENT_COLUMNS`].
pub(crate) fn decode_event(row: &Row<'_>) -> Result<QueueEvent, RecordsError> {
    let at: String = row.get(0)?;
    let kind: String = row.get(3)?;
    let detail: String = row.get(5)?;
    Ok(QueueEvent {
        at: parse_ts("at", &at)?,
        call_id: row.get(1)?,
        practice_id: row.get(2)?,
        kind: kind.parse().map_err(|e| corrupt("kind", e))?,
        agent: row.get(4)?,
        detail: serde_json::from_str(&detail).map_err(|e| corrupt("detail", e))?,
    })
}

/// Decodes a row selected with [`CALLBACK_COLUMNS`].
pub(crate) fn decode_callback(row: &Row<'_>) -> Result<StoredCallback, RecordsError> {
    let requested_at: String = row.get(1)?;
    let status: String = row.get(5)?;
    Ok(StoredCallback {
        id: row.get(0)?,
        request: CallbackRequest {
            requested_at: parse_ts("requested_at", &requested_at)?,
            call_id: row.get(2)?,
            practice_id: row.get(3)?,
            number: row.get(4)?,
        },
        status: status.parse().map_err(|e| corrupt("status", e))?,
        handled_at: opt_ts(row, 6, "handled_at")?,
        handled_by: row.get(7)?,
    })
}
