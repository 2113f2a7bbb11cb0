//! The plugin author's kit: `tresor plugin new` for each language makes a
//! project that builds and passes `tresor plugin check` (contract, sha256,
//! conformance in a scratch mount); `check` refuses what is not a plugin.

use std::path::{Path, PathBuf};
use std::process::Command;

use tresor_e2e::server::tresor_bin;
use tresor_e2e::{COMPILE_CACHE, TOOLS_DIR};

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `tresor plugin new --lang <lang> <name>` in a fresh directory.
fn scaffold(lang: &str, name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join(name);
    run(
        Command::new(tresor_bin())
            .args(["plugin", "new", "--lang", lang, name, "--dir"])
            .arg(&project),
        "tresor plugin new",
    );
    (dir, project)
}

/// `tresor plugin check` on `wasm`: its report.
fn check(wasm: &Path) -> String {
    run(
        Command::new(tresor_bin())
            .args(["plugin", "check"])
            .arg(wasm)
            .arg("--compile-cache")
            .arg(COMPILE_CACHE),
        "tresor plugin check",
    )
}

fn assert_passes(report: &str, language: &str) {
    assert!(
        report.contains("contract:     tresor:plugin@0.1.0, world provider-plugin"),
        "{report}"
    );
    assert!(report.contains(&format!("language:     {language}")), "{report}");
    assert!(
        report.contains("capabilities: writable, deletable, listable"),
        "{report}"
    );
    let conformance = report
        .lines()
        .find(|l| l.starts_with("conformance:"))
        .unwrap_or_default();
    for passed in ["round-trip", "metadata", "list", "delete", "missing-is-not-found"] {
        assert!(conformance.contains(passed), "{passed} must pass: {report}");
    }
}

#[test]
fn a_new_rust_plugin_builds_and_passes_the_check() {
    let (_dir, project) = scaffold("rust", "kit-rust");
    // A target directory of its own, kept between runs (wit-bindgen builds once).
    let target = Path::new(COMPILE_CACHE).parent().unwrap().join("plugin-kit");
    run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "--target", "wasm32-wasip2"])
            .current_dir(&project)
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS"),
        "cargo build of the new plugin",
    );
    let report = check(&target.join("wasm32-wasip2/release/kit_rust.wasm"));
    assert_passes(&report, "Rust");
}

#[test]
fn a_new_python_plugin_builds_and_passes_the_check() {
    let (_dir, project) = scaffold("python", "kit-py");
    run(
        Command::new("bash")
            .arg(project.join("build.sh"))
            .env("TOOLS_DIR", TOOLS_DIR),
        "build.sh of the new Python plugin",
    );
    assert_passes(&check(&project.join("kit-py.wasm")), "Python");
}

#[test]
fn a_new_javascript_plugin_builds_and_passes_the_check() {
    let (_dir, project) = scaffold("js", "kit-js");
    run(
        Command::new("bash")
            .arg(project.join("build.sh"))
            .env("TOOLS_DIR", TOOLS_DIR),
        "build.sh of the new JavaScript plugin",
    );
    assert_passes(&check(&project.join("kit-js.wasm")), "JavaScript");
}

#[test]
fn check_refuses_what_is_not_a_plugin_and_names_why() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8], &str); 3] = [
        ("text.wasm", b"not wasm at all", "not a WebAssembly component"),
        (
            "core.wasm",
            b"\0asm\x01\0\0\0",
            "core WebAssembly module, not a component",
        ),
        // An empty component: valid, but it exports nothing of the contract.
        (
            "empty.wasm",
            b"\0asm\x0d\0\x01\0",
            "exports neither tresor:plugin/provider nor tresor:plugin/generator",
        ),
    ];
    for (name, bytes, says) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = Command::new(tresor_bin())
            .args(["plugin", "check"])
            .arg(&path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{name}: {stdout}");
        assert!(
            stdout.contains("contract:     FAILED") && stdout.contains(says),
            "{name}: {stdout}"
        );
    }
}
