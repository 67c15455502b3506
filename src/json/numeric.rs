//! The fast path of [`super::parse_strict_keeping_raw`] for the common body: a top-level list
//! of numbers or of lists of numbers (a query's embeddings). The list is validated here, byte
//! by byte against JSON's number grammar, then replaced by as many `null`s, and the much
//! smaller rest of the body goes through the strict parser as usual.
//!
//! Only the list itself is judged here. The scan that finds it is deliberately lenient about
//! everything else: every byte outside the list reaches the strict parser unchanged, and the
//! placeholder has the list's place and shape, so the body is refused exactly when it would
//! have been. Anything unusual (the key spelled with escapes, items that are not numbers,
//! numbers near the edge of `f64`) answers `None`, and the general path decides.

use super::{parse, JsonError, KeptList, KeptRaw};
use serde_json::Value;

/// The body parsed with the top-level `key`'s list kept as text, if the fast path applies.
pub(super) fn kept_list(bytes: &[u8], key: &str, max_depth: usize) -> Option<Result<KeptRaw, JsonError>> {
    // The list and its items are two levels below the top; `parse` counts the rest.
    if max_depth < 3 {
        return None;
    }
    let found = find(bytes, key.as_bytes())?;
    let mut rest = Vec::with_capacity(bytes.len() - (found.end - found.start) + 5 * found.items + 2);
    rest.extend_from_slice(bytes.get(..found.start)?);
    rest.push(b'[');
    for i in 0..found.items {
        if i > 0 {
            rest.push(b',');
        }
        rest.extend_from_slice(b"null");
    }
    rest.push(b']');
    rest.extend_from_slice(bytes.get(found.end..)?);
    let parsed = match parse(&rest, max_depth) {
        Ok(value) => value,
        Err(e) => return Some(Err(e)),
    };
    // The strict parser must have read the placeholder where the scan put it.
    let placeholder = parsed
        .get(key)
        .and_then(Value::as_array)
        .is_some_and(|items| items.len() == found.items && items.iter().all(Value::is_null));
    if !placeholder {
        return None;
    }
    Some(Ok(KeptRaw {
        value: parsed,
        raw: Some(KeptList {
            key: key.to_string(),
            text: bytes.get(found.start..found.end)?.to_vec(),
            items: found.items,
        }),
    }))
}

/// The byte range of the list, `[` to `]` inclusive, and how many items it has.
#[derive(Debug, PartialEq, Eq)]
struct Found {
    start: usize,
    end: usize,
    items: usize,
}

/// The first member of the top-level object named exactly `key` (no escapes), if its value
/// is a list of numbers or of lists of numbers.
fn find(bytes: &[u8], key: &[u8]) -> Option<Found> {
    let mut c = Cursor { bytes, at: 0 };
    c.whitespace();
    c.expect(b'{')?;
    loop {
        c.whitespace();
        let name = c.string()?;
        c.whitespace();
        c.expect(b':')?;
        c.whitespace();
        if name == key {
            let start = c.at;
            let items = c.numeric_list()?;
            return Some(Found { start, end: c.at, items });
        }
        c.skip_value()?;
        c.whitespace();
        match c.next()? {
            b',' => {}
            _ => return None,
        }
    }
}

/// Decimal digits beyond which a number is left to serde_json, which refuses literals that
/// overflow `f64`; below it no literal can.
const SAFE_MAGNITUDE_DIGITS: usize = 300;

struct Cursor<'b> {
    bytes: &'b [u8],
    at: usize,
}

impl<'b> Cursor<'b> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        (self.next()? == b).then_some(())
    }

    fn whitespace(&mut self) {
        self.at = whitespace(self.bytes, self.at);
    }

    /// A string's raw content, between its quotes (escapes left as they are).
    fn string(&mut self) -> Option<&'b [u8]> {
        self.expect(b'"')?;
        let start = self.at;
        loop {
            match self.next()? {
                b'"' => return self.bytes.get(start..self.at - 1),
                b'\\' => {
                    self.next()?;
                }
                _ => {}
            }
        }
    }

    /// Steps over any value, tracking only strings and nesting.
    fn skip_value(&mut self) -> Option<()> {
        let mut depth = 0usize;
        loop {
            match self.peek()? {
                b'"' => {
                    self.string()?;
                }
                b'[' | b'{' => {
                    depth += 1;
                    self.at += 1;
                }
                b']' | b'}' => {
                    depth = depth.checked_sub(1)?;
                    self.at += 1;
                }
                b',' if depth == 0 => return Some(()),
                _ => self.at += 1,
            }
            if depth == 0 && matches!(self.peek(), Some(b',' | b'}' | b']')) {
                return Some(());
            }
        }
    }

    /// `[` item, … `]` where an item is a number or a list of numbers; the item count.
    fn numeric_list(&mut self) -> Option<usize> {
        let (end, items) = list(self.bytes, self.at, |b, i| match *b.get(i)? {
            b'[' => list(b, i, number).map(|(end, _)| end),
            _ => number(b, i),
        })?;
        self.at = end;
        Some(items)
    }
}

/// `[` item, … `]` starting at `b[i]`, each item read by `item`; the index after the list and
/// how many items it has. The inner loop of the fast path, so it works on a plain index.
fn list(b: &[u8], mut i: usize, item: impl Fn(&[u8], usize) -> Option<usize>) -> Option<(usize, usize)> {
    if *b.get(i)? != b'[' {
        return None;
    }
    i = whitespace(b, i + 1);
    if *b.get(i)? == b']' {
        return Some((i + 1, 0));
    }
    let mut items = 0;
    loop {
        i = whitespace(b, item(b, i)?);
        items += 1;
        match *b.get(i)? {
            b',' => i = whitespace(b, i + 1),
            b']' => return Some((i + 1, items)),
            _ => return None,
        }
    }
}

fn whitespace(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// One number at `b[i]` as RFC 8259 spells it,
/// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`; the index after it.
fn number(b: &[u8], mut i: usize) -> Option<usize> {
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    let integer_start = i;
    i = match *b.get(i)? {
        b'0' => i + 1,
        b'1'..=b'9' => digits(b, i + 1),
        _ => return None,
    };
    let integer = i - integer_start;
    if b.get(i) == Some(&b'.') {
        let fraction = i + 1;
        i = digits(b, fraction);
        if i == fraction {
            return None;
        }
    }
    let mut exponent = 0usize;
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        let negative = b.get(i) == Some(&b'-');
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        let start = i;
        i = digits(b, start);
        let count = i - start;
        if count == 0 || count > 3 {
            return None;
        }
        if !negative {
            exponent = b
                .get(start..i)?
                .iter()
                .fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
        }
    }
    (integer + exponent <= SAFE_MAGNITUDE_DIGITS).then_some(i)
}

/// The index after the run of ASCII digits starting at `b[i]`: eight bytes at a time while
/// they are all digits (each byte's high nibble is 3, and stays 3 after adding 6), then one
/// by one.
fn digits(b: &[u8], mut i: usize) -> usize {
    const HIGH_NIBBLES: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const SIXES: u64 = 0x0606_0606_0606_0606;
    const THREES: u64 = 0x3333_3333_3333_3333;
    while let Some(chunk) = b.get(i..i + 8).and_then(|c| <[u8; 8]>::try_from(c).ok()) {
        let word = u64::from_le_bytes(chunk);
        let all_digits =
            (word & HIGH_NIBBLES) | ((word.wrapping_add(SIXES) & HIGH_NIBBLES) >> 4) == THREES;
        if !all_digits {
            break;
        }
        i += 8;
    }
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(body: &str) -> Option<(String, usize)> {
        find(body.as_bytes(), b"query_embeddings").map(|f| (body[f.start..f.end].to_string(), f.items))
    }

    #[test]
    fn digit_runs_end_at_the_first_other_byte() {
        for stop in 0..20 {
            for other in [b'/', b':', b' ', b'.', b'e', b'a', 0x00, 0x7f, 0xfa, 0xff] {
                let mut text = b"0123456789012345678901234".to_vec();
                text[stop] = other;
                assert_eq!(digits(&text, 0), stop, "{other:#x} at {stop}");
                assert_eq!(digits(&text[..stop], 0), stop);
            }
        }
        assert_eq!(digits(b"12", 5), 5);
    }

    #[test]
    fn finds_the_list_wherever_the_member_is() {
        assert_eq!(found(r#"{"query_embeddings":[[1,2.5],[-0.5e-3]]}"#), Some(("[[1,2.5],[-0.5e-3]]".into(), 2)));
        assert_eq!(
            found(r#" { "n" : 4 , "where" : {"a": ["x", {"b": "]}"}]}, "s": "q\"uery_embeddings", "query_embeddings" : [ 1 , 2 ] , "z": null}"#),
            Some(("[ 1 , 2 ]".into(), 2))
        );
        assert_eq!(found(r#"{"query_embeddings":[]}"#), Some(("[]".into(), 0)));
        assert_eq!(found(r#"{"query_embeddings":[[]]}"#), Some(("[[]]".into(), 1)));
    }

    #[test]
    fn leaves_anything_else_to_the_general_path() {
        for body in [
            r#"{"\u0071uery_embeddings":[[1]]}"#,
            r#"{"x":{"query_embeddings":[[1]]}}"#,
            r#"{"query_embeddings":[["1"]]}"#,
            r#"{"query_embeddings":[[[1]]]}"#,
            r#"{"query_embeddings":[[1,]]}"#,
            r#"{"query_embeddings":[01]}"#,
            r#"{"query_embeddings":[1.]}"#,
            r#"{"query_embeddings":[.5]}"#,
            r#"{"query_embeddings":[+1]}"#,
            r#"{"query_embeddings":[1e]}"#,
            r#"{"query_embeddings":[1e999]}"#,
            r#"{"query_embeddings":[1e300]}"#,
            r#"{"query_embeddings":[NaN]}"#,
            r#"{"query_embeddings":null}"#,
            r#"{"query_embeddings":[[1]"#,
            r#"[{"query_embeddings":[[1]]}]"#,
            r#"{"where":{"a":1}}"#,
        ] {
            assert_eq!(found(body), None, "{body}");
        }
        // Large but finite literals stay on the fast path.
        assert!(found(r#"{"query_embeddings":[1e299, 123456789012345678901234567890]}"#).is_some());
    }

    #[test]
    fn the_rest_of_the_body_is_still_parsed_strictly() {
        let keep = |b: &str| kept_list(b.as_bytes(), "query_embeddings", 10);
        assert!(matches!(keep(r#"{"query_embeddings":[[1]],"query_embeddings":[[2]]}"#), Some(Err(JsonError::DuplicateKey { .. }))));
        assert!(matches!(keep(r#"{"query_embeddings":[[1]],"\u0071uery_embeddings":5}"#), Some(Err(JsonError::DuplicateKey { .. }))));
        assert!(matches!(keep(r#"{"a": 1 2, "query_embeddings":[[1]]}"#), Some(Err(JsonError::Syntax(_)))));
        assert!(matches!(keep(r#"{"query_embeddings":[[1]]} x"#), Some(Err(JsonError::Syntax(_)))));
        assert!(matches!(keep("{\"s\":\"\u{ff}\",\"query_embeddings\":[[1]]}"), Some(Ok(_))));
        assert!(matches!(kept_list(b"{\"s\":\"\xff\",\"query_embeddings\":[[1]]}", "query_embeddings", 10), Some(Err(JsonError::NotUtf8))));
        let kept = keep(r#"{"n_results":4,"query_embeddings":[[1.10, -2e-3,3],[0.5]]}"#).unwrap().unwrap();
        assert_eq!(kept.value, serde_json::json!({"n_results": 4, "query_embeddings": [null, null]}));
        let list = kept.raw.unwrap();
        assert_eq!((list.text.as_slice(), list.items), (&b"[[1.10, -2e-3,3],[0.5]]"[..], 2));
    }
}
