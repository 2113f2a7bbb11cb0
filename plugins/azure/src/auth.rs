//! Access tokens for Key Vault: a token given in the mount's config, or one
//! obtained from Microsoft Entra ID with the OAuth 2.0 client-credentials
//! grant (an application's client id and secret), cached until shortly
//! before it expires.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tresor_plugin_sdk::http::BearerAuth;
use tresor_plugin_sdk::http::{self, Request};
use tresor_plugin_sdk::Error;

/// The scope of a token for any Key Vault.
pub const SCOPE: &str = "https://vault.azure.net/.default";
/// The public cloud's authority, the default `authority`.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// A cached token is renewed this long before it expires.
const EXPIRY_MARGIN_S: u64 = 60;

/// An application registered in Microsoft Entra ID.
pub struct ClientSecret {
    /// `https://login.microsoftonline.com`, no trailing slash.
    pub authority: String,
    /// The directory (tenant) id or domain.
    pub tenant_id: String,
    /// The application (client) id.
    pub client_id: String,
    /// The client secret (a credential).
    pub client_secret: String,
}

impl ClientSecret {
    /// The tenant's token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.authority, self.tenant_id)
    }
}

/// Where access tokens come from.
pub enum Credentials {
    /// A token from the mount's config (`access_token`), used as is.
    Static(String),
    /// Client credentials (`tenant_id`, `client_id`, `client_secret`).
    ClientSecret(ClientSecret),
}

/// Hands out the bearer token for each request.
pub struct Auth {
    credentials: Credentials,
    /// The token in use and when it expires (seconds since the epoch;
    /// `None` when unknown: a static token, or no clock granted).
    cached: Option<(String, Option<u64>)>,
    timeout: Duration,
}

impl Auth {
    /// Tokens from `credentials`; token requests use `timeout`.
    pub fn new(credentials: Credentials, timeout: Duration) -> Auth {
        let cached = match &credentials {
            Credentials::Static(token) => Some((token.clone(), None)),
            Credentials::ClientSecret(_) => None,
        };
        Auth {
            credentials,
            cached,
            timeout,
        }
    }
}

impl BearerAuth for Auth {
    /// Whether a refused token can be replaced by a fresh one.
    fn can_refresh(&self) -> bool {
        matches!(self.credentials, Credentials::ClientSecret(_))
    }

    /// Forgets the cached token (the vault refused it).
    fn invalidate(&mut self) {
        if self.can_refresh() {
            self.cached = None;
        }
    }

    /// The token to send, fetching a new one when none is cached or the
    /// cached one is about to expire.
    fn bearer(&mut self) -> Result<String, Error> {
        let now = now_s();
        if let Some((token, expires)) = &self.cached {
            if expires.is_none_or(|at| now + EXPIRY_MARGIN_S < at) {
                return Ok(token.clone());
            }
        }
        let Credentials::ClientSecret(app) = &self.credentials else {
            return Err(Error::internal("no access token and no client credentials to get one"));
        };
        let (token, lifetime) = request_token(app, self.timeout)?;
        // Without the clock grant `now` is 0: keep the token until the
        // vault refuses it.
        let expires = (now > 0).then_some(now + lifetime);
        self.cached = Some((token.clone(), expires));
        Ok(token)
    }
}

/// Asks the tenant's token endpoint for a Key Vault token: the token and
/// its lifetime in seconds.
fn request_token(app: &ClientSecret, timeout: Duration) -> Result<(String, u64), Error> {
    let url = app.token_url();
    let what = format!(
        "getting a Key Vault token for application `{}` from {url}",
        app.client_id
    );
    let body = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
        form_encode(&app.client_id),
        form_encode(&app.client_secret),
        form_encode(SCOPE)
    );
    // Asking twice for a token is harmless: retry like a GET.
    let request = Request::post(&url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Accept", "application/json")
        .body(body)
        .timeout(timeout)
        .idempotent(true);
    let response = http::send(&request)?;
    let json: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    if !response.is_success() {
        // `invalid_client: AADSTS7000215: Invalid client secret provided.`
        // says what is wrong without revealing the secret.
        let reason = match (json.get("error").and_then(Value::as_str), json.get("error_description")) {
            (Some(error), Some(Value::String(description))) => {
                format!(": {error}: {}", first_sentence(description))
            }
            (Some(error), _) => format!(": {error}"),
            _ => String::new(),
        };
        return Err(match response.status {
            400 | 401 | 403 => Error::permission_denied(format!(
                "{what}: Microsoft Entra ID refused the client credentials (HTTP {}{reason}); check \
                 `tenant_id`, `client_id` and `client_secret` in the mount's config",
                response.status
            )),
            status => http::status_error(status, &format!("{what}{reason}"))
                .unwrap_or_else(|| Error::unavailable(format!("{what}: unexpected HTTP {status}"))),
        });
    }
    let token = json
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::unavailable(format!("{what}: the answer has no `access_token`")))?;
    // v2.0 endpoints answer a number, v1.0 a string.
    let lifetime = match json.get("expires_in") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .unwrap_or(3600);
    Ok((token.to_owned(), lifetime))
}

/// Seconds since the Unix epoch by the wall clock the mount grants
/// (0 when it grants none).
fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `application/x-www-form-urlencoded` encoding.
pub fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The first sentence of an Entra ID error description (the rest is trace
/// and correlation ids), at most 300 characters.
fn first_sentence(text: &str) -> &str {
    let line = text.lines().next().unwrap_or("");
    let end = line.find(". ").map_or(line.len(), |i| i + 1);
    let sentence = &line[..end];
    match sentence.char_indices().nth(300) {
        Some((i, _)) => &sentence[..i],
        None => sentence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_descriptions_keep_their_first_sentence() {
        assert_eq!(
            first_sentence(
                "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent...\r\nTrace ID: x"
            ),
            "AADSTS7000215: Invalid client secret provided."
        );
        assert_eq!(first_sentence("no period"), "no period");
    }

    #[test]
    fn token_url_is_the_tenants_v2_endpoint() {
        let app = ClientSecret {
            authority: DEFAULT_AUTHORITY.into(),
            tenant_id: "contoso.onmicrosoft.com".into(),
            client_id: "c".into(),
            client_secret: "s".into(),
        };
        assert_eq!(
            app.token_url(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert_eq!(form_encode(SCOPE), "https%3A%2F%2Fvault.azure.net%2F.default");
    }
}
