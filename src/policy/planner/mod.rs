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
mod definitions;
mod env;
mod merge;
mod sequential;

pub use super::evaluation::Evaluation;
pub use super::rules::glob_match;
pub use definitions::inline_definitions;
pub use env::PlanEnv;
pub use merge::merge_with_and;

use super::check::check_actions;
use super::model::PolicySet;
use super::rules::RuleTable;
use crate::plan::Plan;
use crate::plan::Value;
use chrono::{DateTime, FixedOffset};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Engine settings that hold for every request.
#[derive(Clone, Debug)]
pub struct PlannerOptions {
    pub globals: BTreeMap<String, Value>,
    pub default_version: String,
    pub lenient_scope_search: bool,
    /// What a rule whose condition errors does.
    pub evaluation: Evaluation,
    /// Unroll `exists`/`all` over known collections only up to this size (Cerbos: 10).
    /// `None` unrolls every known collection, which keeps plans translatable.
    pub unroll_limit: Option<usize>,
    /// Reproduce Cerbos' planner output exactly, its unsound spots included: errors fold to
    /// false, a conditional DENY applies across roles, an unconditional principal DENY is
    /// dropped. For Cerbos' planner suites only; plans made this way may allow what the
    /// check denies.
    pub cerbos_planner: bool,
}

impl Default for PlannerOptions {
    fn default() -> Self {
        PlannerOptions {
            globals: BTreeMap::new(),
            default_version: "default".into(),
            lenient_scope_search: false,
            evaluation: Evaluation::default(),
            unroll_limit: None,
            cerbos_planner: false,
        }
    }
}

/// The caller, as policies see it (`request.principal`).
#[derive(Clone, Debug, Default)]
pub struct Principal {
    pub id: String,
    pub roles: Vec<String>,
    pub attr: BTreeMap<String, Value>,
    pub scope: String,
    pub policy_version: String,
}

/// One planning question.
#[derive(Clone, Debug)]
pub struct PlanRequest<'a> {
    pub principal: &'a Principal,
    pub resource_kind: &'a str,
    pub resource_scope: &'a str,
    pub resource_version: &'a str,
    /// Resource attributes already known (folded into the plan).
    pub resource_attr: &'a BTreeMap<String, Value>,
    /// The resource id, when known (a check rather than a plan).
    pub resource_id: Option<&'a str>,
    /// `resource_attr` is the whole attribute map: a missing attribute is an error, not
    /// an unknown (a check rather than a plan).
    pub attr_complete: bool,
    pub actions: &'a [String],
    /// Verified JWT claims (`request.auxData.jwt`).
    pub jwt: &'a BTreeMap<String, Value>,
    pub now: DateTime<FixedOffset>,
}

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

    /// Plans `request.actions` (the AND of the per-action plans).
    pub fn plan(&self, request: &PlanRequest<'_>) -> PlanOutput {
        let env = PlanEnv::new(request, &self.options);
        let mut matched_scopes = BTreeMap::new();
        let mut plans = Vec::with_capacity(request.actions.len());
        let mut policy_match = false;
        for action in request.actions {
            let outcome = match self.options.evaluation {
                Evaluation::CerbosStrict if !self.options.cerbos_planner => {
                    sequential::plan_action(&self.table, &self.options, request, &env, action)
                }
                _ => combine::plan_action(&self.table, &self.options, request, &env, action),
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

/// One action's plan, with what the response metadata reports about it.
pub(crate) struct ActionPlan {
    pub plan: Plan,
    /// Some policy produced a rule for this action.
    pub matched: bool,
    /// The scope whose rules decided it (Cerbos' `matchedScopes`).
    pub scope: String,
}

/// `v`, or the default policy version when `v` is empty.
pub(crate) fn version_or(v: &str, options: &PlannerOptions) -> String {
    if v.is_empty() {
        options.default_version.clone()
    } else {
        v.to_string()
    }
}
