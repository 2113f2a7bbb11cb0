//! Master key rotation: a new key generation while clients read and write,
//! every stored value moved to it and the old one retired, checked by
//! reading the sealed blobs' key generations off the disk; and a reseal
//! killed half-way that finishes after a restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use tresor_e2e::process::{server_config, Process};
use tresor_e2e::server::{start_server, stdout_ok};
use tresor_e2e::*;

/// A value no other test writes, so a byte search for it means something.
fn marker(run: &str, name: &str) -> String {
    format!("plaintext-{run}-{name}")
}

fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{nanos:x}")
}

/// Every sealed blob the file provider keeps under `dir`: (file, blob).
fn sealed_blobs(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                let Ok(record) = serde_json::from_slice::<serde_json::Value>(&std::fs::read(&path).unwrap()) else {
                    continue;
                };
                if let Some(sealed) = record["sealed"].as_str() {
                    let blob = base64::engine::general_purpose::STANDARD.decode(sealed).unwrap();
                    out.push((path, blob));
                }
            }
        }
    }
    out
}

/// The key generation a blob names in its header: `TSL1` is generation 0,
/// `TSL2` is followed by the generation (4 bytes, big-endian).
fn generation(blob: &[u8]) -> u32 {
    match &blob[..4] {
        b"TSL1" => 0,
        b"TSL2" => u32::from_be_bytes(blob[4..8].try_into().unwrap()),
        other => panic!("not a sealed blob: {other:?}"),
    }
}

/// Generations of `blobs`, with how many blobs each.
fn generations(blobs: &[(PathBuf, Vec<u8>)]) -> BTreeMap<u32, usize> {
    let mut counts = BTreeMap::new();
    for (_, blob) in blobs {
        *counts.entry(generation(blob)).or_default() += 1;
    }
    counts
}

/// Every byte of every file under `dir`.
fn contains_anywhere(dir: &Path, needle: &[u8]) -> Option<PathBuf> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    return Some(path);
                }
            }
        }
    }
    None
}

/// The `data` of `GET sys/key-status` once its reseal has finished.
async fn finished_status(
    get: impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = serde_json::Value> + Send>>,
    limit: Duration,
) -> serde_json::Value {
    let deadline = Instant::now() + limit;
    loop {
        let status = get().await;
        if !status["reseal"]["finished_ms"].is_null() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the reseal did not finish within {limit:?}: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_master_key_under_load_fails_nothing_and_leaves_nothing_under_the_old_key() {
    let mut server = start_server(TEST_POLICIES).await;
    let token = server.root_token.clone();
    let run = run_id();
    const SEEDS: usize = 150;
    for i in 0..SEEDS {
        let body = serde_json::json!({ "data": { "v": marker(&run, &format!("seed{i}")) } }).to_string();
        let r = server
            .http("POST", &format!("/v1/secret/data/seed/s{i}"), Some(&token), Some(&body))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let before = sealed_blobs(server.dir.path());
    assert_eq!(
        generations(&before),
        BTreeMap::from([(0, SEEDS)]),
        "a fresh store seals under generation 0"
    );
    let (old_file, old_bytes) = {
        let (path, _) = before.iter().find(|(p, _)| p.ends_with("1.json")).unwrap();
        (path.clone(), std::fs::read(path).unwrap())
    };

    // Two writers and two readers run until the reseal is over.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let latest = Arc::new(Mutex::new(BTreeMap::<String, String>::new()));
    let (reads, writes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let addr = server.addr();
    let mut load = Vec::new();
    for k in 0..2 {
        let (stop, failures, latest, writes, token, run) = (
            stop.clone(),
            failures.clone(),
            latest.clone(),
            writes.clone(),
            token.clone(),
            run.clone(),
        );
        load.push(tokio::spawn(async move {
            let mut j = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let path = format!("load/w{k}-{}", j % 16);
                let value = marker(&run, &format!("w{k}-{j}"));
                let body = serde_json::json!({ "data": { "v": value } }).to_string();
                let r = tresor_e2e::server::request(
                    addr,
                    None,
                    "POST",
                    &format!("/v1/secret/data/{path}"),
                    &[("X-Vault-Token", token.clone())],
                    body.into_bytes(),
                )
                .await
                .expect("request sent");
                if r.status == 200 {
                    latest.lock().unwrap().insert(path, value);
                    writes.fetch_add(1, Ordering::SeqCst);
                } else {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("write {path}: {} {}", r.status, r.text));
                }
                j += 1;
            }
        }));
    }
    for k in 0..2 {
        let (stop, failures, reads, token, run) = (
            stop.clone(),
            failures.clone(),
            reads.clone(),
            token.clone(),
            run.clone(),
        );
        load.push(tokio::spawn(async move {
            let mut i = k * 7;
            while !stop.load(Ordering::SeqCst) {
                let n = i % SEEDS;
                let r = tresor_e2e::server::request(
                    addr,
                    None,
                    "GET",
                    &format!("/v1/secret/data/seed/s{n}"),
                    &[("X-Vault-Token", token.clone())],
                    Vec::new(),
                )
                .await
                .expect("request sent");
                let want = marker(&run, &format!("seed{n}"));
                if r.status != 200 || r.json()["data"]["data"]["v"] != want.as_str() {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("read seed/s{n}: {} {}", r.status, r.text));
                }
                reads.fetch_add(1, Ordering::SeqCst);
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // `bao operator rotate` rotates it, as against Vault.
    let rotated = stdout_ok(
        &server.bao(&token, &["operator", "rotate"]).await,
        "bao operator rotate",
    );
    let rotated: serde_json::Value = serde_json::from_str(&rotated).expect("bao prints the key status");
    assert_eq!(rotated["term"], 1, "{rotated}");
    let (reads_at_rotation, writes_at_rotation) = (reads.load(Ordering::SeqCst), writes.load(Ordering::SeqCst));
    let status = {
        let (token, addr) = (token.clone(), addr);
        finished_status(
            move || {
                let token = token.clone();
                Box::pin(async move {
                    let r = tresor_e2e::server::request(
                        addr,
                        None,
                        "GET",
                        "/v1/sys/key-status",
                        &[("X-Vault-Token", token)],
                        Vec::new(),
                    )
                    .await
                    .expect("request sent");
                    assert_eq!(r.status, 200, "{}", r.text);
                    r.json()["data"].clone()
                })
            },
            Duration::from_secs(60),
        )
        .await
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for task in load {
        task.await.unwrap();
    }
    let (reads, writes) = (reads.load(Ordering::SeqCst), writes.load(Ordering::SeqCst));
    eprintln!(
        "during the rotation and reseal: {} reads, {} writes; in all {reads} reads, {writes} writes",
        reads - reads_at_rotation,
        writes - writes_at_rotation
    );
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} requests failed, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    assert!(
        reads > reads_at_rotation + 10 && writes > writes_at_rotation + 10,
        "the load ran during the reseal"
    );

    // The status says generation 0 is retired, and the disk agrees.
    assert_eq!(status["term"], 1, "{status}");
    assert_eq!(status["reseal"]["retired"], serde_json::json!([0]), "{status}");
    assert!(!status["generations"][0]["retired"].is_null(), "{status}");
    let key_status = stdout_ok(
        &server.bao(&token, &["operator", "key-status"]).await,
        "bao operator key-status",
    );
    let key_status: serde_json::Value = serde_json::from_str(&key_status).expect("bao prints the key status");
    assert_eq!(key_status["term"], 1, "{key_status}");
    assert!(
        key_status["encryptions"].as_u64().unwrap() > 0,
        "writes sealed under it: {key_status}"
    );
    let after = sealed_blobs(server.dir.path());
    let counts = generations(&after);
    assert_eq!(
        counts.keys().collect::<Vec<_>>(),
        vec![&1],
        "blobs left under another generation: {counts:?}"
    );
    assert!(counts[&1] >= SEEDS + 16, "{counts:?}");

    // No value is anywhere at rest in plaintext: data, state store, audit log.
    for name in ["seed0", "seed77", "w0-0", "w1-3"] {
        let needle = marker(&run, name);
        assert_eq!(
            contains_anywhere(server.dir.path(), needle.as_bytes()),
            None,
            "{needle} is at rest in plaintext"
        );
    }

    // A fresh host (no cache) reads every value; a blob from before the
    // rotation no longer opens: its key is gone.
    server.begin_stop().await.unwrap();
    let config_file = server.config_file();
    let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
    drop(server);
    std::fs::write(&old_file, &old_bytes).unwrap();
    let config = tresor::Config::from_file(&config_file).unwrap();
    // The stopped host's background tasks let go of the audit log shortly.
    let deadline = Instant::now() + Duration::from_secs(10);
    let host = loop {
        match tresor::Host::start(config.clone()).await {
            Ok(host) => break host,
            Err(e) if Instant::now() < deadline && e.to_string().contains("lock") => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("the host restarts: {e}"),
        }
    };
    let me = caller("ops", &["admins"]);
    let mut restored = None;
    for i in 0..SEEDS {
        let path = format!("secret/seed/s{i}");
        match host.read(&me, &path, None).await {
            Ok(s) => assert!(
                String::from_utf8_lossy(s.value.expose()).contains(&marker(&run, &format!("seed{i}"))),
                "{path}"
            ),
            Err(e) => {
                assert!(restored.is_none(), "a second seed is unreadable: {path}: {e}");
                restored = Some(e.to_string());
            }
        }
    }
    let restored = restored.expect("the blob restored from before the rotation is refused");
    assert!(
        restored.contains("generation 0") && restored.contains("retired"),
        "{restored}"
    );
    assert!(!restored.contains(&run), "{restored}");
    let latest = latest.lock().unwrap().clone();
    for (path, value) in &latest {
        let s = host.read(&me, &format!("secret/{path}"), None).await.expect("readable");
        assert!(
            String::from_utf8_lossy(s.value.expose()).contains(value.as_str()),
            "{path}"
        );
    }
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reseal_killed_half_way_finishes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = server_config(dir.path(), "");
    let server = Process::start(&config, None).await;
    let run = run_id();
    const SECRETS: usize = 1200;
    let writers: Vec<_> = (0..4)
        .map(|k| {
            let (addr, token, run) = (server.addr, server.token.clone(), run.clone());
            tokio::spawn(async move {
                for i in (k..SECRETS).step_by(4) {
                    let body = serde_json::json!({ "data": { "v": marker(&run, &format!("k{i}")) } }).to_string();
                    let r = tresor_e2e::server::request(
                        addr,
                        None,
                        "POST",
                        &format!("/v1/secret/data/many/k{i:05}"),
                        &[("X-Vault-Token", token.clone())],
                        body.into_bytes(),
                    )
                    .await
                    .expect("request sent");
                    assert_eq!(r.status, 200, "{}", r.text);
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }

    let r = server.http("POST", "/v1/sys/rotate", None).await;
    assert_eq!(r.status, 204, "{}", r.text);
    // SIGKILL once the pass has recorded progress but not finished.
    let deadline = Instant::now() + Duration::from_secs(60);
    let done_before_kill = loop {
        let status = server.http("GET", "/v1/sys/key-status", None).await.json()["data"].clone();
        let mounts: Vec<serde_json::Value> = status["reseal"]["hosts"]
            .as_object()
            .into_iter()
            .flat_map(|h| h.values())
            .map(|h| h["mounts"]["secret"].clone())
            .collect();
        if let Some(m) = mounts.iter().find(|m| m["secrets"].as_u64().unwrap_or(0) > 0) {
            assert_eq!(
                m["done"], false,
                "the pass finished before it could be killed: {status}"
            );
            break m["resealed"].as_u64().unwrap();
        }
        assert!(Instant::now() < deadline, "the reseal never started: {status}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let token = server.token.clone();
    let output = server.kill().await;
    let blobs = generations(&sealed_blobs(dir.path()));
    assert!(
        blobs.get(&0).is_some_and(|&n| n > 0) && blobs.get(&1).is_some_and(|&n| n as u64 >= done_before_kill),
        "killed half-way, both generations are on disk: {blobs:?}"
    );

    let server = Process::start(&config, Some(token)).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        let status = server.http("GET", "/v1/sys/key-status", None).await.json()["data"].clone();
        if !status["reseal"]["finished_ms"].is_null() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the reseal did not finish after the restart: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(status["reseal"]["retired"], serde_json::json!([0]), "{status}");
    // The restarted host moved only what was left.
    let moved_after_restart: u64 = status["reseal"]["hosts"]
        .as_object()
        .unwrap()
        .values()
        .filter(|h| !h["finished_ms"].is_null())
        .map(|h| h["mounts"]["secret"]["resealed"].as_u64().unwrap_or(0))
        .sum();
    assert!(
        moved_after_restart < SECRETS as u64 && moved_after_restart + done_before_kill <= SECRETS as u64,
        "the restarted host moved {moved_after_restart}, after {done_before_kill} moved before the kill: {status}"
    );
    assert_eq!(generations(&sealed_blobs(dir.path())), BTreeMap::from([(1, SECRETS)]));
    for i in [0, 1, SECRETS / 2, SECRETS - 1] {
        let r = server.http("GET", &format!("/v1/secret/data/many/k{i:05}"), None).await;
        assert_eq!(
            r.json()["data"]["data"]["v"],
            marker(&run, &format!("k{i}")).as_str(),
            "{}",
            r.text
        );
    }
    let output = output + &server.kill().await;
    assert!(!output.contains(&run), "a value reached the server's output");
}
