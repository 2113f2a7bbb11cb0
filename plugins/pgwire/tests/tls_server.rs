//! TLS against a real PostgreSQL: throw-away clusters with `ssl = on`, a CA
//! and a server certificate for `localhost` and `127.0.0.1` made in the test
//! (see `support/pg_tls.rs`), SCRAM-SHA-256, and TCP logins over TLS only;
//! one with `ssl = off` for the refusal. Each cluster is stopped when its
//! test ends, also on failure.
//!
//! Needs `initdb` and `pg_ctl` on the PATH (tests/setup.sh installs them):
//! without them the tests fail.

#[path = "support/pg_tls.rs"]
mod pg_tls;

use std::net::TcpStream;
use std::time::Duration;

use pg_tls::{Cluster, TestCa, ADMIN_PASSWORD};
use tresor_pgwire::connect;
use tresor_pgwire::url::{self, SslMode};
use tresor_pgwire::wire::{Client, Startup, WireError};
use tresor_pgwire::{Stream, Tls, TlsError};

const STARTUP: Startup<'static> = Startup {
    user: "postgres",
    password: ADMIN_PASSWORD,
    database: "postgres",
    application_name: "pgwire-tls-test",
};

/// Connects to the cluster's 127.0.0.1 port, with TLS as `mode`, `ca` and
/// `host` (the name the certificate is checked against) say, and logs in.
fn login(cluster: &Cluster, mode: SslMode, host: &str, ca: Option<&str>) -> Result<Client<Stream>, WireError> {
    let tls = Tls::new(mode, host, ca).unwrap_or_else(|e| panic!("Tls::new: {e:?}"));
    let tcp = TcpStream::connect(("127.0.0.1", cluster.port))?;
    let stream = tls.start(tcp)?;
    Client::connect(stream, STARTUP)
}

/// Whether the server sees this session as TLS (`pg_stat_ssl`), and the
/// protocol version it reports.
fn server_side_tls(client: &mut Client<Stream>) -> (String, String) {
    let rows = client
        .simple_query("SELECT ssl::text, coalesce(version, '') FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .unwrap_or_else(|e| panic!("pg_stat_ssl: {e}"));
    let row = rows.into_iter().next().expect("a pg_stat_ssl row");
    (row[0].clone().expect("ssl"), row[1].clone().expect("version"))
}

fn expect_tls_error(result: Result<Client<Stream>, WireError>) -> TlsError {
    match result {
        Err(WireError::Tls(e)) => e,
        Err(other) => panic!("expected a TLS error, got {other:?}"),
        Ok(_) => panic!("expected a TLS error, got a session"),
    }
}

#[test]
fn verify_full_with_the_right_ca_connects_and_runs_a_query() {
    let ca = TestCa::new("tresor test CA");
    let cluster = Cluster::start_tls(&ca);

    // By IP address (the certificate's IP SAN), the way most tests connect.
    let mut client = login(&cluster, SslMode::VerifyFull, "127.0.0.1", Some(ca.pem())).expect("verify-full by IP");
    let rows = client.query("SELECT $1::int + 1", &[tresor_pgwire::wire::Param::Text("41")]);
    assert_eq!(rows.expect("query"), vec![vec![Some("42".to_owned())]]);
    assert_eq!(server_side_tls(&mut client), ("true".to_owned(), "TLSv1.3".to_owned()));
    client.close();

    // By DNS name, through the same functions the plugins use: the URL,
    // connect::open and Tls::start.
    let parsed = url::parse(
        &format!(
            "postgresql://postgres@localhost:{}/postgres?sslmode=verify-full",
            cluster.port
        ),
        "postgresql://user@host/db?sslmode=verify-full",
    )
    .expect("URL");
    assert_eq!(parsed.sslmode, SslMode::VerifyFull);
    let tls = Tls::new(parsed.sslmode, &parsed.host, Some(ca.pem())).expect("Tls::new");
    let tcp = connect::open(&parsed.host, parsed.port, Duration::from_secs(5)).expect("TCP");
    let stream = tls.start(tcp).expect("handshake");
    assert!(stream.is_tls());
    assert_eq!(stream.tls_version().as_deref(), Some("TLSv1_3"));
    let mut client = Client::connect(stream, STARTUP).expect("SCRAM login over TLS");
    assert_eq!(
        client.simple_query("SELECT current_user").expect("query"),
        vec![vec![Some("postgres".to_owned())]]
    );
    assert_eq!(server_side_tls(&mut client).0, "true");

    // A wrong password over TLS is still the server's refusal, without it.
    let wrong = Startup {
        password: "Not-The-Admin-Pw",
        ..STARTUP
    };
    let tls = Tls::new(SslMode::VerifyFull, "127.0.0.1", Some(ca.pem())).expect("Tls::new");
    let stream = tls
        .start(TcpStream::connect(("127.0.0.1", cluster.port)).expect("TCP"))
        .expect("handshake");
    match Client::connect(stream, wrong) {
        Err(WireError::Server(e)) => {
            assert_eq!(e.code, "28P01", "{e}");
            assert!(!e.to_string().contains("Not-The-Admin-Pw"), "{e}");
        }
        Err(other) => panic!("expected the server's refusal, got {other:?}"),
        Ok(_) => panic!("a wrong password logged in"),
    }
}

#[test]
fn verify_full_against_another_host_name_fails_with_a_name_error() {
    let ca = TestCa::new("tresor test CA");
    let cluster = Cluster::start_tls(&ca);
    let e = expect_tls_error(login(&cluster, SslMode::VerifyFull, "db.example.test", Some(ca.pem())));
    assert!(
        matches!(&e, TlsError::NameMismatch { host } if host == "db.example.test"),
        "{e:?}"
    );
    let m = e.to_string();
    assert!(
        m.contains("not valid for the host `db.example.test`") && m.contains("verify-ca"),
        "{m}"
    );
    // An IP address the certificate does not list is a mismatch too.
    let e = expect_tls_error(login(&cluster, SslMode::VerifyFull, "127.0.0.2", Some(ca.pem())));
    assert!(matches!(e, TlsError::NameMismatch { .. }), "{e:?}");
    // verify-ca checks the issuer only: the same connection is accepted.
    let mut client =
        login(&cluster, SslMode::VerifyCa, "db.example.test", Some(ca.pem())).expect("verify-ca ignores the name");
    assert_eq!(server_side_tls(&mut client).0, "true");
}

#[test]
fn verify_ca_with_a_different_ca_fails_with_an_unknown_issuer_error() {
    let ca = TestCa::new("tresor test CA");
    let other = TestCa::new("some other CA");
    let cluster = Cluster::start_tls(&ca);
    for mode in [SslMode::VerifyCa, SslMode::VerifyFull] {
        let e = expect_tls_error(login(&cluster, mode, "127.0.0.1", Some(other.pem())));
        assert!(matches!(e, TlsError::UnknownIssuer), "{mode}: {e:?}");
        let m = e.to_string();
        assert!(m.contains("unknown issuer") && m.contains("`ca_pem`"), "{m}");
        assert!(!m.contains(ADMIN_PASSWORD), "{m}");
    }
    // Both CAs in ca_pem: the right one is found.
    let both = format!("{}{}", other.pem(), ca.pem());
    login(&cluster, SslMode::VerifyCa, "127.0.0.1", Some(&both)).expect("verify-ca with a bundle");
}

#[test]
fn require_connects_without_checking_the_certificate() {
    let ca = TestCa::new("tresor test CA");
    let cluster = Cluster::start_tls(&ca);
    // No CA, and a host name the certificate does not list: require only
    // encrypts.
    let mut client = login(&cluster, SslMode::Require, "db.example.test", None).expect("require");
    assert_eq!(server_side_tls(&mut client), ("true".to_owned(), "TLSv1.3".to_owned()));
    assert_eq!(
        client.simple_query("SELECT 1").expect("query"),
        vec![vec![Some("1".to_owned())]]
    );
}

#[test]
fn a_tls_1_2_server_is_verified_too() {
    let ca = TestCa::new("tresor test CA");
    let cluster = Cluster::start_tls_with(&ca, &["ssl_max_protocol_version = 'TLSv1.2'"]);
    let mut client = login(&cluster, SslMode::VerifyFull, "localhost", Some(ca.pem())).expect("verify-full, TLS 1.2");
    assert_eq!(server_side_tls(&mut client), ("true".to_owned(), "TLSv1.2".to_owned()));
    let mut client = login(&cluster, SslMode::Require, "localhost", None).expect("require, TLS 1.2");
    assert_eq!(server_side_tls(&mut client).1, "TLSv1.2");
    let e = expect_tls_error(login(
        &cluster,
        SslMode::VerifyCa,
        "localhost",
        Some(TestCa::new("other").pem()),
    ));
    assert!(matches!(e, TlsError::UnknownIssuer), "{e:?}");
}

#[test]
fn sslmode_disable_against_a_hostssl_only_server_is_refused_by_the_server() {
    let ca = TestCa::new("tresor test CA");
    let cluster = Cluster::start_tls(&ca);
    match login(&cluster, SslMode::Disable, "127.0.0.1", None) {
        Err(WireError::Server(e)) => {
            assert_eq!(e.code, "28000", "{e}");
            assert!(e.is_fatal(), "{e}");
            assert!(
                e.message.contains("pg_hba.conf rejects connection") && e.message.contains("no encryption"),
                "{e}"
            );
            assert!(!e.to_string().contains(ADMIN_PASSWORD), "{e}");
        }
        Err(other) => panic!("expected the server's refusal, got {other:?}"),
        Ok(_) => panic!("a plaintext login got through a hostssl-only server"),
    }
}

#[test]
fn require_against_a_server_with_tls_off_fails_saying_so() {
    let cluster = Cluster::start_plain();
    for (mode, ca) in [(SslMode::Require, None), (SslMode::VerifyFull, Some(TestCa::new("ca")))] {
        let e = expect_tls_error(login(&cluster, mode, "127.0.0.1", ca.as_ref().map(TestCa::pem)));
        assert!(matches!(e, TlsError::ServerTlsOff), "{mode}: {e:?}");
        let m = e.to_string();
        assert!(m.contains("ssl = off") && m.contains("turn ssl on"), "{m}");
    }
    // The same server takes plaintext: the refusal was about TLS only.
    let mut client = login(&cluster, SslMode::Disable, "127.0.0.1", None).expect("plaintext login");
    assert_eq!(server_side_tls(&mut client).0, "false");
}
