//! English callers, end to end (issue 12, part 4): Dr Caron's practice
//! offers English (`languages = ["fr", "en"]`). A caller who presses 9
//! after « For English, press 9 » hears the greeting and the menu in
//! English (the built-in English prompts, checked against the RTP the
//! caller receives) and is offered only to an English-speaking
//! telesecretary: bob or carol, never alice (French only). A caller who
//! does not press 9 is served as before, in French.

mod common;

use common::{
    field, free_udp_port, joined, num, prompt_coverage, read_wav, register_agent, Engine, RtpPeer,
    SippBg, TestConfig,
};
use std::path::Path;
use std::time::Duration;

const CARON: &str = "Diversion: <sip:+33140000002@carrier.example>;reason=unconditional";

/// The demo with Dr Caron open at all hours, on the built-in prompts (its
/// own recordings removed, so that both built-in sets are heard), one
/// routing step to the shared pool at once (alice would be eligible but
/// for the language), no wrap-up, no qualify probes.
fn config() -> TestConfig {
    let mut cfg = TestConfig::demo();
    cfg.always_open("caron");
    cfg.no_qualify();
    cfg.practice("caron").remove("prompts");
    let step: toml::Table =
        toml::from_str("after_seconds = 0\npool = \"shared-generaliste\"").expect("step");
    *cfg.steps("caron") = vec![toml::Value::Table(step)];
    let routing = cfg.routing("caron");
    routing.remove("dedicated");
    routing.insert("wrap_up_seconds".into(), 0.into());
    cfg
}

/// A built-in prompt of `lang` (`fr`, `en`), as the test reads it from
/// the committed WAV.
fn builtin(lang: &str, name: &str) -> Vec<i16> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../crates/media/prompts")
        .join(lang)
        .join(format!("{name}.wav"));
    read_wav(&path).expect("built-in prompt").samples
}

/// Waits (`secs` at most) until the caller has heard most of `prompt`.
fn hears(peer: &RtpPeer, prompt: &[i16], secs: u64) -> bool {
    peer.wait_until(Duration::from_secs(secs), |p| {
        prompt_coverage(p, prompt) > 0.8
    })
}

fn patient(engine: &Engine) -> (RtpPeer, std::thread::JoinHandle<common::SippRun>) {
    common::patient(
        engine,
        CARON,
        "carrier_wait_bye.xml",
        0x11,
        &[],
        Duration::from_secs(60),
    )
}

/// A telesecretary's softphone that answers one call and hangs up 0.5 s
/// later.
fn softphone(engine: &Engine, user: &str) -> SippBg {
    let port = free_udp_port();
    register_agent(engine.sip, user, &format!("{user}-demo"), port);
    let (_rtp, uas) = SippBg::uas_with_rtp(
        "agent_answer_bye.xml",
        port,
        0,
        0x2a,
        &["-m", "1", "-d", "500"],
        Duration::from_secs(60),
    );
    uas
}

#[test]
fn english_caller_presses_9_hears_english_and_reaches_an_english_speaker() {
    let engine = Engine::start(&config(), &[]);
    // Alice (French only) is registered and available all along.
    register_agent(engine.sip, "alice", "alice-demo", free_udp_port());

    let (p, call) = patient(&engine);
    assert!(
        hears(&p, &builtin("fr", "greeting"), 20),
        "French greeting\n{}",
        engine.dump()
    );
    assert!(
        hears(&p, &builtin("en", "english_offer"), 10),
        "« For English, press 9 »"
    );
    p.press('9');
    assert!(
        hears(&p, &builtin("en", "greeting"), 20),
        "English greeting\n{}",
        engine.dump()
    );
    assert!(hears(&p, &builtin("en", "menu"), 15), "English menu");
    assert!(
        prompt_coverage(&p.received(), &builtin("fr", "menu")) < 0.2,
        "the French menu was cut by 9"
    );
    p.press('2');
    let queued = engine
        .wait_for("call.queued", Duration::from_secs(10), |_| true)
        .unwrap_or_else(|| panic!("queued\n{}", engine.dump()));
    assert_eq!(field(&queued, "language"), "en");
    assert_eq!(field(&queued, "triage"), "2");
    assert!(engine.events("call.language").len() == 1);

    // Alice is available, but does not speak English: nobody is offered
    // the call.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        engine.events("acd.offered").is_empty(),
        "{:?}",
        engine.events("acd.offered")
    );

    let bob = softphone(&engine, "bob");
    let carol = softphone(&engine, "carol");
    let offered = engine
        .wait_for("acd.offered", Duration::from_secs(10), |_| true)
        .unwrap_or_else(|| panic!("offered\n{}", engine.dump()));
    let agent = field(&offered, "agent");
    assert!(agent == "bob" || agent == "carol", "offered to {agent}");
    let ended = engine
        .wait_for("call.ended", Duration::from_secs(20), |_| true)
        .unwrap_or_else(|| panic!("ended\n{}", engine.dump()));
    assert_eq!(field(&ended, "reason"), "agent-hangup");
    joined(call, "English caller");
    assert!(engine
        .events("acd.offered")
        .iter()
        .all(|o| field(o, "agent") != "alice"));
    drop((bob, carol));
}

#[test]
fn caller_who_does_not_press_9_is_served_in_french() {
    let engine = Engine::start(&config(), &[]);
    let alice = softphone(&engine, "alice");
    let (p, call) = patient(&engine);
    assert!(hears(&p, &builtin("fr", "greeting"), 20), "French greeting");
    assert!(hears(&p, &builtin("en", "english_offer"), 10), "the offer");
    assert!(hears(&p, &builtin("fr", "menu"), 15), "French menu");
    p.press('1');
    let queued = engine
        .wait_for("call.queued", Duration::from_secs(10), |_| true)
        .unwrap_or_else(|| panic!("queued\n{}", engine.dump()));
    assert_eq!(field(&queued, "language"), "fr");
    assert!(engine.events("call.language").is_empty());
    // No language requirement: alice (French only) may take it.
    let offered = engine
        .wait_for("acd.offered", Duration::from_secs(10), |_| true)
        .unwrap_or_else(|| panic!("offered\n{}", engine.dump()));
    assert_eq!(field(&offered, "agent"), "alice");
    assert!(num(&offered, "call").is_some());
    joined(call, "French caller");
    assert!(prompt_coverage(&p.received(), &builtin("en", "greeting")) < 0.2);
    drop(alice);
}
