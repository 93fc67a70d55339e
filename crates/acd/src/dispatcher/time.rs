//! Internal time: milliseconds since the Unix epoch, and conversions.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Milliseconds since the Unix epoch (internal time).
pub(super) type Ms = i64;

pub(super) fn ms_of(t: DateTime<Utc>) -> Ms {
    t.timestamp_millis()
}

pub(super) fn time_of(ms: Ms) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

pub(super) fn dur(ms: Ms) -> Duration {
    Duration::from_millis(ms.max(0) as u64)
}

pub(super) fn dur_ms(d: Duration) -> Ms {
    Ms::try_from(d.as_millis()).unwrap_or(Ms::MAX)
}
