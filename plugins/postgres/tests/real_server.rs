//! The generator against a real PostgreSQL: a throw-away cluster started with
//! `tests/peers/run/pg_cluster.sh` (SCRAM-SHA-256 on 127.0.0.1), stopped when
//! the test ends, also on failure.
//!
//! Needs `initdb` and `pg_ctl` on the PATH (tests/setup.sh installs them).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use tresor_plugin_postgres::wire::{Client, Startup, WireError};
use tresor_plugin_postgres::Postgres;
use tresor_plugin_sdk::{Config, Error, Generator, IssueRequest, Role};

const ADMIN_PASSWORD: &str = "admin-Pw-4-tests-only";

const READONLY: &str = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; \
                        GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\";";

/// A running throw-away cluster; stopped (and its directory removed) on drop.
struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
}

impl Cluster {
    /// Starts one, or fails the test saying what is missing.
    fn start() -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("tresor-pg-")
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers/run/pg_cluster.sh");
        let output = Command::new("bash")
            .arg(&script)
            .arg(dir.path())
            .arg(port.to_string())
            .arg(ADMIN_PASSWORD)
            .output()
            .expect("run pg_cluster.sh");
        let cluster = Cluster { dir, port };
        assert!(
            output.status.success(),
            "pg_cluster.sh failed (is PostgreSQL installed? run ./tests/setup.sh): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn url(&self) -> String {
        format!(
            "postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }

    fn generator(&self, password: &str) -> Postgres {
        self.generator_with(password, &[])
    }

    /// A generator with more mount config keys.
    fn generator_with(&self, password: &str, extra: &[(&str, &str)]) -> Postgres {
        let mut pairs = vec![
            ("connection_url".into(), self.url()),
            ("username".into(), "postgres".into()),
            ("password".into(), password.into()),
            ("connect_timeout_ms".into(), "5000".into()),
        ];
        pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Postgres::configure(Config::new(pairs)).unwrap_or_else(|e| panic!("configure: {e:?}"))
    }

    /// The server's log so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// A session of our own client, as any user.
    fn login(&self, user: &str, password: &str) -> Result<Client<TcpStream>, WireError> {
        let stream = TcpStream::connect(("127.0.0.1", self.port))?;
        Client::connect(
            stream,
            Startup {
                user,
                password,
                database: "postgres",
                application_name: "test",
            },
        )
    }

    fn admin(&self) -> Client<TcpStream> {
        self.login("postgres", ADMIN_PASSWORD)
            .unwrap_or_else(|e| panic!("admin login: {e}"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let mut stop = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "pg_ctl"]);
            c
        } else {
            Command::new("pg_ctl")
        };
        let _ = stop.arg("-D").arg(&data).args(["stop", "-m", "immediate"]).output();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64
}

fn role(name: &str, settings: &[(&str, &str)]) -> Role {
    Role {
        name: name.into(),
        settings: settings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
}

fn request(role: Role, now: u64, ttl_seconds: u64) -> IssueRequest {
    IssueRequest {
        role,
        ttl_seconds,
        now_ms: now,
        expires_at_ms: now + ttl_seconds * 1000,
        display_name: "alice".into(),
        issue_id: issue_id(),
    }
}

/// A fresh issue id as the host makes them: 24 letters and digits.
fn issue_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "T{:011}{:012}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn field<'a>(data: &'a [(String, String)], key: &str) -> &'a str {
    data.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no `{key}` in the credential"))
}

/// One value of a one-row, one-column query.
fn scalar(client: &mut Client<TcpStream>, sql: &str) -> Option<String> {
    let rows = client.simple_query(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.into_iter().next().and_then(|row| row.into_iter().next().flatten())
}

fn valid_until(admin: &mut Client<TcpStream>, name: &str) -> Option<i64> {
    scalar(
        admin,
        &format!("SELECT extract(epoch FROM rolvaliduntil)::bigint FROM pg_roles WHERE rolname = '{name}'"),
    )
    .map(|v| v.parse().expect("epoch"))
}

fn role_exists(admin: &mut Client<TcpStream>, name: &str) -> bool {
    scalar(
        admin,
        &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{name}'"),
    )
    .as_deref()
        == Some("1")
}

#[test]
fn issues_renews_and_revokes_real_roles() {
    let cluster = Cluster::start();
    let mut admin = cluster.admin();
    admin
        .simple_query("CREATE TABLE public.items (id int); INSERT INTO public.items VALUES (1), (2);")
        .expect("set up a table");

    let mut generator = cluster.generator(ADMIN_PASSWORD);
    let readonly = role("readonly", &[("creation_statements", READONLY)]);
    generator.check_role(&readonly).expect("check_role");

    // Issue: a role that logs in with the password and may read, not write.
    let now = now_ms();
    let issued = generator.issue(request(readonly.clone(), now, 3600)).expect("issue");
    let name = field(&issued.data, "username").to_owned();
    let password = field(&issued.data, "password").to_owned();
    assert!(name.starts_with("v-alice-readonly-"), "{name}");
    assert!(name.len() <= 63);
    assert!(password.len() >= 32);
    assert_eq!(issued.revoke_handle, name);
    assert_eq!(issued.ttl_seconds, 3600);
    assert!(issued.revocable && issued.renewable);

    let mut user = cluster.login(&name, &password).expect("the new role logs in");
    assert_eq!(
        scalar(&mut user, "SELECT count(*) FROM public.items").as_deref(),
        Some("2")
    );
    match user.simple_query("INSERT INTO public.items VALUES (3)") {
        Err(WireError::Server(e)) => assert_eq!(e.code, "42501", "{e}"),
        other => panic!("INSERT must be refused, got {other:?}"),
    }
    assert!(
        matches!(cluster.login(&name, "not-the-password"), Err(WireError::Server(e)) if e.code == "28P01"),
        "a wrong password must not log in"
    );
    assert_eq!(valid_until(&mut admin, &name), Some(((now + 3_600_000) / 1000) as i64));

    // Renew: VALID UNTIL moves to the new end of the lease.
    let later = now + 7_200_000;
    assert_eq!(generator.renew(&readonly, &name, 7200, later).expect("renew"), 7200);
    assert_eq!(valid_until(&mut admin, &name), Some((later / 1000) as i64));

    // Revoke (with the role gone from the config: defaults): the open
    // session ends, the role is gone, the password no longer logs in.
    let removed = role("readonly", &[]);
    generator.revoke(&removed, &name).expect("revoke");
    assert!(!role_exists(&mut admin, &name));
    assert!(
        user.simple_query("SELECT 1").is_err(),
        "the role's session must be terminated"
    );
    assert!(matches!(cluster.login(&name, &password), Err(WireError::Server(e)) if e.code.starts_with("28")));
    // Idempotent, and renew now says the role is gone.
    generator.revoke(&readonly, &name).expect("revoking twice succeeds");
    generator
        .revoke(&readonly, "v-never-issued-0")
        .expect("revoking an unknown role succeeds");
    assert!(matches!(
        generator.renew(&readonly, &name, 60, later),
        Err(Error::NotFound(_))
    ));

    // The kept connection breaks (server-side termination): the next call
    // reconnects once and succeeds.
    let killed = scalar(
        &mut admin,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'tresor'",
    );
    assert_eq!(killed.as_deref(), Some("1"), "the generator keeps one session");
    let again = generator
        .issue(request(readonly.clone(), now_ms(), 60))
        .expect("issue after reconnect");
    let again_name = field(&again.data, "username").to_owned();
    assert!(role_exists(&mut admin, &again_name));
    // Custom revocation statements are used when set.
    let custom = role(
        "readonly",
        &[
            ("creation_statements", READONLY),
            (
                "revocation_statements",
                "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM \"{{name}}\"; DROP ROLE \"{{name}}\";",
            ),
        ],
    );
    generator.check_role(&custom).expect("check_role");
    generator.revoke(&custom, &again_name).expect("custom revoke");
    assert!(!role_exists(&mut admin, &again_name));
}

/// Creation and revocation statements that `GRANT` and `REVOKE` on one
/// table: PostgreSQL fails such statements of concurrent sessions with
/// "tuple concurrently updated" instead of waiting.
const GRANTS: [(&str, &str); 2] = [
    (
        "creation_statements",
        "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; \
         GRANT SELECT ON public.shared TO \"{{name}}\";",
    ),
    (
        "revocation_statements",
        "REVOKE ALL PRIVILEGES ON public.shared FROM \"{{name}}\"; DROP ROLE IF EXISTS \"{{name}}\";",
    ),
];

#[test]
fn concurrent_grants_on_one_table_all_succeed() {
    const SESSIONS: usize = 8;
    const EACH: usize = 15;
    let cluster = Cluster::start();
    let mut admin = cluster.admin();
    admin
        .simple_query("CREATE TABLE public.shared (id int)")
        .expect("set up a table");
    let rollbacks = |admin: &mut Client<TcpStream>| {
        scalar(
            admin,
            "SELECT xact_rollback FROM pg_stat_database WHERE datname = 'postgres'",
        )
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0)
    };
    let before = rollbacks(&mut admin);
    let grants = role("grants", &GRANTS);
    let failures: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..SESSIONS)
            .map(|_| {
                let grants = grants.clone();
                let cluster = &cluster;
                scope.spawn(move || {
                    let mut generator = cluster.generator(ADMIN_PASSWORD);
                    let mut failures = Vec::new();
                    for _ in 0..EACH {
                        match generator.issue(request(grants.clone(), now_ms(), 600)) {
                            Ok(issued) => {
                                if let Err(e) = generator.revoke(&grants, &issued.revoke_handle) {
                                    failures.push(format!("revoke: {e:?}"));
                                }
                            }
                            Err(e) => failures.push(format!("issue: {e:?}")),
                        }
                    }
                    failures
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("worker")).collect()
    });
    // Conflicts are a race: how many happened this run is shown, not asserted.
    std::thread::sleep(std::time::Duration::from_millis(600)); // statistics are flushed lazily
    eprintln!(
        "transactions rolled back (lost races, retried): {}",
        rollbacks(&mut admin) - before
    );
    assert!(
        failures.is_empty(),
        "{} of {} failed: {:?}",
        failures.len(),
        SESSIONS * EACH * 2,
        &failures[..failures.len().min(3)]
    );
    assert_eq!(
        scalar(&mut admin, "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v-%'").as_deref(),
        Some("0"),
        "every issued role is revoked"
    );
}

#[test]
fn scram_sha_256_sends_the_server_only_the_verifier() {
    let cluster = Cluster::start();
    let mut admin = cluster.admin();
    // Every statement in the server's log, and passwords the server derives
    // itself as MD5: a SCRAM verifier stored below came from the plugin.
    for sql in [
        "ALTER SYSTEM SET log_statement = 'all'",
        "SELECT pg_reload_conf()",
        "ALTER ROLE postgres SET password_encryption = 'md5'",
    ] {
        admin.simple_query(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let login = role(
        "login",
        &[(
            "creation_statements",
            "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
        )],
    );
    let stored = |admin: &mut Client<TcpStream>, name: &str| {
        scalar(
            admin,
            &format!("SELECT rolpassword FROM pg_authid WHERE rolname = '{name}'"),
        )
        .unwrap_or_default()
    };

    // `password` (the default): the server receives the password.
    let mut plain = cluster.generator(ADMIN_PASSWORD);
    let issued = plain.issue(request(login.clone(), now_ms(), 600)).expect("issue");
    let (name, password) = (field(&issued.data, "username"), field(&issued.data, "password"));
    assert!(stored(&mut admin, name).starts_with("md5"), "the server derived it");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        cluster.log().contains(password),
        "log_statement shows the password sent in the clear"
    );

    // `scram-sha-256`: only the verifier; the password still logs in.
    let mut hashed = cluster.generator_with(ADMIN_PASSWORD, &[("password_authentication", "scram-sha-256")]);
    let issued = hashed.issue(request(login.clone(), now_ms(), 600)).expect("issue");
    let (name, password) = (field(&issued.data, "username"), field(&issued.data, "password"));
    let verifier = stored(&mut admin, name);
    assert!(verifier.starts_with("SCRAM-SHA-256$4096:"), "{verifier}");
    let mut user = cluster.login(name, password).expect("the new role logs in with SCRAM");
    assert_eq!(scalar(&mut user, "SELECT current_user").as_deref(), Some(name));
    std::thread::sleep(std::time::Duration::from_millis(200));
    let log = cluster.log();
    assert!(log.contains(&verifier), "the statement was logged");
    assert!(!log.contains(password), "the password reached the server's log");
    hashed.revoke(&login, name).expect("revoke");
}

#[test]
fn abandon_drops_the_role_an_unrecorded_issue_made_and_is_idempotent() {
    let cluster = Cluster::start();
    let mut admin = cluster.admin();
    let mut generator = cluster.generator(ADMIN_PASSWORD);
    let readonly = role(
        "readonly",
        &[(
            "creation_statements",
            "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
        )],
    );

    // The host issued, then lost track of the call: abandon with the same
    // request finds the role by its name alone.
    let req = request(readonly.clone(), now_ms(), 600);
    let issued = generator.issue(req.clone()).expect("issue");
    let name = field(&issued.data, "username").to_owned();
    assert!(name.contains(&req.issue_id), "{name} is named after the issue id");
    assert!(role_exists(&mut admin, &name));
    generator.abandon(req.clone()).expect("abandon");
    assert!(!role_exists(&mut admin, &name), "abandon must drop {name}");
    // Again, and for a request that never created anything: both succeed.
    generator.abandon(req).expect("abandon twice");
    generator
        .abandon(request(readonly, now_ms(), 600))
        .expect("abandon of an issue that created nothing");
}

#[test]
fn failing_statements_are_atomic_and_never_show_the_password() {
    let cluster = Cluster::start();
    let mut admin = cluster.admin();
    let mut generator = cluster.generator(ADMIN_PASSWORD);
    let count = |admin: &mut Client<TcpStream>| scalar(admin, "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v-%'");
    let before = count(&mut admin);

    // The second statement fails: the first is rolled back with it.
    let broken = role(
        "broken",
        &[(
            "creation_statements",
            "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}'; GRANT SELECT ON public.missing TO \"{{name}}\";",
        )],
    );
    match generator.issue(request(broken, now_ms(), 60)) {
        Err(Error::InvalidInput(m)) => assert!(m.contains("42P01") && m.contains("creation_statements"), "{m}"),
        other => panic!("expected invalid-input, got {other:?}"),
    }
    assert_eq!(count(&mut admin), before, "no role may be left behind");

    // PostgreSQL quotes the offending value, here the password: it is masked.
    let quoting = role("quoting", &[("creation_statements", "SELECT '{{password}}'::int;")]);
    match generator.issue(request(quoting, now_ms(), 60)) {
        Err(Error::InvalidInput(m)) => {
            assert!(m.contains("22P02") && m.contains("\"********\""), "{m}");
            assert!(!m.contains(ADMIN_PASSWORD), "{m}");
        }
        other => panic!("expected invalid-input, got {other:?}"),
    }

    // The mount's own password is wrong: permission-denied, password not shown.
    let mut wrong = cluster.generator("Wrong-Admin-Pw-123");
    match wrong.issue(request(
        role("readonly", &[("creation_statements", READONLY)]),
        now_ms(),
        60,
    )) {
        Err(Error::PermissionDenied(m)) => {
            assert!(m.contains("28P01") && m.contains("`postgres`"), "{m}");
            assert!(!m.contains("Wrong-Admin-Pw-123") && !m.contains(ADMIN_PASSWORD), "{m}");
        }
        other => panic!("expected permission-denied, got {other:?}"),
    }
}

#[test]
fn an_unreachable_server_is_unavailable_naming_the_address() {
    // Nothing listens on a port just released; no cluster needed.
    let port = free_port();
    let config = Config::new(vec![
        (
            "connection_url".into(),
            format!("postgresql://postgres:Secret-Pw@127.0.0.1:{port}/postgres?sslmode=disable"),
        ),
        ("connect_timeout_ms".into(), "2000".into()),
    ]);
    let mut generator = Postgres::configure(config).expect("configure");
    let readonly = role("readonly", &[("creation_statements", READONLY)]);
    match generator.revoke(&readonly, "v-a-b-0") {
        Err(Error::Unavailable(m)) => {
            assert!(m.contains(&format!("127.0.0.1:{port}")), "{m}");
            assert!(!m.contains("Secret-Pw"), "{m}");
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
}

/// The TLS cluster and certificates shared with tresor-pgwire's tests.
#[path = "../../pgwire/tests/support/pg_tls.rs"]
mod pg_tls;

#[test]
fn issues_and_revokes_over_verify_full_tls() {
    use tresor_pgwire::url::SslMode;
    use tresor_pgwire::Tls;

    let ca = pg_tls::TestCa::new("generator test CA");
    let pg = pg_tls::Cluster::start_tls(&ca);
    let generator = |ca_pem: &str| {
        Postgres::configure(Config::new(vec![
            (
                "connection_url".into(),
                format!(
                    "postgresql://{{{{username}}}}:{{{{password}}}}@localhost:{}/postgres?sslmode=verify-full",
                    pg.port
                ),
            ),
            ("username".into(), "postgres".into()),
            ("password".into(), pg_tls::ADMIN_PASSWORD.into()),
            ("ca_pem".into(), ca_pem.into()),
        ]))
        .unwrap_or_else(|e| panic!("configure: {e:?}"))
    };
    let mut g = generator(ca.pem());
    let readonly = role("readonly", &[("creation_statements", READONLY)]);
    let issued = g
        .issue(request(readonly.clone(), now_ms(), 600))
        .expect("issue over TLS");
    let name = field(&issued.data, "username").to_owned();
    let password = field(&issued.data, "password").to_owned();

    // The new role logs in (over TLS: the server takes nothing else).
    let tls = Tls::new(SslMode::VerifyFull, "localhost", Some(ca.pem())).expect("tls");
    let stream = tls
        .start(TcpStream::connect(("127.0.0.1", pg.port)).expect("TCP"))
        .expect("handshake");
    let mut user = Client::connect(
        stream,
        Startup {
            user: &name,
            password: &password,
            database: "postgres",
            application_name: "test",
        },
    )
    .expect("the issued role logs in over TLS");
    let rows = user
        .simple_query("SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .expect("query");
    assert_eq!(rows, vec![vec![Some("true".to_owned())]]);
    g.revoke(&readonly, &name).expect("revoke over TLS");

    // A CA that did not issue the server's certificate: nothing is issued.
    let other = pg_tls::TestCa::new("another CA");
    match generator(other.pem()).issue(request(readonly, now_ms(), 60)) {
        Err(Error::Unavailable(m)) => {
            assert!(m.contains("unknown issuer") && m.contains("`ca_pem`"), "{m}");
            assert!(!m.contains(pg_tls::ADMIN_PASSWORD), "{m}");
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
}
