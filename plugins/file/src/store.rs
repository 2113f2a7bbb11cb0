//! The on-disk store: versioned, sealed secrets in one directory, safe with
//! several writers at once and with a crash at any moment, and with costs
//! that do not grow with a secret's history or the number of secrets.
//!
//! Secrets live in a tree with one directory level per path segment (see
//! [`crate::layout`]), so finding a secret is a path lookup and listing a
//! prefix reads only the folders under it. Each secret's directory holds:
//!
//! - one immutable file per version, `<n>.json`, published in one atomic
//!   step that fails when another writer got there first (`hard_link` of a
//!   fully written and synced temporary file). Nothing a reader can see is
//!   ever half-written.
//! - `head`, a hint naming the latest version, replaced atomically (rename)
//!   after each write. It may lag behind (a writer crashed after
//!   publishing, or two writers renamed out of order) but never runs ahead:
//!   readers and writers take `head` and look one version further until
//!   there is none, so the latest version costs the same with one version
//!   or a hundred thousand. A missing or unreadable `head` (a directory
//!   written before this layout, a crash during the first write) falls back
//!   to listing the directory once; the next write puts `head` back.
//!
//! A `put` creates its two temporary files (the version and the new
//! `head`) in the secret's directory *before* it reads `head`, and
//! publishes them by name. A `delete` renames the whole directory away, so
//! when that happens mid-`put` the names no longer resolve and the `put`
//! starts over in the new directory: a version number read in one
//! incarnation of a secret is never published in another, and versions stay
//! contiguous from 1.
//!
//! A crash leaves at worst `tmp-*` files (removed by a later `versions` of
//! that secret once an hour old, or with the secret), a `head` that lags,
//! or a directory in `trash/` (removed by the next `delete`); reads ignore
//! all of them and writes carry on past them.
//!
//! Secrets written before the tree (one directory per secret directly in
//! the data directory) are read where they are, and moved into the tree, in
//! one rename, by their next write; nothing is scanned at start-up.
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
use tresor_plugin_sdk::{validate_path, Error, Metadata, Secret, Settings, VersionInfo};

use crate::layout::{
    classify, continued_chunk, decode_hex, deleted_marker, folder_names, is_hex_name, legacy_dir_names, node,
    parse_version, seal_context, secret_dir_names, version_file, Entry, Node, HEAD_FILE, LEGACY_TRASH_PREFIX,
    SECRETS_DIR, TMP_PREFIX, TRASH_DIR,
};
use crate::settings::{self, Rules, SETTINGS_FILE};

/// How many times `put` starts over after losing a race to another writer
/// before it gives up with `unavailable`.
const MAX_PUT_ATTEMPTS: usize = 64;

/// How many times `get` looks again when the version it found was removed
/// or moved before it could read it.
const MAX_GET_ATTEMPTS: usize = 8;

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
    /// The blob moved to the key the sealer seals new values under now;
    /// `None` when it already is.
    fn reseal(&self, sealed: &[u8], context: &[u8]) -> Result<Option<Vec<u8>>, Error>;
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
    /// When the version counts as deleted (`delete_version_after`),
    /// milliseconds since the Unix epoch; 0: never.
    #[serde(default, skip_serializing_if = "is_zero")]
    delete_at_ms: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
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
///
/// A `Store` holds no state but its configuration: any number of them (in
/// threads, processes or plugin instances) may work on one directory at
/// once.
pub struct Store<S> {
    /// The data directory.
    root: PathBuf,
    /// `<root>/secrets`, the tree.
    tree: PathBuf,
    sealer: S,
    /// The mount configuration's `max_versions` (0: unset), used where
    /// neither a secret's nor the mount's settings say.
    configured_max: u64,
}

impl<S: Sealer> Store<S> {
    /// A store in `root` (which must exist), sealing values with `sealer`.
    /// A secret keeps `max_versions` versions unless its settings or the
    /// mount's say otherwise (0: Vault's default of 10). Touches nothing on
    /// disk.
    pub fn new(root: impl Into<PathBuf>, sealer: S, max_versions: u64) -> Self {
        let root = root.into();
        Store {
            tree: root.join(SECRETS_DIR),
            root,
            sealer,
            configured_max: max_versions,
        }
    }

    /// Reads the latest version of `path`, or `version`. A deleted or
    /// destroyed version is `not-found`.
    pub fn get(&self, path: &str, version: Option<&str>) -> Result<Secret, Error> {
        let wanted = match version {
            Some(text) => Some(
                parse_version(text)
                    .ok_or_else(|| Error::not_found(format!("secret `{path}` has no version `{text}`")))?,
            ),
            None => None,
        };
        for _ in 0..MAX_GET_ATTEMPTS {
            let Some((dir, n)) = self.find_version(path, wanted).map_err(|e| io_error("get", path, e))? else {
                return Err(match wanted {
                    Some(n) => Error::not_found(format!("secret `{path}` has no version {n}")),
                    None => no_such_secret(path),
                });
            };
            // The marker first: pruning removes the version before its
            // marker, so a deleted version is never served.
            if present(&dir.join(deleted_marker(n))).map_err(|e| io_error("get", path, e))? {
                return Err(Error::not_found(format!(
                    "version {n} of secret `{path}` is deleted: undelete it to read it"
                )));
            }
            match read_record(&dir, n, path)? {
                Some(record) if expired(&record) => {
                    return Err(Error::not_found(format!(
                        "version {n} of secret `{path}` was deleted by its delete_version_after setting"
                    )))
                }
                Some(record) => return self.open(path, n, record),
                // Pruned, deleted or moved into the tree since: look again.
                None => continue,
            }
        }
        Err(Error::unavailable(format!(
            "secret `{path}` kept changing while it was read: retry"
        )))
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
        let dir = self.secret_dir(path);
        // Directories this call made: their parents are synced too, so the
        // new names survive a crash.
        let mut created = Vec::new();
        let mut attempts = 0;
        'attempt: while attempts < MAX_PUT_ATTEMPTS {
            attempts += 1;
            // The temporary files first: they pin this incarnation of the
            // directory (see the module docs).
            let mut tmps = match Tmps::create(&dir) {
                Ok(tmps) => tmps,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    match self.prepare(path, &dir, &mut created) {
                        Ok(()) => {}
                        // A concurrent delete removed a folder on the way.
                        Err(e) if is_missing(&e) => {}
                        Err(e) => return Err(io_error("put", path, e)),
                    }
                    continue;
                }
                Err(e) => return Err(io_error("put", path, e)),
            };
            let rules = self.rules(&dir, path)?;
            if rules.cas_required && expected_version.is_none() {
                return Err(Error::invalid_input(format!(
                    "check-and-set parameter required for this call: secret `{path}` requires check-and-set \
                     (cas_required); send the version you expect to replace (0 for a new secret)"
                )));
            }
            let mut latest = latest(&dir).map_err(|e| io_error("put", path, e))?;
            let n = loop {
                if let Some(expected) = expected_version {
                    check_expected(path, latest, expected)?;
                }
                let n = latest + 1;
                let sealed = self.sealer.seal(value, &seal_context(path, n))?;
                let created_ms = now_ms();
                let record = VersionRecord {
                    version: n.to_string(),
                    created_ms,
                    metadata: metadata.clone(),
                    sealed: Some(BASE64.encode(sealed)),
                    destroyed: false,
                    delete_at_ms: match rules.delete_version_after_ms {
                        0 => 0,
                        after => created_ms.saturating_add(after),
                    },
                };
                let bytes = serde_json::to_vec(&record).map_err(|e| io_error("put", path, io::Error::other(e)))?;
                match write_synced(&tmps.version, &bytes) {
                    Ok(()) => {}
                    // The secret was deleted under our feet: start over.
                    Err(e) if e.kind() == ErrorKind::NotFound => continue 'attempt,
                    Err(e) => return Err(io_error("put", path, e)),
                }
                match fs::hard_link(&tmps.version, dir.join(version_file(n))) {
                    Ok(()) => break n,
                    // Another writer published version n first: look further
                    // (a check-and-set now fails).
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                        if attempts >= MAX_PUT_ATTEMPTS {
                            break 'attempt;
                        }
                        attempts += 1;
                        latest = probe(&dir, n);
                    }
                    // The secret was deleted meanwhile: start over.
                    Err(e) if e.kind() == ErrorKind::NotFound => continue 'attempt,
                    Err(e) => return Err(io_error("put", path, e)),
                }
            };
            // Best effort: `head` is a hint, and readers look past it.
            tmps.publish_head(&dir, probe(&dir, n));
            drop(tmps);
            sync_dir(&dir).map_err(|e| io_error("put", path, e))?;
            for parent in parents_to_sync(&created) {
                sync_dir(&parent).map_err(|e| io_error("put", path, e))?;
            }
            prune(&dir, n, rules.max_versions);
            return Ok(n.to_string());
        }
        Err(Error::unavailable(format!(
            "too many concurrent writes to secret `{path}`: retry later"
        )))
    }

    /// Deletes `path` with all its versions: the secret's directory is
    /// renamed away in one step, then removed.
    pub fn delete(&self, path: &str) -> Result<(), Error> {
        let trash_dir = self.root.join(TRASH_DIR);
        fs::create_dir_all(&trash_dir).map_err(|e| io_error("delete", path, e))?;
        let trash = trash_dir.join(random_suffix()?);
        let candidates = [self.secret_dir(path), self.legacy_dir(path)];
        let mut moved = None;
        // Twice: a first write may move a secret into the tree between the
        // two renames.
        'search: for _ in 0..2 {
            for dir in &candidates {
                match fs::rename(dir, &trash) {
                    Ok(()) => {
                        moved = Some(dir);
                        break 'search;
                    }
                    Err(e) if is_missing(&e) => {}
                    Err(e) => return Err(io_error("delete", path, e)),
                }
            }
        }
        let Some(dir) = moved else {
            return Err(no_such_secret(path));
        };
        // If another delete's clean-up removed it first, it held versions
        // (only a crash leaves a directory without any).
        let had_versions = has_versions(&trash).unwrap_or(true) || settings::present(&trash);
        // The rename committed the delete: what is left is garbage, removed
        // here along with what crashed deletes left behind.
        let _ = fs::remove_dir_all(&trash);
        self.clean_trash();
        // Persist the rename: the name left the secret's parent.
        if let Some(parent) = dir.parent() {
            sync_dir(parent).map_err(|e| io_error("delete", path, e))?;
        }
        self.remove_empty_folders(dir);
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
        let dir = self.existing_secret(path, op)?;
        for n in versions.iter().filter_map(|v| parse_version(v)) {
            if !present(&dir.join(version_file(n))).map_err(|e| io_error(op, path, e))? {
                continue;
            }
            if destroy {
                self.destroy(&dir, n, path)?;
            } else {
                // The marker holds the deletion time; a version deleted
                // twice keeps its first.
                let marked = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(dir.join(deleted_marker(n)))
                    .and_then(|mut marker| marker.write_all(now_ms().to_string().as_bytes()));
                match marked {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                    // The secret was deleted meanwhile.
                    Err(e) if e.kind() == ErrorKind::NotFound => return Err(no_such_secret(path)),
                    Err(e) => return Err(io_error(op, path, e)),
                }
            }
        }
        sync_dir(&dir).map_err(|e| io_error(op, path, e))
    }

    /// Restores soft-deleted `versions` of `path`. Destroyed and unknown
    /// versions are ignored.
    pub fn undelete_versions(&self, path: &str, versions: &[String]) -> Result<(), Error> {
        let dir = self.existing_secret(path, "undelete-versions")?;
        for n in versions.iter().filter_map(|v| parse_version(v)) {
            let marker = dir.join(deleted_marker(n));
            if !present(&marker).map_err(|e| io_error("undelete-versions", path, e))? {
                continue;
            }
            match read_record(&dir, n, path)? {
                Some(record) if !record.destroyed => {}
                _ => continue,
            }
            match fs::remove_file(marker) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("undelete-versions", path, e)),
            }
        }
        sync_dir(&dir).map_err(|e| io_error("undelete-versions", path, e))
    }

    /// The paths of all secrets starting with `prefix`, sorted.
    ///
    /// Reads the folders under the prefix's last `/` only: the cost grows
    /// with what the prefix holds, not with the store. A prefix that ends
    /// mid-segment (`app/d`) also reads the names of that last folder's
    /// other entries (`app/`'s), to pick those starting with `d`.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let list_error = |e: io::Error| Error::internal(format!("list failed while reading the data directory: {e}"));
        let mut found = BTreeSet::new();
        let (start, base, rest) = match prefix.rsplit_once('/') {
            Some((folders, rest)) => match folder_names(folders.split('/')) {
                Some(names) => {
                    let mut dir = self.tree.clone();
                    dir.extend(names);
                    (Some(dir), format!("{folders}/"), rest)
                }
                // An empty segment (`a//`): no secret path has one.
                None => (None, String::new(), rest),
            },
            None => (Some(self.tree.clone()), String::new(), prefix),
        };
        if let Some(dir) = start {
            self.scan(&dir, base.as_bytes(), &[], rest.as_bytes(), &mut found)
                .map_err(list_error)?;
        }
        self.collect_legacy(&self.root, String::new(), prefix, &mut found)
            .map_err(list_error)?;
        Ok(found.into_iter().collect())
    }

    /// Every version of `path`, oldest first.
    pub fn versions(&self, path: &str) -> Result<Vec<VersionInfo>, Error> {
        let dir = self.locate(path).map_err(|e| io_error("versions", path, e))?;
        let Some(dir) = dir else {
            return Err(no_such_secret(path));
        };
        let listing = list_dir(&dir).map_err(|e| io_error("versions", path, e))?;
        remove_stale_tmps(&listing.tmps);
        let mut infos = Vec::with_capacity(listing.versions.len());
        for &n in &listing.versions {
            // A version removed since the listing (pruned) is skipped.
            let Some(record) = read_record(&dir, n, path)? else {
                continue;
            };
            let marked = listing.deleted.contains(&n);
            let deletion_ms = if marked {
                deletion_time(&dir, n, &record)
            } else {
                record.delete_at_ms
            };
            infos.push(VersionInfo {
                version: n.to_string(),
                created_ms: record.created_ms,
                deleted: marked || expired(&record),
                destroyed: record.destroyed || record.sealed.is_none(),
                deletion_ms,
                metadata: record.metadata,
            });
        }
        if infos.is_empty() {
            return Err(no_such_secret(path));
        }
        Ok(infos)
    }

    /// Removes what crashed or interrupted deletes left behind in `trash/`;
    /// every `delete` calls it. Best effort: failures are ignored.
    pub fn clean_trash(&self) {
        let trash_dir = self.root.join(TRASH_DIR);
        let Ok(Some(names)) = read_names(&trash_dir) else {
            return;
        };
        for name in names {
            let _ = fs::remove_dir_all(trash_dir.join(name));
        }
    }

    /// The directory of the secret at `path` in the tree.
    fn secret_dir(&self, path: &str) -> PathBuf {
        let mut dir = self.tree.clone();
        dir.extend(secret_dir_names(path));
        dir
    }

    /// The directory of the secret at `path` in the layout before the tree.
    fn legacy_dir(&self, path: &str) -> PathBuf {
        let mut dir = self.root.clone();
        dir.extend(legacy_dir_names(path));
        dir
    }

    /// The directory holding `path`'s versions: in the tree, or where the
    /// layout before it put them; `None` when there is neither.
    fn locate(&self, path: &str) -> io::Result<Option<PathBuf>> {
        for dir in [self.secret_dir(path), self.legacy_dir(path)] {
            match fs::metadata(&dir) {
                Ok(meta) if meta.is_dir() => return Ok(Some(dir)),
                Ok(_) => {}
                Err(e) if is_missing(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// The directory and number of the version of `path` a read wants (the
    /// latest when `wanted` is `None`), or `None` when there is none.
    fn find_version(&self, path: &str, wanted: Option<u64>) -> io::Result<Option<(PathBuf, u64)>> {
        let dir = self.secret_dir(path);
        match wanted {
            // One lookup in the common case: the file itself.
            Some(n) => {
                for dir in [dir, self.legacy_dir(path)] {
                    if present(&dir.join(version_file(n)))? {
                        return Ok(Some((dir, n)));
                    }
                }
                Ok(None)
            }
            None => {
                let n = latest(&dir)?;
                if n > 0 {
                    return Ok(Some((dir, n)));
                }
                let legacy = self.legacy_dir(path);
                let n = list_dir(&legacy)?.latest();
                Ok((n > 0).then_some((legacy, n)))
            }
        }
    }

    /// The directory of `path`, or `not-found` when it has no version.
    fn existing_secret(&self, path: &str, op: &str) -> Result<PathBuf, Error> {
        let dir = self.locate(path).map_err(|e| io_error(op, path, e))?;
        match dir {
            Some(dir) if has_versions(&dir).map_err(|e| io_error(op, path, e))? => Ok(dir),
            _ => Err(no_such_secret(path)),
        }
    }

    /// Makes the directory of `path` for a first write: moves the secret's
    /// directory from the layout before the tree when there is one, else
    /// creates it (and its folders). Records what it made in `created`.
    fn prepare(&self, path: &str, dir: &Path, created: &mut Vec<PathBuf>) -> io::Result<()> {
        if let Some(parent) = dir.parent() {
            create_dirs(parent, created)?;
        }
        let legacy = self.legacy_dir(path);
        match fs::rename(&legacy, dir) {
            Ok(()) => {
                created.push(dir.to_owned());
                created.push(legacy.clone());
                self.remove_empty_folders(&legacy);
                return Ok(());
            }
            Err(e) if is_missing(&e) => {}
            // Another writer made the directory meanwhile.
            Err(e) if matches!(e.kind(), ErrorKind::AlreadyExists | ErrorKind::DirectoryNotEmpty) => return Ok(()),
            Err(e) => return Err(e),
        }
        match fs::create_dir(dir) {
            Ok(()) => {
                created.push(dir.to_owned());
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Removes the folders above a deleted or moved secret directory `dir`
    /// that are now empty, up to the tree (or the data directory). Best
    /// effort: removing a folder that is not empty fails, and a writer
    /// that loses its folder this way starts over.
    fn remove_empty_folders(&self, dir: &Path) {
        let mut folder = dir.parent();
        while let Some(current) = folder {
            if current == self.tree || current == self.root || !current.starts_with(&self.root) {
                return;
            }
            if fs::remove_dir(current).is_err() {
                return;
            }
            folder = current.parent();
        }
    }

    /// Decrypts version `n` of `path` from its record.
    fn open(&self, path: &str, n: u64, record: VersionRecord) -> Result<Secret, Error> {
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
            deletion_ms: record.delete_at_ms,
        })
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
        rewrite_record(dir, n, path, "destroy", &record)
    }

    /// Moves every version of `path` to the host's current key generation
    /// (see [`Sealer::reseal`]), rewriting each moved version file
    /// atomically. Returns (versions holding a sealed value, moved).
    ///
    /// The host calls it under the turn of the secret's writers; a version
    /// removed meanwhile (pruned, or the secret deleted) is skipped, never
    /// written back.
    pub fn reseal(&self, path: &str) -> Result<(u32, u32), Error> {
        let dir = self.existing_secret(path, "reseal")?;
        let listing = list_dir(&dir).map_err(|e| io_error("reseal", path, e))?;
        let (mut sealed_versions, mut moved) = (0u32, 0u32);
        for &n in &listing.versions {
            let Some(mut record) = read_record(&dir, n, path)? else {
                continue;
            };
            let Some(sealed) = record.sealed.as_deref().filter(|_| !record.destroyed) else {
                continue;
            };
            sealed_versions += 1;
            let blob = BASE64
                .decode(sealed)
                .map_err(|_| Error::internal(format!("version {n} of secret `{path}` is corrupt")))?;
            let Some(resealed) = self.sealer.reseal(&blob, &seal_context(path, n))? else {
                continue;
            };
            record.sealed = Some(BASE64.encode(resealed));
            rewrite_record(&dir, n, path, "reseal", &record)?;
            moved += 1;
        }
        Ok((sealed_versions, moved))
    }

    /// The rules a write to the secret in `dir` follows.
    fn rules(&self, dir: &Path, path: &str) -> Result<Rules, Error> {
        let mount = settings::read(&self.root).map_err(|e| settings_error("", e))?;
        let secret = settings::read(dir).map_err(|e| settings_error(path, e))?;
        Ok(Rules::new(&secret, &mount, self.configured_max))
    }

    /// The settings of the secret at `path` (its own), or the mount's for
    /// the empty path. `not-found` when the secret has neither versions
    /// nor settings.
    pub fn settings(&self, path: &str) -> Result<Settings, Error> {
        if path.is_empty() {
            return settings::read(&self.root).map_err(|e| settings_error("", e));
        }
        let dir = self.locate(path).map_err(|e| io_error("get-settings", path, e))?;
        let Some(dir) = dir else {
            return Err(no_such_secret(path));
        };
        if !settings::present(&dir) && !has_versions(&dir).map_err(|e| io_error("get-settings", path, e))? {
            return Err(no_such_secret(path));
        }
        settings::read(&dir).map_err(|e| settings_error(path, e))
    }

    /// Replaces the settings of the secret at `path` (creating its
    /// directory when it has none yet), or the mount's for the empty path,
    /// in one atomic step; then removes the versions a lower `max_versions`
    /// no longer keeps.
    pub fn set_settings(&self, path: &str, new: &Settings) -> Result<(), Error> {
        let op = "set-settings";
        let bytes = settings::encode(new);
        if path.is_empty() {
            return replace_file(&self.root, SETTINGS_FILE, &bytes).map_err(|e| io_error(op, "", e));
        }
        let dir = self.secret_dir(path);
        let mut created = Vec::new();
        for _ in 0..MAX_PUT_ATTEMPTS {
            match replace_file(&dir, SETTINGS_FILE, &bytes) {
                Ok(()) => {
                    for parent in parents_to_sync(&created) {
                        sync_dir(&parent).map_err(|e| io_error(op, path, e))?;
                    }
                    let rules = self.rules(&dir, path)?;
                    let latest = latest(&dir).map_err(|e| io_error(op, path, e))?;
                    prune(&dir, latest, rules.max_versions);
                    return Ok(());
                }
                // No directory yet (or a delete removed it meanwhile).
                Err(e) if is_missing(&e) => match self.prepare(path, &dir, &mut created) {
                    Ok(()) => {}
                    Err(e) if is_missing(&e) => {}
                    Err(e) => return Err(io_error(op, path, e)),
                },
                Err(e) => return Err(io_error(op, path, e)),
            }
        }
        Err(Error::unavailable(format!(
            "secret `{path}` kept being deleted while its settings were written: retry"
        )))
    }

    /// Collects the secrets in folder `dir` of the tree whose path so far
    /// is `base` (empty, or ending in `/`), inside a long segment whose
    /// bytes so far are `pending` (read from `.d` directories), keeping
    /// those whose segment here starts with `want`.
    fn scan(&self, dir: &Path, base: &[u8], pending: &[u8], want: &[u8], out: &mut BTreeSet<String>) -> io::Result<()> {
        let names = match read_names(dir) {
            Ok(Some(names)) => names,
            // Removed by a delete meanwhile, or not a folder.
            Ok(None) => return Ok(()),
            Err(e) if is_missing(&e) => return Ok(()),
            Err(e) => return Err(e),
        };
        for name in names {
            let (kind, bytes) = match node(&name) {
                Node::Folder(bytes) => (Kind::Folder, bytes),
                Node::Secret(bytes) => (Kind::Secret, bytes),
                Node::Continued(bytes) => (Kind::Continued, bytes),
                Node::Other => continue,
            };
            let segment = [pending, &bytes].concat();
            if segment.contains(&b'/') {
                continue;
            }
            let child = dir.join(&name);
            match kind {
                Kind::Secret if segment.starts_with(want) => {
                    let Ok(path) = String::from_utf8([base, &segment].concat()) else {
                        continue;
                    };
                    if validate_path(&path).is_err() {
                        continue;
                    }
                    match has_versions(&child) {
                        Ok(true) => {
                            out.insert(path);
                        }
                        Ok(false) => {}
                        Err(e) if is_missing(&e) => {}
                        Err(e) => return Err(e),
                    }
                }
                Kind::Folder if segment.starts_with(want) => {
                    let base = [base, &segment, b"/"].concat();
                    self.scan(&child, &base, &[], &[], out)?;
                }
                Kind::Continued if segment.starts_with(want) || want.starts_with(&segment) => {
                    self.scan(&child, base, &segment, want, out)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Collects the secrets still in the layout before the tree (whose
    /// paths start with `prefix`): walks `dir` (the data directory, or a
    /// long path's `<chunk>.d` directory whose hex so far is `hex`). Costs a
    /// look at the data directory's few names once every secret is in the
    /// tree. Removes what deletes before the tree left behind.
    fn collect_legacy(&self, dir: &Path, hex: String, prefix: &str, out: &mut BTreeSet<String>) -> io::Result<()> {
        let names = match read_names(dir)? {
            Some(names) => names,
            None if dir != self.root => return Ok(()),
            None => return Err(ErrorKind::NotFound.into()),
        };
        for name in names {
            if let Some(chunk) = continued_chunk(&name) {
                self.collect_legacy(&dir.join(&name), format!("{hex}{chunk}"), prefix, out)?;
            } else if is_hex_name(&name) {
                let Some(path) = decode_hex(&format!("{hex}{name}")).and_then(|b| String::from_utf8(b).ok()) else {
                    continue;
                };
                if !path.starts_with(prefix) || validate_path(&path).is_err() {
                    continue;
                }
                match list_dir(&dir.join(&name)) {
                    Ok(listing) if !listing.versions.is_empty() => {
                        out.insert(path);
                    }
                    Ok(_) => {}
                    // Moved into the tree, deleted meanwhile, or not a directory.
                    Err(e) if is_missing(&e) => {}
                    Err(e) => return Err(e),
                }
            } else if dir == self.root && name.starts_with(LEGACY_TRASH_PREFIX) {
                let _ = fs::remove_dir_all(dir.join(&name));
            }
        }
        Ok(())
    }
}

/// Removes the versions of the secret in `dir` that fall out of a window
/// of `max_versions` below version `latest`, oldest included (after the
/// setting was lowered, or a crash mid-prune). Best effort.
fn prune(dir: &Path, latest: u64, max_versions: u64) {
    if max_versions == 0 || latest <= max_versions {
        return;
    }
    let mut n = latest - max_versions;
    while n > 0 {
        // The version file goes first: a crash in between must not make a
        // deleted version readable again.
        if fs::remove_file(dir.join(version_file(n))).is_err() {
            return;
        }
        let _ = fs::remove_file(dir.join(deleted_marker(n)));
        n -= 1;
    }
}

/// Has the version's `delete_version_after` time passed?
fn expired(record: &VersionRecord) -> bool {
    record.delete_at_ms != 0 && now_ms() >= record.delete_at_ms
}

/// When soft-deleted version `n` in `dir` was deleted: the time in its
/// marker, else (a marker from before markers held one) the marker's
/// modification time, else its creation time.
fn deletion_time(dir: &Path, n: u64, record: &VersionRecord) -> u64 {
    let marker = dir.join(deleted_marker(n));
    let written = fs::read_to_string(&marker)
        .ok()
        .and_then(|text| text.trim().parse().ok());
    written
        .or_else(|| {
            let modified = fs::metadata(&marker).and_then(|m| m.modified()).ok()?;
            let ms = modified.duration_since(UNIX_EPOCH).ok()?.as_millis();
            u64::try_from(ms).ok().filter(|&ms| ms > 0)
        })
        .unwrap_or(record.created_ms)
}

/// Replaces version file `n` of the secret in `dir` by `record` in one
/// atomic step (a synced temporary file renamed over it). A version or
/// directory removed meanwhile stays removed.
fn rewrite_record(dir: &Path, n: u64, path: &str, op: &str, record: &VersionRecord) -> Result<(), Error> {
    let bytes = serde_json::to_vec(record).map_err(|e| io_error(op, path, io::Error::other(e)))?;
    let tmp = match create_tmp(dir).and_then(|tmp| write_synced(&tmp, &bytes).map(|()| tmp)) {
        Ok(tmp) => tmp,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(op, path, e)),
    };
    let target = dir.join(version_file(n));
    // Renaming over a version that is gone would bring it back.
    let replaced = match present(&target) {
        Ok(true) => fs::rename(&tmp, &target),
        Ok(false) => Err(io::Error::from(ErrorKind::NotFound)),
        Err(e) => Err(e),
    };
    if replaced.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    match replaced {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(op, path, e)),
    }
}

/// Writes `bytes` as `dir/name` in one atomic step (a synced temporary
/// file renamed over it), then syncs `dir`. `NotFound` when `dir` does not
/// exist.
fn replace_file(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = create_tmp(dir)?;
    let written = write_synced(&tmp, bytes).and_then(|()| fs::rename(&tmp, dir.join(name)));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

/// A settings file that cannot be read (`path` empty: the mount's).
fn settings_error(path: &str, e: io::Error) -> Error {
    if path.is_empty() {
        Error::internal(format!(
            "the mount's settings in the data directory cannot be read: {e}"
        ))
    } else {
        Error::internal(format!("the settings of secret `{path}` cannot be read: {e}"))
    }
}

/// What a name in a folder of the tree is, without its bytes.
enum Kind {
    Folder,
    Secret,
    Continued,
}

/// The two temporary files of a `put`, in the secret's directory: the
/// version record (then linked as `<n>.json`) and the new `head` (then
/// renamed onto `head`). Whatever is left of them is removed on drop.
struct Tmps {
    version: PathBuf,
    /// `None` once renamed onto `head`.
    head: Option<PathBuf>,
}

impl Tmps {
    /// Creates both files, empty; `NotFound` when `dir` does not exist.
    fn create(dir: &Path) -> io::Result<Tmps> {
        let version = create_tmp(dir)?;
        match create_tmp(dir) {
            Ok(head) => Ok(Tmps {
                version,
                head: Some(head),
            }),
            Err(e) => {
                let _ = fs::remove_file(&version);
                Err(e)
            }
        }
    }

    /// Points `head` at version `n`, if the directory is still the one the
    /// files were made in. Best effort.
    fn publish_head(&mut self, dir: &Path, n: u64) {
        let Some(head) = &self.head else { return };
        let written = OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(head)
            .and_then(|mut file| file.write_all(n.to_string().as_bytes()));
        if written.is_ok() && fs::rename(head, dir.join(HEAD_FILE)).is_ok() {
            self.head = None;
        }
    }
}

impl Drop for Tmps {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.version);
        if let Some(head) = &self.head {
            let _ = fs::remove_file(head);
        }
    }
}

/// The latest version in the secret directory `dir` (0: none, or no such
/// directory): from `head` and a look further, or, when `head` is missing,
/// unreadable or names a version that is gone, from a listing.
fn latest(dir: &Path) -> io::Result<u64> {
    match fs::read(dir.join(HEAD_FILE)) {
        Ok(bytes) => {
            let hint = std::str::from_utf8(&bytes)
                .ok()
                .and_then(|text| parse_version(text.trim()));
            if let Some(hint) = hint {
                if present(&dir.join(version_file(hint)))? {
                    return Ok(probe(dir, hint));
                }
            }
        }
        Err(e) if is_missing(&e) => {}
        Err(e) => return Err(e),
    }
    Ok(list_dir(dir)?.latest())
}

/// The last of the versions `n`, `n + 1`, ... that exist in `dir`, given
/// that `n` does.
fn probe(dir: &Path, n: u64) -> u64 {
    let mut last = n;
    while present(&dir.join(version_file(last + 1))).unwrap_or(false) {
        last += 1;
    }
    last
}

/// Does the secret directory `dir` hold a version? (`head` is written only
/// after one was published.)
fn has_versions(dir: &Path) -> io::Result<bool> {
    if present(&dir.join(HEAD_FILE))? {
        return Ok(true);
    }
    match read_names(dir)? {
        Some(names) => Ok(names.iter().any(|name| matches!(classify(name), Entry::Version(_)))),
        None => Err(ErrorKind::NotFound.into()),
    }
}

/// Creates `dir` and the missing directories above it, recording each one
/// made in `created`.
fn create_dirs(dir: &Path, created: &mut Vec<PathBuf>) -> io::Result<()> {
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let Some(parent) = dir.parent() else {
                return Err(e);
            };
            create_dirs(parent, created)?;
            match fs::create_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    }
    created.push(dir.to_owned());
    Ok(())
}

/// The directories whose entries changed when `created` were made (or
/// moved): their parents, each once.
fn parents_to_sync(created: &[PathBuf]) -> BTreeSet<PathBuf> {
    created
        .iter()
        .filter_map(|dir| dir.parent().map(Path::to_owned))
        .collect()
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
        Err(e) if is_missing(&e) => return Ok(None),
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

/// Creates an empty `tmp-<random>` file in `dir`.
fn create_tmp(dir: &Path) -> io::Result<PathBuf> {
    let suffix = random_suffix().map_err(|e| io::Error::other(e.message().to_owned()))?;
    let tmp = dir.join(format!("{TMP_PREFIX}{suffix}"));
    OpenOptions::new().write(true).create_new(true).open(&tmp)?;
    Ok(tmp)
}

/// Replaces the content of the existing file `file` with `bytes` and syncs
/// it; `NotFound` when the file is gone (its directory was deleted).
fn write_synced(file: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).truncate(true).open(file)?;
    file.write_all(bytes)?;
    file.sync_all()
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

/// Does `path` exist?
fn present(path: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if is_missing(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Does `e` say that a name does not exist (or that something on its way
/// is not a directory)?
fn is_missing(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory)
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
