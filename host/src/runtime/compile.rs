//! Compile plugins once: components are cached on disk as wasmtime's
//! serialized artifacts, keyed by the sha256 of the component bytes and the
//! engine's compatibility hash, so a restart loads them in milliseconds.

use std::fs;
use std::io::Write;
use std::path::Path;

use ring::digest::{digest, SHA256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// The lowercase hex sha256 of `bytes` (what a config pins with `sha256 = "..."`).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(digest(&SHA256, bytes).as_ref())
}

/// Load `wasm` as a component, from the cache in `cache_dir` when a matching
/// artifact exists, compiling and caching it otherwise. A corrupt or
/// incompatible cache entry is recompiled, never trusted.
pub fn load_component(engine: &Engine, cache_dir: &Path, wasm: &[u8]) -> wasmtime::Result<Component> {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
    let engine_tag = std::hash::Hasher::finish(&hasher);
    let key = format!("{}-{engine_tag:016x}.cwasm", sha256_hex(wasm));
    let path = cache_dir.join(&key);

    if path.exists() {
        // SAFETY: the file is one this host wrote into its own state directory
        // (atomically, see below) for exactly this component and engine
        // configuration; wasmtime additionally checks the artifact's header and
        // engine compatibility and errors out instead of loading a mismatch.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unusable compiled-plugin cache entry")
            }
        }
    }

    let component = Component::new(engine, wasm)?;
    if let Err(e) = store_atomically(cache_dir, &key, &component.serialize()?) {
        tracing::warn!(dir = %cache_dir.display(), error = %e, "could not cache the compiled plugin; it will be compiled again on next start");
    }
    Ok(component)
}

fn store_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(dir.join(name)).map_err(|e| e.error)?;
    Ok(())
}
