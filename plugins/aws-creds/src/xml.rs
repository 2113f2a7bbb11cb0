//! Reading the XML answers of the AWS Query APIs (IAM, STS) with
//! `roxmltree`.
//!
//! Success answers are `<{Action}Response><{Action}Result>...`; error
//! answers are `<ErrorResponse><Error><Code>..</Code><Message>..</Message>`
//! (moto sometimes nests `<Errors><Error>`). Elements are matched by local
//! name, whatever the namespace.
//!
//! The parse errors returned here say which element is missing, never
//! what the answer contained: success answers carry new secret keys and
//! session tokens.

use roxmltree::{Document, Node};
use zeroize::Zeroizing;

/// Why an answer could not be read: a description naming elements, never
/// the answer's content.
pub type ParseError = String;

/// `code` and `message` of an AWS error answer, if `body` is one.
pub fn parse_error(body: &str) -> Option<(String, String)> {
    let doc = Document::parse(body).ok()?;
    let error = doc
        .descendants()
        .find(|n| n.has_tag_name_local("Error") && child(*n, "Code").is_some())?;
    let code = text(child(error, "Code")?);
    let message = child(error, "Message")
        .or_else(|| child(error, "message"))
        .map(text)
        .unwrap_or_default();
    Some((code, message))
}

/// Checks that `body` is the success answer of `action`
/// (`<{action}Response>`).
pub fn expect_response(body: &str, action: &str) -> Result<(), ParseError> {
    response(body, action).map(|_| ())
}

fn response<'i>(body: &'i str, action: &str) -> Result<Document<'i>, ParseError> {
    let doc = Document::parse(body).map_err(|_| "the answer is not well-formed XML".to_owned())?;
    let expected = format!("{action}Response");
    if doc.root_element().tag_name().name() != expected {
        return Err(format!("the answer is not a <{expected}>"));
    }
    Ok(doc)
}

/// What `CreateUser` answers.
#[derive(Debug, PartialEq, Eq)]
pub struct CreatedUser {
    /// `User/UserName`.
    pub user_name: String,
    /// `User/Arn`.
    pub arn: Option<String>,
}

/// Reads a `CreateUser` answer.
pub fn created_user(body: &str) -> Result<CreatedUser, ParseError> {
    let doc = response(body, "CreateUser")?;
    let user = find(&doc, "User").ok_or("the answer has no <User>")?;
    Ok(CreatedUser {
        user_name: required(user, "UserName")?,
        arn: child(user, "Arn").map(text),
    })
}

/// A new access key, from `CreateAccessKey`.
pub struct NewAccessKey {
    /// `AccessKey/AccessKeyId` (not secret).
    pub access_key_id: String,
    /// `AccessKey/SecretAccessKey`, wiped when dropped.
    pub secret_access_key: Zeroizing<String>,
}

/// Reads a `CreateAccessKey` answer.
pub fn new_access_key(body: &str) -> Result<NewAccessKey, ParseError> {
    let doc = response(body, "CreateAccessKey")?;
    let key = find(&doc, "AccessKey").ok_or("the answer has no <AccessKey>")?;
    Ok(NewAccessKey {
        access_key_id: required(key, "AccessKeyId")?,
        secret_access_key: Zeroizing::new(required(key, "SecretAccessKey")?),
    })
}

/// One page of a `List*` answer.
#[derive(Debug, PartialEq, Eq)]
pub struct Page {
    /// The entries' `field` (or the members' own text).
    pub items: Vec<String>,
    /// The `Marker` to ask for the next page, when `IsTruncated` is true.
    pub marker: Option<String>,
}

/// Reads one page of a `List*` answer to `action`: the `<member>`s of the
/// `list` element, each reduced to its `field` child (`AccessKeyId`,
/// `PolicyArn`, ...) or, for lists of names (`PolicyNames`), its own text.
/// An answer without the list element is an empty page.
pub fn list_page(body: &str, action: &str, list: &str, field: Option<&str>) -> Result<Page, ParseError> {
    let doc = response(body, action)?;
    let mut items = Vec::new();
    if let Some(list_node) = find(&doc, list) {
        for member in list_node.children().filter(|n| n.has_tag_name_local("member")) {
            items.push(match field {
                Some(field) => required(member, field)?,
                None => text(member),
            });
        }
    }
    let truncated = find(&doc, "IsTruncated").is_some_and(|n| text(n) == "true");
    let marker = if truncated {
        Some(
            find(&doc, "Marker")
                .map(text)
                .filter(|m| !m.is_empty())
                .ok_or("the answer says IsTruncated but has no <Marker>")?,
        )
    } else {
        None
    };
    Ok(Page { items, marker })
}

/// Temporary credentials from STS `AssumeRole` or `GetFederationToken`.
pub struct SessionCredentials {
    /// `Credentials/AccessKeyId` (not secret).
    pub access_key_id: String,
    /// `Credentials/SecretAccessKey`, wiped when dropped.
    pub secret_access_key: Zeroizing<String>,
    /// `Credentials/SessionToken`, wiped when dropped.
    pub session_token: Zeroizing<String>,
    /// `Credentials/Expiration`, ISO-8601 as AWS wrote it.
    pub expiration: String,
    /// The session's ARN (`AssumedRoleUser/Arn`, `FederatedUser/Arn`).
    pub arn: Option<String>,
}

/// Reads an STS answer to `action` (`AssumeRole`, `GetFederationToken`);
/// `user` is the element holding the session's ARN (`AssumedRoleUser`,
/// `FederatedUser`).
pub fn session_credentials(body: &str, action: &str, user: &str) -> Result<SessionCredentials, ParseError> {
    let doc = response(body, action)?;
    let credentials = find(&doc, "Credentials").ok_or("the answer has no <Credentials>")?;
    Ok(SessionCredentials {
        access_key_id: required(credentials, "AccessKeyId")?,
        secret_access_key: Zeroizing::new(required(credentials, "SecretAccessKey")?),
        session_token: Zeroizing::new(required(credentials, "SessionToken")?),
        expiration: required(credentials, "Expiration")?,
        arn: find(&doc, user).and_then(|u| child(u, "Arn")).map(text),
    })
}

trait LocalName {
    fn has_tag_name_local(&self, name: &str) -> bool;
}

impl LocalName for Node<'_, '_> {
    fn has_tag_name_local(&self, name: &str) -> bool {
        self.is_element() && self.tag_name().name() == name
    }
}

/// The first element named `name` anywhere in `doc`.
fn find<'a, 'i>(doc: &'a Document<'i>, name: &str) -> Option<Node<'a, 'i>> {
    doc.descendants().find(|n| n.has_tag_name_local(name))
}

/// The first child element of `node` named `name`.
fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|n| n.has_tag_name_local(name))
}

/// The non-empty text of child `name`, or an error naming it.
fn required(node: Node<'_, '_>, name: &str) -> Result<String, ParseError> {
    child(node, name)
        .map(text)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| format!("the answer has no <{}>/<{name}>", node.tag_name().name()))
}

/// The trimmed text inside an element.
fn text(node: Node<'_, '_>) -> String {
    node.text().unwrap_or("").trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Answers captured from moto 5 (`moto_server`), byte for byte.
    const CREATE_USER: &str = include_str!("../testdata/moto-create-user.xml");
    const CREATE_ACCESS_KEY: &str = include_str!("../testdata/moto-create-access-key.xml");
    const LIST_ACCESS_KEYS: &str = include_str!("../testdata/moto-list-access-keys.xml");
    const LIST_USER_POLICIES: &str = include_str!("../testdata/moto-list-user-policies.xml");
    const LIST_ATTACHED: &str = include_str!("../testdata/moto-list-attached-user-policies.xml");
    const LIST_GROUPS: &str = include_str!("../testdata/moto-list-groups-for-user.xml");
    const ASSUME_ROLE: &str = include_str!("../testdata/moto-assume-role.xml");
    const FEDERATION: &str = include_str!("../testdata/moto-get-federation-token.xml");
    const NO_SUCH_ENTITY: &str = include_str!("../testdata/moto-error-no-such-entity.xml");
    const MALFORMED_POLICY: &str = include_str!("../testdata/moto-error-malformed-policy.xml");
    const DELETE_CONFLICT: &str = include_str!("../testdata/moto-error-delete-conflict.xml");
    // From AWS's documentation (IAM API Reference, ListAccessKeys and
    // "Common Errors"; STS API Reference, AssumeRole), with pagination.
    const AWS_LIST_ACCESS_KEYS_TRUNCATED: &str = include_str!("../testdata/aws-list-access-keys-truncated.xml");
    const AWS_ASSUME_ROLE: &str = include_str!("../testdata/aws-assume-role.xml");
    const AWS_STS_ACCESS_DENIED: &str = include_str!("../testdata/aws-error-sts-access-denied.xml");

    #[test]
    fn reads_create_user_and_create_access_key() {
        let user = created_user(CREATE_USER).expect("CreateUser answer");
        assert_eq!(user.user_name, "tresor-alice-deploy-1796150612-k3j9x2qa");
        assert_eq!(
            user.arn.as_deref(),
            Some("arn:aws:iam::123456789012:user/tresor/tresor-alice-deploy-1796150612-k3j9x2qa")
        );
        let key = new_access_key(CREATE_ACCESS_KEY).expect("CreateAccessKey answer");
        assert!(key.access_key_id.starts_with("AKIA"), "{}", key.access_key_id);
        assert_eq!(key.secret_access_key.len(), 40);
    }

    #[test]
    fn reads_list_pages() {
        let keys = list_page(
            LIST_ACCESS_KEYS,
            "ListAccessKeys",
            "AccessKeyMetadata",
            Some("AccessKeyId"),
        )
        .expect("ListAccessKeys answer");
        assert_eq!(keys.items.len(), 2);
        assert!(keys.items.iter().all(|k| k.starts_with("AKIA")));
        assert_eq!(keys.marker, None);
        let policies = list_page(LIST_USER_POLICIES, "ListUserPolicies", "PolicyNames", None).expect("policies");
        assert_eq!(policies.items, ["tresor-deploy"]);
        let attached = list_page(
            LIST_ATTACHED,
            "ListAttachedUserPolicies",
            "AttachedPolicies",
            Some("PolicyArn"),
        )
        .expect("attached");
        assert_eq!(attached.items, ["arn:aws:iam::123456789012:policy/s3-read"]);
        let groups = list_page(LIST_GROUPS, "ListGroupsForUser", "Groups", Some("GroupName")).expect("groups");
        assert_eq!(groups.items, ["devs"]);
        let page = list_page(
            AWS_LIST_ACCESS_KEYS_TRUNCATED,
            "ListAccessKeys",
            "AccessKeyMetadata",
            Some("AccessKeyId"),
        )
        .expect("AWS ListAccessKeys answer");
        assert_eq!(page.items, ["AKIAIOSFODNN7EXAMPLE"]);
        assert_eq!(page.marker.as_deref(), Some("AKIAI44QH8DHBEXAMPLE"));
    }

    #[test]
    fn reads_sts_credentials() {
        for (body, action, user, arn) in [
            (ASSUME_ROLE, "AssumeRole", "AssumedRoleUser", "assumed-role/deploy/"),
            (
                FEDERATION,
                "GetFederationToken",
                "FederatedUser",
                "federated-user/tresor-alice",
            ),
            (
                AWS_ASSUME_ROLE,
                "AssumeRole",
                "AssumedRoleUser",
                "assumed-role/demo/TestAR",
            ),
        ] {
            let c = session_credentials(body, action, user).expect(action);
            assert!(c.access_key_id.starts_with("AS") || c.access_key_id.starts_with("AK"));
            assert!(c.secret_access_key.len() >= 40);
            assert!(c.session_token.len() > 100);
            assert!(
                crate::time::parse_iso8601_ms(&c.expiration).is_some(),
                "{}",
                c.expiration
            );
            assert!(c.arn.as_deref().is_some_and(|a| a.contains(arn)), "{:?}", c.arn);
        }
    }

    #[test]
    fn reads_error_answers() {
        assert_eq!(
            parse_error(NO_SUCH_ENTITY),
            Some((
                "NoSuchEntity".into(),
                "The user with name nobody cannot be found.".into()
            ))
        );
        assert_eq!(
            parse_error(MALFORMED_POLICY).map(|(c, _)| c).as_deref(),
            Some("MalformedPolicyDocument")
        );
        assert_eq!(
            parse_error(DELETE_CONFLICT),
            Some((
                "DeleteConflict".into(),
                "Cannot delete entity, must detach all policies first.".into()
            ))
        );
        let (code, message) = parse_error(AWS_STS_ACCESS_DENIED).expect("STS error");
        assert_eq!(code, "AccessDenied");
        assert!(
            message.contains("is not authorized to perform: sts:AssumeRole"),
            "{message}"
        );
        let nested = "<ErrorResponse><Errors><Error><Code>InvalidClientTokenId</Code>\
                      <Message>The security token included in the request is invalid.</Message></Error></Errors>\
                      </ErrorResponse>";
        assert_eq!(
            parse_error(nested).map(|(c, _)| c).as_deref(),
            Some("InvalidClientTokenId")
        );
        assert_eq!(parse_error(CREATE_USER), None);
        assert_eq!(parse_error("<html>500 Internal Server Error</html>"), None);
        assert_eq!(parse_error("not xml"), None);
    }

    #[test]
    fn refuses_answers_of_another_shape_without_showing_them() {
        let err = created_user(CREATE_ACCESS_KEY).err().unwrap_or_default();
        assert_eq!(err, "the answer is not a <CreateUserResponse>");
        let no_secret = "<CreateAccessKeyResponse><CreateAccessKeyResult><AccessKey><AccessKeyId>AKIA</AccessKeyId>\
                         </AccessKey></CreateAccessKeyResult></CreateAccessKeyResponse>";
        let err = new_access_key(no_secret).err().unwrap_or_default();
        assert_eq!(err, "the answer has no <AccessKey>/<SecretAccessKey>");
        let secret = "<AssumeRoleResponse><AssumeRoleResult><Credentials><SecretAccessKey>s3cr3t-key</SecretAccessKey>\
                      <SessionToken>s3cr3t-token</SessionToken></Credentials></AssumeRoleResult></AssumeRoleResponse>";
        let err = session_credentials(secret, "AssumeRole", "AssumedRoleUser")
            .err()
            .unwrap_or_default();
        assert!(err.contains("<AccessKeyId>") && !err.contains("s3cr3t"), "{err}");
        let broken = "<AssumeRoleResponse><SessionToken>s3cr3t-token";
        let err = session_credentials(broken, "AssumeRole", "AssumedRoleUser")
            .err()
            .unwrap_or_default();
        assert_eq!(err, "the answer is not well-formed XML");
        assert!(expect_response(LIST_GROUPS, "ListGroupsForUser").is_ok());
        assert!(expect_response(LIST_GROUPS, "DeleteUser").is_err());
    }
}
