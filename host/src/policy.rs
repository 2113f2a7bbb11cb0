//! Cedar authorization of every access to a secret.
//!
//! The model is `policies/tresor.cedarschema` (embedded as [`SCHEMA`]):
//!
//! | Cedar                                   | Tresor                                   |
//! |-----------------------------------------|------------------------------------------|
//! | `Tresor::Principal::"<name>"`           | the authenticated client ([`Principal`]) |
//! | `Tresor::Group::"<group>"`              | a group the client belongs to            |
//! | `Tresor::Action::"read"` ... `"admin"`  | [`Action`]                               |
//! | `Tresor::Secret::"<mount>/<path>"`      | one secret ([`Resource::Secret`])        |
//! | `Tresor::Mount::"<mount>"`              | a whole mount ([`Resource::Mount`])      |
//! | `Tresor::Role::"<mount>/<role>"`        | a generator role ([`Resource::Role`])    |
//! | `context` (`Tresor::RequestContext`)    | [`RequestContext`]                       |
//!
//! The active policy set is validated against the schema (strict mode) and
//! swapped as a whole: a reload that fails to parse or validate leaves the
//! previous set in force. Decisions are default-deny; evaluation errors are
//! reported and never allow.

mod load;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use cedar_policy::{
    AuthorizationError, Authorizer, Context, Effect, Entities, Entity, EntityId, EntityTypeName, EntityUid, Request,
    RestrictedExpression, Schema, Validator,
};

use load::{Loaded, SourceFile};

/// The Cedar schema of the Tresor model (human-readable schema syntax).
pub const SCHEMA: &str = include_str!("../../policies/tresor.cedarschema");

/// Who is asking: the authenticated client.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Principal {
    /// Client name; the Cedar entity id (`Tresor::Principal::"<name>"`).
    pub name: String,
    /// Groups; each becomes a parent `Tresor::Group::"<group>"`.
    pub groups: Vec<String>,
    /// Attributes; Cedar entity tags (`principal.getTag("team")`).
    pub attributes: BTreeMap<String, String>,
}

impl Principal {
    /// A principal with no groups and no attributes.
    pub fn new(name: impl Into<String>) -> Self {
        Principal {
            name: name.into(),
            ..Default::default()
        }
    }
}

/// What the client wants to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Read,
    Write,
    Delete,
    List,
    Issue,
    Renew,
    Revoke,
    Rotate,
    Admin,
}

impl Action {
    /// Every action, in schema order.
    pub const ALL: [Action; 9] = [
        Action::Read,
        Action::Write,
        Action::Delete,
        Action::List,
        Action::Issue,
        Action::Renew,
        Action::Revoke,
        Action::Rotate,
        Action::Admin,
    ];

    /// The Cedar action id: `Tresor::Action::"<as_str>"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
            Action::Delete => "delete",
            Action::List => "list",
            Action::Issue => "issue",
            Action::Renew => "renew",
            Action::Revoke => "revoke",
            Action::Rotate => "rotate",
            Action::Admin => "admin",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An action name that is not one of [`Action::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown action `{0}`; use one of: read, write, delete, list, issue, renew, revoke, rotate, admin")]
pub struct UnknownAction(pub String);

impl FromStr for Action {
    type Err = UnknownAction;

    /// Parses the names printed by [`Action::as_str`] (ASCII case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownAction(s.to_owned()))
    }
}

/// What the client wants to do it to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource {
    /// One secret: `Tresor::Secret::"<mount>/<path>"`, child of its mount.
    Secret {
        mount: String,
        /// Relative to the mount, e.g. `app/db`.
        path: String,
        /// Plugin serving the mount.
        plugin: String,
        /// Secret metadata; Cedar entity tags (`resource.getTag("owner")`).
        /// Only needed when [`PolicyEngine::uses_resource_tags`] is true.
        tags: BTreeMap<String, String>,
    },
    /// A whole mount, e.g. for a LIST of the mount or of a prefix:
    /// `Tresor::Mount::"<mount>"`.
    Mount { mount: String, plugin: String },
    /// A role of a generator mount (dynamic secrets: issue, renew, revoke,
    /// lookup and list of its leases): `Tresor::Role::"<mount>/<role>"`,
    /// child of its mount.
    Role {
        mount: String,
        role: String,
        plugin: String,
    },
}

impl Resource {
    /// The Cedar entity id: `<mount>/<path>` for a secret, `<mount>` for a mount.
    pub fn entity_id(&self) -> String {
        match self {
            Resource::Secret { mount, path, .. } => format!("{mount}/{path}"),
            Resource::Mount { mount, .. } => mount.clone(),
            Resource::Role { mount, role, .. } => format!("{mount}/{role}"),
        }
    }
}

/// Facts about the request; Cedar `context`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestContext {
    /// Request time, unix seconds (`context.time`).
    pub time_unix: i64,
    /// Client address, or `"local"` (`context.source`).
    pub source: String,
    /// Client authenticated with a TLS client certificate (`context.mtls`).
    pub mtls: bool,
    /// `"http"`, `"cli"` or `"embed"` (`context.front_door`).
    pub front_door: &'static str,
    /// Secret version asked for, if any (`context.version`, optional).
    pub version: Option<String>,
    /// Lifetime asked for in seconds, if any (`context.ttl`, optional).
    pub ttl_seconds: Option<i64>,
    /// The lease a renew, revoke or lookup is about (`context.lease_id`, optional).
    pub lease_id: Option<String>,
}

impl RequestContext {
    /// A context stamped with the current time, no version and no ttl.
    pub fn now(source: impl Into<String>, mtls: bool, front_door: &'static str) -> Self {
        let time_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        RequestContext {
            time_unix,
            source: source.into(),
            mtls,
            front_door,
            version: None,
            ttl_seconds: None,
            lease_id: None,
        }
    }
}

/// The annotation of a `permit` that lets its principals read secrets past
/// their expiry: `@allow_expired("why")`.
pub const ALLOW_EXPIRED: &str = "allow_expired";

/// The answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    pub allowed: bool,
    /// Ids of the policies that determined the decision, sorted: the
    /// satisfied `permit`s when allowed, the satisfied `forbid`s when denied
    /// by a forbid, empty when denied because nothing permits. An id is the
    /// policy's `@id("...")` annotation, else `<file stem>:<index>`.
    pub policies: Vec<String>,
    /// Evaluation errors (`policy <id>: <error>`); a policy that errors is
    /// ignored, so errors never allow.
    pub errors: Vec<String>,
    /// Allowed by a `permit` annotated `@allow_expired`: a read of an
    /// expired secret is served (see [`crate::expiry`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allows_expired: bool,
}

impl Decision {
    fn refused(error: String) -> Self {
        Decision {
            allowed: false,
            policies: Vec::new(),
            errors: vec![error],
            allows_expired: false,
        }
    }
}

/// Why a policy set was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read {}: {source}; fix the file or its permissions (on a reload, the previous policy set stays active)", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file} does not parse as Cedar:\n{diagnostics}\nfix the policy and save again; on a reload, the previous policy set stays active")]
    Parse { file: String, diagnostics: String },
    #[error("the policies do not validate against the Tresor schema (policies/tresor.cedarschema):\n{diagnostics}\nfix the policy and save again; on a reload, the previous policy set stays active")]
    Validation { diagnostics: String },
    #[error("no *.cedar policy files in {}; add at least one (e.g. copy policies/admins.cedar from the Tresor sources)", dir.display())]
    NoPolicies { dir: PathBuf },
    #[error("{file} contains no policies; add a policy or delete the file (an empty file is refused so that a half-written save cannot silently drop rules; on a reload, the previous policy set stays active)")]
    EmptyFile { file: String },
    #[error("policy id `{id}` is used twice, by {first} and by {second}; give each policy a distinct @id (on a reload, the previous policy set stays active)")]
    DuplicateId { id: String, first: String, second: String },
    #[error("the built-in Cedar schema does not load (this is a bug in Tresor): {diagnostics}")]
    Schema { diagnostics: String },
    #[error(
        "this policy engine was built from text, not from a directory, so there is nothing to reload; use replace_text"
    )]
    NoDirectory,
}

/// The parsed schema and the Cedar names used on every request.
struct Model {
    validator: Validator,
    authorizer: Authorizer,
    principal_type: EntityTypeName,
    group_type: EntityTypeName,
    mount_type: EntityTypeName,
    secret_type: EntityTypeName,
    role_type: EntityTypeName,
    /// Indexed by `Action as usize`.
    actions: Vec<EntityUid>,
}

impl Model {
    fn new() -> Result<Self, PolicyError> {
        let schema_err = |e: &dyn fmt::Display| PolicyError::Schema {
            diagnostics: e.to_string(),
        };
        let (schema, warnings) = Schema::from_cedarschema_str(SCHEMA).map_err(|e| schema_err(&e))?;
        for w in warnings {
            tracing::warn!(warning = %w, "Cedar schema warning");
        }
        let ty = |name: &str| EntityTypeName::from_str(name).map_err(|e| schema_err(&e));
        let action_type = ty("Tresor::Action")?;
        let actions = Action::ALL
            .iter()
            .map(|a| EntityUid::from_type_name_and_id(action_type.clone(), EntityId::new(a.as_str())))
            .collect();
        Ok(Model {
            validator: Validator::new(schema),
            authorizer: Authorizer::new(),
            principal_type: ty("Tresor::Principal")?,
            group_type: ty("Tresor::Group")?,
            mount_type: ty("Tresor::Mount")?,
            secret_type: ty("Tresor::Secret")?,
            role_type: ty("Tresor::Role")?,
            actions,
        })
    }

    #[cfg(test)]
    fn schema(&self) -> &Schema {
        self.validator.schema()
    }

    fn uid(ty: &EntityTypeName, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
    }

    /// The request and entity store for one authorization.
    fn request(
        &self,
        principal: &Principal,
        action: Action,
        resource: &Resource,
        ctx: &RequestContext,
    ) -> Result<(Request, Entities), String> {
        let s = |v: &str| RestrictedExpression::new_string(v.to_owned());
        let tags = |m: &BTreeMap<String, String>| m.iter().map(|(k, v)| (k.clone(), s(v))).collect::<Vec<_>>();
        let mut entities = Vec::with_capacity(principal.groups.len() + 3);

        let groups: HashSet<&str> = principal.groups.iter().map(String::as_str).collect();
        let group_uids: Vec<EntityUid> = groups.iter().map(|g| Self::uid(&self.group_type, g)).collect();
        let principal_uid = Self::uid(&self.principal_type, &principal.name);
        entities.push(
            Entity::new_with_tags(
                principal_uid.clone(),
                [("name".to_owned(), s(&principal.name))],
                group_uids.iter().cloned(),
                tags(&principal.attributes),
            )
            .map_err(|e| format!("principal `{}`: {e}", principal.name))?,
        );
        entities.extend(group_uids.into_iter().map(Entity::with_uid));

        let resource_uid = match resource {
            Resource::Mount { mount, plugin } => {
                let uid = Self::uid(&self.mount_type, mount);
                entities.push(
                    Entity::new_with_tags(uid.clone(), [("plugin".to_owned(), s(plugin))], [], [])
                        .map_err(|e| format!("mount `{mount}`: {e}"))?,
                );
                uid
            }
            Resource::Secret {
                mount,
                path,
                plugin,
                tags: secret_tags,
            } => {
                let mount_uid = Self::uid(&self.mount_type, mount);
                let uid = Self::uid(&self.secret_type, &format!("{mount}/{path}"));
                entities.push(
                    Entity::new_with_tags(mount_uid.clone(), [("plugin".to_owned(), s(plugin))], [], [])
                        .map_err(|e| format!("mount `{mount}`: {e}"))?,
                );
                entities.push(
                    Entity::new_with_tags(
                        uid.clone(),
                        [
                            ("path".to_owned(), s(path)),
                            ("mount".to_owned(), s(mount)),
                            ("plugin".to_owned(), s(plugin)),
                        ],
                        [mount_uid],
                        tags(secret_tags),
                    )
                    .map_err(|e| format!("secret `{mount}/{path}`: {e}"))?,
                );
                uid
            }
            Resource::Role { mount, role, plugin } => {
                let mount_uid = Self::uid(&self.mount_type, mount);
                let uid = Self::uid(&self.role_type, &format!("{mount}/{role}"));
                entities.push(
                    Entity::new_with_tags(mount_uid.clone(), [("plugin".to_owned(), s(plugin))], [], [])
                        .map_err(|e| format!("mount `{mount}`: {e}"))?,
                );
                entities.push(
                    Entity::new(
                        uid.clone(),
                        [
                            ("name".to_owned(), s(role)),
                            ("mount".to_owned(), s(mount)),
                            ("plugin".to_owned(), s(plugin)),
                        ]
                        .into_iter()
                        .collect(),
                        [mount_uid].into_iter().collect(),
                    )
                    .map_err(|e| format!("role `{mount}/{role}`: {e}"))?,
                );
                uid
            }
        };
        // The entities and the request are built to the schema's shape by
        // construction (a test checks them against the schema), so skip the
        // per-request conformance checks: they would double the cost.
        let entities = Entities::from_entities(entities, None).map_err(|e| e.to_string())?;

        let mut pairs = vec![
            ("time".to_owned(), RestrictedExpression::new_long(ctx.time_unix)),
            ("source".to_owned(), s(&ctx.source)),
            ("mtls".to_owned(), RestrictedExpression::new_bool(ctx.mtls)),
            ("front_door".to_owned(), s(ctx.front_door)),
        ];
        if let Some(v) = &ctx.version {
            pairs.push(("version".to_owned(), s(v)));
        }
        if let Some(ttl) = ctx.ttl_seconds {
            pairs.push(("ttl".to_owned(), RestrictedExpression::new_long(ttl)));
        }
        if let Some(lease) = &ctx.lease_id {
            pairs.push(("lease_id".to_owned(), s(lease)));
        }
        let context = Context::from_pairs(pairs).map_err(|e| format!("context: {e}"))?;
        let request = Request::new(
            principal_uid,
            self.actions[action as usize].clone(),
            resource_uid,
            context,
            None,
        )
        .map_err(|e| format!("request: {e}"))?;
        Ok((request, entities))
    }
}

/// The active policy set, validated against the schema, swappable at runtime.
///
/// `Send + Sync`; share it as `Arc<PolicyEngine>`. [`authorize`](Self::authorize)
/// only takes a read lock long enough to clone an `Arc`, so it never waits
/// for a reload to parse and validate.
pub struct PolicyEngine {
    model: Model,
    /// Set by [`load_dir`](Self::load_dir); what [`reload`](Self::reload) re-reads.
    dir: Option<PathBuf>,
    active: RwLock<Arc<Loaded>>,
    /// Serializes reloads and replacements (not authorizations).
    update: Mutex<()>,
}

impl fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyEngine")
            .field("dir", &self.dir)
            .field("policies", &self.policy_ids())
            .finish()
    }
}

impl PolicyEngine {
    /// Load every `*.cedar` file in `dir` (sorted by name; not recursive;
    /// hidden files skipped) and validate them against the schema.
    pub fn load_dir(dir: &Path) -> Result<Self, PolicyError> {
        let model = Model::new()?;
        let files = load::read_dir(dir)?;
        let loaded = load::build(&model.validator, &files, load::fingerprint("dir", &files))?;
        log_loaded(&dir.display().to_string(), &loaded);
        Ok(Self::new(model, Some(dir.to_path_buf()), loaded))
    }

    /// Build from in-memory policy text (embedding, tests). `source_name`
    /// (e.g. `embedded.cedar`) names the text in diagnostics, and its stem
    /// prefixes the ids of policies without `@id`.
    pub fn from_text(source_name: &str, text: &str) -> Result<Self, PolicyError> {
        let model = Model::new()?;
        let files = [SourceFile::from_text(source_name, text)];
        let loaded = load::build(&model.validator, &files, load::fingerprint("text", &files))?;
        Ok(Self::new(model, None, loaded))
    }

    fn new(model: Model, dir: Option<PathBuf>, loaded: Loaded) -> Self {
        PolicyEngine {
            model,
            dir,
            active: RwLock::new(Arc::new(loaded)),
            update: Mutex::new(()),
        }
    }

    fn current(&self) -> Arc<Loaded> {
        Arc::clone(&self.active.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn install(&self, loaded: Loaded) {
        *self.active.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(loaded);
    }

    /// The directory given to [`load_dir`](Self::load_dir), if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Re-read the directory given to [`load_dir`](Self::load_dir).
    ///
    /// `Ok(true)`: the files changed and the new set is active.
    /// `Ok(false)`: the file names and contents are unchanged (hash compare).
    /// `Err`: the files could not be read, parsed or validated; the active
    /// set is kept. Since the active set is compared by content, a reload
    /// after [`replace_text`](Self::replace_text) installs the directory again.
    pub fn reload(&self) -> Result<bool, PolicyError> {
        let dir = self.dir.as_deref().ok_or(PolicyError::NoDirectory)?;
        let _guard = self.update.lock().unwrap_or_else(PoisonError::into_inner);
        let files = load::read_dir(dir)?;
        let fingerprint = load::fingerprint("dir", &files);
        if fingerprint == self.current().fingerprint {
            return Ok(false);
        }
        let loaded = load::build(&self.model.validator, &files, fingerprint)?;
        log_loaded(&dir.display().to_string(), &loaded);
        self.install(loaded);
        Ok(true)
    }

    /// Replace the active set with policy text (same validation as files;
    /// on error the active set is kept).
    pub fn replace_text(&self, source_name: &str, text: &str) -> Result<(), PolicyError> {
        let _guard = self.update.lock().unwrap_or_else(PoisonError::into_inner);
        let files = [SourceFile::from_text(source_name, text)];
        let loaded = load::build(&self.model.validator, &files, load::fingerprint("text", &files))?;
        log_loaded(source_name, &loaded);
        self.install(loaded);
        Ok(())
    }

    /// Decide. Default deny: allowed only if some `permit` is satisfied and
    /// no `forbid` is. Evaluation errors are reported in [`Decision::errors`]
    /// and never allow: an erroring `permit` is skipped, and an erroring
    /// `forbid` denies (fail closed; plain Cedar would skip it).
    pub fn authorize(
        &self,
        principal: &Principal,
        action: Action,
        resource: &Resource,
        ctx: &RequestContext,
    ) -> Decision {
        let (request, entities) = match self.model.request(principal, action, resource, ctx) {
            Ok(r) => r,
            Err(e) => return Decision::refused(format!("request not evaluated: {e}")),
        };
        let loaded = self.current();
        let response = self.model.authorizer.is_authorized(&request, &loaded.set, &entities);
        let diagnostics = response.diagnostics();
        let mut policies: Vec<String> = diagnostics.reason().map(|id| loaded.label(id)).collect();
        let mut errors = Vec::new();
        let mut failed_forbids = Vec::new();
        for AuthorizationError::PolicyEvaluationError(e) in diagnostics.errors() {
            let label = loaded.label(e.policy_id());
            errors.push(format!("policy {label}: {}", e.inner()));
            if loaded.set.policy(e.policy_id()).map(|p| p.effect()) == Some(Effect::Forbid) {
                failed_forbids.push(label);
            }
        }
        let mut allowed = response.decision() == cedar_policy::Decision::Allow;
        // Cedar skips a policy whose evaluation errors. For a `forbid` that
        // would let an error allow; fail closed instead.
        if allowed && !failed_forbids.is_empty() {
            allowed = false;
            errors.push(format!(
                "denied because forbid policies could not be evaluated: {}",
                failed_forbids.join(", ")
            ));
            policies = failed_forbids;
        }
        policies.sort();
        let allows_expired = allowed
            && diagnostics.reason().any(|id| {
                loaded
                    .set
                    .policy(id)
                    .and_then(|p| p.annotation(ALLOW_EXPIRED))
                    .is_some()
            });
        Decision {
            allowed,
            policies,
            errors,
            allows_expired,
        }
    }

    /// Same as [`authorize`](Self::authorize); for `tresor policy test`.
    pub fn explain(
        &self,
        principal: &Principal,
        action: Action,
        resource: &Resource,
        ctx: &RequestContext,
    ) -> Decision {
        self.authorize(principal, action, resource, ctx)
    }

    /// True when some active policy calls `hasTag`/`getTag` on anything other
    /// than `principal` (conservatively: on the resource). The host must then
    /// fill [`Resource::Secret::tags`] from the secret's metadata.
    pub fn uses_resource_tags(&self) -> bool {
        self.current().uses_resource_tags
    }

    /// Number of active policies.
    pub fn len(&self) -> usize {
        self.current().ordered_labels.len()
    }

    /// Always false for a loaded engine (empty sets are refused); for clippy.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ids of the active policies, in load order (files by name, then source order).
    pub fn policy_ids(&self) -> Vec<String> {
        self.current().ordered_labels.clone()
    }

    /// Validator warnings for the active set (it was accepted anyway).
    pub fn warnings(&self) -> Vec<String> {
        self.current().warnings.clone()
    }

    /// Spawn a task that calls [`reload`](Self::reload) every `interval`
    /// (first after one interval) and logs the outcome: `info` when a new set
    /// is active, `warn` with the diagnostics when a changed set is refused
    /// (once per distinct error, not on every tick). Must be called within a
    /// tokio runtime. Stop it with `JoinHandle::abort`.
    pub fn watch(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let engine = Arc::clone(self);
        tokio::spawn(async move {
            let interval = interval.max(Duration::from_millis(10));
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_error: Option<String> = None;
            loop {
                ticker.tick().await;
                let e = Arc::clone(&engine);
                let outcome = match tokio::task::spawn_blocking(move || e.reload()).await {
                    Ok(outcome) => outcome,
                    Err(join) => {
                        tracing::error!(error = %join, "policy reload task failed");
                        continue;
                    }
                };
                match outcome {
                    Ok(true) => last_error = None, // reload() logged the new set
                    Ok(false) => {}
                    Err(PolicyError::NoDirectory) => {
                        tracing::warn!("policy watch stopped: engine was not loaded from a directory");
                        return;
                    }
                    Err(err) => {
                        let msg = err.to_string();
                        if last_error.as_deref() != Some(msg.as_str()) {
                            tracing::warn!(
                                dir = %engine.dir.as_deref().unwrap_or(Path::new("")).display(),
                                "policy set refused, previous set stays active: {msg}"
                            );
                            last_error = Some(msg);
                        }
                    }
                }
            }
        })
    }
}

fn log_loaded(origin: &str, loaded: &Loaded) {
    tracing::info!(
        source = origin,
        policies = loaded.ordered_labels.len(),
        uses_resource_tags = loaded.uses_resource_tags,
        "policy set active"
    );
    for w in &loaded.warnings {
        tracing::warn!("policy warning: {w}");
    }
}
