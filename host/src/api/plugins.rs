//! `/v1/sys/plugins/...`: the plugin catalog and live configuration
//! reloads, in Vault's shapes where they fit.
//!
//! - `GET sys/plugins/catalog`: every plugin the host runs (`detailed`:
//!   name, kind, language, sha256, mounts and their instances).
//! - `PUT|POST sys/plugins/reload/backend`: read the configuration file
//!   again and apply it (see [`crate::reload`]); `mounts` or `plugin`
//!   (Vault's parameters) name mounts to start anew even when unchanged.

use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::wire::{self, Body};
use super::Ctx;

/// The routes under `sys/plugins/`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum PluginsRoute {
    Catalog,
    Reload,
}

impl PluginsRoute {
    /// The route of `tail` (after `sys/plugins/`).
    pub(super) fn parse(tail: &str) -> Option<PluginsRoute> {
        match tail {
            "catalog" => Some(PluginsRoute::Catalog),
            "reload/backend" => Some(PluginsRoute::Reload),
            _ => None,
        }
    }

    /// The methods the route accepts.
    pub(super) fn allow(&self) -> &'static str {
        match self {
            PluginsRoute::Catalog => "GET",
            PluginsRoute::Reload => "PUT, POST",
        }
    }
}

/// The body of a reload: Vault's `sys/plugins/reload/backend` parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReloadBody {
    /// Mounts to start anew even when their configuration is unchanged.
    #[serde(default)]
    mounts: Vec<String>,
    /// Start anew every mount running this plugin.
    #[serde(default)]
    plugin: Option<String>,
    /// Vault's cluster-wide reload; Tresor reloads the host asked only.
    #[serde(default)]
    scope: Option<String>,
}

pub(super) async fn handle(cx: &Ctx<'_>, route: PluginsRoute, body: &[u8]) -> Result<Response<Body>, ApiError> {
    match route {
        PluginsRoute::Catalog => catalog(cx).await,
        PluginsRoute::Reload => reload(cx, body).await,
    }
}

async fn catalog(cx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let entries = cx.host().catalog(cx.caller()).await?;
    let mut by_kind = serde_json::Map::new();
    for e in &entries {
        let names = by_kind.entry(e.kind).or_insert_with(|| json!([]));
        if let Value::Array(names) = names {
            names.push(json!(e.name));
        }
    }
    let mut data = Value::Object(by_kind);
    data["detailed"] =
        serde_json::to_value(&entries).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(wire::json(
        StatusCode::OK,
        &wire::envelope(cx.request_id, data, Value::Null, &[]),
    ))
}

async fn reload(cx: &Ctx<'_>, body: &[u8]) -> Result<Response<Body>, ApiError> {
    let asked: ReloadBody = wire::parse_json(body)?;
    if asked.scope.as_deref().is_some_and(|s| !s.is_empty() && s != "local") {
        return Err(ApiError::bad_request(
            "scope: Tresor reloads the host you ask; send the reload to every host (or SIGHUP each) to change them all",
        ));
    }
    let Some(source) = &cx.state.config_source else {
        return Err(ApiError::bad_request(
            "this server was started without a configuration it can read again; start it with --config FILE to reload",
        ));
    };
    let config = source().map_err(|e| ApiError::bad_request(format!("reading the configuration again: {e}")))?;
    let mut restart = asked.mounts.clone();
    if let Some(plugin) = &asked.plugin {
        let using: Vec<String> = cx
            .host()
            .mounts()
            .into_iter()
            .filter(|(_, p, _)| p == plugin)
            .map(|(m, _, _)| m)
            .collect();
        if using.is_empty() {
            return Err(ApiError::bad_request(format!(
                "no mount runs a plugin named `{plugin}`"
            )));
        }
        restart.extend(using);
    }
    let report = cx.host().reload(cx.caller(), config, &restart).await?;
    let mut data =
        serde_json::to_value(&report).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    data["reload_id"] = json!(cx.request_id);
    let warnings: Vec<String> = report
        .needs_restart
        .iter()
        .map(|s| format!("`{s}` changed; it takes effect when the server is started again"))
        .chain(
            report
                .policies_refused
                .iter()
                .map(|why| format!("the policy files were refused: {why}")),
        )
        .collect();
    Ok(wire::json(
        StatusCode::OK,
        &wire::envelope(cx.request_id, data, Value::Null, &warnings),
    ))
}
