//! The HTTP API: Vault's HTTP API where it overlaps, so that Vault clients
//! (the `vault`/`bao` CLIs, `hvac`, ...) work unchanged.
//!
//! | route                                         | what                                   |
//! |-----------------------------------------------|----------------------------------------|
//! | `/v1/<mount>/data/<path>`                     | KV v2 read, write, patch, soft delete  |
//! | `/v1/<mount>/metadata/<path>`                 | versions, custom_metadata, list, delete all |
//! | `/v1/<mount>/delete\|undelete\|destroy/<path>`  | versions                               |
//! | `/v1/sys/health`, `/v1/sys/mounts`, `/v1/sys/internal/ui/mounts/<path>` | server and mounts |
//! | `/v1/auth/token/...`                          | tokens: create, lookup, revoke         |
//! | `/v1/sys/rotate/<path>`, `/v1/sys/rotation/<path>` | rotate now, rotation status        |
//!
//! Every secret operation goes through [`Host`]'s access path (Cedar, audit)
//! with the caller the request authenticated as: a token (`X-Vault-Token`
//! or `Authorization: Bearer`) or a verified TLS client certificate.
//!
//! [`Server::serve`] runs listeners until a shutdown future completes, then
//! stops accepting, lets in-flight requests finish (up to a grace period)
//! and returns; dropping the last `Arc<Host>` then syncs the audit log.

mod error;
mod events;
mod keys;
mod kv;
mod leases;
mod plugins;
mod rotation;
mod shape;
mod sys;
mod tls;
mod tokens;
mod wire;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::service::service_fn;
use hyper::{HeaderMap, Method, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use zeroize::Zeroizing;

pub use error::{status_of, ApiError};
pub use tls::read_certs;
pub use wire::{extend as extend_zeroizing, Body};

use crate::access::{Caller, FrontDoor, Host, RefusalReason, RefusedAuthentication};
use crate::auth::{ClientCertMap, TokenInfo, TokenStore};
use crate::config::{ListenerConfig, ServerConfig};
use crate::error::StartupError;
use crate::policy::Principal;

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// A bound listener: TCP, optionally TLS.
pub struct Listener {
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
    addr: SocketAddr,
}

impl Listener {
    /// Bind the listener `config` describes (and load its TLS files).
    pub async fn bind(config: &ListenerConfig) -> Result<Listener, StartupError> {
        let tls = if config.is_tls() {
            let server = tls::server_config(config)
                .map_err(|e| StartupError::Config(format!("listener {}: {e}", config.address)))?;
            Some(TlsAcceptor::from(server))
        } else {
            None
        };
        let tcp = TcpListener::bind(&config.address)
            .await
            .map_err(|source| StartupError::Io {
                what: "binding the listener",
                path: config.address.clone().into(),
                source,
            })?;
        Listener::from_tcp(tcp, tls)
    }

    /// A listener on an already bound socket, plain or with a TLS acceptor.
    pub fn from_tcp(tcp: TcpListener, tls: Option<TlsAcceptor>) -> Result<Listener, StartupError> {
        let addr = tcp.local_addr().map_err(|source| StartupError::Io {
            what: "reading the listener's address",
            path: "listener".into(),
            source,
        })?;
        Ok(Listener { tcp, tls, addr })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://addr` or `https://addr`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }
}

/// The HTTP API in front of a [`Host`].
pub struct Server {
    state: Arc<State>,
    shutdown_grace: Duration,
}

/// What every request handler shares.
struct State {
    host: Arc<Host>,
    tokens: Arc<TokenStore>,
    certs: ClientCertMap,
    max_request_bytes: usize,
    default_ttl: u64,
    max_ttl: u64,
    /// Reads the configuration again, for reloads (none: not reloadable).
    config_source: Option<ConfigSource>,
}

/// Reads the server's configuration again (the file it was started with).
pub type ConfigSource = Arc<dyn Fn() -> Result<crate::Config, String> + Send + Sync>;

/// Who is on the other end of one connection.
struct Conn {
    peer: SocketAddr,
    /// The principal of a verified client certificate, if one was presented.
    cert_principal: Option<Principal>,
}

/// The caller a request authenticated as.
struct Authenticated {
    caller: Caller,
    /// The token used, and its description (absent for a client certificate).
    token: Option<(Zeroizing<String>, TokenInfo)>,
}

impl Server {
    /// The API for `host`, authenticating with `tokens` and the client
    /// certificate table of `config`.
    pub fn new(host: Arc<Host>, tokens: Arc<TokenStore>, config: &ServerConfig) -> Server {
        Server {
            state: Arc::new(State {
                host,
                tokens,
                certs: ClientCertMap::new(config.client_certs.clone()),
                max_request_bytes: config.max_request_bytes,
                default_ttl: config.tokens.default_ttl_seconds(),
                max_ttl: config.tokens.max_ttl_seconds(),
                config_source: None,
            }),
            shutdown_grace: Duration::from_millis(config.shutdown_grace_ms),
        }
    }

    /// Let `sys/plugins/reload/backend` read the configuration again with
    /// `source` and apply it. Call before [`Server::serve`].
    pub fn with_config_source(mut self, source: ConfigSource) -> Server {
        if let Some(state) = Arc::get_mut(&mut self.state) {
            state.config_source = Some(source);
        }
        self
    }

    /// Serve `listeners` until `shutdown` completes; then stop accepting,
    /// let in-flight requests finish (closing connections that are still
    /// busy after the grace period) and return.
    pub async fn serve(self, listeners: Vec<Listener>, shutdown: impl std::future::Future<Output = ()>) {
        let (stop, stopped) = watch::channel(false);
        let mut loops = JoinSet::new();
        for listener in listeners {
            loops.spawn(accept_loop(self.state.clone(), listener, stopped.clone()));
        }
        shutdown.await;
        tracing::info!("shutting down: no new connections, waiting for in-flight requests");
        let _ = stop.send(true);
        let drained = tokio::time::timeout(self.shutdown_grace, async {
            while loops.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                grace_ms = self.shutdown_grace.as_millis() as u64,
                "requests still running after the grace period; closing their connections"
            );
            loops.abort_all();
            while loops.join_next().await.is_some() {}
        }
    }
}

/// Accept connections until told to stop, then wait for them to finish.
async fn accept_loop(state: Arc<State>, listener: Listener, mut stop: watch::Receiver<bool>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.tcp.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let _ = tcp.set_nodelay(true);
                    conns.spawn(connection(state.clone(), tcp, peer, listener.tls.clone(), stop.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off a little.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = until_stopped(&mut stop) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

/// Resolves once the server is told to stop.
async fn until_stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// One connection: the TLS handshake (if any), then HTTP/1.1 or HTTP/2.
async fn connection(
    state: Arc<State>,
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    let Some(acceptor) = tls else {
        let conn = Arc::new(Conn {
            peer,
            cert_principal: None,
        });
        return serve_http(state, tcp, conn, stop).await;
    };
    let handshake = tokio::select! {
        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)) => r,
        _ = until_stopped(&mut stop) => return,
    };
    let stream = match handshake {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    // The verifier has checked the chain; map the leaf to a principal.
    let cert_principal = match stream.get_ref().1.peer_certificates().and_then(|c| c.first()) {
        Some(leaf) => match state.certs.principal(leaf) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::info!(%peer, "client certificate refused: {e}");
                return;
            }
        },
        None => None,
    };
    let conn = Arc::new(Conn { peer, cert_principal });
    serve_http(state, stream, conn, stop).await
}

async fn serve_http<IO>(state: Arc<State>, io: IO, conn: Arc<Conn>, mut stop: watch::Receiver<bool>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req: Request<Incoming>| {
        let state = state.clone();
        let conn = conn.clone();
        async move { Ok::<_, Infallible>(state.handle(req, &conn).await) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    // With upgrades: `sys/events/subscribe` turns into a websocket.
    let served = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(served);
    let result = tokio::select! {
        r = served.as_mut() => r,
        _ = until_stopped(&mut stop) => {
            served.as_mut().graceful_shutdown();
            served.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// What a request asks for, before authentication.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Health,
    /// `sys/seal-status`, `sys/leader`, `sys/init`: unauthenticated, like health.
    Probe(sys::Probe),
    Mounts,
    /// `sys/members`: the hosts sharing the state store.
    Members,
    UiMounts(String),
    Token(tokens::TokenRoute),
    Kv(kv::KvRoute),
    Lease(leases::LeaseRoute),
    /// `sys/plugins/catalog` and `sys/plugins/reload/backend`.
    Plugins(plugins::PluginsRoute),
    /// `sys/events/subscribe/<event type>`: a websocket of change events.
    Events(String),
    /// `sys/rotate` and `sys/rotate/keyring`: rotate the master key (add a
    /// key generation).
    RotateKey,
    /// `sys/key-status`: the key generations and the reseal.
    KeyStatus,
    /// `sys/expiring[/<prefix>]?within=30d`: secrets about to expire.
    Expiring(String),
    /// `sys/rotate/<path>`: rotate a secret now.
    Rotate(String),
    /// `sys/rotation/<path>`: a secret's rotation record.
    Rotation(String),
}

impl Route {
    /// The methods the route accepts (for 405 and `Allow`).
    fn allow(&self) -> &'static str {
        match self {
            Route::Health => "GET, HEAD",
            Route::Probe(_) => "GET",
            Route::Mounts | Route::Members | Route::UiMounts(_) => "GET",
            Route::Token(t) => t.allow(),
            Route::Kv(k) => k.allow(),
            Route::Lease(l) => l.allow(),
            Route::Plugins(p) => p.allow(),
            Route::Events(_) => "GET",
            Route::RotateKey => "POST, PUT",
            Route::KeyStatus => "GET",
            Route::Expiring(_) => "GET",
            Route::Rotate(_) => "POST, PUT",
            Route::Rotation(_) => "GET, PUT, POST, DELETE",
        }
    }
}

/// The request method, with `GET ?list=true` read as `LIST` (like Vault).
fn effective_method(method: &Method, query: &Query) -> String {
    if method == Method::GET && query.list {
        "LIST".into()
    } else {
        method.as_str().to_ascii_uppercase()
    }
}

/// The query parameters the API reads.
#[derive(Debug, Default)]
struct Query {
    list: bool,
    version: Option<String>,
    /// `sys/expiring`'s window (`30d`).
    within: Option<String>,
}

impl Query {
    fn parse(query: Option<&str>) -> Result<Query, ApiError> {
        let mut q = Query::default();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v)?;
            match k {
                "list" => q.list = matches!(v.as_str(), "true" | "1" | "t" | "True" | "TRUE"),
                "version" => q.version = Some(v),
                "within" => q.within = Some(v),
                _ => {}
            }
        }
        Ok(q)
    }
}

/// Decode `%XX` escapes (and refuse what does not decode to UTF-8).
fn percent_decode(s: &str) -> Result<String, ApiError> {
    if !s.contains('%') {
        return Ok(s.to_string());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| ApiError::bad_request("malformed percent-encoding in the URL"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ApiError::bad_request("the URL does not decode to UTF-8"))
}

/// A fresh request id (UUID-shaped, random).
fn request_id() -> String {
    use ring::rand::SecureRandom as _;
    let mut b = [0u8; 16];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// The token a request carries: `X-Vault-Token`, else `Authorization: Bearer`.
fn request_token(headers: &HeaderMap) -> Option<Zeroizing<String>> {
    if let Some(t) = headers.get("x-vault-token").and_then(|v| v.to_str().ok()) {
        let t = t.trim();
        if !t.is_empty() {
            return Some(Zeroizing::new(t.to_string()));
        }
    }
    let auth = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = auth.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| Zeroizing::new(token.to_string()))
}

impl State {
    /// Answer one request; never fails (errors become Vault-shaped answers).
    async fn handle(&self, req: Request<Incoming>, conn: &Conn) -> Response<Body> {
        let started = Instant::now();
        let method = req.method().clone();
        let path = error::printable(req.uri().path());
        let rid = request_id();
        let response = match self.dispatch(req, conn, &rid).await {
            Ok(r) => r,
            Err(e) => wire::error_response(e),
        };
        let status = response.status().as_u16();
        let elapsed_us = started.elapsed().as_micros() as u64;
        if status >= 500 {
            tracing::warn!(request_id = %rid, %method, %path, status, elapsed_us, peer = %conn.peer, "request failed");
        } else {
            tracing::debug!(request_id = %rid, %method, %path, status, elapsed_us, peer = %conn.peer, "request");
        }
        response
    }

    async fn dispatch(&self, req: Request<Incoming>, conn: &Conn, rid: &str) -> Result<Response<Body>, ApiError> {
        let (mut parts, body) = req.into_parts();
        let route = self.route(parts.uri.path())?;
        let query = Query::parse(parts.uri.query())?;
        let method = effective_method(&parts.method, &query);
        if !route.allow().split(", ").any(|m| m == method) {
            return Err(ApiError::method_not_allowed(
                &method,
                &error::printable(parts.uri.path()),
                route.allow(),
            ));
        }
        match route {
            Route::Health => return Ok(sys::health(&self.host, &method).await),
            Route::Probe(probe) => return Ok(sys::probe(probe)),
            _ => {}
        }
        let who = match self.authenticate(&parts.headers, conn, rid).await? {
            Ok(who) => who,
            Err(refused) => return Err(self.refuse(refused, parts.uri.path(), conn, rid)),
        };
        let body = match method.as_str() {
            "PUT" | "POST" | "PATCH" => wire::read_body(&parts.headers, body, self.max_request_bytes).await?,
            _ => Zeroizing::new(Vec::new()),
        };
        let cx = Ctx {
            state: self,
            who: &who,
            request_id: rid,
        };
        match route {
            Route::Health => Ok(sys::health(&self.host, &method).await),
            Route::Probe(probe) => Ok(sys::probe(probe)),
            Route::Mounts => Ok(sys::mounts(&cx)),
            Route::Members => sys::members(&cx).await,
            Route::UiMounts(path) => sys::ui_mount(&cx, &path),
            Route::Token(t) => tokens::handle(&cx, t, &body).await,
            Route::Kv(k) => kv::handle(&cx, k, &method, &query, &parts.headers, &body).await,
            Route::Lease(l) => leases::handle(&cx, l, &method, &body).await,
            Route::Plugins(p) => plugins::handle(&cx, p, &body).await,
            Route::Events(event_type) => events::subscribe(&cx, &event_type, &mut parts),
            Route::RotateKey => keys::rotate(&cx).await,
            Route::KeyStatus => keys::status(&cx).await,
            Route::Expiring(prefix) => keys::expiring(&cx, &prefix, query.within.as_deref()).await,
            Route::Rotate(path) => rotation::rotate(&cx, &path).await,
            Route::Rotation(path) => rotation::handle(&cx, &path, &method, &body).await,
        }
    }

    /// Which route a (raw) URL path is.
    fn route(&self, raw: &str) -> Result<Route, ApiError> {
        let Some(rest) = raw.strip_prefix("/v1/") else {
            return Err(ApiError::no_route(raw));
        };
        let rest = percent_decode(rest)?;
        let (first, tail) = rest.split_once('/').unwrap_or((rest.as_str(), ""));
        match first {
            "sys" => match tail {
                "health" => Ok(Route::Health),
                "seal-status" => Ok(Route::Probe(sys::Probe::SealStatus)),
                "leader" => Ok(Route::Probe(sys::Probe::Leader)),
                "init" => Ok(Route::Probe(sys::Probe::Init)),
                "mounts" => Ok(Route::Mounts),
                "members" => Ok(Route::Members),
                // Vault's old and new names; `rotate/keyring` cannot be a
                // secret (a secret path has a mount and a name).
                "rotate" | "rotate/keyring" => Ok(Route::RotateKey),
                "key-status" => Ok(Route::KeyStatus),
                "expiring" => Ok(Route::Expiring(String::new())),
                _ if tail.starts_with("expiring/") => Ok(Route::Expiring(tail["expiring/".len()..].to_string())),
                _ if tail.starts_with("events/subscribe/") => {
                    Ok(Route::Events(tail["events/subscribe/".len()..].to_string()))
                }
                _ if tail.starts_with("rotate/") => Ok(Route::Rotate(tail["rotate/".len()..].to_string())),
                _ if tail.starts_with("rotation/") => Ok(Route::Rotation(tail["rotation/".len()..].to_string())),
                _ if tail.starts_with("plugins/") => plugins::PluginsRoute::parse(&tail["plugins/".len()..])
                    .map(Route::Plugins)
                    .ok_or_else(|| ApiError::no_route(&rest)),
                _ => match tail
                    .strip_prefix("internal/ui/mounts")
                    .filter(|p| p.is_empty() || p.starts_with('/'))
                {
                    Some(p) => Ok(Route::UiMounts(p.trim_start_matches('/').to_string())),
                    None => leases::LeaseRoute::parse_sys(tail)
                        .map(Route::Lease)
                        .ok_or_else(|| ApiError::no_route(&rest)),
                },
            },
            "auth" => match tail.strip_prefix("token/").and_then(tokens::TokenRoute::parse) {
                Some(t) => Ok(Route::Token(t)),
                None => Err(ApiError::no_route(&rest)),
            },
            mount if self.host.is_generator_mount(mount) => leases::LeaseRoute::parse_mount(mount, tail)
                .map(Route::Lease)
                .ok_or_else(|| ApiError::no_route(&rest)),
            mount if self.host.mounts().iter().any(|(m, _, _)| m == mount) => kv::KvRoute::parse(mount, tail)
                .map(Route::Kv)
                .ok_or_else(|| ApiError::no_route(&rest)),
            _ => Err(ApiError::no_route(&rest)),
        }
    }

    /// Audit a refused authentication and answer 403 (503 when the audit
    /// log cannot take the record).
    fn refuse(&self, refused: Refused, asked_for: &str, conn: &Conn, rid: &str) -> ApiError {
        let source = conn.peer.to_string();
        let refusal = RefusedAuthentication {
            request_id: rid,
            source: &source,
            front_door: FrontDoor::Http,
            asked_for: &error::printable(asked_for),
            reason: refused.reason,
            token_digest: refused.token_digest,
        };
        if let Err(e) = self.host.audit_refused_authentication(&refusal) {
            return ApiError::from(e);
        }
        match refused.reason {
            RefusalReason::InvalidToken => ApiError::forbidden("permission denied: invalid, expired or revoked token"),
            RefusalReason::NoCredential => ApiError::forbidden(
                "permission denied: no token; send X-Vault-Token or Authorization: Bearer (or a client certificate over mutual TLS)",
            ),
        }
    }

    /// The caller: by token if one is given (a bad token is refused even
    /// when a client certificate would do), else by client certificate.
    /// `Err` when the token store cannot be asked (503).
    async fn authenticate(
        &self,
        headers: &HeaderMap,
        conn: &Conn,
        rid: &str,
    ) -> Result<Result<Authenticated, Refused>, ApiError> {
        let mtls = conn.cert_principal.is_some();
        let caller = |principal: Principal, token_accessor: Option<String>| Caller {
            principal,
            source: conn.peer.to_string(),
            mtls,
            front_door: FrontDoor::Http,
            request_id: Some(rid.to_string()),
            token_accessor,
        };
        if let Some(token) = request_token(headers) {
            return Ok(match self.tokens.lookup(&token).await? {
                Some(info) => Ok(Authenticated {
                    caller: caller(info.principal.clone(), Some(info.accessor.clone())),
                    token: Some((token, info)),
                }),
                None => Err(Refused {
                    reason: RefusalReason::InvalidToken,
                    token_digest: Some(self.tokens.audit_digest(&token)),
                }),
            });
        }
        Ok(match &conn.cert_principal {
            Some(p) => Ok(Authenticated {
                caller: caller(p.clone(), None),
                token: None,
            }),
            None => Err(Refused {
                reason: RefusalReason::NoCredential,
                token_digest: None,
            }),
        })
    }
}

/// Why [`State::authenticate`] found no caller.
struct Refused {
    reason: RefusalReason,
    token_digest: Option<String>,
}

/// What a route handler gets.
struct Ctx<'a> {
    state: &'a State,
    who: &'a Authenticated,
    request_id: &'a str,
}

impl Ctx<'_> {
    fn host(&self) -> &Host {
        &self.state.host
    }

    /// The host, for the operations that start background work on it.
    fn shared_host(&self) -> &Arc<Host> {
        &self.state.host
    }

    fn caller(&self) -> &Caller {
        &self.who.caller
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_and_escapes() {
        let q = Query::parse(Some("list=true&version=3&x=%2F")).unwrap();
        assert!(q.list);
        assert_eq!(q.version.as_deref(), Some("3"));
        assert_eq!(percent_decode("a%2Fb%20c").unwrap(), "a/b c");
        assert_eq!(percent_decode("a%00b").unwrap(), "a\0b");
        assert!(percent_decode("a%zz").is_err());
        assert!(percent_decode("a%ff").is_err());
        assert_eq!(effective_method(&Method::GET, &q), "LIST");
    }

    #[test]
    fn tokens_from_headers() {
        let mut h = HeaderMap::new();
        assert!(request_token(&h).is_none());
        h.insert(AUTHORIZATION, "Bearer tvs.abc".parse().unwrap());
        assert_eq!(request_token(&h).unwrap().as_str(), "tvs.abc");
        h.insert("x-vault-token", "tvs.xyz".parse().unwrap());
        assert_eq!(request_token(&h).unwrap().as_str(), "tvs.xyz");
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, "Basic Zm9vOmJhcg==".parse().unwrap());
        assert!(request_token(&h).is_none());
    }
}
