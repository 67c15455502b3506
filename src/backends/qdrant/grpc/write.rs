//! Writes and deletes on the gRPC face, described for the one write rule exactly as the REST
//! face describes them ([`crate::backends::qdrant::request`]): the same payload changes, the
//! same kinds (`update_mode`), the same refusals (an id twice in one operation, by-filter or
//! delete operations inside a batch, overwrite with a key, paths that are not plain keys); and
//! narrowed, guarded, stamped and turned into filters the same way (see
//! [`crate::backends::qdrant`]'s `narrow`): measured on Qdrant 1.18.3, its gRPC methods answer
//! a write naming a missing point as REST does (NOT_FOUND "Not found: No point with id N
//! found" with `wait`, acknowledged without), and refuse an empty upsert alike.

use super::error::GrpcRequestError;
use super::filter::{and, and_into, from_json, leaves_of};
use super::methods::GrpcRequest;
use super::payload::{stamp as stamp_payload, to_json, ProtoPayload};
use super::proto::qdrant as q;
use super::read::{point_id, to_point_id};
use crate::backends::qdrant::point_id::PointId;
use crate::backends::qdrant::request::{check_plain_path, PayloadChange, RequestError};
use crate::backends::seam::{RecordWrite, Selection, WriteKind, WriteSet};
use q::points_selector::PointsSelectorOneOf;
use q::points_update_operation::Operation as BatchOp;
use serde_json::Value as Json;
use std::collections::{BTreeSet, HashSet};

type Result<T> = std::result::Result<T, GrpcRequestError>;

fn wrong(request: &GrpcRequest) -> GrpcRequestError {
    RequestError::WrongOperation { op: request.op().name() }.into()
}

fn missing(field: &str) -> GrpcRequestError {
    RequestError::MissingField { field: field.to_string() }.into()
}

fn refused(what: &'static str) -> GrpcRequestError {
    RequestError::Refused { what }.into()
}

/// What a points selector selects.
enum Selected {
    Ids(Vec<PointId>),
    Filter,
}

fn distinct(ids: impl IntoIterator<Item = PointId>) -> Result<Vec<PointId>> {
    let mut seen = HashSet::new();
    ids.into_iter()
        .map(|id| if seen.insert(id.clone()) { Ok(id) } else { Err(RequestError::DuplicateId { id: id.to_string() }.into()) })
        .collect()
}

fn selected(selector: &Option<q::PointsSelector>, field: &str) -> Result<Selected> {
    match selector.as_ref().and_then(|s| s.points_selector_one_of.as_ref()) {
        None => Err(missing(field)),
        Some(PointsSelectorOneOf::Points(list)) => {
            Ok(Selected::Ids(distinct(list.ids.iter().map(point_id).collect::<Result<Vec<_>>>()?)?))
        }
        Some(PointsSelectorOneOf::Filter(_)) => Ok(Selected::Filter),
    }
}

fn upsert_kind(update_mode: Option<i32>) -> Result<WriteKind> {
    match update_mode.map(q::UpdateMode::try_from) {
        None | Some(Ok(q::UpdateMode::Upsert)) => Ok(WriteKind::Upsert),
        Some(Ok(q::UpdateMode::InsertOnly)) => Ok(WriteKind::Insert),
        Some(Ok(q::UpdateMode::UpdateOnly)) => Ok(WriteKind::Change),
        Some(Err(_)) => Err(RequestError::InvalidField { field: "update_mode".into(), reason: "must be Upsert, InsertOnly or UpdateOnly" }.into()),
    }
}

type Writes = Vec<RecordWrite<PointId, PayloadChange>>;

fn upserts(points: &[q::PointStruct], update_mode: Option<i32>) -> Result<Writes> {
    let kind = upsert_kind(update_mode)?;
    let ids = distinct(points.iter().map(|p| p.id.as_ref().ok_or_else(|| missing("id")).and_then(point_id)).collect::<Result<Vec<_>>>()?)?;
    ids.into_iter()
        .zip(points)
        .map(|(id, p)| Ok(RecordWrite { id, change: PayloadChange::Replace(to_json(&p.payload)?), kind }))
        .collect()
}

fn vector_updates(points: &[q::PointVectors]) -> Result<Writes> {
    let ids = distinct(points.iter().map(|p| p.id.as_ref().ok_or_else(|| missing("id")).and_then(point_id)).collect::<Result<Vec<_>>>()?)?;
    Ok(ids.into_iter().map(|id| RecordWrite { id, change: PayloadChange::Keep, kind: WriteKind::Change }).collect())
}

/// A by-selector change: its records, or `None` when it selects by filter.
fn by_selector(selector: &Option<q::PointsSelector>, field: &str, change: PayloadChange) -> Result<Option<Writes>> {
    Ok(match selected(selector, field)? {
        Selected::Filter => None,
        Selected::Ids(ids) => Some(ids.into_iter().map(|id| RecordWrite { id, change: change.clone(), kind: WriteKind::Change }).collect()),
    })
}

fn set_payload_change(payload: &ProtoPayload, key: &Option<String>, overwrite: bool) -> Result<PayloadChange> {
    if let Some(key) = key {
        check_plain_path(key)?;
    }
    let payload = to_json(payload)?;
    match (overwrite, key) {
        (false, key) => Ok(PayloadChange::Merge { key: key.clone(), payload }),
        (true, None) => Ok(PayloadChange::Replace(payload)),
        (true, Some(_)) => Err(RequestError::Unsupported { what: "overwrite_payload with a key" }.into()),
    }
}

fn delete_keys(keys: &[String]) -> Result<PayloadChange> {
    keys.iter().try_for_each(|k| check_plain_path(k))?;
    Ok(PayloadChange::DeleteKeys(keys.to_vec()))
}

/// One operation of a batch, described; by-filter and delete operations are refused there.
fn batch_operation(operation: &q::PointsUpdateOperation) -> Result<Writes> {
    let by_ids = |writes: Option<Writes>| {
        writes.ok_or_else(|| refused("by-filter operations inside UpdateBatch are not supported; send them on their own"))
    };
    match &operation.operation {
        Some(BatchOp::Upsert(list)) => upserts(&list.points, list.update_mode),
        Some(BatchOp::SetPayload(s)) => by_ids(by_selector(&s.points_selector, "points_selector", set_payload_change(&s.payload, &s.key, false)?)?),
        Some(BatchOp::OverwritePayload(s)) => by_ids(by_selector(&s.points_selector, "points_selector", set_payload_change(&s.payload, &s.key, true)?)?),
        Some(BatchOp::DeletePayload(d)) => by_ids(by_selector(&d.points_selector, "points_selector", delete_keys(&d.keys)?)?),
        Some(BatchOp::UpdateVectors(u)) => vector_updates(&u.points),
        Some(BatchOp::DeleteVectors(d)) => by_ids(by_selector(&d.points_selector, "points_selector", PayloadChange::Keep)?),
        Some(BatchOp::ClearPayload(c)) => by_ids(by_selector(&c.points, "points", PayloadChange::Clear)?),
        Some(BatchOp::DeletePoints(_)) => Err(refused("point deletes inside UpdateBatch are not supported; use Delete")),
        Some(BatchOp::DeleteDeprecated(_) | BatchOp::ClearPayloadDeprecated(_)) => {
            Err(RequestError::Unsupported { what: "the deprecated batch operations delete_deprecated and clear_payload_deprecated" }.into())
        }
        None => Err(missing("operation")),
    }
}

/// The records a write touches, in the order Qdrant applies them.
pub fn describe(request: &GrpcRequest) -> Result<WriteSet<PointId, PayloadChange>> {
    use GrpcRequest as R;
    let records = match request {
        R::PointsUpsert(m) => upserts(&m.points, m.update_mode)?,
        R::PointsUpdateVectors(m) => vector_updates(&m.points)?,
        R::PointsSetPayload(m) | R::PointsOverwritePayload(m) => {
            let overwrite = matches!(request, R::PointsOverwritePayload(_));
            match by_selector(&m.points_selector, "points_selector", set_payload_change(&m.payload, &m.key, overwrite)?)? {
                Some(records) => records,
                None => return Ok(WriteSet { selection: Selection::Filter, records: Vec::new() }),
            }
        }
        R::PointsDeletePayload(m) => match by_selector(&m.points_selector, "points_selector", delete_keys(&m.keys)?)? {
            Some(records) => records,
            None => return Ok(WriteSet { selection: Selection::Filter, records: Vec::new() }),
        },
        R::PointsClearPayload(m) => match by_selector(&m.points, "points", PayloadChange::Clear)? {
            Some(records) => records,
            None => return Ok(WriteSet { selection: Selection::Filter, records: Vec::new() }),
        },
        R::PointsDeleteVectors(m) => match by_selector(&m.points_selector, "points_selector", PayloadChange::Keep)? {
            Some(records) => records,
            None => return Ok(WriteSet { selection: Selection::Filter, records: Vec::new() }),
        },
        R::PointsUpdateBatch(m) => {
            let mut records = Vec::new();
            for operation in &m.operations {
                records.extend(batch_operation(operation)?);
            }
            records
        }
        other => return Err(wrong(other)),
    };
    let ids = records.iter().map(|r| r.id.clone()).collect();
    Ok(WriteSet { selection: Selection::Ids(ids), records })
}

/// The user's filter of a by-filter write.
fn write_filter(request: &GrpcRequest) -> Result<Option<q::Filter>> {
    use GrpcRequest as R;
    let selector = match request {
        R::PointsSetPayload(m) | R::PointsOverwritePayload(m) => &m.points_selector,
        R::PointsDeletePayload(m) => &m.points_selector,
        R::PointsClearPayload(m) => &m.points,
        R::PointsDeleteVectors(m) => &m.points_selector,
        other => return Err(wrong(other)),
    };
    match selector.as_ref().and_then(|s| s.points_selector_one_of.as_ref()) {
        Some(PointsSelectorOneOf::Filter(f)) => Ok(Some(f.clone())),
        _ => Err(wrong(request)),
    }
}

/// The scroll listing the ids of a by-filter write's points within `acl` (at most `limit`).
pub fn ids_matching(request: &GrpcRequest, collection: &str, acl: Option<&q::Filter>, limit: usize) -> Result<q::ScrollPoints> {
    let mut filter = write_filter(request)?;
    and_into(&mut filter, acl);
    Ok(q::ScrollPoints {
        collection_name: collection.to_string(),
        filter,
        limit: Some(u32::try_from(limit).unwrap_or(u32::MAX)),
        with_payload: Some(q::WithPayloadSelector { selector_options: Some(q::with_payload_selector::SelectorOptions::Enable(false)) }),
        with_vectors: Some(q::WithVectorsSelector { selector_options: Some(q::with_vectors_selector::SelectorOptions::Enable(false)) }),
        ..Default::default()
    })
}

/// The request reading these points as they are now, unfiltered, with their payloads.
pub fn fetch(collection: &str, ids: &[PointId]) -> q::GetPoints {
    q::GetPoints {
        collection_name: collection.to_string(),
        ids: ids.iter().map(to_point_id).collect(),
        with_payload: Some(q::WithPayloadSelector { selector_options: Some(q::with_payload_selector::SelectorOptions::Enable(true)) }),
        with_vectors: Some(q::WithVectorsSelector { selector_options: Some(q::with_vectors_selector::SelectorOptions::Enable(false)) }),
        ..Default::default()
    }
}

fn ids_selector(ids: &[PointId]) -> Option<q::PointsSelector> {
    Some(q::PointsSelector {
        points_selector_one_of: Some(PointsSelectorOneOf::Points(q::PointsIdsList { ids: ids.iter().map(to_point_id).collect() })),
    })
}

/// A by-filter write rewritten to select these ids.
pub fn select_ids(mut request: GrpcRequest, ids: &[PointId]) -> Result<GrpcRequest> {
    use GrpcRequest as R;
    match &mut request {
        R::PointsSetPayload(m) | R::PointsOverwritePayload(m) => m.points_selector = ids_selector(ids),
        R::PointsDeletePayload(m) => m.points_selector = ids_selector(ids),
        R::PointsClearPayload(m) => m.points = ids_selector(ids),
        R::PointsDeleteVectors(m) => m.points_selector = ids_selector(ids),
        other => return Err(wrong(other)),
    }
    Ok(request)
}

/// Sets the stamped attributes on every payload the write stores whole (upserts and
/// overwrites, inside a batch too).
pub fn stamp(request: &mut GrpcRequest, stamps: &[(String, Json)], prefix: &str) {
    use GrpcRequest as R;
    match request {
        R::PointsUpsert(m) => m.points.iter_mut().for_each(|p| stamp_payload(&mut p.payload, prefix, stamps)),
        R::PointsOverwritePayload(m) => stamp_payload(&mut m.payload, prefix, stamps),
        R::PointsUpdateBatch(m) => {
            for operation in &mut m.operations {
                match &mut operation.operation {
                    Some(BatchOp::Upsert(list)) => list.points.iter_mut().for_each(|p| stamp_payload(&mut p.payload, prefix, stamps)),
                    Some(BatchOp::OverwritePayload(o)) => stamp_payload(&mut o.payload, prefix, stamps),
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// Upserts and vector updates: the update filter ANDed into `update_filter`, so that points
/// outside it keep their state even if they changed since they were read.
pub fn guard(request: &mut GrpcRequest, update: &Json) -> Result<()> {
    use GrpcRequest as R;
    match request {
        R::PointsUpsert(m) => and_into(&mut m.update_filter, Some(&from_json(update)?)),
        R::PointsUpdateVectors(m) => and_into(&mut m.update_filter, Some(&from_json(update)?)),
        _ => {}
    }
    Ok(())
}

/// A delete within `acl`: by ids → `has_id` AND `acl`; by filter → the filter AND `acl`.
pub fn delete_within(request: &mut GrpcRequest, acl: &q::Filter) -> Result<()> {
    let GrpcRequest::PointsDelete(m) = request else {
        return Err(wrong(request));
    };
    let user = match selected(&m.points, "points")? {
        Selected::Ids(ids) => q::Filter {
            must: vec![q::Condition {
                condition_one_of: Some(q::condition::ConditionOneOf::HasId(q::HasIdCondition { has_id: ids.iter().map(to_point_id).collect() })),
            }],
            ..Default::default()
        },
        Selected::Filter => match m.points.as_ref().and_then(|s| s.points_selector_one_of.clone()) {
            Some(PointsSelectorOneOf::Filter(f)) => f,
            _ => return Err(missing("points")),
        },
    };
    m.points = Some(q::PointsSelector { points_selector_one_of: Some(PointsSelectorOneOf::Filter(and(Some(user), acl))) });
    Ok(())
}

/// Checks a delete's selector.
pub fn check_delete(request: &GrpcRequest) -> Result<()> {
    match request {
        GrpcRequest::PointsDelete(m) => selected(&m.points, "points").map(|_| ()),
        other => Err(wrong(other)),
    }
}

/// Leaf conditions in the filters of a write or delete (selectors and update filters).
pub fn filter_terms(request: &GrpcRequest) -> usize {
    use GrpcRequest as R;
    fn selector(s: &Option<q::PointsSelector>) -> usize {
        match s.as_ref().and_then(|s| s.points_selector_one_of.as_ref()) {
            Some(PointsSelectorOneOf::Filter(f)) => super::filter::leaves(f),
            _ => 0,
        }
    }
    match request {
        R::PointsUpsert(m) => leaves_of(&m.update_filter),
        R::PointsUpdateVectors(m) => leaves_of(&m.update_filter),
        R::PointsDelete(m) => selector(&m.points),
        R::PointsSetPayload(m) | R::PointsOverwritePayload(m) => selector(&m.points_selector),
        R::PointsDeletePayload(m) => selector(&m.points_selector),
        R::PointsClearPayload(m) => selector(&m.points),
        R::PointsDeleteVectors(m) => selector(&m.points_selector),
        R::PointsUpdateBatch(m) => m
            .operations
            .iter()
            .map(|o| match &o.operation {
                Some(BatchOp::Upsert(l)) => leaves_of(&l.update_filter),
                Some(BatchOp::UpdateVectors(u)) => leaves_of(&u.update_filter),
                Some(BatchOp::SetPayload(s)) => selector(&s.points_selector),
                Some(BatchOp::OverwritePayload(s)) => selector(&s.points_selector),
                Some(BatchOp::DeletePayload(d)) => selector(&d.points_selector),
                Some(BatchOp::DeleteVectors(d)) => selector(&d.points_selector),
                Some(BatchOp::ClearPayload(c)) => selector(&c.points),
                Some(BatchOp::DeletePoints(d)) => selector(&d.points),
                _ => 0,
            })
            .sum(),
        _ => 0,
    }
}

/// How many of a write's records one batch operation holds (see [`describe`]).
fn operation_records(operation: &q::PointsUpdateOperation) -> usize {
    batch_operation(operation).map_or(0, |w| w.len())
}

/// Removes the points in `drop` from one write operation's selection. True when nothing is
/// left.
fn without_points(operation: &mut BatchOp, drop: &BTreeSet<PointId>) -> bool {
    let kept = |id: &Option<q::PointId>| !id.as_ref().and_then(|id| point_id(id).ok()).is_some_and(|id| drop.contains(&id));
    let from_selector = |selector: &mut Option<q::PointsSelector>| {
        if let Some(q::PointsSelector { points_selector_one_of: Some(PointsSelectorOneOf::Points(list)) }) = selector {
            list.ids.retain(|id| kept(&Some(id.clone())));
            list.ids.is_empty()
        } else {
            false
        }
    };
    match operation {
        BatchOp::Upsert(list) => {
            list.points.retain(|p| kept(&p.id));
            list.points.is_empty()
        }
        BatchOp::UpdateVectors(u) => {
            u.points.retain(|p| kept(&p.id));
            u.points.is_empty()
        }
        BatchOp::SetPayload(s) => from_selector(&mut s.points_selector),
        BatchOp::OverwritePayload(s) => from_selector(&mut s.points_selector),
        BatchOp::DeletePayload(d) => from_selector(&mut d.points_selector),
        BatchOp::DeleteVectors(d) => from_selector(&mut d.points_selector),
        BatchOp::ClearPayload(c) => from_selector(&mut c.points),
        BatchOp::DeletePoints(_) | BatchOp::DeleteDeprecated(_) | BatchOp::ClearPayloadDeprecated(_) => false,
    }
}

/// A payload write that matches no point: what an operation left selecting nothing becomes
/// (Qdrant refuses an empty upsert).
fn selects_no_point() -> BatchOp {
    BatchOp::SetPayload(q::points_update_operation::SetPayload {
        payload: ProtoPayload::new(),
        points_selector: Some(q::PointsSelector {
            points_selector_one_of: Some(PointsSelectorOneOf::Filter(q::Filter {
                must: vec![q::Condition { condition_one_of: Some(q::condition::ConditionOneOf::HasId(q::HasIdCondition::default())) }],
                ..Default::default()
            })),
        }),
        ..Default::default()
    })
}

/// A single write as the operation of a batch, and back (so that one narrowing serves both).
fn as_operation(request: &GrpcRequest) -> Result<BatchOp> {
    use q::points_update_operation as o;
    use GrpcRequest as R;
    Ok(match request.clone() {
        R::PointsUpsert(m) => BatchOp::Upsert(o::PointStructList {
            points: m.points,
            shard_key_selector: m.shard_key_selector,
            update_filter: m.update_filter,
            update_mode: m.update_mode,
        }),
        R::PointsUpdateVectors(m) => {
            BatchOp::UpdateVectors(o::UpdateVectors { points: m.points, shard_key_selector: m.shard_key_selector, update_filter: m.update_filter })
        }
        R::PointsSetPayload(m) => BatchOp::SetPayload(o::SetPayload {
            payload: m.payload,
            points_selector: m.points_selector,
            shard_key_selector: m.shard_key_selector,
            key: m.key,
        }),
        R::PointsOverwritePayload(m) => BatchOp::OverwritePayload(o::OverwritePayload {
            payload: m.payload,
            points_selector: m.points_selector,
            shard_key_selector: m.shard_key_selector,
            key: m.key,
        }),
        R::PointsDeletePayload(m) => {
            BatchOp::DeletePayload(o::DeletePayload { keys: m.keys, points_selector: m.points_selector, shard_key_selector: m.shard_key_selector })
        }
        R::PointsDeleteVectors(m) => BatchOp::DeleteVectors(o::DeleteVectors {
            points_selector: m.points_selector,
            vectors: m.vectors,
            shard_key_selector: m.shard_key_selector,
        }),
        R::PointsClearPayload(m) => BatchOp::ClearPayload(o::ClearPayload { points: m.points, shard_key_selector: m.shard_key_selector }),
        other => return Err(wrong(&other)),
    })
}

/// Puts a narrowed operation back into the single write it came from.
fn with_operation(request: &mut GrpcRequest, operation: BatchOp) -> Result<()> {
    use GrpcRequest as R;
    match (request, operation) {
        (R::PointsUpsert(m), BatchOp::Upsert(l)) => m.points = l.points,
        (R::PointsUpdateVectors(m), BatchOp::UpdateVectors(u)) => m.points = u.points,
        (R::PointsSetPayload(m), BatchOp::SetPayload(s)) => m.points_selector = s.points_selector,
        (R::PointsOverwritePayload(m), BatchOp::OverwritePayload(s)) => m.points_selector = s.points_selector,
        (R::PointsDeletePayload(m), BatchOp::DeletePayload(d)) => m.points_selector = d.points_selector,
        (R::PointsDeleteVectors(m), BatchOp::DeleteVectors(d)) => m.points_selector = d.points_selector,
        (R::PointsClearPayload(m), BatchOp::ClearPayload(c)) => m.points = c.points,
        (request, _) => return Err(wrong(request)),
    }
    Ok(())
}

/// `wait`, `ordering` and the collection of a write, for the no-op that replaces it.
fn write_settings(request: &GrpcRequest) -> (String, Option<bool>, Option<q::WriteOrdering>) {
    use GrpcRequest as R;
    match request {
        R::PointsUpsert(m) => (m.collection_name.clone(), m.wait, m.ordering),
        R::PointsUpdateVectors(m) => (m.collection_name.clone(), m.wait, m.ordering),
        R::PointsSetPayload(m) | R::PointsOverwritePayload(m) => (m.collection_name.clone(), m.wait, m.ordering),
        R::PointsDeletePayload(m) => (m.collection_name.clone(), m.wait, m.ordering),
        R::PointsClearPayload(m) => (m.collection_name.clone(), m.wait, m.ordering),
        R::PointsDeleteVectors(m) => (m.collection_name.clone(), m.wait, m.ordering),
        R::PointsUpdateBatch(m) => (m.collection_name.clone(), m.wait, m.ordering),
        _ => (String::new(), None, None),
    }
}

/// A write after the write rule left out some of its records (see the module documentation
/// and the REST face's `narrow`).
pub enum NarrowedWrite {
    /// Send this (the request, or the no-op payload write that stands for it); where
    /// `missing` is given and Qdrant succeeds, answer "No point with id … found" instead.
    Send { request: Box<GrpcRequest>, missing: Option<PointId> },
    /// Nothing to send: answer "No point with id … found".
    Missing(PointId),
}

/// See [`NarrowedWrite`]. `left_out`: indices into `records` (the write's records in
/// [`describe`]'s order); `from_filter`: a by-filter write narrowed to the ids the caller may
/// update.
pub fn narrow(request: GrpcRequest, records: &[RecordWrite<PointId, PayloadChange>], left_out: &[usize], from_filter: bool) -> Result<NarrowedWrite> {
    let batch = matches!(request, GrpcRequest::PointsUpdateBatch(_));
    let mut operations: Vec<(BatchOp, usize, bool)> = match &request {
        GrpcRequest::PointsUpdateBatch(m) => m
            .operations
            .iter()
            .map(|o| o.operation.clone().map(|op| (op, operation_records(o), false)).ok_or_else(|| missing("operation")))
            .collect::<Result<_>>()?,
        single => vec![(as_operation(single)?, records.len(), false)],
    };
    if from_filter {
        for operation in &mut operations {
            operation.2 |= records.is_empty();
        }
    }
    let mut first_unseen: Option<(usize, PointId)> = None;
    let mut start = 0;
    for (index, (operation, count, selects_nothing)) in operations.iter_mut().enumerate() {
        let range = start..start + *count;
        start = range.end;
        let left: BTreeSet<PointId> =
            left_out.iter().filter(|i| range.contains(*i)).filter_map(|i| records.get(*i).map(|r| r.id.clone())).collect();
        if left.is_empty() {
            continue;
        }
        if !matches!(operation, BatchOp::Upsert(_)) && first_unseen.is_none() {
            if let Some(first) = left_out.iter().find(|i| range.contains(*i)).and_then(|i| records.get(*i)) {
                first_unseen = Some((index, first.id.clone()));
            }
        }
        if without_points(operation, &left) {
            *selects_nothing = true;
        }
    }
    let (collection, wait, ordering) = write_settings(&request);
    let missing = match (first_unseen, wait == Some(true)) {
        (Some((index, id)), true) => {
            // Qdrant writes the points before the missing one, then stops.
            operations.truncate(index + 1);
            operations.retain(|o| !o.2);
            if operations.is_empty() {
                return Ok(NarrowedWrite::Missing(id));
            }
            Some(id)
        }
        _ => None,
    };
    let request = if batch {
        let GrpcRequest::PointsUpdateBatch(mut m) = request else {
            return Err(missing_operation());
        };
        m.operations = operations
            .into_iter()
            .map(|(op, _, nothing)| q::PointsUpdateOperation { operation: Some(if nothing { selects_no_point() } else { op }) })
            .collect();
        GrpcRequest::PointsUpdateBatch(m)
    } else {
        match operations.into_iter().next() {
            // The write selects nothing: the no-op payload write, with the client's `wait`
            // and ordering, so that Qdrant answers as it would have.
            Some((_, _, true)) => {
                let BatchOp::SetPayload(noop) = selects_no_point() else {
                    return Err(missing_operation());
                };
                GrpcRequest::PointsSetPayload(q::SetPayloadPoints {
                    collection_name: collection,
                    wait,
                    payload: noop.payload,
                    points_selector: noop.points_selector,
                    ordering,
                    ..Default::default()
                })
            }
            Some((op, _, false)) => {
                let mut request = request;
                with_operation(&mut request, op)?;
                request
            }
            None => return Err(missing_operation()),
        }
    };
    Ok(NarrowedWrite::Send { request: Box::new(request), missing })
}

fn missing_operation() -> GrpcRequestError {
    missing("operation")
}
