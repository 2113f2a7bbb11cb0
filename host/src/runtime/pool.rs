//! Instances of one mount's plugin. A `Store` serves one call at a time, so a
//! mount keeps a pool of ready instances (at most `max_instances`, which is
//! also its concurrency limit). Every call runs under an epoch deadline and a
//! memory cap; an instance that traps, times out, hits the cap or answers
//! something malformed is dropped, and the next call gets a fresh one.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::component::Component;
use wasmtime::{Store, Trap};

use super::bindings::tresor::plugin::types as wit;
use super::bindings::{ProviderPlugin, ProviderPluginIndices};
use super::generator_bindings::exports::tresor::plugin::generator as gen;
use super::generator_bindings::{GeneratorPlugin, GeneratorPluginIndices};
use super::plugin_log::LogGate;
use super::rotating_bindings::exports::tresor::plugin::generator as rotating_gen;
use super::rotating_bindings::exports::tresor::plugin::static_credentials;
use super::sandbox::{PluginState, Sandbox};
use super::sealing_bindings::exports::tresor::plugin::resealer;
use super::{Runtime, EPOCH_TICK};
use crate::config::Limits;
use crate::error::{Error, PluginFailure};
use crate::keys::Sealer;
use crate::secret::{Capabilities, Metadata, Secret, SecretBytes, SecretSettings, VersionInfo};

/// Errors reported while starting a mount's plugin.
pub type PluginError = Error;

/// Which interface of the contract a mount's plugin exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum World {
    /// `tresor:plugin/provider`: stored secrets.
    Provider,
    /// `tresor:plugin/generator`: short-lived credentials with leases.
    Generator,
}

impl World {
    /// "provider" or "generator".
    pub fn as_str(self) -> &'static str {
        match self {
            World::Provider => "provider",
            World::Generator => "generator",
        }
    }
}

/// A component linked and ready to instantiate, for its world.
enum Pre {
    Provider {
        pre: wasmtime::component::InstancePre<PluginState>,
        provider: ProviderPluginIndices,
        /// When the component exports `tresor:plugin/resealer`.
        resealer: Option<resealer::GuestIndices>,
    },
    Generator {
        pre: wasmtime::component::InstancePre<PluginState>,
        generator: GeneratorPluginIndices,
        /// When the component exports `tresor:plugin/static-credentials`.
        statics: Option<static_credentials::GuestIndices>,
    },
}

/// The exports of one live instance.
enum Exports {
    Provider(ProviderPlugin, Option<resealer::Guest>),
    Generator(GeneratorPlugin, Option<static_credentials::Guest>),
}

/// One live instance.
struct Instance {
    store: Store<PluginState>,
    exports: Exports,
}

/// How a mount's plugin uses the host's sealing, for master key rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sealing {
    /// It never calls `seal`: nothing it stores depends on the keyring.
    None,
    /// It seals values and exports `tresor:plugin/resealer`.
    Reseals,
    /// It seals values but cannot move them to a new generation: the
    /// generations it may have used are never retired.
    CannotReseal,
}

/// Whether `component` imports the host's `seal` (components list only the
/// functions of an interface they use).
fn imports_seal(runtime: &Runtime, component: &Component) -> bool {
    use wasmtime::component::types::ComponentItem;
    let engine = runtime.engine();
    component.component_type().imports(engine).any(|(name, item)| {
        name.starts_with("tresor:plugin/host")
            && match item.ty {
                ComponentItem::ComponentInstance(instance) => instance.exports(engine).any(|(f, _)| f == "seal"),
                _ => false,
            }
    })
}

/// Most metadata pairs a plugin may return for one secret or version.
pub const MAX_METADATA_PAIRS: usize = 1024;
/// Most bytes (keys and values) of one secret's or version's metadata.
pub const MAX_METADATA_BYTES: usize = 256 << 10;
/// Most paths one LIST answer of a plugin may hold.
pub const MAX_LIST_ENTRIES: usize = 1_000_000;
/// Most bytes of paths one LIST answer of a plugin may hold.
pub const MAX_LIST_BYTES: usize = 64 << 20;

/// The instances of one mount.
pub struct MountPool {
    mount: String,
    world: World,
    pre: Pre,
    runtime: Runtime,
    sandbox: Sandbox,
    sealer: Arc<Sealer>,
    config: Vec<(String, String)>,
    timeout: Duration,
    log: Arc<LogGate>,
    idle: Mutex<Vec<Instance>>,
    permits: Arc<Semaphore>,
    max_instances: usize,
    capabilities: Capabilities,
    /// The component imports the host's `seal`: it may store sealed values.
    seals: bool,
}

/// How many instances a mount has, for the plugin catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct InstanceCounts {
    /// Started and waiting for a call.
    pub idle: usize,
    /// Serving a call now.
    pub busy: usize,
    /// The most the mount may run at once (`limits.max_instances`).
    pub max: usize,
}

impl Drop for MountPool {
    fn drop(&mut self) {
        // Configuration values may be credentials.
        for (_, v) in &mut self.config {
            zeroize::Zeroize::zeroize(v);
        }
    }
}

impl std::fmt::Debug for MountPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MountPool")
            .field("mount", &self.mount)
            .field("world", &self.world)
            .finish_non_exhaustive()
    }
}

impl MountPool {
    /// Prepare a mount: link the component (it must export `world`), start
    /// one instance (which runs `configure`, so a bad configuration is
    /// reported now, at startup) and, for a provider, read its capabilities.
    pub async fn start(
        runtime: &Runtime,
        component: &Component,
        world: World,
        sandbox: Sandbox,
        sealer: Arc<Sealer>,
        config: Vec<(String, String)>,
        limits: Limits,
    ) -> Result<Arc<MountPool>, Error> {
        let mount = sandbox.mount.clone();
        let startup = |detail: String| Error::Plugin {
            mount: mount.clone(),
            failure: PluginFailure::Startup,
            detail,
        };
        let pre = runtime.linker().instantiate_pre(component).map_err(|e| {
            startup(format!(
                "the component does not fit the tresor:plugin {}-plugin world: {e:#}",
                world.as_str()
            ))
        })?;
        let not_exported = |e: wasmtime::Error| {
            startup(format!(
                "the component does not export tresor:plugin/{}: {e:#}",
                world.as_str()
            ))
        };
        let seals = imports_seal(runtime, component);
        let pre = match world {
            World::Provider => Pre::Provider {
                provider: ProviderPluginIndices::new(&pre).map_err(not_exported)?,
                resealer: resealer::GuestIndices::new(&pre).ok(),
                pre,
            },
            World::Generator => Pre::Generator {
                generator: GeneratorPluginIndices::new(&pre).map_err(not_exported)?,
                statics: static_credentials::GuestIndices::new(&pre).ok(),
                pre,
            },
        };
        let mut pool = MountPool {
            mount: mount.clone(),
            world,
            pre,
            runtime: runtime.clone(),
            sandbox,
            sealer,
            config,
            timeout: limits.call_timeout(),
            log: LogGate::new(&mount),
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(limits.max_instances)),
            max_instances: limits.max_instances,
            capabilities: Capabilities {
                writable: false,
                versioned: false,
                check_and_set: false,
                deletable: false,
                listable: false,
                soft_delete: false,
            },
            seals,
        };
        let mut first = pool.instantiate().await?;
        if let Exports::Provider(plugin, _) = &first.exports {
            first.store.data_mut().begin_call(pool.timeout);
            let fut = plugin.tresor_plugin_provider().call_get_capabilities(&mut first.store);
            let caps = match tokio::time::timeout(pool.timeout + EPOCH_TICK * 4, fut).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => return Err(startup(format!("capabilities() failed: {e:#}"))),
                Err(_) => return Err(startup("capabilities() timed out".into())),
            };
            pool.capabilities = Capabilities {
                writable: caps.writable,
                versioned: caps.versioned,
                check_and_set: caps.check_and_set,
                deletable: caps.deletable,
                listable: caps.listable,
                soft_delete: caps.soft_delete,
            };
        }
        pool.idle.get_mut().expect("fresh mutex").push(first);
        Ok(Arc::new(pool))
    }

    /// Which interface the mount's plugin exports.
    pub fn world(&self) -> World {
        self.world
    }

    /// How many instances are idle and busy now.
    pub fn instance_counts(&self) -> InstanceCounts {
        let idle = self.idle.lock().map(|v| v.len()).unwrap_or(0);
        let busy = self.max_instances.saturating_sub(self.permits.available_permits());
        InstanceCounts {
            idle,
            busy,
            max: self.max_instances,
        }
    }

    /// What the plugin reported it supports.
    pub fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    /// How the values this mount stores follow a master key rotation.
    pub fn sealing(&self) -> Sealing {
        match (&self.pre, self.seals) {
            (Pre::Provider { resealer: Some(_), .. }, true) => Sealing::Reseals,
            (_, true) => Sealing::CannotReseal,
            (_, false) => Sealing::None,
        }
    }

    /// The deadline of one call to this mount's plugin.
    pub fn call_timeout(&self) -> std::time::Duration {
        self.timeout
    }

    /// The mount this pool serves.
    pub fn mount(&self) -> &str {
        &self.mount
    }

    /// Take an instance for one call, waiting while all are busy.
    pub async fn checkout(self: &Arc<Self>) -> Result<Checkout, Error> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Internal("mount is shutting down".into()))?;
        let idle = self.idle.lock().expect("pool lock").pop();
        let inst = match idle {
            Some(inst) => inst,
            None => self.instantiate().await?,
        };
        Ok(Checkout {
            pool: self.clone(),
            inst: Some(inst),
            healthy: true,
            _permit: permit,
        })
    }

    async fn instantiate(&self) -> Result<Instance, Error> {
        let startup = |detail: String| Error::Plugin {
            mount: self.mount.clone(),
            failure: PluginFailure::Startup,
            detail,
        };
        let state = PluginState::new(&self.sandbox, self.sealer.clone(), self.log.clone())
            .map_err(|e| startup(format!("{e:#}")))?;
        let mut store = Store::new(self.runtime.engine(), state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_callback(|ctx| Ok(ctx.data().on_epoch_tick()));
        store.set_epoch_deadline(1);
        store.data_mut().begin_call(self.timeout);
        let failed = |e: wasmtime::Error| startup(format!("instantiation failed: {e:#}"));
        let exports = match &self.pre {
            Pre::Provider {
                pre,
                provider,
                resealer,
            } => {
                let instance = pre.instantiate_async(&mut store).await.map_err(failed)?;
                let plugin = provider.load(&mut store, &instance).map_err(failed)?;
                let resealer = match resealer {
                    Some(r) => Some(r.load(&mut store, &instance).map_err(failed)?),
                    None => None,
                };
                Exports::Provider(plugin, resealer)
            }
            Pre::Generator {
                pre,
                generator,
                statics,
            } => {
                let instance = pre.instantiate_async(&mut store).await.map_err(failed)?;
                let plugin = generator.load(&mut store, &instance).map_err(failed)?;
                let statics = match statics {
                    Some(s) => Some(s.load(&mut store, &instance).map_err(failed)?),
                    None => None,
                };
                Exports::Generator(plugin, statics)
            }
        };
        let mut inst = Instance { store, exports };
        inst.store.data_mut().begin_call(self.timeout);
        inst.store.set_epoch_deadline(1);
        let configured = match &inst.exports {
            Exports::Provider(p, _) => {
                let fut = p.tresor_plugin_provider().call_configure(&mut inst.store, &self.config);
                tokio::time::timeout(self.timeout + EPOCH_TICK * 4, fut).await
            }
            Exports::Generator(g, _) => {
                let fut = g
                    .tresor_plugin_generator()
                    .call_configure(&mut inst.store, &self.config);
                tokio::time::timeout(self.timeout + EPOCH_TICK * 4, fut).await
            }
        };
        self.log.end_call();
        match configured {
            Ok(Ok(Ok(()))) => Ok(inst),
            Ok(Ok(Err(e))) => Err(startup(format!(
                "configure refused the mount's config: {}",
                wit_message(&e)
            ))),
            Ok(Err(trap)) => Err(startup(format!("configure trapped: {trap:#}"))),
            Err(_) => Err(startup("configure timed out".into())),
        }
    }
}

/// One instance checked out for one call. Dropping it returns a healthy
/// instance to the pool and discards a failed one.
pub struct Checkout {
    pool: Arc<MountPool>,
    inst: Option<Instance>,
    healthy: bool,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if let Some(inst) = self.inst.take() {
            if self.healthy {
                self.pool.idle.lock().expect("pool lock").push(inst);
            }
        }
    }
}

type CallResult<T> = Result<wasmtime::Result<Result<T, wit::Error>>, tokio::time::error::Elapsed>;

/// Run one export call of the checked-out instance under its deadline:
/// `call!(self, Provider.tresor_plugin_provider, call_get(path, version))`.
macro_rules! call {
    ($checkout:ident, $world:ident . $iface:ident, $method:ident ( $($arg:expr),* )) => {{
        let timeout = $checkout.pool.timeout;
        let grace = $checkout.pool.timeout + EPOCH_TICK * 4;
        let inst = $checkout.inst.as_mut().expect("a checkout holds an instance");
        let Exports::$world(exports, ..) = &inst.exports else {
            return Err(Error::Internal(format!(
                "mount `{}` runs a {} plugin, not a {}",
                $checkout.pool.mount,
                $checkout.pool.world.as_str(),
                stringify!($world).to_lowercase()
            )));
        };
        // Until the call settles the instance counts as failed: if the caller
        // drops this future mid-call, the half-run instance is not reused.
        $checkout.healthy = false;
        inst.store.data_mut().begin_call(timeout);
        inst.store.set_epoch_deadline(1);
        let fut = exports.$iface().$method(&mut inst.store, $($arg),*);
        let result: CallResult<_> = tokio::time::timeout(grace, fut).await;
        $checkout.pool.log.end_call();
        $checkout.settle(result)
    }};
}

impl Checkout {
    /// Move every stored version of the secret at `path` to the current key
    /// generation (see [`Sealing`]); `unsupported` when the plugin does not
    /// export `tresor:plugin/resealer`. Returns (versions, moved).
    pub async fn reseal(&mut self, path: &str) -> Result<(u32, u32), Error> {
        let timeout = self.pool.timeout;
        let grace = self.pool.timeout + EPOCH_TICK * 4;
        let inst = self.inst.as_mut().expect("a checkout holds an instance");
        let Exports::Provider(_, Some(resealer)) = &inst.exports else {
            return Err(Error::Unsupported(format!(
                "the plugin of mount `{}` cannot reseal its values: it does not export tresor:plugin/resealer",
                self.pool.mount
            )));
        };
        self.healthy = false;
        inst.store.data_mut().begin_call(timeout);
        inst.store.set_epoch_deadline(1);
        let fut = resealer.call_reseal(&mut inst.store, path);
        let result: CallResult<_> = tokio::time::timeout(grace, fut).await;
        self.pool.log.end_call();
        let done = self.settle(result)?;
        Ok((done.versions, done.moved))
    }

    /// Set the password of a static role's existing account; `unsupported`
    /// when the plugin does not export `tresor:plugin/static-credentials`.
    pub async fn set_password(&mut self, role: &GenRole, username: &str, password: &str) -> Result<(), Error> {
        let timeout = self.pool.timeout;
        let grace = self.pool.timeout + EPOCH_TICK * 4;
        let inst = self.inst.as_mut().expect("a checkout holds an instance");
        let Exports::Generator(_, Some(statics)) = &inst.exports else {
            return Err(Error::Unsupported(format!(
                "the plugin of mount `{}` cannot keep static roles: it does not export tresor:plugin/static-credentials",
                self.pool.mount
            )));
        };
        let wit_role = rotating_gen::Role {
            name: role.name.clone(),
            settings: role.settings.clone(),
        };
        self.healthy = false;
        inst.store.data_mut().begin_call(timeout);
        inst.store.set_epoch_deadline(1);
        let fut = statics.call_set_password(&mut inst.store, &wit_role, username, password);
        let result: CallResult<_> = tokio::time::timeout(grace, fut).await;
        self.pool.log.end_call();
        self.settle(result)
    }

    /// Read a secret.
    pub async fn get(&mut self, path: &str, version: Option<&str>) -> Result<Secret, Error> {
        let s = call!(self, Provider.tresor_plugin_provider, call_get(path, version))?;
        if s.version.is_empty() || s.version.len() > 256 {
            return Err(self.malformed("get returned an empty or oversized version"));
        }
        let metadata = self.metadata(s.metadata)?;
        Ok(Secret {
            value: SecretBytes::new(s.value),
            version: s.version,
            created_ms: s.created_ms,
            metadata,
            deletion_ms: s.deletion_ms,
            served_by: self.pool.mount.clone(),
        })
    }

    /// Write a new version; returns its version identifier.
    pub async fn put(
        &mut self,
        path: &str,
        value: &[u8],
        metadata: &Metadata,
        expected: Option<&str>,
    ) -> Result<String, Error> {
        let pairs: Vec<(String, String)> = metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let version = call!(
            self,
            Provider.tresor_plugin_provider,
            call_put(path, value, &pairs, expected)
        )?;
        if version.is_empty() || version.len() > 256 {
            return Err(self.malformed("put returned an empty or oversized version"));
        }
        Ok(version)
    }

    /// Delete a secret and all its versions.
    pub async fn delete(&mut self, path: &str) -> Result<(), Error> {
        call!(self, Provider.tresor_plugin_provider, call_delete(path))
    }

    /// Soft-delete or destroy versions.
    pub async fn delete_versions(&mut self, path: &str, versions: &[String], destroy: bool) -> Result<(), Error> {
        call!(
            self,
            Provider.tresor_plugin_provider,
            call_delete_versions(path, versions, destroy)
        )
    }

    /// Restore soft-deleted versions.
    pub async fn undelete_versions(&mut self, path: &str, versions: &[String]) -> Result<(), Error> {
        call!(
            self,
            Provider.tresor_plugin_provider,
            call_undelete_versions(path, versions)
        )
    }

    /// List the paths under `prefix`. Every answer must start with the prefix
    /// and be a well-formed path.
    pub async fn list(&mut self, prefix: &str) -> Result<Vec<String>, Error> {
        let paths = call!(self, Provider.tresor_plugin_provider, call_list_secrets(prefix))?;
        let bytes: usize = paths.iter().map(String::len).sum();
        if paths.len() > MAX_LIST_ENTRIES || bytes > MAX_LIST_BYTES {
            return Err(self.oversized(format!(
                "a LIST of {} entries and {bytes} bytes; a LIST answer may hold at most \
                 {MAX_LIST_ENTRIES} entries and {MAX_LIST_BYTES} bytes",
                paths.len()
            )));
        }
        if let Some(bad) = paths
            .iter()
            .find(|p| !p.starts_with(prefix) || crate::path::check(p).is_err())
        {
            let bad = bad.chars().take(80).collect::<String>();
            return Err(self.malformed(&format!(
                "list returned `{bad}`, which is not a valid path under `{prefix}`"
            )));
        }
        Ok(paths)
    }

    /// Describe every version of a secret.
    pub async fn versions(&mut self, path: &str) -> Result<Vec<VersionInfo>, Error> {
        let list = call!(self, Provider.tresor_plugin_provider, call_versions(path))?;
        let mut out = Vec::with_capacity(list.len());
        for v in list {
            if v.version.is_empty() {
                return Err(self.malformed("versions returned an empty version"));
            }
            let metadata = self.metadata(v.metadata)?;
            out.push(VersionInfo {
                version: v.version,
                created_ms: v.created_ms,
                deleted: v.deleted,
                destroyed: v.destroyed,
                deletion_ms: v.deletion_ms,
                metadata,
            });
        }
        Ok(out)
    }

    /// The settings of a secret (its own), or the mount's for the empty path.
    pub async fn settings(&mut self, path: &str) -> Result<SecretSettings, Error> {
        let s = call!(self, Provider.tresor_plugin_provider, call_get_settings(path))?;
        Ok(SecretSettings {
            max_versions: s.max_versions,
            cas_required: s.cas_required,
            delete_version_after_ms: s.delete_version_after_ms,
        })
    }

    /// Replace the settings of a secret, or the mount's for the empty path.
    pub async fn set_settings(&mut self, path: &str, settings: &SecretSettings) -> Result<(), Error> {
        let wit_settings = wit::Settings {
            max_versions: settings.max_versions,
            cas_required: settings.cas_required,
            delete_version_after_ms: settings.delete_version_after_ms,
        };
        call!(
            self,
            Provider.tresor_plugin_provider,
            call_set_settings(path, wit_settings)
        )
    }

    /// Check a role's settings (generator mounts, at start).
    pub async fn check_role(&mut self, role: &GenRole) -> Result<(), Error> {
        let role = role.to_wit();
        call!(self, Generator.tresor_plugin_generator, call_check_role(&role))
    }

    /// Issue a credential (generator mounts).
    pub async fn issue(&mut self, request: IssueRequest<'_>) -> Result<IssuedCredential, Error> {
        let wit_request = request.to_wit();
        let credential = call!(self, Generator.tresor_plugin_generator, call_issue(&wit_request))?;
        let handle_ok = !credential.revoke_handle.is_empty() && credential.revoke_handle.len() <= 1024;
        let issued = IssuedCredential {
            data: credential
                .data
                .into_iter()
                .map(|(k, v)| (k, SecretBytes::new(v.into_bytes())))
                .collect(),
            revoke_handle: credential.revoke_handle,
            ttl_seconds: credential.ttl_seconds,
            revocable: credential.revocable,
            renewable: credential.renewable,
        };
        if !handle_ok {
            return Err(self.malformed("issue returned an empty or oversized revoke handle"));
        }
        if issued.data.len() > 64 || issued.data.iter().any(|(k, _)| k.is_empty() || k.len() > 128) {
            return Err(self.malformed("issue returned more than 64 fields or an empty or oversized field name"));
        }
        Ok(issued)
    }

    /// Extend a credential; returns the TTL granted (generator mounts).
    pub async fn renew(
        &mut self,
        role: &GenRole,
        handle: &str,
        ttl_seconds: u64,
        expires_at_ms: u64,
    ) -> Result<u64, Error> {
        let role = role.to_wit();
        call!(
            self,
            Generator.tresor_plugin_generator,
            call_renew(&role, handle, ttl_seconds, expires_at_ms)
        )
    }

    /// Undo whatever `issue(request)` may have created upstream (generator
    /// mounts): the host lost track of that call before it recorded the lease.
    pub async fn abandon(&mut self, request: IssueRequest<'_>) -> Result<(), Error> {
        let wit_request = request.to_wit();
        call!(self, Generator.tresor_plugin_generator, call_abandon(&wit_request))
    }

    /// Revoke a credential (generator mounts).
    pub async fn revoke(&mut self, role: &GenRole, handle: &str) -> Result<(), Error> {
        let role = role.to_wit();
        call!(self, Generator.tresor_plugin_generator, call_revoke(&role, handle))
    }

    fn metadata(&mut self, pairs: Vec<(String, String)>) -> Result<Metadata, Error> {
        if pairs.iter().any(|(k, _)| k.is_empty()) {
            return Err(self.malformed("metadata with an empty key"));
        }
        let bytes: usize = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
        if pairs.len() > MAX_METADATA_PAIRS || bytes > MAX_METADATA_BYTES {
            return Err(self.oversized(format!(
                "{} metadata pairs of {bytes} bytes; a secret's metadata may hold at most \
                 {MAX_METADATA_PAIRS} pairs and {MAX_METADATA_BYTES} bytes",
                pairs.len()
            )));
        }
        Ok(pairs.into_iter().collect())
    }

    fn oversized(&mut self, detail: String) -> Error {
        self.healthy = false;
        Error::Plugin {
            mount: self.pool.mount.clone(),
            failure: PluginFailure::Oversized,
            detail,
        }
    }

    fn malformed(&mut self, detail: &str) -> Error {
        self.healthy = false;
        Error::Plugin {
            mount: self.pool.mount.clone(),
            failure: PluginFailure::Malformed,
            detail: detail.to_string(),
        }
    }

    /// Turn the outcome of a call into the host's error model; any failure of
    /// the sandbox itself marks the instance for disposal.
    fn settle<T>(&mut self, result: CallResult<T>) -> Result<T, Error> {
        let mount = self.pool.mount.clone();
        match result {
            Ok(Ok(Ok(v))) => {
                self.healthy = true;
                Ok(v)
            }
            Ok(Ok(Err(e))) => {
                self.healthy = true;
                Err(from_wit(e))
            }
            Ok(Err(trap)) => {
                self.healthy = false;
                let exceeded = self.inst.as_ref().is_some_and(|i| i.store.data().limiter.exceeded);
                let failure = if exceeded {
                    PluginFailure::MemoryLimit
                } else if trap.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
                    PluginFailure::Timeout
                } else {
                    PluginFailure::Trap
                };
                let detail = match failure {
                    PluginFailure::MemoryLimit => format!(
                        "the instance hit its memory cap of {} MiB",
                        self.pool.sandbox.memory_bytes >> 20
                    ),
                    PluginFailure::Timeout => format!(
                        "the call ran past its {} ms deadline and was interrupted",
                        self.pool.timeout.as_millis()
                    ),
                    _ => trap_summary(&trap),
                };
                tracing::warn!(mount, failure = %failure, "plugin instance failed and was discarded");
                Err(Error::Plugin { mount, failure, detail })
            }
            Err(_) => {
                self.healthy = false;
                let detail = format!(
                    "the call did not return within {} ms (blocked in a host call)",
                    self.pool.timeout.as_millis()
                );
                Err(Error::Plugin {
                    mount,
                    failure: PluginFailure::Timeout,
                    detail,
                })
            }
        }
    }
}

/// A generator role as the plugin sees it: its name and settings.
#[derive(Clone, Debug)]
pub struct GenRole {
    /// Role name.
    pub name: String,
    /// Plugin-specific settings (not secret).
    pub settings: Vec<(String, String)>,
}

impl GenRole {
    fn to_wit(&self) -> gen::Role {
        gen::Role {
            name: self.name.clone(),
            settings: self.settings.clone(),
        }
    }
}

/// What the host asks a generator for.
#[derive(Clone, Copy, Debug)]
pub struct IssueRequest<'a> {
    /// The role.
    pub role: &'a GenRole,
    /// The lease TTL, already capped.
    pub ttl_seconds: u64,
    /// The host's clock, ms since the epoch.
    pub now_ms: u64,
    /// When the lease ends, ms since the epoch.
    pub expires_at_ms: u64,
    /// The caller's display name.
    pub display_name: &'a str,
    /// The host's unique id of this issue (the lease id's random part);
    /// the plugin names what it creates after it, so `abandon` can find it.
    pub issue_id: &'a str,
}

impl IssueRequest<'_> {
    fn to_wit(self) -> gen::IssueRequest {
        gen::IssueRequest {
            role: self.role.to_wit(),
            ttl_seconds: self.ttl_seconds,
            now_ms: self.now_ms,
            expires_at_ms: self.expires_at_ms,
            display_name: self.display_name.to_string(),
            issue_id: self.issue_id.to_string(),
        }
    }
}

/// A credential a generator issued. Its fields are secret (zeroized on drop,
/// never printed by `Debug`).
pub struct IssuedCredential {
    /// The credential's fields.
    pub data: Vec<(String, SecretBytes)>,
    /// What `revoke` and `renew` need later (not secret).
    pub revoke_handle: String,
    /// The TTL the plugin granted.
    pub ttl_seconds: u64,
    /// Whether the upstream can end it early.
    pub revocable: bool,
    /// Whether its lifetime can be extended.
    pub renewable: bool,
}

impl std::fmt::Debug for IssuedCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCredential")
            .field("fields", &self.data.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("revoke_handle", &self.revoke_handle)
            .field("ttl_seconds", &self.ttl_seconds)
            .finish_non_exhaustive()
    }
}

/// The first line of a trap: what happened, without the guest's backtrace.
fn trap_summary(trap: &wasmtime::Error) -> String {
    match trap.downcast_ref::<Trap>() {
        Some(t) => format!("wasm trap: {t}"),
        None => trap
            .root_cause()
            .to_string()
            .lines()
            .next()
            .unwrap_or("unknown failure")
            .to_string(),
    }
}

fn wit_message(e: &wit::Error) -> &str {
    match e {
        wit::Error::NotFound(m)
        | wit::Error::InvalidInput(m)
        | wit::Error::Conflict(m)
        | wit::Error::Unavailable(m)
        | wit::Error::PermissionDenied(m)
        | wit::Error::Unsupported(m)
        | wit::Error::Internal(m) => m,
    }
}

/// A plugin-reported error, as the host's error type.
fn from_wit(e: wit::Error) -> Error {
    match e {
        wit::Error::NotFound(m) => Error::NotFound(m),
        wit::Error::InvalidInput(m) => Error::InvalidInput(m),
        wit::Error::Conflict(m) => Error::Conflict(m),
        wit::Error::Unavailable(m) => Error::Unavailable(m),
        wit::Error::PermissionDenied(m) => Error::UpstreamDenied(m),
        wit::Error::Unsupported(m) => Error::Unsupported(m),
        wit::Error::Internal(m) => Error::Internal(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether a mount's values can hold a key generation back is read off
    /// the component's imports: the `file` provider seals, `env` and the
    /// `postgres` generator do not.
    #[test]
    fn only_components_that_call_seal_import_it() {
        let cache = tempfile::tempdir().unwrap();
        let runtime = Runtime::new(cache.path().into()).unwrap();
        let load = |name: &str| {
            let wasm = crate::plugins::embedded(name).unwrap();
            super::super::compile::load_component(runtime.engine(), cache.path(), wasm).unwrap()
        };
        assert!(imports_seal(&runtime, &load("file")));
        assert!(!imports_seal(&runtime, &load("env")));
        assert!(!imports_seal(&runtime, &load("postgres")));
    }
}
