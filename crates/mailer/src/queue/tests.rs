//! The delivery queue in virtual time.

use super::*;
use crate::letter::at;
use std::path::PathBuf;

fn message(call: &str) -> VoicemailMessage {
    VoicemailMessage {
        call_id: call.into(),
        practice_id: "martin".into(),
        practice_name: "Cabinet du Dr Martin".into(),
        timezone: "Europe/Paris".into(),
        recipients: vec!["secretariat@cabinet-martin.fr".into()],
        wav: PathBuf::from(format!("{call}.wav")),
        caller: Some("+33612345678".into()),
        recorded_at: at("2026-03-03T13:00:00Z"),
        duration_secs: 12.0,
        triage: None,
    }
}

fn policy() -> Policy {
    Policy {
        retry: [10, 60, 300].map(Duration::from_secs).to_vec(),
        expire_after: Duration::from_secs(3600),
    }
}

/// `t0 + s` seconds.
fn t(s: i64) -> DateTime<Utc> {
    at("2026-03-03T13:00:00Z") + TimeDelta::seconds(s)
}

fn drain(q: &mut DeliveryQueue) -> Vec<Output> {
    std::iter::from_fn(|| q.poll_output()).collect()
}

fn sends(out: &[Output]) -> Vec<(String, u32)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(d) => Some((d.key().to_owned(), d.attempts)),
            _ => None,
        })
        .collect()
}

fn outcomes(out: &[Output]) -> Vec<DeliveryResult> {
    out.iter()
        .filter_map(|o| match o {
            Output::Outcome { result, .. } => Some(*result),
            _ => None,
        })
        .collect()
}

fn last_saved(out: &[Output]) -> Option<&Delivery> {
    out.iter().rev().find_map(|o| match o {
        Output::Save(d) => Some(&**d),
        _ => None,
    })
}

fn failed(key: &str) -> Input {
    Input::Failed {
        key: key.into(),
        error: "connection refused".into(),
    }
}

#[test]
fn a_new_message_is_saved_then_sent_at_once_and_closed_when_delivered() {
    let mut q = DeliveryQueue::new(policy());
    q.handle(Input::New(Box::new(message("c1"))), t(0));
    let out = drain(&mut q);
    assert!(matches!(&out[0], Output::Save(d) if d.attempts == 0));
    assert_eq!(sends(&out), vec![("c1".to_owned(), 1)]);
    assert_eq!(q.pending(), 1);
    // Being sent: not due again, whatever the time.
    assert_eq!(q.poll_timeout(), None);
    q.handle_timeout(t(1000));
    assert!(sends(&drain(&mut q)).is_empty());

    q.handle(Input::Sent { key: "c1".into() }, t(2));
    let out = drain(&mut q);
    assert_eq!(outcomes(&out), vec![DeliveryResult::Delivered]);
    let saved = last_saved(&out).expect("saved");
    assert_eq!(saved.status, Status::Delivered);
    assert_eq!(saved.closed_at, Some(t(2)));
    assert_eq!(q.pending(), 0);
    assert_eq!(q.poll_timeout(), None);
}

#[test]
fn failures_back_off_along_the_schedule_and_the_last_delay_repeats() {
    let mut q = DeliveryQueue::new(policy());
    q.handle(Input::New(Box::new(message("c1"))), t(0));
    drain(&mut q);
    let mut now = 0;
    for (attempt, wait) in [(1, 10), (2, 60), (3, 300), (4, 300)] {
        q.handle(failed("c1"), t(now + 1));
        let out = drain(&mut q);
        assert_eq!(outcomes(&out), vec![DeliveryResult::Failed]);
        let saved = last_saved(&out).expect("saved");
        assert_eq!(saved.attempts, attempt);
        assert_eq!(saved.last_error.as_deref(), Some("connection refused"));
        assert_eq!(q.poll_timeout(), Some(t(now + 1 + wait)));
        // Not before its time...
        q.handle_timeout(t(now + wait));
        assert!(sends(&drain(&mut q)).is_empty());
        // ...then the next attempt.
        now += 1 + wait;
        q.handle_timeout(t(now));
        assert_eq!(sends(&drain(&mut q)), vec![("c1".to_owned(), attempt + 1)]);
    }
    q.handle(Input::Sent { key: "c1".into() }, t(now + 1));
    assert_eq!(outcomes(&drain(&mut q)), vec![DeliveryResult::Delivered]);
}

#[test]
fn an_undelivered_message_expires_and_is_never_tried_again() {
    let mut q = DeliveryQueue::new(policy());
    q.handle(Input::New(Box::new(message("c1"))), t(0));
    drain(&mut q);
    let mut now = 0;
    while now < 3600 {
        q.handle(failed("c1"), t(now + 1));
        drain(&mut q);
        let Some(next) = q.poll_timeout() else {
            panic!("nothing due")
        };
        now = (next - t(0)).num_seconds();
        q.handle_timeout(next);
        let out = drain(&mut q);
        if now >= 3600 {
            assert_eq!(outcomes(&out), vec![DeliveryResult::Expired]);
            let saved = last_saved(&out).expect("saved");
            assert_eq!(saved.status, Status::Expired);
            assert!(sends(&out).is_empty());
        } else {
            assert_eq!(sends(&out).len(), 1, "at {now}");
        }
    }
    // Expiry is exactly an hour after queueing, not after the last retry.
    assert_eq!(now, 3600);
    assert_eq!(q.pending(), 0);
    assert_eq!(q.poll_timeout(), None);
}

#[test]
fn an_attempt_in_progress_is_not_expired_until_it_ends() {
    let mut q = DeliveryQueue::new(policy());
    q.handle(Input::New(Box::new(message("c1"))), t(0));
    drain(&mut q);
    q.handle_timeout(t(7200));
    assert!(outcomes(&drain(&mut q)).is_empty());
    // It succeeds after all: delivered, not expired.
    q.handle(Input::Sent { key: "c1".into() }, t(7201));
    assert_eq!(outcomes(&drain(&mut q)), vec![DeliveryResult::Delivered]);
}

#[test]
fn a_restored_delivery_resumes_at_its_saved_next_try() {
    // Before the restart: one attempt started, then the engine died.
    let mut q = DeliveryQueue::new(policy());
    q.handle(Input::New(Box::new(message("c1"))), t(0));
    let saved = last_saved(&drain(&mut q)).expect("saved").clone();
    assert_eq!(saved.attempts, 1);
    assert_eq!(saved.next_attempt_at, Some(t(10)));

    let mut q = DeliveryQueue::new(policy());
    q.handle(Input::Restore(Box::new(saved.clone())), t(5));
    assert!(sends(&drain(&mut q)).is_empty());
    assert_eq!(q.pending(), 1);
    assert_eq!(q.oldest_queued_at(), Some(t(0)));
    q.handle_timeout(t(10));
    assert_eq!(sends(&drain(&mut q)), vec![("c1".to_owned(), 2)]);

    // Closed deliveries and duplicates are not restored.
    let mut q = DeliveryQueue::new(policy());
    let mut done = saved.clone();
    done.status = Status::Delivered;
    q.handle(Input::Restore(Box::new(done)), t(20));
    assert_eq!(q.pending(), 0);
    q.handle(Input::Restore(Box::new(saved.clone())), t(20));
    q.handle(Input::New(Box::new(saved.message.clone())), t(20));
    let out = drain(&mut q);
    assert_eq!(sends(&out), vec![("c1".to_owned(), 2)]);
    assert_eq!(q.pending(), 1);
}

#[test]
fn results_for_unknown_or_idle_messages_are_ignored() {
    let mut q = DeliveryQueue::new(policy());
    q.handle(Input::Sent { key: "nope".into() }, t(0));
    q.handle(failed("nope"), t(0));
    assert!(drain(&mut q).is_empty());
    q.handle(Input::New(Box::new(message("c1"))), t(0));
    q.handle(failed("c1"), t(1));
    drain(&mut q);
    // A second result for the same attempt changes nothing.
    q.handle(Input::Sent { key: "c1".into() }, t(2));
    assert!(drain(&mut q).is_empty());
    assert_eq!(q.pending(), 1);
}

#[test]
fn several_messages_are_independent() {
    let mut q = DeliveryQueue::new(policy());
    q.handle(Input::New(Box::new(message("a"))), t(0));
    q.handle(Input::New(Box::new(message("b"))), t(3));
    let out = drain(&mut q);
    assert_eq!(sends(&out), vec![("a".to_owned(), 1), ("b".to_owned(), 1)]);
    q.handle(failed("a"), t(4));
    q.handle(Input::Sent { key: "b".into() }, t(4));
    drain(&mut q);
    assert_eq!(q.pending(), 1);
    assert_eq!(q.oldest_queued_at(), Some(t(0)));
    assert_eq!(q.poll_timeout(), Some(t(14)));
}

#[test]
fn the_default_policy_and_an_empty_schedule() {
    let p = Policy::default();
    assert_eq!(p.delay(1), Duration::from_secs(60));
    assert_eq!(p.delay(5), Duration::from_secs(3600));
    assert_eq!(p.delay(50), Duration::from_secs(3600));
    let empty = Policy {
        retry: Vec::new(),
        expire_after: Duration::from_secs(1),
    };
    assert_eq!(empty.delay(0), Duration::from_secs(60));
    for s in [Status::Pending, Status::Delivered, Status::Expired] {
        assert_eq!(Status::parse(s.as_str()), Some(s));
    }
}
