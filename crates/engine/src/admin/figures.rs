//! `GET /api/figures`: a practice's call figures over a period, read from
//! the call records (the same definition as the `permanence_calls_*`
//! metrics: each call's disposition, see `permanence_types::Disposition`).

use chrono::{DateTime, SecondsFormat, Utc};
use permanence_http::{FiguresQuery, FiguresRefused, FiguresView};
use permanence_records::PracticeFigures;

use crate::switch::Switch;

/// Parses an RFC 3339 bound of the query (`name` for the error).
fn bound(name: &str, text: Option<&str>) -> Result<Option<DateTime<Utc>>, FiguresRefused> {
    text.filter(|t| !t.is_empty())
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|d| d.with_timezone(&Utc))
                .map_err(|e| FiguresRefused::BadRequest(format!("{name}: {e}")))
        })
        .transpose()
}

/// The figures of `q.practice` between its bounds (default: every call
/// retained, until now).
pub(super) async fn figures(
    switch: &Switch,
    q: &FiguresQuery,
) -> Result<FiguresView, FiguresRefused> {
    if q.practice.is_empty() {
        return Err(FiguresRefused::BadRequest("practice: missing".into()));
    }
    if switch.config().practice(&q.practice).is_none() {
        return Err(FiguresRefused::UnknownPractice(format!(
            "no practice {}",
            q.practice
        )));
    }
    let since = bound("since", q.since.as_deref())?.unwrap_or(DateTime::UNIX_EPOCH);
    let until = bound("until", q.until.as_deref())?.unwrap_or_else(|| switch.clock.wall());
    let practice = q.practice.clone();
    let f =
        super::callbacks::read_store(switch, move |r| r.practice_figures(&practice, since, until))
            .await
            .ok_or_else(|| FiguresRefused::Unavailable("call records not readable".into()))?;
    Ok(view(&q.practice, since, until, &f))
}

/// The API's view of the records' figures, with the metrics' label values.
fn view(
    practice: &str,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    f: &PracticeFigures,
) -> FiguresView {
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
    FiguresView {
        practice: practice.to_string(),
        since: time(since),
        until: time(until),
        offered: f.offered,
        answered: f.answered,
        abandoned: f.abandoned_by_label(),
        overflowed: f.overflowed_by_label(),
        failed: f.failed,
        closed: f.closed,
        unanswered: f.unanswered,
        rejected: f.rejected,
        in_progress: f.open_or_interrupted,
        pickup_rate: f.pickup_rate(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_uses_the_metrics_labels_and_keeps_the_balance() {
        let f = PracticeFigures {
            offered: 4,
            answered: 1,
            abandoned: [(permanence_records::AbandonPhase::CallbackPrompt, 1)].into(),
            overflowed: [("voicemail".to_string(), 1)].into(),
            callback_requested: 1,
            ..PracticeFigures::default()
        };
        let v = view("tilleuls", DateTime::UNIX_EPOCH, DateTime::UNIX_EPOCH, &f);
        assert_eq!(v.abandoned.get("callback_prompt"), Some(&1));
        assert_eq!(v.overflowed.get("callback_request"), Some(&1));
        let exits: u64 = v.abandoned.values().chain(v.overflowed.values()).sum();
        assert_eq!(v.offered, v.answered + exits + v.failed);
        assert_eq!(v.pickup_rate, Some(0.25));
        assert_eq!(v.since, "1970-01-01T00:00:00.000000Z");
        assert!(matches!(
            bound("since", Some("yesterday")),
            Err(FiguresRefused::BadRequest(_))
        ));
    }
}
