//! Writing a parsed body back as JSON: serde_json's compact form, except that a vector kept
//! as the client's text ([`super::kept`]) is written as that text.

use super::kept::kept_text;
use super::JsonError;
use serde_json::Value;

/// `value` as compact JSON, kept vectors as their original text.
pub fn to_vec(value: &Value) -> Result<Vec<u8>, JsonError> {
    let mut out = Vec::with_capacity(256);
    write(&mut out, value)?;
    Ok(out)
}

fn write(out: &mut Vec<u8>, value: &Value) -> Result<(), JsonError> {
    match value {
        Value::Array(items) => {
            if let Some(text) = kept_text(items) {
                out.extend_from_slice(text.as_bytes());
                return Ok(());
            }
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(out, item)?;
            }
            out.push(b']');
        }
        Value::Object(members) => {
            out.push(b'{');
            for (i, (key, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                scalar(out, key)?;
                out.push(b':');
                write(out, item)?;
            }
            out.push(b'}');
        }
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => scalar(out, n)?,
        Value::String(s) => scalar(out, s)?,
    }
    Ok(())
}

fn scalar<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), JsonError> {
    serde_json::to_writer(&mut *out, value).map_err(|e| JsonError::Syntax(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    proptest::proptest! {
        /// Without kept vectors, the same bytes as serde_json.
        #[test]
        fn writes_what_serde_json_writes(v in crate::json::tests::json_value()) {
            proptest::prop_assert_eq!(to_vec(&v).unwrap(), serde_json::to_vec(&v).unwrap());
        }
    }

    #[test]
    fn writes_escapes_and_numbers_as_serde_json_does() {
        let v = json!({"a\"b": ["\u{1}\n", 1.5, -2, 1e300, null, true, {}], "": []});
        assert_eq!(to_vec(&v).unwrap(), serde_json::to_vec(&v).unwrap());
    }
}
