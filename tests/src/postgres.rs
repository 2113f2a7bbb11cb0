//! A real PostgreSQL server for the tests: a throw-away cluster on a free
//! loopback port (`tests/peers/run/pg_cluster.sh`: SCRAM-SHA-256 required on
//! 127.0.0.1, superuser `postgres`), stopped when dropped. Installed by
//! `./tests/setup.sh` (`tests/peers/postgres.sh`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A running PostgreSQL cluster.
pub struct Postgres {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    /// The superuser's password.
    pub password: String,
    dir: tempfile::TempDir,
}

fn root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/run/pg_cluster.sh")
}

impl Postgres {
    /// Start a cluster, or panic saying what is missing.
    pub fn start() -> Postgres {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = crate::peers::free_port_pair();
        let password = format!("pg-{}", crate::marker("super"));
        let out = Command::new("bash")
            .arg(script())
            .arg(dir.path())
            .arg(port.to_string())
            .arg(&password)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}; run ./tests/setup.sh", script().display()));
        assert!(
            out.status.success(),
            "PostgreSQL did not start (run ./tests/setup.sh to install it): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Postgres { port, password, dir }
    }

    /// Turn TLS on with a certificate for 127.0.0.1 and localhost from
    /// `pki`, and from now on refuse plaintext connections over TCP.
    #[cfg(unix)]
    pub fn require_tls(&self, pki: &crate::server::TestPki) {
        use std::os::unix::fs::PermissionsExt;
        let data = self.dir.path().join("data");
        let issued = pki.server();
        for (name, pem) in [("server.crt", &issued.cert_pem), ("server.key", &issued.key_pem)] {
            let path = data.join(name);
            std::fs::write(&path, pem).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            if root() {
                let chown = Command::new("chown").arg("postgres").arg(&path).status().unwrap();
                assert!(chown.success(), "chown postgres {}", path.display());
            }
        }
        self.psql("ALTER SYSTEM SET ssl = on");
        self.psql("SELECT pg_reload_conf()");
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
        )
        .unwrap();
        // Through TLS already (psql prefers it), which proves it is on.
        self.psql("SELECT pg_reload_conf()");
    }

    /// `host:port` for a sockets grant.
    pub fn authority(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Vault's connection URL shape, with the `{{username}}`/`{{password}}` placeholders.
    pub fn connection_url(&self) -> String {
        format!(
            "postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        let data = self.dir.path().join("data");
        let mut cmd = if root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "pg_ctl"]);
            c
        } else {
            Command::new("pg_ctl")
        };
        cmd.arg("-D").arg(&data).args(args);
        cmd.output().expect("run pg_ctl")
    }

    /// Stop the server (fast shutdown); [`resume`](Self::resume) starts it again.
    pub fn pause(&self) {
        let out = self.pg_ctl(&["stop", "-m", "fast", "-w"]);
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Start the server again after [`pause`](Self::pause).
    pub fn resume(&self) {
        let log = self.dir.path().join("server.log");
        let log = log.to_string_lossy().into_owned();
        let out = self.pg_ctl(&["start", "-w", "-l", &log]);
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Run SQL as `user` with `password`; the output rows (unaligned, tuples only).
    pub fn psql_as(&self, user: &str, password: &str, sql: &str) -> Result<String, String> {
        let out = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                user,
                "-d",
                "postgres",
            ])
            .args(["-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "5")
            .output()
            .map_err(|e| format!("cannot run psql: {e}; run ./tests/setup.sh"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    /// Run SQL as the superuser; panics on failure.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_as("postgres", &self.password, sql)
            .unwrap_or_else(|e| panic!("psql `{sql}`: {e}"))
    }

    /// Names of the roles whose name starts with `prefix`, sorted.
    pub fn roles(&self, prefix: &str) -> Vec<String> {
        let out = self.psql(&format!(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE '{}%' ORDER BY rolname",
            prefix.replace('\'', "''")
        ));
        out.lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
    }

    /// A `db` mount of the postgres generator on `pg`, granted `grant` as its
    /// only socket, with role `ro` (SELECT on `app_data`) and role `rw`.
    pub fn db_mount(&self, grant: &str, connect_port: u16) -> String {
        format!(
            r#"
[leases]
sweep_interval_ms = 100
retry_initial_ms = 200
retry_max_ms = 500
max_revoke_attempts = 1000

[[mount]]
path = "db"
plugin = "postgres"
config = {{ connection_url = "postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{connect_port}/postgres?sslmode=disable", username = "postgres", password = "{password}" }}
grants = {{ sockets = ["{grant}"] }}
[mount.roles.ro]
default_ttl = "1h"
max_ttl = "2h"
creation_statements = """CREATE ROLE "{{{{name}}}}" WITH LOGIN PASSWORD '{{{{password}}}}' VALID UNTIL '{{{{expiration}}}}'; GRANT SELECT ON app_data TO "{{{{name}}}}";"""
[mount.roles.rw]
default_ttl = "1h"
max_ttl = "2h"
creation_statements = """CREATE ROLE "{{{{name}}}}" WITH LOGIN PASSWORD '{{{{password}}}}' VALID UNTIL '{{{{expiration}}}}'; GRANT SELECT, INSERT ON app_data TO "{{{{name}}}}";"""
"#,
            password = self.password,
        )
    }

    /// The `rolvaliduntil` of role `name` as unix seconds.
    pub fn valid_until(&self, name: &str) -> Option<i64> {
        let out = self.psql(&format!(
            "SELECT extract(epoch FROM rolvaliduntil)::bigint FROM pg_roles WHERE rolname = '{}'",
            name.replace('\'', "''")
        ));
        out.trim().parse().ok()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["stop", "-m", "immediate"]);
    }
}

/// The master key the tests' hosts share when they share a state store
/// (hosts with different keys are refused by the store).
pub const SHARED_MASTER_KEY: &str = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";

/// Give the host whose state directory is `state_dir` the shared master key
/// (before it starts).
pub fn share_master_key(state_dir: &Path) {
    std::fs::create_dir_all(state_dir).unwrap();
    let key = state_dir.join("master.key");
    std::fs::write(&key, SHARED_MASTER_KEY).unwrap();
    #[cfg(unix)]
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
}
