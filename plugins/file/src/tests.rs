//! Tests of the store on the build machine, with a stand-in for the host's
//! sealing.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use tresor_plugin_sdk::Error;

use crate::layout::encode_hex;
use crate::store::{Sealer, Store};

/// Seals by prefixing a marker and the context, then XOR-ing the value, so
/// a plaintext never shows up as such and a wrong context fails.
struct FakeSealer;

const MARK: &[u8] = b"SEALED:";

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
            .ok_or_else(|| Error::invalid_input("not sealed"))?;
        let len = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        if &rest[4..4 + len] != context {
            return Err(Error::invalid_input("wrong context"));
        }
        Ok(rest[4 + len..].iter().map(|b| b ^ 0xa5).collect())
    }
}

fn store(dir: &Path) -> Store<FakeSealer> {
    Store::new(dir, FakeSealer, 0)
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
fn layout_is_one_directory_per_secret_with_immutable_version_files() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    put(&s, "app/db", "one");
    put(&s, "app/db", "two");
    let dir = tmp.path().join(encode_hex(b"app/db"));
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["1.json", "2.json"]);
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
    let a = tmp.path().join(encode_hex(b"a")).join("1.json");
    let b = tmp.path().join(encode_hex(b"b")).join("1.json");
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
        serde_json::from_slice(&fs::read(tmp.path().join(encode_hex(b"p")).join("1.json")).unwrap()).unwrap();
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
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1, "no trash left behind");
}

#[test]
fn list_filters_sorts_and_skips_leftovers() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    for path in ["b/x", "a/y", "a/x", "c"] {
        put(&s, path, "v");
    }
    // Leftovers of crashes and unrelated files.
    fs::create_dir(tmp.path().join(".trash-0123")).unwrap();
    fs::write(tmp.path().join(".trash-0123").join("1.json"), b"{}").unwrap();
    fs::write(tmp.path().join("tmp-77"), b"junk").unwrap();
    fs::write(tmp.path().join(encode_hex(b"c")).join("tmp-88"), b"junk").unwrap();
    fs::create_dir(tmp.path().join("not-hex")).unwrap();
    fs::create_dir(tmp.path().join(encode_hex(b"empty"))).unwrap();
    fs::create_dir(tmp.path().join(encode_hex(b"../escape"))).unwrap();
    fs::write(tmp.path().join(encode_hex(b"../escape")).join("1.json"), b"{}").unwrap();

    assert_eq!(s.list("").unwrap(), ["a/x", "a/y", "b/x", "c"]);
    assert_eq!(s.list("a/").unwrap(), ["a/x", "a/y"]);
    assert_eq!(s.list("b").unwrap(), ["b/x"]);
    assert_eq!(s.list("zzz").unwrap(), Vec::<String>::new());
    assert_eq!(value(&s, "c", None).unwrap(), "v");
    assert_eq!(s.versions("c").unwrap().len(), 1);

    put(&s, "doomed", "v");
    s.delete("doomed").unwrap();
    assert!(!tmp.path().join(".trash-0123").exists(), "delete sweeps old trash");
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
    assert!(!tmp.path().join(encode_hex(b"p")).join("3.deleted").exists());
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
    for info in s.versions("churn").unwrap() {
        assert!(s.get("churn", Some(&info.version)).is_ok());
    }
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
