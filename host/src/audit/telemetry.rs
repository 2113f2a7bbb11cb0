//! Logging and OTLP span export.
//!
//! The OTLP exporter runs its gRPC client (tonic) on a small Tokio runtime of
//! its own, on a dedicated thread: exporting and flushing then work the same
//! whether the caller runs a multi-thread runtime, a current-thread runtime
//! (as `#[tokio::test]` does) or none, and flushing from inside async code
//! cannot deadlock on the caller's runtime.

use std::future::Future;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider, SpanData};
use opentelemetry_sdk::Resource;
use tracing_subscriber::filter::{filter_fn, EnvFilter, FilterExt as _, LevelFilter};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer;

use super::span::ACCESS_SPAN_NAME;
use super::AuditError;

/// `service.name` when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` names one.
const DEFAULT_SERVICE_NAME: &str = "tresor";

/// Instrumentation scope of Tresor's spans.
const TRACER_NAME: &str = "tresor";

/// Crates whose own spans and events must never reach the OTLP layer: they
/// are the exporter's transport, so exporting them would feed back into it.
const TRANSPORT_TARGETS: &[&str] = &[
    "h2",
    "hyper",
    "hyper_util",
    "tonic",
    "tower",
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry_otlp",
    "opentelemetry-otlp",
];

/// Flushes and stops span export when dropped (or on [`shutdown`](Self::shutdown)).
#[derive(Debug)]
#[must_use = "dropping the guard stops span export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Export the spans still queued (waiting at most 5 s) and stop exporting.
    pub fn shutdown(mut self) {
        self.stop();
    }

    /// Whether spans are being exported over OTLP.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    fn stop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown() {
                // The subscriber may already be gone; stderr always works.
                eprintln!("tresor: flushing OTLP spans at shutdown failed: {e}");
            }
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Install the global `tracing` subscriber.
///
/// - A fmt layer writing to **stderr** (stdout may carry secret values the
///   CLI prints), filtered by `RUST_LOG` (default `info`), as JSON lines when
///   `json` is true.
/// - When `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
///   is set (and `OTEL_SDK_DISABLED` is not `true`, `OTEL_TRACES_EXPORTER` not
///   `none`): an OpenTelemetry layer with a batch OTLP/gRPC span exporter,
///   configured by the standard variables (`OTEL_EXPORTER_OTLP_*` endpoint,
///   headers, timeout, compression, insecure; `OTEL_BSP_*`;
///   `OTEL_TRACES_SAMPLER*`; `OTEL_SERVICE_NAME`, default "tresor";
///   `OTEL_RESOURCE_ATTRIBUTES`). `tresor.access` spans are exported whatever
///   `RUST_LOG` says; other spans follow `RUST_LOG`. The W3C trace-context
///   propagator is installed globally.
///
/// Fails if a subscriber is already installed, `RUST_LOG` does not parse, or
/// the exporter cannot be configured.
pub fn init_telemetry(json: bool) -> Result<TelemetryGuard, AuditError> {
    let fmt_filter = log_filter()?;
    let fmt_layer = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(fmt_filter)
            .boxed()
    } else {
        // Colour only on a terminal: a log written to a file or a pipe
        // carries no escape codes.
        tracing_subscriber::fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .with_filter(fmt_filter)
            .boxed()
    };

    let provider = if otlp_requested() {
        Some(build_provider(None)?)
    } else {
        None
    };
    let otel_layer = match &provider {
        Some(p) => Some(otel_layer(p)?),
        None => None,
    };

    tracing_subscriber::registry()
        .with(fmt_layer)
        .with(otel_layer)
        .try_init()
        .map_err(|e| AuditError::Telemetry(format!("cannot install the tracing subscriber: {e}")))?;

    if let Some(p) = &provider {
        opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
        opentelemetry::global::set_tracer_provider(p.clone());
        tracing::info!(service = %service_name_hint(), "exporting spans over OTLP/gRPC");
    }
    Ok(TelemetryGuard { provider })
}

/// Build just the OTLP tracer provider (batch processor, OTLP/gRPC exporter)
/// for an explicit `endpoint` such as `http://127.0.0.1:4317`, for tests and
/// embedders that manage their own subscriber. Pair it with
/// [`otel_layer`]. Other settings still come from the standard `OTEL_*`
/// variables. Call `shutdown()` (or `force_flush()`) on it to flush.
pub fn otlp_tracer_provider(endpoint: &str) -> Result<SdkTracerProvider, AuditError> {
    build_provider(Some(endpoint))
}

/// The OpenTelemetry layer for `provider`, with Tresor's filter: access spans
/// always, other spans as `RUST_LOG` allows, never the exporter's own
/// transport (which would feed back into it).
pub fn otel_layer<S>(provider: &SdkTracerProvider) -> Result<impl Layer<S> + Send + Sync + 'static, AuditError>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
{
    let not_transport = filter_fn(|m| {
        let target = m.target();
        !TRANSPORT_TARGETS
            .iter()
            .any(|t| target == *t || (target.starts_with(t) && target[t.len()..].starts_with("::")))
    });
    let access = filter_fn(|m| m.is_span() && m.name() == ACCESS_SPAN_NAME);
    let filter = not_transport.and(access.or(log_filter()?));
    Ok(tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(TRACER_NAME))
        .with_filter(filter))
}

/// `RUST_LOG`, default `info`.
fn log_filter() -> Result<EnvFilter, AuditError> {
    EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env()
        .map_err(|e| {
            AuditError::Telemetry(format!(
                "RUST_LOG is not a valid filter ({e}); use e.g. RUST_LOG=info or RUST_LOG=tresor=debug"
            ))
        })
}

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

fn env_is(name: &str, value: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v.trim().eq_ignore_ascii_case(value))
}

fn otlp_requested() -> bool {
    (env_set("OTEL_EXPORTER_OTLP_ENDPOINT") || env_set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        && !env_is("OTEL_SDK_DISABLED", "true")
        && !env_is("OTEL_TRACES_EXPORTER", "none")
}

fn service_name_hint() -> String {
    std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_string())
}

fn build_provider(endpoint: Option<&str>) -> Result<SdkTracerProvider, AuditError> {
    // This build speaks OTLP over gRPC only; say so instead of silently
    // sending gRPC to an HTTP receiver.
    for var in ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"] {
        if let Ok(p) = std::env::var(var) {
            if !p.is_empty() && !p.trim().eq_ignore_ascii_case("grpc") {
                return Err(AuditError::Telemetry(format!(
                    "{var}={p} is not supported: Tresor exports OTLP over gRPC only; unset it or set \
                     it to grpc, and point the endpoint at the collector's gRPC port (usually 4317)"
                )));
            }
        }
    }

    let runtime = ExportRuntime::start()?;
    let exporter = {
        let _enter = runtime.handle.enter();
        let mut builder = opentelemetry_otlp::SpanExporter::builder().with_tonic();
        if let Some(endpoint) = endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        builder.build().map_err(|e| {
            AuditError::Telemetry(format!(
                "cannot configure the OTLP span exporter: {e}; check OTEL_EXPORTER_OTLP_ENDPOINT \
                 (an http://host:4317 gRPC endpoint; https needs a TLS-enabled build)"
            ))
        })?
    };
    let exporter = RuntimeBoundExporter {
        inner: exporter,
        _runtime: runtime,
    };

    let mut resource = Resource::builder();
    if !service_name_configured() {
        resource = resource.with_service_name(DEFAULT_SERVICE_NAME);
    }
    Ok(SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(exporter).build())
        .with_resource(resource.build())
        .build())
}

/// Whether the environment names the service (else we default to "tresor"
/// rather than the SDK's "unknown_service").
fn service_name_configured() -> bool {
    env_set("OTEL_SERVICE_NAME")
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES")
            .is_ok_and(|v| v.split(',').any(|kv| kv.trim_start().starts_with("service.name=")))
}

/// A current-thread Tokio runtime driven by a thread of its own until dropped.
#[derive(Debug)]
struct ExportRuntime {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl ExportRuntime {
    fn start() -> Result<Self, AuditError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| AuditError::Telemetry(format!("cannot start the OTLP export runtime: {e}")))?;
        let handle = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("tresor-otlp".into())
            .spawn(move || {
                rt.block_on(async {
                    let _ = stopped.await;
                });
                // Give in-flight connection tasks no more time.
                rt.shutdown_timeout(Duration::from_millis(100));
            })
            .map_err(|e| AuditError::Telemetry(format!("cannot start the OTLP export thread: {e}")))?;
        Ok(ExportRuntime {
            handle,
            stop: Some(stop),
        })
    }
}

impl Drop for ExportRuntime {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The OTLP exporter together with the runtime its gRPC channel lives on;
/// the runtime stops when the span processor drops the exporter.
#[derive(Debug)]
struct RuntimeBoundExporter {
    inner: opentelemetry_otlp::SpanExporter,
    _runtime: ExportRuntime,
}

impl opentelemetry_sdk::trace::SpanExporter for RuntimeBoundExporter {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        self.inner.export(batch)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
