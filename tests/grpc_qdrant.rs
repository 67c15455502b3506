//! vecgate's gRPC listener in front of a Qdrant's gRPC port: the real server when one is given
//! (`QDRANT_URL`/`QDRANT_BIN`), else the Qdrant test double's gRPC face. Every method class of
//! the method table through the one pipeline: reads filtered everywhere (prefetches, batches,
//! groups, lookups), point ids as inputs checked (`lookup_from` included) and answered as
//! Qdrant answers a missing point, retrieves post-filtered, writes through the one write rule,
//! collections as kind `collection`, admin methods as `vecgate:admin`, unknown methods refused;
//! credentials from metadata, never forwarded; refusals as gRPC statuses with REST's messages;
//! limits, audit, metrics and shadow mode.
//!
//! "Nothing reached the database" is read from vecgate's own count of upstream exchanges
//! (`vecgate_upstream_duration_seconds_count`), which every exchange with either face updates;
//! the stored points are read back directly from the database (REST) to prove what changed.
//! Principals: alice (finance) and bob (hr), `tests/fixtures/proxy/policies` (read: own
//! department; create/update: own department and level <= 3; delete: own points).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use prost::Message;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use support::grpc::{frame, raw_tls, Credential, GrpcClient};
use support::pki::{client_config, TestCa};
use support::vecgate::{token, VecgateOptions, VecgateServer};
use support::{repo_root, QdrantServer};
use tonic::Code;
use vecgate::backends::qdrant::grpc::proto::qdrant as q;

const HR_UUID: &str = "5c56c793-69f3-4fbf-87e6-c4bf54c28c26";

fn alice() -> String {
    token("alice", &["user"], &json!({"department": "finance"}))
}

fn bob() -> String {
    token("bob", &["user"], &json!({"department": "hr"}))
}

fn root() -> String {
    token("root", &["admin"], &json!({}))
}

fn doc(department: &str, level: i64, owner: &str) -> Value {
    json!({"page_content": format!("{department} note"), "metadata": {"department": department, "level": level, "owner": owner}})
}

struct Gate {
    qdrant: QdrantServer,
    vecgate: VecgateServer,
    grpc: GrpcClient,
    /// Straight to the database's gRPC port (no vecgate), for reference answers.
    direct: GrpcClient,
}

/// `docs` (finance: 1, 2; hr: 3, HR_UUID) and `docs_b` (hr: 1, 7; finance: 2, 8), vecgate with
/// a gRPC listener in front.
fn gate_with(options: impl FnOnce(&mut VecgateOptions)) -> Gate {
    let qdrant = QdrantServer::start();
    seed(&qdrant);
    let mut opts = VecgateOptions::qdrant(qdrant.url(), &repo_root().join("tests/fixtures/proxy/policies"));
    opts.upstream_grpc_url = Some(qdrant.grpc_url().to_string());
    options(&mut opts);
    let vecgate = VecgateServer::start(&opts);
    let grpc = GrpcClient::connect(vecgate.grpc_url());
    let direct = GrpcClient::connect(qdrant.grpc_url());
    Gate { qdrant, vecgate, grpc, direct }
}

fn seed(qdrant: &QdrantServer) {
    qdrant.create_collection("docs", 2);
    qdrant.upsert(
        "docs",
        &[
            (json!(1), vec![1.0, 0.0], doc("finance", 1, "alice")),
            (json!(2), vec![0.9, 0.1], doc("finance", 2, "carol")),
            (json!(3), vec![0.0, 1.0], doc("hr", 2, "bob")),
            (json!(HR_UUID), vec![0.1, 0.9], doc("hr", 1, "dave")),
        ],
    );
    qdrant.create_collection("docs_b", 2);
    qdrant.upsert(
        "docs_b",
        &[
            (json!(1), vec![0.0, 1.0], doc("hr", 1, "bob")),
            (json!(2), vec![1.0, 0.0], doc("finance", 2, "alice")),
            (json!(7), vec![0.0, 1.0], doc("hr", 1, "bob")),
            (json!(8), vec![1.0, 0.0], doc("finance", 1, "alice")),
        ],
    );
}

fn gate() -> Gate {
    gate_with(|_| {})
}

impl Gate {
    fn upstream_exchanges(&self) -> f64 {
        self.vecgate.metric_sum("vecgate_upstream_duration_seconds_count")
    }

    /// The stored payload of a point, read directly (REST).
    fn stored(&self, collection: &str, id: Value) -> Option<Value> {
        let got = self.qdrant.result("POST", &format!("/collections/{collection}/points"), Some(&json!({"ids": [id], "with_payload": true})));
        got.as_array().unwrap().first().map(|p| p["payload"].clone())
    }
}

fn num(n: u64) -> q::PointId {
    q::PointId { point_id_options: Some(q::point_id::PointIdOptions::Num(n)) }
}

fn uuid(u: &str) -> q::PointId {
    q::PointId { point_id_options: Some(q::point_id::PointIdOptions::Uuid(u.to_string())) }
}

fn id_text(id: &Option<q::PointId>) -> String {
    match id.as_ref().and_then(|i| i.point_id_options.clone()) {
        Some(q::point_id::PointIdOptions::Num(n)) => n.to_string(),
        Some(q::point_id::PointIdOptions::Uuid(u)) => u,
        None => "?".into(),
    }
}

fn scored_ids(points: &[q::ScoredPoint]) -> BTreeSet<String> {
    points.iter().map(|p| id_text(&p.id)).collect()
}

fn retrieved_ids(points: &[q::RetrievedPoint]) -> BTreeSet<String> {
    points.iter().map(|p| id_text(&p.id)).collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).to_string()).collect()
}

fn dense(v: &[f32]) -> q::VectorInput {
    q::VectorInput { variant: Some(q::vector_input::Variant::Dense(q::DenseVector { data: v.to_vec() })) }
}

fn nearest(input: q::VectorInput) -> Option<q::Query> {
    Some(q::Query { variant: Some(q::query::Variant::Nearest(input)) })
}

fn by_id(id: q::PointId) -> q::VectorInput {
    q::VectorInput { variant: Some(q::vector_input::Variant::Id(id)) }
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

fn payload_on() -> Option<q::WithPayloadSelector> {
    Some(q::WithPayloadSelector { selector_options: Some(q::with_payload_selector::SelectorOptions::Enable(true)) })
}

fn value(v: &Value) -> q::Value {
    use q::value::Kind;
    q::Value {
        kind: Some(match v {
            Value::Null => Kind::NullValue(0),
            Value::Bool(b) => Kind::BoolValue(*b),
            Value::Number(n) => n.as_i64().map_or_else(|| Kind::DoubleValue(n.as_f64().unwrap()), Kind::IntegerValue),
            Value::String(s) => Kind::StringValue(s.clone()),
            Value::Array(a) => Kind::ListValue(q::ListValue { values: a.iter().map(value).collect() }),
            Value::Object(o) => Kind::StructValue(q::Struct { fields: o.iter().map(|(k, v)| (k.clone(), value(v))).collect() }),
        }),
    }
}

fn payload(v: &Value) -> std::collections::BTreeMap<String, q::Value> {
    v.as_object().unwrap().iter().map(|(k, v)| (k.clone(), value(v))).collect()
}

fn point(id: q::PointId, vector: &[f32], p: &Value) -> q::PointStruct {
    q::PointStruct {
        id: Some(id),
        payload: payload(p),
        vectors: Some(q::Vectors {
            vectors_options: Some(q::vectors::VectorsOptions::Vector(q::Vector {
                vector: Some(q::vector::Vector::Dense(q::DenseVector { data: vector.to_vec() })),
                ..Default::default()
            })),
        }),
    }
}

fn ids_selector(ids: Vec<q::PointId>) -> Option<q::PointsSelector> {
    Some(q::PointsSelector { points_selector_one_of: Some(q::points_selector::PointsSelectorOneOf::Points(q::PointsIdsList { ids })) })
}

#[test]
fn reads_are_filtered_everywhere_and_ids_as_inputs_look_missing() {
    let g = gate();
    let (a, b) = (alice(), bob());
    let alice = Credential::ApiKey(&a);
    let bob = Credential::Bearer(&b);

    // Query with prefetches fused by RRF, under a user filter: every level filtered.
    let hybrid = q::QueryPoints {
        collection_name: "docs".into(),
        prefetch: vec![
            q::PrefetchQuery { query: nearest(dense(&[1.0, 0.0])), limit: Some(10), ..Default::default() },
            q::PrefetchQuery {
                query: nearest(dense(&[0.0, 1.0])),
                limit: Some(10),
                prefetch: vec![q::PrefetchQuery { query: nearest(dense(&[0.5, 0.5])), limit: Some(10), ..Default::default() }],
                ..Default::default()
            },
        ],
        query: Some(q::Query { variant: Some(q::query::Variant::Fusion(q::Fusion::Rrf as i32)) }),
        limit: Some(10),
        ..Default::default()
    };
    let got: q::QueryResponse = g.grpc.call("/qdrant.Points/Query", hybrid.clone(), alice).unwrap();
    assert_eq!(scored_ids(&got.result), set(&["1", "2"]));
    let got: q::QueryResponse = g.grpc.call("/qdrant.Points/Query", hybrid, bob).unwrap();
    assert_eq!(scored_ids(&got.result), set(&["3", HR_UUID]));
    for hit in &got.result {
        assert!(hit.payload.is_empty(), "payload not trimmed back: {hit:?}");
    }

    // Scroll (payload by default), count, search, search batch, recommend batch, query batch.
    let scroll: q::ScrollResponse =
        g.grpc.call("/qdrant.Points/Scroll", q::ScrollPoints { collection_name: "docs".into(), limit: Some(10), ..Default::default() }, alice).unwrap();
    assert_eq!(retrieved_ids(&scroll.result), set(&["1", "2"]));
    assert_eq!(scroll.result[0].payload, payload(&doc("finance", 1, "alice")), "the stored payload, untouched");
    let count: q::CountResponse =
        g.grpc.call("/qdrant.Points/Count", q::CountPoints { collection_name: "docs".into(), exact: Some(true), ..Default::default() }, bob).unwrap();
    assert_eq!(count.result.unwrap().count, 2);
    let search = |v: &[f32]| q::SearchPoints { collection_name: "docs".into(), vector: v.to_vec(), limit: 10, ..Default::default() };
    let got: q::SearchResponse = g.grpc.call("/qdrant.Points/Search", search(&[0.0, 1.0]), alice).unwrap();
    assert_eq!(scored_ids(&got.result), set(&["1", "2"]));
    let batch = q::SearchBatchPoints { collection_name: "docs".into(), search_points: vec![search(&[1.0, 0.0]), search(&[0.0, 1.0])], ..Default::default() };
    let got: q::SearchBatchResponse = g.grpc.call("/qdrant.Points/SearchBatch", batch, bob).unwrap();
    assert_eq!(got.result.len(), 2);
    for entry in &got.result {
        assert_eq!(scored_ids(&entry.result), set(&["3", HR_UUID]));
    }
    let query_batch = q::QueryBatchPoints {
        collection_name: "docs".into(),
        query_points: vec![
            q::QueryPoints { collection_name: "docs".into(), query: nearest(dense(&[1.0, 0.0])), limit: Some(10), ..Default::default() },
            q::QueryPoints {
                collection_name: "docs".into(),
                query: nearest(dense(&[0.0, 1.0])),
                filter: Some(q::Filter { must: vec![keyword("metadata.owner", "carol")], ..Default::default() }),
                limit: Some(10),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let got: q::QueryBatchResponse = g.grpc.call("/qdrant.Points/QueryBatch", query_batch.clone(), alice).unwrap();
    assert_eq!(scored_ids(&got.result[0].result), set(&["1", "2"]));
    assert_eq!(scored_ids(&got.result[1].result), set(&["2"]));
    // A batch entry naming another collection is refused, not trusted either way.
    let mut foreign = query_batch;
    foreign.query_points[1].collection_name = "docs_b".into();
    let refused = g.grpc.call::<_, q::QueryBatchResponse>("/qdrant.Points/QueryBatch", foreign, alice).unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");

    // Retrieve: post-filtered, the other department's point as if missing.
    let get = q::GetPoints { collection_name: "docs".into(), ids: vec![num(1), num(3), uuid(HR_UUID), num(99)], with_payload: payload_on(), ..Default::default() };
    let got: q::GetResponse = g.grpc.call("/qdrant.Points/Get", get.clone(), alice).unwrap();
    assert_eq!(retrieved_ids(&got.result), set(&["1"]));
    let got: q::GetResponse = g.grpc.call("/qdrant.Points/Get", get, bob).unwrap();
    assert_eq!(retrieved_ids(&got.result), set(&["3", HR_UUID]));

    // A point id as an input: readable → used; hidden → exactly what Qdrant answers for a
    // point it does not have (asked directly, without vecgate).
    let missing = g
        .direct
        .call::<_, q::QueryResponse>("/qdrant.Points/Query", q::QueryPoints { collection_name: "docs".into(), query: nearest(by_id(num(999))), limit: Some(3), ..Default::default() }, Credential::None)
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let by = |id: q::PointId| q::QueryPoints { collection_name: "docs".into(), query: nearest(by_id(id)), limit: Some(10), ..Default::default() };
    let got: q::QueryResponse = g.grpc.call("/qdrant.Points/Query", by(num(1)), alice).unwrap();
    assert_eq!(scored_ids(&got.result), set(&["2"]));
    for (id, text) in [(num(3), "3"), (uuid(HR_UUID), HR_UUID), (num(999), "999")] {
        let hidden = g.grpc.call::<_, q::QueryResponse>("/qdrant.Points/Query", by(id), alice).unwrap_err();
        assert_eq!((hidden.code(), hidden.message()), (Code::NotFound, missing.message().replace("999", text).as_str()));
    }
    // The same in a prefetch, in recommend and discover inputs.
    let in_prefetch = q::QueryPoints {
        collection_name: "docs".into(),
        prefetch: vec![q::PrefetchQuery { query: nearest(by_id(num(3))), limit: Some(5), ..Default::default() }],
        query: nearest(dense(&[1.0, 0.0])),
        limit: Some(5),
        ..Default::default()
    };
    assert_eq!(g.grpc.call::<_, q::QueryResponse>("/qdrant.Points/Query", in_prefetch, alice).unwrap_err().code(), Code::NotFound);
    let recommend = q::RecommendPoints { collection_name: "docs".into(), positive: vec![num(3)], limit: 5, ..Default::default() };
    assert_eq!(g.grpc.call::<_, q::RecommendResponse>("/qdrant.Points/Recommend", recommend.clone(), alice).unwrap_err().code(), Code::NotFound);
    let got: q::RecommendResponse = g.grpc.call("/qdrant.Points/Recommend", recommend, bob).unwrap();
    assert_eq!(scored_ids(&got.result), set(&[HR_UUID]));
    let discover = q::DiscoverPoints {
        collection_name: "docs".into(),
        target: Some(q::TargetVector { target: Some(q::target_vector::Target::Single(q::VectorExample { example: Some(q::vector_example::Example::Id(uuid(HR_UUID))) })) }),
        limit: 5,
        ..Default::default()
    };
    assert_eq!(g.grpc.call::<_, q::DiscoverResponse>("/qdrant.Points/Discover", discover, alice).unwrap_err().code(), Code::NotFound);

    // lookup_from: the id is read from docs_b under docs_b's plan. Id 1 there is hr.
    let lookup = |id: q::PointId| q::RecommendPoints {
        collection_name: "docs".into(),
        positive: vec![id],
        limit: 5,
        lookup_from: Some(q::LookupLocation { collection_name: "docs_b".into(), ..Default::default() }),
        ..Default::default()
    };
    assert_eq!(g.grpc.call::<_, q::RecommendResponse>("/qdrant.Points/Recommend", lookup(num(1)), alice).unwrap_err().code(), Code::NotFound);
    let got: q::RecommendResponse = g.grpc.call("/qdrant.Points/Recommend", lookup(num(8)), alice).unwrap();
    assert_eq!(scored_ids(&got.result), set(&["1", "2"]));

    // Groups with a lookup into docs_b: hits and lookups each judged by their own plan.
    let groups = q::QueryPointGroups {
        collection_name: "docs".into(),
        query: nearest(dense(&[1.0, 0.0])),
        group_by: "metadata.level".into(),
        limit: Some(10),
        group_size: Some(5),
        with_lookup: Some(q::WithLookup { collection: "docs_b".into(), with_payload: payload_on(), with_vectors: None }),
        ..Default::default()
    };
    let got: q::QueryGroupsResponse = g.grpc.call("/qdrant.Points/QueryGroups", groups, alice).unwrap();
    let result = got.result.unwrap();
    let hits: BTreeSet<String> = result.groups.iter().flat_map(|g| scored_ids(&g.hits)).collect();
    assert_eq!(hits, set(&["1", "2"]));
    // Group "1" looks up docs_b's point 1 (hr): removed; group "2" its point 2 (finance): kept.
    assert_eq!(result.groups.iter().filter(|g| g.lookup.is_some()).count(), 1, "{result:?}");
    for group in &result.groups {
        if let Some(lookup) = &group.lookup {
            let dept = match &lookup.payload["metadata"].kind {
                Some(q::value::Kind::StructValue(s)) => s.fields["department"].clone(),
                other => panic!("{other:?}"),
            };
            assert_eq!(dept, value(&json!("finance")), "a lookup record of another department came back: {lookup:?}");
        }
    }
}

#[test]
fn writes_go_through_the_one_write_rule() {
    let g = gate();
    let (a, b) = (alice(), bob());
    let alice = Credential::ApiKey(&a);
    let bob = Credential::Bearer(&b);
    let upsert = |points: Vec<q::PointStruct>| q::UpsertPoints { collection_name: "docs".into(), wait: Some(true), points, ..Default::default() };

    // Own department, allowed level: written.
    let ok: q::PointsOperationResponse = g.grpc.call("/qdrant.Points/Upsert", upsert(vec![point(num(10), &[1.0, 0.0], &doc("finance", 2, "alice"))]), alice).unwrap();
    assert!(ok.result.is_some());
    assert_eq!(g.stored("docs", json!(10)), Some(doc("finance", 2, "alice")));
    // Another department, or a batch with one forbidden record: nothing written.
    let before = g.upstream_exchanges();
    let refused = g
        .grpc
        .call::<_, q::PointsOperationResponse>("/qdrant.Points/Upsert", upsert(vec![point(num(11), &[1.0, 0.0], &doc("finance", 1, "alice")), point(num(12), &[1.0, 0.0], &doc("hr", 1, "alice"))]), alice)
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(refused.message().contains("record writes are not allowed"), "{refused:?}");
    assert_eq!((g.stored("docs", json!(11)), g.stored("docs", json!(12))), (None, None));
    // Only the lookup of the points as they are went out (no write).
    assert_eq!(g.upstream_exchanges() - before, 1.0);

    // Escalation: moving one's own point to another department (WITH CHECK).
    let move_away = q::SetPayloadPoints {
        collection_name: "docs".into(),
        wait: Some(true),
        payload: payload(&json!({"department": "hr"})),
        key: Some("metadata".into()),
        points_selector: ids_selector(vec![num(1)]),
        ..Default::default()
    };
    assert_eq!(g.grpc.call::<_, q::PointsOperationResponse>("/qdrant.Points/SetPayload", move_away, alice).unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(g.stored("docs", json!(1)), Some(doc("finance", 1, "alice")));
    // Removing a required attribute.
    let strip = q::DeletePayloadPoints { collection_name: "docs".into(), wait: Some(true), keys: vec!["metadata.department".into()], points_selector: ids_selector(vec![num(1)]), ..Default::default() };
    assert_eq!(g.grpc.call::<_, q::PointsOperationResponse>("/qdrant.Points/DeletePayload", strip, alice).unwrap_err().code(), Code::PermissionDenied);

    // A change of a point the caller may not read is answered as a change of a missing one,
    // exactly as the database answers it (asked directly about an id it does not have).
    let touch = |id: q::PointId| q::SetPayloadPoints {
        collection_name: "docs".into(),
        wait: Some(true),
        payload: payload(&json!({"seen": true})),
        points_selector: ids_selector(vec![id]),
        ..Default::default()
    };
    let missing = g.direct.call::<_, q::PointsOperationResponse>("/qdrant.Points/SetPayload", touch(num(999)), Credential::None).unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let hidden = g.grpc.call::<_, q::PointsOperationResponse>("/qdrant.Points/SetPayload", touch(num(3)), alice).unwrap_err();
    assert_eq!((hidden.code(), hidden.message()), (Code::NotFound, missing.message().replace("999", "3").as_str()));
    assert_eq!(g.stored("docs", json!(3)), Some(doc("hr", 2, "bob")), "the hidden point is untouched");
    let absent = g.grpc.call::<_, q::PointsOperationResponse>("/qdrant.Points/SetPayload", touch(num(999)), alice).unwrap_err();
    assert_eq!((absent.code(), absent.message()), (missing.code(), missing.message()));

    // By filter: narrowed to the points the caller may update.
    let everyone = q::SetPayloadPoints {
        collection_name: "docs".into(),
        wait: Some(true),
        payload: payload(&json!({"reviewed": true})),
        points_selector: Some(q::PointsSelector { points_selector_one_of: Some(q::points_selector::PointsSelectorOneOf::Filter(q::Filter::default())) }),
        ..Default::default()
    };
    let _: q::PointsOperationResponse = g.grpc.call("/qdrant.Points/SetPayload", everyone, bob).unwrap();
    assert_eq!(g.stored("docs", json!(3)).unwrap()["reviewed"], json!(true));
    assert_eq!(g.stored("docs", json!(1)).unwrap().get("reviewed"), None, "another department's point was not touched");

    // UpdateBatch: one forbidden operation refuses the whole batch.
    let batch = q::UpdateBatchPoints {
        collection_name: "docs".into(),
        wait: Some(true),
        operations: vec![
            q::PointsUpdateOperation { operation: Some(q::points_update_operation::Operation::Upsert(q::points_update_operation::PointStructList { points: vec![point(num(20), &[0.0, 1.0], &doc("hr", 1, "bob"))], ..Default::default() })) },
            q::PointsUpdateOperation { operation: Some(q::points_update_operation::Operation::OverwritePayload(q::points_update_operation::OverwritePayload { payload: payload(&doc("hr", 9, "bob")), points_selector: ids_selector(vec![num(3)]), ..Default::default() })) },
        ],
        ..Default::default()
    };
    assert_eq!(g.grpc.call::<_, q::UpdateBatchResponse>("/qdrant.Points/UpdateBatch", batch, bob).unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(g.stored("docs", json!(20)), None);

    // Deletes: only what the caller may delete (own points) goes.
    let delete = q::DeletePoints { collection_name: "docs".into(), wait: Some(true), points: ids_selector(vec![num(1), num(2), num(3)]), ..Default::default() };
    let _: q::PointsOperationResponse = g.grpc.call("/qdrant.Points/Delete", delete, alice).unwrap();
    assert_eq!(g.stored("docs", json!(1)), None, "alice's own point is deleted");
    assert!(g.stored("docs", json!(2)).is_some(), "carol's point stays");
    assert!(g.stored("docs", json!(3)).is_some(), "bob's point stays");
}

#[test]
fn collections_admin_and_unknown_methods() {
    let g = gate();
    let (a, r) = (alice(), root());
    let alice = Credential::ApiKey(&a);
    let admin = Credential::Bearer(&r);

    // Collections are resource kind `collection`: alice may read "docs*", not others.
    let info: q::GetCollectionInfoResponse = g.grpc.call("/qdrant.Collections/Get", q::GetCollectionInfoRequest { collection_name: "docs".into() }, alice).unwrap();
    assert!(info.result.is_some());
    g.qdrant.create_collection("secret", 2);
    assert_eq!(
        g.grpc.call::<_, q::GetCollectionInfoResponse>("/qdrant.Collections/Get", q::GetCollectionInfoRequest { collection_name: "secret".into() }, alice).unwrap_err().code(),
        Code::PermissionDenied
    );
    let listed: q::ListCollectionsResponse = g.grpc.call("/qdrant.Collections/List", q::ListCollectionsRequest {}, alice).unwrap();
    let names: BTreeSet<String> = listed.collections.iter().map(|c| c.name.clone()).collect();
    assert_eq!(names, set(&["docs", "docs_b"]), "the listing keeps the collections alice may read");
    let delete = q::DeleteCollection { collection_name: "docs".into(), ..Default::default() };
    assert_eq!(g.grpc.call::<_, q::CollectionOperationResponse>("/qdrant.Collections/Delete", delete, alice).unwrap_err().code(), Code::PermissionDenied);

    // Admin methods: vecgate:admin. A user is refused without anything reaching the database.
    let before = g.upstream_exchanges();
    let snapshot = q::CreateSnapshotRequest { collection_name: "docs".into() };
    let refused = g.grpc.call::<_, q::CreateSnapshotResponse>("/qdrant.Snapshots/Create", snapshot, alice).unwrap_err();
    assert_eq!((refused.code(), refused.message()), (Code::PermissionDenied, "access denied: vecgate:admin action create_snapshot is not allowed"));
    let aliases = q::ChangeAliases::default();
    assert_eq!(g.grpc.call::<_, q::CollectionOperationResponse>("/qdrant.Collections/UpdateAliases", aliases, alice).unwrap_err().code(), Code::PermissionDenied);
    let cluster = q::CollectionClusterInfoRequest { collection_name: "docs".into() };
    assert_eq!(g.grpc.call::<_, q::CollectionClusterInfoResponse>("/qdrant.Collections/CollectionClusterInfo", cluster, alice).unwrap_err().code(), Code::PermissionDenied);
    // Unknown methods (internal services, misspellings): refused for everyone, admin too.
    for path in ["/qdrant.PointsInternal/Upsert", "/qdrant.Raft/SendMessage", "/qdrant.Points/upsert", "/qdrant.Points/Upsert/x", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"] {
        for token in [&a, &r] {
            let answer = g.grpc.raw(path, frame(&[]), &[("authorization", &format!("Bearer {token}"))]);
            assert_eq!((answer.http_status, answer.code), (200, Some(Code::PermissionDenied)), "{path}: {answer:?}");
            assert!(answer.message.starts_with("vecgate does not allow this route"), "{path}: {answer:?}");
        }
    }
    assert_eq!(g.upstream_exchanges(), before, "an admin method or an unknown one reached the database");
    // The admin may (the real server answers; the double has no snapshots: its answer comes back).
    let listed = g.grpc.call::<_, q::ListSnapshotsResponse>("/qdrant.Snapshots/List", q::ListSnapshotsRequest { collection_name: "docs".into() }, admin);
    if g.qdrant.kind().is_real() {
        assert!(listed.is_ok(), "{listed:?}");
    } else {
        assert_eq!(listed.unwrap_err().code(), Code::Unimplemented);
    }
    assert!(g.upstream_exchanges() > before);

    // Health needs no token.
    let health: q::HealthCheckReply = g.grpc.call("/qdrant.Qdrant/HealthCheck", q::HealthCheckRequest {}, Credential::None).unwrap();
    assert!(health.title.contains("qdrant"), "{health:?}");
}

#[test]
fn credentials_come_from_metadata_and_are_never_forwarded() {
    const KEY: &str = "the-database-key-0123456789";
    // The database requires its own key: vecgate adds it; the client's token is not it.
    let qdrant = QdrantServer::start_with_api_key(KEY);
    let mut opts = VecgateOptions::qdrant(qdrant.url(), &repo_root().join("tests/fixtures/proxy/policies"));
    opts.upstream_grpc_url = Some(qdrant.grpc_url().to_string());
    opts.upstream_api_key = Some(KEY.to_string());
    let vecgate = VecgateServer::start(&opts);
    let grpc = GrpcClient::connect(vecgate.grpc_url());
    let root = root();
    let create = q::CreateCollection {
        collection_name: "docs".into(),
        vectors_config: Some(q::VectorsConfig { config: Some(q::vectors_config::Config::Params(q::VectorParams { size: 2, distance: q::Distance::Cosine as i32, ..Default::default() })) }),
        ..Default::default()
    };
    let _: q::CollectionOperationResponse =
        grpc.call("/qdrant.Collections/Create", create, Credential::ApiKey(&root)).unwrap_or_else(|e| panic!("{e:?}\n{}", vecgate.log_tail()));
    let a = alice();
    let count = q::CountPoints { collection_name: "docs".into(), ..Default::default() };
    for credential in [Credential::ApiKey(&a), Credential::Bearer(&a)] {
        let got: q::CountResponse = grpc.call("/qdrant.Points/Count", count.clone(), credential).unwrap();
        assert_eq!(got.result.unwrap().count, 0);
    }
    // Without a token, with a bad one, or with the database's own key: UNAUTHENTICATED, as
    // REST answers 401.
    for credential in [Credential::None, Credential::Bearer("not-a-jwt"), Credential::ApiKey(KEY)] {
        let refused = grpc.call::<_, q::CountResponse>("/qdrant.Points/Count", count.clone(), credential).unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{credential:?}: {refused:?}");
        assert!(refused.message().starts_with("authentication failed"), "{refused:?}");
    }
    // Two different tokens in one call are not a credential either.
    let b = bob();
    let both = grpc.call_with::<_, q::CountResponse>("/qdrant.Points/Count", count.clone(), Credential::ApiKey(&a), &[("authorization", &format!("Bearer {b}"))]);
    assert_eq!(both.unwrap_err().code(), Code::Unauthenticated);
    // Metadata that would steer a proxy or the database is not forwarded: the call is the same.
    let steered: q::CountResponse = grpc
        .call_with("/qdrant.Points/Count", count, Credential::ApiKey(&a), &[("x-forwarded-host", "qdrant"), ("x-http-method-override", "DELETE"), ("te", "gzip")])
        .unwrap();
    assert_eq!(steered.result.unwrap().count, 0);
}

#[test]
fn malformed_and_oversized_calls_are_refused_before_the_database() {
    let g = gate_with(|o| o.extra_yaml = "limits:\n  max_body_bytes: 4096\n  max_filter_terms: 20\n".into());
    let a = alice();
    let auth = format!("Bearer {a}");
    let headers = [("authorization", auth.as_str())];
    let scroll = q::ScrollPoints { collection_name: "docs".into(), limit: Some(10), ..Default::default() }.encode_to_vec();
    let before = g.upstream_exchanges();
    // The control: the same call well formed.
    let ok = g.grpc.raw("/qdrant.Points/Scroll", frame(&scroll), &headers);
    assert_eq!(ok.code, Some(Code::Ok), "{ok:?}");
    let after_ok = g.upstream_exchanges();
    assert!(after_ok > before);

    let mut compressed = frame(&scroll).to_vec();
    compressed[0] = 1;
    let mut unknown_field = scroll.clone();
    unknown_field.extend([0x98, 0x06, 0x01]);
    let two = [frame(&scroll), frame(&scroll)].concat();
    // (what, body, extra headers, the code it gets).
    type Case<'a> = (&'a str, Vec<u8>, Vec<(&'a str, &'a str)>, Code);
    let cases: Vec<Case<'_>> = vec![
        ("compressed flag", compressed, vec![], Code::Unimplemented),
        ("grpc-encoding gzip", frame(&scroll).to_vec(), vec![("grpc-encoding", "gzip")], Code::Unimplemented),
        ("two messages in a unary call", two, vec![], Code::InvalidArgument),
        ("no message", Vec::new(), vec![], Code::InvalidArgument),
        ("a truncated frame", frame(&scroll)[..6].to_vec(), vec![], Code::InvalidArgument),
        ("an unknown field", frame(&unknown_field).to_vec(), vec![], Code::InvalidArgument),
        ("not protobuf", frame(b"\xff\xff\xff\xff").to_vec(), vec![], Code::InvalidArgument),
        ("a JSON content type", frame(&scroll).to_vec(), vec![("content-type", "application/json")], Code::Unimplemented),
        ("over max_body_bytes", frame(&vec![0u8; 8000]).to_vec(), vec![], Code::ResourceExhausted),
    ];
    for (what, body, extra, code) in cases {
        let mut all = headers.to_vec();
        all.extend(extra);
        let answer = g.grpc.raw("/qdrant.Points/Scroll", bytes::Bytes::from(body), &all);
        assert_eq!((answer.http_status, answer.code), (200, Some(code)), "{what}: {answer:?}");
    }
    // Filters over max_filter_terms, wherever they are (prefetch here).
    let wide = q::Filter { should: (0..30).map(|i| keyword("metadata.owner", &format!("u{i}"))).collect(), ..Default::default() };
    let query = q::QueryPoints {
        collection_name: "docs".into(),
        prefetch: vec![q::PrefetchQuery { filter: Some(wide), query: nearest(dense(&[1.0, 0.0])), limit: Some(3), ..Default::default() }],
        query: nearest(dense(&[1.0, 0.0])),
        ..Default::default()
    };
    let refused = g.grpc.call::<_, q::QueryResponse>("/qdrant.Points/Query", query, Credential::Bearer(&a)).unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("more than the limit of 20"), "{refused:?}");
    assert_eq!(g.upstream_exchanges(), after_ok, "a refused call reached the database");
}

#[test]
fn audit_metrics_and_shadow_mode_record_grpc_calls() {
    let g = gate_with(|o| o.extra_yaml = "mode: shadow\n".into());
    let a = alice();
    // Shadow: alice's call goes as sent, its answer unchanged (every point), and the audit line
    // says what enforce mode would have done.
    let scroll = q::ScrollPoints { collection_name: "docs".into(), limit: Some(10), ..Default::default() };
    let got: q::ScrollResponse = g.grpc.call("/qdrant.Points/Scroll", scroll, Credential::ApiKey(&a)).unwrap();
    assert_eq!(retrieved_ids(&got.result).len(), 4);
    let snapshot = q::CreateSnapshotRequest { collection_name: "docs_b".into() };
    let shadowed = g.grpc.call::<_, q::CreateSnapshotResponse>("/qdrant.Snapshots/Create", snapshot, Credential::ApiKey(&a));
    // The database itself answers (the double has no snapshots).
    assert!(shadowed.is_ok() || shadowed.as_ref().unwrap_err().code() == Code::Unimplemented, "{shadowed:?}");
    let lines = g.vecgate.audit_lines();
    let grpc_lines: Vec<&Value> = lines.iter().filter(|l| l["protocol"] == "grpc").collect();
    assert_eq!(grpc_lines.len(), 2, "{lines:?}");
    assert_eq!(
        (grpc_lines[0]["operation"].as_str(), grpc_lines[0]["decision"].as_str(), grpc_lines[0]["hits_stripped"].as_u64(), grpc_lines[0]["enforced_status"].as_u64()),
        (Some("scroll_points"), Some("filter"), Some(2), Some(200))
    );
    assert_eq!(grpc_lines[0]["backend"], "qdrant");
    assert_eq!(grpc_lines[0]["grpc_status"], 0);
    assert_eq!((grpc_lines[1]["decision"].as_str(), grpc_lines[1]["enforced_status"].as_u64()), (Some("deny"), Some(403)));
    let (_, metrics) = g.vecgate.admin_get("/metrics");
    assert!(
        metrics.lines().any(|l| l.starts_with("vecgate_requests_total{backend=\"qdrant\",decision=\"filter\",operation=\"scroll_points\",protocol=\"grpc\",status_class=\"2xx\"}")),
        "{metrics}"
    );
}

#[test]
fn the_grpc_listener_speaks_tls_and_mutual_tls_like_the_http_listener() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("vecgate test server CA");
    let (cert, key) = ca.server_cert("vecgate-server").write(dir.path(), "server");
    let clients = TestCa::new("vecgate test client CA");
    let client_ca = clients.write_cert(dir.path(), "clients-ca");
    let other = TestCa::new("someone else's CA");
    let g = gate_with(|o| {
        o.extra_yaml = format!("tls:\n  cert_file: {}\n  key_file: {}\n  client_ca_file: {}\n", cert.display(), key.display(), client_ca.display());
    });
    let port: u16 = g.vecgate.grpc_url().rsplit(':').next().unwrap().parse().unwrap();
    let a = alice();
    let auth = format!("Bearer {a}");
    let count = frame(&q::CountPoints { collection_name: "docs".into(), exact: Some(true), ..Default::default() }.encode_to_vec());
    let h2: &[&[u8]] = &[b"h2"];
    // A client certificate from the configured CA: served, and still filtered.
    let me = clients.client_cert("app");
    let answer = raw_tls(port, client_config(&ca, Some(&me), h2), "/qdrant.Points/Count", count.clone(), &[("authorization", &auth)])
        .unwrap_or_else(|e| panic!("{e}\n{}", g.vecgate.log_tail()));
    assert_eq!(answer.code, Some(Code::Ok), "{answer:?}");
    let counted = q::CountResponse::decode(&answer.body[5..]).unwrap();
    assert_eq!(counted.result.unwrap().count, 2);
    // Still a token is needed.
    let answer = raw_tls(port, client_config(&ca, Some(&me), h2), "/qdrant.Points/Count", count.clone(), &[]).unwrap();
    assert_eq!(answer.code, Some(Code::Unauthenticated));
    // Without a client certificate, or with one from another CA: no handshake.
    assert!(raw_tls(port, client_config(&ca, None, h2), "/qdrant.Points/Count", count.clone(), &[("authorization", &auth)]).is_err());
    let stranger = other.client_cert("app");
    assert!(raw_tls(port, client_config(&ca, Some(&stranger), h2), "/qdrant.Points/Count", count.clone(), &[("authorization", &auth)]).is_err());
    // Plain HTTP/2 on the TLS listener: nothing.
    let plain = GrpcClient::connect(&format!("http://127.0.0.1:{port}"));
    assert!(plain.call::<_, q::CountResponse>("/qdrant.Points/Count", q::CountPoints { collection_name: "docs".into(), ..Default::default() }, Credential::Bearer(&a)).is_err());
}

#[test]
fn a_database_that_is_down_or_silent_is_unavailable_or_past_its_deadline() {
    let qdrant = QdrantServer::start();
    seed(&qdrant);
    let a = alice();
    let count = q::CountPoints { collection_name: "docs".into(), ..Default::default() };
    // Nothing listens on the gRPC upstream's port.
    let closed = support::free_port();
    let mut opts = VecgateOptions::qdrant(qdrant.url(), &repo_root().join("tests/fixtures/proxy/policies"));
    opts.upstream_grpc_url = Some(format!("http://127.0.0.1:{closed}"));
    let vecgate = VecgateServer::start(&opts);
    let down = GrpcClient::connect(vecgate.grpc_url()).call::<_, q::CountResponse>("/qdrant.Points/Count", count.clone(), Credential::ApiKey(&a)).unwrap_err();
    assert_eq!(down.code(), Code::Unavailable, "{down:?}");
    assert!(down.message().starts_with("the database did not answer"), "{down:?}");
    drop(vecgate);
    // A port that accepts and never answers: DEADLINE_EXCEEDED after upstream.timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let mut opts = VecgateOptions::qdrant(qdrant.url(), &repo_root().join("tests/fixtures/proxy/policies"));
    opts.upstream_grpc_url = Some(format!("http://127.0.0.1:{silent_port}"));
    opts.upstream_timeout = "1s";
    let vecgate = VecgateServer::start(&opts);
    let late = GrpcClient::connect(vecgate.grpc_url()).call::<_, q::CountResponse>("/qdrant.Points/Count", count, Credential::ApiKey(&a)).unwrap_err();
    assert_eq!(late.code(), Code::DeadlineExceeded, "{late:?}");
    assert!(late.message().contains("did not answer within"), "{late:?}");
    let audit = vecgate.audit_lines();
    let line = audit.iter().rev().find(|l| l["protocol"] == "grpc").unwrap();
    assert_eq!((line["status"].as_u64(), line["grpc_status"].as_i64(), line["error"].as_str()), (Some(504), Some(4), Some("upstream_timeout")));
    drop(silent);
}
