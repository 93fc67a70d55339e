//! Outbound calls placed by the telesecretaries: one row per call in
//! `outbound_calls`, written at the start and again at the end (insert or
//! replace by id), closed as `interrupted` after a crash, purged with the
//! calls, listed for the admin interface.

use rusqlite::{params, Connection, Row};

use crate::db::{corrupt, opt_ts, parse_ts, ts, CallerPolicy};
use crate::{OutboundOutcome, OutboundRecord, RecordsError};

/// Version 5 of the schema: outbound calls. `direction` is always
/// `outbound` (kept so that the table reads on its own, and for a future
/// view joining inbound and outbound calls). `destination` holds the hash
/// when `destination_hashed` is 1. The indexes serve the per-practice and
/// all-practices lists (newest first), the retention purge and the
/// per-agent lists.
pub(crate) const SCHEMA_V5: &str = "
CREATE TABLE IF NOT EXISTS outbound_calls (
    id                 TEXT PRIMARY KEY NOT NULL,
    sip_call_id        TEXT NOT NULL,
    direction          TEXT NOT NULL DEFAULT 'outbound',
    origin             TEXT NOT NULL,
    agent              TEXT NOT NULL,
    practice_id        TEXT,
    caller_id          TEXT,
    destination        TEXT,
    destination_hashed INTEGER NOT NULL,
    destination_class  TEXT,
    started_at         TEXT NOT NULL,
    answered_at        TEXT,
    ended_at           TEXT,
    outcome            TEXT NOT NULL,
    refusal            TEXT,
    status_code        INTEGER,
    talk_secs          REAL
);
CREATE INDEX IF NOT EXISTS outbound_calls_practice_started
    ON outbound_calls (practice_id, started_at);
CREATE INDEX IF NOT EXISTS outbound_calls_started ON outbound_calls (started_at);
CREATE INDEX IF NOT EXISTS outbound_calls_agent_started ON outbound_calls (agent, started_at);
";

/// Columns of `outbound_calls`, in the order used by inserts and selects
/// (`direction` is left to its default).
pub(crate) const OUTBOUND_COLUMNS: &str = "id, sip_call_id, origin, agent, practice_id, \
    caller_id, destination, destination_hashed, destination_class, started_at, answered_at, \
    ended_at, outcome, refusal, status_code, talk_secs";

/// The insert statement, replacing an earlier row with the same id.
pub(crate) fn insert_sql() -> String {
    format!(
        "INSERT OR REPLACE INTO outbound_calls ({OUTBOUND_COLUMNS}) VALUES \
         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
    )
}

/// Inserts (or replaces) `r` with the statement of [`insert_sql`], the
/// destination stored as `policy` says.
pub(crate) fn insert(
    st: &mut rusqlite::Statement<'_>,
    r: &OutboundRecord,
    policy: &CallerPolicy,
) -> rusqlite::Result<()> {
    let destination = r.destination.as_deref().map(|n| policy.apply(n));
    st.execute(params![
        r.id,
        r.sip_call_id,
        r.origin.as_str(),
        r.agent,
        r.practice_id,
        r.caller_id,
        destination,
        policy.hashing() && destination.is_some(),
        r.destination_class,
        ts(&r.started_at),
        r.answered_at.as_ref().map(ts),
        r.ended_at.as_ref().map(ts),
        r.outcome.as_str(),
        r.refusal,
        r.status_code,
        r.talk_secs,
    ])?;
    Ok(())
}

/// Closes the outbound calls a crash left `in-progress` as `interrupted`,
/// ending them at their last known time (an end already recorded, else the
/// answer, else the start); returns how many.
pub(crate) fn close_interrupted(conn: &Connection) -> rusqlite::Result<u64> {
    let n = conn.execute(
        "UPDATE outbound_calls SET outcome = ?1, \
         ended_at = COALESCE(ended_at, answered_at, started_at) \
         WHERE outcome = ?2",
        params![
            OutboundOutcome::Interrupted.as_str(),
            OutboundOutcome::InProgress.as_str()
        ],
    )?;
    Ok(n as u64)
}

/// Deletes the outbound calls started strictly before `cutoff` (formatted
/// with [`ts`]); returns how many.
pub(crate) fn purge(conn: &Connection, cutoff: &str) -> rusqlite::Result<u64> {
    Ok(conn.execute("DELETE FROM outbound_calls WHERE started_at < ?1", [cutoff])? as u64)
}

/// Outbound calls of one practice or of all, most recently started first
/// (id order on ties), at most `limit`.
pub(crate) fn read(
    conn: &Connection,
    practice: Option<&str>,
    limit: usize,
) -> Result<Vec<OutboundRecord>, RecordsError> {
    let mut st = conn.prepare(&format!(
        "SELECT {OUTBOUND_COLUMNS} FROM outbound_calls \
         WHERE (?1 IS NULL OR practice_id = ?1) \
         ORDER BY started_at DESC, id LIMIT ?2"
    ))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows = st.query(params![practice, limit])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(decode(row)?);
    }
    Ok(out)
}

/// Decodes a row selected with [`OUTBOUND_COLUMNS`].
fn decode(row: &Row<'_>) -> Result<OutboundRecord, RecordsError> {
    let origin: String = row.get(2)?;
    let started_at: String = row.get(9)?;
    let outcome: String = row.get(12)?;
    let status_code = row
        .get::<_, Option<i64>>(14)?
        .map(|v| u16::try_from(v).map_err(|_| corrupt("status_code", format!("out of range: {v}"))))
        .transpose()?;
    Ok(OutboundRecord {
        id: row.get(0)?,
        sip_call_id: row.get(1)?,
        origin: origin.parse().map_err(|e| corrupt("origin", e))?,
        agent: row.get(3)?,
        practice_id: row.get(4)?,
        caller_id: row.get(5)?,
        destination: row.get(6)?,
        destination_class: row.get(8)?,
        started_at: parse_ts("started_at", &started_at)?,
        answered_at: opt_ts(row, 10, "answered_at")?,
        ended_at: opt_ts(row, 11, "ended_at")?,
        outcome: outcome.parse().map_err(|e| corrupt("outcome", e))?,
        refusal: row.get(13)?,
        status_code,
        talk_secs: row.get(15)?,
    })
}
