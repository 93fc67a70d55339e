//! Read side: queries for the admin interface and tests, on a read-only
//! connection of its own (WAL lets it read while the writer writes).

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection};

use crate::db::{self, CALLBACK_COLUMNS, CALL_COLUMNS, EVENT_COLUMNS};
use crate::{
    CallRecord, CallbackState, CallbackStatus, Outcome, QueueEvent, RecordsError, StoredCallback,
};

/// Which calls [`RecordReader::calls`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallFilter {
    /// Only calls of this practice.
    pub practice_id: Option<String>,
    /// Only calls received at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Only calls from this caller: give the stored form, i.e. the number
    /// itself, or its hash when hashing is on (see
    /// [`RecorderHandle::caller_key`](crate::RecorderHandle::caller_key)).
    pub caller: Option<String>,
    /// At most this many rows (`0` returns none).
    pub limit: usize,
}

impl CallFilter {
    /// The latest `limit` calls of every practice.
    pub fn latest(limit: usize) -> Self {
        CallFilter {
            limit,
            ..CallFilter::default()
        }
    }
}

/// Read-only access to the records database.
///
/// A reader holds one SQLite connection: it is `Send` but not `Sync`; put it
/// behind a mutex (or open one per task) to share it. Queries are blocking
/// disk reads: from async code, run them in `spawn_blocking`.
pub struct RecordReader {
    conn: Connection,
}

fn limit_param(limit: usize) -> Value {
    Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX))
}

impl RecordReader {
    /// Opens an existing records database read-only. Fails if the file does
    /// not exist or is not a records database.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, RecordsError> {
        Ok(RecordReader {
            conn: db::open_reader(path.as_ref())?,
        })
    }

    /// Calls matching `filter`, most recently received first.
    pub fn calls(&self, filter: &CallFilter) -> Result<Vec<CallRecord>, RecordsError> {
        let mut sql = format!("SELECT {CALL_COLUMNS} FROM calls WHERE 1 = 1");
        let mut args: Vec<Value> = Vec::new();
        if let Some(p) = &filter.practice_id {
            args.push(Value::Text(p.clone()));
            sql.push_str(&format!(" AND practice_id = ?{}", args.len()));
        }
        if let Some(since) = &filter.since {
            args.push(Value::Text(db::ts(since)));
            sql.push_str(&format!(" AND received_at >= ?{}", args.len()));
        }
        if let Some(c) = &filter.caller {
            args.push(Value::Text(c.clone()));
            sql.push_str(&format!(" AND caller = ?{}", args.len()));
        }
        args.push(limit_param(filter.limit));
        sql.push_str(&format!(
            " ORDER BY received_at DESC, call_id LIMIT ?{}",
            args.len()
        ));
        let mut st = self.conn.prepare(&sql)?;
        let mut rows = st.query(params_from_iter(args))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(db::decode_call(row)?);
        }
        Ok(out)
    }

    /// One call by our call id.
    pub fn call(&self, call_id: &str) -> Result<Option<CallRecord>, RecordsError> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {CALL_COLUMNS} FROM calls WHERE call_id = ?1"
        ))?;
        let mut rows = st.query([call_id])?;
        match rows.next()? {
            Some(row) => Ok(Some(db::decode_call(row)?)),
            None => Ok(None),
        }
    }

    /// Every queue event of a call, oldest first (insertion order for equal
    /// timestamps).
    pub fn events_for_call(&self, call_id: &str) -> Result<Vec<QueueEvent>, RecordsError> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {EVENT_COLUMNS} FROM queue_events WHERE call_id = ?1 ORDER BY at, id"
        ))?;
        let rows = st.query([call_id])?;
        collect_events(rows)
    }

    /// Queue events at or after `since` (all if `None`), oldest first, at
    /// most `limit`. To page through the log, pass the last `at` seen: the
    /// bound is inclusive, so events sharing that instant come again.
    pub fn events(
        &self,
        since: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Result<Vec<QueueEvent>, RecordsError> {
        let since = since.map(|t| db::ts(&t)).unwrap_or_default();
        let mut st = self.conn.prepare(&format!(
            "SELECT {EVENT_COLUMNS} FROM queue_events WHERE at >= ?1 ORDER BY at, id LIMIT ?2"
        ))?;
        let rows = st.query(params_from_iter([Value::Text(since), limit_param(limit)]))?;
        collect_events(rows)
    }

    /// Number of calls per outcome, optionally for one practice and/or from
    /// `since` on. Outcomes with no call are absent.
    pub fn counts_by_outcome(
        &self,
        practice_id: Option<&str>,
        since: Option<DateTime<Utc>>,
    ) -> Result<BTreeMap<Outcome, u64>, RecordsError> {
        let since = since.map(|t| db::ts(&t)).unwrap_or_default();
        let mut st = self.conn.prepare(
            "SELECT outcome, count(*) FROM calls \
             WHERE (?1 IS NULL OR practice_id = ?1) AND received_at >= ?2 \
             GROUP BY outcome",
        )?;
        let mut rows = st.query(rusqlite::params![practice_id, since])?;
        let mut out = BTreeMap::new();
        while let Some(row) = rows.next()? {
            let outcome: String = row.get(0)?;
            let n: i64 = row.get(1)?;
            let outcome = outcome.parse().map_err(|e| RecordsError::Corrupt {
                column: "outcome",
                message: format!("{e}"),
            })?;
            out.insert(outcome, u64::try_from(n).unwrap_or(0));
        }
        Ok(out)
    }

    /// Callback requests, most recently requested first (newest id first on
    /// ties), at most `limit`: of one practice or of all, open ones only
    /// (pending or dialling, see [`CallbackStatus::is_open`]) or all.
    /// Numbers come back in clear (see
    /// [`CallbackRequest`](crate::CallbackRequest)).
    /// [`callbacks_list`](Self::callbacks_list) gives the whole state.
    ///
    /// A database not yet migrated to schema version 2 (opened read-only
    /// before any writer of this build) has no callbacks: the list is empty.
    pub fn callbacks(
        &self,
        practice: Option<&str>,
        pending_only: bool,
        limit: usize,
    ) -> Result<Vec<StoredCallback>, RecordsError> {
        if db::schema_version(&self.conn)?.unwrap_or(0) < 2 {
            return Ok(Vec::new());
        }
        let mut st = self.conn.prepare(&format!(
            "SELECT {CALLBACK_COLUMNS} FROM callbacks \
             WHERE (?1 IS NULL OR practice_id = ?1) AND (NOT ?2 OR status IN (?3, ?4)) \
             ORDER BY requested_at DESC, id DESC LIMIT ?5"
        ))?;
        let mut rows = st.query(rusqlite::params![
            practice,
            pending_only,
            CallbackStatus::Pending.as_str(),
            CallbackStatus::Dialling.as_str(),
            limit_param(limit)
        ])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(db::decode_callback(row)?);
        }
        Ok(out)
    }

    /// Every open callback request (status pending or dialling) of every
    /// practice, in the order to re-queue them at start-up: by place in the
    /// queue ([`joined_at`](CallbackState::joined_at)), then request time,
    /// then key. A request a crash left [`Dialling`](CallbackStatus::Dialling)
    /// comes back as [`Pending`](CallbackStatus::Pending) (its attempt died
    /// with the process that made it; the stored row keeps `dialling` until
    /// the engine writes the request again), so this is for start-up, not
    /// for watching live attempts (use [`callbacks_list`](Self::callbacks_list)).
    ///
    /// On a database not yet migrated to version 6 (opened read-only before
    /// any writer of this build), the requests are read as the migration
    /// will make them (keys `legacy-<id>`); before version 2 there are none.
    pub fn pending_callbacks(&self) -> Result<Vec<CallbackState>, RecordsError> {
        let version = db::schema_version(&self.conn)?.unwrap_or(0);
        crate::callbacks::pending(&self.conn, version)
    }

    /// Callback requests in any of `statuses` (every status if empty), of
    /// one practice or of all, most recently requested first (the newest
    /// row first on ties), at most `limit`, as stored (a `dialling` one
    /// stays `dialling`): for the admin API and CLI. Numbers come back in
    /// clear. Readable before version 6 like
    /// [`pending_callbacks`](Self::pending_callbacks).
    pub fn callbacks_list(
        &self,
        practice: Option<&str>,
        statuses: &[CallbackStatus],
        limit: usize,
    ) -> Result<Vec<CallbackState>, RecordsError> {
        let version = db::schema_version(&self.conn)?.unwrap_or(0);
        crate::callbacks::list(&self.conn, version, practice, statuses, limit)
    }

    /// The callback request with this [`key`](CallbackState::key), as
    /// stored; `None` if there is none. Readable before version 6 like
    /// [`pending_callbacks`](Self::pending_callbacks).
    pub fn callback_by_key(&self, key: &str) -> Result<Option<CallbackState>, RecordsError> {
        let version = db::schema_version(&self.conn)?.unwrap_or(0);
        crate::callbacks::by_key(&self.conn, version, key)
    }

    /// The voicemail deliveries still pending, in queue order (the
    /// engine resumes them at start-up); empty before version 8.
    pub fn pending_voicemail_deliveries(
        &self,
    ) -> Result<Vec<crate::VoicemailDeliveryRow>, RecordsError> {
        let version = db::schema_version(&self.conn)?.unwrap_or(0);
        crate::voicemail::list(&self.conn, version, true, usize::MAX)
    }

    /// Every voicemail delivery (pending or closed), oldest first, at most
    /// `limit`; empty before version 8.
    pub fn voicemail_deliveries(
        &self,
        limit: usize,
    ) -> Result<Vec<crate::VoicemailDeliveryRow>, RecordsError> {
        let version = db::schema_version(&self.conn)?.unwrap_or(0);
        crate::voicemail::list(&self.conn, version, false, limit)
    }

    /// Every stored agent state (see [`AgentStateRow`](crate::AgentStateRow));
    /// empty on a database older than version 3.
    pub fn agent_states(&self) -> Result<Vec<crate::AgentStateRow>, RecordsError> {
        if db::schema_version(&self.conn)?.unwrap_or(0) < 3 {
            return Ok(Vec::new());
        }
        crate::state::agent_states(&self.conn)
    }

    /// The registrations that expire after `after` (see
    /// [`RegistrationRow`](crate::RegistrationRow)); empty on a database older
    /// than version 3.
    pub fn registrations(
        &self,
        after: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<crate::RegistrationRow>, RecordsError> {
        if db::schema_version(&self.conn)?.unwrap_or(0) < 3 {
            return Ok(Vec::new());
        }
        crate::state::registrations(&self.conn, after)
    }

    /// Audit entries at or after `since` (all if `None`), newest first, at
    /// most `limit`; empty on a database older than version 4.
    pub fn audit(
        &self,
        since: Option<chrono::DateTime<chrono::Utc>>,
        limit: usize,
    ) -> Result<Vec<crate::AuditEntry>, RecordsError> {
        if db::schema_version(&self.conn)?.unwrap_or(0) < 4 {
            return Ok(Vec::new());
        }
        crate::audit::read(&self.conn, since, limit)
    }

    /// Outbound calls (see [`OutboundRecord`](crate::OutboundRecord)), most
    /// recently started first (id order on ties), at most `limit`: of one
    /// practice or of all. Destinations come back as stored, i.e. hashed
    /// when callers are. Calls refused before a practice was known have no
    /// practice: they are only listed for all practices.
    ///
    /// A database not yet migrated to schema version 5 (opened read-only
    /// before any writer of this build) has no outbound calls: the list is
    /// empty.
    pub fn outbound_calls(
        &self,
        practice: Option<&str>,
        limit: usize,
    ) -> Result<Vec<crate::OutboundRecord>, RecordsError> {
        if db::schema_version(&self.conn)?.unwrap_or(0) < 5 {
            return Ok(Vec::new());
        }
        crate::outbound::read(&self.conn, practice, limit)
    }

    /// One agent's figures from `since` on (see
    /// [`AgentFigures`](crate::AgentFigures)): a count over the day's
    /// calls (by their reception time index), the callback requests and
    /// the agent's outbound calls (by their agent index).
    pub fn agent_figures(
        &self,
        agent: &str,
        since: DateTime<Utc>,
    ) -> Result<crate::AgentFigures, RecordsError> {
        crate::figures::agent_figures(&self.conn, agent, since)
    }

    /// One practice's forwarded calls received in `[since, until)`, by what
    /// they count as (offered, answered, abandoned by phase, overflowed...;
    /// see [`PracticeFigures`](crate::PracticeFigures)): the figures the
    /// metrics count, from the call records alone.
    pub fn practice_figures(
        &self,
        practice: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<crate::PracticeFigures, RecordsError> {
        crate::figures::practice_figures(&self.conn, practice, since, until)
    }

    /// One practice's calls received in `[since, until)`, oldest first:
    /// the rows behind [`practice_figures`](Self::practice_figures) (for
    /// the reports). On a database not yet migrated to version 7, the
    /// outcome and abandon phase of each row are read as the migration
    /// will rewrite them.
    pub fn practice_calls(
        &self,
        practice: &str,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<CallRecord>, RecordsError> {
        let version = db::schema_version(&self.conn)?.unwrap_or(0);
        let mut st = self.conn.prepare(&format!(
            "SELECT {CALL_COLUMNS} FROM calls WHERE practice_id = ?1 \
             AND received_at >= ?2 AND received_at < ?3 ORDER BY received_at, call_id"
        ))?;
        let mut rows = st.query(rusqlite::params![practice, db::ts(&since), db::ts(&until)])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut call = db::decode_call(row)?;
            if version < 7 {
                (call.outcome, call.abandon_phase) = crate::figures::v7_row(&call);
            }
            out.push(call);
        }
        Ok(out)
    }

    /// Total rows in the `calls` and `queue_events` tables.
    pub fn row_counts(&self) -> Result<(u64, u64), RecordsError> {
        let calls: i64 = self
            .conn
            .query_row("SELECT count(*) FROM calls", [], |r| r.get(0))?;
        let events: i64 = self
            .conn
            .query_row("SELECT count(*) FROM queue_events", [], |r| r.get(0))?;
        Ok((
            u64::try_from(calls).unwrap_or(0),
            u64::try_from(events).unwrap_or(0),
        ))
    }
}

fn collect_events(mut rows: rusqlite::Rows<'_>) -> Result<Vec<QueueEvent>, RecordsError> {
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(db::decode_event(row)?);
    }
    Ok(out)
}
