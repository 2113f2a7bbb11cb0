//! The access path. Every front door (embedding API, CLI, HTTP) ends up in
//! [`Host::access`], which reads top to bottom:
//!
//! 1. resolve the mount and check the path;
//! 2. open the audit span;
//! 3. resolve the resource's attributes (its metadata tags, when the active
//!    policies look at tags: then the secret is fetched first and its value is
//!    only released if the decision allows it);
//! 4. ask Cedar — for every access, cache hits included;
//! 5. on deny: audit and return a typed error, nothing else happens;
//! 6. on allow: write the audit request entry (fail closed), serve from the
//!    cache or the plugin sandbox, write the audit response entry (fail
//!    closed), return.

mod chain;
mod expire;
mod guard;
mod leases;
pub(crate) mod rekey;
mod rotate;
mod settings;
pub mod static_roles;
mod update;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::Instrument;

pub(crate) use guard::{Guard, Target};
pub use guard::{RefusalReason, RefusedAuthentication};
pub use update::Update;

use crate::audit::AuditLog;
pub use crate::audit::FrontDoor;
use crate::cache::ReadCache;
use crate::error::Error;
use crate::locks::PathLocks;
use crate::mounts::MountTable;
use crate::path;
use crate::policy::{Action, PolicyEngine, Principal, RequestContext, Resource};
use crate::runtime::MountPool;
use crate::secret::{Capabilities, Metadata, Secret, SecretBytes, SecretSettings, VersionInfo};

/// An authenticated caller: who it is and how it reached the host.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The Cedar principal (name, groups, attributes).
    pub principal: Principal,
    /// The client's address, or "local".
    pub source: String,
    /// Whether the client authenticated with a TLS client certificate.
    pub mtls: bool,
    /// The front door used.
    pub front_door: FrontDoor,
    /// The front door's id of this request (the HTTP API's `request_id`),
    /// carried into the audit log; `None` lets the host make one.
    pub request_id: Option<String>,
    /// Accessor of the token the caller authenticated with, if any; leases
    /// issued to it are revoked when the token is.
    pub token_accessor: Option<String>,
}

impl Caller {
    /// The Cedar request context of this caller's access, now.
    fn context(&self, version: Option<String>) -> RequestContext {
        RequestContext {
            time_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
            source: self.source.clone(),
            mtls: self.mtls,
            front_door: self.front_door.as_str(),
            version,
            ttl_seconds: None,
            lease_id: None,
        }
    }

    /// A caller of the embedding API, already authenticated by the platform.
    pub fn embedded(principal: Principal) -> Caller {
        Caller {
            principal,
            source: "local".into(),
            mtls: false,
            front_door: FrontDoor::Embed,
            request_id: None,
            token_accessor: None,
        }
    }
}

/// Options of a write.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// Metadata of the new version (policies see it as resource tags).
    pub metadata: Metadata,
    /// Check-and-set: write only if the current version is this one (`""`
    /// means the secret must not exist yet).
    pub expected_version: Option<String>,
    /// Carry the latest version's metadata into the new one (entries in
    /// `metadata` override it), as Vault keeps `custom_metadata` per secret.
    /// Policy decides on the metadata the new version will have; the caller
    /// needs no `read` permission for it.
    pub inherit_metadata: bool,
}

/// What a write produced.
#[derive(Clone, Debug)]
pub struct WriteReceipt {
    /// The new version.
    pub version: String,
    /// The metadata the new version carries.
    pub metadata: Metadata,
}

/// One mount: its plugin's instances and its optional cache.
pub(crate) struct Mount {
    pub(crate) name: String,
    pub(crate) plugin: String,
    /// The plugin's sha256 and language, for the catalog.
    pub(crate) info: crate::catalog::PluginInfo,
    pub(crate) pool: Arc<MountPool>,
    pub(crate) cache: Option<ReadCache>,
}

/// A running Tresor host: mounts, policies and audit, behind one access path.
///
/// Build one with [`Host::start`](crate::Host::start) from a [`Config`](crate::Config),
/// then call [`read`](Host::read), [`write`](Host::write), [`list`](Host::list) … with a
/// [`Caller`] your platform has authenticated. Every call is authorized by the
/// active Cedar policies and audited.
pub struct Host {
    /// The provider mounts and chains in effect (replaced whole on reload).
    pub(crate) mounts: arc_swap::ArcSwap<MountTable>,
    pub(crate) policy: Arc<PolicyEngine>,
    pub(crate) audit: Arc<AuditLog>,
    /// Writers of the same secret take turns (see [`crate::locks`]).
    pub(crate) write_locks: PathLocks,
    /// Generator mounts and their leases (dynamic secrets).
    pub(crate) leases: Arc<crate::lease::Leases>,
    pub(crate) _policy_watch: Option<tokio::task::JoinHandle<()>>,
    pub(crate) _sweeper: Option<tokio::task::JoinHandle<()>>,
    pub(crate) _checkpoints: Option<tokio::task::JoinHandle<()>>,
    /// This host among those sharing its state store.
    pub(crate) member: crate::state::Member,
    pub(crate) _heartbeat: Option<tokio::task::JoinHandle<()>>,
    /// What starting mounts after the host's own start needs (reloads).
    pub(crate) reloader: crate::reload::Reloader,
    /// Change events, for subscribers.
    pub(crate) events: Arc<crate::events::EventBus>,
    /// Rotation rules and records.
    pub(crate) rotations: crate::rotation::Rotations,
    /// The rotation scheduler, once [`Host::start_schedules`] started it.
    pub(crate) _rotation_scheduler: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The key generations values are sealed under.
    pub(crate) keyring: Arc<crate::keys::Keyring>,
    /// The keyring refresh and reseal job, once started (see [`rekey`]).
    pub(crate) _reseal: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// How long before an expiry `expiry/near` is sent, in ms.
    pub(crate) expiry_warn_ms: u64,
    /// The expiry watch, once [`Host::start_schedules`] started it.
    pub(crate) _expiry_watch: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(w) = &self._policy_watch {
            w.abort();
        }
        if let Some(w) = &self._sweeper {
            w.abort();
        }
        if let Some(w) = &self._checkpoints {
            w.abort();
        }
        if let Some(w) = &self._heartbeat {
            w.abort();
        }
        if let Some(w) = self
            ._rotation_scheduler
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            w.abort();
        }
        for job in [&self._reseal, &self._expiry_watch] {
            if let Some(w) = job.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
                w.abort();
            }
        }
        if let Err(e) = self.audit.checkpoint() {
            tracing::warn!(error = %e, "could not sync and checkpoint the audit log on shutdown");
        }
    }
}

/// What an access asks for.
enum Op<'a> {
    Read {
        version: Option<&'a str>,
    },
    Write {
        value: &'a SecretBytes,
        options: &'a WriteOptions,
    },
    Delete,
    DeleteVersions {
        versions: &'a [String],
        destroy: bool,
    },
    Undelete {
        versions: &'a [String],
    },
    List,
    Versions,
    Settings,
    SetSettings {
        settings: &'a SecretSettings,
    },
}

impl Op<'_> {
    fn action(&self) -> Action {
        match self {
            Op::Read { .. } | Op::Versions | Op::Settings => Action::Read,
            Op::Write { .. } | Op::Undelete { .. } | Op::SetSettings { .. } => Action::Write,
            Op::Delete | Op::DeleteVersions { .. } => Action::Delete,
            Op::List => Action::List,
        }
    }

    fn mutates(&self) -> bool {
        !matches!(self, Op::Read { .. } | Op::List | Op::Versions | Op::Settings)
    }
}

/// What an access answers.
enum Reply {
    Secret(Secret),
    Written(WriteReceipt),
    Done,
    Paths(Vec<String>),
    Versions(Vec<VersionInfo>),
    Settings(SecretSettings),
}

fn mismatch(what: &str) -> Error {
    Error::Internal(format!("access path answered the wrong shape ({what})"))
}

static REQUEST_SEQ: AtomicU64 = AtomicU64::new(0);

/// A request id for operations whose front door gave none: the process,
/// the time and a sequence number.
pub(crate) fn request_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{:x}-{:x}-{:x}",
        std::process::id(),
        nanos,
        REQUEST_SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

impl Host {
    /// Read the latest version of `path` (`mount/relative/path`), or `version`.
    pub async fn read(&self, caller: &Caller, path: &str, version: Option<&str>) -> Result<Secret, Error> {
        match self.access(caller, path, Op::Read { version }).await? {
            Reply::Secret(s) => Ok(s),
            _ => Err(mismatch("read answers a secret")),
        }
    }

    /// Write a new version of `path` and say what was written (version and metadata).
    pub async fn write_receipt(
        &self,
        caller: &Caller,
        path: &str,
        value: &SecretBytes,
        options: &WriteOptions,
    ) -> Result<WriteReceipt, Error> {
        match self.access(caller, path, Op::Write { value, options }).await? {
            Reply::Written(w) => Ok(w),
            _ => Err(mismatch("write answers a version")),
        }
    }

    /// Write a new version of `path`; returns the new version identifier.
    pub async fn write(
        &self,
        caller: &Caller,
        path: &str,
        value: &SecretBytes,
        options: &WriteOptions,
    ) -> Result<String, Error> {
        match self.access(caller, path, Op::Write { value, options }).await? {
            Reply::Written(w) => Ok(w.version),
            _ => Err(mismatch("write answers a version")),
        }
    }

    /// Delete `path` and all its versions.
    pub async fn delete(&self, caller: &Caller, path: &str) -> Result<(), Error> {
        self.access(caller, path, Op::Delete).await.map(|_| ())
    }

    /// Soft-delete (or with `destroy`, erase for good) versions of `path`.
    pub async fn delete_versions(
        &self,
        caller: &Caller,
        path: &str,
        versions: &[String],
        destroy: bool,
    ) -> Result<(), Error> {
        self.access(caller, path, Op::DeleteVersions { versions, destroy })
            .await
            .map(|_| ())
    }

    /// Restore soft-deleted versions of `path`.
    pub async fn undelete_versions(&self, caller: &Caller, path: &str, versions: &[String]) -> Result<(), Error> {
        self.access(caller, path, Op::Undelete { versions }).await.map(|_| ())
    }

    /// List the secrets under `prefix` (`mount/` or `mount/some/prefix/`)
    /// that the caller may read, as paths relative to the mount.
    pub async fn list(&self, caller: &Caller, prefix: &str) -> Result<Vec<String>, Error> {
        match self.access(caller, prefix, Op::List).await? {
            Reply::Paths(p) => Ok(p),
            _ => Err(mismatch("list answers paths")),
        }
    }

    /// Describe the versions of `path`, oldest first.
    pub async fn versions(&self, caller: &Caller, path: &str) -> Result<Vec<VersionInfo>, Error> {
        match self.access(caller, path, Op::Versions).await? {
            Reply::Versions(v) => Ok(v),
            _ => Err(mismatch("versions answers versions")),
        }
    }

    /// The active policy engine (to reload or replace policies at runtime).
    pub fn policy(&self) -> &Arc<PolicyEngine> {
        &self.policy
    }

    /// The mounts and what their providers support.
    pub fn mounts(&self) -> Vec<(String, String, Capabilities)> {
        let table = self.table();
        let mut all: Vec<(String, String, Capabilities)> = table
            .providers
            .values()
            .map(|m| (m.name.clone(), m.plugin.clone(), m.pool.capabilities()))
            .collect();
        all.extend(
            table
                .chains
                .keys()
                .map(|name| (name.clone(), "chain".to_string(), table.chain_capabilities(name))),
        );
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// The one access path (see the module docs).
    async fn access(&self, caller: &Caller, target: &str, op: Op<'_>) -> Result<Reply, Error> {
        // A fallback chain asks its members, each access authorized and
        // audited as itself (see `chain`).
        // The mounts in effect now; this access keeps them until it ends.
        let table = self.table();
        let (mount_name, rel) = path::split(target);
        if let Some(members) = table.chains.get(mount_name) {
            return self.access_chain(caller, mount_name, members, rel, op).await;
        }
        // 1. Mount and path.
        let (mount, rel) = table.resolve(target, matches!(op, Op::List))?;
        // Writers of one secret take turns from here to the response, so the
        // metadata policy decides on is the metadata that gets written.
        let _turn = if op.mutates() {
            Some(self.turn(mount, rel).await)
        } else {
            None
        };
        self.access_in_turn(caller, mount, rel, op).await
    }

    /// The mount table in effect now (a snapshot: a reload does not change it).
    pub(crate) fn table(&self) -> Arc<MountTable> {
        self.mounts.load_full()
    }

    /// Wait for the turn of the writers of `rel` in `mount`.
    async fn turn(&self, mount: &Mount, rel: &str) -> tokio::sync::MutexGuard<'_, ()> {
        self.write_locks.lock(&format!("{}/{rel}", mount.name)).await
    }

    /// Steps 2 to 6 of the access path, for a caller that holds the turn
    /// of `rel` when `op` changes it.
    async fn access_in_turn(&self, caller: &Caller, mount: &Mount, rel: &str, op: Op<'_>) -> Result<Reply, Error> {
        let action = op.action();

        // 2. The audit record and span, open for the whole access.
        let target = Target {
            mount: &mount.name,
            path: rel,
            plugin: &mount.plugin,
        };
        let mut guard = Guard::open(&self.policy, &self.audit, caller, action, target);

        // 3. The resource and its attributes.
        let mut prefetched: Option<Result<Secret, Error>> = None;
        let mut inherited: Option<Metadata> = None;
        let tags: Metadata = match &op {
            Op::Write { options, .. } if options.inherit_metadata => {
                let mut metadata = self
                    .latest_metadata(mount, rel)
                    .instrument(guard.span().clone())
                    .await?;
                metadata.extend(options.metadata.clone());
                crate::expiry::stamp(&mut metadata, &options.metadata, crate::lease::now_ms())?;
                inherited = Some(metadata.clone());
                metadata
            }
            Op::Write { options, .. } => {
                let mut metadata = options.metadata.clone();
                crate::expiry::stamp(&mut metadata, &options.metadata, crate::lease::now_ms())?;
                if metadata != options.metadata {
                    inherited = Some(metadata.clone());
                }
                metadata
            }
            Op::List => Metadata::new(),
            // A read fetches the secret it decides on; the value is released
            // only if the decision allows it.
            Op::Read { version } if self.policy.uses_resource_tags() => {
                let fetched = self.fetch(mount, rel, *version).instrument(guard.span().clone()).await;
                let tags = fetched.as_ref().map(|s| s.metadata.clone()).unwrap_or_default();
                prefetched = Some(fetched);
                tags
            }
            // Other operations need only the metadata, not the value.
            _ if self.policy.uses_resource_tags() => self
                .latest_metadata(mount, rel)
                .instrument(guard.span().clone())
                .await
                .unwrap_or_default(),
            _ => Metadata::new(),
        };
        let resource = if matches!(op, Op::List) && rel.is_empty() {
            Resource::Mount {
                mount: mount.name.clone(),
                plugin: mount.plugin.clone(),
            }
        } else {
            Resource::Secret {
                mount: mount.name.clone(),
                path: rel.to_string(),
                plugin: mount.plugin.clone(),
                tags,
            }
        };
        let ctx = caller.context(match &op {
            Op::Read { version } => version.map(str::to_string),
            _ => None,
        });

        // 4-6. Cedar decides, for every access. Denied: audited, typed error,
        // a prefetched value is dropped (zeroized). Allowed: the request entry
        // is written before anything happens (fail closed).
        let decision = match guard.authorize(&resource, &ctx) {
            Ok(decision) => decision,
            Err(e) => {
                drop(prefetched);
                return Err(e);
            }
        };

        // Serve it (a write that inherits metadata writes what was decided on)...
        let merged;
        let op = match (op, inherited) {
            (Op::Write { value, options }, Some(metadata)) => {
                merged = WriteOptions {
                    metadata,
                    expected_version: options.expected_version.clone(),
                    inherit_metadata: false,
                };
                Op::Write {
                    value,
                    options: &merged,
                }
            }
            (op, _) => op,
        };
        let result = match (prefetched, &op) {
            (Some(fetched), Op::Read { .. }) => fetched.map(Reply::Secret),
            _ => {
                self.serve(caller, mount, rel, &op)
                    .instrument(guard.span().clone())
                    .await
            }
        };
        let result = match &op {
            Op::Read { .. } => Self::unless_expired(mount, rel, &decision, result),
            _ => result,
        };
        if op.mutates() {
            if let Some(cache) = &mount.cache {
                cache.invalidate(rel);
            }
        }

        // ...audit the response (a read whose response cannot be audited is
        // refused), and tell subscribers what changed.
        let request_id = guard.request_id().to_string();
        let reply = guard.finish(result)?;
        self.publish_change(caller, mount, rel, &op, &reply, &request_id).await;
        if let Reply::Written(receipt) = &reply {
            self.record_expiry(mount, rel, receipt).await;
            self.schedule_rotation(mount, rel, &receipt.metadata).await;
        }
        if matches!(op, Op::Delete) {
            self.forget_expiry(mount, rel).await;
        }
        Ok(reply)
    }

    /// The change event of a successful, audited operation, if it changed anything.
    async fn publish_change(
        &self,
        caller: &Caller,
        mount: &Mount,
        rel: &str,
        op: &Op<'_>,
        reply: &Reply,
        request_id: &str,
    ) {
        use crate::events::EventType;
        let (event_type, versions) = match (op, reply) {
            (Op::Write { .. }, Reply::Written(w)) => (EventType::Write, vec![w.version.clone()]),
            (Op::Delete, _) => (EventType::Delete, Vec::new()),
            (
                Op::DeleteVersions {
                    versions,
                    destroy: false,
                },
                _,
            ) => (EventType::DeleteVersions, versions.to_vec()),
            (
                Op::DeleteVersions {
                    versions,
                    destroy: true,
                },
                _,
            ) => (EventType::Destroy, versions.to_vec()),
            (Op::Undelete { versions }, _) => (EventType::Undelete, versions.to_vec()),
            (Op::SetSettings { .. }, _) => (EventType::SettingsWrite, Vec::new()),
            _ => return,
        };
        self.events
            .publish(crate::events::Change {
                event_type,
                mount: &mount.name,
                path: rel,
                versions,
                request_id,
                principal: &caller.principal.name,
            })
            .await;
    }

    /// Read a secret from the cache or the plugin (no policy here: callers
    /// of `fetch` have authorized, or authorize before releasing the value).
    async fn fetch(&self, mount: &Mount, rel: &str, version: Option<&str>) -> Result<Secret, Error> {
        // A rotation's version label stands for a version (or the pending value).
        let labelled;
        let version = match version.and_then(crate::rotation::Label::parse) {
            None => version,
            Some(label) => match self.labelled(mount, rel, label).await? {
                rotate::LabelTarget::Pending(secret) => return Ok(secret),
                rotate::LabelTarget::Version(v) => {
                    labelled = v;
                    labelled.as_deref()
                }
            },
        };
        if let Some(hit) = mount.cache.as_ref().and_then(|c| c.get(rel, version)) {
            return Ok(hit);
        }
        let secret = mount.pool.checkout().await?.get(rel, version).await?;
        if let Some(cache) = &mount.cache {
            cache.insert(rel, version, secret.clone());
        }
        Ok(secret)
    }

    /// The metadata of the latest version of a secret (deleted or not), empty
    /// when it does not exist. Only metadata crosses: no value is read.
    async fn latest_metadata(&self, mount: &Mount, rel: &str) -> Result<Metadata, Error> {
        match mount.pool.checkout().await?.versions(rel).await {
            Ok(mut versions) => Ok(versions.pop().map(|v| v.metadata).unwrap_or_default()),
            Err(Error::NotFound(_)) => Ok(Metadata::new()),
            // A provider without version history: its current secret's metadata.
            Err(Error::Unsupported(_)) => match self.fetch(mount, rel, None).await {
                Ok(s) => Ok(s.metadata.clone()),
                Err(Error::NotFound(_)) => Ok(Metadata::new()),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// Carry out an authorized operation.
    async fn serve(&self, caller: &Caller, mount: &Mount, rel: &str, op: &Op<'_>) -> Result<Reply, Error> {
        let caps = mount.pool.capabilities();
        let unsupported = |what: &str| {
            Error::Unsupported(format!(
                "mount `{}` ({} plugin) does not support {what}",
                mount.name, mount.plugin
            ))
        };
        match op {
            Op::Read { version } => self.fetch(mount, rel, *version).await.map(Reply::Secret),
            Op::Write { value, options } => {
                if !caps.writable {
                    return Err(unsupported("writes"));
                }
                if options.expected_version.is_some() && !caps.check_and_set {
                    return Err(unsupported("check-and-set writes"));
                }
                let mut lease = mount.pool.checkout().await?;
                lease
                    .put(
                        rel,
                        value.expose(),
                        &options.metadata,
                        options.expected_version.as_deref(),
                    )
                    .await
                    .map(|version| {
                        Reply::Written(WriteReceipt {
                            version,
                            metadata: options.metadata.clone(),
                        })
                    })
            }
            Op::Delete => {
                if !caps.deletable {
                    return Err(unsupported("deletes"));
                }
                mount.pool.checkout().await?.delete(rel).await.map(|_| Reply::Done)
            }
            Op::DeleteVersions { versions, destroy } => {
                if !caps.soft_delete {
                    return Err(unsupported("deleting individual versions"));
                }
                mount
                    .pool
                    .checkout()
                    .await?
                    .delete_versions(rel, versions, *destroy)
                    .await
                    .map(|_| Reply::Done)
            }
            Op::Undelete { versions } => {
                if !caps.soft_delete {
                    return Err(unsupported("undelete"));
                }
                mount
                    .pool
                    .checkout()
                    .await?
                    .undelete_versions(rel, versions)
                    .await
                    .map(|_| Reply::Done)
            }
            Op::Versions => mount.pool.checkout().await?.versions(rel).await.map(Reply::Versions),
            Op::Settings => mount.pool.checkout().await?.settings(rel).await.map(Reply::Settings),
            Op::SetSettings { settings } => mount
                .pool
                .checkout()
                .await?
                .set_settings(rel, settings)
                .await
                .map(|()| Reply::Done),
            Op::List => {
                if !caps.listable {
                    return Err(unsupported("listing"));
                }
                let paths = mount.pool.checkout().await?.list(rel).await?;
                Ok(Reply::Paths(self.readable(caller, mount, paths).await))
            }
        }
    }

    /// Keep only the listed paths the caller may read.
    /// When the active policies look at tags, each entry's metadata is read
    /// first (one provider call per entry), so a tag-based `forbid` hides the
    /// name as well as the value; an entry whose metadata cannot be read is
    /// left out (fail closed).
    async fn readable(&self, caller: &Caller, mount: &Mount, paths: Vec<String>) -> Vec<String> {
        let ctx = caller.context(None);
        let tags_matter = self.policy.uses_resource_tags();
        let mut out = Vec::with_capacity(paths.len());
        for path in paths {
            let tags = if tags_matter {
                match self.latest_metadata(mount, &path).await {
                    Ok(tags) => tags,
                    Err(_) => continue,
                }
            } else {
                Metadata::new()
            };
            let resource = Resource::Secret {
                mount: mount.name.clone(),
                path: path.clone(),
                plugin: mount.plugin.clone(),
                tags,
            };
            if self
                .policy
                .authorize(&caller.principal, Action::Read, &resource, &ctx)
                .allowed
            {
                out.push(path);
            }
        }
        out
    }
}

/// The turn a mount's settings changes take: not a path any secret can
/// have (paths hold no NUL).
const BUILTIN_MOUNT_TURN: &str = "\0settings";

/// The plugin name recorded for operations the host serves itself.
const BUILTIN: &str = "builtin";

impl Host {
    /// Authorize and audit an administrative operation that is not a secret
    /// access (creating, looking up or revoking tokens, ...): Cedar decides
    /// action `admin` on `Tresor::Mount::"<area>"` (e.g. `auth`), the
    /// decision and the outcome are audited like an access (with
    /// `operation`, e.g. `token/create`, as the path), and `op` runs only
    /// when allowed.
    pub async fn admin<T, F, Fut>(&self, caller: &Caller, area: &str, operation: &str, op: F) -> Result<T, Error>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let target = Target {
            mount: area,
            path: operation,
            plugin: BUILTIN,
        };
        let mut guard = Guard::open(&self.policy, &self.audit, caller, Action::Admin, target);
        let resource = Resource::Mount {
            mount: area.to_string(),
            plugin: BUILTIN.to_string(),
        };
        let ctx = RequestContext::now(caller.source.clone(), caller.mtls, caller.front_door.as_str());
        guard.authorize(&resource, &ctx)?;
        let result = op().instrument(guard.span().clone()).await;
        guard.finish(result)
    }
}

impl Host {
    /// The host state store (leases, tokens): embedded, or PostgreSQL.
    pub fn state(&self) -> &crate::state::StateStore {
        self.leases.state()
    }

    /// This host's id among the hosts sharing its state store.
    pub fn member_id(&self) -> &str {
        &self.member.id
    }

    /// The live hosts sharing this host's state store, and the singleton
    /// jobs each leads. Authorized as action `admin` on `Mount::"sys"`.
    pub async fn members(&self, caller: &Caller) -> Result<Vec<crate::state::Member>, Error> {
        let state = self.state().clone();
        self.admin(caller, "sys", "members/read", || async move {
            crate::state::members::live(&state, crate::lease::now_ms())
                .await
                .map_err(|e| Error::Unavailable(e.to_string()))
        })
        .await
    }

    /// Record a request that a front door refused before it had a caller
    /// (no credential, or a bad token), as Vault audits failed logins: one
    /// `denied` audit entry and one span, never the presented token.
    pub fn audit_refused_authentication(&self, refusal: &RefusedAuthentication<'_>) -> Result<(), Error> {
        guard::audit_refusal(&self.audit, refusal)
    }
}
