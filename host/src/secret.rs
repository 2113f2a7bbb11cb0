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
    /// Metadata of this version.
    pub metadata: Metadata,
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
