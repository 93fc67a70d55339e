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
    ] {
        assert!(all.contains(needle), "no case covers {needle:?}");
    }
}
