//! In every evaluation mode, including `fail_closed` (which no PDP has), vecgate's plan for
//! (principal, action, resource scope), evaluated on a record, must decide as vecgate's check
//! of that record. Policy sets, principals and records come from the same generator as the
//! PDP differential (tests/support/policygen.rs); the check itself is compared with the real
//! PDP there. `VECGATE_PLAN_SEED` reproduces a run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
use support::policygen::{attr_map, principal_from_json as principal};

use std::collections::BTreeMap;
use std::sync::Arc;
use support::policygen;
use vecgate::plan::eval::{allows, RecordEnv};
use vecgate::plan::functions::CallContext;
use vecgate::plan::Value;
use vecgate::policy::evaluation::Evaluation;
use vecgate::policy::load::load_documents;
use vecgate::policy::planner::{PlanRequest, Planner, PlannerOptions};



#[test]
fn plans_decide_as_the_check_in_every_mode() {
    let seed: u64 = std::env::var("VECGATE_PLAN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                % 1_000_000_000
        });
    println!("seed {seed} (reproduce with VECGATE_PLAN_SEED={seed})");
    let now = chrono::Utc::now().fixed_offset();
    let (no_jwt, no_attr) = (BTreeMap::new(), BTreeMap::new());
    let mut compared = 0usize;
    let mut failures = Vec::new();
    for i in 0..10 {
        let set = policygen::generate(seed.wrapping_add(i), 6, 30);
        let policies = Arc::new(load_documents(&set.files).unwrap());
        for evaluation in Evaluation::ALL {
            for lenient in [false, true] {
                let planner = Planner::new(
                    policies.clone(),
                    PlannerOptions {
                        globals: attr_map(&policygen::globals()),
                        lenient_scope_search: lenient,
                        evaluation,
                        ..PlannerOptions::default()
                    },
                );
                for p_json in &set.principals {
                    let p = principal(p_json);
                    for action in &set.actions {
                        let actions = [action.clone()];
                        for scope in policygen::SCOPES {
                            let request = PlanRequest {
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
                            };
                            let plan = planner.plan(&request).plan;
                            for r in set.resources.iter() {
                                let id = r["id"].as_str().unwrap();
                                let attrs = attr_map(&r["attr"]);
                                let checked = planner.check(&PlanRequest {
                                    resource_attr: &attrs,
                                    resource_id: Some(id),
                                    attr_complete: true,
                                    ..request.clone()
                                });
                                let record = RecordEnv::new(
                                    Value::string(id),
                                    "doc",
                                    Value::from_json(&r["attr"]),
                                    CallContext { now },
                                );
                                compared += 1;
                                if allows(&plan, &record) != checked && failures.len() < 3 {
                                    failures.push(format!(
                                        "{evaluation} lenient={lenient} action {action:?} scope {scope:?}: check {checked}, plan {}\nplan: {}\n{}",
                                        !checked,
                                        plan.to_cerbos_json(),
                                        set.describe(p_json, r)
                                    ));
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    println!("{compared} plan evaluations compared with the check");
    assert!(failures.is_empty(), "seed {seed}:\n{}", failures.join("\n\n"));
}
