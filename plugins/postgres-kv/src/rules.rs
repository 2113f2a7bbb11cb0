//! How long secrets keep their versions: a secret's settings
//! (`max_versions`, `cas_required`, `delete_version_after`) over the
//! mount's, combined as Vault (and the file provider) combine them.

use tresor_plugin_sdk::Settings;

/// How many versions a secret keeps when neither it nor the mount says:
/// Vault's default.
pub const DEFAULT_MAX_VERSIONS: u64 = 10;

/// What a write to one secret must follow.
#[derive(Debug, PartialEq, Eq)]
pub struct Rules {
    /// Versions kept (at least 1).
    pub max_versions: u64,
    /// A write must send an expected version.
    pub cas_required: bool,
    /// Milliseconds after which a new version is deleted (0: never).
    pub delete_version_after_ms: u64,
}

impl Rules {
    /// Combines a secret's settings with the mount's: the larger
    /// `max_versions` and the shorter `delete_version_after` of those set,
    /// and `cas_required` when either requires it.
    pub fn new(secret: &Settings, mount: &Settings) -> Rules {
        let max_versions = match secret.max_versions.max(mount.max_versions) {
            0 => DEFAULT_MAX_VERSIONS,
            n => u64::from(n),
        };
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

    /// The newest version a write of version `latest` removes for good,
    /// with all older ones: `None` while it keeps them all.
    pub fn prune_through(&self, latest: u64) -> Option<u64> {
        latest.checked_sub(self.max_versions).filter(|&n| n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::empty_settings;

    fn settings(max_versions: u32, cas_required: bool, delete_version_after_ms: u64) -> Settings {
        Settings {
            max_versions,
            cas_required,
            delete_version_after_ms,
        }
    }

    #[test]
    fn unset_everywhere_keeps_ten_versions_forever() {
        let rules = Rules::new(&empty_settings(), &empty_settings());
        assert_eq!(
            rules,
            Rules {
                max_versions: 10,
                cas_required: false,
                delete_version_after_ms: 0
            }
        );
    }

    #[test]
    fn the_larger_max_and_the_shorter_deletion_win() {
        assert_eq!(
            Rules::new(&settings(1, false, 0), &settings(2, false, 0)).max_versions,
            2
        );
        assert_eq!(Rules::new(&settings(3, false, 0), &empty_settings()).max_versions, 3);
        assert_eq!(Rules::new(&empty_settings(), &settings(4, false, 0)).max_versions, 4);
        let rules = Rules::new(&settings(0, false, 3_600_000), &settings(0, true, 600_000));
        assert_eq!(rules.delete_version_after_ms, 600_000);
        assert!(rules.cas_required);
        assert_eq!(
            Rules::new(&settings(0, false, 60_000), &empty_settings()).delete_version_after_ms,
            60_000
        );
    }

    #[test]
    fn pruning_keeps_the_newest_max_versions() {
        let rules = Rules::new(&settings(3, false, 0), &empty_settings());
        assert_eq!(rules.prune_through(0), None);
        assert_eq!(rules.prune_through(3), None);
        assert_eq!(rules.prune_through(4), Some(1));
        assert_eq!(rules.prune_through(10), Some(7));
    }
}
