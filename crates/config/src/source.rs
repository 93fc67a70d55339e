//! A parsed TOML file with the spans of its keys and values, so that any
//! dotted field path (`agents[1].shift.mon[0]`) can be turned into a line,
//! and serde errors (which only carry a byte span) into a field path.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use crate::error::ConfigError;

/// Largest configuration file read, in bytes.
pub(crate) const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Deepest nesting walked when indexing spans (the TOML parser already stops
/// at 80 levels; this is a second guard).
const MAX_DEPTH: usize = 128;

/// Most errors reported for one deserialized unit (a section or an element
/// of an array of tables).
const MAX_ERRORS_PER_UNIT: usize = 32;

#[derive(Debug, Clone)]
struct Loc {
    key: Option<Range<usize>>,
    value: Range<usize>,
    depth: usize,
}

/// A configuration file: its path, line starts and the span of every key
/// and value by dotted path.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub path: PathBuf,
    line_starts: Vec<usize>,
    locs: HashMap<String, Loc>,
    /// Path of the key with a given span.
    by_key: HashMap<(usize, usize), String>,
    /// Deepest path of the value with a given span (an `[[array]]`'s first
    /// element has the same header span as the array).
    by_value: HashMap<(usize, usize), (usize, String)>,
}

/// Appends `key` to a dotted path, quoting it unless it is a bare TOML key.
pub(crate) fn join(parent: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let key = if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if parent.is_empty() {
        key
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[i]`.
pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

impl Source {
    /// A source with line information only (used when the file does not
    /// parse).
    pub fn new(path: &Path, text: &str) -> Self {
        let mut line_starts = vec![0];
        for (i, b) in text.bytes().enumerate() {
            if b == b'\n' {
                line_starts.push(i.saturating_add(1));
            }
        }
        Self {
            path: path.to_path_buf(),
            line_starts,
            locs: HashMap::new(),
            by_key: HashMap::new(),
            by_value: HashMap::new(),
        }
    }

    /// Records the spans of every key and value of a parsed document.
    pub fn index(&mut self, root: &Spanned<DeValue<'_>>) {
        self.walk(String::new(), None, root, 0);
    }

    fn walk(
        &mut self,
        path: String,
        key: Option<Range<usize>>,
        v: &Spanned<DeValue<'_>>,
        depth: usize,
    ) {
        if depth > MAX_DEPTH {
            return;
        }
        match v.get_ref() {
            DeValue::Table(t) => {
                for (k, child) in t.iter() {
                    self.walk(join(&path, k.get_ref()), Some(k.span()), child, depth + 1);
                }
            }
            DeValue::Array(a) => {
                for (i, child) in a.iter().enumerate() {
                    self.walk(index(&path, i), None, child, depth + 1);
                }
            }
            _ => {}
        }
        let value = v.span();
        if let Some(k) = &key {
            self.by_key.insert((k.start, k.end), path.clone());
        }
        let deeper = self
            .by_value
            .get(&(value.start, value.end))
            .is_none_or(|(d, p)| depth > *d || (depth == *d && path < *p));
        if deeper {
            self.by_value
                .insert((value.start, value.end), (depth, path.clone()));
        }
        self.locs.insert(path, Loc { key, value, depth });
    }

    /// 1-based line of a byte offset.
    pub fn line_at(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= offset).max(1)
    }

    /// 1-based line of a dotted path: the line of its key if it has one,
    /// else of its value (array elements, `[[tables]]` headers). A path
    /// absent from the file (a defaulted field) resolves to its closest
    /// present ancestor, and finally to line 1.
    pub fn line_of(&self, path: &str) -> usize {
        let mut p = path;
        loop {
            if let Some(loc) = self.locs.get(p) {
                let start = loc.key.as_ref().map_or(loc.value.start, |k| k.start);
                return self.line_at(start);
            }
            match parent_of(p) {
                Some(parent) => p = parent,
                None => return 1,
            }
        }
    }

    /// An error at `path` in this file.
    pub fn err(&self, path: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.path.clone(), self.line_of(path), path, message)
    }

    /// The dotted path best describing a byte span reported by the parser or
    /// by serde: a key with exactly that span, else the deepest value with
    /// exactly that span, else the smallest value containing it.
    pub fn path_at(&self, span: &Range<usize>) -> Option<String> {
        let k = (span.start, span.end);
        if let Some(p) = self.by_key.get(&k) {
            return Some(p.clone());
        }
        if let Some((_, p)) = self.by_value.get(&k) {
            return Some(p.clone());
        }
        self.locs
            .iter()
            .filter(|(_, l)| l.value.start <= span.start && span.end <= l.value.end)
            .min_by(|(pa, a), (pb, b)| {
                let la = a.value.end.saturating_sub(a.value.start);
                let lb = b.value.end.saturating_sub(b.value.start);
                la.cmp(&lb)
                    .then_with(|| b.depth.cmp(&a.depth))
                    .then_with(|| pa.cmp(pb))
            })
            .map(|(p, _)| p.clone())
    }

    /// Deserializes one unit (a section, or one element of an array of
    /// tables) with serde, collecting its errors into `errors`.
    ///
    /// serde stops at the first error; to report more than one problem per
    /// unit, the offending key is removed from a copy of the unit and
    /// deserialization is retried, until it succeeds or the error cannot be
    /// attributed to a removable key. A unit with any error yields `None`.
    pub fn de_unit<T: DeserializeOwned>(
        &self,
        value: &Spanned<DeValue<'_>>,
        path: &str,
        errors: &mut Vec<ConfigError>,
    ) -> Option<T> {
        let mut work = value.clone();
        let mut removed: Vec<String> = Vec::new();
        let mut failed = false;
        for _ in 0..MAX_ERRORS_PER_UNIT {
            let err = match T::deserialize(ValueDeserializer::from(work.clone())) {
                Ok(v) => return if failed { None } else { Some(v) },
                Err(e) => e,
            };
            failed = true;
            let span = err.span();
            let at = span
                .as_ref()
                .and_then(|s| self.path_at(s))
                .filter(|p| p.starts_with(path))
                .unwrap_or_else(|| path.to_string());
            let msg = err.message();
            if let Some(field) = missing_field(msg) {
                let missing = join(&at, field);
                // A required key removed after an earlier error: already
                // reported.
                if !removed.iter().any(|r| is_within(r, &missing)) {
                    errors.push(self.err(&missing, "missing required field"));
                }
                // Retry without the table that lacks the key, if it is not
                // the unit itself.
                let Some(span) = span.filter(|_| at != path) else {
                    break;
                };
                if !remove_span(work.get_mut(), &span, 0) {
                    break;
                }
                removed.push(at);
                continue;
            }
            errors.push(ConfigError::new(
                self.path.clone(),
                span.as_ref()
                    .map_or_else(|| self.line_of(&at), |s| self.line_at(s.start)),
                at.clone(),
                friendly(msg),
            ));
            let Some(span) = span else { break };
            if !remove_span(work.get_mut(), &span, 0) {
                break;
            }
            removed.push(at);
        }
        None
    }
}

/// Whether `path` is `ancestor` or lies inside it.
fn is_within(path: &str, ancestor: &str) -> bool {
    path == ancestor
        || path
            .strip_prefix(ancestor)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

/// The parent of a dotted path whose last segment is a bare key or an index.
fn parent_of(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    if path.ends_with(']') {
        return path.rfind('[').and_then(|i| path.get(..i));
    }
    if path.ends_with('"') {
        // A quoted last key: find its opening quote, preceded by a dot or at
        // the start.
        let body = path.get(..path.len().saturating_sub(1))?;
        let mut search = body;
        while let Some(i) = search.rfind('"') {
            let before = path.get(..i)?;
            if before.is_empty() {
                return Some("");
            }
            if let Some(p) = before.strip_suffix('.') {
                return Some(p);
            }
            search = search.get(..i)?;
        }
        return Some("");
    }
    Some(path.rfind('.').and_then(|i| path.get(..i)).unwrap_or(""))
}

/// serde's messages name Rust types; say what to write instead.
fn friendly(msg: &str) -> String {
    let mut out = msg
        .replace("expected i64", "expected an integer")
        .replace("expected a borrowed string", "expected a string")
        .replace("expected a sequence", "expected an array")
        .replace("expected a map", "expected a table")
        .replace("invalid type: sequence", "invalid type: array")
        .replace("invalid type: map", "invalid type: table");
    // "expected struct Sip" -> "expected a table"
    while let Some(i) = out.find("expected struct ") {
        let rest = out.get(i + "expected struct ".len()..).unwrap_or("");
        let end = rest
            .find(|c: char| !c.is_alphanumeric() && c != '_')
            .unwrap_or(rest.len());
        let tail = rest.get(end..).unwrap_or("").to_string();
        out = format!("{}expected a table{tail}", out.get(..i).unwrap_or(""));
    }
    out
}

/// The field name in serde's "missing field `x`" message.
fn missing_field(msg: &str) -> Option<&str> {
    msg.strip_prefix("missing field `")?.strip_suffix('`')
}

/// Removes, from a table somewhere in `v`, the entry whose key or value has
/// exactly `span`, or whose array value has an element with that span.
fn remove_span(v: &mut DeValue<'_>, span: &Range<usize>, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match v {
        DeValue::Table(t) => {
            let hit = t.iter().find_map(|(k, val)| {
                let in_array = match val.get_ref() {
                    DeValue::Array(a) => a.iter().any(|e| e.span() == *span),
                    _ => false,
                };
                (k.span() == *span || val.span() == *span || in_array)
                    .then(|| k.get_ref().to_string())
            });
            if let Some(k) = hit {
                return t.remove(k.as_str()).is_some();
            }
            t.iter_mut()
                .any(|(_, val)| remove_span(val.get_mut(), span, depth + 1))
        }
        DeValue::Array(a) => a
            .iter_mut()
            .any(|e| remove_span(e.get_mut(), span, depth + 1)),
        _ => false,
    }
}

/// Reads a TOML file, enforcing the size limit and UTF-8.
///
/// Every way the file can fail to be read is an error located at line 1 of
/// `path` (never a silent skip): a symbolic link that cannot be resolved
/// (dangling, or a cycle), a directory or other non-regular file, a file
/// that cannot be opened (permission denied), a file too large, a file
/// that is not UTF-8 (located at the line of the first invalid byte).
pub(crate) fn read_text(path: &Path) -> Result<String, ConfigError> {
    let fail = |msg: String| ConfigError::new(path, 1, "", msg);
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
            return Err(fail(if is_link {
                unresolvable_link(path, &e)
            } else {
                io_message("cannot read file", &e)
            }));
        }
    };
    if meta.is_dir() {
        return Err(fail(
            "cannot read file: is a directory, not a regular file".into(),
        ));
    }
    if !meta.is_file() {
        return Err(fail("cannot read file: not a regular file".into()));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(fail(format!(
            "file too large ({} bytes, at most {MAX_FILE_BYTES})",
            meta.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| fail(io_message("cannot read file", &e)))?;
    match String::from_utf8(bytes) {
        Ok(s) => Ok(s),
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let line = e
                .as_bytes()
                .get(..valid)
                .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
                .saturating_add(1);
            Err(ConfigError::new(path, line, "", "file is not valid UTF-8"))
        }
    }
}

/// Most symbolic links followed when explaining why a link does not
/// resolve (Linux gives up at 40).
const MAX_LINK_HOPS: usize = 40;

/// Why the symbolic link `path` cannot be followed (`e` is the error of
/// following it): `symbolic link to "target" cannot be resolved: ...`.
fn unresolvable_link(path: &Path, e: &std::io::Error) -> String {
    let target = std::fs::read_link(path)
        .map(|t| format!(" to {:?}", t.display().to_string()))
        .unwrap_or_default();
    let why = if link_cycle(path) {
        "symbolic link loop".to_string()
    } else if e.kind() == std::io::ErrorKind::NotFound {
        "target not found (dangling link)".to_string()
    } else {
        io_message("cannot follow it", e)
    };
    format!("symbolic link{target} cannot be resolved: {why}")
}

/// Whether following the chain of symbolic links from `path` comes back to
/// a link already seen (or does not end within [`MAX_LINK_HOPS`]).
fn link_cycle(path: &Path) -> bool {
    let mut seen = std::collections::HashSet::new();
    let mut cur = path.to_path_buf();
    for _ in 0..MAX_LINK_HOPS {
        let Ok(target) = std::fs::read_link(&cur) else {
            return false;
        };
        let next = match cur.parent() {
            Some(dir) if target.is_relative() => dir.join(target),
            _ => target,
        };
        if !seen.insert(normalize(&next)) {
            return true;
        }
        cur = next;
    }
    true
}

/// `p` with `.` removed and `dir/..` folded (lexically: enough to compare
/// the links of one chain).
fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if out.file_name().is_some() {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            c => out.push(c.as_os_str()),
        }
    }
    out
}

/// A short, machine-independent description of an I/O error.
pub(crate) fn io_message(what: &str, e: &std::io::Error) -> String {
    let why = match e.kind() {
        std::io::ErrorKind::NotFound => "not found".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        k => k.to_string(),
    };
    format!("{what}: {why}")
}

/// Parses `text` into a table and indexes its spans, or reports the syntax
/// error.
pub(crate) fn parse<'t>(
    src: &mut Source,
    text: &'t str,
    errors: &mut Vec<ConfigError>,
) -> Option<Spanned<DeValue<'t>>> {
    match DeTable::parse(text) {
        Ok(t) => {
            let span = t.span();
            let root = Spanned::new(span, DeValue::Table(t.into_inner()));
            src.index(&root);
            Some(root)
        }
        Err(e) => {
            let line = e.span().map_or(1, |s| src.line_at(s.start));
            errors.push(ConfigError::new(src.path.clone(), line, "", e.message()));
            None
        }
    }
}

/// The value of `key` in a table value.
pub(crate) fn get<'a, 'i>(
    v: &'a Spanned<DeValue<'i>>,
    key: &str,
) -> Option<&'a Spanned<DeValue<'i>>> {
    match v.get_ref() {
        DeValue::Table(t) => t.get(key),
        _ => None,
    }
}

/// A string value of `key` in a table value, if it is one.
pub(crate) fn get_str(v: &Spanned<DeValue<'_>>, key: &str) -> Option<String> {
    match get(v, key)?.get_ref() {
        DeValue::String(s) => Some(s.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(text: &str) -> (Source, Vec<ConfigError>) {
        let mut s = Source::new(Path::new("t.toml"), text);
        let mut errors = Vec::new();
        let _ = parse(&mut s, text, &mut errors);
        (s, errors)
    }

    #[test]
    fn paths_resolve_to_lines() {
        let text = "a = 1\n[sip]\nrealm = 'x'\n[[agents]]\nusername = 'a'\n[[agents]]\nskills = { g = 1, \"a.b\" = 2 }\n[agents.shift]\nmon = [\n 'x',\n 'y']\n";
        let (s, e) = src(text);
        assert!(e.is_empty());
        assert_eq!(s.line_of("a"), 1);
        assert_eq!(s.line_of("sip"), 2);
        assert_eq!(s.line_of("sip.realm"), 3);
        assert_eq!(s.line_of("sip.registrar.min_expires"), 2);
        assert_eq!(s.line_of("agents[0]"), 4);
        assert_eq!(s.line_of("agents[1]"), 6);
        assert_eq!(s.line_of("agents[1].skills.\"a.b\""), 7);
        assert_eq!(s.line_of("agents[1].skills.\"a.b\".zz"), 7);
        assert_eq!(s.line_of("agents[1].shift.mon[1]"), 11);
        assert_eq!(s.line_of("agents[1].timezone"), 6);
        assert_eq!(s.line_of("nothing.here"), 1);
    }

    #[test]
    fn friendly_messages() {
        assert_eq!(
            friendly("invalid type: integer `5`, expected struct Sip"),
            "invalid type: integer `5`, expected a table"
        );
        assert_eq!(
            friendly("invalid type: map, expected a sequence"),
            "invalid type: table, expected an array"
        );
        assert_eq!(friendly("expected struct"), "expected struct");
    }

    #[test]
    fn parent_paths() {
        assert_eq!(parent_of("a.b[2]"), Some("a.b"));
        assert_eq!(parent_of("a.b"), Some("a"));
        assert_eq!(parent_of("a"), Some(""));
        assert_eq!(parent_of(""), None);
        assert_eq!(parent_of("a.\"x.y\""), Some("a"));
        assert_eq!(parent_of("\"x.y\""), Some(""));
        assert_eq!(parent_of("\""), Some(""));
    }

    #[test]
    fn syntax_error_has_a_line() {
        let (_, e) = src("a = 1\nb = = 2\n");
        assert_eq!(e.len(), 1);
        assert_eq!(e.first().map(|e| e.line), Some(2));
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Unit {
        name: String,
        level: u8,
        inner: Option<Inner>,
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        x: u8,
    }

    #[test]
    fn unit_reports_every_bad_key() {
        let text = "[u]\nnme = 'a'\nlevel = 300\nextra = 1\n[u.inner]\ny = 2\n";
        let mut s = Source::new(Path::new("t.toml"), text);
        let mut errors = Vec::new();
        let root = parse(&mut s, text, &mut errors).expect("parses");
        let u = get(&root, "u").expect("u");
        let r: Option<Unit> = s.de_unit(u, "u", &mut errors);
        assert!(r.is_none());
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(lines.contains(&"t.toml:4: u.extra: unknown field `extra`, expected one of `name`, `level`, `inner`".to_string()), "{lines:?}");
        assert!(
            lines.contains(
                &"t.toml:2: u.nme: unknown field `nme`, expected one of `name`, `level`, `inner`"
                    .to_string()
            ),
            "{lines:?}"
        );
        assert!(
            lines.iter().any(|l| l.starts_with("t.toml:3: u.level: ")),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("t.toml:6: u.inner.y: unknown field")),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"t.toml:5: u.inner.x: missing required field".to_string()),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"t.toml:1: u.name: missing required field".to_string()),
            "{lines:?}"
        );
        assert_eq!(lines.len(), 6, "{lines:?}");
    }
}
