//! Key generations: rotating the key values are sealed under without
//! changing the master key file.
//!
//! Generation 0 is the master key itself. `tresor operator rotate-master-key`
//! adds generation 1, 2, ...: a fresh random 256-bit key, wrapped by the
//! master key (AES-256-GCM, the generation number as associated data) and
//! kept in the host state store, so every host sharing the store loads the
//! same generations. New values are sealed under the newest generation at
//! once; the values under older ones are resealed in the background, and a
//! generation nothing uses any more is *retired*: its wrapped key is deleted
//! from the store, so what it protected cannot be opened again.
//!
//! [`KeyringRecord`] is the stored form (no key in it is readable without
//! the master key); [`Keyring`] is the loaded, unwrapped form a host seals
//! with.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use ring::aead::{Aad, LessSafeKey, Nonce, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::seal::{SealError, Sealer};
use super::{kek_from, MasterKey, KEY_LEN};

/// One generation as the state store keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationRecord {
    /// 0 for the master key itself, then 1, 2, ...
    pub generation: u32,
    /// When it was added, milliseconds since the Unix epoch (0 for generation 0).
    pub created_ms: u64,
    /// When it was retired; its key is gone from then on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_ms: Option<u64>,
    /// Nonce, ciphertext and tag of the generation key under the master
    /// key, hex. `None` for generation 0 and once retired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrapped: Option<String>,
}

/// The keyring as the state store keeps it (a JSON document).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyringRecord {
    /// The generation new values are sealed under.
    pub current: u32,
    /// Every generation ever added, oldest first.
    pub generations: Vec<GenerationRecord>,
}

impl KeyringRecord {
    /// The keyring of a store that never rotated: generation 0 only.
    pub fn initial() -> KeyringRecord {
        KeyringRecord {
            current: 0,
            generations: vec![GenerationRecord {
                generation: 0,
                created_ms: 0,
                retired_ms: None,
                wrapped: None,
            }],
        }
    }

    /// Mark `generation` retired at `now_ms` and drop its wrapped key. The
    /// current generation is never retired.
    pub fn retire(&mut self, generation: u32, now_ms: u64) {
        if generation == self.current {
            return;
        }
        if let Some(g) = self.generations.iter_mut().find(|g| g.generation == generation) {
            g.retired_ms.get_or_insert(now_ms);
            g.wrapped = None;
        }
    }

    /// The generations not retired, oldest first.
    pub fn live(&self) -> impl Iterator<Item = &GenerationRecord> {
        self.generations.iter().filter(|g| g.retired_ms.is_none())
    }
}

/// Why a stored keyring could not be loaded or changed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A generation key does not open with this master key.
    #[error("key generation {0} in the state store does not open with this master key: the host was started with another master key than the one that rotated it")]
    Unwrap(u32),
    /// The stored record is inconsistent.
    #[error("the keyring in the state store is damaged: {0}")]
    Damaged(String),
    /// The random generator failed.
    #[error("the system random generator failed")]
    Random,
}

/// The unwrapped generations a host seals with.
struct Loaded {
    current: u32,
    keys: BTreeMap<u32, Zeroizing<[u8; KEY_LEN]>>,
    retired: BTreeSet<u32>,
}

/// The loaded keyring: the master key and the live generation keys. Shared
/// by every mount's [`Sealer`]; [`Keyring::load`] swaps in a newer stored
/// record while the host runs.
pub struct Keyring {
    root: Arc<MasterKey>,
    loaded: RwLock<Loaded>,
    /// Values this host sealed under the current generation (Vault's
    /// `encryptions` of `sys/key-status`).
    sealed: AtomicU64,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current())
            .finish_non_exhaustive()
    }
}

fn wrap_aad(generation: u32) -> [u8; 4] {
    generation.to_be_bytes()
}

impl Keyring {
    /// A keyring with generation 0 (the master key) only.
    pub fn new(root: Arc<MasterKey>) -> Arc<Keyring> {
        Arc::new(Keyring {
            root,
            loaded: RwLock::new(Loaded {
                current: 0,
                keys: BTreeMap::new(),
                retired: BTreeSet::new(),
            }),
            sealed: AtomicU64::new(0),
        })
    }

    /// The master key (generation 0, and the key that wraps the others).
    pub fn master_key(&self) -> &MasterKey {
        &self.root
    }

    #[cfg(test)]
    pub(crate) fn root_for_tests(&self) -> Arc<MasterKey> {
        self.root.clone()
    }

    /// The sealer for one mount.
    pub fn sealer_for(self: &Arc<Self>, mount: &str) -> Sealer {
        Sealer::new(self.clone(), mount)
    }

    /// The generation new values are sealed under.
    pub fn current(&self) -> u32 {
        self.loaded.read().expect("keyring lock").current
    }

    /// Unwrap every live generation of `record` and seal under its current
    /// one from now on. Nothing changes when a key does not open.
    pub fn load(&self, record: &KeyringRecord) -> Result<(), KeyError> {
        let wrap_key = self.root.keyring_wrap_key();
        let mut keys = BTreeMap::new();
        let mut retired = BTreeSet::new();
        for g in &record.generations {
            if g.retired_ms.is_some() {
                retired.insert(g.generation);
                continue;
            }
            if g.generation == 0 {
                continue;
            }
            let wrapped = g
                .wrapped
                .as_deref()
                .ok_or_else(|| KeyError::Damaged(format!("generation {} has no key", g.generation)))?;
            keys.insert(g.generation, unwrap_key(&wrap_key, g.generation, wrapped)?);
        }
        let current = record.current;
        if retired.contains(&current) || (current != 0 && !keys.contains_key(&current)) {
            return Err(KeyError::Damaged(format!(
                "the current generation {current} is not live"
            )));
        }
        let mut loaded = self.loaded.write().expect("keyring lock");
        // A host never goes back to an older generation than one it sealed with.
        if current < loaded.current {
            return Ok(());
        }
        if current != loaded.current {
            self.sealed.store(0, Ordering::Relaxed);
        }
        *loaded = Loaded { current, keys, retired };
        Ok(())
    }

    /// `record` with one more generation, which becomes current: a fresh
    /// random key wrapped by the master key. Store it, then [`Keyring::load`] it.
    pub fn with_new_generation(&self, record: &KeyringRecord, now_ms: u64) -> Result<KeyringRecord, KeyError> {
        let next = record.generations.iter().map(|g| g.generation).max().unwrap_or(0) + 1;
        let rng = SystemRandom::new();
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rng.fill(&mut key[..]).map_err(|_| KeyError::Random)?;
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce).map_err(|_| KeyError::Random)?;
        let mut sealed = Zeroizing::new(key.to_vec());
        self.root
            .keyring_wrap_key()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(wrap_aad(next)),
                &mut *sealed,
            )
            .map_err(|_| KeyError::Random)?;
        let mut wrapped = nonce.to_vec();
        wrapped.extend_from_slice(&sealed);
        let mut out = record.clone();
        out.generations.push(GenerationRecord {
            generation: next,
            created_ms: now_ms,
            retired_ms: None,
            wrapped: Some(hex::encode(wrapped)),
        });
        out.current = next;
        Ok(out)
    }

    /// How many values this host sealed under the current generation
    /// since it started or the generation changed.
    pub fn sealed_under_current(&self) -> u64 {
        self.sealed.load(Ordering::Relaxed)
    }

    /// The current generation and `mount`'s key-encryption key under it,
    /// for one new seal.
    pub(crate) fn current_kek(&self, mount: &str) -> Result<(u32, LessSafeKey), SealError> {
        let loaded = self.loaded.read().expect("keyring lock");
        self.sealed.fetch_add(1, Ordering::Relaxed);
        let current = loaded.current;
        Ok((current, self.kek_in(&loaded, current, mount)?))
    }

    /// `mount`'s key-encryption key under `generation`.
    pub(crate) fn kek(&self, generation: u32, mount: &str) -> Result<LessSafeKey, SealError> {
        let loaded = self.loaded.read().expect("keyring lock");
        self.kek_in(&loaded, generation, mount)
    }

    fn kek_in(&self, loaded: &Loaded, generation: u32, mount: &str) -> Result<LessSafeKey, SealError> {
        if loaded.retired.contains(&generation) {
            return Err(SealError::Retired(generation));
        }
        if generation == 0 {
            return Ok(self.root.root_kek(mount));
        }
        match loaded.keys.get(&generation) {
            Some(key) => Ok(kek_from(&key[..], b"tresor seal v2", mount)),
            None => Err(SealError::UnknownGeneration(generation)),
        }
    }
}

fn unwrap_key(wrap_key: &LessSafeKey, generation: u32, wrapped: &str) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
    let damaged = || KeyError::Damaged(format!("generation {generation}'s wrapped key is not valid hex"));
    let mut bytes = Zeroizing::new(hex::decode(wrapped).map_err(|_| damaged())?);
    if bytes.len() != NONCE_LEN + KEY_LEN + 16 {
        return Err(damaged());
    }
    let nonce = Nonce::try_assume_unique_for_key(&bytes[..NONCE_LEN]).map_err(|_| damaged())?;
    let mut body = Zeroizing::new(bytes[NONCE_LEN..].to_vec());
    let plain = wrap_key
        .open_in_place(nonce, Aad::from(wrap_aad(generation)), &mut body)
        .map_err(|_| KeyError::Unwrap(generation))?;
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    key.copy_from_slice(plain);
    zeroize::Zeroize::zeroize(&mut *bytes);
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_load_on_another_host_with_the_same_master_key_only() {
        let root = Arc::new(MasterKey::from_hex(&"11".repeat(32)).unwrap());
        let a = Keyring::new(root.clone());
        let record = a.with_new_generation(&KeyringRecord::initial(), 5).unwrap();
        let record = a.with_new_generation(&record, 6).unwrap();
        assert_eq!(record.current, 2);
        a.load(&record).unwrap();
        let blob = a.sealer_for("m").seal(b"v", b"c").unwrap();

        let b = Keyring::new(root);
        b.load(&record).unwrap();
        assert_eq!(&b.sealer_for("m").unseal(&blob, b"c").unwrap()[..], b"v");

        let stranger = Keyring::new(Arc::new(MasterKey::from_hex(&"22".repeat(32)).unwrap()));
        assert!(matches!(stranger.load(&record), Err(KeyError::Unwrap(1))));
        assert_eq!(stranger.current(), 0, "a failed load changes nothing");

        // The stored form holds no key in the clear.
        let json = serde_json::to_string(&record).unwrap();
        assert!(!json.contains("\"key\""));
        let mut retired = record.clone();
        retired.retire(1, 7);
        retired.retire(2, 7); // the current one stays
        assert_eq!(retired.live().map(|g| g.generation).collect::<Vec<_>>(), vec![0, 2]);
        assert!(retired.generations[1].wrapped.is_none());
    }
}
