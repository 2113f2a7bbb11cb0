//! A Tresor provider for HashiCorp Vault and OpenBao KV version 2 secrets
//! engines, over Vault's HTTP API.
//!
//! The mount must grant the plugin network access to Vault's `host:port`
//! (`grants.network`), and `grants.ca_file` when Vault's certificate is
//! signed by a private CA.
//!
//! Mount configuration:
//!
//! | key              | meaning                                                              |
//! |------------------|----------------------------------------------------------------------|
//! | `address`        | required: Vault's base URL, `http(s)://host:port`                    |
//! | `mount`          | the KV v2 mount to use (default `secret`)                            |
//! | `token`          | a Vault token, or:                                                   |
//! | `role_id`        | AppRole role id (with `secret_id`; logs in at `auth/approle/login`)  |
//! | `secret_id`      | AppRole secret id                                                    |
//! | `approle_mount`  | where the AppRole method is mounted under `auth/` (default `approle`) |
//! | `namespace`      | Vault Enterprise / OpenBao namespace, sent as `X-Vault-Namespace`    |
//! | `timeout_ms`     | connect and first-byte timeout of each request (default 3000)        |
//!
//! Any other key is refused when the mount starts, naming it.
//!
//! Give exactly one of `token` or `role_id` + `secret_id`. The AppRole
//! token is cached in the instance and renewed by logging in again when
//! Vault answers 403.
//!
//! How values are stored: see [`encoding`]. In short, a value that is a
//! compact JSON object with sorted keys (`{"password":"p","user":"u"}`) is
//! stored as the KV secret's fields; any other bytes are stored as
//! `{"value": "<base64>"}`. Values written by other Vault clients read
//! back as the compact JSON of their fields.
//!
//! Metadata: Vault keeps `custom_metadata` per secret, not per version.
//! A `put` sets the secret's `custom_metadata` to the given pairs (before
//! writing the value, so tightened tags protect the new value from its
//! first moment), and every version reports the secret's current metadata.
//! Vault limits it to 64 keys of at most 128 bytes, values of 512 bytes.
//!
//! Versions are Vault's version numbers (`"1"`, `"2"`, ...). `put` with an
//! expected version uses Vault's check-and-set (`options.cas`, where `""`
//! is `cas = 0`: the secret must not exist). `delete` removes the metadata
//! and every version; `delete-versions` soft-deletes (or destroys) and
//! `undelete-versions` restores. `list-secrets` walks the metadata tree
//! from the prefix's folder down.

pub mod client;
pub mod encoding;

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use tresor_plugin_sdk::{export_provider, Capabilities, Config, Error, Metadata, Provider, Secret, VersionInfo};

use crate::client::{Auth, Client, Endpoint};
use crate::encoding::{decode_value, encode_value, parse_time_ms, parse_version};

/// Most folders `list-secrets` descends into, so a huge tree cannot hold
/// the instance past its deadline unnoticed.
const MAX_LIST_FOLDERS: usize = 10_000;
/// The mount configuration keys this plugin reads (see the crate docs).
const CONFIG_KEYS: &[&str] = &[
    "address",
    "mount",
    "token",
    "role_id",
    "secret_id",
    "approle_mount",
    "namespace",
    "timeout_ms",
];

/// The Vault provider.
struct VaultProvider {
    client: Client,
}

impl Provider for VaultProvider {
    const NAME: &'static str = "vault";

    fn configure(config: Config) -> Result<Self, Error> {
        config.check_keys(CONFIG_KEYS)?;
        let address = config.require("address")?.trim().trim_end_matches('/').to_owned();
        let rest = address
            .strip_prefix("http://")
            .or_else(|| address.strip_prefix("https://"));
        if !rest.is_some_and(|r| !r.is_empty() && !r.contains(['/', '?', '#', '@', ' '])) {
            return Err(Error::invalid_input(
                "config key `address` must be Vault's base URL, `http://host:port` or `https://host:port` \
                 (no path): fix it in the mount's config",
            ));
        }
        let mount = config
            .get("mount")
            .unwrap_or("secret")
            .trim()
            .trim_matches('/')
            .to_owned();
        if tresor_plugin_sdk::validate_path(&mount).is_err() {
            return Err(Error::invalid_input(
                "config key `mount` must be the path of a KV v2 mount, like `secret` or `team/kv`: \
                 fix it in the mount's config",
            ));
        }
        let namespace = config.get("namespace").map(str::to_owned).filter(|n| !n.is_empty());
        let auth = match (config.get("token"), config.get("role_id"), config.get("secret_id")) {
            (Some(token), None, None) if !token.is_empty() => Auth::Token(token.to_owned()),
            (None, Some(role_id), Some(secret_id)) if !role_id.is_empty() && !secret_id.is_empty() => {
                let mount = config
                    .get("approle_mount")
                    .unwrap_or("approle")
                    .trim_matches('/')
                    .to_owned();
                if tresor_plugin_sdk::validate_path(&mount).is_err() {
                    return Err(Error::invalid_input(
                        "config key `approle_mount` must be the path of the AppRole auth method under `auth/` \
                         (default `approle`): fix it in the mount's config",
                    ));
                }
                Auth::AppRole {
                    mount,
                    role_id: role_id.to_owned(),
                    secret_id: secret_id.to_owned(),
                }
            }
            _ => {
                return Err(Error::invalid_input(
                    "the vault plugin needs credentials: set either config key `token`, or both `role_id` \
                     and `secret_id` (AppRole), in the mount's config",
                ))
            }
        };
        let mut client = Client::new(address, mount, namespace, auth);
        if let Some(ms) = config.parse::<u64>("timeout_ms", "a whole number of milliseconds")? {
            if ms == 0 {
                return Err(Error::invalid_input(
                    "config key `timeout_ms` must be positive: fix it in the mount's config",
                ));
            }
            client.timeout = std::time::Duration::from_millis(ms);
        }
        Ok(VaultProvider { client })
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
    }

    fn get(&mut self, path: &str, version: Option<&str>) -> Result<Secret, Error> {
        let mut url = self.client.url(Endpoint::Data, path);
        if let Some(version) = version {
            let n = parse_version(version).ok_or_else(|| no_version(path, version))?;
            url.push_str(&format!("?version={n}"));
        }
        let what = format!("reading `{path}` from Vault");
        let answer = self.client.call("GET", &url, None, &what)?;
        if answer.status == 404 {
            return Err(match answer.body.pointer("/data/metadata") {
                Some(meta) if meta.get("destroyed").and_then(Value::as_bool) == Some(true) => {
                    Error::not_found(format!("{what}: that version was destroyed"))
                }
                Some(meta)
                    if meta
                        .get("deletion_time")
                        .and_then(Value::as_str)
                        .is_some_and(|t| !t.is_empty()) =>
                {
                    Error::not_found(format!(
                        "{what}: that version was deleted (undelete-versions restores it)"
                    ))
                }
                _ => match version {
                    Some(version) => no_version(path, version),
                    None => no_secret(path),
                },
            });
        }
        if answer.status != 200 {
            return Err(answer.error(&what));
        }
        let data = answer
            .body
            .pointer("/data/data")
            .filter(|d| d.is_object())
            .ok_or_else(|| Error::not_found(format!("{what}: the version holds no data")))?;
        let meta = answer.body.pointer("/data/metadata").unwrap_or(&Value::Null);
        Ok(Secret {
            value: decode_value(data),
            version: version_of(meta).ok_or_else(|| malformed(&what, "data.metadata.version"))?,
            created_ms: meta
                .get("created_time")
                .and_then(Value::as_str)
                .map_or(0, parse_time_ms),
            metadata: metadata_pairs(meta.get("custom_metadata")),
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
        let what = format!("writing `{path}` to Vault");
        let cas = match expected_version {
            None => None,
            Some("") => Some(0),
            Some(v) => Some(parse_version(v).ok_or_else(|| {
                Error::conflict(format!(
                    "{what}: the expected version `{v}` cannot be current (Vault versions are numbers)"
                ))
            })?),
        };
        let wanted: BTreeMap<String, String> = metadata.into_iter().collect();

        // Tags first, so a tightened tag protects the new value from the start.
        let mut restore = None;
        if !wanted.is_empty() {
            let current = self.metadata(path)?;
            let current_tags = current.as_ref().map(|m| custom_metadata(m.get("custom_metadata")));
            if current_tags.as_ref() != Some(&wanted) {
                self.set_custom_metadata(path, &wanted)?;
                restore = Some(current_tags);
            }
        }

        let mut body = json!({ "data": encode_value(&value) });
        if let Some(cas) = cas {
            body["options"] = json!({ "cas": cas });
        }
        let url = self.client.url(Endpoint::Data, path);
        // Without check-and-set, sending a write twice only adds a version;
        // with it, a retry after a lost answer would conflict with itself.
        let written = self.client.call("POST", &url, Some(&body), &what).and_then(|answer| {
            if answer.status == 200 {
                return Ok(answer);
            }
            Err(if answer.status == 400 && answer.mentions("check-and-set") {
                let expected = expected_version.unwrap_or_default();
                Error::conflict(if expected.is_empty() {
                    format!("{what}: the secret already exists")
                } else {
                    format!("{what}: the current version is not {expected}")
                })
            } else {
                answer.error(&what)
            })
        });
        let answer = match written {
            Ok(answer) => answer,
            Err(e) => {
                if let Some(previous) = restore {
                    // Best effort: put the old tags back (or remove the
                    // metadata entry this write created).
                    let _ = match previous {
                        Some(tags) => self.set_custom_metadata(path, &tags),
                        None => self.delete_metadata(path),
                    };
                }
                return Err(e);
            }
        };
        let data = answer.body.get("data").unwrap_or(&Value::Null);
        let version = version_of(data).ok_or_else(|| malformed(&what, "data.version"))?;
        if wanted.is_empty() && !custom_metadata(data.get("custom_metadata")).is_empty() {
            self.set_custom_metadata(path, &wanted)?;
        }
        Ok(version)
    }

    fn delete(&mut self, path: &str) -> Result<(), Error> {
        if self.metadata(path)?.is_none() {
            return Err(no_secret(path));
        }
        self.delete_metadata(path)
    }

    fn delete_versions(&mut self, path: &str, versions: &[String], destroy: bool) -> Result<(), Error> {
        let (endpoint, method, verb) = if destroy {
            (Endpoint::Destroy, "PUT", "destroying")
        } else {
            (Endpoint::Delete, "POST", "deleting")
        };
        self.change_versions(path, versions, endpoint, method, verb)
    }

    fn undelete_versions(&mut self, path: &str, versions: &[String]) -> Result<(), Error> {
        self.change_versions(path, versions, Endpoint::Undelete, "POST", "undeleting")
    }

    fn list(&mut self, prefix: &str) -> Result<Vec<String>, Error> {
        let client = &mut self.client;
        let mut paths = list_walk(prefix, |folder| {
            let url = format!("{}?list=true", client.url(Endpoint::Metadata, folder));
            let what = format!("listing `{folder}` in Vault");
            let answer = client.call("GET", &url, None, &what)?;
            match answer.status {
                200 => Ok(answer
                    .body
                    .pointer("/data/keys")
                    .and_then(Value::as_array)
                    .map(|keys| keys.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                    .unwrap_or_default()),
                404 => Ok(Vec::new()),
                _ => Err(answer.error(&what)),
            }
        })?;
        paths.sort();
        paths.dedup();
        Ok(paths)
    }

    fn versions(&mut self, path: &str) -> Result<Vec<VersionInfo>, Error> {
        let meta = self.metadata(path)?.ok_or_else(|| no_secret(path))?;
        let tags = metadata_pairs(meta.get("custom_metadata"));
        let mut versions: Vec<(u64, VersionInfo)> = meta
            .get("versions")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(id, info)| {
                let n = parse_version(id)?;
                let deletion_time = info.get("deletion_time").and_then(Value::as_str).unwrap_or("");
                // A deletion time in the future is a `delete_version_after`
                // schedule: the version is deleted once it has passed.
                let deletion_ms = if deletion_time.is_empty() {
                    0
                } else {
                    parse_time_ms(deletion_time)
                };
                Some((
                    n,
                    VersionInfo {
                        version: n.to_string(),
                        created_ms: info
                            .get("created_time")
                            .and_then(Value::as_str)
                            .map_or(0, parse_time_ms),
                        deleted: !deletion_time.is_empty() && (deletion_ms == 0 || deletion_ms <= now_ms()),
                        destroyed: info.get("destroyed").and_then(Value::as_bool).unwrap_or(false),
                        metadata: tags.clone(),
                        deletion_ms,
                    },
                ))
            })
            .collect();
        if versions.is_empty() {
            return Err(no_secret(path));
        }
        versions.sort_by_key(|(n, _)| *n);
        Ok(versions.into_iter().map(|(_, info)| info).collect())
    }
}

impl VaultProvider {
    /// The `data` of the secret's metadata, or `None` when it does not exist.
    fn metadata(&mut self, path: &str) -> Result<Option<Value>, Error> {
        let what = format!("reading the metadata of `{path}` from Vault");
        let url = self.client.url(Endpoint::Metadata, path);
        let answer = self.client.call("GET", &url, None, &what)?;
        match answer.status {
            200 => Ok(Some(answer.body.get("data").cloned().unwrap_or(Value::Null))),
            404 => Ok(None),
            _ => Err(answer.error(&what)),
        }
    }

    /// Replaces the secret's `custom_metadata` (creating its metadata entry
    /// if needed).
    fn set_custom_metadata(&mut self, path: &str, tags: &BTreeMap<String, String>) -> Result<(), Error> {
        let what = format!("writing the metadata of `{path}` to Vault");
        let url = self.client.url(Endpoint::Metadata, path);
        let answer = self
            .client
            .call("POST", &url, Some(&json!({ "custom_metadata": tags })), &what)?;
        success(answer, &what)
    }

    fn delete_metadata(&mut self, path: &str) -> Result<(), Error> {
        let what = format!("deleting `{path}` from Vault");
        let url = self.client.url(Endpoint::Metadata, path);
        let answer = self.client.call("DELETE", &url, None, &what)?;
        success(answer, &what)
    }

    /// Deletes, destroys or undeletes the known `versions` of an existing secret.
    fn change_versions(
        &mut self,
        path: &str,
        versions: &[String],
        endpoint: Endpoint,
        method: &str,
        verb: &str,
    ) -> Result<(), Error> {
        let meta = self.metadata(path)?.ok_or_else(|| no_secret(path))?;
        let known = meta.get("versions").and_then(Value::as_object);
        let mut numbers: Vec<u64> = versions
            .iter()
            .filter_map(|v| parse_version(v))
            .filter(|n| known.is_some_and(|k| k.contains_key(&n.to_string())))
            .collect();
        numbers.sort_unstable();
        numbers.dedup();
        if numbers.is_empty() {
            return Ok(());
        }
        let what = format!("{verb} versions of `{path}` in Vault");
        let url = self.client.url(endpoint, path);
        let answer = self
            .client
            .call(method, &url, Some(&json!({ "versions": numbers })), &what)?;
        success(answer, &what)
    }
}

export_provider!(VaultProvider);

/// Lists every secret path starting with `prefix` by walking folders
/// with `list_folder` (which returns a folder's keys, sub-folders ending
/// in `/`, and nothing for a missing folder).
fn list_walk(
    prefix: &str,
    mut list_folder: impl FnMut(&str) -> Result<Vec<String>, Error>,
) -> Result<Vec<String>, Error> {
    // Start at the folder holding the prefix: `app/d` → `app/`.
    let start = match prefix.rfind('/') {
        Some(i) => &prefix[..=i],
        None => "",
    };
    let mut paths = Vec::new();
    let mut folders = vec![start.to_owned()];
    let mut visited = 0;
    while let Some(folder) = folders.pop() {
        visited += 1;
        if visited > MAX_LIST_FOLDERS {
            return Err(Error::unavailable(format!(
                "listing `{prefix}` in Vault: more than {MAX_LIST_FOLDERS} folders; list a narrower prefix"
            )));
        }
        for key in list_folder(&folder)? {
            let full = format!("{folder}{key}");
            // Only what can still lead under the prefix.
            if !(full.starts_with(prefix) || prefix.starts_with(&full)) {
                continue;
            }
            if key.ends_with('/') {
                folders.push(full);
            } else if full.starts_with(prefix) && tresor_plugin_sdk::validate_path(&full).is_ok() {
                paths.push(full);
            }
        }
    }
    Ok(paths)
}

fn success(answer: client::Answer, what: &str) -> Result<(), Error> {
    if (200..300).contains(&answer.status) {
        Ok(())
    } else {
        Err(answer.error(what))
    }
}

/// The version number in a KV metadata object, as a Tresor version.
fn version_of(meta: &Value) -> Option<String> {
    meta.get("version")
        .and_then(Value::as_u64)
        .filter(|n| *n > 0)
        .map(|n| n.to_string())
}

/// `custom_metadata` (an object of strings, or null) as a map.
fn custom_metadata(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|object: &Map<String, Value>| {
            object
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                .collect()
        })
        .unwrap_or_default()
}

fn metadata_pairs(value: Option<&Value>) -> Metadata {
    custom_metadata(value).into_iter().collect()
}

fn no_secret(path: &str) -> Error {
    Error::not_found(format!("no secret at `{path}` in Vault"))
}

fn no_version(path: &str, version: &str) -> Error {
    Error::not_found(format!("secret `{path}` has no version `{version}` in Vault"))
}

fn malformed(what: &str, field: &str) -> Error {
    Error::unavailable(format!(
        "{what}: Vault's answer lacks `{field}`; is `mount` a KV version 2 mount?"
    ))
}

/// The wall clock in milliseconds since the Unix epoch, or `u64::MAX`
/// when the mount grants no clock (the plugin then sees the epoch): every
/// deletion time Vault reports then counts as passed.
fn now_ms() -> u64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) if d.as_secs() > 0 => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
        _ => u64::MAX,
    }
}

#[cfg(test)]
mod tests;
