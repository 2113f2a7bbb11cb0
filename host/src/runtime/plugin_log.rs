//! What a plugin may write to the host's log through the `log` import.
//!
//! A plugin's lines are its own words, not the host's: control characters
//! are escaped (so a newline cannot forge a host log line, and terminal
//! escape codes stay inert), the text is quoted and tagged with the mount,
//! and the volume is bounded — a line is cut at [`MAX_LINE`] bytes, a call
//! writes at most [`LINES_PER_CALL`] lines and a mount at most
//! [`LINES_PER_SECOND`] lines a second. What is dropped is counted and said
//! once, in one warning per mount per second at most.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::bindings::tresor::plugin::host::LogLevel;

/// Longest plugin log line kept, in bytes; longer lines are cut.
pub const MAX_LINE: usize = 2048;
/// Most lines one call of a plugin may log.
pub const LINES_PER_CALL: u32 = 100;
/// Most lines all instances of one mount may log in a second.
pub const LINES_PER_SECOND: u32 = 200;

const WINDOW: Duration = Duration::from_secs(1);

/// The log budget of one mount, shared by all its instances.
pub struct LogGate {
    mount: Arc<str>,
    window: Mutex<Window>,
}

struct Window {
    started: Instant,
    lines: u32,
    unreported: u64,
    last_report: Option<Instant>,
}

/// Lines logged by the call in progress of one instance.
#[derive(Default)]
pub struct CallLog {
    lines: u32,
}

impl CallLog {
    /// Start counting a new call.
    pub fn reset(&mut self) {
        self.lines = 0;
    }
}

impl LogGate {
    /// The budget of `mount`.
    pub fn new(mount: &str) -> Arc<LogGate> {
        Arc::new(LogGate {
            mount: mount.into(),
            window: Mutex::new(Window {
                started: Instant::now(),
                lines: 0,
                unreported: 0,
                last_report: None,
            }),
        })
    }

    /// Write one plugin line, if the call's and the mount's budgets allow.
    pub fn write(&self, call: &mut CallLog, level: LogLevel, message: &str) {
        let admitted = {
            let mut w = self.window.lock().expect("log gate lock");
            let now = Instant::now();
            if now.duration_since(w.started) >= WINDOW {
                w.started = now;
                w.lines = 0;
            }
            let admitted = call.lines < LINES_PER_CALL && w.lines < LINES_PER_SECOND;
            if admitted {
                call.lines += 1;
                w.lines += 1;
            } else {
                w.unreported += 1;
            }
            admitted
        };
        if admitted {
            emit(&self.mount, level, &quote(message));
        }
    }

    /// Say what was dropped, if anything was and nothing was said in the
    /// last second (otherwise the count waits for a later call). Called at
    /// the end of every call.
    pub fn end_call(&self) {
        let mut w = self.window.lock().expect("log gate lock");
        self.report(&mut w, Instant::now());
    }

    fn report(&self, w: &mut Window, now: Instant) {
        if w.unreported == 0 || w.last_report.is_some_and(|t| now.duration_since(t) < WINDOW) {
            return;
        }
        tracing::warn!(
            target: "tresor::plugin",
            mount = &*self.mount,
            dropped = w.unreported,
            "plugin log lines dropped: a call may log {LINES_PER_CALL} lines and a mount \
             {LINES_PER_SECOND} a second; lower the plugin's log volume"
        );
        w.unreported = 0;
        w.last_report = Some(now);
    }
}

fn emit(mount: &str, level: LogLevel, line: &str) {
    match level {
        LogLevel::Trace => tracing::trace!(target: "tresor::plugin", mount, "plugin said {line}"),
        LogLevel::Debug => tracing::debug!(target: "tresor::plugin", mount, "plugin said {line}"),
        LogLevel::Info => tracing::info!(target: "tresor::plugin", mount, "plugin said {line}"),
        LogLevel::Warn => tracing::warn!(target: "tresor::plugin", mount, "plugin said {line}"),
        LogLevel::Error => tracing::error!(target: "tresor::plugin", mount, "plugin said {line}"),
    }
}

/// The message cut to [`MAX_LINE`] bytes, in double quotes, with quotes,
/// backslashes, control characters, line and paragraph separators and
/// bidirectional overrides escaped: one line that cannot pass for anything
/// but a quotation.
fn quote(message: &str) -> String {
    let mut cut = message.len().min(MAX_LINE);
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = String::with_capacity(cut + 2);
    out.push('"');
    for c in message[..cut].chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control()
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
            {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    if cut < message.len() {
        let _ = write!(out, " (cut at {MAX_LINE} of {} bytes)", message.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_a_message_on_one_line() {
        assert_eq!(quote("hello"), r#""hello""#);
        assert_eq!(
            quote("a\nINFO tresor: forged\r\x1b[31m\u{202e}\"\\"),
            r#""a\nINFO tresor: forged\r\u{1b}[31m\u{202e}\"\\""#
        );
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let message = "é".repeat(MAX_LINE);
        let quoted = quote(&message);
        assert!(quoted.ends_with(&format!(" (cut at {MAX_LINE} of {} bytes)", MAX_LINE * 2)));
        assert_eq!(quoted.matches('é').count(), MAX_LINE / 2);
    }

    #[test]
    fn a_call_and_a_mount_have_budgets() {
        let gate = LogGate::new("m");
        let mut call = CallLog::default();
        for _ in 0..LINES_PER_CALL + 5 {
            gate.write(&mut call, LogLevel::Info, "x");
        }
        assert_eq!(call.lines, LINES_PER_CALL);
        let mut other = CallLog::default();
        for _ in 0..LINES_PER_CALL {
            gate.write(&mut other, LogLevel::Info, "x");
        }
        // The mount's second is spent: a third call gets nothing.
        let mut third = CallLog::default();
        gate.write(&mut third, LogLevel::Info, "x");
        assert_eq!(third.lines, 0);
        let w = gate.window.lock().unwrap();
        assert_eq!(w.lines, LINES_PER_SECOND);
        assert_eq!(w.unreported, 6);
        assert!(w.last_report.is_none());
        drop(w);
        // The end of a call says it, once; a second call within the second
        // leaves its count for later.
        gate.end_call();
        gate.write(&mut third, LogLevel::Info, "x");
        gate.end_call();
        let w = gate.window.lock().unwrap();
        assert!(w.last_report.is_some());
        assert_eq!(w.unreported, 1);
    }
}
