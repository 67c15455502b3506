//! Random Cerbos policy sets with principals and resources to match, for the differential
//! tests against the real PDP and for vecgate's own plan-vs-check property tests.
//!
//! A set holds, each with some probability: a resource policy for kind `doc` at the root scope
//! (ALLOW and DENY rules over roles, `*` and derived roles, with and without conditions),
//! scoped resource policies in `a` and `a.b` (each scope `OVERRIDE_PARENT` or
//! `REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS`), imported derived roles, exported and local variables
//! and constants, principal policies for `zed` and `amy` (ALLOW and DENY, with and without
//! conditions, for actions, `*` and `view:*`, at the root and in scope `a`), and a role policy
//! for `auditor` in scope `a`. Conditions are `expr` leaves under `all`/`any`/`none`, drawn
//! from CEL operators and Cerbos functions both engines implement; attributes are sometimes
//! missing or of another type, so conditions error on some records.
//!
//! Everything is derived from one seed, so a run is reproduced by its seed.

use serde_json::{json, Value as Json};
use std::fmt::Write as _;

/// A small deterministic generator (SplitMix64); test data only.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// True with probability `percent` in 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A non-empty random subset, in the original order.
    pub fn subset<T: Clone>(&mut self, items: &[T]) -> Vec<T> {
        loop {
            let out: Vec<T> = items.iter().filter(|_| self.chance(40)).cloned().collect();
            if !out.is_empty() {
                return out;
            }
        }
    }
}

/// The actions every set is asked about.
pub const ACTIONS: [&str; 6] = ["read", "update", "delete", "create", "view:public", "archive"];
pub const ROLES: [&str; 4] = ["user", "admin", "auditor", "guest"];
pub const PRINCIPAL_IDS: [&str; 5] = ["zed", "amy", "bob", "alice", "ann"];
/// Resource scopes asked about (`a.b.c` has no policy: only a lenient search finds `a.b`).
pub const SCOPES: [&str; 4] = ["", "a", "a.b", "a.b.c"];
/// Globals every PDP of the differential runs with.
pub fn globals() -> Json {
    json!({"env": "test", "maxLevel": 3})
}

/// One generated policy set with the principals and resources to ask about.
#[derive(Clone, Debug)]
pub struct GeneratedSet {
    pub seed: u64,
    /// `(file name, YAML)`.
    pub files: Vec<(String, String)>,
    /// Cerbos principals: `{id, roles, attr, scope?}`.
    pub principals: Vec<Json>,
    /// Cerbos resources: `{kind, id, attr, scope?}`.
    pub resources: Vec<Json>,
    pub actions: Vec<String>,
}

impl GeneratedSet {
    /// Everything needed to reproduce one decision by hand.
    pub fn describe(&self, principal: &Json, resource: &Json) -> String {
        let mut out = format!("policy set of seed {}:\n", self.seed);
        for (name, text) in &self.files {
            let _ = writeln!(out, "--- {name}\n{text}");
        }
        let _ = writeln!(out, "--- principal: {principal}\n--- resource: {resource}");
        out
    }
}

struct Gen {
    rng: Rng,
    /// Names of exported variables and constants, derived roles, local variables.
    derived_roles: Vec<String>,
    local_variables: Vec<String>,
    has_exports: bool,
    /// `runtime.effectiveDerivedRoles` may be read (resource policy rules only).
    runtime_allowed: bool,
}

pub fn generate(seed: u64, principals: usize, resources: usize) -> GeneratedSet {
    let mut g = Gen {
        rng: Rng::new(seed),
        derived_roles: Vec::new(),
        local_variables: Vec::new(),
        has_exports: false,
        runtime_allowed: false,
    };
    let mut files = Vec::new();
    g.has_exports = g.rng.chance(70);
    if g.has_exports {
        files.push((
            "export_variables.yaml".to_string(),
            "apiVersion: api.cerbos.dev/v1\nexportVariables:\n  name: shared_vars\n  definitions:\n    is_owner: R.attr.owner == P.id\n    high_level: R.attr.level > 2\n    same_dept: R.attr.department == P.attr.department\n".to_string(),
        ));
        files.push((
            "export_constants.yaml".to_string(),
            "apiVersion: api.cerbos.dev/v1\nexportConstants:\n  name: shared_consts\n  definitions:\n    secret_word: secret\n    teams: [hr, eng]\n".to_string(),
        ));
    }
    if g.rng.chance(75) {
        files.push(("derived_roles.yaml".to_string(), g.derived_roles_file()));
    }
    // Scope permissions, one per scope for every kind of policy there.
    // Cerbos counts a role policy's scopePermissions as unset, and refuses a scope where the
    // policies after the first name different values: a role policy in `a` goes with the
    // resource policy there only.
    let role_in_a = g.rng.chance(50);
    let rpc_a = g.rng.chance(35);
    let rpc_ab = g.rng.chance(35);
    let perms = |rpc: bool| {
        if rpc {
            "SCOPE_PERMISSIONS_REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS"
        } else {
            "SCOPE_PERMISSIONS_OVERRIDE_PARENT"
        }
    };
    let root_resource = g.rng.chance(90);
    if root_resource {
        let text = g.resource_policy("", None);
        files.push(("resource_doc.yaml".to_string(), text));
    }
    let scoped_a = root_resource && g.rng.chance(45);
    if scoped_a {
        let text = g.resource_policy("a", Some(perms(rpc_a)));
        files.push(("resource_doc_a.yaml".to_string(), text));
        if g.rng.chance(50) {
            let text = g.resource_policy("a.b", Some(perms(rpc_ab)));
            files.push(("resource_doc_a_b.yaml".to_string(), text));
        }
        if role_in_a {
            files.push(("role_auditor_a.yaml".to_string(), g.role_policy("a")));
        }
    }
    for id in ["zed", "amy"] {
        if g.rng.chance(60) {
            let root = g.principal_policy(id, "", None);
            files.push((format!("principal_{id}.yaml"), root));
            if !(scoped_a && role_in_a) && g.rng.chance(35) {
                let scoped = g.principal_policy(id, "a", Some(perms(rpc_a)));
                files.push((format!("principal_{id}_a.yaml"), scoped));
            }
        }
    }
    // A scope `a` principal policy needs consistent permissions with a scope `a` resource
    // policy, which `perms(rpc_a)` gives both.
    let principals = (0..principals).map(|i| g.principal(i)).collect();
    let resources = (0..resources).map(|i| g.resource(i)).collect();
    GeneratedSet {
        seed,
        files,
        principals,
        resources,
        actions: ACTIONS.iter().map(|a| a.to_string()).collect(),
    }
}

impl Gen {
    fn derived_roles_file(&mut self) -> String {
        let mut out = String::from(
            "apiVersion: api.cerbos.dev/v1\nderivedRoles:\n  name: common_roles\n",
        );
        if self.rng.chance(40) {
            out.push_str("  variables:\n    local:\n      mine: R.attr.owner == P.id\n");
        }
        out.push_str("  definitions:\n");
        let candidates: [(&str, &str, Option<&str>); 4] = [
            ("owner", "[user]", Some("R.attr.owner == P.id")),
            ("dept_member", "[user, admin]", Some("R.attr.department == P.attr.department")),
            ("everyone", "[\"*\"]", None),
            ("senior", "[user, auditor]", Some("P.attr.level >= 3")),
        ];
        for (name, parents, cond) in candidates {
            if !self.rng.chance(70) {
                continue;
            }
            self.derived_roles.push(name.to_string());
            let _ = writeln!(out, "    - name: {name}\n      parentRoles: {parents}");
            let cond = match (name, cond) {
                ("owner", _) if out.contains("mine:") && self.rng.chance(50) => Some("V.mine"),
                (_, c) => c,
            };
            if let Some(c) = cond {
                if self.rng.chance(80) {
                    let _ = writeln!(out, "      condition:\n        match:\n          expr: {}", quote(c));
                } else {
                    let leaf = self.atom();
                    let _ = writeln!(
                        out,
                        "      condition:\n        match:\n          any:\n            of:\n              - expr: {}\n              - expr: {}",
                        quote(c),
                        quote(&leaf)
                    );
                }
            }
        }
        if self.derived_roles.is_empty() {
            self.derived_roles.push("everyone".into());
            out.push_str("    - name: everyone\n      parentRoles: [\"*\"]\n");
        }
        out
    }

    fn resource_policy(&mut self, scope: &str, perms: Option<&str>) -> String {
        let mut out = String::from("apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: doc\n  version: default\n");
        if !scope.is_empty() {
            let _ = writeln!(out, "  scope: {scope}");
        }
        if let Some(p) = perms {
            let _ = writeln!(out, "  scopePermissions: {p}");
        }
        if !self.derived_roles.is_empty() && self.rng.chance(80) {
            out.push_str("  importDerivedRoles: [common_roles]\n");
        }
        let uses_derived = out.contains("importDerivedRoles");
        self.local_variables.clear();
        let mut vars = String::new();
        if self.has_exports && self.rng.chance(60) {
            vars.push_str("    import: [shared_vars]\n");
            self.local_variables.extend(["is_owner", "high_level", "same_dept"].map(String::from));
        }
        if self.rng.chance(50) {
            vars.push_str("    local:\n      is_public: R.attr.c == \"public\"\n      tag_of_team: R.attr.tags.exists(t, t in P.attr.teams)\n");
            self.local_variables.extend(["is_public", "tag_of_team"].map(String::from));
        }
        if !vars.is_empty() {
            let _ = write!(out, "  variables:\n{vars}");
        }
        let mut consts = String::new();
        if self.has_exports && self.rng.chance(60) {
            consts.push_str("    import: [shared_consts]\n");
        } else if self.rng.chance(40) {
            consts.push_str("    local:\n      secret_word: secret\n      teams: [hr, ops]\n");
        }
        let has_consts = !consts.is_empty();
        if has_consts {
            let _ = write!(out, "  constants:\n{consts}");
        }
        out.push_str("  rules:\n");
        self.runtime_allowed = uses_derived;
        let rules = 2 + self.rng.below(5);
        for i in 0..rules {
            let actions = if self.rng.chance(15) {
                "[\"*\"]".to_string()
            } else if self.rng.chance(10) {
                "[\"view:*\"]".to_string()
            } else {
                list(&self.rng.subset(&ACTIONS))
            };
            let effect = if self.rng.chance(30) { "EFFECT_DENY" } else { "EFFECT_ALLOW" };
            let _ = writeln!(out, "    - name: rule_{i}\n      actions: {actions}\n      effect: {effect}");
            if uses_derived && self.rng.chance(30) {
                let dr = self.rng.pick(&self.derived_roles.clone()).clone();
                let _ = writeln!(out, "      derivedRoles: [{dr}]");
            } else if self.rng.chance(15) {
                out.push_str("      roles: [\"*\"]\n");
            } else {
                let roles = self.rng.subset(&ROLES[..3]);
                let _ = writeln!(out, "      roles: {}", list(&roles));
            }
            if self.rng.chance(75) {
                let cond = self.condition(2, has_consts);
                let _ = write!(out, "      condition:\n        match:\n{}", indent(&cond, 10));
            }
        }
        self.runtime_allowed = false;
        out
    }

    fn principal_policy(&mut self, id: &str, scope: &str, perms: Option<&str>) -> String {
        let mut out = format!(
            "apiVersion: api.cerbos.dev/v1\nprincipalPolicy:\n  principal: {id}\n  version: default\n"
        );
        if !scope.is_empty() {
            let _ = writeln!(out, "  scope: {scope}");
        }
        if let Some(p) = perms {
            let _ = writeln!(out, "  scopePermissions: {p}");
        }
        self.local_variables.clear();
        if self.rng.chance(30) {
            out.push_str("  variables:\n    local:\n      flagged: R.attr.flag == true\n");
            self.local_variables.push("flagged".into());
        }
        let resource = if self.rng.chance(20) { "\"*\"" } else { "doc" };
        let _ = writeln!(out, "  rules:\n    - resource: {resource}\n      actions:");
        let n = 1 + self.rng.below(3);
        for i in 0..n {
            let action = match self.rng.below(6) {
                0 => "\"*\"",
                1 => "\"view:*\"",
                _ => self.rng.pick(&ACTIONS),
            };
            let effect = if self.rng.chance(55) { "EFFECT_DENY" } else { "EFFECT_ALLOW" };
            let _ = writeln!(
                out,
                "        - name: p_{i}\n          action: {}\n          effect: {effect}",
                quote(action.trim_matches('"'))
            );
            if self.rng.chance(50) {
                let cond = self.condition(1, false);
                let _ = write!(out, "          condition:\n            match:\n{}", indent(&cond, 14));
            }
        }
        out
    }

    fn role_policy(&mut self, scope: &str) -> String {
        let mut out = format!(
            "apiVersion: api.cerbos.dev/v1\nrolePolicy:\n  role: auditor\n  scope: {scope}\n  parentRoles: [user]\n  rules:\n"
        );
        self.local_variables.clear();
        let n = 1 + self.rng.below(2);
        for _ in 0..n {
            let actions = list(&self.rng.subset(&ACTIONS));
            let _ = writeln!(out, "    - resource: doc\n      allowActions: {actions}");
            if self.rng.chance(50) {
                let cond = self.condition(1, false);
                let _ = write!(out, "      condition:\n        match:\n{}", indent(&cond, 10));
            }
        }
        out
    }

    /// A `match` body (without the `match:` key), depth-limited.
    fn condition(&mut self, depth: usize, constants: bool) -> String {
        if depth == 0 || self.rng.chance(55) {
            let leaf = self.leaf(constants);
            return format!("expr: {}\n", quote(&leaf));
        }
        let op = *self.rng.pick(&["all", "any", "none"]);
        let n = 1 + self.rng.below(3);
        let mut out = format!("{op}:\n  of:\n");
        for _ in 0..n {
            let inner = self.condition(depth - 1, constants);
            let mut lines = inner.lines();
            if let Some(first) = lines.next() {
                let _ = writeln!(out, "    - {first}");
            }
            for l in lines {
                let _ = writeln!(out, "      {l}");
            }
        }
        out
    }

    /// One CEL expression: an atom, sometimes combined with `&&`, `||` or `!` inside.
    fn leaf(&mut self, constants: bool) -> String {
        let a = self.atom_with(constants);
        match self.rng.below(10) {
            0 => format!("({a}) && ({})", self.atom_with(constants)),
            1 => format!("({a}) || ({})", self.atom_with(constants)),
            2 => format!("!({a})"),
            _ => a,
        }
    }

    fn atom(&mut self) -> String {
        self.atom_with(false)
    }

    fn atom_with(&mut self, constants: bool) -> String {
        if !self.local_variables.is_empty() && self.rng.chance(15) {
            return format!("V.{}", self.rng.pick(&self.local_variables.clone()));
        }
        if self.runtime_allowed && !self.derived_roles.is_empty() && self.rng.chance(5) {
            let dr = self.rng.pick(&self.derived_roles.clone()).clone();
            return format!("\"{dr}\" in runtime.effectiveDerivedRoles");
        }
        if constants && self.rng.chance(8) {
            return match self.rng.below(2) {
                0 => "R.attr.c == C.secret_word".into(),
                _ => "R.attr.department in C.teams".into(),
            };
        }
        let n = 1 + self.rng.below(3);
        let tag = *self.rng.pick(&["hr", "eng", "x"]);
        if self.rng.chance(35) {
            return self.more_functions(n);
        }
        match self.rng.below(29) {
            0 => "R.attr.owner == P.id".into(),
            1 => "R.attr.department == P.attr.department".into(),
            2 => format!("R.attr.level > {n}"),
            3 => format!("R.attr.level <= {n}"),
            4 => "R.attr.level >= P.attr.level".into(),
            5 => "R.attr.c == \"secret\"".into(),
            6 => "R.attr.c != \"secret\"".into(),
            7 => format!("\"{tag}\" in R.attr.tags"),
            8 => "R.attr.department in [\"hr\", \"eng\"]".into(),
            9 => "R.attr.flag".into(),
            10 => "R.attr.flag == true".into(),
            11 => "has(R.attr.c)".into(),
            12 => "R.attr.tags.exists(t, t == P.attr.department)".into(),
            13 => "P.attr.teams.exists(t, t == R.attr.department)".into(),
            14 => "size(R.attr.tags) > 1".into(),
            15 => "R.attr.owner.startsWith(\"a\")".into(),
            16 => "hasIntersection(R.attr.tags, P.attr.teams)".into(),
            17 => format!("R.id == \"r{n}\""),
            18 => "G.env == \"test\"".into(),
            19 => "R.attr.level + 1 > G.maxLevel".into(),
            20 => format!("P.attr.level > {n}"),
            21 => "P.attr.department == \"hr\"".into(),
            22 => "R.attr.department in P.attr.teams".into(),
            23 => "R.attr.tags.all(t, t != \"x\")".into(),
            24 => "R.attr.owner == P.id && R.attr.c != \"secret\"".into(),
            25 => "R.attr.nested.k == \"v\"".into(),
            // The request's own scope and version, not the ones policies were found under.
            26 => "P.scope == \"\"".into(),
            27 => "R.policyVersion == \"default\"".into(),
            _ => "R.scope == \"a\"".into(),
        }
    }

    /// Further CEL operators and Cerbos functions both engines implement.
    fn more_functions(&mut self, n: usize) -> String {
        match self.rng.below(24) {
            0 => "R.attr.owner.endsWith(\"e\")".into(),
            1 => "R.attr.department.matches(\"^h\")".into(),
            2 => "R.attr.department.lowerAscii() == \"hr\"".into(),
            3 => "size(R.attr.owner) > 3".into(),
            4 => "size(R.attr.tags.filter(t, t != \"x\")) > 0".into(),
            5 => "R.attr.tags.exists_one(t, t == \"hr\")".into(),
            6 => "isSubset(R.attr.tags, [\"hr\", \"eng\", \"x\"])".into(),
            7 => "size(except(R.attr.tags, P.attr.teams)) == 0".into(),
            8 => "size(intersect(R.attr.tags, [\"hr\"])) > 0".into(),
            9 => format!("R.attr.level == {n}"),
            10 => "R.attr.level in [1, 2]".into(),
            11 => "int(R.attr.level) >= 2".into(),
            12 => "\"k\" in R.attr.nested".into(),
            13 => "R.attr.tags[0] == \"hr\"".into(),
            14 => "(R.attr.level > 2 ? \"hi\" : \"lo\") == \"hi\"".into(),
            15 => "hierarchy(R.attr.path).ancestorOf(hierarchy(\"a.b.c\"))".into(),
            16 => "hierarchy(R.attr.path).siblingOf(hierarchy(\"a.x\"))".into(),
            17 => "timestamp(R.attr.created) > timestamp(\"2024-01-01T00:00:00Z\")".into(),
            18 => "timestamp(R.attr.created).getFullYear() == 2023".into(),
            19 => "P.attr.teams.all(t, t != R.attr.department)".into(),
            20 => "R.attr.level * 2.0 > 3.0".into(),
            21 => "R.attr.tags.map(t, t + \"!\").exists(x, x == \"hr!\")".into(),
            22 => "R.attr.owner in [\"zed\", P.id]".into(),
            _ => "R.attr.department.contains(\"n\")".into(),
        }
    }

    fn principal(&mut self, i: usize) -> Json {
        let id = PRINCIPAL_IDS[i % PRINCIPAL_IDS.len()];
        let mut roles = self.rng.subset(&ROLES);
        // Role order decides under strict evaluation: shuffle it sometimes.
        if roles.len() > 1 && self.rng.chance(50) {
            roles.reverse();
        }
        let mut attr = serde_json::Map::new();
        match self.rng.below(6) {
            0 => {}
            1 => {
                attr.insert("department".into(), json!(7));
            }
            _ => {
                attr.insert("department".into(), json!(self.rng.pick(&["hr", "eng", "ops"])));
            }
        }
        match self.rng.below(6) {
            0 => {}
            1 => {
                attr.insert("level".into(), json!("3"));
            }
            _ => {
                attr.insert("level".into(), json!(1 + self.rng.below(4)));
            }
        }
        match self.rng.below(6) {
            0 => {}
            1 => {
                attr.insert("teams".into(), json!("hr"));
            }
            _ => {
                let teams = self.rng.subset(&["hr", "eng", "ops", "x"]);
                attr.insert("teams".into(), json!(teams));
            }
        }
        let mut p = json!({"id": id, "roles": roles, "attr": attr});
        if self.rng.chance(25) {
            p["scope"] = json!(self.rng.pick(&["a", "a.b"]));
        }
        p
    }

    fn resource(&mut self, i: usize) -> Json {
        let mut attr = serde_json::Map::new();
        let owner = match self.rng.below(8) {
            0 => None,
            1 => Some(json!(42)),
            _ => Some(json!(self.rng.pick(&PRINCIPAL_IDS))),
        };
        if let Some(o) = owner {
            attr.insert("owner".into(), o);
        }
        match self.rng.below(7) {
            0 => {}
            1 => {
                attr.insert("department".into(), json!(3));
            }
            _ => {
                attr.insert("department".into(), json!(self.rng.pick(&["hr", "eng", "ops"])));
            }
        }
        match self.rng.below(8) {
            0 => {}
            1 => {
                attr.insert("level".into(), json!("2"));
            }
            2 => {
                attr.insert("level".into(), json!(2.5));
            }
            _ => {
                attr.insert("level".into(), json!(self.rng.below(5)));
            }
        }
        match self.rng.below(7) {
            0 => {}
            1 => {
                attr.insert("tags".into(), json!("hr"));
            }
            2 => {
                attr.insert("tags".into(), json!([]));
            }
            _ => {
                let tags = self.rng.subset(&["hr", "eng", "x", "ops"]);
                attr.insert("tags".into(), json!(tags));
            }
        }
        match self.rng.below(5) {
            0 => {}
            1 => {
                attr.insert("flag".into(), json!("yes"));
            }
            _ => {
                attr.insert("flag".into(), json!(self.rng.chance(50)));
            }
        }
        match self.rng.below(5) {
            0 | 1 => {}
            2 => {
                attr.insert("c".into(), json!(1));
            }
            _ => {
                attr.insert("c".into(), json!(self.rng.pick(&["secret", "public", "x"])));
            }
        }
        match self.rng.below(4) {
            0 => {}
            1 => {
                attr.insert("path".into(), json!(self.rng.pick(&["a", "a.b", "a.x", "b"])));
            }
            2 => {
                attr.insert("path".into(), json!(7));
            }
            _ => {
                attr.insert("path".into(), json!("a.b.c.d"));
            }
        }
        match self.rng.below(4) {
            0 => {}
            1 => {
                attr.insert("created".into(), json!(20230101));
            }
            _ => {
                attr.insert(
                    "created".into(),
                    json!(self.rng.pick(&["2023-06-01T00:00:00Z", "2024-06-01T12:00:00+02:00", "not a time"])),
                );
            }
        }
        match self.rng.below(4) {
            0 => {
                attr.insert("nested".into(), json!({"k": self.rng.pick(&["v", "w"])}));
            }
            1 => {
                attr.insert("nested".into(), json!("v"));
            }
            _ => {}
        }
        json!({
            "kind": "doc",
            "id": format!("r{i}"),
            "attr": attr,
            "scope": self.rng.pick(&SCOPES),
        })
    }
}

/// A YAML flow list of plain words.
fn list<T: AsRef<str>>(items: &[T]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s.as_ref())).collect();
    format!("[{}]", quoted.join(", "))
}

/// A YAML double-quoted scalar.
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn indent(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    text.lines().map(|l| format!("{pad}{l}\n")).collect()
}

/// A generated resource's or principal's `attr` object as the engine's attributes (JSON
/// numbers as doubles, as `Value::from_json` reads them).
pub fn attr_map(v: &Json) -> std::collections::BTreeMap<String, vecgate::plan::Value> {
    v.as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), vecgate::plan::Value::from_json(v))).collect())
        .unwrap_or_default()
}

/// A generated principal (`{"id", "roles", "attr", "scope"}`) as the engine's principal.
pub fn principal_from_json(p: &Json) -> vecgate::policy::planner::Principal {
    vecgate::policy::planner::Principal {
        id: p["id"].as_str().unwrap().to_string(),
        roles: p["roles"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect(),
        attr: attr_map(&p["attr"]),
        scope: p["scope"].as_str().unwrap_or("").to_string(),
        policy_version: String::new(),
    }
}
