//! `vecgate who-can`: for one concrete resource and one action, the condition over the
//! principal (its roles, attributes, id and JWT claims) under which the action is allowed.
//! Partial evaluation with the roles reversed: the resource is known and the principal is
//! not ([`Planner::plan_for_unknown_principal`]).
//!
//! The rule table selects rules by role, so the answer is computed role by role: for every
//! role the policies name (rules, derived roles' parents, role policies and their parents),
//! and for "any other role" (a role no policy names, which only `*` rules reach). A principal
//! policy is chosen by principal id, so each principal id with a principal policy for the
//! resource kind gets its own answer, which replaces the general one for that principal.
//!
//! Invariants:
//! - Under `cerbos` and `fail_closed`, the check allows a principal exactly when one of its
//!   roles is allowed on its own (principal policies are role-independent and decide first),
//!   so the combined condition ([`WhoCan::condition`]: per role `"r" in P.roles && cond_r`,
//!   ORed) evaluated on a principal equals the check. Two cases break the per-role reading,
//!   and [`WhoCan::per_role_is_exact`] says so: `cerbos_strict` with several roles (an error
//!   met for an earlier role denies, so the roles' order matters), and conditions reading
//!   `runtime.effectiveDerivedRoles` (which depends on all the principal's roles), and role
//!   patterns other than `*` (a role no policy names may match one). [`WhoCan::allows`] then
//!   plans for the principal's exact roles and id, which is always exact.
//! - Tested by generated policy sets against the check in every mode
//!   (`tests/explain_who_can.rs`).

use super::model::PolicySet;
use super::planner::{PlanRequest, Planner, Principal};
use super::rules::glob_match;
use crate::plan::eval::allows;
use crate::plan::text::{abbreviated, readable};
use crate::plan::{Expr, Op, Plan, Value};
use crate::policy::env::PlanEnv;
use chrono::{DateTime, FixedOffset};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

/// The role name standing for "a role no policy names".
const OTHER_ROLE: &str = "\u{1}any other role";
/// The lambda variable of the "has another role" test in the combined condition.
const ROLE_VARIABLE: &str = "role";

/// The question: which principals may do `action` on this resource.
#[derive(Clone, Debug)]
pub struct WhoCanQuestion {
    pub kind: String,
    pub scope: String,
    /// The resource's policy version (`""`: the default).
    pub version: String,
    pub id: String,
    pub attr: BTreeMap<String, Value>,
    pub action: String,
    /// The scope of the principals asked about (principal policies are looked up there).
    pub principal_scope: String,
    pub now: DateTime<FixedOffset>,
}

impl WhoCanQuestion {
    /// The check of this question's action on its resource, for `principal`; `actions` is
    /// `[action]`, owned by the caller.
    fn request<'a>(
        &'a self,
        principal: &'a Principal,
        actions: &'a [String],
        jwt: &'a BTreeMap<String, Value>,
    ) -> PlanRequest<'a> {
        PlanRequest {
            principal,
            resource_kind: &self.kind,
            resource_scope: &self.scope,
            resource_version: &self.version,
            resource_attr: &self.attr,
            resource_id: Some(&self.id),
            attr_complete: true,
            actions,
            jwt,
            now: self.now,
        }
    }
}

/// What one role grants: the plan over the principal for a principal holding that role.
#[derive(Clone, Debug)]
pub struct RoleGrant {
    pub role: String,
    pub plan: Plan,
}

/// The answer for one set of principals: by role, and for any other role.
#[derive(Clone, Debug)]
pub struct Grants {
    pub roles: Vec<RoleGrant>,
    pub other_roles: Plan,
}

/// A principal policy's principal, with the answer that holds for that principal.
#[derive(Clone, Debug)]
pub struct PrincipalGrant {
    pub principal: String,
    /// The files of its principal policies naming the resource kind.
    pub files: Vec<String>,
    pub grants: Grants,
}

/// The answer to a [`WhoCanQuestion`].
#[derive(Clone, Debug)]
pub struct WhoCan {
    pub question: WhoCanQuestion,
    pub evaluation: super::evaluation::Evaluation,
    /// Every principal not listed in `principal_policies`.
    pub everyone: Grants,
    pub principal_policies: Vec<PrincipalGrant>,
    /// Role patterns other than `*` (`fin*`): roles matching them are not listed.
    pub role_patterns: Vec<String>,
    /// Some condition reads `runtime.effectiveDerivedRoles`.
    pub reads_derived_role_list: bool,
}

impl WhoCan {
    /// Computes the answer with `planner`'s policies and settings.
    pub fn compute(planner: &Planner, question: &WhoCanQuestion) -> WhoCan {
        let set = planner.policy_set();
        let (roles, role_patterns) = named_roles(set, &question.kind);
        let everyone = grants(planner, question, None, &roles);
        let principal_policies = principal_policy_files(set, &question.kind)
            .into_iter()
            .map(|(principal, files)| PrincipalGrant {
                grants: grants(planner, question, Some(&principal), &roles),
                principal,
                files,
            })
            .collect();
        WhoCan {
            question: question.clone(),
            evaluation: planner.options().evaluation,
            everyone,
            principal_policies,
            role_patterns,
            reads_derived_role_list: reads_derived_role_list(set),
        }
    }

    /// Whether [`WhoCan::condition`] and the per-role listing decide every principal exactly
    /// as the check (see the module docs).
    pub fn per_role_is_exact(&self) -> bool {
        self.evaluation != super::evaluation::Evaluation::CerbosStrict
            && !self.reads_derived_role_list
            && self.role_patterns.is_empty()
    }

    /// The whole answer as one condition over `request.principal`: per principal id with a
    /// principal policy its own answer, for everyone else the general one; each answer the
    /// OR over roles of `"r" in P.roles && cond_r`. Exact when [`WhoCan::per_role_is_exact`];
    /// under `cerbos_strict` it holds for principals with one role.
    pub fn condition(&self) -> Plan {
        let ids: Vec<Value> = self
            .principal_policies
            .iter()
            .map(|p| Value::string(&p.principal))
            .collect();
        let mut branches = Vec::new();
        for p in &self.principal_policies {
            let is_principal = Expr::Call(
                Op::Eq,
                vec![Expr::var("request.principal.id"), Expr::Value(Value::string(&p.principal))],
            );
            branches.push(and(vec![is_principal, grants_condition(&p.grants)]));
        }
        let everyone = grants_condition(&self.everyone);
        branches.push(if ids.is_empty() {
            everyone
        } else {
            let listed = Expr::Call(
                Op::In,
                vec![Expr::var("request.principal.id"), Expr::Value(Value::list(ids))],
            );
            and(vec![Expr::negate(listed), everyone])
        });
        Plan::from_expr(or(branches))
    }

    /// Whether [`WhoCan::condition`] decides `principal` exactly: always where the per-role
    /// reading is exact, and for a principal with at most one role under `cerbos_strict`.
    pub fn condition_decides(&self, principal: &Principal) -> bool {
        self.per_role_is_exact()
            || (principal.roles.len() <= 1 && !self.reads_derived_role_list && self.role_patterns.is_empty())
    }

    /// Whether `principal` may do the action: the combined condition evaluated on it where
    /// that is exact, otherwise a plan for its exact roles and id evaluated on it.
    pub fn allows(&self, planner: &Planner, principal: &Principal, jwt: &BTreeMap<String, Value>) -> bool {
        let actions = [self.question.action.clone()];
        let request = self.question.request(principal, &actions, jwt);
        let env = PlanEnv::new(&request, planner.options());
        let plan = if self.condition_decides(principal) {
            self.condition()
        } else {
            planner.plan_for_unknown_principal(&request, true).plan
        };
        allows(&plan, &env)
    }

    /// The answer for people.
    pub fn text(&self) -> String {
        let q = &self.question;
        let mut out = format!(
            "who can {} {} {:?} (policies.evaluation: {}):\n",
            q.action, q.kind, q.id, self.evaluation
        );
        out.push_str(&grants_text(&self.everyone, "  "));
        if !self.principal_policies.is_empty() {
            out.push_str(&format!(
                "principal policies naming {} (each replaces the answer above for its principal):\n",
                q.kind
            ));
            for p in &self.principal_policies {
                out.push_str(&format!("  principal {:?} ({}):\n", p.principal, p.files.join(", ")));
                out.push_str(&grants_text(&p.grants, "    "));
            }
        }
        for note in self.notes() {
            out.push_str(&format!("note: {note}\n"));
        }
        out
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.evaluation == super::evaluation::Evaluation::CerbosStrict {
            notes.push(
                "under cerbos_strict a principal with several roles is evaluated role by role in \
                 its roles' order, and an error met for an earlier role denies: the listing holds \
                 for principals with one role"
                    .to_string(),
            );
        }
        if self.reads_derived_role_list {
            notes.push(
                "a condition reads runtime.effectiveDerivedRoles, which depends on all of a \
                 principal's roles: the listing holds for principals with one role"
                    .to_string(),
            );
        }
        for p in &self.role_patterns {
            notes.push(format!("roles matching the pattern {p:?} are not listed one by one"));
        }
        notes
    }

    /// The answer as a stable JSON document: per role, Cerbos' `PlanResourcesFilter` over the
    /// principal, and the combined filter.
    pub fn to_json(&self) -> serde_json::Value {
        let q = &self.question;
        let combined = self.condition();
        json!({
            "action": q.action,
            "resource": {"kind": q.kind, "id": q.id, "scope": q.scope,
                "attr": q.attr.iter().map(|(k, v)| (k.clone(), v.to_json())).collect::<serde_json::Map<_, _>>()},
            "evaluation": self.evaluation.name(),
            "filter": combined.to_cerbos_json(),
            "filterText": plan_text(&combined),
            "roles": grants_json(&self.everyone),
            "principalPolicies": self.principal_policies.iter().map(|p| json!({
                "principalId": p.principal,
                "files": p.files,
                "roles": grants_json(&p.grants),
            })).collect::<Vec<_>>(),
            "perRoleExact": self.per_role_is_exact(),
            "notes": self.notes(),
        })
    }
}

/// Names as a person reads them: principal attributes bare, the rest abbreviated.
pub fn principal_names(name: &str) -> String {
    if let Some(attr) = name.strip_prefix("request.principal.attr.") {
        attr.to_string()
    } else if let Some(claim) = name.strip_prefix("request.auxData.jwt.") {
        format!("jwt.{claim}")
    } else {
        abbreviated(name)
    }
}

fn plan_text(plan: &Plan) -> String {
    match plan {
        Plan::AlwaysAllowed => "true".into(),
        Plan::AlwaysDenied => "false".into(),
        Plan::Conditional(e) => readable(e, &principal_names),
    }
}

fn grants_text(g: &Grants, indent: &str) -> String {
    if g.roles.iter().all(|r| r.plan == g.other_roles) {
        let line = match &g.other_roles {
            Plan::AlwaysDenied => "nobody".to_string(),
            Plan::AlwaysAllowed => "any role".to_string(),
            Plan::Conditional(e) => format!("any role with {}", readable(e, &principal_names)),
        };
        return format!("{indent}{line}\n");
    }
    let mut lines = Vec::new();
    for r in &g.roles {
        match &r.plan {
            Plan::AlwaysDenied => {}
            Plan::AlwaysAllowed => lines.push(format!("role {}", r.role)),
            Plan::Conditional(e) => lines.push(format!("role {} with {}", r.role, readable(e, &principal_names))),
        }
    }
    match &g.other_roles {
        Plan::AlwaysDenied => {}
        Plan::AlwaysAllowed => lines.push("any other role".into()),
        Plan::Conditional(e) => lines.push(format!("any other role with {}", readable(e, &principal_names))),
    }
    if lines.is_empty() {
        return format!("{indent}nobody\n");
    }
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        out.push_str(indent);
        if i > 0 {
            out.push_str("or ");
        }
        out.push_str(l);
        out.push('\n');
    }
    out
}

fn grants_json(g: &Grants) -> serde_json::Value {
    let mut roles: Vec<serde_json::Value> = g
        .roles
        .iter()
        .map(|r| json!({"role": r.role, "filter": r.plan.to_cerbos_json(), "filterText": plan_text(&r.plan)}))
        .collect();
    roles.push(json!({"role": "*", "otherRoles": true, "filter": g.other_roles.to_cerbos_json(),
        "filterText": plan_text(&g.other_roles)}));
    serde_json::Value::Array(roles)
}

/// Per role, the plan for a principal holding just that role (and `principal` as its id
/// when given; otherwise the id is unknown and matches no principal policy).
fn grants(planner: &Planner, q: &WhoCanQuestion, principal: Option<&str>, roles: &[String]) -> Grants {
    let plan_for = |role: &str| {
        let p = Principal {
            id: principal.unwrap_or("").to_string(),
            roles: vec![role.to_string()],
            attr: BTreeMap::new(),
            scope: q.principal_scope.clone(),
            policy_version: String::new(),
        };
        let actions = [q.action.clone()];
        let jwt = BTreeMap::new();
        let request = q.request(&p, &actions, &jwt);
        planner.plan_for_unknown_principal(&request, principal.is_some()).plan
    };
    Grants {
        roles: roles
            .iter()
            .map(|r| RoleGrant {
                role: r.clone(),
                plan: plan_for(r),
            })
            .collect(),
        other_roles: plan_for(OTHER_ROLE),
    }
}

/// `OR` over roles of `"r" in P.roles && cond_r`, and for any other role
/// `P.roles.exists(role, !(role in [named…])) && cond_other`.
fn grants_condition(g: &Grants) -> Expr {
    let roles_var = || Expr::var("request.principal.roles");
    let mut terms = Vec::new();
    for r in &g.roles {
        let holds = Expr::Call(Op::In, vec![Expr::Value(Value::string(&r.role)), roles_var()]);
        terms.push(and(vec![holds, plan_expr(&r.plan)]));
    }
    let named = Value::list(g.roles.iter().map(|r| Value::string(&r.role)).collect());
    let not_named = Expr::negate(Expr::Call(
        Op::In,
        vec![Expr::var(ROLE_VARIABLE), Expr::Value(named)],
    ));
    let other = Expr::Call(
        Op::Exists,
        vec![roles_var(), Expr::Call(Op::Lambda, vec![not_named, Expr::var(ROLE_VARIABLE)])],
    );
    terms.push(and(vec![other, plan_expr(&g.other_roles)]));
    or(terms)
}

fn plan_expr(plan: &Plan) -> Expr {
    match plan {
        Plan::AlwaysAllowed => Expr::bool(true),
        Plan::AlwaysDenied => Expr::bool(false),
        Plan::Conditional(e) => e.clone(),
    }
}

/// `and`, folding constants.
fn and(items: Vec<Expr>) -> Expr {
    junction(items, Op::And)
}

/// `or`, folding constants.
fn or(items: Vec<Expr>) -> Expr {
    junction(items, Op::Or)
}

/// `op` (`and` or `or`) over `items`: the neutral constant dropped, the absorbing one returned.
fn junction(items: Vec<Expr>, op: Op) -> Expr {
    let absorbing = op == Op::Or;
    let mut kept = Vec::new();
    for e in items {
        match e.as_bool() {
            Some(b) if b == absorbing => return Expr::bool(absorbing),
            Some(_) => {}
            None => kept.push(e),
        }
    }
    match kept.len() {
        0 => Expr::bool(!absorbing),
        1 => kept.remove(0),
        _ => Expr::Call(op, kept),
    }
}

/// The roles the policies name for `kind` (sorted), and the role patterns other than `*`.
fn named_roles(set: &PolicySet, kind: &str) -> (Vec<String>, Vec<String>) {
    let mut names = BTreeSet::new();
    let mut patterns = BTreeSet::new();
    let mut add = |r: &str| {
        if r == "*" {
        } else if r.contains('*') {
            patterns.insert(r.to_string());
        } else {
            names.insert(r.to_string());
        }
    };
    for p in set.resource_policies.iter().filter(|p| glob_match(&p.resource, kind)) {
        for rule in &p.rules {
            rule.roles.iter().for_each(|r| add(r));
        }
        for dr in &p.derived_roles {
            dr.parent_roles.iter().for_each(|r| add(r));
        }
    }
    for rp in &set.role_policies {
        add(&rp.role);
        rp.parent_roles.iter().for_each(|r| add(r));
    }
    (names.into_iter().collect(), patterns.into_iter().collect())
}

/// Principal ids with a principal policy that has a rule for `kind`, with those files.
fn principal_policy_files(set: &PolicySet, kind: &str) -> Vec<(String, Vec<String>)> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in &set.principal_policies {
        if p.rules.iter().any(|r| glob_match(&r.resource, kind)) {
            let files = out.entry(p.principal.clone()).or_default();
            if !files.contains(&p.file) {
                files.push(p.file.clone());
            }
        }
    }
    out.into_iter().collect()
}

/// Whether any condition of the set reads `runtime.effectiveDerivedRoles`.
fn reads_derived_role_list(set: &PolicySet) -> bool {
    use super::model::Condition;
    fn expr_reads(e: &Expr) -> bool {
        match e {
            Expr::Variable(v) => v.starts_with("runtime.effectiveDerivedRoles"),
            Expr::Value(_) => false,
            Expr::Call(_, args) => args.iter().any(expr_reads),
        }
    }
    fn cond_reads(c: &Condition) -> bool {
        match c {
            Condition::Expr { expr, .. } => expr_reads(expr),
            Condition::All(items) | Condition::Any(items) | Condition::None(items) => items.iter().any(cond_reads),
        }
    }
    let defs_read = |d: &super::model::Definitions| d.variables.values().any(expr_reads);
    set.resource_policies.iter().any(|p| {
        defs_read(&p.definitions)
            || p.rules.iter().any(|r| r.condition.as_ref().is_some_and(cond_reads))
            || p.derived_roles.iter().any(|d| defs_read(&d.definitions))
    })
}
