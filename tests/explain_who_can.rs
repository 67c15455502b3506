//! Soundness of `vecgate explain` and `vecgate who-can` on generated policy sets, principals
//! and records (tests/support/policygen.rs, the generator the PDP differential uses; the check
//! itself is compared with the real PDP there), in every evaluation mode:
//!
//! - explain's decision == the check == the principal's plan evaluated on the record;
//! - every rule the check reached: the condition tree's reading in the mode (computed from
//!   the per-sub-expression values) == what the check used, for the rule's and its derived
//!   role's condition;
//! - every `&&`, `||`, `!` node: its value (the evaluator on the node) == CEL's combination
//!   of its operands' values (each the evaluator on the operand);
//! - who-can: its answer evaluated on the principal == the check; where the per-role
//!   listing is exact, the combined condition read back from its Cerbos JSON decides as well.
//!
//! `VECGATE_EXPLAIN_SEED` reproduces a run; the counts are printed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
use support::policygen::{attr_map, principal_from_json as principal};

use std::collections::BTreeMap;
use std::sync::Arc;
use support::policygen;
use vecgate::plan::eval::allows;
use vecgate::plan::Plan;
use vecgate::policy::check::{and, not, or, Tri};
use vecgate::policy::env::PlanEnv;
use vecgate::policy::evaluation::Evaluation;
use vecgate::policy::explain::values::{ConditionNode, ExprNode, Outcome};
use vecgate::policy::explain::{explain, ExplainQuestion};
use vecgate::policy::load::load_documents;
use vecgate::policy::planner::{PlanRequest, Planner, PlannerOptions};
use vecgate::policy::who_can::{WhoCan, WhoCanQuestion};



#[derive(Default)]
struct Counts {
    decisions: usize,
    rules_compared: usize,
    operators_compared: usize,
    who_can_compared: usize,
    who_can_by_combined_condition: usize,
    who_can_json_compared: usize,
}

/// Checks every `&&`/`||`/`!` node of a tree against its operands; returns a failure.
fn operators_agree(n: &ExprNode, counts: &mut usize) -> Option<String> {
    let tri = |o: &Outcome| match o {
        Outcome::True => Tri::True,
        Outcome::False => Tri::False,
        Outcome::Error | Outcome::NotBoolean => Tri::Error,
    };
    let combined = match (n.operator.as_deref(), n.operands.as_slice()) {
        (Some("not"), [a]) => Some(not(tri(&a.value))),
        (Some("and"), ops) => Some(ops.iter().map(|o| tri(&o.value)).fold(Tri::True, and)),
        (Some("or"), ops) => Some(ops.iter().map(|o| tri(&o.value)).fold(Tri::False, or)),
        _ => None,
    };
    if let Some(c) = combined {
        *counts += 1;
        if c != tri(&n.value) {
            return Some(format!("node {} is {:?} but its operands combine to {c:?}", n.text, n.value));
        }
    }
    n.operands.iter().find_map(|o| operators_agree(o, counts))
}

fn condition_operators_agree(c: &ConditionNode, counts: &mut usize) -> Option<String> {
    match c {
        ConditionNode::Expr { tree, .. } => operators_agree(tree, counts),
        ConditionNode::All { items, .. } | ConditionNode::Any { items, .. } | ConditionNode::None { items, .. } => {
            items.iter().find_map(|i| condition_operators_agree(i, counts))
        }
    }
}

fn outcome_tri(o: &Outcome) -> Tri {
    match o {
        Outcome::True => Tri::True,
        Outcome::False | Outcome::NotBoolean => Tri::False,
        Outcome::Error => Tri::Error,
    }
}

#[test]
fn explain_and_who_can_agree_with_the_check_in_every_mode() {
    let seed: u64 = std::env::var("VECGATE_EXPLAIN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 % 1_000_000_000
        });
    println!("seed {seed} (reproduce with VECGATE_EXPLAIN_SEED={seed})");
    let now = chrono::Utc::now().fixed_offset();
    let no_jwt = BTreeMap::new();
    let mut counts = Counts::default();
    let mut failures: Vec<String> = Vec::new();
    let fail = |failures: &mut Vec<String>, text: String| {
        if failures.len() < 3 {
            failures.push(text);
        }
    };
    for i in 0..4 {
        let set = policygen::generate(seed.wrapping_add(i), 6, 12);
        let policies = Arc::new(load_documents(&set.files).unwrap());
        for evaluation in Evaluation::ALL {
            let planner = Planner::new(
                policies.clone(),
                PlannerOptions {
                    globals: attr_map(&policygen::globals()),
                    evaluation,
                    ..PlannerOptions::default()
                },
            );
            for action in &set.actions {
                for scope in policygen::SCOPES {
                    for r in &set.resources {
                        let id = r["id"].as_str().unwrap();
                        let attrs = attr_map(&r["attr"]);
                        let mut who_can: BTreeMap<String, WhoCan> = BTreeMap::new();
                        for p_json in &set.principals {
                            let p = principal(p_json);
                            let actions = [action.clone()];
                            let request = PlanRequest {
                                principal: &p,
                                resource_kind: "doc",
                                resource_scope: scope,
                                resource_version: "",
                                resource_attr: &attrs,
                                resource_id: Some(id),
                                attr_complete: true,
                                actions: &actions,
                                jwt: &no_jwt,
                                now,
                            };
                            let checked = planner.check(&request);
                            let (e, _) = explain(
                                &planner,
                                &ExplainQuestion {
                                    principal: &p,
                                    jwt: &no_jwt,
                                    kind: "doc",
                                    scope,
                                    id,
                                    attr: &attrs,
                                    action,
                                    now,
                                },
                            );
                            counts.decisions += 1;
                            let context = || format!("{evaluation} action {action:?} scope {scope:?}\n{}", set.describe(p_json, r));
                            if e.allowed != checked || e.filter.record_matches != checked {
                                fail(&mut failures, format!(
                                    "explain {} / plan {} / check {checked}: {}\n{}",
                                    e.allowed, e.filter.record_matches, e.reason, context()
                                ));
                            }
                            for rule in e.rules.iter().filter(|r| r.reached) {
                                if let (Some(c), Some(met)) = (&rule.condition, &rule.condition_met) {
                                    counts.rules_compared += 1;
                                    let read = c.reading(evaluation).map(|t| if rule.condition_kind == "unless" { not(t) } else { t });
                                    if read != Some(outcome_tri(met)) {
                                        fail(&mut failures, format!("rule {:?}: tree reads {read:?}, check used {met:?}\n{}", rule.rule, context()));
                                    }
                                }
                                if let (Some(c), Some(met)) = (&rule.derived_role_condition, &rule.derived_role_met) {
                                    counts.rules_compared += 1;
                                    if c.reading(evaluation) != Some(outcome_tri(met)) {
                                        fail(&mut failures, format!("derived role of rule {:?}: tree reads {:?}, check used {met:?}\n{}", rule.rule, c.reading(evaluation), context()));
                                    }
                                }
                                for c in rule.condition.iter().chain(rule.derived_role_condition.iter()) {
                                    if let Some(f) = condition_operators_agree(c, &mut counts.operators_compared) {
                                        fail(&mut failures, format!("{f}\n{}", context()));
                                    }
                                }
                            }
                            // who-can, one answer per principal scope asked about.
                            let w = who_can.entry(p.scope.clone()).or_insert_with(|| {
                                WhoCan::compute(
                                    &planner,
                                    &WhoCanQuestion {
                                        kind: "doc".into(),
                                        scope: scope.into(),
                                        version: String::new(),
                                        id: id.into(),
                                        attr: attrs.clone(),
                                        action: action.clone(),
                                        principal_scope: p.scope.clone(),
                                        now,
                                    },
                                )
                            });
                            counts.who_can_compared += 1;
                            let by_condition = w.condition_decides(&p);
                            if by_condition {
                                counts.who_can_by_combined_condition += 1;
                            }
                            if w.allows(&planner, &p, &no_jwt) != checked {
                                fail(&mut failures, format!(
                                    "who-can says {} for {p:?}, check {checked}\n{}\n{}",
                                    !checked, w.text(), context()
                                ));
                            }
                            if w.per_role_is_exact() {
                                counts.who_can_json_compared += 1;
                                let read_back = Plan::from_cerbos_json(&w.to_json()["filter"]).unwrap();
                                let env = PlanEnv::new(&request, planner.options());
                                if allows(&read_back, &env) != checked {
                                    fail(&mut failures, format!("who-can's JSON filter disagrees with the check {checked}\n{}", context()));
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    println!(
        "{} explain decisions compared with the check and the plan; {} rule conditions read from their trees compared with the check; {} &&/||/! nodes compared with their operands; {} who-can answers compared with the check ({} by the combined condition, {} by a plan for the principal's exact roles); {} who-can JSON filters read back and evaluated",
        counts.decisions,
        counts.rules_compared,
        counts.operators_compared,
        counts.who_can_compared,
        counts.who_can_by_combined_condition,
        counts.who_can_compared - counts.who_can_by_combined_condition,
        counts.who_can_json_compared
    );
    assert!(counts.decisions > 0 && counts.rules_compared > 0 && counts.operators_compared > 0);
    assert!(failures.is_empty(), "seed {seed}:\n{}", failures.join("\n\n"));
}
