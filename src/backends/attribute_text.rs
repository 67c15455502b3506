//! A record attribute read from the database's JSON text, converted as
//! [`Value::from_json`] converts a parsed one: for the answer filters that read hits without
//! a parse tree (`chroma::ranges`, `qdrant::ranges`).

use crate::plan::Value;

/// [`Value::from_json`] of one JSON value's text (already validated, as an answer is before
/// its records are judged): plain strings, small integers and the literals directly, anything
/// else through serde_json. `None` if it is not JSON.
pub fn value_of(text: &str) -> Option<Value> {
    match text.as_bytes() {
        [b'"', inner @ .., b'"'] if !inner.contains(&b'\\') => std::str::from_utf8(inner).ok().map(Value::string),
        b"true" => Some(Value::Bool(true)),
        b"false" => Some(Value::Bool(false)),
        b"null" => Some(Value::Null),
        // JSON numbers are doubles, as in the PDP (`google.protobuf.Value`).
        digits if small_integer(digits) => text.parse::<i64>().ok().map(|n| Value::Double(n as f64)),
        _ => serde_json::from_str::<serde_json::Value>(text).ok().map(|v| Value::from_json(&v)),
    }
}

/// One to eighteen digits, no leading zero: an `i64` as JSON writes it (exact as an `f64` as
/// serde_json converts it, `as f64`).
fn small_integer(digits: &[u8]) -> bool {
    !digits.is_empty()
        && digits.len() <= 18
        && digits.iter().all(u8::is_ascii_digit)
        && (digits[0] != b'0' || digits.len() == 1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn same(a: &Value, b: &Value) -> bool {
        format!("{a:?}") == format!("{b:?}")
    }

    proptest! {
        /// The text converted is the parsed value converted.
        #[test]
        fn converts_as_the_parsed_value_does(v in crate::backends::testkit::optional_value(crate::backends::testkit::Model::Qdrant), n in any::<i64>(), s in "\\PC{0,6}") {
            for json in [v.unwrap_or(serde_json::Value::Null), serde_json::json!(n), serde_json::json!(s), serde_json::json!(u64::MAX), serde_json::json!(-0.0)] {
                let text = serde_json::to_string(&json).unwrap();
                prop_assert!(same(&value_of(&text).unwrap(), &Value::from_json(&json)), "{}", text);
            }
        }
    }
}
