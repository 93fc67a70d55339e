//! Dated announcements: a message a practice schedules for a date range
//! (holidays, an epidemic notice), and what happens to the call after it.

use serde::{Deserialize, Serialize};

/// Where a practice's dated announcement plays, and what the call does
/// next.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnnouncementMode {
    /// After the greeting; then the call goes on (triage, queue) as on any
    /// other day. An epidemic notice, a change of address.
    #[default]
    AfterGreeting,
    /// After the greeting, instead of the queue: the practice is closed
    /// for the period (holidays). The closed prompt follows (it names the
    /// 15), then the practice's closed-hours exit (voicemail or hang-up);
    /// the call counts as a closed-hours call, never offered.
    InsteadOfQueue,
}

impl AnnouncementMode {
    /// Stable name, also the configuration's (`after_greeting`,
    /// `instead_of_queue`).
    pub fn as_str(self) -> &'static str {
        match self {
            AnnouncementMode::AfterGreeting => "after_greeting",
            AnnouncementMode::InsteadOfQueue => "instead_of_queue",
        }
    }
}

impl std::fmt::Display for AnnouncementMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_agree_with_serde() {
        for m in [
            AnnouncementMode::AfterGreeting,
            AnnouncementMode::InsteadOfQueue,
        ] {
            let json = serde_json::to_string(&m).ok();
            assert_eq!(json, Some(format!("\"{}\"", m.as_str())));
        }
        assert_eq!(AnnouncementMode::default(), AnnouncementMode::AfterGreeting);
    }
}
