//! The statements the store runs, built once for the mount's tables, and
//! the text of their parameters. Every value travels as a parameter
//! (`$1`, `$2`, ...), never inside the SQL.
//!
//! Times come from the database's clock (`statement_timestamp()`), so the
//! mount needs no clock grant and every instance agrees on "now".

use crate::schema::Tables;

/// The database's clock, in milliseconds since the Unix epoch.
const NOW_MS: &str = "(extract(epoch FROM statement_timestamp()) * 1000)::bigint";

/// The SQL of every operation, for one mount's tables.
pub struct Queries {
    /// `$1` path: the latest version's row ([`crate::rows::VersionRow`]).
    pub latest: String,
    /// `$1` path, `$2` version: that version's row.
    pub version: String,
    /// `$1` path: every version's row without its value, oldest first.
    pub versions: String,
    /// `$1` path: makes the secret's row unless it exists.
    pub ensure_secret: String,
    /// `$1` path: locks the secret's row (`FOR UPDATE`) until the end of
    /// the transaction; one row, or none when there is no such secret.
    pub lock_secret: String,
    /// `$1` path: the rules and latest version of a write
    /// ([`crate::rows::WriteState`]). A statement of its own, after
    /// `lock_secret`: a statement that waited for a lock still sees what
    /// was committed before it started (READ COMMITTED), so the latest
    /// version must be read by the next one.
    pub write_state: String,
    /// `$1` path, `$2` version, `$3` sealed value, `$4` metadata JSON, `$5`
    /// delete_version_after in ms (0: never; a deadline past `bigint` is
    /// the largest one).
    pub insert_version: String,
    /// `$1` path, `$2` version: removes that version and all older ones.
    pub prune: String,
    /// `$1` path: deletes the secret with its versions; one row, true when
    /// it had versions or settings, or no row when there was no secret.
    pub delete_secret: String,
    /// `$1` path, `$2` versions (`bigint[]`): soft-deletes them (keeping a
    /// first deletion time); one row, true when the secret has versions.
    pub soft_delete: String,
    /// As `soft_delete`, but erases the sealed values for good.
    pub destroy: String,
    /// As `soft_delete`, but restores them (destroyed ones stay as they are).
    pub undelete: String,
    /// `$1` path: the number and sealed value (hex) of every version that
    /// has one, oldest first.
    pub sealed_versions: String,
    /// `$1` path, `$2` version, `$3` the sealed value read, `$4` the
    /// resealed one: replaces the value only if it is still the one read
    /// (one row when it was).
    pub reseal: String,
    /// `$1` `LIKE` pattern ([`like_prefix`]): the paths of the secrets with
    /// versions, sorted.
    pub list: String,
    /// `$1` path: the row's settings ([`crate::rows::StoredSettings`]).
    pub settings: String,
    /// `$1` path, `$2` max_versions, `$3` cas_required, `$4`
    /// delete_version_after in ms: replaces the settings (making the row).
    pub set_settings: String,
}

impl Queries {
    /// The statements on `tables`.
    pub fn new(tables: &Tables) -> Queries {
        let Tables { secrets, versions, .. } = tables;
        let info = format!(
            "version, created_ms, deleted_ms, destroyed, delete_at_ms, \
             (delete_at_ms <> 0 AND delete_at_ms <= {NOW_MS}) AS expired, metadata::text"
        );
        let full = format!("{info}, encode(sealed, 'hex')");
        let has_versions = |path: &str| format!("EXISTS (SELECT 1 FROM {versions} v WHERE v.path = {path})");
        let mark = |set: &str, only: &str| {
            format!(
                "WITH changed AS (UPDATE {versions} SET {set} WHERE path = $1 AND version = ANY ($2::bigint[]){only} \
                 RETURNING 1) SELECT {}",
                has_versions("$1")
            )
        };
        Queries {
            latest: format!("SELECT {full} FROM {versions} WHERE path = $1 ORDER BY version DESC LIMIT 1"),
            version: format!("SELECT {full} FROM {versions} WHERE path = $1 AND version = $2::bigint"),
            versions: format!("SELECT {info} FROM {versions} WHERE path = $1 ORDER BY version"),
            ensure_secret: format!("INSERT INTO {secrets} (path) VALUES ($1) ON CONFLICT (path) DO NOTHING"),
            lock_secret: format!("SELECT 1 FROM {secrets} WHERE path = $1 FOR UPDATE"),
            write_state: format!(
                "SELECT s.max_versions, s.cas_required, s.delete_version_after_ms, \
                 m.max_versions, m.cas_required, m.delete_version_after_ms, \
                 (SELECT max(v.version) FROM {versions} v WHERE v.path = s.path) \
                 FROM {secrets} s LEFT JOIN {secrets} m ON m.path = '' WHERE s.path = $1"
            ),
            insert_version: format!(
                "INSERT INTO {versions} (path, version, sealed, metadata, created_ms, delete_at_ms) \
                 SELECT $1, $2::bigint, $3::bytea, $4::json, t.now, \
                 CASE WHEN $5::bigint = 0 THEN 0 \
                 ELSE LEAST(t.now::numeric + $5::bigint, 9223372036854775807)::bigint END \
                 FROM (SELECT {NOW_MS} AS now) t"
            ),
            prune: format!("DELETE FROM {versions} WHERE path = $1 AND version <= $2::bigint"),
            delete_secret: format!(
                "WITH gone AS (DELETE FROM {secrets} WHERE path = $1 RETURNING has_settings) \
                 SELECT gone.has_settings OR {} FROM gone",
                has_versions("$1")
            ),
            soft_delete: mark(&format!("deleted_ms = COALESCE(deleted_ms, {NOW_MS})"), ""),
            destroy: mark("sealed = NULL, destroyed = true", ""),
            undelete: mark("deleted_ms = NULL", " AND NOT destroyed"),
            sealed_versions: format!(
                "SELECT version, encode(sealed, 'hex') FROM {versions} \
                 WHERE path = $1 AND sealed IS NOT NULL ORDER BY version"
            ),
            reseal: format!(
                "UPDATE {versions} SET sealed = $4::bytea \
                 WHERE path = $1 AND version = $2::bigint AND sealed = $3::bytea RETURNING 1"
            ),
            list: format!(
                "SELECT s.path FROM {secrets} s WHERE s.path LIKE $1 ESCAPE E'\\\\' AND s.path <> '' AND {} \
                 ORDER BY s.path",
                has_versions("s.path")
            ),
            settings: format!(
                "SELECT s.has_settings, s.max_versions, s.cas_required, s.delete_version_after_ms, {} \
                 FROM {secrets} s WHERE s.path = $1",
                has_versions("s.path")
            ),
            set_settings: format!(
                "INSERT INTO {secrets} (path, has_settings, max_versions, cas_required, delete_version_after_ms) \
                 VALUES ($1, true, $2::bigint, $3::boolean, $4::bigint) \
                 ON CONFLICT (path) DO UPDATE SET has_settings = true, max_versions = excluded.max_versions, \
                 cas_required = excluded.cas_required, delete_version_after_ms = excluded.delete_version_after_ms"
            ),
        }
    }
}

/// The `LIKE` pattern of the paths starting with `prefix`: its `\`, `%`
/// and `_` escaped (with `\`), then `%`.
pub fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 2);
    for c in prefix.chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Parses a version identifier: a decimal number from 1 up, written without
/// sign or leading zeros (`"1"`, `"42"`), that fits a `bigint`. Anything
/// else names no version.
pub fn parse_version(text: &str) -> Option<u64> {
    if text.is_empty() || text.starts_with('0') || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<i64>().ok().and_then(|n| u64::try_from(n).ok())
}

/// The `bigint[]` literal of the `versions` that name a version (others
/// are ignored, as unknown versions are): `{1,3}`.
pub fn version_array(versions: &[String]) -> String {
    let numbers: Vec<String> = versions
        .iter()
        .filter_map(|v| parse_version(v))
        .map(|n| n.to_string())
        .collect();
    format!("{{{}}}", numbers.join(","))
}

/// A `bigint` parameter from a setting in `u64` (saturating: PostgreSQL's
/// `bigint` is signed).
pub fn bigint(n: u64) -> String {
    n.min(i64::MAX as u64).to_string()
}

/// The context the host binds to a sealed value: `"<path>\0<version>"`, as
/// the file provider does, so a value copied to another path or version
/// (or another mount) fails to unseal.
pub fn seal_context(path: &str, version: u64) -> Vec<u8> {
    format!("{path}\0{version}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queries() -> Queries {
        Queries::new(&Tables::new("kv").unwrap_or_else(|e| panic!("{e:?}")))
    }

    #[test]
    fn escapes_like_wildcards() {
        assert_eq!(like_prefix(""), "%");
        assert_eq!(like_prefix("app/"), "app/%");
        assert_eq!(like_prefix("a_b%c\\d"), "a\\_b\\%c\\\\d%");
        assert_eq!(like_prefix("pässwörd/秘"), "pässwörd/秘%");
    }

    #[test]
    fn versions_are_canonical_decimals_that_fit_a_bigint() {
        assert_eq!(parse_version("1"), Some(1));
        assert_eq!(parse_version("9223372036854775807"), Some(i64::MAX as u64));
        for text in ["", "0", "01", "+1", "-1", "1.0", " 1", "abc", "9223372036854775808"] {
            assert_eq!(parse_version(text), None, "{text:?}");
        }
        let versions = ["2", "x", "07", "11"].map(String::from);
        assert_eq!(version_array(&versions), "{2,11}");
        assert_eq!(version_array(&[]), "{}");
        assert_eq!(bigint(u64::MAX), i64::MAX.to_string());
        assert_eq!(bigint(600_000), "600000");
    }

    #[test]
    fn the_context_binds_path_and_version() {
        assert_eq!(seal_context("a/b", 7), b"a/b\x007".to_vec());
    }

    #[test]
    fn statements_use_the_mounts_tables_and_parameters_only() {
        let q = queries();
        for sql in [&q.latest, &q.version, &q.versions, &q.prune, &q.insert_version] {
            assert!(sql.contains("\"kv_versions\""), "{sql}");
            assert!(!sql.contains("\"kv_secrets\""), "{sql}");
        }
        for sql in [&q.ensure_secret, &q.set_settings, &q.lock_secret] {
            assert!(
                sql.contains("\"kv_secrets\"") && !sql.contains("\"kv_versions\""),
                "{sql}"
            );
        }
        assert!(
            q.lock_secret.ends_with("WHERE path = $1 FOR UPDATE"),
            "{}",
            q.lock_secret
        );
        assert!(!q.write_state.contains("FOR UPDATE"), "{}", q.write_state);
        assert!(q.latest.ends_with("ORDER BY version DESC LIMIT 1"));
        assert!(q.latest.contains("encode(sealed, 'hex')") && !q.versions.contains("sealed"));
        assert!(q.list.contains("LIKE $1 ESCAPE E'\\\\'"), "{}", q.list);
        assert!(q.insert_version.contains("$3::bytea, $4::json"), "{}", q.insert_version);
        assert!(q.soft_delete.contains("COALESCE(deleted_ms,"), "{}", q.soft_delete);
        assert!(q.destroy.contains("sealed = NULL, destroyed = true"), "{}", q.destroy);
        assert!(q.undelete.contains("AND NOT destroyed RETURNING 1"), "{}", q.undelete);
    }
}
