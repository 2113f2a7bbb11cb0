//! Secret values and their descriptions, as the host hands them out.

use std::collections::BTreeMap;
use std::fmt;

use zeroize::Zeroizing;

/// Secret bytes. Zeroized when dropped; `Debug` never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Wrap bytes (they are zeroized when the value is dropped).
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(Zeroizing::new(bytes))
    }

    /// The secret bytes. Avoid copying them into buffers that are not zeroized.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The value as UTF-8 text, if it is.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(v: Vec<u8>) -> Self {
        SecretBytes::new(v)
    }
}

impl From<&str> for SecretBytes {
    fn from(v: &str) -> Self {
        SecretBytes::new(v.as_bytes().to_vec())
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<{} bytes redacted>)", self.0.len())
    }
}

/// Metadata pairs of a secret version. Not secret: policies and audit see them.
pub type Metadata = BTreeMap<String, String>;

/// One version of a secret, with its value.
#[derive(Clone, Debug)]
pub struct Secret {
    /// The value.
    pub value: SecretBytes,
    /// The provider's version identifier.
    pub version: String,
    /// Creation time, milliseconds since the Unix epoch (0 when unknown).
    pub created_ms: u64,
    /// Metadata of this version.
    pub metadata: Metadata,
    /// When its `delete_version_after` setting deletes this version,
    /// milliseconds since the Unix epoch (0: never).
    pub deletion_ms: u64,
    /// The mount that served it (a fallback chain's answer names the
    /// member that had it).
    pub served_by: String,
}

impl Secret {
    /// Has this version's `delete_version_after` time passed?
    pub fn expired(&self) -> bool {
        self.deletion_ms != 0 && crate::secret::now_ms() >= self.deletion_ms
    }
}

/// The wall clock in milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One version of a secret, without its value.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct VersionInfo {
    /// The provider's version identifier.
    pub version: String,
    /// Creation time, milliseconds since the Unix epoch (0 when unknown).
    pub created_ms: u64,
    /// Soft-deleted (restorable).
    pub deleted: bool,
    /// Destroyed for good.
    pub destroyed: bool,
    /// When it was soft-deleted, or when its `delete_version_after`
    /// setting deletes it, in milliseconds since the Unix epoch (0: neither).
    pub deletion_ms: u64,
    /// Metadata of this version.
    pub metadata: Metadata,
}

/// How a secret keeps its versions (Vault KV v2's metadata settings); for
/// a whole mount, the defaults of its secrets. Zero and `false` mean "not
/// set here".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SecretSettings {
    /// Keep at most this many versions (the larger of the secret's and the
    /// mount's wins; 10 when neither is set).
    pub max_versions: u32,
    /// Writes must send the version they expect (check-and-set).
    pub cas_required: bool,
    /// Soft-delete each new version this many milliseconds after it was
    /// written (the shorter of the secret's and the mount's wins).
    pub delete_version_after_ms: u64,
}

/// What a mount's provider supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Capabilities {
    /// Accepts writes.
    pub writable: bool,
    /// Keeps versions.
    pub versioned: bool,
    /// Honours check-and-set.
    pub check_and_set: bool,
    /// Deletes secrets.
    pub deletable: bool,
    /// Lists secrets.
    pub listable: bool,
    /// Soft-deletes and restores versions.
    pub soft_delete: bool,
}
