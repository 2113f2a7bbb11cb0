//! Errors of the HTTP API in Vault's shape: a status code and
//! `{"errors": ["..."]}`. Messages never carry a secret value or a token.

use hyper::StatusCode;

use crate::error::Error;

/// An HTTP error answer.
#[derive(Debug)]
pub struct ApiError {
    /// The status code.
    pub status: StatusCode,
    /// The messages (`errors`); empty for a plain Vault-style 404.
    pub errors: Vec<String>,
    /// For 405: the methods the route accepts (`Allow` header).
    pub allow: Option<&'static str>,
    /// A whole answer in place of `{"errors": [...]}` (Vault answers some
    /// 404s with data, such as a deleted version's metadata).
    pub body: Option<serde_json::Value>,
}

impl ApiError {
    /// An error with one message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            errors: vec![message.into()],
            allow: None,
            body: None,
        }
    }

    /// Vault's bare 404 (`{"errors": []}`), as for an empty listing.
    pub fn bare_not_found() -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            errors: Vec::new(),
            allow: None,
            body: None,
        }
    }

    /// The same status with `body` as the whole answer.
    pub fn with_body(self, body: serde_json::Value) -> Self {
        ApiError {
            body: Some(body),
            ..self
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 403: no valid credential, or the policies deny it.
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }

    /// 404: nothing there.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// 404 for a path no route serves, worded like Vault.
    pub fn no_route(path: &str) -> Self {
        ApiError::not_found(format!(
            "no handler for route \"{}\". route entry not found.",
            printable(path)
        ))
    }

    /// 405 with the methods the route accepts.
    pub fn method_not_allowed(method: &str, route: &str, allow: &'static str) -> Self {
        ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            errors: vec![format!(
                "unsupported operation: {} is not supported on {route}; use {allow}",
                printable(method)
            )],
            allow: Some(allow),
            body: None,
        }
    }

    /// 413: the body is larger than `[server] max_request_bytes`.
    pub fn too_large(limit: usize) -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {limit} bytes (server max_request_bytes)"),
        )
    }
}

/// Vault's message for a lost check-and-set.
pub const CAS_MISMATCH: &str = "check-and-set parameter did not match the current version";

/// The status code for an access-path error.
pub fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::Denied { .. } => StatusCode::FORBIDDEN,
        Error::UnknownMount { .. } | Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::InvalidInput(_) | Error::ReloadRefused { .. } => StatusCode::BAD_REQUEST,
        // Vault answers a lost check-and-set with 400 (its clients retry 412).
        Error::Conflict(_) => StatusCode::BAD_REQUEST,
        Error::Unsupported(_) => StatusCode::METHOD_NOT_ALLOWED,
        Error::Unavailable(_) | Error::AuditUnavailable(_) | Error::StateUnavailable(_) | Error::Plugin { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        Error::UpstreamDenied(_) | Error::RotationRefused(_) => StatusCode::BAD_GATEWAY,
        Error::Expired { .. } => StatusCode::GONE,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = status_of(&e);
        let message = match &e {
            Error::UnknownMount { path, .. } => {
                format!("no handler for route \"{}\". route entry not found.", printable(path))
            }
            // Vault's exact words: clients match on them.
            Error::Conflict(_) => CAS_MISMATCH.to_string(),
            Error::Internal(_) => {
                // Details go to the operator's log, not to the client.
                tracing::error!(error = %e, "internal error");
                "internal error; the server log has details".to_string()
            }
            _ => e.to_string(),
        };
        ApiError::new(status, message)
    }
}

impl From<crate::auth::TokenError> for ApiError {
    fn from(e: crate::auth::TokenError) -> Self {
        match e {
            crate::auth::TokenError::Invalid(m) => ApiError::bad_request(m),
            other => {
                tracing::error!(error = %other, "token store failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "token store unavailable; the server log has details",
                )
            }
        }
    }
}

/// At most 200 characters, control characters replaced.
pub fn printable(s: &str) -> String {
    s.chars()
        .take(200)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}
