//! What the access path costs on top of the plugin call it wraps.
//!
//! - `bare_plugin_call`: check out an instance of the embedded `file`
//!   plugin and call `get` — the sandboxed call alone.
//! - `authorized_read`: `Host::read` through the whole access path: path
//!   check, audit span, Cedar (the example policies, which look at tags, so
//!   the secret is fetched before deciding), audit log request + response
//!   entries, instance pool, plugin call.
//! - `authorized_read_cached`: the same with the mount's read cache on: the
//!   plugin is skipped, policy and audit are not.
//!
//! Run: `cargo bench -p tresor --bench access_path`.

use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use tresor::config::{CacheConfig, Limits};
use tresor::keys::MasterKey;
use tresor::runtime::{compile, MountPool, Runtime, Sandbox, World};
use tresor::{Caller, Config, Host, Principal, SecretBytes, WriteOptions};

fn policies() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../policies"))
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let value = SecretBytes::from("a database password of typical length");

    // The whole access path, with and without the read cache.
    let host = |cache: bool| {
        let state = dir.path().join(if cache { "cached" } else { "uncached" });
        let mut config = Config::dev(&state, policies());
        config.mounts[0].cache = cache.then_some(CacheConfig {
            ttl_ms: 3_600_000,
            max_entries: 1000,
        });
        let host = rt.block_on(Host::start(config)).unwrap();
        let root = Caller::embedded(Principal {
            groups: vec!["admins".into()],
            ..Principal::new("root")
        });
        rt.block_on(host.write(&root, "secret/apps/db", &value, &WriteOptions::default()))
            .unwrap();
        (host, root)
    };
    let (uncached, root) = host(false);
    let (cached, _) = host(true);

    // The bare plugin call, on the same data directory as the uncached host.
    let pool = rt.block_on(async {
        let runtime = Runtime::new(dir.path().join("bare-cache")).unwrap();
        let wasm = tresor::plugins::embedded("file").unwrap();
        let component = compile::load_component(runtime.engine(), runtime.cache_dir(), wasm).unwrap();
        let sandbox = Sandbox {
            mount: "secret".into(),
            directory: Some(dir.path().join("uncached/data/secret")),
            read_only: true,
            env: vec![],
            clock: false,
            memory_bytes: 64 << 20,
            network: Default::default(),
            sockets: Default::default(),
        };
        // The data was sealed with the uncached host's master key for mount `secret`.
        let key_hex = std::fs::read_to_string(dir.path().join("uncached/master.key")).unwrap();
        let sealer = tresor::keys::Keyring::new(Arc::new(MasterKey::from_hex(&key_hex).unwrap())).sealer_for("secret");
        MountPool::start(
            &runtime,
            &component,
            World::Provider,
            sandbox,
            Arc::new(sealer),
            vec![],
            Limits::default(),
        )
        .await
        .unwrap()
    });

    let mut group = c.benchmark_group("read");
    group.bench_function("bare_plugin_call", |b| {
        b.to_async(&rt).iter(|| async {
            let s = pool.checkout().await.unwrap().get("apps/db", None).await.unwrap();
            assert_eq!(s.value.len(), value.len());
        })
    });
    group.bench_function("authorized_read", |b| {
        b.to_async(&rt).iter(|| async {
            let s = uncached.read(&root, "secret/apps/db", None).await.unwrap();
            assert_eq!(s.value.len(), value.len());
        })
    });
    group.bench_function("authorized_read_cached", |b| {
        b.to_async(&rt).iter(|| async {
            let s = cached.read(&root, "secret/apps/db", None).await.unwrap();
            assert_eq!(s.value.len(), value.len());
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
