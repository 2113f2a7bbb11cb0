//! TLS for a listener (rustls, `ring` provider): the server certificate and
//! key, and optionally a client CA whose certificates authenticate clients
//! (mutual TLS).

use std::path::Path;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::ListenerConfig;

/// The rustls server configuration of a TLS listener (HTTP/2 and HTTP/1.1
/// offered by ALPN). Errors name the file and what is wrong with it.
pub fn server_config(listener: &ListenerConfig) -> Result<Arc<rustls::ServerConfig>, String> {
    let (Some(cert_file), Some(key_file)) = (&listener.tls_cert_file, &listener.tls_key_file) else {
        return Err("a TLS listener needs tls_cert_file and tls_key_file".into());
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = read_certs(cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("tls_key_file {}: no usable PEM private key: {e}", key_file.display()))?;
    let verifier = match &listener.client_ca_file {
        Some(ca_file) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca_file)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("client_ca_file {}: {e}", ca_file.display()))?;
            }
            let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let builder = if listener.require_client_cert {
                builder
            } else {
                builder.allow_unauthenticated()
            };
            builder
                .build()
                .map_err(|e| format!("client_ca_file {}: {e}", ca_file.display()))?
        }
        None => WebPkiClientVerifier::no_client_auth(),
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| {
            format!(
                "tls_cert_file {} / tls_key_file {}: {e}",
                cert_file.display(),
                key_file.display()
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Every certificate in a PEM file (at least one).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: cannot read PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in the file", path.display()));
    }
    Ok(certs)
}
