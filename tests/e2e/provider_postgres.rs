//! The postgres-kv provider plugin (plugins/postgres-kv) against a real
//! PostgreSQL: the provider conformance suite, a byte search of the
//! database dump for every value written (none may be there), the sockets
//! grant, a bad configuration, and an outage of the database.

use std::process::Command;
use std::time::Duration;

use tresor::{Error, SecretBytes, WriteOptions};
use tresor_e2e::postgres::Postgres;
use tresor_e2e::*;

/// The config of a mount on `pg`'s `postgres` database as its superuser,
/// plus `extra` entries.
fn kv_config(pg: &Postgres, extra: &str) -> String {
    let mut config = format!(
        r#"connection_url = "postgresql://postgres@127.0.0.1:{}/postgres?sslmode=disable", password = "{}""#,
        pg.port, pg.password
    );
    if !extra.is_empty() {
        config.push_str(", ");
        config.push_str(extra);
    }
    config
}

/// A `kv` mount of the plugin with `config` and `grants`.
fn kv_mount(config: &str, grants: &str) -> String {
    plugin_mount(POSTGRES_KV_WASM, "kv", config, grants)
}

/// The usual mount: sockets granted to `pg` only.
fn granted_mount(pg: &Postgres) -> String {
    kv_mount(&kv_config(pg, ""), &format!(r#"sockets = ["{}"]"#, pg.authority()))
}

fn admin() -> tresor::Caller {
    caller("root", &["admins"])
}

async fn write(t: &TestHost, path: &str, value: &[u8]) -> Result<String, Error> {
    t.host
        .write(
            &admin(),
            path,
            &SecretBytes::new(value.to_vec()),
            &WriteOptions::default(),
        )
        .await
}

async fn read(t: &TestHost, path: &str) -> Result<Vec<u8>, Error> {
    t.host
        .read(&admin(), path, None)
        .await
        .map(|s| s.value.expose().to_vec())
}

/// Runs a PostgreSQL client tool (`psql`, `pg_dump`) against `pg` as the
/// superuser; its raw standard output.
fn pg_tool(pg: &Postgres, tool: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(tool)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port.to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
        ])
        .args(args)
        .env("PGPASSWORD", &pg.password)
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool}: {e}; run ./tests/setup.sh"));
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let pg = Postgres::start();
    let t = start(TEST_POLICIES, &granted_mount(&pg)).await;
    let outcome = conformance::run(&t.host, "kv", &admin())
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(
        outcome.skipped.is_empty(),
        "postgres-kv claims every capability: {outcome}"
    );
    println!("postgres-kv conformance: {outcome}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_dump_holds_no_plaintext_value() {
    let pg = Postgres::start();
    let t = start(TEST_POLICIES, &granted_mount(&pg)).await;
    let secret = marker("plaintext");
    let label = marker("metadata-label");
    let values: Vec<Vec<u8>> = vec![
        secret.clone().into_bytes(),
        format!("{secret} second version").into_bytes(),
        [&b"\x00\xff"[..], secret.as_bytes(), b"\x00"].concat(),
        secret.repeat(500).into_bytes(),
    ];
    let tagged = WriteOptions {
        metadata: [("label".to_string(), label.clone())].into_iter().collect(),
        expected_version: None,
        inherit_metadata: false,
    };
    t.host
        .write(&admin(), "kv/app/db", &SecretBytes::new(values[0].clone()), &tagged)
        .await
        .expect("write with metadata");
    write(&t, "kv/app/db", &values[1]).await.unwrap();
    write(&t, "kv/app/binary", &values[2]).await.unwrap();
    write(&t, "kv/app/large", &values[3]).await.unwrap();
    // A soft-deleted version is still in the table, sealed.
    t.host
        .delete_versions(&admin(), "kv/app/db", &["1".to_string()], false)
        .await
        .unwrap();
    assert_eq!(read(&t, "kv/app/db").await.unwrap(), values[1]);
    assert_eq!(read(&t, "kv/app/large").await.unwrap(), values[3]);

    // The whole database as pg_dump writes it (bytea as hex), and the
    // sealed values as raw bytes.
    let dump = pg_tool(&pg, "pg_dump", &["--no-owner"]);
    let raw = pg_tool(
        &pg,
        "psql",
        &[
            "-c",
            "COPY (SELECT sealed FROM tresor_kv_versions) TO STDOUT WITH (FORMAT binary)",
        ],
    );
    // The dump is of the right tables: paths and metadata are not secret.
    assert!(contains(&dump, b"tresor_kv_versions") && contains(&dump, b"app/db"));
    assert!(
        contains(&dump, label.as_bytes()),
        "the metadata is missing from the dump"
    );
    assert!(
        raw.len() > values[3].len() / 2,
        "the sealed values are missing from the COPY"
    );
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    for needle in [secret.as_bytes().to_vec(), hex(secret.as_bytes()).into_bytes()] {
        assert!(!contains(&dump, &needle), "pg_dump shows a plaintext value");
        assert!(!contains(&raw, &needle), "a sealed value holds the plaintext");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sockets_grant_is_required() {
    let pg = Postgres::start();
    let expected = format!("the mount grants sockets = [\"{}\"]", pg.authority());
    // No grant at all, then a grant for another port: the mount does not start.
    for grants in [String::new(), format!(r#"sockets = ["127.0.0.1:{}"]"#, pg.port + 1)] {
        conformance::check_bad_config(&kv_mount(&kv_config(&pg, ""), &grants), "kv", &expected)
            .await
            .unwrap_or_else(|e| panic!("grants `{grants}`: {e:#}"));
    }
    // Nothing was created in the database.
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'tresor_kv%'"),
        "0"
    );
    // The control: granted, it starts and creates its tables.
    let t = start(TEST_POLICIES, &granted_mount(&pg)).await;
    write(&t, "kv/x", b"granted").await.unwrap();
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'tresor_kv%'"),
        "2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_is_a_clear_startup_error() {
    let pg = Postgres::start();
    let grants = format!(r#"sockets = ["{}"]"#, pg.authority());
    let url = |rest: &str| {
        format!(
            r#"connection_url = "postgresql://postgres@127.0.0.1:{}/postgres{rest}""#,
            pg.port
        )
    };
    for (config, expected) in [
        (
            kv_config(&pg, r#"pasword = "x""#),
            "unknown config key `pasword` (did you mean `password`?)",
        ),
        (kv_config(&pg, r#"table_prefx = "x""#), "did you mean `table_prefix`?"),
        (kv_config(&pg, r#"table_prefix = "Bad-Name""#), "`table_prefix`"),
        (kv_config(&pg, r#"connect_timeout_ms = "soon""#), "`connect_timeout_ms`"),
        (r#"password = "x""#.to_string(), "`connection_url`"),
        (url(""), "sslmode=disable"),
        (
            format!(r#"{}, password = "not-the-password""#, url("?sslmode=disable")),
            "refused the login of `postgres`",
        ),
    ] {
        conformance::check_bad_config(&kv_mount(&config, &grants), "kv", expected)
            .await
            .unwrap_or_else(|e| panic!("{config}: {e:#}"));
    }
    // The server's refusal is shown, the password is not.
    let wrong = format!(r#"{}, password = "not-the-password""#, url("?sslmode=disable"));
    let message = startup_error(&kv_mount(&wrong, &grants)).await;
    assert!(message.contains("SQLSTATE 28P01"), "{message}");
    assert!(!message.contains("not-the-password"), "{message}");
}

/// The error of a host started with `mount`, which must not start.
async fn startup_error(mount: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    write_atomically(&dir.path().join("policies/test.cedar"), TEST_POLICIES);
    let config = tresor::Config::from_toml(&config_text(dir.path(), mount)).expect("the config parses");
    match tresor::Host::start(config).await {
        Ok(_) => panic!("the host started with a misconfigured mount"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_unavailable_and_heals() {
    let pg = Postgres::start();
    let t = start(TEST_POLICIES, &granted_mount(&pg)).await;
    write(&t, "kv/app/db", b"before").await.unwrap();

    pg.pause();
    for _ in 0..2 {
        match read(&t, "kv/app/db").await {
            Err(Error::Unavailable(m)) => {
                assert!(m.contains(&pg.authority()), "{m}");
                assert!(!m.contains(&pg.password), "{m}");
            }
            other => panic!("expected unavailable while PostgreSQL is down, got {other:?}"),
        }
    }
    // Other mounts serve meanwhile.
    write(&t, "secret/apps/still", b"up").await.unwrap();

    pg.resume();
    let healed = eventually(Duration::from_secs(10), || async {
        read(&t, "kv/app/db").await.is_ok_and(|v| v == b"before")
    })
    .await;
    assert!(healed, "reads do not work again after PostgreSQL is back");
    write(&t, "kv/app/db", b"after").await.expect("writes work again");
    assert_eq!(read(&t, "kv/app/db").await.unwrap(), b"after");
}
