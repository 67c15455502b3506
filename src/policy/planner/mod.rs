//! The query planner: Cerbos `PlanResources` over a [`PolicySet`], sound and complete with
//! respect to the check ([`crate::policy::check`]): for every record, the plan allows it
//! exactly when the check would, in every [`Evaluation`] mode.
//!
//! For each action the rule table ([`crate::policy::rules`]) yields the rules per policy kind,
//! role and scope; their conditions are partially evaluated with the resource unknown
//! ([`conditions`]) and combined:
//! - `Cerbos` and `FailClosed` ([`combine`]): in Cerbos' planner's shape,
//!   `AND(NOT principalDeny, OR(principalAllow, AND(NOT resourceDeny, resourceAllow)))`, with
//!   each rule's "matched" written so that it never errors (`isTrue` where Cerbos' check reads
//!   "not met", dropped again where it changes nothing). Two places differ from Cerbos'
//!   planner on purpose, because its plan there allows what its check denies: a role's DENY
//!   applies to that role only (per-role DENY; shared DENYs are still written once, at the
//!   top), and a principal policy's unconditional DENY is kept.
//! - `CerbosStrict` ([`sequential`]): the check's order of evaluation written out with `if`,
//!   so an error on a record where Cerbos would meet it denies that record.
//! - With [`PlannerOptions::cerbos_planner`], Cerbos' own planner is reproduced, quirks
//!   included (its suites' harness: `vecgate plan-suite`, the conformance tests). Never used
//!   to decide.

mod combine;
mod conditions;
mod merge;
mod outcome;
mod sequential;

pub use super::definitions::inline_definitions;
pub use super::env::PlanEnv;
pub use super::evaluation::Evaluation;
pub use super::request::{PlanRequest, PlannerOptions, Principal};
pub use super::rules::glob_match;
pub use merge::merge_with_and;

use super::check::check_actions;
use super::model::PolicySet;
use super::rules::RuleTable;
use crate::plan::Plan;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The planner's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanOutput {
    pub plan: Plan,
    /// No policy matched at all (Cerbos' `NO_MATCH` filter debug).
    pub no_match: bool,
    /// Per action, the scope whose rules decided it.
    pub matched_scopes: BTreeMap<String, String>,
}

/// A planner over one immutable policy set.
pub struct Planner {
    table: RuleTable,
    options: PlannerOptions,
}

impl Planner {
    pub fn new(set: Arc<PolicySet>, options: PlannerOptions) -> Planner {
        Planner {
            table: RuleTable::new(set),
            options,
        }
    }

    pub fn options(&self) -> &PlannerOptions {
        &self.options
    }

    pub fn policy_set(&self) -> &PolicySet {
        self.table.policy_set()
    }

    /// The rule table the check and the plans read.
    pub fn rule_table(&self) -> &RuleTable {
        &self.table
    }

    /// Plans `request.actions` (the AND of the per-action plans).
    pub fn plan(&self, request: &PlanRequest<'_>) -> PlanOutput {
        self.plan_in(request, &PlanEnv::new(request, &self.options))
    }

    /// Plans `request.actions` with the resource known (`resource_id`, the complete
    /// `resource_attr`, `attr_complete`) and what conditions read of the principal unknown
    /// (its roles and attributes, and its id unless `id_known`): the plan is a condition over
    /// the principal. The request's principal still selects the rules (its roles, and its id
    /// for principal policies), so the plan holds for principals with exactly those roles
    /// (and that id). `who-can` is built on this.
    pub fn plan_for_unknown_principal(&self, request: &PlanRequest<'_>, id_known: bool) -> PlanOutput {
        let env = PlanEnv::with_unknown_principal(request, &self.options, id_known);
        self.plan_in(request, &env)
    }

    fn plan_in(&self, request: &PlanRequest<'_>, env: &PlanEnv) -> PlanOutput {
        let mut matched_scopes = BTreeMap::new();
        let mut plans = Vec::with_capacity(request.actions.len());
        let mut policy_match = false;
        for action in request.actions {
            let outcome = match self.options.evaluation {
                Evaluation::CerbosStrict if !self.options.cerbos_planner => {
                    sequential::plan_action(&self.table, &self.options, request, env, action)
                }
                _ => combine::plan_action(&self.table, &self.options, request, env, action),
            };
            policy_match |= outcome.matched;
            matched_scopes.insert(action.clone(), outcome.scope);
            plans.push(outcome.plan);
        }
        PlanOutput {
            plan: merge_with_and(plans),
            no_match: !policy_match,
            matched_scopes,
        }
    }

    /// Full evaluation for one concrete resource: give `resource_id` and the complete
    /// `resource_attr` with `attr_complete`. True when every action in the request is allowed.
    pub fn check(&self, request: &PlanRequest<'_>) -> bool {
        self.check_actions(request).iter().all(|(_, allowed)| *allowed)
    }

    /// Like [`Planner::check`], action by action.
    pub fn check_actions(&self, request: &PlanRequest<'_>) -> Vec<(String, bool)> {
        check_actions(&self.table, &self.options, request)
    }
}
