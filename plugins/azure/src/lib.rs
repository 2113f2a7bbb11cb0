//! A Tresor provider for Azure Key Vault secrets, over the vault's REST
//! API (api-version 7.4).
//!
//! The mount must grant the plugin network access to the vault's
//! `host:443` (`grants.network`) and, with client credentials, to the
//! authority (`login.microsoftonline.com:443`). Granting the clock lets the
//! plugin renew tokens before they expire (without it, a token is renewed
//! when the vault refuses it) and order versions written within the same
//! second.
//!
//! Mount configuration:
//!
//! | key               | meaning                                                                  |
//! |-------------------|--------------------------------------------------------------------------|
//! | `vault_url`       | required: `https://<vault-name>.vault.azure.net` (https only)           |
//! | `tenant_id`       | the directory (tenant) id, with `client_id` and `client_secret`; or:   |
//! | `access_token`    | a Key Vault access token, used as is                                    |
//! | `client_id`       | the application (client) id                                             |
//! | `client_secret`   | the application's client secret                                         |
//! | `authority`       | the Entra ID authority (default `https://login.microsoftonline.com`)   |
//! | `purge_on_delete` | `true`: `delete` also purges the soft-deleted secret (default `false`)  |
//! | `timeout_ms`      | connect and first-byte timeout of each request (default 3000)          |
//!
//! Any other key is refused when the mount starts, naming it.
//!
//! Give either `access_token`, or all of `tenant_id`, `client_id` and
//! `client_secret`: the plugin then gets tokens with the client-credentials
//! grant (scope `https://vault.azure.net/.default`) from
//! `<authority>/<tenant_id>/oauth2/v2.0/token`, cached in the instance.
//!
//! Names: Key Vault secret names are `[0-9a-zA-Z-]{1,127}` and
//! case-insensitive, so paths are mapped reversibly with
//! [`tresor_plugin_sdk::names`], `-` standing for `/` and only lower-case
//! letters and digits kept: `apps/db/prod` is the secret `apps-db-prod`;
//! any other byte is escaped as `--` + two hex digits (`apps/db-password`
//! is `apps-db--2dpassword`, `Apps` is `--41pps`). Secrets whose names are
//! not such an encoding (made by other tools) are not listed, except that
//! names are read case-insensitively (`DbPassword` lists as `dbpassword`,
//! which reads the same secret).
//!
//! Values: Key Vault stores strings. A value that is UTF-8 text is stored
//! as is (other Key Vault clients read it unchanged); other bytes are
//! stored in base64 with the content type `application/vnd.tresor.base64`,
//! which the plugin decodes on read. At most 25 KiB once stored.
//!
//! Versions are Key Vault's version ids (32 hex digits). `put` sets a new
//! version; there is no check-and-set. There is no `delete-versions` /
//! `undelete-versions`: Key Vault can disable a version but never erase one
//! alone, so the provider does not claim soft-delete; a version disabled
//! in Azure reads as `not-found` and lists as deleted. `versions` lists
//! oldest first by creation time, which
//! Key Vault keeps in whole seconds: within one second the plugin orders by
//! its own write time, kept in the tag `tresor-written-ms` (hidden from
//! metadata). `delete` soft-deletes the secret: Key Vault keeps it (and
//! reserves its name) for the vault's retention period, so writing the
//! same path again fails with `conflict` until it is purged or recovered;
//! `purge_on_delete = true` purges at once (the application then needs the
//! `purge` permission).
//!
//! Metadata is the version's tags (Key Vault keeps tags per version): at
//! most 14 (15 minus the plugin's own), keys up to 512 characters, values
//! up to 256.

pub mod api;
pub mod auth;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use tresor_plugin_sdk::names::NameCodec;
use tresor_plugin_sdk::{export_provider, http, Capabilities, Config, Error, Metadata, Provider, Secret, VersionInfo};

use crate::api::{clip, parse_id, Client};
use crate::auth::{Auth, ClientSecret, Credentials, DEFAULT_AUTHORITY};

/// Tresor paths as Key Vault secret names: see the crate docs.
pub const NAMES: NameCodec = NameCodec {
    separator: b'-',
    keep: |b| b.is_ascii_lowercase() || b.is_ascii_digit(),
    max_len: 127,
    case_insensitive: true,
    what: "Key Vault secret name",
};
/// The content type marking a value stored in base64.
pub const BASE64_CONTENT_TYPE: &str = "application/vnd.tresor.base64";
/// The tag holding the plugin's write time in milliseconds.
pub const WRITTEN_TAG: &str = "tresor-written-ms";
/// Key Vault's limits.
pub const MAX_VALUE_BYTES: usize = 25 * 1024;
const MAX_TAGS: usize = 15;
const MAX_TAG_KEY_CHARS: usize = 512;
const MAX_TAG_VALUE_CHARS: usize = 256;
/// How long `delete` waits for Key Vault to finish a deletion before
/// purging, in tries of [`PURGE_PAUSE`].
const PURGE_TRIES: u32 = 10;
const PURGE_PAUSE: Duration = Duration::from_millis(200);
/// The mount configuration keys this plugin reads (see the crate docs).
const CONFIG_KEYS: &[&str] = &[
    "vault_url",
    "tenant_id",
    "access_token",
    "client_id",
    "client_secret",
    "authority",
    "purge_on_delete",
    "timeout_ms",
];

/// The Azure Key Vault provider.
struct AzureProvider {
    client: Client,
    purge_on_delete: bool,
}

impl Provider for AzureProvider {
    const NAME: &'static str = "azure";

    fn configure(config: Config) -> Result<Self, Error> {
        config.check_keys(CONFIG_KEYS)?;
        let vault_url = https_base_url(config.require("vault_url")?, "vault_url")?;
        let timeout = match config.parse::<u64>("timeout_ms", "a whole number of milliseconds")? {
            Some(0) => {
                return Err(Error::invalid_input(
                    "config key `timeout_ms` must be positive: fix it in the mount's config",
                ))
            }
            Some(ms) => Duration::from_millis(ms),
            None => http::DEFAULT_TIMEOUT,
        };
        let purge_on_delete = config
            .parse::<bool>("purge_on_delete", "`true` or `false`")?
            .unwrap_or(false);
        let nonempty = |key: &str| config.get(key).map(str::trim).filter(|v| !v.is_empty());
        let app = (nonempty("tenant_id"), nonempty("client_id"), nonempty("client_secret"));
        let credentials = match (nonempty("access_token"), app) {
            (Some(token), (None, None, None)) => Credentials::Static(token.to_owned()),
            (None, (Some(tenant_id), Some(client_id), Some(client_secret))) => {
                if !tenant_id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
                {
                    return Err(Error::invalid_input(
                        "config key `tenant_id` must be a directory (tenant) id or domain, like \
                         `72f988bf-86f1-41af-91ab-2d7cd011db47` or `contoso.onmicrosoft.com`",
                    ));
                }
                Credentials::ClientSecret(ClientSecret {
                    authority: https_base_url(config.get("authority").unwrap_or(DEFAULT_AUTHORITY), "authority")?,
                    tenant_id: tenant_id.to_owned(),
                    client_id: client_id.to_owned(),
                    client_secret: client_secret.to_owned(),
                })
            }
            _ => {
                return Err(Error::invalid_input(
                    "the azure plugin needs credentials: set either config key `access_token`, or all of \
                     `tenant_id`, `client_id` and `client_secret` (client credentials), in the mount's config",
                ))
            }
        };
        Ok(AzureProvider {
            client: Client {
                vault_url,
                auth: Auth::new(credentials, timeout),
                timeout,
            },
            purge_on_delete,
        })
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            writable: true,
            versioned: true,
            deletable: true,
            listable: true,
            check_and_set: false,
            soft_delete: false,
        }
    }

    fn get(&mut self, path: &str, version: Option<&str>) -> Result<Secret, Error> {
        let name = NAMES.encode(path)?;
        let url = match version {
            None => self.client.url(&format!("secrets/{name}")),
            Some(v) if is_version_id(v) => self.client.url(&format!("secrets/{name}/{v}")),
            Some(v) => return Err(no_version(path, v)),
        };
        let what = format!("reading `{path}` from Key Vault");
        let answer = self.client.call("GET", &url, None, true, &what)?;
        match answer.status {
            200 => {}
            404 => {
                return Err(match version {
                    Some(v) => no_version(path, v),
                    None => no_secret(path),
                })
            }
            403 if answer.inner_code() == "SecretDisabled" => {
                return Err(Error::not_found(format!(
                    "{what}: that version is disabled in Key Vault (enable it there to read it)"
                )))
            }
            _ => return Err(answer.error(&what)),
        }
        let bundle = &answer.body;
        let version = bundle
            .get("id")
            .and_then(Value::as_str)
            .and_then(parse_id)
            .and_then(|(_, v)| v)
            .ok_or_else(|| malformed(&what, "id"))?
            .to_owned();
        let stored = bundle
            .get("value")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed(&what, "value"))?;
        let value = if bundle.get("contentType").and_then(Value::as_str) == Some(BASE64_CONTENT_TYPE) {
            STANDARD
                .decode(stored)
                .map_err(|_| Error::internal(format!("{what}: the value is marked base64 but is not")))?
        } else {
            stored.as_bytes().to_vec()
        };
        Ok(Secret {
            value,
            version,
            created_ms: created_ms(bundle),
            metadata: metadata_of(bundle),
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
                "check-and-set is not supported by the azure plugin: Key Vault cannot set a secret conditionally",
            ));
        }
        let name = NAMES.encode(path)?;
        let mut tags = tags_of(metadata)?;
        tags.insert(WRITTEN_TAG.to_owned(), Value::String(now_ms().to_string()));
        let mut body = Map::new();
        match String::from_utf8(value) {
            Ok(text) => {
                body.insert("value".into(), Value::String(text));
            }
            Err(bytes) => {
                body.insert("value".into(), Value::String(STANDARD.encode(bytes.as_bytes())));
                body.insert("contentType".into(), json!(BASE64_CONTENT_TYPE));
            }
        }
        let stored_len = body.get("value").and_then(Value::as_str).map_or(0, str::len);
        if stored_len > MAX_VALUE_BYTES {
            return Err(Error::invalid_input(format!(
                "the value takes {stored_len} bytes in Key Vault: it stores at most {MAX_VALUE_BYTES} bytes per \
                 secret (values that are not UTF-8 text grow by a third in base64)"
            )));
        }
        body.insert("tags".into(), Value::Object(tags));
        let what = format!("writing `{path}` to Key Vault");
        let url = self.client.url(&format!("secrets/{name}"));
        // Not retried: a second attempt after a lost answer would add a second version.
        let answer = self
            .client
            .call("PUT", &url, Some(&Value::Object(body)), false, &what)?;
        match answer.status {
            200 => {}
            409 if answer.inner_code() == "ObjectIsDeletedButRecoverable" => {
                return Err(Error::conflict(format!(
                    "{what}: the secret was deleted and Key Vault keeps its name until it is purged or recovered; \
                     purge it (or set `purge_on_delete = true` on the mount so that deletes purge)"
                )))
            }
            _ => return Err(answer.error(&what)),
        }
        answer
            .body
            .get("id")
            .and_then(Value::as_str)
            .and_then(parse_id)
            .and_then(|(_, v)| v)
            .map(str::to_owned)
            .ok_or_else(|| malformed(&what, "id"))
    }

    fn delete(&mut self, path: &str) -> Result<(), Error> {
        let name = NAMES.encode(path)?;
        let what = format!("deleting `{path}` from Key Vault");
        let url = self.client.url(&format!("secrets/{name}"));
        let answer = self.client.call("DELETE", &url, None, true, &what)?;
        match answer.status {
            200 => {}
            // Deleted before but not purged (a purge that gave up): purge now.
            404 if self.purge_on_delete => return self.purge(path, &name, true),
            404 => return Err(no_secret(path)),
            _ => return Err(answer.error(&what)),
        }
        if self.purge_on_delete {
            self.purge(path, &name, false)?;
        }
        Ok(())
    }

    fn list(&mut self, prefix: &str) -> Result<Vec<String>, Error> {
        let what = format!("listing `{prefix}` in Key Vault");
        let items = self
            .client
            .list_all("secrets", &what)?
            .ok_or_else(|| Error::not_found(format!("{what}: the vault answered 404; check `vault_url`")))?;
        let mut paths: Vec<String> = items
            .iter()
            .filter_map(|item| item.get("id").and_then(Value::as_str).and_then(parse_id))
            .filter_map(|(name, _)| NAMES.decode(name))
            .filter(|path| path.starts_with(prefix))
            .collect();
        paths.sort();
        paths.dedup();
        Ok(paths)
    }

    fn versions(&mut self, path: &str) -> Result<Vec<VersionInfo>, Error> {
        let mut versions: Vec<(u64, u64, VersionInfo)> = self
            .version_items(path)?
            .iter()
            .filter_map(|item| {
                let version = item.get("id")?.as_str().and_then(parse_id)?.1?.to_owned();
                let enabled = item
                    .pointer("/attributes/enabled")
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                let written = item
                    .pointer(&format!("/tags/{WRITTEN_TAG}"))
                    .and_then(Value::as_str)
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
                let created = created_ms(item);
                Some((
                    created,
                    written,
                    VersionInfo {
                        version,
                        created_ms: created,
                        deleted: !enabled,
                        destroyed: false,
                        metadata: metadata_of(item),
                        deletion_ms: 0,
                    },
                ))
            })
            .collect();
        versions.sort_by(|a, b| (a.0, a.1, &a.2.version).cmp(&(b.0, b.1, &b.2.version)));
        Ok(versions.into_iter().map(|(_, _, info)| info).collect())
    }
}

impl AzureProvider {
    /// Every version item of the secret at `path`, or `not-found`.
    fn version_items(&mut self, path: &str) -> Result<Vec<Value>, Error> {
        let name = NAMES.encode(path)?;
        let what = format!("listing the versions of `{path}` in Key Vault");
        self.client
            .list_all(&format!("secrets/{name}/versions"), &what)?
            .ok_or_else(|| no_secret(path))
    }

    /// Purges the soft-deleted secret `name`. Right after a delete, Key
    /// Vault may still be deleting it (409, or 404 from the deleted-secrets
    /// collection): wait a little and try again. `must_exist`: a missing
    /// deleted secret is `not-found` at once.
    fn purge(&mut self, path: &str, name: &str, must_exist: bool) -> Result<(), Error> {
        let what = format!("purging the deleted secret `{path}` from Key Vault");
        let url = self.client.url(&format!("deletedsecrets/{name}"));
        let mut pending = 0;
        for _ in 0..PURGE_TRIES {
            let answer = self.client.call("DELETE", &url, None, true, &what)?;
            pending = match answer.status {
                200 | 204 => return Ok(()),
                404 if must_exist => return Err(no_secret(path)),
                404 | 409 => answer.status,
                _ => return Err(answer.error(&what)),
            };
            std::thread::sleep(PURGE_PAUSE);
        }
        if pending == 404 {
            // Never appeared among the deleted secrets: purged by someone else.
            return Ok(());
        }
        Err(Error::unavailable(format!(
            "{what}: Key Vault was still deleting it; delete `{path}` again later to purge it"
        )))
    }
}

export_provider!(AzureProvider);

/// The `https://host[:port]` in config key `key`, without a trailing `/`.
fn https_base_url(raw: &str, key: &str) -> Result<String, Error> {
    let url = raw.trim().trim_end_matches('/');
    if url.starts_with("http://") {
        return Err(Error::invalid_input(format!(
            "config key `{key}` must be an https:// URL: Key Vault and Entra ID only serve https, and tokens must \
             not travel in clear text; fix it in the mount's config"
        )));
    }
    let rest = url.strip_prefix("https://");
    if !rest.is_some_and(|r| !r.is_empty() && !r.contains(['/', '?', '#', '@', ' '])) {
        return Err(Error::invalid_input(format!(
            "config key `{key}` must be a base URL, `https://host[:port]` (no path), like \
             `https://my-vault.vault.azure.net`: fix it in the mount's config"
        )));
    }
    Ok(url.to_owned())
}

/// Key Vault version ids: 32 hex digits (accepting any short alphanumeric
/// id keeps the plugin working if that ever changes).
fn is_version_id(v: &str) -> bool {
    !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Checks that metadata can be Key Vault tags.
fn tags_of(metadata: Metadata) -> Result<Map<String, Value>, Error> {
    let tags: BTreeMap<String, String> = metadata.into_iter().collect();
    if tags.len() > MAX_TAGS - 1 {
        return Err(Error::invalid_input(format!(
            "{} metadata keys: Key Vault keeps at most {MAX_TAGS} tags per version, and the plugin uses one",
            tags.len()
        )));
    }
    let mut out = Map::new();
    for (key, value) in tags {
        if key.is_empty() || key.chars().count() > MAX_TAG_KEY_CHARS || key == WRITTEN_TAG {
            return Err(Error::invalid_input(format!(
                "metadata key `{}` cannot be a Key Vault tag: keys are 1-{MAX_TAG_KEY_CHARS} characters, and \
                 `{WRITTEN_TAG}` is the plugin's own",
                clip(&key, 80)
            )));
        }
        if value.chars().count() > MAX_TAG_VALUE_CHARS {
            return Err(Error::invalid_input(format!(
                "the value of metadata key `{key}` is too long for a Key Vault tag: at most {MAX_TAG_VALUE_CHARS} \
                 characters"
            )));
        }
        out.insert(key, Value::String(value));
    }
    Ok(out)
}

/// The tags of a bundle or item, without the plugin's own.
fn metadata_of(bundle: &Value) -> Metadata {
    let mut pairs: Metadata = bundle
        .get("tags")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(k, _)| *k != WRITTEN_TAG)
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect();
    pairs.sort();
    pairs
}

/// `attributes.created` (whole seconds) in milliseconds, 0 when absent.
fn created_ms(bundle: &Value) -> u64 {
    bundle
        .pointer("/attributes/created")
        .and_then(Value::as_u64)
        .map_or(0, |s| s.saturating_mul(1000))
}

/// The plugin's wall clock in milliseconds (0 without the clock grant).
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn no_secret(path: &str) -> Error {
    Error::not_found(format!("secret `{path}` does not exist in Key Vault"))
}

fn no_version(path: &str, version: &str) -> Error {
    Error::not_found(format!(
        "secret `{path}` has no version `{}` in Key Vault (or does not exist)",
        clip(version, 70)
    ))
}

fn malformed(what: &str, field: &str) -> Error {
    Error::unavailable(format!(
        "{what}: the answer has no valid `{field}`; is `vault_url` a Key Vault?"
    ))
}

#[cfg(test)]
mod tests;
