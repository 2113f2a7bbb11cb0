//! The vault provider plugin (plugins/vault) against a real OpenBao dev
//! server: the provider conformance suite, AppRole logins, interoperability
//! with the `bao` CLI, the network grant, and an upstream outage.

use std::process::Command;
use std::time::{Duration, Instant};

use tresor::{Error, SecretBytes, WriteOptions};
use tresor_e2e::peers::{start_openbao, start_openbao_on, OpenBao};
use tresor_e2e::*;

/// A `[[mount]]` table for the vault plugin at `path`, with `config` (TOML
/// inline-table entries) and `grants`.
fn vault_mount(path: &str, config: &str, grants: &str) -> String {
    plugin_mount(VAULT_WASM, path, config, grants)
}

/// The usual mount: root token, network granted to the server.
fn token_mount(bao: &OpenBao) -> String {
    vault_mount(
        "vault",
        &format!(r#"address = "{}", token = "{}""#, bao.addr, bao.token),
        &format!(r#"network = ["127.0.0.1:{}"]"#, bao.port),
    )
}

fn admin() -> tresor::Caller {
    caller("root", &["admins"])
}

/// Runs the `bao` CLI against `bao` as root; panics on failure.
fn bao_cli(bao: &OpenBao, args: &[&str]) -> String {
    let out = Command::new("bao")
        .args(args)
        .env("BAO_ADDR", &bao.addr)
        .env("BAO_TOKEN", &bao.token)
        .output()
        .expect("run the bao CLI");
    assert!(
        out.status.success(),
        "bao {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("bao prints UTF-8")
        .trim()
        .to_string()
}

async fn write(t: &TestHost, path: &str, value: &str) -> Result<String, Error> {
    t.host
        .write(&admin(), path, &SecretBytes::from(value), &WriteOptions::default())
        .await
}

async fn read(t: &TestHost, path: &str) -> Result<Vec<u8>, Error> {
    t.host
        .read(&admin(), path, None)
        .await
        .map(|s| s.value.expose().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_with_a_token() {
    let bao = start_openbao().await;
    let t = start(TEST_POLICIES, &token_mount(&bao)).await;
    let outcome = conformance::run(&t.host, "vault", &admin())
        .await
        .unwrap_or_else(|e| panic!("{e:#}\nOpenBao log:\n{}", bao.log_tail(2000)));
    assert!(outcome.skipped.is_empty(), "vault claims every capability: {outcome}");
    println!("vault conformance: {outcome}");
}

/// Sets up AppRole on `bao` with a role whose tokens live `token_ttl`;
/// returns `(role_id, secret_id)`.
fn approle(bao: &OpenBao, token_ttl: &str) -> (String, String) {
    let policy = r#"path "secret/*" { capabilities = ["create", "read", "update", "delete", "list", "patch"] }"#;
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), policy).unwrap();
    bao_cli(
        bao,
        &["policy", "write", "tresor-kv", &file.path().display().to_string()],
    );
    bao_cli(bao, &["auth", "enable", "approle"]);
    bao_cli(
        bao,
        &[
            "write",
            "auth/approle/role/tresor",
            "token_policies=tresor-kv",
            &format!("token_ttl={token_ttl}"),
            &format!("token_max_ttl={token_ttl}"),
        ],
    );
    let role_id = bao_cli(bao, &["read", "-field=role_id", "auth/approle/role/tresor/role-id"]);
    let secret_id = bao_cli(
        bao,
        &["write", "-f", "-field=secret_id", "auth/approle/role/tresor/secret-id"],
    );
    (role_id.trim().to_string(), secret_id.trim().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approle_logs_in_and_logs_in_again_when_the_token_expires() {
    let bao = start_openbao().await;
    let (role_id, secret_id) = approle(&bao, "2s");
    let mount = vault_mount(
        "vault",
        &format!(
            r#"address = "{}", role_id = "{role_id}", secret_id = "{secret_id}""#,
            bao.addr
        ),
        &format!(r#"network = ["127.0.0.1:{}"]"#, bao.port),
    );
    let t = start(TEST_POLICIES, &mount).await;
    write(&t, "vault/app/db", "from-approle")
        .await
        .expect("write with an AppRole token");
    assert_eq!(read(&t, "vault/app/db").await.unwrap(), b"from-approle");
    // The cached token expires; Vault answers 403 and the plugin logs in again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        read(&t, "vault/app/db")
            .await
            .expect("read after the first token expired"),
        b"from-approle"
    );

    // A wrong secret_id is the backend refusing the mount's credentials.
    let bad = vault_mount(
        "vault",
        &format!(
            r#"address = "{}", role_id = "{role_id}", secret_id = "not-the-secret-id""#,
            bao.addr
        ),
        &format!(r#"network = ["127.0.0.1:{}"]"#, bao.port),
    );
    let t = start(TEST_POLICIES, &bad).await;
    let err = read(&t, "vault/app/db").await.unwrap_err();
    assert!(matches!(err, Error::UpstreamDenied(_)), "{err:?}");
    assert!(!err.to_string().contains("not-the-secret-id"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_interoperate_with_the_bao_cli() {
    let bao = start_openbao().await;
    let t = start(TEST_POLICIES, &token_mount(&bao)).await;

    // A compact JSON object is stored as the KV secret's fields...
    write(&t, "vault/app/db", r#"{"password":"p","user":"u"}"#)
        .await
        .unwrap();
    assert_eq!(bao_cli(&bao, &["kv", "get", "-field=user", "secret/app/db"]), "u");
    // ... any other value is wrapped, base64-encoded.
    write(&t, "vault/app/raw", "plain text").await.unwrap();
    assert_eq!(
        bao_cli(&bao, &["kv", "get", "-field=value", "secret/app/raw"]),
        "cGxhaW4gdGV4dA=="
    );
    // A secret written by another Vault client reads as its fields' JSON.
    bao_cli(&bao, &["kv", "put", "secret/legacy", "user=admin", "pass=hunter2"]);
    assert_eq!(
        read(&t, "vault/legacy").await.unwrap(),
        br#"{"pass":"hunter2","user":"admin"}"#
    );
    // Metadata is the secret's custom_metadata.
    let options = WriteOptions {
        metadata: [("owner".to_string(), "team-a".to_string())].into_iter().collect(),
        expected_version: None,
        inherit_metadata: false,
    };
    t.host
        .write(&admin(), "vault/app/tagged", &SecretBytes::from("x"), &options)
        .await
        .unwrap();
    let shown = bao_cli(&bao, &["kv", "metadata", "get", "-format=json", "secret/app/tagged"]);
    assert!(shown.contains(r#""owner": "team-a""#), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_network_grant_is_enforced() {
    let a = start_openbao().await;
    let b = start_openbao().await;
    let config_for = |bao: &OpenBao| format!(r#"address = "{}", token = "{}""#, bao.addr, bao.token);
    let mounts = [
        // No network grant at all.
        vault_mount("ungranted", &config_for(&b), ""),
        // Granted server A, configured to reach server B.
        vault_mount(
            "granted-a",
            &config_for(&b),
            &format!(r#"network = ["127.0.0.1:{}"]"#, a.port),
        ),
        // The control: granted and configured for A.
        vault_mount(
            "good",
            &config_for(&a),
            &format!(r#"network = ["127.0.0.1:{}"]"#, a.port),
        ),
    ]
    .concat();
    let t = start(TEST_POLICIES, &mounts).await;

    write(&t, "good/x", "reachable")
        .await
        .expect("the granted server is reachable");
    bao_cli(&b, &["kv", "put", "secret/x", "value=b"]);
    let expected = format!(
        "the mount does not grant network access to 127.0.0.1:{}; add it to the mount's grants.network",
        b.port
    );
    for mount in ["ungranted", "granted-a"] {
        for result in [
            read(&t, &format!("{mount}/x")).await.map(|_| ()),
            write(&t, &format!("{mount}/y"), "v").await.map(|_| ()),
        ] {
            match result {
                Err(Error::InvalidInput(m)) => assert!(m.contains(&expected), "{mount}: {m}"),
                other => panic!("{mount}: expected the network grant to refuse, got {other:?}"),
            }
        }
    }
    // Nothing reached B.
    assert!(bao_cli(&b, &["kv", "list", "secret/"]).lines().all(|l| l.trim() != "y"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_outage_fails_fast_and_heals() {
    let bao = start_openbao().await;
    let port = bao.port;
    let t = start(TEST_POLICIES, &token_mount(&bao)).await;
    write(&t, "vault/app/db", "before").await.unwrap();
    assert_eq!(read(&t, "vault/app/db").await.unwrap(), b"before");

    drop(bao); // SIGKILL: the server vanishes mid-run.
    for _ in 0..3 {
        let started = Instant::now();
        let err = read(&t, "vault/app/db").await.unwrap_err();
        let took = started.elapsed();
        assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
        assert!(err.to_string().contains(&format!("127.0.0.1:{port}")), "{err}");
        // The call deadline is 5 s; an outage must not use it up.
        assert!(took < Duration::from_secs(2), "the failure took {took:?}");
    }
    // The host itself is unaffected: other mounts serve.
    write(&t, "secret/apps/still", "up").await.unwrap();
    assert_eq!(read(&t, "secret/apps/still").await.unwrap(), b"up");

    // The server comes back (empty: dev mode keeps nothing in memory).
    let bao = start_openbao_on(port).await;
    match read(&t, "vault/app/db").await {
        Err(Error::NotFound(_)) => {}
        other => panic!("a fresh dev server has no secrets, got {other:?}"),
    }
    write(&t, "vault/app/db", "after").await.expect("writes work again");
    assert_eq!(read(&t, "vault/app/db").await.unwrap(), b"after");
    drop(bao);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_can_come_from_another_mount() {
    let bao = start_openbao().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    let policies = format!(
        r#"{TEST_POLICIES}
@id("vault-mount-reads-its-token")
permit (
  principal in Tresor::Group::"mounts",
  action == Tresor::Action::"read",
  resource is Tresor::Secret in Tresor::Mount::"secret"
) when {{ resource.path == "vault/token" }};
"#
    );
    write_atomically(&dir.path().join("policies/test.cedar"), &policies);

    // First run: store the token in the file mount.
    let config = tresor::Config::from_toml(&config_text(dir.path(), "")).unwrap();
    let host = tresor::Host::start(config).await.unwrap();
    host.write(
        &admin(),
        "secret/vault/token",
        &SecretBytes::from(bao.token.as_str()),
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    drop(host);

    // Second run: the vault mount's token is a reference to it.
    let mount = vault_mount(
        "vault",
        &format!(r#"address = "{}", token = "ref:secret/vault/token""#, bao.addr),
        &format!(r#"network = ["127.0.0.1:{}"]"#, bao.port),
    );
    let config = tresor::Config::from_toml(&config_text(dir.path(), &mount)).unwrap();
    let host = tresor::Host::start(config).await.expect("the reference resolves");
    host.write(
        &admin(),
        "vault/app/x",
        &SecretBytes::from("via-ref"),
        &WriteOptions::default(),
    )
    .await
    .expect("the referenced token works");
    assert_eq!(
        bao_cli(&bao, &["kv", "get", "-field=value", "secret/app/x"]),
        "dmlhLXJlZg=="
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_is_a_clear_startup_error() {
    let granted = r#"network = ["127.0.0.1:8200"]"#;
    for (config, expected) in [
        (r#"token = "t""#, "`address`"),
        (r#"address = "127.0.0.1:8200", token = "t""#, "`address`"),
        (r#"address = "http://127.0.0.1:8200""#, "`token`"),
        (r#"address = "http://127.0.0.1:8200", role_id = "r""#, "`secret_id`"),
        (
            r#"address = "http://127.0.0.1:8200", token = "t", timeout_ms = "soon""#,
            "`timeout_ms`",
        ),
    ] {
        conformance::check_bad_config(&vault_mount("vault", config, granted), "vault", expected)
            .await
            .unwrap_or_else(|e| panic!("{config}: {e:#}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_is_sent_with_every_request() {
    let bao = start_openbao().await;
    bao_cli(&bao, &["namespace", "create", "team"]);
    bao_cli(&bao, &["secrets", "enable", "-ns=team", "-path=secret", "kv-v2"]);
    let mount = vault_mount(
        "vault",
        &format!(
            r#"address = "{}", token = "{}", namespace = "team""#,
            bao.addr, bao.token
        ),
        &format!(r#"network = ["127.0.0.1:{}"]"#, bao.port),
    );
    let t = start(TEST_POLICIES, &mount).await;
    write(&t, "vault/app/db", r#"{"user":"in-team"}"#).await.unwrap();
    assert_eq!(
        bao_cli(&bao, &["kv", "get", "-ns=team", "-field=user", "secret/app/db"]),
        "in-team"
    );
    // The root namespace's KV mount has nothing.
    let out = Command::new("bao")
        .args(["kv", "get", "secret/app/db"])
        .env("BAO_ADDR", &bao.addr)
        .env("BAO_TOKEN", &bao.token)
        .output()
        .unwrap();
    assert!(!out.status.success(), "the secret leaked into the root namespace");
    assert_eq!(read(&t, "vault/app/db").await.unwrap(), br#"{"user":"in-team"}"#);
}
