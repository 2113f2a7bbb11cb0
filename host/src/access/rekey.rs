//! Master key rotation, entered through the access path: rotating (action
//! `admin` on `Mount::"sys"`, audited as `keys/rotate`) adds a generation to
//! the keyring (see [`crate::keys::keyring`]) and starts a reseal pass. New
//! values are sealed under the new generation at once.
//!
//! The key job runs on every host, every [`REFRESH`]:
//!
//! 1. it loads the stored keyring, so a generation another host added (or
//!    retired) is in use here within one refresh;
//! 2. once a pass is [`GRACE`] old (every live host seals under the new
//!    generation by then), it reseals the values of this host's mounts,
//!    secret by secret in sorted order, each under the turn of the
//!    secret's writers, and records how far it got in the state store, so
//!    a host killed mid-pass resumes where it stopped;
//! 3. when every live host has finished without a value left behind, it
//!    retires the older generations: their keys are deleted from the store.
//!
//! Reads and writes carry on throughout: a value is readable under its old
//! generation until it is resealed, and under the new one after.

use std::sync::Arc;
use std::time::Duration;

use super::{Caller, Host};
use crate::error::{Error, StartupError};
use crate::keys::{Keyring, KeyringRecord};
use crate::lease::now_ms;
use crate::runtime::Sealing;
use crate::state::{HostReseal, MountReseal, ResealProgress, StateError, StateStore};

/// How often every host reloads the keyring and works on a reseal pass.
pub const REFRESH: Duration = Duration::from_secs(1);
/// How long after a rotation the reseal starts: long enough for every
/// live host to have loaded the new generation (several refreshes).
pub const GRACE: Duration = Duration::from_secs(3);
/// A pass records how far it got after this many secrets.
const SAVE_EVERY: u64 = 64;
/// The name the rotation records' pending values are resealed under.
const PENDING_ROTATIONS: &str = "tresor:rotation";

/// The key generations and the reseal, as `tresor operator key-status` shows them.
#[derive(Clone, Debug, serde::Serialize)]
pub struct KeyStatus {
    /// The generation new values are sealed under.
    pub current: u32,
    /// Every generation, oldest first.
    pub generations: Vec<GenerationStatus>,
    /// The latest reseal pass, if any.
    pub reseal: Option<ResealProgress>,
    /// Values this host sealed under the current generation since it
    /// started (Vault's `encryptions`).
    pub encryptions: u64,
}

/// One key generation, without its key.
#[derive(Clone, Debug, serde::Serialize)]
pub struct GenerationStatus {
    /// 0 is the master key itself.
    pub generation: u32,
    /// When it was added, ms since the Unix epoch (0 for generation 0).
    pub created_ms: u64,
    /// When it was retired.
    pub retired_ms: Option<u64>,
}

/// Load the generations other hosts (or this one, before a restart) added.
pub(crate) async fn load_keyring(store: &StateStore, keyring: &Keyring) -> Result<(), StartupError> {
    let stored = store
        .keyring()
        .await
        .map_err(|e| StartupError::Key(format!("reading the keyring: {e}")))?;
    if let Some(record) = stored {
        keyring.load(&record).map_err(|e| StartupError::Key(e.to_string()))?;
    }
    Ok(())
}

fn unavailable(e: StateError) -> Error {
    Error::StateUnavailable(e.to_string())
}

impl Host {
    /// Rotate the master key: add a key generation that every new value is
    /// sealed under from now on, and move the values already stored to it
    /// in the background while the host keeps serving. The older
    /// generations are retired once nothing uses them. Watch it with
    /// [`Host::key_status`]. Authorized as action `admin` on
    /// `Mount::"sys"` and audited as `keys/rotate`.
    pub async fn rotate_master_key(self: &Arc<Self>, caller: &Caller) -> Result<KeyStatus, Error> {
        let status = self
            .admin(caller, "sys", "keys/rotate", || self.add_generation())
            .await?;
        self.start_key_job();
        Ok(status)
    }

    /// The key generations and how far the reseal after the latest
    /// rotation is. Authorized as action `admin` on `Mount::"sys"`.
    pub async fn key_status(&self, caller: &Caller) -> Result<KeyStatus, Error> {
        self.admin(caller, "sys", "keys/status", || self.key_status_now()).await
    }

    /// Start the key job (see the module docs) if it is not running.
    pub fn start_key_job(self: &Arc<Self>) {
        let mut slot = self._reseal.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.as_ref().is_some_and(|job| !job.is_finished()) {
            return;
        }
        let host = Arc::downgrade(self);
        *slot = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFRESH).await;
                let Some(host) = host.upgrade() else { return };
                if let Err(e) = host.key_job_step().await {
                    tracing::warn!(error = %e, "the key job will try again");
                }
            }
        }));
    }

    async fn key_status_now(&self) -> Result<KeyStatus, Error> {
        let state = self.state();
        let record = state
            .keyring()
            .await
            .map_err(unavailable)?
            .unwrap_or_else(KeyringRecord::initial);
        Ok(KeyStatus {
            current: record.current,
            generations: record
                .generations
                .iter()
                .map(|g| GenerationStatus {
                    generation: g.generation,
                    created_ms: g.created_ms,
                    retired_ms: g.retired_ms,
                })
                .collect(),
            reseal: state.reseal_progress().await.map_err(unavailable)?,
            encryptions: self.keyring.sealed_under_current(),
        })
    }

    async fn add_generation(&self) -> Result<KeyStatus, Error> {
        let state = self.state();
        let added = loop {
            let old = state.keyring().await.map_err(unavailable)?;
            let base = old.clone().unwrap_or_else(KeyringRecord::initial);
            let new = self
                .keyring
                .with_new_generation(&base, now_ms())
                .map_err(|e| Error::Internal(e.to_string()))?;
            if state.swap_keyring(old.as_ref(), &new).await.map_err(unavailable)? {
                break new;
            }
        };
        self.keyring.load(&added).map_err(|e| Error::Internal(e.to_string()))?;
        let pass = ResealProgress {
            target: added.current,
            started_ms: now_ms(),
            ..ResealProgress::default()
        };
        loop {
            let old = state.reseal_progress().await.map_err(unavailable)?;
            if state
                .swap_reseal_progress(old.as_ref(), &pass)
                .await
                .map_err(unavailable)?
            {
                break;
            }
        }
        tracing::info!(
            generation = added.current,
            "master key rotated: new values are sealed under the new key generation; stored ones are being resealed"
        );
        self.key_status_now().await
    }

    /// One round of the key job.
    async fn key_job_step(&self) -> Result<(), Error> {
        let state = self.state();
        if let Some(record) = state.keyring().await.map_err(unavailable)? {
            self.keyring.load(&record).map_err(|e| Error::Internal(e.to_string()))?;
        }
        let Some(pass) = state.reseal_progress().await.map_err(unavailable)? else {
            return Ok(());
        };
        if pass.finished_ms.is_some() || pass.target != self.keyring.current() {
            return Ok(());
        }
        if now_ms() < pass.started_ms.saturating_add(GRACE.as_millis() as u64) {
            return Ok(());
        }
        let mine = pass.hosts.get(&self.member.id).cloned().unwrap_or_default();
        if mine.finished_ms.is_none() && !self.reseal_pass(pass.target, mine).await? {
            return Ok(());
        }
        self.retire_if_all_done(pass.target).await
    }

    /// Reseal this host's mounts to generation `target`, from where `mine`
    /// got. False when another rotation superseded the pass.
    async fn reseal_pass(&self, target: u32, mut mine: HostReseal) -> Result<bool, Error> {
        let table = self.table();
        for (name, mount) in &table.providers {
            let mut done = mine.mounts.get(name).cloned().unwrap_or_default();
            if done.done {
                continue;
            }
            match mount.pool.sealing() {
                Sealing::None => continue,
                Sealing::CannotReseal => {
                    mine.kept_because.push(format!(
                        "mount `{name}`: its plugin seals values but does not export tresor:plugin/resealer, \
                         so the values it stored under older generations stay there"
                    ));
                    done.done = true;
                }
                Sealing::Reseals => {
                    let paths = mount.pool.checkout().await?.list("").await?;
                    let after = done.after.clone();
                    for rel in paths.iter().filter(|p| after.as_deref().is_none_or(|a| p.as_str() > a)) {
                        self.reseal_secret(mount, name, rel, &mut done).await;
                        if done.secrets % SAVE_EVERY == 0 {
                            mine.mounts.insert(name.clone(), done.clone());
                            if !self.save_pass(target, &mine).await? {
                                return Ok(false);
                            }
                        }
                    }
                    done.done = true;
                    if done.failed > 0 {
                        mine.kept_because.push(format!(
                            "mount `{name}`: {} secrets could not be resealed (see the host log); rotate again to retry",
                            done.failed
                        ));
                    }
                }
            }
            mine.mounts.insert(name.clone(), done);
            if !self.save_pass(target, &mine).await? {
                return Ok(false);
            }
        }
        let pending = self.reseal_pending_rotations().await?;
        if pending.failed > 0 {
            mine.kept_because.push(format!(
                "{} pending rotation values could not be resealed; rotate again once those rotations ended",
                pending.failed
            ));
        }
        mine.mounts.insert(PENDING_ROTATIONS.into(), pending);
        mine.finished_ms = Some(now_ms());
        let saved = self.save_pass(target, &mine).await?;
        tracing::info!(
            generation = target,
            resealed = mine.mounts.values().map(|m| m.resealed).sum::<u64>(),
            kept = mine.kept_because.len(),
            "this host's reseal pass is done"
        );
        Ok(saved)
    }

    /// Reseal one secret under the turn of its writers, counting into `done`.
    async fn reseal_secret(&self, mount: &super::Mount, name: &str, rel: &str, done: &mut MountReseal) {
        let moved = {
            let _turn = self.turn(mount, rel).await;
            match mount.pool.checkout().await {
                Ok(mut checkout) => checkout.reseal(rel).await,
                Err(e) => Err(e),
            }
        };
        done.secrets += 1;
        done.after = Some(rel.to_string());
        match moved {
            Ok((_, moved)) => done.resealed += u64::from(moved),
            // Deleted since the listing: nothing left to move.
            Err(Error::NotFound(_)) => {}
            Err(e) => {
                done.failed += 1;
                tracing::warn!(mount = name, path = rel, error = %e, "could not reseal a secret");
            }
        }
    }

    /// Reseal the pending values of rotations under way (sealed by the host).
    async fn reseal_pending_rotations(&self) -> Result<MountReseal, Error> {
        let state = self.rotations.state();
        let mut done = MountReseal::default();
        for mut record in state.list_rotations("").await.map_err(unavailable)? {
            if record.stage.is_none() && record.sealed_credential.is_none() {
                continue;
            }
            done.secrets += 1;
            let mut attempts = 0;
            while let Some(next) = self.resealed_record(&record)? {
                if state
                    .swap_rotation(&next, Some(record.revision))
                    .await
                    .map_err(unavailable)?
                {
                    done.resealed += 1;
                    break;
                }
                // The rotation moved on meanwhile: look again.
                attempts += 1;
                match state.get_rotation(&record.path).await.map_err(unavailable)? {
                    Some(_) if attempts >= 8 => {
                        done.failed += 1;
                        break;
                    }
                    Some(fresh) => record = fresh,
                    None => break,
                }
            }
        }
        done.done = true;
        Ok(done)
    }

    /// `record` with its sealed values (a pending value, a static role's
    /// password) under the current generation; `None` when they already are.
    fn resealed_record(
        &self,
        record: &crate::state::RotationRecord,
    ) -> Result<Option<crate::state::RotationRecord>, Error> {
        let mut next = record.clone();
        let mut moved = false;
        if let Some(stage) = next.stage.as_mut() {
            if let Some(resealed) = self.rotations.reseal(&record.path, &stage.pending_sealed)? {
                stage.pending_sealed = resealed;
                moved = true;
            }
        }
        if let Some(sealed) = &record.sealed_credential {
            if let Some(resealed) = self.rotations.reseal(&record.path, sealed)? {
                next.sealed_credential = Some(resealed);
                moved = true;
            }
        }
        next.revision = record.revision + 1;
        Ok(moved.then_some(next))
    }

    /// Record this host's part of the pass to `target`; false when the
    /// pass was superseded or has ended.
    async fn save_pass(&self, target: u32, mine: &HostReseal) -> Result<bool, Error> {
        let state = self.state();
        loop {
            let Some(old) = state.reseal_progress().await.map_err(unavailable)? else {
                return Ok(false);
            };
            if old.target != target || old.finished_ms.is_some() {
                return Ok(false);
            }
            let mut new = old.clone();
            new.hosts.insert(self.member.id.clone(), mine.clone());
            if state
                .swap_reseal_progress(Some(&old), &new)
                .await
                .map_err(unavailable)?
            {
                return Ok(true);
            }
        }
    }

    /// Retire every generation older than `target` once every live host
    /// finished its pass with nothing left behind.
    async fn retire_if_all_done(&self, target: u32) -> Result<(), Error> {
        let state = self.state();
        let Some(pass) = state.reseal_progress().await.map_err(unavailable)? else {
            return Ok(());
        };
        if pass.target != target || pass.finished_ms.is_some() {
            return Ok(());
        }
        let mut hosts: Vec<String> = crate::state::members::live(state, now_ms())
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(|m| m.id)
            .collect();
        if !hosts.contains(&self.member.id) {
            hosts.push(self.member.id.clone());
        }
        let all_clean = hosts.iter().all(|id| {
            pass.hosts
                .get(id)
                .is_some_and(|h| h.finished_ms.is_some() && h.kept_because.is_empty())
        });
        if !all_clean {
            return Ok(());
        }
        let (record, retired) = loop {
            let Some(old) = state.keyring().await.map_err(unavailable)? else {
                return Ok(());
            };
            if old.current != target {
                return Ok(());
            }
            let retired: Vec<u32> = old.live().map(|g| g.generation).filter(|&g| g < target).collect();
            let mut new = old.clone();
            let now = now_ms();
            for &g in &retired {
                new.retire(g, now);
            }
            if retired.is_empty() || state.swap_keyring(Some(&old), &new).await.map_err(unavailable)? {
                break (new, retired);
            }
        };
        self.keyring.load(&record).map_err(|e| Error::Internal(e.to_string()))?;
        let mut finished = pass.clone();
        finished.finished_ms = Some(now_ms());
        finished.retired = retired.clone();
        // Losing this race means another host recorded the same end.
        let _ = state
            .swap_reseal_progress(Some(&pass), &finished)
            .await
            .map_err(unavailable)?;
        tracing::info!(
            retired = ?retired,
            current = target,
            "retired the key generations nothing uses any more"
        );
        Ok(())
    }
}
