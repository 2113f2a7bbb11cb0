//! The append-only, hash-chained audit log (JSON lines).
//!
//! Each line is one entry:
//!
//! ```text
//! {"seq":1,"time":"2025-01-01T12:00:00.123Z","prev":"000…000","event":{…},"hash":"…"}
//! ```
//!
//! `hash` is the hex SHA-256 over the 64 ASCII hex characters of `prev`
//! followed by the canonical JSON of the entry without its `hash` field
//! (objects with keys sorted by byte order, no whitespace, strings escaped as
//! `serde_json` escapes them). `prev` is the previous entry's `hash` (64 zeros
//! for the first entry), so removing, reordering or editing an entry breaks
//! the chain at that point. The chain alone cannot show that entries were cut
//! off the *end* of the log: compare [`AuditLog::head`] with a copy kept
//! elsewhere (the access spans exported over OTLP are such a copy) for that.
//!
//! Durability: [`AuditLog::append`] returns once the line is in the file
//! (one `write(2)` of the whole line on an `O_APPEND` descriptor; `File` has
//! no user-space buffer, so that is also the flush). It does not `fsync`
//! each entry: an fsync costs a disk round trip (milliseconds on most
//! storage) and every access would queue behind it, since appends are
//! serialized. A line that `write` accepted is in the kernel's page cache and
//! survives a crash or kill of the Tresor process, which is the failure an
//! attacker can provoke; only a kernel crash or power loss before the next
//! writeback can lose it. [`AuditLog::sync`] (call it periodically and at
//! shutdown) and dropping the log `fsync` the file.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use ring::digest;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::checkpoint::{self, Checkpoint, CheckpointError, CheckpointKey};
use super::{AuditAction, AuditError, FrontDoor, Verdict};

/// The `prev` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How far `open` reads backwards at a time while looking for the last line.
const TAIL_CHUNK: u64 = 64 * 1024;

/// A last line longer than this is treated as damage rather than read whole.
const MAX_LINE: u64 = 16 * 1024 * 1024;

/// Where an audited access stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Written after authorization allowed the access, before the plugin is called.
    Request,
    /// Written after the plugin answered (or failed).
    Response,
    /// Authorization denied the access; the plugin was not called.
    Denied,
}

/// One audited access. Never holds a secret value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Unique per access (the caller supplies it); ties Request to Response.
    pub request_id: String,
    /// Request, Response or Denied.
    pub phase: Phase,
    /// Who asked.
    pub principal: String,
    /// What was asked for: a Cedar action, or `authenticate`.
    pub action: AuditAction,
    /// The mount the access went to.
    pub mount: String,
    /// The secret's path inside the mount ("" for a mount-level operation).
    pub path: String,
    /// The plugin serving the mount.
    pub plugin: String,
    /// Allowed or denied.
    pub decision: Verdict,
    /// Ids of the determining policies.
    pub policies: Vec<String>,
    /// Response only: "ok" or an error kind ("not-found", "plugin-timeout", ...).
    pub outcome: Option<String>,
    /// Response and Denied: how long the access took, in microseconds.
    pub latency_us: Option<u64>,
    /// Client address, or "local".
    pub source: String,
    /// The front door the request came through.
    pub front_door: FrontDoor,
    /// The lease an access issued or is about (dynamic secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<String>,
}

/// Append-only, hash-chained JSON-lines audit log. `Send + Sync`: share it
/// (e.g. in an `Arc`) between all accesses; appends are serialized.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    inner: Mutex<Inner>,
    /// Signs checkpoints of the head, when the log keeps them; the `seq`
    /// of the last checkpoint written.
    checkpoints: Option<(CheckpointKey, Mutex<u64>)>,
}

#[derive(Debug)]
struct Inner {
    file: File,
    /// `seq` of the last entry written (0 when the log is empty).
    seq: u64,
    /// `hash` of the last entry written (GENESIS_HASH when empty).
    hash: String,
    /// A write failed part-way: the file may end in a fragment of a line,
    /// which the next append must terminate before writing its own line.
    check_tail: bool,
}

/// The entry as written (field order chosen for readability; the hash does
/// not depend on it).
#[derive(Serialize)]
struct EntryOut<'a> {
    seq: u64,
    time: &'a str,
    prev: &'a str,
    event: &'a AuditEvent,
    hash: &'a str,
}

impl AuditLog {
    /// Open or create the log at `path` (file created 0600, missing parent
    /// directories created 0700) and resume the chain from its last entry.
    ///
    /// Only the tail of the file is read. A torn last line (a crash
    /// mid-write) is kept as evidence, terminated with a newline, reported
    /// with `tracing::warn!`, and the chain continues from the last complete
    /// entry; [`verify`] reports that line. A damaged last complete entry is
    /// an error: the chain cannot be resumed from it.
    ///
    /// The file is locked (`flock`) for as long as the log is open, so a
    /// second `AuditLog` on the same file, in this or another process, fails
    /// instead of forking the chain.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let open_err = |source| AuditError::Open {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::files::create_owner_only_dir(parent).map_err(open_err)?;
        }
        let file = crate::files::owner_only()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(open_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(AuditError::Locked {
                    path: path.to_path_buf(),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(open_err(e)),
        }
        let meta = file.metadata().map_err(open_err)?;
        if let Some(mode) = crate::files::shared_mode(&meta).filter(|_| meta.is_file()) {
            tracing::warn!(
                path = %path.display(),
                mode,
                "the audit log is readable or writable by other users; consider chmod 600"
            );
        }

        let tail = read_tail(&file, meta.len(), TAIL_CHUNK).map_err(open_err)?;
        for (offset, bytes) in &tail.skipped {
            tracing::warn!(
                path = %path.display(),
                offset,
                bytes = bytes.len(),
                "audit log: the line at byte offset {offset} is not JSON (a torn write that \
                 was recovered earlier, or damage); it is kept, and the chain resumes from \
                 the entry before it"
            );
        }
        let (mut seq, mut hash) = (0, GENESIS_HASH.to_string());
        if let Some((offset, line)) = &tail.last_entry {
            let entry = check_entry(line).map_err(|reason| AuditError::Damaged {
                path: path.to_path_buf(),
                offset: *offset,
                reason,
            })?;
            seq = entry.seq;
            hash = entry.hash;
        }
        let mut inner = Inner {
            file,
            seq,
            hash,
            check_tail: false,
        };

        if let Some((offset, fragment)) = tail.torn {
            // A fragment that is in fact a whole entry chained to the last
            // one (only the newline was lost) is adopted as it is.
            match check_entry(&fragment) {
                Ok(e) if e.seq == inner.seq + 1 && e.prev == inner.hash => {
                    tracing::info!(path = %path.display(), seq = e.seq,
                        "audit log: last entry was missing its newline; added it");
                    inner.seq = e.seq;
                    inner.hash = e.hash;
                }
                _ => tracing::warn!(
                    path = %path.display(),
                    offset,
                    bytes = fragment.len(),
                    after_seq = inner.seq,
                    "audit log: torn last line (an incomplete write, probably a crash mid-append) \
                     at byte offset {offset}, after entry seq {}; it is kept as evidence and the \
                     chain continues from the last complete entry",
                    inner.seq
                ),
            }
            inner.file.write_all(b"\n").map_err(open_err)?;
        }
        Ok(AuditLog {
            path: path.to_path_buf(),
            inner: Mutex::new(inner),
            checkpoints: None,
        })
    }

    /// Open the log as [`open`](Self::open) does, and keep a checkpoint of
    /// its head signed with `key` (see [`checkpoint`](Self::checkpoint)).
    /// A log that ends before the entry its checkpoint names, or whose last
    /// entry is not the one the checkpoint saw, is refused: entries were
    /// removed, or the log was emptied or replaced while the host was down.
    pub fn open_signed(path: &Path, key: CheckpointKey) -> Result<Self, AuditError> {
        let mut log = Self::open(path)?;
        let (seq, hash) = log.head();
        let last = match checkpoint::read(path, &key) {
            Ok(c) => {
                let what = if c.seq > seq {
                    Some(format!(
                        "ends at entry {seq}, but its checkpoint of {} names entry {}",
                        c.time, c.seq
                    ))
                } else if c.seq == seq && c.hash != hash {
                    Some(format!(
                        "has a different entry {seq} than its checkpoint of {} names",
                        c.time
                    ))
                } else {
                    None
                };
                if let Some(what) = what {
                    return Err(AuditError::Truncated {
                        path: path.to_path_buf(),
                        what,
                    });
                }
                c.seq
            }
            // A log started before checkpoints existed, or a new one.
            Err(CheckpointError::Missing { .. }) => u64::MAX,
            Err(e) => return Err(AuditError::Checkpoint { reason: e.to_string() }),
        };
        log.checkpoints = Some((key, Mutex::new(last)));
        // A log that cannot be synced refuses every access anyway; the
        // checkpoint is retried with the next one.
        if let Err(e) = log.checkpoint() {
            tracing::warn!(path = %path.display(), error = %e, "audit log: the first checkpoint failed");
        }
        Ok(log)
    }

    /// Bring the signed checkpoint up to the current head: `fsync` the log,
    /// then write the checkpoint, so it never names an entry that is not
    /// on disk. Does nothing when the head has not moved, or when the log
    /// keeps no checkpoints. The host calls it about once a second and when
    /// the log is closed.
    pub fn checkpoint(&self) -> Result<(), AuditError> {
        let Some((key, last)) = &self.checkpoints else {
            return Ok(());
        };
        let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
        let (seq, hash) = self.head();
        if *last == seq {
            return Ok(());
        }
        self.sync()?;
        let c = Checkpoint {
            seq,
            hash,
            time: format_rfc3339_millis(SystemTime::now()),
        };
        checkpoint::write(&self.path, key, &c).map_err(|e| AuditError::Checkpoint {
            reason: format!(
                "cannot write {}: {e}; check that the audit log directory is writable",
                checkpoint::path_for(&self.path).display()
            ),
        })?;
        *last = seq;
        Ok(())
    }

    /// Append one entry for `event`. Returns once the whole line was written
    /// to the file (see the module docs on why there is no fsync per entry).
    /// On `Err` the access must be refused.
    pub fn append(&self, event: &AuditEvent) -> Result<(), AuditError> {
        let event_value = serde_json::to_value(event).map_err(|e| self.write_err(e.into()))?;
        let mut inner = self.lock();
        // Taken under the lock so that times never go backwards along the chain
        // (unless the clock does).
        let time = format_rfc3339_millis(SystemTime::now());
        let seq = inner.seq + 1;
        let hash = entry_hash(&inner.hash, seq, &time, &event_value);
        let mut line = Vec::with_capacity(512);
        if inner.check_tail {
            // A previous write may have left a fragment: make sure our line
            // starts on a line of its own.
            let len = inner.file.metadata().map_err(|e| self.write_err(e))?.len();
            let mut last = [0u8; 1];
            if len > 0 {
                crate::files::read_exact_at(&inner.file, &mut last, len - 1).map_err(|e| self.write_err(e))?;
                if last[0] != b'\n' {
                    line.push(b'\n');
                }
            }
        }
        let out = EntryOut {
            seq,
            time: &time,
            prev: &inner.hash,
            event,
            hash: &hash,
        };
        serde_json::to_writer(&mut line, &out).map_err(|e| self.write_err(e.into()))?;
        line.push(b'\n');
        match inner.file.write_all(&line).and_then(|()| inner.file.flush()) {
            Ok(()) => {
                inner.seq = seq;
                inner.hash = hash;
                inner.check_tail = false;
                Ok(())
            }
            Err(e) => {
                inner.check_tail = true;
                Err(self.write_err(e))
            }
        }
    }

    /// `fsync` the log: every entry appended so far is on disk when this
    /// returns `Ok`.
    pub fn sync(&self) -> Result<(), AuditError> {
        let inner = self.lock();
        inner.file.sync_data().map_err(|source| AuditError::Sync {
            path: self.path.clone(),
            source,
        })
    }

    /// Where the log is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `seq` and `hash` of the last entry (0 and 64 zeros for an empty log).
    /// Keep them somewhere else to detect entries cut off the end.
    pub fn head(&self) -> (u64, String) {
        let inner = self.lock();
        (inner.seq, inner.hash.clone())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state is only changed after a successful write, so it is
        // consistent even if a holder panicked.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn write_err(&self, source: io::Error) -> AuditError {
        AuditError::Write {
            path: self.path.clone(),
            source,
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        let result = if self.checkpoints.is_some() {
            self.checkpoint()
        } else {
            self.sync()
        };
        if let Err(e) = result {
            tracing::warn!(path = %self.path.display(), error = %e, "audit log: closing it failed");
        }
    }
}

/// Result of [`verify`] and [`verify_with`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries that are intact: valid JSON, own hash correct, `prev` equal to
    /// the previous entry's hash and `seq` one more than its `seq`. An entry
    /// after a broken one still counts if it links to it correctly.
    pub entries: u64,
    /// The first line that is not intact, if any.
    pub first_broken: Option<BrokenEntry>,
    /// `seq` of the last entry read (0: none).
    pub last_seq: u64,
    /// How the log compares with the head it was expected to reach
    /// ([`verify_with`]); `None` from [`verify`].
    pub head: Option<HeadCheck>,
}

/// How a log compares with a checkpoint of its head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadCheck {
    /// The log holds the entry the checkpoint names (and perhaps later ones).
    Reached,
    /// The log ends before the entry the checkpoint names.
    Truncated,
    /// The log's entry at the checkpoint's `seq` is another one.
    Replaced,
}

impl VerifyReport {
    /// True when every line of the log is intact.
    pub fn is_intact(&self) -> bool {
        self.first_broken.is_none()
    }
}

/// A line of the log that failed verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokenEntry {
    /// 1-based line number in the file.
    pub line: u64,
    /// The entry's `seq`, when it could be read.
    pub seq: Option<u64>,
    /// What is wrong, e.g. "hash mismatch: entry was modified".
    pub reason: String,
}

/// Check the chain of the log at `path`, reading it once from start to end.
/// The chain cannot tell whether entries were cut off the end: see
/// [`verify_with`].
pub fn verify(path: &Path) -> Result<VerifyReport, AuditError> {
    verify_with(path, None)
}

/// [`verify`], and compare the log with `head`, a `(seq, hash)` it is known
/// to have reached (a verified checkpoint).
pub fn verify_with(path: &Path, head: Option<(u64, &str)>) -> Result<VerifyReport, AuditError> {
    let read_err = |source| AuditError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut report = VerifyReport {
        entries: 0,
        first_broken: None,
        last_seq: 0,
        head: None,
    };
    let mut hash_at_head = (head == Some((0, GENESIS_HASH))).then(|| GENESIS_HASH.to_string());
    let (mut prev_seq, mut prev_hash) = (0u64, GENESIS_HASH.to_string());
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).map_err(read_err)?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let complete = buf.last() == Some(&b'\n');
        if complete {
            buf.pop();
        }
        let entry = match parse_entry(&buf) {
            Ok(e) => e,
            Err(reason) => {
                let reason = if !complete {
                    format!("torn last line: an incomplete write (the process probably stopped mid-append); {reason}")
                } else if reason.starts_with("not valid JSON") {
                    format!("{reason}: a torn write that was recovered later, or the line was edited")
                } else {
                    reason
                };
                note_broken(&mut report, line_no, None, reason);
                continue;
            }
        };
        let mut problems = Vec::new();
        if !entry.hash_ok {
            problems.push("hash mismatch: entry was modified".to_string());
        }
        if entry.prev != prev_hash {
            problems
                .push("prev does not match the previous entry's hash: an entry was removed or reordered".to_string());
        }
        if entry.seq != prev_seq + 1 {
            problems.push(format!("seq jumps from {prev_seq} to {}", entry.seq));
        }
        if problems.is_empty() {
            report.entries += 1;
        } else {
            note_broken(&mut report, line_no, Some(entry.seq), problems.join("; "));
        }
        if head.is_some_and(|(seq, _)| seq == entry.seq) {
            hash_at_head = Some(entry.hash.clone());
        }
        prev_seq = entry.seq;
        prev_hash = entry.hash;
        report.last_seq = entry.seq;
    }
    report.head = head.map(|(_, want)| match &hash_at_head {
        None => HeadCheck::Truncated,
        Some(h) if h == want => HeadCheck::Reached,
        Some(_) => HeadCheck::Replaced,
    });
    Ok(report)
}

fn note_broken(report: &mut VerifyReport, line: u64, seq: Option<u64>, reason: String) {
    if report.first_broken.is_none() {
        report.first_broken = Some(BrokenEntry { line, seq, reason });
    }
}

/// What `check_entry` reads from one line.
struct ParsedEntry {
    seq: u64,
    prev: String,
    hash: String,
    /// The stored hash equals the recomputed one.
    hash_ok: bool,
}

/// Parse one line and recompute its hash. `Err` when the line is not an
/// entry at all; a wrong hash is reported in `hash_ok`, not as `Err`.
fn parse_entry(line: &[u8]) -> Result<ParsedEntry, String> {
    let value: Value = serde_json::from_slice(line).map_err(|e| format!("not valid JSON ({e})"))?;
    let Value::Object(mut obj) = value else {
        return Err("not a JSON object".into());
    };
    let hash = match obj.remove("hash") {
        Some(Value::String(h)) => h,
        _ => return Err("missing or malformed field \"hash\"".into()),
    };
    let seq = obj
        .get("seq")
        .and_then(Value::as_u64)
        .ok_or("missing or malformed field \"seq\"")?;
    let prev = obj
        .get("prev")
        .and_then(Value::as_str)
        .ok_or("missing or malformed field \"prev\"")?
        .to_string();
    if !obj.get("event").is_some_and(Value::is_object) {
        return Err("missing or malformed field \"event\"".into());
    }
    let mut canon = String::with_capacity(line.len());
    canonical_json(&Value::Object(obj), &mut canon);
    let hash_ok = sha256_hex(&prev, &canon) == hash;
    Ok(ParsedEntry {
        seq,
        prev,
        hash,
        hash_ok,
    })
}

/// Like `parse_entry`, but a wrong hash is an error too (what `open` needs).
fn check_entry(line: &[u8]) -> Result<ParsedEntry, String> {
    let entry = parse_entry(line)?;
    if entry.hash_ok {
        Ok(entry)
    } else {
        Err(format!("hash mismatch: entry seq {} was modified", entry.seq))
    }
}

/// Hash of a new entry.
fn entry_hash(prev: &str, seq: u64, time: &str, event: &Value) -> String {
    let mut canon = String::with_capacity(512);
    // Keys in byte order: event, prev, seq, time.
    canon.push_str("{\"event\":");
    canonical_json(event, &mut canon);
    canon.push_str(",\"prev\":");
    canonical_json(&Value::String(prev.to_string()), &mut canon);
    canon.push_str(",\"seq\":");
    canon.push_str(&seq.to_string());
    canon.push_str(",\"time\":");
    canonical_json(&Value::String(time.to_string()), &mut canon);
    canon.push('}');
    sha256_hex(prev, &canon)
}

fn sha256_hex(prev: &str, canonical: &str) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(prev.as_bytes());
    ctx.update(canonical.as_bytes());
    hex::encode(ctx.finish().as_ref())
}

/// Canonical JSON: object keys sorted by byte order, no whitespace. Does not
/// rely on `serde_json::Map`'s ordering (a `preserve_order` feature enabled
/// anywhere in the build would change it).
fn canonical_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical_json(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The end of the file as `open` needs it.
#[derive(Debug, Default, PartialEq)]
struct Tail {
    /// Offset and bytes (without the newline) of the last newline-terminated
    /// line that is JSON: the entry to resume the chain from.
    last_entry: Option<(u64, Vec<u8>)>,
    /// Newline-terminated lines after it that are not JSON (torn writes that
    /// an earlier `open` terminated), last first.
    skipped: Vec<(u64, Vec<u8>)>,
    /// Offset and bytes of a trailing fragment with no newline.
    torn: Option<(u64, Vec<u8>)>,
}

/// How many non-JSON lines `open` steps over at the end of the log before
/// giving up on finding an entry to resume from.
const MAX_SKIPPED: usize = 64;

/// Read only the end of the file: scan backwards in `chunk`-sized reads.
fn read_tail(file: &File, len: u64, chunk: u64) -> io::Result<Tail> {
    let mut tail = Tail::default();
    if len == 0 {
        return Ok(tail);
    }
    let Some(last_nl) = rfind_newline(file, len, chunk)? else {
        // No newline at all: the whole file is one torn line.
        tail.torn = Some((0, read_range(file, 0, len)?));
        return Ok(tail);
    };
    if last_nl + 1 < len {
        tail.torn = Some((last_nl + 1, read_range(file, last_nl + 1, len)?));
    }
    // `end` is the position of the newline that ends the line under study.
    let mut end = last_nl;
    loop {
        let start = rfind_newline(file, end, chunk)?.map_or(0, |p| p + 1);
        let line = read_range(file, start, end)?;
        if serde_json::from_slice::<serde::de::IgnoredAny>(&line).is_ok() {
            tail.last_entry = Some((start, line));
            return Ok(tail);
        }
        tail.skipped.push((start, line));
        if start == 0 {
            return Ok(tail); // no entry at all: the chain starts afresh
        }
        if tail.skipped.len() >= MAX_SKIPPED {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the last {MAX_SKIPPED} lines are not JSON; this is not an audit log"),
            ));
        }
        end = start - 1;
    }
}

/// Position of the last `\n` before `end`.
fn rfind_newline(file: &File, end: u64, chunk: u64) -> io::Result<Option<u64>> {
    let mut buf = vec![0u8; chunk as usize];
    let mut hi = end;
    while hi > 0 {
        if end - hi > MAX_LINE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("no line break in the last {MAX_LINE} bytes; this is not an audit log"),
            ));
        }
        let lo = hi.saturating_sub(chunk);
        let part = &mut buf[..(hi - lo) as usize];
        crate::files::read_exact_at(file, part, lo)?;
        if let Some(i) = part.iter().rposition(|&b| b == b'\n') {
            return Ok(Some(lo + i as u64));
        }
        hi = lo;
    }
    Ok(None)
}

fn read_range(file: &File, from: u64, to: u64) -> io::Result<Vec<u8>> {
    if to - from > MAX_LINE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("last line is longer than {MAX_LINE} bytes; this is not an audit log"),
        ));
    }
    let mut buf = vec![0u8; (to - from) as usize];
    crate::files::read_exact_at(file, &mut buf, from)?;
    Ok(buf)
}

/// RFC 3339 UTC with milliseconds, e.g. `2025-01-01T12:00:00.123Z`.
pub(crate) fn format_rfc3339_millis(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's days-to-civil algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
pub(super) mod tests_support {
    /// `read_tail` reduced to (last entry, number of skipped lines, torn fragment).
    #[allow(clippy::type_complexity)]
    pub fn read_tail(file: &std::fs::File, len: u64, chunk: u64) -> (Option<Vec<u8>>, usize, Option<Vec<u8>>) {
        let t = super::read_tail(file, len, chunk).unwrap();
        (t.last_entry.map(|x| x.1), t.skipped.len(), t.torn.map(|x| x.1))
    }
}
