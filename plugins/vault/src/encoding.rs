//! How Tresor values, versions, times and paths are spelled in Vault's KV
//! version 2 API.
//!
//! A Tresor value is bytes; a KV v2 secret is a JSON object. A value that
//! is a JSON object in canonical form (compact, keys sorted, numbers whole
//! and within ±2^53, as Vault itself would give it back) is stored as that
//! object, so `bao kv get` shows its fields. Every other value (text,
//! binary, other JSON) is stored as `{"value": "<base64 of the bytes>"}`.
//! An object whose only field is a string `value` is always wrapped, so
//! reading back is never ambiguous.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{Map, Value};

/// The field holding wrapped bytes.
pub const WRAPPER_FIELD: &str = "value";

/// The largest integer every JSON implementation (Vault's Go float64
/// included) keeps exactly.
const MAX_EXACT_INTEGER: u64 = 1 << 53;

/// The KV `data` object that stores `bytes`.
pub fn encode_value(bytes: &[u8]) -> Value {
    if let Some(object) = canonical_object(bytes) {
        if !is_wrapper(&object) {
            return Value::Object(object);
        }
    }
    let mut wrapper = Map::new();
    wrapper.insert(WRAPPER_FIELD.to_owned(), Value::String(BASE64.encode(bytes)));
    Value::Object(wrapper)
}

/// The bytes stored as the KV `data` object `data`: the unwrapped bytes of
/// a `{"value": "<base64>"}` wrapper, the compact JSON of any other object.
pub fn decode_value(data: &Value) -> Vec<u8> {
    if let Value::Object(object) = data {
        if is_wrapper(object) {
            if let Some(Value::String(encoded)) = object.get(WRAPPER_FIELD) {
                if let Ok(bytes) = BASE64.decode(encoded) {
                    return bytes;
                }
            }
        }
    }
    // An object written by another Vault client: its canonical JSON.
    serde_json::to_vec(&sorted(data)).unwrap_or_default()
}

fn is_wrapper(object: &Map<String, Value>) -> bool {
    object.len() == 1 && matches!(object.get(WRAPPER_FIELD), Some(Value::String(_)))
}

/// `bytes` parsed as a JSON object, if they are exactly the canonical form
/// of one (so storing the object and reading it back gives the same bytes).
fn canonical_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    if bytes.first() != Some(&b'{') {
        return None;
    }
    let value: Value = serde_json::from_slice(bytes).ok()?;
    if !survives_vault(&value) {
        return None;
    }
    let again = serde_json::to_vec(&sorted(&value)).ok()?;
    if again != bytes {
        return None;
    }
    match value {
        Value::Object(object) => Some(object),
        _ => None,
    }
}

/// True when Vault stores `value` without changing it: its numbers are
/// whole and small enough for a float64.
fn survives_vault(value: &Value) -> bool {
    match value {
        Value::Number(n) => {
            n.as_u64().is_some_and(|n| n <= MAX_EXACT_INTEGER)
                || n.as_i64().is_some_and(|n| n.unsigned_abs() <= MAX_EXACT_INTEGER)
        }
        Value::Array(items) => items.iter().all(survives_vault),
        Value::Object(object) => object.values().all(survives_vault),
        Value::Null | Value::Bool(_) | Value::String(_) => true,
    }
}

/// `value` with every object's keys in byte order, as Vault answers them.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(object) => {
            let mut keys: Vec<&String> = object.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for key in keys {
                out.insert(key.clone(), sorted(&object[key]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// A Tresor version identifier as a KV version number (1, 2, ...); `None`
/// for anything else, which Vault cannot have (Vault reads `0` as
/// "latest", so it is refused too).
pub fn parse_version(version: &str) -> Option<u64> {
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    version.parse().ok().filter(|n| *n > 0)
}

/// Milliseconds since the Unix epoch of an RFC 3339 UTC time as Vault
/// writes it (`2024-11-13T21:51:50.898782695Z`); 0 when it is not one.
pub fn parse_time_ms(text: &str) -> u64 {
    parse_time(text).unwrap_or(0)
}

fn parse_time(text: &str) -> Option<u64> {
    let (date, time) = text.split_once('T')?;
    let mut date_parts = date.splitn(3, '-');
    let year: i64 = date_parts.next()?.parse().ok()?;
    let month: u32 = date_parts.next()?.parse().ok()?;
    let day: u32 = date_parts.next()?.parse().ok()?;
    // The offset: `Z` or `+hh:mm` / `-hh:mm`.
    let (clock, offset_s) = if let Some(clock) = time.strip_suffix('Z') {
        (clock, 0i64)
    } else {
        let at = time.rfind(['+', '-'])?;
        let (clock, offset) = time.split_at(at);
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let (h, m) = offset[1..].split_once(':')?;
        (
            clock,
            sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60),
        )
    };
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut hms_parts = hms.splitn(3, ':');
    let hour: i64 = hms_parts.next()?.parse().ok()?;
    let minute: i64 = hms_parts.next()?.parse().ok()?;
    let second: i64 = hms_parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let millis: i64 = if fraction.is_empty() {
        0
    } else {
        if !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        format!("{fraction:0<3}")[..3].parse().ok()?
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_s;
    u64::try_from(seconds * 1000 + millis).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// `path` with every segment percent-encoded for a URL (the `/` between
/// segments kept).
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        for byte in segment.bytes() {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(byte));
            } else {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn round_trip(bytes: &[u8]) -> Vec<u8> {
        // Through JSON text, as over the wire.
        let stored: Value = serde_json::from_slice(&serde_json::to_vec(&encode_value(bytes)).unwrap()).unwrap();
        decode_value(&stored)
    }

    #[test]
    fn canonical_objects_are_stored_as_is() {
        let v = encode_value(br#"{"password":"p","user":"u"}"#);
        assert_eq!(v, serde_json::json!({"password": "p", "user": "u"}));
        let v = encode_value(br#"{"a":[1,-2,true,null,{"b":"c"}]}"#);
        assert_eq!(v, serde_json::json!({"a": [1, -2, true, null, {"b": "c"}]}));
    }

    #[test]
    fn everything_else_is_wrapped() {
        for bytes in [
            &b"plain text"[..],
            b"",
            b"\x00\xff\xfe binary",
            br#"{ "spaced": 1 }"#,
            br#"{"b":1,"a":2}"#,
            br#"{"x":1.0}"#,
            br#"{"big":123456789012345678901234567890}"#,
            br#"{"value":"aGk="}"#,
            br#"["an array"]"#,
            b"{not json",
        ] {
            let v = encode_value(bytes);
            assert!(
                v.get(WRAPPER_FIELD).is_some() && v.as_object().unwrap().len() == 1,
                "{bytes:?}"
            );
            assert_eq!(round_trip(bytes), bytes, "{bytes:?}");
        }
    }

    #[test]
    fn every_value_round_trips() {
        for bytes in [
            &br#"{"password":"p","user":"u"}"#[..],
            br#"{"value":1}"#,
            br#"{"value":"x","y":"z"}"#,
            "{\"é\":\"ü\u{2028}<>&\"}".as_bytes(),
            b"line\nbreak",
        ] {
            assert_eq!(round_trip(bytes), bytes, "{bytes:?}");
        }
    }

    #[test]
    fn objects_from_other_clients_read_as_compact_json() {
        let data = serde_json::json!({"user": "u", "pass": "p"});
        assert_eq!(decode_value(&data), br#"{"pass":"p","user":"u"}"#);
        // A lone `value` that is not base64 is not a wrapper.
        assert_eq!(
            decode_value(&serde_json::json!({"value": "hello"})),
            br#"{"value":"hello"}"#
        );
    }

    #[test]
    fn versions_are_positive_numbers() {
        assert_eq!(parse_version("1"), Some(1));
        assert_eq!(parse_version("42"), Some(42));
        for bad in [
            "",
            "0",
            "-1",
            "+1",
            "1.0",
            "abc",
            "AWSCURRENT",
            "99999999999999999999999",
        ] {
            assert_eq!(parse_version(bad), None, "{bad}");
        }
    }

    #[test]
    fn parses_vault_times() {
        assert_eq!(parse_time_ms("1970-01-01T00:00:00Z"), 0);
        assert_eq!(parse_time_ms("2024-11-13T21:51:50.898782695Z"), 1_731_534_710_898);
        assert_eq!(parse_time_ms("2024-11-13T22:51:50.898+01:00"), 1_731_534_710_898);
        assert_eq!(parse_time_ms("2000-02-29T12:00:00Z"), 951_825_600_000);
        for bad in [
            "",
            "n/a",
            "2024-13-01T00:00:00Z",
            "2024-11-13 21:51:50Z",
            "2024-11-13T21:51:50.x9Z",
        ] {
            assert_eq!(parse_time_ms(bad), 0, "{bad}");
        }
    }

    #[test]
    fn encodes_path_segments() {
        assert_eq!(encode_path("app/db-password"), "app/db-password");
        assert_eq!(encode_path("with space/é?#%"), "with%20space/%C3%A9%3F%23%25");
    }
}
