//! From a `.env` file to Tresor: `tresor migrate` over the corpus in
//! `tests/corpus/dotenv` (every syntax case, a Windows file with a byte
//! order mark and CRLF, the secret/configuration decisions, lines it must
//! refuse) into the file provider and into the vault provider on a real
//! OpenBao. The values stored are compared with what python-dotenv, the
//! parser the users' programs read these files with, makes of each file;
//! each rewritten file is compared line by line with the `.migrated` file
//! written by hand beside it (`{to}` stands for the target prefix).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use tresor_e2e::peers::{start_openbao, OpenBao};
use tresor_e2e::server::{start_server_with, tresor_bin, TestServer, SETUP_HINT};
use tresor_e2e::*;

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/dotenv").join(name)
}

/// What python-dotenv reads from `file` (without expanding variables, as
/// a migration must not; past a byte order mark, with the universal
/// newlines Python opens text files with), and what it warned about.
fn python_dotenv(file: &Path) -> (BTreeMap<String, Value>, String) {
    let script = "import io, json, sys\ntry:\n    import dotenv\nexcept ImportError:\n    sys.exit(97)\n\
        values = dotenv.dotenv_values(stream=io.open(sys.argv[1], encoding='utf-8-sig'), interpolate=False)\n\
        print(json.dumps(values))\n";
    let out = std::process::Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
        .args(["-c", script])
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("python3 cannot run ({e}): {SETUP_HINT}"));
    assert_ne!(
        out.status.code(),
        Some(97),
        "the Python package python-dotenv is not installed: {SETUP_HINT}"
    );
    assert!(
        out.status.success(),
        "python-dotenv: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let values = serde_json::from_slice(&out.stdout).expect("python-dotenv's values as JSON");
    (values, String::from_utf8_lossy(&out.stderr).into_owned())
}

async fn tresor(s: &TestServer, dir: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(tresor_bin())
        .args(args)
        .current_dir(dir)
        .env("TRESOR_ADDR", s.url())
        .env("TRESOR_TOKEN", &s.root_token)
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .output()
        .await
        .expect("run tresor")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A server with the file provider at `secret/` and the vault provider at
/// `vault/`, backed by `bao`'s `secret/` KV mount.
async fn server(bao: &OpenBao) -> TestServer {
    let vault = plugin_mount(
        VAULT_WASM,
        "vault",
        &format!(r#"address = "{}", token = "{}""#, bao.addr, bao.token),
        &format!(r#"network = ["127.0.0.1:{}"]"#, bao.port),
    );
    start_server_with(TEST_POLICIES, &vault, |_| String::new()).await
}

/// The value of `name` as stored upstream: through Tresor's API for the
/// file provider, straight from OpenBao (its own CLI) for the vault one.
async fn stored(s: &TestServer, bao: &OpenBao, to: &str, name: &str) -> Option<String> {
    let (mount, prefix) = to.split_once('/').unwrap();
    let out = match mount {
        "vault" => {
            tresor_e2e::server::bao(
                &bao.addr,
                &bao.token,
                &["kv", "get", &format!("secret/{prefix}/{name}")],
            )
            .await
        }
        _ => {
            s.bao(
                &s.root_token,
                &["kv", "get", &format!("-mount={mount}"), &format!("{prefix}/{name}")],
            )
            .await
        }
    };
    if !out.status.success() {
        return None;
    }
    let answer: Value = serde_json::from_slice(&out.stdout).expect("bao -format=json");
    let data = &answer["data"]["data"];
    if mount == "vault" {
        // The vault provider stores a Tresor value that is an object with
        // one string field `value` (what migrate writes) wrapped, as
        // `{"value": "<base64 of the value's JSON>"}`, so that reading it
        // back is never ambiguous (plugins/vault/src/encoding.rs).
        use base64::Engine as _;
        let wrapped = data["value"].as_str()?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(wrapped).ok()?;
        let fields: Value = serde_json::from_slice(&bytes).ok()?;
        return fields["value"].as_str().map(str::to_string);
    }
    data["value"].as_str().map(str::to_string)
}

/// The version count upstream of `name` (for "a rerun writes nothing").
async fn versions(s: &TestServer, bao: &OpenBao, to: &str, name: &str) -> Value {
    let (mount, prefix) = to.split_once('/').unwrap();
    let out = match mount {
        "vault" => {
            tresor_e2e::server::bao(
                &bao.addr,
                &bao.token,
                &["kv", "metadata", "get", &format!("secret/{prefix}/{name}")],
            )
            .await
        }
        _ => {
            let mount = format!("-mount={mount}");
            s.bao(
                &s.root_token,
                &["kv", "metadata", "get", &mount, &format!("{prefix}/{name}")],
            )
            .await
        }
    };
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    answer["data"]["current_version"].clone()
}

/// Migrate corpus file `stem` into `to` and check everything the
/// migration promises: the rewritten file, the values, a quiet rerun.
async fn migrate_case(s: &TestServer, bao: &OpenBao, stem: &str, to: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(format!("{stem}.env"));
    let original = std::fs::read(corpus(&format!("{stem}.env"))).unwrap();
    std::fs::write(&file, &original).unwrap();
    let extra: Vec<String> = std::fs::read_to_string(corpus(&format!("{stem}.args")))
        .map(|t| t.lines().map(str::to_string).collect())
        .unwrap_or_default();
    let (expected_values, _) = python_dotenv(&file);
    let file_arg = file.to_str().unwrap();
    let mut args = vec!["migrate", file_arg, "--apply", "--to", to, "--json"];
    args.extend(extra.iter().map(String::as_str));

    let out = tresor(s, dir.path(), &args).await;
    assert!(out.status.success(), "{stem} into {to}: {}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("--json report");

    // The file, line by line, as written by hand.
    let want = String::from_utf8(std::fs::read(corpus(&format!("{stem}.migrated"))).unwrap())
        .unwrap()
        .replace("{to}", to);
    let got = String::from_utf8(std::fs::read(&file).unwrap()).unwrap();
    for (n, (g, w)) in got.split_inclusive('\n').zip(want.split_inclusive('\n')).enumerate() {
        assert_eq!(g, w, "{stem} into {to}: line {} of the rewritten file", n + 1);
    }
    assert_eq!(got, want, "{stem} into {to}: the rewritten file");

    // Migrated: the lines the hand-written file says, each stored as
    // python-dotenv reads it; the report says the same names.
    let marker = " - MIGRATED TO TRESOR (";
    let migrated: Vec<&str> = want
        .lines()
        .filter_map(|l| l.strip_prefix("# ")?.split_once(marker).map(|(n, _)| n))
        .collect();
    let mut reported: Vec<&str> = report["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["secret"] == true)
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    reported.sort_unstable();
    let mut sorted = migrated.clone();
    sorted.sort_unstable();
    assert_eq!(reported, sorted, "{stem}: the report's secrets");
    assert_eq!(
        (report["migrated"].as_u64(), report["verified"].as_u64()),
        (Some(migrated.len() as u64), Some(migrated.len() as u64)),
        "{report}"
    );
    for name in &migrated {
        let want = expected_values[*name].as_str().expect("python-dotenv has a value");
        assert_eq!(
            stored(s, bao, to, name).await.as_deref(),
            Some(want),
            "{stem} into {to}: {name} as stored"
        );
    }
    // Kept: what python-dotenv reads from the rewritten file is the
    // original minus the migrated entries, value for value.
    let (after, _) = python_dotenv(&file);
    let mut kept = expected_values.clone();
    kept.retain(|k, _| !migrated.contains(&k.as_str()));
    assert_eq!(after, kept, "{stem} into {to}: the entries that stay");

    // A rerun on the original file writes no new version of anything.
    let probe = migrated[0];
    let before = versions(s, bao, to, probe).await;
    assert!(before.as_u64().is_some(), "{stem} into {to}: no metadata for {probe}");
    std::fs::write(&file, &original).unwrap();
    let again = tresor(s, dir.path(), &args).await;
    assert!(again.status.success(), "{}", text(&again));
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert!(
        again["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["secret"] == true)
            .all(|e| e["status"] == "unchanged"),
        "{again}"
    );
    assert_eq!(versions(s, bao, to, probe).await, before, "a rerun wrote {probe} again");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_corpus_migrates_into_the_file_and_the_vault_providers() {
    let bao = start_openbao().await;
    let s = server(&bao).await;
    for stem in ["syntax", "windows", "names"] {
        for mount in ["secret", "vault"] {
            migrate_case(&s, &bao, stem, &format!("{mount}/corpus/{stem}")).await;
        }
    }
    // The metadata goes along, to either provider.
    let meta = s
        .http(
            "GET",
            "/v1/vault/metadata/corpus/syntax/DB_PASSWORD",
            Some(&s.root_token),
            None,
        )
        .await;
    assert_eq!(
        meta.json()["data"]["custom_metadata"]["source"],
        ".env",
        "{}",
        meta.text
    );
    assert_eq!(
        meta.json()["data"]["custom_metadata"]["type"],
        "database_credential",
        "{}",
        meta.text
    );
}

/// A line python-dotenv cannot read either is refused by number, before
/// anything is written, and the file is left as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_it_cannot_read_are_refused_before_anything_is_written() {
    let bao = start_openbao().await;
    let s = server(&bao).await;
    for (stem, line) in [("bad-statement", 3), ("bad-quote", 2)] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(".env");
        let original = std::fs::read(corpus(&format!("{stem}.env"))).unwrap();
        std::fs::write(&file, &original).unwrap();
        let (_, warned) = python_dotenv(&file);
        assert!(
            warned.contains("could not parse"),
            "python-dotenv reads {stem}: {warned}"
        );
        for to in ["secret/corpus/bad", "vault/corpus/bad"] {
            let out = tresor(&s, dir.path(), &["migrate", "--apply", "--to", to]).await;
            assert_eq!(out.status.code(), Some(2), "{stem}: {}", text(&out));
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(&format!("line {line}")), "{stem}: {err}");
            assert!(!err.contains("never-written"), "a value in the error: {err}");
            assert_eq!(std::fs::read(&file).unwrap(), original, "{stem}: the file changed");
            assert_eq!(
                stored(&s, &bao, to, "DB_PASSWORD").await,
                None,
                "{stem}: written into {to}"
            );
            assert_eq!(stored(&s, &bao, to, "OK").await, None, "{stem}: written into {to}");
        }
    }
}

/// The README's "Replacing a .env file" walkthrough, run as written there
/// (its first `sh` block) against a running server, with `VAULT_ADDR` and
/// `VAULT_TOKEN` set as the tour leaves them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walkthrough_from_a_dotenv_file_to_tresor_run_works_as_written() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    let section = readme
        .split_once("\n## Replacing a .env file\n")
        .expect("the README has a \"Replacing a .env file\" section")
        .1;
    let section = section.split("\n## ").next().unwrap();
    let script = section
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .expect("the section has a sh block")
        .0;
    assert!(
        script.contains("tresor migrate --apply") && script.contains("tresor run"),
        "{script}"
    );

    let s = tresor_e2e::server::start_server(TEST_POLICIES).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("walkthrough.sh"), script).unwrap();
    let bin_dir = tresor_bin().parent().unwrap().to_path_buf();
    let path = std::env::join_paths(
        std::iter::once(bin_dir).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap();
    let out = tokio::process::Command::new("sh")
        .args(["-eu", "walkthrough.sh"])
        .current_dir(dir.path())
        .env("PATH", path)
        .env("VAULT_ADDR", s.url())
        .env("VAULT_TOKEN", &s.root_token)
        .env_remove("TRESOR_ADDR")
        .env_remove("TRESOR_TOKEN")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the walkthrough failed: {}", text(&out));
    // The program ran with its secrets, its output masked.
    assert!(
        stdout.contains(&format!("log level info database {}\n", "*".repeat(53))),
        "{stdout}"
    );
    assert!(stdout.contains("the password has 21 characters"), "{stdout}");
    assert!(!stdout.contains("s3cr3t-pw"), "an unmasked value: {stdout}");
    // The file keeps its configuration and no secret; the backup has them.
    let env = std::fs::read_to_string(dir.path().join(".env")).unwrap();
    assert!(env.starts_with("LOG_LEVEL=info\n"), "{env}");
    for gone in ["correct horse", "s3cr3t-pw", "sk_live_51HxZ2eKq8Zr2LxN0vTb7KpW"] {
        assert!(!env.contains(gone), "{gone} is still in .env: {env}");
    }
    assert_eq!(env.matches("MIGRATED TO TRESOR").count(), 3, "{env}");
    let backups: Vec<_> = std::fs::read_dir(dir.path().join(".tresor-backups")).unwrap().collect();
    assert_eq!(backups.len(), 1);
    let stripe = s
        .http(
            "GET",
            "/v1/secret/data/apps/billing/STRIPE_SECRET_KEY",
            Some(&s.root_token),
            None,
        )
        .await;
    assert_eq!(
        stripe.json()["data"]["data"]["value"],
        "sk_live_51HxZ2eKq8Zr2LxN0vTb7KpW"
    );
}
