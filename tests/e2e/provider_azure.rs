//! The azure provider plugin (plugins/azure) against our local Key Vault
//! (tests/peers/azure_keyvault.py, https with a throw-away CA): the
//! provider conformance suite with client credentials over paginated
//! lists, what the plugin leaves in the vault, soft delete and purge,
//! refused credentials, an untrusted certificate, and bad configurations.

use tresor::{Error, SecretBytes, WriteOptions};
use tresor_e2e::peers_cloud::{fetch_json, start_azure, AzureOptions, AzureVault};
use tresor_e2e::*;

const TOKEN: &str = "eyJ0eXAiOiJKV1QifQ.static-test-token";

/// A `[[mount]]` table for the azure plugin at `path`, with `config` and
/// `grants` (TOML inline-table entries).
fn azure_mount(path: &str, config: &str, grants: &str) -> String {
    plugin_mount(AZURE_WASM, path, config, grants)
}

/// Client credentials against the vault's own token endpoint.
fn app_config(kv: &AzureVault, extra: &str) -> String {
    format!(
        r#"vault_url = "{url}", authority = "{url}", tenant_id = "{}", client_id = "{}", client_secret = "{}"{extra}"#,
        kv.tenant_id,
        kv.client_id,
        kv.client_secret,
        url = kv.vault_url,
    )
}

/// Network to the vault, its CA, and the clock.
fn grants(kv: &AzureVault) -> String {
    format!(
        r#"network = ["{}"], ca_file = "{}", clock = true"#,
        kv.authority(),
        kv.ca_file.display()
    )
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
async fn conformance_with_client_credentials_and_small_pages() {
    // Two items per page: every listing follows nextLink.
    let kv = start_azure(&AzureOptions {
        max_page_size: 2,
        ..Default::default()
    });
    let t = start(TEST_POLICIES, &azure_mount("azure", &app_config(&kv, ""), &grants(&kv))).await;
    let outcome = conformance::run(&t.host, "azure", &admin())
        .await
        .unwrap_or_else(|e| panic!("{e:#}\nvault log:\n{}", kv.log_tail(3000)));
    let mut skipped: Vec<&str> = outcome.skipped.iter().map(|(check, _)| *check).collect();
    skipped.sort();
    assert_eq!(skipped, ["check-and-set", "soft-delete"], "{outcome}");
    println!("azure conformance: {outcome}");
    // Key Vault's challenge: requests without a token are answered 401.
    let challenge = fetch_json(
        &format!("{}/secrets?api-version=7.4", kv.vault_url),
        "",
        Some(&kv.ca_file),
    );
    assert_eq!(challenge["error"]["code"], "Unauthorized", "{challenge}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_plugin_stores_in_the_vault() {
    let kv = start_azure(&AzureOptions {
        access_token: Some(TOKEN.into()),
        ..Default::default()
    });
    let config = format!(r#"vault_url = "{}", access_token = "{TOKEN}""#, kv.vault_url);
    let t = start(TEST_POLICIES, &azure_mount("azure", &config, &grants(&kv))).await;

    let v1 = write_with(&t, "azure/apps/db-password", b"hunter2", &[("Team", "Core Ops")])
        .await
        .unwrap();
    write_with(&t, "azure/apps/blob", b"\x00\xff", &[]).await.unwrap();

    // `apps/db-password` is the secret `apps-db--2dpassword`; text is stored
    // as is, metadata as tags (plus the plugin's write time).
    let url = |path: &str| format!("{}/{path}?api-version=7.4", kv.vault_url);
    let text = fetch_json(&url("secrets/apps-db--2dpassword"), TOKEN, Some(&kv.ca_file));
    assert_eq!(text["value"], "hunter2", "{text}");
    assert_eq!(text["tags"]["Team"], "Core Ops", "{text}");
    assert!(
        text["tags"]["tresor-written-ms"]
            .as_str()
            .is_some_and(|ms| ms.len() >= 13),
        "{text}"
    );
    assert!(text["id"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/secrets/apps-db--2dpassword/{v1}")));
    // Bytes that are not UTF-8 are stored in base64, marked by the content type.
    let blob = fetch_json(&url("secrets/apps-blob"), TOKEN, Some(&kv.ca_file));
    assert_eq!(
        (blob["value"].as_str(), blob["contentType"].as_str()),
        (Some("AP8="), Some("application/vnd.tresor.base64"))
    );

    let read = t.host.read(&admin(), "azure/apps/db-password", None).await.unwrap();
    assert_eq!(read.value.expose(), b"hunter2");
    assert_eq!(read.metadata.get("Team").map(String::as_str), Some("Core Ops"));
    assert!(!read.metadata.contains_key("tresor-written-ms"));
    assert!(read.created_ms > 1_600_000_000_000, "{}", read.created_ms);
    assert_eq!(
        t.host
            .read(&admin(), "azure/apps/blob", None)
            .await
            .unwrap()
            .value
            .expose(),
        b"\x00\xff"
    );
    let listed = t.host.list(&admin(), "azure/apps/").await.unwrap();
    assert_eq!(listed, ["apps/blob", "apps/db-password"]);

    // Too large for Key Vault: refused before sending.
    let err = write_with(&t, "azure/apps/huge", &[b'x'; 26 * 1024], &[])
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::InvalidInput(m) if m.contains("25600")), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_names_stay_reserved_unless_purged() {
    let kv = start_azure(&AzureOptions::default());
    let mounts = [
        azure_mount("kept", &app_config(&kv, ""), &grants(&kv)),
        azure_mount("purged", &app_config(&kv, ", purge_on_delete = \"true\""), &grants(&kv)),
    ]
    .concat();
    let t = start(TEST_POLICIES, &mounts).await;

    // Soft delete: the name is Key Vault's until purged or recovered.
    write_with(&t, "kept/a", b"one", &[]).await.unwrap();
    t.host.delete(&admin(), "kept/a").await.unwrap();
    assert!(matches!(
        t.host.read(&admin(), "kept/a", None).await,
        Err(Error::NotFound(_))
    ));
    let err = write_with(&t, "kept/a", b"two", &[]).await.unwrap_err();
    assert!(matches!(&err, Error::Conflict(m) if m.contains("purge")), "{err:?}");

    // With purge_on_delete the path is free again at once (`kept` and
    // `purged` share the vault: `b` is one secret).
    write_with(&t, "purged/b", b"one", &[]).await.unwrap();
    t.host.delete(&admin(), "purged/b").await.unwrap();
    write_with(&t, "purged/b", b"two", &[])
        .await
        .expect("the purged name is free");
    assert_eq!(
        t.host.read(&admin(), "kept/b", None).await.unwrap().value.expose(),
        b"two"
    );
    assert_eq!(t.host.versions(&admin(), "purged/b").await.unwrap().len(), 1);
    // A secret deleted but not purged is purged by the purging mount.
    t.host
        .delete(&admin(), "purged/a")
        .await
        .expect("purges the soft-deleted `a`");
    write_with(&t, "kept/a", b"three", &[])
        .await
        .expect("the name is free after the purge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_and_untrusted_certificates() {
    let kv = start_azure(&AzureOptions::default());
    let wrong = format!(
        r#"vault_url = "{url}", authority = "{url}", tenant_id = "{}", client_id = "{}", client_secret = "not-the-secret""#,
        kv.tenant_id,
        kv.client_id,
        url = kv.vault_url,
    );
    let untrusted = format!(r#"network = ["{}"], clock = true"#, kv.authority());
    let mounts = [
        azure_mount("wrong", &wrong, &grants(&kv)),
        azure_mount("untrusted", &app_config(&kv, ""), &untrusted),
    ]
    .concat();
    let t = start(TEST_POLICIES, &mounts).await;

    match t.host.read(&admin(), "wrong/a", None).await {
        Err(Error::UpstreamDenied(m)) => {
            assert!(m.contains("AADSTS7000215") && m.contains("client_secret"), "{m}");
            assert!(!m.contains("not-the-secret"), "{m}");
        }
        other => panic!("expected UpstreamDenied, got {other:?}"),
    }
    // Without the mount's ca_file the self-signed chain is not trusted.
    match t.host.read(&admin(), "untrusted/a", None).await {
        Err(Error::Unavailable(m)) => assert!(m.contains("TLS"), "{m}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_is_a_clear_startup_error() {
    // Configurations are checked before anything is sent: no vault needed.
    let granted = r#"network = ["127.0.0.1:8443"], clock = true"#;
    let app = r#"tenant_id = "t", client_id = "c", client_secret = "s""#;
    let (https_url, http_url) = ("https://127.0.0.1:8443", "http://127.0.0.1:8443");
    // (Each case compiles the plugin afresh; the plugin's unit tests cover
    // the other malformed configurations.)
    for (config, expected) in [
        // Key Vault is https only: an http vault_url is refused outright.
        (format!(r#"vault_url = "{http_url}", {app}"#), "https"),
        (
            format!(r#"vault_url = "{https_url}", tenant_id = "t", client_id = "c""#),
            "`client_secret`",
        ),
        (
            format!(r#"vault_url = "{https_url}", {app}, authority = "{http_url}""#),
            "`authority`",
        ),
    ] {
        conformance::check_bad_config(&azure_mount("azure", &config, granted), "azure", expected)
            .await
            .unwrap_or_else(|e| panic!("{config}: {e:#}"));
    }
}
