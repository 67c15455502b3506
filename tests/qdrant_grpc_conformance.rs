//! Conformance of the Qdrant test double's gRPC face (tests/qdrant_server/grpc_api.py) with a
//! real Qdrant server's gRPC port: the same calls go to both, seeded alike, and the answers
//! must be equal — the status code and, for errors, the message's class (up to its first
//! `:`); for answers, what vecgate reads of them: point ids in order (ties in id order),
//! scores to 1e-4, payloads, next page offsets, counts, facet hits, matrices, group ids,
//! hits and lookups, and the update status of writes (each write followed by a full scroll,
//! so the stored state is compared too). `time`, `usage` and operation numbers are ignored.
//!
//! The calls are the ones vecgate sends for the gRPC tests and clients (its rewrites
//! included: filters ANDed into prefetches and batch entries, payload selectors forced, ids
//! as inputs, the no-op payload write, by-filter listings) and the errors vecgate relies on
//! (a missing point as input or as a write's target, a missing collection, an empty upsert).
//!
//! Runs when a real server is configured (`QDRANT_URL` or `QDRANT_BIN`); without one it
//! prints one line saying so and checks nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use prost::Message;
use serde_json::{json, Value};
use support::grpc::{Credential, GrpcClient};
use support::{QdrantKind, QdrantServer};
use vecgate::backends::qdrant::grpc::proto::qdrant as q;

const HR_UUID: &str = "5c56c793-69f3-4fbf-87e6-c4bf54c28c26";

fn doc(department: &str, level: i64, tags: &[&str]) -> Value {
    json!({"page_content": format!("{department} {level}"), "metadata": {"department": department, "level": level, "tags": tags}})
}

fn seed(server: &QdrantServer) {
    for name in ["docs", "other"] {
        server.create_collection(name, 2);
        server.upsert(
            name,
            &[
                (json!(1), vec![1.0, 0.0], doc("finance", 1, &["a"])),
                (json!(2), vec![0.9, 0.1], doc("finance", 2, &["a", "b"])),
                (json!(3), vec![0.0, 1.0], doc("hr", 2, &[])),
                (json!(HR_UUID), vec![0.1, 0.9], doc("hr", 1, &["c"])),
                (json!(5), vec![0.5, 0.5], doc("eng", 3, &["b"])),
            ],
        );
    }
    server.put_json("/collections/docs/index?wait=true", &json!({"field_name": "metadata.department", "field_schema": "keyword"})).unwrap();
}

fn num(n: u64) -> q::PointId {
    q::PointId { point_id_options: Some(q::point_id::PointIdOptions::Num(n)) }
}

fn uuid(u: &str) -> q::PointId {
    q::PointId { point_id_options: Some(q::point_id::PointIdOptions::Uuid(u.into())) }
}

fn id(p: &Option<q::PointId>) -> Value {
    match p.as_ref().and_then(|p| p.point_id_options.clone()) {
        Some(q::point_id::PointIdOptions::Num(n)) => json!(n),
        Some(q::point_id::PointIdOptions::Uuid(u)) => json!(u),
        None => Value::Null,
    }
}

fn value(v: &q::Value) -> Value {
    use q::value::Kind;
    match &v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::DoubleValue(d)) => json!(d),
        Some(Kind::IntegerValue(i)) => json!(i),
        Some(Kind::StringValue(s)) => json!(s),
        Some(Kind::BoolValue(b)) => json!(b),
        Some(Kind::StructValue(s)) => Value::Object(s.fields.iter().map(|(k, v)| (k.clone(), value(v))).collect()),
        Some(Kind::ListValue(l)) => Value::Array(l.values.iter().map(value).collect()),
    }
}

fn payload(p: &std::collections::BTreeMap<String, q::Value>) -> Value {
    Value::Object(p.iter().map(|(k, v)| (k.clone(), value(v))).collect())
}

fn to_proto(v: &Value) -> q::Value {
    use q::value::Kind;
    q::Value {
        kind: Some(match v {
            Value::Null => Kind::NullValue(0),
            Value::Bool(b) => Kind::BoolValue(*b),
            Value::Number(n) => n.as_i64().map_or_else(|| Kind::DoubleValue(n.as_f64().unwrap()), Kind::IntegerValue),
            Value::String(s) => Kind::StringValue(s.clone()),
            Value::Array(a) => Kind::ListValue(q::ListValue { values: a.iter().map(to_proto).collect() }),
            Value::Object(o) => Kind::StructValue(q::Struct { fields: o.iter().map(|(k, v)| (k.clone(), to_proto(v))).collect() }),
        }),
    }
}

fn proto_payload(v: &Value) -> std::collections::BTreeMap<String, q::Value> {
    v.as_object().unwrap().iter().map(|(k, v)| (k.clone(), to_proto(v))).collect()
}

/// Scored points as compared: id, score (rounded), payload; equal scores in id order.
fn scored(points: &[q::ScoredPoint]) -> Value {
    let mut rows: Vec<(f64, String, Value)> = points
        .iter()
        .map(|p| {
            let score = (f64::from(p.score) * 1e4).round() / 1e4;
            (score, id(&p.id).to_string(), json!({"id": id(&p.id), "score": score, "payload": payload(&p.payload)}))
        })
        .collect();
    rows.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap().then(a.1.cmp(&b.1)));
    Value::Array(rows.into_iter().map(|r| r.2).collect())
}

fn retrieved(points: &[q::RetrievedPoint]) -> Value {
    let mut rows: Vec<Value> = points.iter().map(|p| json!({"id": id(&p.id), "payload": payload(&p.payload)})).collect();
    rows.sort_by_key(|r| r["id"].to_string());
    Value::Array(rows)
}

fn groups(result: &Option<q::GroupsResult>) -> Value {
    let Some(result) = result else { return Value::Null };
    Value::Array(
        result
            .groups
            .iter()
            .map(|g| {
                let gid = match g.id.as_ref().and_then(|i| i.kind.clone()) {
                    Some(q::group_id::Kind::StringValue(s)) => json!(s),
                    Some(q::group_id::Kind::IntegerValue(i)) => json!(i),
                    Some(q::group_id::Kind::UnsignedValue(u)) => json!(u),
                    None => Value::Null,
                };
                json!({"id": gid, "hits": scored(&g.hits), "lookup": g.lookup.as_ref().map(|l| json!({"id": id(&l.id), "payload": payload(&l.payload)}))})
            })
            .collect(),
    )
}

/// What is compared of an answer.
trait Seen {
    fn seen(&self) -> Value;
}

macro_rules! seen {
    ($($t:ty => |$m:ident| $e:expr;)*) => {
        $(impl Seen for $t { fn seen(&self) -> Value { let $m = self; $e } })*
    };
}

seen! {
    q::QueryResponse => |m| scored(&m.result);
    q::SearchResponse => |m| scored(&m.result);
    q::RecommendResponse => |m| scored(&m.result);
    q::QueryBatchResponse => |m| Value::Array(m.result.iter().map(|b| scored(&b.result)).collect());
    q::SearchBatchResponse => |m| Value::Array(m.result.iter().map(|b| scored(&b.result)).collect());
    q::QueryGroupsResponse => |m| groups(&m.result);
    q::ScrollResponse => |m| json!({"points": retrieved(&m.result), "next": id(&m.next_page_offset)});
    q::GetResponse => |m| retrieved(&m.result);
    q::CountResponse => |m| json!(m.result.as_ref().map(|r| r.count));
    q::FacetResponse => |m| Value::Array(m.hits.iter().map(|h| json!([format!("{:?}", h.value), h.count])).collect());
    q::SearchMatrixPairsResponse => |m| json!(m.result.as_ref().map(|r| r.pairs.len()));
    q::SearchMatrixOffsetsResponse => |m| json!(m.result.as_ref().map(|r| (r.offsets_row.len(), r.ids.len())));
    q::PointsOperationResponse => |m| json!(m.result.as_ref().map(|r| r.status));
    q::UpdateBatchResponse => |m| Value::Array(m.result.iter().map(|r| json!(r.status)).collect());
    q::CollectionOperationResponse => |m| json!(m.result);
    q::CollectionExistsResponse => |m| json!(m.result.as_ref().map(|r| r.exists));
    q::ListCollectionsResponse => |m| { let mut n: Vec<String> = m.collections.iter().map(|c| c.name.clone()).collect(); n.sort(); json!(n) };
}

fn outcome<R: Seen>(answer: Result<R, tonic::Status>) -> Value {
    match answer {
        Ok(r) => json!({"ok": r.seen()}),
        Err(s) => json!({"code": format!("{:?}", s.code()), "class": s.message().split(':').next().unwrap_or("")}),
    }
}

struct Both {
    real: GrpcClient,
    double: GrpcClient,
    cases: usize,
    differences: Vec<String>,
}

impl Both {
    fn check<Req, Resp>(&mut self, name: &str, path: &'static str, request: Req)
    where
        Req: Message + Clone + Send + Sync + 'static,
        Resp: Message + Default + Send + Sync + Seen + 'static,
    {
        let want = outcome(self.real.call::<Req, Resp>(path, request.clone(), Credential::None));
        let got = outcome(self.double.call::<Req, Resp>(path, request, Credential::None));
        self.cases += 1;
        if !same(&want, &got) {
            self.differences.push(format!("{name} ({path})\n    real:   {want}\n    double: {got}"));
        }
    }

    /// A write, then the whole collection scrolled on both.
    fn write<Req, Resp>(&mut self, name: &str, path: &'static str, request: Req)
    where
        Req: Message + Clone + Send + Sync + 'static,
        Resp: Message + Default + Send + Sync + Seen + 'static,
    {
        self.check::<Req, Resp>(name, path, request);
        let all = q::ScrollPoints { collection_name: "docs".into(), limit: Some(100), ..Default::default() };
        self.check::<_, q::ScrollResponse>(&format!("{name}, then scroll"), "/qdrant.Points/Scroll", all);
    }
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => (x - y).abs() <= 1e-4 * x.abs().max(y.abs()).max(1.0),
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
        (Value::Object(x), Value::Object(y)) => x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w))),
        _ => a == b,
    }
}

fn keyword(key: &str, value: &str) -> q::Condition {
    q::Condition {
        condition_one_of: Some(q::condition::ConditionOneOf::Field(q::FieldCondition {
            key: key.into(),
            r#match: Some(q::Match { match_value: Some(q::r#match::MatchValue::Keyword(value.into())) }),
            ..Default::default()
        })),
    }
}

fn filter(conditions: Vec<q::Condition>) -> Option<q::Filter> {
    Some(q::Filter { must: conditions, ..Default::default() })
}

/// An ACL filter as vecgate ANDs it in.
fn acl(user: Option<q::Filter>) -> Option<q::Filter> {
    let acl = q::Filter { must: vec![keyword("metadata.department", "finance")], ..Default::default() };
    Some(match user {
        None => acl,
        Some(user) => q::Filter {
            must: vec![
                q::Condition { condition_one_of: Some(q::condition::ConditionOneOf::Filter(user)) },
                q::Condition { condition_one_of: Some(q::condition::ConditionOneOf::Filter(acl)) },
            ],
            ..Default::default()
        },
    })
}

fn nearest(v: &[f32]) -> Option<q::Query> {
    Some(q::Query { variant: Some(q::query::Variant::Nearest(q::VectorInput { variant: Some(q::vector_input::Variant::Dense(q::DenseVector { data: v.to_vec() })) })) })
}

fn by_id(p: q::PointId) -> Option<q::Query> {
    Some(q::Query { variant: Some(q::query::Variant::Nearest(q::VectorInput { variant: Some(q::vector_input::Variant::Id(p)) })) })
}

fn include(fields: &[&str]) -> Option<q::WithPayloadSelector> {
    Some(q::WithPayloadSelector {
        selector_options: Some(q::with_payload_selector::SelectorOptions::Include(q::PayloadIncludeSelector { fields: fields.iter().map(|f| (*f).to_string()).collect() })),
    })
}

fn enable(on: bool) -> Option<q::WithPayloadSelector> {
    Some(q::WithPayloadSelector { selector_options: Some(q::with_payload_selector::SelectorOptions::Enable(on)) })
}

fn ids(list: Vec<q::PointId>) -> Option<q::PointsSelector> {
    Some(q::PointsSelector { points_selector_one_of: Some(q::points_selector::PointsSelectorOneOf::Points(q::PointsIdsList { ids: list })) })
}

fn by_filter(f: Option<q::Filter>) -> Option<q::PointsSelector> {
    Some(q::PointsSelector { points_selector_one_of: Some(q::points_selector::PointsSelectorOneOf::Filter(f.unwrap_or_default())) })
}

fn point(n: u64, v: &[f32], p: &Value) -> q::PointStruct {
    q::PointStruct {
        id: Some(num(n)),
        payload: proto_payload(p),
        vectors: Some(q::Vectors { vectors_options: Some(q::vectors::VectorsOptions::Vector(q::Vector { vector: Some(q::vector::Vector::Dense(q::DenseVector { data: v.to_vec() })), ..Default::default() })) }),
    }
}

#[test]
fn the_double_answers_grpc_like_the_real_server() {
    let kind = QdrantKind::configured();
    if !kind.is_real() {
        eprintln!("qdrant gRPC conformance: not run (no real Qdrant given: set QDRANT_BIN or QDRANT_URL; scripts/test.sh finds one)");
        return;
    }
    let real = QdrantServer::start();
    let double = QdrantServer::start_double();
    seed(&real);
    seed(&double);
    let mut b = Both { real: GrpcClient::connect(real.grpc_url()), double: GrpcClient::connect(double.grpc_url()), cases: 0, differences: Vec::new() };
    let c = || "docs".to_string();

    // Reads, plain and as vecgate rewrites them.
    for (name, f) in [("no filter", None), ("acl", acl(None)), ("user filter and acl", acl(filter(vec![keyword("metadata.tags", "a")])))] {
        b.check::<_, q::QueryResponse>(&format!("query {name}"), "/qdrant.Points/Query", q::QueryPoints { collection_name: c(), query: nearest(&[1.0, 0.2]), filter: f.clone(), limit: Some(10), ..Default::default() });
        b.check::<_, q::QueryResponse>(&format!("query with payload include {name}"), "/qdrant.Points/Query", q::QueryPoints { collection_name: c(), query: nearest(&[0.2, 1.0]), filter: f.clone(), with_payload: include(&["metadata"]), limit: Some(10), ..Default::default() });
        b.check::<_, q::QueryResponse>(&format!("hybrid prefetch + RRF {name}"), "/qdrant.Points/Query", q::QueryPoints {
            collection_name: c(),
            prefetch: vec![
                q::PrefetchQuery { query: nearest(&[1.0, 0.0]), filter: f.clone(), limit: Some(10), ..Default::default() },
                q::PrefetchQuery { query: nearest(&[0.0, 1.0]), filter: f.clone(), limit: Some(10), ..Default::default() },
            ],
            query: Some(q::Query { variant: Some(q::query::Variant::Fusion(q::Fusion::Rrf as i32)) }),
            filter: f.clone(),
            limit: Some(10),
            ..Default::default()
        });
        b.check::<_, q::ScrollResponse>(&format!("scroll {name}"), "/qdrant.Points/Scroll", q::ScrollPoints { collection_name: c(), filter: f.clone(), limit: Some(2), ..Default::default() });
        b.check::<_, q::ScrollResponse>(&format!("scroll without payload {name}"), "/qdrant.Points/Scroll", q::ScrollPoints { collection_name: c(), filter: f.clone(), with_payload: enable(false), limit: Some(10), ..Default::default() });
        b.check::<_, q::CountResponse>(&format!("count {name}"), "/qdrant.Points/Count", q::CountPoints { collection_name: c(), filter: f.clone(), exact: Some(true), ..Default::default() });
        b.check::<_, q::SearchResponse>(&format!("search {name}"), "/qdrant.Points/Search", q::SearchPoints { collection_name: c(), vector: vec![1.0, 0.0], filter: f.clone(), limit: 10, with_payload: enable(true), ..Default::default() });
        b.check::<_, q::SearchBatchResponse>(&format!("search batch {name}"), "/qdrant.Points/SearchBatch", q::SearchBatchPoints {
            collection_name: c(),
            search_points: vec![
                q::SearchPoints { collection_name: c(), vector: vec![1.0, 0.0], filter: f.clone(), limit: 10, ..Default::default() },
                q::SearchPoints { collection_name: c(), vector: vec![0.0, 1.0], filter: f.clone(), limit: 2, ..Default::default() },
            ],
            ..Default::default()
        });
        b.check::<_, q::QueryBatchResponse>(&format!("query batch {name}"), "/qdrant.Points/QueryBatch", q::QueryBatchPoints {
            collection_name: c(),
            query_points: vec![
                q::QueryPoints { collection_name: c(), query: nearest(&[1.0, 0.0]), filter: f.clone(), limit: Some(10), ..Default::default() },
                q::QueryPoints { collection_name: c(), query: nearest(&[0.0, 1.0]), filter: f.clone(), limit: Some(10), ..Default::default() },
            ],
            ..Default::default()
        });
        b.check::<_, q::QueryGroupsResponse>(&format!("query groups with lookup {name}"), "/qdrant.Points/QueryGroups", q::QueryPointGroups {
            collection_name: c(),
            query: nearest(&[1.0, 0.3]),
            filter: f.clone(),
            group_by: "metadata.level".into(),
            limit: Some(5),
            group_size: Some(3),
            with_lookup: Some(q::WithLookup { collection: "other".into(), with_payload: include(&["metadata"]), with_vectors: None }),
            ..Default::default()
        });
        b.check::<_, q::FacetResponse>(&format!("facet {name}"), "/qdrant.Points/Facet", q::FacetCounts { collection_name: c(), key: "metadata.department".into(), filter: f.clone(), exact: Some(true), ..Default::default() });
        b.check::<_, q::SearchMatrixPairsResponse>(&format!("matrix pairs {name}"), "/qdrant.Points/SearchMatrixPairs", q::SearchMatrixPoints { collection_name: c(), filter: f.clone(), sample: Some(5), limit: Some(2), ..Default::default() });
        b.check::<_, q::SearchMatrixOffsetsResponse>(&format!("matrix offsets {name}"), "/qdrant.Points/SearchMatrixOffsets", q::SearchMatrixPoints { collection_name: c(), filter: f.clone(), sample: Some(5), limit: Some(2), ..Default::default() });
    }
    // Point ids as inputs: present, absent, in another collection.
    for (name, p) in [("present", num(1)), ("uuid", uuid(HR_UUID)), ("absent", num(999))] {
        b.check::<_, q::QueryResponse>(&format!("query by id {name}"), "/qdrant.Points/Query", q::QueryPoints { collection_name: c(), query: by_id(p.clone()), limit: Some(10), ..Default::default() });
        b.check::<_, q::RecommendResponse>(&format!("recommend by id {name}"), "/qdrant.Points/Recommend", q::RecommendPoints { collection_name: c(), positive: vec![p.clone()], limit: 10, ..Default::default() });
        b.check::<_, q::RecommendResponse>(&format!("recommend by id {name} from another collection"), "/qdrant.Points/Recommend", q::RecommendPoints {
            collection_name: c(),
            positive: vec![p.clone()],
            limit: 10,
            lookup_from: Some(q::LookupLocation { collection_name: "other".into(), ..Default::default() }),
            ..Default::default()
        });
    }
    b.check::<_, q::GetResponse>("retrieve without payload", "/qdrant.Points/Get", q::GetPoints { collection_name: c(), ids: vec![num(1), num(3), num(999)], ..Default::default() });
    b.check::<_, q::GetResponse>("retrieve with payload", "/qdrant.Points/Get", q::GetPoints { collection_name: c(), ids: vec![num(1), uuid(HR_UUID)], with_payload: enable(true), ..Default::default() });
    b.check::<_, q::QueryResponse>("missing collection", "/qdrant.Points/Query", q::QueryPoints { collection_name: "nope".into(), query: nearest(&[1.0, 0.0]), ..Default::default() });
    b.check::<_, q::CollectionExistsResponse>("collection exists", "/qdrant.Collections/CollectionExists", q::CollectionExistsRequest { collection_name: c() });
    b.check::<_, q::ListCollectionsResponse>("list collections", "/qdrant.Collections/List", q::ListCollectionsRequest {});

    // Writes (each followed by a scroll), and the answers vecgate relies on for missing points.
    let wait = Some(true);
    b.write::<_, q::PointsOperationResponse>("upsert", "/qdrant.Points/Upsert", q::UpsertPoints { collection_name: c(), wait, points: vec![point(10, &[0.3, 0.7], &doc("finance", 2, &["z"]))], ..Default::default() });
    b.write::<_, q::PointsOperationResponse>("empty upsert", "/qdrant.Points/Upsert", q::UpsertPoints { collection_name: c(), wait, ..Default::default() });
    b.write::<_, q::PointsOperationResponse>("upsert with update_filter", "/qdrant.Points/Upsert", q::UpsertPoints {
        collection_name: c(),
        wait,
        points: vec![point(1, &[1.0, 0.0], &doc("hr", 9, &[])), point(11, &[0.2, 0.2], &doc("finance", 1, &[]))],
        update_filter: acl(None),
        ..Default::default()
    });
    let set = |key: Option<&str>, selector| q::SetPayloadPoints { collection_name: c(), wait, payload: proto_payload(&json!({"seen": true})), key: key.map(String::from), points_selector: selector, ..Default::default() };
    b.write::<_, q::PointsOperationResponse>("set payload", "/qdrant.Points/SetPayload", set(None, ids(vec![num(1), num(2)])));
    b.write::<_, q::PointsOperationResponse>("set payload under a key", "/qdrant.Points/SetPayload", set(Some("metadata"), ids(vec![num(2)])));
    b.write::<_, q::PointsOperationResponse>("set payload on a missing point", "/qdrant.Points/SetPayload", set(None, ids(vec![num(2), num(998)])));
    b.write::<_, q::PointsOperationResponse>("set payload by filter", "/qdrant.Points/SetPayload", set(None, by_filter(acl(None))));
    b.write::<_, q::PointsOperationResponse>("the no-op payload write", "/qdrant.Points/SetPayload", q::SetPayloadPoints {
        collection_name: c(),
        wait,
        points_selector: by_filter(Some(q::Filter { must: vec![q::Condition { condition_one_of: Some(q::condition::ConditionOneOf::HasId(q::HasIdCondition::default())) }], ..Default::default() })),
        ..Default::default()
    });
    b.write::<_, q::PointsOperationResponse>("overwrite payload", "/qdrant.Points/OverwritePayload", q::SetPayloadPoints { collection_name: c(), wait, payload: proto_payload(&doc("eng", 1, &[])), points_selector: ids(vec![num(5)]), ..Default::default() });
    b.write::<_, q::PointsOperationResponse>("delete payload", "/qdrant.Points/DeletePayload", q::DeletePayloadPoints { collection_name: c(), wait, keys: vec!["seen".into(), "metadata.tags".into()], points_selector: ids(vec![num(1), num(2)]), ..Default::default() });
    b.write::<_, q::PointsOperationResponse>("delete payload of a missing point", "/qdrant.Points/DeletePayload", q::DeletePayloadPoints { collection_name: c(), wait, keys: vec!["seen".into()], points_selector: ids(vec![num(997)]), ..Default::default() });
    b.write::<_, q::PointsOperationResponse>("clear payload", "/qdrant.Points/ClearPayload", q::ClearPayloadPoints { collection_name: c(), wait, points: ids(vec![num(11)]), ..Default::default() });
    b.write::<_, q::PointsOperationResponse>("update vectors of a missing point", "/qdrant.Points/UpdateVectors", q::UpdatePointVectors {
        collection_name: c(),
        wait,
        points: vec![q::PointVectors { id: Some(num(996)), vectors: point(996, &[1.0, 1.0], &json!({})).vectors }],
        ..Default::default()
    });
    b.write::<_, q::UpdateBatchResponse>("batch", "/qdrant.Points/UpdateBatch", q::UpdateBatchPoints {
        collection_name: c(),
        wait,
        operations: vec![
            q::PointsUpdateOperation { operation: Some(q::points_update_operation::Operation::Upsert(q::points_update_operation::PointStructList { points: vec![point(12, &[0.6, 0.4], &doc("hr", 1, &[]))], ..Default::default() })) },
            q::PointsUpdateOperation { operation: Some(q::points_update_operation::Operation::ClearPayload(q::points_update_operation::ClearPayload { points: ids(vec![num(12)]), ..Default::default() })) },
        ],
        ..Default::default()
    });
    b.write::<_, q::PointsOperationResponse>("delete by ids within a filter", "/qdrant.Points/Delete", q::DeletePoints {
        collection_name: c(),
        wait,
        points: by_filter(acl(Some(q::Filter { must: vec![q::Condition { condition_one_of: Some(q::condition::ConditionOneOf::HasId(q::HasIdCondition { has_id: vec![num(10), num(3)] })) }], ..Default::default() }))),
        ..Default::default()
    });

    eprintln!(
        "qdrant gRPC conformance: double's gRPC face vs real Qdrant {} ({}): {} calls, {} equal, {} differ",
        real.version(),
        kind.describe(),
        b.cases,
        b.cases - b.differences.len(),
        b.differences.len()
    );
    assert!(b.differences.is_empty(), "{} answers differ:\n{}", b.differences.len(), b.differences.join("\n"));
}
