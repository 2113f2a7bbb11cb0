//! The plugin runtime: one wasmtime engine, plugins compiled once and cached
//! on disk, and per mount a pool of sandboxed instances.
//!
//! - [`compile`]: content-addressed cache of precompiled components.
//! - [`sandbox`]: what a mount grants (directory, env allow-list, clock) and the
//!   per-store state, memory limiter included.
//! - [`host`]: the `tresor:plugin/host` imports (log, seal, unseal, protect).
//! - [`network`]: the `network` (wasi:http) and `sockets` (wasi:sockets TCP)
//!   grants.
//! - [`pool`]: instances per mount, one call at a time per instance, with a
//!   deadline; a failed instance is discarded. A pool serves either plugin
//!   world (provider or generator).

pub mod compile;
pub mod host;
pub mod network;
mod plugin_log;
pub mod pool;
pub mod sandbox;
pub mod sockets;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine};

use sandbox::PluginState;

pub use network::NetworkGrant;
pub use pool::{
    Checkout, GenRole, InstanceCounts, IssueRequest, IssuedCredential, MountPool, PluginError, Sealing, World,
};
pub use sandbox::Sandbox;
pub use sockets::SocketGrant;

/// Host-side bindings of the `provider-plugin` world.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "provider-plugin",
        exports: { default: async },
    });
}

/// Host-side bindings of the `sealing-provider-plugin` world: only its
/// `resealer` export is used, looked up on provider components that have it.
pub mod sealing_bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "sealing-provider-plugin",
        exports: { default: async },
        with: {
            "tresor:plugin/types": super::bindings::tresor::plugin::types,
            "tresor:plugin/host": super::bindings::tresor::plugin::host,
        },
    });
}

/// Host-side bindings of the `rotating-generator-plugin` world: only its
/// `static-credentials` export is used, looked up on generator components
/// that have it.
pub mod rotating_bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "rotating-generator-plugin",
        exports: { default: async },
        with: {
            "tresor:plugin/types": super::bindings::tresor::plugin::types,
            "tresor:plugin/host": super::bindings::tresor::plugin::host,
        },
    });
}

/// Host-side bindings of the `generator-plugin` world. Its `types` and `host`
/// interfaces are the provider world's, so one host implementation serves both.
pub mod generator_bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "generator-plugin",
        exports: { default: async },
        with: {
            "tresor:plugin/types": super::bindings::tresor::plugin::types,
            "tresor:plugin/host": super::bindings::tresor::plugin::host,
        },
    });
}

/// How often the engine's epoch advances; call deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The shared wasmtime engine, the linker every plugin is instantiated
/// with (WASI, wasi:http and the `tresor:plugin/host` imports, built once),
/// and the on-disk cache of compiled plugins.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    linker: Arc<Linker<PluginState>>,
    cache_dir: PathBuf,
    _ticker: Arc<EpochTicker>,
}

impl Runtime {
    /// Create the engine (async, component model, epoch interruption) and
    /// start the epoch ticker. Compiled components are cached under `cache_dir`.
    pub fn new(cache_dir: PathBuf) -> wasmtime::Result<Runtime> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        // Linear memories are reserved lazily; the per-instance cap is enforced
        // by the store's limiter (see `sandbox::Limiter`).
        let engine = Engine::new(&config)?;
        let linker = Arc::new(plugin_linker(&engine)?);
        let ticker = Arc::new(EpochTicker::start(engine.clone()));
        Ok(Runtime {
            engine,
            linker,
            cache_dir,
            _ticker: ticker,
        })
    }

    /// The linker plugins are instantiated with.
    pub fn linker(&self) -> &Linker<PluginState> {
        &self.linker
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Where precompiled components are kept.
    pub fn cache_dir(&self) -> &std::path::Path {
        &self.cache_dir
    }
}

/// What every plugin may import: WASI (sockets refused unless the mount's
/// sandbox grants them), wasi:http (always linked so plugins that use it
/// load; only the mount's network grant decides whether a request leaves the
/// host) and the `tresor:plugin/host` functions.
fn plugin_linker(engine: &Engine) -> wasmtime::Result<Linker<PluginState>> {
    let mut linker: Linker<PluginState> = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    bindings::tresor::plugin::types::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |s| s)?;
    bindings::tresor::plugin::host::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |s| s)?;
    Ok(linker)
}

/// Advances the engine epoch every [`EPOCH_TICK`] on a plain thread, so that
/// deadlines fire even when every tokio worker is busy.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("tresor-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        EpochTicker { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
