//! Native unit tests of the parts that need no host: configuration, names,
//! tags and ids. The plugin against a Key Vault is
//! tests/e2e/provider_azure.rs.

#![allow(clippy::unwrap_used)]

use super::*;
use tresor_plugin_sdk::http::BearerAuth;

fn config(pairs: &[(&str, &str)]) -> Config {
    Config::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

fn configure(pairs: &[(&str, &str)]) -> Result<AzureProvider, Error> {
    AzureProvider::configure(config(pairs))
}

#[test]
fn vault_url_must_be_https() {
    let http = configure(&[("vault_url", "http://my-vault.vault.azure.net"), ("access_token", "t")]);
    assert!(matches!(http, Err(Error::InvalidInput(m)) if m.contains("`vault_url`") && m.contains("https")));
    for bad in [
        "my-vault.vault.azure.net",
        "https://",
        "https://v.vault.azure.net/secrets",
        "ftp://v",
    ] {
        let result = configure(&[("vault_url", bad), ("access_token", "t")]);
        assert!(
            matches!(result, Err(Error::InvalidInput(m)) if m.contains("`vault_url`")),
            "{bad}"
        );
    }
    let missing = configure(&[("access_token", "t")]);
    assert!(matches!(missing, Err(Error::InvalidInput(m)) if m.contains("`vault_url`")));
    let ok = configure(&[("vault_url", "https://v.vault.azure.net/"), ("access_token", "t")]).unwrap();
    assert_eq!(ok.client.vault_url, "https://v.vault.azure.net");
    assert_eq!(
        ok.client.url("secrets/a"),
        "https://v.vault.azure.net/secrets/a?api-version=7.4"
    );
    assert!(!ok.purge_on_delete);
    let caps = ok.capabilities();
    assert!(caps.writable && caps.versioned && caps.listable && caps.deletable);
    assert!(!caps.check_and_set && !caps.soft_delete);
}

#[test]
fn credentials_are_a_token_or_a_complete_application() {
    let v = ("vault_url", "https://v.vault.azure.net");
    let none = configure(&[v]);
    assert!(matches!(none, Err(Error::InvalidInput(m)) if m.contains("client_secret")));
    let partial = configure(&[v, ("tenant_id", "t"), ("client_id", "c")]);
    assert!(matches!(partial, Err(Error::InvalidInput(_))));
    let both = configure(&[
        v,
        ("access_token", "x"),
        ("tenant_id", "t"),
        ("client_id", "c"),
        ("client_secret", "s"),
    ]);
    assert!(matches!(both, Err(Error::InvalidInput(_))));
    let bad_tenant = configure(&[v, ("tenant_id", "a/b"), ("client_id", "c"), ("client_secret", "s")]);
    assert!(matches!(bad_tenant, Err(Error::InvalidInput(m)) if m.contains("`tenant_id`")));
    let http_authority = configure(&[
        v,
        ("tenant_id", "t"),
        ("client_id", "c"),
        ("client_secret", "s3cr3t"),
        ("authority", "http://login.example"),
    ]);
    assert!(
        matches!(http_authority, Err(Error::InvalidInput(m)) if m.contains("`authority`") && !m.contains("s3cr3t"))
    );
    let app = configure(&[
        v,
        ("tenant_id", "contoso.onmicrosoft.com"),
        ("client_id", "c"),
        ("client_secret", "s"),
        ("purge_on_delete", "true"),
    ])
    .unwrap();
    assert!(app.purge_on_delete && app.client.auth.can_refresh());
    let bad_bool = configure(&[v, ("access_token", "t"), ("purge_on_delete", "yes")]);
    assert!(matches!(bad_bool, Err(Error::InvalidInput(m)) if m.contains("`purge_on_delete`")));
}

#[test]
fn configure_refuses_a_misspelt_key() {
    let typo = configure(&[
        ("vault_url", "https://v.vault.azure.net"),
        ("access_token", "s3cr3t"),
        ("purge_on_delet", "true"),
    ]);
    assert!(
        matches!(typo, Err(Error::InvalidInput(ref m))
            if m.contains("`purge_on_delet`") && m.contains("did you mean `purge_on_delete`") && !m.contains("s3cr3t")),
        "{:?}",
        typo.err()
    );
}

#[test]
fn paths_map_to_case_insensitive_names() {
    assert_eq!(NAMES.encode("apps/db/prod").unwrap(), "apps-db-prod");
    assert_eq!(NAMES.encode("apps/db-password").unwrap(), "apps-db--2dpassword");
    assert_eq!(NAMES.encode("Apps/DB").unwrap(), "--41pps---44--42");
    for path in ["Apps/DB", "a_b/c.d", "x/-/y", "ü"] {
        let name = NAMES.encode(path).unwrap();
        assert!(name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
        assert_eq!(NAMES.decode(&name).as_deref(), Some(path));
        // The vault may hand names back in another case.
        assert_eq!(NAMES.decode(&name.to_ascii_uppercase()).as_deref(), Some(path));
    }
    assert!(matches!(NAMES.encode(&"a".repeat(128)), Err(Error::InvalidInput(m)) if m.contains("127")));
}

#[test]
fn metadata_becomes_tags_minus_the_plugins_own() {
    let tags = tags_of(vec![("Team".into(), "Core Ops".into()), ("a b".into(), "".into())]).unwrap();
    assert_eq!(tags.get("Team"), Some(&json!("Core Ops")));
    assert!(matches!(
        tags_of(vec![(WRITTEN_TAG.into(), "1".into())]),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        tags_of(vec![("".into(), "x".into())]),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        tags_of(vec![("k".into(), "v".repeat(257))]),
        Err(Error::InvalidInput(_))
    ));
    let many: Metadata = (0..15).map(|i| (format!("k{i}"), String::new())).collect();
    assert!(matches!(tags_of(many), Err(Error::InvalidInput(m)) if m.contains("15")));
    let bundle = json!({ "tags": { "b": "2", WRITTEN_TAG: "123", "a": "1" }, "attributes": { "created": 7 } });
    assert_eq!(
        metadata_of(&bundle),
        vec![("a".to_string(), "1".to_string()), ("b".into(), "2".into())]
    );
    assert_eq!(created_ms(&bundle), 7000);
}

#[test]
fn ids_give_name_and_version() {
    assert_eq!(
        parse_id("https://v.vault.azure.net/secrets/apps-db/0123456789abcdef0123456789abcdef"),
        Some(("apps-db", Some("0123456789abcdef0123456789abcdef")))
    );
    assert_eq!(parse_id("https://127.0.0.1:8443/secrets/a"), Some(("a", None)));
    assert_eq!(parse_id("https://v/keys/a"), None);
    assert!(is_version_id("0123456789abcdef0123456789abcdef"));
    for bad in ["", "a/b", "../x", "a?b"] {
        assert!(!is_version_id(bad), "{bad}");
    }
}
