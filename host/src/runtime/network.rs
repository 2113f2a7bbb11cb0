//! Outbound HTTP for plugins (`wasi:http/outgoing-handler`), allowed only to
//! the `host:port` authorities the mount grants. A request anywhere else is
//! refused with `HTTP-request-denied` before any connection is made, and the
//! refusal is recorded as a warning event in the access span.
//!
//! https upstreams are verified against the public web PKI roots plus the
//! mount's `ca_file`, when it has one.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use wasmtime_wasi_http::{default_send_request, Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// Connection timeout when the plugin sets none; the call deadline still bounds everything.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A mount's outbound HTTP grant.
#[derive(Clone, Default)]
pub struct NetworkGrant {
    /// Allowed authorities, lowercase `host:port`.
    allowed: Vec<String>,
    /// TLS settings when the mount adds a trust root; `None` uses wasmtime's defaults.
    tls: Option<Arc<rustls::ClientConfig>>,
    mount: Arc<str>,
}

impl std::fmt::Debug for NetworkGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkGrant")
            .field("allowed", &self.allowed)
            .field("custom_ca", &self.tls.is_some())
            .finish()
    }
}

impl NetworkGrant {
    /// A grant for `allowed` authorities (`host:port`), trusting the public
    /// roots plus the PEM certificates of `ca_pem`, if given.
    pub fn new(mount: &str, allowed: &[String], ca_pem: Option<&[u8]>) -> Result<NetworkGrant, String> {
        let mut parsed = Vec::with_capacity(allowed.len());
        for a in allowed {
            let (host, port) = a
                .rsplit_once(':')
                .ok_or_else(|| format!("network grant `{a}` must be `host:port`"))?;
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(format!("network grant `{a}` must be `host:port` with a numeric port"));
            }
            parsed.push(a.to_ascii_lowercase());
        }
        let tls = match ca_pem {
            None => None,
            Some(pem) => {
                use rustls::pki_types::pem::PemObject;
                let mut roots = rustls::RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                };
                let mut added = 0;
                for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
                    let cert = cert.map_err(|e| format!("ca_file is not valid PEM: {e}"))?;
                    roots
                        .add(cert)
                        .map_err(|e| format!("ca_file holds an unusable certificate: {e}"))?;
                    added += 1;
                }
                if added == 0 {
                    return Err("ca_file holds no PEM certificate".into());
                }
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| e.to_string())?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                Some(Arc::new(config))
            }
        };
        Ok(NetworkGrant {
            allowed: parsed,
            tls,
            mount: mount.into(),
        })
    }

    /// True when the grant allows any outbound request at all.
    pub fn is_empty(&self) -> bool {
        self.allowed.is_empty()
    }

    fn allows(&self, authority: &str) -> bool {
        let authority = authority.to_ascii_lowercase();
        self.allowed.contains(&authority)
    }
}

type Outgoing = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

impl WasiHttpHooks for NetworkGrant {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Outgoing {
        drop(fut);
        let https = request.uri().scheme() == Some(&http::uri::Scheme::HTTPS);
        let authority = match request.uri().authority() {
            Some(a) if a.port().is_some() => a.to_string(),
            Some(a) => format!("{}:{}", a.host(), if https { 443 } else { 80 }),
            None => return Box::new(async { Err(HttpError::HttpRequestUriInvalid) }),
        };
        if !self.allows(&authority) {
            tracing::warn!(
                mount = &*self.mount,
                authority,
                "outbound request denied: not in the mount's network grant"
            );
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        tracing::debug!(mount = &*self.mount, authority, "outbound request");
        match (&self.tls, https) {
            (Some(tls), true) => Box::new(send_with_tls(request, options, authority, tls.clone())),
            _ => Box::new(async move {
                let (res, io) = default_send_request(request, options).await?;
                Ok((
                    res.map(BodyExt::boxed_unsync),
                    Box::new(io) as Box<dyn Future<Output = _> + Send>,
                ))
            }),
        }
    }
}

/// An untrusted certificate is reported as such, so plugins can say "check ca_file".
fn tls_error(e: std::io::Error) -> HttpError {
    let cert = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(_)));
    if cert {
        HttpError::TlsCertificateError
    } else {
        HttpError::Tls(e)
    }
}

/// Send over https with the mount's own trust roots.
async fn send_with_tls(
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    authority: String,
    tls: Arc<rustls::ClientConfig>,
) -> Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ),
    HttpError,
> {
    let connect_timeout = options.and_then(|o| o.connect_timeout).unwrap_or(CONNECT_TIMEOUT);
    let host = authority.rsplit_once(':').map(|(h, _)| h).unwrap_or(&authority);
    let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    let tcp = tokio::time::timeout(connect_timeout, TcpStream::connect(&authority))
        .await
        .map_err(|_| HttpError::ConnectionTimeout)?
        .map_err(HttpError::Connect)?;
    let name = ServerName::try_from(host).map_err(|_| HttpError::HttpRequestUriInvalid)?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(tls_error)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // The request line carries only the path; the authority is in the Host header.
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    *request.uri_mut() = path.parse().map_err(|_| HttpError::HttpRequestUriInvalid)?;
    // Drive the connection while the request is sent; the host keeps driving it afterwards.
    let mut io = Box::pin(async move { conn.await.map_err(HttpError::from) });
    let response = tokio::select! {
        r = sender.send_request(request) => r?,
        r = &mut io => {
            r?;
            return Err(HttpError::HttpResponseIncomplete);
        }
    };
    let response = response.map(|body| body.map_err(HttpError::from).boxed_unsync());
    Ok((response, Box::new(io)))
}
