//! Chroma behind the seam: [`Chroma`] puts routes, request rewriting, answer filtering and
//! the error shape together for the pipeline. Nothing here decides; everything here knows
//! Chroma's JSON.
//!
//! Chroma's record routes name their collection by UUID, so the pipeline looks the name up
//! (`GET …/collections/by-id/{uuid}`) before it can choose the collection's rule.

use super::answers::{collection_name_of, count_ids, crn_collection_name, empty_read_answer, request_terms, where_terms};
use super::attributes::FlatMetadata;
use super::request::{self, RequestError, Trim};
use super::response::{self, ResponseError};
use super::routes::{self, CollectionRef, Operation, Route};
use crate::backends::json_body;
use crate::backends::seam::{
    Answer, Body, Call, CollectionAction, CollectionName, CollectionRequest, Database, Filtered,
    FilteredBody, IdInput, Judge, Located, Narrowed, Narrowing, Outgoing, Path, Protocol, ReadScope,
    RecordAttributes, RecordWrite, Records, Refusal, Scope, Selection, WriteKind, WriteSet,
};
use crate::backends::{FieldMapping, Pushdown, RouteError, TranslateError};
use crate::plan::Expr;
use crate::plan::Value;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Map, Value as Json};
use std::collections::BTreeMap;

/// Chroma's HTTP API (`/api/v2`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Chroma;

/// How to read the answer of a read.
#[derive(Debug, Clone)]
pub enum Then {
    /// get, query, search: every hit judged, `trim` undone.
    Hits { op: Operation, trim: Trim, prefix: String },
    /// count, answered from a get that lists the matching ids: the visible ones are counted.
    Count { prefix: String },
}

/// A record as Chroma stores it: its metadata (`None`: it has none).
pub type Metadata = Option<Map<String, Json>>;

fn collections_path(route: &Route) -> String {
    format!(
        "/api/v2/tenants/{}/databases/{}/collections",
        route.tenant.as_deref().unwrap_or_default(),
        route.database.as_deref().unwrap_or_default()
    )
}

/// `{collections_path}/{infix}{id}`, written at once.
fn collection_path(route: &Route, infix: &str, id: &str) -> String {
    let tenant = route.tenant.as_deref().unwrap_or_default();
    let database = route.database.as_deref().unwrap_or_default();
    let mut path = String::with_capacity(48 + tenant.len() + database.len() + infix.len() + id.len());
    for part in ["/api/v2/tenants/", tenant, "/databases/", database, "/collections/", infix, id] {
        path.push_str(part);
    }
    path
}

/// The collections of Chroma's default tenant and database.
const DEFAULT_COLLECTIONS: &str = "/api/v2/tenants/default_tenant/databases/default_database/collections";

fn parse(answer: &[u8]) -> Result<Json, ResponseError> {
    Ok(serde_json::from_slice(answer)?)
}

impl Database for Chroma {
    type Route = Route;
    type Id = String;
    type Record = Metadata;
    /// The metadata the write sends for the record (`None`: none).
    type Change = Metadata;
    type Then = Then;
    type RequestError = RequestError;
    type AnswerError = ResponseError;
    type Body = Json;

    fn name(&self) -> &'static str {
        "chroma"
    }

    fn translate(&self, condition: &Expr, mapping: &FieldMapping, max_terms: usize) -> Result<Pushdown, TranslateError> {
        super::filter::translate_pushdown(condition, mapping, max_terms)
    }

    fn terms_in(&self, filter: &Json) -> usize {
        where_terms(filter)
    }

    fn health_path(&self) -> &'static str {
        "/api/v2/heartbeat"
    }

    fn classify(&self, method: &Method, path: &str) -> Option<Route> {
        routes::classify(method, path)
    }

    fn check_query(&self, route: &Route, query: Option<&str>) -> Result<(), RouteError> {
        routes::check_query(route.op, query)
    }

    /// Chroma routes on the path as sent (it does not normalise it), so it goes as sent.
    fn forward_path(&self, path_and_query: &str) -> String {
        path_and_query.to_string()
    }

    /// A query's embeddings: nothing in vecgate reads them, and converting hundreds of floats
    /// to numbers and back was most of the proxy's own cost.
    fn protocol(&self) -> Protocol {
        Protocol::Http
    }

    /// JSON; a query's `query_embeddings` kept as the client's text.
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
        match &route.collection {
            Some(CollectionRef::Name(name)) => Ok(CollectionName::Named(name.clone())),
            Some(CollectionRef::Crn(crn)) => crn_collection_name(crn)
                .map(CollectionName::Named)
                .ok_or_else(|| RequestError::InvalidField { field: "crn".into(), reason: "not a collection CRN" }),
            Some(CollectionRef::Id(id)) => Ok(CollectionName::Lookup { path: collection_path(route, "by-id/", id) }),
            None => Err(RequestError::WrongOperation { op: route.op.name() }),
        }
    }

    fn collection_name(&self, answer: &[u8]) -> Result<String, ResponseError> {
        collection_name_of(&parse(answer)?)
            .ok_or_else(|| ResponseError::Shape { field: "name".into(), reason: "a collection without a name" })
    }

    fn locate(&self, route: &Route, name: &str) -> Located {
        let id = route.collection.as_ref().map_or("", CollectionRef::as_str);
        Located { name: name.to_string(), base: collection_path(route, "", id) }
    }

    fn collection_request(&self, route: &Route, body: &Json) -> Result<CollectionRequest, RequestError> {
        let named = |action, renames| -> Result<CollectionRequest, RequestError> {
            let CollectionName::Named(name) = self.collection_of(route, &json_body::empty())? else {
                return Err(RequestError::WrongOperation { op: route.op.name() });
            };
            Ok(CollectionRequest::Named { name, action, renames })
        };
        match route.op {
            Operation::CreateCollection => {
                let name = body
                    .get("name")
                    .and_then(Json::as_str)
                    .ok_or_else(|| RequestError::InvalidField { field: "name".into(), reason: "a collection needs a string name" })?
                    .to_string();
                let get_or_create = body.get("get_or_create").and_then(Json::as_bool) == Some(true);
                // A name that is not a plain path segment cannot name an existing collection.
                let plain = !name.is_empty() && !name.contains(['/', '?', '#', '%']);
                let exists = (get_or_create && plain).then(|| Call::get(format!("{}/{name}", collections_path(route))));
                Ok(CollectionRequest::Create { name, exists })
            }
            Operation::GetCollection | Operation::GetCollectionByCrn => named(CollectionAction::Read, false),
            Operation::DeleteCollection => named(CollectionAction::Delete, true),
            Operation::GetCollectionById => Ok(CollectionRequest::NameInAnswer),
            Operation::UpdateCollection => Ok(CollectionRequest::Update {
                new_name: body.get("new_name").and_then(Json::as_str).map(String::from),
            }),
            Operation::ListCollections => Ok(CollectionRequest::List { call: None, count: false }),
            Operation::CountCollections => Ok(CollectionRequest::List {
                call: Some(Call::get(collections_path(route))),
                count: true,
            }),
            other => Err(RequestError::WrongOperation { op: other.name() }),
        }
    }

    fn collection_attributes(&self, route: &Route, name: &str) -> BTreeMap<String, Value> {
        let mut attr = BTreeMap::new();
        attr.insert("tenant".to_string(), Value::string(route.tenant.as_deref().unwrap_or_default()));
        attr.insert("database".to_string(), Value::string(route.database.as_deref().unwrap_or_default()));
        attr.insert("name".to_string(), Value::string(name));
        attr
    }

    fn filter_listing(&self, _route: &Route, answer: &Answer, count: bool, readable: &mut dyn FnMut(&str) -> bool) -> Result<Answer, ResponseError> {
        let Json::Array(entries) = parse(&answer.body)? else {
            return Err(ResponseError::Shape { field: String::new(), reason: "a collection listing is not a list" });
        };
        let mut visible = Vec::new();
        for entry in entries {
            let name = collection_name_of(&entry)
                .ok_or_else(|| ResponseError::Shape { field: "name".into(), reason: "a collection without a name" })?;
            if readable(&name) {
                visible.push(entry);
            }
        }
        let listing = if count { json!(visible.len()) } else { Json::Array(visible) };
        Ok(Answer::json(answer.status, &listing))
    }

    fn post_filterable(&self, _route: &Route) -> bool {
        true
    }

    fn id_inputs(&self, _route: &Route, _body: &Json) -> Result<Vec<IdInput<String>>, RequestError> {
        Ok(Vec::new())
    }

    fn lookup_collections(&self, _route: &Route, _body: &Json) -> Result<Vec<String>, RequestError> {
        Ok(Vec::new())
    }

    fn rewrite_read(&self, route: &Route, located: &Located, body: Json, scope: ReadScope<'_>) -> Result<Outgoing<Then>, RequestError> {
        let op = route.op;
        let prefix = scope.mapping.attr_prefix.clone();
        if op == Operation::Count {
            return Ok(match scope.scope {
                Scope::Nothing => Outgoing::Local(Answer::json(StatusCode::OK, &json!(0))),
                // Everything is visible: the raw total is the answer.
                Scope::Everything => Outgoing::Send { call: Call::new(Method::GET, Path::AsSent, Body::None), then: None },
                // Chroma cannot filter a count: list the matching ids instead.
                Scope::Filter(_) | Scope::Unfiltered => {
                    let mut listing = request::count_as_get(scope.scope.filter());
                    if scope.check_hits {
                        listing["include"] = json!(["metadatas"]);
                    }
                    Outgoing::Send {
                        call: Call::post(format!("{}/get", located.base), listing),
                        then: Some(Then::Count { prefix }),
                    }
                }
            });
        }
        let value = body;
        if matches!(scope.scope, Scope::Nothing) {
            // Validated like any other request, then answered here.
            let (validated, _) = request::rewrite_filtered(op, value, None, false)?;
            return Ok(Outgoing::Local(Answer::json(StatusCode::OK, &empty_read_answer(op, &validated))));
        }
        let (rewritten, trim) = request::rewrite_filtered(op, value, scope.scope.filter(), scope.check_hits)?;
        Ok(Outgoing::Send {
            call: Call::new(Method::POST, Path::AsSent, Body::Json(rewritten)),
            then: Some(Then::Hits { op, trim, prefix }),
        })
    }

    fn failed_answer(&self, _then: &Then, answer: Answer) -> Answer {
        answer
    }

    /// Get and query answers are read without a tree where they can be
    /// ([`super::ranges`]); every other answer, and any it leaves, is parsed and filtered
    /// whole.
    fn filter_answer(&self, then: Then, answer: &Answer, judge: &mut dyn Judge) -> Result<Filtered, ResponseError> {
        if let Then::Hits { op, trim, prefix } = &then {
            if let Some(filtered) = super::ranges::filter(*op, *trim, prefix, &answer.body, judge) {
                return Ok(filtered);
            }
        }
        match then {
            Then::Hits { op, trim, prefix } => filter_hits_parsed(op, trim, &prefix, &answer.body, judge),
            Then::Count { prefix } => {
                let hits = parse(&answer.body)?;
                let rows = response::get_rows(&hits)?;
                let visible = rows
                    .iter()
                    .filter(|(id, metadata)| judge.admits(id, &FlatMetadata { metadata: metadata.as_ref(), prefix: &prefix }))
                    .count();
                Ok(Filtered {
                    body: FilteredBody::Rewritten(json!(visible)),
                    stripped: rows.len() - visible,
                    returned: Some(visible),
                })
            }
        }
    }

    /// Chroma reads take no record ids as inputs; a record is simply not returned.
    fn missing_record(&self, id: &String) -> Answer {
        self.error_answer(StatusCode::NOT_FOUND, &format!("record {id} not found"))
    }

    /// `{"ids": [...]}` without `where` or `where_document`.
    fn delete_ids(&self, _route: &Route, body: &Json) -> Result<Option<Vec<String>>, RequestError> {
        if ["where", "where_document"].iter().any(|k| body.get(*k).is_some_and(|v| !v.is_null())) {
            return Ok(None);
        }
        let Some(Json::Array(items)) = body.get("ids") else {
            return Ok(None);
        };
        Ok(items.iter().map(|i| i.as_str().map(String::from)).collect())
    }

    fn delete_only(&self, _route: &Route, mut body: Json, ids: &[String]) -> Result<Json, RequestError> {
        let obj = body.as_object_mut().ok_or(RequestError::NotAnObject)?;
        obj.insert("ids".into(), json!(ids));
        Ok(body)
    }

    fn rewrite_delete(&self, route: &Route, body: Json, scope: Scope<'_>) -> Result<Outgoing<Then>, RequestError> {
        let selects_nothing = ["ids", "where", "where_document"]
            .iter()
            .all(|k| body.get(*k).is_none_or(Json::is_null));
        let send = |body| Outgoing::Send { call: Call::new(Method::POST, Path::AsSent, Body::Json(body)), then: None };
        if selects_nothing {
            // `{}` deletes nothing in Chroma; adding the filter would make it delete everything
            // the caller may delete. Chroma answers it (or refuses it) itself.
            let known = ["ids", "where", "where_document", "limit"];
            if let Some(field) = body.as_object().and_then(|o| o.keys().find(|k| !known.contains(&k.as_str()))) {
                return Err(RequestError::UnknownField { op: route.op.name(), field: field.clone() });
            }
            return Ok(send(body));
        }
        match scope {
            Scope::Nothing => {
                request::rewrite_filtered(Operation::Delete, body, None, false)?;
                Ok(Outgoing::Local(Answer::json(StatusCode::OK, &json!({"deleted": 0}))))
            }
            Scope::Everything => Ok(send(request::rewrite_filtered(Operation::Delete, body, None, false)?.0)),
            Scope::Filter(acl) => Ok(send(request::rewrite_filtered(Operation::Delete, body, Some(acl), false)?.0)),
            Scope::Unfiltered => Err(RequestError::Unsupported { what: "a delete without a filter" }),
        }
    }

    fn stamp(&self, route: &Route, body: &mut Json, stamps: &[(String, Json)], mapping: &FieldMapping) -> Result<(), RequestError> {
        let mut batch = request::parse_write(route.op, body)?;
        for metadata in &mut batch.metadatas {
            let metadata = metadata.get_or_insert_with(Map::new);
            for (name, value) in stamps {
                metadata.insert(format!("{}{name}", mapping.attr_prefix), value.clone());
            }
        }
        request::set_write_metadatas(body, &batch.metadatas)
    }

    fn describe_write(&self, route: &Route, body: &Json) -> Result<WriteSet<String, Metadata>, RequestError> {
        let batch = request::parse_write(route.op, body)?;
        let kind = match route.op {
            Operation::Add => WriteKind::Insert,
            Operation::Upsert => WriteKind::Upsert,
            _ => WriteKind::Change,
        };
        let records = batch
            .ids
            .iter()
            .cloned()
            .zip(batch.metadatas)
            .map(|(id, change)| RecordWrite { id, change, kind })
            .collect();
        Ok(WriteSet { selection: Selection::Ids(batch.ids), records })
    }

    /// Chroma's writes always name their ids.
    fn ids_matching(&self, route: &Route, _located: &Located, _body: &Json, _scope: Scope<'_>, _limit: usize) -> Result<Call, RequestError> {
        Err(RequestError::WrongOperation { op: route.op.name() })
    }

    fn matched_ids(&self, answer: &[u8]) -> Result<Vec<String>, ResponseError> {
        Ok(response::get_rows(&parse(answer)?)?.into_iter().map(|(id, _)| id).collect())
    }

    /// Chroma's writes always name their ids.
    fn select_ids(&self, route: &Route, _body: Json, _ids: &[String]) -> Result<Json, RequestError> {
        Err(RequestError::WrongOperation { op: route.op.name() })
    }

    fn fetch_records(&self, located: &Located, ids: &[String]) -> Call {
        Call::post(format!("{}/get", located.base), json!({"ids": ids, "include": ["metadatas"]}))
    }

    fn fetched_records(&self, answer: &[u8]) -> Result<Records<Self>, ResponseError> {
        Ok(response::get_rows(&parse(answer)?)?.into_iter().collect())
    }

    /// Chroma addresses records by the collection's id: asked by name in the default tenant
    /// and database.
    fn collection_by_name(&self, name: &str) -> Option<Call> {
        Some(Call::get(format!("{DEFAULT_COLLECTIONS}/{name}")))
    }

    fn located_by_name(&self, name: &str, answer: Option<&[u8]>) -> Result<Located, ResponseError> {
        let id = answer
            .map(parse)
            .transpose()?
            .and_then(|v| v.get("id").and_then(Json::as_str).map(String::from))
            .ok_or_else(|| ResponseError::Shape { field: "id".into(), reason: "a collection without an id" })?;
        Ok(Located { name: name.to_string(), base: format!("{DEFAULT_COLLECTIONS}/{id}") })
    }

    fn parse_id(&self, text: &str) -> Option<String> {
        Some(text.to_string())
    }

    fn apply(&self, route: &Route, change: &Metadata, before: Option<&Metadata>) -> Metadata {
        request::merged_metadata(route.op, before.and_then(Option::as_ref), change.as_ref())
    }

    fn attributes<'r>(&self, record: &'r Metadata, mapping: &'r FieldMapping) -> Box<dyn RecordAttributes + 'r> {
        Box::new(FlatMetadata { metadata: record.as_ref(), prefix: &mapping.attr_prefix })
    }

    /// Records left out (an update of ids the caller may not read) are dropped from every
    /// parallel array; with none left, vecgate answers what Chroma answers for an update of
    /// ids it does not have.
    fn narrow_write(
        &self,
        _route: &Route,
        _located: &Located,
        method: &Method,
        body: Json,
        records: &[RecordWrite<String, Metadata>],
        narrowing: Narrowing<'_>,
    ) -> Result<Narrowed, RequestError> {
        let mut body = body;
        if !narrowing.left_out.is_empty() {
            if narrowing.left_out.len() == records.len() {
                return Ok(Narrowed::Answer(Answer::json(StatusCode::OK, &json!({}))));
            }
            request::drop_records(&mut body, narrowing.left_out)?;
        }
        Ok(Narrowed::Send { call: Call::new(method.clone(), Path::AsSent, Body::Json(body)), instead: None })
    }

    fn guard_write(&self, _route: &Route, body: Json, _update: &Json) -> Result<Json, RequestError> {
        Ok(body)
    }

    fn filter_terms(&self, _route: &Route, body: &Json) -> usize {
        request_terms(body)
    }

    fn call_filter_terms(&self, _route: &Route, body: &Body) -> usize {
        body.json().map_or(0, request_terms)
    }

    fn error_answer(&self, status: StatusCode, message: &str) -> Answer {
        Answer::json(status, &json!({"error": chroma_error_name(status), "message": message}))
    }
}

/// A get, query or search answer parsed whole and filtered (the general path).
pub(super) fn filter_hits_parsed(op: Operation, trim: Trim, prefix: &str, body: &[u8], judge: &mut dyn Judge) -> Result<Filtered, ResponseError> {
    let mut hits = parse(body)?;
    let mut keep = |id: &str, metadata: Option<&Map<String, Json>>| judge.admits(&id, &FlatMetadata { metadata, prefix });
    let stripped = match op {
        Operation::Get => response::filter_get_response(&mut hits, &mut keep, trim),
        Operation::Query => response::filter_query_response(&mut hits, &mut keep, trim),
        _ => response::filter_search_response(&mut hits, &mut keep, trim),
    }?;
    let returned = Some(count_ids(&hits));
    let body = if stripped == 0 && !trim.drop_metadatas { FilteredBody::Unchanged } else { FilteredBody::Rewritten(hits) };
    Ok(Filtered { body, stripped, returned })
}

/// The `error` names the chromadb client maps to its exception classes.
fn chroma_error_name(status: StatusCode) -> &'static str {
    match status {
        // chromadb's AuthorizationError carries 401, its AuthError 403.
        StatusCode::UNAUTHORIZED => "AuthorizationError",
        StatusCode::FORBIDDEN => "AuthError",
        StatusCode::NOT_FOUND => "NotFoundError",
        s if s.is_client_error() => "InvalidArgumentError",
        _ => "InternalError",
    }
}
