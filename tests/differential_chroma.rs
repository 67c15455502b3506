//! Differential test: vecgate + real Chroma against the reference decision.
//!
//! Random records (department, region, owner, level, tags; some keys missing) are stored in a
//! real Chroma server. For each of several policies, vecgate is started in front of it, and
//! random principals query, get and count through vecgate with k ≥ the collection size. The
//! ids each one gets must equal exactly the records the policy engine allows when it
//! evaluates each record in full (`Planner::check`): no leak, nothing missing.
//!
//! Seed: `VECGATE_DIFF_SEED` (default fixed), so a failure can be replayed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Map, Value as Json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use support::chroma::DEFAULT_DB_PATH;
use support::vecgate::{token, VecgateOptions, VecgateServer};
use support::ChromaServer;
use vecgate::plan::Value;
use vecgate::policy::load::load_dir;
use vecgate::policy::planner::{PlanRequest, Planner, PlannerOptions, Principal};

const RECORDS: usize = 150;
const PRINCIPALS_PER_POLICY: usize = 40;

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
}

/// The policies under test: (name, rules for role `user`, YAML).
fn policies() -> Vec<(&'static str, String)> {
    let rule_for = |role: &str, actions: &str, effect: &str, expr: &str| {
        format!(
            "    - actions: [{actions}]\n      effect: {effect}\n      roles: [{role}]\n      condition:\n        match:\n          expr: '{expr}'\n"
        )
    };
    let rule = |actions: &str, effect: &str, expr: &str| rule_for("user", actions, effect, expr);
    let doc = |rules: String| {
        format!(
            "apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: document\n  version: default\n  rules:\n{rules}"
        )
    };
    vec![
        ("equality", doc(rule("read", "EFFECT_ALLOW", "request.resource.attr.department == request.principal.attr.department"))),
        ("ownership", doc(rule("read", "EFFECT_ALLOW",
            "request.resource.attr.owner == request.principal.id || (request.resource.attr.department == request.principal.attr.department && request.resource.attr.level <= request.principal.attr.clearance)"))),
        ("numeric-range", doc(rule("read", "EFFECT_ALLOW",
            "request.resource.attr.level >= 2 && request.resource.attr.level <= request.principal.attr.clearance"))),
        ("lists", doc(rule("read", "EFFECT_ALLOW",
            "request.principal.attr.tag in request.resource.attr.tags || request.resource.attr.region in request.principal.attr.regions"))),
        ("negation-over-required", doc(rule("read", "EFFECT_ALLOW",
            "request.resource.attr.region != \"APAC\" && request.resource.attr.department != request.principal.attr.department"))),
        ("deny-rule", doc(format!("{}{}",
            rule("read", "EFFECT_ALLOW", "request.resource.attr.region == request.principal.attr.region || request.resource.attr.owner == request.principal.id"),
            rule("read", "EFFECT_DENY", "request.resource.attr.level > request.principal.attr.clearance")))),
        ("has-guard", doc(rule("read", "EFFECT_ALLOW",
            "(has(request.resource.attr.owner) && request.resource.attr.owner == request.principal.id) || (has(request.resource.attr.level) && request.resource.attr.level >= 4 && request.resource.attr.region != request.principal.attr.region)"))),
        ("two-roles-with-deny", doc(format!("{}{}{}",
            rule("read", "EFFECT_ALLOW", "request.resource.attr.department == request.principal.attr.department"),
            rule_for("manager", "read", "EFFECT_ALLOW", "request.resource.attr.region == request.principal.attr.region && request.resource.attr.level >= 3"),
            rule("read", "EFFECT_DENY", "request.resource.attr.region == \"APAC\" && request.resource.attr.department != \"eng\"")))),
    ]
}

const COLLECTION_POLICY: &str = "apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: collection\n  version: default\n  rules:\n    - actions: [read]\n      effect: EFFECT_ALLOW\n      roles: [user, manager]\n";

fn random_record(rng: &mut Rng) -> Map<String, Json> {
    let mut m = Map::new();
    // Required: every write through vecgate guarantees these.
    m.insert("department".into(), json!(rng.pick(&DEPARTMENTS)));
    m.insert("region".into(), json!(rng.pick(&REGIONS)));
    if rng.chance(85) {
        m.insert("owner".into(), json!(rng.pick(&OWNERS)));
    }
    if rng.chance(85) {
        m.insert("level".into(), json!(1 + rng.below(5)));
    }
    if rng.chance(80) {
        let tags: Vec<&str> = TAGS.iter().copied().filter(|_| rng.chance(40)).collect();
        if !tags.is_empty() {
            m.insert("tags".into(), json!(tags));
        }
    }
    m
}

fn random_claims(rng: &mut Rng) -> (String, Vec<&'static str>, Json) {
    let sub = rng.pick(&OWNERS).to_string();
    let roles = if rng.chance(30) { vec!["user", "manager"] } else { vec!["user"] };
    let mut regions: Vec<&str> = REGIONS.iter().copied().filter(|_| rng.chance(40)).collect();
    regions.dedup();
    let claims = json!({
        "department": rng.pick(&DEPARTMENTS),
        "region": rng.pick(&REGIONS),
        "clearance": 1 + rng.below(5),
        "tag": rng.pick(&TAGS),
        "regions": regions,
    });
    (sub, roles, claims)
}

/// What the policy engine allows, record by record, evaluating each one in full.
fn reference_ids(
    planner: &Planner,
    sub: &str,
    roles: &[&str],
    claims: &Json,
    records: &[(String, Map<String, Json>)],
) -> BTreeSet<String> {
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
    records
        .iter()
        .filter(|(id, meta)| {
            let resource_attr: BTreeMap<String, Value> =
                meta.iter().map(|(k, v)| (k.clone(), Value::from_json(v))).collect();
            planner.check(&PlanRequest {
                principal: &principal,
                resource_kind: "document",
                resource_scope: "",
                resource_version: "",
                resource_attr: &resource_attr,
                resource_id: Some(id),
                attr_complete: true,
                actions: &actions,
                jwt: &jwt,
                now: chrono::Utc::now().fixed_offset(),
            })
        })
        .map(|(id, _)| id.clone())
        .collect()
}

fn ids_of(v: &Json) -> BTreeSet<String> {
    v["ids"]
        .as_array()
        .unwrap_or_else(|| panic!("no ids in {v}"))
        .iter()
        .flat_map(|i| match i {
            Json::Array(inner) => inner.clone(),
            other => vec![other.clone()],
        })
        .map(|i| i.as_str().unwrap().to_string())
        .collect()
}

fn write_policy_dir(dir: &Path, policy: &str) {
    std::fs::write(dir.join("document.yaml"), policy).unwrap();
    std::fs::write(dir.join("collection.yaml"), COLLECTION_POLICY).unwrap();
}

#[test]
fn vecgate_answers_equal_the_reference_decision_for_random_records_principals_and_policies() {
    let seed = std::env::var("VECGATE_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234_u64);
    let mut rng = Rng(seed.wrapping_mul(2).wrapping_add(1));

    let chroma = ChromaServer::start();
    let col_id = chroma.create_collection("corpus");
    let records: Vec<(String, Map<String, Json>)> =
        (0..RECORDS).map(|i| (format!("r{i:03}"), random_record(&mut rng))).collect();
    let seeded: Vec<(String, Json, Vec<f32>)> = records
        .iter()
        .map(|(id, m)| (id.clone(), Json::Object(m.clone()), vec![rng.below(100) as f32 / 100.0, rng.below(100) as f32 / 100.0, 1.0]))
        .collect();
    chroma.add(&col_id, &seeded);
    let col = format!("{DEFAULT_DB_PATH}/collections/{col_id}");

    let mut compared = 0usize;
    let mut visible_total = 0usize;
    // Principals who saw some records but not all: the test is only meaningful with many.
    let mut partial_views = 0usize;
    for (name, policy) in policies() {
        let dir = tempfile::tempdir().unwrap();
        write_policy_dir(dir.path(), &policy);
        let planner = Planner::new(Arc::new(load_dir(dir.path()).unwrap()), PlannerOptions::default());
        let mut options = VecgateOptions::chroma(chroma.url(), dir.path());
        options.collections_yaml =
            "  - name: \"*\"\n    resource_kind: document\n    required_attrs: [department, region]\n".into();
        let vecgate = VecgateServer::start(&options);

        for _ in 0..PRINCIPALS_PER_POLICY {
            let (sub, roles, claims) = random_claims(&mut rng);
            let want = reference_ids(&planner, &sub, &roles, &claims, &records);
            let tok = token(&sub, &roles, &claims);
            let context = format!("policy {name}, principal {sub} {roles:?} {claims}, seed {seed}");

            let (status, got) = vecgate.call(
                "POST",
                &format!("{col}/query"),
                Some(&tok),
                Some(&json!({"query_embeddings": [[0.5, 0.5, 1.0]], "n_results": RECORDS + 5, "include": ["distances"]})),
            );
            assert_eq!(status, 200, "{context}: {got}\n{}", vecgate.log_tail());
            let got_ids = ids_of(&got);
            assert_eq!(got_ids, want, "query: {context}\nleaked: {:?}\nmissing: {:?}",
                got_ids.difference(&want).collect::<Vec<_>>(), want.difference(&got_ids).collect::<Vec<_>>());

            let (status, got) = vecgate.call("POST", &format!("{col}/get"), Some(&tok), Some(&json!({"include": []})));
            assert_eq!(status, 200, "{context}: {got}");
            assert_eq!(ids_of(&got), want, "get: {context}");

            let (status, got) = vecgate.call("GET", &format!("{col}/count"), Some(&tok), None);
            assert_eq!((status, got), (200, json!(want.len())), "count: {context}");

            compared += 3;
            visible_total += want.len();
            if !want.is_empty() && want.len() < RECORDS {
                partial_views += 1;
            }
        }
        // Nothing was stripped: the pushed-down filter alone was exact.
        let stripped: u64 = vecgate
            .audit_lines()
            .iter()
            .filter_map(|l| l["hits_stripped"].as_u64())
            .sum();
        assert_eq!(stripped, 0, "policy {name}: the filter let through hits the post-filter removed");
    }
    let principals = policies().len() * PRINCIPALS_PER_POLICY;
    assert!(partial_views * 10 >= principals * 7, "only {partial_views} of {principals} principals saw a strict subset");
    eprintln!(
        "differential: {RECORDS} records, {} policies x {PRINCIPALS_PER_POLICY} principals, {compared} answers compared, {visible_total} visible ids in all, {partial_views} partial views; seed {seed}",
        policies().len()
    );
}
