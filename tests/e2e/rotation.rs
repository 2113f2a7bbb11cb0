//! Rotation of stored secrets: schedules that keep time across a SIGKILL,
//! staging with `current`/`previous`/`pending`, a check webhook that can
//! refuse, and events that never carry a value.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Response;
use hyper_util::rt::TokioIo;
use tresor_e2e::process::{server_config, Process};
use tresor_e2e::server::{request, start_server_with, tresor_bin, Reply};
use tresor_e2e::*;

const HOOK_KEY: &str = "rotation-check-key-0123456789abcdef";

/// What the rotation tests ask of a server process.
trait Versions {
    async fn version_times(&self, path: &str) -> Vec<u64>;
    async fn versions_within(&self, path: &str, count: usize, limit: Duration) -> Vec<u64>;
    async fn value(&self, path: &str, version: Option<&str>) -> Reply;
}

impl Versions for Process {
    /// Creation times (ms) of the secret's versions, oldest first.
    async fn version_times(&self, path: &str) -> Vec<u64> {
        let r = self.http("GET", &format!("/v1/secret/metadata/{path}"), None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let versions = r.json()["data"]["versions"].as_object().cloned().unwrap_or_default();
        let mut numbered: Vec<(u64, u64)> = versions
            .iter()
            .map(|(n, v)| {
                let at = humantime::parse_rfc3339(v["created_time"].as_str().unwrap()).unwrap();
                let ms = at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as u64;
                (n.parse().unwrap(), ms)
            })
            .collect();
        numbered.sort();
        numbered.into_iter().map(|(_, ms)| ms).collect()
    }

    /// The versions' creation times once there are at least `count` (the
    /// test fails after `limit`).
    async fn versions_within(&self, path: &str, count: usize, limit: Duration) -> Vec<u64> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let times = self.version_times(path).await;
            if times.len() >= count {
                return times;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{count} versions of {path} within {limit:?}, got {times:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The value of one version (`None`: the latest), as JSON.
    async fn value(&self, path: &str, version: Option<&str>) -> Reply {
        let query = version.map(|v| format!("?version={v}")).unwrap_or_default();
        self.http("GET", &format!("/v1/secret/data/{path}{query}"), None).await
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_second_schedule_rotates_on_time_across_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let rule = r#"
[[rotation]]
path = "secret/rot/db"
period = "2s"
field = "password"
value = { kind = "password", length = 40 }
"#;
    let config = server_config(dir.path(), rule);
    let server = Process::start(&config, None).await;
    let written = server
        .http(
            "POST",
            "/v1/secret/data/rot/db",
            Some(serde_json::json!({"data": {"username": "app", "password": "initial-password"}})),
        )
        .await;
    assert_eq!(written.status, 200, "{}", written.text);
    let first = now_ms();

    // While the host runs: a rotation every 2 s (±1 s) after the write.
    let times = server.versions_within("rot/db", 4, Duration::from_secs(15)).await;
    for (i, pair) in times.windows(2).take(3).enumerate() {
        let gap = pair[1] as i64 - pair[0] as i64;
        assert!(
            (1000..=3000).contains(&gap),
            "rotation {} came {gap} ms after the one before: {times:?}",
            i + 1
        );
    }
    assert!(times[0] <= first + 1000);
    let mut values = Vec::new();
    for v in 1..=times.len() {
        let r = server.value("rot/db", Some(&v.to_string())).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let data = &r.json()["data"]["data"];
        assert_eq!(data["username"], "app", "the other fields are kept: {data}");
        values.push(data["password"].as_str().unwrap().to_string());
    }
    assert_eq!(values[0], "initial-password");
    for v in &values[1..] {
        assert_eq!(v.len(), 40);
        assert!(v.chars().all(|c| c.is_ascii_alphanumeric()), "{v}");
    }

    // SIGKILL, down for 3 s (at least one due time passes), restart: the
    // missed rotation runs at start, once, and the schedule goes on.
    let before_kill = server.version_times("rot/db").await;
    let token = server.token.clone();
    let mut output = server.kill().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let restarted_at = now_ms();
    let server = Process::start(&config, Some(token)).await;
    let after = server
        .versions_within("rot/db", before_kill.len() + 3, Duration::from_secs(15))
        .await;
    let resumed = &after[before_kill.len()..];
    assert!(
        resumed[0] <= restarted_at + 2500,
        "the rotation missed while the host was down runs at start: restart at {restarted_at}, {resumed:?}"
    );
    // Never twice for one due time: no two versions closer than 1 s.
    for pair in after.windows(2) {
        assert!(
            pair[1] - pair[0] >= 1000,
            "two rotations {} ms apart: {after:?}",
            pair[1] - pair[0]
        );
    }

    // Previous is the version the last rotation replaced.
    let status = server.http("GET", "/v1/sys/rotation/secret/rot/db", None).await;
    assert_eq!(status.status, 200, "{}", status.text);
    let record = status.json()["data"].clone();
    let current: u64 = record["current_version"].as_str().unwrap().parse().unwrap();
    let previous = server.value("rot/db", Some("previous")).await;
    let older = server.value("rot/db", Some(&(current - 1).to_string())).await;
    assert_eq!(
        previous.json()["data"]["data"],
        older.json()["data"]["data"],
        "{record}"
    );
    assert_eq!(record["period_seconds"], 2);
    assert!(record["last_error"].is_null(), "{record}");

    // No value in the server's output or the audit log.
    let mut all_values = values.clone();
    for v in (values.len() + 1)..=after.len() {
        let r = server.value("rot/db", Some(&v.to_string())).await;
        all_values.push(r.json()["data"]["data"]["password"].as_str().unwrap().to_string());
    }
    output.push_str(&server.kill().await);
    let audit = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
    let rotations = audit
        .lines()
        .filter(|l| l.contains("\"action\":\"rotate\"") && l.contains("\"outcome\":\"ok\""))
        .count();
    assert_eq!(rotations, after.len() - 1, "one audited rotation per new version");
    // The same from `tresor audit stats`.
    let out = std::process::Command::new(tresor_bin())
        .args(["audit", "stats", "--json"])
        .arg(dir.path().join("audit.log"))
        .arg("secret/rot/")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats.as_array().unwrap().len(), 1, "{stats}");
    let db = &stats[0];
    assert_eq!(db["path"], "secret/rot/db");
    assert_eq!(
        db["writes"],
        after.len() as u64,
        "the first write and every rotation: {db}"
    );
    assert_eq!(db["last_rotation"][1], "tresor:rotation-scheduler", "{db}");
    assert!(db["reads"].as_u64().unwrap() >= after.len() as u64, "{db}");
    for v in &all_values[1..] {
        assert!(
            !output.contains(v.as_str()),
            "a rotated value is in the server's output"
        );
        assert!(!audit.contains(v.as_str()), "a rotated value is in the audit log");
    }
}

/// A check webhook: accepts (and reads the pending value the check is
/// about) or refuses, as the test says.
#[derive(Clone, Default)]
struct Checker {
    accept: Arc<AtomicBool>,
    /// Never answer (the host is to be killed mid-check).
    hold: Arc<AtomicBool>,
    /// (server address, token) to read `pending` with, once known.
    server: Arc<Mutex<Option<(SocketAddr, String)>>>,
    /// The pending values it read, and the raw bodies it got.
    pending_seen: Arc<Mutex<Vec<String>>>,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl Checker {
    async fn start(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let me = me.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let me = me.clone();
                        async move {
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            Ok::<_, Infallible>(me.check(String::from_utf8_lossy(&body).into_owned()).await)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        addr
    }

    async fn check(&self, body: String) -> Response<Full<Bytes>> {
        self.bodies.lock().unwrap().push(body.clone());
        let event: serde_json::Value = serde_json::from_str(&body).unwrap();
        let path = event["data"]["event"]["metadata"]["path"].as_str().unwrap().to_string();
        let server = self.server.lock().unwrap().clone();
        if let Some((addr, token)) = server {
            let rel = path.strip_prefix("secret/").unwrap();
            let r = request(
                addr,
                None,
                "GET",
                &format!("/v1/secret/data/{rel}?version=pending"),
                &[("X-Vault-Token", token)],
                Vec::new(),
            )
            .await
            .unwrap();
            if r.status == 200 {
                let value = r.json()["data"]["data"].to_string();
                self.pending_seen.lock().unwrap().push(value);
            }
        }
        if self.hold.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_secs(120)).await;
        }
        let code = if self.accept.load(Ordering::SeqCst) { 204 } else { 409 };
        Response::builder().status(code).body(Full::new(Bytes::new())).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_rotation_keeps_previous_and_a_refused_check_changes_nothing() {
    let checker = Checker::default();
    let hook = checker.start().await;
    let key_dir = tempfile::tempdir().unwrap();
    let key_file = key_dir.path().join("hook.key");
    std::fs::write(&key_file, HOOK_KEY).unwrap();
    let extra = format!(
        r#"
[[webhook]]
name = "checker"
url = "http://{hook}/check"
prefix = "secret/none/"
secret_file = '{key}'
timeout_ms = 5000

[[rotation]]
path = "secret/rot/api"
check_webhook = "checker"
value = {{ kind = "base64url", bytes = 24 }}
field = "key"

[[rotation]]
prefix = "secret/rot/plain/"
value = {{ kind = "hex", bytes = 16 }}
"#,
        key = key_file.display()
    );
    let server = start_server_with(TEST_POLICIES, &extra, |_| String::new()).await;
    *checker.server.lock().unwrap() = Some((server.addr(), server.root_token.clone()));
    let root = server.root_token.clone();
    let admin = caller("ops", &["admins"]);
    let mut events = server.host.subscribe(&admin, "secret/rot/");

    let write = server
        .http(
            "POST",
            "/v1/secret/data/rot/api",
            Some(&root),
            Some(r#"{"data": {"key": "first-key-value", "owner": "billing"}}"#),
        )
        .await;
    assert_eq!(write.status, 200, "{}", write.text);

    // Accepted: the checker read the pending value, which is now current;
    // the first value is `previous`; nothing is pending.
    checker.accept.store(true, Ordering::SeqCst);
    let out = std::process::Command::new(tresor_bin())
        .args(["rotate", "secret/rot/api"])
        .env("TRESOR_ADDR", server.url())
        .env("TRESOR_TOKEN", &root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tresor rotate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("version 2 is current") && said.contains("replaced 1"),
        "{said}"
    );
    let read = |version: &'static str| {
        let server = &server;
        let root = root.clone();
        async move {
            let path = match version {
                "" => "/v1/secret/data/rot/api".to_string(),
                v => format!("/v1/secret/data/rot/api?version={v}"),
            };
            server.http("GET", &path, Some(&root), None).await
        }
    };
    let current = read("").await.json()["data"]["data"].clone();
    assert_ne!(current["key"], "first-key-value");
    assert_eq!(current["owner"], "billing");
    assert_eq!(read("current").await.json()["data"]["data"], current);
    assert_eq!(read("previous").await.json()["data"]["data"]["key"], "first-key-value");
    let none = read("pending").await;
    assert_eq!(none.status, 404, "{}", none.text);
    assert_eq!(
        checker.pending_seen.lock().unwrap().clone(),
        vec![current.to_string()],
        "during the check, `pending` was the value that then became current"
    );

    // Refused: the current value stays, previous too, the failure is told.
    checker.accept.store(false, Ordering::SeqCst);
    let refused = server
        .http("POST", "/v1/sys/rotate/secret/rot/api", Some(&root), Some("{}"))
        .await;
    assert_eq!(refused.status, 502, "{}", refused.text);
    assert!(
        refused.errors().contains("did not accept") && refused.errors().contains("unchanged"),
        "{}",
        refused.text
    );
    assert_eq!(
        read("").await.json()["data"]["data"],
        current,
        "a refused check changed the value"
    );
    assert_eq!(read("previous").await.json()["data"]["data"]["key"], "first-key-value");
    assert_eq!(read("pending").await.status, 404, "a refused value stays pending");
    let status = server
        .http("GET", "/v1/sys/rotation/secret/rot/api", Some(&root), None)
        .await
        .json();
    assert!(
        status["data"]["last_error"].as_str().unwrap().contains("HTTP 409"),
        "{status}"
    );
    assert_eq!(status["data"]["failures"], 1);
    let refused_value: serde_json::Value =
        serde_json::from_str(&checker.pending_seen.lock().unwrap().last().cloned().unwrap()).unwrap();
    let refused_key = refused_value["key"].as_str().unwrap().to_string();
    assert_ne!(refused_key, current["key"].as_str().unwrap());

    // The events: started, succeeded (with the write), started, failed.
    let mut seen = Vec::new();
    while let Ok(Ok(e)) = tokio::time::timeout(Duration::from_millis(500), events.next()).await {
        seen.push((e.event_type.as_str().to_string(), e.path.clone()));
        let json = e.envelope().to_string();
        assert!(
            !json.contains("first-key-value") && !json.contains(current["key"].as_str().unwrap()),
            "an event carries a value: {json}"
        );
    }
    let types: Vec<&str> = seen.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "kv-v2/data-write",
            "rotation/started",
            "kv-v2/data-write",
            "rotation/succeeded",
            "rotation/started",
            "rotation/failed"
        ],
        "{seen:?}"
    );
    for body in checker.bodies.lock().unwrap().iter() {
        assert!(body.contains("\"rotation/check\""), "{body}");
        assert!(
            !body.contains(current["key"].as_str().unwrap()) && !body.contains(&refused_key),
            "a check carries a value: {body}"
        );
    }

    // A prefix rule without a period and without a type tag: rotated only
    // when asked; a whole-value rotation; a caller without `rotate` is denied.
    let plain = server
        .http(
            "POST",
            "/v1/secret/data/rot/plain/token",
            Some(&root),
            Some(r#"{"data": {"t": "x"}}"#),
        )
        .await;
    assert_eq!(plain.status, 200, "{}", plain.text);
    let receipt = server
        .host
        .rotate(&admin, "secret/rot/plain/token")
        .await
        .expect("rotate");
    assert_eq!(
        (receipt.version.as_str(), receipt.previous_version.as_deref()),
        ("2", Some("1"))
    );
    assert_eq!(receipt.next_due_ms, None, "no period, no type tag: only when asked");
    let secret = server.host.read(&admin, "secret/rot/plain/token", None).await.unwrap();
    let text = secret.value.expose_str().unwrap().to_string();
    assert!(
        text.len() == 32 && text.chars().all(|c| c.is_ascii_hexdigit()),
        "{text}"
    );
    let app = caller("billing", &["apps"]);
    let denied = server.host.rotate(&app, "secret/rot/plain/token").await.unwrap_err();
    assert!(matches!(denied, tresor::Error::Denied { .. }), "{denied}");
    let uncovered = server.host.rotate(&admin, "secret/apps/db").await.unwrap_err();
    assert!(uncovered.to_string().contains("no rotation rule covers"), "{uncovered}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_killed_mid_check_resumes_with_the_same_value() {
    let checker = Checker::default();
    let hook = checker.start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hook.key"), HOOK_KEY).unwrap();
    let extra = format!(
        r#"
[[webhook]]
name = "checker"
url = "http://{hook}/check"
prefix = "secret/none/"
secret_file = '{key}'
timeout_ms = 60000

[[rotation]]
path = "secret/rot/held"
check_webhook = "checker"
field = "key"
"#,
        key = dir.path().join("hook.key").display()
    );
    let config = server_config(dir.path(), &extra);
    let server = Process::start(&config, None).await;
    *checker.server.lock().unwrap() = Some((server.addr, server.token.clone()));
    let w = server
        .http(
            "POST",
            "/v1/secret/data/rot/held",
            Some(serde_json::json!({"data": {"key": "old"}})),
        )
        .await;
    assert_eq!(w.status, 200, "{}", w.text);

    // The rotation starts, the check never answers: SIGKILL mid-check.
    checker.hold.store(true, Ordering::SeqCst);
    let (addr, token) = (server.addr, server.token.clone());
    let asked = tokio::spawn(async move {
        request(
            addr,
            None,
            "POST",
            "/v1/sys/rotate/secret/rot/held",
            &[("X-Vault-Token", token)],
            b"{}".to_vec(),
        )
        .await
    });
    assert!(
        eventually(Duration::from_secs(10), || async {
            !checker.pending_seen.lock().unwrap().is_empty()
        })
        .await,
        "the check never came"
    );
    let pending: serde_json::Value = serde_json::from_str(&checker.pending_seen.lock().unwrap()[0].clone()).unwrap();
    let token = server.token.clone();
    server.kill().await;
    assert!(asked.await.unwrap().is_err(), "the killed host answered the rotation");

    // Restarted, the scheduler takes the rotation up again: checked again,
    // then committed with the value made before the kill.
    checker.hold.store(false, Ordering::SeqCst);
    checker.accept.store(true, Ordering::SeqCst);
    let server = Process::start(&config, Some(token)).await;
    *checker.server.lock().unwrap() = Some((server.addr, server.token.clone()));
    let times = server.versions_within("rot/held", 2, Duration::from_secs(20)).await;
    assert_eq!(times.len(), 2, "one rotation, one new version: {times:?}");
    let current = server.value("rot/held", None).await.json()["data"]["data"].clone();
    assert_eq!(current, pending, "the value made before the kill became current");
    assert_eq!(
        server.value("rot/held", Some("previous")).await.json()["data"]["data"]["key"],
        "old"
    );
    let seen = checker.pending_seen.lock().unwrap().clone();
    assert!(
        seen.len() >= 2 && seen.iter().all(|v| *v == seen[0]),
        "the same pending value each check: {seen:?}"
    );
    server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_set_through_the_api_schedules_the_secret() {
    let server = start_server_with(TEST_POLICIES, "", |_| String::new()).await;
    server.host.start_schedules();
    let root = server.root_token.clone();
    let app = server.token("billing", &["apps"], 600).await;
    let w = server
        .http(
            "POST",
            "/v1/secret/data/api/k",
            Some(&root),
            Some(r#"{"data": {"k": "v0"}}"#),
        )
        .await;
    assert_eq!(w.status, 200, "{}", w.text);
    let policy = r#"{"period": "1s", "value": {"kind": "hex", "bytes": 8}, "field": "k"}"#;

    let denied = server
        .http("PUT", "/v1/sys/rotation/secret/api/k", Some(&app), Some(policy))
        .await;
    assert_eq!(denied.status, 403, "{}", denied.text);
    let bad = server
        .http(
            "PUT",
            "/v1/sys/rotation/secret/api/k",
            Some(&root),
            Some(r#"{"periode": "1s"}"#),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert!(bad.errors().contains("does not parse"), "{}", bad.text);
    let hook = server
        .http(
            "PUT",
            "/v1/sys/rotation/secret/api/k",
            Some(&root),
            Some(r#"{"check_webhook": "nope"}"#),
        )
        .await;
    assert_eq!(hook.status, 400, "{}", hook.text);
    assert!(hook.errors().contains("names no [[webhook]]"), "{}", hook.text);

    let set = server
        .http("PUT", "/v1/sys/rotation/secret/api/k", Some(&root), Some(policy))
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(set.json()["data"]["source"], "api");
    assert_eq!(set.json()["data"]["period_seconds"], 1);
    // The schedule rotates it (no [[rotation]] rule in the configuration).
    let rotated = eventually(Duration::from_secs(10), || async {
        let r = server.http("GET", "/v1/secret/data/api/k", Some(&root), None).await;
        r.json()["data"]["metadata"]["version"].as_u64().unwrap_or(0) >= 2
    })
    .await;
    assert!(rotated, "the API-set schedule never rotated the secret");
    let r = server.http("GET", "/v1/secret/data/api/k", Some(&root), None).await;
    let value = r.json()["data"]["data"]["k"].as_str().unwrap().to_string();
    assert!(
        value.len() == 16 && value.chars().all(|c| c.is_ascii_hexdigit()),
        "{value}"
    );

    let removed = server
        .http("DELETE", "/v1/sys/rotation/secret/api/k", Some(&root), None)
        .await;
    assert_eq!(removed.status, 204, "{}", removed.text);
    let gone = server
        .http("GET", "/v1/sys/rotation/secret/api/k", Some(&root), None)
        .await;
    assert_eq!(gone.status, 404, "{}", gone.text);
    let again = server
        .http("DELETE", "/v1/sys/rotation/secret/api/k", Some(&root), None)
        .await;
    assert_eq!(again.status, 404, "{}", again.text);
}
