//! `permanence check-config` end to end: the shipped configuration passes,
//! and every broken configuration under `tests/configs/` is reported with
//! exactly the `file:line: field: message` lines of its `expected.txt`.

mod common;

use std::process::Command;

fn check(config: &std::path::Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_permanence"))
        .arg("check-config")
        .arg("--config")
        .arg(config)
        .current_dir(common::repo())
        .output()
        .expect("run permanence check-config");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn shipped_configuration_passes() {
    let (ok, stdout, stderr) = check(std::path::Path::new("config/permanence.toml"));
    assert!(ok, "check-config failed on the demo:\n{stderr}");
    assert!(stdout.contains("configuration OK"), "{stdout}");
    assert!(stderr.trim().is_empty(), "unexpected output: {stderr}");
}

/// The outbound cases (practice codes, destination classes, caller IDs),
/// the `[callback]` case (digit, ranges, settings without the offer) and
/// the `[[transfers]]` case (codes, targets, numbers against the outbound
/// allow-list) and the `[card]` case (text lengths, control characters,
/// duplicate labels, unknown keys) are among those checked below.
#[test]
fn outbound_callback_and_transfer_cases_are_present() {
    let root = common::repo().join("tests/configs");
    for case in [
        "outbound-duplicate-code",
        "outbound-unknown-class",
        "outbound-bad-caller-id",
        "callback-bad",
        "transfers-bad",
        "card-bad",
        "voicemail-mail-bad",
        "announcements-bad",
    ] {
        assert!(
            root.join(case).join("expected.txt").is_file(),
            "tests/configs/{case}/expected.txt is missing"
        );
    }
}

#[test]
fn broken_configurations_are_reported_with_file_line_and_field() {
    let root = common::repo().join("tests/configs");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .expect("tests/configs")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('_'))
        })
        .collect();
    cases.sort();
    assert!(cases.len() >= 12, "expected at least 12 broken configs");
    for case in cases {
        let expected: Vec<String> = std::fs::read_to_string(case.join("expected.txt"))
            .expect("expected.txt")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect();
        let (ok, _stdout, stderr) = check(&case.join("permanence.toml"));
        assert!(!ok, "{} passed check-config", case.display());
        let prefix = format!("{}/", case.display());
        let got: Vec<String> = stderr
            .lines()
            .filter(|l| !l.starts_with("warning: "))
            .map(|l| l.replace(&prefix, ""))
            .collect();
        assert_eq!(got, expected, "case {}", case.display());
        // Every line names a file and a line number.
        for l in &got {
            let mut parts = l.splitn(3, ':');
            let file = parts.next().unwrap_or("");
            let line = parts.next().unwrap_or("");
            assert!(file.ends_with(".toml"), "no file in {l:?}");
            assert!(line.parse::<usize>().is_ok(), "no line in {l:?}");
        }
    }
}
