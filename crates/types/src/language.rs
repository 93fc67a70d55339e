//! The languages a caller can be served in.

use serde::{Deserialize, Serialize};

/// A caller's language: the built-in prompts they hear and, for English,
/// the requirement that the telesecretary speaks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// French, every practice's default.
    #[default]
    Fr,
    /// English, offered by a practice whose `languages` include `"en"`
    /// ("For English, press 9").
    En,
}

impl Language {
    /// Every language with built-in prompts.
    pub const ALL: [Language; 2] = [Language::Fr, Language::En];

    /// The ISO 639-1 code (`fr`, `en`), as in a dialplan's `languages` and
    /// an agent's `languages`.
    pub fn code(self) -> &'static str {
        match self {
            Language::Fr => "fr",
            Language::En => "en",
        }
    }

    /// The language of an ISO 639-1 code; `None` for a language without
    /// built-in prompts.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.code() == code)
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for l in Language::ALL {
            assert_eq!(Language::from_code(l.code()), Some(l));
        }
        assert_eq!(Language::from_code("de"), None);
        assert_eq!(Language::default(), Language::Fr);
    }
}
