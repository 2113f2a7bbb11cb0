//! Reversible names for upstream stores whose secret names allow fewer
//! characters than Tresor paths (GCP Secret Manager ids are
//! `[A-Za-z0-9_-]`, Azure Key Vault names `[0-9A-Za-z-]` and
//! case-insensitive).
//!
//! A [`NameCodec`] maps every valid Tresor path to exactly one upstream
//! name and back, using one character of the upstream alphabet, the
//! *separator* `s`:
//!
//! | in the path                           | in the name                  |
//! |---------------------------------------|------------------------------|
//! | `/`                                   | `s`                          |
//! | a byte the codec keeps as is          | itself                       |
//! | any other byte (of the UTF-8 text)    | `ss` + two lower-case hex digits |
//!
//! With `-` as the separator and lower-case letters and digits kept,
//! `apps/db/prod` is `apps-db-prod` and `apps/db-password` is
//! `apps-db--2dpassword`. Decoding is unambiguous because a path never has
//! an empty segment: `ss` followed by two hex digits is always an escaped
//! byte, and `s` otherwise always a `/`. Only the canonical spelling of a
//! path decodes (a name escaping a byte that would be kept is not a
//! Tresor name), so listings can skip names written by other tools.

use crate::{validate_path, Error};

/// Maps Tresor paths to the names of an upstream store and back.
#[derive(Clone, Copy, Debug)]
pub struct NameCodec {
    /// The upstream character standing for `/` and starting escapes.
    pub separator: u8,
    /// The bytes kept as they are (must not include `separator` or `/`).
    pub keep: fn(u8) -> bool,
    /// The longest name the upstream accepts, in bytes.
    pub max_len: usize,
    /// Whether the upstream compares names case-insensitively: names are
    /// then lower-cased before decoding (`keep` must not keep upper-case
    /// letters).
    pub case_insensitive: bool,
    /// What the upstream calls a name, for messages ("GCP secret id").
    pub what: &'static str,
}

impl NameCodec {
    /// The upstream name of `path` (a path that passed [`validate_path`]),
    /// or `invalid-input` when it is longer than the upstream allows.
    pub fn encode(&self, path: &str) -> Result<String, Error> {
        let mut out = String::with_capacity(path.len());
        let sep = char::from(self.separator);
        for byte in path.bytes() {
            if byte == b'/' {
                out.push(sep);
            } else if (self.keep)(byte) {
                out.push(char::from(byte));
            } else {
                out.push(sep);
                out.push(sep);
                out.push_str(&format!("{byte:02x}"));
            }
        }
        if out.len() > self.max_len {
            return Err(Error::invalid_input(format!(
                "the path `{path}` is too long for this store: as a {} it takes {} characters, the limit is {} \
                 (every byte other than letters and digits takes 3 or 4)",
                self.what,
                out.len(),
                self.max_len
            )));
        }
        Ok(out)
    }

    /// The Tresor path an upstream name stands for, or `None` when the name
    /// is not the canonical encoding of a valid path (a secret written by
    /// another tool).
    pub fn decode(&self, name: &str) -> Option<String> {
        let name = if self.case_insensitive {
            name.to_ascii_lowercase()
        } else {
            name.to_owned()
        };
        let bytes = name.as_bytes();
        let sep = self.separator;
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b == sep {
                let escaped = bytes.get(i + 1) == Some(&sep)
                    && bytes.get(i + 2).is_some_and(|c| is_lower_hex(*c))
                    && bytes.get(i + 3).is_some_and(|c| is_lower_hex(*c));
                if escaped {
                    let hex = std::str::from_utf8(&bytes[i + 2..i + 4]).ok()?;
                    out.push(u8::from_str_radix(hex, 16).ok()?);
                    i += 4;
                } else {
                    out.push(b'/');
                    i += 1;
                }
            } else if (self.keep)(b) {
                out.push(b);
                i += 1;
            } else {
                return None;
            }
        }
        let path = String::from_utf8(out).ok()?;
        // Only canonical spellings of valid paths are Tresor names.
        (validate_path(&path).is_ok() && self.encode(&path).ok()? == name).then_some(path)
    }
}

fn is_lower_hex(c: u8) -> bool {
    c.is_ascii_digit() || (b'a'..=b'f').contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AZURE: NameCodec = NameCodec {
        separator: b'-',
        keep: |b| b.is_ascii_lowercase() || b.is_ascii_digit(),
        max_len: 127,
        case_insensitive: true,
        what: "Key Vault secret name",
    };
    const GCP: NameCodec = NameCodec {
        separator: b'_',
        keep: |b| b.is_ascii_alphanumeric() || b == b'-',
        max_len: 255,
        case_insensitive: false,
        what: "GCP secret id",
    };

    #[test]
    fn encodes_readably() {
        assert_eq!(AZURE.encode("apps/db/prod").ok().as_deref(), Some("apps-db-prod"));
        assert_eq!(
            AZURE.encode("apps/db-password").ok().as_deref(),
            Some("apps-db--2dpassword")
        );
        assert_eq!(AZURE.encode("Apps").ok().as_deref(), Some("--41pps"));
        assert_eq!(GCP.encode("apps/db-password").ok().as_deref(), Some("apps_db-password"));
        assert_eq!(
            GCP.encode("apps/db_password").ok().as_deref(),
            Some("apps_db__5fpassword")
        );
        assert_eq!(GCP.encode("Apps/é").ok().as_deref(), Some("Apps___c3__a9"));
    }

    #[test]
    fn round_trips_awkward_paths() {
        for path in [
            "a",
            "a/b",
            "a/-b",
            "a-/b",
            "-",
            "a/-",
            "--/--",
            "a/2d",
            "x/__/y",
            "_/_",
            "A/B.c d/é/ü~",
            "a..b/.hidden",
            "2d/--2d",
        ] {
            for codec in [AZURE, GCP] {
                let name = codec.encode(path).unwrap_or_default();
                assert!(name.bytes().all(|b| b == codec.separator || (codec.keep)(b)), "{name}");
                assert_eq!(codec.decode(&name).as_deref(), Some(path), "{path} -> {name}");
            }
        }
    }

    #[test]
    fn foreign_names_do_not_decode() {
        // Empty segments, escapes of kept bytes, trailing separators, bytes
        // outside the alphabet, invalid UTF-8.
        for name in ["a--b", "-a", "a-", "--61", "a.b", "a--ff", "a---", ""] {
            assert_eq!(AZURE.decode(name), None, "{name}");
        }
        for name in ["a__b", "_a", "a_", "__61", "a.b", "a__ff"] {
            assert_eq!(GCP.decode(name), None, "{name}");
        }
    }

    #[test]
    fn case_insensitive_names_decode_lower_cased() {
        assert_eq!(AZURE.decode("MySecret").as_deref(), Some("mysecret"));
        assert_eq!(AZURE.decode("--41PPS").as_deref(), Some("Apps"));
        assert_eq!(GCP.decode("MySecret").as_deref(), Some("MySecret"));
    }

    #[test]
    fn refuses_names_too_long_for_the_store() {
        assert!(AZURE.encode(&"a".repeat(127)).is_ok());
        assert!(matches!(AZURE.encode(&"a".repeat(128)), Err(Error::InvalidInput(m)) if m.contains("127")));
        assert!(matches!(AZURE.encode(&"A".repeat(40)), Err(Error::InvalidInput(_))));
    }
}
