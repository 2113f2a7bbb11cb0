//! Authentication of the HTTP API: tokens (hashed at rest, TTLs,
//! revocation, Cedar-authorized administration) and mutual TLS (a client
//! certificate maps to a principal; a listener that requires one refuses
//! clients without).

use std::time::Duration;

use serde_json::json;
use tresor_e2e::server::*;
use tresor_e2e::*;

#[tokio::test]
async fn denied_token_gets_403_and_no_value() {
    let s = start_server(TEST_POLICIES).await;
    let value = marker("ops-canary");
    let body = json!({ "data": { "key": value } }).to_string();
    let r = s
        .http("PUT", "/v1/secret/data/ops/key", Some(&s.root_token), Some(&body))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = s
        .http("PUT", "/v1/secret/data/apps/db", Some(&s.root_token), Some(&body))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    let app = s.token("billing", &["apps"], 3600).await;
    let r = s.http("GET", "/v1/secret/data/ops/key", Some(&app), None).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.errors().contains("permission denied"), "{}", r.text);
    assert!(!r.text.contains(&value));
    let r = s.http("GET", "/v1/secret/data/apps/db", Some(&app), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["data"]["data"]["key"], value.as_str());

    // No token, a made-up token: refused before anything is read.
    for token in [None, Some("tvs.made-up"), Some("")] {
        let r = s.http("GET", "/v1/secret/data/apps/db", token, None).await;
        assert_eq!(r.status, 403, "{token:?}: {}", r.text);
        assert!(!r.text.contains(&value));
    }
    // `Authorization: Bearer` works like X-Vault-Token.
    let r = request(
        s.addr(),
        None,
        "GET",
        "/v1/secret/data/apps/db",
        &[("Authorization", format!("Bearer {app}"))],
        Vec::new(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);

    // Every decision is in the audit log, never the value.
    let audit = std::fs::read_to_string(s.audit_log()).unwrap();
    assert!(audit.contains("\"principal\":\"billing\"") && audit.contains("\"phase\":\"denied\""));
    assert!(!audit.contains(&value));
    // So is every refused authentication, with a digest of the token at most.
    let refusals: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["event"].clone())
        .filter(|e| e["action"] == "authenticate")
        .collect();
    let rules: Vec<(&str, &str)> = refusals
        .iter()
        .map(|e| (e["principal"].as_str().unwrap(), e["policies"][0].as_str().unwrap()))
        .collect();
    assert_eq!(rules.len(), 3, "{refusals:#?}");
    assert_eq!(rules[0], ("anonymous", "builtin:no-credential"));
    assert!(rules[1].0.starts_with("token:") && rules[1].0.len() == 22, "{rules:?}");
    assert_eq!(rules[1].1, "builtin:invalid-token");
    assert_eq!(rules[2], ("anonymous", "builtin:no-credential"));
    for e in &refusals {
        assert_eq!(
            (e["phase"].as_str(), e["decision"].as_str()),
            (Some("denied"), Some("deny"))
        );
        assert_eq!(e["path"], "/v1/secret/data/apps/db");
        assert_eq!(e["front_door"], "http");
    }
    assert!(!audit.contains("made-up"), "a presented token reached the audit log");
    // The same token always gets the same digest: attempts can be correlated.
    s.http("GET", "/v1/secret/data/apps/db", Some("tvs.made-up"), None)
        .await;
    let again = std::fs::read_to_string(s.audit_log()).unwrap();
    let last = again.lines().last().unwrap();
    assert!(last.contains(&format!("\"principal\":\"{}\"", rules[1].0)), "{last}");
    s.stop().await;
}

// `bao token create -policy=apps` (hvac and node-vault alike) sends no
// display name: the new token must not become its creator.
#[tokio::test]
async fn a_token_made_without_a_name_is_its_own_principal() {
    let s = start_server(TEST_POLICIES).await;
    let body = json!({ "data": { "key": "v" } }).to_string();
    let r = s
        .http("PUT", "/v1/secret/data/apps/db", Some(&s.root_token), Some(&body))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    let out = s
        .bao(&s.root_token, &["token", "create", "-policy=apps", "-format=json"])
        .await;
    let made: serde_json::Value = serde_json::from_str(&stdout_ok(&out, "bao token create -policy=apps")).unwrap();
    let child = made["auth"]["client_token"]
        .as_str()
        .expect("a client token")
        .to_string();
    let r = s.http("GET", "/v1/auth/token/lookup-self", Some(&child), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let name = r.json()["data"]["display_name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let accessor = r.json()["data"]["accessor"].as_str().unwrap_or_default().to_string();
    assert_eq!(name, format!("token-{}", &accessor[..8]), "{}", r.text);
    assert_eq!(r.json()["data"]["policies"], json!(["apps"]), "{}", r.text);

    // It reads as itself: the audit says its name, and root's rights are not its own.
    let r = s.http("GET", "/v1/secret/data/apps/db", Some(&child), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = s.http("PUT", "/v1/secret/data/ops/x", Some(&child), Some(&body)).await;
    assert_eq!(r.status, 403, "{}", r.text);
    let audit = std::fs::read_to_string(s.audit_log()).unwrap();
    let last = audit.lines().last().unwrap();
    assert!(
        last.contains(&format!("\"principal\":\"{name}\"")) && last.contains("\"phase\":\"denied\""),
        "the refused write is audited as the child token: {last}"
    );
    s.stop().await;
}

#[tokio::test]
async fn expired_and_revoked_tokens_are_refused() {
    let s = start_server(TEST_POLICIES).await;
    let root = s.root_token.clone();
    let r = s
        .http(
            "PUT",
            "/v1/secret/data/apps/db",
            Some(&root),
            Some(r#"{"data":{"k":"v"}}"#),
        )
        .await;
    assert_eq!(r.status, 200);

    // A token made through the API with a one-second TTL.
    let r = s
        .http(
            "POST",
            "/v1/auth/token/create",
            Some(&root),
            Some(r#"{"policies":["apps"],"display_name":"short","ttl":"1s"}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let short = r.json()["auth"]["client_token"].as_str().unwrap().to_string();
    assert_eq!(r.json()["auth"]["lease_duration"], 1);
    let r = s.http("GET", "/v1/secret/data/apps/db", Some(&short), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = s.http("GET", "/v1/secret/data/apps/db", Some(&short), None).await;
    assert_eq!(r.status, 403, "{}", r.text);

    // Revoked by an admin, by accessor, and by itself.
    let make = |name: &str| format!(r#"{{"policies":["apps"],"display_name":"{name}","ttl":"1h"}}"#);
    let mut made = Vec::new();
    for name in ["a", "b", "c"] {
        let r = s
            .http("POST", "/v1/auth/token/create", Some(&root), Some(&make(name)))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        made.push((
            r.json()["auth"]["client_token"].as_str().unwrap().to_string(),
            r.json()["auth"]["accessor"].as_str().unwrap().to_string(),
        ));
    }
    let body = json!({ "token": made[0].0 }).to_string();
    let r = s.http("POST", "/v1/auth/token/revoke", Some(&root), Some(&body)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let body = json!({ "accessor": made[1].1 }).to_string();
    let r = s
        .http("POST", "/v1/auth/token/lookup-accessor", Some(&root), Some(&body))
        .await;
    assert_eq!(r.json()["data"]["display_name"], "b", "{}", r.text);
    assert_eq!(r.json()["data"]["id"], "", "lookup by accessor never shows the token");
    let r = s
        .http("POST", "/v1/auth/token/revoke-accessor", Some(&root), Some(&body))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = s
        .http("GET", "/v1/auth/token/lookup-self", Some(&made[2].0), None)
        .await;
    assert_eq!(r.json()["data"]["display_name"], "c", "{}", r.text);
    assert_eq!(r.json()["data"]["policies"], json!(["apps"]));
    let r = s
        .http("POST", "/v1/auth/token/revoke-self", Some(&made[2].0), None)
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    for (token, _) in &made {
        let r = s.http("GET", "/v1/secret/data/apps/db", Some(token), None).await;
        assert_eq!(r.status, 403, "{}", r.text);
        let r = s.http("GET", "/v1/auth/token/lookup-self", Some(token), None).await;
        assert_eq!(r.status, 403, "{}", r.text);
    }
    let r = s
        .http(
            "POST",
            "/v1/auth/token/lookup",
            Some(&root),
            Some(&json!({ "token": made[0].0 }).to_string()),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    s.stop().await;
}

#[tokio::test]
async fn token_admin_is_authorized_by_cedar_and_tokens_are_stored_hashed() {
    let s = start_server(TEST_POLICIES).await;
    let app = s.token("billing", &["apps"], 3600).await;
    let r = s
        .http(
            "POST",
            "/v1/auth/token/create",
            Some(&app),
            Some(r#"{"policies":["admins"]}"#),
        )
        .await;
    assert_eq!(r.status, 403, "an app may not mint an admin token: {}", r.text);
    let r = s
        .http(
            "POST",
            "/v1/auth/token/lookup",
            Some(&app),
            Some(&json!({ "token": s.root_token }).to_string()),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    let audit = std::fs::read_to_string(s.audit_log()).unwrap();
    assert!(
        audit.contains("\"action\":\"admin\"") && audit.contains("\"path\":\"token/create\""),
        "token administration is audited"
    );

    // An admin creates a token with groups and attributes; it authenticates
    // as that principal and policies see it.
    let r = s
        .http(
            "POST",
            "/v1/auth/token/create",
            Some(&s.root_token),
            Some(r#"{"principal":"deploy-bot","policies":["apps"],"meta":{"team":"billing"},"ttl":"30m"}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let auth = &r.json()["auth"];
    let bot = auth["client_token"].as_str().unwrap().to_string();
    assert!(bot.starts_with("tvs.") && bot.len() >= 40, "{bot}");
    assert_eq!(auth["policies"], json!(["apps"]));
    assert_eq!(auth["metadata"], json!({"team": "billing"}));
    assert_eq!(auth["lease_duration"], 1800);
    let r = s.http("GET", "/v1/auth/token/lookup-self", Some(&bot), None).await;
    assert_eq!(r.json()["data"]["display_name"], "deploy-bot");
    assert!(r.json()["data"]["ttl"].as_u64().unwrap() > 1700);
    let r = s
        .http(
            "PUT",
            "/v1/secret/data/apps/x",
            Some(&bot),
            Some(r#"{"data":{"k":"v"}}"#),
        )
        .await;
    assert_eq!(r.status, 403, "apps may read, not write: {}", r.text);
    assert!(r.errors().contains("deploy-bot"), "{}", r.text);

    // Unsupported Vault token features are refused, not ignored.
    for body in [r#"{"id":"my-own-token"}"#, r#"{"num_uses":3}"#, r#"{"period":"1h"}"#] {
        let r = s
            .http("POST", "/v1/auth/token/create", Some(&s.root_token), Some(body))
            .await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
    }

    // At rest: salted hashes only (a byte search of the state store).
    // The database and its write-ahead log, where recent changes are.
    let mut file = std::fs::read(s.state_file()).unwrap();
    let mut wal = s.state_file().into_os_string();
    wal.push("-wal");
    file.extend(std::fs::read(wal).unwrap_or_default());
    let holds = |needle: &[u8]| file.windows(needle.len()).any(|w| w == needle);
    for token in [&bot, &app, &s.root_token] {
        let secret_part = token.trim_start_matches("tvs.");
        assert!(!holds(secret_part.as_bytes()), "a token is stored in the clear");
    }
    assert!(holds(b"deploy-bot") && holds(b"token_salt"));
    s.stop().await;
}

fn mtls_server_toml(dir: &std::path::Path, pki: &TestPki, require: bool) -> String {
    let (cert, key) = pki.server().write(dir, "server");
    let ca = dir.join("clients-ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    format!(
        r#"
[[server.listener]]
address = "127.0.0.1:0"

[[server.listener]]
address = "127.0.0.1:0"
tls_cert_file = "{cert}"
tls_key_file = "{key}"
client_ca_file = "{ca}"
require_client_cert = {require}

[server.client_certs."deploy-bot"]
groups = ["apps"]
attributes = {{ team = "billing" }}
"#,
        cert = cert.display(),
        key = key.display(),
        ca = ca.display(),
    )
}

#[tokio::test]
async fn mtls_client_maps_to_its_principal_and_a_client_without_a_certificate_is_refused() {
    let pki = TestPki::new("tresor test CA");
    let s = start_server_with(TEST_POLICIES, "", |dir| mtls_server_toml(dir, &pki, true)).await;
    assert!(s.urls[0].starts_with("http://") && s.urls[1].starts_with("https://"));
    let value = marker("mtls-canary");
    for path in ["apps/db", "ops/key"] {
        let r = s
            .http(
                "PUT",
                &format!("/v1/secret/data/{path}"),
                Some(&s.root_token),
                Some(&json!({ "data": { "k": value } }).to_string()),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let tls_addr = s.addrs[1];
    let get =
        |config, path: &'static str| async move { request(tls_addr, Some(config), "GET", path, &[], Vec::new()).await };

    // The certificate's CN is the principal, with the configured groups.
    let bot = pki.client("deploy-bot");
    let r = get(pki.client_config(Some(&bot)), "/v1/secret/data/apps/db")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["data"]["data"]["k"], value.as_str());
    let r = get(pki.client_config(Some(&bot)), "/v1/secret/data/ops/key")
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.errors().contains("deploy-bot"), "{}", r.text);
    assert!(!r.text.contains(&value));

    // An unmapped CN is a principal without groups: default deny.
    let stranger = pki.client("stranger");
    let r = get(pki.client_config(Some(&stranger)), "/v1/secret/data/apps/db")
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.errors().contains("stranger"), "{}", r.text);

    // No certificate, or one from another CA: no answer at all.
    assert!(
        get(pki.client_config(None), "/v1/sys/health").await.is_err(),
        "a client without a certificate was served"
    );
    let other = TestPki::new("another CA");
    let foreign = other.client("deploy-bot");
    assert!(
        get(pki.client_config(Some(&foreign)), "/v1/sys/health").await.is_err(),
        "a certificate from an unknown CA was accepted"
    );

    // The audit log names the certificate's principal.
    let audit = std::fs::read_to_string(s.audit_log()).unwrap();
    assert!(audit.contains("\"principal\":\"deploy-bot\""));
    assert!(!audit.contains(&value));
    s.stop().await;
}

#[tokio::test]
async fn optional_client_certificates_fall_back_to_tokens() {
    let pki = TestPki::new("tresor test CA");
    let s = start_server_with(TEST_POLICIES, "", |dir| mtls_server_toml(dir, &pki, false)).await;
    let tls_addr = s.addrs[1];
    let r = request(
        tls_addr,
        Some(pki.client_config(None)),
        "PUT",
        "/v1/secret/data/apps/db",
        &[("X-Vault-Token", s.root_token.clone())],
        br#"{"data":{"k":"v"}}"#.to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    let r = request(
        tls_addr,
        Some(pki.client_config(None)),
        "GET",
        "/v1/secret/data/apps/db",
        &[],
        Vec::new(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 403, "no certificate and no token: {}", r.text);
    let bot = pki.client("deploy-bot");
    let r = request(
        tls_addr,
        Some(pki.client_config(Some(&bot))),
        "GET",
        "/v1/secret/data/apps/db",
        &[],
        Vec::new(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    // A token wins over the certificate: a bad token is refused even with one.
    let r = request(
        tls_addr,
        Some(pki.client_config(Some(&bot))),
        "GET",
        "/v1/secret/data/apps/db",
        &[("X-Vault-Token", "tvs.bogus".to_string())],
        Vec::new(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 403, "{}", r.text);
    s.stop().await;
}

#[tokio::test]
async fn a_write_keeps_the_secrets_tags_and_policy_decides_on_them() {
    // Rotators may write (not read) apps/*; restricted secrets are read and
    // written by admins only.
    let policies = format!(
        "{TEST_POLICIES}\n@id(\"rotators\")\npermit (principal in Tresor::Group::\"rotators\", action == Tresor::Action::\"write\", resource is Tresor::Secret in Tresor::Mount::\"secret\") when {{ resource.path like \"apps/*\" }};\n@id(\"restricted-writes\")\nforbid (principal, action == Tresor::Action::\"write\", resource is Tresor::Secret) when {{ resource.hasTag(\"classification\") && resource.getTag(\"classification\") == \"restricted\" }} unless {{ principal in Tresor::Group::\"admins\" }};\n"
    );
    let s = start_server(&policies).await;
    let root = Some(s.root_token.as_str());
    let rotator = s.token("rotator", &["rotators"], 3600).await;
    let app = s.token("billing", &["apps"], 3600).await;
    let r = s
        .http(
            "PUT",
            "/v1/secret/data/apps/db",
            root,
            Some(r#"{"data":{"password":"one"}}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = s
        .http(
            "POST",
            "/v1/secret/metadata/apps/db",
            root,
            Some(r#"{"custom_metadata":{"classification":"restricted"}}"#),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);

    // The tag is carried forward by an admin's write: apps still may not read.
    let r = s
        .http(
            "PUT",
            "/v1/secret/data/apps/db",
            root,
            Some(r#"{"data":{"password":"two"}}"#),
        )
        .await;
    assert_eq!(
        r.json()["data"]["custom_metadata"]["classification"],
        "restricted",
        "{}",
        r.text
    );
    let r = s.http("GET", "/v1/secret/data/apps/db", Some(&app), None).await;
    assert_eq!(r.status, 403, "{}", r.text);

    // The rotator's write would carry the restricted tag forward, and policy
    // decides on that tag: refused, and nothing changes.
    let r = s
        .http(
            "PUT",
            "/v1/secret/data/apps/db",
            Some(&rotator),
            Some(r#"{"data":{"password":"three"}}"#),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.errors().contains("restricted-writes"), "{}", r.text);
    let r = s.http("GET", "/v1/secret/metadata/apps/db", root, None).await;
    assert_eq!(r.json()["data"]["current_version"], 3, "{}", r.text);
    let r = s.http("GET", "/v1/secret/data/apps/db", Some(&app), None).await;
    assert_eq!(r.status, 403, "{}", r.text);

    // On an untagged secret the rotator writes without being able to read
    // it, and apps read the result.
    let r = s
        .http(
            "PUT",
            "/v1/secret/data/apps/api",
            Some(&rotator),
            Some(r#"{"data":{"key":"k1"}}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = s.http("GET", "/v1/secret/data/apps/api", Some(&app), None).await;
    assert_eq!(r.json()["data"]["data"]["key"], "k1", "{}", r.text);
    s.stop().await;
}
