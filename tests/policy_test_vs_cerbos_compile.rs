//! `vecgate policy test` and `cerbos compile` (the real 0.55.0 binary) run over the same
//! suites must pass and fail the same test cases, one (suite, test, principal, resource,
//! action) at a time:
//! - the project's own policies and tests (`policies/`) and the fixture suites of
//!   tests/fixtures/policy_test and tests/fixtures/request_fields;
//! - suites written for Cerbos' conformance policies (tests/conformance/cerbos/policies);
//! - suites over generated policy sets (tests/support/policygen.rs), with every TestOptions
//!   field varied per test (`now`, `lenientScopeSearch`, `globals`, `defaultPolicyVersion`,
//!   `defaultScope`, `strictEvaluation`).
//!
//! The expectations of the written suites are vecgate's own decisions with about a third of
//! them flipped, so both tools see passing and failing cases; agreeing on which is which is
//! the property. `VECGATE_SUITE_SEED` reproduces a run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
use support::policygen::attr_map;

use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use support::cerbos;
use support::policygen::{self, Rng};
use vecgate::policy::evaluation::Evaluation;
use vecgate::policy::load::load_dir;
use vecgate::policy::planner::{PlanRequest, Planner, PlannerOptions, Principal};
use vecgate::policy::suite::policy_test::{run_dir, Event};

/// (suite name, test name, principal, resource, action) → passed.
type Outcomes = BTreeMap<(String, String, String, String, String), bool>;

fn cerbos_outcomes(dir: &Path) -> Outcomes {
    let report = cerbos::compile(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut out = Outcomes::new();
    for suite in report["suites"].as_array().cloned().unwrap_or_default() {
        let suite_name = suite["name"].as_str().unwrap_or_default().to_string();
        for case in suite["testCases"].as_array().cloned().unwrap_or_default() {
            let test = case["name"].as_str().unwrap_or_default().to_string();
            for p in case["principals"].as_array().cloned().unwrap_or_default() {
                for r in p["resources"].as_array().cloned().unwrap_or_default() {
                    for a in r["actions"].as_array().cloned().unwrap_or_default() {
                        let result = a["details"]["result"].as_str().unwrap_or_default();
                        if result == "RESULT_SKIPPED" {
                            continue;
                        }
                        out.insert(
                            (
                                suite_name.clone(),
                                test.clone(),
                                p["name"].as_str().unwrap_or_default().to_string(),
                                r["name"].as_str().unwrap_or_default().to_string(),
                                a["name"].as_str().unwrap_or_default().to_string(),
                            ),
                            result == "RESULT_PASSED",
                        );
                    }
                }
            }
        }
    }
    out
}

/// vecgate's outcomes, and the (suite, test) pairs whose `outputs` expectations it does not
/// evaluate (a deliberate divergence: docs/deviations.md).
fn vecgate_outcomes(dir: &Path) -> (Outcomes, Vec<(String, String)>) {
    let report = run_dir(dir, Evaluation::Cerbos).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let without_outputs = report
        .events
        .iter()
        .filter_map(|e| match e {
            Event::OutputsNotChecked { suite, test } => Some((suite.clone(), test.clone())),
            _ => None,
        })
        .collect();
    let outcomes = report
        .checks()
        .map(|c| {
            (
                (
                    c.suite.clone(),
                    c.test.clone(),
                    c.principal.clone(),
                    c.resource.clone(),
                    c.action.clone(),
                ),
                c.passed(),
            )
        })
        .collect();
    (outcomes, without_outputs)
}

/// Runs both tools on `dir`; returns (cases compared, cases that failed in both).
fn compare(dir: &Path, what: &str) -> (usize, usize) {
    let mut theirs = cerbos_outcomes(dir);
    let (ours, without_outputs) = vecgate_outcomes(dir);
    // Test cases with `outputs` expectations: vecgate judges them on effects alone.
    theirs.retain(|(suite, test, ..), _| !without_outputs.contains(&(suite.clone(), test.clone())));
    let ours: Outcomes = ours
        .into_iter()
        .filter(|((suite, test, ..), _)| !without_outputs.contains(&(suite.clone(), test.clone())))
        .collect();
    assert!(!theirs.is_empty(), "{what}: cerbos compile ran no test case");
    let mut differences = Vec::new();
    for (case, passed) in &theirs {
        match ours.get(case) {
            Some(p) if p == passed => {}
            other => differences.push(format!("{case:?}: cerbos compile {passed}, vecgate {other:?}")),
        }
    }
    for case in ours.keys().filter(|c| !theirs.contains_key(*c)) {
        differences.push(format!("{case:?}: only vecgate ran it"));
    }
    assert!(
        differences.is_empty(),
        "{what}: `vecgate policy test` and `cerbos compile` disagree on {} of {} cases:\n{}",
        differences.len(),
        theirs.len(),
        differences.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    let failed = theirs.values().filter(|p| !**p).count();
    (theirs.len(), failed)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}


/// Options for one test: each field set or left out at random.
fn random_options(rng: &mut Rng, scopes: &[&str]) -> Json {
    let mut o = serde_json::Map::new();
    o.insert("now".into(), json!("2024-06-01T12:00:00Z"));
    if rng.chance(40) {
        o.insert("strictEvaluation".into(), json!(rng.chance(60)));
    }
    if rng.chance(40) {
        o.insert("lenientScopeSearch".into(), json!(rng.chance(60)));
    }
    if rng.chance(70) {
        o.insert(
            "globals".into(),
            json!({"env": *rng.pick(&["test", "prod"]), "maxLevel": 1 + rng.below(4), "environment": "test"}),
        );
    }
    if rng.chance(30) {
        o.insert("defaultPolicyVersion".into(), json!(rng.pick(&["default", "v2"])));
    }
    if rng.chance(40) {
        o.insert("defaultScope".into(), json!(rng.pick(scopes)));
    }
    Json::Object(o)
}

/// The engine a test's options describe, as `vecgate policy test` builds it.
fn engine(set: Arc<vecgate::policy::model::PolicySet>, options: &Json) -> Planner {
    let evaluation = if options["strictEvaluation"] == json!(true) {
        Evaluation::CerbosStrict
    } else {
        Evaluation::Cerbos
    };
    Planner::new(
        set,
        PlannerOptions {
            globals: attr_map(&options["globals"]),
            default_version: options["defaultPolicyVersion"].as_str().unwrap_or("default").to_string(),
            default_scope: options["defaultScope"].as_str().unwrap_or("").to_string(),
            lenient_scope_search: options["lenientScopeSearch"] == json!(true),
            evaluation,
            ..PlannerOptions::default()
        },
    )
}

/// Writes a suite over `principals` × `resources` × `actions` into `dir`, tests with random
/// options, expectations vecgate's decisions with about a third flipped.
fn write_suite(
    dir: &Path,
    name: &str,
    principals: &[Json],
    resources: &[Json],
    actions: &[String],
    scopes: &[&str],
    rng: &mut Rng,
) {
    let set = Arc::new(load_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())));
    let now = chrono::DateTime::parse_from_rfc3339("2024-06-01T12:00:00Z").unwrap();
    let no_jwt = BTreeMap::new();
    let principal_names: Vec<String> = (0..principals.len()).map(|i| format!("p{i}")).collect();
    let resource_names: Vec<String> = (0..resources.len()).map(|i| format!("r{i}")).collect();
    let mut tests = Vec::new();
    for t in 0..3 {
        let options = random_options(rng, scopes);
        let planner = engine(set.clone(), &options);
        let mut expected = Vec::new();
        for (pi, p) in principals.iter().enumerate() {
            let principal = Principal {
                id: p["id"].as_str().unwrap().to_string(),
                roles: p["roles"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect(),
                attr: attr_map(&p["attr"]),
                scope: p["scope"].as_str().unwrap_or("").to_string(),
                policy_version: String::new(),
            };
            for (ri, r) in resources.iter().enumerate() {
                let attrs = attr_map(&r["attr"]);
                let checked = planner.check_actions(&PlanRequest {
                    principal: &principal,
                    resource_kind: r["kind"].as_str().unwrap(),
                    resource_scope: r["scope"].as_str().unwrap_or(""),
                    resource_version: "",
                    resource_attr: &attrs,
                    resource_id: Some(r["id"].as_str().unwrap()),
                    attr_complete: true,
                    actions,
                    jwt: &no_jwt,
                    now: now.fixed_offset(),
                });
                let effects: serde_json::Map<String, Json> = checked
                    .into_iter()
                    .map(|(a, allowed)| {
                        let expect = if rng.chance(33) { !allowed } else { allowed };
                        (a, json!(if expect { "EFFECT_ALLOW" } else { "EFFECT_DENY" }))
                    })
                    .collect();
                expected.push(json!({
                    "principal": principal_names[pi],
                    "resource": resource_names[ri],
                    "actions": effects,
                }));
            }
        }
        tests.push(json!({
            "name": format!("test {t}"),
            "options": options,
            "input": {"principals": principal_names, "resources": resource_names, "actions": actions},
            "expected": expected,
        }));
    }
    let suite = json!({
        "name": name,
        "principals": principal_names.iter().cloned().zip(principals.iter().cloned()).collect::<serde_json::Map<_, _>>(),
        "resources": resource_names.iter().cloned().zip(resources.iter().cloned()).collect::<serde_json::Map<_, _>>(),
        "tests": tests,
    });
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    std::fs::write(dir.join(format!("tests/{name}_test.json")), serde_json::to_string_pretty(&suite).unwrap()).unwrap();
}

fn seed() -> u64 {
    std::env::var("VECGATE_SUITE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                % 1_000_000_000
        })
}

#[test]
fn the_project_policies_and_fixture_suites() {
    let root = support::repo_root();
    let (cases, _) = compare(&root.join("policies"), "policies/");
    println!("policies/: {cases} cases agree");
    let (cases, failed) = compare(&root.join("tests/fixtures/policy_test"), "tests/fixtures/policy_test");
    println!("tests/fixtures/policy_test: {cases} cases agree ({failed} failing in both)");
    // Every case of this suite passes in Cerbos: defaultScope/defaultPolicyVersion choose
    // where policies are found while conditions see the request's own scope and version.
    let (cases, failed) = compare(&root.join("tests/fixtures/request_fields"), "tests/fixtures/request_fields");
    assert_eq!(failed, 0, "tests/fixtures/request_fields: every case passes in cerbos compile");
    println!("tests/fixtures/request_fields: {cases} cases agree");
}

#[test]
fn suites_over_the_conformance_policies() {
    let seed = seed();
    println!("seed {seed} (reproduce with VECGATE_SUITE_SEED={seed})");
    let mut rng = Rng::new(seed);
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&support::repo_root().join("tests/conformance/cerbos/policies"), tmp.path());
    // Principals and resources over the attributes the conformance policies read.
    let principals = vec![
        json!({"id": "maggie", "roles": ["employee", "manager"], "attr": {"department": "marketing", "geography": "GB", "team": "design", "managed_geographies": "GB", "reader": false}}),
        json!({"id": "harry", "roles": ["employee"], "attr": {"department": "engineering", "geography": "US", "reader": true}}),
        json!({"id": "donald_duck", "roles": ["USER"], "attr": {"workspaces": {"workspaceA": {"role": "MANAGER"}}}}),
        json!({"id": "sam", "roles": ["ADMIN", "USER"], "attr": {}}),
    ];
    let kinds = ["leave_request", "contact", "x", "report_with_map", "tax_return", "expense"];
    let mut resources = Vec::new();
    for (i, kind) in kinds.iter().cycle().take(18).enumerate() {
        let mut attr = serde_json::Map::new();
        for (k, values) in [
            ("status", vec![json!("DRAFT"), json!("PENDING_APPROVAL"), json!("APPROVED")]),
            ("owner", vec![json!("maggie"), json!("harry"), json!("donald_duck")]),
            ("department", vec![json!("marketing"), json!("engineering")]),
            ("geography", vec![json!("GB"), json!("US")]),
            ("team", vec![json!("design"), json!("ops")]),
            ("workspaceId", vec![json!("workspaceA"), json!("workspaceB")]),
            ("public", vec![json!(true), json!(false)]),
            ("id", vec![json!("x1"), json!(7)]),
        ] {
            if rng.chance(75) {
                attr.insert(k.into(), rng.pick(&values).clone());
            }
        }
        resources.push(json!({"kind": kind, "id": format!("res{i}"), "attr": attr, "scope": *rng.pick(&["", "acme", "acme.hr"])}));
    }
    let actions: Vec<String> = ["view", "approve", "edit", "delete", "create", "read"].iter().map(|s| s.to_string()).collect();
    write_suite(tmp.path(), "Conformance", &principals, &resources, &actions, &["", "acme", "acme.hr"], &mut rng);
    let (cases, failed) = compare(tmp.path(), "conformance policies");
    println!("conformance policies: {cases} cases agree ({failed} failing in both)");
}

#[test]
fn suites_over_generated_policy_sets() {
    let seed = seed();
    println!("seed {seed} (reproduce with VECGATE_SUITE_SEED={seed})");
    let mut rng = Rng::new(seed);
    let mut total = 0;
    for i in 0..3 {
        let set = policygen::generate(seed.wrapping_add(1000 + i), 5, 12);
        let tmp = tempfile::tempdir().unwrap();
        for (name, text) in &set.files {
            std::fs::write(tmp.path().join(name), text).unwrap();
        }
        write_suite(tmp.path(), &format!("Generated{i}"), &set.principals, &set.resources, &set.actions, &policygen::SCOPES, &mut rng);
        // VECGATE_SUITE_KEEP leaves the policies and suite on disk, to run both tools by hand.
        let (dir, _removed_at_end) = if std::env::var_os("VECGATE_SUITE_KEEP").is_some() {
            let kept = tmp.keep();
            println!("generated set {i} kept in {}", kept.display());
            (kept, None)
        } else {
            (tmp.path().to_path_buf(), Some(tmp))
        };
        let (cases, failed) = compare(&dir, &format!("generated set {i}"));
        println!("generated set {i}: {cases} cases agree ({failed} failing in both)");
        total += cases;
    }
    println!("{total} cases in all");
}
