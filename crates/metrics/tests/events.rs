//! Each dispatcher event moves exactly the series it should: every test
//! diffs the whole exposition before and after the event.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use permanence_acd::{
    AbandonPhase, AgentState, CallId, CancelReason, ChangeReason, Event, OfferFailure,
    OverflowReason, OverflowTarget,
};
use permanence_metrics::{
    AcdRecorder, Metrics, BUCKETS, CALLBACK_MARGIN_NONE_PENDING, DEFAULT_SHORT_ABANDON,
};

/// Every series of the exposition with its value.
fn series(m: &Metrics) -> BTreeMap<String, f64> {
    m.render()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').expect("sample line");
            (k.to_string(), v.parse::<f64>().expect("value"))
        })
        .collect()
}

/// Series whose value changed (new series count from 0), with the change.
fn diff(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    let mut d = BTreeMap::new();
    for (k, v) in after {
        let old = before.get(k).copied().unwrap_or(0.0);
        let same = old == *v || (old.is_nan() && v.is_nan());
        if !same {
            d.insert(k.clone(), v - old);
        }
    }
    for k in before.keys() {
        assert!(after.contains_key(k), "series disappeared: {k}");
    }
    d
}

/// Expected change of a histogram series observing `secs` once.
fn hist(name: &str, labels: &str, secs: f64) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = BUCKETS
        .iter()
        .filter(|b| secs <= **b)
        .map(|b| (format!("{name}_bucket{{{labels},le=\"{b}\"}}"), 1.0))
        .collect();
    v.push((format!("{name}_bucket{{{labels},le=\"+Inf\"}}"), 1.0));
    v.push((format!("{name}_count{{{labels}}}"), 1.0));
    if secs != 0.0 {
        v.push((format!("{name}_sum{{{labels}}}"), secs));
    }
    v
}

fn one(name: &str, labels: &str) -> Vec<(String, f64)> {
    vec![(format!("{name}{{{labels}}}"), 1.0)]
}

struct T {
    m: Arc<Metrics>,
    r: AcdRecorder,
    t0: DateTime<Utc>,
}

impl T {
    fn new() -> Self {
        Self::with_threshold(DEFAULT_SHORT_ABANDON)
    }

    fn with_threshold(short: Duration) -> Self {
        let m = Metrics::new(short).expect("metrics");
        m.practices(&["martin", "caron"]).expect("practices");
        let r = m.recorder();
        Self {
            m,
            r,
            t0: Utc
                .with_ymd_and_hms(2026, 1, 12, 9, 0, 0)
                .single()
                .expect("t0"),
        }
    }

    fn at(&self, secs: i64) -> DateTime<Utc> {
        self.t0 + chrono::Duration::seconds(secs)
    }

    /// Feeds `events` at `secs` and asserts the exposition changed by
    /// exactly `expected`.
    fn check(&mut self, secs: i64, events: &[Event], expected: Vec<Vec<(String, f64)>>) {
        let before = series(&self.m);
        let now = self.at(secs);
        for e in events {
            self.r.on_event(e, now);
        }
        let after = series(&self.m);
        let got = diff(&before, &after);
        let want: BTreeMap<String, f64> = expected.into_iter().flatten().collect();
        assert_eq!(got, want, "after {events:?}");
    }

    fn queue(&mut self, call: u64, practice: &str) {
        self.check(
            0,
            &[Event::CallQueued {
                call: CallId(call),
                practice: practice.into(),
                priority: 0,
                rejoined: false,
            }],
            vec![one(
                "permanence_queue_entered_total",
                &format!("practice=\"{practice}\""),
            )],
        );
    }

    fn offer(&mut self, secs: i64, call: u64, agent: &str) {
        self.check(
            secs,
            &[Event::Offered {
                call: CallId(call),
                agent: agent.into(),
            }],
            vec![],
        );
    }
}

const M: &str = "practice=\"martin\"";

fn offers(result: &str) -> Vec<(String, f64)> {
    one(
        "permanence_offers_total",
        &format!("practice=\"martin\",result=\"{result}\""),
    )
}

#[test]
fn call_queued_counts_an_offered_call() {
    let mut t = T::new();
    t.queue(1, "martin");
    t.queue(2, "caron");
    assert_eq!(t.r.tracked_calls(), 2);
}

#[test]
fn a_call_back_in_the_queue_or_kept_as_a_callback_is_not_counted_again() {
    let mut t = T::new();
    t.queue(1, "martin");
    // The caller asks to be called back: the callbacks' figures follow it.
    t.check(0, &[Event::CallbackKept { call: CallId(1) }], vec![]);
    assert_eq!(t.r.tracked_calls(), 0);
    // Its answer by an agent (the try) is not a second answered call.
    t.check(
        30,
        &[Event::Answered {
            call: CallId(1),
            agent: "alice".into(),
            wait: Duration::from_secs(30),
        }],
        vec![],
    );
    // Queued again with its first join time: not a new offered call.
    t.check(
        40,
        &[Event::CallQueued {
            call: CallId(2),
            practice: "martin".into(),
            priority: 0,
            rejoined: true,
        }],
        vec![],
    );
    assert_eq!(t.r.tracked_calls(), 0);
}

#[test]
fn closed_moves_nothing_the_call_counts_itself() {
    // The call's own disposition counts it as closed
    // (`PracticeMetrics::call_ended`): the dispatcher's refusal does not
    // count it twice.
    let mut t = T::new();
    t.check(
        0,
        &[Event::Closed {
            call: CallId(1),
            practice: "martin".into(),
        }],
        vec![],
    );
    assert_eq!(t.r.tracked_calls(), 0);
}

#[test]
fn answered_call_records_wait_ring_talk_and_wrap_up() {
    let mut t = T::new();
    t.queue(1, "martin");
    t.offer(8, 1, "alice");
    // Answered 12 s after joining, after 4 s of ringing.
    t.check(
        12,
        &[Event::Answered {
            call: CallId(1),
            agent: "alice".into(),
            wait: Duration::from_secs(12),
        }],
        vec![
            one("permanence_queue_answered_total", M),
            offers("answered"),
            hist(
                "permanence_wait_seconds",
                "outcome=\"answered\",practice=\"martin\"",
                12.0,
            ),
            hist("permanence_ring_seconds", M, 4.0),
        ],
    );
    // 200 s of talk.
    t.check(
        212,
        &[
            Event::CallCompleted {
                call: CallId(1),
                agent: "alice".into(),
                talk: Duration::from_secs(200),
            },
            Event::AgentStateChanged {
                agent: "alice".into(),
                from: AgentState::OnCall,
                to: AgentState::WrapUp,
                reason: ChangeReason::CallEnded,
            },
        ],
        vec![hist("permanence_talk_seconds", M, 200.0)],
    );
    assert_eq!(t.r.tracked_calls(), 0);
    assert_eq!(t.r.tracked_agents(), 1);
    // 30 s of wrap-up.
    t.check(
        242,
        &[Event::AgentStateChanged {
            agent: "alice".into(),
            from: AgentState::WrapUp,
            to: AgentState::Available,
            reason: ChangeReason::WrapUpEnded,
        }],
        vec![hist("permanence_wrapup_seconds", M, 30.0)],
    );
    assert_eq!(t.r.tracked_agents(), 0);
}

#[test]
fn call_ended_without_wrap_up_records_no_wrap_up() {
    let mut t = T::new();
    t.queue(1, "martin");
    t.offer(0, 1, "alice");
    t.r.on_event(
        &Event::Answered {
            call: CallId(1),
            agent: "alice".into(),
            wait: Duration::ZERO,
        },
        t.at(0),
    );
    t.check(
        400,
        &[
            Event::CallCompleted {
                call: CallId(1),
                agent: "alice".into(),
                talk: Duration::from_secs(400),
            },
            Event::AgentStateChanged {
                agent: "alice".into(),
                from: AgentState::OnCall,
                to: AgentState::Available,
                reason: ChangeReason::CallEnded,
            },
        ],
        // Above the last bucket: only +Inf, count and sum move.
        vec![hist("permanence_talk_seconds", M, 400.0)],
    );
    assert_eq!(t.r.tracked_agents(), 0);
}

#[test]
fn abandon_in_queue_within_the_threshold_is_short() {
    let mut t = T::new();
    t.queue(1, "martin");
    t.check(
        5,
        &[Event::Abandoned {
            call: CallId(1),
            phase: AbandonPhase::Queue,
            // Exactly the threshold: short (like the le="5" bucket).
            wait: Duration::from_secs(5),
            position: 1,
        }],
        vec![
            one(
                "permanence_queue_abandoned_total",
                "phase=\"queue\",practice=\"martin\",short=\"true\"",
            ),
            hist(
                "permanence_wait_seconds",
                "outcome=\"abandoned\",practice=\"martin\"",
                5.0,
            ),
        ],
    );
    assert_eq!(t.r.tracked_calls(), 0);
}

#[test]
fn abandon_in_queue_after_the_threshold_is_not_short() {
    let mut t = T::new();
    t.queue(1, "martin");
    t.check(
        5,
        &[Event::Abandoned {
            call: CallId(1),
            phase: AbandonPhase::Queue,
            wait: Duration::from_millis(5_001),
            position: 3,
        }],
        vec![
            one(
                "permanence_queue_abandoned_total",
                "phase=\"queue\",practice=\"martin\",short=\"false\"",
            ),
            hist(
                "permanence_wait_seconds",
                "outcome=\"abandoned\",practice=\"martin\"",
                5.001,
            ),
        ],
    );
}

#[test]
fn short_threshold_is_configurable() {
    let mut t = T::with_threshold(Duration::from_secs(10));
    assert_eq!(t.m.short_abandon(), Duration::from_secs(10));
    t.queue(1, "martin");
    t.check(
        8,
        &[Event::Abandoned {
            call: CallId(1),
            phase: AbandonPhase::Queue,
            wait: Duration::from_secs(8),
            position: 1,
        }],
        vec![
            one(
                "permanence_queue_abandoned_total",
                "phase=\"queue\",practice=\"martin\",short=\"true\"",
            ),
            hist(
                "permanence_wait_seconds",
                "outcome=\"abandoned\",practice=\"martin\"",
                8.0,
            ),
        ],
    );
}

#[test]
fn abandon_while_ringing_cancels_the_offer() {
    let mut t = T::new();
    t.queue(1, "martin");
    t.offer(30, 1, "alice");
    t.check(
        40,
        &[Event::Abandoned {
            call: CallId(1),
            phase: AbandonPhase::Ringing,
            wait: Duration::from_secs(40),
            position: 1,
        }],
        vec![
            one(
                "permanence_queue_abandoned_total",
                "phase=\"ringing\",practice=\"martin\",short=\"false\"",
            ),
            hist(
                "permanence_wait_seconds",
                "outcome=\"abandoned\",practice=\"martin\"",
                40.0,
            ),
            offers("cancelled"),
        ],
    );
}

#[test]
fn unanswered_offers_count_by_result() {
    let mut t = T::new();
    t.queue(1, "martin");
    let cases: Vec<(Event, &str)> = vec![
        (
            Event::Rona {
                call: CallId(1),
                agent: "alice".into(),
                strikes: 1,
            },
            "no_answer",
        ),
        (
            Event::OfferFailed {
                call: CallId(1),
                agent: "alice".into(),
                reason: OfferFailure::Busy,
            },
            "busy",
        ),
        (
            Event::OfferFailed {
                call: CallId(1),
                agent: "alice".into(),
                reason: OfferFailure::Rejected,
            },
            "rejected",
        ),
        (
            Event::OfferFailed {
                call: CallId(1),
                agent: "alice".into(),
                reason: OfferFailure::Unreachable,
            },
            "unreachable",
        ),
        (
            Event::OfferWithdrawn {
                call: CallId(1),
                agent: "alice".into(),
                reason: CancelReason::AgentPaused,
            },
            "cancelled",
        ),
    ];
    for (i, (e, result)) in cases.into_iter().enumerate() {
        let s = 10 * i as i64;
        t.offer(s, 1, "alice");
        t.check(s + 5, &[e], vec![offers(result)]);
    }
    // The call is still queued: an answer now records no ring time (the
    // last offer ended) but counts the answer.
    t.check(
        60,
        &[Event::Answered {
            call: CallId(1),
            agent: "bob".into(),
            wait: Duration::from_secs(60),
        }],
        vec![
            one("permanence_queue_answered_total", M),
            offers("answered"),
            hist(
                "permanence_wait_seconds",
                "outcome=\"answered\",practice=\"martin\"",
                60.0,
            ),
        ],
    );
}

#[test]
fn retargeting_to_a_pool_counts_a_pool_overflow_and_keeps_the_call() {
    let mut t = T::new();
    t.queue(1, "martin");
    t.check(
        180,
        &[Event::Retargeted {
            call: CallId(1),
            pool: "shared".into(),
            wait: Duration::from_secs(180),
        }],
        vec![one(
            "permanence_queue_overflowed_total",
            "practice=\"martin\",target=\"pool\"",
        )],
    );
    assert_eq!(t.r.tracked_calls(), 1);
}

#[test]
fn overflow_counts_its_target_and_cancels_a_ringing_offer() {
    let mut t = T::new();
    for (call, target, label) in [
        (1, OverflowTarget::Voicemail, "voicemail"),
        (2, OverflowTarget::Callback, "callback"),
        (3, OverflowTarget::Hangup, "hangup"),
    ] {
        t.queue(call, "martin");
        t.check(
            180,
            &[Event::Overflowed {
                call: CallId(call),
                target,
                wait: Duration::from_secs(180),
                reason: OverflowReason::MaxWait,
            }],
            vec![one(
                "permanence_queue_overflowed_total",
                &format!("practice=\"martin\",target=\"{label}\""),
            )],
        );
    }
    t.queue(4, "martin");
    t.offer(170, 4, "alice");
    t.check(
        180,
        &[Event::Overflowed {
            call: CallId(4),
            target: OverflowTarget::Voicemail,
            wait: Duration::from_secs(180),
            reason: OverflowReason::MaxWait,
        }],
        vec![
            one(
                "permanence_queue_overflowed_total",
                "practice=\"martin\",target=\"voicemail\"",
            ),
            offers("cancelled"),
        ],
    );
    assert_eq!(t.r.tracked_calls(), 0);
}

#[test]
fn agent_and_bookkeeping_events_move_nothing() {
    let mut t = T::new();
    t.check(
        0,
        &[
            Event::AgentStateChanged {
                agent: "alice".into(),
                from: AgentState::LoggedOut,
                to: AgentState::Available,
                reason: ChangeReason::Login,
            },
            Event::AgentStateChanged {
                agent: "alice".into(),
                from: AgentState::Available,
                to: AgentState::Paused,
                reason: ChangeReason::Pause("lunch".into()),
            },
            Event::ShiftChanged {
                agent: "alice".into(),
                in_shift: false,
            },
            Event::ReachabilityChanged {
                agent: "alice".into(),
                reachable: false,
            },
            Event::AgentRemoved {
                agent: "alice".into(),
            },
        ],
        vec![],
    );
}

#[test]
fn events_of_unknown_calls_are_ignored() {
    let mut t = T::new();
    t.check(
        0,
        &[
            Event::Offered {
                call: CallId(9),
                agent: "alice".into(),
            },
            Event::Answered {
                call: CallId(9),
                agent: "alice".into(),
                wait: Duration::from_secs(1),
            },
            Event::Rona {
                call: CallId(9),
                agent: "alice".into(),
                strikes: 1,
            },
            Event::Abandoned {
                call: CallId(9),
                phase: AbandonPhase::Queue,
                wait: Duration::from_secs(1),
                position: 1,
            },
            Event::CallCompleted {
                call: CallId(9),
                agent: "alice".into(),
                talk: Duration::from_secs(1),
            },
        ],
        vec![],
    );
    assert_eq!(t.r.tracked_calls(), 0);
    assert_eq!(t.r.tracked_agents(), 0);
}

#[test]
fn a_practice_missing_from_the_set_is_added_on_first_event() {
    let mut t = T::new();
    let before = series(&t.m);
    t.r.on_event(
        &Event::CallQueued {
            call: CallId(1),
            practice: "new-practice".into(),
            priority: 0,
            rejoined: false,
        },
        t.at(0),
    );
    let after = series(&t.m);
    assert_eq!(
        after.get("permanence_queue_entered_total{practice=\"new-practice\"}"),
        Some(&1.0)
    );
    // All its series appeared at once (zeros included).
    let new: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    assert_eq!(new.len(), series_per_practice());
}

/// Series of one practice: the calls' 4 counters (offered, answered,
/// closed, failed), 12 abandoned (6 phases × short), 4 overflowed; the
/// queue's 2 counters, 4 abandoned, 4 overflowed; 6 offers, 5 histograms
/// (wait × 2 outcomes, ring, talk, wrap-up) × 14 lines, 5 gauges, 5
/// outbound outcomes, the outbound talk time, and the callbacks: 2
/// origins, 4 attempt results, 2 timeliness, 5 failure reasons, handled,
/// and 3 gauges (pending, oldest age, deadline margin): 134.
fn series_per_practice() -> usize {
    (4 + 12 + 4) + (2 + 4 + 4) + 6 + 5 * (BUCKETS.len() + 3) + 5 + 5 + 1 + (2 + 4 + 2 + 5 + 1 + 3)
}

/// The one series of a new practice that does not start at 0: the
/// deadline margin of its (empty) callback queue is the sentinel.
const MARGIN: &str = "permanence_callbacks_deadline_margin_seconds";

#[test]
fn practices_precreate_every_series_at_zero() {
    let m = Metrics::new(DEFAULT_SHORT_ABANDON).expect("metrics");
    let empty = series(&m);
    m.practices(&["martin"]).expect("practices");
    let s = series(&m);
    let new: Vec<(&String, &f64)> = s.iter().filter(|(k, _)| !empty.contains_key(*k)).collect();
    assert_eq!(new.len(), series_per_practice());
    assert_eq!(series_per_practice(), 134);
    for (k, v) in &new {
        assert!(k.contains("practice=\"martin\""), "{k}");
        let want = if k.starts_with(&format!("{MARGIN}{{")) {
            CALLBACK_MARGIN_NONE_PENDING as f64
        } else {
            0.0
        };
        assert_eq!(**v, want, "{k}");
    }
    assert_eq!(
        s.get(&format!("{MARGIN}{{practice=\"martin\"}}")),
        Some(&1e9)
    );
}
