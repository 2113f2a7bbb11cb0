//! Services the host offers to every plugin.
//!
//! Calling these functions outside a WebAssembly component (in a unit test
//! compiled for the build machine) panics: they only exist inside the host.

use crate::bindings::provider::tresor::plugin::host as raw;
use crate::Error;

/// Severity of a log line: `Trace`, `Debug`, `Info`, `Warn` or `Error`.
pub use raw::LogLevel;

/// Writes `message` to the host's log, attributed to the calling mount.
/// Never put a secret value in a log line.
pub fn log(level: LogLevel, message: &str) {
    raw::log(level, message);
}

/// Encrypts `plaintext` with a key the host holds for this mount (envelope
/// encryption, AES-256-GCM); the plugin never sees the key.
///
/// `context` is authenticated but not encrypted: pass the same bytes to
/// [`unseal`]. Bind it to what the blob stands for (a secret's path and
/// version) so a blob copied elsewhere fails to open.
pub fn seal(plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, Error> {
    raw::seal(plaintext, context)
}

/// Decrypts a blob produced by [`seal`] with the same `context`. Fails with
/// `invalid-input` when the blob was tampered with, sealed for another mount,
/// or the context differs.
pub fn unseal(sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, Error> {
    raw::unseal(sealed, context)
}

/// Moves a blob made by [`seal`] to the key generation the host seals new
/// values under (after a master key rotation), without decrypting the value.
/// `None` when it already is. Store the returned blob in place of the old
/// one; call it from [`Provider::reseal`](crate::Provider::reseal).
pub fn reseal(sealed: &[u8], context: &[u8]) -> Result<Option<Vec<u8>>, Error> {
    raw::reseal(sealed, context)
}

/// Protects `data` with the platform's user-bound key store (Windows DPAPI);
/// `entropy` must be given again to [`unprotect`]. Returns `unsupported` on
/// other platforms.
pub fn protect(data: &[u8], entropy: &[u8]) -> Result<Vec<u8>, Error> {
    raw::protect(data, entropy)
}

/// Reverses [`protect`]. Returns `unsupported` on platforms without DPAPI.
pub fn unprotect(blob: &[u8], entropy: &[u8]) -> Result<Vec<u8>, Error> {
    raw::unprotect(blob, entropy)
}
