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
//! grants = { sockets = ["db.internal:5432"], clock = true }
//!
//! [mount.config]
//! connection_url = "postgresql://tresor@db.internal:5432/secrets?sslmode=verify-full"
//! password = "ref:secret/postgres/tresor"
//! ca_pem = """
//! -----BEGIN CERTIFICATE-----
//! MIIB...
//! -----END CERTIFICATE-----
//! """
//! ```
//!
//! Mount configuration:
//!
//! | key                  | meaning                                                        |
//! |----------------------|----------------------------------------------------------------|
//! | `connection_url`     | `postgresql://user@host:port/database?sslmode=verify-full` (required); parameters `sslmode` (required: `verify-full`, `verify-ca`, `require` or `disable`), `connect_timeout` (s), `application_name` |
//! | `password`           | the user's password, best given as a `ref:` to another mount (or `{{password}}` in the URL filled from it) |
//! | `table_prefix`       | the tables are `<prefix>_secrets` and `<prefix>_versions` (default `tresor_kv`): mounts sharing a database use one prefix each |
//! | `connect_timeout_ms` | how long connecting may take (default 10 000; measured only when the mount grants a clock, else the host's call deadline bounds it) |
//! | `ca_pem`             | the PEM of the CA that issued the server's certificate, inline (the plugin reads no files): required by `sslmode=verify-ca` and `verify-full`, refused with `require` and `disable` |
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
//! `sslmode` says how the connection is protected (see [`tresor_pgwire`]):
//! `verify-full` (TLS; the certificate must be issued by the CA of
//! `ca_pem` and name the URL's host: the one to use across a network),
//! `verify-ca` (the issuer is checked, not the name), `require` (TLS
//! without any certificate check: against passive eavesdropping only) or
//! `disable` (plaintext: the same machine or a network you trust). There
//! is no default, and `prefer`/`allow` are refused: they may fall back to
//! plaintext without saying so. `verify-ca` and `verify-full` check the
//! certificate's dates and so need the mount's clock grant
//! (`clock = true`). A server with TLS off is reported as such, never used
//! in plaintext instead. The sealed values are safe on any network; the
//! login exchange, the paths and the metadata need TLS off a trusted one.

pub mod config;
pub mod queries;
pub mod rows;
pub mod rules;
pub mod schema;
pub mod session;
pub mod store;

#[cfg(target_arch = "wasm32")]
use tresor_plugin_sdk::export_provider;
use tresor_plugin_sdk::{
    host, Capabilities, Config, Error, Metadata, Provider, Resealed, Secret, Settings, VersionInfo,
};

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

    fn reseal(&self, sealed: &[u8], context: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        host::reseal(sealed, context)
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

    fn reseal(&mut self, path: &str) -> Result<Resealed, Error> {
        let (versions, moved) = self.store.reseal(path)?;
        Ok(Resealed { versions, moved })
    }
}

// Only the component exports the interface: native builds (the tests) use
// the rlib, and a native cdylib cannot carry the component's export names.
#[cfg(target_arch = "wasm32")]
export_provider!(PostgresKv);
