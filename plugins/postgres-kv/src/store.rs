//! The store: versioned, sealed secrets in the mount's two tables (see
//! [`crate::schema`]), with the file provider's semantics.
//!
//! - A write locks the secret's row (`SELECT ... FOR UPDATE`, the row made
//!   first if needed) and, in the same transaction, checks the expected
//!   version, inserts version `latest + 1` and removes the versions beyond
//!   `max_versions`: concurrent writers of one secret take turns, so
//!   versions stay contiguous and a check-and-set is exact.
//! - A delete removes the secret's row, and its versions with it, in one
//!   statement; a later write starts again from version 1.
//! - Soft delete, destroy and undelete are one `UPDATE` each.
//!
//! Values are sealed by a [`Sealer`] (the host, in the plugin) with the
//! context `"<path>\0<version>"` before they reach the database, and
//! unsealed after they leave it: the tables never hold a plaintext value.
//! Metadata and settings are not secret and are stored as they are.

use tresor_pgwire::wire::Param::{self, Bytes, Text};
use tresor_plugin_sdk::{validate_path, Error, Secret, Settings, VersionInfo};

use crate::config::KvConfig;
use crate::queries::{bigint, like_prefix, parse_version, seal_context, version_array, Queries};
use crate::rows::{empty_settings, single_boolean, StoredSettings, VersionRow, WriteState};
use crate::rules::Rules;
use crate::session::{Conn, Failure, Session};

/// How many times a write makes the secret's row again when a concurrent
/// delete removed it before it could be locked.
const MAX_LOCK_ATTEMPTS: usize = 3;

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

/// A mount's secrets in PostgreSQL. See the [module](self) docs.
pub struct Store<S> {
    session: Session,
    queries: Queries,
    sealer: S,
}

impl<S: Sealer> Store<S> {
    /// Connects to the database and creates the mount's tables unless they
    /// exist.
    pub fn open(config: KvConfig, sealer: S) -> Result<Self, Error> {
        let mut session = Session::new(config.connection);
        let create = config.tables.create_sql();
        session.run("creating the plugin's tables", |conn| conn.simple(&create))?;
        Ok(Store {
            session,
            queries: Queries::new(&config.tables),
            sealer,
        })
    }

    /// Reads the latest version of `path`, or `version`. A deleted or
    /// destroyed version is `not-found`.
    pub fn get(&mut self, path: &str, version: Option<&str>) -> Result<Secret, Error> {
        let wanted = match version {
            Some(text) => Some(
                parse_version(text)
                    .ok_or_else(|| Error::not_found(format!("secret `{path}` has no version `{text}`")))?,
            ),
            None => None,
        };
        let q = &self.queries;
        let rows = self
            .session
            .run(&format!("reading secret `{path}`"), |conn| match wanted {
                Some(n) => conn.query(&q.version, &[Text(path), Text(&n.to_string())]),
                None => conn.query(&q.latest, &[Text(path)]),
            })?;
        let Some(row) = rows.first() else {
            return Err(match wanted {
                Some(n) => Error::not_found(format!("secret `{path}` has no version {n}")),
                None => no_such_secret(path),
            });
        };
        let row = VersionRow::decode(row)?;
        let n = row.version;
        if row.deleted_ms.is_some() {
            return Err(Error::not_found(format!(
                "version {n} of secret `{path}` is deleted: undelete it to read it"
            )));
        }
        if row.expired {
            return Err(Error::not_found(format!(
                "version {n} of secret `{path}` was deleted by its delete_version_after setting"
            )));
        }
        let Some(sealed) = row.sealed else {
            return Err(Error::not_found(format!(
                "version {n} of secret `{path}` was destroyed"
            )));
        };
        let value = self
            .sealer
            .unseal(&sealed, &seal_context(path, n))
            .map_err(|e| match e {
                Error::InvalidInput(_) => Error::internal(format!(
                    "version {n} of secret `{path}` cannot be decrypted: its row was altered, \
                     or it was written by another mount"
                )),
                other => other,
            })?;
        Ok(Secret {
            value,
            version: n.to_string(),
            created_ms: row.created_ms,
            metadata: row.metadata,
            deletion_ms: row.delete_at_ms,
        })
    }

    /// Writes a new version of `path` and returns its number. With
    /// `expected_version`, writes only if the latest version is that one
    /// (`""`: the secret must not exist), else answers `conflict`.
    pub fn put(
        &mut self,
        path: &str,
        value: &[u8],
        metadata: &[(String, String)],
        expected_version: Option<&str>,
    ) -> Result<String, Error> {
        let metadata = serde_json::to_string(metadata)
            .map_err(|_| Error::internal(format!("the metadata of secret `{path}` cannot be encoded")))?;
        let (q, sealer) = (&self.queries, &self.sealer);
        let n = self.session.transaction(&format!("writing secret `{path}`"), |conn| {
            let state = lock_secret(conn, q, path)?;
            let rules = Rules::new(&state.secret, &state.mount);
            if rules.cas_required && expected_version.is_none() {
                return Err(Error::invalid_input(format!(
                    "check-and-set parameter required for this call: secret `{path}` requires check-and-set \
                     (cas_required); send the version you expect to replace (0 for a new secret)"
                ))
                .into());
            }
            if let Some(expected) = expected_version {
                check_expected(path, state.latest, expected)?;
            }
            let n = state.latest + 1;
            let sealed = sealer.seal(value, &seal_context(path, n))?;
            let version = n.to_string();
            let after = bigint(rules.delete_version_after_ms);
            conn.query(
                &q.insert_version,
                &[
                    Text(path),
                    Text(&version),
                    Bytes(&sealed),
                    Text(&metadata),
                    Text(&after),
                ],
            )?;
            prune(conn, q, path, &rules, n)?;
            Ok(n)
        })?;
        Ok(n.to_string())
    }

    /// Deletes `path` with all its versions (and its settings).
    pub fn delete(&mut self, path: &str) -> Result<(), Error> {
        let q = &self.queries;
        let rows = self.session.run(&format!("deleting secret `{path}`"), |conn| {
            conn.query(&q.delete_secret, &[Text(path)])
        })?;
        match single_boolean(&rows, "deleted")? {
            Some(true) => Ok(()),
            _ => Err(no_such_secret(path)),
        }
    }

    /// Soft-deletes `versions` of `path`, or with `destroy` erases their
    /// sealed values for good. Unknown versions are ignored.
    pub fn delete_versions(&mut self, path: &str, versions: &[String], destroy: bool) -> Result<(), Error> {
        let (sql, what) = if destroy {
            (&self.queries.destroy, "destroying versions of")
        } else {
            (&self.queries.soft_delete, "deleting versions of")
        };
        mark(&mut self.session, path, versions, sql, what)
    }

    /// Restores soft-deleted `versions` of `path`. Destroyed and unknown
    /// versions are ignored.
    pub fn undelete_versions(&mut self, path: &str, versions: &[String]) -> Result<(), Error> {
        mark(
            &mut self.session,
            path,
            versions,
            &self.queries.undelete,
            "undeleting versions of",
        )
    }

    /// Moves every version of `path` to the host's current key generation
    /// (see [`Sealer::reseal`]). Each value is replaced only if it is still
    /// the one read, so a version destroyed or pruned meanwhile stays so.
    /// Returns (versions holding a sealed value, moved).
    pub fn reseal(&mut self, path: &str) -> Result<(u32, u32), Error> {
        let (q, sealer) = (&self.queries, &self.sealer);
        self.session.run(&format!("resealing secret `{path}`"), |conn| {
            let rows = conn.query(&q.sealed_versions, &[Text(path)])?;
            if rows.is_empty() {
                return Err(no_such_secret(path).into());
            }
            let mut moved = 0u32;
            for row in &rows {
                let (n, sealed) = crate::rows::sealed_version(row)?;
                let Some(resealed) = sealer.reseal(&sealed, &seal_context(path, n))? else {
                    continue;
                };
                let version = n.to_string();
                let replaced = conn.query(
                    &q.reseal,
                    &[Text(path), Text(&version), Bytes(&sealed), Bytes(&resealed)],
                )?;
                moved += u32::from(!replaced.is_empty());
            }
            Ok((rows.len() as u32, moved))
        })
    }

    /// The paths of all secrets starting with `prefix`, sorted bytewise.
    pub fn list(&mut self, prefix: &str) -> Result<Vec<String>, Error> {
        let q = &self.queries;
        let pattern = like_prefix(prefix);
        let rows = self
            .session
            .run("listing secrets", |conn| conn.query(&q.list, &[Text(&pattern)]))?;
        Ok(rows
            .into_iter()
            .filter_map(|row| row.into_iter().next().flatten())
            .filter(|path| validate_path(path).is_ok())
            .collect())
    }

    /// Every version of `path`, oldest first.
    pub fn versions(&mut self, path: &str) -> Result<Vec<VersionInfo>, Error> {
        let q = &self.queries;
        let rows = self
            .session
            .run(&format!("listing the versions of secret `{path}`"), |conn| {
                conn.query(&q.versions, &[Text(path)])
            })?;
        if rows.is_empty() {
            return Err(no_such_secret(path));
        }
        rows.iter()
            .map(|row| VersionRow::decode(row).map(VersionRow::into_info))
            .collect()
    }

    /// The settings of the secret at `path` (its own), or the mount's for
    /// the empty path. `not-found` when the secret has neither versions
    /// nor settings.
    pub fn settings(&mut self, path: &str) -> Result<Settings, Error> {
        let q = &self.queries;
        let rows = self.session.run(&settings_what("reading", path), |conn| {
            conn.query(&q.settings, &[Text(path)])
        })?;
        let stored = rows.first().map(StoredSettings::decode).transpose()?;
        match stored {
            Some(stored) if path.is_empty() || stored.has_settings || stored.has_versions => Ok(stored.settings),
            None if path.is_empty() => Ok(empty_settings()),
            _ => Err(no_such_secret(path)),
        }
    }

    /// Replaces the settings of the secret at `path` (making its row when
    /// it has none yet), or the mount's for the empty path; a secret's
    /// versions beyond a lower `max_versions` go at once.
    pub fn set_settings(&mut self, path: &str, new: &Settings) -> Result<(), Error> {
        let q = &self.queries;
        let max_versions = new.max_versions.to_string();
        let cas_required = if new.cas_required { "true" } else { "false" };
        let after = bigint(new.delete_version_after_ms);
        let params = [Text(path), Text(&max_versions), Text(cas_required), Text(&after)];
        let what = settings_what("writing", path);
        if path.is_empty() {
            self.session.run(&what, |conn| conn.query(&q.set_settings, &params))?;
            return Ok(());
        }
        self.session.transaction(&what, |conn| {
            conn.query(&q.set_settings, &params)?;
            let state = lock_secret(conn, q, path)?;
            prune(conn, q, path, &Rules::new(&state.secret, &state.mount), state.latest)
        })
    }
}

/// Runs one of the marking statements (soft delete, destroy, undelete) on
/// `versions` of `path`; `not-found` when it has no versions.
fn mark(session: &mut Session, path: &str, versions: &[String], sql: &str, what: &str) -> Result<(), Error> {
    let array = version_array(versions);
    let params: [Param<'_>; 2] = [Text(path), Text(&array)];
    let rows = session.run(&format!("{what} secret `{path}`"), |conn| conn.query(sql, &params))?;
    match single_boolean(&rows, "has versions")? {
        Some(true) => Ok(()),
        _ => Err(no_such_secret(path)),
    }
}

/// Makes the row of `path` unless it exists and locks it for the rest of
/// the transaction; then reads the rules and latest version a write needs.
fn lock_secret(conn: &mut Conn<'_>, q: &Queries, path: &str) -> Result<WriteState, Failure> {
    for _ in 0..MAX_LOCK_ATTEMPTS {
        conn.query(&q.ensure_secret, &[Text(path)])?;
        if conn.query(&q.lock_secret, &[Text(path)])?.is_empty() {
            // Deleted by a concurrent delete between the two: make it again.
            continue;
        }
        let rows = conn.query(&q.write_state, &[Text(path)])?;
        let row = rows
            .first()
            .ok_or_else(|| Error::internal(format!("the locked row of secret `{path}` is gone")))?;
        return Ok(WriteState::decode(row)?);
    }
    Err(Error::unavailable(format!(
        "secret `{path}` kept being deleted while it was written: retry"
    ))
    .into())
}

/// Removes the versions of `path` that a window of `rules.max_versions`
/// below `latest` no longer keeps.
fn prune(conn: &mut Conn<'_>, q: &Queries, path: &str, rules: &Rules, latest: u64) -> Result<(), Failure> {
    if let Some(through) = rules.prune_through(latest) {
        conn.query(&q.prune, &[Text(path), Text(&through.to_string())])?;
    }
    Ok(())
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

/// What a settings operation is doing, for errors.
fn settings_what(doing: &str, path: &str) -> String {
    if path.is_empty() {
        format!("{doing} the mount's settings")
    } else {
        format!("{doing} the settings of secret `{path}`")
    }
}

fn no_such_secret(path: &str) -> Error {
    Error::not_found(format!("no secret at `{path}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_and_set_compares_with_the_latest_version() {
        assert!(check_expected("a", 0, "").is_ok());
        assert!(check_expected("a", 3, "3").is_ok());
        for (latest, expected, says) in [
            (2, "", "current version of `a` is 2, expected the secret not to exist"),
            (2, "1", "current version of `a` is 2, expected version 1"),
            (0, "1", "secret `a` does not exist, expected version 1"),
            (2, "02", "current version of `a` is 2, expected version 02"),
        ] {
            match check_expected("a", latest, expected) {
                Err(Error::Conflict(m)) => assert_eq!(m, says),
                other => panic!("expected a conflict, got {other:?}"),
            }
        }
    }

    #[test]
    fn settings_errors_say_whose() {
        assert_eq!(settings_what("reading", ""), "reading the mount's settings");
        assert_eq!(settings_what("writing", "a/b"), "writing the settings of secret `a/b`");
    }
}
