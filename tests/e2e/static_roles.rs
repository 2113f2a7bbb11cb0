//! Static roles against a real PostgreSQL: existing accounts whose password
//! Tresor rotates every 2 s. A client that logs in every 100 ms with a
//! credential it refreshes once a second sees no failed login through 20
//! rotations when two accounts take turns; the same client against one
//! account rotated in place (Vault's static roles) fails after each
//! rotation, which is why the alternating strategy exists.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tresor_e2e::postgres::Postgres;
use tresor_e2e::server::{start_server_with, stdout_ok};
use tresor_e2e::*;

const ROTATIONS: u64 = 20;

/// What one client loop saw.
#[derive(Debug, Default)]
struct Logins {
    ok: AtomicU64,
    failed: AtomicU64,
    first_failures: Mutex<Vec<String>>,
}

/// Log in every 100 ms with the credential of `role`, fetched again once a
/// second (as a connection pool does), until `stop`.
async fn client_loop(
    host: Arc<tresor::Host>,
    pg: Arc<Postgres>,
    role: &'static str,
    stop: Arc<AtomicBool>,
    logins: Arc<Logins>,
) {
    let me = caller("billing", &["apps"]);
    let mut held: Option<(String, String, Instant)> = None;
    while !stop.load(Ordering::SeqCst) {
        if held
            .as_ref()
            .is_none_or(|(_, _, at)| at.elapsed() >= Duration::from_secs(1))
        {
            let c = host
                .static_credential(&me, "db", role)
                .await
                .expect("the credential is served");
            let password = String::from_utf8(c.password.expose().to_vec()).unwrap();
            held = Some((c.username, password, Instant::now()));
        }
        let (user, password, _) = held.clone().unwrap();
        let pg = pg.clone();
        let login = tokio::task::spawn_blocking(move || pg.psql_as(&user, &password, "SELECT current_user"))
            .await
            .unwrap();
        match login {
            Ok(_) => logins.ok.fetch_add(1, Ordering::SeqCst),
            Err(e) => {
                let mut first = logins.first_failures.lock().unwrap();
                if first.len() < 3 {
                    first.push(e);
                }
                logins.failed.fetch_add(1, Ordering::SeqCst)
            }
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alternating_accounts_keep_every_login_working_through_twenty_rotations() {
    let pg = Arc::new(Postgres::start());
    for account in ["app_blue", "app_green", "app_single"] {
        pg.psql(&format!("CREATE ROLE {account} WITH LOGIN PASSWORD 'initial-password'"));
    }
    let mount = format!(
        r#"
[[mount]]
path = "db"
plugin = "postgres"
config = {{ connection_url = "postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{port}/postgres?sslmode=disable", username = "postgres", password = "{password}" }}
grants = {{ sockets = ["127.0.0.1:{port}"] }}
[mount.static_roles.alternating]
usernames = ["app_blue", "app_green"]
rotation_period = "2s"
[mount.static_roles.single]
usernames = ["app_single"]
rotation_period = "2s"
"#,
        port = pg.port,
        password = pg.password
    );
    let policies = format!(
        "{TEST_POLICIES}\n@id(\"apps-static\")\npermit (principal in Tresor::Group::\"apps\", action == Tresor::Action::\"read\", resource is Tresor::Secret in Tresor::Mount::\"db\") when {{ resource.path like \"static-creds/*\" }};\n"
    );
    let server = start_server_with(&policies, &mount, |_| String::new()).await;
    let host = server.host.clone();
    let admin = caller("ops", &["admins"]);
    let mut events = host.subscribe(&admin, "db/");
    host.start_schedules();

    // The first rotation happens at start: the initial password stops working.
    let deadline = Instant::now() + Duration::from_secs(20);
    while host.static_credential(&admin, "db", "alternating").await.is_err()
        || host.static_credential(&admin, "db", "single").await.is_err()
    {
        assert!(Instant::now() < deadline, "the static roles never got a first password");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(pg.psql_as("app_single", "initial-password", "SELECT 1").is_err());

    let stop = Arc::new(AtomicBool::new(false));
    let alternating = Arc::new(Logins::default());
    let single = Arc::new(Logins::default());
    let loops = [
        tokio::spawn(client_loop(
            host.clone(),
            pg.clone(),
            "alternating",
            stop.clone(),
            alternating.clone(),
        )),
        tokio::spawn(client_loop(
            host.clone(),
            pg.clone(),
            "single",
            stop.clone(),
            single.clone(),
        )),
    ];

    // 20 rotations of the alternating role, each 2 s (±1 s) after the last.
    let mut times = Vec::new();
    let mut accounts = Vec::new();
    while (times.len() as u64) < ROTATIONS {
        let e = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("a rotation within 10 s")
            .expect("the bus is open");
        if e.path == "static-creds/alternating" && e.event_type.as_str() == "rotation/succeeded" {
            times.push(Instant::now());
            accounts.push(e.versions[0].clone());
        }
    }
    stop.store(true, Ordering::SeqCst);
    for l in loops {
        l.await.unwrap();
    }
    let gaps: Vec<u128> = times.windows(2).map(|w| (w[1] - w[0]).as_millis()).collect();
    assert!(
        gaps.iter().all(|&g| (1000..=3000).contains(&g)),
        "rotations not every 2 s: {gaps:?} ms"
    );
    assert!(
        accounts.windows(2).all(|w| w[0] != w[1]),
        "the two accounts take turns: {accounts:?}"
    );

    let (ok, failed) = (
        alternating.ok.load(Ordering::SeqCst),
        alternating.failed.load(Ordering::SeqCst),
    );
    let (single_ok, single_failed) = (single.ok.load(Ordering::SeqCst), single.failed.load(Ordering::SeqCst));
    eprintln!(
        "through {ROTATIONS} rotations: alternating accounts {ok} logins, {failed} failed; \
         one account rotated in place {single_ok} logins, {single_failed} failed"
    );
    assert!(ok > 100, "the client logged in {ok} times");
    assert_eq!(
        failed,
        0,
        "failed logins with alternating accounts: {:?}",
        alternating.first_failures.lock().unwrap()
    );
    assert!(
        single_failed > 0,
        "a credential held across an in-place rotation should fail: {single_ok} ok"
    );

    // Over HTTP in Vault's shape, and with `bao`.
    let token = server.token("billing", &["apps"], 600).await;
    let r = server
        .http("GET", "/v1/db/static-creds/alternating", Some(&token), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let data = &r.json()["data"];
    assert!(
        ["app_blue", "app_green"].contains(&data["username"].as_str().unwrap()),
        "{data}"
    );
    assert_eq!(data["rotation_period"], 2);
    assert!(data["ttl"].as_u64().unwrap() <= 2, "{data}");
    let login = pg.psql_as(
        data["username"].as_str().unwrap(),
        data["password"].as_str().unwrap(),
        "SELECT current_user",
    );
    assert!(login.is_ok(), "{login:?}");
    let bao = stdout_ok(
        &server
            .bao(&token, &["read", "-format=json", "db/static-creds/single"])
            .await,
        "bao read",
    );
    let bao: serde_json::Value = serde_json::from_str(&bao).unwrap();
    assert_eq!(bao["data"]["username"], "app_single", "{bao}");

    // Who may not read it is refused; no password is in an event.
    let other = server.token("stranger", &[], 600).await;
    let r = server
        .http("GET", "/v1/db/static-creds/alternating", Some(&other), None)
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    let audit = std::fs::read_to_string(server.audit_log()).unwrap();
    let password = data["password"].as_str().unwrap();
    assert!(!audit.contains(password), "a password reached the audit log");
}
