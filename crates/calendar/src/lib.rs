//! Opening hours and shift windows, evaluated in a time zone.
//!
//! A [`Schedule`] is a weekly pattern of local time ranges plus dated
//! exceptions (closures, special hours) and a public-holiday rule. It answers
//! two questions for any UTC instant: is it open ([`Schedule::is_open`]) and
//! when does that change next ([`Schedule::next_change`]). It never reads a
//! clock: the caller passes the instant, so the dispatcher and the simulator
//! can run it on virtual time.
//!
//! Local times are evaluated in the schedule's IANA time zone, so daylight
//! saving changes (Europe/Paris: last Sunday of March and of October) are
//! handled: a range `08:00-20:00` is twelve wall-clock hours on every day,
//! and a boundary that falls in a spring-forward gap takes effect at the gap.

#![forbid(unsafe_code)]

pub use chrono::Weekday;
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
pub use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Minutes in a day; the largest valid range end (`24:00`).
pub const MINUTES_PER_DAY: u16 = 1440;

/// Errors raised while building a schedule from text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// A time of day that is not `HH:MM` (00:00 to 24:00).
    #[error("invalid time of day {0:?}: expected HH:MM between 00:00 and 24:00")]
    BadTime(String),
    /// A range that is not `HH:MM-HH:MM`.
    #[error("invalid time range {0:?}: expected HH:MM-HH:MM")]
    BadRange(String),
    /// A range whose start equals its end.
    #[error("empty time range {0:?}: start and end are equal")]
    EmptyRange(String),
    /// Two ranges of the same day overlap.
    #[error("time ranges overlap on {day}: {a} and {b}")]
    Overlap {
        /// The day (weekday name or date).
        day: String,
        /// First range.
        a: MinuteRange,
        /// Second range.
        b: MinuteRange,
    },
    /// An unknown time zone name.
    #[error("unknown time zone {0:?} (expected an IANA name such as Europe/Paris)")]
    BadTimeZone(String),
    /// An unknown weekday name.
    #[error("unknown weekday {0:?} (expected mon, tue, wed, thu, fri, sat or sun)")]
    BadWeekday(String),
    /// A date that is not `YYYY-MM-DD`.
    #[error("invalid date {0:?}: expected YYYY-MM-DD")]
    BadDate(String),
    /// A date interval whose end is before its start.
    #[error("date interval ends before it starts: {0} .. {1}")]
    ReversedDates(NaiveDate, NaiveDate),
}

/// A half-open range of minutes within one local day, `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MinuteRange {
    /// First minute inside the range (0..1440).
    pub start: u16,
    /// First minute after the range (1..=1440).
    pub end: u16,
}

impl MinuteRange {
    /// A range within one day; `None` unless `start < end <= 1440`.
    pub fn new(start: u16, end: u16) -> Option<Self> {
        (start < end && end <= MINUTES_PER_DAY).then_some(Self { start, end })
    }

    /// The whole day, `00:00-24:00`.
    pub const fn whole_day() -> Self {
        Self {
            start: 0,
            end: MINUTES_PER_DAY,
        }
    }

    /// Whether minute-of-day `m` lies inside the range.
    pub fn contains(&self, m: u16) -> bool {
        self.start <= m && m < self.end
    }
}

impl std::fmt::Display for MinuteRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

/// Parses `HH:MM` (00:00 to 24:00) into minutes since midnight.
pub fn parse_time_of_day(s: &str) -> Result<u16, CalendarError> {
    let bad = || CalendarError::BadTime(s.to_string());
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// Parses `HH:MM-HH:MM`. The end may be earlier than the start: the range
/// then crosses midnight (a night shift `22:00-06:00`), which
/// [`WeeklyHours::add`] splits over two days. Returns `(start, end)` minutes.
pub fn parse_time_range(s: &str) -> Result<(u16, u16), CalendarError> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| CalendarError::BadRange(s.to_string()))?;
    let start = parse_time_of_day(a).map_err(|_| CalendarError::BadRange(s.to_string()))?;
    let end = parse_time_of_day(b).map_err(|_| CalendarError::BadRange(s.to_string()))?;
    if start == end || (start == MINUTES_PER_DAY) {
        return Err(CalendarError::EmptyRange(s.to_string()));
    }
    Ok((start, end))
}

/// Parses a weekday name in English or French, short or long
/// (`mon`, `monday`, `lun`, `lundi`, ...), case-insensitive.
pub fn parse_weekday(s: &str) -> Result<Weekday, CalendarError> {
    let l = s.trim().to_ascii_lowercase();
    let d = match l.as_str() {
        "mon" | "monday" | "lun" | "lundi" => Weekday::Mon,
        "tue" | "tuesday" | "mar" | "mardi" => Weekday::Tue,
        "wed" | "wednesday" | "mer" | "mercredi" => Weekday::Wed,
        "thu" | "thursday" | "jeu" | "jeudi" => Weekday::Thu,
        "fri" | "friday" | "ven" | "vendredi" => Weekday::Fri,
        "sat" | "saturday" | "sam" | "samedi" => Weekday::Sat,
        "sun" | "sunday" | "dim" | "dimanche" => Weekday::Sun,
        _ => return Err(CalendarError::BadWeekday(s.to_string())),
    };
    Ok(d)
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Result<NaiveDate, CalendarError> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| CalendarError::BadDate(s.into()))
}

/// Parses an IANA time zone name.
pub fn parse_tz(s: &str) -> Result<Tz, CalendarError> {
    s.trim()
        .parse::<Tz>()
        .map_err(|_| CalendarError::BadTimeZone(s.to_string()))
}

/// The open ranges of one local day, sorted and non-overlapping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayHours {
    ranges: Vec<MinuteRange>,
}

impl DayHours {
    /// A closed day.
    pub fn closed() -> Self {
        Self::default()
    }

    /// Open all day.
    pub fn whole_day() -> Self {
        Self {
            ranges: vec![MinuteRange::whole_day()],
        }
    }

    /// Builds a day from ranges; overlapping ranges are an error, adjacent
    /// ones (`08:00-12:00`, `12:00-14:00`) are merged.
    pub fn from_ranges(
        day: &str,
        ranges: impl IntoIterator<Item = MinuteRange>,
    ) -> Result<Self, CalendarError> {
        let mut d = Self::default();
        for r in ranges {
            d.insert(day, r)?;
        }
        Ok(d)
    }

    /// Adds one range; errors if it overlaps an existing one.
    pub fn insert(&mut self, day: &str, r: MinuteRange) -> Result<(), CalendarError> {
        if let Some(o) = self
            .ranges
            .iter()
            .find(|o| o.start < r.end && r.start < o.end)
        {
            return Err(CalendarError::Overlap {
                day: day.to_string(),
                a: *o,
                b: r,
            });
        }
        self.ranges.push(r);
        self.ranges.sort();
        // Merge adjacent ranges so boundaries are real open/closed changes.
        let mut merged: Vec<MinuteRange> = Vec::with_capacity(self.ranges.len());
        for r in self.ranges.drain(..) {
            match merged.last_mut() {
                Some(last) if last.end == r.start => last.end = r.end,
                _ => merged.push(r),
            }
        }
        self.ranges = merged;
        Ok(())
    }

    /// The ranges, sorted.
    pub fn ranges(&self) -> &[MinuteRange] {
        &self.ranges
    }

    /// Whether minute-of-day `m` is inside an open range.
    pub fn contains(&self, m: u16) -> bool {
        self.ranges.iter().any(|r| r.contains(m))
    }

    /// Whether the day has no open range.
    pub fn is_closed(&self) -> bool {
        self.ranges.is_empty()
    }
}

/// A weekly pattern: the open ranges of each weekday.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeeklyHours {
    days: [DayHours; 7],
}

impl WeeklyHours {
    /// Open around the clock, every day.
    pub fn always() -> Self {
        Self {
            days: std::array::from_fn(|_| DayHours::whole_day()),
        }
    }

    /// Adds a range on `day`, given as minutes. When `end <= start` the range
    /// crosses midnight and continues on the next weekday.
    pub fn add(&mut self, day: Weekday, start: u16, end: u16) -> Result<(), CalendarError> {
        let name = format!("{day:?}").to_lowercase();
        if end > start {
            let r = MinuteRange::new(start, end).ok_or(CalendarError::EmptyRange(name.clone()))?;
            return self.days[day.num_days_from_monday() as usize].insert(&name, r);
        }
        if start < MINUTES_PER_DAY {
            let r = MinuteRange::new(start, MINUTES_PER_DAY)
                .ok_or(CalendarError::EmptyRange(name.clone()))?;
            self.days[day.num_days_from_monday() as usize].insert(&name, r)?;
        }
        if end > 0 {
            let next = day.succ();
            let r = MinuteRange::new(0, end).ok_or(CalendarError::EmptyRange(name))?;
            let next_name = format!("{next:?}").to_lowercase();
            self.days[next.num_days_from_monday() as usize].insert(&next_name, r)?;
        }
        Ok(())
    }

    /// Adds a range written `HH:MM-HH:MM` on `day`.
    pub fn add_text(&mut self, day: Weekday, range: &str) -> Result<(), CalendarError> {
        let (s, e) = parse_time_range(range)?;
        self.add(day, s, e)
    }

    /// The hours of a weekday.
    pub fn day(&self, day: Weekday) -> &DayHours {
        &self.days[day.num_days_from_monday() as usize]
    }

    /// Whether no weekday has any open range.
    pub fn is_never_open(&self) -> bool {
        self.days.iter().all(DayHours::is_closed)
    }
}

/// Which public holidays close a schedule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HolidayRule {
    /// Public holidays are ordinary days.
    #[default]
    None,
    /// The eleven French public holidays (including Lundi de Pentecôte).
    Fr,
    /// French holidays plus Vendredi saint and Saint-Étienne (Alsace-Moselle).
    FrAlsaceMoselle,
    /// Belgian public holidays.
    Be,
    /// Monegasque public holidays.
    Mc,
}

impl HolidayRule {
    /// The holiday on `date`, if any, by its French name.
    pub fn holiday(&self, date: NaiveDate) -> Option<&'static str> {
        match self {
            HolidayRule::None => None,
            HolidayRule::Fr => french_holiday(date, false),
            HolidayRule::FrAlsaceMoselle => french_holiday(date, true),
            HolidayRule::Be => belgian_holiday(date),
            HolidayRule::Mc => monegasque_holiday(date),
        }
    }
}

/// Easter Sunday (Gregorian calendar), by the Meeus/Jones/Butcher algorithm.
pub fn easter_sunday(year: i32) -> NaiveDate {
    let a = year.rem_euclid(19);
    let b = year.div_euclid(100);
    let c = year.rem_euclid(100);
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15).rem_euclid(30);
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k).rem_euclid(7);
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    // The algorithm always yields a valid March or April date.
    NaiveDate::from_ymd_opt(year, month as u32, day as u32).unwrap_or(NaiveDate::MIN)
}

fn easter_offset(date: NaiveDate) -> i64 {
    (date - easter_sunday(date.year())).num_days()
}

fn french_holiday(date: NaiveDate, alsace_moselle: bool) -> Option<&'static str> {
    let fixed = match (date.month(), date.day()) {
        (1, 1) => Some("Jour de l'an"),
        (5, 1) => Some("Fête du Travail"),
        (5, 8) => Some("Victoire 1945"),
        (7, 14) => Some("Fête nationale"),
        (8, 15) => Some("Assomption"),
        (11, 1) => Some("Toussaint"),
        (11, 11) => Some("Armistice 1918"),
        (12, 25) => Some("Noël"),
        (12, 26) if alsace_moselle => Some("Saint-Étienne"),
        _ => None,
    };
    fixed.or(match easter_offset(date) {
        -2 if alsace_moselle => Some("Vendredi saint"),
        1 => Some("Lundi de Pâques"),
        39 => Some("Ascension"),
        50 => Some("Lundi de Pentecôte"),
        _ => None,
    })
}

fn belgian_holiday(date: NaiveDate) -> Option<&'static str> {
    let fixed = match (date.month(), date.day()) {
        (1, 1) => Some("Nouvel An"),
        (5, 1) => Some("Fête du Travail"),
        (7, 21) => Some("Fête nationale"),
        (8, 15) => Some("Assomption"),
        (11, 1) => Some("Toussaint"),
        (11, 11) => Some("Armistice"),
        (12, 25) => Some("Noël"),
        _ => None,
    };
    fixed.or(match easter_offset(date) {
        1 => Some("Lundi de Pâques"),
        39 => Some("Ascension"),
        50 => Some("Lundi de Pentecôte"),
        _ => None,
    })
}

fn monegasque_holiday(date: NaiveDate) -> Option<&'static str> {
    let fixed = match (date.month(), date.day()) {
        (1, 1) => Some("Jour de l'an"),
        (1, 27) => Some("Sainte Dévote"),
        (5, 1) => Some("Fête du Travail"),
        (8, 15) => Some("Assomption"),
        (11, 1) => Some("Toussaint"),
        (11, 19) => Some("Fête du Prince"),
        (12, 8) => Some("Immaculée Conception"),
        (12, 25) => Some("Noël"),
        _ => None,
    };
    fixed.or(match easter_offset(date) {
        1 => Some("Lundi de Pâques"),
        39 => Some("Ascension"),
        50 => Some("Lundi de Pentecôte"),
        60 => Some("Fête-Dieu"),
        _ => None,
    })
}

/// A dated exception to the weekly pattern: a closure (no hours) or special
/// hours, for one date or an inclusive interval of dates. Exceptions win over
/// public holidays, so a practice can open on a holiday.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DateException {
    /// First date concerned.
    pub from: NaiveDate,
    /// Last date concerned (inclusive).
    pub to: NaiveDate,
    /// Hours on those dates; empty means closed.
    pub hours: DayHours,
    /// Free text for logs and admin views ("congés d'été").
    pub label: String,
}

impl DateException {
    /// Builds an exception; errors if `to < from`.
    pub fn new(
        from: NaiveDate,
        to: NaiveDate,
        hours: DayHours,
        label: impl Into<String>,
    ) -> Result<Self, CalendarError> {
        if to < from {
            return Err(CalendarError::ReversedDates(from, to));
        }
        Ok(Self {
            from,
            to,
            hours,
            label: label.into(),
        })
    }

    fn covers(&self, d: NaiveDate) -> bool {
        self.from <= d && d <= self.to
    }
}

/// Why a schedule is open or closed on a given local date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayKind<'a> {
    /// The weekly pattern applies.
    Regular,
    /// A public holiday, closed all day.
    Holiday(&'static str),
    /// A dated exception applies.
    Exception(&'a str),
}

/// Weekly hours, dated exceptions and holidays in one time zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// The zone local times are read in.
    pub tz: Tz,
    /// Open around the clock, whatever the other fields say.
    pub always_open: bool,
    /// The weekly pattern.
    pub weekly: WeeklyHours,
    /// Public holidays that close the schedule.
    pub holidays: HolidayRule,
    /// Dated exceptions, checked in order; the first that covers a date wins.
    pub exceptions: Vec<DateException>,
}

static ALWAYS_DAY: std::sync::LazyLock<DayHours> = std::sync::LazyLock::new(DayHours::whole_day);
static CLOSED_DAY: DayHours = DayHours { ranges: Vec::new() };

impl Schedule {
    /// Open around the clock (a 24/7 practice, an agent with no shift limit).
    pub fn always(tz: Tz) -> Self {
        Self {
            tz,
            always_open: true,
            weekly: WeeklyHours::always(),
            holidays: HolidayRule::None,
            exceptions: Vec::new(),
        }
    }

    /// A schedule with the given weekly pattern and no exceptions.
    pub fn weekly(tz: Tz, weekly: WeeklyHours, holidays: HolidayRule) -> Self {
        Self {
            tz,
            always_open: false,
            weekly,
            holidays,
            exceptions: Vec::new(),
        }
    }

    /// The hours that apply on a local date, and why.
    pub fn hours_on(&self, date: NaiveDate) -> (&DayHours, DayKind<'_>) {
        if self.always_open {
            return (&ALWAYS_DAY, DayKind::Regular);
        }
        if let Some(e) = self.exceptions.iter().find(|e| e.covers(date)) {
            return (&e.hours, DayKind::Exception(&e.label));
        }
        if let Some(h) = self.holidays.holiday(date) {
            return (&CLOSED_DAY, DayKind::Holiday(h));
        }
        (self.weekly.day(date.weekday()), DayKind::Regular)
    }

    /// The local wall-clock time of an instant in this schedule's zone.
    pub fn local(&self, at: DateTime<Utc>) -> NaiveDateTime {
        at.with_timezone(&self.tz).naive_local()
    }

    /// Whether the schedule is open at `at`.
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        if self.always_open {
            return true;
        }
        let local = self.local(at);
        let minute = minute_of_day(local.time());
        self.hours_on(local.date()).0.contains(minute)
    }

    /// The first instant strictly after `at` where [`Schedule::is_open`]
    /// changes, looking at most 400 days ahead; `None` if it never changes
    /// in that horizon (always open, or never open).
    pub fn next_change(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.always_open {
            return None;
        }
        let now_open = self.is_open(at);
        let start = self.local(at).date();
        for offset in 0..=400 {
            let date = start + Duration::days(offset);
            let (hours, _) = self.hours_on(date);
            // Boundaries of this day; midnight is a boundary too, since the
            // next day may have different hours.
            let mut candidates: Vec<u16> = Vec::with_capacity(hours.ranges().len() * 2 + 1);
            for r in hours.ranges() {
                candidates.push(r.start);
                candidates.push(r.end);
            }
            candidates.push(MINUTES_PER_DAY);
            for m in candidates {
                let t = self.instant_of(date, m);
                if t > at && self.is_open(t) != now_open {
                    return Some(t);
                }
            }
        }
        None
    }

    /// The UTC instant at which local `date` + `minute` occurs. A local time
    /// skipped by a spring-forward change maps to the instant of the change;
    /// a repeated one (autumn) maps to its first occurrence.
    pub fn instant_of(&self, date: NaiveDate, minute: u16) -> DateTime<Utc> {
        let (date, minute) = if minute >= MINUTES_PER_DAY {
            (date + Duration::days(1), minute - MINUTES_PER_DAY)
        } else {
            (date, minute)
        };
        let time = NaiveTime::from_hms_opt(u32::from(minute / 60), u32::from(minute % 60), 0)
            .unwrap_or(NaiveTime::MIN);
        let mut local = date.and_time(time);
        // Gaps last at most a few hours; step forward a minute at a time.
        for _ in 0..=240 {
            match self.tz.from_local_datetime(&local) {
                chrono::LocalResult::Single(t) => return t.with_timezone(&Utc),
                chrono::LocalResult::Ambiguous(a, _) => return a.with_timezone(&Utc),
                chrono::LocalResult::None => local += Duration::minutes(1),
            }
        }
        Utc.from_utc_datetime(&local)
    }
}

/// Minutes since local midnight.
pub fn minute_of_day(t: NaiveTime) -> u16 {
    use chrono::Timelike;
    (t.hour() * 60 + t.minute()) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paris() -> Tz {
        chrono_tz::Europe::Paris
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test literal")
            .with_timezone(&Utc)
    }

    fn martin() -> Schedule {
        let mut w = WeeklyHours::default();
        for d in [
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
        ] {
            w.add_text(d, "08:00-12:00").expect("valid");
            w.add_text(d, "14:00-20:00").expect("valid");
        }
        w.add_text(Weekday::Sat, "08:00-12:00").expect("valid");
        Schedule::weekly(paris(), w, HolidayRule::Fr)
    }

    #[test]
    fn parses_times_and_ranges() {
        assert_eq!(parse_time_of_day("08:30"), Ok(510));
        assert_eq!(parse_time_of_day("24:00"), Ok(1440));
        assert!(parse_time_of_day("24:01").is_err());
        assert!(parse_time_of_day("8h30").is_err());
        assert!(parse_time_of_day("12:60").is_err());
        assert_eq!(parse_time_range("22:00-06:00"), Ok((1320, 360)));
        assert!(parse_time_range("10:00-10:00").is_err());
        assert!(parse_time_range("10:00").is_err());
    }

    #[test]
    fn overlapping_ranges_are_rejected_and_adjacent_merged() {
        let mut w = WeeklyHours::default();
        w.add_text(Weekday::Mon, "08:00-12:00").expect("valid");
        assert!(matches!(
            w.add_text(Weekday::Mon, "11:00-13:00"),
            Err(CalendarError::Overlap { .. })
        ));
        w.add_text(Weekday::Mon, "12:00-14:00").expect("adjacent");
        assert_eq!(
            w.day(Weekday::Mon).ranges(),
            &[MinuteRange::new(480, 840).expect("valid")]
        );
    }

    #[test]
    fn weekday_hours_in_winter_and_summer() {
        let s = martin();
        // Monday 2026-01-12, 08:00 Paris = 07:00 UTC (winter, UTC+1).
        assert!(!s.is_open(utc("2026-01-12T06:59:00Z")));
        assert!(s.is_open(utc("2026-01-12T07:00:00Z")));
        assert!(s.is_open(utc("2026-01-12T10:59:00Z")));
        assert!(!s.is_open(utc("2026-01-12T11:00:00Z")));
        // Summer (UTC+2): 08:00 Paris = 06:00 UTC.
        assert!(s.is_open(utc("2026-06-15T06:00:00Z")));
        assert!(!s.is_open(utc("2026-06-15T05:59:00Z")));
        // Saturday morning only, Sunday closed.
        assert!(s.is_open(utc("2026-06-13T09:00:00Z")));
        assert!(!s.is_open(utc("2026-06-13T13:00:00Z")));
        assert!(!s.is_open(utc("2026-06-14T09:00:00Z")));
    }

    #[test]
    fn french_holidays() {
        assert_eq!(
            easter_sunday(2026),
            NaiveDate::from_ymd_opt(2026, 4, 5).expect("d")
        );
        assert_eq!(
            easter_sunday(2027),
            NaiveDate::from_ymd_opt(2027, 3, 28).expect("d")
        );
        assert_eq!(
            easter_sunday(2024),
            NaiveDate::from_ymd_opt(2024, 3, 31).expect("d")
        );
        let d = |m, d| NaiveDate::from_ymd_opt(2026, m, d).expect("valid");
        let fr = HolidayRule::Fr;
        assert_eq!(fr.holiday(d(4, 6)), Some("Lundi de Pâques"));
        assert_eq!(fr.holiday(d(5, 14)), Some("Ascension"));
        assert_eq!(fr.holiday(d(5, 25)), Some("Lundi de Pentecôte"));
        assert_eq!(fr.holiday(d(7, 14)), Some("Fête nationale"));
        assert_eq!(fr.holiday(d(11, 11)), Some("Armistice 1918"));
        assert_eq!(fr.holiday(d(4, 3)), None);
        assert_eq!(
            HolidayRule::FrAlsaceMoselle.holiday(d(4, 3)),
            Some("Vendredi saint")
        );
        assert_eq!(fr.holiday(d(12, 26)), None);
        // Every year has exactly 11 French public holidays.
        for year in 2000..2100 {
            let mut n = 0;
            let mut day = NaiveDate::from_ymd_opt(year, 1, 1).expect("valid");
            while day.year() == year {
                if fr.holiday(day).is_some() {
                    n += 1;
                }
                day = day.succ_opt().expect("valid");
            }
            // Ascension can fall on May 1 or May 8 (2008: May 1): one day
            // then carries two holidays.
            let ascension = easter_sunday(year) + Duration::days(39);
            let shared = ascension.month() == 5 && matches!(ascension.day(), 1 | 8);
            assert_eq!(n, if shared { 10 } else { 11 }, "year {year}");
        }
    }

    #[test]
    fn holiday_closes_and_exception_reopens() {
        let mut s = martin();
        // Lundi de Pâques 2026-04-06, 10:00 Paris = 08:00 UTC.
        let t = utc("2026-04-06T08:00:00Z");
        assert!(!s.is_open(t));
        assert_eq!(
            s.hours_on(NaiveDate::from_ymd_opt(2026, 4, 6).expect("d"))
                .1,
            DayKind::Holiday("Lundi de Pâques")
        );
        let mut h = DayHours::closed();
        h.insert("2026-04-06", MinuteRange::new(540, 720).expect("valid"))
            .expect("valid");
        s.exceptions.push(
            DateException::new(t.date_naive(), t.date_naive(), h, "permanence de Pâques")
                .expect("valid"),
        );
        assert!(s.is_open(t));
        // A closure interval.
        let mut s = martin();
        s.exceptions.push(
            DateException::new(
                NaiveDate::from_ymd_opt(2026, 8, 3).expect("d"),
                NaiveDate::from_ymd_opt(2026, 8, 14).expect("d"),
                DayHours::closed(),
                "congés",
            )
            .expect("valid"),
        );
        assert!(!s.is_open(utc("2026-08-05T08:00:00Z")));
        assert!(s.is_open(utc("2026-08-17T08:00:00Z")));
    }

    #[test]
    fn next_change_walks_boundaries() {
        let s = martin();
        // Friday 2026-01-16 19:00 Paris (18:00 UTC): closes at 20:00 Paris.
        let t = utc("2026-01-16T18:00:00Z");
        assert_eq!(s.next_change(t), Some(utc("2026-01-16T19:00:00Z")));
        // From there: reopens Saturday 08:00 Paris.
        assert_eq!(
            s.next_change(utc("2026-01-16T19:00:00Z")),
            Some(utc("2026-01-17T07:00:00Z"))
        );
        // Saturday noon closes until Monday 08:00.
        assert_eq!(
            s.next_change(utc("2026-01-17T11:00:00Z")),
            Some(utc("2026-01-19T07:00:00Z"))
        );
        // Always open never changes.
        assert_eq!(Schedule::always(paris()).next_change(t), None);
        // Never open never changes either.
        let never = Schedule::weekly(paris(), WeeklyHours::default(), HolidayRule::None);
        assert_eq!(never.next_change(t), None);
    }

    #[test]
    fn dst_spring_forward_day() {
        // 2026-03-29: Paris jumps from 02:00 to 03:00 (UTC+1 -> UTC+2).
        let mut w = WeeklyHours::default();
        w.add_text(Weekday::Sun, "02:30-10:00").expect("valid");
        let s = Schedule::weekly(paris(), w, HolidayRule::None);
        // 00:59 UTC = 01:59 CET: closed. 01:00 UTC = 03:00 CEST: open (the
        // 02:30 boundary fell in the gap).
        assert!(!s.is_open(utc("2026-03-29T00:59:00Z")));
        assert!(s.is_open(utc("2026-03-29T01:00:00Z")));
        assert_eq!(
            s.next_change(utc("2026-03-29T00:00:00Z")),
            Some(utc("2026-03-29T01:00:00Z"))
        );
        // 10:00 CEST = 08:00 UTC.
        assert_eq!(
            s.next_change(utc("2026-03-29T01:00:00Z")),
            Some(utc("2026-03-29T08:00:00Z"))
        );
    }

    #[test]
    fn dst_fall_back_day() {
        // 2026-10-25: Paris goes from 03:00 CEST back to 02:00 CET.
        let mut w = WeeklyHours::default();
        w.add_text(Weekday::Sun, "08:00-20:00").expect("valid");
        let s = Schedule::weekly(paris(), w, HolidayRule::None);
        // 08:00 CET = 07:00 UTC; 20:00 CET = 19:00 UTC: 12 wall-clock hours.
        assert!(!s.is_open(utc("2026-10-25T06:59:00Z")));
        assert!(s.is_open(utc("2026-10-25T07:00:00Z")));
        assert!(s.is_open(utc("2026-10-25T18:59:00Z")));
        assert!(!s.is_open(utc("2026-10-25T19:00:00Z")));
        assert_eq!(
            s.next_change(utc("2026-10-25T00:00:00Z")),
            Some(utc("2026-10-25T07:00:00Z"))
        );
    }

    #[test]
    fn night_shift_crosses_midnight() {
        let mut w = WeeklyHours::default();
        w.add_text(Weekday::Fri, "22:00-06:00").expect("valid");
        let s = Schedule::weekly(paris(), w, HolidayRule::None);
        // Friday 2026-01-16 23:00 Paris and Saturday 05:00 Paris are inside.
        assert!(s.is_open(utc("2026-01-16T22:00:00Z")));
        assert!(s.is_open(utc("2026-01-17T04:00:00Z")));
        assert!(!s.is_open(utc("2026-01-17T05:00:00Z")));
        // Midnight is not reported as a change: it is open on both sides.
        assert_eq!(
            s.next_change(utc("2026-01-16T22:00:00Z")),
            Some(utc("2026-01-17T05:00:00Z"))
        );
    }

    proptest::proptest! {
        /// next_change really is the first change: the state is constant
        /// between `at` and the change, and differs at the change.
        #[test]
        fn next_change_is_first_change(secs in 1_700_000_000i64..1_900_000_000i64) {
            let s = martin();
            let at = DateTime::from_timestamp(secs, 0).expect("in range");
            if let Some(t) = s.next_change(at) {
                proptest::prop_assert!(t > at);
                proptest::prop_assert_ne!(s.is_open(t), s.is_open(at));
                let mut probe = at;
                while probe + Duration::minutes(15) < t {
                    probe += Duration::minutes(15);
                    proptest::prop_assert_eq!(s.is_open(probe), s.is_open(at));
                }
            }
        }
    }
}
