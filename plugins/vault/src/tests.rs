#![allow(clippy::unwrap_used)]

use super::*;

fn config(pairs: &[(&str, &str)]) -> Config {
    Config::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

fn configure_error(pairs: &[(&str, &str)]) -> String {
    match VaultProvider::configure(config(pairs)) {
        Err(Error::InvalidInput(m)) => m,
        Err(other) => panic!("expected invalid-input, got {other:?}"),
        Ok(_) => panic!("expected {pairs:?} to be refused"),
    }
}

#[test]
fn configure_checks_address_mount_and_credentials() {
    assert!(configure_error(&[("token", "t")]).contains("`address`"));
    assert!(configure_error(&[("address", "127.0.0.1:8200"), ("token", "t")]).contains("`address`"));
    assert!(configure_error(&[("address", "http://h:1/v1"), ("token", "t")]).contains("`address`"));
    assert!(configure_error(&[("address", "http://h:1"), ("token", "t"), ("mount", "a//b")]).contains("`mount`"));
    let m = configure_error(&[("address", "http://h:1")]);
    assert!(m.contains("`token`") && m.contains("`role_id`"), "{m}");
    let m = configure_error(&[("address", "http://h:1"), ("role_id", "r")]);
    assert!(m.contains("`secret_id`"), "{m}");
    let m = configure_error(&[
        ("address", "http://h:1"),
        ("token", "s3cr3t"),
        ("role_id", "r"),
        ("secret_id", "x"),
    ]);
    assert!(!m.contains("s3cr3t"), "{m}");
    assert!(configure_error(&[("address", "http://h:1"), ("token", "t"), ("timeout_ms", "0")]).contains("timeout_ms"));

    let p = VaultProvider::configure(config(&[("address", "https://vault:8200/"), ("token", "t")])).unwrap();
    assert_eq!(p.client.address, "https://vault:8200");
    assert_eq!(p.client.mount, "secret");
    assert_eq!(
        p.client.url(Endpoint::Data, "a b/c"),
        "https://vault:8200/v1/secret/data/a%20b/c"
    );
    let p = VaultProvider::configure(config(&[
        ("address", "http://h:1"),
        ("role_id", "r"),
        ("secret_id", "s"),
        ("mount", "team/kv"),
        ("namespace", "ns1"),
    ]))
    .unwrap();
    assert_eq!(
        p.client.url(Endpoint::Metadata, "x"),
        "http://h:1/v1/team/kv/metadata/x"
    );
    assert_eq!(p.client.namespace.as_deref(), Some("ns1"));
    assert!(matches!(p.client.auth, Auth::AppRole { ref mount, .. } if mount == "approle"));
}

#[test]
fn configure_refuses_a_misspelt_key() {
    let m = configure_error(&[("adress", "http://h:1"), ("token", "s3cr3t")]);
    assert!(m.contains("`adress`") && m.contains("did you mean `address`"), "{m}");
    assert!(!m.contains("s3cr3t") && !m.contains("http://h:1"), "{m}");
    // Every documented key is accepted.
    let all: Vec<(&str, &str)> = CONFIG_KEYS.iter().map(|k| (*k, "x")).collect();
    assert!(!configure_error(&all).contains("unknown config key"));
}

/// A folder tree for `list_walk`.
fn tree<'a>(paths: &'a [&'a str]) -> impl FnMut(&str) -> Result<Vec<String>, Error> + 'a {
    move |folder: &str| {
        let mut keys: Vec<String> = paths
            .iter()
            .filter_map(|p| p.strip_prefix(folder))
            .map(|rest| match rest.find('/') {
                Some(i) => rest[..=i].to_owned(),
                None => rest.to_owned(),
            })
            .collect();
        keys.sort();
        keys.dedup();
        Ok(keys)
    }
}

#[test]
fn list_walks_folders_under_the_prefix() {
    let paths = ["a", "a/b", "a/c/d", "app/x", "app/y/z", "b/q", "ab"];
    let mut all = list_walk("", tree(&paths)).unwrap();
    all.sort();
    assert_eq!(all, ["a", "a/b", "a/c/d", "ab", "app/x", "app/y/z", "b/q"]);
    let mut some = list_walk("a/", tree(&paths)).unwrap();
    some.sort();
    assert_eq!(some, ["a/b", "a/c/d"]);
    let mut some = list_walk("ap", tree(&paths)).unwrap();
    some.sort();
    assert_eq!(some, ["app/x", "app/y/z"]);
    let mut some = list_walk("app/y", tree(&paths)).unwrap();
    some.sort();
    assert_eq!(some, ["app/y/z"]);
    assert!(list_walk("zzz/", tree(&paths)).unwrap().is_empty());
}

#[test]
fn list_only_visits_folders_that_can_match() {
    let paths = ["a/1", "b/1", "b/c/1"];
    let mut visited = Vec::new();
    let mut inner = tree(&paths);
    let found = list_walk("b/c", |folder| {
        visited.push(folder.to_owned());
        inner(folder)
    })
    .unwrap();
    assert_eq!(found, ["b/c/1"]);
    assert_eq!(visited, ["b/", "b/c/"]);
}

#[test]
fn metadata_maps_to_sorted_pairs() {
    let v = json!({"b": "2", "a": "1"});
    assert_eq!(
        metadata_pairs(Some(&v)),
        vec![("a".into(), "1".into()), ("b".into(), "2".into())]
    );
    assert!(metadata_pairs(Some(&Value::Null)).is_empty());
    assert!(metadata_pairs(None).is_empty());
}
