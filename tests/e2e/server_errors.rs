//! Bad input to the HTTP API: clear 4xx answers in Vault's
//! `{"errors": [...]}` shape, no panic, nothing written, no value echoed.

use serde_json::json;
use tresor_e2e::server::*;
use tresor_e2e::*;

/// Assert a Vault-shaped error with `status` whose message contains `needle`.
fn assert_error(r: &Reply, status: u16, needle: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text);
    assert!(
        r.json()["errors"].is_array(),
        "{what}: not Vault's error shape: {}",
        r.text
    );
    assert!(
        r.errors().to_lowercase().contains(&needle.to_lowercase()),
        "{what}: expected `{needle}` in {}",
        r.text
    );
}

#[tokio::test]
async fn bad_input_gets_clear_errors_and_writes_nothing() {
    let s = start_server(TEST_POLICIES).await;
    let root = Some(s.root_token.as_str());
    let value = marker("bad-input-canary");

    // Too large (the limit is 1 MiB by default).
    let big = json!({ "data": { "k": "x".repeat(1 << 20) } }).to_string();
    let r = s.http("PUT", "/v1/secret/data/apps/big", root, Some(&big)).await;
    assert_error(&r, 413, "larger than", "oversized body");

    // Malformed or mistyped JSON; the value is never echoed back.
    let cases = [
        (
            format!(r#"{{"data": {{"k": "{value}"}}"#),
            "parse JSON",
            "truncated JSON",
        ),
        (
            format!(r#"{{"data": ["{value}"]}}"#),
            "JSON object",
            "data not an object",
        ),
        (format!(r#"{{"data": "{value}"}}"#), "JSON object", "data a string"),
        (format!(r#"{{"value": "{value}"}}"#), "no data", "no data"),
        (
            format!(r#"{{"data": {{"k": "v"}}, "options": "{value}"}}"#),
            "wrong type",
            "options a string",
        ),
        (
            format!(r#"{{"data": {{"k": "{value}"}}, "options": {{"cas": "x"}}}}"#),
            "cas",
            "cas not a number",
        ),
        ("not json at all".to_string(), "parse JSON", "garbage"),
        (String::new(), "parse JSON", "empty body"),
        // Vault's own clients cannot read back an object nested this deep.
        (
            format!(
                r#"{{"data": {{"k": "{value}", "deep": {}{}}}}}"#,
                "[".repeat(10_000),
                "]".repeat(10_000)
            ),
            "64 levels",
            "data nested 10,000 levels deep",
        ),
        // Parsers disagree on which of two values they keep.
        (
            format!(r#"{{"data": {{"password": "{value}", "password": "other"}}}}"#),
            "`password` appears twice",
            "a duplicate key",
        ),
    ];
    for (body, needle, what) in &cases {
        let r = s.http("PUT", "/v1/secret/data/apps/bad", root, Some(body)).await;
        assert_error(&r, 400, needle, what);
        assert!(!r.text.contains(&value), "{what}: the value was echoed: {}", r.text);
    }

    // Paths the host refuses: traversal, NUL, empty segments, empty path.
    for path in [
        "/v1/secret/data/apps/../ops",
        "/v1/secret/data/apps/%2e%2e/ops",
        "/v1/secret/data/a%00b",
        "/v1/secret/data/a//b",
        "/v1/secret/data/a/",
        "/v1/secret/data/",
        "/v1/secret/data/a/./b",
    ] {
        let r = s.http("PUT", path, root, Some(r#"{"data":{"k":"v"}}"#)).await;
        assert_error(&r, 400, "path", path);
    }
    let r = s.http("GET", "/v1/secret/data/a%zz", root, None).await;
    assert_error(&r, 400, "percent", "bad escape");

    // Unknown mounts and routes.
    let r = s.http("GET", "/v1/nope/data/x", root, None).await;
    assert_error(&r, 404, "no handler for route", "unknown mount");
    let r = s.http("GET", "/v1/secret/configs", root, None).await;
    assert_error(&r, 404, "no handler for route", "unknown KV endpoint");
    let r = s.http("GET", "/v2/secret/data/x", root, None).await;
    assert_error(&r, 404, "no handler for route", "not /v1");
    let r = s.http("GET", "/v1/sys/internal/ui/mounts/nope/x", root, None).await;
    assert_error(&r, 400, "no mount serves", "ui mount lookup of an unknown mount");

    // Wrong methods: 405 with Allow.
    for (method, path) in [
        ("DELETE", "/v1/secret/destroy/apps/x"),
        ("GET", "/v1/secret/undelete/apps/x"),
        ("POST", "/v1/sys/health"),
        ("PUT", "/v1/sys/mounts"),
        ("LIST", "/v1/secret/data/apps/"),
        ("GET", "/v1/auth/token/create"),
        ("BREW", "/v1/secret/data/apps/x"),
    ] {
        let r = s.http(method, path, root, Some("{}")).await;
        assert_error(&r, 405, "unsupported operation", &format!("{method} {path}"));
        assert!(r.headers.get("allow").is_some(), "{method} {path}: no Allow header");
    }

    // Bad query and version inputs.
    let r = s.http("GET", "/v1/secret/data/apps/x?version=abc", root, None).await;
    assert_error(&r, 400, "version", "version not a number");
    let r = s
        .http("POST", "/v1/secret/delete/apps/x", root, Some(r#"{"versions":[]}"#))
        .await;
    assert_error(&r, 400, "no versions", "no versions");
    let r = s
        .http(
            "POST",
            "/v1/secret/destroy/apps/x",
            root,
            Some(r#"{"versions":["one"]}"#),
        )
        .await;
    assert_error(&r, 400, "versions", "versions not numbers");
    let r = s
        .http(
            "POST",
            "/v1/secret/metadata/apps/x",
            root,
            Some(r#"{"max_versions":"lots"}"#),
        )
        .await;
    assert_error(&r, 400, "max_versions", "malformed max_versions");
    let r = s
        .http("PATCH", "/v1/secret/data/apps/x", root, Some(r#"{"data":{"k":"v"}}"#))
        .await;
    assert_eq!(r.status, 415, "PATCH without merge-patch content type: {}", r.text);

    // Nothing was written, nothing leaked, and the server still serves.
    let r = s.http("LIST", "/v1/secret/metadata/", root, None).await;
    assert_eq!(r.status, 404, "something was written: {}", r.text);
    let r = s.http("GET", "/v1/sys/health", None, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["sealed"], false);
    let audit = std::fs::read_to_string(s.audit_log()).unwrap_or_default();
    assert!(!audit.contains(&value));
    s.stop().await;
}

#[tokio::test]
async fn missing_things_are_404_and_mounts_are_described() {
    let s = start_server(TEST_POLICIES).await;
    let root = Some(s.root_token.as_str());
    let r = s.http("GET", "/v1/secret/data/apps/none", root, None).await;
    assert_eq!(r.status, 404, "{}", r.text);
    let r = s.http("GET", "/v1/secret/metadata/apps/none", root, None).await;
    assert_eq!(r.status, 404, "{}", r.text);
    let r = s
        .http("PUT", "/v1/secret/data/apps/x", root, Some(r#"{"data":{"k":"v"}}"#))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A lost check-and-set: 400 with Vault's exact words (clients match on them).
    let r = s
        .http(
            "PUT",
            "/v1/secret/data/apps/x",
            root,
            Some(r#"{"data":{"k":"w"},"options":{"cas":5}}"#),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        r.json()["errors"],
        json!(["check-and-set parameter did not match the current version"])
    );
    let r = s.http("GET", "/v1/secret/data/apps/x?version=9", root, None).await;
    assert_eq!(r.status, 404, "{}", r.text);
    // GET ?list=true is LIST.
    let r = s.http("GET", "/v1/secret/metadata/apps?list=true", root, None).await;
    assert_eq!(r.json()["data"]["keys"], json!(["x"]), "{}", r.text);

    // What the Vault CLI asks before any kv command.
    let r = s
        .http("GET", "/v1/sys/internal/ui/mounts/secret/apps/x", root, None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let data = &r.json()["data"];
    assert_eq!(
        (data["type"].as_str(), data["path"].as_str()),
        (Some("kv"), Some("secret/"))
    );
    assert_eq!(data["options"]["version"], "2");
    let r = s.http("GET", "/v1/sys/mounts", root, None).await;
    assert_eq!(r.json()["data"]["secret/"]["type"], "kv", "{}", r.text);
    let r = s.http("GET", "/v1/sys/mounts", None, None).await;
    assert_eq!(r.status, 403, "the mount table needs a token: {}", r.text);
    let r = s.http("HEAD", "/v1/sys/health", None, None).await;
    assert_eq!((r.status, r.text.as_str()), (200, ""));

    // A value written through the embedding API that is not a JSON object.
    let admin = caller("root", &["admins"]);
    s.host
        .write(
            &admin,
            "secret/apps/plain",
            &tresor::SecretBytes::from("plain text"),
            &Default::default(),
        )
        .await
        .unwrap();
    let r = s.http("GET", "/v1/secret/data/apps/plain", root, None).await;
    assert_eq!(r.json()["data"]["data"], json!({"value": "plain text"}), "{}", r.text);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_accepting_and_lets_in_flight_requests_finish() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let mut s = start_server(TEST_POLICIES).await;
    let addr = s.addr();
    // A request in flight: headers and half of the body sent.
    let body = br#"{"data":{"k":"sent in two halves"}}"#;
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT /v1/secret/data/apps/slow HTTP/1.1\r\nHost: {addr}\r\nX-Vault-Token: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        s.root_token,
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&body[..10]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let stopped = s.begin_stop();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "new connections are still accepted after shutdown began"
    );
    assert!(!stopped.is_finished(), "the server stopped with a request in flight");

    // The in-flight request completes, then the server is done.
    conn.write_all(&body[10..]).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), conn.read_to_string(&mut answer))
        .await
        .expect("an answer")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    tokio::time::timeout(std::time::Duration::from_secs(10), stopped)
        .await
        .expect("the server stopped")
        .unwrap();
    // It was written.
    let admin = caller("root", &["admins"]);
    let v = s.host.read(&admin, "secret/apps/slow", None).await.unwrap();
    assert_eq!(v.value.expose(), br#"{"k":"sent in two halves"}"#);
}
