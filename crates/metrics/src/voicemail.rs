//! Voicemail messages e-mailed to the practices: each attempt's result,
//! the messages still pending and the age of the oldest, which the alert
//! rules watch (a message that does not reach its practice is a patient
//! nobody calls back).

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use crate::render::Block;
use crate::MetricsError;

/// `result` label values of `permanence_voicemail_deliveries_total`.
pub const VOICEMAIL_RESULTS: [&str; 3] = ["delivered", "failed", "expired"];

/// The voicemail delivery families.
#[derive(Debug)]
pub struct VoicemailMetrics {
    deliveries_vec: IntCounterVec,
    /// In [`VOICEMAIL_RESULTS`] order.
    deliveries: Vec<IntCounter>,
    pending: IntGauge,
    oldest_age: Gauge,
}

impl VoicemailMetrics {
    pub(crate) fn new(r: &Registry) -> Result<Self, MetricsError> {
        let deliveries_vec = IntCounterVec::new(
            Opts::new(
                "permanence_voicemail_deliveries_total",
                "Voicemail e-mail delivery results: delivered (the mail server accepted the message), failed (one attempt failed; the message is retried with back-off), expired (given up undelivered after mail.expire_hours; the WAV stays on disk).",
            ),
            &["result"],
        )?;
        r.register(Box::new(deliveries_vec.clone()))?;
        let deliveries = VOICEMAIL_RESULTS
            .iter()
            .map(|l| deliveries_vec.get_metric_with_label_values(&[l]))
            .collect::<Result<Vec<_>, _>>()?;
        let pending = IntGauge::with_opts(Opts::new(
            "permanence_voicemail_deliveries_pending",
            "Voicemail messages not yet delivered by e-mail to their practice (being sent or waiting for a retry).",
        ))?;
        r.register(Box::new(pending.clone()))?;
        let oldest_age = Gauge::with_opts(Opts::new(
            "permanence_voicemail_oldest_pending_age_seconds",
            "Age of the oldest voicemail message not yet delivered by e-mail (0 when none), updated at least every 15 s.",
        ))?;
        r.register(Box::new(oldest_age.clone()))?;
        Ok(Self {
            deliveries_vec,
            deliveries,
            pending,
            oldest_age,
        })
    }

    pub(crate) fn blocks(&self) -> Vec<Block> {
        vec![
            Block::Global(Box::new(self.deliveries_vec.clone())),
            Block::Global(Box::new(self.pending.clone())),
            Block::Global(Box::new(self.oldest_age.clone())),
        ]
    }

    /// Counts one result: `delivered`, `failed` or `expired` (anything
    /// else is ignored).
    pub fn delivery(&self, result: &str) {
        if let Some(i) = VOICEMAIL_RESULTS.iter().position(|r| *r == result) {
            if let Some(c) = self.deliveries.get(i) {
                c.inc();
            }
        }
    }

    /// Sets the pending gauge and the oldest one's age in seconds.
    pub fn set_pending(&self, pending: usize, oldest_age_secs: f64) {
        self.pending.set(i64::try_from(pending).unwrap_or(i64::MAX));
        self.oldest_age.set(oldest_age_secs.max(0.0));
    }
}

#[cfg(test)]
mod tests {
    use crate::Metrics;
    use std::time::Duration;

    #[test]
    fn results_pending_and_age_are_exposed() {
        let m = Metrics::new(Duration::from_secs(5)).expect("metrics");
        let text = m.render();
        for r in super::VOICEMAIL_RESULTS {
            let line = format!("permanence_voicemail_deliveries_total{{result=\"{r}\"}} 0");
            assert!(text.contains(&line), "{line} missing");
        }
        m.voicemail().delivery("failed");
        m.voicemail().delivery("failed");
        m.voicemail().delivery("delivered");
        m.voicemail().delivery("bogus");
        m.voicemail().set_pending(2, 125.5);
        let text = m.render();
        assert!(text.contains("permanence_voicemail_deliveries_total{result=\"failed\"} 2"));
        assert!(text.contains("permanence_voicemail_deliveries_total{result=\"delivered\"} 1"));
        assert!(text.contains("permanence_voicemail_deliveries_pending 2"));
        assert!(text.contains("permanence_voicemail_oldest_pending_age_seconds 125.5"));
        assert!(text.contains("# TYPE permanence_voicemail_oldest_pending_age_seconds gauge"));
    }
}
