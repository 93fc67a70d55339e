//! What the agent dialled.
//!
//! An authenticated agent's INVITE carries what was typed on the softphone
//! in the Request-URI user part: either `*8<practice code>*<number>`, to
//! call on behalf of a given practice (its caller ID, its allow-list), or a
//! bare number. Feature codes (`*21`, `*31`…) and SIP user names are not
//! outbound calls and are left to other handlers.

/// An outbound call request from the softphone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialRequest {
    /// The practice code after `*8`, if given.
    pub practice_code: Option<String>,
    /// The number to call, as dialled (not yet classified).
    pub number: String,
}

/// The prefix that introduces a practice code.
const PRACTICE_PREFIX: &str = "*8";

/// Most digits in a practice code.
const MAX_PRACTICE_CODE: usize = 4;

/// Replaces the escapes softphones use for the keypad symbols: `%2A` (or
/// `%2a`) by `*`, `%23` by `#`. Other `%` sequences are kept as they are.
fn unescape(user: &str) -> String {
    let mut out = String::with_capacity(user.len());
    let mut rest = user;
    while let Some(i) = rest.find('%') {
        out.push_str(rest.get(..i).unwrap_or_default());
        let from = rest.get(i..).unwrap_or_default();
        let escape = from.get(..3).unwrap_or_default();
        let decoded = if escape.eq_ignore_ascii_case("%2A") {
            Some('*')
        } else if escape == "%23" {
            Some('#')
        } else {
            None
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = from.get(3..).unwrap_or_default();
            }
            None => {
                out.push('%');
                rest = from.get(1..).unwrap_or_default();
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether `s` looks like a number: ASCII digits (at least one) and visual
/// separators (space, `-`, `.`, `(`, `)`), with an optional leading `+`.
fn is_bare_number(s: &str) -> bool {
    let body = s.strip_prefix('+').unwrap_or(s);
    body.bytes().any(|b| b.is_ascii_digit())
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b' ' | b'-' | b'.' | b'(' | b')'))
}

/// Parses the Request-URI user part of an agent's INVITE.
///
/// - `*8<code>*<number>`, `code` being 1 to 4 digits and `number` not
///   empty: a call on behalf of that practice, `number` kept as dialled;
/// - a bare number (digits with visual separators, optional leading `+`):
///   a call without a practice code;
/// - anything else, feature codes such as `*21` and user names such as
///   `alice` included: `None`.
///
/// `%2A`/`%2a` and `%23` are read as `*` and `#`; one trailing `#` (the
/// "dial" key of some softphones) is dropped. The number is not classified
/// here: see [`crate::destination::classify`].
pub fn parse_dialled(user: &str) -> Option<DialRequest> {
    let unescaped = unescape(user);
    let s = unescaped.strip_suffix('#').unwrap_or(&unescaped);
    if let Some(rest) = s.strip_prefix(PRACTICE_PREFIX) {
        let (code, number) = rest.split_once('*')?;
        let code_ok = (1..=MAX_PRACTICE_CODE).contains(&code.len())
            && code.bytes().all(|b| b.is_ascii_digit());
        if !code_ok || number.is_empty() {
            return None;
        }
        return Some(DialRequest {
            practice_code: Some(code.to_string()),
            number: number.to_string(),
        });
    }
    if !is_bare_number(s) {
        return None;
    }
    Some(DialRequest {
        practice_code: None,
        number: s.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_code(code: &str, number: &str) -> Option<DialRequest> {
        Some(DialRequest {
            practice_code: Some(code.into()),
            number: number.into(),
        })
    }

    fn bare(number: &str) -> Option<DialRequest> {
        Some(DialRequest {
            practice_code: None,
            number: number.into(),
        })
    }

    #[test]
    fn practice_code_form() {
        assert_eq!(
            parse_dialled("*8123*0612345678"),
            with_code("123", "0612345678")
        );
        assert_eq!(parse_dialled("*81*15"), with_code("1", "15"));
        assert_eq!(
            parse_dialled("*81234*+41221234567"),
            with_code("1234", "+41221234567")
        );
        assert_eq!(
            parse_dialled("*8007*06.12.34.56.78"),
            with_code("007", "06.12.34.56.78")
        );
        // Not classified here.
        assert_eq!(
            parse_dialled("*812*0899123456"),
            with_code("12", "0899123456")
        );
        assert_eq!(parse_dialled("*812*abc"), with_code("12", "abc"));
    }

    #[test]
    fn practice_code_form_invalid() {
        for s in [
            "*8",
            "*8*",
            "*8*0612345678",
            "*8123",
            "*8123*",
            "*8123*#",
            "*812345*0612345678",
            "*8a1*0612345678",
            "*8 12*0612345678",
            "*8+12*0612345678",
            "*8١٢*0612345678",
            "*8%2A0612345678",
        ] {
            assert_eq!(parse_dialled(s), None, "{s:?}");
        }
    }

    #[test]
    fn escaped_stars_and_hashes() {
        assert_eq!(
            parse_dialled("%2A8123%2A0612345678"),
            with_code("123", "0612345678")
        );
        assert_eq!(
            parse_dialled("%2a8123%2a0612345678"),
            with_code("123", "0612345678")
        );
        assert_eq!(
            parse_dialled("%2A8123*0612345678%23"),
            with_code("123", "0612345678")
        );
        assert_eq!(parse_dialled("0612345678%23"), bare("0612345678"));
        assert_eq!(parse_dialled("%2A21"), None);
        // Other escapes are not decoded.
        assert_eq!(parse_dialled("%2B33612345678"), None);
        assert_eq!(parse_dialled("06%2012345678"), None);
        assert_eq!(parse_dialled("%"), None);
        assert_eq!(parse_dialled("%2"), None);
        assert_eq!(parse_dialled("15%"), None);
    }

    #[test]
    fn bare_numbers() {
        assert_eq!(parse_dialled("0612345678"), bare("0612345678"));
        assert_eq!(parse_dialled("+33612345678"), bare("+33612345678"));
        assert_eq!(parse_dialled("15"), bare("15"));
        assert_eq!(parse_dialled("3624"), bare("3624"));
        assert_eq!(parse_dialled("06.12.34.56.78"), bare("06.12.34.56.78"));
        assert_eq!(parse_dialled("(06)12-34-56-78"), bare("(06)12-34-56-78"));
        assert_eq!(parse_dialled("0033612345678"), bare("0033612345678"));
    }

    #[test]
    fn trailing_hash_is_dropped() {
        assert_eq!(parse_dialled("0612345678#"), bare("0612345678"));
        assert_eq!(
            parse_dialled("*8123*0612345678#"),
            with_code("123", "0612345678")
        );
        assert_eq!(parse_dialled("15#"), bare("15"));
        // Only one.
        assert_eq!(parse_dialled("15##"), None);
        assert_eq!(parse_dialled("#"), None);
    }

    #[test]
    fn not_outbound_calls() {
        for s in [
            "",
            "+",
            "*",
            "#",
            "*21",
            "*22",
            "*31",
            "*21#",
            "*9*0612345678",
            "**8123*0612345678",
            "alice",
            "agent-12",
            "0612345678a",
            "06+12345678",
            "++33612345678",
            " - ",
            "#31#0612345678",
            "tel:0612345678",
            "sip:0612345678@host",
        ] {
            assert_eq!(parse_dialled(s), None, "{s:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            if let Some(r) = parse_dialled(&s) {
                proptest::prop_assert!(!r.number.is_empty());
            }
        }

        #[test]
        fn never_panics_on_keypad_strings(s in "([0-9*#+ .()-]|%2[aA3]|%){0,20}") {
            if let Some(r) = parse_dialled(&s) {
                proptest::prop_assert!(!r.number.is_empty());
                if let Some(code) = &r.practice_code {
                    proptest::prop_assert!((1..=4).contains(&code.len()));
                }
            }
        }

        #[test]
        fn practice_code_round_trip(code in "[0-9]{1,4}", number in "\\+?[0-9]{2,15}") {
            let got = parse_dialled(&format!("*8{code}*{number}#"));
            proptest::prop_assert_eq!(got, with_code(&code, &number));
        }
    }
}
