//! A Tresor provider for AWS Secrets Manager, over its JSON API with
//! requests signed by AWS Signature Version 4 (the SDK's
//! [`sigv4`](tresor_plugin_sdk::sigv4)).
//!
//! The mount must grant the plugin the real clock (`grants.clock = true`:
//! signatures carry the time) and network access to the endpoint's
//! `host:port` (`grants.network`, e.g.
//! `secretsmanager.eu-west-1.amazonaws.com:443`).
//!
//! Mount configuration:
//!
//! | key                    | meaning                                                              |
//! |------------------------|----------------------------------------------------------------------|
//! | `region`               | required: the AWS region (`eu-west-1`)                               |
//! | `endpoint`             | default `https://secretsmanager.<region>.amazonaws.com`              |
//! | `access_key_id`        | required: the access key id                                          |
//! | `secret_access_key`    | required: the secret access key                                      |
//! | `session_token`        | the session token of temporary credentials                           |
//! | `recovery_window_days` | days a deleted secret stays recoverable in AWS, 7 to 30 (default 7)  |
//! | `force_delete`         | `true`: delete at once, without a recovery window (default `false`)  |
//! | `timeout_ms`           | connect and first-byte timeout of each request (default 3000)        |
//!
//! Any other key is refused when the mount starts, naming it.
//!
//! A Tresor path is the secret's name (`app/db-password`; AWS allows
//! letters, digits and `/_+=.@-`). Values that are UTF-8 text are stored
//! as `SecretString`, anything else as `SecretBinary`. Metadata pairs are
//! the secret's tags, which AWS keeps per secret: a `put` replaces them
//! (before writing the value, so tightened tags protect the new value from
//! its first moment), and every version reports the secret's current tags.
//!
//! Versions are AWS version ids (the `ClientRequestToken` the plugin
//! generates for each write). `get` also accepts a staging label such as
//! `AWSCURRENT` or `AWSPREVIOUS`. `versions` lists every version AWS still
//! keeps (labelled or not), oldest first.
//!
//! Check-and-set is exact: with an expected version `""` the plugin calls
//! `CreateSecret`, which fails if the name exists; with a version id it
//! writes the new version without a label and then moves `AWSCURRENT` to
//! it with `UpdateSecretVersionStage(RemoveFromVersionId = expected)`,
//! which AWS refuses unless `AWSCURRENT` is still on the expected version.
//! A write that loses leaves an unlabelled version, which AWS treats as
//! deprecated.
//!
//! `delete` is `DeleteSecret`: with a recovery window, AWS keeps the name
//! reserved until it ends (writing it again fails with a message saying
//! so); `force_delete = true` frees it at once. Soft-deleting single
//! versions is not supported.

pub mod client;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};
use tresor_plugin_sdk::sigv4::{self, Credentials};
use tresor_plugin_sdk::{export_provider, Capabilities, Config, Error, Metadata, Provider, Secret, VersionInfo};

use crate::client::Client;

/// 2020-01-01T00:00:00Z: a clock before this is the sandbox's frozen one.
const PLAUSIBLE_NOW: u64 = 1_577_836_800;
/// Most pages a listing reads (100 names each).
const MAX_PAGES: usize = 1000;
/// The mount configuration keys this plugin reads (see the crate docs).
const CONFIG_KEYS: &[&str] = &[
    "region",
    "endpoint",
    "access_key_id",
    "secret_access_key",
    "session_token",
    "recovery_window_days",
    "force_delete",
    "timeout_ms",
];

/// The AWS Secrets Manager provider.
struct AwsProvider {
    client: Client,
    recovery_window_days: u32,
    force_delete: bool,
}

/// What `DescribeSecret` says about a secret.
struct Described {
    tags: BTreeMap<String, String>,
    /// The version `AWSCURRENT` is on.
    current: Option<String>,
    /// Scheduled for deletion.
    deleted: bool,
}

impl Provider for AwsProvider {
    const NAME: &'static str = "aws";

    fn configure(config: Config) -> Result<Self, Error> {
        config.check_keys(CONFIG_KEYS)?;
        let region = config.require("region")?.trim().to_owned();
        if region.is_empty() || !region.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(Error::invalid_input(
                "config key `region` must be an AWS region such as `eu-west-1`: fix it in the mount's config",
            ));
        }
        let endpoint = match config.get("endpoint") {
            Some(e) => e.trim().trim_end_matches('/').to_owned(),
            None => format!("https://secretsmanager.{region}.amazonaws.com"),
        };
        let host = endpoint
            .strip_prefix("https://")
            .or_else(|| endpoint.strip_prefix("http://"));
        if !host.is_some_and(|h| !h.is_empty() && !h.starts_with('/') && !h.contains(['?', '#', '@', ' '])) {
            return Err(Error::invalid_input(
                "config key `endpoint` must be an http(s) URL such as \
                 `https://secretsmanager.eu-west-1.amazonaws.com`: fix it in the mount's config",
            ));
        }
        let access_key_id = config.require("access_key_id")?.trim().to_owned();
        let secret_access_key = config.require("secret_access_key")?.to_owned();
        if access_key_id.is_empty() || secret_access_key.is_empty() {
            return Err(Error::invalid_input(
                "config keys `access_key_id` and `secret_access_key` must not be empty: fix them in the mount's config",
            ));
        }
        let session_token = config.get("session_token").filter(|t| !t.is_empty()).map(str::to_owned);
        let recovery_window_days = config
            .parse::<u32>("recovery_window_days", "a whole number of days from 7 to 30")?
            .unwrap_or(7);
        if !(7..=30).contains(&recovery_window_days) {
            return Err(Error::invalid_input(
                "config key `recovery_window_days` must be a whole number of days from 7 to 30 (AWS's limits); \
                 use `force_delete = \"true\"` to delete without recovery",
            ));
        }
        let force_delete = config
            .parse::<bool>("force_delete", "`true` or `false`")?
            .unwrap_or(false);
        let timeout_ms = config.parse::<u64>("timeout_ms", "a whole number of milliseconds")?;
        if timeout_ms == Some(0) {
            return Err(Error::invalid_input(
                "config key `timeout_ms` must be positive: fix it in the mount's config",
            ));
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if now < PLAUSIBLE_NOW {
            return Err(Error::invalid_input(
                "the aws plugin signs every request with the current time, but the mount does not grant the \
                 clock: set `clock = true` in the mount's grants",
            ));
        }
        Ok(AwsProvider {
            client: Client {
                endpoint,
                region,
                credentials: Credentials {
                    access_key_id,
                    secret_access_key,
                    session_token,
                },
                timeout: timeout_ms.map_or(
                    tresor_plugin_sdk::http::DEFAULT_TIMEOUT,
                    std::time::Duration::from_millis,
                ),
            },
            recovery_window_days,
            force_delete,
        })
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            soft_delete: false,
            ..Capabilities::ALL
        }
    }

    fn get(&mut self, path: &str, version: Option<&str>) -> Result<Secret, Error> {
        let what = format!("reading `{path}` from AWS Secrets Manager");
        let described = self.describe(path)?.ok_or_else(|| no_secret(path))?;
        if described.deleted {
            return Err(deleted(path));
        }
        let mut request = json!({ "SecretId": path });
        match version {
            Some(v) if is_version_id(v) => request["VersionId"] = json!(v),
            Some(v) if is_stage(v) => request["VersionStage"] = json!(v),
            Some(v) => return Err(no_version(path, v)),
            // AWS's default, spelled out: moto's default does not follow
            // AWSCURRENT when UpdateSecretVersionStage moves it.
            None => request["VersionStage"] = json!("AWSCURRENT"),
        }
        let answer = match self.client.call("GetSecretValue", &request, true) {
            Ok(answer) => answer,
            Err(e) if e.is("ResourceNotFoundException") => {
                return Err(match version {
                    Some(v) => no_version(path, v),
                    None => no_secret(path),
                })
            }
            Err(e) if e.is_marked_for_deletion() => return Err(deleted(path)),
            Err(e) => return Err(e.into_error(&what)),
        };
        let value = if let Some(text) = answer.get("SecretString").and_then(Value::as_str) {
            text.as_bytes().to_vec()
        } else if let Some(encoded) = answer.get("SecretBinary").and_then(Value::as_str) {
            BASE64
                .decode(encoded)
                .map_err(|_| Error::unavailable(format!("{what}: SecretBinary is not base64")))?
        } else {
            return Err(Error::not_found(format!("{what}: the version holds no value")));
        };
        Ok(Secret {
            value,
            version: answer
                .get("VersionId")
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| Error::unavailable(format!("{what}: the answer has no VersionId")))?
                .to_owned(),
            created_ms: created_ms(answer.get("CreatedDate")),
            metadata: described.tags.into_iter().collect(),
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
        let what = format!("writing `{path}` to AWS Secrets Manager");
        if value.is_empty() {
            return Err(Error::invalid_input(format!(
                "{what}: AWS Secrets Manager cannot store an empty value"
            )));
        }
        let wanted: BTreeMap<String, String> = metadata.into_iter().collect();
        let token = request_token()?;
        let mut body = json!({ "ClientRequestToken": token });
        match std::str::from_utf8(&value) {
            Ok(text) => body["SecretString"] = json!(text),
            Err(_) => body["SecretBinary"] = json!(BASE64.encode(&value)),
        }

        let Some(described) = self.describe(path)? else {
            if let Some(expected) = expected_version.filter(|v| !v.is_empty()) {
                return Err(Error::conflict(format!(
                    "{what}: the secret does not exist, so its version is not {expected}"
                )));
            }
            return self.create(path, body, &wanted, expected_version.is_some(), &what);
        };
        if described.deleted {
            return Err(Error::invalid_input(format!(
                "{what}: the secret was deleted and AWS keeps its name until the recovery window ends; \
                 restore it in AWS, wait, or use a mount with `force_delete = \"true\"` to free names at once"
            )));
        }
        match expected_version {
            Some("") => return Err(Error::conflict(format!("{what}: the secret already exists"))),
            Some(expected) if described.current.as_deref() != Some(expected) => {
                return Err(Error::conflict(format!(
                    "{what}: the current version is not {expected}"
                )))
            }
            _ => {}
        }

        // Tags first, so a tightened tag protects the new value from the start.
        let retag = described.tags != wanted;
        if retag {
            self.set_tags(path, &described.tags, &wanted)?;
        }
        body["SecretId"] = json!(path);
        let written = match expected_version {
            None => self
                .client
                .call("PutSecretValue", &body, true)
                .map_err(|e| e.into_error(&what))
                .and_then(|answer| version_id(&answer, &what)),
            Some(expected) => self.put_if_current(path, body, expected, &what),
        };
        if written.is_err() && retag {
            // Best effort: put the old tags back.
            let _ = self.set_tags(path, &wanted, &described.tags);
        }
        written
    }

    fn delete(&mut self, path: &str) -> Result<(), Error> {
        let what = format!("deleting `{path}` from AWS Secrets Manager");
        // A forced delete of a missing secret succeeds in AWS: look first.
        match self.describe(path)? {
            None => return Err(no_secret(path)),
            Some(d) if d.deleted => return Err(no_secret(path)),
            Some(_) => {}
        }
        let mut body = json!({ "SecretId": path });
        if self.force_delete {
            body["ForceDeleteWithoutRecovery"] = json!(true);
        } else {
            body["RecoveryWindowInDays"] = json!(self.recovery_window_days);
        }
        match self.client.call("DeleteSecret", &body, false) {
            Ok(_) => Ok(()),
            Err(e) if e.is("ResourceNotFoundException") || e.is_marked_for_deletion() => Err(no_secret(path)),
            Err(e) => Err(e.into_error(&what)),
        }
    }

    fn list(&mut self, prefix: &str) -> Result<Vec<String>, Error> {
        let what = format!("listing `{prefix}` in AWS Secrets Manager");
        let mut request = json!({ "MaxResults": 100 });
        // The `name` filter is a case-sensitive prefix match; its values
        // allow fewer characters than names, so odd prefixes list all and
        // filter here.
        if !prefix.is_empty()
            && prefix.len() <= 512
            && !prefix.starts_with('!')
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b" :_@/+=.-".contains(&b))
        {
            request["Filters"] = json!([{ "Key": "name", "Values": [prefix] }]);
        }
        let mut names = Vec::new();
        for _ in 0..MAX_PAGES {
            let answer = self
                .client
                .call("ListSecrets", &request, true)
                .map_err(|e| e.into_error(&what))?;
            for secret in answer.get("SecretList").and_then(Value::as_array).into_iter().flatten() {
                if secret.get("DeletedDate").is_some_and(|d| !d.is_null()) {
                    continue;
                }
                if let Some(name) = secret.get("Name").and_then(Value::as_str) {
                    if name.starts_with(prefix) && tresor_plugin_sdk::validate_path(name).is_ok() {
                        names.push(name.to_owned());
                    }
                }
            }
            match answer
                .get("NextToken")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
            {
                Some(next) => request["NextToken"] = json!(next),
                None => {
                    names.sort();
                    names.dedup();
                    return Ok(names);
                }
            }
        }
        Err(Error::unavailable(format!(
            "{what}: more than {} secrets; list a narrower prefix",
            MAX_PAGES * 100
        )))
    }

    fn versions(&mut self, path: &str) -> Result<Vec<VersionInfo>, Error> {
        let what = format!("listing the versions of `{path}` in AWS Secrets Manager");
        let described = self.describe(path)?.ok_or_else(|| no_secret(path))?;
        if described.deleted {
            return Err(deleted(path));
        }
        let tags: Metadata = described.tags.into_iter().collect();
        let mut request = json!({ "SecretId": path, "IncludeDeprecated": true, "MaxResults": 100 });
        // (created, rank of the stage, id, info)
        let mut versions: Vec<(u64, u8, VersionInfo)> = Vec::new();
        for _ in 0..MAX_PAGES {
            let answer = match self.client.call("ListSecretVersionIds", &request, true) {
                Ok(answer) => answer,
                Err(e) if e.is("ResourceNotFoundException") => return Err(no_secret(path)),
                Err(e) => return Err(e.into_error(&what)),
            };
            for v in answer.get("Versions").and_then(Value::as_array).into_iter().flatten() {
                let Some(id) = v.get("VersionId").and_then(Value::as_str) else {
                    continue;
                };
                let stages: Vec<&str> = v
                    .get("VersionStages")
                    .and_then(Value::as_array)
                    .map(|s| s.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                // Versions written the same second: AWSPREVIOUS before AWSCURRENT.
                let rank = if stages.contains(&"AWSCURRENT") {
                    2
                } else if stages.contains(&"AWSPREVIOUS") {
                    1
                } else {
                    0
                };
                let created = created_ms(v.get("CreatedDate"));
                versions.push((
                    created,
                    rank,
                    VersionInfo {
                        version: id.to_owned(),
                        created_ms: created,
                        deleted: false,
                        destroyed: false,
                        metadata: tags.clone(),
                        deletion_ms: 0,
                    },
                ));
            }
            match answer
                .get("NextToken")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
            {
                Some(next) => request["NextToken"] = json!(next),
                None => {
                    versions.sort_by_key(|v| (v.0, v.1));
                    return Ok(versions.into_iter().map(|(_, _, info)| info).collect());
                }
            }
        }
        Err(Error::unavailable(format!("{what}: too many versions")))
    }
}

impl AwsProvider {
    /// `DescribeSecret`, or `None` when there is no such secret.
    fn describe(&self, path: &str) -> Result<Option<Described>, Error> {
        let what = format!("describing `{path}` in AWS Secrets Manager");
        let answer = match self.client.call("DescribeSecret", &json!({ "SecretId": path }), true) {
            Ok(answer) => answer,
            Err(e) if e.is("ResourceNotFoundException") => return Ok(None),
            Err(e) if e.is_marked_for_deletion() => {
                return Ok(Some(Described {
                    tags: BTreeMap::new(),
                    current: None,
                    deleted: true,
                }))
            }
            Err(e) => return Err(e.into_error(&what)),
        };
        let tags = answer
            .get("Tags")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| {
                Some((
                    t.get("Key")?.as_str()?.to_owned(),
                    t.get("Value").and_then(Value::as_str).unwrap_or("").to_owned(),
                ))
            })
            .collect();
        let current = answer
            .get("VersionIdsToStages")
            .and_then(Value::as_object)
            .and_then(|m| {
                m.iter().find_map(|(id, stages)| {
                    let stages = stages.as_array()?;
                    stages.iter().any(|s| s == "AWSCURRENT").then(|| id.clone())
                })
            });
        Ok(Some(Described {
            tags,
            current,
            deleted: answer.get("DeletedDate").is_some_and(|d| !d.is_null()),
        }))
    }

    /// `CreateSecret` with the value and tags. `create_only`: the write
    /// expected no secret, so one created meanwhile is a conflict; else a
    /// secret created meanwhile just gets a new version.
    fn create(
        &mut self,
        path: &str,
        mut body: Value,
        tags: &BTreeMap<String, String>,
        create_only: bool,
        what: &str,
    ) -> Result<String, Error> {
        body["Name"] = json!(path);
        if !tags.is_empty() {
            body["Tags"] = json!(tags
                .iter()
                .map(|(k, v)| json!({ "Key": k, "Value": v }))
                .collect::<Vec<_>>());
        }
        match self.client.call("CreateSecret", &body, true) {
            Ok(answer) => version_id(&answer, what),
            Err(e) if e.is("ResourceExistsException") && create_only => {
                Err(Error::conflict(format!("{what}: the secret already exists")))
            }
            Err(e) if e.is("ResourceExistsException") => {
                // Created by someone else since we looked: write a version.
                let Some(map) = body.as_object_mut() else {
                    return Err(Error::internal("the request body is not an object"));
                };
                map.remove("Name");
                map.remove("Tags");
                map.insert("SecretId".into(), json!(path));
                let answer = self
                    .client
                    .call("PutSecretValue", &body, true)
                    .map_err(|e| e.into_error(what))?;
                version_id(&answer, what)
            }
            Err(e) if e.is_marked_for_deletion() => Err(Error::invalid_input(format!(
                "{what}: the secret was deleted and AWS keeps its name until the recovery window ends"
            ))),
            Err(e) => Err(e.into_error(what)),
        }
    }

    /// Writes a new version and makes it current only if `expected` still
    /// is (see the crate docs).
    fn put_if_current(&mut self, path: &str, mut body: Value, expected: &str, what: &str) -> Result<String, Error> {
        // A label of our own keeps the new version from being deprecated
        // (and hidden) before AWSCURRENT moves to it.
        let label = format!("tresor-cas-{}", &request_token()?[..8]);
        body["VersionStages"] = json!([label]);
        let answer = self
            .client
            .call("PutSecretValue", &body, true)
            .map_err(|e| e.into_error(what))?;
        let new = version_id(&answer, what)?;
        let moved = self.client.call(
            "UpdateSecretVersionStage",
            &json!({
                "SecretId": path,
                "VersionStage": "AWSCURRENT",
                "MoveToVersionId": new,
                "RemoveFromVersionId": expected,
            }),
            false,
        );
        // The helper label goes either way (best effort).
        let _ = self.client.call(
            "UpdateSecretVersionStage",
            &json!({ "SecretId": path, "VersionStage": label, "RemoveFromVersionId": new }),
            false,
        );
        match moved {
            Ok(_) => Ok(new),
            Err(e) if e.is("InvalidParameterException") || e.is("InvalidRequestException") => Err(Error::conflict(
                format!("{what}: the current version is no longer {expected}"),
            )),
            Err(e) => Err(e.into_error(what)),
        }
    }

    /// Changes the secret's tags from `from` to `to`.
    fn set_tags(
        &self,
        path: &str,
        from: &BTreeMap<String, String>,
        to: &BTreeMap<String, String>,
    ) -> Result<(), Error> {
        let what = format!("tagging `{path}` in AWS Secrets Manager");
        let removed: Vec<&String> = from.keys().filter(|k| !to.contains_key(*k)).collect();
        if !removed.is_empty() {
            self.client
                .call("UntagResource", &json!({ "SecretId": path, "TagKeys": removed }), true)
                .map_err(|e| e.into_error(&what))?;
        }
        let changed: Vec<Value> = to
            .iter()
            .filter(|(k, v)| from.get(*k) != Some(*v))
            .map(|(k, v)| json!({ "Key": k, "Value": v }))
            .collect();
        if !changed.is_empty() {
            self.client
                .call("TagResource", &json!({ "SecretId": path, "Tags": changed }), true)
                .map_err(|e| e.into_error(&what))?;
        }
        Ok(())
    }
}

export_provider!(AwsProvider);

/// True for something shaped like an AWS version id (32 to 64 letters,
/// digits and `-`, e.g. a UUID); other version strings are staging labels.
fn is_version_id(version: &str) -> bool {
    (32..=64).contains(&version.len()) && version.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// True for a possible staging label (1 to 256 characters).
fn is_stage(version: &str) -> bool {
    (1..=256).contains(&version.len()) && !version.chars().any(char::is_control)
}

/// A fresh random UUID (version 4) for `ClientRequestToken`.
fn request_token() -> Result<String, Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| Error::internal(format!("no randomness for a request token: {e}")))?;
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = sigv4::hex(&bytes);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

fn version_id(answer: &Value, what: &str) -> Result<String, Error> {
    answer
        .get("VersionId")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| Error::unavailable(format!("{what}: the answer has no VersionId")))
}

/// AWS's `CreatedDate` (seconds since the epoch, with a fraction) in milliseconds.
fn created_ms(value: Option<&Value>) -> u64 {
    value
        .and_then(Value::as_f64)
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(0, |s| (s * 1000.0).round() as u64)
}

fn no_secret(path: &str) -> Error {
    Error::not_found(format!("no secret `{path}` in AWS Secrets Manager"))
}

fn no_version(path: &str, version: &str) -> Error {
    Error::not_found(format!(
        "secret `{path}` has no version or staging label `{version}` in AWS Secrets Manager"
    ))
}

fn deleted(path: &str) -> Error {
    Error::not_found(format!(
        "secret `{path}` was deleted (AWS keeps it until its recovery window ends)"
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn configure_error(pairs: &[(&str, &str)]) -> String {
        let config = Config::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        match AwsProvider::configure(config) {
            Err(Error::InvalidInput(m)) => m,
            Err(other) => panic!("expected invalid-input, got {other:?}"),
            Ok(_) => panic!("expected {pairs:?} to be refused"),
        }
    }

    const GOOD: [(&str, &str); 3] = [
        ("region", "eu-west-1"),
        ("access_key_id", "AKIDEXAMPLE"),
        ("secret_access_key", "s3cr3t"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        GOOD.iter().copied().chain(extra.iter().copied()).collect()
    }

    #[test]
    fn configure_names_the_bad_key() {
        assert!(configure_error(&GOOD[1..]).contains("`region`"));
        assert!(configure_error(&GOOD[..2]).contains("`secret_access_key`"));
        assert!(configure_error(&with(&[("endpoint", "localhost:5000")])).contains("`endpoint`"));
        assert!(configure_error(&with(&[("recovery_window_days", "3")])).contains("`recovery_window_days`"));
        assert!(configure_error(&with(&[("force_delete", "yes")])).contains("`force_delete`"));
        assert!(!configure_error(&with(&[("region", "eu west")])).contains("s3cr3t"));
    }

    #[test]
    fn configure_refuses_a_misspelt_key() {
        let m = configure_error(&with(&[("force_delet", "true")]));
        assert!(
            m.contains("`force_delet`") && m.contains("did you mean `force_delete`"),
            "{m}"
        );
        assert!(!m.contains("s3cr3t"), "{m}");
    }

    #[test]
    fn configure_defaults_the_endpoint() {
        let config = Config::new(GOOD.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        let p = AwsProvider::configure(config).unwrap();
        assert_eq!(p.client.endpoint, "https://secretsmanager.eu-west-1.amazonaws.com");
        assert_eq!(p.recovery_window_days, 7);
        assert!(!p.force_delete);
        assert!(!p.capabilities().soft_delete && p.capabilities().check_and_set);
    }

    #[test]
    fn tells_version_ids_from_stages() {
        assert!(is_version_id("a1b2c3d4-5678-90ab-cdef-EXAMPLE11111"));
        assert!(!is_version_id("AWSCURRENT"));
        assert!(is_stage("AWSPREVIOUS"));
        assert!(!is_stage(""));
    }

    #[test]
    fn request_tokens_are_uuids() {
        let token = request_token().unwrap();
        assert_eq!(token.len(), 36);
        assert!(is_version_id(&token));
        assert_eq!(&token[14..15], "4");
        assert_ne!(token, request_token().unwrap());
    }

    #[test]
    fn created_dates_become_milliseconds() {
        assert_eq!(created_ms(Some(&json!(1523477145.713))), 1_523_477_145_713);
        assert_eq!(created_ms(Some(&json!(1523477145))), 1_523_477_145_000);
        assert_eq!(created_ms(None), 0);
    }
}
