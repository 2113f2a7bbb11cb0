//! The errors a caller of Tresor can get, as types.
//!
//! Every front door (embedding API, CLI, HTTP) maps these to its own shape:
//! the HTTP API to a status code, the CLI to a message and exit code. No
//! variant ever carries a secret value.

use std::fmt;

/// Why a plugin call failed inside the sandbox (not a plugin-reported error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PluginFailure {
    /// The call ran past the mount's deadline and was interrupted.
    Timeout,
    /// The plugin tried to grow its memory past the mount's cap.
    MemoryLimit,
    /// The plugin trapped (panic, unreachable, out-of-bounds access, ...).
    Trap,
    /// The plugin answered something the contract forbids (an empty version,
    /// a listed path outside the requested prefix, ...).
    Malformed,
    /// The plugin could not be instantiated or configured.
    Startup,
    /// The plugin answered more than the host accepts (metadata pairs, LIST
    /// entries); the detail names the limit.
    Oversized,
}

impl PluginFailure {
    /// A short stable name used in audit records ("plugin-timeout", ...).
    pub fn as_str(self) -> &'static str {
        match self {
            PluginFailure::Timeout => "plugin-timeout",
            PluginFailure::MemoryLimit => "plugin-memory-limit",
            PluginFailure::Trap => "plugin-trap",
            PluginFailure::Malformed => "plugin-malformed-answer",
            PluginFailure::Startup => "plugin-startup",
            PluginFailure::Oversized => "plugin-answer-too-large",
        }
    }
}

impl fmt::Display for PluginFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An access that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Cedar policy denied the access. `policies` names the policies that
    /// decided it (empty when nothing permitted it: default deny).
    #[error("permission denied: {principal} may not {action} {resource}{}", deny_hint(policies))]
    Denied {
        /// Who asked.
        principal: String,
        /// What they asked to do.
        action: String,
        /// What they asked to do it to (`mount/path`).
        resource: String,
        /// Ids of the determining policies.
        policies: Vec<String>,
    },
    /// No mount serves this path.
    #[error("no mount serves `{path}`: mounted are {mounts:?}; check the path's first segment")]
    UnknownMount {
        /// The path asked for.
        path: String,
        /// The mounts that exist.
        mounts: Vec<String>,
    },
    /// The secret (or version) does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The request is malformed; the message says what to fix.
    #[error("invalid request: {0}")]
    InvalidInput(String),
    /// A check-and-set write lost against a newer version.
    #[error("check-and-set conflict: {0}")]
    Conflict(String),
    /// The backend behind the plugin is unavailable; retry later.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// The backend refused the plugin's own credentials.
    #[error("the backend refused the mount's credentials: {0}; check the mount's configuration")]
    UpstreamDenied(String),
    /// The mount's plugin does not support this operation.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The plugin failed inside the sandbox; the instance was discarded and
    /// the next request gets a fresh one.
    #[error("plugin of mount `{mount}` failed ({failure}): {detail}")]
    Plugin {
        /// The mount whose plugin failed.
        mount: String,
        /// How it failed.
        failure: PluginFailure,
        /// Details for the operator (never a secret value).
        detail: String,
    },
    /// The audit log could not be written, so the access was refused.
    #[error("audit log unavailable, access refused: {0}")]
    AuditUnavailable(String),
    /// The host state store (leases, ...) could not be read or written; the
    /// operation did not happen.
    #[error("state store unavailable: {0}")]
    StateUnavailable(String),
    /// A configuration reload was refused; the previous configuration keeps
    /// serving unchanged.
    #[error("configuration reload refused{}: {reason}; the previous configuration keeps serving", mount.as_ref().map(|m| format!(" for mount `{m}`")).unwrap_or_default())]
    ReloadRefused {
        /// The mount that could not be started as configured, if one.
        mount: Option<String>,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A rotation ended without a new value (its check was refused, or the
    /// secret changed meanwhile); the current value is unchanged.
    #[error("the rotation did not happen: {0}; the current value is unchanged")]
    RotationRefused(String),
    /// The version asked for is past its expiry (`expires_at`, see
    /// [`crate::expiry`]); no policy allowing the read lets expired reads.
    #[error("secret `{path}` version {version} expired at {at}: write a new value (or rotate it with `tresor rotate`), or read it under a permit annotated @allow_expired")]
    Expired {
        /// `mount/path`.
        path: String,
        /// The expired version.
        version: String,
        /// When it expired (RFC 3339).
        at: String,
    },
    /// An internal error in a plugin or the host.
    #[error("internal error: {0}")]
    Internal(String),
}

fn deny_hint(policies: &[String]) -> String {
    if policies.is_empty() {
        " (no policy permits it; default deny)".to_string()
    } else {
        format!(" (decided by {})", policies.join(", "))
    }
}

impl Error {
    /// A short stable name for audit records and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Denied { .. } => "denied",
            Error::UnknownMount { .. } => "unknown-mount",
            Error::NotFound(_) => "not-found",
            Error::InvalidInput(_) => "invalid-input",
            Error::Conflict(_) => "conflict",
            Error::Unavailable(_) => "unavailable",
            Error::UpstreamDenied(_) => "upstream-denied",
            Error::Unsupported(_) => "unsupported",
            Error::Plugin { failure, .. } => failure.as_str(),
            Error::AuditUnavailable(_) => "audit-unavailable",
            Error::StateUnavailable(_) => "state-unavailable",
            Error::ReloadRefused { .. } => "reload-refused",
            Error::RotationRefused(_) => "rotation-refused",
            Error::Expired { .. } => "expired",
            Error::Internal(_) => "internal",
        }
    }
}

/// A configuration or startup problem: the host cannot start as configured.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The configuration file is unreadable or malformed.
    #[error("configuration: {0}")]
    Config(String),
    /// A plugin file is missing, does not match its pinned sha256, or does not compile.
    #[error("plugin for mount `{mount}`: {detail}")]
    Plugin {
        /// The mount.
        mount: String,
        /// What is wrong and how to fix it.
        detail: String,
    },
    /// The master key is unusable.
    #[error("master key: {0}")]
    Key(String),
    /// The policy set could not be loaded.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    /// The audit log could not be opened.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    /// A filesystem problem with the state directory.
    #[error("{what} `{path}`: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path involved.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}
