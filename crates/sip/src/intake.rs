//! Which practice a forwarded call is for.
//!
//! A practice forwards its line to us with carrier call forwarding. The
//! number the patient dialled travels in History-Info (RFC 7044) or
//! Diversion (RFC 5806); a practice reached on one of its own DIDs is in the
//! Request-URI / To. [`called_numbers`] lists the candidate numbers in the
//! order they are tried, oldest target first:
//! 1. History-Info entries by hierarchical index (`1`, `1.1`, `1.1.1`...);
//! 2. Diversion entries from the bottom (the first diversion) up;
//! 3. the Request-URI; 4. the To URI.
//!
//! The first candidate that a practice claims wins. Trying every hop
//! handles multi-hop forwarding: an old practice number forwarded to the new
//! one, then to us, is found whichever of the two is configured.

use permanence_numbers::{normalize, Country, E164};

/// Where a candidate number was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NumberSource {
    /// A History-Info entry.
    HistoryInfo,
    /// A Diversion entry.
    Diversion,
    /// The Request-URI.
    RequestUri,
    /// The To header.
    To,
}

impl NumberSource {
    /// Short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            NumberSource::HistoryInfo => "history-info",
            NumberSource::Diversion => "diversion",
            NumberSource::RequestUri => "request-uri",
            NumberSource::To => "to",
        }
    }
}

/// The headers intake reads, as raw strings (one element per header line).
#[derive(Debug, Clone, Default)]
pub struct IntakeHeaders<'a> {
    /// History-Info header values.
    pub history_info: Vec<&'a str>,
    /// Diversion header values.
    pub diversion: Vec<&'a str>,
    /// The Request-URI.
    pub request_uri: &'a str,
    /// The To header value.
    pub to: &'a str,
}

/// Splits a header value into comma-separated entries, ignoring commas
/// inside `<...>` and quoted strings.
pub fn split_entries(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut escaped, mut start) = (0i32, false, false, 0usize);
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => depth += 1,
            '>' if !quoted => depth = (depth - 1).max(0),
            ',' if !quoted && depth == 0 => {
                out.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value[start..].trim());
    out.retain(|s| !s.is_empty());
    out
}

/// Byte positions of the `<` and `>` around the URI of a name-addr entry,
/// skipping a quoted display name.
fn angle_span(entry: &str) -> Option<(usize, usize)> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in entry.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => {
                let r = entry[i + 1..].find('>')?;
                return Some((i, i + 1 + r));
            }
            _ => {}
        }
    }
    None
}

/// The URI of a name-addr entry (`"Name" <uri>;params` or a bare `uri;params`).
pub fn entry_uri(entry: &str) -> &str {
    match angle_span(entry) {
        Some((l, r)) => &entry[l + 1..r],
        None => entry.split(';').next().unwrap_or(entry).trim(),
    }
}

/// A header parameter (outside the `<...>`) such as `index=1.1`.
pub fn entry_param<'a>(entry: &'a str, name: &str) -> Option<&'a str> {
    let params = match angle_span(entry) {
        Some((_, r)) => &entry[r + 1..],
        None => entry.split_once(';').map(|(_, p)| p).unwrap_or(""),
    };
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"'))
    })
}

/// Orders History-Info indices (`1` < `1.1` < `1.2` < `1.10`).
fn index_key(index: Option<&str>) -> Vec<u32> {
    index
        .unwrap_or("")
        .split('.')
        .map(|p| p.trim().parse::<u32>().unwrap_or(u32::MAX))
        .collect()
}

/// Candidate called numbers, in the order they are tried, normalised with
/// `country`'s numbering plan. Entries that are not telephone numbers (a
/// SIP user name) are skipped.
pub fn called_numbers(h: &IntakeHeaders<'_>, country: Country) -> Vec<(NumberSource, E164)> {
    let mut out = Vec::new();
    let mut hi: Vec<(Vec<u32>, usize, &str)> = h
        .history_info
        .iter()
        .flat_map(|v| split_entries(v))
        .enumerate()
        .map(|(pos, e)| (index_key(entry_param(e, "index")), pos, e))
        .collect();
    hi.sort();
    for (_, _, e) in hi {
        if let Some(n) = normalize(entry_uri(e), country) {
            out.push((NumberSource::HistoryInfo, n));
        }
    }
    let div: Vec<&str> = h.diversion.iter().flat_map(|v| split_entries(v)).collect();
    for e in div.iter().rev() {
        if let Some(n) = normalize(entry_uri(e), country) {
            out.push((NumberSource::Diversion, n));
        }
    }
    if let Some(n) = normalize(h.request_uri, country) {
        out.push((NumberSource::RequestUri, n));
    }
    if let Some(n) = normalize(entry_uri(h.to), country) {
        out.push((NumberSource::To, n));
    }
    out
}

/// The first candidate a practice claims: `(practice, number, source)`.
pub fn identify<'p, P>(
    h: &IntakeHeaders<'_>,
    country: Country,
    lookup: impl Fn(&E164) -> Option<&'p P>,
) -> Option<(&'p P, E164, NumberSource)> {
    called_numbers(h, country)
        .into_iter()
        .find_map(|(src, n)| lookup(&n).map(|p| (p, n, src)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn practices() -> HashMap<E164, &'static str> {
        let mut m = HashMap::new();
        for (n, p) in [
            ("+33450000001", "martin"),
            ("+33140000002", "caron"),
            ("+33380000004", "tilleuls"),
            ("+33980000004", "tilleuls"),
        ] {
            m.insert(normalize(n, Country::Fr).expect("valid"), p);
        }
        m
    }

    fn who(h: IntakeHeaders<'_>) -> Option<(&'static str, NumberSource)> {
        let m = practices();
        identify(&h, Country::Fr, |n| m.get(n)).map(|(p, _, s)| (*p, s))
    }

    const SERVICE: &str = "sip:+33970000000@permanence.example";

    #[test]
    fn diversion_single_hop() {
        let h = IntakeHeaders {
            diversion: vec!["<sip:+33450000001@carrier.example>;reason=unconditional;counter=1"],
            request_uri: SERVICE,
            to: "<sip:+33970000000@permanence.example>",
            ..Default::default()
        };
        assert_eq!(who(h), Some(("martin", NumberSource::Diversion)));
    }

    #[test]
    fn diversion_national_form_and_tel() {
        let h = IntakeHeaders {
            diversion: vec!["<tel:0140000002>;reason=no-answer"],
            request_uri: SERVICE,
            to: SERVICE,
            ..Default::default()
        };
        assert_eq!(who(h), Some(("caron", NumberSource::Diversion)));
    }

    #[test]
    fn diversion_multi_hop_prefers_the_original() {
        // Patient called Caron, forwarded to Martin's line, forwarded to us:
        // the bottom entry is the first diversion (the number dialled).
        let h = IntakeHeaders {
            diversion: vec![
                "<sip:+33450000001@c>;reason=unconditional;counter=1",
                "<sip:+33140000002@c>;reason=unconditional;counter=1",
            ],
            request_uri: SERVICE,
            to: SERVICE,
            ..Default::default()
        };
        assert_eq!(who(h), Some(("caron", NumberSource::Diversion)));
        // Same in one comma-joined header.
        let h = IntakeHeaders {
            diversion: vec!["<sip:+33450000001@c>;counter=1, <sip:+33140000002@c>;counter=1"],
            request_uri: SERVICE,
            to: SERVICE,
            ..Default::default()
        };
        assert_eq!(who(h), Some(("caron", NumberSource::Diversion)));
        // Unknown original (old number): the next hop is tried.
        let h = IntakeHeaders {
            diversion: vec![
                "<sip:+33450000001@c>;counter=1",
                "<sip:+33450000099@c>;counter=1",
            ],
            request_uri: SERVICE,
            to: SERVICE,
            ..Default::default()
        };
        assert_eq!(who(h), Some(("martin", NumberSource::Diversion)));
    }

    #[test]
    fn history_info_by_index() {
        let h = IntakeHeaders {
            history_info: vec![
                "<sip:+33970000000@permanence.example>;index=1.1.1;mp=1.1",
                "<sip:+33380000004@carrier.example?Reason=SIP%3Bcause%3D302>;index=1.1",
            ],
            request_uri: SERVICE,
            to: SERVICE,
            ..Default::default()
        };
        assert_eq!(who(h), Some(("tilleuls", NumberSource::HistoryInfo)));
        // History-Info wins over Diversion.
        let h = IntakeHeaders {
            history_info: vec!["<sip:+33140000002@c>;index=1, <sip:+33970000000@p>;index=1.1"],
            diversion: vec!["<sip:+33450000001@c>"],
            request_uri: SERVICE,
            to: SERVICE,
        };
        assert_eq!(who(h), Some(("caron", NumberSource::HistoryInfo)));
    }

    #[test]
    fn did_in_request_uri_or_to() {
        let h = IntakeHeaders {
            request_uri: "sip:+33980000004@permanence.example;user=phone",
            to: "<sip:+33980000004@permanence.example>",
            ..Default::default()
        };
        assert_eq!(who(h), Some(("tilleuls", NumberSource::RequestUri)));
        let h = IntakeHeaders {
            request_uri: "sip:permanence.example",
            to: "\"Les Tilleuls\" <sip:0980000004@permanence.example>;tag=x",
            ..Default::default()
        };
        assert_eq!(who(h), Some(("tilleuls", NumberSource::To)));
    }

    #[test]
    fn unknown_number() {
        let h = IntakeHeaders {
            diversion: vec!["<sip:+33199999999@c>"],
            request_uri: SERVICE,
            to: SERVICE,
            ..Default::default()
        };
        assert_eq!(who(h), None);
    }

    #[test]
    fn splitting() {
        assert_eq!(
            split_entries(r#""A, B" <sip:1@h>;x=1, <sip:2@h;p=a,b>"#),
            vec![r#""A, B" <sip:1@h>;x=1"#, "<sip:2@h;p=a,b>"]
        );
        assert_eq!(
            entry_param("<sip:1@h;index=9>;index=1.2", "index"),
            Some("1.2")
        );
        assert!(index_key(Some("1.2")) < index_key(Some("1.10")));
        assert!(index_key(Some("1")) < index_key(Some("1.1")));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(a in "\\PC{0,80}", b in "\\PC{0,80}", c in "\\PC{0,40}") {
            let h = IntakeHeaders { history_info: vec![&a], diversion: vec![&b], request_uri: &c, to: &a };
            let _ = called_numbers(&h, Country::Fr);
        }
    }
}
