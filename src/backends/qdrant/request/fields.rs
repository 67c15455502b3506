//! Checks shared by every Qdrant body: unknown fields refused, value kinds checked.

use super::super::routes::Operation;
use super::RequestError;
use serde_json::{Map, Value};

/// The array at `field` (absent or null: empty).
pub(super) fn optional_list<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
) -> Result<&'a [Value], RequestError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(invalid(field, "must be a list")),
    }
}

pub(super) fn into_object(body: Value) -> Result<Map<String, Value>, RequestError> {
    match body {
        Value::Object(obj) => Ok(obj),
        _ => Err(RequestError::NotAnObject),
    }
}

pub(super) fn check_fields(
    op: Operation,
    obj: &Map<String, Value>,
    known: &[&str],
) -> Result<(), RequestError> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        Some(field) => Err(RequestError::UnknownField {
            op: op.name(),
            field: field.clone(),
        }),
        None => Ok(()),
    }
}

/// Like [`check_fields`] for a nested object, named by its field.
pub(super) fn check_known(obj: &Map<String, Value>, field: &str, known: &[&str]) -> Result<(), RequestError> {
    if obj.keys().any(|k| !known.contains(&k.as_str())) {
        return Err(invalid(field, "has an unknown field"));
    }
    Ok(())
}

pub(super) fn check_filter_or_null(obj: &Map<String, Value>, field: &str) -> Result<(), RequestError> {
    match obj.get(field) {
        None | Some(Value::Null) | Some(Value::Object(_)) => Ok(()),
        Some(_) => Err(invalid(field, "must be a filter object or null")),
    }
}

pub(super) fn required_list<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
) -> Result<&'a Vec<Value>, RequestError> {
    match obj.get(field) {
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(invalid(field, "must be a list")),
        None => Err(missing(field)),
    }
}

pub(super) fn invalid(field: &str, reason: &'static str) -> RequestError {
    RequestError::InvalidField {
        field: field.to_string(),
        reason,
    }
}

pub(super) fn missing(field: &str) -> RequestError {
    RequestError::MissingField {
        field: field.to_string(),
    }
}
