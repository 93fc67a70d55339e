//! Dated announcements and voicemail when closed, end to end: SIPp as the
//! carrier, RTP endpoints of the test checking which prompts the caller
//! heard (tones of distinct frequencies, see `TestConfig::tone_prompt`).

mod common;

use common::{field, joined, prompt_coverage, read_wav, write_wav, Engine, TestConfig};
use std::time::Duration;

const MARTIN: &str = "Diversion: <sip:+33450000001@carrier.example>;reason=unconditional";
const CARON: &str = "Diversion: <sip:+33140000002@carrier.example>;reason=unconditional";
const TILLEULS: &str = "Diversion: <sip:+33380000004@carrier.example>;reason=unconditional";
const DUPONT: &str = "Diversion: <sip:+33478000005@carrier.example>;reason=unconditional";

/// A tone of `seconds` at `freq` Hz written as `name.wav` in the
/// configuration's scratch directory; its samples and path.
fn tone_file(cfg: &mut TestConfig, name: &str, seconds: f64, freq: f64) -> (Vec<i16>, String) {
    // tone_prompt creates the scratch directory; reuse it for our file.
    cfg.tone_prompt("tilleuls", "hold", 0.5, 300.0);
    let dir = cfg.scratch.clone().expect("scratch");
    let samples: Vec<i16> = (0..(seconds * 8000.0) as usize)
        .map(|i| {
            let t = i as f64 / 8000.0;
            (8000.0 * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16
        })
        .collect();
    let path = dir.path().join(format!("{name}.wav"));
    write_wav(&path, &samples);
    (samples, path.to_string_lossy().to_string())
}

/// Gives practice `id` one `[[announcements]]` from `from` to `to`.
fn announce(cfg: &mut TestConfig, id: &str, from: &str, to: &str, file: &str, mode: &str) {
    let mut a = toml::Table::new();
    a.insert("from".into(), from.into());
    a.insert("to".into(), to.into());
    a.insert("file".into(), file.into());
    a.insert("mode".into(), mode.into());
    cfg.practice(id).insert(
        "announcements".into(),
        toml::Value::Array(vec![toml::Value::Table(a)]),
    );
}

/// Martin: an announcement active today (2000 to 2099); Caron: one that
/// ended long ago; Les Tilleuls: active today, instead of the queue. All
/// open, no triage menu, greetings of 1 s at 440 Hz.
#[test]
fn the_announcement_plays_after_the_greeting_only_during_its_range() {
    let mut cfg = TestConfig::demo();
    cfg.no_qualify();
    for id in ["martin", "caron", "tilleuls"] {
        cfg.always_open(id);
        cfg.practice(id).remove("triage");
        cfg.practice(id).remove("announcements");
    }
    let greeting = cfg.tone_prompt("martin", "greeting", 1.0, 440.0);
    cfg.tone_prompt("caron", "greeting", 1.0, 440.0);
    cfg.tone_prompt("tilleuls", "greeting", 1.0, 440.0);
    let closed = cfg.tone_prompt("tilleuls", "closed", 1.0, 520.0);
    let (notice, file) = tone_file(&mut cfg, "notice", 1.5, 660.0);
    announce(
        &mut cfg,
        "martin",
        "2000-01-01",
        "2099-12-31",
        &file,
        "after_greeting",
    );
    announce(
        &mut cfg,
        "caron",
        "2000-01-01",
        "2000-01-31",
        &file,
        "after_greeting",
    );
    announce(
        &mut cfg,
        "tilleuls",
        "2000-01-01",
        "2099-12-31",
        &file,
        "instead_of_queue",
    );
    let engine = Engine::start(&cfg, &[]);
    let limit = Duration::from_secs(30);
    let extra = ["-d", "5000"];

    // During the range: the greeting, then the announcement, then the queue.
    let (p, c) = common::patient(&engine, MARTIN, "carrier_call.xml", 0x55, &extra, limit);
    joined(c, "martin's caller");
    let heard = p.received();
    assert!(prompt_coverage(&heard, &greeting) >= 0.9, "greeting");
    let cov = prompt_coverage(&heard, &notice);
    assert!(
        cov >= 0.9,
        "announcement coverage {cov:.2}\n{}",
        engine.dump()
    );
    let ended = engine
        .wait_for("call.ended", Duration::from_secs(5), |v| {
            field(v, "practice") == "martin"
        })
        .expect("martin's call ended");
    assert_eq!(ended["offered"], true, "{ended}");

    // Outside it: the greeting, no announcement.
    let (p, c) = common::patient(&engine, CARON, "carrier_call.xml", 0x56, &extra, limit);
    joined(c, "caron's caller");
    let heard = p.received();
    assert!(prompt_coverage(&heard, &greeting) >= 0.9, "greeting");
    let cov = prompt_coverage(&heard, &notice);
    assert!(cov < 0.1, "announcement heard outside its range: {cov:.2}");

    // Instead of the queue: greeting, announcement, closed prompt, hang-up;
    // a closed-hours call, not offered.
    let (p, c) = common::patient(
        &engine,
        TILLEULS,
        "carrier_call.xml",
        0x57,
        &["-d", "8000"],
        limit,
    );
    let ended = engine
        .wait_for("call.ended", Duration::from_secs(10), |v| {
            field(v, "practice") == "tilleuls"
        })
        .unwrap_or_else(|| panic!("tilleuls' call did not end\n{}", engine.dump()));
    let _ = c.join();
    let heard = p.received();
    assert!(prompt_coverage(&heard, &notice) >= 0.9, "announcement");
    assert!(prompt_coverage(&heard, &closed) >= 0.9, "closed prompt");
    assert_eq!(field(&ended, "reason"), "closed", "{ended}");
    assert_eq!(ended["offered"], false, "{ended}");
}

/// Dr Dupont, closed, takes messages: the closed prompt, the voicemail
/// prompt, then the caller's message is recorded.
#[test]
fn a_closed_practice_with_voicemail_records_a_message_after_the_closed_prompt() {
    let mut cfg = TestConfig::demo();
    cfg.no_qualify();
    cfg.always_closed("kine-dupont");
    cfg.practice("kine-dupont").remove("announcements");
    cfg.practice("kine-dupont")
        .get_mut("hours")
        .and_then(|h| h.as_table_mut())
        .expect("[hours]")
        .insert("when_closed".into(), "voicemail".into());
    let closed = cfg.tone_prompt("kine-dupont", "closed", 1.0, 520.0);
    let beep = cfg.tone_prompt("kine-dupont", "voicemail", 0.5, 880.0);
    let engine = Engine::start(&cfg, &[]);
    // 1 s closed prompt, 0.5 s voicemail prompt, ~3 s of message.
    let (p, c) = common::patient(
        &engine,
        DUPONT,
        "carrier_call.xml",
        0x55,
        &["-d", "5000"],
        Duration::from_secs(30),
    );
    joined(c, "dupont's caller");
    let ended = engine
        .wait_event("call.ended", Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no call.ended\n{}", engine.dump()));
    assert_eq!(field(&ended, "reason"), "voicemail", "{ended}");
    assert_eq!(ended["offered"], false, "closed-hours call: {ended}");
    let heard = p.received();
    assert!(prompt_coverage(&heard, &closed) >= 0.9, "closed prompt");
    assert!(prompt_coverage(&heard, &beep) >= 0.9, "voicemail prompt");
    let rec = engine
        .wait_event("voicemail.recorded", Duration::from_secs(1))
        .unwrap_or_else(|| panic!("no voicemail.recorded\n{}", engine.dump()));
    let wav = read_wav(&engine.dir().join(field(&rec, "path")))
        .unwrap_or_else(|e| panic!("voicemail WAV: {e}"));
    let secs = wav.samples.len() as f64 / 8000.0;
    assert!((1.5..5.0).contains(&secs), "message of {secs:.2} s");
}
