//! What a KV `data` object may look like before it is stored: nested at
//! most [`MAX_DEPTH`] levels (deeper objects cannot be read back by Vault's
//! own clients: Go's decoder stops at its depth limit, Python's at its
//! recursion limit), and one value per key at every level (JSON parsers
//! disagree on which of two values they keep).

use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::error::{printable, ApiError};

/// How deeply objects and arrays may nest inside `data` (`data` itself is
/// level 1).
pub const MAX_DEPTH: usize = 64;

/// Refuse a `data` value nested deeper than [`MAX_DEPTH`] or holding a key
/// twice in one object. The error names the key or the limit, never a value.
pub fn check_data(data: &RawValue) -> Result<(), ApiError> {
    let mut de = serde_json::Deserializer::from_str(data.get());
    Check { depth: 1 }
        .deserialize(&mut de)
        .map_err(|e| ApiError::bad_request(format!("`data` is refused: {e}")))
}

/// Walks one value at `depth`, keeping nothing of it.
#[derive(Clone, Copy)]
struct Check {
    depth: usize,
}

impl Check {
    /// The walker for the values inside a container at this depth.
    fn nested<E: serde::de::Error>(self) -> Result<Check, E> {
        if self.depth > MAX_DEPTH {
            return Err(E::custom(format!(
                "it nests objects or arrays more than {MAX_DEPTH} levels deep; flatten it"
            )));
        }
        Ok(Check { depth: self.depth + 1 })
    }
}

impl<'de> DeserializeSeed<'de> for Check {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Check {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.nested()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.nested()?;
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if !seen.insert(key.clone()) {
                return Err(A::Error::custom(format!(
                    "key `{}` appears twice in one object; send one value per key",
                    printable(&key)
                )));
            }
            map.next_value_seed(inner)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<(), String> {
        let raw: Box<RawValue> = serde_json::from_str(text).unwrap();
        check_data(&raw).map_err(|e| e.errors.join(" "))
    }

    fn nested(levels: usize) -> String {
        format!("{}1{}", "{\"a\":".repeat(levels), "}".repeat(levels))
    }

    #[test]
    fn depth_is_limited_and_named() {
        assert!(check(&nested(MAX_DEPTH)).is_ok());
        let refused = check(&nested(MAX_DEPTH + 1)).unwrap_err();
        assert!(refused.contains("64 levels"), "{refused}");
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(check(&deep).unwrap_err().contains("64 levels"));
    }

    #[test]
    fn duplicate_keys_are_refused_without_their_values() {
        let refused = check(r#"{"user":"a","password":"s3cr3t-one","password":"s3cr3t-two"}"#).unwrap_err();
        assert!(refused.contains("`password` appears twice"), "{refused}");
        assert!(!refused.contains("s3cr3t"), "{refused}");
        let nested = check(r#"{"a":{"k":1,"k":2}}"#).unwrap_err();
        assert!(nested.contains("`k`"), "{nested}");
        // Escapes that spell the same key are the same key.
        assert!(check(r#"{"k":1,"\u006b":2}"#).is_err());
        assert!(check(r#"{"a":{"k":1},"b":{"k":2},"list":[{"k":1},{"k":1}]}"#).is_ok());
    }
}
