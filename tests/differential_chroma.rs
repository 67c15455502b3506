//! Differential test: vecgate + real Chroma against the reference decision.
//!
//! Random records (department, region, owner, level, tags; some keys missing) are stored in a
//! real Chroma server. For each of several policies, vecgate is started in front of it, and
//! random principals query, get and count through vecgate with k ≥ the collection size. The
//! ids each one gets must equal exactly the records the policy engine allows when it
//! evaluates each record in full (`Planner::check`): no leak, nothing missing.
//!
//! The generators and the reference live in `tests/support/differential.rs` (the soak uses
//! them too). Seed: `VECGATE_DIFF_SEED` (default fixed), so a failure can be replayed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Map, Value as Json};
use std::path::Path;
use std::sync::Arc;
use support::chroma::DEFAULT_DB_PATH;
use support::differential::{ids_of, random_claims, random_record, reference_ids, Rng};
use support::vecgate::{token, VecgateOptions, VecgateServer};
use support::ChromaServer;
use vecgate::policy::load::load_dir;
use vecgate::policy::evaluation::Evaluation;
use vecgate::policy::planner::{Planner, PlannerOptions};

const RECORDS: usize = 150;
const PRINCIPALS_PER_POLICY: usize = 40;

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
    let mut rng = Rng::seeded(seed);

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
        // A DENY over an ordering of a key that may be missing or hold a string cannot be
        // pushed down to Chroma under Cerbos' default (the records where the DENY's condition
        // is not true include those, and Chroma cannot select them): that policy runs with
        // `fail_closed`, and under the default it must be refused (below).
        let evaluation = if name == "deny-rule" { Evaluation::FailClosed } else { Evaluation::Cerbos };
        let planner = Planner::new(
            Arc::new(load_dir(dir.path()).unwrap()),
            PlannerOptions { evaluation, ..PlannerOptions::default() },
        );
        if name == "deny-rule" {
            let mut options = VecgateOptions::chroma(chroma.url(), dir.path());
            options.collections_yaml =
                "  - name: \"*\"\n    resource_kind: document\n    required_attrs: [department, region]\n".into();
            let cerbos_mode = VecgateServer::start(&options);
            let (sub, roles, claims) = random_claims(&mut rng);
            let (status, body) = cerbos_mode.call(
                "POST",
                &format!("{col}/get"),
                Some(&token(&sub, &roles, &claims)),
                Some(&json!({"include": []})),
            );
            assert_eq!(status, 403, "evaluation: cerbos must refuse the untranslatable DENY: {body}");
            assert!(body.to_string().contains("request.resource.attr.level"), "{body}");
        }
        let mut options = VecgateOptions::chroma(chroma.url(), dir.path());
        options.policies_evaluation = evaluation.name();
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
