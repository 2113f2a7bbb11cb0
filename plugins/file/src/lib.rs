//! Tresor's default provider: versioned secrets kept in the directory the
//! host grants the mount, which the plugin sees as `/data`.
//!
//! The plugin never sees the master key. Every value is sealed by the host
//! (`host::seal`, bound to the context `"<path>\0<version>"`) before it is
//! written, and unsealed by the host when read: the directory never holds a
//! plaintext value. See [`store`] for the layout and how it stays
//! consistent with several instances writing at once and a crash at any
//! moment.
//!
//! Mount configuration:
//!
//! | key            | meaning                                                  |
//! |----------------|----------------------------------------------------------|
//! | `max_versions` | versions each secret keeps unless its own or the mount's settings say otherwise (default 10, as Vault) |
//!
//! Any other key is refused when the mount starts, naming it.
//!
//! Each secret's settings (`max_versions`, `cas_required`,
//! `delete_version_after`) and the mount's are kept in the data directory
//! and changed through `set-settings` (Vault's `secret/metadata/<path>` and
//! `secret/config`).

mod layout;
mod settings;
pub mod store;

use tresor_plugin_sdk::{
    export_provider, host, Capabilities, Config, Error, Metadata, Provider, Resealed, Secret, Settings, VersionInfo,
};

use crate::store::{Sealer, Store};

/// Where the host mounts the mount's data directory inside the sandbox.
const DATA_DIR: &str = "/data";
/// The mount configuration keys this plugin reads (see the crate docs).
const CONFIG_KEYS: &[&str] = &["max_versions"];

/// Seals values with the host's key for this mount.
struct HostSealer;

impl Sealer for HostSealer {
    fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, Error> {
        host::seal(plaintext, context)
    }

    fn unseal(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, Error> {
        host::unseal(sealed, context)
    }

    fn reseal(&self, sealed: &[u8], context: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        host::reseal(sealed, context)
    }
}

/// The file provider: a [`Store`] in `/data`, sealed by the host.
struct FileProvider {
    store: Store<HostSealer>,
}

impl Provider for FileProvider {
    const NAME: &'static str = "file";

    fn configure(config: Config) -> Result<Self, Error> {
        config.check_keys(CONFIG_KEYS)?;
        let max_versions =
            config.parse::<u64>("max_versions", "a whole number of versions (0: Vault's default of 10)")?;
        match std::fs::metadata(DATA_DIR) {
            Ok(meta) if meta.is_dir() => {}
            _ => {
                return Err(Error::invalid_input(format!(
                    "the file provider needs a data directory at {DATA_DIR}: grant the mount a directory"
                )))
            }
        }
        Ok(FileProvider {
            store: Store::new(DATA_DIR, HostSealer, max_versions.unwrap_or(0)),
        })
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
    }

    fn get(&mut self, path: &str, version: Option<&str>) -> Result<Secret, Error> {
        self.store.get(path, version)
    }

    fn put(
        &mut self,
        path: &str,
        value: Vec<u8>,
        metadata: Metadata,
        expected_version: Option<&str>,
    ) -> Result<String, Error> {
        self.store.put(path, &value, metadata, expected_version)
    }

    fn delete(&mut self, path: &str) -> Result<(), Error> {
        self.store.delete(path)
    }

    fn delete_versions(&mut self, path: &str, versions: &[String], destroy: bool) -> Result<(), Error> {
        self.store.delete_versions(path, versions, destroy)
    }

    fn undelete_versions(&mut self, path: &str, versions: &[String]) -> Result<(), Error> {
        self.store.undelete_versions(path, versions)
    }

    fn list(&mut self, prefix: &str) -> Result<Vec<String>, Error> {
        self.store.list(prefix)
    }

    fn versions(&mut self, path: &str) -> Result<Vec<VersionInfo>, Error> {
        self.store.versions(path)
    }

    fn settings(&mut self, path: &str) -> Result<Settings, Error> {
        self.store.settings(path)
    }

    fn set_settings(&mut self, path: &str, settings: Settings) -> Result<(), Error> {
        self.store.set_settings(path, &settings)
    }

    fn reseal(&mut self, path: &str) -> Result<Resealed, Error> {
        let (versions, moved) = self.store.reseal(path)?;
        Ok(Resealed { versions, moved })
    }
}

export_provider!(FileProvider);

#[cfg(test)]
mod tests;
