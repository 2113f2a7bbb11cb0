//! The configuration a mount hands to its plugin, and the check that
//! refuses the keys a plugin does not know.

use std::str::FromStr;

use crate::Error;

/// The key/value configuration of the mount running the plugin, as given to
/// `configure`.
///
/// Values can be credentials (an API token for an upstream backend): the
/// errors built here name the key, never the value.
///
/// Start `configure` with [`Config::check_keys`], listing every key the
/// plugin reads, so a typo in the mount's config (`adress` for `address`)
/// stops the mount at start instead of being silently ignored.
#[derive(Clone, Default)]
pub struct Config {
    entries: Vec<(String, String)>,
}

impl Config {
    /// Wraps the pairs the host passed to `configure`.
    pub fn new(entries: Vec<(String, String)>) -> Self {
        Config { entries }
    }

    /// The value of `key`, if the mount sets it. When a key is given more
    /// than once, the last value wins.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key`, or `invalid-input` telling the operator to set it.
    pub fn require(&self, key: &str) -> Result<&str, Error> {
        self.get(key)
            .ok_or_else(|| Error::invalid_input(format!("missing config key `{key}`: set it in the mount's config")))
    }

    /// The value of `key` parsed as a `T` (a number, a boolean, ...), or
    /// `None` when the key is absent. `expected` describes a valid value for
    /// the error message, e.g. `"a whole number"`.
    pub fn parse<T: FromStr>(&self, key: &str, expected: &str) -> Result<Option<T>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(raw) => raw.trim().parse().map(Some).map_err(|_| {
                Error::invalid_input(format!(
                    "config key `{key}` must be {expected}: fix it in the mount's config"
                ))
            }),
        }
    }

    /// Refuses any key not in `accepted`: call it first in `configure`,
    /// with every key the plugin reads. The error is `invalid-input` naming
    /// the first unknown key, the accepted keys it is a near miss of, and
    /// all the accepted keys (never a value: values can be credentials):
    ///
    /// ```
    /// use tresor_plugin_sdk::{Config, Error};
    ///
    /// let config = Config::new(vec![("adress".into(), "https://vault:8200".into())]);
    /// let err = config.check_keys(&["address", "token", "mount"]).unwrap_err();
    /// assert_eq!(
    ///     err.message(),
    ///     "unknown config key `adress` (did you mean `address`?): the config keys this plugin \
    ///      accepts are address, token, mount; fix the mount's config"
    /// );
    /// ```
    ///
    /// The host passes a mount's `config` table as it is (with `ref:`
    /// values resolved) and nothing else, so `accepted` is exactly the keys
    /// the plugin documents.
    pub fn check_keys(&self, accepted: &[&str]) -> Result<(), Error> {
        refuse_unknown(self.iter().map(|(k, _)| k), accepted, "config key")
            .map_err(|why| Error::invalid_input(format!("{why}; fix the mount's config")))
    }

    /// Every key/value pair, in the order the host gave them.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Never prints values: they may be credentials.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.entries.iter().map(|(k, _)| k)).finish()
    }
}

impl From<Vec<(String, String)>> for Config {
    fn from(entries: Vec<(String, String)>) -> Self {
        Config::new(entries)
    }
}

/// The first of `keys` not in `accepted`, described for the operator:
/// "unknown {what} `key` (did you mean `x`?): the {what}s this plugin
/// accepts are ...". The caller adds where to fix it.
pub(crate) fn refuse_unknown<'a>(
    mut keys: impl Iterator<Item = &'a str>,
    accepted: &[&str],
    what: &str,
) -> Result<(), String> {
    let Some(key) = keys.find(|key| !accepted.contains(key)) else {
        return Ok(());
    };
    let hint = did_you_mean(key, accepted);
    if accepted.is_empty() {
        Err(format!("unknown {what} `{key}`: this plugin accepts no {what}s"))
    } else {
        Err(format!(
            "unknown {what} `{key}`{hint}: the {what}s this plugin accepts are {}",
            accepted.join(", ")
        ))
    }
}

/// `" (did you mean `address`?)"` when `key` looks like a misspelling of
/// one or more of `known` (the same but for case, or a few edits away: at
/// most 2, or a third of the key's length), or failing that a part or a
/// longer form of them (`endpoint` for `iam_endpoint`); else `""`.
///
/// [`Config::check_keys`] and [`Role::check_settings`](crate::Role::check_settings)
/// use it; so can a plugin checking names of its own, such as the
/// parameters of a connection URL.
pub fn did_you_mean(key: &str, known: &[&str]) -> String {
    let key = key.to_lowercase();
    let known_lower: Vec<String> = known.iter().map(|k| k.to_lowercase()).collect();
    let distances: Vec<usize> = known_lower.iter().map(|k| edit_distance(&key, k)).collect();
    let limit = (key.chars().count() / 3).max(2);
    let close: Vec<String> = match distances.iter().copied().min().filter(|d| *d <= limit) {
        Some(best) => known
            .iter()
            .zip(&distances)
            .filter(|(_, d)| **d == best)
            .map(|(k, _)| format!("`{k}`"))
            .collect(),
        None => known
            .iter()
            .zip(&known_lower)
            .filter(|(_, k)| contains_word(k, &key) || contains_word(&key, k))
            .map(|(k, _)| format!("`{k}`"))
            .collect(),
    };
    if close.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", close.join(" or "))
    }
}

/// Does `long` contain `part`, of at least 3 characters?
fn contains_word(long: &str, part: &str) -> bool {
    part.chars().count() >= 3 && long.contains(part)
}

/// Levenshtein distance between two short keys, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Config {
        Config::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn get_returns_the_last_value() {
        let c = config(&[("a", "1"), ("b", "2"), ("a", "3")]);
        assert_eq!(c.get("a"), Some("3"));
        assert_eq!(c.get("b"), Some("2"));
        assert_eq!(c.get("c"), None);
    }

    #[test]
    fn require_names_the_missing_key() {
        let err = config(&[]).require("prefix").err();
        assert!(matches!(
            err,
            Some(Error::InvalidInput(m)) if m == "missing config key `prefix`: set it in the mount's config"
        ));
    }

    #[test]
    fn parse_reports_the_key_but_not_the_value() {
        let c = config(&[("n", " 7 "), ("bad", "s3cr3t")]);
        assert_eq!(c.parse::<u32>("n", "a whole number").ok(), Some(Some(7)));
        assert_eq!(c.parse::<u32>("missing", "a whole number").ok(), Some(None));
        match c.parse::<u32>("bad", "a whole number") {
            Err(Error::InvalidInput(m)) => {
                assert!(m.contains("`bad`"));
                assert!(!m.contains("s3cr3t"));
            }
            _ => panic!("expected invalid-input"),
        }
    }

    const VAULT_KEYS: &[&str] = &["address", "token", "mount"];

    fn message(result: Result<(), Error>) -> String {
        match result {
            Err(Error::InvalidInput(m)) => m,
            other => panic!("expected invalid-input, got {other:?}"),
        }
    }

    #[test]
    fn check_keys_accepts_known_keys() {
        assert!(config(&[]).check_keys(VAULT_KEYS).is_ok());
        assert!(config(&[("token", "t"), ("address", "a"), ("token", "u")])
            .check_keys(VAULT_KEYS)
            .is_ok());
    }

    #[test]
    fn check_keys_names_the_unknown_key_and_what_it_may_mean() {
        let m = message(config(&[("address", "a"), ("adress", "b")]).check_keys(VAULT_KEYS));
        assert_eq!(
            m,
            "unknown config key `adress` (did you mean `address`?): the config keys this plugin accepts \
             are address, token, mount; fix the mount's config"
        );
        // Far from every key: no guess, but the list.
        let m = message(config(&[("colour", "x")]).check_keys(VAULT_KEYS));
        assert!(m.starts_with("unknown config key `colour`: the config keys"), "{m}");
        let m = message(config(&[("x", "1")]).check_keys(&[]));
        assert_eq!(
            m,
            "unknown config key `x`: this plugin accepts no config keys; fix the mount's config"
        );
    }

    #[test]
    fn check_keys_never_shows_a_value() {
        let m = message(config(&[("tokne", "s3cr3t-value")]).check_keys(VAULT_KEYS));
        assert!(m.contains("`tokne`") && m.contains("did you mean `token`"), "{m}");
        assert!(!m.contains("s3cr3t"), "{m}");
    }

    #[test]
    fn did_you_mean_suggests_near_misses_only() {
        assert_eq!(did_you_mean("Address", VAULT_KEYS), " (did you mean `address`?)");
        assert_eq!(did_you_mean("regoin", &["region", "role"]), " (did you mean `region`?)");
        assert_eq!(
            did_you_mean("iam_endpont", &["iam_endpoint", "sts_endpoint"]),
            " (did you mean `iam_endpoint`?)"
        );
        assert_eq!(
            did_you_mean("xam_endpoint", &["iam_endpoint", "sts_endpoint"]),
            " (did you mean `iam_endpoint`?)"
        );
        assert_eq!(
            did_you_mean("endpoint", &["region", "iam_endpoint", "sts_endpoint"]),
            " (did you mean `iam_endpoint` or `sts_endpoint`?)"
        );
        assert_eq!(did_you_mean("vault_token", VAULT_KEYS), " (did you mean `token`?)");
        assert_eq!(did_you_mean("colour", VAULT_KEYS), "");
        assert_eq!(did_you_mean("x", &[]), "");
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("pasword", "password"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("ä", "a"), 1);
    }

    #[test]
    fn debug_hides_values() {
        let shown = format!("{:?}", config(&[("token", "s3cr3t")]));
        assert!(shown.contains("token"));
        assert!(!shown.contains("s3cr3t"));
    }
}
