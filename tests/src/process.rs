//! A `tresor server` process started by a test from a configuration file,
//! with its output collected: to SIGKILL it mid-work and start it again on
//! the same state.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::server::{request, tresor_bin, Reply};
use crate::{config_text, write_atomically, TEST_POLICIES};

/// A `tresor server` process of the test, its output collected.
pub struct Process {
    child: tokio::process::Child,
    /// The address it listens on (plain HTTP).
    pub addr: SocketAddr,
    /// The root token (printed at its first start).
    pub token: String,
    output: Arc<Mutex<String>>,
}

impl Process {
    /// Start `tresor server --config FILE`, wait for its address and the
    /// root token it prints (on a first start; after a restart the token of
    /// the first start, kept in the state store, is `token`).
    pub async fn start(config_file: &Path, token: Option<String>) -> Process {
        let mut child = tokio::process::Command::new(tresor_bin())
            .args(["server", "--config"])
            .arg(config_file)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("tresor server starts");
        let output = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let collected = output.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stderr));
            while let Ok(Some(line)) = lines.next_line().await {
                collected.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let stdout = child.stdout.take().unwrap();
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
        let (mut addr, mut token) = (None, token);
        while addr.is_none() || token.is_none() {
            let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("the server printed no address or token: {}", output.lock().unwrap()))
                .unwrap()
                .unwrap_or_else(|| panic!("the server stopped: {}", output.lock().unwrap()));
            output.lock().unwrap().push_str(&format!("{line}\n"));
            if let Some(url) = line.strip_prefix("Listening on http://") {
                addr = Some(url.parse::<SocketAddr>().unwrap());
            }
            if let Some(t) = line.strip_prefix("Root Token: ") {
                token = Some(t.to_string());
            }
        }
        let collected = output.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                collected.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        Process {
            child,
            addr: addr.unwrap(),
            token: token.unwrap(),
            output,
        }
    }

    /// Send a request with the root token.
    pub async fn http(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> Reply {
        request(
            self.addr,
            None,
            method,
            path,
            &[("X-Vault-Token", self.token.clone())],
            body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
        )
        .await
        .expect("request sent")
    }

    /// SIGKILL (on Unix; TerminateProcess elsewhere) and wait for the end.
    pub async fn kill(mut self) -> String {
        self.child.start_kill().expect("kill the server");
        let _ = self.child.wait().await;
        let out = self.output.lock().unwrap().clone();
        out
    }
}

/// Write a server configuration in `dir`: the test policies, the file mount
/// `secret` and `extra` (TOML), a listener on an OS-assigned port and a
/// bootstrap root token. Returns the configuration file.
pub fn server_config(dir: &Path, extra: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    write_atomically(&dir.join("policies/test.cedar"), TEST_POLICIES);
    let file = dir.join("tresor.toml");
    let server = "\n[server]\nlisten = \"127.0.0.1:0\"\ntokens = { bootstrap_root_token = true }\n";
    write_atomically(&file, &format!("{}{extra}{server}", config_text(dir, "")));
    file
}
