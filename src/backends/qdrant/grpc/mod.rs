//! Qdrant's gRPC API behind the seam: [`QdrantGrpc`] is the second face of the Qdrant backend,
//! beside the REST one ([`super::Qdrant`]). The pipeline, the write rule, the existence rules,
//! audit, metrics and shadow mode are the same code for both; what this face adds is how a
//! call is read and written:
//!
//! - [`methods`]: the method table (every method of the public services classified; anything
//!   else is unknown and refused with PERMISSION_DENIED);
//! - [`schema`]: the protos' descriptors, for the method table's test and the unknown-field
//!   check on every request;
//! - [`filter`]: the plan's filter, translated once by the Qdrant translator (REST JSON),
//!   converted exactly into a `qdrant.Filter` — or refused;
//! - [`read`], [`write`]: requests rewritten (filters ANDed in everywhere, payloads forced,
//!   ids checked, writes described, narrowed and guarded) on the decoded messages;
//! - [`answer`]: answers judged and trimmed, listings filtered;
//! - [`payload`]: `qdrant.Value` ↔ the JSON Qdrant stores payloads as.
//!
//! Invariants, besides the seam's: a request is re-encoded from what was decoded and checked,
//! never forwarded as the client's bytes (except by shadow mode, which forwards the original
//! by design); refusals and the answers that make a point look missing are gRPC statuses with
//! the REST face's messages (NOT_FOUND "Not found: No point with id N found", as Qdrant's own).

mod answer;
mod error;
pub mod filter;
pub mod methods;
mod payload;
pub mod proto;
mod read;
pub mod schema;
mod write;

pub use answer::Then;
pub use error::{GrpcAnswerError, GrpcRequestError};
pub use methods::{GrpcOp, GrpcRequest};

use super::answers::condition_leaves;
use super::database::Payload;
use super::point_id::PointId;
use super::request::{payload_after, PayloadChange, RequestError, Trim};
use super::NestedPayload;
use crate::backends::seam::{
    Answer, Body, Call, CollectionName, CollectionRequest, Database, Filtered, IdInput, Intent, Judge, Located, Narrowed,
    Narrowing, Outgoing, Path, Protocol, ReadScope, RecordAttributes, RecordWrite, Records, Refusal, Route, Scope, WriteSet,
};
use crate::backends::{check_query_params, FieldMapping, Pushdown, RouteError, TranslateError};
use crate::grpc::{self as wire, code_for, frame, status_trailers, Code};
use crate::plan::{Expr, Value};
use bytes::Bytes;
use http::header::HeaderValue;
use http::{HeaderMap, Method, StatusCode};
use prost::Message;
use serde_json::Value as Json;
use std::collections::BTreeMap;

/// Qdrant's gRPC API.
#[derive(Debug, Clone, Copy, Default)]
pub struct QdrantGrpc;

/// One classified call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcRoute {
    pub op: GrpcOp,
}

impl Route for GrpcRoute {
    fn name(&self) -> &'static str {
        self.op.name()
    }

    fn intent(&self) -> Intent {
        self.op.intent()
    }
}

/// The body of a call: the message, with the leaves of its filters.
fn proto_body(request: &GrpcRequest) -> Body {
    Body::Proto { message: Bytes::from(request.encode()), filter_terms: read::filter_terms(request) }
}

/// A call of the pipeline's own (a lookup).
fn call(request: &GrpcRequest) -> Call {
    Call::new(Method::POST, Path::To(request.op().path().to_string()), proto_body(request))
}

/// The client's call, rewritten: the method it called (or, where the rewrite replaced it,
/// the method of the replacement).
fn own(route: &GrpcRoute, request: &GrpcRequest) -> Call {
    if request.op() == route.op {
        Call::new(Method::POST, Path::AsSent, proto_body(request))
    } else {
        call(request)
    }
}

fn content_type() -> Option<HeaderValue> {
    Some(HeaderValue::from_static(wire::CONTENT_TYPE_GRPC))
}

/// A successful answer carrying `message`.
fn ok(message: &[u8]) -> Answer {
    Answer { status: StatusCode::OK, content_type: content_type(), body: frame(message), trailers: Some(Box::new(status_trailers(Code::Ok, ""))) }
}

/// An answer ending the call with `code` and `message`, and no message.
fn status(code: Code, message: &str) -> Answer {
    Answer { status: wire::http_status(code), content_type: content_type(), body: Bytes::new(), trailers: Some(Box::new(status_trailers(code, message))) }
}

/// The ACL filter as a message.
fn acl(scope: Scope<'_>) -> Result<Option<proto::qdrant::Filter>, GrpcRequestError> {
    Ok(scope.filter().map(filter::from_json).transpose()?)
}

fn payload_keys(mapping: &FieldMapping) -> Vec<String> {
    let prefix = mapping.attr_prefix.trim_end_matches('.');
    if prefix.is_empty() {
        Vec::new()
    } else {
        vec![prefix.to_string()]
    }
}

fn wrong(route: &GrpcRoute) -> GrpcRequestError {
    RequestError::WrongOperation { op: route.op.name() }.into()
}

impl Database for QdrantGrpc {
    type Route = GrpcRoute;
    type Id = PointId;
    type Record = Payload;
    type Change = PayloadChange;
    type Then = Then;
    type RequestError = GrpcRequestError;
    type AnswerError = GrpcAnswerError;
    type Body = GrpcRequest;

    fn name(&self) -> &'static str {
        "qdrant"
    }

    fn protocol(&self) -> Protocol {
        Protocol::Grpc
    }

    fn health_path(&self) -> &'static str {
        "/grpc.health.v1.Health/Check"
    }

    /// The one Qdrant translator (its REST JSON is converted per request: [`filter`]).
    fn translate(&self, condition: &Expr, mapping: &FieldMapping, max_terms: usize) -> Result<Pushdown, TranslateError> {
        super::filter::translate_pushdown(condition, mapping, max_terms)
    }

    fn terms_in(&self, filter: &Json) -> usize {
        condition_leaves(filter)
    }

    /// Calls are POSTs to `/package.Service/Method`.
    fn classify(&self, method: &Method, path: &str) -> Option<GrpcRoute> {
        (*method == Method::POST).then(|| GrpcOp::from_path(path)).flatten().map(|op| GrpcRoute { op })
    }

    fn check_query(&self, route: &GrpcRoute, query: Option<&str>) -> Result<(), RouteError> {
        check_query_params(route.op.name(), query, |_, _| None)
    }

    fn forward_path(&self, path_and_query: &str) -> String {
        path_and_query.to_string()
    }

    /// One uncompressed message, every field known to the method's message, decoded.
    fn parse_body(&self, route: &GrpcRoute, headers: &HeaderMap, bytes: &Bytes) -> Result<Option<GrpcRequest>, Refusal> {
        if !wire::is_grpc(headers) {
            let sent = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            return Err(Refusal::Unsupported(format!("Content-Type {sent:?}; expected application/grpc")));
        }
        if let Some(encoding) = headers.get(wire::GRPC_ENCODING).filter(|e| e.as_bytes() != b"identity") {
            return Err(Refusal::Unsupported(format!(
                "grpc-encoding {:?} is not accepted; send messages uncompressed",
                String::from_utf8_lossy(encoding.as_bytes())
            )));
        }
        let message = wire::unframe(bytes).map_err(GrpcRequestError::from)?;
        schema::check_known_fields(route.op.path(), message).map_err(GrpcRequestError::from)?;
        let request = route.op.decode(message).map_err(|e| GrpcRequestError::Decode(e.to_string()))?;
        Ok(Some(request))
    }

    fn empty_body(&self, route: &GrpcRoute) -> GrpcRequest {
        route.op.empty()
    }

    fn as_sent(&self, _route: &GrpcRoute, body: Option<GrpcRequest>) -> Result<Body, GrpcRequestError> {
        Ok(body.map_or(Body::None, |b| proto_body(&b)))
    }

    fn collection_of(&self, route: &GrpcRoute, body: &GrpcRequest) -> Result<CollectionName, GrpcRequestError> {
        body.collection_name().map(|n| CollectionName::Named(n.to_string())).ok_or_else(|| wrong(route))
    }

    /// Every call that addresses a collection names it; there is nothing to look up.
    fn collection_name(&self, _answer: &[u8]) -> Result<String, GrpcAnswerError> {
        Err(GrpcAnswerError::Shape("gRPC answers are not read for collection names"))
    }

    fn locate(&self, _route: &GrpcRoute, name: &str) -> Located {
        Located { name: name.to_string(), base: String::new() }
    }

    fn collection_request(&self, route: &GrpcRoute, body: &GrpcRequest) -> Result<CollectionRequest, GrpcRequestError> {
        match (route.op, route.op.intent()) {
            (GrpcOp::CollectionsList | GrpcOp::CollectionsListAliases, _) => Ok(CollectionRequest::List { call: None, count: false }),
            (_, Intent::Collection(action)) => Ok(CollectionRequest::Named {
                name: body.collection_name().ok_or_else(|| wrong(route))?.to_string(),
                action,
                renames: false,
            }),
            _ => Err(wrong(route)),
        }
    }

    fn collection_attributes(&self, _route: &GrpcRoute, name: &str) -> BTreeMap<String, Value> {
        let mut attr = BTreeMap::new();
        attr.insert("name".to_string(), Value::string(name));
        attr
    }

    fn filter_listing(&self, route: &GrpcRoute, answer: &Answer, _count: bool, readable: &mut dyn FnMut(&str) -> bool) -> Result<Answer, GrpcAnswerError> {
        let body = answer::filter_listing(route.op, &answer.body, readable)?;
        Ok(Answer { body, ..answer.clone() })
    }

    /// As on the REST face: reads listing points, not their groups forms.
    fn post_filterable(&self, route: &GrpcRoute) -> bool {
        use GrpcOp as O;
        matches!(
            route.op,
            O::PointsQuery
                | O::PointsQueryBatch
                | O::PointsScroll
                | O::PointsSearch
                | O::PointsSearchBatch
                | O::PointsRecommend
                | O::PointsRecommendBatch
                | O::PointsDiscover
                | O::PointsDiscoverBatch
                | O::PointsGet
        )
    }

    fn id_inputs(&self, _route: &GrpcRoute, body: &GrpcRequest) -> Result<Vec<IdInput<PointId>>, GrpcRequestError> {
        read::id_inputs(body)
    }

    fn lookup_collections(&self, _route: &GrpcRoute, body: &GrpcRequest) -> Result<Vec<String>, GrpcRequestError> {
        Ok(read::lookups(body))
    }

    fn rewrite_read(&self, route: &GrpcRoute, _located: &Located, mut body: GrpcRequest, scope: ReadScope<'_>) -> Result<Outgoing<Then>, GrpcRequestError> {
        let then = |trim, lookups| Then { op: route.op, trim, prefix: scope.mapping.attr_prefix.clone(), lookups };
        if matches!(scope.scope, Scope::Nothing) {
            // Validated like any other request, then answered here.
            if route.op != GrpcOp::PointsGet {
                read::inject_filter(&mut body, None)?;
            }
            return Ok(Outgoing::Local(ok(&read::empty_answer(&body)?)));
        }
        if route.op == GrpcOp::PointsGet {
            // Retrieve by id: no filter exists for it, so every returned point is checked.
            let trim = if scope.check_hits { read::force_payload(&mut body, &payload_keys(scope.mapping))? } else { Trim::default() };
            return Ok(Outgoing::Send { call: own(route, &body), then: scope.check_hits.then(|| then(trim, Vec::new())) });
        }
        let lookups = read::lookups(&body);
        read::inject_filter(&mut body, acl(scope.scope)?.as_ref())?;
        let lists_points = scope.check_hits && read::returns_points(&body);
        let trim = if lists_points { read::force_payload(&mut body, &payload_keys(scope.mapping))? } else { Trim::default() };
        Ok(Outgoing::Send { call: own(route, &body), then: lists_points.then(|| then(trim, lookups)) })
    }

    /// Get omits the ids Qdrant does not have: no failure to reshape.
    fn failed_answer(&self, _then: &Then, answer: Answer) -> Answer {
        answer
    }

    fn filter_answer(&self, then: Then, answer: &Answer, judge: &mut dyn Judge) -> Result<Filtered, GrpcAnswerError> {
        answer::filter(then, &answer.body, judge)
    }

    /// What Qdrant answers for a point id it does not have (measured on 1.18.3).
    fn missing_record(&self, id: &PointId) -> Answer {
        status(Code::NotFound, &format!("Not found: No point with id {id} found"))
    }

    /// Not confirmed record by record over gRPC: with a PDP as policy source, gRPC deletes
    /// are refused (`delete_ids` says it cannot name them).
    fn delete_ids(&self, _route: &GrpcRoute, _body: &Self::Body) -> Result<Option<Vec<PointId>>, Self::RequestError> {
        Ok(None)
    }

    fn delete_only(&self, _route: &GrpcRoute, _body: Self::Body, _ids: &[PointId]) -> Result<Self::Body, Self::RequestError> {
        Err(RequestError::Unsupported { what: "a delete narrowed to ids over gRPC" }.into())
    }

    fn rewrite_delete(&self, route: &GrpcRoute, mut body: GrpcRequest, scope: Scope<'_>) -> Result<Outgoing<Then>, GrpcRequestError> {
        let send = |body: &GrpcRequest| Outgoing::Send { call: own(route, body), then: None };
        match scope {
            Scope::Nothing => {
                write::check_delete(&body)?;
                let done = proto::qdrant::PointsOperationResponse {
                    result: Some(proto::qdrant::UpdateResult { operation_id: None, status: proto::qdrant::UpdateStatus::Completed as i32 }),
                    ..Default::default()
                };
                Ok(Outgoing::Local(ok(&done.encode_to_vec())))
            }
            Scope::Everything => {
                write::check_delete(&body)?;
                Ok(send(&body))
            }
            Scope::Filter(_) => {
                let acl = acl(scope)?.ok_or_else(|| wrong(route))?;
                write::delete_within(&mut body, &acl)?;
                Ok(send(&body))
            }
            Scope::Unfiltered => Err(RequestError::Unsupported { what: "a delete without a filter" }.into()),
        }
    }

    fn stamp(&self, _route: &GrpcRoute, body: &mut GrpcRequest, stamps: &[(String, Json)], mapping: &FieldMapping) -> Result<(), GrpcRequestError> {
        write::stamp(body, stamps, &mapping.attr_prefix);
        Ok(())
    }

    fn describe_write(&self, _route: &GrpcRoute, body: &GrpcRequest) -> Result<WriteSet<PointId, PayloadChange>, GrpcRequestError> {
        write::describe(body)
    }

    fn ids_matching(&self, _route: &GrpcRoute, located: &Located, body: &GrpcRequest, scope: Scope<'_>, limit: usize) -> Result<Call, GrpcRequestError> {
        let scroll = write::ids_matching(body, &located.name, acl(scope)?.as_ref(), limit + 1)?;
        Ok(call(&GrpcRequest::PointsScroll(scroll)))
    }

    fn matched_ids(&self, answer: &[u8]) -> Result<Vec<PointId>, GrpcAnswerError> {
        answer::scrolled_ids(answer)
    }

    fn select_ids(&self, _route: &GrpcRoute, body: GrpcRequest, ids: &[PointId]) -> Result<GrpcRequest, GrpcRequestError> {
        write::select_ids(body, ids)
    }

    fn fetch_records(&self, located: &Located, ids: &[PointId]) -> Call {
        call(&GrpcRequest::PointsGet(write::fetch(&located.name, ids)))
    }

    /// `vecgate explain --id` reads records through the REST face; the gRPC face names a
    /// collection by its name alone, as Qdrant's gRPC API does.
    fn collection_by_name(&self, _name: &str) -> Option<Call> {
        None
    }

    fn located_by_name(&self, name: &str, _answer: Option<&[u8]>) -> Result<Located, GrpcAnswerError> {
        Ok(Located { name: name.to_string(), base: String::new() })
    }

    fn parse_id(&self, text: &str) -> Option<PointId> {
        PointId::parse(text)
    }

    fn fetched_records(&self, answer: &[u8]) -> Result<Records<Self>, GrpcAnswerError> {
        Ok(answer::retrieved(answer)?.into_iter().collect())
    }

    fn apply(&self, _route: &GrpcRoute, change: &PayloadChange, before: Option<&Payload>) -> Payload {
        payload_after(change, before)
    }

    fn attributes<'r>(&self, record: &'r Payload, mapping: &'r FieldMapping) -> Box<dyn RecordAttributes + 'r> {
        Box::new(NestedPayload::new(Some(record), &mapping.attr_prefix))
    }

    fn narrow_write(
        &self,
        route: &GrpcRoute,
        _located: &Located,
        _method: &Method,
        body: GrpcRequest,
        records: &[RecordWrite<PointId, PayloadChange>],
        narrowing: Narrowing<'_>,
    ) -> Result<Narrowed, GrpcRequestError> {
        Ok(match write::narrow(body, records, narrowing.left_out, narrowing.from_filter)? {
            write::NarrowedWrite::Missing(id) => Narrowed::Answer(self.missing_record(&id)),
            write::NarrowedWrite::Send { request, missing } => {
                Narrowed::Send { call: own(route, &request), instead: missing.map(|id| self.missing_record(&id)) }
            }
        })
    }

    fn guard_write(&self, _route: &GrpcRoute, mut body: GrpcRequest, update: &Json) -> Result<GrpcRequest, GrpcRequestError> {
        write::guard(&mut body, update)?;
        Ok(body)
    }

    fn filter_terms(&self, _route: &GrpcRoute, body: &GrpcRequest) -> usize {
        read::filter_terms(body)
    }

    fn call_filter_terms(&self, _route: &GrpcRoute, body: &Body) -> usize {
        match body {
            Body::Proto { filter_terms, .. } => *filter_terms,
            _ => 0,
        }
    }

    /// A gRPC status: the code for the HTTP status ([`code_for`]), the message as REST's.
    fn error_answer(&self, http: StatusCode, message: &str) -> Answer {
        let mut answer = status(code_for(http), message);
        answer.status = http;
        answer
    }
}
