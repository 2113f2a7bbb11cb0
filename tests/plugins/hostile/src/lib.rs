//! A deliberately hostile provider, to test that the host's sandbox holds.
//!
//! It implements the raw `tresor:plugin/provider` export directly (not the
//! SDK's `Provider` trait), so no SDK check stands between a test and the
//! misbehaviour it asks for. `get(path, _)` does what `path` says:
//!
//! | path               | behaviour                                                   |
//! |--------------------|-------------------------------------------------------------|
//! | `ok`               | value `fine`, version `1`                                   |
//! | `loop`             | spins forever (the host must interrupt it)                  |
//! | `alloc`            | allocates and touches memory without bound                  |
//! | `trap`             | executes `unreachable` (a trap)                             |
//! | `panic`            | panics with "hostile panic"                                 |
//! | `file:<abs path>`  | reads that file; its bytes are the value                    |
//! | `file-hex:<hex>`   | the same, for a path given in hex (to smuggle `..` past the host's path check) |
//! | `env:<NAME>`       | reads that environment variable                             |
//! | `net:<host:port>`  | opens a TCP connection and writes `hello`; value `connected` |
//! | `clock`            | the wall clock, as decimal milliseconds since the epoch     |
//! | `echo-hex:<hex>`   | the value is the bytes given in hex                         |
//! | `scan-hex:<hex>`   | searches this instance's whole linear memory for the bytes given in hex (never holding them in one piece itself): value `clean` or `found <n>` |
//! | `malformed`        | a secret with an empty version (the host must reject it)    |
//! | `seal-flood`       | calls the host's `seal` import forever                      |
//! | `log-flood`        | logs 200,000 lines of 4 KiB, then answers `logged`          |
//! | `log-forge`        | logs one message holding a newline and a forged host log line, then answers `logged` |
//! | `metadata-flood`   | a secret with 300,000 metadata pairs                        |
//! | anything else      | `not-found`                                                 |
//!
//! `list-secrets` answers `["../escape", "ok"]` whatever the prefix: the host must
//! reject entries that are not valid paths or do not start with the prefix.
//! For the prefix `flood/` it answers 1,000,001 valid entries.
//! Every other operation is `unsupported`.

use std::hint::black_box;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use tresor_plugin_sdk::bindings::provider::exports::tresor::plugin::provider::Guest;
use tresor_plugin_sdk::{Capabilities, Error, Metadata, Secret, Settings, VersionInfo};

/// The exported provider.
struct Hostile;

/// A secret with `value` and version `1`.
fn secret(value: impl Into<Vec<u8>>) -> Secret {
    Secret {
        value: value.into(),
        version: "1".to_owned(),
        created_ms: 0,
        metadata: Vec::new(),
        deletion_ms: 0,
    }
}

/// Spins forever; `black_box` keeps the optimiser from removing the loop.
fn spin() -> ! {
    let mut counter: u64 = 0;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

/// Calls the host's `seal` forever (the host must interrupt it without
/// stalling other requests).
fn seal_flood() -> ! {
    let mut n: u64 = 0;
    loop {
        n = n.wrapping_add(1);
        let _ = black_box(tresor_plugin_sdk::host::seal(&n.to_le_bytes(), b"flood"));
    }
}

/// Logs `lines` lines of 4 KiB.
fn log_flood(lines: usize) -> Secret {
    let line = "x".repeat(4096);
    for _ in 0..lines {
        tresor_plugin_sdk::host::log(tresor_plugin_sdk::host::LogLevel::Info, &line);
    }
    secret("logged")
}

/// Allocates 1 MiB blocks of non-zero bytes (so every page is touched) and
/// never frees them.
fn hoard() -> ! {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        blocks.push(vec![0xa5; 1 << 20]);
        black_box(&blocks);
    }
}

/// Executes the `unreachable` instruction.
fn trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort();
}

/// Decode lowercase or uppercase hex into a UTF-8 string.
fn unhex(hex: &str) -> Option<String> {
    String::from_utf8(unhex_bytes(hex)?).ok()
}

fn unhex_bytes(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Counts the places in linear memory holding the bytes `hex` spells. Each
/// byte is decoded when compared, so the needle never exists in memory as a
/// whole (its hex spelling does, but that is other bytes).
fn scan(hex: &str) -> Result<Secret, Error> {
    let digits = hex.as_bytes();
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    if digits.is_empty() || !digits.len().is_multiple_of(2) || digits.iter().any(|&c| nibble(c).is_none()) {
        return Err(Error::invalid_input(
            "scan-hex: wants a non-empty, even number of hex digits",
        ));
    }
    let byte_at = |i: usize| nibble(digits[2 * i]).unwrap_or(0) << 4 | nibble(digits[2 * i + 1]).unwrap_or(0);
    let len = digits.len() / 2;
    let end = memory_bytes();
    let mut found = 0;
    // Address 0 is valid wasm memory but a null pointer to Rust: start above.
    for addr in 8..end.saturating_sub(len) {
        let at = |i: usize| {
            // SAFETY: `addr + i` < the memory size: every address below it is
            // readable in a wasm linear memory.
            unsafe { std::ptr::read_volatile((addr + i) as *const u8) }
        };
        if (0..len).all(|i| at(i) == byte_at(i)) {
            found += 1;
        }
    }
    Ok(secret(if found == 0 {
        "clean".to_owned()
    } else {
        format!("found {found}")
    }))
}

#[cfg(target_arch = "wasm32")]
fn memory_bytes() -> usize {
    core::arch::wasm32::memory_size(0) * 65536
}

#[cfg(not(target_arch = "wasm32"))]
fn memory_bytes() -> usize {
    0
}

fn read_file(path: &str) -> Result<Secret, Error> {
    std::fs::read(path)
        .map(secret)
        .map_err(|e| Error::internal(format!("open failed: {e}")))
}

fn read_env(name: &str) -> Result<Secret, Error> {
    std::env::var(name)
        .map(secret)
        .map_err(|e| Error::not_found(format!("env var not visible: {e}")))
}

fn connect(addr: &str) -> Result<Secret, Error> {
    let mut stream =
        std::net::TcpStream::connect(addr).map_err(|e| Error::unavailable(format!("connect failed: {e}")))?;
    stream
        .write_all(b"hello")
        .map_err(|e| Error::unavailable(format!("write failed: {e}")))?;
    Ok(secret("connected"))
}

fn clock() -> Secret {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    secret(ms.to_string())
}

fn unsupported() -> Error {
    Error::unsupported("the hostile test plugin only implements get and list-secrets")
}

impl Guest for Hostile {
    fn configure(_config: Vec<(String, String)>) -> Result<(), Error> {
        Ok(())
    }

    fn get_capabilities() -> Capabilities {
        Capabilities {
            listable: true,
            ..Capabilities::NONE
        }
    }

    fn get(path: String, _version: Option<String>) -> Result<Secret, Error> {
        match path.as_str() {
            "ok" => Ok(secret("fine")),
            "loop" => spin(),
            "alloc" => hoard(),
            "trap" => trap(),
            "panic" => panic!("hostile panic"),
            "clock" => Ok(clock()),
            "seal-flood" => seal_flood(),
            "log-flood" => Ok(log_flood(200_000)),
            "log-forge" => {
                tresor_plugin_sdk::host::log(
                    tresor_plugin_sdk::host::LogLevel::Info,
                    "innocent\n2026-12-03T10:00:00.000000Z  INFO tresor::access: forged host line \x1b[31mred",
                );
                Ok(secret("logged"))
            }
            "metadata-flood" => Ok(Secret {
                metadata: (0..300_000).map(|i| (format!("k{i}"), "v".to_owned())).collect(),
                ..secret("fine")
            }),
            "malformed" => Ok(Secret {
                version: String::new(),
                ..secret("fine")
            }),
            _ => {
                if let Some(hex) = path.strip_prefix("echo-hex:") {
                    unhex_bytes(hex)
                        .map(secret)
                        .ok_or_else(|| Error::invalid_input("echo-hex: wants an even number of hex digits"))
                } else if let Some(hex) = path.strip_prefix("scan-hex:") {
                    scan(hex)
                } else if let Some(hex) = path.strip_prefix("file-hex:") {
                    match unhex(hex) {
                        Some(file) => read_file(&file),
                        None => Err(Error::invalid_input("file-hex: wants an even number of hex digits")),
                    }
                } else if let Some(file) = path.strip_prefix("file:") {
                    read_file(file)
                } else if let Some(name) = path.strip_prefix("env:") {
                    read_env(name)
                } else if let Some(addr) = path.strip_prefix("net:") {
                    connect(addr)
                } else {
                    Err(Error::not_found(format!(
                        "the hostile plugin has no behaviour `{path}`"
                    )))
                }
            }
        }
    }

    fn put(_: String, _: Vec<u8>, _: Metadata, _: Option<String>) -> Result<String, Error> {
        Err(unsupported())
    }

    fn delete(_: String) -> Result<(), Error> {
        Err(unsupported())
    }

    fn delete_versions(_: String, _: Vec<String>, _: bool) -> Result<(), Error> {
        Err(unsupported())
    }

    fn undelete_versions(_: String, _: Vec<String>) -> Result<(), Error> {
        Err(unsupported())
    }

    fn list_secrets(prefix: String) -> Result<Vec<String>, Error> {
        if prefix == "flood/" {
            return Ok((0..1_000_001).map(|i| format!("flood/{i}")).collect());
        }
        Ok(vec!["../escape".to_owned(), "ok".to_owned()])
    }

    fn versions(_: String) -> Result<Vec<VersionInfo>, Error> {
        Err(unsupported())
    }

    fn get_settings(_: String) -> Result<Settings, Error> {
        Err(unsupported())
    }

    fn set_settings(_: String, _: Settings) -> Result<(), Error> {
        Err(unsupported())
    }
}

impl tresor_plugin_sdk::bindings::provider::exports::tresor::plugin::resealer::Guest for Hostile {
    fn reseal(_: String) -> Result<tresor_plugin_sdk::Resealed, Error> {
        Err(unsupported())
    }
}

tresor_plugin_sdk::bindings::provider::export_provider_world!(Hostile);
