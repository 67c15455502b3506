//! `vecgate plan` on the shipped example policy (the Cerbos RAG recipe).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn vecgate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vecgate"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

const ALICE: &str = r#"{"id":"alice","roles":["user"],"attr":{"department":"FINANCE","region":"EMEA"}}"#;

#[test]
fn alice_gets_the_recipe_filter_for_chroma() {
    let (code, out, err) = vecgate(&[
        "plan", "--policies", "policies", "--principal", ALICE, "--kind", "project", "--action",
        "read", "--output", "chroma",
    ]);
    assert_eq!(code, 0, "{err}");
    let got: serde_json::Value = serde_json::from_str(&out).unwrap();
    let a = serde_json::json!({"$and":[{"department":"FINANCE"},{"region":"EMEA"}]});
    let b = serde_json::json!({"$and":[{"region":"EMEA"},{"department":"FINANCE"}]});
    assert!(got == a || got == b, "{got}");
}

#[test]
fn cerbos_output_is_a_conditional_plan() {
    let (code, out, _) = vecgate(&[
        "plan", "--policies", "policies", "--principal", ALICE, "--kind", "project", "--action",
        "read",
    ]);
    assert_eq!(code, 0);
    let got: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(got["kind"], "KIND_CONDITIONAL");
    assert_eq!(got["condition"]["expression"]["operator"], "and");
}

#[test]
fn unknown_kind_is_always_denied_and_has_no_filter() {
    let (code, out, _) = vecgate(&[
        "plan", "--policies", "policies", "--principal", ALICE, "--kind", "nope", "--action",
        "read",
    ]);
    assert_eq!(code, 0);
    assert_eq!(out, r#"{"kind":"KIND_ALWAYS_DENIED"}"#);
    let (code, _, err) = vecgate(&[
        "plan", "--policies", "policies", "--principal", ALICE, "--kind", "nope", "--action",
        "read", "--output", "chroma",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("always denied"));
}

#[test]
fn bad_input_fails_with_stderr() {
    let (code, _, err) = vecgate(&[
        "plan", "--policies", "policies", "--principal", "{not json", "--kind", "project",
        "--action", "read",
    ]);
    assert_ne!(code, 0);
    assert!(!err.is_empty());
    let (code, _, err) = vecgate(&["check", "--policies", "tests/no-such-dir"]);
    assert_ne!(code, 0);
    assert!(!err.is_empty());
    let (code, out, _) = vecgate(&["check", "--policies", "policies"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn plan_suite_prints_the_summary_line() {
    let (code, out, _) = vecgate(&[
        "plan-suite", "--policies", "tests/conformance/cerbos/policies",
        "tests/conformance/cerbos/suite/basics.yaml",
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.lines().last().unwrap(), "9 passed, 0 failed");
}
