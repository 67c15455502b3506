//! Soundness, end to end: for generated policies, principals and records,
//! full evaluation == plan evaluation (`plan::eval`) == the translated Chroma `where` run by
//! a real Chroma server. A plan the translator refuses is counted, never skipped silently:
//! the test fails if too many are refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value as Json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use support::ChromaServer;
use vecgate::backends::{chroma, FieldMapping};
use vecgate::plan::eval::{allows, RecordEnv};
use vecgate::plan::functions::CallContext;
use vecgate::plan::{Plan, Value};
use vecgate::policy::load::load_documents;
use vecgate::policy::evaluation::Evaluation;
use vecgate::policy::planner::{PlanRequest, Planner, PlannerOptions, Principal};

const DEPARTMENTS: &[&str] = &["FINANCE", "HR", "IT"];
const REGIONS: &[&str] = &["EMEA", "AMER", "APAC"];
const PEOPLE: &[&str] = &["alice", "bob", "carol"];
const TAGS: &[&str] = &["a", "b", "c"];

/// Conditions over the record and the principal; each is translatable when `department`,
/// `region` and `level` are required attributes.
const CONDITIONS: &[&str] = &[
    "R.attr.department == P.attr.department",
    "R.attr.region == P.attr.region",
    "R.attr.owner == P.id",
    "R.attr.level <= P.attr.level",
    "R.attr.level > 2",
    "3 >= R.attr.level",
    "\"a\" in R.attr.tags",
    "P.attr.tag in R.attr.tags",
    "R.attr.department in [\"FINANCE\", \"HR\"]",
    "R.attr.region in P.attr.regions",
    "R.attr.public == true",
    "R.attr.department != \"IT\"",
    "!(R.attr.region == \"APAC\")",
    "!(R.attr.level in [1, 2])",
    "P.attr.level >= 4",
    "R.attr.department == P.attr.department || R.attr.owner == P.id",
    "R.attr.region == P.attr.region && R.attr.level < 5",
    "P.attr.regions.exists(r, r == R.attr.region)",
];

/// Conditions over required attributes only: usable under negation (DENY rules, `none`).
const REQUIRED_ONLY: &[usize] = &[0, 1, 3, 4, 5, 8, 9, 11, 12, 13, 14, 16, 17];

#[derive(Debug, Clone)]
struct GenRule {
    allow: bool,
    roles: Vec<&'static str>,
    /// Indexes into CONDITIONS; combined by `combinator`.
    conditions: Vec<usize>,
    combinator: u8,
}

fn rule_strategy() -> impl Strategy<Value = GenRule> {
    (
        prop::bool::weighted(0.75),
        prop::sample::subsequence(vec!["user", "manager", "*"], 1..=2),
        prop::collection::vec(0..CONDITIONS.len(), 0..=3),
        0u8..3,
    )
        .prop_map(|(allow, roles, conditions, combinator)| {
            let negated = !allow || combinator == 2;
            let conditions = conditions
                .into_iter()
                .map(|i| if negated { REQUIRED_ONLY[i % REQUIRED_ONLY.len()] } else { i })
                .collect();
            GenRule {
                allow,
                roles,
                conditions,
                combinator,
            }
        })
}

fn policy_yaml(rules: &[GenRule]) -> String {
    let mut out = String::from(
        "apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  version: default\n  resource: doc\n  rules:\n",
    );
    for r in rules {
        out.push_str(&format!(
            "    - actions: [\"read\"]\n      effect: {}\n      roles: [{}]\n",
            if r.allow { "EFFECT_ALLOW" } else { "EFFECT_DENY" },
            r.roles.iter().map(|x| format!("\"{x}\"")).collect::<Vec<_>>().join(", ")
        ));
        if r.conditions.is_empty() {
            continue;
        }
        let exprs: Vec<String> = r
            .conditions
            .iter()
            .map(|&i| format!("            - expr: {}", yaml_string(CONDITIONS[i])))
            .collect();
        let kind = ["all", "any", "none"][r.combinator as usize];
        if r.conditions.len() == 1 && r.combinator != 2 {
            out.push_str(&format!(
                "      condition:\n        match:\n          expr: {}\n",
                yaml_string(CONDITIONS[r.conditions[0]])
            ));
        } else {
            out.push_str(&format!(
                "      condition:\n        match:\n          {kind}:\n            of:\n{}\n",
                exprs.join("\n").replace("            - expr", "              - expr")
            ));
        }
    }
    out
}

fn yaml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn principal_strategy() -> impl Strategy<Value = Principal> {
    (
        prop::sample::select(PEOPLE.to_vec()),
        prop::sample::subsequence(vec!["user", "manager", "auditor"], 1..=2),
        prop::sample::select(DEPARTMENTS.to_vec()),
        prop::sample::select(REGIONS.to_vec()),
        1i64..=5,
        prop::sample::subsequence(REGIONS.to_vec(), 0..=2),
        prop::sample::select(TAGS.to_vec()),
    )
        .prop_map(|(id, roles, dept, region, level, regions, tag)| {
            let mut attr = BTreeMap::new();
            attr.insert("department".into(), Value::string(dept));
            attr.insert("region".into(), Value::string(region));
            attr.insert("level".into(), Value::Int(level));
            attr.insert(
                "regions".into(),
                Value::list(regions.into_iter().map(Value::string).collect()),
            );
            attr.insert("tag".into(), Value::string(tag));
            Principal {
                id: id.to_string(),
                roles: roles.into_iter().map(String::from).collect(),
                attr,
                ..Principal::default()
            }
        })
}

/// Records: department, region and level always present (required attributes); owner,
/// tags and public sometimes missing.
fn records(rng_seed: u64, n: usize) -> Vec<(String, Json)> {
    let mut state = rng_seed;
    let mut next = move |m: usize| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 33) as usize) % m
    };
    (0..n)
        .map(|i| {
            let mut m = serde_json::Map::new();
            m.insert("department".into(), json!(DEPARTMENTS[next(3)]));
            m.insert("region".into(), json!(REGIONS[next(3)]));
            m.insert("level".into(), json!(1 + next(5) as i64));
            if next(4) > 0 {
                m.insert("owner".into(), json!(PEOPLE[next(3)]));
            }
            if next(3) > 0 {
                let tags: Vec<&str> = TAGS.iter().copied().filter(|_| next(2) == 0).collect();
                if !tags.is_empty() {
                    m.insert("tags".into(), json!(tags));
                }
            }
            match next(3) {
                0 => {}
                1 => {
                    m.insert("public".into(), json!(true));
                }
                _ => {
                    m.insert("public".into(), json!(false));
                }
            }
            (format!("r{i:03}"), Json::Object(m))
        })
        .collect()
}

#[test]
fn full_evaluation_equals_plan_equals_real_chroma() {
    let server = ChromaServer::start();
    let collection = server.create_collection("soundness");
    let recs = records(7, 120);
    let with_vectors: Vec<(String, Json, Vec<f32>)> = recs
        .iter()
        .enumerate()
        .map(|(i, (id, m))| (id.clone(), m.clone(), vec![i as f32, 1.0, 0.5]))
        .collect();
    server.add(&collection, &with_vectors);
    let all_ids: BTreeSet<String> = recs.iter().map(|(id, _)| id.clone()).collect();
    let mapping = FieldMapping {
        attr_prefix: String::new(),
        required_attrs: ["department", "region", "level"].iter().map(|s| s.to_string()).collect(),
    };
    let now = chrono::Utc::now().fixed_offset();
    let ctx = CallContext { now };
    let actions = vec!["read".to_string()];
    let empty = BTreeMap::new();

    let stats = std::cell::RefCell::new(BTreeMap::<(&str, &str), usize>::new());
    let mut runner = TestRunner::new(Config {
        cases: 300,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        prop::collection::vec(rule_strategy(), 1..=4),
        prop::collection::vec(principal_strategy(), 3),
    );
    runner
        .run(&strategy, |(rules, principals)| {
            let yaml = policy_yaml(&rules);
            let set = load_documents(&[("doc.yaml".to_string(), yaml.clone())])
                .map_err(|e| TestCaseError::fail(format!("{e}\n{yaml}")))?;
            let set = Arc::new(set);
            for evaluation in Evaluation::ALL {
            let mode = evaluation.name();
            let planner = Planner::new(set.clone(), PlannerOptions { evaluation, ..PlannerOptions::default() });
            for principal in &principals {
                let request = PlanRequest {
                    principal,
                    resource_kind: "doc",
                    resource_scope: "",
                    resource_version: "",
                    resource_attr: &empty,
                    resource_id: None,
                    attr_complete: false,
                    actions: &actions,
                    jwt: &empty,
                    now,
                };
                let plan = planner.plan(&request).plan;
                let mut by_plan = BTreeSet::new();
                for (id, meta) in &recs {
                    let attrs: BTreeMap<String, Value> = meta
                        .as_object()
                        .unwrap()
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::from_json(v)))
                        .collect();
                    let full = planner.check(&PlanRequest {
                        resource_attr: &attrs,
                        resource_id: Some(id),
                        attr_complete: true,
                        ..request.clone()
                    });
                    let env = RecordEnv::new(Value::string(id), "doc", Value::from_json(meta), ctx);
                    let planned = allows(&plan, &env);
                    prop_assert_eq!(
                        full,
                        planned,
                        "{}: full evaluation and plan disagree on {} {} for {:?}\nplan {}\n{}",
                        mode,
                        id,
                        meta,
                        principal,
                        plan.debug_string(),
                        yaml
                    );
                    if planned {
                        by_plan.insert(id.clone());
                    }
                }
                let from_chroma: BTreeSet<String> = match &plan {
                    Plan::AlwaysAllowed => {
                        *stats.borrow_mut().entry((mode, "always allowed")).or_default() += 1;
                        all_ids.clone()
                    }
                    Plan::AlwaysDenied => {
                        *stats.borrow_mut().entry((mode, "always denied")).or_default() += 1;
                        BTreeSet::new()
                    }
                    Plan::Conditional(e) => match chroma::filter::translate(e, &mapping, 500) {
                        Ok(where_) => {
                            *stats.borrow_mut().entry((mode, "translated")).or_default() += 1;
                            server
                                .get_ids(&collection, Some(&where_))
                                .map_err(|(s, b)| {
                                    TestCaseError::fail(format!("chroma {s}: {b} for {where_}"))
                                })?
                                .into_iter()
                                .collect()
                        }
                        Err(err) => {
                            *stats.borrow_mut().entry((mode, "refused")).or_default() += 1;
                            println!("refused: {err} for {}", plan.debug_string());
                            continue;
                        }
                    },
                };
                prop_assert_eq!(
                    &by_plan,
                    &from_chroma,
                    "{}: plan and Chroma disagree for {:?}\nplan {}\n{}",
                    mode,
                    principal,
                    plan.debug_string(),
                    yaml
                );
            }
            }
            Ok(())
        })
        .unwrap();
    let stats = stats.into_inner();
    println!("soundness stats: {stats:?}");
    // Refusals are what each mode costs on Chroma: under `fail_closed` a DENY's condition is
    // needed false (Chroma has `$lte` for `not >`); under `cerbos` it is needed "not true",
    // which for an ordering over a key that may be missing has no Chroma form; under
    // `cerbos_strict` every rule on the path must not error, i.e. its keys exist.
    for (mode, min_translated, max_refused_share) in
        [("fail_closed", 100, 0.1), ("cerbos", 100, 1.0), ("cerbos_strict", 40, 4.0)]
    {
        let translated = stats.get(&(mode, "translated")).copied().unwrap_or(0);
        let refused = stats.get(&(mode, "refused")).copied().unwrap_or(0);
        assert!(translated >= min_translated, "{mode}: too few conditional plans were checked: {stats:?}");
        assert!(
            refused as f64 <= max_refused_share * translated as f64,
            "{mode}: too many refusals: {stats:?}"
        );
    }
}
