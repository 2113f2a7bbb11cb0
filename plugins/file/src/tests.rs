//! Tests of the store on the build machine, with a stand-in for the host's
//! sealing.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tresor_plugin_sdk::{Error, Settings};

use crate::layout::{legacy_dir_names, secret_dir_names};
use crate::store::{Sealer, Store};

/// Seals by prefixing a marker and the context, then XOR-ing the value, so
/// a plaintext never shows up as such and a wrong context fails. Resealing
/// swaps the marker for [`MOVED`], as if under a new key generation.
struct FakeSealer;

const MARK: &[u8] = b"SEALED:";
const MOVED: &[u8] = b"MOVED!:";

impl Sealer for FakeSealer {
    fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = MARK.to_vec();
        out.extend_from_slice(&(context.len() as u32).to_le_bytes());
        out.extend_from_slice(context);
        out.extend(plaintext.iter().map(|b| b ^ 0xa5));
        Ok(out)
    }

    fn unseal(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, Error> {
        let rest = sealed
            .strip_prefix(MARK)
            .or_else(|| sealed.strip_prefix(MOVED))
            .ok_or_else(|| Error::invalid_input("not sealed"))?;
        let len = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        if &rest[4..4 + len] != context {
            return Err(Error::invalid_input("wrong context"));
        }
        Ok(rest[4 + len..].iter().map(|b| b ^ 0xa5).collect())
    }

    fn reseal(&self, sealed: &[u8], context: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        self.unseal(sealed, context)?;
        Ok(sealed.strip_prefix(MARK).map(|rest| [MOVED, rest].concat()))
    }
}

/// A store that keeps every version (the tests of concurrency count them).
fn store(dir: &Path) -> Store<FakeSealer> {
    Store::new(dir, FakeSealer, u64::MAX)
}

fn settings(max_versions: u32, cas_required: bool, delete_version_after_ms: u64) -> Settings {
    Settings {
        max_versions,
        cas_required,
        delete_version_after_ms,
    }
}

fn version_numbers(s: &Store<FakeSealer>, path: &str) -> Vec<String> {
    s.versions(path).unwrap().into_iter().map(|i| i.version).collect()
}

fn put(s: &Store<FakeSealer>, path: &str, value: &str) -> String {
    s.put(path, value.as_bytes(), vec![], None).unwrap()
}

fn value(s: &Store<FakeSealer>, path: &str, version: Option<&str>) -> Result<String, Error> {
    s.get(path, version)
        .map(|secret| String::from_utf8(secret.value).unwrap())
}

fn is_not_found<T>(r: Result<T, Error>) -> bool {
    matches!(r, Err(Error::NotFound(_)))
}

/// Where the tree keeps the secret at `path`.
fn secret_dir(root: &Path, path: &str) -> PathBuf {
    let mut dir = root.join("secrets");
    dir.extend(secret_dir_names(path));
    dir
}

/// Where the layout before the tree kept the secret at `path`.
fn legacy_dir(root: &Path, path: &str) -> PathBuf {
    let mut dir = root.to_path_buf();
    dir.extend(legacy_dir_names(path));
    dir
}

/// The sorted names in `dir`.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Every byte of every file under `dir`.
fn all_file_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(all_file_bytes(&path));
        } else {
            out.extend(fs::read(&path).unwrap());
        }
    }
    out
}

#[test]
fn put_then_get_every_version() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    assert_eq!(put(&s, "app/db", "one"), "1");
    assert_eq!(
        s.put("app/db", b"two", vec![("owner".into(), "ops".into())], None)
            .unwrap(),
        "2"
    );
    let latest = s.get("app/db", None).unwrap();
    assert_eq!(latest.value, b"two");
    assert_eq!(latest.version, "2");
    assert_eq!(latest.metadata, vec![("owner".to_owned(), "ops".to_owned())]);
    assert!(latest.created_ms > 0);
    assert_eq!(value(&s, "app/db", Some("1")).unwrap(), "one");
    assert!(is_not_found(s.get("app/db", Some("3"))));
    assert!(is_not_found(s.get("app/db", Some("01"))));
    assert!(is_not_found(s.get("app/other", None)));
}

#[test]
fn layout_is_a_tree_of_segments_with_immutable_version_files() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    put(&s, "app/db", "one");
    put(&s, "app/db", "two");
    assert_eq!(names(tmp.path()), ["secrets"]);
    // `app` = 617070, `db` = 6462.
    let dir = tmp.path().join("secrets").join("617070").join("6462.s");
    assert_eq!(dir, secret_dir(tmp.path(), "app/db"));
    assert_eq!(names(&dir), ["1.json", "2.json", "head"]);
    assert_eq!(fs::read_to_string(dir.join("head")).unwrap(), "2");
    let record: serde_json::Value = serde_json::from_slice(&fs::read(dir.join("2.json")).unwrap()).unwrap();
    assert_eq!(record["version"], "2");
    assert!(record["sealed"].is_string());
    assert!(record["created_ms"].is_u64());
    assert_eq!(record["metadata"], serde_json::json!([]));
}

#[test]
fn the_directory_never_holds_a_plaintext_value() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    let secret = "correct-horse-battery-staple";
    put(&s, "k", secret);
    put(&s, "k", secret);
    s.delete_versions("k", &["1".into()], true).unwrap();
    let bytes = all_file_bytes(tmp.path());
    assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
}

#[test]
fn a_version_file_moved_elsewhere_does_not_open() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    put(&s, "a", "value-of-a");
    put(&s, "b", "value-of-b");
    let a = secret_dir(tmp.path(), "a").join("1.json");
    let b = secret_dir(tmp.path(), "b").join("1.json");
    fs::copy(&a, &b).unwrap();
    match s.get("b", None) {
        Err(Error::Internal(message)) => assert!(!message.contains("value-of")),
        other => panic!("expected internal, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn check_and_set() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    assert_eq!(s.put("p", b"1", vec![], Some("")).unwrap(), "1");
    assert!(matches!(
        s.put("p", b"x", vec![], Some("")),
        Err(Error::Conflict(m)) if m == "current version of `p` is 1, expected the secret not to exist"
    ));
    assert_eq!(s.put("p", b"2", vec![], Some("1")).unwrap(), "2");
    assert!(matches!(
        s.put("p", b"x", vec![], Some("1")),
        Err(Error::Conflict(m)) if m == "current version of `p` is 2, expected version 1"
    ));
    assert!(matches!(
        s.put("p", b"x", vec![], Some("junk")),
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        s.put("q", b"x", vec![], Some("1")),
        Err(Error::Conflict(m)) if m == "secret `q` does not exist, expected version 1"
    ));
    assert_eq!(value(&s, "p", None).unwrap(), "2");
}

#[test]
fn soft_delete_and_undelete() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    put(&s, "p", "one");
    put(&s, "p", "two");
    s.delete_versions("p", &["1".into(), "9".into(), "junk".into()], false)
        .unwrap();
    assert!(is_not_found(s.get("p", Some("1"))));
    assert_eq!(value(&s, "p", None).unwrap(), "two");

    s.delete_versions("p", &["2".into()], false).unwrap();
    assert!(is_not_found(s.get("p", None)), "a deleted latest version is not-found");
    let infos = s.versions("p").unwrap();
    assert!(infos.iter().all(|i| i.deleted && !i.destroyed));

    s.undelete_versions("p", &["1".into(), "2".into(), "7".into()]).unwrap();
    assert_eq!(value(&s, "p", Some("1")).unwrap(), "one");
    assert_eq!(value(&s, "p", None).unwrap(), "two");
    assert!(is_not_found(s.delete_versions("missing", &["1".into()], false)));
}

#[test]
fn destroy_erases_the_value_for_good() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    put(&s, "p", "one");
    put(&s, "p", "two");
    s.delete_versions("p", &["1".into()], false).unwrap();
    s.delete_versions("p", &["1".into()], true).unwrap();
    s.delete_versions("p", &["1".into()], true).unwrap();
    assert!(is_not_found(s.get("p", Some("1"))));
    s.undelete_versions("p", &["1".into()]).unwrap();
    assert!(is_not_found(s.get("p", Some("1"))), "destroyed stays unreadable");

    let record: serde_json::Value =
        serde_json::from_slice(&fs::read(secret_dir(tmp.path(), "p").join("1.json")).unwrap()).unwrap();
    assert_eq!(record["destroyed"], true);
    assert!(record.get("sealed").is_none());

    let infos = s.versions("p").unwrap();
    assert_eq!(infos.len(), 2);
    assert!(infos[0].destroyed && infos[0].deleted);
    assert!(!infos[1].destroyed && !infos[1].deleted);
    assert_eq!(value(&s, "p", None).unwrap(), "two");
}

#[test]
fn delete_removes_every_version() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    put(&s, "p", "one");
    put(&s, "p", "two");
    s.delete("p").unwrap();
    assert!(is_not_found(s.get("p", None)));
    assert!(is_not_found(s.get("p", Some("1"))));
    assert!(is_not_found(s.versions("p")));
    assert!(is_not_found(s.delete("p")));
    assert_eq!(s.list("").unwrap(), Vec::<String>::new());
    assert_eq!(put(&s, "p", "again"), "1");
    assert_eq!(value(&s, "p", None).unwrap(), "again");
    s.delete("p").unwrap();
    assert!(names(&tmp.path().join("trash")).is_empty(), "no trash left behind");
    assert!(names(&tmp.path().join("secrets")).is_empty());
}

#[test]
fn delete_removes_emptied_folders_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    put(&s, "a", "secret a");
    put(&s, "a/b/c", "deep");
    put(&s, "a/x", "sibling");
    s.delete("a/b/c").unwrap();
    // Folder `a/b/` held only `c`: gone. `a/` still holds `x`.
    assert!(!tmp.path().join("secrets/61/62").exists());
    assert_eq!(s.list("").unwrap(), ["a", "a/x"]);
    s.delete("a").unwrap();
    assert_eq!(s.list("").unwrap(), ["a/x"]);
    assert_eq!(value(&s, "a/x", None).unwrap(), "sibling");
    s.delete("a/x").unwrap();
    assert!(names(&tmp.path().join("secrets")).is_empty());
    assert_eq!(put(&s, "a/b/c", "again"), "1");
    assert_eq!(s.list("a/").unwrap(), ["a/b/c"]);
}

#[test]
fn list_filters_sorts_and_skips_leftovers() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    for path in ["b/x", "a/y", "a/x", "c"] {
        put(&s, path, "v");
    }
    let tree = tmp.path().join("secrets");
    // Leftovers of crashes, and names the store never makes.
    fs::create_dir_all(tmp.path().join("trash").join("0123")).unwrap();
    fs::write(tmp.path().join("trash").join("0123").join("1.json"), b"{}").unwrap();
    fs::write(tree.join("tmp-77"), b"junk").unwrap();
    fs::write(secret_dir(tmp.path(), "c").join("tmp-88"), b"junk").unwrap();
    fs::create_dir(tree.join("not-hex")).unwrap();
    fs::create_dir(tree.join("not-hex.s")).unwrap();
    fs::write(tree.join("not-hex.s").join("1.json"), b"{}").unwrap();
    // A first write that crashed before publishing: a directory, no version.
    fs::create_dir(secret_dir(tmp.path(), "empty")).unwrap();
    // `..` as a secret, and a folder whose name hides a `/`.
    fs::create_dir(tree.join("2e2e.s")).unwrap();
    fs::write(tree.join("2e2e.s").join("1.json"), b"{}").unwrap();
    fs::create_dir_all(tree.join("612f62").join("63.s")).unwrap();
    fs::write(tree.join("612f62").join("63.s").join("1.json"), b"{}").unwrap();
    // What a delete before the tree left behind.
    fs::create_dir(tmp.path().join(".trash-0123")).unwrap();
    fs::write(tmp.path().join(".trash-0123").join("1.json"), b"{}").unwrap();

    assert_eq!(s.list("").unwrap(), ["a/x", "a/y", "b/x", "c"]);
    assert_eq!(s.list("a/").unwrap(), ["a/x", "a/y"]);
    assert_eq!(s.list("b").unwrap(), ["b/x"]);
    assert_eq!(s.list("zzz").unwrap(), Vec::<String>::new());
    assert_eq!(value(&s, "c", None).unwrap(), "v");
    assert_eq!(s.versions("c").unwrap().len(), 1);
    assert!(is_not_found(s.get("empty", None)));
    assert!(!tmp.path().join(".trash-0123").exists(), "list sweeps old-layout trash");

    put(&s, "doomed", "v");
    s.delete("doomed").unwrap();
    assert!(names(&tmp.path().join("trash")).is_empty(), "delete sweeps old trash");
}

#[test]
fn list_matches_prefixes_that_end_anywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    let all = ["a", "a/b", "a/b/c", "a/bc", "ab", "b", "é/x", "éa"];
    for path in all {
        put(&s, path, "v");
    }
    assert_eq!(s.list("").unwrap(), all);
    assert_eq!(s.list("a").unwrap(), ["a", "a/b", "a/b/c", "a/bc", "ab"]);
    assert_eq!(s.list("a/").unwrap(), ["a/b", "a/b/c", "a/bc"]);
    assert_eq!(s.list("a/b").unwrap(), ["a/b", "a/b/c", "a/bc"]);
    assert_eq!(s.list("a/b/").unwrap(), ["a/b/c"]);
    assert_eq!(s.list("a/b/c").unwrap(), ["a/b/c"]);
    assert_eq!(s.list("a/b/cd").unwrap(), Vec::<String>::new());
    assert_eq!(s.list("é").unwrap(), ["é/x", "éa"]);
    for none in ["a//", "a//b", "c", "a/./", "x/"] {
        assert_eq!(s.list(none).unwrap(), Vec::<String>::new(), "{none:?}");
    }
}

#[test]
fn long_paths_work_like_short_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    let long = format!("{}/end", "segment".repeat(72));
    assert!(long.len() <= tresor_plugin_sdk::MAX_PATH_LEN);
    let long_sibling = format!("{}/other", "segment".repeat(72));
    put(&s, &long, "v1");
    put(&s, &long, "v2");
    put(&s, &long_sibling, "w");
    put(&s, "short", "s");
    assert_eq!(value(&s, &long, Some("1")).unwrap(), "v1");
    assert_eq!(
        s.list("").unwrap(),
        [long.clone(), long_sibling.clone(), "short".to_owned()]
    );
    s.delete(&long).unwrap();
    assert!(is_not_found(s.get(&long, None)));
    assert_eq!(value(&s, &long_sibling, None).unwrap(), "w");
    assert_eq!(s.list("segment").unwrap(), [long_sibling]);
}

#[test]
fn max_versions_prunes_old_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Store::new(tmp.path(), FakeSealer, 2);
    for v in ["1", "2", "3", "4"] {
        put(&s, "p", v);
    }
    s.delete_versions("p", &["3".into()], false).unwrap();
    put(&s, "p", "5");
    let versions: Vec<String> = s.versions("p").unwrap().into_iter().map(|i| i.version).collect();
    assert_eq!(versions, ["4", "5"]);
    assert!(is_not_found(s.get("p", Some("1"))));
    assert!(!secret_dir(tmp.path(), "p").join("3.deleted").exists());
}

#[test]
fn concurrent_writers_never_lose_or_share_a_version() {
    let tmp = tempfile::tempdir().unwrap();
    let root = Arc::new(tmp.path().to_path_buf());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let root = Arc::clone(&root);
            std::thread::spawn(move || {
                // One store per thread, as one plugin instance per request.
                let s = store(&root);
                (0..10)
                    .map(|i| {
                        (
                            s.put("shared", format!("{t}-{i}").as_bytes(), vec![], None).unwrap(),
                            format!("{t}-{i}"),
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let written: Vec<(String, String)> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let versions: BTreeSet<&str> = written.iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(versions.len(), 80, "every put got its own version");
    let s = store(&root);
    for (version, expected) in &written {
        assert_eq!(&value(&s, "shared", Some(version)).unwrap(), expected);
    }
    assert_eq!(s.versions("shared").unwrap().len(), 80);
}

#[test]
fn concurrent_check_and_set_has_one_winner() {
    let tmp = tempfile::tempdir().unwrap();
    let root = Arc::new(tmp.path().to_path_buf());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let root = Arc::clone(&root);
            std::thread::spawn(move || store(&root).put("once", format!("{t}").as_bytes(), vec![], Some("")))
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results.iter().all(|r| matches!(r, Ok(_) | Err(Error::Conflict(_)))));
}

#[test]
fn writers_and_deleters_race_safely() {
    let tmp = tempfile::tempdir().unwrap();
    let root = Arc::new(tmp.path().to_path_buf());
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let root = Arc::clone(&root);
            std::thread::spawn(move || {
                let s = store(&root);
                for _ in 0..25 {
                    s.put("churn", b"v", vec![], None).unwrap();
                }
            })
        })
        .collect();
    let deleter = {
        let root = Arc::clone(&root);
        std::thread::spawn(move || {
            let s = store(&root);
            for _ in 0..25 {
                let _ = s.delete("churn");
                let _ = s.list("");
            }
        })
    };
    for t in writers {
        t.join().unwrap();
    }
    deleter.join().unwrap();
    let s = store(&root);
    s.put("churn", b"last", vec![], None).unwrap();
    assert_eq!(value(&s, "churn", None).unwrap(), "last");
    let versions = s.versions("churn").unwrap();
    for info in &versions {
        assert!(s.get("churn", Some(&info.version)).is_ok());
    }
    // No writer carried a version number over from a deleted incarnation.
    let numbers: Vec<u64> = versions.iter().map(|i| i.version.parse().unwrap()).collect();
    assert_eq!(numbers, (1..=numbers.len() as u64).collect::<Vec<_>>());
}

/// A version file as `put` writes it, for simulating what a crash leaves.
fn record(path: &str, n: u64, value: &str) -> Vec<u8> {
    use base64::Engine as _;
    let sealed = FakeSealer
        .seal(value.as_bytes(), &crate::layout::seal_context(path, n))
        .unwrap();
    serde_json::to_vec(&serde_json::json!({
        "version": n.to_string(),
        "created_ms": 1,
        "metadata": [],
        "sealed": base64::engine::general_purpose::STANDARD.encode(sealed),
    }))
    .unwrap()
}

#[test]
fn a_head_that_lags_is_looked_past() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    for v in ["one", "two", "three"] {
        put(&s, "p", v);
    }
    let dir = secret_dir(tmp.path(), "p");
    // A writer renamed its head late, or crashed before renaming it.
    fs::write(dir.join("head"), "1").unwrap();
    assert_eq!(s.get("p", None).unwrap().version, "3");
    assert_eq!(value(&s, "p", None).unwrap(), "three");
    assert!(matches!(s.put("p", b"x", vec![], Some("2")), Err(Error::Conflict(_))));
    assert_eq!(s.put("p", b"four", vec![], Some("3")).unwrap(), "4");
    assert_eq!(fs::read_to_string(dir.join("head")).unwrap(), "4");

    // A version published by a writer that died before touching head.
    fs::write(dir.join("5.json"), record("p", 5, "five")).unwrap();
    assert_eq!(value(&s, "p", None).unwrap(), "five");
    assert_eq!(put(&s, "p", "six"), "6");
    let versions: Vec<String> = s.versions("p").unwrap().into_iter().map(|i| i.version).collect();
    assert_eq!(versions, ["1", "2", "3", "4", "5", "6"]);
}

#[test]
fn a_missing_or_damaged_head_falls_back_to_a_listing() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    put(&s, "p", "one");
    put(&s, "p", "two");
    let dir = secret_dir(tmp.path(), "p");
    let mut expected = 2;
    // Empty (a crash before its data reached the disk), garbage, ahead of
    // every version, zero, gone.
    for head in [Some(""), Some("x7"), Some("99"), Some("0"), Some("01"), None] {
        match head {
            Some(text) => fs::write(dir.join("head"), text).unwrap(),
            None => fs::remove_file(dir.join("head")).unwrap(),
        }
        assert_eq!(s.get("p", None).unwrap().version, expected.to_string(), "{head:?}");
        assert_eq!(s.list("").unwrap(), ["p"], "{head:?}");
        expected += 1;
        assert_eq!(put(&s, "p", "next"), expected.to_string(), "{head:?}");
        assert_eq!(fs::read_to_string(dir.join("head")).unwrap(), expected.to_string());
    }
}

#[test]
fn leftover_temporary_files_are_ignored_and_swept() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    put(&s, "p", "one");
    let dir = secret_dir(tmp.path(), "p");
    // A crash mid-write leaves a half-written version or head.
    fs::write(dir.join("tmp-00000000000000aa"), b"{\"version\":\"2\",\"sea").unwrap();
    fs::write(dir.join("tmp-00000000000000bb"), b"").unwrap();
    let old = fs::File::options()
        .write(true)
        .open(dir.join("tmp-00000000000000aa"))
        .unwrap();
    old.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(7200))
        .unwrap();
    drop(old);
    assert_eq!(value(&s, "p", None).unwrap(), "one");
    assert_eq!(s.list("").unwrap(), ["p"]);
    assert_eq!(put(&s, "p", "two"), "2");
    assert_eq!(value(&s, "p", Some("2")).unwrap(), "two");
    assert_eq!(s.versions("p").unwrap().len(), 2);
    // The old one was a crash's; the fresh one may be a writer's at work.
    assert!(!dir.join("tmp-00000000000000aa").exists());
    assert!(dir.join("tmp-00000000000000bb").exists());
}

#[test]
fn a_first_write_that_crashed_leaves_no_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    let dir = secret_dir(tmp.path(), "new/one");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("tmp-00000000000000cc"), record("new/one", 1, "lost")).unwrap();
    assert!(is_not_found(s.get("new/one", None)));
    assert!(is_not_found(s.get("new/one", Some("1"))));
    assert!(is_not_found(s.versions("new/one")));
    assert!(is_not_found(s.delete_versions("new/one", &["1".into()], false)));
    assert_eq!(s.list("").unwrap(), Vec::<String>::new());
    assert_eq!(s.put("new/one", b"first", vec![], Some("")).unwrap(), "1");
    assert_eq!(value(&s, "new/one", None).unwrap(), "first");
}

#[test]
fn trash_left_by_a_crashed_delete_is_invisible_and_swept() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    put(&s, "p", "one");
    let dir = secret_dir(tmp.path(), "p");
    // The rename into trash/ happened; the removal did not.
    fs::create_dir_all(tmp.path().join("trash")).unwrap();
    fs::rename(&dir, tmp.path().join("trash").join("00000000000000dd")).unwrap();
    assert!(is_not_found(s.get("p", None)));
    assert_eq!(s.list("").unwrap(), Vec::<String>::new());
    assert_eq!(put(&s, "p", "again"), "1");
    put(&s, "q", "v");
    s.delete("q").unwrap();
    assert!(names(&tmp.path().join("trash")).is_empty());
    assert_eq!(value(&s, "p", None).unwrap(), "again");
}

/// Moves `path` from the tree to where the layout before it kept it, as
/// that layout wrote it (no `head`).
fn move_to_legacy_layout(root: &Path, path: &str) {
    let legacy = legacy_dir(root, path);
    fs::create_dir_all(legacy.parent().unwrap()).unwrap();
    fs::rename(secret_dir(root, path), &legacy).unwrap();
    fs::remove_file(legacy.join("head")).unwrap();
}

#[test]
fn secrets_in_the_layout_before_the_tree_are_read_and_moved_by_their_next_write() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    let long = format!("{}/end", "segment".repeat(72));
    for path in ["old/db", long.as_str(), "old/deleted"] {
        put(&s, path, "one");
        s.put(path, b"two", vec![("k".into(), "v".into())], None).unwrap();
        move_to_legacy_layout(tmp.path(), path);
    }
    put(&s, "old/new", "tree");
    assert!(legacy_dir(tmp.path(), "old/db").join("2.json").exists());

    assert_eq!(value(&s, "old/db", None).unwrap(), "two");
    assert_eq!(value(&s, "old/db", Some("1")).unwrap(), "one");
    assert_eq!(value(&s, &long, None).unwrap(), "two");
    assert_eq!(s.versions("old/db").unwrap().len(), 2);
    assert_eq!(s.list("old/").unwrap(), ["old/db", "old/deleted", "old/new"]);
    assert_eq!(s.list("").unwrap(), ["old/db", "old/deleted", "old/new", long.as_str()]);
    s.delete_versions("old/db", &["1".into()], false).unwrap();
    assert!(is_not_found(s.get("old/db", Some("1"))));
    s.undelete_versions("old/db", &["1".into()]).unwrap();
    assert_eq!(value(&s, "old/db", Some("1")).unwrap(), "one");
    s.delete_versions("old/db", &["1".into()], false).unwrap();
    assert!(matches!(
        s.put("old/db", b"x", vec![], Some("1")),
        Err(Error::Conflict(_))
    ));

    // The next write moves the whole directory, markers and all.
    assert_eq!(s.put("old/db", b"three", vec![], Some("2")).unwrap(), "3");
    assert!(!legacy_dir(tmp.path(), "old/db").exists());
    assert_eq!(
        names(&secret_dir(tmp.path(), "old/db")),
        ["1.deleted", "1.json", "2.json", "3.json", "head"]
    );
    assert!(is_not_found(s.get("old/db", Some("1"))));
    assert_eq!(value(&s, "old/db", Some("2")).unwrap(), "two");
    assert_eq!(put(&s, &long, "three"), "3");
    assert_eq!(value(&s, &long, Some("1")).unwrap(), "one");

    s.delete("old/deleted").unwrap();
    assert!(is_not_found(s.get("old/deleted", None)));
    assert_eq!(s.list("").unwrap(), ["old/db", "old/new", long.as_str()]);
    // Nothing of the old layout is left: its `.d` folders went with the
    // secrets.
    assert_eq!(names(tmp.path()), ["secrets", "trash"]);
}

#[test]
fn reads_and_writes_touch_only_the_files_they_need() {
    // A read or write of a secret with many versions never lists its
    // directory: with `head` present, a damaged version file far back
    // (which a listing-based read of `versions` trips over) is not touched.
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    for i in 0..50 {
        put(&s, "p", &format!("v{i}"));
    }
    let dir = secret_dir(tmp.path(), "p");
    fs::write(dir.join("3.json"), b"not json").unwrap();
    assert_eq!(value(&s, "p", None).unwrap(), "v49");
    assert_eq!(value(&s, "p", Some("4")).unwrap(), "v3");
    assert_eq!(put(&s, "p", "v50"), "51");
    assert_eq!(s.list("").unwrap(), ["p"]);
    assert!(matches!(s.versions("p"), Err(Error::Internal(m)) if m.contains("version file 3")));
}

#[test]
fn readers_never_miss_while_writers_write() {
    let tmp = tempfile::tempdir().unwrap();
    let root = Arc::new(tmp.path().to_path_buf());
    put(&store(&root), "busy", "0");
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let root = Arc::clone(&root);
            std::thread::spawn(move || {
                let s = store(&root);
                for i in 0..20 {
                    s.put("busy", format!("{t}-{i}").as_bytes(), vec![], None).unwrap();
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let root = Arc::clone(&root);
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let s = store(&root);
                let mut last = 0u64;
                let mut reads = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) || reads == 0 {
                    let version: u64 = s.get("busy", None).unwrap().version.parse().unwrap();
                    assert!(version >= last, "latest went back from {last} to {version}");
                    last = version;
                    reads += 1;
                }
                last
            })
        })
        .collect();
    for t in writers {
        t.join().unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in readers {
        assert!(t.join().unwrap() >= 1);
    }
    let s = store(&root);
    assert_eq!(s.get("busy", None).unwrap().version, "81");
    assert_eq!(s.versions("busy").unwrap().len(), 81);
}

/// Set in the child processes of [`killed_writers_leave_a_consistent_store`]:
/// the data directory they write to.
const CRASH_CHILD_ENV: &str = "TRESOR_FILE_CRASH_CHILD";

/// Writers are SIGKILLed mid-flight, over and over; afterwards every put
/// they acknowledged reads back, and the store opens and lists cleanly.
#[test]
fn killed_writers_leave_a_consistent_store() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    use std::time::Duration;

    if let Ok(dir) = std::env::var(CRASH_CHILD_ENV) {
        // Child: write until killed, acknowledging each put on stdout.
        let s = store(Path::new(&dir));
        let mut out = std::io::stdout();
        for i in 0.. {
            let version = s.put("crash", format!("value-{i}").as_bytes(), vec![], None).unwrap();
            writeln!(out, "ack {version} {i} end").unwrap();
            out.flush().unwrap();
        }
        return;
    }

    let tmp = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acknowledged = Vec::new();
    for round in 0..6u64 {
        let children: Vec<_> = (0..2)
            .map(|_| {
                let mut child = Command::new(&exe)
                    .args([
                        "--exact",
                        "tests::killed_writers_leave_a_consistent_store",
                        "--nocapture",
                    ])
                    .env(CRASH_CHILD_ENV, tmp.path())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                let stdout = child.stdout.take().unwrap();
                let reader = std::thread::spawn(move || {
                    BufReader::new(stdout)
                        .lines()
                        .map_while(Result::ok)
                        .filter_map(|line| {
                            let parts: Vec<&str> = line.split(' ').collect();
                            match parts[..] {
                                ["ack", version, i, "end"] => Some((version.to_owned(), i.to_owned())),
                                _ => None,
                            }
                        })
                        .collect::<Vec<_>>()
                });
                (child, reader)
            })
            .collect();
        std::thread::sleep(Duration::from_millis(40 + 30 * round));
        for (mut child, reader) in children {
            child.kill().unwrap();
            child.wait().unwrap();
            acknowledged.extend(reader.join().unwrap());
        }
    }
    assert!(acknowledged.len() > 10, "the writers made progress");

    let s = store(tmp.path());
    for (version, i) in &acknowledged {
        assert_eq!(value(&s, "crash", Some(version)).unwrap(), format!("value-{i}"));
    }
    for info in s.versions("crash").unwrap() {
        assert!(
            s.get("crash", Some(&info.version)).is_ok(),
            "version {} is readable",
            info.version
        );
    }
    assert_eq!(s.list("").unwrap(), ["crash"]);
    put(&s, "crash", "after the crashes");
    assert_eq!(value(&s, "crash", None).unwrap(), "after the crashes");
}

#[test]
fn without_settings_a_secret_keeps_vaults_ten_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Store::new(tmp.path(), FakeSealer, 0);
    for i in 1..=12 {
        put(&s, "p", &i.to_string());
    }
    let kept: Vec<String> = (3..=12).map(|i| i.to_string()).collect();
    assert_eq!(version_numbers(&s, "p"), kept);
    assert!(is_not_found(s.get("p", Some("2"))));
    assert_eq!(value(&s, "p", Some("3")).unwrap(), "3");
}

#[test]
fn a_secrets_max_versions_prunes_at_once_and_on_every_write() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Store::new(tmp.path(), FakeSealer, 0);
    for i in 1..=5 {
        put(&s, "p", &i.to_string());
    }
    s.set_settings("p", &settings(2, false, 0)).unwrap();
    assert_eq!(version_numbers(&s, "p"), ["4", "5"]);
    put(&s, "p", "6");
    assert_eq!(version_numbers(&s, "p"), ["5", "6"]);
    let read = s.settings("p").unwrap();
    assert_eq!(
        (read.max_versions, read.cas_required, read.delete_version_after_ms),
        (2, false, 0)
    );
    // Another secret is untouched by p's settings.
    for i in 1..=3 {
        put(&s, "q", &i.to_string());
    }
    assert_eq!(version_numbers(&s, "q"), ["1", "2", "3"]);
    assert_eq!(s.settings("q").unwrap().max_versions, 0);
}

#[test]
fn the_mounts_settings_apply_to_every_secret_and_the_larger_max_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Store::new(tmp.path(), FakeSealer, 0);
    assert_eq!(s.settings("").unwrap().max_versions, 0);
    s.set_settings("", &settings(2, false, 0)).unwrap();
    s.set_settings("a", &settings(1, false, 0)).unwrap();
    for i in 1..=3 {
        put(&s, "a", &i.to_string());
        put(&s, "b", &i.to_string());
    }
    assert_eq!(version_numbers(&s, "a"), ["2", "3"]);
    assert_eq!(version_numbers(&s, "b"), ["2", "3"]);
    // Another store on the same directory (another plugin instance) sees them.
    let other = Store::new(tmp.path(), FakeSealer, 0);
    assert_eq!(other.settings("").unwrap().max_versions, 2);
}

#[test]
fn cas_required_refuses_blind_writes_and_accepts_check_and_set() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    put(&s, "p", "1");
    s.set_settings("p", &settings(0, true, 0)).unwrap();
    let refused = s.put("p", b"2", vec![], None).unwrap_err();
    assert!(matches!(&refused, Error::InvalidInput(m) if m.contains("check-and-set parameter required")));
    assert_eq!(value(&s, "p", None).unwrap(), "1");
    assert_eq!(s.put("p", b"2", vec![], Some("1")).unwrap(), "2");
    // On the mount, it applies to secrets without settings too.
    s.set_settings("", &settings(0, true, 0)).unwrap();
    assert!(matches!(s.put("new", b"x", vec![], None), Err(Error::InvalidInput(_))));
    assert_eq!(s.put("new", b"x", vec![], Some("")).unwrap(), "1");
}

#[test]
fn delete_version_after_hides_versions_once_their_time_passed() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    s.set_settings("p", &settings(0, false, 150)).unwrap();
    let before = now_ms();
    put(&s, "p", "short-lived");
    let info = s.versions("p").unwrap().pop().unwrap();
    assert!(!info.deleted);
    assert!(info.deletion_ms >= before + 150 && info.deletion_ms <= now_ms() + 150);
    assert_eq!(value(&s, "p", None).unwrap(), "short-lived");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(is_not_found(s.get("p", None)));
    assert!(is_not_found(s.get("p", Some("1"))));
    assert!(s.versions("p").unwrap()[0].deleted);
}

#[test]
fn a_soft_deleted_version_reports_when_it_was_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    put(&s, "p", "1");
    put(&s, "p", "2");
    let before = now_ms();
    s.delete_versions("p", &["1".into()], false).unwrap();
    let after = now_ms();
    let infos = s.versions("p").unwrap();
    assert!(infos[0].deleted);
    assert!((before..=after).contains(&infos[0].deletion_ms));
    assert_eq!(infos[1].deletion_ms, 0);
    // Deleting it again keeps the first time.
    std::thread::sleep(std::time::Duration::from_millis(5));
    s.delete_versions("p", &["1".into()], false).unwrap();
    assert_eq!(s.versions("p").unwrap()[0].deletion_ms, infos[0].deletion_ms);
}

#[test]
fn settings_of_a_secret_without_versions_are_kept_until_it_is_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    assert!(is_not_found(s.settings("later")));
    s.set_settings("later", &settings(3, false, 0)).unwrap();
    assert_eq!(s.settings("later").unwrap().max_versions, 3);
    assert!(is_not_found(s.get("later", None)));
    assert!(s.list("").unwrap().is_empty());
    s.delete("later").unwrap();
    assert!(is_not_found(s.settings("later")));
    assert!(is_not_found(s.delete("later")));
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn configure_refuses_a_misspelt_key() {
    use tresor_plugin_sdk::{Config, Provider};

    let config = Config::new(vec![("max_version".into(), "5".into())]);
    match crate::FileProvider::configure(config) {
        Err(Error::InvalidInput(m)) => {
            assert!(
                m.contains("`max_version`") && m.contains("did you mean `max_versions`"),
                "{m}"
            )
        }
        Err(other) => panic!("expected invalid-input, got {other:?}"),
        Ok(_) => panic!("a misspelt key was accepted"),
    }
}

#[test]
fn reseal_moves_every_sealed_version_and_keeps_them_readable() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    for v in ["one", "two", "three"] {
        put(&s, "app/db", v);
    }
    s.delete_versions("app/db", &["2".into()], true).unwrap();
    assert_eq!(
        s.reseal("app/db").unwrap(),
        (2, 2),
        "the destroyed version has nothing to move"
    );
    assert_eq!(s.reseal("app/db").unwrap(), (2, 0), "a second pass finds nothing to do");
    assert_eq!(value(&s, "app/db", Some("1")).unwrap(), "one");
    assert_eq!(value(&s, "app/db", Some("3")).unwrap(), "three");
    assert!(is_not_found(s.get("app/db", Some("2"))), "destroyed stays destroyed");
    for n in [1, 3] {
        let file = secret_dir(dir.path(), "app/db").join(format!("{n}.json"));
        let record: serde_json::Value = serde_json::from_slice(&fs::read(file).unwrap()).unwrap();
        let sealed = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            record["sealed"].as_str().unwrap(),
        )
        .unwrap();
        assert!(sealed.starts_with(MOVED), "version {n} is left under the old key");
    }
    assert!(names(&secret_dir(dir.path(), "app/db"))
        .iter()
        .all(|n| !n.starts_with("tmp-")));
    assert!(is_not_found(s.reseal("app/none")));
}
