//! Which `.env` entries are secrets, and why: by name, by value, or by the
//! operator's `--include`/`--exclude`. Every decision carries its reason.

/// The decision on one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Migrate it.
    pub secret: bool,
    /// Why, for the table.
    pub reason: String,
    /// The `type` tag written with it (`api_key`, `database_credential`, ...).
    pub kind: &'static str,
}

/// Name suffixes (or parts) that say "secret", and the type they suggest.
const NAME_RULES: &[(&str, &str)] = &[
    ("PASSWORD", "database_credential"),
    ("PASSWD", "database_credential"),
    ("PWD", "database_credential"),
    ("SECRET", "api_key"),
    ("TOKEN", "api_key"),
    ("API_KEY", "api_key"),
    ("PRIVATE_KEY", "private_key"),
    ("KEY", "api_key"),
    ("DSN", "database_credential"),
    ("CREDENTIALS", "api_key"),
    ("WEBHOOK_SECRET", "webhook_secret"),
];

/// Decide on `name=value`, with the operator's overrides first.
pub fn classify(name: &str, value: &str, include: &[String], exclude: &[String]) -> Decision {
    let upper = name.to_ascii_uppercase();
    let kind = kind_of(&upper);
    if exclude.iter().any(|n| n == name) {
        return Decision {
            secret: false,
            reason: "--exclude".into(),
            kind,
        };
    }
    if include.iter().any(|n| n == name) {
        return Decision {
            secret: true,
            reason: "--include".into(),
            kind,
        };
    }
    if let Some((part, _)) = NAME_RULES.iter().find(|(part, _)| name_has(&upper, part)) {
        return Decision {
            secret: true,
            reason: format!("name contains {part}"),
            kind,
        };
    }
    // `*_SECRET*`: JWT_SECRETS, SECRETS_FILE_CONTENT, APP_SECRETKEY.
    if upper.starts_with("SECRET") || upper.contains("_SECRET") {
        return Decision {
            secret: true,
            reason: "name contains SECRET".into(),
            kind,
        };
    }
    if let Some(why) = secret_value(value) {
        return Decision {
            secret: true,
            reason: why.into(),
            kind: if why.starts_with("a PEM") { "private_key" } else { kind },
        };
    }
    Decision {
        secret: false,
        reason: "name and value look like configuration".into(),
        kind,
    }
}

/// Whether `part` is a whole `_`-separated part (or run of parts) of `name`.
fn name_has(name: &str, part: &str) -> bool {
    name == part
        || name.ends_with(&format!("_{part}"))
        || name.starts_with(&format!("{part}_"))
        || name.contains(&format!("_{part}_"))
}

/// The `type` tag for a name.
fn kind_of(upper: &str) -> &'static str {
    if name_has(upper, "WEBHOOK_SECRET") {
        return "webhook_secret";
    }
    if upper.contains("OAUTH") || upper.contains("CLIENT_SECRET") {
        return "oauth_secret";
    }
    if name_has(upper, "ENCRYPTION_KEY") {
        return "encryption_key";
    }
    NAME_RULES
        .iter()
        .find(|(part, _)| name_has(upper, part))
        .map_or("generic", |(_, kind)| kind)
}

/// Why a value looks secret whatever its name, if it does.
fn secret_value(value: &str) -> Option<&'static str> {
    if value.contains("-----BEGIN ") && value.contains("PRIVATE KEY") {
        return Some("a PEM private key");
    }
    if let Some((scheme, rest)) = value.split_once("://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if !scheme.is_empty()
            && authority
                .split_once('@')
                .is_some_and(|(userinfo, _)| userinfo.contains(':'))
        {
            return Some("a URL with a password");
        }
        // Any other URL is an address, however random its path looks.
        if !scheme.is_empty() && !scheme.contains(char::is_whitespace) {
            return None;
        }
    }
    // ADO.NET / ODBC connection strings: `Server=db;User Id=app;Password=...`.
    if value.split(';').any(|part| {
        part.split_once('=').is_some_and(|(k, v)| {
            let k = k.trim().to_ascii_lowercase();
            (k == "password" || k == "pwd") && !v.trim().is_empty()
        })
    }) {
        return Some("a connection string with a password");
    }
    const KNOWN: &[(&str, &str)] = &[
        ("AKIA", "an AWS access key id"),
        ("ghp_", "a GitHub token"),
        ("github_pat_", "a GitHub token"),
        ("xoxb-", "a Slack token"),
        ("xoxp-", "a Slack token"),
        ("sk_live_", "a Stripe secret key"),
        ("sk-", "an API key (sk-...)"),
        ("tvs.", "a Tresor token"),
        ("hvs.", "a Vault token"),
    ];
    if let Some((_, why)) = KNOWN
        .iter()
        .find(|(p, _)| value.starts_with(p) && value.len() >= p.len() + 16)
    {
        return Some(why);
    }
    if value.len() >= 20 && !value.contains(char::is_whitespace) && entropy_bits_per_char(value) >= 4.0 {
        return Some("a long random-looking value");
    }
    None
}

/// Shannon entropy of the characters of `s`, in bits per character.
fn entropy_bits_per_char(s: &str) -> f64 {
    let mut counts = std::collections::HashMap::new();
    let mut n = 0usize;
    for c in s.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
        n += 1;
    }
    counts
        .values()
        .map(|&c| {
            let p = c as f64 / n as f64;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(name: &str, value: &str) -> (bool, String) {
        let d = classify(name, value, &[], &[]);
        (d.secret, d.reason)
    }

    #[test]
    fn names_and_values_decide_with_a_reason() {
        assert!(secret("DB_PASSWORD", "x").0);
        assert!(secret("STRIPE_SECRET_KEY", "x").0);
        assert!(secret("GITHUB_TOKEN", "x").0);
        assert!(secret("SENTRY_DSN", "x").0);
        assert_eq!(
            secret("LOG_LEVEL", "INFO"),
            (false, "name and value look like configuration".into())
        );
        assert!(!secret("PORT", "8080").0);
        assert!(!secret("KEYBOARD_LAYOUT", "us").0, "KEY only as a whole part");
        assert_eq!(
            secret("DATABASE_URL", "postgres://app:pw@db:5432/x").1,
            "a URL with a password"
        );
        assert!(!secret("HOMEPAGE", "https://example.com/a:b@c").0);
        assert!(secret("JWT_SECRETS", "a,b").0, "*_SECRET*");
        assert!(
            !secret("CALLBACK", "https://example.com/cb?state=q8Zr2LxN0vTb7KpWm3Yc").0,
            "a URL is an address"
        );
        assert_eq!(
            secret("LEGACY_DB", "Server=db;User Id=app;Password=x;").1,
            "a connection string with a password"
        );
        assert!(!secret("LEGACY_DB", "Server=db;Integrated Security=true;").0);
        assert_eq!(secret("UPSTREAM", "AKIAIOSFODNN7EXAMPLE1234").1, "an AWS access key id");
        assert_eq!(
            secret("BLOB", "-----BEGIN RSA PRIVATE KEY-----\nabc").1,
            "a PEM private key"
        );
        assert_eq!(
            secret("SESSION_SEED", "q8Zr2LxN0vTb7KpW4mYc9HsJ").1,
            "a long random-looking value"
        );
        assert!(!secret("GREETING", "hello hello hello hello").0);
    }

    #[test]
    fn overrides_win_and_types_follow_names() {
        let inc = ["PORT".to_string()];
        assert!(classify("PORT", "1", &inc, &[]).secret);
        let exc = ["DB_PASSWORD".to_string()];
        assert!(!classify("DB_PASSWORD", "x", &[], &exc).secret);
        assert_eq!(classify("DB_PASSWORD", "x", &[], &[]).kind, "database_credential");
        assert_eq!(classify("STRIPE_WEBHOOK_SECRET", "x", &[], &[]).kind, "webhook_secret");
        assert_eq!(
            classify("GOOGLE_OAUTH_CLIENT_SECRET", "x", &[], &[]).kind,
            "oauth_secret"
        );
        assert_eq!(classify("SIGNING_PRIVATE_KEY", "x", &[], &[]).kind, "private_key");
    }
}
