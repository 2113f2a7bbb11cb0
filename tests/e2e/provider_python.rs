//! The JSON-file provider, written in Python (plugins/json-file, built with
//! componentize-py): the provider conformance suite with nothing skipped, its
//! configuration checks, persistence across a restart with no plaintext at
//! rest, Vault's version settings, concurrent writers on several instances;
//! and the sandbox around a Python interpreter (tests/plugins/hostile-py),
//! checked as tests/e2e/sandbox.rs checks it for Rust plugins.

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tresor::{Caller, Config, Error, Host, PluginFailure, SecretBytes, SecretSettings, WriteOptions};
use tresor_e2e::*;

/// Sandbox limits of the JSON-file mounts: the host's defaults (64 MiB,
/// 5 s), written out so the README's numbers are the tested ones.
const JSON_LIMITS: &str = "memory_mib = 64, call_timeout_ms = 5000";

fn admin() -> Caller {
    caller("root", &["admins"])
}

fn pin(wasm: &str) -> String {
    tresor::runtime::compile::sha256_hex(&std::fs::read(wasm).unwrap_or_else(|e| panic!("{wasm} not built: {e}")))
}

/// A `json` mount of the Python provider on the host directory `data`, with
/// plugin `config` and `limits` (TOML inline-table entries).
fn json_mount_with(data: &Path, config: &str, limits: &str) -> String {
    std::fs::create_dir_all(data).unwrap();
    format!(
        r#"
[[mount]]
path = "json"
plugin_path = '{wasm}'
sha256 = "{sha}"
config = {{ {config} }}
grants = {{ directory = '{data}', clock = true }}
limits = {{ {limits} }}
"#,
        wasm = JSON_FILE_WASM,
        sha = pin(JSON_FILE_WASM),
        data = data.display(),
    )
}

fn json_mount(data: &Path) -> String {
    json_mount_with(data, "", JSON_LIMITS)
}

async fn write(host: &Host, path: &str, value: &[u8]) -> Result<String, Error> {
    host.write(
        &admin(),
        path,
        &SecretBytes::new(value.to_vec()),
        &WriteOptions::default(),
    )
    .await
}

async fn write_cas(host: &Host, path: &str, value: &[u8], expected: &str) -> Result<String, Error> {
    let options = WriteOptions {
        metadata: Default::default(),
        expected_version: Some(expected.to_string()),
        inherit_metadata: false,
    };
    host.write(&admin(), path, &SecretBytes::new(value.to_vec()), &options)
        .await
}

async fn read(host: &Host, path: &str, version: Option<&str>) -> Result<Vec<u8>, Error> {
    host.read(&admin(), path, version)
        .await
        .map(|s| s.value.expose().to_vec())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

fn base64(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(DIGITS[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The error of a host started with `mounts`, which must not start.
async fn startup_error(mounts: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    write_atomically(&dir.path().join("policies/test.cedar"), TEST_POLICIES);
    let config = Config::from_toml(&config_text(dir.path(), mounts)).expect("the config parses");
    match Host::start(config).await {
        Ok(_) => panic!("the host started with a misconfigured mount"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_provider_passes_conformance_with_nothing_skipped() {
    let data = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let t = start(TEST_POLICIES, &json_mount(data.path())).await;
    let start_time = started.elapsed();
    let caps = t
        .host
        .mounts()
        .into_iter()
        .find(|(name, _, _)| name == "json")
        .map(|(_, _, caps)| caps)
        .expect("the json mount is there");
    assert!(
        caps.writable && caps.versioned && caps.check_and_set && caps.deletable && caps.listable && caps.soft_delete,
        "the JSON-file provider claims every capability: {caps:?}"
    );
    let first = Instant::now();
    let err = read(&t.host, "json/never/written", None).await.unwrap_err();
    let first_call = first.elapsed();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    let outcome = conformance::run(&t.host, "json", &admin())
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(outcome.skipped.is_empty(), "nothing may be skipped: {outcome}");
    println!("json-file (Python) conformance: {outcome}");
    println!("host start {start_time:?} (compiled component cached), first call {first_call:?}");
}

#[tokio::test]
async fn a_misspelt_config_key_or_a_bad_value_stops_the_mount() {
    let data = tempfile::tempdir().unwrap();
    let value = marker("value-never-shown");
    let misspelt = json_mount_with(data.path(), &format!(r#"max_version = "{value}""#), JSON_LIMITS);
    conformance::check_bad_config(
        &misspelt,
        "json",
        "unknown config key `max_version` (did you mean `max_versions`?): the config keys this plugin accepts \
         are max_versions; fix the mount's config",
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    let message = startup_error(&misspelt).await;
    assert!(!message.contains(&value), "a config value is shown: {message}");

    let far = json_mount_with(data.path(), r#"colour = "blue""#, JSON_LIMITS);
    conformance::check_bad_config(&far, "json", "unknown config key `colour`: the config keys")
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));

    let bad_value = json_mount_with(data.path(), r#"max_versions = "many""#, JSON_LIMITS);
    conformance::check_bad_config(&bad_value, "json", "config key `max_versions` must be a whole number")
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let message = startup_error(&bad_value).await;
    assert!(!message.contains("many"), "a config value is shown: {message}");

    // Nothing was written to the data directory by the refused mounts.
    assert!(files_under(data.path()).is_empty(), "{:?}", files_under(data.path()));
    // The control: the same mount with a correct key starts.
    let good = json_mount_with(data.path(), r#"max_versions = "3""#, JSON_LIMITS);
    let t = start(TEST_POLICIES, &good).await;
    write(&t.host, "json/ok", b"x").await.unwrap();
}

#[tokio::test]
async fn a_missing_directory_grant_is_a_clear_startup_error() {
    let no_grant = format!(
        r#"
[[mount]]
path = "json"
plugin_path = '{wasm}'
sha256 = "{sha}"
grants = {{ clock = true }}
limits = {{ {JSON_LIMITS} }}
"#,
        wasm = JSON_FILE_WASM,
        sha = pin(JSON_FILE_WASM),
    );
    conformance::check_bad_config(&no_grant, "json", "grant the mount a directory")
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let message = startup_error(&no_grant).await;
    assert!(message.contains("/data"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_persist_across_a_restart_and_no_plaintext_is_at_rest() {
    let data = tempfile::tempdir().unwrap();
    let mounts = json_mount(data.path());
    let t = start(TEST_POLICIES, &mounts).await;
    let secret = marker("plaintext");
    let label = marker("metadata-label");
    let values: Vec<(&str, Vec<u8>)> = vec![
        ("json/app/db", secret.clone().into_bytes()),
        (
            "json/app/binary",
            [&b"\x00\xff"[..], secret.as_bytes(), b"\x00"].concat(),
        ),
        ("json/app/large", secret.repeat(500).into_bytes()),
        ("json/unicode/pässwörd", format!("{secret} ✓ 秘密").into_bytes()),
    ];
    let tagged = WriteOptions {
        metadata: [("label".to_string(), label.clone())].into_iter().collect(),
        expected_version: None,
        inherit_metadata: false,
    };
    t.host
        .write(&admin(), "json/app/db", &SecretBytes::from("first version"), &tagged)
        .await
        .expect("write with metadata");
    for (path, value) in &values {
        write(&t.host, path, value).await.unwrap();
    }
    // A soft-deleted version stays in its document, sealed.
    t.host
        .delete_versions(&admin(), "json/app/db", &["1".to_string()], false)
        .await
        .unwrap();
    let long = format!("json/long/{}", "x".repeat(300));
    write(&t.host, &long, secret.as_bytes()).await.unwrap();

    let TestHost { host, dir } = t;
    drop(host);
    let restarted = Host::start(Config::from_toml(&config_text(dir.path(), &mounts)).unwrap())
        .await
        .expect("the host restarts on the same state and data");
    for (path, value) in &values {
        assert_eq!(&read(&restarted, path, None).await.unwrap(), value, "{path}");
    }
    assert_eq!(read(&restarted, &long, None).await.unwrap(), secret.as_bytes());
    let db = restarted.read(&admin(), "json/app/db", Some("2")).await.unwrap();
    assert_eq!(db.version, "2");
    let versions = restarted.versions(&admin(), "json/app/db").await.unwrap();
    assert!(
        versions.len() == 2 && versions[0].deleted && versions[0].metadata.get("label") == Some(&label),
        "{versions:?}"
    );
    match restarted.read(&admin(), "json/app/db", Some("1")).await {
        Err(Error::NotFound(m)) => assert!(m.contains("deleted"), "{m}"),
        other => panic!("a soft-deleted version is still deleted after a restart: {other:?}"),
    }
    let mut listed = restarted.list(&admin(), "json/app/").await.unwrap();
    listed.sort();
    assert_eq!(listed, ["app/binary", "app/db", "app/large"]);
    // Versions go on from where they were.
    assert_eq!(write(&restarted, "json/app/db", b"third").await.unwrap(), "3");

    // Every file of the data directory, byte for byte: the documents are
    // there (paths and metadata are not secret), the values are not.
    let files = files_under(data.path());
    assert!(!files.is_empty(), "the provider wrote nothing to its directory");
    let mut everything = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.starts_with("tmp-"),
            "a temporary file was left behind: {}",
            file.display()
        );
        everything.extend(std::fs::read(file).unwrap());
    }
    assert!(
        contains(&everything, label.as_bytes()),
        "the metadata is missing from the documents"
    );
    assert!(
        everything.len() > secret.len() * 500,
        "the large value is not in the documents, even sealed"
    );
    for needle in [
        secret.as_bytes().to_vec(),
        base64(secret.as_bytes()).into_bytes(),
        hex::encode(secret.as_bytes()).into_bytes(),
        b"first version".to_vec(),
        base64(b"first version").into_bytes(),
    ] {
        assert!(
            !contains(&everything, &needle),
            "a plaintext value is in the data directory: {}",
            String::from_utf8_lossy(&needle)
        );
    }
}

/// `f`'s output, and every log line and span the host wrote in this test
/// process up to its end (a global capture: other threads and tests too).
async fn capture_log<F: std::future::Future>(f: F) -> (F::Output, String) {
    let logs = tresor_e2e::logs::capture();
    let out = f.await;
    (out, logs.text())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_value_reaches_the_log_or_an_error() {
    let data = tempfile::tempdir().unwrap();
    let secret = marker("logged-value");
    let (errors, log) = capture_log(async {
        let t = start(TEST_POLICIES, &json_mount(data.path())).await;
        write(&t.host, "json/app/db", secret.as_bytes()).await.unwrap();
        assert_eq!(read(&t.host, "json/app/db", None).await.unwrap(), secret.as_bytes());
        let mut errors = Vec::new();
        // Refused writes and reads carry messages: none may hold the value.
        errors.push(
            write_cas(&t.host, "json/app/db", secret.as_bytes(), "7")
                .await
                .unwrap_err(),
        );
        errors.push(
            write_cas(&t.host, "json/app/db", secret.as_bytes(), "")
                .await
                .unwrap_err(),
        );
        errors.push(t.host.read(&admin(), "json/app/db", Some("9")).await.unwrap_err());
        // A document altered on disk: its value no longer unseals.
        for file in files_under(data.path()) {
            let text = std::fs::read_to_string(&file).unwrap();
            if text.contains("\"sealed\"") {
                let altered = text.replacen("\"sealed\":\"", "\"sealed\":\"AAAA", 1);
                std::fs::write(&file, altered).unwrap();
            }
        }
        errors.push(t.host.read(&admin(), "json/app/db", None).await.unwrap_err());
        errors
    })
    .await;
    assert!(matches!(errors[0], Error::Conflict(_)), "{:?}", errors[0]);
    assert!(matches!(errors[1], Error::Conflict(_)), "{:?}", errors[1]);
    assert!(matches!(errors[2], Error::NotFound(_)), "{:?}", errors[2]);
    match &errors[3] {
        Error::Internal(m) => assert!(m.contains("cannot be decrypted"), "{m}"),
        other => panic!("an altered document should not unseal: {other:?}"),
    }
    for e in &errors {
        assert!(!e.to_string().contains(&secret), "an error shows the value: {e}");
    }
    // The plugin's own line is in the log, so the capture works.
    assert!(
        log.lines().any(|l| l.contains("json-file provider ready in /data")),
        "the plugin's configure line is missing:\n{log}"
    );
    assert!(!log.contains(&secret), "the value reached the log:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_settings_follow_vaults_rules() {
    let data = tempfile::tempdir().unwrap();
    let t = start(TEST_POLICIES, &json_mount(data.path())).await;
    let settings = |max_versions, cas_required, delete_version_after_ms| SecretSettings {
        max_versions,
        cas_required,
        delete_version_after_ms,
    };
    let ids = |v: Vec<tresor::VersionInfo>| v.into_iter().map(|v| v.version).collect::<Vec<_>>();

    // Neither the secret nor the mount sets max_versions: 10 are kept.
    for i in 1..=12 {
        write(&t.host, "json/ten", format!("v{i}").as_bytes()).await.unwrap();
    }
    let kept = ids(t.host.versions(&admin(), "json/ten").await.unwrap());
    assert_eq!(kept, (3..=12).map(|i| i.to_string()).collect::<Vec<_>>());
    assert!(matches!(
        read(&t.host, "json/ten", Some("2")).await,
        Err(Error::NotFound(_))
    ));

    // Settings of a secret that has no version yet; unknown secrets have none.
    assert!(matches!(
        t.host.secret_settings(&admin(), "json/s").await,
        Err(Error::NotFound(_))
    ));
    t.host
        .set_secret_settings(&admin(), "json/s", &settings(2, true, 0))
        .await
        .unwrap();
    assert_eq!(
        t.host.secret_settings(&admin(), "json/s").await.unwrap(),
        settings(2, true, 0)
    );
    // Check-and-set is required: a write without a version is refused.
    match write(&t.host, "json/s", b"no cas").await {
        Err(Error::InvalidInput(m)) => assert!(m.contains("cas_required"), "{m}"),
        other => panic!("a write without check-and-set should be refused, got {other:?}"),
    }
    let mut last = String::new();
    for i in 1..=4 {
        last = write_cas(&t.host, "json/s", format!("s{i}").as_bytes(), &last)
            .await
            .unwrap();
    }
    assert_eq!(last, "4");
    assert_eq!(ids(t.host.versions(&admin(), "json/s").await.unwrap()), ["3", "4"]);

    // The mount keeps 3: the larger wins, at the next write.
    t.host
        .set_mount_settings(&admin(), "json", &settings(3, false, 0))
        .await
        .unwrap();
    assert_eq!(
        t.host.mount_settings(&admin(), "json").await.unwrap(),
        settings(3, false, 0)
    );
    for i in 5..=7 {
        write_cas(&t.host, "json/s", b"x", &(i - 1).to_string()).await.unwrap();
    }
    assert_eq!(ids(t.host.versions(&admin(), "json/s").await.unwrap()), ["5", "6", "7"]);
    // With the mount down to 1, setting the secret's max_versions to 1
    // removes the versions no longer kept at once, without a write.
    t.host
        .set_mount_settings(&admin(), "json", &settings(1, false, 0))
        .await
        .unwrap();
    t.host
        .set_secret_settings(&admin(), "json/s", &settings(1, false, 0))
        .await
        .unwrap();
    assert_eq!(ids(t.host.versions(&admin(), "json/s").await.unwrap()), ["7"]);
    assert_eq!(read(&t.host, "json/s", None).await.unwrap(), b"x");

    // delete_version_after: a version is deleted once its time has come.
    t.host
        .set_secret_settings(&admin(), "json/short", &settings(0, false, 400))
        .await
        .unwrap();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    write(&t.host, "json/short", b"short-lived").await.unwrap();
    let s = t.host.read(&admin(), "json/short", None).await.unwrap();
    assert!(
        s.deletion_ms >= before + 400 && s.deletion_ms < before + 60_000,
        "deletion_ms {} for a write at {before}",
        s.deletion_ms
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(matches!(
        read(&t.host, "json/short", None).await,
        Err(Error::NotFound(_))
    ));
    let v = t.host.versions(&admin(), "json/short").await.unwrap();
    assert!(v[0].deleted && !v[0].destroyed, "{v:?}");
}

// A host serializes the writers of one secret itself, so the writers here
// come from two hosts (each with its own state and key) sharing one data
// directory: only the provider's revision links keep them apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_from_two_hosts_lose_nothing() {
    let data = tempfile::tempdir().unwrap();
    let mount = json_mount_with(
        data.path(),
        r#"max_versions = "100""#,
        "memory_mib = 64, call_timeout_ms = 5000, max_instances = 4",
    );
    let hosts = [
        Arc::new(start(TEST_POLICIES, &mount).await),
        Arc::new(start(TEST_POLICIES, &mount).await),
    ];
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let t = hosts[w % 2].clone();
            tokio::spawn(async move {
                let mut versions = Vec::new();
                for i in 0..8 {
                    let version = write(&t.host, "json/shared", format!("w{w}-{i}").as_bytes())
                        .await
                        .unwrap_or_else(|e| panic!("writer {w}, write {i}: {e:?}"));
                    versions.push(version);
                }
                versions
            })
        })
        .collect();
    let mut all = Vec::new();
    for w in writers {
        all.extend(w.await.unwrap());
    }
    all.sort_by_key(|v| v.parse::<u32>().unwrap());
    assert_eq!(
        all,
        (1..=32).map(|i| i.to_string()).collect::<Vec<_>>(),
        "every write got a version of its own"
    );
    for t in &hosts {
        let versions = t.host.versions(&admin(), "json/shared").await.unwrap();
        assert_eq!(versions.len(), 32, "every acknowledged write is a version");
    }

    // Check-and-set across the two hosts: exactly one creator wins.
    let creators: Vec<_> = (0..4)
        .map(|w| {
            let t = hosts[w % 2].clone();
            tokio::spawn(async move { write_cas(&t.host, "json/created-once", format!("c{w}").as_bytes(), "").await })
        })
        .collect();
    let mut won = 0;
    for c in creators {
        match c.await.unwrap() {
            Ok(v) => {
                assert_eq!(v, "1");
                won += 1;
            }
            Err(Error::Conflict(_)) => {}
            Err(e) => panic!("a losing check-and-set should be Conflict, got {e:?}"),
        }
    }
    assert_eq!(won, 1, "exactly one check-and-set creation wins");
    // Each host seals with its own key: a value written by the other does
    // not unseal, and says why (without the value).
    let mut readable = Vec::new();
    for t in &hosts {
        readable.push(read(&t.host, "json/created-once", None).await.is_ok());
    }
    assert_eq!(readable.iter().filter(|r| **r).count(), 1, "{readable:?}");
}

#[tokio::test]
async fn an_instance_needs_memory_the_cap_states() {
    // The smallest memory cap (MiB) a Python instance starts under: the
    // component's linear memory (the interpreter's snapshot) must fit.
    let data = tempfile::tempdir().unwrap();
    let mut smallest = None;
    for mib in [8, 10, 12, 14, 16, 20, 24, 32, 48, 64] {
        let mount = json_mount_with(data.path(), "", &format!("memory_mib = {mib}, call_timeout_ms = 5000"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("policies")).unwrap();
        write_atomically(&dir.path().join("policies/test.cedar"), TEST_POLICIES);
        match Host::start(Config::from_toml(&config_text(dir.path(), &mount)).unwrap()).await {
            Ok(host) => {
                write(&host, "json/fits", b"x").await.unwrap();
                smallest = Some(mib);
                break;
            }
            Err(e) => {
                let message = e.to_string();
                assert!(message.contains("json"), "{message}");
            }
        }
    }
    let smallest = smallest.expect("an instance starts under the default cap of 64 MiB");
    println!("a json-file (Python) instance starts with memory_mib = {smallest}");
    assert!(
        smallest > 8,
        "a Python interpreter cannot fit in 8 MiB: the cap is not enforced"
    );
}

// Compiling the interpreter takes a minute or more of CPU on a 2-core
// machine; every other test shares the build's compile cache instead.
#[tokio::test]
#[ignore = "compiles the 18 MB component from scratch: run with --ignored to measure it"]
async fn compiling_the_component_and_a_first_call() {
    // A compile cache of its own, so the component is compiled here.
    let cache = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    write_atomically(&dir.path().join("policies/test.cedar"), TEST_POLICIES);
    let text = config_text(dir.path(), &json_mount(data.path())).replace(
        &format!("compile_cache = '{COMPILE_CACHE}'"),
        &format!("compile_cache = '{}'", cache.path().display()),
    );
    assert!(text.contains(&cache.path().display().to_string()));
    let started = Instant::now();
    let host = Host::start(Config::from_toml(&text).unwrap()).await.unwrap();
    let compile = started.elapsed();
    assert!(
        !files_under(cache.path()).is_empty(),
        "the compiled component was not cached"
    );
    let first = Instant::now();
    write(&host, "json/first", b"first").await.unwrap();
    let first_write = first.elapsed();
    let again = Instant::now();
    assert_eq!(read(&host, "json/first", None).await.unwrap(), b"first");
    let next_read = again.elapsed();
    println!(
        "json-file (Python, {} bytes): host start with compile {compile:?}, first write {first_write:?}, \
         next read {next_read:?}",
        std::fs::metadata(JSON_FILE_WASM).unwrap().len()
    );
}

// ----- the sandbox, for a Python interpreter --------------------------------

fn hostile_mount(dir: &Path, limits: &str) -> String {
    std::fs::create_dir_all(dir.join("granted")).unwrap();
    std::fs::write(dir.join("granted/inside.txt"), b"inside-the-grant").unwrap();
    format!(
        r#"
[[mount]]
path = "hostile"
plugin_path = '{wasm}'
sha256 = "{sha}"
grants = {{ directory = '{granted}', read_only = true, env = ["TRESOR_SANDBOX_GRANTED"] }}
limits = {{ {limits} }}
"#,
        wasm = HOSTILE_PY_WASM,
        sha = pin(HOSTILE_PY_WASM),
        granted = dir.join("granted").display(),
    )
}

/// The limits of the Python probe: those tests/e2e/sandbox.rs gives the Rust
/// one (a Python instance starts well within 32 MiB).
const HOSTILE_LIMITS: &str = "call_timeout_ms = 300, memory_mib = 32, max_instances = 4";

async fn start_hostile() -> (TestHost, tempfile::TempDir) {
    // SAFETY: set before the host snapshots the allow-listed environment.
    unsafe {
        std::env::set_var("TRESOR_SANDBOX_GRANTED", "granted-value");
        std::env::set_var("TRESOR_SANDBOX_SECRET", "must-not-leak");
    }
    let extra = tempfile::tempdir().unwrap();
    let t = start(TEST_POLICIES, &hostile_mount(extra.path(), HOSTILE_LIMITS)).await;
    (t, extra)
}

async fn probe(t: &TestHost, path: &str) -> Result<Vec<u8>, Error> {
    read(&t.host, &format!("hostile/{path}"), None).await
}

async fn assert_still_serving(t: &TestHost) {
    assert_eq!(probe(t, "ok").await.expect("the host keeps serving"), b"fine");
}

fn failure(e: &Error) -> Option<PluginFailure> {
    match e {
        Error::Plugin { failure, .. } => Some(*failure),
        _ => None,
    }
}

#[tokio::test]
async fn python_files_outside_the_grant_are_unreachable() {
    let (t, dir) = start_hostile().await;
    assert_eq!(probe(&t, "file:/data/inside.txt").await.unwrap(), b"inside-the-grant");
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("granted/escape-link")).unwrap();
    let err = probe(&t, "file:/etc/passwd").await.unwrap_err();
    assert!(matches!(err, Error::Internal(_)), "{err:?}");
    assert_still_serving(&t).await;
    for outside in [
        "/etc/passwd",
        "/data/../../../../etc/passwd",
        "/data/../granted/inside.txt",
        "/proc/self/environ",
        "../etc/hostname",
        "/data/escape-link",
    ] {
        let err = probe(&t, &format!("file-hex:{}", hex::encode(outside)))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Internal(_)), "{outside}: {err:?}");
        assert_still_serving(&t).await;
    }
}

#[tokio::test]
async fn python_sees_only_allow_listed_environment_variables() {
    let (t, _dir) = start_hostile().await;
    assert_eq!(probe(&t, "env:TRESOR_SANDBOX_GRANTED").await.unwrap(), b"granted-value");
    for name in ["TRESOR_SANDBOX_SECRET", "PATH", "HOME"] {
        let err = probe(&t, &format!("env:{name}")).await.unwrap_err();
        assert!(matches!(err, Error::NotFound(_)), "{name}: {err:?}");
    }
    assert_still_serving(&t).await;
}

#[tokio::test]
async fn python_cannot_connect_without_a_grant() {
    let (t, _dir) = start_hostile().await;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let err = probe(&t, &format!("net:{addr}")).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert!(listener.accept().is_err(), "the plugin reached the listener");
    assert_still_serving(&t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_infinite_loop_hits_the_deadline_while_others_are_served() {
    let (t, _dir) = start_hostile().await;
    let t = Arc::new(t);
    let looping = {
        let t = t.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            (probe(&t, "loop").await, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..5 {
        assert_still_serving(&t).await;
    }
    let (result, elapsed) = looping.await.unwrap();
    let err = result.unwrap_err();
    assert_eq!(failure(&err), Some(PluginFailure::Timeout), "{err:?}");
    assert!(
        elapsed < Duration::from_secs(3),
        "interrupted after {elapsed:?}, deadline is 300 ms"
    );
    assert_still_serving(&t).await;
}

#[tokio::test]
async fn unbounded_python_allocation_hits_the_memory_cap() {
    let (t, _dir) = start_hostile().await;
    let err = probe(&t, "alloc").await.unwrap_err();
    assert_eq!(failure(&err), Some(PluginFailure::MemoryLimit), "{err:?}");
    assert_still_serving(&t).await;
}

#[tokio::test]
async fn a_python_trap_fails_only_its_request() {
    let (t, _dir) = start_hostile().await;
    for _ in 0..2 {
        let err = probe(&t, "trap").await.unwrap_err();
        assert_eq!(failure(&err), Some(PluginFailure::Trap), "{err:?}");
        assert_still_serving(&t).await;
    }
    // Anything else is not-found, and the other operations unsupported.
    assert!(matches!(probe(&t, "nothing").await, Err(Error::NotFound(_))));
    let err = write(&t.host, "hostile/ok", b"x").await.unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)), "{err:?}");
}
