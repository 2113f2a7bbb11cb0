//! `credential_type = "iam_user"`: a new IAM user per lease, with the
//! role's policies and groups and one access key; revoking the lease
//! deletes the user and everything attached to it.

use tresor_plugin_sdk::{Credential, Error, IssueRequest};

use crate::client::{CallError, Client, Service};
use crate::settings::RoleSpec;
use crate::{names, reword, warn, xml};

/// Most pages read from one `List*` call (100 entries each).
const MAX_PAGES: usize = 100;

/// What revocation removes, in order, before `DeleteUser`: real AWS refuses
/// to delete a user that still has keys, policies or groups. Each entry:
/// the list action, its list element and member field, the action that
/// removes one entry, and that action's parameter for the entry.
const DETACH_STEPS: [(&str, &str, Option<&str>, &str, &str); 4] = [
    (
        "ListAccessKeys",
        "AccessKeyMetadata",
        Some("AccessKeyId"),
        "DeleteAccessKey",
        "AccessKeyId",
    ),
    (
        "ListUserPolicies",
        "PolicyNames",
        None,
        "DeleteUserPolicy",
        "PolicyName",
    ),
    (
        "ListAttachedUserPolicies",
        "AttachedPolicies",
        Some("PolicyArn"),
        "DetachUserPolicy",
        "PolicyArn",
    ),
    (
        "ListGroupsForUser",
        "Groups",
        Some("GroupName"),
        "RemoveUserFromGroup",
        "GroupName",
    ),
];

/// The name of the inline policy `PutUserPolicy` gives the user.
pub fn inline_policy_name(role: &str) -> String {
    let name = format!("{}{}", names::PREFIX, names::sanitize(role));
    name[..name.len().min(128)].to_owned()
}

/// The IAM user an issue request names (the same request, the same user).
pub fn user_of(request: &IssueRequest) -> Result<String, Error> {
    let random = names::from_issue_id(&request.issue_id)?;
    Ok(names::user_name(
        &request.display_name,
        &request.role.name,
        request.now_ms / 1000,
        &random,
    ))
}

/// Issues an IAM user for `spec`: `CreateUser` (with the role's path and
/// permissions boundary), `PutUserPolicy`, `AttachUserPolicy` and
/// `AddUserToGroup` as the role says, then `CreateAccessKey`. When a step
/// after `CreateUser` fails, the half-made user is deleted (best effort)
/// and the step's error returned.
pub fn issue(client: &mut Client, spec: &RoleSpec, request: &IssueRequest) -> Result<Credential, Error> {
    let user = user_of(request)?;
    let context = |e: Error| {
        let missing = matches!(e, Error::NotFound(_));
        reword(e, |m| {
            let mut message = format!("role `{}`: {m}", spec.name);
            if missing {
                message.push_str(
                    "; check that the role's policy_arns, iam_groups and permissions_boundary_arn exist in IAM",
                );
            }
            message
        })
    };

    let mut params = vec![("UserName", user.as_str())];
    if let Some(path) = &spec.user_path {
        params.push(("Path", path));
    }
    if let Some(boundary) = &spec.permissions_boundary_arn {
        params.push(("PermissionsBoundary", boundary));
    }
    let arn = match client.call(Service::Iam, "CreateUser", &params, false) {
        Ok(answer) => xml::created_user(answer.text()).map(|u| u.arn),
        // AWS said no: nothing was created.
        Err(e @ CallError::Aws(_)) => return Err(context(e.into_error())),
        // No answer: the user may exist all the same.
        Err(CallError::Other(e)) => {
            return Err(context(clean_up(client, &user, e, false)));
        }
    };
    let arn = match arn {
        Ok(arn) => arn,
        Err(why) => {
            let e = Error::unavailable(format!("IAM CreateUser: {why}"));
            return Err(context(clean_up(client, &user, e, true)));
        }
    };
    match grant_and_key(client, spec, &user) {
        Ok((access_key, secret_key)) => {
            let mut data = vec![
                ("access_key".to_owned(), access_key),
                ("secret_key".to_owned(), secret_key),
            ];
            if let Some(arn) = arn {
                data.push(("arn".to_owned(), arn));
            }
            Ok(Credential {
                data,
                revoke_handle: user,
                ttl_seconds: request.ttl_seconds,
                revocable: true,
                renewable: true,
            })
        }
        Err(e) => Err(context(clean_up(client, &user, e, true))),
    }
}

/// The steps after `CreateUser`; returns the access key id and secret.
fn grant_and_key(client: &mut Client, spec: &RoleSpec, user: &str) -> Result<(String, String), Error> {
    if let Some(document) = &spec.policy_document {
        let name = inline_policy_name(&spec.name);
        let params = [("UserName", user), ("PolicyName", &name), ("PolicyDocument", document)];
        client
            .call(Service::Iam, "PutUserPolicy", &params, true)
            .map_err(CallError::into_error)?;
    }
    for arn in &spec.policy_arns {
        let params = [("UserName", user), ("PolicyArn", arn.as_str())];
        client
            .call(Service::Iam, "AttachUserPolicy", &params, true)
            .map_err(CallError::into_error)?;
    }
    for group in &spec.iam_groups {
        let params = [("GroupName", group.as_str()), ("UserName", user)];
        client
            .call(Service::Iam, "AddUserToGroup", &params, true)
            .map_err(CallError::into_error)?;
    }
    let answer = client
        .call(Service::Iam, "CreateAccessKey", &[("UserName", user)], false)
        .map_err(CallError::into_error)?;
    let key =
        xml::new_access_key(answer.text()).map_err(|why| Error::unavailable(format!("IAM CreateAccessKey: {why}")))?;
    Ok((key.access_key_id.clone(), key.secret_access_key.to_string()))
}

/// Deletes the half-made `user` after `error`, and returns `error` saying
/// whether that worked. `made` is false when `CreateUser` got no answer:
/// the user may or may not exist.
fn clean_up(client: &mut Client, user: &str, error: Error, made: bool) -> Error {
    let what = if made {
        format!("the half-made IAM user `{user}`")
    } else {
        format!("the IAM user `{user}` (CreateUser got no answer, so it may exist)")
    };
    match revoke(client, user) {
        Ok(()) if made => reword(error, |m| format!("{m}; {what} was deleted")),
        Ok(()) => error,
        Err(cleanup) => {
            warn(&format!(
                "issuing {what} failed, and deleting it failed too: {}",
                cleanup.message()
            ));
            reword(error, |m| {
                format!(
                    "{m}; deleting {what} failed too ({}): check IAM and delete it by hand",
                    cleanup.message()
                )
            })
        }
    }
}

/// Revokes the IAM user `user`: deletes its access keys and inline
/// policies, detaches its managed policies, removes it from its groups
/// (`List*` then one call per entry, in that order) and deletes it. A user
/// that is already gone (`NoSuchEntity`) is revoked.
pub fn revoke(client: &mut Client, user: &str) -> Result<(), Error> {
    let context = |e: CallError| reword(e.into_error(), |m| format!("revoking IAM user `{user}`: {m}"));
    for (list_action, list, field, remove_action, param) in DETACH_STEPS {
        let entries = match list_all(client, user, list_action, list, field) {
            Ok(entries) => entries,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(context(e)),
        };
        for entry in entries {
            let params = [("UserName", user), (param, entry.as_str())];
            match client.call(Service::Iam, remove_action, &params, true) {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(context(e)),
            }
        }
    }
    match client.call(Service::Iam, "DeleteUser", &[("UserName", user)], true) {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) if e.is("DeleteConflict") => Err(reword(context(e), |m| {
            format!(
                "{m}; the user holds something this plugin did not create (a login profile, an MFA device, \
                 a signing certificate, SSH keys): remove it in IAM and the host's next revocation attempt completes"
            )
        })),
        Err(e) => Err(context(e)),
    }
}

/// Every entry of a paginated `List*` answer for `user`.
fn list_all(
    client: &mut Client,
    user: &str,
    action: &str,
    list: &str,
    field: Option<&str>,
) -> Result<Vec<String>, CallError> {
    let mut entries = Vec::new();
    let mut marker: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut params = vec![("UserName", user)];
        if let Some(m) = &marker {
            params.push(("Marker", m));
        }
        let answer = client.call(Service::Iam, action, &params, true)?;
        let page = xml::list_page(answer.text(), action, list, field)
            .map_err(|why| CallError::Other(Error::unavailable(format!("IAM {action}: {why}"))))?;
        entries.extend(page.items);
        match page.marker {
            Some(next) => marker = Some(next),
            None => return Ok(entries),
        }
    }
    Err(CallError::Other(Error::unavailable(format!(
        "IAM {action}: more than {MAX_PAGES} pages for user `{user}`"
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_inline_policy_after_the_role() {
        assert_eq!(inline_policy_name("deploy"), "tresor-deploy");
        assert_eq!(inline_policy_name(&"r".repeat(300)).len(), 128);
    }
}
