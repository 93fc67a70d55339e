//! `load` never panics, whatever the files contain, and every error it
//! reports is well formed (a line inside its file, one-line message).
//!
//! Inputs are the demo configuration mutated line by line (values replaced
//! by hostile ones, lines deleted, duplicated, moved, keys injected), so
//! most of them still parse and reach the semantic checks, plus raw byte
//! mutations and random prompt files.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;

const MAIN: &str = include_str!("../../../config/permanence.toml");
const MARTIN: &str = include_str!("../../../dialplans/martin.toml");
const CARON: &str = include_str!("../../../dialplans/caron.toml");
const TILLEULS: &str = include_str!("../../../dialplans/tilleuls.toml");

/// Values substituted after `=`.
const VALUES: &[&str] = &[
    "\"\"",
    "-1",
    "0",
    "1",
    "65536",
    "9223372036854775807",
    "-9223372036854775808",
    "3.5",
    "nan",
    "true",
    "[]",
    "[[]]",
    "{}",
    "{ a = 1 }",
    "[\"\"]",
    "[1, 2]",
    "2026-08-03",
    "2026-02-30",
    "07:30:00",
    "1979-05-27T07:32:00Z",
    "\"0.0.0.0\"",
    "\"::\"",
    "\"[::1]:5060\"",
    "\"::ffff:127.0.0.1\"",
    "\"0.0.0.0/0\"",
    "\"127.0.0.1/40\"",
    "\"+33450000001\"",
    "\"+33140000002\"",
    "\"04 50 00 00 01\"",
    "\"+\"",
    "\"tel:\"",
    "\"sip:@\"",
    "\"08:00-12:00\"",
    "\"22:00-06:00\"",
    "\"00:00-24:00\"",
    "\"24:00-24:00\"",
    "\"+8:00-12:+5\"",
    "\"-\"",
    "\"Europe/Paris\"",
    "\"Mars/Olympus\"",
    "\"prompts/martin-greeting.wav\"",
    "\"prompts/garbage.wav\"",
    "\"/\"",
    "\"..\"",
    "\"alice\"",
    "\"ALICE\"",
    "\"shared-generaliste\"",
    "\"pool\"",
    "\"fr\"",
    "\"xx\"",
    "\"é\\u0000\\n\"",
    "\"a.b\"",
    "\"*\"",
    "\"#\"",
    "\"10\"",
    "'''multi\nline'''",
];

/// Lines inserted at random places.
const LINES: &[&str] = &[
    "[sip]",
    "[rtp]",
    "[[agents]]",
    "[[pools]]",
    "[[trunks]]",
    "[[routing.steps]]",
    "[[triage.options]]",
    "[[hours.exceptions]]",
    "[hours]",
    "[agents.shift]",
    "[routing.overflow]",
    "[prompts]",
    "[callback]",
    "offer = true",
    "[a.b.c]",
    "x.y.z = 1",
    "username = \"alice\"",
    "id = \"martin\"",
    "mon = [\"08:00-12:00\", \"11:00-13:00\"]",
    "sun = [\"22:00-06:00\"]",
    "pool = \"nope\"",
    "dedicated = true",
    "after_seconds = 0",
    "action = \"pool\"",
    "digit = \"1\"",
    "from = 2026-01-01",
    "forwarded_from = [\"+33450000001\"]",
    "sources = [\"127.0.0.1\"]",
    "skills = { \"a.b\" = 9, \"\" = 1 }",
    "= 1",
    "[",
    "\"unterminated",
    "\u{feff}",
];

#[derive(Debug, Clone)]
enum Op {
    Value(usize, usize),
    Delete(usize),
    Duplicate(usize),
    Swap(usize, usize),
    Insert(usize, usize),
    Byte(usize, u8),
    Truncate(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let i = 0usize..10_000;
    prop_oneof![
        4 => (i.clone(), 0..VALUES.len()).prop_map(|(a, b)| Op::Value(a, b)),
        1 => i.clone().prop_map(Op::Delete),
        1 => i.clone().prop_map(Op::Duplicate),
        1 => (i.clone(), i.clone()).prop_map(|(a, b)| Op::Swap(a, b)),
        2 => (i.clone(), 0..LINES.len()).prop_map(|(a, b)| Op::Insert(a, b)),
        1 => (i.clone(), any::<u8>()).prop_map(|(a, b)| Op::Byte(a, b)),
        1 => i.prop_map(Op::Truncate),
    ]
}

/// Applies mutations to a text; the result may not be UTF-8.
fn mutate(text: &str, ops: &[Op]) -> Vec<u8> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut bytes_ops = Vec::new();
    for op in ops {
        let n = lines.len().max(1);
        match op {
            Op::Value(l, v) => {
                if let Some(line) = lines.get_mut(l % n) {
                    if let Some(eq) = line.find('=') {
                        *line = format!("{}= {}", &line[..eq], VALUES[*v]);
                    }
                }
            }
            Op::Delete(l) => {
                if !lines.is_empty() {
                    lines.remove(l % n);
                }
            }
            Op::Duplicate(l) => {
                if let Some(line) = lines.get(l % n).cloned() {
                    lines.insert(l % n, line);
                }
            }
            Op::Swap(a, b) => {
                if !lines.is_empty() {
                    lines.swap(a % n, b % n);
                }
            }
            Op::Insert(l, k) => lines.insert(l % (n + 1).min(lines.len() + 1), LINES[*k].into()),
            Op::Byte(..) | Op::Truncate(_) => bytes_ops.push(op.clone()),
        }
    }
    let mut bytes = lines.join("\n").into_bytes();
    for op in bytes_ops {
        let n = bytes.len().max(1);
        match op {
            Op::Byte(at, b) => {
                if let Some(x) = bytes.get_mut(at % n) {
                    *x = b;
                }
            }
            Op::Truncate(at) => bytes.truncate(at % n),
            _ => {}
        }
    }
    bytes
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

struct TempTree(PathBuf);

impl TempTree {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "permanence-config-nopanic-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(dir.join("config")).expect("temp dir");
        std::fs::create_dir_all(dir.join("dialplans/prompts")).expect("temp dir");
        Self(dir)
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Loads the tree and checks the shape of the errors.
fn check(tree: &Path) -> Result<(), TestCaseError> {
    match permanence_config::load(&tree.join("config/permanence.toml")) {
        Ok(c) => {
            // Lookups on whatever validated must not panic either.
            for p in c.practices() {
                for n in p.numbers() {
                    prop_assert!(c.practice_by_number(n).is_some());
                }
                let _ = c.eligible_agents(p, std::time::Duration::from_secs(3600));
            }
            let _ = c.trunk_for("127.0.0.1".parse().expect("ip"));
        }
        Err(errors) => {
            prop_assert!(!errors.is_empty());
            for e in &errors {
                let text = std::fs::read(&e.file).unwrap_or_default();
                let lines = text.iter().filter(|&&b| b == b'\n').count() + 1;
                prop_assert!(
                    e.line >= 1 && e.line <= lines,
                    "{e} (file has {lines} lines)"
                );
                prop_assert!(!e.message.is_empty(), "{e}");
                prop_assert!(!e.to_string().contains('\n'), "{e:?}");
            }
        }
    }
    Ok(())
}

fn wav_8k() -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dialplans/prompts/martin-greeting.wav"),
    )
    .expect("demo prompt")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn mutated_demo_never_panics(
        main_ops in proptest::collection::vec(op(), 0..6),
        dial_ops in proptest::collection::vec(op(), 0..8),
        which in 0usize..3,
        garbage in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let tree = TempTree::new();
        let dial = [MARTIN, CARON, TILLEULS][which];
        std::fs::write(tree.0.join("config/permanence.toml"), mutate(MAIN, &main_ops)).expect("write");
        std::fs::write(tree.0.join("dialplans/a.toml"), mutate(dial, &dial_ops)).expect("write");
        std::fs::write(tree.0.join("dialplans/z.toml"), TILLEULS).expect("write");
        let wav = wav_8k();
        for name in ["martin-greeting.wav", "martin-triage.wav", "caron-greeting.wav",
                     "caron-triage.wav", "tilleuls-greeting.wav"] {
            std::fs::write(tree.0.join("dialplans/prompts").join(name), &wav).expect("write");
        }
        std::fs::write(tree.0.join("dialplans/prompts/garbage.wav"), &garbage).expect("write");
        check(&tree.0)?;
    }

    #[test]
    fn random_text_never_panics(main in "\\PC{0,300}", dial in "[a-z_=\\[\\]\"{}., 0-9\\n:+-]{0,300}") {
        let tree = TempTree::new();
        std::fs::write(tree.0.join("config/permanence.toml"), format!("dialplans_dir = \"../dialplans\"\n{main}")).expect("write");
        std::fs::write(tree.0.join("dialplans/a.toml"), dial).expect("write");
        check(&tree.0)?;
    }

    #[test]
    fn mutated_prompt_never_panics(cut in 0usize..200, at in 0usize..60, b in any::<u8>()) {
        let tree = TempTree::new();
        std::fs::write(tree.0.join("config/permanence.toml"), MAIN).expect("write");
        std::fs::write(tree.0.join("dialplans/a.toml"), TILLEULS).expect("write");
        let mut wav = wav_8k();
        wav.truncate(cut);
        if let Some(x) = wav.get_mut(at) { *x = b; }
        std::fs::write(tree.0.join("dialplans/prompts/tilleuls-greeting.wav"), wav).expect("write");
        check(&tree.0)?;
    }
}

/// The demo itself goes through `check` cleanly (the harness is not
/// vacuous: an unmutated tree loads).
#[test]
fn unmutated_tree_loads() {
    let tree = TempTree::new();
    std::fs::write(tree.0.join("config/permanence.toml"), MAIN).expect("write");
    std::fs::write(tree.0.join("dialplans/a.toml"), TILLEULS).expect("write");
    std::fs::write(
        tree.0.join("dialplans/prompts/tilleuls-greeting.wav"),
        wav_8k(),
    )
    .expect("write");
    if let Err(e) = permanence_config::load(&tree.0.join("config/permanence.toml")) {
        panic!("{e}");
    }
}
