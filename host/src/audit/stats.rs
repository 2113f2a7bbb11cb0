//! Access statistics from the audit log: per secret, how often it was read
//! and when last, who wrote it last, when it was last rotated, and how many
//! accesses were denied, so that unused and hot secrets can be found
//! (`tresor audit stats [prefix]`).

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{AuditAction, AuditEvent, Phase};
use crate::policy::Action;

/// What the audit log says about one secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SecretStats {
    /// `mount/path`.
    pub path: String,
    /// Successful reads.
    pub reads: u64,
    /// When it was last read (the entry's RFC 3339 time), and by whom.
    pub last_read: Option<(String, String)>,
    /// Successful writes (rotations included).
    pub writes: u64,
    /// When it was last written, and by whom.
    pub last_write: Option<(String, String)>,
    /// When it was last rotated, and by whom (`tresor:rotation-scheduler`
    /// for scheduled rotations).
    pub last_rotation: Option<(String, String)>,
    /// Accesses Cedar denied.
    pub denied: u64,
}

/// One line of the log, as far as statistics need it.
#[derive(Deserialize)]
struct Line {
    time: String,
    event: AuditEvent,
}

/// Why statistics could not be made.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// The log could not be read.
    #[error("cannot read the audit log {path}: {source}; check the path and that this user may read it")]
    Read {
        /// The log.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
}

/// The statistics of every secret under `prefix` (`mount/` or
/// `mount/some/`; `""` for all) that the log at `log` mentions, by path.
/// Lines that do not parse (a torn last line) are skipped; `tresor audit
/// verify` is the check of the log's integrity.
pub fn stats(log: &Path, prefix: &str) -> Result<Vec<SecretStats>, StatsError> {
    let file = std::fs::File::open(log).map_err(|source| StatsError::Read {
        path: log.display().to_string(),
        source,
    })?;
    let mut by_path: BTreeMap<String, SecretStats> = BTreeMap::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line.map_err(|source| StatsError::Read {
            path: log.display().to_string(),
            source,
        })?;
        let Ok(Line { time, event }) = serde_json::from_str::<Line>(&line) else {
            continue;
        };
        let AuditAction::Policy(action) = event.action else {
            continue;
        };
        if event.path.is_empty() || event.plugin == "builtin" {
            continue;
        }
        let path = format!("{}/{}", event.mount, event.path);
        if !path.starts_with(prefix) {
            continue;
        }
        let entry = by_path.entry(path.clone()).or_insert_with(|| SecretStats {
            path,
            ..SecretStats::default()
        });
        let who = || Some((time.clone(), event.principal.clone()));
        match event.phase {
            Phase::Denied => entry.denied += 1,
            Phase::Response if event.outcome.as_deref() == Some("ok") => match action {
                Action::Read => {
                    entry.reads += 1;
                    entry.last_read = who();
                }
                Action::Write => {
                    entry.writes += 1;
                    entry.last_write = who();
                }
                Action::Rotate => {
                    entry.writes += 1;
                    entry.last_write = who();
                    entry.last_rotation = who();
                }
                _ => {}
            },
            _ => {}
        }
    }
    Ok(by_path.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditLog, FrontDoor, Verdict};

    fn event(phase: Phase, action: Action, principal: &str, path: &str, outcome: Option<&str>) -> AuditEvent {
        AuditEvent {
            request_id: "r".into(),
            phase,
            principal: principal.into(),
            action: action.into(),
            mount: "secret".into(),
            path: path.into(),
            plugin: "file".into(),
            decision: if phase == Phase::Denied {
                Verdict::Deny
            } else {
                Verdict::Allow
            },
            policies: Vec::new(),
            outcome: outcome.map(str::to_string),
            latency_us: None,
            source: "local".into(),
            front_door: FrontDoor::Embed,
            lease_id: None,
        }
    }

    #[test]
    fn counts_reads_writes_rotations_and_denials_per_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(&path).unwrap();
        let ok = Some("ok");
        for e in [
            event(Phase::Request, Action::Write, "deploy", "apps/db", None),
            event(Phase::Response, Action::Write, "deploy", "apps/db", ok),
            event(Phase::Response, Action::Read, "billing", "apps/db", ok),
            event(Phase::Response, Action::Read, "web", "apps/db", ok),
            event(Phase::Response, Action::Read, "web", "apps/db", Some("not-found")),
            event(Phase::Denied, Action::Read, "intruder", "apps/db", Some("denied")),
            event(
                Phase::Response,
                Action::Rotate,
                "tresor:rotation-scheduler",
                "apps/db",
                ok,
            ),
            event(Phase::Response, Action::Write, "ops", "ops/key", ok),
        ] {
            log.append(&e).unwrap();
        }
        drop(log);
        let all = stats(&path, "").unwrap();
        assert_eq!(
            all.iter().map(|s| s.path.as_str()).collect::<Vec<_>>(),
            ["secret/apps/db", "secret/ops/key"]
        );
        let db = &all[0];
        assert_eq!((db.reads, db.writes, db.denied), (2, 2, 1));
        assert_eq!(db.last_read.as_ref().unwrap().1, "web");
        assert_eq!(db.last_write.as_ref().unwrap().1, "tresor:rotation-scheduler");
        assert_eq!(db.last_rotation.as_ref().unwrap().1, "tresor:rotation-scheduler");
        assert_eq!(all[1].reads, 0, "an unused secret shows no reads");
        assert_eq!(stats(&path, "secret/ops/").unwrap().len(), 1);
        let missing = stats(&dir.path().join("none.log"), "").unwrap_err().to_string();
        assert!(missing.contains("none.log"), "{missing}");
    }
}
