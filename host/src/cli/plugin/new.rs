//! `tresor plugin new --lang rust|python|js NAME`: a provider project that
//! builds as it is and passes `tresor plugin check` (one sealed file per
//! secret in the granted directory; written, read, listed, deleted).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The contract, copied into every new project.
const WIT: &str = include_str!("../../../../wit/plugin.wit");

/// The language of a new plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Language {
    /// Rust with wit-bindgen, built with cargo for wasm32-wasip2.
    Rust,
    /// Python with componentize-py (from PyPI).
    Python,
    /// JavaScript with componentize-js (from npm).
    Js,
}

/// The files of a new project: path inside it, and text (`__NAME__`
/// replaced by the name, `__CRATE__` by its Rust crate name).
fn files(lang: Language) -> Vec<(&'static str, &'static str)> {
    match lang {
        Language::Rust => vec![
            ("Cargo.toml", include_str!("templates/rust/Cargo.toml")),
            ("src/lib.rs", include_str!("templates/rust/lib.rs")),
            ("README.md", include_str!("templates/rust/README.md")),
            ("wit/plugin.wit", WIT),
        ],
        Language::Python => vec![
            ("app.py", include_str!("templates/python/app.py")),
            ("build.sh", include_str!("templates/python/build.sh")),
            ("README.md", include_str!("templates/python/README.md")),
            ("wit/plugin.wit", WIT),
        ],
        Language::Js => vec![
            ("app.js", include_str!("templates/js/app.js")),
            ("package.json", include_str!("templates/js/package.json")),
            ("build.sh", include_str!("templates/js/build.sh")),
            ("README.md", include_str!("templates/js/README.md")),
            ("wit/world.wit", include_str!("templates/js/world.wit")),
            ("wit/deps/tresor-plugin/plugin.wit", WIT),
            // WASI's own interface definitions, as the yaml-file plugin keeps them.
            (
                "wit/deps/io.wit",
                include_str!("../../../../plugins/yaml-file/wit/deps/io.wit"),
            ),
            (
                "wit/deps/clocks.wit",
                include_str!("../../../../plugins/yaml-file/wit/deps/clocks.wit"),
            ),
            (
                "wit/deps/filesystem.wit",
                include_str!("../../../../plugins/yaml-file/wit/deps/filesystem.wit"),
            ),
        ],
    }
}

/// Why a project could not be created.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` cannot name a plugin: use lowercase letters, digits and `-`, starting with a letter (e.g. `team-vault`)"
        ))
    }
}

/// Write the project for `name` in `lang` into `dir` (which must not exist
/// or be empty); returns the files written.
pub fn create(name: &str, lang: Language, dir: &Path) -> Result<Vec<PathBuf>, String> {
    check_name(name)?;
    if dir.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        return Err(format!(
            "{} exists and is not empty; choose another --dir",
            dir.display()
        ));
    }
    let crate_name = name.replace('-', "_");
    let mut written = Vec::new();
    for (rel, text) in files(lang) {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        let text = text.replace("__NAME__", name).replace("__CRATE__", &crate_name);
        std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
        #[cfg(unix)]
        if rel.ends_with(".sh") {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755));
        }
        written.push(path);
    }
    Ok(written)
}

/// How to build the project, for the message after creating it.
fn next_steps(name: &str, lang: Language, dir: &Path) -> String {
    let crate_name = name.replace('-', "_");
    let d = dir.display();
    match lang {
        Language::Rust => format!(
            "  cd {d}\n  rustup target add wasm32-wasip2\n  cargo build --release --target wasm32-wasip2\n  tresor plugin check target/wasm32-wasip2/release/{crate_name}.wasm"
        ),
        Language::Python => format!("  cd {d}\n  ./build.sh\n  tresor plugin check {name}.wasm"),
        Language::Js => format!("  cd {d}\n  ./build.sh\n  tresor plugin check {name}.wasm"),
    }
}

/// Run `tresor plugin new`.
pub fn run(name: &str, lang: Language, dir: Option<PathBuf>) -> ExitCode {
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    match create(name, lang, &dir) {
        Ok(files) => {
            for f in &files {
                println!("created {}", f.display());
            }
            println!("\nBuild and check it:\n{}", next_steps(name, lang, &dir));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_a_full_directory_is_refused() {
        assert!(check_name("team-vault").is_ok());
        for bad in ["", "Team", "1abc", "a b", "a/b", "../x"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keep.txt"), b"mine").unwrap();
        let e = create("x", Language::Rust, dir.path()).unwrap_err();
        assert!(e.contains("not empty"), "{e}");
        assert_eq!(std::fs::read(dir.path().join("keep.txt")).unwrap(), b"mine");
    }

    #[test]
    fn every_language_gets_its_files_with_the_name_filled_in() {
        for lang in [Language::Rust, Language::Python, Language::Js] {
            let dir = tempfile::tempdir().unwrap();
            let target = dir.path().join("p");
            let files = create("team-vault", lang, &target).unwrap();
            for f in &files {
                let text = std::fs::read_to_string(f).unwrap();
                assert!(
                    !text.contains("__NAME__") && !text.contains("__CRATE__"),
                    "{}",
                    f.display()
                );
            }
            assert!(files.iter().any(|f| f.ends_with("plugin.wit")), "{lang:?}");
        }
    }
}
