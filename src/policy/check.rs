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
//!
//! [`check_action_traced`] runs the same walk and also records each rule it evaluated, in
//! order, with what its derived role's and its own condition came to, and which rule decided
//! (`vecgate explain`); the decision it returns is the check's, by construction.

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
pub enum Tri {
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

/// One rule the check evaluated, as it read it.
#[derive(Clone, Debug)]
pub struct RuleEvaluation<'p> {
    pub kind: PolicyKind,
    /// The principal's role whose walk reached the rule (for principal policies, the first).
    pub role: String,
    pub scope: String,
    pub binding: Binding<'p>,
    /// `runtime.effectiveDerivedRoles` as the rule's conditions saw it.
    pub derived_list: Expr,
    /// What the derived role's condition came to, as the mode reads it (`None`: the rule
    /// has no derived role, or an error under `CerbosStrict` stopped before it).
    pub derived_outcome: Option<Tri>,
    /// What the rule's own condition came to, as the mode reads it (`Unless` already
    /// negated); `None`: not evaluated.
    pub rule_outcome: Option<Tri>,
    /// Whether the rule matched; `None` when an error under `CerbosStrict` ended the check
    /// here.
    pub matched: Option<bool>,
}

/// The check of one action with the rules it evaluated.
#[derive(Clone, Debug)]
pub struct CheckTrace<'p> {
    pub allowed: bool,
    /// Every rule evaluated, in the check's order.
    pub rules: Vec<RuleEvaluation<'p>>,
    /// The index in `rules` of the rule that decided; `None`: no rule matched (denied).
    pub decided_by: Option<usize>,
    /// An evaluation error ended the check (`CerbosStrict`): `decided_by` is that rule.
    pub strict_error: bool,
}

/// Checks `action` like [`check_actions`] and records how (see the module docs).
pub fn check_action_traced<'p>(
    table: &'p RuleTable,
    options: &'p PlannerOptions,
    request: &'p PlanRequest<'p>,
    action: &str,
) -> CheckTrace<'p> {
    let env = PlanEnv::new(request, options);
    let checker = Checker::new(table, options, request, &env, true);
    let outcome = checker.decide(action);
    let rules = checker.trace.map(|t| t.into_inner()).unwrap_or_default();
    match outcome {
        Ok((effect, decided_by)) => CheckTrace {
            allowed: effect == Effect3::Allow,
            rules,
            decided_by,
            strict_error: false,
        },
        Err(StrictError) => CheckTrace {
            allowed: false,
            decided_by: rules.len().checked_sub(1),
            rules,
            strict_error: true,
        },
    }
}

/// `runtime.effectiveDerivedRoles` as the check computes it for the resource policies of
/// `scope` (for reports of rules the check did not reach).
pub fn derived_role_list(table: &RuleTable, options: &PlannerOptions, request: &PlanRequest<'_>, scope: &str) -> Expr {
    let env = PlanEnv::new(request, options);
    Checker::new(table, options, request, &env, false).derived_list(scope)
}

/// Decides each action of `request` (`resource_id` and the complete `resource_attr` given,
/// `attr_complete` set) for the concrete resource: true where it is allowed.
pub fn check_actions(
    table: &RuleTable,
    options: &PlannerOptions,
    request: &PlanRequest<'_>,
) -> Vec<(String, bool)> {
    let env = PlanEnv::new(request, options);
    let checker = Checker::new(table, options, request, &env, false);
    request
        .actions
        .iter()
        .map(|a| (a.clone(), checker.action(a)))
        .collect()
}

struct Checker<'a, 'e> {
    table: &'a RuleTable,
    options: &'a PlannerOptions,
    request: &'a PlanRequest<'a>,
    env: &'e PlanEnv,
    lookup: Lookup<'a>,
    /// `runtime.effectiveDerivedRoles` per resource scope, computed when first needed.
    derived_lists: std::cell::RefCell<BTreeMap<String, Expr>>,
    /// The rules evaluated, when asked for ([`check_action_traced`]).
    trace: Option<std::cell::RefCell<Vec<RuleEvaluation<'a>>>>,
}

impl<'a, 'e> Checker<'a, 'e> {
    fn new(
        table: &'a RuleTable,
        options: &'a PlannerOptions,
        request: &'a PlanRequest<'a>,
        env: &'e PlanEnv,
        traced: bool,
    ) -> Self {
        Checker {
            table,
            options,
            request,
            env,
            lookup: Lookup::new(table, request, options),
            derived_lists: std::cell::RefCell::new(BTreeMap::new()),
            trace: traced.then(|| std::cell::RefCell::new(Vec::new())),
        }
    }

    fn action(&self, action: &str) -> bool {
        match self.decide(action) {
            Ok((effect, _)) => effect == Effect3::Allow,
            Err(StrictError) => false,
        }
    }

    /// The action's effect and the index of the traced rule that decided it.
    fn decide(&self, action: &str) -> Result<(Effect3, Option<usize>), StrictError> {
        let request = self.request;
        let principal_scopes = self.lookup.scopes(PolicyKind::Principal);
        let resource_scopes = self.lookup.scopes(PolicyKind::Resource);
        let mut effect = Effect3::NoMatch;
        let mut decided_by = None;
        for kind in [PolicyKind::Principal, PolicyKind::Resource] {
            let scopes = match kind {
                PolicyKind::Principal => &principal_scopes,
                PolicyKind::Resource => &resource_scopes,
            };
            effect = Effect3::NoMatch;
            decided_by = None;
            for (i, role) in request.principal.roles.iter().enumerate() {
                if i > 0 && kind == PolicyKind::Principal {
                    break;
                }
                let roles = self.lookup.role_with_parents(role);
                let (role_effect, by) = self.role(kind, scopes, action, &roles, role)?;
                if effect == Effect3::NoMatch {
                    effect = role_effect;
                    decided_by = by;
                }
                if role_effect == Effect3::Allow {
                    effect = Effect3::Allow;
                    decided_by = by;
                    break;
                }
            }
            if effect != Effect3::NoMatch {
                break;
            }
        }
        Ok((effect, decided_by))
    }

    /// One role's walk down the scope chain (`roles`: the role followed by its parents), and
    /// the index of the traced rule that decided it.
    fn role(
        &self,
        kind: PolicyKind,
        scopes: &[String],
        action: &str,
        roles: &[String],
        role: &str,
    ) -> Result<(Effect3, Option<usize>), StrictError> {
        let mut has_allow = false;
        let mut first_allow = None;
        for scope in scopes {
            let bindings = self.lookup.bindings(kind, scope, action, roles);
            let derived = match kind {
                PolicyKind::Resource => self.derived_list(scope),
                PolicyKind::Principal => Expr::Value(Value::list(Vec::new())),
            };
            for b in &bindings {
                if self.matches(b, &derived, kind, role, scope)? {
                    match b.effect {
                        Effect::Allow => {
                            has_allow = true;
                            first_allow = first_allow.or_else(|| self.last_traced());
                        }
                        Effect::Deny => return Ok((Effect3::Deny, self.last_traced())),
                    }
                }
            }
            if has_allow {
                match self.table.permissions(scope) {
                    ScopePermissions::RequireParentalConsentForAllows => {
                        has_allow = false;
                        first_allow = None;
                    }
                    ScopePermissions::OverrideParent => return Ok((Effect3::Allow, first_allow)),
                }
            }
        }
        Ok((Effect3::NoMatch, None))
    }

    /// The index of the last traced rule.
    fn last_traced(&self) -> Option<usize> {
        self.trace.as_ref().and_then(|t| t.borrow().len().checked_sub(1))
    }

    /// [`Checker::rule_matches`], recorded when tracing.
    fn matches(
        &self,
        b: &Binding<'a>,
        derived: &Expr,
        kind: PolicyKind,
        role: &str,
        scope: &str,
    ) -> Result<bool, StrictError> {
        let Some(trace) = &self.trace else {
            return self.rule_matches(b, derived, &mut None, &mut None);
        };
        let (mut derived_outcome, mut rule_outcome) = (None, None);
        let result = self.rule_matches(b, derived, &mut derived_outcome, &mut rule_outcome);
        trace.borrow_mut().push(RuleEvaluation {
            kind,
            role: role.to_string(),
            scope: scope.to_string(),
            binding: *b,
            derived_list: derived.clone(),
            derived_outcome,
            rule_outcome,
            matched: result.as_ref().ok().copied(),
        });
        result
    }

    /// Whether a rule matched (for a DENY under `FailClosed`: did not evaluate to false);
    /// what the derived role's and the rule's conditions came to is left in the two slots.
    fn rule_matches(
        &self,
        b: &Binding<'_>,
        derived: &Expr,
        derived_slot: &mut Option<Tri>,
        rule_slot: &mut Option<Tri>,
    ) -> Result<bool, StrictError> {
        let mode = self.options.evaluation;
        let role_active = match b.derived {
            None => Tri::True,
            Some(dr) => self.condition(dr.condition.as_ref(), &dr.definitions, derived)?,
        };
        if b.derived.is_some() {
            *derived_slot = Some(role_active);
        }
        if mode != Evaluation::FailClosed && role_active != Tri::True {
            // Cerbos skips the rule; under strict evaluation an error already returned.
            return Ok(false);
        }
        let rule = match b.condition {
            RuleCondition::Always => Tri::True,
            RuleCondition::When(c) => self.condition(Some(c), b.definitions, derived)?,
            RuleCondition::Unless(c) => not(self.condition(Some(c), b.definitions, derived)?),
        };
        *rule_slot = Some(rule);
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
pub fn and(a: Tri, b: Tri) -> Tri {
    match (a, b) {
        (Tri::False, _) | (_, Tri::False) => Tri::False,
        (Tri::Error, _) | (_, Tri::Error) => Tri::Error,
        _ => Tri::True,
    }
}

/// CEL's `||` on outcomes: true absorbs an error.
pub fn or(a: Tri, b: Tri) -> Tri {
    match (a, b) {
        (Tri::True, _) | (_, Tri::True) => Tri::True,
        (Tri::Error, _) | (_, Tri::Error) => Tri::Error,
        _ => Tri::False,
    }
}

/// CEL's `!` on outcomes.
pub fn not(a: Tri) -> Tri {
    match a {
        Tri::True => Tri::False,
        Tri::False => Tri::True,
        Tri::Error => Tri::Error,
    }
}
