//! `points/batch`: split into the single operations it holds, and put back together.

use super::super::routes::Operation;
use super::fields::{check_fields, invalid, required_list};
use super::RequestError;
use serde_json::{json, Value};

/// The operations of a points/batch body, each as the single operation it is and that
/// operation's own body (so every single-operation function applies to it). An entry must
/// have exactly one known key.
pub fn split_batch(body: &Value) -> Result<Vec<(Operation, Value)>, RequestError> {
    let obj = body.as_object().ok_or(RequestError::NotAnObject)?;
    check_fields(Operation::BatchUpdate, obj, &["operations"])?;
    let ops = required_list(obj, "operations")?;
    ops.iter()
        .map(|entry| {
            let entry = entry
                .as_object()
                .ok_or_else(|| invalid("operations", "entries must be objects"))?;
            let mut items = entry.iter();
            let (name, inner) = match (items.next(), items.next()) {
                (Some(one), None) => one,
                _ => {
                    return Err(invalid(
                        "operations",
                        "each entry must have exactly one key",
                    ))
                }
            };
            let op = batch_operation(name)
                .ok_or_else(|| invalid("operations", "unknown batch operation"))?;
            Ok((op, inner.clone()))
        })
        .collect()
}

/// Reassembles a points/batch body from [`split_batch`]'s parts (possibly rewritten).
pub fn join_batch(parts: Vec<(Operation, Value)>) -> Result<Value, RequestError> {
    let ops = parts
        .into_iter()
        .map(|(op, body)| {
            let name = batch_key(op).ok_or(RequestError::WrongOperation { op: op.name() })?;
            Ok(json!({ name: body }))
        })
        .collect::<Result<Vec<_>, RequestError>>()?;
    Ok(json!({ "operations": ops }))
}

pub(super) const BATCH_KEYS: [(&str, Operation); 8] = [
    ("upsert", Operation::UpsertPoints),
    ("delete", Operation::DeletePoints),
    ("set_payload", Operation::SetPayload),
    ("overwrite_payload", Operation::OverwritePayload),
    ("delete_payload", Operation::DeletePayload),
    ("clear_payload", Operation::ClearPayload),
    ("update_vectors", Operation::UpdateVectors),
    ("delete_vectors", Operation::DeleteVectors),
];

pub(super) fn batch_operation(key: &str) -> Option<Operation> {
    BATCH_KEYS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, op)| *op)
}

pub(super) fn batch_key(op: Operation) -> Option<&'static str> {
    BATCH_KEYS.iter().find(|(_, o)| *o == op).map(|(k, _)| *k)
}
