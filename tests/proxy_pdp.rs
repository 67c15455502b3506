//! vecgate with an existing Cerbos PDP as its policy source (`policies.pdp`), end to end: the
//! real `cerbos server` (tests/support/cerbos.rs), the real Chroma, the real vecgate binary.
//!
//! - reads through the PDP return exactly what vecgate's own engine returns for the same
//!   policy files, principals and data;
//! - the PDP's planner drops a principal policy's unconditional DENY (its plan lets `zed` read
//!   his department's records, its check does not): vecgate's answer follows the check;
//! - writes are allowed or refused per record exactly as the PDP's CheckResources decides, in
//!   batches (a 100-record write is a handful of PDP requests, not hundreds);
//! - a PDP that is down, or answers garbage or an untranslatable plan, is a 503 in the
//!   database's own error shape (Chroma, Qdrant REST, UNAVAILABLE on Qdrant's gRPC), a metric
//!   and an audit line; nothing is forwarded to the database for it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use base64::Engine;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use support::cerbos::{Mode, Pdp};
use support::chroma::DEFAULT_DB_PATH;
use support::exposition::value;
use support::grpc::{Credential, GrpcClient};
use vecgate::backends::qdrant::grpc::proto::qdrant as q;
use support::stub_upstream::{counting_upstream, serve_http, RawResponse};
use support::vecgate::{token, VecgateOptions, VecgateServer};
use support::{repo_root, ChromaServer, QdrantServer};

/// `zed` may not read documents at all, `yan` may not update or delete them: principal
/// policies with an unconditional DENY, which the PDP's planner drops and its check applies.
const PRINCIPAL_POLICIES: &[(&str, &str)] = &[
    (
        "zed.yaml",
        "apiVersion: api.cerbos.dev/v1\nprincipalPolicy:\n  principal: zed\n  version: default\n  rules:\n    - resource: document\n      actions:\n        - action: read\n          effect: EFFECT_DENY\n",
    ),
    (
        "yan.yaml",
        "apiVersion: api.cerbos.dev/v1\nprincipalPolicy:\n  principal: yan\n  version: default\n  rules:\n    - resource: document\n      actions:\n        - action: update\n          effect: EFFECT_DENY\n        - action: delete\n          effect: EFFECT_DENY\n",
    ),
];

/// The proxy tests' policy files plus [`PRINCIPAL_POLICIES`], as (file name, text).
fn policy_files() -> Vec<(String, String)> {
    let dir = repo_root().join("tests/fixtures/proxy/policies");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().to_string(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    files.extend(PRINCIPAL_POLICIES.iter().map(|(n, t)| ((*n).to_string(), (*t).to_string())));
    files.sort();
    files
}

fn policy_dir(files: &[(String, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

fn start_pdp(files: &[(String, String)]) -> Pdp {
    let pdp = Pdp::start(Mode { strict: false, lenient: false }, &json!({}));
    pdp.load(files);
    pdp
}

/// `policies.pdp` for vecgate, plans cached for `ttl`.
fn pdp_yaml(url: &str, ttl: &str) -> String {
    format!("    url: {url}\n    timeout: 2s\n    plan_cache_ttl: {ttl}\n")
}

/// A caller: the token vecgate verifies, and the principal the PDP is asked about.
struct Caller {
    name: &'static str,
    token: String,
    principal: Value,
}

fn caller(name: &'static str, roles: &[&str], attr: Value) -> Caller {
    Caller {
        name,
        token: token(name, roles, &attr),
        principal: json!({"id": name, "roles": roles, "attr": attr}),
    }
}

fn callers() -> Vec<Caller> {
    vec![
        caller("alice", &["user"], json!({"department": "finance"})),
        caller("bob", &["user"], json!({"department": "hr"})),
        caller("zed", &["user"], json!({"department": "finance"})),
        caller("yan", &["user"], json!({"department": "finance"})),
        caller("root", &["admin"], json!({})),
        caller("guest", &["guest"], json!({})),
    ]
}

/// 40 records over three departments, six levels, five owners and two regions; every seventh
/// has no level and record `r39` no metadata at all.
fn records() -> Vec<(String, Value, Vec<f32>)> {
    let departments = ["finance", "hr", "legal"];
    let owners = ["alice", "bob", "carol", "zed", "yan"];
    (0..40)
        .map(|i| {
            let mut meta = json!({
                "department": departments[i % 3],
                "owner": owners[i % 5],
                "region": if i % 2 == 0 { "EMEA" } else { "AMER" },
            });
            if i % 7 != 0 {
                meta["level"] = json!(1 + i % 6);
            }
            if i == 39 {
                meta = Value::Null;
            }
            let x = i as f32 / 40.0;
            (format!("r{i:02}"), meta, vec![1.0 - x, x])
        })
        .collect()
}

fn ids_of(v: &Value) -> BTreeSet<String> {
    let ids = v["ids"].as_array().unwrap_or_else(|| panic!("no ids in {v}"));
    ids.iter()
        .flat_map(|i| match i {
            Value::Array(inner) => inner.clone(),
            other => vec![other.clone()],
        })
        .map(|i| i.as_str().unwrap().to_string())
        .collect()
}

/// What a read answered: the status and the ids (or the count).
fn outcome(status: u16, body: &Value) -> (u16, Value) {
    if status != 200 {
        return (status, Value::Null);
    }
    match body {
        Value::Number(_) => (status, body.clone()),
        _ => (status, json!(ids_of(body))),
    }
}

/// The reads compared, as (name, route under the collection, body).
fn reads() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("get all", "get", json!({"include": ["metadatas"]})),
        ("get where level <= 3", "get", json!({"where": {"level": {"$lte": 3}}, "include": ["metadatas"]})),
        ("get without metadatas", "get", json!({"include": []})),
        ("get by ids", "get", json!({"ids": ["r00", "r01", "r03", "r04", "r09", "r21", "r39"]})),
        ("query", "query", json!({"query_embeddings": [[1.0, 0.0]], "n_results": 12, "include": ["metadatas", "distances"]})),
        ("count", "count", Value::Null),
    ]
}

fn read(vecgate: &VecgateServer, col: &str, who: &Caller, route: &str, body: &Value) -> (u16, Value) {
    let (status, answer) = if body.is_null() {
        vecgate.call("GET", &format!("{col}/{route}"), Some(&who.token), None)
    } else {
        vecgate.call("POST", &format!("{col}/{route}"), Some(&who.token), Some(body))
    };
    outcome(status, &answer)
}

/// Same policy files, same data, same principals: the PDP-backed vecgate returns exactly the
/// records vecgate's own engine returns, and `zed` (whose DENY the PDP's plan drops) none.
#[test]
fn reads_through_the_pdp_return_what_the_embedded_engine_returns() {
    let files = policy_files();
    let dir = policy_dir(&files);
    let pdp = start_pdp(&files);
    let chroma = ChromaServer::start();
    let col_id = chroma.create_collection("docs");
    chroma.add(&col_id, &records());
    let col = format!("{DEFAULT_DB_PATH}/collections/{col_id}");
    let embedded = VecgateServer::start(&VecgateOptions::chroma(chroma.url(), dir.path()));
    let mut options = VecgateOptions::chroma(chroma.url(), dir.path());
    options.policies_pdp_yaml = Some(pdp_yaml(&format!("http://127.0.0.1:{}", pdp.port), "10s"));
    let through_pdp = VecgateServer::start(&options);

    let mut compared = 0;
    let mut nonempty = 0;
    for who in callers() {
        for (name, route, body) in reads() {
            let want = read(&embedded, &col, &who, route, &body);
            let got = read(&through_pdp, &col, &who, route, &body);
            assert_eq!(got, want, "{} {name}: PDP-backed vecgate vs embedded engine", who.name);
            compared += 1;
            if want.0 == 200 && want.1 != json!([]) && want.1 != json!(0) {
                nonempty += 1;
            }
        }
    }
    assert!(nonempty >= 10, "the comparison must cover answers with records ({nonempty} of {compared})");

    // zed: the PDP's own plan lets him read his department's records …
    let zed = callers().into_iter().find(|c| c.name == "zed").unwrap();
    let plan = pdp.plan(&zed.principal, "document", "", "read").unwrap();
    assert_eq!(plan["kind"], "KIND_CONDITIONAL", "the PDP's plan for zed: {plan}");
    // … its check denies every one of them, and so does vecgate.
    let finance: Vec<Value> = records()
        .into_iter()
        .filter(|(_, m, _)| m["department"] == "finance")
        .map(|(id, m, _)| json!({"kind": "document", "id": id, "attr": m}))
        .collect();
    assert!(pdp.check(&zed.principal, &finance, &["read".to_string()]).iter().all(|a| !a[0]));
    let stripped_before = through_pdp.metric_sum("vecgate_hits_stripped_total");
    let (status, answer) = through_pdp.call("POST", &format!("{col}/get"), Some(&zed.token), Some(&json!({})));
    assert_eq!((status, ids_of(&answer)), (200, BTreeSet::new()), "{answer}");
    // The plan's filter let the finance records through; the check stripped them.
    let stripped = through_pdp.metric_sum("vecgate_hits_stripped_total") - stripped_before;
    assert_eq!(stripped as usize, finance.len(), "{}", through_pdp.log_tail());
    let last = through_pdp.audit_lines().pop().unwrap();
    assert_eq!((last["hits_stripped"].as_u64(), last["hits_returned"].as_u64()), (Some(finance.len() as u64), Some(0)), "{last}");
    assert!(last["policy_version"].is_null(), "a PDP's decisions carry no vecgate policy version: {last}");
}

/// What a Qdrant REST read answered: the status and the point ids (or the count).
fn qdrant_outcome(status: u16, body: &Value) -> (u16, Value) {
    if status != 200 {
        return (status, Value::Null);
    }
    let result = &body["result"];
    if let Some(count) = result.get("count") {
        return (status, count.clone());
    }
    let points = result.get("points").unwrap_or(result);
    let ids: BTreeSet<String> = points
        .as_array()
        .unwrap_or_else(|| panic!("no points in {body}"))
        .iter()
        .map(|p| p["id"].to_string())
        .collect();
    (status, json!(ids))
}

fn grpc_ids<'a>(ids: impl Iterator<Item = &'a Option<q::PointId>>) -> BTreeSet<String> {
    ids.map(|id| match id.as_ref().and_then(|i| i.point_id_options.clone()) {
        Some(q::point_id::PointIdOptions::Num(n)) => n.to_string(),
        other => panic!("unexpected point id {other:?}"),
    })
    .collect()
}

/// The same comparison in front of Qdrant (the double or the real server, as the run
/// configures): REST scroll, query, search and retrieve-by-id, and gRPC Scroll and Query,
/// through a PDP-backed vecgate return exactly the embedded engine's points; zed's dropped
/// DENY is enforced on both protocols. Reads whose answer aggregates over points (count,
/// groups) cannot be confirmed point by point by the PDP's check, so they are refused (with
/// the PDP's plan alone, zed's count was his department's 13 points).
#[test]
fn qdrant_reads_through_the_pdp_return_what_the_embedded_engine_returns() {
    let files = policy_files();
    let dir = policy_dir(&files);
    let pdp = start_pdp(&files);
    let qdrant = QdrantServer::start();
    qdrant.create_collection("docs", 2);
    let points: Vec<(Value, Vec<f32>, Value)> = records()
        .into_iter()
        .enumerate()
        .map(|(i, (_, meta, vector))| {
            let payload = if meta.is_null() { json!({}) } else { json!({"page_content": "text", "metadata": meta}) };
            (json!(i), vector, payload)
        })
        .collect();
    qdrant.upsert("docs", &points);
    let mut options = VecgateOptions::qdrant(qdrant.url(), dir.path());
    options.upstream_grpc_url = Some(qdrant.grpc_url().to_string());
    let embedded = VecgateServer::start(&options);
    options.policies_pdp_yaml = Some(pdp_yaml(&format!("http://127.0.0.1:{}", pdp.port), "10s"));
    let through_pdp = VecgateServer::start(&options);

    let rest_reads = [
        ("scroll", "POST", "/collections/docs/points/scroll", json!({"limit": 100, "with_payload": true})),
        ("scroll level <= 3", "POST", "/collections/docs/points/scroll", json!({"limit": 100, "filter": {"must": [{"key": "metadata.level", "range": {"lte": 3}}]}})),
        ("query", "POST", "/collections/docs/points/query", json!({"query": [1.0, 0.0], "limit": 12, "with_payload": true})),
        ("search", "POST", "/collections/docs/points/search", json!({"vector": [0.0, 1.0], "limit": 12})),
        ("retrieve", "POST", "/collections/docs/points", json!({"ids": [0, 1, 3, 4, 9, 21, 39], "with_payload": true})),
    ];
    let mut nonempty = 0;
    for who in callers() {
        for (name, method, path, body) in &rest_reads {
            let (s, a) = embedded.call(method, path, Some(&who.token), Some(body));
            let want = qdrant_outcome(s, &a);
            let (s, a) = through_pdp.call(method, path, Some(&who.token), Some(body));
            let got = qdrant_outcome(s, &a);
            assert_eq!(got, want, "{} REST {name}: PDP-backed vecgate vs embedded engine", who.name);
            if want.0 == 200 && want.1 != json!([]) && want.1 != json!(0) {
                nonempty += 1;
            }
        }
        let scroll = q::ScrollPoints { collection_name: "docs".into(), limit: Some(100), ..Default::default() };
        let query = q::QueryPoints {
            collection_name: "docs".into(),
            query: Some(q::Query { variant: Some(q::query::Variant::Nearest(q::VectorInput {
                variant: Some(q::vector_input::Variant::Dense(q::DenseVector { data: vec![1.0, 0.0] })),
            })) }),
            limit: Some(12),
            ..Default::default()
        };
        let mut grpc_answers = Vec::new();
        for vecgate in [&embedded, &through_pdp] {
            let grpc = GrpcClient::connect(vecgate.grpc_url());
            let scrolled = grpc
                .call::<_, q::ScrollResponse>("/qdrant.Points/Scroll", scroll.clone(), Credential::Bearer(&who.token))
                .map(|r| grpc_ids(r.result.iter().map(|p| &p.id)))
                .map_err(|e| e.code());
            let queried = grpc
                .call::<_, q::QueryResponse>("/qdrant.Points/Query", query.clone(), Credential::Bearer(&who.token))
                .map(|r| grpc_ids(r.result.iter().map(|p| &p.id)))
                .map_err(|e| e.code());
            grpc_answers.push((scrolled, queried));
        }
        assert_eq!(grpc_answers[1], grpc_answers[0], "{} gRPC Scroll and Query: PDP-backed vecgate vs embedded engine", who.name);
    }
    assert!(nonempty >= 10, "the comparison must cover answers with points ({nonempty})");

    // zed: the PDP's plan lets his department through; the check strips every point.
    let zed = callers().into_iter().find(|c| c.name == "zed").unwrap();
    let (status, answer) = through_pdp.call("POST", "/collections/docs/points/scroll", Some(&zed.token), Some(&json!({"limit": 100})));
    assert_eq!(qdrant_outcome(status, &answer), (200, json!([])), "{answer}");
    let grpc = GrpcClient::connect(through_pdp.grpc_url());
    let scroll = q::ScrollPoints { collection_name: "docs".into(), limit: Some(100), ..Default::default() };
    let scrolled: q::ScrollResponse = grpc.call("/qdrant.Points/Scroll", scroll, Credential::Bearer(&zed.token)).unwrap();
    assert!(scrolled.result.is_empty(), "zed over gRPC: {:?}", grpc_ids(scrolled.result.iter().map(|p| &p.id)));
    assert!(through_pdp.metric_sum("vecgate_hits_stripped_total") > 0.0, "the check stripped zed's points");

    // Aggregating reads: refused in the database's own shape (the embedded engine answers them).
    let alice = callers().into_iter().find(|c| c.name == "alice").unwrap();
    for (path, body) in [
        ("/collections/docs/points/count", json!({"exact": true})),
        ("/collections/docs/points/query/groups", json!({"query": [1.0, 0.0], "group_by": "metadata.owner", "limit": 3})),
    ] {
        let (status, answer) = embedded.call("POST", path, Some(&alice.token), Some(&body));
        assert_eq!(status, 200, "embedded {path}: {answer}");
        for who in [&alice, &zed] {
            let (status, answer) = through_pdp.call("POST", path, Some(&who.token), Some(&body));
            assert_eq!(status, 403, "{} {path} through the PDP: {answer}", who.name);
            assert!(answer["status"]["error"].as_str().is_some_and(|m| m.contains("policies.pdp")), "Qdrant's error shape: {answer}");
        }
    }
    let count = q::CountPoints { collection_name: "docs".into(), exact: Some(true), ..Default::default() };
    let refused = grpc.call::<_, q::CountResponse>("/qdrant.Points/Count", count, Credential::Bearer(&zed.token)).unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
}

/// Explain with a PDP as the policy source: `POST /explain` and `vecgate explain --config`
/// give the PDP's own account (the matched policy, from CheckResources with includeMeta) and
/// what the proxy does with it; for zed, that the PDP's plan admits a record its check denies.
#[test]
fn explain_gives_the_pdps_account_of_its_decision() {
    let files = policy_files();
    let pdp = start_pdp(&files);
    let chroma = ChromaServer::start();
    let col_id = chroma.create_collection("docs");
    chroma.add(&col_id, &records());
    let dir = policy_dir(&files);
    let mut options = VecgateOptions::chroma(chroma.url(), dir.path());
    options.policies_pdp_yaml = Some(pdp_yaml(&format!("http://127.0.0.1:{}", pdp.port), "10s"));
    options.extra_yaml = "admin_explain: true\n".into();
    let vecgate = VecgateServer::start(&options);
    let agent = ureq::AgentBuilder::new().build();
    let explain = |who: &Caller, id: &str| -> Value {
        let body = json!({"token": who.token, "collection": "docs", "id": id});
        match agent.post(&format!("{}/explain", vecgate.admin_url())).send_json(body) {
            Ok(r) => r.into_json().unwrap(),
            Err(e) => panic!("POST /explain: {e}"),
        }
    };
    let who = |name: &str| callers().into_iter().find(|c| c.name == name).unwrap();
    // r00 is a finance record owned by alice.
    let alice = explain(&who("alice"), "r00");
    assert_eq!((alice["source"].as_str(), alice["decision"].as_str()), (Some("pdp"), Some("ALLOW")), "{alice}");
    assert_eq!(alice["matched_policy"], "resource.document.vdefault", "{alice}");
    assert_eq!((alice["filter"]["record_matches"].as_bool(), alice["served"].as_bool()), (Some(true), Some(true)), "{alice}");
    assert!(alice["filter"]["database_filter"].is_object(), "the plan as Chroma's filter: {alice}");
    assert!(!alice["pdp_call_id"].as_str().unwrap_or_default().is_empty(), "{alice}");
    let bob = explain(&who("bob"), "r00");
    assert_eq!((bob["decision"].as_str(), bob["filter"]["record_matches"].as_bool(), bob["served"].as_bool()), (Some("DENY"), Some(false), Some(false)), "{bob}");
    // zed: his principal policy denies; the PDP's plan admits the record anyway.
    let zed = explain(&who("zed"), "r00");
    assert_eq!((zed["decision"].as_str(), zed["matched_policy"].as_str()), (Some("DENY"), Some("principal.zed.vdefault")), "{zed}");
    assert_eq!((zed["filter"]["record_matches"].as_bool(), zed["filter"]["agrees_with_check"].as_bool(), zed["served"].as_bool()), (Some(true), Some(false), Some(false)), "{zed}");
    assert!(zed["note"].as_str().is_some_and(|n| n.contains("strips")), "{zed}");
    // The command line, on the same configuration.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vecgate"))
        .args(["explain", "--config"])
        .arg(vecgate.config_path())
        .args(["--principal", &who("zed").principal.to_string(), "--collection", "docs", "--id", "r00", "--output", "json"])
        .env("VECGATE_TEST_JWT_SECRET", support::vecgate::TEST_SECRET)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    for field in ["decision", "matched_policy", "served", "filter"] {
        assert_eq!(cli[field], zed[field], "{field}: CLI vs POST /explain");
    }
    let text = std::process::Command::new(env!("CARGO_BIN_EXE_vecgate"))
        .args(["explain", "--config"])
        .arg(vecgate.config_path())
        .args(["--principal", &who("zed").principal.to_string(), "--collection", "docs", "--id", "r00"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    for part in ["\"zed\" read document \"r00\": DENY", "principal.zed.vdefault", "served by the proxy: no", "strips"] {
        assert!(text.contains(part), "{part:?} in the text report:\n{text}");
    }
    // A PDP that is gone: an error, never a default answer.
    drop(pdp);
    let body = json!({"token": who("alice").token, "collection": "docs", "id": "r00"});
    match agent.post(&format!("{}/explain", vecgate.admin_url())).send_json(body) {
        Err(ureq::Error::Status(503, r)) => assert!(r.into_json::<Value>().unwrap()["error"].as_str().unwrap_or_default().contains("PDP")),
        other => panic!("explain without a PDP: {other:?}"),
    }
}

/// `policies.pdp.send_token`: the caller's token reaches the PDP's policies as
/// `request.auxData.jwt` (the PDP verifying it with its own key set), so a policy reading it
/// decides through the PDP exactly as vecgate's own engine decides; without the setting the
/// PDP sees no token (its condition errors, the rule is ignored: nothing readable), and a PDP
/// without key sets refuses a request carrying one (503).
#[test]
fn the_token_reaches_the_pdps_policies_with_send_token() {
    let files = vec![(
        "document.yaml".to_string(),
        "apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: document\n  version: default\n  rules:\n    - actions: [read]\n      effect: EFFECT_ALLOW\n      roles: [user]\n      condition:\n        match:\n          expr: request.auxData.jwt.department == R.attr.department\n".to_string(),
    )];
    let keys = tempfile::tempdir().unwrap();
    let jwks = keys.path().join("jwks.json");
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(support::vecgate::TEST_SECRET);
    std::fs::write(&jwks, json!({"keys": [{"kty": "oct", "k": secret, "alg": "HS256", "use": "sig"}]}).to_string()).unwrap();
    let aux = json!({"auxData": {"jwt": {"keySets": [{"id": "vecgate", "local": {"file": jwks}, "insecure": {"optionalKid": true}}]}}});
    let pdp = Pdp::start_with(Mode { strict: false, lenient: false }, &json!({}), &aux);
    pdp.load(&files);
    let without_keys = start_pdp(&files);
    let chroma = ChromaServer::start();
    let col_id = chroma.create_collection("docs");
    chroma.add(&col_id, &records());
    let col = format!("{DEFAULT_DB_PATH}/collections/{col_id}");
    let dir = policy_dir(&files);
    let embedded = VecgateServer::start(&VecgateOptions::chroma(chroma.url(), dir.path()));
    let through = |port: u16, send_token: bool| {
        let mut options = VecgateOptions::chroma(chroma.url(), dir.path());
        let mut yaml = pdp_yaml(&format!("http://127.0.0.1:{port}"), "10s");
        if send_token {
            yaml.push_str("    send_token: true\n");
        }
        options.policies_pdp_yaml = Some(yaml);
        VecgateServer::start(&options)
    };
    let with_token = through(pdp.port, true);
    let without_token = through(pdp.port, false);
    let refused = through(without_keys.port, true);
    for who in callers().iter().filter(|c| ["alice", "bob"].contains(&c.name)) {
        let body = json!({"include": ["metadatas"]});
        let want = read(&embedded, &col, who, "get", &body);
        assert_eq!(want.0, 200);
        assert_ne!(want.1, json!([]), "{}: the embedded engine reads auxData.jwt", who.name);
        assert_eq!(read(&with_token, &col, who, "get", &body), want, "{}: send_token", who.name);
        assert_eq!(read(&without_token, &col, who, "get", &body), (200, json!([])), "{}: no token, no auxData.jwt", who.name);
        let (status, answer) = refused.call("POST", &format!("{col}/get"), Some(&who.token), Some(&body));
        chroma_shape_503(status, &answer);
    }
}

/// How the relay in front of the PDP answers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
enum Relay {
    /// Forwards to the real PDP.
    Pass = 0,
    /// 200 with JSON that is not a PDP answer.
    Garbage = 1,
    /// 200 with a plan whose operator vecgate does not know.
    UnknownOperator = 2,
    /// 200 with a body that is not JSON.
    NotJson = 3,
}

/// An HTTP relay in front of the PDP that records every request (path and body) and can be
/// switched to answering garbage.
struct PdpRelay {
    url: String,
    mode: Arc<AtomicU8>,
    seen: Arc<Mutex<Vec<(String, Value)>>>,
}

impl PdpRelay {
    fn start(pdp_port: Option<u16>) -> PdpRelay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mode = Arc::new(AtomicU8::new(Relay::Pass as u8));
        let seen: Arc<Mutex<Vec<(String, Value)>>> = Arc::new(Mutex::new(Vec::new()));
        let (m, s) = (mode.clone(), seen.clone());
        let agent = ureq::AgentBuilder::new().timeout(std::time::Duration::from_secs(10)).build();
        serve_http(listener, move |request| {
            let (method, path) = request.method_and_target();
            let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
            s.lock().unwrap().push((path.to_string(), body.clone()));
            let json = |v: Value| RawResponse { status: 200, content_type: Some("application/json".into()), body: v.to_string().into_bytes() };
            match m.load(Ordering::SeqCst) {
                x if x == Relay::Garbage as u8 => Some(json(json!({"results": "garbage", "filter": {"kind": "KIND_WHATEVER"}}))),
                x if x == Relay::UnknownOperator as u8 => Some(json(json!({"filter": {"kind": "KIND_CONDITIONAL", "condition": {
                    "expression": {"operator": "frobnicate", "operands": [{"variable": "request.resource.attr.department"}]}}}}))),
                x if x == Relay::NotJson as u8 => Some(RawResponse { status: 200, content_type: None, body: b"<html>oops".to_vec() }),
                _ => {
                    let port = pdp_port?;
                    let target = format!("http://127.0.0.1:{port}{path}");
                    let answer = match method {
                        "GET" => agent.get(&target).call(),
                        _ => agent.post(&target).set("Content-Type", "application/json").send_bytes(&request.body),
                    };
                    let response = match answer {
                        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
                        Err(_) => return None,
                    };
                    let status = response.status();
                    let mut bytes = Vec::new();
                    std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes).unwrap();
                    Some(RawResponse { status, content_type: Some("application/json".into()), body: bytes })
                }
            }
        });
        PdpRelay { url, mode, seen }
    }

    fn set(&self, mode: Relay) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// The CheckResources requests since the last call, with their resource counts.
    fn take_checks(&self) -> Vec<usize> {
        let seen = std::mem::take(&mut *self.seen.lock().unwrap());
        seen.iter()
            .filter(|(path, _)| path == "/api/check/resources")
            .map(|(_, body)| body["resources"].as_array().map_or(0, Vec::len))
            .collect()
    }
}

fn upsert(vecgate: &VecgateServer, col: &str, who: &Caller, records: &[(String, Value)]) -> (u16, Value) {
    let body = json!({
        "ids": records.iter().map(|r| &r.0).collect::<Vec<_>>(),
        "metadatas": records.iter().map(|r| &r.1).collect::<Vec<_>>(),
        "embeddings": records.iter().map(|_| vec![0.5, 0.5]).collect::<Vec<_>>(),
    });
    vecgate.call("POST", &format!("{col}/upsert"), Some(&who.token), Some(&body))
}

fn document(id: &str, attr: &Value) -> Value {
    json!({"kind": "document", "id": id, "attr": attr})
}

/// Every write is allowed or refused exactly as the PDP's CheckResources decides for it (the
/// one write rule: `create` on new records; `read`, then `update` before and after, on
/// existing ones), and its questions go to the PDP in batches.
#[test]
fn writes_are_allowed_or_refused_as_the_pdps_check_decides() {
    let files = policy_files();
    let pdp = start_pdp(&files);
    let relay = PdpRelay::start(Some(pdp.port));
    let chroma = ChromaServer::start();
    let col_id = chroma.create_collection("docs");
    chroma.add(&col_id, &records());
    let col = format!("{DEFAULT_DB_PATH}/collections/{col_id}");
    let dir = policy_dir(&files);
    let mut options = VecgateOptions::chroma(chroma.url(), dir.path());
    options.policies_pdp_yaml = Some(pdp_yaml(&relay.url, "10s"));
    let vecgate = VecgateServer::start(&options);
    let create = ["create".to_string()];
    let update = ["update".to_string()];
    let read_action = ["read".to_string()];

    let candidates = [
        json!({"department": "finance", "level": 1, "owner": "x"}),
        json!({"department": "finance", "level": 5, "owner": "x"}),
        json!({"department": "hr", "level": 2, "owner": "x"}),
        json!({"department": "finance", "owner": "x"}),
    ];
    let mut allowed_writes = 0;
    let mut refused_writes = 0;
    for who in callers() {
        // New records: `create` on each, as the PDP decides it.
        for (i, attr) in candidates.iter().enumerate() {
            let id = format!("new-{}-{i}", who.name);
            let want = pdp.check(&who.principal, &[document(&id, attr)], &create)[0][0];
            let (status, answer) = upsert(&vecgate, &col, &who, &[(id.clone(), attr.clone())]);
            assert_eq!(status == 200, want, "{} creates {attr}: {status} {answer}", who.name);
            assert!(status == 200 || status == 403, "{status} {answer}");
            let stored = chroma.get_ids(&col_id, None).unwrap_or_default().contains(&id);
            assert_eq!(stored, want, "{} {id}", who.name);
            if want { allowed_writes += 1 } else { refused_writes += 1 }
        }
        // Existing records: level set to 2. Readable ones need `update` as they are and as
        // they will be; others are left out (answered as Chroma answers a missing record).
        for id in ["r00", "r03", "r06", "r07", "r12"] {
            let stored = |chroma: &ChromaServer| {
                let path = format!("{}/get", ChromaServer::collection_path(&col_id));
                chroma.post_json(&path, &json!({"ids": [id], "include": ["metadatas"]})).unwrap()["metadatas"][0].clone()
            };
            let current = stored(&chroma);
            let mut after = current.clone();
            after["level"] = json!(2);
            let readable = pdp.check(&who.principal, &[document(id, &current)], &read_action)[0][0];
            let updatable =
                pdp.check(&who.principal, &[document(id, &current), document(id, &after)], &update).iter().all(|a| a[0]);
            let body = json!({"ids": [id], "metadatas": [after]});
            let (status, answer) = vecgate.call("POST", &format!("{col}/update"), Some(&who.token), Some(&body));
            let now = stored(&chroma);
            if readable && updatable {
                assert_eq!(status, 200, "{} updates {id}: {answer}", who.name);
                assert_eq!(now, after, "{} {id}", who.name);
                allowed_writes += 1;
            } else {
                if readable {
                    assert_eq!(status, 403, "{} updates {id} (readable, update denied): {answer}", who.name);
                }
                assert_eq!(now, current, "{} {id} must stay as it was ({status} {answer})", who.name);
                refused_writes += 1;
            }
        }
    }
    assert!(allowed_writes >= 5 && refused_writes >= 5, "{allowed_writes} allowed, {refused_writes} refused");

    // A 100-record write: its questions are batched (50 resources per CheckResources).
    let alice = callers().into_iter().next().unwrap();
    let many: Vec<(String, Value)> =
        (0..100).map(|i| (format!("bulk-{i:03}"), json!({"department": "finance", "level": 1 + i % 3, "owner": "alice"}))).collect();
    relay.take_checks();
    let (status, answer) = upsert(&vecgate, &col, &alice, &many);
    assert_eq!(status, 200, "{answer}");
    let checks = relay.take_checks();
    assert!(checks.iter().all(|&n| n <= 50), "{checks:?}");
    assert_eq!(checks.iter().sum::<usize>(), 100, "one create question per new record: {checks:?}");
    assert!(checks.len() <= 3, "100 creates in batches, not one request each: {checks:?}");
    // The same 100 records updated: 100 reads, 200 update questions, in batches.
    let changed: Vec<(String, Value)> =
        many.iter().map(|(id, m)| (id.clone(), json!({"department": "finance", "level": 2, "owner": m["owner"]}))).collect();
    let (status, answer) = upsert(&vecgate, &col, &alice, &changed);
    assert_eq!(status, 200, "{answer}");
    let checks = relay.take_checks();
    assert_eq!(checks.iter().sum::<usize>(), 300, "{checks:?}");
    assert!(checks.len() <= 8, "{checks:?}");
    // One record of the 100 that the PDP refuses (level 5 > 3) refuses the whole write.
    let mut one_bad = changed.clone();
    one_bad[57].1["level"] = json!(5);
    let (status, answer) = upsert(&vecgate, &col, &alice, &one_bad);
    assert_eq!(status, 403, "{answer}");
    assert!(answer["message"].as_str().unwrap_or_default().contains("1 of 100 record writes are not allowed"), "{answer}");
}

/// Deletes through the PDP: each record a delete names is confirmed by the PDP's check (its
/// plan for `yan` lets him delete his own records, its check does not), records the caller
/// may not delete are left alone as if missing, and a delete by filter, which cannot be
/// confirmed record by record, is refused.
#[test]
fn deletes_remove_only_what_the_pdps_check_allows() {
    let files = policy_files();
    let pdp = start_pdp(&files);
    let chroma = ChromaServer::start();
    let col_id = chroma.create_collection("docs");
    chroma.add(&col_id, &records());
    let col = format!("{DEFAULT_DB_PATH}/collections/{col_id}");
    let dir = policy_dir(&files);
    let mut options = VecgateOptions::chroma(chroma.url(), dir.path());
    options.policies_pdp_yaml = Some(pdp_yaml(&format!("http://127.0.0.1:{}", pdp.port), "10s"));
    let vecgate = VecgateServer::start(&options);
    let stored = |chroma: &ChromaServer| -> BTreeSet<String> { chroma.get_ids(&col_id, None).unwrap_or_default().into_iter().collect() };
    let delete = ["delete".to_string()];
    let attrs: std::collections::BTreeMap<String, Value> = records().into_iter().map(|(id, meta, _)| (id, meta)).collect();
    let by_name = |name: &str| callers().into_iter().find(|c| c.name == name).unwrap();

    // yan owns r04 and r09: the PDP's plan says he may delete them, its check says no.
    let yan = by_name("yan");
    for id in ["r04", "r09"] {
        assert!(!pdp.check(&yan.principal, &[document(id, &attrs[id])], &delete)[0][0], "{id}");
    }
    let before = stored(&chroma);
    let (status, answer) = vecgate.call("POST", &format!("{col}/delete"), Some(&yan.token), Some(&json!({"ids": ["r04", "r09"]})));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(stored(&chroma), before, "yan's delete must remove nothing");

    // alice: r00 and r05 are hers, r01 is bob's; only what the check allows goes.
    let alice = by_name("alice");
    let asked = ["r00", "r05", "r01", "no-such-id"];
    let allowed: Vec<&str> = asked
        .iter()
        .copied()
        .filter(|id| attrs.get(*id).is_some_and(|a| pdp.check(&alice.principal, &[document(id, a)], &delete)[0][0]))
        .collect();
    assert_eq!(allowed, ["r00", "r05"]);
    let (status, answer) = vecgate.call("POST", &format!("{col}/delete"), Some(&alice.token), Some(&json!({"ids": asked})));
    assert_eq!(status, 200, "{answer}");
    let after = stored(&chroma);
    let removed: BTreeSet<String> = before.difference(&after).cloned().collect();
    assert_eq!(removed, ["r00", "r05"].iter().map(|s| s.to_string()).collect::<BTreeSet<_>>());

    // A delete by filter cannot be confirmed record by record: refused, nothing removed.
    let (status, answer) =
        vecgate.call("POST", &format!("{col}/delete"), Some(&alice.token), Some(&json!({"where": {"owner": "alice"}})));
    assert_eq!(status, 403, "{answer}");
    assert!(answer["message"].as_str().unwrap_or_default().contains("must name its records by id"), "{answer}");
    assert_eq!(stored(&chroma), after);
}

fn chroma_shape_503(status: u16, answer: &Value) {
    assert_eq!(status, 503, "{answer}");
    assert!(answer["error"].is_string() && answer["message"].as_str().is_some_and(|m| m.contains("PDP")), "Chroma's error shape: {answer}");
}

fn reason_count(vecgate: &VecgateServer, reason: &str) -> f64 {
    let (_, text) = vecgate.admin_get("/metrics");
    value(&text, "vecgate_policy_source_errors_total", &[("reason", reason)]).unwrap_or_else(|| panic!("no series for {reason}:\n{text}"))
}

/// A PDP that is down, slow to come back, or answering garbage: 503 in the database's own
/// shape, counted by reason, recorded in the audit line; never a decision.
#[test]
fn a_pdp_that_fails_is_503_in_the_databases_shape_with_metric_and_audit() {
    let files = policy_files();
    let pdp = start_pdp(&files);
    let relay = PdpRelay::start(Some(pdp.port));
    let chroma = ChromaServer::start();
    let col_id = chroma.create_collection("docs");
    chroma.add(&col_id, &records()[..6]);
    let col = format!("{DEFAULT_DB_PATH}/collections/{col_id}");
    let dir = policy_dir(&files);
    let mut options = VecgateOptions::chroma(chroma.url(), dir.path());
    // Plans not cached, so every request asks the PDP.
    options.policies_pdp_yaml = Some(pdp_yaml(&relay.url, "0s"));
    let vecgate = VecgateServer::start(&options);
    for reason in ["unreachable", "timeout", "bad_answer", "untranslatable", "config"] {
        assert_eq!(reason_count(&vecgate, reason), 0.0, "exported at 0 from start-up");
    }
    let alice = callers().into_iter().next().unwrap();
    let (status, answer) = vecgate.call("POST", &format!("{col}/get"), Some(&alice.token), Some(&json!({})));
    assert_eq!(status, 200, "{answer}");
    assert!(!ids_of(&answer).is_empty());

    for (mode, reason) in [(Relay::Garbage, "bad_answer"), (Relay::NotJson, "bad_answer"), (Relay::UnknownOperator, "untranslatable")] {
        relay.set(mode);
        let before = reason_count(&vecgate, reason);
        let (status, answer) = vecgate.call("POST", &format!("{col}/get"), Some(&alice.token), Some(&json!({})));
        chroma_shape_503(status, &answer);
        assert_eq!(reason_count(&vecgate, reason), before + 1.0, "{mode:?}");
        let last = vecgate.audit_lines().pop().unwrap();
        assert_eq!((last["status"].as_u64(), last["decision"].as_str(), last["error"].as_str()), (Some(503), Some("error"), Some("policy_source")), "{last}");
    }
    // Garbage in a write's checks too (the plan is fine, the check is not).
    relay.set(Relay::Pass);
    let (status, _) = upsert(&vecgate, &col, &alice, &[("w1".into(), json!({"department": "finance", "level": 1}))]);
    assert_eq!(status, 200);
    relay.set(Relay::NotJson);
    let (status, answer) = upsert(&vecgate, &col, &alice, &[("w2".into(), json!({"department": "finance", "level": 1}))]);
    chroma_shape_503(status, &answer);
    assert!(!chroma.get_ids(&col_id, None).unwrap().iter().any(|i| i == "w2"), "nothing was written");

    // The PDP stopped: unreachable.
    relay.set(Relay::Pass);
    drop(pdp);
    let (status, answer) = vecgate.call("POST", &format!("{col}/get"), Some(&alice.token), Some(&json!({})));
    chroma_shape_503(status, &answer);
    assert!(reason_count(&vecgate, "unreachable") + reason_count(&vecgate, "bad_answer") >= 1.0);
    let (ready, body) = vecgate.admin_get("/readyz");
    assert_eq!(ready, 503, "not ready without the PDP: {body}");

    // Qdrant's shape (REST, and UNAVAILABLE on gRPC), with vecgate pointed at a PDP port
    // nothing listens on; the database is never asked.
    let (upstream, seen) = counting_upstream();
    let mut options = VecgateOptions::qdrant(&upstream, dir.path());
    options.upstream_grpc_url = Some(format!("http://127.0.0.1:{}", support::free_port()));
    options.policies_pdp_yaml = Some(pdp_yaml(&format!("http://127.0.0.1:{}", support::free_port()), "10s"));
    let qdrant_vecgate = VecgateServer::start(&options);
    let (status, answer) = qdrant_vecgate.call("POST", "/collections/docs/points/scroll", Some(&alice.token), Some(&json!({"limit": 5})));
    assert_eq!(status, 503, "{answer}");
    assert!(answer["status"]["error"].as_str().is_some_and(|m| m.contains("PDP")), "Qdrant's error shape: {answer}");
    assert_eq!(reason_count(&qdrant_vecgate, "unreachable"), 1.0);
    let last = qdrant_vecgate.audit_lines().pop().unwrap();
    assert_eq!((last["decision"].as_str(), last["error"].as_str()), (Some("error"), Some("policy_source")), "{last}");
    let grpc = GrpcClient::connect(qdrant_vecgate.grpc_url());
    let scroll = q::ScrollPoints { collection_name: "docs".into(), limit: Some(5), ..Default::default() };
    let refused = grpc.call::<_, q::ScrollResponse>("/qdrant.Points/Scroll", scroll, Credential::Bearer(&alice.token)).unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("PDP"), "{refused:?}");
    assert_eq!(reason_count(&qdrant_vecgate, "unreachable"), 2.0);
    assert!(seen.lock().unwrap().is_empty(), "nothing reached the database: {:?}", seen.lock().unwrap());
}

/// `vecgate plan --pdp URL` prints the PDP's plan as the proxy reads it: for alice the same
/// Chroma filter as vecgate's own engine; for zed the PDP's plan still allows his department
/// (the dropped DENY), where vecgate's own planner denies everything.
#[test]
fn vecgate_plan_asks_the_pdp() {
    let files = policy_files();
    let dir = policy_dir(&files);
    let pdp = start_pdp(&files);
    let url = format!("http://127.0.0.1:{}", pdp.port);
    let plan = |source: &[&str], principal: &Value, actions: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_vecgate"));
        command.arg("plan").args(source).args(["--kind", "document", "--output", "chroma", "--principal"]).arg(principal.to_string());
        for action in actions {
            command.args(["--action", action]);
        }
        let out = command.output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).trim().to_string(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let dir_arg = dir.path().to_str().unwrap();
    let alice = json!({"id": "alice", "roles": ["user"], "attr": {"department": "finance"}});
    let embedded = plan(&["--policies", dir_arg], &alice, &["read"]);
    let asked = plan(&["--pdp", &url], &alice, &["read"]);
    assert_eq!(embedded.0, Some(0), "{embedded:?}");
    assert_eq!(asked, embedded);
    assert!(asked.1.contains("finance"), "{asked:?}");
    let zed = json!({"id": "zed", "roles": ["user"], "attr": {"department": "finance"}});
    assert_eq!(plan(&["--policies", dir_arg], &zed, &["read"]).0, Some(3), "vecgate's planner keeps zed's DENY");
    let from_pdp = plan(&["--pdp", &url], &zed, &["read"]);
    assert_eq!((from_pdp.0, from_pdp.1.as_str()), (Some(0), asked.1.as_str()), "the PDP's planner drops it: {from_pdp:?}");
    // One action at a time; a PDP that is not there is an error, not a plan.
    assert_eq!(plan(&["--pdp", &url], &alice, &["read", "update"]).0, Some(2));
    let down = plan(&["--pdp", &format!("http://127.0.0.1:{}", support::free_port())], &alice, &["read"]);
    assert_eq!(down.0, Some(1), "{down:?}");
    assert!(down.2.contains("unreachable"), "{down:?}");
}
