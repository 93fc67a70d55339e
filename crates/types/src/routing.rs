//! Routing: how agents are chosen for a call, and how an offer can fail.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::PoolId;

/// How the agent is chosen among the available eligible agents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// `longest-idle`: the agent idle for the longest time (since the end of
    /// their last call or wrap-up, login, unpause, shift start or
    /// reconnection).
    #[default]
    LongestIdle,
    /// `most-skilled`: the agent with the highest level in the call's
    /// ranking skill (the call's first required skill, else the practice's
    /// specialty); ties go to the longest-idle agent.
    MostSkilled,
    /// `round-robin`: the agent offered a call least recently (a global
    /// rotation).
    RoundRobin,
}

impl Strategy {
    /// Stable name (`longest-idle`, `most-skilled`, `round-robin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::LongestIdle => "longest-idle",
            Strategy::MostSkilled => "most-skilled",
            Strategy::RoundRobin => "round-robin",
        }
    }
}

/// A conjunction of optional criteria selecting agents. All criteria left
/// out match everyone: an empty selector is "any agent".
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Selector {
    /// Only the practice's dedicated agents.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dedicated: bool,
    /// Only members of this pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolId>,
    /// Only agents having this skill ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill: Option<String>,
    /// ... at this level or above (0 or 1: any level).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min_level: u8,
    /// Only agents speaking this language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

fn is_zero(v: &u8) -> bool {
    *v == 0
}

impl Selector {
    /// Whether the selector sets at least one criterion.
    pub fn has_criterion(&self) -> bool {
        self.dedicated || self.pool.is_some() || self.skill.is_some() || self.language.is_some()
    }
}

/// A routing step: from `after` of waiting on, the call is also eligible
/// for the agents matching `select` (steps are cumulative, so a caller
/// never loses their place when the search widens).
///
/// Serde form: `{ after_secs = 20, pool = "shared", skill = "kine",
/// min_level = 3 }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RoutingStep {
    /// Waiting time after which the step applies.
    #[serde(default, rename = "after_secs", with = "crate::serde_secs")]
    pub after: Duration,
    /// Which agents the step adds.
    #[serde(flatten)]
    pub select: Selector,
}

impl RoutingStep {
    /// A step adding the practice's dedicated agents after `after`.
    pub fn dedicated(after: Duration) -> Self {
        Self {
            after,
            select: Selector {
                dedicated: true,
                ..Selector::default()
            },
        }
    }
}

/// Why an offer to a telesecretary failed at once (reported by the SIP
/// side to the call core and the dispatcher).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OfferFailure {
    /// 486 Busy Here / 600 Busy Everywhere.
    Busy,
    /// 603 Decline and other final refusals.
    Rejected,
    /// 480, 408, transport failure, no registered contact.
    Unreachable,
}

impl OfferFailure {
    /// Stable name (`busy`, `rejected`, `unreachable`).
    pub fn as_str(self) -> &'static str {
        match self {
            OfferFailure::Busy => "busy",
            OfferFailure::Rejected => "rejected",
            OfferFailure::Unreachable => "unreachable",
        }
    }

    /// The failure a final SIP status code means (non-2xx).
    pub fn from_status(code: u16) -> Self {
        match code {
            486 | 600 => OfferFailure::Busy,
            403 | 488 | 603 | 606 => OfferFailure::Rejected,
            _ => OfferFailure::Unreachable,
        }
    }

    /// Which of two failures of forks of one offer tells the most: a busy
    /// agent beats a refusal, which beats silence.
    pub fn most_telling(self, other: Self) -> Self {
        let rank = |f: Self| match f {
            OfferFailure::Busy => 3,
            OfferFailure::Rejected => 2,
            OfferFailure::Unreachable => 1,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_serde_form() {
        let s: RoutingStep =
            toml::from_str("after_secs = 20\npool = \"shared\"\nskill = \"kine\"\nmin_level = 3")
                .expect("step");
        assert_eq!(s.after, Duration::from_secs(20));
        assert_eq!(s.select.pool.as_ref().map(|p| p.as_str()), Some("shared"));
        assert_eq!(s.select.min_level, 3);
        let back = toml::to_string(&s).expect("ser");
        assert!(back.contains("after_secs = 20"), "{back}");
    }

    #[test]
    fn failures_from_status() {
        assert_eq!(OfferFailure::from_status(486), OfferFailure::Busy);
        assert_eq!(OfferFailure::from_status(603), OfferFailure::Rejected);
        assert_eq!(OfferFailure::from_status(408), OfferFailure::Unreachable);
        assert_eq!(
            OfferFailure::Unreachable.most_telling(OfferFailure::Busy),
            OfferFailure::Busy
        );
        assert_eq!(
            OfferFailure::Rejected.most_telling(OfferFailure::Unreachable),
            OfferFailure::Rejected
        );
    }
}
