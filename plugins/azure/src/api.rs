//! Talking to a Key Vault: URLs (api-version 7.4), the bearer token
//! (renewed once when the vault refuses it), `nextLink` paging and the
//! vault's error answers.

use std::time::Duration;

use serde_json::Value;
use tresor_plugin_sdk::http::{self, Request};
use tresor_plugin_sdk::Error;

use crate::auth::Auth;

/// The REST API version spoken.
pub const API_VERSION: &str = "7.4";
/// Items asked for per page of a list (the service's maximum).
const PAGE_SIZE: u32 = 25;
/// Most pages followed by one list.
const MAX_PAGES: usize = 4000;

/// One vault.
pub struct Client {
    /// `https://<name>.vault.azure.net`, no trailing slash.
    pub vault_url: String,
    /// Where bearer tokens come from.
    pub auth: Auth,
    /// Connect / first-byte timeout of each request.
    pub timeout: Duration,
}

/// An answer of the vault: its status and JSON body (`null` when empty).
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The parsed body.
    pub body: Value,
}

impl Answer {
    /// The vault's error code (`SecretNotFound`, `Forbidden`, ...), or `""`.
    pub fn code(&self) -> &str {
        self.body.pointer("/error/code").and_then(Value::as_str).unwrap_or("")
    }

    /// The inner error code (`SecretDisabled`, `ObjectIsDeletedButRecoverable`), or `""`.
    pub fn inner_code(&self) -> &str {
        self.body
            .pointer("/error/innererror/code")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// The vault's error message, or `""`. (It names secrets, never values.)
    pub fn message(&self) -> &str {
        self.body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// The contract error for a failed answer: the SDK's status mapping,
    /// with the vault's code and message appended.
    pub fn error(&self, what: &str) -> Error {
        let detail = match (self.code(), self.message()) {
            ("", "") => String::new(),
            (code, message) => format!(" ({code}: {})", clip(message, 300)),
        };
        http::status_error(self.status, &format!("{what}{detail}"))
            .unwrap_or_else(|| Error::unavailable(format!("{what}: unexpected HTTP {}{detail}", self.status)))
    }
}

impl Client {
    /// `<vault>/<path>?api-version=7.4` (`path` without a leading `/`,
    /// made of URL-safe characters only).
    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}?api-version={API_VERSION}", self.vault_url)
    }

    /// Sends `method url` with an optional JSON body and returns the answer,
    /// whatever its status. `idempotent` requests are retried by the SDK
    /// when the vault is unreachable or answers 5xx/429. When the vault
    /// refuses a token obtained with client credentials (401), a fresh one
    /// is fetched and the request sent once more.
    pub fn call(
        &mut self,
        method: &str,
        url: &str,
        body: Option<&Value>,
        idempotent: bool,
        what: &str,
    ) -> Result<Answer, Error> {
        let mut request = Request::new(method, url)
            .header("Accept", "application/json")
            .timeout(self.timeout)
            .idempotent(idempotent);
        if let Some(body) = body {
            request = request.json(body.to_string());
        }
        let response = http::send_with_bearer(&mut self.auth, &request)?;
        let body = if response.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&response.body).map_err(|_| {
                Error::unavailable(format!(
                    "{what}: the answer (HTTP {}) is not JSON; is `vault_url` a Key Vault?",
                    response.status
                ))
            })?
        };
        Ok(Answer {
            status: response.status,
            body,
        })
    }

    /// Every item of a list at `path` (`secrets`, `secrets/<name>/versions`),
    /// following `nextLink`; `None` when the vault answers 404.
    pub fn list_all(&mut self, path: &str, what: &str) -> Result<Option<Vec<Value>>, Error> {
        let mut items = Vec::new();
        let mut url = format!("{}&maxresults={PAGE_SIZE}", self.url(path));
        for _ in 0..MAX_PAGES {
            let answer = self.call("GET", &url, None, true, what)?;
            match answer.status {
                200 => {}
                404 => return Ok(None),
                _ => return Err(answer.error(what)),
            }
            if let Some(Value::Array(page)) = answer.body.get("value") {
                items.extend(page.iter().cloned());
            }
            match answer.body.get("nextLink").and_then(Value::as_str) {
                Some(next) if !next.is_empty() => {
                    // The bearer token goes with the next request: only ever
                    // to this vault.
                    if !next.starts_with(&format!("{}/", self.vault_url)) {
                        return Err(Error::unavailable(format!(
                            "{what}: the vault's nextLink points outside {}; refusing to send the token there",
                            self.vault_url
                        )));
                    }
                    url = next.to_owned();
                }
                _ => return Ok(Some(items)),
            }
        }
        Err(Error::unavailable(format!(
            "{what}: more than {MAX_PAGES} pages; list a narrower prefix"
        )))
    }
}

/// `text`, cut to at most `max` characters.
pub fn clip(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

/// The secret name and version in a Key Vault id
/// (`https://v.vault.azure.net/secrets/<name>[/<version>]`).
pub fn parse_id(id: &str) -> Option<(&str, Option<&str>)> {
    let (_, rest) = id.split_once("/secrets/")?;
    let mut parts = rest.split('/');
    let name = parts.next().filter(|n| !n.is_empty())?;
    let version = parts.next().filter(|v| !v.is_empty());
    Some((name, version))
}
