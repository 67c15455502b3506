//! `vecgate policy test DIR`: Cerbos policy test suites run through the built binary.
//! Assertions are on the summary line, exit codes and the failure lines' identities.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn last_line(&self) -> &str {
        self.stdout.lines().last().unwrap_or("")
    }

    fn lines_starting(&self, prefix: &str) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| l.starts_with(prefix))
            .collect()
    }
}

fn vecgate_policy_test(dir: &Path) -> Outcome {
    let out = Command::new(env!("CARGO_BIN_EXE_vecgate"))
        .args(["policy", "test"])
        .arg(dir)
        .output()
        .expect("run vecgate");
    Outcome {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/policy_test")
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A scratch copy of the fixture set (policies and `tests/testdata`, no suites), plus `files`.
fn scratch(files: &[(&str, &str)]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(
        &fixture_dir().join("policies"),
        &tmp.path().join("policies"),
    );
    copy_tree(
        &fixture_dir().join("tests/testdata"),
        &tmp.path().join("tests/testdata"),
    );
    for (name, text) in files {
        let path = tmp.path().join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    tmp
}

fn assert_summary(out: &Outcome, passed: usize, failed: usize, code: i32) {
    assert_eq!(
        out.last_line(),
        format!("{passed} passed, {failed} failed"),
        "stdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(
        out.code, code,
        "stdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
}

#[test]
fn fixture_set_reports_the_wrong_expectation() {
    let out = vecgate_policy_test(&fixture_dir());
    assert_summary(&out, 44, 1, 1);
    assert_eq!(
        out.lines_starting("FAIL"),
        vec![
            "FAIL WrongExpectation / bob edits alice's document / bob / alice_doc / edit: \
             want EFFECT_ALLOW, got EFFECT_DENY"
        ]
    );
    let skips = out.lines_starting("SKIP");
    assert_eq!(skips.len(), 1, "{}", out.stdout);
    assert!(skips[0].starts_with("SKIP DocumentSuite / not ready yet: 1 check skipped"));
    let notes = out.lines_starting("NOTE");
    assert_eq!(notes.len(), 1, "{}", out.stdout);
    assert!(notes[0].contains("outputs"));
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

#[test]
fn passing_suites_alone_exit_zero() {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&fixture_dir(), tmp.path());
    fs::remove_file(tmp.path().join("tests/wrong_expectation_test.yaml")).unwrap();
    let out = vecgate_policy_test(tmp.path());
    assert_summary(&out, 43, 0, 0);
    assert!(out.lines_starting("FAIL").is_empty());
}

/// An allowed combination the test does not list is expected to be DENY, so it fails.
#[test]
fn unlisted_combination_expects_deny() {
    let suite = r#"
name: Unlisted
tests:
  - name: alice views
    input:
      principals: [alice, bob]
      resources: [alice_doc]
      actions: [view, edit]
    expected:
      - principal: bob
        resource: alice_doc
        actions: {view: EFFECT_DENY}
"#;
    let tmp = scratch(&[("tests/unlisted_test.yaml", suite)]);
    let out = vecgate_policy_test(tmp.path());
    // alice owns alice_doc: view and edit are allowed but unlisted; bob's edit is unlisted
    // and denied (passes).
    assert_summary(&out, 2, 2, 1);
    assert_eq!(
        out.lines_starting("FAIL"),
        vec![
            "FAIL Unlisted / alice views / alice / alice_doc / view: want EFFECT_DENY, got EFFECT_ALLOW",
            "FAIL Unlisted / alice views / alice / alice_doc / edit: want EFFECT_DENY, got EFFECT_ALLOW",
        ]
    );
}

#[test]
fn principal_group_expands_in_input_and_expectations() {
    // `users` (alice, bob) from testdata; expecting every user may edit alice_doc is wrong
    // for bob only.
    let suite = r#"
name: Groups
tests:
  - name: users edit
    input:
      principalGroups: [users]
      resources: [alice_doc]
      actions: [edit]
    expected:
      - principalGroups: [users]
        resource: alice_doc
        actions: {edit: EFFECT_ALLOW}
"#;
    let tmp = scratch(&[("tests/groups_test.yaml", suite)]);
    let out = vecgate_policy_test(tmp.path());
    assert_summary(&out, 1, 1, 1);
    assert_eq!(
        out.lines_starting("FAIL"),
        vec![
            "FAIL Groups / users edit / bob / alice_doc / edit: want EFFECT_ALLOW, got EFFECT_DENY"
        ]
    );
}

#[test]
fn resource_group_defined_in_the_suite_overrides_testdata() {
    // The suite redefines `private_docs` as bob_doc alone.
    let suite = r#"
name: ResourceGroups
resourceGroups:
  private_docs:
    resources: [bob_doc]
  everything:
    resources: [public_doc, alice_doc, bob_doc]
tests:
  - name: bob views
    input:
      principals: [bob]
      resourceGroups: [everything]
      actions: [view]
    expected:
      - principal: bob
        resourceGroups: [private_docs]
        resource: public_doc
        actions: {view: EFFECT_ALLOW}
"#;
    let tmp = scratch(&[("tests/rgroups_test.yaml", suite)]);
    let out = vecgate_policy_test(tmp.path());
    // public_doc allow, alice_doc deny (unlisted), bob_doc allow.
    assert_summary(&out, 3, 0, 0);
}

fn archive_suite(now: &str) -> String {
    format!(
        r#"
name: Clock
options:
  now: "{now}"
tests:
  - name: bob archives
    input:
      principals: [bob]
      resources: [bob_doc]
      actions: [archive]
    expected:
      - principal: bob
        resource: bob_doc
        actions: {{archive: EFFECT_ALLOW}}
"#
    )
}

#[test]
fn now_option_drives_time_conditions() {
    // bob_doc was created on 2024-03-01; owners archive documents older than 30 days.
    let late = scratch(&[(
        "tests/clock_test.yaml",
        &archive_suite("2024-04-15T00:00:00Z"),
    )]);
    assert_summary(&vecgate_policy_test(late.path()), 1, 0, 0);

    let early = scratch(&[(
        "tests/clock_test.yaml",
        &archive_suite("2024-03-10T12:00:00+02:00"),
    )]);
    let out = vecgate_policy_test(early.path());
    assert_summary(&out, 0, 1, 1);
    assert_eq!(
        out.lines_starting("FAIL"),
        vec!["FAIL Clock / bob archives / bob / bob_doc / archive: want EFFECT_ALLOW, got EFFECT_DENY"]
    );
}

#[test]
fn time_condition_without_now_is_an_error() {
    let suite = r#"
name: NoClock
tests:
  - name: bob archives
    input:
      principals: [bob]
      resources: [bob_doc]
      actions: [archive, view]
    expected:
      - principal: bob
        resource: bob_doc
        actions: {archive: EFFECT_ALLOW, view: EFFECT_ALLOW}
"#;
    let tmp = scratch(&[("tests/noclock_test.yaml", suite)]);
    let out = vecgate_policy_test(tmp.path());
    // `view` does not read the clock and passes; `archive` errors.
    assert_summary(&out, 1, 1, 1);
    let fails = out.lines_starting("FAIL");
    assert_eq!(fails.len(), 1);
    assert!(fails[0].starts_with(
        "FAIL NoClock / bob archives / bob / bob_doc / archive: want EFFECT_ALLOW, got error:"
    ));
    assert!(fails[0].contains("`now` was not provided"));
}

fn publish_suite(regions: &str) -> String {
    format!(
        r#"
name: Globals
options:
  now: "2024-01-01T00:00:00Z"
  globals:
    publishRegions: {regions}
tests:
  - name: alice publishes
    input:
      principals: [alice]
      resources: [alice_doc, bob_doc]
      actions: [publish]
    expected:
      - principal: alice
        resource: bob_doc
        actions: {{publish: EFFECT_ALLOW}}
"#
    )
}

#[test]
fn globals_option_drives_conditions() {
    // alice_doc is in the EU, bob_doc in the US.
    let us = scratch(&[("tests/globals_test.yaml", &publish_suite("[US]"))]);
    assert_summary(&vecgate_policy_test(us.path()), 2, 0, 0);

    let eu = scratch(&[("tests/globals_test.yaml", &publish_suite("[EU]"))]);
    let out = vecgate_policy_test(eu.path());
    assert_summary(&out, 0, 2, 1);
    assert_eq!(
        out.lines_starting("FAIL"),
        vec![
            "FAIL Globals / alice publishes / alice / alice_doc / publish: want EFFECT_DENY, got EFFECT_ALLOW",
            "FAIL Globals / alice publishes / alice / bob_doc / publish: want EFFECT_ALLOW, got EFFECT_DENY",
        ]
    );
}

#[test]
fn default_policy_version_and_scope_options() {
    let policy = r#"
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: memo
  version: v2
  rules:
    - actions: [read]
      effect: EFFECT_ALLOW
      roles: [user]
---
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: memo
  version: v2
  scope: acme
  rules:
    - actions: [write]
      effect: EFFECT_ALLOW
      roles: [user]
"#;
    let suite = r#"
name: Versions
principals:
  u: {id: u, roles: [user]}
resources:
  memo: {kind: memo, id: m1}
tests:
  - name: no options, no v2 policy
    input: {principals: [u], resources: [memo], actions: [read, write]}
    expected:
      - principal: u
        resource: memo
        actions: {read: EFFECT_DENY}
  - name: default version v2
    options: {defaultPolicyVersion: v2}
    input: {principals: [u], resources: [memo], actions: [read, write]}
    expected:
      - principal: u
        resource: memo
        actions: {read: EFFECT_ALLOW}
  - name: default version v2 and scope acme
    options: {defaultPolicyVersion: v2, defaultScope: acme}
    input: {principals: [u], resources: [memo], actions: [read, write]}
    expected:
      - principal: u
        resource: memo
        actions: {read: EFFECT_ALLOW, write: EFFECT_ALLOW}
"#;
    let tmp = scratch(&[
        ("policies/memo.yaml", policy),
        ("tests/memo_test.yaml", suite),
    ]);
    let out = vecgate_policy_test(tmp.path());
    assert_summary(&out, 6, 0, 0);
}

#[test]
fn unknown_field_errors_that_suite_only() {
    let bad = r#"
name: Bad
tests:
  - name: typo
    input:
      principals: [alice]
      resources: [alice_doc]
      actions: [view]
    expectd:
      - principal: alice
        resource: alice_doc
        actions: {view: EFFECT_ALLOW}
"#;
    let good = r#"
name: Good
tests:
  - name: alice views
    input:
      principals: [alice]
      resources: [alice_doc]
      actions: [view]
    expected:
      - principal: alice
        resource: alice_doc
        actions: {view: EFFECT_ALLOW}
"#;
    let tmp = scratch(&[("tests/bad_test.yaml", bad), ("tests/good_test.yaml", good)]);
    let out = vecgate_policy_test(tmp.path());
    assert_summary(&out, 1, 0, 2);
    assert!(out.stderr.contains("bad_test.yaml"), "{}", out.stderr);
    assert!(out.stderr.contains("expectd"), "{}", out.stderr);
}

#[test]
fn bad_references_are_suite_errors() {
    let cases = [
        // A principal nobody defines.
        r#"
name: E
tests:
  - name: t
    input: {principals: [zed], resources: [alice_doc], actions: [view]}
    expected: [{principal: zed, resource: alice_doc, actions: {view: EFFECT_DENY}}]
"#,
        // An expectation for an action that is not in the input.
        r#"
name: E
tests:
  - name: t
    input: {principals: [alice], resources: [alice_doc], actions: [view]}
    expected: [{principal: alice, resource: alice_doc, actions: {edit: EFFECT_ALLOW}}]
"#,
        // An expectation for a pair that is not in the input.
        r#"
name: E
tests:
  - name: t
    input: {principals: [alice], resources: [alice_doc], actions: [view]}
    expected: [{principal: bob, resource: alice_doc, actions: {view: EFFECT_DENY}}]
"#,
        // Inconsistent expectations.
        r#"
name: E
tests:
  - name: t
    input: {principals: [alice], resources: [alice_doc], actions: [view]}
    expected:
      - {principal: alice, resource: alice_doc, actions: {view: EFFECT_DENY}}
      - {principalGroups: [users], resource: alice_doc, actions: {view: EFFECT_ALLOW}}
"#,
        // An effect that is not ALLOW or DENY.
        r#"
name: E
tests:
  - name: t
    input: {principals: [alice], resources: [alice_doc], actions: [view]}
    expected: [{principal: alice, resource: alice_doc, actions: {view: EFFECT_NO_MATCH}}]
"#,
        // Duplicate test names.
        r#"
name: E
tests:
  - name: t
    input: {principals: [alice], resources: [alice_doc], actions: [view]}
    expected: [{principal: alice, resource: alice_doc, actions: {view: EFFECT_ALLOW}}]
  - name: t
    input: {principals: [alice], resources: [alice_doc], actions: [view]}
    expected: [{principal: alice, resource: alice_doc, actions: {view: EFFECT_ALLOW}}]
"#,
        // Undefined aux data.
        r#"
name: E
tests:
  - name: t
    input: {principals: [alice], resources: [alice_doc], actions: [view], auxData: nope}
    expected: [{principal: alice, resource: alice_doc, actions: {view: EFFECT_ALLOW}}]
"#,
    ];
    for (i, suite) in cases.iter().enumerate() {
        let tmp = scratch(&[("tests/e_test.yaml", suite)]);
        let out = vecgate_policy_test(tmp.path());
        assert_eq!(out.code, 2, "case {i}: {}\n{}", out.stdout, out.stderr);
        assert_eq!(out.last_line(), "0 passed, 0 failed", "case {i}");
        assert!(out.stderr.contains("ERROR"), "case {i}: {}", out.stderr);
    }
}

#[test]
fn skipped_suite_runs_nothing() {
    let suite = r#"
name: Skipped
skip: true
skipReason: later
tests:
  - name: t
    input: {principals: [alice], resources: [alice_doc], actions: [delete]}
    expected: [{principal: alice, resource: alice_doc, actions: {delete: EFFECT_ALLOW}}]
"#;
    let tmp = scratch(&[("tests/skipped_test.yaml", suite)]);
    let out = vecgate_policy_test(tmp.path());
    assert_summary(&out, 0, 0, 0);
    assert_eq!(out.lines_starting("SKIP").len(), 1);
}

#[test]
fn shared_fixtures_come_from_the_sibling_testdata_only() {
    // tests/nested/ has no testdata of its own: tests/testdata is not visible from there.
    let suite = r#"
name: Nested
tests:
  - name: t
    input: {principals: [alice], resources: [alice_doc], actions: [view]}
    expected: [{principal: alice, resource: alice_doc, actions: {view: EFFECT_ALLOW}}]
"#;
    let tmp = scratch(&[("tests/nested/n_test.yml", suite)]);
    let out = vecgate_policy_test(tmp.path());
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("alice"), "{}", out.stderr);

    let tmp = scratch(&[("tests/n_test.yml", suite)]);
    assert_summary(&vecgate_policy_test(tmp.path()), 1, 0, 0);
}

#[test]
fn usage_and_load_errors_exit_two() {
    // Not a directory.
    let out = vecgate_policy_test(&fixture_dir().join("no-such-dir"));
    assert_eq!(out.code, 2);
    // No suites.
    let tmp = scratch(&[]);
    assert_eq!(vecgate_policy_test(tmp.path()).code, 2);
    // Policies that do not load.
    let suite = r#"
name: S
tests:
  - name: t
    input: {principals: [alice], resources: [alice_doc], actions: [view]}
    expected: [{principal: alice, resource: alice_doc, actions: {view: EFFECT_ALLOW}}]
"#;
    let tmp = scratch(&[
        ("tests/s_test.yaml", suite),
        (
            "policies/broken.yaml",
            "apiVersion: api.cerbos.dev/v1\nresourcePolicy: {resource: x}\n",
        ),
    ]);
    let out = vecgate_policy_test(tmp.path());
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}
