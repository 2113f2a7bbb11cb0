//! Client certificates: a certificate that the listener's client CA
//! verified authenticates as the principal named by its subject CN, with the
//! groups and attributes `[server.client_certs."<CN>"]` gives it.

use std::collections::BTreeMap;

use crate::config::ClientCertPrincipal;
use crate::policy::Principal;

/// Maps verified client certificates to principals.
#[derive(Clone, Debug, Default)]
pub struct ClientCertMap {
    by_cn: BTreeMap<String, ClientCertPrincipal>,
}

impl ClientCertMap {
    /// The map from configuration (`[server.client_certs]`).
    pub fn new(by_cn: BTreeMap<String, ClientCertPrincipal>) -> Self {
        ClientCertMap { by_cn }
    }

    /// The principal a verified certificate (DER) stands for: named by its
    /// subject CN (or the configured `principal`), with the configured groups
    /// and attributes. Fails when the certificate has no usable CN.
    pub fn principal(&self, der: &[u8]) -> Result<Principal, String> {
        let cn = common_name(der)?;
        Ok(match self.by_cn.get(&cn) {
            Some(m) => Principal {
                name: m.principal.clone().unwrap_or(cn),
                groups: m.groups.clone(),
                attributes: m.attributes.clone(),
            },
            None => Principal::new(cn),
        })
    }
}

/// The subject CN of a DER certificate (exactly one, valid UTF-8, non-empty).
pub fn common_name(der: &[u8]) -> Result<String, String> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| format!("client certificate does not parse: {e}"))?;
    let mut names = cert.subject().iter_common_name();
    let cn = names
        .next()
        .ok_or("client certificate has no subject CN; Tresor names the principal after it")?;
    if names.next().is_some() {
        return Err("client certificate has several subject CNs; use exactly one".into());
    }
    let cn = cn
        .as_str()
        .map_err(|_| "client certificate subject CN is not a text string".to_string())?;
    if cn.is_empty() || cn.chars().any(char::is_control) {
        return Err("client certificate subject CN is empty or has control characters".into());
    }
    Ok(cn.to_string())
}
