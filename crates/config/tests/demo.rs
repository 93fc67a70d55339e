//! The shipped demo configuration validates and its lookups work.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use permanence_config::{
    load, CallbackOffer, CallbackPolicy, Config, DigestAlgorithm, NumberKind, OutboundSettings,
    OverflowTarget, PromptKind, Strategy, TransferTo,
};
use permanence_numbers::{normalize, Country};
use permanence_outbound::AllowList;
use permanence_sip::digest::ha1;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn demo() -> Config {
    match load(&repo().join("config/permanence.toml")) {
        Ok(c) => c,
        Err(e) => panic!("demo configuration does not validate:\n{e}"),
    }
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test literal")
        .with_timezone(&Utc)
}

#[test]
fn demo_validates_without_warnings() {
    let c = demo();
    let w: Vec<String> = c.warnings().iter().map(ToString::to_string).collect();
    assert!(w.is_empty(), "unexpected warnings: {w:#?}");
    let ids: Vec<&str> = c.practices().iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["caron", "kine-dupont", "martin", "tilleuls"]);
}

#[test]
fn network_settings() {
    let c = demo();
    let lo: IpAddr = "127.0.0.1".parse().expect("ip");
    assert_eq!(
        c.sip.listen_udp,
        vec!["127.0.0.1:5060".parse().expect("addr")]
    );
    assert_eq!(
        c.sip.listen_tcp,
        vec!["127.0.0.1:5060".parse().expect("addr")]
    );
    assert_eq!(c.sip.realm, "permanence");
    assert_eq!(c.sip.public_host, "127.0.0.1");
    assert_eq!(
        c.sip.registrar.qualify_interval,
        Some(Duration::from_secs(30))
    );
    assert_eq!((c.rtp.bind, c.rtp.advertise), (lo, lo));
    assert_eq!((c.rtp.port_min, c.rtp.port_max), (20000, 20999));
    assert_eq!(c.rtp.pair_count(), 500);
    assert_eq!(c.rtp.rtp_ports().count(), 500);
    assert_eq!(c.http.listen, "127.0.0.1:8080".parse().expect("addr"));
    assert_eq!(c.dispatcher.strategy, Strategy::LongestIdle);
}

#[test]
fn trunk_is_loopback_only() {
    let c = demo();
    let t = c
        .trunk_for("127.0.0.1".parse().expect("ip"))
        .expect("trunk");
    assert_eq!(t.name, "demo-carrier");
    assert!(c
        .trunk_for("::ffff:127.0.0.1".parse().expect("ip"))
        .is_some());
    assert!(c.trunk_for("127.0.0.2".parse().expect("ip")).is_none());
    assert!(c.trunk_for("::1".parse().expect("ip")).is_none());
    assert!(c.trunk_for("192.0.2.1".parse().expect("ip")).is_none());
}

#[test]
fn agents_have_the_documented_demo_passwords() {
    let c = demo();
    let names: Vec<&str> = c.agents().iter().map(|a| a.username.as_str()).collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
    for a in c.agents() {
        let pw = format!("{}-demo", a.username);
        for (alg, sip_alg) in [
            (DigestAlgorithm::Md5, DigestAlgorithm::Md5),
            (DigestAlgorithm::Sha256, DigestAlgorithm::Sha256),
        ] {
            assert_eq!(
                a.ha1(alg),
                Some(ha1(sip_alg, &a.username, &c.sip.realm, &pw).as_str()),
                "{} {alg:?}",
                a.username
            );
        }
        assert!(!a.has_shift());
    }
    let alice = c.agent("alice").expect("alice");
    assert_eq!(alice.skill("generaliste"), 5);
    assert_eq!(alice.skill("pediatrie"), 3);
    assert!(alice.speaks("fr") && !alice.speaks("en"));
    let bob = c.agent("bob").expect("bob");
    assert_eq!(bob.skill("cardiologie"), 5);
    assert!(bob.speaks("en"));
    let carol = c.agent("carol").expect("carol");
    assert_eq!((carol.skill("kine"), carol.skill("infirmier")), (4, 4));
    assert!(c.agent("dave").is_none());
}

#[test]
fn number_lookups_normalise() {
    let c = demo();
    for raw in [
        "+33450000001",
        "0450000001",
        "tel:+33450000001",
        "+33 4 50 00 00 01",
        "sip:+33450000001@carrier.example;user=phone",
        "04.50.00.00.01",
    ] {
        let (p, n) = c
            .find_practice(raw)
            .unwrap_or_else(|| panic!("{raw} not found"));
        assert_eq!(p.id, "martin", "{raw}");
        assert_eq!(n.as_str(), "+33450000001");
        let n = normalize(raw, Country::Fr).expect("normalises");
        assert_eq!(
            c.practice_by_number(&n).map(|p| p.id.as_str()),
            Some("martin")
        );
    }
    let did = normalize("09 80 00 00 04", Country::Fr).expect("did");
    assert_eq!(
        c.number_owner(&did).map(|(p, k)| (p.id.as_str(), k)),
        Some(("tilleuls", NumberKind::Did))
    );
    let fwd = normalize("+33380000004", Country::Fr).expect("fwd");
    assert_eq!(
        c.number_owner(&fwd).map(|(p, k)| (p.id.as_str(), k)),
        Some(("tilleuls", NumberKind::ForwardedFrom))
    );
    // The kiné's number was written in national form in its dialplan.
    assert_eq!(
        c.find_practice("+33478000005").map(|(p, _)| p.id.as_str()),
        Some("kine-dupont")
    );
    assert_eq!(
        c.find_practice("+33140000002").map(|(p, _)| p.id.as_str()),
        Some("caron")
    );
    assert!(c.find_practice("+33499999999").is_none());
    assert!(c.find_practice("alice").is_none());
    assert_eq!(c.numbers().len(), 5);
}

#[test]
fn practices_content() {
    let c = demo();
    let martin = c.practice("martin").expect("martin");
    assert_eq!(martin.name, "Cabinet du Dr Martin");
    assert_eq!(martin.specialty, "generaliste");
    // Monday 2026-01-12 09:00 Paris (08:00 UTC): open; 13:00 Paris closed;
    // Saturday 10:00 open; Sunday closed; Lundi de Pâques 2026-04-06 closed.
    assert!(martin.hours.is_open(utc("2026-01-12T08:00:00Z")));
    assert!(!martin.hours.is_open(utc("2026-01-12T12:00:00Z")));
    assert!(martin.hours.is_open(utc("2026-01-17T09:00:00Z")));
    assert!(!martin.hours.is_open(utc("2026-01-18T09:00:00Z")));
    assert!(!martin.hours.is_open(utc("2026-04-06T08:00:00Z")));
    let triage = martin.triage.as_ref().expect("triage");
    let digits: Vec<char> = triage.options.iter().map(|o| o.digit).collect();
    assert_eq!(digits, ['1', '2', '3']);
    assert_eq!(
        triage.default_option().map(|o| o.label.as_str()),
        Some("rendez-vous")
    );
    assert_eq!(triage.option('1').map(|o| o.priority), Some(10));
    assert_eq!(martin.routing.dedicated, ["alice"]);
    assert_eq!(martin.routing.steps.len(), 3);
    assert_eq!(martin.routing.overflow, OverflowTarget::Voicemail);
    let names = |v: Vec<&permanence_config::Agent>| -> Vec<String> {
        v.into_iter().map(|a| a.username.clone()).collect()
    };
    assert_eq!(names(c.eligible_agents(martin, Duration::ZERO)), ["alice"]);
    assert_eq!(
        names(c.eligible_agents(martin, Duration::from_secs(20))),
        ["alice", "bob"]
    );
    assert_eq!(
        names(c.eligible_agents(martin, Duration::from_secs(60))),
        ["alice", "bob", "carol"]
    );
    let greeting = martin.prompts.get(PromptKind::Greeting).expect("greeting");
    assert!(greeting.path.ends_with("prompts/martin-greeting.wav"));
    assert!(greeting.path.is_file());
    assert!(
        greeting.duration >= Duration::from_secs(2) && greeting.duration <= Duration::from_secs(5)
    );
    assert_eq!(greeting.origin.field, "prompts.greeting");
    assert!(greeting.origin.line > 1);
    assert!(martin.prompts.get(PromptKind::Hold).is_none());

    let caron = c.practice("caron").expect("caron");
    assert_eq!(caron.languages, ["fr", "en"]);
    assert_eq!(caron.routing.dedicated, ["bob"]);
    // « For English, press 9 »: the built-in offer, not a triage option;
    // the practice's English recordings in [prompts.en].
    assert_eq!(caron.english_digit(), Some('9'));
    assert!(caron.triage.as_ref().and_then(|t| t.option('9')).is_none());
    let en = caron.prompts.en.as_ref().expect("[prompts.en]");
    for kind in [PromptKind::Greeting, PromptKind::Triage] {
        let p = en.get(kind).expect("English recording");
        assert!(p.path.is_file());
        assert_eq!(p.origin.field, format!("prompts.en.{}", kind.key()));
        assert!(caron.prompts.get_in(kind, permanence_types::Language::En) == Some(p));
    }
    assert!(caron
        .prompts
        .get_in(PromptKind::Hold, permanence_types::Language::En)
        .is_none());
    // Summer closure 2027-08-02..20: Tuesday 2027-08-10 10:00 Paris is closed.
    assert!(!caron.hours.is_open(utc("2027-08-10T08:00:00Z")));
    assert!(caron.hours.is_open(utc("2027-08-24T08:00:00Z")));

    let tilleuls = c.practice("tilleuls").expect("tilleuls");
    assert!(tilleuls.hours.always_open);
    assert!(tilleuls.hours.is_open(utc("2026-12-25T03:00:00Z")));
    // Every demo agent can serve Les Tilleuls from the first second.
    assert_eq!(
        names(c.eligible_agents(tilleuls, Duration::ZERO)),
        ["alice", "bob", "carol"]
    );

    let kine = c.practice("kine-dupont").expect("kine");
    assert_eq!(
        kine.routing.overflow,
        OverflowTarget::Pool("shared-generaliste".into())
    );
    assert_eq!(kine.routing.ring_timeout, Duration::from_secs(25));
    // Defaulted from [dispatcher].
    assert_eq!(kine.routing.wrap_up, Duration::from_secs(30));
    let carol = c.agent("carol").expect("carol");
    assert_eq!(c.wrap_up(carol, kine), Duration::from_secs(20));
    assert_eq!(
        c.wrap_up(c.agent("alice").expect("alice"), kine),
        Duration::from_secs(30)
    );
}

#[test]
fn outbound_settings() {
    let c = demo();
    // [outbound] as documented, equal to the defaults.
    assert_eq!(c.outbound, OutboundSettings::default());
    assert_eq!(c.outbound.allow, AllowList::french_default());
    assert_eq!(c.outbound.max_calls_per_agent, 2);
    assert_eq!(c.outbound.ring_timeout, Duration::from_secs(60));
    assert_eq!(c.outbound.recent_practice, Duration::from_secs(30 * 60));
    // The demo trunk's gateway, where the tests play the carrier.
    let t = c.outbound_trunk().expect("outbound trunk");
    assert_eq!(t.name, "demo-carrier");
    assert_eq!(t.outbound, Some("127.0.0.1:5080".parse().expect("addr")));
    // Practice codes and caller IDs (the forwarded numbers).
    for (code, id, caller_id) in [
        ("1", "martin", "+33450000001"),
        ("2", "caron", "+33140000002"),
        ("4", "tilleuls", "+33380000004"),
        ("5", "kine-dupont", "+33478000005"),
    ] {
        let p = c
            .practice_by_code(code)
            .unwrap_or_else(|| panic!("code {code}"));
        assert_eq!(p.id, id);
        assert_eq!(p.outbound.code.as_deref(), Some(code));
        assert_eq!(
            p.outbound.caller_id.as_ref().map(|n| n.as_str()),
            Some(caller_id)
        );
        assert_eq!(p.outbound.allow, AllowList::french_default());
    }
    for code in ["3", "01", "", "*1", "11"] {
        assert!(c.practice_by_code(code).is_none(), "{code:?}");
    }
    assert!(c.agents().iter().all(|a| a.outbound_allow.is_none()));
}

#[test]
fn who_serves_which_practice() {
    let c = demo();
    let serves = |agent: &str, practice: &str| {
        c.serves(
            c.agent(agent).expect("agent"),
            c.practice(practice).expect("practice"),
        )
    };
    // Dr Martin's last step admits every French speaker, Dr Caron's the
    // generalist pool at level 2, Les Tilleuls everyone.
    for agent in ["alice", "bob", "carol"] {
        for practice in ["martin", "caron", "tilleuls"] {
            assert!(serves(agent, practice), "{agent} {practice}");
        }
    }
    // The kiné has only Carol: its overflow pool does not count.
    assert!(serves("carol", "kine-dupont"));
    assert!(!serves("alice", "kine-dupont"));
    assert!(!serves("bob", "kine-dupont"));
}

#[test]
fn callback_policies() {
    let c = demo();
    let minutes = |n: u64| Duration::from_secs(60 * n);
    // Les Tilleuls offers the callback right after the greeting, on 2, and
    // calls back within the hour: 3 tries, 10 minutes apart.
    let tilleuls = c.practice("tilleuls").expect("tilleuls");
    assert_eq!(
        tilleuls.callback,
        CallbackPolicy {
            offer: Some(CallbackOffer {
                digit: '2',
                after: Duration::ZERO,
            }),
            within: minutes(60),
            max_attempts: 3,
            retry_spacing: minutes(10),
        }
    );
    assert_eq!(tilleuls.routing.overflow, OverflowTarget::Callback);
    // Dr Caron overflows to callback without the offer: its section writes
    // the defaults out.
    let caron = c.practice("caron").expect("caron");
    assert_eq!(caron.routing.overflow, OverflowTarget::Callback);
    assert_eq!(caron.callback, CallbackPolicy::default());
    assert_eq!(caron.callback.offer, None);
    assert_eq!(
        (
            caron.callback.within,
            caron.callback.max_attempts,
            caron.callback.retry_spacing
        ),
        (minutes(60), 3, minutes(10))
    );
    // The others have no section.
    for id in ["martin", "kine-dupont"] {
        let p = c.practice(id).expect(id);
        assert_eq!(p.callback, CallbackPolicy::default(), "{id}");
    }
}

#[test]
fn transfer_lists() {
    let c = demo();
    // Dr Martin: his mobile on 1, the shared pool on 2.
    let martin = c.practice("martin").expect("martin");
    let list: Vec<(&str, &str, TransferTo)> = martin
        .transfers
        .iter()
        .map(|t| (t.code.as_str(), t.label.as_str(), t.to.clone()))
        .collect();
    let mobile = normalize("+33611223344", Country::Fr).expect("mobile");
    assert_eq!(
        list,
        [
            (
                "1",
                "Dr Martin - portable",
                TransferTo::Number(mobile.clone())
            ),
            (
                "2",
                "Secrétariat partagé",
                TransferTo::Pool("shared-generaliste".into())
            ),
        ]
    );
    assert_eq!(
        martin.transfer("1").map(|t| &t.to),
        Some(&TransferTo::Number(mobile))
    );
    assert!(martin.transfer("3").is_none());
    assert!(martin.transfer("01").is_none());
    // The pool exists; the number is one the practice may call out to.
    assert!(c.pool("shared-generaliste").is_some());
    let d = permanence_outbound::classify("+33611223344").expect("classify");
    assert!(martin.outbound.allow.allows(&d));
    // The other practices have none.
    for id in ["caron", "kine-dupont", "tilleuls"] {
        let p = c.practice(id).expect(id);
        assert!(p.transfers.is_empty(), "{id}");
    }
}

#[test]
fn practice_cards() {
    let c = demo();
    for p in c.practices() {
        let card = p
            .card
            .as_ref()
            .unwrap_or_else(|| panic!("{}: no card", p.id));
        assert!(!card.summary.trim().is_empty(), "{}", p.id);
        assert!(
            card.entries.len() >= 2,
            "{}: {} entries",
            p.id,
            card.entries.len()
        );
    }
    let labels: Vec<&str> = c
        .practice("martin")
        .and_then(|p| p.card.as_ref())
        .map(|card| card.entries.iter().map(|e| e.label.as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        labels,
        [
            "Renouvellement d'ordonnance",
            "Résultats d'analyses",
            "Urgence",
            "Visites à domicile"
        ]
    );
}

#[test]
fn voicemail_mail_settings() {
    let c = demo();
    // The demo mails through a local sink, in clear, without a password.
    let m = c.mail.as_ref().expect("[mail]");
    assert_eq!((m.server.as_str(), m.port), ("127.0.0.1", 2525));
    assert_eq!(m.starttls, permanence_config::StartTls::Off);
    assert_eq!((m.username.as_ref(), m.password.as_ref()), (None, None));
    assert_eq!(m.from, "permanence@telesecretariat.example");
    assert_eq!(
        m.retry,
        [60, 300, 900, 1800, 3600].map(Duration::from_secs).to_vec()
    );
    assert_eq!(m.expire_after, Duration::from_secs(72 * 3600));
    assert_eq!(m.timeout, Duration::from_secs(30));
    // Every demo practice has an address; Dr Martin, whose overflow is
    // voicemail, two.
    for p in c.practices() {
        assert!(!p.voicemail_email.is_empty(), "{}", p.id);
    }
    let martin = c.practice("martin").expect("martin");
    assert_eq!(
        martin.voicemail_email,
        [
            "secretariat@cabinet-martin.fr",
            "dr.martin@cabinet-martin.fr"
        ]
    );
}

/// Dr Dupont's year-end holidays: a dated announcement replacing the
/// queue, inclusive, read in the practice's time zone; messages are taken
/// when closed. The other demo practices have neither.
#[test]
fn dupont_holidays_announcement_and_voicemail_when_closed() {
    use chrono::TimeZone;
    use permanence_config::{AnnouncementMode, WhenClosed};
    let c = demo();
    let kine = c.practice("kine-dupont").expect("kine");
    assert_eq!(kine.when_closed, WhenClosed::Voicemail);
    assert_eq!(kine.announcements.len(), 1);
    let a = &kine.announcements[0];
    assert_eq!(a.mode, AnnouncementMode::InsteadOfQueue);
    assert!(a.prompt.path.ends_with("prompts/kine-dupont-conges.wav"));
    assert!(a.prompt.duration > Duration::from_secs(3));
    let at = |y, mo, d, h, mi| {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("t")
    };
    // 23 December 23:30 UTC is already the 24th in Paris (UTC+1).
    assert_eq!(
        kine.announcement_at(at(2026, 12, 23, 23, 30)).map(|x| x.0),
        Some(0)
    );
    assert!(kine.announcement_at(at(2026, 12, 23, 22, 59)).is_none());
    // The last day is included, the next one is not.
    assert!(kine.announcement_at(at(2027, 1, 2, 22, 59)).is_some());
    assert!(kine.announcement_at(at(2027, 1, 2, 23, 0)).is_none());
    for p in c.practices().iter().filter(|p| p.id != "kine-dupont") {
        assert!(p.announcements.is_empty(), "{}", p.id);
        assert_eq!(p.when_closed, WhenClosed::Hangup, "{}", p.id);
    }
}
