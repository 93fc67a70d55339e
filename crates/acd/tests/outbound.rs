//! Agents placing outbound calls: no offer while one is in progress, the
//! agent's state untouched, the count in the snapshot.

mod common;

use common::*;
use permanence_acd::*;

fn started(h: &mut H, agent: &str) -> Result<(), AcdError> {
    h.input(Input::AgentOutboundStarted {
        agent: agent.into(),
    })
}

fn ended(h: &mut H, agent: &str) -> Result<(), AcdError> {
    h.input(Input::AgentOutboundEnded {
        agent: agent.into(),
    })
}

fn outbound(h: &H, agent: &str) -> u32 {
    h.d.agent(agent).expect("known agent").outbound_calls
}

fn one_agent() -> H {
    H::new(config(vec![agent("x")], vec![practice("p", &["x"])]))
}

#[test]
fn available_agent_on_an_outbound_call_is_not_offered_until_it_ends() {
    let mut h = one_agent();
    h.take();
    started(&mut h, "x").expect("started");
    // The state does not change and nothing is reported.
    assert_eq!(h.state("x"), AgentState::Available);
    assert_eq!(h.take(), vec![]);
    let snap = h.d.agent("x").expect("x");
    assert_eq!(snap.outbound_calls, 1);
    assert!(!snap.dispatchable);
    h.arrive(1, "p");
    h.advance(60);
    assert!(h.offers().is_empty(), "offered during an outbound call");
    assert_eq!(
        h.d.call(CallId(1), h.t).expect("call").phase,
        CallPhase::Waiting
    );
    h.take();
    // Offered at once when the outbound call ends.
    ended(&mut h, "x").expect("ended");
    assert_eq!(h.offers(), vec![(1, "x".to_string())]);
    assert_eq!(h.state("x"), AgentState::Offered);
    assert_eq!(outbound(&h, "x"), 0);
}

#[test]
fn paused_agent_stays_paused_through_an_outbound_call() {
    let mut h = one_agent();
    h.input(Input::AgentPause {
        agent: "x".into(),
        reason: "callbacks".into(),
    })
    .expect("pause");
    h.arrive(1, "p");
    h.take();
    started(&mut h, "x").expect("started");
    assert_eq!(h.state("x"), AgentState::Paused);
    assert_eq!(outbound(&h, "x"), 1);
    ended(&mut h, "x").expect("ended");
    assert_eq!(h.state("x"), AgentState::Paused);
    let snap = h.d.agent("x").expect("x");
    assert_eq!(snap.pause_reason.as_deref(), Some("callbacks"));
    assert_eq!(snap.outbound_calls, 0);
    assert_eq!(h.take(), vec![], "no state change, no offer");
    // Unpausing during an outbound call makes the agent available, not
    // dispatchable.
    started(&mut h, "x").expect("started");
    h.input(Input::AgentUnpause { agent: "x".into() })
        .expect("unpause");
    assert_eq!(h.state("x"), AgentState::Available);
    assert!(h.offers().is_empty());
    ended(&mut h, "x").expect("ended");
    assert_eq!(h.offers(), vec![(1, "x".to_string())]);
}

#[test]
fn two_outbound_calls_need_two_ends() {
    let mut h = one_agent();
    started(&mut h, "x").expect("first");
    started(&mut h, "x").expect("second, the first on hold");
    assert_eq!(outbound(&h, "x"), 2);
    h.arrive(1, "p");
    ended(&mut h, "x").expect("one ends");
    assert_eq!(outbound(&h, "x"), 1);
    assert!(h.offers().is_empty());
    ended(&mut h, "x").expect("the other ends");
    assert_eq!(outbound(&h, "x"), 0);
    assert_eq!(h.offers(), vec![(1, "x".to_string())]);
}

#[test]
fn unknown_agent_is_refused_and_end_without_start_saturates() {
    let mut h = one_agent();
    h.take();
    assert!(matches!(
        started(&mut h, "ghost"),
        Err(AcdError::UnknownAgent(_))
    ));
    assert!(matches!(
        ended(&mut h, "ghost"),
        Err(AcdError::UnknownAgent(_))
    ));
    assert_eq!(h.take(), vec![]);
    // An end without a start leaves the count at 0.
    ended(&mut h, "x").expect("ended");
    assert_eq!(outbound(&h, "x"), 0);
    assert_eq!(h.take(), vec![]);
    started(&mut h, "x").expect("started");
    assert_eq!(outbound(&h, "x"), 1, "no debt left by the stray end");
    h.arrive(1, "p");
    assert!(h.offers().is_empty());
}

#[test]
fn starting_an_outbound_call_withdraws_a_ringing_offer() {
    let cfg = config(
        vec![agent("x"), agent("y")],
        vec![practice("p", &["x", "y"])],
    );
    let mut h = H::new(cfg);
    h.input(Input::AgentPause {
        agent: "y".into(),
        reason: "lunch".into(),
    })
    .expect("pause");
    h.arrive(1, "p");
    assert_eq!(h.offers(), vec![(1, "x".to_string())]);
    h.take();
    started(&mut h, "x").expect("started");
    assert!(h.actions().contains(&Action::CancelOffer {
        call: CallId(1),
        agent: "x".into(),
        reason: CancelReason::AgentOutbound,
    }));
    assert!(h.events().contains(&Event::OfferWithdrawn {
        call: CallId(1),
        agent: "x".into(),
        reason: CancelReason::AgentOutbound,
    }));
    // Not a ring-no-answer: no strike, and the agent is available again.
    let snap = h.d.agent("x").expect("x");
    assert_eq!(snap.state, AgentState::Available);
    assert_eq!(snap.strikes, 0);
    assert!(h.offers().is_empty());
    assert_eq!(
        h.d.call(CallId(1), h.t).expect("call").phase,
        CallPhase::Waiting
    );
    // The call goes to the next agent free.
    h.input(Input::AgentUnpause { agent: "y".into() })
        .expect("unpause");
    assert_eq!(h.offers(), vec![(1, "y".to_string())]);
    // A late answer from x is refused.
    assert!(matches!(
        h.input(Input::OfferAnswered {
            call: CallId(1),
            agent: "x".into()
        }),
        Err(AcdError::NotOffered { .. })
    ));
}

#[test]
fn a_consultation_call_during_an_inbound_call_holds_the_agent_after_it() {
    let mut h = one_agent();
    h.arrive(1, "p");
    h.answer(1, "x");
    // Consulting a colleague before transferring.
    started(&mut h, "x").expect("started");
    assert_eq!(h.state("x"), AgentState::OnCall);
    h.arrive(2, "p");
    h.end(1);
    assert_eq!(h.state("x"), AgentState::Available);
    h.take();
    h.advance(10);
    assert!(h.offers().is_empty());
    ended(&mut h, "x").expect("ended");
    assert_eq!(h.offers(), vec![(2, "x".to_string())]);
}

#[test]
fn an_agent_back_from_an_outbound_call_is_idle_from_its_end() {
    let cfg = config(
        vec![agent("x"), agent("y")],
        vec![practice("p", &["x", "y"])],
    );
    let mut h = H::new(cfg);
    started(&mut h, "x").expect("started");
    h.advance(30);
    // y is idle from now on; x was idle before, but on the phone since.
    h.input(Input::AgentPause {
        agent: "y".into(),
        reason: "coffee".into(),
    })
    .expect("pause");
    h.input(Input::AgentUnpause { agent: "y".into() })
        .expect("unpause");
    h.advance(30);
    ended(&mut h, "x").expect("ended");
    h.take();
    h.arrive(1, "p");
    assert_eq!(h.offers(), vec![(1, "y".to_string())]);
}

#[test]
fn reconfigure_keeps_outbound_counts_and_drops_removed_agents() {
    let cfg = config(
        vec![agent("x"), agent("y")],
        vec![practice("p", &["x", "y"])],
    );
    let mut h = H::new(cfg.clone());
    started(&mut h, "x").expect("x started");
    started(&mut h, "y").expect("y started");
    started(&mut h, "y").expect("y started again");
    // y removed while on outbound calls: gone.
    let only_x = config(vec![agent("x")], vec![practice("p", &["x"])]);
    h.d.reconfigure(only_x, h.t).expect("valid");
    h.collect();
    h.check();
    assert!(h.d.agent("y").is_none());
    assert!(matches!(ended(&mut h, "y"), Err(AcdError::UnknownAgent(_))));
    assert_eq!(outbound(&h, "x"), 1);
    h.arrive(1, "p");
    assert!(h.offers().is_empty(), "x still on its outbound call");
    // y re-added: a new agent, with no outbound call.
    h.d.reconfigure(cfg, h.t).expect("valid");
    h.collect();
    h.check();
    assert_eq!(outbound(&h, "y"), 0);
    assert_eq!(outbound(&h, "x"), 1);
    assert_eq!(h.offers(), vec![(1, "y".to_string())]);
}

#[test]
fn logged_out_agent_on_an_outbound_call_logs_in_undispatchable() {
    let mut h = one_agent();
    h.input(Input::AgentLogout { agent: "x".into() })
        .expect("logout");
    started(&mut h, "x").expect("started");
    assert_eq!(h.state("x"), AgentState::LoggedOut);
    h.arrive(1, "p");
    h.input(Input::AgentLogin { agent: "x".into() })
        .expect("login");
    assert_eq!(h.state("x"), AgentState::Available);
    assert!(h.offers().is_empty());
    ended(&mut h, "x").expect("ended");
    assert_eq!(h.offers(), vec![(1, "x".to_string())]);
}

#[test]
fn the_snapshot_serializes_the_count() {
    let mut h = one_agent();
    started(&mut h, "x").expect("started");
    let json = serde_json::to_value(h.d.agent("x").expect("x")).expect("json");
    assert_eq!(json["outbound_calls"], 1);
    let input =
        serde_json::to_value(Input::AgentOutboundStarted { agent: "x".into() }).expect("json");
    let back: Input = serde_json::from_value(input).expect("round trip");
    assert_eq!(back, Input::AgentOutboundStarted { agent: "x".into() });
}
