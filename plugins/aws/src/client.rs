//! Calls to the Secrets Manager JSON API: one signed `POST /` per action,
//! named by `X-Amz-Target: secretsmanager.<Action>`, and AWS's error
//! answers mapped to contract errors.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tresor_plugin_sdk::http::{self, Request};
use tresor_plugin_sdk::sigv4::{self, Credentials, Signable};
use tresor_plugin_sdk::Error;

/// The service name in the credential scope.
const SERVICE: &str = "secretsmanager";
/// The JSON protocol's content type.
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// A Secrets Manager endpoint and the credentials to call it with.
pub struct Client {
    /// `https://secretsmanager.<region>.amazonaws.com`, or a local stand-in.
    pub endpoint: String,
    /// The region in the credential scope.
    pub region: String,
    /// The access key.
    pub credentials: Credentials,
    /// Connect / first-byte timeout of each request.
    pub timeout: std::time::Duration,
}

/// An error answer from AWS: its type (`ResourceNotFoundException`), its
/// message and the HTTP status.
#[derive(Debug)]
pub struct AwsError {
    /// The exception name without namespace.
    pub kind: String,
    /// AWS's message (it describes the request, never a secret value).
    pub message: String,
    /// The HTTP status.
    pub status: u16,
}

/// Why a call failed: AWS said no, or the call never got an AWS answer.
#[derive(Debug)]
pub enum CallError {
    /// An AWS error answer.
    Aws(AwsError),
    /// Transport failure, or an answer that is not AWS's JSON.
    Other(Error),
}

impl CallError {
    /// The AWS exception name, when AWS answered.
    pub fn kind(&self) -> Option<&str> {
        match self {
            CallError::Aws(e) => Some(&e.kind),
            CallError::Other(_) => None,
        }
    }

    /// True for an AWS error of this kind.
    pub fn is(&self, kind: &str) -> bool {
        self.kind() == Some(kind)
    }

    /// True when AWS refused because the secret is scheduled for deletion.
    pub fn is_marked_for_deletion(&self) -> bool {
        // AWS says "marked for deletion", moto "marked deleted".
        matches!(self, CallError::Aws(e) if e.kind == "InvalidRequestException"
            && (e.message.contains("deletion") || e.message.contains("marked deleted")))
    }

    /// The contract error, with `what` (the operation) in the message.
    pub fn into_error(self, what: &str) -> Error {
        match self {
            CallError::Other(e) => e,
            CallError::Aws(e) => e.into_error(what),
        }
    }
}

impl AwsError {
    /// Maps AWS's exception names (and, failing that, the status) to the
    /// contract's errors.
    pub fn into_error(self, what: &str) -> Error {
        let message = format!("{what}: AWS answered {} ({})", self.kind, self.message);
        match self.kind.as_str() {
            "ResourceNotFoundException" => Error::not_found(message),
            "ResourceExistsException" | "PreconditionNotMetException" => Error::conflict(message),
            "InvalidParameterException"
            | "InvalidRequestException"
            | "ValidationException"
            | "InvalidNextTokenException"
            | "LimitExceededException"
            | "MalformedPolicyDocumentException"
            | "EncryptionFailure"
            | "SerializationException" => Error::invalid_input(message),
            "AccessDeniedException"
            | "AccessDenied"
            | "UnrecognizedClientException"
            | "InvalidClientTokenId"
            | "InvalidSignatureException"
            | "SignatureDoesNotMatch"
            | "IncompleteSignature"
            | "MissingAuthenticationToken"
            | "ExpiredTokenException"
            | "DecryptionFailure" => Error::permission_denied(format!(
                "{message}; check the mount's access_key_id, secret_access_key and session_token"
            )),
            "ThrottlingException" | "InternalServiceError" | "InternalFailure" | "ServiceUnavailable" => {
                Error::unavailable(message)
            }
            _ => http::status_error(self.status, &message).unwrap_or_else(|| Error::unavailable(message)),
        }
    }
}

impl Client {
    /// Calls `action` with the JSON `body` and returns AWS's JSON answer.
    ///
    /// `idempotent` says whether the SDK may send the call again after a
    /// lost answer or a 5xx (reads, and writes carrying a
    /// `ClientRequestToken`, are).
    pub fn call(&self, action: &str, body: &Value, idempotent: bool) -> Result<Value, CallError> {
        let payload = body.to_string();
        let authority = authority(&self.endpoint);
        let path = path(&self.endpoint);
        let target = format!("secretsmanager.{action}");
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let amz_date = sigv4::amz_date(now);

        let mut signed: Vec<(&str, &str)> = vec![
            ("content-type", CONTENT_TYPE),
            ("host", authority),
            ("x-amz-date", &amz_date),
            ("x-amz-target", &target),
        ];
        if let Some(token) = &self.credentials.session_token {
            signed.push(("x-amz-security-token", token));
        }
        let authorization = sigv4::authorization(
            &self.credentials,
            &self.region,
            SERVICE,
            &amz_date,
            &Signable {
                method: "POST",
                path,
                query: &[],
                headers: &signed,
                payload: payload.as_bytes(),
            },
        );

        let mut request = Request::post(&self.endpoint)
            .timeout(self.timeout)
            .idempotent(idempotent)
            .header("Authorization", authorization);
        for (name, value) in &signed {
            if *name != "host" {
                request = request.header(name, *value);
            }
        }
        let response = http::send(&request.body(payload)).map_err(CallError::Other)?;
        let answer: Value = if response.body.is_empty() {
            Value::Object(Default::default())
        } else {
            match serde_json::from_slice(&response.body) {
                Ok(answer) => answer,
                Err(_) => {
                    let what = format!("calling {action}");
                    return Err(CallError::Other(
                        http::status_error(response.status, &what).unwrap_or_else(|| {
                            Error::unavailable(format!(
                                "{what}: the answer is not JSON; is `endpoint` a Secrets Manager endpoint?"
                            ))
                        }),
                    ));
                }
            }
        };
        if response.is_success() {
            return Ok(answer);
        }
        // `__type` may carry a namespace (`com.amazonaws...#Name`) or a
        // suffix (`Name:http://...`); the header is the fallback.
        let raw = answer
            .get("__type")
            .and_then(Value::as_str)
            .or_else(|| response.header("x-amzn-errortype"))
            .unwrap_or("");
        let kind = raw.rsplit('#').next().unwrap_or(raw);
        let kind = kind.split(':').next().unwrap_or(kind).to_owned();
        let message = answer
            .get("message")
            .or_else(|| answer.get("Message"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .chars()
            .take(300)
            .collect();
        Err(CallError::Aws(AwsError {
            kind: if kind.is_empty() {
                format!("HTTP {}", response.status)
            } else {
                kind
            },
            message,
            status: response.status,
        }))
    }
}

/// The `host[:port]` of an `http(s)://host[:port][/path]` URL.
fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

/// The path of an `http(s)://host[:port][/path]` URL (`/` when none).
fn path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    match rest.find('/') {
        Some(i) => &rest[i..],
        None => "/",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_endpoints() {
        assert_eq!(
            authority("https://secretsmanager.eu-west-1.amazonaws.com"),
            "secretsmanager.eu-west-1.amazonaws.com"
        );
        assert_eq!(authority("http://127.0.0.1:5000/"), "127.0.0.1:5000");
        assert_eq!(path("http://127.0.0.1:5000"), "/");
        assert_eq!(path("http://proxy:1/aws/sm"), "/aws/sm");
    }

    #[test]
    fn maps_aws_errors() {
        let e = |kind: &str, status| AwsError {
            kind: kind.into(),
            message: "m".into(),
            status,
        };
        assert!(matches!(
            e("ResourceNotFoundException", 400).into_error("x"),
            Error::NotFound(_)
        ));
        assert!(matches!(
            e("ResourceExistsException", 400).into_error("x"),
            Error::Conflict(_)
        ));
        assert!(matches!(
            e("InvalidParameterException", 400).into_error("x"),
            Error::InvalidInput(_)
        ));
        assert!(matches!(
            e("UnrecognizedClientException", 400).into_error("x"),
            Error::PermissionDenied(_)
        ));
        assert!(matches!(
            e("AccessDeniedException", 400).into_error("x"),
            Error::PermissionDenied(_)
        ));
        assert!(matches!(
            e("ThrottlingException", 400).into_error("x"),
            Error::Unavailable(_)
        ));
        assert!(matches!(
            e("InternalServiceError", 500).into_error("x"),
            Error::Unavailable(_)
        ));
        assert!(matches!(e("Unheard", 503).into_error("x"), Error::Unavailable(_)));
        assert!(matches!(e("Unheard", 403).into_error("x"), Error::PermissionDenied(_)));
        let marked = CallError::Aws(AwsError {
            kind: "InvalidRequestException".into(),
            message: "You can't perform this operation on the secret because it was marked for deletion.".into(),
            status: 400,
        });
        assert!(marked.is_marked_for_deletion());
    }
}
