//! The `[server]` table of `tresor.toml`: what `tresor server` listens on
//! (plain HTTP, TLS, mutual TLS), request limits, tokens, and which
//! principal a client certificate stands for.
//!
//! ```toml
//! [server]
//! max_request_bytes = 1048576            # larger request bodies get 413
//! shutdown_grace_ms = 30000              # in-flight requests get this long on SIGTERM
//!
//! [server.tokens]
//! # tokens live in the host state store ([state]); `file` names an earlier
//! # version's token file, imported at start (default tokens.json)
//! default_ttl = "768h"                   # for tokens created without a ttl
//! max_ttl = "8760h"                      # longer requests are capped
//! bootstrap_root_token = true            # print a root token once when the store is empty
//!
//! [[server.listener]]
//! address = "127.0.0.1:8200"             # plain HTTP, loopback only
//!
//! [[server.listener]]
//! address = "0.0.0.0:8443"
//! tls_cert_file = "/etc/tresor/tls/server.pem"   # certificate chain, PEM
//! tls_key_file = "/etc/tresor/tls/server.key"    # private key, PEM
//! client_ca_file = "/etc/tresor/tls/clients.pem" # verify client certificates against this CA
//! require_client_cert = true                     # refuse clients without one
//!
//! # A verified client certificate authenticates as the principal named by
//! # its subject CN; this table adds groups and attributes per CN.
//! [server.client_certs."deploy-bot"]
//! groups = ["apps"]
//! attributes = { team = "billing" }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Address of the listener when none is configured.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8200";

/// The HTTP server's settings (`[server]`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Shorthand for one plain-HTTP listener at this address. Exclusive with
    /// `[[server.listener]]`; without either, the server listens on
    /// [`DEFAULT_LISTEN`].
    #[serde(default)]
    pub listen: Option<String>,
    /// The listeners (`[[server.listener]]`).
    #[serde(default, rename = "listener")]
    pub listeners: Vec<ListenerConfig>,
    /// Largest accepted request body in bytes; larger ones are refused with 413.
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: usize,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish
    /// before their connections are closed, in milliseconds.
    #[serde(default = "default_shutdown_grace_ms")]
    pub shutdown_grace_ms: u64,
    /// The token store.
    #[serde(default)]
    pub tokens: TokenConfig,
    /// Client certificate subject CN → the principal's groups and attributes.
    #[serde(default)]
    pub client_certs: BTreeMap<String, ClientCertPrincipal>,
}

fn default_max_request_bytes() -> usize {
    1 << 20
}
fn default_shutdown_grace_ms() -> u64 {
    30_000
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: None,
            listeners: Vec::new(),
            max_request_bytes: default_max_request_bytes(),
            shutdown_grace_ms: default_shutdown_grace_ms(),
            tokens: TokenConfig::default(),
            client_certs: BTreeMap::new(),
        }
    }
}

/// One listener (`[[server.listener]]`): plain HTTP, or TLS when a
/// certificate and key are given.
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// `host:port` to bind; port 0 picks a free port.
    pub address: String,
    /// Server certificate chain (PEM). With `tls_key_file`, the listener speaks TLS.
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// Server private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
    /// CA certificates (PEM) that client certificates are verified against.
    /// A client presenting a certificate it signed authenticates as the
    /// certificate's subject CN.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// Refuse TLS clients that present no valid client certificate.
    #[serde(default)]
    pub require_client_cert: bool,
}

impl ListenerConfig {
    /// A plain-HTTP listener at `address`.
    pub fn plain(address: impl Into<String>) -> Self {
        ListenerConfig {
            address: address.into(),
            ..Default::default()
        }
    }

    /// Whether this listener speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls_cert_file.is_some()
    }
}

/// The token store (`[server.tokens]`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// The token file of an earlier Tresor (default `<state_dir>/tokens.json`):
    /// its tokens are imported into the state store at start and the file
    /// renamed `<file>.imported`. Tokens now live in the state store.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Lifetime of tokens created without a `ttl` (`"768h"`, `"30m"`, `"3600"`).
    #[serde(default = "default_ttl")]
    pub default_ttl: String,
    /// Longest lifetime a created token gets; longer requests are capped.
    #[serde(default = "default_max_ttl")]
    pub max_ttl: String,
    /// When the store holds no token at startup, create a root token
    /// (principal `root`, group `admins`, no expiry) and print it once.
    #[serde(default = "default_true")]
    pub bootstrap_root_token: bool,
}

fn default_ttl() -> String {
    "768h".into()
}
fn default_max_ttl() -> String {
    "8760h".into()
}
fn default_true() -> bool {
    true
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            file: None,
            default_ttl: default_ttl(),
            max_ttl: default_max_ttl(),
            bootstrap_root_token: true,
        }
    }
}

impl TokenConfig {
    /// `default_ttl` in seconds (checked by [`ServerConfig::check`]).
    pub fn default_ttl_seconds(&self) -> u64 {
        parse_duration_seconds(&self.default_ttl).unwrap_or(768 * 3600)
    }

    /// `max_ttl` in seconds (checked by [`ServerConfig::check`]).
    pub fn max_ttl_seconds(&self) -> u64 {
        parse_duration_seconds(&self.max_ttl).unwrap_or(8760 * 3600)
    }
}

/// Groups and attributes of the principal a client certificate authenticates as.
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCertPrincipal {
    /// Principal name; default: the certificate's subject CN.
    #[serde(default)]
    pub principal: Option<String>,
    /// Groups (Cedar `Tresor::Group`s the principal is in).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Attributes (Cedar principal tags).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

impl ServerConfig {
    /// The listeners in effect: `[[server.listener]]`, else one plain
    /// listener at `listen`, else one at [`DEFAULT_LISTEN`].
    pub fn effective_listeners(&self) -> Vec<ListenerConfig> {
        if !self.listeners.is_empty() {
            return self.listeners.clone();
        }
        vec![ListenerConfig::plain(
            self.listen.clone().unwrap_or_else(|| DEFAULT_LISTEN.into()),
        )]
    }

    /// The token file in effect.
    pub fn token_file(&self, state_dir: &Path) -> PathBuf {
        self.tokens
            .file
            .as_ref()
            .map(|f| if f.is_relative() { state_dir.join(f) } else { f.clone() })
            .unwrap_or_else(|| state_dir.join("tokens.json"))
    }

    /// Make relative file paths relative to `base` (the config file's directory).
    pub(crate) fn rebase(&mut self, base: &Path) {
        let fix = |p: &mut Option<PathBuf>| {
            if let Some(p) = p.as_mut().filter(|p| p.is_relative()) {
                *p = base.join(&*p);
            }
        };
        for l in &mut self.listeners {
            fix(&mut l.tls_cert_file);
            fix(&mut l.tls_key_file);
            fix(&mut l.client_ca_file);
        }
    }

    /// Reject settings that cannot work, saying what to change.
    pub fn check(&self) -> Result<(), String> {
        if self.listen.is_some() && !self.listeners.is_empty() {
            return Err("[server]: set either `listen` or `[[server.listener]]` tables, not both".into());
        }
        if self.max_request_bytes == 0 {
            return Err("[server]: max_request_bytes must be positive".into());
        }
        for l in &self.effective_listeners() {
            let at = format!("[[server.listener]] `{}`", l.address);
            if l.address.trim().is_empty() || !l.address.contains(':') {
                return Err(format!("{at}: address must be `host:port` (e.g. `127.0.0.1:8200`)"));
            }
            match (&l.tls_cert_file, &l.tls_key_file) {
                (Some(_), Some(_)) | (None, None) => {}
                _ => return Err(format!("{at}: set both tls_cert_file and tls_key_file, or neither")),
            }
            if l.client_ca_file.is_some() && !l.is_tls() {
                return Err(format!(
                    "{at}: client_ca_file needs TLS: set tls_cert_file and tls_key_file"
                ));
            }
            if l.require_client_cert && l.client_ca_file.is_none() {
                return Err(format!(
                    "{at}: require_client_cert needs client_ca_file (the CA that signs client certificates)"
                ));
            }
        }
        let default = parse_duration_seconds(&self.tokens.default_ttl)
            .map_err(|e| format!("[server.tokens] default_ttl: {e}"))?;
        let max = parse_duration_seconds(&self.tokens.max_ttl).map_err(|e| format!("[server.tokens] max_ttl: {e}"))?;
        if max != 0 && (default == 0 || default > max) {
            return Err("[server.tokens]: default_ttl must not exceed max_ttl".into());
        }
        for (cn, p) in &self.client_certs {
            if cn.is_empty() || p.principal.as_deref() == Some("") {
                return Err("[server.client_certs]: names must not be empty".into());
            }
        }
        Ok(())
    }
}

/// Parse a duration as Vault accepts it: whole seconds (`"3600"`), or
/// numbers with units `s`, `m`, `h`, `d` (`"1h30m"`, `"768h"`, `"7d"`).
/// `"0"` is zero (for a TTL: no expiry, or "use the default").
pub fn parse_duration_seconds(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let bad = || format!("`{text}` is not a duration; use seconds (`3600`) or units like `90s`, `30m`, `12h`, `7d`");
    if s.is_empty() {
        return Err(bad());
    }
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        number.clear();
        total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(bad)?;
    }
    if !number.is_empty() {
        return Err(bad());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_seconds("3600"), Ok(3600));
        assert_eq!(parse_duration_seconds("1h30m"), Ok(5400));
        assert_eq!(parse_duration_seconds("768h"), Ok(768 * 3600));
        assert_eq!(parse_duration_seconds("2d"), Ok(172_800));
        assert_eq!(parse_duration_seconds("0"), Ok(0));
        for bad in ["", "h", "1x", "10m5", "-1s", "1.5h"] {
            assert!(parse_duration_seconds(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parses_the_documented_example_and_refuses_half_tls() {
        let doc: String = include_str!("server.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start())
            .collect::<Vec<_>>()
            .join("\n");
        let c = crate::Config::from_toml(&doc).unwrap();
        assert_eq!(c.server.listeners.len(), 2);
        assert!(c.server.listeners[1].require_client_cert);
        assert_eq!(c.server.client_certs["deploy-bot"].groups, vec!["apps"]);
        assert_eq!(c.server.tokens.max_ttl_seconds(), 8760 * 3600);

        let e = crate::Config::from_toml("[[server.listener]]\naddress = \"127.0.0.1:1\"\ntls_cert_file = \"c.pem\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("tls_key_file"), "{e}");
        let e = crate::Config::from_toml(
            "[server]\nlisten = \"127.0.0.1:1\"\n[[server.listener]]\naddress = \"127.0.0.1:2\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not both"), "{e}");
        assert_eq!(
            crate::Config::from_toml("").unwrap().server.effective_listeners()[0].address,
            DEFAULT_LISTEN
        );
    }
}
