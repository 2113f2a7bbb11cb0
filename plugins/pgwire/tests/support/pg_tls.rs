//! Test support shared by the TLS tests of `tresor-pgwire`, the `postgres`
//! generator and the `postgres-kv` provider (each includes this file with
//! `#[path]`): test CAs and server certificates made with `rcgen`, and a
//! throw-away PostgreSQL cluster, plaintext or TLS.
//!
//! The cluster is started by `tests/peers/run/pg_cluster.sh` (SCRAM-SHA-256
//! on 127.0.0.1, as the other real-server tests); for TLS its data
//! directory then gets a server certificate and key, `ssl = on`, and a
//! pg_hba.conf that accepts TCP logins over TLS only (`hostssl`, and
//! `hostnossl ... reject`), and the server is restarted. Needs `initdb` and
//! `pg_ctl` on the PATH: without them the test fails, saying to run
//! ./tests/setup.sh.

#![allow(dead_code)]

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The password of the cluster's superuser `postgres`.
pub const ADMIN_PASSWORD: &str = "admin-Pw-4-tls-tests";

/// A test certificate authority.
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

impl TestCa {
    /// A fresh self-signed CA named `name`.
    pub fn new(name: &str) -> TestCa {
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let pem = params.self_signed(&key).expect("CA certificate").pem();
        TestCa {
            issuer: rcgen::Issuer::new(params, key),
            pem,
        }
    }

    /// The CA certificate, PEM: what config key `ca_pem` takes.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A server certificate for `names` (DNS names or IP addresses) and its
    /// key, both PEM.
    pub fn server_certificate(&self, names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("server key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).expect("server params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "tresor test server");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&key, &self.issuer).expect("server certificate");
        (cert.pem(), key.serialize_pem())
    }
}

/// A running throw-away cluster; stopped (and its directory removed) on drop.
pub struct Cluster {
    dir: tempfile::TempDir,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Cluster {
    /// A cluster with `ssl = off` (PostgreSQL's default), SCRAM on 127.0.0.1.
    pub fn start_plain() -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("tresor-pgtls-")
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers/run/pg_cluster.sh");
        let output = Command::new("bash")
            .arg(&script)
            .arg(dir.path())
            .arg(port.to_string())
            .arg(ADMIN_PASSWORD)
            .output()
            .expect("run tests/peers/run/pg_cluster.sh");
        let cluster = Cluster { dir, port };
        assert!(
            output.status.success(),
            "pg_cluster.sh failed (is PostgreSQL installed? run ./tests/setup.sh): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        cluster
    }

    /// A cluster with `ssl = on`, the certificate `ca` issues for
    /// `localhost` and `127.0.0.1`, and TCP logins over TLS only.
    pub fn start_tls(ca: &TestCa) -> Cluster {
        Cluster::start_tls_with(ca, &[])
    }

    /// As [`Cluster::start_tls`], with more postgresql.conf lines.
    pub fn start_tls_with(ca: &TestCa, conf: &[&str]) -> Cluster {
        let cluster = Cluster::start_plain();
        let (cert, key) = ca.server_certificate(&["localhost", "127.0.0.1"]);
        let data = cluster.data();
        cluster.write_private(&data.join("server.crt"), &cert);
        cluster.write_private(&data.join("server.key"), &key);
        let mut settings = String::from(
            "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n\
             password_encryption = 'scram-sha-256'\n",
        );
        for line in conf {
            settings.push_str(line);
            settings.push('\n');
        }
        let mut postgresql_conf = fs::read_to_string(data.join("postgresql.conf")).expect("read postgresql.conf");
        postgresql_conf.push_str(&settings);
        cluster.write_private(&data.join("postgresql.conf"), &postgresql_conf);
        cluster.write_private(
            &data.join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n\
             hostnossl all all 127.0.0.1/32 reject\n",
        );
        let log = cluster.dir.path().join("server.log");
        let out = cluster.pg_ctl(&["restart", "-m", "fast", "-w", "-t", "30", "-l", &log.to_string_lossy()]);
        assert!(
            out.status.success(),
            "pg_ctl restart with ssl = on failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            fs::read_to_string(&log).unwrap_or_default()
        );
        cluster
    }

    /// The data directory.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Writes `text` to `path` (mode 0600), owned by the server's user.
    fn write_private(&self, path: &Path, text: &str) {
        fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).expect("chmod");
        if is_root() {
            let out = Command::new("chown")
                .arg("--reference")
                .arg(self.data())
                .arg(path)
                .output()
                .expect("run chown");
            assert!(out.status.success(), "chown: {}", String::from_utf8_lossy(&out.stderr));
        }
    }

    /// Runs `pg_ctl -D DATA args` as the server's user.
    pub fn pg_ctl(&self, args: &[&str]) -> Output {
        self.try_pg_ctl(args).expect("run pg_ctl")
    }

    fn try_pg_ctl(&self, args: &[&str]) -> std::io::Result<Output> {
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "pg_ctl"]);
            c
        } else {
            Command::new("pg_ctl")
        };
        cmd.arg("-D").arg(self.data()).args(args).output()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Never panics: a cluster that did not start has nothing to stop.
        let _ = self.try_pg_ctl(&["stop", "-m", "immediate"]);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
