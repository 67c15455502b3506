//! Differential test over gRPC: vecgate's gRPC listener + a Qdrant (the real server's gRPC
//! port when one is given, else the double's gRPC face) against the reference decision, and
//! against vecgate's own REST answers for the same principal.
//!
//! Random points (integer and UUID ids; payload `{page_content, metadata: {department, region,
//! owner?, level?, tags?}}`, LangChain's layout) are stored; for each policy, random principals
//! read through vecgate over gRPC the way a `prefer_grpc=True` RAG application does: a vector
//! query, a hybrid query (two prefetches fused with RRF, under a user filter), scroll, exact
//! count, retrieve by ids, and queries by point id (`nearest`, legacy `Recommend`). Limits are ≥
//! the collection size, so every answer must carry exactly the points `Planner::check` allows
//! when it evaluates each point in full: no leak, nothing missing. A point id the caller may
//! not read must be answered exactly as Qdrant answers a missing point. Every read is also
//! made over REST through the same vecgate: both faces must give the same ids (and the same
//! refusal) for the same principal.
//!
//! Then escalating writes: each principal tries to move a random point to another department
//! (set_payload under `metadata`), to raise its level, and to upsert a point of its own
//! department at a random level. Each outcome must be what the write rule decides from the
//! reference (`update` on the point as it is and as it would be, `create` on a new point; a
//! point it may not read answered as a missing one), over gRPC and REST alike, and the stored
//! point must have changed exactly when the write was allowed.
//!
//! Seed: `VECGATE_DIFF_SEED` (default fixed), so a failure can be replayed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Map, Value as Json};
use std::collections::BTreeSet;
use std::sync::Arc;
use support::differential::{allows, principal, random_claims, random_record, reference_ids, Rng, REGIONS};
use support::grpc::{Credential, GrpcClient};
use support::vecgate::{token, VecgateOptions, VecgateServer};
use support::QdrantServer;
use tonic::Code;
use vecgate::backends::qdrant::grpc::proto::qdrant as q;
use vecgate::policy::load::load_dir;
use vecgate::policy::planner::{Planner, PlannerOptions};

const COLLECTION: &str = "corpus";
const POINTS: usize = 100;
const PRINCIPALS: usize = 12;
const LIMIT: u64 = POINTS as u64 + 10;

const COLLECTION_POLICY: &str = "apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: collection\n  version: default\n  rules:\n    - actions: [read]\n      effect: EFFECT_ALLOW\n      roles: [user, manager]\n";

/// Read rules under test, each with the same write rule: create and update within one's own
/// department, up to one's clearance.
fn policies() -> Vec<(&'static str, String)> {
    let rule = |actions: &str, effect: &str, role: &str, expr: &str| {
        format!("    - actions: [{actions}]\n      effect: {effect}\n      roles: [{role}]\n      condition:\n        match:\n          expr: '{expr}'\n")
    };
    let write = rule(
        "create, update",
        "EFFECT_ALLOW",
        "user",
        "request.resource.attr.department == request.principal.attr.department && request.resource.attr.level <= request.principal.attr.clearance",
    );
    let doc = |rules: String| {
        format!("apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: document\n  version: default\n  rules:\n{rules}{write}")
    };
    let allow = |expr: &str| rule("read", "EFFECT_ALLOW", "user", expr);
    vec![
        ("equality", doc(allow("request.resource.attr.department == request.principal.attr.department"))),
        ("ownership-or-clearance", doc(allow(
            "request.resource.attr.owner == request.principal.id || (request.resource.attr.department == request.principal.attr.department && request.resource.attr.level <= request.principal.attr.clearance)"))),
        ("lists", doc(allow(
            "request.principal.attr.tag in request.resource.attr.tags || request.resource.attr.region in request.principal.attr.regions"))),
        ("deny-and-negation", doc(format!("{}{}",
            allow("request.resource.attr.region != \"APAC\" || request.resource.attr.department == request.principal.attr.department"),
            rule("read", "EFFECT_DENY", "user", "request.resource.attr.level > request.principal.attr.clearance")))),
    ]
}

struct Point {
    id: Json,
    vector: Vec<f32>,
    metadata: Map<String, Json>,
}

impl Point {
    fn key(&self) -> String {
        key(&self.id)
    }
    fn payload(&self) -> Json {
        json!({"page_content": format!("text of {}", self.key()), "metadata": self.metadata})
    }
}

/// An id as compared: its decimal or UUID text.
fn key(id: &Json) -> String {
    match id {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn point_id(id: &Json) -> q::PointId {
    use q::point_id::PointIdOptions;
    q::PointId {
        point_id_options: Some(match id {
            Json::String(s) => PointIdOptions::Uuid(s.clone()),
            other => PointIdOptions::Num(other.as_u64().unwrap()),
        }),
    }
}

fn id_text(id: &Option<q::PointId>) -> String {
    match id.as_ref().and_then(|i| i.point_id_options.clone()) {
        Some(q::point_id::PointIdOptions::Num(n)) => n.to_string(),
        Some(q::point_id::PointIdOptions::Uuid(u)) => u,
        None => panic!("a point without an id"),
    }
}

fn unique(ids: Vec<String>) -> BTreeSet<String> {
    let set: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(set.len(), ids.len(), "duplicate ids in an answer: {ids:?}");
    set
}

fn rest_ids(answer: &Json) -> BTreeSet<String> {
    let result = &answer["result"];
    let points = result.as_array().or_else(|| result["points"].as_array()).unwrap_or_else(|| panic!("no points in {answer}"));
    unique(points.iter().map(|p| key(&p["id"])).collect())
}

fn dense(v: &[f32]) -> Option<q::Query> {
    Some(q::Query { variant: Some(q::query::Variant::Nearest(q::VectorInput { variant: Some(q::vector_input::Variant::Dense(q::DenseVector { data: v.to_vec() })) })) })
}

fn value_of(v: &Json) -> q::Value {
    use q::value::Kind;
    q::Value {
        kind: Some(match v {
            Json::Null => Kind::NullValue(0),
            Json::Bool(b) => Kind::BoolValue(*b),
            Json::Number(n) => n.as_i64().map_or_else(|| Kind::DoubleValue(n.as_f64().unwrap()), Kind::IntegerValue),
            Json::String(s) => Kind::StringValue(s.clone()),
            Json::Array(a) => Kind::ListValue(q::ListValue { values: a.iter().map(value_of).collect() }),
            Json::Object(o) => Kind::StructValue(q::Struct { fields: o.iter().map(|(k, v)| (k.clone(), value_of(v))).collect() }),
        }),
    }
}

fn proto_payload(v: &Json) -> std::collections::BTreeMap<String, q::Value> {
    v.as_object().unwrap().iter().map(|(k, v)| (k.clone(), value_of(v))).collect()
}

#[derive(Default)]
struct Tally {
    compared: usize,
    rest_equal: usize,
    leaks: usize,
    missing: usize,
    hidden_inputs: usize,
    readable_inputs: usize,
    writes: usize,
    writes_allowed: usize,
    writes_denied: usize,
    writes_missing: usize,
    escalations: usize,
}

/// One principal's reads over both faces.
struct Reader<'a> {
    grpc: &'a GrpcClient,
    vecgate: &'a VecgateServer,
    token: &'a str,
    /// qdrant-client's two ways of sending the token.
    credential: Credential<'a>,
    want: &'a BTreeSet<String>,
    context: &'a str,
    missing_message: &'a str,
}

impl Reader<'_> {
    fn rest(&self, route: &str, body: &Json) -> (u16, Json) {
        self.vecgate.call("POST", &format!("/collections/{COLLECTION}/{route}"), Some(self.token), Some(body))
    }

    /// gRPC's ids against the reference, and REST's against gRPC's.
    fn compare(&self, what: &str, got: BTreeSet<String>, rest: (u16, Json), want: &BTreeSet<String>, tally: &mut Tally) {
        tally.compared += 1;
        let leaked = got.difference(want).count();
        let missing = want.difference(&got).count();
        tally.leaks += leaked;
        tally.missing += missing;
        assert!(leaked == 0 && missing == 0, "{what} over gRPC: leaked {:?}, missing {:?}; {}", got.difference(want).collect::<Vec<_>>(), want.difference(&got).collect::<Vec<_>>(), self.context);
        assert_eq!(rest.0, 200, "{what} over REST: {}: {}", self.context, rest.1);
        assert_eq!(rest_ids(&rest.1), got, "{what}: REST and gRPC differ; {}", self.context);
        tally.rest_equal += 1;
    }

    fn run(&self, rng: &mut Rng, points: &[Point], tally: &mut Tally) {
        let want = self.want;
        // 1. A vector query.
        let query = q::QueryPoints { collection_name: COLLECTION.into(), query: dense(&[0.5, 0.5, 1.0]), limit: Some(LIMIT), ..Default::default() };
        let got: q::QueryResponse = self.grpc.call("/qdrant.Points/Query", query, self.credential).unwrap_or_else(|e| panic!("query: {e:?}; {}", self.context));
        let rest = self.rest("points/query", &json!({"query": [0.5, 0.5, 1.0], "limit": LIMIT}));
        self.compare("query", unique(got.result.iter().map(|p| id_text(&p.id)).collect()), rest, want, tally);

        // 2. Hybrid: two prefetches fused with RRF, under a user filter.
        let region = rng.pick(&REGIONS);
        let filter = q::Filter {
            must_not: vec![q::Condition {
                condition_one_of: Some(q::condition::ConditionOneOf::Field(q::FieldCondition {
                    key: "metadata.region".into(),
                    r#match: Some(q::Match { match_value: Some(q::r#match::MatchValue::Keyword(region.into())) }),
                    ..Default::default()
                })),
            }],
            ..Default::default()
        };
        let hybrid = q::QueryPoints {
            collection_name: COLLECTION.into(),
            prefetch: vec![
                q::PrefetchQuery { query: dense(&[0.9, 0.1, 1.0]), limit: Some(LIMIT), ..Default::default() },
                q::PrefetchQuery { query: dense(&[0.1, 0.9, 1.0]), limit: Some(LIMIT), ..Default::default() },
            ],
            query: Some(q::Query { variant: Some(q::query::Variant::Fusion(q::Fusion::Rrf as i32)) }),
            filter: Some(filter),
            limit: Some(LIMIT),
            ..Default::default()
        };
        let want_hybrid: BTreeSet<String> = points.iter().filter(|p| want.contains(&p.key()) && p.metadata["region"] != region).map(Point::key).collect();
        let got: q::QueryResponse = self.grpc.call("/qdrant.Points/Query", hybrid, self.credential).unwrap_or_else(|e| panic!("hybrid: {e:?}; {}", self.context));
        let rest = self.rest(
            "points/query",
            &json!({"prefetch": [{"query": [0.9, 0.1, 1.0], "limit": LIMIT}, {"query": [0.1, 0.9, 1.0], "limit": LIMIT}], "query": {"fusion": "rrf"},
                    "filter": {"must_not": [{"key": "metadata.region", "match": {"value": region}}]}, "limit": LIMIT}),
        );
        self.compare("hybrid query", unique(got.result.iter().map(|p| id_text(&p.id)).collect()), rest, &want_hybrid, tally);

        // 3. Scroll, with the stored payloads.
        let scroll = q::ScrollPoints { collection_name: COLLECTION.into(), limit: Some(LIMIT as u32), ..Default::default() };
        let got: q::ScrollResponse = self.grpc.call("/qdrant.Points/Scroll", scroll, self.credential).unwrap_or_else(|e| panic!("scroll: {e:?}; {}", self.context));
        for p in &got.result {
            let stored = points.iter().find(|s| s.key() == id_text(&p.id)).unwrap();
            assert_eq!(p.payload, proto_payload(&stored.payload()), "scroll payload; {}", self.context);
        }
        assert!(got.next_page_offset.is_none(), "a next page beyond the limit; {}", self.context);
        let rest = self.rest("points/scroll", &json!({"limit": LIMIT, "with_payload": true}));
        self.compare("scroll", unique(got.result.iter().map(|p| id_text(&p.id)).collect()), rest, want, tally);

        // 4. Exact count.
        let count = q::CountPoints { collection_name: COLLECTION.into(), exact: Some(true), ..Default::default() };
        let got: q::CountResponse = self.grpc.call("/qdrant.Points/Count", count, self.credential).unwrap();
        let counted = got.result.unwrap().count as usize;
        assert_eq!(counted, want.len(), "count; {}", self.context);
        let (status, rest) = self.rest("points/count", &json!({"exact": true}));
        assert_eq!((status, rest["result"]["count"].as_u64()), (200, Some(counted as u64)), "count over REST; {}", self.context);
        tally.compared += 1;
        tally.rest_equal += 1;

        // 5. Retrieve every id.
        let ids: Vec<Json> = points.iter().map(|p| p.id.clone()).collect();
        let get = q::GetPoints { collection_name: COLLECTION.into(), ids: ids.iter().map(point_id).collect(), ..Default::default() };
        let got: q::GetResponse = self.grpc.call("/qdrant.Points/Get", get, self.credential).unwrap();
        for p in &got.result {
            assert!(p.payload.is_empty(), "retrieve: payload not trimmed back; {}", self.context);
        }
        let rest = self.rest("points", &json!({"ids": ids}));
        self.compare("retrieve", unique(got.result.iter().map(|p| id_text(&p.id)).collect()), rest, want, tally);

        // 6. A point id as a query input: `nearest` (Query) and `positive` (legacy Recommend).
        for form in ["nearest", "recommend"] {
            let input = &points[rng.below(points.len())];
            let (grpc, rest): (Result<BTreeSet<String>, tonic::Status>, (u16, Json)) = match form {
                "nearest" => {
                    let query = q::QueryPoints {
                        collection_name: COLLECTION.into(),
                        query: Some(q::Query { variant: Some(q::query::Variant::Nearest(q::VectorInput { variant: Some(q::vector_input::Variant::Id(point_id(&input.id))) })) }),
                        limit: Some(LIMIT),
                        ..Default::default()
                    };
                    let got = self.grpc.call::<_, q::QueryResponse>("/qdrant.Points/Query", query, self.credential);
                    (got.map(|r| unique(r.result.iter().map(|p| id_text(&p.id)).collect())), self.rest("points/query", &json!({"query": {"nearest": input.id}, "limit": LIMIT})))
                }
                _ => {
                    let recommend = q::RecommendPoints { collection_name: COLLECTION.into(), positive: vec![point_id(&input.id)], limit: LIMIT, ..Default::default() };
                    let got = self.grpc.call::<_, q::RecommendResponse>("/qdrant.Points/Recommend", recommend, self.credential);
                    (got.map(|r| unique(r.result.iter().map(|p| id_text(&p.id)).collect())), self.rest("points/recommend", &json!({"positive": [input.id], "limit": LIMIT})))
                }
            };
            let what = format!("{form} by {}", input.key());
            if want.contains(&input.key()) {
                let mut expected = want.clone();
                expected.remove(&input.key());
                self.compare(&what, grpc.unwrap_or_else(|e| panic!("{what}: {e:?}; {}", self.context)), rest, &expected, tally);
                tally.readable_inputs += 1;
            } else {
                let refused = grpc.expect_err(&what);
                let expected = self.missing_message.replace("<ID>", &input.key());
                assert_eq!((refused.code(), refused.message()), (Code::NotFound, expected.as_str()), "{what}: hidden input; {}", self.context);
                assert_eq!((rest.0, rest.1["status"]["error"].as_str()), (404, Some(expected.as_str())), "{what}: REST; {}", self.context);
                tally.compared += 1;
                tally.rest_equal += 1;
                tally.hidden_inputs += 1;
            }
        }
    }
}

/// How a write must end, from the reference.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Outcome {
    Written,
    Denied,
    Missing,
}

fn grpc_outcome(result: Result<q::PointsOperationResponse, tonic::Status>, missing_message: &str, id: &str) -> Outcome {
    match result {
        Ok(_) => Outcome::Written,
        Err(s) if s.code() == Code::PermissionDenied => Outcome::Denied,
        Err(s) if s.code() == Code::NotFound && s.message() == missing_message.replace("<ID>", id) => Outcome::Missing,
        Err(s) => panic!("unexpected refusal of a write: {s:?}"),
    }
}

fn rest_outcome((status, body): (u16, Json), missing_message: &str, id: &str) -> Outcome {
    match status {
        200 => Outcome::Written,
        403 => Outcome::Denied,
        404 if body["status"]["error"].as_str() == Some(&missing_message.replace("<ID>", id)) => Outcome::Missing,
        _ => panic!("unexpected answer to a write: {status} {body}"),
    }
}

#[test]
fn grpc_answers_equal_the_reference_and_the_rest_face_for_random_points_principals_and_policies() {
    let seed = std::env::var("VECGATE_DIFF_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x9e3d_0020_u64);
    let mut rng = Rng::seeded(seed);
    let qdrant = QdrantServer::start();
    let points: Vec<Point> = (0..POINTS)
        .map(|i| Point {
            id: if rng.chance(25) { json!(uuid(&mut rng)) } else { json!(5000 + i) },
            vector: vec![0.05 + rng.below(100) as f32 / 100.0, 0.05 + rng.below(100) as f32 / 100.0, 1.0],
            metadata: random_record(&mut rng),
        })
        .collect();
    qdrant.create_collection(COLLECTION, 3);
    let seeded: Vec<(Json, Vec<f32>, Json)> = points.iter().map(|p| (p.id.clone(), p.vector.clone(), p.payload())).collect();
    qdrant.upsert(COLLECTION, &seeded);
    let direct = GrpcClient::connect(qdrant.grpc_url());

    // How the database words a missing point, asked directly over gRPC.
    let absent = direct
        .call::<_, q::QueryResponse>(
            "/qdrant.Points/Query",
            q::QueryPoints { collection_name: COLLECTION.into(), query: Some(q::Query { variant: Some(q::query::Variant::Nearest(q::VectorInput { variant: Some(q::vector_input::Variant::Id(point_id(&json!(999_999)))) })) }), ..Default::default() },
            Credential::None,
        )
        .unwrap_err();
    assert_eq!(absent.code(), Code::NotFound);
    let missing_message = absent.message().replace("999999", "<ID>");

    let mut tally = Tally::default();
    for (name, policy) in policies() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("document.yaml"), &policy).unwrap();
        std::fs::write(dir.path().join("collection.yaml"), COLLECTION_POLICY).unwrap();
        let planner = Planner::new(Arc::new(load_dir(dir.path()).unwrap()), PlannerOptions::default());
        let mut options = VecgateOptions::qdrant(qdrant.url(), dir.path());
        options.collections_yaml = "  - name: \"*\"\n    resource_kind: document\n    required_attrs: [department, region]\n".into();
        options.upstream_grpc_url = Some(qdrant.grpc_url().to_string());
        options.upstream_timeout = "20s";
        let vecgate = VecgateServer::start(&options);
        let grpc = GrpcClient::connect(vecgate.grpc_url());
        for _ in 0..PRINCIPALS {
            let (sub, roles, claims) = random_claims(&mut rng);
            let records: Vec<(String, Map<String, Json>)> = points.iter().map(|p| (p.key(), p.metadata.clone())).collect();
            let want = reference_ids(&planner, &sub, &roles, &claims, &records);
            let token = token(&sub, &roles, &claims);
            let credential = if rng.chance(50) { Credential::ApiKey(&token) } else { Credential::Bearer(&token) };
            let context = format!("policy {name}, principal {sub} {roles:?} {claims}, {credential:?}, seed {seed}");
            let reader = Reader { grpc: &grpc, vecgate: &vecgate, token: &token, credential, want: &want, context: &context, missing_message: &missing_message };
            reader.run(&mut rng, &points, &mut tally);

            // Escalating writes, over gRPC then over REST, the point restored in between.
            let who = principal(&sub, &roles, &claims);
            for attempt in 0..3 {
                let index = rng.below(points.len());
                let target = &points[index];
                let id = target.key();
                let mut after = target.metadata.clone();
                let (grpc_write, rest_route, rest_body, new_point): (q::SetPayloadPoints, &str, Json, bool) = match attempt {
                    0 => {
                        after.insert("department".into(), json!(claims["department"]));
                        after.insert("region".into(), json!(rng.pick(&REGIONS)));
                        let written = json!({"department": after["department"], "region": after["region"]});
                        let call = q::SetPayloadPoints { collection_name: COLLECTION.into(), wait: Some(true), payload: proto_payload(&written), key: Some("metadata".into()), points_selector: selector(&target.id), ..Default::default() };
                        (call, "points/payload?wait=true", json!({"payload": written, "key": "metadata", "points": [target.id]}), false)
                    }
                    1 => {
                        after.insert("level".into(), json!(1 + rng.below(5)));
                        let written = json!({"level": after["level"]});
                        let call = q::SetPayloadPoints { collection_name: COLLECTION.into(), wait: Some(true), payload: proto_payload(&written), key: Some("metadata".into()), points_selector: selector(&target.id), ..Default::default() };
                        (call, "points/payload?wait=true", json!({"payload": written, "key": "metadata", "points": [target.id]}), false)
                    }
                    _ => (q::SetPayloadPoints::default(), "", Json::Null, true),
                };
                tally.writes += 2;
                if new_point {
                    // A new point of one's own department at a random level: `create`.
                    let level = 1 + rng.below(5);
                    let meta = json!({"department": claims["department"], "region": rng.pick(&REGIONS), "level": level});
                    let expected = if allows(&planner, &who, "create", "77777", meta.as_object().unwrap()) { Outcome::Written } else { Outcome::Denied };
                    let upsert = q::UpsertPoints {
                        collection_name: COLLECTION.into(),
                        wait: Some(true),
                        points: vec![q::PointStruct {
                            id: Some(point_id(&json!(77777))),
                            payload: proto_payload(&json!({"page_content": "new", "metadata": meta})),
                            vectors: Some(q::Vectors { vectors_options: Some(q::vectors::VectorsOptions::Vector(q::Vector { vector: Some(q::vector::Vector::Dense(q::DenseVector { data: vec![0.5, 0.5, 1.0] })), ..Default::default() })) }),
                        }],
                        ..Default::default()
                    };
                    let got = grpc_outcome(grpc.call("/qdrant.Points/Upsert", upsert, credential), &missing_message, "77777");
                    assert_eq!(got, expected, "upsert at level {level} over gRPC; {context}");
                    assert_eq!(qdrant.count(COLLECTION, Some(&json!({"must": [{"has_id": [77777]}]}))), Ok(u64::from(got == Outcome::Written)));
                    qdrant.call("POST", &format!("/collections/{COLLECTION}/points/delete?wait=true"), Some(&json!({"points": [77777]}))).unwrap();
                    let rest = vecgate.call("PUT", &format!("/collections/{COLLECTION}/points?wait=true"), Some(&token),
                        Some(&json!({"points": [{"id": 77777, "vector": [0.5, 0.5, 1.0], "payload": {"page_content": "new", "metadata": meta}}]})));
                    assert_eq!(rest_outcome(rest, &missing_message, "77777"), expected, "upsert over REST; {context}");
                    qdrant.call("POST", &format!("/collections/{COLLECTION}/points/delete?wait=true"), Some(&json!({"points": [77777]}))).unwrap();
                    count_outcome(&mut tally, expected);
                    continue;
                }
                let readable = allows(&planner, &who, "read", &id, &target.metadata);
                let expected = if !readable {
                    Outcome::Missing
                } else if allows(&planner, &who, "update", &id, &target.metadata) && allows(&planner, &who, "update", &id, &after) {
                    Outcome::Written
                } else {
                    Outcome::Denied
                };
                if expected == Outcome::Written && after != target.metadata {
                    tally.escalations += usize::from(after["department"] != target.metadata["department"]);
                }
                let got = grpc_outcome(grpc.call("/qdrant.Points/SetPayload", grpc_write, credential), &missing_message, &id);
                assert_eq!(got, expected, "set_payload {after:?} on {id} {:?} over gRPC; {context}", target.metadata);
                let stored = stored_metadata(&qdrant, &target.id);
                assert_eq!(stored, if got == Outcome::Written { after.clone() } else { target.metadata.clone() }, "stored after gRPC; {context}");
                restore(&qdrant, target);
                let rest = vecgate.call("POST", &format!("/collections/{COLLECTION}/{rest_route}"), Some(&token), Some(&rest_body));
                assert_eq!(rest_outcome(rest, &missing_message, &id), expected, "set_payload over REST; {context}");
                restore(&qdrant, target);
                count_outcome(&mut tally, expected);
            }
        }
        // The filters pushed down were exact: nothing was stripped from a filtered read.
        for line in vecgate.audit_lines() {
            if line["operation"] != "get_points" {
                assert_eq!(line["hits_stripped"].as_u64().unwrap_or(0), 0, "policy {name}: {line}");
            }
        }
    }
    assert_eq!((tally.leaks, tally.missing), (0, 0));
    assert!(tally.hidden_inputs > 0 && tally.readable_inputs > 0, "id inputs too one-sided");
    assert!(tally.writes_allowed > 0 && tally.writes_denied > 0 && tally.writes_missing > 0, "writes too one-sided");
    // The write rule wants the caller's department before and after: no point ever changed hands.
    assert_eq!(tally.escalations, 0, "a point was moved into the caller's department");
    eprintln!(
        "differential (qdrant gRPC, {}): {POINTS} points, {} policies x {PRINCIPALS} principals: {} answers compared with the reference ({} leaks, {} missing), {} equal over REST, id inputs {} readable / {} hidden, {} writes each way ({} written, {} denied, {} answered as missing, {} points moved between departments); seed {seed}",
        qdrant.kind().describe(),
        policies().len(),
        tally.compared,
        tally.leaks,
        tally.missing,
        tally.rest_equal,
        tally.readable_inputs,
        tally.hidden_inputs,
        tally.writes / 2,
        tally.writes_allowed,
        tally.writes_denied,
        tally.writes_missing,
        tally.escalations,
    );
}

fn count_outcome(tally: &mut Tally, outcome: Outcome) {
    match outcome {
        Outcome::Written => tally.writes_allowed += 1,
        Outcome::Denied => tally.writes_denied += 1,
        Outcome::Missing => tally.writes_missing += 1,
    }
}

fn selector(id: &Json) -> Option<q::PointsSelector> {
    Some(q::PointsSelector { points_selector_one_of: Some(q::points_selector::PointsSelectorOneOf::Points(q::PointsIdsList { ids: vec![point_id(id)] })) })
}

fn stored_metadata(qdrant: &QdrantServer, id: &Json) -> Map<String, Json> {
    let got = qdrant.result("POST", &format!("/collections/{COLLECTION}/points"), Some(&json!({"ids": [id], "with_payload": true})));
    got[0]["payload"]["metadata"].as_object().cloned().unwrap_or_default()
}

/// Puts the point back as seeded (directly, not through vecgate).
fn restore(qdrant: &QdrantServer, point: &Point) {
    qdrant.upsert(COLLECTION, &[(point.id.clone(), point.vector.clone(), point.payload())]);
}

/// A lowercase hyphenated UUID.
fn uuid(rng: &mut Rng) -> String {
    let (a, b) = (rng.next(), rng.next());
    format!("{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}", a >> 32, (a >> 16) & 0xffff, a & 0xfff, 8 + (b >> 62), (b >> 48) & 0xfff, b & 0xffff_ffff_ffff)
}
