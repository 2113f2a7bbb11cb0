//! The `tresor` binary's offline commands: `policy validate`, `policy test`
//! and `audit verify`, run as a user would run them.

use std::path::Path;
use std::process::{Command, Output};

use tresor::{Caller, Config, Host, Principal, SecretBytes, WriteOptions};

fn tresor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tresor"))
        .args(args)
        .output()
        .expect("run tresor")
}

fn repo_policies() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../policies")
        .display()
        .to_string()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn policy_validate_accepts_the_examples_and_refuses_broken_sets() {
    let ok = tresor(&["policy", "validate", &repo_policies()]);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(text(&ok).contains("3 policies"), "{}", text(&ok));

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.cedar"),
        "permit (principal, action, resource is Tresor::Secret) when { resource.colour == \"red\" };",
    )
    .unwrap();
    let bad = tresor(&["policy", "validate", dir.path().to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(
        text(&bad).contains("bad.cedar") && text(&bad).contains("colour"),
        "{}",
        text(&bad)
    );
}

#[test]
fn policy_test_answers_and_names_the_deciding_policies() {
    let p = repo_policies();
    let allow = tresor(&[
        "policy",
        "test",
        "--dir",
        &p,
        "--principal",
        "billing",
        "--group",
        "apps",
        "--action",
        "read",
        "--resource",
        "secret/apps/db",
    ]);
    assert!(allow.status.success(), "{}", text(&allow));
    assert!(
        text(&allow).starts_with("ALLOW") && text(&allow).contains("apps-read-apps"),
        "{}",
        text(&allow)
    );

    let deny = tresor(&[
        "policy",
        "test",
        "--dir",
        &p,
        "--principal",
        "billing",
        "--group",
        "apps",
        "--action",
        "read",
        "--resource",
        "secret/apps/db",
        "--tag",
        "classification=restricted",
    ]);
    assert_eq!(deny.status.code(), Some(1), "{}", text(&deny));
    assert!(
        text(&deny).starts_with("DENY") && text(&deny).contains("restricted-admins-only"),
        "{}",
        text(&deny)
    );

    let default = tresor(&[
        "policy",
        "test",
        "--dir",
        &p,
        "--principal",
        "stranger",
        "--action",
        "write",
        "--resource",
        "secret/x",
    ]);
    assert_eq!(default.status.code(), Some(1));
    assert!(text(&default).contains("default deny"), "{}", text(&default));
}

#[tokio::test]
async fn audit_verify_reports_the_first_tampered_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::dev(&dir.path().join("state"), Path::new(&repo_policies()));
    config.policy.reload_interval_ms = 0;
    let log = config.audit_log_path();
    {
        let host = Host::start(config).await.unwrap();
        let root = Caller::embedded(Principal {
            groups: vec!["admins".into()],
            ..Principal::new("root")
        });
        for i in 0..4 {
            host.write(
                &root,
                &format!("secret/k{i}"),
                &SecretBytes::from("v"),
                &WriteOptions::default(),
            )
            .await
            .unwrap();
        }
        let stranger = Caller::embedded(Principal::new("stranger"));
        host.read(&stranger, "secret/k0", None).await.unwrap_err();
    }
    let log_s = log.to_str().unwrap();
    let intact = tresor(&["audit", "verify", log_s]);
    assert!(intact.status.success(), "{}", text(&intact));
    assert!(text(&intact).contains("9 entries"), "{}", text(&intact));

    // Rewrite who did it in entry 3.
    let original = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<String> = original.lines().map(str::to_string).collect();
    assert!(lines[2].contains("\"root\""));
    lines[2] = lines[2].replace("\"root\"", "\"alice\"");
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let tampered = tresor(&["audit", "verify", log_s]);
    assert_eq!(tampered.status.code(), Some(1), "{}", text(&tampered));
    assert!(text(&tampered).contains("BROKEN at line 3"), "{}", text(&tampered));

    // Drop entry 5 instead.
    let mut lines: Vec<&str> = original.lines().collect();
    lines.remove(4);
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let removed = tresor(&["audit", "verify", log_s]);
    assert_eq!(removed.status.code(), Some(1));
    assert!(text(&removed).contains("BROKEN at line 5"), "{}", text(&removed));
}

#[tokio::test]
async fn audit_verify_detects_entries_cut_off_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::dev(&dir.path().join("state"), Path::new(&repo_policies()));
    config.policy.reload_interval_ms = 0;
    let log = config.audit_log_path();
    {
        let host = Host::start(config.clone()).await.unwrap();
        let root = Caller::embedded(Principal {
            groups: vec!["admins".into()],
            ..Principal::new("root")
        });
        for i in 0..3 {
            host.write(
                &root,
                &format!("secret/k{i}"),
                &SecretBytes::from("v"),
                &WriteOptions::default(),
            )
            .await
            .unwrap();
        }
    }
    let log_s = log.to_str().unwrap();
    let intact = tresor(&["audit", "verify", log_s]);
    assert!(intact.status.success(), "{}", text(&intact));
    assert!(
        text(&intact).contains("ok: 6 entries, chain intact; the signed checkpoint of")
            && text(&intact).contains("(entry 6) matches"),
        "{}",
        text(&intact)
    );
    let original = std::fs::read_to_string(&log).unwrap();

    // The last two entries removed: the chain alone is intact, the checkpoint is not reached.
    let lines: Vec<&str> = original.lines().collect();
    std::fs::write(&log, lines[..4].join("\n") + "\n").unwrap();
    let cut = tresor(&["audit", "verify", log_s]);
    assert_eq!(cut.status.code(), Some(1), "{}", text(&cut));
    assert!(
        text(&cut).contains("TRUNCATED: the log ends at entry 4, but its signed checkpoint of")
            && text(&cut).contains("names entry 6"),
        "{}",
        text(&cut)
    );
    // A host refuses to continue such a log.
    let refused = match Host::start(config.clone()).await {
        Ok(_) => panic!("a host continued a truncated audit log"),
        Err(e) => e.to_string(),
    };
    assert!(refused.contains("ends at entry 4, but its checkpoint"), "{refused}");

    // An emptied log.
    std::fs::write(&log, "").unwrap();
    let empty = tresor(&["audit", "verify", log_s]);
    assert_eq!(empty.status.code(), Some(1), "{}", text(&empty));
    assert!(
        text(&empty).contains("TRUNCATED: the log ends at entry 0"),
        "{}",
        text(&empty)
    );

    // A checkpoint edited to match: its signature fails.
    std::fs::write(&log, lines[..4].join("\n") + "\n").unwrap();
    let head = log.with_file_name("audit.log.head");
    let checkpoint = std::fs::read_to_string(&head).unwrap();
    std::fs::write(&head, checkpoint.replace("\"seq\":6", "\"seq\":4")).unwrap();
    let forged = tresor(&["audit", "verify", log_s]);
    assert_eq!(forged.status.code(), Some(1), "{}", text(&forged));
    assert!(text(&forged).contains("FORGED"), "{}", text(&forged));

    // Without a checkpoint, or without the key, nothing proves the end: exit 2.
    std::fs::write(&log, &original).unwrap();
    std::fs::remove_file(&head).unwrap();
    let missing = tresor(&["audit", "verify", log_s]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
    assert!(
        text(&missing).contains("UNVERIFIED: 6 entries, chain intact, but there is no checkpoint"),
        "{}",
        text(&missing)
    );
    let keyless = tresor(&["audit", "verify", log_s, "--key-file", "/nonexistent/master.key"]);
    assert_eq!(keyless.status.code(), Some(2), "{}", text(&keyless));
    assert!(text(&keyless).contains("without the master key"), "{}", text(&keyless));
}
