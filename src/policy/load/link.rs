//! Linking the compiled documents into one set: imports of derived roles, exported variables and
//! constants resolved, variables ordered (cycles reported), and the set-wide checks (one policy
//! per kind, version and scope; scope chains without gaps; consistent scope permissions).

use super::compile::{collect_refs, Body, ConstDef, Unit, VarDef};
use super::diagnostics::{At, Sink, YPath};
use super::parse::Broken;
use super::problem::ProblemKind;
use super::raw::ancestors;
use crate::plan::Value;
use crate::policy::model::{
    Definitions, DerivedRole, PolicySet, PrincipalPolicy, ResourcePolicy, RolePolicy,
    ScopePermissions,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};



#[derive(Default)]
pub(super) struct Registry {
    pub(super) derived_roles: HashMap<String, usize>,
    pub(super) export_variables: HashMap<String, usize>,
    pub(super) export_constants: HashMap<String, usize>,
}

pub(super) struct Linker<'a> {
    pub(super) units: &'a [Unit],
    pub(super) files: &'a [(String, String)],
    pub(super) reg: Registry,
    pub(super) broken: &'a Broken,
    pub(super) sink: &'a mut Sink,
}

impl Linker<'_> {
    pub(super) fn file_name(&self, at: At) -> &str {
        self.files
            .get(at.file)
            .map(|f| f.0.as_str())
            .unwrap_or_default()
    }

    pub(super) fn register(&mut self) {
        for (i, u) in self.units.iter().enumerate() {
            let (map, name, kind, path) = match &u.body {
                Body::DerivedRoles { name, .. } => (
                    &mut self.reg.derived_roles,
                    name,
                    "derived roles",
                    "derivedRoles",
                ),
                Body::ExportVariables { name, .. } => (
                    &mut self.reg.export_variables,
                    name,
                    "exported variables",
                    "exportVariables",
                ),
                Body::ExportConstants { name, .. } => (
                    &mut self.reg.export_constants,
                    name,
                    "exported constants",
                    "exportConstants",
                ),
                _ => continue,
            };
            if name.is_empty() {
                continue;
            }
            if let Some(&first) = map.get(name) {
                let other = self
                    .units
                    .get(first)
                    .and_then(|f| self.files.get(f.at.file))
                    .map(|f| f.0.clone())
                    .unwrap_or_default();
                self.sink.at(
                    u.at,
                    &YPath::default().k(path).k("name"),
                    ProblemKind::DuplicatePolicy,
                    format!("{kind} `{name}` are also defined in {other}"),
                );
            } else {
                map.insert(name.clone(), i);
            }
        }
    }

    /// Merges imported, local and top-level definitions of one unit and checks every
    /// reference.
    pub(super) fn definitions(&mut self, u: &Unit) -> Definitions {
        // (definition, where a duplicate is reported, import name if imported)
        let mut vars: Vec<(VarDef, YPath, Option<String>)> = Vec::new();
        for (imp, path) in &u.defs.var_imports {
            match self
                .reg
                .export_variables
                .get(imp)
                .and_then(|&i| self.units.get(i))
            {
                Some(Unit {
                    body: Body::ExportVariables { vars: defs, .. },
                    ..
                }) => {
                    vars.extend(
                        defs.iter()
                            .map(|d| (d.clone(), path.clone(), Some(imp.clone()))),
                    );
                }
                _ => {
                    if !self.broken.export_variables.contains(imp) {
                        self.sink.at(
                            u.at,
                            path,
                            ProblemKind::MissingImport,
                            format!("no exportVariables named `{imp}`"),
                        );
                    }
                }
            }
        }
        vars.extend(
            u.defs
                .vars
                .iter()
                .map(|d| (d.clone(), d.path.clone(), None)),
        );

        let mut consts: Vec<(ConstDef, YPath)> = Vec::new();
        for (imp, path) in &u.defs.const_imports {
            match self
                .reg
                .export_constants
                .get(imp)
                .and_then(|&i| self.units.get(i))
            {
                Some(Unit {
                    body: Body::ExportConstants { consts: defs, .. },
                    ..
                }) => {
                    consts.extend(defs.iter().map(|d| (d.clone(), path.clone())));
                }
                _ => {
                    if !self.broken.export_constants.contains(imp) {
                        self.sink.at(
                            u.at,
                            path,
                            ProblemKind::MissingImport,
                            format!("no exportConstants named `{imp}`"),
                        );
                    }
                }
            }
        }
        consts.extend(u.defs.consts.iter().map(|d| (d.clone(), d.path.clone())));

        // Each name once; later definitions are errors.
        let mut var_map: BTreeMap<String, (VarDef, YPath, Option<String>)> = BTreeMap::new();
        for (def, report, imp) in vars {
            if let Some((first, _, _)) = var_map.get(&def.name) {
                let reason = format!(
                    "variable `{}` is defined more than once: {} ({}) and {} ({})",
                    def.name,
                    first.origin,
                    self.file_name(first.at),
                    def.origin,
                    self.file_name(def.at)
                );
                self.sink
                    .at(u.at, &report, ProblemKind::DuplicateDefinition, reason);
            } else {
                var_map.insert(def.name.clone(), (def, report, imp));
            }
        }
        let mut constants: BTreeMap<String, Value> = BTreeMap::new();
        let mut const_origin: BTreeMap<String, (String, At)> = BTreeMap::new();
        for (def, report) in consts {
            if let Some((origin, at)) = const_origin.get(&def.name) {
                let reason = format!(
                    "constant `{}` is defined more than once: {origin} ({}) and {} ({})",
                    def.name,
                    self.file_name(*at),
                    def.origin,
                    self.file_name(def.at)
                );
                self.sink
                    .at(u.at, &report, ProblemKind::DuplicateDefinition, reason);
            } else {
                const_origin.insert(def.name.clone(), (def.origin.clone(), def.at));
                constants.insert(def.name.clone(), def.value);
            }
        }

        // References made by variables.
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (name, (def, report, imp)) in &var_map {
            let mut edges = BTreeSet::new();
            if let Some(expr) = &def.expr {
                let (mut vrefs, mut crefs) = (BTreeSet::new(), BTreeSet::new());
                collect_refs(expr, &mut vrefs, &mut crefs);
                // Problems inside an imported variable are reported at the import.
                let (at, path) = match imp {
                    Some(_) => (u.at, report.clone()),
                    None => (def.at, def.path.clone()),
                };
                let what = match imp {
                    Some(i) => format!("variable `{name}` (imported from `{i}`)"),
                    None => format!("variable `{name}`"),
                };
                for r in vrefs {
                    if &r == name {
                        self.sink.at(
                            at,
                            &path,
                            ProblemKind::VariableCycle,
                            format!("{what} references itself"),
                        );
                    } else if var_map.contains_key(&r) {
                        edges.insert(r);
                    } else {
                        self.sink.at(
                            at,
                            &path,
                            ProblemKind::UndefinedVariable,
                            format!("{what} references undefined variable `{r}`"),
                        );
                    }
                }
                for c in crefs {
                    if !constants.contains_key(&c) {
                        self.sink.at(
                            at,
                            &path,
                            ProblemKind::UndefinedConstant,
                            format!("{what} references undefined constant `{c}`"),
                        );
                    }
                }
            }
            graph.insert(name.clone(), edges);
        }
        for cycle in cycles(&graph) {
            let first = cycle.first().cloned().unwrap_or_default();
            let path = var_map
                .get(&first)
                .map(|(d, report, imp)| {
                    if imp.is_some() {
                        report.clone()
                    } else {
                        d.path.clone()
                    }
                })
                .unwrap_or_default();
            let names = cycle
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ");
            self.sink.at(
                u.at,
                &path,
                ProblemKind::VariableCycle,
                format!("variables {names} form a cycle"),
            );
        }

        // References made by conditions and outputs.
        for e in &u.uses {
            for v in &e.vars {
                if !var_map.contains_key(v) {
                    self.sink.at(
                        u.at,
                        &e.path,
                        ProblemKind::UndefinedVariable,
                        format!("undefined variable `{v}`"),
                    );
                }
            }
            for c in &e.consts {
                if !constants.contains_key(c) {
                    self.sink.at(
                        u.at,
                        &e.path,
                        ProblemKind::UndefinedConstant,
                        format!("undefined constant `{c}`"),
                    );
                }
            }
        }

        Definitions {
            variable_order: topo_order(&graph),
            variables: var_map
                .into_iter()
                .filter_map(|(n, (d, _, _))| d.expr.map(|e| (n, e)))
                .collect(),
            constants,
        }
    }

    /// The derived roles a resource policy's rules reference, from its imports.
    pub(super) fn derived_roles(
        &mut self,
        u: &Unit,
        imports: &[(String, YPath)],
        role_refs: &[(String, YPath)],
        sets: &HashMap<usize, Vec<DerivedRole>>,
        warnings: &mut Vec<String>,
    ) -> Vec<DerivedRole> {
        let mut available: BTreeMap<String, Vec<(String, DerivedRole)>> = BTreeMap::new();
        let mut complete = true;
        for (imp, path) in imports {
            match self.reg.derived_roles.get(imp).and_then(|i| sets.get(i)) {
                Some(roles) => {
                    for r in roles {
                        available
                            .entry(r.name.clone())
                            .or_default()
                            .push((imp.clone(), r.clone()));
                    }
                }
                None => {
                    complete = false;
                    if !self.broken.derived_roles.contains(imp) {
                        self.sink.at(
                            u.at,
                            path,
                            ProblemKind::MissingImport,
                            format!("no derivedRoles named `{imp}`"),
                        );
                    }
                }
            }
        }
        let mut referenced: BTreeMap<String, DerivedRole> = BTreeMap::new();
        let mut reported = HashSet::new();
        for (name, path) in role_refs {
            match available.get(name).map(Vec::as_slice) {
                Some([(_, role)]) => {
                    referenced.insert(name.clone(), role.clone());
                }
                Some(many) => {
                    if reported.insert(name.clone()) {
                        let from = many
                            .iter()
                            .map(|(i, _)| format!("`{i}`"))
                            .collect::<Vec<_>>()
                            .join(", ");
                        self.sink.at(
                            u.at,
                            path,
                            ProblemKind::AmbiguousDerivedRole,
                            format!(
                                "derived role `{name}` is defined by more than one import: {from}"
                            ),
                        );
                    }
                }
                None => {
                    // A missing import was already reported; its roles are unknown.
                    if complete && reported.insert(name.clone()) {
                        self.sink.at(
                            u.at,
                            path,
                            ProblemKind::UndefinedDerivedRole,
                            format!(
                                "derived role `{name}` is not defined by any imported derivedRoles"
                            ),
                        );
                    }
                }
            }
        }
        for (name, defs) in &available {
            if defs.len() > 1 && !referenced.contains_key(name) && !reported.contains(name) {
                let from = defs
                    .iter()
                    .map(|(i, _)| format!("`{i}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                warnings.push(format!(
                    "{}: derived role `{name}` is defined by several imports ({from}); no rule uses it",
                    self.file_name(u.at)
                ));
            }
        }
        referenced.into_values().collect()
    }
}

/// Cycles (strongly connected components with more than one node) of a variable graph, each
/// sorted by name. Self-references are reported separately.
pub(super) fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Tarjan<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: HashMap<&'g str, usize>,
        low: HashMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: HashSet<&'g str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    impl<'g> Tarjan<'g> {
        fn visit(&mut self, v: &'g str) {
            self.index.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            self.on_stack.insert(v);
            let graph = self.graph;
            if let Some(edges) = graph.get(v) {
                for w in edges {
                    let w = w.as_str();
                    if !self.index.contains_key(w) {
                        self.visit(w);
                        let lw = self.low.get(w).copied().unwrap_or(usize::MAX);
                        if let Some(lv) = self.low.get_mut(v) {
                            *lv = (*lv).min(lw);
                        }
                    } else if self.on_stack.contains(w) {
                        let iw = self.index.get(w).copied().unwrap_or(usize::MAX);
                        if let Some(lv) = self.low.get_mut(v) {
                            *lv = (*lv).min(iw);
                        }
                    }
                }
            }
            if self.low.get(v) == self.index.get(v) {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.out.push(component);
                }
            }
        }
    }
    let mut t = Tarjan {
        graph,
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on_stack: HashSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.out
}

/// Variable names in dependency order (dependencies first, ties by name). Variables on or
/// behind a cycle are left out; cycles are errors anyway.
pub(super) fn topo_order(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut remaining: BTreeMap<&str, usize> =
        graph.iter().map(|(n, e)| (n.as_str(), e.len())).collect();
    let mut dependents: HashMap<&str, Vec<&str>> = HashMap::new();
    for (n, edges) in graph {
        for e in edges {
            dependents.entry(e.as_str()).or_default().push(n.as_str());
        }
    }
    let mut ready: BTreeSet<&str> = remaining
        .iter()
        .filter(|(_, c)| **c == 0)
        .map(|(n, _)| *n)
        .collect();
    let mut order = Vec::new();
    while let Some(n) = ready.pop_first() {
        order.push(n.to_string());
        for d in dependents.get(n).map(Vec::as_slice).unwrap_or_default() {
            if let Some(c) = remaining.get_mut(d) {
                *c = c.saturating_sub(1);
                if *c == 0 {
                    ready.insert(d);
                }
            }
        }
    }
    order
}

pub(super) fn link(
    units: &[Unit],
    files: &[(String, String)],
    broken: &Broken,
    sink: &mut Sink,
    warnings: &mut Vec<String>,
) -> PolicySet {
    let mut l = Linker {
        units,
        files,
        reg: Registry::default(),
        broken,
        sink,
    };
    l.register();

    let defs: Vec<Definitions> = units
        .iter()
        .map(|u| match u.body {
            Body::ExportVariables { .. } | Body::ExportConstants { .. } => Definitions::default(),
            _ => l.definitions(u),
        })
        .collect();

    // Derived-role sets with their file's definitions.
    let mut sets: HashMap<usize, Vec<DerivedRole>> = HashMap::new();
    for (i, u) in units.iter().enumerate() {
        if let Body::DerivedRoles { roles, .. } = &u.body {
            let d = defs.get(i).cloned().unwrap_or_default();
            sets.insert(
                i,
                roles
                    .iter()
                    .map(|r| DerivedRole {
                        definitions: d.clone(),
                        ..r.clone()
                    })
                    .collect(),
            );
        }
    }

    let mut set = PolicySet::default();
    let mut resource_at = Vec::new();
    let mut principal_at = Vec::new();
    let mut role_at = Vec::new();
    for (i, u) in units.iter().enumerate() {
        let d = defs.get(i).cloned().unwrap_or_default();
        match &u.body {
            Body::Resource {
                policy,
                imports,
                role_refs,
            } => {
                let derived_roles = l.derived_roles(u, imports, role_refs, &sets, warnings);
                set.resource_policies.push(ResourcePolicy {
                    definitions: d,
                    derived_roles,
                    ..policy.clone()
                });
                resource_at.push(u.at);
            }
            Body::Principal(p) => {
                set.principal_policies.push(PrincipalPolicy {
                    definitions: d,
                    ..p.clone()
                });
                principal_at.push(u.at);
            }
            Body::Role(r) => {
                set.role_policies.push(RolePolicy {
                    definitions: d,
                    ..r.clone()
                });
                role_at.push(u.at);
            }
            _ => {}
        }
    }

    let sink = l.sink;
    let name_of = |at: At| files.get(at.file).map(|f| f.0.clone()).unwrap_or_default();

    // Duplicate identities.
    let mut check_dups = |keys: Vec<((String, String, String), At)>, kind: &str, body: &str| {
        let mut first: HashMap<(String, String, String), At> = HashMap::new();
        for (key, at) in keys {
            if let Some(prev) = first.get(&key) {
                let (name, version, scope) = &key;
                sink.at(
                    at,
                    &YPath::default().k(body),
                    ProblemKind::DuplicatePolicy,
                    format!(
                        "{kind} policy `{name}` (version `{version}`, {}) is also defined in {}",
                        scope_label(scope),
                        name_of(*prev)
                    ),
                );
            } else {
                first.insert(key, at);
            }
        }
    };
    let resource_keys: Vec<_> = set
        .resource_policies
        .iter()
        .zip(&resource_at)
        .map(|(p, at)| {
            (
                (p.resource.clone(), p.version.clone(), p.scope.clone()),
                *at,
            )
        })
        .collect();
    let principal_keys: Vec<_> = set
        .principal_policies
        .iter()
        .zip(&principal_at)
        .map(|(p, at)| {
            (
                (p.principal.clone(), p.version.clone(), p.scope.clone()),
                *at,
            )
        })
        .collect();
    let role_keys: Vec<_> = set
        .role_policies
        .iter()
        .zip(&role_at)
        .map(|(p, at)| ((p.role.clone(), p.version.clone(), p.scope.clone()), *at))
        .collect();
    check_dups(resource_keys.clone(), "resource", "resourcePolicy");
    check_dups(principal_keys.clone(), "principal", "principalPolicy");
    check_dups(role_keys, "role", "rolePolicy");

    // Scoped resource and principal policies need a policy at every parent scope.
    let check_chain = |keys: &[((String, String, String), At)],
                       broken: &HashSet<(String, String, String)>,
                       kind: &str,
                       body: &str,
                       sink: &mut Sink| {
        let present: HashSet<&(String, String, String)> = keys.iter().map(|(k, _)| k).collect();
        for ((name, version, scope), at) in keys {
            for parent in ancestors(scope) {
                let key = (name.clone(), version.clone(), parent.clone());
                if !present.contains(&key) && !broken.contains(&key) {
                    sink.at(
                        *at,
                        &YPath::default().k(body).k("scope"),
                        ProblemKind::MissingAncestor,
                        format!(
                            "{kind} policy `{name}` (version `{version}`, {}) has no parent policy in {}",
                            scope_label(scope),
                            scope_label(&parent)
                        ),
                    );
                }
            }
        }
    };
    check_chain(
        &resource_keys,
        &broken.resource,
        "resource",
        "resourcePolicy",
        sink,
    );
    check_chain(
        &principal_keys,
        &broken.principal,
        "principal",
        "principalPolicy",
        sink,
    );

    // All resource and principal policies in one scope must agree on scopePermissions.
    let mut by_scope: BTreeMap<String, Vec<(ScopePermissions, At, String)>> = BTreeMap::new();
    for (p, at) in set.resource_policies.iter().zip(&resource_at) {
        by_scope.entry(p.scope.clone()).or_default().push((
            p.scope_permissions,
            *at,
            format!("resource `{}`", p.resource),
        ));
    }
    for (p, at) in set.principal_policies.iter().zip(&principal_at) {
        by_scope.entry(p.scope.clone()).or_default().push((
            p.scope_permissions,
            *at,
            format!("principal `{}`", p.principal),
        ));
    }
    for (scope, entries) in &by_scope {
        let Some((first, _, _)) = entries.first() else {
            continue;
        };
        if let Some((_, at, _)) = entries.iter().find(|(sp, _, _)| sp != first) {
            let list = entries
                .iter()
                .map(|(sp, at, what)| {
                    format!(
                        "{what} ({}) = {}",
                        name_of(*at),
                        scope_permissions_name(*sp)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            let body = if principal_at.contains(at) {
                "principalPolicy"
            } else {
                "resourcePolicy"
            };
            sink.at(
                *at,
                &YPath::default().k(body),
                ProblemKind::ScopePermissionsConflict,
                format!("policies in scope `{scope}` disagree on scopePermissions: {list}"),
            );
        }
    }
    set
}

pub(super) fn scope_label(scope: &str) -> String {
    if scope.is_empty() {
        "the root scope".to_string()
    } else {
        format!("scope `{scope}`")
    }
}

pub(super) fn scope_permissions_name(sp: ScopePermissions) -> &'static str {
    match sp {
        ScopePermissions::OverrideParent => "SCOPE_PERMISSIONS_OVERRIDE_PARENT",
        ScopePermissions::RequireParentalConsentForAllows => {
            "SCOPE_PERMISSIONS_REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_and_order() {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        g.insert("a".into(), ["b".to_string()].into());
        g.insert("b".into(), ["a".to_string()].into());
        g.insert("c".into(), BTreeSet::new());
        g.insert("d".into(), ["c".to_string()].into());
        assert_eq!(cycles(&g), vec![vec!["a".to_string(), "b".to_string()]]);
        assert_eq!(topo_order(&g), vec!["c", "d"]);
    }
}
