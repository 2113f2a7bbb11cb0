//! Rotation, entered through the access path: a rotation is one operation
//! (action `rotate`), authorized by Cedar when a caller asks for it and by
//! the built-in rule `builtin:rotation-schedule` when its schedule does,
//! audited like any access, and done under the turn of the secret's writers.
//! The steps themselves (start, check, commit) are described in
//! [`crate::rotation`].

use tracing::Instrument;

use super::{Caller, Guard, Host, Mount, Op, Reply, Target, WriteOptions};
use crate::error::Error;
use crate::events::{Change, EventType};
use crate::policy::{Action, Principal, Resource};
use crate::rotation::{self, Label, RotationReceipt};
use crate::secret::{Metadata, Secret, SecretBytes};
use crate::state::{RotationRecord, RotationStage};

/// The rule recorded for rotations the schedule starts.
pub(super) const SCHEDULE_RULE: &str = "builtin:rotation-schedule";

/// Who asked for a rotation.
#[derive(Clone, Copy)]
enum Authority {
    /// A caller: Cedar decides.
    Caller,
    /// The schedule, for the record at this revision due at this time.
    Schedule { revision: u64 },
}

/// Who scheduled rotations are recorded as.
pub(crate) fn scheduler_caller() -> Caller {
    Caller {
        principal: Principal {
            name: "tresor:rotation-scheduler".into(),
            groups: Vec::new(),
            attributes: Default::default(),
        },
        source: "local".into(),
        mtls: false,
        front_door: crate::audit::FrontDoor::Host,
        request_id: None,
        token_accessor: None,
    }
}

/// One rotation under way: where, by whom, in which request.
struct Rotating<'a> {
    caller: &'a Caller,
    mount: &'a Mount,
    rel: &'a str,
    full: String,
    request_id: String,
}

impl Host {
    /// Rotate the secret at `path` (`mount/path`) now: make a new value by
    /// the `[[rotation]]` rule that covers it, have its check webhook accept
    /// it, and make it current; the value it replaces stays readable as
    /// version `previous`. Cedar decides action `rotate` on the secret.
    ///
    /// A secret no rule covers is refused ([`Error::InvalidInput`]); a
    /// refused check leaves the current value as it was
    /// ([`Error::RotationRefused`]).
    pub async fn rotate(&self, caller: &Caller, path: &str) -> Result<RotationReceipt, Error> {
        self.rotate_as(caller, path, Authority::Caller)
            .await?
            .ok_or_else(|| Error::Internal("a requested rotation was skipped".into()))
    }

    /// Run the rotation a schedule has due (the scheduler's entry); `None`
    /// when the record changed since it was read (another host or caller
    /// rotated it first).
    pub(crate) async fn rotate_due(&self, record: &RotationRecord) -> Result<Option<RotationReceipt>, Error> {
        let caller = scheduler_caller();
        self.rotate_as(
            &caller,
            &record.path,
            Authority::Schedule {
                revision: record.revision,
            },
        )
        .await
    }

    /// The rotation record of the secret at `path` (`mount/path`), if it has
    /// one: its schedule, versions and last failure (never a value). Cedar
    /// decides action `read` on the secret.
    pub async fn rotation_status(&self, caller: &Caller, path: &str) -> Result<Option<RotationRecord>, Error> {
        let table = self.table();
        let (mount, rel) = table.resolve(path, false)?;
        let target = Target {
            mount: &mount.name,
            path: rel,
            plugin: &mount.plugin,
        };
        let mut guard = Guard::open(&self.policy, &self.audit, caller, Action::Read, target);
        let resource = self.secret_resource(mount, rel).await;
        guard.authorize(&resource, &caller.context(Some("rotation".into())))?;
        let full = format!("{}/{rel}", mount.name);
        let result = self
            .rotations
            .state()
            .get_rotation(&full)
            .await
            .map_err(rotation::state_error);
        let mut record = guard.finish(result)?;
        if let Some(stage) = record.as_mut().and_then(|r| r.stage.as_mut()) {
            stage.pending_sealed.clear();
        }
        Ok(record)
    }

    /// Set the rotation policy of the secret at `path` (`mount/path`), as
    /// `rule` says (its `path` and `prefix` are ignored): the API's
    /// `PUT sys/rotation/<path>`. It replaces what the configuration's rules
    /// say for this secret until it is removed with
    /// [`remove_rotation`](Host::remove_rotation). Cedar decides action
    /// `rotate` on the secret.
    pub async fn set_rotation(
        &self,
        caller: &Caller,
        path: &str,
        mut rule: rotation::RotationRule,
    ) -> Result<RotationRecord, Error> {
        let table = self.table();
        let (mount, rel) = table.resolve(path, false)?;
        let full = format!("{}/{rel}", mount.name);
        let _turn = self.turn(mount, rel).await;
        let target = Target {
            mount: &mount.name,
            path: rel,
            plugin: &mount.plugin,
        };
        let mut guard = Guard::open(&self.policy, &self.audit, caller, Action::Rotate, target);
        let tags = self.latest_metadata(mount, rel).await.unwrap_or_default();
        let resource = Resource::Secret {
            mount: mount.name.clone(),
            path: rel.to_string(),
            plugin: mount.plugin.clone(),
            tags: tags.clone(),
        };
        guard.authorize(&resource, &caller.context(Some("rotation-policy".into())))?;
        let result = async {
            rule.path = Some(full.clone());
            rule.prefix = None;
            let names = self.events.webhook_names();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            rule.check(&names).map_err(Error::InvalidInput)?;
            let state = self.rotations.state();
            let stored = state.get_rotation(&full).await.map_err(rotation::state_error)?;
            if stored.as_ref().is_some_and(|r| r.stage.is_some()) {
                return Err(Error::Conflict(format!(
                    "a rotation of `{full}` is under way; set its policy once it has ended"
                )));
            }
            let mut record = stored
                .clone()
                .unwrap_or_else(|| RotationRecord::unscheduled(&full, rotation::SOURCE_API));
            record.source = rotation::SOURCE_API.into();
            record.period_ms = u64::MAX; // make `follow` restart the schedule
            rotation::follow(&mut record, &rule, &tags, rotation_now());
            record.revision = stored.as_ref().map_or(0, |r| r.revision + 1);
            let expected = stored.map(|r| r.revision);
            if !state
                .swap_rotation(&record, expected)
                .await
                .map_err(rotation::state_error)?
            {
                return Err(Error::Conflict(format!(
                    "the rotation record of `{full}` changed meanwhile; try again"
                )));
            }
            Ok(record)
        }
        .instrument(guard.span().clone())
        .await;
        guard.finish(result)
    }

    /// Remove the rotation policy the API set for the secret at `path`:
    /// the configuration's rules apply to it again (`DELETE
    /// sys/rotation/<path>`). Cedar decides action `rotate` on the secret.
    pub async fn remove_rotation(&self, caller: &Caller, path: &str) -> Result<(), Error> {
        let table = self.table();
        let (mount, rel) = table.resolve(path, false)?;
        let full = format!("{}/{rel}", mount.name);
        let _turn = self.turn(mount, rel).await;
        let target = Target {
            mount: &mount.name,
            path: rel,
            plugin: &mount.plugin,
        };
        let mut guard = Guard::open(&self.policy, &self.audit, caller, Action::Rotate, target);
        let resource = self.secret_resource(mount, rel).await;
        guard.authorize(&resource, &caller.context(Some("rotation-policy".into())))?;
        let result = async {
            let state = self.rotations.state();
            match state.get_rotation(&full).await.map_err(rotation::state_error)? {
                Some(r) if r.stage.is_some() => Err(Error::Conflict(format!(
                    "a rotation of `{full}` is under way; remove its policy once it has ended"
                ))),
                Some(r) if r.source == rotation::SOURCE_API => state
                    .delete_rotation(&full)
                    .await
                    .map_err(rotation::state_error)
                    .map(drop),
                _ => Err(Error::NotFound(format!(
                    "`{full}` has no rotation policy set through the API (the configuration's rules are \
                     changed in the configuration file)"
                ))),
            }
        }
        .instrument(guard.span().clone())
        .await;
        guard.finish(result)
    }

    async fn secret_resource(&self, mount: &Mount, rel: &str) -> Resource {
        let tags = if self.policy.uses_resource_tags() {
            self.latest_metadata(mount, rel).await.unwrap_or_default()
        } else {
            Metadata::new()
        };
        Resource::Secret {
            mount: mount.name.clone(),
            path: rel.to_string(),
            plugin: mount.plugin.clone(),
            tags,
        }
    }

    async fn rotate_as(
        &self,
        caller: &Caller,
        path: &str,
        authority: Authority,
    ) -> Result<Option<RotationReceipt>, Error> {
        let table = self.table();
        let (mount, rel) = table.resolve(path, false)?;
        let full = format!("{}/{rel}", mount.name);
        let _turn = self.turn(mount, rel).await;
        // The schedule's rotation goes ahead only if nothing changed the
        // record since the scheduler read it.
        if let Authority::Schedule { revision } = authority {
            let stored = self
                .rotations
                .state()
                .get_rotation(&full)
                .await
                .map_err(rotation::state_error)?;
            if stored.map(|r| r.revision) != Some(revision) {
                return Ok(None);
            }
        }
        let target = Target {
            mount: &mount.name,
            path: rel,
            plugin: &mount.plugin,
        };
        let mut guard = Guard::open(&self.policy, &self.audit, caller, Action::Rotate, target);
        let tags = self
            .latest_metadata(mount, rel)
            .instrument(guard.span().clone())
            .await?;
        match authority {
            Authority::Caller => {
                let resource = Resource::Secret {
                    mount: mount.name.clone(),
                    path: rel.to_string(),
                    plugin: mount.plugin.clone(),
                    tags: tags.clone(),
                };
                guard.authorize(&resource, &caller.context(None))?;
            }
            Authority::Schedule { .. } => guard.allow_builtin(SCHEDULE_RULE)?,
        }
        let rotating = Rotating {
            caller,
            mount,
            rel,
            full,
            request_id: guard.request_id().to_string(),
        };
        let result = self
            .rotate_steps(&rotating, &tags, authority)
            .instrument(guard.span().clone())
            .await;
        if let Err(e) = &result {
            tracing::warn!(secret = %rotating.full, error = %e, "rotation failed; the current value is unchanged");
        }
        guard.finish(result).map(Some)
    }

    /// Start (or resume), check and commit one rotation.
    async fn rotate_steps(
        &self,
        r: &Rotating<'_>,
        tags: &Metadata,
        authority: Authority,
    ) -> Result<RotationReceipt, Error> {
        let now = rotation_now();
        let Some((record, stored)) = self.rotations.record_for(&r.full, tags, now).await? else {
            return Err(Error::InvalidInput(format!(
                "no rotation rule covers `{}`: add a [[rotation]] rule with path = \"{}\" (or a prefix of it) \
                 to the configuration",
                r.full, r.full
            )));
        };
        let record = match record.stage {
            Some(_) => record, // a rotation a stopped host left: resume it
            None => self.start_rotation(r, record, stored, authority, now).await?,
        };
        let stage = record.stage.clone().expect("a started rotation has a stage");
        if let Some(hook) = record.check_webhook.clone() {
            let check = self
                .events
                .check(
                    &hook,
                    self.change(r, EventType::RotationCheck, vec![Label::PENDING.into()]),
                )
                .await;
            if let Err(why) = check {
                let reason = format!("webhook `{hook}` did not accept the pending value: {why}");
                return Err(self.fail_rotation(r, record, reason, true).await);
            }
        }
        self.commit_rotation(r, record, stage, tags).await
    }

    /// Step 1: make the pending value and record it, sealed.
    async fn start_rotation(
        &self,
        r: &Rotating<'_>,
        record: RotationRecord,
        stored: bool,
        authority: Authority,
        now: u64,
    ) -> Result<RotationRecord, Error> {
        let current = match self.fetch(r.mount, r.rel, None).await {
            Ok(secret) => Some(secret),
            Err(Error::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        let made = rotation::maker_of(&record)?.make()?;
        let value = rotation::new_value(
            current.as_ref().map(|s| s.value.expose()),
            record.field.as_deref(),
            &made,
        )?;
        let due_ms = match authority {
            Authority::Schedule { .. } => record.next_due_ms,
            Authority::Caller => now,
        };
        let mut next = record.clone();
        next.revision = record.revision + 1;
        // Should this host stop mid-rotation, the scheduler resumes it then.
        next.next_due_ms = now + rotation::RESUME_AFTER_MS;
        next.stage = Some(RotationStage {
            due_ms,
            started_ms: now,
            base_version: current.map(|s| s.version),
            pending_sealed: self.rotations.seal(&r.full, &value)?,
            request_id: r.request_id.clone(),
        });
        let state = self.rotations.state();
        let expected = stored.then_some(record.revision);
        if !state
            .swap_rotation(&next, expected)
            .await
            .map_err(rotation::state_error)?
        {
            return Err(Error::Conflict(format!(
                "another rotation of `{}` started at the same moment; it goes on, try again later",
                r.full
            )));
        }
        self.events
            .publish(self.change(r, EventType::RotationStarted, vec![Label::PENDING.into()]))
            .await;
        Ok(next)
    }

    /// Step 3: write the pending value as the new current version, and
    /// record the versions and the next due time.
    async fn commit_rotation(
        &self,
        r: &Rotating<'_>,
        record: RotationRecord,
        stage: RotationStage,
        tags: &Metadata,
    ) -> Result<RotationReceipt, Error> {
        let value = SecretBytes::new(self.rotations.unseal(&r.full, &stage.pending_sealed)?.to_vec());
        let caps = r.mount.pool.capabilities();
        // A new value: a `ttl` gives it a fresh expiry, a fixed `expires_at`
        // was the old value's.
        let mut metadata = tags.clone();
        crate::expiry::stamp(&mut metadata, &Metadata::new(), rotation_now())?;
        let options = WriteOptions {
            metadata,
            expected_version: caps
                .check_and_set
                .then(|| stage.base_version.clone().unwrap_or_default()),
            inherit_metadata: false,
        };
        let op = Op::Write {
            value: &value,
            options: &options,
        };
        let written = self.serve(r.caller, r.mount, r.rel, &op).await;
        if let Some(cache) = &r.mount.cache {
            cache.invalidate(r.rel);
        }
        let version = match written {
            Ok(Reply::Written(receipt)) => {
                self.record_expiry(r.mount, r.rel, &receipt).await;
                self.publish_change(
                    r.caller,
                    r.mount,
                    r.rel,
                    &op,
                    &Reply::Written(receipt.clone()),
                    &r.request_id,
                )
                .await;
                receipt.version
            }
            Ok(_) => return Err(super::mismatch("a rotation's write answers a version")),
            // Written before a restart by this very rotation, or changed by
            // someone else meanwhile: the latest value tells.
            Err(Error::Conflict(_)) => match self.fetch(r.mount, r.rel, None).await {
                Ok(latest) if latest.value == value => latest.version,
                _ => {
                    let reason = "the secret was written while it was being rotated; that write is kept".to_string();
                    return Err(self.fail_rotation(r, record, reason, false).await);
                }
            },
            Err(e) => {
                // Kept staged, tried again after a pause.
                let mut retry = record.clone();
                retry.revision += 1;
                retry.failures = record.failures.saturating_add(1);
                retry.last_error = Some(e.to_string());
                retry.next_due_ms = rotation_now() + rotation::retry_after_ms(retry.failures, record.period_ms);
                let _ = self
                    .rotations
                    .state()
                    .swap_rotation(&retry, Some(record.revision))
                    .await;
                return Err(e);
            }
        };
        let now = rotation_now();
        let mut done = record.clone();
        done.revision = record.revision + 1;
        done.stage = None;
        done.previous_version = stage.base_version.clone();
        done.current_version = Some(version.clone());
        done.last_rotated_ms = Some(now);
        done.last_error = None;
        done.failures = 0;
        done.next_due_ms = rotation::next_due(record.period_ms, stage.due_ms, now);
        let state = self.rotations.state();
        if !state
            .swap_rotation(&done, Some(record.revision))
            .await
            .map_err(rotation::state_error)?
        {
            tracing::warn!(secret = %r.full, "the rotation record changed during the rotation; its schedule may need a look");
        }
        self.events
            .publish(self.change(r, EventType::RotationSucceeded, vec![version.clone()]))
            .await;
        Ok(RotationReceipt {
            path: r.full.clone(),
            version,
            previous_version: stage.base_version,
            next_due_ms: (done.next_due_ms != u64::MAX).then_some(done.next_due_ms),
        })
    }

    /// End a rotation without a new current value: drop the pending value,
    /// record why, schedule a retry (after `retry` failures it backs off),
    /// and tell subscribers.
    async fn fail_rotation(&self, r: &Rotating<'_>, record: RotationRecord, reason: String, retry: bool) -> Error {
        let now = rotation_now();
        let mut failed = record.clone();
        failed.revision = record.revision + 1;
        failed.stage = None;
        failed.failures = record.failures.saturating_add(1);
        failed.last_error = Some(reason.clone());
        failed.next_due_ms = match (retry, record.period_ms) {
            (_, 0) => u64::MAX,
            (true, period) => now + rotation::retry_after_ms(failed.failures, period),
            (false, period) => now + period,
        };
        if let Err(e) = self
            .rotations
            .state()
            .swap_rotation(&failed, Some(record.revision))
            .await
        {
            tracing::warn!(secret = %r.full, error = %e, "could not record a failed rotation");
        }
        self.events
            .publish(self.change(r, EventType::RotationFailed, Vec::new()))
            .await;
        Error::RotationRefused(reason)
    }

    /// After a write: start the schedule of a secret a rule covers (the
    /// first rotation one period later).
    pub(super) async fn schedule_rotation(&self, mount: &Mount, rel: &str, tags: &Metadata) {
        if !self.rotations.has_rules() {
            return;
        }
        let full = format!("{}/{rel}", mount.name);
        if let Err(e) = self.rotations.schedule(&full, tags, rotation_now()).await {
            tracing::warn!(secret = %full, error = %e, "could not start the secret's rotation schedule");
        }
    }

    /// Start the scheduler of rotations (one host at a time among hosts
    /// sharing a state store runs it). `tresor server` starts it; an
    /// embedder that wants scheduled rotations calls this once on its
    /// shared host. It stops when the host is dropped.
    pub fn start_schedules(self: &std::sync::Arc<Self>) {
        let mut slot = self
            ._rotation_scheduler
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(crate::rotation::scheduler::start(std::sync::Arc::downgrade(self)));
        }
        drop(slot);
        let mut watch = self
            ._expiry_watch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if watch.is_none() {
            *watch = Some(crate::expiry::start(std::sync::Arc::downgrade(self)));
        }
        drop(watch);
        self.start_key_job();
        let host = self.clone();
        tokio::spawn(async move { host.schedule_static_roles().await });
    }

    fn change<'a>(&self, r: &'a Rotating<'_>, event_type: EventType, versions: Vec<String>) -> Change<'a> {
        Change {
            event_type,
            mount: &r.mount.name,
            path: r.rel,
            versions,
            request_id: &r.request_id,
            principal: &r.caller.principal.name,
        }
    }

    /// A read of version label `label` of a secret (see [`Label`]): the
    /// version it stands for, or, for `pending`, the pending value itself.
    pub(super) async fn labelled(&self, mount: &Mount, rel: &str, label: Label) -> Result<LabelTarget, Error> {
        let full = format!("{}/{rel}", mount.name);
        if label == Label::Current {
            return Ok(LabelTarget::Version(None));
        }
        let record = self
            .rotations
            .state()
            .get_rotation(&full)
            .await
            .map_err(rotation::state_error)?;
        match label {
            Label::Previous => record
                .and_then(|r| r.previous_version)
                .map(|v| LabelTarget::Version(Some(v)))
                .ok_or_else(|| Error::NotFound(format!("`{full}` has no previous version: it has not been rotated"))),
            _ => {
                let stage = record.and_then(|r| r.stage).ok_or_else(|| {
                    Error::NotFound(format!("`{full}` has no pending value: no rotation is under way"))
                })?;
                let value = self.rotations.unseal(&full, &stage.pending_sealed)?;
                Ok(LabelTarget::Pending(Secret {
                    value: SecretBytes::new(value.to_vec()),
                    version: Label::PENDING.into(),
                    created_ms: stage.started_ms,
                    metadata: Metadata::new(),
                    deletion_ms: 0,
                    served_by: mount.name.clone(),
                }))
            }
        }
    }
}

/// What a version label stands for.
pub(super) enum LabelTarget {
    /// A version of the provider's (`None`: the latest).
    Version(Option<String>),
    /// The pending value of a rotation under way.
    Pending(Secret),
}

fn rotation_now() -> u64 {
    crate::secret::now_ms()
}
