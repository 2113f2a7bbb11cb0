//! Connection URLs, `postgresql://[user[:password]@]host[:port][/database][?k=v&...]`,
//! read strictly: unknown parameters are refused with the closest known
//! one, and `sslmode` must be given, as one of the modes in [`SslMode`].
//!
//! `sslmode` has no default here. PostgreSQL's clients default to
//! `prefer` (try TLS, fall back to plaintext without a word), which a
//! secrets manager must not do; guessing a stricter default would turn a
//! URL copied from elsewhere into a surprise. A URL without `sslmode` is
//! refused with an error that says what to write.
//!
//! Errors describe the problem without quoting the URL: it may hold a
//! password.

use std::time::Duration;

use tresor_plugin_sdk::{did_you_mean, Error};
use zeroize::Zeroizing;

/// The query parameters of a connection URL this crate understands.
pub const URL_PARAMETERS: &[&str] = &["sslmode", "connect_timeout", "application_name"];

/// How the connection is protected: the `sslmode` parameter, with the
/// meaning libpq gives it. `prefer` and `allow` (which fall back to
/// plaintext, or start with it) are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// `disable`: plaintext. For loopback or a network you trust.
    Disable,
    /// `require`: TLS, without checking the server's certificate. Protects
    /// against passive eavesdropping only: anyone who can intercept the
    /// connection can pose as the server, see everything sent, and learn
    /// an MD5 or cleartext password (SCRAM exposes it to offline guessing
    /// only).
    Require,
    /// `verify-ca`: TLS, and the server's certificate chain must lead to
    /// the CA of config key `ca_pem`; its host name is not checked.
    VerifyCa,
    /// `verify-full`: as `verify-ca`, and the certificate must also name the
    /// host of the URL (DNS name or IP address).
    VerifyFull,
}

impl SslMode {
    /// The value as written in a URL (`verify-full`).
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// True for the modes that speak TLS.
    pub fn uses_tls(self) -> bool {
        self != SslMode::Disable
    }

    /// True for the modes that check the certificate against a CA.
    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

impl std::fmt::Display for SslMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What every error about `sslmode` tells the user to write.
const SSLMODE_CHOICES: &str = "write `sslmode=verify-full` (TLS, the server's certificate checked against config key \
     `ca_pem`, the PEM of the CA that issued it), `sslmode=verify-ca` (the same without the host name check), \
     `sslmode=require` (TLS without any certificate check: against eavesdropping only) or `sslmode=disable` (no TLS: \
     loopback or a network you trust only)";

/// The user or password part of a connection URL.
pub enum UrlPart {
    /// `{{username}}` / `{{password}}`: to be taken from a config key.
    Placeholder,
    /// Not in the URL.
    Absent,
    /// Given in the URL (percent-decoded).
    Literal(Zeroizing<String>),
}

/// A parsed connection URL.
pub struct ConnectionUrl {
    /// The user part.
    pub user: UrlPart,
    /// The password part.
    pub password: UrlPart,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port (5432 unless the URL says otherwise).
    pub port: u16,
    /// The database (percent-decoded; empty when the URL names none).
    pub database: String,
    /// The `application_name` parameter, if given.
    pub application_name: Option<String>,
    /// The `connect_timeout` parameter (whole seconds), if given.
    pub connect_timeout: Option<Duration>,
    /// The `sslmode` parameter (required).
    pub sslmode: SslMode,
}

/// Parses a connection URL given as config key `connection_url`. `example`
/// is a valid URL for this plugin, shown when the URL is malformed.
///
/// `sslmode` is required (see [`SslMode`]); `prefer` and `allow` are
/// refused, as is a URL without `sslmode`.
pub fn parse(url: &str, example: &str) -> Result<ConnectionUrl, Error> {
    let bad = |what: &str| Error::invalid_input(format!("config key `connection_url` {what}: write it as {example}"));
    let rest = url
        .strip_prefix("postgresql://")
        .or_else(|| url.strip_prefix("postgres://"))
        .ok_or_else(|| bad("must start with postgresql://"))?;
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (rest, None),
    };
    let (authority, database) = match rest.split_once('/') {
        Some((authority, database)) => (authority, database),
        None => (rest, ""),
    };
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => (Some(userinfo), hostport),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        None => (UrlPart::Absent, UrlPart::Absent),
        Some(userinfo) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (userinfo, None),
            };
            let user = match user {
                "{{username}}" => UrlPart::Placeholder,
                "" => UrlPart::Absent,
                literal => UrlPart::Literal(percent_decode(literal).ok_or_else(|| bad("has a malformed user name"))?),
            };
            let password = match password {
                None => UrlPart::Absent,
                Some("{{password}}") => UrlPart::Placeholder,
                Some(literal) => {
                    UrlPart::Literal(percent_decode(literal).ok_or_else(|| bad("has a malformed password"))?)
                }
            };
            (user, password)
        }
    };
    let (host, port) = split_host_port(hostport).map_err(bad)?;
    if host.is_empty() {
        return Err(bad("names no host"));
    }
    if host.contains(['{', '}', '/', ' ', ',']) {
        return Err(bad("has a malformed host (one host only, no placeholders)"));
    }
    let port = match port {
        None => 5432,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("has a port that is not a number from 1 to 65535"))?,
    };
    let database = percent_decode(database)
        .ok_or_else(|| bad("has a malformed database name"))?
        .to_string();
    let mut parsed = ConnectionUrl {
        user,
        password,
        host: host.to_owned(),
        port,
        database,
        application_name: None,
        connect_timeout: None,
        sslmode: SslMode::Disable,
    };
    let mut sslmode = None;
    for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(key).ok_or_else(|| bad("has a malformed parameter"))?;
        let value = percent_decode(value).ok_or_else(|| bad("has a malformed parameter"))?;
        match key.as_str() {
            "sslmode" => sslmode = Some(value.to_string()),
            "application_name" => parsed.application_name = Some(value.to_string()),
            "connect_timeout" => {
                let seconds: u64 = value.parse().map_err(|_| {
                    Error::invalid_input(
                        "the `connect_timeout` parameter of connection_url must be a whole number of seconds",
                    )
                })?;
                parsed.connect_timeout = Some(Duration::from_secs(seconds));
            }
            "sslrootcert" | "sslcert" | "sslkey" | "sslcrl" | "sslpassword" => {
                return Err(Error::invalid_input(format!(
                    "connection_url has the `{key}` parameter, which names a file the plugin cannot read: \
                     give the CA certificate inline as config key `ca_pem` instead (client certificates are \
                     not supported)",
                    key = key.as_str()
                )))
            }
            other => {
                return Err(Error::invalid_input(format!(
                    "unknown connection_url parameter `{other}`{}: the parameters this plugin understands are {}",
                    did_you_mean(other, URL_PARAMETERS),
                    URL_PARAMETERS.join(", ")
                )))
            }
        }
    }
    parsed.sslmode = sslmode_of(sslmode.as_deref())?;
    Ok(parsed)
}

/// `host:port` (`[v6]:port`), as a mount's `grants.sockets` must list it.
pub fn address(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Splits `host[:port]` or `[v6][:port]`.
fn split_host_port(hostport: &str) -> Result<(&str, Option<&str>), &'static str> {
    if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("has an IPv6 address without `]`")?;
        match after {
            "" => Ok((host, None)),
            _ => Ok((
                host,
                Some(after.strip_prefix(':').ok_or("has junk after the IPv6 address")?),
            )),
        }
    } else {
        Ok(match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        })
    }
}

/// Reads `sslmode`: one of the four modes this client honours, or an
/// error saying which to write.
fn sslmode_of(sslmode: Option<&str>) -> Result<SslMode, Error> {
    match sslmode {
        Some("disable") => Ok(SslMode::Disable),
        Some("require") => Ok(SslMode::Require),
        Some("verify-ca") => Ok(SslMode::VerifyCa),
        Some("verify-full") => Ok(SslMode::VerifyFull),
        Some(mode @ ("allow" | "prefer")) => Err(Error::unsupported(format!(
            "connection_url asks for sslmode={mode}, which may connect without TLS and never says so; a secrets \
             manager must know: choose explicitly, {SSLMODE_CHOICES}"
        ))),
        Some(other) => Err(Error::invalid_input(format!(
            "connection_url has sslmode={other}, which PostgreSQL does not know: {SSLMODE_CHOICES}"
        ))),
        None => Err(Error::invalid_input(format!(
            "connection_url sets no sslmode (PostgreSQL clients would then try TLS and silently fall back to \
             plaintext, which this plugin does not do): add it, {SSLMODE_CHOICES}"
        ))),
    }
}

/// Decodes `%XX` escapes; `None` for a malformed escape or non-UTF-8 result.
fn percent_decode(raw: &str) -> Option<Zeroizing<String>> {
    let bytes = raw.as_bytes();
    let mut out = Zeroizing::new(Vec::with_capacity(bytes.len()));
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let text = std::str::from_utf8(&out).ok()?;
    Some(Zeroizing::new(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "postgresql://tresor@127.0.0.1:5432/postgres?sslmode=disable";

    /// The kind and message of the error `result` must be.
    fn message(result: Result<ConnectionUrl, Error>) -> (&'static str, String) {
        match result {
            Err(Error::InvalidInput(m)) => ("InvalidInput", m),
            Err(Error::Unsupported(m)) => ("Unsupported", m),
            Err(other) => panic!("unexpected error {other:?}"),
            Ok(_) => panic!("expected an error"),
        }
    }

    fn literal(part: &UrlPart) -> Option<&str> {
        match part {
            UrlPart::Literal(text) => Some(text.as_str()),
            _ => None,
        }
    }

    #[test]
    fn reads_every_part() {
        let url = parse(
            "postgres://ad%40min:p%3Aw@db.internal:6432/app%20db?sslmode=disable&connect_timeout=3&application_name=x",
            EXAMPLE,
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            (literal(&url.user), literal(&url.password)),
            (Some("ad@min"), Some("p:w"))
        );
        assert_eq!(
            (url.host.as_str(), url.port, url.database.as_str()),
            ("db.internal", 6432, "app db")
        );
        assert_eq!(url.application_name.as_deref(), Some("x"));
        assert_eq!(url.connect_timeout, Some(Duration::from_secs(3)));

        let url = parse("postgresql://{{username}}:{{password}}@[::1]?sslmode=disable", EXAMPLE)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(matches!(url.user, UrlPart::Placeholder) && matches!(url.password, UrlPart::Placeholder));
        assert_eq!((url.host.as_str(), url.port, url.database.as_str()), ("::1", 5432, ""));
        assert_eq!(address(&url.host, url.port), "[::1]:5432");
        assert_eq!(address("127.0.0.1", 5432), "127.0.0.1:5432");
        let url = parse("postgresql://h?sslmode=disable", EXAMPLE).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(matches!(url.user, UrlPart::Absent) && matches!(url.password, UrlPart::Absent));
    }

    #[test]
    fn refuses_malformed_urls_without_quoting_them() {
        for (url, expect) in [
            ("mysql://a:hunter22@h/d?sslmode=disable", "postgresql://"),
            ("postgresql://a:hunter22@/d?sslmode=disable", "no host"),
            ("postgresql://a:hunter22@h:0/d?sslmode=disable", "port"),
            ("postgresql://a:hunter22@[::1/d?sslmode=disable", "IPv6"),
            ("postgresql://a:hunter22@h,i/d?sslmode=disable", "one host"),
            ("postgresql://a:hunter22%zz@h/d?sslmode=disable", "password"),
            (
                "postgresql://a:hunter22@h/d?sslmode=disable&sslmod=x",
                "did you mean `sslmode`",
            ),
            (
                "postgresql://a:hunter22@h/d?sslmode=disable&connect_timeout=soon",
                "connect_timeout",
            ),
        ] {
            let (kind, m) = message(parse(url, EXAMPLE));
            assert_eq!(kind, "InvalidInput", "{url}: {m}");
            assert!(m.contains(expect), "{url}: {m}");
            assert!(!m.contains("hunter22"), "{m}");
        }
        let (_, m) = message(parse("x", EXAMPLE));
        assert!(m.ends_with(EXAMPLE), "{m}");
    }

    #[test]
    fn reads_every_sslmode() {
        for (mode, expected) in [
            ("disable", SslMode::Disable),
            ("require", SslMode::Require),
            ("verify-ca", SslMode::VerifyCa),
            ("verify-full", SslMode::VerifyFull),
        ] {
            let url = parse(&format!("postgresql://a@h/d?sslmode={mode}"), EXAMPLE).unwrap_or_else(|e| panic!("{e:?}"));
            assert_eq!(url.sslmode, expected);
            assert_eq!(url.sslmode.as_str(), mode);
            assert_eq!(url.sslmode.uses_tls(), mode != "disable");
            assert_eq!(url.sslmode.verifies(), mode.starts_with("verify"));
        }
    }

    #[test]
    fn refuses_modes_that_fall_back_to_plaintext_and_a_missing_sslmode() {
        for mode in ["prefer", "allow"] {
            let (kind, m) = message(parse(&format!("postgresql://a@h/d?sslmode={mode}"), EXAMPLE));
            assert_eq!(kind, "Unsupported", "{mode}");
            assert!(m.contains(&format!("sslmode={mode}")), "{m}");
            for choice in ["sslmode=disable", "sslmode=require", "sslmode=verify-full", "`ca_pem`"] {
                assert!(m.contains(choice), "{m}");
            }
        }
        let (kind, m) = message(parse("postgresql://a:hunter22@h/d", EXAMPLE));
        assert_eq!(kind, "InvalidInput");
        assert!(
            m.contains("sets no sslmode") && m.contains("sslmode=disable") && m.contains("sslmode=verify-full"),
            "{m}"
        );
        assert!(!m.contains("hunter22"), "{m}");
        let (kind, m) = message(parse("postgresql://a@h/d?sslmode=sometimes", EXAMPLE));
        assert_eq!(kind, "InvalidInput");
        assert!(m.contains("sometimes") && m.contains("sslmode=require"), "{m}");
    }

    #[test]
    fn refuses_file_parameters_pointing_at_ca_pem() {
        let (kind, m) = message(parse(
            "postgresql://a@h/d?sslmode=verify-full&sslrootcert=/etc/ca.pem",
            EXAMPLE,
        ));
        assert_eq!(kind, "InvalidInput");
        assert!(m.contains("`sslrootcert`") && m.contains("`ca_pem`"), "{m}");
        assert!(!m.contains("/etc/ca.pem"), "{m}");
    }
}
