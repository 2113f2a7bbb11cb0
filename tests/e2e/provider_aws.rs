//! The aws provider plugin (plugins/aws) against moto's AWS Secrets Manager:
//! the provider conformance suite, values and tags as AWS's own client sees
//! them, deletion with and without a recovery window, and the grants the
//! plugin needs.

use std::process::Command;

use tresor::{Error, SecretBytes, WriteOptions};
use tresor_e2e::peers::{start_moto, Moto};
use tresor_e2e::*;

/// A `[[mount]]` table for the aws plugin at `path`.
fn aws_mount(path: &str, config: &str, grants: &str) -> String {
    plugin_mount(AWS_WASM, path, config, grants)
}

/// The config pointing at `moto`, plus `extra` entries.
fn moto_config(moto: &Moto, extra: &str) -> String {
    let mut config = format!(
        r#"region = "us-east-1", endpoint = "{}", access_key_id = "AKIDEXAMPLE", secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY""#,
        moto.addr
    );
    if !extra.is_empty() {
        config.push_str(", ");
        config.push_str(extra);
    }
    config
}

fn moto_grants(moto: &Moto) -> String {
    format!(r#"clock = true, network = ["127.0.0.1:{}"]"#, moto.port)
}

fn admin() -> tresor::Caller {
    caller("root", &["admins"])
}

async fn write(t: &TestHost, path: &str, value: &[u8]) -> Result<String, Error> {
    t.host
        .write(
            &admin(),
            path,
            &SecretBytes::new(value.to_vec()),
            &WriteOptions::default(),
        )
        .await
}

async fn read(t: &TestHost, path: &str) -> Result<Vec<u8>, Error> {
    t.host
        .read(&admin(), path, None)
        .await
        .map(|s| s.value.expose().to_vec())
}

/// Runs a line of Python with boto3 (AWS's official client, installed with
/// moto) against `moto`; `c` is a Secrets Manager client. Returns stdout.
fn boto3(moto: &Moto, code: &str) -> String {
    let script = format!(
        "import boto3, json, sys\n\
         c = boto3.client('secretsmanager', endpoint_url='{}', region_name='us-east-1', \
         aws_access_key_id='AKIDEXAMPLE', aws_secret_access_key='x')\n{code}\n",
        moto.addr
    );
    let out = Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
        .args(["-c", &script])
        .output()
        .expect("run python3 with boto3 (installed with moto: ./tests/setup.sh)");
    assert!(
        out.status.success(),
        "boto3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_with_and_without_a_recovery_window() {
    let moto = start_moto().await;
    for extra in ["", r#"force_delete = "true""#] {
        moto.reset().await;
        let t = start(
            TEST_POLICIES,
            &aws_mount("aws", &moto_config(&moto, extra), &moto_grants(&moto)),
        )
        .await;
        let outcome = conformance::run(&t.host, "aws", &admin())
            .await
            .unwrap_or_else(|e| panic!("[{extra}] {e:#}\nmoto log:\n{}", moto.log_tail(3000)));
        assert_eq!(
            outcome.skipped.iter().map(|(check, _)| *check).collect::<Vec<_>>(),
            ["soft-delete"],
            "{outcome}"
        );
        println!("aws conformance [{extra}]: {outcome}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_and_tags_as_the_aws_client_sees_them() {
    let moto = start_moto().await;
    let t = start(
        TEST_POLICIES,
        &aws_mount("aws", &moto_config(&moto, ""), &moto_grants(&moto)),
    )
    .await;

    // Text is a SecretString, other bytes a SecretBinary.
    write(&t, "aws/app/db", b"s3cret text").await.unwrap();
    write(&t, "aws/app/key", &[0xff, 0x00, 0xfe]).await.unwrap();
    assert_eq!(
        boto3(&moto, "print(c.get_secret_value(SecretId='app/db')['SecretString'])"),
        "s3cret text"
    );
    assert_eq!(
        boto3(
            &moto,
            "print(c.get_secret_value(SecretId='app/key')['SecretBinary'].hex())"
        ),
        "ff00fe"
    );

    // A secret made by another client reads, by version id and by stage.
    let v1 = boto3(
        &moto,
        "print(c.create_secret(Name='legacy', SecretString='one')['VersionId'])",
    );
    let v2 = boto3(
        &moto,
        "print(c.put_secret_value(SecretId='legacy', SecretString='two')['VersionId'])",
    );
    let latest = t.host.read(&admin(), "aws/legacy", None).await.unwrap();
    assert_eq!(
        (latest.value.expose(), latest.version.as_str()),
        (&b"two"[..], v2.as_str())
    );
    let previous = t.host.read(&admin(), "aws/legacy", Some("AWSPREVIOUS")).await.unwrap();
    assert_eq!(
        (previous.value.expose(), previous.version.as_str()),
        (&b"one"[..], v1.as_str())
    );

    // Metadata is the secret's tags, replaced by each write.
    let tagged = |pairs: &[(&str, &str)]| WriteOptions {
        metadata: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        expected_version: None,
        inherit_metadata: false,
    };
    t.host
        .write(
            &admin(),
            "aws/app/db",
            &SecretBytes::from("v2"),
            &tagged(&[("owner", "team-a"), ("tier", "1")]),
        )
        .await
        .unwrap();
    let tags = "print(json.dumps(sorted((t['Key'], t['Value']) for t in c.describe_secret(SecretId='app/db').get('Tags', []))))";
    assert_eq!(boto3(&moto, tags), r#"[["owner", "team-a"], ["tier", "1"]]"#);
    t.host
        .write(
            &admin(),
            "aws/app/db",
            &SecretBytes::from("v3"),
            &tagged(&[("owner", "team-b")]),
        )
        .await
        .unwrap();
    assert_eq!(boto3(&moto, tags), r#"[["owner", "team-b"]]"#);
    let read = t.host.read(&admin(), "aws/app/db", None).await.unwrap();
    assert_eq!(read.metadata.get("owner").map(String::as_str), Some("team-b"));

    // AWS cannot hold an empty value: a clear refusal.
    match write(&t, "aws/app/empty", b"").await {
        Err(Error::InvalidInput(m)) => assert!(m.contains("empty"), "{m}"),
        other => panic!("expected invalid input, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_names_stay_reserved_unless_force_deleted() {
    let moto = start_moto().await;
    let mounts = [
        aws_mount("aws", &moto_config(&moto, ""), &moto_grants(&moto)),
        aws_mount(
            "awsforce",
            &moto_config(&moto, r#"force_delete = "true""#),
            &moto_grants(&moto),
        ),
    ]
    .concat();
    let t = start(TEST_POLICIES, &mounts).await;

    write(&t, "aws/kept", b"x").await.unwrap();
    t.host.delete(&admin(), "aws/kept").await.unwrap();
    assert!(matches!(read(&t, "aws/kept").await, Err(Error::NotFound(_))));
    match write(&t, "aws/kept", b"again").await {
        Err(Error::InvalidInput(m)) => assert!(m.contains("recovery window"), "{m}"),
        other => panic!("writing a name in its recovery window should explain why it fails, got {other:?}"),
    }
    // AWS still has it, scheduled for deletion.
    assert_eq!(
        boto3(
            &moto,
            "print(c.describe_secret(SecretId='kept').get('DeletedDate') is not None)"
        ),
        "True"
    );

    write(&t, "awsforce/gone", b"x").await.unwrap();
    t.host.delete(&admin(), "awsforce/gone").await.unwrap();
    write(&t, "awsforce/gone", b"again")
        .await
        .expect("a force-deleted name is free at once");
    assert_eq!(read(&t, "awsforce/gone").await.unwrap(), b"again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_and_config_are_checked() {
    // The clock: SigV4 needs the real time.
    let granted = r#"network = ["127.0.0.1:5000"]"#;
    let config =
        r#"region = "us-east-1", endpoint = "http://127.0.0.1:5000", access_key_id = "a", secret_access_key = "b""#;
    conformance::check_bad_config(&aws_mount("aws", config, granted), "aws", "clock = true")
        .await
        .unwrap();
    // Missing and malformed keys are named.
    let grants = r#"clock = true, network = ["127.0.0.1:5000"]"#;
    for (config, expected) in [
        (r#"access_key_id = "a", secret_access_key = "b""#, "`region`"),
        (r#"region = "us-east-1", secret_access_key = "b""#, "`access_key_id`"),
        (
            r#"region = "us-east-1", access_key_id = "a", secret_access_key = "b", endpoint = "127.0.0.1:5000""#,
            "`endpoint`",
        ),
        (
            r#"region = "us-east-1", access_key_id = "a", secret_access_key = "b", recovery_window_days = "1""#,
            "`recovery_window_days`",
        ),
    ] {
        conformance::check_bad_config(&aws_mount("aws", config, grants), "aws", expected)
            .await
            .unwrap_or_else(|e| panic!("{config}: {e:#}"));
    }

    // The network: without a grant for the endpoint, nothing is sent.
    let moto = start_moto().await;
    let t = start(
        TEST_POLICIES,
        &aws_mount("aws", &moto_config(&moto, ""), "clock = true"),
    )
    .await;
    match read(&t, "aws/x").await {
        Err(Error::InvalidInput(m)) => assert!(
            m.contains(&format!("does not grant network access to 127.0.0.1:{}", moto.port)),
            "{m}"
        ),
        other => panic!("expected the network grant to refuse, got {other:?}"),
    }
}
