//! The one masking rule for every output that could show a secret value
//! (`tresor run`'s child output, tables): each value is replaced by as many
//! `*` as it has characters, never shown in part.
//!
//! [`Masker`] works on a stream: a value split across two writes is still
//! masked, because the longest tail that could be the start of a value is
//! held back until the next write (or the end) says what it is.

use zeroize::Zeroizing;

/// Values shorter than this are not masked: masking `1` or `on` would
/// mangle every line without hiding anything worth hiding.
pub const MIN_MASKED_LEN: usize = 3;

/// The mask of `value`: one `*` per character.
pub fn mask(value: &str) -> String {
    "*".repeat(value.chars().count())
}

/// Masks a byte stream.
pub struct Masker {
    /// Longest first, so a value that contains another is masked whole.
    values: Vec<Zeroizing<Vec<u8>>>,
    masks: Vec<Vec<u8>>,
    /// Bytes held back: they may be the start of a value.
    held: Zeroizing<Vec<u8>>,
}

impl Masker {
    /// A masker for `values` (those shorter than [`MIN_MASKED_LEN`] are left alone).
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Masker {
        let mut values: Vec<&str> = values
            .into_iter()
            .filter(|v| v.chars().count() >= MIN_MASKED_LEN)
            .collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Masker {
            masks: values.iter().map(|v| mask(v).into_bytes()).collect(),
            values: values.iter().map(|v| Zeroizing::new(v.as_bytes().to_vec())).collect(),
            held: Zeroizing::new(Vec::new()),
        }
    }

    /// Feed `input`; returns what can be written now.
    pub fn push(&mut self, input: &[u8]) -> Vec<u8> {
        self.held.extend_from_slice(input);
        let (out, rest) = self.replace(false);
        *self.held = rest;
        out
    }

    /// The end of the stream: everything still held, masked.
    pub fn finish(&mut self) -> Vec<u8> {
        let (out, _) = self.replace(true);
        self.held.clear();
        out
    }

    /// Mask every complete value in the held bytes; split off the tail that
    /// could still become one (none at the end of the stream).
    fn replace(&self, at_end: bool) -> (Vec<u8>, Vec<u8>) {
        let buf = &self.held[..];
        let mut out = Vec::with_capacity(buf.len());
        let mut i = 0;
        'scan: while i < buf.len() {
            for (v, m) in self.values.iter().zip(&self.masks) {
                if buf[i..].starts_with(v) {
                    out.extend_from_slice(m);
                    i += v.len();
                    continue 'scan;
                }
            }
            if !at_end && self.could_start_a_value(&buf[i..]) {
                return (out, buf[i..].to_vec());
            }
            out.push(buf[i]);
            i += 1;
        }
        (out, Vec::new())
    }

    /// Whether `tail` (the rest of the buffer) is a proper prefix of a value.
    fn could_start_a_value(&self, tail: &[u8]) -> bool {
        self.values.iter().any(|v| v.len() > tail.len() && v.starts_with(tail))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(values: &[&str], writes: &[&str]) -> String {
        let mut m = Masker::new(values.iter().copied());
        let mut out = Vec::new();
        for w in writes {
            out.extend(m.push(w.as_bytes()));
        }
        out.extend(m.finish());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn values_are_masked_with_one_star_per_character() {
        assert_eq!(run(&["hunter2"], &["password: hunter2\n"]), "password: *******\n");
        assert_eq!(run(&["pässwörd"], &["x pässwörd y"]), "x ******** y");
        assert_eq!(mask("abc"), "***");
    }

    #[test]
    fn a_value_split_across_writes_is_masked() {
        assert_eq!(run(&["hunter2"], &["pass: hun", "ter2 ok"]), "pass: ******* ok");
        assert_eq!(run(&["hunter2"], &["h", "u", "n", "t", "e", "r", "2"]), "*******");
        // What cannot be a value is written at once; a possible start is held.
        let mut m = Masker::new(["hunter2"]);
        assert_eq!(m.push(b"abc hu"), b"abc ");
        assert_eq!(m.push(b"g"), b"hug");
        assert_eq!(m.finish(), b"");
    }

    #[test]
    fn the_longest_value_wins_and_short_ones_are_left() {
        assert_eq!(
            run(&["secret", "secret-extended"], &["secret-extended"]),
            "***************"
        );
        assert_eq!(run(&["on"], &["on and on"]), "on and on");
        // A stream that ends inside a possible value shows it: it was not one.
        assert_eq!(run(&["hunter2"], &["hunt"]), "hunt");
    }
}
