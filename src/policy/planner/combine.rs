//! Plans for `Cerbos` and `FailClosed`, and Cerbos' own planner reproduced: rules combined by
//! boolean algebra in the shape of Cerbos' planner (`ruletable/plan.go`).
//!
//! Per role, walking the scopes from the most specific: the ALLOWs of each `OVERRIDE_PARENT`
//! scope are ORed into the role's allow, and a scope's DENYs are gated by "no more specific
//! scope allowed" (`D ∧ ¬A_child`) and ORed into the role's deny. Role `r` is allowed where
//! `¬deny_r ∧ allow_r` (which is the check's "the first scope that decides, allows"). Across
//! roles the allows are ORed; a deny shared by every role that allows is written once, at the
//! top, as Cerbos writes it. The principal policy's deny and allow wrap the resource part:
//! `¬principalDeny ∧ (principalAllow ∨ resource)`.
//!
//! Each rule's node says "this rule matched" and never errors: under `Cerbos`, an expression
//! that errors is not met (`isTrue`); under `FailClosed`, an ALLOW matches where its condition
//! is exactly true and a DENY where it is not exactly false. Wrappers that change nothing are
//! dropped at the end ([`crate::plan::simplify`]).

use super::conditions::{Conditions, Reading};
use super::outcome::ActionPlan;
use crate::plan::eval::Polarity;
use crate::plan::normalise::normalise;
use crate::plan::simplify::drop_redundant_is_true;
use crate::plan::{Expr, Op, Plan, Value};
use crate::policy::env::PlanEnv;
use crate::policy::evaluation::Evaluation;
use crate::policy::model::{Effect, ScopePermissions};
use crate::policy::request::{PlanRequest, PlannerOptions};
use crate::policy::rules::{Binding, Lookup, PolicyKind, RuleCondition, RuleTable};
use std::collections::BTreeMap;

/// Plans one action.
pub(super) fn plan_action(
    table: &RuleTable,
    options: &PlannerOptions,
    request: &PlanRequest<'_>,
    env: &PlanEnv,
    action: &str,
) -> ActionPlan {
    let builder = Builder {
        table,
        options,
        request,
        conditions: Conditions { options, env },
        lookup: Lookup::new(table, request, options),
        derived_lists: std::cell::RefCell::new(BTreeMap::new()),
    };
    builder.plan(action)
}

/// What one role's walk down the scopes produced.
struct RoleNodes {
    /// Some rule applied (even one whose condition is false).
    matched: bool,
    allow: Option<Expr>,
    deny: Option<Expr>,
    /// DENYs a role policy adds for this role.
    deny_role_policy: Option<Expr>,
}

struct Builder<'a> {
    table: &'a RuleTable,
    options: &'a PlannerOptions,
    request: &'a PlanRequest<'a>,
    conditions: Conditions<'a>,
    lookup: Lookup<'a>,
    derived_lists: std::cell::RefCell<BTreeMap<String, Expr>>,
}

impl Builder<'_> {
    fn plan(&self, action: &str) -> ActionPlan {
        let request = self.request;
        let principal_scopes = self.lookup.scopes(PolicyKind::Principal);
        let resource_scopes = self.lookup.scopes(PolicyKind::Resource);
        let mut matched_scope = String::new();
        let mut root: Option<Expr> = None;
        let mut has_allow = false;
        let mut matched = false;
        // Resource policies first, then principal policies (Cerbos' planner order).
        for kind in [PolicyKind::Resource, PolicyKind::Principal] {
            let scopes = match kind {
                PolicyKind::Principal => &principal_scopes,
                PolicyKind::Resource => &resource_scopes,
            };
            let mut roles = Vec::new();
            for (i, role) in request.principal.roles.iter().enumerate() {
                if i > 0 && kind == PolicyKind::Principal {
                    break;
                }
                let nodes = self.role(kind, scopes, action, role, &mut matched_scope);
                matched |= nodes.matched;
                let always = nodes.deny.is_none()
                    && nodes.deny_role_policy.is_none()
                    && nodes.allow.as_ref().and_then(Expr::as_bool) == Some(true);
                roles.push(nodes);
                if always {
                    break;
                }
            }
            let (type_allow, type_deny) = if self.options.cerbos_planner {
                cerbos_roles(roles)
            } else {
                match kind {
                    PolicyKind::Principal => principal_roles(roles),
                    PolicyKind::Resource => resource_roles(roles),
                }
            };
            if let Some(ta) = type_allow {
                has_allow = true;
                root = Some(match root {
                    None => ta,
                    Some(r) => Expr::call_unique(Op::Or, vec![ta, r]),
                });
            }
            if let Some(td) = type_deny {
                let inv = Expr::negate(td);
                root = Some(match root {
                    None => inv,
                    Some(r) => Expr::call_unique(Op::And, vec![inv, r]),
                });
            }
        }
        let plan = match root {
            None => Plan::AlwaysDenied,
            Some(_) if !has_allow => Plan::AlwaysDenied,
            Some(r) if self.options.cerbos_planner => Plan::from_expr(normalise(r)),
            Some(r) => Plan::from_expr(normalise(drop_redundant_is_true(normalise(r)))),
        };
        ActionPlan {
            plan,
            matched,
            scope: matched_scope,
        }
    }

    /// One role's walk down a scope chain.
    fn role(
        &self,
        kind: PolicyKind,
        scopes: &[String],
        action: &str,
        role: &str,
        matched_scope: &mut String,
    ) -> RoleNodes {
        let roles = self.lookup.role_with_parents(role);
        let mut out = RoleNodes {
            matched: false,
            allow: None,
            deny: None,
            deny_role_policy: None,
        };
        let mut child_override: Option<Expr> = None;
        // Cerbos' planner: an ALLOW in a REQUIRE_PARENTAL_CONSENT scope waits for an
        // ancestor's, ANDed to it (even a constant-false one, which its check ignores).
        let mut pending_allow = false;
        for scope in scopes {
            // Once a more specific OVERRIDE_PARENT scope allows unconditionally, no ancestor
            // can change the outcome.
            if child_override.as_ref().and_then(Expr::as_bool) == Some(true) {
                break;
            }
            let bindings = self.lookup.bindings(kind, scope, action, &roles);
            let derived = match kind {
                PolicyKind::Resource => self.derived_list(scope),
                PolicyKind::Principal => Expr::Value(Value::list(Vec::new())),
            };
            out.matched |= !bindings.is_empty();
            let mut scope_allow: Option<Expr> = None;
            let mut scope_deny: Option<Expr> = None;
            let mut scope_deny_rp: Option<Expr> = None;
            for b in &bindings {
                let node = self.matched(b, &derived);
                match b.effect {
                    Effect::Allow => scope_allow = Some(add(scope_allow, node, Op::Or)),
                    Effect::Deny if node.as_bool() == Some(false) => {}
                    Effect::Deny if b.from_role_policy => {
                        scope_deny_rp = Some(add(scope_deny_rp, node, Op::Or))
                    }
                    Effect::Deny => scope_deny = Some(add(scope_deny, node, Op::Or)),
                }
            }
            let scope_deny = gate(child_override.as_ref(), scope_deny);
            let scope_deny_rp = gate(child_override.as_ref(), scope_deny_rp);
            let overrides = self.table.permissions(scope) == ScopePermissions::OverrideParent;
            if overrides
                && matched_scope.is_empty()
                && (scope_allow.is_some() || scope_deny.is_some() || scope_deny_rp.is_some())
            {
                *matched_scope = scope.clone();
            }
            out.deny = add_opt(out.deny, scope_deny, Op::Or);
            out.deny_role_policy = add_opt(out.deny_role_policy, scope_deny_rp, Op::Or);
            if self.options.cerbos_planner {
                if let Some(sa) = scope_allow {
                    out.allow = Some(match out.allow.take() {
                        None => sa.clone(),
                        Some(a) if pending_allow => {
                            pending_allow = false;
                            Expr::call_unique(Op::And, vec![a, sa.clone()])
                        }
                        Some(a) => Expr::call_unique(Op::Or, vec![a, sa.clone()]),
                    });
                    if overrides {
                        child_override = Some(add(child_override, sa, Op::Or));
                    } else {
                        pending_allow = true;
                    }
                }
                continue;
            }
            // In a REQUIRE_PARENTAL_CONSENT scope an ALLOW decides nothing: its conditional
            // ALLOWs are already DENYs unless met, and an ancestor must allow.
            if let (Some(sa), true) = (scope_allow, overrides) {
                out.allow = Some(add(out.allow, sa.clone(), Op::Or));
                child_override = Some(add(child_override, sa, Op::Or));
            }
        }
        if pending_allow {
            out.allow = None;
        }
        out
    }

    /// "This rule matched", as a node that never errors (Cerbos' planner: as it writes it).
    fn matched(&self, b: &Binding<'_>, derived: &Expr) -> Expr {
        let node = |c, defs, reading| self.conditions.node(c, defs, derived, reading);
        let dr_condition = b.derived.and_then(|d| d.condition.as_ref());
        let dr_defs = b.derived.map(|d| &d.definitions).unwrap_or(b.definitions);
        if self.options.cerbos_planner {
            let rule = match b.condition {
                RuleCondition::Always => None,
                RuleCondition::When(c) => Some(node(Some(c), b.definitions, Reading::CerbosPlanner)),
                RuleCondition::Unless(c) => Some(Expr::negate(node(
                    Some(c),
                    b.definitions,
                    Reading::CerbosPlanner,
                ))),
            };
            return match (rule, b.derived) {
                (Some(r), None) => r,
                (None, None) => Expr::bool(true),
                (None, Some(_)) => node(dr_condition, dr_defs, Reading::CerbosPlanner),
                (Some(r), Some(_)) => Expr::Call(
                    Op::And,
                    vec![r, node(dr_condition, dr_defs, Reading::CerbosPlanner)],
                ),
            };
        }
        match self.options.evaluation {
            Evaluation::FailClosed => {
                // ALLOW: the conjunction exactly true; DENY: not exactly false.
                let pol = match b.effect {
                    Effect::Allow => Polarity::Positive,
                    Effect::Deny => Polarity::Negative,
                };
                let rule = match b.condition {
                    RuleCondition::Always => Expr::bool(true),
                    RuleCondition::When(c) => node(Some(c), b.definitions, Reading::Value(pol)),
                    RuleCondition::Unless(c) => Expr::negate(node(
                        Some(c),
                        b.definitions,
                        Reading::Value(pol.flip()),
                    )),
                };
                let role = node(dr_condition, dr_defs, Reading::Value(pol));
                let value = conjunction(rule, role);
                match b.effect {
                    Effect::Allow => Expr::is_true(value),
                    Effect::Deny => Expr::negate(Expr::is_true(Expr::negate(value))),
                }
            }
            Evaluation::Cerbos | Evaluation::CerbosStrict => {
                let rule = match b.condition {
                    RuleCondition::Always => Expr::bool(true),
                    RuleCondition::When(c) => node(Some(c), b.definitions, Reading::Met),
                    RuleCondition::Unless(c) => {
                        Expr::negate(node(Some(c), b.definitions, Reading::Met))
                    }
                };
                conjunction(rule, node(dr_condition, dr_defs, Reading::Met))
            }
        }
    }

    /// `runtime.effectiveDerivedRoles` for a resource scope: `cond ? ["name"] : []` over the
    /// derived roles whose parents the principal holds, by name, concatenated as Cerbos builds
    /// it (`a + (b + c)`).
    fn derived_list(&self, scope: &str) -> Expr {
        if let Some(e) = self.derived_lists.borrow().get(scope) {
            return e.clone();
        }
        let reading = match (self.options.cerbos_planner, self.options.evaluation) {
            (true, _) => Reading::CerbosPlanner,
            (false, Evaluation::Cerbos) => Reading::Met,
            (false, _) => Reading::Value(Polarity::Neutral),
        };
        let empty = Expr::Value(Value::list(Vec::new()));
        let mut items = Vec::new();
        for dr in self.lookup.derived_roles(scope) {
            let name = Expr::Value(Value::list(vec![Value::string(&dr.name)]));
            let cond = self
                .conditions
                .node(dr.condition.as_ref(), &dr.definitions, &empty, reading);
            items.push(match normalise(cond) {
                Expr::Value(Value::Bool(true)) => name,
                Expr::Value(Value::Bool(false)) => continue,
                cond => Expr::Call(Op::If, vec![cond, name, empty.clone()]),
            });
        }
        let list = items
            .into_iter()
            .rev()
            .reduce(|acc, item| Expr::Call(Op::Add, vec![item, acc]))
            .unwrap_or(empty);
        self.derived_lists
            .borrow_mut()
            .insert(scope.to_string(), list.clone());
        list
    }
}

/// The roles of a principal policy (there is one "role"): its DENY is final, an
/// unconditional one included.
fn principal_roles(roles: Vec<RoleNodes>) -> (Option<Expr>, Option<Expr>) {
    let mut allow = None;
    let mut deny = None;
    for r in roles {
        allow = add_opt(allow, r.allow, Op::Or);
        deny = add_opt(deny, add_opt(r.deny, r.deny_role_policy, Op::Or), Op::Or);
    }
    (allow, deny)
}

/// The roles of resource policies: each role's DENY vetoes that role's ALLOW only, as in the
/// check; a DENY every allowing role shares is written once, at the top (Cerbos' shape).
fn resource_roles(roles: Vec<RoleNodes>) -> (Option<Expr>, Option<Expr>) {
    let mut allowing: Vec<(Expr, Option<Expr>)> = Vec::new();
    let mut any_allow_node = false;
    for r in roles {
        let const_deny = r.deny.as_ref().and_then(Expr::as_bool) == Some(true)
            || r.deny_role_policy.as_ref().and_then(Expr::as_bool) == Some(true);
        let Some(allow) = r.allow else { continue };
        any_allow_node = true;
        if const_deny {
            continue;
        }
        if r.deny.is_none()
            && r.deny_role_policy.is_none()
            && allow.as_bool() == Some(true)
        {
            return (Some(Expr::bool(true)), None);
        }
        let allow = match r.deny_role_policy {
            Some(rp) => Expr::call_unique(Op::And, vec![allow, Expr::negate(rp)]),
            None => allow,
        };
        allowing.push((allow, r.deny));
    }
    if allowing.is_empty() {
        return (any_allow_node.then(|| Expr::bool(false)), None);
    }
    let shared = allowing.windows(2).all(|w| w[0].1 == w[1].1);
    if shared {
        let deny = allowing.first().and_then(|(_, d)| d.clone());
        let allow = allowing
            .into_iter()
            .map(|(a, _)| a)
            .reduce(|acc, a| Expr::call_unique(Op::Or, vec![acc, a]));
        return (allow, deny);
    }
    let allow = allowing
        .into_iter()
        .map(|(a, d)| match d {
            Some(d) => Expr::call_unique(Op::And, vec![Expr::negate(d), a]),
            None => a,
        })
        .reduce(|acc, a| Expr::call_unique(Op::Or, vec![acc, a]));
    (allow, None)
}

/// Cerbos' planner, as it is: a role whose DENY is unconditional contributes `false` and
/// drops that DENY (for a principal policy too), conditional DENYs apply across all roles.
fn cerbos_roles(roles: Vec<RoleNodes>) -> (Option<Expr>, Option<Expr>) {
    let mut type_allow = None;
    let mut type_deny = None;
    for r in roles {
        let const_deny = r.deny.as_ref().and_then(Expr::as_bool) == Some(true)
            || r.deny_role_policy.as_ref().and_then(Expr::as_bool) == Some(true);
        let (mut allow, deny) = if const_deny {
            (Some(Expr::bool(false)), None)
        } else if r.deny.is_none()
            && r.deny_role_policy.is_none()
            && r.allow.as_ref().and_then(Expr::as_bool) == Some(true)
        {
            return (r.allow, None);
        } else {
            (r.allow, r.deny)
        };
        if let (Some(rp), false) = (r.deny_role_policy, const_deny) {
            allow = allow.map(|a| Expr::call_unique(Op::And, vec![a, Expr::negate(rp)]));
        }
        type_allow = add_opt(type_allow, allow, Op::Or);
        type_deny = add_opt(type_deny, deny, Op::Or);
    }
    (type_allow, type_deny)
}

/// A rule's own condition and its derived role's, as Cerbos joins them (`rule ∧ role`).
fn conjunction(rule: Expr, role: Expr) -> Expr {
    match (rule.as_bool(), role.as_bool()) {
        (Some(true), _) => role,
        (_, Some(true)) => rule,
        (Some(false), _) | (_, Some(false)) => Expr::bool(false),
        _ => Expr::Call(Op::And, vec![rule, role]),
    }
}

fn add(curr: Option<Expr>, next: Expr, op: Op) -> Expr {
    match curr {
        None => next,
        Some(c) => Expr::call_unique(op, vec![c, next]),
    }
}

fn add_opt(curr: Option<Expr>, next: Option<Expr>, op: Op) -> Option<Expr> {
    match next {
        None => curr,
        Some(n) => Some(add(curr, n, op)),
    }
}

/// A scope's DENY applies only where no more specific `OVERRIDE_PARENT` scope allowed.
fn gate(child_override: Option<&Expr>, deny: Option<Expr>) -> Option<Expr> {
    match (deny, child_override) {
        (Some(d), Some(c)) => Some(Expr::call_unique(
            Op::And,
            vec![d, Expr::negate(c.clone())],
        )),
        (d, _) => d,
    }
}
