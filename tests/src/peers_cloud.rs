//! Cloud secret-manager peers started by the tests themselves, on
//! 127.0.0.1 only (see shared/PEERS.md):
//!
//! - [`start_gcp`]: GCP Secret Manager's REST API, cloudbox 0.2.3 behind
//!   our launcher `tests/peers/gcp_server.py`, over http, optionally with
//!   bearer tokens required and a service account whose JWTs its token
//!   endpoint exchanges;
//! - [`start_azure`]: our protocol-faithful Azure Key Vault
//!   (`tests/peers/azure_keyvault.py`), over https with a throw-away CA,
//!   with its Entra ID token endpoint for client credentials.
//!
//! Both bind a free port themselves and report it in a file, so parallel
//! tests never race for ports. Install what they need with
//! `./tests/setup.sh`; both scripts were checked against the official
//! Python clients (`tests/peers/*_validate.py`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a peer may take to report its port.
const READY_LIMIT: Duration = Duration::from_secs(30);

/// Exit status of the launchers when a Python package is missing.
const MISSING_PACKAGE: i32 = 3;

/// A Python peer process; stopped (SIGKILL, then reaped) when dropped.
struct PythonPeer {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for PythonPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers").join(name)
}

fn log_tail(path: &Path, max: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let start = text.len().saturating_sub(max);
    String::from_utf8_lossy(&text[start..]).into_owned()
}

/// Runs `python3 <script> <args>` in `dir` and waits until it writes its
/// port to `port_file`. Panics with "run ./tests/setup.sh" when Python or
/// one of its packages is missing.
fn spawn_python(script_name: &str, args: &[String], dir: &Path, port_file: &Path) -> PythonPeer {
    let log = dir.join(format!("{script_name}.log"));
    let out = std::fs::File::create(&log).expect("create the peer log");
    let err = out.try_clone().expect("clone the log handle");
    let mut child = match Command::new(python())
        .arg(script(script_name))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => panic!("cannot run `{} {script_name}` ({e}): run ./tests/setup.sh", python()),
    };
    let started = Instant::now();
    while started.elapsed() < READY_LIMIT {
        if let Some(status) = child.try_wait().expect("poll the peer") {
            let hint = if status.code() == Some(MISSING_PACKAGE) {
                "a Python package is missing: run ./tests/setup.sh"
            } else {
                "it exited early"
            };
            panic!("{script_name}: {hint} ({status}); its log:\n{}", log_tail(&log, 4000));
        }
        if let Some(port) = std::fs::read_to_string(port_file)
            .ok()
            .and_then(|p| p.trim().parse().ok())
        {
            return PythonPeer { child, port, log };
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "{script_name} did not report its port within {READY_LIMIT:?}; its log:\n{}",
        log_tail(&log, 4000)
    );
}

/// How to start [`start_gcp`]'s server.
#[derive(Clone, Debug, Default)]
pub struct GcpOptions {
    /// Refuse API calls without a valid bearer token (401), like Google.
    pub require_token: bool,
    /// A token the API accepts without the token endpoint.
    pub access_token: Option<String>,
    /// Write a fresh service-account key file whose JWTs the token endpoint
    /// exchanges (see [`GcpPeer::service_account_json`]).
    pub service_account: bool,
}

/// A running GCP Secret Manager API (cloudbox behind our launcher).
pub struct GcpPeer {
    peer: PythonPeer,
    /// `http://127.0.0.1:PORT`: the mount's `endpoint`.
    pub endpoint: String,
    /// The port (API and token endpoint).
    pub port: u16,
    /// The service-account JSON key file's text (with
    /// [`GcpOptions::service_account`]); its `token_uri` is this server.
    pub service_account_json: Option<String>,
    _dir: tempfile::TempDir,
}

impl GcpPeer {
    /// The last `max` bytes of the server's log, for failure messages.
    pub fn log_tail(&self, max: usize) -> String {
        log_tail(&self.peer.log, max)
    }

    /// `host:port`, for the mount's `grants.network`.
    pub fn authority(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Starts the GCP Secret Manager peer on a free loopback port.
pub fn start_gcp(options: &GcpOptions) -> GcpPeer {
    let dir = tempfile::tempdir().expect("temp dir");
    let port_file = dir.path().join("port");
    let key_file = dir.path().join("service-account.json");
    let mut args = vec!["--port-file".to_string(), port_file.display().to_string()];
    if options.require_token {
        args.push("--require-token".into());
    }
    if let Some(token) = &options.access_token {
        args.extend(["--access-token".into(), token.clone()]);
    }
    if options.service_account {
        args.extend(["--service-account-out".into(), key_file.display().to_string()]);
    }
    let peer = spawn_python("gcp_server.py", &args, dir.path(), &port_file);
    let service_account_json = options
        .service_account
        .then(|| std::fs::read_to_string(&key_file).expect("the launcher wrote the service-account key"));
    GcpPeer {
        endpoint: format!("http://127.0.0.1:{}", peer.port),
        port: peer.port,
        peer,
        service_account_json,
        _dir: dir,
    }
}

/// How to start [`start_azure`]'s server.
#[derive(Clone, Debug)]
pub struct AzureOptions {
    /// Most items per page of a list (Key Vault's maximum is 25).
    pub max_page_size: u32,
    /// A token the vault accepts without the token endpoint.
    pub access_token: Option<String>,
}

impl Default for AzureOptions {
    fn default() -> Self {
        AzureOptions {
            max_page_size: 25,
            access_token: None,
        }
    }
}

/// A running local Azure Key Vault with its token endpoint.
pub struct AzureVault {
    peer: PythonPeer,
    /// `https://127.0.0.1:PORT`: the mount's `vault_url` and `authority`.
    pub vault_url: String,
    /// The port (vault and token endpoint).
    pub port: u16,
    /// The CA that signed the server's certificate (PEM): the mount's
    /// `grants.ca_file`.
    pub ca_file: PathBuf,
    /// The tenant the token endpoint serves.
    pub tenant_id: String,
    /// The one application it knows.
    pub client_id: String,
    /// That application's secret.
    pub client_secret: String,
    _dir: tempfile::TempDir,
}

impl AzureVault {
    /// The last `max` bytes of the server's log, for failure messages.
    pub fn log_tail(&self, max: usize) -> String {
        log_tail(&self.peer.log, max)
    }

    /// `host:port`, for the mount's `grants.network`.
    pub fn authority(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Starts the local Azure Key Vault on a free loopback port.
pub fn start_azure(options: &AzureOptions) -> AzureVault {
    let dir = tempfile::tempdir().expect("temp dir");
    let tenant_id = "7f3c1a2b-0000-4000-8000-00000000a2e1".to_string();
    let client_id = "0c5e9d4a-0000-4000-8000-0000000c11e7".to_string();
    let client_secret = format!("Tq8~{}", crate::marker("client-secret"));
    let mut args = vec![
        "--dir".to_string(),
        dir.path().display().to_string(),
        "--tenant".into(),
        tenant_id.clone(),
        "--client-id".into(),
        client_id.clone(),
        "--client-secret".into(),
        client_secret.clone(),
        "--max-page-size".into(),
        options.max_page_size.to_string(),
    ];
    if let Some(token) = &options.access_token {
        args.extend(["--access-token".into(), token.clone()]);
    }
    let peer = spawn_python("azure_keyvault.py", &args, dir.path(), &dir.path().join("port"));
    AzureVault {
        vault_url: format!("https://127.0.0.1:{}", peer.port),
        port: peer.port,
        ca_file: dir.path().join("ca.pem"),
        peer,
        tenant_id,
        client_id,
        client_secret,
        _dir: dir,
    }
}

/// GETs `url` with a bearer token (trusting `ca_file` for https) and
/// parses the JSON answer, whatever its status: a look at what the plugin
/// left in the upstream, independent of the plugin. Uses Python's urllib.
pub fn fetch_json(url: &str, token: &str, ca_file: Option<&Path>) -> serde_json::Value {
    const FETCH: &str = r#"
import json, ssl, sys, urllib.request, urllib.error
url, token, ca = sys.argv[1], sys.argv[2], sys.argv[3]
context = ssl.create_default_context(cafile=ca) if ca else None
request = urllib.request.Request(url, headers={"Authorization": "Bearer " + token})
try:
    body = urllib.request.urlopen(request, context=context).read()
except urllib.error.HTTPError as e:
    body = e.read()
sys.stdout.write(body.decode() or "null")
"#;
    let ca = ca_file.map(|p| p.display().to_string()).unwrap_or_default();
    let out = Command::new(python())
        .args(["-c", FETCH, url, token, &ca])
        .output()
        .expect("run python3 to fetch JSON");
    assert!(
        out.status.success(),
        "fetching {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{url} did not answer JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}
