//! Figures read from the records: one agent's over a period (the web
//! console's "today" panel, from the calls, callback requests and outbound
//! calls tables), and one practice's calls by outcome and abandon phase
//! (the admin API's `/api/figures`), with the schema step (version 7) that
//! gave every abandon its phase.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use crate::{db, AbandonPhase, CallRecord, CallbackStatus, OutboundOutcome, Outcome, RecordsError};

/// The outcome of a call row written before version 7: a caller who
/// cancelled before the engine answered was `abandoned`; now
/// `unanswered` (not offered).
macro_rules! v7_outcome {
    () => {
        "CASE WHEN outcome = 'abandoned' AND end_reason = 'caller-cancel' \
         THEN 'unanswered' ELSE outcome END"
    };
}

/// The abandon phase of a call row written before version 7: a caller
/// gone during the greeting or the triage menu had none; now
/// `before-queue` (the two cannot be told apart afterwards).
macro_rules! v7_phase {
    () => {
        "CASE WHEN outcome = 'abandoned' AND abandon_phase IS NULL \
         AND end_reason = 'caller-hangup-before-queue' THEN 'before-queue' \
         ELSE abandon_phase END"
    };
}

/// Version 7 of the schema: every abandoned call has its phase, and a call
/// the caller cancelled before the engine answered is `unanswered`. New
/// rows are written that way by the engine (phases `greeting`, `triage`,
/// `route` are new); this step rewrites the older rows (see
/// [`v7_outcome`] and [`v7_phase`]). The index serves the per-practice
/// figures.
pub(crate) const SCHEMA_V7: &str = concat!(
    "UPDATE calls SET abandon_phase = ",
    v7_phase!(),
    ", outcome = ",
    v7_outcome!(),
    " WHERE outcome = 'abandoned';\n",
    "CREATE INDEX IF NOT EXISTS calls_practice_outcome ON calls (practice_id, outcome);\n"
);

/// What [`practice_figures`] reads for a database of schema `version`: the
/// table from version 7; before (a read-only reader opened before any
/// writer of this build migrated the file), the table with the columns
/// computed as [`SCHEMA_V7`] will rewrite them.
fn calls_source(version: i64) -> &'static str {
    if version >= 7 {
        "calls"
    } else {
        concat!(
            "(SELECT practice_id, received_at, overflow_target, ",
            v7_outcome!(),
            " AS outcome, ",
            v7_phase!(),
            " AS abandon_phase FROM calls)"
        )
    }
}

/// A practice's forwarded calls received in a period, by what they count
/// as: the same definition as the metrics
/// (`permanence_types::Disposition`). For the ended calls,
/// `offered == answered + abandoned + overflowed + callback_requested +
/// failed` (see [`PracticeFigures::balanced`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PracticeFigures {
    /// Calls that reached the open practice (the engine answered with its
    /// greeting) and have ended.
    pub offered: u64,
    /// Offered calls a telesecretary (or a direct-route number) answered.
    pub answered: u64,
    /// Offered calls whose caller hung up before an answer, by phase.
    pub abandoned: BTreeMap<AbandonPhase, u64>,
    /// Offered calls sent to the practice's overflow, by target
    /// (`voicemail`, `callback`, `hangup`).
    pub overflowed: BTreeMap<String, u64>,
    /// Offered calls whose caller asked to be called back from the queue.
    pub callback_requested: u64,
    /// Offered calls ended by a technical failure before an answer.
    pub failed: u64,
    /// Not offered: the practice was closed.
    pub closed: u64,
    /// Not offered: the caller hung up before the engine answered.
    pub unanswered: u64,
    /// Not offered: refused at the door (overload, draining...).
    pub rejected: u64,
    /// Calls still in progress, or cut by a crash (`interrupted`): not
    /// counted anywhere else.
    pub open_or_interrupted: u64,
}

/// The metrics' label form of a stored name (`callback-prompt` →
/// `callback_prompt`).
fn metric_label(s: &str) -> String {
    s.replace('-', "_")
}

impl PracticeFigures {
    /// All abandons, every phase.
    pub fn abandoned_total(&self) -> u64 {
        self.abandoned.values().sum()
    }

    /// All overflows, every target.
    pub fn overflowed_total(&self) -> u64 {
        self.overflowed.values().sum()
    }

    /// Abandons by phase, named as the metrics' `phase` label
    /// (`callback_prompt`).
    pub fn abandoned_by_label(&self) -> BTreeMap<String, u64> {
        self.abandoned
            .iter()
            .map(|(k, v)| (metric_label(k.as_str()), *v))
            .collect()
    }

    /// Overflows by target, named as the metrics' `target` label, the
    /// caller's own callback requests as `callback_request`.
    pub fn overflowed_by_label(&self) -> BTreeMap<String, u64> {
        let mut out: BTreeMap<String, u64> = self
            .overflowed
            .iter()
            .map(|(k, v)| (metric_label(k), *v))
            .collect();
        if self.callback_requested > 0 {
            out.insert("callback_request".into(), self.callback_requested);
        }
        out
    }

    /// Answered / offered; `None` without offered calls.
    pub fn pickup_rate(&self) -> Option<f64> {
        (self.offered > 0).then(|| self.answered as f64 / self.offered as f64)
    }

    /// Whether every offered call is counted in exactly one outcome.
    pub fn balanced(&self) -> bool {
        self.offered
            == self.answered
                + self.abandoned_total()
                + self.overflowed_total()
                + self.callback_requested
                + self.failed
    }

    /// The figures of `calls` (every call given is counted, whatever its
    /// practice or time): the same classification as
    /// [`RecordReader::practice_figures`](crate::RecordReader::practice_figures)
    /// does in SQL, for code that already holds the rows (the reports).
    pub fn tally<'a>(calls: impl IntoIterator<Item = &'a CallRecord>) -> Self {
        let mut figures = PracticeFigures::default();
        for c in calls {
            let (outcome, phase) = v7_row(c);
            figures.add(outcome, phase, c.overflow_target.clone(), 1);
        }
        figures
    }

    /// Adds `n` calls of `outcome` (with their phase and overflow target).
    fn add(
        &mut self,
        outcome: Outcome,
        phase: Option<AbandonPhase>,
        overflow: Option<String>,
        n: u64,
    ) {
        let offered = match outcome {
            Outcome::Answered => &mut self.answered,
            Outcome::Abandoned => {
                let phase = phase.unwrap_or(AbandonPhase::BeforeQueue);
                self.abandoned.entry(phase).or_insert(0)
            }
            Outcome::Overflowed => {
                let target = overflow.unwrap_or_else(|| "unknown".into());
                self.overflowed.entry(target).or_insert(0)
            }
            Outcome::CallbackRequested => &mut self.callback_requested,
            Outcome::Failed => &mut self.failed,
            Outcome::Closed => return self.closed += n,
            Outcome::Unanswered => return self.unanswered += n,
            Outcome::Rejected => return self.rejected += n,
            Outcome::InProgress | Outcome::Interrupted => return self.open_or_interrupted += n,
        };
        *offered += n;
        self.offered += n;
    }
}

/// A call row's outcome and abandon phase as schema version 7 counts
/// them (see [`v7_outcome`] and [`v7_phase`]): the same for rows written
/// since, rewritten for older rows read before a writer migrated them.
pub(crate) fn v7_row(c: &CallRecord) -> (Outcome, Option<AbandonPhase>) {
    if c.outcome != Outcome::Abandoned || c.abandon_phase.is_some() {
        return (c.outcome, c.abandon_phase);
    }
    match c.end_reason.as_deref() {
        Some("caller-cancel") => (Outcome::Unanswered, None),
        Some("caller-hangup-before-queue") => (c.outcome, Some(AbandonPhase::BeforeQueue)),
        _ => (c.outcome, None),
    }
}

/// See [`RecordReader::practice_figures`](crate::RecordReader::practice_figures).
pub(crate) fn practice_figures(
    conn: &Connection,
    practice: &str,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<PracticeFigures, RecordsError> {
    let version = db::schema_version(conn)?.unwrap_or(0);
    let mut st = conn.prepare(&format!(
        "SELECT outcome, abandon_phase, overflow_target, count(*) FROM {} \
         WHERE practice_id = ?1 AND received_at >= ?2 AND received_at < ?3 \
         GROUP BY outcome, abandon_phase, overflow_target",
        calls_source(version)
    ))?;
    let mut rows = st.query(rusqlite::params![practice, db::ts(&since), db::ts(&until)])?;
    let mut figures = PracticeFigures::default();
    while let Some(row) = rows.next()? {
        let outcome: String = row.get(0)?;
        let phase: Option<String> = row.get(1)?;
        let outcome = outcome.parse().map_err(|e| db::corrupt("outcome", e))?;
        let phase = phase
            .map(|p| p.parse())
            .transpose()
            .map_err(|e| db::corrupt("abandon_phase", e))?;
        figures.add(outcome, phase, row.get(2)?, count(row.get(3)?));
    }
    Ok(figures)
}

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
