//! "For English, press 9": the language choice, on virtual time.

use super::*;

fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + s, 0).expect("valid")
}

fn drain(c: &mut Call) -> Vec<Output> {
    std::iter::from_fn(|| c.poll_output()).collect()
}

fn once(items: Vec<Prompt>) -> Action {
    Action::Play(Playlist {
        items,
        loop_last: false,
    })
}

fn menu() -> TriageMenu {
    TriageMenu {
        timeout: Duration::from_secs(6),
        default: Some('1'),
        options: ['1', '2']
            .into_iter()
            .map(|digit| TriageChoice {
                digit,
                direct_route: false,
            })
            .collect(),
    }
}

fn english(triage: Option<TriageMenu>) -> CallSettings {
    CallSettings {
        triage,
        english: Some('9'),
        ..CallSettings::default()
    }
}

fn enqueued(out: &[Output]) -> Option<(Option<char>, Language)> {
    out.iter().find_map(|o| match o {
        Output::Action(Action::Enqueue {
            triage, language, ..
        }) => Some((*triage, *language)),
        _ => None,
    })
}

/// The offer follows the greeting; 9 during the menu switches to English:
/// the greeting and the menu again in English, the triage digit then
/// counts, and the call is queued for an English-speaking agent.
#[test]
fn nine_in_the_menu_switches_to_english() {
    let mut c = Call::new(english(Some(menu())));
    c.handle(Input::Start { open: true }, t(0));
    let out = drain(&mut c);
    assert!(out.contains(&Output::Action(once(vec![
        Prompt::Greeting,
        Prompt::EnglishOffer
    ]))));
    c.handle(Input::PlaybackFinished, t(6));
    drain(&mut c);
    assert!(matches!(c.phase(), Phase::Triage { .. }));
    c.handle(Input::Dtmf('9'), t(7));
    assert_eq!(
        drain(&mut c),
        vec![
            Output::Event(Event::LanguageChosen(Language::En)),
            Output::Action(Action::SetLanguage(Language::En)),
            Output::Action(once(vec![Prompt::Greeting])),
        ]
    );
    assert_eq!(c.language(), Language::En);
    c.handle(Input::PlaybackFinished, t(10));
    assert!(
        drain(&mut c).contains(&Output::Action(Action::Play(Playlist::once(
            Prompt::Triage
        ))))
    );
    // 9 again does nothing special now: not a menu option, the menu replays.
    c.handle(Input::Dtmf('9'), t(11));
    assert!(!drain(&mut c)
        .iter()
        .any(|o| matches!(o, Output::Action(Action::SetLanguage(_)))));
    c.handle(Input::Dtmf('2'), t(12));
    assert_eq!(enqueued(&drain(&mut c)), Some((Some('2'), Language::En)));
    assert_eq!(c.phase(), &Phase::Queued { ringing: None });
}

/// 9 pressed during the greeting counts too.
#[test]
fn nine_during_the_greeting() {
    let mut c = Call::new(english(Some(menu())));
    c.handle(Input::Start { open: true }, t(0));
    drain(&mut c);
    c.handle(Input::Dtmf('9'), t(2));
    assert!(drain(&mut c).contains(&Output::Action(Action::SetLanguage(Language::En))));
    assert_eq!(c.phase(), &Phase::Greeting);
    c.handle(Input::PlaybackFinished, t(6));
    drain(&mut c);
    // Silence after the English menu: the default option, in English.
    c.handle(Input::PlaybackFinished, t(10));
    assert_eq!(c.poll_timeout(), Some(t(16)));
    c.handle_timeout(t(16));
    assert_eq!(enqueued(&drain(&mut c)), Some((Some('1'), Language::En)));
}

/// A caller who does not press 9 is unchanged: French, no requirement.
#[test]
fn no_nine_stays_french() {
    let mut c = Call::new(english(Some(menu())));
    c.handle(Input::Start { open: true }, t(0));
    c.handle(Input::PlaybackFinished, t(6));
    c.handle(Input::Dtmf('1'), t(8));
    let out = drain(&mut c);
    assert!(!out
        .iter()
        .any(|o| matches!(o, Output::Action(Action::SetLanguage(_)))));
    assert_eq!(enqueued(&out), Some((Some('1'), Language::Fr)));
    assert_eq!(c.language(), Language::Fr);
}

/// A practice without English: no offer, and 9 is an ordinary wrong key.
#[test]
fn french_only_practice_offers_nothing() {
    let mut c = Call::new(CallSettings {
        triage: Some(menu()),
        ..CallSettings::default()
    });
    c.handle(Input::Start { open: true }, t(0));
    assert!(
        drain(&mut c).contains(&Output::Action(Action::Play(Playlist::once(
            Prompt::Greeting
        ))))
    );
    c.handle(Input::PlaybackFinished, t(6));
    drain(&mut c);
    c.handle(Input::Dtmf('9'), t(7));
    assert_eq!(
        drain(&mut c),
        vec![Output::Action(Action::Play(Playlist::once(Prompt::Triage)))]
    );
    assert_eq!(c.language(), Language::Fr);
}

/// Without a triage menu the caller has a few seconds after the offer;
/// silence queues the call in French, 9 in English.
#[test]
fn without_a_menu_the_offer_waits_a_moment() {
    let mut c = Call::new(english(None));
    c.handle(Input::Start { open: true }, t(0));
    c.handle(Input::PlaybackFinished, t(6));
    assert_eq!(enqueued(&drain(&mut c)), None);
    assert_eq!(c.poll_timeout(), Some(t(6) + LANGUAGE_WAIT));
    c.handle_timeout(t(6) + LANGUAGE_WAIT);
    assert_eq!(enqueued(&drain(&mut c)), Some((None, Language::Fr)));

    let mut c = Call::new(english(None));
    c.handle(Input::Start { open: true }, t(0));
    c.handle(Input::PlaybackFinished, t(6));
    c.handle(Input::Dtmf('9'), t(7));
    assert!(drain(&mut c).contains(&Output::Action(once(vec![Prompt::Greeting]))));
    // No second wait: queued in English once the English greeting ends.
    c.handle(Input::PlaybackFinished, t(11));
    assert_eq!(enqueued(&drain(&mut c)), Some((None, Language::En)));
}

/// Hanging up while the caller may still choose is a greeting abandon.
#[test]
fn hang_up_during_the_language_wait() {
    let mut c = Call::new(english(None));
    c.handle(Input::Start { open: true }, t(0));
    c.handle(Input::PlaybackFinished, t(6));
    c.handle(Input::CallerBye, t(7));
    assert_eq!(c.phase(), &Phase::Ended(EndReason::AbandonedGreeting));
    assert_eq!(
        c.disposition(),
        Some(Disposition::Abandoned(AbandonPhase::Greeting))
    );
}
