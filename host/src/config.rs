//! The configuration file (`tresor.toml`): mounts, their plugins and grants,
//! policies, audit, runtime limits and the server's listeners (the
//! `[server]` table is documented in [`ServerConfig`]'s module, `config/server.rs`).
//!
//! ```toml
//! state_dir = "/var/lib/tresor"          # key file, compiled-plugin cache, default data dirs
//!
//! [policy]
//! dir = "/etc/tresor/policies"           # *.cedar files, reloaded without restart
//!
//! [audit]
//! log = "/var/log/tresor/audit.log"      # hash-chained JSON lines; accesses fail closed without it
//!
//! [[mount]]
//! path = "secret"                        # first path segment served by this mount
//! plugin = "file"                        # an embedded plugin: "file" or "env"
//! grants = { directory = "/var/lib/tresor/secret", clock = true }
//! cache = { ttl_ms = 30000, max_entries = 10000 }
//!
//! [[mount]]
//! path = "ci"
//! plugin_path = "/opt/tresor/plugins/custom.wasm"   # third-party plugin, pinned:
//! sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//! config = { prefix = "CI_" }
//! grants = { env = ["CI_*"] }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::StartupError;

mod server;
pub use server::{
    parse_duration_seconds, ClientCertPrincipal, ListenerConfig, ServerConfig, TokenConfig, DEFAULT_LISTEN,
};

/// The whole configuration file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the host keeps its own state: the master key file (unless
    /// `$TRESOR_MASTER_KEY` is set), the compiled-plugin cache, and relative
    /// `directory` grants.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Master key file; default `<state_dir>/master.key`.
    #[serde(default)]
    pub master_key_file: Option<PathBuf>,
    /// Where compiled plugins are cached; default `<state_dir>/cache`. Hosts
    /// on one machine may share one, so a large plugin is compiled once.
    #[serde(default)]
    pub compile_cache: Option<PathBuf>,
    /// Policies.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Audit log.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Sandbox limits applied to every mount unless the mount overrides them.
    #[serde(default)]
    pub limits: Limits,
    /// The mounts, each a path prefix served by one plugin.
    #[serde(default, rename = "mount")]
    pub mounts: Vec<MountConfig>,
    /// The HTTP server (used by `tresor server`).
    #[serde(default)]
    pub server: ServerConfig,
    /// Leases of dynamic secrets: TTL limits and the sweeper's retries.
    #[serde(default)]
    pub leases: LeaseConfig,
    /// The host state store (leases and other state that outlives a restart).
    #[serde(default)]
    pub state: StateConfig,
    /// Webhooks: change events POSTed to HTTP endpoints (`[[webhook]]`).
    #[serde(default, rename = "webhook")]
    pub webhooks: Vec<WebhookConfig>,
    /// Rotation rules (`[[rotation]]`): which secrets rotate, how often,
    /// and how their new values are made (see [`crate::rotation`]).
    #[serde(default, rename = "rotation")]
    pub rotations: Vec<crate::rotation::RotationRule>,
    /// When expiring secrets are announced (`[expiry]`, see [`crate::expiry`]).
    #[serde(default)]
    pub expiry: crate::expiry::ExpiryConfig,
}

/// A webhook (`[[webhook]]`): every change event under `prefix` is POSTed
/// to `url` as JSON, signed with HMAC-SHA256 (header
/// `X-Tresor-Signature: sha256=<hex>` over the body), from a persisted
/// outbox, retried with backoff until the endpoint answers 2xx.
///
/// ```toml
/// [[webhook]]
/// name = "deployer"
/// url = "https://deploy.internal:8443/tresor"
/// prefix = "secret/apps/"
/// secret_file = "/etc/tresor/webhook.key"   # or secret_env = "DEPLOYER_HOOK_KEY"
/// ca_file = "/etc/tresor/internal-ca.pem"   # https with a private CA
/// ```
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Names the webhook in the outbox, logs and errors (letters, digits, `-`, `_`).
    pub name: String,
    /// `http://` or `https://` endpoint.
    pub url: String,
    /// Events of secrets under this path (`secret/apps/`); empty for all.
    #[serde(default)]
    pub prefix: String,
    /// A file holding the HMAC key (its first line, at least 16 bytes).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// An environment variable holding the HMAC key.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// PEM file of the CA to trust for an `https` endpoint; default the
    /// public web roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// How long one delivery may take, in milliseconds.
    #[serde(default = "default_webhook_timeout_ms")]
    pub timeout_ms: u64,
    /// First wait before retrying a failed delivery; doubles each time.
    #[serde(default = "default_webhook_retry_ms")]
    pub retry_initial_ms: u64,
    /// Longest wait between two attempts (deliveries are retried until
    /// they succeed).
    #[serde(default = "default_webhook_retry_max_ms")]
    pub retry_max_ms: u64,
}

fn default_webhook_timeout_ms() -> u64 {
    10_000
}
fn default_webhook_retry_ms() -> u64 {
    1_000
}
fn default_webhook_retry_max_ms() -> u64 {
    300_000
}

impl WebhookConfig {
    /// The HMAC key: `secret_file`'s first line, or `$secret_env`.
    pub fn key(&self) -> Result<zeroize::Zeroizing<Vec<u8>>, StartupError> {
        let bad = |m: String| StartupError::Config(format!("webhook `{}`: {m}", self.name));
        let key = match (&self.secret_file, &self.secret_env) {
            (Some(path), None) => {
                let text =
                    zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|source| StartupError::Io {
                        what: "reading a webhook's key file",
                        path: path.clone(),
                        source,
                    })?);
                zeroize::Zeroizing::new(text.lines().next().unwrap_or_default().trim().as_bytes().to_vec())
            }
            (None, Some(var)) => {
                let value = zeroize::Zeroizing::new(
                    std::env::var(var)
                        .map_err(|_| bad(format!("the environment variable `{var}` (secret_env) is not set")))?,
                );
                zeroize::Zeroizing::new(value.trim().as_bytes().to_vec())
            }
            _ => {
                return Err(bad(
                    "set exactly one of `secret_file` and `secret_env` for its HMAC key".into(),
                ))
            }
        };
        if key.len() < 16 {
            return Err(bad(format!(
                "its HMAC key has {} bytes; use at least 16 (e.g. `openssl rand -hex 32`)",
                key.len()
            )));
        }
        Ok(key)
    }
}

/// Leases of dynamic secrets (`[leases]`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseConfig {
    /// TTL of a lease when neither the request nor the role gives one.
    #[serde(default = "default_lease_ttl")]
    pub default_ttl: String,
    /// Longest TTL any lease gets (from issue, renewals included); roles
    /// may only lower it.
    #[serde(default = "default_max_lease_ttl")]
    pub max_ttl: String,
    /// How often the sweeper looks for expired leases, in milliseconds.
    #[serde(default = "default_sweep_ms")]
    pub sweep_interval_ms: u64,
    /// First wait before retrying a failed revocation; doubles each time.
    #[serde(default = "default_retry_ms")]
    pub retry_initial_ms: u64,
    /// Longest wait between two revocation attempts.
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// Attempts before a lease is kept as irrevocable (listed, never dropped).
    #[serde(default = "default_attempts")]
    pub max_revoke_attempts: u32,
}

fn default_lease_ttl() -> String {
    "768h".into()
}
fn default_max_lease_ttl() -> String {
    "768h".into()
}
fn default_sweep_ms() -> u64 {
    250
}
fn default_retry_ms() -> u64 {
    1_000
}
fn default_retry_max_ms() -> u64 {
    60_000
}
fn default_attempts() -> u32 {
    12
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            default_ttl: default_lease_ttl(),
            max_ttl: default_max_lease_ttl(),
            sweep_interval_ms: default_sweep_ms(),
            retry_initial_ms: default_retry_ms(),
            retry_max_ms: default_retry_max_ms(),
            max_revoke_attempts: default_attempts(),
        }
    }
}

/// The host state store (`[state]`). The embedded default is a SQLite
/// database in `state_dir`; `postgres` keeps the state in PostgreSQL
/// instead, for several hosts sharing it:
///
/// ```toml
/// [state]
/// postgres = "postgresql://tresor@db.internal:5432/tresor"
/// password_file = "/etc/tresor/state-password"   # or $TRESOR_STATE_PASSWORD
/// ```
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Path of the embedded database; default `<state_dir>/state.db`.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// A PostgreSQL connection URL (`postgresql://user@host:port/database`,
    /// options such as `?connect_timeout=5` allowed). Put the password in
    /// `password_file` or `$TRESOR_STATE_PASSWORD`, not here.
    #[serde(default)]
    pub postgres: Option<String>,
    /// A file holding the PostgreSQL password (its first line).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// PEM file of the CA that signed PostgreSQL's certificate: the
    /// connection is then TLS, required, with the certificate and host name
    /// checked.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// The environment variable a PostgreSQL state store's password may come from.
pub const STATE_PASSWORD_ENV: &str = "TRESOR_STATE_PASSWORD";

impl StateConfig {
    /// The PostgreSQL password: `password_file`, else `$TRESOR_STATE_PASSWORD`,
    /// else none (the URL's, or the server's trust rules).
    pub fn password(&self) -> Result<Option<zeroize::Zeroizing<String>>, StartupError> {
        if let Some(path) = &self.password_file {
            let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|source| StartupError::Io {
                what: "reading the state store's password file",
                path: path.clone(),
                source,
            })?);
            let first = text.lines().next().unwrap_or_default();
            return Ok(Some(zeroize::Zeroizing::new(first.to_string())));
        }
        Ok(std::env::var(STATE_PASSWORD_ENV).ok().map(zeroize::Zeroizing::new))
    }
}

/// One role of a generator mount (`[mount.roles.<name>]`): TTLs the host
/// enforces, and settings for the plugin (creation statements, policies, ...).
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
pub struct RoleConfig {
    /// TTL when the request gives none; default the server's `[leases] default_ttl`.
    #[serde(default)]
    pub default_ttl: Option<String>,
    /// Longest TTL of a lease of this role (capped by `[leases] max_ttl`).
    #[serde(default)]
    pub max_ttl: Option<String>,
    /// Every other key: the plugin's settings for this role, checked by the
    /// plugin at start (unknown keys are refused there).
    #[serde(flatten)]
    pub settings: BTreeMap<String, String>,
}

/// A static role (`[mount.static_roles.<name>]`): accounts that already
/// exist upstream, whose password the host changes every `rotation_period`.
/// With two `usernames` they take turns: each rotation sets a new password
/// on the account not in use and makes it current, so the credential a
/// client holds keeps working for one more period.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct StaticRoleConfig {
    /// One account (rotated in place, as Vault does), or two used in turn.
    pub usernames: Vec<String>,
    /// How often the password changes (`"24h"`, `"30d"`).
    pub rotation_period: String,
    /// Characters of each new password (default 32, letters and digits).
    #[serde(default)]
    pub password_length: Option<usize>,
    /// Every other key: the plugin's settings for this static role
    /// (`rotation_statements` for `postgres`).
    #[serde(flatten)]
    pub settings: BTreeMap<String, String>,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from(".tresor")
}

/// Where policies come from.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Directory of `*.cedar` files.
    #[serde(default = "default_policy_dir")]
    pub dir: PathBuf,
    /// How often the directory is checked for changes, in milliseconds.
    #[serde(default = "default_reload_ms")]
    pub reload_interval_ms: u64,
}

fn default_policy_dir() -> PathBuf {
    PathBuf::from("policies")
}
fn default_reload_ms() -> u64 {
    1000
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            dir: default_policy_dir(),
            reload_interval_ms: default_reload_ms(),
        }
    }
}

/// The local audit log.
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Path of the log; default `<state_dir>/audit.log`.
    #[serde(default)]
    pub log: Option<PathBuf>,
}

/// Per-call sandbox limits.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Deadline of one plugin call in milliseconds; a call past it is interrupted.
    #[serde(default = "default_timeout_ms")]
    pub call_timeout_ms: u64,
    /// Memory cap of one plugin instance, in MiB.
    #[serde(default = "default_memory_mib")]
    pub memory_mib: u64,
    /// Instances kept per mount; also the mount's concurrency limit.
    #[serde(default = "default_instances")]
    pub max_instances: usize,
}

fn default_timeout_ms() -> u64 {
    5_000
}
fn default_memory_mib() -> u64 {
    64
}
fn default_instances() -> usize {
    8
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            call_timeout_ms: default_timeout_ms(),
            memory_mib: default_memory_mib(),
            max_instances: default_instances(),
        }
    }
}

impl Limits {
    /// The call deadline as a duration.
    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.call_timeout_ms)
    }
}

/// One mount: a path prefix served by a plugin.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountConfig {
    /// The first path segment this mount serves (`secret` serves `secret/...`).
    pub path: String,
    /// Name of an embedded plugin (`file`, `env`). Exclusive with `plugin_path`.
    #[serde(default)]
    pub plugin: Option<String>,
    /// Path of a third-party plugin component. Requires `sha256`.
    #[serde(default)]
    pub plugin_path: Option<PathBuf>,
    /// The pinned sha256 (hex) of `plugin_path`; a mismatching file is refused.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Configuration handed to the plugin's `configure`.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Capabilities granted to the plugin. Nothing is granted by default.
    #[serde(default)]
    pub grants: Grants,
    /// Optional in-memory cache of read values.
    #[serde(default)]
    pub cache: Option<CacheConfig>,
    /// Overrides of the global sandbox limits.
    #[serde(default)]
    pub limits: Option<Limits>,
    /// Roles of a generator mount, by name. A mount with roles runs a
    /// generator plugin (dynamic secrets); one without, a provider.
    #[serde(default)]
    pub roles: BTreeMap<String, RoleConfig>,
    /// Static roles of a generator mount, by name: accounts that exist
    /// upstream, whose password the host rotates (`[mount.static_roles.<name>]`).
    #[serde(default)]
    pub static_roles: BTreeMap<String, StaticRoleConfig>,
    /// A fallback chain instead of a plugin: the provider mounts to ask, in
    /// order (`["azure", "dpapi", "env"]`). A read answers with the first
    /// that has the secret; a write goes to the first writable one.
    #[serde(default)]
    pub chain: Vec<String>,
}

/// Capabilities a mount grants its plugin. The default grants nothing.
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// A host directory preopened for the plugin, visible inside as `/data`.
    /// Relative paths are resolved against `state_dir`; created if missing.
    #[serde(default)]
    pub directory: Option<PathBuf>,
    /// Make the directory read-only for the plugin.
    #[serde(default)]
    pub read_only: bool,
    /// Environment variables the plugin may read: exact names, or prefixes
    /// ending in `*` (`APP_*`).
    #[serde(default)]
    pub env: Vec<String>,
    /// Outbound HTTP (`wasi:http`) the plugin may make: exact `host:port`
    /// authorities (`vault.internal:8200`). Nothing else is reachable.
    #[serde(default)]
    pub network: Vec<String>,
    /// Extra trust root (PEM) for https upstreams, besides the public roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Let the plugin read the real wall and monotonic clocks. Without it, the
    /// plugin sees a clock frozen at the Unix epoch.
    #[serde(default)]
    pub clock: bool,
    /// Outbound TCP (`wasi:sockets`) the plugin may open: exact `host:port`
    /// addresses (`127.0.0.1:5432`, `db.internal:5432`). No listening, no UDP.
    #[serde(default)]
    pub sockets: Vec<String>,
}

/// A mount's read cache.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// How long a value may be served from memory, in milliseconds.
    pub ttl_ms: u64,
    /// Most values held at once; the oldest is evicted beyond it.
    #[serde(default = "default_cache_entries")]
    pub max_entries: usize,
}

fn default_cache_entries() -> usize {
    1024
}

impl Config {
    /// Read and check a configuration file.
    pub fn from_file(path: &Path) -> Result<Config, StartupError> {
        let text = std::fs::read_to_string(path).map_err(|source| StartupError::Io {
            what: "reading configuration",
            path: path.into(),
            source,
        })?;
        let in_file = |e: StartupError| StartupError::Config(format!("{}: {e}", path.display()));
        let mut config: Config = toml::from_str(&text).map_err(|e| in_file(StartupError::Config(e.to_string())))?;
        // Relative paths in a config file are relative to the file.
        if let Some(base) = path.parent() {
            config.rebase(base);
        }
        config.check().map_err(in_file)?;
        Ok(config)
    }

    /// Parse and check configuration text.
    pub fn from_toml(text: &str) -> Result<Config, StartupError> {
        let config: Config = toml::from_str(text).map_err(|e| StartupError::Config(e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    /// A configuration with one embedded `file` mount at `secret/`, state in
    /// `state_dir` and policies from `policy_dir`: what `tresor server --dev` runs.
    pub fn dev(state_dir: &Path, policy_dir: &Path) -> Config {
        Config {
            state_dir: state_dir.into(),
            master_key_file: None,
            compile_cache: None,
            policy: PolicyConfig {
                dir: policy_dir.into(),
                reload_interval_ms: default_reload_ms(),
            },
            audit: AuditConfig::default(),
            limits: Limits::default(),
            mounts: vec![MountConfig {
                path: "secret".into(),
                plugin: Some("file".into()),
                plugin_path: None,
                sha256: None,
                config: BTreeMap::new(),
                grants: Grants {
                    directory: Some("data/secret".into()),
                    clock: true,
                    ..Grants::default()
                },
                cache: Some(CacheConfig {
                    ttl_ms: 30_000,
                    max_entries: 10_000,
                }),
                limits: None,
                roles: BTreeMap::new(),
                static_roles: BTreeMap::new(),
                chain: Vec::new(),
            }],
            server: ServerConfig::default(),
            leases: LeaseConfig::default(),
            state: StateConfig::default(),
            webhooks: Vec::new(),
            rotations: Vec::new(),
            expiry: Default::default(),
        }
    }

    fn rebase(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.state_dir);
        self.server.rebase(base);
        fix(&mut self.policy.dir);
        if let Some(p) = self.master_key_file.as_mut() {
            fix(p);
        }
        if let Some(p) = self.audit.log.as_mut() {
            fix(p);
        }
        for p in [
            &mut self.state.file,
            &mut self.state.password_file,
            &mut self.state.ca_file,
        ] {
            if let Some(p) = p.as_mut() {
                fix(p);
            }
        }
        for w in &mut self.webhooks {
            for p in [&mut w.secret_file, &mut w.ca_file] {
                if let Some(p) = p.as_mut() {
                    fix(p);
                }
            }
        }
        for m in &mut self.mounts {
            if let Some(p) = m.grants.ca_file.as_mut() {
                fix(p);
            }
            if let Some(p) = m.plugin_path.as_mut() {
                fix(p);
            }
        }
    }

    /// Reject configurations that cannot work, with a message saying what to change.
    /// A chain names provider mounts of this config, none a chain, and
    /// has nothing a plugin mount has.
    fn check_chain(&self, m: &MountConfig) -> Result<(), StartupError> {
        let bad = |why: String| Err(StartupError::Config(format!("mount `{}`: {why}", m.path)));
        if m.plugin.is_some()
            || m.plugin_path.is_some()
            || !m.config.is_empty()
            || !m.roles.is_empty()
            || !m.static_roles.is_empty()
            || m.cache.is_some()
        {
            return bad(
                "a `chain` mount has no plugin, config, roles or cache of its own: set those on its members".into(),
            );
        }
        for member in &m.chain {
            match self.mounts.iter().find(|o| &o.path == member) {
                None => return bad(format!("chain member `{member}` is not a mount of this configuration")),
                Some(o) if !o.chain.is_empty() => return bad(format!("chain member `{member}` is a chain itself")),
                Some(o) if !o.roles.is_empty() || !o.static_roles.is_empty() => {
                    return bad(format!(
                        "chain member `{member}` serves credentials, not stored secrets"
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn check_webhooks(&self) -> Result<(), StartupError> {
        let mut names = std::collections::BTreeSet::new();
        for w in &self.webhooks {
            let bad = |m: String| Err(StartupError::Config(format!("webhook `{}`: {m}", w.name)));
            if !is_mount_name(&w.name) {
                return bad("`name` must be letters, digits, `-` or `_`".into());
            }
            if !names.insert(w.name.as_str()) {
                return bad("the name is used twice; give each [[webhook]] its own".into());
            }
            match w.url.parse::<hyper::Uri>() {
                Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() => {}
                _ => return bad(format!("`url` must be an http:// or https:// URL, not `{}`", w.url)),
            }
            if w.ca_file.is_some() && !w.url.starts_with("https://") {
                return bad("`ca_file` is for an https:// url".into());
            }
            if w.timeout_ms == 0 || w.retry_initial_ms == 0 || w.retry_max_ms < w.retry_initial_ms {
                return bad(
                    "`timeout_ms` and `retry_initial_ms` must be positive, `retry_max_ms` at least `retry_initial_ms`"
                        .into(),
                );
            }
            w.key()?;
        }
        Ok(())
    }

    pub fn check(&self) -> Result<(), StartupError> {
        let bad = |m: &str| Err(StartupError::Config(m.to_string()));
        self.server.check().map_err(StartupError::Config)?;
        if self.state.postgres.is_some() && self.state.file.is_some() {
            return bad("[state] sets both `file` (the embedded store) and `postgres`: keep one");
        }
        if self.state.password_file.is_some() && self.state.postgres.is_none() {
            return bad("[state] `password_file` is for a PostgreSQL store: set `postgres` too, or remove it");
        }
        if self.state.ca_file.is_some() && self.state.postgres.is_none() {
            return bad("[state] `ca_file` is for a PostgreSQL store: set `postgres` too, or remove it");
        }
        self.lease_limits()?;
        self.expiry.warn_before_ms().map_err(StartupError::Config)?;
        self.check_webhooks()?;
        let hooks: Vec<&str> = self.webhooks.iter().map(|w| w.name.as_str()).collect();
        for (i, rule) in self.rotations.iter().enumerate() {
            rule.check(&hooks)
                .map_err(|e| StartupError::Config(format!("[[rotation]] number {}: {e}", i + 1)))?;
        }
        let mut seen = std::collections::BTreeSet::new();
        for m in &self.mounts {
            if !is_mount_name(&m.path) {
                return bad(&format!(
                    "mount path `{}` must be one segment of letters, digits, `-` or `_` (e.g. `secret`)",
                    m.path
                ));
            }
            if !seen.insert(m.path.as_str()) {
                return bad(&format!("mount path `{}` is configured twice", m.path));
            }
            if !m.chain.is_empty() {
                self.check_chain(m)?;
                continue;
            }
            match (&m.plugin, &m.plugin_path, &m.sha256) {
                (Some(_), None, None) => {}
                (None, Some(_), Some(hash)) if hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()) => {}
                (None, Some(_), Some(_)) => {
                    return bad(&format!(
                        "mount `{}`: sha256 must be 64 hex digits (`sha256sum plugin.wasm`)",
                        m.path
                    ))
                }
                (None, Some(_), None) => {
                    return bad(&format!(
                        "mount `{}`: a plugin_path must be pinned with `sha256 = \"...\"` (`sha256sum plugin.wasm`)",
                        m.path
                    ))
                }
                _ => {
                    return bad(&format!(
                        "mount `{}`: set exactly one of `plugin` (embedded: file, env, postgres, aws-creds) or `plugin_path` + `sha256`",
                        m.path
                    ))
                }
            }
            if let Some(c) = &m.cache {
                if c.max_entries == 0 || c.ttl_ms == 0 {
                    return bad(&format!(
                        "mount `{}`: cache ttl_ms and max_entries must be positive (or remove `cache`)",
                        m.path
                    ));
                }
            }
            let limits = m.limits.unwrap_or(self.limits);
            if limits.max_instances == 0 || limits.call_timeout_ms == 0 || limits.memory_mib == 0 {
                return bad(&format!("mount `{}`: limits must be positive", m.path));
            }
            for (name, role) in &m.roles {
                if !is_mount_name(name) {
                    return bad(&format!(
                        "mount `{}`: role name `{name}` must be letters, digits, `-` or `_`",
                        m.path
                    ));
                }
                for (key, value) in [("default_ttl", &role.default_ttl), ("max_ttl", &role.max_ttl)] {
                    if let Some(v) = value {
                        parse_duration_seconds(v).map_err(|e| {
                            StartupError::Config(format!("mount `{}` role `{name}` {key}: {e}", m.path))
                        })?;
                    }
                }
            }
            for pattern in &m.grants.env {
                if pattern.is_empty() || pattern[..pattern.len() - 1].contains('*') {
                    return bad(&format!(
                        "mount `{}`: env grant `{pattern}` must be a name or a prefix ending in `*`",
                        m.path
                    ));
                }
            }
        }
        Ok(())
    }

    /// The lease TTL limits in seconds: (default, maximum).
    pub fn lease_limits(&self) -> Result<(u64, u64), StartupError> {
        let parse = |key: &str, v: &str| {
            parse_duration_seconds(v).map_err(|e| StartupError::Config(format!("[leases] {key}: {e}")))
        };
        let default = parse("default_ttl", &self.leases.default_ttl)?;
        let max = parse("max_ttl", &self.leases.max_ttl)?;
        if max == 0 {
            return Err(StartupError::Config("[leases] max_ttl must be positive".into()));
        }
        Ok((default.min(max), max))
    }

    /// The state store file in effect.
    pub fn state_file_path(&self) -> PathBuf {
        self.state
            .file
            .clone()
            .unwrap_or_else(|| self.state_dir.join("state.db"))
    }

    /// The compiled-plugin cache in effect.
    pub fn compile_cache_path(&self) -> PathBuf {
        self.compile_cache
            .clone()
            .unwrap_or_else(|| self.state_dir.join("cache"))
    }

    /// The master key file.
    pub fn master_key_path(&self) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| self.state_dir.join("master.key"))
    }

    /// The audit log path in effect.
    pub fn audit_log_path(&self) -> PathBuf {
        self.audit
            .log
            .clone()
            .unwrap_or_else(|| self.state_dir.join("audit.log"))
    }
}

/// True for a valid mount name: one segment of `[A-Za-z0-9_-]`.
pub fn is_mount_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let doc: String = include_str!("config.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start())
            .collect::<Vec<_>>()
            .join("\n");
        let c = Config::from_toml(&doc).unwrap();
        assert_eq!(c.mounts.len(), 2);
        assert_eq!(c.mounts[1].grants.env, vec!["CI_*"]);
    }

    #[test]
    fn refuses_unpinned_plugins_and_bad_mounts() {
        let e = Config::from_toml("[[mount]]\npath = \"x\"\nplugin_path = \"a.wasm\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sha256"), "{e}");
        let e = Config::from_toml("[[mount]]\npath = \"a/b\"\nplugin = \"file\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("one segment"), "{e}");
        let e = Config::from_toml("[[mount]]\npath = \"a\"\nplugin = \"file\"\nbogus = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
    }
}
