//! The platform key store behind the `protect`/`unprotect` host imports
//! (Windows DPAPI). Off Windows both answer `unsupported`.

use zeroize::Zeroize;

/// Protect `data` with the platform key store.
pub fn protect(mut data: Vec<u8>, _entropy: &[u8]) -> Result<Vec<u8>, String> {
    data.zeroize();
    Err(unsupported())
}

/// Reverse [`protect`].
pub fn unprotect(_blob: &[u8], _entropy: &[u8]) -> Result<Vec<u8>, String> {
    Err(unsupported())
}

fn unsupported() -> String {
    if cfg!(windows) {
        "DPAPI is not available in this build of Tresor".into()
    } else {
        "platform protect/unprotect (Windows DPAPI) is only available on Windows hosts".into()
    }
}
