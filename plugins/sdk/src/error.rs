//! Constructors for [`Error`], so plugins write `Error::not_found(msg)`.

use crate::Error;

impl Error {
    /// The secret, version or role does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::NotFound(message.into())
    }

    /// The request or the plugin configuration is malformed.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Error::InvalidInput(message.into())
    }

    /// A check-and-set write lost: the current version is not the expected one.
    pub fn conflict(message: impl Into<String>) -> Self {
        Error::Conflict(message.into())
    }

    /// The backend could not be reached or failed; retrying later may succeed.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Error::Unavailable(message.into())
    }

    /// The backend refused the plugin's own credentials.
    pub fn permission_denied(message: impl Into<String>) -> Self {
        Error::PermissionDenied(message.into())
    }

    /// The plugin (or its platform) does not support the operation.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Error::Unsupported(message.into())
    }

    /// A bug or an unexpected state inside the plugin.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::Internal(message.into())
    }

    /// The message carried by this error, whatever its kind.
    pub fn message(&self) -> &str {
        match self {
            Error::NotFound(m)
            | Error::InvalidInput(m)
            | Error::Conflict(m)
            | Error::Unavailable(m)
            | Error::PermissionDenied(m)
            | Error::Unsupported(m)
            | Error::Internal(m) => m,
        }
    }
}

/// The answer of an operation a plugin does not implement:
/// `unsupported("<operation> is not supported by the <plugin> plugin")`.
pub(crate) fn not_supported(operation: &str, plugin: &str) -> Error {
    Error::unsupported(format!("{operation} is not supported by the {plugin} plugin"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_keep_the_message() {
        assert!(matches!(Error::not_found("x"), Error::NotFound(m) if m == "x"));
        assert_eq!(
            Error::conflict("current version is 4").message(),
            "current version is 4"
        );
        assert_eq!(
            not_supported("put", "env").message(),
            "put is not supported by the env plugin"
        );
    }
}
