//! The provider conformance suite lives in the host ([`tresor::conformance`],
//! also run by `tresor plugin check`); this adds [`check_bad_config`], the
//! companion check that a mount whose plugin refuses its configuration
//! stops the host from starting, with an error naming the mount and the
//! config key.
//!
//! ```ignore
//! let t = tresor_e2e::start(tresor_e2e::TEST_POLICIES, &my_mount_toml).await;
//! let outcome = tresor_e2e::conformance::run(&t.host, "vault", &tresor_e2e::caller("root", &["admins"])).await?;
//! println!("{outcome}");
//! ```

use anyhow::{anyhow, bail, ensure, Result};
use tresor::StartupError;

pub use tresor::conformance::*;

/// Starts a host with `mount_toml` (one `[[mount]]` table whose plugin
/// refuses its configuration) and checks that the start fails with an
/// error naming the mount and containing `expected` (the config key, say).
pub async fn check_bad_config(mount_toml: &str, mount: &str, expected: &str) -> Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("policies"))?;
    crate::write_atomically(&dir.path().join("policies/test.cedar"), crate::TEST_POLICIES);
    let config = tresor::Config::from_toml(&crate::config_text(dir.path(), mount_toml))
        .map_err(|e| anyhow!("the test configuration does not parse: {e}"))?;
    match tresor::Host::start(config).await {
        Ok(_) => bail!("the host started although mount `{mount}` is misconfigured"),
        Err(e) => {
            let message = e.to_string();
            ensure!(
                matches!(&e, StartupError::Plugin { mount: m, .. } if m == mount),
                "expected a plugin startup error for mount `{mount}`, got: {message}"
            );
            ensure!(
                message.contains(expected),
                "the startup error does not mention `{expected}`: {message}"
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    /// The suite holds for the reference provider (the embedded `file`
    /// plugin), which supports everything: a check failing here is a bug in
    /// the suite, not in a provider.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_reference_file_provider_passes() {
        let t = crate::start(crate::TEST_POLICIES, "").await;
        let outcome = super::run(&t.host, "secret", &crate::caller("root", &["admins"]))
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert!(outcome.skipped.is_empty(), "{outcome}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unknown_mount_is_an_error() {
        let t = crate::start(crate::TEST_POLICIES, "").await;
        let err = super::run(&t.host, "nope", &crate::caller("root", &["admins"]))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no mount `nope`"), "{err}");
    }
}
