//! A Tresor provider for Google Cloud Secret Manager, over its REST API v1.
//!
//! The mount must grant the plugin network access to the API's `host:port`
//! (`grants.network`, `secretmanager.googleapis.com:443`) and, with a
//! service account, to its token endpoint (`oauth2.googleapis.com:443`)
//! and the clock (`grants.clock = true`: JWTs carry the time).
//!
//! Mount configuration:
//!
//! | key                    | meaning                                                                 |
//! |------------------------|-------------------------------------------------------------------------|
//! | `project`              | the project id or number (default: the key's `project_id`)             |
//! | `access_token`         | an OAuth 2.0 access token, used as is; or:                             |
//! | `service_account_json` | the JSON key file of a service account (its whole text)                |
//! | `token_uri`            | where the service account's JWT is exchanged (default: the key's `token_uri`, else `https://oauth2.googleapis.com/token`) |
//! | `endpoint`             | the API's base URL (default `https://secretmanager.googleapis.com`)    |
//! | `timeout_ms`           | connect and first-byte timeout of each request (default 3000)          |
//!
//! Any other key is refused when the mount starts, naming it.
//!
//! Give exactly one of `access_token` or `service_account_json`. With a
//! service account, the plugin signs an RS256 JWT (`iss` the account,
//! `scope` cloud-platform, `aud` `https://oauth2.googleapis.com/token`) and
//! exchanges it for an access token, cached in the instance until a minute
//! before it expires, and renewed at once when the API answers 401.
//!
//! Names: Secret Manager ids are `[A-Za-z0-9_-]{1,255}`, so paths are
//! mapped reversibly with [`tresor_plugin_sdk::names`], `_` standing for
//! `/`: `apps/db-password` is the secret `apps_db-password`; any byte other
//! than letters, digits and `-` is escaped as `__` + two hex digits
//! (`apps/db_password` is `apps_db__5fpassword`). Secrets whose ids are not
//! such an encoding (made by other tools) are not listed.
//!
//! Versions are Secret Manager's version numbers (`"1"`, `"2"`, ...); `get`
//! without a version reads `latest` (the newest version, even when it is
//! disabled or destroyed: then `not-found`). `put` adds a version, creating
//! the secret with automatic replication the first time. There is no
//! check-and-set. `delete-versions` disables versions (a soft delete that
//! `undelete-versions` reverts by enabling them) or, with `destroy`,
//! destroys them. `delete` deletes the secret with all its versions.
//!
//! Metadata is the secret's labels: Secret Manager keeps labels per secret,
//! not per version, so every version reports the secret's current labels,
//! and `put` replaces them with the given pairs (before adding the version,
//! so tightened labels protect the new value from its first moment). Label
//! keys are 1–63 lower-case letters, digits, `_` and `-`, starting with a
//! letter; values are at most 63 of the same characters; at most 64
//! labels. Other metadata is refused with `invalid-input`.
//!
//! `get` reports `created-ms` 0 (the access call does not return it;
//! `versions` has every version's creation time). Values are bytes, up to
//! Secret Manager's 64 KiB, sent with a CRC32C the API checks; the CRC32C
//! of values read is checked when the API returns one.

pub mod api;
pub mod auth;

use std::collections::BTreeMap;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use tresor_plugin_sdk::names::NameCodec;
use tresor_plugin_sdk::{export_provider, http, Capabilities, Config, Error, Metadata, Provider, Secret, VersionInfo};

use crate::api::{clip, crc32c, last_segment, rfc3339_ms, Answer, Client};
use crate::auth::{clock_is_real, clock_not_granted, Auth, Credentials, ServiceAccount};

/// The public API.
pub const DEFAULT_ENDPOINT: &str = "https://secretmanager.googleapis.com";
/// Secret Manager's payload limit.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Secret Manager's label limits.
const MAX_LABELS: usize = 64;
const MAX_LABEL_CHARS: usize = 63;
/// The mount configuration keys this plugin reads (see the crate docs).
const CONFIG_KEYS: &[&str] = &[
    "project",
    "access_token",
    "service_account_json",
    "token_uri",
    "endpoint",
    "timeout_ms",
];

/// Tresor paths as Secret Manager ids: see the crate docs.
pub const NAMES: NameCodec = NameCodec {
    separator: b'_',
    keep: |b| b.is_ascii_alphanumeric() || b == b'-',
    max_len: 255,
    case_insensitive: false,
    what: "Secret Manager secret id",
};

/// The GCP Secret Manager provider.
struct GcpProvider {
    client: Client,
}

impl Provider for GcpProvider {
    const NAME: &'static str = "gcp";

    fn configure(config: Config) -> Result<Self, Error> {
        config.check_keys(CONFIG_KEYS)?;
        let endpoint = base_url(config.get("endpoint").unwrap_or(DEFAULT_ENDPOINT), "endpoint")?;
        let timeout = match config.parse::<u64>("timeout_ms", "a whole number of milliseconds")? {
            Some(0) => {
                return Err(Error::invalid_input(
                    "config key `timeout_ms` must be positive: fix it in the mount's config",
                ))
            }
            Some(ms) => Duration::from_millis(ms),
            None => http::DEFAULT_TIMEOUT,
        };
        let nonempty = |key: &str| config.get(key).map(str::trim).filter(|v| !v.is_empty());
        let (credentials, key_project) = match (nonempty("access_token"), nonempty("service_account_json")) {
            (Some(token), None) => (Credentials::Static(token.to_owned()), None),
            (None, Some(json)) => {
                let mut account = ServiceAccount::from_json(json)?;
                if let Some(uri) = nonempty("token_uri") {
                    account.token_uri = uri.to_owned();
                }
                if !(account.token_uri.starts_with("https://") || account.token_uri.starts_with("http://")) {
                    return Err(Error::invalid_input(
                        "the token endpoint (config key `token_uri`, or the key's `token_uri`) must be an \
                         http:// or https:// URL: fix it in the mount's config",
                    ));
                }
                if !clock_is_real() {
                    return Err(clock_not_granted());
                }
                let project = account.project_id.clone();
                (Credentials::ServiceAccount(Box::new(account)), project)
            }
            _ => {
                return Err(Error::invalid_input(
                    "the gcp plugin needs credentials: set exactly one of config keys `access_token` or \
                     `service_account_json` in the mount's config",
                ))
            }
        };
        let project = nonempty("project").map(str::to_owned).or(key_project).ok_or_else(|| {
            Error::invalid_input(
                "missing config key `project`: set it to the Google Cloud project id holding the secrets",
            )
        })?;
        if !project
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'_'))
        {
            return Err(Error::invalid_input(
                "config key `project` must be a project id (`my-project`) or number: fix it in the mount's config",
            ));
        }
        Ok(GcpProvider {
            client: Client {
                endpoint,
                project,
                auth: Auth::new(credentials, timeout),
                timeout,
            },
        })
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            check_and_set: false,
            ..Capabilities::ALL
        }
    }

    fn get(&mut self, path: &str, version: Option<&str>) -> Result<Secret, Error> {
        let id = NAMES.encode(path)?;
        let wanted = match version {
            None => "latest",
            Some(v) if is_version_number(v) || v == "latest" => v,
            Some(v) => return Err(no_version(path, v)),
        };
        let what = format!("reading `{path}` from Secret Manager");
        let url = format!("{}/versions/{wanted}:access", self.client.secret_url(&id));
        let answer = self.client.call("GET", &url, None, true, &what)?;
        match answer.status {
            200 => {}
            404 => {
                return Err(match version {
                    Some(v) if self.labels(&id, path)?.is_some() => no_version(path, v),
                    _ => no_secret(path),
                })
            }
            400 if answer.code() == "FAILED_PRECONDITION" => return Err(unreadable(&what, &answer)),
            _ => return Err(answer.error(&what)),
        }
        let number = answer
            .body
            .get("name")
            .and_then(Value::as_str)
            .map(last_segment)
            .filter(|n| is_version_number(n))
            .ok_or_else(|| malformed(&what, "name"))?
            .to_owned();
        let payload = answer.body.get("payload").unwrap_or(&Value::Null);
        let value = match payload.get("data") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(data)) => STANDARD.decode(data).map_err(|_| malformed(&what, "payload.data"))?,
            Some(_) => return Err(malformed(&what, "payload.data")),
        };
        if let Some(expected) = payload.get("dataCrc32c").and_then(as_u64) {
            if u64::from(crc32c(&value)) != expected {
                return Err(Error::unavailable(format!(
                    "{what}: the value arrived corrupted (its CRC32C does not match); retry"
                )));
            }
        }
        let labels = self.labels(&id, path)?.ok_or_else(|| no_secret(path))?;
        Ok(Secret {
            value,
            version: number,
            created_ms: 0,
            metadata: labels.into_iter().collect(),
            deletion_ms: 0,
        })
    }

    fn put(
        &mut self,
        path: &str,
        value: Vec<u8>,
        metadata: Metadata,
        expected_version: Option<&str>,
    ) -> Result<String, Error> {
        if expected_version.is_some() {
            return Err(Error::unsupported(
                "check-and-set is not supported by the gcp plugin: Secret Manager cannot add a version conditionally",
            ));
        }
        let id = NAMES.encode(path)?;
        if value.len() > MAX_VALUE_BYTES {
            return Err(Error::invalid_input(format!(
                "the value is {} bytes: Secret Manager stores at most {MAX_VALUE_BYTES} bytes per version",
                value.len()
            )));
        }
        let wanted = labels_of(metadata)?;
        let what = format!("writing `{path}` to Secret Manager");

        // Labels first, so tightened labels protect the new value from the start.
        let mut restore = None;
        match self.labels(&id, path)? {
            None => self.create(&id, path, &wanted)?,
            Some(current) if current != wanted => {
                self.set_labels(&id, path, &wanted)?;
                restore = Some(current);
            }
            Some(_) => {}
        }

        let body = json!({
            "payload": { "data": STANDARD.encode(&value), "dataCrc32c": crc32c(&value).to_string() }
        });
        let url = format!("{}:addVersion", self.client.secret_url(&id));
        // Not retried: a second attempt after a lost answer would add a second version.
        let added = self
            .client
            .call("POST", &url, Some(&body), false, &what)
            .and_then(|answer| match answer.status {
                200 => Ok(answer),
                404 => Err(Error::conflict(format!(
                    "{what}: the secret was deleted while the version was being added; retry"
                ))),
                _ => Err(answer.error(&what)),
            });
        let answer = match added {
            Ok(answer) => answer,
            Err(e) => {
                if let Some(previous) = restore {
                    // Best effort: put the old labels back.
                    let _ = self.set_labels(&id, path, &previous);
                }
                return Err(e);
            }
        };
        answer
            .body
            .get("name")
            .and_then(Value::as_str)
            .map(last_segment)
            .filter(|n| is_version_number(n))
            .map(str::to_owned)
            .ok_or_else(|| malformed(&what, "name"))
    }

    fn delete(&mut self, path: &str) -> Result<(), Error> {
        let id = NAMES.encode(path)?;
        let what = format!("deleting `{path}` from Secret Manager");
        let answer = self
            .client
            .call("DELETE", &self.client.secret_url(&id), None, true, &what)?;
        match answer.status {
            200 | 204 => Ok(()),
            404 => Err(no_secret(path)),
            _ => Err(answer.error(&what)),
        }
    }

    fn delete_versions(&mut self, path: &str, versions: &[String], destroy: bool) -> Result<(), Error> {
        let action = if destroy { "destroy" } else { "disable" };
        self.change_versions(path, versions, action)
    }

    fn undelete_versions(&mut self, path: &str, versions: &[String]) -> Result<(), Error> {
        self.change_versions(path, versions, "enable")
    }

    fn list(&mut self, prefix: &str) -> Result<Vec<String>, Error> {
        let what = format!("listing `{prefix}` in Secret Manager");
        let url = self.client.secrets_url();
        let secrets = self
            .client
            .list_all(&url, "secrets", &what)?
            .ok_or_else(|| Error::not_found(format!("{what}: project `{}` not found", self.client.project)))?;
        let mut paths: Vec<String> = secrets
            .iter()
            .filter_map(|s| s.get("name").and_then(Value::as_str))
            .filter_map(|name| NAMES.decode(last_segment(name)))
            .filter(|path| path.starts_with(prefix))
            .collect();
        paths.sort();
        paths.dedup();
        Ok(paths)
    }

    fn versions(&mut self, path: &str) -> Result<Vec<VersionInfo>, Error> {
        let id = NAMES.encode(path)?;
        let labels: Metadata = self
            .labels(&id, path)?
            .ok_or_else(|| no_secret(path))?
            .into_iter()
            .collect();
        let what = format!("listing the versions of `{path}` in Secret Manager");
        let url = format!("{}/versions", self.client.secret_url(&id));
        let listed = self
            .client
            .list_all(&url, "versions", &what)?
            .ok_or_else(|| no_secret(path))?;
        let mut versions: Vec<(u64, VersionInfo)> = listed
            .iter()
            .filter_map(|v| {
                let number = last_segment(v.get("name")?.as_str()?);
                let state = v.get("state").and_then(Value::as_str).unwrap_or("ENABLED");
                Some((
                    number.parse().ok()?,
                    VersionInfo {
                        version: number.to_owned(),
                        created_ms: v.get("createTime").and_then(Value::as_str).map_or(0, rfc3339_ms),
                        deleted: state == "DISABLED",
                        destroyed: state == "DESTROYED",
                        metadata: labels.clone(),
                        deletion_ms: 0,
                    },
                ))
            })
            .collect();
        versions.sort_by_key(|(n, _)| *n);
        Ok(versions.into_iter().map(|(_, info)| info).collect())
    }
}

impl GcpProvider {
    /// The secret's labels, or `None` when it does not exist.
    fn labels(&mut self, id: &str, path: &str) -> Result<Option<BTreeMap<String, String>>, Error> {
        let what = format!("reading the labels of `{path}` from Secret Manager");
        let answer = self
            .client
            .call("GET", &self.client.secret_url(id), None, true, &what)?;
        match answer.status {
            200 => Ok(Some(
                answer
                    .body
                    .get("labels")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect(),
            )),
            404 => Ok(None),
            _ => Err(answer.error(&what)),
        }
    }

    /// Creates the secret (automatic replication) with `labels`; one
    /// created meanwhile by someone else just gets the labels.
    fn create(&mut self, id: &str, path: &str, labels: &BTreeMap<String, String>) -> Result<(), Error> {
        let what = format!("creating `{path}` in Secret Manager");
        let url = format!("{}?secretId={id}", self.client.secrets_url());
        let body = json!({ "replication": { "automatic": {} }, "labels": labels });
        let answer = self.client.call("POST", &url, Some(&body), true, &what)?;
        match answer.status {
            200 => Ok(()),
            409 => self.set_labels(id, path, labels),
            _ => Err(answer.error(&what)),
        }
    }

    /// Replaces the secret's labels.
    fn set_labels(&mut self, id: &str, path: &str, labels: &BTreeMap<String, String>) -> Result<(), Error> {
        let what = format!("writing the labels of `{path}` to Secret Manager");
        let url = format!("{}?updateMask=labels", self.client.secret_url(id));
        let answer = self
            .client
            .call("PATCH", &url, Some(&json!({ "labels": labels })), true, &what)?;
        match answer.status {
            200 => Ok(()),
            404 => Err(no_secret(path)),
            _ => Err(answer.error(&what)),
        }
    }

    /// Disables, enables or destroys the given versions of an existing
    /// secret; unknown versions, and destroyed ones, are skipped.
    fn change_versions(&mut self, path: &str, versions: &[String], action: &str) -> Result<(), Error> {
        let id = NAMES.encode(path)?;
        if self.labels(&id, path)?.is_none() {
            return Err(no_secret(path));
        }
        let mut numbers: Vec<u64> = versions
            .iter()
            .filter(|v| is_version_number(v))
            .filter_map(|v| v.parse().ok())
            .collect();
        numbers.sort_unstable();
        numbers.dedup();
        for n in numbers {
            let what = format!("{action} version {n} of `{path}` in Secret Manager");
            let url = format!("{}/versions/{n}:{action}", self.client.secret_url(&id));
            let answer = self.client.call("POST", &url, Some(&json!({})), true, &what)?;
            match answer.status {
                200 | 404 => {}
                // Destroyed versions cannot change state any more.
                400 if answer.code() == "FAILED_PRECONDITION" => {}
                _ => return Err(answer.error(&what)),
            }
        }
        Ok(())
    }
}

export_provider!(GcpProvider);

/// The `http(s)://host[:port]` in config key `key`, without a trailing `/`.
fn base_url(raw: &str, key: &str) -> Result<String, Error> {
    let url = raw.trim().trim_end_matches('/');
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    if !rest.is_some_and(|r| !r.is_empty() && !r.contains(['/', '?', '#', '@', ' '])) {
        return Err(Error::invalid_input(format!(
            "config key `{key}` must be a base URL, `https://host[:port]` (no path): fix it in the mount's config"
        )));
    }
    Ok(url.to_owned())
}

/// Secret Manager version numbers: 1, 2, ... (no sign, no leading zero).
fn is_version_number(v: &str) -> bool {
    !v.is_empty() && v.len() <= 19 && v.bytes().all(|b| b.is_ascii_digit()) && !v.starts_with('0')
}

/// Checks that metadata can be Secret Manager labels.
fn labels_of(metadata: Metadata) -> Result<BTreeMap<String, String>, Error> {
    let labels: BTreeMap<String, String> = metadata.into_iter().collect();
    if labels.len() > MAX_LABELS {
        return Err(Error::invalid_input(format!(
            "{} metadata keys: Secret Manager keeps at most {MAX_LABELS} labels per secret",
            labels.len()
        )));
    }
    let label_char = |c: char| c.is_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
    for (key, value) in &labels {
        let key_ok = key.chars().next().is_some_and(char::is_lowercase)
            && key.chars().count() <= MAX_LABEL_CHARS
            && key.chars().all(label_char);
        if !key_ok {
            return Err(Error::invalid_input(format!(
                "metadata key `{}` cannot be a Secret Manager label: keys are 1-63 lower-case letters, digits, \
                 `_` and `-`, starting with a letter",
                clip(key, 80)
            )));
        }
        if value.chars().count() > MAX_LABEL_CHARS || !value.chars().all(label_char) {
            return Err(Error::invalid_input(format!(
                "the value of metadata key `{key}` cannot be a Secret Manager label value: at most 63 \
                 lower-case letters, digits, `_` and `-`"
            )));
        }
    }
    Ok(labels)
}

/// A JSON number, or a decimal string (how the API writes int64).
fn as_u64(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| value.as_str()?.parse().ok())
}

/// The `not-found` for a version that is disabled or destroyed.
fn unreadable(what: &str, answer: &Answer) -> Error {
    let message = answer.message();
    if message.contains("DESTROYED") {
        Error::not_found(format!("{what}: that version was destroyed"))
    } else {
        Error::not_found(format!(
            "{what}: that version is disabled (deleted; undelete-versions restores it)"
        ))
    }
}

fn no_secret(path: &str) -> Error {
    Error::not_found(format!(
        "secret `{path}` does not exist in Secret Manager (or has no versions)"
    ))
}

fn no_version(path: &str, version: &str) -> Error {
    Error::not_found(format!(
        "secret `{path}` has no version `{}` in Secret Manager (versions are numbers: 1, 2, ...)",
        clip(version, 40)
    ))
}

fn malformed(what: &str, field: &str) -> Error {
    Error::unavailable(format!(
        "{what}: the answer has no valid `{field}`; is `endpoint` a Secret Manager API?"
    ))
}

#[cfg(test)]
mod tests;
