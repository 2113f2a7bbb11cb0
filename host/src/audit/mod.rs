//! Auditing of secret accesses.
//!
//! Every access, allowed or denied, produces
//! - one `tracing` span, [`AccessSpan`], exported over OTLP when the standard
//!   `OTEL_EXPORTER_OTLP_*` variables are set ([`init_telemetry`]), and
//! - one or more entries in the local [`AuditLog`]: append-only JSON lines,
//!   each chained to the previous one by a SHA-256 hash ([`verify`] checks
//!   the chain). If the log cannot be written the access must be refused.
//!
//! Neither ever carries a secret value: [`AuditEvent`] and the span hold
//! names, decisions and outcomes only.

mod checkpoint;
mod fields;
mod log;
mod span;
pub mod stats;
mod telemetry;

use std::io;
use std::path::PathBuf;

pub(crate) use checkpoint::keep as keep_checkpoints;
pub use checkpoint::{read as read_checkpoint, Checkpoint, CheckpointError, CheckpointKey, CHECKPOINT_INTERVAL};
pub use fields::{AuditAction, FrontDoor, Verdict};
pub(crate) use log::format_rfc3339_millis;
pub use log::{verify, verify_with, AuditEvent, AuditLog, BrokenEntry, HeadCheck, Phase, VerifyReport, GENESIS_HASH};
pub use span::{AccessSpan, ACCESS_SPAN_NAME};
pub use telemetry::{init_telemetry, otel_layer, otlp_tracer_provider, TelemetryGuard};

/// What can go wrong with the audit log or telemetry. Messages name the file
/// and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The log could not be opened or created.
    #[error(
        "cannot open the audit log {}: {source}; check that the audit log directory exists (or \
         can be created) and is writable by Tresor; accesses are refused until it is",
        path.display()
    )]
    Open {
        /// The log's path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Another `AuditLog` (in this or another process) holds the file.
    #[error(
        "the audit log {} is in use by another Tresor process; stop that process or give this \
         one a different audit log path",
        path.display()
    )]
    Locked {
        /// The log's path.
        path: PathBuf,
    },
    /// The last entry of an existing log is not a valid entry, so the chain
    /// cannot be resumed.
    #[error(
        "the audit log {} is damaged at byte offset {offset}: {reason}; check it with \
         `tresor audit verify {}`, then move it aside (keep it as evidence) so that a new log can \
         be started; accesses are refused until then",
        path.display(),
        path.display()
    )]
    Damaged {
        /// The log's path.
        path: PathBuf,
        /// Byte offset of the damaged line.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// An entry could not be written: the access must be refused.
    #[error(
        "cannot write to the audit log {}: {source}; check that the audit log directory is \
         writable and its disk is not full; accesses are refused until it is",
        path.display()
    )]
    Write {
        /// The log's path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// `fsync` failed.
    #[error(
        "cannot flush the audit log {} to disk: {source}; check the disk holding it; recent \
         entries may be lost if the machine crashes",
        path.display()
    )]
    Sync {
        /// The log's path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The log could not be read (verification).
    #[error("cannot read the audit log {}: {source}; check that it exists and is readable", path.display())]
    Read {
        /// The log's path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The log ends before the entry its signed checkpoint names, or that
    /// entry is not the one the checkpoint saw: entries were removed from
    /// the end, or the log was emptied or replaced.
    #[error(
        "the audit log {} {what}: entries were removed or the log was replaced; keep both files \
         as evidence, check them with `tresor audit verify {}`, then move them aside so that a \
         new log can be started; accesses are refused until then",
        path.display(),
        path.display()
    )]
    Truncated {
        /// The log's path.
        path: PathBuf,
        /// What does not match, e.g. "ends at entry 3, but its checkpoint names entry 15".
        what: String,
    },
    /// The checkpoint is not genuine or cannot be written.
    #[error(
        "audit log checkpoint: {reason}; a checkpoint that does not verify was edited, or \
         written under another master key: keep it as evidence and move the log and its \
         `.head` file aside to start a new log"
    )]
    Checkpoint {
        /// What went wrong.
        reason: String,
    },
    /// Logging or OTLP export could not be set up.
    #[error("telemetry: {0}")]
    Telemetry(String),
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::Write as _;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    use super::log::{format_rfc3339_millis, GENESIS_HASH};
    use super::*;
    use crate::policy::Action;

    /// A value that must never show up in the log or in a span.
    const SECRET: &str = "s3cr3t-VALUE-do-not-log-7f3a";

    fn event(n: u64, phase: Phase) -> AuditEvent {
        AuditEvent {
            request_id: format!("req-{n}"),
            phase,
            principal: "alice".into(),
            action: Action::Read.into(),
            mount: "kv".into(),
            path: format!("db/password-{n}"),
            plugin: "kv-file".into(),
            decision: Verdict::Allow,
            policies: vec!["p-read".into(), "p-team".into()],
            outcome: (phase == Phase::Response).then(|| "ok".into()),
            latency_us: (phase != Phase::Request).then_some(120 + n),
            source: "127.0.0.1:5000".into(),
            front_door: FrontDoor::Http,
            lease_id: None,
        }
    }

    fn log_path(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("sub/dir/audit.log")
    }

    fn write_entries(path: &Path, n: u64) {
        let log = AuditLog::open(path).unwrap();
        for i in 1..=n {
            log.append(&event(i, Phase::Response)).unwrap();
        }
    }

    fn lines(path: &Path) -> Vec<String> {
        fs::read_to_string(path).unwrap().lines().map(str::to_string).collect()
    }

    fn rewrite(path: &Path, lines: &[String]) {
        let mut s = lines.join("\n");
        s.push('\n');
        fs::write(path, s).unwrap();
    }

    fn json(line: &str) -> serde_json::Value {
        serde_json::from_str(line).unwrap()
    }

    #[test]
    fn append_verify_reopen_continue() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_path(&dir);
        write_entries(&path, 5);

        #[cfg(unix)]
        {
            let mode = fs::metadata(&path).unwrap().permissions();
            assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
        }

        let report = verify(&path).unwrap();
        assert_eq!(
            report,
            VerifyReport {
                entries: 5,
                first_broken: None,
                last_seq: 5,
                head: None,
            }
        );

        let ls = lines(&path);
        assert_eq!(ls.len(), 5);
        let first = json(&ls[0]);
        assert_eq!(first["seq"], 1);
        assert_eq!(first["prev"], GENESIS_HASH);
        assert_eq!(first["event"]["principal"], "alice");
        assert_eq!(first["event"]["phase"], "response");
        let time = first["time"].as_str().unwrap();
        assert!(
            time.len() == 24 && time.ends_with('Z') && time.as_bytes()[19] == b'.',
            "{time}"
        );
        for w in ls.windows(2) {
            assert_eq!(json(&w[1])["prev"], json(&w[0])["hash"]);
        }

        let log = AuditLog::open(&path).unwrap();
        assert_eq!(log.head(), (5, json(&ls[4])["hash"].as_str().unwrap().to_string()));
        log.append(&event(6, Phase::Request)).unwrap();
        log.append(&event(7, Phase::Denied)).unwrap();
        log.sync().unwrap();
        assert_eq!(log.path(), path);
        drop(log);

        let ls = lines(&path);
        assert_eq!(ls.len(), 7);
        assert_eq!(json(&ls[5])["seq"], 6);
        assert_eq!(json(&ls[6])["seq"], 7);
        assert_eq!(json(&ls[6])["event"]["outcome"], serde_json::Value::Null);
        assert_eq!(
            verify(&path).unwrap(),
            VerifyReport {
                entries: 7,
                first_broken: None,
                last_seq: 7,
                head: None,
            }
        );

        let text = fs::read_to_string(&path).unwrap();
        assert!(!text.contains(SECRET));
    }

    #[test]
    fn tampered_entry_is_a_hash_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_path(&dir);
        write_entries(&path, 5);
        let mut ls = lines(&path);
        // Change one byte of entry 3's event: alice -> alicf.
        let pos = ls[2].find("\"alice\"").unwrap() + 5;
        ls[2].replace_range(pos..pos + 1, "f");
        rewrite(&path, &ls);

        let report = verify(&path).unwrap();
        let broken = report.first_broken.unwrap();
        assert_eq!((broken.line, broken.seq), (3, Some(3)));
        assert!(broken.reason.starts_with("hash mismatch"), "{}", broken.reason);
        // Entries 4 and 5 still link to entry 3's stored hash.
        assert_eq!(report.entries, 4);

        // The damaged entry is not the last one, so the log can still be
        // appended to; a damaged *last* entry refuses to open.
        AuditLog::open(&path)
            .unwrap()
            .append(&event(6, Phase::Request))
            .unwrap();
        let mut ls = lines(&path);
        let last = ls.len() - 1;
        let pos = ls[last].find("\"alice\"").unwrap() + 5;
        ls[last].replace_range(pos..pos + 1, "f");
        rewrite(&path, &ls);
        let err = AuditLog::open(&path).unwrap_err();
        assert!(matches!(err, AuditError::Damaged { .. }), "{err}");
        assert!(err.to_string().contains("hash mismatch"), "{err}");
    }

    #[test]
    fn deleted_entry_breaks_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_path(&dir);
        write_entries(&path, 5);
        let mut ls = lines(&path);
        ls.remove(2);
        rewrite(&path, &ls);

        let report = verify(&path).unwrap();
        let broken = report.first_broken.unwrap();
        assert_eq!((broken.line, broken.seq), (3, Some(4)));
        assert!(broken.reason.contains("prev does not match"), "{}", broken.reason);
        assert!(broken.reason.contains("seq jumps from 2 to 4"), "{}", broken.reason);
        assert_eq!(report.entries, 3);
    }

    #[test]
    fn reordered_entries_break_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_path(&dir);
        write_entries(&path, 5);
        let mut ls = lines(&path);
        ls.swap(1, 2);
        rewrite(&path, &ls);
        let broken = verify(&path).unwrap().first_broken.unwrap();
        assert_eq!(broken.line, 2);
        assert!(broken.reason.contains("prev does not match"));
    }

    #[test]
    fn torn_tail_is_reported_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_path(&dir);
        write_entries(&path, 5);
        // Cut the file in the middle of line 5: line 5 is now torn.
        let len = fs::metadata(&path).unwrap().len();
        let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 40).unwrap();
        drop(f);

        let report = verify(&path).unwrap();
        let broken = report.first_broken.clone().unwrap();
        assert_eq!((broken.line, broken.seq), (5, None));
        assert!(broken.reason.starts_with("torn last line"), "{}", broken.reason);
        assert_eq!(report.entries, 4);

        // open() keeps the fragment, terminates it and continues from entry 4.
        let log = AuditLog::open(&path).unwrap();
        assert_eq!(log.head().0, 4);
        log.append(&event(5, Phase::Request)).unwrap();
        log.append(&event(6, Phase::Response)).unwrap();
        drop(log);

        let ls = lines(&path);
        assert_eq!(ls.len(), 7);
        assert_eq!(json(&ls[5])["seq"], 5);
        assert_eq!(json(&ls[5])["prev"], json(&ls[3])["hash"]);
        let report = verify(&path).unwrap();
        assert_eq!(report.entries, 6);
        let broken = report.first_broken.unwrap();
        assert_eq!(broken.line, 5, "the report says where the torn line is");
        assert!(broken.reason.starts_with("not valid JSON"), "{}", broken.reason);

        // Reopening again steps over the (now terminated) fragment's successors.
        let log = AuditLog::open(&path).unwrap();
        assert_eq!(log.head().0, 6);
    }

    #[test]
    fn torn_line_then_crash_before_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_path(&dir);
        write_entries(&path, 3);
        let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"seq\":4,\"ti").unwrap();
        drop(f);
        // First open terminates the fragment; nothing is appended.
        drop(AuditLog::open(&path).unwrap());
        // Second open finds a non-JSON last line and resumes from entry 3.
        let log = AuditLog::open(&path).unwrap();
        assert_eq!(log.head().0, 3);
        log.append(&event(4, Phase::Request)).unwrap();
        drop(log);
        let report = verify(&path).unwrap();
        assert_eq!(report.entries, 4);
        assert_eq!(report.first_broken.unwrap().line, 4);
    }

    #[test]
    fn whole_entry_missing_only_its_newline_is_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_path(&dir);
        write_entries(&path, 3);
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, text.trim_end_matches('\n')).unwrap();
        let log = AuditLog::open(&path).unwrap();
        assert_eq!(log.head().0, 3);
        log.append(&event(4, Phase::Request)).unwrap();
        drop(log);
        assert_eq!(
            verify(&path).unwrap(),
            VerifyReport {
                entries: 4,
                first_broken: None,
                last_seq: 4,
                head: None,
            }
        );
    }

    #[test]
    fn tail_is_found_with_small_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_path(&dir);
        write_entries(&path, 3);
        let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"\n{\"half").unwrap(); // an empty line, then a torn one
        drop(f);
        let file = fs::File::open(&path).unwrap();
        let len = file.metadata().unwrap().len();
        let whole = super::log::tests_support::read_tail(&file, len, 1 << 20);
        for chunk in [1, 2, 7, 64, 300] {
            assert_eq!(
                super::log::tests_support::read_tail(&file, len, chunk),
                whole,
                "chunk {chunk}"
            );
        }
        let ls = lines(&path);
        assert_eq!(whole.0.as_deref(), Some(ls[2].as_bytes()));
        assert_eq!(whole.1, 1, "one empty line skipped");
        assert_eq!(whole.2.as_deref(), Some(&b"{\"half"[..]));
    }

    #[cfg(unix)]
    #[test]
    fn unwritable_log_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        // Root ignores file modes, so make writes fail another way: /dev/full
        // accepts the open and fails every write with ENOSPC.
        let path = dir.path().join("audit.log");
        std::os::unix::fs::symlink("/dev/full", &path).unwrap();
        let log = AuditLog::open(&path).unwrap();
        let err = log.append(&event(1, Phase::Request)).unwrap_err();
        assert!(matches!(err, AuditError::Write { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains(&path.display().to_string()) && msg.contains("refused"),
            "{msg}"
        );
        // Still failing, still refusing.
        assert!(log.append(&event(1, Phase::Request)).is_err());

        // A directory where the log should be cannot be opened.
        let err = AuditLog::open(dir.path()).unwrap_err();
        assert!(matches!(err, AuditError::Open { .. }), "{err}");
    }

    #[test]
    fn second_opener_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_path(&dir);
        let _log = AuditLog::open(&path).unwrap();
        let err = AuditLog::open(&path).unwrap_err();
        assert!(matches!(err, AuditError::Locked { .. }), "{err}");
    }

    #[test]
    fn concurrent_appends_are_serialized() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_path(&dir);
        let log = Arc::new(AuditLog::open(&path).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let log = Arc::clone(&log);
                std::thread::spawn(move || {
                    for i in 0..50 {
                        log.append(&event(t * 100 + i, Phase::Request)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(log);
        assert_eq!(
            verify(&path).unwrap(),
            VerifyReport {
                entries: 200,
                first_broken: None,
                last_seq: 200,
                head: None,
            }
        );
    }

    #[test]
    fn garbage_is_not_valid_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_path(&dir);
        write_entries(&path, 2);
        let mut ls = lines(&path);
        ls.insert(1, "this is not json".into());
        rewrite(&path, &ls);
        let broken = verify(&path).unwrap().first_broken.unwrap();
        assert_eq!((broken.line, broken.seq), (2, None));
        assert!(broken.reason.starts_with("not valid JSON"), "{}", broken.reason);
    }

    #[test]
    fn rfc3339_formatting() {
        let at = |s: u64, ms: u64| format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(s * 1000 + ms));
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 7), "2000-02-29T00:00:00.007Z");
        assert_eq!(at(1_709_251_199, 999), "2024-02-29T23:59:59.999Z");
        assert_eq!(at(4_102_444_800, 120), "2100-01-01T00:00:00.120Z");
    }

    #[test]
    fn audit_log_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<AuditLog>();
        check::<AccessSpan>();
    }

    /// The access span reaches an OTLP/gRPC collector with its attributes, and
    /// no secret value.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn access_span_is_exported_over_otlp() {
        use tracing::Instrument as _;
        use tracing_subscriber::layer::SubscriberExt as _;

        let server = mock_collector::MockServer::builder()
            .protocol(mock_collector::Protocol::Grpc)
            .start()
            .await
            .unwrap();
        let provider = otlp_tracer_provider(&format!("http://{}", server.addr())).unwrap();
        let subscriber = tracing_subscriber::registry().with(otel_layer(&provider).unwrap());

        tracing::subscriber::with_default(subscriber, || {
            let mut record = event(42, Phase::Request);
            record.path = "db/password".into();
            let access = AccessSpan::start(&record);
            access.decision(true, &["p-read".to_string(), "p-team".to_string()]);
            // The plugin call, instrumented with the access span; it handles a
            // secret but only its length is ever recorded.
            let secret = futures_lite_block_on(
                async {
                    tracing::info!(len = SECRET.len(), "plugin answered");
                    SECRET.to_string()
                }
                .instrument(access.span().clone()),
            );
            assert_eq!(secret, SECRET);
            access.outcome("ok", 1234);

            let mut record = event(43, Phase::Denied);
            record.principal = "mallory".into();
            record.path = "db/password".into();
            record.source = "local".into();
            record.front_door = FrontDoor::Cli;
            let denied = AccessSpan::start(&record);
            denied.decision(false, &[]);
            denied.outcome("plugin-timeout", 5);
        });

        let p = provider.clone();
        tokio::task::spawn_blocking(move || p.force_flush())
            .await
            .unwrap()
            .unwrap();
        server.wait_for_spans(2, Duration::from_secs(10)).await.unwrap();

        server
            .with_collector(|c| {
                c.expect_span_with_name("tresor.access")
                    .with_attributes([
                        ("tresor.request_id", "req-42"),
                        ("tresor.principal", "alice"),
                        ("tresor.action", "read"),
                        ("tresor.mount", "kv"),
                        ("tresor.path", "db/password"),
                        ("tresor.decision", "allow"),
                        ("tresor.policies", "p-read,p-team"),
                        ("tresor.outcome", "ok"),
                        ("tresor.front_door", "http"),
                    ])
                    .with_attribute("tresor.latency_us", 1234)
                    .with_resource_attributes([("service.name", "tresor")])
                    .with_event("plugin answered")
                    .assert_count(1);
                c.expect_span_with_name("tresor.access")
                    .with_attributes([
                        ("tresor.principal", "mallory"),
                        ("tresor.decision", "deny"),
                        ("tresor.policies", ""),
                        ("tresor.outcome", "plugin-timeout"),
                    ])
                    .assert_count(1);

                for s in c.spans() {
                    let span = s.span();
                    assert!(!format!("{span:?}").contains(SECRET), "secret in span {span:?}");
                    let status = span.status.as_ref().map(|st| st.code).unwrap_or(0);
                    // 2 = STATUS_CODE_ERROR in OTLP.
                    let is_timeout = format!("{:?}", span.attributes).contains("plugin-timeout");
                    assert_eq!(status == 2, is_timeout, "status of {span:?}");
                }
                assert!(!c.dump().contains(SECRET));
            })
            .await;

        tokio::task::spawn_blocking(move || provider.shutdown())
            .await
            .unwrap()
            .unwrap();
        server.shutdown().await.unwrap();
    }

    /// Poll a future to completion on the current thread (it never waits on I/O).
    fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
        use std::task::{Context, Poll, Waker};
        let mut f = std::pin::pin!(f);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }
}
