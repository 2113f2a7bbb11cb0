//! A deliberately hostile plugin (tests/plugins/hostile) against the sandbox:
//! each attack fails its own request, and the host keeps serving.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use tresor::{Config, Error, Host, PluginFailure};
use tresor_e2e::*;

fn hostile_mount(dir: &std::path::Path, sha256: &str, max_instances: usize) -> String {
    hostile_mount_with(dir, sha256, max_instances, "call_timeout_ms = 300, memory_mib = 32")
}

fn hostile_mount_with(dir: &std::path::Path, sha256: &str, max_instances: usize, limits: &str) -> String {
    std::fs::create_dir_all(dir.join("granted")).unwrap();
    std::fs::write(dir.join("granted/inside.txt"), b"inside-the-grant").unwrap();
    format!(
        r#"
[[mount]]
path = "hostile"
plugin_path = "{wasm}"
sha256 = "{sha256}"
grants = {{ directory = '{granted}', read_only = true, env = ["TRESOR_SANDBOX_GRANTED"] }}
limits = {{ {limits}, max_instances = {max_instances} }}
"#,
        wasm = HOSTILE_WASM,
        granted = dir.join("granted").display(),
    )
}

fn wasm_sha256() -> String {
    tresor::runtime::compile::sha256_hex(&std::fs::read(HOSTILE_WASM).expect("hostile plugin built"))
}

async fn start_hostile() -> (TestHost, tempfile::TempDir) {
    // SAFETY: set before the host snapshots the allow-listed environment.
    unsafe {
        std::env::set_var("TRESOR_SANDBOX_GRANTED", "granted-value");
        std::env::set_var("TRESOR_SANDBOX_SECRET", "must-not-leak");
    }
    let extra = tempfile::tempdir().unwrap();
    let t = start(TEST_POLICIES, &hostile_mount(extra.path(), &wasm_sha256(), 4)).await;
    (t, extra)
}

async fn read(t: &TestHost, path: &str) -> Result<Vec<u8>, Error> {
    t.host
        .read(&caller("root", &["admins"]), &format!("hostile/{path}"), None)
        .await
        .map(|s| s.value.expose().to_vec())
}

async fn assert_still_serving(t: &TestHost) {
    assert_eq!(read(t, "ok").await.expect("the host keeps serving"), b"fine");
}

fn failure(e: &Error) -> Option<PluginFailure> {
    match e {
        Error::Plugin { failure, .. } => Some(*failure),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_hits_the_deadline_while_others_are_served() {
    let (t, _dir) = start_hostile().await;
    let t = std::sync::Arc::new(t);
    let looping = {
        let t = t.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            (read(&t, "loop").await, started.elapsed())
        })
    };
    // While the loop burns its instance, other requests are served.
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
async fn unbounded_allocation_hits_the_memory_cap() {
    let (t, _dir) = start_hostile().await;
    let err = read(&t, "alloc").await.unwrap_err();
    assert_eq!(failure(&err), Some(PluginFailure::MemoryLimit), "{err:?}");
    assert_still_serving(&t).await;
}

#[tokio::test]
async fn traps_and_panics_fail_only_their_request() {
    let (t, _dir) = start_hostile().await;
    for path in ["trap", "panic"] {
        let err = read(&t, path).await.unwrap_err();
        assert_eq!(failure(&err), Some(PluginFailure::Trap), "{path}: {err:?}");
        assert_still_serving(&t).await;
    }
}

#[tokio::test]
async fn malformed_answers_are_rejected() {
    let (t, _dir) = start_hostile().await;
    let err = read(&t, "malformed").await.unwrap_err();
    assert_eq!(failure(&err), Some(PluginFailure::Malformed), "{err:?}");
    assert_still_serving(&t).await;
    let err = t
        .host
        .list(&caller("root", &["admins"]), "hostile/o")
        .await
        .unwrap_err();
    assert_eq!(failure(&err), Some(PluginFailure::Malformed), "{err:?}");
    assert_still_serving(&t).await;
}

#[tokio::test]
async fn files_outside_the_preopened_directory_are_unreachable() {
    let (t, _dir) = start_hostile().await;
    // Inside the grant: readable.
    assert_eq!(read(&t, "file:/data/inside.txt").await.unwrap(), b"inside-the-grant");
    // A symlink inside the grant that points outside it.
    std::os::unix::fs::symlink("/etc/passwd", _dir.path().join("granted/escape-link")).unwrap();
    // Outside: every attempt fails inside the plugin. (`..` is smuggled in hex:
    // the host itself refuses `..` in secret paths before any plugin runs.)
    for outside in [
        "/etc/passwd",
        "/data/../../../../etc/passwd",
        "/data/../granted/inside.txt",
        "/proc/self/environ",
        "../etc/hostname",
        "/data/escape-link",
    ] {
        let err = read(&t, &format!("file-hex:{}", hex::encode(outside)))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Internal(_)), "{outside}: {err:?}");
        assert_still_serving(&t).await;
    }
}

#[tokio::test]
async fn only_allow_listed_environment_variables_are_visible() {
    let (t, _dir) = start_hostile().await;
    assert_eq!(read(&t, "env:TRESOR_SANDBOX_GRANTED").await.unwrap(), b"granted-value");
    for name in ["TRESOR_SANDBOX_SECRET", "PATH", "HOME"] {
        let err = read(&t, &format!("env:{name}")).await.unwrap_err();
        assert!(matches!(err, Error::NotFound(_)), "{name}: {err:?}");
    }
    assert_still_serving(&t).await;
}

#[tokio::test]
async fn outbound_connections_are_refused_without_a_grant() {
    let (t, _dir) = start_hostile().await;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let err = read(&t, &format!("net:{addr}")).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert!(listener.accept().is_err(), "the plugin reached the listener");
    assert_still_serving(&t).await;
}

#[tokio::test]
async fn clock_is_frozen_without_a_grant() {
    let (t, _dir) = start_hostile().await;
    assert_eq!(read(&t, "clock").await.unwrap(), b"0");
}

#[tokio::test]
async fn plugin_file_must_match_its_pinned_sha256() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("policies/p.cedar"), TEST_POLICIES).unwrap();
    let wrong = "0".repeat(64);
    let text = config_text(dir.path(), &hostile_mount(dir.path(), &wrong, 4));
    let err = match Host::start(Config::from_toml(&text).unwrap()).await {
        Ok(_) => panic!("a plugin with the wrong hash was loaded"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("sha256") && err.contains(&wasm_sha256()), "{err}");
}

#[tokio::test]
async fn a_value_the_plugin_returned_is_wiped_from_its_memory() {
    // One instance, so both calls run in the same linear memory.
    let extra = tempfile::tempdir().unwrap();
    let t = start(TEST_POLICIES, &hostile_mount(extra.path(), &wasm_sha256(), 1)).await;
    let scan = |needle: &[u8]| format!("scan-hex:{}", hex::encode(needle));

    // The scanner sees what is in memory: a message in the plugin's data.
    let found = read(&t, &scan(b"the hostile plugin has no behaviour")).await.unwrap();
    assert!(found.starts_with(b"found"), "{}", String::from_utf8_lossy(&found));

    let value = marker("wiped-after-return");
    let echoed = read(&t, &format!("echo-hex:{}", hex::encode(&value))).await.unwrap();
    assert_eq!(echoed, value.as_bytes());
    // The plugin decoded the value, returned it, and its bindings freed it
    // once the host copied it out: the SDK's allocator wiped every copy.
    let after = read(&t, &scan(value.as_bytes())).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&after), "clean");
}

/// A host whose hostile mount may run for 3 s and use 256 MiB: long enough
/// for a flood to be seen stalling others, big enough for oversized answers.
async fn start_flooding() -> (std::sync::Arc<TestHost>, tempfile::TempDir) {
    let extra = tempfile::tempdir().unwrap();
    let mount = hostile_mount_with(
        extra.path(),
        &wasm_sha256(),
        4,
        "call_timeout_ms = 3000, memory_mib = 256",
    );
    (std::sync::Arc::new(start(TEST_POLICIES, &mount).await), extra)
}

/// Every log line written while `f` runs on this thread, without colour.
async fn capture_log<F: std::future::Future>(f: F) -> (F::Output, String) {
    #[derive(Clone, Default)]
    struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let out = {
        let _guard = tracing::subscriber::set_default(subscriber);
        f.await
    };
    let text = String::from_utf8_lossy(&buffer.0.lock().unwrap()).into_owned();
    (out, text)
}

// One worker thread: a plugin that held it without yielding would stall
// every other request until its deadline.
#[tokio::test(flavor = "current_thread")]
async fn a_plugin_flooding_the_seal_import_does_not_stall_another_mount() {
    let (t, _dir) = start_flooding().await;
    let flood = {
        let t = t.clone();
        tokio::spawn(async move { read(&t, "seal-flood").await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let admin = caller("root", &["admins"]);
    for i in 0..5 {
        let value = tresor::SecretBytes::new(format!("value-{i}").into_bytes());
        t.host
            .write(
                &admin,
                "secret/beside-the-flood",
                &value,
                &tresor::WriteOptions::default(),
            )
            .await
            .expect("the file mount serves writes during the flood");
        assert!(
            !flood.is_finished(),
            "write {i} on the file mount only got through after the flooding call ended"
        );
    }
    let err = flood.await.unwrap().unwrap_err();
    assert_eq!(failure(&err), Some(PluginFailure::Timeout), "{err:?}");
    assert_still_serving(&t).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_plugin_log_flood_is_capped_and_counted() {
    let (t, _dir) = start_flooding().await;
    let (value, log) = capture_log(read(&t, "log-flood")).await;
    assert_eq!(value.expect("the flooding call still answers"), b"logged");
    let kept = log.lines().filter(|l| l.contains("plugin said")).count();
    assert_eq!(kept, 100, "lines kept of 200,000 (limit 100 per call)");
    assert!(
        log.lines()
            .any(|l| l.contains("plugin log lines dropped") && l.contains("dropped=199900")),
        "the drop is said once, with its count:\n{}",
        log.lines()
            .filter(|l| !l.contains("plugin said"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // 100 lines cut to 2 KiB, against 929 MB before.
    assert!(log.len() < 300_000, "{} bytes of log for one call", log.len());
    assert_still_serving(&t).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_plugin_log_line_cannot_forge_a_host_line() {
    let (t, _dir) = start_flooding().await;
    let (value, log) = capture_log(read(&t, "log-forge")).await;
    assert_eq!(value.unwrap(), b"logged");
    assert!(
        !log.lines().any(|l| l.starts_with("2026-12-03T10:00:00")),
        "a plugin's newline started a line of its own:\n{log}"
    );
    assert!(!log.contains('\u{1b}'), "a terminal escape reached the log:\n{log}");
    let line = log
        .lines()
        .find(|l| l.contains("plugin said"))
        .expect("the plugin's line is logged");
    assert!(
        line.contains(r#"plugin said "innocent\n2026-12-03T10:00:00.000000Z  INFO tresor::access: forged host line \u{1b}[31mred""#)
            && line.contains("tresor::plugin")
            && line.contains(r#"mount="hostile""#),
        "the plugin's line is quoted, escaped and attributed: {line}"
    );
}

#[tokio::test]
async fn oversized_metadata_and_lists_are_refused_naming_the_limit() {
    let (t, _dir) = start_flooding().await;
    let err = read(&t, "metadata-flood").await.unwrap_err();
    assert_eq!(failure(&err), Some(PluginFailure::Oversized), "{err:?}");
    let shown = err.to_string();
    assert!(
        shown.contains("300000 metadata pairs") && shown.contains("at most 1024 pairs"),
        "{shown}"
    );

    let err = t
        .host
        .list(&caller("root", &["admins"]), "hostile/flood/")
        .await
        .unwrap_err();
    assert_eq!(failure(&err), Some(PluginFailure::Oversized), "{err:?}");
    let shown = err.to_string();
    assert!(
        shown.contains("1000001 entries") && shown.contains("at most 1000000 entries"),
        "{shown}"
    );
    assert_still_serving(&t).await;
}
