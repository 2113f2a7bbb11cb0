//! Outbound HTTP for plugins: a small blocking client on top of
//! `wasi:http/outgoing-handler`.
//!
//! A plugin that talks to an upstream (Vault, a cloud secret manager) builds
//! a [`Request`], [`send`]s it and maps the answer with
//! [`Response::error_for_status`]:
//!
//! ```no_run
//! use tresor_plugin_sdk::http::{self, Request};
//! use tresor_plugin_sdk::Error;
//!
//! fn read_raw(token: &str) -> Result<Vec<u8>, Error> {
//!     let response = http::send(
//!         &Request::get("http://127.0.0.1:8200/v1/secret/data/app")
//!             .header("X-Vault-Token", token),
//!     )?;
//!     Ok(response.error_for_status("reading `app` from Vault")?.body)
//! }
//! ```
//!
//! The host only lets a plugin reach the `host:port` authorities its mount
//! lists in `grants.network`; anything else fails with `invalid-input`
//! naming the authority to add. https upstreams are verified by the host
//! (public roots plus the mount's `grants.ca_file`).
//!
//! Errors follow the contract:
//!
//! | what happened                                       | error               |
//! |-----------------------------------------------------|---------------------|
//! | connection refused / reset, timeout, DNS, TLS        | `unavailable`       |
//! | the mount's `grants.network` does not list the host  | `invalid-input`     |
//! | malformed URL, method or header                      | `invalid-input`     |
//! | status 5xx or 429 (via [`status_error`])             | `unavailable`       |
//! | status 401 / 403                                     | `permission-denied` |
//! | status 404                                           | `not-found`         |
//! | status 409 / 412                                     | `conflict`          |
//! | any other 4xx                                        | `invalid-input`     |
//!
//! Idempotent requests (GET, HEAD, PUT, DELETE, OPTIONS, or any request
//! marked with [`Request::idempotent`]) are retried when the upstream cannot
//! be reached or answers 5xx/429: at most [`MAX_ATTEMPTS`] tries, with
//! 100 ms and 300 ms pauses. POST is sent once unless marked idempotent.
//!
//! Messages built here name the method, the URL's authority and path, and
//! the status code; never a header value or a body, which may carry
//! credentials or secret values. Keep secrets out of URLs.

use std::time::Duration;

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasip2::io::streams::StreamError;

use crate::Error;

/// How many times an idempotent request is tried before its last error is
/// returned.
pub const MAX_ATTEMPTS: u32 = 3;

/// The pauses between attempts, in milliseconds.
const BACKOFF_MS: [u64; 2] = [100, 300];

/// Default connect, first-byte and between-bytes timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// The largest response body accepted, in bytes.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// An HTTP request to an upstream, built with [`Request::new`] (or
/// [`get`](Request::get), [`post`](Request::post), ...) and the builder
/// methods.
///
/// Its `Debug` output shows the method, URL and header *names* only.
#[derive(Clone)]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout: Duration,
    idempotent: Option<bool>,
}

impl Request {
    /// A request with `method` (`"GET"`, `"LIST"`, ...) to an absolute
    /// `http://` or `https://` URL. The URL is checked by [`send`].
    pub fn new(method: &str, url: impl Into<String>) -> Request {
        Request {
            method: method.to_owned(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            idempotent: None,
        }
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> Request {
        Request::new("GET", url)
    }

    /// A `POST` request (not retried unless marked [`idempotent`](Request::idempotent)).
    pub fn post(url: impl Into<String>) -> Request {
        Request::new("POST", url)
    }

    /// A `PUT` request.
    pub fn put(url: impl Into<String>) -> Request {
        Request::new("PUT", url)
    }

    /// A `DELETE` request.
    pub fn delete(url: impl Into<String>) -> Request {
        Request::new("DELETE", url)
    }

    /// Adds a header (added again if already present).
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Request {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// Sets a JSON body and `Content-Type: application/json`.
    pub fn json(self, body: impl Into<Vec<u8>>) -> Request {
        self.header("Content-Type", "application/json").body(body)
    }

    /// Sets the connect, first-byte and between-bytes timeouts (default
    /// [`DEFAULT_TIMEOUT`]). Keep them well below the mount's call deadline.
    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.timeout = timeout;
        self
    }

    /// Says whether the request may be sent again after a failure; the
    /// default follows the method (everything but `POST` and `PATCH`).
    pub fn idempotent(mut self, idempotent: bool) -> Request {
        self.idempotent = Some(idempotent);
        self
    }

    /// The method.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The headers, in the order added.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The body.
    pub fn body_bytes(&self) -> &[u8] {
        &self.body
    }

    fn is_idempotent(&self) -> bool {
        self.idempotent
            .unwrap_or(!matches!(self.method.to_ascii_uppercase().as_str(), "POST" | "PATCH"))
    }
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>())
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// An upstream's answer. Any status is a `Response`: check it with
/// [`error_for_status`](Response::error_for_status) or [`status_error`].
///
/// Its `Debug` output shows the status and header names only.
#[derive(Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// True for a 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The response itself for a 2xx status, or the error [`status_error`]
    /// maps its status to; `what` says what was being done (`"reading
    /// `app/db` from Vault"`) and starts the message.
    pub fn error_for_status(self, what: &str) -> Result<Response, Error> {
        match status_error(self.status, what) {
            None => Ok(self),
            Some(e) => Err(e),
        }
    }
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>())
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// The contract error for an HTTP status, or `None` for 1xx–3xx:
/// 5xx and 429 are `unavailable`, 401/403 `permission-denied`, 404
/// `not-found`, 409/412 `conflict`, other 4xx `invalid-input`. The message
/// is `"<what>: the upstream answered <status>"` plus a hint.
pub fn status_error(status: u16, what: &str) -> Option<Error> {
    let answered = format!("{what}: the upstream answered HTTP {status}");
    Some(match status {
        0..=399 => return None,
        429 => Error::unavailable(format!("{answered} (too many requests); retry later")),
        500..=u16::MAX => Error::unavailable(format!("{answered}; retry later")),
        401 | 403 => Error::permission_denied(format!(
            "{answered}: the upstream refused the mount's credentials; check them in the mount's config"
        )),
        404 => Error::not_found(answered),
        409 | 412 => Error::conflict(answered),
        _ => Error::invalid_input(answered),
    })
}

/// True when an answer with this status may succeed if sent again (5xx, 429).
pub fn is_retryable_status(status: u16) -> bool {
    status == 429 || status >= 500
}

/// Sends `request` and reads the whole response, whatever its status.
///
/// Idempotent requests are retried (at most [`MAX_ATTEMPTS`] tries within
/// about half a second of pauses) when the upstream cannot be reached or
/// answers 5xx/429; the last answer or error is returned. Transport
/// failures become contract errors (see the [module docs](self)).
pub fn send(request: &Request) -> Result<Response, Error> {
    let target = Target::parse(&request.url)?;
    let attempts = if request.is_idempotent() { MAX_ATTEMPTS } else { 1 };
    let mut attempt = 0;
    loop {
        let outcome = send_once(request, &target);
        attempt += 1;
        let retry = match &outcome {
            Ok(response) => is_retryable_status(response.status),
            Err(Failure::Unreachable(_)) => true,
            Err(Failure::Final(_)) => false,
        };
        if !retry || attempt >= attempts {
            return outcome.map_err(Failure::into_error);
        }
        let pause = BACKOFF_MS[(attempt as usize - 1).min(BACKOFF_MS.len() - 1)];
        wasip2::clocks::monotonic_clock::subscribe_duration(pause * 1_000_000).block();
    }
}

/// Why one attempt failed: worth another try, or not.
enum Failure {
    Unreachable(Error),
    Final(Error),
}

impl Failure {
    fn into_error(self) -> Error {
        match self {
            Failure::Unreachable(e) | Failure::Final(e) => e,
        }
    }
}

/// The parts of a URL wasi:http wants.
#[derive(Debug, PartialEq)]
struct Target {
    https: bool,
    authority: String,
    path_with_query: String,
    /// `host:port` with the scheme's default port filled in: what the
    /// mount's `grants.network` must list.
    host_port: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, Error> {
        let bad = |why: &str| Error::invalid_input(format!("invalid upstream URL `{url}`: {why}"));
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad("it must start with http:// or https://"));
        };
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.is_empty() || authority.contains('@') || authority.chars().any(char::is_whitespace) {
            return Err(bad("it needs a host (and optional port), without user info"));
        }
        let path_with_query = match path {
            "" => "/".to_owned(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_owned(),
        };
        let has_port = match authority.rfind(':') {
            Some(i) => !authority[i..].contains(']'),
            None => false,
        };
        let host_port = if has_port {
            authority.to_owned()
        } else {
            format!("{authority}:{}", if https { 443 } else { 80 })
        };
        Ok(Target {
            https,
            authority: authority.to_owned(),
            path_with_query,
            host_port,
        })
    }

    /// `METHOD https://authority/path`, for messages (no query: it might
    /// carry tokens some APIs accept there).
    fn describe(&self, method: &str) -> String {
        let path = self.path_with_query.split('?').next().unwrap_or("/");
        let scheme = if self.https { "https" } else { "http" };
        format!("{method} {scheme}://{}{path}", self.authority)
    }
}

fn wasi_method(method: &str) -> Method {
    match method.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "OPTIONS" => Method::Options,
        "PATCH" => Method::Patch,
        "TRACE" => Method::Trace,
        "CONNECT" => Method::Connect,
        other => Method::Other(other.to_owned()),
    }
}

fn send_once(request: &Request, target: &Target) -> Result<Response, Failure> {
    let what = target.describe(&request.method);
    let invalid = |why: String| Failure::Final(Error::invalid_input(format!("{what}: {why}")));

    let headers = Fields::new();
    for (name, value) in &request.headers {
        headers
            .append(name, value.as_bytes())
            .map_err(|e| invalid(format!("header `{name}` cannot be sent ({e:?})")))?;
    }
    if !request.body.is_empty() || matches!(request.method.to_ascii_uppercase().as_str(), "POST" | "PUT" | "PATCH") {
        headers
            .set("content-length", &[request.body.len().to_string().into_bytes()])
            .map_err(|e| invalid(format!("content-length cannot be set ({e:?})")))?;
    }
    let outgoing = OutgoingRequest::new(headers);
    outgoing
        .set_method(&wasi_method(&request.method))
        .map_err(|()| invalid(format!("method `{}` is not valid", request.method)))?;
    outgoing
        .set_scheme(Some(if target.https { &Scheme::Https } else { &Scheme::Http }))
        .map_err(|()| invalid("the scheme is not valid".into()))?;
    outgoing
        .set_authority(Some(&target.authority))
        .map_err(|()| invalid("the host is not valid".into()))?;
    outgoing
        .set_path_with_query(Some(&target.path_with_query))
        .map_err(|()| invalid("the path is not valid".into()))?;

    let options = RequestOptions::new();
    let nanos = u64::try_from(request.timeout.as_nanos()).unwrap_or(u64::MAX);
    // A host may refuse to honour a timeout; the call deadline still applies.
    let _ = options.set_connect_timeout(Some(nanos));
    let _ = options.set_first_byte_timeout(Some(nanos));
    let _ = options.set_between_bytes_timeout(Some(nanos));

    let body = outgoing
        .body()
        .map_err(|()| Failure::Final(Error::internal(format!("{what}: the request body was already taken"))))?;
    let pending = outgoing_handler::handle(outgoing, Some(options)).map_err(|e| transport_failure(&what, target, e))?;
    let written = write_body(body, &request.body, &what);

    pending.subscribe().block();
    let answer = pending.get();
    // A request refused or failed before its body was taken: the answer
    // says why, which is more useful than the closed body stream.
    if let Err(body_failure) = written {
        return Err(match answer {
            Some(Ok(Err(code))) => transport_failure(&what, target, code),
            _ => body_failure,
        });
    }
    let response = match answer {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(transport_failure(&what, target, code)),
        Some(Err(())) | None => {
            return Err(Failure::Final(Error::internal(format!(
                "{what}: the host lost the response"
            ))))
        }
    };

    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), String::from_utf8_lossy(&value).into_owned()))
        .collect();
    let incoming = response
        .consume()
        .map_err(|()| Failure::Final(Error::internal(format!("{what}: the response body was already taken"))))?;
    let body = read_body(incoming, &what, target)?;
    Ok(Response { status, headers, body })
}

fn write_body(body: OutgoingBody, bytes: &[u8], what: &str) -> Result<(), Failure> {
    let failed =
        |why: String| Failure::Unreachable(Error::unavailable(format!("{what}: sending the body failed ({why})")));
    {
        let stream = body
            .write()
            .map_err(|()| Failure::Final(Error::internal(format!("{what}: the body stream was already taken"))))?;
        // `blocking-write-and-flush` takes at most 4096 bytes at a time.
        for chunk in bytes.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| failed(stream_error(e)))?;
        }
    }
    OutgoingBody::finish(body, None).map_err(|e| failed(format!("{e:?}")))
}

fn read_body(body: IncomingBody, what: &str, target: &Target) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::new();
    {
        let stream = body.stream().map_err(|()| {
            Failure::Final(Error::internal(format!(
                "{what}: the response stream was already taken"
            )))
        })?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => {
                    out.extend_from_slice(&chunk);
                    if out.len() > MAX_RESPONSE_BYTES {
                        return Err(Failure::Final(Error::unavailable(format!(
                            "{what}: the answer is larger than {MAX_RESPONSE_BYTES} bytes"
                        ))));
                    }
                }
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    // The host reports a broken response body through the
                    // stream error; map it like any transport failure.
                    let code = wasip2::http::types::http_error_code(&e);
                    return Err(match code {
                        Some(code) => transport_failure(what, target, code),
                        None => Failure::Unreachable(Error::unavailable(format!(
                            "{what}: reading the answer failed ({})",
                            e.to_debug_string()
                        ))),
                    });
                }
            }
        }
    }
    // Trailers are not used; dropping the future is fine.
    drop(IncomingBody::finish(body));
    Ok(out)
}

fn stream_error(e: StreamError) -> String {
    match e {
        StreamError::Closed => "the connection was closed".into(),
        StreamError::LastOperationFailed(e) => e.to_debug_string(),
    }
}

/// Maps a wasi:http error code to a contract error.
fn transport_failure(what: &str, target: &Target, code: ErrorCode) -> Failure {
    let host = &target.host_port;
    let unreachable = |why: &str| Failure::Unreachable(Error::unavailable(format!("{what}: {why}")));
    match code {
        ErrorCode::HttpRequestDenied => Failure::Final(Error::invalid_input(format!(
            "the mount does not grant network access to {host}; add it to the mount's grants.network"
        ))),
        ErrorCode::DnsTimeout | ErrorCode::DnsError(_) | ErrorCode::DestinationNotFound => {
            unreachable(&format!("cannot resolve the host of {host}"))
        }
        ErrorCode::ConnectionRefused => {
            unreachable(&format!("{host} refused the connection; is the upstream running?"))
        }
        ErrorCode::ConnectionTimeout => unreachable(&format!("connecting to {host} timed out")),
        ErrorCode::ConnectionReadTimeout | ErrorCode::ConnectionWriteTimeout | ErrorCode::HttpResponseTimeout => {
            unreachable(&format!("{host} did not answer in time"))
        }
        ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpProhibited
        | ErrorCode::DestinationIpUnroutable
        | ErrorCode::ConnectionTerminated
        | ErrorCode::ConnectionLimitReached
        | ErrorCode::HttpResponseIncomplete => unreachable(&format!("the connection to {host} failed ({code:?})")),
        ErrorCode::TlsCertificateError => Failure::Final(Error::unavailable(format!(
            "{what}: the TLS certificate of {host} is not trusted; if it is signed by a private CA, \
             set the mount's grants.ca_file"
        ))),
        ErrorCode::TlsProtocolError | ErrorCode::TlsAlertReceived(_) => Failure::Final(Error::unavailable(format!(
            "{what}: the TLS handshake with {host} failed ({code:?})"
        ))),
        ErrorCode::HttpRequestMethodInvalid
        | ErrorCode::HttpRequestUriInvalid
        | ErrorCode::HttpRequestUriTooLong
        | ErrorCode::HttpRequestLengthRequired
        | ErrorCode::HttpRequestBodySize(_)
        | ErrorCode::HttpRequestHeaderSectionSize(_)
        | ErrorCode::HttpRequestHeaderSize(_)
        | ErrorCode::HttpRequestTrailerSectionSize(_)
        | ErrorCode::HttpRequestTrailerSize(_) => Failure::Final(Error::invalid_input(format!(
            "{what}: the host refused the request ({code:?})"
        ))),
        other => Failure::Final(Error::unavailable(format!("{what}: the request failed ({other:?})"))),
    }
}

/// Where an upstream's OAuth bearer tokens come from: a fixed token, or one
/// fetched from a token endpoint and cached (see the gcp and azure plugins).
pub trait BearerAuth {
    /// The token to send now (fetching a fresh one when needed).
    fn bearer(&mut self) -> Result<String, Error>;
    /// Whether a refused token can be replaced by a fresh one.
    fn can_refresh(&self) -> bool;
    /// Forget the cached token: the upstream refused it.
    fn invalidate(&mut self);
}

/// Send `request` with `Authorization: Bearer <token>` from `auth`. When the
/// upstream refuses the token (401) and `auth` can fetch a new one, the
/// request is sent once more with a fresh token.
pub fn send_with_bearer(auth: &mut dyn BearerAuth, request: &Request) -> Result<Response, Error> {
    let signed = |auth: &mut dyn BearerAuth| -> Result<Request, Error> {
        Ok(request
            .clone()
            .header("Authorization", format!("Bearer {}", auth.bearer()?)))
    };
    let response = send(&signed(auth)?)?;
    if response.status == 401 && auth.can_refresh() {
        auth.invalidate();
        return send(&signed(auth)?);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let t = Target::parse("http://127.0.0.1:8200/v1/secret/data/a?version=2").ok();
        assert_eq!(
            t,
            Some(Target {
                https: false,
                authority: "127.0.0.1:8200".into(),
                path_with_query: "/v1/secret/data/a?version=2".into(),
                host_port: "127.0.0.1:8200".into(),
            })
        );
        let t = Target::parse("https://secretsmanager.eu-west-1.amazonaws.com").ok();
        assert_eq!(
            t.as_ref().map(|t| t.host_port.as_str()),
            Some("secretsmanager.eu-west-1.amazonaws.com:443")
        );
        assert_eq!(t.as_ref().map(|t| t.path_with_query.as_str()), Some("/"));
        let t = Target::parse("http://[::1]/x?q").ok();
        assert_eq!(t.as_ref().map(|t| t.host_port.as_str()), Some("[::1]:80"));
        let t = Target::parse("http://[::1]:99?q").ok();
        assert_eq!(t.as_ref().map(|t| t.path_with_query.as_str()), Some("/?q"));
        assert_eq!(t.as_ref().map(|t| t.host_port.as_str()), Some("[::1]:99"));
        for bad in ["ftp://x", "x:80", "http://", "http://user:pw@h/", "http://a b/"] {
            assert!(matches!(Target::parse(bad), Err(Error::InvalidInput(_))), "{bad}");
        }
    }

    #[test]
    fn describe_hides_the_query() {
        let t = Target::parse("https://h:1/p/q?token=abc").ok();
        assert_eq!(t.map(|t| t.describe("GET")), Some("GET https://h:1/p/q".to_string()));
    }

    #[test]
    fn maps_statuses() {
        assert!(status_error(200, "x").is_none());
        assert!(status_error(204, "x").is_none());
        assert!(matches!(status_error(500, "x"), Some(Error::Unavailable(_))));
        assert!(matches!(status_error(503, "x"), Some(Error::Unavailable(_))));
        assert!(matches!(status_error(429, "x"), Some(Error::Unavailable(_))));
        assert!(matches!(status_error(401, "x"), Some(Error::PermissionDenied(_))));
        assert!(matches!(status_error(403, "x"), Some(Error::PermissionDenied(_))));
        assert!(matches!(status_error(404, "x"), Some(Error::NotFound(_))));
        assert!(matches!(status_error(409, "x"), Some(Error::Conflict(_))));
        assert!(matches!(status_error(412, "x"), Some(Error::Conflict(_))));
        assert!(matches!(status_error(400, "x"), Some(Error::InvalidInput(_))));
        assert!(matches!(status_error(422, "x"), Some(Error::InvalidInput(_))));
        let message = status_error(404, "reading `a` from Vault").map(|e| e.message().to_owned());
        assert_eq!(
            message.as_deref(),
            Some("reading `a` from Vault: the upstream answered HTTP 404")
        );
    }

    #[test]
    fn denied_names_the_authority_to_grant() {
        let target = Target::parse("https://vault.example:8200/v1/x").ok();
        let message = target.map(|t| transport_failure("GET x", &t, ErrorCode::HttpRequestDenied).into_error());
        assert!(matches!(
            message,
            Some(Error::InvalidInput(m)) if m == "the mount does not grant network access to vault.example:8200; add it to the mount's grants.network"
        ));
        let target = Target::parse("http://h/").ok();
        assert!(matches!(
            target.map(|t| transport_failure("GET x", &t, ErrorCode::ConnectionRefused)),
            Some(Failure::Unreachable(Error::Unavailable(_)))
        ));
    }

    #[test]
    fn idempotency_follows_the_method() {
        assert!(Request::get("http://h/").is_idempotent());
        assert!(Request::put("http://h/").is_idempotent());
        assert!(Request::new("LIST", "http://h/").is_idempotent());
        assert!(!Request::post("http://h/").is_idempotent());
        assert!(Request::post("http://h/").idempotent(true).is_idempotent());
    }

    #[test]
    fn debug_hides_header_values_and_bodies() {
        let r = Request::post("http://h/")
            .header("Authorization", "Bearer s3cr3t")
            .body("hunter2");
        let shown = format!("{r:?}");
        assert!(shown.contains("Authorization"));
        assert!(!shown.contains("s3cr3t") && !shown.contains("hunter2"));
        let resp = Response {
            status: 200,
            headers: vec![("x-token".into(), "s3cr3t".into())],
            body: b"hunter2".to_vec(),
        };
        let shown = format!("{resp:?}");
        assert!(!shown.contains("s3cr3t") && !shown.contains("hunter2"));
        assert_eq!(resp.header("X-Token"), Some("s3cr3t"));
    }
}
