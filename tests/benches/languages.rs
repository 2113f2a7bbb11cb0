//! One provider contract in three languages, side by side: the `file`
//! provider (Rust), `json-file` (Python, componentize-py) and `yaml-file`
//! (JavaScript, componentize-js). Each is a full-capability store in its
//! granted directory with values sealed by the host, so a call does the same
//! work in each.
//!
//! - `read/<lang>`, `write/<lang>`: `Host::read` / `Host::write` of one
//!   secret through the whole access path (Cedar, audit, pool, plugin).
//! - `instantiate/<lang>`: a fresh instance from the compiled component:
//!   instantiate, `configure`, `get-capabilities` (what a mount pays at start
//!   and whenever its pool grows).
//!
//! Printed before the measurements: each component's size, and the
//! smallest memory cap (MiB) with which a mount starts and serves a write
//! and a read.
//!
//! Run: `cargo bench -p tresor-e2e --bench languages`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use tresor::config::Limits;
use tresor::keys::MasterKey;
use tresor::runtime::{compile, MountPool, Runtime, Sandbox, World};
use tresor::{Caller, Config, Host, Principal, SecretBytes, WriteOptions};
use tresor_e2e::{COMPILE_CACHE, JSON_FILE_WASM, YAML_FILE_WASM};

fn root() -> Caller {
    Caller::embedded(Principal {
        groups: vec!["admins".into()],
        ..Principal::new("root")
    })
}

const POLICY: &str = "@id(\"all\")\npermit (principal, action, resource);\n";

/// A host in `dir` with mount `m` running `wasm`, capped at `memory_mib`.
async fn host(dir: &Path, wasm: &Path, memory_mib: u64) -> Result<Host, String> {
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(dir.join("policies/all.cedar"), POLICY).unwrap();
    let sha = compile::sha256_hex(&std::fs::read(wasm).unwrap());
    let text = format!(
        r#"
state_dir = '{state}'
compile_cache = '{COMPILE_CACHE}'
[policy]
dir = '{policies}'
reload_interval_ms = 0
[audit]
log = '{audit}'
[[mount]]
path = "m"
plugin_path = '{wasm}'
sha256 = "{sha}"
grants = {{ directory = "data/m", clock = true }}
limits = {{ memory_mib = {memory_mib} }}
"#,
        state = dir.join("state").display(),
        policies = dir.join("policies").display(),
        audit = dir.join("audit.log").display(),
        wasm = wasm.display(),
    );
    Host::start(Config::from_toml(&text).unwrap())
        .await
        .map_err(|e| e.to_string())
}

/// The smallest memory cap (MiB) with which `wasm` starts and serves a write and a read.
async fn smallest_memory(wasm: &Path) -> u64 {
    let (mut lo, mut hi) = (1u64, 64u64);
    while lo < hi {
        let mid = (lo + hi) / 2;
        let dir = tempfile::tempdir().unwrap();
        let works = match host(dir.path(), wasm, mid).await {
            Ok(h) => {
                let value = SecretBytes::from("probe");
                h.write(&root(), "m/probe", &value, &WriteOptions::default())
                    .await
                    .is_ok()
                    && h.read(&root(), "m/probe", None).await.is_ok()
            }
            Err(_) => false,
        };
        if works {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let files = tempfile::tempdir().unwrap();
    let rust = files.path().join("file.wasm");
    std::fs::write(&rust, tresor::plugins::embedded("file").unwrap()).unwrap();
    let plugins: [(&str, PathBuf); 3] = [
        ("rust", rust),
        ("python", PathBuf::from(JSON_FILE_WASM)),
        ("js", PathBuf::from(YAML_FILE_WASM)),
    ];

    let value = SecretBytes::from("a database password of typical length");
    let mut hosts = Vec::new();
    for (lang, wasm) in &plugins {
        let size = std::fs::metadata(wasm).unwrap().len();
        let memory = rt.block_on(smallest_memory(wasm));
        println!("{lang}: component {size} bytes; smallest memory cap that serves: {memory} MiB");
        let dir = tempfile::tempdir().unwrap();
        let h = rt.block_on(host(dir.path(), wasm, 64)).unwrap();
        rt.block_on(h.write(&root(), "m/apps/db", &value, &WriteOptions::default()))
            .unwrap();
        hosts.push((*lang, h, dir));
    }

    let mut group = c.benchmark_group("read");
    for (lang, h, _) in &hosts {
        group.bench_function(*lang, |b| {
            b.to_async(&rt).iter(|| async {
                let s = h.read(&root(), "m/apps/db", None).await.unwrap();
                assert_eq!(s.value.len(), value.len());
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("write");
    for (lang, h, _) in &hosts {
        group.bench_function(*lang, |b| {
            b.to_async(&rt).iter(|| async {
                h.write(&root(), "m/apps/written", &value, &WriteOptions::default())
                    .await
                    .unwrap();
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("instantiate");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    let runtime = Runtime::new(PathBuf::from(COMPILE_CACHE)).unwrap();
    for (lang, wasm) in &plugins {
        let bytes = std::fs::read(wasm).unwrap();
        let component = compile::load_component(runtime.engine(), runtime.cache_dir(), &bytes).unwrap();
        let data = tempfile::tempdir().unwrap();
        let sealer = Arc::new(tresor::keys::Keyring::new(Arc::new(MasterKey::generate().unwrap())).sealer_for("m"));
        group.bench_function(*lang, |b| {
            b.to_async(&rt).iter(|| async {
                let sandbox = Sandbox {
                    mount: "m".into(),
                    directory: Some(data.path().to_path_buf()),
                    read_only: false,
                    env: vec![],
                    clock: true,
                    memory_bytes: 64 << 20,
                    network: Default::default(),
                    sockets: Default::default(),
                };
                MountPool::start(
                    &runtime,
                    &component,
                    World::Provider,
                    sandbox,
                    sealer.clone(),
                    vec![],
                    Limits::default(),
                )
                .await
                .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
