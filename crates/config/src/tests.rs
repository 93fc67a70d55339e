//! Outbound settings, practice codes, the `[callback]`, `[[transfers]]`
//! and `[card]` sections and
//! [`Config::serves`] on small configurations written to a scratch
//! directory.

use std::path::PathBuf;
use std::time::Duration;

use permanence_outbound::{AllowList, DestinationClass};

use crate::{load, CallbackOffer, CallbackPolicy, CardEntry, Config, PracticeCard, TransferTo};

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

/// A practice whose overflow is a callback request, with `extra` (sections)
/// at the end (its first line is line 19).
fn callback_practice(id: &str, number: &str, extra: &str) -> String {
    practice(id, &format!("forwarded_from = [{number:?}]"), "", extra).replace(
        "action = \"pool\"\npool = \"shared\"",
        "action = \"callback\"",
    )
}

fn minutes(n: u64) -> Duration {
    Duration::from_secs(60 * n)
}

#[test]
fn callback_defaults() {
    let d = CallbackPolicy::default();
    assert_eq!(d.offer, None);
    assert_eq!(d.within, minutes(60));
    assert_eq!(d.max_attempts, 3);
    assert_eq!(d.retry_spacing, minutes(10));
    assert_eq!(
        CallbackOffer::default(),
        CallbackOffer {
            digit: '2',
            after: Duration::ZERO
        }
    );
    let c = ok(
        "callback-defaults",
        &[],
        &[
            // No section: defaults (an overflow to callback uses them).
            ("a.toml", callback_practice("a", "+33450000001", "")),
            // An empty section is the same.
            (
                "b.toml",
                callback_practice("b", "+33450000002", "[callback]"),
            ),
            // offer = false written out.
            (
                "c.toml",
                callback_practice("c", "+33450000003", "[callback]\noffer = false"),
            ),
            // offer alone: digit 2, right away, default deadline and tries.
            (
                "d.toml",
                callback_practice("d", "+33450000004", "[callback]\noffer = true"),
            ),
            // The overflow is not a callback: the section is still allowed.
            (
                "e.toml",
                practice(
                    "e",
                    r#"forwarded_from = ["+33450000005"]"#,
                    "",
                    "[callback]\nwithin_minutes = 30",
                ),
            ),
        ],
    );
    for id in ["a", "b", "c"] {
        assert_eq!(c.practice(id).map(|p| &p.callback), Some(&d), "{id}");
    }
    assert_eq!(
        c.practice("d").map(|p| &p.callback),
        Some(&CallbackPolicy {
            offer: Some(CallbackOffer::default()),
            ..CallbackPolicy::default()
        })
    );
    assert_eq!(
        c.practice("e").map(|p| p.callback.within),
        Some(minutes(30))
    );
}

#[test]
fn callback_values_and_bounds() {
    let c = ok(
        "callback-values",
        &[],
        &[
            (
                "a.toml",
                callback_practice(
                    "a",
                    "+33450000001",
                    "[callback]\noffer = true\ndigit = \"0\"\noffer_after_seconds = 3600\nwithin_minutes = 5\nmax_attempts = 1\nretry_minutes = 1",
                ),
            ),
            (
                "b.toml",
                callback_practice(
                    "b",
                    "+33450000002",
                    "[callback]\noffer = true\ndigit = 9\noffer_after_seconds = 0\nwithin_minutes = 1440\nmax_attempts = 10\nretry_minutes = 240",
                ),
            ),
            // The triage digit 2 does not conflict with the callback digit
            // 2: the menu is answered before the call joins the queue.
            (
                "c.toml",
                callback_practice(
                    "c",
                    "+33450000003",
                    "[callback]\noffer = true\ndigit = \"2\"\noffer_after_seconds = 45\n\n[triage]\n[[triage.options]]\ndigit = \"2\"\nlabel = \"rendez-vous\"",
                ),
            ),
        ],
    );
    let policy = |id: &str| c.practice(id).map(|p| p.callback.clone());
    assert_eq!(
        policy("a"),
        Some(CallbackPolicy {
            offer: Some(CallbackOffer {
                digit: '0',
                after: Duration::from_secs(3600)
            }),
            within: minutes(5),
            max_attempts: 1,
            retry_spacing: minutes(1),
        })
    );
    // An integer digit, like triage digits.
    assert_eq!(
        policy("b"),
        Some(CallbackPolicy {
            offer: Some(CallbackOffer {
                digit: '9',
                after: Duration::ZERO
            }),
            within: minutes(1440),
            max_attempts: 10,
            retry_spacing: minutes(240),
        })
    );
    let p = c.practice("c").expect("c");
    assert_eq!(
        p.callback.offer,
        Some(CallbackOffer {
            digit: '2',
            after: Duration::from_secs(45)
        })
    );
    assert!(p.triage.as_ref().and_then(|t| t.option('2')).is_some());
}

#[test]
fn callback_errors() {
    let got = errors(
        "callback-errors",
        &[],
        &[
            // Values out of range, too low.
            (
                "a.toml",
                callback_practice(
                    "a",
                    "+33450000001",
                    "[callback]\noffer = true\ndigit = \"22\"\noffer_after_seconds = -1\nwithin_minutes = 4\nmax_attempts = 0\nretry_minutes = 0",
                ),
            ),
            // Too high; keys that are not a digit.
            (
                "b.toml",
                callback_practice(
                    "b",
                    "+33450000002",
                    "[callback]\noffer = true\ndigit = \"*\"\noffer_after_seconds = 3601\nwithin_minutes = 1441\nmax_attempts = 11\nretry_minutes = 241",
                ),
            ),
            (
                "c.toml",
                callback_practice(
                    "c",
                    "+33450000003",
                    "[callback]\noffer = true\ndigit = 10",
                ),
            ),
            (
                "d.toml",
                callback_practice("d", "+33450000004", "[callback]\noffer = true\ndigit = \"\""),
            ),
            (
                "e.toml",
                callback_practice("e", "+33450000005", "[callback]\noffer = true\ndigit = \"#\""),
            ),
            // Settings of the offer without the offer.
            (
                "f.toml",
                callback_practice(
                    "f",
                    "+33450000006",
                    "[callback]\ndigit = \"2\"\noffer_after_seconds = 30",
                ),
            ),
            (
                "g.toml",
                callback_practice(
                    "g",
                    "+33450000007",
                    "[callback]\noffer = false\ndigit = \"x\"",
                ),
            ),
            // Structure: wrong type, unknown key.
            (
                "h.toml",
                callback_practice(
                    "h",
                    "+33450000008",
                    "[callback]\noffer = \"yes\"\nwithin = 60",
                ),
            ),
        ],
    );
    let between = |lo: i64, hi: i64, v: i64| format!("must be between {lo} and {hi}, got {v}");
    let fields = "`offer`, `digit`, `offer_after_seconds`, `within_minutes`, `max_attempts`, `retry_minutes`";
    assert_eq!(
        got,
        [
            "dialplans/a.toml:21: callback.digit: invalid callback digit \"22\": expected one of 0-9".to_string(),
            format!("dialplans/a.toml:22: callback.offer_after_seconds: {}", between(0, 3600, -1)),
            format!("dialplans/a.toml:23: callback.within_minutes: {}", between(5, 1440, 4)),
            format!("dialplans/a.toml:24: callback.max_attempts: {}", between(1, 10, 0)),
            format!("dialplans/a.toml:25: callback.retry_minutes: {}", between(1, 240, 0)),
            "dialplans/b.toml:21: callback.digit: invalid callback digit \"*\": expected one of 0-9".to_string(),
            format!("dialplans/b.toml:22: callback.offer_after_seconds: {}", between(0, 3600, 3601)),
            format!("dialplans/b.toml:23: callback.within_minutes: {}", between(5, 1440, 1441)),
            format!("dialplans/b.toml:24: callback.max_attempts: {}", between(1, 10, 11)),
            format!("dialplans/b.toml:25: callback.retry_minutes: {}", between(1, 240, 241)),
            "dialplans/c.toml:21: callback.digit: invalid callback digit 10: expected one of 0-9".to_string(),
            "dialplans/d.toml:21: callback.digit: invalid callback digit \"\": expected one of 0-9".to_string(),
            "dialplans/e.toml:21: callback.digit: invalid callback digit \"#\": expected one of 0-9".to_string(),
            "dialplans/f.toml:20: callback.digit: only allowed when offer = true (without the offer, no key is listened to in the queue)".to_string(),
            "dialplans/f.toml:21: callback.offer_after_seconds: only allowed when offer = true (without the offer, nothing is played)".to_string(),
            "dialplans/g.toml:21: callback.digit: only allowed when offer = true (without the offer, no key is listened to in the queue)".to_string(),
            "dialplans/h.toml:20: callback.offer: invalid type: string \"yes\", expected a boolean".to_string(),
            format!("dialplans/h.toml:21: callback.within: unknown field `within`, expected one of {fields}"),
        ]
    );
}

/// A practice with `[[transfers]]` (and any other section) in `extra`, at
/// line 20.
fn transfer_practice(id: &str, number: &str, extra: &str) -> String {
    practice(id, &format!("forwarded_from = [{number:?}]"), "", extra)
}

#[test]
fn transfers_values() {
    let c = ok(
        "transfers-values",
        &[("#MAIN", "\n[outbound]\nallow_numbers = [\"+41\"]")],
        &[
            (
                "a.toml",
                transfer_practice(
                    "a",
                    "+33450000001",
                    r#"[[transfers]]
code = "1"
label = "Dr A - portable"
number = "06 11 22 33 44"
[[transfers]]
code = "0042"
label = "Bob"
agent = "bob"
[[transfers]]
code = "7"
label = "Pool partagé"
pool = "shared"
[[transfers]]
code = "8"
label = "Réunion"
number = "0692123456"
[[transfers]]
code = "9"
label = "Genève"
number = "+41221234567""#,
                ),
            ),
            // No section: no transfer.
            ("b.toml", transfer_practice("b", "+33450000002", "")),
            // Each practice has its own codes.
            (
                "c.toml",
                transfer_practice(
                    "c",
                    "+33450000003",
                    "[[transfers]]\ncode = \"1\"\nlabel = \"Alice\"\nagent = \"alice\"",
                ),
            ),
        ],
    );
    let a = c.practice("a").expect("a");
    let codes: Vec<&str> = a.transfers.iter().map(|t| t.code.as_str()).collect();
    assert_eq!(codes, ["1", "0042", "7", "8", "9"]);
    let to = |code: &str| a.transfer(code).map(|t| t.to.clone());
    let number = |n: &str| {
        permanence_numbers::normalize(n, permanence_numbers::Country::Fr)
            .map(TransferTo::Number)
            .expect("number")
    };
    assert_eq!(to("1"), Some(number("+33611223344")));
    assert_eq!(to("0042"), Some(TransferTo::Agent("bob".into())));
    assert_eq!(to("7"), Some(TransferTo::Pool("shared".into())));
    // An overseas mobile, with its own country code; a number the main
    // file's allow_numbers lets out.
    assert_eq!(to("8"), Some(number("+262692123456")));
    assert_eq!(to("9"), Some(number("+41221234567")));
    assert!(a.transfer("42").is_none());
    assert!(a.transfer("2").is_none());
    let first = a.transfer("1").expect("1");
    assert_eq!(first.label, "Dr A - portable");
    assert_eq!(
        (first.origin.line, first.origin.field.as_str()),
        (20, "transfers[0]")
    );
    assert!(first.origin.file.ends_with("dialplans/a.toml"));
    assert!(c.practice("b").expect("b").transfers.is_empty());
    assert_eq!(
        c.practice("c").and_then(|p| p.transfer("1")).map(|t| &t.to),
        Some(&TransferTo::Agent("alice".into()))
    );
}

#[test]
fn transfers_errors() {
    let got = errors(
        "transfers-errors",
        &[],
        &[
            // Codes: format, duplicates, type; labels; targets.
            (
                "a.toml",
                transfer_practice(
                    "a",
                    "+33450000001",
                    r#"[[transfers]]
code = "12345"
label = ""
number = "+33611223344"
[[transfers]]
code = "1"
label = "Un"
agent = "alice"
[[transfers]]
code = "1"
label = "Deux"
pool = "shared"
[[transfers]]
code = "*2"
label = "Trois"
[[transfers]]
code = "3"
label = "Quatre"
number = "+33611223344"
agent = "alice"
pool = "shared"
[[transfers]]
code = 4
label = "Cinq"
agent = "alice""#,
                ),
            ),
            // Numbers and references.
            (
                "b.toml",
                transfer_practice(
                    "b",
                    "+33450000002",
                    r#"[[transfers]]
code = "1"
label = "Pas un numéro"
number = "portable"
[[transfers]]
code = "2"
label = "SAMU"
number = "15"
[[transfers]]
code = "3"
label = "Surtaxé"
number = "0899123456"
[[transfers]]
code = "4"
label = "Genève"
number = "+41221234567"
[[transfers]]
code = "5"
label = "Cabinet A"
number = "04 50 00 00 01"
[[transfers]]
code = "6"
label = "Dave"
agent = "dave"
[[transfers]]
code = "7"
label = "Pool"
pool = "nowhere"
[[transfers]]
code = "8"
label = "Trop court"
number = "+3361122334""#,
                ),
            ),
            // Structure.
            (
                "c.toml",
                transfer_practice(
                    "c",
                    "+33450000003",
                    "[[transfers]]\ncode = \"1\"\nlabel = \"x\"\nagent = \"alice\"\nphone = \"+33611223344\"",
                ),
            ),
            (
                "d.toml",
                practice(
                    "d",
                    r#"forwarded_from = ["+33450000004"]
transfers = "1""#,
                    "",
                    "",
                ),
            ),
        ],
    );
    let expected = "expected E.164 such as +33612345678, or a national number";
    let allow = "is not allowed by the practice's outbound allow-list (emergency, fixed, mobile): allow its class in outbound.allow or the number in outbound.allow_numbers";
    assert_eq!(
        got,
        [
            "dialplans/a.toml:21: transfers[0].code: invalid transfer code \"12345\": expected 1 to 4 digits (the agent transfers to sip:<code>@<engine>)".to_string(),
            "dialplans/a.toml:22: transfers[0].label: must not be empty nor contain control characters".to_string(),
            "dialplans/a.toml:29: transfers[2].code: transfer code \"1\" is already used by transfers[1]".to_string(),
            "dialplans/a.toml:32: transfers[3]: a transfer needs a target: one of number, agent or pool".to_string(),
            "dialplans/a.toml:33: transfers[3].code: invalid transfer code \"*2\": expected 1 to 4 digits (the agent transfers to sip:<code>@<engine>)".to_string(),
            "dialplans/a.toml:39: transfers[4].agent: a transfer has one target: number is already given".to_string(),
            "dialplans/a.toml:40: transfers[4].pool: a transfer has one target: number is already given".to_string(),
            "dialplans/a.toml:42: transfers[5].code: invalid type: integer `4`, expected a string".to_string(),
            format!("dialplans/b.toml:23: transfers[0].number: not a telephone number: \"portable\" ({expected})"),
            format!("dialplans/b.toml:27: transfers[1].number: not a telephone number: \"15\" is a short code, a caller is transferred to a full number ({expected})"),
            format!("dialplans/b.toml:31: transfers[2].number: +33899123456 (premium) {allow}"),
            format!("dialplans/b.toml:35: transfers[3].number: +41221234567 (international) {allow}"),
            "dialplans/b.toml:39: transfers[4].number: +33450000001 is a number of practice \"a\": the call would loop back into Permanence".to_string(),
            "dialplans/b.toml:43: transfers[5].agent: agent \"dave\" is not defined in [[agents]]".to_string(),
            "dialplans/b.toml:47: transfers[6].pool: pool \"nowhere\" is not defined in [[pools]]".to_string(),
            format!("dialplans/b.toml:51: transfers[7].number: not a telephone number: \"+3361122334\" ({expected})"),
            "dialplans/c.toml:24: transfers[0].phone: unknown field `phone`, expected one of `code`, `label`, `number`, `agent`, `pool`".to_string(),
            "dialplans/d.toml:7: transfers: expected an array of tables ([[transfers]])".to_string(),
        ]
    );
}

/// `[[card.entries]]` tables, one per `(label, text)`.
fn card_entries(entries: &[(&str, &str)]) -> String {
    entries
        .iter()
        .map(|(l, t)| format!("[[card.entries]]\nlabel = {l:?}\ntext = {t:?}\n"))
        .collect()
}

#[test]
fn card_defaults_and_values() {
    let long = |n: usize| "é".repeat(n);
    let fifty: Vec<(String, String)> = (0..50)
        .map(|i| (format!("Consigne {i}"), format!("Texte {i}")))
        .collect();
    let fifty: Vec<(&str, &str)> = fifty
        .iter()
        .map(|(l, t)| (l.as_str(), t.as_str()))
        .collect();
    let c =
        ok(
            "card-values",
            &[],
            &[
                // No section: no card.
                ("a.toml", transfer_practice("a", "+33450000001", "")),
                // A summary only: no entries.
                (
                    "b.toml",
                    transfer_practice(
                        "b",
                        "+33450000002",
                        "[card]\nsummary = \"Médecin généraliste.\"",
                    ),
                ),
                // Multi-line text with tabs and CRLF, entries in file order.
                (
                    "c.toml",
                    transfer_practice(
                        "c",
                        "+33450000003",
                        &format!(
                        "[card]\nsummary = \"\"\"\nUrgences le matin.\r\n\tAvant 11 h.\"\"\"\n{}",
                        card_entries(&[
                            ("Résultats d'analyses", "Prendre un message.\nLe Dr rappelle."),
                            ("Renouvellement d'ordonnance", "Proposer un rendez-vous."),
                        ])
                    ),
                    ),
                ),
                // The limits, counted in characters (é is 2 bytes).
                (
                    "d.toml",
                    transfer_practice(
                        "d",
                        "+33450000004",
                        &format!(
                            "[card]\nsummary = {:?}\n{}{}",
                            long(2000),
                            card_entries(&[(&long(80), &long(1000))]),
                            card_entries(&fifty[1..]),
                        ),
                    ),
                ),
            ],
        );
    let card = |id: &str| c.practice(id).and_then(|p| p.card.clone());
    assert_eq!(card("a"), None);
    assert_eq!(
        card("b"),
        Some(PracticeCard {
            summary: "Médecin généraliste.".to_string(),
            entries: Vec::new(),
        })
    );
    let entry = |l: &str, t: &str| CardEntry {
        label: l.to_string(),
        text: t.to_string(),
    };
    assert_eq!(
        card("c"),
        Some(PracticeCard {
            summary: "Urgences le matin.\r\n\tAvant 11 h.".to_string(),
            entries: vec![
                entry(
                    "Résultats d'analyses",
                    "Prendre un message.\nLe Dr rappelle."
                ),
                entry("Renouvellement d'ordonnance", "Proposer un rendez-vous."),
            ],
        })
    );
    let d = card("d").expect("card d");
    assert_eq!(d.summary.chars().count(), PracticeCard::MAX_SUMMARY_CHARS);
    assert_eq!(d.entries.len(), PracticeCard::MAX_ENTRIES);
    assert_eq!(d.entries[0], entry(&long(80), &long(1000)));
    assert_eq!(d.entries[49], entry("Consigne 49", "Texte 49"));
}

#[test]
fn card_errors() {
    let fifty_one: Vec<(String, String)> = (0..51)
        .map(|i| (format!("Consigne {i}"), "Texte".to_string()))
        .collect();
    let fifty_one: Vec<(&str, &str)> = fifty_one
        .iter()
        .map(|(l, t)| (l.as_str(), t.as_str()))
        .collect();
    let got = errors(
        "card-errors",
        &[],
        &[
            // Empty and too long.
            (
                "a.toml",
                transfer_practice(
                    "a",
                    "+33450000001",
                    &format!(
                        "[card]\nsummary = \"\"\n{}",
                        card_entries(&[
                            (" ", "Texte"),
                            ("Texte long", &"é".repeat(1001)),
                            (&"é".repeat(81), "Texte"),
                            ("Texte vide", "\n\t"),
                        ])
                    ),
                ),
            ),
            // Control characters; a duplicate label.
            (
                "b.toml",
                transfer_practice(
                    "b",
                    "+33450000002",
                    r#"[card]
summary = "Bip\u0007"
[[card.entries]]
label = "Urgences"
text = "Texte\u001B[31m"
[[card.entries]]
label = "Deux\nlignes"
text = "Texte"
[[card.entries]]
label = "URGENCES "
text = "Texte"
[[card.entries]]
label = "Retour"
text = "Texte\r"
[[card.entries]]
label = "Tabulation"
text = "\tTexte\r\n\tsuite\u0085""#,
                ),
            ),
            // Too many entries.
            (
                "c.toml",
                transfer_practice(
                    "c",
                    "+33450000003",
                    &format!("[card]\nsummary = \"Résumé\"\n{}", card_entries(&fifty_one)),
                ),
            ),
            // Structure: unknown keys, a missing key, not an array.
            (
                "d.toml",
                transfer_practice(
                    "d",
                    "+33450000004",
                    "[card]\nsumary = \"Résumé\"\n[[card.entries]]\nlabel = \"A\"\ntexte = \"B\"\n[[card.entries]]\nlabel = \"C\"",
                ),
            ),
            (
                "e.toml",
                transfer_practice(
                    "e",
                    "+33450000005",
                    "[card]\nsummary = \"Résumé\"\nentries = \"A\"",
                ),
            ),
            (
                "f.toml",
                transfer_practice(
                    "f",
                    "+33450000006",
                    &format!("[card]\nsummary = {:?}", "x".repeat(2001)),
                ),
            ),
        ],
    );
    assert_eq!(
        got,
        strings(&[
            "dialplans/a.toml:21: card.summary: must not be empty",
            "dialplans/a.toml:23: card.entries[0].label: must not be empty",
            "dialplans/a.toml:27: card.entries[1].text: too long: at most 1000 characters, got 1001",
            "dialplans/a.toml:29: card.entries[2].label: too long: at most 80 characters, got 81",
            "dialplans/a.toml:33: card.entries[3].text: must not be empty",
            "dialplans/b.toml:21: card.summary: must not contain control characters other than newline and tab: found U+0007",
            "dialplans/b.toml:24: card.entries[0].text: must not contain control characters other than newline and tab: found U+001B",
            "dialplans/b.toml:26: card.entries[1].label: must not contain control characters (it is one line): found U+000A",
            "dialplans/b.toml:29: card.entries[2].label: card entry label \"URGENCES \" is already used by card.entries[0] (labels are compared ignoring case and surrounding spaces)",
            "dialplans/b.toml:33: card.entries[3].text: must not contain control characters other than newline and tab: found U+000D",
            "dialplans/b.toml:36: card.entries[4].text: must not contain control characters other than newline and tab: found U+0085",
            "dialplans/c.toml:172: card.entries[50]: too many card entries: at most 50, got 51",
            "dialplans/d.toml:20: card.summary: missing required field",
            "dialplans/d.toml:21: card.sumary: unknown field `sumary`, expected `summary` or `entries`",
            "dialplans/d.toml:22: card.entries[0].text: missing required field",
            "dialplans/d.toml:24: card.entries[0].texte: unknown field `texte`, expected `label` or `text`",
            "dialplans/d.toml:25: card.entries[1].text: missing required field",
            "dialplans/e.toml:22: card.entries: expected an array of tables ([[card.entries]])",
            "dialplans/f.toml:21: card.summary: too long: at most 2000 characters, got 2001",
        ])
    );
}

#[test]
fn console_session_minutes_defaults_and_bounds() {
    let dialplans = [("a.toml", practice("a", FWD, "", ""))];
    let c = ok("console-default", &[], &dialplans);
    assert_eq!(c.http.console_session, Duration::from_secs(600 * 60));
    let listen = r#"listen = "127.0.0.1:8080""#;
    let set = |m: &str| format!("{listen}\nconsole_session_minutes = {m}");
    let c = ok("console-set", &[(listen, &set("90"))], &dialplans);
    assert_eq!(c.http.console_session, Duration::from_secs(90 * 60));
    for (tag, m, want) in [
        ("console-low", "4", "must be between 5 and 1440, got 4"),
        (
            "console-high",
            "1441",
            "must be between 5 and 1440, got 1441",
        ),
        ("console-neg", "-1", "must be between 5 and 1440, got -1"),
    ] {
        assert_eq!(
            errors(tag, &[(listen, &set(m))], &dialplans),
            strings(&[&format!(
                "permanence.toml:14: http.console_session_minutes: {want}"
            )])
        );
    }
    let got = errors("console-type", &[(listen, &set("\"long\""))], &dialplans);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("permanence.toml:14: http.console_session_minutes"),
        "{got:?}"
    );
}

/// `languages` with `"en"`: « For English, press 9 » (digit 9 reserved in
/// the triage menu), `[prompts.en]` only for such a practice.
#[test]
fn english_offer_and_its_checks() {
    let fr_en = r#"forwarded_from = ["+33450000001"]
languages = ["fr", "en"]"#;
    let c = ok(
        "english-ok",
        &[],
        &[
            ("a.toml", practice("a", fr_en, "", "")),
            (
                "b.toml",
                practice("b", r#"forwarded_from = ["+33450000002"]"#, "", ""),
            ),
        ],
    );
    let a = c.practice("a").expect("a");
    assert_eq!(a.english_digit(), Some('9'));
    assert!(a.prompts.en.is_none());
    assert_eq!(c.practice("b").expect("b").english_digit(), None);

    let menu = "[triage]\n[[triage.options]]\ndigit = \"1\"\nlabel = \"rdv\"\n[[triage.options]]\ndigit = \"9\"\nlabel = \"autre\"";
    let got = errors(
        "english-errors",
        &[],
        &[
            ("a.toml", practice("a", fr_en, "", menu)),
            (
                "b.toml",
                practice(
                    "b",
                    r#"forwarded_from = ["+33450000002"]"#,
                    "",
                    "[prompts.en]\ngreeting = \"hello.wav\"",
                ),
            ),
        ],
    );
    let has = |file: &str, needle: &str| {
        got.iter()
            .any(|e| e.starts_with(file) && e.contains(needle))
    };
    assert!(
        has(
            "dialplans/a.toml:",
            "triage.options[1].digit: digit \"9\" is « For English, press 9 »"
        ),
        "{got:#?}"
    );
    assert!(
        has(
            "dialplans/b.toml:",
            "prompts.en: the practice's languages do not include \"en\""
        ),
        "{got:#?}"
    );
    // Each with its line.
    assert!(got.iter().all(|e| e
        .split(':')
        .nth(1)
        .is_some_and(|l| l.parse::<u32>().is_ok())));
}
