//! The on-disk store: versioned, sealed secrets in one directory, safe with
//! several writers at once and with a crash at any moment.
//!
//! Every version is an immutable file, published in one atomic step that
//! fails when another writer got there first (`hard_link` of a fully
//! written and synced temporary file onto `<n>.json`). Nothing a reader can
//! see is ever half-written; a crash leaves at worst a `tmp-*` file (removed
//! by a later `put` to that secret once an hour old) or a `.trash-*`
//! directory (removed by the next `delete`), which reads ignore.
//!
//! Values are sealed by a [`Sealer`] (the host, in the plugin) before they
//! reach the disk; the store never holds a key and never writes plaintext.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tresor_plugin_sdk::{validate_path, Error, Metadata, Secret, VersionInfo};

use crate::layout::{
    classify, continued_chunk, decode_hex, deleted_marker, is_hex_name, parse_version, seal_context, secret_dir_names,
    version_file, Entry, TMP_PREFIX, TRASH_PREFIX,
};

/// How many times `put` starts over after losing a race to another writer
/// before it gives up with `unavailable`.
const MAX_PUT_ATTEMPTS: usize = 64;

/// How many times a directory listing that raced with a concurrent removal
/// is started over (see `read_names`).
const MAX_LISTING_ATTEMPTS: usize = 100;

/// A `tmp-*` file older than this was left by a crash and may be removed.
const STALE_TMP_AGE: Duration = Duration::from_secs(3600);

/// Encrypts and decrypts values with a key the store never sees.
pub trait Sealer {
    /// Encrypts `plaintext`, authenticating `context`.
    fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, Error>;
    /// Decrypts a blob from [`Sealer::seal`] made with the same `context`.
    fn unseal(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, Error>;
}

/// The JSON content of a version file `<n>.json`.
#[derive(Serialize, Deserialize)]
struct VersionRecord {
    /// The version number, as a decimal string (same as the file name).
    version: String,
    /// Creation time, milliseconds since the Unix epoch (0 when unknown).
    created_ms: u64,
    /// Non-secret metadata, as `[[key, value], ...]`.
    metadata: Metadata,
    /// The sealed value, base64; absent once destroyed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed: Option<String>,
    /// Set when the value was destroyed for good.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    destroyed: bool,
}

/// What the directory of one secret holds.
#[derive(Default)]
struct Listing {
    /// Published versions (`<n>.json`).
    versions: BTreeSet<u64>,
    /// Soft-deleted versions (`<n>.deleted`).
    deleted: BTreeSet<u64>,
    /// Temporary files (`tmp-*`).
    tmps: Vec<PathBuf>,
}

impl Listing {
    fn latest(&self) -> u64 {
        self.versions.last().copied().unwrap_or(0)
    }
}

/// Versioned secrets in one directory. See the [module](self) docs.
pub struct Store<S> {
    root: PathBuf,
    sealer: S,
    /// Keep at most this many versions per secret; 0 keeps them all.
    max_versions: u64,
}

impl<S: Sealer> Store<S> {
    /// A store in `root` (which must exist), sealing values with `sealer`
    /// and keeping at most `max_versions` versions of each secret (0: all).
    pub fn new(root: impl Into<PathBuf>, sealer: S, max_versions: u64) -> Self {
        Store {
            root: root.into(),
            sealer,
            max_versions,
        }
    }

    /// Reads the latest version of `path`, or `version`. A deleted or
    /// destroyed version is `not-found`.
    pub fn get(&self, path: &str, version: Option<&str>) -> Result<Secret, Error> {
        let dir = self.secret_dir(path);
        let n = match version {
            Some(text) => parse_version(text)
                .ok_or_else(|| Error::not_found(format!("secret `{path}` has no version `{text}`")))?,
            None => {
                let latest = list_dir(&dir).map_err(|e| io_error("get", path, e))?.latest();
                if latest == 0 {
                    return Err(no_such_secret(path));
                }
                latest
            }
        };
        if exists(&dir.join(deleted_marker(n))).map_err(|e| io_error("get", path, e))? {
            return Err(Error::not_found(format!(
                "version {n} of secret `{path}` is deleted: undelete it to read it"
            )));
        }
        let record = read_record(&dir, n, path)?
            .ok_or_else(|| Error::not_found(format!("secret `{path}` has no version {n}")))?;
        let sealed = match (&record.sealed, record.destroyed) {
            (Some(sealed), false) => sealed,
            _ => {
                return Err(Error::not_found(format!(
                    "version {n} of secret `{path}` was destroyed"
                )))
            }
        };
        let sealed = BASE64
            .decode(sealed)
            .map_err(|_| Error::internal(format!("version file {n} of secret `{path}` is corrupt")))?;
        let value = self
            .sealer
            .unseal(&sealed, &seal_context(path, n))
            .map_err(|e| match e {
                Error::InvalidInput(_) => Error::internal(format!(
                    "version {n} of secret `{path}` cannot be decrypted: its file was altered, \
                 or it was written by another mount"
                )),
                other => other,
            })?;
        Ok(Secret {
            value,
            version: n.to_string(),
            created_ms: record.created_ms,
            metadata: record.metadata,
        })
    }

    /// Writes a new version of `path` and returns its number. With
    /// `expected_version`, writes only if the latest version is that one
    /// (`""`: the secret must not exist), else answers `conflict`.
    pub fn put(
        &self,
        path: &str,
        value: &[u8],
        metadata: Metadata,
        expected_version: Option<&str>,
    ) -> Result<String, Error> {
        for _ in 0..MAX_PUT_ATTEMPTS {
            let dir = self.secret_dir(path);
            // A deleter may rename the directory away at any moment: then
            // creating or listing it fails with "exists" or "not found", and
            // the attempt starts over.
            let listing = match fs::create_dir_all(&dir).and_then(|()| list_dir(&dir)) {
                Ok(listing) => listing,
                Err(e) if matches!(e.kind(), ErrorKind::AlreadyExists | ErrorKind::NotFound) => continue,
                Err(e) => return Err(io_error("put", path, e)),
            };
            remove_stale_tmps(&listing.tmps);
            let latest = listing.latest();
            if let Some(expected) = expected_version {
                check_expected(path, latest, expected)?;
            }
            let n = latest + 1;
            let sealed = self.sealer.seal(value, &seal_context(path, n))?;
            let record = VersionRecord {
                version: n.to_string(),
                created_ms: now_ms(),
                metadata: metadata.clone(),
                sealed: Some(BASE64.encode(sealed)),
                destroyed: false,
            };
            let tmp = match write_tmp(&dir, &record) {
                Ok(tmp) => tmp,
                // The secret was deleted under our feet: start over.
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error("put", path, e)),
            };
            let published = fs::hard_link(&tmp, dir.join(version_file(n)));
            // The tmp file is only a name now (or garbage): drop it.
            let _ = fs::remove_file(&tmp);
            match published {
                Ok(()) => {
                    sync_dir(&dir).map_err(|e| io_error("put", path, e))?;
                    self.prune(&dir, n);
                    return Ok(n.to_string());
                }
                // Another writer published version n first, or the secret was
                // deleted meanwhile: look again (a check-and-set now fails).
                Err(e) if matches!(e.kind(), ErrorKind::AlreadyExists | ErrorKind::NotFound) => continue,
                Err(e) => return Err(io_error("put", path, e)),
            }
        }
        Err(Error::unavailable(format!(
            "too many concurrent writes to secret `{path}`: retry later"
        )))
    }

    /// Deletes `path` with all its versions: the secret's directory is
    /// renamed away in one step, then removed.
    pub fn delete(&self, path: &str) -> Result<(), Error> {
        let dir = self.secret_dir(path);
        let trash = self.root.join(format!("{TRASH_PREFIX}{}", random_suffix()?));
        match fs::rename(&dir, &trash) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(no_such_secret(path)),
            Err(e) => return Err(io_error("delete", path, e)),
        }
        let had_versions = list_dir(&trash).is_ok_and(|listing| !listing.versions.is_empty());
        // The rename committed the delete: what is left is garbage, removed
        // here along with what crashed deletes left behind.
        let _ = fs::remove_dir_all(&trash);
        self.clean_trash();
        // Persist the rename: the name left the secret's parent and arrived
        // in the data directory (the same directory for most paths).
        if let Some(parent) = dir.parent().filter(|parent| *parent != self.root) {
            sync_dir(parent).map_err(|e| io_error("delete", path, e))?;
        }
        sync_dir(&self.root).map_err(|e| io_error("delete", path, e))?;
        if had_versions {
            Ok(())
        } else {
            Err(no_such_secret(path))
        }
    }

    /// Soft-deletes `versions` of `path` (a `<n>.deleted` marker), or with
    /// `destroy` erases their sealed values for good. Unknown versions are
    /// ignored.
    pub fn delete_versions(&self, path: &str, versions: &[String], destroy: bool) -> Result<(), Error> {
        let op = if destroy { "destroy" } else { "delete-versions" };
        let (dir, listing) = self.existing_secret(path, op)?;
        for n in versions.iter().filter_map(|v| parse_version(v)) {
            if !listing.versions.contains(&n) {
                continue;
            }
            if destroy {
                self.destroy(&dir, n, path)?;
            } else {
                OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(dir.join(deleted_marker(n)))
                    .map_err(|e| match e.kind() {
                        // The secret was deleted meanwhile.
                        ErrorKind::NotFound => no_such_secret(path),
                        _ => io_error(op, path, e),
                    })?;
            }
        }
        sync_dir(&dir).map_err(|e| io_error(op, path, e))
    }

    /// Restores soft-deleted `versions` of `path`. Destroyed and unknown
    /// versions are ignored.
    pub fn undelete_versions(&self, path: &str, versions: &[String]) -> Result<(), Error> {
        let (dir, listing) = self.existing_secret(path, "undelete-versions")?;
        for n in versions.iter().filter_map(|v| parse_version(v)) {
            if !listing.deleted.contains(&n) {
                continue;
            }
            match read_record(&dir, n, path)? {
                Some(record) if !record.destroyed => {}
                _ => continue,
            }
            match fs::remove_file(dir.join(deleted_marker(n))) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("undelete-versions", path, e)),
            }
        }
        sync_dir(&dir).map_err(|e| io_error("undelete-versions", path, e))
    }

    /// The paths of all secrets starting with `prefix`, sorted.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let mut paths = Vec::new();
        self.collect_paths(&self.root, String::new(), prefix, &mut paths)
            .map_err(|e| Error::internal(format!("list failed while reading the data directory: {e}")))?;
        paths.sort();
        Ok(paths)
    }

    /// Every version of `path`, oldest first.
    pub fn versions(&self, path: &str) -> Result<Vec<VersionInfo>, Error> {
        let (dir, listing) = self.existing_secret(path, "versions")?;
        let mut infos = Vec::with_capacity(listing.versions.len());
        for &n in &listing.versions {
            // A version removed since the listing (pruned) is skipped.
            let Some(record) = read_record(&dir, n, path)? else {
                continue;
            };
            infos.push(VersionInfo {
                version: n.to_string(),
                created_ms: record.created_ms,
                deleted: listing.deleted.contains(&n),
                destroyed: record.destroyed || record.sealed.is_none(),
                metadata: record.metadata,
            });
        }
        if infos.is_empty() {
            return Err(no_such_secret(path));
        }
        Ok(infos)
    }

    /// Removes what crashed or interrupted deletes left behind
    /// (`.trash-*` directories); every `delete` calls it. Best effort:
    /// failures are ignored.
    pub fn clean_trash(&self) {
        let Ok(Some(names)) = read_names(&self.root) else {
            return;
        };
        for name in names.iter().filter(|n| n.starts_with(TRASH_PREFIX)) {
            let _ = fs::remove_dir_all(self.root.join(name));
        }
    }

    /// The directory of the secret at `path` (see [`crate::layout`]).
    fn secret_dir(&self, path: &str) -> PathBuf {
        let mut dir = self.root.clone();
        dir.extend(secret_dir_names(path));
        dir
    }

    /// The directory and listing of `path`, or `not-found` when it has no
    /// version.
    fn existing_secret(&self, path: &str, op: &str) -> Result<(PathBuf, Listing), Error> {
        let dir = self.secret_dir(path);
        let listing = list_dir(&dir).map_err(|e| io_error(op, path, e))?;
        if listing.versions.is_empty() {
            return Err(no_such_secret(path));
        }
        Ok((dir, listing))
    }

    /// Rewrites version `n` without its sealed value, atomically.
    fn destroy(&self, dir: &Path, n: u64, path: &str) -> Result<(), Error> {
        let Some(mut record) = read_record(dir, n, path)? else {
            return Ok(());
        };
        if record.destroyed && record.sealed.is_none() {
            return Ok(());
        }
        record.sealed = None;
        record.destroyed = true;
        let tmp = match write_tmp(dir, &record) {
            Ok(tmp) => tmp,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_error("destroy", path, e)),
        };
        let replaced = fs::rename(&tmp, dir.join(version_file(n)));
        if replaced.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        match replaced {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("destroy", path, e)),
        }
    }

    /// With `max_versions` set, removes the versions that fell out of the
    /// window after version `latest` was published. Best effort.
    fn prune(&self, dir: &Path, latest: u64) {
        if self.max_versions == 0 || latest <= self.max_versions {
            return;
        }
        let Ok(listing) = list_dir(dir) else { return };
        let oldest_kept = latest - self.max_versions + 1;
        for &n in listing.versions.range(..oldest_kept) {
            // The version file goes first: a crash in between must not make a
            // deleted version readable again.
            if fs::remove_file(dir.join(version_file(n))).is_ok() {
                let _ = fs::remove_file(dir.join(deleted_marker(n)));
            }
        }
    }

    /// Walks `dir` (the data directory, or a long path's `<chunk>.d`
    /// directory whose hex so far is `hex`) and collects secret paths.
    fn collect_paths(&self, dir: &Path, hex: String, prefix: &str, out: &mut Vec<String>) -> io::Result<()> {
        let names = match read_names(dir)? {
            Some(names) => names,
            None if dir != self.root => return Ok(()),
            None => return Err(ErrorKind::NotFound.into()),
        };
        for name in names {
            if let Some(chunk) = continued_chunk(&name) {
                self.collect_paths(&dir.join(&name), format!("{hex}{chunk}"), prefix, out)?;
            } else if is_hex_name(&name) {
                let Some(path) = decode_hex(&format!("{hex}{name}")).and_then(|b| String::from_utf8(b).ok()) else {
                    continue;
                };
                if !path.starts_with(prefix) || validate_path(&path).is_err() {
                    continue;
                }
                match list_dir(&dir.join(&name)) {
                    Ok(listing) if !listing.versions.is_empty() => out.push(path),
                    Ok(_) => {}
                    // Deleted meanwhile, or not a directory.
                    Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

/// `conflict` unless `latest` is the version the caller expects.
fn check_expected(path: &str, latest: u64, expected: &str) -> Result<(), Error> {
    let matches = if expected.is_empty() {
        latest == 0
    } else {
        parse_version(expected) == Some(latest)
    };
    if matches {
        return Ok(());
    }
    let wanted = if expected.is_empty() {
        "the secret not to exist".to_owned()
    } else {
        format!("version {expected}")
    };
    Err(Error::conflict(if latest == 0 {
        format!("secret `{path}` does not exist, expected {wanted}")
    } else {
        format!("current version of `{path}` is {latest}, expected {wanted}")
    }))
}

/// The (UTF-8) names in `dir`, or `None` when `dir` does not exist.
///
/// Under WASI, listing a directory looks up every entry it returns, so a
/// file that a concurrent writer removes mid-listing (its `tmp-*` file, say)
/// fails the whole listing with `NotFound`: such a listing is started over.
fn read_names(dir: &Path) -> io::Result<Option<Vec<String>>> {
    let mut attempts = 0;
    loop {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let names: io::Result<Vec<String>> = entries
            .filter_map(|entry| match entry {
                Ok(entry) => entry.file_name().into_string().ok().map(Ok),
                Err(e) => Some(Err(e)),
            })
            .collect();
        match names {
            Ok(names) => return Ok(Some(names)),
            Err(e) if e.kind() == ErrorKind::NotFound && attempts < MAX_LISTING_ATTEMPTS => {
                attempts += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Reads the files of a secret's directory; a missing directory is empty.
fn list_dir(dir: &Path) -> io::Result<Listing> {
    let mut listing = Listing::default();
    for name in read_names(dir)?.unwrap_or_default() {
        match classify(&name) {
            Entry::Version(n) => {
                listing.versions.insert(n);
            }
            Entry::Deleted(n) => {
                listing.deleted.insert(n);
            }
            Entry::Tmp => listing.tmps.push(dir.join(&name)),
            Entry::Other => {}
        }
    }
    Ok(listing)
}

/// Reads and parses `<n>.json`; `None` when it does not exist.
fn read_record(dir: &Path, n: u64, path: &str) -> Result<Option<VersionRecord>, Error> {
    let bytes = match fs::read(dir.join(version_file(n))) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("read", path, e)),
    };
    let record: VersionRecord = serde_json::from_slice(&bytes)
        .map_err(|_| Error::internal(format!("version file {n} of secret `{path}` is corrupt")))?;
    if record.version != n.to_string() {
        return Err(Error::internal(format!(
            "version file {n} of secret `{path}` names another version"
        )));
    }
    Ok(Some(record))
}

/// Writes `record` to a fresh `tmp-<random>` file in `dir` and syncs it.
fn write_tmp(dir: &Path, record: &VersionRecord) -> io::Result<PathBuf> {
    let bytes = serde_json::to_vec(record).map_err(io::Error::other)?;
    let suffix = random_suffix().map_err(|e| io::Error::other(e.message().to_owned()))?;
    let tmp = dir.join(format!("{TMP_PREFIX}{suffix}"));
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()
    })();
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Removes `tmp-*` files old enough to be a crash's leftovers (never a
/// concurrent writer's file in progress). Without a clock nothing is old.
fn remove_stale_tmps(tmps: &[PathBuf]) {
    let now = SystemTime::now();
    if now.duration_since(UNIX_EPOCH).unwrap_or_default().is_zero() {
        return;
    }
    for tmp in tmps {
        let age = fs::metadata(tmp)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| now.duration_since(modified).ok());
        if age.is_some_and(|age| age > STALE_TMP_AGE) {
            let _ = fs::remove_file(tmp);
        }
    }
}

/// Flushes a directory's entries to disk, so a new or removed name survives
/// a crash. Platforms that cannot sync a directory are tolerated.
fn sync_dir(dir: &Path) -> io::Result<()> {
    match File::open(dir).and_then(|d| d.sync_all()) {
        Ok(()) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::Unsupported
                    | ErrorKind::InvalidInput
                    | ErrorKind::PermissionDenied
                    | ErrorKind::IsADirectory
                    | ErrorKind::NotFound
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn exists(path: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// 16 random hex digits, for names no other writer picks.
fn random_suffix() -> Result<String, Error> {
    getrandom::u64()
        .map(|n| format!("{n:016x}"))
        .map_err(|e| Error::internal(format!("no randomness for a temporary file name: {e}")))
}

/// Milliseconds since the Unix epoch; 0 without a clock.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn no_such_secret(path: &str) -> Error {
    Error::not_found(format!("no secret at `{path}`"))
}

/// An I/O failure during `op` on `path`. The message names the operation
/// and the path (never a value).
fn io_error(op: &str, path: &str, e: io::Error) -> Error {
    Error::internal(format!("{op} of secret `{path}` failed in the data directory: {e}"))
}
