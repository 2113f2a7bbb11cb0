//! The signed checkpoint of an audit log's head, kept beside the log
//! (`<log>.head`), so that entries cut off the end — or a log emptied or
//! replaced — are detected.
//!
//! The hash chain proves that no entry was changed, removed or reordered
//! *between* two entries; it cannot prove that the last entry is the last one
//! written. The checkpoint can: it names the `seq` and `hash` of the head at
//! the time it was written, and is authenticated with HMAC-SHA256 under a key
//! derived from the master key, so that only a holder of the master key can
//! write one that verifies. The host writes it about once a second while
//! entries are appended, and when the log is closed, always after the log
//! itself is on disk, so a checkpoint never names an entry a crash could
//! lose.
//!
//! What it cannot prove: entries written after the last checkpoint (the last
//! second before a crash), and a rollback of both files to an earlier pair
//! that was once genuine. Export spans to an OTLP collector for a copy of the
//! record outside the machine.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ring::hmac;
use serde::{Deserialize, Serialize};

/// The key checkpoints are signed with (derived from the master key, see
/// [`crate::keys::MasterKey::audit_checkpoint_key`]).
pub struct CheckpointKey(pub(crate) hmac::Key);

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CheckpointKey(..)")
    }
}

/// A verified checkpoint: the head of the log when it was written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// `seq` of the last entry (0: the log was empty).
    pub seq: u64,
    /// `hash` of that entry ([`super::GENESIS_HASH`] for an empty log).
    pub hash: String,
    /// When the checkpoint was written (RFC 3339).
    pub time: String,
}

#[derive(Serialize, Deserialize)]
struct Signed {
    #[serde(flatten)]
    checkpoint: Checkpoint,
    mac: String,
}

/// Where the checkpoint of the log at `log` is kept.
pub fn path_for(log: &Path) -> PathBuf {
    let mut name = log.file_name().unwrap_or_default().to_os_string();
    name.push(".head");
    log.with_file_name(name)
}

fn mac_input(c: &Checkpoint) -> String {
    format!("tresor audit checkpoint v1\n{}\n{}\n{}", c.seq, c.hash, c.time)
}

/// Write the checkpoint of `log` through a synced temporary file renamed
/// over the old one.
pub(crate) fn write(log: &Path, key: &CheckpointKey, checkpoint: &Checkpoint) -> io::Result<()> {
    let mac = hmac::sign(&key.0, mac_input(checkpoint).as_bytes());
    let signed = Signed {
        checkpoint: checkpoint.clone(),
        mac: hex::encode(mac.as_ref()),
    };
    let path = path_for(log);
    let tmp = path.with_extension("head.tmp");
    let mut text = serde_json::to_vec(&signed).map_err(io::Error::other)?;
    text.push(b'\n');
    let mut file = crate::files::owner_only()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    file.write_all(&text)?;
    file.sync_data()?;
    std::fs::rename(&tmp, &path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::files::sync_dir(dir)?;
    }
    Ok(())
}

/// How often the host brings the checkpoint up to the head.
pub const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Keep `log`'s checkpoint up to date on the current tokio runtime, every
/// [`CHECKPOINT_INTERVAL`], until the log is dropped (the task holds it
/// only while it writes; dropping the log writes the last checkpoint).
pub(crate) fn keep(log: &std::sync::Arc<super::AuditLog>) -> tokio::task::JoinHandle<()> {
    let log = std::sync::Arc::downgrade(log);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(CHECKPOINT_INTERVAL).await;
            let Some(log) = log.upgrade() else {
                return;
            };
            // fsync and a rename: off the async workers.
            let result = tokio::task::spawn_blocking(move || log.checkpoint()).await;
            if let Ok(Err(e)) = result {
                tracing::warn!(error = %e, "audit log checkpoint failed; it is retried in a second");
            }
        }
    })
}

/// Why a checkpoint could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// There is no checkpoint file.
    #[error("no checkpoint at {}", path.display())]
    Missing {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The file exists but cannot be read.
    #[error("cannot read the checkpoint {}: {source}", path.display())]
    Read {
        /// The checkpoint's path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The file is not a checkpoint, or its signature does not verify under
    /// this key (forged, edited, or from a host with another master key).
    #[error("the checkpoint {} is not genuine: {reason}", path.display())]
    Forged {
        /// The checkpoint's path.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Read and authenticate the checkpoint of `log`.
pub fn read(log: &Path, key: &CheckpointKey) -> Result<Checkpoint, CheckpointError> {
    let path = path_for(log);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(CheckpointError::Missing { path }),
        Err(source) => return Err(CheckpointError::Read { path, source }),
    };
    let forged = |reason| CheckpointError::Forged {
        path: path.clone(),
        reason,
    };
    let signed: Signed = serde_json::from_slice(&text).map_err(|_| forged("not a checkpoint file"))?;
    let mac = hex::decode(&signed.mac).map_err(|_| forged("its signature is not hex"))?;
    hmac::verify(&key.0, mac_input(&signed.checkpoint).as_bytes(), &mac)
        .map_err(|_| forged("its signature does not verify under this master key"))?;
    Ok(signed.checkpoint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::MasterKey;

    fn key() -> CheckpointKey {
        MasterKey::from_hex(&"11".repeat(32)).unwrap().audit_checkpoint_key()
    }

    #[test]
    fn a_checkpoint_reads_back_only_under_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        let c = Checkpoint {
            seq: 7,
            hash: "ab".repeat(32),
            time: "2026-12-03T10:00:00.000Z".into(),
        };
        write(&log, &key(), &c).unwrap();
        assert_eq!(path_for(&log), dir.path().join("audit.log.head"));
        assert_eq!(read(&log, &key()).unwrap(), c);

        let other = MasterKey::from_hex(&"22".repeat(32)).unwrap().audit_checkpoint_key();
        assert!(matches!(read(&log, &other), Err(CheckpointError::Forged { .. })));

        // An edited seq no longer verifies.
        let text = std::fs::read_to_string(path_for(&log)).unwrap();
        std::fs::write(path_for(&log), text.replace("\"seq\":7", "\"seq\":3")).unwrap();
        assert!(matches!(read(&log, &key()), Err(CheckpointError::Forged { .. })));

        std::fs::remove_file(path_for(&log)).unwrap();
        assert!(matches!(read(&log, &key()), Err(CheckpointError::Missing { .. })));
    }
}
