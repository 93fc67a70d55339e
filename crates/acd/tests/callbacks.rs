//! Callbacks keeping the caller's place: re-arrivals with their original
//! join time (`CallArrival::joined_at`) and answered calls released without
//! wrap-up (`Input::CallReleased`).

mod common;

use std::time::Duration;

use common::*;
use permanence_acd::*;

/// A call of `practice` arriving now that joined the queue `secs` seconds
/// ago (in the future if negative).
fn rejoin(h: &mut H, call: u64, practice: &str, secs: i64) -> Result<(), AcdError> {
    let mut a = CallArrival::new(CallId(call), practice);
    a.joined_at = Some(h.t - chrono::Duration::seconds(secs));
    h.input(Input::CallArrived(a))
}

fn release(h: &mut H, call: u64) -> Result<(), AcdError> {
    h.input(Input::CallReleased { call: CallId(call) })
}

/// The practice queue, in queue order.
fn queue(h: &H, practice: &str) -> Vec<u64> {
    let q = h.d.queue_snapshot(practice, h.t).expect("known practice");
    q.calls.iter().map(|c| c.call.0).collect()
}

fn wait(h: &H, call: u64) -> Duration {
    h.d.call(CallId(call), h.t).expect("known call").wait
}

/// One agent `x` dedicated to `p`, busy with call 1.
fn busy_agent(p: PracticePolicy) -> H {
    let mut h = H::new(config(vec![agent("x")], vec![p]));
    h.arrive(1, "p");
    h.answer(1, "x");
    h.take();
    h
}

#[test]
fn an_older_rearrival_goes_before_later_calls_of_the_same_priority() {
    let mut h = busy_agent(practice("p", &["x"]));
    h.advance(60);
    h.arrive(2, "p");
    h.advance(60);
    // Joined 90 s ago, i.e. 30 s before call 2: ahead of it.
    rejoin(&mut h, 3, "p", 90).expect("re-arrival");
    // It is back in the queue, not a new call.
    assert!(h.events().contains(&Event::CallQueued {
        call: CallId(3),
        practice: "p".into(),
        priority: 0,
        rejoined: true,
    }));
    // Joined 30 s ago: behind call 2, which joined 60 s ago.
    rejoin(&mut h, 4, "p", 30).expect("re-arrival");
    // A higher priority still goes first, however recent.
    h.arrive_prio(5, "p", 1);
    assert_eq!(queue(&h, "p"), vec![5, 3, 2, 4]);
    let snap = h.d.call(CallId(3), h.t).expect("known");
    assert_eq!(snap.position, 2);
    assert_eq!(snap.wait, Duration::from_secs(90));
    // The agent takes them in that order.
    h.take();
    let mut current = 1;
    for call in [5, 3, 2, 4] {
        release(&mut h, current).expect("released");
        assert_eq!(h.offers(), vec![(call, "x".to_string())]);
        h.answer(call, "x");
        h.take();
        current = call;
    }
}

#[test]
fn rearrivals_requeued_in_their_original_order_keep_it() {
    let mut h = busy_agent(practice("p", &["x"]));
    h.arrive(2, "p");
    // After a restart, the pending requests come back in their original
    // order, but a new call got in first.
    for (call, ago) in [(10, 600), (11, 300), (12, 300)] {
        rejoin(&mut h, call, "p", ago).expect("re-arrival");
    }
    // Equal join times keep the arrival order.
    assert_eq!(queue(&h, "p"), vec![10, 11, 12, 2]);
}

/// Practice `p`: dedicated agent `x`, then after 60 s the shared pool
/// (agent `s`); `x` busy with call 1.
fn two_steps() -> H {
    let mut p = practice("p", &["x"]);
    p.steps = vec![
        RoutingStep::dedicated(Duration::ZERO),
        RoutingStep {
            after: Duration::from_secs(60),
            select: Selector {
                pool: Some("shared".into()),
                ..Selector::default()
            },
        },
    ];
    let mut s = agent("s");
    s.pools.push("shared".into());
    let mut cfg = config(vec![agent("x"), s], vec![p]);
    cfg.pools.push(PoolDef {
        id: "shared".into(),
        members: vec![],
    });
    let mut h = H::new(cfg);
    h.arrive(1, "p");
    h.expect_offer(1, "x");
    h.answer(1, "x");
    h.take();
    h
}

#[test]
fn a_rearrival_that_joined_long_ago_is_at_once_eligible_for_later_steps() {
    let mut h = two_steps();
    // A new call waits for the dedicated agent only.
    h.arrive(2, "p");
    assert!(h.offers().is_empty());
    assert_eq!(h.d.call(CallId(2), h.t).expect("known").step, 0);
    // Joined 10 minutes ago: the 60 s step is open, the pool agent takes it.
    rejoin(&mut h, 3, "p", 600).expect("re-arrival");
    assert_eq!(h.offers(), vec![(3, "s".to_string())]);
    assert_eq!(h.d.call(CallId(3), h.t).expect("known").step, 1);
    assert_eq!(
        h.d.call(CallId(2), h.t).expect("known").phase,
        CallPhase::Waiting
    );
}

#[test]
fn a_rearrival_relaxes_on_the_schedule_of_its_join_time() {
    let mut h = two_steps();
    // Joined 45 s ago: the 60 s step opens 15 s from now.
    rejoin(&mut h, 2, "p", 45).expect("re-arrival");
    assert!(h.offers().is_empty());
    h.advance_ms(14_999);
    assert!(h.offers().is_empty());
    h.advance_ms(1);
    assert_eq!(h.offers(), vec![(2, "s".to_string())]);
    let snap = h.d.call(CallId(2), h.t).expect("known");
    assert_eq!(snap.step, 1);
    assert_eq!(snap.wait, Duration::from_secs(60));
}

fn overflowing(target: OverflowTarget) -> H {
    let mut p = practice("p", &["x"]);
    p.max_wait = Some(Duration::from_secs(90));
    p.overflow = target;
    let mut spare = agent("spare");
    spare.logged_in = false;
    spare.pools.push("backup".into());
    let mut cfg = config(vec![agent("x"), spare], vec![p]);
    cfg.pools.push(PoolDef {
        id: "backup".into(),
        members: vec![],
    });
    let mut h = H::new(cfg);
    h.arrive(1, "p");
    h.answer(1, "x");
    h.take();
    h
}

#[test]
fn the_max_wait_of_a_rearrival_runs_from_its_arrival() {
    let mut h = overflowing(OverflowTarget::Voicemail);
    // Joined 10 minutes ago, far past the 90 s maximum wait: no overflow
    // at once.
    rejoin(&mut h, 2, "p", 600).expect("re-arrival");
    assert_eq!(h.actions(), vec![]);
    assert_eq!(wait(&h, 2), Duration::from_secs(600));
    // A reconfiguration recomputes the maximum wait from the arrival too.
    let cfg = h.d.config().clone();
    h.d.reconfigure(cfg, h.t).expect("valid");
    h.collect();
    h.check();
    assert_eq!(h.actions(), vec![]);
    h.advance_ms(89_999);
    assert_eq!(h.actions(), vec![]);
    h.advance_ms(1);
    assert_eq!(
        h.actions(),
        vec![Action::Overflow {
            call: CallId(2),
            target: OverflowTarget::Voicemail,
        }]
    );
    // The wait reported runs from the join time.
    assert!(h.events().contains(&Event::Overflowed {
        call: CallId(2),
        target: OverflowTarget::Voicemail,
        wait: Duration::from_secs(690),
        reason: OverflowReason::MaxWait,
    }));
}

#[test]
fn a_rearrival_is_retargeted_to_the_pool_from_its_arrival() {
    let mut h = overflowing(OverflowTarget::Pool("backup".into()));
    rejoin(&mut h, 2, "p", 600).expect("re-arrival");
    assert!(!h.d.call(CallId(2), h.t).expect("known").retargeted);
    h.advance_ms(89_999);
    assert!(!h.d.call(CallId(2), h.t).expect("known").retargeted);
    h.advance_ms(1);
    assert!(h.events().contains(&Event::Retargeted {
        call: CallId(2),
        pool: "backup".into(),
        wait: Duration::from_secs(690),
    }));
}

#[test]
fn a_join_time_in_the_future_is_taken_as_now() {
    let mut h = two_steps();
    h.arrive(2, "p");
    h.advance(5);
    // Joining in an hour.
    rejoin(&mut h, 3, "p", -3600).expect("re-arrival");
    // Behind the call that joined before it, waiting from its arrival.
    assert_eq!(queue(&h, "p"), vec![2, 3]);
    assert_eq!(wait(&h, 3), Duration::ZERO);
    h.advance(10);
    assert_eq!(wait(&h, 3), Duration::from_secs(10));
    // Its steps relax from its arrival: call 2 reaches the pool agent at
    // 60 s, call 3 would at 65 s.
    h.advance(45);
    assert_eq!(h.offers(), vec![(2, "s".to_string())]);
    assert_eq!(h.d.call(CallId(3), h.t).expect("known").step, 0);
    h.advance_ms(4_999);
    assert_eq!(h.d.call(CallId(3), h.t).expect("known").step, 0);
    h.advance_ms(1);
    assert_eq!(h.d.call(CallId(3), h.t).expect("known").step, 1);
}

#[test]
fn waits_are_reported_from_the_join_time() {
    let mut h = H::new(config(vec![agent("x")], vec![practice("p", &["x"])]));
    rejoin(&mut h, 1, "p", 300).expect("re-arrival");
    h.expect_offer(1, "x");
    h.advance(2);
    h.take();
    h.answer(1, "x");
    assert!(h.events().contains(&Event::Answered {
        call: CallId(1),
        agent: "x".into(),
        wait: Duration::from_secs(302),
    }));
    rejoin(&mut h, 2, "p", 120).expect("re-arrival");
    h.arrive(3, "p");
    let q = h.d.queue_snapshot("p", h.t).expect("known");
    assert_eq!(q.oldest_wait, Some(Duration::from_secs(120)));
    h.advance(3);
    h.take();
    h.input(Input::CallAbandoned { call: CallId(2) })
        .expect("abandon");
    assert!(h.events().contains(&Event::Abandoned {
        call: CallId(2),
        phase: AbandonPhase::Queue,
        wait: Duration::from_secs(123),
        position: 1,
    }));
}

#[test]
fn the_estimated_wait_counts_an_older_rearrival_ahead() {
    let mut h = busy_agent(practice("p", &["x"]));
    h.arrive(2, "p");
    let alone = h.d.estimated_wait(CallId(2), h.t).expect("estimate");
    rejoin(&mut h, 3, "p", 60).expect("re-arrival");
    let behind = h.d.estimated_wait(CallId(2), h.t).expect("estimate");
    let first = h.d.estimated_wait(CallId(3), h.t).expect("estimate");
    assert!(behind > alone, "{behind:?} > {alone:?}");
    assert_eq!(first, alone);
}

/// Agent `x` of practice `p` (wrap-up 30 s) on call 1, call 2 waiting.
fn on_call_with_wrap_up() -> H {
    let mut p = practice("p", &["x"]);
    p.wrap_up = Some(Duration::from_secs(30));
    let mut h = busy_agent(p);
    h.arrive(2, "p");
    h.advance(40);
    h.take();
    h
}

#[test]
fn a_released_call_frees_the_agent_at_once() {
    let mut h = on_call_with_wrap_up();
    let aht = h.d.average_handle_time("p");
    release(&mut h, 1).expect("released");
    // No conversation: the practice's average handle time is unchanged.
    assert_eq!(h.d.average_handle_time("p"), aht);
    assert_eq!(
        h.events()[..2],
        [
            Event::CallCompleted {
                call: CallId(1),
                agent: "x".into(),
                talk: Duration::from_secs(40),
            },
            Event::AgentStateChanged {
                agent: "x".into(),
                from: AgentState::OnCall,
                to: AgentState::Available,
                reason: ChangeReason::CallEnded,
            },
        ]
    );
    // No wrap-up: the waiting call is offered at once.
    assert_eq!(h.offers(), vec![(2, "x".to_string())]);
    assert!(h.d.call(CallId(1), h.t).is_none());
    // A call that ends normally still gets its wrap-up.
    h.answer(2, "x");
    h.arrive(3, "p");
    h.take();
    h.end(2);
    assert_eq!(h.state("x"), AgentState::WrapUp);
    assert!(h.offers().is_empty());
}

#[test]
fn a_deferred_pause_applies_when_the_call_is_released() {
    let mut h = on_call_with_wrap_up();
    h.input(Input::AgentPause {
        agent: "x".into(),
        reason: "lunch".into(),
    })
    .expect("pause");
    assert_eq!(h.state("x"), AgentState::OnCall);
    release(&mut h, 1).expect("released");
    assert!(h.events().contains(&Event::AgentStateChanged {
        agent: "x".into(),
        from: AgentState::OnCall,
        to: AgentState::Paused,
        reason: ChangeReason::Pause("lunch".into()),
    }));
    let snap = h.d.agent("x").expect("x");
    assert_eq!(snap.pause_reason.as_deref(), Some("lunch"));
    assert!(h.offers().is_empty());
    h.advance(60);
    assert_eq!(h.state("x"), AgentState::Paused, "no wrap-up timer left");
}

#[test]
fn a_deferred_logout_applies_when_the_call_is_released() {
    let mut h = on_call_with_wrap_up();
    h.input(Input::AgentLogout { agent: "x".into() })
        .expect("logout");
    release(&mut h, 1).expect("released");
    assert_eq!(h.state("x"), AgentState::LoggedOut);
    assert!(h.offers().is_empty());
}

#[test]
fn releasing_an_unknown_or_unanswered_call_is_refused() {
    let mut h = on_call_with_wrap_up();
    assert_eq!(release(&mut h, 99), Err(AcdError::UnknownCall(CallId(99))));
    // Call 2 waits.
    assert!(matches!(
        release(&mut h, 2),
        Err(AcdError::WrongCallPhase {
            actual: "waiting",
            ..
        })
    ));
    assert_eq!(h.take(), vec![]);
    assert_eq!(h.state("x"), AgentState::OnCall);
    release(&mut h, 1).expect("released");
    // Call 2 now rings x.
    assert!(matches!(
        release(&mut h, 2),
        Err(AcdError::WrongCallPhase {
            actual: "ringing",
            ..
        })
    ));
    // Call 1 is gone.
    assert_eq!(release(&mut h, 1), Err(AcdError::UnknownCall(CallId(1))));
    assert_eq!(
        h.input(Input::CallEnded { call: CallId(1) }),
        Err(AcdError::UnknownCall(CallId(1)))
    );
}

#[test]
fn the_new_fields_serialize() {
    // Old arrivals, without the field, still parse.
    let old = serde_json::json!({ "call": 7, "practice": "p" });
    let a: CallArrival = serde_json::from_value(old).expect("old arrival");
    assert_eq!(a, CallArrival::new(CallId(7), "p"));
    let mut a = CallArrival::new(CallId(7), "p");
    a.joined_at = Some(utc("2026-01-12T08:50:00Z"));
    let json = serde_json::to_value(&a).expect("json");
    assert_eq!(json["joined_at"], "2026-01-12T08:50:00Z");
    let back: CallArrival = serde_json::from_value(json).expect("round trip");
    assert_eq!(back, a);
    let input = serde_json::to_value(Input::CallReleased { call: CallId(7) }).expect("json");
    let back: Input = serde_json::from_value(input).expect("round trip");
    assert_eq!(back, Input::CallReleased { call: CallId(7) });
}

/// A queued call whose caller asked to be called back never overflows out
/// at its maximum wait; a re-arrival flagged `callback` neither; an
/// ordinary call still does.
#[test]
fn a_callback_request_waits_past_the_maximum_wait() {
    let mut h = overflowing(OverflowTarget::Voicemail);
    h.arrive(2, "p");
    h.input(Input::CallbackRequested { call: CallId(2) })
        .expect("queued call");
    assert!(h
        .events()
        .contains(&Event::CallbackKept { call: CallId(2) }));
    let mut again = CallArrival::new(CallId(3), "p");
    again.callback = true;
    h.input(Input::CallArrived(again)).expect("arrival");
    h.arrive(4, "p");
    h.take();
    h.advance_ms(600_000);
    assert_eq!(
        h.actions(),
        vec![Action::Overflow {
            call: CallId(4),
            target: OverflowTarget::Voicemail,
        }]
    );
    assert_eq!(queue(&h, "p"), vec![2, 3]);
    // A connected call cannot become a callback request.
    assert!(h
        .input(Input::CallbackRequested { call: CallId(1) })
        .is_err());
}
