//! Role statements with Vault's placeholders (`{{name}}`, `{{username}}`,
//! `{{password}}`, `{{expiration}}`), and masking of secrets in messages.

use zeroize::Zeroizing;

/// A placeholder a statement may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placeholder {
    /// `{{name}}`, or its alias `{{username}}`: the generated role name.
    Name,
    /// `{{password}}`: the generated password (creation statements only).
    Password,
    /// `{{expiration}}`: when the lease ends, as a `timestamptz` literal.
    Expiration,
}

impl Placeholder {
    fn parse(word: &str) -> Option<Placeholder> {
        match word {
            "name" | "username" => Some(Placeholder::Name),
            "password" => Some(Placeholder::Password),
            "expiration" => Some(Placeholder::Expiration),
            _ => None,
        }
    }
}

/// The values to fill in; `None` for those a statement kind cannot use.
#[derive(Clone, Copy, Default)]
pub struct Values<'a> {
    /// The role name.
    pub name: &'a str,
    /// The password, at issue time only.
    pub password: Option<&'a str>,
    /// The expiration, at issue and renew time.
    pub expiration: Option<&'a str>,
}

/// Checks that every `{{...}}` in `template` is a placeholder in `allowed`;
/// the error names the first one that is not.
pub fn check(template: &str, allowed: &[Placeholder]) -> Result<(), String> {
    for word in placeholders(template) {
        match Placeholder::parse(word.trim()) {
            Some(p) if allowed.contains(&p) => {}
            Some(_) => return Err(format!("`{{{{{word}}}}}` is not available here")),
            None => {
                return Err(format!(
                    "unknown placeholder `{{{{{word}}}}}` (known: {{{{name}}}}, {{{{username}}}}, {{{{password}}}}, {{{{expiration}}}})"
                ))
            }
        }
    }
    Ok(())
}

/// Fills the placeholders of `template` (checked with [`check`]) with
/// `values`. Placeholders without a value are left as they are (the check
/// refuses them earlier). The result may hold the password: it is wiped
/// when dropped.
pub fn render(template: &str, values: Values<'_>) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(template.len() + 64));
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else {
            break;
        };
        let word = &rest[start + 2..start + 2 + len];
        let value = match Placeholder::parse(word.trim()) {
            Some(Placeholder::Name) => Some(values.name),
            Some(Placeholder::Password) => values.password,
            Some(Placeholder::Expiration) => values.expiration,
            None => None,
        };
        out.push_str(&rest[..start]);
        match value {
            Some(value) => out.push_str(value),
            None => out.push_str(&rest[start..start + 2 + len + 2]),
        }
        rest = &rest[start + 2 + len + 2..];
    }
    out.push_str(rest);
    out
}

/// Masking of secrets in server messages, shared with the other
/// PostgreSQL plugin.
pub use tresor_pgwire::mask;

fn placeholders(template: &str) -> impl Iterator<Item = &str> {
    let mut rest = template;
    std::iter::from_fn(move || {
        let start = rest.find("{{")?;
        let len = rest[start + 2..].find("}}")?;
        let word = &rest[start + 2..start + 2 + len];
        rest = &rest[start + 2 + len + 2..];
        Some(word)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATE: &str = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; \
                          GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{username}}\";";

    #[test]
    fn renders_vaults_placeholders() {
        let sql = render(
            CREATE,
            Values {
                name: "v-a-b-c-1",
                password: Some("pw-123"),
                expiration: Some("2026-12-02 18:30:00+00"),
            },
        );
        assert_eq!(
            sql.as_str(),
            "CREATE ROLE \"v-a-b-c-1\" WITH LOGIN PASSWORD 'pw-123' VALID UNTIL '2026-12-02 18:30:00+00'; \
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"v-a-b-c-1\";"
        );
        assert_eq!(
            render(
                "{{ name }}|{{x}}|{{name",
                Values {
                    name: "n",
                    ..Values::default()
                }
            )
            .as_str(),
            "n|{{x}}|{{name"
        );
    }

    #[test]
    fn check_refuses_unknown_and_unavailable_placeholders() {
        let all = [Placeholder::Name, Placeholder::Password, Placeholder::Expiration];
        assert_eq!(check(CREATE, &all), Ok(()));
        let e = check("DROP ROLE \"{{nmae}}\"", &all).expect_err("typo");
        assert!(e.contains("{{nmae}}"), "{e}");
        let e = check("ALTER ROLE \"{{name}}\" PASSWORD '{{password}}'", &[Placeholder::Name]).expect_err("password");
        assert!(e.contains("{{password}}") && e.contains("not available"), "{e}");
    }

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
