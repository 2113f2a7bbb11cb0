//! Live configuration changes: mounts added, removed or changed (config,
//! grants, limits, plugin file and its pin) while the host serves.
//!
//! A reload starts every new or changed mount first (plugin verified against
//! its sha256, compiled, sandboxed, configured, roles checked) and swaps the
//! whole mount table only when all of them started: a change that cannot
//! work is refused with the reason and the previous mounts keep serving.
//! Accesses already running keep the table they started with (see
//! [`crate::mounts`]), so calls in flight finish on the old instances, new
//! calls go to the new ones, and the old instances are dropped when drained.
//! Mounts whose configuration did not change keep their instances and cache.
//!
//! ```no_run
//! # async fn demo(host: &tresor::Host, me: &tresor::Caller) -> Result<(), Box<dyn std::error::Error>> {
//! let report = host.reload(me, tresor::Config::from_file("tresor.toml".as_ref())?, &[]).await?;
//! println!("{report}");
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::access::{Caller, Guard, Host, Target};
use crate::config::{Config, MountConfig};
use crate::error::Error;
use crate::keys::Keyring;
use crate::lease::GeneratorTable;
use crate::mounts::MountTable;
use crate::policy::Action;
use crate::runtime::Runtime;
use crate::startup::{resolve_refs, start_mount, Started};

/// What a reload changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReloadReport {
    /// Mounts that did not exist before.
    pub added: Vec<String>,
    /// Mounts started anew because their configuration changed.
    pub changed: Vec<String>,
    /// Mounts no longer served.
    pub removed: Vec<String>,
    /// Mounts kept as they were (same instances, same cache).
    pub unchanged: Vec<String>,
    /// Settings outside the mounts that changed but take effect only when
    /// the host is started again (`server`, `state`, ...).
    pub needs_restart: Vec<String>,
    /// Whether the policy files changed and were loaded.
    pub policies_reloaded: bool,
    /// Why the new policy files were refused (the previous ones stay active).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policies_refused: Option<String>,
}

impl fmt::Display for ReloadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[String]| if v.is_empty() { "-".to_string() } else { v.join(", ") };
        write!(
            f,
            "added: {}; changed: {}; removed: {}; unchanged: {}",
            list(&self.added),
            list(&self.changed),
            list(&self.removed),
            list(&self.unchanged)
        )?;
        if !self.needs_restart.is_empty() {
            write!(f, "; restart needed for: {}", self.needs_restart.join(", "))?;
        }
        match &self.policies_refused {
            Some(why) => write!(f, "; policies refused: {why}"),
            None if self.policies_reloaded => write!(f, "; policies reloaded"),
            None => Ok(()),
        }
    }
}

/// What a host keeps to start mounts after its own start: the wasm
/// runtime, the master key and the configuration in effect (its lock also
/// makes reloads take turns).
pub(crate) struct Reloader {
    runtime: Runtime,
    keyring: Arc<Keyring>,
    config: tokio::sync::Mutex<Config>,
}

impl Reloader {
    pub(crate) fn new(runtime: Runtime, keyring: Arc<Keyring>, config: Config) -> Reloader {
        Reloader {
            runtime,
            keyring,
            config: tokio::sync::Mutex::new(config),
        }
    }
}

impl Host {
    /// Apply `config` to this running host: start the mounts it adds or
    /// changes, stop the ones it removes, keep the others, and reload the
    /// policy files. All or nothing: when a new or changed mount cannot
    /// start, nothing changes and the error says why. `restart` names
    /// mounts to start anew even when their configuration is unchanged
    /// (Vault's `sys/plugins/reload/backend` with `mounts`), so they pick up
    /// changed `ref:` values or environment. Authorized as action `admin`
    /// on `Mount::"sys"` and audited (`plugins/reload`).
    pub async fn reload(&self, caller: &Caller, config: Config, restart: &[String]) -> Result<ReloadReport, Error> {
        self.admin(caller, "sys", "plugins/reload", || self.apply_config(config, restart))
            .await
    }

    /// [`Host::reload`] asked for by the operator of the process itself
    /// (SIGHUP), audited as allowed by the built-in rule `builtin:sighup`.
    pub async fn reload_on_signal(&self, config: Config) -> Result<ReloadReport, Error> {
        let caller = crate::startup::host_caller("host:sighup");
        let target = Target {
            mount: "sys",
            path: "plugins/reload",
            plugin: "builtin",
        };
        let mut guard = Guard::open(&self.policy, &self.audit, &caller, Action::Admin, target);
        guard.allow_builtin("builtin:sighup")?;
        let result = tracing::Instrument::instrument(self.apply_config(config, &[]), guard.span().clone()).await;
        guard.finish(result)
    }

    async fn apply_config(&self, new: Config, restart: &[String]) -> Result<ReloadReport, Error> {
        let refused = |reason: String| Error::ReloadRefused { mount: None, reason };
        new.check().map_err(|e| refused(e.to_string()))?;
        if let Some(unknown) = restart.iter().find(|r| !new.mounts.iter().any(|m| &&m.path == r)) {
            return Err(refused(format!(
                "there is no mount `{unknown}` to restart in the configuration; its mounts are {:?}",
                new.mounts.iter().map(|m| m.path.as_str()).collect::<Vec<_>>()
            )));
        }
        let mut current = self.reloader.config.lock().await;
        let mut report = ReloadReport {
            needs_restart: needs_restart(&current, &new),
            ..ReloadReport::default()
        };

        let old_providers = self.table();
        let old_generators = self.leases.mounts.load_full();
        let mut providers = BTreeMap::new();
        let mut chains = BTreeMap::new();
        let mut generators: GeneratorTable = BTreeMap::new();
        for m in &new.mounts {
            let before = current.mounts.iter().find(|o| o.path == m.path);
            let same = before.is_some_and(|o| o == m && current.limits == new.limits) && !restart.contains(&m.path);
            if !m.chain.is_empty() {
                chains.insert(m.path.clone(), m.chain.clone());
            } else if let (true, Some(kept)) = (same, old_providers.providers.get(&m.path)) {
                providers.insert(m.path.clone(), kept.clone());
            } else if let (true, Some(kept)) = (same, old_generators.get(&m.path)) {
                generators.insert(m.path.clone(), kept.clone());
            } else {
                match self.start_for_reload(&new, m).await? {
                    Started::Provider(mount) => {
                        providers.insert(m.path.clone(), Arc::new(mount));
                    }
                    Started::Generator(mount) => {
                        generators.insert(m.path.clone(), Arc::new(mount));
                    }
                }
            }
            let bucket = match (before, same) {
                (None, _) => &mut report.added,
                (Some(_), true) => &mut report.unchanged,
                (Some(_), false) => &mut report.changed,
            };
            bucket.push(m.path.clone());
        }
        for old in &current.mounts {
            if !new.mounts.iter().any(|m| m.path == old.path) {
                report.removed.push(old.path.clone());
            }
        }
        self.refuse_dropping_leases(&old_generators, &generators).await?;

        // Everything started: swap. Accesses running keep the old tables.
        self.mounts.store(Arc::new(MountTable { providers, chains }));
        self.leases.mounts.store(Arc::new(generators));
        *current = new;
        drop(current);

        match self.policy.reload() {
            Ok(changed) => report.policies_reloaded = changed,
            Err(e) => report.policies_refused = Some(e.to_string()),
        }
        tracing::info!(%report, "configuration reloaded");
        Ok(report)
    }

    /// Start mount `m` of the configuration `config` being applied.
    async fn start_for_reload(&self, config: &Config, m: &MountConfig) -> Result<Started, Error> {
        let refused = |e: crate::error::StartupError| {
            let reason = e.to_string();
            let reason = reason
                .strip_prefix(&format!("plugin for mount `{}`: ", m.path))
                .map(str::to_string)
                .unwrap_or(reason);
            Error::ReloadRefused {
                mount: Some(m.path.clone()),
                reason,
            }
        };
        let plugin_config = resolve_refs(self, m).await.map_err(refused)?;
        start_mount(config, m, plugin_config, &self.reloader.runtime, &self.reloader.keyring)
            .await
            .map_err(refused)
    }

    /// A generator mount that still holds live leases cannot be removed:
    /// nothing could revoke them.
    async fn refuse_dropping_leases(&self, old: &GeneratorTable, new: &GeneratorTable) -> Result<(), Error> {
        for name in old.keys().filter(|name| !new.contains_key(*name)) {
            let live = self
                .state()
                .list_leases(&format!("{name}/"))
                .await
                .map_err(|e| Error::StateUnavailable(e.to_string()))?;
            if !live.is_empty() {
                return Err(Error::ReloadRefused {
                    mount: Some(name.clone()),
                    reason: format!(
                        "it still holds {} live lease(s) that only it can revoke; revoke them first (`tresor lease revoke -prefix {name}/`) or keep the mount",
                        live.len()
                    ),
                });
            }
        }
        Ok(())
    }
}

/// The settings outside the mounts (and the policy files) that differ
/// between `old` and `new`: they need a restart.
fn needs_restart(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut differs = |name: &str, changed: bool| {
        if changed {
            out.push(name.to_string());
        }
    };
    differs("state_dir", old.state_dir != new.state_dir);
    differs("master_key_file", old.master_key_file != new.master_key_file);
    differs("compile_cache", old.compile_cache != new.compile_cache);
    differs("policy", old.policy != new.policy);
    differs("audit", old.audit != new.audit);
    differs("server", old.server != new.server);
    differs("leases", old.leases != new.leases);
    differs("state", old.state != new.state);
    out
}
