//! French names of weekdays and months, for what a practice reads (the
//! voicemail e-mail, the monthly report). One list each.

use chrono::Weekday;

/// Weekday names, Monday first (`lundi` … `dimanche`).
pub const WEEKDAYS: [&str; 7] = [
    "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche",
];

/// Month names, January first (`janvier` … `décembre`).
pub const MONTHS: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];

/// The French name of `day`.
pub fn weekday(day: Weekday) -> &'static str {
    WEEKDAYS
        .get(day.num_days_from_monday() as usize)
        .copied()
        .unwrap_or("lundi")
}

/// The French name of the month `month0` (0 = January; out of range:
/// `décembre`).
pub fn month(month0: u32) -> &'static str {
    MONTHS.get(month0 as usize).copied().unwrap_or("décembre")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(weekday(Weekday::Mon), "lundi");
        assert_eq!(weekday(Weekday::Sun), "dimanche");
        assert_eq!(month(0), "janvier");
        assert_eq!(month(7), "août");
        assert_eq!(month(11), "décembre");
    }
}
