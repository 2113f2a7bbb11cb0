//! Rotation over HTTP:
//!
//! | request | what |
//! |---|---|
//! | `POST /v1/sys/rotate/<mount>/<path>` | rotate the secret now (Cedar `rotate`) |
//! | `GET /v1/sys/rotation/<mount>/<path>` | its schedule, versions and last failure (Cedar `read`) |
//! | `PUT /v1/sys/rotation/<mount>/<path>` | set its policy: `{"period": "30d", "value": {"kind": "hex", "bytes": 32}, "field": ..., "check_webhook": ...}` (Cedar `rotate`) |
//! | `DELETE /v1/sys/rotation/<mount>/<path>` | remove that policy: the configuration's rules apply again (Cedar `rotate`) |
//!
//! Reads of `?version=current|previous|pending` go through the secret's
//! own route (`GET /v1/<mount>/data/<path>?version=previous`).

use hyper::{Response, StatusCode};
use serde_json::{json, Value};

use super::{wire, ApiError, Body, Ctx};
use crate::state::RotationRecord;

/// `POST|PUT sys/rotate/<path>`.
pub(super) async fn rotate(cx: &Ctx<'_>, path: &str) -> Result<Response<Body>, ApiError> {
    let receipt = cx.host().rotate(cx.caller(), path).await?;
    let data = json!({
        "path": receipt.path,
        "version": receipt.version,
        "previous_version": receipt.previous_version,
        "next_rotation": receipt.next_due_ms.map(wire::rfc3339_ms),
    });
    Ok(wire::json(
        StatusCode::OK,
        &wire::envelope(cx.request_id, data, Value::Null, &[]),
    ))
}

/// `sys/rotation/<path>`: read, set or remove a secret's rotation policy.
pub(super) async fn handle(cx: &Ctx<'_>, path: &str, method: &str, body: &[u8]) -> Result<Response<Body>, ApiError> {
    match method {
        "PUT" | "POST" => {
            let rule: crate::rotation::RotationRule =
                serde_json::from_slice(if body.is_empty() { b"{}" } else { body }).map_err(|e| {
                    ApiError::bad_request(format!(
                        "the rotation policy does not parse ({e}); send {{\"period\": \"30d\", \"value\": \
                         {{\"kind\": \"password\", \"length\": 32}}, \"field\": \"password\", \
                         \"check_webhook\": \"name\"}} (every key optional)"
                    ))
                })?;
            let record = cx.host().set_rotation(cx.caller(), path, rule).await?;
            Ok(wire::json(
                StatusCode::OK,
                &wire::envelope(cx.request_id, describe(&record), Value::Null, &[]),
            ))
        }
        "DELETE" => {
            cx.host().remove_rotation(cx.caller(), path).await?;
            Ok(wire::no_content())
        }
        _ => status(cx, path).await,
    }
}

/// `GET sys/rotation/<path>`.
async fn status(cx: &Ctx<'_>, path: &str) -> Result<Response<Body>, ApiError> {
    let Some(record) = cx.host().rotation_status(cx.caller(), path).await? else {
        return Err(crate::error::Error::NotFound(format!(
            "`{path}` has no rotation record: no rule has scheduled it and it was never rotated"
        ))
        .into());
    };
    Ok(wire::json(
        StatusCode::OK,
        &wire::envelope(cx.request_id, describe(&record), Value::Null, &[]),
    ))
}

/// A record as the API shows it (no sealed value).
fn describe(r: &RotationRecord) -> Value {
    let at = |ms: Option<u64>| ms.filter(|m| *m != u64::MAX).map(wire::rfc3339_ms);
    json!({
        "path": r.path,
        "period_seconds": r.period_ms / 1000,
        "next_rotation": at(Some(r.next_due_ms)),
        "current_version": r.current_version,
        "previous_version": r.previous_version,
        "last_rotation": at(r.last_rotated_ms),
        "rotating": r.stage.as_ref().map(|s| json!({
            "started": wire::rfc3339_ms(s.started_ms),
            "replaces_version": s.base_version,
            "request_id": s.request_id,
        })),
        "check_webhook": r.check_webhook,
        "field": r.field,
        "failures": r.failures,
        "last_error": r.last_error,
        "source": r.source,
    })
}
