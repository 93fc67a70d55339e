//! The configuration loader on a fuzzed main file and a fuzzed dialplan
//! (the input is split in two at the first NUL byte), with the demo's other
//! dialplans beside them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

/// A scratch directory per process with `dialplans/` from the demo.
fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("permanence-fuzz-config-{}", std::process::id()));
        let _ = std::fs::create_dir_all(dir.join("dialplans"));
        let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dialplans");
        if let Ok(entries) = std::fs::read_dir(&demo) {
            for e in entries.flatten() {
                let _ = std::fs::copy(e.path(), dir.join("dialplans").join(e.file_name()));
            }
        }
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = scratch();
    let (main, plan) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let main_path = dir.join("permanence.toml");
    if std::fs::write(&main_path, main).is_err()
        || std::fs::write(dir.join("dialplans").join("zz-fuzz.toml"), plan).is_err()
    {
        return;
    }
    let _ = permanence_config::load(&main_path);
});
