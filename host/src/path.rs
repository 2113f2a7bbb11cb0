//! Secret paths: `mount/relative/path`. Checked once at the front door so
//! that nothing malformed reaches a policy or a plugin.

use crate::error::Error;

/// Longest accepted path, in bytes.
pub const MAX_PATH: usize = 512;

/// Check a relative secret path: non-empty segments separated by `/`, no `.`
/// or `..` segment, no control characters, at most [`MAX_PATH`] bytes.
pub fn check(path: &str) -> Result<(), Error> {
    let bad = |why: &str| Err(Error::InvalidInput(format!("path `{}` {why}", printable(path))));
    if path.is_empty() {
        return bad("is empty");
    }
    if path.len() > MAX_PATH {
        return bad(&format!("is longer than {MAX_PATH} bytes"));
    }
    if path.chars().any(|c| c.is_control()) {
        return bad("contains a control character (NUL, newline, ...)");
    }
    for segment in path.split('/') {
        match segment {
            "" => return bad("has an empty segment (leading, trailing or doubled `/`)"),
            "." | ".." => return bad("has a `.` or `..` segment"),
            _ => {}
        }
    }
    Ok(())
}

/// Check a listing prefix: empty, or a valid path optionally ending in `/`.
pub fn check_prefix(prefix: &str) -> Result<(), Error> {
    match prefix.strip_suffix('/') {
        _ if prefix.is_empty() => Ok(()),
        Some(p) => check(p),
        None => check(prefix),
    }
}

/// Split `mount/rest` into the mount name and the path inside it (which may
/// be empty, e.g. for a listing of the whole mount).
pub fn split(full: &str) -> (&str, &str) {
    let full = full.trim_start_matches('/');
    match full.split_once('/') {
        Some((m, rest)) => (m, rest),
        None => (full, ""),
    }
}

fn printable(path: &str) -> String {
    path.chars()
        .take(80)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_traversal_and_garbage() {
        for bad in ["", "a//b", "/a", "a/", "a/../b", "..", ".", "a\0b", "a\nb"] {
            assert!(check(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a", "a/b", "apps/db-password", "x.y/z_1"] {
            assert!(check(good).is_ok(), "{good:?} refused");
        }
        assert!(check(&"a".repeat(MAX_PATH + 1)).is_err());
        assert!(check_prefix("").is_ok() && check_prefix("apps/").is_ok() && check_prefix("a//").is_err());
        assert_eq!(split("secret/a/b"), ("secret", "a/b"));
        assert_eq!(split("secret"), ("secret", ""));
    }
}
