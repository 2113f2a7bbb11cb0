//! __NAME__: a Tresor provider plugin. It keeps each secret in one file
//! of the directory its mount grants (`/data` inside the sandbox), the
//! value sealed by the host (`host::seal`), never in plaintext.
//!
//! Start from here: replace the file layout with your backend, keep the
//! rules of `wit/plugin.wit` (errors say what to do next and never hold a
//! value), and check it with `tresor plugin check`.

wit_bindgen::generate!({ path: "wit", world: "sealing-provider-plugin" });

use std::io::Write;

use exports::tresor::plugin::provider::{Capabilities, Guest};
use exports::tresor::plugin::resealer::{Guest as Resealer, Resealed};
use tresor::plugin::host;
use tresor::plugin::types::{Error, Secret, Settings, VersionInfo};

const DATA: &str = "/data";
/// The configuration keys this plugin reads; any other is refused.
const CONFIG_KEYS: &[&str] = &[];

struct Plugin;

/// The file of `path`: its bytes in hex, so any path is one file name.
fn file_of(path: &str) -> String {
    let hex: String = path.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{DATA}/{hex}.secret")
}

fn path_of(file: &str) -> Option<String> {
    let hex = file.strip_suffix(".secret")?;
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| hex.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect();
    String::from_utf8(bytes?).ok()
}

/// What the context of a sealed value binds it to: its path and version.
fn context(path: &str, version: u64) -> Vec<u8> {
    format!("{path}\0{version}").into_bytes()
}

fn io(what: &str, e: std::io::Error) -> Error {
    Error::Unavailable(format!("{what}: {e}; is the mount's `directory` granted and writable?"))
}

/// One stored secret.
struct Stored {
    version: u64,
    metadata: Vec<(String, String)>,
    sealed: Vec<u8>,
}

/// A secret's file: a JSON line `{"version": n, "metadata": [[k, v], ...]}`,
/// then the sealed value.
fn load(path: &str) -> Result<Option<Stored>, Error> {
    let bytes = match std::fs::read(file_of(path)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("reading the secret", e)),
    };
    let damaged = || Error::Internal(format!("the file of `{path}` is damaged"));
    let n = bytes.iter().position(|b| *b == b'\n').ok_or_else(damaged)?;
    let header: serde_json::Value = serde_json::from_slice(&bytes[..n]).map_err(|_| damaged())?;
    let version = header["version"].as_u64().ok_or_else(damaged)?;
    let metadata = serde_json::from_value(header["metadata"].clone()).map_err(|_| damaged())?;
    Ok(Some(Stored {
        version,
        metadata,
        sealed: bytes[n + 1..].to_vec(),
    }))
}

/// Write a secret's file: a temporary file renamed over it, so a crash
/// never leaves half a secret.
fn save(path: &str, version: u64, metadata: &[(String, String)], sealed: &[u8]) -> Result<(), Error> {
    let header = serde_json::json!({ "version": version, "metadata": metadata });
    let mut bytes = format!("{header}\n").into_bytes();
    bytes.extend_from_slice(sealed);
    let tmp = format!("{}.tmp", file_of(path));
    let mut f = std::fs::File::create(&tmp).map_err(|e| io("writing the secret", e))?;
    f.write_all(&bytes).and_then(|()| f.sync_all()).map_err(|e| io("writing the secret", e))?;
    std::fs::rename(&tmp, file_of(path)).map_err(|e| io("writing the secret", e))
}

fn unsupported(what: &str) -> Error {
    Error::Unsupported(format!("__NAME__ does not support {what}"))
}

impl Guest for Plugin {
    fn configure(config: Vec<(String, String)>) -> Result<(), Error> {
        if let Some((key, _)) = config.iter().find(|(k, _)| !CONFIG_KEYS.contains(&k.as_str())) {
            return Err(Error::InvalidInput(format!(
                "unknown config key `{key}`; this plugin reads {CONFIG_KEYS:?}"
            )));
        }
        std::fs::read_dir(DATA).map_err(|e| {
            Error::InvalidInput(format!("cannot open {DATA} ({e}): grant the mount a `directory`"))
        })?;
        Ok(())
    }

    fn get_capabilities() -> Capabilities {
        Capabilities {
            writable: true,
            versioned: false,
            check_and_set: false,
            deletable: true,
            listable: true,
            soft_delete: false,
        }
    }

    fn get(path: String, version: Option<String>) -> Result<Secret, Error> {
        let stored = load(&path)?.ok_or_else(|| Error::NotFound(format!("no secret `{path}`")))?;
        if version.is_some_and(|v| v != stored.version.to_string()) {
            return Err(Error::NotFound(format!(
                "`{path}` keeps only its latest version, {}",
                stored.version
            )));
        }
        Ok(Secret {
            value: host::unseal(&stored.sealed, &context(&path, stored.version))?,
            version: stored.version.to_string(),
            created_ms: 0,
            metadata: stored.metadata,
            deletion_ms: 0,
        })
    }

    fn put(path: String, value: Vec<u8>, metadata: Vec<(String, String)>, _expected: Option<String>) -> Result<String, Error> {
        let version = load(&path)?.map(|s| s.version + 1).unwrap_or(1);
        save(&path, version, &metadata, &host::seal(&value, &context(&path, version))?)?;
        Ok(version.to_string())
    }

    fn delete(path: String) -> Result<(), Error> {
        match std::fs::remove_file(file_of(&path)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::NotFound(format!("no secret `{path}`"))),
            Err(e) => Err(io("deleting the secret", e)),
        }
    }

    fn delete_versions(_: String, _: Vec<String>, _: bool) -> Result<(), Error> {
        Err(unsupported("deleting single versions"))
    }

    fn undelete_versions(_: String, _: Vec<String>) -> Result<(), Error> {
        Err(unsupported("restoring versions"))
    }

    fn list_secrets(prefix: String) -> Result<Vec<String>, Error> {
        let entries = std::fs::read_dir(DATA).map_err(|e| io("listing secrets", e))?;
        let mut paths: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|name| path_of(&name))
            .filter(|p| p.starts_with(&prefix))
            .collect();
        paths.sort();
        Ok(paths)
    }

    fn versions(_: String) -> Result<Vec<VersionInfo>, Error> {
        Err(unsupported("version history"))
    }

    fn get_settings(_: String) -> Result<Settings, Error> {
        Err(unsupported("version settings"))
    }

    fn set_settings(_: String, _: Settings) -> Result<(), Error> {
        Err(unsupported("version settings"))
    }
}

/// After a master key rotation the host moves every stored value to the new
/// key generation through this export: `host::reseal` wraps the value's key
/// again, and the new blob replaces the old one.
impl Resealer for Plugin {
    fn reseal(path: String) -> Result<Resealed, Error> {
        let stored = load(&path)?.ok_or_else(|| Error::NotFound(format!("no secret `{path}`")))?;
        let Some(moved) = host::reseal(&stored.sealed, &context(&path, stored.version))? else {
            return Ok(Resealed { versions: 1, moved: 0 });
        };
        save(&path, stored.version, &stored.metadata, &moved)?;
        Ok(Resealed { versions: 1, moved: 1 })
    }
}

export!(Plugin);
