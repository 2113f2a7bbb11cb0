//! The `tresor:plugin/host` imports: what every plugin may ask of the host.
//! Seal and unseal use the mount's own key (see [`crate::keys`]), so a plugin
//! stores ciphertext without ever holding a key.

use zeroize::Zeroize;

use super::bindings::tresor::plugin::host::{Host, LogLevel};
use super::bindings::tresor::plugin::types::{self, Error};
use super::sandbox::PluginState;
use crate::keys::SealError;
use crate::platform::PlatformError;

impl types::Host for PluginState {}

impl Host for PluginState {
    fn log(&mut self, level: LogLevel, message: String) {
        self.log.write(&mut self.call_log, level, &message);
    }

    fn seal(&mut self, mut plaintext: Vec<u8>, context: Vec<u8>) -> Result<Vec<u8>, Error> {
        let sealed = self.sealer.seal(&plaintext, &context);
        plaintext.zeroize();
        sealed.map_err(seal_error)
    }

    fn unseal(&mut self, sealed: Vec<u8>, context: Vec<u8>) -> Result<Vec<u8>, Error> {
        // The plaintext crosses into guest memory here; the host copy is wiped
        // when the guest has its own.
        self.sealer
            .unseal(&sealed, &context)
            .map(|p| p.to_vec())
            .map_err(seal_error)
    }

    fn reseal(&mut self, sealed: Vec<u8>, context: Vec<u8>) -> Result<Option<Vec<u8>>, Error> {
        self.sealer.reseal(&sealed, &context).map_err(seal_error)
    }

    fn protect(&mut self, data: Vec<u8>, entropy: Vec<u8>) -> Result<Vec<u8>, Error> {
        crate::platform::protect(data, &entropy).map_err(platform_error)
    }

    fn unprotect(&mut self, blob: Vec<u8>, entropy: Vec<u8>) -> Result<Vec<u8>, Error> {
        // As with unseal, the plaintext crosses into guest memory here.
        crate::platform::unprotect(&blob, &entropy).map_err(platform_error)
    }
}

fn seal_error(e: SealError) -> Error {
    match e {
        SealError::Malformed | SealError::Authentication => Error::InvalidInput(e.to_string()),
        SealError::Retired(_) | SealError::UnknownGeneration(_) => Error::Unavailable(e.to_string()),
        SealError::Random => Error::Internal(e.to_string()),
    }
}

fn platform_error(e: PlatformError) -> Error {
    match e {
        PlatformError::Unsupported(m) => Error::Unsupported(m),
        PlatformError::InvalidInput(m) => Error::InvalidInput(m),
        PlatformError::Failed(m) => Error::Internal(m),
    }
}
