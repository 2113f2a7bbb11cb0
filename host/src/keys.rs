//! The master key and the envelope encryption plugins use through the host's
//! `seal`/`unseal` imports. Plugins never see a key: they hand plaintext to the
//! host and store the sealed blob.
//!
//! Scheme: each mount gets its own key-encryption key (KEK), derived from the
//! master key with HKDF-SHA256 and the mount name, so one mount cannot unseal
//! another's data. Each `seal` draws a fresh 256-bit data key (DEK), encrypts
//! the plaintext with it (AES-256-GCM, the caller's context as associated
//! data), and wraps the DEK with the mount's KEK (AES-256-GCM, same context).
//!
//! Blob layout: `"TSL1" | wrap-nonce (12) | wrapped DEK (32 + 16 tag) | data-nonce (12) | ciphertext + tag`.

use std::fs;
use std::io::Write;
use std::path::Path;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::{Zeroize, Zeroizing};

use crate::error::StartupError;

const MAGIC: &[u8; 4] = b"TSL1";
const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 4 + NONCE_LEN + KEY_LEN + TAG_LEN + NONCE_LEN;

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

    /// The sealer for one mount: a key-encryption key derived for it alone.
    pub fn sealer_for(&self, mount: &str) -> Sealer {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"tresor seal v1");
        let prk = salt.extract(&self.0[..]);
        let info = [mount.as_bytes()];
        let okm = prk
            .expand(&info, &AES_256_GCM)
            .expect("HKDF output length matches AES-256");
        let kek = LessSafeKey::new(UnboundKey::from(okm));
        Sealer {
            kek,
            rng: SystemRandom::new(),
        }
    }
}

/// Envelope encryption for one mount (see the module docs).
pub struct Sealer {
    kek: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<redacted>)")
    }
}

/// Why `unseal` refused a blob. Deliberately vague towards the plugin.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// The blob is not something `seal` produced.
    #[error("not a sealed blob (bad header or length)")]
    Malformed,
    /// Authentication failed: tampered, sealed for another mount, or another context.
    #[error("cannot unseal: the blob was modified, sealed by another mount or key, or the context differs")]
    Authentication,
    /// The random generator failed.
    #[error("the system random generator failed")]
    Random,
}

impl Sealer {
    /// Encrypt `plaintext` bound to `context`.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut dek = Zeroizing::new([0u8; KEY_LEN]);
        let mut wrap_nonce = [0u8; NONCE_LEN];
        let mut data_nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut dek[..]).map_err(|_| SealError::Random)?;
        self.rng.fill(&mut wrap_nonce).map_err(|_| SealError::Random)?;
        self.rng.fill(&mut data_nonce).map_err(|_| SealError::Random)?;

        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&wrap_nonce);
        let mut wrapped = dek.to_vec();
        self.kek
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(wrap_nonce),
                Aad::from(context),
                &mut wrapped,
            )
            .map_err(|_| SealError::Authentication)?;
        out.extend_from_slice(&wrapped);
        out.extend_from_slice(&data_nonce);

        let data_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &dek[..]).map_err(|_| SealError::Random)?);
        let mut body = Zeroizing::new(plaintext.to_vec());
        data_key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(data_nonce), Aad::from(context), &mut *body)
            .map_err(|_| SealError::Authentication)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decrypt a blob produced by [`Sealer::seal`] with the same context.
    pub fn unseal(&self, sealed: &[u8], context: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if sealed.len() < HEADER_LEN + TAG_LEN || &sealed[..4] != MAGIC {
            return Err(SealError::Malformed);
        }
        let wrap_nonce =
            Nonce::try_assume_unique_for_key(&sealed[4..4 + NONCE_LEN]).map_err(|_| SealError::Malformed)?;
        let wrapped_end = 4 + NONCE_LEN + KEY_LEN + TAG_LEN;
        let mut wrapped = Zeroizing::new(sealed[4 + NONCE_LEN..wrapped_end].to_vec());
        let dek = self
            .kek
            .open_in_place(wrap_nonce, Aad::from(context), &mut wrapped)
            .map_err(|_| SealError::Authentication)?;
        let data_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, dek).map_err(|_| SealError::Malformed)?);
        let data_nonce =
            Nonce::try_assume_unique_for_key(&sealed[wrapped_end..HEADER_LEN]).map_err(|_| SealError::Malformed)?;
        let mut body = Zeroizing::new(sealed[HEADER_LEN..].to_vec());
        let len = data_key
            .open_in_place(data_nonce, Aad::from(context), &mut body)
            .map_err(|_| SealError::Authentication)?
            .len();
        body.truncate(len);
        wrapped.zeroize();
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_and_binding() {
        let key = MasterKey::generate().unwrap();
        let a = key.sealer_for("a");
        let blob = a.seal(b"hunter2", b"db\x001").unwrap();
        assert!(!blob.windows(7).any(|w| w == b"hunter2"), "plaintext visible in blob");
        assert_eq!(&a.unseal(&blob, b"db\x001").unwrap()[..], b"hunter2");
        // Another context, another mount, or a flipped bit: refused.
        assert_eq!(a.unseal(&blob, b"db\x002").unwrap_err(), SealError::Authentication);
        assert_eq!(
            key.sealer_for("b").unseal(&blob, b"db\x001").unwrap_err(),
            SealError::Authentication
        );
        let mut tampered = blob.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(a.unseal(&tampered, b"db\x001").unwrap_err(), SealError::Authentication);
        assert_eq!(a.unseal(b"short", b"").unwrap_err(), SealError::Malformed);
    }

    #[cfg(unix)]
    #[test]
    fn key_file_is_created_0600_and_reloaded() {
        use std::os::unix::fs::PermissionsExt;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/master.key");
        let k1 = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let k2 = MasterKey::load_or_create(&path).unwrap();
        let blob = k1.sealer_for("m").seal(b"v", b"c").unwrap();
        assert_eq!(&k2.sealer_for("m").unseal(&blob, b"c").unwrap()[..], b"v");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = MasterKey::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        assert!(!format!("{k1:?}").contains(&hex::encode(&k1.0[..])));
    }
}
