//! Qdrant (REST) behind the seam: [`Qdrant`] puts routes, request rewriting, answer filtering
//! and the error shape together for the pipeline. Nothing here decides; everything here knows
//! Qdrant's JSON.
//!
//! Qdrant names collections in the path, so no lookup is needed to choose a collection's
//! rule; point ids used as query inputs and `with_lookup` collections are read out of the body
//! for the pipeline to check.

use super::answers::{self, by_ids, empty_read_result, ok, point_does_not_exist, point_not_found, returns_points, stamp_write};
use super::attributes::NestedPayload;
use super::point_id::PointId;
use super::request::{self, PayloadChange, PointWrite, RequestError, Selector, Trim};
use super::response::{self, ResponseError};
use super::routes::{self, Operation, Route};
use crate::backends::json_body;
use crate::backends::seam::{
    Answer, Body, Call, CollectionName, CollectionRequest, Database, Filtered, FilteredBody, IdInput,
    Judge, Located, Narrowed, Narrowing, Records, Outgoing, Path, Protocol, ReadScope, RecordAttributes, RecordWrite, Refusal, Scope, Selection, WriteKind,
    WriteSet,
};
use crate::backends::{FieldMapping, Pushdown, RouteError, TranslateError};
use crate::plan::Expr;
use crate::plan::Value;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Map, Value as Json};
use std::collections::BTreeMap;

/// Qdrant's REST API.
#[derive(Debug, Clone, Copy, Default)]
pub struct Qdrant;

/// How to read the answer of a read that lists points.
#[derive(Debug, Clone)]
pub struct Then {
    pub(super) op: Operation,
    pub(super) trim: Trim,
    pub(super) prefix: String,
    /// `with_lookup` collections: their records are judged with their own plans.
    pub(super) lookups: Vec<String>,
    /// `GET points/{id}`: the id, for the answer that makes a refused point look missing.
    pub(super) point_id: Option<PointId>,
}

/// A point as Qdrant stores it, as far as the checks go: its payload.
pub type Payload = Map<String, Json>;

fn parse(answer: &[u8]) -> Result<Json, ResponseError> {
    Ok(serde_json::from_slice(answer)?)
}

/// Payload paths the hit check needs (`metadata` for LangChain's layout; none when the
/// attributes are the whole payload, which Qdrant returns by default with `with_payload`).
fn payload_keys(mapping: &FieldMapping) -> Vec<String> {
    let prefix = mapping.attr_prefix.trim_end_matches('.');
    if prefix.is_empty() {
        Vec::new()
    } else {
        vec![prefix.to_string()]
    }
}

/// What an upsert does to a point that exists and to one that does not (`update_mode`); every
/// other write changes existing points only.
fn write_kind(may_create: bool, body: &Json) -> WriteKind {
    match (may_create, body.get("update_mode").and_then(Json::as_str)) {
        (false, _) => WriteKind::Change,
        (true, Some("insert_only")) => WriteKind::Insert,
        (true, Some("update_only")) => WriteKind::Change,
        (true, _) => WriteKind::Upsert,
    }
}

fn collection_name(route: &Route) -> Result<String, RequestError> {
    route.collection.clone().ok_or(RequestError::WrongOperation { op: route.op.name() })
}

impl Database for Qdrant {
    type Route = Route;
    type Id = PointId;
    type Record = Payload;
    type Change = PayloadChange;
    type Then = Then;
    type RequestError = RequestError;
    type AnswerError = ResponseError;
    type Body = Json;

    fn name(&self) -> &'static str {
        "qdrant"
    }

    fn translate(&self, condition: &Expr, mapping: &FieldMapping, max_terms: usize) -> Result<Pushdown, TranslateError> {
        super::filter::translate_pushdown(condition, mapping, max_terms)
    }

    fn terms_in(&self, filter: &Json) -> usize {
        answers::condition_leaves(filter)
    }

    fn health_path(&self) -> &'static str {
        "/readyz"
    }

    /// On the path as Qdrant normalises it.
    fn classify(&self, method: &Method, path: &str) -> Option<Route> {
        routes::classify(method, path)
    }

    fn check_query(&self, route: &Route, query: Option<&str>) -> Result<(), RouteError> {
        routes::check_query(route.op, query)
    }

    /// Merged and trailing slashes normalised away, as Qdrant does before routing.
    fn forward_path(&self, path_and_query: &str) -> String {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        let path = routes::normalise_path(path).unwrap_or_else(|| path.to_string());
        match query {
            Some(q) => format!("{path}?{q}"),
            None => path,
        }
    }

    fn protocol(&self) -> Protocol {
        Protocol::Http
    }

    fn parse_body(&self, route: &Route, headers: &HeaderMap, bytes: &Bytes) -> Result<Option<Json>, Refusal> {
        json_body::parse(headers, bytes, super::vectors::places(route.op))
    }

    fn empty_body(&self, _route: &Route) -> Json {
        json_body::empty()
    }

    fn as_sent(&self, _route: &Route, body: Option<Json>) -> Result<Body, RequestError> {
        Ok(body.map_or(Body::None, Body::Json))
    }

    fn collection_of(&self, route: &Route, _body: &Json) -> Result<CollectionName, RequestError> {
        collection_name(route).map(CollectionName::Named)
    }

    /// Qdrant's record routes name their collection; there is nothing to look up.
    fn collection_name(&self, answer: &[u8]) -> Result<String, ResponseError> {
        parse(answer)?
            .pointer("/result/name")
            .and_then(Json::as_str)
            .map(String::from)
            .ok_or_else(|| ResponseError::Shape { field: "result.name".into(), reason: "missing" })
    }

    fn locate(&self, _route: &Route, name: &str) -> Located {
        Located { name: name.to_string(), base: format!("/collections/{name}") }
    }

    fn collection_request(&self, route: &Route, _body: &Json) -> Result<CollectionRequest, RequestError> {
        match (route.op, route.op.class()) {
            (Operation::GetCollections | Operation::GetCollectionsAliases, _) => {
                Ok(CollectionRequest::List { call: None, count: false })
            }
            (_, routes::Intent::Collection(action)) => Ok(CollectionRequest::Named {
                name: collection_name(route)?,
                action,
                renames: false,
            }),
            (op, _) => Err(RequestError::WrongOperation { op: op.name() }),
        }
    }

    fn collection_attributes(&self, _route: &Route, name: &str) -> BTreeMap<String, Value> {
        let mut attr = BTreeMap::new();
        attr.insert("name".to_string(), Value::string(name));
        attr
    }

    /// `result.collections` (by `name`) or `result.aliases` (by `collection_name`).
    fn filter_listing(&self, route: &Route, answer: &Answer, _count: bool, readable: &mut dyn FnMut(&str) -> bool) -> Result<Answer, ResponseError> {
        let (list, name_field) = match route.op {
            Operation::GetCollectionsAliases => ("/result/aliases", "collection_name"),
            _ => ("/result/collections", "name"),
        };
        let mut listing = parse(&answer.body)?;
        let Some(Json::Array(entries)) = listing.pointer_mut(list) else {
            return Err(ResponseError::Shape { field: list.into(), reason: "a listing without its list" });
        };
        entries.retain(|entry| entry.get(name_field).and_then(Json::as_str).is_some_and(&mut *readable));
        Ok(Answer::json(answer.status, &listing))
    }

    fn post_filterable(&self, route: &Route) -> bool {
        route.op.post_filterable()
    }

    fn id_inputs(&self, route: &Route, body: &Json) -> Result<Vec<IdInput<PointId>>, RequestError> {
        if matches!(route.op, Operation::CountPoints | Operation::GetPoint | Operation::GetPoints) {
            return Ok(Vec::new());
        }
        Ok(request::point_inputs(route.op, body)?
            .into_iter()
            .map(|input| IdInput { collection: input.collection, id: input.id })
            .collect())
    }

    fn lookup_collections(&self, route: &Route, body: &Json) -> Result<Vec<String>, RequestError> {
        if matches!(route.op, Operation::GetPoint | Operation::GetPoints) {
            return Ok(Vec::new());
        }
        request::lookups(route.op, body)
    }

    fn rewrite_read(&self, route: &Route, _located: &Located, body: Json, scope: ReadScope<'_>) -> Result<Outgoing<Then>, RequestError> {
        let op = route.op;
        let mut body = body;
        let then = |trim, lookups| Then {
            op,
            trim,
            prefix: scope.mapping.attr_prefix.clone(),
            lookups,
            point_id: route.point_id.clone(),
        };
        if matches!(op, Operation::GetPoint | Operation::GetPoints) {
            // Retrieve by id: no filter exists for it, so every returned point is checked.
            if matches!(scope.scope, Scope::Nothing) {
                if op == Operation::GetPoint {
                    return Ok(Outgoing::Local(point_does_not_exist(route.point_id.as_ref())));
                }
                request::force_payload(op, &mut body, &[])?;
                return Ok(Outgoing::Local(ok(json!([]))));
            }
            let trim = if scope.check_hits && op == Operation::GetPoints {
                request::force_payload(op, &mut body, &payload_keys(scope.mapping))?
            } else {
                Trim::default()
            };
            let call = if op == Operation::GetPoint {
                Call::new(Method::GET, Path::AsSent, Body::None)
            } else {
                Call::new(Method::POST, Path::AsSent, Body::Json(body))
            };
            return Ok(Outgoing::Send { call, then: scope.check_hits.then(|| then(trim, Vec::new())) });
        }
        if matches!(scope.scope, Scope::Nothing) {
            // Validated like any other request, then answered here.
            request::inject_filter(op, body.clone(), None)?;
            return Ok(Outgoing::Local(ok(empty_read_result(op, &body))));
        }
        let lookups = request::lookups(op, &body)?;
        let mut rewritten = request::inject_filter(op, body, scope.scope.filter())?;
        let lists_points = scope.check_hits && returns_points(op);
        let trim = if lists_points {
            request::force_payload(op, &mut rewritten, &payload_keys(scope.mapping))?
        } else {
            Trim::default()
        };
        Ok(Outgoing::Send {
            call: Call::new(Method::POST, Path::AsSent, Body::Json(rewritten)),
            then: lists_points.then(|| then(trim, lookups)),
        })
    }

    /// `GET points/{id}` of a point Qdrant does not have: the same 404 vecgate gives for a point
    /// the caller may not read (Qdrant's own carries its timing).
    fn failed_answer(&self, then: &Then, answer: Answer) -> Answer {
        let missing_point = then.op == Operation::GetPoint
            && answer.status == StatusCode::NOT_FOUND
            && serde_json::from_slice::<Json>(&answer.body).is_ok_and(|body| {
                body.pointer("/status/error")
                    .and_then(Json::as_str)
                    .is_some_and(|e| e.starts_with("Not found: Point with id "))
            });
        if missing_point {
            point_does_not_exist(then.point_id.as_ref())
        } else {
            answer
        }
    }

    /// Answers that list points are read without a tree where they can be
    /// ([`super::ranges`]); retrieve by ids, groups, and any answer it leaves are parsed and
    /// filtered whole.
    fn filter_answer(&self, then: Then, answer: &Answer, judge: &mut dyn Judge) -> Result<Filtered, ResponseError> {
        if then.lookups.is_empty() {
            if let Some(filtered) = super::ranges::filter(then.op, &then.trim, &then.prefix, &answer.body, judge) {
                return Ok(filtered);
            }
        }
        filter_parsed(then, &answer.body, judge)
    }

    fn missing_record(&self, id: &PointId) -> Answer {
        point_not_found(id)
    }

    /// points/delete: by ids → `has_id` AND the delete filter; by filter → AND the filter.
    /// `points/delete` with a `points` list of ids.
    fn delete_ids(&self, route: &Route, body: &Json) -> Result<Option<Vec<PointId>>, RequestError> {
        Ok(match request::write_selector(route.op, body)? {
            request::Selector::Ids(ids) => Some(ids),
            request::Selector::Filter(_) => None,
        })
    }

    fn delete_only(&self, _route: &Route, body: Json, ids: &[PointId]) -> Result<Json, RequestError> {
        by_ids(body, ids)
    }

    fn rewrite_delete(&self, route: &Route, body: Json, scope: Scope<'_>) -> Result<Outgoing<Then>, RequestError> {
        let op = route.op;
        let send = |body| Outgoing::Send { call: Call::new(Method::POST, Path::AsSent, Body::Json(body)), then: None };
        match scope {
            Scope::Nothing => {
                request::write_selector(op, &body)?;
                Ok(Outgoing::Local(ok(json!({"operation_id": null, "status": "completed"}))))
            }
            Scope::Everything => Ok(send(body)),
            Scope::Filter(acl) => Ok(send(request::delete_selector_to_filter(op, body, acl)?)),
            Scope::Unfiltered => Err(RequestError::Unsupported { what: "a delete without a filter" }),
        }
    }

    fn stamp(&self, route: &Route, body: &mut Json, stamps: &[(String, Json)], mapping: &FieldMapping) -> Result<(), RequestError> {
        stamp_write(route.op, body, stamps, &mapping.attr_prefix)
    }

    /// By-filter writes become by-id writes over the points the caller may update (the
    /// pipeline lists them), so each point is checked and nothing outside that set is touched.
    fn describe_write(&self, route: &Route, body: &Json) -> Result<WriteSet<PointId, PayloadChange>, RequestError> {
        let op = route.op;
        let mut records = Vec::new();
        let mut add = |part_op: Operation, part: &Json| -> Result<(), RequestError> {
            for PointWrite { id, change, may_create } in request::parse_point_writes(part_op, part)? {
                records.push(RecordWrite { id, change, kind: write_kind(may_create, part) });
            }
            Ok(())
        };
        if op == Operation::BatchUpdate {
            for (part_op, part) in &request::split_batch(body)? {
                if matches!(request::write_selector(*part_op, part), Ok(Selector::Filter(_))) {
                    return Err(RequestError::Refused {
                        what: "by-filter operations inside points/batch are not supported; send them on their own",
                    });
                }
                if *part_op == Operation::DeletePoints {
                    return Err(RequestError::Refused {
                        what: "point deletes inside points/batch are not supported; use points/delete",
                    });
                }
                add(*part_op, part)?;
            }
        } else if let Selector::Filter(_) = request::write_selector(op, body)? {
            return Ok(WriteSet { selection: Selection::Filter, records: Vec::new() });
        } else {
            add(op, body)?;
        }
        let ids = records.iter().map(|r| r.id.clone()).collect();
        Ok(WriteSet { selection: Selection::Ids(ids), records })
    }

    fn ids_matching(&self, route: &Route, located: &Located, body: &Json, scope: Scope<'_>, limit: usize) -> Result<Call, RequestError> {
        let Selector::Filter(filter) = request::write_selector(route.op, body)? else {
            return Err(RequestError::WrongOperation { op: route.op.name() });
        };
        let selection = match scope.filter() {
            Some(acl) => json!({"must": [filter, acl]}),
            None => filter,
        };
        Ok(Call::post(
            format!("{}/points/scroll", located.base),
            json!({"filter": selection, "limit": limit + 1, "with_payload": false, "with_vector": false}),
        ))
    }

    fn matched_ids(&self, answer: &[u8]) -> Result<Vec<PointId>, ResponseError> {
        let listing = parse(answer)?;
        let points = listing
            .pointer("/result/points")
            .and_then(Json::as_array)
            .ok_or_else(|| ResponseError::Shape { field: "result.points".into(), reason: "a scroll answer without points" })?;
        points
            .iter()
            .map(|p| p.get("id").and_then(PointId::from_json).ok_or_else(|| ResponseError::Shape { field: "id".into(), reason: "a point without a valid id" }))
            .collect()
    }

    fn select_ids(&self, _route: &Route, body: Json, ids: &[PointId]) -> Result<Json, RequestError> {
        by_ids(body, ids)
    }

    fn collection_by_name(&self, _name: &str) -> Option<Call> {
        None
    }

    fn located_by_name(&self, name: &str, _answer: Option<&[u8]>) -> Result<Located, ResponseError> {
        Ok(Located { name: name.to_string(), base: format!("/collections/{name}") })
    }

    fn parse_id(&self, text: &str) -> Option<PointId> {
        PointId::parse(text)
    }

    fn fetch_records(&self, located: &Located, ids: &[PointId]) -> Call {
        Call::post(
            format!("{}/points", located.base),
            json!({"ids": ids.iter().map(PointId::to_json).collect::<Vec<_>>(), "with_payload": true, "with_vector": false}),
        )
    }

    fn fetched_records(&self, answer: &[u8]) -> Result<Records<Self>, ResponseError> {
        let listing = parse(answer)?;
        let points = listing
            .get("result")
            .and_then(Json::as_array)
            .ok_or_else(|| ResponseError::Shape { field: "result".into(), reason: "a retrieve answer without a result list" })?;
        points
            .iter()
            .map(|point| {
                let id = point
                    .get("id")
                    .and_then(PointId::from_json)
                    .ok_or_else(|| ResponseError::Shape { field: "id".into(), reason: "a point without a valid id" })?;
                let payload = match point.get("payload") {
                    Some(Json::Object(p)) => p.clone(),
                    None | Some(Json::Null) => Map::new(),
                    Some(_) => return Err(ResponseError::Shape { field: "payload".into(), reason: "not an object" }),
                };
                Ok((id, payload))
            })
            .collect()
    }

    fn apply(&self, _route: &Route, change: &PayloadChange, before: Option<&Payload>) -> Payload {
        request::payload_after(change, before)
    }

    fn attributes<'r>(&self, record: &'r Payload, mapping: &'r FieldMapping) -> Box<dyn RecordAttributes + 'r> {
        Box::new(NestedPayload::new(Some(record), &mapping.attr_prefix))
    }

    fn narrow_write(
        &self,
        route: &Route,
        located: &Located,
        method: &Method,
        body: Json,
        records: &[RecordWrite<PointId, PayloadChange>],
        narrowing: Narrowing<'_>,
    ) -> Result<Narrowed, RequestError> {
        super::narrow::narrow(route.op, located, method, body, records, narrowing)
    }

    /// Upserts and vector updates: existing points outside the update filter keep their
    /// state even if they changed since they were read.
    fn guard_write(&self, route: &Route, body: Json, update: &Json) -> Result<Json, RequestError> {
        match route.op {
            Operation::UpsertPoints | Operation::UpdateVectors => {
                Ok(request::and_into_update_filter(route.op, body, update)?)
            }
            _ => Ok(body),
        }
    }

    fn filter_terms(&self, _route: &Route, body: &Json) -> usize {
        answers::filter_terms(body)
    }

    fn call_filter_terms(&self, _route: &Route, body: &Body) -> usize {
        body.json().map_or(0, answers::filter_terms)
    }

    fn error_answer(&self, status: StatusCode, message: &str) -> Answer {
        Answer::json(status, &answers::error_body(message))
    }
}

/// An answer that lists points parsed whole and filtered (the general path).
pub(super) fn filter_parsed(then: Then, body: &[u8], judge: &mut dyn Judge) -> Result<Filtered, ResponseError> {
    let mut hits = parse(body)?;
    let prefix = then.prefix.as_str();
    let mut keep = |id: &PointId, payload: Option<&Map<String, Json>>| judge.admits(id, &NestedPayload::new(payload, prefix));
    let filtered = response::filter_points(then.op, &mut hits, &mut keep, &then.trim)?;
    let mut lookups_stripped = 0;
    for collection in &then.lookups {
        let mut keep_lookup = |id: &PointId, payload: Option<&Map<String, Json>>| {
            judge.admits_lookup(collection, id, &NestedPayload::new(payload, prefix))
        };
        lookups_stripped += response::filter_lookups(then.op, &mut hits, &mut keep_lookup)?;
    }
    let body = if filtered.not_found {
        FilteredBody::Replaced(point_does_not_exist(then.point_id.as_ref()))
    } else if !filtered.changed && lookups_stripped == 0 && then.op != Operation::GetPoints {
        // Every point checked and nothing to change: Qdrant's own bytes go back. Not for a
        // retrieve by ids, where points the caller may not read are removed routinely:
        // re-serialised always, its bytes do not tell a removed point from a missing one.
        FilteredBody::Unchanged
    } else {
        FilteredBody::Rewritten(hits)
    };
    Ok(Filtered { body, stripped: filtered.stripped, returned: None })
}
