//! How long secrets keep their versions: Vault KV v2's `max_versions`,
//! `cas_required` and `delete_version_after`, for one secret
//! (`settings.json` in its directory) and for the mount (`settings.json` in
//! the data directory), and the rules they make together.

use std::fs;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tresor_plugin_sdk::Settings;

/// The name of a settings file, in a secret's directory or the data
/// directory.
pub(crate) const SETTINGS_FILE: &str = "settings.json";

/// How many versions a secret keeps when neither it nor the mount says:
/// Vault's default.
pub(crate) const DEFAULT_MAX_VERSIONS: u64 = 10;

/// The JSON content of a settings file.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsFile {
    #[serde(default)]
    max_versions: u32,
    #[serde(default)]
    cas_required: bool,
    #[serde(default)]
    delete_version_after_ms: u64,
}

/// The settings in `dir`'s settings file; the empty settings when there is
/// none. `InvalidData` when the file is damaged.
pub(crate) fn read(dir: &Path) -> io::Result<Settings> {
    let bytes = match fs::read(dir.join(SETTINGS_FILE)) {
        Ok(bytes) => bytes,
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => return Ok(empty()),
        Err(e) => return Err(e),
    };
    let file: SettingsFile = serde_json::from_slice(&bytes)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{SETTINGS_FILE} is damaged: {e}")))?;
    Ok(Settings {
        max_versions: file.max_versions,
        cas_required: file.cas_required,
        delete_version_after_ms: file.delete_version_after_ms,
    })
}

/// The bytes of a settings file holding `settings`.
pub(crate) fn encode(settings: &Settings) -> Vec<u8> {
    let file = SettingsFile {
        max_versions: settings.max_versions,
        cas_required: settings.cas_required,
        delete_version_after_ms: settings.delete_version_after_ms,
    };
    // A struct of numbers and a bool always serializes.
    serde_json::to_vec(&file).unwrap_or_default()
}

/// Does `dir` hold a settings file?
pub(crate) fn present(dir: &Path) -> bool {
    fs::symlink_metadata(dir.join(SETTINGS_FILE)).is_ok()
}

/// Settings that set nothing.
pub(crate) fn empty() -> Settings {
    Settings {
        max_versions: 0,
        cas_required: false,
        delete_version_after_ms: 0,
    }
}

/// What a write to one secret must follow: its own settings over the
/// mount's, as Vault combines them.
pub(crate) struct Rules {
    /// Versions kept (at least 1).
    pub max_versions: u64,
    /// A write must send an expected version.
    pub cas_required: bool,
    /// Milliseconds after which a new version is deleted (0: never).
    pub delete_version_after_ms: u64,
}

impl Rules {
    /// Combines a secret's settings with the mount's. `configured_max` is
    /// the mount configuration's `max_versions` (0: unset), used when the
    /// mount's own settings leave it unset.
    pub(crate) fn new(secret: &Settings, mount: &Settings, configured_max: u64) -> Rules {
        let mount_max = match mount.max_versions {
            0 => configured_max,
            n => u64::from(n),
        };
        // Vault keeps the larger of the two.
        let max_versions = match u64::from(secret.max_versions).max(mount_max) {
            0 => DEFAULT_MAX_VERSIONS,
            n => n,
        };
        // ... and deletes after the shorter of the two that are set.
        let delete_version_after_ms = match (secret.delete_version_after_ms, mount.delete_version_after_ms) {
            (0, m) => m,
            (s, 0) => s,
            (s, m) => s.min(m),
        };
        Rules {
            max_versions,
            cas_required: secret.cas_required || mount.cas_required,
            delete_version_after_ms,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn settings(max_versions: u32, cas_required: bool, delete_version_after_ms: u64) -> Settings {
        Settings {
            max_versions,
            cas_required,
            delete_version_after_ms,
        }
    }

    fn fields(s: &Settings) -> (u32, bool, u64) {
        (s.max_versions, s.cas_required, s.delete_version_after_ms)
    }

    #[test]
    fn unset_everywhere_keeps_ten_versions_forever() {
        let rules = Rules::new(&empty(), &empty(), 0);
        assert_eq!(rules.max_versions, 10);
        assert!(!rules.cas_required);
        assert_eq!(rules.delete_version_after_ms, 0);
    }

    #[test]
    fn the_larger_max_and_the_shorter_deletion_win() {
        // As OpenBao 2.7 answers: a secret's max_versions of 1 under a mount's 2 keeps 2.
        assert_eq!(
            Rules::new(&settings(1, false, 0), &settings(2, false, 0), 0).max_versions,
            2
        );
        assert_eq!(Rules::new(&settings(3, false, 0), &empty(), 0).max_versions, 3);
        // The mount's own setting overrides the configured one.
        assert_eq!(Rules::new(&empty(), &settings(4, false, 0), 7).max_versions, 4);
        assert_eq!(Rules::new(&empty(), &empty(), 7).max_versions, 7);
        let rules = Rules::new(&settings(0, false, 3_600_000), &settings(0, true, 600_000), 0);
        assert_eq!(rules.delete_version_after_ms, 600_000);
        assert!(rules.cas_required);
        assert_eq!(
            Rules::new(&settings(0, false, 60_000), &settings(0, false, 600_000), 0).delete_version_after_ms,
            60_000
        );
    }

    #[test]
    fn settings_files_round_trip_and_damage_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(fields(&read(dir.path()).unwrap()), fields(&empty()));
        let wanted = settings(3, true, 5000);
        fs::write(dir.path().join(SETTINGS_FILE), encode(&wanted)).unwrap();
        assert_eq!(fields(&read(dir.path()).unwrap()), fields(&wanted));
        fs::write(dir.path().join(SETTINGS_FILE), b"{\"max_versions\": \"x\"}").unwrap();
        assert_eq!(read(dir.path()).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
