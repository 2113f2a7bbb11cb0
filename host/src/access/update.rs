//! Read-modify-write: a change computed from what a secret (or a mount's
//! settings) holds now, made in the same turn of that secret's writers as
//! the read, so that concurrent changes through any front door never fail
//! one another or lose one another (Vault lets eight concurrent PATCHes of
//! one secret all succeed; each here sees the one before it).
//!
//! The read and the write are each authorized and audited as themselves.

use super::{mismatch, Caller, Host, Op, Reply, WriteOptions, WriteReceipt, BUILTIN_MOUNT_TURN};
use crate::error::Error;
use crate::secret::{Metadata, Secret, SecretBytes, SecretSettings};

/// The new version an [`Host::update`] writes.
pub struct Update {
    /// Its value.
    pub value: SecretBytes,
    /// Its metadata; `None` carries the current version's forward.
    pub metadata: Option<Metadata>,
}

impl Host {
    /// Change the secret at `path` from its latest version: `change` gets
    /// that version and answers the new one (`None`: nothing to write).
    /// Authorized as a read, then as a write; the write is checked against
    /// the version read, and no other writer of the secret runs in between.
    /// `NotFound` when the secret has no readable latest version.
    pub async fn update<F>(&self, caller: &Caller, path: &str, change: F) -> Result<Option<WriteReceipt>, Error>
    where
        F: FnOnce(&Secret) -> Result<Option<Update>, Error>,
    {
        let table = self.table();
        let (mount, rel) = table.resolve(path, false)?;
        let _turn = self.turn(mount, rel).await;
        let current = match self
            .access_in_turn(caller, mount, rel, Op::Read { version: None })
            .await?
        {
            Reply::Secret(s) => s,
            _ => return Err(mismatch("read answers a secret")),
        };
        let Some(update) = change(&current)? else {
            return Ok(None);
        };
        let options = WriteOptions {
            inherit_metadata: update.metadata.is_none(),
            metadata: update.metadata.unwrap_or_default(),
            expected_version: Some(current.version.clone()),
        };
        let write = Op::Write {
            value: &update.value,
            options: &options,
        };
        match self.access_in_turn(caller, mount, rel, write).await? {
            Reply::Written(w) => Ok(Some(w)),
            _ => Err(mismatch("write answers a version")),
        }
    }

    /// Change the settings of the secret at `path` from its current ones
    /// (the defaults when it has none yet). Authorized as a read and a
    /// write of the secret; answers the settings written.
    pub async fn update_secret_settings<F>(
        &self,
        caller: &Caller,
        path: &str,
        change: F,
    ) -> Result<SecretSettings, Error>
    where
        F: FnOnce(SecretSettings) -> Result<SecretSettings, Error>,
    {
        let table = self.table();
        let (mount, rel) = table.resolve(path, false)?;
        let _turn = self.turn(mount, rel).await;
        let current = match self.access_in_turn(caller, mount, rel, Op::Settings).await {
            Ok(Reply::Settings(s)) => s,
            Ok(_) => return Err(mismatch("settings answers settings")),
            Err(Error::NotFound(_)) => SecretSettings::default(),
            Err(e) => return Err(e),
        };
        let wanted = change(current)?;
        if wanted != current {
            self.access_in_turn(caller, mount, rel, Op::SetSettings { settings: &wanted })
                .await?;
        }
        Ok(wanted)
    }

    /// Change the defaults of every secret in `mount` from the current ones.
    /// Authorized as action `admin` on the mount, twice (read, write).
    pub async fn update_mount_settings<F>(
        &self,
        caller: &Caller,
        mount: &str,
        change: F,
    ) -> Result<SecretSettings, Error>
    where
        F: FnOnce(SecretSettings) -> Result<SecretSettings, Error>,
    {
        let _turn = self.write_locks.lock(&format!("{mount}/{BUILTIN_MOUNT_TURN}")).await;
        let current = self.mount_settings(caller, mount).await?;
        let wanted = change(current)?;
        if wanted != current {
            self.set_mount_settings(caller, mount, &wanted).await?;
        }
        Ok(wanted)
    }
}
