//! A Qdrant write without the points the write rule left out, answered as Qdrant answers a
//! write of points it does not have, so that the answer does not depend on whether a point
//! the caller may not read exists.
//!
//! Measured on Qdrant 1.18.3: set, overwrite, delete and clear payload, update and delete
//! vectors, and points/batch naming a missing point answer, with `wait=true`, 404 "Not found:
//! No point with id N found", naming the first missing point in request order, after writing
//! the existing points of that operation (a batch stops after it); with `wait=false` they are
//! acknowledged. An upsert with `update_mode: update_only` ignores missing points. An empty
//! `points` list is refused (400 "Empty update request"), so an operation left selecting
//! nothing is sent as a payload write that matches no point: Qdrant then answers with its own
//! envelope and operation id.

use super::answers::point_not_found;
use super::point_id::PointId;
use super::request::{self, RequestError};
use super::routes::Operation;
use crate::backends::seam::{Body, Call, Located, Narrowed, Narrowing, Path, RecordWrite};
use http::Method;
use serde_json::{json, Value as Json};
use std::collections::BTreeSet;

/// One operation of a write (a points/batch has several): its kind, its body, and whether
/// it selects no point any more.
struct Part {
    op: Operation,
    body: Json,
    selects_nothing: bool,
    /// How many of the write's records it holds, in order.
    records: usize,
}

/// See the module documentation. `records` are the write's records in request order, as
/// `parse_point_writes` lists them for the whole body.
pub fn narrow<C>(
    op: Operation,
    located: &Located,
    method: &Method,
    body: Json,
    records: &[RecordWrite<PointId, C>],
    narrowing: Narrowing<'_>,
) -> Result<Narrowed, RequestError> {
    let mut operations = operations(op, body)?;
    if narrowing.from_filter {
        // A by-filter write narrowed to the points the caller may update: none is left.
        for operation in &mut operations {
            operation.selects_nothing |= records.is_empty();
        }
    }
    // The points left out of each operation, and the first left out of a payload or vector
    // change (update_only upserts ignore missing points silently).
    let mut first_unseen: Option<(usize, PointId)> = None;
    let mut start = 0;
    for (index, operation) in operations.iter_mut().enumerate() {
        let range = start..start + operation.records;
        start = range.end;
        let left: BTreeSet<PointId> = narrowing
            .left_out
            .iter()
            .filter(|i| range.contains(*i))
            .filter_map(|i| records.get(*i).map(|r| r.id.clone()))
            .collect();
        if left.is_empty() {
            continue;
        }
        if operation.op != Operation::UpsertPoints && first_unseen.is_none() {
            if let Some(first) = narrowing.left_out.iter().find(|i| range.contains(*i)).and_then(|i| records.get(*i)) {
                first_unseen = Some((index, first.id.clone()));
            }
        }
        if without_points(operation.op, &mut operation.body, &left)? {
            operation.selects_nothing = true;
        }
    }
    let waits = narrowing.query.is_some_and(|q| q.split('&').any(|pair| pair == "wait=true"));
    let instead = match (&first_unseen, waits) {
        (Some((index, id)), true) => {
            // Qdrant writes the points before the missing one, then stops: operations after
            // it do not run, and one that selects nothing is not sent at all.
            operations.truncate(index + 1);
            operations.retain(|o| !o.selects_nothing);
            if operations.is_empty() {
                return Ok(Narrowed::Answer(point_not_found(id)));
            }
            Some(point_not_found(id))
        }
        _ => None,
    };
    let mut bodies: Vec<(Operation, Json)> = operations
        .into_iter()
        .map(|o| if o.selects_nothing { (Operation::SetPayload, selects_no_point()) } else { (o.op, o.body) })
        .collect();
    let call = if op == Operation::BatchUpdate {
        Call::new(method.clone(), Path::AsSent, Body::Json(request::join_batch(bodies)?))
    } else {
        let (part_op, part) = bodies.pop().ok_or(RequestError::WrongOperation { op: op.name() })?;
        if part_op == op {
            Call::new(method.clone(), Path::AsSent, Body::Json(part))
        } else {
            // The operation selects nothing: the no-op payload write, with the client's query
            // (wait, ordering) so that Qdrant answers as it would have.
            let query = narrowing.query.map_or_else(String::new, |q| format!("?{q}"));
            Call::new(Method::POST, Path::To(format!("{}/points/payload{query}", located.base)), Body::Json(part))
        }
    };
    Ok(Narrowed::Send { call, instead })
}

/// The operations of a write (one, or each of points/batch), with how many records each holds.
fn operations(op: Operation, body: Json) -> Result<Vec<Part>, RequestError> {
    let parts = if op == Operation::BatchUpdate { request::split_batch(&body)? } else { vec![(op, body)] };
    parts
        .into_iter()
        .map(|(op, body)| {
            let records = if op == Operation::DeletePoints { 0 } else { request::parse_point_writes(op, &body)?.len() };
            Ok(Part { op, body, selects_nothing: false, records })
        })
        .collect()
}

/// A payload write that matches no point: what an operation left selecting nothing is sent
/// as (Qdrant refuses an empty `points` list with 400 "Empty update request").
fn selects_no_point() -> Json {
    json!({"payload": {}, "filter": {"must": [{"has_id": []}]}})
}

/// Removes the points in `drop` from a by-id write's selection (`points` ids or entries, or
/// the `batch` columns of an upsert). True when nothing is left.
fn without_points(op: Operation, body: &mut Json, drop: &BTreeSet<PointId>) -> Result<bool, RequestError> {
    let keep = |entry: &Json| {
        let id = if entry.is_object() { entry.get("id") } else { Some(entry) };
        !id.and_then(PointId::from_json).is_some_and(|id| drop.contains(&id))
    };
    let obj = body.as_object_mut().ok_or(RequestError::NotAnObject)?;
    if let Some(Json::Array(points)) = obj.get_mut("points") {
        points.retain(keep);
        return Ok(points.is_empty());
    }
    let Some(Json::Object(batch)) = obj.get_mut("batch") else {
        return Err(RequestError::WrongOperation { op: op.name() });
    };
    let mask: Vec<bool> = match batch.get("ids") {
        Some(Json::Array(ids)) => ids.iter().map(keep).collect(),
        _ => return Err(RequestError::InvalidField { field: "batch.ids".into(), reason: "must be a list" }),
    };
    let filter_column = |column: &mut Json| {
        if let Json::Array(items) = column {
            let mut index = 0;
            items.retain(|_| {
                let kept = mask.get(index).copied().unwrap_or(true);
                index += 1;
                kept
            });
        }
    };
    for (name, column) in batch.iter_mut() {
        match (name.as_str(), column) {
            ("vectors", Json::Object(named)) => named.values_mut().for_each(filter_column),
            (_, column) => filter_column(column),
        }
    }
    Ok(!mask.contains(&true))
}
