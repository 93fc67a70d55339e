//! Outbound settings, practice codes and [`Config::serves`] on small
//! configurations written to a scratch directory.

use std::path::PathBuf;
use std::time::Duration;

use permanence_outbound::{AllowList, DestinationClass};

use crate::{load, Config};

const MAIN: &str = r#"dialplans_dir = "dialplans"

[sip]
listen_udp = ["127.0.0.1:5060"]
realm = "permanence"

[rtp]
bind = "127.0.0.1"
port_min = 20000
port_max = 20999

[http]
listen = "127.0.0.1:8080"

[[trunks]]
name = "carrier"
sources = ["127.0.0.1/32"]

[[agents]]
username = "alice"
display_name = "Alice"
ha1_md5 = "194175b8a22c04145d69e5f2ed8dd1b5"
languages = ["fr"]
skills = { generaliste = 5 }
#ALICE

[[agents]]
username = "bob"
display_name = "Bob"
ha1_md5 = "6aa00eab57e087cdb20db0490bd6510d"
languages = ["en"]
skills = { kine = 2 }
#BOB

[[pools]]
id = "shared"
name = "Shared"
agents = ["alice"]
#MAIN
"#;

/// A dialplan; `#NUMBERS`, `#STEPS` and `#OUTBOUND` are replaced.
const PRACTICE: &str = r#"id = "ID"
name = "Cabinet"
specialty = "generaliste"
language = "fr"
timezone = "Europe/Paris"
#NUMBERS

[hours]
mon = ["08:00-12:00"]

[routing]
dedicated = ["alice"]
max_wait_seconds = 120
#STEPS
[routing.overflow]
action = "pool"
pool = "shared"
#OUTBOUND
"#;

/// A scratch configuration directory, removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A practice: `numbers` for `#NUMBERS`, `steps` for `#STEPS` (a dedicated
/// step when empty), `outbound` for `#OUTBOUND`.
fn practice(id: &str, numbers: &str, steps: &str, outbound: &str) -> String {
    let steps = if steps.is_empty() {
        "[[routing.steps]]\nafter_seconds = 0\ndedicated = true"
    } else {
        steps
    };
    PRACTICE
        .replace("\"ID\"", &format!("{id:?}"))
        .replace("#NUMBERS", numbers)
        .replace("#STEPS", steps)
        .replace("#OUTBOUND", outbound)
}

/// Loads the main file (with `#ALICE`, `#BOB`, `#MAIN` replaced by `edits`)
/// and the dialplans; errors rendered without the scratch directory.
fn load_case(
    tag: &str,
    edits: &[(&str, &str)],
    dialplans: &[(&str, String)],
) -> Result<Config, Vec<String>> {
    let dir = std::env::temp_dir().join(format!(
        "permanence-config-outbound-{tag}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let scratch = Scratch(dir);
    std::fs::create_dir_all(scratch.0.join("dialplans")).expect("scratch dir");
    let mut main = MAIN.to_string();
    for (mark, text) in edits {
        main = main.replace(mark, text);
    }
    std::fs::write(scratch.0.join("permanence.toml"), main).expect("main file");
    for (name, text) in dialplans {
        std::fs::write(scratch.0.join("dialplans").join(name), text).expect("dialplan");
    }
    let prefix = format!("{}/", scratch.0.display());
    load(&scratch.0.join("permanence.toml")).map_err(|e| {
        e.iter()
            .map(|e| e.to_string().replace(&prefix, ""))
            .collect()
    })
}

fn ok(tag: &str, edits: &[(&str, &str)], dialplans: &[(&str, String)]) -> Config {
    match load_case(tag, edits, dialplans) {
        Ok(c) => c,
        Err(e) => panic!("{tag}: {e:#?}"),
    }
}

fn errors(tag: &str, edits: &[(&str, &str)], dialplans: &[(&str, String)]) -> Vec<String> {
    match load_case(tag, edits, dialplans) {
        Ok(_) => panic!("{tag}: loaded"),
        Err(e) => e,
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

const FWD: &str = r#"forwarded_from = ["+33450000001"]"#;

#[test]
fn defaults_without_outbound_sections() {
    let c = ok(
        "defaults",
        &[],
        &[
            ("a.toml", practice("a", FWD, "", "")),
            (
                "b.toml",
                practice("b", r#"dids = ["+33980000002", "+33980000003"]"#, "", ""),
            ),
            (
                "c.toml",
                practice(
                    "c",
                    r#"forwarded_from = ["04 50 00 00 03"]
dids = ["+33980000004"]"#,
                    "",
                    "",
                ),
            ),
        ],
    );
    assert_eq!(c.outbound, crate::OutboundSettings::default());
    let caller_id = |id: &str| {
        c.practice(id)
            .and_then(|p| p.outbound.caller_id.as_ref())
            .map(|n| n.as_str().to_string())
    };
    // The first forwarded-from number, else the first DID.
    assert_eq!(caller_id("a").as_deref(), Some("+33450000001"));
    assert_eq!(caller_id("b").as_deref(), Some("+33980000002"));
    assert_eq!(caller_id("c").as_deref(), Some("+33450000003"));
    for p in c.practices() {
        assert_eq!(p.outbound.code, None);
        assert_eq!(p.outbound.allow, AllowList::french_default());
    }
    assert!(c.practice_by_code("1").is_none());
    assert!(c.agents().iter().all(|a| a.outbound_allow.is_none()));
}

#[test]
fn settings_codes_and_allow_lists() {
    let main = r#"
[outbound]
allow_numbers = ["+41", "3624"]
max_calls_per_agent = 1
ring_timeout_seconds = 45
recent_practice_minutes = 0
"#;
    let c = ok(
        "settings",
        &[
            ("#MAIN", main),
            ("#ALICE", r#"outbound_allow = ["emergency", "fixed"]"#),
            ("#BOB", r#"outbound_allow_numbers = ["+4122"]"#),
        ],
        &[
            (
                "a.toml",
                practice("a", FWD, "", "[outbound]\ncode = \"1\""),
            ),
            (
                "b.toml",
                practice(
                    "b",
                    r#"forwarded_from = ["+33450000002"]"#,
                    "",
                    "[outbound]\ncode = \"0042\"\ncaller_id = \"04 50 00 00 99\"\nallow = [\"premium\"]",
                ),
            ),
            (
                "c.toml",
                practice(
                    "c",
                    r#"forwarded_from = ["+33450000003"]"#,
                    "",
                    "[outbound]\nallow_numbers = []",
                ),
            ),
        ],
    );
    // Main [outbound]: classes defaulted, numbers given.
    let main_allow = AllowList {
        classes: AllowList::french_default().classes,
        numbers: strings(&["+41", "3624"]),
    };
    assert_eq!(c.outbound.allow, main_allow);
    assert_eq!(c.outbound.max_calls_per_agent, 1);
    assert_eq!(c.outbound.ring_timeout, Duration::from_secs(45));
    assert_eq!(c.outbound.recent_practice, Duration::ZERO);

    let a = c.practice_by_code("1").expect("code 1");
    assert_eq!(a.id, "a");
    assert_eq!(a.outbound.allow, main_allow);
    let b = c.practice_by_code("0042").expect("code 0042");
    assert_eq!(b.id, "b");
    assert!(c.practice_by_code("42").is_none());
    assert_eq!(
        b.outbound.caller_id.as_ref().map(|n| n.as_str()),
        Some("+33450000099")
    );
    // Each key absent takes the main file's value.
    assert_eq!(
        b.outbound.allow,
        AllowList {
            classes: [DestinationClass::Premium].into_iter().collect(),
            numbers: strings(&["+41", "3624"]),
        }
    );
    let cp = c.practice("c").expect("c");
    assert_eq!(cp.outbound.code, None);
    assert_eq!(
        cp.outbound.allow,
        AllowList {
            classes: AllowList::french_default().classes,
            numbers: Vec::new(),
        }
    );

    // An agent's restriction: what its keys do not name is not allowed.
    let alice = c.agent("alice").expect("alice");
    assert_eq!(
        alice.outbound_allow,
        Some(AllowList {
            classes: [DestinationClass::Emergency, DestinationClass::Fixed]
                .into_iter()
                .collect(),
            numbers: Vec::new(),
        })
    );
    let bob = c.agent("bob").expect("bob");
    assert_eq!(
        bob.outbound_allow,
        Some(AllowList {
            classes: Default::default(),
            numbers: strings(&["+4122"]),
        })
    );
}

#[test]
fn serves_any_step_at_any_wait() {
    let steps = r#"[[routing.steps]]
after_seconds = 0
dedicated = true
[[routing.steps]]
after_seconds = 60
skill = "kine"
min_level = 2
language = "en""#;
    let c = ok(
        "serves",
        &[
            (
                "#MAIN",
                "\n[[pools]]\nid = \"bobs\"\nname = \"Bob's\"\nagents = [\"bob\"]",
            ),
            ("#BOB", ""),
        ],
        &[
            ("a.toml", practice("a", FWD, "", "")),
            (
                "b.toml",
                practice("b", r#"forwarded_from = ["+33450000002"]"#, steps, ""),
            ),
            (
                "c.toml",
                practice(
                    "c",
                    r#"forwarded_from = ["+33450000003"]"#,
                    "[[routing.steps]]\nafter_seconds = 0\npool = \"bobs\"\nlanguage = \"fr\"",
                    "",
                ),
            ),
        ],
    );
    let alice = c.agent("alice").expect("alice");
    let bob = c.agent("bob").expect("bob");
    let a = c.practice("a").expect("a");
    let b = c.practice("b").expect("b");
    let p = c.practice("c").expect("c");
    // a: Alice only (dedicated); the overflow pool does not count.
    assert!(c.serves(alice, a));
    assert!(!c.serves(bob, a));
    // b: Bob from the second step on (kine 2, English).
    assert!(c.serves(alice, b));
    assert!(c.serves(bob, b));
    assert!(!c
        .eligible_agents(b, Duration::ZERO)
        .iter()
        .any(|x| x.username == "bob"));
    // c: a step needing both Bob's pool and French admits no one.
    assert!(!c.serves(alice, p));
    assert!(!c.serves(bob, p));
}

#[test]
fn main_file_errors() {
    let main = r#"
[outbound]
allow = ["fixed", "toll"]
allow_numbers = ["36 24"]
max_calls_per_agent = 0
ring_timeout_seconds = 5
recent_practice_minutes = 1441
"#;
    let got = errors(
        "main-errors",
        &[
            ("#MAIN", main),
            ("#ALICE", r#"outbound_allow_numbers = ["+33 1", "15"]"#),
            ("#BOB", "outbound_allow = \"fixed\""),
        ],
        &[("a.toml", practice("a", FWD, "", ""))],
    );
    let classes = "emergency, fixed, mobile, freephone, shared-cost, premium, short, international";
    let number = "(expected an E.164 prefix, \"+\" then 1 to 15 digits, or a short code of 2 to 6 digits, without separators)";
    assert_eq!(
        got,
        [
            format!("permanence.toml:25: agents[0].outbound_allow_numbers[0]: invalid number \"+33 1\" {number}"),
            "permanence.toml:33: agents[1].outbound_allow: invalid type: string \"fixed\", expected an array".to_string(),
            format!("permanence.toml:41: outbound.allow[1]: unknown destination class \"toll\" (known: {classes})"),
            format!("permanence.toml:42: outbound.allow_numbers[0]: invalid number \"36 24\" {number}"),
            "permanence.toml:43: outbound.max_calls_per_agent: must be between 1 and 10, got 0".to_string(),
            "permanence.toml:44: outbound.ring_timeout_seconds: must be between 10 and 300, got 5".to_string(),
            "permanence.toml:45: outbound.recent_practice_minutes: must be between 0 and 1440, got 1441".to_string(),
        ]
    );
}

#[test]
fn dialplan_errors() {
    let got = errors(
        "dialplan-errors",
        &[],
        &[
            (
                "a.toml",
                practice("a", FWD, "", "[outbound]\ncode = \"7\""),
            ),
            (
                "b.toml",
                practice(
                    "b",
                    r#"forwarded_from = ["+33450000002"]"#,
                    "",
                    "[outbound]\ncode = \"7\"\ncaller_id = \"+33\"",
                ),
            ),
            (
                "c.toml",
                practice(
                    "c",
                    r#"forwarded_from = ["+33450000003"]"#,
                    "",
                    "[outbound]\ncode = \"\"\nallow = [\"short\", \"\"]\nallow_numbers = [\"1\"]\nextra = 1",
                ),
            ),
            // Broken elsewhere: its code still takes part in the check.
            (
                "d.toml",
                practice(
                    "d",
                    r#"forwarded_from = ["+33450000004"]
info_url = "ftp://x""#,
                    "",
                    "[outbound]\ncode = \"7\"",
                ),
            ),
            // An integer code is refused (leading zeros would be lost).
            (
                "e.toml",
                practice(
                    "e",
                    r#"forwarded_from = ["+33450000005"]"#,
                    "",
                    "[outbound]\ncode = 8",
                ),
            ),
        ],
    );
    let classes = "emergency, fixed, mobile, freephone, shared-cost, premium, short, international";
    assert_eq!(
        got,
        [
            "dialplans/b.toml:21: outbound.code: code \"7\" is already used by practice \"a\" (dialplans/a.toml:21)".to_string(),
            "dialplans/b.toml:22: outbound.caller_id: not a telephone number: \"+33\" (expected E.164 such as +33450000001, or a national number)".to_string(),
            "dialplans/c.toml:24: outbound.extra: unknown field `extra`, expected one of `code`, `caller_id`, `allow`, `allow_numbers`".to_string(),
            "dialplans/d.toml:7: info_url: must be an http:// or https:// URL without spaces, quotes or angle brackets".to_string(),
            "dialplans/d.toml:22: outbound.code: code \"7\" is already used by practice \"a\" (dialplans/a.toml:21)".to_string(),
            "dialplans/e.toml:21: outbound.code: invalid type: integer `8`, expected a string".to_string(),
        ]
    );
    // Without the unknown key, c's values are checked.
    let got = errors(
        "dialplan-values",
        &[],
        &[(
            "c.toml",
            practice(
                "c",
                FWD,
                "",
                "[outbound]\ncode = \"\"\nallow = [\"short\", \"\"]\nallow_numbers = [\"1\"]",
            ),
        )],
    );
    assert_eq!(
        got,
        [
            "dialplans/c.toml:21: outbound.code: invalid practice code \"\": expected 1 to 4 digits (agents dial *8<code>*<number>)".to_string(),
            format!("dialplans/c.toml:22: outbound.allow[1]: unknown destination class \"\" (known: {classes})"),
            "dialplans/c.toml:23: outbound.allow_numbers[0]: invalid number \"1\" (expected an E.164 prefix, \"+\" then 1 to 15 digits, or a short code of 2 to 6 digits, without separators)".to_string(),
        ]
    );
}
