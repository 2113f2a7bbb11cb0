//! TLS for the connection to PostgreSQL: the `sslmode` of the URL, the CA of
//! config key [`CA_KEY`] (`ca_pem`), the `SSLRequest` exchange and the
//! rustls handshake over the TCP stream.
//!
//! - `require`: TLS, any certificate accepted ([`SslMode::Require`]: against
//!   passive eavesdropping only). The handshake's signatures are still
//!   checked, so the peer holds the key of the certificate it sent.
//! - `verify-ca`: the chain must lead to the configured CA, and the
//!   certificate must be within its validity dates.
//! - `verify-full`: and it must name the URL's host (DNS name, or IP address
//!   for a URL with one).
//!
//! The only trust anchors are the certificates of `ca_pem`: no public
//! roots, since databases use private CAs, and a public CA would vouch for
//! anyone's host name. Certificate revocation (CRLs, OCSP) is not checked.
//!
//! The cryptography is [`rustls_rustcrypto`], pure Rust: `ring` and
//! `aws-lc-rs` need a C compiler for `wasm32-wasip2` (clang with a wasm
//! sysroot), which the plugins' build does not assume. TLS 1.3 and 1.2
//! (ECDHE with AES-GCM or ChaCha20-Poly1305 only, as rustls allows) are
//! offered.
//!
//! Checking validity dates needs the time: a mount without a clock grant
//! sees the Unix epoch, and `verify-ca` / `verify-full` then fail with
//! [`TlsError::NoClock`] rather than accept an expired certificate.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use postgres_protocol::message::frontend;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::time_provider::TimeProvider;
use rustls::{CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tresor_plugin_sdk::Error;

use crate::url::SslMode;

/// The config key holding the CA certificate(s), PEM, that `verify-ca` and
/// `verify-full` trust.
pub const CA_KEY: &str = "ca_pem";

/// Wall clock readings before this (2024-01-01) mean the mount has no
/// clock grant (the sandbox then shows the Unix epoch).
const EARLIEST_PLAUSIBLE_TIME: Duration = Duration::from_secs(1_704_067_200);

/// Why TLS could not be set up with the server. Every message says what to
/// do; none quotes a password.
#[derive(Debug)]
pub enum TlsError {
    /// The server answered the `SSLRequest` with `N`: it runs with `ssl = off`.
    ServerTlsOff,
    /// The server's certificate chain does not lead to the CA of `ca_pem`.
    UnknownIssuer,
    /// The certificate does not name the host of the URL (`verify-full`).
    NameMismatch {
        /// The host as the URL gives it.
        host: String,
    },
    /// The certificate has expired or is not valid yet.
    Expired,
    /// The mount has no clock, so the certificate's dates cannot be checked.
    NoClock,
    /// The server's certificate is unusable for another reason (malformed,
    /// not for TLS servers, a signature algorithm not supported, ...).
    BadCertificate(String),
    /// Any other failure of the handshake (no common protocol version or
    /// cipher suite, an alert from the server, a reset connection...).
    Handshake(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::ServerTlsOff => write!(
                f,
                "the server does not accept TLS connections (it runs with ssl = off): turn ssl on in its \
                 postgresql.conf (with ssl_cert_file and ssl_key_file), or, only for loopback or a network you \
                 trust, connect with sslmode=disable"
            ),
            TlsError::UnknownIssuer => write!(
                f,
                "TLS: the server's certificate is not issued by the CA of config key `{CA_KEY}` (unknown issuer): \
                 set `{CA_KEY}` to the PEM of the CA that issued it (and of any intermediate CA the server does not \
                 send)"
            ),
            TlsError::NameMismatch { host } => write!(
                f,
                "TLS: the server's certificate is not valid for the host `{host}` (sslmode=verify-full checks \
                 the name): connect with a host name or IP address that the certificate lists, have the \
                 certificate reissued with this one, or use sslmode=verify-ca to check the issuer only"
            ),
            TlsError::Expired => write!(
                f,
                "TLS: the server's certificate has expired or is not valid yet: renew it on the server"
            ),
            TlsError::NoClock => write!(
                f,
                "TLS: sslmode=verify-ca and verify-full check the dates of the server's certificate, and the mount \
                 grants no clock: grant it (grants = {{ clock = true, ... }})"
            ),
            TlsError::BadCertificate(why) => write!(
                f,
                "TLS: the server's certificate was refused ({why}): give the server a certificate for TLS server \
                 authentication issued by the CA of `{CA_KEY}`"
            ),
            TlsError::Handshake(why) => write!(
                f,
                "TLS handshake failed ({why}): check that the server accepts TLS 1.2 or 1.3 with an ECDHE cipher \
                 suite (AES-GCM or ChaCha20-Poly1305)"
            ),
        }
    }
}

impl std::error::Error for TlsError {}

/// How to protect connections to one server: the mode, and for the TLS
/// modes the rustls configuration and the name to verify. Built once when
/// the mount starts (so a bad `ca_pem` stops it), used for every connection.
#[derive(Clone)]
pub struct Tls {
    mode: SslMode,
    host: String,
    client: Option<(Arc<ClientConfig>, ServerName<'static>)>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("mode", &self.mode)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Checks the combination of `mode` and the `ca_pem` config value and
    /// prepares the TLS client for `host`. Errors (`invalid-input`) name
    /// the config key and say what to write:
    ///
    /// - `verify-ca` and `verify-full` need `ca_pem`, one or more PEM
    ///   `CERTIFICATE` blocks;
    /// - `disable` and `require` refuse `ca_pem`, which they would not use
    ///   (libpq's `require` quietly verifies when it finds a CA: this
    ///   plugin asks for the mode that says so);
    /// - `verify-full` needs a host that is a DNS name or an IP address.
    pub fn new(mode: SslMode, host: &str, ca_pem: Option<&str>) -> Result<Tls, Error> {
        let ca_pem = ca_pem.filter(|pem| !pem.trim().is_empty());
        let roots = match (mode, ca_pem) {
            (SslMode::Disable, None) => {
                return Ok(Tls {
                    mode,
                    host: host.to_owned(),
                    client: None,
                })
            }
            (SslMode::Disable | SslMode::Require, Some(_)) => {
                return Err(Error::invalid_input(format!(
                    "config key `{CA_KEY}` is set, but connection_url says sslmode={mode}, which does not check \
                     certificates: use sslmode=verify-full (or verify-ca) to have the server's certificate \
                     checked against it, or drop `{CA_KEY}`"
                )))
            }
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
                return Err(Error::invalid_input(format!(
                    "connection_url says sslmode={mode}, which checks the server's certificate, but config key \
                     `{CA_KEY}` is missing: set it to the PEM of the CA that issued the server's certificate \
                     (-----BEGIN CERTIFICATE----- ...), or use sslmode=require to skip the check"
                )))
            }
            (SslMode::Require, None) => None,
            (SslMode::VerifyCa | SslMode::VerifyFull, Some(pem)) => Some(Arc::new(root_store(pem)?)),
        };
        let server_name = ServerName::try_from(host.to_owned()).map_err(|_| {
            Error::invalid_input(format!(
                "connection_url's host `{host}` is neither a DNS name nor an IP address, so TLS cannot check \
                 it: fix the host"
            ))
        })?;
        let provider = Arc::new(rustls_rustcrypto::provider());
        let verifier = Arc::new(PgVerifier {
            mode,
            roots,
            algorithms: provider.signature_verification_algorithms,
        });
        let config = ClientConfig::builder_with_details(
            provider,
            Arc::new(SandboxClock {
                strict: mode.verifies(),
            }),
        )
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::internal(format!("the TLS provider cannot be set up: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
        Ok(Tls {
            mode,
            host: host.to_owned(),
            client: Some((Arc::new(config), server_name)),
        })
    }

    /// The mode this was built for.
    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// Starts protecting `tcp`, a fresh connection to the server: nothing
    /// for `disable`; for the TLS modes the `SSLRequest`, the server's
    /// one-byte answer and the TLS handshake, so the start-up message and
    /// the password exchange then go over TLS.
    pub fn start(&self, mut tcp: TcpStream) -> Result<Stream, crate::wire::WireError> {
        let Some((config, server_name)) = &self.client else {
            return Ok(Stream::Plain(tcp));
        };
        request_tls(&mut tcp)?;
        let mut conn = ClientConnection::new(Arc::clone(config), server_name.clone())
            .map_err(|e| TlsError::Handshake(e.to_string()))?;
        while conn.is_handshaking() {
            match conn.complete_io(&mut tcp) {
                Err(e) => return Err(handshake_error(e, &self.host)),
                // No progress and still handshaking: never spin.
                Ok((0, 0)) if conn.is_handshaking() => {
                    return Err(crate::wire::WireError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server stopped answering during the TLS handshake",
                    )))
                }
                Ok(_) => {}
            }
        }
        Ok(Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp))))
    }
}

/// Sends the `SSLRequest` and reads the server's answer, one byte: `S`, go
/// on with TLS; `N`, the server has TLS off. Exactly one byte is read, so
/// nothing the network sent before the handshake is taken as coming from
/// the server (CVE-2021-23222).
pub fn request_tls<S: Read + Write>(stream: &mut S) -> Result<(), crate::wire::WireError> {
    let mut out = BytesMut::with_capacity(8);
    frontend::ssl_request(&mut out);
    stream.write_all(&out)?;
    stream.flush()?;
    let mut answer = [0u8; 1];
    stream.read_exact(&mut answer).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection when asked for TLS",
            )
        } else {
            e
        }
    })?;
    match answer[0] {
        b'S' => Ok(()),
        b'N' => Err(TlsError::ServerTlsOff.into()),
        // An ErrorResponse (a server too old for TLS), or not PostgreSQL:
        // its text is not read, nothing vouches for it.
        b'E' => Err(crate::wire::WireError::Protocol(
            "the server answered the request for TLS with an error, as servers without TLS support do".into(),
        )),
        _ => Err(crate::wire::WireError::Protocol(
            "the server answered the request for TLS with something else than S or N: is it PostgreSQL?".into(),
        )),
    }
}

/// What to add to the server's refusal of a login (`ServerError` code
/// `28000`, which pg_hba.conf rejections use) made without TLS: a
/// `hostssl`-only server refuses plaintext logins, and its message does not
/// say to turn TLS on.
pub fn login_hint(mode: SslMode, code: &str) -> Option<&'static str> {
    (mode == SslMode::Disable && code == "28000").then_some(
        "if the server accepts this login over TLS only (hostssl in pg_hba.conf), connect with \
         sslmode=verify-full and config key `ca_pem` (or sslmode=require)",
    )
}

/// The CA certificates of `ca_pem`, as the only trust anchors.
fn root_store(pem: &str) -> Result<RootCertStore, Error> {
    let bad = |why: String| {
        Error::invalid_input(format!(
            "config key `{CA_KEY}` {why}: give the CA certificate as PEM, -----BEGIN CERTIFICATE----- ... \
             -----END CERTIFICATE----- (several may follow each other)"
        ))
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| bad(format!("is not valid PEM ({e})")))?;
        roots
            .add(cert)
            .map_err(|e| bad(format!("holds a certificate that cannot be a trust anchor ({e})")))?;
    }
    if roots.is_empty() {
        return Err(bad("holds no CERTIFICATE block".into()));
    }
    Ok(roots)
}

/// The wall clock, for certificate dates: with `strict` (the verifying
/// modes), a clock stuck at the epoch (a mount without a clock grant) is
/// no time at all, so the handshake fails with [`TlsError::NoClock`].
#[derive(Debug)]
struct SandboxClock {
    strict: bool,
}

impl TimeProvider for SandboxClock {
    fn current_time(&self) -> Option<UnixTime> {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        plausible(since_epoch, self.strict).map(UnixTime::since_unix_epoch)
    }
}

/// `since_epoch`, unless `strict` and it is before 2024.
fn plausible(since_epoch: Duration, strict: bool) -> Option<Duration> {
    (!strict || since_epoch >= EARLIEST_PLAUSIBLE_TIME).then_some(since_epoch)
}

/// Checks the server's certificate as the mode says (see the module docs),
/// and always the handshake signatures.
#[derive(Debug)]
struct PgVerifier {
    mode: SslMode,
    /// The CA of `ca_pem` (the verifying modes only).
    roots: Option<Arc<RootCertStore>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PgVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(roots) = &self.roots else {
            // sslmode=require: any certificate (libpq does the same).
            return Ok(ServerCertVerified::assertion());
        };
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(&cert, roots, intermediates, now, self.algorithms.all)?;
        if self.mode == SslMode::VerifyFull {
            verify_server_name(&cert, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The typed error of a failed handshake (`e` from rustls' `complete_io`).
fn handshake_error(e: io::Error, host: &str) -> crate::wire::WireError {
    let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) else {
        // The transport failed (reset, closed) during the handshake.
        return crate::wire::WireError::Io(e);
    };
    tls_error(tls, host).into()
}

/// Maps a rustls error to what the user must fix.
fn tls_error(e: &rustls::Error, host: &str) -> TlsError {
    match e {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => TlsError::UnknownIssuer,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsError::NameMismatch { host: host.to_owned() }
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => TlsError::Expired,
            other => TlsError::BadCertificate(format!("{other:?}")),
        },
        rustls::Error::FailedToGetCurrentTime => TlsError::NoClock,
        other => TlsError::Handshake(other.to_string()),
    }
}

/// A connection to the server, plaintext or TLS, as [`Tls::start`] returns
/// it: what [`crate::wire::Client`] runs over.
pub enum Stream {
    /// `sslmode=disable`.
    Plain(TcpStream),
    /// The TLS modes.
    Tls(Box<rustls::StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    /// True when the connection is TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// The negotiated TLS version (`TLSv1_3`), for diagnostics and tests.
    pub fn tls_version(&self) -> Option<String> {
        match self {
            Stream::Plain(_) => None,
            Stream::Tls(tls) => tls.conn.protocol_version().map(|v| format!("{v:?}")),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.read(buf),
            Stream::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.write(buf),
            Stream::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.flush(),
            Stream::Tls(tls) => tls.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::WireError;

    fn invalid(result: Result<Tls, Error>) -> String {
        match result {
            Err(Error::InvalidInput(m)) => m,
            Err(other) => panic!("expected invalid-input, got {other:?}"),
            Ok(tls) => panic!("expected invalid-input, got {tls:?}"),
        }
    }

    /// A fresh self-signed CA certificate, PEM.
    fn ca() -> String {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).expect("CA").pem()
    }

    #[test]
    fn disable_needs_nothing_and_refuses_a_ca() {
        let tls = Tls::new(SslMode::Disable, "db", None).expect("disable");
        assert_eq!(tls.mode(), SslMode::Disable);
        let m = invalid(Tls::new(SslMode::Disable, "db", Some(&ca())));
        assert!(m.contains("`ca_pem`") && m.contains("sslmode=verify-full"), "{m}");
        let m = invalid(Tls::new(SslMode::Require, "db", Some(&ca())));
        assert!(m.contains("sslmode=require") && m.contains("drop `ca_pem`"), "{m}");
        // An empty value counts as none.
        Tls::new(SslMode::Require, "db", Some("  \n")).expect("require");
    }

    #[test]
    fn verifying_modes_need_a_usable_ca() {
        for mode in [SslMode::VerifyCa, SslMode::VerifyFull] {
            let m = invalid(Tls::new(mode, "db", None));
            assert!(m.contains("`ca_pem` is missing") && m.contains(mode.as_str()), "{m}");
        }
        let m = invalid(Tls::new(SslMode::VerifyFull, "db", Some("not a certificate")));
        assert!(m.contains("no CERTIFICATE block"), "{m}");
        let m = invalid(Tls::new(
            SslMode::VerifyFull,
            "db",
            Some("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"),
        ));
        assert!(m.contains("`ca_pem`") && m.contains("PEM"), "{m}");
        let m = invalid(Tls::new(
            SslMode::VerifyFull,
            "db",
            Some("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
        ));
        assert!(m.contains("trust anchor"), "{m}");
    }

    #[test]
    fn an_epoch_clock_is_no_clock_for_the_verifying_modes() {
        assert_eq!(plausible(Duration::ZERO, false), Some(Duration::ZERO));
        assert_eq!(plausible(Duration::ZERO, true), None);
        let now = Duration::from_secs(1_800_000_000);
        assert_eq!(plausible(now, true), Some(now));
        assert!(matches!(
            tls_error(&rustls::Error::FailedToGetCurrentTime, "db"),
            TlsError::NoClock
        ));
        assert!(TlsError::NoClock.to_string().contains("clock = true"));
    }

    #[test]
    fn certificate_errors_are_typed_and_say_what_to_do() {
        let unknown = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert!(matches!(tls_error(&unknown, "db"), TlsError::UnknownIssuer));
        let name = rustls::Error::InvalidCertificate(CertificateError::NotValidForName);
        let e = tls_error(&name, "db.internal");
        assert!(matches!(&e, TlsError::NameMismatch { host } if host == "db.internal"));
        assert!(e.to_string().contains("`db.internal`") && e.to_string().contains("verify-ca"));
        let expired = rustls::Error::InvalidCertificate(CertificateError::Expired);
        assert!(matches!(tls_error(&expired, "db"), TlsError::Expired));
        // Through io::Error, as complete_io reports them.
        let io = io::Error::new(io::ErrorKind::InvalidData, unknown);
        assert!(matches!(
            handshake_error(io, "db"),
            WireError::Tls(TlsError::UnknownIssuer)
        ));
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert!(matches!(handshake_error(reset, "db"), WireError::Io(_)));
    }

    #[test]
    fn a_refused_plaintext_login_hints_at_tls() {
        assert!(login_hint(SslMode::Disable, "28000").is_some_and(|h| h.contains("sslmode=verify-full")));
        assert_eq!(login_hint(SslMode::Disable, "28P01"), None);
        assert_eq!(login_hint(SslMode::Require, "28000"), None);
    }

    /// A scripted server answering the SSLRequest with `answer`.
    struct OneByte {
        answer: io::Cursor<Vec<u8>>,
        written: Vec<u8>,
    }

    impl Read for OneByte {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.answer.read(buf)
        }
    }

    impl Write for OneByte {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn answered(answer: &[u8]) -> (Result<(), WireError>, OneByte) {
        let mut server = OneByte {
            answer: io::Cursor::new(answer.to_vec()),
            written: Vec::new(),
        };
        (request_tls(&mut server), server)
    }

    #[test]
    fn the_ssl_request_reads_exactly_one_byte() {
        let (result, server) = answered(b"Sjunk");
        assert!(result.is_ok());
        // Length 8, code 80877103 (1234 << 16 | 5679).
        assert_eq!(server.written, [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
        assert_eq!(server.answer.position(), 1, "the bytes after `S` belong to TLS");
        assert!(matches!(answered(b"N").0, Err(WireError::Tls(TlsError::ServerTlsOff))));
        assert!(matches!(answered(b"E\0\0\0\x10").0, Err(WireError::Protocol(m)) if m.contains("error")));
        assert!(matches!(answered(b"HTTP/1.1").0, Err(WireError::Protocol(m)) if m.contains("PostgreSQL")));
        assert!(matches!(answered(b"").0, Err(WireError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof));
        let off = TlsError::ServerTlsOff.to_string();
        assert!(off.contains("ssl = off") && off.contains("sslmode=disable"), "{off}");
    }
}
