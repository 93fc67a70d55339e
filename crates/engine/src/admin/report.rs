//! `GET /api/report`: a practice's monthly or weekly report, built from
//! the call records (`permanence-report`, the same as `permanence report`).

use permanence_http::{FiguresRefused, ReportDocument, ReportQuery};
use permanence_report::{Format, Period, PracticeInfo, ReportError, DEFAULT_SERVICE_LEVEL_SECS};

use crate::switch::Switch;

/// The period and format asked for, or why the query is bad.
fn parse(q: &ReportQuery) -> Result<(Period, Format), FiguresRefused> {
    let bad = |e: ReportError| FiguresRefused::BadRequest(e.to_string());
    let non_empty = |v: &Option<String>| v.clone().filter(|t| !t.is_empty());
    let period = match (non_empty(&q.month), non_empty(&q.week)) {
        (Some(m), None) => Period::month(&m).map_err(bad)?,
        (None, Some(w)) => Period::week(&w).map_err(bad)?,
        _ => {
            return Err(FiguresRefused::BadRequest(
                "give one of month=YYYY-MM or week=YYYY-Www".into(),
            ))
        }
    };
    let format = non_empty(&q.format)
        .map(|f| f.parse())
        .transpose()
        .map_err(bad)?
        .unwrap_or_default();
    Ok((period, format))
}

/// The report of `q.practice` over the period asked for, rendered.
pub(super) async fn report(
    switch: &Switch,
    q: &ReportQuery,
) -> Result<ReportDocument, FiguresRefused> {
    if q.practice.is_empty() {
        return Err(FiguresRefused::BadRequest("practice: missing".into()));
    }
    let (period, format) = parse(q)?;
    let practice = switch
        .config()
        .practice(&q.practice)
        .map(|p| PracticeInfo {
            id: p.id.clone(),
            name: p.name.clone(),
            timezone: p.timezone,
        })
        .ok_or_else(|| FiguresRefused::UnknownPractice(format!("no practice {}", q.practice)))?;
    let file_name = format!(
        "rapport-{}-{}.{}",
        practice.id,
        period.code(),
        format.extension()
    );
    let report = super::callbacks::read_store(switch, move |r| {
        Ok(permanence_report::load(
            r,
            &practice,
            period,
            DEFAULT_SERVICE_LEVEL_SECS,
        ))
    })
    .await
    .ok_or_else(|| FiguresRefused::Unavailable("call records not readable".into()))?
    .map_err(|e| FiguresRefused::Unavailable(e.to_string()))?;
    let body = permanence_report::render(&report, format)
        .map_err(|e| FiguresRefused::Unavailable(e.to_string()))?;
    Ok(ReportDocument {
        content_type: format.content_type(),
        file_name,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_checked() {
        let q = |month: Option<&str>, week: Option<&str>, format: Option<&str>| ReportQuery {
            practice: "martin".into(),
            month: month.map(String::from),
            week: week.map(String::from),
            format: format.map(String::from),
        };
        assert!(matches!(
            parse(&q(Some("2025-03"), None, None)),
            Ok((Period::Month { .. }, Format::Html))
        ));
        assert!(matches!(
            parse(&q(None, Some("2025-W10"), Some("csv"))),
            Ok((Period::Week { .. }, Format::Csv))
        ));
        for bad in [
            q(None, None, None),
            q(Some("2025-03"), Some("2025-W10"), None),
            q(Some("2025-3"), None, None),
            q(Some("2025-03"), None, Some("pdf")),
        ] {
            assert!(matches!(parse(&bad), Err(FiguresRefused::BadRequest(_))));
        }
    }
}
