//! The per-practice value cells: plain atomics, read in place by the
//! exposition (no allocation, no pointer chase per series).
//!
//! The prometheus crate's children are each a separate allocation behind
//! an `Arc`, and its histograms snapshot through a mutex into a freshly
//! allocated message: at 5,000 practices (~460,000 series) cache misses
//! and allocations made a scrape several times slower than writing the
//! text itself.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::BUCKETS;

/// A monotonic counter.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`, saturating at `u64::MAX` (a counter that wrapped would
    /// look like a reset to Prometheus). A compare-and-swap loop: still
    /// lock-free.
    pub fn add(&self, n: u64) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_add(n))
            });
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// An integer gauge.
#[derive(Debug, Default)]
pub(crate) struct IntGauge(AtomicI64);

impl IntGauge {
    /// A gauge starting at `v` (not 0).
    pub const fn new(v: i64) -> Self {
        Self(AtomicI64::new(v))
    }

    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A float gauge (`f64` bits; starts at 0.0).
#[derive(Debug, Default)]
pub(crate) struct FloatGauge(AtomicU64);

impl FloatGauge {
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }

    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// Number of counting slots: one per bucket, plus one above the last.
const SLOTS: usize = BUCKETS.len() + 1;

/// A histogram with the fixed [`BUCKETS`], updated with relaxed atomics.
///
/// Each observation increments exactly one non-cumulative slot, so a
/// snapshot's cumulative counts and count (their total) are always
/// consistent with each other; the sum may lag by the observations in
/// flight.
#[derive(Debug, Default)]
pub(crate) struct AtomicHistogram {
    slots: [AtomicU64; SLOTS],
    /// `f64` bits.
    sum: AtomicU64,
}

/// A consistent read of an [`AtomicHistogram`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct HistogramSnapshot {
    /// Cumulative count of each bucket of [`BUCKETS`].
    pub cumulative: [u64; BUCKETS.len()],
    /// Total count (the `+Inf` bucket).
    pub count: u64,
    /// Sum of the observations.
    pub sum: f64,
}

impl AtomicHistogram {
    /// Records one observation (seconds). NaN is ignored.
    pub fn observe(&self, v: f64) {
        if v.is_nan() {
            return;
        }
        let slot = BUCKETS.iter().position(|b| v <= *b).unwrap_or(SLOTS - 1);
        if let Some(s) = self.slots.get(slot) {
            s.fetch_add(1, Ordering::Relaxed);
        }
        let mut cur = self.sum.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(cur) + v).to_bits();
            match self
                .sum
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Reads the counts.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = [0u64; BUCKETS.len()];
        let mut total = 0u64;
        for (i, s) in self.slots.iter().enumerate() {
            total = total.saturating_add(s.load(Ordering::Relaxed));
            if let Some(c) = cumulative.get_mut(i) {
                *c = total;
            }
        }
        HistogramSnapshot {
            cumulative,
            count: total,
            sum: f64::from_bits(self.sum.load(Ordering::Relaxed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_add_saturates() {
        let c = Counter::default();
        c.add(5);
        c.inc();
        assert_eq!(c.get(), 6);
        c.add(u64::MAX);
        c.add(1);
        assert_eq!(c.get(), u64::MAX);
    }

    #[test]
    fn observations_land_in_the_first_bucket_at_or_above() {
        let h = AtomicHistogram::default();
        for v in [0.0, 5.0, 5.001, 20.0, 299.9, 300.0, 300.1, 1e9] {
            h.observe(v);
        }
        h.observe(f64::NAN);
        let s = h.snapshot();
        // le: 5 10 15 20 30 45 60 90 120 180 300
        assert_eq!(s.cumulative, [2, 3, 3, 4, 4, 4, 4, 4, 4, 4, 6]);
        assert_eq!(s.count, 8);
        assert!((s.sum - (0.0 + 5.0 + 5.001 + 20.0 + 299.9 + 300.0 + 300.1 + 1e9)).abs() < 1e-3);
    }
}
