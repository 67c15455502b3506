//! Writes: the points an upsert, a payload or vector change touches and how each payload
//! changes; selectors by ids or by filter; the payload Qdrant stores afterwards.

use super::super::point_id::PointId;
use super::super::routes::Operation;
use super::batch::split_batch;
use super::fields::{check_fields, check_filter_or_null, check_known, into_object, invalid, missing, required_list};
use super::payload::{check_plain_path, path_list};
use super::read::and_filter;
use super::RequestError;
use serde_json::{json, Map, Value};
use std::collections::HashSet;

/// What a write does to one point's payload.
#[derive(Debug, Clone, PartialEq)]
pub enum PayloadChange {
    /// upsert (an absent or null payload stores `{}`), overwrite_payload.
    Replace(Map<String, Value>),
    /// set_payload: top-level keys overwrite, others stay; with `key`, the same merge into
    /// the object at that dotted path (created, or replacing a non-object, on the way).
    Merge {
        key: Option<String>,
        payload: Map<String, Value>,
    },
    /// delete_payload: these dotted paths are removed (a missing path is a no-op).
    DeleteKeys(Vec<String>),
    /// clear_payload.
    Clear,
    /// update_vectors, delete_vectors: the payload is untouched.
    Keep,
}

/// One point a write touches, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct PointWrite {
    pub id: PointId,
    pub change: PayloadChange,
    /// True for upsert, which creates a missing point; every other write fails (upstream)
    /// or does nothing on a missing point.
    pub may_create: bool,
}

/// The points a write selects.
#[derive(Debug, Clone, PartialEq)]
pub enum Selector {
    Ids(Vec<PointId>),
    /// Every point matching this filter (a Qdrant filter object).
    Filter(Value),
}

pub(super) const UPSERT_FIELDS: &[&str] = &[
    "points",
    "batch",
    "shard_key",
    "update_filter",
    "update_mode",
];

pub(super) const UPDATE_VECTORS_FIELDS: &[&str] = &["points", "shard_key", "update_filter"];

pub(super) const SET_PAYLOAD_FIELDS: &[&str] = &["payload", "points", "filter", "key", "shard_key"];

pub(super) const DELETE_PAYLOAD_FIELDS: &[&str] = &["keys", "points", "filter", "shard_key"];

pub(super) const POINTS_SELECTOR_FIELDS: &[&str] = &["points", "filter", "shard_key"];

pub(super) const DELETE_VECTORS_FIELDS: &[&str] = &["points", "filter", "vector", "shard_key"];

/// The points written by upsert (`points` list or `batch` columns), update_vectors, and
/// set/overwrite/delete/clear payload and delete_vectors by ids, in body order, with what
/// each does to the payload; points/batch: every operation's, in order (fold them in order
/// with [`payload_after`]). A write by filter contributes no point here: see
/// [`write_selector`]. Ids repeated within one operation are refused.
pub fn parse_point_writes(op: Operation, body: &Value) -> Result<Vec<PointWrite>, RequestError> {
    use Operation as O;
    let obj = body.as_object().ok_or(RequestError::NotAnObject)?;
    let by_ids = |change: PayloadChange| -> Result<Vec<PointWrite>, RequestError> {
        match selector_of(op, obj)? {
            Selector::Filter(_) => Ok(Vec::new()),
            Selector::Ids(ids) => Ok(ids
                .into_iter()
                .map(|id| PointWrite {
                    id,
                    change: change.clone(),
                    may_create: false,
                })
                .collect()),
        }
    };
    match op {
        O::UpsertPoints => parse_upsert(obj),
        O::UpdateVectors => {
            check_fields(op, obj, UPDATE_VECTORS_FIELDS)?;
            let points = required_list(obj, "points")?;
            let mut seen = HashSet::new();
            points
                .iter()
                .map(|p| {
                    let p = p
                        .as_object()
                        .ok_or_else(|| invalid("points", "entries must be objects"))?;
                    check_known(p, "points", &["id", "vector"])?;
                    Ok(PointWrite {
                        id: distinct(&mut seen, p.get("id"))?,
                        change: PayloadChange::Keep,
                        may_create: false,
                    })
                })
                .collect()
        }
        O::SetPayload | O::OverwritePayload => {
            let payload = match obj.get("payload") {
                Some(Value::Object(p)) => p.clone(),
                Some(_) => return Err(invalid("payload", "must be an object")),
                None => return Err(missing("payload")),
            };
            let key = match obj.get("key") {
                None | Some(Value::Null) => None,
                Some(Value::String(k)) => {
                    check_plain_path(k)?;
                    Some(k.clone())
                }
                Some(_) => return Err(invalid("key", "must be a string")),
            };
            let change = if op == O::SetPayload {
                PayloadChange::Merge { key, payload }
            } else if key.is_some() {
                return Err(RequestError::Unsupported {
                    what: "overwrite_payload with a key",
                });
            } else {
                PayloadChange::Replace(payload)
            };
            by_ids(change)
        }
        O::DeletePayload => {
            let keys = match obj.get("keys") {
                Some(Value::Array(items)) => path_list("keys", items)?,
                Some(_) => return Err(invalid("keys", "must be a list of paths")),
                None => return Err(missing("keys")),
            };
            by_ids(PayloadChange::DeleteKeys(keys))
        }
        O::ClearPayload => by_ids(PayloadChange::Clear),
        O::DeleteVectors => by_ids(PayloadChange::Keep),
        O::BatchUpdate => {
            let mut out = Vec::new();
            for (inner_op, inner) in split_batch(body)? {
                if inner_op != O::DeletePoints {
                    out.extend(parse_point_writes(inner_op, &inner)?);
                }
            }
            Ok(out)
        }
        other => Err(RequestError::WrongOperation { op: other.name() }),
    }
}

pub(super) fn parse_upsert(obj: &Map<String, Value>) -> Result<Vec<PointWrite>, RequestError> {
    check_fields(Operation::UpsertPoints, obj, UPSERT_FIELDS)?;
    match obj.get("update_mode") {
        None | Some(Value::Null) => {}
        Some(Value::String(m))
            if ["upsert", "insert_only", "update_only"].contains(&m.as_str()) => {}
        Some(_) => {
            return Err(invalid(
                "update_mode",
                "must be upsert, insert_only or update_only",
            ))
        }
    }
    check_filter_or_null(obj, "update_filter")?;
    let mut seen = HashSet::new();
    let write = |id, payload: Option<&Value>| -> Result<PointWrite, RequestError> {
        let payload = match payload {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(p)) => p.clone(),
            Some(_) => return Err(invalid("payload", "must be an object or null")),
        };
        Ok(PointWrite {
            id,
            change: PayloadChange::Replace(payload),
            may_create: true,
        })
    };
    match (obj.get("points"), obj.get("batch")) {
        (Some(Value::Array(points)), None) => points
            .iter()
            .map(|p| {
                let p = p
                    .as_object()
                    .ok_or_else(|| invalid("points", "entries must be objects"))?;
                check_known(p, "points", &["id", "vector", "payload"])?;
                write(distinct(&mut seen, p.get("id"))?, p.get("payload"))
            })
            .collect(),
        (None, Some(Value::Object(batch))) => {
            check_known(batch, "batch", &["ids", "vectors", "payloads"])?;
            let ids = required_list(batch, "ids")?;
            let payloads: Vec<Option<&Value>> = match batch.get("payloads") {
                None | Some(Value::Null) => vec![None; ids.len()],
                Some(Value::Array(p)) if p.len() == ids.len() => p.iter().map(Some).collect(),
                Some(_) => return Err(invalid("batch.payloads", "must have one entry per id")),
            };
            ids.iter()
                .zip(payloads)
                .map(|(id, payload)| write(distinct(&mut seen, Some(id))?, payload))
                .collect()
        }
        (Some(_), Some(_)) => Err(invalid("points", "give either points or batch")),
        (None, None) => Err(missing("points")),
        _ => Err(invalid("points", "points must be a list, batch an object")),
    }
}

/// An id not seen before in this operation.
pub(super) fn distinct(seen: &mut HashSet<PointId>, v: Option<&Value>) -> Result<PointId, RequestError> {
    let v = v.ok_or_else(|| missing("id"))?;
    let id = PointId::from_json(v)
        .ok_or_else(|| invalid("id", "must be an unsigned integer or a UUID"))?;
    if !seen.insert(id.clone()) {
        return Err(RequestError::DuplicateId { id: id.to_string() });
    }
    Ok(id)
}

/// The points a write or delete selects: the ids of upsert and update_vectors, or the
/// `points` / `filter` selector of delete, delete_vectors, and set, overwrite, delete and
/// clear payload. Both `points` and `filter`, or neither, is refused (Qdrant's untagged
/// selector would silently use one of them).
pub fn write_selector(op: Operation, body: &Value) -> Result<Selector, RequestError> {
    use Operation as O;
    let obj = body.as_object().ok_or(RequestError::NotAnObject)?;
    match op {
        O::UpsertPoints | O::UpdateVectors => Ok(Selector::Ids(
            parse_point_writes(op, body)?
                .into_iter()
                .map(|w| w.id)
                .collect(),
        )),
        _ => selector_of(op, obj),
    }
}

pub(super) fn selector_of(op: Operation, obj: &Map<String, Value>) -> Result<Selector, RequestError> {
    use Operation as O;
    let fields = match op {
        O::DeletePoints | O::ClearPayload => POINTS_SELECTOR_FIELDS,
        O::DeleteVectors => DELETE_VECTORS_FIELDS,
        O::SetPayload | O::OverwritePayload => SET_PAYLOAD_FIELDS,
        O::DeletePayload => DELETE_PAYLOAD_FIELDS,
        other => return Err(RequestError::WrongOperation { op: other.name() }),
    };
    check_fields(op, obj, fields)?;
    let points = obj.get("points").filter(|v| !v.is_null());
    let filter = obj.get("filter").filter(|v| !v.is_null());
    match (points, filter) {
        (Some(Value::Array(items)), None) => {
            let mut seen = HashSet::new();
            let ids = items
                .iter()
                .map(|i| distinct(&mut seen, Some(i)))
                .collect::<Result<_, _>>()?;
            Ok(Selector::Ids(ids))
        }
        (Some(_), None) => Err(invalid("points", "must be a list of ids")),
        (None, Some(f @ Value::Object(_))) => Ok(Selector::Filter(f.clone())),
        (None, Some(_)) => Err(invalid("filter", "must be a filter object")),
        (Some(_), Some(_)) => Err(RequestError::Unsupported {
            what: "a selector with both points and filter",
        }),
        (None, None) => Err(missing("points")),
    }
}

/// A by-id or by-filter write or delete rewritten to select by filter only: ids become
/// `{"must":[{"has_id":ids}, acl]}`, a filter `{"must":[user, acl]}`. Every other field
/// (`shard_key`, `payload`, `key`, `keys`, `vector`) is kept. For delete, delete_vectors,
/// delete/clear payload (DESIGN §3) and set/overwrite payload by filter.
pub fn selector_to_filter(op: Operation, body: Value, acl: &Value) -> Result<Value, RequestError> {
    let mut obj = into_object(body)?;
    let filter = match selector_of(op, &obj)? {
        Selector::Ids(ids) => {
            let ids: Vec<Value> = ids.iter().map(PointId::to_json).collect();
            json!({ "must": [{ "has_id": ids }, acl] })
        }
        Selector::Filter(user) => json!({ "must": [user, acl] }),
    };
    obj.remove("points");
    obj.insert("filter".into(), filter);
    Ok(Value::Object(obj))
}

/// [`selector_to_filter`] for the delete-class operations only: points/delete,
/// vectors/delete, payload/delete, payload/clear.
pub fn delete_selector_to_filter(
    op: Operation,
    body: Value,
    acl: &Value,
) -> Result<Value, RequestError> {
    use Operation as O;
    match op {
        O::DeletePoints | O::DeleteVectors | O::DeletePayload | O::ClearPayload => {
            selector_to_filter(op, body, acl)
        }
        other => Err(RequestError::WrongOperation { op: other.name() }),
    }
}

/// ANDs `acl` into upsert's or update_vectors' `update_filter` (`{"must":[user, acl]}`, or
/// `acl` alone): existing points outside it keep their state, new points are still inserted.
pub fn and_into_update_filter(
    op: Operation,
    body: Value,
    acl: &Value,
) -> Result<Value, RequestError> {
    if !matches!(op, Operation::UpsertPoints | Operation::UpdateVectors) {
        return Err(RequestError::WrongOperation { op: op.name() });
    }
    parse_point_writes(op, &body)?;
    let mut obj = into_object(body)?;
    and_filter(&mut obj, "update_filter", Some(acl))?;
    Ok(Value::Object(obj))
}

/// The payload Qdrant stores after `change`, for the WITH CHECK evaluation. `existing` is
/// the point's payload now (`None`: no such point, or an empty payload).
///
/// Qdrant (`Payload::merge`, `merge_by_key`, `remove` by JSON path): set_payload merges the
/// top level only (a written key replaces the whole old value, objects included); with
/// `key`, each path segment is descended, creating `{}` where missing and replacing any
/// non-object on the way, and the payload is merged into the object there (or replaces a
/// non-object there). delete_payload removes each path; clear leaves `{}`; upsert and
/// overwrite store the new payload whole.
pub fn payload_after(
    change: &PayloadChange,
    existing: Option<&Map<String, Value>>,
) -> Map<String, Value> {
    let mut payload = existing.cloned().unwrap_or_default();
    match change {
        PayloadChange::Replace(p) => return p.clone(),
        PayloadChange::Clear => return Map::new(),
        PayloadChange::Keep => {}
        PayloadChange::Merge {
            key: None,
            payload: written,
        } => {
            for (k, v) in written {
                payload.insert(k.clone(), v.clone());
            }
        }
        PayloadChange::Merge {
            key: Some(path),
            payload: written,
        } => merge_at(&mut payload, path, written),
        PayloadChange::DeleteKeys(paths) => {
            for path in paths {
                remove_path(&mut payload, path);
            }
        }
    }
    payload
}

pub(super) fn merge_at(root: &mut Map<String, Value>, path: &str, written: &Map<String, Value>) {
    let mut segments = path.split('.').peekable();
    let mut current = root;
    while let Some(segment) = segments.next() {
        let slot = current
            .entry(segment.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        let Value::Object(inner) = slot else {
            return;
        };
        if segments.peek().is_none() {
            for (k, v) in written {
                inner.insert(k.clone(), v.clone());
            }
            return;
        }
        current = inner;
    }
}

pub(super) fn remove_path(root: &mut Map<String, Value>, path: &str) {
    let segments: Vec<&str> = path.split('.').collect();
    let Some((last, parents)) = segments.split_last() else {
        return;
    };
    let mut current = root;
    for segment in parents {
        match current.get_mut(*segment) {
            Some(Value::Object(inner)) => current = inner,
            _ => return,
        }
    }
    current.remove(*last);
}
