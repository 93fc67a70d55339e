//! The audit log: who did what, when, from where, with what result. Every
//! admin and agent action is written here (pause, login, reload, drain,
//! callback handled, console login), and failed attempts too. It has its
//! own retention ([`RecordsConfig::audit_retention`](crate::RecordsConfig::audit_retention)).

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

use crate::db::{parse_ts, ts};
use crate::RecordsError;

/// Version 4 of the schema: the audit log.
pub(crate) const SCHEMA_V4: &str = "
CREATE TABLE IF NOT EXISTS audit (
    id      INTEGER PRIMARY KEY,
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL,
    role    TEXT,
    action  TEXT NOT NULL,
    target  TEXT,
    source  TEXT,
    outcome TEXT NOT NULL,
    detail  TEXT
);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
CREATE INDEX IF NOT EXISTS audit_actor_at ON audit (actor, at);
";

/// One audited action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Who: an admin user's name, `agent:<username>`, or `unknown` for a
    /// failed attempt without a valid credential.
    pub actor: String,
    /// Their role (`viewer`, `supervisor`, `admin`, `agent`), if known.
    pub role: Option<String>,
    /// What (`agent.pause`, `agent.login`, `config.reload`, `engine.drain`,
    /// `auth.failed`, ...).
    pub action: String,
    /// On what (an agent, a callback id...).
    pub target: Option<String>,
    /// From where (an IP address, or `sip:<ip>` for a softphone).
    pub source: Option<String>,
    /// `ok`, `refused`, `failed`.
    pub outcome: String,
    /// Anything else worth keeping (never a patient's number).
    pub detail: Option<String>,
}

pub(crate) fn insert(conn: &Connection, e: &AuditEntry) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO audit (at, actor, role, action, target, source, outcome, detail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            ts(&e.at),
            e.actor,
            e.role,
            e.action,
            e.target,
            e.source,
            e.outcome,
            e.detail
        ],
    )?;
    Ok(())
}

/// Entries at or after `since`, newest first, at most `limit`.
pub(crate) fn read(
    conn: &Connection,
    since: Option<DateTime<Utc>>,
    limit: usize,
) -> Result<Vec<AuditEntry>, RecordsError> {
    let mut st = conn.prepare(
        "SELECT at, actor, role, action, target, source, outcome, detail FROM audit \
         WHERE (?1 IS NULL OR at >= ?1) ORDER BY at DESC, id DESC LIMIT ?2",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows = st.query(params![since.as_ref().map(ts), limit])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(AuditEntry {
            at: parse_ts("at", &r.get::<_, String>(0)?)?,
            actor: r.get(1)?,
            role: r.get(2)?,
            action: r.get(3)?,
            target: r.get(4)?,
            source: r.get(5)?,
            outcome: r.get(6)?,
            detail: r.get(7)?,
        });
    }
    Ok(out)
}

/// Deletes entries older than `cutoff`; returns how many.
pub(crate) fn purge(conn: &Connection, cutoff: DateTime<Utc>) -> rusqlite::Result<u64> {
    Ok(conn.execute("DELETE FROM audit WHERE at < ?1", [ts(&cutoff)])? as u64)
}
