//! A client of a Tresor server for Rust programs (and for the `tresor`
//! client commands, which use it too): read and write secrets, list them,
//! hold dynamic credentials whose leases renew themselves, and watch
//! secrets change. Failures are [`ClientError`]s: match on the variant
//! (`NotFound`, `Denied`, `Unreachable`, ...) or print it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tresor::client::ClientError> {
//! use tresor::client::Client;
//! // TRESOR_ADDR / VAULT_ADDR, TRESOR_TOKEN / VAULT_TOKEN, TRESOR_CACERT for https.
//! let client = Client::from_env()?;
//! let db = client.get("secret/apps/billing/db").await?;
//! let password = db["password"].as_str().unwrap_or_default();
//! // Several at once; each path answers for itself.
//! for (path, result) in client.get_many(&["secret/apps/a", "secret/apps/b"]).await {
//!     println!("{path}: {}", if result.is_ok() { "ok" } else { "failed" });
//! }
//! // A database user for as long as `creds` lives: renewed before it
//! // expires, revoked when dropped (or by `creds.revoke().await`).
//! let creds = client.get_dynamic("db/readonly", Some("1h")).await?;
//! let user = creds.field("username");
//! // Each change under a prefix, as it happens (never the value).
//! let mut changes = client.watch("secret/apps/").await?;
//! if let Some(change) = changes.next().await {
//!     println!("{} changed: {}", change?.path, "read it again");
//! }
//! # let _ = (password, user);
//! # Ok(()) }
//! ```
//!
//! Python programs get the same from `hvac`: `client.secrets.kv.v2.read_secret_version(path=..., mount_point="secret")`,
//! `client.write(...)`, and `client.sys.renew_lease` / `revoke_lease` for leases.

mod transport;
mod watch;

use std::time::Duration;

use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

pub use transport::{api_error, encode_path, invalid_json, Client, ClientError};
pub use watch::{ChangeEvent, Watch};

/// The fields of one version of a secret. Values are secret: do not log them.
pub type Fields = Map<String, Value>;

impl Client {
    /// The latest fields of `<mount>/<path>`.
    pub async fn get(&self, path: &str) -> Result<Fields, ClientError> {
        let (mount, rest) = split(path)?;
        let url = format!("/v1/{}/data/{}", encode_path(mount), encode_path(rest));
        let (status, body) = self.send("GET", &url, None).await?;
        if status == hyper::StatusCode::NOT_FOUND {
            return Err(ClientError::NotFound { path: path.to_string() });
        }
        if !status.is_success() {
            return Err(api_error(status, &body));
        }
        let mut answer: Value = serde_json::from_slice(&body).map_err(invalid_json)?;
        match answer["data"]["data"].take() {
            Value::Object(m) => Ok(m),
            _ => Err(ClientError::InvalidAnswer(format!("{path} holds no key/value data"))),
        }
    }

    /// Read several secrets concurrently: one result per path, in order; a
    /// path that fails (missing, denied) does not fail the others.
    pub async fn get_many(&self, paths: &[&str]) -> Vec<(String, Result<Fields, ClientError>)> {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, path) in paths.iter().enumerate() {
            let (client, path) = (self.clone(), path.to_string());
            tasks.spawn(async move {
                let result = client.get(&path).await;
                (i, path, result)
            });
        }
        let mut out: Vec<Option<(String, Result<Fields, ClientError>)>> = (0..paths.len()).map(|_| None).collect();
        while let Some(done) = tasks.join_next().await {
            if let Ok((i, path, result)) = done {
                out[i] = Some((path, result));
            }
        }
        out.into_iter()
            .zip(paths)
            .map(|(r, p)| {
                r.unwrap_or_else(|| {
                    (
                        p.to_string(),
                        Err(ClientError::Transport("the request's task ended early".into())),
                    )
                })
            })
            .collect()
    }

    /// Write `fields` as a new version of `<mount>/<path>`, then (when
    /// given) set its custom metadata; returns the new version.
    pub async fn set(
        &self,
        path: &str,
        fields: &Fields,
        metadata: Option<&Map<String, Value>>,
    ) -> Result<u64, ClientError> {
        let (mount, rest) = split(path)?;
        let url = format!("/v1/{}/data/{}", encode_path(mount), encode_path(rest));
        let body = Zeroizing::new(json!({ "data": fields }).to_string().into_bytes());
        let (status, answer) = self.send("POST", &url, Some(body)).await?;
        if !status.is_success() {
            return Err(api_error(status, &answer));
        }
        let answer: Value = serde_json::from_slice(&answer).unwrap_or_default();
        let mut version = answer["data"]["version"].as_u64().unwrap_or(0);
        if let Some(meta) = metadata {
            let url = format!("/v1/{}/metadata/{}", encode_path(mount), encode_path(rest));
            self.json("POST", &url, Some(&json!({ "custom_metadata": meta })))
                .await?;
            // Tresor keeps custom metadata with the versions: that was one more.
            let read = self.json("GET", &url, None).await?;
            version = read["data"]["current_version"].as_u64().unwrap_or(version);
        }
        Ok(version)
    }

    /// The names under `<mount>/<prefix>` (folders end with `/`); empty
    /// when there are none.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, ClientError> {
        let prefix = prefix.trim_matches('/');
        let (mount, rest) = prefix.split_once('/').unwrap_or((prefix, ""));
        let url = format!("/v1/{}/metadata/{}?list=true", encode_path(mount), encode_path(rest));
        let (status, body) = self.send("GET", &url, None).await?;
        if status == hyper::StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        if !status.is_success() {
            return Err(api_error(status, &body));
        }
        let answer: Value = serde_json::from_slice(&body).map_err(invalid_json)?;
        Ok(answer["data"]["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect())
    }

    /// Delete `<mount>/<path>` and all its versions.
    pub async fn delete(&self, path: &str) -> Result<(), ClientError> {
        let (mount, rest) = split(path)?;
        let url = format!("/v1/{}/metadata/{}", encode_path(mount), encode_path(rest));
        self.json("DELETE", &url, None).await.map(drop)
    }

    /// Rotate the secret at `path` (`mount/path`) now, by the server's
    /// rotation rule for it; answers the rotation's JSON (`version`,
    /// `previous_version`, `next_rotation`).
    pub async fn rotate(&self, path: &str) -> Result<Value, ClientError> {
        let (mount, rest) = split(path)?;
        let url = format!("/v1/sys/rotate/{}/{}", encode_path(mount), encode_path(rest));
        let answer = self.json("POST", &url, Some(&json!({}))).await?;
        Ok(answer["data"].clone())
    }

    /// A dynamic credential from `<mount>/<role>` (`db/readonly`), with a
    /// lease of `ttl` (e.g. `"1h"`; the role's default when `None`). The
    /// lease is renewed at half its duration while the handle lives, and
    /// revoked when it is dropped or [`revoke`](DynamicCredential::revoke)d.
    pub async fn get_dynamic(&self, role: &str, ttl: Option<&str>) -> Result<DynamicCredential, ClientError> {
        let (mount, role_name) = split(role)?;
        let url = format!("/v1/{}/creds/{}", encode_path(mount), encode_path(role_name));
        let body = ttl.map(|t| Zeroizing::new(json!({ "ttl": t }).to_string().into_bytes()));
        let (status, bytes) = self.send("POST", &url, body).await?;
        if !status.is_success() {
            return Err(api_error(status, &bytes));
        }
        let mut answer: Value = serde_json::from_slice(&bytes).map_err(invalid_json)?;
        let lease_id = answer["lease_id"].as_str().unwrap_or_default().to_string();
        let lease_seconds = answer["lease_duration"].as_u64().unwrap_or(0);
        let renewable = answer["renewable"].as_bool().unwrap_or(false);
        let fields = match answer["data"].take() {
            Value::Object(m) => m,
            _ => {
                return Err(ClientError::InvalidAnswer(format!(
                    "{role} answered no credential fields"
                )))
            }
        };
        let renewer = (renewable && lease_seconds > 0).then(|| {
            let (client, id) = (self.clone(), lease_id.clone());
            tokio::spawn(async move {
                let mut every = lease_seconds;
                loop {
                    tokio::time::sleep(Duration::from_millis(every * 500)).await;
                    let body = json!({ "lease_id": id, "increment": lease_seconds });
                    match client.json("PUT", "/v1/sys/leases/renew", Some(&body)).await {
                        Ok(a) => every = a["lease_duration"].as_u64().filter(|d| *d > 0).unwrap_or(every),
                        Err(e) => tracing::warn!(lease = %id, error = %e, "renewing a dynamic credential failed"),
                    }
                }
            })
        });
        Ok(DynamicCredential {
            client: self.clone(),
            lease_id,
            lease_seconds,
            fields,
            renewer,
            revoked: false,
        })
    }
}

/// A dynamic credential and its lease, renewed in the background while it
/// lives. Dropping it revokes the lease (from a task on the current tokio
/// runtime); [`revoke`](Self::revoke) does it now and reports the result.
pub struct DynamicCredential {
    client: Client,
    lease_id: String,
    lease_seconds: u64,
    fields: Fields,
    renewer: Option<tokio::task::JoinHandle<()>>,
    revoked: bool,
}

impl std::fmt::Debug for DynamicCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamicCredential")
            .field("lease_id", &self.lease_id)
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl DynamicCredential {
    /// The lease id (`db/creds/readonly/...`).
    pub fn lease_id(&self) -> &str {
        &self.lease_id
    }

    /// The lease's duration when it was issued, in seconds.
    pub fn lease_seconds(&self) -> u64 {
        self.lease_seconds
    }

    /// A field of the credential (`username`, `password`, ...), as text.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(Value::as_str)
    }

    /// Revoke the lease now: the credential stops working.
    pub async fn revoke(mut self) -> Result<(), ClientError> {
        self.stop_renewing();
        self.revoked = true;
        let body = json!({ "lease_id": self.lease_id });
        self.client
            .json("PUT", "/v1/sys/leases/revoke", Some(&body))
            .await
            .map(drop)
    }

    fn stop_renewing(&mut self) {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
    }
}

impl Drop for DynamicCredential {
    fn drop(&mut self) {
        self.stop_renewing();
        if self.revoked {
            return;
        }
        let (client, id) = (self.client.clone(), self.lease_id.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    let body = json!({ "lease_id": id });
                    if let Err(e) = client.json("PUT", "/v1/sys/leases/revoke", Some(&body)).await {
                        tracing::warn!(lease = %id, error = %e, "revoking a dropped dynamic credential failed");
                    }
                });
            }
            Err(_) => {
                tracing::warn!(lease = %self.lease_id, "a dynamic credential dropped outside a tokio runtime is not revoked; it ends with its lease")
            }
        }
    }
}

/// `mount/rest` of a path.
fn split(path: &str) -> Result<(&str, &str), ClientError> {
    path.trim_matches('/')
        .split_once('/')
        .filter(|(m, r)| !m.is_empty() && !r.is_empty())
        .ok_or_else(|| ClientError::InvalidPath(format!("`{path}` is not <mount>/<path>, e.g. secret/apps/db")))
}
