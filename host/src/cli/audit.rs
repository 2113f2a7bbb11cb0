//! `tresor audit verify`: check an audit log's hash chain and, with the
//! master key, its signed checkpoint, so that entries removed from the end
//! (or an emptied or replaced log) are reported too.
//!
//! Exit codes: 0 intact and checked against a genuine checkpoint; 1 broken,
//! truncated, replaced or a forged checkpoint; 2 the chain is intact but
//! nothing proves the end is the end (no checkpoint, or no key to check it).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::audit::{self, CheckpointError, HeadCheck};
use crate::keys::MasterKey;

/// Print the access statistics of the secrets under `prefix` in `log`.
pub(super) fn stats(log: &Path, prefix: &str, json: bool) -> ExitCode {
    let all = match audit::stats::stats(log, prefix) {
        Ok(all) => all,
        Err(e) => return super::fail(e),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&all).expect("statistics serialize"));
        return ExitCode::SUCCESS;
    }
    let when = |v: &Option<(String, String)>| {
        v.as_ref()
            .map_or_else(|| "never".to_string(), |(time, who)| format!("{time} by {who}"))
    };
    println!(
        "{:<40} {:>7} {:>7} {:>7}  last read / last write / last rotation",
        "SECRET", "READS", "WRITES", "DENIED"
    );
    for s in &all {
        println!(
            "{:<40} {:>7} {:>7} {:>7}  {} / {} / {}",
            s.path,
            s.reads,
            s.writes,
            s.denied,
            when(&s.last_read),
            when(&s.last_write),
            when(&s.last_rotation)
        );
    }
    if all.is_empty() {
        println!("(no secret under `{prefix}` in {})", log.display());
    }
    ExitCode::SUCCESS
}

/// Verify the log at `log`; the master key comes from `key_file`, else
/// `$TRESOR_MASTER_KEY`, else `master.key` beside the log (the default
/// layout of a state directory).
pub(super) fn verify(log: &Path, key_file: Option<PathBuf>) -> ExitCode {
    let key_path = key_file.unwrap_or_else(|| log.with_file_name("master.key"));
    let key = match MasterKey::load(&key_path) {
        Ok(key) => key,
        Err(e) => return super::fail(e),
    };
    let checkpoint = key
        .as_ref()
        .map(|k| audit::read_checkpoint(log, &k.audit_checkpoint_key()));
    let head = match &checkpoint {
        Some(Ok(c)) => Some((c.seq, c.hash.as_str())),
        _ => None,
    };
    let report = match audit::verify_with(log, head) {
        Ok(r) => r,
        Err(e) => return super::fail(e),
    };
    if let Some(b) = &report.first_broken {
        println!(
            "BROKEN at line {}{}: {} ({} intact entries in the file)",
            b.line,
            b.seq.map(|s| format!(" (seq {s})")).unwrap_or_default(),
            b.reason,
            report.entries
        );
        return ExitCode::from(1);
    }
    let n = report.entries;
    match (checkpoint, report.head) {
        (Some(Ok(c)), Some(HeadCheck::Reached)) => {
            println!(
                "ok: {n} entries, chain intact; the signed checkpoint of {} (entry {}) matches",
                c.time, c.seq
            );
            ExitCode::SUCCESS
        }
        (Some(Ok(c)), Some(HeadCheck::Truncated)) => {
            println!(
                "TRUNCATED: the log ends at entry {}, but its signed checkpoint of {} names entry {}: \
                 entries were removed from the end, or the log was emptied or replaced",
                report.last_seq, c.time, c.seq
            );
            ExitCode::from(1)
        }
        (Some(Ok(c)), _) => {
            println!(
                "REPLACED: entry {} of the log is not the one its signed checkpoint of {} names: \
                 the log was replaced or rewritten",
                c.seq, c.time
            );
            ExitCode::from(1)
        }
        (Some(Err(CheckpointError::Missing { path })), _) => {
            println!(
                "UNVERIFIED: {n} entries, chain intact, but there is no checkpoint at {}: entries \
                 removed from the end would not show",
                path.display()
            );
            ExitCode::from(2)
        }
        (Some(Err(e)), _) => {
            println!("FORGED: {e}");
            ExitCode::from(1)
        }
        (None, _) => {
            println!(
                "UNVERIFIED: {n} entries, chain intact, but without the master key ({} or \
                 ${}) the checkpoint cannot be checked, so entries removed from the end would not \
                 show; pass --key-file",
                key_path.display(),
                crate::keys::MASTER_KEY_ENV
            );
            ExitCode::from(2)
        }
    }
}
