use super::*;
use permanence_outbound::{AllowList, DestinationClass};
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

/// Callback offered with '2' after `offer_after` seconds; callbacks to
/// French fixed and mobile numbers.
fn callback(presented: Option<&str>, offer_after: u64) -> CallbackSettings {
    let mut accept = AllowList::french_default();
    accept.classes.remove(&DestinationClass::Emergency);
    CallbackSettings {
        digit: '2',
        offer_after: Duration::from_secs(offer_after),
        presented: presented.map(str::to_string),
        accept,
    }
}

fn with_callback(presented: Option<&str>, offer_after: u64) -> CallSettings {
    CallSettings {
        callback: Some(callback(presented, offer_after)),
        ..CallSettings::default()
    }
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

/// A normal enqueue: behind the waiting calls, for the practice's routing.
fn enqueue(triage: Option<char>) -> Action {
    Action::Enqueue {
        triage,
        head: false,
        target: None,
        language: Language::Fr,
    }
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
        vec![enqueue(None), Action::Play(Playlist::looped(Prompt::Hold))]
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
            enqueue(Some('1')),
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
    assert_eq!(drain(&mut c)[0], enqueue(Some('1')));
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
            enqueue(Some('2')),
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
            enqueue(Some('7')),
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
    assert_eq!(c.disposition(), Some(Disposition::Answered));
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
        vec![Action::Finished(EndReason::AbandonedGreeting)]
    );
    assert_eq!(
        c.disposition(),
        Some(Disposition::Abandoned(AbandonPhase::Greeting))
    );
}

/// Ends a call after `inputs` (from `Start { open }` at 0 s, one second
/// apart) with the caller's BYE; its disposition.
fn disposition_after(settings: CallSettings, open: bool, inputs: Vec<Input>) -> Disposition {
    let mut c = Call::new(settings);
    c.handle(Input::Start { open }, t(0));
    let n = inputs.len() as i64;
    for (i, input) in (1..).zip(inputs) {
        c.handle(input, t(i));
    }
    c.handle(Input::CallerBye, t(n + 1));
    drain(&mut c);
    c.disposition().expect("ended")
}

#[test]
fn every_pre_answer_phase_is_an_abandon_with_its_phase() {
    let triage = || CallSettings {
        triage: Some(menu()),
        ..CallSettings::default()
    };
    let bob = || agent("bob");
    let cases = [
        (vec![], AbandonPhase::Greeting),
        (vec![Input::PlaybackFinished], AbandonPhase::Triage),
        (
            vec![Input::PlaybackFinished, Input::PlaybackFinished],
            AbandonPhase::Triage,
        ),
        (
            vec![Input::PlaybackFinished, Input::Dtmf('7')],
            AbandonPhase::Route,
        ),
        (
            vec![Input::PlaybackFinished, Input::Dtmf('1')],
            AbandonPhase::Queue,
        ),
        (
            vec![
                Input::PlaybackFinished,
                Input::Dtmf('1'),
                Input::Offer { agent: bob() },
            ],
            AbandonPhase::Ringing,
        ),
    ];
    for (inputs, phase) in cases {
        assert_eq!(
            disposition_after(triage(), true, inputs.clone()),
            Disposition::Abandoned(phase),
            "{inputs:?}"
        );
    }
    let menu_open = vec![Input::PlaybackFinished, Input::Dtmf('2')];
    assert_eq!(
        disposition_after(
            with_callback(Some("+33612345678"), 0),
            true,
            menu_open.clone()
        ),
        Disposition::Abandoned(AbandonPhase::CallbackPrompt)
    );
}

#[test]
fn answered_overflowed_closed_and_unanswered_calls_are_told_apart() {
    let bob = || agent("bob");
    let talk = vec![
        Input::PlaybackFinished,
        Input::Offer { agent: bob() },
        Input::AgentAnswered { agent: bob() },
    ];
    assert_eq!(
        disposition_after(CallSettings::default(), true, talk),
        Disposition::Answered
    );
    let overflow = vec![
        Input::PlaybackFinished,
        Input::Overflow(OverflowKind::Voicemail),
        Input::PlaybackFinished,
    ];
    assert_eq!(
        disposition_after(CallSettings::default(), true, overflow),
        Disposition::Overflowed(OverflowKind::Voicemail)
    );
    // Closed by the hours, or by the dispatcher once queued: not offered,
    // even when the caller hangs up during the closed prompt.
    assert_eq!(
        disposition_after(CallSettings::default(), false, vec![]),
        Disposition::Closed
    );
    let refused = vec![Input::PlaybackFinished, Input::Closed];
    assert_eq!(
        disposition_after(CallSettings::default(), true, refused),
        Disposition::Closed
    );
    // A media timeout before any answer is a failure, after it an answer.
    let mut c = queued(CallSettings::default());
    c.handle(Input::MediaTimeout, t(40));
    assert_eq!(c.disposition(), Some(Disposition::Failed));
    // Gone before the engine answered: never offered.
    let mut c = Call::new(CallSettings::default());
    assert_eq!(c.disposition(), None);
    c.handle(Input::CallerCancel, t(0));
    assert_eq!(c.disposition(), Some(Disposition::Unanswered));
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
        // The callback menu: the offer digit, confirm, another number,
        // digits, `*` and `#`.
        prop_oneof![Just('2'), Just('1'), Just('3')].prop_map(Input::Dtmf),
        prop_oneof![Just('0'), Just('6'), Just('8'), Just('*'), Just('#')].prop_map(Input::Dtmf),
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
        Just(Input::AgentLost),
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
        Just(Input::AttendedTransfer),
        transfer_strategy(),
    ]
}

/// A blind transfer to a number, a telesecretary or a pool.
fn transfer_strategy() -> impl proptest::strategy::Strategy<Value = Input> {
    use proptest::prelude::*;
    prop_oneof![
        Just(TransferTo::Number("+33611223344".into())),
        Just(TransferTo::Agent(agent("alice"))),
        Just(TransferTo::Agent(agent("bob"))),
        Just(TransferTo::Pool("shared".into())),
    ]
    .prop_map(|to| Input::TransferRequested { to })
}

/// One step of the property test: an input, or a whole number typed in
/// the callback menu (valid, premium, or one digit too many).
fn step_strategy() -> impl proptest::strategy::Strategy<Value = Vec<Input>> {
    use proptest::prelude::*;
    let typed = |s: &str| s.chars().map(Input::Dtmf).collect::<Vec<_>>();
    prop_oneof![
        8 => input_strategy().prop_map(|i| vec![i]),
        // The offer digit, then confirm: often, to reach the callback paths.
        2 => Just(typed("2")),
        2 => Just(typed("1")),
        1 => Just(typed("0612345678#")),
        1 => Just(typed("0899123456#")),
        1 => Just(typed("061234567812345678901")),
        // Answered by a telesecretary, a blind transfer, its number's
        // answer or failure: often, to reach the transfer paths.
        2 => Just(vec![
            Input::Offer { agent: agent("alice") },
            Input::AgentAnswered { agent: agent("alice") },
        ]),
        2 => transfer_strategy().prop_map(|i| vec![i]),
        1 => Just(vec![Input::TransferAnswered]),
        1 => Just(vec![Input::TransferFailed]),
    ]
}

proptest::proptest! {
    /// Whatever happens: a started call finishes exactly once; nothing is
    /// asked of the driver afterwards; a call handed to the dispatcher is
    /// closed there exactly once (abandon, end of talk) unless the
    /// dispatcher closed it itself (overflow, closed) or it became a
    /// callback request; the agent leg is never left ringing or bridged.
    #[test]
    fn every_call_ends_exactly_once_and_is_closed_everywhere(
        steps in proptest::collection::vec((step_strategy(), 0u64..20), 0..40),
        open in proptest::bool::ANY,
        presented in proptest::option::of(proptest::prelude::prop_oneof![
            proptest::prelude::Just("+33612345678"),
            proptest::prelude::Just("+33899123456"),
        ]),
        offer_after in proptest::prelude::prop_oneof![
            proptest::prelude::Just(0u64),
            proptest::prelude::Just(25),
        ],
        with_callback in proptest::bool::weighted(0.8),
        // Start talking with a telesecretary (the transfer paths).
        answered in proptest::bool::weighted(0.4),
    ) {
        let mut c = Call::new(CallSettings {
            max_duration: Duration::from_secs(600),
            triage: Some(menu()),
            announce_every: Some(Duration::from_secs(30)),
            voicemail_max: Duration::from_secs(60),
            callback: with_callback.then(|| callback(presented, offer_after)),
            ..CallSettings::default()
        });
        let mut now = t(0);
        let open_at_start = open || answered;
        c.handle(Input::Start { open: open_at_start }, now);
        let answered = answered.then(|| (
            vec![
                Input::PlaybackFinished,
                Input::Dtmf('1'),
                Input::Offer { agent: agent("bob") },
                Input::AgentAnswered { agent: agent("bob") },
            ],
            1,
        ));
        let mut outputs = Vec::new();
        let mut all = Vec::new();
        // The agent's own hang-ups, and the transfer party's, in order with
        // the actions; transfers asked.
        let mut agent_byes = Vec::new();
        let mut transfer_byes = Vec::new();
        let mut transfers_asked = 0;
        let mut take = |c: &mut Call, all: &mut Vec<Action>| {
            for o in drain_all(c) {
                outputs.push(o.clone());
                all.extend(o.action());
            }
        };
        for (inputs, dt) in answered.into_iter().chain(steps) {
            now += Duration::from_secs(dt);
            for input in inputs {
                c.handle_timeout(now);
                take(&mut c, &mut all);
                if input == Input::AgentBye {
                    agent_byes.push(all.len());
                }
                if input == Input::TransferBye {
                    transfer_byes.push(all.len());
                }
                if matches!(input, Input::TransferRequested { .. }) {
                    transfers_asked += 1;
                }
                c.handle(input, now);
                take(&mut c, &mut all);
            }
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
        // The figures: answered exactly when someone talked with the
        // caller; offered when the open practice answered and the
        // dispatcher did not refuse the call as closed; an abandon's phase
        // is its end reason's.
        let disposition = c.disposition();
        let seen = |f: &dyn Fn(&Event) -> bool| outputs.iter().any(|o| matches!(o, Output::Event(e) if f(e)));
        let connected = seen(&|e| matches!(e, Event::Connected { .. } | Event::RouteConnected | Event::TransferConnected));
        let refused = seen(&|e| matches!(e, Event::QueueClosed));
        let offered = connected || open_at_start && !refused;
        proptest::prop_assert_eq!(disposition == Some(Disposition::Answered), connected);
        proptest::prop_assert_eq!(disposition.map(Disposition::offered), Some(offered));
        if let Some(Disposition::Abandoned(phase)) = disposition {
            proptest::prop_assert_eq!(finished_reason.and_then(EndReason::abandon_phase), Some(phase));
        }
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
                // A blind transfer or a vanished softphone ends the talk
                // with the telesecretary.
                Output::Event(Event::TransferDialled { .. } | Event::AgentLost) => {
                    let talking = current.take().is_some_and(|(_, connected)| connected);
                    proptest::prop_assert!(talking, "transfer without a connected agent");
                }
                Output::Event(Event::Overflowed(_) | Event::QueueClosed | Event::Ended(_)) => current = None,
                _ => {}
            }
        }

        let finished: Vec<_> = all.iter().enumerate()
            .filter(|(_, a)| matches!(a, Action::Finished(_))).collect();
        proptest::prop_assert_eq!(finished.len(), 1);
        proptest::prop_assert_eq!(finished[0].0, all.len() - 1, "action after Finished");

        // Dispatcher bookkeeping, one dispatcher call at a time: each
        // enqueue (the first arrival, or the return of a blind transfer,
        // at the head of the queue) is closed by exactly one report
        // (abandon, end of talk), a hand-over to a callback request, or a
        // dispatcher-side end (an overflow or closed prompt played after
        // it); never a report without an open call (no abandon after the
        // end of talk).
        let mut open_call = false;
        let (mut arrivals, mut returns) = (0, 0);
        for a in &all {
            match a {
                Action::Enqueue { head, target, .. } => {
                    proptest::prop_assert!(!open_call, "two dispatcher calls at once: {:?}", all);
                    proptest::prop_assert!(*head || target.is_none(), "a target without the head");
                    if *head { returns += 1 } else { arrivals += 1 }
                    open_call = true;
                }
                Action::ReportAbandoned | Action::ReportEnded | Action::RequestCallback { .. } => {
                    proptest::prop_assert!(open_call, "report without a dispatcher call: {:?}", all);
                    open_call = false;
                }
                Action::Play(p) if open_call && matches!(p.items.first(),
                    Some(Prompt::Closed | Prompt::Voicemail | Prompt::Callback | Prompt::Overflow)) => {
                    open_call = false;
                }
                _ => {}
            }
        }
        proptest::prop_assert!(arrivals <= 1);
        let agents_lost = outputs.iter().filter(|o| matches!(o, Output::Event(Event::AgentLost))).count();
        proptest::prop_assert!(returns <= transfers_asked + agents_lost, "head of the queue without a transfer or a lost agent");
        proptest::prop_assert!(!open_call, "enqueued call ended without a report: {:?}", all);
        proptest::prop_assert!(!c.holds_dispatcher_call());

        // The blind transfer's leg: dialled only when none is open, then
        // connected (a bridge), failed (back to the head of the queue) or
        // hung up; once connected, hung up by either side. The caller
        // hears hold audio while it rings.
        #[derive(Debug, PartialEq)]
        enum Leg { None, Ringing, Connected }
        let mut leg = Leg::None;
        for (i, a) in all.iter().enumerate() {
            if transfer_byes.contains(&i) && leg == Leg::Connected {
                leg = Leg::None;
            }
            match a {
                Action::DialTransfer { .. } => {
                    proptest::prop_assert_eq!(&leg, &Leg::None);
                    let held = i.checked_sub(1).and_then(|j| all.get(j))
                        == Some(&Action::Play(Playlist::looped(Prompt::Hold)));
                    proptest::prop_assert!(held, "transfer dialled without hold audio");
                    leg = Leg::Ringing;
                }
                Action::Bridge if leg == Leg::Ringing => leg = Leg::Connected,
                Action::Enqueue { head: true, target: None, .. } if leg == Leg::Ringing => leg = Leg::None,
                Action::HangUpTransfer => leg = Leg::None,
                _ => {}
            }
        }
        proptest::prop_assert_eq!(leg, Leg::None, "transfer leg left open: {:?}", all);
        // A callback requested stands whatever the caller does next.
        if all.iter().any(|a| matches!(a, Action::RequestCallback { .. })) {
            proptest::prop_assert!(matches!(finished_reason, Some(
                EndReason::CallbackRequested | EndReason::MediaTimeout
                | EndReason::MaxDuration | EndReason::Failure)), "{:?}", finished_reason);
        }

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

// ------------------------------------------------------ callback (virtual hold)

/// `digits` pressed one after the other at `at`.
fn press(c: &mut Call, digits: &str, at: i64) {
    for d in digits.chars() {
        c.handle(Input::Dtmf(d), t(at));
    }
}

/// The confirmation of a number spoken as `spoken`.
fn spoken(spoken: &str) -> Playlist {
    let mut items = vec![Prompt::CallbackConfirmPrefix];
    items.extend(spoken.chars().map(Prompt::Digit));
    items.push(Prompt::CallbackConfirmChoice);
    Playlist {
        items,
        loop_last: false,
    }
}

fn offer_and_hold() -> Playlist {
    Playlist {
        items: vec![Prompt::CallbackOffer, Prompt::Hold],
        loop_last: true,
    }
}

fn enter_prompt(attempts: u8) -> Playlist {
    let items = if attempts == 0 {
        vec![Prompt::CallbackEnterNumber]
    } else {
        vec![Prompt::CallbackInvalidNumber, Prompt::CallbackEnterNumber]
    };
    Playlist {
        items,
        loop_last: false,
    }
}

#[test]
fn callback_offer_with_the_first_hold_audio() {
    let mut c = Call::new(with_callback(Some("+33612345678"), 0));
    c.handle(Input::Start { open: true }, t(0));
    drain(&mut c);
    c.handle(Input::PlaybackFinished, t(4));
    assert_eq!(
        drain(&mut c),
        vec![enqueue(None), Action::Play(offer_and_hold())]
    );
    // No timer for it: it has been played.
    assert_eq!(c.poll_timeout(), Some(t(4 * 3600)));
}

#[test]
fn callback_offer_after_a_while_then_with_each_announcement() {
    let mut c = queued(CallSettings {
        announce_every: Some(Duration::from_secs(20)),
        ..with_callback(Some("+33612345678"), 30)
    });
    // Queued at 4 s: an announcement at 24 s (without the offer, not due
    // yet), the offer at 34 s, then announcements with the offer.
    assert_eq!(c.poll_timeout(), Some(t(24)));
    c.handle_timeout(t(24));
    assert_eq!(drain(&mut c), vec![Action::RequestPosition]);
    c.handle(
        Input::Position {
            position: 4,
            wait: None,
        },
        t(24),
    );
    let announcement = Prompt::Announcement {
        position: 4,
        wait_secs: None,
    };
    assert_eq!(
        drain(&mut c),
        vec![Action::Play(Playlist {
            items: vec![announcement, Prompt::Hold],
            loop_last: true
        })]
    );
    assert_eq!(c.poll_timeout(), Some(t(34)));
    c.handle_timeout(t(33));
    assert_eq!(drain(&mut c), vec![]);
    c.handle_timeout(t(34));
    assert_eq!(drain(&mut c), vec![Action::Play(offer_and_hold())]);
    assert_eq!(c.poll_timeout(), Some(t(44)));
    c.handle_timeout(t(44));
    c.handle(
        Input::Position {
            position: 4,
            wait: None,
        },
        t(44),
    );
    assert_eq!(
        drain(&mut c),
        vec![
            Action::RequestPosition,
            Action::Play(Playlist {
                items: vec![announcement, Prompt::CallbackOffer, Prompt::Hold],
                loop_last: true
            })
        ]
    );
    // Without callback settings, nothing changes.
    let mut c = queued(CallSettings::default());
    c.handle(Input::Dtmf('2'), t(10));
    assert_eq!(drain(&mut c), vec![]);
    assert_eq!(c.phase(), &Phase::Queued { ringing: None });
}

#[test]
fn callback_confirmed_keeps_the_place_and_hangs_up() {
    let mut c = queued(with_callback(Some("+33612345678"), 0));
    c.handle(Input::Dtmf('2'), t(10));
    assert_eq!(
        drain_all(&mut c),
        vec![
            Output::Event(Event::CallbackMenu),
            Output::Action(Action::Play(spoken("0612345678")))
        ]
    );
    assert!(matches!(c.phase(), Phase::CallbackConfirm { number, .. } if number == "+33612345678"));
    assert!(c.holds_dispatcher_call());
    // Barge-in: 1 before the end of the playlist.
    c.handle(Input::Dtmf('1'), t(14));
    assert_eq!(
        drain_all(&mut c),
        vec![
            Output::Action(Action::RequestCallback {
                number: "+33612345678".into()
            }),
            Output::Event(Event::CallbackRequested),
            Output::Action(Action::Play(Playlist::once(Prompt::CallbackKeptPlace)))
        ]
    );
    assert_eq!(c.phase(), &Phase::CallbackRequested);
    assert!(!c.holds_dispatcher_call());
    // The dispatcher's call is the driver's now: nothing reaches it.
    c.handle(
        Input::Offer {
            agent: agent("alice"),
        },
        t(15),
    );
    c.handle(Input::Overflow(OverflowKind::Voicemail), t(15));
    c.handle(Input::Dtmf('2'), t(16));
    assert_eq!(drain(&mut c), vec![]);
    c.handle(Input::PlaybackFinished, t(20));
    assert_eq!(
        drain_all(&mut c),
        vec![
            Output::Action(Action::HangUp),
            Output::Event(Event::Ended(EndReason::CallbackRequested)),
            Output::Action(Action::Finished(EndReason::CallbackRequested))
        ]
    );
    assert_eq!(EndReason::CallbackRequested.as_str(), "callback-requested");
    assert!(!EndReason::CallbackRequested.was_answered());
}

#[test]
fn callback_to_another_number_typed() {
    let mut c = queued(with_callback(Some("+33612345678"), 0));
    c.handle(Input::Dtmf('2'), t(10));
    drain(&mut c);
    c.handle(Input::Dtmf('3'), t(12));
    assert_eq!(drain(&mut c), vec![Action::Play(enter_prompt(0))]);
    assert!(matches!(
        c.phase(),
        Phase::CallbackEnter { attempts: 0, .. }
    ));
    // `*` is ignored.
    press(&mut c, "07*12345678", 14);
    assert_eq!(drain(&mut c), vec![]);
    c.handle(Input::Dtmf('#'), t(15));
    assert_eq!(drain(&mut c), vec![Action::Play(spoken("0712345678"))]);
    c.handle(Input::PlaybackFinished, t(20));
    c.handle(Input::Dtmf('1'), t(21));
    assert_eq!(
        drain(&mut c),
        vec![
            Action::RequestCallback {
                number: "+33712345678".into()
            },
            Action::Play(Playlist::once(Prompt::CallbackKeptPlace))
        ]
    );
}

#[test]
fn callback_withheld_number_goes_straight_to_entry() {
    // Withheld, or presented but not a number a callback may go to.
    for presented in [None, Some("+33899123456"), Some("15"), Some("anonymous")] {
        let mut c = queued(with_callback(presented, 0));
        c.handle(Input::Dtmf('2'), t(10));
        assert_eq!(
            drain_all(&mut c),
            vec![
                Output::Event(Event::CallbackMenu),
                Output::Action(Action::Play(enter_prompt(0)))
            ],
            "{presented:?}"
        );
    }
    // The entry timer starts once the prompt is heard, and restarts at
    // each digit; silence after digits ends the number like `#`.
    let mut c = queued(with_callback(None, 0));
    c.handle(Input::Dtmf('2'), t(10));
    drain(&mut c);
    assert_eq!(c.poll_timeout(), Some(t(4 * 3600)));
    c.handle(Input::PlaybackFinished, t(15));
    assert_eq!(c.poll_timeout(), Some(t(25)));
    press(&mut c, "06921", 18);
    press(&mut c, "23456", 24);
    assert_eq!(c.poll_timeout(), Some(t(34)));
    c.handle_timeout(t(33));
    assert_eq!(drain(&mut c), vec![]);
    c.handle_timeout(t(34));
    // An overseas mobile (Réunion), spoken in national form.
    assert_eq!(drain(&mut c), vec![Action::Play(spoken("0692123456"))]);
    assert!(
        matches!(c.phase(), Phase::CallbackConfirm { number, .. } if number == "+262692123456")
    );
}

#[test]
fn callback_invalid_number_twice_goes_back_to_the_queue() {
    let mut c = queued(with_callback(None, 0));
    c.handle(Input::Dtmf('2'), t(10));
    drain(&mut c);
    press(&mut c, "123#", 14);
    assert_eq!(drain(&mut c), vec![Action::Play(enter_prompt(1))]);
    assert!(matches!(
        c.phase(),
        Phase::CallbackEnter { attempts: 1, .. }
    ));
    press(&mut c, "0612#", 20);
    assert_eq!(
        drain_all(&mut c),
        vec![
            Output::Event(Event::BackInQueue),
            Output::Action(Action::Play(Playlist {
                items: vec![
                    Prompt::CallbackInvalidNumber,
                    Prompt::CallbackOffer,
                    Prompt::Hold
                ],
                loop_last: true
            }))
        ]
    );
    assert_eq!(c.phase(), &Phase::Queued { ringing: None });
    assert!(c.holds_dispatcher_call());
    // The menu may be entered again.
    c.handle(Input::Dtmf('2'), t(40));
    assert_eq!(events(&mut c), vec![Event::CallbackMenu]);
    // Silence with no digit is a failed try too.
    c.handle(Input::PlaybackFinished, t(45));
    c.handle_timeout(t(55));
    assert_eq!(drain(&mut c), vec![Action::Play(enter_prompt(1))]);
    c.handle(Input::PlaybackFinished, t(60));
    c.handle_timeout(t(70));
    assert_eq!(
        drain(&mut c)[0],
        Action::Play(Playlist {
            items: vec![
                Prompt::CallbackInvalidNumber,
                Prompt::CallbackOffer,
                Prompt::Hold
            ],
            loop_last: true
        })
    );
}

#[test]
fn callback_refuses_premium_emergency_short_and_unlisted_numbers() {
    // The practice's list allows emergency numbers (for its agents): a
    // callback still never goes to one.
    let mut settings = with_callback(None, 0);
    if let Some(cb) = settings.callback.as_mut() {
        cb.accept = AllowList::french_default();
    }
    for typed in ["0899123456#", "15#", "112#", "3624#", "0041221234567#", "#"] {
        let mut c = queued(settings.clone());
        c.handle(Input::Dtmf('2'), t(10));
        drain(&mut c);
        press(&mut c, typed, 14);
        assert_eq!(
            drain(&mut c),
            vec![Action::Play(enter_prompt(1))],
            "{typed}"
        );
    }
    // A number the practice allows abroad is spoken in E.164.
    if let Some(cb) = settings.callback.as_mut() {
        cb.accept.numbers.push("+41".into());
    }
    let mut c = queued(settings);
    c.handle(Input::Dtmf('2'), t(10));
    drain(&mut c);
    press(&mut c, "0041221234567#", 14);
    assert_eq!(drain(&mut c), vec![Action::Play(spoken("+41221234567"))]);
}

#[test]
fn callback_21_digits_is_invalid() {
    let mut c = queued(with_callback(None, 0));
    c.handle(Input::Dtmf('2'), t(10));
    drain(&mut c);
    press(&mut c, "06123456781234567890", 14);
    assert_eq!(drain(&mut c), vec![]);
    assert!(matches!(c.phase(), Phase::CallbackEnter { digits, .. } if digits.len() == 20));
    c.handle(Input::Dtmf('1'), t(15));
    assert_eq!(drain(&mut c), vec![Action::Play(enter_prompt(1))]);
    assert!(
        matches!(c.phase(), Phase::CallbackEnter { digits, attempts: 1, .. } if digits.is_empty())
    );
}

#[test]
fn callback_confirm_silence_twice_goes_back_to_the_queue() {
    let mut c = queued(with_callback(Some("+33612345678"), 30));
    c.handle_timeout(t(34));
    assert_eq!(drain(&mut c), vec![Action::Play(offer_and_hold())]);
    c.handle(Input::Dtmf('2'), t(40));
    drain(&mut c);
    // The silence is timed once the number has been heard.
    assert_eq!(c.poll_timeout(), Some(t(4 * 3600)));
    c.handle(Input::PlaybackFinished, t(45));
    assert_eq!(c.poll_timeout(), Some(t(55)));
    c.handle_timeout(t(54));
    assert_eq!(drain(&mut c), vec![]);
    c.handle_timeout(t(55));
    assert_eq!(drain(&mut c), vec![Action::Play(spoken("0612345678"))]);
    assert!(matches!(
        c.phase(),
        Phase::CallbackConfirm { replayed: true, .. }
    ));
    c.handle(Input::PlaybackFinished, t(60));
    c.handle_timeout(t(70));
    // Back to waiting: hold audio, the offer again 30 s later.
    assert_eq!(
        drain(&mut c),
        vec![Action::Play(Playlist::looped(Prompt::Hold))]
    );
    assert_eq!(c.phase(), &Phase::Queued { ringing: None });
    assert_eq!(c.poll_timeout(), Some(t(100)));
    c.handle_timeout(t(100));
    assert_eq!(drain(&mut c), vec![Action::Play(offer_and_hold())]);
    // Other keys do nothing in the confirmation.
    c.handle(Input::Dtmf('2'), t(110));
    drain(&mut c);
    press(&mut c, "2459*#", 111);
    assert_eq!(drain(&mut c), vec![]);
    assert!(matches!(c.phase(), Phase::CallbackConfirm { .. }));
}

#[test]
fn callback_offer_to_a_telesecretary_during_the_menu() {
    for key in ['2', '3'] {
        let mut c = queued(with_callback(Some("+33612345678"), 0));
        press(&mut c, &format!("2{key}"), 10);
        drain(&mut c);
        c.handle(
            Input::Offer {
                agent: agent("alice"),
            },
            t(12),
        );
        assert_eq!(
            drain_all(&mut c),
            vec![
                Output::Event(Event::Offered {
                    agent: agent("alice")
                }),
                Output::Action(Action::InviteAgent {
                    agent: agent("alice")
                }),
                Output::Action(Action::Play(Playlist::looped(Prompt::Hold)))
            ]
        );
        assert_eq!(
            c.phase(),
            &Phase::Queued {
                ringing: Some(agent("alice"))
            }
        );
        // The menu is over: the digit is ignored while her phone rings.
        press(&mut c, "21", 13);
        assert_eq!(drain(&mut c), vec![]);
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
    }
}

#[test]
fn callback_menu_follows_the_dispatcher_like_the_queue() {
    // A position that arrives during the menu is heard back in the queue.
    let mut c = queued(CallSettings {
        announce_every: Some(Duration::from_secs(20)),
        ..with_callback(Some("+33612345678"), 0)
    });
    c.handle_timeout(t(24));
    assert_eq!(drain(&mut c), vec![Action::RequestPosition]);
    c.handle(Input::Dtmf('2'), t(25));
    drain(&mut c);
    c.handle(
        Input::Position {
            position: 2,
            wait: Some(Duration::from_secs(60)),
        },
        t(25),
    );
    assert_eq!(drain(&mut c), vec![]);
    c.handle(Input::PlaybackFinished, t(30));
    c.handle_timeout(t(40));
    c.handle(Input::PlaybackFinished, t(45));
    c.handle_timeout(t(55));
    assert_eq!(
        drain(&mut c),
        vec![
            Action::Play(spoken("0612345678")),
            Action::Play(Playlist {
                items: vec![
                    Prompt::Announcement {
                        position: 2,
                        wait_secs: Some(60)
                    },
                    Prompt::CallbackOffer,
                    Prompt::Hold
                ],
                loop_last: true
            })
        ]
    );
    // The next announcement a period after the return.
    assert_eq!(c.poll_timeout(), Some(t(75)));

    // Overflow and closing reach the menu too.
    let mut c = queued(with_callback(None, 0));
    c.handle(Input::Dtmf('2'), t(10));
    c.handle(Input::Overflow(OverflowKind::Hangup), t(12));
    assert_eq!(
        drain(&mut c)[1..],
        [Action::Play(Playlist::once(Prompt::Overflow))]
    );
    assert!(!c.holds_dispatcher_call());
    let mut c = queued(with_callback(Some("+33612345678"), 0));
    c.handle(Input::Dtmf('2'), t(10));
    drain(&mut c);
    c.handle(
        Input::OfferCancelled {
            agent: agent("bob"),
        },
        t(11),
    );
    assert_eq!(drain(&mut c), vec![]);
    c.handle(Input::Closed, t(12));
    assert_eq!(
        drain(&mut c),
        vec![Action::Play(Playlist::once(Prompt::Closed))]
    );
    assert!(!c.holds_dispatcher_call());
}

#[test]
fn callback_hang_up_in_the_menu_is_an_abandon() {
    for keys in ["2", "23", "230"] {
        let mut c = queued(with_callback(Some("+33612345678"), 0));
        press(&mut c, keys, 10);
        drain(&mut c);
        c.handle(Input::CallerBye, t(12));
        assert_eq!(
            drain(&mut c),
            vec![
                Action::ReportAbandoned,
                Action::Finished(EndReason::AbandonedCallbackPrompt)
            ],
            "{keys}"
        );
    }
    assert_eq!(
        EndReason::AbandonedCallbackPrompt.as_str(),
        "abandoned-callback-prompt"
    );
    assert!(!EndReason::AbandonedCallbackPrompt.was_answered());
    // Media gone in the menu: an abandon too, with its cause.
    let mut c = queued(with_callback(None, 0));
    c.handle(Input::Dtmf('2'), t(10));
    drain(&mut c);
    c.handle(Input::MediaTimeout, t(40));
    assert_eq!(
        drain(&mut c),
        vec![
            Action::HangUp,
            Action::ReportAbandoned,
            Action::Finished(EndReason::MediaTimeout)
        ]
    );
}

#[test]
fn callback_stands_when_the_caller_hangs_up_during_the_confirmation() {
    let mut c = queued(with_callback(Some("+33612345678"), 0));
    press(&mut c, "21", 10);
    drain(&mut c);
    c.handle(Input::CallerBye, t(12));
    assert_eq!(
        drain_all(&mut c),
        vec![
            Output::Event(Event::Ended(EndReason::CallbackRequested)),
            Output::Action(Action::Finished(EndReason::CallbackRequested))
        ]
    );
    assert!(!c.holds_dispatcher_call());
}

#[test]
fn callback_digit_ignored_while_a_telesecretary_is_rung() {
    let mut c = queued(with_callback(Some("+33612345678"), 0));
    c.handle(
        Input::Offer {
            agent: agent("bob"),
        },
        t(10),
    );
    drain(&mut c);
    c.handle(Input::Dtmf('2'), t(11));
    assert_eq!(drain_all(&mut c), vec![]);
    assert_eq!(
        c.phase(),
        &Phase::Queued {
            ringing: Some(agent("bob"))
        }
    );
    // Once the offer fails, the digit works again.
    c.handle(
        Input::AgentFailed {
            agent: agent("bob"),
            reason: OfferFailure::Busy,
        },
        t(30),
    );
    drain(&mut c);
    c.handle(Input::Dtmf('2'), t(31));
    assert_eq!(events(&mut c), vec![Event::CallbackMenu]);
}

#[test]
fn numbers_spoken_back_in_national_form_when_french() {
    for (number, form) in [
        ("+33612345678", "0612345678"),
        ("+33450000001", "0450000001"),
        ("+262692123456", "0692123456"),
        ("+596596123456", "0596123456"),
        ("+41221234567", "+41221234567"),
        ("+262123456789", "+262123456789"),
        ("+4420794609", "+4420794609"),
        ("", ""),
    ] {
        assert_eq!(national_form(number), form, "{number}");
    }
}

// ------------------------------------------------------ blind transfers

const PORTABLE: &str = "+33611223344";

fn to_number() -> Input {
    Input::TransferRequested {
        to: TransferTo::Number(PORTABLE.into()),
    }
}

/// A call queued with triage option '1', answered by Alice at 15 s.
fn talking(settings: CallSettings) -> Call {
    let mut c = Call::new(CallSettings {
        triage: Some(menu()),
        ..settings
    });
    c.handle(Input::Start { open: true }, t(0));
    c.handle(Input::PlaybackFinished, t(4));
    c.handle(Input::Dtmf('1'), t(6));
    c.handle(
        Input::Offer {
            agent: agent("alice"),
        },
        t(10),
    );
    c.handle(
        Input::AgentAnswered {
            agent: agent("alice"),
        },
        t(15),
    );
    drain(&mut c);
    assert!(c.can_transfer());
    c
}

/// What Alice's leaving the call looks like, for a transfer of `kind`.
fn alice_leaves(kind: &'static str) -> Vec<Output> {
    vec![
        Output::Event(Event::TransferDialled { kind }),
        Output::Action(Action::Unbridge),
        Output::Action(Action::HangUpAgent {
            agent: agent("alice"),
        }),
        Output::Action(Action::ReportEnded),
    ]
}

/// The head-of-queue return with `lead` before the hold audio.
fn back_at_the_head(target: Option<QueueTarget>, lead: &[Prompt]) -> Vec<Output> {
    let mut items = lead.to_vec();
    items.push(Prompt::Hold);
    vec![
        Output::Event(Event::Queued { triage: Some('1') }),
        Output::Action(Action::Enqueue {
            triage: Some('1'),
            head: true,
            target,
            language: Language::Fr,
        }),
        Output::Action(Action::Play(Playlist {
            items,
            loop_last: true,
        })),
    ]
}

#[test]
fn blind_transfer_to_a_number_answered_then_hung_up_there() {
    let mut c = talking(CallSettings::default());
    c.handle(to_number(), t(60));
    let mut want = alice_leaves("number");
    want.extend([
        Output::Action(Action::Play(Playlist::looped(Prompt::Hold))),
        Output::Action(Action::DialTransfer {
            number: PORTABLE.into(),
        }),
    ]);
    assert_eq!(drain_all(&mut c), want);
    assert_eq!(
        c.phase(),
        &Phase::BlindTransfer {
            number: PORTABLE.into()
        }
    );
    // The dispatcher's call is over (Alice's wrap-up); no second transfer.
    assert!(!c.holds_dispatcher_call());
    assert!(!c.can_transfer());
    // Late news of Alice's leg and of the dispatcher change nothing.
    c.handle(Input::AgentBye, t(61));
    c.handle(Input::AgentUnhold, t(61));
    c.handle(
        Input::Offer {
            agent: agent("bob"),
        },
        t(61),
    );
    c.handle(to_number(), t(61));
    assert_eq!(drain_all(&mut c), vec![]);
    c.handle(Input::TransferAnswered, t(70));
    assert_eq!(
        drain_all(&mut c),
        vec![
            Output::Event(Event::TransferConnected),
            Output::Action(Action::Bridge)
        ]
    );
    assert_eq!(c.phase(), &Phase::Transferred);
    c.handle(Input::TransferBye, t(300));
    assert_eq!(
        drain_all(&mut c),
        vec![
            Output::Action(Action::Unbridge),
            Output::Action(Action::HangUp),
            Output::Event(Event::Ended(EndReason::Transferred)),
            Output::Action(Action::Finished(EndReason::Transferred))
        ]
    );
}

#[test]
fn blind_transfer_connected_then_the_caller_hangs_up() {
    let mut c = talking(CallSettings::default());
    c.handle(to_number(), t(60));
    c.handle(Input::TransferAnswered, t(70));
    drain(&mut c);
    c.handle(Input::CallerBye, t(200));
    assert_eq!(
        drain(&mut c),
        vec![
            Action::HangUpTransfer,
            Action::Finished(EndReason::Transferred)
        ]
    );
}

#[test]
fn failed_blind_transfer_goes_back_to_the_head_of_the_queue() {
    let mut c = talking(CallSettings {
        announce_every: Some(Duration::from_secs(45)),
        ..CallSettings::default()
    });
    c.handle(to_number(), t(60));
    drain(&mut c);
    c.handle(Input::TransferFailed, t(90));
    // Told why, then hold audio; first in the queue, with the triage
    // option chosen at the start.
    assert_eq!(
        drain_all(&mut c),
        back_at_the_head(None, &[Prompt::TransferFailed])
    );
    assert_eq!(c.phase(), &Phase::Queued { ringing: None });
    assert!(c.holds_dispatcher_call());
    assert!(!c.can_transfer());
    // A stay in the queue like any other: announcements, then the
    // offer/answer flow.
    assert_eq!(c.poll_timeout(), Some(t(135)));
    c.handle(
        Input::Offer {
            agent: agent("bob"),
        },
        t(95),
    );
    c.handle(
        Input::AgentAnswered {
            agent: agent("bob"),
        },
        t(100),
    );
    assert_eq!(
        drain(&mut c),
        vec![
            Action::InviteAgent {
                agent: agent("bob")
            },
            Action::ReportAnswered {
                agent: agent("bob")
            },
            Action::Bridge
        ]
    );
    assert!(c.can_transfer());

    // A leg that vanishes before answering is a failure too; the callback
    // offer, when due at once, follows the prompt as at any enqueue.
    let mut c = talking(with_callback(Some("+33612345678"), 0));
    c.handle(to_number(), t(60));
    drain(&mut c);
    c.handle(Input::TransferBye, t(62));
    assert_eq!(
        drain_all(&mut c),
        back_at_the_head(None, &[Prompt::TransferFailed, Prompt::CallbackOffer])
    );
}

#[test]
fn caller_hangs_up_while_the_transfer_rings() {
    let mut c = talking(CallSettings::default());
    c.handle(to_number(), t(60));
    drain(&mut c);
    c.handle(Input::CallerBye, t(65));
    // Alice's call was already reported ended: no abandon.
    assert_eq!(
        drain_all(&mut c),
        vec![
            Output::Action(Action::HangUpTransfer),
            Output::Event(Event::Ended(EndReason::AbandonedTransfer)),
            Output::Action(Action::Finished(EndReason::AbandonedTransfer))
        ]
    );
    assert_eq!(EndReason::AbandonedTransfer.as_str(), "abandoned-transfer");
    // Alice talked with the caller before transferring.
    assert!(EndReason::AbandonedTransfer.was_answered());
    // The caller's media gone: the cause is kept, the number released.
    let mut c = talking(CallSettings::default());
    c.handle(to_number(), t(60));
    drain(&mut c);
    c.handle(Input::MediaTimeout, t(65));
    assert_eq!(
        drain(&mut c),
        vec![
            Action::HangUp,
            Action::HangUpTransfer,
            Action::Finished(EndReason::MediaTimeout)
        ]
    );
}

#[test]
fn blind_transfer_to_a_telesecretary() {
    let mut c = talking(CallSettings::default());
    c.handle(
        Input::TransferRequested {
            to: TransferTo::Agent(agent("bob")),
        },
        t(60),
    );
    let mut want = alice_leaves("agent");
    want.extend(back_at_the_head(
        Some(QueueTarget::Agent(agent("bob"))),
        &[],
    ));
    assert_eq!(drain_all(&mut c), want);
    assert_eq!(c.phase(), &Phase::Queued { ringing: None });
    assert!(c.holds_dispatcher_call());
    // The dispatcher offers it to Bob; the normal flow applies.
    c.handle(
        Input::Offer {
            agent: agent("bob"),
        },
        t(61),
    );
    c.handle(
        Input::AgentAnswered {
            agent: agent("bob"),
        },
        t(64),
    );
    assert_eq!(
        drain(&mut c),
        vec![
            Action::InviteAgent {
                agent: agent("bob")
            },
            Action::ReportAnswered {
                agent: agent("bob")
            },
            Action::Bridge
        ]
    );
    c.handle(Input::CallerBye, t(120));
    assert_eq!(
        drain(&mut c),
        vec![
            Action::Unbridge,
            Action::HangUpAgent {
                agent: agent("bob")
            },
            Action::ReportEnded,
            Action::Finished(EndReason::CallerHangup)
        ]
    );
}

#[test]
fn blind_transfer_to_a_pool_then_abandon() {
    let mut c = talking(CallSettings::default());
    c.handle(
        Input::TransferRequested {
            to: TransferTo::Pool("shared-generaliste".into()),
        },
        t(60),
    );
    let mut want = alice_leaves("pool");
    want.extend(back_at_the_head(
        Some(QueueTarget::Pool("shared-generaliste".into())),
        &[],
    ));
    assert_eq!(drain_all(&mut c), want);
    // Hanging up while waiting again: an abandon of the new dispatcher
    // call, reported once.
    c.handle(Input::CallerBye, t(70));
    assert_eq!(
        drain(&mut c),
        vec![
            Action::ReportAbandoned,
            Action::Finished(EndReason::AbandonedInQueue)
        ]
    );
}

#[test]
fn blind_transfer_while_the_caller_is_held() {
    for (to, kind) in [
        (TransferTo::Number(PORTABLE.into()), "number"),
        (TransferTo::Agent(agent("bob")), "agent"),
        (TransferTo::Pool("shared-generaliste".into()), "pool"),
    ] {
        let mut c = talking(CallSettings::default());
        c.handle(Input::AgentHold, t(30));
        drain(&mut c);
        assert!(c.can_transfer());
        c.handle(Input::TransferRequested { to: to.clone() }, t(60));
        // The same as when talking: Alice leaves, the caller keeps
        // hearing hold audio.
        let got = drain_all(&mut c);
        assert_eq!(got.get(..4), Some(&alice_leaves(kind)[..]), "{kind}");
        assert!(
            got.iter().any(|o| matches!(
                o,
                Output::Action(Action::Play(p)) if p.items.last() == Some(&Prompt::Hold) && p.loop_last
            )),
            "{kind}"
        );
        assert_eq!(to.kind(), kind);
    }
}

#[test]
fn transfer_ignored_unless_talking_with_a_telesecretary() {
    let s = CallSettings {
        triage: Some(menu()),
        ..with_callback(Some("+33612345678"), 0)
    };
    let mut calls: Vec<(&str, Call)> = Vec::new();
    calls.push(("new", Call::new(s.clone())));
    calls.push(("greeting", clone_of(&s, &[Input::Start { open: true }])));
    let to_queue = [
        Input::Start { open: true },
        Input::PlaybackFinished,
        Input::Dtmf('1'),
    ];
    calls.push((
        "triage",
        clone_of(&s, &[Input::Start { open: true }, Input::PlaybackFinished]),
    ));
    calls.push(("queued", clone_of(&s, &to_queue)));
    let ring = Input::Offer {
        agent: agent("alice"),
    };
    calls.push(("ringing", clone_of(&s, &[&to_queue[..], &[ring]].concat())));
    calls.push((
        "callback menu",
        clone_of(&s, &[&to_queue[..], &[Input::Dtmf('2')]].concat()),
    ));
    calls.push((
        "direct route",
        clone_of(&s, &[Input::Start { open: true }, Input::Dtmf('7')]),
    ));
    calls.push((
        "overflow",
        clone_of(
            &s,
            &[&to_queue[..], &[Input::Overflow(OverflowKind::Voicemail)]].concat(),
        ),
    ));
    calls.push(("closed", clone_of(&s, &[Input::Start { open: false }])));
    let mut after = talking(CallSettings::default());
    after.handle(to_number(), t(60));
    calls.push(("blind transfer", after));
    let mut connected = talking(CallSettings::default());
    connected.handle(to_number(), t(60));
    connected.handle(Input::TransferAnswered, t(61));
    calls.push(("transferred", connected));
    let mut ended = talking(CallSettings::default());
    ended.handle(Input::AgentBye, t(60));
    calls.push(("ended", ended));
    let names: Vec<&str> = calls.iter().map(|(n, _)| *n).collect();
    let phases: Vec<&Phase> = calls.iter().map(|(_, c)| c.phase()).collect();
    assert!(
        matches!(
            phases[..],
            [
                Phase::New,
                Phase::Greeting,
                Phase::Triage { .. },
                Phase::Queued { ringing: None },
                Phase::Queued { ringing: Some(_) },
                Phase::CallbackConfirm { .. },
                Phase::Transferring { .. },
                Phase::Overflowing(_),
                Phase::ClosedMessage,
                Phase::BlindTransfer { .. },
                Phase::Transferred,
                Phase::Ended(_),
            ]
        ),
        "{names:?}: {phases:?}"
    );
    for (name, mut c) in calls {
        drain(&mut c);
        let phase = c.phase().clone();
        assert!(!c.can_transfer(), "{name}");
        for to in [
            TransferTo::Number(PORTABLE.into()),
            TransferTo::Agent(agent("bob")),
            TransferTo::Pool("shared".into()),
        ] {
            c.handle(Input::TransferRequested { to }, t(100));
            assert_eq!(drain_all(&mut c), vec![], "{name}");
            assert_eq!(c.phase(), &phase, "{name}");
        }
    }
}

/// A call fed `inputs` at 1 s intervals.
fn clone_of(settings: &CallSettings, inputs: &[Input]) -> Call {
    let mut c = Call::new(settings.clone());
    for (i, input) in inputs.iter().enumerate() {
        c.handle(input.clone(), t(i64::try_from(i).unwrap_or(0)));
    }
    c
}

#[test]
fn transfer_events_for_observers() {
    let mut c = talking(CallSettings::default());
    c.handle(to_number(), t(60));
    c.handle(Input::TransferFailed, t(80));
    c.handle(
        Input::Offer {
            agent: agent("bob"),
        },
        t(81),
    );
    c.handle(
        Input::AgentAnswered {
            agent: agent("bob"),
        },
        t(85),
    );
    c.handle(
        Input::TransferRequested {
            to: TransferTo::Number(PORTABLE.into()),
        },
        t(90),
    );
    c.handle(Input::TransferAnswered, t(95));
    assert_eq!(
        events(&mut c),
        vec![
            Event::TransferDialled { kind: "number" },
            Event::Queued { triage: Some('1') },
            Event::Offered {
                agent: agent("bob")
            },
            Event::Connected {
                agent: agent("bob")
            },
            Event::TransferDialled { kind: "number" },
            Event::TransferConnected,
        ]
    );
}

#[test]
fn attended_transfer_joins_the_caller_with_the_agents_other_call() {
    let mut c = talking(CallSettings::default());
    drain_all(&mut c);
    c.handle(Input::AttendedTransfer, t(100));
    assert_eq!(
        drain_all(&mut c),
        vec![
            Output::Event(Event::TransferDialled { kind: "attended" }),
            Output::Action(Action::Unbridge),
            Output::Action(Action::HangUpAgent {
                agent: agent("alice")
            }),
            Output::Action(Action::ReportEnded),
            Output::Event(Event::TransferConnected),
            Output::Action(Action::JoinTransferred),
        ]
    );
    assert_eq!(c.phase(), &Phase::Transferred);
    // The other party hangs up: the call ends as transferred.
    c.handle(Input::TransferBye, t(200));
    let out = drain(&mut c);
    assert!(out.contains(&Action::HangUp), "{out:?}");
    assert!(
        out.contains(&Action::Finished(EndReason::Transferred)),
        "{out:?}"
    );
    // Outside a conversation with an agent it is ignored.
    let mut q = queued(CallSettings::default());
    drain_all(&mut q);
    q.handle(Input::AttendedTransfer, t(10));
    assert!(drain_all(&mut q).is_empty());
}

#[test]
fn a_vanished_agent_sends_the_caller_back_to_the_head_of_the_queue() {
    let mut c = talking(CallSettings::default());
    drain_all(&mut c);
    c.handle(Input::AgentLost, t(100));
    let out = drain_all(&mut c);
    assert_eq!(
        out.get(..5),
        Some(
            &[
                Output::Event(Event::AgentLost),
                Output::Action(Action::Unbridge),
                Output::Action(Action::HangUpAgent {
                    agent: agent("alice")
                }),
                Output::Action(Action::ReportEnded),
                Output::Event(Event::Queued { triage: Some('1') }),
            ][..]
        ),
        "{out:?}"
    );
    assert!(
        out.iter().any(|o| matches!(
            o,
            Output::Action(Action::Enqueue {
                head: true,
                target: None,
                ..
            })
        )),
        "{out:?}"
    );
    assert!(matches!(c.phase(), Phase::Queued { .. }));
    // Another telesecretary takes the caller.
    c.handle(
        Input::Offer {
            agent: agent("bob"),
        },
        t(101),
    );
    c.handle(
        Input::AgentAnswered {
            agent: agent("bob"),
        },
        t(104),
    );
    assert!(matches!(c.phase(), Phase::Bridged { .. }));
    // Outside a conversation it is a hang-up (nothing while queued).
    let mut q = queued(CallSettings::default());
    drain_all(&mut q);
    q.handle(Input::AgentLost, t(10));
    assert!(drain_all(&mut q).is_empty());
}

#[test]
fn callback_digit_after_a_triage_timeout() {
    let mut s = with_callback(Some("+33612345678"), 0);
    if let Some(cb) = s.callback.as_mut() {
        cb.digit = '8';
    }
    s.triage = Some(menu());
    let mut c = Call::new(s);
    c.handle(Input::Start { open: true }, t(0));
    c.handle(Input::PlaybackFinished, t(2)); // greeting done
    c.handle(Input::PlaybackFinished, t(4)); // menu played
    c.handle_timeout(t(10)); // no key: the default option
    drain_all(&mut c);
    assert_eq!(c.phase(), &Phase::Queued { ringing: None }, "queued");
    c.handle(Input::PlaybackFinished, t(12)); // the callback offer played
    drain_all(&mut c);
    c.handle(Input::Dtmf('8'), t(13));
    let out = drain_all(&mut c);
    assert!(
        matches!(c.phase(), Phase::CallbackConfirm { .. }),
        "{:?} {out:?}",
        c.phase()
    );
}
