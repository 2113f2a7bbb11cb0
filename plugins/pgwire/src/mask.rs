//! Showing server messages without the secrets they may quote.

/// Replaces every occurrence of each non-empty secret in `message` with
/// `********`, so server messages quoting a statement or a password can be
/// shown.
pub fn mask(message: &str, secrets: &[&str]) -> String {
    let mut out = message.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        if out.contains(secret) {
            out = out.replace(secret, "********");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_occurrence_of_every_secret() {
        let m = mask(
            "syntax error at or near \"'Abc-123'\" in CREATE ROLE x PASSWORD 'Abc-123' (conn s3cret)",
            &["Abc-123", "s3cret", ""],
        );
        assert_eq!(
            m,
            "syntax error at or near \"'********'\" in CREATE ROLE x PASSWORD '********' (conn ********)"
        );
        assert_eq!(mask("nothing here", &["pw"]), "nothing here");
    }
}
