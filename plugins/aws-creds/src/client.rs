//! Calls to the AWS Query APIs (IAM and STS): one form-encoded `POST` per
//! action (`Action=...&Version=...`), signed with SigV4, answered in XML;
//! AWS's error answers mapped to the contract's errors.
//!
//! Idempotent calls (the `List*`, `Delete*`, `Detach*`, `Remove*` and
//! `Put*` family) are sent again, at most [`MAX_ATTEMPTS`] times with short
//! pauses, when AWS throttles, fails with a 5xx or cannot be reached;
//! calls that create something (`CreateUser`, `CreateAccessKey`, STS
//! sessions) are sent once.
//!
//! No message built here contains a secret: errors name the service, the
//! action and AWS's error code and message, and any occurrence of the
//! mount's secret key or session token in AWS's message is blanked.

use std::time::Duration;

use tresor_plugin_sdk::http;
use tresor_plugin_sdk::sigv4::{self, Credentials, Signable};
use tresor_plugin_sdk::Error;
use zeroize::{Zeroize, Zeroizing};

use crate::settings::MountConfig;
use crate::transport::{HttpRequest, Transport};
use crate::xml;

/// How many times an idempotent call is tried.
pub const MAX_ATTEMPTS: usize = 3;
/// The pauses between attempts.
const BACKOFF_MS: [u64; 2] = [100, 400];
/// The longest part of AWS's message an error repeats.
const MAX_MESSAGE: usize = 300;
/// The form content type of the Query APIs.
const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// Which Query API a call goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    /// IAM (`Version=2010-05-08`), signed for `us-east-1`.
    Iam,
    /// STS (`Version=2011-06-15`), signed for the mount's region.
    Sts,
}

impl Service {
    /// The service name in the SigV4 scope and in IAM actions (`iam`, `sts`).
    pub fn id(self) -> &'static str {
        match self {
            Service::Iam => "iam",
            Service::Sts => "sts",
        }
    }

    /// The API version sent with every action.
    pub fn version(self) -> &'static str {
        match self {
            Service::Iam => "2010-05-08",
            Service::Sts => "2011-06-15",
        }
    }

    /// `IAM` or `STS`, for messages.
    pub fn label(self) -> &'static str {
        match self {
            Service::Iam => "IAM",
            Service::Sts => "STS",
        }
    }
}

/// An error answer from AWS.
#[derive(Debug)]
pub struct AwsError {
    /// The API called.
    pub service: Service,
    /// The action called (`CreateUser`).
    pub action: String,
    /// AWS's error code (`NoSuchEntity`), or `HTTP <status>` when the
    /// answer carried none.
    pub code: String,
    /// AWS's message, shortened, with any mount secret blanked.
    pub message: String,
    /// The HTTP status.
    pub status: u16,
}

impl AwsError {
    /// The contract error for this answer: `NoSuchEntity` is `not-found`;
    /// refused credentials and `AccessDenied` are `permission-denied`;
    /// throttling and 5xx are `unavailable`; malformed policies and
    /// validation errors are `invalid-input`; conflicts are `conflict`.
    pub fn into_error(self) -> Error {
        let mut message = format!(
            "{} {} failed: AWS answered {}",
            self.service.label(),
            self.action,
            self.code
        );
        if !self.message.is_empty() {
            message.push_str(&format!(" ({})", self.message));
        }
        match self.code.as_str() {
            "NoSuchEntity" => Error::not_found(message),
            "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" => Error::permission_denied(format!(
                "{message}; allow `{}:{}` in the IAM policy of the mount's access key",
                self.service.id(),
                self.action
            )),
            "InvalidClientTokenId"
            | "SignatureDoesNotMatch"
            | "IncompleteSignature"
            | "MissingAuthenticationToken"
            | "ExpiredToken"
            | "ExpiredTokenException"
            | "UnrecognizedClientException"
            | "AuthFailure"
            | "InvalidAccessKeyId" => Error::permission_denied(format!(
                "{message}; check the mount's access_key_id, secret_access_key and session_token"
            )),
            "Throttling"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "TooManyRequestsException"
            | "ServiceUnavailable"
            | "ServiceFailure"
            | "InternalFailure"
            | "InternalError" => Error::unavailable(format!("{message}; retry later")),
            "MalformedPolicyDocument"
            | "ValidationError"
            | "InvalidInput"
            | "InvalidParameterValue"
            | "InvalidParameterCombination"
            | "MissingParameter"
            | "PackedPolicyTooLarge"
            | "LimitExceeded"
            | "InvalidAction"
            | "RegionDisabledException" => Error::invalid_input(format!("{message}; check the role's settings")),
            "EntityAlreadyExists" | "DeleteConflict" | "ConcurrentModification" => Error::conflict(message),
            _ => http::status_error(self.status, &message).unwrap_or_else(|| Error::unavailable(message)),
        }
    }

    /// True when sending the call again may succeed (throttling, 5xx).
    pub fn is_retryable(&self) -> bool {
        http::is_retryable_status(self.status)
            || matches!(
                self.code.as_str(),
                "Throttling"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "TooManyRequestsException"
                    | "ServiceUnavailable"
                    | "ServiceFailure"
                    | "InternalFailure"
                    | "InternalError"
            )
    }
}

/// Why a call failed: AWS said no, or there was no AWS answer.
#[derive(Debug)]
pub enum CallError {
    /// An AWS error answer.
    Aws(AwsError),
    /// No answer (transport failure), or an answer that is not AWS's XML.
    Other(Error),
}

impl CallError {
    /// True for an AWS error answer with this code.
    pub fn is(&self, code: &str) -> bool {
        matches!(self, CallError::Aws(e) if e.code == code)
    }

    /// True when AWS says the entity does not exist (`NoSuchEntity`).
    pub fn is_not_found(&self) -> bool {
        self.is("NoSuchEntity")
    }

    /// The contract error.
    pub fn into_error(self) -> Error {
        match self {
            CallError::Aws(e) => e.into_error(),
            CallError::Other(e) => e,
        }
    }
}

/// A success answer: AWS's XML, wiped when dropped.
pub struct Answer {
    body: Zeroizing<String>,
}

impl Answer {
    /// The XML text.
    pub fn text(&self) -> &str {
        &self.body
    }
}

/// The IAM and STS endpoints, the mount's credentials and the transport.
pub struct Client {
    config: MountConfig,
    credentials: Credentials,
    transport: Box<dyn Transport>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.credentials.secret_access_key.zeroize();
        if let Some(token) = &mut self.credentials.session_token {
            token.zeroize();
        }
    }
}

impl Client {
    /// A client calling the endpoints of `config` through `transport`.
    pub fn new(config: MountConfig, transport: Box<dyn Transport>) -> Client {
        let credentials = Credentials {
            access_key_id: config.access_key_id.clone(),
            secret_access_key: config.secret_access_key.to_string(),
            session_token: config.session_token.as_ref().map(|t| t.to_string()),
        };
        Client {
            config,
            credentials,
            transport,
        }
    }

    /// Calls `action` of `service` with `params` and returns AWS's XML
    /// answer, checked to be `<{action}Response>`. With `idempotent`, the
    /// call is retried on throttling, 5xx and unreachable endpoints.
    pub fn call(
        &mut self,
        service: Service,
        action: &str,
        params: &[(&str, &str)],
        idempotent: bool,
    ) -> Result<Answer, CallError> {
        let attempts = if idempotent { MAX_ATTEMPTS } else { 1 };
        let mut attempt = 0;
        loop {
            let outcome = self.call_once(service, action, params);
            attempt += 1;
            let retry = match &outcome {
                Ok(_) => false,
                Err(CallError::Aws(e)) => e.is_retryable(),
                Err(CallError::Other(Error::Unavailable(_))) => true,
                Err(CallError::Other(_)) => false,
            };
            if !retry || attempt >= attempts {
                return outcome;
            }
            std::thread::sleep(Duration::from_millis(
                BACKOFF_MS[(attempt - 1).min(BACKOFF_MS.len() - 1)],
            ));
        }
    }

    fn call_once(&mut self, service: Service, action: &str, params: &[(&str, &str)]) -> Result<Answer, CallError> {
        let (endpoint, region) = match service {
            Service::Iam => (self.config.iam_endpoint.as_str(), "us-east-1"),
            Service::Sts => (self.config.sts_endpoint.as_str(), self.config.region.as_str()),
        };
        let mut fields: Vec<(&str, &str)> = vec![("Action", action), ("Version", service.version())];
        fields.extend_from_slice(params);
        let body = form_encode(&fields);
        let amz_date = sigv4::amz_date(crate::time::now_secs());
        let authority = authority(endpoint);
        let mut signed: Vec<(&str, &str)> = vec![
            ("content-type", CONTENT_TYPE),
            ("host", authority),
            ("x-amz-date", &amz_date),
        ];
        if let Some(token) = &self.credentials.session_token {
            signed.push(("x-amz-security-token", token));
        }
        let authorization = sigv4::authorization(
            &self.credentials,
            region,
            service.id(),
            &amz_date,
            &Signable {
                method: "POST",
                path: path(endpoint),
                query: &[],
                headers: &signed,
                payload: body.as_bytes(),
            },
        );
        let mut headers: Vec<(String, String)> = signed
            .iter()
            .filter(|(name, _)| *name != "host")
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        headers.push(("authorization".into(), authorization));
        let request = HttpRequest {
            url: endpoint.to_owned(),
            headers,
            body: body.into_bytes(),
            timeout: self.config.timeout,
        };
        let what = format!("{} {action}", service.label());
        let response = self.transport.send(&request);
        for (_, mut value) in request.headers {
            value.zeroize();
        }
        let response = response.map_err(|e| CallError::Other(crate::reword(e, |m| format!("{what}: {m}"))))?;
        let text = match std::str::from_utf8(&response.body) {
            Ok(text) => Zeroizing::new(text.to_owned()),
            Err(_) => Zeroizing::new(String::new()),
        };
        if (200..300).contains(&response.status) {
            return match xml::expect_response(&text, action) {
                Ok(()) => Ok(Answer { body: text }),
                Err(why) => Err(CallError::Other(Error::unavailable(format!(
                    "{what}: {why}; is `{}` an {} endpoint?",
                    match service {
                        Service::Iam => "iam_endpoint",
                        Service::Sts => "sts_endpoint",
                    },
                    service.label()
                )))),
            };
        }
        match xml::parse_error(&text) {
            Some((code, message)) => Err(CallError::Aws(AwsError {
                service,
                action: action.to_owned(),
                code: if code.is_empty() {
                    format!("HTTP {}", response.status)
                } else {
                    code
                },
                message: self.scrub(&message),
                status: response.status,
            })),
            None => Err(CallError::Other(
                http::status_error(response.status, &what)
                    .unwrap_or_else(|| Error::unavailable(format!("{what}: unexpected HTTP {}", response.status))),
            )),
        }
    }

    /// `message` shortened, with the mount's secrets blanked.
    fn scrub(&self, message: &str) -> String {
        let mut clean: String = message.chars().filter(|c| !c.is_control()).collect();
        let secrets = [
            Some(self.credentials.secret_access_key.as_str()),
            self.credentials.session_token.as_deref(),
        ];
        for secret in secrets.into_iter().flatten().filter(|s| s.len() >= 4) {
            clean = clean.replace(secret, "[redacted]");
        }
        if clean.chars().count() > MAX_MESSAGE {
            clean = clean.chars().take(MAX_MESSAGE).collect::<String>() + "...";
        }
        clean
    }
}

/// `application/x-www-form-urlencoded` with SigV4's percent-encoding
/// (everything but `A-Z a-z 0-9 - _ . ~`).
pub fn form_encode(fields: &[(&str, &str)]) -> String {
    let encode = |text: &str| -> String {
        let mut out = String::with_capacity(text.len());
        for byte in text.bytes() {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
                out.push(char::from(byte));
            } else {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
        out
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The `host[:port]` of an `http(s)://host[:port][/path]` URL.
fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

/// The path of an `http(s)://host[:port][/path]` URL (`/` when none).
fn path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    match rest.find('/') {
        Some(i) => &rest[i..],
        None => "/",
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use tresor_plugin_sdk::Config;

    use super::*;
    use crate::transport::HttpResponse;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const TOKEN: &str = "FQoGZXIvYXdzEBYaDmountSessionToken";

    /// The requests a [`Canned`] transport saw: URL, headers, body.
    type Seen = Rc<RefCell<Vec<(String, Vec<(String, String)>, String)>>>;

    /// Answers each request with the next canned answer and keeps the requests.
    struct Canned {
        answers: Vec<Result<(u16, &'static str), Error>>,
        seen: Seen,
    }

    impl Transport for Canned {
        fn send(&mut self, request: &HttpRequest) -> Result<HttpResponse, Error> {
            self.seen.borrow_mut().push((
                request.url.clone(),
                request.headers.clone(),
                String::from_utf8_lossy(&request.body).into_owned(),
            ));
            let (status, body) = self.answers.remove(0)?;
            Ok(HttpResponse {
                status,
                body: Zeroizing::new(body.as_bytes().to_vec()),
            })
        }
    }

    fn client(answers: Vec<Result<(u16, &'static str), Error>>) -> (Client, Seen) {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let config = MountConfig::parse(&Config::new(vec![
            ("access_key_id".into(), "AKIDEXAMPLE".into()),
            ("secret_access_key".into(), SECRET.into()),
            ("session_token".into(), TOKEN.into()),
            ("region".into(), "eu-west-1".into()),
            ("iam_endpoint".into(), "http://127.0.0.1:5000".into()),
        ]))
        .expect("config");
        let transport = Canned {
            answers,
            seen: seen.clone(),
        };
        (Client::new(config, Box::new(transport)), seen)
    }

    fn error(code: &str, message: &str) -> String {
        format!(
            "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error><Type>Sender</Type>\
             <Code>{code}</Code><Message>{message}</Message></Error><RequestId>r</RequestId></ErrorResponse>"
        )
    }

    fn leak(s: String) -> &'static str {
        Box::leak(s.into_boxed_str())
    }

    #[test]
    fn signs_form_posts_for_the_right_service_and_region() {
        let ok = "<ListUsersResponse><ListUsersResult/></ListUsersResponse>";
        let sts_ok = "<GetCallerIdentityResponse/>";
        let (mut c, seen) = client(vec![Ok((200, ok)), Ok((200, sts_ok))]);
        assert!(c
            .call(Service::Iam, "ListUsers", &[("PathPrefix", "/a b/")], true)
            .is_ok());
        assert!(c.call(Service::Sts, "GetCallerIdentity", &[], true).is_ok());
        let seen = seen.borrow();
        let (url, headers, body) = &seen[0];
        assert_eq!(url, "http://127.0.0.1:5000");
        assert_eq!(body, "Action=ListUsers&Version=2010-05-08&PathPrefix=%2Fa%20b%2F");
        let header = |h: &[(String, String)], n: &str| {
            h.iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let auth = header(headers, "authorization");
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"), "{auth}");
        assert!(auth.contains("/us-east-1/iam/aws4_request"), "{auth}");
        assert!(
            auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token"),
            "{auth}"
        );
        assert_eq!(header(headers, "x-amz-security-token"), TOKEN);
        assert!(headers.iter().all(|(k, _)| k != "host"));
        let (url, headers, body) = &seen[1];
        assert_eq!(url, "https://sts.eu-west-1.amazonaws.com");
        assert_eq!(body, "Action=GetCallerIdentity&Version=2011-06-15");
        assert!(header(headers, "authorization").contains("/eu-west-1/sts/aws4_request"));
    }

    #[test]
    fn maps_aws_errors() {
        let cases = [
            ("NoSuchEntity", 404, "not-found"),
            ("AccessDenied", 403, "permission-denied"),
            ("InvalidClientTokenId", 403, "permission-denied"),
            ("SignatureDoesNotMatch", 403, "permission-denied"),
            ("Throttling", 400, "unavailable"),
            ("ServiceFailure", 500, "unavailable"),
            ("MalformedPolicyDocument", 400, "invalid-input"),
            ("ValidationError", 400, "invalid-input"),
            ("EntityAlreadyExists", 409, "conflict"),
            ("DeleteConflict", 409, "conflict"),
            ("SomethingNew", 503, "unavailable"),
            ("SomethingNew", 400, "invalid-input"),
        ];
        for (code, status, kind) in cases {
            let e = AwsError {
                service: Service::Iam,
                action: "CreateUser".into(),
                code: code.into(),
                message: "m".into(),
                status,
            };
            let got = match e.into_error() {
                Error::NotFound(_) => "not-found",
                Error::PermissionDenied(_) => "permission-denied",
                Error::Unavailable(_) => "unavailable",
                Error::InvalidInput(_) => "invalid-input",
                Error::Conflict(_) => "conflict",
                _ => "other",
            };
            assert_eq!(got, kind, "{code}");
        }
        let denied = AwsError {
            service: Service::Iam,
            action: "CreateUser".into(),
            code: "AccessDenied".into(),
            message: "User: arn:aws:iam::1:user/t is not authorized".into(),
            status: 403,
        }
        .into_error();
        assert_eq!(
            denied.message(),
            "IAM CreateUser failed: AWS answered AccessDenied (User: arn:aws:iam::1:user/t is not authorized); \
             allow `iam:CreateUser` in the IAM policy of the mount's access key"
        );
    }

    #[test]
    fn retries_only_idempotent_calls_on_throttling_and_5xx() {
        let throttled = leak(error("Throttling", "Rate exceeded"));
        let ok = "<DeleteUserResponse/>";
        let (mut c, seen) = client(vec![Ok((400, throttled)), Ok((503, "<html/>")), Ok((200, ok))]);
        assert!(c.call(Service::Iam, "DeleteUser", &[("UserName", "u")], true).is_ok());
        assert_eq!(seen.borrow().len(), 3);

        let (mut c, seen) = client(vec![Ok((400, throttled)), Ok((200, ok))]);
        let e = c.call(Service::Iam, "CreateUser", &[("UserName", "u")], false);
        assert!(matches!(e, Err(CallError::Aws(ref a)) if a.code == "Throttling"));
        assert_eq!(seen.borrow().len(), 1);

        let unreachable = || Err(Error::unavailable("connection refused"));
        let (mut c, seen) = client(vec![unreachable(), unreachable(), unreachable(), Ok((200, ok))]);
        let e = c
            .call(Service::Iam, "DeleteUser", &[], true)
            .err()
            .map(CallError::into_error);
        assert!(matches!(e, Some(Error::Unavailable(ref m)) if m == "IAM DeleteUser: connection refused"));
        assert_eq!(seen.borrow().len(), MAX_ATTEMPTS);

        let no_such = leak(error("NoSuchEntity", "The user with name u cannot be found."));
        let (mut c, seen) = client(vec![Ok((404, no_such)), Ok((200, ok))]);
        let e = c.call(Service::Iam, "DeleteUser", &[], true);
        assert!(matches!(e, Err(ref e) if e.is_not_found()));
        assert_eq!(seen.borrow().len(), 1);
    }

    #[test]
    fn errors_never_carry_secrets() {
        let echo = leak(error(
            "SignatureDoesNotMatch",
            &format!("The canonical request was x-amz-security-token:{TOKEN} signed with {SECRET}"),
        ));
        let (mut c, _) = client(vec![Ok((403, echo))]);
        let e = c
            .call(Service::Sts, "AssumeRole", &[], false)
            .err()
            .map(CallError::into_error);
        let message = e.as_ref().map(Error::message).unwrap_or_default();
        assert!(matches!(e, Some(Error::PermissionDenied(_))), "{e:?}");
        assert!(
            message.contains("STS AssumeRole failed: AWS answered SignatureDoesNotMatch"),
            "{message}"
        );
        assert!(message.contains("[redacted]"), "{message}");
        assert!(!message.contains(SECRET) && !message.contains(TOKEN), "{message}");

        let long = leak(error("ValidationError", &"x".repeat(5000)));
        let (mut c, _) = client(vec![Ok((400, long))]);
        let e = c
            .call(Service::Sts, "AssumeRole", &[], false)
            .err()
            .map(CallError::into_error);
        assert!(e.is_some_and(|e| e.message().len() < MAX_MESSAGE + 200));
    }

    #[test]
    fn answers_that_are_not_aws_xml_are_refused() {
        let (mut c, _) = client(vec![Ok((200, "<html>hello</html>")), Ok((502, "Bad Gateway"))]);
        let e = c
            .call(Service::Iam, "CreateUser", &[], false)
            .err()
            .map(CallError::into_error);
        assert!(
            matches!(e, Some(Error::Unavailable(ref m)) if m.contains("is `iam_endpoint` an IAM endpoint?")),
            "{e:?}"
        );
        let e = c
            .call(Service::Iam, "CreateUser", &[], false)
            .err()
            .map(CallError::into_error);
        assert!(
            matches!(e, Some(Error::Unavailable(ref m)) if m.contains("HTTP 502")),
            "{e:?}"
        );
    }

    #[test]
    fn splits_endpoints() {
        assert_eq!(authority("https://iam.amazonaws.com"), "iam.amazonaws.com");
        assert_eq!(authority("http://127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(path("http://127.0.0.1:5000"), "/");
        assert_eq!(path("http://proxy:1/aws"), "/aws");
        assert_eq!(form_encode(&[("a", "x=y&z"), ("b~", "é")]), "a=x%3Dy%26z&b~=%C3%A9");
    }
}
