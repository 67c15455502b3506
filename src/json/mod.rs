//! Strict JSON parsing for request and response bodies the proxy rewrites or inspects.
//!
//! `serde_json::Value` silently keeps the last of two equal object keys, and Chroma does the
//! same inside `where` (`{"dept":"eng","dept":"hr"}` filters on `hr`). A body the proxy reads
//! one way and the database another is a bypass, so duplicates are refused at every depth.
//!
//! Vectors, which vecgate never reads, can be kept as the client's text while the rest of a
//! body is parsed ([`parse_strict_keeping`] with the database's [`Place`]s); such a body is
//! written back with [`to_vec`], and is accepted or refused exactly as [`parse_strict`] would.

mod kept;
mod numeric;
mod places;
pub mod scan;
mod write;

pub use kept::parse_strict_keeping;
pub use places::Place;
pub use write::to_vec;

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

    /// Random JSON values, for the writers' property tests.
    pub(crate) fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
            "\\PC{0,8}".prop_map(Value::String),
            "[a-z\"\\\\\u{0}-\u{1f}]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-z\"]{0,4}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
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
