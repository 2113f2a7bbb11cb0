//! Webhooks: change events POSTed to HTTP endpoints, at least once.
//!
//! An event under a webhook's prefix is written to the **outbox** in the
//! host state store before the operation that caused it answers, so a host
//! that stops (even by SIGKILL) loses none. A delivery task — one host at a
//! time among hosts sharing a state store, the one that leads
//! [`DELIVERY_JOB`] — POSTs each queued event and forgets it when the
//! endpoint answers 2xx; any other answer, a refused connection or a
//! timeout is retried with doubling waits, up to the webhook's longest wait,
//! until it succeeds. An event may so arrive more than once: its `id`
//! (also in the `X-Tresor-Event-Id` header) tells repeats apart.
//!
//! Each body is the event's CloudEvents JSON (never a secret value), signed
//! with the webhook's key: `X-Tresor-Signature: sha256=<hex HMAC-SHA256 of
//! the body>`. A receiver checks it like this (Python):
//!
//! ```text
//! expected = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
//! ok = hmac.compare_digest(expected, request.headers["X-Tresor-Signature"])
//! ```

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use ring::hmac;
use tokio::sync::Notify;

use super::Event;
use crate::config::WebhookConfig;
use crate::error::StartupError;
use crate::lease::now_ms;
use crate::state::{OutboxRecord, StateError, StateStore};

/// The singleton job that delivers webhooks, among hosts sharing a state store.
pub const DELIVERY_JOB: &str = "webhook-delivery";

/// The header carrying the body's signature.
pub const SIGNATURE_HEADER: &str = "x-tresor-signature";

/// Deliveries attempted per pass at most (the next pass takes the rest).
const BATCH: usize = 64;

/// How often the delivery task looks for due retries when nothing wakes it.
const IDLE_POLL: Duration = Duration::from_millis(250);

/// One configured webhook.
struct Target {
    name: String,
    prefix: String,
    url: Uri,
    key: hmac::Key,
    tls: Option<tokio_rustls::TlsConnector>,
    timeout: Duration,
    retry_initial: Duration,
    retry_max: Duration,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("name", &self.name)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// The host's webhooks and their outbox.
#[derive(Debug)]
pub(crate) struct Webhooks {
    targets: Vec<Target>,
    state: StateStore,
    wake: Notify,
}

impl Webhooks {
    /// The webhooks `configs` describe (keys read, TLS set up), queuing in `state`.
    pub(crate) fn new(configs: &[WebhookConfig], state: StateStore) -> Result<Webhooks, StartupError> {
        let targets = configs.iter().map(target).collect::<Result<_, _>>()?;
        Ok(Webhooks {
            targets,
            state,
            wake: Notify::new(),
        })
    }

    /// Queue `event` durably for every webhook whose prefix it is under;
    /// returns once the rows are committed (nothing to do without webhooks).
    pub(crate) async fn enqueue(&self, event: &Event) -> Result<(), StateError> {
        let path = format!("{}/{}", event.mount, event.path);
        let mut rows = Vec::new();
        let now = now_ms();
        for t in self.targets.iter().filter(|t| path.starts_with(&t.prefix)) {
            rows.push(OutboxRecord {
                id: format!("{}/{}", t.name, event.id),
                webhook: t.name.clone(),
                body: event.envelope().to_string(),
                created_ms: now,
                attempts: 0,
                next_attempt_ms: now,
                last_error: None,
            });
        }
        if rows.is_empty() {
            return Ok(());
        }
        self.state.outbox_push(&rows).await?;
        self.wake.notify_one();
        Ok(())
    }

    /// The webhooks' names.
    pub(crate) fn names(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.name.clone()).collect()
    }

    /// POST `event` to the webhook `name` once, now; `Ok` on 2xx.
    pub(crate) async fn check(&self, name: &str, event: &Event) -> Result<(), String> {
        let target = self
            .targets
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| format!("no webhook is named `{name}`"))?;
        post(target, &event.envelope().to_string(), &event.id, 1).await
    }

    /// Start the delivery task on the current tokio runtime; it ends when
    /// the host drops its webhooks.
    pub(crate) fn start(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        if self.targets.is_empty() {
            return None;
        }
        let me: Weak<Webhooks> = Arc::downgrade(self);
        Some(tokio::spawn(async move {
            loop {
                let Some(hooks) = me.upgrade() else { return };
                match hooks.state.lead(DELIVERY_JOB).await {
                    Ok(true) => hooks.deliver_due().await,
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "webhooks: cannot reach the state store; retrying"),
                }
                // Wait for a new event or the next poll, without keeping the
                // webhooks alive meanwhile.
                let woken = {
                    let hooks = hooks.clone();
                    async move { hooks.wake.notified().await }
                };
                drop(hooks);
                let _ = tokio::time::timeout(IDLE_POLL, woken).await;
            }
        }))
    }

    /// One pass: try every delivery that is due.
    async fn deliver_due(&self) {
        let due = match self.state.outbox_due(now_ms(), BATCH).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "webhooks: cannot read the outbox; retrying");
                return;
            }
        };
        for row in due {
            let Some(target) = self.targets.iter().find(|t| t.name == row.webhook) else {
                // Its webhook was removed from the configuration.
                tracing::warn!(webhook = %row.webhook, event = %row.id,
                    "an event queued for a webhook that is no longer configured is dropped");
                let _ = self.state.outbox_delete(&row.id).await;
                continue;
            };
            let event_id = row.id.split_once('/').map_or(row.id.as_str(), |(_, id)| id);
            let result = post(target, &row.body, event_id, row.attempts + 1).await;
            let recorded = match &result {
                Ok(()) => self.state.outbox_delete(&row.id).await,
                Err(why) => {
                    let attempts = row.attempts.saturating_add(1);
                    let wait = crate::retry::backoff(attempts, target.retry_initial, target.retry_max);
                    tracing::warn!(webhook = %target.name, event = %row.id, attempt = attempts,
                        retry_in_ms = wait.as_millis() as u64, error = %why, "webhook delivery failed; it will be retried");
                    self.state
                        .outbox_retry(&row.id, attempts, now_ms() + wait.as_millis() as u64, why)
                        .await
                }
            };
            if let Err(e) = recorded {
                tracing::warn!(error = %e, "webhooks: cannot update the outbox; the delivery may repeat");
            }
        }
    }
}

/// A configured webhook, ready to POST.
fn target(c: &WebhookConfig) -> Result<Target, StartupError> {
    let bad = |m: String| StartupError::Config(format!("webhook `{}`: {m}", c.name));
    let url: Uri = c.url.parse().map_err(|e| bad(format!("`url` is not a URL: {e}")))?;
    let tls = match url.scheme_str() {
        Some("https") => Some(tls_connector(c).map_err(bad)?),
        _ => None,
    };
    let key = c.key()?;
    Ok(Target {
        name: c.name.clone(),
        prefix: c.prefix.trim_start_matches('/').to_string(),
        url,
        key: hmac::Key::new(hmac::HMAC_SHA256, &key),
        tls,
        timeout: Duration::from_millis(c.timeout_ms),
        retry_initial: Duration::from_millis(c.retry_initial_ms),
        retry_max: Duration::from_millis(c.retry_max_ms),
    })
}

/// TLS to an https webhook: its `ca_file`, else the public web roots.
fn tls_connector(c: &WebhookConfig) -> Result<tokio_rustls::TlsConnector, String> {
    let mut roots = rustls::RootCertStore::empty();
    match &c.ca_file {
        Some(path) => {
            for cert in crate::api::read_certs(path)? {
                roots.add(cert).map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// The signature header's value for `body`.
pub fn signature(key: &hmac::Key, body: &[u8]) -> String {
    format!("sha256={}", hex::encode(hmac::sign(key, body).as_ref()))
}

/// POST one event's `body` (delivery `attempt`, from 1); `Err` says why it
/// did not arrive (no value in it).
async fn post(t: &Target, body: &str, event_id: &str, attempt: u32) -> Result<(), String> {
    match tokio::time::timeout(t.timeout, exchange(t, body, event_id, attempt)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {} ms", t.timeout.as_millis())),
    }
}

async fn exchange(t: &Target, body: &str, event_id: &str, attempt: u32) -> Result<(), String> {
    let host = t.url.host().unwrap_or_default().trim_matches(['[', ']']);
    let port = t.url.port_u16().unwrap_or(if t.tls.is_some() { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    let authority = t.url.authority().map(|a| a.as_str().to_string()).unwrap_or_default();
    let request = Request::post(t.url.path_and_query().map_or("/", |p| p.as_str()))
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::USER_AGENT, concat!("tresor/", env!("CARGO_PKG_VERSION")))
        .header("x-tresor-webhook", t.name.as_str())
        .header("x-tresor-event-id", event_id)
        .header("x-tresor-delivery-attempt", attempt.to_string())
        .header(SIGNATURE_HEADER, signature(&t.key, body.as_bytes()))
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let status = match &t.tls {
        Some(tls) => {
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(|e| format!("`{host}` is not a TLS server name: {e}"))?;
            let stream = tls
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {host}:{port} failed: {e}"))?;
            send(stream, request).await?
        }
        None => send(tcp, request).await?,
    };
    match status.is_success() {
        true => Ok(()),
        false => Err(format!("the endpoint answered HTTP {}", status.as_u16())),
    }
}

async fn send<IO>(io: IO, request: Request<Full<Bytes>>) -> Result<hyper::StatusCode, String>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("the HTTP handshake failed: {e}"))?;
    let driver = tokio::spawn(conn);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("the request failed: {e}"))?;
    let status = response.status();
    // Read (and drop) the answer so the exchange completes.
    let _ = response.into_body().collect().await;
    driver.abort();
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hex_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        assert_eq!(
            signature(&key, b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
