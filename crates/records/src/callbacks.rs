//! Callback requests with their whole lifecycle: one row per request in
//! `callbacks`, identified by its key, written at each step by the engine
//! (insert or update by key), read back at start-up to re-queue the open
//! ones in their original order, listed for the admin interface, and
//! purged by retention only once closed.

use chrono::TimeDelta;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, Row};

use crate::db::{corrupt, opt_enum, opt_ts, parse_ts, ts};
use crate::{CallbackOrigin, CallbackRequest, CallbackState, CallbackStatus, RecordsError};

/// Version 6 of the schema: the callback lifecycle. SQLite cannot add a
/// `NOT NULL` column without a default, nor a `UNIQUE` one, so the table is
/// rebuilt: the version-2 columns first, unchanged and in the same order
/// (same ids), then the new ones. Existing requests become
/// `overflow` requests keyed `legacy-<id>`, whose place in the queue is
/// their request time and whose deadline is one hour later (same
/// microseconds: only the whole seconds go through SQLite's date
/// functions, which keep milliseconds at most); a handled one is closed at
/// its `handled_at` by its `handled_by`. `handled_at`/`handled_by` keep
/// their meaning (set for the `handled` status only).
///
/// Indexes: the two of version 2 (per-practice lists, retention purge),
/// the open requests of a practice in place order, and the key (unique).
pub(crate) const SCHEMA_V6: &str = "
ALTER TABLE callbacks RENAME TO callbacks_v5;
CREATE TABLE callbacks (
    id              INTEGER PRIMARY KEY,
    requested_at    TEXT NOT NULL,
    call_id         TEXT NOT NULL,
    practice_id     TEXT NOT NULL,
    number          TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending',
    handled_at      TEXT,
    handled_by      TEXT,
    key             TEXT NOT NULL,
    origin          TEXT NOT NULL,
    joined_at       TEXT NOT NULL,
    priority        INTEGER NOT NULL DEFAULT 0,
    triage_digit    TEXT,
    deadline_at     TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_attempt_at TEXT,
    last_result     TEXT,
    agent           TEXT,
    completed_at    TEXT,
    outbound_id     TEXT
);
INSERT INTO callbacks (id, requested_at, call_id, practice_id, number, status, handled_at,
    handled_by, key, origin, joined_at, priority, deadline_at, attempts, agent, completed_at)
SELECT id, requested_at, call_id, practice_id, number, status, handled_at, handled_by,
    'legacy-' || id, 'overflow', requested_at, 0,
    COALESCE(strftime('%Y-%m-%dT%H:%M:%S', substr(requested_at, 1, 19), '+60 minutes')
        || substr(requested_at, 20), requested_at),
    0, handled_by, handled_at
FROM callbacks_v5;
DROP TABLE callbacks_v5;
CREATE INDEX IF NOT EXISTS callbacks_practice_status_requested
    ON callbacks (practice_id, status, requested_at);
CREATE INDEX IF NOT EXISTS callbacks_requested ON callbacks (requested_at);
CREATE INDEX IF NOT EXISTS callbacks_status_practice_joined
    ON callbacks (status, practice_id, joined_at);
CREATE UNIQUE INDEX IF NOT EXISTS callbacks_key ON callbacks (key);
";

/// Deadline given to a request stored without one (by
/// [`RecorderHandle::record_callback`](crate::RecorderHandle::record_callback),
/// and by the migration to version 6): one hour after the request.
const DEFAULT_DEADLINE_MINUTES: i64 = 60;

/// Columns of a [`CallbackState`], in the order used by the upsert and the
/// selects.
const STATE_COLUMNS: [&str; 18] = [
    "key",
    "origin",
    "call_id",
    "practice_id",
    "number",
    "requested_at",
    "joined_at",
    "priority",
    "triage_digit",
    "deadline_at",
    "status",
    "attempts",
    "next_attempt_at",
    "last_attempt_at",
    "last_result",
    "agent",
    "completed_at",
    "outbound_id",
];

/// What the readers select from for a database of schema `version`: the
/// table itself from version 6; from version 2 to 5, the old table with the
/// new columns computed as [`SCHEMA_V6`] will fill them, so that a
/// read-only reader opened before any writer of this build (the store
/// failed to open at start-up, say) still finds the patients waiting, under
/// the keys the migration will give them (a test checks both agree).
/// `None` before version 2 (no callbacks at all).
fn source(version: i64) -> Option<&'static str> {
    match version {
        ..=1 => None,
        2..=5 => Some(
            "(SELECT id, 'legacy-' || id AS key, 'overflow' AS origin, call_id, practice_id, \
             number, requested_at, requested_at AS joined_at, 0 AS priority, \
             NULL AS triage_digit, \
             COALESCE(strftime('%Y-%m-%dT%H:%M:%S', substr(requested_at, 1, 19), \
             '+60 minutes') || substr(requested_at, 20), requested_at) AS deadline_at, \
             status, 0 AS attempts, NULL AS next_attempt_at, NULL AS last_attempt_at, \
             NULL AS last_result, handled_by AS agent, handled_at AS completed_at, \
             NULL AS outbound_id FROM callbacks)",
        ),
        _ => Some("callbacks"),
    }
}

/// The upsert statement of a [`CallbackState`]: inserts the row, or
/// replaces every column of the row with the same key (keeping its id).
/// `handled_at`/`handled_by` come last.
pub(crate) fn upsert_sql() -> String {
    let columns = STATE_COLUMNS.join(", ");
    let values = (1..=STATE_COLUMNS.len() + 2)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let updates = STATE_COLUMNS
        .iter()
        .chain(&["handled_at", "handled_by"])
        .filter(|c| **c != "key")
        .map(|c| format!("{c} = excluded.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO callbacks ({columns}, handled_at, handled_by) VALUES ({values}) \
         ON CONFLICT (key) DO UPDATE SET {updates}"
    )
}

/// Inserts or replaces `s` (by key) with the statement of [`upsert_sql`].
/// `handled_at`/`handled_by` follow `completed_at`/`agent` when the status
/// is [`CallbackStatus::Handled`] and are cleared otherwise, so that the
/// legacy view ([`StoredCallback`](crate::StoredCallback)) agrees.
pub(crate) fn upsert(st: &mut rusqlite::Statement<'_>, s: &CallbackState) -> rusqlite::Result<()> {
    let handled = s.status == CallbackStatus::Handled;
    st.execute(params![
        s.key,
        s.origin.as_str(),
        s.call_id,
        s.practice_id,
        s.number,
        ts(&s.requested_at),
        ts(&s.joined_at),
        s.priority,
        s.triage_digit,
        ts(&s.deadline_at),
        s.status.as_str(),
        s.attempts,
        s.next_attempt_at.as_ref().map(ts),
        s.last_attempt_at.as_ref().map(ts),
        s.last_result.map(|r| r.as_str()),
        s.agent,
        s.completed_at.as_ref().map(ts),
        s.outbound_id,
        s.completed_at.as_ref().filter(|_| handled).map(ts),
        s.agent.as_ref().filter(|_| handled),
    ])?;
    Ok(())
}

/// The insert statement of a [`CallbackRequest`]: the row gets the next
/// id and the key `legacy-<id>` (unique as long as no other writer uses
/// that prefix), joins the queue at its request time with priority 0 and
/// attempts 0.
pub(crate) const INSERT_REQUEST_SQL: &str = "INSERT INTO callbacks \
    (id, key, origin, requested_at, call_id, practice_id, number, status, joined_at, \
     priority, deadline_at, attempts) \
    SELECT n, 'legacy-' || n, ?1, ?2, ?3, ?4, ?5, ?6, ?2, 0, ?7, 0 \
    FROM (SELECT COALESCE(MAX(id), 0) + 1 AS n FROM callbacks)";

/// Inserts `req` as a pending overflow request with the statement
/// [`INSERT_REQUEST_SQL`]; its deadline is one hour after the request.
pub(crate) fn insert_request(
    st: &mut rusqlite::Statement<'_>,
    req: &CallbackRequest,
) -> rusqlite::Result<()> {
    let deadline = req
        .requested_at
        .checked_add_signed(TimeDelta::minutes(DEFAULT_DEADLINE_MINUTES))
        .unwrap_or(req.requested_at);
    st.execute(params![
        CallbackOrigin::Overflow.as_str(),
        ts(&req.requested_at),
        req.call_id,
        req.practice_id,
        req.number,
        CallbackStatus::Pending.as_str(),
        ts(&deadline),
    ])?;
    Ok(())
}

/// Deletes the closed callback requests made strictly before `cutoff`
/// (formatted with [`ts`]); open ones ([`CallbackStatus::is_open`]) stay
/// whatever their age. Returns how many were deleted.
pub(crate) fn purge(conn: &Connection, cutoff: &str) -> rusqlite::Result<u64> {
    Ok(conn.execute(
        "DELETE FROM callbacks WHERE requested_at < ?1 AND status NOT IN (?2, ?3)",
        params![
            cutoff,
            CallbackStatus::Pending.as_str(),
            CallbackStatus::Dialling.as_str()
        ],
    )? as u64)
}

/// The open requests of every practice in re-queue order (place in the
/// queue, then request time, then key), a `dialling` one read as
/// `pending`; empty before version 2.
pub(crate) fn pending(conn: &Connection, version: i64) -> Result<Vec<CallbackState>, RecordsError> {
    let Some(source) = source(version) else {
        return Ok(Vec::new());
    };
    let mut st = conn.prepare(&format!(
        "SELECT {} FROM {source} AS c WHERE status IN (?1, ?2) \
         ORDER BY joined_at, requested_at, key",
        STATE_COLUMNS.join(", ")
    ))?;
    let mut rows = st.query(params![
        CallbackStatus::Pending.as_str(),
        CallbackStatus::Dialling.as_str()
    ])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut s = decode(row)?;
        if s.status == CallbackStatus::Dialling {
            s.status = CallbackStatus::Pending;
        }
        out.push(s);
    }
    Ok(out)
}

/// Requests of one practice or of all, in any of `statuses` (every status
/// if empty), most recently requested first (newest row first on ties), at
/// most `limit`; empty before version 2.
pub(crate) fn list(
    conn: &Connection,
    version: i64,
    practice: Option<&str>,
    statuses: &[CallbackStatus],
    limit: usize,
) -> Result<Vec<CallbackState>, RecordsError> {
    let Some(source) = source(version) else {
        return Ok(Vec::new());
    };
    let mut sql = format!(
        "SELECT {} FROM {source} AS c WHERE 1 = 1",
        STATE_COLUMNS.join(", ")
    );
    let mut args: Vec<Value> = Vec::new();
    if let Some(p) = practice {
        args.push(Value::Text(p.to_owned()));
        sql.push_str(&format!(" AND practice_id = ?{}", args.len()));
    }
    if !statuses.is_empty() {
        let mut marks = Vec::with_capacity(statuses.len());
        for s in statuses {
            args.push(Value::Text(s.as_str().to_owned()));
            marks.push(format!("?{}", args.len()));
        }
        sql.push_str(&format!(" AND status IN ({})", marks.join(", ")));
    }
    args.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
    sql.push_str(&format!(
        " ORDER BY requested_at DESC, id DESC LIMIT ?{}",
        args.len()
    ));
    let mut st = conn.prepare(&sql)?;
    let mut rows = st.query(params_from_iter(args))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(decode(row)?);
    }
    Ok(out)
}

/// The request with this key, as stored; `None` if there is none (or
/// before version 2).
pub(crate) fn by_key(
    conn: &Connection,
    version: i64,
    key: &str,
) -> Result<Option<CallbackState>, RecordsError> {
    let Some(source) = source(version) else {
        return Ok(None);
    };
    let mut st = conn.prepare(&format!(
        "SELECT {} FROM {source} AS c WHERE key = ?1",
        STATE_COLUMNS.join(", ")
    ))?;
    let mut rows = st.query([key])?;
    match rows.next()? {
        Some(row) => Ok(Some(decode(row)?)),
        None => Ok(None),
    }
}

/// Decodes a row selected with [`STATE_COLUMNS`].
fn decode(row: &Row<'_>) -> Result<CallbackState, RecordsError> {
    let origin: String = row.get(1)?;
    let requested_at: String = row.get(5)?;
    let joined_at: String = row.get(6)?;
    let priority: i64 = row.get(7)?;
    let deadline_at: String = row.get(9)?;
    let status: String = row.get(10)?;
    let attempts: i64 = row.get(11)?;
    Ok(CallbackState {
        key: row.get(0)?,
        origin: origin.parse().map_err(|e| corrupt("origin", e))?,
        call_id: row.get(2)?,
        practice_id: row.get(3)?,
        number: row.get(4)?,
        requested_at: parse_ts("requested_at", &requested_at)?,
        joined_at: parse_ts("joined_at", &joined_at)?,
        priority: i32::try_from(priority)
            .map_err(|_| corrupt("priority", format!("out of range: {priority}")))?,
        triage_digit: row.get(8)?,
        deadline_at: parse_ts("deadline_at", &deadline_at)?,
        status: status.parse().map_err(|e| corrupt("status", e))?,
        attempts: u32::try_from(attempts)
            .map_err(|_| corrupt("attempts", format!("out of range: {attempts}")))?,
        next_attempt_at: opt_ts(row, 12, "next_attempt_at")?,
        last_attempt_at: opt_ts(row, 13, "last_attempt_at")?,
        last_result: opt_enum(row, 14, "last_result")?,
        agent: row.get(15)?,
        completed_at: opt_ts(row, 16, "completed_at")?,
        outbound_id: row.get(17)?,
    })
}
