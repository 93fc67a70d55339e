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
//! Open or closed is decided by the wall clock alone, so a local time that a
//! fall-back change repeats has the same state both times: a night shift
//! `22:00-02:30` on the last Saturday of October (Paris) closes at the first
//! 02:30 CEST, is open again from 02:00 CET to the second 02:30, and
//! [`Schedule::next_change`] reports each of those changes.

#![forbid(unsafe_code)]

pub mod french;

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
    /// A range starting at `24:00`, the end of the day.
    #[error("invalid time range {0:?}: a range cannot start at 24:00 (the end of the day); start it at 00:00 of the next day")]
    StartsAtEndOfDay(String),
    /// A range given in minutes that does not lie within one day.
    #[error("time range of {start}-{end} minutes on {day} is outside the day: the start must be below 1440 (24:00) and the end at most 1440")]
    OutsideDay {
        /// The weekday.
        day: String,
        /// Start, in minutes since midnight.
        start: u16,
        /// End, in minutes since midnight.
        end: u16,
    },
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

/// Parses `HH:MM` (00:00 to 24:00) into minutes since midnight: one or two
/// ASCII digits for the hour, exactly two for the minutes (no sign).
pub fn parse_time_of_day(s: &str) -> Result<u16, CalendarError> {
    let bad = || CalendarError::BadTime(s.to_string());
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    if h.is_empty() || h.len() > 2 || m.len() != 2 || !digits(h) || !digits(m) {
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
/// `24:00` is a valid end but not a valid start.
pub fn parse_time_range(s: &str) -> Result<(u16, u16), CalendarError> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| CalendarError::BadRange(s.to_string()))?;
    let start = parse_time_of_day(a).map_err(|_| CalendarError::BadRange(s.to_string()))?;
    let end = parse_time_of_day(b).map_err(|_| CalendarError::BadRange(s.to_string()))?;
    if start == MINUTES_PER_DAY {
        return Err(CalendarError::StartsAtEndOfDay(s.to_string()));
    }
    if start == end {
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
    /// crosses midnight and continues on the next weekday. `start` must be
    /// below 1440 and `end` at most 1440 ([`CalendarError::OutsideDay`]).
    pub fn add(&mut self, day: Weekday, start: u16, end: u16) -> Result<(), CalendarError> {
        let name = format!("{day:?}").to_lowercase();
        if start >= MINUTES_PER_DAY || end > MINUTES_PER_DAY {
            return Err(CalendarError::OutsideDay {
                day: name,
                start,
                end,
            });
        }
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
    ///
    /// `is_open` reads the local wall clock, so the state can only change
    /// when the wall clock reaches a range boundary or midnight, or at a
    /// UTC offset change (the wall clock jumps). On a fall-back night a
    /// repeated local time is reached twice, and both occurrences are
    /// candidates: a range ending inside the repeated hour (a night shift
    /// `22:00-02:30` on the last Saturday of October in Paris) closes at the
    /// first 02:30, is open again from the offset change (second 02:00) and
    /// closes again at the second 02:30, and every one of those changes is
    /// reported.
    pub fn next_change(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.always_open {
            return None;
        }
        let now_open = self.is_open(at);
        // Start a day early: the second occurrence of the previous day's
        // late boundaries can follow `at` when the repeated hour crosses
        // midnight (America/Santiago, Asia/Beirut).
        let first = self.local(at).date() - Duration::days(1);
        let mut best: Option<DateTime<Utc>> = None;
        let mut day_start = self.instant_of(first, 0);
        let mut candidates: Vec<DateTime<Utc>> = Vec::new();
        for offset in 0..=401 {
            let date = first + Duration::days(offset);
            // Every candidate of this day and the following ones is at or
            // after the first occurrence of this day's midnight.
            if best.is_some_and(|b| b <= day_start) {
                break;
            }
            let (hours, _) = self.hours_on(date);
            candidates.clear();
            for r in hours.ranges() {
                self.push_instants_of(date, r.start, &mut candidates);
                self.push_instants_of(date, r.end, &mut candidates);
            }
            // Midnight is a boundary too, since the next day may have
            // different hours. (This day's own midnight was the previous
            // day's end, or is not after `at`.)
            self.push_instants_of(date, MINUTES_PER_DAY, &mut candidates);
            let day_end = self.instant_of(date, MINUTES_PER_DAY);
            self.push_offset_changes(day_start, day_end, &mut candidates);
            candidates.sort_unstable();
            candidates.dedup();
            if let Some(t) = candidates
                .iter()
                .copied()
                .filter(|&t| t > at && best.is_none_or(|b| t < b))
                .find(|&t| self.is_open(t) != now_open)
            {
                best = Some(t);
            }
            day_start = day_end;
        }
        best
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

    /// Pushes every UTC instant at which local `date` + `minute` occurs: one
    /// normally, two for a time repeated by a fall-back change, and for a
    /// time skipped by a spring-forward change the instant of the change.
    fn push_instants_of(&self, date: NaiveDate, minute: u16, out: &mut Vec<DateTime<Utc>>) {
        let (d, m) = if minute >= MINUTES_PER_DAY {
            (date + Duration::days(1), minute - MINUTES_PER_DAY)
        } else {
            (date, minute)
        };
        let local = NaiveTime::from_hms_opt(u32::from(m / 60), u32::from(m % 60), 0)
            .map(|time| d.and_time(time));
        match local.map(|l| self.tz.from_local_datetime(&l)) {
            Some(chrono::LocalResult::Single(t)) => out.push(t.with_timezone(&Utc)),
            Some(chrono::LocalResult::Ambiguous(a, b)) => {
                out.push(a.with_timezone(&Utc));
                out.push(b.with_timezone(&Utc));
            }
            _ => out.push(self.instant_of(date, minute)),
        }
    }

    /// Pushes the instants in `(from, to]` at which the zone's UTC offset
    /// changes.
    fn push_offset_changes(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        out: &mut Vec<DateTime<Utc>>,
    ) {
        use chrono::Offset;
        let offset = |t: DateTime<Utc>| {
            self.tz
                .offset_from_utc_datetime(&t.naive_utc())
                .fix()
                .local_minus_utc()
        };
        // Offset changes are months apart in practice (never two within six
        // hours); sampling every six hours and bisecting between samples
        // that differ finds each one.
        let step = Duration::hours(6);
        let mut lo = from;
        let mut lo_offset = offset(lo);
        while lo < to {
            let hi = (lo + step).min(to);
            let hi_offset = offset(hi);
            if hi_offset != lo_offset {
                // First second in (a, b] with an offset other than lo's.
                let (mut a, mut b) = (lo, hi);
                while b - a > Duration::seconds(1) {
                    let mid = a + (b - a) / 2;
                    if offset(mid) == lo_offset {
                        a = mid;
                    } else {
                        b = mid;
                    }
                }
                out.push(b);
            }
            lo = hi;
            lo_offset = hi_offset;
        }
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
    use chrono::Timelike;

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
    fn time_of_day_accepts_only_ascii_digits() {
        for bad in [
            "+8:00",
            "08:+5",
            "+08:00",
            "8:+0",
            "-8:00",
            " 8:00x",
            "8 :00",
            "08: 5",
            "٠٨:٠٠",
        ] {
            assert_eq!(
                parse_time_of_day(bad),
                Err(CalendarError::BadTime(bad.to_string())),
                "{bad:?}"
            );
        }
        assert!(parse_time_range("+8:00-12:00").is_err());
        assert_eq!(parse_time_of_day("8:05"), Ok(485));
        assert_eq!(parse_time_of_day(" 08:05 "), Ok(485));
        assert_eq!(parse_time_of_day("00:00"), Ok(0));
    }

    #[test]
    fn range_cannot_start_at_24_00() {
        for text in ["24:00-01:00", "24:00-24:00", "24:00-00:00"] {
            let err = parse_time_range(text).expect_err(text);
            assert_eq!(err, CalendarError::StartsAtEndOfDay(text.to_string()));
            assert!(err.to_string().contains("cannot start at 24:00"), "{err}");
        }
        assert!(matches!(
            WeeklyHours::default().add_text(Weekday::Mon, "24:00-01:00"),
            Err(CalendarError::StartsAtEndOfDay(_))
        ));
        // 24:00 stays a valid end.
        assert_eq!(parse_time_range("20:00-24:00"), Ok((1200, 1440)));
        assert_eq!(parse_time_range("00:00-24:00"), Ok((0, 1440)));
    }

    #[test]
    fn numeric_ranges_must_lie_within_the_day() {
        let mut w = WeeklyHours::default();
        for (start, end) in [
            (1500, 60),
            (1440, 60),
            (1440, 1440),
            (60, 1441),
            (1500, 1600),
            (0, u16::MAX),
        ] {
            assert_eq!(
                w.add(Weekday::Mon, start, end),
                Err(CalendarError::OutsideDay {
                    day: "mon".to_string(),
                    start,
                    end
                }),
                "{start}-{end}"
            );
        }
        assert_eq!(w, WeeklyHours::default(), "nothing was added");
        w.add(Weekday::Mon, 1320, 1440).expect("ends at 24:00");
        w.add(Weekday::Tue, 1320, 360).expect("night shift");
        assert_eq!(
            w.day(Weekday::Wed).ranges(),
            &[MinuteRange::new(0, 360).expect("valid")]
        );
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

    #[test]
    fn fall_back_night_shift_reopens_in_repeated_hour() {
        // Night shift 22:00-02:30 starting Saturday 2026-10-24. On Sunday
        // 2026-10-25 Paris goes from 03:00 CEST back to 02:00 CET, so local
        // 02:00-02:30 happens twice: 00:00-00:30 UTC and 01:00-01:30 UTC.
        // is_open reads wall time: the shift is open during both passes.
        let mut w = WeeklyHours::default();
        w.add_text(Weekday::Sat, "22:00-02:30").expect("valid");
        let s = Schedule::weekly(paris(), w, HolidayRule::None);
        assert!(s.is_open(utc("2026-10-24T20:00:00Z")));
        assert!(s.is_open(utc("2026-10-25T00:29:00Z")));
        assert!(!s.is_open(utc("2026-10-25T00:30:00Z")));
        assert!(!s.is_open(utc("2026-10-25T00:59:00Z")));
        assert!(s.is_open(utc("2026-10-25T01:00:00Z")));
        assert!(s.is_open(utc("2026-10-25T01:29:00Z")));
        assert!(!s.is_open(utc("2026-10-25T01:30:00Z")));
        let next = |t: &str| s.next_change(utc(t));
        assert_eq!(
            next("2026-10-24T19:00:00Z"),
            Some(utc("2026-10-24T20:00:00Z"))
        );
        assert_eq!(
            next("2026-10-24T20:00:00Z"),
            Some(utc("2026-10-25T00:30:00Z"))
        );
        assert_eq!(
            next("2026-10-25T00:30:00Z"),
            Some(utc("2026-10-25T01:00:00Z"))
        );
        assert_eq!(
            next("2026-10-25T00:45:30Z"),
            Some(utc("2026-10-25T01:00:00Z"))
        );
        assert_eq!(
            next("2026-10-25T01:00:00Z"),
            Some(utc("2026-10-25T01:30:00Z"))
        );
        // Next Saturday 22:00 CET.
        assert_eq!(
            next("2026-10-25T01:30:00Z"),
            Some(utc("2026-10-31T21:00:00Z"))
        );
    }

    #[test]
    fn fall_back_range_starting_in_repeated_hour() {
        // Sunday 02:30-10:00: open during the first 02:30-03:00 (CEST),
        // closed during the second 02:00-02:30 (CET), open again after. The
        // close happens at the offset change itself, which is no boundary.
        let mut w = WeeklyHours::default();
        w.add_text(Weekday::Sun, "02:30-10:00").expect("valid");
        let s = Schedule::weekly(paris(), w, HolidayRule::None);
        assert!(s.is_open(utc("2026-10-25T00:59:00Z")));
        assert!(!s.is_open(utc("2026-10-25T01:00:00Z")));
        assert!(s.is_open(utc("2026-10-25T01:30:00Z")));
        let next = |t: &str| s.next_change(utc(t));
        assert_eq!(
            next("2026-10-25T00:00:00Z"),
            Some(utc("2026-10-25T00:30:00Z"))
        );
        assert_eq!(
            next("2026-10-25T00:30:00Z"),
            Some(utc("2026-10-25T01:00:00Z"))
        );
        assert_eq!(
            next("2026-10-25T01:00:00Z"),
            Some(utc("2026-10-25T01:30:00Z"))
        );
        assert_eq!(
            next("2026-10-25T01:30:00Z"),
            Some(utc("2026-10-25T09:00:00Z"))
        );
    }

    #[test]
    fn fall_back_across_midnight_in_santiago() {
        // 2026-04-05 00:00 -03 in Santiago goes back to 2026-04-04 23:00 -04:
        // the local date itself is repeated for an hour. Open on Saturdays
        // only: Saturday 23:00-24:00 occurs twice (02:00Z and 03:00Z).
        let mut w = WeeklyHours::default();
        w.add_text(Weekday::Sat, "23:00-24:00").expect("valid");
        let s = Schedule::weekly(chrono_tz::America::Santiago, w, HolidayRule::None);
        assert!(s.is_open(utc("2026-04-05T02:00:00Z")));
        assert!(s.is_open(utc("2026-04-05T02:59:00Z")));
        assert!(s.is_open(utc("2026-04-05T03:00:00Z")));
        assert!(!s.is_open(utc("2026-04-05T04:00:00Z")));
        assert_eq!(
            s.next_change(utc("2026-04-05T01:00:00Z")),
            Some(utc("2026-04-05T02:00:00Z"))
        );
        assert_eq!(
            s.next_change(utc("2026-04-05T02:00:00Z")),
            Some(utc("2026-04-05T04:00:00Z"))
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

        /// The same contract on random weekly schedules (night shifts
        /// included, boundaries often inside the hours DST changes affect),
        /// at instants around daylight saving changes, checked minute by
        /// minute: `next_change(at)` is the first instant after `at` where
        /// `is_open` differs, and `None` means no change at all.
        #[test]
        fn next_change_is_first_change_around_dst(
            (s, at) in dst_schedule_and_instant(),
        ) {
            let now_open = s.is_open(at);
            let next = s.next_change(at);
            // Every whole minute strictly between `at` and the change (or
            // over eight days when there is none) has the state of `at`.
            let horizon = next.unwrap_or(at + Duration::days(8));
            let mut probe = at
                .with_second(0)
                .and_then(|t| t.with_nanosecond(0))
                .expect("valid");
            loop {
                probe += Duration::minutes(1);
                if probe >= horizon {
                    break;
                }
                proptest::prop_assert_eq!(
                    s.is_open(probe),
                    now_open,
                    "state changed at {} before next_change {:?}",
                    probe,
                    next
                );
            }
            if let Some(t) = next {
                proptest::prop_assert!(t > at);
                proptest::prop_assert_eq!(t.second(), 0);
                proptest::prop_assert_ne!(s.is_open(t), now_open);
            }
        }
    }

    /// A boundary minute, often one DST changes touch (01:00 to 03:00, the
    /// whole-hour and half-hour marks, midnight).
    fn boundary() -> impl proptest::strategy::Strategy<Value = u16> {
        use proptest::prelude::*;
        prop_oneof![
            (0u16..96).prop_map(|q| q * 15),
            proptest::sample::select(vec![0u16, 60, 90, 120, 135, 150, 165, 180, 210, 1380, 1410]),
        ]
    }

    /// A random weekly schedule in a zone with DST and an instant within
    /// three days of one of that zone's 2026 offset changes. Paris changes at
    /// 01:00 UTC; Santiago and Beirut go back across local midnight; Lord
    /// Howe shifts by 30 minutes.
    fn dst_schedule_and_instant(
    ) -> impl proptest::strategy::Strategy<Value = (Schedule, DateTime<Utc>)> {
        use proptest::prelude::*;
        let zones = vec![
            (chrono_tz::Europe::Paris, "2026-03-29T01:00:00Z"),
            (chrono_tz::Europe::Paris, "2026-10-25T01:00:00Z"),
            (chrono_tz::Europe::Paris, "2026-10-25T01:00:00Z"),
            (chrono_tz::America::Santiago, "2026-04-05T03:00:00Z"),
            (chrono_tz::America::Santiago, "2026-09-06T04:00:00Z"),
            (chrono_tz::Asia::Beirut, "2026-10-24T21:00:00Z"),
            (chrono_tz::Australia::Lord_Howe, "2026-04-04T15:00:00Z"),
        ];
        let ranges = proptest::collection::vec((0u8..7, boundary(), boundary()), 0..5);
        // Sometimes special hours (or a closure) on a date next to the change.
        let exception = proptest::option::of((
            -1i64..=1,
            proptest::collection::vec((boundary(), boundary()), 0..3),
        ));
        (
            proptest::sample::select(zones),
            ranges,
            exception,
            -3 * 86_400i64..3 * 86_400,
        )
            .prop_map(|((tz, change), ranges, exception, delta)| {
                let mut w = WeeklyHours::default();
                for (d, start, end) in ranges {
                    let day = Weekday::try_from(d).expect("0..7");
                    // Overlapping or empty ranges are just skipped.
                    let _ = w.add(day, start, end);
                }
                let mut s = Schedule::weekly(tz, w, HolidayRule::None);
                let change = utc(change);
                if let Some((shift, ranges)) = exception {
                    let date = change.with_timezone(&tz).date_naive() + Duration::days(shift);
                    let mut hours = DayHours::closed();
                    for (a, b) in ranges {
                        if let Some(r) = MinuteRange::new(a.min(b), a.max(b)) {
                            let _ = hours.insert("exception", r);
                        }
                    }
                    s.exceptions
                        .push(DateException::new(date, date, hours, "test").expect("one day"));
                }
                (s, change + Duration::seconds(delta))
            })
    }
}
