//! The CSV rendering: one `section,metric,value` line per figure (RFC 4180
//! quoting), easy to load in a spreadsheet.

use std::fmt::Write;

use crate::Report;

/// One field, quoted when it holds a comma, a quote or a line break.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A ratio or duration, `.` decimal, empty when unknown.
fn num(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.4}")).unwrap_or_default()
}

struct Lines(String);

impl Lines {
    fn line(&mut self, section: &str, metric: &str, value: impl ToString) {
        let _ = writeln!(
            self.0,
            "{},{},{}\r",
            field(section),
            field(metric),
            field(&value.to_string())
        );
    }
}

/// `report` as CSV.
pub(crate) fn render(r: &Report) -> String {
    let mut out = Lines(String::from("section,metric,value\r\n"));
    out.line("practice", "id", &r.practice_id);
    out.line("practice", "name", &r.practice_name);
    out.line("period", "code", &r.period);
    out.line("period", "since", &r.since);
    out.line("period", "until", &r.until);
    out.line("period", "timezone", &r.timezone);
    calls(&mut out, r);
    let w = &r.wait;
    out.line("wait", "average_secs", num(w.average_secs));
    out.line("wait", "p90_secs", num(w.p90_secs));
    out.line(
        "wait",
        "service_level_threshold_secs",
        w.service_level_threshold_secs,
    );
    out.line(
        "wait",
        "answered_within_threshold",
        w.answered_within_threshold,
    );
    out.line("wait", "service_level", num(w.service_level));
    others(&mut out, r);
    for (h, b) in r.by_hour.iter().enumerate() {
        out.line("by_hour", &format!("{h:02}h_offered"), b.offered);
        out.line("by_hour", &format!("{h:02}h_answered"), b.answered);
    }
    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    for (d, b) in DAYS.iter().zip(&r.by_weekday) {
        out.line("by_weekday", &format!("{d}_offered"), b.offered);
        out.line("by_weekday", &format!("{d}_answered"), b.answered);
    }
    out.0
}

fn calls(out: &mut Lines, r: &Report) {
    let c = &r.calls;
    out.line("calls", "offered", c.offered);
    out.line("calls", "answered", c.answered);
    out.line("calls", "abandoned", c.abandoned);
    for (phase, n) in &c.abandoned_by_phase {
        out.line("abandoned", phase, n);
    }
    for (target, n) in &c.overflowed {
        out.line("overflowed", target, n);
    }
    out.line("calls", "failed", c.failed);
    out.line("calls", "closed", c.closed);
    out.line("calls", "unanswered", c.unanswered);
    out.line("calls", "rejected", c.rejected);
    out.line("calls", "in_progress", c.in_progress);
    out.line("calls", "pickup_rate", num(c.pickup_rate));
}

fn others(out: &mut Lines, r: &Report) {
    let cb = &r.callbacks;
    out.line("callbacks", "requested", cb.requested);
    out.line("callbacks", "done_within_deadline", cb.done_within_deadline);
    out.line("callbacks", "done_late", cb.done_late);
    out.line("callbacks", "handled", cb.handled);
    out.line("callbacks", "failed", cb.failed);
    out.line("callbacks", "cancelled", cb.cancelled);
    out.line("callbacks", "open", cb.open);
    out.line("voicemail", "calls", r.voicemail.calls);
    out.line("voicemail", "messages", r.voicemail.messages);
    out.line(
        "voicemail",
        "message_secs",
        num(Some(r.voicemail.message_secs)),
    );
    out.line("outbound", "placed", r.outbound.placed);
    out.line("outbound", "answered", r.outbound.answered);
    out.line("outbound", "refused", r.outbound.refused);
    for (origin, n) in &r.outbound.by_origin {
        out.line("outbound_origin", origin, n);
    }
    out.line("minutes", "inbound", num(Some(r.minutes.inbound)));
    out.line("minutes", "outbound", num(Some(r.minutes.outbound)));
    out.line("minutes", "total", num(Some(r.minutes.total)));
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn fields_are_quoted_when_needed() {
        assert_eq!(field("martin"), "martin");
        assert_eq!(
            field("Dr \"Caron\", cardio"),
            "\"Dr \"\"Caron\"\", cardio\""
        );
        assert_eq!(field("a\nb"), "\"a\nb\"");
    }
}
