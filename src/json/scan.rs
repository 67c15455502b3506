//! A validating scanner over JSON text, for reading a database's answer without building a
//! tree: values are located as byte ranges, and only the few a caller asks for are converted.
//!
//! It accepts only what `serde_json::from_slice::<Value>` accepts, and gives up (`None`)
//! where it would have to judge something subtle: a `\u` escape of a surrogate, a number near
//! the edge of `f64`, nesting deeper than [`MAX_DEPTH`]. A caller that gets `None` reads the
//! answer the general way, which then accepts or refuses it. Duplicate keys are not refused
//! (serde_json keeps the last one); [`Members::get`] finds the last, as serde_json does, and
//! callers that splice the text give up where a duplicate would matter to them.

use super::numeric::{number, whitespace};
use std::ops::Range;

/// Deepest nesting scanned (serde_json stops at 128).
pub const MAX_DEPTH: usize = 100;

/// A string's content, between its quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Str {
    pub start: usize,
    pub end: usize,
    /// The content has a backslash escape: compare it decoded ([`Scan::decoded`]).
    pub escaped: bool,
}

/// A cursor over one JSON text.
#[derive(Debug, Clone)]
pub struct Scan<'b> {
    b: &'b [u8],
    text: &'b str,
    at: usize,
    depth: usize,
}

impl<'b> Scan<'b> {
    /// A scanner at the first value of `bytes`; `None` if they are not UTF-8.
    pub fn new(bytes: &'b [u8]) -> Option<Scan<'b>> {
        let text = std::str::from_utf8(bytes).ok()?;
        Some(Scan { b: bytes, text, at: whitespace(bytes, 0), depth: 0 })
    }

    /// The whole text.
    pub fn text(&self) -> &'b str {
        self.text
    }

    /// The text of a range.
    pub fn slice(&self, range: Range<usize>) -> Option<&'b str> {
        self.text.get(range)
    }

    pub fn peek(&self) -> Option<u8> {
        self.b.get(self.at).copied()
    }

    /// A scanner over the same text at `position` (the start of a value already validated).
    pub fn at(&self, position: usize) -> Scan<'b> {
        Scan { b: self.b, text: self.text, at: position, depth: 0 }
    }

    /// Where the scanner is: the start of the next value, or the end of the last one.
    pub fn position(&self) -> usize {
        self.at
    }

    /// Only whitespace is left.
    pub fn finish(&mut self) -> Option<()> {
        self.at = whitespace(self.b, self.at);
        (self.at == self.b.len()).then_some(())
    }

    /// Validates and steps over one value; its range.
    pub fn value(&mut self) -> Option<Range<usize>> {
        match self.peek()? {
            b'{' => self.object(|scan, _| scan.value().map(drop)),
            b'[' => self.array(|scan| scan.value().map(drop)),
            b'"' => {
                let start = self.at;
                self.string()?;
                Some(start..self.at)
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => {
                let start = self.at;
                self.at = number(self.b, start)?;
                Some(start..self.at)
            }
        }
    }

    /// An object, each member's value read by `member` (which must step over it), given the
    /// member's name; the object's range.
    pub fn object(&mut self, mut member: impl FnMut(&mut Self, Str) -> Option<()>) -> Option<Range<usize>> {
        let start = self.open(b'{')?;
        if self.peek()? == b'}' {
            return self.close(start);
        }
        loop {
            let name = self.string()?;
            self.at = whitespace(self.b, self.at);
            if self.peek()? != b':' {
                return None;
            }
            self.at = whitespace(self.b, self.at + 1);
            member(self, name)?;
            self.at = whitespace(self.b, self.at);
            match self.peek()? {
                b',' => self.at = whitespace(self.b, self.at + 1),
                b'}' => return self.close(start),
                _ => return None,
            }
        }
    }

    /// A list, each item read by `item` (which must step over it); the list's range.
    pub fn array(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<Range<usize>> {
        let start = self.open(b'[')?;
        if self.peek()? == b']' {
            return self.close(start);
        }
        loop {
            item(self)?;
            self.at = whitespace(self.b, self.at);
            match self.peek()? {
                b',' => self.at = whitespace(self.b, self.at + 1),
                b']' => return self.close(start),
                _ => return None,
            }
        }
    }

    /// A string, validated; its content.
    pub fn string(&mut self) -> Option<Str> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.at + 1;
        let mut i = start;
        let mut escaped = false;
        loop {
            i = plain_run(self.b, i);
            match *self.b.get(i)? {
                b'"' => {
                    self.at = i + 1;
                    return Some(Str { start, end: i, escaped });
                }
                b'\\' => {
                    escaped = true;
                    i = escape(self.b, i + 1)?;
                }
                // A control character.
                _ => return None,
            }
        }
    }

    /// The content of a string, unescaped.
    pub fn decoded(&self, s: Str) -> Option<std::borrow::Cow<'b, str>> {
        if !s.escaped {
            return self.text.get(s.start..s.end).map(std::borrow::Cow::Borrowed);
        }
        let quoted = self.text.get(s.start - 1..s.end + 1)?;
        serde_json::from_str::<String>(quoted).ok().map(std::borrow::Cow::Owned)
    }

    /// Whether a string's content is `name`.
    pub fn is(&self, s: Str, name: &str) -> bool {
        if s.escaped {
            return self.decoded(s).is_some_and(|d| d == name);
        }
        self.b.get(s.start..s.end) == Some(name.as_bytes())
    }

    fn literal(&mut self, word: &[u8]) -> Option<Range<usize>> {
        let start = self.at;
        (self.b.get(start..start + word.len())? == word).then_some(())?;
        self.at += word.len();
        Some(start..self.at)
    }

    fn open(&mut self, bracket: u8) -> Option<usize> {
        if self.peek()? != bracket || self.depth >= MAX_DEPTH {
            return None;
        }
        self.depth += 1;
        let start = self.at;
        self.at = whitespace(self.b, self.at + 1);
        Some(start)
    }

    fn close(&mut self, start: usize) -> Option<Range<usize>> {
        self.depth -= 1;
        self.at += 1;
        Some(start..self.at)
    }
}

/// The members of one object: each name and its value's range, in order.
#[derive(Debug, Default, Clone)]
pub struct Members {
    pub entries: Vec<(Str, Range<usize>)>,
}

impl Members {
    /// Reads the object at the scanner (validated), noting every member.
    pub fn read(scan: &mut Scan<'_>) -> Option<Members> {
        // Room for a typical record's metadata at once, instead of growing 4 → 8.
        let mut entries = Vec::with_capacity(8);
        scan.object(|scan, name| {
            let value = scan.value()?;
            entries.push((name, value));
            Some(())
        })?;
        Some(Members { entries })
    }

    /// The value of the last member named `name` (serde_json keeps the last of two).
    pub fn get(&self, scan: &Scan<'_>, name: &str) -> Option<Range<usize>> {
        self.entries.iter().rev().find(|(n, _)| scan.is(*n, name)).map(|(_, v)| v.clone())
    }
}

/// `bytes` with each range of `edits` replaced by its text (ranges in order, not
/// overlapping; an empty range inserts).
pub fn splice(bytes: &[u8], edits: &[(Range<usize>, Vec<u8>)]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    for (range, text) in edits {
        out.extend_from_slice(bytes.get(at..range.start)?);
        out.extend_from_slice(text);
        at = range.end;
    }
    out.extend_from_slice(bytes.get(at..)?);
    Some(out)
}

/// The index of the first byte at or after `i` that ends a plain run inside a string: a
/// quote, a backslash or a control character. Eight bytes at a time while none is there.
fn plain_run(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGHS;
    while let Some(chunk) = b.get(i..i + 8).and_then(|c| <[u8; 8]>::try_from(c).ok()) {
        let w = u64::from_le_bytes(chunk);
        let quote = has_zero(w ^ (ONES * u64::from(b'"')));
        let backslash = has_zero(w ^ (ONES * u64::from(b'\\')));
        // Bytes below 0x20: subtracting 0x20 borrows into the high bit of exactly those
        // (bytes of 0x80 and above are excluded by `!w`).
        let control = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
        if quote | backslash | control != 0 {
            break;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            break;
        }
        i += 1;
    }
    i
}

/// One escape after its backslash at `b[i]`; the index after it. A surrogate must be the
/// first half of a pair followed at once by the second (serde_json refuses a lone one).
fn escape(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(i + 1),
        b'u' => {
            let unit = hex4(b, i + 1)?;
            match unit {
                0xD800..=0xDBFF => {
                    (b.get(i + 5..i + 7)? == b"\\u").then_some(())?;
                    (0xDC00..=0xDFFF).contains(&hex4(b, i + 7)?).then_some(i + 11)
                }
                0xDC00..=0xDFFF => None,
                _ => Some(i + 5),
            }
        }
        _ => None,
    }
}

fn hex4(b: &[u8], i: usize) -> Option<u32> {
    b.get(i..i + 4)?.iter().try_fold(0u32, |unit, &h| Some(unit * 16 + char::from(h).to_digit(16)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scanned(bytes: &[u8]) -> Option<()> {
        let mut scan = Scan::new(bytes)?;
        scan.value()?;
        scan.finish()
    }

    #[test]
    fn accepts_what_serde_json_accepts() {
        for text in [
            r#"{"a":[1,-2.5e-3,"x\n\u00e9\"",true,false,null,{}],"b":{"c":[]}}"#,
            " [ ] ",
            r#""\ud83d\ude00""#,
            "0",
        ] {
            assert!(serde_json::from_str::<serde_json::Value>(text).is_ok(), "{text}");
            assert_eq!(scanned(text.as_bytes()), Some(()), "{text}");
        }
    }

    #[test]
    fn refuses_or_gives_up_on_the_rest() {
        for text in [
            &b"{\"a\":1,}"[..], b"[1 2]", b"\"a\x01\"", b"\"\\x\"", b"{\"a\" 1}", b"[tru]", b"1e999",
            b"\"\\ud800\"", b"\"\\ud800\\u0041\"", b"\"\\udc00\"", b"[1]x", b"\"\xff\"", b"{\"a\":01}", b"", b"[",
        ] {
            assert_eq!(scanned(text), None, "{}", String::from_utf8_lossy(text));
        }
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(scanned(deep.as_bytes()), None);
    }

    #[test]
    fn members_are_found_by_their_last_name() {
        let text = r#"{"a":1,"b":"x","\u0061":2}"#;
        let mut scan = Scan::new(text.as_bytes()).unwrap();
        let members = Members::read(&mut scan).unwrap();
        let a = members.get(&scan, "a").unwrap();
        assert_eq!(&text[a], "2");
        assert!(members.get(&scan, "c").is_none());
    }

    proptest! {
        /// Never accepts what serde_json refuses; accepts whatever serde_json writes.
        #[test]
        fn never_more_lenient_than_serde_json(bytes in prop::collection::vec(prop::sample::select(b"{}[]\",:0123456789.eE+-tfrunlsa \\\x01\xc3\xa9".to_vec()), 0..40)) {
            if scanned(&bytes).is_some() {
                prop_assert!(serde_json::from_slice::<serde_json::Value>(&bytes).is_ok(), "{}", String::from_utf8_lossy(&bytes));
            }
        }

        /// Reads whatever serde_json writes (but numbers near the edge of `f64`, left to it).
        #[test]
        fn reads_whatever_serde_json_writes(v in crate::json::tests::json_value()) {
            fn huge(v: &serde_json::Value) -> bool {
                match v {
                    serde_json::Value::Number(n) => n.as_f64().is_some_and(|f| f.abs() >= 1e290),
                    serde_json::Value::Array(a) => a.iter().any(huge),
                    serde_json::Value::Object(o) => o.values().any(huge),
                    _ => false,
                }
            }
            prop_assume!(!huge(&v));
            let text = serde_json::to_vec(&v).unwrap();
            prop_assert_eq!(scanned(&text), Some(()));
            let pretty = serde_json::to_vec_pretty(&v).unwrap();
            prop_assert_eq!(scanned(&pretty), Some(()));
        }
    }
}
