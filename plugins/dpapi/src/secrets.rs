//! The secrets file: a JSON object mapping each secret's name to its Windows
//! DPAPI blob in hex, as existing Windows deployments keep them:
//!
//! ```json
//! {
//!   "db-password": "01000000d08c9ddf0115d1118c7a00c04fc297eb0100...",
//!   "app/api-token": "01000000d08c9ddf0115d1118c7a00c04fc297eb0100..."
//! }
//! ```
//!
//! Parsing checks the whole file (every name is a valid secret path, every
//! value a non-empty hex string), so a broken file is reported the same way
//! by every operation. Error messages name the file and the entry, never a
//! blob.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use tresor_plugin_sdk::{validate_path, Error};

/// The largest secrets file read, in bytes.
pub const MAX_FILE_LEN: u64 = 16 << 20;

/// The secrets of one file: name → DPAPI blob.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Secrets {
    blobs: BTreeMap<String, Vec<u8>>,
}

impl Secrets {
    /// Reads and parses the file at `path`; `shown` is how messages name it.
    pub fn load(path: &Path, shown: &str) -> Result<Secrets, Error> {
        let file = std::fs::File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::invalid_input(format!(
                "the secrets file `{shown}` does not exist in the mount's directory: \
                 put it there or set the mount's config key `file`"
            )),
            _ => Error::unavailable(format!("cannot open the secrets file `{shown}`: {e}")),
        })?;
        let mut text = Vec::new();
        file.take(MAX_FILE_LEN + 1)
            .read_to_end(&mut text)
            .map_err(|e| Error::unavailable(format!("cannot read the secrets file `{shown}`: {e}")))?;
        if text.len() as u64 > MAX_FILE_LEN {
            return Err(Error::invalid_input(format!(
                "the secrets file `{shown}` is larger than {} MiB",
                MAX_FILE_LEN >> 20
            )));
        }
        Secrets::parse(&text, shown)
    }

    /// Parses the text of a secrets file named `shown`.
    pub fn parse(text: &[u8], shown: &str) -> Result<Secrets, Error> {
        let value: serde_json::Value = serde_json::from_slice(text).map_err(|e| {
            Error::invalid_input(format!(
                "the secrets file `{shown}` is not valid JSON ({e}): \
                 expected an object mapping each secret name to its DPAPI blob in hex"
            ))
        })?;
        let serde_json::Value::Object(entries) = value else {
            return Err(Error::invalid_input(format!(
                "the secrets file `{shown}` must hold a JSON object mapping each secret name \
                 to its DPAPI blob in hex, like {{\"db-password\": \"01000000d08c9ddf...\"}}"
            )));
        };
        let mut blobs = BTreeMap::new();
        for (name, value) in entries {
            validate_path(&name).map_err(|e| {
                Error::invalid_input(format!(
                    "the secrets file `{shown}` has an entry {name:?} that is not a valid secret name: {}",
                    e.message()
                ))
            })?;
            let serde_json::Value::String(hex) = value else {
                return Err(Error::invalid_input(format!(
                    "the secrets file `{shown}`: the value of `{name}` must be a string of hex digits (a DPAPI blob)"
                )));
            };
            let blob = decode_hex(&hex).map_err(|why| {
                Error::invalid_input(format!(
                    "the secrets file `{shown}`: the value of `{name}` is not a DPAPI blob in hex ({why})"
                ))
            })?;
            blobs.insert(name, blob);
        }
        Ok(Secrets { blobs })
    }

    /// The blob of the secret `name`, or `not-found`.
    pub fn blob(&self, name: &str, shown: &str) -> Result<&[u8], Error> {
        self.blobs
            .get(name)
            .map(Vec::as_slice)
            .ok_or_else(|| Error::not_found(format!("no secret `{name}` in the secrets file `{shown}`")))
    }

    /// The names starting with `prefix`, sorted.
    pub fn names(&self, prefix: &str) -> Vec<String> {
        self.blobs.keys().filter(|n| n.starts_with(prefix)).cloned().collect()
    }
}

/// Decodes hex digits (either case) into bytes; the error says what is wrong
/// without repeating the input.
pub fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    if text.is_empty() {
        return Err("it is empty".into());
    }
    if !text.len().is_multiple_of(2) {
        return Err(format!("{} digits: an even number is needed", text.len()));
    }
    let digit = |pos: usize, b: u8| match b {
        b'0'..=b'9' => Ok(b - b'0'),
        b'a'..=b'f' => Ok(b - b'a' + 10),
        b'A'..=b'F' => Ok(b - b'A' + 10),
        _ => Err(format!("character {} is not a hex digit", pos + 1)),
    };
    text.as_bytes()
        .chunks_exact(2)
        .enumerate()
        .map(|(i, pair)| Ok(digit(2 * i, pair[0])? << 4 | digit(2 * i + 1, pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn invalid(result: Result<Secrets, Error>) -> String {
        match result {
            Err(Error::InvalidInput(m)) => m,
            other => panic!("expected invalid-input, got {other:?}"),
        }
    }

    #[test]
    fn hex_decodes_both_cases_and_explains_errors() {
        assert_eq!(decode_hex("00ff7Fa0").unwrap(), [0x00, 0xff, 0x7f, 0xa0]);
        assert!(decode_hex("").unwrap_err().contains("empty"));
        assert!(decode_hex("abc").unwrap_err().contains("even"));
        assert_eq!(decode_hex("0g").unwrap_err(), "character 2 is not a hex digit");
        assert_eq!(decode_hex("zz00").unwrap_err(), "character 1 is not a hex digit");
    }

    #[test]
    fn parses_names_and_blobs() {
        let s = Secrets::parse(br#"{"b": "0102", "a/x": "FF", "a/y": "00"}"#, "secrets.json").unwrap();
        assert_eq!(s.names(""), ["a/x", "a/y", "b"]);
        assert_eq!(s.names("a/"), ["a/x", "a/y"]);
        assert!(s.names("c").is_empty());
        assert_eq!(s.blob("b", "secrets.json").unwrap(), [1, 2]);
        assert!(matches!(
            s.blob("missing", "secrets.json"),
            Err(Error::NotFound(m)) if m.contains("`missing`") && m.contains("secrets.json")
        ));
        assert_eq!(Secrets::parse(b"{}", "s").unwrap(), Secrets::default());
    }

    #[test]
    fn malformed_files_are_invalid_input_naming_the_problem() {
        let m = invalid(Secrets::parse(b"{\"a\": ", "legacy.json"));
        assert!(m.contains("`legacy.json` is not valid JSON"), "{m}");
        let m = invalid(Secrets::parse(b"[\"0102\"]", "s.json"));
        assert!(m.contains("must hold a JSON object"), "{m}");
        let m = invalid(Secrets::parse(br#"{"a": 12}"#, "s.json"));
        assert!(m.contains("value of `a` must be a string"), "{m}");
        let m = invalid(Secrets::parse(br#"{"token": "0102zz-secretish"}"#, "s.json"));
        assert!(m.contains("value of `token` is not a DPAPI blob in hex"), "{m}");
        assert!(!m.contains("secretish"), "the message repeats the value: {m}");
        let m = invalid(Secrets::parse(br#"{"a": ""}"#, "s.json"));
        assert!(m.contains("empty"), "{m}");
        let m = invalid(Secrets::parse(br#"{"../up": "00"}"#, "s.json"));
        assert!(m.contains("\"../up\" that is not a valid secret name"), "{m}");
    }

    #[test]
    fn load_reports_a_missing_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let m = invalid(Secrets::load(&dir.join("absent.json"), "absent.json"));
        assert!(m.contains("`absent.json` does not exist"), "{m}");
        std::fs::write(dir.join("ok.json"), br#"{"n": "abcd"}"#).unwrap();
        assert_eq!(Secrets::load(&dir.join("ok.json"), "ok.json").unwrap().names(""), ["n"]);
    }
}
