//! Dynamic secrets over Vault's API: `<mount>/creds/<role>` issues a
//! credential, `sys/leases/*` renews, revokes, looks up and lists leases.
//!
//! | route | method | what |
//! |---|---|---|
//! | `<mount>/creds/<role>` | GET, POST, PUT | issue (optional body `{"ttl": "1h"}`) |
//! | `sys/leases/renew[/<id>]` | PUT, POST | renew (`lease_id`, `increment`) |
//! | `sys/leases/revoke[/<id>]` | PUT, POST | revoke (`lease_id`, `sync`); 204 |
//! | `sys/leases/revoke-prefix/<prefix>` | PUT, POST | revoke every lease under the prefix; 204 |
//! | `sys/leases/revoke-force/<prefix>` | PUT, POST | the same, forgetting leases whose upstream revocation fails; 204 |
//! | `sys/leases/lookup` | PUT, POST | look up (`lease_id`) |
//! | `sys/leases/lookup/<prefix>` | LIST | the next level of lease ids under the prefix |
//!
//! The clients differ in where they put the lease id (`bao lease revoke ID`
//! puts it in the path, hvac and node-vault in the body), and hvac sends
//! `"increment": null`; all are accepted. The legacy aliases `sys/renew`,
//! `sys/revoke`, `sys/revoke-prefix` and `sys/revoke-force` (node-vault 0.12
//! still calls `sys/revoke-prefix`) are served by the same handlers: Tresor
//! decides every lease operation on the lease's role, never on the URL, so
//! an alias cannot reach anything the canonical route would refuse.

use std::collections::BTreeSet;

use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::error::ApiError;
use super::wire::{self, Body};
use super::Ctx;
use crate::config::parse_duration_seconds;
use crate::lease::IssuedLease;
use crate::state::LeaseRecord;

/// A lease route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum LeaseRoute {
    /// `<mount>/creds/<role>`.
    Issue { mount: String, role: String },
    /// `<mount>/static-creds/<role>`: a static role's current credential.
    StaticCreds { mount: String, role: String },
    /// `sys/leases/renew[/<id>]`.
    Renew(Option<String>),
    /// `sys/leases/revoke[/<id>]`.
    Revoke(Option<String>),
    /// `sys/leases/revoke-prefix/<prefix>` or `revoke-force/<prefix>`.
    RevokePrefix { prefix: String, force: bool },
    /// `sys/leases/lookup` (PUT) or `sys/leases/lookup/<prefix>` (LIST).
    Lookup(String),
}

impl LeaseRoute {
    /// The route for `sys/<tail>`, if it is a lease route.
    pub(super) fn parse_sys(tail: &str) -> Option<LeaseRoute> {
        let tail = tail.strip_prefix("leases/").unwrap_or(tail);
        let (op, rest) = match tail.split_once('/') {
            Some((op, rest)) => (op, Some(rest.to_string()).filter(|r| !r.is_empty())),
            None => (tail, None),
        };
        Some(match op {
            "renew" => LeaseRoute::Renew(rest),
            "revoke" => LeaseRoute::Revoke(rest),
            "revoke-prefix" => LeaseRoute::RevokePrefix {
                prefix: rest.unwrap_or_default(),
                force: false,
            },
            "revoke-force" => LeaseRoute::RevokePrefix {
                prefix: rest.unwrap_or_default(),
                force: true,
            },
            "lookup" if tail.starts_with("lookup") => LeaseRoute::Lookup(rest.unwrap_or_default()),
            _ => return None,
        })
    }

    /// The route for `<mount>/<tail>` of a generator mount.
    pub(super) fn parse_mount(mount: &str, tail: &str) -> Option<LeaseRoute> {
        if let Some(role) = tail.strip_prefix("static-creds/") {
            return crate::config::is_mount_name(role).then(|| LeaseRoute::StaticCreds {
                mount: mount.to_string(),
                role: role.to_string(),
            });
        }
        let role = tail.strip_prefix("creds/")?;
        crate::config::is_mount_name(role).then(|| LeaseRoute::Issue {
            mount: mount.to_string(),
            role: role.to_string(),
        })
    }

    /// The methods the route accepts.
    pub(super) fn allow(&self) -> &'static str {
        match self {
            LeaseRoute::Issue { .. } => "GET, POST, PUT",
            LeaseRoute::StaticCreds { .. } => "GET",
            LeaseRoute::Lookup(p) if !p.is_empty() => "LIST",
            LeaseRoute::Lookup(_) => "PUT, POST, LIST",
            _ => "PUT, POST",
        }
    }
}

/// A duration as clients send it: seconds as a number, a duration string
/// (`"1h"`, `"90s"`), or null.
#[derive(Deserialize)]
#[serde(untagged)]
enum Duration {
    Seconds(u64),
    Text(String),
}

fn seconds(d: Option<Duration>, field: &str) -> Result<Option<u64>, ApiError> {
    match d {
        None => Ok(None),
        Some(Duration::Seconds(s)) => Ok(Some(s)),
        Some(Duration::Text(t)) if t.trim().is_empty() => Ok(None),
        Some(Duration::Text(t)) => parse_duration_seconds(&t)
            .map(Some)
            .map_err(|e| ApiError::bad_request(format!("`{field}`: {e}"))),
    }
}

#[derive(Deserialize, Default)]
struct IssueBody {
    #[serde(default)]
    ttl: Option<Duration>,
}

#[derive(Deserialize, Default)]
struct LeaseBody {
    #[serde(default)]
    lease_id: Option<String>,
    #[serde(default)]
    increment: Option<Duration>,
    #[serde(default)]
    sync: Option<bool>,
}

/// Answer a lease route.
pub(super) async fn handle(
    cx: &Ctx<'_>,
    route: LeaseRoute,
    method: &str,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    match route {
        LeaseRoute::Issue { mount, role } => {
            let parsed: IssueBody = wire::parse_json(body)?;
            let ttl = seconds(parsed.ttl, "ttl")?;
            let issued = cx.host().issue(cx.caller(), &format!("{mount}/{role}"), ttl).await?;
            Ok(issued_response(cx.request_id, &issued))
        }
        LeaseRoute::StaticCreds { mount, role } => {
            let credential = cx.host().static_credential(cx.caller(), &mount, &role).await?;
            let now = crate::lease::now_ms();
            let password = String::from_utf8_lossy(credential.password.expose()).into_owned();
            let password = zeroize::Zeroizing::new(password);
            let data = json!({
                "username": credential.username,
                "password": password.as_str(),
                "last_vault_rotation": wire::rfc3339_ms(credential.last_rotated_ms),
                "rotation_period": credential.period_ms / 1000,
                "ttl": credential.next_rotation_ms.saturating_sub(now) / 1000,
            });
            Ok(wire::json(
                StatusCode::OK,
                &wire::envelope(cx.request_id, data, Value::Null, &[]),
            ))
        }
        LeaseRoute::Renew(id) => {
            let parsed: LeaseBody = wire::parse_json(body)?;
            let id = lease_id(id, parsed.lease_id)?;
            let increment = seconds(parsed.increment, "increment")?;
            let (lease, warning) = cx.host().renew(cx.caller(), &id, increment).await?;
            let mut answer = wire::envelope(cx.request_id, Value::Null, Value::Null, &Vec::from_iter(warning));
            answer["lease_id"] = json!(lease.id);
            answer["renewable"] = json!(lease.renewable);
            answer["lease_duration"] = json!(granted(&lease));
            Ok(wire::json(StatusCode::OK, &answer))
        }
        LeaseRoute::Revoke(id) => {
            let parsed: LeaseBody = wire::parse_json(body)?;
            let id = lease_id(id, parsed.lease_id)?;
            cx.host().revoke(cx.caller(), &id, parsed.sync.unwrap_or(true)).await?;
            Ok(wire::no_content())
        }
        LeaseRoute::RevokePrefix { prefix, force } => {
            if prefix.is_empty() {
                return Err(ApiError::bad_request(
                    "a prefix is required: PUT sys/leases/revoke-prefix/<mount>/creds/<role>/",
                ));
            }
            cx.host().revoke_prefix(cx.caller(), &prefix, force).await?;
            Ok(wire::no_content())
        }
        LeaseRoute::Lookup(prefix) if method == "LIST" => {
            let leases = cx.host().list_leases(cx.caller(), &prefix).await?;
            let keys = next_level(&prefix, &leases);
            if keys.is_empty() {
                return Err(ApiError::not_found(""));
            }
            Ok(wire::json(
                StatusCode::OK,
                &wire::envelope(cx.request_id, json!({ "keys": keys }), Value::Null, &[]),
            ))
        }
        LeaseRoute::Lookup(_) => {
            let parsed: LeaseBody = wire::parse_json(body)?;
            let id = lease_id(None, parsed.lease_id)?;
            let lease = cx.host().lookup_lease(cx.caller(), &id).await?;
            Ok(wire::json(
                StatusCode::OK,
                &wire::envelope(cx.request_id, describe(&lease), Value::Null, &[]),
            ))
        }
    }
}

/// The lease id from the path, else from the body.
fn lease_id(from_path: Option<String>, from_body: Option<String>) -> Result<String, ApiError> {
    from_path
        .or(from_body)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing lease ID: give `lease_id` in the body or the path"))
}

/// Seconds left on a lease.
fn remaining(lease: &LeaseRecord) -> u64 {
    lease.expires_ms.saturating_sub(wire::now_ms()) / 1000
}

/// The TTL granted by the last issue or renewal, in seconds (Vault's `lease_duration`).
fn granted(lease: &LeaseRecord) -> u64 {
    let from = lease.issued_ms.max(lease.renewed_ms);
    lease.expires_ms.saturating_sub(from).div_ceil(1000)
}

/// `sys/leases/lookup` data, as Vault shapes it.
fn describe(lease: &LeaseRecord) -> Value {
    json!({
        "id": lease.id,
        "issue_time": wire::rfc3339_ms(lease.issued_ms),
        "expire_time": wire::rfc3339_ms(lease.expires_ms),
        "last_renewal": if lease.renewed_ms == 0 { Value::Null } else { json!(wire::rfc3339_ms(lease.renewed_ms)) },
        "renewable": lease.renewable,
        "ttl": remaining(lease),
        "state": lease.state.as_str(),
        "revocable": lease.revocable,
        "revocation_attempts": lease.attempts,
    })
}

/// The keys one level below `prefix` (`creds/` under `db/`, lease suffixes
/// under `db/creds/ro/`), as Vault lists them.
fn next_level(prefix: &str, leases: &[LeaseRecord]) -> Vec<String> {
    let prefix = if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_string()
    } else {
        format!("{prefix}/")
    };
    let keys: BTreeSet<String> = leases
        .iter()
        .filter_map(|l| l.id.strip_prefix(&prefix))
        .map(|rest| match rest.split_once('/') {
            Some((dir, _)) => format!("{dir}/"),
            None => rest.to_string(),
        })
        .collect();
    keys.into_iter().collect()
}

/// The answer to an issue: Vault's envelope with the lease and the
/// credential, written into a zeroizing buffer.
fn issued_response(request_id: &str, issued: &IssuedLease) -> Response<Body> {
    let mut data = Zeroizing::new(Vec::with_capacity(256));
    wire::extend(&mut data, b"{");
    for (i, (name, value)) in issued.data.iter().enumerate() {
        if i > 0 {
            wire::extend(&mut data, b",");
        }
        let key = serde_json::to_vec(name).unwrap_or_else(|_| b"\"\"".to_vec());
        wire::extend(&mut data, &key);
        wire::extend(&mut data, b":");
        let text = String::from_utf8_lossy(value.expose());
        let quoted = Zeroizing::new(serde_json::to_vec(text.as_ref()).unwrap_or_default());
        if let std::borrow::Cow::Owned(mut s) = text {
            zeroize::Zeroize::zeroize(&mut s);
        }
        wire::extend(&mut data, &quoted);
    }
    wire::extend(&mut data, b"}");
    let mut body = wire::envelope_raw(request_id, &data, &issued.warnings);
    // The envelope's lease fields are fixed strings: replace them in place.
    let head = format!(
        "\"lease_id\":{},\"renewable\":{},\"lease_duration\":{}",
        json!(issued.lease.id),
        issued.lease.renewable,
        granted(&issued.lease)
    );
    let placeholder = b"\"lease_id\":\"\",\"renewable\":false,\"lease_duration\":0";
    if let Some(at) = body.windows(placeholder.len()).position(|w| w == placeholder) {
        let mut out = Zeroizing::new(Vec::with_capacity(body.len() + head.len()));
        out.extend_from_slice(&body[..at]);
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(&body[at + placeholder.len()..]);
        body = out;
    }
    wire::json_bytes(StatusCode::OK, wire::zeroizing_bytes(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sys_routes_parse_as_clients_send_them() {
        assert_eq!(LeaseRoute::parse_sys("leases/renew"), Some(LeaseRoute::Renew(None)));
        assert_eq!(
            LeaseRoute::parse_sys("leases/revoke/db/creds/ro/abc"),
            Some(LeaseRoute::Revoke(Some("db/creds/ro/abc".into())))
        );
        assert_eq!(
            LeaseRoute::parse_sys("revoke-prefix/db/creds/ro/"),
            Some(LeaseRoute::RevokePrefix {
                prefix: "db/creds/ro/".into(),
                force: false
            })
        );
        assert_eq!(
            LeaseRoute::parse_sys("leases/lookup/db/"),
            Some(LeaseRoute::Lookup("db/".into()))
        );
        assert_eq!(
            LeaseRoute::parse_sys("leases/lookup"),
            Some(LeaseRoute::Lookup(String::new()))
        );
        assert_eq!(LeaseRoute::parse_sys("mounts"), None);
        assert_eq!(
            LeaseRoute::parse_mount("db", "creds/ro"),
            Some(LeaseRoute::Issue {
                mount: "db".into(),
                role: "ro".into()
            })
        );
        assert_eq!(LeaseRoute::parse_mount("db", "roles/ro"), None);
    }

    #[test]
    fn durations_come_as_numbers_strings_or_null() {
        let b: LeaseBody = serde_json::from_str(r#"{"lease_id":"x","increment":null}"#).unwrap();
        assert_eq!(seconds(b.increment, "increment").unwrap(), None);
        let b: LeaseBody = serde_json::from_str(r#"{"increment":"1h"}"#).unwrap();
        assert_eq!(seconds(b.increment, "increment").unwrap(), Some(3600));
        let b: LeaseBody = serde_json::from_str(r#"{"increment":120}"#).unwrap();
        assert_eq!(seconds(b.increment, "increment").unwrap(), Some(120));
        let b: LeaseBody = serde_json::from_str(r#"{"increment":"soon"}"#).unwrap();
        assert!(seconds(b.increment, "increment").is_err());
    }

    #[test]
    fn lists_show_the_next_level() {
        let lease = |id: &str| LeaseRecord {
            id: id.into(),
            mount: "db".into(),
            role: "ro".into(),
            principal: "p".into(),
            token_accessor: None,
            revoke_handle: "h".into(),
            issued_ms: 0,
            renewed_ms: 0,
            expires_ms: 0,
            max_expires_ms: 0,
            renewable: true,
            revocable: true,
            state: crate::state::LeaseState::Active,
            attempts: 0,
            next_attempt_ms: 0,
            last_error: None,
        };
        let all = [lease("db/creds/ro/a"), lease("db/creds/ro/b"), lease("db/creds/rw/c")];
        assert_eq!(next_level("db/", &all), ["creds/"]);
        assert_eq!(next_level("db/creds", &all), ["ro/", "rw/"]);
        assert_eq!(next_level("db/creds/ro/", &all), ["a", "b"]);
        assert_eq!(next_level("", &all), ["db/"]);
    }
}
