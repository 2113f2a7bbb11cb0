//! Audit: every access produces a span that reaches a real OTLP receiver, and
//! an audit log that cannot be written refuses accesses.

use std::time::Duration;

use tracing_subscriber::layer::SubscriberExt;
use tresor::{Config, Error, Host, SecretBytes, WriteOptions};
use tresor_e2e::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_spans_reach_an_otlp_receiver() {
    let server = mock_collector::MockServer::builder()
        .protocol(mock_collector::Protocol::Grpc)
        .start()
        .await
        .unwrap();
    let provider = tresor::audit::otlp_tracer_provider(&format!("http://{}", server.addr())).unwrap();
    let subscriber = tracing_subscriber::registry().with(tresor::audit::otel_layer(&provider).unwrap());
    let _guard = tracing::subscriber::set_global_default(subscriber);

    let t = start(TEST_POLICIES, "").await;
    let value = marker("span-canary");
    let admin = caller("root", &["admins"]);
    t.host
        .write(
            &admin,
            "secret/apps/db",
            &SecretBytes::from(value.as_str()),
            &WriteOptions::default(),
        )
        .await
        .unwrap();
    t.host
        .read(&caller("billing", &["apps"]), "secret/apps/db", None)
        .await
        .unwrap();
    t.host
        .read(&caller("mallory", &[]), "secret/apps/db", None)
        .await
        .unwrap_err();

    // A request refused before it has a caller is a span too.
    let api = tresor_e2e::server::start_server(TEST_POLICIES).await;
    let r = api
        .http("GET", "/v1/secret/data/apps/db", Some("tvs.made-up"), None)
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    api.stop().await;

    let p = provider.clone();
    tokio::task::spawn_blocking(move || p.force_flush())
        .await
        .unwrap()
        .unwrap();
    server.wait_for_spans(4, Duration::from_secs(10)).await.unwrap();
    server
        .with_collector(|c| {
            c.expect_span_with_name("tresor.access")
                .with_attributes([
                    ("tresor.principal", "root"),
                    ("tresor.action", "write"),
                    ("tresor.mount", "secret"),
                    ("tresor.path", "apps/db"),
                    ("tresor.plugin", "file"),
                    ("tresor.decision", "allow"),
                    ("tresor.policies", "admins-all"),
                    ("tresor.outcome", "ok"),
                    ("tresor.front_door", "embed"),
                ])
                .assert_count(1);
            c.expect_span_with_name("tresor.access")
                .with_attributes([
                    ("tresor.principal", "billing"),
                    ("tresor.action", "read"),
                    ("tresor.decision", "allow"),
                    ("tresor.policies", "apps-read"),
                    ("tresor.outcome", "ok"),
                ])
                .assert_count(1);
            c.expect_span_with_name("tresor.access")
                .with_attributes([
                    ("tresor.principal", "mallory"),
                    ("tresor.decision", "deny"),
                    ("tresor.outcome", "denied"),
                ])
                .assert_count(1);
            c.expect_span_with_name("tresor.access")
                .with_attributes([
                    ("tresor.action", "authenticate"),
                    ("tresor.decision", "deny"),
                    ("tresor.policies", "builtin:invalid-token"),
                    ("tresor.outcome", "denied"),
                    ("tresor.front_door", "http"),
                ])
                .assert_count(1);
            assert!(
                !c.dump().contains("made-up"),
                "a presented token reached the OTLP receiver"
            );
            for s in c.spans() {
                let span = s.span();
                if span.name == "tresor.access" {
                    assert!(
                        span.attributes.iter().any(|a| a.key == "tresor.latency_us"),
                        "latency missing in {span:?}"
                    );
                }
            }
            assert!(!c.dump().contains(&value), "a secret value reached the OTLP receiver");
        })
        .await;
    tokio::task::spawn_blocking(move || provider.shutdown())
        .await
        .unwrap()
        .unwrap();
    server.shutdown().await.unwrap();
}

#[cfg(unix)]
#[tokio::test]
async fn accesses_are_refused_when_the_audit_log_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("policies/p.cedar"), TEST_POLICIES).unwrap();
    // Writes to /dev/full fail with ENOSPC, even for root.
    std::os::unix::fs::symlink("/dev/full", dir.path().join("audit.log")).unwrap();
    let host = Host::start(Config::from_toml(&config_text(dir.path(), "")).unwrap())
        .await
        .unwrap();
    let admin = caller("root", &["admins"]);

    let err = host
        .write(
            &admin,
            "secret/apps/db",
            &SecretBytes::from("v"),
            &WriteOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AuditUnavailable(_)), "{err:?}");
    let err = host.read(&admin, "secret/apps/db", None).await.unwrap_err();
    assert!(matches!(err, Error::AuditUnavailable(_)), "{err:?}");
    // Fail closed: the refused write never reached the plugin.
    let written: Vec<_> = files_under(&dir.path().join("state/data/secret"));
    assert!(
        written.is_empty(),
        "the write happened without an audit record: {written:?}"
    );
}
