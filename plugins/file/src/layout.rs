//! Names of the files and directories in the data directory.
//!
//! ```text
//! /data/
//!   secrets/                    the tree: one directory level per path segment
//!     617070/                   folder `app/`
//!       6462.s/                 the secret `app/db`
//!         head                  hint: the latest version number, in decimal
//!         1.json  2.json ...    one immutable file per version
//!         2.deleted             marker: version 2 is soft-deleted
//!         tmp-<random>          a file being written (ignored by reads)
//!       6462/                   folder `app/db/` (a secret and a folder may share a name)
//!   trash/<random>/             a deleted secret being removed (ignored)
//!   <hex of the path>/          a secret in the layout before the tree (read
//!                               in place, moved into the tree at its next write)
//! ```
//!
//! A path segment is named by the lowercase hex of its bytes, which sorts
//! like the bytes and cannot collide with the fixed names (`secrets`,
//! `trash`, `head`, `*.json`: none is hex). In a folder, `<hex>` is a
//! sub-folder and `<hex>.s` a secret. A file or directory name is limited to
//! 255 bytes on common file systems, so a segment longer than
//! [`HEX_CHUNK`]` / 2` bytes is spread over nested directories: every chunk
//! of [`HEX_CHUNK`] hex digits but the last becomes a `<chunk>.d` directory,
//! and the last chunk names the folder or secret inside it.
//!
//! The layout before the tree named each secret's directory by the hex of
//! its whole path, directly in `/data` (spread the same way over `<chunk>.d`
//! directories when long); [`legacy_dir_names`] gives those names.

/// Hex digits per directory name.
pub(crate) const HEX_CHUNK: usize = 200;

/// Suffix of a directory holding the rest of a long name.
pub(crate) const CONTINUED: &str = ".d";

/// Suffix of a secret's directory in a folder.
pub(crate) const SECRET_SUFFIX: &str = ".s";

/// The directory of the tree, in the data directory.
pub(crate) const SECRETS_DIR: &str = "secrets";

/// The directory where deleted secrets wait to be removed.
pub(crate) const TRASH_DIR: &str = "trash";

/// The file in a secret's directory that names its latest version (a hint:
/// it may lag behind, never run ahead).
pub(crate) const HEAD_FILE: &str = "head";

/// Prefix of a file being written.
pub(crate) const TMP_PREFIX: &str = "tmp-";

/// Prefix of a deleted secret's directory in the layout before the tree.
pub(crate) const LEGACY_TRASH_PREFIX: &str = ".trash-";

/// Lowercase hex of `bytes`.
pub(crate) fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Decodes lowercase hex; `None` for anything else (odd length, uppercase,
/// other characters).
pub(crate) fn decode_hex(text: &str) -> Option<Vec<u8>> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// Is `name` lowercase hex of even length (a secret directory, or the
/// start of a long path's chunk)?
pub(crate) fn is_hex_name(name: &str) -> bool {
    !name.is_empty() && name.len().is_multiple_of(2) && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `bytes` as hex, cut into directory names: `["<chunk>.d", ...,
/// "<last chunk><last_suffix>"]`.
fn chunked_names(bytes: &[u8], last_suffix: &str) -> Vec<String> {
    let hex = encode_hex(bytes);
    let chunks: Vec<&str> = hex
        .as_bytes()
        .chunks(HEX_CHUNK)
        // Hex digits are ASCII, so every chunk is valid UTF-8.
        .map(|chunk| std::str::from_utf8(chunk).unwrap_or_default())
        .collect();
    let last = chunks.len().saturating_sub(1);
    chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            if i < last {
                format!("{chunk}{CONTINUED}")
            } else {
                format!("{chunk}{last_suffix}")
            }
        })
        .collect()
}

/// The directory names leading from the tree's root to the folder
/// `<segments joined by />/`. `None` when a segment is empty (no secret
/// path has one).
pub(crate) fn folder_names<'a>(segments: impl IntoIterator<Item = &'a str>) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for segment in segments {
        if segment.is_empty() {
            return None;
        }
        names.extend(chunked_names(segment.as_bytes(), ""));
    }
    Some(names)
}

/// The directory names leading from the tree's root to the directory of
/// the secret at `path` (a valid path: no empty segment).
pub(crate) fn secret_dir_names(path: &str) -> Vec<String> {
    let (folders, last) = match path.rsplit_once('/') {
        Some((folders, last)) => (Some(folders), last),
        None => (None, path),
    };
    let mut names = folders
        .and_then(|folders| folder_names(folders.split('/')))
        .unwrap_or_default();
    names.extend(chunked_names(last.as_bytes(), SECRET_SUFFIX));
    names
}

/// What a name in a folder of the tree is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Node {
    /// `<hex>`: a folder whose segment (the rest of it, after `.d` chunks)
    /// is these bytes.
    Folder(Vec<u8>),
    /// `<hex>.s`: a secret whose last segment (or its rest) is these bytes.
    Secret(Vec<u8>),
    /// `<chunk>.d`: the first [`HEX_CHUNK`]` / 2` bytes of a long segment.
    Continued(Vec<u8>),
    /// Anything else; ignored.
    Other,
}

/// Classifies a name found in a folder of the tree.
pub(crate) fn node(name: &str) -> Node {
    if let Some(stem) = name.strip_suffix(SECRET_SUFFIX) {
        return decode_hex(stem)
            .filter(|b| !b.is_empty() && stem.len() <= HEX_CHUNK)
            .map_or(Node::Other, Node::Secret);
    }
    if let Some(stem) = name.strip_suffix(CONTINUED) {
        return decode_hex(stem)
            .filter(|_| stem.len() == HEX_CHUNK)
            .map_or(Node::Other, Node::Continued);
    }
    decode_hex(name)
        .filter(|b| !b.is_empty() && name.len() <= HEX_CHUNK)
        .map_or(Node::Other, Node::Folder)
}

/// The directory names of the secret at `path` in the layout before the
/// tree, relative to the data directory: `["<hex>"]`, or `["<chunk>.d",
/// ..., "<last chunk>"]` for a long path.
pub(crate) fn legacy_dir_names(path: &str) -> Vec<String> {
    chunked_names(path.as_bytes(), "")
}

/// The hex chunk of a `<chunk>.d` directory name, if `name` is one.
pub(crate) fn continued_chunk(name: &str) -> Option<&str> {
    name.strip_suffix(CONTINUED)
        .filter(|chunk| chunk.len() == HEX_CHUNK && is_hex_name(chunk))
}

/// Parses a version identifier: a decimal number from 1 up, written without
/// sign or leading zeros (`"1"`, `"42"`). Anything else names no version.
pub(crate) fn parse_version(text: &str) -> Option<u64> {
    if text.is_empty() || text.starts_with('0') || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// File holding version `n`.
pub(crate) fn version_file(n: u64) -> String {
    format!("{n}.json")
}

/// Marker telling that version `n` is soft-deleted.
pub(crate) fn deleted_marker(n: u64) -> String {
    format!("{n}.deleted")
}

/// What a file in a secret's directory is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    /// `<n>.json`: version `n`.
    Version(u64),
    /// `<n>.deleted`: version `n` is soft-deleted.
    Deleted(u64),
    /// `tmp-*`: a file being written, or left over by a crash.
    Tmp,
    /// Anything else (`head` among them); ignored.
    Other,
}

/// Classifies a file name found in a secret's directory.
pub(crate) fn classify(name: &str) -> Entry {
    if name.starts_with(TMP_PREFIX) {
        return Entry::Tmp;
    }
    if let Some(n) = name.strip_suffix(".json").and_then(parse_version) {
        return Entry::Version(n);
    }
    if let Some(n) = name.strip_suffix(".deleted").and_then(parse_version) {
        return Entry::Deleted(n);
    }
    Entry::Other
}

/// The context bound to a sealed value: `"<path>\0<version>"`, so a value
/// copied to another path or version fails to unseal.
pub(crate) fn seal_context(path: &str, version: u64) -> Vec<u8> {
    format!("{path}\0{version}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let bytes: Vec<u8> = (0..=255).collect();
        let hex = encode_hex(&bytes);
        assert!(hex.starts_with("000102"));
        assert!(hex.ends_with("feff"));
        assert_eq!(decode_hex(&hex), Some(bytes));
        assert_eq!(encode_hex("app/db".as_bytes()), "6170702f6462");
    }

    #[test]
    fn hex_rejects_non_canonical_text() {
        for text in [
            "a",
            "0G",
            "AB",
            "6170702f646",
            ".trash-1",
            "tmp-1",
            "secrets",
            "trash",
            "head",
        ] {
            assert_eq!(decode_hex(text), None, "{text:?}");
            assert!(!is_hex_name(text), "{text:?}");
        }
        assert!(!is_hex_name(""));
    }

    #[test]
    fn one_directory_per_segment() {
        assert_eq!(secret_dir_names("a"), ["61.s"]);
        assert_eq!(secret_dir_names("app/db"), ["617070", "6462.s"]);
        assert_eq!(secret_dir_names("a/b/c"), ["61", "62", "63.s"]);
        assert_eq!(folder_names(["a", "b"]), Some(vec!["61".to_owned(), "62".to_owned()]));
        assert_eq!(folder_names(["a", ""]), None);
        assert_eq!(node("617070"), Node::Folder(b"app".to_vec()));
        assert_eq!(node("6462.s"), Node::Secret(b"db".to_vec()));
        for other in [".s", "6.s", "tmp-1", "trash", "61x", "", "0G.s"] {
            assert_eq!(node(other), Node::Other, "{other:?}");
        }
    }

    #[test]
    fn long_segments_are_spread_over_directories() {
        let segment = "y".repeat(512);
        let names = secret_dir_names(&format!("a/{segment}"));
        assert_eq!(names.len(), 7);
        assert_eq!(names[0], "61");
        for name in &names[1..6] {
            assert!(matches!(node(name), Node::Continued(_)), "{name}");
            assert!(name.len() < 255);
        }
        let mut bytes = Vec::new();
        for name in &names[1..] {
            match node(name) {
                Node::Continued(b) | Node::Secret(b) => bytes.extend(b),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(bytes, segment.as_bytes());
        assert!(matches!(node(&names[6]), Node::Secret(_)));
        // A segment of exactly one chunk needs no `.d` directory.
        let exact = "z".repeat(HEX_CHUNK / 2);
        assert_eq!(secret_dir_names(&exact).len(), 1);
    }

    #[test]
    fn legacy_paths_are_one_directory_or_chunks() {
        assert_eq!(legacy_dir_names("a/b"), vec!["612f62".to_owned()]);
        let path = "y".repeat(512);
        let names = legacy_dir_names(&path);
        assert_eq!(names.len(), 6);
        for name in &names[..5] {
            assert!(continued_chunk(name).is_some(), "{name}");
        }
        let hex: String = names[..5]
            .iter()
            .filter_map(|n| continued_chunk(n))
            .chain(std::iter::once(names[5].as_str()))
            .collect();
        assert_eq!(decode_hex(&hex), Some(path.into_bytes()));
    }

    #[test]
    fn versions_are_canonical_decimals() {
        assert_eq!(parse_version("1"), Some(1));
        assert_eq!(parse_version("42"), Some(42));
        for text in ["", "0", "01", "+1", "-1", "1.0", " 1", "abc", "99999999999999999999999"] {
            assert_eq!(parse_version(text), None, "{text:?}");
        }
    }

    #[test]
    fn classifies_directory_entries() {
        assert_eq!(classify("3.json"), Entry::Version(3));
        assert_eq!(classify("3.deleted"), Entry::Deleted(3));
        assert_eq!(classify("tmp-0123"), Entry::Tmp);
        assert_eq!(classify("head"), Entry::Other);
        assert_eq!(classify("03.json"), Entry::Other);
        assert_eq!(classify("x.json"), Entry::Other);
        assert_eq!(classify("3.claim"), Entry::Other);
    }

    #[test]
    fn context_binds_path_and_version() {
        assert_eq!(seal_context("a/b", 7), b"a/b\x007".to_vec());
    }
}
