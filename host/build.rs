//! Builds the first-party plugins (`plugins/`) for `wasm32-wasip2` and tells
//! the crate where the components are, so they are embedded in the `tresor`
//! binary. The same pattern as wasmtime's test-programs artifacts: a nested
//! `cargo build` with its own target directory.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Embedded plugins: (name used in configs, crate directory, crate name).
const PLUGINS: &[(&str, &str, &str)] = &[
    ("file", "file", "tresor_plugin_file"),
    ("env", "env", "tresor_plugin_env"),
    ("postgres", "postgres", "tresor_plugin_postgres"),
    ("aws_creds", "aws-creds", "tresor_plugin_aws_creds"),
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let plugins = root.join("plugins");
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    println!("cargo:rerun-if-changed={}", plugins.join("Cargo.toml").display());
    println!("cargo:rerun-if-changed={}", plugins.join("Cargo.lock").display());
    println!("cargo:rerun-if-changed={}", plugins.join("sdk").display());
    // The postgres generator's wire client.
    println!("cargo:rerun-if-changed={}", plugins.join("pgwire").display());
    for (_, dir, _) in PLUGINS {
        println!("cargo:rerun-if-changed={}", plugins.join(dir).display());
    }

    let target_dir = wasm_target_dir();
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.arg("build")
        .arg("--release")
        .arg("--target=wasm32-wasip2")
        .arg("--manifest-path")
        .arg(plugins.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    for (_, _, krate) in PLUGINS {
        cmd.arg("-p").arg(krate.replace('_', "-"));
    }
    // Flags meant for the host build must not leak into the wasm build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
    ] {
        cmd.env_remove(var);
    }
    check_wasm_target();
    let status = cmd.status().expect("running cargo to build the plugins");
    if !status.success() {
        panic!("building the first-party plugins for wasm32-wasip2 failed (see the errors above)");
    }
    for (name, _, krate) in PLUGINS {
        let wasm = target_dir.join("wasm32-wasip2/release").join(format!("{krate}.wasm"));
        assert!(wasm.exists(), "expected plugin component at {}", wasm.display());
        println!(
            "cargo:rustc-env=TRESOR_PLUGIN_{}={}",
            name.to_uppercase(),
            wasm.display()
        );
    }
}

/// A target directory for the wasm build, beside the host's own.
fn wasm_target_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        return Path::new(&dir).join("wasm");
    }
    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out (with an extra
    // <triple> level when cross-compiling): find the directory holding <profile>.
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let profile_dir = out.ancestors().nth(3).unwrap();
    profile_dir.parent().unwrap().join("wasm")
}

/// Make sure the `wasm32-wasip2` target is installed: when it is missing and
/// rustup manages the toolchain, install it (the README promises one command
/// on a machine with only rustup's stable toolchain); otherwise fail with one
/// actionable line.
fn check_wasm_target() {
    if wasm_target_installed() {
        return;
    }
    let toolchain = std::env::var("RUSTUP_TOOLCHAIN").ok();
    let mut rustup = Command::new("rustup");
    rustup.args(["target", "add", "wasm32-wasip2"]);
    if let Some(t) = &toolchain {
        rustup.args(["--toolchain", t]);
    }
    println!(
        "cargo:warning=installing the Rust target wasm32-wasip2 (rustup target add wasm32-wasip2) to build the plugins"
    );
    let installed = rustup.status().map(|s| s.success()).unwrap_or(false);
    if installed && wasm_target_installed() {
        return;
    }
    eprintln!("error: the Rust target wasm32-wasip2 is not installed and could not be installed automatically; run `rustup target add wasm32-wasip2`");
    panic!("the Rust target wasm32-wasip2 is not installed; run `rustup target add wasm32-wasip2`");
}

/// True when the compiler's sysroot has the `wasm32-wasip2` standard library.
fn wasm_target_installed() -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok());
    match sysroot {
        Some(sysroot) => Path::new(sysroot.trim()).join("lib/rustlib/wasm32-wasip2").exists(),
        // Cannot tell: let the nested build report it.
        None => true,
    }
}
