//! The period of a report: a calendar month (`2025-03`) or an ISO week
//! (`2025-W10`), from local midnight to local midnight in the practice's
//! time zone.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::Serialize;

use crate::ReportError;

/// A calendar period, in local dates (first day included, last excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// A calendar month.
    Month {
        /// The year.
        year: i32,
        /// The month, 1 to 12.
        month: u32,
    },
    /// An ISO 8601 week (Monday to Sunday).
    Week {
        /// The ISO week-numbering year.
        year: i32,
        /// The week, 1 to 53.
        week: u32,
    },
}

impl Period {
    /// Parses `YYYY-MM`.
    pub fn month(text: &str) -> Result<Self, ReportError> {
        let bad = || ReportError::BadPeriod(format!("{text}: expected YYYY-MM"));
        let (y, m) = text.split_once('-').ok_or_else(bad)?;
        let (year, month) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if y.len() != 4 || m.len() != 2 || NaiveDate::from_ymd_opt(year, month, 1).is_none() {
            return Err(bad());
        }
        Ok(Period::Month { year, month })
    }

    /// Parses `YYYY-Www` (ISO week, `2025-W09`).
    pub fn week(text: &str) -> Result<Self, ReportError> {
        let bad = || ReportError::BadPeriod(format!("{text}: expected YYYY-Www"));
        let (y, w) = text.split_once("-W").ok_or_else(bad)?;
        let (year, week) = (y.parse().map_err(|_| bad())?, w.parse().map_err(|_| bad())?);
        if y.len() != 4 || w.len() != 2 {
            return Err(bad());
        }
        NaiveDate::from_isoywd_opt(year, week, Weekday::Mon).ok_or_else(bad)?;
        Ok(Period::Week { year, week })
    }

    /// The month of `day`.
    pub fn month_of(day: NaiveDate) -> Self {
        Period::Month {
            year: day.year(),
            month: day.month(),
        }
    }

    /// First local day (included) and last local day (excluded).
    pub fn days(&self) -> (NaiveDate, NaiveDate) {
        match *self {
            Period::Month { year, month } => {
                let first = NaiveDate::from_ymd_opt(year, month, 1).unwrap_or_default();
                let next = if month == 12 {
                    NaiveDate::from_ymd_opt(year + 1, 1, 1)
                } else {
                    NaiveDate::from_ymd_opt(year, month + 1, 1)
                };
                (first, next.unwrap_or(first))
            }
            Period::Week { year, week } => {
                let first =
                    NaiveDate::from_isoywd_opt(year, week, Weekday::Mon).unwrap_or_default();
                (first, first + Duration::days(7))
            }
        }
    }

    /// The period's instants in `tz`: from the local midnight of its first
    /// day (included) to that of the day after its last (excluded).
    pub fn bounds(&self, tz: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
        let (first, end) = self.days();
        (local_midnight(tz, first), local_midnight(tz, end))
    }

    /// The machine form (`2025-03`, `2025-W10`).
    pub fn code(&self) -> String {
        match *self {
            Period::Month { year, month } => format!("{year:04}-{month:02}"),
            Period::Week { year, week } => format!("{year:04}-W{week:02}"),
        }
    }

    /// The French label (« mars 2025 », « semaine 10 de 2025, du 03/03 au
    /// 09/03 »).
    pub fn label_fr(&self) -> String {
        match *self {
            Period::Month { year, month } => {
                let name = (month as usize)
                    .checked_sub(1)
                    .and_then(|i| permanence_calendar::french::MONTHS.get(i))
                    .copied()
                    .unwrap_or("?");
                format!("{name} {year}")
            }
            Period::Week { year, week } => {
                let (first, end) = self.days();
                let last = end - Duration::days(1);
                format!(
                    "semaine {week} de {year}, du {} au {}",
                    first.format("%d/%m/%Y"),
                    last.format("%d/%m/%Y")
                )
            }
        }
    }
}

/// The first instant of `day` in `tz`: midnight, or the first local time
/// after a gap if midnight does not exist that day (a zone changing its
/// clocks at midnight).
pub fn local_midnight(tz: Tz, day: NaiveDate) -> DateTime<Utc> {
    let mut t = day.and_time(NaiveTime::MIN);
    for _ in 0..4 {
        if let Some(local) = tz.from_local_datetime(&t).earliest() {
            return local.with_timezone(&Utc);
        }
        t += Duration::minutes(30);
    }
    Utc.from_utc_datetime(&day.and_time(NaiveTime::MIN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_and_weeks_parse_and_refuse() {
        assert_eq!(
            Period::month("2025-03").ok(),
            Some(Period::Month {
                year: 2025,
                month: 3
            })
        );
        for bad in ["2025-13", "2025-3", "25-03", "2025", "mars", "2025-00"] {
            assert!(Period::month(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Period::week("2025-W10").ok(),
            Some(Period::Week {
                year: 2025,
                week: 10
            })
        );
        for bad in ["2025-W54", "2025-10", "2025-W1", "2025-W00", "2021-W53"] {
            assert!(Period::week(bad).is_err(), "{bad}");
        }
        assert!(Period::week("2020-W53").is_ok());
    }

    #[test]
    fn bounds_follow_the_zone_across_dst() {
        let paris = chrono_tz::Europe::Paris;
        // March 2025: starts in winter time (UTC+1), ends in summer (UTC+2).
        let (since, until) = Period::Month {
            year: 2025,
            month: 3,
        }
        .bounds(paris);
        assert_eq!(since.to_rfc3339(), "2025-02-28T23:00:00+00:00");
        assert_eq!(until.to_rfc3339(), "2025-03-31T22:00:00+00:00");
        // ISO week 43 of 2025 ends on the change back to winter time.
        let week = Period::Week {
            year: 2025,
            week: 43,
        };
        let (since, until) = week.bounds(paris);
        assert_eq!(since.to_rfc3339(), "2025-10-19T22:00:00+00:00");
        assert_eq!(until.to_rfc3339(), "2025-10-26T23:00:00+00:00");
        assert_eq!((until - since).num_hours(), 7 * 24 + 1);
        assert_eq!(
            week.label_fr(),
            "semaine 43 de 2025, du 20/10/2025 au 26/10/2025"
        );
        let dec = Period::Month {
            year: 2024,
            month: 12,
        };
        assert_eq!(
            dec.days().1,
            NaiveDate::from_ymd_opt(2025, 1, 1).unwrap_or_default()
        );
        assert_eq!(dec.label_fr(), "décembre 2024");
        assert_eq!(dec.code(), "2024-12");
    }

    #[test]
    fn a_missing_midnight_starts_at_the_first_local_time() {
        // America/Santiago moved its clocks from 00:00 to 01:00 on 2022-09-11.
        let tz = chrono_tz::America::Santiago;
        let day = NaiveDate::from_ymd_opt(2022, 9, 11).unwrap_or_default();
        assert_eq!(
            local_midnight(tz, day).to_rfc3339(),
            "2022-09-11T04:00:00+00:00"
        );
    }
}
