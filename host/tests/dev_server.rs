//! `tresor server --dev` as a user runs it, from an empty directory: it
//! prints a root token, serves the API, works with the `tresor kv` and
//! `tresor token` client commands, and stops cleanly on SIGTERM.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_tresor");

/// Kills the server if the test fails before it is stopped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Run a client command of the `tresor` binary with `env`.
fn client(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(dir);
    for var in ["TRESOR_ADDR", "TRESOR_TOKEN", "VAULT_ADDR", "VAULT_TOKEN"] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("run tresor")
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A plain HTTP/1.1 GET; returns the status line and body.
fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (head.lines().next().unwrap_or_default().to_string(), body.to_string())
}

/// The banner of a starting server: its address, and the root token if one was printed.
struct Banner {
    addr: String,
    root: Option<String>,
}

/// Start `tresor <args>` in `dir` and read its banner up to the `Listening on` line
/// (and the `Root Token:` line when `expect_root`).
fn spawn_server(dir: &Path, args: &[&str], expect_root: bool) -> (Server, Banner) {
    spawn_server_logging(dir, args, expect_root, "warn")
}

fn spawn_server_logging(dir: &Path, args: &[&str], expect_root: bool, log: &str) -> (Server, Banner) {
    let child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("TRESOR_DEV_ROOT_TOKEN_ID")
        .env("RUST_LOG", log)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tresor server");
    let mut server = Server(child);
    let stdout = server.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut addr, mut root) = (None, None);
    let mut banner = Vec::new();
    while addr.is_none() || (expect_root && root.is_none()) {
        let line = rx.recv_timeout(Duration::from_secs(120)).unwrap_or_else(|_| {
            let mut err = String::new();
            if let Some(mut e) = server.0.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("no banner from the server; stdout so far: {banner:?}; stderr: {err}")
        });
        if let Some(t) = line.strip_prefix("Root Token: ") {
            root = Some(t.trim().to_string());
        }
        if let Some(a) = line.strip_prefix("Listening on http://") {
            addr = Some(a.trim().to_string());
        }
        banner.push(line);
    }
    // Whatever else the banner says (a root token printed when none was expected).
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(300)) {
        if let Some(t) = line.strip_prefix("Root Token: ") {
            root = Some(t.trim().to_string());
        }
    }
    let addr = addr.unwrap();
    (server, Banner { addr, root })
}

/// SIGTERM, then the exit status (within 10 s).
fn terminate(server: &mut Server) -> std::process::ExitStatus {
    let kill = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    for _ in 0..200 {
        if let Some(s) = server.0.try_wait().unwrap() {
            return s;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the server did not stop within 10 s of SIGTERM");
}

#[test]
fn dev_server_prints_a_root_token_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // A `policies/` of the current directory (the checkout's own examples,
    // say) is not the dev server's: it keeps its own under .tresor-dev.
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("policies/broken.cedar"), "this is not cedar").unwrap();
    let (mut server, banner) = spawn_server(
        dir.path(),
        &["server", "--dev", "--dev-listen-address", "127.0.0.1:0"],
        true,
    );
    let (addr, root) = (banner.addr, banner.root.unwrap());
    assert!(root.starts_with("tvs."), "{root}");
    let url = format!("http://{addr}");

    // Health needs no token.
    let (status, body) = http_get(&addr, "/v1/sys/health");
    assert!(status.contains(" 200 "), "{status} {body}");
    assert!(body.contains("\"sealed\":false"), "{body}");

    // The example policies were seeded in the dev directory, state is local.
    assert!(dir.path().join(".tresor-dev/policies/admins.cedar").is_file());
    assert!(dir.path().join(".tresor-dev/audit.log").is_file());

    // A put/get round trip with the root token, through the CLI.
    let as_root = [("TRESOR_ADDR", url.as_str()), ("TRESOR_TOKEN", root.as_str())];
    let put = client(
        dir.path(),
        &as_root,
        &["kv", "put", "secret/apps/db", "password=hunter2", "user=app"],
    );
    assert!(put.status.success(), "{}", text(&put));
    let put = client(
        dir.path(),
        &as_root,
        &["kv", "put", "--cas", "1", "secret/apps/db", "password=hunter3"],
    );
    assert!(put.status.success(), "{}", text(&put));
    let get = client(
        dir.path(),
        &as_root,
        &["kv", "get", "--field", "password", "secret/apps/db"],
    );
    assert!(get.status.success(), "{}", text(&get));
    assert_eq!(String::from_utf8_lossy(&get.stdout).trim(), "hunter3");
    let old = client(dir.path(), &as_root, &["kv", "get", "--version", "1", "secret/apps/db"]);
    let old_data: serde_json::Value = serde_json::from_slice(&old.stdout).unwrap_or_default();
    assert_eq!(old_data["password"], "hunter2", "{}", text(&old));
    let list = client(dir.path(), &as_root, &["kv", "list", "secret/"]);
    assert_eq!(String::from_utf8_lossy(&list.stdout).trim(), "apps/", "{}", text(&list));
    let meta = client(dir.path(), &as_root, &["kv", "metadata", "get", "secret/apps/db"]);
    let meta: serde_json::Value = serde_json::from_slice(&meta.stdout).unwrap_or_default();
    assert_eq!(meta["current_version"], 2);
    let stale = client(
        dir.path(),
        &as_root,
        &["kv", "put", "--cas", "1", "secret/apps/db", "password=x"],
    );
    assert_eq!(stale.status.code(), Some(2), "{}", text(&stale));
    assert!(
        String::from_utf8_lossy(&stale.stderr).contains("check-and-set"),
        "{}",
        text(&stale)
    );

    // Tokens: an app token made with the CLI reads apps/*, nothing else;
    // VAULT_* works when TRESOR_* is unset, and TRESOR_* wins over VAULT_*.
    let made = client(
        dir.path(),
        &as_root,
        &[
            "token",
            "create",
            "--principal",
            "billing",
            "--group",
            "apps",
            "--ttl",
            "10m",
        ],
    );
    assert!(made.status.success(), "{}", text(&made));
    let app = String::from_utf8_lossy(&made.stdout).trim().to_string();
    assert!(app.starts_with("tvs."), "{}", text(&made));
    let as_app = [("VAULT_ADDR", url.as_str()), ("VAULT_TOKEN", app.as_str())];
    let get = client(
        dir.path(),
        &as_app,
        &["kv", "get", "--field", "password", "secret/apps/db"],
    );
    assert_eq!(String::from_utf8_lossy(&get.stdout).trim(), "hunter3", "{}", text(&get));
    client(dir.path(), &as_root, &["kv", "put", "secret/ops/key", "k=ops-value"]);
    let denied = client(dir.path(), &as_app, &["kv", "get", "secret/ops/key"]);
    assert_eq!(denied.status.code(), Some(2), "{}", text(&denied));
    assert!(denied.stdout.is_empty(), "{}", text(&denied));
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(
        stderr.contains("permission denied") && !stderr.contains("ops-value"),
        "{stderr}"
    );
    let both = [
        ("TRESOR_ADDR", url.as_str()),
        ("TRESOR_TOKEN", root.as_str()),
        ("VAULT_ADDR", "http://127.0.0.1:1"),
        ("VAULT_TOKEN", app.as_str()),
    ];
    let get = client(dir.path(), &both, &["kv", "get", "--field", "k", "secret/ops/key"]);
    assert_eq!(
        String::from_utf8_lossy(&get.stdout).trim(),
        "ops-value",
        "{}",
        text(&get)
    );
    let lookup = client(dir.path(), &as_app, &["token", "lookup"]);
    let lookup: serde_json::Value = serde_json::from_slice(&lookup.stdout).unwrap_or_default();
    assert_eq!(lookup["display_name"], "billing");
    let renew = client(dir.path(), &as_app, &["token", "renew", "--increment", "20m"]);
    assert!(renew.status.success(), "{}", text(&renew));
    let said = String::from_utf8_lossy(&renew.stdout);
    let seconds: u64 = said
        .trim()
        .strip_prefix("renewed: expires in ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{}", text(&renew)));
    assert!((1195..=1200).contains(&seconds), "{}", text(&renew));
    let revoke = client(dir.path(), &as_root, &["token", "revoke", &app]);
    assert!(revoke.status.success(), "{}", text(&revoke));
    let refused = client(dir.path(), &as_app, &["kv", "get", "secret/apps/db"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));

    // SIGTERM: a clean exit, and an intact audit log.
    let status = terminate(&mut server);
    assert!(status.success(), "exit status after SIGTERM: {status}");
    let verify = client(dir.path(), &[], &["audit", "verify", ".tresor-dev/audit.log"]);
    assert!(verify.status.success(), "{}", text(&verify));
    let log = std::fs::read_to_string(dir.path().join(".tresor-dev/audit.log")).unwrap();
    assert!(!log.contains("hunter") && !log.contains("ops-value"));
    let mut state = std::fs::read(dir.path().join(".tresor-dev/state.db")).unwrap();
    state.extend(std::fs::read(dir.path().join(".tresor-dev/state.db-wal")).unwrap_or_default());
    let secret = root.trim_start_matches("tvs.").as_bytes();
    assert!(
        !state.windows(secret.len()).any(|w| w == secret),
        "the root token is stored in the clear"
    );
    assert!(!dir.path().join(".tresor-dev/tokens.json").exists());
}

// `tresor run` in place of a plaintext .env: the child sees its secrets as
// variables, its output is masked (a value split across two writes too),
// its exit status and signals pass through.
#[test]
fn tresor_run_passes_secrets_masks_them_and_exits_like_the_child() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, banner) = spawn_server(
        dir.path(),
        &["server", "--dev", "--dev-listen-address", "127.0.0.1:0"],
        true,
    );
    let url = format!("http://{}", banner.addr);
    let root = banner.root.unwrap();
    let env = [("TRESOR_ADDR", url.as_str()), ("TRESOR_TOKEN", root.as_str())];
    for (path, pair) in [
        ("secret/apps/billing/DB_PASSWORD", "value=hunter22"),
        ("secret/apps/billing/API_KEY", "value=k3y-abcdef"),
        ("secret/apps/billing/SMTP", "user=mailer"),
    ] {
        let put = client(dir.path(), &env, &["kv", "put", path, pair]);
        assert!(put.status.success(), "{}", text(&put));
    }
    let put = client(
        dir.path(),
        &env,
        &[
            "kv",
            "put",
            "secret/apps/billing/SMTP",
            "user=mailer",
            "password=m41l-pw",
        ],
    );
    assert!(put.status.success(), "{}", text(&put));

    // Variables, masking across split writes, the exit code.
    let script = r#"echo "db=$DB_PASSWORD smtp=$SMTP_USER/$SMTP_PASSWORD"; printf '%s' "${API_KEY%??????}"; sleep 0.2; printf '%s\n' "${API_KEY#????}"; echo "err=$DB_PASSWORD" >&2; exit 7"#;
    let run = client(
        dir.path(),
        &env,
        &["run", "--from", "secret/apps/billing", "--", "sh", "-c", script],
    );
    let (out, err) = (
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    assert_eq!(run.status.code(), Some(7), "{}", text(&run));
    assert!(out.contains("db=******** smtp=******/*******"), "{out}");
    assert!(out.contains("**********\n"), "the split API key: {out}");
    assert!(err.contains("err=********"), "{err}");
    for value in ["hunter22", "k3y-", "abcdef", "m41l-pw", "mailer"] {
        assert!(
            !out.contains(value) && !err.contains(value),
            "`{value}` shown: {out} {err}"
        );
    }
    // Never on a command line: the child's arguments are its own.
    let args = client(
        dir.path(),
        &env,
        &[
            "run",
            "--from",
            "secret/apps/billing",
            "--",
            "sh",
            "-c",
            "cat /proc/$$/cmdline",
        ],
    );
    assert!(!String::from_utf8_lossy(&args.stdout).contains("hunter22"));

    // --no-masking shows values; --map names them.
    std::fs::write(
        dir.path().join("vars.map"),
        "# mine\nDBPW=secret/apps/billing/DB_PASSWORD\nMAIL=secret/apps/billing/SMTP#password\n",
    )
    .unwrap();
    let run = client(
        dir.path(),
        &env,
        &[
            "run",
            "--map",
            "vars.map",
            "--no-masking",
            "--",
            "sh",
            "-c",
            "echo $DBPW $MAIL",
        ],
    );
    assert!(run.status.success(), "{}", text(&run));
    assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), "hunter22 m41l-pw");

    // A child ended by a signal: 128 + N, as a shell reports it.
    let run = client(
        dir.path(),
        &env,
        &[
            "run",
            "--from",
            "secret/apps/billing",
            "--",
            "sh",
            "-c",
            "kill -TERM $$",
        ],
    );
    assert_eq!(run.status.code(), Some(143), "{}", text(&run));

    // A signal to `tresor run` reaches the child.
    let mut child = Command::new(BIN)
        .args(["run", "--from", "secret/apps/billing", "--", "sh", "-c"])
        .arg("trap 'echo got-term; exit 3' TERM; echo ready; while true; do sleep 0.1; done")
        .current_dir(dir.path())
        .envs(env)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "got-term");
    assert_eq!(child.wait().unwrap().code(), Some(3));

    // --watch: a changed secret restarts the program with the new value,
    // at once from the change event (the interval alone would take an hour).
    let mut watched = Command::new(BIN)
        .args([
            "run",
            "--from",
            "secret/apps/billing",
            "--watch",
            "--interval",
            "1h",
            "--no-masking",
            "--",
            "sh",
            "-c",
        ])
        .arg("echo \"db=$DB_PASSWORD\"; while true; do sleep 0.1; done")
        .current_dir(dir.path())
        .envs(env)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (line_tx, line_rx) = std::sync::mpsc::channel();
    let out = watched.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = line_tx.send(line);
        }
    });
    let next_line = || line_rx.recv_timeout(Duration::from_secs(10));
    assert_eq!(next_line().as_deref(), Ok("db=hunter22"));
    let put = client(
        dir.path(),
        &env,
        &["kv", "put", "secret/apps/billing/DB_PASSWORD", "value=changed44"],
    );
    assert!(put.status.success(), "{}", text(&put));
    assert_eq!(
        next_line().as_deref(),
        Ok("db=changed44"),
        "not restarted with the new value within 10 s"
    );
    Command::new("kill")
        .args(["-TERM", &watched.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(
        watched.wait().unwrap().code(),
        Some(143),
        "the child ended by the forwarded TERM"
    );

    // --watch --signal HUP: the program is sent HUP instead of restarted.
    let mut signalled = Command::new(BIN)
        .args([
            "run",
            "--from",
            "secret/apps/billing",
            "--watch",
            "--interval",
            "1h",
            "--signal",
            "hup",
            "--no-masking",
            "--",
            "sh",
            "-c",
        ])
        .arg("trap 'echo got-hup' HUP; echo \"started db=$DB_PASSWORD\"; while true; do sleep 0.1; done")
        .current_dir(dir.path())
        .envs(env)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (line_tx, line_rx) = std::sync::mpsc::channel();
    let out = signalled.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = line_tx.send(line);
        }
    });
    let next_line = || line_rx.recv_timeout(Duration::from_secs(10));
    assert_eq!(next_line().as_deref(), Ok("started db=changed44"));
    let put = client(
        dir.path(),
        &env,
        &["kv", "put", "secret/apps/billing/DB_PASSWORD", "value=changed55"],
    );
    assert!(put.status.success(), "{}", text(&put));
    assert_eq!(
        next_line().as_deref(),
        Ok("got-hup"),
        "no HUP within 10 s of the change"
    );
    assert!(
        line_rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "the program was restarted as well"
    );
    let _ = signalled.kill();
    let _ = signalled.wait();
    let bad = client(
        dir.path(),
        &env,
        &[
            "run",
            "--from",
            "secret/apps/billing",
            "--watch",
            "--signal",
            "KILL",
            "--",
            "true",
        ],
    );
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(text(&bad).contains("use HUP, USR1"), "{}", text(&bad));

    // What cannot work says so.
    let run = client(
        dir.path(),
        &env,
        &["run", "--from", "secret/nothing-here", "--", "true"],
    );
    assert_eq!(run.status.code(), Some(2), "{}", text(&run));
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("no secrets under"),
        "{}",
        text(&run)
    );
    assert!(terminate(&mut server).success());
}

// `tresor migrate` on a file with the syntax python-dotenv reads: a dry run
// writes nothing; --apply writes, verifies, backs up, and rewrites only the
// migrated lines; a rerun writes no new versions.
#[test]
fn tresor_migrate_moves_a_dotenv_file_into_a_mount() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, banner) = spawn_server(
        dir.path(),
        &["server", "--dev", "--dev-listen-address", "127.0.0.1:0"],
        true,
    );
    let url = format!("http://{}", banner.addr);
    let root = banner.root.unwrap();
    let env = [("TRESOR_ADDR", url.as_str()), ("TRESOR_TOKEN", root.as_str())];
    let original = "\u{feff}# billing\r\nLOG_LEVEL=INFO\r\nexport DB_PASSWORD='p@ss w0rd'  # rotated monthly\r\n\
        API_TOKEN=\"line1\\nline2\"\nDATABASE_URL=postgres://app:s3cr3t@db:5432/app\nGREETING=hello world # shown\n\
        TEMPLATE=${HOME}/x\nEMPTY=\n";
    std::fs::write(dir.path().join(".env"), original).unwrap();

    // Dry run: the decisions, nothing written.
    let dry = client(dir.path(), &env, &["migrate", "--to", "secret/apps/billing"]);
    assert!(dry.status.success(), "{}", text(&dry));
    let table = String::from_utf8_lossy(&dry.stdout);
    for (name, decision) in [
        ("LOG_LEVEL", "keep"),
        ("DB_PASSWORD", "migrate"),
        ("API_TOKEN", "migrate"),
        ("DATABASE_URL", "migrate"),
        ("GREETING", "keep"),
    ] {
        let line = table
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name}: {table}"));
        assert!(line.contains(&format!(" {decision} ")), "{line}");
    }
    assert!(
        !table.contains("p@ss") && !table.contains("s3cr3t"),
        "a value in the table: {table}"
    );
    assert!(table.contains("(9 chars, would migrate)"), "{table}");
    assert_eq!(std::fs::read_to_string(dir.path().join(".env")).unwrap(), original);
    let get = client(dir.path(), &env, &["kv", "get", "secret/apps/billing/DB_PASSWORD"]);
    assert!(!get.status.success(), "the dry run wrote: {}", text(&get));

    // Apply: written, verified, backed up, rewritten.
    let apply = client(
        dir.path(),
        &env,
        &[
            "migrate",
            "--apply",
            "--to",
            "secret/apps/billing",
            "--backup",
            "--json",
        ],
    );
    assert!(apply.status.success(), "{}", text(&apply));
    let out: serde_json::Value = serde_json::from_slice(&apply.stdout).unwrap();
    assert_eq!(
        (out["migrated"].as_u64(), out["verified"].as_u64()),
        (Some(3), Some(3)),
        "{out}"
    );
    let rewritten = std::fs::read_to_string(dir.path().join(".env")).unwrap();
    assert_eq!(
        rewritten,
        "\u{feff}# billing\r\nLOG_LEVEL=INFO\r\n# DB_PASSWORD - MIGRATED TO TRESOR (secret/apps/billing/DB_PASSWORD)\r\n\
         # API_TOKEN - MIGRATED TO TRESOR (secret/apps/billing/API_TOKEN)\n\
         # DATABASE_URL - MIGRATED TO TRESOR (secret/apps/billing/DATABASE_URL)\n\
         GREETING=hello world # shown\nTEMPLATE=${HOME}/x\nEMPTY=\n"
    );
    let backup = dir.path().join(out["backup"].as_str().unwrap());
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), original);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777, 0o600);
    }
    for (path, value) in [
        ("DB_PASSWORD", "p@ss w0rd"),
        ("API_TOKEN", "line1\nline2"),
        ("DATABASE_URL", "postgres://app:s3cr3t@db:5432/app"),
    ] {
        let get = client(
            dir.path(),
            &env,
            &["kv", "get", "--field", "value", &format!("secret/apps/billing/{path}")],
        );
        assert_eq!(
            String::from_utf8_lossy(&get.stdout).trim_end_matches('\n'),
            value,
            "{}",
            text(&get)
        );
    }
    let meta = client(
        dir.path(),
        &env,
        &["kv", "metadata", "get", "secret/apps/billing/DB_PASSWORD"],
    );
    let meta: serde_json::Value = serde_json::from_slice(&meta.stdout).unwrap_or_default();
    assert_eq!(meta["custom_metadata"]["source"], ".env", "{meta}");
    assert_eq!(meta["custom_metadata"]["type"], "database_credential", "{meta}");
    let versions = meta["current_version"].clone();

    // A rerun on the original file (an interrupted first run) writes nothing new.
    std::fs::write(dir.path().join(".env"), original).unwrap();
    let again = client(
        dir.path(),
        &env,
        &["migrate", "--apply", "--to", "secret/apps/billing", "--json"],
    );
    assert!(again.status.success(), "{}", text(&again));
    let out: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert!(
        out["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["secret"] == true)
            .all(|e| e["status"] == "unchanged"),
        "{out}"
    );
    let meta = client(
        dir.path(),
        &env,
        &["kv", "metadata", "get", "secret/apps/billing/DB_PASSWORD"],
    );
    let meta: serde_json::Value = serde_json::from_slice(&meta.stdout).unwrap_or_default();
    assert_eq!(meta["current_version"], versions, "a rerun wrote a new version");

    // --delete asks for a typed yes; anything else keeps the file.
    let delete = |answer: &str| {
        std::fs::write(dir.path().join(".env"), original).unwrap();
        let mut child = Command::new(BIN)
            .args(["migrate", "--apply", "--to", "secret/apps/billing", "--delete"])
            .current_dir(dir.path())
            .envs(env)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(answer.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, err) = delete("no\n");
    assert!(
        ok && err.contains("type yes") && err.contains("the 4 entries kept"),
        "{err}"
    );
    assert!(dir.path().join(".env").exists(), "deleted without a yes");
    let (ok, err) = delete("yes\n");
    assert!(ok && err.contains("deleted"), "{err}");
    assert!(!dir.path().join(".env").exists());
    std::fs::write(dir.path().join(".env"), original).unwrap();
    let yes = client(
        dir.path(),
        &env,
        &["migrate", "--apply", "--to", "secret/apps/billing", "--delete", "--yes"],
    );
    assert!(yes.status.success(), "{}", text(&yes));
    assert!(!dir.path().join(".env").exists());

    // A line it cannot read: refused, named, nothing written.
    std::fs::write(dir.path().join("bad.env"), "OK=1\nthis is not a statement\n").unwrap();
    let bad = client(
        dir.path(),
        &env,
        &["migrate", "bad.env", "--apply", "--to", "secret/bad"],
    );
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("line 2"),
        "{}",
        text(&bad)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("bad.env")).unwrap(),
        "OK=1\nthis is not a statement\n"
    );
    assert!(terminate(&mut server).success());
}

// SIGKILL at any moment of a migration leaves the file as it was (or, once
// everything verified, wholly rewritten), and a rerun finishes the job.
#[test]
fn a_migration_killed_at_any_moment_loses_nothing_and_a_rerun_completes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, banner) = spawn_server(
        dir.path(),
        &["server", "--dev", "--dev-listen-address", "127.0.0.1:0"],
        true,
    );
    let url = format!("http://{}", banner.addr);
    let root = banner.root.unwrap();
    let env = [("TRESOR_ADDR", url.as_str()), ("TRESOR_TOKEN", root.as_str())];
    let mut original = String::from("# many\nLOG_LEVEL=debug\n");
    let mut expected = original.clone();
    for i in 0..120 {
        original.push_str(&format!("SERVICE_{i}_TOKEN=tok-{i:04}-q8Zr2LxN0vTb7KpW\n"));
        expected.push_str(&format!(
            "# SERVICE_{i}_TOKEN - MIGRATED TO TRESOR (secret/many/SERVICE_{i}_TOKEN)\n"
        ));
    }
    let file = dir.path().join(".env");
    std::fs::write(&file, &original).unwrap();
    let args = ["migrate", "--apply", "--to", "secret/many"];
    for delay_ms in [30u64, 120, 300, 600] {
        let mut child = Command::new(BIN)
            .args(args)
            .current_dir(dir.path())
            .envs(env)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let now = std::fs::read_to_string(&file).unwrap();
        assert!(
            now == original || now == expected,
            "after SIGKILL at {delay_ms} ms the file is neither the original nor the finished one"
        );
        if now == expected {
            // Finished before the kill: start over from the original.
            std::fs::write(&file, &original).unwrap();
        }
    }
    let rerun = client(dir.path(), &env, &args);
    assert!(rerun.status.success(), "{}", text(&rerun));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), expected);
    let get = client(
        dir.path(),
        &env,
        &["kv", "get", "--field", "value", "secret/many/SERVICE_119_TOKEN"],
    );
    assert_eq!(String::from_utf8_lossy(&get.stdout).trim(), "tok-0119-q8Zr2LxN0vTb7KpW");
    // Every secret has its metadata (a run killed between value and metadata
    // was finished), and none was written twice: a value version and a
    // metadata version at most.
    for i in [0, 60, 119] {
        let meta = client(
            dir.path(),
            &env,
            &["kv", "metadata", "get", &format!("secret/many/SERVICE_{i}_TOKEN")],
        );
        let meta: serde_json::Value = serde_json::from_slice(&meta.stdout).unwrap_or_default();
        assert_eq!(meta["custom_metadata"]["source"], ".env", "{meta}");
        assert!(meta["current_version"].as_u64().unwrap_or(99) <= 2, "{meta}");
    }
    assert!(terminate(&mut server).success());
}

// `tresor render`: a template that names secrets becomes a 0600 file; a
// missing secret or field is an error that writes nothing; --watch keeps the
// file current and runs its hook after each write.
#[test]
fn tresor_render_writes_config_files_from_templates() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, banner) = spawn_server(
        dir.path(),
        &["server", "--dev", "--dev-listen-address", "127.0.0.1:0"],
        true,
    );
    let url = format!("http://{}", banner.addr);
    let root = banner.root.unwrap();
    let env = [("TRESOR_ADDR", url.as_str()), ("TRESOR_TOKEN", root.as_str())];
    let put = client(
        dir.path(),
        &env,
        &["kv", "put", "secret/apps/db", "user=app", "password=hunter22"],
    );
    assert!(put.status.success(), "{}", text(&put));
    let tmpl = dir.path().join("app.tmpl");
    std::fs::write(
        &tmpl,
        "[db]\nuser = {{ secret(\"secret/apps/db\").user }}\npassword = {{ secret(\"secret/apps/db\").password }}\n",
    )
    .unwrap();

    let out = client(dir.path(), &env, &["render", "app.tmpl", "-o", "app.conf"]);
    assert!(out.status.success(), "{}", text(&out));
    let conf = dir.path().join("app.conf");
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        "[db]\nuser = app\npassword = hunter22\n"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&conf).unwrap().permissions().mode() & 0o777, 0o600);
    }

    // A missing secret, or a missing field: an error, and no file.
    for (template, needle) in [
        (
            "x = {{ secret(\"secret/apps/nope\").x }}",
            "no secret at secret/apps/nope",
        ),
        ("x = {{ secret(\"secret/apps/db\").nope }}", "line 1"),
    ] {
        std::fs::write(dir.path().join("bad.tmpl"), template).unwrap();
        let out = client(dir.path(), &env, &["render", "bad.tmpl", "-o", "bad.conf"]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains(needle), "{}", text(&out));
        assert!(!dir.path().join("bad.conf").exists(), "a failed render wrote a file");
    }

    // --watch: a changed secret is written again (at once, from the change
    // event: the interval is an hour), and the hook runs after each write.
    let mut watch = Command::new(BIN)
        .args([
            "render",
            "app.tmpl",
            "-o",
            "watched.conf",
            "--watch",
            "--interval",
            "1h",
            "--exec",
            "echo reloaded >> hook.log",
        ])
        .current_dir(dir.path())
        .envs(env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let watched = dir.path().join("watched.conf");
    let wait_for = |needle: &str| {
        for _ in 0..100 {
            if std::fs::read_to_string(&watched).is_ok_and(|t| t.contains(needle)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    };
    assert!(wait_for("password = hunter22"), "the watched file was not written");
    let put = client(
        dir.path(),
        &env,
        &["kv", "put", "secret/apps/db", "user=app", "password=rotated33"],
    );
    assert!(put.status.success(), "{}", text(&put));
    assert!(wait_for("password = rotated33"), "the change was not rendered");
    std::thread::sleep(Duration::from_millis(300));
    let hooks = std::fs::read_to_string(dir.path().join("hook.log")).unwrap_or_default();
    assert_eq!(hooks.lines().count(), 2, "one hook run per write: {hooks:?}");
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(terminate(&mut server).success());
}

// A log written to a file or a pipe is read by people and tools: no
// terminal colour codes in it.
#[test]
fn the_server_log_has_no_colour_codes_when_it_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, _) = spawn_server_logging(
        dir.path(),
        &["server", "--dev", "--dev-listen-address", "127.0.0.1:0"],
        true,
        "info",
    );
    assert!(terminate(&mut server).success());
    let mut log = String::new();
    server.0.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    assert!(log.contains("INFO"), "the server logged nothing at info: {log}");
    assert!(!log.contains('\u{1b}'), "colour codes in a piped log:\n{log:?}");
}

#[test]
fn server_without_config_or_dev_says_what_to_do() {
    let out = Command::new(BIN).args(["server"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config"));
    let out = client(
        Path::new("."),
        &[("TRESOR_ADDR", "http://127.0.0.1:1")],
        &["kv", "get", "secret/x"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach"),
        "{}",
        text(&out)
    );
}

#[test]
fn config_file_server_bootstraps_a_root_token_only_once() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    std::fs::copy(repo.join("admins.cedar"), policies.join("admins.cedar")).unwrap();
    std::fs::write(
        dir.path().join("tresor.toml"),
        r#"
state_dir = "state"
[policy]
dir = "policies"
[[mount]]
path = "secret"
plugin = "file"
grants = { directory = "data/secret", clock = true }
[server]
listen = "127.0.0.1:0"
max_request_bytes = 4096
[server.tokens]
default_ttl = "1h"
"#,
    )
    .unwrap();
    let (mut server, banner) = spawn_server(dir.path(), &["server", "--config", "tresor.toml"], true);
    let root = banner.root.unwrap();
    let env = [
        ("TRESOR_ADDR", format!("http://{}", banner.addr)),
        ("TRESOR_TOKEN", root.clone()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let put = client(dir.path(), &env, &["kv", "put", "secret/a", "k=v"]);
    assert!(put.status.success(), "{}", text(&put));
    // max_request_bytes from the file applies.
    let big = format!("k={}", "x".repeat(5000));
    let put = client(dir.path(), &env, &["kv", "put", "secret/a", &big]);
    assert_eq!(put.status.code(), Some(2), "{}", text(&put));
    assert!(String::from_utf8_lossy(&put.stderr).contains("413"), "{}", text(&put));
    assert!(terminate(&mut server).success());
    assert!(dir.path().join("state/audit.log").is_file());

    // The store is not empty any more: no new root token, the old one works.
    let (mut server, banner) = spawn_server(dir.path(), &["server", "--config", "tresor.toml"], false);
    assert!(banner.root.is_none());
    let env = [
        ("TRESOR_ADDR", format!("http://{}", banner.addr)),
        ("TRESOR_TOKEN", root.clone()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let get = client(dir.path(), &env, &["kv", "get", "--field", "k", "secret/a"]);
    assert_eq!(String::from_utf8_lossy(&get.stdout).trim(), "v", "{}", text(&get));
    assert!(terminate(&mut server).success());
}
