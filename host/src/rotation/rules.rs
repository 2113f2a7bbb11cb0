//! Rotation rules (`[[rotation]]` in the configuration): which secrets
//! rotate, how often, how their new value is made, and who must accept it.

use serde::Deserialize;

use super::maker::ValueMaker;
use crate::secret::Metadata;

/// The metadata tag whose value picks a default period.
pub const TYPE_TAG: &str = "type";

/// A rotation rule (`[[rotation]]`): the secrets it covers (one `path`, or
/// every secret under a `prefix`), how often they rotate, how the new value
/// is made, and optionally the field of a JSON value that rotates and a
/// webhook that must accept a new value before it becomes current.
///
/// ```toml
/// [[rotation]]
/// prefix = "secret/apps/"                     # or path = "secret/apps/db"
/// period = "30d"                              # default: from the secret's `type` tag
/// value = { kind = "password", length = 32 }  # the default maker
/// field = "password"                          # rotate one field of a JSON object value
/// check_webhook = "db-accepts"                # a [[webhook]] that must answer 2xx first
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationRule {
    /// One secret, `mount/path`.
    #[serde(default)]
    pub path: Option<String>,
    /// Every secret whose `mount/path` starts with this.
    #[serde(default)]
    pub prefix: Option<String>,
    /// How often (`90s`, `12h`, `30d`); without it, the default period of
    /// the secret's `type` tag ([`default_period_seconds`]), and no schedule
    /// for a secret without one (it still rotates when asked).
    #[serde(default)]
    pub period: Option<String>,
    /// How the new value is made (default: 32 letters and digits).
    #[serde(default)]
    pub value: ValueMaker,
    /// Rotate this field of a JSON-object value, keeping the others.
    #[serde(default)]
    pub field: Option<String>,
    /// The `[[webhook]]` that must answer 2xx to a `rotation/check` event
    /// before the pending value becomes current.
    #[serde(default)]
    pub check_webhook: Option<String>,
}

impl RotationRule {
    /// Check the rule against the configured webhook names; the message says
    /// what to fix.
    pub fn check(&self, webhooks: &[&str]) -> Result<(), String> {
        match (&self.path, &self.prefix) {
            (Some(_), Some(_)) => return Err("give `path` or `prefix`, not both".into()),
            (None, None) => return Err("give the secret's `path` (mount/path) or a `prefix`".into()),
            (Some(p), None) | (None, Some(p)) if !p.contains('/') || p.starts_with('/') => {
                return Err(format!(
                    "`{p}` does not start with a mount: write `mount/path`, e.g. `secret/apps/db`"
                ))
            }
            _ => {}
        }
        if let Some(period) = &self.period {
            let seconds = crate::config::parse_duration_seconds(period)?;
            if seconds == 0 {
                return Err("`period` must be more than 0: leave it out to rotate only when asked".into());
            }
        }
        self.value.check().map_err(|e| format!("`value`: {e}"))?;
        if let Some(hook) = &self.check_webhook {
            if !webhooks.contains(&hook.as_str()) {
                return Err(format!(
                    "`check_webhook = \"{hook}\"` names no [[webhook]]: add one with that name, or fix the name"
                ));
            }
        }
        Ok(())
    }

    /// Whether the rule covers the secret at `path` (`mount/path`).
    pub fn covers(&self, path: &str) -> bool {
        match (&self.path, &self.prefix) {
            (Some(p), _) => p == path,
            (None, Some(prefix)) => path.starts_with(prefix.as_str()),
            (None, None) => false,
        }
    }

    /// The period for a secret with these tags, in seconds (`None`: it is
    /// rotated only when asked).
    pub fn period_seconds(&self, tags: &Metadata) -> Option<u64> {
        match &self.period {
            Some(p) => crate::config::parse_duration_seconds(p).ok().filter(|s| *s > 0),
            None => tags.get(TYPE_TAG).and_then(|t| default_period_seconds(t)),
        }
    }

    /// How specific the rule is, to pick the best of several: a `path`
    /// beats every prefix, a longer prefix a shorter one.
    fn specificity(&self) -> usize {
        match (&self.path, &self.prefix) {
            (Some(_), _) => usize::MAX,
            (None, Some(prefix)) => prefix.len(),
            _ => 0,
        }
    }
}

/// The rule that covers `path`: the most specific of `rules`.
pub fn rule_for<'a>(rules: &'a [RotationRule], path: &str) -> Option<&'a RotationRule> {
    rules.iter().filter(|r| r.covers(path)).max_by_key(|r| r.specificity())
}

/// The default rotation period of a secret type (the `type` tag), in
/// seconds: `api_key` 90 days, `database_credential` 30, `oauth_secret`
/// 180, `encryption_key` 365, `webhook_secret` 90. Other types (including
/// `certificate` and `private_key`, which rotate by their expiry) have none.
pub fn default_period_seconds(secret_type: &str) -> Option<u64> {
    let days = match secret_type {
        "api_key" => 90,
        "database_credential" => 30,
        "oauth_secret" => 180,
        "encryption_key" => 365,
        "webhook_secret" => 90,
        _ => return None,
    };
    Some(days * 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> RotationRule {
        toml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn the_most_specific_rule_covers_a_secret() {
        let rules = vec![
            rule("prefix = \"secret/\"\nperiod = \"1d\""),
            rule("prefix = \"secret/apps/\"\nperiod = \"2d\""),
            rule("path = \"secret/apps/db\"\nperiod = \"3d\""),
        ];
        let tags = Metadata::new();
        let period = |p: &str| rule_for(&rules, p).and_then(|r| r.period_seconds(&tags));
        assert_eq!(period("secret/apps/db"), Some(3 * 86_400));
        assert_eq!(period("secret/apps/web"), Some(2 * 86_400));
        assert_eq!(period("secret/other"), Some(86_400));
        assert_eq!(period("kv/x"), None);
    }

    #[test]
    fn without_a_period_the_type_tag_decides() {
        let r = rule("prefix = \"secret/\"");
        let tagged = |t: &str| Metadata::from([(TYPE_TAG.to_string(), t.to_string())]);
        assert_eq!(r.period_seconds(&tagged("api_key")), Some(90 * 86_400));
        assert_eq!(r.period_seconds(&tagged("database_credential")), Some(30 * 86_400));
        assert_eq!(r.period_seconds(&tagged("oauth_secret")), Some(180 * 86_400));
        assert_eq!(r.period_seconds(&tagged("encryption_key")), Some(365 * 86_400));
        assert_eq!(r.period_seconds(&tagged("webhook_secret")), Some(90 * 86_400));
        assert_eq!(r.period_seconds(&tagged("certificate")), None);
        assert_eq!(r.period_seconds(&Metadata::new()), None);
    }

    #[test]
    fn bad_rules_are_refused_saying_what_to_fix() {
        let err = |text: &str, hooks: &[&str]| rule(text).check(hooks).unwrap_err();
        assert!(err("period = \"1d\"", &[]).contains("path"));
        assert!(err("path = \"a/b\"\nprefix = \"a/\"", &[]).contains("not both"));
        assert!(err("path = \"db\"", &[]).contains("mount/path"));
        assert!(err("path = \"a/b\"\nperiod = \"soon\"", &[]).contains("duration"));
        assert!(err("path = \"a/b\"\nperiod = \"0\"", &[]).contains("more than 0"));
        assert!(err("path = \"a/b\"\ncheck_webhook = \"x\"", &["y"]).contains("[[webhook]]"));
        assert!(err("path = \"a/b\"\nvalue = { kind = \"hex\", bytes = 2 }", &[]).contains("value"));
        assert!(rule("path = \"a/b\"\ncheck_webhook = \"y\"").check(&["y"]).is_ok());
        assert!(toml::from_str::<RotationRule>("path = \"a/b\"\nperiode = \"1d\"").is_err());
    }
}
