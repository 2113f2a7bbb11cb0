//! The state store in PostgreSQL, for several hosts sharing one state.
//!
//! Every call is one statement in its own transaction, committed before it
//! returns (PostgreSQL's default `synchronous_commit`: durable). The schema is
//! versioned in `tresor_schema`; hosts starting together migrate it once,
//! serialized by a transaction-scoped advisory lock, and a database whose
//! schema is newer than this build knows is refused. Connections come from a
//! pool (deadpool) with bounded waits, so a database that is down fails a
//! call within seconds instead of hanging it.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::{NoTls, Row};

use super::{
    from_json, to_json, ExpiryRecord, LeaseRecord, LeaseState, Member, OutboxRecord, RotationRecord, StateBackend,
    StateError, TokenRecord,
};

/// The newest schema this build knows.
const SCHEMA_VERSION: i32 = 6;

/// Each step brings the schema from version `index` to `index + 1`.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE tresor_leases (
        id              TEXT COLLATE \"C\" PRIMARY KEY,
        mount           TEXT NOT NULL,
        role            TEXT NOT NULL,
        principal       TEXT NOT NULL,
        token_accessor  TEXT,
        revoke_handle   TEXT NOT NULL,
        issued_ms       BIGINT NOT NULL,
        renewed_ms      BIGINT NOT NULL,
        expires_ms      BIGINT NOT NULL,
        max_expires_ms  BIGINT NOT NULL,
        renewable       BOOLEAN NOT NULL,
        revocable       BOOLEAN NOT NULL,
        state           TEXT NOT NULL,
        attempts        INTEGER NOT NULL,
        next_attempt_ms BIGINT NOT NULL,
        last_error      TEXT
    );
    CREATE INDEX tresor_leases_by_expiry ON tresor_leases (state, expires_ms);
    CREATE INDEX tresor_leases_by_attempt ON tresor_leases (state, next_attempt_ms);
    CREATE INDEX tresor_leases_by_token ON tresor_leases (token_accessor);
",
    "
    CREATE TABLE tresor_meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE tresor_tokens (
        hash             TEXT PRIMARY KEY,
        accessor         TEXT NOT NULL UNIQUE,
        principal        TEXT NOT NULL,
        groups           TEXT NOT NULL,
        attributes       TEXT NOT NULL,
        created_unix     BIGINT NOT NULL,
        ttl_seconds      BIGINT NOT NULL,
        expires_unix     BIGINT,
        max_expires_unix BIGINT,
        bootstrap        BOOLEAN NOT NULL
    );
",
    "
    CREATE TABLE tresor_members (
        id           TEXT PRIMARY KEY,
        name         TEXT NOT NULL,
        started_ms   BIGINT NOT NULL,
        last_seen_ms BIGINT NOT NULL,
        jobs         TEXT NOT NULL
    );
",
    "
    CREATE TABLE tresor_outbox (
        seq             BIGSERIAL PRIMARY KEY,
        id              TEXT NOT NULL UNIQUE,
        webhook         TEXT NOT NULL,
        body            TEXT NOT NULL,
        created_ms      BIGINT NOT NULL,
        attempts        INTEGER NOT NULL,
        next_attempt_ms BIGINT NOT NULL,
        last_error      TEXT
    );
    CREATE INDEX tresor_outbox_by_attempt ON tresor_outbox (next_attempt_ms);
",
    "
    CREATE TABLE tresor_rotations (
        path        TEXT PRIMARY KEY,
        revision    BIGINT NOT NULL,
        next_due_ms BIGINT NOT NULL,
        body        TEXT NOT NULL
    );
    CREATE INDEX tresor_rotations_by_due ON tresor_rotations (next_due_ms);
",
    "
    CREATE TABLE tresor_expiries (
        path          TEXT PRIMARY KEY,
        expires_ms    BIGINT NOT NULL,
        next_check_ms BIGINT NOT NULL,
        body          TEXT NOT NULL
    );
    CREATE INDEX tresor_expiries_by_check ON tresor_expiries (next_check_ms);
    CREATE INDEX tresor_expiries_by_time ON tresor_expiries (expires_ms);
",
];

const TOKEN_COLUMNS: &str = "hash, accessor, principal, groups, attributes, created_unix, ttl_seconds, \
     expires_unix, max_expires_unix, bootstrap";

/// Key of the advisory lock migrations hold (`tresor` in ASCII).
const MIGRATION_LOCK: i64 = 0x7472_6573_6f72;

const COLUMNS: &str = "id, mount, role, principal, token_accessor, revoke_handle, issued_ms, renewed_ms, \
     expires_ms, max_expires_ms, renewable, revocable, state, attempts, next_attempt_ms, last_error";

/// How long a call waits for a connection, or to make one.
const WAIT: Duration = Duration::from_secs(5);

/// The PostgreSQL state backend.
pub struct PostgresBackend {
    pool: Pool,
    /// `host:port/database`, for messages (never the password).
    target: String,
    /// For the sessions that hold singleton jobs.
    config: tokio_postgres::Config,
    /// TLS to the server, trusting only the configured CA (`None`: plaintext).
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    /// One session per singleton job, holding (or trying for) its advisory lock.
    leads: tokio::sync::Mutex<std::collections::HashMap<String, Lead>>,
}

/// The session a host keeps for one singleton job.
struct Lead {
    client: tokio_postgres::Client,
    held: bool,
}

impl PostgresBackend {
    /// Connect to `url` (a `postgresql://` URL or a `key=value` string;
    /// `password` wins over one in the URL) and bring the schema up to date.
    /// With `ca_file`, the connection is TLS (required, never downgraded)
    /// and the server's certificate must chain to that CA and name the host.
    pub async fn connect(
        url: &str,
        password: Option<&str>,
        ca_file: Option<&std::path::Path>,
    ) -> Result<PostgresBackend, StateError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|_| StateError::Open {
            path: "[state] postgres".into(),
            // The driver's message may quote the URL, password included.
            detail: "the connection string does not parse: give postgresql://user@host:port/database".into(),
        })?;
        if let Some(p) = password {
            config.password(p);
        }
        config.connect_timeout(WAIT);
        config.application_name("tresor");
        let target = describe(&config);
        let tls = tls_for(&mut config, ca_file)?;
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &tls {
            Some(tls) => Manager::from_config(config.clone(), tls.clone(), manager_config),
            None => Manager::from_config(config.clone(), NoTls, manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(16)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(WAIT))
            .create_timeout(Some(WAIT))
            .recycle_timeout(Some(WAIT))
            .build()
            .map_err(|e| StateError::Open {
                path: target.clone(),
                detail: e.to_string(),
            })?;
        let backend = PostgresBackend {
            pool,
            target,
            config,
            tls,
            leads: Default::default(),
        };
        backend.migrate().await?;
        Ok(backend)
    }

    async fn client(&self, what: &'static str) -> Result<deadpool_postgres::Object, StateError> {
        self.pool.get().await.map_err(|e| StateError::Io {
            what,
            detail: format!("cannot reach PostgreSQL at {}: {}", self.target, causes(&e)),
        })
    }

    async fn migrate(&self) -> Result<(), StateError> {
        let open_err = |detail: String| StateError::Open {
            path: self.target.clone(),
            detail,
        };
        let mut client = self
            .pool
            .get()
            .await
            .map_err(|e| open_err(format!("cannot connect: {}", causes(&e))))?;
        let tx = client.transaction().await.map_err(|e| open_err(e.to_string()))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(|e| open_err(e.to_string()))?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS tresor_schema (
                 id      INTEGER PRIMARY KEY CHECK (id = 1),
                 version INTEGER NOT NULL
             );
             INSERT INTO tresor_schema (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;",
        )
        .await
        .map_err(|e| open_err(format!("creating the schema table: {e}")))?;
        let version: i32 = tx
            .query_one("SELECT version FROM tresor_schema WHERE id = 1", &[])
            .await
            .map_err(|e| open_err(e.to_string()))?
            .get(0);
        if version > SCHEMA_VERSION {
            return Err(StateError::TooNew {
                path: self.target.clone(),
                found: version.into(),
                known: SCHEMA_VERSION.into(),
            });
        }
        for (step, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
            tx.batch_execute(sql)
                .await
                .map_err(|e| open_err(format!("migrating the schema to version {}: {e}", step + 1)))?;
        }
        tx.execute(
            "UPDATE tresor_schema SET version = $1 WHERE id = 1",
            &[&SCHEMA_VERSION.max(version)],
        )
        .await
        .map_err(|e| open_err(e.to_string()))?;
        tx.commit().await.map_err(|e| open_err(e.to_string()))
    }

    /// A session of its own (not from the pool: a singleton job's lock lives
    /// as long as the session).
    async fn session(&self) -> Result<tokio_postgres::Client, StateError> {
        let unreachable = |e: tokio_postgres::Error| StateError::Io {
            what: "opening a session for a singleton job",
            detail: format!("cannot reach PostgreSQL at {}: {e}", self.target),
        };
        let ended =
            |e: tokio_postgres::Error| tracing::warn!(error = %e, "state store: a singleton job's session ended");
        match &self.tls {
            Some(tls) => {
                let (client, connection) = self.config.connect(tls.clone()).await.map_err(unreachable)?;
                tokio::spawn(async move { connection.await.map_err(ended) });
                Ok(client)
            }
            None => {
                let (client, connection) = self.config.connect(NoTls).await.map_err(unreachable)?;
                tokio::spawn(async move { connection.await.map_err(ended) });
                Ok(client)
            }
        }
    }

    async fn leases(
        &self,
        what: &'static str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<LeaseRecord>, StateError> {
        let client = self.client(what).await?;
        let rows = client.query(sql, params).await.map_err(io(what))?;
        rows.iter().map(lease_from_row).collect()
    }
}

/// `host:port/database` of a connection config.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", config.get_dbname().unwrap_or("postgres"))
}

/// TLS for `[state] ca_file`: required (the URL's `sslmode` may not
/// disable it), trusting that CA only. Without a CA, `sslmode=require` is
/// refused: a certificate nobody checks protects nothing.
fn tls_for(
    config: &mut tokio_postgres::Config,
    ca_file: Option<&std::path::Path>,
) -> Result<Option<tokio_postgres_rustls::MakeRustlsConnect>, StateError> {
    use tokio_postgres::config::SslMode;
    let refuse = |detail: &str| StateError::Open {
        path: "[state] postgres".into(),
        detail: detail.into(),
    };
    let Some(path) = ca_file else {
        return match config.get_ssl_mode() {
            SslMode::Require => Err(refuse(
                "sslmode=require needs the server's CA: set [state] ca_file to its PEM file",
            )),
            _ => Ok(None),
        };
    };
    if config.get_ssl_mode() == SslMode::Disable {
        return Err(refuse(
            "sslmode=disable and [state] ca_file contradict each other: remove one",
        ));
    }
    config.ssl_mode(SslMode::Require);
    let mut roots = rustls::RootCertStore::empty();
    for cert in crate::api::read_certs(path).map_err(|e| refuse(&e))? {
        roots
            .add(cert)
            .map_err(|e| refuse(&format!("{}: {e}", path.display())))?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| refuse(&format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Some(tokio_postgres_rustls::MakeRustlsConnect::new(client)))
}

/// An error and its causes, `: `-separated: the pool's "creating a new
/// object" says nothing alone; the server's reason is a source or two down
/// (never a password: PostgreSQL does not echo it).
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

fn io(what: &'static str) -> impl Fn(tokio_postgres::Error) -> StateError {
    move |e| StateError::Io {
        what,
        detail: e.to_string(),
    }
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn lease_from_row(row: &Row) -> Result<LeaseRecord, StateError> {
    let damaged = |detail: String| StateError::Damaged { detail };
    let get_ms = |i: usize| -> Result<u64, StateError> {
        row.try_get::<_, i64>(i)
            .map(|v| v.max(0) as u64)
            .map_err(|e| damaged(e.to_string()))
    };
    let text = |i: usize| -> Result<String, StateError> { row.try_get(i).map_err(|e| damaged(e.to_string())) };
    let state = text(12)?;
    Ok(LeaseRecord {
        id: text(0)?,
        mount: text(1)?,
        role: text(2)?,
        principal: text(3)?,
        token_accessor: row.try_get(4).map_err(|e| damaged(e.to_string()))?,
        revoke_handle: text(5)?,
        issued_ms: get_ms(6)?,
        renewed_ms: get_ms(7)?,
        expires_ms: get_ms(8)?,
        max_expires_ms: get_ms(9)?,
        renewable: row.try_get(10).map_err(|e| damaged(e.to_string()))?,
        revocable: row.try_get(11).map_err(|e| damaged(e.to_string()))?,
        state: LeaseState::parse(&state).ok_or_else(|| damaged(format!("unknown lease state `{state}`")))?,
        attempts: row
            .try_get::<_, i32>(13)
            .map(|v| v.max(0) as u32)
            .map_err(|e| damaged(e.to_string()))?,
        next_attempt_ms: get_ms(14)?,
        last_error: row.try_get(15).map_err(|e| damaged(e.to_string()))?,
    })
}

fn token_from_row(row: &Row) -> Result<TokenRecord, StateError> {
    let damaged = |e: tokio_postgres::Error| StateError::Damaged { detail: e.to_string() };
    let u = |v: i64| v.max(0) as u64;
    Ok(TokenRecord {
        hash: row.try_get(0).map_err(damaged)?,
        accessor: row.try_get(1).map_err(damaged)?,
        principal: row.try_get(2).map_err(damaged)?,
        groups: from_json(&row.try_get::<_, String>(3).map_err(damaged)?)?,
        attributes: from_json(&row.try_get::<_, String>(4).map_err(damaged)?)?,
        created_unix: u(row.try_get(5).map_err(damaged)?),
        ttl_seconds: u(row.try_get(6).map_err(damaged)?),
        expires_unix: row.try_get::<_, Option<i64>>(7).map_err(damaged)?.map(u),
        max_expires_unix: row.try_get::<_, Option<i64>>(8).map_err(damaged)?.map(u),
        bootstrap: row.try_get(9).map_err(damaged)?,
    })
}

impl PostgresBackend {
    async fn token_where(&self, column: &str, value: &str) -> Result<Option<TokenRecord>, StateError> {
        let client = self.client("reading a token").await?;
        let rows = client
            .query(
                &format!("SELECT {TOKEN_COLUMNS} FROM tresor_tokens WHERE {column} = $1"),
                &[&value],
            )
            .await
            .map_err(io("reading a token"))?;
        rows.first().map(token_from_row).transpose()
    }
}

/// `prefix` as a LIKE pattern matching it literally, then anything.
fn like_prefix(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

#[async_trait::async_trait]
impl StateBackend for PostgresBackend {
    async fn put_lease(&self, l: &LeaseRecord) -> Result<(), StateError> {
        let client = self.client("recording a lease").await?;
        let attempts = i32::try_from(l.attempts).unwrap_or(i32::MAX);
        client
            .execute(
                &format!(
                    "INSERT INTO tresor_leases ({COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
                     ON CONFLICT (id) DO UPDATE SET mount = EXCLUDED.mount, role = EXCLUDED.role, \
                     principal = EXCLUDED.principal, token_accessor = EXCLUDED.token_accessor, \
                     revoke_handle = EXCLUDED.revoke_handle, issued_ms = EXCLUDED.issued_ms, \
                     renewed_ms = EXCLUDED.renewed_ms, expires_ms = EXCLUDED.expires_ms, \
                     max_expires_ms = EXCLUDED.max_expires_ms, renewable = EXCLUDED.renewable, \
                     revocable = EXCLUDED.revocable, state = EXCLUDED.state, attempts = EXCLUDED.attempts, \
                     next_attempt_ms = EXCLUDED.next_attempt_ms, last_error = EXCLUDED.last_error"
                ),
                &[
                    &l.id,
                    &l.mount,
                    &l.role,
                    &l.principal,
                    &l.token_accessor,
                    &l.revoke_handle,
                    &ms(l.issued_ms),
                    &ms(l.renewed_ms),
                    &ms(l.expires_ms),
                    &ms(l.max_expires_ms),
                    &l.renewable,
                    &l.revocable,
                    &l.state.as_str(),
                    &attempts,
                    &ms(l.next_attempt_ms),
                    &l.last_error,
                ],
            )
            .await
            .map(|_| ())
            .map_err(io("recording a lease"))
    }

    async fn get_lease(&self, id: &str) -> Result<Option<LeaseRecord>, StateError> {
        let found = self
            .leases(
                "reading a lease",
                &format!("SELECT {COLUMNS} FROM tresor_leases WHERE id = $1"),
                &[&id],
            )
            .await?;
        Ok(found.into_iter().next())
    }

    async fn delete_lease(&self, id: &str) -> Result<bool, StateError> {
        let client = self.client("deleting a lease").await?;
        client
            .execute("DELETE FROM tresor_leases WHERE id = $1", &[&id])
            .await
            .map(|n| n > 0)
            .map_err(io("deleting a lease"))
    }

    async fn list_leases(&self, prefix: &str) -> Result<Vec<LeaseRecord>, StateError> {
        self.leases(
            "listing leases",
            &format!("SELECT {COLUMNS} FROM tresor_leases WHERE id LIKE $1 ESCAPE '\\' ORDER BY id"),
            &[&like_prefix(prefix)],
        )
        .await
    }

    async fn leases_of_token(&self, accessor: &str) -> Result<Vec<LeaseRecord>, StateError> {
        self.leases(
            "listing a token's leases",
            &format!("SELECT {COLUMNS} FROM tresor_leases WHERE token_accessor = $1 ORDER BY id"),
            &[&accessor],
        )
        .await
    }

    async fn due_leases(&self, now_ms: u64, limit: usize) -> Result<Vec<LeaseRecord>, StateError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.leases(
            "finding due leases",
            &format!(
                "SELECT {COLUMNS} FROM tresor_leases \
                 WHERE (state = 'active' AND expires_ms <= $1) \
                    OR (state IN ('revocation-pending', 'issuing') AND next_attempt_ms <= $1) \
                 ORDER BY expires_ms, id LIMIT $2"
            ),
            &[&ms(now_ms), &limit],
        )
        .await
    }

    async fn next_due(&self) -> Result<Option<u64>, StateError> {
        let client = self.client("finding the next due lease").await?;
        let row = client
            .query_one(
                "SELECT MIN(t) FROM ( \
                   SELECT MIN(expires_ms) AS t FROM tresor_leases WHERE state = 'active' \
                   UNION ALL \
                   SELECT MIN(next_attempt_ms) AS t FROM tresor_leases WHERE state IN ('revocation-pending', 'issuing')) AS due",
                &[],
            )
            .await
            .map_err(io("finding the next due lease"))?;
        Ok(row.get::<_, Option<i64>>(0).map(|t| t.max(0) as u64))
    }

    async fn claim_meta(&self, key: &str, candidate: &str) -> Result<String, StateError> {
        let client = self.client("reading a store-wide value").await?;
        client
            .execute(
                "INSERT INTO tresor_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&key, &candidate],
            )
            .await
            .map_err(io("setting a store-wide value"))?;
        let row = client
            .query_one("SELECT value FROM tresor_meta WHERE key = $1", &[&key])
            .await
            .map_err(io("reading a store-wide value"))?;
        Ok(row.get(0))
    }

    async fn get_meta(&self, key: &str) -> Result<Option<String>, StateError> {
        let client = self.client("reading a store-wide value").await?;
        let row = client
            .query_opt("SELECT value FROM tresor_meta WHERE key = $1", &[&key])
            .await
            .map_err(io("reading a store-wide value"))?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn swap_meta(&self, key: &str, expected: Option<&str>, value: &str) -> Result<bool, StateError> {
        let client = self.client("writing a store-wide value").await?;
        let changed = match expected {
            None => {
                client
                    .execute(
                        "INSERT INTO tresor_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                        &[&key, &value],
                    )
                    .await
            }
            Some(old) => {
                client
                    .execute(
                        "UPDATE tresor_meta SET value = $3 WHERE key = $1 AND value = $2",
                        &[&key, &old, &value],
                    )
                    .await
            }
        };
        changed.map(|n| n == 1).map_err(io("writing a store-wide value"))
    }

    async fn put_token(&self, t: &TokenRecord) -> Result<(), StateError> {
        let client = self.client("recording a token").await?;
        let opt = |v: Option<u64>| v.map(ms);
        client
            .execute(
                &format!(
                    "INSERT INTO tresor_tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (hash) DO UPDATE SET accessor = EXCLUDED.accessor, principal = EXCLUDED.principal, \
                     groups = EXCLUDED.groups, attributes = EXCLUDED.attributes, created_unix = EXCLUDED.created_unix, \
                     ttl_seconds = EXCLUDED.ttl_seconds, expires_unix = EXCLUDED.expires_unix, \
                     max_expires_unix = EXCLUDED.max_expires_unix, bootstrap = EXCLUDED.bootstrap"
                ),
                &[
                    &t.hash,
                    &t.accessor,
                    &t.principal,
                    &to_json(&t.groups),
                    &to_json(&t.attributes),
                    &ms(t.created_unix),
                    &ms(t.ttl_seconds),
                    &opt(t.expires_unix),
                    &opt(t.max_expires_unix),
                    &t.bootstrap,
                ],
            )
            .await
            .map(|_| ())
            .map_err(io("recording a token"))
    }

    async fn get_token(&self, hash: &str) -> Result<Option<TokenRecord>, StateError> {
        self.token_where("hash", hash).await
    }

    async fn token_by_accessor(&self, accessor: &str) -> Result<Option<TokenRecord>, StateError> {
        self.token_where("accessor", accessor).await
    }

    async fn delete_token(&self, hash: &str) -> Result<bool, StateError> {
        let client = self.client("deleting a token").await?;
        client
            .execute("DELETE FROM tresor_tokens WHERE hash = $1", &[&hash])
            .await
            .map(|n| n > 0)
            .map_err(io("deleting a token"))
    }

    async fn delete_bootstrap_tokens(&self, now_unix: u64) -> Result<usize, StateError> {
        let mut client = self.client("deleting bootstrap tokens").await?;
        let tx = client.transaction().await.map_err(io("deleting bootstrap tokens"))?;
        let n = tx
            .execute("DELETE FROM tresor_tokens WHERE bootstrap", &[])
            .await
            .map_err(io("deleting bootstrap tokens"))?;
        tx.execute(
            "DELETE FROM tresor_tokens WHERE expires_unix IS NOT NULL AND expires_unix <= $1",
            &[&ms(now_unix)],
        )
        .await
        .map_err(io("deleting expired tokens"))?;
        tx.commit().await.map_err(io("deleting bootstrap tokens"))?;
        Ok(n as usize)
    }

    async fn lead(&self, job: &str) -> Result<bool, StateError> {
        let mut leads = self.leads.lock().await;
        if leads.get(job).is_some_and(|l| l.client.is_closed()) {
            leads.remove(job);
        }
        if let Some(lead) = leads.get(job).filter(|l| l.held) {
            // Still connected: the session's lock is still ours.
            if lead.client.simple_query("").await.is_ok() {
                return Ok(true);
            }
            leads.remove(job);
        }
        let lead = match leads.remove(job) {
            Some(lead) => lead,
            None => Lead {
                client: self.session().await?,
                held: false,
            },
        };
        let held: bool = lead
            .client
            .query_one("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", &[&job])
            .await
            .map_err(io("taking the lead of a singleton job"))?
            .get(0);
        if held {
            tracing::info!(job, "this host now leads the singleton job");
        }
        leads.insert(job.to_string(), Lead { held, ..lead });
        Ok(held)
    }

    async fn heartbeat(&self, m: &Member, forget_before_ms: u64) -> Result<(), StateError> {
        let client = self.client("recording this host").await?;
        client
            .execute(
                "INSERT INTO tresor_members (id, name, started_ms, last_seen_ms, jobs) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (id) DO UPDATE SET last_seen_ms = EXCLUDED.last_seen_ms, jobs = EXCLUDED.jobs",
                &[
                    &m.id,
                    &m.name,
                    &ms(m.started_ms),
                    &ms(m.last_seen_ms),
                    &to_json(&m.jobs),
                ],
            )
            .await
            .map_err(io("recording this host"))?;
        client
            .execute(
                "DELETE FROM tresor_members WHERE last_seen_ms < $1",
                &[&ms(forget_before_ms)],
            )
            .await
            .map(|_| ())
            .map_err(io("forgetting stopped hosts"))
    }

    async fn members(&self, since_ms: u64) -> Result<Vec<Member>, StateError> {
        let client = self.client("listing hosts").await?;
        let rows = client
            .query(
                "SELECT id, name, started_ms, last_seen_ms, jobs FROM tresor_members \
                 WHERE last_seen_ms >= $1 ORDER BY started_ms, id",
                &[&ms(since_ms)],
            )
            .await
            .map_err(io("listing hosts"))?;
        rows.iter()
            .map(|r| {
                let damaged = |e: tokio_postgres::Error| StateError::Damaged { detail: e.to_string() };
                Ok(Member {
                    id: r.try_get(0).map_err(damaged)?,
                    name: r.try_get(1).map_err(damaged)?,
                    started_ms: r.try_get::<_, i64>(2).map_err(damaged)?.max(0) as u64,
                    last_seen_ms: r.try_get::<_, i64>(3).map_err(damaged)?.max(0) as u64,
                    jobs: from_json(&r.try_get::<_, String>(4).map_err(damaged)?)?,
                })
            })
            .collect()
    }

    async fn outbox_push(&self, rows: &[OutboxRecord]) -> Result<(), StateError> {
        let mut client = self.client("queuing webhook deliveries").await?;
        let tx = client.transaction().await.map_err(io("queuing webhook deliveries"))?;
        let stmt = tx
            .prepare(
                "INSERT INTO tresor_outbox (id, webhook, body, created_ms, attempts, next_attempt_ms, last_error) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
            )
            .await
            .map_err(io("queuing webhook deliveries"))?;
        for r in rows {
            let attempts = i32::try_from(r.attempts).unwrap_or(i32::MAX);
            tx.execute(
                &stmt,
                &[
                    &r.id,
                    &r.webhook,
                    &r.body,
                    &ms(r.created_ms),
                    &attempts,
                    &ms(r.next_attempt_ms),
                    &r.last_error,
                ],
            )
            .await
            .map_err(io("queuing webhook deliveries"))?;
        }
        tx.commit().await.map_err(io("queuing webhook deliveries"))
    }

    async fn outbox_due(&self, now_ms: u64, limit: usize) -> Result<Vec<OutboxRecord>, StateError> {
        let client = self.client("reading the webhook outbox").await?;
        let rows = client
            .query(
                "SELECT id, webhook, body, created_ms, attempts, next_attempt_ms, last_error FROM tresor_outbox \
                 WHERE next_attempt_ms <= $1 ORDER BY seq LIMIT $2",
                &[&ms(now_ms), &(limit as i64)],
            )
            .await
            .map_err(io("reading the webhook outbox"))?;
        rows.iter()
            .map(|r| {
                Ok(OutboxRecord {
                    id: r.try_get(0).map_err(io("reading the webhook outbox"))?,
                    webhook: r.try_get(1).map_err(io("reading the webhook outbox"))?,
                    body: r.try_get(2).map_err(io("reading the webhook outbox"))?,
                    created_ms: r.try_get::<_, i64>(3).map_err(io("reading the webhook outbox"))?.max(0) as u64,
                    attempts: u32::try_from(r.try_get::<_, i32>(4).map_err(io("reading the webhook outbox"))?)
                        .unwrap_or(0),
                    next_attempt_ms: r.try_get::<_, i64>(5).map_err(io("reading the webhook outbox"))?.max(0) as u64,
                    last_error: r.try_get(6).map_err(io("reading the webhook outbox"))?,
                })
            })
            .collect()
    }

    async fn swap_rotation(&self, record: &RotationRecord, expected: Option<u64>) -> Result<bool, StateError> {
        let client = self.client("recording a rotation").await?;
        let (revision, due, body) = (
            ms(record.revision),
            ms(record.next_due_ms),
            super::rotation_to_json(record),
        );
        let changed = match expected {
            None => {
                client
                    .execute(
                        "INSERT INTO tresor_rotations (path, revision, next_due_ms, body) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (path) DO NOTHING",
                        &[&record.path, &revision, &due, &body],
                    )
                    .await
            }
            Some(old) => {
                client
                    .execute(
                        "UPDATE tresor_rotations SET revision = $2, next_due_ms = $3, body = $4 \
                         WHERE path = $1 AND revision = $5",
                        &[&record.path, &revision, &due, &body, &ms(old)],
                    )
                    .await
            }
        };
        changed.map(|n| n == 1).map_err(io("recording a rotation"))
    }

    async fn get_rotation(&self, path: &str) -> Result<Option<RotationRecord>, StateError> {
        let client = self.client("reading a rotation").await?;
        let rows = client
            .query("SELECT body FROM tresor_rotations WHERE path = $1", &[&path])
            .await
            .map_err(io("reading a rotation"))?;
        rows.first()
            .map(|r| super::rotation_from_json(r.get::<_, &str>(0)))
            .transpose()
    }

    async fn delete_rotation(&self, path: &str) -> Result<bool, StateError> {
        let client = self.client("forgetting a rotation").await?;
        client
            .execute("DELETE FROM tresor_rotations WHERE path = $1", &[&path])
            .await
            .map(|n| n > 0)
            .map_err(io("forgetting a rotation"))
    }

    async fn list_rotations(&self, prefix: &str) -> Result<Vec<RotationRecord>, StateError> {
        let client = self.client("listing rotations").await?;
        let rows = client
            .query(
                "SELECT body FROM tresor_rotations WHERE path LIKE $1 ESCAPE '\\' ORDER BY path",
                &[&like_prefix(prefix)],
            )
            .await
            .map_err(io("listing rotations"))?;
        rows.iter()
            .map(|r| super::rotation_from_json(r.get::<_, &str>(0)))
            .collect()
    }

    async fn due_rotations(&self, now_ms: u64, limit: usize) -> Result<Vec<RotationRecord>, StateError> {
        let client = self.client("reading due rotations").await?;
        let rows = client
            .query(
                "SELECT body FROM tresor_rotations WHERE next_due_ms <= $1 ORDER BY next_due_ms LIMIT $2",
                &[&ms(now_ms), &(limit as i64)],
            )
            .await
            .map_err(io("reading due rotations"))?;
        rows.iter()
            .map(|r| super::rotation_from_json(r.get::<_, &str>(0)))
            .collect()
    }

    async fn put_expiry(&self, record: &ExpiryRecord) -> Result<(), StateError> {
        let client = self.client("recording an expiry").await?;
        client
            .execute(
                "INSERT INTO tresor_expiries (path, expires_ms, next_check_ms, body) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (path) DO UPDATE SET expires_ms = EXCLUDED.expires_ms, \
                 next_check_ms = EXCLUDED.next_check_ms, body = EXCLUDED.body",
                &[
                    &record.path,
                    &ms(record.expires_ms),
                    &ms(record.next_check_ms),
                    &super::expiry_to_json(record),
                ],
            )
            .await
            .map(|_| ())
            .map_err(io("recording an expiry"))
    }

    async fn delete_expiry(&self, path: &str) -> Result<bool, StateError> {
        let client = self.client("forgetting an expiry").await?;
        client
            .execute("DELETE FROM tresor_expiries WHERE path = $1", &[&path])
            .await
            .map(|n| n > 0)
            .map_err(io("forgetting an expiry"))
    }

    async fn list_expiries(&self, prefix: &str) -> Result<Vec<ExpiryRecord>, StateError> {
        let client = self.client("listing expiries").await?;
        let rows = client
            .query(
                "SELECT body FROM tresor_expiries WHERE path LIKE $1 ESCAPE '\\' ORDER BY expires_ms, path",
                &[&like_prefix(prefix)],
            )
            .await
            .map_err(io("listing expiries"))?;
        rows.iter()
            .map(|r| super::expiry_from_json(r.get::<_, &str>(0)))
            .collect()
    }

    async fn due_expiries(&self, now_ms: u64, limit: usize) -> Result<Vec<ExpiryRecord>, StateError> {
        let client = self.client("reading due expiries").await?;
        let rows = client
            .query(
                "SELECT body FROM tresor_expiries WHERE next_check_ms <= $1 ORDER BY next_check_ms LIMIT $2",
                &[&ms(now_ms), &(limit as i64)],
            )
            .await
            .map_err(io("reading due expiries"))?;
        rows.iter()
            .map(|r| super::expiry_from_json(r.get::<_, &str>(0)))
            .collect()
    }

    async fn outbox_delete(&self, id: &str) -> Result<(), StateError> {
        let client = self.client("forgetting a delivered webhook event").await?;
        client
            .execute("DELETE FROM tresor_outbox WHERE id = $1", &[&id])
            .await
            .map(|_| ())
            .map_err(io("forgetting a delivered webhook event"))
    }

    async fn outbox_retry(&self, id: &str, attempts: u32, next_attempt_ms: u64, error: &str) -> Result<(), StateError> {
        let client = self.client("recording a failed webhook delivery").await?;
        let attempts = i32::try_from(attempts).unwrap_or(i32::MAX);
        client
            .execute(
                "UPDATE tresor_outbox SET attempts = $2, next_attempt_ms = $3, last_error = $4 WHERE id = $1",
                &[&id, &attempts, &ms(next_attempt_ms), &error],
            )
            .await
            .map(|_| ())
            .map_err(io("recording a failed webhook delivery"))
    }

    async fn outbox_len(&self) -> Result<u64, StateError> {
        let client = self.client("counting the webhook outbox").await?;
        let row = client
            .query_one("SELECT COUNT(*) FROM tresor_outbox", &[])
            .await
            .map_err(io("counting the webhook outbox"))?;
        Ok(row
            .try_get::<_, i64>(0)
            .map_err(io("counting the webhook outbox"))?
            .max(0) as u64)
    }

    async fn ping(&self) -> Result<(), StateError> {
        let client = self.client("checking the state store").await?;
        client
            .simple_query("SELECT 1")
            .await
            .map(|_| ())
            .map_err(io("checking the state store"))
    }

    async fn live_tokens(&self, now_unix: u64) -> Result<usize, StateError> {
        let client = self.client("counting tokens").await?;
        let row = client
            .query_one(
                "SELECT COUNT(*) FROM tresor_tokens WHERE expires_unix IS NULL OR expires_unix > $1",
                &[&ms(now_unix)],
            )
            .await
            .map_err(io("counting tokens"))?;
        Ok(row.get::<_, i64>(0).max(0) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_literally() {
        assert_eq!(like_prefix("db/creds/ro"), "db/creds/ro%");
        assert_eq!(like_prefix("a_b%c\\"), "a\\_b\\%c\\\\%");
    }
}
