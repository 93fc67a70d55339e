//! Overflow: what happens to a call that waited its practice's maximum
//! wait.

use serde::{Deserialize, Serialize};

use crate::ids::PoolId;

/// How a call leaves the queue when it overflows (the exits a call driver
/// carries out). A pool overflow keeps the call queued and is not one of
/// these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OverflowKind {
    /// The voicemail prompt, then a recorded message.
    Voicemail,
    /// The callback prompt; the request is recorded with the caller's
    /// number.
    Callback,
    /// An apology, then hang up.
    Hangup,
}

impl OverflowKind {
    /// Every kind.
    pub const ALL: [OverflowKind; 3] = [
        OverflowKind::Voicemail,
        OverflowKind::Callback,
        OverflowKind::Hangup,
    ];

    /// Stable name for logs, labels and records (`voicemail`, `callback`,
    /// `hangup`).
    pub fn as_str(self) -> &'static str {
        match self {
            OverflowKind::Voicemail => "voicemail",
            OverflowKind::Callback => "callback",
            OverflowKind::Hangup => "hangup",
        }
    }
}

impl std::fmt::Display for OverflowKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a practice's calls go when they have waited its maximum wait (or
/// when its practice is removed by a reconfiguration).
///
/// Serde form: `"voicemail"`, `"callback"`, `"hangup"`, or
/// `{ pool = "id" }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OverflowTarget {
    /// Stay queued (keeping its place) and also become eligible for this
    /// pool's agents.
    Pool(PoolId),
    /// Leave the queue to the practice's voicemail.
    Voicemail,
    /// Leave the queue to a callback request (the caller is called back).
    Callback,
    /// Leave the queue; the front plays a message and hangs up.
    Hangup,
}

impl OverflowTarget {
    /// How the call leaves the queue, or `None` for a pool (the call stays
    /// queued).
    pub fn exit(&self) -> Option<OverflowKind> {
        match self {
            OverflowTarget::Pool(_) => None,
            OverflowTarget::Voicemail => Some(OverflowKind::Voicemail),
            OverflowTarget::Callback => Some(OverflowKind::Callback),
            OverflowTarget::Hangup => Some(OverflowKind::Hangup),
        }
    }

    /// Stable name for logs, labels and records (`pool`, `voicemail`,
    /// `callback`, `hangup`; the pool's id is not part of it).
    pub fn as_str(&self) -> &'static str {
        match self {
            OverflowTarget::Pool(_) => "pool",
            OverflowTarget::Voicemail => "voicemail",
            OverflowTarget::Callback => "callback",
            OverflowTarget::Hangup => "hangup",
        }
    }
}

impl From<OverflowKind> for OverflowTarget {
    fn from(k: OverflowKind) -> Self {
        match k {
            OverflowKind::Voicemail => OverflowTarget::Voicemail,
            OverflowKind::Callback => OverflowTarget::Callback,
            OverflowKind::Hangup => OverflowTarget::Hangup,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_and_names_agree() {
        for k in OverflowKind::ALL {
            let t = OverflowTarget::from(k);
            assert_eq!(t.exit(), Some(k));
            assert_eq!(t.as_str(), k.as_str());
            assert_eq!(serde_json::to_value(k).ok(), serde_json::to_value(&t).ok());
        }
        let pool = OverflowTarget::Pool("shared".into());
        assert_eq!(pool.exit(), None);
        assert_eq!(pool.as_str(), "pool");
        assert_eq!(
            serde_json::to_string(&pool).ok().as_deref(),
            Some(r#"{"pool":"shared"}"#)
        );
    }
}
