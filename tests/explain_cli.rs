//! `vecgate explain` and `vecgate who-can` as a user runs them, on the demo's policies
//! (examples/langchain-chroma/policies) and the demo's record `fin-emea-budget`: offline
//! (`--record`), through a real Chroma (`--id`, read with the collection's mapping), with a
//! verified `--token`, and the admin listener's `POST /explain` (enabled, disabled, and never
//! on the data port).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use support::chroma::ChromaServer;
use support::vecgate::{token, VecgateOptions, VecgateServer, AUDIENCE, ISSUER, TEST_SECRET};

const POLICIES: &str = "examples/langchain-chroma/policies";
const BOB: &str = r#"{"id":"bob","roles":["user"],"attr":{"department":"HR","region":"AMER"}}"#;
const ALICE: &str = r#"{"id":"alice","roles":["user"],"attr":{"department":"FINANCE","region":"EMEA"}}"#;
const BUDGET: &str = r#"{"department":"FINANCE","region":"EMEA","topic":"budget"}"#;

fn vecgate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vecgate"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("VECGATE_TEST_JWT_SECRET", TEST_SECRET)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn json_of(args: &[&str]) -> Value {
    let (code, out, err) = vecgate(args);
    assert_eq!(code, 0, "vecgate {args:?}: {err}\n{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn policies() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(POLICIES).display().to_string()
}

#[test]
fn explain_offline_says_why_bob_is_denied_and_alice_allowed() {
    let p = policies();
    let base = ["explain", "--policies", &p, "--kind", "document", "--id", "fin-emea-budget", "--record", BUDGET];
    let bob = json_of(&[&base[..], &["--principal", BOB, "--output", "json"]].concat());
    assert_eq!(bob["version"], 1);
    assert_eq!(bob["decision"], "DENY");
    assert_eq!(bob["evaluation"], "cerbos");
    assert_eq!(bob["decided_by"], Value::Null, "{bob}");
    let rule = &bob["rules"][0];
    assert_eq!(rule["rule"], "own-department-and-region");
    assert_eq!((rule["reached"].clone(), rule["matched"].clone()), (json!(true), json!(false)));
    let items = &rule["condition"]["items"];
    assert_eq!(rule["condition"]["kind"], "all");
    assert_eq!(items[0]["value"], "false");
    assert_eq!(items[1]["value"], "false");
    assert_eq!(items[0]["tree"]["inputs"], json!(["R.attr.department = \"FINANCE\"", "P.attr.department = \"HR\""]));
    assert_eq!(bob["filter"]["record_matches"], false);
    assert_eq!(bob["filter"]["agrees_with_check"], true);

    let alice = json_of(&[&base[..], &["--principal", ALICE, "--output", "json"]].concat());
    assert_eq!(alice["decision"], "ALLOW");
    let decided = alice["decided_by"].as_u64().unwrap() as usize;
    assert_eq!(alice["rules"][decided]["rule"], "own-department-and-region");
    assert_eq!(alice["rules"][decided]["decided"], true);
    assert_eq!(alice["filter"]["record_matches"], true);

    // A missing attribute is an error with its reason, and under cerbos the rule is not met.
    let (code, text, err) = vecgate(&[
        "explain", "--policies", &p, "--kind", "document", "--id", "r1", "--record",
        r#"{"department":"HR"}"#, "--principal", BOB,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("R.attr.region is missing"), "{text}");
    assert!(text.contains("DENY"), "{text}");
    // Under cerbos_strict the same error ends the check.
    let strict = json_of(&[
        "explain", "--policies", &p, "--kind", "document", "--id", "r1", "--record",
        r#"{"department":"HR"}"#, "--principal", BOB, "--evaluation", "cerbos-strict", "--output", "json",
    ]);
    assert_eq!(strict["evaluation"], "cerbos_strict");
    assert!(strict["reason"].as_str().unwrap().contains("evaluation error"), "{strict}");
}

#[test]
fn the_example_prints_what_its_readme_shows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("examples/explain-who-can/run.sh"))
        .env("VECGATE_BIN", env!("CARGO_BIN_EXE_vecgate"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout);
    let readme = std::fs::read_to_string(root.join("examples/explain-who-can/README.md")).unwrap();
    assert!(readme.contains(&format!("```\n{}\n```", printed.trim_matches('\n'))), "examples/explain-who-can/README.md does not show what run.sh prints:\n{printed}");
}

#[test]
fn who_can_read_the_budget_offline() {
    let p = policies();
    let (code, text, err) = vecgate(&[
        "who-can", "--policies", &p, "--kind", "document", "--id", "fin-emea-budget", "--record", BUDGET,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("role admin\n"), "{text}");
    assert!(text.contains("or role ingest\n"), "{text}");
    assert!(text.contains("or role user with department == \"FINANCE\" && region == \"EMEA\""), "{text}");
    assert!(!text.contains("any other role"), "{text}");
    let answer = json_of(&[
        "who-can", "--policies", &p, "--kind", "document", "--id", "fin-emea-budget", "--record", BUDGET,
        "--output", "json",
    ]);
    let roles = answer["roles"].as_array().unwrap();
    let by_role = |r: &str| roles.iter().find(|x| x["role"] == r).unwrap()["filter"]["kind"].clone();
    assert_eq!(by_role("admin"), "KIND_ALWAYS_ALLOWED");
    assert_eq!(by_role("ingest"), "KIND_ALWAYS_ALLOWED");
    assert_eq!(by_role("user"), "KIND_CONDITIONAL");
    assert_eq!(by_role("*"), "KIND_ALWAYS_DENIED");
    assert_eq!(answer["filter"]["kind"], "KIND_CONDITIONAL");
    assert_eq!(answer["perRoleExact"], true);
    // Delete: users of the record's team and admins, not ingest.
    let (_, text, _) = vecgate(&[
        "who-can", "--policies", &p, "--kind", "document", "--id", "fin-emea-budget", "--record", BUDGET,
        "--action", "delete",
    ]);
    assert!(!text.contains("ingest"), "{text}");
}

/// A demo-like collection in a real Chroma, and a configuration in front of it.
struct Demo {
    chroma: ChromaServer,
    collection_id: String,
    _dir: tempfile::TempDir,
    config: String,
}

fn demo() -> Demo {
    let chroma = ChromaServer::start();
    // The demo's collection name, so the output can be compared with the README's.
    let id = chroma.create_collection("company-docs");
    chroma.add(
        &id,
        &[
            ("fin-emea-budget".to_string(), json!({"department": "FINANCE", "region": "EMEA", "topic": "budget"}), vec![0.1, 0.2, 0.3]),
            ("hr-amer-hiring".to_string(), json!({"department": "HR", "region": "AMER", "topic": "hiring"}), vec![0.3, 0.2, 0.1]),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vecgate.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:1\nupstream:\n  kind: chroma\n  url: {url}\nauth:\n  issuer: {ISSUER}\n  audience: {AUDIENCE}\n  \
             algorithms: [HS256]\n  hs256_secret_env: VECGATE_TEST_JWT_SECRET\n  principal:\n    id: sub\n    roles: roles\n    \
             attr: {{department: department, region: region}}\npolicies:\n  dir: {policies}\n  watch: false\ncollections:\n  \
             - name: \"*\"\n    resource_kind: document\n    required_attrs: [department, region]\naudit:\n  path: \"-\"\n",
            url = chroma.url(),
            policies = policies(),
        ),
    )
    .unwrap();
    Demo { config: config.display().to_string(), chroma, collection_id: id, _dir: dir }
}

#[test]
fn explain_and_who_can_read_the_record_from_chroma() {
    let demo = demo();
    let c = &demo.config;
    let bob = json_of(&[
        "explain", "--config", c, "--collection", "company-docs", "--id", "fin-emea-budget", "--principal", BOB, "--output", "json",
    ]);
    assert_eq!(bob["resource"]["attr"], json!({"department": "FINANCE", "region": "EMEA", "topic": "budget"}));
    assert_eq!(bob["decision"], "DENY");
    // The filter the proxy would send to Chroma for bob: his own team's records.
    let filter = bob["filter"]["database_filter"].to_string();
    assert!(filter.contains("HR") && filter.contains("AMER") && !filter.contains("FINANCE"), "{filter}");
    // The same filter run on Chroma selects bob's record, not the budget: the filter and the
    // check agree on the real database.
    let ids = demo.chroma.get_ids(&demo.collection_id, Some(&bob["filter"]["database_filter"])).unwrap();
    assert_eq!(ids, vec!["hr-amer-hiring".to_string()]);

    // A verified token gives the principal (its claims mapped by the configuration).
    let alice_token = token("alice", &["user"], &json!({"department": "FINANCE", "region": "EMEA"}));
    let alice = json_of(&[
        "explain", "--config", c, "--collection", "company-docs", "--id", "fin-emea-budget", "--token", &alice_token, "--output", "json",
    ]);
    assert_eq!(alice["principal"]["id"], "alice");
    assert_eq!(alice["decision"], "ALLOW");
    let (code, _, err) = vecgate(&[
        "explain", "--config", c, "--collection", "company-docs", "--id", "fin-emea-budget", "--token", "not-a-token",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("token is not accepted"), "{err}");

    let (code, text, err) = vecgate(&["who-can", "--config", c, "--collection", "company-docs", "--id", "fin-emea-budget"]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("or role user with department == \"FINANCE\" && region == \"EMEA\""), "{text}");

    // The README shows these three outputs (pasted from ./scripts/demo.sh): still what the
    // commands print.
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let bob_token = token("bob", &["user"], &json!({"department": "HR", "region": "AMER"}));
    for (who, t) in [("bob", &bob_token), ("alice", &alice_token)] {
        let (code, out, err) = vecgate(&["explain", "--config", c, "--collection", "company-docs", "--id", "fin-emea-budget", "--token", t]);
        assert_eq!(code, 0, "{err}");
        assert!(readme.contains(&format!("```\n{out}```")), "README's explain output for {who} is not what vecgate prints:\n{out}");
    }
    assert!(readme.contains(&format!("```\n{text}```")), "README's who-can output is not what vecgate prints:\n{text}");

    let (code, _, err) = vecgate(&["explain", "--config", c, "--collection", "company-docs", "--id", "no-such-record", "--principal", BOB]);
    assert_eq!(code, 1);
    assert!(err.contains("no record \"no-such-record\""), "{err}");
}

#[test]
fn post_explain_is_served_on_the_admin_listener_only_when_enabled() {
    let chroma = ChromaServer::start();
    let id = chroma.create_collection("notes");
    chroma.add(&id, &[("fin-emea-budget".to_string(), json!({"department": "FINANCE", "region": "EMEA"}), vec![0.1, 0.2])]);
    let policies_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(POLICIES);
    let auth = format!(
        "  issuer: {ISSUER}\n  audience: {AUDIENCE}\n  algorithms: [HS256]\n  hs256_secret_env: VECGATE_TEST_JWT_SECRET\n  \
         principal:\n    id: sub\n    roles: roles\n    attr: {{department: department, region: region}}\n"
    );
    let options = VecgateOptions {
        auth_yaml: Some(auth),
        extra_yaml: "admin_explain: true\n".into(),
        ..VecgateOptions::chroma(chroma.url(), &policies_dir)
    };
    let server = VecgateServer::start(&options);
    let agent = ureq::AgentBuilder::new().build();
    let post = |url: &str, body: &Value| -> (u16, Value) {
        match agent.post(url).send_json(body.clone()) {
            Ok(r) => (r.status(), r.into_json().unwrap_or(Value::Null)),
            Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or(Value::Null)),
            Err(e) => panic!("{url}: {e}"),
        }
    };
    let bob = token("bob", &["user"], &json!({"department": "HR", "region": "AMER"}));
    let body = json!({"token": bob, "collection": "notes", "id": "fin-emea-budget"});
    let (status, report) = post(&format!("{}/explain", server.admin_url()), &body);
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["decision"], "DENY");
    assert_eq!(report["principal"]["id"], "bob");
    assert_eq!(report["resource"]["attr"]["department"], "FINANCE");
    assert!(report["filter"]["database_filter"].is_object(), "{report}");
    // Strict bodies; a missing record is 404.
    let (status, _) = post(&format!("{}/explain", server.admin_url()), &json!({"collection": "notes", "id": "x", "what": 1}));
    assert_eq!(status, 400);
    let missing = json!({"principal": {"id": "bob", "roles": ["user"]}, "collection": "notes", "id": "nope"});
    assert_eq!(post(&format!("{}/explain", server.admin_url()), &missing).0, 404);
    // Never on the data port: there it is an unknown route, refused.
    let (status, answer) = post(&format!("{}/explain", server.url()), &body);
    assert_ne!(status, 200, "{answer}");
    assert!(answer.get("decision").is_none(), "{answer}");
    drop(server);

    // Off unless enabled: the admin listener answers a POST as before (405, GET only).
    let server = VecgateServer::start(&VecgateOptions::chroma(chroma.url(), &policies_dir));
    let (status, answer) = post(&format!("{}/explain", server.admin_url()), &body);
    assert_eq!(status, 405, "{answer}");
    assert!(answer.get("decision").is_none(), "{answer}");
}

#[test]
fn an_error_is_explained_with_its_reason() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/explain-who-can/policies").display().to_string();
    let auditor = r#"{"id":"ann","roles":["auditor"],"attr":{"clearance":3}}"#;
    let (code, text, err) = vecgate(&[
        "explain", "--policies", &p, "--kind", "document", "--id", "n1", "--record",
        r#"{"department":"HR","region":"EMEA","sensitivity":"high"}"#, "--principal", auditor,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("P.attr.clearance >= R.attr.sensitivity → error: double compared with string (>=)"), "{text}");
    assert!(text.contains("R.attr.embargoed == true → error: R.attr.embargoed is missing"), "{text}");
    assert!(text.starts_with("ann read document \"n1\": DENY"), "{text}");
}
