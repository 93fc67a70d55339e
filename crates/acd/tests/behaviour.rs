//! Behaviour of the dispatcher on virtual time.

mod common;

use std::time::Duration;

use common::*;
use permanence_acd::*;

fn shared_pool_config() -> AcdConfig {
    // Two practices with one dedicated agent each, plus a shared pool of
    // generalists reachable after 20 s, plus any French speaker after 60 s.
    let mut agents = vec![agent("ded-a"), agent("ded-b"), agent("shared-1")];
    agents[2].skills.insert("generaliste".into(), 4);
    agents[2].pools.push("shared".into());
    let mut weak = agent("shared-weak");
    weak.skills.insert("generaliste".into(), 2);
    weak.pools.push("shared".into());
    agents.push(weak);
    let mut pa = practice("a", &["ded-a"]);
    let mut pb = practice("b", &["ded-b"]);
    for p in [&mut pa, &mut pb] {
        p.steps = vec![
            RoutingStep::dedicated(Duration::ZERO),
            RoutingStep {
                after: Duration::from_secs(20),
                select: Selector {
                    pool: Some("shared".into()),
                    skill: Some("generaliste".into()),
                    min_level: 3,
                    ..Selector::default()
                },
            },
            RoutingStep {
                after: Duration::from_secs(60),
                select: Selector {
                    language: Some("fr".into()),
                    ..Selector::default()
                },
            },
        ];
    }
    let mut c = config(agents, vec![pa, pb]);
    c.pools.push(PoolDef {
        id: "shared".into(),
        members: vec![],
    });
    c
}

#[test]
fn call_goes_to_dedicated_agent_and_answer_reports_wait() {
    let mut h = H::new(shared_pool_config());
    h.take();
    h.arrive(1, "a");
    h.expect_offer(1, "ded-a");
    assert_eq!(h.state("ded-a"), AgentState::Offered);
    h.advance(3);
    h.take();
    h.answer(1, "ded-a");
    assert!(h.events().contains(&Event::Answered {
        call: CallId(1),
        agent: "ded-a".into(),
        wait: Duration::from_secs(3),
    }));
    assert_eq!(h.state("ded-a"), AgentState::OnCall);
    h.advance(100);
    h.end(1);
    // Wrap-up 0: available at once.
    assert_eq!(h.state("ded-a"), AgentState::Available);
    assert!(h.d.calls().next().is_none());
}

#[test]
fn relaxing_step_reaches_shared_pool_exactly_at_20s_keeping_place() {
    let mut h = H::new(shared_pool_config());
    // Dedicated agent of practice a busy.
    h.arrive(1, "a");
    h.answer(1, "ded-a");
    h.take();
    h.arrive(2, "a");
    assert!(h.offers().is_empty());
    h.advance(1);
    h.arrive(3, "a");
    h.advance_ms(18_999);
    assert!(
        h.offers().is_empty(),
        "no offer before 20 s: {:?}",
        h.offers()
    );
    h.advance_ms(1);
    // Exactly 20 s after call 2 joined: it goes to the qualified shared agent
    // (the weak generalist, level 2, is not eligible at step 1).
    assert_eq!(h.offers(), vec![(2, "shared-1".to_string())]);
    h.answer(2, "shared-1");
    h.take();
    // Call 3 relaxes at 21 s but the only qualified shared agent is busy.
    h.advance(1);
    assert!(h.offers().is_empty());
    // Step 2 (60 s after its join, at t = 61 s): any French speaker. The
    // idle ones (ded-b, shared-weak) are tied on idle time since login; the
    // configuration order breaks the tie.
    h.advance(39);
    assert!(h.offers().is_empty());
    h.advance(1);
    assert_eq!(h.offers(), vec![(3, "ded-b".to_string())]);
    let snap = h.d.call(CallId(3), h.t).expect("known");
    assert_eq!(snap.step, 2);
    assert_eq!(snap.wait, Duration::from_secs(60));
}

#[test]
fn relaxed_call_keeps_its_place_against_newer_calls() {
    let mut h = H::new(shared_pool_config());
    h.input(Input::AgentPause {
        agent: "shared-1".into(),
        reason: "lunch".into(),
    })
    .expect("pause");
    h.input(Input::AgentPause {
        agent: "shared-weak".into(),
        reason: "lunch".into(),
    })
    .expect("pause");
    h.arrive(1, "a");
    h.answer(1, "ded-a");
    h.arrive(2, "b");
    h.answer(2, "ded-b");
    h.arrive(10, "a");
    h.advance(30);
    h.arrive(11, "b");
    h.advance(30);
    h.take();
    // The shared agent comes back: the oldest call (10, a) first, even though
    // 11 (b) joined its shared step more recently.
    h.input(Input::AgentUnpause {
        agent: "shared-1".into(),
    })
    .expect("unpause");
    assert_eq!(h.offers(), vec![(10, "shared-1".to_string())]);
}

#[test]
fn shared_agent_serves_globally_oldest_call_across_practices() {
    let mut agents = vec![agent("s")];
    agents[0].pools.push("shared".into());
    let mut practices = Vec::new();
    for p in ["a", "b", "c"] {
        let mut pol = practice(p, &[]);
        pol.steps = vec![RoutingStep {
            after: Duration::from_secs(0),
            select: Selector {
                pool: Some("shared".into()),
                ..Selector::default()
            },
        }];
        practices.push(pol);
    }
    let mut cfg = config(agents, practices);
    cfg.pools.push(PoolDef {
        id: "shared".into(),
        members: vec![],
    });
    let mut h = H::new(cfg);
    h.arrive(1, "a");
    h.answer(1, "s");
    // Queue: a, b, a, c, b arriving 1 s apart.
    for (id, p) in [(2, "a"), (3, "b"), (4, "a"), (5, "c"), (6, "b")] {
        h.advance(1);
        h.arrive(id, p);
    }
    let mut served = Vec::new();
    let mut current = 1;
    for _ in 0..5 {
        h.advance(10);
        h.take();
        h.end(current);
        let offers = h.offers();
        assert_eq!(offers.len(), 1);
        current = offers[0].0;
        served.push(current);
        h.answer(current, "s");
    }
    assert_eq!(served, vec![2, 3, 4, 5, 6]);
}

#[test]
fn longest_idle_agent_is_chosen() {
    let cfg = config(
        vec![agent("x"), agent("y"), agent("z")],
        vec![practice("p", &["x", "y", "z"])],
    );
    let mut h = H::new(cfg);
    // All logged in at the same instant: config order breaks the tie.
    h.arrive(1, "p");
    h.expect_offer(1, "x");
    h.answer(1, "x");
    h.arrive(2, "p");
    h.expect_offer(2, "y");
    h.answer(2, "y");
    h.advance(10);
    h.end(2); // y idle since t+10
    h.advance(5);
    h.end(1); // x idle since t+15
    h.take();
    // z has been idle since the start: longest idle.
    h.arrive(3, "p");
    assert_eq!(h.offers(), vec![(3, "z".to_string())]);
    h.answer(3, "z");
    h.take();
    h.arrive(4, "p");
    assert_eq!(h.offers(), vec![(4, "y".to_string())]);
}

#[test]
fn most_skilled_and_round_robin_strategies() {
    let mut a = agent("junior");
    a.skills.insert("cardiologie".into(), 2);
    let mut b = agent("senior");
    b.skills.insert("cardiologie".into(), 5);
    let mut p = practice("p", &["junior", "senior"]);
    p.strategy = Some(Strategy::MostSkilled);
    p.specialty = Some("cardiologie".into());
    let mut h = H::new(config(vec![a.clone(), b.clone()], vec![p]));
    h.take();
    h.arrive(1, "p");
    assert_eq!(h.offers(), vec![(1, "senior".to_string())]);

    let mut p = practice("p", &["junior", "senior"]);
    p.strategy = Some(Strategy::RoundRobin);
    let mut h = H::new(config(vec![a, b], vec![p]));
    let mut order = Vec::new();
    for call in 1..=4 {
        h.take();
        h.arrive(call, "p");
        let (c, who) = h.offers()[0].clone();
        order.push(who.clone());
        h.answer(c, &who);
        h.end(c);
    }
    assert_eq!(order, vec!["junior", "senior", "junior", "senior"]);
}

#[test]
fn urgent_call_jumps_ahead_of_older_calls() {
    let cfg = config(vec![agent("x")], vec![practice("p", &["x"])]);
    let mut h = H::new(cfg);
    h.arrive(1, "p");
    h.answer(1, "x");
    h.arrive(2, "p");
    h.advance(5);
    h.arrive(3, "p");
    h.advance(5);
    h.arrive_prio(4, "p", 10);
    // Raise call 3 by triage while it waits.
    h.input(Input::SetPriority {
        call: CallId(3),
        priority: 5,
    })
    .expect("set priority");
    let q = h.d.queue_snapshot("p", h.t).expect("practice");
    let order: Vec<u64> = q.calls.iter().map(|c| c.call.0).collect();
    assert_eq!(order, vec![4, 3, 2]);
    h.take();
    h.end(1);
    assert_eq!(h.offers(), vec![(4, "x".to_string())]);
}

#[test]
fn ring_no_answer_strikes_and_auto_pause() {
    let cfg = config(
        vec![agent("sleepy"), agent("other")],
        vec![practice("p", &["sleepy", "other"])],
    );
    let mut h = H::new(cfg);
    h.input(Input::AgentPause {
        agent: "other".into(),
        reason: "training".into(),
    })
    .expect("pause");
    h.take();
    h.arrive(1, "p");
    assert_eq!(h.offers(), vec![(1, "sleepy".to_string())]);
    let mut t_offer = h.t;
    for strike in 1..=3u32 {
        h.take();
        // Default ring timeout 20 s.
        h.advance_to(t_offer + chrono::Duration::seconds(20));
        let acts = h.actions();
        assert!(acts.contains(&Action::CancelOffer {
            call: CallId(1),
            agent: "sleepy".into(),
            reason: CancelReason::RingTimeout,
        }));
        assert!(h.events().contains(&Event::Rona {
            call: CallId(1),
            agent: "sleepy".into(),
            strikes: strike,
        }));
        if strike < 3 {
            assert_eq!(h.state("sleepy"), AgentState::Available);
            // Back-off 10 s, then the call (still waiting) comes back.
            h.take();
            h.advance(10);
            assert_eq!(h.offers(), vec![(1, "sleepy".to_string())]);
            t_offer = h.t;
        }
    }
    let s = h.d.agent("sleepy").expect("agent");
    assert_eq!(s.state, AgentState::Paused);
    assert_eq!(s.pause_reason.as_deref(), Some("no-answer"));
    // The call kept its place: its wait counts from the first join.
    let c = h.d.call(CallId(1), h.t).expect("still queued");
    assert_eq!(c.phase, CallPhase::Waiting);
    assert_eq!(c.wait, Duration::from_secs(20 + 10 + 20 + 10 + 20));
    // The other agent comes back and takes it.
    h.take();
    h.input(Input::AgentUnpause {
        agent: "other".into(),
    })
    .expect("unpause");
    assert_eq!(h.offers(), vec![(1, "other".to_string())]);
}

#[test]
fn answered_call_resets_strikes() {
    let cfg = config(vec![agent("x")], vec![practice("p", &["x"])]);
    let mut h = H::new(cfg);
    h.arrive(1, "p");
    h.advance(20);
    h.advance(10);
    assert_eq!(h.d.agent("x").expect("x").strikes, 1);
    h.answer(1, "x");
    assert_eq!(h.d.agent("x").expect("x").strikes, 0);
}

#[test]
fn rona_moves_call_to_next_agent() {
    let cfg = config(
        vec![agent("x"), agent("y")],
        vec![practice("p", &["x", "y"])],
    );
    let mut h = H::new(cfg);
    h.take();
    h.arrive(1, "p");
    assert_eq!(h.offers(), vec![(1, "x".to_string())]);
    h.take();
    h.advance(20);
    assert_eq!(h.offers(), vec![(1, "y".to_string())]);
}

#[test]
fn busy_offer_backs_agent_off_and_redispatches() {
    let cfg = config(
        vec![agent("x"), agent("y")],
        vec![practice("p", &["x", "y"])],
    );
    let mut h = H::new(cfg);
    h.take();
    h.arrive(1, "p");
    assert_eq!(h.offers(), vec![(1, "x".to_string())]);
    h.take();
    h.input(Input::OfferFailed {
        call: CallId(1),
        agent: "x".into(),
        reason: OfferFailure::Busy,
    })
    .expect("failure");
    assert_eq!(h.offers(), vec![(1, "y".to_string())]);
    assert_eq!(h.d.agent("x").expect("x").strikes, 0);
    h.answer(1, "y");
    // x is backed off for 10 s: a new call waits.
    h.take();
    h.arrive(2, "p");
    assert!(h.offers().is_empty());
    h.advance_ms(9_999);
    assert!(h.offers().is_empty());
    h.advance_ms(1);
    assert_eq!(h.offers(), vec![(2, "x".to_string())]);
    // A stale answer for the failed offer is rejected.
    assert!(matches!(
        h.input(Input::OfferAnswered {
            call: CallId(1),
            agent: "x".into()
        }),
        Err(AcdError::NotOffered { .. })
    ));
}

#[test]
fn wrap_up_is_timed() {
    let mut p = practice("p", &["x"]);
    p.wrap_up = Some(Duration::from_secs(30));
    let mut h = H::new(config(vec![agent("x")], vec![p]));
    h.arrive(1, "p");
    h.answer(1, "x");
    h.advance(60);
    h.end(1);
    assert_eq!(h.state("x"), AgentState::WrapUp);
    h.arrive(2, "p");
    h.take();
    h.advance_ms(29_999);
    assert!(h.offers().is_empty());
    assert_eq!(h.state("x"), AgentState::WrapUp);
    h.advance_ms(1);
    assert_eq!(h.offers(), vec![(2, "x".to_string())]);
    assert!(h.events().contains(&Event::AgentStateChanged {
        agent: "x".into(),
        from: AgentState::WrapUp,
        to: AgentState::Available,
        reason: ChangeReason::WrapUpEnded,
    }));
}

#[test]
fn an_agents_own_wrap_up_overrides_the_practices() {
    let mut p = practice("p", &["x"]);
    p.wrap_up = Some(Duration::from_secs(30));
    let mut x = agent("x");
    x.wrap_up = Some(Duration::from_secs(5));
    let mut h = H::new(config(vec![x], vec![p]));
    h.arrive(1, "p");
    h.answer(1, "x");
    h.advance(60);
    h.end(1);
    assert_eq!(h.state("x"), AgentState::WrapUp);
    h.arrive(2, "p");
    h.take();
    h.advance_ms(4_999);
    assert!(h.offers().is_empty());
    h.advance_ms(1);
    assert_eq!(h.offers(), vec![(2, "x".to_string())]);
}

fn overflow_case(target: OverflowTarget) -> H {
    let mut p = practice("p", &["x"]);
    p.max_wait = Some(Duration::from_secs(90));
    p.overflow = target;
    let mut spare = agent("spare");
    spare.pools.push("backup".into());
    let mut cfg = config(vec![agent("x"), spare], vec![p]);
    cfg.pools.push(PoolDef {
        id: "backup".into(),
        members: vec![],
    });
    let mut h = H::new(cfg);
    h.input(Input::AgentPause {
        agent: "spare".into(),
        reason: "admin".into(),
    })
    .expect("pause");
    h.arrive(1, "p");
    h.answer(1, "x");
    h.arrive(2, "p");
    h.take();
    h
}

#[test]
fn overflow_at_max_wait_for_each_target() {
    for target in [
        OverflowTarget::Voicemail,
        OverflowTarget::Callback,
        OverflowTarget::Hangup,
    ] {
        let mut h = overflow_case(target.clone());
        h.advance_ms(89_999);
        assert!(h.actions().is_empty());
        h.advance_ms(1);
        assert_eq!(
            h.actions(),
            vec![Action::Overflow {
                call: CallId(2),
                target: target.clone()
            }]
        );
        assert!(h.events().contains(&Event::Overflowed {
            call: CallId(2),
            target: target.clone(),
            wait: Duration::from_secs(90),
            reason: OverflowReason::MaxWait,
        }));
        assert!(h.d.call(CallId(2), h.t).is_none());
    }
}

#[test]
fn pool_overflow_keeps_call_queued_and_adds_pool() {
    let mut h = overflow_case(OverflowTarget::Pool("backup".into()));
    h.advance(90);
    assert!(h.actions().is_empty(), "{:?}", h.actions());
    assert!(h.events().contains(&Event::Retargeted {
        call: CallId(2),
        pool: "backup".into(),
        wait: Duration::from_secs(90),
    }));
    let c = h.d.call(CallId(2), h.t).expect("still queued");
    assert!(c.retargeted);
    h.take();
    h.input(Input::AgentUnpause {
        agent: "spare".into(),
    })
    .expect("unpause");
    assert_eq!(h.offers(), vec![(2, "spare".to_string())]);
}

#[test]
fn max_wait_while_ringing_overflows_when_the_offer_ends() {
    let mut p = practice("p", &["x"]);
    p.max_wait = Some(Duration::from_secs(10));
    let mut h = H::new(config(vec![agent("x")], vec![p]));
    h.arrive(1, "p");
    h.take();
    h.advance(10);
    assert!(h.actions().is_empty(), "ringing continues");
    h.advance(10);
    let acts = h.actions();
    assert_eq!(
        acts,
        vec![
            Action::CancelOffer {
                call: CallId(1),
                agent: "x".into(),
                reason: CancelReason::RingTimeout
            },
            Action::Overflow {
                call: CallId(1),
                target: OverflowTarget::Voicemail
            }
        ]
    );
}

#[test]
fn abandon_in_queue_and_while_ringing() {
    let cfg = config(vec![agent("x")], vec![practice("p", &["x"])]);
    let mut h = H::new(cfg);
    h.arrive(1, "p");
    h.advance(4);
    h.arrive(2, "p");
    h.arrive(3, "p");
    h.advance(6);
    h.take();
    // Call 3 is second in line behind 1 (ringing) and 2.
    h.input(Input::CallAbandoned { call: CallId(3) })
        .expect("abandon");
    assert_eq!(
        h.events(),
        vec![Event::Abandoned {
            call: CallId(3),
            phase: AbandonPhase::Queue,
            wait: Duration::from_secs(6),
            position: 3,
        }]
    );
    h.take();
    h.input(Input::CallAbandoned { call: CallId(1) })
        .expect("abandon");
    assert!(h.actions().contains(&Action::CancelOffer {
        call: CallId(1),
        agent: "x".into(),
        reason: CancelReason::CallerHangup,
    }));
    assert!(h.events().contains(&Event::Abandoned {
        call: CallId(1),
        phase: AbandonPhase::Ringing,
        wait: Duration::from_secs(10),
        position: 1,
    }));
    // No strike; the agent is free and takes call 2.
    assert_eq!(h.d.agent("x").expect("x").strikes, 0);
    h.expect_offer(2, "x");
    // Abandoning again is an error, not a second terminal event.
    assert!(matches!(
        h.input(Input::CallAbandoned { call: CallId(1) }),
        Err(AcdError::UnknownCall(_))
    ));
}

fn martin_hours() -> Schedule {
    ScheduleSpec {
        tz: "Europe/Paris".into(),
        always_open: false,
        weekly: [
            (
                "mon-fri".to_string(),
                vec!["08:00-12:00".to_string(), "14:00-19:00".to_string()],
            ),
            ("sat".to_string(), vec!["08:00-12:00".to_string()]),
        ]
        .into_iter()
        .collect(),
        holidays: permanence_calendar::HolidayRule::Fr,
        exceptions: vec![],
    }
    .to_schedule()
    .expect("valid")
}

#[test]
fn closed_practice_returns_closed_and_holiday_closes() {
    let mut p = practice("p", &["x"]);
    p.hours = Some(martin_hours());
    let cfg = config(vec![agent("x")], vec![p]);
    // Lundi de Pâques 2026-04-06, 10:00 Paris (08:00 UTC): closed.
    let mut h = H::at(cfg.clone(), utc("2026-04-06T08:00:00Z"));
    h.take();
    h.arrive(1, "p");
    assert_eq!(
        h.actions(),
        vec![Action::Closed {
            call: CallId(1),
            practice: "p".into()
        }]
    );
    assert!(h.events().contains(&Event::Closed {
        call: CallId(1),
        practice: "p".into()
    }));
    assert!(h.d.call(CallId(1), h.t).is_none());
    // The next day (Tuesday) at 10:00 Paris: open.
    h.advance_to(utc("2026-04-07T08:00:00Z"));
    h.take();
    h.arrive(2, "p");
    assert_eq!(h.offers(), vec![(2, "x".to_string())]);
    // Lunch break 12:00-14:00 Paris (10:00-12:00 UTC in summer time).
    h.answer(2, "x");
    h.end(2);
    h.advance_to(utc("2026-04-07T09:59:59Z"));
    h.take();
    h.arrive(3, "p");
    assert_eq!(h.offers(), vec![(3, "x".to_string())]);
    h.advance_to(utc("2026-04-07T10:00:00Z"));
    h.take();
    h.arrive(4, "p");
    assert!(matches!(h.actions()[0], Action::Closed { .. }));
}

#[test]
fn calls_waiting_at_closing_time_are_still_served() {
    let mut p = practice("p", &["x"]);
    p.hours = Some(martin_hours());
    let cfg = config(vec![agent("x")], vec![p]);
    // Monday 2026-01-12 11:59 Paris = 10:59 UTC.
    let mut h = H::at(cfg, utc("2026-01-12T10:59:00Z"));
    h.arrive(1, "p");
    h.answer(1, "x");
    h.arrive(2, "p");
    h.advance(120); // now 12:01 Paris: closed
    assert_eq!(h.d.is_open("p", h.t), Some(false));
    h.take();
    h.end(1);
    assert_eq!(h.offers(), vec![(2, "x".to_string())]);
}

fn shift_agent(ranges: &str) -> AgentProfile {
    let mut a = agent("x");
    a.shift = Some(
        ScheduleSpec {
            tz: "Europe/Paris".into(),
            always_open: false,
            weekly: [("daily".to_string(), vec![ranges.to_string()])]
                .into_iter()
                .collect(),
            holidays: permanence_calendar::HolidayRule::None,
            exceptions: vec![],
        }
        .to_schedule()
        .expect("valid"),
    );
    a
}

#[test]
fn shift_boundaries_on_dst_spring_forward_day() {
    // Shift 08:00-20:00 Paris; 2026-03-29 is the spring-forward Sunday:
    // 08:00 CEST = 06:00 UTC, 20:00 CEST = 18:00 UTC.
    let cfg = config(
        vec![shift_agent("08:00-20:00")],
        vec![practice("p", &["x"])],
    );
    let mut h = H::at(cfg, utc("2026-03-29T00:30:00Z"));
    assert_eq!(h.d.agent_in_shift("x"), Some(false));
    h.arrive(1, "p");
    h.take();
    h.advance_to(utc("2026-03-29T05:59:59Z"));
    assert!(h.offers().is_empty(), "before the shift");
    h.advance_to(utc("2026-03-29T06:00:00Z"));
    assert_eq!(h.offers(), vec![(1, "x".to_string())]);
    assert!(h.events().contains(&Event::ShiftChanged {
        agent: "x".into(),
        in_shift: true
    }));
    h.answer(1, "x");
    // Shift ends at 18:00 UTC during a call: the call continues.
    h.advance_to(utc("2026-03-29T17:59:00Z"));
    h.arrive(2, "p");
    h.advance_to(utc("2026-03-29T18:00:30Z"));
    assert_eq!(h.d.agent_in_shift("x"), Some(false));
    assert_eq!(h.state("x"), AgentState::OnCall);
    h.take();
    h.end(1);
    assert!(h.offers().is_empty(), "no offer outside the shift");
    assert_eq!(h.state("x"), AgentState::Available);
    // Next morning (CEST) 08:00 = 06:00 UTC the waiting call is offered.
    h.advance_to(utc("2026-03-30T06:00:00Z"));
    assert_eq!(h.offers(), vec![(2, "x".to_string())]);
}

#[test]
fn shift_boundaries_on_dst_fall_back_day() {
    // 2026-10-25: back to CET. 08:00 CET = 07:00 UTC, 20:00 CET = 19:00 UTC.
    let cfg = config(
        vec![shift_agent("08:00-20:00")],
        vec![practice("p", &["x"])],
    );
    let mut h = H::at(cfg, utc("2026-10-25T00:00:00Z"));
    h.arrive(1, "p");
    h.take();
    h.advance_to(utc("2026-10-25T06:59:59Z"));
    assert!(h.offers().is_empty());
    h.advance_to(utc("2026-10-25T07:00:00Z"));
    assert_eq!(h.offers(), vec![(1, "x".to_string())]);
    h.answer(1, "x");
    h.end(1);
    h.advance_to(utc("2026-10-25T18:59:59Z"));
    assert_eq!(h.d.agent_in_shift("x"), Some(true));
    h.advance_to(utc("2026-10-25T19:00:00Z"));
    assert_eq!(h.d.agent_in_shift("x"), Some(false));
    h.take();
    h.arrive(2, "p");
    assert!(h.offers().is_empty());
}

#[test]
fn logout_and_unreachable_withdraw_offers_and_logout_after_call() {
    let cfg = config(
        vec![agent("x"), agent("y"), agent("z")],
        vec![practice("p", &["x", "y", "z"])],
    );
    let mut h = H::new(cfg);
    h.arrive(1, "p");
    h.take();
    h.input(Input::AgentLogout { agent: "x".into() })
        .expect("logout");
    assert!(h.actions().contains(&Action::CancelOffer {
        call: CallId(1),
        agent: "x".into(),
        reason: CancelReason::AgentLoggedOut
    }));
    assert_eq!(h.state("x"), AgentState::LoggedOut);
    assert_eq!(h.offers(), vec![(1, "y".to_string())]);
    h.take();
    h.input(Input::AgentReachability {
        agent: "y".into(),
        reachable: false,
    })
    .expect("unreachable");
    assert!(h.actions().contains(&Action::CancelOffer {
        call: CallId(1),
        agent: "y".into(),
        reason: CancelReason::AgentUnreachable
    }));
    assert_eq!(h.offers(), vec![(1, "z".to_string())]);
    h.answer(1, "z");
    // Logout during a call: finishes the call, then logged out (no wrap-up).
    h.input(Input::AgentLogout { agent: "z".into() })
        .expect("logout");
    assert_eq!(h.state("z"), AgentState::OnCall);
    assert!(h.d.agent("z").expect("z").pending_logout);
    h.end(1);
    assert_eq!(h.state("z"), AgentState::LoggedOut);
    // y is back: reachable again.
    h.take();
    h.arrive(2, "p");
    assert!(h.offers().is_empty());
    h.input(Input::AgentReachability {
        agent: "y".into(),
        reachable: true,
    })
    .expect("reachable");
    assert_eq!(h.offers(), vec![(2, "y".to_string())]);
    // Pause while ringing withdraws too.
    h.take();
    h.input(Input::AgentPause {
        agent: "y".into(),
        reason: "phone".into(),
    })
    .expect("pause");
    assert!(h.events().contains(&Event::OfferWithdrawn {
        call: CallId(2),
        agent: "y".into(),
        reason: CancelReason::AgentPaused
    }));
    assert_eq!(
        h.d.call(CallId(2), h.t).expect("call").phase,
        CallPhase::Waiting
    );
}

#[test]
fn call_requirements_filter_agents() {
    let mut en = agent("anglophone");
    en.languages = vec!["fr".into(), "en".into()];
    en.skills.insert("pediatrie".into(), 3);
    let cfg = config(
        vec![agent("francophone"), en],
        vec![practice("p", &["francophone", "anglophone"])],
    );
    let mut h = H::new(cfg);
    h.take();
    let mut a = CallArrival::new(CallId(1), "p");
    a.language = Some("en".into());
    h.input(Input::CallArrived(a)).expect("arrival");
    assert_eq!(h.offers(), vec![(1, "anglophone".to_string())]);
    h.take();
    let mut a = CallArrival::new(CallId(2), "p");
    a.skills.push(SkillRequirement {
        skill: "pediatrie".into(),
        min_level: 4,
    });
    h.input(Input::CallArrived(a)).expect("arrival");
    assert!(h.offers().is_empty(), "nobody has pediatrie 4");
}

#[test]
fn errors_leave_state_unchanged() {
    let cfg = config(vec![agent("x")], vec![practice("p", &["x"])]);
    let mut h = H::new(cfg);
    assert!(matches!(
        h.input(Input::CallArrived(CallArrival::new(CallId(1), "nope"))),
        Err(AcdError::UnknownPractice(_))
    ));
    assert!(matches!(
        h.input(Input::AgentLogin {
            agent: "ghost".into()
        }),
        Err(AcdError::UnknownAgent(_))
    ));
    h.arrive(1, "p");
    assert!(matches!(
        h.input(Input::CallArrived(CallArrival::new(CallId(1), "p"))),
        Err(AcdError::DuplicateCall(_))
    ));
    assert!(matches!(
        h.input(Input::CallEnded { call: CallId(1) }),
        Err(AcdError::WrongCallPhase { .. })
    ));
    assert!(matches!(
        h.input(Input::OfferAnswered {
            call: CallId(1),
            agent: "y".into()
        }),
        Err(AcdError::UnknownAgent(_))
    ));
}

#[test]
fn config_validation_rejects_bad_references() {
    let mut c = config(vec![agent("x")], vec![practice("p", &["ghost"])]);
    assert!(matches!(
        Dispatcher::new(c.clone()),
        Err(AcdError::UnknownReference { .. })
    ));
    c.practices[0].dedicated_agents.clear();
    c.practices[0].overflow = OverflowTarget::Pool("nope".into());
    assert!(Dispatcher::new(c.clone()).is_err());
    c.practices[0].overflow = OverflowTarget::Voicemail;
    c.agents.push(agent("x"));
    assert!(matches!(
        Dispatcher::new(c.clone()),
        Err(AcdError::DuplicateId { .. })
    ));
    c.agents.pop();
    c.agents[0].skills.insert("kine".into(), 7);
    assert!(matches!(
        Dispatcher::new(c),
        Err(AcdError::InvalidConfig(_))
    ));
}

#[test]
fn config_parses_from_toml() {
    let text = r#"
[settings]
ring_timeout_secs = 15
strategy = "longest-idle"

[[pools]]
id = "shared"

[[agents]]
id = "alice"
skills = { generaliste = 4, cardiologie = 3 }
languages = ["fr", "en"]
pools = ["shared"]
practices = ["martin"]
shift = { tz = "Europe/Paris", weekly = { mon-fri = ["08:00-18:00"] } }

[[practices]]
id = "martin"
hours = { tz = "Europe/Paris", holidays = "fr", weekly = { mon-fri = ["08:00-12:00", "14:00-19:00"], sat = ["08:00-12:00"] } }
steps = [
  { after_secs = 0, dedicated = true },
  { after_secs = 20, pool = "shared", skill = "generaliste", min_level = 3 },
  { after_secs = 60, language = "fr" },
]
max_wait_secs = 180
overflow = { pool = "shared" }
wrap_up_secs = 10
"#;
    let cfg: AcdConfig = toml::from_str(text).expect("parses");
    assert_eq!(cfg.settings.ring_timeout, Duration::from_secs(15));
    assert_eq!(cfg.practices[0].steps.len(), 3);
    assert_eq!(
        cfg.practices[0].overflow,
        OverflowTarget::Pool("shared".into())
    );
    let hours = cfg.practices[0].hours.clone().expect("hours");
    assert!(!hours.is_open(utc("2026-04-06T08:00:00Z")), "Easter Monday");
    assert!(hours.is_open(utc("2026-04-07T08:00:00Z")));
    Dispatcher::new(cfg.clone()).expect("valid");
    // Round trip through JSON keeps the schedules.
    let json = serde_json::to_string(&cfg).expect("serializes");
    let back: AcdConfig = serde_json::from_str(&json).expect("parses back");
    assert_eq!(back, cfg);
}

#[test]
fn reconfigure_keeps_waiting_calls_and_agent_states() {
    let cfg = config(
        vec![agent("x"), agent("y")],
        vec![practice("p", &["x"]), practice("q", &["y"])],
    );
    let mut h = H::new(cfg.clone());
    h.arrive(1, "p");
    h.answer(1, "x");
    h.advance(5);
    h.arrive(2, "p");
    h.advance(5);
    h.arrive(3, "p");
    h.arrive(4, "q");
    h.answer(4, "y");
    h.arrive(5, "q");
    h.take();
    // New config: practice q removed, p gains agent z, y removed.
    let mut z = agent("z");
    z.logged_in = false;
    let new = config(vec![agent("x"), z], vec![practice("p", &["x", "z"])]);
    h.d.reconfigure(new, h.t).expect("valid");
    h.collect();
    h.check();
    // Call 5 (practice q) overflowed with a reason; connected calls kept.
    assert!(h.events().contains(&Event::Overflowed {
        call: CallId(5),
        target: OverflowTarget::Voicemail,
        wait: Duration::ZERO,
        reason: OverflowReason::PracticeRemoved,
    }));
    assert_eq!(h.state("x"), AgentState::OnCall);
    let q = h.d.queue_snapshot("p", h.t).expect("p");
    assert_eq!(
        q.calls
            .iter()
            .map(|c| (c.call.0, c.wait.as_secs()))
            .collect::<Vec<_>>(),
        vec![(2, 5), (3, 0)]
    );
    // The retired agent finishes its call.
    assert_eq!(h.state("y"), AgentState::OnCall);
    h.end(4);
    assert!(h.d.agent("y").is_none());
    // z logs in and takes the oldest call.
    h.take();
    h.input(Input::AgentLogin { agent: "z".into() })
        .expect("login");
    assert_eq!(h.offers(), vec![(2, "z".to_string())]);
    // Invalid config: rejected, old one stays.
    let bad = config(vec![agent("x")], vec![practice("p", &["ghost"])]);
    assert!(h.d.reconfigure(bad, h.t).is_err());
    assert!(h.d.agent("z").is_some());
}

#[test]
fn reconfigure_relaxes_calls_with_new_steps() {
    let mut cfg = config(
        vec![agent("x"), agent("helper")],
        vec![practice("p", &["x"])],
    );
    cfg.agents[1].pools.push("shared".into());
    cfg.pools.push(PoolDef {
        id: "shared".into(),
        members: vec![],
    });
    let mut h = H::new(cfg.clone());
    h.arrive(1, "p");
    h.answer(1, "x");
    h.arrive(2, "p");
    h.advance(30);
    h.take();
    // Add a step "shared after 20 s": call 2 (30 s old) is eligible at once.
    cfg.practices[0].steps.push(RoutingStep {
        after: Duration::from_secs(20),
        select: Selector {
            pool: Some("shared".into()),
            ..Selector::default()
        },
    });
    h.d.reconfigure(cfg, h.t).expect("valid");
    h.collect();
    h.check();
    assert_eq!(h.offers(), vec![(2, "helper".to_string())]);
}

#[test]
fn estimated_wait_follows_staffing_and_handle_time() {
    // Two dedicated agents, default handle 100 s, wrap-up 20 s.
    let mut p = practice("p", &["x", "y"]);
    p.default_handle = Some(Duration::from_secs(100));
    p.wrap_up = Some(Duration::from_secs(20));
    let mut h = H::new(config(vec![agent("x"), agent("y")], vec![p]));
    // A new call with both agents free waits 0.
    let q = h.d.queue_snapshot("p", h.t).expect("p");
    assert_eq!(q.estimated_wait, Some(Duration::ZERO));
    h.arrive(1, "p");
    h.answer(1, "x");
    h.advance(30);
    h.arrive(2, "p");
    h.answer(2, "y");
    h.advance(10);
    // x: answered 40 s ago -> free in 60 + 20 = 80 s; y: 10 s ago -> 110 s.
    h.arrive(3, "p");
    h.arrive(4, "p");
    h.arrive(5, "p");
    let ewt = |h: &H, c: u64| {
        h.d.estimated_wait(CallId(c), h.t)
            .expect("estimate")
            .as_secs()
    };
    assert_eq!(ewt(&h, 3), 80);
    assert_eq!(ewt(&h, 4), 110);
    // Third in line: x frees at 80, serves call 3 for 100 + 20 -> 200.
    assert_eq!(ewt(&h, 5), 200);
    let q = h.d.queue_snapshot("p", h.t).expect("p");
    assert_eq!(q.waiting, 3);
    assert_eq!(q.estimated_wait, Some(Duration::from_secs(230)));
    // Handle time learning: a 300 s call moves the average by alpha = 0.1.
    h.advance(260); // call 1 lasted 300 s
    h.end(1);
    assert_eq!(h.d.average_handle_time("p"), Some(Duration::from_secs(120)));
    // Pausing an agent removes its capacity.
    let eligible = h.d.eligible_agents("p").expect("p");
    assert_eq!(eligible.configured, 2);
    assert_eq!(eligible.staffed, 2);
    // A softphone that stops answering: that agent no longer staffs the
    // practice (the "no agent while open" alert reads this count).
    let first =
        h.d.agents()
            .first()
            .map(|a| a.agent.clone())
            .expect("agent");
    h.input(Input::AgentReachability {
        agent: first,
        reachable: false,
    })
    .expect("reachability");
    let eligible = h.d.eligible_agents("p").expect("p");
    assert_eq!(eligible.configured, 2);
    assert_eq!(eligible.staffed, 1);
}

#[test]
fn estimated_wait_accounts_for_relaxing_steps() {
    let mut cfg = shared_pool_config();
    for p in &mut cfg.practices {
        p.default_handle = Some(Duration::from_secs(200));
    }
    let mut h = H::new(cfg);
    h.input(Input::AgentPause {
        agent: "shared-weak".into(),
        reason: "x".into(),
    })
    .expect("pause");
    h.arrive(1, "a");
    h.answer(1, "ded-a");
    h.arrive(2, "a");
    // Dedicated frees in 200 s, but the shared generalist (free now) becomes
    // eligible at 20 s.
    assert_eq!(
        h.d.estimated_wait(CallId(2), h.t),
        Some(Duration::from_secs(20))
    );
}

#[test]
fn shift_ending_inside_the_repeated_hour_of_fall_back_day() {
    // Night shift 22:00-02:30 Paris. On 2026-10-25 02:00-03:00 CEST is
    // followed by 02:00-03:00 CET: the calendar says the shift is open again
    // during the second 02:00-02:30 (01:00-01:30 UTC). Its next_change skips
    // that (calendar bug); the dispatcher must follow is_open anyway.
    let a = shift_agent("22:00-02:30");
    let shift = a.shift.clone().expect("shift");
    let cfg = config(vec![a], vec![practice("p", &["x"])]);
    let mut h = H::at(cfg, utc("2026-10-24T21:00:00Z"));
    for probe in [
        "2026-10-25T00:29:00Z",
        "2026-10-25T00:31:00Z",
        "2026-10-25T01:10:00Z",
        "2026-10-25T01:36:00Z",
        "2026-10-25T21:05:00Z",
    ] {
        h.advance_to(utc(probe));
        assert_eq!(
            h.d.agent_in_shift("x"),
            Some(shift.is_open(utc(probe))),
            "at {probe}"
        );
    }
    assert_eq!(h.d.agent_in_shift("x"), Some(true));
}

// ------------------------------------------------------------ wall clock

/// Runs the dispatcher up to `end`, firing every timer at its instant, and
/// returns each output with the (engine) time it was produced at.
fn timeline(h: &mut H, end: chrono::DateTime<chrono::Utc>) -> Vec<(String, Output)> {
    let mut out = Vec::new();
    loop {
        let next = h.d.poll_timeout().filter(|t| *t <= end);
        h.t = next.unwrap_or(end).max(h.t);
        h.d.handle_timeout(h.t);
        while let Some(o) = h.d.poll_output() {
            out.push((h.t.to_rfc3339(), o));
        }
        h.check();
        if next.is_none() {
            return out;
        }
    }
}

/// One ringing offer (practice p, agent x) and one call waiting with a
/// maximum wait (practice q, its agent logged out).
fn ring_and_max_wait() -> H {
    let mut q = practice("q", &["y"]);
    q.max_wait = Some(Duration::from_secs(60));
    let mut y = agent("y");
    y.logged_in = false;
    let mut h = H::new(config(vec![agent("x"), y], vec![practice("p", &["x"]), q]));
    h.arrive(1, "p");
    h.expect_offer(1, "x");
    h.arrive(2, "q");
    h.take();
    h
}

#[test]
fn wall_clock_steps_move_neither_ring_nor_max_wait_timers() {
    let t0 = utc("2026-01-12T09:00:00Z");
    let end = t0 + chrono::Duration::seconds(120);
    let mut reference = ring_and_max_wait();
    let expected = timeline(&mut reference, end);
    // The ring timeout fires 20 s after the offer, the maximum wait 60 s
    // after the arrival.
    let at = |what: &dyn Fn(&Output) -> bool| {
        expected
            .iter()
            .find(|(_, o)| what(o))
            .map(|(t, _)| t.clone())
    };
    assert_eq!(
        at(&|o| matches!(
            o,
            Output::Event(Event::Rona {
                call: CallId(1),
                ..
            })
        )),
        Some(utc("2026-01-12T09:00:20Z").to_rfc3339())
    );
    assert_eq!(
        at(&|o| matches!(
            o,
            Output::Event(Event::Overflowed {
                call: CallId(2),
                ..
            })
        )),
        Some(utc("2026-01-12T09:01:00Z").to_rfc3339())
    );
    for hours in [1, -1] {
        let mut h = ring_and_max_wait();
        let before = h.d.poll_timeout();
        assert_eq!(before, Some(utc("2026-01-12T09:00:20Z")));
        h.d.set_wall_clock(h.t + chrono::Duration::hours(hours), h.t);
        assert_eq!(h.d.poll_timeout(), before, "offset {hours} h");
        assert_eq!(h.d.pending_outputs(), 0, "offset {hours} h");
        assert_eq!(timeline(&mut h, end), expected, "offset {hours} h");
    }
    // Steps back and forth while the timers run.
    let mut h = ring_and_max_wait();
    let mut got = timeline(&mut h, t0 + chrono::Duration::seconds(10));
    h.d.set_wall_clock(h.t + chrono::Duration::hours(1), h.t);
    got.extend(timeline(&mut h, t0 + chrono::Duration::seconds(40)));
    h.d.set_wall_clock(h.t - chrono::Duration::hours(1), h.t);
    got.extend(timeline(&mut h, end));
    assert_eq!(got, expected);
}

/// Agent x works 08:00-12:00 Paris and serves the always-open practice p;
/// practice m keeps Dr Martin's hours (08:00-12:00, 14:00-19:00).
fn wall_shift_config() -> AcdConfig {
    let mut m = practice("m", &["x"]);
    m.hours = Some(martin_hours());
    config(
        vec![shift_agent("08:00-12:00")],
        vec![practice("p", &["x"]), m],
    )
}

#[test]
fn shifts_and_opening_hours_follow_the_wall_clock() {
    // Engine time 10:00 Paris (09:00 UTC); the wall clock is an hour ahead.
    let mut h = H::new(wall_shift_config());
    assert_eq!(h.d.poll_timeout(), Some(utc("2026-01-12T11:00:00Z")));
    h.d.set_wall_clock(h.t + chrono::Duration::hours(1), h.t);
    h.collect();
    h.check();
    // The shift ends at 12:00 wall time = 11:00 Paris engine time.
    assert_eq!(h.d.poll_timeout(), Some(utc("2026-01-12T10:00:00Z")));
    assert_eq!(h.d.agent_in_shift("x"), Some(true));
    h.advance_to(utc("2026-01-12T09:59:59Z"));
    assert_eq!(h.d.is_open("m", h.t), Some(true));
    h.take();
    h.arrive(1, "p");
    assert_eq!(h.offers(), vec![(1, "x".to_string())]);
    h.answer(1, "x");
    h.end(1);
    h.take();
    h.advance_to(utc("2026-01-12T10:00:00Z"));
    assert!(h.events().contains(&Event::ShiftChanged {
        agent: "x".into(),
        in_shift: false
    }));
    assert_eq!(h.d.agent_in_shift("x"), Some(false));
    assert_eq!(h.d.is_open("m", h.t), Some(false));
    let snap = h.d.queue_snapshot("m", h.t).expect("practice");
    assert!(!snap.open);
    h.take();
    h.arrive(2, "p");
    assert!(h.offers().is_empty(), "no offer after 12:00 wall time");
    h.arrive(3, "m");
    assert!(h.actions().contains(&Action::Closed {
        call: CallId(3),
        practice: "m".into()
    }));
    // The wall clock is stepped back to engine time (11:00:30 Paris): the
    // agent is in its shift again and takes the waiting call at once.
    h.advance(30);
    h.take();
    h.d.set_wall_clock(h.t, h.t);
    h.collect();
    h.check();
    assert!(h.events().contains(&Event::ShiftChanged {
        agent: "x".into(),
        in_shift: true
    }));
    assert_eq!(h.offers(), vec![(2, "x".to_string())]);
    assert_eq!(h.d.is_open("m", h.t), Some(true));
    assert_eq!(h.d.poll_timeout(), Some(utc("2026-01-12T10:00:50Z")));
}

#[test]
fn wall_clock_set_before_the_start_and_kept_by_reconfigure() {
    // Reported before the first input: the shift is evaluated on the wall
    // clock from the start (engine 11:30 Paris = wall 12:30: out of shift).
    let mut d = Dispatcher::new(wall_shift_config()).expect("valid");
    let t = utc("2026-01-12T10:30:00Z");
    d.set_wall_clock(t + chrono::Duration::hours(1), t);
    assert_eq!(d.agent_in_shift("x"), Some(false));
    assert_eq!(d.is_open("m", t), Some(false));
    // The next shift starts at 08:00 wall time on Tuesday = 07:00 UTC wall
    // = 06:00 UTC engine.
    assert_eq!(d.poll_timeout(), Some(utc("2026-01-13T06:00:00Z")));
    d.reconfigure(wall_shift_config(), t).expect("reconfigure");
    assert_eq!(d.agent_in_shift("x"), Some(false));
    assert_eq!(d.poll_timeout(), Some(utc("2026-01-13T06:00:00Z")));
    assert!(d
        .queue_snapshots(t)
        .iter()
        .any(|q| q.practice.as_str() == "m" && !q.open));
}

#[test]
fn an_agent_removed_during_a_call_is_reported_removed_once() {
    let cfg = config(
        vec![agent("x"), agent("y")],
        vec![practice("p", &["x", "y"])],
    );
    let mut h = H::new(cfg);
    h.arrive(1, "p");
    h.answer(1, "x");
    let without_x = config(vec![agent("y")], vec![practice("p", &["y"])]);
    h.d.reconfigure(without_x.clone(), h.t).expect("valid");
    h.collect();
    h.end(1);
    assert!(h
        .events()
        .contains(&Event::AgentRemoved { agent: "x".into() }));
    // A later reconfiguration does not report it again.
    h.take();
    h.d.reconfigure(without_x, h.t).expect("valid");
    h.collect();
    h.check();
    assert_eq!(h.events(), vec![]);
    assert_eq!(h.d.agents().len(), 1);
}

/// Practice p: dedicated agent x, a maximum wait of 30 s and a pool
/// "shared" (agent y, logged out).
fn pending_overflow_config(x_logged_in: bool, overflow: OverflowTarget) -> AcdConfig {
    let mut x = agent("x");
    x.logged_in = x_logged_in;
    let mut y = agent("y");
    y.logged_in = false;
    y.pools.push("shared".into());
    let mut p = practice("p", &["x"]);
    p.max_wait = Some(Duration::from_secs(30));
    p.ring_timeout = Some(Duration::from_secs(60));
    p.overflow = overflow;
    let mut cfg = config(vec![x, y], vec![p]);
    cfg.pools.push(PoolDef {
        id: "shared".into(),
        members: vec![],
    });
    cfg
}

#[test]
fn reconfigure_to_a_pool_overflow_while_an_overflow_is_pending_retargets_the_call() {
    // The maximum wait passes while the call rings x (overflow to voicemail
    // pending), then the overflow target becomes the pool.
    let cfg = pending_overflow_config(true, OverflowTarget::Voicemail);
    let mut h = H::new(cfg);
    h.arrive(1, "p");
    h.expect_offer(1, "x");
    h.advance(40);
    let to_pool = pending_overflow_config(true, OverflowTarget::Pool("shared".into()));
    h.take();
    h.d.reconfigure(to_pool, h.t).expect("valid");
    h.collect();
    h.check();
    assert!(h.events().contains(&Event::Retargeted {
        call: CallId(1),
        pool: "shared".into(),
        wait: Duration::from_secs(40),
    }));
    // The ring times out: the call stays queued, retargeted (never an
    // overflow action with a pool target), and the pool serves it.
    h.take();
    h.advance(20);
    assert!(
        !h.actions()
            .iter()
            .any(|a| matches!(a, Action::Overflow { .. })),
        "{:?}",
        h.actions()
    );
    let snap = h.d.call(CallId(1), h.t).expect("still queued");
    assert_eq!(snap.phase, CallPhase::Waiting);
    assert!(snap.retargeted);
    h.take();
    h.input(Input::AgentLogin { agent: "y".into() })
        .expect("login");
    assert_eq!(h.offers(), vec![(1, "y".to_string())]);
}

#[test]
fn reconfigure_away_from_a_pool_overflow_overflows_a_retargeted_call() {
    // Nobody logged in: at 30 s the call is retargeted to the pool.
    let mut h = H::new(pending_overflow_config(
        false,
        OverflowTarget::Pool("shared".into()),
    ));
    h.arrive(1, "p");
    h.advance(40);
    assert!(h.d.call(CallId(1), h.t).expect("queued").retargeted);
    // The overflow target becomes the voicemail: the maximum wait, long
    // exceeded, sends the call there at once.
    let to_voicemail = pending_overflow_config(false, OverflowTarget::Voicemail);
    h.take();
    h.d.reconfigure(to_voicemail, h.t).expect("valid");
    h.collect();
    h.check();
    assert!(h.actions().contains(&Action::Overflow {
        call: CallId(1),
        target: OverflowTarget::Voicemail,
    }));
    assert!(h.events().contains(&Event::Overflowed {
        call: CallId(1),
        target: OverflowTarget::Voicemail,
        wait: Duration::from_secs(40),
        reason: OverflowReason::MaxWait,
    }));
    assert!(h.d.call(CallId(1), h.t).is_none());
}
