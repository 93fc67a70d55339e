//! Text exposition.
//!
//! `Registry::gather` builds a message per series, clones its label
//! strings and sorts every family: at 5,000 practices (~460,000 series)
//! that alone took hundreds of milliseconds. So the per-practice families
//! are written directly from the practices' cells, in the exact order and
//! format of `gather` + `TextEncoder` (a test checks the output is
//! byte-identical); the small global families go through the prometheus
//! crate's own collectors and encoder.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;

use prometheus::core::Collector;
use prometheus::proto::{Metric, MetricFamily, MetricType};
use prometheus::TextEncoder;

use crate::atomics::{AtomicHistogram, Counter, FloatGauge, IntGauge};
use crate::callbacks::{CallbackAttemptResult, CallbackFailure, CallbackOrigin, TIMELINESS_LABELS};
use crate::collector::{
    call_phases_sorted, PracticeFamily, OFFER_ORDER, PHASES, SHORT, WAIT_OUTCOMES,
};
use crate::outbound::OutboundOutcome;
use crate::practice::{CALL_OVERFLOW_LABELS, OVERFLOW_LABELS};
use crate::{FamilyInfo, MetricKind, PracticeMetrics, PracticeSet};

/// One family of the exposition.
pub(crate) enum Block {
    /// Rendered by the prometheus crate (few series).
    Global(Box<dyn Collector>),
    /// Rendered from the practice cells.
    Practice(PracticeFamily),
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Block").field(&self.name()).finish()
    }
}

impl Block {
    /// Name, type and help of the block's family.
    pub(crate) fn family(&self) -> FamilyInfo {
        match self {
            Block::Global(c) => {
                let kind = c
                    .collect()
                    .first()
                    .map(|mf| match mf.get_field_type() {
                        MetricType::COUNTER => MetricKind::Counter,
                        MetricType::HISTOGRAM => MetricKind::Histogram,
                        _ => MetricKind::Gauge,
                    })
                    .unwrap_or(MetricKind::Gauge);
                let (name, help) = c
                    .desc()
                    .first()
                    .map(|d| (d.fq_name.clone(), d.help.clone()))
                    .unwrap_or_default();
                FamilyInfo { name, kind, help }
            }
            Block::Practice(f) => {
                let (name, help, _) = f.info();
                FamilyInfo {
                    name: name.to_string(),
                    kind: f.kind(),
                    help: help.to_string(),
                }
            }
        }
    }

    /// The family name (blocks are written in name order, like `gather`).
    pub(crate) fn name(&self) -> String {
        match self {
            Block::Global(c) => c
                .desc()
                .first()
                .map(|d| d.fq_name.clone())
                .unwrap_or_default(),
            Block::Practice(f) => f.info().0.to_string(),
        }
    }
}

/// Writes every block.
pub(crate) fn render(blocks: &[Block], set: &PracticeSet, out: &mut String) {
    let enc = TextEncoder::new();
    let mut scratch = String::with_capacity(256);
    for b in blocks {
        match b {
            Block::Global(c) => {
                for mut mf in c.collect() {
                    if mf.get_metric().is_empty() {
                        continue;
                    }
                    sort_like_gather(&mut mf);
                    // Only an empty family fails, and those are skipped.
                    let _ = enc.encode_utf8(std::slice::from_ref(&mf), out);
                }
            }
            Block::Practice(family) => {
                if set.sorted.is_empty() {
                    continue;
                }
                let (name, help, _) = family.info();
                header(out, name, help, family.kind().text());
                write_family(*family, out, &mut scratch, name, &set.sorted);
            }
        }
    }
}

/// Sorts a family's series by label values, as `Registry::gather` does.
fn sort_like_gather(mf: &mut MetricFamily) {
    mf.mut_metric().sort_by(|a: &Metric, b: &Metric| {
        let (la, lb) = (a.get_label(), b.get_label());
        la.len().cmp(&lb.len()).then_with(|| {
            la.iter()
                .zip(lb.iter())
                .map(|(x, y)| x.value().cmp(y.value()))
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        })
    });
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    if !help.is_empty() {
        out.push_str("# HELP ");
        out.push_str(name);
        out.push(' ');
        out.push_str(&escape(help, false));
        out.push('\n');
    }
    out.push_str("# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(kind);
    out.push('\n');
}

/// Escapes `\` and newline (and `"` in label values), like the
/// prometheus crate's text encoder.
pub(crate) fn escape(v: &str, quote: bool) -> Cow<'_, str> {
    let needs = |c: char| c == '\\' || c == '\n' || (quote && c == '"');
    if !v.contains(needs) {
        return Cow::Borrowed(v);
    }
    let mut s = String::with_capacity(v.len() + 8);
    for c in v.chars() {
        if needs(c) {
            s.extend(c.escape_default());
        } else {
            s.push(c);
        }
    }
    Cow::Owned(s)
}

/// Writes a family labelled `phase`, `practice`, `short` in `gather` order
/// (phase-major): `phases` are the label values, sorted, with the index of
/// their counters; `cell(p, phase index, short index)` reads one.
fn phase_family(
    out: &mut String,
    name: &str,
    ps: &[Arc<PracticeMetrics>],
    phases: &[(&str, usize)],
    cell: impl Fn(&PracticeMetrics, usize, usize) -> u64,
) {
    for (phase, pi) in phases {
        for p in ps {
            for (si, short) in SHORT.iter().enumerate() {
                out.push_str(name);
                out.push_str("{phase=\"");
                out.push_str(phase);
                out.push_str("\",practice=\"");
                out.push_str(&p.escaped);
                out.push_str("\",short=\"");
                out.push_str(short);
                out.push_str("\"}");
                value_u64(out, cell(p, *pi, si));
            }
        }
    }
}

/// Writes the series of a per-practice family in `gather` order: sorted by
/// label values, label names taken in sorted order.
fn write_family(
    family: PracticeFamily,
    out: &mut String,
    pre: &mut String,
    name: &str,
    ps: &[Arc<PracticeMetrics>],
) {
    use PracticeFamily::*;
    let counter = |out: &mut String, get: fn(&PracticeMetrics) -> &Counter| {
        for p in ps {
            practice_labels(out, name, p, None);
            value_u64(out, get(p).get());
        }
    };
    let int_gauge = |out: &mut String, get: fn(&PracticeMetrics) -> &IntGauge| {
        for p in ps {
            practice_labels(out, name, p, None);
            value_f64(out, get(p).get() as f64);
        }
    };
    let gauge = |out: &mut String, get: fn(&PracticeMetrics) -> &FloatGauge| {
        for p in ps {
            practice_labels(out, name, p, None);
            value_f64(out, get(p).get());
        }
    };
    match family {
        Offered => counter(out, |p| &p.calls_offered),
        Answered => counter(out, |p| &p.calls_answered),
        Closed => counter(out, |p| &p.closed),
        Abandoned => {
            let phases = call_phases_sorted().map(|ph| (ph.as_str(), ph.index()));
            phase_family(out, name, ps, &phases, |p, pi, si| {
                p.calls_abandoned[pi][si].get()
            });
        }
        Overflowed => {
            for p in ps {
                for (i, label) in CALL_OVERFLOW_LABELS.iter().enumerate() {
                    practice_labels(out, name, p, Some(("target", label)));
                    value_u64(out, p.calls_overflowed[i].get());
                }
            }
        }
        Failed => counter(out, |p| &p.calls_failed),
        QueueEntered => counter(out, |p| &p.queue_entered),
        QueueAnswered => counter(out, |p| &p.queue_answered),
        QueueAbandoned => {
            let phases = [(PHASES[0], 0), (PHASES[1], 1)];
            phase_family(out, name, ps, &phases, |p, pi, si| {
                p.queue_abandoned[pi][si].get()
            });
        }
        QueueOverflowed => {
            for p in ps {
                for (i, label) in OVERFLOW_LABELS.iter().enumerate() {
                    practice_labels(out, name, p, Some(("target", label)));
                    value_u64(out, p.queue_overflowed[i].get());
                }
            }
        }
        Offers => {
            for p in ps {
                for r in OFFER_ORDER {
                    practice_labels(out, name, p, Some(("result", r.label())));
                    value_u64(out, p.offers[r.index()].get());
                }
            }
        }
        Wait => {
            for p in ps {
                histogram(out, pre, name, Some(WAIT_OUTCOMES[0]), p, &p.wait_abandoned);
            }
            for p in ps {
                histogram(out, pre, name, Some(WAIT_OUTCOMES[1]), p, &p.wait_answered);
            }
        }
        Ring | Talk | Wrapup => {
            for p in ps {
                if let Some(h) = family.histogram(p) {
                    histogram(out, pre, name, None, p, h);
                }
            }
        }
        QueueWaiting => int_gauge(out, |p| &p.waiting),
        QueueOldestWait => gauge(out, |p| &p.oldest_wait),
        QueueEstimatedWait => gauge(out, |p| &p.estimated_wait),
        AgentsEligible => int_gauge(out, |p| &p.eligible),
        PracticeOpen => int_gauge(out, |p| &p.open),
        OutboundCalls => {
            // Labels outcome, practice: outcome-major.
            for o in OutboundOutcome::ALL {
                for p in ps {
                    out.push_str(name);
                    out.push_str("{outcome=\"");
                    out.push_str(o.as_str());
                    out.push_str("\",practice=\"");
                    out.push_str(&p.escaped);
                    out.push_str("\"}");
                    value_u64(out, p.outbound[o.index()].get());
                }
            }
        }
        OutboundTalk => {
            for p in ps {
                practice_labels(out, name, p, None);
                value_f64(out, p.outbound_talk_seconds());
            }
        }
        CallbacksRequested => {
            // Labels origin, practice: origin-major.
            for (i, o) in CallbackOrigin::ALL.iter().enumerate() {
                for p in ps {
                    out.push_str(name);
                    out.push_str("{origin=\"");
                    out.push_str(o.as_str());
                    out.push_str("\",practice=\"");
                    out.push_str(&p.escaped);
                    out.push_str("\"}");
                    value_u64(out, p.callbacks_requested.get(i).map_or(0, Counter::get));
                }
            }
        }
        // `ALL` is in index order: zipping pairs each label with its cell.
        CallbackAttempts => {
            for p in ps {
                for (r, c) in CallbackAttemptResult::ALL.iter().zip(&p.callback_attempts) {
                    practice_labels(out, name, p, Some(("result", r.as_str())));
                    value_u64(out, c.get());
                }
            }
        }
        CallbacksCompleted => {
            for p in ps {
                for (t, c) in TIMELINESS_LABELS.iter().zip(&p.callbacks_completed) {
                    practice_labels(out, name, p, Some(("timeliness", t)));
                    value_u64(out, c.get());
                }
            }
        }
        CallbacksFailed => {
            for p in ps {
                for (r, c) in CallbackFailure::ALL.iter().zip(&p.callbacks_failed) {
                    practice_labels(out, name, p, Some(("reason", r.as_str())));
                    value_u64(out, c.get());
                }
            }
        }
        CallbacksHandled => counter(out, |p| &p.callbacks_handled),
        CallbacksPending => int_gauge(out, |p| &p.callbacks_pending),
        CallbacksOldestAge => gauge(out, |p| &p.callbacks_oldest_age),
        CallbacksMargin => int_gauge(out, |p| &p.callbacks_margin),
    }
}

/// `name{practice="p"}` or `name{practice="p",k="v"}` (every family
/// written this way has `practice` first in name order).
fn practice_labels(out: &mut String, name: &str, p: &PracticeMetrics, extra: Option<(&str, &str)>) {
    out.push_str(name);
    out.push_str("{practice=\"");
    out.push_str(&p.escaped);
    if let Some((k, v)) = extra {
        out.push_str("\",");
        out.push_str(k);
        out.push_str("=\"");
        out.push_str(v);
    }
    out.push_str("\"}");
}

/// The label set of a histogram series, without braces:
/// `outcome="x",practice="p"` or `practice="p"`.
fn hist_labels(out: &mut String, outcome: Option<&str>, p: &PracticeMetrics) {
    if let Some(o) = outcome {
        out.push_str("outcome=\"");
        out.push_str(o);
        out.push_str("\",");
    }
    out.push_str("practice=\"");
    out.push_str(&p.escaped);
    out.push('"');
}

/// `le` label values of [`crate::BUCKETS`], as the encoder formats them.
const BUCKET_LABELS: [&str; 11] = [
    "5", "10", "15", "20", "30", "45", "60", "90", "120", "180", "300",
];

fn histogram(
    out: &mut String,
    pre: &mut String,
    name: &str,
    outcome: Option<&str>,
    p: &PracticeMetrics,
    h: &AtomicHistogram,
) {
    let snap = h.snapshot();
    // `name_bucket{labels,le="` built once, then copied per bucket.
    pre.clear();
    pre.push_str(name);
    pre.push_str("_bucket{");
    hist_labels(pre, outcome, p);
    pre.push_str(",le=\"");
    for (le, c) in BUCKET_LABELS.iter().zip(snap.cumulative) {
        out.push_str(pre);
        out.push_str(le);
        out.push_str("\"}");
        value_u64(out, c);
    }
    out.push_str(pre);
    out.push_str("+Inf\"}");
    value_u64(out, snap.count);
    out.push_str(name);
    out.push_str("_sum{");
    hist_labels(out, outcome, p);
    out.push('}');
    value_f64(out, snap.sum);
    out.push_str(name);
    out.push_str("_count{");
    hist_labels(out, outcome, p);
    out.push('}');
    value_u64(out, snap.count);
}

/// ` <v>\n`, formatted as the encoder formats `v as f64`.
fn value_u64(out: &mut String, v: u64) {
    const EXACT: u64 = 1 << 53;
    if v >= EXACT {
        value_f64(out, v as f64);
        return;
    }
    if v < 10 {
        const SMALL: [&str; 10] = [
            " 0\n", " 1\n", " 2\n", " 3\n", " 4\n", " 5\n", " 6\n", " 7\n", " 8\n", " 9\n",
        ];
        out.push_str(SMALL[v as usize]);
        return;
    }
    let mut buf = [0u8; 22];
    let mut i = buf.len() - 1;
    buf[i] = b'\n';
    let mut n = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    i -= 1;
    buf[i] = b' ';
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or(" 0\n"));
}

/// ` <v>\n` with the encoder's float formatting (`Display`).
fn value_f64(out: &mut String, v: f64) {
    if v == 0.0 && v.is_sign_positive() {
        out.push_str(" 0\n");
        return;
    }
    out.push(' ');
    let _ = write!(out, "{v}");
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BUCKETS;

    #[test]
    fn integers_are_formatted_as_the_encoder_formats_their_f64() {
        for v in [
            0u64,
            1,
            9,
            10,
            12345,
            (1 << 53) - 1,
            1 << 53,
            (1 << 53) + 1,
            (1 << 60) + 12345,
            u64::MAX,
        ] {
            let mut s = String::new();
            value_u64(&mut s, v);
            assert_eq!(s, format!(" {}\n", v as f64), "{v}");
        }
    }

    #[test]
    fn floats_are_formatted_with_display() {
        for v in [0.0, -0.0, 1.5, 1e21, f64::NAN, f64::INFINITY, 0.1 + 0.2] {
            let mut s = String::new();
            value_f64(&mut s, v);
            assert_eq!(s, format!(" {v}\n"));
        }
    }

    #[test]
    fn bucket_labels_match_the_buckets() {
        assert_eq!(BUCKETS.len(), BUCKET_LABELS.len());
        for (b, l) in BUCKETS.iter().zip(BUCKET_LABELS) {
            assert_eq!(b.to_string(), l);
        }
    }

    #[test]
    fn escaping_matches_the_text_format() {
        assert_eq!(escape("a\"b\\c\nd", true), "a\\\"b\\\\c\\nd");
        assert_eq!(escape("a\"b\\c\nd", false), "a\"b\\\\c\\nd");
        assert!(matches!(escape("plain", true), Cow::Borrowed(_)));
    }
}
