//! OAuth 2.0 access tokens for Secret Manager: a token given in the mount's
//! config, or one obtained for a service account by signing a JWT with its
//! key and exchanging it at Google's token endpoint (the JWT-bearer grant,
//! RFC 7523), cached until shortly before it expires.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::RsaPrivateKey;
use serde_json::{json, Value};
use sha2::Sha256;
use tresor_plugin_sdk::http::BearerAuth;
use tresor_plugin_sdk::http::{self, Request};
use tresor_plugin_sdk::Error;

/// The scope asked for: Secret Manager accepts nothing narrower.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Google's token endpoint, the default `token_uri`.
pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// The `aud` of every JWT-bearer assertion: Google wants its token
/// endpoint's canonical URL there, whatever URL the assertion is posted to.
pub const ASSERTION_AUDIENCE: &str = GOOGLE_TOKEN_URI;
/// How long a signed assertion is valid (Google's maximum is an hour).
const ASSERTION_LIFETIME_S: u64 = 3600;
/// A cached token is renewed this long before it expires.
const EXPIRY_MARGIN_S: u64 = 60;
/// Wall-clock readings before this (2001-09-09) mean the mount did not
/// grant the clock: the plugin then sees the Unix epoch.
const PLAUSIBLE_NOW_S: u64 = 1_000_000_000;

/// A service account's key, from its JSON key file.
pub struct ServiceAccount {
    /// `client_email`: the JWT's issuer.
    pub email: String,
    /// `private_key_id`: the JWT header's `kid`, when given.
    pub key_id: Option<String>,
    /// Where the JWT is exchanged for an access token.
    pub token_uri: String,
    /// `project_id`, the default project.
    pub project_id: Option<String>,
    key: SigningKey<Sha256>,
}

impl ServiceAccount {
    /// Reads a service-account key file's JSON. Errors name the field at
    /// fault, never its value.
    pub fn from_json(text: &str) -> Result<ServiceAccount, Error> {
        let bad = |why: &str| {
            Error::invalid_input(format!(
                "config key `service_account_json` {why}: paste the JSON key file of a service account \
                 (IAM > Service accounts > Keys > Add key > JSON)"
            ))
        };
        let json: Value = serde_json::from_str(text).map_err(|_| bad("is not valid JSON"))?;
        if let Some(kind) = json.get("type").and_then(Value::as_str) {
            if kind != "service_account" {
                return Err(bad(&format!("is a `{kind}` credential, not a `service_account` key")));
            }
        }
        let field = |name: &str| json.get(name).and_then(Value::as_str).filter(|s| !s.is_empty());
        let email = field("client_email").ok_or_else(|| bad("has no `client_email`"))?;
        let pem = field("private_key").ok_or_else(|| bad("has no `private_key`"))?;
        let key = RsaPrivateKey::from_pkcs8_pem(pem)
            .map_err(|_| bad("has a `private_key` that is not a PEM PKCS#8 RSA private key"))?;
        Ok(ServiceAccount {
            email: email.to_owned(),
            key_id: field("private_key_id").map(str::to_owned),
            token_uri: field("token_uri").unwrap_or(GOOGLE_TOKEN_URI).to_owned(),
            project_id: field("project_id").map(str::to_owned),
            key: SigningKey::<Sha256>::new(key),
        })
    }

    /// The signed JWT-bearer assertion, valid from `now` for an hour.
    pub fn assertion(&self, now: u64) -> String {
        let mut header = json!({ "alg": "RS256", "typ": "JWT" });
        if let Some(kid) = &self.key_id {
            header["kid"] = json!(kid);
        }
        let claims = json!({
            "iss": self.email,
            "scope": SCOPE,
            "aud": ASSERTION_AUDIENCE,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_S,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self.key.sign(signing_input.as_bytes()).to_bytes();
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// Where access tokens come from.
pub enum Credentials {
    /// A token from the mount's config (`access_token`), used as is.
    Static(String),
    /// A service account's key (`service_account_json`).
    ServiceAccount(Box<ServiceAccount>),
}

/// Hands out the bearer token for each request.
pub struct Auth {
    credentials: Credentials,
    /// The token in use and when it expires (seconds since the epoch;
    /// `None` for a static token).
    cached: Option<(String, Option<u64>)>,
    timeout: std::time::Duration,
}

impl Auth {
    /// Tokens from `credentials`; token requests use `timeout`.
    pub fn new(credentials: Credentials, timeout: std::time::Duration) -> Auth {
        let cached = match &credentials {
            Credentials::Static(token) => Some((token.clone(), None)),
            Credentials::ServiceAccount(_) => None,
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
        matches!(self.credentials, Credentials::ServiceAccount(_))
    }

    /// Forgets the cached token (the API refused it).
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
        let Credentials::ServiceAccount(account) = &self.credentials else {
            return Err(Error::internal("no access token and no service account to get one"));
        };
        let (token, lifetime) = exchange(account, now, self.timeout)?;
        self.cached = Some((token.clone(), Some(now + lifetime)));
        Ok(token)
    }
}

/// Signs an assertion and exchanges it at the account's `token_uri`:
/// the access token and its lifetime in seconds.
fn exchange(account: &ServiceAccount, now: u64, timeout: std::time::Duration) -> Result<(String, u64), Error> {
    if now < PLAUSIBLE_NOW_S {
        return Err(clock_not_granted());
    }
    let what = format!(
        "getting an access token for service account `{}` at {}",
        account.email, account.token_uri
    );
    let body = format!(
        "grant_type={}&assertion={}",
        form_encode("urn:ietf:params:oauth:grant-type:jwt-bearer"),
        form_encode(&account.assertion(now))
    );
    // Exchanging the same assertion twice is harmless: retry like a GET.
    let request = Request::post(&account.token_uri)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Accept", "application/json")
        .body(body)
        .timeout(timeout)
        .idempotent(true);
    let response = http::send(&request)?;
    let json: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    if !response.is_success() {
        // OAuth errors (`invalid_grant: Invalid JWT Signature.`) say what is
        // wrong with the key without revealing it.
        let reason = match (json.get("error").and_then(Value::as_str), json.get("error_description")) {
            (Some(error), Some(Value::String(description))) => format!(": {error}: {}", first_line(description)),
            (Some(error), _) => format!(": {error}"),
            _ => String::new(),
        };
        return Err(match response.status {
            400 | 401 | 403 => Error::permission_denied(format!(
                "{what}: the token endpoint refused the service account's key (HTTP {}{reason}); check \
                 `service_account_json` in the mount's config",
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
    let lifetime = json.get("expires_in").and_then(Value::as_u64).unwrap_or(3600);
    Ok((token.to_owned(), lifetime))
}

/// The error for a service account used without the clock grant.
pub fn clock_not_granted() -> Error {
    Error::invalid_input(
        "a service account needs the real time to sign its JWTs: grant the clock to the mount \
         (`grants.clock = true`)",
    )
}

/// Seconds since the Unix epoch by the wall clock the mount grants
/// (0 when it grants none).
pub fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether the wall clock looks real (the mount grants the clock).
pub fn clock_is_real() -> bool {
    now_s() >= PLAUSIBLE_NOW_S
}

/// `application/x-www-form-urlencoded` / query-component encoding.
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

fn first_line(text: &str) -> &str {
    let line = text.lines().next().unwrap_or("");
    match line.char_indices().nth(300) {
        Some((i, _)) => &line[..i],
        None => line,
    }
}
