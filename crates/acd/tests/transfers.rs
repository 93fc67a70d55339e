//! Calls an agent passed back to the dispatcher: at the head of the queue
//! (`CallArrival::head`, a failed blind transfer) or for one agent or pool
//! only (`CallArrival::target`, a blind transfer to a colleague or a pool).

mod common;

use std::time::Duration;

use common::*;
use permanence_acd::*;

/// An arrival of call `call` for `practice`.
fn arrival(call: u64, practice: &str) -> CallArrival {
    CallArrival::new(CallId(call), practice)
}

fn head(call: u64, practice: &str) -> CallArrival {
    let mut a = arrival(call, practice);
    a.head = true;
    a
}

fn to_agent(call: u64, practice: &str, agent: &str) -> CallArrival {
    let mut a = arrival(call, practice);
    a.target = Some(ArrivalTarget::Agent(agent.into()));
    a
}

fn to_pool(call: u64, practice: &str, pool: &str) -> CallArrival {
    let mut a = arrival(call, practice);
    a.target = Some(ArrivalTarget::Pool(pool.into()));
    a
}

fn send(h: &mut H, a: CallArrival) {
    h.input(Input::CallArrived(a)).expect("arrival accepted");
}

/// The practice queue, in queue order.
fn queue(h: &H, practice: &str) -> Vec<u64> {
    let q = h.d.queue_snapshot(practice, h.t).expect("known practice");
    q.calls.iter().map(|c| c.call.0).collect()
}

fn snap(h: &H, call: u64) -> CallSnapshot {
    h.d.call(CallId(call), h.t).expect("known call")
}

fn release(h: &mut H, call: u64) {
    h.input(Input::CallReleased { call: CallId(call) })
        .expect("released");
}

fn reconfigure(h: &mut H, cfg: AcdConfig) {
    h.d.reconfigure(cfg, h.t).expect("valid configuration");
    h.collect();
    h.check();
}

/// One agent `x` dedicated to `p`, busy with call 1.
fn busy_agent() -> H {
    let mut h = H::new(config(vec![agent("x")], vec![practice("p", &["x"])]));
    h.arrive(1, "p");
    h.answer(1, "x");
    h.take();
    h
}

#[test]
fn a_head_arrival_goes_before_an_earlier_urgent_call() {
    let mut h = busy_agent();
    h.arrive_prio(2, "p", 10);
    h.advance(60);
    h.arrive(3, "p");
    // Back from a failed transfer: it joined 5 minutes ago, base priority.
    let mut a = head(4, "p");
    a.joined_at = Some(h.t - chrono::Duration::seconds(300));
    send(&mut h, a);
    assert_eq!(queue(&h, "p"), vec![4, 2, 3]);
    let s = snap(&h, 4);
    assert!(s.head);
    assert_eq!((s.position, s.priority), (1, 0));
    // The wait is still reported from the join time.
    assert_eq!(s.wait, Duration::from_secs(300));
    // A priority change does not move it off the head.
    h.input(Input::SetPriority {
        call: CallId(4),
        priority: -5,
    })
    .expect("waiting call");
    h.input(Input::SetPriority {
        call: CallId(2),
        priority: 1000,
    })
    .expect("waiting call");
    assert_eq!(queue(&h, "p"), vec![4, 2, 3]);
    h.take();
    release(&mut h, 1);
    assert_eq!(h.offers(), vec![(4, "x".to_string())]);
    h.take();
    h.answer(4, "x");
    assert!(h.events().contains(&Event::Answered {
        call: CallId(4),
        agent: "x".into(),
        wait: Duration::from_secs(300),
    }));
    h.take();
    release(&mut h, 4);
    assert_eq!(h.offers(), vec![(2, "x".to_string())]);
}

#[test]
fn head_arrivals_are_first_come_first_served() {
    let mut h = busy_agent();
    h.arrive_prio(2, "p", 3);
    // Call 3 comes back first; call 4 joined earlier and is more urgent,
    // but came back later.
    let mut a = head(3, "p");
    a.joined_at = Some(h.t - chrono::Duration::seconds(60));
    send(&mut h, a);
    h.advance(1);
    let mut a = head(4, "p");
    a.joined_at = Some(h.t - chrono::Duration::seconds(600));
    a.priority = Some(9);
    send(&mut h, a);
    send(&mut h, head(5, "p"));
    assert_eq!(queue(&h, "p"), vec![3, 4, 5, 2]);
    h.take();
    let mut current = 1;
    for call in [3, 4, 5, 2] {
        release(&mut h, current);
        assert_eq!(h.offers(), vec![(call, "x".to_string())]);
        h.answer(call, "x");
        h.take();
        current = call;
    }
}

#[test]
fn a_head_call_goes_first_in_a_pool_shared_with_other_practices() {
    let mut s = agent("s");
    s.pools.push("shared".into());
    let pooled = |id: &str| {
        let mut p = practice(id, &[]);
        p.steps = vec![RoutingStep {
            after: Duration::ZERO,
            select: Selector {
                pool: Some("shared".into()),
                ..Selector::default()
            },
        }];
        p
    };
    let mut cfg = config(vec![s], vec![pooled("p"), pooled("q")]);
    cfg.pools.push(PoolDef {
        id: "shared".into(),
        members: vec![],
    });
    let mut h = H::new(cfg);
    h.arrive(1, "p");
    h.answer(1, "s");
    h.arrive_prio(2, "q", 5);
    send(&mut h, head(3, "p"));
    h.take();
    release(&mut h, 1);
    assert_eq!(h.offers(), vec![(3, "s".to_string())]);
}

/// Practice `p`: agents `x`, `y`, `z` dedicated, then after 20 s the
/// shared pool (`s`, logged out at first); pool `cardio` = `y`, `z`.
fn team(max_wait: Option<u64>, overflow: OverflowTarget) -> AcdConfig {
    let mut p = practice("p", &["x", "y", "z"]);
    p.steps.push(RoutingStep {
        after: Duration::from_secs(20),
        select: Selector {
            pool: Some("shared".into()),
            ..Selector::default()
        },
    });
    p.max_wait = max_wait.map(Duration::from_secs);
    p.overflow = overflow;
    let mut s = agent("s");
    s.pools.push("shared".into());
    s.logged_in = false;
    let mut cfg = config(vec![agent("x"), agent("y"), agent("z"), s], vec![p]);
    cfg.pools.push(PoolDef {
        id: "shared".into(),
        members: vec![],
    });
    cfg.pools.push(PoolDef {
        id: "cardio".into(),
        members: vec!["y".into(), "z".into()],
    });
    cfg
}

fn login(h: &mut H, agent: &str) {
    h.input(Input::AgentLogin {
        agent: agent.into(),
    })
    .expect("known agent");
}

#[test]
fn a_call_transferred_to_an_agent_is_offered_to_that_agent_only() {
    let mut h = H::new(team(None, OverflowTarget::Voicemail));
    // x has been idle longest, yet the call goes to z.
    h.advance(5);
    send(&mut h, to_agent(1, "p", "z"));
    assert_eq!(h.offers(), vec![(1, "z".to_string())]);
    assert_eq!(snap(&h, 1).target, Some(ArrivalTarget::Agent("z".into())));
    h.answer(1, "z");
    h.take();
    // z busy: a call for z waits, though x and y are free.
    send(&mut h, to_agent(2, "p", "z"));
    assert_eq!(h.offers(), vec![]);
    // The routing steps do not widen it: the shared pool's agent, logged
    // in after the 20 s step, does not get it either.
    login(&mut h, "s");
    h.advance(120);
    assert_eq!(h.offers(), vec![]);
    assert_eq!(snap(&h, 2).step, 0);
    // An ordinary call arriving now is served at once by another agent.
    h.arrive(3, "p");
    h.expect_offer(3, "x");
    h.answer(3, "x");
    h.take();
    // z frees up: the transferred call is offered to z.
    release(&mut h, 1);
    assert_eq!(h.offers(), vec![(2, "z".to_string())]);
    h.take();
    // Ring-no-answer: back to the queue, for z only (after its back-off).
    h.advance(20);
    assert!(h.events().iter().any(|e| matches!(
        e,
        Event::Rona {
            call: CallId(2),
            ..
        }
    )));
    assert_eq!(h.offers(), vec![]);
    h.advance(10);
    assert_eq!(h.offers(), vec![(2, "z".to_string())]);
}

#[test]
fn a_transferred_call_waits_for_a_paused_or_logged_out_agent() {
    let mut h = H::new(team(None, OverflowTarget::Voicemail));
    h.input(Input::AgentPause {
        agent: "y".into(),
        reason: "lunch".into(),
    })
    .expect("pause");
    send(&mut h, to_agent(1, "p", "y"));
    assert_eq!(h.offers(), vec![]);
    h.input(Input::AgentOutboundStarted { agent: "y".into() })
        .expect("outbound");
    h.input(Input::AgentUnpause { agent: "y".into() })
        .expect("unpause");
    assert_eq!(h.offers(), vec![], "y is on an outbound call");
    h.input(Input::AgentOutboundEnded { agent: "y".into() })
        .expect("outbound");
    assert_eq!(h.offers(), vec![(1, "y".to_string())]);
}

#[test]
fn the_maximum_wait_still_overflows_a_call_waiting_for_an_absent_colleague() {
    let mut h = H::new(team(Some(90), OverflowTarget::Voicemail));
    h.input(Input::AgentLogout { agent: "y".into() })
        .expect("logout");
    h.advance(30);
    // Joined long ago: the maximum wait still runs from the arrival.
    let mut a = to_agent(1, "p", "y");
    a.joined_at = Some(h.t - chrono::Duration::seconds(600));
    send(&mut h, a);
    h.take();
    h.advance_ms(89_999);
    assert_eq!(h.actions(), vec![]);
    h.advance_ms(1);
    assert_eq!(
        h.actions(),
        vec![Action::Overflow {
            call: CallId(1),
            target: OverflowTarget::Voicemail,
        }]
    );
    assert!(h.events().contains(&Event::Overflowed {
        call: CallId(1),
        target: OverflowTarget::Voicemail,
        wait: Duration::from_secs(690),
        reason: OverflowReason::MaxWait,
    }));
}

#[test]
fn a_pool_overflow_opens_a_transferred_call_to_the_pool() {
    let mut h = H::new(team(Some(60), OverflowTarget::Pool("shared".into())));
    login(&mut h, "s");
    h.input(Input::AgentLogout { agent: "y".into() })
        .expect("logout");
    h.take();
    send(&mut h, to_agent(1, "p", "y"));
    h.advance_ms(59_999);
    assert_eq!(h.offers(), vec![]);
    h.advance_ms(1);
    assert!(h.events().contains(&Event::Retargeted {
        call: CallId(1),
        pool: "shared".into(),
        wait: Duration::from_secs(60),
    }));
    // Still not the practice's other agents: only the overflow pool's.
    assert_eq!(h.offers(), vec![(1, "s".to_string())]);
}

#[test]
fn a_callback_request_for_an_agent_waits_past_the_maximum_wait() {
    let mut h = H::new(team(Some(60), OverflowTarget::Voicemail));
    h.input(Input::AgentLogout { agent: "y".into() })
        .expect("logout");
    let mut a = to_agent(1, "p", "y");
    a.callback = true;
    send(&mut h, a);
    h.advance(600);
    assert_eq!(h.actions(), vec![]);
    login(&mut h, "y");
    assert_eq!(h.offers(), vec![(1, "y".to_string())]);
}

#[test]
fn a_call_transferred_to_a_pool_goes_to_its_members_only() {
    let mut h = H::new(team(None, OverflowTarget::Voicemail));
    // z has been idle longest among the pool's members (y answered a call).
    h.arrive(1, "p");
    h.expect_offer(1, "x");
    h.answer(1, "x");
    h.arrive(2, "p");
    h.expect_offer(2, "y");
    h.answer(2, "y");
    h.advance(5);
    release(&mut h, 2);
    h.take();
    send(&mut h, to_pool(3, "p", "cardio"));
    assert_eq!(h.offers(), vec![(3, "z".to_string())]);
    h.answer(3, "z");
    h.take();
    send(&mut h, to_pool(4, "p", "cardio"));
    assert_eq!(h.offers(), vec![(4, "y".to_string())]);
    h.answer(4, "y");
    h.take();
    // Both members busy: the call waits, x (free soon) never gets it.
    send(&mut h, to_pool(5, "p", "cardio"));
    release(&mut h, 1);
    h.advance(60);
    assert_eq!(h.offers(), vec![]);
    assert_eq!(h.state("x"), AgentState::Available);
    release(&mut h, 3);
    assert_eq!(h.offers(), vec![(5, "z".to_string())]);
}

#[test]
fn a_head_call_for_an_agent_goes_before_that_agents_other_calls() {
    let mut h = H::new(team(None, OverflowTarget::Voicemail));
    send(&mut h, to_agent(1, "p", "y"));
    h.answer(1, "y");
    let mut urgent = to_agent(2, "p", "y");
    urgent.priority = Some(50);
    send(&mut h, urgent);
    let mut back = to_agent(3, "p", "y");
    back.head = true;
    send(&mut h, back);
    h.take();
    release(&mut h, 1);
    assert_eq!(h.offers(), vec![(3, "y".to_string())]);
}

#[test]
fn an_unknown_target_is_refused_and_nothing_is_queued() {
    let mut h = H::new(team(None, OverflowTarget::Voicemail));
    h.take();
    assert_eq!(
        h.input(Input::CallArrived(to_agent(1, "p", "nobody"))),
        Err(AcdError::UnknownAgent("nobody".into()))
    );
    assert_eq!(
        h.input(Input::CallArrived(to_pool(1, "p", "nopool"))),
        Err(AcdError::UnknownPool("nopool".into()))
    );
    assert_eq!(h.take(), vec![]);
    assert!(h.d.call(CallId(1), h.t).is_none());
    // An agent a reconfiguration removed while on a call is unknown too.
    send(&mut h, to_agent(2, "p", "z"));
    h.answer(2, "z");
    let mut cfg = team(None, OverflowTarget::Voicemail);
    cfg.agents.retain(|a| a.id.as_str() != "z");
    cfg.pools[1].members.retain(|m| m.as_str() != "z");
    cfg.practices[0]
        .dedicated_agents
        .retain(|m| m.as_str() != "z");
    reconfigure(&mut h, cfg);
    assert!(h.d.agent("z").expect("retired").retired);
    h.take();
    assert_eq!(
        h.input(Input::CallArrived(to_agent(3, "p", "z"))),
        Err(AcdError::UnknownAgent("z".into()))
    );
    assert_eq!(h.take(), vec![]);
    // The driver then queues it untargeted.
    h.arrive(3, "p");
    h.expect_offer(3, "x");
}

#[test]
fn a_reconfiguration_keeps_head_and_target() {
    let mut h = H::new(team(Some(300), OverflowTarget::Voicemail));
    send(&mut h, to_agent(1, "p", "y"));
    h.answer(1, "y");
    h.arrive(2, "p");
    h.answer(2, "x");
    h.arrive(3, "p");
    h.answer(3, "z");
    h.arrive_prio(4, "p", 5);
    send(&mut h, to_agent(5, "p", "y"));
    send(&mut h, to_pool(6, "p", "cardio"));
    let mut a = head(7, "p");
    a.target = Some(ArrivalTarget::Agent("y".into()));
    send(&mut h, a);
    send(&mut h, head(8, "p"));
    h.advance(30);
    let before = queue(&h, "p");
    assert_eq!(before, vec![7, 8, 4, 5, 6]);
    reconfigure(&mut h, team(Some(300), OverflowTarget::Voicemail));
    assert_eq!(queue(&h, "p"), before);
    assert!(snap(&h, 7).head && snap(&h, 8).head && !snap(&h, 4).head);
    assert_eq!(snap(&h, 7).target, Some(ArrivalTarget::Agent("y".into())));
    assert_eq!(
        snap(&h, 6).target,
        Some(ArrivalTarget::Pool("cardio".into()))
    );
    h.take();
    // x frees up: the best call it may take is 8 (7 and 5 are for y, 6
    // for the pool).
    release(&mut h, 2);
    assert_eq!(h.offers(), vec![(8, "x".to_string())]);
    h.answer(8, "x");
    h.take();
    // y frees up: the head call for y.
    release(&mut h, 1);
    assert_eq!(h.offers(), vec![(7, "y".to_string())]);
    h.answer(7, "y");
    h.take();
    // z frees up: the urgent call 4 before the pool call 6 (same band).
    release(&mut h, 3);
    assert_eq!(h.offers(), vec![(4, "z".to_string())]);
}

#[test]
fn a_target_removed_by_a_reconfiguration_is_dropped() {
    let mut h = H::new(team(None, OverflowTarget::Voicemail));
    for (call, agent) in [(1, "x"), (2, "y")] {
        h.arrive(call, "p");
        h.answer(call, agent);
    }
    h.input(Input::AgentLogout { agent: "z".into() })
        .expect("logout");
    let mut a = to_agent(3, "p", "z");
    a.head = true;
    send(&mut h, a);
    send(&mut h, to_pool(4, "p", "cardio"));
    h.arrive_prio(5, "p", 5);
    h.take();
    // z leaves the configuration, and the pool with it.
    let mut cfg = team(None, OverflowTarget::Voicemail);
    cfg.agents.retain(|a| a.id.as_str() != "z");
    cfg.pools.retain(|p| p.id.as_str() != "cardio");
    cfg.practices[0]
        .dedicated_agents
        .retain(|m| m.as_str() != "z");
    reconfigure(&mut h, cfg);
    // Both are ordinary calls of the practice now, in their places; the
    // head call is still at the head.
    assert_eq!(snap(&h, 3).target, None);
    assert_eq!(snap(&h, 4).target, None);
    assert!(snap(&h, 3).head);
    assert_eq!(queue(&h, "p"), vec![3, 5, 4]);
    // The practice's agents take them, in that order.
    release(&mut h, 1);
    assert_eq!(h.offers(), vec![(3, "x".to_string())]);
    release(&mut h, 2);
    assert_eq!(h.offers(), vec![(3, "x".to_string()), (5, "y".to_string())]);
    // And the routing steps apply again: after 20 s, the shared pool.
    login(&mut h, "s");
    h.take();
    h.advance(20);
    assert_eq!(h.offers(), vec![(4, "s".to_string())]);
    // Re-adding z does not bring the target back.
    reconfigure(&mut h, team(None, OverflowTarget::Voicemail));
    assert_eq!(snap(&h, 4).target, None);
}

#[test]
fn an_offer_ringing_an_agent_the_target_no_longer_allows_is_withdrawn() {
    let mut h = H::new(team(None, OverflowTarget::Voicemail));
    h.arrive(1, "p");
    h.answer(1, "x");
    h.take();
    // y and z equally idle: y first (configuration order).
    send(&mut h, to_pool(3, "p", "cardio"));
    send(&mut h, to_pool(4, "p", "cardio"));
    assert_eq!(h.offers(), vec![(3, "y".to_string()), (4, "z".to_string())]);
    h.take();
    // y leaves the pool (not the configuration) while call 3 rings it;
    // z stays in it: its offer rings on.
    let mut cfg = team(None, OverflowTarget::Voicemail);
    cfg.pools[1].members.retain(|m| m.as_str() != "y");
    reconfigure(&mut h, cfg);
    assert_eq!(
        h.actions(),
        vec![Action::CancelOffer {
            call: CallId(3),
            agent: "y".into(),
            reason: CancelReason::Reconfigured,
        }]
    );
    assert_eq!(snap(&h, 3).phase, CallPhase::Waiting);
    assert_eq!(snap(&h, 4).agent, Some("z".into()));
    assert_eq!(h.state("y"), AgentState::Available);
    // z is the only member left: call 3 waits for it.
    h.answer(4, "z");
    h.take();
    release(&mut h, 4);
    assert_eq!(h.offers(), vec![(3, "z".to_string())]);
}

#[test]
fn a_dedicated_group_and_an_agent_target_share_the_agents_group() {
    let mut h = H::new(team(None, OverflowTarget::Voicemail));
    let groups = h.d.group_count();
    send(&mut h, to_agent(1, "p", "y"));
    send(&mut h, to_agent(2, "p", "y"));
    send(&mut h, to_pool(3, "p", "cardio"));
    // One group for y, one for the pool; the second call reuses y's.
    assert_eq!(h.d.group_count(), groups + 2);
}

#[test]
fn the_new_fields_serialize_and_old_arrivals_parse() {
    let old = serde_json::json!({ "call": 7, "practice": "p", "priority": 2 });
    let a: CallArrival = serde_json::from_value(old).expect("old arrival");
    assert!(!a.head);
    assert_eq!(a.target, None);
    let mut a = head(7, "p");
    a.target = Some(ArrivalTarget::Agent("x".into()));
    let json = serde_json::to_value(&a).expect("json");
    assert_eq!(json["head"], true);
    assert_eq!(json["target"], serde_json::json!({ "agent": "x" }));
    let back: CallArrival = serde_json::from_value(json).expect("round trip");
    assert_eq!(back, a);
    let pool: ArrivalTarget =
        serde_json::from_value(serde_json::json!({ "pool": "cardio" })).expect("pool");
    assert_eq!(pool, ArrivalTarget::Pool("cardio".into()));
    // Old snapshots parse too.
    let mut s = serde_json::to_value(CallSnapshot {
        call: CallId(1),
        practice: None,
        phase: CallPhase::Waiting,
        agent: None,
        priority: 0,
        wait: Duration::ZERO,
        step: 0,
        retargeted: false,
        position: 1,
        estimated_wait: None,
        head: true,
        target: None,
    })
    .expect("json");
    let obj = s.as_object_mut().expect("object");
    obj.remove("head");
    obj.remove("target");
    let back: CallSnapshot = serde_json::from_value(s).expect("old snapshot");
    assert!(!back.head);
}
