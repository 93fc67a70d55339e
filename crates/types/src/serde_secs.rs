//! Serde helpers writing a [`Duration`] as whole seconds (`after_secs = 20`),
//! the form configuration files and scenarios use.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Serializes whole seconds (sub-second parts are dropped).
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

/// Deserializes whole seconds.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_secs)
}

/// The same for `Option<Duration>`.
pub mod option {
    use super::*;
    use serde::Serialize;

    /// Serializes whole seconds, or nothing.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        d.map(|d| d.as_secs()).serialize(s)
    }

    /// Deserializes whole seconds, or nothing.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<u64>::deserialize(d).map(|o| o.map(Duration::from_secs))
    }
}
