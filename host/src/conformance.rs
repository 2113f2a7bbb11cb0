//! The provider conformance suite: what every provider plugin must do the
//! same way, checked through a running host's access path. Plugin authors
//! run it with `tresor plugin check FILE.wasm`; the host's own tests run
//! it against every provider.
//!
//! ```no_run
//! # async fn demo(host: &tresor::Host, admin: &tresor::Caller) -> anyhow::Result<()> {
//! let outcome = tresor::conformance::run(host, "vault", admin).await?;
//! println!("{outcome}");
//! # Ok(()) }
//! ```
//!
//! [`run`] adapts to what the mount reports in [`Host::mounts`]: a check
//! needing a capability the provider does not claim is skipped (and named
//! in the [`Outcome`]); a claimed capability must work. Everything it
//! writes lives under one fresh folder, `conformance-<marker>/`, so it can
//! run against a backend holding other data; it deletes what it wrote when
//! the provider can.
//!
//! The caller must be allowed every action on the mount.
//!
//! A read-only provider (one that does not claim `writable`, like `dpapi`)
//! cannot be filled through the host, so the test fills its backend the way
//! that backend's own tools do, from a [`Seed`], and calls [`run_seeded`]:
//! the same checks then read the seeded secrets instead of writing them, and
//! a `read-only` check makes sure writes and deletes are refused and change
//! nothing.

use std::collections::BTreeMap;
use std::fmt;

use crate::{Caller, Capabilities, Error, Host, SecretBytes, WriteOptions};
use anyhow::{anyhow, bail, ensure, Context, Result};

/// What [`run`] did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The checks that ran and passed.
    pub passed: Vec<&'static str>,
    /// The checks skipped, with the capability the provider lacks.
    pub skipped: Vec<(&'static str, &'static str)>,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "passed: {}", self.passed.join(", "))?;
        if !self.skipped.is_empty() {
            let skipped: Vec<String> = self.skipped.iter().map(|(c, why)| format!("{c} (not {why})")).collect();
            write!(f, "; skipped: {}", skipped.join(", "))?;
        }
        Ok(())
    }
}

/// `Ok` when `result` is NotFound; otherwise says that `what` should have been.
fn must_be_not_found<T: fmt::Debug>(result: Result<T, Error>, what: &str) -> Result<()> {
    match result {
        Err(Error::NotFound(_)) => Ok(()),
        other => bail!("{what} should be NotFound, got {other:?}"),
    }
}

/// Values every provider must store and give back byte for byte.
fn sample_values() -> Vec<(&'static str, Vec<u8>)> {
    let mut large = Vec::with_capacity(20_000);
    for i in 0..20_000u32 {
        large.push(b"abcdefghijklmnopqrstuvwxyz0123456789"[(i % 36) as usize]);
    }
    vec![
        ("text", b"correct horse battery staple".to_vec()),
        ("binary", (0..=255u8).rev().collect()),
        ("nul", vec![0]),
        ("space", b" ".to_vec()),
        ("newline", b"\n".to_vec()),
        ("utf8", "pässwörd ✓ 秘密".as_bytes().to_vec()),
        ("json", br#"{"password":"p","user":"u"}"#.to_vec()),
        ("json-spaced", br#"{ "b": 1.0, "a": [true] }"#.to_vec()),
        ("large", large),
    ]
}

/// The secrets a read-only provider's backend must hold before
/// [`run_seeded`]: the suite's sample values and listing layout, under a
/// fresh folder.
pub struct Seed {
    base: String,
}

impl Seed {
    /// A seed under a fresh `conformance-<marker>/` folder.
    pub fn new() -> Self {
        Seed { base: marker() }
    }

    /// What to put in the backend: paths relative to the mount, and values.
    pub fn secrets(&self) -> Vec<(String, Vec<u8>)> {
        let mut secrets: Vec<(String, Vec<u8>)> = sample_values()
            .into_iter()
            .map(|(name, value)| (format!("{}/round-trip/{name}", self.base), value))
            .collect();
        for rel in LIST_LAYOUT {
            secrets.push((format!("{}/{rel}", self.base), b"x".to_vec()));
        }
        secrets
    }
}

impl Default for Seed {
    fn default() -> Self {
        Self::new()
    }
}

/// The secrets the `list` check expects (relative to the run's folder).
const LIST_LAYOUT: [&str; 4] = ["list/a", "list/b/c", "list/b/d", "listing-elsewhere"];

/// Runs every check the mount's capabilities allow against `mount`, as
/// `caller`, writing what it reads. Fails with the list of failed checks
/// (each with its cause). For a read-only mount, use [`run_seeded`].
pub async fn run(host: &Host, mount: &str, caller: &Caller) -> Result<Outcome> {
    let suite = Suite::new(host, mount, caller, marker(), false)?;
    ensure!(
        suite.caps.writable,
        "mount `{mount}` is read-only: fill its backend from a conformance::Seed and use run_seeded"
    );
    suite.run().await
}

/// Runs the checks against a read-only `mount` whose backend already holds
/// `seed.secrets()`: values are read instead of written, and writes must be
/// refused. Fails with the list of failed checks.
pub async fn run_seeded(host: &Host, mount: &str, caller: &Caller, seed: &Seed) -> Result<Outcome> {
    let suite = Suite::new(host, mount, caller, seed.base.clone(), true)?;
    ensure!(
        !suite.caps.writable,
        "mount `{mount}` is writable: run() checks it by writing its own values"
    );
    suite.run().await
}

impl<'a> Suite<'a> {
    fn new(host: &'a Host, mount: &'a str, caller: &'a Caller, base: String, seeded: bool) -> Result<Self> {
        let caps = host
            .mounts()
            .into_iter()
            .find(|(name, _, _)| name == mount)
            .map(|(_, _, caps)| caps)
            .ok_or_else(|| anyhow!("the host has no mount `{mount}`"))?;
        Ok(Suite {
            host,
            mount,
            caller,
            caps,
            base,
            seeded,
        })
    }

    async fn run(&self) -> Result<Outcome> {
        let s = self;
        let caps = self.caps;
        let mut outcome = Outcome::default();
        let mut failures = Vec::new();
        let mut record = |name: &'static str, needs: &'static str, result: Option<Result<()>>| match result {
            None => outcome.skipped.push((name, needs)),
            Some(Ok(())) => outcome.passed.push(name),
            Some(Err(e)) => failures.push(format!("{name}: {e:#}")),
        };
        // `when(ok, check)`: the check's result when the capability holds, else a skip.
        macro_rules! when {
            ($ok:expr, $check:expr) => {
                if $ok {
                    Some($check.await)
                } else {
                    None
                }
            };
        }

        record(
            "missing-is-not-found",
            "supported",
            Some(s.missing_is_not_found().await),
        );
        let mut cleanup = false;
        if s.seeded {
            record("round-trip", "supported", Some(s.seeded_round_trip().await));
            record("versions", "supported", Some(s.seeded_versions().await));
            record("list", "listable", when!(caps.listable, s.check_listing()));
            record("read-only", "supported", Some(s.read_only().await));
        } else {
            let v = caps.versioned;
            record("round-trip", "supported", Some(s.round_trip().await));
            record("metadata", "supported", Some(s.metadata().await));
            record("versions", "versioned", when!(v, s.versions()));
            record("list", "listable", when!(caps.listable, s.list()));
            record(
                "check-and-set",
                "check-and-set",
                when!(caps.check_and_set, s.check_and_set()),
            );
            record("delete", "deletable", when!(caps.deletable, s.delete()));
            record(
                "soft-delete",
                "soft-delete",
                when!(v && caps.soft_delete, s.soft_delete()),
            );
            cleanup = caps.deletable;
        }

        if cleanup {
            s.clean_up().await;
        }
        if failures.is_empty() {
            Ok(outcome)
        } else {
            bail!(
                "mount `{}` failed {} conformance check(s):\n  - {}\n({outcome})",
                s.mount,
                failures.len(),
                failures.join("\n  - ")
            )
        }
    }
}

struct Suite<'a> {
    host: &'a Host,
    mount: &'a str,
    caller: &'a Caller,
    caps: Capabilities,
    base: String,
    /// The backend was filled from a [`Seed`]; the suite only reads.
    seeded: bool,
}

impl Suite<'_> {
    /// `mount/base/rel`.
    fn path(&self, rel: &str) -> String {
        format!("{}/{}/{rel}", self.mount, self.base)
    }

    /// `base/rel`, as listings show it (relative to the mount).
    fn listed(&self, rel: &str) -> String {
        format!("{}/{rel}", self.base)
    }

    async fn write(&self, rel: &str, value: &[u8]) -> Result<String> {
        self.write_with(rel, value, WriteOptions::default()).await
    }

    async fn write_with(&self, rel: &str, value: &[u8], options: WriteOptions) -> Result<String> {
        let version = self
            .host
            .write(
                self.caller,
                &self.path(rel),
                &SecretBytes::new(value.to_vec()),
                &options,
            )
            .await
            .with_context(|| format!("writing `{rel}`"))?;
        ensure!(!version.is_empty(), "writing `{rel}` returned an empty version");
        Ok(version)
    }

    async fn read(&self, rel: &str, version: Option<&str>) -> Result<crate::Secret, Error> {
        self.host.read(self.caller, &self.path(rel), version).await
    }

    async fn read_ok(&self, rel: &str, version: Option<&str>) -> Result<crate::Secret> {
        self.read(rel, version)
            .await
            .with_context(|| format!("reading `{rel}` (version {version:?})"))
    }

    async fn missing_is_not_found(&self) -> Result<()> {
        must_be_not_found(self.read("never-written", None).await, "reading a secret never written")?;
        if self.caps.versioned {
            must_be_not_found(
                self.read("never-written", Some("1")).await,
                "reading a version of a secret never written",
            )?;
        }
        Ok(())
    }

    async fn round_trip(&self) -> Result<()> {
        for (name, value) in sample_values() {
            let rel = format!("round-trip/{name}");
            let version = self.write(&rel, &value).await?;
            let read = self.read_ok(&rel, None).await?;
            ensure!(
                read.value.expose() == value.as_slice(),
                "value `{name}` came back different ({} bytes written, {} read)",
                value.len(),
                read.value.len()
            );
            ensure!(
                read.version == version,
                "value `{name}`: the write returned version `{version}` but the read says `{}`",
                read.version
            );
        }
        Ok(())
    }

    async fn metadata(&self) -> Result<()> {
        let tags: BTreeMap<String, String> = [("team", "conformance"), ("tier", "gold")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let options = WriteOptions {
            metadata: tags.clone(),
            expected_version: None,
            inherit_metadata: false,
        };
        self.write_with("metadata/tagged", b"tagged", options).await?;
        let read = self.read_ok("metadata/tagged", None).await?;
        for (k, v) in &tags {
            ensure!(
                read.metadata.get(k) == Some(v),
                "metadata `{k}` = `{v}` written, read back {:?}",
                read.metadata
            );
        }
        Ok(())
    }

    async fn versions(&self) -> Result<()> {
        let rel = "versions/rotated";
        let v1 = self.write(rel, b"first").await?;
        let v2 = self.write(rel, b"second").await?;
        ensure!(v1 != v2, "two writes returned the same version `{v1}`");
        let latest = self.read_ok(rel, None).await?;
        ensure!(
            latest.value.expose() == b"second",
            "the latest value is not the last written"
        );
        ensure!(
            latest.version == v2,
            "the latest version is `{}`, expected `{v2}`",
            latest.version
        );
        let old = self.read_ok(rel, Some(&v1)).await?;
        ensure!(
            old.value.expose() == b"first",
            "reading version `{v1}` did not give the first value"
        );
        ensure!(
            old.version == v1,
            "reading version `{v1}` answered version `{}`",
            old.version
        );
        let listed = self
            .host
            .versions(self.caller, &self.path(rel))
            .await
            .context("listing versions")?;
        let ids: Vec<&str> = listed.iter().map(|v| v.version.as_str()).collect();
        let (p1, p2) = (ids.iter().position(|v| *v == v1), ids.iter().position(|v| *v == v2));
        ensure!(
            matches!((p1, p2), (Some(a), Some(b)) if a < b),
            "versions() should list `{v1}` before `{v2}` (oldest first), got {ids:?}"
        );
        ensure!(
            ids.last() == Some(&v2.as_str()),
            "the last of versions() should be the latest, got {ids:?}"
        );
        must_be_not_found(
            self.read(rel, Some("999999")).await,
            "reading a version that does not exist",
        )?;
        must_be_not_found(
            self.host
                .versions(self.caller, &self.path("versions/never-written"))
                .await,
            "versions() of a secret never written",
        )?;
        Ok(())
    }

    async fn list(&self) -> Result<()> {
        for rel in LIST_LAYOUT {
            self.write(rel, b"x").await?;
        }
        self.check_listing().await
    }

    /// Every seeded value reads back byte for byte, and reading the version
    /// the read named gives it again.
    async fn seeded_round_trip(&self) -> Result<()> {
        for (name, value) in sample_values() {
            let rel = format!("round-trip/{name}");
            let read = self.read_ok(&rel, None).await?;
            ensure!(
                read.value.expose() == value.as_slice(),
                "seeded value `{name}` reads back different ({} bytes seeded, {} read)",
                value.len(),
                read.value.len()
            );
            ensure!(!read.version.is_empty(), "reading `{name}` names no version");
            let again = self.read_ok(&rel, Some(&read.version)).await?;
            ensure!(
                again.value.expose() == value.as_slice() && again.version == read.version,
                "reading `{name}` at its version `{}` gives another value or version",
                read.version
            );
        }
        Ok(())
    }

    /// `versions()` of a seeded secret ends with the version a read names;
    /// unknown versions and secrets are NotFound.
    async fn seeded_versions(&self) -> Result<()> {
        let rel = "round-trip/text";
        let read = self.read_ok(rel, None).await?;
        let listed = self
            .host
            .versions(self.caller, &self.path(rel))
            .await
            .context("listing versions")?;
        let ids: Vec<&str> = listed.iter().map(|v| v.version.as_str()).collect();
        ensure!(
            ids.last() == Some(&read.version.as_str()),
            "the last of versions() should be the version a read names (`{}`), got {ids:?}",
            read.version
        );
        must_be_not_found(
            self.read(rel, Some("999999")).await,
            "reading a version that does not exist",
        )?;
        must_be_not_found(
            self.host.versions(self.caller, &self.path("never-written")).await,
            "versions() of a secret never seeded",
        )?;
        Ok(())
    }

    /// Writes, deletes and version changes are refused as `Unsupported`, and
    /// the seeded value is unchanged afterwards.
    async fn read_only(&self) -> Result<()> {
        let rel = "round-trip/text";
        let path = self.path(rel);
        let before = self.read_ok(rel, None).await?;
        let refused = |what: &str, result: Result<(), Error>| match result {
            Err(Error::Unsupported(_)) => Ok(()),
            other => Err(anyhow!(
                "{what} on a read-only mount should be Unsupported, got {other:?}"
            )),
        };
        let value = SecretBytes::from("overwritten");
        refused(
            "a write",
            self.host
                .write(self.caller, &path, &value, &WriteOptions::default())
                .await
                .map(drop),
        )?;
        refused(
            "writing a new secret",
            self.host
                .write(self.caller, &self.path("new"), &value, &WriteOptions::default())
                .await
                .map(drop),
        )?;
        refused("a delete", self.host.delete(self.caller, &path).await)?;
        let version = std::slice::from_ref(&before.version);
        refused(
            "destroying a version",
            self.host.delete_versions(self.caller, &path, version, true).await,
        )?;
        let after = self.read_ok(rel, None).await?;
        ensure!(
            after.value.expose() == before.value.expose() && after.version == before.version,
            "a refused write or delete changed the secret"
        );
        must_be_not_found(self.read("new", None).await, "a secret whose write was refused")
    }

    /// Lists the [`LIST_LAYOUT`] secrets (written or seeded) by folder, by
    /// partial name and as a whole.
    async fn check_listing(&self) -> Result<()> {
        let list = |prefix: String| async move {
            self.host
                .list(self.caller, &format!("{}/{prefix}", self.mount))
                .await
                .with_context(|| format!("listing `{prefix}`"))
        };
        let expect = |rels: &[&str]| -> Vec<String> { rels.iter().map(|r| self.listed(r)).collect() };

        let mut folder = list(self.listed("list/")).await?;
        folder.sort();
        ensure!(
            folder == expect(&["list/a", "list/b/c", "list/b/d"]),
            "listing `list/` gave {folder:?}"
        );

        let mut partial = list(self.listed("list/b")).await?;
        partial.sort();
        ensure!(
            partial == expect(&["list/b/c", "list/b/d"]),
            "listing the partial prefix `list/b` gave {partial:?}"
        );

        let mut word = list(self.listed("list")).await?;
        word.sort();
        ensure!(
            word == expect(&["list/a", "list/b/c", "list/b/d", "listing-elsewhere"]),
            "listing the partial prefix `list` gave {word:?}"
        );

        let nothing = list(self.listed("nothing-here/")).await?;
        ensure!(nothing.is_empty(), "listing an empty prefix gave {nothing:?}");

        let everything = list(String::new()).await?;
        let mine: Vec<&String> = everything.iter().filter(|p| p.starts_with(&self.base)).collect();
        ensure!(
            mine.len() >= 4,
            "listing the whole mount shows only {mine:?} of this run's secrets"
        );
        Ok(())
    }

    async fn check_and_set(&self) -> Result<()> {
        let rel = "cas/guarded";
        let cas = |expected: &str| WriteOptions {
            metadata: Default::default(),
            expected_version: Some(expected.to_string()),
            inherit_metadata: false,
        };
        let v1 = self
            .write_with(rel, b"one", cas(""))
            .await
            .context("a write expecting no secret yet")?;
        match self
            .host
            .write(self.caller, &self.path(rel), &SecretBytes::from("x"), &cas(""))
            .await
        {
            Err(Error::Conflict(_)) => {}
            other => bail!("a write expecting no secret, when one exists, should be Conflict, got {other:?}"),
        }
        let v2 = self
            .write_with(rel, b"two", cas(&v1))
            .await
            .context("a write expecting the current version")?;
        match self
            .host
            .write(self.caller, &self.path(rel), &SecretBytes::from("x"), &cas(&v1))
            .await
        {
            Err(Error::Conflict(_)) => {}
            other => bail!("a write expecting an old version should be Conflict, got {other:?}"),
        }
        let current = self.read_ok(rel, None).await?;
        ensure!(
            current.value.expose() == b"two" && current.version == v2,
            "after a failed check-and-set, the latest is version `{}` ({} bytes), not `{v2}` (the value `two`)",
            current.version,
            current.value.len()
        );
        Ok(())
    }

    async fn delete(&self) -> Result<()> {
        let rel = "delete/doomed";
        self.write(rel, b"one").await?;
        self.write(rel, b"two").await?;
        self.host
            .delete(self.caller, &self.path(rel))
            .await
            .context("deleting")?;
        must_be_not_found(self.read(rel, None).await, "reading a deleted secret")?;
        if self.caps.listable {
            let listed = self
                .host
                .list(self.caller, &format!("{}/{}", self.mount, self.listed("delete/")))
                .await?;
            ensure!(listed.is_empty(), "a deleted secret is still listed: {listed:?}");
        }
        must_be_not_found(
            self.host.delete(self.caller, &self.path("delete/never-written")).await,
            "deleting a secret never written",
        )?;
        Ok(())
    }

    async fn soft_delete(&self) -> Result<()> {
        let rel = "soft-delete/kept";
        let v1 = self.write(rel, b"one").await?;
        let v2 = self.write(rel, b"two").await?;
        let path = self.path(rel);
        self.host
            .delete_versions(self.caller, &path, std::slice::from_ref(&v1), false)
            .await
            .context("soft-deleting the first version")?;
        must_be_not_found(self.read(rel, Some(&v1)).await, "reading a soft-deleted version")?;
        let latest = self.read_ok(rel, None).await?;
        ensure!(
            latest.version == v2,
            "soft-deleting an old version changed the latest one"
        );
        let listed = self.host.versions(self.caller, &path).await?;
        ensure!(
            listed.iter().any(|v| v.version == v1 && v.deleted && !v.destroyed),
            "versions() should show `{v1}` as deleted: {listed:?}"
        );
        self.host
            .undelete_versions(self.caller, &path, std::slice::from_ref(&v1))
            .await
            .context("undeleting")?;
        let back = self.read_ok(rel, Some(&v1)).await?;
        ensure!(back.value.expose() == b"one", "an undeleted version has another value");
        self.host
            .delete_versions(self.caller, &path, std::slice::from_ref(&v1), true)
            .await
            .context("destroying the first version")?;
        must_be_not_found(self.read(rel, Some(&v1)).await, "reading a destroyed version")?;
        let listed = self.host.versions(self.caller, &path).await?;
        ensure!(
            listed.iter().all(|v| v.version != v1 || v.destroyed),
            "versions() should show `{v1}` as destroyed (or drop it): {listed:?}"
        );
        // Unknown versions are ignored.
        self.host
            .delete_versions(self.caller, &path, &["999999".to_string()], false)
            .await
            .context("soft-deleting an unknown version should be ignored")?;
        Ok(())
    }

    /// Deletes what the run wrote (best effort).
    async fn clean_up(&self) {
        let mut paths = Vec::new();
        if self.caps.listable {
            if let Ok(listed) = self
                .host
                .list(self.caller, &format!("{}/{}/", self.mount, self.base))
                .await
            {
                paths = listed;
            }
        }
        for rel in paths {
            let _ = self.host.delete(self.caller, &format!("{}/{rel}", self.mount)).await;
        }
    }
}

/// A folder name no earlier run used: `conformance-<time>-<pid>`.
fn marker() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("conformance-{nanos:x}-{}", std::process::id())
}
