//! Live configuration changes: mounts added, changed and removed while the
//! host serves; changes that cannot work refused with the previous mounts
//! serving; plugin swaps and config changes under load with no failed
//! request; SIGHUP on a real `tresor server`; the plugin catalog.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tresor::{Config, Error, SecretBytes, WriteOptions};
use tresor_e2e::server::{request, start_server_with, tresor_bin};
use tresor_e2e::*;

fn admin() -> tresor::Caller {
    caller("root", &["admins"])
}

/// The embedded file plugin's component.
fn file_plugin() -> &'static [u8] {
    tresor::plugins::embedded("file").expect("the file plugin is embedded")
}

/// `wasm` with one more custom section naming `label`: a different build
/// of the same plugin (other bytes, other sha256, same behaviour).
fn rebuilt(wasm: &[u8], label: &str) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"tresor-test-build";
    let mut body = Vec::new();
    leb(name.len(), &mut body);
    body.extend_from_slice(name);
    body.extend_from_slice(label.as_bytes());
    let mut out = wasm.to_vec();
    out.push(0);
    leb(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

fn sha256(bytes: &[u8]) -> String {
    tresor::runtime::compile::sha256_hex(bytes)
}

/// A `[[mount]]` of the file plugin from a file, pinned to `sha`.
fn file_mount(name: &str, wasm: &Path, sha: &str, extra: &str) -> String {
    format!(
        r#"
[[mount]]
path = "{name}"
plugin_path = '{}'
sha256 = "{sha}"
grants = {{ directory = "data/{name}", clock = true }}
{extra}
"#,
        wasm.display()
    )
}

fn embedded_mount(name: &str, extra: &str) -> String {
    format!(
        r#"
[[mount]]
path = "{name}"
plugin = "file"
grants = {{ directory = "data/{name}", clock = true }}
{extra}
"#
    )
}

fn config_of(t: &TestHost, mounts: &str) -> Config {
    Config::from_toml(&config_text(t.dir.path(), mounts)).expect("the new configuration parses")
}

async fn put(t: &TestHost, path: &str, value: &str) {
    t.host
        .write(&admin(), path, &SecretBytes::from(value), &WriteOptions::default())
        .await
        .unwrap_or_else(|e| panic!("writing {path}: {e}"));
}

async fn get(t: &TestHost, path: &str) -> Result<Vec<u8>, Error> {
    t.host
        .read(&admin(), path, None)
        .await
        .map(|s| s.value.expose().to_vec())
}

fn mount_names(t: &TestHost) -> Vec<String> {
    t.host.mounts().into_iter().map(|(name, _, _)| name).collect()
}

#[tokio::test]
async fn mounts_added_changed_and_removed_take_effect_without_a_restart() {
    let t = start(TEST_POLICIES, &embedded_mount("team", "")).await;
    put(&t, "team/db", "team-secret").await;

    // Add `ops`, change `team` (a cache now), keep `secret`.
    let cache = "cache = { ttl_ms = 1000, max_entries = 10 }";
    let config = config_of(
        &t,
        &format!("{}{}", embedded_mount("team", cache), embedded_mount("ops", "")),
    );
    let report = t.host.reload(&admin(), config, &[]).await.expect("reload applies");
    assert_eq!(report.added, ["ops"]);
    assert_eq!(report.changed, ["team"]);
    assert_eq!(report.unchanged, ["secret"]);
    assert!(
        report.removed.is_empty() && report.needs_restart.is_empty(),
        "{report:?}"
    );
    assert_eq!(mount_names(&t), ["ops", "secret", "team"]);
    // The changed mount reads what the old one wrote (same directory, same key).
    assert_eq!(get(&t, "team/db").await.unwrap(), b"team-secret");
    put(&t, "ops/new", "ops-secret").await;
    assert_eq!(get(&t, "ops/new").await.unwrap(), b"ops-secret");

    // The same configuration again changes nothing.
    let config = config_of(
        &t,
        &format!("{}{}", embedded_mount("team", cache), embedded_mount("ops", "")),
    );
    let report = t.host.reload(&admin(), config, &[]).await.unwrap();
    assert!(report.added.is_empty() && report.changed.is_empty() && report.removed.is_empty());
    assert_eq!(report.unchanged, ["secret", "team", "ops"]);

    // Restarting a mount by name starts it anew although unchanged.
    let config = config_of(
        &t,
        &format!("{}{}", embedded_mount("team", cache), embedded_mount("ops", "")),
    );
    let report = t.host.reload(&admin(), config, &["ops".to_string()]).await.unwrap();
    assert_eq!(report.changed, ["ops"]);

    // Remove `ops`.
    let report = t
        .host
        .reload(&admin(), config_of(&t, &embedded_mount("team", cache)), &[])
        .await
        .unwrap();
    assert_eq!(report.removed, ["ops"]);
    assert_eq!(mount_names(&t), ["secret", "team"]);
    match get(&t, "ops/new").await {
        Err(Error::UnknownMount { mounts, .. }) => assert_eq!(mounts, ["secret", "team"]),
        other => panic!("a removed mount must be unknown, got {other:?}"),
    }
    assert_eq!(get(&t, "team/db").await.unwrap(), b"team-secret");
}

#[tokio::test]
async fn a_change_that_cannot_work_is_refused_and_the_previous_mounts_keep_serving() {
    let files = tempfile::tempdir().unwrap();
    let good = files.path().join("good.wasm");
    std::fs::write(&good, file_plugin()).unwrap();
    let good_sha = sha256(file_plugin());
    let t = start(TEST_POLICIES, &file_mount("team", &good, &good_sha, "")).await;
    put(&t, "team/db", "still-here").await;
    let before = mount_names(&t);

    let garbage = files.path().join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm but not really a component").unwrap();
    let garbage_sha = sha256(&std::fs::read(&garbage).unwrap());
    let wrong_pin = "0".repeat(64);
    let cases: Vec<(&str, String, Option<&str>, &str)> = vec![
        (
            "a file that does not match its pin",
            file_mount("team", &good, &wrong_pin, ""),
            Some("team"),
            "sha256",
        ),
        (
            "a file that does not compile",
            file_mount("team", &garbage, &garbage_sha, ""),
            Some("team"),
            "not a valid WebAssembly component",
        ),
        (
            "a plugin whose configure refuses the config",
            file_mount("team", &good, &good_sha, "config = { colour = \"blue\" }"),
            Some("team"),
            "colour",
        ),
        (
            "a new mount that fails while the others are fine",
            format!(
                "{}{}",
                file_mount("team", &good, &good_sha, ""),
                file_mount("ops", &garbage, &garbage_sha, "")
            ),
            Some("ops"),
            "not a valid WebAssembly component",
        ),
        (
            "a configuration that does not validate (a mount twice)",
            file_mount("team", &good, &good_sha, ""),
            None,
            "configured twice",
        ),
    ];
    for (what, mounts, mount, says) in cases {
        let mut config = config_of(&t, &mounts);
        if what.contains("twice") {
            config.mounts.push(config.mounts[1].clone());
        }
        match t.host.reload(&admin(), config, &[]).await {
            Err(Error::ReloadRefused { mount: m, reason }) => {
                assert_eq!(m.as_deref(), mount, "{what}: {reason}");
                assert!(
                    reason.contains(says),
                    "{what}: the reason should mention `{says}`: {reason}"
                );
            }
            other => panic!("{what}: the reload must be refused, got {other:?}"),
        }
        assert_eq!(mount_names(&t), before, "{what}: the mounts must not change");
        assert_eq!(get(&t, "team/db").await.unwrap(), b"still-here", "{what}");
    }
}

#[tokio::test]
async fn a_reload_needs_admin_and_every_reload_is_audited() {
    let t = start(TEST_POLICIES, "").await;
    let config = config_of(&t, &embedded_mount("ops", ""));
    match t.host.reload(&caller("app", &["apps"]), config.clone(), &[]).await {
        Err(Error::Denied { action, .. }) => assert_eq!(action, "admin"),
        other => panic!("a non-admin reload must be denied, got {other:?}"),
    }
    assert_eq!(mount_names(&t), ["secret"], "a denied reload changes nothing");
    t.host.reload(&admin(), config.clone(), &[]).await.unwrap();
    let mut invalid = config;
    invalid.mounts[0].path = "not/a/mount".into();
    let refused = t.host.reload(&admin(), invalid, &[]).await;
    assert!(matches!(refused, Err(Error::ReloadRefused { .. })), "{refused:?}");

    let log = std::fs::read_to_string(t.audit_log()).unwrap();
    let reloads: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| v.get("event").cloned().unwrap_or(v))
        .filter(|e| e["path"] == "plugins/reload" && e["action"] == "admin")
        .collect();
    let outcomes: Vec<(String, String, String)> = reloads
        .iter()
        .filter(|e| e["phase"] != "request")
        .map(|e| {
            (
                e["principal"].as_str().unwrap_or("").to_string(),
                e["decision"].as_str().unwrap_or("").to_string(),
                e["outcome"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("app".to_string(), "deny".to_string(), "denied".to_string()),
            ("root".to_string(), "allow".to_string(), "ok".to_string()),
            ("root".to_string(), "allow".to_string(), "reload-refused".to_string()),
        ],
        "audit entries of the reloads: {reloads:?}"
    );
}

#[tokio::test]
async fn the_catalog_names_each_plugin_its_language_sha256_and_mounts() {
    let files = tempfile::tempdir().unwrap();
    let wasm = files.path().join("team-file.wasm");
    std::fs::write(&wasm, file_plugin()).unwrap();
    let sha = sha256(file_plugin());
    let t = start(TEST_POLICIES, &file_mount("team", &wasm, &sha, "")).await;
    let catalog = t.host.catalog(&admin()).await.unwrap();
    let names: Vec<(&str, &str, Option<&str>)> = catalog
        .iter()
        .map(|e| (e.name.as_str(), e.kind, e.language.as_deref()))
        .collect();
    assert_eq!(
        names,
        [
            ("file", "provider", Some("Rust")),
            ("team-file", "provider", Some("Rust"))
        ]
    );
    for e in &catalog {
        assert_eq!(e.sha256, sha, "both run the same bytes");
        assert_eq!(e.mounts.len(), 1);
        assert!(
            e.mounts[0].instances.max >= 1 && e.mounts[0].instances.idle >= 1,
            "{e:?}"
        );
    }
    assert!(matches!(
        t.host.catalog(&caller("app", &["apps"])).await,
        Err(Error::Denied { .. })
    ));
}

/// One client of the load: write, read back and compare, until `stop`.
async fn client(
    addr: std::net::SocketAddr,
    token: String,
    id: usize,
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
) -> Vec<String> {
    let mut failures = Vec::new();
    let headers = [("X-Vault-Token", token)];
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let value = format!("c{id}-v{n}");
        let path = format!("/v1/kv/data/load/c{id}/k{}", n % 8);
        let body = serde_json::json!({ "data": { "v": value } }).to_string();
        match request(addr, None, "POST", &path, &headers, body.into_bytes()).await {
            Ok(r) if r.status == 200 => {}
            Ok(r) => failures.push(format!("write {path}: {} {}", r.status, r.errors())),
            Err(e) => failures.push(format!("write {path}: {e}")),
        }
        match request(addr, None, "GET", &path, &headers, Vec::new()).await {
            Ok(r) if r.status == 200 && r.json()["data"]["data"]["v"] == value.as_str() => {}
            Ok(r) => failures.push(format!("read {path}: {} {}", r.status, r.text)),
            Err(e) => failures.push(format!("read {path}: {e}")),
        }
        ok.fetch_add(2, Ordering::Relaxed);
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_clients_see_no_failed_request_through_plugin_swaps_and_config_changes() {
    let files = tempfile::tempdir().unwrap();
    let builds: Vec<(std::path::PathBuf, String)> = ["a", "b"]
        .iter()
        .map(|label| {
            let bytes = rebuilt(file_plugin(), label);
            let path = files.path().join(format!("file-{label}.wasm"));
            std::fs::write(&path, &bytes).unwrap();
            (path, sha256(&bytes))
        })
        .collect();
    let kv = |build: usize, instances: usize| {
        file_mount(
            "kv",
            &builds[build].0,
            &builds[build].1,
            &format!("limits = {{ max_instances = {instances} }}"),
        )
    };
    let s = start_server_with(TEST_POLICIES, &kv(0, 4), |_| String::new()).await;
    let server_section = "\n[server]\nlisten = \"127.0.0.1:0\"\n";
    let write_config = |mounts: &str| {
        write_atomically(
            &s.config_file(),
            &format!("{}{server_section}", config_text(s.dir.path(), mounts)),
        );
    };
    let reload = |body: &'static str| {
        let (addr, token) = (s.addr(), s.root_token.clone());
        async move {
            request(
                addr,
                None,
                "PUT",
                "/v1/sys/plugins/reload/backend",
                &[("X-Vault-Token", token)],
                body.as_bytes().to_vec(),
            )
            .await
            .expect("reload request sent")
        }
    };

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..16)
        .map(|id| tokio::spawn(client(s.addr(), s.root_token.clone(), id, stop.clone(), ok.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    for round in 1..=10 {
        // A plugin swap: the other build of the provider.
        let build = round % 2;
        write_config(&kv(build, 4));
        let r = reload("{}").await;
        assert_eq!(r.status, 200, "swap {round}: {}", r.text);
        assert_eq!(r.json()["data"]["changed"], serde_json::json!(["kv"]), "swap {round}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        // A config change of the same mount: its instance limit.
        write_config(&kv(build, 8));
        let r = reload("{}").await;
        assert_eq!(r.status, 200, "config change {round}: {}", r.text);
        assert_eq!(
            r.json()["data"]["changed"],
            serde_json::json!(["kv"]),
            "config change {round}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A swap to a bad plugin (its pin does not match) is refused.
    write_config(&file_mount("kv", &builds[0].0, &builds[1].1, ""));
    let r = reload("{}").await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.errors().contains("sha256"), "{}", r.errors());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let swaps_took = started.elapsed();

    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for c in clients {
        failures.extend(c.await.unwrap());
    }
    let requests = ok.load(Ordering::Relaxed);
    println!(
        "{requests} requests by 16 clients during 10 swaps, 10 config changes and a refused swap ({swaps_took:?})"
    );
    assert!(
        failures.is_empty(),
        "{} failed requests, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        requests > 200,
        "the load made too few requests to mean anything: {requests}"
    );

    // The catalog shows the last good build serving `kv`.
    let r = s
        .http("GET", "/v1/sys/plugins/catalog", Some(&s.root_token), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let detailed = r.json()["data"]["detailed"].clone();
    let kv_plugin = detailed
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["mounts"].as_array().unwrap().iter().any(|m| m["mount"] == "kv"))
        .cloned()
        .expect("kv is in the catalog");
    assert_eq!(kv_plugin["sha256"], builds[0].1.as_str(), "{kv_plugin}");
    assert_eq!(kv_plugin["language"], "Rust");
    assert_eq!(kv_plugin["kind"], "provider");
    assert_eq!(r.json()["data"]["provider"], serde_json::json!(["file", "file-a"]));
}

#[tokio::test]
async fn sighup_makes_a_running_server_read_its_configuration_again() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    write_atomically(&dir.path().join("policies/test.cedar"), TEST_POLICIES);
    let config_file = dir.path().join("tresor.toml");
    let server = "\n[server]\nlisten = \"127.0.0.1:0\"\ntokens = { bootstrap_root_token = true }\n";
    write_atomically(&config_file, &format!("{}{server}", config_text(dir.path(), "")));
    let mut child = tokio::process::Command::new(tresor_bin())
        .args(["server", "--config"])
        .arg(&config_file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("tresor server starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let (mut addr, mut token) = (None, None);
    while addr.is_none() || token.is_none() {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("the server prints its address and root token")
            .unwrap()
            .expect("the server keeps running");
        if let Some(url) = line.strip_prefix("Listening on http://") {
            addr = Some(url.parse::<std::net::SocketAddr>().unwrap());
        }
        if let Some(t) = line.strip_prefix("Root Token: ") {
            token = Some(t.to_string());
        }
    }
    let (addr, token) = (addr.unwrap(), token.unwrap());
    let mounts = || {
        let token = token.clone();
        async move {
            let r = request(
                addr,
                None,
                "GET",
                "/v1/sys/mounts",
                &[("X-Vault-Token", token)],
                Vec::new(),
            )
            .await
            .unwrap();
            let mut names: Vec<String> = r.json()["data"].as_object().unwrap().keys().cloned().collect();
            names.sort();
            names
        }
    };
    assert_eq!(mounts().await, ["secret/"]);

    write_atomically(
        &config_file,
        &format!("{}{server}", config_text(dir.path(), &embedded_mount("ops", ""))),
    );
    let pid = child.id().expect("the server runs") as i32;
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while mounts().await != ["ops/", "secret/"] {
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not add the mount: {:?}",
            mounts().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A broken configuration on SIGHUP changes nothing and the server stays up.
    write_atomically(&config_file, "this is = not [toml");
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mounts().await, ["ops/", "secret/"]);
    assert!(
        child.try_wait().unwrap().is_none(),
        "the server must survive a bad reload"
    );

    let log = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("builtin:sighup") && l.contains("plugins/reload") && l.contains("\"ok\"")),
        "the SIGHUP reload is audited"
    );
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
}
