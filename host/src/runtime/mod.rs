//! The plugin runtime: one wasmtime engine, plugins compiled once and cached
//! on disk, and per mount a pool of sandboxed instances.
//!
//! - [`compile`]: content-addressed cache of precompiled components.
//! - [`sandbox`]: what a mount grants (directory, env allow-list, clock) and the
//!   per-store state, memory limiter included.
//! - [`host`]: the `tresor:plugin/host` imports (log, seal, unseal, protect).
//! - [`pool`]: instances per mount, one call at a time per instance, with a
//!   deadline; a failed instance is discarded.

pub mod compile;
pub mod host;
pub mod network;
pub mod pool;
pub mod sandbox;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Config, Engine};

pub use network::NetworkGrant;
pub use pool::{MountPool, PluginError};
pub use sandbox::Sandbox;

/// Host-side bindings of the `provider-plugin` world.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "provider-plugin",
        exports: { default: async },
    });
}

/// How often the engine's epoch advances; call deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The shared wasmtime engine and the on-disk cache of compiled plugins.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
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
        let ticker = Arc::new(EpochTicker::start(engine.clone()));
        Ok(Runtime {
            engine,
            cache_dir,
            _ticker: ticker,
        })
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
