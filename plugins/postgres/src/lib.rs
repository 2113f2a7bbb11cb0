//! The `postgres` generator: short-lived PostgreSQL roles, like Vault's
//! database secrets engine with its PostgreSQL plugin.
//!
//! Each `issue` creates a role with a fresh name and password by running
//! the role's `creation_statements`; `renew` moves its `VALID UNTIL`;
//! `revoke` ends its sessions and drops it. The plugin talks to PostgreSQL
//! itself over the wire protocol (SCRAM-SHA-256, MD5 or cleartext password
//! authentication; TLS as the URL's `sslmode` says) on a TCP connection the
//! mount must grant.
//!
//! Mount configuration:
//!
//! ```toml
//! [[mount]]
//! path = "db"
//! plugin = "postgres"
//! grants = { sockets = ["db.internal:5432"], clock = true }
//!
//! [mount.config]
//! connection_url = "postgresql://{{username}}:{{password}}@db.internal:5432/postgres?sslmode=verify-full"
//! username = "vaultadmin"
//! password = "ref:secret/db/vaultadmin"
//! ca_pem = """
//! -----BEGIN CERTIFICATE-----
//! MIIB...
//! -----END CERTIFICATE-----
//! """
//!
//! [mount.roles.readonly]
//! default_ttl = "1h"
//! max_ttl = "24h"
//! creation_statements = """
//!   CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';
//!   GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{{name}}";"""
//! ```
//!
//! - config: `connection_url` (required; `{{username}}` and `{{password}}`
//!   are filled from `username` and `password`, or the URL carries the
//!   credentials; `sslmode` is required, see below; `connect_timeout` and
//!   `application_name` parameters are understood), `username`,
//!   `password`, `connect_timeout_ms` (default 10 000), `ca_pem` (the PEM of
//!   the CA that issued the server's certificate: required by
//!   `sslmode=verify-ca` and `verify-full`, refused otherwise),
//!   `password_authentication` (Vault's: `password`, the default, puts the
//!   password itself in `{{password}}`; `scram-sha-256` puts the SCRAM
//!   verifier the plugin derives from it, so the server never sees the
//!   password, see [`settings::PasswordAuthentication`]).
//! - role settings: `creation_statements` (required), `renew_statements`
//!   (default `ALTER ROLE "{{name}}" VALID UNTIL '{{expiration}}'`),
//!   `revocation_statements` (default: terminate the role's sessions,
//!   reassign and drop what it owns, drop the role). Placeholders:
//!   `{{name}}` (alias `{{username}}`), `{{password}}` (creation only),
//!   `{{expiration}}` (creation and renew). Several statements separated by
//!   `;` run as one simple query, in one implicit transaction. When they
//!   lose a race with a concurrent session (two `GRANT`s on one table at
//!   once fail with "tuple concurrently updated"; serialization failures,
//!   deadlocks) PostgreSQL rolls them back, and they run again after a
//!   short random pause, up to 16 more times.
//! - Any other config key or role setting is refused when the mount
//!   starts, naming it and the key it may have meant.
//!
//! `sslmode` (see [`tresor_pgwire`] for the details):
//!
//! - `verify-full`: TLS; the server's certificate must be issued by the CA
//!   of `ca_pem` and name the URL's host. The one to use across a network.
//! - `verify-ca`: TLS; the issuer is checked, the host name is not.
//! - `require`: TLS without any certificate check: protects against
//!   passive eavesdropping only (anyone who can intercept the connection
//!   can pose as the server).
//! - `disable`: plaintext, for loopback or a network you trust.
//!
//! `prefer` and `allow` are refused (they may fall back to plaintext
//! silently), and so is a URL without `sslmode`: write the mode you want.
//! `verify-ca` and `verify-full` check the certificate's dates, so the
//! mount must grant a clock (`clock = true`); without one the connection
//! fails saying so. The server must have `ssl = on`; a server with TLS off
//! is reported as such, never used in plaintext instead.
//!
//! `connect_timeout_ms` bounds connecting only when the mount grants a
//! clock (the standard library measures the timeout with it); without one,
//! the host's call deadline does.
//!
//! [`Postgres`] implements the SDK's [`Generator`]; the protocol and
//! statement logic ([`wire`], [`template`], [`naming`], [`settings`]) is
//! plain Rust over `Read + Write`, so the tests run it natively against a
//! real server.

#[cfg(target_arch = "wasm32")]
use tresor_plugin_sdk::export_generator;

use tresor_plugin_sdk::{Config, Credential, Error, Generator, IssueRequest, Role};

pub mod naming;
pub mod settings;
pub mod template;
/// The wire-protocol client, shared with the `postgres-kv` provider.
pub use tresor_pgwire::wire;
use tresor_pgwire::{Stream, TlsError};

use settings::{ConnectionSettings, PasswordAuthentication, RoleStatements};
use template::Values;
use wire::{Client, Row, ServerError, Startup, WireError};
use zeroize::Zeroizing;

/// Issues PostgreSQL roles for a mount: one connection per instance, opened
/// on first use and opened again once when it turns out to be broken.
pub struct Postgres {
    settings: ConnectionSettings,
    session: Option<Client<Stream>>,
}

/// What a statement was for, to say so when it fails.
#[derive(Clone, Copy)]
enum Purpose<'a> {
    /// Logging in with the mount's credentials.
    Login,
    /// A role setting's statements (or their default).
    Statements { role: &'a str, key: &'static str },
    /// The plugin's own bookkeeping query.
    Lookup,
}

impl Postgres {
    /// Builds the generator from the mount's settings; nothing is connected
    /// until the first call that needs the server.
    pub fn new(settings: ConnectionSettings) -> Self {
        Postgres {
            settings,
            session: None,
        }
    }

    /// Opens a fresh session with the mount's credentials, over TLS unless
    /// `sslmode=disable`.
    fn connect(&self) -> Result<Client<Stream>, Error> {
        let s = &self.settings;
        let tcp = tresor_pgwire::connect::open(&s.host, s.port, s.connect_timeout)?;
        let stream = s.tls.start(tcp).map_err(|e| self.failure(e, Purpose::Login, &[]))?;
        Client::connect(
            stream,
            Startup {
                user: &s.user,
                password: &s.password,
                database: &s.database,
                application_name: &s.application_name,
            },
        )
        .map_err(|e| self.failure(e, Purpose::Login, &[]))
    }

    /// Runs `sql` on the session (opened if needed; opened again once if the
    /// kept one turns out to be broken, e.g. after a server restart).
    /// Errors are mapped for the host with every secret in `secrets` masked.
    fn execute(&mut self, sql: &str, purpose: Purpose<'_>, secrets: &[&str]) -> Result<Vec<Row>, WireFailure> {
        let reused = self.session.is_some();
        let mut client = match self.session.take() {
            Some(client) => client,
            None => self.connect().map_err(WireFailure::Mapped)?,
        };
        let mut result = run_with_retries(&mut client, sql);
        if reused && matches!(&result, Err(e) if e.breaks_connection()) {
            client = self.connect().map_err(WireFailure::Mapped)?;
            result = run_with_retries(&mut client, sql);
        }
        match result {
            Ok(rows) => {
                self.session = Some(client);
                Ok(rows)
            }
            Err(e) => {
                if !e.breaks_connection() {
                    self.session = Some(client);
                }
                match e {
                    WireError::Server(server) if !server.is_fatal() => Err(WireFailure::Server {
                        code: server.code.clone(),
                        error: self.failure(WireError::Server(server), purpose, secrets),
                    }),
                    other => Err(WireFailure::Mapped(self.failure(other, purpose, secrets))),
                }
            }
        }
    }

    /// The host-facing error for `e`, with the passwords masked.
    fn failure(&self, e: WireError, purpose: Purpose<'_>, secrets: &[&str]) -> Error {
        let address = self.settings.address();
        let mut masked: Vec<&str> = secrets.to_vec();
        masked.push(&self.settings.password);
        let text = template::mask(&e.to_string(), &masked);
        let what = match purpose {
            Purpose::Login => "logging in".to_owned(),
            Purpose::Statements { role, key } => format!("running the {key} of role `{role}`"),
            Purpose::Lookup => "looking up a role".to_owned(),
        };
        match &e {
            WireError::Io(_) => Error::unavailable(format!(
                "lost the connection to PostgreSQL at {address} while {what}: {text}: check that the server runs \
                 and that the mount grants sockets = [\"{address}\"]"
            )),
            WireError::Protocol(_) => Error::unavailable(format!(
                "PostgreSQL at {address} answered something unexpected while {what}: {text}: check that \
                 connection_url points at a PostgreSQL server"
            )),
            WireError::UnsupportedAuth(_) => Error::unsupported(format!(
                "cannot log in to PostgreSQL at {address} as `{}`: {text}",
                self.settings.user
            )),
            WireError::Tls(TlsError::NoClock) => {
                Error::invalid_input(format!("cannot connect to PostgreSQL at {address}: {text}"))
            }
            WireError::Tls(_) => Error::unavailable(format!(
                "cannot set up TLS with PostgreSQL at {address} while {what}: {text}"
            )),
            WireError::Server(server) => {
                let text = match tresor_pgwire::tls::login_hint(self.settings.tls.mode(), &server.code) {
                    Some(hint) => format!("{text} ({hint})"),
                    None => text,
                };
                classify(server, &address, &self.settings.user, &what, purpose, text)
            }
        }
    }
}

/// How many more times statements that lost a race with a concurrent
/// session are run (PostgreSQL rolled the first run back whole).
const CONFLICT_RETRIES: u32 = 16;

/// Runs `sql` as one simple query (one implicit transaction), and again
/// after a short random pause when it lost a race with another session
/// ([`ServerError::is_concurrent_conflict`]: two `GRANT`s on one table at
/// once). The failed run was rolled back, so running it again is safe.
fn run_with_retries(client: &mut Client<Stream>, sql: &str) -> Result<Vec<Row>, WireError> {
    let mut attempt = 0;
    loop {
        match client.simple_query(sql) {
            Err(WireError::Server(e)) if e.is_concurrent_conflict() && attempt < CONFLICT_RETRIES => {
                attempt += 1;
                pause(client, attempt)?;
            }
            result => return result,
        }
    }
}

/// Waits a random 1 to 2^attempt ms (at most 64 ms) so that colliding
/// sessions spread out. The server sleeps (`pg_sleep`): the mount may grant
/// the plugin no clock.
fn pause(client: &mut Client<Stream>, attempt: u32) -> Result<(), WireError> {
    let ceiling_ms = 1u32 << attempt.min(6);
    let mut random = [0u8; 4];
    // Without randomness the pause is the ceiling: still a pause.
    let ms = match getrandom::fill(&mut random) {
        Ok(()) => 1 + u32::from_le_bytes(random) % ceiling_ms,
        Err(_) => ceiling_ms,
    };
    client
        .simple_query(&format!("SELECT pg_catalog.pg_sleep({}.{:03})", ms / 1000, ms % 1000))
        .map(|_| ())
}

/// A failed statement: the server's SQLSTATE kept for the callers that
/// treat some as success, with the mapped error to return otherwise.
enum WireFailure {
    /// The server refused the statements (the session is still usable).
    Server { code: String, error: Error },
    /// Anything else, already mapped.
    Mapped(Error),
}

impl WireFailure {
    fn code(&self) -> Option<&str> {
        match self {
            WireFailure::Server { code, .. } => Some(code),
            WireFailure::Mapped(_) => None,
        }
    }

    fn into_error(self) -> Error {
        match self {
            WireFailure::Server { error, .. } | WireFailure::Mapped(error) => error,
        }
    }
}

/// Maps a server error by its SQLSTATE class.
fn classify(server: &ServerError, address: &str, user: &str, what: &str, purpose: Purpose<'_>, text: String) -> Error {
    let class = server.code.get(..2).unwrap_or_default();
    match (class, server.code.as_str(), purpose) {
        ("28", _, _) => Error::permission_denied(format!(
            "PostgreSQL at {address} refused the login of `{user}`: {text}: fix `username` and `password` in \
             the mount's config (and pg_hba.conf on the server)"
        )),
        (_, "42501", _) => Error::permission_denied(format!(
            "PostgreSQL refused `{user}` a privilege while {what}: {text}: grant it to `{user}` (CREATEROLE, \
             membership in the roles it grants) or change the statements"
        )),
        (_, "3D000", Purpose::Login) => Error::invalid_input(format!(
            "PostgreSQL at {address} has no such database: {text}: fix the database in connection_url"
        )),
        ("08" | "53" | "57" | "58" | "XX", _, _) => Error::unavailable(format!(
            "PostgreSQL at {address} failed while {what}: {text}: retry later"
        )),
        (_, _, Purpose::Statements { key, .. }) => Error::invalid_input(format!(
            "PostgreSQL refused the statements while {what}: {text}: fix the role's {key}"
        )),
        _ => Error::internal(format!("PostgreSQL failed while {what}: {text}")),
    }
}

/// The revoke handle as a role name, refused when it cannot be one this
/// plugin issued (it goes into SQL).
fn handle_name(handle: &str) -> Result<&str, Error> {
    if naming::is_role_name(handle) {
        Ok(handle)
    } else {
        Err(Error::invalid_input(
            "the revoke handle is not a role name this plugin issues ([A-Za-z0-9_-], at most 63 bytes)",
        ))
    }
}

impl Generator for Postgres {
    const NAME: &'static str = "postgres";

    fn configure(config: Config) -> Result<Self, Error> {
        Ok(Postgres::new(ConnectionSettings::from_config(&config)?))
    }

    fn check_role(&mut self, role: &Role) -> Result<(), Error> {
        RoleStatements::from_role(role).map(|_| ())
    }

    fn issue(&mut self, request: IssueRequest) -> Result<Credential, Error> {
        let role = &request.role;
        let statements = RoleStatements::from_role(role)?;
        let name = naming::role_name(&request.display_name, &role.name, &request.issue_id, request.now_ms)?;
        let password = naming::password()?;
        let expiration = naming::expiration(request.expires_at_ms)?;
        let sent = match self.settings.password_authentication {
            PasswordAuthentication::Password => password.clone(),
            PasswordAuthentication::ScramSha256 => {
                Zeroizing::new(postgres_protocol::password::scram_sha_256(password.as_bytes()))
            }
        };
        let sql = template::render(
            &statements.creation,
            Values {
                name: &name,
                password: Some(&sent),
                expiration: Some(&expiration),
            },
        );
        let purpose = Purpose::Statements {
            role: &role.name,
            key: "creation_statements",
        };
        self.execute(&sql, purpose, &[&password, &sent])
            .map_err(WireFailure::into_error)?;
        Ok(Credential {
            data: vec![
                ("username".to_owned(), name.clone()),
                ("password".to_owned(), password.as_str().to_owned()),
            ],
            revoke_handle: name,
            ttl_seconds: request.ttl_seconds,
            revocable: true,
            renewable: true,
        })
    }

    fn abandon(&mut self, request: IssueRequest) -> Result<(), Error> {
        // The same request names the same role; revoking it is idempotent.
        let name = naming::role_name(
            &request.display_name,
            &request.role.name,
            &request.issue_id,
            request.now_ms,
        )?;
        self.revoke(&request.role, &name)
    }

    fn renew(&mut self, role: &Role, revoke_handle: &str, ttl_seconds: u64, expires_at_ms: u64) -> Result<u64, Error> {
        let name = handle_name(revoke_handle)?;
        let expiration = naming::expiration(expires_at_ms)?;
        let sql = match RoleStatements::renew_of(role)? {
            Some(statements) => template::render(
                &statements,
                Values {
                    name,
                    password: None,
                    expiration: Some(&expiration),
                },
            ),
            None => format!(
                "ALTER ROLE {} VALID UNTIL {}",
                wire::quote_identifier(name),
                postgres_protocol::escape::escape_literal(&expiration)
            )
            .into(),
        };
        let purpose = Purpose::Statements {
            role: &role.name,
            key: "renew_statements",
        };
        match self.execute(&sql, purpose, &[]) {
            Ok(_) => Ok(ttl_seconds),
            // undefined_object: the role is gone.
            Err(failure) if failure.code() == Some("42704") => Err(Error::not_found(format!(
                "the PostgreSQL role `{name}` no longer exists (revoked or dropped): issue a new credential"
            ))),
            Err(failure) => Err(failure.into_error()),
        }
    }

    fn set_password(&mut self, role: &Role, username: &str, password: &str) -> Result<(), Error> {
        if !naming::is_role_name(username) {
            return Err(Error::invalid_input(format!(
                "static role `{}` names the account `{username}`: use a PostgreSQL role name of \
                 [A-Za-z0-9_-], at most 63 bytes",
                role.name
            )));
        }
        let name = username;
        let sent = match self.settings.password_authentication {
            PasswordAuthentication::Password => Zeroizing::new(password.to_owned()),
            PasswordAuthentication::ScramSha256 => {
                Zeroizing::new(postgres_protocol::password::scram_sha_256(password.as_bytes()))
            }
        };
        let sql = match RoleStatements::rotation_of(role)? {
            Some(statements) => template::render(
                &statements,
                Values {
                    name,
                    password: Some(&sent),
                    expiration: None,
                },
            ),
            None => Zeroizing::new(format!(
                "ALTER ROLE {} WITH PASSWORD {}",
                wire::quote_identifier(name),
                postgres_protocol::escape::escape_literal(&sent)
            )),
        };
        let purpose = Purpose::Statements {
            role: &role.name,
            key: "rotation_statements",
        };
        match self.execute(&sql, purpose, &[password, &sent]) {
            Ok(_) => Ok(()),
            Err(failure) if failure.code() == Some("42704") => Err(Error::not_found(format!(
                "the PostgreSQL role `{name}` of static role `{}` does not exist: create it (with LOGIN) first",
                role.name
            ))),
            Err(failure) => Err(failure.into_error()),
        }
    }

    fn revoke(&mut self, role: &Role, revoke_handle: &str) -> Result<(), Error> {
        let name = handle_name(revoke_handle)?;
        let lookup = format!(
            "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {}",
            postgres_protocol::escape::escape_literal(name)
        );
        if self
            .execute(&lookup, Purpose::Lookup, &[])
            .map_err(WireFailure::into_error)?
            .is_empty()
        {
            return Ok(()); // Already gone: revocation is idempotent.
        }
        let sql = match RoleStatements::revocation_of(role)? {
            Some(statements) => template::render(
                &statements,
                Values {
                    name,
                    ..Values::default()
                },
            ),
            None => default_revocation(name, &self.settings.user).into(),
        };
        let purpose = Purpose::Statements {
            role: &role.name,
            key: "revocation_statements",
        };
        match self.execute(&sql, purpose, &[]) {
            Ok(_) => Ok(()),
            // undefined_object: dropped meanwhile, which is what was asked.
            Err(failure) if failure.code() == Some("42704") => Ok(()),
            Err(failure) => Err(failure.into_error()),
        }
    }
}

/// The default revocation: end the role's sessions, give what it owns to
/// the connection user, drop its privileges, drop it.
fn default_revocation(name: &str, connection_user: &str) -> String {
    let ident = wire::quote_identifier(name);
    let literal = postgres_protocol::escape::escape_literal(name);
    let owner = wire::quote_identifier(connection_user);
    format!(
        "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity \
         WHERE usename = {literal} AND pid <> pg_catalog.pg_backend_pid(); \
         REASSIGN OWNED BY {ident} TO {owner}; \
         DROP OWNED BY {ident}; \
         DROP ROLE IF EXISTS {ident};"
    )
}

/// Ends the session politely when the instance goes away.
impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(client) = self.session.take() {
            client.close();
        }
    }
}

// Only the component exports the interface: native builds (the tests) use
// the rlib, and a native cdylib cannot carry the component's export names.
#[cfg(target_arch = "wasm32")]
export_generator!(Postgres);

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(code: &str, message: &str) -> ServerError {
        ServerError {
            severity: "ERROR".into(),
            code: code.into(),
            message: message.into(),
            ..ServerError::default()
        }
    }

    fn generator() -> Postgres {
        let config = Config::new(vec![
            (
                "connection_url".into(),
                "postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres?sslmode=disable".into(),
            ),
            ("username".into(), "admin".into()),
            ("password".into(), "conn-s3cret".into()),
        ]);
        Postgres::configure(config).unwrap_or_else(|e| panic!("configure: {e:?}"))
    }

    #[test]
    fn server_messages_quoting_passwords_are_masked() {
        let g = generator();
        let e = g.failure(
            WireError::Server(server_error(
                "42601",
                "syntax error at or near \"'Gen-Pass-123'\" (also conn-s3cret)",
            )),
            Purpose::Statements {
                role: "readonly",
                key: "creation_statements",
            },
            &["Gen-Pass-123"],
        );
        match e {
            Error::InvalidInput(m) => {
                assert!(!m.contains("Gen-Pass-123") && !m.contains("conn-s3cret"), "{m}");
                assert!(
                    m.contains("42601") && m.contains("********") && m.contains("creation_statements"),
                    "{m}"
                );
            }
            other => panic!("expected invalid-input, got {other:?}"),
        }
    }

    #[test]
    fn errors_map_by_sqlstate() {
        let g = generator();
        let statements = Purpose::Statements {
            role: "r",
            key: "creation_statements",
        };
        let kind = |code: &str, purpose| match g.failure(WireError::Server(server_error(code, "m")), purpose, &[]) {
            Error::PermissionDenied(_) => "permission-denied",
            Error::InvalidInput(_) => "invalid-input",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal",
            _ => "other",
        };
        assert_eq!(kind("28P01", Purpose::Login), "permission-denied");
        assert_eq!(kind("28000", Purpose::Login), "permission-denied");
        assert_eq!(kind("42501", statements), "permission-denied");
        assert_eq!(kind("42601", statements), "invalid-input");
        assert_eq!(kind("3D000", Purpose::Login), "invalid-input");
        assert_eq!(kind("53300", Purpose::Login), "unavailable");
        assert_eq!(kind("57P01", statements), "unavailable");
        assert_eq!(kind("42P01", Purpose::Lookup), "internal");
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        match g.failure(WireError::Io(refused), Purpose::Login, &[]) {
            Error::Unavailable(m) => assert!(m.contains("127.0.0.1:5432"), "{m}"),
            other => panic!("expected unavailable, got {other:?}"),
        }
    }

    #[test]
    fn revoke_handles_that_are_not_role_names_never_reach_sql() {
        let mut g = generator();
        let role = Role {
            name: "r".into(),
            settings: Vec::new(),
        };
        // No server listens in this test: a handle that got through would
        // fail with `unavailable`, not `invalid-input`.
        assert!(matches!(
            g.revoke(&role, "x\"; DROP ROLE postgres; --"),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(g.renew(&role, "a b", 60, 0), Err(Error::InvalidInput(_))));
    }

    #[test]
    fn default_revocation_quotes_names() {
        let sql = default_revocation("v-a-b-c-1", "ad\"min");
        assert!(
            sql.contains("REASSIGN OWNED BY \"v-a-b-c-1\" TO \"ad\"\"min\";"),
            "{sql}"
        );
        assert!(sql.contains("usename = 'v-a-b-c-1'"), "{sql}");
        assert!(sql.ends_with("DROP ROLE IF EXISTS \"v-a-b-c-1\";"), "{sql}");
    }
}
