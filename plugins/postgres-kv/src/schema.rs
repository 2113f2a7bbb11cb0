//! The two tables a mount keeps its secrets in, created by the plugin when
//! the mount starts (`CREATE TABLE IF NOT EXISTS`, so starting again, or
//! many instances starting at once, changes nothing):
//!
//! ```sql
//! CREATE TABLE "<prefix>_secrets" (          -- one row per secret, and '' for the mount
//!     path                    text COLLATE "C" PRIMARY KEY,
//!     has_settings            boolean NOT NULL DEFAULT false,  -- set-settings was called
//!     max_versions            bigint  NOT NULL DEFAULT 0,      -- 0: not set here
//!     cas_required            boolean NOT NULL DEFAULT false,
//!     delete_version_after_ms bigint  NOT NULL DEFAULT 0       -- 0: not set here
//! );
//! CREATE TABLE "<prefix>_versions" (         -- one row per version
//!     path         text COLLATE "C" NOT NULL REFERENCES "<prefix>_secrets" ON DELETE CASCADE,
//!     version      bigint  NOT NULL,          -- 1, 2, ... per secret
//!     sealed       bytea,                     -- the value sealed by the host; NULL once destroyed
//!     metadata     json    NOT NULL,          -- [["key", "value"], ...], not secret
//!     created_ms   bigint  NOT NULL,          -- the database's clock
//!     deleted_ms   bigint,                    -- soft-deleted at; NULL: not deleted
//!     destroyed    boolean NOT NULL DEFAULT false,
//!     delete_at_ms bigint  NOT NULL DEFAULT 0, -- delete_version_after deadline; 0: never
//!     PRIMARY KEY (path, version)
//! );
//! ```
//!
//! Paths sort and compare bytewise (`COLLATE "C"`), as the file provider
//! sorts them, and a prefix `LIKE` uses the primary key's index.

use tresor_pgwire::wire::quote_identifier;
use tresor_plugin_sdk::Error;

/// The table prefix when the mount's config sets none.
pub const DEFAULT_TABLE_PREFIX: &str = "tresor_kv";

/// The longest table prefix, so that `<prefix>_versions` fits PostgreSQL's
/// 63-byte identifiers.
pub const MAX_TABLE_PREFIX_LEN: usize = 54;

/// The first key of the advisory lock that serializes schema creation
/// (`'trkv'`); the second is the prefix's hash.
const SCHEMA_LOCK_CLASS: i32 = 0x7472_6b76;

/// The names of a mount's tables.
#[derive(Clone, Debug)]
pub struct Tables {
    prefix: String,
    /// `"<prefix>_secrets"`, quoted.
    pub secrets: String,
    /// `"<prefix>_versions"`, quoted.
    pub versions: String,
}

impl Tables {
    /// The tables named by config key `table_prefix`: lower-case letters,
    /// digits and `_`, starting with a letter or `_`, at most
    /// [`MAX_TABLE_PREFIX_LEN`] bytes.
    pub fn new(prefix: &str) -> Result<Tables, Error> {
        let well_formed = prefix.len() <= MAX_TABLE_PREFIX_LEN
            && prefix.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !well_formed {
            return Err(Error::invalid_input(format!(
                "config key `table_prefix` must be lower-case letters, digits and `_`, not starting with a digit, \
                 at most {MAX_TABLE_PREFIX_LEN} characters (the default is {DEFAULT_TABLE_PREFIX})"
            )));
        }
        Ok(Tables {
            prefix: prefix.to_owned(),
            secrets: quote_identifier(&format!("{prefix}_secrets")),
            versions: quote_identifier(&format!("{prefix}_versions")),
        })
    }

    /// The prefix the tables are named with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Creates the tables unless they exist, as one simple query (one
    /// transaction) under an advisory lock: concurrent `CREATE TABLE IF NOT
    /// EXISTS` of one name can otherwise fail.
    pub fn create_sql(&self) -> String {
        let Tables {
            prefix,
            secrets,
            versions,
        } = self;
        // The prefix is letters, digits and `_`: safe in a literal.
        format!(
            "SELECT pg_catalog.pg_advisory_xact_lock({SCHEMA_LOCK_CLASS}, pg_catalog.hashtext('{prefix}'));
CREATE TABLE IF NOT EXISTS {secrets} (
    path text COLLATE \"C\" PRIMARY KEY,
    has_settings boolean NOT NULL DEFAULT false,
    max_versions bigint NOT NULL DEFAULT 0 CHECK (max_versions >= 0),
    cas_required boolean NOT NULL DEFAULT false,
    delete_version_after_ms bigint NOT NULL DEFAULT 0 CHECK (delete_version_after_ms >= 0)
);
CREATE TABLE IF NOT EXISTS {versions} (
    path text COLLATE \"C\" NOT NULL REFERENCES {secrets} (path) ON DELETE CASCADE,
    version bigint NOT NULL CHECK (version > 0),
    sealed bytea,
    metadata json NOT NULL DEFAULT '[]',
    created_ms bigint NOT NULL,
    deleted_ms bigint,
    destroyed boolean NOT NULL DEFAULT false,
    delete_at_ms bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (path, version),
    CHECK (destroyed = (sealed IS NULL))
);"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_quotes_the_tables() {
        let t = Tables::new(DEFAULT_TABLE_PREFIX).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(t.secrets, "\"tresor_kv_secrets\"");
        assert_eq!(t.versions, "\"tresor_kv_versions\"");
        let long = "a".repeat(MAX_TABLE_PREFIX_LEN);
        let t = Tables::new(&long).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(t.versions.len() - 2, 63);
        assert!(Tables::new("_x1").is_ok());
    }

    #[test]
    fn refuses_prefixes_that_are_not_plain_names() {
        let too_long = "a".repeat(MAX_TABLE_PREFIX_LEN + 1);
        for prefix in [
            "",
            "1abc",
            "Abc",
            "a-b",
            "a b",
            "a\"b",
            "a;drop",
            "é",
            too_long.as_str(),
        ] {
            match Tables::new(prefix) {
                Err(Error::InvalidInput(m)) => assert!(m.contains("`table_prefix`"), "{m}"),
                other => panic!("{prefix:?}: expected invalid-input, got {other:?}"),
            }
        }
    }

    #[test]
    fn creates_both_tables_idempotently_under_a_lock() {
        let sql = Tables::new("kv").unwrap_or_else(|e| panic!("{e:?}")).create_sql();
        assert!(sql.starts_with("SELECT pg_catalog.pg_advisory_xact_lock(1953655670, pg_catalog.hashtext('kv'));"));
        assert!(sql.contains("CREATE TABLE IF NOT EXISTS \"kv_secrets\" ("), "{sql}");
        assert!(sql.contains("CREATE TABLE IF NOT EXISTS \"kv_versions\" ("), "{sql}");
        assert!(
            sql.contains("REFERENCES \"kv_secrets\" (path) ON DELETE CASCADE"),
            "{sql}"
        );
        assert!(sql.contains("PRIMARY KEY (path, version)"), "{sql}");
        assert!(sql.contains("sealed bytea,"), "{sql}");
    }
}
