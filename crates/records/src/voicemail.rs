//! Voicemail messages on their way to the practice by e-mail: one row per
//! message in `voicemail_deliveries`, keyed by the call id, written at
//! each step of its delivery (insert or replace by key), read back at
//! start-up to resume the pending ones, purged by retention once closed.
//!
//! The caller's number is kept in clear while the message is pending (the
//! e-mail must carry it: that is what the practice expects) and cleared
//! when the delivery closes (delivered or expired), whatever the writer
//! passes.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, Row};

use crate::db::{corrupt, opt_ts, parse_ts, ts};
use crate::RecordsError;

/// Version 8 of the schema: the voicemail delivery queue. Indexes: the
/// pending ones in queue order (start-up), and the retention purge.
pub(crate) const SCHEMA_V8: &str = "
CREATE TABLE IF NOT EXISTS voicemail_deliveries (
    call_id         TEXT PRIMARY KEY NOT NULL,
    practice_id     TEXT NOT NULL,
    practice_name   TEXT NOT NULL,
    timezone        TEXT NOT NULL,
    recipients      TEXT NOT NULL,
    wav_path        TEXT NOT NULL,
    caller          TEXT,
    recorded_at     TEXT NOT NULL,
    duration_secs   REAL NOT NULL,
    triage          TEXT,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    queued_at       TEXT NOT NULL,
    next_attempt_at TEXT,
    last_attempt_at TEXT,
    last_error      TEXT,
    closed_at       TEXT
);
CREATE INDEX IF NOT EXISTS voicemail_deliveries_status_queued
    ON voicemail_deliveries (status, queued_at);
CREATE INDEX IF NOT EXISTS voicemail_deliveries_queued ON voicemail_deliveries (queued_at);
";

/// The status of a delivery still to be made.
pub const PENDING: &str = "pending";

/// One voicemail message and where its delivery stands, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct VoicemailDeliveryRow {
    /// The engine's call id: the key.
    pub call_id: String,
    /// The practice's id.
    pub practice_id: String,
    /// The practice's name (for the e-mail's subject).
    pub practice_name: String,
    /// The practice's time zone (IANA name).
    pub timezone: String,
    /// The e-mail addresses.
    pub recipients: Vec<String>,
    /// The WAV file.
    pub wav_path: String,
    /// The caller's number (`None`: withheld, or the delivery is closed).
    pub caller: Option<String>,
    /// When the message was recorded.
    pub recorded_at: DateTime<Utc>,
    /// Its length in seconds.
    pub duration_secs: f64,
    /// The caller's triage choice, as shown in the e-mail.
    pub triage: Option<String>,
    /// `pending`, `delivered` or `expired`.
    pub status: String,
    /// Attempts started.
    pub attempts: u32,
    /// When it entered the delivery queue.
    pub queued_at: DateTime<Utc>,
    /// When it is due next (pending only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the last attempt started.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was delivered or expired.
    pub closed_at: Option<DateTime<Utc>>,
}

/// Columns, in the order of the upsert and the selects.
const COLUMNS: &str = "call_id, practice_id, practice_name, timezone, recipients, wav_path, \
    caller, recorded_at, duration_secs, triage, status, attempts, queued_at, next_attempt_at, \
    last_attempt_at, last_error, closed_at";

/// Inserts `r`, or replaces the row with the same call id.
pub(crate) fn upsert(conn: &Connection, r: &VoicemailDeliveryRow) -> rusqlite::Result<()> {
    let recipients = serde_json::to_string(&r.recipients)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    let caller = r.caller.as_deref().filter(|_| r.status == PENDING);
    let mut st = conn.prepare(&format!(
        "INSERT OR REPLACE INTO voicemail_deliveries ({COLUMNS}) VALUES \
         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
    ))?;
    st.execute(params![
        r.call_id,
        r.practice_id,
        r.practice_name,
        r.timezone,
        recipients,
        r.wav_path,
        caller,
        ts(&r.recorded_at),
        r.duration_secs,
        r.triage,
        r.status,
        r.attempts,
        ts(&r.queued_at),
        r.next_attempt_at.as_ref().map(ts),
        r.last_attempt_at.as_ref().map(ts),
        r.last_error,
        r.closed_at.as_ref().map(ts),
    ])?;
    Ok(())
}

/// Deletes the closed deliveries queued strictly before `cutoff`; pending
/// ones stay whatever their age. Returns how many were deleted.
pub(crate) fn purge(conn: &Connection, cutoff: &str) -> rusqlite::Result<u64> {
    Ok(conn.execute(
        "DELETE FROM voicemail_deliveries WHERE queued_at < ?1 AND status <> ?2",
        params![cutoff, PENDING],
    )? as u64)
}

/// Deliveries, the pending ones only when `pending_only`, in queue order,
/// at most `limit`; empty before version 8.
pub(crate) fn list(
    conn: &Connection,
    version: i64,
    pending_only: bool,
    limit: usize,
) -> Result<Vec<VoicemailDeliveryRow>, RecordsError> {
    if version < 8 {
        return Ok(Vec::new());
    }
    let filter = if pending_only {
        "WHERE status = ?1"
    } else {
        "WHERE ?1 = ?1"
    };
    let mut st = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM voicemail_deliveries {filter} ORDER BY queued_at, call_id LIMIT ?2"
    ))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows = st.query(params![PENDING, limit])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(decode(row)?);
    }
    Ok(out)
}

/// Decodes a row selected with [`COLUMNS`].
fn decode(row: &Row<'_>) -> Result<VoicemailDeliveryRow, RecordsError> {
    let recipients: String = row.get(4)?;
    let recorded_at: String = row.get(7)?;
    let attempts: i64 = row.get(11)?;
    let queued_at: String = row.get(12)?;
    Ok(VoicemailDeliveryRow {
        call_id: row.get(0)?,
        practice_id: row.get(1)?,
        practice_name: row.get(2)?,
        timezone: row.get(3)?,
        recipients: serde_json::from_str(&recipients).map_err(|e| corrupt("recipients", e))?,
        wav_path: row.get(5)?,
        caller: row.get(6)?,
        recorded_at: parse_ts("recorded_at", &recorded_at)?,
        duration_secs: row.get(8)?,
        triage: row.get(9)?,
        status: row.get(10)?,
        attempts: u32::try_from(attempts)
            .map_err(|_| corrupt("attempts", format!("out of range: {attempts}")))?,
        queued_at: parse_ts("queued_at", &queued_at)?,
        next_attempt_at: opt_ts(row, 13, "next_attempt_at")?,
        last_attempt_at: opt_ts(row, 14, "last_attempt_at")?,
        last_error: row.get(15)?,
        closed_at: opt_ts(row, 16, "closed_at")?,
    })
}
