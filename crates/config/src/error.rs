//! Located configuration errors: `file:line: field: message`.

use std::fmt;
use std::path::PathBuf;

/// One problem found in the configuration, located in a file.
///
/// Displayed as `file:line: field: message`; when `field` is empty (a TOML
/// syntax error, an unreadable file) the field part is left out:
/// `file:line: message`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
#[error("{}:{}: {}{}", .file.display(), .line, FieldPrefix(.field), .message)]
pub struct ConfigError {
    /// The file the problem is in, as it was opened: the main file path given
    /// to [`crate::load`], or that file's directory joined with
    /// `dialplans_dir` and the dialplan file name.
    pub file: PathBuf,
    /// 1-based line of the offending key or value (of the table header when
    /// a required key is missing).
    pub line: usize,
    /// Dotted path of the offending field, e.g. `agents[1].shift.mon[0]` or
    /// `routing.steps[2].pool`. Array indexes are 0-based. Keys that are not
    /// bare TOML keys are quoted (`skills."a.b"`). Empty for syntax errors
    /// and file-level problems.
    pub field: String,
    /// What is wrong, on one line.
    pub message: String,
}

impl ConfigError {
    /// Builds an error; newlines in `message` are replaced so the display
    /// stays on one line.
    pub fn new(
        file: impl Into<PathBuf>,
        line: usize,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            file: file.into(),
            line: line.max(1),
            field: field.into(),
            message: one_line(&message.into()),
        }
    }
}

/// Collapses a possibly multi-line message to one line.
pub(crate) fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, part) in s
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        if i > 0 {
            out.push_str("; ");
        }
        out.push_str(part);
    }
    out
}

struct FieldPrefix<'a>(&'a String);

impl fmt::Display for FieldPrefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, "{}: ", self.0)
        }
    }
}

/// All the errors found while loading a configuration, in file order (main
/// file first, then dialplans by name) and line order within a file.
///
/// Displayed one error per line, without a trailing newline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", Lines(.errors))]
pub struct ConfigErrors {
    errors: Vec<ConfigError>,
}

struct Lines<'a>(&'a [ConfigError]);

impl fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl ConfigErrors {
    /// Wraps a list of errors (kept in the given order).
    pub fn new(errors: Vec<ConfigError>) -> Self {
        Self { errors }
    }

    /// The errors.
    pub fn errors(&self) -> &[ConfigError] {
        &self.errors
    }

    /// How many errors.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Whether there is no error (never the case for a value returned by
    /// [`crate::load`]).
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Iterates over the errors.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.errors.iter()
    }

    /// Takes the errors out.
    pub fn into_vec(self) -> Vec<ConfigError> {
        self.errors
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.errors.into_iter()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

/// Where a value of the model was defined: file, line and dotted field path.
///
/// Components that find a problem at run time with a configured value (a
/// prompt WAV that fails to decode, an agent record) use [`Origin::error`]
/// to report it in the same `file:line: field: message` form as the loader.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// The file the value is defined in.
    pub file: PathBuf,
    /// 1-based line of the defining key (or table header).
    pub line: usize,
    /// Dotted field path, e.g. `prompts.greeting` or `agents[0]`.
    pub field: String,
}

impl Origin {
    /// An error located at this origin.
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.file.clone(), self.line, self.field.clone(), message)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_formats() {
        let e = ConfigError::new("a/b.toml", 3, "agents[1].shift.mon", "bad\nthing");
        assert_eq!(e.to_string(), "a/b.toml:3: agents[1].shift.mon: bad; thing");
        let e = ConfigError::new("a.toml", 0, "", "syntax");
        assert_eq!(e.to_string(), "a.toml:1: syntax");
        let all = ConfigErrors::new(vec![
            ConfigError::new("x", 1, "f", "m"),
            ConfigError::new("y", 2, "g", "n"),
        ]);
        assert_eq!(all.to_string(), "x:1: f: m\ny:2: g: n");
    }
}
