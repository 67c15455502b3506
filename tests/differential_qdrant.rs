//! Differential test: vecgate + the Qdrant test server against the reference decision.
//!
//! Random points (integer and UUID ids; payload `{page_content, metadata: {department, region,
//! owner?, level?, tags?}}`, LangChain's layout under vecgate's default `attr_prefix`
//! `metadata.`) are stored in the Qdrant-compatible test server. For each of several policies,
//! vecgate is started in front of it, and random principals read through vecgate in every
//! way a RAG application does: a plain vector query, a hybrid query (two prefetches fused with
//! RRF, under a user filter), scroll, exact count, retrieve by ids, and queries that use a
//! point id as input (`nearest`, `recommend.positive`). Limits are ≥ the collection size, so
//! the ids each answer carries must equal exactly the points the policy engine allows when it
//! evaluates each point in full (`Planner::check`): no leak, nothing missing. A point id used
//! as a query input that the caller may not read must be answered exactly as Qdrant answers a
//! missing point.
//!
//! Unlike Chroma, Qdrant can express "key exists", so the policies here also negate and DENY
//! over attributes that are *not* in `required_attrs` (a point lacking the key is hidden, as
//! Cerbos' error semantics demand).
//!
//! Seed: `VECGATE_DIFF_SEED` (default fixed), so a failure can be replayed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Map, Value as Json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use support::vecgate::{token, VecgateOptions, VecgateServer};
use support::QdrantServer;
use vecgate::plan::Value;
use vecgate::policy::load::load_dir;
use vecgate::policy::planner::{PlanRequest, Planner, PlannerOptions, Principal};

const COLLECTION: &str = "corpus";
const POINTS: usize = 120;
const PRINCIPALS_PER_POLICY: usize = 25;
/// Every read asks for more than the collection holds.
const LIMIT: usize = POINTS + 10;

const DEPARTMENTS: [&str; 3] = ["finance", "hr", "eng"];
const REGIONS: [&str; 3] = ["EMEA", "AMER", "APAC"];
const OWNERS: [&str; 4] = ["u1", "u2", "u3", "u4"];
const TAGS: [&str; 3] = ["a", "b", "c"];

/// A small deterministic generator (xorshift64*), so runs replay from a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    /// A lowercase, hyphenated version-4 UUID (the form Qdrant answers with).
    fn uuid(&mut self) -> String {
        let a = self.next();
        let b = self.next();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            8 + (b >> 62),
            (b >> 48) & 0xfff,
            b & 0xffff_ffff_ffff
        )
    }
    fn vector(&mut self) -> Vec<f32> {
        vec![0.05 + self.below(100) as f32 / 100.0, 0.05 + self.below(100) as f32 / 100.0, 1.0]
    }
}

/// The policies under test: (name, YAML). Rules are for role `user` unless stated.
fn policies() -> Vec<(&'static str, String)> {
    let rule_for = |role: &str, effect: &str, expr: &str| {
        format!(
            "    - actions: [read]\n      effect: {effect}\n      roles: [{role}]\n      condition:\n        match:\n          expr: '{expr}'\n"
        )
    };
    let allow = |expr: &str| rule_for("user", "EFFECT_ALLOW", expr);
    let deny = |expr: &str| rule_for("user", "EFFECT_DENY", expr);
    let doc = |rules: String| {
        format!(
            "apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: document\n  version: default\n  rules:\n{rules}"
        )
    };
    vec![
        ("equality", doc(allow("request.resource.attr.department == request.principal.attr.department"))),
        ("ownership", doc(allow(
            "request.resource.attr.owner == request.principal.id || (request.resource.attr.department == request.principal.attr.department && request.resource.attr.level <= request.principal.attr.clearance)"))),
        ("numeric-range", doc(allow(
            "request.resource.attr.level >= 2 && request.resource.attr.level <= request.principal.attr.clearance"))),
        ("lists", doc(allow(
            "request.principal.attr.tag in request.resource.attr.tags || request.resource.attr.region in request.principal.attr.regions"))),
        ("negation-over-required", doc(allow(
            "request.resource.attr.region != \"APAC\" && request.resource.attr.department != request.principal.attr.department"))),
        // `owner` is optional: a point without it makes the condition error, so it is hidden.
        ("negation-over-optional", doc(allow(
            "request.resource.attr.owner != request.principal.id && request.resource.attr.region == request.principal.attr.region"))),
        ("negated-list-membership", doc(allow(
            "!(request.principal.attr.tag in request.resource.attr.tags) || request.resource.attr.department == request.principal.attr.department"))),
        ("deny-rule", doc(format!("{}{}",
            allow("request.resource.attr.region == request.principal.attr.region || request.resource.attr.owner == request.principal.id"),
            deny("request.resource.attr.level > request.principal.attr.clearance")))),
        // A DENY over an optional list: a point without `tags` errors the DENY, which applies.
        ("deny-on-optional-list", doc(format!("{}{}",
            allow("request.resource.attr.department == request.principal.attr.department || request.resource.attr.region == request.principal.attr.region"),
            deny("\"c\" in request.resource.attr.tags")))),
        ("has-guard", doc(allow(
            "(has(request.resource.attr.owner) && request.resource.attr.owner == request.principal.id) || (has(request.resource.attr.level) && request.resource.attr.level >= 4 && request.resource.attr.region != request.principal.attr.region)"))),
        // Unowned points are public; owned ones only to their owner.
        ("not-has-public", doc(allow(
            "!has(request.resource.attr.owner) || request.resource.attr.owner == request.principal.id"))),
        ("two-roles-with-deny", doc(format!("{}{}{}",
            allow("request.resource.attr.department == request.principal.attr.department"),
            rule_for("manager", "EFFECT_ALLOW", "request.resource.attr.region == request.principal.attr.region && request.resource.attr.level >= 3"),
            deny("request.resource.attr.region == \"APAC\" && request.resource.attr.department != \"eng\"")))),
    ]
}

const COLLECTION_POLICY: &str = "apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: collection\n  version: default\n  rules:\n    - actions: [read]\n      effect: EFFECT_ALLOW\n      roles: [user, manager]\n";

/// One stored point: its id (a JSON integer or UUID string), its vector and its metadata.
struct Point {
    id: Json,
    vector: Vec<f32>,
    metadata: Map<String, Json>,
}

impl Point {
    fn payload(&self) -> Json {
        json!({"page_content": format!("text of {}", self.id), "metadata": self.metadata})
    }
}

/// The id as the comparison key: its JSON text (`17`, `"0f…"`).
fn id_key(id: &Json) -> String {
    id.to_string()
}

fn random_metadata(rng: &mut Rng) -> Map<String, Json> {
    let mut m = Map::new();
    // Required: every write through vecgate guarantees these.
    m.insert("department".into(), json!(rng.pick(&DEPARTMENTS)));
    m.insert("region".into(), json!(rng.pick(&REGIONS)));
    if rng.chance(80) {
        m.insert("owner".into(), json!(rng.pick(&OWNERS)));
    }
    if rng.chance(85) {
        m.insert("level".into(), json!(1 + rng.below(5)));
    }
    if rng.chance(75) {
        let tags: Vec<&str> = TAGS.iter().copied().filter(|_| rng.chance(45)).collect();
        if !tags.is_empty() {
            m.insert("tags".into(), json!(tags));
        }
    }
    m
}

fn random_points(rng: &mut Rng) -> Vec<Point> {
    (0..POINTS)
        .map(|i| Point {
            id: if rng.chance(25) { json!(rng.uuid()) } else { json!(1000 + i) },
            vector: rng.vector(),
            metadata: random_metadata(rng),
        })
        .collect()
}

fn random_claims(rng: &mut Rng) -> (String, Vec<&'static str>, Json) {
    let sub = rng.pick(&OWNERS).to_string();
    let roles = if rng.chance(30) { vec!["user", "manager"] } else { vec!["user"] };
    let regions: Vec<&str> = REGIONS.iter().copied().filter(|_| rng.chance(40)).collect();
    let claims = json!({
        "department": rng.pick(&DEPARTMENTS),
        "region": rng.pick(&REGIONS),
        "clearance": 1 + rng.below(5),
        "tag": rng.pick(&TAGS),
        "regions": regions,
    });
    (sub, roles, claims)
}

/// What the policy engine allows, point by point, evaluating each one in full.
fn reference_ids(planner: &Planner, sub: &str, roles: &[&str], claims: &Json, points: &[Point]) -> BTreeSet<String> {
    // vecgate's test config maps every claim to an attribute.
    let mut all_claims = claims.as_object().unwrap().clone();
    all_claims.insert("sub".into(), json!(sub));
    all_claims.insert("roles".into(), json!(roles));
    let attr: BTreeMap<String, Value> = all_claims.iter().map(|(k, v)| (k.clone(), Value::from_json(v))).collect();
    let principal = Principal {
        id: sub.to_string(),
        roles: roles.iter().map(|r| (*r).to_string()).collect(),
        attr,
        ..Principal::default()
    };
    let jwt = BTreeMap::new();
    let actions = ["read".to_string()];
    points
        .iter()
        .filter(|p| {
            let resource_attr: BTreeMap<String, Value> =
                p.metadata.iter().map(|(k, v)| (k.clone(), Value::from_json(v))).collect();
            let resource_id = match &p.id {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            planner.check(&PlanRequest {
                principal: &principal,
                resource_kind: "document",
                resource_scope: "",
                resource_version: "",
                resource_attr: &resource_attr,
                resource_id: Some(&resource_id),
                attr_complete: true,
                actions: &actions,
                jwt: &jwt,
                now: chrono::Utc::now().fixed_offset(),
            })
        })
        .map(|p| id_key(&p.id))
        .collect()
}

/// The points of an answer (`result.points`, or `result` itself for retrieve).
fn points_of<'a>(answer: &'a Json, context: &str) -> &'a Vec<Json> {
    let result = &answer["result"];
    result
        .as_array()
        .or_else(|| result["points"].as_array())
        .unwrap_or_else(|| panic!("{context}: no points in {answer}"))
}

fn ids_of(points: &[Json]) -> BTreeSet<String> {
    let ids: BTreeSet<String> = points.iter().map(|p| id_key(&p["id"])).collect();
    assert_eq!(ids.len(), points.len(), "duplicate ids in an answer: {points:?}");
    ids
}

fn diff(got: &BTreeSet<String>, want: &BTreeSet<String>) -> String {
    format!(
        "leaked: {:?}\nmissing: {:?}",
        got.difference(want).collect::<Vec<_>>(),
        want.difference(got).collect::<Vec<_>>()
    )
}

fn write_policy_dir(dir: &Path, policy: &str) {
    std::fs::write(dir.join("document.yaml"), policy).unwrap();
    std::fs::write(dir.join("collection.yaml"), COLLECTION_POLICY).unwrap();
}

/// A principal's token, sent either as qdrant-client's `api-key` header or as a bearer token.
struct Caller<'a> {
    vecgate: &'a VecgateServer,
    token: String,
    api_key_header: bool,
}

impl Caller<'_> {
    fn post(&self, route: &str, body: &Json) -> (u16, Json) {
        let path = format!("/collections/{COLLECTION}/{route}");
        if self.api_key_header {
            self.vecgate.call_with_headers("POST", &path, None, Some(body), &[("api-key", &self.token)])
        } else {
            self.vecgate.call("POST", &path, Some(&self.token), Some(body))
        }
    }
}

/// The error text of a Qdrant error answer, with `id` replaced by a placeholder.
fn missing_point_error(answer: &Json, id: &Json) -> String {
    let text = answer["status"]["error"]
        .as_str()
        .unwrap_or_else(|| panic!("not a Qdrant error answer: {answer}"));
    let bare = match id {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    text.replace(&bare, "<ID>")
}

#[test]
fn vecgate_qdrant_answers_equal_the_reference_decision_for_random_points_principals_and_policies() {
    let seed = std::env::var("VECGATE_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_4321_u64);
    let mut rng = Rng(seed.wrapping_mul(2).wrapping_add(1));

    let qdrant = QdrantServer::start();
    qdrant.create_collection(COLLECTION, 3);
    let points = random_points(&mut rng);
    let seeded: Vec<(Json, Vec<f32>, Json)> =
        points.iter().map(|p| (p.id.clone(), p.vector.clone(), p.payload())).collect();
    qdrant.upsert(COLLECTION, &seeded);
    assert_eq!(qdrant.count(COLLECTION, None), Ok(POINTS as u64), "seeding");
    let uuid_points = points.iter().filter(|p| p.id.is_string()).count();
    assert!(uuid_points > 0 && uuid_points < POINTS, "want both id kinds, got {uuid_points} UUIDs");
    let by_key: BTreeMap<String, &Point> = points.iter().map(|p| (id_key(&p.id), p)).collect();
    let all_ids: Vec<Json> = points.iter().map(|p| p.id.clone()).collect();

    // How the upstream itself answers a point id that does not exist, as a query input.
    let absent_id = json!(999_999);
    let (status, body) = match qdrant.post_json(
        &format!("/collections/{COLLECTION}/points/query"),
        &json!({"query": {"nearest": absent_id}, "limit": 3}),
    ) {
        Ok(answer) => panic!("a query by an absent point id succeeded upstream: {answer}"),
        Err(e) => e,
    };
    assert_eq!(status, 404, "{body}");
    let upstream_missing = missing_point_error(&serde_json::from_str(&body).unwrap(), &absent_id);

    let mut compared = 0usize;
    let mut visible_total = 0usize;
    let mut partial_views = 0usize;
    let (mut id_queries_allowed, mut id_queries_hidden) = (0usize, 0usize);
    for (name, policy) in policies() {
        let dir = tempfile::tempdir().unwrap();
        write_policy_dir(dir.path(), &policy);
        let planner = Planner::new(Arc::new(load_dir(dir.path()).unwrap()), PlannerOptions::default());
        let options = VecgateOptions {
            upstream_kind: "qdrant",
            upstream_url: qdrant.url().to_string(),
            policies_dir: dir.path().to_path_buf(),
            // attr_prefix left out on purpose: Qdrant's default is `metadata.`.
            collections_yaml: "  - name: \"*\"\n    resource_kind: document\n    required_attrs: [department, region]\n".into(),
            extra_yaml: String::new(),
            upstream_timeout: "20s",
        };
        let vecgate = VecgateServer::start(&options);

        for _ in 0..PRINCIPALS_PER_POLICY {
            let (sub, roles, claims) = random_claims(&mut rng);
            let want = reference_ids(&planner, &sub, &roles, &claims, &points);
            let caller = Caller { vecgate: &vecgate, token: token(&sub, &roles, &claims), api_key_header: rng.chance(50) };
            let context = format!(
                "policy {name}, principal {sub} {roles:?} {claims}, {} header, seed {seed}",
                if caller.api_key_header { "api-key" } else { "bearer" }
            );

            // 1. Plain vector query; payload not asked for, so none may come back.
            let (status, got) = caller.post("points/query", &json!({"query": [0.5, 0.5, 1.0], "limit": LIMIT}));
            assert_eq!(status, 200, "query: {context}: {got}\n{}", vecgate.log_tail());
            let hits = points_of(&got, &context);
            let got_ids = ids_of(hits);
            assert_eq!(got_ids, want, "query: {context}\n{}", diff(&got_ids, &want));
            for hit in hits {
                assert!(hit.get("payload").is_none_or(Json::is_null), "query: payload not trimmed back: {hit}; {context}");
            }

            // 2. Hybrid: two prefetches fused with RRF, under a user filter excluding a region.
            let excluded_region = rng.pick(&REGIONS);
            let hybrid = json!({
                "prefetch": [
                    {"query": [0.9, 0.1, 1.0], "limit": LIMIT},
                    {"query": {"nearest": [0.1, 0.9, 1.0]}, "limit": LIMIT},
                ],
                "query": {"fusion": "rrf"},
                "filter": {"must_not": [{"key": "metadata.region", "match": {"value": excluded_region}}]},
                "limit": LIMIT,
                "with_payload": ["page_content"],
            });
            let want_hybrid: BTreeSet<String> =
                want.iter().filter(|k| by_key[*k].metadata["region"] != excluded_region).cloned().collect();
            let (status, got) = caller.post("points/query", &hybrid);
            assert_eq!(status, 200, "hybrid: {context}: {got}\n{}", vecgate.log_tail());
            let hits = points_of(&got, &context);
            let got_ids = ids_of(hits);
            assert_eq!(got_ids, want_hybrid, "hybrid (without {excluded_region}): {context}\n{}", diff(&got_ids, &want_hybrid));
            for hit in hits {
                let p = by_key[&id_key(&hit["id"])];
                assert_eq!(hit["payload"], json!({"page_content": p.payload()["page_content"]}), "hybrid: payload: {context}");
            }

            // 3. Scroll with payloads: the stored payloads, untouched.
            let (status, got) = caller.post("points/scroll", &json!({"limit": LIMIT, "with_payload": true}));
            assert_eq!(status, 200, "scroll: {context}: {got}\n{}", vecgate.log_tail());
            let hits = points_of(&got, &context);
            let got_ids = ids_of(hits);
            assert_eq!(got_ids, want, "scroll: {context}\n{}", diff(&got_ids, &want));
            assert!(got["result"]["next_page_offset"].is_null(), "scroll: a next page beyond the limit: {context}");
            for hit in hits {
                assert_eq!(hit["payload"], by_key[&id_key(&hit["id"])].payload(), "scroll: payload: {context}");
            }

            // 4. Exact count.
            let (status, got) = caller.post("points/count", &json!({"exact": true}));
            assert_eq!(status, 200, "count: {context}: {got}");
            assert_eq!(got["result"]["count"], json!(want.len()), "count: {context}");

            // 5. Retrieve every id: exactly the allowed ones, without payload as asked.
            let (status, got) = caller.post("points", &json!({"ids": all_ids, "with_payload": false}));
            assert_eq!(status, 200, "retrieve: {context}: {got}\n{}", vecgate.log_tail());
            let hits = points_of(&got, &context);
            let got_ids = ids_of(hits);
            assert_eq!(got_ids, want, "retrieve: {context}\n{}", diff(&got_ids, &want));
            for hit in hits {
                assert!(hit.get("payload").is_none_or(Json::is_null), "retrieve: payload not trimmed back: {hit}; {context}");
            }

            // 6. A point id as query input, by `nearest` and by `recommend.positive`.
            for form in ["nearest", "recommend"] {
                let input = &points[rng.below(POINTS)].id;
                let query = match form {
                    "nearest" => json!({"nearest": input}),
                    _ => json!({"recommend": {"positive": [input]}}),
                };
                let (status, got) = caller.post("points/query", &json!({"query": query, "limit": LIMIT}));
                let what = format!("query {query}: {context}");
                if want.contains(&id_key(input)) {
                    assert_eq!(status, 200, "{what}: {got}\n{}", vecgate.log_tail());
                    // Qdrant leaves the input point out of its own results.
                    let mut expected = want.clone();
                    expected.remove(&id_key(input));
                    let got_ids = ids_of(points_of(&got, &what));
                    assert_eq!(got_ids, expected, "{what}\n{}", diff(&got_ids, &expected));
                    id_queries_allowed += 1;
                } else {
                    assert_eq!(status, 404, "{what}: an unreadable point id must look missing: {got}");
                    assert_eq!(missing_point_error(&got, input), upstream_missing, "{what}: {got}");
                    id_queries_hidden += 1;
                }
                compared += 1;
            }

            compared += 5;
            visible_total += want.len();
            if !want.is_empty() && want.len() < POINTS {
                partial_views += 1;
            }
        }
        // Nothing was stripped: the pushed-down filter alone was exact.
        let stripped: u64 = vecgate.audit_lines().iter().filter_map(|l| l["hits_stripped"].as_u64()).sum();
        assert_eq!(stripped, 0, "policy {name}: the filter let through hits the post-filter removed");
    }
    let principals = policies().len() * PRINCIPALS_PER_POLICY;
    assert!(partial_views * 10 >= principals * 7, "only {partial_views} of {principals} principals saw a strict subset");
    assert!(
        id_queries_allowed * 10 >= principals && id_queries_hidden * 10 >= principals,
        "id queries too one-sided: {id_queries_allowed} readable, {id_queries_hidden} hidden"
    );
    eprintln!(
        "differential (qdrant): {POINTS} points ({uuid_points} with UUID ids), {} policies x {PRINCIPALS_PER_POLICY} principals, {compared} answers compared, {visible_total} visible ids in all, {partial_views} partial views, id queries {id_queries_allowed} readable / {id_queries_hidden} hidden; seed {seed}",
        policies().len()
    );
}
