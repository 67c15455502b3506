//! Post-filtering Qdrant responses: a point the caller may not see is removed wherever the
//! response lists points, and the payload forced by [`super::request::force_payload`] is
//! trimmed back to what the caller asked for. A response whose shape is not understood is an
//! error: the proxy then fails closed.
//!
//! Where points sit in `{"result": …, "status": "ok", "time": …}`: `result.points` (query,
//! scroll), `result[i].points` (query/batch), `result.groups[].hits` and `.lookup` (groups),
//! `result` as a list (legacy search/recommend/discover, retrieve), `result[i]` as lists
//! (legacy batches), `result` itself (`GET points/{id}`).

use super::request::{PayloadTrim, PointId, Trim};
use super::routes::Operation;
use serde_json::{Map, Value};

/// Why a response cannot be filtered.
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    #[error("the response has an unexpected shape at {field:?}: {reason}")]
    Shape { field: String, reason: &'static str },
    #[error("the operation {op} returns no points to filter")]
    WrongOperation { op: &'static str },
    #[error("the answer is not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
}

/// Decides whether a point stays: its id and payload (`None`: absent or null).
pub type Keep<'a> = dyn FnMut(&PointId, Option<&Map<String, Value>>) -> bool + 'a;

/// What filtering did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Filtered {
    /// Points removed (for groups: hits removed; a group left empty is removed too).
    pub stripped: usize,
    /// `GET points/{id}`: the point was refused. `result` is now null; answer 404 as Qdrant
    /// does for a point that does not exist.
    pub not_found: bool,
    /// The answer differs from what Qdrant sent: points or groups removed, or payloads trimmed.
    pub changed: bool,
}

/// Removes the points `keep` rejects from the response of `op`, then applies `trim` to the
/// payload of the points left (and of groups' lookups). Groups whose hits are all removed are
/// removed; groups' `lookup` records are not judged here (they belong to another
/// collection): see [`filter_lookups`].
pub fn filter_points(
    op: Operation,
    resp: &mut Value,
    keep: &mut Keep<'_>,
    trim: &Trim,
) -> Result<Filtered, ResponseError> {
    use Operation as O;
    let result = result_of(resp)?;
    let mut filtered = Filtered::default();
    match op {
        O::QueryPoints | O::ScrollPoints => {
            let points = field_mut(result, "points")?;
            filtered.stripped = filter_list(points, keep, trim.request(0))?;
        }
        O::QueryBatchPoints => {
            let batches = list_mut(result, "result")?;
            for (i, batch) in batches.iter_mut().enumerate() {
                let points = field_mut(batch, "points")?;
                filtered.stripped += filter_list(points, keep, trim.request(i))?;
            }
        }
        O::SearchPoints | O::RecommendPoints | O::DiscoverPoints | O::GetPoints => {
            filtered.stripped = filter_list(result, keep, trim.request(0))?;
        }
        O::SearchBatchPoints | O::RecommendBatchPoints | O::DiscoverBatchPoints => {
            let batches = list_mut(result, "result")?;
            for (i, batch) in batches.iter_mut().enumerate() {
                filtered.stripped += filter_list(batch, keep, trim.request(i))?;
            }
        }
        O::QueryPointsGroups | O::SearchPointGroups | O::RecommendPointGroups => {
            let groups = list_mut(field_mut(result, "groups")?, "groups")?;
            let mut kept_groups = Vec::with_capacity(groups.len());
            for mut group in groups.drain(..) {
                let g = group
                    .as_object_mut()
                    .ok_or_else(|| shape("groups", "expected objects"))?;
                let hits = g.get_mut("hits").ok_or_else(|| shape("hits", "missing"))?;
                filtered.stripped += filter_list(hits, keep, trim.request(0))?;
                let empty = hits.as_array().is_some_and(Vec::is_empty);
                if let Some(lookup) = g.get_mut("lookup").filter(|l| !l.is_null()) {
                    let lookup = lookup
                        .as_object_mut()
                        .ok_or_else(|| shape("lookup", "expected a point"))?;
                    apply_trim(lookup, &trim.lookup)?;
                }
                if empty {
                    filtered.changed = true;
                } else {
                    kept_groups.push(group);
                }
            }
            *groups = kept_groups;
        }
        O::GetPoint => {
            let point = result
                .as_object()
                .ok_or_else(|| shape("result", "expected a point"))?;
            let (id, payload) = point_parts(point)?;
            if keep(&id, payload) {
                if let Value::Object(point) = result {
                    apply_trim(point, trim.request(0))?;
                }
            } else {
                *result = Value::Null;
                filtered.not_found = true;
                filtered.stripped = 1;
            }
        }
        other => return Err(ResponseError::WrongOperation { op: other.name() }),
    }
    filtered.changed |= filtered.stripped > 0 || !trim.is_nothing();
    Ok(filtered)
}

/// Groups responses: removes each group's `lookup` record (a point of the `with_lookup`
/// collection) that `keep` rejects, as Qdrant omits a lookup it did not find. Returns how
/// many were removed.
pub fn filter_lookups(
    op: Operation,
    resp: &mut Value,
    keep: &mut Keep<'_>,
) -> Result<usize, ResponseError> {
    use Operation as O;
    if !matches!(
        op,
        O::QueryPointsGroups | O::SearchPointGroups | O::RecommendPointGroups
    ) {
        return Err(ResponseError::WrongOperation { op: op.name() });
    }
    let result = result_of(resp)?;
    let groups = list_mut(field_mut(result, "groups")?, "groups")?;
    let mut removed = 0;
    for group in groups.iter_mut() {
        let g = group
            .as_object_mut()
            .ok_or_else(|| shape("groups", "expected objects"))?;
        let allowed = match g.get("lookup") {
            None | Some(Value::Null) => continue,
            Some(Value::Object(point)) => {
                let (id, payload) = point_parts(point)?;
                keep(&id, payload)
            }
            Some(_) => return Err(shape("lookup", "expected a point")),
        };
        if !allowed {
            g.remove("lookup");
            removed += 1;
        }
    }
    Ok(removed)
}

fn result_of(resp: &mut Value) -> Result<&mut Value, ResponseError> {
    resp.as_object_mut()
        .ok_or_else(|| shape("", "expected an object"))?
        .get_mut("result")
        .ok_or_else(|| shape("result", "missing"))
}

fn field_mut<'a>(v: &'a mut Value, field: &str) -> Result<&'a mut Value, ResponseError> {
    v.as_object_mut()
        .ok_or_else(|| shape(field, "expected an object around it"))?
        .get_mut(field)
        .ok_or_else(|| shape(field, "missing"))
}

fn list_mut<'a>(v: &'a mut Value, field: &str) -> Result<&'a mut Vec<Value>, ResponseError> {
    v.as_array_mut()
        .ok_or_else(|| shape(field, "expected a list"))
}

/// Filters one list of points; returns how many were removed.
fn filter_list(
    points: &mut Value,
    keep: &mut Keep<'_>,
    trim: &PayloadTrim,
) -> Result<usize, ResponseError> {
    let items = list_mut(points, "points")?;
    let mut mask = Vec::with_capacity(items.len());
    for item in items.iter() {
        let point = item
            .as_object()
            .ok_or_else(|| shape("points", "expected objects"))?;
        let (id, payload) = point_parts(point)?;
        mask.push(keep(&id, payload));
    }
    let before = items.len();
    let mut rows = mask.iter();
    items.retain(|_| rows.next().copied().unwrap_or(false));
    for item in items.iter_mut() {
        if let Value::Object(point) = item {
            apply_trim(point, trim)?;
        }
    }
    Ok(before - items.len())
}

/// A point's id and payload (`None`: absent or null).
type PointParts<'a> = (PointId, Option<&'a Map<String, Value>>);

/// A point's id and payload.
fn point_parts(point: &Map<String, Value>) -> Result<PointParts<'_>, ResponseError> {
    let id = point
        .get("id")
        .and_then(PointId::from_json)
        .ok_or_else(|| shape("id", "expected a point id"))?;
    let payload = match point.get("payload") {
        None | Some(Value::Null) => None,
        Some(Value::Object(p)) => Some(p),
        Some(_) => return Err(shape("payload", "expected an object or null")),
    };
    Ok((id, payload))
}

fn apply_trim(point: &mut Map<String, Value>, trim: &PayloadTrim) -> Result<(), ResponseError> {
    match trim {
        PayloadTrim::AsReturned => {}
        PayloadTrim::Drop => {
            point.remove("payload");
        }
        PayloadTrim::Include(paths) => {
            if let Some(payload) = payload_mut(point)? {
                *payload = project(payload, paths);
            }
        }
        PayloadTrim::Exclude(paths) => {
            if let Some(payload) = payload_mut(point)? {
                for path in paths {
                    remove_path(payload, path);
                }
            }
        }
    }
    Ok(())
}

fn payload_mut(
    point: &mut Map<String, Value>,
) -> Result<Option<&mut Map<String, Value>>, ResponseError> {
    match point.get_mut("payload") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(p)) => Ok(Some(p)),
        Some(_) => Err(shape("payload", "expected an object or null")),
    }
}

/// The parts of `payload` at these dotted paths, at the same nesting.
fn project(payload: &Map<String, Value>, paths: &[String]) -> Map<String, Value> {
    let mut out = Map::new();
    for path in paths {
        let segments: Vec<&str> = path.split('.').collect();
        if let Some(value) = value_at(payload, &segments) {
            insert_at(&mut out, &segments, value.clone());
        }
    }
    out
}

fn value_at<'a>(payload: &'a Map<String, Value>, segments: &[&str]) -> Option<&'a Value> {
    let (first, rest) = segments.split_first()?;
    let value = payload.get(*first)?;
    if rest.is_empty() {
        return Some(value);
    }
    value_at(value.as_object()?, rest)
}

fn insert_at(out: &mut Map<String, Value>, segments: &[&str], value: Value) {
    let Some((first, rest)) = segments.split_first() else {
        return;
    };
    if rest.is_empty() {
        out.insert((*first).to_string(), value);
        return;
    }
    let slot = out
        .entry((*first).to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(inner) = slot {
        insert_at(inner, rest, value);
    }
}

fn remove_path(payload: &mut Map<String, Value>, path: &str) {
    let segments: Vec<&str> = path.split('.').collect();
    let Some((last, parents)) = segments.split_last() else {
        return;
    };
    let mut current = payload;
    for segment in parents {
        match current.get_mut(*segment) {
            Some(Value::Object(inner)) => current = inner,
            _ => return,
        }
    }
    current.remove(*last);
}

fn shape(field: &str, reason: &'static str) -> ResponseError {
    ResponseError::Shape {
        field: field.to_string(),
        reason,
    }
}
