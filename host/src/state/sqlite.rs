//! The embedded state backend: one SQLite database (`<state_dir>/state.db`).
//!
//! WAL journal with `synchronous = FULL`: a committed transaction is on disk
//! when the call returns, and a crash at any moment leaves the last
//! committed state. The schema is versioned (`PRAGMA user_version`); a
//! database written by a newer Tresor is refused rather than guessed at.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{
    from_json, to_json, ExpiryRecord, LeaseRecord, LeaseState, Member, OutboxRecord, RotationRecord, StateBackend,
    StateError, TokenRecord,
};

/// The newest schema this build knows.
const SCHEMA_VERSION: i64 = 6;

/// Each step brings the schema from version `index` to `index + 1`.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE leases (
        id              TEXT PRIMARY KEY,
        mount           TEXT NOT NULL,
        role            TEXT NOT NULL,
        principal       TEXT NOT NULL,
        token_accessor  TEXT,
        revoke_handle   TEXT NOT NULL,
        issued_ms       INTEGER NOT NULL,
        renewed_ms      INTEGER NOT NULL,
        expires_ms      INTEGER NOT NULL,
        max_expires_ms  INTEGER NOT NULL,
        renewable       INTEGER NOT NULL,
        revocable       INTEGER NOT NULL,
        state           TEXT NOT NULL,
        attempts        INTEGER NOT NULL,
        next_attempt_ms INTEGER NOT NULL,
        last_error      TEXT
    ) STRICT;
    CREATE INDEX leases_by_expiry ON leases (state, expires_ms);
    CREATE INDEX leases_by_attempt ON leases (state, next_attempt_ms);
    CREATE INDEX leases_by_token ON leases (token_accessor);
",
    "
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) STRICT;
    CREATE TABLE tokens (
        hash             TEXT PRIMARY KEY,
        accessor         TEXT NOT NULL UNIQUE,
        principal        TEXT NOT NULL,
        groups           TEXT NOT NULL,
        attributes       TEXT NOT NULL,
        created_unix     INTEGER NOT NULL,
        ttl_seconds      INTEGER NOT NULL,
        expires_unix     INTEGER,
        max_expires_unix INTEGER,
        bootstrap        INTEGER NOT NULL
    ) STRICT;
",
    "
    CREATE TABLE members (
        id           TEXT PRIMARY KEY,
        name         TEXT NOT NULL,
        started_ms   INTEGER NOT NULL,
        last_seen_ms INTEGER NOT NULL,
        jobs         TEXT NOT NULL
    ) STRICT;
",
    "
    CREATE TABLE outbox (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        id              TEXT NOT NULL UNIQUE,
        webhook         TEXT NOT NULL,
        body            TEXT NOT NULL,
        created_ms      INTEGER NOT NULL,
        attempts        INTEGER NOT NULL,
        next_attempt_ms INTEGER NOT NULL,
        last_error      TEXT
    ) STRICT;
    CREATE INDEX outbox_by_attempt ON outbox (next_attempt_ms);
",
    "
    CREATE TABLE rotations (
        path        TEXT PRIMARY KEY,
        revision    INTEGER NOT NULL,
        next_due_ms INTEGER NOT NULL,
        body        TEXT NOT NULL
    ) STRICT;
    CREATE INDEX rotations_by_due ON rotations (next_due_ms);
",
    "
    CREATE TABLE expiries (
        path          TEXT PRIMARY KEY,
        expires_ms    INTEGER NOT NULL,
        next_check_ms INTEGER NOT NULL,
        body          TEXT NOT NULL
    ) STRICT;
    CREATE INDEX expiries_by_check ON expiries (next_check_ms);
    CREATE INDEX expiries_by_time ON expiries (expires_ms);
",
];

const TOKEN_COLUMNS: &str = "hash, accessor, principal, groups, attributes, created_unix, ttl_seconds, \
     expires_unix, max_expires_unix, bootstrap";

const COLUMNS: &str = "id, mount, role, principal, token_accessor, revoke_handle, issued_ms, renewed_ms, \
     expires_ms, max_expires_ms, renewable, revocable, state, attempts, next_attempt_ms, last_error";

/// The embedded SQLite state backend. Calls block on the disk (every
/// commit is synced), so they run on tokio's blocking threads.
#[derive(Clone)]
pub struct SqliteBackend {
    db: Arc<SqliteDb>,
}

impl SqliteBackend {
    /// Open (or create) the database at `path` and bring its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteBackend, StateError> {
        Ok(SqliteBackend {
            db: Arc::new(SqliteDb::open(path)?),
        })
    }

    /// Where the database is.
    pub fn path(&self) -> &Path {
        &self.db.path
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&SqliteDb) -> Result<T, StateError> + Send + 'static,
    ) -> Result<T, StateError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StateError::Io {
                what: "running a state store call",
                detail: e.to_string(),
            })?
    }
}

#[async_trait::async_trait]
impl StateBackend for SqliteBackend {
    async fn put_lease(&self, lease: &LeaseRecord) -> Result<(), StateError> {
        let lease = lease.clone();
        self.run(move |db| db.put_lease(&lease)).await
    }

    async fn get_lease(&self, id: &str) -> Result<Option<LeaseRecord>, StateError> {
        let id = id.to_string();
        self.run(move |db| db.get_lease(&id)).await
    }

    async fn delete_lease(&self, id: &str) -> Result<bool, StateError> {
        let id = id.to_string();
        self.run(move |db| db.delete_lease(&id)).await
    }

    async fn list_leases(&self, prefix: &str) -> Result<Vec<LeaseRecord>, StateError> {
        let prefix = prefix.to_string();
        self.run(move |db| db.list_leases(&prefix)).await
    }

    async fn leases_of_token(&self, accessor: &str) -> Result<Vec<LeaseRecord>, StateError> {
        let accessor = accessor.to_string();
        self.run(move |db| db.leases_of_token(&accessor)).await
    }

    async fn due_leases(&self, now_ms: u64, limit: usize) -> Result<Vec<LeaseRecord>, StateError> {
        self.run(move |db| db.due_leases(now_ms, limit)).await
    }

    async fn next_due(&self) -> Result<Option<u64>, StateError> {
        self.run(|db| db.next_due()).await
    }

    async fn claim_meta(&self, key: &str, candidate: &str) -> Result<String, StateError> {
        let (key, candidate) = (key.to_string(), candidate.to_string());
        self.run(move |db| db.claim_meta(&key, &candidate)).await
    }

    async fn get_meta(&self, key: &str) -> Result<Option<String>, StateError> {
        let key = key.to_string();
        self.run(move |db| {
            db.conn()
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()
                .map_err(io("reading a store-wide value"))
        })
        .await
    }

    async fn swap_meta(&self, key: &str, expected: Option<&str>, value: &str) -> Result<bool, StateError> {
        let (key, expected, value) = (key.to_string(), expected.map(str::to_string), value.to_string());
        self.run(move |db| {
            let conn = db.conn();
            let changed = match expected {
                None => conn.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
                    rusqlite::params![key, value],
                ),
                Some(old) => conn.execute(
                    "UPDATE meta SET value = ?3 WHERE key = ?1 AND value = ?2",
                    rusqlite::params![key, old, value],
                ),
            };
            changed.map(|n| n == 1).map_err(io("writing a store-wide value"))
        })
        .await
    }

    async fn put_token(&self, token: &TokenRecord) -> Result<(), StateError> {
        let token = token.clone();
        self.run(move |db| db.put_token(&token)).await
    }

    async fn get_token(&self, hash: &str) -> Result<Option<TokenRecord>, StateError> {
        let hash = hash.to_string();
        self.run(move |db| db.token_where("hash", &hash)).await
    }

    async fn token_by_accessor(&self, accessor: &str) -> Result<Option<TokenRecord>, StateError> {
        let accessor = accessor.to_string();
        self.run(move |db| db.token_where("accessor", &accessor)).await
    }

    async fn delete_token(&self, hash: &str) -> Result<bool, StateError> {
        let hash = hash.to_string();
        self.run(move |db| {
            db.conn()
                .execute("DELETE FROM tokens WHERE hash = ?1", [hash])
                .map(|n| n > 0)
                .map_err(io("deleting a token"))
        })
        .await
    }

    async fn delete_bootstrap_tokens(&self, now_unix: u64) -> Result<usize, StateError> {
        self.run(move |db| {
            let mut conn = db.conn();
            let tx = conn.transaction().map_err(io("deleting bootstrap tokens"))?;
            let n = tx
                .execute("DELETE FROM tokens WHERE bootstrap = 1", [])
                .map_err(io("deleting bootstrap tokens"))?;
            tx.execute(
                "DELETE FROM tokens WHERE expires_unix IS NOT NULL AND expires_unix <= ?1",
                [ms(now_unix)],
            )
            .map_err(io("deleting expired tokens"))?;
            tx.commit().map_err(io("deleting bootstrap tokens"))?;
            Ok(n)
        })
        .await
    }

    /// One host per database file: it always leads.
    async fn lead(&self, _job: &str) -> Result<bool, StateError> {
        Ok(true)
    }

    async fn heartbeat(&self, m: &Member, forget_before_ms: u64) -> Result<(), StateError> {
        let m = m.clone();
        self.run(move |db| {
            let conn = db.conn();
            conn.execute(
                "INSERT OR REPLACE INTO members (id, name, started_ms, last_seen_ms, jobs) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![m.id, m.name, ms(m.started_ms), ms(m.last_seen_ms), to_json(&m.jobs)],
            )
            .map_err(io("recording this host"))?;
            conn.execute("DELETE FROM members WHERE last_seen_ms < ?1", [ms(forget_before_ms)])
                .map(|_| ())
                .map_err(io("forgetting stopped hosts"))
        })
        .await
    }

    async fn members(&self, since_ms: u64) -> Result<Vec<Member>, StateError> {
        self.run(move |db| {
            let conn = db.conn();
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, name, started_ms, last_seen_ms, jobs FROM members \
                     WHERE last_seen_ms >= ?1 ORDER BY started_ms, id",
                )
                .map_err(io("listing hosts"))?;
            let rows = stmt
                .query_map([ms(since_ms)], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                })
                .map_err(io("listing hosts"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(io("listing hosts"))?;
            rows.into_iter()
                .map(|(id, name, started, seen, jobs)| {
                    Ok(Member {
                        id,
                        name,
                        started_ms: started.max(0) as u64,
                        last_seen_ms: seen.max(0) as u64,
                        jobs: from_json(&jobs)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn outbox_push(&self, rows: &[OutboxRecord]) -> Result<(), StateError> {
        let rows = rows.to_vec();
        self.run(move |db| {
            let mut conn = db.conn();
            let tx = conn.transaction().map_err(io("queuing webhook deliveries"))?;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO outbox (id, webhook, body, created_ms, attempts, next_attempt_ms, last_error) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    )
                    .map_err(io("queuing webhook deliveries"))?;
                for r in &rows {
                    stmt.execute(params![
                        r.id,
                        r.webhook,
                        r.body,
                        ms(r.created_ms),
                        i64::from(r.attempts),
                        ms(r.next_attempt_ms),
                        r.last_error
                    ])
                    .map_err(io("queuing webhook deliveries"))?;
                }
            }
            tx.commit().map_err(io("queuing webhook deliveries"))
        })
        .await
    }

    async fn outbox_due(&self, now_ms: u64, limit: usize) -> Result<Vec<OutboxRecord>, StateError> {
        self.run(move |db| {
            let conn = db.conn();
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, webhook, body, created_ms, attempts, next_attempt_ms, last_error FROM outbox \
                     WHERE next_attempt_ms <= ?1 ORDER BY seq LIMIT ?2",
                )
                .map_err(io("reading the webhook outbox"))?;
            let rows = stmt
                .query_map(params![ms(now_ms), limit as i64], |r| {
                    Ok(OutboxRecord {
                        id: r.get(0)?,
                        webhook: r.get(1)?,
                        body: r.get(2)?,
                        created_ms: r.get::<_, i64>(3)?.max(0) as u64,
                        attempts: u32::try_from(r.get::<_, i64>(4)?).unwrap_or(u32::MAX),
                        next_attempt_ms: r.get::<_, i64>(5)?.max(0) as u64,
                        last_error: r.get(6)?,
                    })
                })
                .map_err(io("reading the webhook outbox"))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(io("reading the webhook outbox"))
        })
        .await
    }

    async fn outbox_delete(&self, id: &str) -> Result<(), StateError> {
        let id = id.to_string();
        self.run(move |db| {
            db.conn()
                .execute("DELETE FROM outbox WHERE id = ?1", [id])
                .map(|_| ())
                .map_err(io("forgetting a delivered webhook event"))
        })
        .await
    }

    async fn outbox_retry(&self, id: &str, attempts: u32, next_attempt_ms: u64, error: &str) -> Result<(), StateError> {
        let (id, error) = (id.to_string(), error.to_string());
        self.run(move |db| {
            db.conn()
                .execute(
                    "UPDATE outbox SET attempts = ?2, next_attempt_ms = ?3, last_error = ?4 WHERE id = ?1",
                    params![id, i64::from(attempts), ms(next_attempt_ms), error],
                )
                .map(|_| ())
                .map_err(io("recording a failed webhook delivery"))
        })
        .await
    }

    async fn outbox_len(&self) -> Result<u64, StateError> {
        self.run(|db| {
            db.conn()
                .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get::<_, i64>(0))
                .map(|n| n.max(0) as u64)
                .map_err(io("counting the webhook outbox"))
        })
        .await
    }

    async fn swap_rotation(&self, record: &RotationRecord, expected: Option<u64>) -> Result<bool, StateError> {
        let (path, revision, due, body) = (
            record.path.clone(),
            ms(record.revision),
            ms(record.next_due_ms),
            super::rotation_to_json(record),
        );
        self.run(move |db| {
            let conn = db.conn();
            let changed = match expected {
                None => conn.execute(
                    "INSERT INTO rotations (path, revision, next_due_ms, body) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (path) DO NOTHING",
                    params![path, revision, due, body],
                ),
                Some(old) => conn.execute(
                    "UPDATE rotations SET revision = ?2, next_due_ms = ?3, body = ?4 WHERE path = ?1 AND revision = ?5",
                    params![path, revision, due, body, ms(old)],
                ),
            };
            changed.map(|n| n == 1).map_err(io("recording a rotation"))
        })
        .await
    }

    async fn get_rotation(&self, path: &str) -> Result<Option<RotationRecord>, StateError> {
        let path = path.to_string();
        self.run(move |db| {
            let body: Option<String> = db
                .conn()
                .query_row("SELECT body FROM rotations WHERE path = ?1", [path], |r| r.get(0))
                .optional()
                .map_err(io("reading a rotation"))?;
            body.as_deref().map(super::rotation_from_json).transpose()
        })
        .await
    }

    async fn delete_rotation(&self, path: &str) -> Result<bool, StateError> {
        let path = path.to_string();
        self.run(move |db| {
            db.conn()
                .execute("DELETE FROM rotations WHERE path = ?1", [path])
                .map(|n| n > 0)
                .map_err(io("forgetting a rotation"))
        })
        .await
    }

    async fn list_rotations(&self, prefix: &str) -> Result<Vec<RotationRecord>, StateError> {
        let prefix = prefix.to_string();
        self.run(move |db| {
            let conn = db.conn();
            let end = prefix_end(&prefix);
            let mut stmt = conn
                .prepare_cached(
                    "SELECT body FROM rotations WHERE path >= ?1 AND (?2 IS NULL OR path < ?2) ORDER BY path",
                )
                .map_err(io("listing rotations"))?;
            let bodies = stmt
                .query_map(params![prefix, end], |r| r.get::<_, String>(0))
                .map_err(io("listing rotations"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(io("listing rotations"))?;
            bodies.iter().map(|b| super::rotation_from_json(b)).collect()
        })
        .await
    }

    async fn due_rotations(&self, now_ms: u64, limit: usize) -> Result<Vec<RotationRecord>, StateError> {
        self.run(move |db| {
            let conn = db.conn();
            let mut stmt = conn
                .prepare_cached("SELECT body FROM rotations WHERE next_due_ms <= ?1 ORDER BY next_due_ms LIMIT ?2")
                .map_err(io("reading due rotations"))?;
            let bodies = stmt
                .query_map(params![ms(now_ms), limit as i64], |r| r.get::<_, String>(0))
                .map_err(io("reading due rotations"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(io("reading due rotations"))?;
            bodies.iter().map(|b| super::rotation_from_json(b)).collect()
        })
        .await
    }

    async fn put_expiry(&self, record: &ExpiryRecord) -> Result<(), StateError> {
        let (path, expires, check, body) = (
            record.path.clone(),
            ms(record.expires_ms),
            ms(record.next_check_ms),
            super::expiry_to_json(record),
        );
        self.run(move |db| {
            db.conn()
                .execute(
                    "INSERT INTO expiries (path, expires_ms, next_check_ms, body) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (path) DO UPDATE SET expires_ms = ?2, next_check_ms = ?3, body = ?4",
                    params![path, expires, check, body],
                )
                .map(|_| ())
                .map_err(io("recording an expiry"))
        })
        .await
    }

    async fn delete_expiry(&self, path: &str) -> Result<bool, StateError> {
        let path = path.to_string();
        self.run(move |db| {
            db.conn()
                .execute("DELETE FROM expiries WHERE path = ?1", [path])
                .map(|n| n > 0)
                .map_err(io("forgetting an expiry"))
        })
        .await
    }

    async fn list_expiries(&self, prefix: &str) -> Result<Vec<ExpiryRecord>, StateError> {
        let prefix = prefix.to_string();
        self.run(move |db| {
            let conn = db.conn();
            let end = prefix_end(&prefix);
            let mut stmt = conn
                .prepare_cached(
                    "SELECT body FROM expiries WHERE path >= ?1 AND (?2 IS NULL OR path < ?2) \
                     ORDER BY expires_ms, path",
                )
                .map_err(io("listing expiries"))?;
            let bodies = stmt
                .query_map(params![prefix, end], |r| r.get::<_, String>(0))
                .map_err(io("listing expiries"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(io("listing expiries"))?;
            bodies.iter().map(|b| super::expiry_from_json(b)).collect()
        })
        .await
    }

    async fn due_expiries(&self, now_ms: u64, limit: usize) -> Result<Vec<ExpiryRecord>, StateError> {
        self.run(move |db| {
            let conn = db.conn();
            let mut stmt = conn
                .prepare_cached("SELECT body FROM expiries WHERE next_check_ms <= ?1 ORDER BY next_check_ms LIMIT ?2")
                .map_err(io("reading due expiries"))?;
            let bodies = stmt
                .query_map(params![ms(now_ms), limit as i64], |r| r.get::<_, String>(0))
                .map_err(io("reading due expiries"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(io("reading due expiries"))?;
            bodies.iter().map(|b| super::expiry_from_json(b)).collect()
        })
        .await
    }

    async fn ping(&self) -> Result<(), StateError> {
        self.run(|db| {
            db.conn()
                .query_row("SELECT 1", [], |_| Ok(()))
                .map_err(io("checking the state store"))
        })
        .await
    }

    async fn live_tokens(&self, now_unix: u64) -> Result<usize, StateError> {
        self.run(move |db| {
            db.conn()
                .query_row(
                    "SELECT COUNT(*) FROM tokens WHERE expires_unix IS NULL OR expires_unix > ?1",
                    [ms(now_unix)],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| n.max(0) as usize)
                .map_err(io("counting tokens"))
        })
        .await
    }
}

/// The database itself, called from blocking threads.
struct SqliteDb {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl SqliteDb {
    fn open(path: &Path) -> Result<SqliteDb, StateError> {
        let open_err = |detail: String| StateError::Open {
            path: path.display().to_string(),
            detail,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        }
        let mut conn = Connection::open(path).map_err(|e| open_err(e.to_string()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| open_err(e.to_string()))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| open_err(e.to_string()))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| open_err(e.to_string()))?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| open_err(e.to_string()))?;
        if version > SCHEMA_VERSION {
            return Err(StateError::TooNew {
                path: path.display().to_string(),
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        for (step, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction().map_err(|e| open_err(e.to_string()))?;
            tx.execute_batch(sql)
                .and_then(|()| tx.pragma_update(None, "user_version", step as i64 + 1))
                .and_then(|()| tx.commit())
                .map_err(|e| open_err(format!("migrating the schema to version {}: {e}", step + 1)))?;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        Ok(SqliteDb {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A connection is left consistent by SQLite even if a holder panicked.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn io(what: &'static str) -> impl Fn(rusqlite::Error) -> StateError {
    move |e| StateError::Io {
        what,
        detail: e.to_string(),
    }
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn lease_from_row(row: &Row<'_>) -> rusqlite::Result<LeaseRecord> {
    let state: String = row.get(12)?;
    let u = |i: usize| row.get::<_, i64>(i).map(|v| v.max(0) as u64);
    Ok(LeaseRecord {
        id: row.get(0)?,
        mount: row.get(1)?,
        role: row.get(2)?,
        principal: row.get(3)?,
        token_accessor: row.get(4)?,
        revoke_handle: row.get(5)?,
        issued_ms: u(6)?,
        renewed_ms: u(7)?,
        expires_ms: u(8)?,
        max_expires_ms: u(9)?,
        renewable: row.get(10)?,
        revocable: row.get(11)?,
        state: LeaseState::parse(&state).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(12, rusqlite::types::Type::Text, "unknown lease state".into())
        })?,
        attempts: row.get::<_, i64>(13)?.clamp(0, u32::MAX as i64) as u32,
        next_attempt_ms: u(14)?,
        last_error: row.get(15)?,
    })
}

/// The smallest string greater than every string starting with `prefix`
/// (for a range scan), or `None` when there is none.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut bytes = prefix.as_bytes().to_vec();
    while let Some(last) = bytes.pop() {
        if last < 0xff {
            bytes.push(last + 1);
            // Ids are ASCII; a range end that is not UTF-8 is compared as bytes by SQLite.
            return Some(String::from_utf8_lossy(&bytes).into_owned());
        }
    }
    None
}

impl SqliteDb {
    fn claim_meta(&self, key: &str, candidate: &str) -> Result<String, StateError> {
        let conn = self.conn();
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
            [key, candidate],
        )
        .map_err(io("setting a store-wide value"))?;
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .map_err(io("reading a store-wide value"))
    }

    fn put_token(&self, t: &TokenRecord) -> Result<(), StateError> {
        let opt = |v: Option<u64>| v.map(ms);
        self.conn()
            .execute(
                &format!(
                    "INSERT OR REPLACE INTO tokens ({TOKEN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                ),
                params![
                    t.hash,
                    t.accessor,
                    t.principal,
                    to_json(&t.groups),
                    to_json(&t.attributes),
                    ms(t.created_unix),
                    ms(t.ttl_seconds),
                    opt(t.expires_unix),
                    opt(t.max_expires_unix),
                    t.bootstrap,
                ],
            )
            .map(|_| ())
            .map_err(io("recording a token"))
    }

    fn token_where(&self, column: &str, value: &str) -> Result<Option<TokenRecord>, StateError> {
        let row = self
            .conn()
            .query_row(
                &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE {column} = ?1"),
                [value],
                |r| {
                    let u = |i: usize| r.get::<_, i64>(i).map(|v| v.max(0) as u64);
                    let opt = |i: usize| r.get::<_, Option<i64>>(i).map(|v| v.map(|v| v.max(0) as u64));
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        (u(5)?, u(6)?, opt(7)?, opt(8)?),
                        r.get::<_, bool>(9)?,
                    ))
                },
            )
            .optional()
            .map_err(io("reading a token"))?;
        let Some((hash, accessor, principal, groups, attributes, (created, ttl, expires, max), bootstrap)) = row else {
            return Ok(None);
        };
        Ok(Some(TokenRecord {
            hash,
            accessor,
            principal,
            groups: from_json(&groups)?,
            attributes: from_json(&attributes)?,
            created_unix: created,
            ttl_seconds: ttl,
            expires_unix: expires,
            max_expires_unix: max,
            bootstrap,
        }))
    }

    fn put_lease(&self, l: &LeaseRecord) -> Result<(), StateError> {
        self.conn()
            .execute(
                &format!("INSERT OR REPLACE INTO leases ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"),
                params![
                    l.id,
                    l.mount,
                    l.role,
                    l.principal,
                    l.token_accessor,
                    l.revoke_handle,
                    ms(l.issued_ms),
                    ms(l.renewed_ms),
                    ms(l.expires_ms),
                    ms(l.max_expires_ms),
                    l.renewable,
                    l.revocable,
                    l.state.as_str(),
                    l.attempts as i64,
                    ms(l.next_attempt_ms),
                    l.last_error,
                ],
            )
            .map(|_| ())
            .map_err(io("recording a lease"))
    }

    fn get_lease(&self, id: &str) -> Result<Option<LeaseRecord>, StateError> {
        self.conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM leases WHERE id = ?1"),
                [id],
                lease_from_row,
            )
            .optional()
            .map_err(io("reading a lease"))
    }

    fn delete_lease(&self, id: &str) -> Result<bool, StateError> {
        self.conn()
            .execute("DELETE FROM leases WHERE id = ?1", [id])
            .map(|n| n > 0)
            .map_err(io("deleting a lease"))
    }

    fn list_leases(&self, prefix: &str) -> Result<Vec<LeaseRecord>, StateError> {
        let conn = self.conn();
        let rows = match prefix_end(prefix) {
            Some(end) => {
                let mut stmt = conn
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM leases WHERE id >= ?1 AND id < ?2 ORDER BY id"
                    ))
                    .map_err(io("listing leases"))?;
                let rows = stmt
                    .query_map(params![prefix, end], lease_from_row)
                    .map_err(io("listing leases"))?;
                rows.collect::<Result<Vec<_>, _>>()
            }
            None => {
                let mut stmt = conn
                    .prepare_cached(&format!("SELECT {COLUMNS} FROM leases WHERE id >= ?1 ORDER BY id"))
                    .map_err(io("listing leases"))?;
                let rows = stmt.query_map([prefix], lease_from_row).map_err(io("listing leases"))?;
                rows.collect::<Result<Vec<_>, _>>()
            }
        };
        rows.map_err(io("listing leases"))
    }

    fn leases_of_token(&self, accessor: &str) -> Result<Vec<LeaseRecord>, StateError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM leases WHERE token_accessor = ?1 ORDER BY id"
            ))
            .map_err(io("listing a token's leases"))?;
        let rows = stmt
            .query_map([accessor], lease_from_row)
            .map_err(io("listing a token's leases"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(io("listing a token's leases"))
    }

    fn due_leases(&self, now_ms: u64, limit: usize) -> Result<Vec<LeaseRecord>, StateError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM leases WHERE state = 'active' AND expires_ms <= ?1 \
                 UNION ALL \
                 SELECT {COLUMNS} FROM leases WHERE state IN ('revocation-pending', 'issuing') AND next_attempt_ms <= ?1 \
                 ORDER BY expires_ms LIMIT ?2"
            ))
            .map_err(io("finding due leases"))?;
        let rows = stmt
            .query_map(params![ms(now_ms), limit as i64], lease_from_row)
            .map_err(io("finding due leases"))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(io("finding due leases"))
    }

    fn next_due(&self) -> Result<Option<u64>, StateError> {
        self.conn()
            .query_row(
                "SELECT MIN(t) FROM ( \
                   SELECT MIN(expires_ms) AS t FROM leases WHERE state = 'active' \
                   UNION ALL \
                   SELECT MIN(next_attempt_ms) AS t FROM leases WHERE state IN ('revocation-pending', 'issuing'))",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )
            .map(|v| v.map(|t| t.max(0) as u64))
            .map_err(io("finding the next due lease"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        drop(SqliteDb::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        drop(conn);
        let e = SqliteDb::open(&path).err().unwrap().to_string();
        assert!(e.contains("newer than this Tresor knows"), "{e}");
    }
}
