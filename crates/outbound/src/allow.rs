//! Allow-lists of destinations (toll-fraud guard).
//!
//! Each practice and agent has an [`AllowList`]: the destination classes
//! it may call (by default French fixed and mobile numbers and the
//! emergency numbers) and numbers allowed whatever their class (an E.164
//! prefix such as `+41`, an exact premium number, an exact short code).
//! A call to anything else is refused before it reaches the gateway.

use crate::destination::{Destination, DestinationClass};
use std::collections::BTreeSet;

/// Which destinations may be called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowList {
    /// Classes allowed.
    pub classes: BTreeSet<DestinationClass>,
    /// Numbers allowed whatever their class: E.164 prefixes (`+41`,
    /// `+3289`) or exact short codes (`3624`).
    pub numbers: Vec<String>,
}

impl Default for AllowList {
    /// [`AllowList::french_default`].
    fn default() -> Self {
        Self::french_default()
    }
}

/// An allow-list from a configuration file is not valid. The messages are
/// meant to follow `file:line: field: `.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AllowListError {
    /// A class name that is not one of [`DestinationClass::as_str`].
    #[error("unknown destination class {name:?} (known: {})", known_classes())]
    UnknownClass {
        /// The name as written.
        name: String,
    },
    /// A numbers entry that is neither `+` then 1 to 15 digits nor a short
    /// code of 2 to 6 digits.
    #[error(
        "invalid number {entry:?} (expected an E.164 prefix, \"+\" then 1 to 15 digits, \
         or a short code of 2 to 6 digits, without separators)"
    )]
    InvalidNumber {
        /// The entry as written.
        entry: String,
    },
}

/// The valid class names, comma-separated, for error messages.
fn known_classes() -> String {
    DestinationClass::ALL
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a numbers entry allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry<'a> {
    /// E.164 numbers starting with this (`+` included).
    Prefix(&'a str),
    /// Exactly this short code.
    Short(&'a str),
}

/// Reads a numbers entry: `+` then 1 to 15 digits, or 2 to 6 digits.
/// `None` for anything else, which allows nothing.
fn entry(s: &str) -> Option<Entry<'_>> {
    let all_digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    match s.strip_prefix('+') {
        Some(d) if (1..=15).contains(&d.len()) && all_digits(d) => Some(Entry::Prefix(s)),
        Some(_) => None,
        None if (2..=6).contains(&s.len()) && all_digits(s) => Some(Entry::Short(s)),
        None => None,
    }
}

impl AllowList {
    /// What a practice or agent may call unless configured otherwise:
    /// French fixed and mobile numbers and the emergency numbers.
    pub fn french_default() -> Self {
        Self {
            classes: [
                DestinationClass::Emergency,
                DestinationClass::Fixed,
                DestinationClass::Mobile,
            ]
            .into_iter()
            .collect(),
            numbers: Vec::new(),
        }
    }

    /// Reads an allow-list from a configuration file: `classes` are class
    /// names ([`DestinationClass::as_str`]), `numbers` are E.164 prefixes
    /// (`+` then 1 to 15 digits: `+41` allows all of Switzerland,
    /// `+33899123456` that one premium number) or exact short codes of 2 to
    /// 6 digits (`3624`). Repeated entries are kept once. The first invalid
    /// name or entry is the error.
    pub fn parse(classes: &[String], numbers: &[String]) -> Result<AllowList, AllowListError> {
        let classes = classes
            .iter()
            .map(|name| {
                DestinationClass::parse(name)
                    .ok_or_else(|| AllowListError::UnknownClass { name: name.clone() })
            })
            .collect::<Result<BTreeSet<_>, _>>()?;
        let mut kept: Vec<String> = Vec::with_capacity(numbers.len());
        for n in numbers {
            if entry(n).is_none() {
                return Err(AllowListError::InvalidNumber { entry: n.clone() });
            }
            if !kept.contains(n) {
                kept.push(n.clone());
            }
        }
        Ok(AllowList {
            classes,
            numbers: kept,
        })
    }

    /// Whether `d` may be called: its class is allowed, or its `dial`
    /// starts with a `+…` prefix of `numbers`, or equals a short code of
    /// `numbers`. Malformed entries (see [`AllowList::parse`]) allow
    /// nothing: a bare `+` is not "every number".
    pub fn allows(&self, d: &Destination) -> bool {
        self.classes.contains(&d.class)
            || self.numbers.iter().any(|n| match entry(n) {
                Some(Entry::Prefix(p)) => d.dial.starts_with(p),
                Some(Entry::Short(code)) => d.dial == code,
                None => false,
            })
    }

    /// The list for logs: class names then numbers entries, comma-separated
    /// (`emergency, fixed, mobile, +41, 3624`), or `nothing` when empty.
    pub fn describe(&self) -> String {
        let parts: Vec<&str> = self
            .classes
            .iter()
            .map(|c| c.as_str())
            .chain(self.numbers.iter().map(String::as_str))
            .collect();
        if parts.is_empty() {
            "nothing".to_string()
        } else {
            parts.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::classify;

    fn d(s: &str) -> Destination {
        classify(s).unwrap()
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn default_allows_fixed_mobile_emergency() {
        let a = AllowList::default();
        assert_eq!(a, AllowList::french_default());
        for s in [
            "15",
            "17",
            "18",
            "112",
            "114",
            "0450000001",
            "0612345678",
            "0712345678",
        ] {
            assert!(a.allows(&d(s)), "{s}");
        }
        // Overseas departments are French fixed and mobile numbers.
        for s in ["0262123456", "0692123456", "+596696123456"] {
            assert!(a.allows(&d(s)), "{s}");
        }
    }

    #[test]
    fn default_refuses_the_rest() {
        let a = AllowList::french_default();
        for s in [
            "0899123456",
            "+33899123456",
            "0800123456",
            "0810123456",
            "0836123456",
            "+41221234567",
            "0044207946095",
            "+262123456789",
            "3624",
            "118218",
            "1014",
        ] {
            assert!(!a.allows(&d(s)), "{s}");
        }
    }

    #[test]
    fn prefix_entries() {
        let mut a = AllowList::french_default();
        a.numbers = strings(&["+41", "+33899123456"]);
        assert!(a.allows(&d("+41221234567")));
        assert!(a.allows(&d("0041 79 123 45 67")));
        assert!(!a.allows(&d("+44 20 7946 0958")));
        assert!(!a.allows(&d("+4312345678")));
        assert!(a.allows(&d("08 99 12 34 56")));
        assert!(!a.allows(&d("0899123457")));
        assert!(!a.allows(&d("0890123456")));
        // A prefix entry never matches a short code.
        a.numbers = strings(&["+3"]);
        assert!(!a.allows(&d("3624")));
        assert!(a.allows(&d("+3224567890")));
    }

    #[test]
    fn exact_short_codes() {
        let mut a = AllowList::french_default();
        a.numbers = strings(&["3624"]);
        assert!(a.allows(&d("3624")));
        assert!(!a.allows(&d("362")));
        assert!(!a.allows(&d("36245")));
        assert!(!a.allows(&d("3625")));
        // Not a prefix of full numbers either.
        a.numbers = strings(&["33"]);
        assert!(!a.allows(&d("+33899123456")));
    }

    #[test]
    fn classes_allow_everything_in_them() {
        let a = AllowList {
            classes: [DestinationClass::Short, DestinationClass::International]
                .into_iter()
                .collect(),
            numbers: Vec::new(),
        };
        assert!(a.allows(&d("3624")));
        assert!(a.allows(&d("+41221234567")));
        assert!(!a.allows(&d("15")));
        assert!(!a.allows(&d("0612345678")));
    }

    #[test]
    fn malformed_entries_allow_nothing() {
        let a = AllowList {
            classes: BTreeSet::new(),
            numbers: strings(&[
                "+",
                "",
                "+41 22",
                "1",
                "1234567",
                "+4x",
                "+1234567890123456",
            ]),
        };
        for s in ["+41221234567", "15", "3624", "0612345678", "+12125551234"] {
            assert!(!a.allows(&d(s)), "{s}");
        }
        assert_eq!(
            a.describe(),
            "+, , +41 22, 1, 1234567, +4x, +1234567890123456"
        );
    }

    #[test]
    fn parse_valid() {
        let a = AllowList::parse(
            &strings(&["mobile", "emergency", "fixed", "mobile"]),
            &strings(&["+41", "3624", "+33899123456", "+41", "15"]),
        )
        .unwrap();
        assert_eq!(a.classes, AllowList::french_default().classes);
        assert_eq!(a.numbers, strings(&["+41", "3624", "+33899123456", "15"]));
        assert_eq!(
            a.describe(),
            "emergency, fixed, mobile, +41, 3624, +33899123456, 15"
        );
        let every: Vec<String> = DestinationClass::ALL
            .iter()
            .map(|c| c.as_str().to_string())
            .collect();
        let all = AllowList::parse(&every, &[]).unwrap();
        assert_eq!(all.classes.len(), DestinationClass::ALL.len());
        assert_eq!(
            all.describe(),
            "emergency, fixed, mobile, freephone, shared-cost, premium, short, international"
        );
        let none = AllowList::parse(&[], &[]).unwrap();
        assert_eq!(none.describe(), "nothing");
        assert!(!none.allows(&d("15")));
    }

    #[test]
    fn parse_unknown_class() {
        let e = AllowList::parse(&strings(&["fixed", "premuim"]), &[]).unwrap_err();
        assert_eq!(
            e,
            AllowListError::UnknownClass {
                name: "premuim".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "unknown destination class \"premuim\" (known: emergency, fixed, mobile, \
             freephone, shared-cost, premium, short, international)"
        );
        for bad in ["Fixed", " fixed", "", "shared_cost", "all"] {
            assert!(
                matches!(
                    AllowList::parse(&strings(&[bad]), &[]),
                    Err(AllowListError::UnknownClass { name }) if name == bad
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn parse_invalid_numbers() {
        for bad in [
            "+",
            "",
            "1",
            "1234567",
            "+41 22",
            "+4x",
            "+1234567890123456",
            "++41",
            "3624#",
            "*21",
        ] {
            assert_eq!(
                AllowList::parse(&[], &strings(&["+41", bad])),
                Err(AllowListError::InvalidNumber { entry: bad.into() }),
                "{bad:?}"
            );
        }
        let e = AllowList::parse(&[], &strings(&["+41 22"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid number \"+41 22\" (expected an E.164 prefix, \"+\" then 1 to 15 \
             digits, or a short code of 2 to 6 digits, without separators)"
        );
        // The class error comes first.
        assert!(matches!(
            AllowList::parse(&strings(&["nope"]), &strings(&["+"])),
            Err(AllowListError::UnknownClass { .. })
        ));
    }
}
