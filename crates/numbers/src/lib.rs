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

/// The byte span of the URI inside `s`: between `<` and `>` in a name-addr
/// (`"Name" <sip:...>;tag=1`, a `<` inside the quoted name does not count),
/// else the whole string.
fn addr_spec_span(s: &str) -> (usize, usize) {
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '<' if !in_quotes => {
                let start = i + 1;
                let end = s[start..].find('>').map_or(s.len(), |j| start + j);
                return (start, end);
            }
            _ => {}
        }
    }
    (0, s.len())
}

/// Extracts the number part of a `sip:`/`sips:`/`tel:` URI or a bare number,
/// also accepting a name-addr (`"Name" <sip:...>`). Returns the raw user
/// part (URI parameters removed), not yet normalised.
pub fn user_part(uri: &str) -> &str {
    let (a, b) = addr_spec_span(uri);
    let mut s = uri[a..b].trim();
    let lower_prefix =
        |s: &str, p: &str| s.get(..p.len()).is_some_and(|x| x.eq_ignore_ascii_case(p));
    if lower_prefix(s, "sips:") {
        s = &s[5..];
        s = s.split('@').next().unwrap_or(s);
    } else if lower_prefix(s, "sip:") {
        s = &s[4..];
        s = s.split('@').next().unwrap_or(s);
    } else if lower_prefix(s, "tel:") {
        s = &s[4..];
    }
    // Parameters: `;user=phone` on the URI, `;phone-context=...` on tel:.
    s.split(';').next().unwrap_or(s)
}

/// The byte span of the user part in `uri` as [`mask_uri`] hides it: the
/// user (and password) before `@` in a `sip:`/`sips:` (or other) URI, the
/// number of a `tel:` URI, or a bare number; parameters after `;` excluded.
/// `None` when there is no user part (`sip:carrier.example`).
fn user_span(uri: &str) -> Option<(usize, usize)> {
    let (a, b) = addr_spec_span(uri);
    let spec = &uri[a..b];
    let lead = spec.len() - spec.trim_start().len();
    let body = &spec[lead..];
    // A scheme: a letter, then letters, digits, `+`, `-` or `.`, then `:`.
    let scheme_len = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
        .filter(|&i| {
            i > 0 && body.as_bytes()[0].is_ascii_alphabetic() && body[i..].starts_with(':')
        });
    let (start, end) = match scheme_len {
        Some(n) if body[..n].eq_ignore_ascii_case("tel") => {
            let rest = &body[n + 1..];
            (n + 1, n + 1 + rest.find(';').unwrap_or(rest.len()))
        }
        Some(n) => {
            let rest = &body[n + 1..];
            let at = rest.find('@')?;
            (n + 1, n + 1 + rest[..at].find(';').unwrap_or(at))
        }
        None => {
            let user = body.split(['@', ';']).next().unwrap_or(body).trim_end();
            (0, user.len())
        }
    };
    (start < end).then_some((a + lead + start, a + lead + end))
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

/// Masks a URI, name-addr or bare number for logs, so that no caller
/// number is readable in it:
///
/// - the user part, at its place in the URI, with [`mask`]
///   (`sip:+3361xxxxx78@host`, `tel:+3345xxxxx01;phone-context=...`); a user
///   part that is not a number (`sip:alice@host`) is masked too;
/// - any other number, that is a run of six digits or more with an optional
///   leading `+` (in a display name also written in groups separated by
///   spaces, dots or dashes, `"06 12 34 56 78"`), also with [`mask`]: the
///   display name, URI parameters (`;rn=+33...`) and header parameters.
///
/// Hosts, ports and other parameters stay readable. The result has as many
/// characters as `uri`.
pub fn mask_uri(uri: &str) -> String {
    let mut out = String::with_capacity(uri.len());
    let (spec_start, _) = addr_spec_span(uri);
    // The display name and `<` (empty when `uri` is not a name-addr).
    out.push_str(&mask_number_runs(&uri[..spec_start], &[' ', '.', '-']));
    match user_span(uri) {
        Some((a, b)) => {
            out.push_str(&mask_number_runs(&uri[spec_start..a], &[]));
            out.push_str(&mask(&uri[a..b]));
            out.push_str(&mask_number_runs(&uri[b..], &[]));
        }
        None => out.push_str(&mask_number_runs(&uri[spec_start..], &[])),
    }
    out
}

/// Masks with [`mask`] every run of six digits or more in `s`, with an
/// optional leading `+`, single `separators` allowed between digits.
fn mask_number_runs(s: &str, separators: &[char]) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        let digit_at = |j: usize| chars.get(j).is_some_and(char::is_ascii_digit);
        let starts_run = digit_at(i) || (chars[i] == '+' && digit_at(i + 1));
        if !starts_run {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let mut j = if chars[i] == '+' { i + 1 } else { i };
        let mut digits = 0;
        loop {
            if digit_at(j) {
                digits += 1;
                j += 1;
            } else if chars.get(j).is_some_and(|c| separators.contains(c)) && digit_at(j + 1) {
                j += 1;
            } else {
                break;
            }
        }
        let run: String = chars[i..j].iter().collect();
        if digits >= 6 {
            out.push_str(&mask(&run));
        } else {
            out.push_str(&run);
        }
        i = j;
    }
    out
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
        // A `<` in the quoted display name is not where the URI starts.
        assert_eq!(n("\"Dr <Martin>\" <sip:0450000001@x>"), want);
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

    #[test]
    fn mask_uri_masks_the_user_part_where_it_is() {
        let cases = [
            // The display name repeats the number: both are masked (the
            // user part used to stay in clear, the name being masked).
            (
                "\"0612345678\" <sip:0612345678@x>",
                "\"06123xxx78\" <sip:06123xxx78@x>",
            ),
            // The user part equals the scheme name: the scheme stays.
            ("sip:sip@x", "sip:xxx@x"),
            ("sips:sips@sips.example", "sips:xxxx@sips.example"),
            ("SIP:+33612345678@X", "SIP:+3361xxxxx78@X"),
            (
                "sips:+33612345678@carrier;user=phone",
                "sips:+3361xxxxx78@carrier;user=phone",
            ),
            // The host and port stay readable.
            (
                "sip:0450000001@192.168.100.200:5060;transport=udp",
                "sip:04500xxx01@192.168.100.200:5060;transport=udp",
            ),
            // User parameters, and a number in one of them.
            (
                "<sip:+33450000001;npdi@carrier>",
                "<sip:+3345xxxxx01;npdi@carrier>",
            ),
            (
                "<sip:+33612345678;npdi;rn=+33698765432@carrier>",
                "<sip:+3361xxxxx78;npdi;rn=+3369xxxxx32@carrier>",
            ),
            // name-addr with header parameters.
            (
                "\"Cabinet\" <sip:0450000001@x>;tag=1",
                "\"Cabinet\" <sip:04500xxx01@x>;tag=1",
            ),
            (
                "Dr Martin <sip:0450000001@x>;tag=a1b2",
                "Dr Martin <sip:04500xxx01@x>;tag=a1b2",
            ),
            // A number in the display name, written with separators.
            (
                "\"Mme Dupont 06 12 34 56 78\" <sip:alice@x>",
                "\"Mme Dupont 06 12xxxxxxx78\" <sip:xxxxx@x>",
            ),
            (
                "\"+33 6.12.34.56.78\" <tel:+33612345678>",
                "\"+33 6xxxxxxxxxx78\" <tel:+3361xxxxx78>",
            ),
            // A `<` inside the quoted display name is not the URI's.
            (
                "\"a<0612345678\" <sip:bob@x>",
                "\"a<06123xxx78\" <sip:xxx@x>",
            ),
            // tel: URIs, with visual separators and parameters.
            ("tel:+33-4-50-00-00-01", "tel:+33-4xxxxxxxxxx01"),
            (
                "tel:+33450000001;phone-context=example.com",
                "tel:+3345xxxxx01;phone-context=example.com",
            ),
            ("<tel:0450000001;ext=123456>", "<tel:04500xxx01;ext=xxxxxx>"),
            // Bare numbers.
            ("+33612345678", "+3361xxxxx78"),
            ("06 12 34 56 78", "06 12xxxxxxx78"),
            // No user part: nothing personal to hide.
            ("sip:carrier.example", "sip:carrier.example"),
            ("<sip:10.0.0.1:5060>", "<sip:10.0.0.1:5060>"),
            ("", ""),
        ];
        for (uri, want) in cases {
            assert_eq!(mask_uri(uri), want, "{uri:?}");
        }
    }

    /// Runs of `n` or more ASCII digits in `s`, ignoring `ignored` characters.
    fn digit_run(s: &str, ignored: &[char], n: usize) -> bool {
        let mut run = 0;
        for c in s.chars().filter(|c| !ignored.contains(c)) {
            run = if c.is_ascii_digit() { run + 1 } else { 0 };
            if run >= n {
                return true;
            }
        }
        false
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_is_idempotent(s in "\\PC{0,40}") {
            if let Some(e) = normalize(&s, Country::Fr) {
                proptest::prop_assert_eq!(normalize(e.as_str(), Country::Fr), Some(e.clone()));
                proptest::prop_assert_eq!(e.masked().len(), e.as_str().len());
            }
            let _ = mask(&s);
            let masked = mask_uri(&s);
            // No six digits in a row survive, and masking keeps the length.
            proptest::prop_assert!(!digit_run(&masked, &[], 6), "{:?} -> {:?}", s, masked);
            proptest::prop_assert_eq!(masked.chars().count(), s.chars().count());
        }

        /// The same on strings made of digits and the characters that
        /// structure a URI, which random text seldom contains.
        #[test]
        fn mask_uri_leaves_no_six_digits(s in "([0-9]{1,8}|[+<>\"@;:=. sipteltag\\\\]){0,12}") {
            let masked = mask_uri(&s);
            proptest::prop_assert!(!digit_run(&masked, &[], 6), "{:?} -> {:?}", s, masked);
            proptest::prop_assert_eq!(masked.chars().count(), s.chars().count());
        }

        /// Whatever its form, a caller's number does not reach the logs,
        /// neither from the URI nor from the display name.
        #[test]
        fn mask_uri_hides_numbers_in_name_addr(
            number in "\\+?[0-9]{6,15}",
            grouped in proptest::bool::ANY,
            name in proptest::option::of("[A-Za-z ]{0,12}"),
            scheme in proptest::sample::select(vec!["sip:", "sips:", "tel:", "SIP:", ""]),
            params in "(;[a-z]{1,6}=[a-z0-9+]{1,8}){0,2}",
            header in "(;tag=[a-z0-9]{1,8})?",
        ) {
            // The display name shows the number, maybe in groups of two.
            let shown = if grouped {
                let digits: Vec<char> = number.chars().collect();
                digits
                    .chunks(2)
                    .map(|c| c.iter().collect::<String>())
                    .collect::<Vec<_>>()
                    .join(" ")
            } else {
                number.clone()
            };
            let host = if scheme.starts_with('t') || scheme.is_empty() { "" } else { "@carrier.example" };
            let uri = match &name {
                Some(n) => format!("\"{n} {shown}\" <{scheme}{number}{params}{host}>{header}"),
                None => format!("{scheme}{number}{params}{host}"),
            };
            let masked = mask_uri(&uri);
            proptest::prop_assert!(
                !digit_run(&masked, &[' '], 8),
                "{:?} -> {:?}", uri, masked
            );
            let bare = number.trim_start_matches('+');
            proptest::prop_assert!(!masked.contains(bare), "{:?} -> {:?}", uri, masked);
        }
    }
}
