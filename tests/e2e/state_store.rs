//! The host state store's contract, on both backends: the embedded SQLite
//! database and a real PostgreSQL (several hosts share one). The same checks
//! run on each; PostgreSQL also shows its schema migrating once when hosts
//! start together, a newer schema refused, and a bad password refused
//! without being echoed.

use tresor::keys::{GenerationRecord, KeyringRecord};
use tresor::state::{
    ExpiryRecord, LeaseRecord, LeaseState, OutboxRecord, ResealProgress, RotationRecord, RotationStage, StateStore,
};
use tresor_e2e::postgres::Postgres;

fn lease(id: &str, expires_ms: u64) -> LeaseRecord {
    LeaseRecord {
        id: id.into(),
        mount: "db".into(),
        role: "ro".into(),
        principal: "app".into(),
        token_accessor: Some("acc-1".into()),
        revoke_handle: "v-app-ro-x".into(),
        issued_ms: 1_000,
        renewed_ms: 0,
        expires_ms,
        max_expires_ms: expires_ms * 2,
        renewable: true,
        revocable: true,
        state: LeaseState::Active,
        attempts: 0,
        next_attempt_ms: 0,
        last_error: None,
    }
}

fn ids(v: Vec<LeaseRecord>) -> Vec<String> {
    v.into_iter().map(|l| l.id).collect()
}

/// What every backend must do.
async fn conformance(store: &StateStore) {
    let a = lease("db/creds/ro/a", 5_000);
    store.put_lease(a.clone()).await.unwrap();
    store.put_lease(lease("db/creds/rw/b", 9_000)).await.unwrap();
    store.put_lease(lease("dbx/creds/ro/c", 9_000)).await.unwrap();
    // Prefixes are literal, even with LIKE's and SQL's special characters.
    let mut odd = lease("d%_\\'/creds/ro/d", 9_000);
    odd.token_accessor = None;
    store.put_lease(odd.clone()).await.unwrap();

    assert_eq!(store.get_lease("db/creds/ro/a").await.unwrap(), Some(a.clone()));
    assert_eq!(store.get_lease("d%_\\'/creds/ro/d").await.unwrap(), Some(odd));
    assert_eq!(store.get_lease("nope").await.unwrap(), None);
    assert_eq!(
        ids(store.list_leases("db/").await.unwrap()),
        ["db/creds/ro/a", "db/creds/rw/b"]
    );
    assert_eq!(ids(store.list_leases("db/creds/ro").await.unwrap()), ["db/creds/ro/a"]);
    assert_eq!(ids(store.list_leases("d%").await.unwrap()), ["d%_\\'/creds/ro/d"]);
    assert!(store.list_leases("d_").await.unwrap().is_empty());
    assert_eq!(store.list_leases("").await.unwrap().len(), 4);
    assert_eq!(store.leases_of_token("acc-1").await.unwrap().len(), 3);

    // Replacing a lease keeps one record with the new fields.
    let mut renewed = a.clone();
    renewed.renewed_ms = 4_000;
    renewed.expires_ms = 8_000;
    renewed.last_error = Some("upstream said: no".into());
    store.put_lease(renewed.clone()).await.unwrap();
    assert_eq!(store.get_lease("db/creds/ro/a").await.unwrap(), Some(renewed));
    assert_eq!(store.list_leases("db/creds/ro/").await.unwrap().len(), 1);

    // The sweeper's view: ended active leases and due pending ones, soonest first.
    let mut pending = lease("db/creds/ro/pending", 1_000);
    pending.state = LeaseState::RevocationPending;
    pending.next_attempt_ms = 6_000;
    pending.attempts = 3;
    store.put_lease(pending.clone()).await.unwrap();
    let mut stuck = lease("db/creds/ro/stuck", 500);
    stuck.state = LeaseState::Irrevocable;
    store.put_lease(stuck).await.unwrap();
    assert_eq!(ids(store.due_leases(5_000, 10).await.unwrap()), Vec::<String>::new());
    assert_eq!(
        ids(store.due_leases(8_500, 10).await.unwrap()),
        ["db/creds/ro/pending", "db/creds/ro/a"]
    );
    assert_eq!(ids(store.due_leases(8_500, 1).await.unwrap()), ["db/creds/ro/pending"]);
    assert_eq!(store.next_due().await.unwrap(), Some(6_000));
    assert_eq!(store.get_lease("db/creds/ro/pending").await.unwrap(), Some(pending));

    // An issue under way is the sweeper's once its grace ran out.
    let mut issuing = lease("db/creds/ro/issuing", 99_000);
    issuing.state = LeaseState::Issuing;
    issuing.revoke_handle = String::new();
    issuing.next_attempt_ms = 7_000;
    store.put_lease(issuing.clone()).await.unwrap();
    assert_eq!(store.next_due().await.unwrap(), Some(6_000));
    assert_eq!(
        ids(store.due_leases(7_000, 10).await.unwrap()),
        ["db/creds/ro/pending", "db/creds/ro/issuing"]
    );
    assert_eq!(store.get_lease("db/creds/ro/issuing").await.unwrap(), Some(issuing));
    assert!(store.delete_lease("db/creds/ro/issuing").await.unwrap());

    assert!(store.delete_lease("db/creds/ro/a").await.unwrap());
    assert!(!store.delete_lease("db/creds/ro/a").await.unwrap());
    assert_eq!(store.get_lease("db/creds/ro/a").await.unwrap(), None);

    outbox_conformance(store).await;
    rotation_conformance(store).await;
    keyring_conformance(store).await;
    expiry_conformance(store).await;
}

fn expiry(path: &str, expires_ms: u64, next_check_ms: u64) -> ExpiryRecord {
    ExpiryRecord {
        path: path.into(),
        version: "1".into(),
        expires_ms,
        warned_ms: None,
        expired_ms: None,
        next_check_ms,
    }
}

/// Expiries: replaced per path, listed by prefix soonest first, due by
/// their next check.
async fn expiry_conformance(store: &StateStore) {
    store.put_expiry(&expiry("secret/a/x", 9_000, 5_000)).await.unwrap();
    store.put_expiry(&expiry("secret/a/y", 7_000, 6_000)).await.unwrap();
    store.put_expiry(&expiry("secret/b", 8_000, 1_000)).await.unwrap();
    let mut warned = expiry("secret/a/x", 9_000, 9_000);
    warned.warned_ms = Some(5_001);
    store.put_expiry(&warned).await.unwrap();
    let paths = |v: Vec<ExpiryRecord>| v.into_iter().map(|e| e.path).collect::<Vec<_>>();
    assert_eq!(
        paths(store.list_expiries("secret/a/").await.unwrap()),
        ["secret/a/y", "secret/a/x"]
    );
    assert_eq!(store.list_expiries("secret/a/x").await.unwrap(), vec![warned]);
    assert_eq!(
        paths(store.due_expiries(6_000, 10).await.unwrap()),
        ["secret/b", "secret/a/y"]
    );
    assert_eq!(paths(store.due_expiries(6_000, 1).await.unwrap()), ["secret/b"]);
    assert!(store.delete_expiry("secret/b").await.unwrap());
    assert!(!store.delete_expiry("secret/b").await.unwrap());
    assert_eq!(
        paths(store.list_expiries("").await.unwrap()),
        ["secret/a/y", "secret/a/x"]
    );
}

/// The keyring and the reseal progress: absent at first, then swapped only
/// by a writer that saw the current value.
async fn keyring_conformance(store: &StateStore) {
    assert_eq!(store.keyring().await.unwrap(), None);
    let first = KeyringRecord::initial();
    assert!(store.swap_keyring(None, &first).await.unwrap());
    assert!(
        !store.swap_keyring(None, &first).await.unwrap(),
        "a second first write loses"
    );
    let mut second = first.clone();
    second.generations.push(GenerationRecord {
        generation: 1,
        created_ms: 7,
        retired_ms: None,
        wrapped: Some("00ff".into()),
    });
    second.current = 1;
    let mut stale = first.clone();
    stale.current = 9;
    assert!(store.swap_keyring(Some(&first), &second).await.unwrap());
    assert!(
        !store.swap_keyring(Some(&first), &stale).await.unwrap(),
        "a stale writer loses"
    );
    assert_eq!(store.keyring().await.unwrap(), Some(second));

    let mut progress = ResealProgress {
        target: 1,
        started_ms: 5,
        ..Default::default()
    };
    assert!(store.swap_reseal_progress(None, &progress).await.unwrap());
    let before = progress.clone();
    let host = progress.hosts.entry("h1".into()).or_default();
    host.mounts.entry("secret".into()).or_default().after = Some("a/b".into());
    assert!(store.swap_reseal_progress(Some(&before), &progress).await.unwrap());
    assert!(!store.swap_reseal_progress(Some(&before), &before).await.unwrap());
    assert_eq!(store.reseal_progress().await.unwrap(), Some(progress));
}

fn rotation(path: &str, revision: u64, next_due_ms: u64) -> RotationRecord {
    RotationRecord {
        path: path.into(),
        revision,
        period_ms: 2_000,
        next_due_ms,
        maker: r#"{"kind":"hex","bytes":16}"#.into(),
        field: Some("password".into()),
        check_webhook: None,
        source: "config".into(),
        stage: None,
        previous_version: None,
        current_version: Some("1".into()),
        last_rotated_ms: None,
        last_error: None,
        failures: 0,
        sealed_credential: None,
    }
}

/// Rotation records: created once, changed only by compare-and-swap on
/// the revision (two hosts never both start one rotation), listed by
/// prefix (`_` and `%` are no wildcards), due ones soonest first.
async fn rotation_conformance(store: &StateStore) {
    let paths = |v: Vec<RotationRecord>| v.into_iter().map(|r| r.path).collect::<Vec<_>>();
    let first = rotation("secret/a/db", 0, 5_000);
    assert!(store.swap_rotation(&first, None).await.unwrap());
    assert!(
        !store.swap_rotation(&rotation("secret/a/db", 0, 1), None).await.unwrap(),
        "created twice"
    );
    assert_eq!(store.get_rotation("secret/a/db").await.unwrap(), Some(first.clone()));

    let mut staged = rotation("secret/a/db", 1, 15_000);
    staged.stage = Some(RotationStage {
        due_ms: 5_000,
        started_ms: 5_010,
        base_version: Some("1".into()),
        pending_sealed: "00ff".into(),
        request_id: "r-1".into(),
    });
    assert!(store.swap_rotation(&staged, Some(0)).await.unwrap());
    // A second host with the old revision loses.
    assert!(!store
        .swap_rotation(&rotation("secret/a/db", 1, 9), Some(0))
        .await
        .unwrap());
    assert_eq!(store.get_rotation("secret/a/db").await.unwrap(), Some(staged.clone()));

    assert!(store
        .swap_rotation(&rotation("secret/a_b/x", 0, 7_000), None)
        .await
        .unwrap());
    assert!(store
        .swap_rotation(&rotation("secret/ab/y", 0, u64::MAX), None)
        .await
        .unwrap());
    assert_eq!(
        paths(store.list_rotations("secret/a_").await.unwrap()),
        ["secret/a_b/x"]
    );
    assert_eq!(
        paths(store.list_rotations("secret/a").await.unwrap()),
        ["secret/a/db", "secret/a_b/x", "secret/ab/y"]
    );
    assert_eq!(paths(store.due_rotations(7_000, 10).await.unwrap()), ["secret/a_b/x"]);
    assert_eq!(
        paths(store.due_rotations(20_000, 10).await.unwrap()),
        ["secret/a_b/x", "secret/a/db"]
    );
    assert_eq!(paths(store.due_rotations(20_000, 1).await.unwrap()), ["secret/a_b/x"]);
    assert!(store.due_rotations(4_000, 10).await.unwrap().is_empty());
    assert!(store.delete_rotation("secret/ab/y").await.unwrap());
    assert!(!store.delete_rotation("secret/ab/y").await.unwrap());
}

fn row(webhook: &str, event: &str, next_attempt_ms: u64) -> OutboxRecord {
    OutboxRecord {
        id: format!("{webhook}/{event}"),
        webhook: webhook.into(),
        body: format!("{{\"id\":\"{event}\"}}"),
        created_ms: 1_000,
        attempts: 0,
        next_attempt_ms,
        last_error: None,
    }
}

/// The webhook outbox: rows come back in the order they were queued, a
/// row queued twice is kept once, a retry moves it, a delivery forgets it.
async fn outbox_conformance(store: &StateStore) {
    let oids = |v: Vec<OutboxRecord>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(store.outbox_len().await.unwrap(), 0);
    store
        .outbox_push(&[row("a", "h1-2", 100), row("b", "h1-2", 100)])
        .await
        .unwrap();
    store.outbox_push(&[row("a", "h1-10", 100)]).await.unwrap();
    // Queued again (a retried publish): still one row, unchanged.
    let mut again = row("a", "h1-2", 100);
    again.body = "other".into();
    store.outbox_push(&[again]).await.unwrap();
    assert_eq!(store.outbox_len().await.unwrap(), 3);
    let due = store.outbox_due(100, 10).await.unwrap();
    assert_eq!(oids(due.clone()), ["a/h1-2", "b/h1-2", "a/h1-10"]);
    assert_eq!(due[0], row("a", "h1-2", 100));
    assert!(store.outbox_due(99, 10).await.unwrap().is_empty());
    assert_eq!(oids(store.outbox_due(100, 2).await.unwrap()), ["a/h1-2", "b/h1-2"]);

    store.outbox_retry("a/h1-2", 1, 5_000, "HTTP 503").await.unwrap();
    assert_eq!(oids(store.outbox_due(100, 10).await.unwrap()), ["b/h1-2", "a/h1-10"]);
    let retried = store.outbox_due(5_000, 10).await.unwrap();
    assert_eq!(retried[0].attempts, 1);
    assert_eq!(retried[0].last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(retried[0].next_attempt_ms, 5_000);

    store.outbox_delete("b/h1-2").await.unwrap();
    store.outbox_delete("b/h1-2").await.unwrap();
    assert_eq!(
        oids(store.outbox_due(u64::MAX / 2, 10).await.unwrap()),
        ["a/h1-2", "a/h1-10"]
    );
    assert_eq!(store.outbox_len().await.unwrap(), 2);
}

#[tokio::test]
async fn the_embedded_store_keeps_its_contract_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = StateStore::open_embedded(&path).unwrap();
    conformance(&store).await;
    drop(store);
    let store = StateStore::open_embedded(&path).unwrap();
    assert_eq!(store.list_leases("").await.unwrap().len(), 5);
    assert_eq!(store.outbox_len().await.unwrap(), 2, "the outbox outlives the process");
    assert_eq!(
        store.list_rotations("").await.unwrap().len(),
        2,
        "rotations outlive the process"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_store_keeps_the_same_contract() {
    let pg = Postgres::start();
    let url = format!("postgresql://postgres@127.0.0.1:{}/postgres?sslmode=disable", pg.port);

    // Four hosts starting at once migrate the schema once.
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let (url, password) = (url.clone(), pg.password.clone());
            tokio::spawn(async move { StateStore::connect_postgres(&url, Some(&password), None).await })
        })
        .collect();
    let mut stores = Vec::new();
    for s in starts {
        stores.push(s.await.unwrap().expect("a host connects and migrates"));
    }
    assert_eq!(pg.psql("SELECT version FROM tresor_schema"), "6");
    conformance(&stores[0]).await;
    // What one host wrote, another reads.
    assert_eq!(stores[3].list_leases("").await.unwrap().len(), 5);
    drop(stores);
    let again = StateStore::connect_postgres(&url, Some(&pg.password), None)
        .await
        .unwrap();
    assert_eq!(again.list_leases("").await.unwrap().len(), 5);
    assert_eq!(
        again.outbox_len().await.unwrap(),
        2,
        "the outbox outlives the connection"
    );

    // A wrong password is refused, and not echoed.
    let wrong = "not-the-password-7f3a";
    let e = StateStore::connect_postgres(&url, Some(wrong), None)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("cannot connect"), "{e}");
    assert!(!e.contains(wrong) && !e.contains(&pg.password), "{e}");

    // A schema written by a newer Tresor is refused.
    pg.psql("UPDATE tresor_schema SET version = 99");
    let e = StateStore::connect_postgres(&url, Some(&pg.password), None)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("schema version 99, newer than this Tresor knows (6)"), "{e}");
}

/// Two hosts on one PostgreSQL share their tokens: made on one, a token
/// works on the other at once; revoked on one, it is refused by the other
/// within a second (tresor::auth::tokens::FRESH).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_on_one_postgresql_share_tokens() {
    use tresor_e2e::server::start_server_with;
    let pg = Postgres::start();
    let secrets = tempfile::tempdir().unwrap();
    let password_file = secrets.path().join("pw");
    std::fs::write(&password_file, &pg.password).unwrap();
    let state = format!(
        "\n[state]\npostgres = \"postgresql://postgres@127.0.0.1:{}/postgres?sslmode=disable\"\npassword_file = '{}'\n",
        pg.port,
        password_file.display()
    );
    // Hosts sharing a state store share the master key too.
    let same_key = |dir: &std::path::Path| {
        tresor_e2e::postgres::share_master_key(&dir.join("state"));
        String::new()
    };
    let one = start_server_with(tresor_e2e::TEST_POLICIES, &state, same_key).await;
    let two = start_server_with(tresor_e2e::TEST_POLICIES, &state, same_key).await;
    let body = r#"{"data":{"k":"v"}}"#;
    let r = two
        .http("PUT", "/v1/secret/data/apps/db", Some(&two.root_token), Some(body))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    let app = one.token("billing", &["apps"], 3600).await;
    let r = two.http("GET", "/v1/secret/data/apps/db", Some(&app), None).await;
    assert_eq!(r.status, 200, "a token made on one host works on the other: {}", r.text);

    let r = one
        .http("POST", "/v1/auth/token/revoke-self", Some(&app), Some("{}"))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = one.http("GET", "/v1/secret/data/apps/db", Some(&app), None).await;
    assert_eq!(r.status, 403, "refused at once where it was revoked: {}", r.text);
    let revoked = std::time::Instant::now();
    let refused = tresor_e2e::eventually(std::time::Duration::from_secs(3), || async {
        two.http("GET", "/v1/secret/data/apps/db", Some(&app), None)
            .await
            .status
            == 403
    })
    .await;
    let took = revoked.elapsed();
    assert!(refused, "the other host still honours a revoked token");
    assert!(
        took <= tresor::auth::FRESH + std::time::Duration::from_millis(500),
        "the other host refused it only after {took:?}"
    );

    // Both hosts are members; one of them leads the lease sweeper.
    let r = one.http("GET", "/v1/sys/members", Some(&one.root_token), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let members = r.json()["data"]["members"].as_array().cloned().unwrap_or_default();
    assert_eq!(members.len(), 2, "{}", r.text);
    let leading: Vec<_> = members
        .iter()
        .filter(|m| {
            m["jobs"]
                .as_array()
                .is_some_and(|j| j.iter().any(|x| x == "lease-sweeper"))
        })
        .collect();
    assert_eq!(leading.len(), 1, "exactly one host sweeps: {}", r.text);
    let r = one.http("GET", "/v1/sys/members", Some(&app), None).await;
    assert_eq!(r.status, 403, "members is an admin read: {}", r.text);
    let out = std::process::Command::new(tresor_e2e::server::tresor_bin())
        .args(["operator", "members"])
        .env("TRESOR_ADDR", two.url())
        .env("TRESOR_TOKEN", &two.root_token)
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{table}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(table.lines().count(), 3, "a header and two hosts:\n{table}");
    assert_eq!(table.matches('*').count(), 1, "the answering host is marked:\n{table}");
    assert_eq!(table.matches("lease-sweeper").count(), 1, "{table}");

    // PostgreSQL down: health says so within about a second, and comes back
    // with it, without a restart.
    pg.pause();
    let asked = std::time::Instant::now();
    let r = two.http("GET", "/v1/sys/health", None, None).await;
    let took = asked.elapsed();
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.json()["state_store"], "unavailable");
    assert!(took < std::time::Duration::from_secs(3), "health took {took:?}");
    pg.resume();
    let back = tresor_e2e::eventually(std::time::Duration::from_secs(15), || async {
        two.http("GET", "/v1/sys/health", None, None).await.status == 200
    })
    .await;
    assert!(back, "health did not recover after PostgreSQL came back");
    let r = two
        .http("GET", "/v1/secret/data/apps/db", Some(&two.root_token), None)
        .await;
    assert_eq!(r.status, 200, "requests work again: {}", r.text);
    one.stop().await;
    two.stop().await;
}

/// Hosts sharing a state store need the same master key: one with another
/// key is refused at start, before it writes anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_with_another_master_key_is_refused() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("pw");
    std::fs::write(&password_file, &pg.password).unwrap();
    let config = |name: &str, key: &str| {
        let host_dir = dir.path().join(name);
        std::fs::create_dir_all(host_dir.join("policies")).unwrap();
        tresor_e2e::write_atomically(&host_dir.join("policies/p.cedar"), tresor_e2e::TEST_POLICIES);
        let key_file = host_dir.join("master.key");
        tresor_e2e::write_atomically(&key_file, key);
        #[cfg(unix)]
        std::fs::set_permissions(&key_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let state = format!(
            "\n[state]\npostgres = \"postgresql://postgres@127.0.0.1:{}/postgres?sslmode=disable\"\npassword_file = '{}'\n",
            pg.port,
            password_file.display()
        );
        let text = format!(
            "master_key_file = '{}'\n{}",
            key_file.display(),
            tresor_e2e::config_text(&host_dir, &state)
        );
        tresor::Config::from_toml(&text).unwrap()
    };
    let first = tresor::Host::start(config("one", &"11".repeat(32)))
        .await
        .expect("first host");
    let same = tresor::Host::start(config("two", &"11".repeat(32)))
        .await
        .expect("same key");
    let err = match tresor::Host::start(config("three", &"22".repeat(32))).await {
        Ok(_) => panic!("a host with another master key joined the state store"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("another master key"), "{err}");
    assert!(!err.contains(&"22".repeat(32)), "{err}");
    drop((first, same));
}

/// `[state] ca_file`: the store speaks TLS to PostgreSQL, checking the
/// server's certificate against that CA; a server that requires TLS refuses
/// the plaintext store, and a certificate from another CA is refused.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_store_over_tls_checks_the_servers_certificate() {
    use tresor_e2e::server::TestPki;
    let pg = Postgres::start();
    let pki = TestPki::new("state-store-ca");
    pg.require_tls(&pki);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let url = |host: &str| format!("postgresql://postgres@{host}:{}/postgres", pg.port);

    let store = StateStore::connect_postgres(&url("127.0.0.1"), Some(&pg.password), Some(&ca))
        .await
        .expect("TLS with the right CA connects");
    conformance(&store).await;
    let tls_sessions: u32 = pg
        .psql(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'tresor' AND s.ssl",
        )
        .parse()
        .unwrap();
    let plain_sessions: u32 = pg
        .psql(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'tresor' AND NOT s.ssl",
        )
        .parse()
        .unwrap();
    assert!(
        tls_sessions >= 1 && plain_sessions == 0,
        "{tls_sessions} TLS, {plain_sessions} plaintext sessions"
    );

    // Plaintext is refused by the server.
    let e = StateStore::connect_postgres(
        &format!("{}?sslmode=disable", url("127.0.0.1")),
        Some(&pg.password),
        None,
    )
    .await
    .expect_err("plaintext must be refused")
    .to_string();
    assert!(e.contains("no encryption") || e.contains("pg_hba"), "{e}");
    // sslmode=require without a CA to check against is refused by Tresor.
    let e = StateStore::connect_postgres(
        &format!("{}?sslmode=require", url("127.0.0.1")),
        Some(&pg.password),
        None,
    )
    .await
    .expect_err("require without a CA")
    .to_string();
    assert!(e.contains("ca_file"), "{e}");
    // Another CA's trust: the certificate is refused.
    let other = dir.path().join("other.pem");
    std::fs::write(&other, TestPki::new("someone-else").ca_pem).unwrap();
    let e = StateStore::connect_postgres(&url("127.0.0.1"), Some(&pg.password), Some(&other))
        .await
        .expect_err("an unknown CA must be refused")
        .to_string();
    assert!(
        e.to_lowercase().contains("certificate") || e.contains("UnknownIssuer"),
        "{e}"
    );
    assert!(!e.contains(&pg.password), "{e}");
}
