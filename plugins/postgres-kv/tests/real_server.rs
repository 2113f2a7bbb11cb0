//! The store against a real PostgreSQL: a throw-away cluster started with
//! `tests/peers/run/pg_cluster.sh` (SCRAM-SHA-256 on 127.0.0.1), stopped
//! when the test ends, also on failure. Values are sealed by a stand-in
//! for the host that binds the context as the host does.
//!
//! Needs `initdb` and `pg_ctl` on the PATH (tests/setup.sh installs them).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tresor_pgwire::wire::{Client, Startup};
use tresor_plugin_postgres_kv::config::KvConfig;
use tresor_plugin_postgres_kv::store::{Sealer, Store};
use tresor_plugin_sdk::{Config, Error, Settings};

const ADMIN_PASSWORD: &str = "admin-Pw-4-kv-tests";

/// Seals like the host, without a key: `SEALED` + the context's length and
/// bytes + the plaintext with every byte flipped. Unsealing with another
/// context fails with `invalid-input`, as the host's does.
struct StandIn;

impl Sealer for StandIn {
    fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, Error> {
        let mut blob = b"SEALED".to_vec();
        blob.extend_from_slice(&(context.len() as u32).to_be_bytes());
        blob.extend_from_slice(context);
        blob.extend(plaintext.iter().map(|b| !b));
        Ok(blob)
    }

    fn unseal(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, Error> {
        let refused = || Error::invalid_input("the sealed value does not open with this context");
        let rest = sealed
            .strip_prefix(b"SEALED")
            .or_else(|| sealed.strip_prefix(b"MOVED!"))
            .ok_or_else(refused)?;
        let len = rest.get(..4).ok_or_else(refused)?;
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let bound = rest.get(4..4 + len).ok_or_else(refused)?;
        if bound != context {
            return Err(refused());
        }
        Ok(rest[4 + len..].iter().map(|b| !b).collect())
    }

    /// As if under a new key generation: `SEALED` becomes `MOVED!`.
    fn reseal(&self, sealed: &[u8], context: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        self.unseal(sealed, context)?;
        Ok(sealed.strip_prefix(b"SEALED").map(|rest| [b"MOVED!", rest].concat()))
    }
}

/// A running throw-away cluster; stopped (and its directory removed) on drop.
struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("tresor-pgkv-")
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

    fn config(&self, extra: &[(&str, &str)]) -> KvConfig {
        let mut pairs = vec![
            (
                "connection_url".to_owned(),
                format!("postgresql://postgres@127.0.0.1:{}/postgres?sslmode=disable", self.port),
            ),
            ("password".to_owned(), ADMIN_PASSWORD.to_owned()),
        ];
        pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        KvConfig::from_config(&Config::new(pairs)).unwrap_or_else(|e| panic!("config: {e:?}"))
    }

    fn store(&self) -> Store<StandIn> {
        Store::open(self.config(&[]), StandIn).unwrap_or_else(|e| panic!("open: {e:?}"))
    }

    fn admin(&self) -> Client<TcpStream> {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        Client::connect(
            stream,
            Startup {
                user: "postgres",
                password: ADMIN_PASSWORD,
                database: "postgres",
                application_name: "kv-test",
            },
        )
        .expect("admin login")
    }

    /// The text of every row of `sql`'s answer, one line per row.
    fn dump(&self, sql: &str) -> String {
        let rows = self.admin().simple_query(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.iter()
            .map(|row| {
                row.iter()
                    .map(|c| c.clone().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "pg_ctl"]);
            c
        } else {
            Command::new("pg_ctl")
        };
        cmd.arg("-D").arg(self.data()).args(args).output().expect("run pg_ctl")
    }

    fn restart(&self) {
        let log = self.dir.path().join("server.log");
        let out = self.pg_ctl(&["restart", "-m", "fast", "-w", "-l", &log.to_string_lossy()]);
        assert!(
            out.status.success(),
            "pg_ctl restart: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["stop", "-m", "immediate"]);
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
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn marker(label: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{label}-{nanos:x}")
}

fn settings(max_versions: u32, cas_required: bool, delete_version_after_ms: u64) -> Settings {
    Settings {
        max_versions,
        cas_required,
        delete_version_after_ms,
    }
}

fn value(store: &mut Store<StandIn>, path: &str, version: Option<&str>) -> Vec<u8> {
    store
        .get(path, version)
        .unwrap_or_else(|e| panic!("get {path} {version:?}: {e:?}"))
        .value
}

fn not_found<T: std::fmt::Debug>(result: Result<T, Error>) -> String {
    match result {
        Err(Error::NotFound(m)) => m,
        other => panic!("expected not-found, got {other:?}"),
    }
}

#[test]
fn versions_deletion_and_listing_follow_the_file_provider() {
    let pg = Cluster::start();
    let mut s = pg.store();
    let meta = vec![("team".to_owned(), "a".to_owned())];
    assert_eq!(s.put("app/db", b"one", &meta, None).ok().as_deref(), Some("1"));
    assert_eq!(s.put("app/db", b"two", &[], None).ok().as_deref(), Some("2"));
    let latest = s.get("app/db", None).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!((latest.value.as_slice(), latest.version.as_str()), (&b"two"[..], "2"));
    assert!(
        latest.created_ms > 1_600_000_000_000,
        "the database's clock: {}",
        latest.created_ms
    );
    let first = s.get("app/db", Some("1")).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!((first.value.as_slice(), first.metadata), (&b"one"[..], meta));
    not_found(s.get("app/db", Some("3")));
    not_found(s.get("app/db", Some("01")));
    not_found(s.get("never", None));
    not_found(s.versions("never"));

    // Check-and-set.
    assert!(matches!(s.put("app/db", b"x", &[], Some("")), Err(Error::Conflict(_))));
    assert!(matches!(s.put("app/db", b"x", &[], Some("1")), Err(Error::Conflict(_))));
    assert_eq!(s.put("app/db", b"three", &[], Some("2")).ok().as_deref(), Some("3"));
    assert_eq!(s.put("new", b"n", &[], Some("")).ok().as_deref(), Some("1"));
    assert!(matches!(s.put("other", b"x", &[], Some("1")), Err(Error::Conflict(_))));
    not_found(s.get("other", None));

    // Soft delete, undelete, destroy; unknown versions are ignored.
    s.delete_versions("app/db", &["1".into(), "9".into(), "x".into()], false)
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(not_found(s.get("app/db", Some("1"))).contains("is deleted"));
    let infos = s.versions("app/db").unwrap_or_else(|e| panic!("{e:?}"));
    let ids: Vec<&str> = infos.iter().map(|v| v.version.as_str()).collect();
    assert_eq!(ids, ["1", "2", "3"]);
    assert!(infos[0].deleted && !infos[0].destroyed && infos[0].deletion_ms >= infos[0].created_ms);
    s.undelete_versions("app/db", &["1".into()])
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(value(&mut s, "app/db", Some("1")), b"one");
    s.delete_versions("app/db", &["1".into()], true)
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(not_found(s.get("app/db", Some("1"))).contains("destroyed"));
    s.undelete_versions("app/db", &["1".into()])
        .unwrap_or_else(|e| panic!("{e:?}"));
    not_found(s.get("app/db", Some("1")));
    assert!(s.versions("app/db").map(|v| v[0].destroyed).unwrap_or(false));
    not_found(s.delete_versions("never", &["1".into()], false));
    not_found(s.undelete_versions("never", &["1".into()]));

    // Listing: by folder, partial name, everything; wildcards are literal.
    for path in ["a_b/x", "a%b/y", "axb/z", "a\\b/w"] {
        s.put(path, b"v", &[], None).unwrap_or_else(|e| panic!("{e:?}"));
    }
    let list = |s: &mut Store<StandIn>, prefix: &str| s.list(prefix).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(list(&mut s, "a_b/"), ["a_b/x"]);
    assert_eq!(list(&mut s, "a%"), ["a%b/y"]);
    assert_eq!(list(&mut s, "a\\"), ["a\\b/w"]);
    assert_eq!(list(&mut s, "app"), ["app/db"]);
    assert_eq!(list(&mut s, ""), ["a%b/y", "a\\b/w", "a_b/x", "app/db", "axb/z", "new"]);
    assert!(list(&mut s, "nothing/").is_empty());

    // Delete: all versions; the next write starts again from 1.
    s.delete("app/db").unwrap_or_else(|e| panic!("{e:?}"));
    not_found(s.get("app/db", None));
    not_found(s.delete("app/db"));
    assert_eq!(list(&mut s, "app"), Vec::<String>::new());
    assert_eq!(s.put("app/db", b"again", &[], Some("")).ok().as_deref(), Some("1"));
}

#[test]
fn settings_per_secret_and_mount() {
    let pg = Cluster::start();
    let mut s = pg.store();
    not_found(s.settings("nothing"));
    let mount = s.settings("").unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!((mount.max_versions, mount.cas_required), (0, false));

    // Ten versions by default, the oldest removed for good.
    for i in 1..=12 {
        s.put("many", format!("v{i}").as_bytes(), &[], None)
            .unwrap_or_else(|e| panic!("{e:?}"));
    }
    let ids: Vec<String> = s
        .versions("many")
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(ids.first().map(String::as_str), Some("3"));
    assert_eq!(ids.len(), 10);

    // A lower max_versions removes the versions it no longer keeps at once.
    s.set_settings("many", &settings(2, false, 0))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let ids: Vec<String> = s
        .versions("many")
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(ids, ["11", "12"]);
    let own = s.settings("many").unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(own.max_versions, 2);

    // Settings before any version; cas_required on the secret and the mount.
    s.set_settings("guarded", &settings(0, true, 0))
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(s.settings("guarded").map(|x| x.cas_required).unwrap_or(false));
    assert!(s.list("").unwrap_or_default().iter().all(|p| p != "guarded"));
    match s.put("guarded", b"x", &[], None) {
        Err(Error::InvalidInput(m)) => assert!(m.contains("check-and-set parameter required"), "{m}"),
        other => panic!("expected invalid-input, got {other:?}"),
    }
    assert_eq!(s.put("guarded", b"x", &[], Some("")).ok().as_deref(), Some("1"));
    s.set_settings("", &settings(3, true, 0))
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(matches!(s.put("free", b"x", &[], None), Err(Error::InvalidInput(_))));
    assert_eq!(s.settings("").map(|m| m.max_versions).ok(), Some(3));
    s.set_settings("", &settings(0, false, 0))
        .unwrap_or_else(|e| panic!("{e:?}"));

    // A secret with settings only is deleted (settings and all).
    s.set_settings("only-settings", &settings(5, false, 0))
        .unwrap_or_else(|e| panic!("{e:?}"));
    s.delete("only-settings").unwrap_or_else(|e| panic!("{e:?}"));
    not_found(s.settings("only-settings"));

    // delete_version_after: the version is deleted once its time passed.
    s.set_settings("short", &settings(0, false, 200))
        .unwrap_or_else(|e| panic!("{e:?}"));
    s.put("short", b"brief", &[], None).unwrap_or_else(|e| panic!("{e:?}"));
    let fresh = s.get("short", None).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(fresh.deletion_ms, fresh.created_ms + 200);
    std::thread::sleep(Duration::from_millis(400));
    assert!(not_found(s.get("short", None)).contains("delete_version_after"));
    let info = s.versions("short").unwrap_or_default();
    assert!(info[0].deleted && info[0].deletion_ms == fresh.deletion_ms, "{info:?}");
    // A deadline beyond what PostgreSQL counts is the largest it counts.
    s.set_settings("far", &settings(0, false, u64::MAX))
        .unwrap_or_else(|e| panic!("{e:?}"));
    s.put("far", b"kept", &[], None).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(s.get("far", None).map(|x| x.deletion_ms).ok(), Some(i64::MAX as u64));
}

#[test]
fn the_tables_hold_no_plaintext_and_values_are_bound_to_their_place() {
    let pg = Cluster::start();
    let mut s = pg.store();
    let secret = marker("plaintext-marker");
    s.put("a/one", secret.as_bytes(), &[("owner".into(), "ops".into())], None)
        .unwrap_or_else(|e| panic!("{e:?}"));
    s.put("a/one", format!("{secret}-v2").as_bytes(), &[], None)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let dump = pg.dump(
        "SELECT path, version, sealed, encode(sealed, 'escape'), metadata::text FROM tresor_kv_versions; \
         SELECT * FROM tresor_kv_secrets",
    );
    assert!(dump.contains("a/one") && dump.contains("owner"), "{dump}");
    assert!(!dump.contains(&secret), "a plaintext value is in the table:\n{dump}");

    // A sealed value moved to another version does not open there.
    pg.dump(
        "UPDATE tresor_kv_versions SET sealed = (SELECT sealed FROM tresor_kv_versions WHERE version = 1) \
         WHERE version = 2",
    );
    match s.get("a/one", None) {
        Err(Error::Internal(m)) => assert!(m.contains("cannot be decrypted") && !m.contains(&secret), "{m}"),
        other => panic!("expected internal, got {:?}", other.map(|x| x.version)),
    }
    assert_eq!(value(&mut s, "a/one", Some("1")), secret.as_bytes());
}

#[test]
fn reseal_moves_every_sealed_version_in_place() {
    let pg = Cluster::start();
    let mut s = pg.store();
    for v in ["one", "two", "three"] {
        s.put("app/db", v.as_bytes(), &[], None)
            .unwrap_or_else(|e| panic!("{e:?}"));
    }
    s.delete_versions("app/db", &["2".into()], true)
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(s.reseal("app/db").unwrap_or_else(|e| panic!("{e:?}")), (2, 2));
    assert_eq!(
        s.reseal("app/db").unwrap_or_else(|e| panic!("{e:?}")),
        (2, 0),
        "nothing left to move"
    );
    assert_eq!(value(&mut s, "app/db", Some("1")), b"one");
    assert_eq!(value(&mut s, "app/db", Some("3")), b"three");
    let prefixes =
        pg.dump("SELECT version, substr(encode(sealed, 'escape'), 1, 6) FROM tresor_kv_versions ORDER BY version");
    assert!(
        !prefixes.contains("SEALED") && prefixes.matches("MOVED!").count() == 2,
        "{prefixes}"
    );
    assert!(not_found(s.reseal("app/none")).contains("app/none"));
}

#[test]
fn concurrent_writers_take_turns_and_a_restart_is_survived() {
    let pg = Cluster::start();
    let mut s = pg.store();
    s.set_settings("busy", &settings(100, false, 0))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let config = pg.config(&[]);
            std::thread::spawn(move || {
                let mut s = Store::open(config, StandIn).unwrap_or_else(|e| panic!("open: {e:?}"));
                for i in 0..10 {
                    s.put("busy", format!("{w}-{i}").as_bytes(), &[], None)
                        .unwrap_or_else(|e| panic!("put: {e:?}"));
                }
                // Every writer also races for one new secret: one wins.
                s.put("first", w.to_string().as_bytes(), &[], Some("")).is_ok()
            })
        })
        .collect();
    let winners = writers
        .into_iter()
        .map(|w| w.join().unwrap_or(false))
        .filter(|won| *won)
        .count();
    assert_eq!(winners, 1);
    let ids: Vec<String> = s
        .versions("busy")
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.version)
        .collect();
    let expected: Vec<String> = (1..=40).map(|n| n.to_string()).collect();
    assert_eq!(ids, expected);

    // The server restarts: the kept session is opened again.
    pg.restart();
    assert_eq!(value(&mut s, "busy", Some("40")).len(), 3);
    assert_eq!(s.put("busy", b"after", &[], Some("40")).ok().as_deref(), Some("41"));

    // Opening again (another instance) finds the tables as they are.
    let mut again = pg.store();
    assert_eq!(value(&mut again, "busy", None), b"after");
}

#[test]
fn another_table_prefix_is_another_store_and_a_bad_password_is_refused() {
    let pg = Cluster::start();
    let mut a = pg.store();
    let mut b = Store::open(pg.config(&[("table_prefix", "team_b")]), StandIn).unwrap_or_else(|e| panic!("{e:?}"));
    a.put("x", b"a", &[], None).unwrap_or_else(|e| panic!("{e:?}"));
    not_found(b.get("x", None));
    assert_eq!(pg.dump("SELECT count(*) FROM team_b_versions"), "0");

    let mut config = pg.config(&[]);
    config.connection.password = "wrong-pw-123".to_owned().into();
    match Store::open(config, StandIn) {
        Err(Error::PermissionDenied(m)) => assert!(m.contains("`postgres`") && !m.contains("wrong-pw-123"), "{m}"),
        other => panic!("expected permission-denied, got {:?}", other.err()),
    }
}

/// The TLS cluster and certificates shared with tresor-pgwire's tests.
#[path = "../../pgwire/tests/support/pg_tls.rs"]
mod pg_tls;

#[test]
fn the_store_works_over_verify_full_tls_and_refuses_what_is_not_verified() {
    let ca = pg_tls::TestCa::new("kv test CA");
    let pg = pg_tls::Cluster::start_tls(&ca);
    let config = |sslmode: &str, ca_pem: Option<&str>| {
        let mut pairs = vec![
            (
                "connection_url".to_owned(),
                format!("postgresql://postgres@localhost:{}/postgres?sslmode={sslmode}", pg.port),
            ),
            ("password".to_owned(), pg_tls::ADMIN_PASSWORD.to_owned()),
        ];
        pairs.extend(ca_pem.map(|pem| ("ca_pem".to_owned(), pem.to_owned())));
        KvConfig::from_config(&Config::new(pairs)).unwrap_or_else(|e| panic!("config: {e:?}"))
    };

    // The mount's config as an operator writes it: the store opens (creating
    // its tables), writes and reads over TLS.
    let mut store = Store::open(config("verify-full", Some(ca.pem())), StandIn).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(store.put("app/db", b"over-tls", &[], None).ok().as_deref(), Some("1"));
    assert_eq!(value(&mut store, "app/db", None), b"over-tls");
    let mut check = Store::open(config("require", None), StandIn).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(value(&mut check, "app/db", None), b"over-tls");

    // Another CA: the mount does not start, and says why.
    let other = pg_tls::TestCa::new("another CA");
    match Store::open(config("verify-full", Some(other.pem())), StandIn) {
        Err(Error::Unavailable(m)) => {
            assert!(m.contains("unknown issuer") && m.contains("`ca_pem`"), "{m}");
            assert!(!m.contains(pg_tls::ADMIN_PASSWORD), "{m}");
        }
        other => panic!("expected unavailable, got {:?}", other.err()),
    }
    // Plaintext against the hostssl-only server: refused, with the hint.
    match Store::open(config("disable", None), StandIn) {
        Err(Error::PermissionDenied(m)) => {
            assert!(m.contains("28000") && m.contains("sslmode=verify-full"), "{m}");
            assert!(!m.contains(pg_tls::ADMIN_PASSWORD), "{m}");
        }
        other => panic!("expected permission-denied, got {:?}", other.err()),
    }
}

#[test]
fn a_server_with_tls_off_is_reported_not_used_in_plaintext() {
    let pg = pg_tls::Cluster::start_plain();
    let config = KvConfig::from_config(&Config::new(vec![
        (
            "connection_url".to_owned(),
            format!("postgresql://postgres@127.0.0.1:{}/postgres?sslmode=require", pg.port),
        ),
        ("password".to_owned(), pg_tls::ADMIN_PASSWORD.to_owned()),
    ]))
    .unwrap_or_else(|e| panic!("config: {e:?}"));
    match Store::open(config, StandIn) {
        Err(Error::Unavailable(m)) => assert!(m.contains("ssl = off") && m.contains("turn ssl on"), "{m}"),
        other => panic!("expected unavailable, got {:?}", other.err()),
    }
}
