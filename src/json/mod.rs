//! Strict JSON parsing for request and response bodies the proxy rewrites or inspects.
//!
//! `serde_json::Value` silently keeps the last of two equal object keys, and Chroma does the
//! same inside `where` (`{"dept":"eng","dept":"hr"}` filters on `hr`). A body the proxy reads
//! one way and the database another is a bypass, so duplicates are refused at every depth.

mod numeric;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::RefCell;
use std::fmt;

/// Why a body is not acceptable JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("the body is not valid UTF-8")]
    NotUtf8,
    /// Invalid JSON, trailing data after the value, or an empty body.
    #[error("the body is not valid JSON: {0}")]
    Syntax(String),
    #[error("the key {key:?} appears twice in one object")]
    DuplicateKey { key: String },
    #[error("the body nests objects and arrays more than {limit} levels deep")]
    TooDeep { limit: usize },
}

/// Parses `bytes` as exactly one JSON value. Refuses invalid UTF-8, invalid JSON, trailing
/// data, an object with two equal keys (at any depth), and objects/arrays nested more than
/// `max_depth` levels (a scalar has depth 0, `{}` and `[]` depth 1). serde_json itself stops
/// at 128 levels, so a `max_depth` above 127 reports such bodies as `Syntax`.
pub fn parse_strict(bytes: &[u8], max_depth: usize) -> Result<Value, JsonError> {
    parse(bytes, max_depth)
}

/// A body parsed by [`parse_strict_keeping_raw`]: the value, with the items of one top-level
/// list replaced by `null`, and that list's original text.
#[derive(Debug)]
pub struct KeptRaw {
    pub value: Value,
    /// `None`: the key was absent or its value was not a list, and `value` holds it parsed.
    pub raw: Option<KeptList>,
}

/// A top-level list kept as the client sent it.
#[derive(Debug)]
pub struct KeptList {
    pub key: String,
    /// The list's text, `[` to `]`.
    pub text: Vec<u8>,
    pub items: usize,
}

impl KeptRaw {
    /// Serialises `value` with the kept list put back, byte for byte as the client sent it.
    /// `value` may have been rewritten meanwhile, but the kept key must still hold a list with
    /// as many items.
    pub fn to_vec(&self) -> Result<Vec<u8>, JsonError> {
        let syntax = |e: serde_json::Error| JsonError::Syntax(e.to_string());
        let Some(kept) = &self.raw else {
            return serde_json::to_vec(&self.value).map_err(syntax);
        };
        let Value::Object(map) = &self.value else {
            return Err(JsonError::Syntax("the kept list's body is no longer an object".into()));
        };
        if map.get(&kept.key).and_then(Value::as_array).map(Vec::len) != Some(kept.items) {
            return Err(JsonError::Syntax(format!("the kept list {:?} was changed", kept.key)));
        }
        let mut out = Vec::with_capacity(kept.text.len() + 256);
        out.push(b'{');
        for (key, value) in map.iter().filter(|(k, _)| **k != kept.key) {
            serde_json::to_writer(&mut out, key).map_err(syntax)?;
            out.push(b':');
            serde_json::to_writer(&mut out, value).map_err(syntax)?;
            out.push(b',');
        }
        serde_json::to_writer(&mut out, &kept.key).map_err(syntax)?;
        out.push(b':');
        out.extend_from_slice(&kept.text);
        out.push(b'}');
        Ok(out)
    }
}

/// Like [`parse_strict`], but when the top-level list under `keep` holds numbers or lists of
/// numbers (a query's embeddings, which nothing in the proxy reads), its items are checked
/// against JSON's number grammar and kept as text instead of being converted to numbers and
/// back; [`KeptRaw::to_vec`] writes them out unchanged. Every other body, and everything
/// else in this one, is parsed by [`parse_strict`], and the same bodies are refused.
pub fn parse_strict_keeping_raw(bytes: &[u8], max_depth: usize, keep: &str) -> Result<KeptRaw, JsonError> {
    if let Some(kept) = numeric::kept_list(bytes, keep, max_depth) {
        return kept;
    }
    parse(bytes, max_depth).map(|value| KeptRaw { value, raw: None })
}

fn parse(bytes: &[u8], max_depth: usize) -> Result<Value, JsonError> {
    if std::str::from_utf8(bytes).is_err() {
        return Err(JsonError::NotUtf8);
    }
    // Our own refusals travel past serde's error type through this slot.
    let refusal = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let seed = StrictValue {
        depth_left: max_depth,
        max_depth,
        refusal: &refusal,
    };
    let parsed = seed.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match (parsed, refusal.into_inner()) {
        (_, Some(refused)) => Err(refused),
        (Ok(value), None) => Ok(value),
        (Err(e), None) => Err(JsonError::Syntax(e.to_string())),
    }
}

struct StrictValue<'r> {
    depth_left: usize,
    max_depth: usize,
    refusal: &'r RefCell<Option<JsonError>>,
}

impl StrictValue<'_> {
    fn refuse<E: de::Error>(&self, why: JsonError) -> E {
        let msg = why.to_string();
        self.refusal.replace(Some(why));
        E::custom(msg)
    }

    /// The seed for the values inside a container, one level deeper.
    fn inner<E: de::Error>(&self) -> Result<StrictValue<'_>, E> {
        match self.depth_left.checked_sub(1) {
            Some(depth_left) => Ok(StrictValue {
                depth_left,
                max_depth: self.max_depth,
                refusal: self.refusal,
            }),
            None => Err(self.refuse(JsonError::TooDeep {
                limit: self.max_depth,
            })),
        }
    }
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Value, E> {
        // JSON text cannot spell NaN or infinities; serde_json refuses overflowing literals.
        Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let inner = self.inner()?;
            match seq.next_element_seed(inner)? {
                Some(v) => items.push(v),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        // Checked before the first key so that `{}` at the limit is refused like `[]`.
        self.inner::<A::Error>()?;
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(self.refuse(JsonError::DuplicateKey { key }));
            }
            let value = map.next_value_seed(self.inner()?)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reparsed(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn kept_list_items_are_written_back_unchanged() {
        let body = br#"{"n_results":4,"query_embeddings":[[1.10, -2e-3,3],[0.5]],"where":{"a":1}}"#;
        let mut kept = parse_strict_keeping_raw(body, 10, "query_embeddings").unwrap();
        assert_eq!(kept.value["query_embeddings"], json!([null, null]));
        kept.value["where"] = json!({"$and": [{"a": 1}, {"dept": "x"}]});
        let out = kept.to_vec().unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.contains(r#""query_embeddings":[[1.10, -2e-3,3],[0.5]]"#), "{text}");
        assert_eq!(
            reparsed(&out),
            json!({"n_results": 4, "query_embeddings": [[1.10, -0.002, 3], [0.5]],
                   "where": {"$and": [{"a": 1}, {"dept": "x"}]}})
        );
    }

    #[test]
    fn keeping_is_as_strict_as_parsing() {
        let keep = |b: &str| parse_strict_keeping_raw(b.as_bytes(), 10, "query_embeddings").map(|k| k.value);
        // The kept key twice, or a duplicate anywhere else, is refused.
        assert!(matches!(keep(r#"{"query_embeddings":[[1]],"query_embeddings":[[2]]}"#), Err(JsonError::DuplicateKey { .. })));
        assert!(matches!(keep(r#"{"query_embeddings":[[1]],"where":{"a":1,"a":2}}"#), Err(JsonError::DuplicateKey { .. })));
        // Broken JSON inside the kept items, trailing data, bad UTF-8.
        assert!(matches!(keep(r#"{"query_embeddings":[[1,]]}"#), Err(JsonError::Syntax(_))));
        assert!(matches!(keep(r#"{"query_embeddings":[[1]]} x"#), Err(JsonError::Syntax(_))));
        assert!(matches!(parse_strict_keeping_raw(b"{\"a\":\"\xff\"}", 10, "k"), Err(JsonError::NotUtf8)));
        // Depth still counts outside the kept list.
        assert!(matches!(keep(r#"{"where":[[[[[[[[[[[1]]]]]]]]]]]}"#), Err(JsonError::TooDeep { .. })));
        // Only the top level is kept; the same key deeper is parsed.
        let nested = parse_strict_keeping_raw(br#"{"x":{"query_embeddings":[[1]]}}"#, 10, "query_embeddings").unwrap();
        assert!(nested.raw.is_none());
        assert_eq!(nested.value, json!({"x": {"query_embeddings": [[1]]}}));
    }

    #[test]
    fn a_kept_key_that_is_not_a_list_is_parsed_normally() {
        for body in [r#"{"query_embeddings":null}"#, r#"{"query_embeddings":{"a":1}}"#, r#"{"query_embeddings":3}"#, r#"{}"#, r#"[1]"#] {
            let kept = parse_strict_keeping_raw(body.as_bytes(), 10, "query_embeddings").unwrap();
            assert!(kept.raw.is_none(), "{body}");
            assert_eq!(kept.value, parse_strict(body.as_bytes(), 10).unwrap());
            assert_eq!(reparsed(&kept.to_vec().unwrap()), reparsed(body.as_bytes()));
        }
        // An empty list is kept (no items) and written back empty.
        let empty = parse_strict_keeping_raw(br#"{"query_embeddings":[]}"#, 10, "query_embeddings").unwrap();
        assert_eq!(reparsed(&empty.to_vec().unwrap()), json!({"query_embeddings": []}));
    }

    #[test]
    fn a_changed_kept_list_is_not_written() {
        let mut kept = parse_strict_keeping_raw(br#"{"query_embeddings":[[1],[2]]}"#, 10, "query_embeddings").unwrap();
        kept.value["query_embeddings"] = json!([null]);
        assert!(kept.to_vec().is_err());
        kept.value = json!([]);
        assert!(kept.to_vec().is_err());
    }

    proptest::proptest! {
        /// Whatever the floats and the other fields, the spliced body means what the original did.
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
            let kept = parse_strict_keeping_raw(&bytes, 10, "query_embeddings").unwrap();
            proptest::prop_assert_eq!(reparsed(&kept.to_vec().unwrap()), body);
        }
    }

    #[test]
    fn parses_plain_json() {
        let v = parse_strict(br#"{"a":[1,2.5,"x",null,true],"b":{"c":{}}}"#, 10).unwrap();
        assert_eq!(v, json!({"a":[1,2.5,"x",null,true],"b":{"c":{}}}));
    }

    #[test]
    fn refuses_duplicates_at_any_depth() {
        for body in [
            r#"{"a":1,"a":2}"#,
            r#"{"where":{"dept":"eng","dept":"hr"}}"#,
            r#"[{"x":{"$and":[],"$and":[]}}]"#,
            r#"{"a":1,"\u0061":2}"#,
        ] {
            assert!(
                matches!(
                    parse_strict(body.as_bytes(), 10),
                    Err(JsonError::DuplicateKey { .. })
                ),
                "{body}"
            );
        }
    }

    #[test]
    fn depth_limit_counts_containers() {
        assert!(parse_strict(b"1", 0).is_ok());
        assert_eq!(parse_strict(b"[]", 0), Err(JsonError::TooDeep { limit: 0 }));
        assert_eq!(parse_strict(b"{}", 0), Err(JsonError::TooDeep { limit: 0 }));
        assert!(parse_strict(b"[[{}]]", 3).is_ok());
        assert_eq!(
            parse_strict(b"[[{}]]", 2),
            Err(JsonError::TooDeep { limit: 2 })
        );
        assert_eq!(
            parse_strict(br#"{"a":{"b":1}}"#, 1),
            Err(JsonError::TooDeep { limit: 1 })
        );
    }

    #[test]
    fn deep_input_does_not_overflow() {
        let deep = "[".repeat(100_000);
        assert!(matches!(
            parse_strict(deep.as_bytes(), 64),
            Err(JsonError::TooDeep { .. })
        ));
        assert!(matches!(
            parse_strict(deep.as_bytes(), 100_000),
            Err(JsonError::Syntax(_))
        ));
    }

    #[test]
    fn refuses_trailing_data_and_garbage() {
        for body in [
            &b"{} {}"[..],
            b"{}x",
            b"",
            b"  ",
            b"{",
            b"[1,]",
            b"NaN",
            b"1e999",
        ] {
            assert!(
                matches!(parse_strict(body, 10), Err(JsonError::Syntax(_))),
                "{body:?}"
            );
        }
        assert!(parse_strict(b" {} \n", 10).is_ok());
    }

    #[test]
    fn refuses_invalid_utf8() {
        assert_eq!(parse_strict(b"\"\xff\"", 10), Err(JsonError::NotUtf8));
    }
}
