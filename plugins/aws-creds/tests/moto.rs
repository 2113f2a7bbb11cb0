//! The aws-creds generator against a real `moto_server` (a local AWS with
//! IAM and STS), natively: the plugin's calls go through its `Transport`
//! trait over `ureq` instead of the host's `wasi:http`, and every request
//! is recorded, so the tests can check what the plugin asked AWS and in
//! which order, and what moto's IAM holds at each step.
//!
//! Needs `moto_server` on PATH (`./tests/setup.sh` installs it).

use std::cell::RefCell;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tresor_plugin_aws_creds::client::{Client, Service};
use tresor_plugin_aws_creds::settings::MountConfig;
use tresor_plugin_aws_creds::time::parse_iso8601_ms;
use tresor_plugin_aws_creds::transport::{HttpRequest, HttpResponse, Transport};
use tresor_plugin_aws_creds::AwsCreds;
use tresor_plugin_sdk::{Config, Credential, Error, Generator, IssueRequest, Role};
use zeroize::Zeroizing;

/// The mount's secret key in these tests; no error may show it.
const MOUNT_SECRET: &str = "mount-secret-key-never-shown-0123456789";
const POLICY: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;
const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}"#;

// ---------------------------------------------------------------------------
// moto

/// A running `moto_server` on a free loopback port; killed when dropped.
struct Moto {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Moto {
    fn start() -> Moto {
        let mut last = String::new();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let log = std::env::temp_dir().join(format!("tresor-aws-creds-moto-{port}.log"));
            let out = std::fs::File::create(&log).expect("create the moto log");
            let err = out.try_clone().expect("clone the log handle");
            let spawned = Command::new("moto_server")
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env_remove("AWS_ACCESS_KEY_ID")
                .env_remove("AWS_SECRET_ACCESS_KEY")
                .env_remove("AWS_SESSION_TOKEN")
                .env_remove("AWS_PROFILE")
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn();
            let child = match spawned {
                Ok(child) => child,
                Err(e) => panic!("starting `moto_server` failed ({e}): run ./tests/setup.sh to install moto"),
            };
            let mut moto = Moto {
                child,
                url: format!("http://127.0.0.1:{port}"),
                log,
            };
            let agent = agent();
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(30) {
                if let Ok(Some(status)) = moto.child.try_wait() {
                    last = format!("moto_server exited with {status}: {}", moto.log_tail());
                    break;
                }
                let ready = agent
                    .get(format!("{}/moto-api/", moto.url))
                    .call()
                    .is_ok_and(|r| r.status().as_u16() == 200);
                if ready {
                    return moto;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if last.is_empty() {
                last = format!("moto_server did not answer within 30 s: {}", moto.log_tail());
            }
        }
        panic!("could not start moto_server: {last}");
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text[text.len().saturating_sub(2000)..].to_owned()
    }

    fn mount_config(&self) -> Config {
        Config::new(vec![
            ("region".into(), "us-east-1".into()),
            ("access_key_id".into(), "AKIDTRESORTEST".into()),
            ("secret_access_key".into(), MOUNT_SECRET.into()),
            ("iam_endpoint".into(), self.url.clone()),
            ("sts_endpoint".into(), self.url.clone()),
            ("timeout_ms".into(), "10000".into()),
        ])
    }

    /// A client of the plugin's own kind, for the test to look into moto.
    fn inspector(&self) -> Client {
        let config = MountConfig::parse(&self.mount_config()).expect("mount config");
        Client::new(config, Box::new(Ureq(agent())))
    }

    /// A client signing with other credentials (an issued key).
    fn client_with(&self, access_key: &str, secret_key: &str, token: Option<&str>) -> Client {
        let mut pairs = vec![
            ("access_key_id".to_owned(), access_key.to_owned()),
            ("secret_access_key".to_owned(), secret_key.to_owned()),
            ("iam_endpoint".to_owned(), self.url.clone()),
            ("sts_endpoint".to_owned(), self.url.clone()),
        ];
        if let Some(token) = token {
            pairs.push(("session_token".to_owned(), token.to_owned()));
        }
        let config = MountConfig::parse(&Config::new(pairs)).expect("client config");
        Client::new(config, Box::new(Ureq(agent())))
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

// ---------------------------------------------------------------------------
// transports

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(15)))
        .build()
        .into()
}

/// The plugin's transport over a blocking native HTTP client.
struct Ureq(ureq::Agent);

impl Transport for Ureq {
    fn send(&mut self, request: &HttpRequest) -> Result<HttpResponse, Error> {
        let mut outgoing = self.0.post(&request.url);
        for (name, value) in &request.headers {
            outgoing = outgoing.header(name.as_str(), value.as_str());
        }
        match outgoing.send(&request.body[..]) {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let body = response
                    .body_mut()
                    .read_to_vec()
                    .map_err(|e| Error::unavailable(format!("reading the answer failed: {e}")))?;
                Ok(HttpResponse {
                    status,
                    body: Zeroizing::new(body),
                })
            }
            Err(e) => Err(Error::unavailable(format!("the request failed: {e}"))),
        }
    }
}

/// What moto's IAM held for the user when the plugin sent `DeleteUser`.
#[derive(Debug, Default, Clone, PartialEq)]
struct UserState {
    access_keys: usize,
    inline_policies: usize,
    attached_policies: usize,
    groups: usize,
}

/// One request the plugin sent: its action and form fields.
#[derive(Debug, Clone)]
struct Sent {
    action: String,
    fields: Vec<(String, String)>,
}

impl Sent {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Recording {
    sent: Vec<Sent>,
    at_delete_user: Vec<UserState>,
}

/// Forwards the plugin's requests to moto, records them, and before each
/// `DeleteUser` asks moto (with its own client) what the user still holds.
struct Recorder {
    inner: Ureq,
    inspector: Client,
    recording: Rc<RefCell<Recording>>,
}

impl Transport for Recorder {
    fn send(&mut self, request: &HttpRequest) -> Result<HttpResponse, Error> {
        let fields = parse_form(&String::from_utf8_lossy(&request.body));
        let action = fields
            .iter()
            .find(|(k, _)| k == "Action")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        if action == "DeleteUser" {
            let user = fields
                .iter()
                .find(|(k, _)| k == "UserName")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let state = user_state(&mut self.inspector, &user);
            self.recording.borrow_mut().at_delete_user.push(state);
        }
        self.recording.borrow_mut().sent.push(Sent { action, fields });
        self.inner.send(request)
    }
}

fn parse_form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Counts, from moto's raw XML, what `user` still holds.
fn user_state(inspector: &mut Client, user: &str) -> UserState {
    let mut count = |action: &str, needle: &str| -> usize {
        let answer = inspector
            .call(Service::Iam, action, &[("UserName", user)], true)
            .unwrap_or_else(|e| panic!("{action} for {user}: {:?}", e.into_error()));
        answer.text().matches(needle).count()
    };
    UserState {
        access_keys: count("ListAccessKeys", "<AccessKeyId>"),
        inline_policies: count("ListUserPolicies", "<member>"),
        attached_policies: count("ListAttachedUserPolicies", "<PolicyArn>"),
        groups: count("ListGroupsForUser", "<GroupName>"),
    }
}

// ---------------------------------------------------------------------------
// helpers

fn generator(moto: &Moto) -> (AwsCreds, Rc<RefCell<Recording>>) {
    let recording = Rc::new(RefCell::new(Recording::default()));
    let transport = Recorder {
        inner: Ureq(agent()),
        inspector: moto.inspector(),
        recording: recording.clone(),
    };
    let generator = AwsCreds::with_transport(moto.mount_config(), Box::new(transport)).expect("configure");
    (generator, recording)
}

fn role(name: &str, pairs: &[(&str, &str)]) -> Role {
    Role {
        name: name.into(),
        settings: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn request(role: Role, ttl_seconds: u64) -> IssueRequest {
    let now = now_ms();
    IssueRequest {
        role,
        ttl_seconds,
        now_ms: now,
        expires_at_ms: now + ttl_seconds * 1000,
        display_name: "alice".into(),
        issue_id: issue_id(),
    }
}

/// A fresh issue id as the host makes them: 24 letters and digits.
fn issue_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{:08}T{:015}", NEXT.fetch_add(1, Ordering::Relaxed), std::process::id())
}

fn field<'a>(credential: &'a Credential, name: &str) -> Option<&'a str> {
    credential.data.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Calls `action` on moto's IAM with the inspector; panics on failure.
fn iam(inspector: &mut Client, action: &str, params: &[(&str, &str)]) -> String {
    match inspector.call(Service::Iam, action, params, false) {
        Ok(answer) => answer.text().to_owned(),
        Err(e) => panic!("{action}: {:?}", e.into_error()),
    }
}

fn actions(recording: &Rc<RefCell<Recording>>) -> Vec<String> {
    recording.borrow().sent.iter().map(|s| s.action.clone()).collect()
}

// ---------------------------------------------------------------------------
// tests

#[test]
fn iam_user_is_created_with_its_grants_and_deleted_in_order() {
    let moto = Moto::start();
    let mut inspector = moto.inspector();
    let created = iam(
        &mut inspector,
        "CreatePolicy",
        &[("PolicyName", "s3-read"), ("PolicyDocument", POLICY)],
    );
    assert!(
        created.contains("arn:aws:iam::123456789012:policy/s3-read"),
        "{created}"
    );
    iam(&mut inspector, "CreateGroup", &[("GroupName", "devs")]);

    let (mut generator, recording) = generator(&moto);
    let deploy = role(
        "deploy",
        &[
            ("credential_type", "iam_user"),
            ("policy_document", POLICY),
            ("policy_arns", "arn:aws:iam::123456789012:policy/s3-read"),
            ("iam_groups", "devs"),
            ("user_path", "/tresor/"),
        ],
    );
    generator.check_role(&deploy).expect("check_role");

    let credential = generator.issue(request(deploy.clone(), 3600)).expect("issue");
    let user = credential.revoke_handle.clone();
    assert!(user.starts_with("tresor-alice-deploy-"), "{user}");
    assert!(user.len() <= 64, "{user}");
    assert_eq!(
        actions(&recording),
        [
            "CreateUser",
            "PutUserPolicy",
            "AttachUserPolicy",
            "AddUserToGroup",
            "CreateAccessKey"
        ]
    );
    let access_key = field(&credential, "access_key").expect("access_key").to_owned();
    let secret_key = field(&credential, "secret_key").expect("secret_key").to_owned();
    assert!(!secret_key.is_empty());
    assert_eq!(field(&credential, "security_token"), None);
    assert_eq!(
        field(&credential, "arn").map(str::to_owned),
        Some(format!("arn:aws:iam::123456789012:user/tresor/{user}"))
    );
    assert!(credential.revocable && credential.renewable);
    assert_eq!(credential.ttl_seconds, 3600);

    // moto's IAM holds the user, its policies, its group and the key.
    let got = iam(&mut inspector, "GetUser", &[("UserName", &user)]);
    assert!(got.contains("<Path>/tresor/</Path>"), "{got}");
    let inline = iam(&mut inspector, "ListUserPolicies", &[("UserName", &user)]);
    assert!(inline.contains("<member>tresor-deploy</member>"), "{inline}");
    let document = iam(
        &mut inspector,
        "GetUserPolicy",
        &[("UserName", &user), ("PolicyName", "tresor-deploy")],
    );
    // IAM answers the document URL-encoded (RFC 3986), as AWS documents.
    let encoded = document
        .split_once("<PolicyDocument>")
        .and_then(|(_, rest)| rest.split_once("</PolicyDocument>"))
        .map(|(doc, _)| doc)
        .unwrap_or_default();
    assert_eq!(percent_decode(encoded), POLICY, "{document}");
    let attached = iam(&mut inspector, "ListAttachedUserPolicies", &[("UserName", &user)]);
    assert!(
        attached.contains("<PolicyArn>arn:aws:iam::123456789012:policy/s3-read</PolicyArn>"),
        "{attached}"
    );
    let groups = iam(&mut inspector, "ListGroupsForUser", &[("UserName", &user)]);
    assert!(groups.contains("<GroupName>devs</GroupName>"), "{groups}");
    let keys = iam(&mut inspector, "ListAccessKeys", &[("UserName", &user)]);
    assert!(
        keys.contains(&format!("<AccessKeyId>{access_key}</AccessKeyId>")),
        "{keys}"
    );

    // The issued key is the user's: STS knows who signs with it.
    let mut as_user = moto.client_with(&access_key, &secret_key, None);
    let identity = as_user
        .call(Service::Sts, "GetCallerIdentity", &[], true)
        .map(|a| a.text().to_owned())
        .unwrap_or_else(|e| panic!("GetCallerIdentity: {:?}", e.into_error()));
    assert!(identity.contains(&format!("user/tresor/{user}")), "{identity}");

    assert_eq!(
        generator.renew(&deploy, &user, 7200, now_ms() + 7_200_000).ok(),
        Some(7200)
    );

    // Revoke: everything attached goes first, then the user.
    recording.borrow_mut().sent.clear();
    generator.revoke(&deploy, &user).expect("revoke");
    assert_eq!(
        actions(&recording),
        [
            "ListAccessKeys",
            "DeleteAccessKey",
            "ListUserPolicies",
            "DeleteUserPolicy",
            "ListAttachedUserPolicies",
            "DetachUserPolicy",
            "ListGroupsForUser",
            "RemoveUserFromGroup",
            "DeleteUser"
        ]
    );
    let sent = recording.borrow().sent.clone();
    assert_eq!(sent[1].field("AccessKeyId"), Some(access_key.as_str()));
    assert_eq!(sent[3].field("PolicyName"), Some("tresor-deploy"));
    assert_eq!(
        sent[5].field("PolicyArn"),
        Some("arn:aws:iam::123456789012:policy/s3-read")
    );
    assert_eq!(sent[7].field("GroupName"), Some("devs"));
    assert_eq!(
        recording.borrow().at_delete_user,
        [UserState::default()],
        "when DeleteUser was sent, moto still held something for the user"
    );
    let gone = inspector.call(Service::Iam, "GetUser", &[("UserName", &user)], false);
    assert!(matches!(gone, Err(ref e) if e.is_not_found()), "the user still exists");
    let policy = iam(
        &mut inspector,
        "GetPolicy",
        &[("PolicyArn", "arn:aws:iam::123456789012:policy/s3-read")],
    );
    assert!(policy.contains("<AttachmentCount>0</AttachmentCount>"), "{policy}");

    // Revoking again (the host retries) succeeds and stops at the first NoSuchEntity.
    recording.borrow_mut().sent.clear();
    generator.revoke(&deploy, &user).expect("second revoke");
    generator
        .revoke(&role("deploy", &[]), &user)
        .expect("revoke with the role removed");
    assert_eq!(actions(&recording), ["ListAccessKeys", "ListAccessKeys"]);
}

#[test]
fn abandon_deletes_the_user_an_unrecorded_issue_made() {
    let moto = Moto::start();
    let mut inspector = moto.inspector();
    let (mut generator, recording) = generator(&moto);
    let deploy = role(
        "deploy",
        &[("credential_type", "iam_user"), ("policy_document", POLICY)],
    );
    let req = request(deploy.clone(), 600);
    let user = generator.issue(req.clone()).expect("issue").revoke_handle;
    assert!(user.ends_with(&req.issue_id[..8]), "{user} is named after the issue id");
    iam(&mut inspector, "GetUser", &[("UserName", &user)]);

    // The host lost the lease: abandon with the same request deletes the
    // user, keys and inline policy first.
    recording.borrow_mut().sent.clear();
    generator.abandon(req.clone()).expect("abandon");
    assert_eq!(
        recording.borrow().at_delete_user,
        [UserState::default()],
        "when DeleteUser was sent, moto still held something for the user"
    );
    let gone = inspector.call(Service::Iam, "GetUser", &[("UserName", &user)], false);
    assert!(matches!(gone, Err(ref e) if e.is_not_found()), "the user still exists");
    // Again, and for an issue that created nothing: both succeed.
    generator.abandon(req).expect("abandon twice");
    generator.abandon(request(deploy, 600)).expect("abandon of nothing");
    // STS sessions cannot be undone and need nothing.
    let sts = role(
        "ci",
        &[("credential_type", "federation_token"), ("policy_document", POLICY)],
    );
    recording.borrow_mut().sent.clear();
    generator.abandon(request(sts, 900)).expect("abandon an STS issue");
    assert!(actions(&recording).is_empty(), "{:?}", actions(&recording));
}

#[test]
fn a_failed_issue_leaves_no_user_behind_and_no_secret_in_the_error() {
    let moto = Moto::start();
    let mut inspector = moto.inspector();
    let (mut generator, recording) = generator(&moto);

    // AttachUserPolicy fails (no such policy): the user made before it is deleted.
    let missing = role(
        "missing",
        &[
            ("credential_type", "iam_user"),
            ("policy_document", POLICY),
            ("policy_arns", "arn:aws:iam::123456789012:policy/does-not-exist"),
        ],
    );
    let e = generator.issue(request(missing, 600)).err();
    let message = e.as_ref().map(|e| e.message().to_owned()).unwrap_or_default();
    assert!(matches!(e, Some(Error::NotFound(_))), "{e:?}");
    assert!(
        message.starts_with("role `missing`: IAM AttachUserPolicy failed: AWS answered NoSuchEntity"),
        "{message}"
    );
    assert!(message.contains("was deleted"), "{message}");
    assert!(!message.contains(MOUNT_SECRET), "{message}");
    let sent = actions(&recording);
    assert_eq!(sent[..3], ["CreateUser", "PutUserPolicy", "AttachUserPolicy"]);
    assert_eq!(sent.last().map(String::as_str), Some("DeleteUser"));
    assert!(!sent.iter().any(|a| a == "CreateAccessKey"), "{sent:?}");
    let users = iam(&mut inspector, "ListUsers", &[]);
    assert!(!users.contains("tresor-"), "a half-made user was left: {users}");

    // A policy IAM refuses is invalid input, and nothing is left either.
    let malformed = role(
        "malformed",
        &[
            ("credential_type", "iam_user"),
            ("policy_document", r#"{"Statement":"nope"}"#),
        ],
    );
    let e = generator.issue(request(malformed, 600)).err();
    let refused = matches!(e, Some(Error::InvalidInput(ref m)) if m.contains("MalformedPolicyDocument"));
    assert!(refused, "{e:?}");
    assert!(!e
        .as_ref()
        .map(Error::message)
        .unwrap_or_default()
        .contains(MOUNT_SECRET));
    let users = iam(&mut inspector, "ListUsers", &[]);
    assert!(!users.contains("tresor-"), "a half-made user was left: {users}");

    // An unreachable endpoint is `unavailable`, naming the action.
    drop(moto);
    let e = generator
        .issue(request(
            role("deploy", &[("credential_type", "iam_user"), ("iam_groups", "devs")]),
            600,
        ))
        .err();
    assert!(
        matches!(e, Some(Error::Unavailable(ref m)) if m.contains("IAM CreateUser") && !m.contains(MOUNT_SECRET)),
        "{e:?}"
    );
}

#[test]
fn sts_credentials_come_with_both_tokens_and_a_future_expiration() {
    let moto = Moto::start();
    let mut inspector = moto.inspector();
    iam(
        &mut inspector,
        "CreateRole",
        &[("RoleName", "deploy"), ("AssumeRolePolicyDocument", TRUST)],
    );
    let (mut generator, recording) = generator(&moto);

    let assumed = role(
        "ops",
        &[
            ("credential_type", "assumed_role"),
            ("role_arns", "arn:aws:iam::123456789012:role/deploy"),
            ("policy_document", POLICY),
        ],
    );
    generator.check_role(&assumed).expect("check_role");
    let before = now_ms();
    let credential = generator.issue(request(assumed.clone(), 3600)).expect("AssumeRole");
    check_session(&credential, before, 3600, 3600);
    assert!(
        field(&credential, "arn")
            .is_some_and(|a| a.starts_with("arn:aws:sts::123456789012:assumed-role/deploy/tresor-alice-ops-")),
        "{:?}",
        field(&credential, "arn")
    );
    let sent = recording.borrow().sent.last().cloned().expect("a request");
    assert_eq!(sent.action, "AssumeRole");
    assert_eq!(sent.field("RoleArn"), Some("arn:aws:iam::123456789012:role/deploy"));
    assert_eq!(sent.field("DurationSeconds"), Some("3600"));
    assert_eq!(sent.field("Policy"), Some(POLICY));
    assert!(sent
        .field("RoleSessionName")
        .is_some_and(|n| n.starts_with("tresor-alice-ops-") && n.len() <= 64));

    // The temporary key works: STS knows it as the assumed role.
    let mut as_role = moto.client_with(
        field(&credential, "access_key").unwrap_or(""),
        field(&credential, "secret_key").unwrap_or(""),
        field(&credential, "session_token"),
    );
    let identity = as_role
        .call(Service::Sts, "GetCallerIdentity", &[], true)
        .map(|a| a.text().to_owned())
        .unwrap_or_else(|e| panic!("GetCallerIdentity: {:?}", e.into_error()));
    assert!(identity.contains("assumed-role/deploy/tresor-alice-ops-"), "{identity}");

    // Revoking is a no-op that succeeds, twice, without calling AWS.
    let calls = recording.borrow().sent.len();
    generator.revoke(&assumed, &credential.revoke_handle).expect("revoke");
    generator
        .revoke(&assumed, &credential.revoke_handle)
        .expect("revoke again");
    assert_eq!(recording.borrow().sent.len(), calls);
    assert!(matches!(
        generator.renew(&assumed, &credential.revoke_handle, 60, 0),
        Err(Error::Unsupported(_))
    ));

    // A TTL under AWS's minimum asks for 900 s; the lease keeps the TTL.
    let before = now_ms();
    let short = generator.issue(request(assumed.clone(), 60)).expect("short AssumeRole");
    check_session(&short, before, 60, 900);
    let sent = recording.borrow().sent.last().cloned().expect("a request");
    assert_eq!(sent.field("DurationSeconds"), Some("900"));

    // Federation tokens, with the role's policy; a long TTL is clamped to 36 h.
    let federated = role(
        "ci",
        &[("credential_type", "federation_token"), ("policy_document", POLICY)],
    );
    let before = now_ms();
    let credential = generator
        .issue(request(federated.clone(), 200_000))
        .expect("GetFederationToken");
    check_session(&credential, before, 129_600, 129_600);
    assert!(
        field(&credential, "arn")
            .is_some_and(|a| a.starts_with("arn:aws:sts::123456789012:federated-user/tresor-alice-ci-")),
        "{:?}",
        field(&credential, "arn")
    );
    let sent = recording.borrow().sent.last().cloned().expect("a request");
    assert_eq!(sent.action, "GetFederationToken");
    assert_eq!(sent.field("DurationSeconds"), Some("129600"));
    assert_eq!(sent.field("Policy"), Some(POLICY));
    assert!(sent
        .field("Name")
        .is_some_and(|n| n.starts_with("tresor-alice-ci-") && n.len() <= 32));
    generator.revoke(&federated, &credential.revoke_handle).expect("revoke");
    generator
        .revoke(&role("ci", &[]), &credential.revoke_handle)
        .expect("revoke again");
}

/// An STS credential: both token fields, an expiration `aws_seconds` after
/// `before_ms` (give or take the call), a lease of `lease_seconds`.
fn check_session(credential: &Credential, before_ms: u64, lease_seconds: u64, aws_seconds: u64) {
    let token = field(credential, "security_token").expect("security_token");
    assert!(!token.is_empty());
    assert_eq!(field(credential, "session_token"), Some(token));
    assert!(field(credential, "access_key").is_some_and(|k| !k.is_empty()));
    assert!(field(credential, "secret_key").is_some_and(|k| !k.is_empty()));
    let expiration = field(credential, "expiration").expect("expiration");
    let expires = parse_iso8601_ms(expiration).expect("ISO-8601 expiration");
    let after = now_ms();
    assert!(
        expires >= before_ms + aws_seconds * 1000 - 2000 && expires <= after + aws_seconds * 1000 + 2000,
        "expiration {expiration} is not {aws_seconds} s from now"
    );
    assert!(
        credential.ttl_seconds <= lease_seconds && credential.ttl_seconds + 5 >= lease_seconds,
        "ttl {} for a lease of {lease_seconds}",
        credential.ttl_seconds
    );
    assert!(!credential.revocable && !credential.renewable);
    assert!(
        credential.revoke_handle.starts_with("sts:"),
        "{}",
        credential.revoke_handle
    );
    assert!(!credential.revoke_handle.contains(token));
}
