//! Compiling one raw document on its own: CEL parsed and checked, local variables and constants
//! collected, rules turned into model rules. Imports are left to the linker.

use super::diagnostics::{At, Sink, YPath};
use super::problem::ProblemKind;
use super::raw::*;
use crate::plan::{Expr, Value};
use crate::policy::cel;
use crate::policy::model::{
    Condition, Definitions, DerivedRole, Effect, PrincipalAction, PrincipalPolicy, PrincipalRule,
    ResourcePolicy, ResourceRule, RolePolicy, RoleRule, ScopePermissions,
};
use serde_yaml_ng::Value as YValue;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};



/// A variable definition and where it came from.
#[derive(Clone)]
pub(super) struct VarDef {
    pub(super) name: String,
    /// `None` when the CEL did not compile (already reported).
    pub(super) expr: Option<Expr>,
    pub(super) at: At,
    pub(super) path: YPath,
    pub(super) origin: String,
}

#[derive(Clone)]
pub(super) struct ConstDef {
    pub(super) name: String,
    pub(super) value: Value,
    pub(super) at: At,
    pub(super) path: YPath,
    pub(super) origin: String,
}

/// A policy's own variable and constant sections, before imports are resolved.
#[derive(Default)]
pub(super) struct DefsSpec {
    pub(super) var_imports: Vec<(String, YPath)>,
    pub(super) vars: Vec<VarDef>,
    pub(super) const_imports: Vec<(String, YPath)>,
    pub(super) consts: Vec<ConstDef>,
}

/// The variables and constants an expression refers to.
pub(super) struct ExprUse {
    pub(super) vars: BTreeSet<String>,
    pub(super) consts: BTreeSet<String>,
    pub(super) path: YPath,
}

pub(super) enum Body {
    Resource {
        policy: ResourcePolicy,
        imports: Vec<(String, YPath)>,
        /// Derived roles named by rules.
        role_refs: Vec<(String, YPath)>,
    },
    Principal(PrincipalPolicy),
    Role(RolePolicy),
    DerivedRoles {
        name: String,
        roles: Vec<DerivedRole>,
    },
    ExportVariables {
        name: String,
        vars: Vec<VarDef>,
    },
    ExportConstants {
        name: String,
        consts: Vec<ConstDef>,
    },
}

pub(super) struct Unit {
    pub(super) at: At,
    pub(super) defs: DefsSpec,
    pub(super) uses: Vec<ExprUse>,
    pub(super) body: Body,
}

/// Compiles one document, reporting into the sink.
pub(super) struct Local<'a> {
    pub(super) sink: &'a mut Sink,
    pub(super) at: At,
    pub(super) file_name: &'a str,
    pub(super) warnings: &'a mut Vec<String>,
    pub(super) uses: Vec<ExprUse>,
}

/// Collects `variables.x` and `constants.x` references (first segment only).
pub(super) fn collect_refs(e: &Expr, vars: &mut BTreeSet<String>, consts: &mut BTreeSet<String>) {
    match e {
        Expr::Value(_) => {}
        Expr::Variable(name) => {
            let first = |rest: &str| rest.split('.').next().unwrap_or_default().to_string();
            if let Some(rest) = name.strip_prefix("variables.") {
                vars.insert(first(rest));
            } else if let Some(rest) = name.strip_prefix("constants.") {
                consts.insert(first(rest));
            }
        }
        Expr::Call(_, args) => {
            for a in args {
                collect_refs(a, vars, consts);
            }
        }
    }
}

/// The first line of a CEL error (the rest is a caret diagram).
pub(super) fn first_line(e: &cel::CelError) -> String {
    e.to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

pub(super) fn yaml_to_value(v: &YValue) -> Result<Value, String> {
    let json = serde_json::to_value(v).map_err(|e| e.to_string())?;
    Ok(Value::from_json(&json))
}

impl Local<'_> {
    pub(super) fn err(&mut self, path: &YPath, kind: ProblemKind, reason: String) {
        self.sink.at(self.at, path, kind, reason);
    }

    pub(super) fn warn(&mut self, msg: String) {
        self.warnings.push(format!("{}: {msg}", self.file_name));
    }

    /// Compiles CEL and records what it references (checked once imports are resolved).
    pub(super) fn cel(&mut self, source: &str, path: &YPath) -> Option<Expr> {
        match cel::compile(source) {
            Ok(expr) => {
                let (mut vars, mut consts) = (BTreeSet::new(), BTreeSet::new());
                collect_refs(&expr, &mut vars, &mut consts);
                self.uses.push(ExprUse {
                    vars,
                    consts,
                    path: path.clone(),
                });
                Some(expr)
            }
            Err(e) => {
                self.err(
                    path,
                    ProblemKind::Cel,
                    format!("invalid expression `{}`: {}", source.trim(), first_line(&e)),
                );
                None
            }
        }
    }

    pub(super) fn required<'v>(
        &mut self,
        v: &'v Option<String>,
        path: &YPath,
        field: &str,
    ) -> Option<&'v str> {
        match v.as_deref() {
            Some(s) if !s.is_empty() => Some(s),
            _ => {
                self.err(
                    path,
                    ProblemKind::MissingField,
                    format!("`{field}` is required"),
                );
                None
            }
        }
    }

    /// A required name that must match `valid`.
    pub(super) fn name(
        &mut self,
        v: &Option<String>,
        path: &YPath,
        field: &str,
        valid: fn(&str) -> bool,
    ) -> String {
        let p = path.k(field);
        match self.required(v, &p, field) {
            Some(s) => {
                if !valid(s) {
                    self.err(
                        &p,
                        ProblemKind::InvalidValue,
                        format!("`{s}` is not a valid {field}"),
                    );
                }
                s.to_string()
            }
            None => String::new(),
        }
    }

    pub(super) fn scope(&mut self, v: &Option<String>, path: &YPath) -> String {
        let s = v.as_deref().unwrap_or_default();
        if !valid_scope(s) {
            self.err(
                &path.k("scope"),
                ProblemKind::InvalidValue,
                format!("`{s}` is not a valid scope"),
            );
        }
        normalise_scope(s)
    }

    /// A string list: unique items, each valid; `required` lists must be non-empty.
    pub(super) fn strings(
        &mut self,
        items: &List<String>,
        path: &YPath,
        field: &str,
        required: bool,
        valid: fn(&str) -> bool,
    ) -> Vec<String> {
        let p = path.k(field);
        let items = items.clone().unwrap_or_default();
        if required && items.is_empty() {
            self.err(
                &p,
                ProblemKind::MissingField,
                format!("`{field}` must list at least one item"),
            );
        }
        let mut seen = HashSet::new();
        for (i, s) in items.iter().enumerate() {
            if !valid(s) {
                self.err(
                    &p.i(i),
                    ProblemKind::InvalidValue,
                    format!("`{s}` is not a valid item of `{field}`"),
                );
            } else if !seen.insert(s.as_str()) {
                self.err(
                    &p.i(i),
                    ProblemKind::InvalidValue,
                    format!("`{s}` is listed twice in `{field}`"),
                );
            }
        }
        items
    }

    pub(super) fn effect(&mut self, e: Option<RawEffect>, path: &YPath) -> Effect {
        match e {
            Some(RawEffect::Allow) => Effect::Allow,
            Some(RawEffect::Deny) => Effect::Deny,
            None => {
                self.err(
                    &path.k("effect"),
                    ProblemKind::MissingField,
                    "`effect` is required".into(),
                );
                Effect::Deny
            }
        }
    }

    pub(super) fn rule_name(&mut self, name: &Option<String>, path: &YPath) -> Option<String> {
        let name = name.clone().filter(|n| !n.is_empty())?;
        if !valid_rule_name(&name) {
            self.err(
                &path.k("name"),
                ProblemKind::InvalidValue,
                format!("`{name}` is not a valid rule name"),
            );
        }
        Some(name)
    }

    pub(super) fn condition(&mut self, c: &Option<RawCondition>, path: &YPath) -> Option<Condition> {
        let c = c.as_ref()?;
        let path = path.k("condition");
        match (&c.matcher, &c.script) {
            (Some(m), None) => self.matcher(m, &path.k("match")),
            (None, Some(_)) => {
                self.err(
                    &path.k("script"),
                    ProblemKind::Unsupported,
                    "`condition.script` is not supported; use `match`".into(),
                );
                None
            }
            (Some(_), Some(_)) => {
                self.err(
                    &path,
                    ProblemKind::InvalidValue,
                    "`match` and `script` are mutually exclusive".into(),
                );
                None
            }
            (None, None) => {
                self.err(
                    &path,
                    ProblemKind::MissingField,
                    "`condition` needs `match`".into(),
                );
                None
            }
        }
    }

    pub(super) fn matcher(&mut self, m: &RawMatch, path: &YPath) -> Option<Condition> {
        let set = [
            m.expr.is_some(),
            m.all.is_some(),
            m.any.is_some(),
            m.none.is_some(),
        ];
        if set.iter().filter(|b| **b).count() != 1 {
            self.err(
                path,
                ProblemKind::InvalidValue,
                "`match` needs exactly one of `expr`, `all`, `any`, `none`".into(),
            );
            return None;
        }
        if let Some(src) = &m.expr {
            let expr = self.cel(src, &path.k("expr"))?;
            return Some(Condition::Expr {
                expr,
                source: src.clone(),
            });
        }
        let (op, list) = match (&m.all, &m.any, &m.none) {
            (Some(l), _, _) => ("all", l),
            (_, Some(l), _) => ("any", l),
            (_, _, Some(l)) => ("none", l),
            _ => return None,
        };
        let of_path = path.k(op).k("of");
        let items = list.of.as_deref().unwrap_or_default();
        if items.is_empty() {
            self.err(
                &of_path,
                ProblemKind::MissingField,
                format!("`{op}.of` must list at least one condition"),
            );
            return None;
        }
        let mut children = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.matcher(item, &of_path.i(i)) {
                Some(c) => children.push(c),
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        Some(match op {
            "all" => Condition::All(children),
            "any" => Condition::Any(children),
            _ => Condition::None(children),
        })
    }

    /// Compiles `output` expressions for validation only; outputs never reach a plan.
    pub(super) fn output(&mut self, o: &Option<RawOutput>, path: &YPath) {
        let Some(o) = o else { return };
        let path = path.k("output");
        if let Some(src) = &o.expr {
            self.cel(src, &path.k("expr"));
        }
        if let Some(w) = &o.when {
            let wp = path.k("when");
            if let Some(src) = &w.rule_activated {
                self.cel(src, &wp.k("ruleActivated"));
            }
            if let Some(src) = &w.condition_not_met {
                self.cel(src, &wp.k("conditionNotMet"));
            }
        }
    }

    pub(super) fn var_defs(
        &mut self,
        defs: &BTreeMap<String, String>,
        path: &YPath,
        origin: &str,
    ) -> Vec<VarDef> {
        defs.iter()
            .map(|(name, src)| {
                let p = path.k(name);
                let expr = match cel::compile(src) {
                    Ok(e) => Some(e),
                    Err(e) => {
                        self.err(
                            &p,
                            ProblemKind::Cel,
                            format!(
                                "invalid expression `{}` for variable `{name}`: {}",
                                src.trim(),
                                first_line(&e)
                            ),
                        );
                        None
                    }
                };
                VarDef {
                    name: name.clone(),
                    expr,
                    at: self.at,
                    path: p,
                    origin: origin.to_string(),
                }
            })
            .collect()
    }

    pub(super) fn const_defs(
        &mut self,
        defs: &BTreeMap<String, YValue>,
        path: &YPath,
        origin: &str,
    ) -> Vec<ConstDef> {
        let mut out = Vec::new();
        for (name, v) in defs {
            let p = path.k(name);
            match yaml_to_value(v) {
                Ok(value) => out.push(ConstDef {
                    name: name.clone(),
                    value,
                    at: self.at,
                    path: p,
                    origin: origin.to_string(),
                }),
                Err(e) => self.err(
                    &p,
                    ProblemKind::InvalidValue,
                    format!("constant `{name}` is not a JSON value: {e}"),
                ),
            }
        }
        out
    }

    pub(super) fn imports(&mut self, list: &List<String>, path: &YPath) -> Vec<(String, YPath)> {
        let names = self.strings(list, path, "import", false, valid_ident);
        let p = path.k("import");
        names
            .into_iter()
            .enumerate()
            .map(|(i, n)| (n, p.i(i)))
            .collect()
    }

    /// `variables {import, local}` and `constants {import, local}` of a policy body, plus the
    /// deprecated top-level `variables`.
    pub(super) fn defs_spec(
        &mut self,
        vars: &Option<RawVariables>,
        consts: &Option<RawConstants>,
        top: &Option<BTreeMap<String, String>>,
        body: &YPath,
    ) -> DefsSpec {
        let mut spec = DefsSpec::default();
        if let Some(v) = vars {
            let vp = body.k("variables");
            spec.var_imports = self.imports(&v.import, &vp);
            if let Some(local) = &v.local {
                spec.vars = self.var_defs(local, &vp.k("local"), "local variables");
            }
        }
        if let Some(top) = top {
            let mut more =
                self.var_defs(top, &YPath::default().k("variables"), "top-level variables");
            spec.vars.append(&mut more);
        }
        if let Some(c) = consts {
            let cp = body.k("constants");
            spec.const_imports = self.imports(&c.import, &cp);
            if let Some(local) = &c.local {
                spec.consts = self.const_defs(local, &cp.k("local"), "local constants");
            }
        }
        spec
    }

    pub(super) fn scope_permissions(&mut self, sp: Option<RawScopePermissions>) -> ScopePermissions {
        match sp {
            Some(RawScopePermissions::RequireParentalConsentForAllows) => {
                ScopePermissions::RequireParentalConsentForAllows
            }
            _ => ScopePermissions::OverrideParent,
        }
    }

    pub(super) fn resource_policy(
        &mut self,
        raw: &RawResourcePolicy,
        top: &Option<BTreeMap<String, String>>,
    ) -> Unit {
        let base = YPath::default().k("resourcePolicy");
        let resource = self.name(&raw.resource, &base, "resource", valid_policy_name);
        let version = self.name(&raw.version, &base, "version", valid_version);
        let scope = self.scope(&raw.scope, &base);
        let scope_permissions = self.scope_permissions(raw.scope_permissions);
        let import_list = self.strings(
            &raw.import_derived_roles,
            &base,
            "importDerivedRoles",
            false,
            valid_ident,
        );
        let ip = base.k("importDerivedRoles");
        let imports = import_list
            .into_iter()
            .enumerate()
            .map(|(i, n)| (n, ip.i(i)))
            .collect();
        if raw.schemas.is_some() {
            self.warn("`resourcePolicy.schemas` is ignored: request attributes are not validated against schemas".into());
        }
        let defs = self.defs_spec(&raw.variables, &raw.constants, top, &base);

        let mut rules = Vec::new();
        let mut role_refs = Vec::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        for (i, r) in raw.rules.as_deref().unwrap_or_default().iter().enumerate() {
            let p = base.k("rules").i(i);
            let name = self.rule_name(&r.name, &p);
            if let Some(n) = &name {
                if let Some(first) = names.insert(n.clone(), i) {
                    self.err(
                        &p.k("name"),
                        ProblemKind::DuplicateName,
                        format!("rule name `{n}` is also used by rule #{}", first + 1),
                    );
                }
            }
            let actions = self.strings(&r.actions, &p, "actions", true, non_empty);
            let roles = self.strings(&r.roles, &p, "roles", false, non_empty);
            let derived_roles =
                self.strings(&r.derived_roles, &p, "derivedRoles", false, valid_ident);
            if roles.is_empty() && derived_roles.is_empty() {
                self.err(
                    &p,
                    ProblemKind::NoRoles,
                    "rule needs `roles` or `derivedRoles`".into(),
                );
            }
            let dp = p.k("derivedRoles");
            role_refs.extend(
                derived_roles
                    .iter()
                    .enumerate()
                    .map(|(j, d)| (d.clone(), dp.i(j))),
            );
            let effect = self.effect(r.effect, &p);
            let condition = self.condition(&r.condition, &p);
            self.output(&r.output, &p);
            rules.push(ResourceRule {
                name,
                actions,
                effect,
                roles,
                derived_roles,
                condition,
            });
        }
        Unit {
            at: self.at,
            defs,
            uses: std::mem::take(&mut self.uses),
            body: Body::Resource {
                policy: ResourcePolicy {
                    file: self.file_name.to_string(),
                    resource,
                    version,
                    scope,
                    scope_permissions,
                    definitions: Definitions::default(),
                    derived_roles: Vec::new(),
                    rules,
                },
                imports,
                role_refs,
            },
        }
    }

    pub(super) fn principal_policy(
        &mut self,
        raw: &RawPrincipalPolicy,
        top: &Option<BTreeMap<String, String>>,
    ) -> Unit {
        let base = YPath::default().k("principalPolicy");
        let principal = self.name(&raw.principal, &base, "principal", valid_policy_name);
        let version = self.name(&raw.version, &base, "version", valid_version);
        let scope = self.scope(&raw.scope, &base);
        let scope_permissions = self.scope_permissions(raw.scope_permissions);
        let defs = self.defs_spec(&raw.variables, &raw.constants, top, &base);

        let mut rules = Vec::new();
        let mut resources: HashMap<String, usize> = HashMap::new();
        for (i, r) in raw.rules.as_deref().unwrap_or_default().iter().enumerate() {
            let p = base.k("rules").i(i);
            let resource = self
                .required(&r.resource, &p.k("resource"), "resource")
                .unwrap_or_default()
                .to_string();
            if !resource.is_empty() {
                if let Some(first) = resources.insert(resource.clone(), i) {
                    self.err(
                        &p.k("resource"),
                        ProblemKind::DuplicateName,
                        format!("resource `{resource}` already has rule #{}", first + 1),
                    );
                }
            }
            let raw_actions = r.actions.as_deref().unwrap_or_default();
            if raw_actions.is_empty() {
                self.err(
                    &p.k("actions"),
                    ProblemKind::MissingField,
                    "`actions` must list at least one action".into(),
                );
            }
            let mut actions = Vec::new();
            let mut names: HashMap<String, usize> = HashMap::new();
            for (j, a) in raw_actions.iter().enumerate() {
                let ap = p.k("actions").i(j);
                let action = self
                    .required(&a.action, &ap.k("action"), "action")
                    .unwrap_or_default()
                    .to_string();
                let name = self.rule_name(&a.name, &ap);
                if let Some(n) = &name {
                    if let Some(first) = names.insert(n.clone(), j) {
                        self.err(
                            &ap.k("name"),
                            ProblemKind::DuplicateName,
                            format!(
                                "action rule name `{n}` is also used by action rule #{}",
                                first + 1
                            ),
                        );
                    }
                }
                let effect = self.effect(a.effect, &ap);
                let condition = self.condition(&a.condition, &ap);
                self.output(&a.output, &ap);
                actions.push(PrincipalAction {
                    name,
                    action,
                    effect,
                    condition,
                });
            }
            rules.push(PrincipalRule { resource, actions });
        }
        Unit {
            at: self.at,
            defs,
            uses: std::mem::take(&mut self.uses),
            body: Body::Principal(PrincipalPolicy {
                file: self.file_name.to_string(),
                principal,
                version,
                scope,
                scope_permissions,
                definitions: Definitions::default(),
                rules,
            }),
        }
    }

    pub(super) fn role_policy(&mut self, raw: &RawRolePolicy, top: &Option<BTreeMap<String, String>>) -> Unit {
        let base = YPath::default().k("rolePolicy");
        let role = self.name(&raw.role, &base, "role", valid_policy_name);
        let version = match raw.version.as_deref() {
            None | Some("") => "default".to_string(),
            Some(v) => {
                if !valid_version(v) {
                    self.err(
                        &base.k("version"),
                        ProblemKind::InvalidValue,
                        format!("`{v}` is not a valid version"),
                    );
                }
                v.to_string()
            }
        };
        let scope = self.scope(&raw.scope, &base);
        if raw.scope_permissions == Some(RawScopePermissions::OverrideParent) {
            self.err(
                &base.k("scopePermissions"),
                ProblemKind::InvalidValue,
                "role policies only allow SCOPE_PERMISSIONS_REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS"
                    .into(),
            );
        }
        let parent_roles = self.strings(&raw.parent_roles, &base, "parentRoles", false, non_empty);
        let defs = self.defs_spec(&raw.variables, &raw.constants, top, &base);

        let mut rules = Vec::new();
        for (i, r) in raw.rules.as_deref().unwrap_or_default().iter().enumerate() {
            let p = base.k("rules").i(i);
            let resource = self
                .required(&r.resource, &p.k("resource"), "resource")
                .unwrap_or_default()
                .to_string();
            let allow_actions = self.strings(&r.allow_actions, &p, "allowActions", true, non_empty);
            let name = self.rule_name(&r.name, &p);
            let condition = self.condition(&r.condition, &p);
            self.output(&r.output, &p);
            rules.push(RoleRule {
                name,
                resource,
                allow_actions,
                condition,
            });
        }
        Unit {
            at: self.at,
            defs,
            uses: std::mem::take(&mut self.uses),
            body: Body::Role(RolePolicy {
                file: self.file_name.to_string(),
                role,
                version,
                scope,
                // Cerbos treats role-policy scopePermissions as a no-op: a role policy only
                // ever narrows, which is the parental-consent behaviour.
                scope_permissions: ScopePermissions::RequireParentalConsentForAllows,
                parent_roles,
                definitions: Definitions::default(),
                rules,
            }),
        }
    }

    pub(super) fn derived_roles(
        &mut self,
        raw: &RawDerivedRoles,
        top: &Option<BTreeMap<String, String>>,
    ) -> Unit {
        let base = YPath::default().k("derivedRoles");
        let name = self.name(&raw.name, &base, "name", valid_ident);
        let defs = self.defs_spec(&raw.variables, &raw.constants, top, &base);
        let list = raw.definitions.as_deref().unwrap_or_default();
        if list.is_empty() {
            self.err(
                &base.k("definitions"),
                ProblemKind::MissingField,
                "`definitions` must list at least one derived role".into(),
            );
        }
        let mut roles = Vec::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        for (i, d) in list.iter().enumerate() {
            let p = base.k("definitions").i(i);
            let role_name = self.name(&d.name, &p, "name", valid_ident);
            if !role_name.is_empty() {
                if let Some(first) = names.insert(role_name.clone(), i) {
                    self.err(
                        &p.k("name"),
                        ProblemKind::DuplicateName,
                        format!(
                            "derived role `{role_name}` is also defined by definition #{}",
                            first + 1
                        ),
                    );
                }
            }
            let parent_roles = self.strings(&d.parent_roles, &p, "parentRoles", true, non_empty);
            let condition = self.condition(&d.condition, &p);
            roles.push(DerivedRole {
                name: role_name,
                parent_roles,
                condition,
                definitions: Definitions::default(),
            });
        }
        Unit {
            at: self.at,
            defs,
            uses: std::mem::take(&mut self.uses),
            body: Body::DerivedRoles { name, roles },
        }
    }

    pub(super) fn export_variables(&mut self, raw: &RawExportVariables) -> Unit {
        let base = YPath::default().k("exportVariables");
        let name = self.name(&raw.name, &base, "name", valid_ident);
        let vars = match &raw.definitions {
            Some(d) => self.var_defs(
                d,
                &base.k("definitions"),
                &format!("exported variables `{name}`"),
            ),
            None => Vec::new(),
        };
        Unit {
            at: self.at,
            defs: DefsSpec::default(),
            uses: Vec::new(),
            body: Body::ExportVariables { name, vars },
        }
    }

    pub(super) fn export_constants(&mut self, raw: &RawExportConstants) -> Unit {
        let base = YPath::default().k("exportConstants");
        let name = self.name(&raw.name, &base, "name", valid_ident);
        let consts = match &raw.definitions {
            Some(d) => self.const_defs(
                d,
                &base.k("definitions"),
                &format!("exported constants `{name}`"),
            ),
            None => Vec::new(),
        };
        Unit {
            at: self.at,
            defs: DefsSpec::default(),
            uses: Vec::new(),
            body: Body::ExportConstants { name, consts },
        }
    }
}

/// Checks the document envelope and compiles its body. Disabled policies are checked for
/// structure only and yield no unit.
pub(super) fn compile_doc(
    at: At,
    raw: &RawPolicy,
    file_name: &str,
    sink: &mut Sink,
    warnings: &mut Vec<String>,
) -> Option<Unit> {
    let root = YPath::default();
    match raw.api_version.as_deref() {
        Some(API_VERSION) => {}
        Some(other) => sink.at(
            at,
            &root.k("apiVersion"),
            ProblemKind::ApiVersion,
            format!("apiVersion must be `{API_VERSION}`, not `{other}`"),
        ),
        None => sink.at(
            at,
            &root,
            ProblemKind::MissingField,
            "`apiVersion` is required".into(),
        ),
    }
    let bodies = [
        raw.resource_policy.is_some(),
        raw.principal_policy.is_some(),
        raw.derived_roles.is_some(),
        raw.role_policy.is_some(),
        raw.export_variables.is_some(),
        raw.export_constants.is_some(),
    ];
    let count = bodies.iter().filter(|b| **b).count();
    if count != 1 {
        let reason = if count == 0 {
            "no policy: expected one of resourcePolicy, principalPolicy, derivedRoles, rolePolicy, exportVariables, exportConstants"
        } else {
            "a document holds exactly one policy, but this one has several"
        };
        sink.at(at, &root, ProblemKind::PolicyType, reason.into());
        return None;
    }
    if raw.disabled == Some(true) {
        return None;
    }
    let mut local = Local {
        sink,
        at,
        file_name,
        warnings,
        uses: Vec::new(),
    };
    let top = &raw.variables;
    let export_with_top = |local: &mut Local<'_>, kind: &str| {
        if top.is_some() {
            local.err(
                &root.k("variables"),
                ProblemKind::InvalidValue,
                format!("{kind} policies do not support the deprecated top-level `variables`"),
            );
        }
    };
    if let Some(p) = &raw.resource_policy {
        Some(local.resource_policy(p, top))
    } else if let Some(p) = &raw.principal_policy {
        Some(local.principal_policy(p, top))
    } else if let Some(p) = &raw.role_policy {
        Some(local.role_policy(p, top))
    } else if let Some(p) = &raw.derived_roles {
        Some(local.derived_roles(p, top))
    } else if let Some(p) = &raw.export_variables {
        export_with_top(&mut local, "exportVariables");
        Some(local.export_variables(p))
    } else if let Some(p) = &raw.export_constants {
        export_with_top(&mut local, "exportConstants");
        Some(local.export_constants(p))
    } else {
        None
    }
}

