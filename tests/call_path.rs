//! The end-to-end call path with real peers: SIPp as the carrier, SIPp
//! softphones as telesecretaries (registered from the port they answer
//! on), and RTP endpoints of the test that send and check audio payloads.

mod common;

use common::{
    carrier_vars, count_fill, decode, default_prompt, field, float, free_udp_port, g711_close,
    joined, num, prompt_coverage, prompt_frames, read_wav, received_request, received_requests,
    register_agent, rms, sip_messages_dir, ts, unregister_agent, Engine, RtpPacket, RtpPeer,
    SippBg, SippRun, TestConfig,
};
use std::time::Duration;

/// The demo, with Dr Martin open at all hours and no triage menu (tests
/// that need triage keep it), qualify probes off (SIPp softphones do not
/// answer OPTIONS between calls).
fn config() -> TestConfig {
    let mut cfg = TestConfig::demo();
    cfg.always_open("martin");
    cfg.always_open("caron");
    cfg.practice("martin").remove("triage");
    cfg.no_qualify();
    cfg
}

const MARTIN: &str = "Diversion: <sip:+33450000001@carrier.example>;reason=unconditional";

#[test]
fn martin_call_reaches_alice_with_two_way_audio() {
    let engine = Engine::start(&config(), &[]);
    // Alice's softphone: registered, answers after 300 ms, PCMU.
    let alice_port = free_udp_port();
    register_agent(engine.sip, "alice", "alice-demo", alice_port);
    let (alice_rtp, alice) = SippBg::uas_with_rtp(
        "agent_answer.xml",
        alice_port,
        0,
        0x2a,
        &["-d", "300"],
        Duration::from_secs(40),
    );
    // The patient: audio payload 0x55, on the line for 9 s.
    let (caller_rtp, carrier) = common::patient(
        &engine,
        MARTIN,
        "carrier_call.xml",
        0x55,
        &["-d", "9000"],
        Duration::from_secs(40),
    );

    // The call is offered to Alice, the practice's dedicated secretary.
    let offered = engine
        .wait_event("acd.offered", Duration::from_secs(10))
        .expect("offered");
    assert_eq!(field(&offered, "agent"), "alice");
    assert_eq!(field(&offered, "practice"), "martin");
    assert!(engine
        .wait_event("acd.answered", Duration::from_secs(5))
        .is_some());
    // Caller audio reaches Alice unchanged (same codec: same bytes)...
    assert!(
        alice_rtp.wait_until(Duration::from_secs(5), |p| count_fill(p, 0x55) > 20),
        "caller audio did not reach the agent"
    );
    // ... and Alice's reaches the caller.
    assert!(
        caller_rtp.wait_until(Duration::from_secs(5), |p| count_fill(p, 0x2a) > 20),
        "agent audio did not reach the caller"
    );
    // The caller heard the greeting and hold audio before: not silence.
    let before: Vec<_> = caller_rtp
        .received()
        .into_iter()
        .take_while(|p| p.payload != vec![0x2au8; 160])
        .collect();
    let cap = common::RtpCapture { packets: before };
    assert!(cap.rms() > 200.0, "greeting was silent");

    joined(carrier, "carrier");
    let agent_run = alice.finish_ok(Duration::from_secs(10), "agent");
    // What Alice's phone showed: the practice, the caller, the headers.
    let invite = received_request(&agent_run, "INVITE").unwrap_or_default();
    assert!(
        invite.contains("From: \"Cabinet du Dr Martin - Médecine générale\" <sip:+33612345678@"),
        "{invite}"
    );
    assert!(invite.contains("X-Permanence-Practice: martin"), "{invite}");
    assert!(invite.contains("X-Permanence-Wait: "), "{invite}");
    assert!(invite.contains("Call-Info: <https://"), "{invite}");

    let ended = engine
        .wait_event("call.ended", Duration::from_secs(5))
        .expect("ended");
    assert_eq!(field(&ended, "reason"), "caller-hangup");
    assert_eq!(field(&ended, "agent"), "alice");
    assert!(engine
        .wait_event("acd.completed", Duration::from_secs(2))
        .is_some());
}

// ---------------------------------------------------------------------------
// Helpers of the scenarios below.

/// [`config`] with a 1 s tone as Dr Martin's greeting, so that calls reach
/// the queue quickly (the real greeting is covered by the first test).
fn quick_config() -> TestConfig {
    let mut cfg = config();
    cfg.tone_prompt("martin", "greeting", 1.0, 440.0);
    cfg
}

/// Sets `after_seconds` of Dr Martin's routing step `i` (0: dedicated
/// Alice, 1: pool shared-generaliste with generaliste >= 3, 2: French).
fn step_after(cfg: &mut TestConfig, i: usize, secs: i64) {
    cfg.steps("martin")[i]
        .as_table_mut()
        .expect("step")
        .insert("after_seconds".into(), secs.into());
}

/// A telesecretary's softphone: registered from `port`, a SIPp UAS running
/// `scenario` there, and an RTP endpoint sending `fill` bytes with
/// payload type `pt`.
struct Phone {
    port: u16,
    rtp: RtpPeer,
    uas: SippBg,
}

fn phone(engine: &Engine, user: &str, scenario: &str, pt: u8, fill: u8, extra: &[&str]) -> Phone {
    let port = free_udp_port();
    register_agent(engine.sip, user, &format!("{user}-demo"), port);
    let (rtp, uas) = SippBg::uas_with_rtp(scenario, port, pt, fill, extra, Duration::from_secs(60));
    Phone { port, rtp, uas }
}

/// A patient calling Dr Martin's forwarded line: an RTP endpoint sending
/// PCMU `fill` bytes and a SIPp carrier running `scenario` (extra args,
/// e.g. `-d` for carrier_call.xml) on a thread.
fn patient(
    engine: &Engine,
    scenario: &'static str,
    fill: u8,
    extra: &[&str],
) -> (RtpPeer, std::thread::JoinHandle<SippRun>) {
    common::patient(
        engine,
        MARTIN,
        scenario,
        fill,
        extra,
        Duration::from_secs(60),
    )
}

/// Waits (5 s at most) until `peer` has received more than `n` PCMU
/// packets of `fill` bytes.
fn has_fill(peer: &RtpPeer, fill: u8, n: usize) -> bool {
    peer.wait_until(Duration::from_secs(5), |p| count_fill(p, fill) > n)
}

fn call_no(v: &serde_json::Value) -> i64 {
    num(v, "call").unwrap_or_else(|| panic!("no call number in {v}"))
}

/// The `acd.queued` record of a call.
fn acd_queued(engine: &Engine, call: i64) -> serde_json::Value {
    engine
        .wait_for("acd.queued", Duration::from_secs(5), |v| {
            num(v, "call") == Some(call)
        })
        .expect("acd.queued")
}

/// Requests `method` that SIPp received, one per transaction
/// (retransmissions, same Call-ID and CSeq, counted once), in order.
fn received_transactions(run: &SippRun, method: &str) -> Vec<String> {
    let header = |m: &str, name: &str| {
        m.lines()
            .find(|l| l.to_ascii_lowercase().starts_with(&format!("{name}:")))
            .map(|l| l.trim().to_string())
            .unwrap_or_default()
    };
    let mut seen = std::collections::HashSet::new();
    received_requests(run, method)
        .into_iter()
        .filter(|m| seen.insert((header(m, "call-id"), header(m, "cseq"))))
        .collect()
}

/// Messages that SIPp received (`received == true`) or sent, as text.
fn uas_messages(run: &SippRun, received: bool) -> Vec<String> {
    sip_messages_dir(&run.messages)
        .into_iter()
        .filter(|(r, _)| *r == received)
        .map(|(_, m)| m)
        .collect()
}

// ---------------------------------------------------------------------------
// 1. Shared pool after the practice's delay.

#[test]
fn busy_dedicated_agent_overflows_to_shared_pool_after_step_delay() {
    let mut cfg = quick_config();
    step_after(&mut cfg, 1, 3);
    let engine = Engine::start(&cfg, &[]);
    // Carol registers first (longest idle) but has generaliste 2 < 3: the
    // pool step must skip her.
    register_agent(engine.sip, "carol", "carol-demo", free_udp_port());
    let alice = phone(
        &engine,
        "alice",
        "agent_answer.xml",
        0,
        0x2a,
        &["-d", "200"],
    );
    let bob = phone(&engine, "bob", "agent_answer.xml", 0, 0x3b, &["-d", "200"]);

    // First patient: Alice takes it and stays on the line.
    let (p1, c1) = patient(&engine, "carrier_call.xml", 0x55, &["-d", "14000"]);
    let a1 = engine
        .wait_for("acd.answered", Duration::from_secs(10), |v| {
            field(v, "agent") == "alice"
        })
        .expect("first call answered by alice");
    let call1 = call_no(&a1);
    assert!(has_fill(&p1, 0x2a, 10), "first caller does not hear alice");

    // Second patient: only the pool step (3 s) can serve it, with Bob.
    let (p2, c2) = patient(&engine, "carrier_call.xml", 0x66, &["-d", "9000"]);
    // call.queued: logged by the call task just before it joins the
    // dispatcher's queue (the dispatcher's own acd.queued record is
    // written after its join time).
    let q2 = engine
        .wait_for("call.queued", Duration::from_secs(10), |v| {
            call_no(v) != call1
        })
        .expect("second call queued");
    let call2 = call_no(&q2);
    let offer = engine
        .wait_for("acd.offered", Duration::from_secs(10), |v| {
            call_no(v) == call2
        })
        .expect("second call offered");
    assert_eq!(field(&offer, "agent"), "bob", "{}", engine.dump());
    let delay = ts(&offer) - ts(&q2);
    // The dispatcher keeps time in whole milliseconds (join time floored):
    // the step can open up to 1 ms before 3 s after call.queued's stamp.
    assert!(
        (2.999..5.0).contains(&delay),
        "offered to the pool {delay:.4} s after queueing (step at 3 s)"
    );
    assert!(engine
        .wait_for("acd.answered", Duration::from_secs(5), |v| call_no(v)
            == call2
            && field(v, "agent") == "bob")
        .is_some());
    assert!(
        has_fill(&bob.rtp, 0x66, 20),
        "second caller's audio did not reach bob"
    );
    assert!(
        has_fill(&p2, 0x3b, 20),
        "bob's audio did not reach the second caller"
    );
    // Alice's call is still bridged and undisturbed.
    assert_eq!(
        count_fill(&alice.rtp.received(), 0x66),
        0,
        "alice hears the second caller"
    );

    joined(c2, "second carrier");
    joined(c1, "first carrier");
    alice.uas.finish_ok(Duration::from_secs(20), "alice");
    bob.uas.finish_ok(Duration::from_secs(20), "bob");
    let ended = engine
        .wait_n("call.ended", 2, Duration::from_secs(5), |_| true)
        .expect("both calls ended");
    for e in &ended {
        assert_eq!(field(e, "reason"), "caller-hangup");
    }
    let offers = engine.events("acd.offered");
    assert!(
        offers.iter().all(|o| field(o, "agent") != "carol"),
        "carol (generaliste 2) was offered a call: {offers:?}"
    );
    assert_eq!(offers.len(), 2, "{offers:?}");
}

// ---------------------------------------------------------------------------
// 2. Ring no answer: next agent, strikes, automatic pause.

#[test]
fn ring_no_answer_moves_on_counts_strikes_and_pauses_the_agent() {
    let mut cfg = quick_config();
    step_after(&mut cfg, 1, 1);
    cfg.routing("martin")
        .insert("ring_timeout_seconds".into(), 5.into());
    cfg.main_table("dispatcher")
        .insert("max_no_answer_strikes".into(), 2.into());
    // After a ring-out, Alice is skipped for 1 s only (10 s by default).
    cfg.main_table("dispatcher")
        .insert("no_answer_backoff_seconds".into(), 1.into());
    let engine = Engine::start(&cfg, &[]);
    // Alice's phone rings for every offer and is never picked up.
    let alice = phone(
        &engine,
        "alice",
        "agent_noanswer.xml",
        0,
        0x2a,
        &["-m", "2"],
    );
    let bob = phone(&engine, "bob", "agent_answer.xml", 0, 0x3b, &["-d", "200"]);

    // First call: Alice (dedicated) rings for the ring timeout, then Bob.
    let (p1, c1) = patient(&engine, "carrier_call.xml", 0x55, &["-d", "8000"]);
    let o1 = engine
        .wait_for("acd.offered", Duration::from_secs(10), |v| {
            field(v, "agent") == "alice"
        })
        .expect("offered to alice");
    let call1 = call_no(&o1);
    let rona1 = engine
        .wait_for("acd.rona", Duration::from_secs(10), |v| call_no(v) == call1)
        .expect("ring no answer");
    assert_eq!(field(&rona1, "agent"), "alice");
    assert_eq!(num(&rona1, "strikes"), Some(1), "{rona1}");
    let rang = ts(&rona1) - ts(&o1);
    assert!(
        (4.9..6.5).contains(&rang),
        "rang {rang:.3} s (ring timeout 5 s)"
    );
    let o1b = engine
        .wait_for("acd.offered", Duration::from_secs(5), |v| {
            call_no(v) == call1 && field(v, "agent") == "bob"
        })
        .expect("then offered to bob");
    assert!(ts(&o1b) >= ts(&rona1));
    assert!(engine
        .wait_for("acd.answered", Duration::from_secs(5), |v| field(
            v, "agent"
        ) == "bob")
        .is_some());
    assert!(has_fill(&p1, 0x3b, 10), "first caller does not hear bob");

    // Second call while Bob is busy (then in wrap-up): only Alice, once
    // her no-answer back-off is over; she does not answer again.
    let (_p2, c2) = patient(&engine, "carrier_call.xml", 0x66, &["-d", "17000"]);
    let rona2 = engine
        .wait_for("acd.rona", Duration::from_secs(25), |v| call_no(v) != call1)
        .expect("second ring no answer");
    assert_eq!(field(&rona2, "agent"), "alice");
    assert_eq!(num(&rona2, "strikes"), Some(2), "{rona2}");
    let paused = engine
        .wait_for("agent.state", Duration::from_secs(2), |v| {
            field(v, "agent") == "alice" && field(v, "to") == "Paused"
        })
        .expect("alice paused");
    // The automatic pause (ChangeReason::NoAnswer), not a requested one.
    assert_eq!(field(&paused, "reason"), "NoAnswer", "{paused}");
    assert!(ts(&paused) >= ts(&rona2));

    joined(c1, "first carrier");
    joined(c2, "second carrier");
    let alice_run = alice.uas.finish_ok(Duration::from_secs(20), "alice");
    bob.uas.finish_ok(Duration::from_secs(20), "bob");
    let got = uas_messages(&alice_run, true);
    assert_eq!(
        received_transactions(&alice_run, "INVITE").len(),
        2,
        "{got:?}"
    );
    assert_eq!(
        received_transactions(&alice_run, "CANCEL").len(),
        2,
        "{got:?}"
    );
    // Paused: no further offer to Alice; the second caller gave up.
    let after: Vec<_> = engine
        .events("acd.offered")
        .into_iter()
        .filter(|v| field(v, "agent") == "alice" && ts(v) > ts(&paused))
        .collect();
    assert!(after.is_empty(), "offered to a paused agent: {after:?}");
    let ab = engine
        .wait_for("acd.abandoned", Duration::from_secs(5), |v| {
            call_no(v) != call1
        })
        .expect("second call abandoned");
    assert_eq!(field(&ab, "phase"), "Queue");
}

// ---------------------------------------------------------------------------
// 3. Busy agent.

#[test]
fn busy_agent_fails_the_offer_and_the_next_agent_gets_the_call() {
    let mut cfg = quick_config();
    step_after(&mut cfg, 1, 1);
    let engine = Engine::start(&cfg, &[]);
    let alice = phone(&engine, "alice", "agent_busy.xml", 0, 0x2a, &[]);
    let bob = phone(&engine, "bob", "agent_answer.xml", 0, 0x3b, &["-d", "200"]);

    let (p, c) = patient(&engine, "carrier_call.xml", 0x55, &["-d", "6000"]);
    let failed = engine
        .wait_event("acd.offer_failed", Duration::from_secs(10))
        .expect("offer failed");
    assert_eq!(field(&failed, "agent"), "alice");
    assert_eq!(field(&failed, "reason"), "Busy");
    let call = call_no(&failed);
    let next = engine
        .wait_for("acd.offered", Duration::from_secs(5), |v| {
            field(v, "agent") == "bob"
        })
        .expect("offered to bob");
    assert_eq!(call_no(&next), call);
    assert!(ts(&next) >= ts(&failed));
    assert!(engine
        .wait_for("acd.answered", Duration::from_secs(5), |v| field(
            v, "agent"
        ) == "bob")
        .is_some());
    assert!(
        has_fill(&bob.rtp, 0x55, 20),
        "caller audio did not reach bob"
    );
    assert!(
        has_fill(&p, 0x3b, 20),
        "bob's audio did not reach the caller"
    );

    joined(c, "carrier");
    let a = alice.uas.finish_ok(Duration::from_secs(20), "alice");
    assert!(
        uas_messages(&a, false)
            .iter()
            .any(|m| m.starts_with("SIP/2.0 486")),
        "{}",
        a.messages
    );
    bob.uas.finish_ok(Duration::from_secs(20), "bob");
    let ended = engine
        .wait_event("call.ended", Duration::from_secs(5))
        .expect("ended");
    assert_eq!(field(&ended, "agent"), "bob");
    assert!(engine.events("acd.rona").is_empty());
}

// ---------------------------------------------------------------------------
// 4. Caller abandons in the queue.

#[test]
fn caller_hanging_up_in_queue_is_an_abandon() {
    let engine = Engine::start(&quick_config(), &[]);
    // Nobody registered: the call waits (hold music) until the caller
    // hangs up 4 s after the answer (3 s in queue).
    let (p, c) = patient(&engine, "carrier_call.xml", 0x55, &["-d", "4000"]);
    joined(c, "carrier");
    let ab = engine
        .wait_event("acd.abandoned", Duration::from_secs(5))
        .expect("abandoned");
    assert_eq!(field(&ab, "phase"), "Queue");
    assert_eq!(num(&ab, "position"), Some(1));
    let wait = float(&ab, "wait_s").expect("wait_s");
    assert!((2.0..4.0).contains(&wait), "wait {wait}");
    let ended = engine
        .wait_event("call.ended", Duration::from_secs(5))
        .expect("ended");
    assert_eq!(field(&ended, "reason"), "abandoned-queue");
    assert_eq!(field(&ended, "agent"), "");
    assert!(engine.events("acd.offered").is_empty());
    // While queued the caller heard the hold music, in order.
    let hold = default_prompt("hold_music");
    let frames = prompt_frames(&p.received(), &hold);
    let heard = frames.iter().flatten().count();
    assert!(heard > 100, "only {heard} packets of hold music");
    let run = longest_run(&frames);
    assert!(
        run > 100,
        "hold music not played in order (longest run {run})"
    );
}

/// Longest run of consecutive frame indices (k, k+1, ...) in `frames`.
fn longest_run(frames: &[Option<usize>]) -> usize {
    let (mut best, mut cur, mut last) = (0, 0, None::<usize>);
    for f in frames {
        match (f, last) {
            (Some(k), Some(l)) if *k == l + 1 => cur += 1,
            (Some(_), _) => cur = 1,
            (None, _) => cur = 0,
        }
        last = *f;
        best = best.max(cur);
    }
    best
}

// ---------------------------------------------------------------------------
// 5. Caller abandons while an agent's phone rings.

#[test]
fn caller_hanging_up_while_ringing_cancels_the_agent() {
    let engine = Engine::start(&quick_config(), &[]);
    let alice = phone(&engine, "alice", "agent_noanswer.xml", 0, 0x2a, &[]);
    // Queued after the 1 s greeting, offered at once (ring timeout 20 s),
    // the caller hangs up at 4 s.
    let (_p, c) = patient(&engine, "carrier_call.xml", 0x55, &["-d", "4000"]);
    let offered = engine
        .wait_event("acd.offered", Duration::from_secs(10))
        .expect("offered");
    assert_eq!(field(&offered, "agent"), "alice");
    joined(c, "carrier");
    let ab = engine
        .wait_event("acd.abandoned", Duration::from_secs(5))
        .expect("abandoned");
    assert_eq!(field(&ab, "phase"), "Ringing");
    assert_eq!(call_no(&ab), call_no(&offered));
    let ended = engine
        .wait_event("call.ended", Duration::from_secs(5))
        .expect("ended");
    assert_eq!(field(&ended, "reason"), "abandoned-ringing");
    // Alice's phone got the CANCEL (and answered 200 + 487, took the ACK).
    let run = alice.uas.finish_ok(Duration::from_secs(20), "alice");
    assert!(
        received_request(&run, "CANCEL").is_some(),
        "{}",
        run.messages
    );
    assert!(engine.events("acd.rona").is_empty());
    assert!(engine
        .wait_for("agent.state", Duration::from_secs(2), |v| field(v, "agent")
            == "alice"
            && field(v, "from") == "Offered"
            && field(v, "to") == "Available")
        .is_some());
}

// ---------------------------------------------------------------------------
// 6. Urgent triage choice jumps the queue.

#[test]
fn urgent_triage_choice_is_offered_before_earlier_callers() {
    // Dr Martin's menu as in the demo (1 urgence +10, 2 rendez-vous by
    // default), with short tones as greeting and menu and a 1 s timeout.
    let mut cfg = TestConfig::demo();
    cfg.always_open("martin");
    let reg = cfg
        .main_table("sip")
        .get_mut("registrar")
        .and_then(|r| r.as_table_mut());
    reg.expect("[sip.registrar]")
        .insert("qualify_interval_seconds".into(), 0.into());
    cfg.tone_prompt("martin", "greeting", 1.5, 440.0);
    cfg.tone_prompt("martin", "triage", 1.5, 660.0);
    cfg.practice("martin")
        .get_mut("triage")
        .and_then(|t| t.as_table_mut())
        .expect("[triage]")
        .insert("timeout_seconds".into(), 1.into());
    cfg.routing("martin")
        .insert("wrap_up_seconds".into(), 0.into());
    let engine = Engine::start(&cfg, &[]);

    // Two patients press nothing: default "2".
    let (_pa, ca) = patient(&engine, "carrier_wait_bye.xml", 0x11, &[]);
    let qa = engine
        .wait_for("call.queued", Duration::from_secs(10), |_| true)
        .expect("first caller queued");
    let (_pb, cb) = patient(&engine, "carrier_wait_bye.xml", 0x22, &[]);
    let qb = engine
        .wait_n("call.queued", 2, Duration::from_secs(10), |_| true)
        .expect("second caller queued")[1]
        .clone();
    assert_eq!(field(&qa, "triage"), "2");
    assert_eq!(field(&qb, "triage"), "2");
    // A third presses 1 (urgence) during the greeting.
    let (pc, cc) = patient(&engine, "carrier_wait_bye.xml", 0x33, &[]);
    pc.press('1');
    let qc = engine
        .wait_for("call.queued", Duration::from_secs(10), |v| {
            field(v, "triage") == "1"
        })
        .expect("urgent caller queued");
    assert_eq!(field(&qc, "triage_label"), "urgence");
    let (a, b, c) = (call_no(&qa), call_no(&qb), call_no(&qc));
    assert_eq!(num(&acd_queued(&engine, c), "priority"), Some(10));
    assert_eq!(num(&acd_queued(&engine, a), "priority"), Some(0));
    assert!(engine.events("acd.offered").is_empty());

    // Alice comes in; she answers each call and hangs up after 0.5 s.
    let alice = phone(
        &engine,
        "alice",
        "agent_answer_bye.xml",
        0,
        0x2a,
        &["-m", "3", "-d", "500"],
    );
    let offers = engine
        .wait_n("acd.offered", 3, Duration::from_secs(20), |_| true)
        .unwrap_or_else(|| panic!("three offers\n{}", engine.dump()));
    let order: Vec<i64> = offers.iter().map(call_no).collect();
    assert_eq!(order, vec![c, a, b], "urgent {c}, then {a}, {b}");
    for h in [(ca, "first"), (cb, "second"), (cc, "urgent")] {
        joined(h.0, h.1);
    }
    let run = alice.uas.finish_ok(Duration::from_secs(20), "alice");
    let invites = received_transactions(&run, "INVITE");
    assert_eq!(invites.len(), 3, "{invites:?}");
    assert!(
        invites[0].contains("X-Permanence-Triage: 1;label=\"urgence\""),
        "{}",
        invites[0]
    );
    assert!(
        invites[1].contains("X-Permanence-Triage: 2;label=\"rendez-vous\""),
        "{}",
        invites[1]
    );
    let ended = engine
        .wait_n("call.ended", 3, Duration::from_secs(5), |_| true)
        .expect("three calls ended");
    assert!(
        ended.iter().all(|e| field(e, "reason") == "agent-hangup"),
        "{ended:?}"
    );
}

// ---------------------------------------------------------------------------
// 7. Hold and resume from the agent's phone.

#[test]
fn agent_hold_plays_hold_music_and_resume_restores_audio() {
    let engine = Engine::start(&quick_config(), &[]);
    // Alice answers, talks 1.5 s, holds 3 s, resumes.
    let alice = phone(&engine, "alice", "agent_hold.xml", 0, 0x2a, &["-d", "1500"]);
    let (p, c) = patient(&engine, "carrier_call.xml", 0x55, &["-d", "10000"]);
    assert!(engine
        .wait_event("acd.answered", Duration::from_secs(10))
        .is_some());
    joined(c, "carrier");
    let run = alice.uas.finish_ok(Duration::from_secs(20), "alice");

    // What the caller heard after Alice answered: Alice, hold music,
    // Alice again.
    let got = p.received();
    let first = got
        .iter()
        .position(|q| count_fill(std::slice::from_ref(q), 0x2a) == 1)
        .expect("the caller never heard alice");
    let after = &got[first..];
    let is_alice: Vec<bool> = after
        .iter()
        .map(|q| count_fill(std::slice::from_ref(q), 0x2a) == 1)
        .collect();
    let mut runs: Vec<(bool, usize, usize)> = Vec::new(); // (alice, start, len)
    for (i, &a) in is_alice.iter().enumerate() {
        match runs.last_mut() {
            Some((k, _, n)) if *k == a => *n += 1,
            _ => runs.push((a, i, 1)),
        }
    }
    let long: Vec<_> = runs.iter().filter(|r| r.2 >= 10).collect();
    let shape: Vec<bool> = long.iter().map(|r| r.0).collect();
    assert_eq!(
        shape,
        vec![true, false, true],
        "runs (alice?, start, len): {runs:?}"
    );
    let (_, hs, hn) = *long[1];
    assert!(
        long[0].2 >= 40,
        "talked only {} packets before hold",
        long[0].2
    );
    assert!(
        (100..=200).contains(&hn),
        "hold lasted {hn} packets (3 s = 150)"
    );
    assert!(long[2].2 >= 100, "only {} packets after resume", long[2].2);
    let held = &after[hs..hs + hn];
    let cap = common::RtpCapture {
        packets: held.to_vec(),
    };
    assert!(cap.rms() > 200.0, "hold audio is silent");
    let frames = prompt_frames(held, &default_prompt("hold_music"));
    let music = frames.iter().flatten().count();
    assert!(
        music * 10 >= hn * 9,
        "only {music} of {hn} held packets are hold music"
    );
    assert!(
        longest_run(&frames) * 10 >= hn * 8,
        "hold music out of order"
    );

    // The engine answered the hold with recvonly, the resume with sendrecv.
    let sent = uas_messages(&run, false);
    let got_200 = uas_messages(&run, true)
        .into_iter()
        .filter(|m| m.starts_with("SIP/2.0 200"))
        .collect::<Vec<_>>();
    assert!(sent.iter().filter(|m| m.starts_with("INVITE ")).count() == 2);
    let hold_ok = got_200
        .iter()
        .find(|m| m.contains("CSeq: 1 INVITE"))
        .expect("200 to hold");
    let resume_ok = got_200
        .iter()
        .find(|m| m.contains("CSeq: 2 INVITE"))
        .expect("200 to resume");
    assert!(hold_ok.contains("a=recvonly"), "{hold_ok}");
    assert!(resume_ok.contains("a=sendrecv"), "{resume_ok}");
    // Alice heard the caller before and after the hold, and nothing at
    // all while she held (the engine answered recvonly: it must not send).
    let alice_got = alice.rtp.received();
    assert!(count_fill(&alice_got, 0x55) > 150);
    let margin = Duration::from_millis(200);
    let (from, to) = (held[0].at + margin, held[hn - 1].at - margin);
    let during: Vec<_> = alice_got
        .iter()
        .filter(|q| q.at > from && q.at < to)
        .collect();
    assert!(
        during.is_empty(),
        "{} packets sent to alice while she held the call (first: pt {} {:02x?})",
        during.len(),
        during[0].pt,
        &during[0].payload[..8.min(during[0].payload.len())]
    );
    let ended = engine
        .wait_event("call.ended", Duration::from_secs(5))
        .expect("ended");
    assert_eq!(field(&ended, "reason"), "caller-hangup");
}

// ---------------------------------------------------------------------------
// 8. The agent hangs up.

#[test]
fn agent_bye_hangs_up_the_caller() {
    let engine = Engine::start(&quick_config(), &[]);
    let alice = phone(
        &engine,
        "alice",
        "agent_answer_bye.xml",
        0,
        0x2a,
        &["-d", "2000"],
    );
    let (p, c) = patient(&engine, "carrier_wait_bye.xml", 0x55, &[]);
    assert!(engine
        .wait_event("acd.answered", Duration::from_secs(10))
        .is_some());
    assert!(has_fill(&p, 0x2a, 20), "the caller does not hear alice");
    // The carrier scenario only succeeds if the engine's BYE came.
    let run = joined(c, "carrier");
    assert!(run.messages.contains("BYE sip:"), "{}", run.messages);
    alice.uas.finish_ok(Duration::from_secs(20), "alice");
    let ended = engine
        .wait_event("call.ended", Duration::from_secs(5))
        .expect("ended");
    assert_eq!(field(&ended, "reason"), "agent-hangup");
    assert_eq!(field(&ended, "agent"), "alice");
    let done = engine
        .wait_event("acd.completed", Duration::from_secs(2))
        .expect("completed");
    let talk = float(&done, "talk_s").expect("talk_s");
    assert!((1.5..4.0).contains(&talk), "talk {talk}");
}

// ---------------------------------------------------------------------------
// 9. Overflow after the maximum wait.

/// [`quick_config`] with Dr Martin's maximum wait at 10 s (the minimum),
/// only the dedicated step, and `action` as overflow.
fn overflow_config(action: &str) -> TestConfig {
    let mut cfg = quick_config();
    cfg.steps("martin").truncate(1);
    let r = cfg.routing("martin");
    r.insert("max_wait_seconds".into(), 10.into());
    let mut o = toml::Table::new();
    o.insert("action".into(), action.into());
    r.insert("overflow".into(), toml::Value::Table(o));
    cfg
}

/// Waits for the call to overflow to `target` (`Voicemail`, `Hangup`,
/// `Callback`) at its maximum wait, 10 s after it joined the queue.
fn assert_overflowed(engine: &Engine, target: &str) -> serde_json::Value {
    let q = engine
        .wait_event("acd.queued", Duration::from_secs(10))
        .expect("queued");
    let o = engine
        .wait_event("acd.overflowed", Duration::from_secs(15))
        .expect("overflowed");
    assert_eq!(field(&o, "reason"), "MaxWait");
    assert_eq!(num(&o, "call"), num(&q, "call"));
    // `overflow_target`: `target` is the JSON log line's own key (the
    // module path).
    assert_eq!(field(&o, "overflow_target"), target, "{o}");
    let waited = ts(&o) - ts(&q);
    assert!(
        (9.9..12.0).contains(&waited),
        "overflowed after {waited:.3} s"
    );
    o
}

#[test]
fn overflow_to_voicemail_records_the_callers_message() {
    let engine = Engine::start(&overflow_config("voicemail"), &[]);
    // 1 s greeting, 10 s queue, 9 s voicemail prompt, ~3 s of message.
    let (p, c) = patient(&engine, "carrier_call.xml", 0x55, &["-d", "23000"]);
    assert_overflowed(&engine, "Voicemail");
    joined(c, "carrier");
    let ended = engine
        .wait_event("call.ended", Duration::from_secs(5))
        .expect("ended");
    assert_eq!(field(&ended, "reason"), "voicemail");
    let path = field(&ended, "voicemail").to_string();
    assert!(!path.is_empty(), "{ended}");
    // The message is confirmed on disk before the call is reported ended.
    let rec = engine
        .wait_event("voicemail.recorded", Duration::from_secs(1))
        .unwrap_or_else(|| panic!("no voicemail.recorded\n{}", engine.dump()));
    assert_eq!(field(&rec, "path"), path);
    assert!(ts(&rec) <= ts(&ended));
    // The caller heard the whole voicemail prompt (with its beep).
    let cov = prompt_coverage(&p.received(), &default_prompt("voicemail"));
    assert!(cov >= 0.9, "voicemail prompt coverage {cov:.2}");
    // The message: a complete 8 kHz mono 16-bit PCM WAV at the caller's
    // level.
    let file = engine.dir().join(&path);
    let wav = read_wav(&file).unwrap_or_else(|e| panic!("voicemail WAV: {e}"));
    assert_eq!(
        (wav.format, wav.rate, wav.channels, wav.bits),
        (1, 8000, 1, 16)
    );
    let secs = wav.samples.len() as f64 / 8000.0;
    assert!((1.5..5.0).contains(&secs), "message of {secs:.2} s");
    let want = common::ulaw_to_linear(0x55);
    let close = wav.samples.iter().filter(|&&s| g711_close(s, want)).count();
    assert!(
        close * 100 >= wav.samples.len() * 95,
        "{close} of {} samples at the caller's level {want}",
        wav.samples.len()
    );
    assert!(rms(&wav.samples) > 500.0);
    let logged = float(&rec, "seconds").expect("seconds");
    assert!(
        (logged - secs).abs() < 0.1,
        "logged {logged} s, file {secs} s"
    );
}

#[test]
fn overflow_to_hangup_apologises_then_hangs_up() {
    let engine = Engine::start(&overflow_config("hangup"), &[]);
    let (p, c) = patient(&engine, "carrier_wait_bye.xml", 0x55, &[]);
    assert_overflowed(&engine, "Hangup");
    joined(c, "carrier");
    let ended = engine
        .wait_event("call.ended", Duration::from_secs(5))
        .expect("ended");
    assert_eq!(field(&ended, "reason"), "overflow-hangup");
    let cov = prompt_coverage(&p.received(), &default_prompt("overflow"));
    assert!(cov >= 0.9, "apology coverage {cov:.2}");
}

#[test]
fn overflow_to_callback_records_the_request_then_hangs_up() {
    let engine = Engine::start(&overflow_config("callback"), &[]);
    let (p, c) = patient(&engine, "carrier_wait_bye.xml", 0x55, &[]);
    assert_overflowed(&engine, "Callback");
    // The overflow hands the caller's number to the callbacks task: the
    // same mechanism as a callback asked from the queue.
    let cb = engine
        .wait_event("callback.overflow", Duration::from_secs(5))
        .expect("callback requested");
    assert_eq!(field(&cb, "practice"), "martin");
    assert_eq!(field(&cb, "caller"), "+3361xxxxx78");
    let req = engine
        .wait_event("callback.requested", Duration::from_secs(5))
        .expect("request in the book");
    assert_eq!(field(&req, "origin"), "overflow");
    joined(c, "carrier");
    let ended = engine
        .wait_event("call.ended", Duration::from_secs(5))
        .expect("ended");
    assert_eq!(field(&ended, "reason"), "callback");
    let cov = prompt_coverage(&p.received(), &default_prompt("callback_taken"));
    assert!(cov >= 0.9, "callback prompt coverage {cov:.2}");
}

// ---------------------------------------------------------------------------
// 10. Transcoding between a PCMU caller and a PCMA agent.

#[test]
fn pcmu_caller_and_pcma_agent_are_transcoded_both_ways() {
    let engine = Engine::start(&quick_config(), &[]);
    // Alice answers with PCMA only, sending A-law 0x90 (+2752).
    let alice = phone(
        &engine,
        "alice",
        "agent_answer.xml",
        8,
        0x90,
        &["-d", "200"],
    );
    let (p, c) = patient(&engine, "carrier_call.xml", 0x55, &["-d", "5000"]);
    let answered = engine
        .wait_event("call.answered", Duration::from_secs(5))
        .expect("answered");
    assert_eq!(field(&answered, "codec"), "Pcmu");
    assert!(engine
        .wait_event("acd.answered", Duration::from_secs(10))
        .is_some());
    let caller_level = common::ulaw_to_linear(0x55);
    let agent_level = common::alaw_to_linear(0x90);
    assert!(agent_level > 2000 && caller_level < -500);
    let transcoded = |p: &RtpPacket, pt: u8, want: i16| {
        p.pt == pt && p.payload.len() == 160 && decode(p).iter().all(|&s| g711_close(s, want))
    };
    assert!(
        alice.rtp.wait_until(Duration::from_secs(5), |got| got
            .iter()
            .filter(|q| transcoded(q, 8, caller_level))
            .count()
            > 50),
        "alice did not get the caller's audio as PCMA"
    );
    assert!(
        p.wait_until(Duration::from_secs(5), |got| got
            .iter()
            .filter(|q| transcoded(q, 0, agent_level))
            .count()
            > 50),
        "the caller did not get alice's audio as PCMU"
    );
    joined(c, "carrier");
    alice.uas.finish_ok(Duration::from_secs(20), "alice");
    // Nothing but PCMA ever went to Alice's phone.
    let wrong: Vec<u8> = alice
        .rtp
        .received()
        .iter()
        .map(|q| q.pt)
        .filter(|&pt| pt != 8)
        .collect();
    assert!(
        wrong.is_empty(),
        "payload types {wrong:?} sent to a PCMA-only phone"
    );
}

// ---------------------------------------------------------------------------
// 11. The agent unregisters while their phone rings.

#[test]
fn agent_unregistering_while_ringing_withdraws_the_offer() {
    let mut cfg = quick_config();
    step_after(&mut cfg, 1, 1);
    let engine = Engine::start(&cfg, &[]);
    let alice = phone(&engine, "alice", "agent_noanswer.xml", 0, 0x2a, &[]);
    let bob = phone(&engine, "bob", "agent_answer.xml", 0, 0x3b, &["-d", "200"]);
    let (p, c) = patient(&engine, "carrier_call.xml", 0x55, &["-d", "8000"]);
    let offered = engine
        .wait_for("acd.offered", Duration::from_secs(10), |v| {
            field(v, "agent") == "alice"
        })
        .expect("offered to alice");
    let call = call_no(&offered);
    // Her phone rings...
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !alice.uas.messages().contains("180 Ringing") {
        assert!(
            std::time::Instant::now() < deadline,
            "alice's phone never rang"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // ... and she logs her softphone off (REGISTER Expires: 0 for its
    // contact).
    unregister_agent(engine.sip, "alice", "alice-demo", alice.port);
    let w = engine
        .wait_event("acd.offer_withdrawn", Duration::from_secs(5))
        .unwrap_or_else(|| panic!("offer not withdrawn\n{}", engine.dump()));
    assert_eq!(field(&w, "agent"), "alice");
    assert_eq!(field(&w, "reason"), "AgentUnreachable");
    assert_eq!(call_no(&w), call);
    // The call goes back to the queue, keeps its place, and Bob gets it.
    let o2 = engine
        .wait_for("acd.offered", Duration::from_secs(5), |v| {
            field(v, "agent") == "bob"
        })
        .expect("offered to bob");
    assert_eq!(call_no(&o2), call);
    assert!(engine
        .wait_for("acd.answered", Duration::from_secs(5), |v| field(
            v, "agent"
        ) == "bob")
        .is_some());
    assert!(has_fill(&p, 0x3b, 20), "the caller does not hear bob");
    joined(c, "carrier");
    let run = alice.uas.finish_ok(Duration::from_secs(20), "alice");
    assert!(
        received_request(&run, "CANCEL").is_some(),
        "{}",
        run.messages
    );
    bob.uas.finish_ok(Duration::from_secs(20), "bob");
    assert!(engine.events("acd.rona").is_empty());
    assert!(engine.events("acd.abandoned").is_empty());
}

#[test]
fn urgent_option_routes_straight_to_the_practitioner() {
    // Dr Martin's triage: "1" (urgence) goes to the practitioner's mobile
    // through the carrier's outbound gateway (a SIPp softphone here).
    let mut cfg = quick_config();
    let gw_port = cfg.outbound_gateway();
    let mut triage = toml::Table::new();
    triage.insert("timeout_seconds".into(), 5.into());
    triage.insert("default".into(), "2".into());
    let mut urgent = toml::Table::new();
    urgent.insert("digit".into(), "1".into());
    urgent.insert("label".into(), "urgence".into());
    urgent.insert("route_to".into(), "+33612340000".into());
    let mut rdv = toml::Table::new();
    rdv.insert("digit".into(), "2".into());
    rdv.insert("label".into(), "rendez-vous".into());
    triage.insert(
        "options".into(),
        toml::Value::Array(vec![toml::Value::Table(urgent), toml::Value::Table(rdv)]),
    );
    cfg.practice("martin")
        .insert("triage".into(), toml::Value::Table(triage));
    let engine = Engine::start(&cfg, &[]);
    let (mobile_rtp, mobile) = SippBg::uas_with_rtp(
        "agent_answer.xml",
        gw_port,
        0,
        0x4d,
        &["-d", "300"],
        Duration::from_secs(40),
    );
    let (p, c) = patient(&engine, "carrier_call.xml", 0x55, &["-d", "7000"]);
    // The patient presses 1 during the greeting.
    assert!(p.wait_until(Duration::from_secs(5), |pk| !pk.is_empty()));
    p.press('1');
    assert!(engine
        .wait_event("call.transfer", Duration::from_secs(5))
        .is_some());
    // Two-way audio with the practitioner, no queue, no telesecretary.
    assert!(
        has_fill(&p, 0x4d, 20),
        "the caller does not hear the practitioner"
    );
    assert!(
        has_fill(&mobile_rtp, 0x55, 20),
        "the practitioner does not hear the caller"
    );
    joined(c, "carrier");
    let run = mobile.finish_ok(Duration::from_secs(20), "mobile");
    let invite = received_request(&run, "INVITE").expect("INVITE at the gateway");
    assert!(invite.starts_with("INVITE sip:+33612340000@"), "{invite}");
    assert!(invite.contains("X-Permanence-Practice: martin"), "{invite}");
    let ended = engine
        .wait_event("call.ended", Duration::from_secs(5))
        .expect("ended");
    assert_eq!(field(&ended, "reason"), "transferred");
    assert!(engine.events("acd.queued").is_empty());
}

#[test]
fn queued_callers_hear_their_position_and_wait() {
    let mut cfg = quick_config();
    let mut queue = toml::Table::new();
    queue.insert("announce_position".into(), true.into());
    queue.insert("announce_wait".into(), true.into());
    queue.insert("announce_every_seconds".into(), 10.into());
    cfg.practice("martin")
        .insert("queue".into(), toml::Value::Table(queue));
    let engine = Engine::start(&cfg, &[]);
    // No telesecretary registered: the patient waits; at 10 s in queue
    // the announcement says "Vous êtes le premier en attente...".
    let (p, c) = patient(&engine, "carrier_call.xml", 0x55, &["-d", "15000"]);
    let prefix = common::default_prompt("position_prefix");
    let first = common::default_prompt("ordinal_1");
    assert!(
        p.wait_until(Duration::from_secs(16), |pk| common::prompt_coverage(
            pk, &prefix
        ) > 0.8
            && common::prompt_coverage(pk, &first) > 0.8),
        "no position announcement heard"
    );
    // It comes after a period in queue (1 s greeting + 10 s), not at once.
    let packets = p.received();
    let start = packets.first().map(|pk| pk.at).expect("packets");
    let heard_at = packets
        .iter()
        .zip(common::prompt_frames(&packets, &prefix))
        .find(|(_, f)| f.is_some())
        .map(|(pk, _)| pk.at)
        .expect("announcement frame");
    let after = heard_at.duration_since(start).as_secs_f64();
    assert!((9.5..14.0).contains(&after), "announced after {after:.1} s");
    joined(c, "carrier");
}

#[test]
fn caller_rtp_silence_ends_the_call() {
    // The carrier's media path died: no RTP from the caller.
    let engine = Engine::start(&quick_config(), &["--rtp-timeout-s", "2"]);
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let run = common::sipp(
        "carrier_wait_bye.xml",
        engine.sip,
        "127.0.0.1",
        &carrier_vars(MARTIN, port),
        &[],
        Duration::from_secs(30),
    );
    assert!(run.success, "carrier: {}\n{}", run.output, run.errors);
    let ended = engine
        .wait_event("call.ended", Duration::from_secs(3))
        .expect("ended");
    assert_eq!(field(&ended, "reason"), "media-timeout");
    let secs = ended.get("seconds").and_then(|s| s.as_f64()).unwrap_or(0.0);
    assert!((1.5..10.0).contains(&secs), "ended after {secs} s");
}

#[test]
fn dtmf_by_sip_info_chooses_the_triage_option() {
    // Dr Martin's real triage menu (1 urgence, default 2), a short greeting;
    // the carrier sends the caller's digit as SIP INFO.
    let mut cfg = config();
    cfg.tone_prompt("martin", "greeting", 1.5, 440.0);
    let mut demo = TestConfig::demo();
    let triage = demo
        .practice("martin")
        .get("triage")
        .cloned()
        .expect("demo triage");
    cfg.practice("martin").insert("triage".into(), triage);
    let engine = Engine::start(&cfg, &[]);
    let rtp = RtpPeer::start(0, 0x55);
    let mut vars = carrier_vars(MARTIN, rtp.port);
    vars.push(("digit", "1".to_string()));
    let run = common::sipp(
        "carrier_info_dtmf.xml",
        engine.sip,
        "127.0.0.1",
        &vars,
        &["-d", "2000"],
        Duration::from_secs(30),
    );
    assert!(run.success, "carrier: {}\n{}", run.output, run.errors);
    let q = engine
        .wait_event("call.queued", Duration::from_secs(5))
        .expect("queued");
    assert_eq!(field(&q, "triage"), "1");
    assert_eq!(field(&q, "triage_label"), "urgence");
    let acd = engine
        .wait_event("acd.queued", Duration::from_secs(2))
        .expect("acd queued");
    // Practice priority 0 + urgence 10.
    assert_eq!(num(&acd, "priority"), Some(10));
}
