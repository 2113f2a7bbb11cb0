//! The platform key store behind the `protect`/`unprotect` host imports:
//! Windows DPAPI (`CryptProtectData` / `CryptUnprotectData`), bound to the
//! user the host runs as. Off Windows both answer
//! [`PlatformError::Unsupported`].
//!
//! The Windows code is tested by cross-compiling the host for
//! `x86_64-pc-windows-gnu` and running its tests under Wine
//! (`tests/wine/run.sh`): this module's own tests, and the `dpapi` provider
//! through the whole host (`tests/e2e/provider_dpapi.rs`).
//!
//! An empty `entropy` means "no entropy" (a null `pOptionalEntropy`): the
//! contract cannot tell an absent entropy from an empty one, and DPAPI blobs
//! written without entropy are the common case.

use std::fmt;

use zeroize::Zeroize;

/// Why a `protect`/`unprotect` call failed. Messages never contain the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlatformError {
    /// This platform (or build) has no DPAPI.
    Unsupported(String),
    /// The input cannot be protected or the blob cannot be opened: tampered
    /// with, another entropy, protected by another user or machine, not a
    /// DPAPI blob at all, or too large.
    InvalidInput(String),
    /// DPAPI failed for another reason (out of memory, no user profile, ...).
    Failed(String),
}

impl PlatformError {
    /// The message, whatever the kind.
    pub fn message(&self) -> &str {
        match self {
            PlatformError::Unsupported(m) | PlatformError::InvalidInput(m) | PlatformError::Failed(m) => m,
        }
    }
}

impl fmt::Display for PlatformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for PlatformError {}

/// Protects `data` with the platform key store (DPAPI, current user, no UI).
/// `data` is wiped before returning, whatever the outcome.
pub fn protect(mut data: Vec<u8>, entropy: &[u8]) -> Result<Vec<u8>, PlatformError> {
    let result = imp::protect(&data, entropy);
    data.zeroize();
    result
}

/// Reverses [`protect`]: returns the plaintext of `blob`, which must have been
/// protected with the same `entropy` by the same user (or machine).
pub fn unprotect(blob: &[u8], entropy: &[u8]) -> Result<Vec<u8>, PlatformError> {
    imp::unprotect(blob, entropy)
}

#[cfg(not(windows))]
mod imp {
    use super::PlatformError;

    fn unsupported() -> PlatformError {
        PlatformError::Unsupported(
            "platform protect/unprotect (Windows DPAPI) is only available on Windows hosts: \
             run Tresor on Windows to read DPAPI-protected secrets"
                .into(),
        )
    }

    pub(super) fn protect(_data: &[u8], _entropy: &[u8]) -> Result<Vec<u8>, PlatformError> {
        Err(unsupported())
    }

    pub(super) fn unprotect(_blob: &[u8], _entropy: &[u8]) -> Result<Vec<u8>, PlatformError> {
        Err(unsupported())
    }
}

#[cfg(windows)]
mod imp {
    use std::ptr;

    use windows_sys::Win32::Foundation::LocalFree;
    use windows_sys::Win32::Security::Cryptography::{
        CryptProtectData, CryptUnprotectData, CRYPTPROTECT_UI_FORBIDDEN, CRYPT_INTEGER_BLOB,
    };
    use zeroize::Zeroize;

    use super::PlatformError;

    /// Win32 error codes (and HRESULTs) meaning "this blob does not open with
    /// this key and entropy", as opposed to a failure of the machine.
    const BAD_BLOB_CODES: &[i32] = &[
        13,                     // ERROR_INVALID_DATA: tampered, wrong entropy
        87,                     // ERROR_INVALID_PARAMETER: not a DPAPI blob
        1783,                   // RPC_X_BAD_STUB_DATA: truncated blob
        0x8009_0005_u32 as i32, // NTE_BAD_DATA
        0x8009_000B_u32 as i32, // NTE_BAD_KEY_STATE: another user's blob
        0x8009_0016_u32 as i32, // NTE_BAD_KEYSET: master key not found
        0x8009_0002_u32 as i32, // NTE_BAD_UID
        0x8009_0003_u32 as i32, // NTE_BAD_KEY
    ];

    /// An input blob pointing at `bytes` (DPAPI never writes through it).
    fn input(bytes: &[u8], what: &str) -> Result<CRYPT_INTEGER_BLOB, PlatformError> {
        let len = u32::try_from(bytes.len()).map_err(|_| {
            PlatformError::InvalidInput(format!(
                "the {what} is {} bytes long: DPAPI takes at most 4 GiB",
                bytes.len()
            ))
        })?;
        // A zero-length slice may have a dangling pointer: hand DPAPI a real
        // (unread) byte instead.
        static EMPTY: u8 = 0;
        let ptr = if bytes.is_empty() {
            &EMPTY as *const u8
        } else {
            bytes.as_ptr()
        };
        Ok(CRYPT_INTEGER_BLOB {
            cbData: len,
            pbData: ptr as *mut u8,
        })
    }

    /// Copies out and frees (with `LocalFree`) the buffer DPAPI allocated,
    /// wiping it first when it holds plaintext.
    ///
    /// # Safety
    /// `blob` must come from a successful `CryptProtectData` or
    /// `CryptUnprotectData` call and not be used afterwards.
    unsafe fn take_output(blob: CRYPT_INTEGER_BLOB, wipe: bool) -> Vec<u8> {
        if blob.pbData.is_null() {
            return Vec::new();
        }
        // SAFETY: DPAPI returned `cbData` readable and writable bytes at `pbData`.
        let bytes = unsafe { std::slice::from_raw_parts_mut(blob.pbData, blob.cbData as usize) };
        let out = bytes.to_vec();
        if wipe {
            bytes.zeroize();
        }
        // SAFETY: the buffer was allocated by DPAPI with LocalAlloc and is freed once.
        unsafe { LocalFree(blob.pbData.cast()) };
        out
    }

    fn os_error(operation: &str, unprotecting: bool) -> PlatformError {
        let err = std::io::Error::last_os_error();
        let code = err.raw_os_error().unwrap_or(0);
        if unprotecting && BAD_BLOB_CODES.contains(&code) {
            PlatformError::InvalidInput(format!(
                "{operation} could not open the DPAPI blob: it was tampered with, the entropy differs, \
                 or it was protected by another Windows user or machine ({err})"
            ))
        } else {
            PlatformError::Failed(format!("{operation} failed: {err}"))
        }
    }

    pub(super) fn protect(data: &[u8], entropy: &[u8]) -> Result<Vec<u8>, PlatformError> {
        let data_in = input(data, "data to protect")?;
        let entropy_in = input(entropy, "entropy")?;
        let entropy_ptr: *const CRYPT_INTEGER_BLOB = if entropy.is_empty() { ptr::null() } else { &entropy_in };
        let mut out = CRYPT_INTEGER_BLOB {
            cbData: 0,
            pbData: ptr::null_mut(),
        };
        // SAFETY: every pointer is valid for the call; the output is owned by us after success.
        let ok = unsafe {
            CryptProtectData(
                &data_in,
                ptr::null(),
                entropy_ptr,
                ptr::null(),
                ptr::null(),
                CRYPTPROTECT_UI_FORBIDDEN,
                &mut out,
            )
        };
        if ok == 0 {
            return Err(os_error("CryptProtectData", false));
        }
        // SAFETY: `out` comes from the successful call above.
        Ok(unsafe { take_output(out, false) })
    }

    pub(super) fn unprotect(blob: &[u8], entropy: &[u8]) -> Result<Vec<u8>, PlatformError> {
        if blob.is_empty() {
            return Err(PlatformError::InvalidInput(
                "CryptUnprotectData could not open the DPAPI blob: it is empty".into(),
            ));
        }
        let blob_in = input(blob, "DPAPI blob")?;
        let entropy_in = input(entropy, "entropy")?;
        let entropy_ptr: *const CRYPT_INTEGER_BLOB = if entropy.is_empty() { ptr::null() } else { &entropy_in };
        let mut out = CRYPT_INTEGER_BLOB {
            cbData: 0,
            pbData: ptr::null_mut(),
        };
        // SAFETY: every pointer is valid for the call; no description is
        // asked for; the output is owned by us after success.
        let ok = unsafe {
            CryptUnprotectData(
                &blob_in,
                ptr::null_mut(),
                entropy_ptr,
                ptr::null(),
                ptr::null(),
                CRYPTPROTECT_UI_FORBIDDEN,
                &mut out,
            )
        };
        if ok == 0 {
            return Err(os_error("CryptUnprotectData", true));
        }
        // SAFETY: `out` comes from the successful call above.
        Ok(unsafe { take_output(out, true) })
    }
}

#[cfg(all(test, not(windows)))]
mod tests {
    use super::*;

    #[test]
    fn off_windows_both_answer_unsupported() {
        for result in [protect(b"x".to_vec(), b""), unprotect(b"blob", b"e")] {
            match result {
                Err(PlatformError::Unsupported(m)) => assert!(m.contains("only available on Windows"), "{m}"),
                other => panic!("expected unsupported, got {other:?}"),
            }
        }
    }
}

#[cfg(all(test, windows))]
mod windows_tests;
