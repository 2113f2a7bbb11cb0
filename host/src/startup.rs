//! Starting a host from its configuration: key, runtime, policies, audit log,
//! then every mount's plugin (verified, compiled or loaded from the cache,
//! sandboxed, configured).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroize;

use crate::access::{Caller, FrontDoor, Host, Mount};
use crate::audit::AuditLog;
use crate::cache::ReadCache;
use crate::config::{parse_duration_seconds, Config, MountConfig};
use crate::error::StartupError;
use crate::keys::{Keyring, MasterKey};
use crate::lease::{GeneratorMount, LeasePolicy, Leases, Role};
use crate::mounts::MountTable;
use crate::policy::PolicyEngine;
use crate::policy::Principal;
use crate::runtime::{compile, GenRole, MountPool, NetworkGrant, Runtime, Sandbox, SocketGrant, World};
use crate::state::StateStore;

impl Host {
    /// Start a host from `config`: load (or create) the master key, load and
    /// validate the policies (and watch them for changes), open the audit log,
    /// and start every mount. Fails with a message naming what to fix.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use tresor::{Caller, Config, Host, Principal, SecretBytes, WriteOptions};
    /// let host = Host::start(Config::dev(".tresor".as_ref(), "policies".as_ref())).await?;
    /// let me = Caller::embedded(Principal { groups: vec!["admins".into()], ..Principal::new("deploy-bot") });
    /// host.write(&me, "secret/apps/db", &SecretBytes::from("s3cret"), &WriteOptions::default()).await?;
    /// let secret = host.read(&me, "secret/apps/db", None).await?;
    /// assert_eq!(secret.value.expose(), b"s3cret");
    /// # Ok(()) }
    /// ```
    pub async fn start(config: Config) -> Result<Host, StartupError> {
        config.check()?;
        let state = &config.state_dir;
        std::fs::create_dir_all(state).map_err(|source| StartupError::Io {
            what: "creating state directory",
            path: state.clone(),
            source,
        })?;
        let key = Arc::new(MasterKey::load_or_create(&config.master_key_path())?);

        let policy = Arc::new(PolicyEngine::load_dir(&config.policy.dir)?);
        let watch = (config.policy.reload_interval_ms > 0)
            .then(|| policy.watch(Duration::from_millis(config.policy.reload_interval_ms)));
        let audit = Arc::new(AuditLog::open_signed(
            &config.audit_log_path(),
            key.audit_checkpoint_key(),
        )?);
        let store = open_state(&config).await?;
        store
            .check_master_key(&key.check_value())
            .await
            .map_err(|e| StartupError::Key(e.to_string()))?;
        let keyring = Keyring::new(key.clone());
        crate::access::rekey::load_keyring(&store, &keyring).await?;
        let (default_ttl, max_ttl) = config.lease_limits()?;
        let lease_policy = LeasePolicy {
            default_ttl,
            max_ttl,
            sweep_interval: Duration::from_millis(config.leases.sweep_interval_ms.max(10)),
            retry_initial: Duration::from_millis(config.leases.retry_initial_ms.max(10)),
            retry_max: Duration::from_millis(config.leases.retry_max_ms.max(10)),
            max_attempts: config.leases.max_revoke_attempts.max(1),
        };

        let runtime = Runtime::new(config.compile_cache_path())
            .map_err(|e| StartupError::Config(format!("starting the wasm engine: {e:#}")))?;
        // Mounts start in configuration order, so a mount's `ref:` values can
        // be read from the mounts configured before it, through the access path.
        let audit_checkpoints = audit.clone();
        let member = crate::state::members::this_host(crate::lease::now_ms());
        let mut host = Host {
            mounts: Default::default(),
            policy,
            audit,
            write_locks: crate::locks::PathLocks::new(256),
            leases: Arc::new(Leases::new(BTreeMap::new(), store.clone(), lease_policy)),
            _policy_watch: watch,
            _sweeper: None,
            _checkpoints: Some(crate::audit::keep_checkpoints(&audit_checkpoints)),
            member: member.clone(),
            _heartbeat: None,
            reloader: crate::reload::Reloader::new(runtime.clone(), keyring.clone(), config.clone()),
            events: Arc::new(crate::events::EventBus::new(
                &member.id,
                &config.webhooks,
                store.clone(),
            )?),
            rotations: crate::rotation::Rotations::new(
                config.rotations.clone(),
                store.clone(),
                keyring.sealer_for("tresor:rotation"),
            ),
            _rotation_scheduler: Default::default(),
            keyring: keyring.clone(),
            _reseal: Default::default(),
            expiry_warn_ms: config.expiry.warn_before_ms().map_err(StartupError::Config)?,
            _expiry_watch: Default::default(),
        };
        let mut generators = BTreeMap::new();
        for m in &config.mounts {
            let mut table = MountTable::clone_of(&host.table());
            if !m.chain.is_empty() {
                table.chains.insert(m.path.clone(), m.chain.clone());
            } else {
                let plugin_config = resolve_refs(&host, m).await?;
                match start_mount(&config, m, plugin_config, &runtime, &keyring).await? {
                    Started::Provider(mount) => {
                        table.providers.insert(m.path.clone(), Arc::new(mount));
                    }
                    Started::Generator(mount) => {
                        generators.insert(m.path.clone(), Arc::new(mount));
                    }
                }
            }
            host.mounts.store(Arc::new(table));
        }
        let leases = Arc::new(Leases::new(generators, store, lease_policy));
        host._sweeper = Some(crate::lease::sweeper::start(
            &leases,
            &host.policy,
            &host.audit,
            &host.events,
        ));
        host.events.start_delivery();
        host.leases = leases;
        host._heartbeat = Some(crate::state::members::keep_reporting(
            host.state().clone(),
            host.member.clone(),
        ));
        tracing::info!(mounts = host.table().providers.len(), generator_mounts = host.leases.mount_names().len(), policies = host.policy.len(), audit_log = %host.audit.path().display(), "tresor host started");
        Ok(host)
    }
}

/// The prefix of a configuration value that names a secret in another mount.
pub const REF_PREFIX: &str = "ref:";

/// The mount's plugin configuration with every `ref:<mount>/<path>` value
/// replaced by that secret's value, read as principal `mount:<name>` (group
/// `mounts`) through the access path: authorized by policy and audited.
/// The host state store the configuration names: PostgreSQL, or the
/// embedded database.
async fn open_state(config: &Config) -> Result<StateStore, StartupError> {
    let opened = match &config.state.postgres {
        Some(url) => {
            let password = config.state.password()?;
            StateStore::connect_postgres(
                url,
                password.as_deref().map(String::as_str),
                config.state.ca_file.as_deref(),
            )
            .await
        }
        None => StateStore::open_embedded(&config.state_file_path()),
    };
    opened.map_err(|e| StartupError::Config(e.to_string()))
}

pub(crate) async fn resolve_refs(host: &Host, m: &MountConfig) -> Result<PluginConfig, StartupError> {
    let mut caller = host_caller(&format!("mount:{}", m.path));
    caller.principal.groups = vec!["mounts".into()];
    let mut out = PluginConfig(Vec::with_capacity(m.config.len()));
    for (key, value) in &m.config {
        let Some(target) = value.strip_prefix(REF_PREFIX) else {
            out.0.push((key.clone(), value.clone()));
            continue;
        };
        let fail = |why: String| {
            StartupError::Plugin {
            mount: m.path.clone(),
            detail: format!(
                "config key `{key}` refers to `{target}`: {why} (the referenced mount must be configured before this one, and policy must let principal `mount:{}` read it)",
                m.path
            ),
        }
        };
        let secret = host
            .read(&caller, target, None)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let text = secret
            .value
            .expose_str()
            .ok_or_else(|| fail("the value is not UTF-8 text".into()))?;
        out.0.push((key.clone(), text.to_string()));
    }
    Ok(out)
}

/// The host acting by itself as principal `name` (no groups), through the
/// front door `host`.
pub(crate) fn host_caller(name: &str) -> Caller {
    Caller {
        principal: Principal {
            name: name.to_string(),
            groups: Vec::new(),
            attributes: Default::default(),
        },
        source: "local".into(),
        mtls: false,
        front_door: FrontDoor::Host,
        request_id: None,
        token_accessor: None,
    }
}

/// Plugin configuration; values may hold credentials, so they are zeroized on drop.
pub(crate) struct PluginConfig(Vec<(String, String)>);

impl Drop for PluginConfig {
    fn drop(&mut self) {
        for (_, v) in &mut self.0 {
            v.zeroize();
        }
    }
}

/// A started mount: a provider (stored secrets) or a generator (leases).
pub(crate) enum Started {
    Provider(Mount),
    Generator(GeneratorMount),
}

/// Which world a component exports.
fn world_of(component: &wasmtime::component::Component, engine: &wasmtime::Engine) -> Option<World> {
    component.component_type().exports(engine).find_map(|(name, _)| {
        let name = name.split('@').next().unwrap_or(name);
        match name {
            "tresor:plugin/provider" => Some(World::Provider),
            "tresor:plugin/generator" => Some(World::Generator),
            _ => None,
        }
    })
}

/// A generator mount's roles with their TTLs decided: the role's own, else
/// the server's, never above the server's maximum.
/// The static roles of a generator mount, checked: one or two distinct
/// accounts, a period, a sane password length.
fn static_roles_of(m: &MountConfig) -> Result<BTreeMap<String, crate::lease::StaticRole>, StartupError> {
    let mut out = BTreeMap::new();
    for (name, r) in &m.static_roles {
        let bad = |why: String| StartupError::Config(format!("mount `{}` static role `{name}`: {why}", m.path));
        let distinct = r.usernames.len() != 2 || r.usernames[0] != r.usernames[1];
        if r.usernames.is_empty() || r.usernames.len() > 2 || !distinct {
            return Err(bad(
                "`usernames` names one account (rotated in place) or two distinct accounts (used in turn)".into(),
            ));
        }
        let seconds = parse_duration_seconds(&r.rotation_period).map_err(|e| bad(format!("rotation_period: {e}")))?;
        if seconds == 0 {
            return Err(bad("rotation_period must be longer than 0".into()));
        }
        let password_length = r.password_length.unwrap_or(32);
        if !(16..=128).contains(&password_length) {
            return Err(bad("password_length must be between 16 and 128".into()));
        }
        out.insert(
            name.clone(),
            crate::lease::StaticRole {
                usernames: r.usernames.clone(),
                period_ms: seconds.saturating_mul(1000),
                password_length,
                plugin_role: GenRole {
                    name: name.clone(),
                    settings: r.settings.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                },
            },
        );
    }
    Ok(out)
}

fn roles_of(config: &Config, m: &MountConfig) -> Result<BTreeMap<String, Role>, StartupError> {
    let (default_ttl, max_ttl) = config.lease_limits()?;
    let mut roles = BTreeMap::new();
    for (name, r) in &m.roles {
        let ttl = |v: &Option<String>, fallback: u64| match v {
            Some(v) => parse_duration_seconds(v)
                .map_err(|e| StartupError::Config(format!("mount `{}` role `{name}`: {e}", m.path))),
            None => Ok(fallback),
        };
        let max = ttl(&r.max_ttl, max_ttl)?.min(max_ttl);
        let default = ttl(&r.default_ttl, default_ttl)?.min(max);
        roles.insert(
            name.clone(),
            Role {
                default_ttl: default,
                max_ttl: max,
                plugin_role: GenRole {
                    name: name.clone(),
                    settings: r.settings.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                },
            },
        );
    }
    Ok(roles)
}

pub(crate) async fn start_mount(
    config: &Config,
    m: &MountConfig,
    plugin_config: PluginConfig,
    runtime: &Runtime,
    keyring: &Arc<Keyring>,
) -> Result<Started, StartupError> {
    let fail = |detail: String| StartupError::Plugin {
        mount: m.path.clone(),
        detail,
    };

    // The plugin's bytes: embedded, or a file that must match its pinned hash.
    let (plugin_name, bytes): (String, std::borrow::Cow<'static, [u8]>) = match (&m.plugin, &m.plugin_path) {
        (Some(name), _) => {
            let bytes = crate::plugins::embedded(name).ok_or_else(|| {
                fail(format!(
                    "no embedded plugin `{name}`; embedded are {:?}, or use plugin_path + sha256",
                    crate::plugins::EMBEDDED
                ))
            })?;
            (name.clone(), bytes.into())
        }
        (None, Some(path)) => {
            let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read `{}`: {e}", path.display())))?;
            let actual = compile::sha256_hex(&bytes);
            let pinned = m.sha256.as_deref().unwrap_or_default().to_ascii_lowercase();
            if actual != pinned {
                return Err(fail(format!(
                    "`{}` has sha256 {actual}, but the config pins {pinned}; refusing to load it (update the pin only if you trust the new file)",
                    path.display()
                )));
            }
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "plugin".into());
            (name, bytes.into())
        }
        (None, None) => return Err(fail("no plugin configured".into())),
    };
    let info = crate::catalog::PluginInfo::of(&plugin_name, &bytes);
    let component = compile::load_component(runtime.engine(), runtime.cache_dir(), &bytes)
        .map_err(|e| fail(format!("not a valid WebAssembly component: {e:#}")))?;

    // The sandbox: only what the mount grants.
    let limits = m.limits.unwrap_or(config.limits);
    let directory = match &m.grants.directory {
        Some(dir) => {
            let dir = if dir.is_relative() {
                config.state_dir.join(dir)
            } else {
                dir.clone()
            };
            std::fs::create_dir_all(&dir).map_err(|source| StartupError::Io {
                what: "creating the mount's directory",
                path: dir.clone(),
                source,
            })?;
            Some(dir)
        }
        None => None,
    };
    let ca_pem = match &m.grants.ca_file {
        Some(path) => {
            Some(std::fs::read(path).map_err(|e| fail(format!("cannot read ca_file `{}`: {e}", path.display())))?)
        }
        None => None,
    };
    let network = NetworkGrant::new(&m.path, &m.grants.network, ca_pem.as_deref()).map_err(fail)?;
    let sockets = SocketGrant::new(&m.grants.sockets).map_err(fail)?;
    let world = world_of(&component, runtime.engine()).ok_or_else(|| {
        fail("the component exports neither tresor:plugin/provider nor tresor:plugin/generator; build it against wit/plugin.wit".into())
    })?;
    match (world, m.roles.is_empty() && m.static_roles.is_empty()) {
        (World::Provider, false) => {
            return Err(fail(
                "roles are configured, but the plugin is a provider (stored secrets), not a generator; remove [mount.roles]".into(),
            ))
        }
        (World::Generator, true) => {
            return Err(fail(
                "the plugin is a generator (dynamic secrets) and needs at least one role: add [mount.roles.<name>] or [mount.static_roles.<name>]".into(),
            ))
        }
        _ => {}
    }
    let sandbox = Sandbox {
        mount: m.path.clone(),
        directory,
        read_only: m.grants.read_only,
        env: Sandbox::allowed_env(&m.grants.env),
        clock: m.grants.clock,
        memory_bytes: (limits.memory_mib as usize) << 20,
        network,
        sockets,
    };
    let pool = MountPool::start(
        runtime,
        &component,
        world,
        sandbox,
        Arc::new(keyring.sealer_for(&m.path)),
        plugin_config.0.clone(),
        limits,
    )
    .await
    .map_err(|e| fail(e.to_string()))?;
    if world == World::Generator {
        let roles = roles_of(config, m)?;
        let mut checkout = pool.checkout().await.map_err(|e| fail(e.to_string()))?;
        for role in roles.values() {
            checkout
                .check_role(&role.plugin_role)
                .await
                .map_err(|e| fail(format!("role `{}`: {e}", role.plugin_role.name)))?;
        }
        let static_roles = static_roles_of(m)?;
        return Ok(Started::Generator(GeneratorMount {
            plugin: plugin_name,
            info,
            pool,
            roles,
            static_roles,
        }));
    }
    Ok(Started::Provider(Mount {
        name: m.path.clone(),
        plugin: plugin_name,
        info,
        pool,
        cache: m.cache.map(ReadCache::new),
    }))
}
