//! Serializing writers of the same secret inside one host process.
//!
//! Providers cope with concurrent writers on their own (the `file` provider
//! publishes versions with exclusive links and retries a bounded number of
//! times), but a burst of writers on one secret would make them spin and,
//! past the bound, fail. Taking a per-path lock first turns such a burst into
//! an orderly queue. Locks are striped: a fixed set of mutexes indexed by the
//! path's hash, so memory stays bounded whatever the number of paths.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use tokio::sync::{Mutex, MutexGuard};

/// A fixed set of async mutexes, one chosen per key.
pub struct PathLocks {
    stripes: Vec<Mutex<()>>,
}

impl PathLocks {
    /// `stripes` mutexes (at least one).
    pub fn new(stripes: usize) -> PathLocks {
        PathLocks {
            stripes: (0..stripes.max(1)).map(|_| Mutex::new(())).collect(),
        }
    }

    /// Wait for the lock of `key`; it is released when the guard drops.
    pub async fn lock(&self, key: &str) -> MutexGuard<'_, ()> {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        let i = (h.finish() % self.stripes.len() as u64) as usize;
        self.stripes[i].lock().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn same_key_waits_other_keys_do_not() {
        let locks = PathLocks::new(1024);
        let held = locks.lock("secret/a").await;
        let same = tokio::time::timeout(std::time::Duration::from_millis(50), locks.lock("secret/a")).await;
        assert!(same.is_err(), "a second writer of the same path got in");
        // Some other key lands on another stripe.
        let free = (0..100).map(|i| format!("secret/b{i}")).any(|k| {
            locks.stripes.len() > 1 && {
                let fut = locks.lock(&k);
                futures_ready(fut)
            }
        });
        assert!(free);
        drop(held);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), locks.lock("secret/a"))
                .await
                .is_ok()
        );
    }

    fn futures_ready<F: std::future::Future>(fut: F) -> bool {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut fut = std::pin::pin!(fut);
        fut.as_mut().poll(&mut cx).is_ready()
    }
}
