//! The typed fields of an audit record: what was asked for, what was
//! decided, and through which front door. Each is written to the log and
//! the span by its stable name (`"read"`, `"allow"`, `"http"`), so the log's
//! format does not depend on Rust names.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::policy::Action;

/// Which front door a request came through (recorded in policy context and audit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FrontDoor {
    /// The HTTP API.
    Http,
    /// The `tresor` command line, in-process.
    Cli,
    /// A platform embedding the library.
    Embed,
    /// The host itself: resolving `ref:` values in mount configuration,
    /// revoking expired leases.
    Host,
}

impl FrontDoor {
    /// Stable name: "http", "cli", "embed", "host".
    pub fn as_str(self) -> &'static str {
        match self {
            FrontDoor::Http => "http",
            FrontDoor::Cli => "cli",
            FrontDoor::Embed => "embed",
            FrontDoor::Host => "host",
        }
    }
}

impl fmt::Display for FrontDoor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an audited operation asked for: one of Cedar's actions, or the
/// authentication that came before any of them (recorded when it is refused).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditAction {
    /// An action Cedar decided.
    Policy(Action),
    /// Presenting a credential; only refusals are recorded.
    Authenticate,
}

impl AuditAction {
    /// Stable name: a Cedar action id (`"read"`, `"issue"`, ...) or `"authenticate"`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Policy(action) => action.as_str(),
            AuditAction::Authenticate => "authenticate",
        }
    }

    /// The action named `name`, as [`as_str`](Self::as_str) writes it.
    pub fn from_name(name: &str) -> Option<AuditAction> {
        if name == "authenticate" {
            return Some(AuditAction::Authenticate);
        }
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == name)
            .map(AuditAction::Policy)
    }
}

impl From<Action> for AuditAction {
    fn from(action: Action) -> Self {
        AuditAction::Policy(action)
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for AuditAction {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AuditAction {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        AuditAction::from_name(&name).ok_or_else(|| serde::de::Error::custom(format!("unknown audit action `{name}`")))
    }
}

/// The authorization decision an audit record carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Allowed by a policy (or by one of the host's built-in rules).
    Allow,
    /// Denied: by a forbid, or because nothing permitted it (the default).
    #[default]
    Deny,
}

impl Verdict {
    /// `Allow` when `allowed`.
    pub fn from_allowed(allowed: bool) -> Verdict {
        if allowed {
            Verdict::Allow
        } else {
            Verdict::Deny
        }
    }

    /// Stable name: "allow" or "deny".
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_written_by_their_stable_names_and_read_back() {
        let all: Vec<AuditAction> = Action::ALL
            .into_iter()
            .map(AuditAction::from)
            .chain([AuditAction::Authenticate])
            .collect();
        for action in all {
            let json = serde_json::to_string(&action).unwrap();
            assert_eq!(json, format!("\"{}\"", action.as_str()));
            assert_eq!(serde_json::from_str::<AuditAction>(&json).unwrap(), action);
        }
        assert_eq!(
            serde_json::to_string(&AuditAction::Authenticate).unwrap(),
            "\"authenticate\""
        );
        assert_eq!(serde_json::to_string(&Verdict::Allow).unwrap(), "\"allow\"");
        assert_eq!(serde_json::to_string(&FrontDoor::Embed).unwrap(), "\"embed\"");
        let err = serde_json::from_str::<AuditAction>("\"reed\"").unwrap_err();
        assert!(err.to_string().contains("unknown audit action `reed`"), "{err}");
    }
}
