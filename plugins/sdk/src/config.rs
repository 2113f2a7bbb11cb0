//! The configuration a mount hands to its plugin.

use std::str::FromStr;

use crate::Error;

/// The key/value configuration of the mount running the plugin, as given to
/// `configure`.
///
/// Values can be credentials (an API token for an upstream backend): the
/// errors built here name the key, never the value.
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

    #[test]
    fn debug_hides_values() {
        let shown = format!("{:?}", config(&[("token", "s3cr3t")]));
        assert!(shown.contains("token"));
        assert!(!shown.contains("s3cr3t"));
    }
}
