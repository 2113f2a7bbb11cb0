//! What a plugin instance may touch. Nothing is ambient: the WASI context of
//! every instance starts empty (no files, no environment, no sockets, a clock
//! frozen at the Unix epoch), and each grant of the mount adds exactly one
//! capability. Randomness (`wasi:random`) is always there: it grants nothing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{FsPerms, HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::network::NetworkGrant;
use super::plugin_log::{CallLog, LogGate};
use super::sockets::SocketGrant;
use crate::keys::Sealer;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// The resolved capabilities of one mount, shared by all its instances.
#[derive(Clone, Debug)]
pub struct Sandbox {
    /// Mount name, used in logs and errors.
    pub mount: String,
    /// Host directory preopened as `/data`, if granted.
    pub directory: Option<PathBuf>,
    /// Whether `/data` is read-only.
    pub read_only: bool,
    /// Environment variables copied into the instance (already filtered by the
    /// mount's allow-list).
    pub env: Vec<(String, String)>,
    /// Real clocks, or the frozen epoch.
    pub clock: bool,
    /// Memory cap per instance, in bytes.
    pub memory_bytes: usize,
    /// Outbound HTTP the plugin may make (empty: none).
    pub network: NetworkGrant,
    /// Outbound TCP connections the plugin may open (empty: none).
    pub sockets: SocketGrant,
}

impl Sandbox {
    /// The environment variables of this process that an allow-list admits:
    /// exact names, or prefixes written `PREFIX*`.
    pub fn allowed_env(patterns: &[String]) -> Vec<(String, String)> {
        std::env::vars()
            .filter(|(name, _)| {
                patterns.iter().any(|p| match p.strip_suffix('*') {
                    Some(prefix) => name.starts_with(prefix),
                    None => name == p,
                })
            })
            .collect()
    }

    /// Build the WASI context for a fresh instance.
    pub fn wasi_ctx(&self) -> wasmtime::Result<WasiCtx> {
        let mut b = WasiCtxBuilder::new();
        // Sockets: only TCP connects to the granted addresses (none by default).
        self.sockets.apply(&mut b, &self.mount);
        for (k, v) in &self.env {
            b.env(k, v);
        }
        if !self.clock {
            b.wall_clock(FrozenClock);
            b.monotonic_clock(FrozenClock);
        }
        if let Some(dir) = &self.directory {
            let perms = if self.read_only {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            b.preopened_dir(dir, "/data", perms)?;
        }
        Ok(b.build())
    }
}

/// A clock stuck at the Unix epoch, for plugins without a clock grant.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// The data of one instance's store.
pub struct PluginState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) sealer: Arc<Sealer>,
    pub(crate) http: WasiHttpCtx,
    pub(crate) network: NetworkGrant,
    pub(crate) log: Arc<LogGate>,
    pub(crate) call_log: CallLog,
    /// When the call in progress must stop (see [`PluginState::begin_call`]).
    deadline: Instant,
}

impl PluginState {
    /// Fresh state for one instance of the mount described by `sandbox`,
    /// logging through the mount's `log` budget.
    pub fn new(sandbox: &Sandbox, sealer: Arc<Sealer>, log: Arc<LogGate>) -> wasmtime::Result<PluginState> {
        Ok(PluginState {
            wasi: sandbox.wasi_ctx()?,
            table: ResourceTable::new(),
            limiter: Limiter {
                memory_bytes: sandbox.memory_bytes,
                exceeded: false,
            },
            sealer,
            http: WasiHttpCtx::new(),
            network: sandbox.network.clone(),
            log,
            call_log: CallLog::default(),
            deadline: Instant::now(),
        })
    }

    /// Start a call that may run for `timeout`: its own log budget, and a
    /// deadline the epoch callback enforces.
    pub(crate) fn begin_call(&mut self, timeout: Duration) {
        self.call_log.reset();
        self.deadline = Instant::now() + timeout;
    }

    /// What the engine does at each epoch tick of a call: interrupt it past
    /// its deadline, otherwise yield to the async runtime so that a plugin
    /// busy in wasm or in host imports shares its worker thread with every
    /// other request.
    pub(crate) fn on_epoch_tick(&self) -> wasmtime::UpdateDeadline {
        if Instant::now() >= self.deadline {
            wasmtime::UpdateDeadline::Interrupt
        } else {
            wasmtime::UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
        }
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for PluginState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            hooks: &mut self.network,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}

/// Caps an instance's memories and remembers whether the cap was hit, so the
/// failure can be reported as a memory-limit failure rather than a plain trap.
pub struct Limiter {
    memory_bytes: usize,
    pub(crate) exceeded: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.exceeded = true;
            wasmtime::bail!("memory cap of {} MiB reached", self.memory_bytes >> 20);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}
