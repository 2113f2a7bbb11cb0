//! The `tracing` span that follows one access (exported over OTLP when
//! [`init_telemetry`](super::init_telemetry) installed the OpenTelemetry layer).

use tracing::field::Empty;

use super::AuditEvent;

/// Name of the span every access produces.
pub const ACCESS_SPAN_NAME: &str = "tresor.access";

/// Outcomes that are not failures of the host: the span status stays unset.
const NON_ERROR_OUTCOMES: &[&str] = &["ok", "not-found", "denied"];

/// The span for one access. Create it when the access starts, record the
/// decision and outcome as they become known; the span ends when the
/// `AccessSpan` (and every clone of [`span`](Self::span)) is dropped.
///
/// It carries names (principal, mount, path, policy ids), never a secret value.
#[derive(Debug, Clone)]
pub struct AccessSpan {
    span: tracing::Span,
}

impl AccessSpan {
    /// Open the span for one access, named after its audit record (who,
    /// what, where, through which front door).
    pub fn start(record: &AuditEvent) -> Self {
        let span = tracing::info_span!(
            "tresor.access",
            "otel.kind" = "server",
            "tresor.request_id" = record.request_id.as_str(),
            "tresor.principal" = record.principal.as_str(),
            "tresor.action" = record.action.as_str(),
            "tresor.mount" = record.mount.as_str(),
            "tresor.path" = record.path.as_str(),
            "tresor.plugin" = record.plugin.as_str(),
            "tresor.source" = record.source.as_str(),
            "tresor.front_door" = record.front_door.as_str(),
            "tresor.lease_id" = record.lease_id.as_deref().unwrap_or_default(),
            "tresor.decision" = Empty,
            "tresor.policies" = Empty,
            "tresor.outcome" = Empty,
            "tresor.latency_us" = Empty,
            "otel.status_code" = Empty,
            "otel.status_description" = Empty,
        );
        AccessSpan { span }
    }

    /// Record the lease an access created or is about.
    pub fn lease(&self, lease_id: &str) {
        self.span.record("tresor.lease_id", lease_id);
    }

    /// Record the authorization decision and the ids of the determining
    /// policies (comma-separated in the `tresor.policies` attribute).
    pub fn decision(&self, allowed: bool, policies: &[String]) {
        self.span
            .record("tresor.decision", if allowed { "allow" } else { "deny" });
        self.span.record("tresor.policies", policies.join(",").as_str());
    }

    /// Record how the access ended: "ok", "denied" or an error kind
    /// ("not-found", "plugin-timeout", ...). Errors other than "not-found"
    /// (and "denied", which is a decision, not a failure) set the span
    /// status to ERROR with the outcome as its description.
    pub fn outcome(&self, outcome: &str, latency_us: u64) {
        self.span.record("tresor.outcome", outcome);
        // u64 would be exported as a string; OTLP integers are i64.
        self.span
            .record("tresor.latency_us", i64::try_from(latency_us).unwrap_or(i64::MAX));
        if !NON_ERROR_OUTCOMES.contains(&outcome) {
            self.span.record("otel.status_code", "ERROR");
            self.span.record("otel.status_description", outcome);
        }
    }

    /// The underlying span, e.g. to `.instrument(access.span().clone())` the
    /// plugin call so its events and child spans nest under the access.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }
}
