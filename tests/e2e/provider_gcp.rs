//! The gcp provider plugin (plugins/gcp) against GCP Secret Manager's REST
//! API (cloudbox behind tests/peers/gcp_server.py): the provider
//! conformance suite with a service account (JWT exchanged at the token
//! endpoint), a static access token, the key kept in another mount
//! (`ref:`), what the plugin leaves in Secret Manager, refused
//! credentials, and bad configurations.

use tresor::{Error, SecretBytes, WriteOptions};
use tresor_e2e::peers_cloud::{fetch_json, start_gcp, GcpOptions, GcpPeer};
use tresor_e2e::*;

const PROJECT: &str = "tresor-test";
const TOKEN: &str = "ya29.static-test-token";

/// A `[[mount]]` table for the gcp plugin at `path`, with `config` and
/// `grants` (TOML inline-table entries).
fn gcp_mount(path: &str, config: &str, grants: &str) -> String {
    plugin_mount(GCP_WASM, path, config, grants)
}

/// Mount config with the peer's service-account key (a one-line JSON
/// document in a TOML literal string).
fn service_account_config(gcp: &GcpPeer) -> String {
    let key = gcp
        .service_account_json
        .as_deref()
        .expect("started with a service account");
    assert!(
        !key.contains('\'') && !key.contains('\n'),
        "the key file fits a TOML literal string"
    );
    format!(
        r#"project = "{PROJECT}", endpoint = "{}", service_account_json = '{key}'"#,
        gcp.endpoint
    )
}

fn network(gcp: &GcpPeer) -> String {
    format!(r#"network = ["{}"], clock = true"#, gcp.authority())
}

fn admin() -> tresor::Caller {
    caller("root", &["admins"])
}

async fn write_with(t: &TestHost, path: &str, value: &[u8], metadata: &[(&str, &str)]) -> Result<String, Error> {
    let options = WriteOptions {
        metadata: metadata.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        expected_version: None,
        inherit_metadata: false,
    };
    t.host
        .write(&admin(), path, &SecretBytes::new(value.to_vec()), &options)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_with_a_service_account() {
    let gcp = start_gcp(&GcpOptions {
        require_token: true,
        service_account: true,
        ..Default::default()
    });
    let t = start(
        TEST_POLICIES,
        &gcp_mount("gcp", &service_account_config(&gcp), &network(&gcp)),
    )
    .await;
    let outcome = conformance::run(&t.host, "gcp", &admin())
        .await
        .unwrap_or_else(|e| panic!("{e:#}\nserver log:\n{}", gcp.log_tail(3000)));
    let skipped: Vec<&str> = outcome.skipped.iter().map(|(check, _)| *check).collect();
    assert_eq!(skipped, ["check-and-set"], "{outcome}");
    println!("gcp conformance: {outcome}");
    // Tokens are cached: about a hundred calls, one exchange per plugin
    // instance at most (8 by default).
    let exchanges = gcp.log_tail(1 << 20).matches("token endpoint: issued").count();
    assert!((1..=8).contains(&exchanges), "{exchanges} token exchanges");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_plugin_stores_in_secret_manager() {
    let gcp = start_gcp(&GcpOptions {
        require_token: true,
        access_token: Some(TOKEN.into()),
        ..Default::default()
    });
    let config = format!(
        r#"project = "{PROJECT}", endpoint = "{}", access_token = "{TOKEN}""#,
        gcp.endpoint
    );
    // A static token needs no clock.
    let t = start(
        TEST_POLICIES,
        &gcp_mount("gcp", &config, &format!(r#"network = ["{}"]"#, gcp.authority())),
    )
    .await;

    let v1 = write_with(&t, "gcp/apps/db_password", b"\x00\xffbinary", &[("team", "core")])
        .await
        .unwrap();
    let v2 = write_with(&t, "gcp/apps/db_password", b"second", &[("team", "ops")])
        .await
        .unwrap();
    assert_eq!((v1.as_str(), v2.as_str()), ("1", "2"));

    // The path is the secret id `apps_db__5fpassword`; metadata its labels.
    let base = format!("{}/v1/projects/{PROJECT}/secrets", gcp.endpoint);
    let secret = fetch_json(&format!("{base}/apps_db__5fpassword"), TOKEN, None);
    assert_eq!(secret["labels"], serde_json::json!({ "team": "ops" }), "{secret}");
    assert!(secret["replication"]["automatic"].is_object(), "{secret}");
    let first = fetch_json(&format!("{base}/apps_db__5fpassword/versions/1:access"), TOKEN, None);
    assert_eq!(first["payload"]["data"], "AP9iaW5hcnk=", "{first}");

    // A secret made by another client is readable, and listed when its id
    // is a path's encoding.
    let read = t.host.read(&admin(), "gcp/apps/db_password", Some("1")).await.unwrap();
    assert_eq!(read.value.expose(), b"\x00\xffbinary");
    assert_eq!(read.metadata.get("team").map(String::as_str), Some("ops"));
    let listed = t.host.list(&admin(), "gcp/apps/").await.unwrap();
    assert_eq!(listed, ["apps/db_password"]);

    // Metadata that cannot be a label is refused before anything is written.
    let err = write_with(&t, "gcp/apps/other", b"x", &[("Team", "core")])
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::InvalidInput(m) if m.contains("label")), "{err:?}");
    let missing = fetch_json(&format!("{base}/apps_other"), TOKEN, None);
    assert_eq!(missing["error"]["code"], 404, "{missing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_can_come_from_another_mount() {
    let gcp = start_gcp(&GcpOptions {
        require_token: true,
        service_account: true,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    let policies = format!(
        r#"{TEST_POLICIES}
@id("gcp-mount-reads-its-key")
permit (
  principal == Tresor::Principal::"mount:gcp",
  action == Tresor::Action::"read",
  resource is Tresor::Secret in Tresor::Mount::"secret"
) when {{ resource.path == "gcp/service-account" }};
"#
    );
    write_atomically(&dir.path().join("policies/test.cedar"), &policies);

    // First run: keep the key in the encrypted file mount.
    let key = gcp.service_account_json.clone().unwrap();
    let config = tresor::Config::from_toml(&config_text(dir.path(), "")).unwrap();
    let host = tresor::Host::start(config).await.unwrap();
    host.write(
        &admin(),
        "secret/gcp/service-account",
        &SecretBytes::from(key.as_str()),
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    drop(host);

    // Second run: the gcp mount's key is a reference to it.
    let config = format!(
        r#"project = "{PROJECT}", endpoint = "{}", service_account_json = "ref:secret/gcp/service-account""#,
        gcp.endpoint
    );
    let mount = gcp_mount("gcp", &config, &network(&gcp));
    let config = tresor::Config::from_toml(&config_text(dir.path(), &mount)).unwrap();
    let host = tresor::Host::start(config).await.expect("the reference resolves");
    host.write(
        &admin(),
        "gcp/app/x",
        &SecretBytes::from("via-ref"),
        &WriteOptions::default(),
    )
    .await
    .expect("the referenced key signs JWTs the token endpoint accepts");
    let read = host.read(&admin(), "gcp/app/x", None).await.unwrap();
    assert_eq!(read.value.expose(), b"via-ref");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_are_upstream_denied() {
    // The API refuses a wrong static token...
    let gcp = start_gcp(&GcpOptions {
        require_token: true,
        access_token: Some(TOKEN.into()),
        ..Default::default()
    });
    let config = format!(
        r#"project = "{PROJECT}", endpoint = "{}", access_token = "wrong-token""#,
        gcp.endpoint
    );
    let t = start(TEST_POLICIES, &gcp_mount("gcp", &config, &network(&gcp))).await;
    let err = t.host.read(&admin(), "gcp/apps/db", None).await.unwrap_err();
    assert!(matches!(err, Error::UpstreamDenied(_)), "{err:?}");

    // ... and a token endpoint refuses a JWT signed by another key.
    let other = start_gcp(&GcpOptions {
        require_token: true,
        service_account: true,
        ..Default::default()
    });
    let foreign_key = other.service_account_json.clone().unwrap();
    let target = start_gcp(&GcpOptions {
        require_token: true,
        service_account: true,
        ..Default::default()
    });
    // The foreign key, sent to the target's token endpoint.
    let config = format!(
        r#"project = "{PROJECT}", endpoint = "{}", token_uri = "{}/token", service_account_json = '{foreign_key}'"#,
        target.endpoint, target.endpoint
    );
    let t = start(TEST_POLICIES, &gcp_mount("gcp", &config, &network(&target))).await;
    let err = t.host.read(&admin(), "gcp/apps/db", None).await.unwrap_err();
    match &err {
        Error::UpstreamDenied(m) => {
            assert!(m.contains("invalid_grant"), "{m}");
            assert!(!m.contains("PRIVATE KEY"), "{m}");
        }
        other => panic!("expected UpstreamDenied, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_is_a_clear_startup_error() {
    let gcp = start_gcp(&GcpOptions {
        service_account: true,
        ..Default::default()
    });
    let key = service_account_config(&gcp);
    let granted = network(&gcp);
    let no_clock = format!(r#"network = ["{}"]"#, gcp.authority());
    // (Each case compiles the plugin afresh; the plugin's unit tests cover
    // the other malformed configurations.)
    for (config, grants, expected) in [
        (format!(r#"project = "{PROJECT}""#), granted.as_str(), "`access_token`"),
        (
            format!(r#"project = "{PROJECT}", access_token = "t", endpoint = "secretmanager.googleapis.com""#),
            granted.as_str(),
            "`endpoint`",
        ),
        // JWTs carry the time: a service account needs the clock grant.
        (key.clone(), no_clock.as_str(), "grants.clock"),
    ] {
        conformance::check_bad_config(&gcp_mount("gcp", &config, grants), "gcp", expected)
            .await
            .unwrap_or_else(|e| panic!("{config}: {e:#}"));
    }
}
