//! Vault's version settings (`max_versions`, `cas_required`,
//! `delete_version_after`, per secret and per mount) driven by the `bao`
//! CLI: one script runs against OpenBao and against Tresor, and the two
//! servers' answers are compared step by step (timestamps reduced to
//! whether they are set, and the gaps between them checked separately).

use std::time::Duration;

use serde_json::{json, Value};
use tresor_e2e::peers::start_openbao;
use tresor_e2e::server::*;
use tresor_e2e::*;

/// One step of the script: `bao` arguments, or a pause.
enum Step {
    Bao(&'static [&'static str]),
    Sleep(Duration),
}

use Step::*;

/// What a step answered, reduced to what both servers must agree on.
#[derive(Debug, PartialEq)]
struct Answer {
    ok: bool,
    data: Value,
}

const SCRIPT: &[Step] = &[
    // Per-secret settings: three versions kept, check-and-set required,
    // versions deleted an hour after they were written.
    Bao(&["kv", "put", "secret/s", "x=1"]),
    Bao(&[
        "kv",
        "metadata",
        "put",
        "-max-versions=3",
        "-cas-required",
        "-delete-version-after=1h",
        "secret/s",
    ]),
    Bao(&["kv", "put", "secret/s", "x=2"]),
    Bao(&["kv", "put", "-cas=1", "secret/s", "x=2"]),
    Bao(&["kv", "put", "-cas=2", "secret/s", "x=3"]),
    Bao(&["kv", "put", "-cas=3", "secret/s", "x=4"]),
    Bao(&["kv", "put", "-cas=4", "secret/s", "x=5"]),
    Bao(&["kv", "metadata", "get", "secret/s"]),
    Bao(&["kv", "get", "-version=1", "secret/s"]),
    Bao(&["kv", "get", "-version=3", "secret/s"]),
    // A soft-deleted latest version answers with its metadata.
    Bao(&["kv", "delete", "secret/s"]),
    Bao(&["kv", "get", "secret/s"]),
    Bao(&["kv", "undelete", "-versions=5", "secret/s"]),
    Bao(&["kv", "get", "secret/s"]),
    // Turning check-and-set off again.
    Bao(&["kv", "metadata", "put", "-cas-required=false", "secret/s"]),
    Bao(&["kv", "put", "secret/s", "x=6"]),
    // A version whose delete_version_after passed reads as deleted.
    Bao(&["kv", "metadata", "put", "-delete-version-after=2s", "secret/t"]),
    Bao(&["kv", "metadata", "get", "secret/t"]),
    Bao(&["kv", "put", "secret/t", "x=1"]),
    Bao(&["kv", "get", "secret/t"]),
    Sleep(Duration::from_millis(2600)),
    Bao(&["kv", "get", "secret/t"]),
    Bao(&["kv", "metadata", "get", "secret/t"]),
    // The mount's settings: the defaults of every secret.
    Bao(&["read", "secret/config"]),
    Bao(&[
        "write",
        "secret/config",
        "max_versions=2",
        "delete_version_after=10m",
        "cas_required=false",
    ]),
    Bao(&["read", "secret/config"]),
    Bao(&["kv", "put", "secret/u", "x=1"]),
    Bao(&["kv", "put", "secret/u", "x=2"]),
    Bao(&["kv", "put", "secret/u", "x=3"]),
    Bao(&["kv", "metadata", "get", "secret/u"]),
    // The larger of the secret's and the mount's max_versions wins.
    Bao(&["kv", "metadata", "put", "-max-versions=1", "secret/v"]),
    Bao(&["kv", "put", "secret/v", "x=1"]),
    Bao(&["kv", "put", "secret/v", "x=2"]),
    Bao(&["kv", "put", "secret/v", "x=3"]),
    Bao(&["kv", "metadata", "get", "secret/v"]),
    // Malformed settings are refused.
    Bao(&["kv", "metadata", "put", "-delete-version-after=banana", "secret/s"]),
    Bao(&["write", "secret/config", "max_versions=lots"]),
    Bao(&["kv", "metadata", "get", "secret/never-written"]),
];

/// Timestamps become `"set"` or `""`; ids and lease fields go.
fn reduce(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "current_metadata_version" | "metadata_cas_required"))
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        ("created_time" | "deletion_time" | "updated_time", Value::String(s)) => {
                            json!(if s.is_empty() { "" } else { "set" })
                        }
                        _ => reduce(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(reduce).collect()),
        other => other.clone(),
    }
}

/// What Tresor answers differently, on purpose (the README's "where
/// Tresor differs" lists both): a write's answer leaves `deletion_time`
/// empty (metadata and reads show it), and the metadata of a secret that
/// has settings but no version yet has no `created_time`/`updated_time`.
fn known_differences(args: &[&str], answer: &mut Answer) {
    let Value::Object(data) = &mut answer.data else { return };
    if args.starts_with(&["kv", "put"]) {
        data.remove("deletion_time");
    }
    if args.starts_with(&["kv", "metadata", "get"]) && data.get("current_version") == Some(&json!(0)) {
        data.remove("created_time");
        data.remove("updated_time");
    }
}

/// Runs the script against one server: each step's answer, and every
/// metadata answer in full (for the time checks).
async fn run(url: &str, token: &str) -> (Vec<Answer>, Vec<Value>) {
    let mut answers = Vec::new();
    let mut metadata = Vec::new();
    for step in SCRIPT {
        match step {
            Sleep(d) => tokio::time::sleep(*d).await,
            Bao(args) => {
                let out = bao(url, token, args).await;
                let text = String::from_utf8_lossy(&out.stdout);
                let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let data = parsed.get("data").cloned().unwrap_or(Value::Null);
                if args.starts_with(&["kv", "metadata", "get"]) && out.status.success() {
                    metadata.push(data.clone());
                }
                let mut answer = Answer {
                    ok: out.status.success(),
                    data: reduce(&data),
                };
                known_differences(args, &mut answer);
                answers.push(answer);
            }
        }
    }
    (answers, metadata)
}

fn rfc3339_ms(text: &str) -> i64 {
    let t = text.trim_end_matches('Z');
    let (date, time) = t.split_once('T').expect("an RFC 3339 time");
    let mut d = date.split('-').map(|p| p.parse::<i64>().unwrap());
    let (y, m, day) = (d.next().unwrap(), d.next().unwrap(), d.next().unwrap());
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut h = hms.split(':').map(|p| p.parse::<i64>().unwrap());
    let (hh, mm, ss) = (h.next().unwrap(), h.next().unwrap(), h.next().unwrap());
    let ms: i64 = format!("{:0<3}", &frac[..frac.len().min(3)]).parse().unwrap();
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1000) + ms
}

/// Every version's deletion time is its creation time plus `after_ms`.
fn assert_deletion_after(metadata: &Value, after_ms: i64, server: &str) {
    let versions = metadata["versions"].as_object().expect("versions");
    assert!(!versions.is_empty(), "{server}: no versions in {metadata}");
    for (n, v) in versions {
        let created = rfc3339_ms(v["created_time"].as_str().unwrap());
        let deletion = rfc3339_ms(v["deletion_time"].as_str().unwrap());
        assert!(
            (deletion - created - after_ms).abs() <= 1,
            "{server}: version {n} is deleted {} ms after it was written, not {after_ms}: {v}",
            deletion - created
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bao_kv_version_settings_behave_as_against_openbao() {
    let openbao = start_openbao().await;
    let tresor = start_server(TEST_POLICIES).await;
    let (expected, bao_meta) = run(&openbao.addr, &openbao.token).await;
    let (got, tresor_meta) = run(tresor.url(), &tresor.root_token).await;

    // The script exercised what it means to: OpenBao's own answers.
    assert!(!expected[2].ok, "OpenBao let a blind write through cas_required");
    assert_eq!(expected[7].data["oldest_version"], 3, "{:?}", expected[7]);
    assert!(!expected[8].ok, "version 1 should have been removed");

    let mut differences = Vec::new();
    let mut step = 0;
    for s in SCRIPT {
        if let Bao(args) = s {
            if expected[step] != got[step] {
                differences.push(format!(
                    "step {step} `bao {}`:\n  OpenBao: {:?}\n  Tresor:  {:?}",
                    args.join(" "),
                    expected[step],
                    got[step]
                ));
            }
            step += 1;
        }
    }
    assert!(differences.is_empty(), "answers differ:\n{}", differences.join("\n"));

    // Metadata reads: s (1 h), t (2 s), u (the mount's 10 m), v.
    for (server, meta) in [("OpenBao", &bao_meta), ("Tresor", &tresor_meta)] {
        assert_eq!(meta.len(), 5, "{server}: metadata answers {meta:?}");
        assert_deletion_after(&meta[0], 3_600_000, server);
        assert_deletion_after(&meta[2], 2_000, server);
        assert_deletion_after(&meta[3], 600_000, server);
    }
}
