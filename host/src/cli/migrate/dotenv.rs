//! A `.env` reader in python-dotenv's dialect (the one the files Tresor
//! migrates were written for), keeping where each statement is in the file
//! so everything not migrated can be kept byte for byte.
//!
//! What it reads: blank lines and `#` comments; `export ` before a name;
//! `NAME=value` with optional spaces around `=`; unquoted values to the end
//! of the line, a ` #comment` after whitespace removed, `=` and spaces
//! inside kept; single-quoted values (only `\'` and `\\` are escapes);
//! double-quoted values (`\n`, `\t`, `\r`, `\"`, `\\`, ... are escapes);
//! quoted values over several lines; CRLF line ends; a UTF-8 byte order
//! mark. Variables (`${VAR}`) are never expanded: the literal text is the
//! value. A line it cannot read is an error naming the line, never a guess.

use std::ops::Range;

use zeroize::Zeroizing;

/// One `NAME=value` statement of the file.
pub struct Statement {
    /// The variable's name.
    pub name: String,
    /// Its value, as python-dotenv reads it (without expansion).
    pub value: Zeroizing<String>,
    /// Where the statement is in the file, its line end included.
    pub span: Range<usize>,
    /// The line it starts on (1-based).
    pub line: usize,
    /// The line end it had (`\n`, `\r\n`, or empty at the end of the file).
    pub line_end: &'static str,
}

impl std::fmt::Debug for Statement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Statement")
            .field("name", &self.name)
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}

/// A line that cannot be read.
#[derive(Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The line (1-based).
    pub line: usize,
    /// What is wrong (never the value).
    pub reason: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// The statements of `text`, in order.
pub fn parse(text: &str) -> Result<Vec<Statement>, ParseError> {
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        pos: if text.starts_with('\u{feff}') { 3 } else { 0 },
        line: 1,
    };
    let mut out = Vec::new();
    while p.pos < p.s.len() {
        if let Some(st) = p.statement()? {
            out.push(st);
        }
    }
    Ok(out)
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
    line: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn error(&self, line: usize, reason: &str) -> ParseError {
        ParseError {
            line,
            reason: reason.to_string(),
        }
    }

    /// Consume the line end here (or the end of the file); returns it.
    fn line_end(&mut self) -> Option<&'static str> {
        if self.s[self.pos..].starts_with(b"\r\n") {
            self.pos += 2;
            self.line += 1;
            Some("\r\n")
        } else if self.peek() == Some(b'\n') {
            self.pos += 1;
            self.line += 1;
            Some("\n")
        } else if self.pos >= self.s.len() {
            Some("")
        } else {
            None
        }
    }

    /// Skip to the end of this line (a comment, or what follows a value).
    fn rest_of_line(&mut self) -> &'static str {
        while self.pos < self.s.len() && self.peek() != Some(b'\n') && !self.s[self.pos..].starts_with(b"\r\n") {
            self.pos += 1;
        }
        self.line_end().unwrap_or("")
    }

    /// One line or statement; `None` for a blank line or a comment.
    fn statement(&mut self) -> Result<Option<Statement>, ParseError> {
        let start = self.pos;
        let line = self.line;
        self.skip_blanks();
        if self.line_end().is_some() {
            return Ok(None);
        }
        if self.peek() == Some(b'#') {
            self.rest_of_line();
            return Ok(None);
        }
        if self.s[self.pos..].starts_with(b"export ") || self.s[self.pos..].starts_with(b"export\t") {
            self.pos += 7;
            self.skip_blanks();
        }
        let name_start = self.pos;
        while let Some(c) = self.peek() {
            if c == b'=' || c == b'#' || c.is_ascii_whitespace() {
                break;
            }
            self.pos += 1;
        }
        let name = &self.text[name_start..self.pos];
        if name.is_empty() {
            return Err(self.error(line, "expected NAME=value"));
        }
        if name.starts_with('\'') || name.starts_with('"') {
            return Err(self.error(line, "quoted names are not supported: write the name without quotes"));
        }
        self.skip_blanks();
        // `NAME` alone: python-dotenv reads a name without a value (None).
        // Nothing to migrate; the line stays as it is.
        if self.peek() == Some(b'#') {
            self.rest_of_line();
            return Ok(None);
        }
        if self.line_end().is_some() {
            return Ok(None);
        }
        if self.peek() != Some(b'=') {
            return Err(self.error(
                line,
                &format!(
                    "`{}` has no `=`: write NAME=value (or comment the line out)",
                    printable(name)
                ),
            ));
        }
        self.pos += 1;
        self.skip_blanks();
        let value = match self.peek() {
            Some(q @ (b'\'' | b'"')) => {
                let v = self.quoted(q, line)?;
                self.skip_blanks();
                match self.peek() {
                    Some(b'#') | Some(b'\r') | Some(b'\n') | None => {}
                    _ => return Err(self.error(line, "text after the closing quote: quote the whole value")),
                }
                v
            }
            _ => self.unquoted(),
        };
        let line_end = self.rest_of_line();
        Ok(Some(Statement {
            name: name.to_string(),
            value,
            span: start..self.pos,
            line,
            line_end,
        }))
    }

    /// A quoted value; the position is on the opening quote.
    fn quoted(&mut self, quote: u8, line: usize) -> Result<Zeroizing<String>, ParseError> {
        self.pos += 1;
        let mut out = Zeroizing::new(String::new());
        loop {
            let Some(c) = self.text[self.pos..].chars().next() else {
                return Err(self.error(line, "the quoted value is never closed"));
            };
            self.pos += c.len_utf8();
            match c {
                '\n' => {
                    self.line += 1;
                    out.push('\n');
                }
                // Python reads text files with universal newlines: a CRLF
                // (or a lone CR) inside quotes is one `\n` to python-dotenv.
                '\r' => {
                    if self.text[self.pos..].starts_with('\n') {
                        self.pos += 1;
                    }
                    self.line += 1;
                    out.push('\n');
                }
                '\\' => {
                    let Some(next) = self.text[self.pos..].chars().next() else {
                        return Err(self.error(line, "the quoted value is never closed"));
                    };
                    let decoded = match (quote, next) {
                        (b'\'', '\'') => Some('\''),
                        (b'\'', '\\') => Some('\\'),
                        (b'"', 'n') => Some('\n'),
                        (b'"', 't') => Some('\t'),
                        (b'"', 'r') => Some('\r'),
                        (b'"', '"') => Some('"'),
                        (b'"', '\\') => Some('\\'),
                        (b'"', '\'') => Some('\''),
                        (b'"', 'a') => Some('\u{7}'),
                        (b'"', 'b') => Some('\u{8}'),
                        (b'"', 'f') => Some('\u{c}'),
                        (b'"', 'v') => Some('\u{b}'),
                        _ => None,
                    };
                    match decoded {
                        Some(d) => {
                            out.push(d);
                            self.pos += next.len_utf8();
                        }
                        // Not an escape: the backslash stays.
                        None => out.push('\\'),
                    }
                }
                c if c as u32 == quote as u32 => return Ok(out),
                c => out.push(c),
            }
        }
    }

    /// An unquoted value: to the end of the line, less a ` #comment` and
    /// trailing blanks.
    fn unquoted(&mut self) -> Zeroizing<String> {
        let start = self.pos;
        while self.pos < self.s.len() && self.peek() != Some(b'\n') && !self.s[self.pos..].starts_with(b"\r\n") {
            self.pos += 1;
        }
        let raw = &self.text[start..self.pos];
        let mut end = raw.len();
        let bytes = raw.as_bytes();
        for i in 1..bytes.len() {
            if bytes[i] == b'#' && bytes[i - 1].is_ascii_whitespace() {
                end = i;
                break;
            }
        }
        Zeroizing::new(raw[..end].trim_end().to_string())
    }
}

/// A name as shown in an error: at most 60 characters, no control characters.
fn printable(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text)
            .unwrap()
            .into_iter()
            .map(|s| (s.name, s.value.to_string()))
            .collect()
    }

    fn one(text: &str) -> String {
        let p = pairs(text);
        assert_eq!(p.len(), 1, "{text:?}: {p:?}");
        p[0].1.clone()
    }

    #[test]
    fn python_dotenv_values() {
        assert_eq!(one("K=v"), "v");
        assert_eq!(one("export K=v"), "v");
        assert_eq!(one("K = v "), "v");
        assert_eq!(one("K=a b"), "a b");
        assert_eq!(one("K=a=b=c"), "a=b=c");
        assert_eq!(one("K=v # comment"), "v");
        assert_eq!(one("K=v#not-a-comment"), "v#not-a-comment");
        assert_eq!(one("K="), "");
        assert_eq!(one("K='single # kept'"), "single # kept");
        assert_eq!(one(r"K='it\'s \\ \n'"), r"it's \ \n");
        assert_eq!(one(r#"K="a\nb\t\"c\" \\ \q""#), "a\nb\t\"c\" \\ \\q");
        assert_eq!(one("K=\"line1\nline2\" # c"), "line1\nline2");
        assert_eq!(one("K=\"line1\r\nline2\"\r\n"), "line1\nline2");
        assert_eq!(one("K='a\rb'"), "a\nb");
        assert_eq!(one("K='${HOME}' "), "${HOME}");
        assert_eq!(one("K=${HOME}/x"), "${HOME}/x");
        assert_eq!(
            one("K=\"-----BEGIN KEY-----\nabc\n-----END KEY-----\""),
            "-----BEGIN KEY-----\nabc\n-----END KEY-----"
        );
    }

    #[test]
    fn spans_cover_whole_statements() {
        let text = "\u{feff}# top\r\nA=1\r\n\r\nexport B=\"x\ny\"  # two lines\nC=3";
        let st = parse(text).unwrap();
        let names: Vec<&str> = st.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["A", "B", "C"]);
        assert_eq!(&text[st[0].span.clone()], "A=1\r\n");
        assert_eq!((st[0].line, st[0].line_end), (2, "\r\n"));
        assert_eq!(&text[st[1].span.clone()], "export B=\"x\ny\"  # two lines\n");
        assert_eq!(st[1].line, 4);
        assert_eq!((&text[st[2].span.clone()], st[2].line, st[2].line_end), ("C=3", 6, ""));
    }

    #[test]
    fn a_name_without_a_value_is_kept_as_it_is() {
        let st = parse("A=1\nFLAG_ONLY\nexport ALSO # no value\nB=2\n").unwrap();
        let names: Vec<&str> = st.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["A", "B"]);
    }

    #[test]
    fn unreadable_lines_are_refused_with_their_number() {
        let e = parse("A=1\nnot a statement\n").err().unwrap();
        assert_eq!(e.line, 2);
        assert!(e.reason.contains("has no `=`"), "{e}");
        let e = parse("A=1\nB='open\n\nC=2\n").err().unwrap();
        assert_eq!((e.line, e.reason.as_str()), (2, "the quoted value is never closed"));
        let e = parse("A=\"zq9\" y\n").err().unwrap();
        assert!(e.reason.contains("after the closing quote"), "{e}");
        assert!(!e.reason.contains("zq9"));
    }
}
