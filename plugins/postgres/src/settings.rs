//! The mount's configuration (where and how to connect) and a role's
//! settings (which statements to run), validated strictly: an unknown key
//! is refused with the closest known one (the SDK's [`Config::check_keys`]
//! and [`Role::check_settings`]).

use std::fmt;
use std::time::Duration;

use tresor_pgwire::tls::{Tls, CA_KEY};
use tresor_pgwire::url::{self, UrlPart};
use tresor_plugin_sdk::{Config, Error, Role};
use zeroize::Zeroizing;

use crate::template::{self, Placeholder};

/// The mount configuration keys this plugin reads.
pub const MOUNT_KEYS: &[&str] = &[
    "connection_url",
    "username",
    "password",
    "connect_timeout_ms",
    "password_authentication",
    CA_KEY,
];

/// The role settings this plugin reads.
pub const ROLE_KEYS: &[&str] = &["creation_statements", "revocation_statements", "renew_statements"];

/// A valid `connection_url`, shown when the mount's is malformed.
const EXAMPLE_URL: &str = "postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres?sslmode=disable";

/// How long connecting may take when the mount does not say.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and as whom the plugin connects, from the mount's config.
pub struct ConnectionSettings {
    /// Host name or IP address, as given (IPv6 without brackets).
    pub host: String,
    /// TCP port (5432 unless the URL says otherwise).
    pub port: u16,
    /// The role the plugin logs in as (it creates and drops roles).
    pub user: String,
    /// Its password (empty when the URL and the config give none).
    pub password: Zeroizing<String>,
    /// The database to connect to (the user's name unless the URL names one).
    pub database: String,
    /// Shown in `pg_stat_activity` (`tresor` unless the URL says otherwise).
    pub application_name: String,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// TLS as the URL's `sslmode` says, with the CA of `ca_pem`.
    pub tls: Tls,
    /// What `{{password}}` becomes in the creation statements.
    pub password_authentication: PasswordAuthentication,
}

/// What the creation statements receive as `{{password}}`: config key
/// `password_authentication`, with the values of Vault's PostgreSQL plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PasswordAuthentication {
    /// `password` (the default): the password itself; PostgreSQL derives
    /// its verifier as its `password_encryption` setting says.
    #[default]
    Password,
    /// `scram-sha-256`: the plugin derives the SCRAM-SHA-256 verifier
    /// (random salt, 4096 iterations, as `psql`'s `\password` does) and
    /// sends only that. The password never reaches the server, so it cannot
    /// show up in its logs (`log_statement`, pgaudit), `pg_stat_activity` or
    /// `pg_stat_statements`. It is not faster: PostgreSQL still runs one
    /// derivation per `CREATE ROLE` (checking that the password is not
    /// empty), and the plugin's own derivation adds about 15 ms per issue.
    /// Needs PostgreSQL 10 or later; clients must log in with SCRAM.
    ScramSha256,
}

impl PasswordAuthentication {
    fn from_config(config: &Config) -> Result<Self, Error> {
        match config.get("password_authentication") {
            None | Some("password") => Ok(PasswordAuthentication::Password),
            Some("scram-sha-256") => Ok(PasswordAuthentication::ScramSha256),
            Some(other) => Err(Error::invalid_input(format!(
                "config key `password_authentication` is `{other}`: write `password` (the default) or \
                 `scram-sha-256`"
            ))),
        }
    }
}

/// Never prints the password.
impl fmt::Debug for ConnectionSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionSettings")
            .field("address", &self.address())
            .field("user", &self.user)
            .field("database", &self.database)
            .field("sslmode", &self.tls.mode())
            .finish_non_exhaustive()
    }
}

impl ConnectionSettings {
    /// Reads the mount's config: `connection_url` in Vault's form
    /// (`postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres?sslmode=disable`,
    /// placeholders filled from `username` and `password`, or a URL with the
    /// credentials in it; `sslmode` required), `connect_timeout_ms` and
    /// `ca_pem` (the CA for `sslmode=verify-ca`/`verify-full`). Errors name
    /// the key, never a value.
    pub fn from_config(config: &Config) -> Result<Self, Error> {
        config.check_keys(MOUNT_KEYS)?;
        let url = config.require("connection_url")?;
        let parsed = url::parse(url, EXAMPLE_URL)?;

        let user = match parsed.user {
            UrlPart::Placeholder | UrlPart::Absent => config
                .get("username")
                .filter(|u| !u.is_empty())
                .ok_or_else(|| {
                    Error::invalid_input(
                        "missing config key `username`: set it (connection_url uses {{username}} or names no user)",
                    )
                })?
                .to_owned(),
            UrlPart::Literal(user) => {
                if config.get("username").is_some_and(|u| u != user.as_str()) {
                    return Err(Error::invalid_input(
                        "connection_url names a user and config key `username` names another: \
                         write {{username}} in connection_url, or drop `username`",
                    ));
                }
                user.to_string()
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
                         write {{password}} in connection_url, or drop `password`",
                    ));
                }
                password
            }
        };

        let mut connect_timeout = parsed.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let application_name = parsed.application_name.unwrap_or_else(|| "tresor".to_owned());
        if let Some(ms) = config.parse::<u64>("connect_timeout_ms", "a whole number of milliseconds")? {
            connect_timeout = Duration::from_millis(ms);
        }
        if connect_timeout.is_zero() {
            return Err(Error::invalid_input(
                "config key `connect_timeout_ms` must be more than 0: leave it out for the default (10 s)",
            ));
        }
        let database = if parsed.database.is_empty() {
            user.clone()
        } else {
            parsed.database
        };
        let tls = Tls::new(parsed.sslmode, &parsed.host, config.get(CA_KEY))?;
        let password_authentication = PasswordAuthentication::from_config(config)?;
        Ok(ConnectionSettings {
            host: parsed.host,
            port: parsed.port,
            user,
            password,
            database,
            application_name,
            connect_timeout,
            tls,
            password_authentication,
        })
    }

    /// `host:port` (`[v6]:port`), as the mount's `grants.sockets` must list it.
    pub fn address(&self) -> String {
        url::address(&self.host, self.port)
    }
}

/// The statements of one role, from its settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleStatements {
    /// Creates the role: `creation_statements` (required).
    pub creation: String,
    /// Drops it: `revocation_statements`, or the default when unset.
    pub revocation: Option<String>,
    /// Extends it: `renew_statements`, or the default when unset.
    pub renew: Option<String>,
}

impl RoleStatements {
    /// Reads and checks a role's settings: `creation_statements` is required,
    /// unknown keys and unknown placeholders are refused, and each statement
    /// kind may only use the placeholders it has values for.
    pub fn from_role(role: &Role) -> Result<Self, Error> {
        role.check_settings(ROLE_KEYS)?;
        let settings = role.config();
        let creation = settings
            .get("creation_statements")
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                Error::invalid_input(format!(
                    "role `{}` has no `creation_statements`: set them, e.g. \
                     creation_statements = \"CREATE ROLE \\\"{{{{name}}}}\\\" WITH LOGIN PASSWORD '{{{{password}}}}' \
                     VALID UNTIL '{{{{expiration}}}}';\"",
                    role.name
                ))
            })?
            .to_owned();
        check_statements(
            role,
            "creation_statements",
            &creation,
            &[Placeholder::Name, Placeholder::Password, Placeholder::Expiration],
        )?;
        let renew = optional_statements(
            role,
            &settings,
            "renew_statements",
            &[Placeholder::Name, Placeholder::Expiration],
        )?;
        let revocation = optional_statements(role, &settings, "revocation_statements", &[Placeholder::Name])?;
        Ok(RoleStatements {
            creation,
            revocation,
            renew,
        })
    }

    /// The `revocation_statements` of a role for `revoke`, which must work
    /// even when the role was removed from the configuration (no settings:
    /// `None`, the default statements) or is otherwise incomplete.
    pub fn revocation_of(role: &Role) -> Result<Option<String>, Error> {
        optional_statements(role, &role.config(), "revocation_statements", &[Placeholder::Name])
    }

    /// The `rotation_statements` of a static role for `set-password`
    /// (`None`: the default `ALTER ROLE ... WITH PASSWORD`). A static role
    /// accepts no other setting.
    pub fn rotation_of(role: &Role) -> Result<Option<String>, Error> {
        role.check_settings(&["rotation_statements"])?;
        optional_statements(
            role,
            &role.config(),
            "rotation_statements",
            &[Placeholder::Name, Placeholder::Password],
        )
    }

    /// The `renew_statements` of a role for `renew` (`None`: the default).
    pub fn renew_of(role: &Role) -> Result<Option<String>, Error> {
        optional_statements(
            role,
            &role.config(),
            "renew_statements",
            &[Placeholder::Name, Placeholder::Expiration],
        )
    }
}

fn optional_statements(
    role: &Role,
    settings: &Config,
    key: &str,
    allowed: &[Placeholder],
) -> Result<Option<String>, Error> {
    match settings.get(key) {
        None => Ok(None),
        Some(s) if s.trim().is_empty() => Err(Error::invalid_input(format!(
            "role `{}` sets `{key}` to nothing: leave it out for the default statements",
            role.name
        ))),
        Some(s) => {
            check_statements(role, key, s, allowed)?;
            Ok(Some(s.to_owned()))
        }
    }
}

fn check_statements(role: &Role, key: &str, statements: &str, allowed: &[Placeholder]) -> Result<(), Error> {
    template::check(statements, allowed).map_err(|e| {
        Error::invalid_input(format!(
            "role `{}`, setting `{key}`: {e}: fix the statements",
            role.name
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Config {
        Config::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn role(pairs: &[(&str, &str)]) -> Role {
        Role {
            name: "readonly".into(),
            settings: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    fn invalid(result: Result<impl Sized, Error>) -> String {
        match result {
            Err(Error::InvalidInput(m)) => m,
            Err(other) => panic!("expected invalid-input, got {other:?}"),
            Ok(_) => panic!("expected invalid-input, got Ok"),
        }
    }

    const VAULT_URL: &str = "postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres?sslmode=disable";

    #[test]
    fn reads_vaults_connection_url() {
        let s = ConnectionSettings::from_config(&config(&[
            ("connection_url", VAULT_URL),
            ("username", "vaultadmin"),
            ("password", "s3cr3t"),
            ("connect_timeout_ms", "2500"),
        ]))
        .expect("valid");
        assert_eq!((s.host.as_str(), s.port), ("127.0.0.1", 5432));
        assert_eq!(s.user, "vaultadmin");
        assert_eq!(s.password.as_str(), "s3cr3t");
        assert_eq!(s.database, "postgres");
        assert_eq!(s.connect_timeout, Duration::from_millis(2500));
        assert_eq!(s.address(), "127.0.0.1:5432");
        assert!(!format!("{s:?}").contains("s3cr3t"));
    }

    #[test]
    fn reads_urls_with_credentials_names_and_ipv6() {
        let s = ConnectionSettings::from_config(&config(&[(
            "connection_url",
            "postgres://admin:p%40ss%3Aw@db.internal/app?sslmode=disable&connect_timeout=3&application_name=x",
        )]))
        .expect("valid");
        assert_eq!((s.host.as_str(), s.port), ("db.internal", 5432));
        assert_eq!((s.user.as_str(), s.password.as_str()), ("admin", "p@ss:w"));
        assert_eq!((s.database.as_str(), s.application_name.as_str()), ("app", "x"));
        assert_eq!(s.connect_timeout, Duration::from_secs(3));

        let s = ConnectionSettings::from_config(&config(&[
            ("connection_url", "postgresql://[::1]:6432?sslmode=disable"),
            ("username", "admin"),
        ]))
        .expect("valid");
        assert_eq!(
            (s.host.as_str(), s.port, s.address()),
            ("::1", 6432, "[::1]:6432".to_owned())
        );
        assert_eq!(s.database, "admin");
        assert_eq!(s.password.as_str(), "");
    }

    #[test]
    fn refuses_unknown_config_keys_naming_the_closest() {
        let m = invalid(ConnectionSettings::from_config(&config(&[
            ("connection_url", VAULT_URL),
            ("username", "a"),
            ("pasword", "x"),
        ])));
        assert!(m.contains("`pasword`") && m.contains("did you mean `password`"), "{m}");
        let m = invalid(ConnectionSettings::from_config(&config(&[(
            "connection_url",
            "postgresql://a@h/d?sslmode=disable&sslmod=x",
        )])));
        assert!(m.contains("`sslmod`") && m.contains("`sslmode`"), "{m}");
    }

    #[test]
    fn refuses_bad_urls_without_quoting_them() {
        for (url, expect) in [
            ("mysql://a:hunter22@h/d?sslmode=disable", "postgresql://"),
            ("postgresql://a:hunter22@/d?sslmode=disable", "no host"),
            ("postgresql://a:hunter22@h:99999/d?sslmode=disable", "port"),
            ("postgresql://a:hunter22@h:5432/d%zz?sslmode=disable", "database"),
        ] {
            let m = invalid(ConnectionSettings::from_config(&config(&[("connection_url", url)])));
            assert!(m.contains(expect), "{url}: {m}");
            assert!(!m.contains("hunter22"), "{m}");
        }
        let m = invalid(ConnectionSettings::from_config(&config(&[(
            "connection_url",
            VAULT_URL,
        )])));
        assert!(m.contains("`username`"), "{m}");
        let m = invalid(ConnectionSettings::from_config(&config(&[
            ("connection_url", VAULT_URL),
            ("username", "a"),
        ])));
        assert!(m.contains("`password`"), "{m}");
        let m = invalid(ConnectionSettings::from_config(&config(&[
            ("connection_url", "postgresql://a:hunter22@h/d?sslmode=disable"),
            ("password", "xyzzy"),
        ])));
        assert!(
            m.contains("`password`") && !m.contains("hunter22") && !m.contains("xyzzy"),
            "{m}"
        );
        let m = invalid(ConnectionSettings::from_config(&config(&[
            ("connection_url", "postgresql://a@h/d?sslmode=disable"),
            ("connect_timeout_ms", "soon"),
        ])));
        assert!(m.contains("connect_timeout_ms"), "{m}");
    }

    #[test]
    fn reads_password_authentication_with_vaults_values() {
        let with = |value: Option<&str>| {
            let mut pairs = vec![("connection_url", "postgresql://a@h/d?sslmode=disable")];
            pairs.extend(value.map(|v| ("password_authentication", v)));
            ConnectionSettings::from_config(&config(&pairs)).map(|s| s.password_authentication)
        };
        assert_eq!(with(None).ok(), Some(PasswordAuthentication::Password));
        assert_eq!(with(Some("password")).ok(), Some(PasswordAuthentication::Password));
        assert_eq!(
            with(Some("scram-sha-256")).ok(),
            Some(PasswordAuthentication::ScramSha256)
        );
        let m = invalid(with(Some("md5")));
        assert!(
            m.contains("password_authentication") && m.contains("scram-sha-256"),
            "{m}"
        );
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
            let mut pairs = vec![("connection_url", url), ("username", "a")];
            pairs.extend(ca.map(|ca| ("ca_pem", ca)));
            ConnectionSettings::from_config(&config(&pairs))
        };
        let s = with("postgresql://h/d?sslmode=verify-full", Some(&ca)).expect("verify-full");
        assert_eq!(s.tls.mode(), SslMode::VerifyFull);
        assert!(format!("{s:?}").contains("VerifyFull"));
        assert_eq!(
            with("postgresql://h/d?sslmode=require", None)
                .expect("require")
                .tls
                .mode(),
            SslMode::Require
        );
        assert_eq!(
            with("postgresql://h/d?sslmode=verify-ca", Some(&ca))
                .expect("verify-ca")
                .tls
                .mode(),
            SslMode::VerifyCa
        );
        // verify-* without a CA, require with one: refused at mount start.
        let m = invalid(with("postgresql://h/d?sslmode=verify-full", None));
        assert!(m.contains("`ca_pem` is missing"), "{m}");
        let m = invalid(with("postgresql://h/d?sslmode=require", Some(&ca)));
        assert!(m.contains("`ca_pem`") && m.contains("verify-full"), "{m}");
        let m = invalid(with("postgresql://h/d?sslmode=verify-ca", Some("not PEM")));
        assert!(m.contains("`ca_pem`"), "{m}");
        // A misspelt key is refused naming it.
        let m = invalid(ConnectionSettings::from_config(&config(&[
            ("connection_url", VAULT_URL),
            ("username", "a"),
            ("password", "p"),
            ("ca_perm", "x"),
        ])));
        assert!(m.contains("did you mean `ca_pem`"), "{m}");
    }

    #[test]
    fn refuses_sslmodes_that_may_fall_back_to_plaintext() {
        for url in ["postgresql://a@h/d?sslmode=prefer", "postgresql://a@h/d?sslmode=allow"] {
            match ConnectionSettings::from_config(&config(&[("connection_url", url)])) {
                Err(Error::Unsupported(m)) => {
                    assert!(
                        m.contains("sslmode=disable") && m.contains("sslmode=verify-full"),
                        "{m}"
                    )
                }
                other => panic!("{url}: expected unsupported, got {other:?}"),
            }
        }
        for url in ["postgresql://a@h/d", "postgresql://a@h/d?sslmode=sometimes"] {
            let m = invalid(ConnectionSettings::from_config(&config(&[("connection_url", url)])));
            assert!(m.contains("sslmode=disable") && m.contains("sslmode=require"), "{m}");
        }
    }

    #[test]
    fn reads_role_statements() {
        let r = RoleStatements::from_role(&role(&[
            (
                "creation_statements",
                "CREATE ROLE \"{{name}}\" LOGIN PASSWORD '{{password}}';",
            ),
            (
                "renew_statements",
                "ALTER ROLE \"{{name}}\" VALID UNTIL '{{expiration}}';",
            ),
        ]))
        .expect("valid");
        assert!(r.creation.starts_with("CREATE ROLE"));
        assert!(r.renew.is_some());
        assert_eq!(r.revocation, None);
    }

    #[test]
    fn refuses_bad_role_settings() {
        let m = invalid(RoleStatements::from_role(&role(&[])));
        assert!(m.contains("`creation_statements`") && m.contains("`readonly`"), "{m}");
        let m = invalid(RoleStatements::from_role(&role(&[
            ("creation_statements", "CREATE ROLE \"{{name}}\";"),
            ("revocation_statments", "DROP ROLE \"{{name}}\";"),
        ])));
        assert!(
            m.contains("`revocation_statments`") && m.contains("did you mean `revocation_statements`"),
            "{m}"
        );
        assert!(
            m.contains(
                "the settings this plugin accepts are creation_statements, revocation_statements, renew_statements"
            ),
            "{m}"
        );
        let m = invalid(RoleStatements::from_role(&role(&[(
            "creation_statements",
            "CREATE ROLE \"{{nmae}}\";",
        )])));
        assert!(m.contains("{{nmae}}") && m.contains("creation_statements"), "{m}");
        let m = invalid(RoleStatements::from_role(&role(&[
            ("creation_statements", "CREATE ROLE \"{{name}}\";"),
            (
                "revocation_statements",
                "ALTER ROLE \"{{name}}\" PASSWORD '{{password}}';",
            ),
        ])));
        assert!(m.contains("revocation_statements") && m.contains("{{password}}"), "{m}");
        // A removed role (no settings) revokes with the defaults.
        assert_eq!(RoleStatements::revocation_of(&role(&[])).ok(), Some(None));
    }
}
