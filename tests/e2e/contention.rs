//! Many writers of one secret at once: every write is acknowledged with its
//! own version and none is lost, through the embedding API and over HTTP.

use std::collections::BTreeSet;
use std::sync::Arc;

use tresor::{SecretBytes, SecretSettings, WriteOptions};
use tresor_e2e::server::{request, start_server};
use tresor_e2e::*;

const WRITERS: usize = 16;
const WRITES_EACH: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_of_one_secret_through_the_embedding_api() {
    let t = Arc::new(start(TEST_POLICIES, "").await);
    // Keep every version (more than Vault's default of 10), to read each back.
    let keep_all = SecretSettings {
        max_versions: 1000,
        ..SecretSettings::default()
    };
    t.host
        .set_secret_settings(&caller("root", &["admins"]), "secret/hot", &keep_all)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let me = caller("root", &["admins"]);
            let mut versions = Vec::new();
            for i in 0..WRITES_EACH {
                let value = SecretBytes::from(format!("w{w}-{i}").as_str());
                let v = t
                    .host
                    .write(&me, "secret/hot", &value, &WriteOptions::default())
                    .await
                    .expect("write acknowledged");
                versions.push((v, format!("w{w}-{i}")));
            }
            versions
        }));
    }
    let mut acked = Vec::new();
    for task in tasks {
        acked.extend(task.await.unwrap());
    }
    let distinct: BTreeSet<_> = acked.iter().map(|(v, _)| v.clone()).collect();
    assert_eq!(distinct.len(), WRITERS * WRITES_EACH, "two writes got the same version");
    let me = caller("root", &["admins"]);
    for (version, value) in &acked {
        let s = t.host.read(&me, "secret/hot", Some(version)).await.unwrap();
        assert_eq!(s.value.expose(), value.as_bytes(), "version {version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_of_one_secret_over_http() {
    let server = Arc::new(start_server(TEST_POLICIES).await);
    let kept = server
        .http(
            "POST",
            "/v1/secret/metadata/hot",
            Some(&server.root_token),
            Some(r#"{"max_versions": 1000}"#),
        )
        .await;
    assert_eq!(kept.status, 204, "{}", kept.text);
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let mut versions = Vec::new();
            for i in 0..WRITES_EACH {
                let body = format!(r#"{{"data":{{"n":"w{w}-{i}"}}}}"#);
                let reply = server
                    .http("POST", "/v1/secret/data/hot", Some(&server.root_token), Some(&body))
                    .await;
                assert_eq!(reply.status, 200, "write w{w}-{i}: {}", reply.text);
                let version = reply.json()["data"]["version"].as_u64().expect("version in the answer");
                versions.push((version, format!("w{w}-{i}")));
            }
            versions
        }));
    }
    let mut acked = Vec::new();
    for task in tasks {
        acked.extend(task.await.unwrap());
    }
    let distinct: BTreeSet<_> = acked.iter().map(|(v, _)| *v).collect();
    assert_eq!(distinct.len(), WRITERS * WRITES_EACH);
    for (version, value) in &acked {
        let reply = server
            .http(
                "GET",
                &format!("/v1/secret/data/hot?version={version}"),
                Some(&server.root_token),
                None,
            )
            .await;
        assert_eq!(reply.json()["data"]["data"]["n"], value.as_str(), "version {version}");
    }
}

// node-vault's `update()` and `bao kv patch` send PATCH without `cas`: Vault
// lets them all succeed, and so must Tresor, each merging into the last.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patches_and_metadata_changes_all_succeed() {
    let server = Arc::new(start_server(TEST_POLICIES).await);
    let root = server.root_token.clone();
    let first = server
        .http(
            "POST",
            "/v1/secret/data/patched",
            Some(&root),
            Some(r#"{"data":{"base":"0"}}"#),
        )
        .await;
    assert_eq!(first.status, 200, "{}", first.text);
    let mut tasks = Vec::new();
    for w in 0..8 {
        let server = server.clone();
        let root = root.clone();
        tasks.push(tokio::spawn(async move {
            let patch = format!(r#"{{"data":{{"k{w}":"v{w}"}}}}"#);
            let reply = request(
                server.addr(),
                None,
                "PATCH",
                "/v1/secret/data/patched",
                &[
                    ("X-Vault-Token", root.clone()),
                    ("Content-Type", "application/merge-patch+json".to_string()),
                ],
                patch.into_bytes(),
            )
            .await
            .unwrap();
            assert_eq!(reply.status, 200, "patch {w}: {}", reply.text);
            let meta = format!(r#"{{"custom_metadata":{{"m{w}":"x"}}}}"#);
            let reply = server
                .http("PATCH", "/v1/secret/metadata/patched", Some(&root), Some(&meta))
                .await;
            assert_eq!(reply.status, 204, "metadata patch {w}: {}", reply.text);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let read = server.http("GET", "/v1/secret/data/patched", Some(&root), None).await;
    let data = &read.json()["data"];
    for w in 0..8 {
        assert_eq!(
            data["data"][format!("k{w}")],
            format!("v{w}"),
            "patch {w} was lost: {}",
            read.text
        );
        assert_eq!(
            data["metadata"]["custom_metadata"][format!("m{w}")],
            "x",
            "metadata {w} was lost: {}",
            read.text
        );
    }
    assert_eq!(data["data"]["base"], "0");
    assert_eq!(data["metadata"]["version"], 17, "one version per change: {}", read.text);
}
