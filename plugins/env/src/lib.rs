//! A read-only provider serving environment variables as secrets.
//!
//! With the mount configured as `prefix = "APP_"`, the secret `DB_PASSWORD`
//! is the value of the variable `APP_DB_PASSWORD`. The plugin only sees the
//! variables that the mount's allow-list grants; everything else does not
//! exist for it.
//!
//! Every variable has exactly one version, `"1"`. Writes are refused: change
//! the environment of the host process instead.
//!
//! Mount configuration:
//!
//! | key      | meaning                                                   |
//! |----------|-----------------------------------------------------------|
//! | `prefix` | required: the start of the variable names served (`APP_`) |
//!
//! Any other key is refused when the mount starts, naming it.

use std::ffi::OsString;

use tresor_plugin_sdk::{export_provider, Capabilities, Config, Error, Metadata, Provider, Secret, VersionInfo};

/// The only version an environment variable has.
const VERSION: &str = "1";
/// The mount configuration keys this plugin reads (see the crate docs).
const CONFIG_KEYS: &[&str] = &["prefix"];

/// Serves the variables named `<prefix><path>`.
struct EnvProvider {
    prefix: String,
}

impl EnvProvider {
    /// The variable behind `path`, after checking that `path` can be the
    /// end of a variable name.
    fn variable(&self, path: &str) -> Result<String, Error> {
        if !is_name_part(path) {
            return Err(Error::invalid_input(
                "the env provider serves paths made of ASCII letters, digits and `_` \
                 (the part of the variable name after the mount's prefix)",
            ));
        }
        Ok(format!("{}{path}", self.prefix))
    }

    /// The value of the variable behind `path`, or `not-found`.
    fn value(&self, path: &str) -> Result<String, Error> {
        let name = self.variable(path)?;
        match std::env::var(&name) {
            Ok(value) => Ok(value),
            Err(std::env::VarError::NotPresent) => Err(Error::not_found(format!(
                "environment variable `{name}` is not set, or the mount's allow-list does not grant it"
            ))),
            Err(std::env::VarError::NotUnicode(_)) => Err(Error::invalid_input(format!(
                "environment variable `{name}` is not valid UTF-8"
            ))),
        }
    }
}

impl Provider for EnvProvider {
    const NAME: &'static str = "env";

    fn configure(config: Config) -> Result<Self, Error> {
        config.check_keys(CONFIG_KEYS)?;
        let prefix = config.require("prefix")?;
        if !is_name_part(prefix) {
            return Err(Error::invalid_input(
                "config key `prefix` must be the non-empty start of a variable name \
                 (ASCII letters, digits and `_`, like `APP_`): fix it in the mount's config",
            ));
        }
        Ok(EnvProvider {
            prefix: prefix.to_owned(),
        })
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            listable: true,
            ..Capabilities::NONE
        }
    }

    fn get(&mut self, path: &str, version: Option<&str>) -> Result<Secret, Error> {
        if let Some(version) = version.filter(|v| *v != VERSION) {
            self.variable(path)?;
            return Err(Error::not_found(format!(
                "secret `{path}` has no version `{version}`: environment variables only have version 1"
            )));
        }
        Ok(Secret {
            value: self.value(path)?.into_bytes(),
            version: VERSION.to_owned(),
            created_ms: 0,
            metadata: Vec::new(),
            deletion_ms: 0,
        })
    }

    fn put(&mut self, _: &str, _: Vec<u8>, _: Metadata, _: Option<&str>) -> Result<String, Error> {
        Err(read_only())
    }

    fn delete(&mut self, _: &str) -> Result<(), Error> {
        Err(read_only())
    }

    fn delete_versions(&mut self, _: &str, _: &[String], _: bool) -> Result<(), Error> {
        Err(read_only())
    }

    fn undelete_versions(&mut self, _: &str, _: &[String]) -> Result<(), Error> {
        Err(read_only())
    }

    fn list(&mut self, prefix: &str) -> Result<Vec<String>, Error> {
        Ok(matching_paths(std::env::vars_os(), &self.prefix, prefix))
    }

    fn versions(&mut self, path: &str) -> Result<Vec<VersionInfo>, Error> {
        self.value(path)?;
        Ok(vec![VersionInfo {
            version: VERSION.to_owned(),
            created_ms: 0,
            deleted: false,
            destroyed: false,
            metadata: Vec::new(),
            deletion_ms: 0,
        }])
    }
}

export_provider!(EnvProvider);

/// Can `text` be (part of) a variable name: non-empty ASCII letters,
/// digits and `_`?
fn is_name_part(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The paths (variable names without `var_prefix`) of `vars` whose path
/// starts with `path_prefix`, sorted.
fn matching_paths(
    vars: impl Iterator<Item = (OsString, OsString)>,
    var_prefix: &str,
    path_prefix: &str,
) -> Vec<String> {
    let mut paths: Vec<String> = vars
        .filter_map(|(name, _)| name.into_string().ok())
        .filter_map(|name| name.strip_prefix(var_prefix).map(str::to_owned))
        .filter(|path| is_name_part(path) && path.starts_with(path_prefix))
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

/// The answer to every write.
fn read_only() -> Error {
    Error::unsupported("the env provider is read-only: change the environment of the host process instead")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn provider(prefix: &str) -> Result<EnvProvider, Error> {
        EnvProvider::configure(Config::new(vec![("prefix".into(), prefix.into())]))
    }

    #[test]
    fn configure_requires_a_usable_prefix() {
        assert!(matches!(
            EnvProvider::configure(Config::default()),
            Err(Error::InvalidInput(m)) if m.contains("`prefix`")
        ));
        for bad in ["", "APP-", "A P"] {
            assert!(matches!(provider(bad), Err(Error::InvalidInput(_))), "{bad:?}");
        }
        assert!(provider("APP_").is_ok());
    }

    #[test]
    fn configure_refuses_a_misspelt_key() {
        let config = Config::new(vec![("prefix".into(), "APP_".into()), ("prefx".into(), "APP_".into())]);
        assert!(matches!(
            EnvProvider::configure(config),
            Err(Error::InvalidInput(m)) if m.contains("`prefx`") && m.contains("did you mean `prefix`")
        ));
    }

    #[test]
    fn lists_names_without_the_prefix() {
        let vars = [
            ("APP_B", "x"),
            ("APP_A", "x"),
            ("APP_", "x"),
            ("OTHER", "x"),
            ("APP_C-D", "x"),
            ("APP_A2", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        assert_eq!(matching_paths(vars.clone(), "APP_", ""), ["A", "A2", "B"]);
        assert_eq!(matching_paths(vars, "APP_", "A"), ["A", "A2"]);
    }

    #[test]
    fn reads_granted_variables_and_refuses_writes() {
        // The only test touching the process environment.
        std::env::set_var("TRESOR_ENV_TEST_TOKEN", "s3cr3t");
        let mut p = provider("TRESOR_ENV_TEST_").unwrap();
        let secret = p.get("TOKEN", None).unwrap();
        assert_eq!(secret.value, b"s3cr3t");
        assert_eq!(secret.version, "1");
        assert_eq!(p.get("TOKEN", Some("1")).unwrap().value, b"s3cr3t");
        assert!(matches!(p.get("TOKEN", Some("2")), Err(Error::NotFound(_))));
        assert!(matches!(p.get("MISSING", None), Err(Error::NotFound(m)) if m.contains("TRESOR_ENV_TEST_MISSING")));
        assert!(matches!(p.get("a/b", None), Err(Error::InvalidInput(_))));
        assert_eq!(p.versions("TOKEN").unwrap().len(), 1);
        assert_eq!(p.list("").unwrap(), ["TOKEN"]);
        assert!(matches!(p.put("TOKEN", vec![], vec![], None), Err(Error::Unsupported(m)) if m.contains("read-only")));
        assert!(matches!(p.delete("TOKEN"), Err(Error::Unsupported(_))));
        let caps = p.capabilities();
        assert!(caps.listable && !caps.writable && !caps.versioned && !caps.deletable);
    }
}
