//! Webhooks against a real HTTP receiver in the test: every change event
//! under the webhook's prefix arrives, signed with HMAC-SHA256 (checked
//! here with the RustCrypto `hmac` crate, not the host's code), at least
//! once, also when the host is SIGKILLed while the receiver is down and
//! events wait in the outbox; events never carry values.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use sha2::Sha256;
use tresor_e2e::*;

const KEY: &str = "webhook-key-for-tests-0123456789abcdef";

/// One delivery as the receiver saw it.
#[derive(Clone, Debug)]
struct Delivery {
    event_id_header: String,
    body: serde_json::Value,
    raw: String,
}

/// A webhook endpoint: answers 503 until `accepting`, then 200; checks
/// every signature and counts the bad ones.
#[derive(Clone, Default)]
struct Receiver {
    accepting: Arc<AtomicBool>,
    refused: Arc<AtomicUsize>,
    bad_signatures: Arc<AtomicUsize>,
    accepted: Arc<Mutex<Vec<Delivery>>>,
}

impl Receiver {
    async fn start(&self) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let me = me.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let me = me.clone();
                        async move { Ok::<_, Infallible>(me.handle(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        addr
    }

    async fn handle(&self, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let (signature, event_id_header) = (header("x-tresor-signature"), header("x-tresor-event-id"));
        let raw = req.into_body().collect().await.unwrap().to_bytes();
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(KEY.as_bytes()).unwrap();
        mac.update(&raw);
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        if signature != expected {
            self.bad_signatures.fetch_add(1, Ordering::SeqCst);
            return status(401);
        }
        if !self.accepting.load(Ordering::SeqCst) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return status(503);
        }
        let raw = String::from_utf8(raw.to_vec()).unwrap();
        self.accepted.lock().unwrap().push(Delivery {
            event_id_header,
            body: serde_json::from_str(&raw).unwrap(),
            raw,
        });
        status(200)
    }

    /// (path, current version) of every event received.
    fn received(&self) -> BTreeSet<(String, String)> {
        self.accepted
            .lock()
            .unwrap()
            .iter()
            .map(|d| {
                let meta = &d.body["data"]["event"]["metadata"];
                (
                    meta["path"].as_str().unwrap().to_string(),
                    meta["current_version"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }
}

fn status(code: u16) -> Response<Full<Bytes>> {
    Response::builder().status(code).body(Full::new(Bytes::new())).unwrap()
}

fn webhook_config(dir: &std::path::Path, addr: std::net::SocketAddr) -> String {
    std::fs::write(dir.join("hook.key"), format!("{KEY}\n")).unwrap();
    let extra = format!(
        r#"
[[webhook]]
name = "receiver"
url = "http://{addr}/hooks/tresor"
prefix = "secret/crash/"
secret_file = '{key}'
retry_initial_ms = 100
retry_max_ms = 300
timeout_ms = 2000
"#,
        key = dir.join("hook.key").display()
    );
    config_text(dir, &extra)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_change_reaches_the_webhook_across_a_sigkill() {
    let receiver = Receiver::default();
    let addr = receiver.start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("policies/p.cedar"), TEST_POLICIES).unwrap();
    let config_path = dir.path().join("tresor.toml");
    std::fs::write(&config_path, webhook_config(dir.path(), addr)).unwrap();

    // The writer writes `secret/crash/k<i>` and a new version of
    // `secret/crash/hot` per line it acknowledges, while the receiver is
    // down: the events wait in the outbox. Then SIGKILL.
    let mut child = Command::new(env!("CARGO_BIN_EXE_tresor-test-writer"))
        .arg(&config_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the writer");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked = BTreeSet::new();
    for _ in 0..40 {
        let line = lines.next().expect("the writer acknowledged a write").unwrap();
        let parts: Vec<&str> = line.split_whitespace().collect();
        acked.insert((format!("secret/crash/k{}", parts[1]), "1".to_string()));
        acked.insert(("secret/crash/hot".to_string(), parts[2].to_string()));
    }
    let refused_before_kill = eventually(Duration::from_secs(10), || async {
        receiver.refused.load(Ordering::SeqCst) > 0
    })
    .await;
    child.kill().expect("SIGKILL the host");
    child.wait().unwrap();
    assert!(refused_before_kill, "the host never tried to deliver while it ran");
    assert!(receiver.received().is_empty());

    // A new host on the same state store delivers what was queued.
    receiver.accepting.store(true, Ordering::SeqCst);
    let host = tresor::Host::start(tresor::Config::from_file(&config_path).unwrap())
        .await
        .expect("the host restarts on its state");
    let all = eventually(Duration::from_secs(30), || async {
        receiver.received().is_superset(&acked)
    })
    .await;
    let missing: Vec<_> = acked.difference(&receiver.received()).cloned().collect();
    assert!(
        all,
        "{} acknowledged events never arrived, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(
        receiver.bad_signatures.load(Ordering::SeqCst),
        0,
        "a delivery had a bad signature"
    );

    let accepted = receiver.accepted.lock().unwrap().clone();
    for d in &accepted {
        assert_eq!(d.body["id"].as_str(), Some(d.event_id_header.as_str()), "{}", d.raw);
        assert_eq!(d.body["type"], "kv-v2/data-write", "{}", d.raw);
        assert!(!d.raw.contains("value-"), "an event carried a value: {}", d.raw);
    }
    // Events outside the prefix are not sent.
    let me = caller("ops", &["admins"]);
    host.write(&me, "secret/elsewhere/x", &"v".into(), &Default::default())
        .await
        .unwrap();
    host.write(&me, "secret/crash/last", &"v".into(), &Default::default())
        .await
        .unwrap();
    let last = eventually(Duration::from_secs(10), || async {
        receiver
            .received()
            .contains(&("secret/crash/last".to_string(), "1".to_string()))
    })
    .await;
    assert!(last, "a write of the running host did not arrive");
    assert!(
        receiver
            .received()
            .iter()
            .all(|(path, _)| path.starts_with("secret/crash/")),
        "an event outside the webhook's prefix was sent"
    );
    assert_eq!(
        host.state().outbox_len().await.unwrap(),
        0,
        "delivered events stay queued"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_without_a_usable_key_or_url_is_refused_in_the_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("short.key"), "too-short\n").unwrap();
    let config = format!(
        "{}\n[[webhook]]\nname = \"w\"\nurl = \"http://127.0.0.1:9/\"\nsecret_file = '{}'\n",
        config_text(dir.path(), ""),
        dir.path().join("short.key").display()
    );
    let e = tresor::Config::from_toml(&config)
        .expect_err("a 9-byte key is refused")
        .to_string();
    assert!(e.contains("webhook `w`") && e.contains("at least 16"), "{e}");
    assert!(!e.contains("too-short"), "the key is in the error: {e}");

    let config = format!(
        "{}\n[[webhook]]\nname = \"w\"\nurl = \"ftp://example.com/\"\nsecret_env = \"PATH\"\n",
        config_text(dir.path(), "")
    );
    let e = tresor::Config::from_toml(&config)
        .expect_err("an ftp url is refused")
        .to_string();
    assert!(e.contains("http:// or https://"), "{e}");
}
