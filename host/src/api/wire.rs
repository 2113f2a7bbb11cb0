//! Request bodies in, Vault-shaped responses out. Buffers that may hold a
//! secret value are [`Zeroizing`] and grown by hand so that no reallocation
//! leaves a copy behind.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{HeaderMap, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::error::ApiError;

/// The body type of every response.
pub type Body = Full<Bytes>;

/// Read the whole body, refusing more than `limit` bytes.
pub async fn read_body(headers: &HeaderMap, mut body: Incoming, limit: usize) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::too_large(limit));
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(declared.unwrap_or(0).min(limit)));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad_request(format!("reading the request body failed: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        if buf.len() + data.len() > limit {
            return Err(ApiError::too_large(limit));
        }
        extend(&mut buf, &data);
    }
    Ok(buf)
}

/// Append to a zeroizing buffer; when it must grow, the old allocation is
/// zeroized (a plain `Vec` would free it with the bytes still in it).
pub fn extend(buf: &mut Zeroizing<Vec<u8>>, data: &[u8]) {
    if buf.capacity() - buf.len() < data.len() {
        let mut bigger = Zeroizing::new(Vec::with_capacity((buf.len() + data.len()).max(buf.capacity() * 2)));
        bigger.extend_from_slice(buf);
        *buf = bigger;
    }
    buf.extend_from_slice(data);
}

/// Parse a JSON body; an empty body is `{}`.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        &b"{}"[..]
    } else {
        body
    };
    serde_json::from_slice(body).map_err(json_error)
}

/// A JSON parse error as a 400. Type errors (`invalid type: string "..."`)
/// quote the input, which may be a secret value: they are reported by
/// position only.
pub fn json_error(e: serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof => ApiError::bad_request(format!("failed to parse JSON input: {e}")),
        Category::Data | Category::Io => ApiError::bad_request(format!(
            "failed to parse JSON input: a field has the wrong type or value (line {}, column {})",
            e.line(),
            e.column()
        )),
    }
}

/// A response with `bytes` as its JSON body.
pub fn json_bytes(status: StatusCode, bytes: Bytes) -> Response<Body> {
    let mut r = Response::new(Full::new(bytes));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A JSON response.
pub fn json(status: StatusCode, value: &Value) -> Response<Body> {
    json_bytes(status, Bytes::from(value.to_string()))
}

/// 204 No Content.
pub fn no_content() -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

/// A secret-carrying body: the buffer is zeroized when hyper drops it.
pub fn zeroizing_bytes(buf: Zeroizing<Vec<u8>>) -> Bytes {
    Bytes::from_owner(buf)
}

/// Vault's response envelope around `data` (and `auth`, `warnings`).
pub fn envelope(request_id: &str, data: Value, auth: Value, warnings: &[String]) -> Value {
    json!({
        "request_id": request_id,
        "lease_id": "",
        "renewable": false,
        "lease_duration": 0,
        "data": data,
        "wrap_info": null,
        "warnings": if warnings.is_empty() { Value::Null } else { json!(warnings) },
        "auth": auth,
    })
}

/// Vault's envelope with `data` given as raw JSON text (which may hold a
/// secret value), written into a zeroizing buffer sized up front.
pub fn envelope_raw(request_id: &str, data: &[u8], warnings: &[String]) -> Zeroizing<Vec<u8>> {
    let mut head = envelope(request_id, Value::Null, Value::Null, warnings).to_string();
    // `"data":null` is replaced by the raw data (serde_json writes no spaces).
    let at = head.find("\"data\":null").expect("the envelope has a data field");
    let tail = head.split_off(at + "\"data\":".len() + "null".len());
    head.truncate(at + "\"data\":".len());
    let mut out = Zeroizing::new(Vec::with_capacity(head.len() + data.len() + tail.len()));
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(tail.as_bytes());
    out
}

/// The error response.
pub fn error_response(e: ApiError) -> Response<Body> {
    let mut r = match &e.body {
        Some(body) => json(e.status, body),
        None => json(e.status, &json!({ "errors": e.errors })),
    };
    if let Some(allow) = e.allow {
        r.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
    }
    r
}

/// Unix milliseconds as RFC 3339 UTC (`2025-01-01T12:00:00.123Z`); the
/// empty string for 0 (unknown).
pub fn rfc3339_ms(ms: u64) -> String {
    if ms == 0 {
        return String::new();
    }
    crate::audit::format_rfc3339_millis(UNIX_EPOCH + std::time::Duration::from_millis(ms))
}

/// Now, in unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(rfc3339_ms(0), "");
        assert_eq!(rfc3339_ms(1), "1970-01-01T00:00:00.001Z");
        assert_eq!(rfc3339_ms(951_782_400_007), "2000-02-29T00:00:00.007Z");
        assert_eq!(rfc3339_ms(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
    }

    #[test]
    fn raw_envelope_is_valid_json_with_the_data() {
        let out = envelope_raw("r1", br#"{"data":{"k":"v"},"metadata":{}}"#, &["w".into()]);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["data"]["data"]["k"], "v");
        assert_eq!(v["request_id"], "r1");
        assert_eq!(v["warnings"][0], "w");
    }

    #[test]
    fn extend_keeps_bytes() {
        let mut b = Zeroizing::new(Vec::new());
        for i in 0..100u8 {
            extend(&mut b, &[i; 7]);
        }
        assert_eq!(b.len(), 700);
        assert_eq!(b[699], 99);
    }
}
