//! Sealed blobs: envelope encryption of one value under one key generation.
//!
//! Each mount has its own key-encryption key (KEK) per generation, derived
//! with HKDF-SHA256 and the mount's name, so one mount cannot unseal
//! another's data. Each `seal` draws a fresh 256-bit data key (DEK),
//! encrypts the plaintext with it (AES-256-GCM, the caller's context as
//! associated data), and wraps the DEK with the mount's KEK of the current
//! generation (AES-256-GCM, same context).
//!
//! Blob layouts:
//!
//! - generation 0 (the master key itself, and every blob written before key
//!   generations existed): `"TSL1" | wrap-nonce (12) | wrapped DEK (32 + 16 tag) | data-nonce (12) | ciphertext + tag`;
//! - generation `n` ≥ 1: `"TSL2" | n (4 bytes, big-endian) |` the same.
//!
//! [`Sealer::reseal`] moves a blob to the current generation by wrapping its
//! DEK again: the value's ciphertext is kept as it is and its plaintext never
//! leaves the host.

use std::sync::Arc;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use super::Keyring;

const MAGIC_V1: &[u8; 4] = b"TSL1";
const MAGIC_V2: &[u8; 4] = b"TSL2";
const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;
/// Nonce, wrapped DEK and its tag, data nonce.
const ENVELOPE_LEN: usize = NONCE_LEN + KEY_LEN + TAG_LEN + NONCE_LEN;

/// Envelope encryption for one mount (see the module docs).
pub struct Sealer {
    ring: Arc<Keyring>,
    mount: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("mount", &self.mount)
            .finish_non_exhaustive()
    }
}

/// Why a blob could not be sealed, unsealed or resealed. Deliberately vague
/// towards the plugin: it never says which check failed on a valid header.
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
    /// The blob's key generation was retired: its key is gone.
    #[error("the value is sealed under key generation {0}, which was retired; restore it from a backup taken before the retirement")]
    Retired(u32),
    /// The blob names a generation this host has not loaded.
    #[error("the value is sealed under key generation {0}, which this host does not know; the keyring is refreshed from the state store every few seconds, or restart the host")]
    UnknownGeneration(u32),
}

/// The parts of a blob.
struct Blob<'a> {
    generation: u32,
    wrap_nonce: &'a [u8],
    wrapped: &'a [u8],
    data_nonce: &'a [u8],
    body: &'a [u8],
}

impl<'a> Blob<'a> {
    fn parse(sealed: &'a [u8]) -> Result<Blob<'a>, SealError> {
        let (generation, rest) = match sealed.get(..4) {
            Some(m) if m == MAGIC_V1 => (0, &sealed[4..]),
            Some(m) if m == MAGIC_V2 && sealed.len() >= 8 => {
                let generation = u32::from_be_bytes(sealed[4..8].try_into().expect("4 bytes"));
                if generation == 0 {
                    return Err(SealError::Malformed);
                }
                (generation, &sealed[8..])
            }
            _ => return Err(SealError::Malformed),
        };
        if rest.len() < ENVELOPE_LEN + TAG_LEN {
            return Err(SealError::Malformed);
        }
        let (wrap_nonce, rest) = rest.split_at(NONCE_LEN);
        let (wrapped, rest) = rest.split_at(KEY_LEN + TAG_LEN);
        let (data_nonce, body) = rest.split_at(NONCE_LEN);
        Ok(Blob {
            generation,
            wrap_nonce,
            wrapped,
            data_nonce,
            body,
        })
    }
}

/// The header of a blob of `generation`.
fn header(generation: u32, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + capacity);
    if generation == 0 {
        out.extend_from_slice(MAGIC_V1);
    } else {
        out.extend_from_slice(MAGIC_V2);
        out.extend_from_slice(&generation.to_be_bytes());
    }
    out
}

/// The key generation a sealed blob was made under.
pub fn generation_of(sealed: &[u8]) -> Result<u32, SealError> {
    Blob::parse(sealed).map(|b| b.generation)
}

impl Sealer {
    pub(crate) fn new(ring: Arc<Keyring>, mount: &str) -> Sealer {
        Sealer {
            ring,
            mount: mount.to_string(),
            rng: SystemRandom::new(),
        }
    }

    /// Encrypt `plaintext` bound to `context`, under the current generation.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, SealError> {
        let (generation, kek) = self.ring.current_kek(&self.mount)?;
        let mut dek = Zeroizing::new([0u8; KEY_LEN]);
        let mut data_nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut dek[..]).map_err(|_| SealError::Random)?;
        self.rng.fill(&mut data_nonce).map_err(|_| SealError::Random)?;

        let mut out = header(generation, ENVELOPE_LEN + plaintext.len() + TAG_LEN);
        self.wrap(&kek, &dek[..], context, &mut out)?;
        out.extend_from_slice(&data_nonce);
        let data_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &dek[..]).map_err(|_| SealError::Random)?);
        let mut body = Zeroizing::new(plaintext.to_vec());
        data_key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(data_nonce), Aad::from(context), &mut *body)
            .map_err(|_| SealError::Authentication)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decrypt a blob produced by [`Sealer::seal`] with the same context,
    /// under whichever live generation it names.
    pub fn unseal(&self, sealed: &[u8], context: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let blob = Blob::parse(sealed)?;
        let dek = self.unwrap_dek(&blob, context)?;
        open_body(&dek, &blob, context)
    }

    /// The same value sealed under the current generation, or `None` when
    /// `sealed` already is. Only the data key is unwrapped and wrapped
    /// again; the value itself is not decrypted. A blob that does not open
    /// with `context` is refused, as by `unseal`.
    pub fn reseal(&self, sealed: &[u8], context: &[u8]) -> Result<Option<Vec<u8>>, SealError> {
        let blob = Blob::parse(sealed)?;
        let (current, kek) = self.ring.current_kek(&self.mount)?;
        if blob.generation == current {
            return Ok(None);
        }
        let dek = self.unwrap_dek(&blob, context)?;
        // The data key must also open the value: a blob whose body was
        // tampered with is refused now, not carried over.
        drop(open_body(&dek, &blob, context)?);
        let mut out = header(current, ENVELOPE_LEN + blob.body.len());
        self.wrap(&kek, &dek[..], context, &mut out)?;
        out.extend_from_slice(blob.data_nonce);
        out.extend_from_slice(blob.body);
        Ok(Some(out))
    }

    /// Append a fresh wrap nonce and `dek` wrapped under `kek`.
    fn wrap(&self, kek: &LessSafeKey, dek: &[u8], context: &[u8], out: &mut Vec<u8>) -> Result<(), SealError> {
        let mut wrap_nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut wrap_nonce).map_err(|_| SealError::Random)?;
        out.extend_from_slice(&wrap_nonce);
        let mut wrapped = Zeroizing::new(dek.to_vec());
        kek.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(wrap_nonce),
            Aad::from(context),
            &mut *wrapped,
        )
        .map_err(|_| SealError::Authentication)?;
        out.extend_from_slice(&wrapped);
        Ok(())
    }

    fn unwrap_dek(&self, blob: &Blob<'_>, context: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let kek = self.ring.kek(blob.generation, &self.mount)?;
        let wrap_nonce = Nonce::try_assume_unique_for_key(blob.wrap_nonce).map_err(|_| SealError::Malformed)?;
        let mut wrapped = Zeroizing::new(blob.wrapped.to_vec());
        let len = kek
            .open_in_place(wrap_nonce, Aad::from(context), &mut wrapped)
            .map_err(|_| SealError::Authentication)?
            .len();
        wrapped.truncate(len);
        Ok(wrapped)
    }
}

/// The value of `blob`, decrypted with its data key `dek`.
fn open_body(dek: &[u8], blob: &Blob<'_>, context: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let data_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, dek).map_err(|_| SealError::Malformed)?);
    let data_nonce = Nonce::try_assume_unique_for_key(blob.data_nonce).map_err(|_| SealError::Malformed)?;
    let mut body = Zeroizing::new(blob.body.to_vec());
    let len = data_key
        .open_in_place(data_nonce, Aad::from(context), &mut body)
        .map_err(|_| SealError::Authentication)?
        .len();
    body.truncate(len);
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyringRecord, MasterKey};

    fn ring() -> Arc<Keyring> {
        Keyring::new(Arc::new(MasterKey::generate().unwrap()))
    }

    #[test]
    fn seal_round_trip_and_binding() {
        let ring = ring();
        let a = ring.sealer_for("a");
        let blob = a.seal(b"hunter2", b"db\x001").unwrap();
        assert_eq!(&blob[..4], b"TSL1", "generation 0 keeps the original layout");
        assert!(!blob.windows(7).any(|w| w == b"hunter2"), "plaintext visible in blob");
        assert_eq!(&a.unseal(&blob, b"db\x001").unwrap()[..], b"hunter2");
        // Another context, another mount, or a flipped bit: refused.
        assert_eq!(a.unseal(&blob, b"db\x002").unwrap_err(), SealError::Authentication);
        assert_eq!(
            ring.sealer_for("b").unseal(&blob, b"db\x001").unwrap_err(),
            SealError::Authentication
        );
        let mut tampered = blob.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(a.unseal(&tampered, b"db\x001").unwrap_err(), SealError::Authentication);
        assert_eq!(a.unseal(b"short", b"").unwrap_err(), SealError::Malformed);
        assert_eq!(a.unseal(b"TSL2\0\0\0\0", b"").unwrap_err(), SealError::Malformed);
    }

    #[test]
    fn a_new_generation_seals_new_values_and_reseals_old_ones() {
        let ring = ring();
        let sealer = ring.sealer_for("m");
        let old = sealer.seal(b"hunter2", b"ctx").unwrap();
        let record = ring.with_new_generation(&KeyringRecord::initial(), 1).unwrap();
        ring.load(&record).unwrap();
        assert_eq!(ring.current(), 1);

        let new = sealer.seal(b"fresh", b"ctx").unwrap();
        assert_eq!(generation_of(&new).unwrap(), 1);
        assert_eq!(&new[..8], b"TSL2\0\0\0\x01");
        // Old blobs stay readable, and reseal moves them without touching the ciphertext.
        assert_eq!(&sealer.unseal(&old, b"ctx").unwrap()[..], b"hunter2");
        let moved = sealer
            .reseal(&old, b"ctx")
            .unwrap()
            .expect("generation 0 is not current");
        assert_eq!(generation_of(&moved).unwrap(), 1);
        assert_eq!(&moved[moved.len() - 7 - TAG_LEN..], &old[old.len() - 7 - TAG_LEN..]);
        assert_eq!(&sealer.unseal(&moved, b"ctx").unwrap()[..], b"hunter2");
        assert_eq!(sealer.reseal(&moved, b"ctx").unwrap(), None, "already current");
        // A wrong context or a tampered body is refused, not carried over.
        assert_eq!(sealer.reseal(&old, b"other").unwrap_err(), SealError::Authentication);
        let mut tampered = old.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(sealer.reseal(&tampered, b"ctx").unwrap_err(), SealError::Authentication);

        // Once generation 0 is retired, what is still under it cannot be opened.
        let mut retired = record.clone();
        retired.retire(0, 2);
        ring.load(&retired).unwrap();
        assert_eq!(sealer.unseal(&old, b"ctx").unwrap_err(), SealError::Retired(0));
        assert_eq!(&sealer.unseal(&moved, b"ctx").unwrap()[..], b"hunter2");

        // A host that has not loaded a generation says so.
        let other = super::super::Keyring::new(ring.root_for_tests());
        assert_eq!(
            other.sealer_for("m").unseal(&new, b"ctx").unwrap_err(),
            SealError::UnknownGeneration(1)
        );
    }
}
