//! `vecgate explain`: why one principal may or may not do one action on one record.
//!
//! The report holds the decision and how it was reached: every rule that applies to the
//! principal's roles (principal policies, resource policies, role policies' narrowing), in the
//! check's order, each with its derived role's and its own condition evaluated piece by piece
//! ([`values`]), whether the check reached it, matched it, and which rule decided, in which
//! evaluation mode; the derived roles of the resource's scopes with the conditions that
//! activate them; and the filter vecgate pushes down for this principal (the plan) with
//! whether this record passes it.
//!
//! Invariants:
//! - The decision is the check's ([`check_action_traced`] runs the check itself and records
//!   what it evaluated); nothing here re-decides.
//! - The plan's verdict on the record is computed independently (the planner, then the
//!   reference evaluator on the record); a disagreement with the check is reported as a bug
//!   (`filter.agrees_with_check` false), never hidden.
//! - The JSON form ([`Explanation`] serialised) is a stable document: fields are only added.

pub mod text;
pub mod values;

use crate::plan::eval::{allows, RecordEnv};
use crate::plan::functions::CallContext;
use crate::plan::text::{abbreviated, readable};
use crate::plan::{Plan, Value};
use crate::policy::check::{check_action_traced, derived_role_list, RuleEvaluation};
use crate::policy::env::PlanEnv;
use crate::policy::model::Effect;
use crate::policy::planner::{PlanRequest, Planner, Principal};
use crate::policy::rules::{Binding, Lookup, PolicyKind, RuleCondition};
use chrono::{DateTime, FixedOffset};
use serde::Serialize;
use std::collections::BTreeMap;
use values::{ConditionNode, Outcome, Values};

/// Version of the JSON document.
pub const DOCUMENT_VERSION: u32 = 1;

/// What to explain.
#[derive(Clone, Debug)]
pub struct ExplainQuestion<'a> {
    pub principal: &'a Principal,
    /// Verified claims (`request.auxData.jwt`).
    pub jwt: &'a BTreeMap<String, Value>,
    pub kind: &'a str,
    pub scope: &'a str,
    pub id: &'a str,
    /// The record's attributes, complete.
    pub attr: &'a BTreeMap<String, Value>,
    pub action: &'a str,
    pub now: DateTime<FixedOffset>,
}

/// The report.
#[derive(Clone, Debug, Serialize)]
pub struct Explanation {
    pub version: u32,
    pub action: String,
    pub allowed: bool,
    /// `ALLOW` or `DENY`.
    pub decision: &'static str,
    /// `policies.evaluation`.
    pub evaluation: String,
    /// One sentence: what decided.
    pub reason: String,
    /// Index in `rules` of the rule that decided (none: nothing matched, denied).
    pub decided_by: Option<usize>,
    pub principal: serde_json::Value,
    pub resource: serde_json::Value,
    pub derived_roles: Vec<DerivedRoleReport>,
    pub rules: Vec<RuleReport>,
    pub filter: FilterReport,
}

/// A derived role of the resource's policies whose parent roles the principal holds.
#[derive(Clone, Debug, Serialize)]
pub struct DerivedRoleReport {
    pub name: String,
    pub scope: String,
    pub parent_roles: Vec<String>,
    /// Its condition (none: always active).
    pub condition: Option<ConditionNode>,
    /// Whether the principal has it on this record, as the mode reads the condition (`None`:
    /// an error under `cerbos_strict`).
    pub active: Option<bool>,
}

/// One rule that applies to the principal's roles.
#[derive(Clone, Debug, Serialize)]
pub struct RuleReport {
    /// `principal policy`, `resource policy` or `role policy`.
    pub policy: &'static str,
    pub file: String,
    pub rule: Option<String>,
    pub scope: String,
    /// The principal's role whose evaluation reached the rule.
    pub role: String,
    pub effect: &'static str,
    pub derived_role: Option<String>,
    pub derived_role_condition: Option<ConditionNode>,
    /// `always`, `when` (the condition must hold) or `unless` (a role policy's or a parental
    /// consent scope's DENY unless the condition holds).
    pub condition_kind: &'static str,
    pub condition: Option<ConditionNode>,
    /// The check evaluated this rule (it stops once an action is decided).
    pub reached: bool,
    /// What the check read from the derived role's condition.
    pub derived_role_met: Option<Outcome>,
    /// What the check read from the rule's condition (`unless` already negated).
    pub condition_met: Option<Outcome>,
    /// The rule matched (`None`: not reached, or an error under `cerbos_strict` ended the
    /// check here).
    pub matched: Option<bool>,
    pub decided: bool,
}

/// The filter vecgate pushes down for this principal, and this record against it.
#[derive(Clone, Debug, Serialize)]
pub struct FilterReport {
    /// Cerbos' `PlanResourcesFilter` JSON.
    pub plan: serde_json::Value,
    pub plan_text: String,
    pub record_matches: bool,
    /// `record_matches == allowed`; false is a bug in vecgate, to be reported.
    pub agrees_with_check: bool,
    /// The database filter the plan becomes (filled in by the caller that knows the
    /// collection's field mapping).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_filter: Option<serde_json::Value>,
    /// Why the plan has no database filter (refused, or answered by vecgate itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_filter_note: Option<String>,
}

/// Explains `question` with `planner`'s policies and settings.
pub fn explain(planner: &Planner, question: &ExplainQuestion<'_>) -> (Explanation, Plan) {
    let options = planner.options();
    let table = planner.rule_table();
    let actions = [question.action.to_string()];
    let request = PlanRequest {
        principal: question.principal,
        resource_kind: question.kind,
        resource_scope: question.scope,
        resource_version: "",
        resource_attr: question.attr,
        resource_id: Some(question.id),
        attr_complete: true,
        actions: &actions,
        jwt: question.jwt,
        now: question.now,
    };
    let trace = check_action_traced(table, options, &request, question.action);
    let env = PlanEnv::new(&request, options);
    let values = Values { env: &env };
    let mode = options.evaluation;

    // Every rule that applies, in the check's order, matched with what the check recorded:
    // the n-th traced rule of a (kind, role, scope) is the n-th binding there.
    let lookup = Lookup::new(table, &request, options);
    let mut rules = Vec::new();
    let mut decided_by = None;
    for kind in [PolicyKind::Principal, PolicyKind::Resource] {
        let roles: &[String] = match kind {
            PolicyKind::Principal => &question.principal.roles[..question.principal.roles.len().min(1)],
            PolicyKind::Resource => &question.principal.roles,
        };
        for role in roles {
            let with_parents = lookup.role_with_parents(role);
            for scope in lookup.scopes(kind) {
                let traced: Vec<(usize, &RuleEvaluation<'_>)> = trace
                    .rules
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| t.kind == kind && &t.role == role && t.scope == scope)
                    .collect();
                for (n, b) in lookup.bindings(kind, &scope, question.action, &with_parents).iter().enumerate() {
                    let seen = traced.get(n);
                    if seen.is_some() && seen.map(|(i, _)| Some(*i)) == Some(trace.decided_by) {
                        decided_by = Some(rules.len());
                    }
                    let derived_list = match (seen, kind) {
                        (Some((_, t)), _) => t.derived_list.clone(),
                        (None, PolicyKind::Resource) => derived_role_list(table, options, &request, &scope),
                        (None, PolicyKind::Principal) => crate::plan::Expr::Value(Value::list(Vec::new())),
                    };
                    rules.push(rule_report(&values, kind, role, &scope, b, &derived_list, seen.map(|(_, t)| *t)));
                }
            }
        }
    }
    if let Some(i) = decided_by {
        rules[i].decided = true;
    }

    let derived_roles = lookup
        .scopes(PolicyKind::Resource)
        .iter()
        .flat_map(|scope| {
            let empty = crate::plan::Expr::Value(Value::list(Vec::new()));
            lookup.derived_roles(scope).into_iter().map(move |dr| (scope.clone(), dr, empty.clone()))
        })
        .map(|(scope, dr, empty)| {
            let condition = dr.condition.as_ref().map(|c| values.condition(c, &dr.definitions, &empty));
            let active = match &condition {
                None => Some(true),
                Some(c) => c.reading(mode).map(|t| t == crate::policy::check::Tri::True),
            };
            DerivedRoleReport {
                name: dr.name.clone(),
                scope,
                parent_roles: dr.parent_roles.clone(),
                condition,
                active,
            }
        })
        .collect();

    // The plan for this principal, computed without the record, then judged on it.
    let no_attr = BTreeMap::new();
    let plan = planner
        .plan(&PlanRequest {
            resource_attr: &no_attr,
            resource_id: None,
            attr_complete: false,
            ..request.clone()
        })
        .plan;
    let record = record_env(question.id, question.kind, question.attr, question.now);
    let record_matches = allows(&plan, &record);
    let reason = reason(&trace, decided_by.map(|i| &rules[i]), mode);
    let explanation = Explanation {
        version: DOCUMENT_VERSION,
        action: question.action.to_string(),
        allowed: trace.allowed,
        decision: if trace.allowed { "ALLOW" } else { "DENY" },
        evaluation: mode.name().to_string(),
        reason,
        decided_by,
        principal: principal_json(question.principal),
        resource: resource_json(question.kind, question.id, question.scope, question.attr),
        derived_roles,
        rules,
        filter: FilterReport {
            plan: plan.to_cerbos_json(),
            plan_text: plan_text(&plan),
            record_matches,
            agrees_with_check: record_matches == trace.allowed,
            database_filter: None,
            database_filter_note: None,
        },
    };
    (explanation, plan)
}

fn attr_json(attr: &BTreeMap<String, Value>) -> serde_json::Value {
    serde_json::Value::Object(attr.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
}

/// The report's `principal`.
pub fn principal_json(p: &Principal) -> serde_json::Value {
    serde_json::json!({"id": p.id, "roles": p.roles, "attr": attr_json(&p.attr), "scope": p.scope})
}

/// The report's `resource`.
pub fn resource_json(kind: &str, id: &str, scope: &str, attr: &BTreeMap<String, Value>) -> serde_json::Value {
    serde_json::json!({"kind": kind, "id": id, "scope": scope, "attr": attr_json(attr)})
}

/// A plan in one line, for the report's `plan_text`.
pub fn plan_text(plan: &Plan) -> String {
    match plan {
        Plan::AlwaysAllowed => "true (every record)".into(),
        Plan::AlwaysDenied => "false (no record)".into(),
        Plan::Conditional(e) => readable(e, &abbreviated),
    }
}

/// The record a plan is judged on.
pub fn record_env(id: &str, kind: &str, attr: &BTreeMap<String, Value>, now: DateTime<FixedOffset>) -> RecordEnv {
    RecordEnv::new(
        Value::string(id),
        kind,
        Value::map(attr.iter().map(|(k, v)| (crate::plan::value::MapKey::string(k), v.clone())).collect()),
        CallContext { now },
    )
}

fn rule_report(
    values: &Values<'_>,
    kind: PolicyKind,
    role: &str,
    scope: &str,
    b: &Binding<'_>,
    derived_list: &crate::plan::Expr,
    traced: Option<&RuleEvaluation<'_>>,
) -> RuleReport {
    let empty = crate::plan::Expr::Value(Value::list(Vec::new()));
    let (condition_kind, condition) = match b.condition {
        RuleCondition::Always => ("always", None),
        RuleCondition::When(c) => ("when", Some(values.condition(c, b.definitions, derived_list))),
        RuleCondition::Unless(c) => ("unless", Some(values.condition(c, b.definitions, derived_list))),
    };
    RuleReport {
        policy: match (kind, b.from_role_policy) {
            (PolicyKind::Principal, _) => "principal policy",
            (PolicyKind::Resource, true) => "role policy",
            (PolicyKind::Resource, false) => "resource policy",
        },
        file: b.file.to_string(),
        rule: b.rule_name.map(String::from),
        scope: scope.to_string(),
        role: role.to_string(),
        effect: match b.effect {
            Effect::Allow => "ALLOW",
            Effect::Deny => "DENY",
        },
        derived_role: b.derived.map(|d| d.name.clone()),
        derived_role_condition: b
            .derived
            .and_then(|d| d.condition.as_ref().map(|c| values.condition(c, &d.definitions, &empty))),
        condition_kind,
        condition,
        reached: traced.is_some(),
        derived_role_met: traced.and_then(|t| t.derived_outcome).map(Outcome::from_tri),
        condition_met: traced.and_then(|t| t.rule_outcome).map(Outcome::from_tri),
        matched: traced.and_then(|t| t.matched),
        decided: false,
    }
}

/// The decision in one sentence.
fn reason(
    trace: &crate::policy::check::CheckTrace<'_>,
    decided: Option<&RuleReport>,
    mode: crate::policy::evaluation::Evaluation,
) -> String {
    let name = |r: &RuleReport| {
        let mut s = match &r.rule {
            Some(n) => format!("rule {n:?}"),
            None => "an unnamed rule".to_string(),
        };
        s.push_str(&format!(" ({} {}, {} in {}", r.effect, r.policy, r.file, scope_name(&r.scope)));
        if let Some(d) = &r.derived_role {
            s.push_str(&format!(", derived role {d}"));
        }
        s.push_str(&format!(", role {})", r.role));
        s
    };
    match (decided, trace.strict_error, trace.allowed) {
        (Some(r), true, _) => format!(
            "DENY: an evaluation error in {} ends the check under {mode} (an error denies the action)",
            name(r)
        ),
        (Some(r), false, true) => format!("ALLOW by {}", name(r)),
        (Some(r), false, false) if r.condition_met == Some(Outcome::Error) => format!(
            "DENY by {}: its condition errors, and under {mode} an erroring DENY applies",
            name(r)
        ),
        (Some(r), false, false) => format!("DENY by {}", name(r)),
        (None, _, _) => format!(
            "DENY: no rule allows the action, which denies it (under {mode})"
        ),
    }
}

fn scope_name(scope: &str) -> String {
    if scope.is_empty() {
        "the root scope".into()
    } else {
        format!("scope {scope:?}")
    }
}
