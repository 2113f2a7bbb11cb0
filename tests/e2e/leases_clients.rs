//! Existing Vault clients drive Tresor's dynamic secrets unchanged: the
//! `bao` CLI (`read <mount>/creds/<role>`, `lease renew|lookup|revoke`,
//! `lease revoke -prefix`, `list sys/leases/lookup/...`) and hvac
//! (`secrets.database.generate_credentials`, `sys.renew_lease`,
//! `sys.read_lease`, `sys.revoke_lease`, `sys.revoke_prefix`), against a real
//! PostgreSQL. Revoking a token revokes the leases it created.

use tresor_e2e::postgres::Postgres;
use tresor_e2e::server::*;
use tresor_e2e::*;

fn json(out: &std::process::Output, what: &str) -> serde_json::Value {
    let text = stdout_ok(out, what);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"))
}

async fn server(pg: &Postgres) -> TestServer {
    pg.psql("CREATE TABLE app_data (id int); INSERT INTO app_data VALUES (42);");
    start_server_with(TEST_POLICIES, &pg.db_mount(&pg.authority(), pg.port), |_| String::new()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bao_cli_issues_renews_looks_up_and_revokes() {
    let pg = Postgres::start();
    let s = server(&pg).await;
    let root = s.root_token.clone();

    let issued = json(&s.bao(&root, &["read", "db/creds/ro"]).await, "bao read db/creds/ro");
    let lease_id = issued["lease_id"].as_str().unwrap().to_string();
    assert!(lease_id.starts_with("db/creds/ro/"), "{issued}");
    assert_eq!(issued["lease_duration"], 3600);
    assert_eq!(issued["renewable"], true);
    let user = issued["data"]["username"].as_str().unwrap().to_string();
    let password = issued["data"]["password"].as_str().unwrap().to_string();
    assert_eq!(pg.psql_as(&user, &password, "SELECT id FROM app_data").unwrap(), "42");

    let renewed = json(
        &s.bao(&root, &["lease", "renew", "-increment=30m", &lease_id]).await,
        "bao lease renew",
    );
    assert_eq!(renewed["lease_id"], lease_id.as_str());
    let ttl = renewed["lease_duration"].as_u64().unwrap();
    assert!((1790..=1800).contains(&ttl), "{renewed}");

    let looked = json(&s.bao(&root, &["lease", "lookup", &lease_id]).await, "bao lease lookup");
    assert_eq!(looked["data"]["id"], lease_id.as_str());
    assert!(looked["data"]["ttl"].as_u64().unwrap() <= 1800);
    assert!(looked["data"]["last_renewal"].is_string(), "{looked}");

    let listed = json(
        &s.bao(&root, &["list", "sys/leases/lookup/db/creds/ro/"]).await,
        "bao list",
    );
    let suffix = lease_id.rsplit('/').next().unwrap();
    assert_eq!(listed, serde_json::json!([suffix]));

    // `bao lease revoke` sends `sync=false`: the revocation is queued for the sweeper.
    stdout_ok(&s.bao(&root, &["lease", "revoke", &lease_id]).await, "bao lease revoke");
    let gone = eventually(std::time::Duration::from_secs(5), || async {
        pg.roles("v-").is_empty()
    })
    .await;
    assert!(gone, "{:?}", pg.roles("v-"));
    assert!(pg.psql_as(&user, &password, "SELECT 1").is_err());

    // -prefix takes every lease of a role and leaves the others.
    for _ in 0..2 {
        json(&s.bao(&root, &["read", "db/creds/rw"]).await, "bao read db/creds/rw");
    }
    let ro = json(&s.bao(&root, &["read", "db/creds/ro"]).await, "bao read db/creds/ro");
    stdout_ok(
        &s.bao(&root, &["lease", "revoke", "-prefix", "db/creds/rw"]).await,
        "bao lease revoke -prefix",
    );
    assert_eq!(
        pg.roles("v-"),
        vec![ro["data"]["username"].as_str().unwrap().to_string()]
    );

    // A token limited to reading secrets gets 403 and creates nothing.
    let app = s.token("billing", &["apps"], 3600).await;
    let out = s.bao(&app, &["read", "db/creds/ro"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("403"), "{out:?}");
    assert_eq!(pg.roles("v-").len(), 1);
}

/// Issued passwords appear nowhere but in the answer: not in any log line
/// or span of the host (captured at TRACE), the audit log, or any file the
/// host wrote; a failing issue's error does not quote the password either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issued_passwords_are_in_no_log_line_span_audit_entry_or_file() {
    let logs = tresor_e2e::logs::capture();
    let pg = Postgres::start();
    let s = server(&pg).await;
    let root = s.root_token.clone();
    let mut passwords = Vec::new();
    for role in ["ro", "rw", "ro"] {
        let issued = json(&s.bao(&root, &["read", &format!("db/creds/{role}")]).await, "bao read");
        let lease_id = issued["lease_id"].as_str().unwrap().to_string();
        passwords.push(issued["data"]["password"].as_str().unwrap().to_string());
        stdout_ok(&s.bao(&root, &["lease", "renew", &lease_id]).await, "bao lease renew");
        stdout_ok(&s.bao(&root, &["lease", "lookup", &lease_id]).await, "bao lease lookup");
    }
    stdout_ok(
        &s.bao(&root, &["lease", "revoke", "-prefix", "db/creds/"]).await,
        "revoke -prefix",
    );
    let revoked = eventually(std::time::Duration::from_secs(5), || async {
        pg.roles("v-").is_empty()
    })
    .await;
    assert!(revoked, "{:?}", pg.roles("v-"));

    let captured = logs.text();
    assert!(captured.contains("tresor.access"), "the capture holds the access spans");
    assert!(captured.contains("db/creds/ro/"), "the capture names the leases");
    let mut files = Vec::new();
    collect_files(s.dir.path(), &mut files);
    assert!(files.iter().any(|f| f.ends_with("audit.log")), "{files:?}");
    for password in &passwords {
        assert_eq!(password.len(), 36);
        assert!(
            !captured.contains(password.as_str()),
            "a password reached the host's log or spans"
        );
        for file in &files {
            let bytes = std::fs::read(file).unwrap();
            assert!(
                !bytes.windows(password.len()).any(|w| w == password.as_bytes()),
                "a password reached {}",
                file.display()
            );
        }
    }
}

fn collect_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hvac_drives_leases_and_a_revoked_token_takes_its_leases_along() {
    let pg = Postgres::start();
    let s = server(&pg).await;
    let script = r#"
out = {}
creds = client.secrets.database.generate_credentials(name="ro", mount_point="db")
out["lease_id"] = creds["lease_id"]
out["request_id"] = creds["request_id"]
out["username"] = creds["data"]["username"]
out["password"] = creds["data"]["password"]
out["renew"] = client.sys.renew_lease(lease_id=creds["lease_id"])["lease_duration"]
out["lookup"] = client.sys.read_lease(lease_id=creds["lease_id"])["data"]["id"]
client.sys.revoke_lease(lease_id=creds["lease_id"])
for _ in range(2):
    client.secrets.database.generate_credentials(name="rw", mount_point="db")
client.sys.revoke_prefix(prefix="db/creds/rw")
try:
    client.sys.read_lease(lease_id=creds["lease_id"])
    out["after"] = "found"
except hvac.exceptions.InvalidRequest:
    out["after"] = "gone"
print(json.dumps(out))
"#;
    let out = json(&s.hvac(&s.root_token, script).await, "hvac leases");
    let lease_id = out["lease_id"].as_str().unwrap();
    assert!(lease_id.starts_with("db/creds/ro/"), "{out}");
    assert_eq!(out["lookup"], lease_id);
    assert_eq!(
        out["renew"], 3600,
        "a renewal without increment gets the role's default TTL"
    );
    assert_eq!(out["after"], "gone");
    // The request id the client saw finds the issue's audit entries.
    let rid = out["request_id"].as_str().unwrap();
    let audit = std::fs::read_to_string(s.audit_log()).unwrap();
    let entries: Vec<&str> = audit.lines().filter(|l| l.contains(rid)).collect();
    assert_eq!(entries.len(), 2, "request and response entries of {rid}: {entries:?}");
    assert!(
        entries
            .iter()
            .all(|l| l.contains(lease_id) || l.contains("\"phase\":\"request\"")),
        "{entries:?}"
    );
    assert!(pg.roles("v-").is_empty(), "{:?}", pg.roles("v-"));
    let user = out["username"].as_str().unwrap();
    assert!(pg.psql_as(user, out["password"].as_str().unwrap(), "SELECT 1").is_err());

    // Leases issued with a token are revoked when the token is.
    let ops = s.token("ops", &["admins"], 3600).await;
    let a = json(&s.bao(&ops, &["read", "db/creds/ro"]).await, "issue with the ops token");
    let b = json(&s.bao(&ops, &["read", "db/creds/rw"]).await, "issue with the ops token");
    assert_eq!(pg.roles("v-").len(), 2);
    let revoke = format!("client.auth.token.revoke(token={ops:?})\nprint(json.dumps({{}}))");
    json(&s.hvac(&s.root_token, &revoke).await, "revoke the ops token");
    assert!(
        pg.roles("v-").is_empty(),
        "leases of a revoked token live on: {:?}",
        pg.roles("v-")
    );
    for lease in [&a, &b] {
        let id = lease["lease_id"].as_str().unwrap();
        let r = s
            .http(
                "PUT",
                "/v1/sys/leases/lookup",
                Some(&s.root_token),
                Some(&format!(r#"{{"lease_id":"{id}"}}"#)),
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.text);
    }
}

async fn tresor(s: &TestServer, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(tresor_bin())
        .args(args)
        .env("TRESOR_ADDR", s.url())
        .env("TRESOR_TOKEN", &s.root_token)
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .output()
        .await
        .expect("run tresor")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tresor_cli_issues_lists_renews_and_revokes() {
    let pg = Postgres::start();
    let s = server(&pg).await;
    let issued = json(
        &tresor(&s, &["creds", "db/ro", "--ttl", "10m", "--json"]).await,
        "tresor creds",
    );
    let id = issued["lease_id"].as_str().unwrap().to_string();
    assert_eq!(issued["lease_duration"], 600);
    let user = issued["data"]["username"].as_str().unwrap().to_string();
    assert_eq!(pg.roles("v-"), vec![user]);
    let other = json(&tresor(&s, &["creds", "db/rw", "--json"]).await, "tresor creds db/rw");

    let listed = stdout_ok(&tresor(&s, &["lease", "list", "db/"]).await, "tresor lease list");
    let mut want = vec![id.clone(), other["lease_id"].as_str().unwrap().to_string()];
    want.sort();
    assert_eq!(listed.lines().collect::<Vec<_>>(), want);

    let renewed = stdout_ok(
        &tresor(&s, &["lease", "renew", "--increment", "20m", &id]).await,
        "tresor lease renew",
    );
    assert!(renewed.contains("1200s"), "{renewed}");
    let looked = json(&tresor(&s, &["lease", "lookup", &id]).await, "tresor lease lookup");
    assert_eq!(looked["id"], id.as_str());

    stdout_ok(&tresor(&s, &["lease", "revoke", &id]).await, "tresor lease revoke");
    stdout_ok(
        &tresor(&s, &["lease", "revoke", "--prefix", "db/creds/rw/"]).await,
        "tresor lease revoke --prefix",
    );
    assert!(pg.roles("v-").is_empty(), "{:?}", pg.roles("v-"));
    let out = tresor(&s, &["creds", "db/nope"]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no role `nope`"),
        "{out:?}"
    );
}

/// `tresor run` with `NAME=dynamic:<mount>/creds/<role>#field`: the child
/// gets a credential leased for it (and logs in with it), and the lease is
/// revoked when the child exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tresor_run_leases_a_credential_for_the_child_and_revokes_it_after() {
    let pg = Postgres::start();
    let s = server(&pg).await;
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("vars.map");
    std::fs::write(
        &map,
        "DB_USER=dynamic:db/creds/ro#username\nDB_PASS=dynamic:db/creds/ro#password\n",
    )
    .unwrap();
    let script = format!(
        "echo \"user=$DB_USER\"; PGPASSWORD=\"$DB_PASS\" psql -h 127.0.0.1 -p {} -U \"$DB_USER\" -d postgres -Atc 'SELECT id FROM app_data'",
        pg.port
    );
    let map_arg = map.display().to_string();
    let out = tresor(
        &s,
        &["run", "--map", &map_arg, "--no-masking", "--", "sh", "-c", &script],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let user = stdout
        .lines()
        .find_map(|l| l.strip_prefix("user="))
        .unwrap_or_default()
        .to_string();
    assert!(
        user.starts_with("v-"),
        "one lease for both fields, a real role: {stdout}"
    );
    assert!(
        stdout.lines().any(|l| l == "42"),
        "the child logged in with it: {stdout}"
    );
    // Gone once the child exited: the role, and the lease.
    assert!(
        pg.roles("v-").is_empty(),
        "{user} outlived the child: {:?}",
        pg.roles("v-")
    );
    let leases = tresor(&s, &["lease", "list", "db/creds/ro/"]).await;
    assert_eq!(
        String::from_utf8_lossy(&leases.stdout).trim(),
        "",
        "a lease outlived the child"
    );
}

/// The `tresor::client` library: `get_many` answers per path (one denied,
/// one missing, one read), and `get_dynamic` keeps its credential alive past
/// its first TTL by renewing it, and revokes it when dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_library_reads_many_and_holds_a_renewing_credential() {
    use tresor::client::{Client, ClientError};
    let pg = Postgres::start();
    let s = server(&pg).await;
    let root = Client::new(s.url(), &s.root_token).unwrap();
    let fields = |k: &str, v: &str| serde_json::json!({ k: v }).as_object().unwrap().clone();
    root.set("secret/apps/a", &fields("k", "va"), None).await.unwrap();
    root.set("secret/ops/b", &fields("k", "vb"), None).await.unwrap();
    assert_eq!(root.list("secret/apps").await.unwrap(), ["a"]);

    let app = Client::new(s.url(), &s.token("billing", &["apps"], 3600).await).unwrap();
    let got = app
        .get_many(&["secret/apps/a", "secret/ops/b", "secret/apps/missing"])
        .await;
    assert_eq!(got[0].0, "secret/apps/a");
    assert_eq!(got[0].1.as_ref().unwrap()["k"], "va");
    assert!(
        matches!(&got[1].1, Err(ClientError::Denied { messages }) if messages.join(" ").contains("permission denied")),
        "{:?}",
        got[1].1
    );
    assert!(
        matches!(&got[2].1, Err(ClientError::NotFound { path }) if path == "secret/apps/missing"),
        "{:?}",
        got[2].1
    );
    assert_eq!(got[1].1.as_ref().unwrap_err().status(), Some(403));

    // A 2 s lease, kept alive by its handle for twice that, then dropped.
    let creds = root.get_dynamic("db/ro", Some("2s")).await.unwrap();
    let (user, password) = (
        creds.field("username").unwrap().to_string(),
        creds.field("password").unwrap().to_string(),
    );
    assert_eq!(creds.lease_seconds(), 2);
    tokio::time::sleep(std::time::Duration::from_millis(4500)).await;
    assert_eq!(
        pg.psql_as(&user, &password, "SELECT id FROM app_data").unwrap(),
        "42",
        "the credential died at its first TTL"
    );
    let id = creds.lease_id().to_string();
    assert!(root
        .json(
            "PUT",
            "/v1/sys/leases/lookup",
            Some(&serde_json::json!({ "lease_id": id }))
        )
        .await
        .is_ok());
    drop(creds);
    assert!(
        eventually(std::time::Duration::from_secs(5), || async {
            pg.roles("v-").is_empty()
        })
        .await,
        "dropping the handle did not revoke {user}"
    );
    root.delete("secret/apps/a").await.unwrap();
    assert!(matches!(
        root.get("secret/apps/a").await,
        Err(ClientError::NotFound { .. })
    ));
}
