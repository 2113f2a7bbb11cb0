//! Helpers for tests of the HTTP API: a real host and API server running
//! in-process on 127.0.0.1 (OS-assigned ports) in a temporary directory,
//! and real clients to drive it: raw HTTP (hyper, optionally over TLS with
//! a client certificate), the `bao` CLI and the `hvac` Python library.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tresor::api::{Listener, Server};
use tresor::auth::{TokenSpec, TokenStore};
use tresor::{Config, Host, Principal};

use crate::{config_text, write_atomically};

/// The message every test that needs a peer client prints when it is missing.
pub const SETUP_HINT: &str = "run ./tests/setup.sh to install the test peers (bao, hvac)";

/// An API server in its own temporary directory.
pub struct TestServer {
    /// `http://127.0.0.1:port` (or `https://`) of each listener, in config order.
    pub urls: Vec<String>,
    /// The listeners' addresses.
    pub addrs: Vec<SocketAddr>,
    /// A root token (principal `root`, group `admins`).
    pub root_token: String,
    /// The host behind the API.
    pub host: Arc<Host>,
    /// The token store the API authenticates with.
    pub tokens: Arc<TokenStore>,
    /// Root of everything the server writes.
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// The first listener's URL.
    pub fn url(&self) -> &str {
        &self.urls[0]
    }

    /// The first listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// The audit log.
    pub fn audit_log(&self) -> PathBuf {
        self.dir.path().join("audit.log")
    }

    /// The configuration file the server reads again on a reload.
    pub fn config_file(&self) -> PathBuf {
        self.dir.path().join("tresor.toml")
    }

    /// The embedded state store (tokens, leases).
    pub fn state_file(&self) -> PathBuf {
        self.dir.path().join("state/state.db")
    }

    /// A token for `name` with `groups`, made directly in the store.
    pub async fn token(&self, name: &str, groups: &[&str], ttl_seconds: u64) -> String {
        let spec = TokenSpec {
            principal: Principal {
                name: name.into(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
                attributes: Default::default(),
            },
            ttl_seconds,
            max_ttl_seconds: 0,
            bootstrap: false,
        };
        self.tokens.create(&spec).await.expect("token created").0.to_string()
    }

    /// Send a request to the first listener (plain HTTP).
    pub async fn http(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Reply {
        let mut headers = Vec::new();
        if let Some(t) = token {
            headers.push(("X-Vault-Token", t.to_string()));
        }
        request(
            self.addr(),
            None,
            method,
            path,
            &headers,
            body.unwrap_or("").as_bytes().to_vec(),
        )
        .await
        .expect("request sent")
    }

    /// Tell the server to stop (it stops accepting, lets in-flight requests
    /// finish, then returns); the handle resolves when it has.
    pub fn begin_stop(&mut self) -> tokio::task::JoinHandle<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take().expect("the server is running")
    }

    /// Stop the server gracefully and wait for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
    }

    /// Run `bao` with `VAULT_ADDR` set to this server and `VAULT_TOKEN` to `token`.
    pub async fn bao(&self, token: &str, args: &[&str]) -> Output {
        bao(self.url(), token, args).await
    }

    /// Run a Python script with `hvac` imported and `client` connected to
    /// this server with `token` (`addr` and `token` are also defined).
    pub async fn hvac(&self, token: &str, script: &str) -> Output {
        hvac(self.url(), token, script).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Start a server with `policies` and a plain-HTTP listener on 127.0.0.1.
pub async fn start_server(policies: &str) -> TestServer {
    start_server_with(policies, "", |_| String::new()).await
}

/// Start a server with `policies` and `server_toml`: TOML that follows a
/// `[server]` table header (keys, then e.g. `[[server.listener]]` tables),
/// made by `make_server_toml` from the temporary directory (to point at
/// files written there). Without listener tables, one plain-HTTP listener
/// on `127.0.0.1:0`.
pub async fn start_server_with(
    policies: &str,
    extra_mounts: &str,
    make_server_toml: impl FnOnce(&Path) -> String,
) -> TestServer {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    write_atomically(&dir.path().join("policies/test.cedar"), policies);
    let mut server_toml = make_server_toml(dir.path());
    if !server_toml.contains("[[server.listener]]") && !server_toml.contains("listen =") {
        server_toml = format!("listen = \"127.0.0.1:0\"\n{server_toml}");
    }
    let text = format!("{}\n[server]\n{server_toml}\n", config_text(dir.path(), extra_mounts));
    let config = Config::from_toml(&text).expect("test config parses");
    // The file `sys/plugins/reload/backend` reads again: rewrite it to reload.
    let config_file = dir.path().join("tresor.toml");
    write_atomically(&config_file, &text);
    let host = Arc::new(Host::start(config.clone()).await.expect("host starts"));
    let tokens = Arc::new(
        TokenStore::open(host.state().clone(), Some(&config.server.token_file(&config.state_dir)))
            .await
            .expect("token store opens"),
    );
    let root = tokens
        .create(&TokenSpec {
            principal: tresor::auth::root_principal(),
            ttl_seconds: 0,
            max_ttl_seconds: 0,
            bootstrap: true,
        })
        .await
        .expect("root token")
        .0
        .to_string();
    let mut listeners = Vec::new();
    for l in config.server.effective_listeners() {
        listeners.push(Listener::bind(&l).await.expect("listener binds"));
    }
    let urls = listeners.iter().map(Listener::url).collect();
    let addrs = listeners.iter().map(Listener::local_addr).collect();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let source_file = config_file.clone();
    let server = Server::new(host.clone(), tokens.clone(), &config.server).with_config_source(Arc::new(move || {
        Config::from_file(&source_file).map_err(|e| e.to_string())
    }));
    let task = tokio::spawn(async move {
        server
            .serve(listeners, async {
                let _ = stopped.await;
            })
            .await
    });
    TestServer {
        urls,
        addrs,
        root_token: root,
        host,
        tokens,
        dir,
        stop: Some(stop),
        task: Some(task),
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: hyper::HeaderMap,
    /// The body as text.
    pub text: String,
}

impl Reply {
    /// The body as JSON (`Null` when empty or not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text).unwrap_or(serde_json::Value::Null)
    }

    /// The `errors` of a Vault-shaped error answer, joined.
    pub fn errors(&self) -> String {
        self.json()["errors"]
            .as_array()
            .map(|a| a.iter().filter_map(|e| e.as_str()).collect::<Vec<_>>().join("; "))
            .unwrap_or_default()
    }
}

/// Send one HTTP/1.1 request to `addr`, over TLS when `tls` is given.
pub async fn request(
    addr: SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> anyhow::Result<Reply> {
    let mut req = hyper::Request::builder()
        .method(hyper::Method::from_bytes(method.as_bytes())?)
        .uri(path)
        .header(hyper::header::HOST, addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, v.as_str());
    }
    if !body.is_empty() && !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
        req = req.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    let req = req.body(Full::new(Bytes::from(body)))?;
    let tcp = TcpStream::connect(addr).await?;
    match tls {
        None => exchange(tcp, req).await,
        Some(config) => {
            let name = ServerName::IpAddress(addr.ip().into());
            let stream = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await?;
            exchange(stream, req).await
        }
    }
}

async fn exchange<IO>(io: IO, req: hyper::Request<Full<Bytes>>) -> anyhow::Result<Reply>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    let driver = tokio::spawn(conn);
    let resp = tokio::time::timeout(Duration::from_secs(30), sender.send_request(req)).await??;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await?.to_bytes();
    driver.abort();
    Ok(Reply {
        status,
        headers,
        text: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Run the `bao` CLI against `url` with `token`; a missing `bao` fails the test.
pub async fn bao(url: &str, token: &str, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new("bao");
    cmd.args(args)
        .env("VAULT_ADDR", url)
        .env("VAULT_TOKEN", token)
        .env("VAULT_FORMAT", "json")
        .env_remove("BAO_ADDR")
        .env_remove("BAO_TOKEN")
        .env_remove("VAULT_NAMESPACE")
        .env_remove("BAO_NAMESPACE")
        .kill_on_drop(true);
    match tokio::time::timeout(Duration::from_secs(60), cmd.output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("the `bao` CLI is not installed: {SETUP_HINT}")
        }
        Ok(Err(e)) => panic!("running bao: {e}"),
        Err(_) => panic!("bao {args:?} did not finish within 60 s"),
    }
}

/// Run a Python script with `hvac`: `client = hvac.Client(url=addr, token=token)`
/// is defined before it. A missing `python3` or `hvac` fails the test.
pub async fn hvac(url: &str, token: &str, script: &str) -> Output {
    let prelude = "import os, sys, json\ntry:\n    import hvac\nexcept ImportError:\n    print('HVAC-MISSING', file=sys.stderr); sys.exit(97)\naddr = os.environ['TEST_ADDR']\ntoken = os.environ['TEST_TOKEN']\nclient = hvac.Client(url=addr, token=token)\n";
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg("-c")
        .arg(format!("{prelude}{script}"))
        .env("TEST_ADDR", url)
        .env("TEST_TOKEN", token)
        .kill_on_drop(true);
    let out = match tokio::time::timeout(Duration::from_secs(60), cmd.output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("python3 is not installed: {SETUP_HINT}")
        }
        Ok(Err(e)) => panic!("running python3: {e}"),
        Err(_) => panic!("the hvac script did not finish within 60 s"),
    };
    if out.status.code() == Some(97) {
        panic!("the Python package `hvac` is not installed: {SETUP_HINT}");
    }
    out
}

/// stdout of a finished command, asserting it succeeded.
pub fn stdout_ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A test certificate authority with server and client certificates.
pub struct TestPki {
    ca: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// The CA certificate (PEM).
    pub ca_pem: String,
}

/// A certificate and its key.
pub struct Issued {
    /// Certificate (PEM).
    pub cert_pem: String,
    /// Private key (PKCS#8 PEM).
    pub key_pem: String,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl TestPki {
    /// A fresh CA named `name`.
    pub fn new(name: &str) -> TestPki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestPki {
            ca_pem: cert.pem(),
            ca: rcgen::Issuer::new(params, key),
        }
    }

    fn issue(&self, cn: &str, sans: Vec<String>, usage: rcgen::ExtendedKeyUsagePurpose) -> Issued {
        let mut params = rcgen::CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }

    /// A server certificate for 127.0.0.1 and localhost.
    pub fn server(&self) -> Issued {
        self.issue(
            "tresor-test-server",
            vec!["127.0.0.1".into(), "localhost".into()],
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate with subject CN `cn`.
    pub fn client(&self, cn: &str) -> Issued {
        self.issue(cn, Vec::new(), rcgen::ExtendedKeyUsagePurpose::ClientAuth)
    }

    /// A rustls client trusting this CA, presenting `client` if given.
    pub fn client_config(&self, client: Option<&Issued>) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match client {
            Some(c) => builder
                .with_client_auth_cert(
                    vec![c.cert_der.clone()],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(c.key_der.clone())),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        Arc::new(config)
    }
}

impl Issued {
    /// Write the certificate and key as `<stem>.pem` and `<stem>.key` in `dir`.
    pub fn write(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{stem}.pem"));
        let key = dir.join(format!("{stem}.key"));
        std::fs::write(&cert, &self.cert_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (cert, key)
    }
}

/// The `tresor` binary of this build (cargo builds it with the workspace's
/// test targets, next to the test executables' directory).
pub fn tresor_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join(format!("tresor{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is not built; run the tests with `cargo test --workspace --all-targets` (./tests/run.sh)",
        bin.display()
    );
    bin
}
