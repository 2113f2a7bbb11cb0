//! The core access path through the embedding API, with the real embedded
//! `file` and `env` plugins and real Cedar policies.

use std::time::Duration;

use tresor::{Error, SecretBytes, WriteOptions};
use tresor_e2e::*;

#[tokio::test]
async fn written_secret_reads_back_with_versions() {
    let t = start(TEST_POLICIES, "").await;
    let admin = caller("root", &["admins"]);
    let v1 = t
        .host
        .write(
            &admin,
            "secret/apps/db",
            &SecretBytes::from("first"),
            &WriteOptions::default(),
        )
        .await
        .unwrap();
    let v2 = t
        .host
        .write(
            &admin,
            "secret/apps/db",
            &SecretBytes::from("second"),
            &WriteOptions::default(),
        )
        .await
        .unwrap();
    assert_ne!(v1, v2);
    assert_eq!(
        t.host
            .read(&admin, "secret/apps/db", None)
            .await
            .unwrap()
            .value
            .expose(),
        b"second"
    );
    let old = t.host.read(&admin, "secret/apps/db", Some(&v1)).await.unwrap();
    assert_eq!((old.value.expose(), old.version.as_str()), (&b"first"[..], v1.as_str()));
    let versions = t.host.versions(&admin, "secret/apps/db").await.unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version.clone()).collect::<Vec<_>>(),
        vec![v1.clone(), v2.clone()]
    );

    // Check-and-set: a stale expected version loses with a typed conflict.
    let stale = WriteOptions {
        expected_version: Some(v1.clone()),
        ..Default::default()
    };
    let err = t
        .host
        .write(&admin, "secret/apps/db", &SecretBytes::from("third"), &stale)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    let fresh = WriteOptions {
        expected_version: Some(v2),
        ..Default::default()
    };
    t.host
        .write(&admin, "secret/apps/db", &SecretBytes::from("third"), &fresh)
        .await
        .unwrap();

    // Delete removes every version.
    t.host.delete(&admin, "secret/apps/db").await.unwrap();
    let err = t.host.read(&admin, "secret/apps/db", None).await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
}

#[tokio::test]
async fn data_directory_never_holds_plaintext() {
    let t = start(TEST_POLICIES, "").await;
    let admin = caller("root", &["admins"]);
    let value = marker("plaintext-canary");
    for i in 0..3 {
        let path = format!("secret/apps/canary{i}");
        t.host
            .write(
                &admin,
                &path,
                &SecretBytes::from(value.as_str()),
                &WriteOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(
            t.host.read(&admin, &path, None).await.unwrap().value.expose(),
            value.as_bytes()
        );
    }
    let files = files_under(&t.state_dir().join("data/secret"));
    assert!(files.len() >= 3, "expected version files, found {files:?}");
    for f in files.iter().chain([t.audit_log()].iter()) {
        let bytes = std::fs::read(f).unwrap();
        assert!(
            !bytes.windows(value.len()).any(|w| w == value.as_bytes()),
            "plaintext found in {}",
            f.display()
        );
    }
}

#[tokio::test]
async fn denied_principal_gets_a_typed_error_and_no_value() {
    let t = start(TEST_POLICIES, "").await;
    let admin = caller("root", &["admins"]);
    let value = marker("denied-canary");
    t.host
        .write(
            &admin,
            "secret/ops/key",
            &SecretBytes::from(value.as_str()),
            &WriteOptions::default(),
        )
        .await
        .unwrap();

    let app = caller("billing", &["apps"]);
    let err = t.host.read(&app, "secret/ops/key", None).await.unwrap_err();
    match &err {
        Error::Denied {
            principal,
            action,
            policies,
            ..
        } => {
            assert_eq!((principal.as_str(), action.as_str()), ("billing", "read"));
            assert!(
                policies.is_empty(),
                "default deny has no determining policy: {policies:?}"
            );
        }
        other => panic!("expected Denied, got {other:?}"),
    }
    assert!(!format!("{err} {err:?}").contains(&value));
    // Writes are denied too, and nothing is written.
    let err = t
        .host
        .write(&app, "secret/apps/x", &SecretBytes::from("v"), &WriteOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Denied { .. }), "{err:?}");
    let err = t.host.read(&admin, "secret/apps/x", None).await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");

    // A forbid on a metadata tag wins over the app's permit.
    let restricted = WriteOptions {
        metadata: [("classification".to_string(), "restricted".to_string())].into(),
        ..Default::default()
    };
    t.host
        .write(
            &admin,
            "secret/apps/restricted",
            &SecretBytes::from(value.as_str()),
            &restricted,
        )
        .await
        .unwrap();
    match t.host.read(&app, "secret/apps/restricted", None).await.unwrap_err() {
        Error::Denied { policies, .. } => assert_eq!(policies, vec!["restricted".to_string()]),
        other => panic!("expected Denied, got {other:?}"),
    }
    assert_eq!(
        t.host
            .read(&admin, "secret/apps/restricted", None)
            .await
            .unwrap()
            .value
            .expose(),
        value.as_bytes()
    );
}

#[tokio::test]
async fn list_returns_only_readable_entries() {
    let t = start(TEST_POLICIES, "").await;
    let admin = caller("root", &["admins"]);
    for p in ["apps/a", "apps/b/c", "ops/root-key", "team/x"] {
        t.host
            .write(
                &admin,
                &format!("secret/{p}"),
                &SecretBytes::from("v"),
                &WriteOptions::default(),
            )
            .await
            .unwrap();
    }
    let mut all = t.host.list(&admin, "secret/").await.unwrap();
    all.sort();
    assert_eq!(all, vec!["apps/a", "apps/b/c", "ops/root-key", "team/x"]);
    let mut seen = t.host.list(&caller("billing", &["apps"]), "secret/").await.unwrap();
    seen.sort();
    assert_eq!(seen, vec!["apps/a", "apps/b/c"]);

    // A secret the apps may not read because of its tag is not listed for them either.
    let restricted = WriteOptions {
        metadata: [("classification".to_string(), "restricted".to_string())].into(),
        ..Default::default()
    };
    t.host
        .write(&admin, "secret/apps/vault", &SecretBytes::from("v"), &restricted)
        .await
        .unwrap();
    let mut seen = t.host.list(&caller("billing", &["apps"]), "secret/").await.unwrap();
    seen.sort();
    assert_eq!(seen, vec!["apps/a", "apps/b/c"]);
    assert!(t
        .host
        .list(&admin, "secret/apps/")
        .await
        .unwrap()
        .contains(&"apps/vault".to_string()));
    assert_eq!(t.host.list(&admin, "secret/apps/b").await.unwrap(), vec!["apps/b/c"]);
    let err = t.host.list(&caller("nobody", &[]), "secret/").await.unwrap_err();
    assert!(matches!(err, Error::Denied { .. }), "{err:?}");
}

#[tokio::test]
async fn policy_change_applies_to_the_next_read_even_when_cached() {
    let t = start(TEST_POLICIES, "").await;
    let admin = caller("root", &["admins"]);
    let app = caller("billing", &["apps"]);
    t.host
        .write(
            &admin,
            "secret/apps/db",
            &SecretBytes::from("v"),
            &WriteOptions::default(),
        )
        .await
        .unwrap();
    // Two reads: the second is served from the mount's cache.
    t.host.read(&app, "secret/apps/db", None).await.unwrap();
    t.host.read(&app, "secret/apps/db", None).await.unwrap();

    // Revoke the app's read permit by editing the policy file: no restart.
    t.set_policies(&TEST_POLICIES.replace("@id(\"apps-read\")\npermit", "@id(\"apps-read\")\nforbid"));
    let denied = eventually(Duration::from_secs(10), || async {
        matches!(
            t.host.read(&app, "secret/apps/db", None).await,
            Err(Error::Denied { .. })
        )
    })
    .await;
    assert!(denied, "the cached value was still served after the policy changed");
    match t.host.read(&app, "secret/apps/db", None).await.unwrap_err() {
        Error::Denied { policies, .. } => assert_eq!(policies, vec!["apps-read".to_string()]),
        other => panic!("{other:?}"),
    }

    // And back.
    t.set_policies(TEST_POLICIES);
    assert!(
        eventually(Duration::from_secs(10), || async {
            t.host.read(&app, "secret/apps/db", None).await.is_ok()
        })
        .await
    );
}

#[tokio::test]
async fn invalid_policy_is_refused_and_the_old_set_stays() {
    let t = start(TEST_POLICIES, "").await;
    let admin = caller("root", &["admins"]);
    let app = caller("billing", &["apps"]);
    t.host
        .write(
            &admin,
            "secret/apps/db",
            &SecretBytes::from("v"),
            &WriteOptions::default(),
        )
        .await
        .unwrap();

    // A syntax error, then a policy that parses but does not fit the schema.
    for broken in [
        "permit (principal, action, resource) when { resource.path like };",
        "permit (principal, action, resource is Tresor::Secret) when { resource.no_such_attribute == \"x\" };",
    ] {
        t.set_policies(broken);
        let err = t.host.policy().reload().unwrap_err();
        assert!(!err.to_string().is_empty());
        // The previous set still decides: the app reads, a stranger does not.
        assert!(t.host.read(&app, "secret/apps/db", None).await.is_ok());
        assert!(matches!(
            t.host.read(&caller("x", &[]), "secret/apps/db", None).await,
            Err(Error::Denied { .. })
        ));
    }
    // Give the watcher time to see the broken file too: still the old set.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(t.host.read(&app, "secret/apps/db", None).await.is_ok());
}

#[tokio::test]
async fn bad_paths_and_unknown_mounts_are_refused_before_anything_runs() {
    let t = start(TEST_POLICIES, "").await;
    let admin = caller("root", &["admins"]);
    for bad in ["secret/../x", "secret/a//b", "secret/", "secret/a\0b", "secret/."] {
        let err = t
            .host
            .write(&admin, bad, &SecretBytes::from("v"), &WriteOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{bad:?}: {err:?}");
    }
    let err = t.host.read(&admin, "nope/x", None).await.unwrap_err();
    assert!(matches!(err, Error::UnknownMount { .. }), "{err:?}");
}

#[tokio::test]
async fn env_provider_serves_only_granted_variables() {
    // SAFETY: set before any thread reads the environment of this test binary's host.
    unsafe {
        std::env::set_var("TRESOR_E2E_APP_TOKEN", "env-value-1");
        std::env::set_var("TRESOR_E2E_OTHER", "not-granted");
    }
    let mounts = r#"
[[mount]]
path = "env"
plugin = "env"
config = { prefix = "TRESOR_E2E_" }
grants = { env = ["TRESOR_E2E_APP_*"] }
"#;
    let t = start(TEST_POLICIES, mounts).await;
    let admin = caller("root", &["admins"]);
    assert_eq!(
        t.host.read(&admin, "env/APP_TOKEN", None).await.unwrap().value.expose(),
        b"env-value-1"
    );
    let err = t.host.read(&admin, "env/OTHER", None).await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    assert_eq!(t.host.list(&admin, "env/").await.unwrap(), vec!["APP_TOKEN"]);
    let err = t
        .host
        .write(
            &admin,
            "env/APP_TOKEN",
            &SecretBytes::from("x"),
            &WriteOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
}

#[tokio::test]
async fn mount_config_can_reference_a_secret_in_an_earlier_mount() {
    // SAFETY: set before the host snapshots the allow-listed environment.
    unsafe { std::env::set_var("TRESOR_REF_APP_KEY", "from-env") };
    let t = start(TEST_POLICIES, "").await;
    let admin = caller("root", &["admins"]);
    t.host
        .write(
            &admin,
            "secret/config/env-prefix",
            &SecretBytes::from("TRESOR_REF_"),
            &WriteOptions::default(),
        )
        .await
        .unwrap();
    let TestHost { host, dir } = t;
    drop(host);

    let env_mount = r#"
[[mount]]
path = "env"
plugin = "env"
config = { prefix = "ref:secret/config/env-prefix" }
grants = { env = ["TRESOR_REF_*"] }
"#;
    let text = config_text(dir.path(), env_mount);
    // Without a policy letting `mount:env` read the reference, the mount does not start.
    let err = match tresor::Host::start(tresor::Config::from_toml(&text).unwrap()).await {
        Ok(_) => panic!("a reference was resolved without a permitting policy"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("permission denied") && err.contains("mount:env"), "{err}");
    assert!(!err.contains("TRESOR_REF_\""), "{err}");

    write_atomically(
        &dir.path().join("policies/test.cedar"),
        &format!(
            "{TEST_POLICIES}\n@id(\"mounts-read-config\")\npermit (principal in Tresor::Group::\"mounts\", action == Tresor::Action::\"read\", resource) when {{ resource has path && resource.path like \"config/*\" }};"
        ),
    );
    let host = tresor::Host::start(tresor::Config::from_toml(&text).unwrap())
        .await
        .unwrap();
    assert_eq!(
        host.read(&admin, "env/APP_KEY", None).await.unwrap().value.expose(),
        b"from-env"
    );
}

#[tokio::test]
async fn a_misspelt_plugin_config_key_stops_the_mount_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    write_atomically(&dir.path().join("policies/test.cedar"), TEST_POLICIES);
    let env_mount = r#"
[[mount]]
path = "env"
plugin = "env"
config = { prefx = "APP_", token = "s3cr3t-value" }
"#;
    let text = config_text(dir.path(), env_mount);
    let err = match tresor::Host::start(tresor::Config::from_toml(&text).unwrap()).await {
        Ok(_) => panic!("a mount with a misspelt config key started"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("`env`") && err.contains("unknown config key `prefx` (did you mean `prefix`?)"),
        "{err}"
    );
    assert!(!err.contains("s3cr3t-value") && !err.contains("APP_"), "{err}");
}

/// A fallback chain of three backends, the first one down: reads are
/// answered by the first member that has the secret (and say which), each
/// member access is audited as itself, a secret found nowhere while a
/// member was down is `unavailable`, never `not-found`, and writes are not
/// diverted from the first writable member.
#[tokio::test]
async fn a_fallback_chain_answers_from_the_first_member_that_has_the_secret() {
    // SAFETY: set before the host snapshots the allow-listed environment.
    unsafe { std::env::set_var("APPCHAIN_ONLY_ENV", "from-env") };
    let down = tresor_e2e::peers::free_port_pair();
    let extra = format!(
        "{remote}
[[mount]]
path = \"local\"
plugin = \"file\"
grants = {{ directory = \"data/local\", clock = true }}

[[mount]]
path = \"envp\"
plugin = \"env\"
config = {{ prefix = \"APPCHAIN_\" }}
grants = {{ env = [\"APPCHAIN_*\"] }}

[[mount]]
path = \"app\"
chain = [\"remote\", \"local\", \"envp\"]

[[mount]]
path = \"up\"
chain = [\"local\", \"envp\"]
",
        remote = plugin_mount(
            VAULT_WASM,
            "remote",
            &format!(r#"address = "http://127.0.0.1:{down}", token = "unused", timeout_ms = "500""#),
            &format!(r#"network = ["127.0.0.1:{down}"]"#),
        ),
    );
    let t = start(TEST_POLICIES, &extra).await;
    let admin = caller("root", &["admins"]);
    t.host
        .write(
            &admin,
            "local/DB_PASSWORD",
            &SecretBytes::from("from-local"),
            &WriteOptions::default(),
        )
        .await
        .unwrap();

    let s = t.host.read(&admin, "app/DB_PASSWORD", None).await.unwrap();
    assert_eq!((s.value.expose(), s.served_by.as_str()), (&b"from-local"[..], "local"));
    let s = t.host.read(&admin, "app/ONLY_ENV", None).await.unwrap();
    assert_eq!((s.value.expose(), s.served_by.as_str()), (&b"from-env"[..], "envp"));

    let err = t.host.read(&admin, "app/NOWHERE", None).await.unwrap_err();
    assert!(
        matches!(&err, Error::Unavailable(m) if m.contains("remote could not be asked")),
        "{err:?}"
    );
    let err = t.host.read(&admin, "up/NOWHERE", None).await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");

    // A refusal by policy stops the chain: it is not a miss.
    let err = t
        .host
        .read(&caller("mallory", &[]), "up/DB_PASSWORD", None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Denied { .. }), "{err:?}");

    // Writes go to the first writable member (down here), never elsewhere.
    let err = t
        .host
        .write(&admin, "app/NEW", &SecretBytes::from("v"), &WriteOptions::default())
        .await
        .unwrap_err();
    assert!(!matches!(err, Error::NotFound(_)), "{err:?}");
    assert!(matches!(
        t.host.read(&admin, "local/NEW", None).await,
        Err(Error::NotFound(_))
    ));

    // Every member access is in the audit log as itself.
    let audit = std::fs::read_to_string(t.audit_log()).unwrap();
    for mount in ["remote", "local", "envp"] {
        assert!(
            audit.contains(&format!("\"mount\":\"{mount}\",\"path\":\"DB_PASSWORD\""))
                || audit.contains(&format!("\"mount\":\"{mount}\",\"path\":\"ONLY_ENV\"")),
            "no audit entry on {mount}"
        );
    }
}
