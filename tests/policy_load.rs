//! Policy loading: the Cerbos conformance policies, a small good set, and broken sets.
//! Assertions are on problem kinds, files and positions, never on message text.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use vecgate::policy::load::{load_dir, load_documents, LoadErrors, ProblemKind};
use vecgate::policy::model::{Condition, Effect, PolicySet, ScopePermissions};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn fixture(name: &str) -> PathBuf {
    root().join("fixtures/policies").join(name)
}

fn load_ok(dir: &Path) -> PolicySet {
    match load_dir(dir) {
        Ok(set) => set,
        Err(e) => panic!("{} should load:\n{e}", dir.display()),
    }
}

fn load_err(dir: &Path) -> LoadErrors {
    match load_dir(dir) {
        Ok(_) => panic!("{} should not load", dir.display()),
        Err(e) => e,
    }
}

fn docs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect()
}

fn mem_err(items: &[(&str, &str)]) -> LoadErrors {
    match load_documents(&docs(items)) {
        Ok(_) => panic!("documents should not load"),
        Err(e) => e,
    }
}

fn mem_ok(items: &[(&str, &str)]) -> PolicySet {
    match load_documents(&docs(items)) {
        Ok(set) => set,
        Err(e) => panic!("documents should load:\n{e}"),
    }
}

/// A resource policy with one rule; `extra` is spliced into the policy body.
fn resource(name: &str, extra: &str, condition: &str) -> String {
    format!(
        "apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: {name}\n  version: default\n{extra}  rules:\n    - actions: [view]\n      effect: EFFECT_ALLOW\n      roles: [user]\n      condition:\n        match:\n          expr: {condition}\n"
    )
}

// ---------------------------------------------------------------------------------------------
// Cerbos conformance policies
// ---------------------------------------------------------------------------------------------

fn conformance() -> PolicySet {
    load_ok(&root().join("conformance/cerbos/policies"))
}

#[test]
fn conformance_policies_all_load() {
    let set = conformance();
    // 39 files (24 resource, 6 derived-role, 3 principal, 6 role policies); the upstream
    // README says 37.
    assert_eq!(set.file_count, 39);
    assert_eq!(set.resource_policies.len(), 24);
    assert_eq!(set.principal_policies.len(), 3);
    assert_eq!(set.role_policies.len(), 6);
}

#[test]
fn conformance_leave_request_compiles_variables_constants_and_derived_roles() {
    let set = conformance();
    let p = set
        .resource_policies
        .iter()
        .find(|p| p.resource == "leave_request")
        .unwrap();
    assert_eq!(p.file, "resource_policies/leave_request.yaml");
    assert_eq!(p.version, "default");
    assert_eq!(p.scope, "");
    assert_eq!(p.rules.len(), 37);
    let d = &p.definitions;
    assert_eq!(
        d.variables.keys().collect::<Vec<_>>(),
        ["is_owner", "principal_id", "resource_owner"]
    );
    // Dependencies come first.
    assert_eq!(
        d.variable_order,
        ["principal_id", "resource_owner", "is_owner"]
    );
    assert_eq!(
        d.variables["is_owner"].debug_string(),
        "(eq variables.resource_owner variables.principal_id)"
    );
    // Constants are `google.protobuf.Value`s in Cerbos: numbers are doubles.
    assert_eq!(d.constants["one"].to_json(), serde_json::json!(1.0));

    let names: Vec<_> = p.derived_roles.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["any_employee", "direct_manager", "owner"]);
    let manager = &p.derived_roles[1];
    assert_eq!(manager.parent_roles, ["manager"]);
    // The derived role keeps its own file's (deprecated top-level) variables.
    assert!(manager.definitions.variables.contains_key("same_geography"));
    assert!(matches!(&manager.condition, Some(Condition::Any(items)) if items.len() == 2));
    assert!(p.derived_roles[0].condition.is_none());

    let first = &p.rules[0];
    assert_eq!(first.actions, ["*"]);
    assert_eq!(first.roles, ["admin"]);
    assert_eq!(first.effect, Effect::Allow);
    assert!(first.condition.is_none());

    let none_rule = p
        .rules
        .iter()
        .find(|r| r.actions == ["enlist:none-condition"])
        .unwrap();
    assert!(matches!(&none_rule.condition, Some(Condition::None(items)) if items.len() == 2));

    let jwt = p
        .rules
        .iter()
        .find(|r| r.actions == ["approve:with-jwt"])
        .unwrap();
    let Some(Condition::All(items)) = &jwt.condition else {
        panic!("expected all.of");
    };
    let Condition::Expr { expr, source } = &items[0] else {
        panic!("expected expr");
    };
    assert_eq!(source, "R.attr.groupID == request.aux_data.jwt.customInt");
    assert_eq!(
        expr.debug_string(),
        "(eq request.resource.attr.groupID request.auxData.jwt.customInt)"
    );
}

#[test]
fn conformance_unreferenced_derived_roles_are_left_out() {
    let set = conformance();
    let p = set
        .resource_policies
        .iter()
        .find(|p| p.resource == "runtime_effective_derived_roles")
        .unwrap();
    let names: Vec<_> = p.derived_roles.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["not_activated", "one", "three", "two"]);
    assert!(p.derived_roles[0]
        .definitions
        .variables
        .contains_key("tautology"));
    assert_eq!(
        p.definitions.variable_order.last().map(String::as_str),
        Some("one_two_three")
    );
}

#[test]
fn conformance_scopes_principal_and_role_policies() {
    let set = conformance();
    let uk = set
        .resource_policies
        .iter()
        .find(|p| p.resource == "x" && p.scope == "acme.hr.uk")
        .unwrap();
    assert_eq!(
        uk.scope_permissions,
        ScopePermissions::RequireParentalConsentForAllows
    );
    let base = set
        .resource_policies
        .iter()
        .find(|p| p.resource == "x" && p.scope.is_empty())
        .unwrap();
    assert_eq!(base.scope_permissions, ScopePermissions::OverrideParent);
    assert_eq!(
        set.resource_policies
            .iter()
            .filter(|p| p.resource == "additive" && p.version == "2025_11")
            .count(),
        3
    );

    let donald = set
        .principal_policies
        .iter()
        .find(|p| p.principal == "donald_duck")
        .unwrap();
    assert_eq!(donald.rules.len(), 3);
    assert!(donald.definitions.variables.contains_key("is_dev_record"));
    let leave = &donald.rules[1];
    assert_eq!(leave.resource, "leave_request");
    assert_eq!(leave.actions.len(), 2);
    assert_eq!(leave.actions[0].name.as_deref(), Some("dev_admin"));
    assert_eq!(leave.actions[1].effect, Effect::Deny);

    let macro_user = set
        .principal_policies
        .iter()
        .find(|p| p.principal == "macro_user")
        .unwrap();
    assert_eq!(macro_user.rules[0].actions.len(), 12);

    let bookkeeper = set
        .role_policies
        .iter()
        .find(|p| p.role == "bookkeeper")
        .unwrap();
    assert_eq!(bookkeeper.scope, "acme.finance");
    assert_eq!(bookkeeper.version, "default");
    assert_eq!(bookkeeper.parent_roles, ["manager"]);
    assert_eq!(bookkeeper.rules[0].allow_actions, ["comment", "create"]);
    let superapprover = set
        .role_policies
        .iter()
        .find(|p| p.role == "SUPERAPPROVER")
        .unwrap();
    assert!(superapprover.rules[0].condition.is_some());
}

// ---------------------------------------------------------------------------------------------
// A small good set
// ---------------------------------------------------------------------------------------------

#[test]
fn good_set_loads_with_imports_anchors_json_and_several_documents() {
    let set = load_ok(&fixture("good"));
    // variables, constants, owners, document, document_acme, document_acme_hr.json,
    // multi.yaml (two documents), disabled.yaml. Test suites, testdata/ and hidden entries
    // are skipped.
    assert_eq!(set.file_count, 8);
    assert_eq!(set.resource_policies.len(), 3);
    assert_eq!(set.principal_policies.len(), 1);
    assert_eq!(set.role_policies.len(), 1);
    // `schemas` is accepted and ignored, with a warning.
    assert!(set.warnings.iter().any(|w| w.contains("document.yaml")));

    let doc = set
        .resource_policies
        .iter()
        .find(|p| p.scope.is_empty())
        .unwrap();
    assert_eq!(doc.file, "resource/document.yaml");
    let d = &doc.definitions;
    assert_eq!(
        d.variables.keys().collect::<Vec<_>>(),
        ["is_owner", "is_public", "same_team", "visible"]
    );
    assert_eq!(
        d.constants.keys().collect::<Vec<_>>(),
        ["label", "limits", "max_amount", "regions"]
    );
    let visible = d
        .variable_order
        .iter()
        .position(|v| v == "visible")
        .unwrap();
    let public = d
        .variable_order
        .iter()
        .position(|v| v == "is_public")
        .unwrap();
    assert!(public < visible);

    // The merge key copied `effect` from the anchored rule; local keys won.
    assert_eq!(doc.rules.len(), 3);
    let edit = &doc.rules[1];
    assert_eq!(edit.name.as_deref(), Some("edit-owned"));
    assert_eq!(edit.actions, ["edit"]);
    assert_eq!(edit.effect, Effect::Allow);
    assert!(edit.roles.is_empty());
    assert_eq!(edit.derived_roles, ["owner"]);
    assert_eq!(doc.rules[2].effect, Effect::Deny);

    // Only the referenced derived role, with its own file's variables and constants.
    assert_eq!(doc.derived_roles.len(), 1);
    let owner = &doc.derived_roles[0];
    assert_eq!(owner.name, "owner");
    assert!(owner.definitions.variables.contains_key("in_region"));
    assert!(owner.definitions.variables.contains_key("is_owner"));
    assert!(owner.definitions.constants.contains_key("regions"));

    let hr = set
        .resource_policies
        .iter()
        .find(|p| p.scope == "acme.hr")
        .unwrap();
    assert_eq!(hr.file, "resource/document_acme_hr.json");
    assert_eq!(hr.rules[0].effect, Effect::Deny);

    let alice = &set.principal_policies[0];
    assert_eq!(alice.file, "multi.yaml");
    assert!(alice.definitions.variables.contains_key("is_draft"));
    let reviewer = &set.role_policies[0];
    assert_eq!(reviewer.file, "multi.yaml");
    assert_eq!(reviewer.version, "default");
}

#[cfg(unix)]
#[test]
fn configmap_mount_loads_each_policy_once() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("..2024_01_16_10_18_27.123456789");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("a.yaml"), resource("a", "", "R.attr.x")).unwrap();
    std::fs::write(data.join("sub/b.yaml"), resource("b", "", "R.attr.x")).unwrap();
    symlink("..2024_01_16_10_18_27.123456789", dir.path().join("..data")).unwrap();
    symlink("..data/a.yaml", dir.path().join("a.yaml")).unwrap();
    symlink("..data/sub", dir.path().join("sub")).unwrap();
    // A second link to the same file is not a second policy.
    symlink("..data/a.yaml", dir.path().join("again.yaml")).unwrap();

    let set = load_ok(dir.path());
    assert_eq!(set.file_count, 2);
    let mut names: Vec<_> = set
        .resource_policies
        .iter()
        .map(|p| (p.resource.as_str(), p.file.as_str()))
        .collect();
    names.sort();
    assert_eq!(names, [("a", "a.yaml"), ("b", "sub/b.yaml")]);
}

#[test]
fn missing_directory_is_an_io_problem() {
    let e = load_err(&fixture("no-such-directory"));
    assert_eq!(e.kinds(), [ProblemKind::Io]);
}

// ---------------------------------------------------------------------------------------------
// Broken sets (fixtures)
// ---------------------------------------------------------------------------------------------

fn assert_only(e: &LoadErrors, kind: ProblemKind, file: &str) {
    assert!(
        e.problems.iter().all(|p| p.kind == kind && p.file == file),
        "expected only {kind:?} in {file}, got:\n{e}"
    );
    assert!(!e.problems.is_empty());
}

#[test]
fn bad_yaml_reports_a_position() {
    let e = load_err(&fixture("broken/bad_yaml"));
    assert_only(&e, ProblemKind::Syntax, "policy.yaml");
    assert_eq!(e.problems.len(), 1);
    // The flow sequence opened on line 6 is never closed; libyaml notices on line 7.
    assert_eq!(e.problems[0].line, Some(7));
    assert!(e.problems[0].column.is_some());
}

#[test]
fn bad_cel_is_reported_at_the_expression() {
    let e = load_err(&fixture("broken/bad_cel"));
    assert_only(&e, ProblemKind::Cel, "policy.yaml");
    assert_eq!(e.problems[0].line, Some(11));
}

#[test]
fn unknown_key_reports_its_line() {
    let e = load_err(&fixture("broken/unknown_key"));
    assert_only(&e, ProblemKind::UnknownField, "policy.yaml");
    assert_eq!(e.problems[0].line, Some(9));
}

#[test]
fn duplicate_key_reports_the_second_occurrence() {
    let e = load_err(&fixture("broken/duplicate_key"));
    assert_only(&e, ProblemKind::DuplicateKey, "policy.yaml");
    assert_eq!(e.problems[0].line, Some(5));
}

#[test]
fn duplicate_policy_names_both_files() {
    let e = load_err(&fixture("broken/duplicate_policy"));
    assert_eq!(e.kinds(), [ProblemKind::DuplicatePolicy]);
    assert_eq!(e.problems[0].file, "b.yaml");
    assert!(e.problems[0].reason.contains("a.yaml"));
}

#[test]
fn missing_derived_role_import() {
    let e = load_err(&fixture("broken/missing_import"));
    // The unknown role is not reported again: the import already is.
    assert_eq!(e.kinds(), [ProblemKind::MissingImport]);
    assert_eq!(e.problems[0].line, Some(5));
}

#[test]
fn undefined_variable() {
    let e = load_err(&fixture("broken/undefined_variable"));
    assert_eq!(e.kinds(), [ProblemKind::UndefinedVariable]);
    assert_eq!(e.problems[0].line, Some(14));
}

#[test]
fn variable_cycle() {
    let e = load_err(&fixture("broken/variable_cycle"));
    assert_eq!(e.kinds(), [ProblemKind::VariableCycle]);
}

#[test]
fn wrong_api_version() {
    let e = load_err(&fixture("broken/wrong_api_version"));
    assert_eq!(e.kinds(), [ProblemKind::ApiVersion]);
    assert_eq!(e.problems[0].line, Some(1));
}

#[test]
fn two_broken_files_are_both_reported() {
    let e = load_err(&fixture("broken/two_broken"));
    let mut got: Vec<_> = e
        .problems
        .iter()
        .map(|p| (p.file.as_str(), p.kind))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("a.yaml", ProblemKind::Cel),
            ("b.yaml", ProblemKind::UnknownField)
        ]
    );
    // Display lists every problem, one per line.
    assert_eq!(e.to_string().lines().count(), 2);
}

#[test]
fn one_broken_file_fails_the_whole_set() {
    let e = load_err(&fixture("broken/one_good_one_broken"));
    assert_only(&e, ProblemKind::ApiVersion, "broken.yaml");
}

// ---------------------------------------------------------------------------------------------
// More rules, in memory
// ---------------------------------------------------------------------------------------------

const DERIVED: &str = "apiVersion: api.cerbos.dev/v1
derivedRoles:
  name: roles_a
  definitions:
    - name: owner
      parentRoles: [user]
      condition:
        match:
          expr: R.attr.owner == P.id
";

#[test]
fn load_documents_accepts_an_in_memory_set() {
    let set = mem_ok(&[
        ("d.yaml", DERIVED),
        (
            "r.yaml",
            "apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: doc
  version: default
  importDerivedRoles: [roles_a]
  rules:
    - actions: [view]
      effect: EFFECT_ALLOW
      derivedRoles: [owner]
",
        ),
    ]);
    assert_eq!(set.file_count, 2);
    assert_eq!(set.resource_policies[0].derived_roles[0].name, "owner");
}

#[test]
fn rule_referencing_a_derived_role_that_is_not_imported() {
    let e = mem_err(&[
        ("d.yaml", DERIVED),
        (
            "r.yaml",
            "apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: doc
  version: default
  importDerivedRoles: [roles_a]
  rules:
    - actions: [view]
      effect: EFFECT_ALLOW
      derivedRoles: [admin]
",
        ),
    ]);
    assert_eq!(e.kinds(), [ProblemKind::UndefinedDerivedRole]);
    assert_eq!(e.problems[0].line, Some(9));
}

#[test]
fn derived_role_defined_by_two_imports() {
    let other = DERIVED.replace("roles_a", "roles_b");
    let policy = "apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: doc
  version: default
  importDerivedRoles: [roles_a, roles_b]
  rules:
    - actions: [view]
      effect: EFFECT_ALLOW
      derivedRoles: [owner]
";
    let e = mem_err(&[("a.yaml", DERIVED), ("b.yaml", &other), ("r.yaml", policy)]);
    assert_eq!(e.kinds(), [ProblemKind::AmbiguousDerivedRole]);
    // Unreferenced, the clash is only a warning (as in Cerbos).
    let unreferenced = policy.replace("derivedRoles: [owner]", "roles: [user]");
    let set = mem_ok(&[
        ("a.yaml", DERIVED),
        ("b.yaml", &other),
        ("r.yaml", &unreferenced),
    ]);
    assert_eq!(set.warnings.len(), 1);
}

#[test]
fn duplicate_derived_roles_and_export_names() {
    let e = mem_err(&[("a.yaml", DERIVED), ("b.yaml", DERIVED)]);
    assert_eq!(e.kinds(), [ProblemKind::DuplicatePolicy]);
    let ev = "apiVersion: api.cerbos.dev/v1\nexportVariables:\n  name: v\n  definitions:\n    x: \"1\"\n";
    let e = mem_err(&[("a.yaml", ev), ("b.yaml", ev)]);
    assert_eq!(e.kinds(), [ProblemKind::DuplicatePolicy]);
}

#[test]
fn variable_defined_twice_across_import_local_and_top_level() {
    let ev = "apiVersion: api.cerbos.dev/v1\nexportVariables:\n  name: common\n  definitions:\n    x: R.attr.a\n";
    let imported = resource(
        "doc",
        "  variables:\n    import: [common]\n    local:\n      x: R.attr.b\n",
        "V.x",
    );
    let e = mem_err(&[("v.yaml", ev), ("r.yaml", &imported)]);
    assert_eq!(e.kinds(), [ProblemKind::DuplicateDefinition]);

    let top = format!(
        "variables:\n  x: R.attr.c\n{}",
        resource(
            "doc",
            "  variables:\n    local:\n      x: R.attr.b\n",
            "V.x"
        )
    );
    let e = mem_err(&[("r.yaml", &top)]);
    assert_eq!(e.kinds(), [ProblemKind::DuplicateDefinition]);
}

#[test]
fn constants_are_imported_checked_and_converted() {
    let ec = "apiVersion: api.cerbos.dev/v1\nexportConstants:\n  name: c\n  definitions:\n    limit: 10\n    tags: [a, b]\n";
    let ok = resource(
        "doc",
        "  constants:\n    import: [c]\n    local:\n      nested: {k: [1, 2.5, true, null]}\n",
        "R.attr.n < C.limit && C.nested.k[0] == 1",
    );
    let set = mem_ok(&[("c.yaml", ec), ("r.yaml", &ok)]);
    let consts = &set.resource_policies[0].definitions.constants;
    assert_eq!(consts["limit"].to_json(), serde_json::json!(10.0));
    assert_eq!(consts["tags"].to_json(), serde_json::json!(["a", "b"]));
    assert_eq!(
        consts["nested"].to_json(),
        serde_json::json!({"k": [1.0, 2.5, true, null]})
    );

    let undefined = resource("doc", "", "R.attr.n < constants.limit");
    let e = mem_err(&[("r.yaml", &undefined)]);
    assert_eq!(e.kinds(), [ProblemKind::UndefinedConstant]);

    let twice = resource(
        "doc",
        "  constants:\n    import: [c]\n    local:\n      limit: 5\n",
        "true",
    );
    let e = mem_err(&[("c.yaml", ec), ("r.yaml", &twice)]);
    assert_eq!(e.kinds(), [ProblemKind::DuplicateDefinition]);

    let missing = resource("doc", "  constants:\n    import: [nope]\n", "true");
    let e = mem_err(&[("r.yaml", &missing)]);
    assert_eq!(e.kinds(), [ProblemKind::MissingImport]);
}

#[test]
fn variables_referencing_undefined_names_and_themselves() {
    let p = resource(
        "doc",
        "  variables:\n    local:\n      a: V.missing\n      b: V.b\n      c: C.nothing\n",
        "V.a",
    );
    let mut kinds = mem_err(&[("r.yaml", &p)]).kinds();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            ProblemKind::UndefinedVariable,
            ProblemKind::UndefinedConstant,
            ProblemKind::VariableCycle
        ]
    );
}

#[test]
fn scoped_policy_needs_its_parent_chain() {
    let base = resource("doc", "", "true");
    let leaf = resource("doc", "  scope: a.b\n", "true");
    let e = mem_err(&[("base.yaml", &base), ("leaf.yaml", &leaf)]);
    assert_eq!(e.kinds(), [ProblemKind::MissingAncestor]);
    assert_eq!(e.problems[0].file, "leaf.yaml");

    let mid = resource("doc", "  scope: a\n", "true");
    mem_ok(&[
        ("base.yaml", &base),
        ("mid.yaml", &mid),
        ("leaf.yaml", &leaf),
    ]);

    // Without the base policy, both `a` and the root are missing for the leaf.
    let e = mem_err(&[("leaf.yaml", &leaf)]);
    assert_eq!(
        e.kinds(),
        [ProblemKind::MissingAncestor, ProblemKind::MissingAncestor]
    );
}

#[test]
fn principal_scopes_need_parents_but_role_policies_do_not() {
    let principal = "apiVersion: api.cerbos.dev/v1
principalPolicy:
  principal: alice
  version: default
  scope: acme
  rules:
    - resource: doc
      actions:
        - action: view
          effect: EFFECT_ALLOW
";
    let e = mem_err(&[("p.yaml", principal)]);
    assert_eq!(e.kinds(), [ProblemKind::MissingAncestor]);

    let role = "apiVersion: api.cerbos.dev/v1
rolePolicy:
  role: auditor
  scope: acme.finance
  parentRoles: [user]
  rules:
    - resource: doc
      allowActions: [view]
";
    mem_ok(&[("r.yaml", role)]);
}

#[test]
fn scope_permissions_must_agree_within_a_scope() {
    let base_a = resource("a", "", "true");
    let base_b = resource("b", "", "true");
    let a = resource(
        "a",
        "  scope: acme\n  scopePermissions: SCOPE_PERMISSIONS_REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS\n",
        "true",
    );
    let b = resource("b", "  scope: acme\n", "true");
    let e = mem_err(&[
        ("1.yaml", &base_a),
        ("2.yaml", &base_b),
        ("3.yaml", &a),
        ("4.yaml", &b),
    ]);
    assert_eq!(e.kinds(), [ProblemKind::ScopePermissionsConflict]);
}

#[test]
fn structural_rules() {
    let no_roles = "apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: doc
  version: default
  rules:
    - actions: [view]
      effect: EFFECT_ALLOW
";
    assert_eq!(
        mem_err(&[("r.yaml", no_roles)]).kinds(),
        [ProblemKind::NoRoles]
    );

    let no_effect = no_roles.replace("effect: EFFECT_ALLOW", "roles: [user]");
    assert_eq!(
        mem_err(&[("r.yaml", &no_effect)]).kinds(),
        [ProblemKind::MissingField]
    );

    let bad_effect = no_roles.replace("EFFECT_ALLOW", "EFFECT_MAYBE");
    assert_eq!(
        mem_err(&[("r.yaml", &bad_effect)]).kinds(),
        [ProblemKind::InvalidValue]
    );

    let no_actions = no_roles.replace("actions: [view]", "actions: []\n      roles: [user]");
    assert_eq!(
        mem_err(&[("r.yaml", &no_actions)]).kinds(),
        [ProblemKind::MissingField]
    );

    let repeated = no_roles.replace(
        "actions: [view]",
        "actions: [view, view]\n      roles: [user]",
    );
    assert_eq!(
        mem_err(&[("r.yaml", &repeated)]).kinds(),
        [ProblemKind::InvalidValue]
    );

    let two_ops = resource("doc", "", "x\n          any: {of: [{expr: y}]}");
    assert_eq!(
        mem_err(&[("r.yaml", &two_ops)]).kinds(),
        [ProblemKind::InvalidValue]
    );

    let script = no_roles.replace(
        "effect: EFFECT_ALLOW",
        "effect: EFFECT_ALLOW\n      roles: [user]\n      condition:\n        script: x",
    );
    assert_eq!(
        mem_err(&[("r.yaml", &script)]).kinds(),
        [ProblemKind::Unsupported]
    );

    let bad_scope = resource("doc", "  scope: \"a..b\"\n", "true");
    assert!(mem_err(&[("r.yaml", &bad_scope)])
        .kinds()
        .contains(&ProblemKind::InvalidValue));

    let two_bodies = format!(
        "{}exportVariables:\n  name: v\n",
        resource("doc", "", "true")
    );
    assert_eq!(
        mem_err(&[("r.yaml", &two_bodies)]).kinds(),
        [ProblemKind::PolicyType]
    );

    let dup_names = "apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: doc
  version: default
  rules:
    - name: r
      actions: [view]
      effect: EFFECT_ALLOW
      roles: [user]
    - name: r
      actions: [edit]
      effect: EFFECT_ALLOW
      roles: [user]
";
    assert_eq!(
        mem_err(&[("r.yaml", dup_names)]).kinds(),
        [ProblemKind::DuplicateName]
    );
}

#[test]
fn every_problem_in_a_file_is_collected() {
    let p = "apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: doc
  version: default
  rules:
    - actions: [view]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: R.attr.a ==
    - actions: [edit]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          all:
            of:
              - expr: V.nope
              - expr: C.nope
";
    let e = mem_err(&[("r.yaml", p)]);
    assert_eq!(
        e.kinds(),
        [
            ProblemKind::Cel,
            ProblemKind::UndefinedVariable,
            ProblemKind::UndefinedConstant
        ]
    );
    assert_eq!(
        e.problems.iter().map(|p| p.line).collect::<Vec<_>>(),
        [Some(11), Some(19), Some(20)]
    );
}

#[test]
fn documents_in_one_file_are_separate_policies() {
    let text = format!(
        "{}---\n{}",
        resource("a", "", "true"),
        resource("b", "", "true")
    );
    let set = mem_ok(&[("two.yaml", &text)]);
    assert_eq!(set.resource_policies.len(), 2);
    assert_eq!(set.file_count, 1);

    // A problem in the second document is reported at its own line.
    let text = format!(
        "{}---\n{}",
        resource("a", "", "true"),
        resource("b", "", "V.x")
    );
    let e = mem_err(&[("two.yaml", &text)]);
    assert_eq!(e.kinds(), [ProblemKind::UndefinedVariable]);
    assert_eq!(e.problems[0].line, Some(23));
}

#[test]
fn disabled_policies_are_excluded() {
    let disabled = format!("disabled: true\n{}", resource("doc", "", "V.undefined"));
    let set = mem_ok(&[
        ("a.yaml", &resource("doc", "", "true")),
        ("b.yaml", &disabled),
    ]);
    assert_eq!(set.resource_policies.len(), 1);
    assert_eq!(set.file_count, 2);
}

#[test]
fn merge_keys_in_variables_and_unknown_keys_under_merges() {
    let p = "apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: doc
  version: default
  variables:
    local:
      <<: {a: R.attr.a, b: R.attr.b}
      c: V.a && V.b
  rules:
    - actions: [view]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: V.c
";
    let set = mem_ok(&[("r.yaml", p)]);
    assert_eq!(
        set.resource_policies[0].definitions.variable_order,
        ["a", "b", "c"]
    );

    let bad = p.replace("c: V.a && V.b", "c: V.a && V.b\n  bogus: 1");
    assert_eq!(
        mem_err(&[("r.yaml", &bad)]).kinds(),
        [ProblemKind::UnknownField]
    );
}

#[test]
fn yaml_anchors_without_merge_keep_positions() {
    let p = "apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: doc
  version: default
  rules:
    - actions: &acts [view]
      effect: EFFECT_ALLOW
      roles: [user]
    - actions: *acts
      effect: EFFECT_DENY
      roles: [guest]
      oops: 1
";
    let e = mem_err(&[("r.yaml", p)]);
    assert_eq!(e.kinds(), [ProblemKind::UnknownField]);
    assert_eq!(e.problems[0].line, Some(12));
}

#[test]
fn empty_and_comment_only_files_are_not_errors() {
    let set = mem_ok(&[("empty.yaml", ""), ("comment.yaml", "# nothing here\n")]);
    assert_eq!(set.file_count, 0);
    assert_eq!(set.warnings.len(), 2);
}

/// A function vecgate does not implement (Cerbos' path and SPIFFE functions) is refused when
/// the policy loads: evaluated, it would be an error on every record where Cerbos' PDP decides.
#[test]
fn functions_vecgate_does_not_implement_are_refused_at_load() {
    for expr in [
        "basePath(R.attr.path) == \"dir\"",
        "spiffeID(P.id).path() == \"/x\"",
        "R.attr.tags.exists(t, basePath(t) == \"x\")",
        "math.frobnicate(1) == 1",
    ] {
        let doc = resource("doc", "", expr);
        let e = mem_err(&[("r.yaml", &doc)]);
        assert!(e.to_string().contains("is not implemented by vecgate"), "{expr}: {e}");
    }
    for expr in [
        "math.greatest([1, 2]) == 2",
        "R.attr.tags.exists(math, math == \"x\")",
        "lists.range(3).size() == 3",
    ] {
        mem_ok(&[("r.yaml", &resource("doc", "", expr))]);
    }
}
