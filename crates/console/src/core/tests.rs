use super::*;
use rand::SeedableRng;

fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([192, 0, 2, last])
}

/// A fresh seeded generator per call (tokens differ between logins).
fn rng() -> rand::rngs::StdRng {
    static SEED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(7);
    rand::rngs::StdRng::seed_from_u64(SEED.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// Alice of the demo (`alice-demo`, realm `permanence`).
fn alice() -> Credentials {
    Credentials {
        username: "alice".into(),
        realm: "permanence".into(),
        ha1_md5: Some(permanence_sip::digest::ha1(
            DigestAlgorithm::Md5,
            "alice",
            "permanence",
            "alice-demo",
        )),
        ha1_sha256: None,
    }
}

fn login(core: &mut Core, pw: &str, src: IpAddr, now: DateTime<Utc>) -> Login {
    core.login("alice", pw, Some(&alice()), src, now, &mut rng())
}

fn session_of(l: Login) -> NewSession {
    match l {
        Login::Ok(s) => s,
        other => panic!("expected a session, got {other:?}"),
    }
}

#[test]
fn ha1_md5_and_sha256_are_checked_sha256_first() {
    let mut c = alice();
    assert!(c.matches("alice-demo"));
    assert!(!c.matches("alice-dem0"));
    assert!(!c.matches(""));
    // Upper-case hex in the configuration still matches.
    c.ha1_md5 = c.ha1_md5.map(|h| h.to_ascii_uppercase());
    assert!(c.matches("alice-demo"));
    // SHA-256 wins when both are there (a stale MD5 is ignored).
    c.ha1_sha256 = Some(permanence_sip::digest::ha1(
        DigestAlgorithm::Sha256,
        "alice",
        "permanence",
        "new-secret",
    ));
    assert!(c.matches("new-secret"));
    assert!(!c.matches("alice-demo"));
    c.ha1_md5 = None;
    c.ha1_sha256 = None;
    assert!(!c.matches("alice-demo"));
}

#[test]
fn right_password_opens_a_session_wrong_one_does_not() {
    let mut core = Core::new(SessionSettings::default());
    assert_eq!(
        login(&mut core, "nope", ip(1), t(0)),
        Login::BadCredentials { blocked: None }
    );
    assert_eq!(
        core.login("mallory", "x", None, ip(1), t(0), &mut rng()),
        Login::BadCredentials { blocked: None }
    );
    let s = session_of(login(&mut core, "alice-demo", ip(1), t(1)));
    assert_eq!(s.agent, "alice");
    assert_eq!(s.token.len(), 43);
    assert_eq!(s.csrf.len(), 43);
    assert_ne!(s.token, s.csrf);
    assert!(s
        .token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    let info = core.session(&s.token, t(2)).unwrap();
    assert_eq!(info.agent, "alice");
    assert_eq!(info.csrf, s.csrf);
    assert!(core.session("not-a-token", t(2)).is_none());
    assert!(core.session(&s.csrf, t(2)).is_none());
}

#[test]
fn a_guessing_source_is_throttled_without_checking() {
    let mut core = Core::new(SessionSettings::default());
    let mut outcomes = Vec::new();
    for _ in 0..4 {
        outcomes.push(login(&mut core, "guess", ip(9), t(0)));
    }
    assert_eq!(outcomes[0], Login::BadCredentials { blocked: None });
    assert_eq!(
        outcomes[3],
        Login::BadCredentials {
            blocked: Some(Duration::from_secs(2))
        }
    );
    // Blocked: even the right password is refused, unchecked.
    assert!(matches!(
        login(&mut core, "alice-demo", ip(9), t(1)),
        Login::Throttled { retry_after } if retry_after == Duration::from_secs(1)
    ));
    // Another address is not concerned.
    session_of(login(&mut core, "alice-demo", ip(10), t(1)));
    // Once the block is over, the right password works.
    session_of(login(&mut core, "alice-demo", ip(9), t(3)));
}

#[test]
fn a_user_guessed_from_many_addresses_is_throttled_but_not_from_their_desk() {
    let mut core = Core::new(SessionSettings::default());
    // Alice logged in from her desk once.
    session_of(login(&mut core, "alice-demo", ip(1), t(0)));
    // Ten addresses, one guess each: free; the eleventh starts a block.
    for i in 0..10u8 {
        assert_eq!(
            login(&mut core, "guess", ip(100 + i), t(10)),
            Login::BadCredentials { blocked: None }
        );
    }
    assert_eq!(
        login(&mut core, "guess", ip(200), t(10)),
        Login::BadCredentials {
            blocked: Some(Duration::from_secs(30))
        }
    );
    // A fresh address is refused for alice (per user) ...
    assert!(matches!(
        login(&mut core, "alice-demo", ip(201), t(11)),
        Login::Throttled { .. }
    ));
    // ... not for bob,
    let bob = Credentials {
        username: "bob".into(),
        ha1_md5: Some(permanence_sip::digest::ha1(
            DigestAlgorithm::Md5,
            "bob",
            "permanence",
            "bob-demo",
        )),
        ..alice()
    };
    session_of(core.login("bob", "bob-demo", Some(&bob), ip(201), t(11), &mut rng()));
    // ... and alice's desk still gets in.
    session_of(login(&mut core, "alice-demo", ip(1), t(12)));
    // Her login does not lift the block for the others.
    assert!(matches!(
        login(&mut core, "alice-demo", ip(202), t(13)),
        Login::Throttled { .. }
    ));
    // Once it is over, the next failure blocks again, for twice as long.
    assert_eq!(
        login(&mut core, "guess", ip(203), t(41)),
        Login::BadCredentials {
            blocked: Some(Duration::from_secs(60))
        }
    );
}

#[test]
fn a_session_ends_at_its_absolute_expiry_even_when_used() {
    let settings = SessionSettings {
        lifetime: Duration::from_secs(600 * 60),
        ..SessionSettings::default()
    };
    let mut core = Core::new(settings);
    let s = session_of(login(&mut core, "alice-demo", ip(1), t(0)));
    // Used every 30 minutes: alive until 10 hours.
    let mut now = 0;
    while now < 600 * 60 - 1800 {
        now += 1800;
        assert!(core.session(&s.token, t(now)).is_some(), "at {now}");
    }
    assert!(core.session(&s.token, t(600 * 60)).is_none());
    assert_eq!(core.session_count(), 0);
}

#[test]
fn an_idle_session_ends_after_an_hour() {
    let mut core = Core::new(SessionSettings::default());
    let s = session_of(login(&mut core, "alice-demo", ip(1), t(0)));
    assert!(core.session(&s.token, t(3599)).is_some());
    // Peeking (the event stream) is not activity.
    assert!(core.peek(&s.token, t(3599 + 3599)).is_some());
    assert!(core.session(&s.token, t(3599 + 3600)).is_none());
    assert!(core.peek(&s.token, t(3599 + 3600)).is_none());
}

#[test]
fn csrf_must_match_the_session() {
    let mut core = Core::new(SessionSettings::default());
    let a = session_of(login(&mut core, "alice-demo", ip(1), t(0)));
    let b = session_of(login(&mut core, "alice-demo", ip(2), t(0)));
    let info = core.session(&a.token, t(1)).unwrap();
    assert!(csrf_ok(&info, Some(&a.csrf)));
    assert!(!csrf_ok(&info, Some(&b.csrf)));
    assert!(!csrf_ok(&info, Some("")));
    assert!(!csrf_ok(&info, None));
}

#[test]
fn logout_ends_the_session() {
    let mut core = Core::new(SessionSettings::default());
    let s = session_of(login(&mut core, "alice-demo", ip(1), t(0)));
    assert_eq!(core.logout(&s.token).as_deref(), Some("alice"));
    assert!(core.session(&s.token, t(1)).is_none());
    assert_eq!(core.logout(&s.token), None);
    let s = session_of(login(&mut core, "alice-demo", ip(1), t(2)));
    assert_eq!(core.end_agent("alice"), 1);
    assert!(core.session(&s.token, t(3)).is_none());
}

#[test]
fn sessions_are_capped_per_agent_and_in_all() {
    let mut core = Core::new(SessionSettings {
        max_sessions: 5,
        max_per_agent: 3,
        ..SessionSettings::default()
    });
    let mut r = rng();
    let tokens: Vec<NewSession> = (0..4)
        .map(|i| session_of(core.login("alice", "alice-demo", Some(&alice()), ip(1), t(i), &mut r)))
        .collect();
    assert_eq!(core.session_count(), 3);
    // The least recently used one went.
    assert!(core.session(&tokens[0].token, t(5)).is_none());
    assert!(core.session(&tokens[3].token, t(5)).is_some());
    for i in 0..10u8 {
        let c = Credentials {
            username: format!("agent{i}"),
            ha1_md5: Some(permanence_sip::digest::ha1(
                DigestAlgorithm::Md5,
                &format!("agent{i}"),
                "permanence",
                "pw",
            )),
            ..alice()
        };
        session_of(core.login(
            &c.username.clone(),
            "pw",
            Some(&c),
            ip(1),
            t(10 + i64::from(i)),
            &mut r,
        ));
        assert!(core.session_count() <= 5);
    }
}

#[test]
fn failures_tracked_are_bounded() {
    let mut core = Core::new(SessionSettings {
        sources: ThrottleSettings {
            max_tracked: 50,
            ..ThrottleSettings::default()
        },
        users: UserThrottleSettings {
            max_tracked: 50,
            ..UserThrottleSettings::default()
        },
        ..SessionSettings::default()
    });
    for i in 0..5_000u32 {
        let src = IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
        let _ = core.login(
            &format!("u{i}"),
            "x",
            None,
            src,
            t(i64::from(i) * 4000),
            &mut rng(),
        );
    }
    let (sources, users) = core.tracked();
    assert!(sources <= 50, "{sources}");
    assert!(users <= 50, "{users}");
}

#[test]
fn oversized_input_is_refused() {
    let mut core = Core::new(SessionSettings::default());
    let long = "x".repeat(10_000);
    assert!(matches!(
        core.login("alice", &long, Some(&alice()), ip(1), t(0), &mut rng()),
        Login::BadCredentials { .. }
    ));
    assert!(matches!(
        core.login(&long, "alice-demo", Some(&alice()), ip(2), t(0), &mut rng()),
        Login::BadCredentials { .. }
    ));
}
