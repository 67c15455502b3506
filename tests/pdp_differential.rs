//! vecgate against the real Cerbos PDP (0.55.0, from the npm registry): generated policy sets
//! ([`support::policygen`]) are loaded into `cerbos server` (one server per engine mode:
//! default and `strictEvaluation`, each with and without `lenientScopeSearch`) and into
//! vecgate, and for every principal × resource × action:
//! - the PDP's CheckResources effect must equal vecgate's check in the same mode;
//! - vecgate's plan for (principal, action, resource scope), evaluated on the resource, must
//!   equal the PDP's check (the plan is sound and complete).
//!
//! The run also asks the PDP's PlanResources for the same questions and compares the plan's
//! JSON with vecgate's after Cerbos' own normalisation (`canonical`), classifying every
//! difference by a documented divergence (docs/deviations.md); an unclassified difference
//! fails the test.
//!
//! `VECGATE_PDP_SEED` reproduces a run (the seed is printed); `VECGATE_PDP_SETS` sets how many
//! policy sets are generated (default 12: 230,400 decisions compared, half checks, half plan
//! evaluations). A disagreement prints the policy set, the principal and the resource.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
use support::policygen::{attr_map, principal_from_json as principal};

use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use std::sync::Arc;
use support::cerbos::{Mode, Pdp};
use support::policygen::{self, GeneratedSet};
use vecgate::plan::eval::{allows, RecordEnv};
use vecgate::plan::functions::CallContext;
use vecgate::plan::{Plan, Value};
use vecgate::policy::evaluation::Evaluation;
use vecgate::policy::load::load_documents;
use vecgate::policy::planner::{PlanRequest, Planner, PlannerOptions};
use vecgate::policy::suite::planner_suite::canonical;

const PRINCIPALS: usize = 10;
const RESOURCES: usize = 40;

fn seed() -> u64 {
    match std::env::var("VECGATE_PDP_SEED") {
        Ok(s) => s.parse().unwrap_or_else(|_| panic!("VECGATE_PDP_SEED={s} is not a number")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            % 1_000_000_000,
    }
}

fn set_count() -> u64 {
    std::env::var("VECGATE_PDP_SETS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12)
}



fn planner(set: &GeneratedSet, mode: Mode) -> Planner {
    let policies = load_documents(&set.files).unwrap_or_else(|e| {
        panic!(
            "vecgate refuses a policy set the generator made:\n{e}\n{}",
            set.describe(&Json::Null, &Json::Null)
        )
    });
    let globals = attr_map(&policygen::globals());
    Planner::new(
        Arc::new(policies),
        PlannerOptions {
            globals,
            lenient_scope_search: mode.lenient,
            evaluation: if mode.strict {
                Evaluation::CerbosStrict
            } else {
                Evaluation::Cerbos
            },
            ..PlannerOptions::default()
        },
    )
}

/// How vecgate's plan JSON compares with the PDP's PlanResources answer.
#[derive(Default)]
struct Shapes {
    /// Equal after Cerbos' normalisation (operands compared as multisets).
    equal: usize,
    /// Equal once vecgate's `isTrue` wrappers are removed (the PDP leaves them implicit).
    equal_but_is_true: usize,
    /// The PDP's own plan, read as CEL, decides some generated resource, or a record made from
    /// its constants where it and vecgate's plan disagree ([`probe_records`]), differently
    /// from the PDP's check: its planner is unsound (or incomplete) there, vecgate follows the
    /// check.
    pdp_plan_unlike_its_check: usize,
    /// Otherwise different from the PDP's, which vecgate's reproduction of Cerbos' planner
    /// (`cerbos_planner`) matches: a place where vecgate's plan deliberately differs from
    /// Cerbos' planner (docs/deviations.md lists the kinds).
    deliberate: usize,
    /// The PDP's planner answered an error where its check decides.
    pdp_plan_error: usize,
    /// Equal to vecgate's reproduction but inside a `runtime.effectiveDerivedRoles` list, where
    /// the PDP's planner lets one derived role's known values land in another's condition
    /// ([`equal_but_derived_role_lists`]): a Cerbos planner bug its check does not share;
    /// vecgate's plans follow the check.
    pdp_derived_role_list: usize,
    /// The PDP's plan keeps a residual its planner did not evaluate, an expression over
    /// constants only: a missing field of a known map (`get-field(struct(…), teams)` for a
    /// principal attribute the principal lacks), `"3" > 3`. It errors on every record;
    /// vecgate evaluates it at plan time. Also a request field the PDP's planner does not bind
    /// ([`UNBOUND_BY_THE_PDP_PLANNER`]): it stays a variable in the PDP's plan, where the
    /// check (and vecgate) knows its value.
    pdp_unevaluated: usize,
    /// Shaped unlike the PDP's plan and unlike vecgate's reproduction of Cerbos' planner, but
    /// the same in meaning: vecgate's plan and the PDP's decide alike on every generated
    /// resource of the scope and on every record made from the constants of either plan
    /// ([`probe_records`]), and both decide like the PDP's check. A gap in the reproduction
    /// of Cerbos' simplifier, not a decision difference; the first is printed.
    same_meaning_other_shape: Vec<String>,
    /// Anything else: a failure.
    other: Vec<String>,
}

/// Cerbos' comparison form (`canonical`: abbreviations expanded, numbers as doubles, operand
/// lists sorted), with repeated operands of `and`/`or` removed: the PDP sometimes repeats one
/// (two roles allowing under the same condition), which changes nothing.
fn normalised(v: &Json) -> Json {
    fn dedup(v: &Json) -> Json {
        match v {
            Json::Object(o) => {
                let mut out: serde_json::Map<String, Json> =
                    o.iter().map(|(k, v)| (k.clone(), dedup(v))).collect();
                let junction = out
                    .get("operator")
                    .and_then(Json::as_str)
                    .filter(|op| *op == "and" || *op == "or")
                    .map(str::to_string);
                if let Some(op) = junction {
                    if let Some(Json::Array(items)) = out.get_mut("operands") {
                        // Same-operator nesting flattened: `a || (b || a)` is `a || b`.
                        let mut flat = Vec::new();
                        for i in items.drain(..) {
                            match i.get("expression") {
                                Some(inner) if inner["operator"] == op.as_str() => flat.extend(
                                    inner["operands"].as_array().cloned().unwrap_or_default(),
                                ),
                                _ => flat.push(i),
                            }
                        }
                        *items = flat;
                        let mut seen = Vec::new();
                        items.retain(|i| {
                            let fresh = !seen.contains(i);
                            if fresh {
                                seen.push(i.clone());
                            }
                            fresh
                        });
                        if items.len() == 1 {
                            return Json::Object(
                                items[0].as_object().cloned().unwrap_or_default(),
                            )["expression"]
                                .clone();
                        }
                    }
                }
                // `!!x` is `x` (the PDP removes double negation in some places only), also
                // where removing repeated operands made it: `!(!x || !x)`.
                let double_negation = out.get("expression").is_some_and(|e| {
                    e["operator"] == "not" && e["operands"][0]["expression"]["operator"] == "not"
                });
                if double_negation {
                    return out["expression"]["operands"][0]["expression"]["operands"][0].clone();
                }
                Json::Object(out)
            }
            Json::Array(items) => Json::Array(items.iter().map(dedup).collect()),
            other => other.clone(),
        }
    }
    canonical(&dedup(&canonical(v)))
}

/// `true` for every `has(x)`: Cerbos' planner writes presence tests that way (vecgate keeps
/// them); the plan is folded again afterwards.
fn has_as_cerbos_writes_it(v: &Json) -> Json {
    fn walk(v: &Json) -> Json {
        match v {
            Json::Object(o) => {
                if let Some(e) = o.get("expression") {
                    if e["operator"] == "has" {
                        return json!({"value": true});
                    }
                }
                Json::Object(o.iter().map(|(k, v)| (k.clone(), walk(v))).collect())
            }
            Json::Array(items) => Json::Array(items.iter().map(walk).collect()),
            other => other.clone(),
        }
    }
    match Plan::from_cerbos_json(&walk(v)) {
        Ok(Plan::Conditional(e)) => {
            vecgate::plan::normalise::normalise_plan(e).to_cerbos_json()
        }
        Ok(other) => other.to_cerbos_json(),
        Err(_) => v.clone(),
    }
}

/// Request fields the PDP's planner leaves as variables in its plans although they do not
/// depend on the record: it binds the resource's kind, scope and attributes and the
/// principal, but not the policy versions (Cerbos 0.55 internal/ruletable/planner/planner.go,
/// `knownVars`), while its check uses the request's values.
const UNBOUND_BY_THE_PDP_PLANNER: [&str; 2] = ["request.resource.policyVersion", "request.principal.policyVersion"];

/// Whether an operand holds an expression over constants only (no variable below it) that
/// is not how Cerbos writes a constant (`timestamp`, `duration`, `hierarchy` of a value).
fn has_unevaluated_constant(operand: &Json) -> bool {
    // Lambda variables and `get-field` field names are written as variables too; only the
    // request's names make an expression depend on the record.
    fn has_variable(v: &Json) -> bool {
        match v {
            Json::Object(o) => {
                o.get("variable")
                    .and_then(Json::as_str)
                    .is_some_and(|name| name.starts_with("request.") && !UNBOUND_BY_THE_PDP_PLANNER.contains(&name))
                    || o.values().any(has_variable)
            }
            Json::Array(items) => items.iter().any(has_variable),
            _ => false,
        }
    }
    let Some(e) = operand.get("expression") else {
        return false;
    };
    let operands = e["operands"].as_array().cloned().unwrap_or_default();
    let constant_form = matches!(e["operator"].as_str(), Some("timestamp" | "duration" | "hierarchy" | "now" | "lambda"));
    // A comprehension over a constant that is not a list or a map (`"hr".all(…)`).
    let over_scalar = matches!(e["operator"].as_str(), Some("all" | "exists" | "exists_one" | "map" | "filter"))
        && operands.first().is_some_and(|r| r.get("value").is_some_and(|v| !v.is_array() && !v.is_object()));
    over_scalar
        || (!constant_form && !operands.is_empty() && !has_variable(&Json::Array(operands.clone())))
        || operands.iter().any(has_unevaluated_constant)
}

/// `x` for every `isTrue(x)`.
fn strip_is_true(v: &Json) -> Json {
    match v {
        Json::Object(o) => {
            if let Some(e) = o.get("expression") {
                if e["operator"] == "isTrue" {
                    return strip_is_true(&e["operands"][0]);
                }
            }
            Json::Object(o.iter().map(|(k, v)| (k.clone(), strip_is_true(v))).collect())
        }
        Json::Array(items) => Json::Array(items.iter().map(strip_is_true).collect()),
        other => other.clone(),
    }
}

/// vecgate's reproduction of Cerbos' planner, quirks included (as `vecgate plan-suite`).
fn reproduction_of_cerbos_planner(set: &GeneratedSet, mode: Mode) -> Planner {
    let policies = load_documents(&set.files).unwrap();
    Planner::new(
        Arc::new(policies),
        PlannerOptions {
            globals: attr_map(&policygen::globals()),
            lenient_scope_search: mode.lenient,
            unroll_limit: Some(10),
            cerbos_planner: true,
            ..PlannerOptions::default()
        },
    )
}

#[derive(Default)]
struct Tally {
    shapes: Shapes,
    checks: usize,
    /// Decisions the PDP allowed (to show the sets are not all-deny).
    allowed: usize,
    /// Plans that were neither ALWAYS_ALLOWED nor ALWAYS_DENIED.
    conditional_plans: usize,
    plan_evaluations: usize,
    /// Decisions where the PDP's batched answer (all the set's actions in one request)
    /// differs from its answer to the action asked alone, which is the one compared: its
    /// condition cache can carry one action's result into another's
    /// (`the_pdp_check_of_an_action_can_depend_on_the_other_actions_asked`).
    pdp_depends_on_other_actions: usize,
    disagreements: Vec<String>,
}

#[test]
fn vecgate_decides_as_the_pdp_on_generated_policy_sets() {
    let seed = seed();
    let sets = set_count();
    println!("PDP differential: seed {seed} (reproduce with VECGATE_PDP_SEED={seed}), {sets} policy sets");
    let modes = [
        Mode { strict: false, lenient: false },
        Mode { strict: true, lenient: false },
        Mode { strict: false, lenient: true },
        Mode { strict: true, lenient: true },
    ];
    let pdps: Vec<Pdp> = modes
        .iter()
        .map(|m| Pdp::start(*m, &policygen::globals()))
        .collect();
    let now = chrono::Utc::now().fixed_offset();
    let no_jwt = BTreeMap::new();
    let no_attr = BTreeMap::new();
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    for i in 0..sets {
        let set = policygen::generate(seed.wrapping_add(i), PRINCIPALS, RESOURCES);
        for pdp in &pdps {
            pdp.load(&set.files);
            let planner = planner(&set, pdp.mode);
            let cerbos_planner = reproduction_of_cerbos_planner(&set, pdp.mode);
            let tally = tallies.entry(pdp.mode.name()).or_default();
            for p_json in &set.principals {
                let p = principal(p_json);
                let mut answers = pdp.check(p_json, &set.resources, &set.actions);
                // Where the batched answer differs from the action asked alone, the latter.
                let mut settled = answers.clone();
                // One plan per (action, resource scope).
                let mut plans: BTreeMap<(String, String), Plan> = BTreeMap::new();
                for (ri, (r_json, pdp_effects)) in set.resources.iter().zip(&answers).enumerate() {
                    let id = r_json["id"].as_str().unwrap();
                    let scope = r_json["scope"].as_str().unwrap_or("");
                    let attrs = attr_map(&r_json["attr"]);
                    let request = PlanRequest {
                        principal: &p,
                        resource_kind: "doc",
                        resource_scope: scope,
                        resource_version: "",
                        resource_attr: &attrs,
                        resource_id: Some(id),
                        attr_complete: true,
                        actions: &set.actions,
                        jwt: &no_jwt,
                        now,
                    };
                    let checked = planner.check_actions(&request);
                    let record = RecordEnv::new(
                        Value::string(id),
                        "doc",
                        Value::from_json(&r_json["attr"]),
                        CallContext { now },
                    );
                    for (ai, ((action, vecgate), batched)) in checked.iter().zip(pdp_effects).enumerate() {
                        let plan = plans
                            .entry((action.clone(), scope.to_string()))
                            .or_insert_with(|| {
                                let actions = [action.clone()];
                                let plan = planner
                                    .plan(&PlanRequest {
                                        resource_attr: &no_attr,
                                        resource_id: None,
                                        attr_complete: false,
                                        actions: &actions,
                                        ..request.clone()
                                    })
                                    .plan;
                                tally.conditional_plans +=
                                    usize::from(matches!(plan, Plan::Conditional(_)));
                                plan
                            });
                        let by_plan = allows(plan, &record);
                        let mut pdp_allows = *batched;
                        if *vecgate != pdp_allows || by_plan != pdp_allows {
                            let alone = pdp.check(
                                p_json,
                                std::slice::from_ref(r_json),
                                std::slice::from_ref(action),
                            )[0][0];
                            if alone != pdp_allows {
                                tally.pdp_depends_on_other_actions += 1;
                                pdp_allows = alone;
                                settled[ri][ai] = alone;
                            }
                        }
                        tally.checks += 1;
                        tally.allowed += usize::from(pdp_allows);
                        if *vecgate != pdp_allows {
                            tally.disagreements.push(format!(
                                "[{}] check of {action:?}: PDP {}, vecgate {}\n{}",
                                pdp.mode.name(),
                                effect(pdp_allows),
                                effect(*vecgate),
                                set.describe(p_json, r_json)
                            ));
                        }
                        tally.plan_evaluations += 1;
                        if by_plan != pdp_allows {
                            tally.disagreements.push(format!(
                                "[{}] plan of {action:?} for scope {scope:?} evaluated on the resource: {} where the PDP's check says {}\nplan: {}\n{}",
                                pdp.mode.name(),
                                effect(by_plan),
                                effect(pdp_allows),
                                plan.to_cerbos_json(),
                                set.describe(p_json, r_json)
                            ));
                        }
                    }
                }
                answers = settled;
                if !pdp.mode.strict {
                    let asked = Asked { pdp, set: &set, principal: p_json, answers: &answers, now };
                    compare_shapes(&asked, &plans, &cerbos_planner, &mut tally.shapes);
                }
            }
        }
    }
    let mut total = 0;
    let mut failures = Vec::new();
    for (mode, t) in &tallies {
        println!(
            "  {mode}: {} checks ({} allowed) and {} plan evaluations ({} conditional plans) compared, {} disagreements ({} batched PDP answers differed from the action asked alone)",
            t.checks,
            t.allowed,
            t.plan_evaluations,
            t.conditional_plans,
            t.disagreements.len(),
            t.pdp_depends_on_other_actions
        );
        if !pdp_mode_is_strict(mode) {
            println!(
                "    plan JSON vs the PDP's: {} equal, {} equal but for isTrue, {} where the PDP's own plan decides a generated resource or a probe record unlike its check, {} otherwise deliberately different (the PDP's equals vecgate's reproduction of Cerbos' planner), {} where the PDP's planner fails, {} where the PDP's effectiveDerivedRoles list mixes up its items, {} with a residual the PDP leaves unevaluated, {} shaped otherwise with the same meaning, {} other",
                t.shapes.equal,
                t.shapes.equal_but_is_true,
                t.shapes.pdp_plan_unlike_its_check,
                t.shapes.deliberate,
                t.shapes.pdp_plan_error,
                t.shapes.pdp_derived_role_list,
                t.shapes.pdp_unevaluated,
                t.shapes.same_meaning_other_shape.len(),
                t.shapes.other.len()
            );
            if let Some(first) = t.shapes.same_meaning_other_shape.first() {
                println!("    first plan shaped otherwise with the same meaning:\n{first}");
            }
            failures.extend(t.shapes.other.iter().take(3).cloned());
        }
        total += t.checks + t.plan_evaluations;
        failures.extend(t.disagreements.iter().take(3).cloned());
    }
    println!("  {total} decisions compared in all");
    if let Ok(path) = std::env::var("VECGATE_PDP_DUMP") {
        let all: Vec<String> = tallies
            .values()
            .flat_map(|t| t.disagreements.iter().chain(&t.shapes.other).cloned())
            .collect();
        std::fs::write(&path, all.join("\n\n=====\n\n")).unwrap();
    }
    assert!(
        total >= 100_000 || sets < 12,
        "fewer than 100,000 decisions compared ({total})"
    );
    assert!(
        failures.is_empty(),
        "vecgate and the PDP disagree (seed {seed}); the first of each mode:\n\n{}",
        failures.join("\n\n")
    );
}

fn pdp_mode_is_strict(name: &str) -> bool {
    name.starts_with("strict")
}

/// One principal's questions to one PDP, answered.
struct Asked<'a> {
    pdp: &'a Pdp,
    set: &'a GeneratedSet,
    principal: &'a Json,
    /// The PDP's CheckResources answers, per resource, per action.
    answers: &'a [Vec<bool>],
    now: chrono::DateTime<chrono::FixedOffset>,
}

/// Compares vecgate's plans for one principal with the PDP's (see [`Shapes`]).
fn compare_shapes(
    asked: &Asked<'_>,
    plans: &BTreeMap<(String, String), Plan>,
    cerbos_planner: &Planner,
    shapes: &mut Shapes,
) {
    let Asked { pdp, set, principal: p_json, answers, now } = *asked;
    let p = principal(p_json);
    let (no_jwt, no_attr) = (BTreeMap::new(), BTreeMap::new());
    for ((action, scope), plan) in plans {
        let theirs = match pdp.plan(p_json, "doc", scope, action) {
            Ok(filter) => filter,
            Err(_) => {
                shapes.pdp_plan_error += 1;
                continue;
            }
        };
        let ours = plan.to_cerbos_json();
        if normalised(&theirs) == normalised(&ours) {
            shapes.equal += 1;
            continue;
        }
        if normalised(&theirs) == normalised(&strip_is_true(&ours)) {
            shapes.equal_but_is_true += 1;
            continue;
        }
        let their_plan = Plan::from_cerbos_json(&theirs).unwrap();
        let a = set.actions.iter().position(|x| x == action).unwrap();
        let record = |r: &Json| {
            RecordEnv::new(
                Value::string(r["id"].as_str().unwrap()),
                "doc",
                Value::from_json(&r["attr"]),
                CallContext { now },
            )
        };
        let unlike_check = set.resources.iter().zip(answers).any(|(r, effects)| {
            r["scope"].as_str().unwrap_or("") == scope.as_str()
                && allows(&their_plan, &record(r)) != effects[a]
        }) || {
            // No generated resource tells the plans apart: records made from the constants
            // of either plan (an unconditional PDP plan has none), where its plan and
            // vecgate's disagree, asked of its check.
            let probes: Vec<Json> = probe_records(&theirs, set, scope)
                .into_iter()
                .chain(probe_records(&ours, set, scope))
                .filter(|r| allows(&their_plan, &record(r)) != allows(plan, &record(r)))
                .collect();
            !probes.is_empty()
                && pdp
                    .check(p_json, &probes, std::slice::from_ref(action))
                    .iter()
                    .zip(&probes)
                    .any(|(effects, r)| allows(&their_plan, &record(r)) != effects[0])
        };
        if unlike_check {
            shapes.pdp_plan_unlike_its_check += 1;
            continue;
        }
        let actions = [action.clone()];
        let reproduced = cerbos_planner
            .plan(&PlanRequest {
                principal: &p,
                resource_kind: "doc",
                resource_scope: scope,
                resource_version: "",
                resource_attr: &no_attr,
                resource_id: None,
                attr_complete: false,
                actions: &actions,
                jwt: &no_jwt,
                now,
            })
            .plan
            .to_cerbos_json();
        if has_unevaluated_constant(&theirs["condition"]) {
            shapes.pdp_unevaluated += 1;
            continue;
        }
        let reproduced = has_as_cerbos_writes_it(&reproduced);
        if normalised(&theirs) != normalised(&reproduced)
            && equal_but_derived_role_lists(&theirs, &reproduced)
        {
            shapes.pdp_derived_role_list += 1;
            continue;
        }
        if normalised(&theirs) != normalised(&reproduced) {
            let same_meaning = set
                .resources
                .iter()
                .filter(|r| r["scope"].as_str().unwrap_or("") == scope.as_str())
                .cloned()
                .chain(probe_records(&theirs, set, scope))
                .chain(probe_records(&ours, set, scope))
                .all(|r| allows(&their_plan, &record(&r)) == allows(plan, &record(&r)));
            let shape_list = if same_meaning { &mut shapes.same_meaning_other_shape } else { &mut shapes.other };
            shape_list.push(format!(
                "[{}] plan of {action:?} for scope {scope:?}: vecgate's reproduction of Cerbos' planner differs from the PDP's plan:\n  PDP:        {}\n  reproduced: {}\n  vecgate:    {}\n{}",
                pdp.mode.name(),
                theirs,
                reproduced,
                ours,
                set.describe(p_json, &Json::Null)
            ));
            continue;
        }
        shapes.deliberate += 1;

    }
}

/// `theirs` equals `ours` once every `runtime.effectiveDerivedRoles` list is masked: Cerbos
/// writes it as `if(c1, [name1], []) + (if(c2, [name2], []) + …)` and its planner partially
/// evaluates the items together although their CEL expression ids overlap, so one item's
/// known values land in another (`R.attr.department == P.attr.department` planned as
/// `R.attr.department == "bob"` where another item reads `P.id`, or folded to `[]`).
fn equal_but_derived_role_lists(theirs: &Json, ours: &Json) -> bool {
    fn is_list(e: &Json) -> bool {
        let operands = e["operands"].as_array();
        match (e["operator"].as_str(), operands) {
            (Some("if"), Some(o)) => o.len() == 3 && o[1]["value"].is_array() && o[2]["value"] == json!([]),
            (Some("add"), Some(o)) => {
                o.iter().all(|x| x["value"].is_array() || is_list(&x["expression"]))
                    && o.iter().any(|x| x.get("expression").is_some())
            }
            _ => false,
        }
    }
    fn mask(v: &Json) -> Json {
        match v {
            Json::Object(o) => match o.get("expression") {
                Some(e) if is_list(e) => json!({"value": "(effectiveDerivedRoles)"}),
                _ => Json::Object(o.iter().map(|(k, x)| (k.clone(), mask(x))).collect()),
            },
            Json::Array(items) => Json::Array(items.iter().map(mask).collect()),
            other => other.clone(),
        }
    }
    normalised(&mask(theirs)) == normalised(&mask(ours))
}

/// Records of `scope` for telling two plans apart: each generated resource of the scope
/// with a resource attribute the PDP's plan compares with a constant set to that constant (an
/// item of it, a number next to it), one at a time, then all together. At most 60.
fn probe_records(plan: &Json, set: &GeneratedSet, scope: &str) -> Vec<Json> {
    /// The resource attribute read in `v`, when it reads exactly one.
    fn one_attribute(v: &Json) -> Option<String> {
        fn walk(v: &Json, found: &mut Vec<String>) {
            match v {
                Json::Object(o) => {
                    if let Some(name) = o.get("variable").and_then(Json::as_str) {
                        if let Some(path) = name.strip_prefix("request.resource.attr.") {
                            found.push(path.to_string());
                        }
                    }
                    o.values().for_each(|x| walk(x, found));
                }
                Json::Array(items) => items.iter().for_each(|x| walk(x, found)),
                _ => {}
            }
        }
        let mut found = Vec::new();
        walk(v, &mut found);
        found.dedup();
        (found.len() == 1).then(|| found.remove(0))
    }
    fn assignments(v: &Json, out: &mut Vec<(Vec<String>, Json)>) {
        match v {
            Json::Object(o) => {
                if let Some(operands) = o.get("operands").and_then(Json::as_array) {
                    let path = operands
                        .iter()
                        .filter(|x| x.get("value").is_none())
                        .find_map(one_attribute);
                    let constant = operands.iter().find_map(|x| x.get("value"));
                    if let (Some(path), Some(constant)) = (path, constant) {
                        let path: Vec<String> = path.split('.').map(str::to_string).collect();
                        let mut candidates = vec![constant.clone()];
                        match constant {
                            Json::Array(items) => candidates.extend(items.iter().cloned()),
                            Json::Number(n) => {
                                let n = n.as_f64().unwrap_or_default();
                                candidates.extend([json!(n - 1.0), json!(n + 1.0), json!(n + 5.0)]);
                            }
                            _ => {}
                        }
                        for c in candidates {
                            if !out.iter().any(|(p, v)| *p == path && *v == c) {
                                out.push((path.clone(), c));
                            }
                        }
                    }
                }
                o.values().for_each(|x| assignments(x, out));
            }
            Json::Array(items) => items.iter().for_each(|x| assignments(x, out)),
            _ => {}
        }
    }
    fn set_path(attr: &mut Json, path: &[String], value: &Json) {
        match path {
            [] => {}
            [last] => {
                if !attr.is_object() {
                    *attr = json!({});
                }
                attr[last.as_str()] = value.clone();
            }
            [first, rest @ ..] => {
                if !attr.is_object() {
                    *attr = json!({});
                }
                set_path(&mut attr[first.as_str()], rest, value);
            }
        }
    }
    let mut found = Vec::new();
    assignments(plan, &mut found);
    let mut out = Vec::new();
    for (i, base) in set
        .resources
        .iter()
        .filter(|r| r["scope"].as_str().unwrap_or("") == scope)
        .enumerate()
    {
        let mut all = base.clone();
        for (path, value) in &found {
            let mut one = base.clone();
            set_path(&mut one["attr"], path, value);
            one["id"] = json!(format!("probe{}-{}", i, out.len()));
            out.push(one);
            set_path(&mut all["attr"], path, value);
        }
        all["id"] = json!(format!("probe{}-{}", i, out.len()));
        out.push(all);
        if out.len() >= 60 {
            break;
        }
    }
    out.truncate(60);
    out
}

fn effect(allow: bool) -> &'static str {
    if allow {
        "ALLOW"
    } else {
        "DENY"
    }
}

#[test]
fn the_zed_case_a_principal_deny_beats_a_resource_allow() {
    // The case of issue 16: `user` may read and update own records; zed's principal policy
    // denies read. The PDP's check denies zed his own records, and so must vecgate's plan.
    let files = vec![
        (
            "doc.yaml".to_string(),
            "apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: doc\n  version: default\n  rules:\n    - actions: [read, update]\n      effect: EFFECT_ALLOW\n      roles: [user]\n      condition:\n        match:\n          expr: R.attr.owner == P.id\n".to_string(),
        ),
        (
            "zed.yaml".to_string(),
            "apiVersion: api.cerbos.dev/v1\nprincipalPolicy:\n  principal: zed\n  version: default\n  rules:\n    - resource: doc\n      actions:\n        - action: read\n          effect: EFFECT_DENY\n".to_string(),
        ),
    ];
    let pdp = Pdp::start(Mode { strict: false, lenient: false }, &json!({}));
    pdp.load(&files);
    let zed = json!({"id": "zed", "roles": ["user"]});
    let own = json!({"kind": "doc", "id": "z1", "attr": {"owner": "zed"}});
    let actions = vec!["read".to_string(), "update".to_string()];
    assert_eq!(pdp.check(&zed, std::slice::from_ref(&own), &actions), vec![vec![false, true]]);
    // Cerbos' own planner returns the unsound conditional plan here.
    assert_eq!(pdp.plan(&zed, "doc", "", "read").unwrap()["kind"], "KIND_CONDITIONAL");

    let set = Arc::new(load_documents(&files).unwrap());
    let planner = Planner::new(set, PlannerOptions::default());
    let p = principal(&zed);
    let now = chrono::Utc::now().fixed_offset();
    let (no_jwt, no_attr) = (BTreeMap::new(), BTreeMap::new());
    let request = PlanRequest {
        principal: &p,
        resource_kind: "doc",
        resource_scope: "",
        resource_version: "",
        resource_attr: &no_attr,
        resource_id: None,
        attr_complete: false,
        actions: &actions[..1],
        jwt: &no_jwt,
        now,
    };
    assert_eq!(planner.plan(&request).plan, Plan::AlwaysDenied);
    let attrs = attr_map(&own["attr"]);
    let checked = planner.check_actions(&PlanRequest {
        resource_attr: &attrs,
        resource_id: Some("z1"),
        attr_complete: true,
        actions: &actions,
        ..request.clone()
    });
    assert_eq!(checked, vec![("read".to_string(), false), ("update".to_string(), true)]);
}

#[test]
fn the_pdp_planner_mixes_up_effective_derived_roles_items_and_vecgate_follows_the_check() {
    // Two derived roles in `runtime.effectiveDerivedRoles`: Cerbos' planner evaluates the
    // list's items together although their CEL expression ids overlap, so `P.id`'s value
    // ("bob", from `owner`) lands in `dept_member`'s condition. Its check is right.
    let files = vec![
        (
            "roles.yaml".to_string(),
            "apiVersion: api.cerbos.dev/v1\nderivedRoles:\n  name: common_roles\n  definitions:\n    - name: owner\n      parentRoles: [user]\n      condition:\n        match:\n          expr: R.attr.owner == P.id\n    - name: dept_member\n      parentRoles: [user]\n      condition:\n        match:\n          expr: R.attr.department == P.attr.department\n".to_string(),
        ),
        (
            "doc.yaml".to_string(),
            "apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: doc\n  version: default\n  importDerivedRoles: [common_roles]\n  rules:\n    - actions: [read]\n      effect: EFFECT_ALLOW\n      roles: [user]\n      condition:\n        match:\n          expr: '\"dept_member\" in runtime.effectiveDerivedRoles'\n    - actions: [write]\n      effect: EFFECT_ALLOW\n      derivedRoles: [owner, dept_member]\n".to_string(),
        ),
    ];
    let pdp = Pdp::start(Mode { strict: false, lenient: false }, &json!({}));
    pdp.load(&files);
    let bob = json!({"id": "bob", "roles": ["user"], "attr": {"department": "hr"}});
    let resources = vec![
        json!({"kind": "doc", "id": "r1", "attr": {"department": "hr", "owner": "x"}}),
        json!({"kind": "doc", "id": "r2", "attr": {"department": "bob", "owner": "x"}}),
    ];
    let read = vec!["read".to_string()];
    let checked = pdp.check(&bob, &resources, &read);
    assert_eq!(checked, vec![vec![true], vec![false]]);
    let now = chrono::Utc::now().fixed_offset();
    let env = |r: &Json| {
        RecordEnv::new(
            Value::string(r["id"].as_str().unwrap()),
            "doc",
            Value::from_json(&r["attr"]),
            CallContext { now },
        )
    };
    // The PDP's plan decides both records the other way.
    let theirs = Plan::from_cerbos_json(&pdp.plan(&bob, "doc", "", "read").unwrap()).unwrap();
    let by_their_plan: Vec<bool> = resources.iter().map(|r| allows(&theirs, &env(r))).collect();
    assert_eq!(by_their_plan, vec![false, true]);

    let set = Arc::new(load_documents(&files).unwrap());
    let planner = Planner::new(set, PlannerOptions::default());
    let p = principal(&bob);
    let (no_jwt, no_attr) = (BTreeMap::new(), BTreeMap::new());
    let ours = planner
        .plan(&PlanRequest {
            principal: &p,
            resource_kind: "doc",
            resource_scope: "",
            resource_version: "",
            resource_attr: &no_attr,
            resource_id: None,
            attr_complete: false,
            actions: &read,
            jwt: &no_jwt,
            now,
        })
        .plan;
    let by_our_plan: Vec<Vec<bool>> = resources.iter().map(|r| vec![allows(&ours, &env(r))]).collect();
    assert_eq!(by_our_plan, checked);
}

#[test]
fn the_pdp_check_of_an_action_can_depend_on_the_other_actions_asked() {
    // In a REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS scope, an ALLOW and a DENY with the same
    // condition: asked for `read` and `view` in one request, the PDP's check lets the DENY
    // of `view` go (its condition cache holds what it evaluated for the ALLOW of `read`);
    // asked for `view` alone, it denies. vecgate decides each action alone, as the PDP does
    // for a request of one action (what the PDP client asks).
    let files = vec![
        (
            "doc.yaml".to_string(),
            "apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: doc\n  version: default\n  rules:\n    - actions: [view]\n      effect: EFFECT_ALLOW\n      roles: [auditor]\n".to_string(),
        ),
        (
            "doc_a.yaml".to_string(),
            "apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: doc\n  version: default\n  scope: a\n  scopePermissions: SCOPE_PERMISSIONS_REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS\n  rules:\n    - actions: [read]\n      effect: EFFECT_ALLOW\n      roles: [auditor]\n      condition:\n        match:\n          expr: R.attr.level == 2\n    - actions: [read, view]\n      effect: EFFECT_DENY\n      roles: [auditor]\n      condition:\n        match:\n          expr: R.attr.level == 2\n".to_string(),
        ),
    ];
    let pdp = Pdp::start(Mode { strict: false, lenient: false }, &json!({}));
    pdp.load(&files);
    let ann = json!({"id": "ann", "roles": ["auditor"]});
    let record = json!({"kind": "doc", "id": "r1", "scope": "a", "attr": {"level": 2}});
    let both = vec!["read".to_string(), "view".to_string()];
    let view = vec!["view".to_string()];
    assert_eq!(pdp.check(&ann, std::slice::from_ref(&record), &both), vec![vec![false, true]]);
    assert_eq!(pdp.check(&ann, std::slice::from_ref(&record), &view), vec![vec![false]]);

    let set = Arc::new(load_documents(&files).unwrap());
    let planner = Planner::new(set, PlannerOptions::default());
    let p = principal(&ann);
    let attrs = attr_map(&record["attr"]);
    let no_jwt = BTreeMap::new();
    let checked = planner.check_actions(&PlanRequest {
        principal: &p,
        resource_kind: "doc",
        resource_scope: "a",
        resource_version: "",
        resource_attr: &attrs,
        resource_id: Some("r1"),
        attr_complete: true,
        actions: &both,
        jwt: &no_jwt,
        now: chrono::Utc::now().fixed_offset(),
    });
    assert_eq!(checked, vec![("read".to_string(), false), ("view".to_string(), false)]);
}
