//! Label values of the outbound-call families: calls placed by
//! telesecretaries (`*8` codes), how they ended and why some were refused
//! before anything left the switch.

/// How an outbound call ended (`outcome` label of
/// `permanence_outbound_calls_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboundOutcome {
    /// The called party answered (its talk time is added to
    /// `permanence_outbound_talk_seconds_total`).
    Answered,
    /// The called party was busy.
    Busy,
    /// Nobody answered before the ring timeout (or the network gave up
    /// ringing).
    NoAnswer,
    /// The trunk or the network refused or failed the call (any other
    /// final error, transport failure).
    Failed,
    /// The agent hung up before the answer.
    Cancelled,
}

impl OutboundOutcome {
    /// Every outcome, in label order (the index of each in the
    /// per-practice cells).
    pub const ALL: [OutboundOutcome; 5] = [
        OutboundOutcome::Answered,
        OutboundOutcome::Busy,
        OutboundOutcome::Cancelled,
        OutboundOutcome::Failed,
        OutboundOutcome::NoAnswer,
    ];

    /// The label value (`answered`, `busy`, `no_answer`, `failed`,
    /// `cancelled`).
    pub fn as_str(self) -> &'static str {
        match self {
            OutboundOutcome::Answered => "answered",
            OutboundOutcome::Busy => "busy",
            OutboundOutcome::NoAnswer => "no_answer",
            OutboundOutcome::Failed => "failed",
            OutboundOutcome::Cancelled => "cancelled",
        }
    }

    /// Position in [`Self::ALL`] (label order).
    pub(crate) fn index(self) -> usize {
        match self {
            OutboundOutcome::Answered => 0,
            OutboundOutcome::Busy => 1,
            OutboundOutcome::Cancelled => 2,
            OutboundOutcome::Failed => 3,
            OutboundOutcome::NoAnswer => 4,
        }
    }
}

/// Why an outbound attempt was refused before anything left the switch
/// (`reason` label of `permanence_outbound_refused_total`). Mirrors the
/// outbound crate's `Refusal`, without the destination class (a bounded
/// label set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboundRefusal {
    /// The destination is not in the practice's or the agent's allow-list
    /// (premium rate, international, short code...): the toll-fraud guard.
    Destination,
    /// The dialled string is not a number the switch can place.
    InvalidNumber,
    /// No caller ID could be chosen: no (known) `*8` practice code and no
    /// recent call to take the practice from.
    NoPractice,
    /// The agent does not serve the practice named.
    NotServed,
    /// The agent already has the maximum of outbound calls in progress.
    TooManyCalls,
}

impl OutboundRefusal {
    /// Every reason, in label order (the index of each in the
    /// pre-resolved counters).
    pub const ALL: [OutboundRefusal; 5] = [
        OutboundRefusal::Destination,
        OutboundRefusal::InvalidNumber,
        OutboundRefusal::NoPractice,
        OutboundRefusal::NotServed,
        OutboundRefusal::TooManyCalls,
    ];

    /// The label value (`destination`, `invalid_number`, `no_practice`,
    /// `not_served`, `too_many_calls`).
    pub fn as_str(self) -> &'static str {
        match self {
            OutboundRefusal::Destination => "destination",
            OutboundRefusal::InvalidNumber => "invalid_number",
            OutboundRefusal::NoPractice => "no_practice",
            OutboundRefusal::NotServed => "not_served",
            OutboundRefusal::TooManyCalls => "too_many_calls",
        }
    }

    /// Position in [`Self::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

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

    fn calls(practice: &str, outcome: &str) -> String {
        format!("permanence_outbound_calls_total{{outcome=\"{outcome}\",practice=\"{practice}\"}}")
    }

    fn talk(practice: &str) -> String {
        format!("permanence_outbound_talk_seconds_total{{practice=\"{practice}\"}}")
    }

    fn refused(reason: &str) -> String {
        format!("permanence_outbound_refused_total{{reason=\"{reason}\"}}")
    }

    const ACTIVE: &str = "permanence_outbound_calls_active";

    #[test]
    fn families_are_exported_with_help_type_and_zeros() {
        let m = Metrics::new(DEFAULT_SHORT_ABANDON).expect("metrics");
        // Before any practice: the global families are there already.
        let text = m.render();
        for (name, kind) in [
            ("permanence_outbound_calls_active", "gauge"),
            ("permanence_outbound_refused_total", "counter"),
        ] {
            assert!(text.contains(&format!("# HELP {name} ")), "{name} HELP");
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "{name} TYPE"
            );
        }
        m.practices(&["martin", "caron"]).expect("practices");
        let text = m.render();
        for (name, kind) in [
            ("permanence_outbound_calls_total", "counter"),
            ("permanence_outbound_talk_seconds_total", "counter"),
            ("permanence_outbound_calls_active", "gauge"),
            ("permanence_outbound_refused_total", "counter"),
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
            for o in ["answered", "busy", "no_answer", "failed", "cancelled"] {
                assert_eq!(s.get(&calls(p, o)), Some(&0.0), "{p} {o}");
            }
            assert_eq!(s.get(&talk(p)), Some(&0.0), "{p} talk");
        }
        for r in [
            "destination",
            "invalid_number",
            "no_practice",
            "not_served",
            "too_many_calls",
        ] {
            assert_eq!(s.get(&refused(r)), Some(&0.0), "{r}");
        }
        assert_eq!(s.get(ACTIVE), Some(&0.0));
        let outbound = s.keys().filter(|k| k.starts_with("permanence_outbound_"));
        // 2 practices × (5 outcomes + talk) + 5 reasons + the gauge.
        assert_eq!(outbound.count(), 2 * 6 + 5 + 1);
    }

    #[test]
    fn calls_talk_and_refusals_are_counted_and_the_gauge_returns_to_zero() {
        let m = Metrics::new(DEFAULT_SHORT_ABANDON).expect("metrics");
        m.practices(&["martin", "caron"]).expect("practices");
        m.outbound_refused(OutboundRefusal::Destination);
        m.outbound_refused(OutboundRefusal::Destination);
        m.outbound_refused(OutboundRefusal::NotServed);
        for _ in 0..5 {
            m.outbound_started();
        }
        assert_eq!(series(&m).get(ACTIVE), Some(&5.0));
        m.outbound_ended(
            "martin",
            OutboundOutcome::Answered,
            Duration::from_millis(90_500),
        );
        m.outbound_ended("martin", OutboundOutcome::Answered, Duration::from_secs(30));
        // Talk time of an unanswered call is ignored.
        m.outbound_ended("martin", OutboundOutcome::Busy, Duration::from_secs(10));
        m.outbound_ended("caron", OutboundOutcome::Cancelled, Duration::ZERO);
        assert_eq!(series(&m).get(ACTIVE), Some(&1.0));
        // A practice outside the set: no series, no panic, gauge still down.
        m.outbound_ended("inconnu", OutboundOutcome::Failed, Duration::from_secs(3));
        let s = series(&m);
        assert_eq!(s.get(ACTIVE), Some(&0.0));
        assert_eq!(s.get(&calls("martin", "answered")), Some(&2.0));
        assert_eq!(s.get(&calls("martin", "busy")), Some(&1.0));
        assert_eq!(s.get(&calls("martin", "cancelled")), Some(&0.0));
        assert_eq!(s.get(&calls("caron", "cancelled")), Some(&1.0));
        assert_eq!(s.get(&calls("caron", "failed")), Some(&0.0));
        assert_eq!(s.get(&talk("martin")), Some(&120.5));
        assert_eq!(s.get(&talk("caron")), Some(&0.0));
        assert!(!s.keys().any(|k| k.contains("inconnu")));
        assert_eq!(s.get(&refused("destination")), Some(&2.0));
        assert_eq!(s.get(&refused("not_served")), Some(&1.0));
        assert_eq!(s.get(&refused("too_many_calls")), Some(&0.0));
    }

    #[test]
    fn a_reload_keeps_counts_of_kept_practices_and_drops_removed_ones() {
        let m = Metrics::new(DEFAULT_SHORT_ABANDON).expect("metrics");
        m.practices(&["martin", "caron"]).expect("practices");
        m.outbound_started();
        m.outbound_ended("martin", OutboundOutcome::NoAnswer, Duration::ZERO);
        m.outbound_started();
        m.practices(&["martin", "dupont"]).expect("reload");
        // The call of a removed practice ends after the reload.
        m.outbound_ended("caron", OutboundOutcome::Answered, Duration::from_secs(60));
        let s = series(&m);
        assert_eq!(s.get(&calls("martin", "no_answer")), Some(&1.0));
        assert_eq!(s.get(&calls("dupont", "answered")), Some(&0.0));
        assert!(!s.keys().any(|k| k.contains("caron")));
        assert_eq!(s.get(ACTIVE), Some(&0.0));
    }

    #[test]
    fn all_is_in_label_order_and_index_matches() {
        for (i, o) in OutboundOutcome::ALL.iter().enumerate() {
            assert_eq!(o.index(), i);
        }
        assert!(OutboundOutcome::ALL
            .windows(2)
            .all(|w| w[0].as_str() < w[1].as_str()));
        for (i, r) in OutboundRefusal::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        assert!(OutboundRefusal::ALL
            .windows(2)
            .all(|w| w[0].as_str() < w[1].as_str()));
    }
}
