//! How secrets keep their versions (Vault KV v2's `max_versions`,
//! `cas_required`, `delete_version_after`): a secret's settings go through
//! the access path like any access (read and write of that secret); a
//! mount's defaults are an administrative operation on the mount.

use super::{mismatch, Host, Op, Reply};
use crate::access::Caller;
use crate::error::Error;
use crate::path;
use crate::secret::SecretSettings;

impl Host {
    /// The settings of the secret at `path` (`mount/relative/path`): its
    /// own, without the mount's defaults. Authorized as a read of the
    /// secret. `NotFound` when the secret has neither versions nor
    /// settings; `Unsupported` when the mount's provider keeps none.
    pub async fn secret_settings(&self, caller: &Caller, path: &str) -> Result<SecretSettings, Error> {
        match self.access(caller, path, Op::Settings).await? {
            Reply::Settings(s) => Ok(s),
            _ => Err(mismatch("settings answers settings")),
        }
    }

    /// Replace the settings of the secret at `path` (it need not exist
    /// yet). Authorized as a write of the secret. A lower `max_versions`
    /// removes the versions it no longer keeps at once.
    pub async fn set_secret_settings(
        &self,
        caller: &Caller,
        path: &str,
        settings: &SecretSettings,
    ) -> Result<(), Error> {
        self.access(caller, path, Op::SetSettings { settings })
            .await
            .map(|_| ())
    }

    /// The defaults of every secret in `mount` (Vault's `<mount>/config`).
    /// Authorized as action `admin` on the mount.
    pub async fn mount_settings(&self, caller: &Caller, mount: &str) -> Result<SecretSettings, Error> {
        let pool = self.settings_pool(mount)?;
        self.admin(caller, mount, "config/read", || async move {
            pool.checkout().await?.settings("").await
        })
        .await
    }

    /// Replace the defaults of every secret in `mount`. They apply to the
    /// writes that follow (versions already written keep their deletion
    /// time). Authorized as action `admin` on the mount.
    pub async fn set_mount_settings(
        &self,
        caller: &Caller,
        mount: &str,
        settings: &SecretSettings,
    ) -> Result<(), Error> {
        let pool = self.settings_pool(mount)?;
        self.admin(caller, mount, "config/write", || async move {
            pool.checkout().await?.set_settings("", settings).await
        })
        .await
    }

    /// The mount's defaults without a decision of their own, for an answer
    /// already authorized (Vault's `oldest_version` in a metadata read).
    pub(crate) async fn stored_mount_settings(&self, mount: &str) -> Result<SecretSettings, Error> {
        self.settings_pool(mount)?.checkout().await?.settings("").await
    }

    /// The instance pool of a provider mount, for its settings.
    fn settings_pool(&self, mount: &str) -> Result<std::sync::Arc<crate::runtime::MountPool>, Error> {
        let (name, _) = path::split(mount);
        if self.is_generator_mount(name) {
            return Err(Error::Unsupported(format!(
                "mount `{name}` serves credentials, not stored secrets: it has no version settings"
            )));
        }
        Ok(self.table().provider(name, mount)?.pool.clone())
    }
}
