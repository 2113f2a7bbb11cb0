//! Builds the deliberately hostile test plugin (tests/plugins/hostile) and the
//! third-party-style provider plugins (plugins/dpapi, vault, aws, gcp, azure,
//! postgres-kv)
//! for wasm32-wasip2 in one cargo invocation, and hands their paths to the
//! tests as `TRESOR_TEST_HOSTILE` and `TRESOR_PLUGIN_<NAME>`.
//!
//! Plugins written in other languages (Python with componentize-py,
//! JavaScript with componentize-js) each have a `build.sh OUT_WASM TOOLS_DIR`
//! that installs its pinned toolchain into `TOOLS_DIR` when missing and
//! writes the component to `OUT_WASM`; they are built here too.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    println!("cargo:rerun-if-changed={}", manifest_dir.join("plugins").display());
    println!("cargo:rerun-if-changed={}", root.join("plugins/sdk").display());
    println!("cargo:rerun-if-changed={}", root.join("plugins/dpapi").display());
    println!("cargo:rerun-if-changed={}", root.join("plugins/vault").display());
    println!("cargo:rerun-if-changed={}", root.join("plugins/aws").display());
    println!("cargo:rerun-if-changed={}", root.join("plugins/gcp").display());
    println!("cargo:rerun-if-changed={}", root.join("plugins/azure").display());
    println!("cargo:rerun-if-changed={}", root.join("plugins/postgres-kv").display());
    println!("cargo:rerun-if-changed={}", root.join("plugins/pgwire").display());
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    println!("cargo:rerun-if-changed={}", root.join("plugins/build").display());
    for (dir, _, _) in OTHER_LANGUAGES {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }

    let target_dir = match std::env::var("CARGO_TARGET_DIR") {
        Ok(dir) => Path::new(&dir).join("wasm"),
        Err(_) => {
            let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
            out.ancestors().nth(4).unwrap().join("wasm")
        }
    };
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args([
        "build",
        "--release",
        "--target=wasm32-wasip2",
        "-p",
        "tresor-test-hostile",
        "-p",
        "tresor-plugin-dpapi",
        "-p",
        "tresor-plugin-vault",
        "-p",
        "tresor-plugin-aws",
        "-p",
        "tresor-plugin-gcp",
        "-p",
        "tresor-plugin-azure",
        "-p",
        "tresor-plugin-postgres-kv",
        "--manifest-path",
    ])
    .arg(root.join("plugins/Cargo.toml"))
    .arg("--target-dir")
    .arg(&target_dir);
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
    let status = cmd.status().expect("running cargo to build the hostile test plugin");
    assert!(status.success(), "building tests/plugins/hostile for wasm32-wasip2 failed; is the target installed? `rustup target add wasm32-wasip2`");
    let wasm = target_dir.join("wasm32-wasip2/release/tresor_test_hostile.wasm");
    println!("cargo:rustc-env=TRESOR_TEST_HOSTILE={}", wasm.display());
    let dpapi = target_dir.join("wasm32-wasip2/release/tresor_plugin_dpapi.wasm");
    println!("cargo:rustc-env=TRESOR_PLUGIN_DPAPI={}", dpapi.display());
    let vault = target_dir.join("wasm32-wasip2/release/tresor_plugin_vault.wasm");
    println!("cargo:rustc-env=TRESOR_PLUGIN_VAULT={}", vault.display());
    let aws = target_dir.join("wasm32-wasip2/release/tresor_plugin_aws.wasm");
    println!("cargo:rustc-env=TRESOR_PLUGIN_AWS={}", aws.display());
    for (name, var) in [
        ("gcp", "TRESOR_PLUGIN_GCP"),
        ("azure", "TRESOR_PLUGIN_AZURE"),
        ("postgres_kv", "TRESOR_PLUGIN_POSTGRES_KV"),
    ] {
        let wasm = target_dir.join(format!("wasm32-wasip2/release/tresor_plugin_{name}.wasm"));
        println!("cargo:rustc-env={var}={}", wasm.display());
    }
    build_other_languages(&root, &target_dir);
}

/// Components built from other languages: (folder, file name, env var).
const OTHER_LANGUAGES: [(&str, &str, &str); 4] = [
    ("plugins/json-file", "json_file.wasm", "TRESOR_PLUGIN_JSON_FILE"),
    ("plugins/yaml-file", "yaml_file.wasm", "TRESOR_PLUGIN_YAML_FILE"),
    ("tests/plugins/hostile-py", "hostile_py.wasm", "TRESOR_TEST_HOSTILE_PY"),
    ("tests/plugins/hostile-js", "hostile_js.wasm", "TRESOR_TEST_HOSTILE_JS"),
];

fn build_other_languages(root: &Path, target_dir: &Path) {
    let out_dir = target_dir.join("other-languages");
    let tools = target_dir.join("tools");
    std::fs::create_dir_all(&out_dir).expect("creating the output directory of the other-language plugins");
    for (dir, file, var) in OTHER_LANGUAGES {
        let out = out_dir.join(file);
        println!("cargo:rustc-env={var}={}", out.display());
        let script = root.join(dir).join("build.sh");
        if !script.exists() {
            continue;
        }
        let status = Command::new("bash")
            .arg(&script)
            .arg(&out)
            .arg(&tools)
            .status()
            .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
        assert!(
            status.success(),
            "{} failed (see its output above); it needs python3 with pip or node with npm",
            script.display()
        );
    }
    println!("cargo:rustc-env=TRESOR_TEST_TOOLS_DIR={}", tools.display());
    // Compiled components are shared by every test host, so a large plugin
    // (a Python interpreter) is compiled once per build, not once per test.
    println!(
        "cargo:rustc-env=TRESOR_TEST_COMPILE_CACHE={}",
        target_dir.join("compiled").display()
    );
}
