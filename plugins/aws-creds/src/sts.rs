//! `credential_type = "assumed_role"` (STS `AssumeRole`) and
//! `"federation_token"` (STS `GetFederationToken`): temporary credentials
//! that AWS ends by itself at their `Expiration` and that cannot be ended
//! earlier, so their leases are neither revocable nor renewable.

use tresor_plugin_sdk::{Credential, Error, IssueRequest};

use crate::client::{CallError, Client, Service};
use crate::settings::RoleSpec;
use crate::time::parse_iso8601_ms;
use crate::{names, reword, xml};

/// The shortest session AWS grants, in seconds (both calls).
pub const MIN_DURATION: u64 = 900;
/// The longest `AssumeRole` session (the role's `MaxSessionDuration` may be lower).
pub const MAX_ASSUME_ROLE_DURATION: u64 = 43_200;
/// The longest `GetFederationToken` session.
pub const MAX_FEDERATION_DURATION: u64 = 129_600;

/// The prefix of every STS revoke handle. IAM user names cannot contain
/// `:`, so handles of both kinds never mix.
pub const HANDLE_PREFIX: &str = "sts:";

/// The `DurationSeconds` to ask for a lease of `ttl_seconds`: the TTL
/// brought within AWS's limits `min..=max`.
pub fn duration_seconds(ttl_seconds: u64, min: u64, max: u64) -> u64 {
    ttl_seconds.clamp(min, max)
}

/// Assumes the role's `role_arns` (with its session policy, if any) for
/// the lease's TTL.
pub fn assume_role(client: &mut Client, spec: &RoleSpec, request: &IssueRequest) -> Result<Credential, Error> {
    let role_arn = spec
        .role_arn
        .as_deref()
        .ok_or_else(|| Error::invalid_input(format!("role `{}`: missing setting `role_arns`", spec.name)))?;
    let random = names::random(names::RANDOM_LEN)?;
    let session = names::user_name(&request.display_name, &spec.name, request.now_ms / 1000, &random);
    let duration = duration_seconds(request.ttl_seconds, MIN_DURATION, MAX_ASSUME_ROLE_DURATION).to_string();
    let mut params = vec![
        ("RoleArn".to_owned(), role_arn.to_owned()),
        ("RoleSessionName".to_owned(), session.clone()),
        ("DurationSeconds".to_owned(), duration),
    ];
    session_policies(spec, &mut params);
    issue(
        client,
        spec,
        request,
        "AssumeRole",
        "AssumedRoleUser",
        &params,
        "assumed_role",
        &session,
    )
}

/// Gets a federation token named after the caller and the role, with the
/// role's policies, for the lease's TTL.
pub fn federation_token(client: &mut Client, spec: &RoleSpec, request: &IssueRequest) -> Result<Credential, Error> {
    let random = names::random(names::RANDOM_LEN)?;
    let name = names::federated_name(&request.display_name, &spec.name, &random);
    let duration = duration_seconds(request.ttl_seconds, MIN_DURATION, MAX_FEDERATION_DURATION).to_string();
    let mut params = vec![
        ("Name".to_owned(), name.clone()),
        ("DurationSeconds".to_owned(), duration),
    ];
    session_policies(spec, &mut params);
    issue(
        client,
        spec,
        request,
        "GetFederationToken",
        "FederatedUser",
        &params,
        "federation_token",
        &name,
    )
}

/// `Policy` and `PolicyArns.member.N.arn` from the role.
fn session_policies(spec: &RoleSpec, params: &mut Vec<(String, String)>) {
    if let Some(document) = &spec.policy_document {
        params.push(("Policy".to_owned(), document.clone()));
    }
    for (i, arn) in spec.policy_arns.iter().enumerate() {
        params.push((format!("PolicyArns.member.{}.arn", i + 1), arn.clone()));
    }
}

#[allow(clippy::too_many_arguments)]
fn issue(
    client: &mut Client,
    spec: &RoleSpec,
    request: &IssueRequest,
    action: &str,
    user_element: &str,
    params: &[(String, String)],
    kind: &str,
    session: &str,
) -> Result<Credential, Error> {
    let context = |e: Error| reword(e, |m| format!("role `{}`: {m}", spec.name));
    let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let answer = client
        .call(Service::Sts, action, &params, false)
        .map_err(|e: CallError| context(e.into_error()))?;
    let credentials = xml::session_credentials(answer.text(), action, user_element)
        .map_err(|why| context(Error::unavailable(format!("STS {action}: {why}"))))?;
    let expires_ms = parse_iso8601_ms(&credentials.expiration).ok_or_else(|| {
        context(Error::unavailable(format!(
            "STS {action}: the answer's <Expiration> is not an ISO-8601 time"
        )))
    })?;
    let granted = expires_ms.saturating_sub(request.now_ms) / 1000;
    if granted == 0 {
        return Err(context(Error::unavailable(format!(
            "STS {action}: the credentials AWS issued expire at {}, before now; check the host's clock",
            credentials.expiration
        ))));
    }
    let handle = format!(
        "{HANDLE_PREFIX}{kind}:{}",
        credentials.arn.as_deref().unwrap_or(session)
    );
    let token = credentials.session_token.to_string();
    let mut data = vec![
        ("access_key".to_owned(), credentials.access_key_id.clone()),
        ("secret_key".to_owned(), credentials.secret_access_key.to_string()),
        ("security_token".to_owned(), token.clone()),
        ("session_token".to_owned(), token),
        ("expiration".to_owned(), credentials.expiration.clone()),
    ];
    if let Some(arn) = &credentials.arn {
        data.push(("arn".to_owned(), arn.clone()));
    }
    Ok(Credential {
        data,
        revoke_handle: handle,
        // The lease never outlives the credential, and (as the contract
        // wants) never exceeds the TTL asked for; `expiration` tells when
        // AWS ends the credential.
        ttl_seconds: granted.min(request.ttl_seconds),
        revocable: false,
        renewable: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamps_durations_to_aws_limits() {
        assert_eq!(duration_seconds(60, MIN_DURATION, MAX_ASSUME_ROLE_DURATION), 900);
        assert_eq!(duration_seconds(3600, MIN_DURATION, MAX_ASSUME_ROLE_DURATION), 3600);
        assert_eq!(duration_seconds(86_400, MIN_DURATION, MAX_ASSUME_ROLE_DURATION), 43_200);
        assert_eq!(duration_seconds(86_400, MIN_DURATION, MAX_FEDERATION_DURATION), 86_400);
        assert_eq!(
            duration_seconds(u64::MAX, MIN_DURATION, MAX_FEDERATION_DURATION),
            129_600
        );
        assert_eq!(duration_seconds(0, MIN_DURATION, MAX_FEDERATION_DURATION), 900);
    }
}
