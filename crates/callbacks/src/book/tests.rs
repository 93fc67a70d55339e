use super::*;
use proptest::prelude::*;

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn at(s: u64) -> DateTime<Utc> {
    t0() + secs(s)
}

/// A request of `practice` whose caller joined at `at(joined)` and asked
/// 30 s later, due within the hour.
fn request(key: &str, practice: &str, joined: u64) -> Request {
    Request {
        key: key.to_owned(),
        practice: practice.to_owned(),
        number: "+33612345678".to_owned(),
        origin: Origin::Caller,
        requested_at: at(joined + 30),
        joined_at: at(joined),
        priority: 0,
        triage: Some('1'),
        deadline: at(joined + 30 + 3600),
        attempts: 0,
        next_attempt_at: None,
        last_result: None,
        agent: None,
        status: Status::Queued,
        policy: Policy::default(),
    }
}

fn drain(b: &mut CallbackBook) -> Vec<Output> {
    std::iter::from_fn(|| b.poll_output()).collect()
}

fn persisted(r: &Request) -> Output {
    Output::Action(Action::Persist(Box::new(r.clone())))
}

fn k(s: &str) -> String {
    s.to_owned()
}

fn policy(max_attempts: u32, spacing: u64) -> Policy {
    Policy {
        max_attempts,
        spacing: secs(spacing),
    }
}

/// A book holding request `a` of `cabinet`, added at `at(30)`.
fn book_with(policy: Policy) -> CallbackBook {
    let mut b = CallbackBook::new();
    assert_eq!(
        b.handle(Input::Add(request("a", "cabinet", 0), policy), at(30)),
        Ok(())
    );
    drain(&mut b);
    b
}

/// Offers `key` to `agent` and lets them answer.
fn start(b: &mut CallbackBook, key: &str, agent: &str, now: DateTime<Utc>) {
    let offered = Input::Offered {
        key: k(key),
        agent: k(agent),
    };
    assert_eq!(b.handle(offered, now), Ok(()));
    let started = Input::AttemptStarted {
        key: k(key),
        agent: k(agent),
    };
    assert_eq!(b.handle(started, now), Ok(()));
    drain(b);
}

fn finish(b: &mut CallbackBook, key: &str, result: AttemptResult, now: DateTime<Utc>) {
    let input = Input::AttemptFinished {
        key: k(key),
        result,
    };
    assert_eq!(b.handle(input, now), Ok(()));
}

fn status(b: &CallbackBook, key: &str) -> Option<Status> {
    b.get(key).map(|r| r.status.clone())
}

#[test]
fn add_queues_and_persists_without_enqueue() {
    let mut b = CallbackBook::new();
    let mut r = request("a", "cabinet", 0);
    // Progress fields are the book's.
    r.status = Status::Completed;
    r.attempts = 7;
    r.next_attempt_at = Some(at(5));
    r.last_result = Some(AttemptResult::Busy);
    r.agent = Some(k("x"));
    assert_eq!(b.handle(Input::Add(r, policy(2, 60)), at(30)), Ok(()));
    let mut expected = request("a", "cabinet", 0);
    expected.policy = policy(2, 60);
    assert_eq!(b.get("a"), Some(&expected));
    assert_eq!(
        drain(&mut b),
        vec![
            Output::Event(Event::Requested {
                key: k("a"),
                practice: k("cabinet"),
                origin: Origin::Caller
            }),
            persisted(&expected),
        ]
    );
    assert_eq!(b.poll_timeout(), None);
    assert_eq!(b.len(), 1);
}

#[test]
fn add_refuses_duplicates_and_policies_without_tries() {
    let mut b = book_with(Policy::default());
    assert_eq!(
        b.handle(
            Input::Add(request("a", "other", 5), Policy::default()),
            at(40)
        ),
        Err(BookError::Duplicate(k("a")))
    );
    assert_eq!(
        b.handle(
            Input::Add(request("b", "cabinet", 5), policy(0, 60)),
            at(40)
        ),
        Err(BookError::NoAttempt(k("b")))
    );
    assert!(drain(&mut b).is_empty());
    assert_eq!(b.len(), 1);
    assert_eq!(b.get("a").map(|r| r.practice.as_str()), Some("cabinet"));
}

#[test]
fn answered_first_try_completes_and_is_forgotten() {
    let mut b = book_with(Policy::default());
    assert_eq!(
        b.handle(
            Input::Offered {
                key: k("a"),
                agent: k("alice")
            },
            at(100)
        ),
        Ok(())
    );
    let mut r = request("a", "cabinet", 0);
    r.status = Status::Offered { agent: k("alice") };
    r.agent = Some(k("alice"));
    assert_eq!(drain(&mut b), vec![persisted(&r)]);
    // The same offer again changes nothing.
    let again = Input::Offered {
        key: k("a"),
        agent: k("alice"),
    };
    assert_eq!(b.handle(again, at(101)), Ok(()));
    assert!(drain(&mut b).is_empty());

    let started = Input::AttemptStarted {
        key: k("a"),
        agent: k("alice"),
    };
    assert_eq!(b.handle(started, at(110)), Ok(()));
    r.status = Status::Dialling { agent: k("alice") };
    r.attempts = 1;
    assert_eq!(drain(&mut b), vec![persisted(&r)]);

    finish(&mut b, "a", AttemptResult::Answered, at(400));
    r.status = Status::Completed;
    r.last_result = Some(AttemptResult::Answered);
    assert_eq!(
        drain(&mut b),
        vec![
            Output::Event(Event::Attempt {
                key: k("a"),
                number: 1,
                agent: k("alice"),
                result: AttemptResult::Answered
            }),
            Output::Event(Event::Completed {
                key: k("a"),
                within_deadline: true
            }),
            persisted(&r),
            Output::Action(Action::Release(k("a"))),
        ]
    );
    assert!(b.is_empty());
    assert_eq!(b.get("a"), None);
    // Late inputs about it are errors.
    assert_eq!(
        b.handle(Input::OfferEnded { key: k("a") }, at(401)),
        Err(BookError::Unknown(k("a")))
    );
}

#[test]
fn completion_after_the_deadline_says_so() {
    let mut b = book_with(Policy::default());
    start(&mut b, "a", "alice", at(3630));
    // The deadline itself is still within it.
    finish(&mut b, "a", AttemptResult::Answered, at(3630));
    assert!(drain(&mut b).contains(&Output::Event(Event::Completed {
        key: k("a"),
        within_deadline: true
    })));

    let mut b = book_with(Policy::default());
    start(&mut b, "a", "alice", at(3631));
    finish(&mut b, "a", AttemptResult::Answered, at(3631));
    assert!(drain(&mut b).contains(&Output::Event(Event::Completed {
        key: k("a"),
        within_deadline: false
    })));
}

#[test]
fn unanswered_try_waits_then_comes_back_at_its_place() {
    let mut b = book_with(policy(3, 600));
    start(&mut b, "a", "alice", at(100));
    finish(&mut b, "a", AttemptResult::NoAnswer, at(160));
    let mut r = request("a", "cabinet", 0);
    r.policy = policy(3, 600);
    r.attempts = 1;
    r.agent = Some(k("alice"));
    r.last_result = Some(AttemptResult::NoAnswer);
    r.status = Status::Waiting;
    r.next_attempt_at = Some(at(760));
    assert_eq!(
        drain(&mut b),
        vec![
            Output::Event(Event::Attempt {
                key: k("a"),
                number: 1,
                agent: k("alice"),
                result: AttemptResult::NoAnswer
            }),
            persisted(&r),
            Output::Action(Action::Release(k("a"))),
        ]
    );
    assert_eq!(b.poll_timeout(), Some(at(760)));
    b.handle_timeout(at(759));
    assert!(drain(&mut b).is_empty());
    b.handle_timeout(at(760));
    r.status = Status::Queued;
    r.next_attempt_at = None;
    assert_eq!(
        drain(&mut b),
        vec![persisted(&r), Output::Action(Action::Enqueue(k("a")))]
    );
    assert_eq!(b.poll_timeout(), None);
    // Its place is its caller's original join time.
    assert_eq!(b.get("a").map(|r| r.joined_at), Some(at(0)));
}

#[test]
fn tries_run_out() {
    let mut b = book_with(policy(2, 600));
    start(&mut b, "a", "alice", at(100));
    finish(&mut b, "a", AttemptResult::Failed, at(110));
    drain(&mut b);
    b.handle_timeout(at(710));
    drain(&mut b);
    start(&mut b, "a", "bob", at(800));
    finish(&mut b, "a", AttemptResult::Busy, at(810));
    let mut r = request("a", "cabinet", 0);
    r.policy = policy(2, 600);
    r.attempts = 2;
    r.agent = Some(k("bob"));
    r.last_result = Some(AttemptResult::Busy);
    r.status = Status::Failed;
    assert_eq!(
        drain(&mut b),
        vec![
            Output::Event(Event::Attempt {
                key: k("a"),
                number: 2,
                agent: k("bob"),
                result: AttemptResult::Busy
            }),
            Output::Event(Event::Failed {
                key: k("a"),
                reason: FailReason::Exhausted(AttemptResult::Busy)
            }),
            persisted(&r),
            Output::Action(Action::Release(k("a"))),
        ]
    );
    assert!(b.is_empty());
    assert_eq!(b.poll_timeout(), None);
}

#[test]
fn refused_number_fails_at_once() {
    let mut b = book_with(policy(3, 600));
    start(&mut b, "a", "alice", at(100));
    finish(&mut b, "a", AttemptResult::Refused, at(101));
    let out = drain(&mut b);
    assert!(out.contains(&Output::Event(Event::Failed {
        key: k("a"),
        reason: FailReason::Refused
    })));
    assert_eq!(out.last(), Some(&Output::Action(Action::Release(k("a")))));
    assert!(b.is_empty());
}

#[test]
fn offer_without_answer_goes_back_to_the_queue() {
    let mut b = book_with(Policy::default());
    let offered = |agent: &str| Input::Offered {
        key: k("a"),
        agent: k(agent),
    };
    assert_eq!(b.handle(offered("alice"), at(100)), Ok(()));
    // The dispatcher moves on to another agent.
    assert_eq!(b.handle(offered("bob"), at(120)), Ok(()));
    assert_eq!(status(&b, "a"), Some(Status::Offered { agent: k("bob") }));
    assert_eq!(b.handle(Input::OfferEnded { key: k("a") }, at(140)), Ok(()));
    let mut r = request("a", "cabinet", 0);
    r.agent = Some(k("bob"));
    let out = drain(&mut b);
    assert_eq!(out.len(), 3);
    assert_eq!(out.last(), Some(&persisted(&r)));
    assert_eq!(b.get("a").map(|r| r.attempts), Some(0));
    assert_eq!(
        b.handle(Input::OfferEnded { key: k("a") }, at(141)),
        Err(BookError::WrongStatus {
            key: k("a"),
            status: "queued",
            input: "offer_ended"
        })
    );
}

#[test]
fn inputs_out_of_turn_are_errors_and_change_nothing() {
    let mut b = book_with(Policy::default());
    let before = b.get("a").cloned();
    let wrong = [
        Input::AttemptStarted {
            key: k("a"),
            agent: k("alice"),
        },
        Input::AttemptFinished {
            key: k("a"),
            result: AttemptResult::Answered,
        },
        Input::OfferEnded { key: k("a") },
    ];
    for input in wrong {
        let name = input.as_str();
        assert!(
            matches!(b.handle(input, at(50)), Err(BookError::WrongStatus { .. })),
            "{name}"
        );
    }
    assert_eq!(
        b.handle(Input::Cancel { key: k("zz") }, at(50)),
        Err(BookError::Unknown(k("zz")))
    );
    assert!(drain(&mut b).is_empty());
    assert_eq!(b.get("a").cloned(), before);
    // A waiting request is not in the dispatcher: neither offered nor lost.
    start(&mut b, "a", "alice", at(60));
    finish(&mut b, "a", AttemptResult::NoAnswer, at(70));
    drain(&mut b);
    assert!(b
        .handle(
            Input::Offered {
                key: k("a"),
                agent: k("bob")
            },
            at(80)
        )
        .is_err());
    assert!(b.handle(Input::Lost { key: k("a") }, at(80)).is_err());
    assert!(drain(&mut b).is_empty());
    let e = BookError::WrongStatus {
        key: k("a"),
        status: "waiting",
        input: "lost",
    };
    assert_eq!(
        e.to_string(),
        "callback request \"a\" is waiting: lost does not apply"
    );
}

#[test]
fn cancel_withdraws_from_the_dispatcher() {
    // Queued, then offered: withdrawn.
    for offered in [false, true] {
        let mut b = book_with(Policy::default());
        if offered {
            let input = Input::Offered {
                key: k("a"),
                agent: k("alice"),
            };
            assert_eq!(b.handle(input, at(40)), Ok(()));
            drain(&mut b);
        }
        assert_eq!(b.handle(Input::Cancel { key: k("a") }, at(50)), Ok(()));
        let mut r = request("a", "cabinet", 0);
        r.status = Status::Cancelled;
        if offered {
            r.agent = Some(k("alice"));
        }
        assert_eq!(
            drain(&mut b),
            vec![
                Output::Event(Event::Failed {
                    key: k("a"),
                    reason: FailReason::Cancelled
                }),
                persisted(&r),
                Output::Action(Action::Withdraw(k("a"))),
            ]
        );
        assert!(b.is_empty());
    }
}

#[test]
fn cancel_while_waiting_has_nothing_to_withdraw() {
    let mut b = book_with(Policy::default());
    start(&mut b, "a", "alice", at(40));
    finish(&mut b, "a", AttemptResult::Busy, at(50));
    drain(&mut b);
    assert_eq!(b.handle(Input::Cancel { key: k("a") }, at(60)), Ok(()));
    let out = drain(&mut b);
    assert_eq!(out.len(), 2);
    assert!(!out
        .iter()
        .any(|o| matches!(o, Output::Action(Action::Withdraw(_)))));
    assert!(b.is_empty());
    assert_eq!(b.poll_timeout(), None);
}

#[test]
fn cancel_and_handled_wait_for_the_try_in_progress() {
    let mut b = book_with(Policy::default());
    start(&mut b, "a", "alice", at(40));
    assert_eq!(
        b.handle(Input::Cancel { key: k("a") }, at(50)),
        Err(BookError::Dialling(k("a")))
    );
    assert_eq!(
        b.handle(
            Input::Handled {
                key: k("a"),
                by: k("op")
            },
            at(50)
        ),
        Err(BookError::Dialling(k("a")))
    );
    assert!(drain(&mut b).is_empty());
    assert_eq!(
        status(&b, "a"),
        Some(Status::Dialling { agent: k("alice") })
    );
}

#[test]
fn handled_by_an_operator() {
    let mut b = book_with(Policy::default());
    let input = Input::Handled {
        key: k("a"),
        by: k("martine"),
    };
    assert_eq!(b.handle(input, at(50)), Ok(()));
    let mut r = request("a", "cabinet", 0);
    r.status = Status::Handled;
    assert_eq!(
        drain(&mut b),
        vec![
            Output::Event(Event::Handled {
                key: k("a"),
                by: k("martine")
            }),
            persisted(&r),
            Output::Action(Action::Withdraw(k("a"))),
        ]
    );
    assert!(b.is_empty());
}

#[test]
fn lost_dispatcher_call_waits_without_counting_a_try() {
    for offered in [false, true] {
        let mut b = book_with(policy(1, 300));
        if offered {
            let input = Input::Offered {
                key: k("a"),
                agent: k("alice"),
            };
            assert_eq!(b.handle(input, at(40)), Ok(()));
            drain(&mut b);
        }
        assert_eq!(b.handle(Input::Lost { key: k("a") }, at(100)), Ok(()));
        let r = b.get("a").cloned();
        assert_eq!(r.as_ref().map(|r| &r.status), Some(&Status::Waiting));
        assert_eq!(r.as_ref().and_then(|r| r.next_attempt_at), Some(at(400)));
        assert_eq!(r.as_ref().map(|r| r.attempts), Some(0));
        assert_eq!(drain(&mut b).len(), 1);
        assert_eq!(b.poll_timeout(), Some(at(400)));
        b.handle_timeout(at(400));
        assert_eq!(status(&b, "a"), Some(Status::Queued));
        // Its only try is still to come.
        start(&mut b, "a", "alice", at(500));
        finish(&mut b, "a", AttemptResult::Answered, at(510));
        assert!(b.is_empty());
    }
}

#[test]
fn due_requests_come_back_earliest_first() {
    let mut b = CallbackBook::new();
    for (key, joined) in [("a", 0), ("b", 10), ("c", 20)] {
        let added = b.handle(
            Input::Add(request(key, "cabinet", joined), policy(3, 600)),
            at(40),
        );
        assert_eq!(added, Ok(()));
    }
    // c fails first, then a, then b; a and b fall due together.
    for (key, t) in [("c", 50), ("a", 60), ("b", 60)] {
        start(&mut b, key, "alice", at(t));
        finish(&mut b, key, AttemptResult::NoAnswer, at(t));
    }
    drain(&mut b);
    assert_eq!(b.poll_timeout(), Some(at(650)));
    b.handle_timeout(at(700));
    let enqueued: Vec<String> = drain(&mut b)
        .into_iter()
        .filter_map(|o| match o {
            Output::Action(Action::Enqueue(key)) => Some(key),
            _ => None,
        })
        .collect();
    assert_eq!(enqueued, vec![k("c"), k("a"), k("b")]);
    assert_eq!(b.poll_timeout(), None);
}

#[test]
fn open_requests_in_place_order() {
    let mut b = CallbackBook::new();
    let mut add = |mut r: Request, requested: u64| {
        r.requested_at = at(requested);
        assert_eq!(b.handle(Input::Add(r, Policy::default()), at(500)), Ok(()));
    };
    add(request("d", "x", 50), 60);
    add(request("c", "y", 10), 90);
    add(request("b", "x", 10), 80);
    add(request("a", "x", 10), 80);
    add(request("e", "y", 0), 400);
    let keys: Vec<&str> = b.open().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, vec!["e", "a", "b", "c", "d"]);
}

#[test]
fn restore_waits_or_queues() {
    let mut b = CallbackBook::new();
    // Waiting, next try still to come: no change, nothing to write.
    let mut waiting = request("w", "cabinet", 0);
    waiting.status = Status::Waiting;
    waiting.attempts = 1;
    waiting.next_attempt_at = Some(at(1000));
    assert_eq!(
        b.handle(Input::Restore(waiting.clone(), Policy::default()), at(900)),
        Ok(())
    );
    assert!(drain(&mut b).is_empty());
    assert_eq!(b.get("w"), Some(&waiting));
    assert_eq!(b.poll_timeout(), Some(at(1000)));

    // Waiting, due during the downtime: queued at once.
    let mut due = request("d", "cabinet", 5);
    due.status = Status::Waiting;
    due.next_attempt_at = Some(at(800));
    assert_eq!(
        b.handle(Input::Restore(due.clone(), Policy::default()), at(900)),
        Ok(())
    );
    due.status = Status::Queued;
    due.next_attempt_at = None;
    assert_eq!(
        drain(&mut b),
        vec![persisted(&due), Output::Action(Action::Enqueue(k("d")))]
    );

    // Queued: queued again, unchanged.
    let queued = request("q", "cabinet", 7);
    assert_eq!(
        b.handle(Input::Restore(queued, Policy::default()), at(900)),
        Ok(())
    );
    assert_eq!(drain(&mut b), vec![Output::Action(Action::Enqueue(k("q")))]);

    // Cut while dialling: the try stays counted, even the last one.
    let mut cut = request("c", "cabinet", 9);
    cut.status = Status::Dialling { agent: k("alice") };
    cut.agent = Some(k("alice"));
    cut.attempts = 3;
    assert_eq!(
        b.handle(Input::Restore(cut.clone(), policy(3, 60)), at(900)),
        Ok(())
    );
    cut.status = Status::Queued;
    cut.policy = policy(3, 60);
    assert_eq!(
        drain(&mut b),
        vec![persisted(&cut), Output::Action(Action::Enqueue(k("c")))]
    );
    start(&mut b, "c", "bob", at(950));
    finish(&mut b, "c", AttemptResult::NoAnswer, at(960));
    assert!(drain(&mut b).contains(&Output::Event(Event::Failed {
        key: k("c"),
        reason: FailReason::Exhausted(AttemptResult::NoAnswer)
    })));

    // No Requested event for restored requests.
    assert_eq!(b.len(), 3);
}

#[test]
fn restore_refuses_closed_duplicate_and_empty_policies() {
    let mut b = CallbackBook::new();
    let mut closed = request("x", "cabinet", 0);
    closed.status = Status::Completed;
    assert_eq!(
        b.handle(Input::Restore(closed, Policy::default()), at(10)),
        Err(BookError::WrongStatus {
            key: k("x"),
            status: "completed",
            input: "restore"
        })
    );
    let r = request("y", "cabinet", 0);
    assert_eq!(
        b.handle(Input::Restore(r.clone(), policy(0, 1)), at(10)),
        Err(BookError::NoAttempt(k("y")))
    );
    assert_eq!(
        b.handle(Input::Restore(r.clone(), Policy::default()), at(10)),
        Ok(())
    );
    assert_eq!(
        b.handle(Input::Restore(r, Policy::default()), at(10)),
        Err(BookError::Duplicate(k("y")))
    );
}

#[test]
fn summaries_follow_practices_back_to_zero() {
    let mut b = CallbackBook::new();
    let add = |b: &mut CallbackBook, key: &str, practice: &str, joined: u64| {
        let input = Input::Add(request(key, practice, joined), Policy::default());
        assert_eq!(b.handle(input, at(joined + 30)), Ok(()));
    };
    add(&mut b, "a", "alpha", 0);
    add(&mut b, "b", "alpha", 100);
    add(&mut b, "c", "beta", 200);
    let now = at(3700);
    assert_eq!(
        b.summary("alpha", now),
        QueueSummary {
            pending: 2,
            oldest_age: secs(3700 - 30),
            // a is due at 3630: 70 s overdue.
            deadline_margin: Some(-70),
        }
    );
    assert_eq!(b.summary("nobody", now), QueueSummary::default());
    start(&mut b, "c", "alice", at(300));
    finish(&mut b, "c", AttemptResult::Answered, at(310));
    assert_eq!(
        b.summaries(now),
        vec![
            (k("alpha"), b.summary("alpha", now)),
            (k("beta"), QueueSummary::default()),
        ]
    );
    // A request younger than now's clock reading counts zero age.
    assert_eq!(b.summary("alpha", at(0)).oldest_age, Duration::ZERO);
    assert_eq!(b.summary("alpha", at(0)).deadline_margin, Some(3630));
}

#[test]
fn ten_thousand_completed_requests_leave_the_book_empty() {
    let mut b = CallbackBook::new();
    for i in 0..10_000u64 {
        let key = format!("r{i}");
        let added = b.handle(
            Input::Add(request(&key, "cabinet", i), Policy::default()),
            at(i),
        );
        assert_eq!(added, Ok(()));
        start(&mut b, &key, "alice", at(i));
        // Half of them after one unanswered try.
        if i % 2 == 0 {
            finish(&mut b, &key, AttemptResult::Busy, at(i));
            b.handle_timeout(at(i + 600));
            start(&mut b, &key, "alice", at(i + 600));
        }
        finish(&mut b, &key, AttemptResult::Answered, at(i + 600));
        drain(&mut b);
    }
    assert!(b.is_empty());
    assert_eq!(b.open().count(), 0);
    assert!(b.places.is_empty() && b.waiting.is_empty() && b.outputs.is_empty());
    assert_eq!(b.poll_timeout(), None);
    assert_eq!(
        b.summaries(at(20_000)),
        vec![(k("cabinet"), QueueSummary::default())]
    );
}

#[test]
fn names() {
    assert_eq!(Status::Offered { agent: k("a") }.as_str(), "offered");
    assert!(Status::Dialling { agent: k("a") }.is_open());
    assert!(!Status::Handled.is_open());
    assert!(!Status::Waiting.in_dispatcher());
    assert_eq!(Origin::Overflow.as_str(), "overflow");
    assert_eq!(
        FailReason::Exhausted(AttemptResult::Busy).as_str(),
        "exhausted"
    );
    assert_eq!(Input::Lost { key: k("a") }.as_str(), "lost");
}

// ------------------------------------------------------------ properties

#[derive(Debug, Clone)]
enum Op {
    Add {
        overflow: bool,
        max_attempts: u32,
        spacing: u64,
        joined_before: u64,
    },
    Offered(usize, u8),
    OfferEnded(usize),
    Started(usize, u8),
    Finished(usize, AttemptResult),
    Cancel(usize),
    Handled(usize),
    Lost(usize),
    Wait(u64),
    Restart,
}

fn any_result() -> impl Strategy<Value = AttemptResult> {
    prop_oneof![
        Just(AttemptResult::Answered),
        Just(AttemptResult::NoAnswer),
        Just(AttemptResult::Busy),
        Just(AttemptResult::Failed),
        Just(AttemptResult::Refused),
    ]
}

fn any_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (any::<bool>(), 1u32..4, 0u64..1200, 0u64..600).prop_map(
            |(overflow, max_attempts, spacing, joined_before)| Op::Add {
                overflow,
                max_attempts,
                spacing,
                joined_before
            }
        ),
        3 => (any::<usize>(), 0u8..3).prop_map(|(i, a)| Op::Offered(i, a)),
        1 => any::<usize>().prop_map(Op::OfferEnded),
        3 => (any::<usize>(), 0u8..3).prop_map(|(i, a)| Op::Started(i, a)),
        3 => (any::<usize>(), any_result()).prop_map(|(i, r)| Op::Finished(i, r)),
        1 => any::<usize>().prop_map(Op::Cancel),
        1 => any::<usize>().prop_map(Op::Handled),
        1 => any::<usize>().prop_map(Op::Lost),
        2 => (0u64..1500).prop_map(Op::Wait),
        1 => Just(Op::Restart),
    ]
}

/// What caused a batch of outputs.
enum Cause<'a> {
    Input(&'a Input),
    Timer,
    Restart,
}

/// A book, the store its `Persist` actions write, and what was seen.
struct Sim {
    book: CallbackBook,
    now: DateTime<Utc>,
    store: BTreeMap<String, Request>,
    added: Vec<String>,
    ends: HashMap<String, u32>,
}

fn snapshot(b: &CallbackBook) -> BTreeMap<String, Request> {
    b.open().map(|r| (r.key.clone(), r.clone())).collect()
}

impl Sim {
    fn new() -> Self {
        Self {
            book: CallbackBook::new(),
            now: t0(),
            store: BTreeMap::new(),
            added: Vec::new(),
            ends: HashMap::new(),
        }
    }

    fn key(&self, i: usize) -> Option<String> {
        if self.added.is_empty() {
            return None;
        }
        self.added.get(i % self.added.len()).cloned()
    }

    /// Feeds `input`; `Ok(false)` if the book refused it.
    fn run(&mut self, input: Input) -> Result<bool, TestCaseError> {
        let before = snapshot(&self.book);
        let result = self.book.handle(input.clone(), self.now);
        let outs = drain(&mut self.book);
        if result.is_err() {
            prop_assert!(outs.is_empty(), "{:?} emitted {:?}", result, outs);
            prop_assert_eq!(snapshot(&self.book), before);
            return Ok(false);
        }
        self.check(&before, outs, Cause::Input(&input))?;
        Ok(true)
    }

    fn tick(&mut self) -> Result<(), TestCaseError> {
        if self.book.poll_timeout().is_some_and(|t| t <= self.now) {
            let before = snapshot(&self.book);
            self.book.handle_timeout(self.now);
            let outs = drain(&mut self.book);
            prop_assert!(!outs.is_empty());
            self.check(&before, outs, Cause::Timer)?;
        }
        prop_assert!(self.book.poll_timeout().is_none_or(|t| t > self.now));
        Ok(())
    }

    /// A new engine: every stored request is restored.
    fn restart(&mut self) -> Result<(), TestCaseError> {
        self.book = CallbackBook::new();
        let mut outs = Vec::new();
        for r in self.store.values().cloned().collect::<Vec<_>>() {
            let policy = r.policy;
            prop_assert_eq!(
                self.book.handle(Input::Restore(r, policy), self.now),
                Ok(())
            );
            outs.extend(drain(&mut self.book));
        }
        // Every restored request that is not waiting goes back to the
        // dispatcher.
        let enqueued: BTreeSet<&String> = outs
            .iter()
            .filter_map(|o| match o {
                Output::Action(Action::Enqueue(key)) => Some(key),
                _ => None,
            })
            .collect();
        let queued: BTreeSet<&String> = self
            .book
            .open()
            .filter(|r| r.status == Status::Queued)
            .map(|r| &r.key)
            .collect();
        prop_assert_eq!(enqueued, queued);
        self.check(&BTreeMap::new(), outs, Cause::Restart)
    }

    fn check(
        &mut self,
        before: &BTreeMap<String, Request>,
        outs: Vec<Output>,
        cause: Cause<'_>,
    ) -> Result<(), TestCaseError> {
        let was = |key: &str| before.get(key).map(|r| r.status.clone());
        for o in outs {
            match o {
                Output::Action(Action::Persist(r)) => {
                    if r.status.is_open() {
                        self.store.insert(r.key.clone(), *r);
                    } else {
                        self.store.remove(&r.key);
                    }
                }
                Output::Action(Action::Enqueue(key)) => {
                    match cause {
                        Cause::Timer => prop_assert_eq!(was(&key), Some(Status::Waiting)),
                        Cause::Restart => {}
                        Cause::Input(i) => {
                            return Err(TestCaseError::fail(format!("Enqueue on {i:?}")))
                        }
                    }
                    prop_assert_eq!(status(&self.book, &key), Some(Status::Queued));
                }
                Output::Action(Action::Release(key)) => {
                    let Cause::Input(Input::AttemptFinished { key: k, .. }) = cause else {
                        return Err(TestCaseError::fail("Release without a finished try"));
                    };
                    prop_assert_eq!(k, &key);
                    let dialling = matches!(was(&key), Some(Status::Dialling { .. }));
                    prop_assert!(dialling);
                }
                Output::Action(Action::Withdraw(key)) => {
                    let (Cause::Input(Input::Cancel { key: k })
                    | Cause::Input(Input::Handled { key: k, .. })) = cause
                    else {
                        return Err(TestCaseError::fail("Withdraw without an operator"));
                    };
                    prop_assert_eq!(k, &key);
                    prop_assert!(was(&key).is_some_and(|s| s.in_dispatcher()));
                }
                Output::Event(
                    Event::Completed { key, .. }
                    | Event::Failed { key, .. }
                    | Event::Handled { key, .. },
                ) => {
                    *self.ends.entry(key.clone()).or_default() += 1;
                    prop_assert!(self.book.get(&key).is_none());
                }
                Output::Event(Event::Requested { key, .. }) => {
                    let Cause::Input(Input::Add(r, _)) = cause else {
                        return Err(TestCaseError::fail("Requested without Add"));
                    };
                    prop_assert_eq!(&r.key, &key);
                }
                Output::Event(Event::Attempt { .. }) => {}
            }
        }
        // Every change was persisted: the store mirrors the book.
        prop_assert_eq!(&self.store, &snapshot(&self.book));
        Ok(())
    }

    fn step(&mut self, op: Op) -> Result<(), TestCaseError> {
        let agent = |a: u8| format!("agent{a}");
        let input = match op {
            Op::Add {
                overflow,
                max_attempts,
                spacing,
                joined_before,
            } => {
                let key = format!("r{}", self.added.len());
                let mut r = request(&key, "cabinet", 0);
                r.origin = if overflow {
                    Origin::Overflow
                } else {
                    Origin::Caller
                };
                r.requested_at = self.now;
                r.joined_at = self.now - secs(joined_before);
                r.deadline = self.now + secs(3600);
                self.added.push(key);
                Some(Input::Add(r, policy(max_attempts, spacing)))
            }
            Op::Offered(i, a) => self.key(i).map(|key| Input::Offered {
                key,
                agent: agent(a),
            }),
            Op::OfferEnded(i) => self.key(i).map(|key| Input::OfferEnded { key }),
            Op::Started(i, a) => self.key(i).map(|key| Input::AttemptStarted {
                key,
                agent: agent(a),
            }),
            Op::Finished(i, result) => self
                .key(i)
                .map(|key| Input::AttemptFinished { key, result }),
            Op::Cancel(i) => self.key(i).map(|key| Input::Cancel { key }),
            Op::Handled(i) => self.key(i).map(|key| Input::Handled {
                key,
                by: k("operator"),
            }),
            Op::Lost(i) => self.key(i).map(|key| Input::Lost { key }),
            Op::Wait(s) => {
                self.now += secs(s);
                return self.tick();
            }
            Op::Restart => return self.restart(),
        };
        if let Some(input) = input {
            let added = matches!(input, Input::Add(..));
            let ok = self.run(input)?;
            prop_assert!(!added || ok, "a fresh Add must be accepted");
        }
        Ok(())
    }

    /// Serves every open request until none is left: offers, answers and
    /// unanswered tries, waiting as needed.
    fn serve_all(&mut self) -> Result<(), TestCaseError> {
        for _ in 0..10_000 {
            if self.book.is_empty() {
                break;
            }
            let busy: Vec<(String, Status)> = self
                .book
                .open()
                .filter(|r| r.status != Status::Waiting)
                .map(|r| (r.key.clone(), r.status.clone()))
                .collect();
            if busy.is_empty() {
                if let Some(t) = self.book.poll_timeout() {
                    self.now = self.now.max(t);
                }
                self.tick()?;
                continue;
            }
            for (key, status) in busy {
                let input = match status {
                    Status::Queued => Input::Offered {
                        key,
                        agent: k("server"),
                    },
                    Status::Offered { .. } => Input::AttemptStarted {
                        key,
                        agent: k("server"),
                    },
                    _ => Input::AttemptFinished {
                        key,
                        result: AttemptResult::NoAnswer,
                    },
                };
                prop_assert!(self.run(input)?);
            }
            self.now += secs(30);
            self.tick()?;
        }
        prop_assert!(self.book.is_empty());
        Ok(())
    }
}

proptest! {
    /// Whatever the inputs, restarts and waits: an error changes nothing,
    /// every change is persisted (the store always mirrors the book),
    /// `Enqueue` comes only from a due waiting request or a restore,
    /// `Release` only from a finished try, `Withdraw` only from an operator
    /// on a request in the dispatcher; and once every request is served,
    /// each one added has ended exactly once and the book is empty.
    #[test]
    fn every_request_ends_exactly_once(ops in proptest::collection::vec(any_op(), 0..60)) {
        let mut sim = Sim::new();
        for op in ops {
            sim.step(op)?;
        }
        sim.serve_all()?;
        prop_assert!(sim.store.is_empty());
        for key in &sim.added {
            prop_assert_eq!(sim.ends.get(key), Some(&1), "{}", key);
        }
        prop_assert_eq!(sim.ends.len(), sim.added.len());
    }

    /// Tries are counted against the policy: a request never fails for
    /// lack of tries before using them all, and never gets more than its
    /// policy's count (without restarts).
    #[test]
    fn tries_follow_the_policy(max_attempts in 1u32..6, spacing in 0u64..3600, answer_at in 1u32..8) {
        let mut b = CallbackBook::new();
        let added = b.handle(Input::Add(request("a", "cabinet", 0), policy(max_attempts, spacing)), at(30));
        prop_assert_eq!(added, Ok(()));
        let mut now = at(60);
        let mut tries = 0;
        let mut outs = Vec::new();
        while !b.is_empty() {
            if status(&b, "a") == Some(Status::Waiting) {
                let due = b.poll_timeout();
                prop_assert_eq!(due, Some(now + secs(spacing)));
                now = due.unwrap_or(now);
                b.handle_timeout(now);
            }
            start(&mut b, "a", "alice", now);
            tries += 1;
            let result = if tries == answer_at { AttemptResult::Answered } else { AttemptResult::NoAnswer };
            finish(&mut b, "a", result, now);
            outs.extend(drain(&mut b));
        }
        prop_assert_eq!(tries, answer_at.min(max_attempts));
        let completed = outs.iter().any(|o| matches!(o, Output::Event(Event::Completed { .. })));
        prop_assert_eq!(completed, answer_at <= max_attempts);
    }
}
