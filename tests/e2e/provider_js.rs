//! The contract is language-neutral: plugins written in JavaScript with
//! ComponentizeJS (see plugins/yaml-file and tests/plugins/hostile-js) run
//! in the same host as the Rust ones.
//!
//! - The YAML-file provider passes the provider conformance suite with
//!   nothing skipped, refuses a misspelt config key and a missing directory
//!   grant at start, keeps its values across a restart, and never writes a
//!   plaintext value to its directory.
//! - The JavaScript hostile probe meets the sandbox exactly as the Rust one
//!   does in sandbox.rs: files outside the grant, environment variables not
//!   granted and TCP connections are out of reach; an endless loop, an
//!   unbounded allocation and a trap fail only their own request, and the
//!   host keeps serving.

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use tresor::{Config, Error, Host, PluginFailure, SecretBytes, WriteOptions};
use tresor_e2e::*;

fn admin() -> tresor::Caller {
    caller("root", &["admins"])
}

fn sha256(wasm: &str) -> String {
    tresor::runtime::compile::sha256_hex(
        &std::fs::read(wasm).unwrap_or_else(|e| panic!("the JavaScript plugin {wasm} is not built: {e}")),
    )
}

/// A `yaml` mount of the YAML-file provider with `config` entries and
/// `grants`. Its limits leave room for the first call of a fresh
/// JavaScript instance on a loaded machine.
fn yaml_mount(config: &str, grants: &str) -> String {
    format!(
        r#"
[[mount]]
path = "yaml"
plugin_path = "{wasm}"
sha256 = "{sha}"
config = {{ {config} }}
grants = {{ {grants} }}
limits = {{ call_timeout_ms = 10000, memory_mib = 64, max_instances = 4 }}
"#,
        wasm = YAML_FILE_WASM,
        sha = sha256(YAML_FILE_WASM),
    )
}

/// The usual mount: a directory under the state directory and the clock.
fn granted_yaml_mount() -> String {
    yaml_mount("", r#"directory = "data/yaml", clock = true"#)
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

async fn read(host: &Host, path: &str) -> Result<Vec<u8>, Error> {
    host.read(&admin(), path, None).await.map(|s| s.value.expose().to_vec())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The error of a host started with `mount`, which must not start.
async fn startup_error(mount: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    write_atomically(&dir.path().join("policies/test.cedar"), TEST_POLICIES);
    let config = Config::from_toml(&config_text(dir.path(), mount)).expect("the config parses");
    match Host::start(config).await {
        Ok(_) => panic!("the host started with a misconfigured mount"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_yaml_file_provider_passes_the_conformance_suite() {
    let started = Instant::now();
    let t = start(TEST_POLICIES, &granted_yaml_mount()).await;
    println!("host with the JavaScript mount started in {:?}", started.elapsed());
    let first = Instant::now();
    must_be_missing(read(&t.host, "yaml/never/written").await);
    println!("first call answered in {:?}", first.elapsed());
    let outcome = conformance::run(&t.host, "yaml", &admin())
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(
        outcome.skipped.is_empty(),
        "the yaml-file provider claims every capability: {outcome}"
    );
    println!("yaml-file conformance: {outcome}");
}

fn must_be_missing<T: std::fmt::Debug>(result: Result<T, Error>) {
    assert!(matches!(result, Err(Error::NotFound(_))), "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misspelt_config_key_stops_the_mount_at_start() {
    let grants = r#"directory = "data/yaml""#;
    conformance::check_bad_config(
        &yaml_mount(r#"max_verions = "3""#, grants),
        "yaml",
        "unknown config key `max_verions` (did you mean `max_versions`?)",
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    // A malformed value names the key, never the value.
    let secretish = "not-a-number-4f1c";
    let message = startup_error(&yaml_mount(&format!(r#"max_versions = "{secretish}""#), grants)).await;
    assert!(message.contains("`max_versions`"), "{message}");
    assert!(
        !message.contains(secretish),
        "the value leaked into the error: {message}"
    );
    // The control: a well-formed config starts.
    let t = start(TEST_POLICIES, &yaml_mount(r#"max_versions = "3""#, grants)).await;
    write(&t.host, "yaml/ok", b"v").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_directory_grant_is_a_clear_startup_error() {
    conformance::check_bad_config(&yaml_mount("", ""), "yaml", "grant the mount a directory")
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let message = startup_error(&yaml_mount("", "clock = true")).await;
    assert!(message.contains("/data"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_persist_across_a_restart_and_no_plaintext_is_at_rest() {
    let t = start(TEST_POLICIES, &granted_yaml_mount()).await;
    let secret = marker("yaml-plaintext");
    let label = marker("yaml-label");
    let values: Vec<(String, Vec<u8>)> = vec![
        ("yaml/app/db".into(), secret.clone().into_bytes()),
        (
            "yaml/app/binary".into(),
            [&b"\x00\xff"[..], secret.as_bytes(), b"\n"].concat(),
        ),
        ("yaml/app/large".into(), secret.repeat(400).into_bytes()),
        (
            format!("yaml/{}/long", "p".repeat(300)),
            format!("{secret} long").into_bytes(),
        ),
    ];
    let tagged = WriteOptions {
        metadata: [("label".to_string(), label.clone())].into_iter().collect(),
        expected_version: None,
        inherit_metadata: false,
    };
    t.host
        .write(&admin(), "yaml/app/db", &SecretBytes::from("first version"), &tagged)
        .await
        .expect("write with metadata");
    for (path, value) in &values {
        write(&t.host, path, value).await.unwrap();
    }
    // A soft-deleted version stays in the document, sealed.
    t.host
        .delete_versions(&admin(), "yaml/app/db", &["1".to_string()], false)
        .await
        .unwrap();

    let data = t.state_dir().join("data/yaml");
    let files = files_under(&data);
    let docs: Vec<_> = files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "yaml"))
        .collect();
    assert!(docs.len() >= 4, "expected a YAML document per secret, found {files:?}");
    let mut everything = Vec::new();
    for file in &files {
        everything.extend(std::fs::read(file).unwrap());
    }
    // The documents are the right ones: paths, metadata and sealed values.
    assert!(contains(&everything, b"path: app/db"), "no document names app/db");
    assert!(contains(&everything, label.as_bytes()), "the metadata is missing");
    assert!(contains(&everything, b"sealed: "), "no sealed value in the documents");
    assert!(!files.iter().any(|f| f.to_string_lossy().contains("tmp-")), "{files:?}");
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    for needle in [
        secret.as_bytes().to_vec(),
        hex(secret.as_bytes()).into_bytes(),
        b"first version".to_vec(),
    ] {
        assert!(
            !contains(&everything, &needle),
            "a plaintext value is in the data directory"
        );
    }

    // Restart on the same state directory (same master key, same data).
    let dir = t.dir;
    drop(t.host);
    let config = Config::from_toml(&config_text(dir.path(), &granted_yaml_mount())).unwrap();
    let host = Host::start(config).await.expect("the host starts again");
    for (path, value) in &values {
        assert_eq!(&read(&host, path).await.unwrap(), value, "{path} after the restart");
    }
    let db = host.read(&admin(), "yaml/app/db", None).await.unwrap();
    assert_eq!(db.version, "2");
    let versions = host.versions(&admin(), "yaml/app/db").await.unwrap();
    assert!(versions.iter().any(|v| v.version == "1" && v.deleted), "{versions:?}");
    let old = host.read(&admin(), "yaml/app/db", Some("1")).await;
    must_be_missing(old);
    host.undelete_versions(&admin(), "yaml/app/db", &["1".to_string()])
        .await
        .unwrap();
    let old = host.read(&admin(), "yaml/app/db", Some("1")).await.unwrap();
    assert_eq!(old.value.expose(), b"first version");
    assert_eq!(old.metadata.get("label"), Some(&label));
    let mut listed = host.list(&admin(), "yaml/app/").await.unwrap();
    listed.sort();
    assert_eq!(listed, ["app/binary", "app/db", "app/large"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_lose_no_version() {
    let t = std::sync::Arc::new(start(TEST_POLICIES, &granted_yaml_mount()).await);
    let mut tasks = Vec::new();
    for i in 0..4 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let mut versions = Vec::new();
            for j in 0..5 {
                let value = format!("writer {i} value {j}");
                versions.push(write(&t.host, "yaml/shared/counter", value.as_bytes()).await.unwrap());
            }
            versions
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort_by_key(|v| v.parse::<u64>().unwrap());
    let expected: Vec<String> = (1..=20).map(|n| n.to_string()).collect();
    assert_eq!(all, expected, "every write got its own version");
    let listed = t.host.versions(&admin(), "yaml/shared/counter").await.unwrap();
    // max_versions defaults to 10, as Vault.
    let ids: Vec<&str> = listed.iter().map(|v| v.version.as_str()).collect();
    assert_eq!(ids, (11..=20).map(|n| n.to_string()).collect::<Vec<_>>());
}

// ------------------------------------------------------------------ sandbox

fn hostile_mount(dir: &Path, limits: &str, extra_grants: &str) -> String {
    std::fs::create_dir_all(dir.join("granted")).unwrap();
    std::fs::write(dir.join("granted/inside.txt"), b"inside-the-grant").unwrap();
    format!(
        r#"
[[mount]]
path = "hostile"
plugin_path = "{wasm}"
sha256 = "{sha}"
grants = {{ directory = '{granted}', read_only = true, env = ["TRESOR_SANDBOX_GRANTED"]{extra_grants} }}
limits = {{ {limits}, max_instances = 4 }}
"#,
        wasm = HOSTILE_JS_WASM,
        sha = sha256(HOSTILE_JS_WASM),
        granted = dir.join("granted").display(),
    )
}

async fn start_hostile() -> (TestHost, tempfile::TempDir) {
    // SAFETY: set before the host snapshots the allow-listed environment.
    unsafe {
        std::env::set_var("TRESOR_SANDBOX_GRANTED", "granted-value");
        std::env::set_var("TRESOR_SANDBOX_SECRET", "must-not-leak");
    }
    let extra = tempfile::tempdir().unwrap();
    let mount = hostile_mount(extra.path(), "call_timeout_ms = 300, memory_mib = 32", "");
    let t = start(TEST_POLICIES, &mount).await;
    (t, extra)
}

async fn probe(t: &TestHost, path: &str) -> Result<Vec<u8>, Error> {
    read(&t.host, &format!("hostile/{path}")).await
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_probe_files_outside_the_grant_are_unreachable() {
    let (t, dir) = start_hostile().await;
    assert_eq!(probe(&t, "file:/data/inside.txt").await.unwrap(), b"inside-the-grant");
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("granted/escape-link")).unwrap();
    let err = probe(&t, "file:/etc/passwd").await.unwrap_err();
    assert!(matches!(err, Error::Internal(_)), "{err:?}");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_probe_sees_only_allow_listed_environment_variables() {
    let (t, _dir) = start_hostile().await;
    assert_eq!(probe(&t, "env:TRESOR_SANDBOX_GRANTED").await.unwrap(), b"granted-value");
    for name in ["TRESOR_SANDBOX_SECRET", "PATH", "HOME"] {
        let err = probe(&t, &format!("env:{name}")).await.unwrap_err();
        assert!(matches!(err, Error::NotFound(_)), "{name}: {err:?}");
    }
    assert_still_serving(&t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_probe_cannot_connect_without_a_grant() {
    let (t, _dir) = start_hostile().await;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let err = probe(&t, &format!("net:{addr}")).await.unwrap_err();
    assert!(
        matches!(&err, Error::Unavailable(m) if m.contains("access-denied")),
        "{err:?}"
    );
    assert!(listener.accept().is_err(), "the plugin reached the listener");
    assert_still_serving(&t).await;

    // The control: with the address granted, the same probe connects.
    let extra = tempfile::tempdir().unwrap();
    let grant = format!(r#", sockets = ["{addr}"]"#);
    let mount = hostile_mount(extra.path(), "call_timeout_ms = 5000, memory_mib = 48", &grant);
    let granted = start(TEST_POLICIES, &mount).await;
    assert_eq!(probe(&granted, &format!("net:{addr}")).await.unwrap(), b"connected");
    listener.set_nonblocking(false).unwrap();
    let (mut stream, _) = listener.accept().expect("the granted connection arrived");
    let mut hello = [0u8; 5];
    std::io::Read::read_exact(&mut stream, &mut hello).unwrap();
    assert_eq!(&hello, b"hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_probe_infinite_loop_hits_the_deadline_while_others_are_served() {
    let (t, _dir) = start_hostile().await;
    let t = std::sync::Arc::new(t);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_probe_unbounded_allocation_hits_the_memory_cap() {
    let (t, _dir) = start_hostile().await;
    let err = probe(&t, "alloc").await.unwrap_err();
    assert_eq!(failure(&err), Some(PluginFailure::MemoryLimit), "{err:?}");
    assert_still_serving(&t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_probe_trap_fails_only_its_request() {
    let (t, _dir) = start_hostile().await;
    for _ in 0..2 {
        let err = probe(&t, "trap").await.unwrap_err();
        assert_eq!(failure(&err), Some(PluginFailure::Trap), "{err:?}");
        assert_still_serving(&t).await;
    }
    let err = probe(&t, "no-such-behaviour").await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
}
