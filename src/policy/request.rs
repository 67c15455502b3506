//! What every check and plan is asked: the engine's settings ([`PlannerOptions`]) and one
//! question ([`PlanRequest`] about a [`Principal`]). Shared by the check
//! ([`crate::policy::check`]) and the planner ([`crate::policy::planner`]), which re-exports
//! them.

use super::evaluation::Evaluation;
use crate::plan::Value;
use chrono::{DateTime, FixedOffset};
use std::collections::BTreeMap;

/// Engine settings that hold for every request.
#[derive(Clone, Debug)]
pub struct PlannerOptions {
    pub globals: BTreeMap<String, Value>,
    pub default_version: String,
    /// The scope policies are looked up in when a request names none (Cerbos'
    /// `engine.defaultScope`, a test's `defaultScope`). It changes where policies are found,
    /// not what conditions see: `R.scope` and `P.scope` stay as the request gave them, as in
    /// Cerbos.
    pub default_scope: String,
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
            default_scope: String::new(),
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

/// `s`, or the default scope when `s` is empty: the scope policies are looked up in.
pub fn scope_or(s: &str, options: &PlannerOptions) -> String {
    if s.is_empty() {
        options.default_scope.clone()
    } else {
        s.to_string()
    }
}

/// `v`, or the default policy version when `v` is empty.
pub fn version_or(v: &str, options: &PlannerOptions) -> String {
    if v.is_empty() {
        options.default_version.clone()
    } else {
        v.to_string()
    }
}
