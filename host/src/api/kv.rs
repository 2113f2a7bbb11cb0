//! The KV v2 API on every mount: `/v1/<mount>/{data,metadata,delete,undelete,destroy}/<path>`
//! and `/v1/<mount>/config`.
//!
//! Value model: a KV v2 secret is a JSON object; its JSON text is the
//! secret's bytes. A value written through the embedding API that is not a
//! JSON object reads back as `{"value": "<text>"}` (`{"value_base64": ...}`
//! when it is not UTF-8).
//!
//! Vault keeps `custom_metadata` per secret; Tresor's providers keep
//! metadata per version (and Cedar policies see it as the secret's tags).
//! So a write carries the latest version's metadata forward to the new
//! version (which is why a write needs `read` on the secret too), and
//! changing `custom_metadata` writes a new version with the same value and
//! the new metadata (see [`put_metadata`]).

use std::collections::BTreeSet;

use hyper::{HeaderMap, Response, StatusCode};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use super::error::ApiError;
use super::wire::{self, Body};
use super::{Ctx, Query};
use crate::access::{Update, WriteOptions, WriteReceipt};
use crate::error::Error;
use crate::secret::{Metadata, SecretBytes, SecretSettings, VersionInfo};

/// Vault's limits on custom_metadata.
const MAX_META_KEYS: usize = 64;
const MAX_META_KEY_BYTES: usize = 128;
const MAX_META_VALUE_BYTES: usize = 512;

/// Which KV v2 endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Section {
    Data,
    Metadata,
    Delete,
    Undelete,
    Destroy,
    /// `<mount>/config`: the mount's version settings.
    Config,
}

/// A KV v2 request: the mount, the endpoint, the path inside the mount.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct KvRoute {
    mount: String,
    section: Section,
    path: String,
}

impl KvRoute {
    /// `data/a/b` (after the mount) → the route; `None` for other endpoints.
    pub(super) fn parse(mount: &str, tail: &str) -> Option<KvRoute> {
        let (section, path) = tail.split_once('/').unwrap_or((tail, ""));
        let section = match section {
            "config" if path.is_empty() => Section::Config,
            "data" => Section::Data,
            "metadata" => Section::Metadata,
            "delete" => Section::Delete,
            "undelete" => Section::Undelete,
            "destroy" => Section::Destroy,
            _ => return None,
        };
        Some(KvRoute {
            mount: mount.to_string(),
            section,
            path: path.to_string(),
        })
    }

    pub(super) fn allow(&self) -> &'static str {
        match self.section {
            Section::Data => "GET, PUT, POST, PATCH, DELETE",
            Section::Metadata => "GET, LIST, PUT, POST, PATCH, DELETE",
            Section::Delete | Section::Undelete | Section::Destroy => "PUT, POST",
            Section::Config => "GET, PUT, POST",
        }
    }

    /// `mount/path`, as the access path takes it.
    fn full(&self) -> String {
        format!("{}/{}", self.mount, self.path)
    }
}

/// Answer a KV v2 request (the method is one [`KvRoute::allow`] lists).
pub(super) async fn handle(
    cx: &Ctx<'_>,
    route: KvRoute,
    method: &str,
    query: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    match (route.section, method) {
        (Section::Data, "GET") => read(cx, &route, query).await,
        (Section::Data, "PUT" | "POST") => write(cx, &route, body).await,
        (Section::Data, "PATCH") => patch(cx, &route, headers, body).await,
        (Section::Data, "DELETE") => delete_latest(cx, &route).await,
        (Section::Metadata, "LIST") => list(cx, &route).await,
        (Section::Metadata, "GET") => read_metadata(cx, &route).await,
        (Section::Metadata, "PUT" | "POST") => put_metadata(cx, &route, body, false).await,
        (Section::Metadata, "PATCH") => put_metadata(cx, &route, body, true).await,
        (Section::Metadata, "DELETE") => match cx.host().delete(cx.caller(), &route.full()).await {
            Ok(()) | Err(Error::NotFound(_)) => Ok(wire::no_content()),
            Err(e) => Err(e.into()),
        },
        (Section::Delete | Section::Undelete | Section::Destroy, _) => versions_op(cx, &route, body).await,
        (Section::Config, "GET") => read_config(cx, &route).await,
        (Section::Config, "PUT" | "POST") => write_config(cx, &route, body).await,
        _ => Err(ApiError::method_not_allowed(method, "this path", route.allow())),
    }
}

/// A provider version ("1", "2", ...) as Vault's integer version (0 when
/// the provider's versions are not numbers).
fn vault_version(v: &str) -> u64 {
    v.parse().unwrap_or(0)
}

fn custom_metadata(m: &Metadata) -> Value {
    if m.is_empty() {
        Value::Null
    } else {
        json!(m)
    }
}

/// Deletion time shown for a soft-deleted version whose provider does not
/// say when it was deleted: the epoch stands for "deleted, time unknown".
const UNKNOWN_DELETION_TIME: &str = "1970-01-01T00:00:00Z";

/// Vault's `deletion_time`: when the version was (or, with
/// `delete_version_after`, will be) deleted; empty for neither.
fn deletion_time(info: &VersionInfo) -> String {
    match (info.deletion_ms, info.deleted) {
        (0, true) => UNKNOWN_DELETION_TIME.to_string(),
        (0, false) => String::new(),
        (ms, _) => wire::rfc3339_ms(ms),
    }
}

fn version_metadata(info: &VersionInfo) -> Value {
    json!({
        "created_time": wire::rfc3339_ms(info.created_ms),
        "custom_metadata": custom_metadata(&info.metadata),
        "deletion_time": deletion_time(info),
        "destroyed": info.destroyed,
        "version": vault_version(&info.version),
    })
}

/// `GET data/<path>[?version=N]`, also `?version=current|previous|pending`
/// (a rotation's labels, see [`crate::rotation::Label`]).
async fn read(cx: &Ctx<'_>, route: &KvRoute, query: &Query) -> Result<Response<Body>, ApiError> {
    let version = match query.version.as_deref().map(str::trim) {
        None | Some("") | Some("0") => None,
        Some(label) if crate::rotation::Label::parse(label).is_some() => Some(label.to_string()),
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|_| {
                    ApiError::bad_request(format!(
                        "version `{}` is not a whole number",
                        super::error::printable(v)
                    ))
                })?
                .to_string(),
        ),
    };
    let secret = match cx.host().read(cx.caller(), &route.full(), version.as_deref()).await {
        Ok(secret) => secret,
        Err(Error::NotFound(message)) => return Err(unreadable_version(cx, route, version.as_deref(), message).await),
        Err(e) => return Err(e.into()),
    };
    let mut metadata = version_metadata(&VersionInfo {
        version: secret.version.clone(),
        created_ms: secret.created_ms,
        deleted: false,
        destroyed: false,
        deletion_ms: secret.deletion_ms,
        metadata: secret.metadata.clone(),
    });
    // A fallback chain's answer says which member had it.
    if secret.served_by != route.mount {
        metadata["served_by"] = Value::String(secret.served_by.clone());
    }
    let metadata = metadata.to_string();
    let value = value_as_object(&secret.value);
    drop(secret);
    let mut data = Zeroizing::new(Vec::with_capacity(value.len() + metadata.len() + 32));
    data.extend_from_slice(b"{\"data\":");
    data.extend_from_slice(&value);
    data.extend_from_slice(b",\"metadata\":");
    data.extend_from_slice(metadata.as_bytes());
    data.extend_from_slice(b"}");
    drop(value);
    let body = wire::envelope_raw(cx.request_id, &data, &[]);
    Ok(wire::json_bytes(StatusCode::OK, wire::zeroizing_bytes(body)))
}

/// Why a read found nothing, in Vault's shape: a version that exists but
/// is deleted or destroyed answers 404 with `data: null` and its metadata
/// (so `bao kv get` shows when it was deleted); anything else a bare 404.
async fn unreadable_version(cx: &Ctx<'_>, route: &KvRoute, version: Option<&str>, message: String) -> ApiError {
    let not_found = ApiError::not_found(message);
    let Ok(versions) = cx.host().versions(cx.caller(), &route.full()).await else {
        return not_found;
    };
    let info = match version {
        Some(v) => versions.iter().find(|info| info.version == v),
        None => versions.last(),
    };
    match info {
        Some(info) if info.deleted || info.destroyed => ApiError::bare_not_found().with_body(wire::envelope(
            cx.request_id,
            json!({ "data": null, "metadata": version_metadata(info) }),
            Value::Null,
            &[],
        )),
        _ => not_found,
    }
}

/// The JSON text of a value as a KV v2 object: itself when it is a JSON
/// object, else `{"value": "<text>"}` or `{"value_base64": "..."}`.
fn value_as_object(value: &SecretBytes) -> Zeroizing<Vec<u8>> {
    let bytes = value.expose();
    if is_json_object(bytes) {
        return Zeroizing::new(bytes.to_vec());
    }
    // Sized for the worst case (every byte escaped as \u00XX), so the
    // buffer never reallocates and leaves a copy behind.
    let mut out = Zeroizing::new(Vec::with_capacity(bytes.len() * 6 + 32));
    match value.expose_str() {
        Some(text) => {
            out.extend_from_slice(b"{\"value\":");
            serde_json::to_writer(&mut *out, text).expect("writing JSON to memory cannot fail");
        }
        None => {
            use base64::Engine as _;
            out.extend_from_slice(b"{\"value_base64\":\"");
            let mut b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(bytes));
            out.extend_from_slice(b64.as_bytes());
            zeroize::Zeroize::zeroize(&mut *b64);
            out.extend_from_slice(b"\"");
        }
    }
    out.extend_from_slice(b"}");
    out
}

fn is_json_object(bytes: &[u8]) -> bool {
    bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') && serde_json::from_slice::<&RawValue>(bytes).is_ok()
}

/// The body of a data write: `{"data": {...}, "options": {"cas": N}}`.
#[derive(Deserialize)]
struct WriteBody<'a> {
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    options: Option<Map<String, Value>>,
}

/// `options.cas` as the provider's expected version: 0 → must not exist.
fn cas_option(options: &Option<Map<String, Value>>) -> Result<Option<String>, ApiError> {
    let Some(cas) = options.as_ref().and_then(|o| o.get("cas")) else {
        return Ok(None);
    };
    let n = match cas {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Null => return Ok(None),
        _ => None,
    }
    .ok_or_else(|| ApiError::bad_request("options.cas must be a whole number (0: the secret must not exist yet)"))?;
    Ok(Some(if n == 0 { String::new() } else { n.to_string() }))
}

/// `PUT|POST data/<path>`: a new version.
async fn write(cx: &Ctx<'_>, route: &KvRoute, body: &[u8]) -> Result<Response<Body>, ApiError> {
    let parsed: WriteBody<'_> = serde_json::from_slice(body).map_err(wire::json_error)?;
    let data = parsed
        .data
        .ok_or_else(|| ApiError::bad_request("no data provided: send {\"data\": {...}}"))?;
    if !data.get().starts_with('{') {
        return Err(ApiError::bad_request(
            "`data` must be a JSON object of key/value pairs (KV v2)",
        ));
    }
    super::shape::check_data(data)?;
    let value = SecretBytes::new(data.get().as_bytes().to_vec());
    let cas = cas_option(&parsed.options)?;
    store(cx, route, &value, cas).await
}

/// Write `value` as a new version, honouring `cas`. The host carries the
/// secret's metadata (its `custom_metadata`, which policy sees as tags)
/// forward into the new version and decides on it; writers of one secret take
/// turns, so no concurrent metadata change is lost and no `read` permission is
/// needed.
async fn store(
    cx: &Ctx<'_>,
    route: &KvRoute,
    value: &SecretBytes,
    cas: Option<String>,
) -> Result<Response<Body>, ApiError> {
    let options = WriteOptions {
        metadata: Metadata::new(),
        expected_version: cas,
        inherit_metadata: true,
    };
    let receipt = cx
        .host()
        .write_receipt(cx.caller(), &route.full(), value, &options)
        .await?;
    Ok(written(cx, &receipt))
}

/// The answer to a data write: the new version's metadata.
fn written(cx: &Ctx<'_>, receipt: &WriteReceipt) -> Response<Body> {
    let data = json!({
        "created_time": wire::rfc3339_ms(wire::now_ms()),
        "custom_metadata": custom_metadata(&receipt.metadata),
        "deletion_time": "",
        "destroyed": false,
        "version": vault_version(&receipt.version),
    });
    wire::json(StatusCode::OK, &wire::envelope(cx.request_id, data, Value::Null, &[]))
}

/// An [`ApiError`] raised inside a host update, kept for the answer (the
/// host sees a plain refusal and writes nothing).
fn keep<T>(slot: &mut Option<ApiError>, result: Result<T, ApiError>) -> Result<T, Error> {
    result.map_err(|e| {
        let message = e.errors.join("; ");
        *slot = Some(e);
        Error::InvalidInput(message)
    })
}

/// `PATCH data/<path>` (JSON merge patch, RFC 7386): read the latest
/// version, merge, write a new version against it.
async fn patch(cx: &Ctx<'_>, route: &KvRoute, headers: &HeaderMap, body: &[u8]) -> Result<Response<Body>, ApiError> {
    let content_type = headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/merge-patch+json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "PATCH needs Content-Type: application/merge-patch+json",
        ));
    }
    let parsed: WriteBody<'_> = serde_json::from_slice(body).map_err(wire::json_error)?;
    let patch: Map<String, Value> = match parsed.data {
        Some(d) => {
            super::shape::check_data(d)?;
            serde_json::from_str(d.get())
                .map_err(|_| ApiError::bad_request("`data` must be a JSON object of key/value pairs (KV v2)"))?
        }
        None => return Err(ApiError::bad_request("no data provided: send {\"data\": {...}}")),
    };
    let cas = cas_option(&parsed.options)?;
    let mut refused = None;
    // Merged in the secret's turn: concurrent patches each see the last.
    let receipt = cx
        .host()
        .update(cx.caller(), &route.full(), |current| {
            if let Some(expected) = &cas {
                if *expected != current.version {
                    return Err(Error::Conflict(format!(
                        "current version of `{}` is {}, expected {}",
                        route.path,
                        current.version,
                        if expected.is_empty() { "none" } else { expected }
                    )));
                }
            }
            let merged = keep(&mut refused, merge_patch(&current.value, patch))?;
            Ok(Some(Update {
                value: merged,
                metadata: None,
            }))
        })
        .await;
    if let Some(e) = refused {
        return Err(e);
    }
    let Some(receipt) = receipt? else {
        return Err(Error::Internal("a patch wrote no version".into()).into());
    };
    Ok(written(cx, &receipt))
}

/// `value` (as a KV object) with `patch` merged in (RFC 7386 at the top
/// level: `null` removes a key).
fn merge_patch(value: &SecretBytes, patch: Map<String, Value>) -> Result<SecretBytes, ApiError> {
    let object = value_as_object(value);
    let mut merged: Map<String, Value> =
        serde_json::from_slice(&object).map_err(|_| ApiError::bad_request("the stored value is not a JSON object"))?;
    drop(object);
    for (k, v) in patch {
        if v.is_null() {
            merged.remove(&k);
        } else {
            merged.insert(k, v);
        }
    }
    let mut text = Zeroizing::new(Vec::new());
    serde_json::to_writer(&mut *text, &merged).expect("writing JSON to memory cannot fail");
    Ok(SecretBytes::new(std::mem::take(&mut *text)))
}

/// `DELETE data/<path>`: soft-delete the latest version.
async fn delete_latest(cx: &Ctx<'_>, route: &KvRoute) -> Result<Response<Body>, ApiError> {
    let full = route.full();
    let versions = cx.host().versions(cx.caller(), &full).await?;
    let Some(latest) = versions.last() else {
        return Err(ApiError::not_found(format!("no secret at `{}`", route.path)));
    };
    cx.host()
        .delete_versions(cx.caller(), &full, std::slice::from_ref(&latest.version), false)
        .await?;
    Ok(wire::no_content())
}

/// `POST delete|undelete|destroy/<path>` with `{"versions": [1, 2]}`.
async fn versions_op(cx: &Ctx<'_>, route: &KvRoute, body: &[u8]) -> Result<Response<Body>, ApiError> {
    #[derive(Deserialize)]
    struct Versions {
        #[serde(default)]
        versions: Vec<Value>,
    }
    let parsed: Versions = wire::parse_json(body)?;
    let versions = parsed
        .versions
        .iter()
        .map(|v| match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        })
        .map(|n| n.filter(|n| *n > 0).map(|n| n.to_string()))
        .collect::<Option<Vec<String>>>()
        .ok_or_else(|| ApiError::bad_request("versions must be positive whole numbers"))?;
    if versions.is_empty() {
        return Err(ApiError::bad_request(
            "no versions provided: send {\"versions\": [1, 2]}",
        ));
    }
    let full = route.full();
    match route.section {
        Section::Undelete => cx.host().undelete_versions(cx.caller(), &full, &versions).await?,
        Section::Destroy => cx.host().delete_versions(cx.caller(), &full, &versions, true).await?,
        _ => cx.host().delete_versions(cx.caller(), &full, &versions, false).await?,
    }
    Ok(wire::no_content())
}

/// `LIST metadata/<prefix>`: one level, like Vault: folders end in `/`.
async fn list(cx: &Ctx<'_>, route: &KvRoute) -> Result<Response<Body>, ApiError> {
    let prefix = match route.path.as_str() {
        "" => String::new(),
        p if p.ends_with('/') => p.to_string(),
        p => format!("{p}/"),
    };
    let paths = cx
        .host()
        .list(cx.caller(), &format!("{}/{prefix}", route.mount))
        .await?;
    let keys: BTreeSet<String> = paths
        .iter()
        .filter_map(|p| p.strip_prefix(&prefix))
        .filter(|rest| !rest.is_empty())
        .map(|rest| match rest.split_once('/') {
            Some((folder, _)) => format!("{folder}/"),
            None => rest.to_string(),
        })
        .collect();
    if keys.is_empty() {
        // Vault answers an empty listing with a bare 404.
        return Err(ApiError::bare_not_found());
    }
    Ok(wire::json(
        StatusCode::OK,
        &wire::envelope(cx.request_id, json!({ "keys": keys }), Value::Null, &[]),
    ))
}

/// `GET metadata/<path>`: the versions, the settings and custom_metadata.
async fn read_metadata(cx: &Ctx<'_>, route: &KvRoute) -> Result<Response<Body>, ApiError> {
    let full = route.full();
    let versions = match cx.host().versions(cx.caller(), &full).await {
        Ok(versions) => versions,
        // Settings written before any version (Vault keeps such metadata).
        Err(Error::NotFound(_)) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let settings = match cx.host().secret_settings(cx.caller(), &full).await {
        Ok(settings) => settings,
        Err(Error::NotFound(_)) if versions.is_empty() => {
            return Err(ApiError::not_found(format!("no secret at `{}`", route.path)))
        }
        Err(Error::NotFound(_) | Error::Unsupported(_)) => SecretSettings::default(),
        Err(e) => return Err(e.into()),
    };
    let table: Map<String, Value> = versions
        .iter()
        .map(|v| {
            (
                vault_version(&v.version).to_string(),
                json!({
                    "created_time": wire::rfc3339_ms(v.created_ms),
                    "deletion_time": deletion_time(v),
                    "destroyed": v.destroyed,
                }),
            )
        })
        .collect();
    let current = versions.last().map_or(0, |v| vault_version(&v.version));
    let first = versions.first().map_or(0, |v| vault_version(&v.version));
    let data = json!({
        "cas_required": settings.cas_required,
        "created_time": versions.first().map(|v| wire::rfc3339_ms(v.created_ms)).unwrap_or_default(),
        "current_version": current,
        "custom_metadata": versions.last().map_or(Value::Null, |v| custom_metadata(&v.metadata)),
        "delete_version_after": go_duration(settings.delete_version_after_ms),
        "max_versions": settings.max_versions,
        "oldest_version": oldest_version(cx, route, &settings, first, current).await,
        "updated_time": versions.last().map(|v| wire::rfc3339_ms(v.created_ms)).unwrap_or_default(),
        "versions": table,
    });
    Ok(wire::json(
        StatusCode::OK,
        &wire::envelope(cx.request_id, data, Value::Null, &[]),
    ))
}

/// Vault's `oldest_version`: the oldest version kept once versions were
/// removed (or the window of `max_versions` is full), else 0.
async fn oldest_version(cx: &Ctx<'_>, route: &KvRoute, settings: &SecretSettings, first: u64, current: u64) -> u64 {
    if first > 1 {
        return first;
    }
    let mount_max = cx
        .host()
        .stored_mount_settings(&route.mount)
        .await
        .map_or(0, |m| m.max_versions);
    let window = match settings.max_versions.max(mount_max) {
        0 => DEFAULT_MAX_VERSIONS,
        n => u64::from(n),
    };
    if current >= window && current > 0 {
        first
    } else {
        0
    }
}

/// Vault keeps this many versions when neither the secret nor the mount says.
const DEFAULT_MAX_VERSIONS: u64 = 10;

/// The settings fields of a metadata or config write, each optional (only
/// those sent change), in the forms Vault clients send them: numbers or
/// numeric strings, booleans or `"true"`, durations as `"1h30m"` or seconds.
#[derive(Deserialize)]
struct SettingsBody {
    #[serde(default)]
    max_versions: Option<Value>,
    #[serde(default)]
    cas_required: Option<Value>,
    #[serde(default)]
    delete_version_after: Option<Value>,
}

impl SettingsBody {
    fn is_empty(&self) -> bool {
        self.max_versions.is_none() && self.cas_required.is_none() && self.delete_version_after.is_none()
    }

    /// `current` with the sent fields applied.
    fn apply(&self, mut current: SecretSettings) -> Result<SecretSettings, ApiError> {
        if let Some(v) = &self.max_versions {
            let n = match v {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.trim().parse::<u64>().ok(),
                _ => None,
            };
            current.max_versions = n.and_then(|n| u32::try_from(n).ok()).ok_or_else(|| {
                ApiError::bad_request("max_versions must be a whole number of versions (0: the default)")
            })?;
        }
        if let Some(v) = &self.cas_required {
            current.cas_required = match v {
                Value::Bool(b) => *b,
                Value::String(s) if s.eq_ignore_ascii_case("true") || s == "1" => true,
                Value::String(s) if s.eq_ignore_ascii_case("false") || s == "0" || s.is_empty() => false,
                _ => return Err(ApiError::bad_request("cas_required must be true or false")),
            };
        }
        if let Some(v) = &self.delete_version_after {
            current.delete_version_after_ms = parse_duration_ms(v)?;
        }
        Ok(current)
    }
}

/// A Vault duration: seconds as a number or numeric string, or Go's
/// `1h30m`, `10m0s`, `500ms`; 0 turns the setting off.
fn parse_duration_ms(v: &Value) -> Result<u64, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "delete_version_after must be a duration such as \"30s\", \"10m\" or \"1h30m\", \
             or a whole number of seconds (0 turns it off)",
        )
    };
    let seconds = |n: u64| n.checked_mul(1000).ok_or_else(bad);
    match v {
        Value::Null => Ok(0),
        Value::Number(n) => n.as_u64().map_or_else(|| Err(bad()), seconds),
        Value::String(s) => {
            let s = s.trim();
            if s.is_empty() {
                return Ok(0);
            }
            if let Ok(n) = s.parse::<u64>() {
                return seconds(n);
            }
            let d = humantime::parse_duration(s).map_err(|_| bad())?;
            u64::try_from(d.as_millis()).map_err(|_| bad())
        }
        _ => Err(bad()),
    }
}

/// Milliseconds as Go prints a duration: `0s`, `500ms`, `30s`, `10m0s`,
/// `1h0m0s`, `1.5s`.
fn go_duration(ms: u64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (secs, frac) = (ms / 1000, ms % 1000);
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let seconds = if frac == 0 {
        format!("{s}s")
    } else {
        format!("{s}.{}s", format!("{frac:03}").trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

/// `GET <mount>/config`: the mount's version settings.
async fn read_config(cx: &Ctx<'_>, route: &KvRoute) -> Result<Response<Body>, ApiError> {
    let settings = cx.host().mount_settings(cx.caller(), &route.mount).await?;
    let data = json!({
        "cas_required": settings.cas_required,
        "delete_version_after": go_duration(settings.delete_version_after_ms),
        "max_versions": settings.max_versions,
    });
    Ok(wire::json(
        StatusCode::OK,
        &wire::envelope(cx.request_id, data, Value::Null, &[]),
    ))
}

/// `PUT|POST <mount>/config`: change the mount's version settings (only
/// the fields sent).
async fn write_config(cx: &Ctx<'_>, route: &KvRoute, body: &[u8]) -> Result<Response<Body>, ApiError> {
    let parsed: SettingsBody = wire::parse_json(body)?;
    let mut refused = None;
    let result = cx
        .host()
        .update_mount_settings(cx.caller(), &route.mount, |current| {
            keep(&mut refused, parsed.apply(current))
        })
        .await;
    if let Some(e) = refused {
        return Err(e);
    }
    result?;
    Ok(wire::no_content())
}

/// `PUT|POST|PATCH metadata/<path>`.
///
/// `max_versions`, `cas_required` and `delete_version_after` change the
/// secret's settings (only the fields sent; the secret need not exist yet).
/// `custom_metadata` is replaced by PUT/POST and merged by PATCH (`null`
/// removing a key). Tresor keeps metadata with each version, so a change
/// of `custom_metadata` writes a new version holding the latest version's
/// value and the new metadata (older versions keep theirs): nothing is
/// lost, but the version number moves on. For that, the secret must exist
/// and its latest version must be readable (not deleted or destroyed).
async fn put_metadata(cx: &Ctx<'_>, route: &KvRoute, body: &[u8], merge: bool) -> Result<Response<Body>, ApiError> {
    #[derive(Deserialize)]
    struct MetaBody {
        #[serde(flatten)]
        settings: SettingsBody,
        custom_metadata: Option<Map<String, Value>>,
    }
    let parsed: MetaBody = wire::parse_json(body)?;
    let full = route.full();
    let mut refused = None;
    if !parsed.settings.is_empty() {
        let result = cx
            .host()
            .update_secret_settings(cx.caller(), &full, |current| {
                keep(&mut refused, parsed.settings.apply(current))
            })
            .await;
        if let Some(e) = refused.take() {
            return Err(e);
        }
        result?;
    }
    let Some(requested) = parsed.custom_metadata else {
        return Ok(wire::no_content());
    };
    let result = cx
        .host()
        .update(cx.caller(), &full, |latest| {
            let wanted = keep(&mut refused, wanted_metadata(&latest.metadata, &requested, merge))?;
            Ok((wanted != latest.metadata).then(|| Update {
                value: latest.value.clone(),
                metadata: Some(wanted),
            }))
        })
        .await;
    if let Some(e) = refused {
        return Err(e);
    }
    match result {
        Ok(_) => Ok(wire::no_content()),
        Err(Error::NotFound(_)) => Err(ApiError::not_found(format!(
            "no readable version of `{}`: Tresor keeps custom_metadata with the versions, so write a \
             version first (or undelete the latest)",
            route.path
        ))),
        Err(e) => Err(e.into()),
    }
}

/// The custom metadata `requested` makes of `latest`'s: replaced, or with
/// `merge` merged (`null` removing a key).
fn wanted_metadata(latest: &Metadata, requested: &Map<String, Value>, merge: bool) -> Result<Metadata, ApiError> {
    let mut wanted = if merge { latest.clone() } else { Metadata::new() };
    for (k, v) in requested {
        match v {
            Value::String(s) => {
                wanted.insert(k.clone(), s.clone());
            }
            Value::Null if merge => {
                wanted.remove(k);
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "custom_metadata `{}` must be a string",
                    super::error::printable(k)
                )))
            }
        }
    }
    check_custom_metadata(&wanted)?;
    Ok(wanted)
}

fn check_custom_metadata(m: &Metadata) -> Result<(), ApiError> {
    if m.len() > MAX_META_KEYS {
        return Err(ApiError::bad_request(format!(
            "custom_metadata has more than {MAX_META_KEYS} keys"
        )));
    }
    for (k, v) in m {
        if k.is_empty() || k.len() > MAX_META_KEY_BYTES || k.chars().any(char::is_control) {
            return Err(ApiError::bad_request(format!(
                "custom_metadata keys must be 1 to {MAX_META_KEY_BYTES} bytes without control characters"
            )));
        }
        if v.len() > MAX_META_VALUE_BYTES {
            return Err(ApiError::bad_request(format!(
                "custom_metadata values must be at most {MAX_META_VALUE_BYTES} bytes"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let r = KvRoute::parse("secret", "data/a/b").unwrap();
        assert_eq!(
            (r.section, r.path.as_str(), r.full()),
            (Section::Data, "a/b", "secret/a/b".to_string())
        );
        assert_eq!(KvRoute::parse("secret", "metadata").unwrap().path, "");
        assert_eq!(KvRoute::parse("secret", "config").unwrap().section, Section::Config);
        assert!(KvRoute::parse("secret", "config/x").is_none());
        assert!(KvRoute::parse("secret", "").is_none());
    }

    #[test]
    fn values_as_objects() {
        let v = |b: &[u8]| String::from_utf8(value_as_object(&SecretBytes::new(b.to_vec())).to_vec()).unwrap();
        assert_eq!(v(br#" {"a":"b"}"#), r#" {"a":"b"}"#);
        assert_eq!(v(b"plain \"text\""), r#"{"value":"plain \"text\""}"#);
        assert_eq!(v(b"[1]"), r#"{"value":"[1]"}"#);
        assert_eq!(v(b"{broken"), r#"{"value":"{broken"}"#);
        assert_eq!(v(&[0xff, 0x00]), r#"{"value_base64":"/wA="}"#);
    }

    #[test]
    fn cas_values() {
        let o = |v: Value| Some(v.as_object().unwrap().clone());
        assert_eq!(cas_option(&None).unwrap(), None);
        assert_eq!(cas_option(&o(json!({"cas": 0}))).unwrap(), Some(String::new()));
        assert_eq!(cas_option(&o(json!({"cas": "3"}))).unwrap(), Some("3".into()));
        assert!(cas_option(&o(json!({"cas": -1}))).is_err());
        assert!(cas_option(&o(json!({"cas": true}))).is_err());
    }

    #[test]
    fn durations_read_and_print_as_vault_does() {
        for (sent, ms) in [
            (json!(30), 30_000),
            (json!("30"), 30_000),
            (json!("30s"), 30_000),
            (json!("10m"), 600_000),
            (json!("1h30m"), 5_400_000),
            (json!("1h0m0s"), 3_600_000),
            (json!("500ms"), 500),
            (json!(""), 0),
            (json!(0), 0),
        ] {
            assert_eq!(parse_duration_ms(&sent).unwrap(), ms, "{sent}");
        }
        for bad in [json!(-5), json!("banana"), json!(true), json!("-1s")] {
            assert!(parse_duration_ms(&bad).is_err(), "{bad}");
        }
        // As OpenBao 2.7 prints them.
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(2_000), "2s");
        assert_eq!(go_duration(30_000), "30s");
        assert_eq!(go_duration(60_000), "1m0s");
        assert_eq!(go_duration(600_000), "10m0s");
        assert_eq!(go_duration(3_600_000), "1h0m0s");
        assert_eq!(go_duration(5_430_000), "1h30m30s");
        assert_eq!(go_duration(1_500), "1.5s");
        assert_eq!(go_duration(500), "500ms");
    }

    #[test]
    fn settings_bodies_change_only_what_they_send() {
        let body = |v: Value| -> SettingsBody { serde_json::from_value(v).unwrap() };
        let current = SecretSettings {
            max_versions: 5,
            cas_required: true,
            delete_version_after_ms: 1000,
        };
        assert_eq!(body(json!({})).apply(current).unwrap(), current);
        let changed = body(json!({"max_versions": "3", "cas_required": "false"}))
            .apply(current)
            .unwrap();
        assert_eq!(
            (
                changed.max_versions,
                changed.cas_required,
                changed.delete_version_after_ms
            ),
            (3, false, 1000)
        );
        assert!(body(json!({"max_versions": "x"})).apply(current).is_err());
        assert!(body(json!({"max_versions": -1})).apply(current).is_err());
        assert!(body(json!({"cas_required": "maybe"})).apply(current).is_err());
    }
}
