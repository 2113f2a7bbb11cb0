//! Real peers started by the tests themselves, on 127.0.0.1 only.
//!
//! [`start_openbao`] runs an OpenBao dev server (in-memory, KV v2 mounted at
//! `secret/`, root token [`OPENBAO_ROOT_TOKEN`]) on a free loopback port. It
//! is the reference implementation of the Vault HTTP API that Tresor's API is
//! checked against. Install it with `./tests/setup.sh`.
//!
//! [`start_moto`] runs moto's server (`moto_server`, a faithful local AWS,
//! Secrets Manager included) the same way; [`Moto::reset`] empties it.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The root token every OpenBao dev server started here accepts.
pub const OPENBAO_ROOT_TOKEN: &str = "root-token";

/// How long a dev server may take to answer its first health check.
const READY_LIMIT: Duration = Duration::from_secs(20);
/// How many times to pick new ports if the server could not bind them.
const START_ATTEMPTS: usize = 5;

/// A running OpenBao dev server; stopped (SIGKILL, then reaped) when dropped.
pub struct OpenBao {
    child: Child,
    /// Base URL, `http://127.0.0.1:PORT`.
    pub addr: String,
    /// The API port (the cluster listener uses `port + 1`).
    pub port: u16,
    /// Root token.
    pub token: String,
    /// Where the server's output goes.
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl OpenBao {
    /// The process id of the server.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    /// The last `max` bytes of the server's log, for failure messages.
    pub fn log_tail(&self, max: usize) -> String {
        log_tail(&self.log, max)
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_tail(path: &std::path::Path, max: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let start = text.len().saturating_sub(max);
    String::from_utf8_lossy(&text[start..]).into_owned()
}

/// Two adjacent free loopback ports `(p, p + 1)`: OpenBao's API listener and
/// its cluster listener. Both are bound once to check, then released.
pub fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let first = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = first.local_addr().unwrap().port();
        if port == u16::MAX {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no two adjacent free ports on 127.0.0.1 after 100 tries");
}

/// The status code of `GET path` on `127.0.0.1:port`, or `None` if nothing answered.
pub async fn http_status(port: u16, path: &str) -> Option<u16> {
    http_request_status(port, "GET", path).await
}

/// Start an OpenBao dev server on a free loopback port and wait until
/// `/v1/sys/health` answers 200. Panics with "run ./tests/setup.sh" when
/// `bao` is not installed.
pub async fn start_openbao() -> OpenBao {
    let mut last_error = String::new();
    for _ in 0..START_ATTEMPTS {
        match launch_openbao(free_port_pair()).await {
            Ok(bao) => return bao,
            // Most likely another process took one of the ports in between: try new ones.
            Err(e) => last_error = e,
        }
    }
    panic!("OpenBao did not start in {START_ATTEMPTS} attempts; last: {last_error}");
}

/// Start an OpenBao dev server on `port` (and `port + 1`), for a test that
/// stopped one and brings it back at the same address. Dev servers keep
/// nothing: the new one is empty. Panics if it cannot start.
pub async fn start_openbao_on(port: u16) -> OpenBao {
    // The old server's sockets may take a moment to be released.
    let started = Instant::now();
    loop {
        match launch_openbao(port).await {
            Ok(bao) => return bao,
            Err(e) if started.elapsed() > Duration::from_secs(10) => {
                panic!("OpenBao did not start again on port {port}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// One start of `bao server -dev` on `port`: the server once healthy, or why
/// it exited (a port taken, usually). Panics when `bao` is missing or the
/// server runs but never becomes healthy.
async fn launch_openbao(port: u16) -> Result<OpenBao, String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("openbao.log");
    let out = std::fs::File::create(&log).expect("create the OpenBao log");
    let err = out.try_clone().unwrap();
    let spawned = Command::new("bao")
        .args([
            "server",
            "-dev",
            &format!("-dev-root-token-id={OPENBAO_ROOT_TOKEN}"),
            &format!("-dev-listen-address=127.0.0.1:{port}"),
            "-dev-no-store-token",
        ])
        // A dev server needs nothing from the environment; keep a user's
        // own Vault/OpenBao settings from leaking in.
        .env_remove("BAO_ADDR")
        .env_remove("VAULT_ADDR")
        .env_remove("BAO_TOKEN")
        .env_remove("VAULT_TOKEN")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("the OpenBao server `bao` is not on PATH: run ./tests/setup.sh")
        }
        Err(e) => panic!("starting `bao server -dev` failed: {e}; run ./tests/setup.sh"),
    };
    let started = Instant::now();
    while started.elapsed() < READY_LIMIT {
        if let Some(status) = child.try_wait().expect("poll bao") {
            return Err(format!("bao exited with {status}: {}", log_tail(&log, 2000)));
        }
        if http_status(port, "/v1/sys/health").await == Some(200) {
            return Ok(OpenBao {
                child,
                addr: format!("http://127.0.0.1:{port}"),
                port,
                token: OPENBAO_ROOT_TOKEN.to_string(),
                log,
                _dir: dir,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "OpenBao did not answer /v1/sys/health within {READY_LIMIT:?}; its log:\n{}",
        log_tail(&log, 4000)
    );
}

/// A running `moto_server` (local AWS); stopped when dropped.
pub struct Moto {
    child: Child,
    /// Base URL, `http://127.0.0.1:PORT`.
    pub addr: String,
    /// The port.
    pub port: u16,
    /// Where the server's output goes.
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Moto {
    /// Forget every resource (`POST /moto-api/reset`), so a test starts from nothing.
    pub async fn reset(&self) {
        let status = http_request_status(self.port, "POST", "/moto-api/reset").await;
        assert_eq!(
            status,
            Some(200),
            "resetting moto failed; its log:\n{}",
            log_tail(&self.log, 2000)
        );
    }
    /// The last `max` bytes of the server's log, for failure messages.
    pub fn log_tail(&self, max: usize) -> String {
        log_tail(&self.log, max)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `moto_server` on a free loopback port and wait until `/moto-api/`
/// answers. Panics with "run ./tests/setup.sh" when it is not installed.
pub async fn start_moto() -> Moto {
    let mut last_error = String::new();
    for _ in 0..START_ATTEMPTS {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port_pair();
        let log = dir.path().join("moto.log");
        let out = std::fs::File::create(&log).expect("create the moto log");
        let err = out.try_clone().unwrap();
        let spawned = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!("moto's `moto_server` is not on PATH: run ./tests/setup.sh")
            }
            Err(e) => panic!("starting `moto_server` failed: {e}; run ./tests/setup.sh"),
        };
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("poll moto_server") {
                last_error = format!("moto_server exited with {status}: {}", log_tail(&log, 2000));
                break;
            }
            if http_status(port, "/moto-api/").await == Some(200) {
                return Moto {
                    child,
                    addr: format!("http://127.0.0.1:{port}"),
                    port,
                    log,
                    _dir: dir,
                };
            }
            if started.elapsed() > READY_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "moto_server did not answer /moto-api/ within {READY_LIMIT:?}; its log:\n{}",
                    log_tail(&log, 4000)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    panic!("moto_server did not start in {START_ATTEMPTS} attempts; last: {last_error}");
}

/// The status code of `METHOD path` (no body) on `127.0.0.1:port`, or
/// `None` if nothing answered.
pub async fn http_request_status(port: u16, method: &str, path: &str) -> Option<u16> {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 64];
        let mut filled = 0;
        while filled < 12 {
            let n = stream.read(&mut head[filled..]).await.ok()?;
            if n == 0 {
                return None;
            }
            filled += n;
        }
        std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .ok()
        .flatten()
}
