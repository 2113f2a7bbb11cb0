//! The instance's session with PostgreSQL: opened when the mount starts,
//! kept between calls, opened again when it turns out to be broken (a
//! server restart), and the errors the host sees when a statement fails.
//!
//! An operation runs on the session as a closure of statements
//! ([`Session::run`]) or as one transaction ([`Session::transaction`]).
//! When a kept session fails on the operation's first statement, nothing
//! was applied yet, so the operation runs again once on a fresh session;
//! a failure later on is `unavailable` and the server rolls the
//! transaction back.

use tresor_pgwire::wire::{Client, Param, Row, ServerError, Startup, TransactionStatus, WireError};
use tresor_pgwire::{Stream, TlsError};
use tresor_plugin_sdk::Error;

use crate::config::Connection;

/// How many times a transaction runs when PostgreSQL cancels it for a
/// serialization failure or a deadlock.
const MAX_TRANSACTION_ATTEMPTS: usize = 3;

/// Why a statement of an operation failed.
pub enum Failure {
    /// The server or the connection failed.
    Wire(WireError),
    /// The operation's own answer (not found, conflict, ...).
    Store(Error),
}

impl From<WireError> for Failure {
    fn from(e: WireError) -> Self {
        Failure::Wire(e)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Store(e)
    }
}

/// The session, lent to one operation; counts the statements it sent.
pub struct Conn<'a> {
    client: &'a mut Client<Stream>,
    exchanges: usize,
}

impl Conn<'_> {
    /// Runs one statement with `params` (extended protocol); its rows.
    pub fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, Failure> {
        self.exchanges += 1;
        Ok(self.client.query(sql, params)?)
    }

    /// Runs statements without parameters (simple protocol, one implicit
    /// transaction).
    pub fn simple(&mut self, sql: &str) -> Result<Vec<Row>, Failure> {
        self.exchanges += 1;
        Ok(self.client.simple_query(sql)?)
    }
}

/// The connection settings and the session, if one is open.
pub struct Session {
    connection: Connection,
    client: Option<Client<Stream>>,
}

impl Session {
    /// A session to open on first use.
    pub fn new(connection: Connection) -> Session {
        Session {
            connection,
            client: None,
        }
    }

    /// Runs `op` on the session (opened if needed); `what` says what it
    /// does, for errors ("reading secret `a/b`").
    pub fn run<T>(&mut self, what: &str, mut op: impl FnMut(&mut Conn<'_>) -> Result<T, Failure>) -> Result<T, Error> {
        let reused = self.client.is_some();
        let mut client = match self.client.take() {
            Some(client) => client,
            None => self.connect()?,
        };
        let (mut result, exchanges) = attempt(&mut client, &mut op);
        if reused && exchanges <= 1 && matches!(&result, Err(Failure::Wire(e)) if e.breaks_connection()) {
            client = self.connect()?;
            result = attempt(&mut client, &mut op).0;
        }
        let broken = matches!(&result, Err(Failure::Wire(e)) if e.breaks_connection());
        if !broken && settle(&mut client) {
            self.client = Some(client);
        }
        match result {
            Ok(value) => Ok(value),
            Err(Failure::Store(e)) => Err(e),
            Err(Failure::Wire(e)) => Err(self.failure(e, what)),
        }
    }

    /// Runs `op` in one transaction: committed when it succeeds, rolled
    /// back when it fails, and run again (up to 3 times in all) when
    /// PostgreSQL cancels it for a serialization failure or a deadlock.
    pub fn transaction<T>(
        &mut self,
        what: &str,
        mut op: impl FnMut(&mut Conn<'_>) -> Result<T, Failure>,
    ) -> Result<T, Error> {
        self.run(what, |conn| {
            let mut attempts = 0;
            loop {
                attempts += 1;
                conn.query("BEGIN", &[])?;
                let result = op(conn).and_then(|value| conn.query("COMMIT", &[]).map(|_| value));
                match result {
                    Ok(value) => return Ok(value),
                    Err(e) => {
                        let retry = attempts < MAX_TRANSACTION_ATTEMPTS && is_retryable(&e);
                        if !matches!(&e, Failure::Wire(w) if w.breaks_connection()) {
                            conn.query("ROLLBACK", &[])?;
                        }
                        if !retry {
                            return Err(e);
                        }
                    }
                }
            }
        })
    }

    /// Opens a fresh session with the mount's credentials, over TLS unless
    /// `sslmode=disable`.
    fn connect(&self) -> Result<Client<Stream>, Error> {
        let c = &self.connection;
        let tcp = tresor_pgwire::connect::open(&c.host, c.port, c.connect_timeout)?;
        let stream = c.tls.start(tcp).map_err(|e| self.failure(e, "logging in"))?;
        Client::connect(
            stream,
            Startup {
                user: &c.user,
                password: &c.password,
                database: &c.database,
                application_name: &c.application_name,
            },
        )
        .map_err(|e| self.failure(e, "logging in"))
    }

    /// The host-facing error for `e`, with the password masked.
    fn failure(&self, e: WireError, what: &str) -> Error {
        let address = self.connection.address();
        let user = &self.connection.user;
        let text = tresor_pgwire::mask(&e.to_string(), &[&self.connection.password]);
        match &e {
            WireError::Io(_) => Error::unavailable(format!(
                "lost the connection to PostgreSQL at {address} while {what}: {text}: check that the server runs \
                 and that the mount grants sockets = [\"{address}\"]"
            )),
            WireError::Protocol(_) => Error::unavailable(format!(
                "PostgreSQL at {address} answered something unexpected while {what}: {text}: check that \
                 connection_url points at a PostgreSQL server"
            )),
            WireError::UnsupportedAuth(_) => {
                Error::unsupported(format!("cannot log in to PostgreSQL at {address} as `{user}`: {text}"))
            }
            WireError::Tls(TlsError::NoClock) => {
                Error::invalid_input(format!("cannot connect to PostgreSQL at {address}: {text}"))
            }
            WireError::Tls(_) => Error::unavailable(format!(
                "cannot set up TLS with PostgreSQL at {address} while {what}: {text}"
            )),
            WireError::Server(server) => {
                let text = match tresor_pgwire::tls::login_hint(self.connection.tls.mode(), &server.code) {
                    Some(hint) => format!("{text} ({hint})"),
                    None => text,
                };
                classify(server, &address, user, what, text)
            }
        }
    }
}

/// Ends the session politely when the instance goes away.
impl Drop for Session {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            client.close();
        }
    }
}

/// Runs `op` once on `client`; its result and how many statements it sent.
fn attempt<T>(
    client: &mut Client<Stream>,
    op: &mut impl FnMut(&mut Conn<'_>) -> Result<T, Failure>,
) -> (Result<T, Failure>, usize) {
    let mut conn = Conn { client, exchanges: 0 };
    let result = op(&mut conn);
    (result, conn.exchanges)
}

/// Leaves `client` outside any transaction; false when it cannot be (it is
/// then dropped rather than kept).
fn settle(client: &mut Client<Stream>) -> bool {
    client.transaction_status() == TransactionStatus::Idle || client.simple_query("ROLLBACK").is_ok()
}

/// A serialization failure or a deadlock: the transaction may succeed when
/// run again.
fn is_retryable(failure: &Failure) -> bool {
    matches!(failure, Failure::Wire(WireError::Server(e)) if matches!(e.code.as_str(), "40001" | "40P01"))
}

/// Maps a server error by its SQLSTATE.
fn classify(server: &ServerError, address: &str, user: &str, what: &str, text: String) -> Error {
    let class = server.code.get(..2).unwrap_or_default();
    match (class, server.code.as_str()) {
        ("28", _) => Error::permission_denied(format!(
            "PostgreSQL at {address} refused the login of `{user}`: {text}: fix the user in connection_url and \
             `password` in the mount's config (and pg_hba.conf on the server)"
        )),
        (_, "42501") => Error::permission_denied(format!(
            "PostgreSQL refused `{user}` a privilege while {what}: {text}: let `{user}` create tables in its \
             schema, or grant it SELECT, INSERT, UPDATE and DELETE on the plugin's tables"
        )),
        (_, "3D000") => Error::invalid_input(format!(
            "PostgreSQL at {address} has no such database: {text}: fix the database in connection_url"
        )),
        (_, "42P01") => Error::internal(format!(
            "the plugin's tables are missing while {what}: {text}: restart the mount to create them again"
        )),
        ("40", _) => Error::unavailable(format!(
            "PostgreSQL cancelled the transaction while {what} (another writer conflicted): {text}: retry"
        )),
        ("08" | "53" | "57" | "58" | "XX", _) => Error::unavailable(format!(
            "PostgreSQL at {address} failed while {what}: {text}: retry later"
        )),
        _ => Error::internal(format!("PostgreSQL failed while {what}: {text}")),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tresor_pgwire::url::SslMode;
    use tresor_pgwire::Tls;
    use zeroize::Zeroizing;

    use super::*;

    fn session() -> Session {
        Session::new(Connection {
            host: "127.0.0.1".into(),
            port: 5432,
            user: "tresor".into(),
            password: Zeroizing::new("conn-s3cret".into()),
            database: "postgres".into(),
            application_name: "tresor-kv".into(),
            connect_timeout: Duration::from_secs(1),
            tls: Tls::new(SslMode::Disable, "127.0.0.1", None).expect("disable"),
        })
    }

    fn server_error(code: &str, message: &str) -> WireError {
        WireError::Server(ServerError {
            severity: "ERROR".into(),
            code: code.into(),
            message: message.into(),
            ..ServerError::default()
        })
    }

    fn kind(e: &Error) -> &'static str {
        match e {
            Error::PermissionDenied(_) => "permission-denied",
            Error::InvalidInput(_) => "invalid-input",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal",
            Error::Unsupported(_) => "unsupported",
            _ => "other",
        }
    }

    #[test]
    fn errors_map_by_sqlstate_and_name_what_failed() {
        let s = session();
        for (code, expected) in [
            ("28P01", "permission-denied"),
            ("42501", "permission-denied"),
            ("3D000", "invalid-input"),
            ("42P01", "internal"),
            ("40001", "unavailable"),
            ("40P01", "unavailable"),
            ("57P01", "unavailable"),
            ("53300", "unavailable"),
            ("23505", "internal"),
        ] {
            let e = s.failure(server_error(code, "m"), "writing secret `a/b`");
            assert_eq!(kind(&e), expected, "{code}: {e:?}");
        }
        let e = s.failure(server_error("23505", "m"), "writing secret `a/b`");
        assert!(
            e.message().contains("writing secret `a/b`") && e.message().contains("23505"),
            "{e:?}"
        );
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = s.failure(WireError::Io(refused), "reading secret `x`");
        assert_eq!(kind(&e), "unavailable");
        assert!(e.message().contains("sockets = [\"127.0.0.1:5432\"]"), "{e:?}");
        let e = s.failure(WireError::UnsupportedAuth("gss".into()), "logging in");
        assert_eq!(kind(&e), "unsupported");
        let e = s.failure(WireError::Tls(TlsError::UnknownIssuer), "logging in");
        assert_eq!(kind(&e), "unavailable");
        assert!(
            e.message().contains("`ca_pem`") && e.message().contains("127.0.0.1:5432"),
            "{e:?}"
        );
        let e = s.failure(WireError::Tls(TlsError::NoClock), "logging in");
        assert_eq!(kind(&e), "invalid-input");
        // A plaintext login refused by pg_hba.conf (hostssl only) hints at TLS.
        let e = s.failure(server_error("28000", "no pg_hba.conf entry"), "logging in");
        assert_eq!(kind(&e), "permission-denied");
        assert!(e.message().contains("sslmode=verify-full"), "{e:?}");
    }

    #[test]
    fn the_password_never_shows() {
        let e = session().failure(server_error("28P01", "password conn-s3cret is wrong"), "logging in");
        assert!(
            !e.message().contains("conn-s3cret") && e.message().contains("********"),
            "{e:?}"
        );
    }

    #[test]
    fn only_serialization_failures_and_deadlocks_are_retried() {
        assert!(is_retryable(&Failure::Wire(server_error("40001", "m"))));
        assert!(is_retryable(&Failure::Wire(server_error("40P01", "m"))));
        assert!(!is_retryable(&Failure::Wire(server_error("23505", "m"))));
        assert!(!is_retryable(&Failure::Store(Error::conflict("c"))));
    }

    #[test]
    fn an_unreachable_server_is_unavailable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(9);
        let mut s = session();
        s.connection.port = port;
        let e = s.run("reading secret `x`", |conn| conn.simple("SELECT 1")).err();
        assert!(
            matches!(&e, Some(Error::Unavailable(m)) if m.contains(&format!("127.0.0.1:{port}"))),
            "{e:?}"
        );
    }
}
