//! The mount's configuration and the roles' settings, checked before any
//! call to AWS: unknown keys are refused by name, so a typo fails when the
//! mount starts rather than when a credential is first asked for.
//!
//! Error messages name keys, never values: `secret_access_key` and
//! `session_token` are credentials.

use std::time::Duration;

use tresor_plugin_sdk::{did_you_mean, Config, Error, Role};
use zeroize::Zeroizing;

/// The mount configuration keys this plugin reads.
pub const MOUNT_KEYS: &[&str] = &[
    "region",
    "access_key_id",
    "secret_access_key",
    "session_token",
    "iam_endpoint",
    "sts_endpoint",
    "timeout_ms",
];

/// The region used when the mount sets none.
pub const DEFAULT_REGION: &str = "us-east-1";
/// IAM's global endpoint.
pub const DEFAULT_IAM_ENDPOINT: &str = "https://iam.amazonaws.com";

/// What the mount's configuration says: where IAM and STS are, and the
/// credentials the plugin calls them with.
pub struct MountConfig {
    /// The region STS requests are signed for (and the default STS endpoint's).
    pub region: String,
    /// The mount's access key id (not secret).
    pub access_key_id: String,
    /// The mount's secret access key.
    pub secret_access_key: Zeroizing<String>,
    /// The mount's session token, when its credentials are temporary.
    pub session_token: Option<Zeroizing<String>>,
    /// IAM's endpoint, `https://iam.amazonaws.com` or a stand-in such as moto.
    pub iam_endpoint: String,
    /// STS's endpoint, `https://sts.<region>.amazonaws.com` by default.
    pub sts_endpoint: String,
    /// The connect and first-byte timeout of each request.
    pub timeout: Duration,
}

/// Never prints the credentials.
impl std::fmt::Debug for MountConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MountConfig")
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("iam_endpoint", &self.iam_endpoint)
            .field("sts_endpoint", &self.sts_endpoint)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl MountConfig {
    /// Reads and checks the mount's configuration. Unknown keys, a missing
    /// access key, a malformed region, endpoint or timeout are refused with
    /// `invalid-input` naming the key.
    pub fn parse(config: &Config) -> Result<MountConfig, Error> {
        config.check_keys(MOUNT_KEYS)?;
        let region = config.get("region").map_or(DEFAULT_REGION, str::trim).to_owned();
        if region.is_empty() || !region.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(Error::invalid_input(
                "config key `region` must be an AWS region such as `us-east-1`: fix it in the mount's config",
            ));
        }
        let access_key_id = config.require("access_key_id")?.trim().to_owned();
        let secret_access_key = Zeroizing::new(config.require("secret_access_key")?.to_owned());
        if access_key_id.is_empty() || secret_access_key.is_empty() {
            return Err(Error::invalid_input(
                "config keys `access_key_id` and `secret_access_key` must not be empty: fix them in the mount's config",
            ));
        }
        let session_token = config
            .get("session_token")
            .filter(|t| !t.is_empty())
            .map(|t| Zeroizing::new(t.to_owned()));
        let iam_endpoint = endpoint(config, "iam_endpoint", DEFAULT_IAM_ENDPOINT)?;
        let sts_endpoint = endpoint(config, "sts_endpoint", &format!("https://sts.{region}.amazonaws.com"))?;
        let timeout_ms = config.parse::<u64>("timeout_ms", "a whole number of milliseconds")?;
        if timeout_ms == Some(0) {
            return Err(Error::invalid_input(
                "config key `timeout_ms` must be positive: fix it in the mount's config",
            ));
        }
        Ok(MountConfig {
            region,
            access_key_id,
            secret_access_key,
            session_token,
            iam_endpoint,
            sts_endpoint,
            timeout: timeout_ms.map_or(tresor_plugin_sdk::http::DEFAULT_TIMEOUT, Duration::from_millis),
        })
    }
}

/// An `http(s)://host[:port]` endpoint from `key`, without a trailing `/`.
fn endpoint(config: &Config, key: &str, default: &str) -> Result<String, Error> {
    let url = config
        .get(key)
        .map_or(default, str::trim)
        .trim_end_matches('/')
        .to_owned();
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    if rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/') && !r.contains(['?', '#', '@', ' '])) {
        Ok(url)
    } else {
        Err(Error::invalid_input(format!(
            "config key `{key}` must be an http(s) URL such as `{default}` (or `http://127.0.0.1:5000` for moto): \
             fix it in the mount's config"
        )))
    }
}

/// The kind of AWS credential a role issues (`credential_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialType {
    /// A new IAM user with an access key, deleted on revocation.
    IamUser,
    /// STS `AssumeRole`: temporary credentials of an existing IAM role.
    AssumedRole,
    /// STS `GetFederationToken`: temporary credentials of a federated user.
    FederationToken,
}

impl CredentialType {
    /// The `credential_type` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialType::IamUser => "iam_user",
            CredentialType::AssumedRole => "assumed_role",
            CredentialType::FederationToken => "federation_token",
        }
    }

    /// The role settings that make sense for this type, `credential_type` included.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            CredentialType::IamUser => &[
                "credential_type",
                "policy_document",
                "policy_arns",
                "iam_groups",
                "user_path",
                "permissions_boundary_arn",
            ],
            CredentialType::AssumedRole => &["credential_type", "role_arns", "policy_document", "policy_arns"],
            CredentialType::FederationToken => &["credential_type", "policy_document", "policy_arns"],
        }
    }
}

/// A role's settings, checked: what to create when a credential is issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleSpec {
    /// The role's name (for naming the credential upstream).
    pub name: String,
    /// What kind of credential to issue.
    pub credential_type: CredentialType,
    /// An inline policy (JSON): the user's inline policy (`iam_user`) or the
    /// session policy (`assumed_role`, `federation_token`).
    pub policy_document: Option<String>,
    /// Managed policy ARNs: attached to the user, or session policies.
    pub policy_arns: Vec<String>,
    /// IAM groups the user joins (`iam_user`).
    pub iam_groups: Vec<String>,
    /// The user's IAM path (`iam_user`), `/` when unset.
    pub user_path: Option<String>,
    /// The permissions boundary of the user (`iam_user`).
    pub permissions_boundary_arn: Option<String>,
    /// The IAM role to assume (`assumed_role`).
    pub role_arn: Option<String>,
}

impl RoleSpec {
    /// Reads and checks a role's settings: `credential_type` is required;
    /// settings unknown or foreign to that type are refused by name; policy
    /// documents must be JSON objects, ARNs must look like ARNs, and each
    /// type needs something to grant (see the crate docs).
    pub fn parse(role: &Role) -> Result<RoleSpec, Error> {
        let name = role.name.as_str();
        let settings = role.config();
        let bad = |why: String| Error::invalid_input(format!("role `{name}`: {why}: fix it in the mount's roles"));
        let credential_type = match settings.get("credential_type").map(str::trim) {
            Some("iam_user") => CredentialType::IamUser,
            Some("assumed_role") => CredentialType::AssumedRole,
            Some("federation_token") => CredentialType::FederationToken,
            Some(_) => {
                return Err(bad(
                    "setting `credential_type` must be `iam_user`, `assumed_role` or `federation_token`".into(),
                ))
            }
            None => {
                return Err(bad(
                    "missing setting `credential_type` (`iam_user`, `assumed_role` or `federation_token`)".into(),
                ))
            }
        };
        let keys = credential_type.keys();
        if let Some((key, _)) = settings.iter().find(|(key, _)| !keys.contains(key)) {
            let all = [
                CredentialType::IamUser,
                CredentialType::AssumedRole,
                CredentialType::FederationToken,
            ];
            let why = if all.iter().any(|t| t.keys().contains(&key)) {
                format!(
                    "setting `{key}` does not apply to credential_type `{}`",
                    credential_type.as_str()
                )
            } else {
                format!("unknown setting `{key}`{}", did_you_mean(key, keys))
            };
            return Err(bad(format!(
                "{why}; the settings of credential_type `{}` are {}",
                credential_type.as_str(),
                list(keys)
            )));
        }

        let policy_document = match settings.get("policy_document").map(str::trim) {
            None => None,
            Some(doc) => match serde_json::from_str::<serde_json::Value>(doc) {
                Ok(serde_json::Value::Object(_)) => Some(doc.to_owned()),
                _ => {
                    return Err(bad("setting `policy_document` must be an IAM policy as a JSON object \
                         ({\"Version\": \"2012-10-17\", \"Statement\": [...]})"
                        .into()))
                }
            },
        };
        let policy_arns = split_list(settings.get("policy_arns"));
        if let Some(i) = policy_arns.iter().position(|arn| !is_arn(arn, ":policy/")) {
            return Err(bad(format!(
                "entry {} of setting `policy_arns` is not a policy ARN (`arn:aws:iam::123456789012:policy/name`)",
                i + 1
            )));
        }
        let iam_groups = split_list(settings.get("iam_groups"));
        if let Some(i) = iam_groups.iter().position(|g| !is_iam_name(g, 128)) {
            return Err(bad(format!(
                "entry {} of setting `iam_groups` is not an IAM group name \
                 (at most 128 letters, digits and `+=,.@_-`)",
                i + 1
            )));
        }
        let user_path = settings.get("user_path").map(|p| p.trim().to_owned());
        if let Some(path) = &user_path {
            let ok = path.len() <= 512
                && path.starts_with('/')
                && path.ends_with('/')
                && path.bytes().all(|b| (0x21..=0x7e).contains(&b));
            if !ok {
                return Err(bad("setting `user_path` must start and end with `/` (`/tresor/`), \
                     at most 512 printable ASCII characters"
                    .into()));
            }
        }
        let permissions_boundary_arn = settings.get("permissions_boundary_arn").map(|a| a.trim().to_owned());
        if permissions_boundary_arn
            .as_deref()
            .is_some_and(|arn| !is_arn(arn, ":policy/"))
        {
            return Err(bad(
                "setting `permissions_boundary_arn` is not a policy ARN (`arn:aws:iam::123456789012:policy/name`)"
                    .into(),
            ));
        }
        let role_arns = split_list(settings.get("role_arns"));
        if role_arns.len() > 1 {
            return Err(bad(
                "setting `role_arns` must hold exactly one role ARN; make one Tresor role per AWS role".into(),
            ));
        }
        let role_arn = role_arns.into_iter().next();
        if role_arn.as_deref().is_some_and(|arn| !is_arn(arn, ":role/")) {
            return Err(bad(
                "setting `role_arns` is not an IAM role ARN (`arn:aws:iam::123456789012:role/name`)".into(),
            ));
        }

        match credential_type {
            CredentialType::IamUser => {
                if policy_document.is_none() && policy_arns.is_empty() && iam_groups.is_empty() {
                    return Err(bad(
                        "credential_type `iam_user` needs at least one of `policy_document`, `policy_arns` \
                         or `iam_groups`, or the user could do nothing"
                            .into(),
                    ));
                }
            }
            CredentialType::AssumedRole => {
                if role_arn.is_none() {
                    return Err(bad(
                        "credential_type `assumed_role` needs setting `role_arns` (the ARN of the role to assume)"
                            .into(),
                    ));
                }
            }
            CredentialType::FederationToken => {
                if policy_document.is_none() && policy_arns.is_empty() {
                    return Err(bad(
                        "credential_type `federation_token` needs `policy_document` or `policy_arns`: \
                         without a policy AWS grants a federation token no permissions"
                            .into(),
                    ));
                }
            }
        }
        Ok(RoleSpec {
            name: name.to_owned(),
            credential_type,
            policy_document,
            policy_arns,
            iam_groups,
            user_path,
            permissions_boundary_arn,
            role_arn,
        })
    }
}

/// The non-empty, trimmed entries of a comma-separated list.
fn split_list(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// True for `arn:<partition>:iam::<account>:<kind>...` with a name after `kind`.
fn is_arn(arn: &str, kind: &str) -> bool {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(_account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let kind = kind.trim_start_matches(':');
    !partition.is_empty()
        && resource.strip_prefix(kind).is_some_and(|rest| !rest.is_empty())
        && !arn.contains(char::is_whitespace)
}

/// True for an IAM entity name: 1 to `max` of `A-Z a-z 0-9 + = , . @ _ -`.
pub fn is_iam_name(name: &str, max: usize) -> bool {
    !name.is_empty() && name.len() <= max && name.bytes().all(is_iam_name_byte)
}

/// The characters IAM allows in user, group and session names.
pub fn is_iam_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'=' | b',' | b'.' | b'@' | b'_' | b'-')
}

/// `` `a`, `b` and `c` ``.
fn list(keys: &[&str]) -> String {
    let quoted: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => quoted.concat(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Config {
        Config::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn role(pairs: &[(&str, &str)]) -> Role {
        Role {
            name: "deploy".into(),
            settings: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    fn message(e: Result<impl std::fmt::Debug, Error>) -> String {
        match e {
            Err(Error::InvalidInput(m)) => m,
            other => panic!("expected invalid-input, got {other:?}"),
        }
    }

    const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;

    #[test]
    fn mount_defaults_and_endpoints() {
        let c = MountConfig::parse(&config(&[("access_key_id", "AKID"), ("secret_access_key", "sk")]))
            .expect("minimal config");
        assert_eq!(c.region, "us-east-1");
        assert_eq!(c.iam_endpoint, "https://iam.amazonaws.com");
        assert_eq!(c.sts_endpoint, "https://sts.us-east-1.amazonaws.com");
        assert_eq!(c.timeout, tresor_plugin_sdk::http::DEFAULT_TIMEOUT);
        assert!(c.session_token.is_none());

        let c = MountConfig::parse(&config(&[
            ("region", "eu-west-1"),
            ("access_key_id", "AKID"),
            ("secret_access_key", "sk"),
            ("session_token", "tok"),
            ("iam_endpoint", "http://127.0.0.1:5000/"),
            ("timeout_ms", "1500"),
        ]))
        .expect("full config");
        assert_eq!(c.iam_endpoint, "http://127.0.0.1:5000");
        assert_eq!(c.sts_endpoint, "https://sts.eu-west-1.amazonaws.com");
        assert_eq!(c.timeout, Duration::from_millis(1500));
        assert_eq!(c.session_token.as_deref().map(String::as_str), Some("tok"));
    }

    #[test]
    fn mount_refuses_unknown_keys_by_name() {
        let m = message(MountConfig::parse(&config(&[
            ("access_key_id", "AKID"),
            ("secret_access_key", "sk"),
            ("endpoint", "http://x"),
        ])));
        assert!(m.contains("unknown config key `endpoint`"), "{m}");
        assert!(m.contains("`iam_endpoint`"), "{m}");
    }

    #[test]
    fn mount_errors_never_show_the_secret() {
        let secret = "wJalrXUtnFEMI-not-shown";
        for pairs in [
            vec![("secret_access_key", secret)],
            vec![("access_key_id", ""), ("secret_access_key", secret)],
            vec![
                ("access_key_id", "A"),
                ("secret_access_key", secret),
                ("region", "eu west"),
            ],
            vec![
                ("access_key_id", "A"),
                ("secret_access_key", secret),
                ("sts_endpoint", "ftp://x"),
            ],
            vec![
                ("access_key_id", "A"),
                ("secret_access_key", secret),
                ("timeout_ms", "soon"),
            ],
            vec![
                ("access_key_id", "A"),
                ("secret_access_key", secret),
                ("timeout_ms", "0"),
            ],
        ] {
            let m = message(MountConfig::parse(&config(&pairs)));
            assert!(!m.contains(secret), "{m}");
            assert!(m.contains("mount's config"), "{m}");
        }
        let c = MountConfig::parse(&config(&[("access_key_id", "A"), ("secret_access_key", secret)]));
        assert!(!format!("{c:?}").contains(secret));
    }

    #[test]
    fn iam_user_role_parses() {
        let spec = RoleSpec::parse(&role(&[
            ("credential_type", "iam_user"),
            ("policy_document", POLICY),
            (
                "policy_arns",
                "arn:aws:iam::aws:policy/ReadOnlyAccess, arn:aws:iam::123456789012:policy/x",
            ),
            ("iam_groups", "devs,ops"),
            ("user_path", "/tresor/"),
            ("permissions_boundary_arn", "arn:aws:iam::123456789012:policy/boundary"),
        ]))
        .expect("valid iam_user role");
        assert_eq!(spec.credential_type, CredentialType::IamUser);
        assert_eq!(spec.policy_arns.len(), 2);
        assert_eq!(spec.policy_arns[0], "arn:aws:iam::aws:policy/ReadOnlyAccess");
        assert_eq!(spec.iam_groups, ["devs", "ops"]);
        assert_eq!(spec.user_path.as_deref(), Some("/tresor/"));
        assert_eq!(spec.policy_document.as_deref(), Some(POLICY));
    }

    #[test]
    fn roles_refuse_unknown_and_foreign_settings_by_name() {
        let m = message(RoleSpec::parse(&role(&[
            ("credential_type", "iam_user"),
            ("policy_documnet", POLICY),
        ])));
        assert!(m.contains("role `deploy`: unknown setting `policy_documnet`"), "{m}");
        let m = message(RoleSpec::parse(&role(&[
            ("credential_type", "assumed_role"),
            ("role_arns", "arn:aws:iam::123456789012:role/deploy"),
            ("iam_groups", "devs"),
        ])));
        assert!(
            m.contains("setting `iam_groups` does not apply to credential_type `assumed_role`"),
            "{m}"
        );
        let m = message(RoleSpec::parse(&role(&[("policy_document", POLICY)])));
        assert!(m.contains("missing setting `credential_type`"), "{m}");
        let m = message(RoleSpec::parse(&role(&[("credential_type", "root")])));
        assert!(m.contains("`credential_type` must be"), "{m}");
    }

    #[test]
    fn roles_need_something_to_grant() {
        let m = message(RoleSpec::parse(&role(&[("credential_type", "iam_user")])));
        assert!(m.contains("at least one of `policy_document`"), "{m}");
        let m = message(RoleSpec::parse(&role(&[("credential_type", "assumed_role")])));
        assert!(m.contains("needs setting `role_arns`"), "{m}");
        let m = message(RoleSpec::parse(&role(&[("credential_type", "federation_token")])));
        assert!(m.contains("needs `policy_document` or `policy_arns`"), "{m}");
        assert!(RoleSpec::parse(&role(&[
            ("credential_type", "federation_token"),
            ("policy_arns", "arn:aws:iam::aws:policy/ReadOnlyAccess"),
        ]))
        .is_ok());
        let spec = RoleSpec::parse(&role(&[
            ("credential_type", "assumed_role"),
            ("role_arns", " arn:aws:iam::123456789012:role/path/deploy "),
        ]))
        .expect("valid assumed_role");
        assert_eq!(
            spec.role_arn.as_deref(),
            Some("arn:aws:iam::123456789012:role/path/deploy")
        );
    }

    #[test]
    fn roles_check_values() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("credential_type", "iam_user"), ("policy_document", "{not json")],
                "`policy_document`",
            ),
            (
                &[("credential_type", "iam_user"), ("policy_document", "[1]")],
                "`policy_document`",
            ),
            (
                &[("credential_type", "iam_user"), ("policy_arns", "ReadOnlyAccess")],
                "entry 1 of setting `policy_arns`",
            ),
            (
                &[
                    ("credential_type", "iam_user"),
                    ("policy_arns", "arn:aws:iam::1:policy/a,arn:aws:iam::1:role/b"),
                ],
                "entry 2 of setting `policy_arns`",
            ),
            (
                &[("credential_type", "iam_user"), ("iam_groups", "dev ops")],
                "`iam_groups`",
            ),
            (
                &[
                    ("credential_type", "iam_user"),
                    ("iam_groups", "g"),
                    ("user_path", "tresor"),
                ],
                "`user_path`",
            ),
            (
                &[
                    ("credential_type", "iam_user"),
                    ("iam_groups", "g"),
                    ("permissions_boundary_arn", "x"),
                ],
                "`permissions_boundary_arn`",
            ),
            (
                &[
                    ("credential_type", "assumed_role"),
                    ("role_arns", "arn:aws:iam::1:role/a,arn:aws:iam::1:role/b"),
                ],
                "exactly one role ARN",
            ),
            (
                &[
                    ("credential_type", "assumed_role"),
                    ("role_arns", "arn:aws:iam::1:user/a"),
                ],
                "not an IAM role ARN",
            ),
        ];
        for (pairs, expected) in cases {
            let m = message(RoleSpec::parse(&role(pairs)));
            assert!(m.contains(expected), "{pairs:?}: {m}");
            assert!(m.starts_with("role `deploy`: "), "{m}");
        }
    }

    #[test]
    fn names_and_arns() {
        assert!(is_iam_name("tresor-a_b+c=d,e.f@g", 64));
        assert!(!is_iam_name("", 64));
        assert!(!is_iam_name("a/b", 64));
        assert!(!is_iam_name(&"a".repeat(65), 64));
        assert!(is_arn("arn:aws-cn:iam::123456789012:policy/a/b", ":policy/"));
        assert!(!is_arn("arn:aws:iam::123456789012:policy/", ":policy/"));
        assert!(!is_arn("arn:aws:s3:::bucket", ":policy/"));
    }
}
