//! Native unit tests of the parts that need no host: names, labels,
//! timestamps, checksums, configuration and the service-account JWT. The
//! plugin against a real Secret Manager API is tests/e2e/provider_gcp.rs.

#![allow(clippy::unwrap_used)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::signature::Verifier;
use rsa::RsaPrivateKey;

use super::*;
use crate::api::{crc32c, rfc3339_ms};
use crate::auth::{form_encode, ServiceAccount, ASSERTION_AUDIENCE, SCOPE};

fn config(pairs: &[(&str, &str)]) -> Config {
    Config::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

fn key_json(key: &RsaPrivateKey) -> String {
    let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
    serde_json::json!({
        "type": "service_account",
        "project_id": "from-key",
        "private_key_id": "kid-1",
        "private_key": pem.as_str(),
        "client_email": "tresor@from-key.iam.gserviceaccount.com",
        "token_uri": "https://oauth2.googleapis.com/token",
    })
    .to_string()
}

fn test_key() -> RsaPrivateKey {
    // Small, so debug builds make it quickly; never used outside tests.
    RsaPrivateKey::new(&mut rand_core::OsRng, 1024).unwrap()
}

#[test]
fn paths_map_to_secret_ids_and_back() {
    assert_eq!(NAMES.encode("apps/db-password").unwrap(), "apps_db-password");
    assert_eq!(NAMES.encode("apps/db_password").unwrap(), "apps_db__5fpassword");
    assert_eq!(NAMES.encode("Team/API.key").unwrap(), "Team_API__2ekey");
    for path in ["a", "apps/db", "x_/_y", "ä/b c", "-/-"] {
        let id = NAMES.encode(path).unwrap();
        assert!(
            id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "{id}"
        );
        assert_eq!(NAMES.decode(&id).as_deref(), Some(path));
    }
    // Ids made by other tools that are not an encoding are skipped.
    assert_eq!(NAMES.decode("trailing_"), None);
    assert!(NAMES.encode(&"a".repeat(255)).is_ok());
    assert!(matches!(NAMES.encode(&"é".repeat(40)), Err(Error::InvalidInput(m)) if m.contains("255")));
}

#[test]
fn metadata_must_fit_label_rules() {
    let ok = labels_of(vec![("team".into(), "core-1".into()), ("env_x".into(), "".into())]).unwrap();
    assert_eq!(ok.get("team").map(String::as_str), Some("core-1"));
    for (k, v) in [
        ("Team", "x"),
        ("1team", "x"),
        ("", "x"),
        ("team", "Core"),
        ("team", "a b"),
        ("team", &"x".repeat(64)),
    ] {
        let result = labels_of(vec![(k.into(), v.into())]);
        assert!(matches!(&result, Err(Error::InvalidInput(_))), "{k:?}={v:?}");
    }
    let many: Metadata = (0..65).map(|i| (format!("k{i}"), String::new())).collect();
    assert!(matches!(labels_of(many), Err(Error::InvalidInput(m)) if m.contains("64")));
}

#[test]
fn reads_rfc3339_timestamps() {
    assert_eq!(rfc3339_ms("1970-01-01T00:00:00Z"), 0);
    assert_eq!(rfc3339_ms("2024-02-29T12:34:56.789Z"), 1_709_210_096_789);
    assert_eq!(rfc3339_ms("2024-02-29T12:34:56.789123456Z"), 1_709_210_096_789);
    assert_eq!(rfc3339_ms("2024-02-29T13:34:56.7+01:00"), 1_709_210_096_700);
    assert_eq!(rfc3339_ms("2024-02-29T11:34:56-01:00"), 1_709_210_096_000);
    for bad in [
        "",
        "2024-02-29",
        "2024-13-01T00:00:00Z",
        "2024-01-01T00:00:00",
        "x-y-zT1:2:3Z",
    ] {
        assert_eq!(rfc3339_ms(bad), 0, "{bad}");
    }
}

#[test]
fn checksums_are_crc32c() {
    assert_eq!(crc32c(b""), 0);
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
}

#[test]
fn versions_are_positive_numbers() {
    for v in ["1", "42", "9999999999"] {
        assert!(is_version_number(v), "{v}");
    }
    for v in ["", "0", "01", "-1", "1.0", "latest", "a1"] {
        assert!(!is_version_number(v), "{v}");
    }
}

#[test]
fn form_encoding_escapes_everything_but_unreserved() {
    assert_eq!(form_encode("a-b_c.d~e"), "a-b_c.d~e");
    assert_eq!(form_encode("a b+c/d=e&f:"), "a%20b%2Bc%2Fd%3De%26f%3A");
}

#[test]
fn configuration_errors_name_the_key() {
    let missing = GcpProvider::configure(config(&[("project", "p")]));
    assert!(matches!(missing, Err(Error::InvalidInput(m)) if m.contains("access_token")));
    let both = GcpProvider::configure(config(&[
        ("project", "p"),
        ("access_token", "t"),
        ("service_account_json", "{}"),
    ]));
    assert!(matches!(both, Err(Error::InvalidInput(m)) if m.contains("exactly one")));
    let no_project = GcpProvider::configure(config(&[("access_token", "t")]));
    assert!(matches!(no_project, Err(Error::InvalidInput(m)) if m.contains("`project`")));
    let bad_project = GcpProvider::configure(config(&[("access_token", "t"), ("project", "a/b")]));
    assert!(matches!(bad_project, Err(Error::InvalidInput(m)) if m.contains("`project`")));
    let bad_endpoint = GcpProvider::configure(config(&[
        ("access_token", "t"),
        ("project", "p"),
        ("endpoint", "ftp://x"),
    ]));
    assert!(matches!(bad_endpoint, Err(Error::InvalidInput(m)) if m.contains("`endpoint`")));
    let with_path = GcpProvider::configure(config(&[
        ("access_token", "t"),
        ("project", "p"),
        ("endpoint", "https://x/v1"),
    ]));
    assert!(matches!(with_path, Err(Error::InvalidInput(_))));
    let ok = GcpProvider::configure(config(&[
        ("access_token", "t"),
        ("project", "p"),
        ("endpoint", "http://127.0.0.1:9/"),
    ]))
    .unwrap();
    assert_eq!(ok.client.endpoint, "http://127.0.0.1:9");
    assert_eq!(ok.client.secrets_url(), "http://127.0.0.1:9/v1/projects/p/secrets");
    assert!(!ok.capabilities().check_and_set && ok.capabilities().soft_delete);
}

#[test]
fn configure_refuses_a_misspelt_key() {
    let typo = GcpProvider::configure(config(&[("access_token", "s3cr3t"), ("projet", "p")]));
    assert!(
        matches!(typo, Err(Error::InvalidInput(ref m))
            if m.contains("`projet`") && m.contains("did you mean `project`") && !m.contains("s3cr3t")),
        "{:?}",
        typo.err()
    );
}

#[test]
fn service_account_keys_are_checked_without_echoing_them() {
    let secret_looking = r#"{"type":"service_account","client_email":"a@b","private_key":"-----BEGIN PRIVATE KEY-----\nS3CR3T\n-----END PRIVATE KEY-----\n"}"#;
    match ServiceAccount::from_json(secret_looking) {
        Err(Error::InvalidInput(m)) => {
            assert!(m.contains("private_key") && !m.contains("S3CR3T"), "{m}");
        }
        _ => panic!("a broken key must be refused"),
    }
    assert!(matches!(ServiceAccount::from_json("not json"), Err(Error::InvalidInput(m)) if m.contains("JSON")));
    assert!(matches!(
        ServiceAccount::from_json(r#"{"type":"authorized_user"}"#),
        Err(Error::InvalidInput(m)) if m.contains("authorized_user")
    ));
    let key = test_key();
    let account = ServiceAccount::from_json(&key_json(&key)).unwrap();
    assert_eq!(account.project_id.as_deref(), Some("from-key"));
    assert_eq!(account.token_uri, "https://oauth2.googleapis.com/token");
}

#[test]
fn assertions_are_rs256_jwts_google_accepts() {
    let key = test_key();
    let account = ServiceAccount::from_json(&key_json(&key)).unwrap();
    let jwt = account.assertion(1_700_000_000);
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(header, json!({"alg": "RS256", "typ": "JWT", "kid": "kid-1"}));
    assert_eq!(
        claims,
        json!({
            "iss": "tresor@from-key.iam.gserviceaccount.com",
            "scope": SCOPE,
            "aud": ASSERTION_AUDIENCE,
            "iat": 1_700_000_000u64,
            "exp": 1_700_003_600u64,
        })
    );
    let signature = Signature::try_from(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().as_slice()).unwrap();
    let verifier = VerifyingKey::<sha2::Sha256>::new(key.to_public_key());
    let signed = format!("{}.{}", parts[0], parts[1]);
    assert!(verifier.verify(signed.as_bytes(), &signature).is_ok());
    assert!(verifier.verify(b"something else", &signature).is_err());
}
