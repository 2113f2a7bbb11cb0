//! Secrets that expire: near-expiry and expired events on time, expired
//! reads refused unless a permit says `@allow_expired`, the list of what is
//! about to expire, and rotation at expiry.

use std::time::{Duration, Instant};

use tresor::{Caller, WriteOptions};
use tresor_e2e::server::start_server_with;
use tresor_e2e::*;

const POLICIES: &str = r#"
@id("admins-all")
permit (principal in Tresor::Group::"admins", action, resource);

@id("apps-read")
permit (principal in Tresor::Group::"apps", action == Tresor::Action::"read", resource);

@id("break-glass")
@allow_expired("on-call may read expired secrets while they are replaced")
permit (principal in Tresor::Group::"oncall", action == Tresor::Action::"read", resource);
"#;

fn with_tags(tags: &[(&str, &str)]) -> WriteOptions {
    WriteOptions {
        metadata: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..WriteOptions::default()
    }
}

/// The next event of `sub` within `limit`, with when it came.
async fn next_event(sub: &mut tresor::events::Subscription, limit: Duration) -> (tresor::events::Event, Instant) {
    let e = tokio::time::timeout(limit, sub.next())
        .await
        .expect("an event within the limit")
        .expect("the bus is open");
    ((*e).clone(), Instant::now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiring_secrets_are_announced_on_time_and_refused_once_expired() {
    let extra = r#"
[expiry]
warn_before = "2s"

[[rotation]]
path = "secret/exp/rotated"
value = { kind = "hex", bytes = 16 }
"#;
    let server = start_server_with(POLICIES, extra, |_| String::new()).await;
    let host = server.host.clone();
    host.start_schedules();
    let admin = caller("ops", &["admins"]);
    let mut events = host.subscribe(&admin, "secret/exp/");

    let written_at = Instant::now();
    host.write(
        &admin,
        "secret/exp/soon",
        &"value-soon-0193".into(),
        &with_tags(&[("ttl", "4s")]),
    )
    .await
    .unwrap();
    let far = "2099-01-01T00:00:00Z";
    host.write(
        &admin,
        "secret/exp/later",
        &"v".into(),
        &with_tags(&[("expires_at", far)]),
    )
    .await
    .unwrap();
    host.write(&admin, "secret/exp/never", &"v".into(), &WriteOptions::default())
        .await
        .unwrap();
    // The ttl became an expiry four seconds out, on the version itself.
    let soon = host.read(&admin, "secret/exp/soon", None).await.unwrap();
    let expires_at = soon.metadata.get("expires_at").expect("the ttl made an expiry").clone();
    let expires = humantime::parse_rfc3339(&expires_at).unwrap();
    let lead = expires.duration_since(std::time::SystemTime::now()).unwrap();
    assert!(
        lead > Duration::from_secs(3) && lead <= Duration::from_secs(4),
        "{expires_at}"
    );
    let bad = host
        .write(
            &admin,
            "secret/exp/bad",
            &"v".into(),
            &with_tags(&[("expires_at", "next week")]),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(bad.contains("RFC 3339"), "{bad}");

    // Write events first, then near-expiry two seconds before, then expired.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let (e, at) = next_event(&mut events, Duration::from_secs(10)).await;
        if e.path == "exp/soon" && e.event_type != tresor::events::EventType::Write {
            seen.push((e, at.duration_since(written_at)));
        }
    }
    assert_eq!(seen[0].0.event_type.as_str(), "expiry/near", "{seen:?}");
    assert_eq!(seen[1].0.event_type.as_str(), "expiry/expired", "{seen:?}");
    let (near, expired) = (seen[0].1, seen[1].1);
    assert!(
        near >= Duration::from_millis(1500) && near <= Duration::from_millis(3000),
        "near-expiry at {near:?}"
    );
    assert!(
        expired >= Duration::from_millis(3500) && expired <= Duration::from_millis(5000),
        "expired at {expired:?}"
    );
    assert_eq!(seen[1].0.versions, ["1"]);

    // An expired read is refused, clearly and without the value; a permit
    // annotated @allow_expired still reads it.
    let app: Caller = caller("billing", &["apps"]);
    let refused = host.read(&app, "secret/exp/soon", None).await.unwrap_err();
    assert!(matches!(refused, tresor::Error::Expired { .. }), "{refused}");
    let message = refused.to_string();
    assert!(
        message.contains("expired at") && message.contains("@allow_expired"),
        "{message}"
    );
    assert!(!message.contains("value-soon"), "{message}");
    let oncall = caller("pager", &["oncall"]);
    let read = host.read(&oncall, "secret/exp/soon", None).await.unwrap();
    assert_eq!(read.value.expose(), b"value-soon-0193");
    let token = server.token("billing", &["apps"], 600).await;
    let http = server.http("GET", "/v1/secret/data/exp/soon", Some(&token), None).await;
    assert_eq!(http.status, 410, "{}", http.text);
    assert!(
        http.errors().contains("expired at") && !http.text.contains("value-soon"),
        "{}",
        http.text
    );

    // The list: within an hour, the expired one (not the far or the never).
    let r = server
        .http(
            "GET",
            "/v1/sys/expiring/secret/exp/?within=1h",
            Some(&server.root_token),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let listed: Vec<(String, bool)> = r.json()["data"]["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["path"].as_str().unwrap().to_string(), s["expired"] == true))
        .collect();
    assert_eq!(listed, [("secret/exp/soon".to_string(), true)]);
    let r = server
        .http(
            "GET",
            "/v1/sys/expiring/secret/exp/?within=36500d",
            Some(&server.root_token),
            None,
        )
        .await;
    assert_eq!(r.json()["data"]["secrets"].as_array().unwrap().len(), 2, "{}", r.text);
    let r = server
        .http("GET", "/v1/sys/expiring/?within=1h", Some(&token), None)
        .await;
    assert_eq!(r.status, 403, "listing expiries is an admin's: {}", r.text);

    // A new value clears the expiry; the list and the reads agree.
    host.write(
        &admin,
        "secret/exp/soon",
        &"value-soon-0194".into(),
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        host.read(&app, "secret/exp/soon", None).await.unwrap().value.expose(),
        b"value-soon-0194"
    );
    assert!(host
        .expiring(&admin, "secret/exp/soon", 3_600_000)
        .await
        .unwrap()
        .is_empty());

    // A secret a rotation rule covers is rotated when it expires: its ttl
    // carries over, so the new version expires in turn.
    host.write(
        &admin,
        "secret/exp/rotated",
        &"first".into(),
        &with_tags(&[("ttl", "2s")]),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let rotated = loop {
        let s = host.read(&oncall, "secret/exp/rotated", None).await.unwrap();
        if s.version != "1" {
            break s;
        }
        assert!(Instant::now() < deadline, "the expired secret was not rotated");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_ne!(rotated.value.expose(), b"first");
    assert_eq!(
        rotated.value.expose().len(),
        32,
        "the rule's maker made it (16 bytes, hex)"
    );
    let next = humantime::parse_rfc3339(rotated.metadata.get("expires_at").unwrap()).unwrap();
    assert!(
        next > std::time::SystemTime::now(),
        "the rotated version has a fresh expiry"
    );
    assert!(host.read(&app, "secret/exp/rotated", None).await.is_ok());
}
