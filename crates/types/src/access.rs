//! Who may do what on the admin API and the console.

/// What a user of the admin API may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads queues, agents and calls.
    Viewer,
    /// Also pauses, unpauses, logs agents in and out, handles callbacks.
    Supervisor,
    /// Also reloads, drains and reads the audit log.
    Admin,
}

impl Role {
    /// The name written in the configuration and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }

    /// Parses a role name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(Role::Viewer),
            "supervisor" => Some(Role::Supervisor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}
