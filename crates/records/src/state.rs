//! What must survive a crash besides the call records: each agent's chosen
//! state (logged out, paused with a reason) and the softphone
//! registrations (as Kamailio's usrloc keeps them in a database), restored
//! at restart until they expire.
//!
//! Both are written through the recorder's channel like every other row
//! (never blocking the caller) and read back with
//! [`RecordReader::agent_states`](crate::RecordReader::agent_states) and
//! [`RecordReader::registrations`](crate::RecordReader::registrations).

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, Row};
use serde::{Deserialize, Serialize};

use crate::db::{parse_ts, ts};
use crate::RecordsError;

/// Version 3 of the schema: agent states and registrations.
pub(crate) const SCHEMA_V3: &str = "
CREATE TABLE IF NOT EXISTS agent_states (
    agent        TEXT PRIMARY KEY NOT NULL,
    logged_in    INTEGER NOT NULL,
    pause_reason TEXT,
    updated_at   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS registrations (
    agent      TEXT NOT NULL,
    uri        TEXT NOT NULL,
    instance   TEXT,
    source     TEXT NOT NULL,
    transport  TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    call_id    TEXT NOT NULL,
    cseq       INTEGER NOT NULL,
    user_agent TEXT,
    PRIMARY KEY (agent, uri)
);
";

/// An agent's chosen state: whether they are logged in to the queues, and
/// the reason of their pause if paused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStateRow {
    /// Agent user name.
    pub agent: String,
    /// Logged in to the queues.
    pub logged_in: bool,
    /// Paused, with this reason.
    pub pause_reason: Option<String>,
    /// When it changed.
    pub updated_at: DateTime<Utc>,
}

/// One registered contact of an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationRow {
    /// Agent user name (lower case).
    pub agent: String,
    /// Contact URI.
    pub uri: String,
    /// Device identity (`+sip.instance`).
    pub instance: Option<String>,
    /// Address the REGISTER came from (`ip:port`).
    pub source: String,
    /// Transport token (`UDP`, `TCP`, `TLS`).
    pub transport: String,
    /// When it expires (wall clock).
    pub expires_at: DateTime<Utc>,
    /// Call-ID of the registering dialog.
    pub call_id: String,
    /// Last CSeq seen.
    pub cseq: u32,
    /// User-Agent of the softphone.
    pub user_agent: Option<String>,
}

/// Upserts an agent state.
pub(crate) fn upsert_agent_state(conn: &Connection, s: &AgentStateRow) -> rusqlite::Result<()> {
    conn.prepare(
        "INSERT OR REPLACE INTO agent_states (agent, logged_in, pause_reason, updated_at) \
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        s.agent,
        s.logged_in,
        s.pause_reason,
        ts(&s.updated_at)
    ])?;
    Ok(())
}

/// Replaces every registration of `agent` with `rows`.
pub(crate) fn replace_registrations(
    conn: &Connection,
    agent: &str,
    rows: &[RegistrationRow],
) -> rusqlite::Result<()> {
    conn.prepare("DELETE FROM registrations WHERE agent = ?1")?
        .execute([agent])?;
    let mut st = conn.prepare(
        "INSERT OR REPLACE INTO registrations \
         (agent, uri, instance, source, transport, expires_at, call_id, cseq, user_agent) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for r in rows {
        st.execute(params![
            agent,
            r.uri,
            r.instance,
            r.source,
            r.transport,
            ts(&r.expires_at),
            r.call_id,
            r.cseq,
            r.user_agent,
        ])?;
    }
    Ok(())
}

/// Every stored agent state.
pub(crate) fn agent_states(conn: &Connection) -> Result<Vec<AgentStateRow>, RecordsError> {
    let mut st = conn.prepare(
        "SELECT agent, logged_in, pause_reason, updated_at FROM agent_states ORDER BY agent",
    )?;
    let mut rows = st.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(AgentStateRow {
            agent: r.get(0)?,
            logged_in: r.get(1)?,
            pause_reason: r.get(2)?,
            updated_at: parse_ts("updated_at", &r.get::<_, String>(3)?)?,
        });
    }
    Ok(out)
}

/// Registrations that expire after `after`, by agent then URI.
pub(crate) fn registrations(
    conn: &Connection,
    after: DateTime<Utc>,
) -> Result<Vec<RegistrationRow>, RecordsError> {
    let mut st = conn.prepare(
        "SELECT agent, uri, instance, source, transport, expires_at, call_id, cseq, user_agent \
         FROM registrations WHERE expires_at > ?1 ORDER BY agent, uri",
    )?;
    let mut rows = st.query([ts(&after)])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(decode_registration(r)?);
    }
    Ok(out)
}

fn decode_registration(r: &Row<'_>) -> Result<RegistrationRow, RecordsError> {
    Ok(RegistrationRow {
        agent: r.get(0)?,
        uri: r.get(1)?,
        instance: r.get(2)?,
        source: r.get(3)?,
        transport: r.get(4)?,
        expires_at: parse_ts("expires_at", &r.get::<_, String>(5)?)?,
        call_id: r.get(6)?,
        cseq: r.get(7)?,
        user_agent: r.get(8)?,
    })
}

/// Closes the call records a crash left open (`in-progress`) as
/// `interrupted`, ending them at their last known time; returns how many.
pub(crate) fn close_interrupted(conn: &Connection) -> rusqlite::Result<u64> {
    let n = conn.execute(
        "UPDATE calls SET outcome = 'interrupted', end_reason = 'interrupted', \
         ended_at = COALESCE(agent_answered_at, first_offered_at, queued_at, \
                             engine_answered_at, received_at) \
         WHERE outcome = 'in-progress'",
        [],
    )?;
    Ok(n as u64)
}
