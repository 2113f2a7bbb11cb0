//! A mount's optional read cache: size- and time-bounded, invalidated by
//! every write and delete that goes through the host, values zeroized when
//! they leave it. The cache sits *after* policy: a hit is authorized and
//! audited like any other read.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::CacheConfig;
use crate::secret::Secret;

type Key = (String, Option<String>);

/// Cached secrets of one mount.
pub struct ReadCache {
    ttl: Duration,
    max_entries: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Key, (Instant, Secret)>,
    /// Insertion order, for evicting the oldest entry when full.
    order: VecDeque<Key>,
}

impl ReadCache {
    /// A cache with the mount's limits.
    pub fn new(config: CacheConfig) -> ReadCache {
        ReadCache {
            ttl: Duration::from_millis(config.ttl_ms),
            max_entries: config.max_entries,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// A fresh cached copy of `path` at `version` (None = latest), if any.
    pub fn get(&self, path: &str, version: Option<&str>) -> Option<Secret> {
        let mut inner = self.inner.lock().expect("cache lock");
        let key = (path.to_string(), version.map(str::to_string));
        match inner.entries.get(&key) {
            Some((at, secret)) if at.elapsed() < self.ttl && !secret.expired() => Some(secret.clone()),
            Some(_) => {
                // Stale, or its version's delete_version_after time passed:
                // dropping the entry zeroizes its value.
                inner.entries.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Remember a secret read from the plugin.
    pub fn insert(&self, path: &str, version: Option<&str>, secret: Secret) {
        let mut inner = self.inner.lock().expect("cache lock");
        let key = (path.to_string(), version.map(str::to_string));
        if inner.entries.insert(key.clone(), (Instant::now(), secret)).is_none() {
            inner.order.push_back(key);
        }
        while inner.entries.len() > self.max_entries {
            match inner.order.pop_front() {
                Some(old) => {
                    inner.entries.remove(&old);
                }
                None => break,
            }
        }
        // Keep the order queue from growing with keys already removed.
        if inner.order.len() > self.max_entries.saturating_mul(2) {
            let Inner { entries, order } = &mut *inner;
            order.retain(|k| entries.contains_key(k));
        }
    }

    /// Forget every version of `path` (after a write or delete).
    pub fn invalidate(&self, path: &str) {
        let mut inner = self.inner.lock().expect("cache lock");
        inner.entries.retain(|(p, _), _| p != path);
    }

    /// Number of entries held (expired ones included until touched).
    pub fn len(&self) -> usize {
        self.inner.lock().expect("cache lock").entries.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretBytes;

    fn secret(v: &str) -> Secret {
        Secret {
            value: SecretBytes::from(v),
            version: "1".into(),
            created_ms: 0,
            metadata: Default::default(),
            deletion_ms: 0,
            served_by: "secret".into(),
        }
    }

    #[test]
    fn bounded_expiring_and_invalidated() {
        let c = ReadCache::new(CacheConfig {
            ttl_ms: 50,
            max_entries: 2,
        });
        c.insert("a", None, secret("1"));
        c.insert("b", None, secret("2"));
        c.insert("c", None, secret("3"));
        assert!(c.get("a", None).is_none(), "oldest entry evicted");
        assert_eq!(c.len(), 2);
        c.invalidate("b");
        assert!(c.get("b", None).is_none());
        assert!(c.get("c", None).is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(c.get("c", None).is_none(), "expired");
    }

    #[test]
    fn a_version_past_its_deletion_time_is_not_served() {
        let c = ReadCache::new(CacheConfig {
            ttl_ms: 600_000,
            max_entries: 10,
        });
        let now = crate::secret::now_ms();
        let mut soon = secret("soon");
        soon.deletion_ms = now + 50;
        let mut later = secret("later");
        later.deletion_ms = now + 600_000;
        c.insert("soon", None, soon);
        c.insert("later", None, later);
        assert!(c.get("soon", None).is_some());
        std::thread::sleep(Duration::from_millis(80));
        assert!(c.get("soon", None).is_none(), "its delete_version_after time passed");
        assert!(c.get("later", None).is_some());
    }
}
