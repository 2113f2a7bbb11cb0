//! Validation of secret paths and list prefixes.

use crate::Error;

/// The longest secret path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 512;

/// Checks that `path` is a well-formed secret path: slash-separated
/// segments relative to the mount, like `db/prod/password`.
///
/// A valid path is non-empty, at most [`MAX_PATH_LEN`] bytes, does not start
/// or end with `/`, has no empty segment (`a//b`), no `.` or `..` segment,
/// and no NUL or other control character. The error is `invalid-input` and
/// says how to fix the path.
///
/// The SDK runs this check on every `path` before it reaches a
/// [`Provider`](crate::Provider), so providers can rely on it.
pub fn validate_path(path: &str) -> Result<(), Error> {
    if path.is_empty() {
        return Err(Error::invalid_input(
            "the secret path is empty: give a path such as `app/db-password`",
        ));
    }
    check_length_and_characters(path, "secret path")?;
    if path.starts_with('/') || path.ends_with('/') {
        return Err(Error::invalid_input(
            "the secret path must not start or end with `/`: paths are relative to the mount, like `app/db-password`",
        ));
    }
    for segment in path.split('/') {
        match segment {
            "" => {
                return Err(Error::invalid_input(
                    "the secret path has an empty segment (`//`): separate segments with a single `/`",
                ))
            }
            "." | ".." => {
                return Err(Error::invalid_input(format!(
                "the secret path has a `{segment}` segment: `.` and `..` are not allowed, spell the path out in full"
            )))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks a `list` prefix: empty (list everything) or the start of a secret
/// path (`app/`, `app/d`). It is at most [`MAX_PATH_LEN`] bytes, has no
/// control character and does not start with `/`.
pub fn validate_prefix(prefix: &str) -> Result<(), Error> {
    check_length_and_characters(prefix, "list prefix")?;
    if prefix.starts_with('/') {
        return Err(Error::invalid_input(
            "the list prefix must not start with `/`: paths are relative to the mount",
        ));
    }
    Ok(())
}

fn check_length_and_characters(text: &str, what: &str) -> Result<(), Error> {
    if text.len() > MAX_PATH_LEN {
        return Err(Error::invalid_input(format!(
            "the {what} is {} bytes long: the limit is {MAX_PATH_LEN} bytes",
            text.len()
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(Error::invalid_input(format!(
            "the {what} contains a NUL or control character: use printable characters only"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_paths() {
        for path in ["a", "app/db-password", "x/y/z", "with space/é", ".hidden/a..b", "a.b/c"] {
            assert!(validate_path(path).is_ok(), "{path:?} should be valid");
        }
        assert!(validate_path(&"a".repeat(MAX_PATH_LEN)).is_ok());
    }

    #[test]
    fn rejects_malformed_paths() {
        let long = "a".repeat(MAX_PATH_LEN + 1);
        for path in [
            "",
            "/a",
            "a/",
            "a//b",
            ".",
            "..",
            "a/./b",
            "a/..",
            "../escape",
            "a\0b",
            "a\nb",
            "a\u{7f}",
            "a\u{85}",
            long.as_str(),
        ] {
            assert!(
                matches!(validate_path(path), Err(Error::InvalidInput(_))),
                "{path:?} should be rejected"
            );
        }
    }

    #[test]
    fn prefixes_may_be_empty_or_partial() {
        for prefix in ["", "app/", "app/d", "a/."] {
            assert!(validate_prefix(prefix).is_ok(), "{prefix:?} should be valid");
        }
        for prefix in ["/app", "a\0", &"a".repeat(MAX_PATH_LEN + 1)] {
            assert!(validate_prefix(prefix).is_err(), "{prefix:?} should be rejected");
        }
    }
}
