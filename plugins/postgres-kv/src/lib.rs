//! The `postgres-kv` provider: keep a mount's versioned secrets in
//! PostgreSQL tables, so several hosts share them and the database's
//! backups and replication cover them, without the database ever holding
//! a plaintext value.
//!
//! Every value is sealed by the host (`host::seal`, bound to the context
//! `"<path>\0<version>"`, as the file provider does) before it is sent, and
//! unsealed by the host after it is read: the plugin never sees the key,
//! and a dump of the database shows ciphertext only. Metadata and settings
//! are not secret and are stored as they are. The semantics are the file
//! provider's: versions from 1 per secret, check-and-set, soft delete,
//! destroy and undelete, listing by prefix, and the `max_versions`,
//! `cas_required` and `delete_version_after` settings per secret and for
//! the mount (see [`store`] for how writes stay exact with concurrent
//! writers, and [`schema`] for the tables).
//!
//! ```toml
//! [[mount]]
//! path = "kv"
//! plugin_path = "tresor_plugin_postgres_kv.wasm"
//! sha256 = "…"
//! config = { connection_url = "postgresql://tresor@127.0.0.1:5432/secrets?sslmode=disable",
//!            password = "ref:secret/postgres/tresor" }
//! grants = { sockets = ["127.0.0.1:5432"] }
//! ```
//!
//! Mount configuration:
//!
//! | key                  | meaning                                                        |
//! |----------------------|----------------------------------------------------------------|
//! | `connection_url`     | `postgresql://user@host:port/database?sslmode=disable` (required); parameters `sslmode`, `connect_timeout` (s), `application_name` |
//! | `password`           | the user's password, best given as a `ref:` to another mount (or `{{password}}` in the URL filled from it) |
//! | `table_prefix`       | the tables are `<prefix>_secrets` and `<prefix>_versions` (default `tresor_kv`): mounts sharing a database use one prefix each |
//! | `connect_timeout_ms` | how long connecting may take (default 10 000; measured only when the mount grants a clock, else the host's call deadline bounds it) |
//!
//! Any other key is refused when the mount starts, naming it.
//!
//! The plugin reaches the database only through the mount's
//! `grants.sockets`, which must list `host:port` as the URL gives it. It
//! connects when the mount starts and creates its tables unless they
//! exist, so the user needs the right to create tables in its schema (or
//! the tables made beforehand, and SELECT, INSERT, UPDATE and DELETE on
//! them); a database that cannot be reached then stops the mount from
//! starting. Afterwards each instance keeps one session and opens it again
//! when the server restarts; while the database is down, calls answer
//! `unavailable`. Times (creation, deletion, `delete_version_after`) are
//! the database's clock, so the mount needs no clock grant.
//!
//! TLS is not supported yet: `connection_url` must say `sslmode=disable`,
//! for a database on the same machine or a network you trust. The sealed
//! values are safe on any network; the password and metadata are not.

pub mod config;
pub mod queries;
pub mod rows;
pub mod rules;
pub mod schema;
pub mod session;
pub mod store;

#[cfg(target_arch = "wasm32")]
use tresor_plugin_sdk::export_provider;
use tresor_plugin_sdk::{host, Capabilities, Config, Error, Metadata, Provider, Secret, Settings, VersionInfo};

use crate::config::KvConfig;
use crate::store::{Sealer, Store};

/// Seals values with the host's key for this mount.
pub struct HostSealer;

impl Sealer for HostSealer {
    fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, Error> {
        host::seal(plaintext, context)
    }

    fn unseal(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, Error> {
        host::unseal(sealed, context)
    }
}

/// The provider: a [`Store`] in the mount's database, sealed by the host.
pub struct PostgresKv {
    store: Store<HostSealer>,
}

impl Provider for PostgresKv {
    const NAME: &'static str = "postgres-kv";

    fn configure(config: Config) -> Result<Self, Error> {
        let config = KvConfig::from_config(&config)?;
        Ok(PostgresKv {
            store: Store::open(config, HostSealer)?,
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
        self.store.put(path, &value, &metadata, expected_version)
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
}

// Only the component exports the interface: native builds (the tests) use
// the rlib, and a native cdylib cannot carry the component's export names.
#[cfg(target_arch = "wasm32")]
export_provider!(PostgresKv);
