//! Static roles, entered through the access path: accounts that already
//! exist upstream (a PostgreSQL role the application logs in as), whose
//! password the host changes every period through the generator plugin's
//! `static-credentials` export, and serves as
//! `GET /v1/<mount>/static-creds/<role>` (Cedar `read` on
//! `Secret::"<mount>/static-creds/<role>"`).
//!
//! A static role's schedule is a rotation record (see [`crate::rotation`])
//! of source `static`: its versions are the accounts' usernames, its
//! sealed credential the current password. A rotation:
//!
//! 1. picks the account to change: with two, the one *not* in use; with
//!    one, that one (Vault's way). It makes a password and records it,
//!    sealed, as the pending stage (`rotation/started`);
//! 2. has the plugin set that password (again, with the same password,
//!    when a crash interrupted it);
//! 3. makes that account and password current (`rotation/succeeded`).
//!
//! With two accounts the credential a client fetched keeps working until
//! the rotation after next: a full period to fetch the new one.

use tracing::Instrument;

use super::rotate::{scheduler_caller, SCHEDULE_RULE};
use super::{Caller, Guard, Host, Target};
use crate::error::Error;
use crate::events::{Change, EventType};
use crate::lease::{GeneratorMount, StaticRole};
use crate::policy::{Action, Resource};
use crate::rotation::{self, ValueMaker};
use crate::secret::SecretBytes;
use crate::state::{RotationRecord, RotationStage};

/// `source` of a static role's rotation record.
pub const SOURCE_STATIC: &str = "static";

/// The current credential of a static role.
pub struct StaticCredential {
    /// The account to log in as.
    pub username: String,
    /// Its password.
    pub password: SecretBytes,
    /// When it was set, ms since the Unix epoch.
    pub last_rotated_ms: u64,
    /// How often it changes, ms.
    pub period_ms: u64,
    /// When it changes next, ms since the Unix epoch.
    pub next_rotation_ms: u64,
}

fn static_path(mount: &str, role: &str) -> String {
    format!("{mount}/static-creds/{role}")
}

impl Host {
    /// The current username and password of static role `role` of the
    /// generator mount `mount`. Cedar decides action `read` on
    /// `Secret::"<mount>/static-creds/<role>"`.
    pub async fn static_credential(&self, caller: &Caller, mount: &str, role: &str) -> Result<StaticCredential, Error> {
        let generators = self.leases.mounts.load_full();
        let (gen, _) = static_role(&generators, mount, role)?;
        let rel = format!("static-creds/{role}");
        let target = Target {
            mount,
            path: &rel,
            plugin: &gen.plugin,
        };
        let mut guard = Guard::open(&self.policy, &self.audit, caller, Action::Read, target);
        let resource = Resource::Secret {
            mount: mount.to_string(),
            path: rel.clone(),
            plugin: gen.plugin.clone(),
            tags: Default::default(),
        };
        guard.authorize(&resource, &caller.context(None))?;
        let full = static_path(mount, role);
        let result = async {
            let record = self
                .rotations
                .state()
                .get_rotation(&full)
                .await
                .map_err(rotation::state_error)?;
            let (Some(record), true) = (&record, record.as_ref().is_some_and(|r| r.sealed_credential.is_some())) else {
                return Err(Error::Unavailable(format!(
                    "static role `{mount}/{role}` has no password yet: its first rotation is under way \
                     (see the host log if this lasts); try again in a moment"
                )));
            };
            let sealed = record.sealed_credential.as_deref().unwrap_or_default();
            Ok(StaticCredential {
                username: record.current_version.clone().unwrap_or_default(),
                password: SecretBytes::new(self.rotations.unseal(&full, sealed)?.to_vec()),
                last_rotated_ms: record.last_rotated_ms.unwrap_or(0),
                period_ms: record.period_ms,
                next_rotation_ms: record.next_due_ms,
            })
        }
        .instrument(guard.span().clone())
        .await;
        guard.finish(result)
    }

    /// Give every static role without a record one, due now: its first
    /// rotation sets a password the host knows. A changed period applies
    /// from the next rotation.
    pub(crate) async fn schedule_static_roles(&self) {
        let generators = self.leases.mounts.load_full();
        let state = self.rotations.state();
        for (mount, gen) in generators.iter() {
            for (name, role) in &gen.static_roles {
                let full = static_path(mount, name);
                let maker = ValueMaker::Password {
                    length: role.password_length,
                    charset: "alphanumeric".into(),
                };
                let result = match state.get_rotation(&full).await {
                    Ok(Some(record)) if record.period_ms == role.period_ms => Ok(true),
                    Ok(Some(record)) => {
                        let mut changed = record.clone();
                        changed.revision += 1;
                        changed.period_ms = role.period_ms;
                        state.swap_rotation(&changed, Some(record.revision)).await
                    }
                    Ok(None) => {
                        let mut record = RotationRecord::unscheduled(&full, SOURCE_STATIC);
                        record.period_ms = role.period_ms;
                        record.next_due_ms = crate::secret::now_ms();
                        record.maker = serde_json::to_string(&maker).expect("makers serialize");
                        state.swap_rotation(&record, None).await
                    }
                    Err(e) => Err(e),
                };
                if let Err(e) = result {
                    tracing::warn!(static_role = %full, error = %e, "could not schedule the static role's rotation");
                }
            }
        }
    }

    /// Run the due rotation of a static role (the scheduler's entry);
    /// `None` when the record changed since it was read.
    pub(crate) async fn rotate_static_due(&self, record: &RotationRecord) -> Result<Option<()>, Error> {
        let Some((mount, role)) = record
            .path
            .split_once("/static-creds/")
            .map(|(m, r)| (m.to_string(), r.to_string()))
        else {
            return Err(Error::Internal(format!(
                "`{}` is not a static role's record",
                record.path
            )));
        };
        let generators = self.leases.mounts.load_full();
        let (gen, static_role) = static_role(&generators, &mount, &role)?;
        let rel = format!("static-creds/{role}");
        let caller = scheduler_caller();
        let target = Target {
            mount: &mount,
            path: &rel,
            plugin: &gen.plugin,
        };
        let mut guard = Guard::open(&self.policy, &self.audit, &caller, Action::Rotate, target);
        guard.allow_builtin(SCHEDULE_RULE)?;
        let request_id = guard.request_id().to_string();
        let steps = StaticRotation {
            host: self,
            caller: &caller,
            mount: &mount,
            rel: &rel,
            gen,
            role: static_role,
            request_id: &request_id,
        };
        let result = steps.run(record.clone()).instrument(guard.span().clone()).await;
        if let Err(e) = &result {
            tracing::warn!(static_role = %record.path, error = %e, "static role rotation failed; the current password is unchanged");
        }
        guard.finish(result)
    }
}

/// The static role `role` of generator mount `mount`.
fn static_role<'a>(
    generators: &'a std::collections::BTreeMap<String, std::sync::Arc<GeneratorMount>>,
    mount: &str,
    role: &str,
) -> Result<(&'a GeneratorMount, &'a StaticRole), Error> {
    let gen = generators.get(mount).ok_or_else(|| Error::UnknownMount {
        path: format!("{mount}/static-creds/{role}"),
        mounts: generators.keys().cloned().collect(),
    })?;
    let static_role = gen.static_roles.get(role).ok_or_else(|| {
        Error::NotFound(format!(
            "mount `{mount}` has no static role `{role}`; its static roles are {:?}",
            gen.static_roles.keys().collect::<Vec<_>>()
        ))
    })?;
    Ok((gen, static_role))
}

/// One rotation of a static role under way.
struct StaticRotation<'a> {
    host: &'a Host,
    caller: &'a Caller,
    mount: &'a str,
    rel: &'a str,
    gen: &'a GeneratorMount,
    role: &'a StaticRole,
    request_id: &'a str,
}

impl StaticRotation<'_> {
    fn full(&self) -> String {
        format!("{}/{}", self.mount, self.rel)
    }

    async fn run(&self, record: RotationRecord) -> Result<Option<()>, Error> {
        let record = match record.stage {
            Some(_) => record, // interrupted: set the same password again
            None => match self.start(record).await? {
                Some(started) => started,
                None => return Ok(None),
            },
        };
        let stage = record.stage.clone().expect("a started rotation has a stage");
        let username = stage.base_version.clone().unwrap_or_default();
        let password = self.host.rotations.unseal(&self.full(), &stage.pending_sealed)?;
        let password = String::from_utf8(password.to_vec())
            .map_err(|_| Error::Internal("a static role's pending password is not text".into()))?;
        let password = zeroize::Zeroizing::new(password);
        let set = async {
            let mut checkout = self.gen.pool.checkout().await?;
            checkout
                .set_password(&self.role.plugin_role, &username, &password)
                .await
        }
        .await;
        if let Err(e) = set {
            return Err(self.fail(record, e).await);
        }
        self.commit(record, stage, username).await.map(Some)
    }

    /// Step 1: the account to change and its new password, recorded sealed.
    async fn start(&self, record: RotationRecord) -> Result<Option<RotationRecord>, Error> {
        let now = crate::secret::now_ms();
        let usernames = &self.role.usernames;
        let username = match (&record.current_version, usernames.as_slice()) {
            (Some(current), [a, b]) if current == a => b.clone(),
            (Some(_), [a, _]) => a.clone(),
            (None, [a, ..]) => a.clone(),
            (_, [only]) => only.clone(),
            _ => return Err(Error::Internal("a static role without accounts".into())),
        };
        let made = rotation::maker_of(&record)?.make()?;
        let mut next = record.clone();
        next.revision = record.revision + 1;
        next.next_due_ms = now + rotation::RESUME_AFTER_MS;
        next.stage = Some(RotationStage {
            due_ms: record.next_due_ms,
            started_ms: now,
            base_version: Some(username),
            pending_sealed: self.host.rotations.seal(&self.full(), made.as_bytes())?,
            request_id: self.request_id.to_string(),
        });
        if !self
            .host
            .rotations
            .state()
            .swap_rotation(&next, Some(record.revision))
            .await
            .map_err(rotation::state_error)?
        {
            return Ok(None);
        }
        self.publish(EventType::RotationStarted, Vec::new()).await;
        Ok(Some(next))
    }

    /// Step 3: the changed account and its password are current.
    async fn commit(&self, record: RotationRecord, stage: RotationStage, username: String) -> Result<(), Error> {
        let now = crate::secret::now_ms();
        let mut done = record.clone();
        done.revision = record.revision + 1;
        done.stage = None;
        done.previous_version = record.current_version.clone();
        done.current_version = Some(username.clone());
        done.sealed_credential = Some(stage.pending_sealed.clone());
        done.last_rotated_ms = Some(now);
        done.last_error = None;
        done.failures = 0;
        done.next_due_ms = rotation::next_due(record.period_ms, stage.due_ms, now);
        if !self
            .host
            .rotations
            .state()
            .swap_rotation(&done, Some(record.revision))
            .await
            .map_err(rotation::state_error)?
        {
            return Err(Error::Conflict(format!(
                "the record of `{}` changed while its rotation ran; the next one resumes it",
                self.full()
            )));
        }
        self.publish(EventType::RotationSucceeded, vec![username]).await;
        Ok(())
    }

    /// The plugin failed: keep the stage (the same password is set again
    /// after a pause) and say so.
    async fn fail(&self, record: RotationRecord, e: Error) -> Error {
        let mut retry = record.clone();
        retry.revision = record.revision + 1;
        retry.failures = record.failures.saturating_add(1);
        retry.last_error = Some(e.to_string());
        retry.next_due_ms = crate::secret::now_ms() + rotation::retry_after_ms(retry.failures, record.period_ms);
        let _ = self
            .host
            .rotations
            .state()
            .swap_rotation(&retry, Some(record.revision))
            .await;
        self.publish(EventType::RotationFailed, Vec::new()).await;
        e
    }

    async fn publish(&self, event_type: EventType, versions: Vec<String>) {
        self.host
            .events
            .publish(Change {
                event_type,
                mount: self.mount,
                path: self.rel,
                versions,
                request_id: self.request_id,
                principal: &self.caller.principal.name,
            })
            .await;
    }
}
