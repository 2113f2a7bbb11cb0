//! Helpers shared by the end-to-end tests: start a real host (real wasm
//! plugins, real Cedar, real audit log) in a temporary directory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tresor::{Caller, Config, Host, Principal};

pub mod conformance;
pub mod logs;
pub mod peers;
pub mod peers_cloud;
pub mod postgres;
pub mod process;
pub mod server;

/// Path of the hostile test plugin component (built by build.rs).
pub const HOSTILE_WASM: &str = env!("TRESOR_TEST_HOSTILE");

/// Path of the Vault / OpenBao provider plugin component (built by build.rs).
pub const VAULT_WASM: &str = env!("TRESOR_PLUGIN_VAULT");

/// Path of the AWS Secrets Manager provider plugin component (built by build.rs).
pub const AWS_WASM: &str = env!("TRESOR_PLUGIN_AWS");

/// Path of the GCP Secret Manager provider plugin component (built by build.rs).
pub const GCP_WASM: &str = env!("TRESOR_PLUGIN_GCP");

/// Path of the Azure Key Vault provider plugin component (built by build.rs).
pub const AZURE_WASM: &str = env!("TRESOR_PLUGIN_AZURE");

/// Path of the PostgreSQL provider plugin component (built by build.rs).
pub const POSTGRES_KV_WASM: &str = env!("TRESOR_PLUGIN_POSTGRES_KV");

/// Path of the JSON-file provider plugin, written in Python (built by build.rs).
pub const JSON_FILE_WASM: &str = env!("TRESOR_PLUGIN_JSON_FILE");

/// Path of the YAML-file provider plugin, written in JavaScript (built by build.rs).
pub const YAML_FILE_WASM: &str = env!("TRESOR_PLUGIN_YAML_FILE");

/// The hostile test plugin's probes written in Python (built by build.rs).
pub const HOSTILE_PY_WASM: &str = env!("TRESOR_TEST_HOSTILE_PY");

/// The hostile test plugin's probes written in JavaScript (built by build.rs).
pub const HOSTILE_JS_WASM: &str = env!("TRESOR_TEST_HOSTILE_JS");

/// Where the other-language toolchains are installed (componentize-py, ...).
pub const TOOLS_DIR: &str = env!("TRESOR_TEST_TOOLS_DIR");

/// Where every test host caches compiled plugins (shared, see build.rs).
pub const COMPILE_CACHE: &str = env!("TRESOR_TEST_COMPILE_CACHE");

/// Policies most tests use: admins do everything; apps read `apps/*` and
/// list the whole `secret` mount (so listings show filtering); restricted
/// secrets are for admins only.
pub const TEST_POLICIES: &str = r#"
@id("admins-all")
permit (principal in Tresor::Group::"admins", action, resource);

@id("apps-read")
permit (
  principal in Tresor::Group::"apps",
  action == Tresor::Action::"read",
  resource is Tresor::Secret in Tresor::Mount::"secret"
) when { resource.path like "apps/*" };

@id("apps-list")
permit (
  principal in Tresor::Group::"apps",
  action == Tresor::Action::"list",
  resource in Tresor::Mount::"secret"
);

@id("restricted")
forbid (principal, action == Tresor::Action::"read", resource is Tresor::Secret)
when { resource.hasTag("classification") && resource.getTag("classification") == "restricted" }
unless { principal in Tresor::Group::"admins" };
"#;

/// A host running in its own temporary directory.
pub struct TestHost {
    /// The host.
    pub host: Host,
    /// Root of everything the host writes.
    pub dir: tempfile::TempDir,
}

impl TestHost {
    /// The state directory (key, cache, mount data).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    /// The policy directory.
    pub fn policy_dir(&self) -> PathBuf {
        self.dir.path().join("policies")
    }
    /// The audit log.
    pub fn audit_log(&self) -> PathBuf {
        self.dir.path().join("audit.log")
    }
    /// Replace the policy file the host was started with.
    pub fn set_policies(&self, text: &str) {
        write_atomically(&self.policy_dir().join("test.cedar"), text);
    }
}

/// The configuration text of a test host rooted at `dir`, with the `secret`
/// file mount (cached) plus `extra_mounts` (TOML `[[mount]]` tables). Paths
/// are TOML literal strings, so Windows paths keep their backslashes.
pub fn config_text(dir: &Path, extra_mounts: &str) -> String {
    format!(
        r#"
state_dir = '{state}'
compile_cache = '{compile_cache}'
[policy]
dir = '{policies}'
reload_interval_ms = 100
[audit]
log = '{audit}'
[[mount]]
path = "secret"
plugin = "file"
grants = {{ directory = "data/secret", clock = true }}
cache = {{ ttl_ms = 600000, max_entries = 100 }}
{extra_mounts}
"#,
        state = dir.join("state").display(),
        policies = dir.join("policies").display(),
        audit = dir.join("audit.log").display(),
        compile_cache = COMPILE_CACHE,
    )
}

/// Start a host with `policies` and the given extra mounts in a fresh temporary directory.
pub async fn start(policies: &str, extra_mounts: &str) -> TestHost {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    write_atomically(&dir.path().join("policies/test.cedar"), policies);
    let config = Config::from_toml(&config_text(dir.path(), extra_mounts)).expect("test config parses");
    let host = Host::start(config).await.expect("host starts");
    TestHost { host, dir }
}

/// Write a file via a temporary name and rename, so a watcher never sees half of it.
///
/// On Windows (and Wine) a rename over a file the policy watcher is reading
/// at that moment is refused with "Access denied"; it is tried again for up
/// to a second.
pub fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    let mut attempts = 0;
    loop {
        match std::fs::rename(&tmp, path) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && attempts < 50 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("renaming {} over {}: {e}", tmp.display(), path.display()),
        }
    }
}

/// A principal with groups.
pub fn principal(name: &str, groups: &[&str]) -> Principal {
    Principal {
        name: name.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        attributes: Default::default(),
    }
}

/// An embedded-API caller with groups.
pub fn caller(name: &str, groups: &[&str]) -> Caller {
    Caller::embedded(principal(name, groups))
}

/// Poll `check` until it returns true or `limit` passes; returns whether it did.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A fresh random marker, to search for in files and errors.
pub fn marker(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{label}-{nanos:x}-{}", std::process::id())
}

/// The sha256 (hex) of a built plugin component, as a mount pins it.
pub fn wasm_sha256(wasm: &str) -> String {
    tresor::runtime::compile::sha256_hex(
        &std::fs::read(wasm).unwrap_or_else(|e| panic!("plugin {wasm} not built: {e}")),
    )
}

/// A `[[mount]]` table serving `path` with the component at `wasm` (pinned by
/// its sha256), plugin `config` and `grants` given as TOML inline-table entries.
pub fn plugin_mount(wasm: &str, path: &str, config: &str, grants: &str) -> String {
    format!(
        "\n[[mount]]\npath = \"{path}\"\nplugin_path = \"{wasm}\"\nsha256 = \"{sha}\"\nconfig = {{ {config} }}\ngrants = {{ {grants} }}\n",
        sha = wasm_sha256(wasm),
    )
}
