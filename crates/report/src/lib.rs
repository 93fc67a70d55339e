//! Monthly and weekly reports per practice, built from the call records
//! alone (so a report can be made at any time, for any period still
//! retained).
//!
//! * [`build`] is a pure function: the practice's rows of a period
//!   ([`ReportInput`]) in, a [`Report`] out. The calls are counted with
//!   [`PracticeFigures::tally`](permanence_records::PracticeFigures::tally),
//!   the one definition of offered, answered, abandoned by phase... shared
//!   with `GET /api/figures` and the metrics.
//! * [`load`] reads those rows from a [`RecordReader`] and builds the
//!   report; [`render`] writes it as JSON, CSV or HTML (a single
//!   self-contained page in French, printable).
//!
//! A report holds counts and durations only: never a caller's number.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod build;
mod csv;
mod html;
mod period;

use std::str::FromStr;

use chrono_tz::Tz;
use permanence_records::{RecordReader, RecordsError};

pub use build::{
    build, percentile, Bucket, CallFigures, CallbackFigures, MinuteFigures, OutboundFigures,
    Report, ReportInput, VoicemailFigures, WaitFigures, DEFAULT_SERVICE_LEVEL_SECS,
};
pub use period::{local_midnight, Period};

/// Why no report was made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The period is not `YYYY-MM` / `YYYY-Www`.
    #[error("bad period: {0}")]
    BadPeriod(String),
    /// The format is not `html`, `csv` or `json`.
    #[error("unknown format `{0}` (html, csv or json)")]
    BadFormat(String),
    /// The call records could not be read.
    #[error("call records: {0}")]
    Records(#[from] RecordsError),
    /// The JSON could not be written.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

/// The renderings of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// A single self-contained HTML page, in French, printable.
    #[default]
    Html,
    /// `section,metric,value` lines.
    Csv,
    /// The [`Report`] as JSON.
    Json,
}

impl Format {
    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Html => "text/html; charset=utf-8",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Json => "application/json",
        }
    }

    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Html => "html",
            Format::Csv => "csv",
            Format::Json => "json",
        }
    }
}

impl FromStr for Format {
    type Err = ReportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "html" => Ok(Format::Html),
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            other => Err(ReportError::BadFormat(other.to_string())),
        }
    }
}

/// The practice a report is about, as configured.
#[derive(Debug, Clone)]
pub struct PracticeInfo {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its time zone.
    pub timezone: Tz,
}

/// Reads the practice's rows of `period` from `reader` and builds its
/// report (service level within `service_level_secs`).
pub fn load(
    reader: &RecordReader,
    practice: &PracticeInfo,
    period: Period,
    service_level_secs: u32,
) -> Result<Report, ReportError> {
    let (since, until) = period.bounds(practice.timezone);
    let calls = reader.practice_calls(&practice.id, since, until)?;
    let callbacks = reader.callbacks_list(Some(&practice.id), &[], usize::MAX)?;
    let outbound = reader.outbound_calls(Some(&practice.id), usize::MAX)?;
    let voicemails: Vec<_> = reader
        .voicemail_deliveries(usize::MAX)?
        .into_iter()
        .filter(|v| v.practice_id == practice.id)
        .map(|v| (v.recorded_at, v.duration_secs))
        .collect();
    Ok(build(&ReportInput {
        practice_id: &practice.id,
        practice_name: &practice.name,
        timezone: practice.timezone,
        period,
        service_level_secs,
        calls: &calls,
        callbacks: &callbacks,
        outbound: &outbound,
        voicemails: &voicemails,
    }))
}

/// `report` rendered as `format`.
pub fn render(report: &Report, format: Format) -> Result<String, ReportError> {
    Ok(match format {
        Format::Json => serde_json::to_string_pretty(report)? + "\n",
        Format::Csv => csv::render(report),
        Format::Html => html::render(report),
    })
}

#[cfg(test)]
mod tests;
