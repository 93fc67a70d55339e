//! The audit trail: every admin and agent action, and every failed
//! attempt, written to the records store (who, what, when, from where,
//! with what result). Patient numbers never go in it.

use crate::clock::Clock;
use permanence_records::{AuditEntry, RecorderHandle};

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Ok,
    /// Refused (not allowed, bad credentials, throttled).
    Refused,
    /// Allowed but failed (an invalid configuration, an unknown agent...).
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        }
    }
}

/// One action to audit.
#[derive(Debug, Clone)]
pub struct Action<'a> {
    /// Who: an admin user's name, `agent:<username>`, or `unknown`.
    pub actor: &'a str,
    /// Their role (`viewer`, `supervisor`, `admin`, `agent`), if known.
    pub role: Option<&'a str>,
    /// What (`agent.pause`, `config.reload`, `auth.failed`...).
    pub action: &'a str,
    /// On what.
    pub target: Option<&'a str>,
    /// From where.
    pub source: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// More (an error message; never a patient's number).
    pub detail: Option<String>,
}

/// Where audit entries go.
#[derive(Clone)]
pub struct AuditLog {
    records: Option<RecorderHandle>,
    clock: Clock,
}

impl AuditLog {
    /// Writes to `records` (nowhere if there is no store: the log line
    /// stays).
    pub fn new(records: Option<RecorderHandle>, clock: Clock) -> Self {
        Self { records, clock }
    }

    /// Audits `a`.
    pub fn write(&self, a: Action<'_>) {
        tracing::info!(
            event = "audit",
            actor = a.actor,
            action = a.action,
            target = a.target.unwrap_or(""),
            source = a.source.as_deref().unwrap_or(""),
            outcome = a.outcome.as_str(),
            "audited action"
        );
        if let Some(r) = &self.records {
            r.record_audit(AuditEntry {
                at: self.clock.wall(),
                actor: a.actor.to_string(),
                role: a.role.map(str::to_string),
                action: a.action.to_string(),
                target: a.target.map(str::to_string),
                source: a.source,
                outcome: a.outcome.as_str().to_string(),
                detail: a.detail,
            });
        }
    }
}
