//! How a signed request reaches AWS: one small trait, so the calls to IAM
//! and STS can run over the SDK's `wasi:http` client inside the host
//! ([`WasiHttp`]) and over any blocking HTTP client in native tests.

use std::time::Duration;

use tresor_plugin_sdk::http::{self, Request};
use tresor_plugin_sdk::Error;
use zeroize::Zeroizing;

/// One signed `POST` to an AWS Query endpoint.
///
/// Its `Debug` output shows the URL and header names only (the headers
/// carry the signature and the mount's session token).
pub struct HttpRequest {
    /// The endpoint, `https://iam.amazonaws.com` or a stand-in.
    pub url: String,
    /// The headers to send (`Authorization`, `X-Amz-Date`, ...), `Host`
    /// excepted: it is the URL's authority, which the signature covers.
    pub headers: Vec<(String, String)>,
    /// The form-encoded body (`Action=...&Version=...`).
    pub body: Vec<u8>,
    /// The connect and first-byte timeout.
    pub timeout: Duration,
}

impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRequest")
            .field("url", &self.url)
            .field("headers", &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>())
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// AWS's answer: any status, and the whole body (wiped when dropped: it
/// may hold a new secret key or session token).
pub struct HttpResponse {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: Zeroizing<Vec<u8>>,
}

/// Sends one request and returns the answer, whatever its status.
///
/// Failures to get an answer at all are contract errors: `unavailable`
/// when the endpoint could not be reached (the client retries those for
/// idempotent calls), `invalid-input` when the mount does not grant the
/// endpoint. Implementations must not retry on their own: the client
/// decides what may be sent twice.
pub trait Transport {
    /// Sends `request`.
    fn send(&mut self, request: &HttpRequest) -> Result<HttpResponse, Error>;
}

/// The transport inside the host: the SDK's client over
/// `wasi:http/outgoing-handler` (the mount must list the endpoints'
/// `host:port` in `grants.network`).
pub struct WasiHttp;

impl Transport for WasiHttp {
    fn send(&mut self, request: &HttpRequest) -> Result<HttpResponse, Error> {
        let mut outgoing = Request::post(&request.url)
            .timeout(request.timeout)
            // The client retries what is safe to retry; the SDK must not
            // send a CreateAccessKey twice.
            .idempotent(false);
        for (name, value) in &request.headers {
            outgoing = outgoing.header(name, value.as_str());
        }
        let response = http::send(&outgoing.body(request.body.clone()))?;
        Ok(HttpResponse {
            status: response.status,
            body: Zeroizing::new(response.body),
        })
    }
}
