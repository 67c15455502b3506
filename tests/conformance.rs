//! Cerbos' own query-planner conformance data (tests/conformance/cerbos, Apache-2.0): the
//! planner suites in strict and lenient scope search, the normalisation cases, and the CEL
//! to operand encoding cases. Deliberate divergences are listed with their reason, and each
//! has its own test of the safer behaviour.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use vecgate::plan::normalise::normalise_plan;
use vecgate::plan::{Expr, Plan, Value};
use vecgate::policy::cel;
use vecgate::policy::suite::planner_suite::{canonical, run_suite, SUITE_NOW};
use vecgate::policy::suite::yaml_to_json;
use vecgate::policy::planner::{Planner, PlannerOptions};

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/cerbos")
}

fn read_dir_sorted(dir: &PathBuf) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

/// Cases where vecgate deliberately answers differently from Cerbos, and why. Each entry is
/// `(case name prefix, reason)`; the safer behaviour has its own test below.
const HAS_KEPT: &str = "`has(R.attr.present) && R.attr.present != null`: Cerbos folds has() to \
     true and plans `ne(present, null)`; vecgate keeps `has(present)` in the plan (see \
     has_is_an_existence_test and has_guard_is_kept_in_plans)";

const DIVERGENCES: &[(&str, &str)] = &[
    ("donald_duck.yaml#2 handle_null", HAS_KEPT),
    ("donald_duck_lenient.yaml#2 handle_null", HAS_KEPT),
    ("donald_duck_strict.yaml#2 handle_null", HAS_KEPT),
];

fn harness_planner(lenient: bool) -> Planner {
    let set = vecgate::policy::load::load_dir(&data_dir().join("policies"))
        .unwrap_or_else(|e| panic!("conformance policies must load: {e}"));
    let mut globals = BTreeMap::new();
    globals.insert("environment".to_string(), Value::string("test"));
    Planner::new(
        Arc::new(set),
        PlannerOptions {
            globals,
            default_version: "default".into(),
            lenient_scope_search: lenient,
            unroll_limit: Some(10),
            cerbos_planner: true,
            ..PlannerOptions::default()
        },
    )
}

fn run_all_suites(lenient: bool) -> (usize, Vec<String>) {
    let planner = harness_planner(lenient);
    let mut jwt = BTreeMap::new();
    jwt.insert("customInt".to_string(), Value::Int(42));
    let now = chrono::DateTime::parse_from_rfc3339(SUITE_NOW).unwrap();
    let mut passed = 0;
    let mut failures = Vec::new();
    let only_this_mode = if lenient { "suite-lenient" } else { "suite-strict" };
    let mut files = read_dir_sorted(&data_dir().join("suite"));
    files.extend(read_dir_sorted(&data_dir().join(only_this_mode)));
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&file).unwrap();
        for case in run_suite(&planner, &name, &text, &jwt, now).unwrap() {
            let divergent = DIVERGENCES.iter().any(|(prefix, _)| case.name.starts_with(prefix));
            match (case.passed, divergent) {
                (true, false) => passed += 1,
                (false, true) => {}
                (true, true) => failures.push(format!(
                    "{}: listed as a divergence but now matches Cerbos; remove it from DIVERGENCES",
                    case.name
                )),
                (false, false) => failures.push(format!(
                    "{}\n  want {}\n  got  {}",
                    case.name, case.want, case.got
                )),
            }
        }
    }
    (passed, failures)
}

#[test]
fn planner_suites_strict_scope_search() {
    let (passed, failures) = run_all_suites(false);
    println!("strict: {passed} passed, {} failed", failures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn planner_suites_lenient_scope_search() {
    let (passed, failures) = run_all_suites(true);
    println!("lenient: {passed} passed, {} failed", failures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn normalisation_cases() {
    let files = read_dir_sorted(&data_dir().join("filter-normalise"));
    assert_eq!(files.len(), 19);
    let mut failures = Vec::new();
    for file in files {
        let case = yaml_to_json(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let input = &case["input"];
        let plan = match input.get("condition") {
            None => Plan::AlwaysAllowed,
            Some(c) => normalise_plan(Expr::from_json(c).unwrap()),
        };
        let want_filter = canonical(&case["wantFilter"]);
        let got = plan.to_cerbos_json();
        let want_string = case["wantString"].as_str().unwrap();
        if canonical(&got) != want_filter || plan.debug_string() != want_string {
            failures.push(format!(
                "{}: want {} {want_string}, got {got} {}",
                file.display(),
                case["wantFilter"],
                plan.debug_string()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// CEL source whose encoding deliberately differs from Cerbos'.
const AST_DIVERGENCES: &[(&str, &str)] = &[(
    "has(a.b)",
    "Cerbos encodes has() as the constant true, which grants records lacking the field; \
     vecgate keeps it as a real existence test (see has_is_an_existence_test)",
)];

#[test]
fn cel_to_operand_encoding_cases() {
    let cases = yaml_to_json(
        &std::fs::read_to_string(data_dir().join("ast/ast_build_expr.yaml")).unwrap(),
    )
    .unwrap();
    let cases = cases.as_object().unwrap();
    let mut failures = Vec::new();
    let mut passed = 0;
    for (source, want) in cases {
        let got = cel::parse(source).map(|e| e.to_json());
        let divergent = AST_DIVERGENCES.iter().any(|(s, _)| s == source);
        let ok = matches!(&got, Ok(g) if canonical(g) == canonical(want));
        match (ok, divergent) {
            (true, false) => passed += 1,
            (false, true) => {}
            (true, true) => failures.push(format!("{source}: divergence no longer needed")),
            (false, false) => failures.push(format!("{source}: want {want}, got {got:?}")),
        }
    }
    println!("ast: {passed} passed, {} failed", failures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn has_is_an_existence_test() {
    let e = cel::compile("has(R.attr.owner)").unwrap();
    assert_eq!(e.debug_string(), "(has request.resource.attr.owner)");
    // On a record without the attribute the plan must not allow.
    let plan = Plan::Conditional(e);
    let ctx = vecgate::plan::functions::CallContext {
        now: chrono::DateTime::parse_from_rfc3339(SUITE_NOW).unwrap(),
    };
    let without = vecgate::plan::eval::RecordEnv::new(
        Value::string("r1"),
        "doc",
        Value::from_json(&serde_json::json!({"dept": "x"})),
        ctx,
    );
    let with = vecgate::plan::eval::RecordEnv::new(
        Value::string("r2"),
        "doc",
        Value::from_json(&serde_json::json!({"owner": "alice"})),
        ctx,
    );
    assert!(!vecgate::plan::eval::allows(&plan, &without));
    assert!(vecgate::plan::eval::allows(&plan, &with));
}

#[test]
fn has_guard_is_kept_in_plans() {
    // The donald_duck `handle_null` rule, planned by vecgate: the has() guard survives.
    let planner = harness_planner(false);
    let principal = vecgate::policy::planner::Principal {
        id: "donald_duck".into(),
        roles: vec!["user".into()],
        ..Default::default()
    };
    let empty = BTreeMap::new();
    let actions = vec!["handle_null".to_string()];
    let plan = planner
        .plan(&vecgate::policy::planner::PlanRequest {
            principal: &principal,
            resource_kind: "contact",
            resource_scope: "",
            resource_version: "default",
            resource_attr: &empty,
            resource_id: None,
            attr_complete: false,
            actions: &actions,
            jwt: &empty,
            now: chrono::DateTime::parse_from_rfc3339(SUITE_NOW).unwrap(),
        })
        .plan;
    let text = plan.debug_string();
    assert!(text.contains("(has request.resource.attr.present)"), "{text}");
    let ctx = vecgate::plan::functions::CallContext {
        now: chrono::DateTime::parse_from_rfc3339(SUITE_NOW).unwrap(),
    };
    // A record lacking `present` (and with `missing` null) is not granted.
    let lacking = vecgate::plan::eval::RecordEnv::new(
        Value::string("r"),
        "leave_request",
        Value::from_json(&serde_json::json!({"missing": null})),
        ctx,
    );
    assert!(!vecgate::plan::eval::allows(&plan, &lacking));
    let having = vecgate::plan::eval::RecordEnv::new(
        Value::string("r"),
        "leave_request",
        Value::from_json(&serde_json::json!({"missing": null, "present": 1})),
        ctx,
    );
    assert!(vecgate::plan::eval::allows(&plan, &having));
}

#[allow(dead_code)]
fn _unused(_: Json) {}
