//! A Tresor generator for AWS credentials, the way Vault's AWS secrets
//! engine issues them: a fresh IAM user with an access key per lease
//! (deleted when the lease ends), or temporary STS credentials from
//! `AssumeRole` or `GetFederationToken` (which AWS ends by itself).
//!
//! The plugin calls IAM and STS over their Query APIs (form-encoded `POST`,
//! SigV4-signed with the SDK's [`sigv4`](tresor_plugin_sdk::sigv4), XML
//! answers). The mount must grant the real clock (`grants.clock = true`:
//! signatures carry the time) and network access to both endpoints'
//! `host:port` (`grants.network`, e.g. `iam.amazonaws.com:443` and
//! `sts.us-east-1.amazonaws.com:443`).
//!
//! # Mount configuration
//!
//! | key                 | meaning                                                          |
//! |---------------------|------------------------------------------------------------------|
//! | `access_key_id`     | required: the access key the plugin calls IAM and STS with       |
//! | `secret_access_key` | required: its secret                                             |
//! | `session_token`     | the session token, when that key is temporary                    |
//! | `region`            | the STS region (default `us-east-1`); IAM is signed for us-east-1 |
//! | `iam_endpoint`      | default `https://iam.amazonaws.com`                              |
//! | `sts_endpoint`      | default `https://sts.<region>.amazonaws.com`                     |
//! | `timeout_ms`        | connect and first-byte timeout of each request (default 3000)    |
//!
//! Unknown keys are refused, naming the key.
//!
//! # Role settings
//!
//! Every role sets `credential_type`; the host keeps `default_ttl` and
//! `max_ttl` and passes the other keys here, where unknown ones are refused.
//!
//! - `iam_user`: `policy_document` (an inline policy, JSON; `PutUserPolicy`),
//!   `policy_arns` (comma-separated managed policy ARNs; `AttachUserPolicy`),
//!   `iam_groups` (comma-separated; `AddUserToGroup`): at least one of the
//!   three; optional `user_path` (`/tresor/`) and `permissions_boundary_arn`.
//! - `assumed_role`: `role_arns` (one role ARN, required); optional
//!   `policy_document` and `policy_arns` (session policies).
//! - `federation_token`: `policy_document` and/or `policy_arns` (at least one).
//!
//! # What a credential holds
//!
//! - `iam_user`: `access_key`, `secret_key` and the user's `arn`. The user
//!   is named `tresor-<caller>-<role>-<unix seconds>-<random>` (at most 64
//!   characters). The lease is revocable and renewable (IAM users do not
//!   expire); revoking deletes the access keys, inline policies, attached
//!   policies and group memberships, then the user. If issuing fails
//!   half-way, the half-made user is deleted before the error is returned.
//! - `assumed_role` and `federation_token`: `access_key`, `secret_key`,
//!   `security_token` and `session_token` (the same value, under the names
//!   Vault and the AWS SDKs use), `arn` and `expiration` (ISO-8601, from
//!   AWS). AWS's limits apply to the duration (900 s to 12 h for
//!   `AssumeRole`, to 36 h for `GetFederationToken`); a TTL below 900 s
//!   still gets a 900 s session, whose lease ends at the TTL. STS sessions
//!   cannot be ended early: the lease is neither revocable nor renewable,
//!   and revoking it succeeds without calling AWS.
//!
//! # Example
//!
//! ```toml
//! [[mount]]
//! path = "aws-creds"
//! plugin = "aws-creds"
//! config = { region = "eu-west-1", access_key_id = "AKIA...", secret_access_key = "ref:secret/aws/tresor-key" }
//! grants = { network = ["iam.amazonaws.com:443", "sts.eu-west-1.amazonaws.com:443"], clock = true }
//!
//! [mount.roles.deploy]
//! default_ttl = "1h"
//! max_ttl = "12h"
//! credential_type = "iam_user"
//! policy_document = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}'
//!
//! [mount.roles.ops]
//! credential_type = "assumed_role"
//! role_arns = "arn:aws:iam::123456789012:role/ops"
//! ```
//!
//! The mount's own access key needs, for `iam_user` roles, `iam:CreateUser`,
//! `iam:PutUserPolicy`, `iam:AttachUserPolicy`, `iam:AddUserToGroup`,
//! `iam:CreateAccessKey` and, to revoke, `iam:ListAccessKeys`,
//! `iam:DeleteAccessKey`, `iam:ListUserPolicies`, `iam:DeleteUserPolicy`,
//! `iam:ListAttachedUserPolicies`, `iam:DetachUserPolicy`,
//! `iam:ListGroupsForUser`, `iam:RemoveUserFromGroup` and `iam:DeleteUser`
//! (scope them to `arn:aws:iam::*:user/tresor-*`, with the role's
//! `user_path`); `sts:AssumeRole` on the roles of `assumed_role` roles;
//! `sts:GetFederationToken` for `federation_token` roles (which AWS refuses
//! to temporary credentials: give the mount a long-term key).
//!
//! Issuing an IAM user takes up to five calls and revoking one about ten:
//! keep the mount's `limits.call_timeout_ms` well above a few round trips
//! to AWS.
//!
//! Errors name the AWS action and AWS's error code and message, never a
//! secret: `NoSuchEntity` is `not-found`, refused credentials and
//! `AccessDenied` are `permission-denied`, throttling and AWS outages are
//! `unavailable`, malformed policies are `invalid-input`.

pub mod client;
pub mod iam;
pub mod names;
pub mod settings;
pub mod sts;
pub mod time;
pub mod transport;
pub mod xml;

use tresor_plugin_sdk::{Config, Credential, Error, Generator, IssueRequest, Role};

#[cfg(target_arch = "wasm32")]
use tresor_plugin_sdk::export_generator;

use crate::client::Client;
use crate::settings::{CredentialType, MountConfig, RoleSpec};
use crate::transport::{Transport, WasiHttp};

/// The `aws-creds` generator: configured once per instance with the mount's
/// AWS endpoints and credentials.
pub struct AwsCreds {
    client: Client,
}

impl AwsCreds {
    /// Builds the generator from the mount's configuration, sending its
    /// requests through `transport` (the host's `wasi:http` in a plugin,
    /// any HTTP client in a native test).
    ///
    /// Fails with `invalid-input` naming the key when the configuration
    /// is wrong, or telling the operator to grant `clock = true` when the
    /// plugin's clock reads the Unix epoch.
    pub fn with_transport(config: Config, transport: Box<dyn Transport>) -> Result<AwsCreds, Error> {
        let config = MountConfig::parse(&config)?;
        if time::now_secs() < time::PLAUSIBLE_NOW_SECS {
            return Err(Error::invalid_input(
                "the aws-creds plugin signs every AWS request with the current time, but the mount does not \
                 grant the clock: set `clock = true` in the mount's grants",
            ));
        }
        Ok(AwsCreds {
            client: Client::new(config, transport),
        })
    }

    /// The client the generator calls AWS with.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }
}

impl Generator for AwsCreds {
    const NAME: &'static str = "aws-creds";

    fn configure(config: Config) -> Result<Self, Error> {
        AwsCreds::with_transport(config, Box::new(WasiHttp))
    }

    fn check_role(&mut self, role: &Role) -> Result<(), Error> {
        RoleSpec::parse(role).map(drop)
    }

    fn issue(&mut self, request: IssueRequest) -> Result<Credential, Error> {
        let spec = RoleSpec::parse(&request.role)?;
        match spec.credential_type {
            CredentialType::IamUser => iam::issue(&mut self.client, &spec, &request),
            CredentialType::AssumedRole => sts::assume_role(&mut self.client, &spec, &request),
            CredentialType::FederationToken => sts::federation_token(&mut self.client, &spec, &request),
        }
    }

    /// Deletes the IAM user the request names, if it exists (with its keys
    /// and policies first); STS sessions were never revocable, so there is
    /// nothing to undo. A role removed from the configuration (no settings)
    /// may have made a user: it is looked for.
    fn abandon(&mut self, request: IssueRequest) -> Result<(), Error> {
        let sts = match RoleSpec::parse(&request.role) {
            Ok(spec) => spec.credential_type != CredentialType::IamUser,
            Err(_) if request.role.settings.is_empty() => false,
            Err(e) => return Err(e),
        };
        match sts {
            true => Ok(()),
            false => iam::revoke(&mut self.client, &iam::user_of(&request)?),
        }
    }

    /// IAM users do not expire: the lease is extended as asked, without
    /// calling AWS. STS sessions cannot be extended.
    fn renew(&mut self, role: &Role, revoke_handle: &str, ttl_seconds: u64, _expires_at_ms: u64) -> Result<u64, Error> {
        if revoke_handle.starts_with(sts::HANDLE_PREFIX) {
            return Err(Error::unsupported(format!(
                "role `{}`: STS credentials cannot be extended: issue new ones",
                role.name
            )));
        }
        check_user_handle(revoke_handle)?;
        Ok(ttl_seconds)
    }

    /// Deletes the IAM user behind the handle (already gone is done); STS
    /// sessions cannot be ended early, so revoking one succeeds at once.
    fn revoke(&mut self, _role: &Role, revoke_handle: &str) -> Result<(), Error> {
        if revoke_handle.starts_with(sts::HANDLE_PREFIX) {
            return Ok(());
        }
        check_user_handle(revoke_handle)?;
        iam::revoke(&mut self.client, revoke_handle)
    }
}

/// Refuses a handle that is not an IAM user name this plugin creates, so a
/// damaged lease can never delete someone else's user.
fn check_user_handle(handle: &str) -> Result<(), Error> {
    if names::is_issued_user_name(handle) {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "revoke handle `{handle}` is neither an IAM user this plugin created (`tresor-...`) nor an STS \
             session (`sts:...`); the lease was not issued by the aws-creds plugin"
        )))
    }
}

/// `error` with its message rewritten by `f`, keeping its kind.
pub(crate) fn reword(error: Error, f: impl FnOnce(&str) -> String) -> Error {
    let message = f(error.message());
    match error {
        Error::NotFound(_) => Error::not_found(message),
        Error::InvalidInput(_) => Error::invalid_input(message),
        Error::Conflict(_) => Error::conflict(message),
        Error::Unavailable(_) => Error::unavailable(message),
        Error::PermissionDenied(_) => Error::permission_denied(message),
        Error::Unsupported(_) => Error::unsupported(message),
        Error::Internal(_) => Error::internal(message),
    }
}

/// Writes a warning to the host's log (stderr in native tests). Never pass
/// a secret.
pub(crate) fn warn(message: &str) {
    #[cfg(target_arch = "wasm32")]
    tresor_plugin_sdk::host::log(tresor_plugin_sdk::host::LogLevel::Warn, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("aws-creds: warning: {message}");
}

// Only the WebAssembly build exports the component interface (the native
// build is for tests, and its linker refuses the interface's export names).
#[cfg(target_arch = "wasm32")]
export_generator!(AwsCreds);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{HttpRequest, HttpResponse};

    /// A transport that must not be used.
    struct Unused;

    impl Transport for Unused {
        fn send(&mut self, _request: &HttpRequest) -> Result<HttpResponse, Error> {
            Err(Error::internal("no request was expected"))
        }
    }

    fn creds() -> AwsCreds {
        let config = Config::new(vec![
            ("access_key_id".into(), "AKIDEXAMPLE".into()),
            ("secret_access_key".into(), "secret".into()),
        ]);
        AwsCreds::with_transport(config, Box::new(Unused)).expect("configure")
    }

    fn role(pairs: &[(&str, &str)]) -> Role {
        Role {
            name: "deploy".into(),
            settings: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn configure_refuses_unknown_keys() {
        let config = Config::new(vec![
            ("access_key_id".into(), "AKIDEXAMPLE".into()),
            ("secret_access_key".into(), "secret".into()),
            ("regoin".into(), "eu-west-1".into()),
        ]);
        let e = AwsCreds::with_transport(config, Box::new(Unused)).err();
        assert!(
            matches!(e, Some(Error::InvalidInput(ref m)) if m.contains("`regoin`") && m.contains("did you mean `region`")),
            "{e:?}"
        );
    }

    #[test]
    fn check_role_validates_without_calling_aws() {
        let mut g = creds();
        assert!(g
            .check_role(&role(&[("credential_type", "iam_user"), ("iam_groups", "devs")]))
            .is_ok());
        let e = g.check_role(&role(&[("credential_type", "iam_user"), ("groups", "devs")]));
        assert!(
            matches!(e, Err(Error::InvalidInput(ref m)) if m.contains("unknown setting `groups`")),
            "{e:?}"
        );
    }

    #[test]
    fn sts_leases_revoke_as_no_ops_and_do_not_renew() {
        let mut g = creds();
        let r = role(&[]);
        let handle = "sts:assumed_role:arn:aws:sts::123456789012:assumed-role/deploy/tresor-a-deploy-1-x";
        assert!(g.revoke(&r, handle).is_ok());
        assert!(g.revoke(&r, handle).is_ok());
        assert!(matches!(g.renew(&r, handle, 60, 0), Err(Error::Unsupported(_))));
        assert_eq!(g.renew(&r, "tresor-a-deploy-1-abcdefgh", 3600, 0).ok(), Some(3600));
    }

    #[test]
    fn foreign_handles_are_refused_before_any_call() {
        let mut g = creds();
        for handle in ["admin", "", "tresor-a/b"] {
            let e = g.revoke(&role(&[]), handle);
            assert!(
                matches!(e, Err(Error::InvalidInput(ref m)) if m.contains("revoke handle")),
                "{e:?}"
            );
        }
    }

    #[test]
    fn reword_keeps_the_kind() {
        let e = reword(Error::not_found("x"), |m| format!("a: {m}"));
        assert!(matches!(e, Error::NotFound(ref m) if m == "a: x"));
    }
}
