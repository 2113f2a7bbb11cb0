//! `/v1/sys/...`: health and the status probes Vault clients make
//! (`bao status` reads `seal-status` and `leader`), the mount table, and
//! the mount lookup the Vault CLI's `kv` commands make before anything else
//! (it decides that a mount speaks KV v2). `sys/host-info` is not served:
//! it would tell any caller about the machine.

use hyper::{Response, StatusCode};
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::wire::{self, Body};
use super::Ctx;

/// How long health waits for the state store before calling it unavailable.
const STATE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// `GET /v1/sys/health` (no token needed): initialized, unsealed, active,
/// and whether the state store answers: 503 within a second when it does
/// not (a load balancer then sends clients to another host), 200 again as
/// soon as it does.
pub(super) async fn health(host: &crate::Host, method: &str) -> Response<Body> {
    let state = match tokio::time::timeout(STATE_CHECK, host.state().ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {STATE_CHECK:?}")),
    };
    if let Err(e) = &state {
        tracing::warn!(error = %e, "health: the state store is unavailable");
    }
    let body = json!({
        "initialized": true,
        "sealed": false,
        "standby": false,
        "performance_standby": false,
        "replication_performance_mode": "disabled",
        "replication_dr_mode": "disabled",
        "server_time_utc": wire::now_ms() / 1000,
        "version": concat!("tresor-", env!("CARGO_PKG_VERSION")),
        "cluster_name": "tresor",
        "cluster_id": "",
        "state_store": if state.is_ok() { "ok" } else { "unavailable" },
    });
    let status = if state.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut r = wire::json(status, &body);
    if method == "HEAD" {
        *r.body_mut() = Body::default();
    }
    r
}

/// The read-only status endpoints a Vault client probes without a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Probe {
    /// `sys/seal-status`: Tresor has no seal; it is always unsealed.
    SealStatus,
    /// `sys/leader`: one host, no HA cluster.
    Leader,
    /// `sys/init`: always initialized.
    Init,
}

/// Answer a status probe (no `request_id` envelope, as Vault answers them).
pub(super) fn probe(probe: Probe) -> Response<Body> {
    let body = match probe {
        Probe::SealStatus => json!({
            "type": "tresor",
            "initialized": true,
            "sealed": false,
            "t": 0,
            "n": 0,
            "progress": 0,
            "nonce": "",
            "recovery_seal": false,
            "version": concat!("tresor-", env!("CARGO_PKG_VERSION")),
            "migration": false,
            "cluster_name": "tresor",
            "cluster_id": "",
            "storage_type": "tresor",
        }),
        Probe::Leader => json!({ "ha_enabled": false }),
        Probe::Init => json!({ "initialized": true }),
    };
    wire::json(StatusCode::OK, &body)
}

/// How a mount looks in Vault's mount table: every Tresor mount is served
/// through the KV v2 API.
fn mount_entry(name: &str, plugin: &str) -> Value {
    json!({
        "type": "kv",
        "description": format!("Tresor mount `{name}` ({plugin} plugin)"),
        "accessor": format!("kv_{name}"),
        "options": { "version": "2" },
        "config": { "default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": false },
        "local": false,
        "seal_wrap": false,
        "external_entropy_access": false,
        "plugin_version": "",
        "running_plugin_version": "",
        "uuid": "",
    })
}

fn mount_table(cx: &Ctx<'_>) -> Map<String, Value> {
    cx.host()
        .mounts()
        .iter()
        .map(|(name, plugin, _)| (format!("{name}/"), mount_entry(name, plugin)))
        .collect()
}

/// `GET /v1/sys/mounts`: the mounts (any valid token may see their names).
pub(super) fn mounts(cx: &Ctx<'_>) -> Response<Body> {
    let table = mount_table(cx);
    // Vault answers the table both at the top level and under `data`.
    let mut body = wire::envelope(cx.request_id, Value::Object(table.clone()), Value::Null, &[]);
    if let Value::Object(top) = &mut body {
        top.extend(table);
    }
    wire::json(StatusCode::OK, &body)
}

/// `GET /v1/sys/members`: the live hosts sharing this host's state store,
/// the singleton jobs each leads, and which one answered (Cedar `admin` on
/// `Mount::"sys"`).
pub(super) async fn members(cx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let members = cx.host().members(cx.caller()).await?;
    let list: Vec<Value> = members
        .iter()
        .map(|m| {
            json!({
                "id": m.id,
                "name": m.name,
                "started": wire::rfc3339_ms(m.started_ms),
                "last_seen": wire::rfc3339_ms(m.last_seen_ms),
                "jobs": m.jobs,
            })
        })
        .collect();
    let data = json!({ "members": list, "this_host": cx.host().member_id() });
    Ok(wire::json(
        StatusCode::OK,
        &wire::envelope(cx.request_id, data, Value::Null, &[]),
    ))
}

/// `GET /v1/sys/internal/ui/mounts/<path>`: the mount serving `path`.
pub(super) fn ui_mount(cx: &Ctx<'_>, path: &str) -> Result<Response<Body>, ApiError> {
    if path.is_empty() {
        let data = json!({
            "secret": mount_table(cx),
            "auth": { "token/": { "type": "token", "description": "Tresor tokens", "options": null } },
        });
        return Ok(wire::json(
            StatusCode::OK,
            &wire::envelope(cx.request_id, data, Value::Null, &[]),
        ));
    }
    let name = path.split('/').next().unwrap_or_default();
    let mounts = cx.host().mounts();
    let Some((_, plugin, _)) = mounts.iter().find(|(m, _, _)| m == name) else {
        let names: Vec<String> = mounts.iter().map(|(m, _, _)| format!("{m}/")).collect();
        return Err(ApiError::bad_request(format!(
            "no mount serves `{}`; the mounts are: {}",
            super::error::printable(path),
            names.join(", ")
        )));
    };
    let mut data = mount_entry(name, plugin);
    data["path"] = json!(format!("{name}/"));
    Ok(wire::json(
        StatusCode::OK,
        &wire::envelope(cx.request_id, data, Value::Null, &[]),
    ))
}
