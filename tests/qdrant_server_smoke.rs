//! Starts the Qdrant the environment selects through `tests/support` (the test double, or the
//! real server of `QDRANT_URL` / `QDRANT_BIN`) and checks a few answers that vecgate's Qdrant
//! tests rely on: envelopes, the negation trap, ids as query inputs, error statuses, the API
//! key, and the request recorder. The full comparison of the double with a real server is
//! tests/qdrant_conformance.rs; with the measured answers, tests/python/
//! test_qdrant_server_conformance.py.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Value};
use support::QdrantServer;

fn seed(qdrant: &QdrantServer) {
    qdrant.create_collection("demo", 4);
    qdrant.upsert(
        "demo",
        &[
            (
                json!(1),
                vec![0.05, 0.61, 0.76, 0.74],
                json!({"metadata": {"dept": "eng"}}),
            ),
            (
                json!(2),
                vec![0.19, 0.81, 0.75, 0.11],
                json!({"metadata": {"dept": "hr"}}),
            ),
            (
                json!(3),
                vec![0.36, 0.55, 0.47, 0.94],
                json!({"metadata": {}}),
            ),
            (
                json!("5c56c793-69f3-4fbf-87e6-c4bf54c28c26"),
                vec![0.18, 0.01, 0.85, 0.8],
                json!({"metadata": {"dept": ["eng", "hr"]}}),
            ),
        ],
    );
}

fn eng() -> Value {
    json!({"must": [{"key": "metadata.dept", "match": {"value": "eng"}}]})
}

#[test]
fn filters_envelopes_and_errors() {
    let qdrant = QdrantServer::start();
    seed(&qdrant);

    assert_eq!(
        qdrant.scroll_ids("demo", Some(&eng())),
        Ok(vec![
            json!(1),
            json!("5c56c793-69f3-4fbf-87e6-c4bf54c28c26")
        ])
    );
    // must_not admits the point that lacks the key (3), and drops the array holding "eng".
    let not_eng = json!({"must_not": [{"key": "metadata.dept", "match": {"value": "eng"}}]});
    assert_eq!(
        qdrant.scroll_ids("demo", Some(&not_eng)),
        Ok(vec![json!(2), json!(3)])
    );
    assert_eq!(qdrant.count("demo", None), Ok(4));
    assert_eq!(
        qdrant.count("demo", Some(&json!({"must": [{"has_id": []}]}))),
        Ok(0)
    );
    assert_eq!(qdrant.count("demo", Some(&json!({"should": []}))), Ok(4));

    // query: result.points, payload off by default, version and score present.
    let answer = qdrant
        .post_json(
            "/collections/demo/points/query",
            &json!({"query": [0.2, 0.1, 0.9, 0.7], "filter": eng()}),
        )
        .unwrap();
    assert_eq!(answer["status"], "ok");
    let points = answer["result"]["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    for p in points {
        assert!(
            p.get("payload").is_none() && p.get("vector").is_none(),
            "{p}"
        );
        assert_eq!(p["version"], json!(1));
        assert!(p["score"].is_f64());
    }

    // A point id as the query input ignores the filter for the vector it reads...
    let by_id = qdrant
        .post_json(
            "/collections/demo/points/query",
            &json!({"query": 2, "filter": eng()}),
        )
        .unwrap();
    assert_eq!(by_id["result"]["points"].as_array().unwrap().len(), 2);
    // ...and a missing one is Qdrant's 404.
    let (status, body) = qdrant
        .post_json("/collections/demo/points/query", &json!({"query": 99}))
        .unwrap_err();
    assert_eq!(status, 404);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body["status"]["error"],
        "Not found: No point with id 99 found"
    );

    // GET points/{id}: payload and vector; missing point and missing collection are 404s.
    let point = qdrant.get_json("/collections/demo/points/2").unwrap();
    assert_eq!(
        point["result"]["payload"],
        json!({"metadata": {"dept": "hr"}})
    );
    assert_eq!(point["result"]["vector"].as_array().map(Vec::len), Some(4));
    assert_eq!(
        qdrant
            .get_json("/collections/demo/points/99")
            .unwrap_err()
            .0,
        404
    );
    let (status, body) = qdrant.scroll_ids("missing", None).unwrap_err();
    assert_eq!(status, 404);
    assert!(
        body.contains("Collection `missing` doesn't exist!"),
        "{body}"
    );

    // Parse errors are 400, validation errors 422, both in Qdrant's error envelope.
    let (status, body) = qdrant
        .scroll_ids("demo", Some(&json!({"mustt": []})))
        .unwrap_err();
    assert_eq!(status, 400);
    assert!(body.contains("Format error in JSON body"), "{body}");
    let (status, body) = qdrant
        .scroll_ids("demo", Some(&json!({"must": [{"key": "metadata.dept"}]})))
        .unwrap_err();
    assert_eq!(status, 422);
    assert!(body.contains("Validation error in JSON body"), "{body}");

    // Deleting by filter leaves the rest.
    qdrant
        .post_json(
            "/collections/demo/points/delete?wait=true",
            &json!({"filter": eng()}),
        )
        .unwrap();
    assert_eq!(
        qdrant.scroll_ids("demo", None),
        Ok(vec![json!(2), json!(3)])
    );
}

#[test]
fn api_key_and_request_recorder() {
    let qdrant = QdrantServer::start_with_api_key("test-key");
    seed(&qdrant); // the helpers send the key

    let raw = ureq::AgentBuilder::new().try_proxy_from_env(false).build();
    let url = format!("{}/collections/demo/points/scroll", qdrant.url());
    match raw.post(&url).send_json(json!({})) {
        Err(ureq::Error::Status(401, _)) => {}
        other => panic!("no key should be a 401, got {other:?}"),
    }
    match raw.post(&url).set("api-key", "wrong").send_json(json!({})) {
        Err(ureq::Error::Status(401, _)) => {}
        other => panic!("a wrong key should be a 401, got {other:?}"),
    }
    let ok = raw
        .post(&url)
        .set("Authorization", "Bearer test-key")
        .send_json(json!({"filter": eng()}));
    assert_eq!(ok.map(|r| r.status()).ok(), Some(200));
    assert!(raw.get(&format!("{}/healthz", qdrant.url())).call().is_ok());

    let recorded = qdrant.recorded_requests();
    let last = recorded.last().unwrap();
    assert_eq!(last["method"], "GET");
    assert_eq!(last["path"], "/healthz");
    let scroll = &recorded[recorded.len() - 2];
    assert_eq!(scroll["path"], "/collections/demo/points/scroll");
    assert_eq!(scroll["headers"]["authorization"], "Bearer test-key");
    assert_eq!(scroll["body"]["filter"], eng());

    qdrant.clear_recorded_requests();
    assert_eq!(qdrant.recorded_requests(), Vec::<Value>::new());
}
