//! One agent's figures over a period (the web console's "today" panel),
//! read from the calls, callback requests and outbound calls tables.

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use crate::{db, CallbackStatus, OutboundOutcome, RecordsError};

/// How long before `since` a call may have been received and still be
/// answered after it (longer than the longest call the engine allows).
const LONGEST_CALL_HOURS: i64 = 24;

/// An agent's work over a period.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AgentFigures {
    /// Forwarded calls the agent answered in the period and that have
    /// ended.
    pub calls: u64,
    /// Average talk time of those calls, seconds.
    pub talk_secs_avg: Option<f64>,
    /// Callback requests the agent completed (the patient reached on their
    /// try) or marked handled in the period.
    pub callbacks_done: u64,
    /// Outbound calls the agent placed in the period (dialled, callback
    /// tries, transfers out), refused ones not counted.
    pub outbound_calls: u64,
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// See [`RecordReader::agent_figures`](crate::RecordReader::agent_figures).
pub(crate) fn agent_figures(
    conn: &Connection,
    agent: &str,
    since: DateTime<Utc>,
) -> Result<AgentFigures, RecordsError> {
    let version = db::schema_version(conn)?.unwrap_or(0);
    let from = db::ts(&since);
    let received_from = db::ts(&(since - chrono::Duration::hours(LONGEST_CALL_HOURS)));
    let (calls, talk): (i64, Option<f64>) = conn.query_row(
        "SELECT count(*), avg(talk_secs) FROM calls \
         WHERE received_at >= ?1 AND agent = ?2 AND agent_answered_at >= ?3 \
         AND ended_at IS NOT NULL",
        rusqlite::params![received_from, agent, from],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let callbacks: i64 = if version >= 6 {
        conn.query_row(
            // A handled request's agent is who marked it handled, its
            // completion when (see `callbacks::upsert`).
            "SELECT count(*) FROM callbacks \
             WHERE status IN (?3, ?4) AND agent = ?1 AND completed_at >= ?2",
            rusqlite::params![
                agent,
                from,
                CallbackStatus::Completed.as_str(),
                CallbackStatus::Handled.as_str()
            ],
            |r| r.get(0),
        )?
    } else {
        0
    };
    let outbound: i64 = if version >= 5 {
        conn.query_row(
            "SELECT count(*) FROM outbound_calls \
             WHERE agent = ?1 AND started_at >= ?2 AND outcome != ?3",
            rusqlite::params![agent, from, OutboundOutcome::Refused.as_str()],
            |r| r.get(0),
        )?
    } else {
        0
    };
    Ok(AgentFigures {
        calls: count(calls),
        talk_secs_avg: talk,
        callbacks_done: count(callbacks),
        outbound_calls: count(outbound),
    })
}
