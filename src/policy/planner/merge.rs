//! Several actions in one plan request: the AND of the per-action plans, as Cerbos merges
//! them.

use crate::plan::{Expr, Op, Plan};
use std::collections::BTreeMap;

/// ANDs per-action plans: any DENIED denies, ALLOWED drops out, conditions are deduplicated
/// by their debug string and sorted.
pub fn merge_with_and(plans: Vec<Plan>) -> Plan {
    let mut conditions: BTreeMap<String, Expr> = BTreeMap::new();
    for p in plans {
        match p {
            Plan::AlwaysDenied => return Plan::AlwaysDenied,
            Plan::AlwaysAllowed => {}
            Plan::Conditional(e) => {
                conditions.insert(e.debug_string(), e);
            }
        }
    }
    let mut exprs: Vec<Expr> = conditions.into_values().collect();
    match exprs.len() {
        0 => Plan::AlwaysAllowed,
        1 => Plan::Conditional(exprs.remove(0)),
        _ => Plan::Conditional(Expr::Call(Op::And, exprs)),
    }
}
