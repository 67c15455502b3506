//! The rule table: which rules apply to one (policy kind, version, scope, action, roles), in
//! the order Cerbos' PDP evaluates them, and the scope chains it walks. The check and the
//! planner both read decisions from here, so they see the same rules in the same order.
//!
//! What Cerbos does, measured on the 0.55.0 PDP and read in its rule table:
//! - Principal policies are chosen by the principal id and the **resource's** policy version
//!   (the principal's `policyVersion` does not select them), in the principal's scope chain.
//! - Resource rules apply to a role when one of their roles matches the role or one of its
//!   parent roles (from role policies in the request's resource scope); a rule that names
//!   derived roles applies once per derived role whose parent roles match, with the derived
//!   role's condition evaluated first.
//! - In a scope whose `scopePermissions` is `REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS`, a
//!   conditional ALLOW becomes "DENY unless the condition holds"; an unconditional ALLOW there
//!   decides nothing (an ancestor scope must allow).
//! - A role defined by a role policy in the scope is narrowed: for an action the role policy
//!   does not list (or a resource it does not name) the role gets an unconditional DENY; for a
//!   listed action with a condition, a DENY unless that condition holds. These synthetic DENYs
//!   come before the resource policy's rules.
//! - Within a scope, rules are evaluated in file order (which matters only under
//!   `strictEvaluation`, where an error ends the evaluation).

use super::model::{
    Condition, Definitions, DerivedRole, Effect, PolicySet, ResourcePolicy, ScopePermissions,
};
use super::request::{scope_or, version_or, PlanRequest, PlannerOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The two kinds of policy that carry rules, in the order the check consults them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyKind {
    Principal,
    Resource,
}

/// When a rule's condition is met.
#[derive(Clone, Copy, Debug)]
pub enum RuleCondition<'p> {
    /// No condition: always.
    Always,
    When(&'p Condition),
    /// Cerbos' `none: [condition]`: when the condition is not met.
    Unless(&'p Condition),
}

/// One rule as it applies to a role in a scope.
#[derive(Clone, Copy, Debug)]
pub struct Binding<'p> {
    pub effect: Effect,
    pub condition: RuleCondition<'p>,
    /// The derived role the rule applies through; its condition is evaluated first.
    pub derived: Option<&'p DerivedRole>,
    /// Variables and constants of the policy the rule comes from.
    pub definitions: &'p Definitions,
    /// A synthetic DENY of a role policy (Cerbos' planner keeps these apart).
    pub from_role_policy: bool,
    /// The rule's name, where the policy gives one (reports only).
    pub rule_name: Option<&'p str>,
    /// The policy file the rule comes from, relative to the policy directory (reports only).
    pub file: &'p str,
}

/// A policy set indexed for rule lookups.
pub struct RuleTable {
    set: Arc<PolicySet>,
    resource_scopes: BTreeSet<String>,
    principal_scopes: BTreeSet<String>,
    permissions: BTreeMap<String, ScopePermissions>,
}

impl RuleTable {
    pub fn new(set: Arc<PolicySet>) -> RuleTable {
        let mut resource_scopes = BTreeSet::new();
        let mut principal_scopes = BTreeSet::new();
        let mut permissions = BTreeMap::new();
        for p in &set.resource_policies {
            resource_scopes.insert(p.scope.clone());
            permissions.insert(p.scope.clone(), p.scope_permissions);
        }
        for p in &set.role_policies {
            resource_scopes.insert(p.scope.clone());
        }
        for p in &set.principal_policies {
            principal_scopes.insert(p.scope.clone());
            permissions
                .entry(p.scope.clone())
                .or_insert(p.scope_permissions);
        }
        RuleTable {
            set,
            resource_scopes,
            principal_scopes,
            permissions,
        }
    }

    pub fn policy_set(&self) -> &PolicySet {
        &self.set
    }

    /// The scopes to evaluate, most specific first: the requested scope (which must hold a
    /// policy of the kind unless the search is lenient), then each ancestor that holds one,
    /// ending with `""`. Empty: no policy of the kind applies.
    pub fn scope_chain(&self, kind: PolicyKind, scope: &str, lenient: bool) -> Vec<String> {
        let existing = match kind {
            PolicyKind::Principal => &self.principal_scopes,
            PolicyKind::Resource => &self.resource_scopes,
        };
        let mut out = Vec::new();
        if existing.contains(scope) {
            out.push(scope.to_string());
        } else if !lenient {
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

    /// The scope's `scopePermissions` (`OverrideParent` where no policy sets one).
    pub fn permissions(&self, scope: &str) -> ScopePermissions {
        self.permissions.get(scope).copied().unwrap_or_default()
    }

    /// `role` followed by every role it inherits through role policies of `scope` (the
    /// request's resource scope), transitively, sorted.
    pub fn role_with_parents(&self, scope: &str, role: &str) -> Vec<String> {
        let mut parents = BTreeSet::new();
        let mut queue = vec![role.to_string()];
        let mut visited = BTreeSet::new();
        while let Some(r) = queue.pop() {
            if !visited.insert(r.clone()) {
                continue;
            }
            for rp in self
                .set
                .role_policies
                .iter()
                .filter(|rp| rp.scope == scope && rp.role == r)
            {
                for parent in &rp.parent_roles {
                    parents.insert(parent.clone());
                    queue.push(parent.clone());
                }
            }
        }
        parents.remove(role);
        let mut out = vec![role.to_string()];
        out.extend(parents);
        out
    }

    /// Every role of the principal with the parents of each (for derived-role activation).
    pub fn roles_with_parents(&self, scope: &str, roles: &[String]) -> Vec<String> {
        let mut out: Vec<String> = roles.to_vec();
        for r in roles {
            for p in self.role_with_parents(scope, r).into_iter().skip(1) {
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
        out
    }

    /// The resource policy of `kind` and `version` in `scope`, if any.
    pub fn resource_policy(&self, kind: &str, version: &str, scope: &str) -> Option<&ResourcePolicy> {
        self.set
            .resource_policies
            .iter()
            .find(|p| p.scope == scope && p.version == version && glob_match(&p.resource, kind))
    }

    /// The derived roles that may appear in `runtime.effectiveDerivedRoles` for this scope:
    /// those of the scope's resource policy whose parent roles meet `all_roles`, by name.
    pub fn derived_roles(
        &self,
        kind: &str,
        version: &str,
        scope: &str,
        all_roles: &[String],
    ) -> Vec<&DerivedRole> {
        let Some(policy) = self.resource_policy(kind, version, scope) else {
            return Vec::new();
        };
        let mut roles: Vec<&DerivedRole> = policy
            .derived_roles
            .iter()
            .filter(|dr| {
                dr.parent_roles
                    .iter()
                    .any(|p| all_roles.iter().any(|r| glob_match(p, r)))
            })
            .collect();
        roles.sort_by(|a, b| a.name.cmp(&b.name));
        roles
    }

    /// The principal policy rules of `principal` for `kind` and `action` in `scope`, in file
    /// order. `version` is the resource's policy version (see the module docs).
    pub fn principal_bindings(
        &self,
        principal: &str,
        kind: &str,
        version: &str,
        scope: &str,
        action: &str,
    ) -> Vec<Binding<'_>> {
        let rpc = self.permissions(scope) == ScopePermissions::RequireParentalConsentForAllows;
        let mut out = Vec::new();
        for policy in self.set.principal_policies.iter().filter(|p| {
            p.scope == scope && p.version == version && p.principal == principal
        }) {
            for rule in policy.rules.iter().filter(|r| glob_match(&r.resource, kind)) {
                for a in rule.actions.iter().filter(|a| glob_match(&a.action, action)) {
                    out.push(Binding {
                        rule_name: a.name.as_deref(),
                        file: &policy.file,
                        ..binding(a.effect, a.condition.as_ref(), None, &policy.definitions, rpc)
                    });
                }
            }
        }
        out
    }

    /// The resource policy rules (and role-policy restrictions) that apply to a role, given as
    /// the role followed by its parents, for `kind` and `action` in `scope`, in Cerbos' order.
    pub fn resource_bindings(
        &self,
        kind: &str,
        version: &str,
        scope: &str,
        action: &str,
        roles: &[String],
    ) -> Vec<Binding<'_>> {
        let mut out = self.role_policy_denies(kind, version, scope, action, roles);
        let Some(policy) = self.resource_policy(kind, version, scope) else {
            return out;
        };
        let rpc = policy.scope_permissions == ScopePermissions::RequireParentalConsentForAllows;
        let matches_role = |pattern: &str| roles.iter().any(|r| glob_match(pattern, r));
        for rule in policy
            .rules
            .iter()
            .filter(|r| r.actions.iter().any(|a| glob_match(a, action)))
        {
            let named = |b| named(b, rule.name.as_deref(), &policy.file);
            if rule.roles.iter().any(|r| matches_role(r)) {
                out.push(named(binding(
                    rule.effect,
                    rule.condition.as_ref(),
                    None,
                    &policy.definitions,
                    rpc,
                )));
            }
            let mut derived: Vec<&DerivedRole> = rule
                .derived_roles
                .iter()
                .filter_map(|name| policy.derived_roles.iter().find(|d| &d.name == name))
                .filter(|dr| dr.parent_roles.iter().any(|p| matches_role(p)))
                .collect();
            derived.sort_by(|a, b| a.name.cmp(&b.name));
            derived.dedup_by(|a, b| a.name == b.name);
            for dr in derived {
                out.push(named(binding(
                    rule.effect,
                    rule.condition.as_ref(),
                    Some(dr),
                    &policy.definitions,
                    rpc,
                )));
            }
        }
        out
    }

    /// Role policies narrow the roles they define: the synthetic DENYs for `action`.
    fn role_policy_denies(
        &self,
        kind: &str,
        version: &str,
        scope: &str,
        action: &str,
        roles: &[String],
    ) -> Vec<Binding<'_>> {
        let mut out = Vec::new();
        for role in roles {
            let policies: Vec<_> = self
                .set
                .role_policies
                .iter()
                .filter(|rp| rp.scope == scope && rp.version == version && &rp.role == role)
                .collect();
            let Some(first) = policies.first() else {
                continue;
            };
            let mut on_resource = false;
            let mut listed = Vec::new();
            for rp in &policies {
                for rule in rp.rules.iter().filter(|r| glob_match(&r.resource, kind)) {
                    on_resource = true;
                    if rule.allow_actions.iter().any(|a| glob_match(a, action)) {
                        listed.push((rule, &rp.definitions, &rp.file));
                    }
                }
            }
            if !on_resource || listed.is_empty() {
                out.push(Binding {
                    effect: Effect::Deny,
                    condition: RuleCondition::Always,
                    derived: None,
                    definitions: &first.definitions,
                    from_role_policy: true,
                    rule_name: None,
                    file: &first.file,
                });
                continue;
            }
            for (rule, definitions, file) in listed {
                if let Some(c) = &rule.condition {
                    out.push(Binding {
                        effect: Effect::Deny,
                        condition: RuleCondition::Unless(c),
                        derived: None,
                        definitions,
                        from_role_policy: true,
                        rule_name: rule.name.as_deref(),
                        file,
                    });
                }
            }
        }
        out
    }
}

/// `b` with the rule's name and file.
fn named<'p>(b: Binding<'p>, rule_name: Option<&'p str>, file: &'p str) -> Binding<'p> {
    Binding { rule_name, file, ..b }
}

/// A rule as a binding; in a scope requiring parental consent, a conditional ALLOW becomes a
/// DENY unless its condition holds.
fn binding<'p>(
    effect: Effect,
    condition: Option<&'p Condition>,
    derived: Option<&'p DerivedRole>,
    definitions: &'p Definitions,
    requires_parental_consent: bool,
) -> Binding<'p> {
    let (effect, condition) = match (effect, condition) {
        (Effect::Allow, Some(c)) if requires_parental_consent => {
            (Effect::Deny, RuleCondition::Unless(c))
        }
        (effect, Some(c)) => (effect, RuleCondition::When(c)),
        (effect, None) => (effect, RuleCondition::Always),
    };
    Binding {
        effect,
        condition,
        derived,
        definitions,
        from_role_policy: false,
        rule_name: None,
        file: "",
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

/// One request's questions to the rule table: the scopes to walk and the rules that apply,
/// for the request's principal and resource.
pub struct Lookup<'a> {
    table: &'a RuleTable,
    principal: &'a str,
    roles: &'a [String],
    kind: &'a str,
    /// The resource's policy version (the default version where the request names none).
    pub version: String,
    /// The scopes policies are looked up in: the request's, or the default scope.
    principal_scope: String,
    resource_scope: String,
    lenient: bool,
}

impl<'a> Lookup<'a> {
    pub fn new(table: &'a RuleTable, request: &PlanRequest<'a>, options: &PlannerOptions) -> Self {
        Lookup {
            table,
            principal: &request.principal.id,
            roles: &request.principal.roles,
            kind: request.resource_kind,
            version: version_or(request.resource_version, options),
            principal_scope: scope_or(&request.principal.scope, options),
            resource_scope: scope_or(request.resource_scope, options),
            lenient: options.lenient_scope_search,
        }
    }

    /// `role` followed by the roles it inherits through the role policies of the resource's
    /// (lookup) scope ([`RuleTable::role_with_parents`]).
    pub fn role_with_parents(&self, role: &str) -> Vec<String> {
        self.table.role_with_parents(&self.resource_scope, role)
    }

    /// The scopes of `kind` policies to evaluate, most specific first
    /// ([`RuleTable::scope_chain`]).
    pub fn scopes(&self, kind: PolicyKind) -> Vec<String> {
        let scope = match kind {
            PolicyKind::Principal => &self.principal_scope,
            PolicyKind::Resource => &self.resource_scope,
        };
        self.table.scope_chain(kind, scope, self.lenient)
    }

    /// The rules of `kind` policies that apply for `action` in `scope`: the principal's
    /// ([`RuleTable::principal_bindings`]), or those of `roles`, a role followed by its parents
    /// ([`RuleTable::resource_bindings`]).
    pub fn bindings(&self, kind: PolicyKind, scope: &str, action: &str, roles: &[String]) -> Vec<Binding<'a>> {
        match kind {
            PolicyKind::Principal => {
                self.table.principal_bindings(self.principal, self.kind, &self.version, scope, action)
            }
            PolicyKind::Resource => self.table.resource_bindings(self.kind, &self.version, scope, action, roles),
        }
    }

    /// The derived roles of the resource policy in `scope` whose parent roles the principal
    /// holds (its roles and the roles they inherit through role policies), by name
    /// ([`RuleTable::derived_roles`]).
    pub fn derived_roles(&self, scope: &str) -> Vec<&'a DerivedRole> {
        let all_roles = self.table.roles_with_parents(&self.resource_scope, self.roles);
        self.table.derived_roles(self.kind, &self.version, scope, &all_roles)
    }
}
