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
//! The policies also negate and DENY over attributes that are *not* in `required_attrs`,
//! where Cerbos' error semantics hide a point that lacks the key. Qdrant can test "empty"
//! (`is_empty`: missing, `null` or `[]`) but cannot tell a missing key from `[]`, so vecgate may
//! refuse such a policy (403, "exact or refused", DESIGN §2); those policies are marked
//! [`Expect::ExactOrRefused`]: every answer must then be either exact or a 403 in Qdrant's
//! error shape, never a leak. Every policy also runs on a second collection whose points carry
//! every attribute and declare the scalar ones in `required_attrs` (`tags` stays undeclared:
//! required attributes are scalars); there negations over scalars must be exact.
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

/// Optional attributes sometimes missing; `required_attrs: [department, region]`.
const SPARSE: &str = "corpus";
/// Every attribute present (tags never empty); the scalar ones in `required_attrs`.
const COMPLETE: &str = "complete";
const POINTS: usize = 120;
const PRINCIPALS_PER_POLICY: usize = 25;
const PRINCIPALS_PER_POLICY_COMPLETE: usize = 10;
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

/// What vecgate must answer for a policy on the sparse collection.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Expect {
    /// Exactly the reference answer.
    Exact,
    /// The reference answer, or a 403 refusal: the policy negates over an attribute that may
    /// be missing, which needs an existence test Qdrant has only up to `[]`, or over a list,
    /// where "without the element" includes `[]` (lists cannot be `required_attrs`, which
    /// are scalars).
    ExactOrRefused,
}

/// The policies under test: (name, YAML). Rules are for role `user` unless stated.
/// Expectations: (on the sparse collection, on the complete one).
fn policies() -> Vec<(&'static str, Expect, Expect, String)> {
    use Expect::{Exact, ExactOrRefused};
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
        ("equality", Exact, Exact, doc(allow("request.resource.attr.department == request.principal.attr.department"))),
        ("ownership", Exact, Exact, doc(allow(
            "request.resource.attr.owner == request.principal.id || (request.resource.attr.department == request.principal.attr.department && request.resource.attr.level <= request.principal.attr.clearance)"))),
        ("numeric-range", Exact, Exact, doc(allow(
            "request.resource.attr.level >= 2 && request.resource.attr.level <= request.principal.attr.clearance"))),
        ("lists", Exact, Exact, doc(allow(
            "request.principal.attr.tag in request.resource.attr.tags || request.resource.attr.region in request.principal.attr.regions"))),
        ("negation-over-required", Exact, Exact, doc(allow(
            "request.resource.attr.region != \"APAC\" && request.resource.attr.department != request.principal.attr.department"))),
        // `owner` is optional: a point without it makes the condition error, so it is hidden.
        ("negation-over-optional", ExactOrRefused, Exact, doc(allow(
            "request.resource.attr.owner != request.principal.id && request.resource.attr.region == request.principal.attr.region"))),
        ("negated-list-membership", ExactOrRefused, ExactOrRefused, doc(allow(
            "!(request.principal.attr.tag in request.resource.attr.tags) || request.resource.attr.department == request.principal.attr.department"))),
        ("deny-rule", Exact, Exact, doc(format!("{}{}",
            allow("request.resource.attr.region == request.principal.attr.region || request.resource.attr.owner == request.principal.id"),
            deny("request.resource.attr.level > request.principal.attr.clearance")))),
        // A DENY over an optional list: a point without `tags` errors the DENY, which the
        // default evaluation (Cerbos') ignores there; `!` inside it would still be refused.
        ("deny-on-optional-list", ExactOrRefused, ExactOrRefused, doc(format!("{}{}",
            allow("request.resource.attr.department == request.principal.attr.department || request.resource.attr.region == request.principal.attr.region"),
            deny("\"c\" in request.resource.attr.tags")))),
        ("has-guard", Exact, Exact, doc(allow(
            "(has(request.resource.attr.owner) && request.resource.attr.owner == request.principal.id) || (has(request.resource.attr.level) && request.resource.attr.level >= 4 && request.resource.attr.region != request.principal.attr.region)"))),
        // Unowned points are public; owned ones only to their owner.
        ("not-has-public", ExactOrRefused, Exact, doc(allow(
            "!has(request.resource.attr.owner) || request.resource.attr.owner == request.principal.id"))),
        ("two-roles-with-deny", Exact, Exact, doc(format!("{}{}{}",
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

/// `complete`: every attribute present, `tags` never empty; else owner, level and tags are
/// sometimes missing.
fn random_metadata(rng: &mut Rng, complete: bool) -> Map<String, Json> {
    let mut m = Map::new();
    // Required: every write through vecgate guarantees these.
    m.insert("department".into(), json!(rng.pick(&DEPARTMENTS)));
    m.insert("region".into(), json!(rng.pick(&REGIONS)));
    if complete || rng.chance(80) {
        m.insert("owner".into(), json!(rng.pick(&OWNERS)));
    }
    if complete || rng.chance(85) {
        m.insert("level".into(), json!(1 + rng.below(5)));
    }
    if complete || rng.chance(75) {
        let mut tags: Vec<&str> = TAGS.iter().copied().filter(|_| rng.chance(45)).collect();
        if tags.is_empty() && complete {
            tags.push(rng.pick(&TAGS));
        }
        if !tags.is_empty() {
            m.insert("tags".into(), json!(tags));
        }
    }
    m
}

fn random_points(rng: &mut Rng, complete: bool) -> Vec<Point> {
    (0..POINTS)
        .map(|i| Point {
            id: if rng.chance(25) { json!(rng.uuid()) } else { json!(1000 + i) },
            vector: rng.vector(),
            metadata: random_metadata(rng, complete),
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
    fn post(&self, collection: &str, route: &str, body: &Json) -> (u16, Json) {
        let path = format!("/collections/{collection}/{route}");
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

/// A seeded collection and what is known about it.
struct Corpus {
    name: &'static str,
    points: Vec<Point>,
    by_key: BTreeMap<String, usize>,
    all_ids: Vec<Json>,
}

impl Corpus {
    fn seed(qdrant: &QdrantServer, name: &'static str, points: Vec<Point>) -> Corpus {
        qdrant.create_collection(name, 3);
        let seeded: Vec<(Json, Vec<f32>, Json)> =
            points.iter().map(|p| (p.id.clone(), p.vector.clone(), p.payload())).collect();
        qdrant.upsert(name, &seeded);
        assert_eq!(qdrant.count(name, None), Ok(POINTS as u64), "seeding {name}");
        let by_key = points.iter().enumerate().map(|(i, p)| (id_key(&p.id), i)).collect();
        let all_ids = points.iter().map(|p| p.id.clone()).collect();
        Corpus { name, points, by_key, all_ids }
    }

    fn point(&self, id: &Json) -> &Point {
        &self.points[self.by_key[&id_key(id)]]
    }
}

/// Counters for the summary line and the final sanity assertions.
#[derive(Default)]
struct Tally {
    answers: usize,
    refused: usize,
    /// Principals whose plain query was answered (not refused).
    answered_principals: usize,
    visible_total: usize,
    /// Principals who saw some points but not all: the test only means something with many.
    partial_views: usize,
    id_queries_readable: usize,
    id_queries_hidden: usize,
    retrieve_stripped: u64,
}

/// One principal's view of one collection, compared answer by answer with the reference.
struct Check<'a> {
    caller: &'a Caller<'a>,
    corpus: &'a Corpus,
    want: &'a BTreeSet<String>,
    expect: Expect,
    context: &'a str,
    /// How the upstream words a missing point id (with the id replaced by `<ID>`).
    upstream_missing: &'a str,
}

impl Check<'_> {
    /// `POST route body` through vecgate. `None` when vecgate refused it (403 in Qdrant's error
    /// shape), which only a refusable policy may do; otherwise the status and body.
    fn post(&self, what: &str, route: &str, body: &Json, tally: &mut Tally) -> Option<(u16, Json)> {
        let (status, got) = self.caller.post(self.corpus.name, route, body);
        tally.answers += 1;
        if status == 403 {
            assert_eq!(
                self.expect,
                Expect::ExactOrRefused,
                "{what}: refused (403), but this policy translates exactly: {}: {got}",
                self.context
            );
            assert!(got["status"]["error"].is_string(), "{what}: a refusal not in Qdrant's error shape: {got}");
            tally.refused += 1;
            return None;
        }
        Some((status, got))
    }

    /// An answer that must list exactly `want`'s points.
    fn expect_points<'g>(&self, what: &str, answer: &'g Option<(u16, Json)>, want: &BTreeSet<String>) -> Option<&'g Vec<Json>> {
        let (status, got) = answer.as_ref()?;
        assert_eq!(*status, 200, "{what}: {}: {got}\n{}", self.context, self.caller.vecgate.log_tail());
        let hits = points_of(got, what);
        let got_ids = ids_of(hits);
        assert_eq!(&got_ids, want, "{what}: {}\n{}", self.context, diff(&got_ids, want));
        Some(hits)
    }

    fn run(&self, rng: &mut Rng, tally: &mut Tally) {
        let (corpus, want, context) = (self.corpus, self.want, self.context);

        // 1. Plain vector query; payload not asked for, so none may come back.
        let what = format!("query on {}", corpus.name);
        let answer = self.post(&what, "points/query", &json!({"query": [0.5, 0.5, 1.0], "limit": LIMIT}), tally);
        if let Some(hits) = self.expect_points(&what, &answer, want) {
            for hit in hits {
                assert!(hit.get("payload").is_none_or(Json::is_null), "{what}: payload not trimmed back: {hit}; {context}");
            }
            tally.answered_principals += 1;
            tally.visible_total += want.len();
            if !want.is_empty() && want.len() < POINTS {
                tally.partial_views += 1;
            }
        }

        // 2. Hybrid: two prefetches fused with RRF, under a user filter excluding a region;
        //    only `page_content` asked for, so the forced metadata must be trimmed back.
        let excluded_region = rng.pick(&REGIONS);
        let what = format!("hybrid query without {excluded_region} on {}", corpus.name);
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
        let want_hybrid: BTreeSet<String> = corpus
            .points
            .iter()
            .filter(|p| want.contains(&id_key(&p.id)) && p.metadata["region"] != excluded_region)
            .map(|p| id_key(&p.id))
            .collect();
        let answer = self.post(&what, "points/query", &hybrid, tally);
        for hit in self.expect_points(&what, &answer, &want_hybrid).into_iter().flatten() {
            let p = corpus.point(&hit["id"]);
            assert_eq!(hit["payload"], json!({"page_content": p.payload()["page_content"]}), "{what}: payload: {context}");
        }

        // 3. Scroll with payloads: the stored payloads, untouched, and no next page.
        let what = format!("scroll on {}", corpus.name);
        let answer = self.post(&what, "points/scroll", &json!({"limit": LIMIT, "with_payload": true}), tally);
        for hit in self.expect_points(&what, &answer, want).into_iter().flatten() {
            assert_eq!(hit["payload"], corpus.point(&hit["id"]).payload(), "{what}: payload: {context}");
        }
        if let Some((_, got)) = &answer {
            assert!(got["result"]["next_page_offset"].is_null(), "{what}: a next page beyond the limit: {context}");
        }

        // 4. Exact count.
        let what = format!("count on {}", corpus.name);
        if let Some((status, got)) = self.post(&what, "points/count", &json!({"exact": true}), tally) {
            assert_eq!(status, 200, "{what}: {context}: {got}");
            assert_eq!(got["result"]["count"], json!(want.len()), "{what}: {context}");
        }

        // 5. Retrieve every id: exactly the allowed ones, without payload as asked.
        let what = format!("retrieve all ids on {}", corpus.name);
        let answer = self.post(&what, "points", &json!({"ids": corpus.all_ids, "with_payload": false}), tally);
        for hit in self.expect_points(&what, &answer, want).into_iter().flatten() {
            assert!(hit.get("payload").is_none_or(Json::is_null), "{what}: payload not trimmed back: {hit}; {context}");
        }

        // 6. A point id as query input, by `nearest` and by `recommend.positive`: readable →
        //    the other allowed points (Qdrant leaves the input out); not readable → exactly
        //    Qdrant's answer for a missing point.
        for form in ["nearest", "recommend"] {
            let input = &corpus.points[rng.below(POINTS)].id;
            let query = match form {
                "nearest" => json!({"nearest": input}),
                _ => json!({"recommend": {"positive": [input]}}),
            };
            let what = format!("query {query} on {}", corpus.name);
            let Some((status, got)) = self.post(&what, "points/query", &json!({"query": query, "limit": LIMIT}), tally) else {
                continue;
            };
            if want.contains(&id_key(input)) {
                let mut expected = want.clone();
                expected.remove(&id_key(input));
                self.expect_points(&what, &Some((status, got)), &expected);
                tally.id_queries_readable += 1;
            } else {
                assert_eq!(status, 404, "{what}: an unreadable point id must look missing: {context}: {got}");
                assert_eq!(missing_point_error(&got, input), self.upstream_missing, "{what}: {context}: {got}");
                tally.id_queries_hidden += 1;
            }
        }
    }
}

#[test]
fn vecgate_qdrant_answers_equal_the_reference_decision_for_random_points_principals_and_policies() {
    let seed = std::env::var("VECGATE_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_4321_u64);
    let mut rng = Rng(seed.wrapping_mul(2).wrapping_add(1));

    let qdrant = QdrantServer::start();
    let sparse = Corpus::seed(&qdrant, SPARSE, random_points(&mut rng, false));
    let complete = Corpus::seed(&qdrant, COMPLETE, random_points(&mut rng, true));
    let uuid_points = sparse.points.iter().filter(|p| p.id.is_string()).count();
    assert!(uuid_points > 0 && uuid_points < POINTS, "want both id kinds, got {uuid_points} UUIDs");
    let missing_keys = sparse.points.iter().filter(|p| p.metadata.len() < 5).count();
    assert!(missing_keys * 4 >= POINTS, "only {missing_keys} points lack an optional attribute");

    // How the upstream itself answers a point id that does not exist, as a query input.
    let absent_id = json!(999_999);
    let (status, body) = match qdrant.post_json(
        &format!("/collections/{SPARSE}/points/query"),
        &json!({"query": {"nearest": absent_id}, "limit": 3}),
    ) {
        Ok(answer) => panic!("a query by an absent point id succeeded upstream: {answer}"),
        Err(e) => e,
    };
    assert_eq!(status, 404, "{body}");
    let upstream_missing = missing_point_error(&serde_json::from_str(&body).unwrap(), &absent_id);

    let mut tally = Tally::default();
    let mut refused_policies = Vec::new();
    for (name, expect_sparse, expect_complete, policy) in policies() {
        let dir = tempfile::tempdir().unwrap();
        write_policy_dir(dir.path(), &policy);
        let planner = Planner::new(Arc::new(load_dir(dir.path()).unwrap()), PlannerOptions::default());
        let mut options = VecgateOptions::qdrant(qdrant.url(), dir.path());
        // attr_prefix left out on purpose: Qdrant's default is `metadata.`.
        options.collections_yaml = format!(
            "  - name: {COMPLETE}\n    resource_kind: document\n    required_attrs: [department, region, owner, level]\n\
             \x20 - name: \"*\"\n    resource_kind: document\n    required_attrs: [department, region]\n"
        );
        options.upstream_timeout = "20s";
        let vecgate = VecgateServer::start(&options);
        let refused_before = tally.refused;

        for (corpus, principals, expect) in [
            (&sparse, PRINCIPALS_PER_POLICY, expect_sparse),
            // Scalar attributes declared and present: negations over them translate directly.
            (&complete, PRINCIPALS_PER_POLICY_COMPLETE, expect_complete),
        ] {
            for _ in 0..principals {
                let (sub, roles, claims) = random_claims(&mut rng);
                let want = reference_ids(&planner, &sub, &roles, &claims, &corpus.points);
                let caller = Caller { vecgate: &vecgate, token: token(&sub, &roles, &claims), api_key_header: rng.chance(50) };
                let context = format!(
                    "policy {name}, collection {}, principal {sub} {roles:?} {claims}, {} header, seed {seed}",
                    corpus.name,
                    if caller.api_key_header { "api-key" } else { "bearer" }
                );
                let check = Check { caller: &caller, corpus, want: &want, expect, context: &context, upstream_missing: &upstream_missing };
                check.run(&mut rng, &mut tally);
            }
        }
        if tally.refused > refused_before {
            refused_policies.push(format!("{name} ({} answers)", tally.refused - refused_before));
        }

        // Nothing was stripped from filtered reads: the pushed-down filter alone was exact.
        // Retrieve by ids has no filter to push into; it is post-filtered by design (DESIGN §3).
        let audit = vecgate.audit_lines();
        assert!(audit.len() >= PRINCIPALS_PER_POLICY * 7, "policy {name}: only {} audit lines", audit.len());
        for line in &audit {
            let stripped = line["hits_stripped"].as_u64().unwrap_or(0);
            if line["operation"] == "get_points" {
                tally.retrieve_stripped += stripped;
            } else {
                assert_eq!(stripped, 0, "policy {name}: the filter let through hits the post-filter removed: {line}");
            }
        }
    }

    let answered = tally.answered_principals;
    assert!(answered * 2 >= policies().len() * (PRINCIPALS_PER_POLICY + PRINCIPALS_PER_POLICY_COMPLETE), "only {answered} principals were answered");
    assert!(tally.partial_views * 10 >= answered * 7, "only {} of {answered} answered principals saw a strict subset", tally.partial_views);
    assert!(
        tally.id_queries_readable * 10 >= answered && tally.id_queries_hidden * 10 >= answered,
        "id queries too one-sided: {} readable, {} hidden",
        tally.id_queries_readable,
        tally.id_queries_hidden
    );
    eprintln!(
        "differential (qdrant): 2 collections x {POINTS} points ({uuid_points} UUID ids, {missing_keys} lacking an optional attribute in {SPARSE}), {} policies x ({PRINCIPALS_PER_POLICY} + {PRINCIPALS_PER_POLICY_COMPLETE}) principals, {} answers compared, {} refused (403) [{}], {answered} principals answered, {} visible ids in all, {} partial views, id queries {} readable / {} hidden, {} hits stripped from retrieves; seed {seed}",
        policies().len(),
        tally.answers,
        tally.refused,
        refused_policies.join(", "),
        tally.visible_total,
        tally.partial_views,
        tally.id_queries_readable,
        tally.id_queries_hidden,
        tally.retrieve_stripped,
    );
}
