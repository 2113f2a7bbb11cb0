//! A read-only provider serving secrets kept the way existing Windows
//! deployments keep them: a JSON file mapping each name to a Windows DPAPI
//! blob in hex (see [`secrets`]).
//!
//! The plugin never decrypts anything itself: `get` hands the blob to the
//! host's `unprotect` import (`CryptUnprotectData`, under the Windows account
//! the host runs as), with the mount's optional entropy. On a host that is
//! not Windows, `unprotect` answers `unsupported`, and so does every `get`,
//! with the host's message unchanged; listing still works.
//!
//! The file is read again on every call, so a Windows-side tool that
//! rewrites it is picked up without restarting the mount. Every secret has
//! exactly one version, `"1"`. Writes are refused.
//!
//! Mount configuration (grant the directory holding the file, read-only):
//!
//! | key       | meaning                                                               |
//! |-----------|-----------------------------------------------------------------------|
//! | `file`    | the secrets file, relative to the granted directory (default `secrets.json`) |
//! | `entropy` | optional: the entropy the blobs were protected with, in hex          |
//!
//! Any other key is refused when the mount starts, naming it.

pub mod secrets;

use std::path::{Component, Path, PathBuf};

use tresor_plugin_sdk::{export_provider, host, Capabilities, Config, Error, Metadata, Provider, Secret, VersionInfo};

use crate::secrets::{decode_hex, Secrets};

/// Where the host mounts the granted directory inside the sandbox.
const DATA_DIR: &str = "/data";
/// The secrets file when the mount does not set `file`.
const DEFAULT_FILE: &str = "secrets.json";
/// The only version a secret has.
const VERSION: &str = "1";
/// The mount configuration keys this plugin reads (see the crate docs).
const CONFIG_KEYS: &[&str] = &["file", "entropy"];

/// Serves the blobs of one secrets file through the host's DPAPI.
struct DpapiProvider {
    /// The file inside the sandbox (`/data/<file>`).
    path: PathBuf,
    /// The file as the operator configured it, for messages.
    shown: String,
    /// Entropy handed to `unprotect` (empty: none).
    entropy: Vec<u8>,
}

impl DpapiProvider {
    fn from_config(config: &Config, data_dir: &Path) -> Result<Self, Error> {
        config.check_keys(CONFIG_KEYS)?;
        let file = config.get("file").unwrap_or(DEFAULT_FILE);
        check_relative_file(file)?;
        let entropy = match config.get("entropy") {
            None => Vec::new(),
            Some(hex) => decode_hex(hex.trim()).map_err(|why| {
                Error::invalid_input(format!(
                    "config key `entropy` must be the blobs' entropy in hex digits ({why}): \
                     fix it in the mount's config, or remove it when the blobs have no entropy"
                ))
            })?,
        };
        Ok(DpapiProvider {
            path: data_dir.join(file),
            shown: file.to_owned(),
            entropy,
        })
    }

    fn load(&self) -> Result<Secrets, Error> {
        Secrets::load(&self.path, &self.shown)
    }
}

/// `file` must stay inside the granted directory: relative, no `..`.
fn check_relative_file(file: &str) -> Result<(), Error> {
    let path = Path::new(file);
    let inside = path.components().any(|c| matches!(c, Component::Normal(_)))
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if inside {
        Ok(())
    } else {
        Err(Error::invalid_input(
            "config key `file` must be a path relative to the mount's granted directory, without `..` \
             (like `secrets.json`): fix it in the mount's config",
        ))
    }
}

impl Provider for DpapiProvider {
    const NAME: &'static str = "dpapi";

    fn configure(config: Config) -> Result<Self, Error> {
        let provider = DpapiProvider::from_config(&config, Path::new(DATA_DIR))?;
        match std::fs::metadata(DATA_DIR) {
            Ok(meta) if meta.is_dir() => Ok(provider),
            _ => Err(Error::invalid_input(
                "the dpapi provider reads its secrets file from a granted directory: \
                 grant the mount the directory holding it (read-only is enough)",
            )),
        }
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            listable: true,
            ..Capabilities::NONE
        }
    }

    fn get(&mut self, path: &str, version: Option<&str>) -> Result<Secret, Error> {
        let secrets = self.load()?;
        let blob = secrets.blob(path, &self.shown)?;
        if let Some(version) = version.filter(|v| *v != VERSION) {
            return Err(Error::not_found(format!(
                "secret `{path}` has no version `{version}`: DPAPI secrets only have version 1"
            )));
        }
        // The host's error (`unsupported` off Windows, `invalid-input` for a
        // blob that does not open) is the most precise answer: pass it on.
        let value = host::unprotect(blob, &self.entropy)?;
        Ok(Secret {
            value,
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
        Ok(self.load()?.names(prefix))
    }

    fn versions(&mut self, path: &str) -> Result<Vec<VersionInfo>, Error> {
        self.load()?.blob(path, &self.shown)?;
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

export_provider!(DpapiProvider);

/// The answer to every write.
fn read_only() -> Error {
    Error::unsupported(
        "the dpapi provider is read-only: protect new values with DPAPI on the Windows host \
         and add them to the secrets file there",
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Config {
        Config::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn provider(dir: &Path, pairs: &[(&str, &str)]) -> Result<DpapiProvider, Error> {
        DpapiProvider::from_config(&config(pairs), dir)
    }

    #[test]
    fn configuration_defaults_and_checks() {
        let p = provider(Path::new("/data"), &[]).unwrap();
        assert_eq!(p.path, Path::new("/data/secrets.json"));
        assert!(p.entropy.is_empty());

        let p = provider(
            Path::new("/data"),
            &[("file", "legacy/app.json"), ("entropy", "00FFab")],
        )
        .unwrap();
        assert_eq!(p.path, Path::new("/data/legacy/app.json"));
        assert_eq!(p.entropy, [0x00, 0xff, 0xab]);

        for bad in ["", ".", "/etc/passwd", "../secrets.json", "a/../../b"] {
            assert!(
                matches!(provider(Path::new("/data"), &[("file", bad)]), Err(Error::InvalidInput(m)) if m.contains("`file`")),
                "{bad:?}"
            );
        }
        match provider(Path::new("/data"), &[("entropy", "not hex s3cr3t")]) {
            Err(Error::InvalidInput(m)) => {
                assert!(m.contains("`entropy`"), "{m}");
                assert!(!m.contains("s3cr3t"), "{m}");
            }
            _ => panic!("expected invalid-input"),
        }
    }

    #[test]
    fn configure_refuses_a_misspelt_key() {
        match provider(Path::new("/data"), &[("entrophy", "0011aabb")]) {
            Err(Error::InvalidInput(m)) => {
                assert!(m.contains("`entrophy`") && m.contains("did you mean `entropy`"), "{m}");
                assert!(!m.contains("0011aabb"), "{m}");
            }
            _ => panic!("expected invalid-input"),
        }
    }

    #[test]
    fn lists_and_describes_without_decrypting() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secrets.json"), br#"{"db": "0102", "app/token": "03"}"#).unwrap();
        let mut p = provider(dir.path(), &[]).unwrap();
        assert_eq!(p.list("").unwrap(), ["app/token", "db"]);
        assert_eq!(p.list("app/").unwrap(), ["app/token"]);
        assert_eq!(p.versions("db").unwrap()[0].version, "1");
        assert!(matches!(p.versions("nope"), Err(Error::NotFound(_))));
        // Unknown names and versions fail before the host is asked.
        assert!(matches!(p.get("nope", None), Err(Error::NotFound(m)) if m.contains("`nope`")));
        assert!(matches!(p.get("db", Some("2")), Err(Error::NotFound(m)) if m.contains("version `2`")));
        assert!(matches!(p.put("db", vec![], vec![], None), Err(Error::Unsupported(m)) if m.contains("read-only")));
        assert!(matches!(p.delete("db"), Err(Error::Unsupported(_))));
        let caps = p.capabilities();
        assert!(caps.listable && !caps.writable && !caps.versioned && !caps.deletable);
    }

    #[test]
    fn a_broken_file_fails_every_operation_alike() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secrets.json"), b"{ not json").unwrap();
        let mut p = provider(dir.path(), &[]).unwrap();
        assert!(matches!(p.list(""), Err(Error::InvalidInput(m)) if m.contains("not valid JSON")));
        assert!(matches!(p.get("x", None), Err(Error::InvalidInput(m)) if m.contains("not valid JSON")));
        assert!(matches!(p.versions("x"), Err(Error::InvalidInput(_))));
    }
}
