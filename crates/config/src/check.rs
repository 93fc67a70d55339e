//! Small value checks and the validation context shared by the loaders.

use std::time::Duration;

use permanence_outbound::AllowList;

use crate::error::ConfigError;
use crate::source::{index, Source};

/// ISO 639-1 two-letter language codes.
const ISO_639_1: &[&str] = &[
    "aa", "ab", "ae", "af", "ak", "am", "an", "ar", "as", "av", "ay", "az", "ba", "be", "bg", "bh",
    "bi", "bm", "bn", "bo", "br", "bs", "ca", "ce", "ch", "co", "cr", "cs", "cu", "cv", "cy", "da",
    "de", "dv", "dz", "ee", "el", "en", "eo", "es", "et", "eu", "fa", "ff", "fi", "fj", "fo", "fr",
    "fy", "ga", "gd", "gl", "gn", "gu", "gv", "ha", "he", "hi", "ho", "hr", "ht", "hu", "hy", "hz",
    "ia", "id", "ie", "ig", "ii", "ik", "io", "is", "it", "iu", "ja", "jv", "ka", "kg", "ki", "kj",
    "kk", "kl", "km", "kn", "ko", "kr", "ks", "ku", "kv", "kw", "ky", "la", "lb", "lg", "li", "ln",
    "lo", "lt", "lu", "lv", "mg", "mh", "mi", "mk", "ml", "mn", "mr", "ms", "mt", "my", "na", "nb",
    "nd", "ne", "ng", "nl", "nn", "no", "nr", "nv", "ny", "oc", "oj", "om", "or", "os", "pa", "pi",
    "pl", "ps", "pt", "qu", "rm", "rn", "ro", "ru", "rw", "sa", "sc", "sd", "se", "sg", "si", "sk",
    "sl", "sm", "sn", "so", "sq", "sr", "ss", "st", "su", "sv", "sw", "ta", "te", "tg", "th", "ti",
    "tk", "tl", "tn", "to", "tr", "ts", "tt", "tw", "ty", "ug", "uk", "ur", "uz", "ve", "vi", "vo",
    "wa", "wo", "xh", "yi", "yo", "za", "zh", "zu",
];

/// Whether `s` is an ISO 639-1 code (lowercase).
pub(crate) fn is_language(s: &str) -> bool {
    ISO_639_1.contains(&s)
}

/// `[a-z0-9-]+`, at most 64 characters: practice, pool and trunk ids.
pub(crate) fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `[a-z0-9._-]+`, at most 64 characters: SIP user names.
pub(crate) fn is_username(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_' || b == b'-'
        })
}

/// `[a-z0-9_-]+`, at most 64 characters: skill names.
pub(crate) fn is_skill(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// A DNS host name (letters, digits, hyphens; dot-separated labels).
pub(crate) fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// An e-mail address as the SMTP envelope takes it: `local@domain`, the
/// local part printable ASCII without spaces, quotes, angle brackets,
/// commas or semicolons, the domain a host name with a dot.
pub(crate) fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && local
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"\"<>(),;:@[]\\".contains(&b))
        && domain.contains('.')
        && is_hostname(domain)
}

/// Shown to people or put in SIP headers: no control characters, not blank.
pub(crate) fn is_text(s: &str) -> bool {
    !s.trim().is_empty() && !s.chars().any(char::is_control)
}

/// `what` in the "expected" part of messages about ids.
pub(crate) const ID_RULE: &str = "use lowercase letters, digits and '-'";

/// Validation context: the file being checked and the error sink.
pub(crate) struct Ctx<'a> {
    pub src: &'a Source,
    pub errors: &'a mut Vec<ConfigError>,
}

impl Ctx<'_> {
    /// Records an error at `path`.
    pub fn err(&mut self, path: &str, msg: impl Into<String>) {
        self.errors.push(self.src.err(path, msg));
    }

    /// A marker to later ask whether errors were added.
    pub fn mark(&self) -> usize {
        self.errors.len()
    }

    /// Whether no error was added since `mark`.
    pub fn clean_since(&self, mark: usize) -> bool {
        self.errors.len() == mark
    }

    /// `v` if within `lo..=hi`, else an error.
    pub fn range(&mut self, path: &str, v: i64, lo: i64, hi: i64) -> Option<i64> {
        if (lo..=hi).contains(&v) {
            Some(v)
        } else {
            self.err(path, format!("must be between {lo} and {hi}, got {v}"));
            None
        }
    }

    /// An optional integer in `lo..=hi` with a default, as `u32`.
    pub fn opt_u32(&mut self, path: &str, v: Option<i64>, default: u32, lo: u32, hi: u32) -> u32 {
        match v {
            None => default,
            Some(v) => self
                .range(path, v, i64::from(lo), i64::from(hi))
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(default),
        }
    }

    /// An optional number of seconds in `lo..=hi` with a default.
    pub fn opt_secs(
        &mut self,
        path: &str,
        v: Option<i64>,
        default: u32,
        lo: u32,
        hi: u32,
    ) -> Duration {
        Duration::from_secs(u64::from(self.opt_u32(path, v, default, lo, hi)))
    }

    /// A required number of seconds in `lo..=hi` (`lo` when out of range).
    pub fn secs(&mut self, path: &str, v: i64, lo: u32, hi: u32) -> Duration {
        let s = self
            .range(path, v, i64::from(lo), i64::from(hi))
            .and_then(|v| u64::try_from(v).ok())
            .unwrap_or(u64::from(lo));
        Duration::from_secs(s)
    }

    /// Checks a displayable text value.
    pub fn text(&mut self, path: &str, v: &str) {
        if !is_text(v) {
            self.err(path, "must not be empty nor contain control characters");
        }
    }

    /// Checks a list of language codes: non-empty, ISO 639-1, no duplicate.
    pub fn languages(&mut self, path: &str, langs: &[String]) {
        if langs.is_empty() {
            self.err(path, "at least one language is required");
        }
        let mut seen = std::collections::HashSet::new();
        for (i, l) in langs.iter().enumerate() {
            let p = index(path, i);
            self.language(&p, l);
            if !seen.insert(l) {
                self.err(&p, format!("language {l:?} is listed twice"));
            }
        }
    }

    /// Checks one ISO 639-1 code.
    pub fn language(&mut self, path: &str, l: &str) {
        if !is_language(l) {
            self.err(
                path,
                format!("unknown language {l:?}: expected a lowercase ISO 639-1 code such as \"fr\" or \"en\""),
            );
        }
    }

    /// An allow-list of destinations from a list of class names at
    /// `classes_path` and a list of numbers entries at `numbers_path`; each
    /// bad element is reported at its own index. `None` if any is bad.
    pub fn allow_list(
        &mut self,
        classes_path: &str,
        classes: &[String],
        numbers_path: &str,
        numbers: &[String],
    ) -> Option<AllowList> {
        let m = self.mark();
        // Element by element, so each error names its index; the messages
        // are the outbound crate's.
        for (i, c) in classes.iter().enumerate() {
            if let Err(e) = AllowList::parse(std::slice::from_ref(c), &[]) {
                self.err(&index(classes_path, i), e.to_string());
            }
        }
        for (i, n) in numbers.iter().enumerate() {
            if let Err(e) = AllowList::parse(&[], std::slice::from_ref(n)) {
                self.err(&index(numbers_path, i), e.to_string());
            }
        }
        if !self.clean_since(m) {
            return None;
        }
        match AllowList::parse(classes, numbers) {
            Ok(a) => Some(a),
            // Not reached: every element parsed on its own.
            Err(e) => {
                self.err(classes_path, e.to_string());
                None
            }
        }
    }

    /// Like [`Ctx::allow_list`] with each list optional: an absent list
    /// takes `default`'s classes or numbers.
    pub fn allow_list_or(
        &mut self,
        classes_path: &str,
        classes: Option<&[String]>,
        numbers_path: &str,
        numbers: Option<&[String]>,
        default: &AllowList,
    ) -> Option<AllowList> {
        let mut a = self.allow_list(
            classes_path,
            classes.unwrap_or_default(),
            numbers_path,
            numbers.unwrap_or_default(),
        )?;
        if classes.is_none() {
            a.classes = default.classes.clone();
        }
        if numbers.is_none() {
            a.numbers = default.numbers.clone();
        }
        Some(a)
    }

    /// Checks a skill name.
    pub fn skill(&mut self, path: &str, s: &str) {
        if !is_skill(s) {
            self.err(
                path,
                format!("invalid skill name {s:?}: use lowercase letters, digits, '_' and '-'"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_id("martin-2"));
        assert!(!is_id("Martin"));
        assert!(!is_id(""));
        assert!(is_username("alice.m_2-b"));
        assert!(!is_username("alice@x"));
        assert!(is_skill("medecine_generale"));
        assert!(!is_skill("pédiatrie"));
        assert!(is_hostname("sip.example.org"));
        assert!(!is_hostname("bad_host"));
        assert!(!is_hostname("a..b"));
        assert!(is_language("fr") && is_language("en") && !is_language("xx") && !is_language("FR"));
        assert!(is_text("Cabinet du Dr Martin") && !is_text(" ") && !is_text("a\nb"));
    }
}
