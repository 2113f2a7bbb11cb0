//! When cross-compiling for Windows from another system (to run the tests
//! under Wine), builds the `ProcessPrng` shim (shim/processprng.c) into
//! `bcryptprimitives.dll` and copies it next to the test executables.
//! Nothing happens for native builds, nor on Windows itself.

use std::path::{Path, PathBuf};
use std::process::Command;

const SHIM_SOURCE: &str = "shim/processprng.c";
const SHIM_DLL: &str = "bcryptprimitives.dll";

fn main() {
    println!("cargo:rerun-if-changed={SHIM_SOURCE}");
    println!("cargo:rerun-if-env-changed=TRESOR_MINGW_CC");
    let target_windows = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("windows");
    if !target_windows || cfg!(windows) {
        return;
    }

    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let dll = out_dir.join(SHIM_DLL);
    let cc = std::env::var("TRESOR_MINGW_CC").unwrap_or_else(|_| "x86_64-w64-mingw32-gcc".into());
    let status = Command::new(&cc)
        .args(["-shared", "-O2", "-s", "-Wall", "-Werror", "-o"])
        .arg(&dll)
        .arg(SHIM_SOURCE)
        .arg("-ladvapi32")
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run `{cc}` to build the ProcessPrng shim ({e}): run tests/peers/wine.sh (Debian package gcc-mingw-w64-x86-64)")
        });
    assert!(status.success(), "`{cc}` failed to build {SHIM_SOURCE}");

    // OUT_DIR is <target>/<triple>/<profile>/build/<pkg>-<hash>/out; test
    // executables live in <profile>/deps, examples in <profile>/examples,
    // binaries in <profile>. Without the DLL, Wine 8.0 refuses to start them
    // (exit code 53, silent under WINEDEBUG=-all).
    let profile_dir = out_dir.ancestors().nth(3).expect("OUT_DIR has the usual layout");
    for dir in [
        profile_dir.join("deps"),
        profile_dir.join("examples"),
        profile_dir.to_path_buf(),
    ] {
        copy_into(&dll, &dir);
    }
}

fn copy_into(dll: &Path, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let dest = dir.join(SHIM_DLL);
    std::fs::copy(dll, &dest).unwrap_or_else(|e| panic!("copying the shim to {}: {e}", dest.display()));
}
