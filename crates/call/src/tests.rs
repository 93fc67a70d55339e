use super::*;
use std::time::Duration;

fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + s, 0).expect("valid")
}

fn drain(c: &mut Call) -> Vec<Action> {
    std::iter::from_fn(|| c.poll_output())
        .filter_map(Output::action)
        .collect()
}

fn drain_all(c: &mut Call) -> Vec<Output> {
    std::iter::from_fn(|| c.poll_output()).collect()
}

fn menu() -> TriageMenu {
    TriageMenu {
        timeout: Duration::from_secs(5),
        default: Some('2'),
        options: vec![
            TriageChoice {
                digit: '1',
                direct_route: false,
            },
            TriageChoice {
                digit: '2',
                direct_route: false,
            },
            TriageChoice {
                digit: '7',
                direct_route: true,
            },
        ],
    }
}

fn agent(a: &str) -> AgentId {
    AgentId::from(a)
}

fn queued(settings: CallSettings) -> Call {
    let mut c = Call::new(settings);
    c.handle(Input::Start { open: true }, t(0));
    c.handle(Input::PlaybackFinished, t(4));
    drain(&mut c);
    assert_eq!(c.phase(), &Phase::Queued { ringing: None });
    c
}

#[test]
fn greeting_then_queue_with_hold_audio() {
    let mut c = Call::new(CallSettings::default());
    c.handle(Input::Start { open: true }, t(0));
    assert_eq!(
        drain(&mut c),
        vec![
            Action::Answer,
            Action::Play(Playlist::once(Prompt::Greeting))
        ]
    );
    c.handle(Input::PlaybackFinished, t(4));
    assert_eq!(
        drain(&mut c),
        vec![
            Action::Enqueue { triage: None },
            Action::Play(Playlist::looped(Prompt::Hold))
        ]
    );
}

#[test]
fn closed_practice_plays_closed_prompt_then_hangs_up() {
    let mut c = Call::new(CallSettings::default());
    c.handle(Input::Start { open: false }, t(0));
    assert_eq!(
        drain(&mut c),
        vec![Action::Answer, Action::Play(Playlist::once(Prompt::Closed))]
    );
    c.handle(Input::PlaybackFinished, t(12));
    assert_eq!(
        drain(&mut c),
        vec![Action::HangUp, Action::Finished(EndReason::Closed)]
    );
}

#[test]
fn dispatcher_closed_after_queueing() {
    let mut c = queued(CallSettings::default());
    c.handle(Input::Closed, t(5));
    assert_eq!(
        drain(&mut c),
        vec![Action::Play(Playlist::once(Prompt::Closed))]
    );
    c.handle(Input::CallerBye, t(6));
    // The dispatcher already ended the call: no abandon report.
    assert_eq!(drain(&mut c), vec![Action::Finished(EndReason::Closed)]);
}

#[test]
fn triage_digit_during_greeting_or_menu() {
    let s = CallSettings {
        triage: Some(menu()),
        ..CallSettings::default()
    };
    // Barge-in during the greeting.
    let mut c = Call::new(s.clone());
    c.handle(Input::Start { open: true }, t(0));
    drain(&mut c);
    c.handle(Input::Dtmf('1'), t(2));
    assert_eq!(
        drain(&mut c),
        vec![
            Action::Enqueue { triage: Some('1') },
            Action::Play(Playlist::looped(Prompt::Hold))
        ]
    );
    // After the greeting, the menu; a wrong key replays it; then '1'.
    let mut c = Call::new(s.clone());
    c.handle(Input::Start { open: true }, t(0));
    c.handle(Input::PlaybackFinished, t(4));
    assert_eq!(
        drain(&mut c)[2..],
        [Action::Play(Playlist::once(Prompt::Triage))]
    );
    c.handle(Input::Dtmf('9'), t(5));
    assert_eq!(
        drain(&mut c),
        vec![Action::Play(Playlist::once(Prompt::Triage))]
    );
    c.handle(Input::Dtmf('1'), t(6));
    assert_eq!(drain(&mut c)[0], Action::Enqueue { triage: Some('1') });
    assert_eq!(c.triage_choice(), Some('1'));
}

#[test]
fn triage_timeout_takes_default_after_menu_played() {
    let mut c = Call::new(CallSettings {
        triage: Some(menu()),
        ..CallSettings::default()
    });
    c.handle(Input::Start { open: true }, t(0));
    c.handle(Input::PlaybackFinished, t(4)); // greeting done, menu plays
    drain(&mut c);
    // The timeout only starts when the menu has been heard.
    assert_eq!(c.poll_timeout(), Some(t(4 * 3600)));
    c.handle(Input::PlaybackFinished, t(10));
    assert_eq!(c.poll_timeout(), Some(t(15)));
    c.handle_timeout(t(14));
    assert_eq!(drain(&mut c), vec![]);
    c.handle_timeout(t(15));
    assert_eq!(
        drain(&mut c),
        vec![
            Action::Enqueue { triage: Some('2') },
            Action::Play(Playlist::looped(Prompt::Hold))
        ]
    );
}

#[test]
fn direct_route_then_fallback_to_queue() {
    let mut c = Call::new(CallSettings {
        triage: Some(menu()),
        ..CallSettings::default()
    });
    c.handle(Input::Start { open: true }, t(0));
    drain(&mut c);
    c.handle(Input::Dtmf('7'), t(1));
    assert_eq!(
        drain(&mut c),
        vec![
            Action::Play(Playlist::looped(Prompt::Hold)),
            Action::Transfer { digit: '7' }
        ]
    );
    c.handle(Input::TransferFailed, t(30));
    assert_eq!(
        drain(&mut c),
        vec![
            Action::Enqueue { triage: Some('7') },
            Action::Play(Playlist::looped(Prompt::Hold))
        ]
    );
    // And a successful transfer.
    let mut c = Call::new(CallSettings {
        triage: Some(menu()),
        ..CallSettings::default()
    });
    c.handle(Input::Start { open: true }, t(0));
    c.handle(Input::Dtmf('7'), t(1));
    c.handle(Input::TransferAnswered, t(8));
    c.handle(Input::TransferBye, t(60));
    let a = drain(&mut c);
    assert!(a.contains(&Action::Bridge));
    assert_eq!(a.last(), Some(&Action::Finished(EndReason::Transferred)));
}

#[test]
fn offer_answer_bridge_and_caller_hangs_up() {
    let mut c = queued(CallSettings::default());
    c.handle(
        Input::Offer {
            agent: agent("alice"),
        },
        t(10),
    );
    assert_eq!(
        drain(&mut c),
        vec![Action::InviteAgent {
            agent: agent("alice")
        }]
    );
    c.handle(
        Input::AgentAnswered {
            agent: agent("alice"),
        },
        t(15),
    );
    assert_eq!(
        drain(&mut c),
        vec![
            Action::ReportAnswered {
                agent: agent("alice")
            },
            Action::Bridge
        ]
    );
    c.handle(Input::CallerBye, t(100));
    assert_eq!(
        drain(&mut c),
        vec![
            Action::Unbridge,
            Action::HangUpAgent {
                agent: agent("alice")
            },
            Action::ReportEnded,
            Action::Finished(EndReason::CallerHangup)
        ]
    );
}

#[test]
fn agent_hangs_up_hold_and_unhold() {
    let mut c = queued(CallSettings::default());
    c.handle(
        Input::Offer {
            agent: agent("bob"),
        },
        t(10),
    );
    c.handle(
        Input::AgentAnswered {
            agent: agent("bob"),
        },
        t(12),
    );
    drain(&mut c);
    c.handle(Input::AgentHold, t(20));
    assert_eq!(
        drain(&mut c),
        vec![
            Action::Unbridge,
            Action::Play(Playlist::looped(Prompt::Hold))
        ]
    );
    c.handle(Input::AgentHold, t(21));
    assert_eq!(drain(&mut c), vec![]);
    c.handle(Input::AgentUnhold, t(30));
    assert_eq!(drain(&mut c), vec![Action::Bridge]);
    c.handle(Input::AgentBye, t(90));
    assert_eq!(
        drain(&mut c),
        vec![
            Action::Unbridge,
            Action::HangUp,
            Action::ReportEnded,
            Action::Finished(EndReason::AgentHangup)
        ]
    );
}

#[test]
fn failed_and_cancelled_offers_go_back_to_the_queue() {
    let mut c = queued(CallSettings::default());
    c.handle(
        Input::Offer {
            agent: agent("bob"),
        },
        t(10),
    );
    c.handle(
        Input::AgentFailed {
            agent: agent("bob"),
            reason: OfferFailure::Busy,
        },
        t(11),
    );
    assert_eq!(
        drain(&mut c)[1..],
        [Action::ReportOfferFailed {
            agent: agent("bob"),
            reason: OfferFailure::Busy
        }]
    );
    assert_eq!(c.phase(), &Phase::Queued { ringing: None });
    c.handle(
        Input::Offer {
            agent: agent("carol"),
        },
        t(12),
    );
    c.handle(
        Input::OfferCancelled {
            agent: agent("carol"),
        },
        t(32),
    );
    assert_eq!(
        drain(&mut c)[1..],
        [Action::CancelAgent {
            agent: agent("carol")
        }]
    );
    // Carol answers after the withdrawal: her leg is hung up, the caller
    // keeps waiting.
    c.handle(
        Input::AgentAnswered {
            agent: agent("carol"),
        },
        t(33),
    );
    assert_eq!(
        drain(&mut c),
        vec![Action::HangUpAgent {
            agent: agent("carol")
        }]
    );
    assert_eq!(c.phase(), &Phase::Queued { ringing: None });
}

#[test]
fn answer_refused_by_dispatcher_requeues() {
    let mut c = queued(CallSettings::default());
    c.handle(
        Input::Offer {
            agent: agent("bob"),
        },
        t(10),
    );
    c.handle(
        Input::AgentAnswered {
            agent: agent("bob"),
        },
        t(11),
    );
    drain(&mut c);
    c.handle(
        Input::AnswerRefused {
            agent: agent("bob"),
        },
        t(11),
    );
    assert_eq!(
        drain(&mut c),
        vec![
            Action::Unbridge,
            Action::HangUpAgent {
                agent: agent("bob")
            },
            Action::Play(Playlist::looped(Prompt::Hold))
        ]
    );
    assert_eq!(c.phase(), &Phase::Queued { ringing: None });
}

#[test]
fn abandon_in_queue_and_while_ringing() {
    let mut c = queued(CallSettings::default());
    c.handle(Input::CallerBye, t(30));
    assert_eq!(
        drain(&mut c),
        vec![
            Action::ReportAbandoned,
            Action::Finished(EndReason::AbandonedInQueue)
        ]
    );
    let mut c = queued(CallSettings::default());
    c.handle(
        Input::Offer {
            agent: agent("alice"),
        },
        t(10),
    );
    drain(&mut c);
    c.handle(Input::CallerBye, t(12));
    assert_eq!(
        drain(&mut c),
        vec![
            Action::CancelAgent {
                agent: agent("alice")
            },
            Action::ReportAbandoned,
            Action::Finished(EndReason::AbandonedRinging)
        ]
    );
}

#[test]
fn hangup_before_queue_is_not_reported_to_the_dispatcher() {
    let mut c = Call::new(CallSettings::default());
    c.handle(Input::Start { open: true }, t(0));
    drain(&mut c);
    c.handle(Input::CallerBye, t(2));
    assert_eq!(
        drain(&mut c),
        vec![Action::Finished(EndReason::CallerHangupBeforeQueue)]
    );
}

#[test]
fn overflow_to_voicemail_records_then_ends() {
    let mut c = queued(CallSettings {
        voicemail_max: Duration::from_secs(60),
        ..CallSettings::default()
    });
    c.handle(Input::Overflow(OverflowKind::Voicemail), t(300));
    assert_eq!(
        drain(&mut c),
        vec![Action::Play(Playlist::once(Prompt::Voicemail))]
    );
    c.handle(Input::PlaybackFinished, t(309));
    assert_eq!(
        drain(&mut c),
        vec![Action::StartRecording(Duration::from_secs(60))]
    );
    assert_eq!(c.poll_timeout(), Some(t(369)));
    c.handle(Input::CallerBye, t(330));
    // The dispatcher already ended the call (overflow): no abandon.
    assert_eq!(
        drain(&mut c),
        vec![
            Action::StopRecording,
            Action::Finished(EndReason::Voicemail)
        ]
    );
    // A message cut at the maximum length.
    let mut c = queued(CallSettings {
        voicemail_max: Duration::from_secs(60),
        ..CallSettings::default()
    });
    c.handle(Input::Overflow(OverflowKind::Voicemail), t(300));
    c.handle(Input::PlaybackFinished, t(309));
    drain(&mut c);
    c.handle_timeout(t(369));
    assert_eq!(
        drain(&mut c),
        vec![
            Action::StopRecording,
            Action::HangUp,
            Action::Finished(EndReason::Voicemail)
        ]
    );
}

#[test]
fn overflow_callback_and_hangup() {
    let mut c = queued(CallSettings::default());
    c.handle(
        Input::Offer {
            agent: agent("bob"),
        },
        t(100),
    );
    c.handle(Input::Overflow(OverflowKind::Callback), t(300));
    assert_eq!(
        drain(&mut c)[1..],
        [
            Action::CancelAgent {
                agent: agent("bob")
            },
            Action::SaveCallback,
            Action::Play(Playlist::once(Prompt::Callback))
        ]
    );
    c.handle(Input::PlaybackFinished, t(306));
    assert_eq!(
        drain(&mut c),
        vec![Action::HangUp, Action::Finished(EndReason::Callback)]
    );
    let mut c = queued(CallSettings::default());
    c.handle(Input::Overflow(OverflowKind::Hangup), t(300));
    c.handle(Input::PlaybackFinished, t(310));
    assert_eq!(
        drain(&mut c),
        vec![
            Action::Play(Playlist::once(Prompt::Overflow)),
            Action::HangUp,
            Action::Finished(EndReason::OverflowHangup)
        ]
    );
}

#[test]
fn announcements_every_period_while_waiting_not_while_ringing() {
    let mut c = queued(CallSettings {
        announce_every: Some(Duration::from_secs(45)),
        ..CallSettings::default()
    });
    assert_eq!(c.poll_timeout(), Some(t(49)));
    c.handle_timeout(t(49));
    assert_eq!(drain(&mut c), vec![Action::RequestPosition]);
    c.handle(
        Input::Position {
            position: 3,
            wait: Some(Duration::from_secs(130)),
        },
        t(49),
    );
    assert_eq!(
        drain(&mut c),
        vec![Action::Play(Playlist {
            items: vec![
                Prompt::Announcement {
                    position: 3,
                    wait_secs: Some(130)
                },
                Prompt::Hold
            ],
            loop_last: true
        })]
    );
    assert_eq!(c.poll_timeout(), Some(t(94)));
    c.handle(
        Input::Offer {
            agent: agent("alice"),
        },
        t(60),
    );
    drain(&mut c);
    // No announcement timer while a telesecretary's phone rings.
    assert_eq!(c.poll_timeout(), Some(t(4 * 3600)));
    c.handle(
        Input::AgentFailed {
            agent: agent("alice"),
            reason: OfferFailure::Rejected,
        },
        t(100),
    );
    drain(&mut c);
    c.handle_timeout(t(100));
    assert_eq!(drain(&mut c), vec![Action::RequestPosition]);
}

#[test]
fn media_timeout_while_bridged_closes_both_sides() {
    let mut c = queued(CallSettings::default());
    c.handle(
        Input::Offer {
            agent: agent("bob"),
        },
        t(10),
    );
    c.handle(
        Input::AgentAnswered {
            agent: agent("bob"),
        },
        t(11),
    );
    drain(&mut c);
    c.handle(Input::MediaTimeout, t(100));
    assert_eq!(
        drain(&mut c),
        vec![
            Action::HangUp,
            Action::Unbridge,
            Action::HangUpAgent {
                agent: agent("bob")
            },
            Action::ReportEnded,
            Action::Finished(EndReason::MediaTimeout)
        ]
    );
}

#[test]
fn max_duration() {
    let mut c = Call::new(CallSettings {
        max_duration: Duration::from_secs(100),
        ..CallSettings::default()
    });
    c.handle(Input::Start { open: true }, t(0));
    drain(&mut c);
    c.handle_timeout(t(99));
    assert_eq!(drain(&mut c), vec![]);
    c.handle_timeout(t(100));
    assert_eq!(
        drain(&mut c),
        vec![Action::HangUp, Action::Finished(EndReason::MaxDuration)]
    );
    assert_eq!(c.poll_timeout(), None);
}

fn input_strategy() -> impl proptest::strategy::Strategy<Value = Input> {
    use proptest::prelude::*;
    let agents = prop_oneof![Just(agent("alice")), Just(agent("bob"))];
    prop_oneof![
        Just(Input::CallerBye),
        Just(Input::CallerCancel),
        Just(Input::PlaybackFinished),
        Just(Input::PlaybackFinished),
        prop_oneof![Just('1'), Just('2'), Just('7'), Just('9')].prop_map(Input::Dtmf),
        Just(Input::MediaTimeout),
        Just(Input::DriverFailure),
        Just(Input::Closed),
        agents.clone().prop_map(|agent| Input::Offer { agent }),
        agents
            .clone()
            .prop_map(|agent| Input::OfferCancelled { agent }),
        agents
            .clone()
            .prop_map(|agent| Input::AgentAnswered { agent }),
        agents
            .clone()
            .prop_map(|agent| Input::AnswerRefused { agent }),
        agents.prop_map(|agent| Input::AgentFailed {
            agent,
            reason: OfferFailure::Busy
        }),
        Just(Input::AgentBye),
        Just(Input::AgentHold),
        Just(Input::AgentUnhold),
        prop_oneof![
            Just(OverflowKind::Voicemail),
            Just(OverflowKind::Callback),
            Just(OverflowKind::Hangup)
        ]
        .prop_map(Input::Overflow),
        Just(Input::Position {
            position: 2,
            wait: None
        }),
        Just(Input::TransferAnswered),
        Just(Input::TransferFailed),
        Just(Input::TransferBye),
    ]
}

proptest::proptest! {
    /// Whatever happens: a started call finishes exactly once; nothing is
    /// asked of the driver afterwards; a call handed to the dispatcher is
    /// closed there exactly once (abandon, end of talk) unless the
    /// dispatcher closed it itself (overflow, closed); the agent leg is
    /// never left ringing or bridged.
    #[test]
    fn every_call_ends_exactly_once_and_is_closed_everywhere(
        inputs in proptest::collection::vec((input_strategy(), 0u64..20), 0..40),
        open in proptest::bool::ANY,
    ) {
        let mut c = Call::new(CallSettings {
            max_duration: Duration::from_secs(600),
            triage: Some(menu()),
            announce_every: Some(Duration::from_secs(30)),
            voicemail_max: Duration::from_secs(60),
        });
        let mut now = t(0);
        c.handle(Input::Start { open }, now);
        let mut outputs = Vec::new();
        let mut all = Vec::new();
        // The agent's own hang-ups, in order with the actions.
        let mut agent_byes = Vec::new();
        let mut take = |c: &mut Call, all: &mut Vec<Action>| {
            for o in drain_all(c) {
                outputs.push(o.clone());
                all.extend(o.action());
            }
        };
        for (input, dt) in inputs {
            now += Duration::from_secs(dt);
            c.handle_timeout(now);
            take(&mut c, &mut all);
            if input == Input::AgentBye {
                agent_byes.push(all.len());
            }
            c.handle(input, now);
            take(&mut c, &mut all);
        }
        now += Duration::from_secs(10_000);
        c.handle_timeout(now);
        c.handle(Input::CallerBye, now);
        take(&mut c, &mut all);

        // Observers see the end exactly once, right before Finished.
        let ended: Vec<_> = outputs.iter().enumerate()
            .filter(|(_, o)| matches!(o, Output::Event(Event::Ended(_)))).collect();
        proptest::prop_assert_eq!(ended.len(), 1);
        let (i, end) = ended[0];
        let finished_reason = match outputs.get(i + 1) {
            Some(Output::Action(Action::Finished(r))) => Some(*r),
            _ => None,
        };
        proptest::prop_assert_eq!(Some(end), Some(&Output::Event(Event::Ended(finished_reason.unwrap_or(EndReason::Failure)))));
        proptest::prop_assert!(finished_reason.is_some(), "Ended not followed by Finished");
        // Observers see one agent at a time: offered, then connected or
        // ended (a refused answer ends a connection), or the call moves on.
        let mut current: Option<(AgentId, bool)> = None;
        for o in &outputs {
            match o {
                Output::Event(Event::Offered { agent }) => {
                    proptest::prop_assert!(current.is_none(), "two offers at once");
                    current = Some((agent.clone(), false));
                }
                Output::Event(Event::Connected { agent }) => {
                    proptest::prop_assert_eq!(current.take(), Some((agent.clone(), false)));
                    current = Some((agent.clone(), true));
                }
                Output::Event(Event::OfferEnded { agent }) => {
                    let seen = current.take().map(|(a, _)| a);
                    proptest::prop_assert_eq!(seen.as_ref(), Some(agent));
                }
                Output::Event(Event::Overflowed(_) | Event::QueueClosed | Event::Ended(_)) => current = None,
                _ => {}
            }
        }

        let finished: Vec<_> = all.iter().enumerate()
            .filter(|(_, a)| matches!(a, Action::Finished(_))).collect();
        proptest::prop_assert_eq!(finished.len(), 1);
        proptest::prop_assert_eq!(finished[0].0, all.len() - 1, "action after Finished");

        // Dispatcher bookkeeping: enqueues are matched by exactly one
        // closing report or a dispatcher-side end (overflow/closed/requeue
        // after a transfer counts as the same call).
        let enqueued = all.iter().filter(|a| matches!(a, Action::Enqueue { .. })).count();
        proptest::prop_assert!(enqueued <= 1);
        let reports = all.iter().filter(|a| matches!(a, Action::ReportAbandoned | Action::ReportEnded)).count();
        proptest::prop_assert!(reports <= enqueued);
        if enqueued == 1 && reports == 0 {
            // Then the dispatcher must have ended it itself: an overflow or
            // closed prompt was played after the enqueue.
            let after = all.iter().skip_while(|a| !matches!(a, Action::Enqueue { .. }));
            let dispatcher_end = after.into_iter().any(|a| matches!(a,
                Action::Play(p) if matches!(p.items.first(), Some(Prompt::Closed | Prompt::Voicemail | Prompt::Callback | Prompt::Overflow))));
            proptest::prop_assert!(dispatcher_end, "enqueued call ended without a report: {:?}", all);
        }
        proptest::prop_assert!(!c.holds_dispatcher_call());

        // Agent legs: every invite is followed by exactly one of answer,
        // failure report, cancel or hang-up.
        let mut open_legs: Vec<AgentId> = Vec::new();
        let mut bridged: Option<AgentId> = None;
        for (i, a) in all.iter().enumerate() {
            if agent_byes.contains(&i) {
                bridged = None;
            }
            match a {
                Action::InviteAgent { agent } => open_legs.push(agent.clone()),
                Action::CancelAgent { agent } | Action::ReportOfferFailed { agent, .. } => {
                    open_legs.retain(|x| x != agent);
                }
                Action::ReportAnswered { agent } => {
                    open_legs.retain(|x| x != agent);
                    bridged = Some(agent.clone());
                }
                Action::HangUpAgent { agent } => {
                    open_legs.retain(|x| x != agent);
                    if bridged.as_ref() == Some(agent) { bridged = None; }
                }
                _ => {}
            }
        }
        proptest::prop_assert!(open_legs.is_empty(), "agent legs left ringing: {:?}", open_legs);
        proptest::prop_assert!(bridged.is_none(), "agent leg left bridged: {:?}", bridged);
    }
}

fn events(c: &mut Call) -> Vec<Event> {
    drain_all(c).into_iter().filter_map(Output::event).collect()
}

#[test]
fn events_follow_an_answered_call() {
    let mut c = Call::new(CallSettings {
        triage: Some(menu()),
        ..CallSettings::default()
    });
    c.handle(Input::Start { open: true }, t(0));
    assert_eq!(events(&mut c), vec![Event::Answered { open: true }]);
    c.handle(Input::PlaybackFinished, t(4));
    assert_eq!(events(&mut c), vec![Event::TriageMenu]);
    c.handle(Input::Dtmf('1'), t(6));
    assert_eq!(events(&mut c), vec![Event::Queued { triage: Some('1') }]);
    c.handle(
        Input::Offer {
            agent: agent("alice"),
        },
        t(10),
    );
    assert_eq!(
        events(&mut c),
        vec![Event::Offered {
            agent: agent("alice")
        }]
    );
    c.handle(
        Input::AgentFailed {
            agent: agent("alice"),
            reason: OfferFailure::Busy,
        },
        t(11),
    );
    assert_eq!(
        events(&mut c),
        vec![Event::OfferEnded {
            agent: agent("alice")
        }]
    );
    c.handle(
        Input::Offer {
            agent: agent("bob"),
        },
        t(12),
    );
    c.handle(
        Input::AgentAnswered {
            agent: agent("bob"),
        },
        t(15),
    );
    assert_eq!(
        events(&mut c),
        vec![
            Event::Offered {
                agent: agent("bob")
            },
            Event::Connected {
                agent: agent("bob")
            }
        ]
    );
    c.handle(Input::AgentHold, t(20));
    c.handle(Input::AgentUnhold, t(25));
    assert_eq!(events(&mut c), vec![Event::Held, Event::Resumed]);
    c.handle(Input::CallerBye, t(60));
    assert_eq!(
        drain_all(&mut c).last(),
        Some(&Output::Action(Action::Finished(EndReason::CallerHangup)))
    );
}

#[test]
fn a_refused_answer_ends_the_connection_for_observers() {
    let mut c = queued(CallSettings::default());
    c.handle(
        Input::Offer {
            agent: agent("bob"),
        },
        t(10),
    );
    c.handle(
        Input::AgentAnswered {
            agent: agent("bob"),
        },
        t(11),
    );
    drain_all(&mut c);
    c.handle(
        Input::AnswerRefused {
            agent: agent("bob"),
        },
        t(11),
    );
    assert_eq!(
        events(&mut c),
        vec![Event::OfferEnded {
            agent: agent("bob")
        }]
    );
    assert_eq!(c.phase(), &Phase::Queued { ringing: None });
}

#[test]
fn overflow_and_closed_queue_are_events() {
    let mut c = queued(CallSettings::default());
    c.handle(Input::Overflow(OverflowKind::Callback), t(300));
    let ev = events(&mut c);
    assert_eq!(ev[0], Event::Overflowed(OverflowKind::Callback));
    let mut c = queued(CallSettings::default());
    c.handle(Input::Closed, t(30));
    assert_eq!(events(&mut c), vec![Event::QueueClosed]);
    c.handle(Input::PlaybackFinished, t(40));
    assert_eq!(events(&mut c), vec![Event::Ended(EndReason::Closed)]);
}
