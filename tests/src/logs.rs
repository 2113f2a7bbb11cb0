//! Everything the host logs, captured: every event and every span (with
//! all its fields, as an OTLP exporter would send them) of the `tresor`
//! crates at TRACE level, into memory, for byte searches such as "no
//! password in any log line or span".

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt;

/// The captured output of this test process (shared by all its tests).
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

struct Sink(Captured);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 .0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Install (once per process) the global subscriber that captures every
/// event and span close of the host and the test helpers, and return the
/// capture. Spans are written when they close, with every field recorded
/// on them.
pub fn capture() -> Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let captured = Captured::default();
            let writer = captured.clone();
            let layer = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_span_events(FmtSpan::CLOSE)
                .with_writer(move || Sink(writer.clone()));
            let filter = Targets::new()
                .with_default(tracing::Level::INFO)
                .with_target("tresor", tracing::Level::TRACE)
                .with_target("tresor_e2e", tracing::Level::TRACE);
            let subscriber = tracing_subscriber::registry().with(layer).with(filter);
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in this test process");
            captured
        })
        .clone()
}
