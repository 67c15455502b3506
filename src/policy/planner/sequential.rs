//! Plans for `CerbosStrict`: the check's order of evaluation written out, so that a record on
//! which Cerbos would meet an evaluation error is denied, and one on which it would not is not.
//!
//! Every rule's condition is kept three-valued (true: matched, false: not matched, an error:
//! the action is denied) and read in Cerbos' order: `all`/`any`/`none` stop at their first
//! decisive item, a derived role's condition comes before the rule's ([`Reading::Ordered`]).
//! The walk is written with `if(c, t, e)`, which evaluates `c` first and errors where `c`
//! errors, while `&&`/`||` would absorb errors:
//! - a scope: its rules in order; the first matched DENY decides DENY, a matched ALLOW marks the
//!   scope allowed but the remaining rules are still evaluated (their errors count); two
//!   expressions per scope say whether it decided and whether it allowed;
//! - a role: `if(decided_1, allowed_1, if(decided_2, allowed_2, … false))`;
//! - resource policies: `if(role_1, true, if(role_2, true, … false))`, in the request's role
//!   order (a role that errors denies even when a later role would allow; one that allows
//!   stops the walk);
//! - the principal policy before them: `if(decided, allowed, resource part)`.
//!
//! Nothing here is Cerbos' planner's shape: its plans ignore errors that happen on records.

use super::conditions::{ordered_if, Conditions, Reading};
use super::outcome::ActionPlan;
use crate::plan::normalise::normalise;
use crate::plan::simplify::drop_redundant_is_true;
use crate::plan::{Expr, Op, Plan, Value};
use crate::policy::env::PlanEnv;
use crate::policy::model::{Effect, ScopePermissions};
use crate::policy::request::{PlanRequest, PlannerOptions};
use crate::policy::rules::{Binding, Lookup, PolicyKind, RuleCondition, RuleTable};

/// Plans one action.
pub(super) fn plan_action(
    table: &RuleTable,
    options: &PlannerOptions,
    request: &PlanRequest<'_>,
    env: &PlanEnv,
    action: &str,
) -> ActionPlan {
    let walk = Walk {
        table,
        request,
        conditions: Conditions { options, env },
        lookup: Lookup::new(table, request, options),
        matched: std::cell::Cell::new(false),
        matched_scope: std::cell::RefCell::new(String::new()),
    };
    let root = walk.action(action);
    let plan = Plan::from_expr(normalise(drop_redundant_is_true(normalise(root))));
    ActionPlan {
        plan,
        matched: walk.matched.get(),
        scope: walk.matched_scope.take(),
    }
}

/// A scope's outcome as two expressions over the same evaluation: whether it decided (a DENY
/// matched, or an ALLOW in an `OVERRIDE_PARENT` scope), and whether it allowed.
struct ScopeOutcome {
    decided: Expr,
    allowed: Expr,
}

struct Walk<'a> {
    table: &'a RuleTable,
    request: &'a PlanRequest<'a>,
    conditions: Conditions<'a>,
    lookup: Lookup<'a>,
    matched: std::cell::Cell<bool>,
    matched_scope: std::cell::RefCell<String>,
}

impl Walk<'_> {
    fn action(&self, action: &str) -> Expr {
        let request = self.request;
        let principal_scopes = self.lookup.scopes(PolicyKind::Principal);
        let resource_scopes = self.lookup.scopes(PolicyKind::Resource);
        let Some(first_role) = request.principal.roles.first() else {
            return Expr::bool(false);
        };
        let resource = request
            .principal
            .roles
            .iter()
            .rev()
            .fold(Expr::bool(false), |later, role| {
                let outcomes = self.scopes(PolicyKind::Resource, &resource_scopes, action, role);
                ordered_if(allowed(outcomes), Expr::bool(true), later)
            });
        let principal =
            self.scopes(PolicyKind::Principal, &principal_scopes, action, first_role);
        if principal.is_empty() {
            return resource;
        }
        let decided = principal
            .iter()
            .rev()
            .fold(Expr::bool(false), |later, s| {
                ordered_if(s.decided.clone(), Expr::bool(true), later)
            });
        ordered_if(decided, allowed(principal), resource)
    }

    /// The outcome of each scope of the chain, for one role.
    fn scopes(
        &self,
        kind: PolicyKind,
        scopes: &[String],
        action: &str,
        role: &str,
    ) -> Vec<ScopeOutcome> {
        let roles = self.lookup.role_with_parents(role);
        let mut out = Vec::with_capacity(scopes.len());
        for scope in scopes {
            let bindings = self.lookup.bindings(kind, scope, action, &roles);
            let overrides = self.table.permissions(scope) == ScopePermissions::OverrideParent;
            if !bindings.is_empty() {
                self.matched.set(true);
                let mut matched_scope = self.matched_scope.borrow_mut();
                if overrides && matched_scope.is_empty() {
                    *matched_scope = scope.clone();
                }
            }
            let derived = match kind {
                PolicyKind::Resource => self.derived_list(scope),
                PolicyKind::Principal => Expr::Value(Value::list(Vec::new())),
            };
            let values: Vec<(Effect, Expr)> = bindings
                .iter()
                .map(|b| (b.effect, self.value(b, &derived)))
                .collect();
            out.push(ScopeOutcome {
                decided: scope_outcome(&values, overrides, true),
                allowed: scope_outcome(&values, overrides, false),
            });
        }
        out
    }

    /// A rule's three-valued value: matched, not matched, or an error.
    fn value(&self, b: &Binding<'_>, derived: &Expr) -> Expr {
        let node = |c, defs| self.conditions.node(c, defs, derived, Reading::Ordered);
        let rule = match b.condition {
            RuleCondition::Always => Expr::bool(true),
            RuleCondition::When(c) => node(Some(c), b.definitions),
            RuleCondition::Unless(c) => {
                ordered_if(node(Some(c), b.definitions), Expr::bool(false), Expr::bool(true))
            }
        };
        match b.derived {
            None => rule,
            Some(dr) => ordered_if(
                node(dr.condition.as_ref(), &dr.definitions),
                rule,
                Expr::bool(false),
            ),
        }
    }

    /// `runtime.effectiveDerivedRoles` for a resource scope; a derived role whose condition
    /// errors makes reading the list an error.
    fn derived_list(&self, scope: &str) -> Expr {
        let empty = Expr::Value(Value::list(Vec::new()));
        let mut items = Vec::new();
        for dr in self.lookup.derived_roles(scope) {
            let name = Expr::Value(Value::list(vec![Value::string(&dr.name)]));
            let cond = self.conditions.node(
                dr.condition.as_ref(),
                &dr.definitions,
                &empty,
                Reading::Ordered,
            );
            if cond.is_error() {
                return Expr::error();
            }
            items.push(match cond.as_bool() {
                Some(true) => name,
                Some(false) => continue,
                None => Expr::Call(Op::If, vec![cond, name, empty.clone()]),
            });
        }
        items
            .into_iter()
            .rev()
            .reduce(|acc, item| Expr::Call(Op::Add, vec![item, acc]))
            .unwrap_or(empty)
    }
}

/// A role's outcome over its scopes: the first scope that decides says whether it allowed.
fn allowed(scopes: Vec<ScopeOutcome>) -> Expr {
    scopes
        .into_iter()
        .rev()
        .fold(Expr::bool(false), |later, s| {
            ordered_if(s.decided, s.allowed, later)
        })
}

/// One scope's rules evaluated in order, as "did it decide" (`decided`) or "did it allow".
/// The state after a matched ALLOW is carried as a second continuation, so the expression
/// stays quadratic in the number of ALLOWs rather than exponential.
fn scope_outcome(values: &[(Effect, Expr)], overrides: bool, decided: bool) -> Expr {
    // After the last rule: decided and allowed alike iff some ALLOW matched (and it counts).
    let mut without_allow = Expr::bool(false);
    let mut with_allow = Expr::bool(overrides);
    for (effect, v) in values.iter().rev() {
        match effect {
            Effect::Deny => {
                let on_deny = Expr::bool(decided);
                without_allow = ordered_if(v.clone(), on_deny.clone(), without_allow);
                with_allow = ordered_if(v.clone(), on_deny, with_allow);
            }
            Effect::Allow => {
                without_allow = ordered_if(v.clone(), with_allow.clone(), without_allow);
                with_allow = evaluated_then(v.clone(), with_allow);
            }
        }
    }
    without_allow
}

/// `v` is evaluated for its error only, then `next`: `if(v || !v, next, false)`.
fn evaluated_then(v: Expr, next: Expr) -> Expr {
    if v.is_error() {
        return v;
    }
    if v.never_errors() || v.as_bool().is_some() {
        return next;
    }
    let defined = Expr::Call(Op::Or, vec![v.clone(), Expr::negate(v)]);
    ordered_if(defined, next, Expr::bool(false))
}
