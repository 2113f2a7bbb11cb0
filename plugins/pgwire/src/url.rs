//! Connection URLs, `postgresql://[user[:password]@]host[:port][/database][?k=v&...]`,
//! read strictly: unknown parameters are refused with the closest known
//! one, and `sslmode` must be `disable` until TLS is supported.
//!
//! Errors describe the problem without quoting the URL: it may hold a
//! password.

use std::time::Duration;

use tresor_plugin_sdk::{did_you_mean, Error};
use zeroize::Zeroizing;

/// The query parameters of a connection URL this crate understands.
pub const URL_PARAMETERS: &[&str] = &["sslmode", "connect_timeout", "application_name"];

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
}

/// Parses a connection URL given as config key `connection_url`. `example`
/// is a valid URL for this plugin, shown when the URL is malformed.
///
/// `sslmode=disable` is required: this client does not speak TLS yet, and
/// a PostgreSQL client without `sslmode` tries TLS first.
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
            other => {
                return Err(Error::invalid_input(format!(
                    "unknown connection_url parameter `{other}`{}: the parameters this plugin understands are {}",
                    did_you_mean(other, URL_PARAMETERS),
                    URL_PARAMETERS.join(", ")
                )))
            }
        }
    }
    check_sslmode(sslmode.as_deref())?;
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

/// `sslmode` values that allow a plaintext connection are all this client
/// can do for now.
fn check_sslmode(sslmode: Option<&str>) -> Result<(), Error> {
    match sslmode {
        Some("disable") => Ok(()),
        Some(mode @ ("allow" | "prefer" | "require" | "verify-ca" | "verify-full")) => {
            Err(Error::unsupported(format!(
                "connection_url asks for sslmode={mode}, but this plugin does not support TLS yet: \
             use sslmode=disable on a network you trust (loopback, a private link)"
            )))
        }
        Some(other) => Err(Error::invalid_input(format!(
            "connection_url has sslmode={other}, which PostgreSQL does not know: use sslmode=disable"
        ))),
        None => Err(Error::unsupported(
            "connection_url sets no sslmode, and PostgreSQL clients then try TLS first (sslmode=prefer), \
             which this plugin does not support yet: add `?sslmode=disable` to connect without TLS",
        )),
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
    fn requires_sslmode_disable() {
        for url in ["postgresql://a@h/d?sslmode=require", "postgresql://a@h/d"] {
            let (kind, m) = message(parse(url, EXAMPLE));
            assert_eq!(kind, "Unsupported", "{url}");
            assert!(m.contains("TLS") && m.contains("sslmode=disable"), "{m}");
        }
        let (kind, m) = message(parse("postgresql://a@h/d?sslmode=sometimes", EXAMPLE));
        assert_eq!(kind, "InvalidInput");
        assert!(m.contains("sometimes"), "{m}");
    }
}
