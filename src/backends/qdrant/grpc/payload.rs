//! Payloads on the gRPC face: `qdrant.Value` maps to and from the JSON Qdrant stores them as,
//! so that the write rule and the hit check read a point's attributes exactly as they read a
//! REST point's ([`crate::backends::qdrant::NestedPayload`]); and trimming a payload back to
//! what the caller asked for after the check forced paths into it.
//!
//! Qdrant stores payloads as JSON: an `integer_value` is a JSON integer, a `double_value` a
//! JSON float. A double JSON cannot hold (NaN, ±infinity) is refused, not guessed.

use super::proto::qdrant::{value::Kind, ListValue, Struct, Value};
use crate::backends::qdrant::request::PayloadTrim;
use serde_json::{Map, Number, Value as Json};
use std::collections::BTreeMap;

/// A payload as the messages hold it.
pub type ProtoPayload = BTreeMap<String, Value>;

/// A payload value JSON cannot hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the payload holds a number JSON cannot store (NaN or infinity)")]
pub struct NotJson;

/// A payload as JSON.
pub fn to_json(payload: &ProtoPayload) -> Result<Map<String, Json>, NotJson> {
    payload.iter().map(|(k, v)| Ok((k.clone(), value_to_json(v)?))).collect()
}

pub fn value_to_json(value: &Value) -> Result<Json, NotJson> {
    Ok(match &value.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::DoubleValue(d)) => Json::Number(Number::from_f64(*d).ok_or(NotJson)?),
        Some(Kind::IntegerValue(i)) => Json::from(*i),
        Some(Kind::StringValue(s)) => Json::String(s.clone()),
        Some(Kind::BoolValue(b)) => Json::Bool(*b),
        Some(Kind::StructValue(s)) => Json::Object(to_json(&s.fields)?),
        Some(Kind::ListValue(l)) => Json::Array(l.values.iter().map(value_to_json).collect::<Result<_, _>>()?),
    })
}

/// A JSON value as a payload value (stamps): integers that fit i64 as integers, other numbers
/// as doubles.
pub fn value_from_json(value: &Json) -> Value {
    let kind = match value {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Kind::IntegerValue(i),
            None => Kind::DoubleValue(n.as_f64().unwrap_or_default()),
        },
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Array(items) => Kind::ListValue(ListValue { values: items.iter().map(value_from_json).collect() }),
        Json::Object(map) => Kind::StructValue(Struct { fields: map.iter().map(|(k, v)| (k.clone(), value_from_json(v))).collect() }),
    };
    Value { kind: Some(kind) }
}

/// Sets `stamps` in the object at the dotted `prefix` of `payload` (created where missing or
/// not an object), as the REST face stamps a JSON payload.
pub fn stamp(payload: &mut ProtoPayload, prefix: &str, stamps: &[(String, Json)]) {
    let mut object = payload;
    for segment in prefix.split('.').filter(|s| !s.is_empty()) {
        let entry = object.entry(segment.to_string()).or_insert_with(|| Value { kind: None });
        if !matches!(entry.kind, Some(Kind::StructValue(_))) {
            entry.kind = Some(Kind::StructValue(Struct::default()));
        }
        let Some(Kind::StructValue(inner)) = &mut entry.kind else {
            return;
        };
        object = &mut inner.fields;
    }
    for (name, value) in stamps {
        object.insert(name.clone(), value_from_json(value));
    }
}

/// Gives the caller the payload it asked for (see [`PayloadTrim`]).
pub fn trim(payload: &mut ProtoPayload, trim: &PayloadTrim) {
    match trim {
        PayloadTrim::AsReturned => {}
        PayloadTrim::Drop => payload.clear(),
        PayloadTrim::Include(paths) => *payload = project(payload, paths),
        PayloadTrim::Exclude(paths) => {
            for path in paths {
                remove_path(payload, path);
            }
        }
    }
}

/// Only the given dotted paths of `payload`.
fn project(payload: &ProtoPayload, paths: &[String]) -> ProtoPayload {
    let mut out = ProtoPayload::new();
    for path in paths {
        let mut segments = path.split('.');
        let Some(first) = segments.next() else { continue };
        let rest: Vec<&str> = segments.collect();
        let Some(value) = payload.get(first) else { continue };
        if rest.is_empty() {
            out.insert(first.to_string(), value.clone());
            continue;
        }
        let Some(Kind::StructValue(inner)) = &value.kind else { continue };
        let sub = project(&inner.fields, &[rest.join(".")]);
        if sub.is_empty() {
            continue;
        }
        let slot = out.entry(first.to_string()).or_insert_with(|| Value { kind: Some(Kind::StructValue(Struct::default())) });
        if let Some(Kind::StructValue(existing)) = &mut slot.kind {
            existing.fields.extend(sub);
        }
    }
    out
}

fn remove_path(payload: &mut ProtoPayload, path: &str) {
    match path.split_once('.') {
        None => {
            payload.remove(path);
        }
        Some((first, rest)) => {
            if let Some(Value { kind: Some(Kind::StructValue(inner)) }) = payload.get_mut(first) {
                remove_path(&mut inner.fields, rest);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn proto(v: Json) -> ProtoPayload {
        match value_from_json(&v).kind {
            Some(Kind::StructValue(s)) => s.fields,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn json_round_trips_and_nan_is_refused() {
        let payload = json!({"page_content": "x", "metadata": {"dept": "eng", "level": 3, "score": 0.5, "tags": ["a", null, true]}});
        assert_eq!(Json::Object(to_json(&proto(payload.clone())).unwrap()), payload);
        let mut bad = ProtoPayload::new();
        bad.insert("x".into(), Value { kind: Some(Kind::DoubleValue(f64::NAN)) });
        assert_eq!(to_json(&bad), Err(NotJson));
    }

    #[test]
    fn stamps_go_under_the_prefix_and_trims_undo_forced_paths() {
        let mut payload = proto(json!({"metadata": "not an object", "page_content": "x"}));
        stamp(&mut payload, "metadata.", &[("owner".into(), json!("alice"))]);
        assert_eq!(Json::Object(to_json(&payload).unwrap()), json!({"metadata": {"owner": "alice"}, "page_content": "x"}));
        let mut asked = proto(json!({"metadata": {"dept": "eng", "owner": "a"}, "page_content": "x"}));
        trim(&mut asked, &PayloadTrim::Include(vec!["page_content".into(), "metadata.owner".into()]));
        assert_eq!(Json::Object(to_json(&asked).unwrap()), json!({"page_content": "x", "metadata": {"owner": "a"}}));
        trim(&mut asked, &PayloadTrim::Exclude(vec!["metadata.owner".into()]));
        assert_eq!(Json::Object(to_json(&asked).unwrap()), json!({"page_content": "x", "metadata": {}}));
        trim(&mut asked, &PayloadTrim::Drop);
        assert!(asked.is_empty());
    }
}
