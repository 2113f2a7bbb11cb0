//! The mount's configuration: where the database is, as whom to log in,
//! and which tables to use. Unknown keys are refused with the closest
//! known one; errors name the key, never a value.

use std::fmt;
use std::time::Duration;

use tresor_pgwire::tls::{Tls, CA_KEY};
use tresor_pgwire::url::{self, UrlPart};
use tresor_plugin_sdk::{Config, Error};
use zeroize::Zeroizing;

use crate::schema::{Tables, DEFAULT_TABLE_PREFIX};

/// The mount configuration keys this plugin reads.
pub const CONFIG_KEYS: &[&str] = &[
    "connection_url",
    "password",
    "table_prefix",
    "connect_timeout_ms",
    CA_KEY,
];

/// A valid `connection_url`, shown when the mount's is malformed.
const EXAMPLE_URL: &str = "postgresql://tresor@127.0.0.1:5432/postgres?sslmode=disable";

/// How long connecting may take when the mount does not say.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and as whom the plugin connects.
pub struct Connection {
    /// Host name or IP address, as given (IPv6 without brackets).
    pub host: String,
    /// TCP port (5432 unless the URL says otherwise).
    pub port: u16,
    /// The role the plugin logs in as (it owns the tables).
    pub user: String,
    /// Its password (empty when neither the URL nor the config gives one).
    pub password: Zeroizing<String>,
    /// The database (the user's name unless the URL names one).
    pub database: String,
    /// Shown in `pg_stat_activity` (`tresor-kv` unless the URL says otherwise).
    pub application_name: String,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// TLS as the URL's `sslmode` says, with the CA of `ca_pem`.
    pub tls: Tls,
}

impl Connection {
    /// `host:port`, as the mount's `grants.sockets` must list it.
    pub fn address(&self) -> String {
        url::address(&self.host, self.port)
    }
}

/// Never prints the password.
impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("address", &self.address())
            .field("user", &self.user)
            .field("database", &self.database)
            .field("sslmode", &self.tls.mode())
            .finish_non_exhaustive()
    }
}

/// Everything the mount's config says.
#[derive(Debug)]
pub struct KvConfig {
    /// The database to connect to.
    pub connection: Connection,
    /// The tables holding the mount's secrets.
    pub tables: Tables,
}

impl KvConfig {
    /// Reads the mount's config: `connection_url`
    /// (`postgresql://user@host:port/db?sslmode=verify-full`, `sslmode`
    /// required), `password`, `table_prefix` (default `tresor_kv`),
    /// `connect_timeout_ms` and `ca_pem` (the CA for
    /// `sslmode=verify-ca`/`verify-full`).
    pub fn from_config(config: &Config) -> Result<Self, Error> {
        config.check_keys(CONFIG_KEYS)?;
        let parsed = url::parse(config.require("connection_url")?, EXAMPLE_URL)?;
        let user = match parsed.user {
            UrlPart::Literal(user) => user.to_string(),
            UrlPart::Placeholder | UrlPart::Absent => {
                return Err(Error::invalid_input(format!(
                    "config key `connection_url` must name the user to log in as, like {EXAMPLE_URL} \
                     (this plugin has no `username` key)"
                )))
            }
        };
        let password = match parsed.password {
            UrlPart::Placeholder => Zeroizing::new(
                config
                    .get("password")
                    .ok_or_else(|| {
                        Error::invalid_input("missing config key `password`: connection_url uses {{password}}")
                    })?
                    .to_owned(),
            ),
            UrlPart::Absent => Zeroizing::new(config.get("password").unwrap_or_default().to_owned()),
            UrlPart::Literal(password) => {
                if config.get("password").is_some_and(|p| p != password.as_str()) {
                    return Err(Error::invalid_input(
                        "connection_url has a password and config key `password` another: \
                         drop the password from connection_url (better: give `password` as a `ref:`)",
                    ));
                }
                password
            }
        };
        let mut connect_timeout = parsed.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        if let Some(ms) = config.parse::<u64>("connect_timeout_ms", "a whole number of milliseconds")? {
            connect_timeout = Duration::from_millis(ms);
        }
        if connect_timeout.is_zero() {
            return Err(Error::invalid_input(
                "config key `connect_timeout_ms` must be more than 0: leave it out for the default (10 s)",
            ));
        }
        let tables = Tables::new(config.get("table_prefix").unwrap_or(DEFAULT_TABLE_PREFIX))?;
        let database = if parsed.database.is_empty() {
            user.clone()
        } else {
            parsed.database
        };
        let tls = Tls::new(parsed.sslmode, &parsed.host, config.get(CA_KEY))?;
        Ok(KvConfig {
            connection: Connection {
                host: parsed.host,
                port: parsed.port,
                user,
                password,
                database,
                application_name: parsed.application_name.unwrap_or_else(|| "tresor-kv".to_owned()),
                connect_timeout,
                tls,
            },
            tables,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Config {
        Config::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn invalid(result: Result<KvConfig, Error>) -> String {
        match result {
            Err(Error::InvalidInput(m)) => m,
            Err(other) => panic!("expected invalid-input, got {other:?}"),
            Ok(_) => panic!("expected invalid-input, got a config"),
        }
    }

    const URL: &str = "postgresql://tresor@127.0.0.1:5433/secrets?sslmode=disable";

    #[test]
    fn reads_the_connection_and_the_tables() {
        let c = KvConfig::from_config(&config(&[
            ("connection_url", URL),
            ("password", "s3cr3t"),
            ("connect_timeout_ms", "2500"),
        ]))
        .unwrap_or_else(|e| panic!("{e:?}"));
        let conn = &c.connection;
        assert_eq!(
            (conn.host.as_str(), conn.port, conn.address()),
            ("127.0.0.1", 5433, "127.0.0.1:5433".into())
        );
        assert_eq!((conn.user.as_str(), conn.database.as_str()), ("tresor", "secrets"));
        assert_eq!(conn.password.as_str(), "s3cr3t");
        assert_eq!(conn.connect_timeout, Duration::from_millis(2500));
        assert_eq!(conn.application_name, "tresor-kv");
        assert_eq!(c.tables.prefix(), "tresor_kv");
        assert!(!format!("{c:?}").contains("s3cr3t"));

        let c = KvConfig::from_config(&config(&[
            ("connection_url", "postgresql://app:in%40url@db/?sslmode=disable"),
            ("table_prefix", "team_a"),
        ]))
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(c.connection.password.as_str(), "in@url");
        assert_eq!(c.connection.database, "app");
        assert_eq!(c.tables.prefix(), "team_a");
    }

    #[test]
    fn refuses_a_misspelt_key_naming_the_closest() {
        let m = invalid(KvConfig::from_config(&config(&[
            ("connection_url", URL),
            ("pasword", "x"),
        ])));
        assert!(m.contains("`pasword`") && m.contains("did you mean `password`"), "{m}");
        let m = invalid(KvConfig::from_config(&config(&[
            ("connection_url", URL),
            ("table_prefx", "a"),
        ])));
        assert!(m.contains("did you mean `table_prefix`"), "{m}");
    }

    #[test]
    fn refuses_what_cannot_work_without_quoting_values() {
        let m = invalid(KvConfig::from_config(&config(&[])));
        assert!(m.contains("`connection_url`"), "{m}");
        for url in [
            "postgresql://127.0.0.1/postgres?sslmode=disable",
            "postgresql://{{username}}:{{password}}@127.0.0.1/postgres?sslmode=disable",
        ] {
            let m = invalid(KvConfig::from_config(&config(&[
                ("connection_url", url),
                ("password", "pw"),
            ])));
            assert!(m.contains("must name the user"), "{m}");
        }
        let m = invalid(KvConfig::from_config(&config(&[(
            "connection_url",
            "postgresql://u:{{password}}@h/d?sslmode=disable",
        )])));
        assert!(m.contains("`password`"), "{m}");
        let m = invalid(KvConfig::from_config(&config(&[
            ("connection_url", "postgresql://u:hunter22@h/d?sslmode=disable"),
            ("password", "xyzzy"),
        ])));
        assert!(!m.contains("hunter22") && !m.contains("xyzzy"), "{m}");
        let m = invalid(KvConfig::from_config(&config(&[
            ("connection_url", URL),
            ("connect_timeout_ms", "0"),
        ])));
        assert!(m.contains("connect_timeout_ms"), "{m}");
        let m = invalid(KvConfig::from_config(&config(&[
            ("connection_url", URL),
            ("table_prefix", "Bad-Name"),
        ])));
        assert!(m.contains("table_prefix"), "{m}");
        let m = invalid(KvConfig::from_config(&config(&[(
            "connection_url",
            "postgresql://u@h/d",
        )])));
        assert!(
            m.contains("sslmode=disable") && m.contains("sslmode=verify-full"),
            "{m}"
        );
        match KvConfig::from_config(&config(&[("connection_url", "postgresql://u@h/d?sslmode=prefer")])) {
            Err(Error::Unsupported(m)) => {
                assert!(m.contains("sslmode=disable") && m.contains("sslmode=require"), "{m}")
            }
            other => panic!("expected unsupported, got {other:?}"),
        }
    }

    #[test]
    fn reads_the_tls_settings() {
        use tresor_pgwire::url::SslMode;
        let ca = {
            let key = rcgen::KeyPair::generate().expect("key");
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.self_signed(&key).expect("CA").pem()
        };
        let with = |url: &str, ca: Option<&str>| {
            let mut pairs = vec![("connection_url", url)];
            pairs.extend(ca.map(|ca| ("ca_pem", ca)));
            KvConfig::from_config(&config(&pairs))
        };
        let c = with("postgresql://u@db.internal/d?sslmode=verify-full", Some(&ca)).expect("verify-full");
        assert_eq!(c.connection.tls.mode(), SslMode::VerifyFull);
        assert!(format!("{c:?}").contains("VerifyFull"));
        let c = with("postgresql://u@h/d?sslmode=require", None).expect("require");
        assert_eq!(c.connection.tls.mode(), SslMode::Require);
        let m = invalid(with("postgresql://u@h/d?sslmode=verify-ca", None));
        assert!(m.contains("`ca_pem` is missing"), "{m}");
        let m = invalid(with("postgresql://u@h/d?sslmode=disable", Some(&ca)));
        assert!(m.contains("`ca_pem`") && m.contains("verify-full"), "{m}");
        let m = invalid(KvConfig::from_config(&config(&[
            ("connection_url", URL),
            ("ca_pme", "x"),
        ])));
        assert!(m.contains("did you mean `ca_pem`"), "{m}");
    }
}
