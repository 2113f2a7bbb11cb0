//! The HTTP API driven by real Vault clients, unchanged: the `bao` CLI
//! (OpenBao's, a Vault CLI) and the `hvac` Python library. A missing client
//! fails the test with a pointer to ./tests/setup.sh.

use serde_json::Value;
use tresor_e2e::server::*;
use tresor_e2e::*;

fn json_out(out: &std::process::Output, what: &str) -> Value {
    let text = stdout_ok(out, what);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"))
}

fn failed_with(out: &std::process::Output, what: &str, needle: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{what} should have failed: {stderr}");
    assert!(stderr.contains(needle), "{what}: expected `{needle}` in: {stderr}");
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bao_status_reads_the_probes_vault_clients_make() {
    let s = start_server(TEST_POLICIES).await;
    // `bao status` needs no token: seal-status, then leader.
    let status = json_out(&s.bao("", &["status"]).await, "bao status");
    assert_eq!(status["sealed"], false, "{status}");
    assert_eq!(status["initialized"], true, "{status}");
    assert_eq!(status["ha_enabled"], false, "{status}");
    let init = s.http("GET", "/v1/sys/init", None, None).await;
    assert_eq!(
        (init.status, init.json()["initialized"].clone()),
        (200, Value::Bool(true))
    );
    // Not served: it would describe the machine to any caller.
    let host_info = s.http("GET", "/v1/sys/host-info", Some(&s.root_token), None).await;
    assert_eq!(host_info.status, 404, "{}", host_info.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bao_cli_works_unchanged() {
    let s = start_server(TEST_POLICIES).await;
    let root = s.root_token.clone();

    // Two versions, then the latest and the first.
    let v1 = json_out(
        &s.bao(&root, &["kv", "put", "secret/apps/db", "password=one", "user=app"])
            .await,
        "kv put",
    );
    assert_eq!(v1["data"]["version"], 1);
    let v2 = json_out(
        &s.bao(&root, &["kv", "put", "secret/apps/db", "password=two"]).await,
        "kv put",
    );
    assert_eq!(v2["data"]["version"], 2);
    let got = json_out(&s.bao(&root, &["kv", "get", "secret/apps/db"]).await, "kv get");
    assert_eq!(got["data"]["data"]["password"], "two");
    assert_eq!(got["data"]["metadata"]["version"], 2);
    let old = json_out(
        &s.bao(&root, &["kv", "get", "-version=1", "secret/apps/db"]).await,
        "kv get -version=1",
    );
    assert_eq!(old["data"]["data"]["password"], "one");
    assert_eq!(old["data"]["data"]["user"], "app");
    let field = s
        .bao(
            &root,
            &["kv", "get", "-format=table", "-field=password", "secret/apps/db"],
        )
        .await;
    assert_eq!(stdout_ok(&field, "kv get -field").trim(), "two");

    // One level at a time, folders ending in `/`.
    s.bao(&root, &["kv", "put", "secret/apps/sub/x", "k=v"]).await;
    s.bao(&root, &["kv", "put", "secret/top", "k=v"]).await;
    let list = json_out(&s.bao(&root, &["kv", "list", "secret/"]).await, "kv list");
    assert_eq!(list, serde_json::json!(["apps/", "top"]));
    let list = json_out(&s.bao(&root, &["kv", "list", "secret/apps"]).await, "kv list apps");
    assert_eq!(list, serde_json::json!(["db", "sub/"]));

    let meta = json_out(
        &s.bao(&root, &["kv", "metadata", "get", "secret/apps/db"]).await,
        "kv metadata get",
    );
    assert_eq!(meta["data"]["current_version"], 2);
    assert_eq!(meta["data"]["versions"]["1"]["destroyed"], false);

    // Check-and-set: a stale version loses, the current one wins.
    let stale = s
        .bao(&root, &["kv", "put", "-cas=1", "secret/apps/db", "password=three"])
        .await;
    failed_with(&stale, "kv put -cas=1", "check-and-set");
    let v3 = json_out(
        &s.bao(&root, &["kv", "put", "-cas=2", "secret/apps/db", "password=three"])
            .await,
        "kv put -cas=2",
    );
    assert_eq!(v3["data"]["version"], 3);
    let create_only = s.bao(&root, &["kv", "put", "-cas=0", "secret/apps/db", "x=y"]).await;
    failed_with(&create_only, "kv put -cas=0", "check-and-set");

    // Soft delete, undelete, destroy.
    stdout_ok(&s.bao(&root, &["kv", "delete", "secret/apps/db"]).await, "kv delete");
    // As against Vault: no value, and the version's metadata says when it
    // was deleted.
    let deleted = json_out(
        &s.bao(&root, &["kv", "get", "secret/apps/db"]).await,
        "kv get of a deleted version",
    );
    assert_eq!(deleted["data"]["data"], Value::Null, "{deleted}");
    assert_eq!(deleted["data"]["metadata"]["version"], 3, "{deleted}");
    let deleted_at = deleted["data"]["metadata"]["deletion_time"]
        .as_str()
        .unwrap_or_default();
    assert!(deleted_at.starts_with("20"), "a real deletion time: {deleted}");
    let meta = json_out(
        &s.bao(&root, &["kv", "metadata", "get", "secret/apps/db"]).await,
        "kv metadata get",
    );
    assert_ne!(meta["data"]["versions"]["3"]["deletion_time"], "");
    stdout_ok(
        &s.bao(&root, &["kv", "undelete", "-versions=3", "secret/apps/db"]).await,
        "kv undelete",
    );
    let got = json_out(&s.bao(&root, &["kv", "get", "secret/apps/db"]).await, "kv get");
    assert_eq!(got["data"]["data"]["password"], "three");
    stdout_ok(
        &s.bao(&root, &["kv", "destroy", "-versions=1", "secret/apps/db"]).await,
        "kv destroy",
    );
    let destroyed = json_out(
        &s.bao(&root, &["kv", "get", "-version=1", "secret/apps/db"]).await,
        "kv get of a destroyed version",
    );
    assert_eq!(destroyed["data"]["data"], Value::Null, "{destroyed}");
    assert_eq!(destroyed["data"]["metadata"]["destroyed"], true, "{destroyed}");
    let meta = json_out(
        &s.bao(&root, &["kv", "metadata", "get", "secret/apps/db"]).await,
        "kv metadata get",
    );
    assert_eq!(meta["data"]["versions"]["1"]["destroyed"], true);
    // Version 2 survives its neighbours' fates.
    let two = json_out(
        &s.bao(&root, &["kv", "get", "-version=2", "secret/apps/db"]).await,
        "kv get -version=2",
    );
    assert_eq!(two["data"]["data"]["password"], "two");

    // custom_metadata: a new version with the same value, and carried forward.
    stdout_ok(
        &s.bao(
            &root,
            &["kv", "metadata", "put", "-custom-metadata=owner=ops", "secret/apps/db"],
        )
        .await,
        "kv metadata put",
    );
    let meta = json_out(
        &s.bao(&root, &["kv", "metadata", "get", "secret/apps/db"]).await,
        "kv metadata get",
    );
    assert_eq!(meta["data"]["custom_metadata"]["owner"], "ops");
    assert_eq!(meta["data"]["current_version"], 4);
    let got = json_out(&s.bao(&root, &["kv", "get", "secret/apps/db"]).await, "kv get");
    assert_eq!(got["data"]["data"]["password"], "three");
    s.bao(&root, &["kv", "put", "secret/apps/db", "password=four"]).await;
    let got = json_out(&s.bao(&root, &["kv", "get", "secret/apps/db"]).await, "kv get");
    assert_eq!(got["data"]["metadata"]["custom_metadata"]["owner"], "ops");

    // kv patch merges into the latest version.
    stdout_ok(
        &s.bao(&root, &["kv", "patch", "secret/apps/db", "user=patched"]).await,
        "kv patch",
    );
    let got = json_out(&s.bao(&root, &["kv", "get", "secret/apps/db"]).await, "kv get");
    assert_eq!(got["data"]["data"]["password"], "four");
    assert_eq!(got["data"]["data"]["user"], "patched");

    // A denied token gets "permission denied" and never the value.
    let app = s.token("billing", &["apps"], 3600).await;
    s.bao(&root, &["kv", "put", "secret/ops/key", "k=ops-secret-value"])
        .await;
    let denied = s.bao(&app, &["kv", "get", "secret/ops/key"]).await;
    let stderr = failed_with(&denied, "kv get by a denied token", "permission denied");
    assert!(!stderr.contains("ops-secret-value"));
    assert!(!String::from_utf8_lossy(&denied.stdout).contains("ops-secret-value"));
    let allowed = json_out(&s.bao(&app, &["kv", "get", "secret/apps/db"]).await, "kv get by app");
    assert_eq!(allowed["data"]["data"]["password"], "four");

    // Tokens, as the CLI sees them.
    let me = json_out(&s.bao(&root, &["token", "lookup"]).await, "token lookup");
    assert_eq!(me["data"]["policies"], serde_json::json!(["admins"]));
    let made = json_out(
        &s.bao(
            &root,
            &["token", "create", "-policy=apps", "-display-name=ci-bot", "-ttl=10m"],
        )
        .await,
        "token create",
    );
    let ci = made["auth"]["client_token"].as_str().unwrap().to_string();
    assert!(ci.starts_with("tvs."), "{ci}");
    assert_eq!(made["auth"]["lease_duration"], 600);
    let seen = json_out(&s.bao(&ci, &["token", "lookup"]).await, "token lookup as ci");
    assert_eq!(seen["data"]["display_name"], "ci-bot");
    stdout_ok(&s.bao(&root, &["token", "revoke", &ci]).await, "token revoke");
    failed_with(
        &s.bao(&ci, &["kv", "get", "secret/apps/db"]).await,
        "kv get with a revoked token",
        "permission denied",
    );

    // Delete everything at once.
    stdout_ok(
        &s.bao(&root, &["kv", "metadata", "delete", "secret/apps/db"]).await,
        "kv metadata delete",
    );
    failed_with(
        &s.bao(&root, &["kv", "get", "secret/apps/db"]).await,
        "kv get after metadata delete",
        "No value found",
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hvac_works_unchanged() {
    let s = start_server(TEST_POLICIES).await;
    let app = s.token("billing", &["apps"], 3600).await;
    let script = format!(
        r#"
kv = client.secrets.kv.v2
out = {{}}
out["authenticated"] = client.is_authenticated()
out["v1"] = kv.create_or_update_secret(path="apps/db", secret={{"password": "one", "n": 1}})["data"]["version"]
out["v2"] = kv.create_or_update_secret(path="apps/db", secret={{"password": "two"}}, cas=1)["data"]["version"]
try:
    kv.create_or_update_secret(path="apps/db", secret={{"password": "x"}}, cas=1)
    out["cas"] = "accepted"
except hvac.exceptions.VaultError as e:
    out["cas"] = type(e).__name__
out["latest"] = kv.read_secret_version(path="apps/db", raise_on_deleted_version=True)["data"]["data"]
out["first"] = kv.read_secret_version(path="apps/db", version=1, raise_on_deleted_version=True)["data"]["data"]
kv.create_or_update_secret(path="apps/sub/x", secret={{"k": "v"}})
out["list"] = kv.list_secrets(path="apps")["data"]["keys"]
out["meta"] = kv.read_secret_metadata(path="apps/db")["data"]["current_version"]
kv.update_metadata(path="apps/db", custom_metadata={{"owner": "billing"}})
out["custom"] = kv.read_secret_metadata(path="apps/db")["data"]["custom_metadata"]
kv.delete_latest_version_of_secret(path="apps/db")
try:
    kv.read_secret_version(path="apps/db", raise_on_deleted_version=True)
    out["deleted"] = "readable"
except hvac.exceptions.InvalidPath:
    out["deleted"] = "InvalidPath"
kv.undelete_secret_versions(path="apps/db", versions=[3])
out["undeleted"] = kv.read_secret_version(path="apps/db", raise_on_deleted_version=True)["data"]["data"]
kv.destroy_secret_versions(path="apps/db", versions=[1])
out["destroyed"] = kv.read_secret_metadata(path="apps/db")["data"]["versions"]["1"]["destroyed"]
kv.create_or_update_secret(path="ops/key", secret={{"k": "ops-secret-value"}})

app = hvac.Client(url=addr, token="{app}")
out["app_read"] = app.secrets.kv.v2.read_secret_version(path="apps/db", raise_on_deleted_version=True)["data"]["data"]["password"]
try:
    app.secrets.kv.v2.read_secret_version(path="ops/key", raise_on_deleted_version=True)
    out["app_ops"] = "readable"
except hvac.exceptions.Forbidden as e:
    out["app_ops"] = "Forbidden"
    out["app_ops_message"] = str(e)
try:
    app.secrets.kv.v2.create_or_update_secret(path="apps/db", secret={{"password": "mine"}})
    out["app_write"] = "accepted"
except hvac.exceptions.Forbidden:
    out["app_write"] = "Forbidden"
made = client.auth.token.create(policies=["apps"], ttl="1h", meta={{"team": "billing"}})
out["made_policies"] = made["auth"]["policies"]
child = hvac.Client(url=addr, token=made["auth"]["client_token"])
out["child_self"] = child.auth.token.lookup_self()["data"]["meta"]
client.auth.token.revoke(made["auth"]["client_token"])
out["child_after_revoke"] = child.is_authenticated()
kv.delete_metadata_and_all_versions(path="apps/db")
try:
    kv.read_secret_version(path="apps/db", raise_on_deleted_version=True)
    out["gone"] = "readable"
except hvac.exceptions.InvalidPath:
    out["gone"] = "InvalidPath"
print(json.dumps(out))
"#
    );
    let out = s.hvac(&s.root_token, &script).await;
    let text = stdout_ok(&out, "hvac script");
    let got: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(got["authenticated"], true);
    assert_eq!((got["v1"].clone(), got["v2"].clone()), (1.into(), 2.into()));
    assert_eq!(
        got["cas"], "InvalidRequest",
        "Vault answers a lost check-and-set with 400"
    );
    assert_eq!(got["latest"], serde_json::json!({"password": "two"}));
    assert_eq!(got["first"], serde_json::json!({"password": "one", "n": 1}));
    assert_eq!(got["list"], serde_json::json!(["db", "sub/"]));
    assert_eq!(got["meta"], 2);
    assert_eq!(got["custom"], serde_json::json!({"owner": "billing"}));
    assert_eq!(got["deleted"], "InvalidPath");
    assert_eq!(got["undeleted"], serde_json::json!({"password": "two"}));
    assert_eq!(got["destroyed"], true);
    assert_eq!(got["app_read"], "two");
    assert_eq!(got["app_ops"], "Forbidden");
    assert!(!got["app_ops_message"].as_str().unwrap().contains("ops-secret-value"));
    assert_eq!(got["app_write"], "Forbidden");
    assert_eq!(got["made_policies"], serde_json::json!(["apps"]));
    assert_eq!(got["child_self"], serde_json::json!({"team": "billing"}));
    assert_eq!(got["child_after_revoke"], false);
    assert_eq!(got["gone"], "InvalidPath");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_clients_renew_tokens_up_to_their_maximum_lifetime() {
    let s = start_server(TEST_POLICIES).await;
    let root = s.root_token.clone();
    let made = json_out(
        &s.bao(
            &root,
            &[
                "token",
                "create",
                "-policy=apps",
                "-display-name=renewer",
                "-ttl=60s",
                "-explicit-max-ttl=1h",
                "-format=json",
            ],
        )
        .await,
        "bao token create",
    );
    let auth = &made["auth"];
    assert_eq!(auth["renewable"], true, "{made}");
    assert_eq!(auth["lease_duration"], 60, "{made}");
    let child = auth["client_token"].as_str().unwrap().to_string();
    let accessor = auth["accessor"].as_str().unwrap().to_string();

    // The token renews itself (renew-self), then an admin renews it by token.
    let lease = |v: &Value| v["auth"]["lease_duration"].as_u64().unwrap_or_else(|| panic!("{v}"));
    let renewed = json_out(
        &s.bao(&child, &["token", "renew", "-increment=30m", "-format=json"])
            .await,
        "bao token renew (self)",
    );
    assert!((1795..=1800).contains(&lease(&renewed)), "{renewed}");
    assert_eq!(renewed["auth"]["renewable"], true);
    let renewed = json_out(
        &s.bao(&root, &["token", "renew", "-increment=20m", "-format=json", &child])
            .await,
        "bao token renew <token>",
    );
    assert!((1195..=1200).contains(&lease(&renewed)), "{renewed}");

    // hvac: asking for more than the maximum lifetime gets the maximum, and
    // then the token is no longer renewable; an admin renews by accessor.
    let script = format!(
        r#"
child = hvac.Client(url=addr, token="{child}")
out = {{}}
r = child.auth.token.renew_self(increment="2h")
out["capped"] = r["auth"]["lease_duration"]
out["capped_renewable"] = r["auth"]["renewable"]
out["lookup_ttl"] = child.auth.token.lookup_self()["data"]["ttl"]
r = client.auth.token.renew_accessor("{accessor}", increment="10m")
out["by_accessor"] = r["auth"]["lease_duration"]
out["by_accessor_token"] = r["auth"]["client_token"]
try:
    client.auth.token.renew_self()
    out["root"] = "renewed"
except hvac.exceptions.InvalidRequest as e:
    out["root"] = str(e)
print(json.dumps(out))
"#
    );
    let out = s.hvac(&root, &script).await;
    let text = stdout_ok(&out, "hvac renewals");
    let got: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    let capped = got["capped"].as_u64().unwrap();
    assert!((3500..=3600).contains(&capped), "capped at the 1h maximum: {got}");
    assert_eq!(got["capped_renewable"], false, "{got}");
    assert!(got["lookup_ttl"].as_u64().unwrap() <= capped, "{got}");
    let by_accessor = got["by_accessor"].as_u64().unwrap();
    assert!((595..=600).contains(&by_accessor), "{got}");
    assert_eq!(
        got["by_accessor_token"], "",
        "renewing by accessor never shows the token"
    );
    assert!(got["root"].as_str().unwrap().contains("never expires"), "{got}");

    // A renewal is only for live tokens: once revoked, it is refused.
    let out = s.bao(&root, &["token", "revoke", &child]).await;
    stdout_ok(&out, "bao token revoke");
    failed_with(
        &s.bao(&child, &["token", "renew"]).await,
        "renewing a revoked token",
        "permission denied",
    );
    s.stop().await;
}
