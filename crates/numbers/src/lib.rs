//! Telephone numbers: normalisation to E.164 and masking for logs.
//!
//! Carriers deliver numbers in many shapes: `+33450000001`,
//! `tel:+33-4-50-00-00-01`, `sip:0450000001@carrier;user=phone`,
//! `0033450000001`. [`normalize`] turns all of them into one [`E164`] so a
//! practice is found whatever form its forwarded number arrives in.
//! Caller numbers are personal (health) data: [`E164::masked`] is what logs
//! show at info level (`+3345xxxxx01`).

#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};
use std::fmt;

/// A number in E.164 form: `+` then 2 to 15 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct E164(String);

impl E164 {
    /// The number as `+digits`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits without the leading `+`.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }

    /// The number with its middle digits hidden: `+3345xxxxx01`. Keeps the
    /// country code and first digits (enough to tell a mobile from a
    /// landline region) and the last two digits.
    pub fn masked(&self) -> String {
        mask(&self.0)
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for E164 {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        normalize(&s, Country::Fr).ok_or_else(|| format!("not a telephone number: {s:?}"))
    }
}

impl From<E164> for String {
    fn from(n: E164) -> String {
        n.0
    }
}

/// The national numbering plan used to read numbers without a country code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Country {
    /// France: `0` + 9 digits, country code 33.
    #[default]
    Fr,
    /// Belgium: `0` + 8 or 9 digits, country code 32.
    Be,
    /// Switzerland: `0` + 9 digits, country code 41.
    Ch,
    /// Monaco: 8 digits, no trunk prefix, country code 377.
    Mc,
}

impl Country {
    fn national(self, digits: &str) -> Option<String> {
        let n = digits.len();
        match self {
            Country::Fr if n == 10 && digits.starts_with('0') => {
                Some(format!("+33{}", &digits[1..]))
            }
            Country::Be if (9..=10).contains(&n) && digits.starts_with('0') => {
                Some(format!("+32{}", &digits[1..]))
            }
            Country::Ch if n == 10 && digits.starts_with('0') => {
                Some(format!("+41{}", &digits[1..]))
            }
            Country::Mc if n == 8 && !digits.starts_with('0') => Some(format!("+377{digits}")),
            _ => None,
        }
    }
}

/// Extracts the number part of a `sip:`/`sips:`/`tel:` URI or a bare number,
/// also accepting a name-addr (`"Name" <sip:...>`). Returns the raw user
/// part (URI parameters removed), not yet normalised.
pub fn user_part(uri: &str) -> &str {
    let mut s = uri.trim();
    if let (Some(l), Some(r)) = (s.find('<'), s.rfind('>')) {
        if l < r {
            s = &s[l + 1..r];
        }
    }
    let lower_prefix = |p: &str| s.get(..p.len()).is_some_and(|x| x.eq_ignore_ascii_case(p));
    if lower_prefix("sips:") {
        s = &s[5..];
        s = s.split('@').next().unwrap_or(s);
    } else if lower_prefix("sip:") {
        s = &s[4..];
        s = s.split('@').next().unwrap_or(s);
    } else if lower_prefix("tel:") {
        s = &s[4..];
    }
    // Parameters: `;user=phone` on the URI, `;phone-context=...` on tel:.
    s.split(';').next().unwrap_or(s)
}

/// Normalises a number (bare, `tel:` or `sip:` form) to E.164, reading
/// numbers without a country code in `country`'s plan. Visual separators
/// (space, `-`, `.`, `(`, `)`) are ignored. `00` is the international
/// prefix. Returns `None` for anything that is not a telephone number
/// (a SIP user name such as `alice`, a short code such as `15`).
pub fn normalize(raw: &str, country: Country) -> Option<E164> {
    let s = user_part(raw);
    let mut plus = false;
    let mut digits = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        match c {
            '+' if i == 0 => plus = true,
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return None,
        }
    }
    let e164 = if plus {
        format!("+{digits}")
    } else if let Some(rest) = digits.strip_prefix("00") {
        format!("+{rest}")
    } else if let Some(n) = country.national(&digits) {
        n
    } else if digits.len() >= 11 && !digits.starts_with('0') {
        // Some carriers drop the `+` but keep the country code.
        format!("+{digits}")
    } else {
        return None;
    };
    let len = e164.len() - 1;
    if !(8..=15).contains(&len) || e164[1..].starts_with('0') {
        return None;
    }
    Some(E164(e164))
}

/// Masks any number-like string for logs: keeps the first five characters
/// and the last two, replaces the others with `x`. Strings of seven
/// characters or fewer are fully masked.
pub fn mask(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    if n <= 7 {
        return "x".repeat(n);
    }
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| if i < 5 || i >= n - 2 { *c } else { 'x' })
        .collect()
}

/// Masks the number inside a URI for logs (`sip:+3345xxxxx01@host`); a URI
/// whose user part is not a number is returned with the user part masked too.
pub fn mask_uri(uri: &str) -> String {
    let user = user_part(uri);
    if user.is_empty() {
        return uri.to_string();
    }
    uri.replacen(user, &mask(user), 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Option<String> {
        normalize(s, Country::Fr).map(|e| e.0)
    }

    #[test]
    fn french_forms() {
        let want = Some("+33450000001".to_string());
        assert_eq!(n("+33450000001"), want);
        assert_eq!(n("0450000001"), want);
        assert_eq!(n("04 50 00 00 01"), want);
        assert_eq!(n("04.50.00.00.01"), want);
        assert_eq!(n("0033450000001"), want);
        assert_eq!(n("33450000001"), want);
        assert_eq!(n("tel:+33-4-50-00-00-01"), want);
        assert_eq!(n("tel:+33450000001;phone-context=example.com"), want);
        assert_eq!(n("sip:+33450000001@carrier.example;user=phone"), want);
        assert_eq!(n("sip:0450000001@10.0.0.1:5060"), want);
        assert_eq!(n("<sip:+33450000001;npdi@carrier>"), want);
        assert_eq!(n("\"Cabinet\" <sip:0450000001@x>;tag=1"), want);
        assert_eq!(n("SIP:+33450000001@x"), want);
    }

    #[test]
    fn not_numbers() {
        assert_eq!(n("sip:alice@permanence"), None);
        assert_eq!(n("15"), None);
        assert_eq!(n("112"), None);
        assert_eq!(n(""), None);
        assert_eq!(n("+"), None);
        assert_eq!(n("+0123456789"), None);
        assert_eq!(n("+1234567890123456"), None);
        assert_eq!(n("45000001"), None);
    }

    #[test]
    fn other_countries() {
        assert_eq!(
            normalize("024567890", Country::Be).map(|e| e.0),
            Some("+3224567890".into())
        );
        assert_eq!(
            normalize("0223456789", Country::Ch).map(|e| e.0),
            Some("+41223456789".into())
        );
        assert_eq!(
            normalize("93123456", Country::Mc).map(|e| e.0),
            Some("+37793123456".into())
        );
    }

    #[test]
    fn masks() {
        let e = normalize("+33450000001", Country::Fr).expect("valid");
        assert_eq!(e.masked(), "+3345xxxxx01");
        assert_eq!(mask("alice"), "xxxxx");
        assert_eq!(mask_uri("sip:+33612345678@host"), "sip:+3361xxxxx78@host");
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_is_idempotent(s in "\\PC{0,40}") {
            if let Some(e) = normalize(&s, Country::Fr) {
                proptest::prop_assert_eq!(normalize(e.as_str(), Country::Fr), Some(e.clone()));
                proptest::prop_assert_eq!(e.masked().len(), e.as_str().len());
            }
            let _ = mask(&s);
            let _ = mask_uri(&s);
        }
    }
}
