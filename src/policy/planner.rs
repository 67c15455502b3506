//! The query planner: Cerbos `PlanResources` semantics over a [`PolicySet`].
//!
//! For each action, rules are gathered per policy type (resource policies, then principal
//! policies), per principal role and per scope (most specific first), their conditions
//! partially evaluated with the resource unknown, and the pieces combined the way Cerbos
//! combines them: DENY beats ALLOW within a role, an ALLOW from any role wins across roles,
//! principal policies override resource policies, role policies narrow their roles.

use super::model::{
    Condition, Definitions, DerivedRole, Effect, PolicySet, ResourcePolicy, ScopePermissions,
};
use crate::plan::eval::{walk, Env, Evaluator, Partial, Polarity, Resolved};
use crate::plan::expr::split_first_segment;
use crate::plan::functions::CallContext;
use crate::plan::normalise::normalise;
use crate::plan::value::MapKey;
use crate::plan::{EvalError, Expr, Op, Plan, Value};
use chrono::{DateTime, FixedOffset};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// How a condition that errors at evaluation time is treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ErrorSemantics {
    /// Cerbos ≥ 0.55 and vecgate's default: an erroring ALLOW does not match, an erroring
    /// DENY applies.
    #[default]
    FailClosed,
    /// Cerbos ≤ 0.54 (the planner suite's harness): an erroring condition never matches.
    NeverMatch,
}

/// Engine settings that hold for every request.
#[derive(Clone, Debug)]
pub struct PlannerOptions {
    pub globals: BTreeMap<String, Value>,
    pub default_version: String,
    pub lenient_scope_search: bool,
    pub error_semantics: ErrorSemantics,
    /// Any evaluation error denies the affected action (Cerbos' `strictEvaluation`).
    pub strict_evaluation: bool,
    /// Unroll `exists`/`all` over known collections only up to this size (Cerbos: 10).
    /// `None` unrolls every known collection, which keeps plans translatable.
    pub unroll_limit: Option<usize>,
}

impl Default for PlannerOptions {
    fn default() -> Self {
        PlannerOptions {
            globals: BTreeMap::new(),
            default_version: "default".into(),
            lenient_scope_search: false,
            error_semantics: ErrorSemantics::FailClosed,
            strict_evaluation: false,
            unroll_limit: None,
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
    set: Arc<PolicySet>,
    options: PlannerOptions,
    resource_scopes: BTreeSet<String>,
    principal_scopes: BTreeSet<String>,
    scope_permissions: BTreeMap<String, ScopePermissions>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum PolicyType {
    Resource,
    Principal,
}

/// A rule matched for one (scope, action, role set), ready to evaluate.
struct MatchedRule<'p> {
    effect: Effect,
    condition: Option<&'p Condition>,
    definitions: &'p Definitions,
    /// The derived role this rule applies through, if any.
    derived: Option<&'p DerivedRole>,
    from_role_policy: bool,
    /// A role-policy restriction: deny when this condition does not hold.
    negate_condition: bool,
}

impl Planner {
    pub fn new(set: Arc<PolicySet>, options: PlannerOptions) -> Planner {
        let mut resource_scopes = BTreeSet::new();
        let mut principal_scopes = BTreeSet::new();
        let mut scope_permissions = BTreeMap::new();
        for p in &set.resource_policies {
            resource_scopes.insert(p.scope.clone());
            scope_permissions.insert(p.scope.clone(), p.scope_permissions);
        }
        for p in &set.role_policies {
            resource_scopes.insert(p.scope.clone());
        }
        for p in &set.principal_policies {
            principal_scopes.insert(p.scope.clone());
            scope_permissions
                .entry(p.scope.clone())
                .or_insert(p.scope_permissions);
        }
        Planner {
            set,
            options,
            resource_scopes,
            principal_scopes,
            scope_permissions,
        }
    }

    pub fn options(&self) -> &PlannerOptions {
        &self.options
    }

    pub fn policy_set(&self) -> &PolicySet {
        &self.set
    }

    /// Plans `request.actions` (the AND of the per-action plans).
    pub fn plan(&self, request: &PlanRequest<'_>) -> PlanOutput {
        let principal_version = version_or(&request.principal.policy_version, &self.options);
        let resource_version = version_or(request.resource_version, &self.options);
        let principal_scopes = self.scope_chain(
            &self.principal_scopes,
            &request.principal.scope,
        );
        let resource_scopes = self.scope_chain(&self.resource_scopes, request.resource_scope);
        let mut matched_scopes = BTreeMap::new();
        if principal_scopes.is_empty() && resource_scopes.is_empty() {
            return PlanOutput {
                plan: Plan::AlwaysDenied,
                no_match: true,
                matched_scopes,
            };
        }
        let env = PlanEnv::new(request, &self.options);
        let mut ctx = Context {
            planner: self,
            request,
            env: &env,
            principal_version,
            resource_version,
            derived_lists: BTreeMap::new(),
        };
        let all_roles = self.roles_with_parents(request.resource_scope, &request.principal.roles);
        ctx.derived_lists = resource_scopes
            .iter()
            .map(|scope| (scope.clone(), ctx.derived_roles_list(scope, &all_roles)))
            .collect();
        let mut plans = Vec::with_capacity(request.actions.len());
        let mut policy_match = false;
        for action in request.actions {
            let (plan, matched, scope) =
                ctx.plan_action(action, &principal_scopes, &resource_scopes);
            policy_match |= matched;
            matched_scopes.insert(action.clone(), scope);
            plans.push(plan);
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
        match self.plan(request).plan {
            Plan::AlwaysAllowed => true,
            Plan::AlwaysDenied => false,
            plan @ Plan::Conditional(_) => {
                let env = crate::plan::eval::RecordEnv::new(
                    request.resource_id.map(Value::string).unwrap_or(Value::Null),
                    request.resource_kind,
                    string_map(request.resource_attr),
                    CallContext { now: request.now },
                );
                crate::plan::eval::allows(&plan, &env)
            }
        }
    }

    /// The scopes to evaluate, most specific first: the requested scope (which must exist
    /// unless the search is lenient), then each existing ancestor, ending with `""`.
    fn scope_chain(&self, existing: &BTreeSet<String>, scope: &str) -> Vec<String> {
        let mut out = Vec::new();
        if existing.contains(scope) {
            out.push(scope.to_string());
        } else if !self.options.lenient_scope_search {
            return out;
        }
        let mut s = scope;
        while !s.is_empty() {
            s = match s.rfind('.') {
                Some(i) => &s[..i],
                None => "",
            };
            if existing.contains(s) {
                out.push(s.to_string());
            }
        }
        out
    }

    fn permissions(&self, scope: &str) -> ScopePermissions {
        self.scope_permissions
            .get(scope)
            .copied()
            .unwrap_or_default()
    }

    /// The role plus every role it inherits through role policies in `scope`.
    fn roles_with_parents(&self, scope: &str, roles: &[String]) -> Vec<String> {
        let mut out: Vec<String> = roles.to_vec();
        let mut queue: Vec<String> = roles.to_vec();
        while let Some(r) = queue.pop() {
            for rp in self
                .set
                .role_policies
                .iter()
                .filter(|rp| rp.scope == scope && rp.role == r)
            {
                for parent in &rp.parent_roles {
                    if !out.contains(parent) {
                        out.push(parent.clone());
                        queue.push(parent.clone());
                    }
                }
            }
        }
        out
    }
}

fn version_or(v: &str, options: &PlannerOptions) -> String {
    if v.is_empty() {
        options.default_version.clone()
    } else {
        v.to_string()
    }
}

struct Context<'a> {
    planner: &'a Planner,
    request: &'a PlanRequest<'a>,
    env: &'a PlanEnv,
    principal_version: String,
    resource_version: String,
    /// `runtime.effectiveDerivedRoles` per resource scope; it depends on neither the role
    /// being evaluated nor the action, so it is computed once per request.
    derived_lists: BTreeMap<String, Expr>,
}

/// The outcome of evaluating one condition into a plan node.
struct NodeResult {
    node: Expr,
    errored: bool,
}

impl<'a> Context<'a> {
    /// Plans one action. Returns the plan, whether any policy matched, and the matched scope.
    fn plan_action(
        &self,
        action: &str,
        principal_scopes: &[String],
        resource_scopes: &[String],
    ) -> (Plan, bool, String) {
        let principal = self.request.principal;
        let mut matched_scope = String::new();
        let mut root: Option<Expr> = None;
        let mut has_allow = false;
        let mut strict_error = false;

        let no_derived_roles = Expr::Value(Value::list(Vec::new()));
        'types: for pt in [PolicyType::Resource, PolicyType::Principal] {
            let mut type_allow: Option<Expr> = None;
            let mut type_deny: Option<Expr> = None;
            let scopes = match pt {
                PolicyType::Principal => principal_scopes,
                PolicyType::Resource => resource_scopes,
            };
            for (i, role) in principal.roles.iter().enumerate() {
                if i > 0 && pt == PolicyType::Principal {
                    break;
                }
                let mut role_allow: Option<Expr> = None;
                let mut role_deny: Option<Expr> = None;
                let mut role_deny_rp: Option<Expr> = None;
                let mut pending_allow = false;
                let mut consent: Option<Expr> = None;
                let mut child_override: Option<Expr> = None;
                let roles = self
                    .planner
                    .roles_with_parents(self.request.resource_scope, std::slice::from_ref(role));

                for scope in scopes {
                    if child_override.as_ref().and_then(Expr::as_bool) == Some(true) {
                        break;
                    }
                    let mut scope_allow: Option<Expr> = None;
                    let mut scope_deny: Option<Expr> = None;
                    let mut scope_deny_rp: Option<Expr> = None;
                    let derived_list = match pt {
                        PolicyType::Resource => self.derived_lists.get(scope),
                        PolicyType::Principal => None,
                    }
                    .unwrap_or(&no_derived_roles);
                    let rules = match pt {
                        PolicyType::Resource => self.resource_rules(scope, action, &roles),
                        PolicyType::Principal => self.principal_rules(scope, action),
                    };
                    for rule in rules {
                        let pol = self.rule_polarity(rule.effect, rule.negate_condition);
                        let mut result =
                            self.condition_node(rule.condition, rule.definitions, derived_list, pol);
                        if rule.negate_condition {
                            result.node = Expr::negate(result.node);
                        }
                        if let Some(dr) = rule.derived {
                            let dr_result = self.condition_node(
                                dr.condition.as_ref(),
                                &dr.definitions,
                                derived_list,
                                pol,
                            );
                            result.errored |= dr_result.errored;
                            result.node = if rule.condition.is_none() {
                                dr_result.node
                            } else {
                                Expr::Call(Op::And, vec![result.node, dr_result.node])
                            };
                        }
                        if result.errored && self.planner.options.strict_evaluation {
                            strict_error = true;
                            break 'types;
                        }
                        match rule.effect {
                            Effect::Allow => scope_allow = Some(add_node(scope_allow, result.node, Op::Or)),
                            Effect::Deny => {
                                if result.node.as_bool() == Some(false) {
                                    continue;
                                }
                                if rule.from_role_policy {
                                    scope_deny_rp = Some(add_node(scope_deny_rp, result.node, Op::Or));
                                } else {
                                    scope_deny = Some(add_node(scope_deny, result.node, Op::Or));
                                }
                            }
                        }
                    }
                    scope_deny = gate_by_child_override(child_override.as_ref(), scope_deny);
                    scope_deny_rp = gate_by_child_override(child_override.as_ref(), scope_deny_rp);
                    role_deny = add_opt(role_deny, scope_deny.clone(), Op::Or);
                    role_deny_rp = add_opt(role_deny_rp, scope_deny_rp.clone(), Op::Or);

                    let perms = self.planner.permissions(scope);
                    if let Some(sa) = &scope_allow {
                        if pending_allow {
                            // A REQUIRE_PARENTAL_CONSENT child waits for any ancestor's ALLOW.
                            consent = Some(add_node(consent, sa.clone(), Op::Or));
                        } else {
                            role_allow = Some(add_node(role_allow, sa.clone(), Op::Or));
                            if perms == ScopePermissions::RequireParentalConsentForAllows {
                                pending_allow = true;
                            }
                        }
                    }
                    if (scope_deny.is_some() || scope_deny_rp.is_some() || scope_allow.is_some())
                        && perms == ScopePermissions::OverrideParent
                        && matched_scope.is_empty()
                    {
                        matched_scope = scope.clone();
                    }
                    if let (Some(sa), ScopePermissions::OverrideParent) = (scope_allow, perms) {
                        child_override = Some(add_node(child_override, sa, Op::Or));
                    }
                }
                if pending_allow {
                    role_allow = match (role_allow, consent) {
                        (Some(child), Some(parents)) => Some(Expr::call_unique(Op::And, vec![child, parents])),
                        _ => None,
                    };
                }
                let const_deny = role_deny.as_ref().and_then(Expr::as_bool) == Some(true)
                    || role_deny_rp.as_ref().and_then(Expr::as_bool) == Some(true);
                if const_deny {
                    role_allow = Some(Expr::bool(false));
                    role_deny = None;
                    role_deny_rp = None;
                } else if role_deny.is_none()
                    && role_deny_rp.is_none()
                    && role_allow.as_ref().and_then(Expr::as_bool) == Some(true)
                {
                    type_allow = role_allow;
                    type_deny = None;
                    break;
                }
                if let Some(rdp) = &role_deny_rp {
                    role_allow = role_allow.map(|ra| Expr::call_unique(Op::And, vec![ra, Expr::negate(rdp.clone())]));
                }
                if pt == PolicyType::Resource
                    && self.planner.options.error_semantics == ErrorSemantics::FailClosed
                {
                    // Check semantics, exactly: a role's DENY vetoes that role's ALLOW only;
                    // an ALLOW from another role still counts. (Cerbos' planner applies a
                    // conditional DENY across all roles, which check does not.)
                    if let Some(d) = role_deny.take() {
                        role_allow = role_allow.map(|ra| Expr::call_unique(Op::And, vec![Expr::negate(d), ra]));
                    }
                }
                type_allow = add_opt(type_allow, role_allow, Op::Or);
                type_deny = add_opt(type_deny, role_deny, Op::Or);
            }
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

        if strict_error {
            return (Plan::AlwaysDenied, true, matched_scope);
        }
        match root {
            None => (Plan::AlwaysDenied, false, matched_scope),
            Some(_) if !has_allow => (Plan::AlwaysDenied, true, matched_scope),
            Some(r) => (Plan::from_expr(normalise(r)), true, matched_scope),
        }
    }

    fn rule_polarity(&self, effect: Effect, negated: bool) -> Polarity {
        let deny_like = effect == Effect::Deny && !negated;
        match (deny_like, self.planner.options.error_semantics) {
            (true, ErrorSemantics::FailClosed) => Polarity::Negative,
            _ => Polarity::Positive,
        }
    }

    /// Resource-policy rules for the scope, action and roles, including role-policy
    /// restrictions as synthetic DENY rules.
    fn resource_rules(&self, scope: &str, action: &str, roles: &[String]) -> Vec<MatchedRule<'a>> {
        let set = &self.planner.set;
        let kind = self.request.resource_kind;
        let mut out = Vec::new();
        for policy in set.resource_policies.iter().filter(|p| {
            p.scope == scope && p.version == self.resource_version && glob_match(&p.resource, kind)
        }) {
            for rule in policy.rules.iter().filter(|r| r.actions.iter().any(|a| action_match(a, action))) {
                if rule.roles.iter().any(|r| roles.iter().any(|role| role_match(r, role))) {
                    out.push(MatchedRule {
                        effect: rule.effect,
                        condition: rule.condition.as_ref(),
                        definitions: &policy.definitions,
                        derived: None,
                        from_role_policy: false,
                        negate_condition: false,
                    });
                }
                for dr_name in &rule.derived_roles {
                    if let Some(dr) = derived_role(policy, dr_name) {
                        if dr.parent_roles.iter().any(|p| roles.iter().any(|role| role_match(p, role))) {
                            out.push(MatchedRule {
                                effect: rule.effect,
                                condition: rule.condition.as_ref(),
                                definitions: &policy.definitions,
                                derived: Some(dr),
                                from_role_policy: false,
                                negate_condition: false,
                            });
                        }
                    }
                }
            }
        }
        // Role policies narrow the roles they define: an action a role policy does not list
        // is denied for that role; a conditional listing denies when its condition fails.
        for role in roles {
            let role_policies: Vec<_> = set
                .role_policies
                .iter()
                .filter(|rp| rp.scope == scope && &rp.role == role)
                .collect();
            if role_policies.is_empty() {
                continue;
            }
            let mut listed = Vec::new();
            for rp in &role_policies {
                for rule in rp.rules.iter().filter(|r| glob_match(&r.resource, kind)) {
                    if rule.allow_actions.iter().any(|a| action_match(a, action)) {
                        listed.push((rule, &rp.definitions));
                    }
                }
            }
            if listed.is_empty() {
                out.push(MatchedRule {
                    effect: Effect::Deny,
                    condition: None,
                    definitions: &role_policies[0].definitions,
                    derived: None,
                    from_role_policy: true,
                    negate_condition: false,
                });
            } else {
                for (rule, defs) in listed {
                    if rule.condition.is_some() {
                        out.push(MatchedRule {
                            effect: Effect::Deny,
                            condition: rule.condition.as_ref(),
                            definitions: defs,
                            derived: None,
                            from_role_policy: true,
                            negate_condition: true,
                        });
                    }
                }
            }
        }
        out
    }

    fn principal_rules(&self, scope: &str, action: &str) -> Vec<MatchedRule<'a>> {
        let set = &self.planner.set;
        let mut out = Vec::new();
        for policy in set.principal_policies.iter().filter(|p| {
            p.scope == scope
                && p.version == self.principal_version
                && p.principal == self.request.principal.id
        }) {
            for rule in policy
                .rules
                .iter()
                .filter(|r| glob_match(&r.resource, self.request.resource_kind))
            {
                for a in rule.actions.iter().filter(|a| action_match(&a.action, action)) {
                    out.push(MatchedRule {
                        effect: a.effect,
                        condition: a.condition.as_ref(),
                        definitions: &policy.definitions,
                        derived: None,
                        from_role_policy: false,
                        negate_condition: false,
                    });
                }
            }
        }
        out
    }

    /// `runtime.effectiveDerivedRoles` for this scope: `cond ? ["name"] : []` over the
    /// derived roles whose parents the principal holds, sorted by name, concatenated.
    fn derived_roles_list(&self, scope: &str, all_roles: &[String]) -> Expr {
        let kind = self.request.resource_kind;
        let Some(policy) = self.planner.set.resource_policies.iter().find(|p| {
            p.scope == scope && p.version == self.resource_version && glob_match(&p.resource, kind)
        }) else {
            return Expr::Value(Value::list(Vec::new()));
        };
        let mut roles: Vec<&DerivedRole> = policy
            .derived_roles
            .iter()
            .filter(|dr| dr.parent_roles.iter().any(|p| all_roles.iter().any(|r| role_match(p, r))))
            .collect();
        roles.sort_by(|a, b| a.name.cmp(&b.name));
        let empty = Expr::Value(Value::list(Vec::new()));
        let mut items = Vec::new();
        for dr in roles {
            let name = Expr::Value(Value::list(vec![Value::string(&dr.name)]));
            let node = self
                .condition_node(dr.condition.as_ref(), &dr.definitions, &empty, Polarity::Positive)
                .node;
            items.push(match normalise(node) {
                Expr::Value(Value::Bool(true)) => name,
                Expr::Value(Value::Bool(false)) => continue,
                cond => Expr::Call(Op::If, vec![cond, name, empty.clone()]),
            });
        }
        // Concatenated right-nested, as Cerbos builds it: a + (b + c).
        let list = items
            .into_iter()
            .rev()
            .reduce(|acc, item| Expr::Call(Op::Add, vec![item, acc]));
        list.unwrap_or(empty)
    }

    /// Evaluates a rule condition (`match` tree) into a plan node.
    fn condition_node(
        &self,
        condition: Option<&Condition>,
        defs: &Definitions,
        derived_list: &Expr,
        pol: Polarity,
    ) -> NodeResult {
        let Some(condition) = condition else {
            return NodeResult {
                node: Expr::bool(true),
                errored: false,
            };
        };
        let mut errored = false;
        let node = self.condition_tree(condition, defs, derived_list, pol, &mut errored);
        NodeResult { node, errored }
    }

    fn condition_tree(
        &self,
        condition: &Condition,
        defs: &Definitions,
        derived_list: &Expr,
        pol: Polarity,
        errored: &mut bool,
    ) -> Expr {
        match condition {
            Condition::Expr { expr, .. } => {
                let inlined = inline_definitions(expr, defs, derived_list, &mut Vec::new());
                let mut ev = Evaluator::new(self.env);
                ev.unroll_limit = self.planner.options.unroll_limit;
                ev.cerbos_compat =
                    self.planner.options.error_semantics == ErrorSemantics::NeverMatch;
                let out = ev.eval(&inlined, pol);
                *errored |= ev.folded_errors > 0;
                match out {
                    Partial::Known(Value::Bool(b)) => Expr::bool(b),
                    Partial::Residual(r) => r,
                    Partial::Known(_) | Partial::Error(_) => {
                        *errored = true;
                        Expr::bool(pol == Polarity::Negative)
                    }
                }
            }
            Condition::All(items) | Condition::Any(items) => {
                let is_any = matches!(condition, Condition::Any(_));
                let mut nodes = Vec::new();
                for c in items {
                    let n = self.condition_tree(c, defs, derived_list, pol, errored);
                    match n.as_bool() {
                        Some(b) if b == is_any => return Expr::bool(is_any),
                        Some(_) => {}
                        None => nodes.push(n),
                    }
                }
                match nodes.len() {
                    0 => Expr::bool(!is_any),
                    1 => nodes.remove(0),
                    _ => Expr::Call(if is_any { Op::Or } else { Op::And }, nodes),
                }
            }
            Condition::None(items) => {
                let mut nodes = Vec::new();
                for c in items {
                    let n = self.condition_tree(c, defs, derived_list, pol.flip(), errored);
                    match n.as_bool() {
                        Some(true) => return Expr::bool(false),
                        Some(false) => {}
                        None => nodes.push(Expr::negate(n)),
                    }
                }
                match nodes.len() {
                    0 => Expr::bool(true),
                    1 => nodes.remove(0),
                    _ => Expr::Call(Op::And, nodes),
                }
            }
        }
    }
}

fn derived_role<'p>(policy: &'p ResourcePolicy, name: &str) -> Option<&'p DerivedRole> {
    policy.derived_roles.iter().find(|d| d.name == name)
}

/// Replaces `variables.x`, `constants.x` and `runtime.effectiveDerivedRoles` with what they
/// stand for. Variables are inlined as expressions (Cerbos inlines them textually).
pub fn inline_definitions(
    e: &Expr,
    defs: &Definitions,
    derived_list: &Expr,
    visiting: &mut Vec<String>,
) -> Expr {
    match e {
        Expr::Value(_) => e.clone(),
        Expr::Variable(name) => {
            if let Some(rest) = name.strip_prefix("variables.") {
                let (var, path) = split_first_segment(rest);
                if let Some(def) = defs.variables.get(var) {
                    if visiting.iter().any(|v| v == var) {
                        return e.clone();
                    }
                    visiting.push(var.to_string());
                    let inlined = inline_definitions(def, defs, derived_list, visiting);
                    visiting.pop();
                    return select_path(inlined, path);
                }
                e.clone()
            } else if let Some(rest) = name.strip_prefix("constants.") {
                let (c, path) = split_first_segment(rest);
                match defs.constants.get(c) {
                    Some(v) => select_path(Expr::Value(v.clone()), path),
                    None => e.clone(),
                }
            } else if let Some(path) = name.strip_prefix("runtime.effectiveDerivedRoles") {
                select_path(derived_list.clone(), path.trim_start_matches('.'))
            } else {
                e.clone()
            }
        }
        Expr::Call(op, args) => Expr::Call(
            op.clone(),
            args.iter()
                .map(|a| inline_definitions(a, defs, derived_list, visiting))
                .collect(),
        ),
    }
}

/// `base.path` as an expression: dotted names concatenate, others get `get-field`s.
fn select_path(base: Expr, path: &str) -> Expr {
    if path.is_empty() {
        return base;
    }
    match base {
        Expr::Variable(v) => Expr::Variable(format!("{v}.{path}")),
        Expr::Value(v) => match walk(&v, path) {
            Resolved::Known(inner) => Expr::Value(inner),
            _ => path.split('.').fold(Expr::Value(v), |acc, f| {
                Expr::Call(Op::GetField, vec![acc, Expr::var(f)])
            }),
        },
        other => path.split('.').fold(other, |acc, f| {
            Expr::Call(Op::GetField, vec![acc, Expr::var(f)])
        }),
    }
}

fn add_node(curr: Option<Expr>, next: Expr, op: Op) -> Expr {
    match curr {
        None => next,
        Some(c) => Expr::call_unique(op, vec![c, next]),
    }
}

fn add_opt(curr: Option<Expr>, next: Option<Expr>, op: Op) -> Option<Expr> {
    match next {
        None => curr,
        Some(n) => Some(add_node(curr, n, op)),
    }
}

fn gate_by_child_override(child_override: Option<&Expr>, deny: Option<Expr>) -> Option<Expr> {
    match (deny, child_override) {
        (Some(d), Some(c)) => Some(Expr::call_unique(Op::And, vec![d, Expr::negate(c.clone())])),
        (d, _) => d,
    }
}

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

/// Cerbos action/resource/role globs: `*` matches any run of characters within a
/// `:`-separated segment; a lone `*` matches everything.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    if pattern == "*" || pattern == text {
        return true;
    }
    if !pattern.contains('*') {
        return false;
    }
    let p: Vec<&str> = pattern.split(':').collect();
    let t: Vec<&str> = text.split(':').collect();
    if p.len() != t.len() {
        return false;
    }
    p.iter().zip(t.iter()).all(|(ps, ts)| segment_match(ps, ts))
}

fn segment_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(pos) => rest = &rest[pos + part.len()..],
                None => return false,
            }
        }
    }
    true
}

fn action_match(pattern: &str, action: &str) -> bool {
    glob_match(pattern, action)
}

fn role_match(pattern: &str, role: &str) -> bool {
    glob_match(pattern, role)
}

/// What a planning request can see: the principal, the known part of the resource, the JWT
/// claims, globals, and the clock.
pub struct PlanEnv {
    principal: Value,
    resource_known: Value,
    resource_attr: BTreeMap<String, Value>,
    aux: Value,
    globals: Value,
    resource_id: Option<Value>,
    attr_complete: bool,
    ctx: CallContext,
}

impl PlanEnv {
    pub fn new(request: &PlanRequest<'_>, options: &PlannerOptions) -> PlanEnv {
        let p = request.principal;
        let mut pm = BTreeMap::new();
        pm.insert(MapKey::string("id"), Value::string(&p.id));
        pm.insert(
            MapKey::string("roles"),
            Value::list(p.roles.iter().map(|r| Value::string(r)).collect()),
        );
        pm.insert(MapKey::string("attr"), string_map(&p.attr));
        pm.insert(MapKey::string("scope"), Value::string(&p.scope));
        pm.insert(
            MapKey::string("policyVersion"),
            Value::string(&version_or(&p.policy_version, options)),
        );
        let mut rm = BTreeMap::new();
        rm.insert(MapKey::string("kind"), Value::string(request.resource_kind));
        rm.insert(MapKey::string("scope"), Value::string(request.resource_scope));
        rm.insert(
            MapKey::string("policyVersion"),
            Value::string(&version_or(request.resource_version, options)),
        );
        let mut aux = BTreeMap::new();
        aux.insert(MapKey::string("jwt"), string_map(request.jwt));
        PlanEnv {
            principal: Value::map(pm),
            resource_known: Value::map(rm),
            resource_attr: request.resource_attr.clone(),
            aux: Value::map(aux),
            globals: string_map(&options.globals),
            resource_id: request.resource_id.map(Value::string),
            attr_complete: request.attr_complete,
            ctx: CallContext { now: request.now },
        }
    }
}

fn string_map(m: &BTreeMap<String, Value>) -> Value {
    Value::map(m.iter().map(|(k, v)| (MapKey::string(k), v.clone())).collect())
}

impl Env for PlanEnv {
    fn resolve(&self, name: &str) -> Resolved {
        let (root, rest) = split_first_segment(name);
        match root {
            "request" => {
                let (second, rest2) = split_first_segment(rest);
                match second {
                    "principal" => walk(&self.principal, rest2),
                    "resource" => self.resolve_resource(rest2),
                    "auxData" => walk(&self.aux, rest2),
                    _ => Resolved::Error(EvalError::NoSuchVariable(name.to_string())),
                }
            }
            "globals" => walk(&self.globals, rest),
            _ => Resolved::Error(EvalError::NoSuchVariable(name.to_string())),
        }
    }

    fn call_context(&self) -> &CallContext {
        &self.ctx
    }
}

impl PlanEnv {
    fn resolve_resource(&self, path: &str) -> Resolved {
        let (field, rest) = split_first_segment(path);
        match field {
            "kind" | "scope" | "policyVersion" => walk(&self.resource_known, path),
            "id" => match &self.resource_id {
                Some(id) => walk(id, rest),
                None => Resolved::Unknown,
            },
            "attr" if rest.is_empty() && self.attr_complete => {
                Resolved::Known(string_map(&self.resource_attr))
            }
            "attr" if !rest.is_empty() => {
                let (attr, deeper) = split_first_segment(rest);
                match self.resource_attr.get(attr) {
                    Some(v) => walk(v, deeper),
                    None if self.attr_complete => {
                        Resolved::Error(EvalError::NoSuchKey(attr.to_string()))
                    }
                    None => Resolved::Unknown,
                }
            }
            "" if self.attr_complete && self.resource_id.is_some() => {
                let mut m = match &self.resource_known {
                    Value::Map(m) => (**m).clone(),
                    _ => BTreeMap::new(),
                };
                m.insert(MapKey::string("attr"), string_map(&self.resource_attr));
                if let Some(id) = &self.resource_id {
                    m.insert(MapKey::string("id"), id.clone());
                }
                Resolved::Known(Value::map(m))
            }
            _ => Resolved::Unknown,
        }
    }
}
