//! Callbacks that keep the caller's place, with real peers: SIPp carriers
//! deliver the patients' calls (RTP endpoints of the test press the keys
//! and check the audio), a SIPp softphone is the telesecretary, a SIPp UAS
//! plays the carrier's outbound gateway where the patient is called back.

mod common;

use common::{
    count_fill, decode, field, free_udp_port, g711_close, http_call, http_get, joined, metric, num,
    prompt_coverage, prompt_frames, received_request, received_requests, register_agent, rms, ts,
    Engine, RtpPacket, RtpPeer, SippBg, SippRun, TestConfig,
};
use std::time::Duration;

const TILLEULS: &str = "Diversion: <sip:+33380000004@carrier.example>;reason=unconditional";

/// The demo with Les Tilleuls' greeting cut to a short tone (its callback
/// offer, digit 2, comes right after), qualify off, and the outbound
/// gateway on a free port of the test.
fn config() -> (TestConfig, u16) {
    let mut cfg = TestConfig::demo();
    cfg.tone_prompt("tilleuls", "greeting", 0.5, 440.0);
    cfg.no_qualify();
    let gw = cfg.outbound_gateway();
    (cfg, gw)
}

/// A patient of Les Tilleuls on the line (`scenario`, extra SIPp args).
fn patient(
    engine: &Engine,
    scenario: &'static str,
    fill: u8,
    extra: &[&str],
) -> (RtpPeer, std::thread::JoinHandle<SippRun>) {
    common::patient(
        engine,
        TILLEULS,
        scenario,
        fill,
        extra,
        Duration::from_secs(90),
    )
}

fn heard(rtp: &RtpPeer, prompt: &str, timeout: Duration) -> bool {
    let p = common::default_prompt(prompt);
    rtp.wait_until(timeout, |pk| prompt_coverage(pk, &p) > 0.8)
}

#[test]
fn caller_keeps_their_place_and_is_called_back_with_two_way_audio() {
    let (cfg, gw_port) = config();
    let engine = Engine::start(&cfg, &[]);
    // Patient A waits (no telesecretary yet), hears the offer, presses 2,
    // hears their number read back, confirms with 1: the engine says the
    // place is kept and hangs up.
    let (a_rtp, a) = patient(&engine, "carrier_wait_bye.xml", 0x11, &[]);
    assert!(
        heard(&a_rtp, "callback_offer", Duration::from_secs(10)),
        "no callback offer heard"
    );
    a_rtp.press('2');
    assert!(
        heard(&a_rtp, "callback_confirm_choice", Duration::from_secs(15)),
        "the number was not read back"
    );
    a_rtp.press('1');
    assert!(heard(
        &a_rtp,
        "callback_kept_place",
        Duration::from_secs(15)
    ));
    joined(a, "patient A");
    assert!(engine
        .wait_event("callback.requested", Duration::from_secs(5))
        .is_some());
    let ended = engine
        .wait_event("call.ended", Duration::from_secs(5))
        .expect("A's call ended");
    assert_eq!(field(&ended, "reason"), "callback-requested");
    // Patient B calls later and stays on the line.
    let (_b_rtp, b) = patient(&engine, "carrier_call.xml", 0x22, &["-d", "12000"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while engine.events("call.queued").len() < 2 {
        assert!(std::time::Instant::now() < deadline, "B not queued");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    // Alice comes in: A's callback is offered first (its place), she
    // answers, the engine calls the patient as Les Tilleuls.
    let (patient_rtp, gateway) = SippBg::uas_with_rtp(
        "agent_answer.xml",
        gw_port,
        0,
        0x55,
        &["-d", "500"],
        Duration::from_secs(60),
    );
    let alice_port = free_udp_port();
    register_agent(engine.sip, "alice", "alice-demo", alice_port);
    let (alice_rtp, alice) = SippBg::uas_with_rtp(
        "agent_answer_bye.xml",
        alice_port,
        0,
        0x2a,
        &["-d", "4000"],
        Duration::from_secs(60),
    );
    let alice_run = alice.finish_ok(Duration::from_secs(30), "alice");
    let invite = received_request(&alice_run, "INVITE").unwrap_or_default();
    assert!(
        invite.contains("From: \"Rappel - Maison de santé Les Tilleuls\" <sip:+33612345678@"),
        "the first call offered to Alice is not A's callback: {invite}"
    );
    assert!(
        invite.contains("X-Permanence-Callback: attempt=1"),
        "{invite}"
    );
    // Two-way audio between Alice and the patient, payload-checked.
    assert!(
        count_fill(&alice_rtp.received(), 0x55) > 50,
        "the patient's audio did not reach Alice"
    );
    assert!(
        count_fill(&patient_rtp.received(), 0x2a) > 50,
        "Alice's audio did not reach the patient"
    );
    let gw = gateway.finish_ok(Duration::from_secs(10), "gateway");
    let out = received_request(&gw, "INVITE").unwrap_or_default();
    assert!(
        out.starts_with(&format!("INVITE sip:+33612345678@127.0.0.1:{gw_port}")),
        "{out}"
    );
    assert!(
        out.contains("From: \"Maison de santé Les Tilleuls\" <sip:+33380000004@"),
        "{out}"
    );
    assert!(
        out.contains("P-Asserted-Identity: <sip:+33380000004@"),
        "{out}"
    );
    let done = engine
        .wait_event("callback.completed", Duration::from_secs(5))
        .expect("callback completed");
    assert_eq!(done["within_deadline"], serde_json::Value::Bool(true));
    joined(b, "patient B");
    // Counted and recorded.
    let m = http_get(&engine, "/metrics").1;
    let series = |s: &str| metric(&m, s);
    assert_eq!(
        series("permanence_callbacks_requested_total{practice=\"tilleuls\",origin=\"caller\"}"),
        Some(1.0)
    );
    assert_eq!(
        series(
            "permanence_callbacks_completed_total{practice=\"tilleuls\",timeliness=\"within_deadline\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        series("permanence_callbacks_pending{practice=\"tilleuls\"}"),
        Some(0.0)
    );
    let db = rusqlite::Connection::open(engine.data.join("permanence.db")).expect("db");
    let (status, attempts, number): (String, i64, String) = db
        .query_row(
            "SELECT status, attempts, number FROM callbacks WHERE origin = 'caller'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("callback row");
    assert_eq!(
        (status.as_str(), attempts, number.as_str()),
        ("completed", 1, "+33612345678")
    );
}

// ------------------------------------------------------------------ helpers

/// How many packets `rtp` has received: a mark for [`heard_since`].
fn mark(rtp: &RtpPeer) -> usize {
    rtp.received().len()
}

/// Whether `prompt` was heard among the packets received since `since`
/// (a [`mark`]).
fn heard_since(rtp: &RtpPeer, since: usize, prompt: &str, timeout: Duration) -> bool {
    let p = common::default_prompt(prompt);
    rtp.wait_until(timeout, |pk| {
        prompt_coverage(pk.get(since..).unwrap_or(&[]), &p) > 0.8
    })
}

/// Types `keys` on the caller's keypad (RFC 4733), one every 150 ms.
fn type_keys(rtp: &RtpPeer, keys: &str) {
    for k in keys.chars() {
        rtp.press(k);
        std::thread::sleep(Duration::from_millis(150));
    }
}

/// Index of the first packet carrying a frame of `prompt`, if any.
fn first_frame_of(packets: &[RtpPacket], prompt: &str) -> Option<usize> {
    prompt_frames(packets, &common::default_prompt(prompt))
        .iter()
        .position(Option::is_some)
}

/// Index of the last packet carrying a frame of `prompt`, if any.
fn last_frame_of(packets: &[RtpPacket], prompt: &str) -> Option<usize> {
    prompt_frames(packets, &common::default_prompt(prompt))
        .iter()
        .rposition(Option::is_some)
}

/// The digits spoken among `packets`, in order: a packet equal (up to
/// G.711 quantisation) to an audible frame of a digit prompt (`digit_0` to
/// `digit_9`) names that digit; a run of at least 3 such packets of the
/// same digit is one spoken digit (the numbers of these tests have no
/// doubled digit).
fn spoken_digits(packets: &[RtpPacket]) -> String {
    let digits: Vec<(char, Vec<Vec<i16>>)> = ('0'..='9')
        .map(|d| {
            let samples = common::default_prompt(&format!("digit_{d}"));
            let frames = samples
                .chunks_exact(160)
                .filter(|f| rms(f) >= 100.0)
                .map(<[i16]>::to_vec)
                .collect();
            (d, frames)
        })
        .collect();
    let mut runs: Vec<(char, usize)> = Vec::new();
    for p in packets {
        let pcm = decode(p);
        if pcm.len() != 160 {
            continue;
        }
        let hit = digits.iter().find(|(_, frames)| {
            frames
                .iter()
                .any(|f| pcm.iter().zip(f).all(|(&g, &w)| g711_close(g, w)))
        });
        if let Some((d, _)) = hit {
            match runs.last_mut() {
                Some((last, n)) if last == d => *n += 1,
                _ => runs.push((*d, 1)),
            }
        }
    }
    runs.into_iter()
        .filter(|(_, n)| *n >= 3)
        .map(|(d, _)| d)
        .collect()
}

/// Patient of Les Tilleuls presenting +33612345678 asks to be called back
/// on that number: hears the offer, presses 2, hears it read back,
/// confirms with 1, hears that their place is kept; the engine hangs up.
fn ask_callback_presented(engine: &Engine, fill: u8) {
    let (rtp, call) = patient(engine, "carrier_wait_bye.xml", fill, &[]);
    assert!(
        heard(&rtp, "callback_offer", Duration::from_secs(10)),
        "no callback offer heard"
    );
    rtp.press('2');
    assert!(
        heard(&rtp, "callback_confirm_choice", Duration::from_secs(15)),
        "the number was not read back"
    );
    rtp.press('1');
    assert!(
        heard(&rtp, "callback_kept_place", Duration::from_secs(15)),
        "no kept-place confirmation"
    );
    joined(call, "patient (presented number)");
}

/// A patient of Les Tilleuls who withholds their number asks to be called
/// back on `typed` (national form): hears the offer, presses 2, is asked
/// for the number, types it and `#`, hears it read back, confirms with 1
/// and hears that their place is kept; the engine hangs up. Returns the
/// digits heard read back between `callback_confirm_prefix` and
/// `callback_confirm_choice`.
fn ask_callback_typed(engine: &Engine, fill: u8, typed: &str) -> String {
    let (rtp, call) = patient(engine, "carrier_anonymous.xml", fill, &[]);
    assert!(
        heard(&rtp, "callback_offer", Duration::from_secs(10)),
        "no callback offer heard"
    );
    let m = mark(&rtp);
    rtp.press('2');
    assert!(
        heard_since(&rtp, m, "callback_enter_number", Duration::from_secs(15)),
        "a caller without a presented number is not asked for one"
    );
    let m = mark(&rtp);
    type_keys(&rtp, &format!("{typed}#"));
    assert!(
        heard_since(&rtp, m, "callback_confirm_choice", Duration::from_secs(20)),
        "the typed number was not read back"
    );
    let since = rtp.received()[m..].to_vec();
    let prefix_end = last_frame_of(&since, "callback_confirm_prefix")
        .expect("callback_confirm_prefix heard before the number");
    let choice_start = first_frame_of(&since, "callback_confirm_choice").unwrap_or(since.len());
    assert!(prefix_end < choice_start, "prefix after the choice");
    let read_back = spoken_digits(&since[prefix_end + 1..choice_start]);
    let m = mark(&rtp);
    rtp.press('1');
    assert!(
        heard_since(&rtp, m, "callback_kept_place", Duration::from_secs(15)),
        "no kept-place confirmation"
    );
    joined(call, "patient (typed number)");
    read_back
}

/// A row of the `callbacks` table: (status, attempts, number, last_result).
type CallbackRow = (String, i64, String, Option<String>);

/// The callback rows of the records, in place order.
fn callback_rows(engine: &Engine) -> Vec<CallbackRow> {
    let db = rusqlite::Connection::open(engine.data.join("permanence.db")).expect("db");
    let mut st = db
        .prepare("SELECT status, attempts, number, last_result FROM callbacks ORDER BY joined_at, requested_at")
        .expect("prepare");
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("query")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows")
}

/// Waits (bounded) until the callback rows satisfy `pred`; returns them
/// either way, for the assertion's message.
fn wait_rows(
    engine: &Engine,
    timeout: Duration,
    pred: impl Fn(&[CallbackRow]) -> bool,
) -> (bool, Vec<CallbackRow>) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let rows = callback_rows(engine);
        if pred(&rows) {
            return (true, rows);
        }
        if std::time::Instant::now() > deadline {
            return (false, rows);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (bounded) until a series of `/metrics` reads `want`; the last
/// value read.
fn wait_metric(engine: &Engine, series: &str, want: f64, timeout: Duration) -> Option<f64> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let v = metric(&http_get(engine, "/metrics").1, series);
        if v == Some(want) || std::time::Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

// -------------------------------------------------------------------- tests

#[test]
fn retries_after_no_answer_then_reaches_the_patient() {
    let (mut cfg, gw_port) = config();
    let cb = common::sub_table(cfg.practice("tilleuls"), "callback");
    cb.insert("max_attempts".into(), 2.into());
    cb.insert("retry_minutes".into(), 1.into());
    let engine = Engine::start(&cfg, &[]);
    ask_callback_presented(&engine, 0x11);
    engine
        .wait_event("callback.requested", Duration::from_secs(5))
        .expect("callback requested");

    // First try: Alice answers, the gateway says 480 at once; the engine
    // hangs Alice up (BYE: agent_answer.xml fails without it).
    let gateway = SippBg::uas(
        "gateway_unavailable.xml",
        gw_port,
        &[],
        &[],
        Duration::from_secs(60),
    );
    let alice_port = free_udp_port();
    register_agent(engine.sip, "alice", "alice-demo", alice_port);
    let (_alice_rtp, alice) = SippBg::uas_with_rtp(
        "agent_answer.xml",
        alice_port,
        0,
        0x2a,
        &["-d", "300"],
        Duration::from_secs(60),
    );
    let first = alice.finish(Duration::from_secs(30));
    assert!(
        first.success,
        "alice (first try): {}\n{}\n{}",
        first.errors,
        first.messages,
        engine.dump()
    );
    let invite = received_request(&first, "INVITE").unwrap_or_default();
    assert!(
        invite.contains("From: \"Rappel - Maison de santé Les Tilleuls\" <sip:+33612345678@"),
        "{invite}"
    );
    assert!(
        invite.contains("X-Permanence-Callback: attempt=1;"),
        "{invite}"
    );
    let gw = gateway.finish_ok(Duration::from_secs(10), "gateway (480)");
    let out = received_request(&gw, "INVITE").unwrap_or_default();
    assert!(
        out.starts_with(&format!("INVITE sip:+33612345678@127.0.0.1:{gw_port}")),
        "{out}"
    );
    let attempt = engine
        .wait_event("callback.attempt", Duration::from_secs(5))
        .expect("first try logged");
    assert_eq!(field(&attempt, "result"), "no_answer", "{attempt}");
    assert_eq!(num(&attempt, "attempt"), Some(1), "{attempt}");
    assert_eq!(field(&attempt, "agent"), "alice", "{attempt}");
    // Alice is free at once: her call ends straight to available (no
    // wrap-up, 30 s in the demo), within moments of the try's end.
    let freed = engine
        .wait_for("agent.state", Duration::from_secs(5), |v| {
            field(v, "agent") == "alice" && field(v, "reason") == "CallEnded"
        })
        .expect("alice's callback try ended at the dispatcher");
    assert_eq!(field(&freed, "to"), "Available", "{freed}");
    assert!(
        (ts(&freed) - ts(&attempt)).abs() < 2.0,
        "alice freed {:.1} s from the try's end",
        ts(&freed) - ts(&attempt)
    );
    assert!(engine
        .events("callback.completed")
        .into_iter()
        .chain(engine.events("callback.failed"))
        .next()
        .is_none());
    let m = http_get(&engine, "/metrics").1;
    assert_eq!(
        metric(
            &m,
            "permanence_callback_attempts_total{practice=\"tilleuls\",result=\"no_answer\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&m, "permanence_callbacks_pending{practice=\"tilleuls\"}"),
        Some(1.0)
    );
    let (ok, rows) = wait_rows(&engine, Duration::from_secs(5), |r| {
        r.len() == 1 && r[0].1 == 1 && r[0].3.as_deref() == Some("no-answer")
    });
    assert!(ok, "after the first try: {rows:?}");
    assert_eq!(rows[0].0, "pending", "{rows:?}");

    // The request waits its spacing (1 min), then is offered again; the
    // gateway now answers.
    let (patient_rtp, gateway) = SippBg::uas_with_rtp(
        "agent_answer.xml",
        gw_port,
        0,
        0x55,
        &["-d", "200"],
        Duration::from_secs(120),
    );
    let (alice_rtp, alice) = SippBg::uas_with_rtp(
        "agent_answer_bye.xml",
        alice_port,
        0,
        0x2b,
        &["-d", "3000"],
        Duration::from_secs(120),
    );
    let offers = engine
        .wait_n("acd.offered", 2, Duration::from_secs(75), |v| {
            field(v, "agent") == "alice"
        })
        .expect("the request was not offered again");
    assert_eq!(
        offers.len(),
        2,
        "alice was offered something else: {offers:?}"
    );
    let spacing = ts(&offers[1]) - ts(&attempt);
    assert!(
        (59.0..66.0).contains(&spacing),
        "offered again {spacing:.1} s after the first try (retry_minutes = 1)"
    );
    let second = alice.finish_ok(Duration::from_secs(30), "alice (second try)");
    let invite = received_request(&second, "INVITE").unwrap_or_default();
    assert!(
        invite.contains("From: \"Rappel - Maison de santé Les Tilleuls\" <sip:+33612345678@"),
        "{invite}"
    );
    assert!(
        invite.contains("X-Permanence-Callback: attempt=2;"),
        "{invite}"
    );
    assert!(
        count_fill(&alice_rtp.received(), 0x55) > 50,
        "the patient's audio did not reach Alice"
    );
    assert!(
        count_fill(&patient_rtp.received(), 0x2b) > 50,
        "Alice's audio did not reach the patient"
    );
    let gw = gateway.finish_ok(Duration::from_secs(10), "gateway (answer)");
    let out = received_request(&gw, "INVITE").unwrap_or_default();
    assert!(
        out.starts_with(&format!("INVITE sip:+33612345678@127.0.0.1:{gw_port}")),
        "{out}"
    );
    let done = engine
        .wait_event("callback.completed", Duration::from_secs(5))
        .expect("callback completed");
    assert_eq!(done["within_deadline"], serde_json::Value::Bool(true));
    let attempts = engine.events("callback.attempt");
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(field(&attempts[1], "result"), "answered");
    assert_eq!(num(&attempts[1], "attempt"), Some(2));
    // No wrap-up for Alice between the two tries.
    let wrapped_early = engine.events("agent.state").into_iter().find(|v| {
        field(v, "agent") == "alice" && field(v, "to") == "WrapUp" && ts(v) < ts(&offers[1])
    });
    assert!(wrapped_early.is_none(), "{wrapped_early:?}");
    let (ok, rows) = wait_rows(&engine, Duration::from_secs(5), |r| {
        r.len() == 1 && r[0].0 == "completed"
    });
    assert!(ok, "after the second try: {rows:?}");
    assert_eq!(rows[0].1, 2, "{rows:?}");
    assert_eq!(rows[0].2, "+33612345678", "{rows:?}");
    let m = http_get(&engine, "/metrics").1;
    let series = |s: &str| metric(&m, s);
    assert_eq!(
        series("permanence_callback_attempts_total{practice=\"tilleuls\",result=\"no_answer\"}"),
        Some(1.0)
    );
    assert_eq!(
        series("permanence_callback_attempts_total{practice=\"tilleuls\",result=\"answered\"}"),
        Some(1.0)
    );
    assert_eq!(
        series("permanence_callbacks_pending{practice=\"tilleuls\"}"),
        Some(0.0)
    );
}

#[test]
fn withheld_number_is_typed_and_confirmed() {
    let (cfg, gw_port) = config();
    let engine = Engine::start(&cfg, &[]);
    let read_back = ask_callback_typed(&engine, 0x12, "0612345679");
    assert_eq!(read_back, "0612345679", "the number read back");
    let asked = engine
        .wait_event("callback.asked", Duration::from_secs(5))
        .expect("callback asked");
    assert_ne!(field(&asked, "number"), "", "{asked}");
    assert!(
        !field(&asked, "number").contains("12345679"),
        "the number is not masked in the log: {asked}"
    );
    engine
        .wait_event("callback.requested", Duration::from_secs(5))
        .expect("callback requested");

    let (patient_rtp, gateway) = SippBg::uas_with_rtp(
        "agent_answer.xml",
        gw_port,
        0,
        0x56,
        &["-d", "200"],
        Duration::from_secs(60),
    );
    let alice_port = free_udp_port();
    register_agent(engine.sip, "alice", "alice-demo", alice_port);
    let (alice_rtp, alice) = SippBg::uas_with_rtp(
        "agent_answer_bye.xml",
        alice_port,
        0,
        0x2a,
        &["-d", "2000"],
        Duration::from_secs(60),
    );
    let run = alice.finish_ok(Duration::from_secs(30), "alice");
    let invite = received_request(&run, "INVITE").unwrap_or_default();
    assert!(
        invite.contains("From: \"Rappel - Maison de santé Les Tilleuls\" <sip:+33612345679@"),
        "{invite}"
    );
    let gw = gateway.finish_ok(Duration::from_secs(10), "gateway");
    let out = received_request(&gw, "INVITE").unwrap_or_default();
    assert!(
        out.starts_with(&format!("INVITE sip:+33612345679@127.0.0.1:{gw_port}")),
        "{out}"
    );
    assert!(
        out.contains("From: \"Maison de santé Les Tilleuls\" <sip:+33380000004@"),
        "{out}"
    );
    assert!(
        count_fill(&alice_rtp.received(), 0x56) > 30,
        "the patient's audio did not reach Alice"
    );
    assert!(
        count_fill(&patient_rtp.received(), 0x2a) > 30,
        "Alice's audio did not reach the patient"
    );
    engine
        .wait_event("callback.completed", Duration::from_secs(5))
        .expect("callback completed");
    let (ok, rows) = wait_rows(&engine, Duration::from_secs(5), |r| {
        r.len() == 1 && r[0].0 == "completed"
    });
    assert!(ok, "{rows:?}");
    assert_eq!(rows[0].2, "+33612345679", "{rows:?}");
}

/// An anonymous caller of Les Tilleuls opens the callback menu and types
/// two numbers no callback may go to: a premium-rate one, then "12". They
/// hear each refused, are asked again after the first, and are back to
/// waiting after the second (the offer and the hold music again), never
/// read back anything, and no request is made. Returns the caller.
fn two_invalid_numbers(engine: &Engine) -> (RtpPeer, std::thread::JoinHandle<SippRun>) {
    let (rtp, call) = patient(engine, "carrier_anonymous.xml", 0x33, &[]);
    assert!(
        heard(&rtp, "callback_offer", Duration::from_secs(10)),
        "no callback offer heard"
    );
    let m = mark(&rtp);
    rtp.press('2');
    assert!(
        heard_since(&rtp, m, "callback_enter_number", Duration::from_secs(15)),
        "not asked for a number"
    );
    // A premium-rate number: no callback goes there.
    let m = mark(&rtp);
    type_keys(&rtp, "0899123456#");
    assert!(
        heard_since(&rtp, m, "callback_invalid_number", Duration::from_secs(10)),
        "a premium number was not refused"
    );
    assert!(
        heard_since(&rtp, m, "callback_enter_number", Duration::from_secs(15)),
        "not asked for a number again"
    );
    assert!(
        first_frame_of(&rtp.received()[m..], "callback_confirm_prefix").is_none(),
        "the premium number was read back for confirmation"
    );
    // Not a number at all: back to waiting, with the offer and the hold
    // music again.
    let m = mark(&rtp);
    type_keys(&rtp, "12#");
    assert!(
        heard_since(&rtp, m, "callback_invalid_number", Duration::from_secs(10)),
        "\"12\" was not refused"
    );
    assert!(
        heard_since(&rtp, m, "callback_offer", Duration::from_secs(10)),
        "the offer was not played again"
    );
    let hold = common::default_prompt("hold_music");
    assert!(
        rtp.wait_until(Duration::from_secs(10), |pk| {
            prompt_frames(&pk[m..], &hold).iter().flatten().count() >= 50
        }),
        "no hold music after the second invalid number"
    );
    assert!(
        first_frame_of(&rtp.received()[m..], "callback_confirm_prefix").is_none(),
        "\"12\" was read back for confirmation"
    );
    assert!(engine.events("callback.asked").is_empty());
    assert!(engine.events("callback.requested").is_empty());
    assert!(engine.events("call.ended").is_empty(), "{}", engine.dump());
    (rtp, call)
}

/// The calls in progress, from the admin API.
fn live_calls(engine: &Engine) -> Vec<serde_json::Value> {
    let (code, body) = http_call(
        engine,
        "GET",
        "/api/calls",
        "demo-admin-token-change-me",
        None,
    );
    assert_eq!(code, 200, "{body}");
    let calls: serde_json::Value = serde_json::from_str(&body).expect("json");
    calls.as_array().expect("array").clone()
}

#[test]
fn invalid_numbers_keep_the_caller_in_the_queue() {
    let (cfg, _gw_port) = config();
    let engine = Engine::start(&cfg, &[]);
    let (rtp, call) = two_invalid_numbers(&engine);
    // Still waiting in the dispatcher's queue, first in line.
    let calls = live_calls(&engine);
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["practice"], "tilleuls", "{calls:?}");
    assert_eq!(calls[0]["position"], 1, "not in the queue: {calls:?}");

    // Alice comes in: she gets the call itself (not a callback) and talks
    // with the caller.
    let alice_port = free_udp_port();
    register_agent(engine.sip, "alice", "alice-demo", alice_port);
    let (alice_rtp, alice) = SippBg::uas_with_rtp(
        "agent_answer_bye.xml",
        alice_port,
        0,
        0x2a,
        &["-d", "3000"],
        Duration::from_secs(60),
    );
    let run = alice.finish_ok(Duration::from_secs(30), "alice");
    let invite = received_request(&run, "INVITE").unwrap_or_default();
    assert!(
        invite.contains("From: \"Maison de santé Les Tilleuls - "),
        "{invite}"
    );
    assert!(invite.contains("<sip:anonymous@"), "{invite}");
    assert!(!invite.contains("Rappel"), "{invite}");
    assert!(!invite.contains("X-Permanence-Callback"), "{invite}");
    assert!(
        count_fill(&alice_rtp.received(), 0x33) > 50,
        "the caller's audio did not reach Alice"
    );
    assert!(
        count_fill(&rtp.received(), 0x2a) > 50,
        "Alice's audio did not reach the caller"
    );
    joined(call, "caller");
    let ended = engine
        .wait_event("call.ended", Duration::from_secs(5))
        .expect("call ended");
    assert_eq!(field(&ended, "reason"), "agent-hangup", "{ended}");
    assert!(engine.events("callback.requested").is_empty());
    assert_eq!(
        metric(
            &http_get(&engine, "/metrics").1,
            "permanence_callbacks_requested_total{practice=\"tilleuls\",origin=\"caller\"}"
        )
        .unwrap_or(0.0),
        0.0
    );
}

#[test]
fn live_view_shows_a_caller_back_from_the_callback_menu_as_queued() {
    let (cfg, _gw_port) = config();
    let engine = Engine::start(&cfg, &[]);
    let (_rtp, call) = two_invalid_numbers(&engine);
    let calls = live_calls(&engine);
    // Alice takes the call and hangs up, which ends the caller's SIPp.
    let alice_port = free_udp_port();
    register_agent(engine.sip, "alice", "alice-demo", alice_port);
    let (_alice_rtp, alice) = SippBg::uas_with_rtp(
        "agent_answer_bye.xml",
        alice_port,
        0,
        0x2a,
        &["-d", "500"],
        Duration::from_secs(60),
    );
    alice.finish_ok(Duration::from_secs(30), "alice");
    joined(call, "caller");
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["position"], 1, "not in the queue: {calls:?}");
    assert_eq!(
        calls[0]["phase"], "queued",
        "a caller waiting with the hold music: {calls:?}"
    );
}

#[test]
fn pending_callbacks_survive_a_crash_and_are_served_in_order() {
    let (mut cfg, gw_port) = config();
    // Alice takes the second callback right after the first.
    cfg.routing("tilleuls")
        .insert("wrap_up_seconds".into(), 0.into());
    let engine = Engine::start(&cfg, &[]);
    // A (presented number) then B (withheld, types another number).
    ask_callback_presented(&engine, 0x11);
    engine
        .wait_event("callback.requested", Duration::from_secs(5))
        .expect("A's request");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        ask_callback_typed(&engine, 0x22, "0612345679"),
        "0612345679"
    );
    engine
        .wait_n("callback.requested", 2, Duration::from_secs(5), |_| true)
        .expect("B's request");
    let (ok, rows) = wait_rows(&engine, Duration::from_secs(5), |r| {
        r.len() == 2 && r.iter().all(|x| x.0 == "pending")
    });
    assert!(ok, "before the crash: {rows:?}");

    // Crash; the new process queues both again at their place.
    let engine = engine.crash_and_restart(&cfg, &[]);
    let restored = engine
        .wait_event("callback.restored", Duration::from_secs(5))
        .expect("callbacks restored");
    assert_eq!(num(&restored, "count"), Some(2), "{restored}");
    assert_eq!(
        wait_metric(
            &engine,
            "permanence_callbacks_pending{practice=\"tilleuls\"}",
            2.0,
            Duration::from_secs(7)
        ),
        Some(2.0)
    );

    let (patient_rtp, gateway) = SippBg::uas_with_rtp(
        "agent_answer.xml",
        gw_port,
        0,
        0x55,
        &["-m", "2", "-d", "200"],
        Duration::from_secs(60),
    );
    let alice_port = free_udp_port();
    register_agent(engine.sip, "alice", "alice-demo", alice_port);
    let (alice_rtp, alice) = SippBg::uas_with_rtp(
        "agent_answer_bye.xml",
        alice_port,
        0,
        0x2a,
        &["-m", "2", "-d", "1500"],
        Duration::from_secs(60),
    );
    let run = alice.finish(Duration::from_secs(40));
    assert!(
        run.success,
        "alice: {}\n{}\n{}",
        run.errors,
        run.messages,
        engine.dump()
    );
    let to_alice = received_requests(&run, "INVITE");
    assert_eq!(to_alice.len(), 2, "{to_alice:?}");
    assert!(
        to_alice[0].contains("<sip:+33612345678@"),
        "{}",
        to_alice[0]
    );
    assert!(
        to_alice[1].contains("<sip:+33612345679@"),
        "{}",
        to_alice[1]
    );
    let gw = gateway.finish_ok(Duration::from_secs(10), "gateway");
    let out = received_requests(&gw, "INVITE");
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(
        out[0].starts_with(&format!("INVITE sip:+33612345678@127.0.0.1:{gw_port}")),
        "A first: {}",
        out[0]
    );
    assert!(
        out[1].starts_with(&format!("INVITE sip:+33612345679@127.0.0.1:{gw_port}")),
        "then B: {}",
        out[1]
    );
    assert!(
        count_fill(&alice_rtp.received(), 0x55) > 50,
        "the patients' audio did not reach Alice"
    );
    assert!(
        count_fill(&patient_rtp.received(), 0x2a) > 50,
        "Alice's audio did not reach the patients"
    );
    engine
        .wait_n("callback.completed", 2, Duration::from_secs(5), |_| true)
        .expect("both callbacks completed");
    let (ok, rows) = wait_rows(&engine, Duration::from_secs(5), |r| {
        r.len() == 2 && r.iter().all(|x| x.0 == "completed")
    });
    assert!(ok, "after the restart: {rows:?}");
    assert_eq!(rows[0].2, "+33612345678", "{rows:?}");
    assert_eq!(rows[1].2, "+33612345679", "{rows:?}");
    assert_eq!(
        wait_metric(
            &engine,
            "permanence_callbacks_pending{practice=\"tilleuls\"}",
            0.0,
            Duration::from_secs(7)
        ),
        Some(0.0)
    );
}
