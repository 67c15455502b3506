//! vecgate in front of the real Chroma server, route by route, with several principals.
//! Every test starts its own Chroma and vecgate and seeds the same five records.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Value};
use std::collections::BTreeSet;
use support::chroma::DEFAULT_DB_PATH;
use support::vecgate::{token, token_with, VecgateOptions, VecgateServer};
use support::{repo_root, ChromaServer};

struct Setup {
    chroma: ChromaServer,
    vecgate: VecgateServer,
    /// `…/collections/{uuid}` of the seeded collection `docs`.
    col: String,
    col_id: String,
    alice: String,
    bob: String,
    root: String,
    guest: String,
    auditor: String,
}

fn policies() -> std::path::PathBuf {
    repo_root().join("tests/fixtures/proxy/policies")
}

fn setup_with(options: impl FnOnce(&mut VecgateOptions)) -> Setup {
    let chroma = ChromaServer::start();
    let col_id = chroma.create_collection("docs");
    chroma.add(
        &col_id,
        &[
            ("f1".into(), json!({"department": "finance", "level": 1, "owner": "alice", "region": "EMEA"}), vec![1.0, 0.0]),
            ("f2".into(), json!({"department": "finance", "level": 5, "owner": "carol", "region": "AMER"}), vec![0.9, 0.1]),
            ("h1".into(), json!({"department": "hr", "level": 2, "owner": "bob", "region": "AMER"}), vec![0.0, 1.0]),
            ("h2".into(), json!({"department": "hr", "level": 1, "owner": "dave", "region": "EMEA"}), vec![0.1, 0.9]),
            ("n1".into(), Value::Null, vec![0.5, 0.5]),
        ],
    );
    let mut opts = VecgateOptions::chroma(chroma.url(), &policies());
    options(&mut opts);
    let vecgate = VecgateServer::start(&opts);
    Setup {
        col: format!("{DEFAULT_DB_PATH}/collections/{col_id}"),
        col_id,
        alice: token("alice", &["user"], &json!({"department": "finance"})),
        bob: token("bob", &["user"], &json!({"department": "hr"})),
        root: token("root", &["admin"], &json!({})),
        guest: token("guest", &["guest"], &json!({})),
        auditor: token("audra", &["auditor"], &json!({})),
        chroma,
        vecgate,
    }
}

fn setup() -> Setup {
    setup_with(|_| {})
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

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_string()).collect()
}

#[test]
fn missing_or_bad_tokens_are_401_in_chromas_shape_and_health_needs_none() {
    let s = setup();
    let path = format!("{}/get", s.col);
    let expired = token_with("alice", &["user"], &json!({"department": "finance"}), -600);
    for tok in [None, Some("not-a-jwt"), Some(expired.as_str())] {
        let (status, body) = s.vecgate.call("POST", &path, tok, Some(&json!({})));
        assert_eq!(status, 401, "token {tok:?}: {body}");
        assert_eq!(body["error"], "AuthorizationError");
    }
    let (status, _) = s.vecgate.call("GET", "/api/v2/heartbeat", None, None);
    assert_eq!(status, 200);
    // X-Chroma-Token is accepted as well.
    let (status, body) = s.vecgate.call_with_headers(
        "POST",
        &path,
        None,
        Some(&json!({})),
        &[("X-Chroma-Token", &s.alice)],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids_of(&body), set(&["f1", "f2"]));
}

#[test]
fn get_returns_only_what_each_principal_may_read() {
    let s = setup();
    let path = format!("{}/get", s.col);
    let all_ids = json!({"ids": ["f1", "f2", "h1", "h2", "n1"]});
    for (tok, want) in [
        (&s.alice, set(&["f1", "f2"])),
        (&s.bob, set(&["h1", "h2"])),
        (&s.root, set(&["f1", "f2", "h1", "h2", "n1"])),
        (&s.guest, set(&[])),
    ] {
        for body in [json!({}), all_ids.clone(), json!({"where": {"level": {"$gte": 1}}, "include": []})] {
            let (status, got) = s.vecgate.call("POST", &path, Some(tok), Some(&body));
            assert_eq!(status, 200, "{got}");
            let mut want = want.clone();
            if body.get("where").is_some() {
                want.remove("n1");
            }
            assert_eq!(ids_of(&got), want, "body {body}");
        }
    }
    // An empty body works too (no Content-Type, no bytes).
    let (status, got) = s.vecgate.call("POST", &path, Some(&s.bob), None);
    assert_eq!(status, 200, "{got}");
    assert_eq!(ids_of(&got), set(&["h1", "h2"]));
}

#[test]
fn forced_metadata_is_trimmed_back_to_what_the_caller_asked_for() {
    let s = setup();
    let path = format!("{}/get", s.col);
    let body = json!({"ids": ["f1", "h1"], "include": ["documents"]});
    let (status, via) = s.vecgate.call("POST", &path, Some(&s.alice), Some(&body));
    assert_eq!(status, 200);
    let direct = s.chroma.post_json(&path, &json!({"ids": ["f1"], "include": ["documents"]})).unwrap();
    assert_eq!(via, direct, "the answer through vecgate has the shape of Chroma's own");
}

#[test]
fn query_with_k_above_the_collection_size_returns_only_permitted_hits() {
    let s = setup();
    let path = format!("{}/query", s.col);
    let body = json!({"query_embeddings": [[1.0, 0.0], [0.0, 1.0]], "n_results": 10,
                      "include": ["distances"]});
    let (status, got) = s.vecgate.call("POST", &path, Some(&s.alice), Some(&body));
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["ids"], json!([["f1", "f2"], ["f2", "f1"]]));
    assert_eq!(got["distances"].as_array().unwrap()[0].as_array().unwrap().len(), 2);
    assert_eq!(got["metadatas"], Value::Null, "metadatas were not asked for");
    let (_, got) = s.vecgate.call("POST", &path, Some(&s.guest), Some(&body));
    assert_eq!(got["ids"], json!([[], []]));
}

#[test]
fn count_counts_only_visible_records() {
    let s = setup();
    let path = format!("{}/count", s.col);
    for (tok, want) in [(&s.alice, 2), (&s.bob, 2), (&s.root, 5), (&s.guest, 0)] {
        let (status, got) = s.vecgate.call("GET", &path, Some(tok), None);
        assert_eq!((status, got), (200, json!(want)));
    }
}

#[test]
fn delete_only_removes_what_the_caller_may_delete() {
    let s = setup();
    let path = format!("{}/delete", s.col);
    let (status, body) = s.vecgate.call("POST", &path, Some(&s.alice), Some(&json!({"ids": ["f1", "f2", "h1"]})));
    assert_eq!(status, 200, "{body}");
    // `{}` deletes nothing, as in Chroma.
    let (status, _) = s.vecgate.call("POST", &path, Some(&s.bob), Some(&json!({})));
    assert_eq!(status, 200);
    let left = s.chroma.get_ids(&s.col_id, None).unwrap();
    assert_eq!(left.into_iter().collect::<BTreeSet<_>>(), set(&["f2", "h1", "h2", "n1"]));
}

#[test]
fn writes_are_checked_record_by_record() {
    let s = setup();
    let add = format!("{}/add", s.col);
    let upsert = format!("{}/upsert", s.col);
    let update = format!("{}/update", s.col);
    let rec = |id: &str, meta: Value| json!({"ids": [id], "embeddings": [[0.3, 0.3]], "metadatas": [meta]});

    // Own department, low level: allowed.
    let (status, body) = s.vecgate.call("POST", &add, Some(&s.alice), Some(&rec("f9", json!({"department": "finance", "level": 1}))));
    assert!(status == 200 || status == 201, "{status} {body}");
    // Tagging a record with another department: denied, and nothing is written.
    let batch = json!({"ids": ["f10", "h10"], "embeddings": [[0.1, 0.1], [0.2, 0.2]],
                       "metadatas": [{"department": "finance", "level": 1}, {"department": "hr", "level": 1}]});
    let (status, body) = s.vecgate.call("POST", &add, Some(&s.alice), Some(&batch));
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "AuthError");
    // Taking over another department's record by upsert (USING): denied.
    let (status, _) = s.vecgate.call("POST", &upsert, Some(&s.alice), Some(&rec("h1", json!({"department": "finance", "level": 1}))));
    assert_eq!(status, 403);
    // Re-tagging her own record into another department (WITH CHECK): denied.
    let (status, _) = s.vecgate.call("POST", &update, Some(&s.alice), Some(&json!({"ids": ["f1"], "metadatas": [{"department": "hr"}]})));
    assert_eq!(status, 403);
    // Removing the department key by setting it to null: denied (the record would fail the check).
    let (status, _) = s.vecgate.call("POST", &update, Some(&s.alice), Some(&json!({"ids": ["f1"], "metadatas": [{"department": null}]})));
    assert_eq!(status, 403);
    // Merging a key that keeps the record in her department: allowed.
    let (status, body) = s.vecgate.call("POST", &update, Some(&s.alice), Some(&json!({"ids": ["f1"], "metadatas": [{"topic": "tax"}]})));
    assert_eq!(status, 200, "{body}");

    let all = s.chroma.post_json(&format!("{}/get", s.col), &json!({"include": ["metadatas"]})).unwrap();
    let ids = ids_of(&all);
    assert!(ids.contains("f9") && !ids.contains("f10") && !ids.contains("h10"), "{ids:?}");
    let metas: Vec<(String, Value)> = all["ids"].as_array().unwrap().iter()
        .zip(all["metadatas"].as_array().unwrap())
        .map(|(i, m)| (i.as_str().unwrap().to_string(), m.clone()))
        .collect();
    let meta = |id: &str| metas.iter().find(|(i, _)| i == id).unwrap().1.clone();
    assert_eq!(meta("h1")["department"], "hr");
    assert_eq!(meta("f1")["department"], "finance");
    assert_eq!(meta("f1")["topic"], "tax");
}

#[test]
fn stamping_sets_the_owner_from_the_token() {
    let s = setup_with(|o| {
        o.collections_yaml = "  - name: \"*\"\n    resource_kind: document\n    stamp: {owner: principal.id}\n".into();
    });
    let add = format!("{}/add", s.col);
    let body = json!({"ids": ["f7"], "embeddings": [[0.3, 0.3]],
                      "metadatas": [{"department": "finance", "level": 1, "owner": "mallory"}]});
    let (status, got) = s.vecgate.call("POST", &add, Some(&s.alice), Some(&body));
    assert!(status == 200 || status == 201, "{got}");
    let got = s.chroma.post_json(&format!("{}/get", s.col), &json!({"ids": ["f7"], "include": ["metadatas"]})).unwrap();
    assert_eq!(got["metadatas"][0]["owner"], "alice");
}

#[test]
fn unknown_routes_and_unnormalised_paths_are_403() {
    let s = setup();
    for (method, path) in [
        ("GET", "/api/v1/heartbeat".to_string()),
        ("POST", format!("{}/get/", s.col)),
        ("POST", format!("{}//get", s.col)),
        ("POST", format!("{}/explode", s.col)),
        ("GET", "/docs".to_string()),
    ] {
        let (status, body) = s.vecgate.call(method, &path, Some(&s.root), Some(&json!({})));
        assert_eq!(status, 403, "{method} {path}: {body}");
    }
}

#[test]
fn malformed_input_is_refused_before_chroma_sees_it() {
    let s = setup_with(|o| o.extra_yaml = "limits:\n  max_body_bytes: 2048\n  max_filter_terms: 20\n".into());
    let url = format!("{}{}/get", s.vecgate.url(), s.col);
    let agent = ureq::agent();
    let send = |body: &str, headers: &[(&str, &str)]| {
        let mut r = agent.post(&url).set("Authorization", &format!("Bearer {}", s.alice));
        for (k, v) in headers {
            r = r.set(k, v);
        }
        match r.send_string(body) {
            Ok(resp) => resp.status(),
            Err(ureq::Error::Status(code, _)) => code,
            Err(e) => panic!("{e}"),
        }
    };
    let json_ct = [("Content-Type", "application/json")];
    assert_eq!(send("{\"where\": {\"department\": \"hr\", \"department\": \"finance\"}}", &json_ct), 400);
    assert_eq!(send("{\"ids\": [\"f1\"], \"ids\": [\"h1\"]}", &json_ct), 400);
    assert_eq!(send("{not json", &json_ct), 400);
    assert_eq!(send("{\"WHERE\": {}}", &json_ct), 400, "unknown fields are refused");
    assert_eq!(send("{}", &[("Content-Type", "application/json"), ("Content-Encoding", "gzip")]), 415);
    assert_eq!(send("{}", &[("Content-Type", "text/plain")]), 415);
    let big = format!("{{\"ids\": [\"{}\"]}}", "x".repeat(4096));
    assert_eq!(send(&big, &json_ct), 413);
    let wide: Vec<Value> = (0..30).map(|i| json!({"level": i})).collect();
    let wide = json!({"where": {"$or": wide}}).to_string();
    assert_eq!(send(&wide, &json_ct), 400, "filter over max_filter_terms");
}

#[test]
fn a_plan_without_an_exact_filter_is_refused_naming_the_construct() {
    let s = setup();
    let (status, body) = s.vecgate.call("POST", &format!("{}/get", s.col), Some(&s.auditor), Some(&json!({})));
    assert_eq!(status, 403, "{body}");
    assert!(body["message"].as_str().unwrap().contains("region"), "{body}");
}

#[test]
fn post_filter_only_collections_strip_instead_of_refusing() {
    let s = setup_with(|o| {
        o.collections_yaml = "  - name: \"*\"\n    resource_kind: document\n    post_filter_only: true\n".into();
    });
    let (status, body) = s.vecgate.call("POST", &format!("{}/get", s.col), Some(&s.auditor), Some(&json!({})));
    assert_eq!(status, 200, "{body}");
    // region != "EMEA" errors (no match) on n1, which has no region.
    assert_eq!(ids_of(&body), set(&["f2", "h1"]));
}

#[test]
fn collections_are_authorized_by_name() {
    let s = setup();
    let collections = format!("{DEFAULT_DB_PATH}/collections");
    s.chroma.create_collection("private-notes");
    // get-or-create of an existing collection is a read.
    let (status, body) = s.vecgate.call("POST", &collections, Some(&s.alice), Some(&json!({"name": "docs", "get_or_create": true})));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], json!(s.col_id));
    let (status, _) = s.vecgate.call("POST", &collections, Some(&s.alice), Some(&json!({"name": "docs-new"})));
    assert_eq!(status, 200);
    let (status, _) = s.vecgate.call("POST", &collections, Some(&s.alice), Some(&json!({"name": "private-2"})));
    assert_eq!(status, 403);
    // Listing shows only readable collections; counting agrees.
    let (_, list) = s.vecgate.call("GET", &collections, Some(&s.alice), None);
    let names: BTreeSet<String> = list.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(names, set(&["docs", "docs-new"]));
    let (_, count) = s.vecgate.call("GET", &format!("{DEFAULT_DB_PATH}/collections_count"), Some(&s.alice), None);
    assert_eq!(count, json!(2));
    let (status, _) = s.vecgate.call("GET", &format!("{collections}/private-notes"), Some(&s.alice), None);
    assert_eq!(status, 403);
    let (status, _) = s.vecgate.call("DELETE", &format!("{collections}/docs-new"), Some(&s.alice), None);
    assert_eq!(status, 403);
    let (status, _) = s.vecgate.call("DELETE", &format!("{collections}/docs-new"), Some(&s.root), None);
    assert_eq!(status, 200);
    // Admin routes: vecgate:admin.
    let (status, _) = s.vecgate.call("POST", "/api/v2/tenants", Some(&s.alice), Some(&json!({"name": "tenant-two"})));
    assert_eq!(status, 403);
    let (status, body) = s.vecgate.call("POST", "/api/v2/tenants", Some(&s.root), Some(&json!({"name": "tenant-two"})));
    assert_eq!(status, 200, "{body}");
}

#[test]
fn every_request_leaves_one_audit_line_without_the_token() {
    let s = setup();
    s.vecgate.call("POST", &format!("{}/get", s.col), Some(&s.alice), Some(&json!({})));
    s.vecgate.call("POST", &format!("{}/get", s.col), None, Some(&json!({})));
    s.vecgate.call("GET", &format!("{}/count", s.col), Some(&s.guest), None);
    let lines = s.vecgate.audit_lines();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0]["subject"], "alice");
    assert_eq!(lines[0]["decision"], "filter");
    assert_eq!(lines[0]["collection"], "docs");
    assert_eq!(lines[0]["operation"], "get");
    assert_eq!(lines[0]["hits_returned"], 2);
    assert_eq!(lines[1]["status"], 401);
    assert_eq!(lines[2]["decision"], "deny");
    let raw = serde_json::to_string(&lines).unwrap();
    assert!(!raw.contains(&s.alice) && !raw.contains(&s.guest));
}

#[test]
fn upstream_down_is_502_and_slow_is_504() {
    let dead = support::free_port();
    let s = VecgateServer::start(&VecgateOptions::chroma(&format!("http://127.0.0.1:{dead}"), &policies()));
    let alice = token("alice", &["user"], &json!({"department": "finance"}));
    let path = format!("{DEFAULT_DB_PATH}/collections/9a6f4bde-33f2-4d1c-9b5e-2f9a7f0c1d11/get");
    let (status, body) = s.call("POST", &path, Some(&alice), Some(&json!({})));
    assert_eq!(status, 502, "{body}");

    // An upstream that accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let mut opts = VecgateOptions::chroma(&format!("http://127.0.0.1:{port}"), &policies());
    opts.upstream_timeout = "1s";
    let s = VecgateServer::start(&opts);
    // The test client gives up after 60 s, so a hanging proxy fails here too.
    let (status, body) = s.call("POST", &path, Some(&alice), Some(&json!({})));
    assert_eq!(status, 504, "{body}");
}

/// The stub upstream, answering record reads with a hit the filter should have excluded.
fn recording_upstream() -> (String, support::stub_upstream::Seen) {
    support::stub_upstream::stub_upstream(|line| {
        if line.contains("/by-id/") {
            json!({"id": "9a6f4bde-33f2-4d1c-9b5e-2f9a7f0c1d11", "name": "docs"}).to_string()
        } else {
            json!({"ids": ["leak"], "metadatas": [{"department": "finance"}], "include": ["metadatas"]}).to_string()
        }
    })
}

#[test]
fn always_denied_is_answered_without_asking_the_database_for_records() {
    let (url, seen) = recording_upstream();
    let vecgate = VecgateServer::start(&VecgateOptions::chroma(&url, &policies()));
    let guest = token("guest", &["guest"], &json!({}));
    let col = format!("{DEFAULT_DB_PATH}/collections/9a6f4bde-33f2-4d1c-9b5e-2f9a7f0c1d11");
    let (status, got) = vecgate.call("POST", &format!("{col}/get"), Some(&guest), Some(&json!({"include": ["metadatas"]})));
    assert_eq!((status, got), (200, json!({"ids": [], "documents": null, "embeddings": null, "metadatas": [], "uris": null, "include": ["metadatas"]})));
    let (status, got) = vecgate.call("POST", &format!("{col}/query"), Some(&guest), Some(&json!({"query_embeddings": [[1.0, 0.0]], "n_results": 3})));
    assert_eq!(status, 200);
    assert_eq!(got["ids"], json!([[]]));
    assert_eq!(got["distances"], json!([[]]));
    let (status, got) = vecgate.call("GET", &format!("{col}/count"), Some(&guest), None);
    assert_eq!((status, got), (200, json!(0)));
    let (status, got) = vecgate.call("POST", &format!("{col}/delete"), Some(&guest), Some(&json!({"ids": ["a"]})));
    assert_eq!((status, got), (200, json!({"deleted": 0})));
    let (status, _) = vecgate.call("POST", &format!("{col}/add"), Some(&guest), Some(&json!({"ids": ["a"], "embeddings": [[1.0, 0.0]], "metadatas": [{"department": "hr"}]})));
    assert_eq!(status, 403);
    let seen = seen.lock().unwrap().clone();
    assert!(seen.iter().all(|l| l.contains("/by-id/") || l.ends_with("/get HTTP/1.1")), "{seen:?}");
    // The only record read is the write path's own lookup of existing ids.
    assert!(seen.iter().filter(|l| l.ends_with("/get HTTP/1.1")).count() <= 1, "{seen:?}");

    // The response filter is the second line of defence: a hit the filter should have excluded
    // is stripped even if the database returns it.
    let alice = token("alice", &["user"], &json!({"department": "hr"}));
    let (status, got) = vecgate.call("POST", &format!("{col}/get"), Some(&alice), Some(&json!({})));
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["ids"], json!([]));
}

/// An answer vecgate checked and did not change goes back byte for byte (numbers and spacing
/// as the database wrote them); an answer it changed is re-serialised without the stripped hit.
#[test]
fn checked_answers_keep_the_database_bytes_unless_a_hit_is_stripped() {
    const ANSWER: &str = r#"{"ids": [["h1"]], "distances": [[0.50000]], "metadatas": [[{"department": "hr"}]], "documents": [["x"]], "embeddings": null, "uris": null, "include": ["metadatas", "documents", "distances"]}"#;
    let (url, _) = support::stub_upstream::stub_upstream(|line| {
        if line.contains("/by-id/") {
            json!({"id": "9a6f4bde-33f2-4d1c-9b5e-2f9a7f0c1d11", "name": "docs"}).to_string()
        } else {
            ANSWER.to_string()
        }
    });
    let vecgate = VecgateServer::start(&VecgateOptions::chroma(&url, &policies()));
    let query = format!(
        "{}{DEFAULT_DB_PATH}/collections/9a6f4bde-33f2-4d1c-9b5e-2f9a7f0c1d11/query",
        vecgate.url()
    );
    let body = json!({"query_embeddings": [[1.0, 0.0]], "n_results": 1,
                      "include": ["metadatas", "documents", "distances"]});
    let ask = |department: &str| {
        let token = token("alice", &["user"], &json!({"department": department}));
        let response = ureq::post(&query)
            .set("Authorization", &format!("Bearer {token}"))
            .send_json(body.clone())
            .unwrap();
        (response.status(), response.into_string().unwrap())
    };
    assert_eq!(ask("hr"), (200, ANSWER.to_string()));
    let (status, text) = ask("finance");
    assert_eq!(status, 200);
    let got: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(got["ids"], json!([[]]));
    assert_eq!(got["distances"], json!([[]]));
    assert_eq!(got["metadatas"], json!([[]]));
    let stripped: Vec<_> = vecgate.audit_lines().iter().map(|l| l["hits_stripped"].clone()).collect();
    assert_eq!(stripped, [json!(0), json!(1)]);
}

#[test]
fn writes_must_keep_required_attributes_as_scalars() {
    let s = setup_with(|o| {
        o.collections_yaml = "  - name: \"*\"\n    resource_kind: document\n    required_attrs: [department, level]\n".into();
    });
    let add = format!("{}/add", s.col);
    let update = format!("{}/update", s.col);
    for meta in [json!({"department": "finance"}), json!({"department": "finance", "level": [1]}), json!(null)] {
        let body = json!({"ids": ["f8"], "embeddings": [[0.3, 0.3]], "metadatas": [meta]});
        let (status, got) = s.vecgate.call("POST", &add, Some(&s.root), Some(&body));
        assert_eq!(status, 403, "{meta}: {got}");
    }
    let (status, _) = s.vecgate.call("POST", &update, Some(&s.root), Some(&json!({"ids": ["f1"], "metadatas": [{"level": null}]})));
    assert_eq!(status, 403);
    let (status, got) = s.vecgate.call("POST", &update, Some(&s.root), Some(&json!({"ids": ["f1"], "metadatas": [{"level": 2}]})));
    assert_eq!(status, 200, "{got}");
    assert!(!s.chroma.get_ids(&s.col_id, None).unwrap().contains(&"f8".to_string()));
}

#[test]
fn the_admin_listener_reports_health_readiness_and_metrics() {
    let s = setup();
    assert_eq!(s.vecgate.admin_get("/healthz").0, 200);
    let (status, ready) = s.vecgate.admin_get("/readyz");
    assert_eq!(status, 200, "{ready}");
    s.vecgate.call("POST", &format!("{}/get", s.col), Some(&s.alice), Some(&json!({})));
    s.vecgate.call("POST", &format!("{}/get", s.col), Some("garbage"), Some(&json!({})));
    let (status, text) = s.vecgate.admin_get("/metrics");
    assert_eq!(status, 200);
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
            .to_string()
    };
    assert!(line("vecgate_requests_total{backend=\"chroma\",decision=\"filter\",operation=\"get\",protocol=\"http\",status_class=\"2xx\"}").ends_with(" 1"));
    assert!(line("vecgate_auth_failures_total{reason=\"malformed\"}").ends_with(" 1"));
    assert!(line("vecgate_policy_version_info{version=\"1\"}").ends_with(" 1"));
    assert!(!text.contains("alice"), "no principal ids in metrics");
    // Readiness follows the database.
    drop(s.chroma);
    assert_eq!(s.vecgate.admin_get("/readyz").0, 503);
}

#[test]
fn shadow_mode_computes_everything_and_changes_nothing() {
    let s = setup_with(|o| o.extra_yaml = "mode: shadow\n".into());
    // Reads pass unchanged; the audit line says what enforce mode would have done.
    let (status, got) = s.vecgate.call("POST", &format!("{}/get", s.col), Some(&s.alice), Some(&json!({})));
    assert_eq!(status, 200, "{got}");
    assert_eq!(ids_of(&got), set(&["f1", "f2", "h1", "h2", "n1"]));
    let (_, count) = s.vecgate.call("GET", &format!("{}/count", s.col), Some(&s.guest), None);
    assert_eq!(count, json!(5));
    // A write enforce mode would refuse goes through.
    let body = json!({"ids": ["h9"], "embeddings": [[0.2, 0.2]], "metadatas": [{"department": "hr", "level": 1}]});
    let (status, got) = s.vecgate.call("POST", &format!("{}/add", s.col), Some(&s.alice), Some(&body));
    assert!(status == 200 || status == 201, "{status} {got}");
    assert!(s.chroma.get_ids(&s.col_id, None).unwrap().contains(&"h9".to_string()));
    // Even a request without a token reaches the database.
    let (status, _) = s.vecgate.call("POST", &format!("{}/get", s.col), None, Some(&json!({})));
    assert_eq!(status, 200);

    let lines = s.vecgate.audit_lines();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(lines.iter().all(|l| l["mode"] == "shadow"));
    assert_eq!((lines[0]["decision"].as_str(), lines[0]["hits_stripped"].as_u64(), lines[0]["enforced_status"].as_u64()), (Some("filter"), Some(3), Some(200)));
    assert_eq!(lines[1]["decision"], "deny");
    assert_eq!((lines[2]["decision"].as_str(), lines[2]["enforced_status"].as_u64()), (Some("deny"), Some(403)));
    assert_eq!(lines[3]["enforced_status"], 401);
}

/// The same failure is recorded with the same decision in enforce and shadow mode (shadow
/// additionally says what enforce would have answered): a malformed body is `error`, a
/// missing token and a refused write are `deny`.
#[test]
fn the_same_failure_gets_the_same_decision_in_both_modes() {
    let mut decisions = Vec::new();
    for mode in ["enforce", "shadow"] {
        let s = setup_with(|o| o.extra_yaml = format!("mode: {mode}\n"));
        let get = format!("{}/get", s.col);
        s.vecgate.call("POST", &get, Some(&s.alice), Some(&json!({"wehre": {"department": "hr"}})));
        s.vecgate.call("POST", &get, None, Some(&json!({})));
        let add = json!({"ids": ["h9"], "embeddings": [[0.2, 0.2]], "metadatas": [{"department": "hr", "level": 1}]});
        s.vecgate.call("POST", &format!("{}/add", s.col), Some(&s.alice), Some(&add));
        let lines = s.vecgate.audit_lines();
        assert_eq!(lines.len(), 3, "{mode}: {lines:?}");
        let seen: Vec<(String, String, u64)> = lines
            .iter()
            .map(|l| {
                let status = if mode == "shadow" { &l["enforced_status"] } else { &l["status"] };
                (l["decision"].as_str().unwrap().to_string(), l["error"].as_str().unwrap_or("").to_string(), status.as_u64().unwrap())
            })
            .collect();
        decisions.push(seen);
    }
    let expected = vec![
        ("error".to_string(), "bad_request".to_string(), 400),
        ("deny".to_string(), "unauthenticated".to_string(), 401),
        ("deny".to_string(), "forbidden".to_string(), 403),
    ];
    assert_eq!(decisions[0], expected, "enforce");
    assert_eq!(decisions[1], expected, "shadow");
}

/// One caller, one resource kind, two collection rules whose records keep their attributes
/// under different keys: each collection's reads get the filter of its own rule, in either
/// order and again on later requests (vecgate keeps translated filters per plan, rule and
/// database; a filter kept for one rule must never serve the other).
#[test]
fn translated_filters_are_kept_per_collection_rule() {
    let chroma = ChromaServer::start();
    let plain = chroma.create_collection("docs-plain");
    let prefixed = chroma.create_collection("docs-acl");
    chroma.add(
        &plain,
        &[
            ("p-fin".into(), json!({"department": "finance"}), vec![1.0, 0.0]),
            ("p-hr".into(), json!({"department": "hr", "acl_department": "finance"}), vec![0.0, 1.0]),
        ],
    );
    chroma.add(
        &prefixed,
        &[
            ("a-fin".into(), json!({"acl_department": "finance", "department": "hr"}), vec![1.0, 0.0]),
            ("a-hr".into(), json!({"acl_department": "hr", "department": "finance"}), vec![0.0, 1.0]),
        ],
    );
    let mut opts = VecgateOptions::chroma(chroma.url(), &policies());
    opts.collections_yaml = "  - name: \"docs-acl\"\n    resource_kind: document\n    attr_prefix: acl_\n  - name: \"*\"\n    resource_kind: document\n".to_string();
    let vecgate = VecgateServer::start(&opts);
    let alice = token("alice", &["user"], &json!({"department": "finance"}));
    let read = |id: &str| {
        let (status, got) = vecgate.call("POST", &format!("{DEFAULT_DB_PATH}/collections/{id}/get"), Some(&alice), Some(&json!({})));
        assert_eq!(status, 200, "{got}");
        ids_of(&got)
    };
    for (first, second) in [(&plain, &prefixed), (&prefixed, &plain), (&plain, &prefixed)] {
        for id in [first, second] {
            let expected = if id == &plain { set(&["p-fin"]) } else { set(&["a-fin"]) };
            assert_eq!(read(id), expected, "collection {id}");
        }
    }
}
