//! Qdrant answers vecgate writes itself (empty results, a point that must look missing, the
//! success envelope) and the parts of Qdrant bodies only the seam needs: the size of the
//! filters a body carries, stamping payloads, and a by-filter write turned into a by-ids one.

use super::point_id::PointId;
use super::request::{self, RequestError};
use super::routes::Operation;
use crate::backends::seam::Answer;
use http::StatusCode;
use serde_json::{json, Value as Json};

/// Qdrant's success envelope around `result`.
pub fn ok(result: Json) -> Answer {
    Answer::json(StatusCode::OK, &json!({"result": result, "status": "ok", "time": 0.0}))
}

/// Qdrant's error envelope.
pub fn error_body(message: &str) -> Json {
    json!({"status": {"error": message}, "time": 0.0})
}

/// What Qdrant answers for a point id used as a query input that it does not have.
pub fn point_not_found(id: &PointId) -> Answer {
    Answer::json(StatusCode::NOT_FOUND, &error_body(&format!("Not found: No point with id {id} found")))
}

/// What Qdrant answers for `GET points/{id}` of a point it does not have.
pub fn point_does_not_exist(id: Option<&PointId>) -> Answer {
    let id = id.map_or_else(String::new, ToString::to_string);
    Answer::json(StatusCode::NOT_FOUND, &error_body(&format!("Not found: Point with id {id} does not exists!")))
}

/// Reads whose answer lists points (the others return counts, facets or matrices).
pub fn returns_points(op: Operation) -> bool {
    !matches!(op, Operation::CountPoints | Operation::Facet | Operation::SearchMatrixPairs | Operation::SearchMatrixOffsets)
}

/// What Qdrant answers when nothing matches, for a read answered without asking it.
pub fn empty_read_result(op: Operation, request: &Json) -> Json {
    use Operation as O;
    let searches = request.get("searches").and_then(Json::as_array).map_or(0, Vec::len);
    match op {
        O::QueryPoints => json!({"points": []}),
        O::ScrollPoints => json!({"points": [], "next_page_offset": null}),
        O::QueryBatchPoints => json!(vec![json!({"points": []}); searches]),
        O::QueryPointsGroups | O::SearchPointGroups | O::RecommendPointGroups => json!({"groups": []}),
        O::SearchBatchPoints | O::RecommendBatchPoints | O::DiscoverBatchPoints => {
            json!(vec![json!([]); searches])
        }
        O::CountPoints => json!({"count": 0}),
        O::Facet => json!({"hits": []}),
        O::SearchMatrixPairs => json!({"pairs": []}),
        O::SearchMatrixOffsets => json!({"offsets_row": [], "offsets_col": [], "scores": [], "ids": []}),
        _ => json!([]),
    }
}

/// Leaf conditions in a request's `filter` and `update_filter`, in every prefetch, every
/// batch entry and every operation of points/batch.
pub fn filter_terms(body: &Json) -> usize {
    let Some(obj) = body.as_object() else { return 0 };
    let own: usize = ["filter", "update_filter"].iter().filter_map(|k| obj.get(*k)).map(condition_leaves).sum();
    let inner: usize = ["prefetch", "searches"]
        .iter()
        .filter_map(|k| obj.get(*k))
        .map(|v| match v {
            Json::Array(items) => items.iter().map(filter_terms).sum(),
            other => filter_terms(other),
        })
        .sum();
    // points/batch: `{"operations": [{"upsert": {…}}, …]}`.
    let operations: usize = obj
        .get("operations")
        .and_then(Json::as_array)
        .map_or(0, |ops| ops.iter().filter_map(Json::as_object).flat_map(|op| op.values()).map(filter_terms).sum());
    own + inner + operations
}

/// Leaf conditions of a Qdrant filter (or condition, or list of them); a `nested` condition
/// counts the conditions of its filter.
pub fn condition_leaves(value: &Json) -> usize {
    match value {
        Json::Array(items) => items.iter().map(condition_leaves).sum(),
        Json::Object(map) => {
            let clauses = ["must", "should", "must_not"].iter().filter_map(|k| map.get(*k));
            let min_should = map.get("min_should").and_then(|m| m.get("conditions"));
            let nested = map.get("nested").and_then(|n| n.get("filter"));
            let is_filter = map.contains_key("nested")
                || ["must", "should", "must_not", "min_should"].iter().any(|k| map.contains_key(*k));
            if is_filter {
                clauses.chain(min_should).chain(nested).map(condition_leaves).sum()
            } else {
                1
            }
        }
        _ => 0,
    }
}

/// A by-filter payload write rewritten to select the given ids.
pub fn by_ids(mut request: Json, ids: &[PointId]) -> Result<Json, RequestError> {
    let obj = request.as_object_mut().ok_or(RequestError::NotAnObject)?;
    obj.remove("filter");
    obj.insert("points".into(), Json::Array(ids.iter().map(PointId::to_json).collect()));
    Ok(request)
}

/// Sets the stamped attributes on every payload an upsert or overwrite stores (inside
/// points/batch too). Merges and deletions keep what is stored; the checks see the result.
pub fn stamp_write(op: Operation, request: &mut Json, stamps: &[(String, Json)], prefix: &str) -> Result<(), RequestError> {
    let invalid = |field: &str, reason: &'static str| RequestError::InvalidField { field: field.to_string(), reason };
    let stamp_payload = |payload: &mut Json| -> Result<(), RequestError> {
        if payload.is_null() {
            *payload = json!({});
        }
        let mut object = payload.as_object_mut().ok_or_else(|| invalid("payload", "must be an object"))?;
        for segment in prefix.split('.').filter(|s| !s.is_empty()) {
            let entry = object.entry(segment.to_string()).or_insert_with(|| json!({}));
            if entry.is_null() {
                *entry = json!({});
            }
            object = entry.as_object_mut().ok_or_else(|| invalid(segment, "must be an object"))?;
        }
        for (name, value) in stamps {
            object.insert(name.clone(), value.clone());
        }
        Ok(())
    };
    match op {
        Operation::UpsertPoints => {
            if let Some(Json::Array(points)) = request.get_mut("points") {
                for point in points {
                    let payload = point
                        .as_object_mut()
                        .ok_or_else(|| invalid("points", "a point must be an object"))?
                        .entry("payload")
                        .or_insert(Json::Null);
                    stamp_payload(payload)?;
                }
            } else if let Some(batch) = request.get_mut("batch").and_then(Json::as_object_mut) {
                let count = batch.get("ids").and_then(Json::as_array).map_or(0, Vec::len);
                let payloads = batch.entry("payloads").or_insert_with(|| json!(vec![Json::Null; count]));
                let list = payloads.as_array_mut().ok_or_else(|| invalid("batch.payloads", "must be a list"))?;
                for payload in list {
                    stamp_payload(payload)?;
                }
            }
            Ok(())
        }
        Operation::OverwritePayload => match request.get_mut("payload") {
            Some(payload) => stamp_payload(payload),
            None => Ok(()),
        },
        Operation::BatchUpdate => {
            let mut parts = request::split_batch(request)?;
            for (part_op, part) in &mut parts {
                stamp_write(*part_op, part, stamps, prefix)?;
            }
            *request = request::join_batch(parts)?;
            Ok(())
        }
        _ => Ok(()),
    }
}
