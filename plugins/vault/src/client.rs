//! Talking to Vault: URLs, authentication (a token, or an AppRole login
//! cached for the life of the instance) and Vault's error answers.

use serde_json::Value;
use tresor_plugin_sdk::http::{self, Request, Response};
use tresor_plugin_sdk::Error;

use crate::encoding::encode_path;

/// How the plugin authenticates.
pub enum Auth {
    /// A fixed token (`token` in the mount's config).
    Token(String),
    /// AppRole: log in with `role_id` + `secret_id` at
    /// `auth/<approle_mount>/login` and cache the token.
    AppRole {
        /// The `auth/` mount of the AppRole method (default `approle`).
        mount: String,
        /// The role id.
        role_id: String,
        /// The secret id (a credential).
        secret_id: String,
    },
}

/// A Vault server and a KV v2 mount on it.
pub struct Client {
    /// `http(s)://host:port`, no trailing slash.
    pub address: String,
    /// The KV v2 mount (`secret`).
    pub mount: String,
    /// Sent as `X-Vault-Namespace` when set.
    pub namespace: Option<String>,
    /// How to get a token.
    pub auth: Auth,
    /// Connect / first-byte timeout of each request.
    pub timeout: std::time::Duration,
    /// The token in use (a fixed token, or the last AppRole login's).
    token: Option<String>,
}

/// One of the KV v2 endpoints under the mount.
#[derive(Clone, Copy)]
pub enum Endpoint {
    /// `data/`: read and write versions.
    Data,
    /// `metadata/`: versions, custom metadata, list, delete everything.
    Metadata,
    /// `delete/`: soft-delete versions.
    Delete,
    /// `undelete/`: restore soft-deleted versions.
    Undelete,
    /// `destroy/`: erase versions for good.
    Destroy,
}

impl Endpoint {
    fn as_str(self) -> &'static str {
        match self {
            Endpoint::Data => "data",
            Endpoint::Metadata => "metadata",
            Endpoint::Delete => "delete",
            Endpoint::Undelete => "undelete",
            Endpoint::Destroy => "destroy",
        }
    }
}

/// A Vault answer: its status and its JSON body (`null` when empty).
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The parsed body.
    pub body: Value,
}

impl Client {
    /// A client; nothing is sent until the first request.
    pub fn new(address: String, mount: String, namespace: Option<String>, auth: Auth) -> Client {
        let token = match &auth {
            Auth::Token(token) => Some(token.clone()),
            Auth::AppRole { .. } => None,
        };
        Client {
            address,
            mount,
            namespace,
            auth,
            timeout: http::DEFAULT_TIMEOUT,
            token,
        }
    }

    /// The URL of `endpoint` for the secret (or folder) at `path`.
    pub fn url(&self, endpoint: Endpoint, path: &str) -> String {
        format!(
            "{}/v1/{}/{}/{}",
            self.address,
            encode_path(&self.mount),
            endpoint.as_str(),
            encode_path(path)
        )
    }

    /// Sends `method url` with an optional JSON `body` and returns Vault's
    /// answer, whatever its status, after authenticating (and, with
    /// AppRole, logging in again once when Vault answers 403: the cached
    /// token may have expired).
    pub fn call(&mut self, method: &str, url: &str, body: Option<&Value>, what: &str) -> Result<Answer, Error> {
        let answer = self.call_once(method, url, body, what)?;
        if answer.status == 403 && matches!(self.auth, Auth::AppRole { .. }) {
            self.token = None;
            return self.call_once(method, url, body, what);
        }
        Ok(answer)
    }

    fn call_once(&mut self, method: &str, url: &str, body: Option<&Value>, what: &str) -> Result<Answer, Error> {
        let token = self.token()?;
        let mut request = self.request(method, url).header("X-Vault-Token", token);
        if let Some(body) = body {
            request = request.json(body.to_string());
        }
        let response = http::send(&request)?;
        answer(response, what)
    }

    fn request(&self, method: &str, url: &str) -> Request {
        let mut request = Request::new(method, url).timeout(self.timeout);
        if let Some(namespace) = &self.namespace {
            request = request.header("X-Vault-Namespace", namespace.as_str());
        }
        request
    }

    /// The token to send, logging in with AppRole when none is cached.
    fn token(&mut self) -> Result<String, Error> {
        if let Some(token) = &self.token {
            return Ok(token.clone());
        }
        let Auth::AppRole {
            mount,
            role_id,
            secret_id,
        } = &self.auth
        else {
            return Err(Error::internal("no Vault token and no AppRole to get one"));
        };
        let url = format!("{}/v1/auth/{}/login", self.address, encode_path(mount));
        let what = format!("logging in to Vault with AppRole at auth/{mount}/login");
        let body = serde_json::json!({ "role_id": role_id, "secret_id": secret_id });
        // A login is not idempotent in general (a secret_id may be single use).
        let request = self.request("POST", &url).json(body.to_string()).idempotent(false);
        let answer = answer(http::send(&request)?, &what)?;
        if answer.status != 200 {
            // Vault answers 400 for a wrong role_id or secret_id.
            return Err(match answer.error(&what) {
                Error::InvalidInput(m) | Error::NotFound(m) => {
                    Error::permission_denied(format!("{m}; check role_id and secret_id in the mount's config"))
                }
                other => other,
            });
        }
        let token = answer
            .body
            .pointer("/auth/client_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::unavailable(format!("{what}: Vault's answer has no auth.client_token")))?
            .to_owned();
        self.token = Some(token.clone());
        Ok(token)
    }
}

fn answer(response: Response, what: &str) -> Result<Answer, Error> {
    let body = if response.body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        match serde_json::from_slice(&response.body) {
            Ok(body) => body,
            // A proxy's HTML error page, say: let the status speak.
            Err(_) if !response.is_success() => Value::Null,
            Err(_) => {
                return Err(Error::unavailable(format!(
                    "{what}: Vault answered HTTP {} with a body that is not JSON; is `address` a Vault server?",
                    response.status
                )))
            }
        }
    };
    Ok(Answer {
        status: response.status,
        body,
    })
}

impl Answer {
    /// The contract error for this (non-2xx) answer: the SDK's mapping of
    /// the status, with Vault's own error messages appended (they describe
    /// the request, never a stored value).
    pub fn error(&self, what: &str) -> Error {
        let base = http::status_error(self.status, what)
            .unwrap_or_else(|| Error::unavailable(format!("{what}: unexpected answer HTTP {}", self.status)));
        let messages: Vec<&str> = self
            .body
            .get("errors")
            .and_then(Value::as_array)
            .map(|errors| errors.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if messages.is_empty() {
            return base;
        }
        let mut detail = messages.join("; ").replace(['\n', '\t'], " ");
        if detail.len() > 300 {
            let mut cut = 300;
            while !detail.is_char_boundary(cut) {
                cut -= 1;
            }
            detail.truncate(cut);
            detail.push('…');
        }
        let message = format!("{} (Vault: {detail})", base.message());
        match base {
            Error::NotFound(_) => Error::not_found(message),
            Error::InvalidInput(_) => Error::invalid_input(message),
            Error::Conflict(_) => Error::conflict(message),
            Error::PermissionDenied(_) => Error::permission_denied(message),
            Error::Unsupported(_) => Error::unsupported(message),
            Error::Internal(_) => Error::internal(message),
            Error::Unavailable(_) => Error::unavailable(message),
        }
    }

    /// True when Vault's error messages contain `needle`.
    pub fn mentions(&self, needle: &str) -> bool {
        self.body
            .get("errors")
            .and_then(Value::as_array)
            .is_some_and(|errors| errors.iter().filter_map(Value::as_str).any(|m| m.contains(needle)))
    }
}
