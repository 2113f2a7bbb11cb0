//! A minimal PostgreSQL client over any blocking `Read + Write` stream
//! (plaintext TCP, or TLS set up by [`crate::tls::Tls::start`]):
//! start-up with password authentication (SCRAM-SHA-256, MD5, cleartext),
//! simple-protocol queries (several statements, no parameters) and
//! extended-protocol queries (one statement, parameters sent apart from
//! the SQL, so no value is ever spliced into a statement).
//!
//! The framing, the message parsing and SCRAM come from
//! [`postgres_protocol`]; this module only drives the conversation. It knows
//! nothing of WebAssembly, so the same code runs natively in tests against a
//! real server.
//!
//! Nothing here logs, and no error built here quotes the password; the
//! server's own messages are passed through as [`ServerError`] for the
//! caller to sanitize.

use std::fmt;
use std::io::{self, Read, Write};

use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::frontend::BindError;
use postgres_protocol::message::{backend, frontend};
use postgres_protocol::IsNull;
use zeroize::{Zeroize, Zeroizing};

/// What the client says in its start-up message.
#[derive(Clone, Copy)]
pub struct Startup<'a> {
    /// The role to log in as.
    pub user: &'a str,
    /// Its password (never sent in the clear unless the server asks for
    /// cleartext authentication).
    pub password: &'a str,
    /// The database to connect to.
    pub database: &'a str,
    /// Shown in `pg_stat_activity.application_name`.
    pub application_name: &'a str,
}

/// An `ErrorResponse` from the server: the fields an operator needs.
///
/// The message, detail and hint can quote the statement that failed, and so
/// the password in it: sanitize them before they leave the plugin.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerError {
    /// `ERROR`, `FATAL` or `PANIC`.
    pub severity: String,
    /// The SQLSTATE code (`28P01`, `42601`, ...).
    pub code: String,
    /// The primary message.
    pub message: String,
    /// The optional detail.
    pub detail: Option<String>,
    /// The optional hint.
    pub hint: Option<String>,
}

impl ServerError {
    /// True when the server ends the session after this error (`FATAL`, `PANIC`).
    pub fn is_fatal(&self) -> bool {
        matches!(self.severity.as_str(), "FATAL" | "PANIC")
    }

    /// True when the statement lost a race with a concurrent session and
    /// the same statement, run again, can succeed: a serialization failure
    /// (`40001`), a deadlock (`40P01`), or the catalog's "tuple concurrently
    /// updated" (`XX000`), which PostgreSQL raises instead of waiting when
    /// two sessions `GRANT` on one object or alter one role at once.
    pub fn is_concurrent_conflict(&self) -> bool {
        match self.code.as_str() {
            "40001" | "40P01" => true,
            "XX000" => self.message.starts_with("tuple concurrently"),
            _ => false,
        }
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SQLSTATE {}: {}", self.code, self.message)?;
        if let Some(detail) = &self.detail {
            write!(f, " ({detail})")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, " hint: {hint}")?;
        }
        Ok(())
    }
}

/// Why a conversation with the server failed.
#[derive(Debug)]
pub enum WireError {
    /// The transport failed (refused, reset, closed): the connection is gone.
    Io(io::Error),
    /// The server answered with an error.
    Server(ServerError),
    /// The server sent something this client does not expect.
    Protocol(String),
    /// The server asks for an authentication method this client lacks.
    UnsupportedAuth(String),
    /// TLS could not be set up (server without TLS, certificate refused).
    Tls(crate::tls::TlsError),
}

impl WireError {
    /// True when the connection cannot be used any more.
    pub fn breaks_connection(&self) -> bool {
        match self {
            WireError::Io(_) | WireError::Protocol(_) | WireError::UnsupportedAuth(_) | WireError::Tls(_) => true,
            WireError::Server(e) => e.is_fatal(),
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Io(e) => write!(f, "{e}"),
            WireError::Server(e) => write!(f, "{e}"),
            WireError::Protocol(m) => write!(f, "protocol error: {m}"),
            WireError::UnsupportedAuth(m) => write!(f, "unsupported authentication: {m}"),
            WireError::Tls(e) => write!(f, "{e}"),
        }
    }
}

impl From<crate::tls::TlsError> for WireError {
    fn from(e: crate::tls::TlsError) -> Self {
        WireError::Tls(e)
    }
}

impl From<io::Error> for WireError {
    fn from(e: io::Error) -> Self {
        WireError::Io(e)
    }
}

/// One row of a query result, text format; `None` is SQL `NULL`.
pub type Row = Vec<Option<String>>;

/// A parameter of [`Client::query`]: `$1`, `$2`, ... in the statement.
///
/// Parameters travel in their own message, never inside the SQL text, so
/// they need no quoting or escaping. No `Debug`: a parameter can be a
/// secret.
#[derive(Clone, Copy)]
pub enum Param<'a> {
    /// SQL `NULL`.
    Null,
    /// Text the server reads as the parameter's type: `"42"` for a
    /// `bigint`, `"{1,2}"` for a `bigint[]`, JSON for `jsonb`.
    Text(&'a str),
    /// Raw bytes, sent in binary format: for a `bytea` parameter.
    Bytes(&'a [u8]),
}

/// Where the session stands after the last query, as the server reports
/// it in `ReadyForQuery`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransactionStatus {
    /// Not in a transaction block.
    Idle,
    /// In a transaction block (after `BEGIN`).
    InTransaction,
    /// In a failed transaction block: only `ROLLBACK` is accepted.
    Failed,
}

/// A logged-in session over `S`.
pub struct Client<S: Read + Write> {
    stream: S,
    inbox: BytesMut,
    status: TransactionStatus,
}

impl<S: Read + Write> Client<S> {
    /// Logs in over `stream` (already connected) and waits until the server
    /// is ready for queries.
    pub fn connect(stream: S, startup: Startup<'_>) -> Result<Self, WireError> {
        let mut client = Client {
            stream,
            inbox: BytesMut::with_capacity(8192),
            status: TransactionStatus::Idle,
        };
        let mut out = BytesMut::new();
        frontend::startup_message(
            [
                ("user", startup.user),
                ("database", startup.database),
                ("application_name", startup.application_name),
                ("client_encoding", "UTF8"),
            ],
            &mut out,
        )?;
        client.send(&mut out)?;
        client.authenticate(startup)?;
        client.wait_ready()?;
        Ok(client)
    }

    /// Where the session stands after the last query.
    pub fn transaction_status(&self) -> TransactionStatus {
        self.status
    }

    /// Runs `sql` (one statement or several separated by `;`) with the
    /// simple query protocol: the server runs them in one implicit
    /// transaction, so either all apply or none. Returns the rows of every
    /// statement that returned rows, in order; the first error ends the
    /// query and is returned once the server is ready again.
    pub fn simple_query(&mut self, sql: &str) -> Result<Vec<Row>, WireError> {
        let mut out = BytesMut::with_capacity(sql.len() + 8);
        frontend::query(sql, &mut out)?;
        self.send(&mut out)?;
        self.results()
    }

    /// Runs one statement with the extended query protocol, `params` bound
    /// to `$1`, `$2`, ... (their types inferred by the server: cast them in
    /// the SQL, `$1::bigint`, where the context does not say). Returns its
    /// rows in text format; an error is returned once the server is ready
    /// again, and inside a transaction block leaves it failed.
    pub fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, WireError> {
        let mut out = BytesMut::with_capacity(sql.len() + 64);
        frontend::parse("", sql, std::iter::empty(), &mut out)?;
        let formats = params.iter().map(|p| i16::from(matches!(p, Param::Bytes(_))));
        frontend::bind(
            "",
            "",
            formats,
            params.iter(),
            |param, buf| match param {
                Param::Null => Ok(IsNull::Yes),
                Param::Text(text) => {
                    buf.extend_from_slice(text.as_bytes());
                    Ok(IsNull::No)
                }
                Param::Bytes(bytes) => {
                    buf.extend_from_slice(bytes);
                    Ok(IsNull::No)
                }
            },
            std::iter::empty(),
            &mut out,
        )
        .map_err(|e| match e {
            BindError::Serialization(e) => WireError::Io(e),
            BindError::Conversion(e) => WireError::Protocol(format!("cannot encode a parameter: {e}")),
        })?;
        frontend::execute("", 0, &mut out)?;
        frontend::sync(&mut out);
        self.send(&mut out)?;
        self.results()
    }

    /// Reads the answers to one query message (simple) or one sync
    /// (extended) up to `ReadyForQuery`: the rows, or the first error.
    fn results(&mut self) -> Result<Vec<Row>, WireError> {
        let mut rows = Vec::new();
        let mut failure = None;
        loop {
            match self.receive()? {
                backend::Message::DataRow(body) => rows.push(decode_row(&body)?),
                backend::Message::ErrorResponse(body) => {
                    let error = server_error(body.fields())?;
                    if error.is_fatal() {
                        return Err(WireError::Server(error));
                    }
                    failure.get_or_insert(error);
                }
                backend::Message::ReadyForQuery(body) => {
                    self.status = match body.status() {
                        b'T' => TransactionStatus::InTransaction,
                        b'E' => TransactionStatus::Failed,
                        _ => TransactionStatus::Idle,
                    };
                    break;
                }
                backend::Message::RowDescription(_)
                | backend::Message::CommandComplete(_)
                | backend::Message::EmptyQueryResponse
                | backend::Message::ParseComplete
                | backend::Message::BindComplete
                | backend::Message::NoData
                | backend::Message::NoticeResponse(_)
                | backend::Message::ParameterStatus(_)
                | backend::Message::NotificationResponse(_) => {}
                backend::Message::CopyInResponse(_) | backend::Message::CopyOutResponse(_) => {
                    return Err(WireError::Protocol(
                        "a statement started COPY, which this client does not support".into(),
                    ))
                }
                _ => return Err(WireError::Protocol("unexpected message during a query".into())),
            }
        }
        match failure {
            Some(error) => Err(WireError::Server(error)),
            None => Ok(rows),
        }
    }

    /// Ends the session politely (a `Terminate` message); errors are ignored.
    pub fn close(mut self) {
        let mut out = BytesMut::new();
        frontend::terminate(&mut out);
        let _ = self.send(&mut out);
    }

    fn authenticate(&mut self, startup: Startup<'_>) -> Result<(), WireError> {
        let mut scram: Option<sasl::ScramSha256> = None;
        loop {
            match self.receive()? {
                backend::Message::AuthenticationOk => {
                    if scram.is_some() {
                        return Err(WireError::Protocol(
                            "the server ended SCRAM authentication without proving it knows the password".into(),
                        ));
                    }
                    return Ok(());
                }
                backend::Message::AuthenticationCleartextPassword => {
                    let mut out = BytesMut::new();
                    frontend::password_message(startup.password.as_bytes(), &mut out)?;
                    self.send(&mut out)?;
                }
                backend::Message::AuthenticationMd5Password(body) => {
                    let hash = Zeroizing::new(md5_hash(
                        startup.user.as_bytes(),
                        startup.password.as_bytes(),
                        body.salt(),
                    ));
                    let mut out = BytesMut::new();
                    frontend::password_message(hash.as_bytes(), &mut out)?;
                    self.send(&mut out)?;
                }
                backend::Message::AuthenticationSasl(body) => {
                    let mut offered = Vec::new();
                    let mut mechanisms = body.mechanisms();
                    while let Some(mechanism) = mechanisms.next()? {
                        offered.push(mechanism.to_owned());
                    }
                    if !offered.iter().any(|m| m == sasl::SCRAM_SHA_256) {
                        return Err(WireError::UnsupportedAuth(format!(
                            "the server offers SASL mechanisms [{}], this plugin speaks only {}",
                            offered.join(", "),
                            sasl::SCRAM_SHA_256
                        )));
                    }
                    // No channel binding (`n,,`), with TLS or without: under
                    // sslmode=require an active man in the middle is not
                    // detected (verify-ca and verify-full detect it).
                    let state = sasl::ScramSha256::new(startup.password.as_bytes(), sasl::ChannelBinding::unsupported());
                    let mut out = BytesMut::new();
                    frontend::sasl_initial_response(sasl::SCRAM_SHA_256, state.message(), &mut out)?;
                    self.send(&mut out)?;
                    scram = Some(state);
                }
                backend::Message::AuthenticationSaslContinue(body) => {
                    let state = scram
                        .as_mut()
                        .ok_or_else(|| WireError::Protocol("SASL continue before SASL start".into()))?;
                    state
                        .update(body.data())
                        .map_err(|e| WireError::Protocol(format!("SCRAM: {e}")))?;
                    let mut out = BytesMut::new();
                    frontend::sasl_response(state.message(), &mut out)?;
                    self.send(&mut out)?;
                }
                backend::Message::AuthenticationSaslFinal(body) => {
                    let mut state = scram
                        .take()
                        .ok_or_else(|| WireError::Protocol("SASL final before SASL start".into()))?;
                    // Verifies the server's signature: only a server that
                    // knows the password gets past this.
                    state
                        .finish(body.data())
                        .map_err(|e| WireError::Protocol(format!("SCRAM: {e}")))?;
                }
                backend::Message::ErrorResponse(body) => return Err(WireError::Server(server_error(body.fields())?)),
                backend::Message::NoticeResponse(_) => {}
                backend::Message::AuthenticationGss
                | backend::Message::AuthenticationGssContinue(_)
                | backend::Message::AuthenticationKerberosV5
                | backend::Message::AuthenticationSspi
                | backend::Message::AuthenticationScmCredential => {
                    return Err(WireError::UnsupportedAuth(
                        "the server asks for GSSAPI/Kerberos/SSPI; configure SCRAM-SHA-256 (or md5) for this user in pg_hba.conf".into(),
                    ))
                }
                _ => return Err(WireError::Protocol("unexpected message during authentication".into())),
            }
        }
    }

    fn wait_ready(&mut self) -> Result<(), WireError> {
        loop {
            match self.receive()? {
                backend::Message::ReadyForQuery(_) => return Ok(()),
                backend::Message::ErrorResponse(body) => return Err(WireError::Server(server_error(body.fields())?)),
                backend::Message::ParameterStatus(_)
                | backend::Message::BackendKeyData(_)
                | backend::Message::NoticeResponse(_) => {}
                _ => return Err(WireError::Protocol("unexpected message after authentication".into())),
            }
        }
    }

    /// Writes `out` and wipes it (it may hold a password or a statement
    /// quoting one).
    fn send(&mut self, out: &mut BytesMut) -> Result<(), WireError> {
        let result = self.stream.write_all(out).and_then(|()| self.stream.flush());
        out.zeroize();
        Ok(result?)
    }

    fn receive(&mut self) -> Result<backend::Message, WireError> {
        loop {
            if let Some(message) = backend::Message::parse(&mut self.inbox)? {
                return Ok(message);
            }
            let mut chunk = [0u8; 8192];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(WireError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                )));
            }
            self.inbox.extend_from_slice(&chunk[..n]);
            chunk.zeroize();
        }
    }
}

fn decode_row(body: &backend::DataRowBody) -> Result<Row, WireError> {
    let buffer = body.buffer();
    let mut ranges = body.ranges();
    let mut row = Vec::new();
    while let Some(range) = ranges.next()? {
        row.push(match range {
            None => None,
            Some(range) => Some(
                std::str::from_utf8(&buffer[range])
                    .map_err(|_| WireError::Protocol("a column value is not UTF-8".into()))?
                    .to_owned(),
            ),
        });
    }
    Ok(row)
}

fn server_error(mut fields: backend::ErrorFields<'_>) -> Result<ServerError, WireError> {
    let mut error = ServerError::default();
    let mut localized_severity = String::new();
    while let Some(field) = fields.next()? {
        let value = String::from_utf8_lossy(field.value_bytes()).into_owned();
        match field.type_() {
            // `V` is the untranslated severity (9.6+), `S` the localized one.
            b'V' => error.severity = value,
            b'S' => localized_severity = value,
            b'C' => error.code = value,
            b'M' => error.message = value,
            b'D' => error.detail = Some(value),
            b'H' => error.hint = Some(value),
            _ => {}
        }
    }
    if error.severity.is_empty() {
        error.severity = localized_severity;
    }
    Ok(error)
}

/// Quotes `name` as an SQL identifier (`"name"`, inner quotes doubled).
pub fn quote_identifier(name: &str) -> String {
    postgres_protocol::escape::escape_identifier(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scripted server: reads go to `incoming`, writes land in `written`.
    struct Scripted {
        incoming: io::Cursor<Vec<u8>>,
        written: Vec<u8>,
    }

    impl Read for Scripted {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.incoming.read(buf)
        }
    }

    impl Write for Scripted {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn message(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn error_body(severity: &str, code: &str, text: &str) -> Vec<u8> {
        let mut b = Vec::new();
        for (t, v) in [(b'S', severity), (b'V', severity), (b'C', code), (b'M', text)] {
            b.push(t);
            b.extend_from_slice(v.as_bytes());
            b.push(0);
        }
        b.push(0);
        b
    }

    fn server(messages: &[Vec<u8>]) -> Scripted {
        Scripted {
            incoming: io::Cursor::new(messages.concat()),
            written: Vec::new(),
        }
    }

    const STARTUP: Startup<'static> = Startup {
        user: "admin",
        password: "pw",
        database: "postgres",
        application_name: "tresor",
    };

    #[test]
    fn trust_login_then_query_returns_rows_and_nulls() {
        let mut row = 2u16.to_be_bytes().to_vec();
        row.extend_from_slice(&1i32.to_be_bytes());
        row.push(b'x');
        row.extend_from_slice(&(-1i32).to_be_bytes());
        let stream = server(&[
            message(b'R', &0i32.to_be_bytes()),
            message(b'S', b"server_version\x0016\x00"),
            message(b'Z', b"I"),
            message(b'D', &row),
            message(b'C', b"SELECT 1\x00"),
            message(b'Z', b"I"),
        ]);
        let mut client = Client::connect(stream, STARTUP).expect("login");
        let rows = client.simple_query("SELECT 'x', NULL").expect("query");
        assert_eq!(rows, vec![vec![Some("x".to_owned()), None]]);
        // The query went out after the start-up message, as a `Q` message.
        let written = &client.stream.written;
        let q = written.iter().rposition(|&b| b == b'Q').expect("a Q message");
        assert!(written[q..].ends_with(b"SELECT 'x', NULL\x00"));
    }

    #[test]
    fn a_query_error_is_returned_after_ready_and_keeps_the_connection() {
        let stream = server(&[
            message(b'R', &0i32.to_be_bytes()),
            message(b'Z', b"I"),
            message(b'E', &error_body("ERROR", "42601", "syntax error")),
            message(b'Z', b"I"),
            message(b'C', b"SELECT 0\x00"),
            message(b'Z', b"I"),
        ]);
        let mut client = Client::connect(stream, STARTUP).expect("login");
        match client.simple_query("SELEKT") {
            Err(WireError::Server(e)) => {
                assert_eq!(e.code, "42601");
                assert!(!WireError::Server(e).breaks_connection());
            }
            other => panic!("expected a server error, got {other:?}"),
        }
        assert_eq!(client.simple_query("SELECT").expect("second query"), Vec::<Row>::new());
    }

    #[test]
    fn an_extended_query_binds_text_binary_and_null_parameters() {
        let mut row = 1u16.to_be_bytes().to_vec();
        row.extend_from_slice(&1i32.to_be_bytes());
        row.push(b'7');
        let stream = server(&[
            message(b'R', &0i32.to_be_bytes()),
            message(b'Z', b"I"),
            message(b'1', b""),
            message(b'2', b""),
            message(b'D', &row),
            message(b'C', b"SELECT 1\x00"),
            message(b'Z', b"T"),
        ]);
        let mut client = Client::connect(stream, STARTUP).expect("login");
        let params = [Param::Text("7"), Param::Bytes(b"\x00\xff"), Param::Null];
        let rows = client
            .query("SELECT $1::bigint, $2::bytea, $3", &params)
            .expect("query");
        assert_eq!(rows, vec![vec![Some("7".to_owned())]]);
        assert_eq!(client.transaction_status(), TransactionStatus::InTransaction);
        let written = &client.stream.written;
        // Parse of the unnamed statement, without parameter types.
        let parse = [&b"\x00SELECT $1::bigint, $2::bytea, $3\x00"[..], &[0, 0]].concat();
        assert!(written.windows(parse.len()).any(|w| w == parse), "no Parse message");
        // Bind: formats text, binary, text; values "7", 00 ff, NULL; text results.
        let mut bind_body = vec![0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 3];
        bind_body.extend_from_slice(&1i32.to_be_bytes());
        bind_body.push(b'7');
        bind_body.extend_from_slice(&2i32.to_be_bytes());
        bind_body.extend_from_slice(&[0x00, 0xff]);
        bind_body.extend_from_slice(&(-1i32).to_be_bytes());
        bind_body.extend_from_slice(&[0, 0]);
        let bind = message(b'B', &bind_body);
        assert!(
            written.windows(bind.len()).any(|w| w == bind),
            "no Bind message as expected"
        );
        // Execute all rows, then Sync.
        assert!(written.ends_with(&[message(b'E', b"\x00\x00\x00\x00\x00"), message(b'S', b"")].concat()));
    }

    #[test]
    fn an_extended_query_error_leaves_the_transaction_failed() {
        let stream = server(&[
            message(b'R', &0i32.to_be_bytes()),
            message(b'Z', b"I"),
            message(b'1', b""),
            message(b'E', &error_body("ERROR", "23505", "duplicate key")),
            message(b'Z', b"E"),
        ]);
        let mut client = Client::connect(stream, STARTUP).expect("login");
        match client.query("INSERT INTO t VALUES ($1)", &[Param::Text("1")]) {
            Err(WireError::Server(e)) => assert_eq!(e.code, "23505"),
            other => panic!("expected a server error, got {other:?}"),
        }
        assert_eq!(client.transaction_status(), TransactionStatus::Failed);
    }

    #[test]
    fn an_auth_failure_is_a_fatal_server_error() {
        let stream = server(&[message(
            b'E',
            &error_body("FATAL", "28P01", "password authentication failed"),
        )]);
        match Client::connect(stream, STARTUP) {
            Err(WireError::Server(e)) => {
                assert_eq!(e.code, "28P01");
                assert!(e.is_fatal());
            }
            Err(other) => panic!("expected a server error, got {other:?}"),
            Ok(_) => panic!("expected a server error, got a session"),
        }
    }

    #[test]
    fn a_closed_connection_is_an_io_error() {
        let stream = server(&[message(b'R', &0i32.to_be_bytes())]);
        assert!(
            matches!(Client::connect(stream, STARTUP), Err(WireError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof)
        );
    }

    #[test]
    fn refuses_sasl_without_scram_sha_256_and_gss() {
        let stream = server(&[message(b'R', b"\x00\x00\x00\x0aSCRAM-SHA-256-PLUS\x00\x00")]);
        assert!(
            matches!(Client::connect(stream, STARTUP), Err(WireError::UnsupportedAuth(m)) if m.contains("SCRAM-SHA-256-PLUS"))
        );
        let stream = server(&[message(b'R', &7i32.to_be_bytes())]);
        assert!(matches!(
            Client::connect(stream, STARTUP),
            Err(WireError::UnsupportedAuth(_))
        ));
    }

    #[test]
    fn scram_ok_without_server_proof_is_refused() {
        let stream = server(&[
            message(b'R', b"\x00\x00\x00\x0aSCRAM-SHA-256\x00\x00"),
            message(b'R', &0i32.to_be_bytes()),
        ]);
        assert!(matches!(Client::connect(stream, STARTUP), Err(WireError::Protocol(m)) if m.contains("proving")));
    }

    #[test]
    fn concurrent_conflicts_are_told_apart_from_other_errors() {
        let error = |code: &str, message: &str| ServerError {
            severity: "ERROR".into(),
            code: code.into(),
            message: message.into(),
            ..ServerError::default()
        };
        assert!(error("XX000", "tuple concurrently updated").is_concurrent_conflict());
        assert!(error("XX000", "tuple concurrently deleted").is_concurrent_conflict());
        assert!(error("40001", "could not serialize access").is_concurrent_conflict());
        assert!(error("40P01", "deadlock detected").is_concurrent_conflict());
        assert!(!error("XX000", "cache lookup failed for relation 1").is_concurrent_conflict());
        assert!(!error("42710", "role \"x\" already exists").is_concurrent_conflict());
    }

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote_identifier("postgres"), "\"postgres\"");
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
    }
}
