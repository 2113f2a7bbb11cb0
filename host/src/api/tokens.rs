//! `/v1/auth/token/...`: Vault's token API where it overlaps.
//!
//! | route                              | who may                          |
//! |------------------------------------|----------------------------------|
//! | `create`, `create-orphan`          | Cedar `admin` on `Mount::"auth"` |
//! | `lookup`, `lookup-accessor`        | Cedar `admin` on `Mount::"auth"` |
//! | `revoke`, `revoke-accessor`        | Cedar `admin` on `Mount::"auth"` |
//! | `renew`, `renew-accessor`          | Cedar `admin` on `Mount::"auth"` |
//! | `lookup-self`, `revoke-self`, `renew-self` | any valid token, for itself |
//!
//! Vault's `policies` are Tresor's groups, `meta` the principal's
//! attributes, `display_name` (or Tresor's own `principal`) the principal's
//! name. Left-out policies are the creating token's, as Vault's child tokens
//! inherit their parent's policies; a token without a name is its own
//! principal (`token-<accessor prefix>`), never its creator. Every token is an orphan
//! (revoking one never revokes others). A token with a TTL is renewable up
//! to its maximum lifetime (the server's `max_ttl` and the token's
//! `explicit_max_ttl`, counted from its creation); renewing sets its expiry
//! to `increment` (default: its creation TTL) from now.

use std::collections::BTreeMap;

use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::error::ApiError;
use super::wire::{self, Body};
use super::Ctx;
use crate::auth::{TokenInfo, TokenRef, TokenSpec};
use crate::config::parse_duration_seconds;
use crate::error::Error;
use crate::policy::Principal;

/// The pseudo-mount token administration is authorized on.
const AREA: &str = "auth";

/// Which token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TokenRoute {
    Create,
    Lookup,
    LookupSelf,
    LookupAccessor,
    Revoke,
    RevokeSelf,
    RevokeAccessor,
    Renew,
    RenewSelf,
    RenewAccessor,
}

impl TokenRoute {
    pub(super) fn parse(name: &str) -> Option<TokenRoute> {
        Some(match name {
            "create" | "create-orphan" => TokenRoute::Create,
            "lookup" => TokenRoute::Lookup,
            "lookup-self" => TokenRoute::LookupSelf,
            "lookup-accessor" => TokenRoute::LookupAccessor,
            "revoke" | "revoke-orphan" => TokenRoute::Revoke,
            "revoke-self" => TokenRoute::RevokeSelf,
            "revoke-accessor" => TokenRoute::RevokeAccessor,
            "renew" => TokenRoute::Renew,
            "renew-self" => TokenRoute::RenewSelf,
            "renew-accessor" => TokenRoute::RenewAccessor,
            _ => return None,
        })
    }

    pub(super) fn allow(&self) -> &'static str {
        match self {
            TokenRoute::LookupSelf => "GET, POST, PUT",
            _ => "POST, PUT",
        }
    }

    fn operation(&self) -> &'static str {
        match self {
            TokenRoute::Create => "token/create",
            TokenRoute::Lookup => "token/lookup",
            TokenRoute::LookupSelf => "token/lookup-self",
            TokenRoute::LookupAccessor => "token/lookup-accessor",
            TokenRoute::Revoke => "token/revoke",
            TokenRoute::RevokeSelf => "token/revoke-self",
            TokenRoute::RevokeAccessor => "token/revoke-accessor",
            TokenRoute::Renew => "token/renew",
            TokenRoute::RenewSelf => "token/renew-self",
            TokenRoute::RenewAccessor => "token/renew-accessor",
        }
    }
}

/// Vault's `auth/token/create` body (the fields Tresor reads).
#[derive(Deserialize, Default)]
struct CreateBody {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    policies: Option<Vec<String>>,
    #[serde(default)]
    meta: Option<BTreeMap<String, String>>,
    #[serde(default)]
    display_name: Option<String>,
    /// Tresor: the principal's name (wins over `display_name`).
    #[serde(default)]
    principal: Option<String>,
    #[serde(default)]
    ttl: Option<Value>,
    #[serde(default)]
    explicit_max_ttl: Option<Value>,
    #[serde(default)]
    period: Option<Value>,
    #[serde(default)]
    num_uses: Option<u64>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

/// A `token`/`accessor` request body (`increment` for renewals).
#[derive(Deserialize, Default)]
struct Target {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    accessor: Option<String>,
    #[serde(default)]
    increment: Option<Value>,
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(t) = self.token.as_mut() {
            zeroize::Zeroize::zeroize(t);
        }
    }
}

/// Answer a token request.
pub(super) async fn handle(cx: &Ctx<'_>, route: TokenRoute, body: &[u8]) -> Result<Response<Body>, ApiError> {
    match route {
        TokenRoute::LookupSelf => {
            let Some((token, info)) = &cx.who.token else {
                return Err(no_token());
            };
            Ok(lookup_response(cx, info, token))
        }
        TokenRoute::RevokeSelf => {
            let Some((token, info)) = &cx.who.token else {
                return Err(no_token());
            };
            cx.state.tokens.revoke(token).await?;
            cx.host().revoke_token_leases(cx.caller(), &info.accessor).await?;
            Ok(wire::no_content())
        }
        TokenRoute::RenewSelf => {
            let Some((token, _)) = &cx.who.token else {
                return Err(no_token());
            };
            let target: Target = parse_optional_json(body)?;
            let increment = ttl_field("increment", &target.increment)?;
            let info = cx
                .state
                .tokens
                .renew(TokenRef::Token(token), increment)
                .await?
                .ok_or_else(|| ApiError::forbidden("bad token: invalid, expired or revoked"))?;
            Ok(auth_response(cx, token, &info, remaining(&info)))
        }
        TokenRoute::Renew | TokenRoute::RenewAccessor => {
            let target: Target = parse_optional_json(body)?;
            let increment = ttl_field("increment", &target.increment)?;
            let (field, value) = if route == TokenRoute::Renew {
                ("token", target.token.clone())
            } else {
                ("accessor", target.accessor.clone())
            };
            let Some(value) = value.filter(|v| !v.is_empty()).map(Zeroizing::new) else {
                return Err(ApiError::bad_request(format!("missing `{field}` in the request body")));
            };
            let tokens = cx.state.tokens.clone();
            let by_token = route == TokenRoute::Renew;
            let held = value.clone();
            let info = cx
                .host()
                .admin(cx.caller(), AREA, route.operation(), || async move {
                    let which = if by_token {
                        TokenRef::Token(&held)
                    } else {
                        TokenRef::Accessor(&held)
                    };
                    tokens.renew(which, increment).await.map_err(token_store_error)
                })
                .await?
                .ok_or_else(|| ApiError::bad_request(format!("no live token has this {field}")))?;
            let shown = if by_token { value.as_str() } else { "" };
            Ok(auth_response(cx, shown, &info, remaining(&info)))
        }
        TokenRoute::Create => {
            let req: CreateBody = wire::parse_json(body)?;
            let spec = create_spec(cx, req)?;
            let tokens = cx.state.tokens.clone();
            let (token, info) = cx
                .host()
                .admin(cx.caller(), AREA, route.operation(), || async move {
                    tokens.create(&spec).await.map_err(token_store_error)
                })
                .await?;
            Ok(auth_response(cx, &token, &info, info.ttl_seconds))
        }
        TokenRoute::Lookup | TokenRoute::Revoke => {
            let target: Target = wire::parse_json(body)?;
            let Some(token) = target.token.as_deref().filter(|t| !t.is_empty()) else {
                return Err(ApiError::bad_request("missing `token` in the request body"));
            };
            let tokens = cx.state.tokens.clone();
            if route == TokenRoute::Revoke {
                let accessor = tokens.lookup(token).await?.map(|info| info.accessor);
                let token = Zeroizing::new(token.to_string());
                cx.host()
                    .admin(cx.caller(), AREA, route.operation(), || async move {
                        tokens.revoke(&token).await.map_err(token_store_error)
                    })
                    .await?;
                if let Some(accessor) = accessor {
                    cx.host().revoke_token_leases(cx.caller(), &accessor).await?;
                }
                return Ok(wire::no_content());
            }
            let info = cx
                .host()
                .admin(cx.caller(), AREA, route.operation(), || async move {
                    tokens.lookup(token).await.map_err(token_store_error)
                })
                .await?
                .ok_or_else(|| ApiError::forbidden("bad token: invalid, expired or revoked"))?;
            Ok(lookup_response(cx, &info, token))
        }
        TokenRoute::LookupAccessor | TokenRoute::RevokeAccessor => {
            let target: Target = wire::parse_json(body)?;
            let Some(accessor) = target.accessor.clone().filter(|a| !a.is_empty()) else {
                return Err(ApiError::bad_request("missing `accessor` in the request body"));
            };
            let tokens = cx.state.tokens.clone();
            if route == TokenRoute::RevokeAccessor {
                let held = accessor.clone();
                cx.host()
                    .admin(cx.caller(), AREA, route.operation(), || async move {
                        tokens.revoke_accessor(&held).await.map_err(token_store_error)
                    })
                    .await?;
                cx.host().revoke_token_leases(cx.caller(), &accessor).await?;
                return Ok(wire::no_content());
            }
            let info = cx
                .host()
                .admin(cx.caller(), AREA, route.operation(), || async move {
                    tokens.lookup_accessor(&accessor).await.map_err(token_store_error)
                })
                .await?
                .ok_or_else(|| ApiError::bad_request("invalid accessor: no live token has it"))?;
            Ok(lookup_response(cx, &info, ""))
        }
    }
}

fn no_token() -> ApiError {
    ApiError::bad_request("this request authenticated with a client certificate, not a token")
}

fn token_store_error(e: crate::auth::TokenError) -> Error {
    match e {
        crate::auth::TokenError::Invalid(m) => Error::InvalidInput(m),
        other => Error::Unavailable(other.to_string()),
    }
}

/// A TTL field: a duration string or a number of seconds.
fn ttl_field(name: &str, v: &Option<Value>) -> Result<u64, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| ApiError::bad_request(format!("{name} must be a positive number of seconds"))),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(0),
        Some(Value::String(s)) => parse_duration_seconds(s).map_err(|e| ApiError::bad_request(format!("{name}: {e}"))),
        Some(_) => Err(ApiError::bad_request(format!("{name} must be a duration like \"1h\""))),
    }
}

/// What the new token stands for: the request's fields, else the creator's.
fn create_spec(cx: &Ctx<'_>, req: CreateBody) -> Result<TokenSpec, ApiError> {
    if req.id.as_deref().is_some_and(|id| !id.is_empty()) {
        return Err(ApiError::bad_request(
            "choosing a token's id is not supported; Tresor generates every token",
        ));
    }
    if req.num_uses.unwrap_or(0) != 0 {
        return Err(ApiError::bad_request("use-limited tokens (num_uses) are not supported"));
    }
    if !matches!(req.kind.as_deref(), None | Some("") | Some("service") | Some("default")) {
        return Err(ApiError::bad_request(
            "only service tokens are supported (type \"service\")",
        ));
    }
    if ttl_field("period", &req.period)? != 0 {
        return Err(ApiError::bad_request("periodic tokens are not supported; give a ttl"));
    }
    let max = cx.state.max_ttl;
    let mut ttl = match ttl_field("ttl", &req.ttl)? {
        0 => cx.state.default_ttl,
        n => n,
    };
    if max != 0 && (ttl == 0 || ttl > max) {
        ttl = max;
    }
    let explicit = ttl_field("explicit_max_ttl", &req.explicit_max_ttl)?;
    if explicit != 0 && (ttl == 0 || ttl > explicit) {
        ttl = explicit;
    }
    // Renewals stop at the shorter of the two maximums (0 = none).
    let max_ttl_seconds = [max, explicit].into_iter().filter(|&m| m != 0).min().unwrap_or(0);
    let creator = &cx.caller().principal;
    // Never the creator's name: a token without one gets its own.
    let name = req
        .principal
        .or(req.display_name)
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_default();
    if name.len() > 256 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "the principal name must be at most 256 characters without control characters",
        ));
    }
    Ok(TokenSpec {
        principal: Principal {
            name,
            groups: req.policies.unwrap_or_else(|| creator.groups.clone()),
            attributes: req.meta.unwrap_or_default(),
        },
        ttl_seconds: ttl,
        max_ttl_seconds,
        bootstrap: false,
    })
}

/// A body that may be empty (`renew-self` without an increment).
fn parse_optional_json(body: &[u8]) -> Result<Target, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(Target::default())
    } else {
        wire::parse_json(body)
    }
}

/// Seconds left before `info` expires.
fn remaining(info: &TokenInfo) -> u64 {
    info.remaining_seconds(wire::now_ms() / 1000)
}

/// Vault's `auth` answer for a token made or renewed (`lease` seconds left).
fn auth_response(cx: &Ctx<'_>, token: &str, info: &TokenInfo, lease: u64) -> Response<Body> {
    let auth = json!({
        "client_token": token,
        "accessor": info.accessor,
        "policies": info.principal.groups,
        "token_policies": info.principal.groups,
        "identity_policies": null,
        "metadata": if info.principal.attributes.is_empty() { Value::Null } else { json!(info.principal.attributes) },
        "lease_duration": lease,
        "renewable": info.renewable(),
        "entity_id": "",
        "token_type": "service",
        "orphan": true,
        "mfa_requirement": null,
        "num_uses": 0,
    });
    let body = Zeroizing::new(
        wire::envelope(cx.request_id, Value::Null, auth, &[])
            .to_string()
            .into_bytes(),
    );
    wire::json_bytes(StatusCode::OK, wire::zeroizing_bytes(body))
}

fn lookup_response(cx: &Ctx<'_>, info: &TokenInfo, token: &str) -> Response<Body> {
    let now = wire::now_ms() / 1000;
    let data = json!({
        "accessor": info.accessor,
        "creation_time": info.created_unix,
        "creation_ttl": info.ttl_seconds,
        "display_name": info.principal.name,
        "entity_id": "",
        "expire_time": info.expires_unix.map(|e| wire::rfc3339_ms(e * 1000)),
        "explicit_max_ttl": info.max_expires_unix.map_or(0, |m| m.saturating_sub(info.created_unix)),
        "id": token,
        "issue_time": wire::rfc3339_ms(info.created_unix * 1000),
        "meta": if info.principal.attributes.is_empty() { Value::Null } else { json!(info.principal.attributes) },
        "num_uses": 0,
        "orphan": true,
        "path": "auth/token/create",
        "policies": info.principal.groups,
        "renewable": info.renewable(),
        "ttl": info.remaining_seconds(now),
        "type": "service",
    });
    let body = Zeroizing::new(
        wire::envelope(cx.request_id, data, Value::Null, &[])
            .to_string()
            .into_bytes(),
    );
    wire::json_bytes(StatusCode::OK, wire::zeroizing_bytes(body))
}
