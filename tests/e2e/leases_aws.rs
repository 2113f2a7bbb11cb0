//! Dynamic AWS credentials from the `aws-creds` generator through the host,
//! against moto's IAM and STS: an `iam_user` credential exists in IAM after
//! issue and is gone (keys, policies, user) after revoke; STS credentials
//! come back with their expiry and a lease that only lapses.

use tresor_e2e::peers::{start_moto, Moto};
use tresor_e2e::*;

fn aws_mount(moto: &Moto) -> String {
    format!(
        r#"
[[mount]]
path = "aws"
plugin = "aws-creds"
config = {{ access_key_id = "AKIATRESORTEST0000", secret_access_key = "not-checked-by-moto", iam_endpoint = "http://127.0.0.1:{port}", sts_endpoint = "http://127.0.0.1:{port}" }}
grants = {{ network = ["127.0.0.1:{port}"], clock = true }}
[mount.roles.deploy]
default_ttl = "1h"
max_ttl = "12h"
credential_type = "iam_user"
policy_document = '{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}]}}'
[mount.roles.ops]
default_ttl = "1h"
max_ttl = "12h"
credential_type = "assumed_role"
role_arns = "arn:aws:iam::123456789012:role/ops"
"#,
        port = moto.port
    )
}

/// What moto's IAM says about `user`: its access key ids and inline policy
/// names, or `None` when the user does not exist (asked with boto3).
fn iam_user(moto: &Moto, user: &str) -> Option<(Vec<String>, Vec<String>)> {
    let script = format!(
        r#"
import boto3, json, sys
iam = boto3.client("iam", endpoint_url="http://127.0.0.1:{port}", region_name="us-east-1",
                   aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="x")
try:
    keys = [k["AccessKeyId"] for k in iam.list_access_keys(UserName="{user}")["AccessKeyMetadata"]]
    policies = iam.list_user_policies(UserName="{user}")["PolicyNames"]
    print(json.dumps([keys, policies]))
except iam.exceptions.NoSuchEntityException:
    print("null")
"#,
        port = moto.port
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3 with boto3 (installed with moto by ./tests/setup.sh)");
    assert!(out.status.success(), "boto3: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("boto3 answer")
}

fn field(issued: &tresor::lease::IssuedLease, name: &str) -> String {
    issued
        .data
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| String::from_utf8(v.expose().to_vec()).unwrap())
        .unwrap_or_else(|| panic!("no `{name}` in {issued:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_users_exist_until_revoked_and_sts_credentials_carry_their_expiry() {
    let moto = start_moto().await;
    let t = start(TEST_POLICIES, &aws_mount(&moto)).await;
    let admin = caller("deployer", &["admins"]);

    let issued = t.host.issue(&admin, "aws/deploy", None).await.expect("issue iam_user");
    let access_key = field(&issued, "access_key");
    let secret_key = field(&issued, "secret_key");
    let arn = field(&issued, "arn");
    let user = arn.rsplit('/').next().unwrap().to_string();
    assert!(user.starts_with("tresor-deployer-deploy-"), "{user}");
    assert!(issued.lease.revocable && issued.lease.renewable);
    let (keys, policies) = iam_user(&moto, &user).expect("the IAM user exists after issue");
    assert_eq!(keys, vec![access_key.clone()]);
    assert_eq!(policies.len(), 1, "{policies:?}");

    t.host.revoke(&admin, &issued.lease.id, true).await.expect("revoke");
    assert_eq!(iam_user(&moto, &user), None, "the IAM user is gone after revoke");

    let sts = t
        .host
        .issue(&admin, "aws/ops", Some(1800))
        .await
        .expect("issue assumed_role");
    let token = field(&sts, "security_token");
    assert_eq!(field(&sts, "session_token"), token);
    assert!(!field(&sts, "access_key").is_empty());
    assert!(
        field(&sts, "expiration").starts_with("20"),
        "{}",
        field(&sts, "expiration")
    );
    assert!(!sts.lease.revocable && !sts.lease.renewable);
    assert_eq!((sts.lease.expires_ms - sts.lease.issued_ms) / 1000, 1800);

    // No credential in the audit log or the state store.
    for file in files_under(t.dir.path()) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        for secret in [&secret_key, &token] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a credential is in {}",
                file.display()
            );
        }
    }
}
