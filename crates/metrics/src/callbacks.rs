//! Label values of the callback families: requests to be called back
//! (virtual hold: the caller keeps their place; or a queue overflowing to
//! a callback), the dialling attempts when their turn comes, how each
//! request ended, and the deadline each practice promises.

/// The value of `permanence_callbacks_deadline_margin_seconds` while no
/// callback request of the practice is pending: 10⁹ seconds (about 31
/// years), far above any alert threshold, so `< 600` style rules never
/// fire on an empty queue. Filter it out of graphs (`< 1e9`).
pub const CALLBACK_MARGIN_NONE_PENDING: i64 = 1_000_000_000;

/// Why a callback was requested (`origin` label of
/// `permanence_callbacks_requested_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallbackOrigin {
    /// The caller asked to be called back, keeping their place in the
    /// queue.
    Caller,
    /// The call overflowed to a callback (maximum wait of the queue).
    Overflow,
}

impl CallbackOrigin {
    /// Every origin, in label order (the index of each in the
    /// per-practice cells).
    pub const ALL: [CallbackOrigin; 2] = [CallbackOrigin::Caller, CallbackOrigin::Overflow];

    /// The label value (`caller`, `overflow`).
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackOrigin::Caller => "caller",
            CallbackOrigin::Overflow => "overflow",
        }
    }

    /// Position in [`Self::ALL`] (label order).
    pub(crate) fn index(self) -> usize {
        match self {
            CallbackOrigin::Caller => 0,
            CallbackOrigin::Overflow => 1,
        }
    }
}

/// How one dialling attempt of a callback ended (`result` label of
/// `permanence_callback_attempts_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallbackAttemptResult {
    /// The patient answered.
    Answered,
    /// Nobody answered before the ring timeout (or the network gave up
    /// ringing).
    NoAnswer,
    /// The patient's line was busy.
    Busy,
    /// The trunk or the network refused or failed the call (any other
    /// final error, transport failure).
    Failed,
}

impl CallbackAttemptResult {
    /// Every result, in label order (the index of each in the
    /// per-practice cells).
    pub const ALL: [CallbackAttemptResult; 4] = [
        CallbackAttemptResult::Answered,
        CallbackAttemptResult::Busy,
        CallbackAttemptResult::Failed,
        CallbackAttemptResult::NoAnswer,
    ];

    /// The label value (`answered`, `no_answer`, `busy`, `failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackAttemptResult::Answered => "answered",
            CallbackAttemptResult::NoAnswer => "no_answer",
            CallbackAttemptResult::Busy => "busy",
            CallbackAttemptResult::Failed => "failed",
        }
    }

    /// Position in [`Self::ALL`] (label order).
    pub(crate) fn index(self) -> usize {
        match self {
            CallbackAttemptResult::Answered => 0,
            CallbackAttemptResult::Busy => 1,
            CallbackAttemptResult::Failed => 2,
            CallbackAttemptResult::NoAnswer => 3,
        }
    }
}

/// Why a callback request ended without reaching the patient (`reason`
/// label of `permanence_callbacks_failed_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallbackFailure {
    /// Every attempt went unanswered (the last one: no answer).
    NoAnswer,
    /// Every attempt found the line busy (the last one: busy).
    Busy,
    /// The attempts failed in the trunk or the network (the last one:
    /// failed).
    Failed,
    /// The number to call back is not an allowed destination (the
    /// outbound allow-list): nothing was dialled.
    Refused,
    /// An operator cancelled the request.
    Cancelled,
}

impl CallbackFailure {
    /// Every reason, in label order (the index of each in the
    /// per-practice cells).
    pub const ALL: [CallbackFailure; 5] = [
        CallbackFailure::Busy,
        CallbackFailure::Cancelled,
        CallbackFailure::Failed,
        CallbackFailure::NoAnswer,
        CallbackFailure::Refused,
    ];

    /// The label value (`no_answer`, `busy`, `failed`, `refused`,
    /// `cancelled`).
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackFailure::NoAnswer => "no_answer",
            CallbackFailure::Busy => "busy",
            CallbackFailure::Failed => "failed",
            CallbackFailure::Refused => "refused",
            CallbackFailure::Cancelled => "cancelled",
        }
    }

    /// Position in [`Self::ALL`] (label order).
    pub(crate) fn index(self) -> usize {
        match self {
            CallbackFailure::Busy => 0,
            CallbackFailure::Cancelled => 1,
            CallbackFailure::Failed => 2,
            CallbackFailure::NoAnswer => 3,
            CallbackFailure::Refused => 4,
        }
    }
}

/// `timeliness` values of `permanence_callbacks_completed_total`, in
/// label order: index 0 after the deadline, 1 within it.
pub(crate) const TIMELINESS_LABELS: [&str; 2] = ["after_deadline", "within_deadline"];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Metrics, DEFAULT_SHORT_ABANDON};
    use std::collections::BTreeMap;
    use std::time::Duration;

    /// `series → value` of a scrape.
    fn series(m: &Metrics) -> BTreeMap<String, f64> {
        m.render()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect()
    }

    fn requested(practice: &str, origin: &str) -> String {
        format!(
            "permanence_callbacks_requested_total{{origin=\"{origin}\",practice=\"{practice}\"}}"
        )
    }

    fn attempts(practice: &str, result: &str) -> String {
        format!("permanence_callback_attempts_total{{practice=\"{practice}\",result=\"{result}\"}}")
    }

    fn completed(practice: &str, timeliness: &str) -> String {
        format!(
            "permanence_callbacks_completed_total{{practice=\"{practice}\",timeliness=\"{timeliness}\"}}"
        )
    }

    fn failed(practice: &str, reason: &str) -> String {
        format!("permanence_callbacks_failed_total{{practice=\"{practice}\",reason=\"{reason}\"}}")
    }

    fn single(family: &str, practice: &str) -> String {
        format!("{family}{{practice=\"{practice}\"}}")
    }

    const HANDLED: &str = "permanence_callbacks_handled_total";
    const PENDING: &str = "permanence_callbacks_pending";
    const OLDEST: &str = "permanence_callbacks_oldest_pending_age_seconds";
    const MARGIN: &str = "permanence_callbacks_deadline_margin_seconds";

    const SENTINEL: f64 = CALLBACK_MARGIN_NONE_PENDING as f64;

    #[test]
    fn families_are_exported_with_help_type_and_initial_values() {
        let m = Metrics::new(DEFAULT_SHORT_ABANDON).expect("metrics");
        // Per-practice families only: nothing before the first practice.
        assert!(!m.render().contains("permanence_callback"));
        m.practices(&["martin", "caron"]).expect("practices");
        let text = m.render();
        for (name, kind) in [
            ("permanence_callbacks_requested_total", "counter"),
            ("permanence_callback_attempts_total", "counter"),
            ("permanence_callbacks_completed_total", "counter"),
            ("permanence_callbacks_failed_total", "counter"),
            (HANDLED, "counter"),
            (PENDING, "gauge"),
            (OLDEST, "gauge"),
            (MARGIN, "gauge"),
        ] {
            assert!(text.contains(&format!("# HELP {name} ")), "{name} HELP");
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "{name} TYPE"
            );
            assert!(
                m.families().iter().any(|f| f.name == name),
                "{name} listed in families()"
            );
        }
        let s = series(&m);
        for p in ["martin", "caron"] {
            for o in ["caller", "overflow"] {
                assert_eq!(s.get(&requested(p, o)), Some(&0.0), "{p} {o}");
            }
            for r in ["answered", "no_answer", "busy", "failed"] {
                assert_eq!(s.get(&attempts(p, r)), Some(&0.0), "{p} {r}");
            }
            for t in ["within_deadline", "after_deadline"] {
                assert_eq!(s.get(&completed(p, t)), Some(&0.0), "{p} {t}");
            }
            for r in ["no_answer", "busy", "failed", "refused", "cancelled"] {
                assert_eq!(s.get(&failed(p, r)), Some(&0.0), "{p} {r}");
            }
            assert_eq!(s.get(&single(HANDLED, p)), Some(&0.0));
            assert_eq!(s.get(&single(PENDING, p)), Some(&0.0));
            assert_eq!(s.get(&single(OLDEST, p)), Some(&0.0));
            // Nothing pending yet: the sentinel, not 0 (which would read as
            // a deadline being missed now).
            assert_eq!(s.get(&single(MARGIN, p)), Some(&SENTINEL));
        }
        let callbacks = s.keys().filter(|k| k.starts_with("permanence_callback"));
        // 2 practices × (2 + 4 + 2 + 5 + 1 counters + 3 gauges).
        assert_eq!(callbacks.count(), 2 * 17);
        // The sentinel is written as an integer, as the encoder does.
        assert!(text.contains(&format!("{} 1000000000\n", single(MARGIN, "caron"))));
    }

    #[test]
    fn events_are_counted_under_their_practice_and_label() {
        let m = Metrics::new(DEFAULT_SHORT_ABANDON).expect("metrics");
        m.practices(&["martin", "caron"]).expect("practices");
        m.callback_requested("martin", CallbackOrigin::Caller);
        m.callback_requested("martin", CallbackOrigin::Caller);
        m.callback_requested("martin", CallbackOrigin::Overflow);
        m.callback_requested("caron", CallbackOrigin::Overflow);
        for r in [
            CallbackAttemptResult::NoAnswer,
            CallbackAttemptResult::NoAnswer,
            CallbackAttemptResult::Busy,
            CallbackAttemptResult::Answered,
        ] {
            m.callback_attempt("martin", r);
        }
        m.callback_attempt("caron", CallbackAttemptResult::Failed);
        m.callback_completed("martin", true);
        m.callback_completed("martin", true);
        m.callback_completed("martin", false);
        m.callback_failed("caron", CallbackFailure::Failed);
        m.callback_failed("caron", CallbackFailure::Refused);
        m.callback_failed("martin", CallbackFailure::Cancelled);
        m.callback_handled("caron");
        let s = series(&m);
        assert_eq!(s.get(&requested("martin", "caller")), Some(&2.0));
        assert_eq!(s.get(&requested("martin", "overflow")), Some(&1.0));
        assert_eq!(s.get(&requested("caron", "caller")), Some(&0.0));
        assert_eq!(s.get(&requested("caron", "overflow")), Some(&1.0));
        assert_eq!(s.get(&attempts("martin", "no_answer")), Some(&2.0));
        assert_eq!(s.get(&attempts("martin", "busy")), Some(&1.0));
        assert_eq!(s.get(&attempts("martin", "answered")), Some(&1.0));
        assert_eq!(s.get(&attempts("martin", "failed")), Some(&0.0));
        assert_eq!(s.get(&attempts("caron", "failed")), Some(&1.0));
        assert_eq!(s.get(&completed("martin", "within_deadline")), Some(&2.0));
        assert_eq!(s.get(&completed("martin", "after_deadline")), Some(&1.0));
        assert_eq!(s.get(&completed("caron", "within_deadline")), Some(&0.0));
        assert_eq!(s.get(&failed("caron", "failed")), Some(&1.0));
        assert_eq!(s.get(&failed("caron", "refused")), Some(&1.0));
        assert_eq!(s.get(&failed("caron", "cancelled")), Some(&0.0));
        assert_eq!(s.get(&failed("martin", "cancelled")), Some(&1.0));
        assert_eq!(s.get(&single(HANDLED, "caron")), Some(&1.0));
        assert_eq!(s.get(&single(HANDLED, "martin")), Some(&0.0));
    }

    #[test]
    fn queue_gauges_are_set_and_the_sentinel_stands_for_an_empty_queue() {
        let m = Metrics::new(DEFAULT_SHORT_ABANDON).expect("metrics");
        m.practices(&["martin", "caron"]).expect("practices");
        m.set_callback_queue("martin", 3, Duration::from_millis(754_500), Some(-125));
        m.set_callback_queue("caron", 1, Duration::from_secs(60), Some(3540));
        let s = series(&m);
        assert_eq!(s.get(&single(PENDING, "martin")), Some(&3.0));
        assert_eq!(s.get(&single(OLDEST, "martin")), Some(&754.5));
        assert_eq!(s.get(&single(MARGIN, "martin")), Some(&-125.0));
        assert_eq!(s.get(&single(PENDING, "caron")), Some(&1.0));
        assert_eq!(s.get(&single(OLDEST, "caron")), Some(&60.0));
        assert_eq!(s.get(&single(MARGIN, "caron")), Some(&3540.0));
        // The queue empties: age 0 and the sentinel.
        m.set_callback_queue("martin", 0, Duration::ZERO, None);
        // Nothing pending wins over an inconsistent age or margin.
        m.set_callback_queue("caron", 0, Duration::from_secs(5), Some(-1));
        let s = series(&m);
        for p in ["martin", "caron"] {
            assert_eq!(s.get(&single(PENDING, p)), Some(&0.0), "{p}");
            assert_eq!(s.get(&single(OLDEST, p)), Some(&0.0), "{p}");
            assert_eq!(s.get(&single(MARGIN, p)), Some(&SENTINEL), "{p}");
        }
        // Requests pending without a deadline known: the sentinel too.
        m.set_callback_queue("martin", 2, Duration::from_secs(30), None);
        let s = series(&m);
        assert_eq!(s.get(&single(PENDING, "martin")), Some(&2.0));
        assert_eq!(s.get(&single(MARGIN, "martin")), Some(&SENTINEL));
    }

    #[test]
    fn an_unknown_practice_is_neither_counted_nor_created() {
        let m = Metrics::new(DEFAULT_SHORT_ABANDON).expect("metrics");
        m.practices(&["martin"]).expect("practices");
        let before = series(&m);
        m.callback_requested("inconnu", CallbackOrigin::Caller);
        m.callback_attempt("inconnu", CallbackAttemptResult::Answered);
        m.callback_completed("inconnu", true);
        m.callback_failed("inconnu", CallbackFailure::NoAnswer);
        m.callback_handled("inconnu");
        m.set_callback_queue("inconnu", 4, Duration::from_secs(10), Some(-5));
        assert_eq!(series(&m), before);
        assert_eq!(m.practice_set().len(), 1);
    }

    #[test]
    fn a_reload_keeps_kept_practices_and_drops_removed_ones() {
        let m = Metrics::new(DEFAULT_SHORT_ABANDON).expect("metrics");
        m.practices(&["martin", "caron"]).expect("practices");
        m.callback_requested("martin", CallbackOrigin::Overflow);
        m.set_callback_queue("martin", 1, Duration::from_secs(90), Some(3510));
        m.callback_requested("caron", CallbackOrigin::Caller);
        m.practices(&["martin", "dupont"]).expect("reload");
        // A request of the removed practice ends after the reload.
        m.callback_completed("caron", true);
        let s = series(&m);
        assert_eq!(s.get(&requested("martin", "overflow")), Some(&1.0));
        assert_eq!(s.get(&single(PENDING, "martin")), Some(&1.0));
        assert_eq!(s.get(&single(MARGIN, "martin")), Some(&3510.0));
        assert_eq!(s.get(&requested("dupont", "caller")), Some(&0.0));
        assert_eq!(s.get(&single(MARGIN, "dupont")), Some(&SENTINEL));
        assert!(!s.keys().any(|k| k.contains("caron")));
    }

    #[test]
    fn all_is_in_label_order_and_index_matches() {
        for (i, o) in CallbackOrigin::ALL.iter().enumerate() {
            assert_eq!(o.index(), i);
        }
        assert!(CallbackOrigin::ALL
            .windows(2)
            .all(|w| w[0].as_str() < w[1].as_str()));
        for (i, r) in CallbackAttemptResult::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        assert!(CallbackAttemptResult::ALL
            .windows(2)
            .all(|w| w[0].as_str() < w[1].as_str()));
        for (i, r) in CallbackFailure::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        assert!(CallbackFailure::ALL
            .windows(2)
            .all(|w| w[0].as_str() < w[1].as_str()));
        assert!(TIMELINESS_LABELS[0] < TIMELINESS_LABELS[1]);
        assert_eq!(TIMELINESS_LABELS[usize::from(true)], "within_deadline");
    }
}
