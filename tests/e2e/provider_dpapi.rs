//! The dpapi provider (plugins/dpapi) mounted in a real host.
//!
//! Everywhere: listing a secrets file works, and a broken file or config is a
//! clear `invalid-input`. Off Windows, reading answers the host's clear
//! `unsupported`. On Windows (from Linux: the host cross-compiled and run
//! under Wine by tests/wine/run.sh), the secrets file is written the way a
//! Windows deployment writes it, with `CryptProtectData`, and the provider
//! passes the conformance suite through the whole host.

use std::path::Path;

use tresor::Error;
#[cfg(not(windows))]
use tresor::{SecretBytes, WriteOptions};
use tresor_e2e::*;

/// Path of the dpapi plugin component (built by build.rs).
const DPAPI_WASM: &str = env!("TRESOR_PLUGIN_DPAPI");

/// Blobs as a Windows deployment writes them (CryptProtectData output, hex).
const SECRETS_JSON: &str = r#"{
  "db-password": "01000000d08c9ddf0115d1118c7a00c04fc297eb01000000aa",
  "app/api-token": "01000000D08C9DDF0115D1118C7A00C04FC297EB01000000BB",
  "app/smtp": "01000000d08c9ddf0115d1118c7a00c04fc297eb01000000cc"
}"#;

/// A `[[mount]]` table for the dpapi plugin at `legacy`, reading `dir`
/// (read-only) with the extra config entries `config` (TOML inline-table
/// body, possibly empty).
fn dpapi_mount(dir: &Path, config: &str) -> String {
    let sha256 = tresor::runtime::compile::sha256_hex(&std::fs::read(DPAPI_WASM).expect("dpapi plugin built"));
    format!(
        r#"
[[mount]]
path = "legacy"
plugin_path = "{DPAPI_WASM}"
sha256 = "{sha256}"
grants = {{ directory = '{dir}', read_only = true }}
config = {{ {config} }}
"#,
        dir = dir.display(),
    )
}

async fn start_dpapi(files: &[(&str, &str)], config: &str) -> (TestHost, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = data.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let t = start(TEST_POLICIES, &dpapi_mount(data.path(), config)).await;
    (t, data)
}

fn invalid_input(result: Result<impl std::fmt::Debug, Error>) -> String {
    match result {
        Err(Error::InvalidInput(m)) => m,
        other => panic!("expected invalid input, got {other:?}"),
    }
}

#[cfg(not(windows))]
#[tokio::test]
async fn lists_names_and_reads_answer_unsupported_off_windows() {
    let (t, _data) = start_dpapi(&[("secrets.json", SECRETS_JSON)], "").await;
    let admin = caller("root", &["admins"]);

    let mut names = t.host.list(&admin, "legacy/").await.expect("list");
    names.sort();
    assert_eq!(names, ["app/api-token", "app/smtp", "db-password"]);
    assert_eq!(
        t.host.list(&admin, "legacy/app/").await.expect("list app/"),
        ["app/api-token", "app/smtp"]
    );

    let versions = t.host.versions(&admin, "legacy/db-password").await.expect("versions");
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].version, "1");

    for path in ["legacy/db-password", "legacy/app/api-token"] {
        match t.host.read(&admin, path, None).await {
            Err(Error::Unsupported(m)) => {
                assert!(
                    m.contains("DPAPI") && m.contains("only available on Windows"),
                    "{path}: {m}"
                );
                // The plugin passes the host's answer on unchanged.
                assert_eq!(
                    m,
                    tresor::platform::unprotect(b"x", b"").unwrap_err().message(),
                    "{path}"
                );
            }
            other => panic!("{path}: expected unsupported, got {other:?}"),
        }
    }

    // Unknown names are not-found before DPAPI is asked.
    match t.host.read(&admin, "legacy/nope", None).await {
        Err(Error::NotFound(m)) => assert!(m.contains("`nope`") && m.contains("secrets.json"), "{m}"),
        other => panic!("expected not found, got {other:?}"),
    }
    // Read-only: the host refuses writes from the capabilities.
    let err = t
        .host
        .write(&admin, "legacy/new", &SecretBytes::from("v"), &WriteOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
}

#[cfg(not(windows))]
#[tokio::test]
async fn a_configured_file_in_a_subdirectory_is_read() {
    let (t, _data) = start_dpapi(
        &[("legacy/app.json", r#"{"only": "0a0b"}"#)],
        r#"file = "legacy/app.json", entropy = "0011aabb""#,
    )
    .await;
    let admin = caller("root", &["admins"]);
    assert_eq!(t.host.list(&admin, "legacy/").await.expect("list"), ["only"]);
    let err = t.host.read(&admin, "legacy/only", None).await.unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
}

#[tokio::test]
async fn malformed_json_is_a_clear_invalid_input() {
    let (t, data) = start_dpapi(&[("secrets.json", r#"{"db-password": "0102","#)], "").await;
    let admin = caller("root", &["admins"]);

    let m = invalid_input(t.host.list(&admin, "legacy/").await);
    assert!(m.contains("`secrets.json` is not valid JSON"), "{m}");
    let m = invalid_input(t.host.read(&admin, "legacy/db-password", None).await);
    assert!(m.contains("`secrets.json` is not valid JSON"), "{m}");

    // Not an object.
    write_atomically(&data.path().join("secrets.json"), r#"["0102"]"#);
    let m = invalid_input(t.host.list(&admin, "legacy/").await);
    assert!(m.contains("must hold a JSON object"), "{m}");

    // The file is read on every call: fixing it needs no restart.
    write_atomically(&data.path().join("secrets.json"), SECRETS_JSON);
    assert_eq!(t.host.list(&admin, "legacy/").await.expect("list").len(), 3);
}

#[tokio::test]
async fn bad_hex_is_a_clear_invalid_input_naming_the_entry() {
    let marker = marker("not-hex");
    // An even number of characters, so the hex check reaches the `z`.
    let mut broken = format!("01zz{marker}");
    if broken.len() % 2 == 1 {
        broken.push('0');
    }
    let text = format!(r#"{{"good": "0102", "broken": "{broken}"}}"#);
    let (t, _data) = start_dpapi(&[("secrets.json", &text)], "").await;
    let admin = caller("root", &["admins"]);

    for result in [
        t.host.list(&admin, "legacy/").await.map(|_| ()),
        t.host.read(&admin, "legacy/good", None).await.map(|_| ()),
        t.host.read(&admin, "legacy/broken", None).await.map(|_| ()),
    ] {
        let m = invalid_input(result);
        assert!(
            m.contains("value of `broken` is not a DPAPI blob in hex") && m.contains("character 3 is not a hex digit"),
            "{m}"
        );
        assert!(!m.contains(&marker), "the message repeats the value: {m}");
    }
}

#[tokio::test]
async fn a_missing_file_and_bad_config_are_explained() {
    let (t, _data) = start_dpapi(&[], "").await;
    let admin = caller("root", &["admins"]);
    let m = invalid_input(t.host.list(&admin, "legacy/").await);
    assert!(m.contains("`secrets.json` does not exist"), "{m}");

    // A malformed entropy stops the mount at start-up, naming the key.
    let data = tempfile::tempdir().unwrap();
    conformance::check_bad_config(&dpapi_mount(data.path(), r#"entropy = "xyz""#), "legacy", "`entropy`")
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    conformance::check_bad_config(
        &dpapi_mount(data.path(), r#"file = "../elsewhere.json""#),
        "legacy",
        "`file`",
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
}

/// DPAPI itself: on Windows, or from Linux under Wine.
#[cfg(windows)]
mod on_windows {
    use super::*;

    /// `value` protected with `CryptProtectData` (and `entropy`), in hex: an
    /// entry of a secrets file as a Windows deployment writes it.
    fn blob_hex(value: &[u8], entropy: &[u8]) -> String {
        hex::encode(tresor::platform::protect(value.to_vec(), entropy).expect("CryptProtectData"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn passes_the_conformance_suite() {
        let seed = conformance::Seed::new();
        let entries: serde_json::Map<String, serde_json::Value> = seed
            .secrets()
            .into_iter()
            .map(|(name, value)| (name, blob_hex(&value, b"").into()))
            .collect();
        let file = serde_json::Value::Object(entries).to_string();
        let (t, _data) = start_dpapi(&[("secrets.json", &file)], "").await;
        let outcome = conformance::run_seeded(&t.host, "legacy", &caller("root", &["admins"]), &seed)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        println!("dpapi conformance: {outcome}");
        for check in ["missing-is-not-found", "round-trip", "versions", "list", "read-only"] {
            assert!(outcome.passed.contains(&check), "{check} did not run: {outcome}");
        }
    }

    #[tokio::test]
    async fn the_mount_entropy_opens_blobs_protected_with_it_only() {
        let value = marker("entropy-value");
        let v = value.as_bytes();
        let text = serde_json::json!({
            "db": blob_hex(v, &[0x00, 0x11, 0xaa, 0xbb]),
            "other": blob_hex(v, b"another entropy"),
            "none": blob_hex(v, b""),
        })
        .to_string();
        let (t, _data) = start_dpapi(&[("app.json", &text)], r#"file = "app.json", entropy = "0011AABB""#).await;
        let admin = caller("root", &["admins"]);

        let read = t
            .host
            .read(&admin, "legacy/db", None)
            .await
            .expect("read with the mount's entropy");
        assert_eq!(read.value.expose(), value.as_bytes());
        assert_eq!(read.version, "1");

        for name in ["other", "none"] {
            let m = invalid_input(t.host.read(&admin, &format!("legacy/{name}"), None).await);
            assert!(
                m.contains("entropy differs") && m.contains("CryptUnprotectData"),
                "{name}: {m}"
            );
            assert!(!m.contains(&value), "{name}: the message repeats the value: {m}");
        }
    }

    #[tokio::test]
    async fn a_tampered_blob_is_a_clear_invalid_input_and_others_still_read() {
        let value = marker("tampered-value");
        let mut bad = hex::decode(blob_hex(value.as_bytes(), b"")).unwrap();
        *bad.last_mut().unwrap() ^= 1;
        let text = serde_json::json!({"good": blob_hex(b"good", b""), "bad": hex::encode(bad)}).to_string();
        let (t, _data) = start_dpapi(&[("secrets.json", &text)], "").await;
        let admin = caller("root", &["admins"]);

        let m = invalid_input(t.host.read(&admin, "legacy/bad", None).await);
        assert!(m.contains("tampered with"), "{m}");
        assert!(!m.contains(&value), "the message repeats the value: {m}");
        let read = t.host.read(&admin, "legacy/good", None).await.expect("the good blob");
        assert_eq!(read.value.expose(), b"good");
    }
}
