//! The check: a decision for one concrete resource, evaluated the way Cerbos' PDP evaluates
//! `CheckResources` (its `ruletable/check.go`), in each [`Evaluation`] mode. This is the
//! authority: a plan must allow exactly the records the check allows (the planner is tested
//! against this module, and this module against the real PDP).
//!
//! Per action: principal policies first, then resource policies; within a kind, each of the
//! principal's roles in the request's order (principal policies once), each scope of the chain
//! from the most specific, each rule in the rule table's order ([`super::rules`]). In a scope,
//! a matched DENY decides DENY for the role; otherwise a matched ALLOW decides ALLOW (in an
//! `OVERRIDE_PARENT` scope) or waits for an ancestor's (`REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS`).
//! The first role that is allowed allows the kind; a role's DENY does not stop the next role.
//! A principal policy's ALLOW or DENY is final; otherwise resource policies decide. Nothing
//! matched: DENY. Under `CerbosStrict` an evaluation error met on that path denies the action
//! at once; it is evaluated in Cerbos' order (`all`/`any`/`none` stop at the first decisive
//! item, a derived role's condition before the rule's), so errors Cerbos never reaches are
//! never met.

use super::definitions::inline_definitions;
use super::env::PlanEnv;
use super::evaluation::Evaluation;
use super::model::{Condition, Definitions, Effect, ScopePermissions};
use super::request::{PlanRequest, PlannerOptions};
use super::rules::{Binding, Lookup, PolicyKind, RuleCondition, RuleTable};
use crate::plan::eval::{Evaluator, Partial, Polarity};
use crate::plan::{Expr, Value};
use std::collections::BTreeMap;

/// A condition's outcome on a concrete resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tri {
    True,
    /// False, or a value that is not a boolean (Cerbos reads both as "not met").
    False,
    Error,
}

/// What a kind of policy (or one role) decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect3 {
    NoMatch,
    Allow,
    Deny,
}

/// An evaluation error under `CerbosStrict`: the action is denied.
struct StrictError;

/// Decides each action of `request` (`resource_id` and the complete `resource_attr` given,
/// `attr_complete` set) for the concrete resource: true where it is allowed.
pub fn check_actions(
    table: &RuleTable,
    options: &PlannerOptions,
    request: &PlanRequest<'_>,
) -> Vec<(String, bool)> {
    let env = PlanEnv::new(request, options);
    let checker = Checker {
        table,
        options,
        request,
        env: &env,
        lookup: Lookup::new(table, request, options),
        derived_lists: std::cell::RefCell::new(BTreeMap::new()),
    };
    request
        .actions
        .iter()
        .map(|a| (a.clone(), checker.action(a)))
        .collect()
}

struct Checker<'a> {
    table: &'a RuleTable,
    options: &'a PlannerOptions,
    request: &'a PlanRequest<'a>,
    env: &'a PlanEnv,
    lookup: Lookup<'a>,
    /// `runtime.effectiveDerivedRoles` per resource scope, computed when first needed.
    derived_lists: std::cell::RefCell<BTreeMap<String, Expr>>,
}

impl Checker<'_> {
    fn action(&self, action: &str) -> bool {
        match self.decide(action) {
            Ok(effect) => effect == Effect3::Allow,
            Err(StrictError) => false,
        }
    }

    fn decide(&self, action: &str) -> Result<Effect3, StrictError> {
        let request = self.request;
        let principal_scopes = self.lookup.scopes(PolicyKind::Principal);
        let resource_scopes = self.lookup.scopes(PolicyKind::Resource);
        let mut effect = Effect3::NoMatch;
        for kind in [PolicyKind::Principal, PolicyKind::Resource] {
            let scopes = match kind {
                PolicyKind::Principal => &principal_scopes,
                PolicyKind::Resource => &resource_scopes,
            };
            effect = Effect3::NoMatch;
            for (i, role) in request.principal.roles.iter().enumerate() {
                if i > 0 && kind == PolicyKind::Principal {
                    break;
                }
                let roles = self.table.role_with_parents(request.resource_scope, role);
                let role_effect = self.role(kind, scopes, action, &roles)?;
                if effect == Effect3::NoMatch {
                    effect = role_effect;
                }
                if role_effect == Effect3::Allow {
                    effect = Effect3::Allow;
                    break;
                }
            }
            if effect != Effect3::NoMatch {
                break;
            }
        }
        Ok(effect)
    }

    /// One role's walk down the scope chain.
    fn role(
        &self,
        kind: PolicyKind,
        scopes: &[String],
        action: &str,
        roles: &[String],
    ) -> Result<Effect3, StrictError> {
        let mut has_allow = false;
        for scope in scopes {
            let bindings = self.lookup.bindings(kind, scope, action, roles);
            let derived = match kind {
                PolicyKind::Resource => self.derived_list(scope),
                PolicyKind::Principal => Expr::Value(Value::list(Vec::new())),
            };
            for b in &bindings {
                if self.matches(b, &derived)? {
                    match b.effect {
                        Effect::Allow => has_allow = true,
                        Effect::Deny => return Ok(Effect3::Deny),
                    }
                }
            }
            if has_allow {
                match self.table.permissions(scope) {
                    ScopePermissions::RequireParentalConsentForAllows => has_allow = false,
                    ScopePermissions::OverrideParent => return Ok(Effect3::Allow),
                }
            }
        }
        Ok(Effect3::NoMatch)
    }

    /// Whether a rule matched (for a DENY under `FailClosed`: did not evaluate to false).
    fn matches(&self, b: &Binding<'_>, derived: &Expr) -> Result<bool, StrictError> {
        let mode = self.options.evaluation;
        let role_active = match b.derived {
            None => Tri::True,
            Some(dr) => self.condition(dr.condition.as_ref(), &dr.definitions, derived)?,
        };
        if mode != Evaluation::FailClosed && role_active != Tri::True {
            // Cerbos skips the rule; under strict evaluation an error already returned.
            return Ok(false);
        }
        let rule = match b.condition {
            RuleCondition::Always => Tri::True,
            RuleCondition::When(c) => self.condition(Some(c), b.definitions, derived)?,
            RuleCondition::Unless(c) => not(self.condition(Some(c), b.definitions, derived)?),
        };
        Ok(match mode {
            Evaluation::FailClosed => {
                let v = and(role_active, rule);
                match b.effect {
                    Effect::Allow => v == Tri::True,
                    Effect::Deny => v != Tri::False,
                }
            }
            Evaluation::Cerbos | Evaluation::CerbosStrict => rule == Tri::True,
        })
    }

    /// A `match` tree's outcome. Under `Cerbos` each expression that errors is false; under
    /// `CerbosStrict` an error is returned as soon as it is met, in Cerbos' order; under
    /// `FailClosed` the tree combines three-valued, as CEL's `&&`, `||` and `!`.
    fn condition(
        &self,
        condition: Option<&Condition>,
        defs: &Definitions,
        derived: &Expr,
    ) -> Result<Tri, StrictError> {
        let Some(condition) = condition else {
            return Ok(Tri::True);
        };
        let mode = self.options.evaluation;
        match condition {
            Condition::Expr { expr, .. } => {
                let outcome = self.expression(expr, defs, derived);
                match (mode, outcome) {
                    (Evaluation::CerbosStrict, Tri::Error) => Err(StrictError),
                    (Evaluation::Cerbos, Tri::Error) => Ok(Tri::False),
                    (_, outcome) => Ok(outcome),
                }
            }
            Condition::All(items) | Condition::Any(items) | Condition::None(items) => {
                let is_all = matches!(condition, Condition::All(_));
                // all: stop at the first false; any/none: stop at the first true.
                let decisive = if is_all { Tri::False } else { Tri::True };
                let mut acc = if is_all { Tri::True } else { Tri::False };
                for c in items {
                    let v = self.condition(Some(c), defs, derived)?;
                    if v == decisive && mode != Evaluation::FailClosed {
                        acc = v;
                        break;
                    }
                    acc = if is_all { and(acc, v) } else { or(acc, v) };
                }
                Ok(match condition {
                    Condition::None(_) => not(acc),
                    _ => acc,
                })
            }
        }
    }

    /// One CEL expression, fully evaluated.
    fn expression(&self, expr: &Expr, defs: &Definitions, derived: &Expr) -> Tri {
        let inlined = inline_definitions(expr, defs, derived, &mut Vec::new());
        let mut ev = Evaluator::new(self.env);
        match ev.eval(&inlined, Polarity::Neutral) {
            Partial::Known(Value::Bool(true)) => Tri::True,
            Partial::Known(_) => Tri::False,
            Partial::Error(_) | Partial::Residual(_) => Tri::Error,
        }
    }

    /// `runtime.effectiveDerivedRoles` for a scope: the derived roles whose condition is met,
    /// by name. When one errors: under `Cerbos` it is left out; otherwise reading the list is
    /// an error (Cerbos' strict evaluation fails any access to `runtime`).
    fn derived_list(&self, scope: &str) -> Expr {
        if let Some(e) = self.derived_lists.borrow().get(scope) {
            return e.clone();
        }
        let empty = Expr::Value(Value::list(Vec::new()));
        let mut names = Vec::new();
        let mut errored = false;
        for dr in self.lookup.derived_roles(scope) {
            // Evaluated in the action's mode, but an error (strict evaluation) is recorded,
            // not raised: it fails only the conditions that read the list.
            let outcome = self
                .condition(dr.condition.as_ref(), &dr.definitions, &empty)
                .unwrap_or(Tri::Error);
            match outcome {
                Tri::True => names.push(Value::string(&dr.name)),
                Tri::False => {}
                Tri::Error => errored = true,
            }
        }
        let list = if errored && self.options.evaluation != Evaluation::Cerbos {
            Expr::error()
        } else {
            Expr::Value(Value::list(names))
        };
        self.derived_lists
            .borrow_mut()
            .insert(scope.to_string(), list.clone());
        list
    }
}

/// CEL's `&&` on outcomes: false absorbs an error.
fn and(a: Tri, b: Tri) -> Tri {
    match (a, b) {
        (Tri::False, _) | (_, Tri::False) => Tri::False,
        (Tri::Error, _) | (_, Tri::Error) => Tri::Error,
        _ => Tri::True,
    }
}

/// CEL's `||` on outcomes: true absorbs an error.
fn or(a: Tri, b: Tri) -> Tri {
    match (a, b) {
        (Tri::True, _) | (_, Tri::True) => Tri::True,
        (Tri::Error, _) | (_, Tri::Error) => Tri::Error,
        _ => Tri::False,
    }
}

fn not(a: Tri) -> Tri {
    match a {
        Tri::True => Tri::False,
        Tri::False => Tri::True,
        Tri::Error => Tri::Error,
    }
}
