//! Destination classes of the French numbering plan (ARCEP).
//!
//! [`classify`] reads what an agent dialled on the softphone (digits with
//! visual separators, a leading `+` or the `00` international prefix) and
//! tells what kind of number it is, with the form to send to the gateway:
//! E.164 for full numbers, the bare digits for emergency and short codes.
//! Numbers of the French overseas departments, dialled nationally
//! (`0262…`, `0692…`, `0590…`), get their own country code (`+262`,
//! `+590`…) and stay fixed or mobile numbers.

use permanence_numbers::mask;

/// What kind of number a destination is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DestinationClass {
    /// 15, 17, 18, 112, 114.
    Emergency,
    /// Geographic and non-geographic fixed numbers: 01-05, 09.
    Fixed,
    /// Mobile numbers: 06, 07.
    Mobile,
    /// Freephone: 0800-0805.
    Freephone,
    /// Special-rate services other than premium: 0806-0809, 081x, 082x,
    /// 084x-088x.
    SharedCost,
    /// Premium rate: 089x.
    Premium,
    /// Other short codes (3xxx, 118xxx, 10xx, 116xxx...).
    Short,
    /// Outside the French plan (a country code other than 33).
    International,
}

impl DestinationClass {
    /// Every class, in order.
    pub const ALL: [DestinationClass; 8] = [
        DestinationClass::Emergency,
        DestinationClass::Fixed,
        DestinationClass::Mobile,
        DestinationClass::Freephone,
        DestinationClass::SharedCost,
        DestinationClass::Premium,
        DestinationClass::Short,
        DestinationClass::International,
    ];

    /// Its name in configuration files, metrics and records.
    pub fn as_str(self) -> &'static str {
        match self {
            DestinationClass::Emergency => "emergency",
            DestinationClass::Fixed => "fixed",
            DestinationClass::Mobile => "mobile",
            DestinationClass::Freephone => "freephone",
            DestinationClass::SharedCost => "shared-cost",
            DestinationClass::Premium => "premium",
            DestinationClass::Short => "short",
            DestinationClass::International => "international",
        }
    }

    /// The class named `s` (see [`DestinationClass::as_str`]).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// A number that can be dialled, with its class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The user part of the Request-URI sent to the gateway: E.164
    /// (`+33612345678`) for full numbers, the digits for short codes (`15`).
    pub dial: String,
    /// Its class.
    pub class: DestinationClass,
}

impl Destination {
    /// The number as logs may show it: emergency numbers and short codes
    /// in clear (they are services, not personal data), any other number
    /// with its middle digits hidden by [`permanence_numbers::mask`]
    /// (`+3361xxxxx78`).
    pub fn masked(&self) -> String {
        match self.class {
            DestinationClass::Emergency | DestinationClass::Short => self.dial.clone(),
            _ => mask(&self.dial),
        }
    }
}

/// The dialled string is not a number we can place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a dialable number")]
pub struct InvalidNumber;

/// The emergency numbers, dialled as they are.
const EMERGENCY: [&str; 5] = ["15", "17", "18", "112", "114"];

/// Fewest and most digits of an E.164 number, country code included.
const E164_DIGITS: std::ops::RangeInclusive<usize> = 8..=15;

/// Digits of a short code (other than the emergency numbers).
const SHORT_DIGITS: std::ops::RangeInclusive<usize> = 3..=6;

/// Digits of a French national significant number (without the `0`).
const FR_NSN_DIGITS: usize = 9;

/// The numbering ranges of the French overseas departments: the first three
/// digits of the national significant number, the country code the range
/// belongs to, and whether it is a fixed or mobile range.
const OVERSEAS: [(&str, &str, DestinationClass); 14] = [
    // Réunion and Mayotte.
    ("262", "262", DestinationClass::Fixed),
    ("263", "262", DestinationClass::Fixed),
    ("269", "262", DestinationClass::Fixed),
    ("639", "262", DestinationClass::Mobile),
    ("692", "262", DestinationClass::Mobile),
    ("693", "262", DestinationClass::Mobile),
    // Guadeloupe, Saint-Martin, Saint-Barthélemy.
    ("590", "590", DestinationClass::Fixed),
    ("690", "590", DestinationClass::Mobile),
    ("691", "590", DestinationClass::Mobile),
    // French Guiana.
    ("594", "594", DestinationClass::Fixed),
    ("694", "594", DestinationClass::Mobile),
    // Martinique.
    ("596", "596", DestinationClass::Fixed),
    ("696", "596", DestinationClass::Mobile),
    ("697", "596", DestinationClass::Mobile),
];

/// The dialled string reduced to its digits.
struct Dialled {
    /// Whether it began with `+`.
    plus: bool,
    /// The ASCII digits, separators removed.
    digits: String,
}

/// Keeps the digits of `dialled`, dropping visual separators (space, `-`,
/// `.`, `(`, `)`). A `+` is accepted once, before any digit. Anything else,
/// or more digits than any number has, makes it invalid.
fn digits_of(dialled: &str) -> Result<Dialled, InvalidNumber> {
    // More than any E.164 number plus the `00` prefix: no need to read on.
    const MAX_DIGITS: usize = 17;
    let mut plus = false;
    let mut digits = String::new();
    for c in dialled.chars() {
        match c {
            '0'..='9' if digits.len() < MAX_DIGITS => digits.push(c),
            '+' if !plus && digits.is_empty() => plus = true,
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return Err(InvalidNumber),
        }
    }
    Ok(Dialled { plus, digits })
}

/// Classifies a dialled number.
///
/// Accepts digits with visual separators (space, `-`, `.`, `(`, `)`), a
/// leading `+` or the `00` international prefix:
///
/// - `15`, `17`, `18`, `112`, `114`: [`DestinationClass::Emergency`];
/// - other codes of 3 to 6 digits not starting with `0` (`3624`, `118218`,
///   `116117`): [`DestinationClass::Short`];
/// - French numbers, national (`0612345678`) or international
///   (`+33612345678`, `0033612345678`): their class in the ARCEP plan,
///   dialled in E.164; overseas departments get their own country code
///   (`0262123456` is `+262262123456`, fixed);
/// - any other country code with 8 to 15 digits in all:
///   [`DestinationClass::International`], except the fixed and mobile
///   ranges of the overseas departments (`+262692…`), which are mobile or
///   fixed.
///
/// Anything else (letters, `*`, `#`, empty, too short or too long) is
/// [`InvalidNumber`]. Never panics.
pub fn classify(dialled: &str) -> Result<Destination, InvalidNumber> {
    let Dialled { plus, digits } = digits_of(dialled)?;
    if plus {
        return international(&digits);
    }
    if let Some(rest) = digits.strip_prefix("00") {
        return international(rest);
    }
    if let Some(nsn) = digits.strip_prefix('0') {
        return national(nsn);
    }
    if EMERGENCY.contains(&digits.as_str()) {
        return Ok(Destination {
            dial: digits,
            class: DestinationClass::Emergency,
        });
    }
    if SHORT_DIGITS.contains(&digits.len()) {
        return Ok(Destination {
            dial: digits,
            class: DestinationClass::Short,
        });
    }
    Err(InvalidNumber)
}

/// Classifies a number given with its country code (`digits`, without `+`
/// or `00`).
fn international(digits: &str) -> Result<Destination, InvalidNumber> {
    if !E164_DIGITS.contains(&digits.len()) || digits.starts_with('0') {
        return Err(InvalidNumber);
    }
    if let Some(nsn) = digits.strip_prefix("33") {
        return national(nsn);
    }
    // An overseas department's fixed or mobile range, dialled with its own
    // country code.
    let overseas = OVERSEAS.iter().find(|(range, cc, _)| {
        digits
            .strip_prefix(cc)
            .is_some_and(|nsn| nsn.len() == FR_NSN_DIGITS && nsn.starts_with(range))
    });
    let class = overseas.map_or(DestinationClass::International, |&(_, _, class)| class);
    Ok(Destination {
        dial: format!("+{digits}"),
        class,
    })
}

/// Classifies a French national significant number: the 9 digits after the
/// trunk prefix `0` or the country code 33.
fn national(nsn: &str) -> Result<Destination, InvalidNumber> {
    if nsn.len() != FR_NSN_DIGITS {
        return Err(InvalidNumber);
    }
    if let Some(&(_, cc, class)) = OVERSEAS.iter().find(|(range, _, _)| nsn.starts_with(range)) {
        return Ok(Destination {
            dial: format!("+{cc}{nsn}"),
            class,
        });
    }
    let mut d = nsn.bytes();
    let class = match (d.next(), d.next(), d.next()) {
        (Some(b'1'..=b'5' | b'9'), _, _) => DestinationClass::Fixed,
        (Some(b'6' | b'7'), _, _) => DestinationClass::Mobile,
        (Some(b'8'), Some(b'0'), Some(b'0'..=b'5')) => DestinationClass::Freephone,
        (Some(b'8'), Some(b'0'), Some(b'6'..=b'9')) => DestinationClass::SharedCost,
        (Some(b'8'), Some(b'1'..=b'8'), _) => DestinationClass::SharedCost,
        (Some(b'8'), Some(b'9'), _) => DestinationClass::Premium,
        // `00…` (the international prefix, not a national number).
        _ => return Err(InvalidNumber),
    };
    Ok(Destination {
        dial: format!("+33{nsn}"),
        class,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use DestinationClass::*;

    fn ok(s: &str) -> (String, DestinationClass) {
        let d = classify(s).unwrap_or_else(|_| panic!("{s:?} should be valid"));
        (d.dial, d.class)
    }

    fn check(cases: &[(&str, &str, DestinationClass)]) {
        for &(input, dial, class) in cases {
            assert_eq!(ok(input), (dial.to_string(), class), "{input:?}");
        }
    }

    #[test]
    fn emergency_numbers() {
        check(&[
            ("15", "15", Emergency),
            ("17", "17", Emergency),
            ("18", "18", Emergency),
            ("112", "112", Emergency),
            ("114", "114", Emergency),
            ("1 12", "112", Emergency),
        ]);
    }

    #[test]
    fn short_codes() {
        check(&[
            ("3624", "3624", Short),
            ("118218", "118218", Short),
            ("118 218", "118218", Short),
            ("1014", "1014", Short),
            ("116117", "116117", Short),
            ("115", "115", Short),
            ("119", "119", Short),
            ("3919", "3919", Short),
        ]);
    }

    #[test]
    fn national_classes() {
        check(&[
            ("0145678901", "+33145678901", Fixed),
            ("0245678901", "+33245678901", Fixed),
            ("0345678901", "+33345678901", Fixed),
            ("0450000001", "+33450000001", Fixed),
            ("0545678901", "+33545678901", Fixed),
            ("0945678901", "+33945678901", Fixed),
            ("0612345678", "+33612345678", Mobile),
            ("0712345678", "+33712345678", Mobile),
            ("0800123456", "+33800123456", Freephone),
            ("0805123456", "+33805123456", Freephone),
            ("0806123456", "+33806123456", SharedCost),
            ("0809123456", "+33809123456", SharedCost),
            ("0810123456", "+33810123456", SharedCost),
            ("0820123456", "+33820123456", SharedCost),
            ("0836123456", "+33836123456", SharedCost),
            ("0844123456", "+33844123456", SharedCost),
            ("0851123456", "+33851123456", SharedCost),
            ("0862123456", "+33862123456", SharedCost),
            ("0870123456", "+33870123456", SharedCost),
            ("0884123456", "+33884123456", SharedCost),
            ("0890123456", "+33890123456", Premium),
            ("0899123456", "+33899123456", Premium),
        ]);
    }

    #[test]
    fn separators() {
        for s in [
            "06 12 34 56 78",
            "06-12-34-56-78",
            "06.12.34.56.78",
            "(06) 12 34 56 78",
            " 0612345678 ",
            "+33 6 12 34 56 78",
            "+33 (6) 12.34.56-78",
            "00 33 6 12 34 56 78",
        ] {
            assert_eq!(ok(s), ("+33612345678".to_string(), Mobile), "{s:?}");
        }
    }

    #[test]
    fn french_international_forms() {
        check(&[
            ("+33612345678", "+33612345678", Mobile),
            ("0033612345678", "+33612345678", Mobile),
            ("+33899123456", "+33899123456", Premium),
            ("0033899123456", "+33899123456", Premium),
            ("+33800123456", "+33800123456", Freephone),
            ("+33450000001", "+33450000001", Fixed),
        ]);
    }

    #[test]
    fn overseas_dialled_nationally() {
        check(&[
            ("0262123456", "+262262123456", Fixed),
            ("0263123456", "+262263123456", Fixed),
            ("0269123456", "+262269123456", Fixed),
            ("0639123456", "+262639123456", Mobile),
            ("0692123456", "+262692123456", Mobile),
            ("0693123456", "+262693123456", Mobile),
            ("0590123456", "+590590123456", Fixed),
            ("0690123456", "+590690123456", Mobile),
            ("0691123456", "+590691123456", Mobile),
            ("0594123456", "+594594123456", Fixed),
            ("0694123456", "+594694123456", Mobile),
            ("0596123456", "+596596123456", Fixed),
            ("0696123456", "+596696123456", Mobile),
            ("0697123456", "+596697123456", Mobile),
            // Neighbouring metropolitan ranges stay +33.
            ("0261123456", "+33261123456", Fixed),
            ("0595123456", "+33595123456", Fixed),
            ("0695123456", "+33695123456", Mobile),
            // Also written with +33: the overseas code is used.
            ("+33262123456", "+262262123456", Fixed),
            ("+33692123456", "+262692123456", Mobile),
        ]);
    }

    #[test]
    fn overseas_with_their_country_code() {
        check(&[
            ("+262262123456", "+262262123456", Fixed),
            ("+262692123456", "+262692123456", Mobile),
            ("+262639123456", "+262639123456", Mobile),
            ("00262692123456", "+262692123456", Mobile),
            ("+590590123456", "+590590123456", Fixed),
            ("+590690123456", "+590690123456", Mobile),
            ("+594594123456", "+594594123456", Fixed),
            ("+594694123456", "+594694123456", Mobile),
            ("+596596123456", "+596596123456", Fixed),
            ("+596697123456", "+596697123456", Mobile),
            // Outside those ranges, or of another length: international.
            ("+262123456789", "+262123456789", International),
            ("+2626921234", "+2626921234", International),
            ("+590612345678", "+590612345678", International),
            // Other French territories have their own plans.
            ("+687123456", "+687123456", International),
            ("+508412345", "+508412345", International),
        ]);
    }

    #[test]
    fn international() {
        check(&[
            ("+41221234567", "+41221234567", International),
            ("0041221234567", "+41221234567", International),
            ("+44 20 7946 0958", "+442079460958", International),
            ("+3224567890", "+3224567890", International),
            ("+12125551234", "+12125551234", International),
            ("+49123456", "+49123456", International),
            ("+123456789012345", "+123456789012345", International),
            // `00` then ten digits: the international prefix wins.
            ("0012345678", "+12345678", International),
        ]);
    }

    #[test]
    fn invalid() {
        for s in [
            "",
            " ",
            "+",
            "00",
            "0",
            "1",
            "10",
            "16",
            "99",
            "1234567",
            "123456789",
            "33612345678",
            "061234567",
            "06123456789",
            "0012345",
            "+4112345",
            "+4912345",
            "+1234567890123456",
            "001234567890123456",
            "+0612345678",
            "+33 (0)6 12 34 56 78",
            "+3361234567",
            "+336123456789",
            "003361234567",
            "+33012345678",
            "0612345678a",
            "alice",
            "*21",
            "15#",
            "#31#0612345678",
            "06+12345678",
            "++33612345678",
            "06/12/34/56/78",
            "06_12_34_56_78",
            "０６１２３４５６７８",
            "0612345678\u{0}",
            "0612345678\n",
        ] {
            assert_eq!(classify(s), Err(InvalidNumber), "{s:?}");
        }
        let long = "0".repeat(10_000);
        assert_eq!(classify(&long), Err(InvalidNumber));
    }

    #[test]
    fn masking() {
        let m = |s: &str| classify(s).map(|d| d.masked()).unwrap();
        assert_eq!(m("15"), "15");
        assert_eq!(m("112"), "112");
        assert_eq!(m("3624"), "3624");
        assert_eq!(m("118218"), "118218");
        assert_eq!(m("0612345678"), "+3361xxxxx78");
        assert_eq!(m("0262123456"), "+2622xxxxxx56");
        assert_eq!(m("+41221234567"), "+4122xxxxx67");
        assert_eq!(m("+49123456"), "+4912xx56");
    }

    #[test]
    fn class_names_round_trip() {
        for c in DestinationClass::ALL {
            assert_eq!(DestinationClass::parse(c.as_str()), Some(c));
        }
        assert_eq!(DestinationClass::parse("Premium"), None);
    }

    /// Whether `dial` is `+` then 8-15 digits, or 2-6 digits.
    fn well_formed(dial: &str) -> bool {
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        match dial.strip_prefix('+') {
            Some(d) => (8..=15).contains(&d.len()) && all_digits(d),
            None => (2..=6).contains(&dial.len()) && all_digits(dial),
        }
    }

    fn check_result(s: &str) -> Result<(), proptest::test_runner::TestCaseError> {
        if let Ok(d) = classify(s) {
            proptest::prop_assert!(well_formed(&d.dial), "{:?} -> {:?}", s, d);
            let masked = d.masked();
            proptest::prop_assert_eq!(masked.len(), d.dial.len());
            // Classifying what is sent to the gateway gives the same.
            if d.dial.starts_with('+') {
                proptest::prop_assert_eq!(classify(&d.dial), Ok(d.clone()));
            }
        }
        Ok(())
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_any_string(s in "\\PC{0,40}") {
            check_result(&s)?;
        }

        /// Strings made of what numbers are made of, which random text
        /// seldom is.
        #[test]
        fn never_panics_on_number_like_strings(s in "[+]?[0-9 .()-]{0,20}") {
            check_result(&s)?;
        }

        #[test]
        fn every_national_number_is_classified(nsn in "[1-9][0-9]{8}") {
            let d = classify(&format!("0{nsn}"));
            proptest::prop_assert!(d.is_ok());
            proptest::prop_assert_eq!(classify(&format!("+33{nsn}")), d.clone());
            proptest::prop_assert_eq!(classify(&format!("0033{nsn}")), d);
        }
    }
}
