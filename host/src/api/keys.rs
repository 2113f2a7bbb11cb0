//! Master key rotation over HTTP, in Vault's shape (`bao operator rotate`
//! and `bao operator key-status` work against it):
//!
//! | request | what |
//! |---|---|
//! | `POST /v1/sys/rotate/keyring` (or `sys/rotate`) | add a key generation and reseal every value under it (Cedar `admin` on `Mount::"sys"`) |
//! | `GET /v1/sys/key-status` | the current generation (Vault's `term`), every generation and the reseal's progress (Cedar `admin`) |
//! | `GET /v1/sys/expiring/<prefix>?within=30d` | the secrets whose latest version expires within that time, or has (Cedar `admin`) |

use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use super::{wire, ApiError, Body, Ctx};
use crate::access::rekey::KeyStatus;

/// `POST|PUT sys/rotate/keyring`: Vault answers 204; so does Tresor.
pub(super) async fn rotate(cx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    cx.shared_host().rotate_master_key(cx.caller()).await?;
    Ok(wire::no_content())
}

/// `GET sys/key-status`.
pub(super) async fn status(cx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let status = cx.host().key_status(cx.caller()).await?;
    Ok(wire::json(
        StatusCode::OK,
        &wire::envelope(cx.request_id, describe(&status), Value::Null, &[]),
    ))
}

/// Vault's `term`, `install_time` and `encryptions`, then Tresor's detail.
fn describe(status: &KeyStatus) -> Value {
    let installed = status
        .generations
        .iter()
        .find(|g| g.generation == status.current)
        .map_or(0, |g| g.created_ms);
    json!({
        "term": status.current,
        "install_time": wire::rfc3339_ms(installed),
        "encryptions": status.encryptions,
        "generations": status.generations.iter().map(|g| json!({
            "generation": g.generation,
            "created": (g.created_ms > 0).then(|| wire::rfc3339_ms(g.created_ms)),
            "retired": g.retired_ms.map(wire::rfc3339_ms),
        })).collect::<Vec<_>>(),
        "reseal": status.reseal,
    })
}

/// `GET sys/expiring/<prefix>?within=30d` (default 30 days).
pub(super) async fn expiring(cx: &Ctx<'_>, prefix: &str, within: Option<&str>) -> Result<Response<Body>, ApiError> {
    let within = within.unwrap_or("30d");
    let seconds =
        crate::config::parse_duration_seconds(within).map_err(|e| ApiError::bad_request(format!("within: {e}")))?;
    let found = cx
        .host()
        .expiring(cx.caller(), prefix, seconds.saturating_mul(1000))
        .await?;
    let now = crate::lease::now_ms();
    let secrets: Vec<Value> = found
        .iter()
        .map(|e| {
            json!({
                "path": e.path,
                "version": e.version,
                "expires_at": wire::rfc3339_ms(e.expires_ms),
                "expired": e.expires_ms <= now,
            })
        })
        .collect();
    Ok(wire::json(
        StatusCode::OK,
        &wire::envelope(cx.request_id, json!({ "secrets": secrets }), Value::Null, &[]),
    ))
}
