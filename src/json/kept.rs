//! Vectors kept as the client's text: a body parsed with [`parse_strict_keeping`] has every
//! flat list of numbers at a vector place ([`Place`]) stand in the parsed value as a
//! one-item list holding a marker string with the list's original text, and
//! [`super::to_vec`] writes that text back byte for byte. Hundreds of floats per vector are
//! then never converted to numbers and back, which was most of the cost of a body's rewrite.
//!
//! Invariants:
//! - **Same acceptance.** A body is accepted exactly when [`super::parse_strict`] accepts it,
//!   with the same error when not: the kept lists are validated by the number grammar, the
//!   rest of the body goes through the strict parser with each list replaced by a
//!   placeholder of the same depth, and if any placeholder is not found as a value where the
//!   walk put it, or the strict parser refuses, the original body is parsed instead.
//! - **Same reading.** A stand-in is a list, as a vector is; database modules name as vector
//!   places only values whose numbers they never read (`tests/fuzz_parsers.rs` runs whole
//!   request rewrites both ways and compares).
//! - **Unforgeable.** The marker holds a random value drawn once per process, so no client
//!   string can be taken for a stand-in; and [`super::to_vec`] writes a stand-in's text only
//!   if it is bracketed and holds no quote, so even a forged one could not add a key or a
//!   string.

use super::places::{vector_ranges, Place};
use super::{parse, JsonError};
use serde_json::Value;
use std::fmt::Write as _;
use std::sync::OnceLock;

/// `vecgate-kept-vector:<random>:`, the start of every stand-in's string.
fn prefix() -> &'static str {
    static PREFIX: OnceLock<String> = OnceLock::new();
    PREFIX.get_or_init(|| format!("vecgate-kept-vector:{}:", uuid::Uuid::new_v4().simple()))
}

/// Parses `bytes` as [`super::parse_strict`] does, keeping the flat lists of numbers at the
/// vector places of `place` as text (see the module documentation).
pub fn parse_strict_keeping(bytes: &[u8], max_depth: usize, place: &Place) -> Result<Value, JsonError> {
    match kept(bytes, max_depth, place) {
        Some(value) => Ok(value),
        None => parse(bytes, max_depth),
    }
}

/// The value with stand-ins, if every kept list was found where the walk put it.
fn kept(bytes: &[u8], max_depth: usize, place: &Place) -> Option<Value> {
    let ranges = vector_ranges(bytes, place, max_depth)?;
    if ranges.is_empty() {
        return None;
    }
    let prefix = prefix();
    let kept_bytes: usize = ranges.iter().map(|(s, e)| e - s).sum();
    let mut rest = Vec::with_capacity(bytes.len() - kept_bytes + ranges.len() * (prefix.len() + 8));
    let mut at = 0;
    let mut index = String::new();
    for (k, &(start, end)) in ranges.iter().enumerate() {
        rest.extend_from_slice(bytes.get(at..start)?);
        index.clear();
        let _ = write!(index, "[\"{prefix}{k}\"]");
        rest.extend_from_slice(index.as_bytes());
        at = end;
    }
    rest.extend_from_slice(bytes.get(at..)?);
    // A refusal is taken from the original body, so its error is the one the strict parser
    // gives there.
    let mut value = parse(&rest, max_depth).ok()?;
    let mut restore = Restore { prefix, bytes, ranges: &ranges, seen: vec![false; ranges.len()], found: 0 };
    restore.walk(&mut value)?;
    (restore.found == ranges.len()).then_some(value)
}

/// Puts each kept list's text into its placeholder.
struct Restore<'a> {
    prefix: &'a str,
    bytes: &'a [u8],
    ranges: &'a [(usize, usize)],
    seen: Vec<bool>,
    found: usize,
}

impl Restore<'_> {
    fn walk(&mut self, value: &mut Value) -> Option<()> {
        match value {
            Value::Array(items) => {
                if let [Value::String(s)] = items.as_mut_slice() {
                    if let Some(k) = s.strip_prefix(self.prefix).and_then(|k| k.parse::<usize>().ok()) {
                        let seen = self.seen.get_mut(k)?;
                        if std::mem::replace(seen, true) {
                            return None;
                        }
                        let &(start, end) = self.ranges.get(k)?;
                        let text = std::str::from_utf8(self.bytes.get(start..end)?).ok()?;
                        let mut stand_in = String::with_capacity(self.prefix.len() + text.len());
                        stand_in.push_str(self.prefix);
                        stand_in.push_str(text);
                        *s = stand_in;
                        self.found += 1;
                        return Some(());
                    }
                }
                items.iter_mut().try_for_each(|item| self.walk(item))
            }
            Value::Object(members) => members.values_mut().try_for_each(|v| self.walk(v)),
            _ => Some(()),
        }
    }
}

/// The original text of a stand-in (`[` … `]`); `None` for any other value. A text with a
/// quote is not one either: written raw, it could add a key.
pub(super) fn kept_text(items: &[Value]) -> Option<&str> {
    let [Value::String(s)] = items else {
        return None;
    };
    let text = s.strip_prefix(prefix())?;
    // memchr's vectorised search: the text is a whole vector (kilobytes), scanned per request.
    let plain = text.starts_with('[') && text.ends_with(']') && memchr::memchr(b'"', text.as_bytes()).is_none();
    plain.then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{parse_strict, to_vec};
    use serde_json::json;

    static EMBEDDINGS: Place = Place::Object(&[("query_embeddings", &Place::Each(&Place::Vector))]);
    static NESTED: Place = Place::Object(&[("q", &Place::Vector), ("p", &Place::one_or_each(&NESTED, &NESTED_LIST))]);
    static NESTED_LIST: Place = Place::Each(&NESTED);

    fn keep(body: &str, place: &Place) -> Result<Value, JsonError> {
        parse_strict_keeping(body.as_bytes(), 10, place)
    }

    fn reparsed(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn kept_lists_are_written_back_unchanged() {
        let body = r#"{"n_results":4,"query_embeddings":[[1.10, -2e-3,3],[0.5]],"where":{"a":1}}"#;
        let mut kept = keep(body, &EMBEDDINGS).unwrap();
        assert_eq!(kept["query_embeddings"].as_array().map(Vec::len), Some(2));
        assert!(kept["query_embeddings"][0].is_array());
        kept["where"] = json!({"$and": [{"a": 1}, {"dept": "x"}]});
        let out = to_vec(&kept).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.contains(r#""query_embeddings":[[1.10, -2e-3,3],[0.5]]"#), "{text}");
        assert_eq!(
            reparsed(&out),
            json!({"n_results": 4, "query_embeddings": [[1.10, -0.002, 3], [0.5]],
                   "where": {"$and": [{"a": 1}, {"dept": "x"}]}})
        );
    }

    #[test]
    fn vectors_are_kept_wherever_the_places_say() {
        let body = r#"{"q":[0.5,1],"p":[{"q":{"a":[1,2],"b":{"indices":[1],"values":[0.2]}},"p":{"q":[[1],[2]]}}],"x":[3.5]}"#;
        let kept = keep(body, &NESTED).unwrap();
        // Stand-ins at the vector places; elsewhere (`x`) the numbers are parsed.
        assert_eq!(kept["x"], json!([3.5]));
        assert_ne!(kept["q"], json!([0.5, 1]));
        assert_eq!(reparsed(&to_vec(&kept).unwrap()), reparsed(body.as_bytes()));
        assert!(String::from_utf8(to_vec(&kept).unwrap()).unwrap().contains(r#""p":{"q":[[1],[2]]}"#));
    }

    #[test]
    fn keeping_is_as_strict_as_parsing() {
        for body in [
            r#"{"query_embeddings":[[1]],"query_embeddings":[[2]]}"#,
            r#"{"query_embeddings":[[1]],"where":{"a":1,"a":2}}"#,
            r#"{"query_embeddings":[[1,]]}"#,
            r#"{"query_embeddings":[[1]]} x"#,
            r#"{"where":[[[[[[[[[[[1]]]]]]]]]]],"query_embeddings":[[1]]}"#,
            r#"{"query_embeddings":[[1]],"\u0071uery_embeddings":5}"#,
            r#"{"query_embeddings":[[1e999]]}"#,
            r#"{"a": 1 2, "query_embeddings":[[1]]}"#,
        ] {
            assert_eq!(keep(body, &EMBEDDINGS).map_err(|e| std::mem::discriminant(&e)), parse_strict(body.as_bytes(), 10).map_err(|e| std::mem::discriminant(&e)), "{body}");
            assert!(keep(body, &EMBEDDINGS).is_err(), "{body}");
        }
        assert!(matches!(parse_strict_keeping(b"{\"s\":\"\xff\",\"query_embeddings\":[[1]]}", 10, &EMBEDDINGS), Err(JsonError::NotUtf8)));
    }

    #[test]
    fn anything_unusual_is_parsed_as_usual() {
        for body in [
            r#"{"query_embeddings":null}"#,
            r#"{"query_embeddings":[["1"]]}"#,
            r#"{"query_embeddings":[[1e300]]}"#,
            r#"{"x":{"query_embeddings":[[1]]}}"#,
            r#"{"\u0071uery_embeddings":[[1]]}"#,
            r#"[1]"#,
            r#"{}"#,
        ] {
            let kept = keep(body, &EMBEDDINGS).unwrap();
            assert_eq!(kept, parse_strict(body.as_bytes(), 10).unwrap(), "{body}");
        }
    }

    #[test]
    fn a_forged_stand_in_is_written_as_the_string_it_is() {
        let forged = json!([format!("{}[1,2]", "vecgate-kept-vector:00000000000000000000000000000000:")]);
        assert_eq!(reparsed(&to_vec(&forged).unwrap()), forged);
        // A real stand-in whose text was changed is not written raw either.
        let mut kept = keep(r#"{"query_embeddings":[[1]]}"#, &EMBEDDINGS).unwrap();
        if let Some(Value::String(s)) = kept["query_embeddings"][0].get_mut(0) {
            s.push_str(",\"x\":1");
        }
        assert!(!String::from_utf8(to_vec(&kept).unwrap()).unwrap().contains("\"x\":1}"));
    }

    proptest::proptest! {
        /// Whatever the floats and the other fields, the written body means what the original did.
        #[test]
        fn kept_bodies_mean_what_they_meant(
            embeddings in proptest::collection::vec(proptest::collection::vec(proptest::num::f64::NORMAL, 0..5), 0..4),
            n in 0u32..10,
            with_where in proptest::bool::ANY,
        ) {
            let mut body = json!({"query_embeddings": embeddings, "n_results": n});
            if with_where {
                body["where"] = json!({"dept": "x"});
            }
            let bytes = serde_json::to_vec(&body).unwrap();
            let kept = parse_strict_keeping(&bytes, 10, &EMBEDDINGS).unwrap();
            proptest::prop_assert_eq!(reparsed(&to_vec(&kept).unwrap()), body);
        }
    }
}
