//! AWS Signature Version 4: signs a request with an access key, so AWS
//! (or anything speaking its APIs) knows who sent it and that nobody
//! changed it on the way.
//!
//! The steps, as AWS documents them: build the *canonical request*
//! (method, path, sorted query, sorted lower-case headers, the list of
//! signed headers, the payload's SHA-256), hash it into the *string to
//! sign* with the time and the credential scope
//! (`date/region/service/aws4_request`), derive the *signing key* by
//! chaining HMAC-SHA256 over `"AWS4" + secret key`, date, region, service
//! and `aws4_request`, and sign. The result goes in the `Authorization`
//! header.
//!
//! A plugin calling an AWS API signs each request with [`authorization`]
//! and sends the signed headers with it (the host needs
//! `grants.clock = true`: the signature carries the time):
//!
//! ```
//! use tresor_plugin_sdk::sigv4::{self, Credentials, Signable};
//!
//! let credentials = Credentials {
//!     access_key_id: "AKIDEXAMPLE".into(),
//!     secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
//!     session_token: None,
//! };
//! let amz_date = sigv4::amz_date(1_440_938_160); // 20150830T123600Z
//! let body = "Action=ListUsers&Version=2010-05-08";
//! let headers = [
//!     ("content-type", "application/x-www-form-urlencoded; charset=utf-8"),
//!     ("host", "iam.amazonaws.com"),
//!     ("x-amz-date", amz_date.as_str()),
//! ];
//! let signable = Signable { method: "POST", path: "/", query: &[], headers: &headers, payload: body.as_bytes() };
//! let authorization = sigv4::authorization(&credentials, "us-east-1", "iam", &amz_date, &signable);
//! assert!(authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request"));
//! // Send `authorization` as the `Authorization` header, with every header in `headers`.
//! ```

use sha2::{Digest, Sha256};

/// The credentials a request is signed with.
pub struct Credentials {
    /// The access key id (`AKIA...`); not secret, sent in the clear.
    pub access_key_id: String,
    /// The secret access key; never leaves the plugin.
    pub secret_access_key: String,
    /// The session token of temporary credentials, sent as
    /// `X-Amz-Security-Token` (and signed).
    pub session_token: Option<String>,
}

/// What to sign.
pub struct Signable<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The URL path, already percent-encoded (`/` for the JSON APIs).
    pub path: &'a str,
    /// Query parameters, not encoded.
    pub query: &'a [(&'a str, &'a str)],
    /// The headers to sign, `host` included (any case, any order).
    pub headers: &'a [(&'a str, &'a str)],
    /// The body.
    pub payload: &'a [u8],
}

/// Signs `request` for `service` in `region` at `amz_date`
/// (`20150830T123600Z`) and returns the `Authorization` header value.
pub fn authorization(
    credentials: &Credentials,
    region: &str,
    service: &str,
    amz_date: &str,
    request: &Signable<'_>,
) -> String {
    let (canonical, signed_headers) = canonical_request(request);
    let date = &amz_date[..8.min(amz_date.len())];
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let key = signing_key(&credentials.secret_access_key, date, region, service);
    let signature = hex(&hmac_sha256(&key, to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        credentials.access_key_id
    )
}

/// The canonical request and its signed-headers list.
pub fn canonical_request(request: &Signable<'_>) -> (String, String) {
    let mut query: Vec<(String, String)> = request
        .query
        .iter()
        .map(|(k, v)| (uri_encode(k), uri_encode(v)))
        .collect();
    query.sort();
    let query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");

    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), collapse_spaces(value)))
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed_headers = headers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(";");

    let canonical = format!(
        "{}\n{}\n{query}\n{canonical_headers}\n{signed_headers}\n{}",
        request.method,
        if request.path.is_empty() { "/" } else { request.path },
        hex(&Sha256::digest(request.payload))
    );
    (canonical, signed_headers)
}

/// The key that signs requests of one day, region and service.
pub fn signing_key(secret_access_key: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac_sha256(format!("AWS4{secret_access_key}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block_key = [0u8; BLOCK];
    if key.len() > BLOCK {
        block_key[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block_key[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block_key.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block_key.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SigV4's percent-encoding: everything but `A-Z a-z 0-9 - _ . ~`.
fn uri_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A header value trimmed, with runs of spaces made one.
fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The `X-Amz-Date` spelling (`20150830T123600Z`) of a time in seconds since
/// the Unix epoch.
pub fn amz_date(unix_seconds: u64) -> String {
    let days = i64::try_from(unix_seconds / 86_400).unwrap_or(i64::MAX);
    let rest = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's published example credentials.
    fn example_credentials() -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231 test cases 1 and 6 (a key longer than a block).
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn derives_the_documented_signing_key() {
        // AWS General Reference, "Examples of how to derive a signing key".
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex(&key),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
    }

    #[test]
    fn signs_the_documented_iam_request() {
        // AWS General Reference, the complete SigV4 example: IAM ListUsers.
        let request = Signable {
            method: "GET",
            path: "/",
            query: &[("Version", "2010-05-08"), ("Action", "ListUsers")],
            headers: &[
                ("Host", "iam.amazonaws.com"),
                ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            payload: b"",
        };
        let (canonical, signed) = canonical_request(&request);
        assert_eq!(signed, "content-type;host;x-amz-date");
        assert_eq!(
            hex(&Sha256::digest(canonical.as_bytes())),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        assert_eq!(
            authorization(&example_credentials(), "us-east-1", "iam", "20150830T123600Z", &request),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    #[test]
    fn signs_the_get_vanilla_test_suite_request() {
        // The SigV4 test suite's `get-vanilla` case.
        let request = Signable {
            method: "GET",
            path: "/",
            query: &[],
            headers: &[("Host", "example.amazonaws.com"), ("X-Amz-Date", "20150830T123600Z")],
            payload: b"",
        };
        let auth = authorization(
            &example_credentials(),
            "us-east-1",
            "service",
            "20150830T123600Z",
            &request,
        );
        assert!(
            auth.ends_with("Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
            "{auth}"
        );
    }

    #[test]
    fn canonicalizes_queries_and_header_values() {
        let request = Signable {
            method: "GET",
            path: "/",
            query: &[("b", "x y"), ("a", "1/2")],
            headers: &[("X-Spaced", "  a   b  "), ("host", "h")],
            payload: b"",
        };
        let (canonical, _) = canonical_request(&request);
        assert!(
            canonical.starts_with("GET\n/\na=1%2F2&b=x%20y\nhost:h\nx-spaced:a b\n"),
            "{canonical}"
        );
    }

    #[test]
    fn formats_amz_dates() {
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(1_440_938_160), "20150830T123600Z");
        assert_eq!(amz_date(951_825_600), "20000229T120000Z");
    }
}
