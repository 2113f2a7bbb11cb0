//! Change events through the embedding API (`Host::subscribe`): every
//! successful change is one event, in order, with the request id the audit
//! log has, never a value; refused and failed changes and reads are none;
//! a subscriber sees only what Cedar lets it read, under its prefix.

use std::time::Duration;

use tresor::events::{Event, EventType, Subscription};
use tresor::{SecretBytes, SecretSettings, WriteOptions};
use tresor_e2e::*;

fn admin() -> tresor::Caller {
    caller("root", &["admins"])
}

/// The next event, or `None` when none comes within a moment.
async fn next(sub: &mut Subscription) -> Option<std::sync::Arc<Event>> {
    tokio::time::timeout(Duration::from_millis(300), sub.next())
        .await
        .ok()
        .map(|r| r.expect("subscription open"))
}

async fn write(
    t: &TestHost,
    who: &tresor::Caller,
    path: &str,
    value: &str,
    cas: Option<&str>,
) -> Result<String, tresor::Error> {
    let options = WriteOptions {
        expected_version: cas.map(str::to_string),
        ..WriteOptions::default()
    };
    t.host.write(who, path, &SecretBytes::from(value), &options).await
}

#[tokio::test]
async fn every_change_is_one_event_with_its_request_id_and_never_a_value() {
    let t = start(TEST_POLICIES, "").await;
    let mut sub = t.host.subscribe(&admin(), "secret/");
    let value = "event-secret-value-93f1";
    let p = "secret/apps/db";

    assert_eq!(write(&t, &admin(), p, value, None).await.unwrap(), "1");
    write(&t, &admin(), p, value, Some("1")).await.unwrap();
    // Neither a read, a refused write, nor a lost check-and-set is an event.
    t.host.read(&admin(), p, None).await.unwrap();
    assert!(write(&t, &caller("app", &["apps"]), p, value, None).await.is_err());
    assert!(write(&t, &admin(), p, value, Some("1")).await.is_err());
    t.host.delete_versions(&admin(), p, &["1".into()], false).await.unwrap();
    t.host.undelete_versions(&admin(), p, &["1".into()]).await.unwrap();
    t.host.delete_versions(&admin(), p, &["1".into()], true).await.unwrap();
    let settings = SecretSettings {
        max_versions: 3,
        ..SecretSettings::default()
    };
    t.host.set_secret_settings(&admin(), p, &settings).await.unwrap();
    t.host.delete(&admin(), p).await.unwrap();

    let mut events = Vec::new();
    while let Some(e) = next(&mut sub).await {
        events.push(e);
    }
    let seen: Vec<(EventType, Vec<String>)> = events.iter().map(|e| (e.event_type, e.versions.clone())).collect();
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        seen,
        [
            (EventType::Write, v(&["1"])),
            (EventType::Write, v(&["2"])),
            (EventType::DeleteVersions, v(&["1"])),
            (EventType::Undelete, v(&["1"])),
            (EventType::Destroy, v(&["1"])),
            (EventType::SettingsWrite, v(&[])),
            (EventType::Delete, v(&[])),
        ]
    );
    assert_eq!(events[1].version.as_deref(), Some("2"));
    let audit = std::fs::read_to_string(t.audit_log()).unwrap();
    let mut ids = std::collections::BTreeSet::new();
    for e in &events {
        assert_eq!(
            (e.mount.as_str(), e.path.as_str(), e.principal.as_str()),
            ("secret", "apps/db", "root")
        );
        assert!(ids.insert(e.id.clone()), "event ids are unique: {}", e.id);
        assert!(
            audit
                .lines()
                .any(|l| l.contains(&e.request_id) && l.contains("\"response\"") && l.contains("apps/db")),
            "the audit log has the response of request {}",
            e.request_id
        );
        let json = serde_json::to_string(e.as_ref()).unwrap();
        assert!(!json.contains(value), "an event must not hold the value: {json}");
        assert!(json.contains("\"kv-v2/"), "{json}");
    }
}

#[tokio::test]
async fn a_subscriber_sees_only_what_it_may_read_under_its_prefix() {
    let t = start(TEST_POLICIES, "").await;
    // `apps` may read secret/apps/* only (TEST_POLICIES).
    let mut app = t.host.subscribe(&caller("app", &["apps"]), "");
    let mut admin_apps = t.host.subscribe(&admin(), "secret/apps/");
    for path in [
        "secret/ops/root-key",
        "secret/apps/db",
        "secret/restricted/x",
        "secret/apps/api",
    ] {
        write(&t, &admin(), path, "v", None).await.unwrap();
    }
    let paths = |events: Vec<std::sync::Arc<Event>>| events.iter().map(|e| e.path.clone()).collect::<Vec<_>>();
    let mut got = Vec::new();
    while let Some(e) = next(&mut app).await {
        got.push(e);
    }
    assert_eq!(paths(got), ["apps/db", "apps/api"]);
    let mut got = Vec::new();
    while let Some(e) = next(&mut admin_apps).await {
        got.push(e);
    }
    assert_eq!(paths(got), ["apps/db", "apps/api"]);
}

mod websocket {
    use std::time::Duration;

    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    use tresor_e2e::server::start_server;
    use tresor_e2e::TEST_POLICIES;

    type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

    async fn connect(addr: std::net::SocketAddr, token: &str, pattern: &str) -> Ws {
        let url = format!("ws://{addr}/v1/sys/events/subscribe/{pattern}?json=true");
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert("X-Vault-Token", token.parse().unwrap());
        let (ws, response) = tokio_tungstenite::connect_async(request)
            .await
            .expect("the websocket opens");
        assert_eq!(response.status(), 101);
        ws
    }

    /// The events that arrive within a moment: (type, path).
    async fn drain(ws: &mut Ws) -> Vec<(String, String)> {
        let mut out = Vec::new();
        while let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout(Duration::from_millis(500), ws.next()).await
        {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            out.push((
                v["type"].as_str().unwrap().to_string(),
                v["data"]["event"]["metadata"]["path"].as_str().unwrap().to_string(),
            ));
        }
        out
    }

    #[tokio::test]
    async fn a_websocket_client_gets_the_events_its_token_may_read() {
        let s = start_server(TEST_POLICIES).await;
        let app_token = s.token("app", &["apps"], 3600).await;
        let mut app = connect(s.addr(), &app_token, "kv-v2/data-write").await;
        let mut all = connect(s.addr(), &s.root_token, "kv-v2/*").await;
        let root = Some(s.root_token.as_str());
        let body = Some(r#"{"data":{"password":"ws-secret-value-77"}}"#);
        for path in ["apps/db", "ops/root-key"] {
            let r = s.http("POST", &format!("/v1/secret/data/{path}"), root, body).await;
            assert_eq!(r.status, 200, "{}", r.text);
        }
        let r = s.http("DELETE", "/v1/secret/metadata/apps/db", root, None).await;
        assert_eq!(r.status, 204, "{}", r.text);

        let w = |t: &str, p: &str| (t.to_string(), p.to_string());
        assert_eq!(drain(&mut app).await, [w("kv-v2/data-write", "secret/apps/db")]);
        assert_eq!(
            drain(&mut all).await,
            [
                w("kv-v2/data-write", "secret/apps/db"),
                w("kv-v2/data-write", "secret/ops/root-key"),
                w("kv-v2/delete", "secret/apps/db"),
            ]
        );
        let audit = std::fs::read_to_string(s.audit_log()).unwrap();
        assert!(audit.contains("ops/root-key"));
        // A plain GET is told to use a websocket; no token, no subscription.
        let r = s
            .http("GET", "/v1/sys/events/subscribe/kv-v2/data-write", root, None)
            .await;
        assert_eq!(r.status, 400, "{}", r.text);
        assert!(r.text.contains("websocket"), "{}", r.text);
        let url = format!("ws://{}/v1/sys/events/subscribe/*", s.addr());
        assert!(
            tokio_tungstenite::connect_async(url).await.is_err(),
            "a subscription needs a token"
        );
    }
}

/// `tresor::client::Client::watch`: the library's stream of changes under a
/// prefix, only what its token may read; typed errors for a bad token and
/// for a server that is not there.
mod client_watch {
    use std::time::Duration;

    use tresor::client::{ChangeEvent, Client, ClientError, Watch};
    use tresor_e2e::server::start_server;
    use tresor_e2e::TEST_POLICIES;

    async fn drain(watch: &mut Watch) -> Vec<ChangeEvent> {
        let mut out = Vec::new();
        while let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(500), watch.next()).await {
            out.push(event.expect("a change event"));
        }
        out
    }

    #[tokio::test]
    async fn the_client_watches_changes_under_a_prefix_that_its_token_may_read() {
        let s = start_server(TEST_POLICIES).await;
        let root = Client::new(s.url(), &s.root_token).unwrap();
        let app = Client::new(s.url(), &s.token("app", &["apps"], 3600).await).unwrap();
        let mut app_watch = app.watch("secret/").await.expect("the app may watch");
        let mut apps_only = root.watch("secret/apps/").await.unwrap();
        let fields = |v: &str| serde_json::json!({ "password": v }).as_object().unwrap().clone();
        let value = "watched-secret-value-5d2c";
        assert_eq!(root.set("secret/apps/db", &fields(value), None).await.unwrap(), 1);
        root.set("secret/ops/root-key", &fields(value), None).await.unwrap();
        root.set("secret/apps/db", &fields(value), None).await.unwrap();
        root.delete("secret/apps/db").await.unwrap();

        let seen = |events: Vec<ChangeEvent>| -> Vec<(String, String, Option<u64>)> {
            events.into_iter().map(|e| (e.event_type, e.path, e.version)).collect()
        };
        let w = |t: &str, v: Option<u64>| (t.to_string(), "secret/apps/db".to_string(), v);
        let expected = [
            w("kv-v2/data-write", Some(1)),
            w("kv-v2/data-write", Some(2)),
            w("kv-v2/delete", None),
        ];
        let app_events = drain(&mut app_watch).await;
        assert!(app_events.iter().all(|e| !format!("{e:?}").contains(value)));
        assert!(app_events
            .iter()
            .all(|e| e.principal == "root" && !e.request_id.is_empty()));
        assert_eq!(seen(app_events), expected, "the app saw ops/ or missed a change");
        assert_eq!(seen(drain(&mut apps_only).await), expected);

        // A revoked (here: made-up) token is refused at the handshake, typed.
        let stranger = Client::new(s.url(), "not-a-token").unwrap();
        let refused = stranger.watch("secret/").await.unwrap_err();
        assert!(matches!(refused, ClientError::Denied { .. }), "{refused:?}");
        // Nothing listening: Unreachable, with what to do.
        let url = s.url().to_string();
        s.stop().await;
        let gone = Client::new(&url, "t").unwrap().watch("secret/").await.unwrap_err();
        assert!(matches!(gone, ClientError::Unreachable { .. }), "{gone:?}");
        assert!(
            gone.to_string().contains("TRESOR_ADDR") && gone.is_retryable(),
            "{gone}"
        );
    }
}
