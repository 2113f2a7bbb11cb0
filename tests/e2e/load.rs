//! Load test of the Vault-compatible KV v2 HTTP API.
//!
//! [`CLIENTS`] concurrent clients, each with its own HTTP connection pool,
//! mix writes and reads for [`LOAD_DURATION`] over real HTTP on 127.0.0.1.
//! Every client owns [`KEYS_PER_CLIENT`] keys and is their only writer, so it
//! knows exactly what the server must return: it records every write the
//! server acknowledged (2xx with a version) and checks reads against that
//! record while the load runs. At the end every key's latest value must be
//! its last acknowledged write, and every acknowledged version must still be
//! readable with `?version=N` and hold the value written.
//!
//! The test speaks only the HTTP API (base URL + token), so the same code
//! runs against the reference implementation (an OpenBao dev server the test
//! starts) and against Tresor.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

/// Concurrent clients.
const CLIENTS: usize = 16;
/// Keys each client owns (and is the only writer of).
const KEYS_PER_CLIENT: usize = 4;
/// How long the mixed load runs.
const LOAD_DURATION: Duration = Duration::from_secs(5);
/// Upper bound on the operations of one client, whatever the speed.
const MAX_OPS_PER_CLIENT: u64 = 100_000;
/// Upper bound on one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound on the whole run, verification included.
const TEST_LIMIT: Duration = Duration::from_secs(90);
/// Errors kept verbatim for the failure message (all are counted).
const ERRORS_SHOWN: usize = 20;

/// Where the load goes.
struct Target {
    /// `http://127.0.0.1:PORT`.
    base: String,
    /// Sent as `X-Vault-Token`.
    token: String,
    /// The KV v2 mount, e.g. `secret`.
    mount: String,
    /// A path prefix unique to this run, so runs never see each other's keys.
    prefix: String,
    /// A name for messages.
    name: &'static str,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A plain KV v2 client over HTTP/1.1.
struct Kv {
    http: HttpClient,
    target: Arc<Target>,
}

/// What a read returned: the `n` field of the secret's data and its version.
#[derive(Debug, PartialEq)]
struct ReadBack {
    value: String,
    version: u64,
}

impl Kv {
    fn new(target: Arc<Target>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(4)
            .build(connector);
        Kv { http, target }
    }

    /// One request; the status and the body parsed as JSON (`Null` if empty).
    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<(StatusCode, Value), String> {
        let url = format!("{}{}", self.target.base, path);
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let request = Request::builder()
            .method(method.clone())
            .uri(&url)
            .header("X-Vault-Token", &self.target.token)
            .header("Content-Type", "application/json")
            .body(Full::new(bytes))
            .map_err(|e| format!("{method} {path}: building the request: {e}"))?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| format!("{method} {path}: {e:?}"))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("{method} {path}: reading the body: {e}"))?
                .to_bytes();
            let json = if body.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&body).map_err(|e| {
                    format!(
                        "{method} {path}: {status}, body is not JSON ({e}): {}",
                        String::from_utf8_lossy(&body)
                    )
                })?
            };
            Ok((status, json))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("{method} {path}: no answer within {REQUEST_TIMEOUT:?}"))?
    }

    fn data_path(&self, key: &str) -> String {
        format!("/v1/{}/data/{}/{}", self.target.mount, self.target.prefix, key)
    }

    /// Write `{"n": value}`; the version the server acknowledged.
    async fn write(&self, key: &str, value: &str) -> Result<u64, String> {
        let path = self.data_path(key);
        let (status, body) = self
            .call(Method::POST, &path, Some(&json!({"data": {"n": value}})))
            .await?;
        if !status.is_success() {
            return Err(format!("POST {path}: {status}: {body}"));
        }
        body.pointer("/data/version")
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("POST {path}: {status} without data.version: {body}"))
    }

    /// Read the latest version, or version `version`.
    async fn read(&self, key: &str, version: Option<u64>) -> Result<ReadBack, String> {
        let mut path = self.data_path(key);
        if let Some(v) = version {
            path.push_str(&format!("?version={v}"));
        }
        let (status, body) = self.call(Method::GET, &path, None).await?;
        if status != StatusCode::OK {
            return Err(format!("GET {path}: {status}: {body}"));
        }
        let value = body.pointer("/data/data/n").and_then(Value::as_str);
        let version = body.pointer("/data/metadata/version").and_then(Value::as_u64);
        match (value, version) {
            (Some(value), Some(version)) => Ok(ReadBack {
                value: value.to_string(),
                version,
            }),
            _ => Err(format!(
                "GET {path}: 200 without data.data.n and data.metadata.version: {body}"
            )),
        }
    }
}

/// A small xorshift generator: reproducible per client, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// What one client knows about one of its keys.
#[derive(Default)]
struct KeyLog {
    /// Every acknowledged write, in order: (version, value).
    acked: Vec<(u64, String)>,
    /// Values of writes that failed without an acknowledgement, after the
    /// last acknowledged one: the server may or may not have applied them.
    uncertain: Vec<String>,
}

/// The outcome of one client's run.
#[derive(Default)]
struct ClientReport {
    keys: BTreeMap<String, KeyLog>,
    writes: u64,
    reads: u64,
    version_reads: u64,
    errors: Vec<String>,
    error_count: u64,
    lost: Vec<String>,
}

impl ClientReport {
    fn error(&mut self, message: String) {
        self.error_count += 1;
        if self.errors.len() < ERRORS_SHOWN {
            self.errors.push(message);
        }
    }
}

/// Run one client: mixed writes and reads until `deadline`.
async fn run_client(kv: &Kv, id: usize, seed: u64, deadline: Instant) -> ClientReport {
    let mut report = ClientReport::default();
    let keys: Vec<String> = (0..KEYS_PER_CLIENT).map(|k| format!("c{id}/k{k}")).collect();
    for key in &keys {
        report.keys.insert(key.clone(), KeyLog::default());
    }
    let mut rng = Rng::new(seed);
    let mut seq = 0u64;
    for _ in 0..MAX_OPS_PER_CLIENT {
        if Instant::now() >= deadline {
            break;
        }
        let key = &keys[rng.below(keys.len())];
        let log = &report.keys[key];
        let never_written = log.acked.is_empty();
        let roll = rng.below(100);
        if never_written || roll < 40 {
            // Write the next value.
            seq += 1;
            let value = format!("{id}-{seq}");
            match kv.write(key, &value).await {
                Ok(version) => {
                    report.writes += 1;
                    let log = report.keys.get_mut(key).unwrap();
                    // This client is the key's only writer and writes one at
                    // a time: versions must go up by exactly one (the first
                    // acknowledged write of a fresh key is version 1).
                    let expected = log.acked.last().map_or(1, |(v, _)| v + 1);
                    let had_uncertain = !log.uncertain.is_empty();
                    log.acked.push((version, value.clone()));
                    log.uncertain.clear();
                    if version != expected && !had_uncertain {
                        report.error(format!(
                            "write {key} = {value}: acknowledged version {version}, expected {expected}"
                        ));
                    }
                }
                Err(e) => {
                    report.keys.get_mut(key).unwrap().uncertain.push(value);
                    report.error(e);
                }
            }
        } else if roll < 80 {
            // Read the latest version: must be this client's last acknowledged write.
            let (last_version, last_value) = log.acked.last().cloned().unwrap();
            let uncertain = !log.uncertain.is_empty();
            match kv.read(key, None).await {
                Ok(got) => {
                    report.reads += 1;
                    if !uncertain && (got.version != last_version || got.value != last_value) {
                        report.error(format!(
                            "read {key}: got {got:?}, but the last acknowledged write was version {last_version} = {last_value}"
                        ));
                    }
                }
                Err(e) => report.error(e),
            }
        } else {
            // Read a random acknowledged version.
            let (version, value) = log.acked[rng.below(log.acked.len())].clone();
            match kv.read(key, Some(version)).await {
                Ok(got) => {
                    report.version_reads += 1;
                    if got.version != version || got.value != value {
                        report.error(format!(
                            "read {key}?version={version}: got {got:?}, acknowledged {value}"
                        ));
                    }
                }
                Err(e) => report.error(e),
            }
        }
    }
    report
}

/// After the load: every key's latest value is its last acknowledged write and
/// every acknowledged version reads back as written. Mismatches go to `lost`.
async fn verify_client(kv: &Kv, report: &mut ClientReport) {
    let keys: Vec<String> = report.keys.keys().cloned().collect();
    for key in keys {
        let log = &report.keys[&key];
        let Some((last_version, last_value)) = log.acked.last().cloned() else {
            continue;
        };
        let uncertain = log.uncertain.clone();
        let acked = log.acked.clone();
        match kv.read(&key, None).await {
            Ok(got) => {
                let is_last = got.version == last_version && got.value == last_value;
                let is_unacked_later = got.version > last_version && uncertain.contains(&got.value);
                if !is_last && !is_unacked_later {
                    report.lost.push(format!(
                        "{key}: latest is {got:?}, the last acknowledged write was version {last_version} = {last_value}"
                    ));
                }
            }
            Err(e) => report.lost.push(format!("{key}: latest unreadable: {e}")),
        }
        for (version, value) in acked {
            match kv.read(&key, Some(version)).await {
                Ok(got) if got.version == version && got.value == value => {}
                Ok(got) => report
                    .lost
                    .push(format!("{key}?version={version}: got {got:?}, acknowledged {value}")),
                Err(e) => report.lost.push(format!("{key}?version={version}: {e}")),
            }
        }
    }
}

/// Run the whole load test against `target` and assert zero errors and zero
/// lost acknowledged writes.
async fn load_test(target: Target) {
    let target = Arc::new(target);
    let run = async {
        let started = Instant::now();
        let deadline = started + LOAD_DURATION;
        let seed_base = std::process::id() as u64 ^ started.elapsed().as_nanos() as u64;
        let mut tasks = Vec::new();
        for id in 0..CLIENTS {
            let kv = Kv::new(target.clone());
            let seed = seed_base.wrapping_add(id as u64 + 1);
            tasks.push(tokio::spawn(async move {
                let mut report = run_client(&kv, id, seed, deadline).await;
                verify_client(&kv, &mut report).await;
                report
            }));
        }
        let mut reports = Vec::new();
        for task in tasks {
            reports.push(task.await.expect("client task"));
        }
        (reports, started.elapsed())
    };
    let (reports, elapsed) = tokio::time::timeout(TEST_LIMIT, run)
        .await
        .unwrap_or_else(|_| panic!("{}: the load test did not finish within {TEST_LIMIT:?}", target.name));

    let writes: u64 = reports.iter().map(|r| r.writes).sum();
    let reads: u64 = reports.iter().map(|r| r.reads).sum();
    let version_reads: u64 = reports.iter().map(|r| r.version_reads).sum();
    let errors: u64 = reports.iter().map(|r| r.error_count).sum();
    let versions: usize = reports
        .iter()
        .flat_map(|r| r.keys.values())
        .map(|k| k.acked.len())
        .sum();
    let lost: Vec<&String> = reports.iter().flat_map(|r| &r.lost).collect();
    let secs = LOAD_DURATION.as_secs_f64();
    eprintln!(
        "{}: {CLIENTS} clients for {LOAD_DURATION:?}: {writes} acknowledged writes ({:.0}/s), {reads} latest reads, \
         {version_reads} versioned reads ({:.0} ops/s); {errors} errors; verified {versions} acknowledged versions \
         of {} keys, {} lost; {elapsed:.1?} in all",
        target.name,
        writes as f64 / secs,
        (writes + reads + version_reads) as f64 / secs,
        CLIENTS * KEYS_PER_CLIENT,
        lost.len(),
    );

    let shown: Vec<&String> = reports.iter().flat_map(|r| &r.errors).take(ERRORS_SHOWN).collect();
    assert_eq!(
        errors, 0,
        "{}: {errors} errors under load, first ones: {shown:#?}",
        target.name
    );
    assert!(
        lost.is_empty(),
        "{}: {} acknowledged writes lost or wrong: {:#?}",
        target.name,
        lost.len(),
        lost.iter().take(ERRORS_SHOWN).collect::<Vec<_>>()
    );
    assert!(
        writes >= CLIENTS as u64,
        "{}: only {writes} writes in {LOAD_DURATION:?}",
        target.name
    );
    assert!(reads + version_reads > 0, "{}: no reads happened", target.name);
}

/// KV v2 keeps 10 versions per key by default (Vault's rule, which Tresor
/// follows); the test reads back every version it wrote, so keep them all.
async fn keep_every_version(base: &str, token: &str) {
    let admin = Kv::new(Arc::new(Target {
        base: base.to_string(),
        token: token.to_string(),
        mount: "secret".into(),
        prefix: String::new(),
        name: "admin",
    }));
    let (status, body) = admin
        .call(
            Method::POST,
            "/v1/secret/config",
            Some(&json!({"max_versions": 1_000_000})),
        )
        .await
        .expect("configure the KV mount");
    assert!(status.is_success(), "POST /v1/secret/config: {status}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_against_openbao() {
    let bao = tresor_e2e::peers::start_openbao().await;
    keep_every_version(&bao.addr, &bao.token).await;
    load_test(Target {
        base: bao.addr.clone(),
        token: bao.token.clone(),
        mount: "secret".into(),
        prefix: tresor_e2e::marker("load"),
        name: "OpenBao",
    })
    .await;
    drop(bao);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_against_tresor() {
    // A real host and API server in-process: the file provider at `secret/`
    // (every version encrypted and fsynced to disk), Cedar, audit log.
    let server = tresor_e2e::server::start_server(tresor_e2e::TEST_POLICIES).await;
    keep_every_version(server.url(), &server.root_token).await;
    load_test(Target {
        base: server.url().to_string(),
        token: server.root_token.clone(),
        mount: "secret".into(),
        prefix: tresor_e2e::marker("load"),
        name: "Tresor",
    })
    .await;
    server.stop().await;
}
