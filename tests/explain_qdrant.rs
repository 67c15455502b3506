//! `vecgate explain --id` and `vecgate who-can --id` in front of Qdrant (the test double, and
//! the real server in test.sh's second pass): the point is read with the database's own API
//! key from `upstream.api_key_env` and its attributes under the collection's `metadata.`
//! prefix; numeric and UUID point ids; a missing point and a wrong key are failures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Value};
use std::process::Command;
use support::qdrant::QdrantServer;
use support::repo_root;

const DB_KEY: &str = "explain-qdrant-key";
const UUID: &str = "5c56c793-69f3-4fbf-87e6-c4bf54c28c26";
const BOB: &str = r#"{"id":"bob","roles":["user"],"attr":{"department":"HR","region":"AMER"}}"#;

fn vecgate(args: &[&str], key: &str) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vecgate"))
        .args(args)
        .env("VECGATE_TEST_UPSTREAM_KEY", key)
        .env("VECGATE_TEST_JWT_SECRET", "unused-by-these-commands-0123456789")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn explain_and_who_can_read_points_from_qdrant_with_its_key() {
    let qdrant = QdrantServer::start_with_api_key(DB_KEY);
    println!("on {}", qdrant.kind().describe());
    qdrant.create_collection("notes", 2);
    let note = |d: &str, r: &str| json!({"page_content": "a note", "metadata": {"department": d, "region": r}});
    qdrant.upsert(
        "notes",
        &[(json!(7), vec![1.0, 0.0], note("FINANCE", "EMEA")), (json!(UUID), vec![0.0, 1.0], note("HR", "AMER"))],
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vecgate.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:1\nupstream:\n  kind: qdrant\n  url: {url}\n  api_key_env: VECGATE_TEST_UPSTREAM_KEY\n\
             auth:\n  algorithms: [HS256]\n  hs256_secret_env: VECGATE_TEST_JWT_SECRET\n  principal:\n    id: sub\n    roles: roles\n\
             policies:\n  dir: {policies}\n  watch: false\ncollections:\n  - name: \"*\"\n    resource_kind: document\n\
             audit:\n  path: \"-\"\n",
            url = qdrant.url(),
            policies = repo_root().join("examples/langchain-chroma/policies").display(),
        ),
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let explain = |id: &str, key: &str| vecgate(&["explain", "--config", c, "--collection", "notes", "--id", id, "--principal", BOB, "--output", "json"], key);

    let (code, out, err) = explain("7", DB_KEY);
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["resource"]["attr"], json!({"department": "FINANCE", "region": "EMEA"}), "{report}");
    assert_eq!(report["decision"], "DENY");
    let filter = report["filter"]["database_filter"].to_string();
    assert!(filter.contains("metadata.department") && filter.contains("HR"), "{filter}");

    let (code, out, err) = explain(UUID, DB_KEY);
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["decision"], "ALLOW", "{report}");

    let (code, text, err) = vecgate(&["who-can", "--config", c, "--collection", "notes", "--id", "7"], DB_KEY);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("or role user with department == \"FINANCE\" && region == \"EMEA\""), "{text}");

    let (code, _, err) = explain("8", DB_KEY);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no record \"8\""), "{err}");
    let (code, _, err) = explain("not-a-point-id", DB_KEY);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is not a record id"), "{err}");
    // Without the database's key the database refuses the lookup, and nothing is explained.
    let (code, out, err) = explain("7", "wrong-key");
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("the database answered 401") || err.contains("the database answered 403"), "{err}");
}
