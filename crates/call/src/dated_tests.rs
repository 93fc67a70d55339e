//! Dated announcements and voicemail when closed, on virtual time.

use super::*;

fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + s, 0).expect("valid")
}

fn drain(c: &mut Call) -> Vec<Action> {
    std::iter::from_fn(|| c.poll_output())
        .filter_map(Output::action)
        .collect()
}

fn events(c: &mut Call) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_output())
        .filter_map(Output::event)
        .collect()
}

fn play(items: Vec<Prompt>) -> Action {
    Action::Play(Playlist {
        items,
        loop_last: false,
    })
}

fn dated(mode: AnnouncementMode) -> CallSettings {
    CallSettings {
        announcement: Some(Announcement { index: 1, mode }),
        ..CallSettings::default()
    }
}

fn triage() -> TriageMenu {
    TriageMenu {
        timeout: Duration::from_secs(5),
        default: None,
        options: vec![TriageChoice {
            digit: '1',
            direct_route: false,
        }],
    }
}

#[test]
fn after_greeting_plays_then_the_call_goes_on() {
    let mut c = Call::new(dated(AnnouncementMode::AfterGreeting));
    c.handle(Input::Start { open: true }, t(0));
    assert_eq!(
        drain(&mut c),
        vec![
            Action::Answer,
            play(vec![Prompt::Greeting, Prompt::Dated(1)])
        ]
    );
    c.handle(Input::PlaybackFinished, t(15));
    let actions = drain(&mut c);
    assert!(
        matches!(actions.first(), Some(Action::Enqueue { .. })),
        "{actions:?}"
    );
    // Offered like any call: the caller who hangs up now abandons.
    c.handle(Input::CallerBye, t(20));
    drain(&mut c);
    assert_eq!(
        c.disposition(),
        Some(Disposition::Abandoned(AbandonPhase::Queue))
    );
}

#[test]
fn a_hang_up_during_the_announcement_is_a_greeting_abandon() {
    let mut c = Call::new(dated(AnnouncementMode::AfterGreeting));
    c.handle(Input::Start { open: true }, t(0));
    c.handle(Input::CallerBye, t(8));
    drain(&mut c);
    assert_eq!(
        c.disposition(),
        Some(Disposition::Abandoned(AbandonPhase::Greeting))
    );
}

#[test]
fn a_triage_digit_during_the_announcement_counts() {
    let mut c = Call::new(CallSettings {
        triage: Some(triage()),
        ..dated(AnnouncementMode::AfterGreeting)
    });
    c.handle(Input::Start { open: true }, t(0));
    drain(&mut c);
    c.handle(Input::Dtmf('1'), t(6));
    assert!(matches!(c.phase(), Phase::Queued { .. }), "{:?}", c.phase());
}

#[test]
fn without_an_announcement_only_the_greeting_plays() {
    let mut c = Call::new(CallSettings::default());
    c.handle(Input::Start { open: true }, t(0));
    assert_eq!(
        drain(&mut c),
        vec![Action::Answer, play(vec![Prompt::Greeting])]
    );
}

#[test]
fn instead_of_queue_is_a_closed_day() {
    let mut c = Call::new(CallSettings {
        triage: Some(triage()),
        ..dated(AnnouncementMode::InsteadOfQueue)
    });
    c.handle(Input::Start { open: true }, t(0));
    let outs = std::iter::from_fn(|| c.poll_output()).collect::<Vec<_>>();
    assert_eq!(
        outs,
        vec![
            Output::Action(Action::Answer),
            Output::Event(Event::Answered { open: false }),
            Output::Action(play(vec![
                Prompt::Greeting,
                Prompt::Dated(1),
                Prompt::Closed
            ])),
        ]
    );
    // No triage, no queue: a digit does nothing.
    c.handle(Input::Dtmf('1'), t(3));
    assert_eq!(drain(&mut c), vec![]);
    c.handle(Input::PlaybackFinished, t(30));
    assert_eq!(
        drain(&mut c),
        vec![Action::HangUp, Action::Finished(EndReason::Closed)]
    );
    assert_eq!(c.disposition(), Some(Disposition::Closed));
}

#[test]
fn instead_of_queue_hang_up_is_closed_not_abandoned() {
    let mut c = Call::new(dated(AnnouncementMode::InsteadOfQueue));
    c.handle(Input::Start { open: true }, t(0));
    c.handle(Input::CallerBye, t(2));
    drain(&mut c);
    assert_eq!(c.disposition(), Some(Disposition::Closed));
    assert!(!c.disposition().is_some_and(|d| d.offered()));
}

#[test]
fn closed_by_the_hours_plays_only_a_closure_announcement() {
    let mut c = Call::new(dated(AnnouncementMode::InsteadOfQueue));
    c.handle(Input::Start { open: false }, t(0));
    assert_eq!(
        drain(&mut c),
        vec![Action::Answer, play(vec![Prompt::Dated(1), Prompt::Closed])]
    );
    let mut c = Call::new(dated(AnnouncementMode::AfterGreeting));
    c.handle(Input::Start { open: false }, t(0));
    assert_eq!(
        drain(&mut c),
        vec![Action::Answer, play(vec![Prompt::Closed])]
    );
}

fn closed_voicemail() -> CallSettings {
    CallSettings {
        closed_voicemail: true,
        voicemail_max: Duration::from_secs(60),
        ..CallSettings::default()
    }
}

#[test]
fn voicemail_when_closed_records_after_the_closed_prompt() {
    let mut c = Call::new(closed_voicemail());
    c.handle(Input::Start { open: false }, t(0));
    assert_eq!(
        drain(&mut c),
        vec![Action::Answer, play(vec![Prompt::Closed])]
    );
    c.handle(Input::PlaybackFinished, t(12));
    assert_eq!(
        drain(&mut c),
        vec![Action::Play(Playlist::once(Prompt::Voicemail))]
    );
    assert_eq!(c.phase(), &Phase::ClosedVoicemail);
    c.handle(Input::PlaybackFinished, t(16));
    let out = std::iter::from_fn(|| c.poll_output()).collect::<Vec<_>>();
    assert_eq!(
        out,
        vec![
            Output::Event(Event::Recording),
            Output::Action(Action::StartRecording(Duration::from_secs(60)))
        ]
    );
    assert_eq!(c.poll_timeout(), Some(t(76)));
    c.handle_timeout(t(76));
    assert_eq!(
        drain(&mut c),
        vec![
            Action::StopRecording,
            Action::HangUp,
            Action::Finished(EndReason::Voicemail)
        ]
    );
    // A closed-hours call, whatever it left: not offered, not overflowed.
    assert_eq!(c.disposition(), Some(Disposition::Closed));
}

#[test]
fn voicemail_when_closed_caller_leaving_early() {
    // During the voicemail prompt: no message, closed.
    let mut c = Call::new(closed_voicemail());
    c.handle(Input::Start { open: false }, t(0));
    c.handle(Input::PlaybackFinished, t(12));
    c.handle(Input::CallerBye, t(13));
    assert_eq!(
        drain(&mut c).last(),
        Some(&Action::Finished(EndReason::Closed))
    );
    assert_eq!(c.disposition(), Some(Disposition::Closed));
    // During the recording: the message is kept.
    let mut c = Call::new(closed_voicemail());
    c.handle(Input::Start { open: false }, t(0));
    c.handle(Input::PlaybackFinished, t(12));
    c.handle(Input::PlaybackFinished, t(16));
    drain(&mut c);
    c.handle(Input::CallerBye, t(30));
    assert_eq!(
        drain(&mut c),
        vec![
            Action::StopRecording,
            Action::Finished(EndReason::Voicemail)
        ]
    );
    assert_eq!(c.disposition(), Some(Disposition::Closed));
}

#[test]
fn voicemail_after_a_closed_day_and_a_dispatcher_closure() {
    let mut c = Call::new(CallSettings {
        announcement: Some(Announcement {
            index: 0,
            mode: AnnouncementMode::InsteadOfQueue,
        }),
        ..closed_voicemail()
    });
    c.handle(Input::Start { open: true }, t(0));
    drain(&mut c);
    c.handle(Input::PlaybackFinished, t(30));
    // Closed exit: no overflow event, the call never was in a queue.
    let ev = events(&mut c);
    assert!(ev.is_empty(), "{ev:?}");
    assert_eq!(c.phase(), &Phase::ClosedVoicemail);
    // Queued, then refused as closed by the dispatcher.
    let mut c = Call::new(closed_voicemail());
    c.handle(Input::Start { open: true }, t(0));
    c.handle(Input::PlaybackFinished, t(4));
    c.handle(Input::Closed, t(5));
    c.handle(Input::PlaybackFinished, t(15));
    drain(&mut c);
    assert_eq!(c.phase(), &Phase::ClosedVoicemail);
}
