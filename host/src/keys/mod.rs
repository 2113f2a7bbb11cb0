//! The master key, the keyring of key generations it protects, and the
//! envelope encryption plugins use through the host's `seal`/`unseal`
//! imports. Plugins never see a key: they hand plaintext to the host and
//! store the sealed blob.
//!
//! - [`MasterKey`] (this module): the key in the key file or
//!   `$TRESOR_MASTER_KEY`. It is generation 0 of the keyring, and it wraps
//!   every later generation.
//! - [`keyring`]: the key generations. `tresor operator rotate-master-key` adds
//!   one; new values are sealed under it at once.
//! - [`seal`]: the blob format, and sealing, unsealing and resealing under a
//!   generation.

use std::fs;
use std::io::Write;
use std::path::Path;

use ring::aead::{LessSafeKey, UnboundKey, AES_256_GCM};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};

pub mod keyring;
pub mod seal;

pub use self::keyring::{GenerationRecord, KeyError, Keyring, KeyringRecord};
pub use self::seal::{SealError, Sealer};
use zeroize::Zeroizing;

use crate::error::StartupError;

const KEY_LEN: usize = 32;

/// The environment variable that may hold the master key (64 hex digits).
pub const MASTER_KEY_ENV: &str = "TRESOR_MASTER_KEY";

/// The host's master key. Zeroized on drop; never printed.
pub struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// Generate a fresh random key.
    pub fn generate() -> Result<Self, StartupError> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        SystemRandom::new()
            .fill(&mut key[..])
            .map_err(|_| StartupError::Key("the system random generator failed".into()))?;
        Ok(MasterKey(key))
    }

    /// Parse a key from 64 hex digits (surrounding whitespace is ignored).
    pub fn from_hex(text: &str) -> Result<Self, StartupError> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        hex::decode_to_slice(text.trim(), &mut key[..]).map_err(|_| {
            StartupError::Key(
                "a master key must be exactly 64 hex digits (32 bytes); generate one with `openssl rand -hex 32`"
                    .into(),
            )
        })?;
        Ok(MasterKey(key))
    }

    /// Load the master key the way a server does: from `$TRESOR_MASTER_KEY`
    /// when set, otherwise from `key_file`, creating that file (mode 0600,
    /// fresh random key) on first start. A key file readable by group or
    /// others is refused.
    pub fn load_or_create(key_file: &Path) -> Result<Self, StartupError> {
        if let Some(key) = Self::load(key_file)? {
            return Ok(key);
        }
        let key = Self::generate()?;
        key.write_new(key_file)?;
        tracing::info!(path = %key_file.display(), "created a new master key file (mode 0600); back it up: without it the file provider's data cannot be decrypted");
        Ok(key)
    }

    /// The master key from `$TRESOR_MASTER_KEY` when set, otherwise from
    /// `key_file`; `None` when neither exists. A key file readable by group
    /// or others is refused.
    pub fn load(key_file: &Path) -> Result<Option<Self>, StartupError> {
        if let Ok(text) = std::env::var(MASTER_KEY_ENV) {
            let text = Zeroizing::new(text);
            return Self::from_hex(&text)
                .map(Some)
                .map_err(|e| StartupError::Key(format!("${MASTER_KEY_ENV}: {e}")));
        }
        match fs::metadata(key_file) {
            Ok(meta) => {
                if let Some(mode) = crate::files::shared_mode(&meta) {
                    return Err(StartupError::Key(format!(
                        "key file `{}` is readable by others (mode {mode}); run `chmod 600 {}`",
                        key_file.display(),
                        key_file.display()
                    )));
                }
                let text = Zeroizing::new(fs::read_to_string(key_file).map_err(|source| StartupError::Io {
                    what: "reading key file",
                    path: key_file.into(),
                    source,
                })?);
                Self::from_hex(&text)
                    .map(Some)
                    .map_err(|e| StartupError::Key(format!("`{}`: {e}", key_file.display())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StartupError::Io {
                what: "reading key file",
                path: key_file.into(),
                source,
            }),
        }
    }

    fn write_new(&self, key_file: &Path) -> Result<(), StartupError> {
        let io = |source| StartupError::Io {
            what: "creating key file",
            path: key_file.into(),
            source,
        };
        if let Some(parent) = key_file.parent() {
            fs::create_dir_all(parent).map_err(io)?;
        }
        let mut file = crate::files::owner_only()
            .write(true)
            .create_new(true)
            .open(key_file)
            .map_err(io)?;
        let mut text = Zeroizing::new(hex::encode(&self.0[..]));
        text.push('\n');
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)
    }

    /// A value that tells master keys apart without revealing them
    /// (HMAC-SHA256 of a fixed label under a key derived for it alone):
    /// hosts sharing a state store compare it at start.
    pub fn check_value(&self) -> String {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"tresor key check v1");
        let prk = salt.extract(&self.0[..]);
        let okm = prk
            .expand(&[b"key-check"], ring::hmac::HMAC_SHA256)
            .expect("HKDF output length matches HMAC-SHA256");
        let key = ring::hmac::Key::from(okm);
        hex::encode(ring::hmac::sign(&key, b"tresor master key check").as_ref())
    }

    /// The key audit log checkpoints are signed with (HKDF-SHA256, its own
    /// label, so it is independent of every mount's key).
    pub fn audit_checkpoint_key(&self) -> crate::audit::CheckpointKey {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"tresor audit checkpoint v1");
        let prk = salt.extract(&self.0[..]);
        let okm = prk
            .expand(&[b"audit-checkpoint"], ring::hmac::HMAC_SHA256)
            .expect("HKDF output length matches HMAC-SHA256");
        crate::audit::CheckpointKey(ring::hmac::Key::from(okm))
    }

    /// The key-encryption key of `mount` under generation 0, the master key
    /// itself (see [`seal`]).
    pub(crate) fn root_kek(&self, mount: &str) -> LessSafeKey {
        kek_from(&self.0[..], b"tresor seal v1", mount)
    }

    /// The key that wraps the keyring's generation keys (see [`keyring`]).
    pub(crate) fn keyring_wrap_key(&self) -> LessSafeKey {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"tresor keyring v1");
        let prk = salt.extract(&self.0[..]);
        let okm = prk
            .expand(&[b"keyring"], &AES_256_GCM)
            .expect("HKDF output length matches AES-256");
        LessSafeKey::new(UnboundKey::from(okm))
    }
}

/// A mount's key-encryption key: HKDF-SHA256 of `key` with `salt`, the
/// mount's name as the info, so one mount cannot unseal another's data.
pub(crate) fn kek_from(key: &[u8], salt: &[u8], mount: &str) -> LessSafeKey {
    let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, salt);
    let prk = salt.extract(key);
    let info = [mount.as_bytes()];
    let okm = prk
        .expand(&info, &AES_256_GCM)
        .expect("HKDF output length matches AES-256");
    LessSafeKey::new(UnboundKey::from(okm))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_created_0600_and_reloaded() {
        use std::os::unix::fs::PermissionsExt;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/master.key");
        let k1 = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let k2 = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(k1.check_value(), k2.check_value());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = MasterKey::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        assert!(!format!("{k1:?}").contains(&hex::encode(&k1.0[..])));
    }
}
