//! Every case of `tests/configs/` gives exactly its expected error lines
//! (see `tests/configs/README.md` for the format).

use std::path::{Path, PathBuf};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/configs")
}

fn case_dirs() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .expect("tests/configs exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

/// The errors of a case, rendered, with the case directory removed.
fn actual(case: &Path) -> Result<Vec<String>, String> {
    let prefix = format!("{}/", case.display());
    match permanence_config::load(&case.join("permanence.toml")) {
        Ok(c) => Err(format!(
            "loaded without error ({} practices)",
            c.practices().len()
        )),
        Err(errors) => {
            for e in &errors {
                assert!(e.line >= 1, "{e}");
                assert!(
                    e.file.starts_with(case),
                    "{e} is outside {}",
                    case.display()
                );
            }
            Ok(errors
                .iter()
                .map(|e| e.to_string().replace(&prefix, ""))
                .collect())
        }
    }
}

fn expected(case: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(case.join("expected.txt"))
        .unwrap_or_else(|e| panic!("{}/expected.txt: {e}", case.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[test]
fn baseline_is_valid() {
    let base = cases_dir().join("_valid/permanence.toml");
    if let Err(e) = permanence_config::load(&base) {
        panic!("the baseline of the broken cases must be valid:\n{e}");
    }
}

#[test]
fn every_case_gives_its_expected_lines() {
    let cases: Vec<PathBuf> = case_dirs()
        .into_iter()
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('_'))
        })
        .collect();
    assert!(cases.len() >= 12, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let want = expected(case);
        assert!(!want.is_empty(), "{}: empty expected.txt", case.display());
        match actual(case) {
            Err(why) => failures.push(format!("{}: {why}", case.display())),
            Ok(got) if got != want => failures.push(format!(
                "{}:\n  expected:\n    {}\n  got:\n    {}",
                case.display(),
                want.join("\n    "),
                got.join("\n    ")
            )),
            Ok(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn warnings_of_a_valid_config() {
    let case = cases_dir().join("_warnings");
    let prefix = format!("{}/", case.display());
    let config = match permanence_config::load(&case.join("permanence.toml")) {
        Ok(c) => c,
        Err(e) => panic!("_warnings must be valid:\n{e}"),
    };
    let got: Vec<String> = config
        .warnings()
        .iter()
        .map(|w| w.to_string().replace(&prefix, ""))
        .collect();
    assert_eq!(got, expected(&case));
}

/// The required coverage of the brief: each kind of problem has a case.
#[test]
fn coverage() {
    let all: String = case_dirs()
        .iter()
        .filter(|c| c.join("expected.txt").is_file())
        .flat_map(|c| expected(c))
        .collect::<Vec<_>>()
        .join("\n");
    for needle in [
        "invalid basic string",
        "unknown field `",
        "invalid time range",
        "time ranges overlap",
        "is already claimed by practice",
        "is not defined in [[agents]]",
        "is not defined in [[pools]]",
        "prompt file \"prompts/missing.wav\"",
        "unknown time zone",
        "invalid CIDR",
        "hexadecimal digits",
        "port range is inverted",
        "practice id \"a\" is already used",
        "must be greater than the previous step's after_seconds",
        "unknown variant `france`",
        "not a telephone number",
        "cannot be resolved: target not found (dangling link)",
        "cannot be resolved: symbolic link loop",
        "is a directory, not a regular file",
        "file is not valid UTF-8",
        "code \"1\" is already used by practice \"a\"",
        "invalid practice code",
        "unknown destination class",
        "invalid number \"+41 22\"",
        "outbound.caller_id: not a telephone number",
        "callback.digit: invalid callback digit",
        "callback.digit: only allowed when offer = true",
        "callback.offer_after_seconds: only allowed when offer = true",
        "callback.within_minutes: must be between 5 and 1440",
        "callback.max_attempts: must be between 1 and 10",
        "callback.retry_minutes: must be between 1 and 240",
        "callback.offer_after_seconds: must be between 0 and 3600",
    ] {
        assert!(all.contains(needle), "no case covers {needle:?}");
    }
}

/// Copies the `_valid` case into a fresh directory (removed on drop).
struct Scratch(PathBuf);

impl Scratch {
    fn from_valid(tag: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("permanence-config-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("dialplans")).expect("scratch dir");
        let valid = cases_dir().join("_valid");
        for f in ["permanence.toml", "dialplans/a.toml"] {
            std::fs::copy(valid.join(f), dir.join(f)).expect("copy _valid");
        }
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        // Give back the permissions a test took away, so the removal works
        // for an unprivileged user too.
        let _ = std::fs::set_permissions(
            self.0.join("dialplans/b.toml"),
            std::fs::Permissions::from_mode(0o644),
        );
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A dialplan the loader may not read (mode 000) is an error with its path,
/// not a practice silently missing. Git cannot keep a mode 000 file, so the
/// case is made here. Root (or any process with CAP_DAC_OVERRIDE) reads a
/// mode 000 file anyway: then the case cannot happen and the test says so
/// instead of pretending (the other unreadable entries, a directory named
/// `b.toml` and non-UTF-8 content, are cases of `tests/configs/`).
#[test]
fn unreadable_dialplan_is_an_error() {
    use std::os::unix::fs::PermissionsExt;
    let case = Scratch::from_valid("unreadable");
    let b = case.0.join("dialplans/b.toml");
    std::fs::write(
        &b,
        std::fs::read_to_string(case.0.join("dialplans/a.toml"))
            .expect("a.toml")
            .replace("id = \"a\"", "id = \"b\"")
            .replace("+33450000001", "+33450000002"),
    )
    .expect("write b.toml");
    std::fs::set_permissions(&b, std::fs::Permissions::from_mode(0o000)).expect("chmod 000");
    if std::fs::read(&b).is_ok() {
        eprintln!(
            "SKIPPED unreadable_dialplan_is_an_error: a mode 000 file is still readable by this \
             process (running as root?), so a permission-denied dialplan cannot be produced here"
        );
        return;
    }
    let errors = match permanence_config::load(&case.0.join("permanence.toml")) {
        Ok(_) => panic!("a configuration with an unreadable dialplan loaded"),
        Err(e) => e,
    };
    let prefix = format!("{}/", case.0.display());
    let got: Vec<String> = errors
        .iter()
        .map(|e| e.to_string().replace(&prefix, ""))
        .collect();
    assert_eq!(
        got,
        ["dialplans/b.toml:1: cannot read file: permission denied"]
    );
}

/// The same entries are refused when they appear in a configuration that
/// was valid (what a reload re-reads): a symbolic link made dangling, then
/// looping, then replaced by a directory.
#[test]
fn a_valid_configuration_broken_on_disk_is_refused() {
    let case = Scratch::from_valid("broken-on-disk");
    let main = case.0.join("permanence.toml");
    let b = case.0.join("dialplans/b.toml");
    let target = case.0.join("b-target.toml");
    std::fs::write(
        &target,
        std::fs::read_to_string(case.0.join("dialplans/a.toml"))
            .expect("a.toml")
            .replace("id = \"a\"", "id = \"b\"")
            .replace("+33450000001", "+33450000002"),
    )
    .expect("write target");
    std::os::unix::fs::symlink("../b-target.toml", &b).expect("symlink");
    let config = permanence_config::load(&main).expect("valid with the link resolving");
    assert_eq!(config.practices().len(), 2);

    let prefix = format!("{}/", case.0.display());
    let errors = |main: &Path| -> Vec<String> {
        match permanence_config::load(main) {
            Ok(c) => panic!("loaded with {} practices", c.practices().len()),
            Err(e) => e
                .iter()
                .map(|e| e.to_string().replace(&prefix, ""))
                .collect(),
        }
    };
    std::fs::remove_file(&target).expect("remove target");
    assert_eq!(
        errors(&main),
        ["dialplans/b.toml:1: symbolic link to \"../b-target.toml\" cannot be resolved: target not found (dangling link)"]
    );
    std::os::unix::fs::symlink("dialplans/b.toml", &target).expect("loop");
    assert_eq!(
        errors(&main),
        ["dialplans/b.toml:1: symbolic link to \"../b-target.toml\" cannot be resolved: symbolic link loop"]
    );
    std::fs::remove_file(&b).expect("remove link");
    std::fs::create_dir(&b).expect("directory b.toml");
    assert_eq!(
        errors(&main),
        ["dialplans/b.toml:1: cannot read file: is a directory, not a regular file"]
    );
    // The main file itself, through a link that stopped resolving.
    let link = case.0.join("main-link.toml");
    std::os::unix::fs::symlink("gone.toml", &link).expect("main link");
    assert_eq!(
        errors(&link),
        ["main-link.toml:1: symbolic link to \"gone.toml\" cannot be resolved: target not found (dangling link)"]
    );
}
