//! The transport of [`crate::client`]: requests to the Tresor
//! (Vault-compatible) HTTP API on hyper's HTTP/1.1 client, for the library
//! and the `tresor` client commands.
//!
//! Where it connects and as whom comes from the environment, the Tresor
//! name winning over Vault's: `TRESOR_ADDR`/`VAULT_ADDR` (default
//! `http://127.0.0.1:8200`), `TRESOR_TOKEN`/`VAULT_TOKEN`, and for https
//! `TRESOR_CACERT`/`VAULT_CACERT` (the server's CA, PEM) and
//! `TRESOR_CLIENT_CERT`/`VAULT_CLIENT_CERT` + `TRESOR_CLIENT_KEY`/`VAULT_CLIENT_KEY`
//! (a client certificate for mutual TLS).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::PrivateKeyDer;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use zeroize::Zeroizing;

/// How long one request may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// An environment variable, Tresor's name first.
fn env(tresor: &str, vault: &str) -> Option<String> {
    [tresor, vault]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
}

/// Where the server is and how to reach it.
#[derive(Clone)]
pub struct Client {
    https: bool,
    host: String,
    port: u16,
    token: Option<Zeroizing<String>>,
    tls: Option<TlsConnector>,
}

/// Why a request to the server failed. Each variant's message says what to
/// do next; none ever holds a secret value (only paths, addresses and the
/// server's error messages, which never carry values either).
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The client's own settings are unusable (`TRESOR_ADDR`, the CA or
    /// client certificate files): fix the environment and retry.
    Config(String),
    /// A path that is not `<mount>/<path>`.
    InvalidPath(String),
    /// Nothing answered at the address (connection refused, no route).
    Unreachable {
        /// `http://host:port` of the server.
        addr: String,
        /// What the operating system said.
        reason: String,
    },
    /// The server took longer than the client waits for an answer.
    Timeout {
        /// `http://host:port` of the server.
        addr: String,
        /// How long the client waited.
        after: Duration,
    },
    /// The TLS handshake failed (an unknown CA, a name mismatch, a refused
    /// client certificate).
    Tls {
        /// `https://host:port` of the server.
        addr: String,
        /// What rustls said.
        reason: String,
    },
    /// The connection broke during the exchange.
    Transport(String),
    /// No secret (or lease, or version) at that path.
    NotFound {
        /// The path asked for.
        path: String,
    },
    /// The server refused the token (403): it is missing, expired or
    /// revoked, or a policy does not allow this action on this path.
    Denied {
        /// The server's error messages.
        messages: Vec<String>,
    },
    /// Any other answer that is not a success.
    Api {
        /// The HTTP status.
        status: u16,
        /// The server's error messages.
        messages: Vec<String>,
    },
    /// The server answered something that is not what the API promises.
    InvalidAnswer(String),
}

impl ClientError {
    /// The HTTP status of an answer from the server, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::NotFound { .. } => Some(404),
            ClientError::Denied { .. } => Some(403),
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the request may succeed if tried again unchanged (the server
    /// was unreachable, slow, or answered 5xx/429).
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Unreachable { .. } | ClientError::Timeout { .. } | ClientError::Transport(_) => true,
            ClientError::Api { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let joined = |m: &[String], status: &str| {
            if m.is_empty() {
                status.to_string()
            } else {
                m.join("; ")
            }
        };
        match self {
            ClientError::Config(m) | ClientError::InvalidPath(m) | ClientError::Transport(m) => f.write_str(m),
            ClientError::Unreachable { addr, reason } => write!(
                f,
                "cannot reach the server at {addr}: {reason}; is it running, and is TRESOR_ADDR right?"
            ),
            ClientError::Timeout { addr, after } => write!(f, "no answer from {addr} within {after:?}"),
            ClientError::Tls { addr, reason } => write!(
                f,
                "TLS with {addr} failed: {reason}; check TRESOR_CACERT (and the client certificate)"
            ),
            ClientError::NotFound { path } => write!(f, "no secret at {path}"),
            ClientError::Denied { messages } => write!(
                f,
                "{} (403): check the token (TRESOR_TOKEN) and the policies that cover this path",
                joined(messages, "permission denied")
            ),
            ClientError::Api { status, messages } => {
                let reason = hyper::StatusCode::from_u16(*status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("error")
                    .to_lowercase();
                write!(f, "{} ({status})", joined(messages, &reason))
            }
            ClientError::InvalidAnswer(m) => write!(f, "the server answered something unexpected: {m}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl Client {
    /// A client configured from the environment.
    pub fn from_env() -> Result<Client, ClientError> {
        let addr = env("TRESOR_ADDR", "VAULT_ADDR").unwrap_or_else(|| "http://127.0.0.1:8200".into());
        let token = env("TRESOR_TOKEN", "VAULT_TOKEN").map(Zeroizing::new);
        Client::with(&addr, token)
    }

    /// A client of the server at `addr` (`http://host:port`, or `https://`
    /// with the CA from `TRESOR_CACERT`) authenticating with `token`.
    pub fn new(addr: &str, token: &str) -> Result<Client, ClientError> {
        Client::with(addr, Some(Zeroizing::new(token.to_string())))
    }

    fn with(addr: &str, token: Option<Zeroizing<String>>) -> Result<Client, ClientError> {
        let addr = addr.to_string();
        let uri: hyper::Uri = addr.parse().map_err(|_| {
            ClientError::Config(format!("TRESOR_ADDR `{addr}` is not a URL like http://127.0.0.1:8200"))
        })?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(ClientError::Config(format!(
                    "TRESOR_ADDR `{addr}` must start with http:// or https://"
                )))
            }
        };
        let host = uri
            .host()
            .ok_or_else(|| ClientError::Config(format!("TRESOR_ADDR `{addr}` has no host")))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = if https { Some(tls_connector()?) } else { None };
        Ok(Client {
            https,
            host,
            port,
            token,
            tls,
        })
    }

    /// Send one request; returns the status and the (zeroizing) body.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<(StatusCode, Zeroizing<Vec<u8>>), ClientError> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.send_inner(method, path, body))
            .await
            .map_err(|_| ClientError::Timeout {
                addr: self.base(),
                after: REQUEST_TIMEOUT,
            })?
    }

    fn base(&self) -> String {
        format!(
            "{}://{}:{}",
            if self.https { "https" } else { "http" },
            self.host,
            self.port
        )
    }

    async fn send_inner(
        &self,
        method: &str,
        path: &str,
        body: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<(StatusCode, Zeroizing<Vec<u8>>), ClientError> {
        let method = Method::from_bytes(method.as_bytes()).map_err(|e| ClientError::Config(e.to_string()))?;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, format!("{}:{}", self.host, self.port))
            .header("X-Vault-Request", "true");
        if let Some(token) = &self.token {
            req = req.header("X-Vault-Token", token.as_str());
        }
        let body = match body {
            Some(b) => {
                req = req.header(CONTENT_TYPE, "application/json");
                Bytes::from_owner(b)
            }
            None => Bytes::new(),
        };
        let req = req
            .body(Full::new(body))
            .map_err(|e| ClientError::InvalidPath(format!("`{path}` cannot be sent: {e}")))?;
        exchange(self.connect().await?, req).await
    }

    /// A connection to the server: TCP, then TLS for https.
    pub(super) async fn connect(&self) -> Result<Connection, ClientError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| ClientError::Unreachable {
                addr: self.base(),
                reason: e.to_string(),
            })?;
        let Some(connector) = &self.tls else {
            return Ok(Connection::Plain(tcp));
        };
        let name = ServerName::try_from(self.host.clone())
            .map_err(|_| ClientError::Config(format!("`{}` is not a valid TLS server name", self.host)))?;
        let stream = connector.connect(name, tcp).await.map_err(|e| ClientError::Tls {
            addr: self.base(),
            reason: e.to_string(),
        })?;
        Ok(Connection::Tls(Box::new(stream)))
    }

    /// The websocket URL of `path` on this server.
    pub(super) fn ws_url(&self, path: &str) -> String {
        let scheme = if self.https { "wss" } else { "ws" };
        format!("{scheme}://{}:{}{path}", self.host, self.port)
    }

    /// The token, for a request built elsewhere (the websocket handshake).
    pub(super) fn token(&self) -> Option<&str> {
        self.token.as_deref().map(String::as_str)
    }

    /// Send a request and parse a JSON answer; a non-2xx answer is an
    /// error with the server's messages. 204 is `Value::Null`.
    pub async fn json(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, ClientError> {
        let body = body.map(|b| Zeroizing::new(b.to_string().into_bytes()));
        let (status, bytes) = self.send(method, path, body).await?;
        if !status.is_success() {
            return Err(api_error(status, &bytes));
        }
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(invalid_json)
    }
}

/// The error a non-2xx answer stands for, with the server's messages.
pub fn api_error(status: StatusCode, body: &[u8]) -> ClientError {
    let messages: Vec<String> = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("errors").cloned())
        .and_then(|e| serde_json::from_value(e).ok())
        .unwrap_or_default();
    match status {
        StatusCode::FORBIDDEN => ClientError::Denied { messages },
        _ => ClientError::Api {
            status: status.as_u16(),
            messages,
        },
    }
}

/// The error for an answer that is not the JSON the API promises.
pub fn invalid_json(e: serde_json::Error) -> ClientError {
    ClientError::InvalidAnswer(format!("not JSON ({e})"))
}

/// A connection to the server, plain or TLS.
pub(super) enum Connection {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Connection {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Connection::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Connection::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            Connection::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Connection::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

async fn exchange<IO>(io: IO, req: Request<Full<Bytes>>) -> Result<(StatusCode, Zeroizing<Vec<u8>>), ClientError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| ClientError::Transport(format!("the HTTP handshake failed: {e}")))?;
    let driver = tokio::spawn(conn);
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| ClientError::Transport(format!("the request failed: {e}")))?;
    let status = resp.status();
    let mut body = resp.into_body();
    let mut out = Zeroizing::new(Vec::new());
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ClientError::Transport(format!("reading the answer failed: {e}")))?;
        if let Ok(data) = frame.into_data() {
            crate::api::extend_zeroizing(&mut out, &data);
        }
    }
    driver.abort();
    Ok((status, out))
}

/// The TLS client: trusts `TRESOR_CACERT`, presents `TRESOR_CLIENT_CERT` if set.
fn tls_connector() -> Result<TlsConnector, ClientError> {
    let ca = env("TRESOR_CACERT", "VAULT_CACERT").ok_or_else(|| {
        ClientError::Config(
            "https needs the server's CA certificate: set TRESOR_CACERT (or VAULT_CACERT) to its PEM file".into(),
        )
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in crate::api::read_certs(&PathBuf::from(&ca)).map_err(ClientError::Config)? {
        roots.add(cert).map_err(|e| ClientError::Config(format!("{ca}: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Config(format!("TLS setup: {e}")))?
        .with_root_certificates(roots);
    let config = match (
        env("TRESOR_CLIENT_CERT", "VAULT_CLIENT_CERT"),
        env("TRESOR_CLIENT_KEY", "VAULT_CLIENT_KEY"),
    ) {
        (Some(cert), Some(key)) => {
            let chain = crate::api::read_certs(&PathBuf::from(&cert)).map_err(ClientError::Config)?;
            let key = PrivateKeyDer::from_pem_file(&key)
                .map_err(|e| ClientError::Config(format!("{key}: no usable PEM private key: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| ClientError::Config(format!("client certificate {cert}: {e}")))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(ClientError::Config(
                "set both TRESOR_CLIENT_CERT and TRESOR_CLIENT_KEY, or neither".into(),
            ))
        }
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Percent-encode a secret path for a URL (keeping `/`).
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
