//! Value makers: how a rotation makes the new value, always from the
//! operating system's CSPRNG (`ring::rand::SystemRandom`).

use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::Error;

/// Letters and digits.
const ALPHANUMERIC: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// Letters, digits and punctuation that needs no quoting in a URL or a shell word.
const ALPHANUMERIC_SYMBOLS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~!*";

/// How a new value is made (`value = { kind = "...", ... }` in a
/// `[[rotation]]` rule).
///
/// ```toml
/// value = { kind = "password", length = 32 }                  # letters and digits
/// value = { kind = "password", length = 40, charset = "alphanumeric-symbols" }
/// value = { kind = "password", length = 24, charset = "abcdef0123456789" }   # your own set
/// value = { kind = "hex", bytes = 32 }                         # 64 hex digits
/// value = { kind = "base64", bytes = 32 }                      # standard, padded
/// value = { kind = "base64url", bytes = 32 }                   # URL-safe, unpadded
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ValueMaker {
    /// A password of `length` characters drawn uniformly from `charset`:
    /// `alphanumeric` (the default), `alphanumeric-symbols`, or the
    /// characters of any other string given.
    Password {
        /// How many characters (8 to 1024).
        length: usize,
        /// The characters to draw from.
        #[serde(default = "default_charset")]
        charset: String,
    },
    /// `bytes` random bytes as lowercase hex.
    Hex {
        /// How many bytes (8 to 1024).
        bytes: usize,
    },
    /// `bytes` random bytes as standard, padded base64.
    Base64 {
        /// How many bytes (8 to 1024).
        bytes: usize,
    },
    /// `bytes` random bytes as URL-safe base64 without padding.
    Base64url {
        /// How many bytes (8 to 1024).
        bytes: usize,
    },
}

fn default_charset() -> String {
    "alphanumeric".into()
}

impl Default for ValueMaker {
    /// A 32-character password of letters and digits (about 190 bits).
    fn default() -> Self {
        ValueMaker::Password {
            length: 32,
            charset: default_charset(),
        }
    }
}

impl ValueMaker {
    /// Check the maker's settings; the message says what to change.
    pub fn check(&self) -> Result<(), String> {
        let size = match self {
            ValueMaker::Password { length, .. } => *length,
            ValueMaker::Hex { bytes } | ValueMaker::Base64 { bytes } | ValueMaker::Base64url { bytes } => *bytes,
        };
        if !(8..=1024).contains(&size) {
            return Err(format!("value size {size} is out of range: use 8 to 1024"));
        }
        if let ValueMaker::Password { charset, .. } = self {
            let set = alphabet(charset);
            if set.len() < 10 {
                return Err(format!(
                    "charset `{charset}` has fewer than 10 distinct characters: use `alphanumeric`, \
                     `alphanumeric-symbols` or a longer set"
                ));
            }
        }
        Ok(())
    }

    /// A new value.
    pub fn make(&self) -> Result<Zeroizing<String>, Error> {
        self.check().map_err(Error::InvalidInput)?;
        match self {
            ValueMaker::Password { length, charset } => password(*length, &alphabet(charset)),
            ValueMaker::Hex { bytes } => random(*bytes).map(|b| Zeroizing::new(hex::encode(&*b))),
            ValueMaker::Base64 { bytes } => {
                random(*bytes).map(|b| Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*b)))
            }
            ValueMaker::Base64url { bytes } => {
                random(*bytes).map(|b| Zeroizing::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&*b)))
            }
        }
    }
}

/// The distinct characters of a named or literal charset, in order.
fn alphabet(charset: &str) -> Vec<char> {
    let chars = match charset {
        "alphanumeric" => ALPHANUMERIC,
        "alphanumeric-symbols" => ALPHANUMERIC_SYMBOLS,
        other => other,
    };
    let mut out: Vec<char> = Vec::new();
    for c in chars.chars() {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

fn random(n: usize) -> Result<Zeroizing<Vec<u8>>, Error> {
    let mut buf = Zeroizing::new(vec![0u8; n]);
    SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| Error::Internal("the operating system's random number generator failed".into()))?;
    Ok(buf)
}

/// `length` characters of `set`, each uniform: random bytes at or above the
/// largest multiple of the set's size are drawn again (no modulo bias).
fn password(length: usize, set: &[char]) -> Result<Zeroizing<String>, Error> {
    let n = set.len();
    if n > 256 {
        // Two bytes per draw for big sets.
        let limit = (65_536 / n) * n;
        let mut out = Zeroizing::new(String::with_capacity(length));
        while out.chars().count() < length {
            let bytes = random(2 * length)?;
            for pair in bytes.chunks_exact(2) {
                let v = usize::from(u16::from_le_bytes([pair[0], pair[1]]));
                if v < limit && out.chars().count() < length {
                    out.push(set[v % n]);
                }
            }
        }
        return Ok(out);
    }
    let limit = (256 / n) * n;
    let mut out = Zeroizing::new(String::with_capacity(length));
    let mut count = 0;
    while count < length {
        let bytes = random(length)?;
        for &b in bytes.iter() {
            if usize::from(b) < limit && count < length {
                out.push(set[usize::from(b) % n]);
                count += 1;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makers_make_what_they_say() {
        let p = ValueMaker::default().make().unwrap();
        assert_eq!(p.len(), 32);
        assert!(p.chars().all(|c| c.is_ascii_alphanumeric()), "{}", p.len());
        let custom = ValueMaker::Password {
            length: 100,
            charset: "abcdefghij".into(),
        }
        .make()
        .unwrap();
        assert!(custom.chars().all(|c| ('a'..='j').contains(&c)) && custom.len() == 100);
        let h = ValueMaker::Hex { bytes: 16 }.make().unwrap();
        assert!(h.len() == 32 && hex::decode(&*h).is_ok());
        let b = ValueMaker::Base64 { bytes: 32 }.make().unwrap();
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(&*b).unwrap().len(), 32);
        let u = ValueMaker::Base64url { bytes: 32 }.make().unwrap();
        assert!(!u.contains(['+', '/', '=']));
        assert_eq!(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&*u)
                .unwrap()
                .len(),
            32
        );
        // Fresh each time.
        assert_ne!(*ValueMaker::default().make().unwrap(), *p);
    }

    #[test]
    fn every_character_of_the_set_is_drawn_about_equally() {
        let set = "abcdefghijklmnopqrstuvwxyz0123456789-"; // 37: 256 is no multiple of it
        let v = ValueMaker::Password {
            length: 1000,
            charset: set.into(),
        };
        let mut counts = std::collections::BTreeMap::new();
        for _ in 0..370 {
            for c in v.make().unwrap().chars() {
                *counts.entry(c).or_insert(0u32) += 1;
            }
        }
        // 370,000 draws: 10,000 expected per character (sd 100). Bias from
        // `byte % 37` would give the last three characters 6/256 each,
        // about 8,670.
        assert_eq!(counts.len(), 37);
        assert!(counts.values().all(|&n| (9_500..=10_500).contains(&n)), "{counts:?}");
    }

    #[test]
    fn bad_settings_are_refused_with_what_to_do() {
        assert!(ValueMaker::Hex { bytes: 4 }.check().unwrap_err().contains("8 to 1024"));
        let e = ValueMaker::Password {
            length: 32,
            charset: "aaab".into(),
        }
        .check()
        .unwrap_err();
        assert!(e.contains("alphanumeric"), "{e}");
        let parsed: Result<ValueMaker, _> = toml::from_str::<toml::Table>("kind = \"rot13\"").unwrap().try_into();
        assert!(parsed.is_err());
    }
}
