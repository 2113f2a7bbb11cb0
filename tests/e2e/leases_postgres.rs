//! Dynamic PostgreSQL credentials against a real PostgreSQL: issue, log in,
//! renew, revoke, the sweeper, revoke-prefix, a denied principal, the
//! sockets grant, and revocation retried while PostgreSQL is down.

use std::time::{Duration, Instant};

use tresor::Error;
use tresor_e2e::postgres::Postgres;
use tresor_e2e::*;

/// Policies: admins do everything; `apps` may issue from `db/ro` only.
const POLICIES: &str = r#"
@id("admins-all")
permit (principal in Tresor::Group::"admins", action, resource);

@id("apps-issue-ro")
permit (
  principal in Tresor::Group::"apps",
  action in [Tresor::Action::"issue", Tresor::Action::"renew", Tresor::Action::"revoke", Tresor::Action::"read"],
  resource == Tresor::Role::"db/ro"
);
"#;

fn field(issued: &tresor::lease::IssuedLease, name: &str) -> String {
    let (_, v) = issued
        .data
        .iter()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("credential has no `{name}`: {issued:?}"));
    String::from_utf8(v.expose().to_vec()).unwrap()
}

fn prepared() -> Postgres {
    let pg = Postgres::start();
    pg.psql("CREATE TABLE app_data (id int); INSERT INTO app_data VALUES (42);");
    pg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issued_credentials_work_until_revoked_and_renew_up_to_the_maximum() {
    let pg = prepared();
    let t = start(POLICIES, &pg.db_mount(&pg.authority(), pg.port)).await;
    let app = caller("billing", &["apps"]);

    let issued = t.host.issue(&app, "db/ro", Some(600)).await.expect("issue");
    let user = field(&issued, "username");
    let password = field(&issued, "password");
    assert!(issued.lease.id.starts_with("db/creds/ro/"), "{}", issued.lease.id);
    assert!(user.starts_with("v-billing-ro-"), "{user}");
    assert!(user.len() <= 63, "{user}");
    assert!(password.len() >= 32, "password of {} characters", password.len());

    // The credential logs in and can do exactly what the statement grants.
    assert_eq!(pg.psql_as(&user, &password, "SELECT id FROM app_data").unwrap(), "42");
    let e = pg
        .psql_as(&user, &password, "INSERT INTO app_data VALUES (1)")
        .unwrap_err();
    assert!(e.contains("permission denied"), "{e}");
    assert_eq!(pg.roles("v-"), vec![user.clone()]);

    // VALID UNTIL follows the lease: ~600 s now, moved by renew, capped at max_ttl (2h).
    let now = (tresor::lease::now_ms() / 1000) as i64;
    let until = pg.valid_until(&user).unwrap();
    assert!(
        (until - (now + 600)).abs() <= 5,
        "valid until {until}, expected ~{}",
        now + 600
    );
    let (lease, warning) = t.host.renew(&app, &issued.lease.id, Some(1800)).await.expect("renew");
    assert!(warning.is_none());
    let until = pg.valid_until(&user).unwrap();
    assert!((until - (now + 1800)).abs() <= 5, "after renew: {until}");
    assert!(lease.expires_ms > issued.lease.expires_ms);
    let (capped, warning) = t
        .host
        .renew(&app, &issued.lease.id, Some(100 * 3600))
        .await
        .expect("renew");
    assert!(warning.unwrap().contains("max"), "capped renewal warns");
    assert_eq!(capped.expires_ms, capped.max_expires_ms);
    assert!(capped.max_expires_ms - issued.lease.issued_ms <= 2 * 3600 * 1000);

    // Revoke: the login fails and the role is gone from pg_roles.
    t.host.revoke(&app, &issued.lease.id, true).await.expect("revoke");
    assert!(pg.psql_as(&user, &password, "SELECT 1").is_err(), "login after revoke");
    assert!(pg.roles("v-").is_empty(), "{:?}", pg.roles("v-"));
    assert!(matches!(
        t.host.lookup_lease(&app, &issued.lease.id).await,
        Err(Error::InvalidInput(_))
    ));
    // Revoking again is fine (idempotent).
    t.host
        .revoke(&app, &issued.lease.id, true)
        .await
        .expect("second revoke");

    // Nothing secret reached the audit log or the state store.
    for file in files_under(t.dir.path()) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !bytes.windows(password.len()).any(|w| w == password.as_bytes()),
            "the password is in {}",
            file.display()
        );
    }
    let audit = std::fs::read_to_string(t.audit_log()).unwrap();
    assert!(audit.contains(&issued.lease.id), "the audit log names the lease");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_revokes_on_time_and_revoke_prefix_takes_a_whole_role() {
    let pg = prepared();
    let t = start(POLICIES, &pg.db_mount(&pg.authority(), pg.port)).await;
    let admin = caller("ops", &["admins"]);
    let mut events = t.host.subscribe(&admin, "db/");

    let short = t.host.issue(&admin, "db/ro", Some(3)).await.unwrap();
    let user = field(&short, "username");
    let password = field(&short, "password");
    let ends = short.lease.expires_ms;
    let gone = eventually(Duration::from_secs(8), || async { pg.roles(&user).is_empty() }).await;
    assert!(gone, "the 3 s lease was not revoked");
    let late_ms = tresor::lease::now_ms().saturating_sub(ends);
    assert!(late_ms <= 2_000, "revoked {late_ms} ms after its end");
    // The revocation is a `lease/expired` event naming the lease, without the credential.
    let expired = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("a lease event")
        .unwrap();
    assert_eq!(expired.event_type.as_str(), "lease/expired");
    assert_eq!(expired.path, "creds/ro");
    assert_eq!(expired.versions, std::slice::from_ref(&short.lease.id));
    let envelope = expired.envelope().to_string();
    assert!(!envelope.contains(&password), "{envelope}");
    assert!(t.host.list_leases(&admin, "db/").await.unwrap().is_empty());

    // Three leases of `rw`, one of `ro`: revoke-prefix takes exactly the rw ones.
    let mut rw_users = Vec::new();
    for _ in 0..3 {
        rw_users.push(field(&t.host.issue(&admin, "db/rw", None).await.unwrap(), "username"));
    }
    let ro = t.host.issue(&admin, "db/ro", None).await.unwrap();
    let forgotten = t.host.revoke_prefix(&admin, "db/creds/rw/", false).await.unwrap();
    assert!(forgotten.is_empty());
    assert_eq!(pg.roles("v-"), vec![field(&ro, "username")]);
    let left: Vec<String> = t
        .host
        .list_leases(&admin, "db/")
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(left, vec![ro.lease.id.clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_principal_creates_nothing_and_the_socket_grant_holds() {
    let pg = prepared();
    let t = start(POLICIES, &pg.db_mount(&pg.authority(), pg.port)).await;
    let app = caller("billing", &["apps"]);
    match t.host.issue(&app, "db/rw", None).await {
        Err(Error::Denied { .. }) => {}
        other => panic!("apps may not issue from db/rw: {other:?}"),
    }
    let outsider = caller("mallory", &[]);
    assert!(matches!(
        t.host.issue(&outsider, "db/ro", None).await,
        Err(Error::Denied { .. })
    ));
    assert!(pg.roles("v-").is_empty(), "a denied issue created {:?}", pg.roles("v-"));
    drop(t);

    // Granted the real server's port, configured to connect to another
    // listener: the connection is refused inside the sandbox, and the other
    // listener never sees it.
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    other.set_nonblocking(true).unwrap();
    let other_port = other.local_addr().unwrap().port();
    let t = start(POLICIES, &pg.db_mount(&pg.authority(), other_port)).await;
    let admin = caller("ops", &["admins"]);
    let e = t.host.issue(&admin, "db/ro", None).await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::Unavailable(_) | Error::UpstreamDenied(_)), "{e:?}");
    assert!(
        text.contains(&other_port.to_string()),
        "the error names the address: {text}"
    );
    assert!(other.accept().is_err(), "the ungranted listener got a connection");
    assert!(pg.roles("v-").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_is_retried_while_postgres_is_down() {
    let pg = prepared();
    let t = start(POLICIES, &pg.db_mount(&pg.authority(), pg.port)).await;
    let admin = caller("ops", &["admins"]);
    let issued = t.host.issue(&admin, "db/ro", Some(2)).await.unwrap();
    let user = field(&issued, "username");
    pg.pause();
    // The lease ends while PostgreSQL is down: it stays listed as pending.
    let pending = eventually(Duration::from_secs(10), || async {
        t.host.list_leases(&admin, "db/").await.unwrap().iter().any(|l| {
            l.id == issued.lease.id && l.state == tresor::state::LeaseState::RevocationPending && l.attempts >= 2
        })
    })
    .await;
    assert!(pending, "the lease was not kept as revocation-pending");
    pg.resume();
    let started = Instant::now();
    let revoked = eventually(Duration::from_secs(10), || async {
        t.host.list_leases(&admin, "db/").await.unwrap().is_empty()
    })
    .await;
    assert!(revoked, "the lease was not revoked once PostgreSQL was back");
    assert!(pg.roles(&user).is_empty(), "role {user} still exists");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_survive_sigkill_and_those_that_ended_meanwhile_are_revoked_at_start() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let pg = prepared();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("policies/p.cedar"), POLICIES).unwrap();
    let config_path = dir.path().join("tresor.toml");
    std::fs::write(
        &config_path,
        config_text(dir.path(), &pg.db_mount(&pg.authority(), pg.port)),
    )
    .unwrap();

    // Six leases: three end in 2-3 s, three in 10 minutes. Then SIGKILL.
    let ttls = ["2", "3", "2", "600", "600", "600"];
    let mut child = Command::new(env!("CARGO_BIN_EXE_tresor-test-leaser"))
        .arg(&config_path)
        .args(ttls)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the leaser");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut leases = Vec::new();
    for _ in ttls {
        let line = lines.next().expect("the leaser printed a lease").unwrap();
        let parts: Vec<String> = line.split_whitespace().skip(1).map(str::to_string).collect();
        leases.push((parts[0].clone(), parts[1].clone(), parts[2].clone()));
    }
    child.kill().expect("SIGKILL the host");
    child.wait().unwrap();
    let (short, long) = leases.split_at(3);
    let mut all_users: Vec<String> = leases.iter().map(|(_, u, _)| u.clone()).collect();
    all_users.sort();
    assert_eq!(pg.roles("v-"), all_users, "every issued credential exists upstream");

    // The short ones end while no host runs.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(pg.roles("v-").len(), 6, "nothing revokes while the host is down");

    let started = Instant::now();
    let host = tresor::Host::start(tresor::Config::from_file(&config_path).unwrap())
        .await
        .expect("the host restarts on its state");
    let admin = caller("ops", &["admins"]);
    let revoked = eventually(Duration::from_secs(5), || async {
        short.iter().all(|(_, user, _)| pg.roles(user).is_empty())
    })
    .await;
    assert!(
        revoked,
        "leases that ended while the host was down were not revoked within 5 s of start"
    );
    assert!(started.elapsed() < Duration::from_secs(6));

    // Every unexpired lease is still listed and its credential works; the
    // roles upstream are exactly the live leases.
    let listed: Vec<String> = host
        .list_leases(&admin, "db/")
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    let mut want: Vec<String> = long.iter().map(|(id, _, _)| id.clone()).collect();
    want.sort();
    assert_eq!(listed, want);
    for (_, user, password) in long {
        assert_eq!(pg.psql_as(user, password, "SELECT id FROM app_data").unwrap(), "42");
    }
    let mut live_users: Vec<String> = long.iter().map(|(_, u, _)| u.clone()).collect();
    live_users.sort();
    assert_eq!(pg.roles("v-"), live_users, "nothing leaked, nothing lost");
}

/// An issue that fails after it created its role upstream (a statement
/// after an explicit `COMMIT` fails) leaves nothing behind: the host
/// abandons it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issue_that_fails_part_way_is_abandoned_at_once() {
    let pg = prepared();
    let broken = r#"
[mount.roles.broken]
creation_statements = """CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; COMMIT; SELECT 1/0;"""
"#;
    let t = start(POLICIES, &format!("{}{broken}", pg.db_mount(&pg.authority(), pg.port))).await;
    let admin = caller("ops", &["admins"]);
    let e = t.host.issue(&admin, "db/broken", None).await.unwrap_err();
    assert!(e.to_string().contains("division by zero"), "{e}");
    assert!(pg.roles("v-").is_empty(), "the failed issue left {:?}", pg.roles("v-"));
    assert!(t.host.list_leases(&admin, "db/").await.unwrap().is_empty());
}

/// A host SIGKILLed in the middle of an issue, after the role was created
/// upstream and before its lease was recorded: nobody ever got the
/// credential, and the restarted host drops the role (the plugin's
/// `abandon`), so `pg_roles` ends with nothing the host does not know of.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_killed_mid_issue_leaks_no_role() {
    use std::process::{Command, Stdio};

    let pg = prepared();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("policies/p.cedar"), POLICIES).unwrap();
    let config_path = dir.path().join("tresor.toml");
    // `COMMIT` ends the statement's implicit transaction: the role exists
    // upstream while the issue still sleeps, so the kill lands in the window.
    let slow = r#"
[mount.roles.slow]
default_ttl = "1h"
max_ttl = "2h"
creation_statements = """CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; COMMIT; SELECT pg_sleep(3);"""
[mount.limits]
call_timeout_ms = 4000
"#;
    let mounts = format!("{}{slow}", pg.db_mount(&pg.authority(), pg.port));
    std::fs::write(&config_path, config_text(dir.path(), &mounts)).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_tresor-test-leaser"))
        .arg(&config_path)
        .arg("600")
        .env("TRESOR_LEASER_ROLE", "db/slow")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the leaser");
    let created = eventually(Duration::from_secs(30), || async { !pg.roles("v-").is_empty() }).await;
    assert!(created, "the slow issue never created its role");
    child.kill().expect("SIGKILL the host mid-issue");
    child.wait().unwrap();
    let orphans = pg.roles("v-");
    assert_eq!(orphans.len(), 1, "{orphans:?}");

    // The restarted host knows of the issue it never finished...
    let started = Instant::now();
    let host = tresor::Host::start(tresor::Config::from_file(&config_path).unwrap())
        .await
        .expect("the host restarts on its state");
    let admin = caller("ops", &["admins"]);
    let listed = host.list_leases(&admin, "db/").await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].state, tresor::state::LeaseState::Issuing);
    let issue_id = listed[0].id.rsplit('/').next().unwrap().to_string();
    assert!(
        orphans[0].contains(&issue_id),
        "{} is named after {issue_id}",
        orphans[0]
    );

    // ...and, once the call's deadline is long past (4 s + 30 s), abandons
    // it: the role is dropped and the intent forgotten.
    let cleaned = eventually(Duration::from_secs(60), || async {
        pg.roles("v-").is_empty() && host.list_leases(&admin, "db/").await.unwrap().is_empty()
    })
    .await;
    assert!(
        cleaned,
        "the abandoned issue's role is still in pg_roles: {:?}",
        pg.roles("v-")
    );
    assert!(
        started.elapsed() >= Duration::from_secs(20),
        "abandoned before the grace ran out"
    );
    let audit = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
    assert!(audit.contains("builtin:abandoned-issue"), "the abandon is audited");
}

/// `[state] postgres`: the host keeps its leases in PostgreSQL, not in the
/// embedded database, and a restarted host finds them there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_live_in_a_postgresql_state_store_across_restarts() {
    let pg = prepared();
    let secrets = tempfile::tempdir().unwrap();
    let password_file = secrets.path().join("state-password");
    std::fs::write(&password_file, format!("{}\n", pg.password)).unwrap();
    let extra = format!(
        "{}\n[state]\npostgres = \"postgresql://postgres@127.0.0.1:{}/postgres?sslmode=disable\"\npassword_file = '{}'\n",
        pg.db_mount(&pg.authority(), pg.port),
        pg.port,
        password_file.display()
    );
    let t = start(POLICIES, &extra).await;
    let app = caller("billing", &["apps"]);
    let issued = t.host.issue(&app, "db/ro", Some(600)).await.expect("issue");
    let id = issued.lease.id.clone();
    let user = field(&issued, "username");
    assert_eq!(
        pg.psql(&format!(
            "SELECT principal || ' ' || role FROM tresor_leases WHERE id = '{id}'"
        )),
        "billing ro"
    );
    assert_eq!(pg.psql("SELECT version FROM tresor_schema"), "6");
    assert!(
        !t.state_dir().join("state.db").exists(),
        "the embedded store was used as well"
    );

    // Restarted, the host finds the lease in PostgreSQL and revokes it.
    let TestHost { host, dir } = t;
    drop(host);
    let config = tresor::Config::from_toml(&config_text(dir.path(), &extra)).unwrap();
    let host = tresor::Host::start(config).await.expect("restart");
    let lease = host
        .lookup_lease(&app, &id)
        .await
        .expect("the lease survived the restart");
    assert_eq!(lease.expires_ms, issued.lease.expires_ms);
    host.revoke(&app, &id, true).await.expect("revoke");
    assert!(pg.roles("v-").is_empty(), "{user} still exists: {:?}", pg.roles("v-"));
    assert_eq!(
        pg.psql(&format!("SELECT count(*) FROM tresor_leases WHERE id = '{id}'")),
        "0"
    );
}

/// A host on the shared state store, with the master key the others have.
async fn start_sharing_key(extra: &str) -> TestHost {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    write_atomically(&dir.path().join("policies/test.cedar"), POLICIES);
    tresor_e2e::postgres::share_master_key(&dir.path().join("state"));
    let config = tresor::Config::from_toml(&config_text(dir.path(), extra)).unwrap();
    let host = tresor::Host::start(config).await.expect("host starts");
    TestHost { host, dir }
}

/// Two hosts on one PostgreSQL state store: one sweeps (it holds the
/// sweeper's advisory lock); when it stops, the other takes over and
/// revokes a lease that ends afterwards, on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_hosts_sweeps_and_the_other_takes_over() {
    let pg = prepared();
    let secrets = tempfile::tempdir().unwrap();
    let password_file = secrets.path().join("state-password");
    std::fs::write(&password_file, &pg.password).unwrap();
    let extra = format!(
        "{}\n[state]\npostgres = \"postgresql://postgres@127.0.0.1:{}/postgres?sslmode=disable\"\npassword_file = '{}'\n",
        pg.db_mount(&pg.authority(), pg.port),
        pg.port,
        password_file.display()
    );
    let one = start_sharing_key(&extra).await;
    let two = start_sharing_key(&extra).await;
    let sweepers = || pg.psql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted");
    assert!(
        eventually(Duration::from_secs(5), || async { sweepers() == "1" }).await,
        "exactly one host leads the sweeper: {} advisory locks held",
        sweepers()
    );

    let job = tresor::lease::sweeper::SWEEPER_JOB;
    let one_leads = one.host.state().lead(job).await.unwrap();
    let two_leads = two.host.state().lead(job).await.unwrap();
    assert_ne!(one_leads, two_leads, "one host leads, the other does not");
    let (leader, follower) = if one_leads { (one, two) } else { (two, one) };

    // A lease issued through the follower, ending in 3 s.
    let app = caller("billing", &["apps"]);
    let issued = follower.host.issue(&app, "db/ro", Some(3)).await.expect("issue");
    let user = field(&issued, "username");
    assert_eq!(pg.roles("v-"), vec![user.clone()]);

    // The leader stops.
    drop(leader);
    let ended = Instant::now() + Duration::from_secs(3);
    assert!(
        eventually(Duration::from_secs(15), || async { pg.roles("v-").is_empty() }).await,
        "no host revoked {user} after the leader stopped"
    );
    let late = Instant::now().saturating_duration_since(ended);
    assert!(late <= Duration::from_secs(5), "revoked {late:?} after the lease ended");
    assert!(
        follower.host.state().lead(job).await.unwrap(),
        "the other host leads now"
    );
    assert_eq!(sweepers(), "1");
    drop(follower);
}
