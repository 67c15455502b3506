//! The compiled policy model: what the loader produces and the evaluator reads. Imports are
//! resolved, CEL is compiled (aliases expanded), and every policy carries its own variables
//! and constants.

use crate::plan::{Expr, Value};
use std::collections::BTreeMap;

/// A whole, validated policy set: one immutable snapshot.
#[derive(Clone, Debug, Default)]
pub struct PolicySet {
    pub resource_policies: Vec<ResourcePolicy>,
    pub principal_policies: Vec<PrincipalPolicy>,
    pub role_policies: Vec<RolePolicy>,
    /// Number of policy files loaded (all kinds, including derived roles and exports).
    pub file_count: usize,
    /// Non-fatal findings (for example `schemas` being ignored).
    pub warnings: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ScopePermissions {
    #[default]
    OverrideParent,
    RequireParentalConsentForAllows,
}

/// A rule condition: `match.expr | all.of | any.of | none.of`, nested.
#[derive(Clone, Debug)]
pub enum Condition {
    /// A compiled CEL expression and its source text.
    Expr { expr: Expr, source: String },
    All(Vec<Condition>),
    Any(Vec<Condition>),
    None(Vec<Condition>),
}

/// A policy's variables (imported, local and deprecated top-level, merged) and constants.
#[derive(Clone, Debug, Default)]
pub struct Definitions {
    /// name → compiled expression (aliases expanded; may reference `variables.other`).
    pub variables: BTreeMap<String, Expr>,
    /// name → literal value.
    pub constants: BTreeMap<String, Value>,
    /// Variable names in dependency order: each uses only names earlier in the list.
    pub variable_order: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct ResourcePolicy {
    /// Source file, relative to the policy directory.
    pub file: String,
    pub resource: String,
    pub version: String,
    /// Dotted scope; `""` is the root scope.
    pub scope: String,
    pub scope_permissions: ScopePermissions,
    pub definitions: Definitions,
    /// Derived roles from the imported `derivedRoles` sets that this policy's rules reference,
    /// sorted by name. As in Cerbos, unreferenced ones are left out: they never activate and
    /// never appear in `runtime.effectiveDerivedRoles`.
    pub derived_roles: Vec<DerivedRole>,
    pub rules: Vec<ResourceRule>,
}

#[derive(Clone, Debug)]
pub struct ResourceRule {
    pub name: Option<String>,
    /// Action globs (`*`, `view:*`).
    pub actions: Vec<String>,
    pub effect: Effect,
    /// Role names; `*` matches any role.
    pub roles: Vec<String>,
    /// Names of derived roles (defined in `ResourcePolicy::derived_roles`).
    pub derived_roles: Vec<String>,
    pub condition: Option<Condition>,
}

#[derive(Clone, Debug)]
pub struct DerivedRole {
    pub name: String,
    /// Parent roles; `*` matches any role.
    pub parent_roles: Vec<String>,
    pub condition: Option<Condition>,
    /// Variables and constants of the derived-roles file this definition came from.
    pub definitions: Definitions,
}

#[derive(Clone, Debug)]
pub struct PrincipalPolicy {
    pub file: String,
    /// The principal id this policy applies to.
    pub principal: String,
    pub version: String,
    pub scope: String,
    pub scope_permissions: ScopePermissions,
    pub definitions: Definitions,
    pub rules: Vec<PrincipalRule>,
}

#[derive(Clone, Debug)]
pub struct PrincipalRule {
    /// Resource kind glob.
    pub resource: String,
    pub actions: Vec<PrincipalAction>,
}

#[derive(Clone, Debug)]
pub struct PrincipalAction {
    pub name: Option<String>,
    /// Action glob.
    pub action: String,
    pub effect: Effect,
    pub condition: Option<Condition>,
}

#[derive(Clone, Debug)]
pub struct RolePolicy {
    pub file: String,
    /// The role this policy defines.
    pub role: String,
    /// `default` when the file gives none.
    pub version: String,
    pub scope: String,
    /// Always `RequireParentalConsentForAllows`: Cerbos ignores this field for role policies,
    /// which only ever narrow what resource policies allow.
    pub scope_permissions: ScopePermissions,
    /// IdP roles or other role policies' roles this role inherits resource-policy rules from.
    pub parent_roles: Vec<String>,
    pub definitions: Definitions,
    pub rules: Vec<RoleRule>,
}

#[derive(Clone, Debug)]
pub struct RoleRule {
    pub name: Option<String>,
    /// Resource kind glob.
    pub resource: String,
    /// Action globs this role may perform on that resource.
    pub allow_actions: Vec<String>,
    pub condition: Option<Condition>,
}
