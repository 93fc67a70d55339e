//! Loading and validation of the Permanence configuration.
//!
//! [`load`] reads the main file (`config/permanence.toml`), then every
//! `*.toml` of its `dialplans_dir` (one practice per file, sorted by file
//! name), deserializes them with serde (`deny_unknown_fields` everywhere),
//! validates them and returns a typed [`Config`]: socket addresses, CIDRs,
//! time zones, [`Schedule`](permanence_calendar::Schedule)s, E.164 numbers,
//! prompt paths resolved against the file naming them, references between
//! practices, pools and agents checked.
//!
//! Every problem found is reported, not just the first, as a
//! [`ConfigError`] displayed `file:line: field: message`:
//!
//! ```text
//! config/permanence.toml:41: agents[1].ha1_md5: expected 32 hexadecimal digits (MD5 of username:realm:password), got 31 characters
//! config/../dialplans/caron.toml:9: forwarded_from[0]: number +33450000001 is already claimed by practice "martin" (config/../dialplans/martin.toml:9)
//! ```
//!
//! Syntax errors and structural errors (unknown key, wrong type, missing
//! key) come from the TOML parser and serde with their byte span; semantic
//! errors are located through the spans of the parsed document (see the
//! `source` module). Each section, and each element of an array of tables,
//! is deserialized separately so that one broken agent does not hide the
//! problems of the next; within one such unit, every unknown or ill-typed
//! key is reported, and the first missing required key.
//!
//! Every `*.toml` entry of the dialplans directory (hidden files aside) is
//! a dialplan: one that cannot be read (a dangling or looping symbolic
//! link, a directory, permission denied, not UTF-8) is an error located at
//! its line 1, never skipped, since a skipped dialplan would silently
//! remove its practice from a reload. The main file is read the same way.
//!
//! The loader never panics on any input, including binary garbage and
//! malformed WAV files (see the `no_panic` proptest).

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod announcements;
mod check;
mod error;
mod main_file;
mod model;
mod practice;
mod raw;
mod source;
#[cfg(test)]
mod tests;
mod wav;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use error::{ConfigError, ConfigErrors, Origin};
pub use model::{
    Agent, AnnouncementMode, CallbackOffer, CallbackPolicy, CardEntry, Config, ConfiguredStep,
    DatedAnnouncement, DigestAlgorithm, DispatcherConfig, HttpConfig, HttpUser, MailPassword,
    MailSettings, NumberKind, OutboundSettings, OverflowTarget, Pool, Practice, PracticeCard,
    PracticeOutbound, Prompt, PromptKind, Prompts, QueueSettings, RecordsSettings, RegistrarConfig,
    Role, Routing, RoutingStep, RtpConfig, Selector, SipConfig, SipLimits, SrtpPolicy, StartTls,
    Strategy, TlsFiles, TransferTarget, TransferTo, Triage, TriageOption, Trunk, WhenClosed,
};
pub use wav::{inspect_wav, parse_wav_header, WavError, WavInfo, MAX_PROMPT_BYTES};

use permanence_numbers::E164;

use crate::main_file::MainParts;
use crate::practice::{PracticeParts, Shared};
use crate::source::io_message;

/// Loads and validates the configuration whose main file is `path`.
///
/// Returns every error found, sorted by file (main file first, then
/// dialplans in name order) and line. Non-fatal findings of a valid
/// configuration are in [`Config::warnings`], sorted the same way.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let mut errors: Vec<ConfigError> = Vec::new();
    let mut order: Vec<PathBuf> = vec![path.to_path_buf()];
    let main = main_file::load_main(path, &mut errors);
    let mut parts: Vec<PracticeParts> = Vec::new();
    if let Some(main) = &main {
        if let Some(dir) = &main.dialplans_dir {
            let files = dialplan_files(dir, &main.src, &mut errors);
            let shared = Shared {
                known_agents: &main.known_agents,
                known_pools: &main.known_pools,
                dispatcher: &main.dispatcher,
                outbound: &main.outbound,
            };
            let main_id = std::fs::canonicalize(path).ok();
            for f in files {
                // `dialplans_dir = "."`: the main file is not a dialplan.
                if main_id.is_some() && std::fs::canonicalize(&f).ok() == main_id {
                    continue;
                }
                order.push(f.clone());
                if let Some(p) = practice::load_practice(&f, &shared, &mut errors) {
                    parts.push(p);
                }
            }
        }
    }
    cross_file(&parts, &mut errors);
    let rank = |f: &Path| order.iter().position(|o| o == f).unwrap_or(usize::MAX);
    let by_place = |a: &ConfigError, b: &ConfigError| {
        rank(&a.file).cmp(&rank(&b.file)).then(a.line.cmp(&b.line))
    };
    if errors.is_empty() {
        if let Some(mut config) = main.and_then(|m| assemble(m, parts)) {
            config.warnings.sort_by(by_place);
            return Ok(config);
        }
        // Unreachable in practice: every missing part has reported an error.
        errors.push(ConfigError::new(
            path,
            1,
            "",
            "configuration incomplete (internal error: a section failed without an error message)",
        ));
    }
    errors.sort_by(by_place);
    errors.dedup();
    Err(ConfigErrors::new(errors))
}

/// The `*.toml` entries of the dialplans directory, sorted by name (hidden
/// files skipped).
///
/// Every `*.toml` entry is returned whatever it is: a dangling or looping
/// symbolic link, a directory, a file that cannot be read are reported by
/// the loader as errors of that file, never skipped (a skipped dialplan
/// would silently remove its practice). An entry the directory listing
/// itself fails on is reported on `dialplans_dir`.
fn dialplan_files(
    dir: &Path,
    main: &source::Source,
    errors: &mut Vec<ConfigError>,
) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(main.err(
                "dialplans_dir",
                io_message(&format!("cannot read directory {}", dir.display()), &e),
            ));
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                errors.push(main.err(
                    "dialplans_dir",
                    io_message(&format!("cannot list directory {}", dir.display()), &e),
                ));
                continue;
            }
        };
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !name.starts_with('.') && name.ends_with(".toml") {
            files.push(entry.path());
        }
    }
    files.sort();
    if files.is_empty() {
        errors.push(main.err(
            "dialplans_dir",
            format!("no practice dialplan (*.toml) in {}", dir.display()),
        ));
    }
    files
}

/// Checks across dialplans: duplicate practice ids, numbers claimed twice,
/// triage `route_to` and transfer numbers that would loop back into
/// Permanence, duplicate outbound practice codes.
fn cross_file(parts: &[PracticeParts], errors: &mut Vec<ConfigError>) {
    let mut ids: HashMap<&str, &PracticeParts> = HashMap::new();
    for p in parts {
        let Some(id) = p.id.as_deref() else { continue };
        if let Some(first) = ids.get(id) {
            errors.push(p.src.err(
                "id",
                format!(
                    "practice id {id:?} is already used in {}:{}",
                    first.src.path.display(),
                    first.src.line_of("id")
                ),
            ));
        } else {
            ids.insert(id, p);
        }
    }
    let mut claims: HashMap<&E164, (&PracticeParts, &str)> = HashMap::new();
    for p in parts {
        for (n, field) in &p.numbers {
            if let Some((first, ffield)) = claims.get(n) {
                errors.push(p.src.err(
                    field,
                    format!(
                        "number {n} is already claimed by practice {:?} ({}:{})",
                        first.id.as_deref().unwrap_or("?"),
                        first.src.path.display(),
                        first.src.line_of(ffield)
                    ),
                ));
            } else {
                claims.insert(n, (p, field));
            }
        }
    }
    for p in parts {
        for (n, field) in &p.dialled {
            if let Some((owner, _)) = claims.get(n) {
                errors.push(p.src.err(
                    field,
                    format!(
                        "{n} is a number of practice {:?}: the call would loop back into Permanence",
                        owner.id.as_deref().unwrap_or("?")
                    ),
                ));
            }
        }
    }
    let mut codes: HashMap<&str, &PracticeParts> = HashMap::new();
    for p in parts {
        let Some(code) = p.code.as_deref() else {
            continue;
        };
        if let Some(first) = codes.get(code) {
            errors.push(p.src.err(
                "outbound.code",
                format!(
                    "code {code:?} is already used by practice {:?} ({}:{})",
                    first.id.as_deref().unwrap_or("?"),
                    first.src.path.display(),
                    first.src.line_of("outbound.code")
                ),
            ));
        } else {
            codes.insert(code, p);
        }
    }
}

/// Builds the model once everything validated, and computes warnings.
fn assemble(main: MainParts, parts: Vec<PracticeParts>) -> Option<Config> {
    let mut warnings = main.warnings;
    let mut practices = Vec::with_capacity(parts.len());
    for p in parts {
        warnings.extend(p.warnings);
        practices.push(p.practice?);
    }
    let agent_index = main
        .agents
        .iter()
        .enumerate()
        .map(|(i, a)| (a.username.clone(), i))
        .collect();
    let pool_index = main
        .pools
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.clone(), i))
        .collect();
    let practice_index = practices
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.clone(), i))
        .collect();
    let mut numbers = HashMap::new();
    for (i, p) in practices.iter().enumerate() {
        for n in &p.forwarded_from {
            numbers.insert(n.clone(), (i, NumberKind::ForwardedFrom));
        }
        for n in &p.dids {
            numbers.insert(n.clone(), (i, NumberKind::Did));
        }
    }
    let mut config = Config {
        source: main.src.path.clone(),
        dialplans_dir: main.dialplans_dir?,
        sip: main.sip?,
        rtp: main.rtp?,
        http: main.http?,
        dispatcher: main.dispatcher,
        records: main.records,
        outbound: main.outbound,
        mail: main.mail,
        trunks: main.trunks,
        agents: main.agents,
        pools: main.pools,
        practices,
        agent_index,
        pool_index,
        practice_index,
        numbers,
        warnings: Vec::new(),
    };
    warnings.extend(reachability_warnings(&config));
    config.warnings = warnings;
    Some(config)
}

/// Routing steps and triage options no defined agent can satisfy.
fn reachability_warnings(c: &Config) -> Vec<ConfigError> {
    let mut out = Vec::new();
    for p in c.practices() {
        for s in &p.routing.steps {
            if !c.agents().iter().any(|a| c.step_admits(p, &s.step, a)) {
                out.push(s.origin.error("no defined agent matches this step"));
            }
        }
        if let Some(t) = &p.triage {
            for o in &t.options {
                if o.route_to.is_some() || (o.skills.is_empty() && o.language.is_none()) {
                    continue;
                }
                let served = c.agents().iter().any(|a| {
                    o.skills.iter().all(|(s, l)| a.skill(s) >= *l)
                        && o.language.as_ref().is_none_or(|l| a.speaks(l))
                });
                if !served {
                    out.push(o.origin.error(
                        "no defined agent has the skills and language this option requires",
                    ));
                }
            }
        }
    }
    out
}
