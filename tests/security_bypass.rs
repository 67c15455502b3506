//! Attempts to get a request past vecgate's filter (issue 8, item 2): ambiguous bodies, encoded
//! bodies, path tricks, request smuggling, resource exhaustion, and other departments' ids.
//! Body and transport attacks run against a counting stand-in upstream (nothing but the
//! collection-name lookup may reach it); data attacks run against the real Chroma server with
//! two principals (alice: finance, bob: hr).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use support::chroma::DEFAULT_DB_PATH;
use support::vecgate::{token, VecgateOptions, VecgateServer};
use support::{repo_root, ChromaServer};

const COLLECTION_ID: &str = "9a6f4bde-33f2-4d1c-9b5e-2f9a7f0c1d11";

use support::stub_upstream::{counting_upstream, Seen};

fn policies() -> PathBuf {
    repo_root().join("tests/fixtures/proxy/policies")
}

fn alice() -> String {
    token("alice", &["user"], &json!({"department": "finance"}))
}

fn bob() -> String {
    token("bob", &["user"], &json!({"department": "hr"}))
}

fn col_path(id: &str) -> String {
    format!("{DEFAULT_DB_PATH}/collections/{id}")
}

struct Gate {
    vecgate: VecgateServer,
    seen: Seen,
}

fn gate() -> Gate {
    let (url, seen) = counting_upstream();
    let vecgate = VecgateServer::start(&VecgateOptions::chroma(&url, &policies()));
    Gate { vecgate, seen }
}

impl Gate {
    /// Posts raw body text with alice's token; the status.
    fn post(&self, path: &str, body: &str, headers: &[(&str, &str)]) -> u16 {
        let mut r = ureq::post(&format!("{}{path}", self.vecgate.url()))
            .set("Authorization", &format!("Bearer {}", alice()));
        let mut has_type = false;
        for (k, v) in headers {
            has_type |= k.eq_ignore_ascii_case("content-type");
            r = r.set(k, v);
        }
        if !has_type {
            r = r.set("Content-Type", "application/json");
        }
        match r.send_string(body) {
            Ok(resp) => resp.status(),
            Err(ureq::Error::Status(code, _)) => code,
            Err(e) => panic!("{path}: {e}\n{}", self.vecgate.log_tail()),
        }
    }

    /// Request lines the upstream saw other than the collection-name lookup.
    fn forwarded(&self) -> Vec<String> {
        self.seen.lock().unwrap().iter().filter(|l| !l.contains("/by-id/")).cloned().collect()
    }

    fn assert_nothing_forwarded(&self) {
        let f = self.forwarded();
        assert!(f.is_empty(), "reached the upstream: {f:?}");
    }

    fn assert_still_serving(&self) {
        let (status, body) = self.vecgate.call("POST", &format!("{}/get", col_path(COLLECTION_ID)), Some(&alice()), Some(&json!({})));
        assert_eq!(status, 200, "{body}\n{}", self.vecgate.log_tail());
    }
}

/// Sends raw bytes on one connection and reads everything back until the server closes it.
/// The write side stays open: hyper (without `half_close`) drops a connection whose client
/// half-closed, sometimes before the answer is written, which would make statuses vanish at
/// random. Every request here ends with the server closing (`Connection: close` or an error).
fn raw_exchange(port: u16, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// The status codes of every response in a raw answer.
fn statuses(answer: &str) -> Vec<u16> {
    answer
        .split("\r\n")
        .filter(|l| l.starts_with("HTTP/1."))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect()
}

#[test]
fn duplicate_keys_anywhere_in_a_body_are_400_and_not_forwarded() {
    let g = gate();
    let col = col_path(COLLECTION_ID);
    let cases = [
        ("get", r#"{"ids": ["f1"], "ids": ["h1"]}"#),
        ("get", r#"{"where": {"department": "hr", "department": "finance"}}"#),
        ("get", r#"{"where": {"department": "finance"}, "where": {"department": "hr"}}"#),
        ("get", r#"{"where": {"$and": [{"level": 1}, {"department": {"$eq": "hr", "$eq": "finance"}}]}}"#),
        ("get", r#"{"where": {"$or": [{"level": 1}], "$or": [{"level": 2}]}}"#),
        ("get", r#"{"where_document": {"$contains": "a", "$contains": "b"}}"#),
        ("get", r#"{"include": ["documents"], "include": ["metadatas"]}"#),
        ("get", r#"{"limit": 1, "limit": 100}"#),
        ("query", r#"{"query_embeddings": [[1.0, 0.0]], "where": {"level": 1, "level": 2}}"#),
        ("query", r#"{"query_embeddings": [[1.0, 0.0]], "query_embeddings": [[0.0, 1.0]]}"#),
        ("delete", r#"{"ids": ["f1"], "ids": ["h1"]}"#),
        ("delete", r#"{"where": {"owner": "alice", "owner": "bob"}}"#),
        ("add", r#"{"ids": ["f9"], "embeddings": [[0.1, 0.1]], "metadatas": [{"department": "finance", "department": "hr", "level": 1}]}"#),
        ("add", r#"{"ids": ["f9"], "ids": ["h9"], "embeddings": [[0.1, 0.1]], "metadatas": [{"department": "finance", "level": 1}]}"#),
        ("upsert", r#"{"ids": ["f9"], "embeddings": [[0.1, 0.1]], "metadatas": [{"department": "finance", "level": 1, "level": 9}]}"#),
        ("update", r#"{"ids": ["f1"], "metadatas": [{"department": "finance", "department": "hr"}]}"#),
    ];
    for (op, body) in cases {
        assert_eq!(g.post(&format!("{col}/{op}"), body, &[]), 400, "{op} {body}");
    }
    g.assert_nothing_forwarded();
    g.assert_still_serving();
}

#[test]
fn case_variants_of_known_fields_are_400_and_not_forwarded() {
    let g = gate();
    let col = col_path(COLLECTION_ID);
    for (op, body) in [
        ("get", r#"{"WHERE": {"department": "hr"}}"#),
        ("get", r#"{"Where": {"department": "hr"}}"#),
        ("get", r#"{"Ids": ["h1"]}"#),
        ("get", r#"{"IDS": ["h1"]}"#),
        ("get", r#"{"where": {}, "Where": {"department": "hr"}}"#),
        ("get", r#"{"Include": ["metadatas"]}"#),
        ("get", r#"{"where ": {"department": "hr"}}"#),
        ("query", r#"{"query_embeddings": [[1.0, 0.0]], "Where": {"department": "hr"}}"#),
        ("delete", r#"{"Ids": ["h1"]}"#),
        ("delete", r#"{"WHERE": {"department": "hr"}}"#),
        ("update", r#"{"Ids": ["h1"], "metadatas": [{"level": 1}]}"#),
    ] {
        assert_eq!(g.post(&format!("{col}/{op}"), body, &[]), 400, "{op} {body}");
    }
    g.assert_nothing_forwarded();
    g.assert_still_serving();
}

#[test]
fn encoded_bodies_are_415_and_never_forwarded() {
    let g = gate();
    let get = format!("{}/get", col_path(COLLECTION_ID));
    for encoding in ["gzip", "br", "deflate", "GZIP", "x-gzip", "compress", "zstd", "identity, gzip", "gzip, identity"] {
        let status = g.post(&get, "{}", &[("Content-Encoding", encoding)]);
        assert_eq!(status, 415, "Content-Encoding: {encoding}");
    }
    // A body that really is gzip-compressed JSON (`{}`).
    let gz: &[u8] = &[0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xab, 0xae, 0x05, 0x00, 0x43, 0xbf, 0xa6, 0xa3, 0x02, 0x00, 0x00, 0x00];
    let r = ureq::post(&format!("{}{get}", g.vecgate.url()))
        .set("Authorization", &format!("Bearer {}", alice()))
        .set("Content-Type", "application/json")
        .set("Content-Encoding", "gzip")
        .send_bytes(gz);
    let status = match r {
        Ok(resp) => resp.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(status, 415);
    assert!(g.seen.lock().unwrap().is_empty(), "{:?}", g.seen.lock().unwrap());
    g.assert_still_serving();
}

#[test]
fn path_tricks_never_reach_the_upstream() {
    let g = gate();
    let port = g.vecgate.port();
    let tok = alice();
    let col = col_path(COLLECTION_ID);
    let upper = col_path(&COLLECTION_ID.to_uppercase());
    let paths = [
        format!("{col}//get"),
        format!("{col}/get/"),
        format!("/{col}/get"),
        format!("{col}%2Fget"),
        format!("{col}%2fget"),
        format!("{col}/%67et"),
        format!("{col}/x/../get"),
        format!("{col}/x/%2e%2e/get"),
        format!("{col}/x/%2E%2E/get"),
        format!("{col}/./get"),
        format!("{col}/get/."),
        format!("{col}/get%00"),
        format!("{col}/get;x=1"),
        format!("{col}/GET"),
        format!("{upper}/get/"),
        format!("{upper}//get"),
        format!("{DEFAULT_DB_PATH}/collections/../collections/{COLLECTION_ID}/get"),
        format!("/api/v2/../v2/tenants/default_tenant/databases/default_database/collections/{COLLECTION_ID}/get"),
        format!("/api/v1/collections/{COLLECTION_ID}/get"),
        "/api/v2/reset/".to_string(),
        "/api/v2//reset".to_string(),
        "/api/v2/%72eset".to_string(),
    ];
    for path in &paths {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {tok}\r\n\
             Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        );
        let answer = raw_exchange(port, request.as_bytes());
        // Each is an unknown route to vecgate's classifier (which refuses `//`, a trailing
        // `/`, dot segments, %-encoding, NUL, `;`, and any path outside the routes): 403.
        assert_eq!(statuses(&answer), vec![403], "{path}\n{answer}");
    }
    g.assert_nothing_forwarded();
    // Absolute-form request targets naming another host or the upstream itself.
    for target in [format!("http://127.0.0.1:1{col}/get"), format!("http://evil.test{col}//get")] {
        let request = format!(
            "POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {tok}\r\n\
             Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        );
        let answer = raw_exchange(port, request.as_bytes());
        // hyper hands vecgate the path of an absolute-form target; the authority is never a
        // destination. `{col}/get` is served as the filtered get; `{col}//get` is unknown.
        let want = if target.contains("//get") { 403 } else { 200 };
        assert_eq!(statuses(&answer), vec![want], "{target}: {answer}");
    }
    assert_eq!(g.forwarded(), vec![format!("POST {col}/get HTTP/1.1")], "{:?}", g.forwarded());
    g.assert_still_serving();
}

#[test]
fn smuggling_shapes_never_deliver_the_hidden_request() {
    let g = gate();
    let port = g.vecgate.port();
    let get = format!("{}/get", col_path(COLLECTION_ID));
    // The hidden request needs no token (health routes are passed through), so if vecgate
    // ever treated it as a request of its own, the upstream would see `GET /api/v2/version`.
    let hidden = "GET /api/v2/version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let chunked_then_hidden = format!("0\r\n\r\n{hidden}");
    let shapes = [
        // CL.TE: Content-Length covers everything, chunked ends early.
        format!(
            "POST {get} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{chunked_then_hidden}",
            chunked_then_hidden.len()
        ),
        // TE.CL: Transfer-Encoding first, short Content-Length.
        format!(
            "POST {get} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\
             Content-Type: application/json\r\nContent-Length: 3\r\n\r\n{chunked_then_hidden}"
        ),
        // Two different Content-Length headers.
        format!(
            "POST {get} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: 2\r\nContent-Length: {}\r\n\r\n{{}}{hidden}",
            2 + hidden.len()
        ),
        // One Content-Length header with two values.
        format!(
            "POST {get} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: 2, {}\r\n\r\n{{}}{hidden}",
            2 + hidden.len()
        ),
        // Obfuscated Transfer-Encoding values next to a Content-Length.
        format!(
            "POST {get} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nTransfer-Encoding: xchunked\r\n\r\n{chunked_then_hidden}",
            chunked_then_hidden.len()
        ),
        format!(
            "POST {get} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nTransfer-Encoding: chunked, identity\r\n\r\n{chunked_then_hidden}",
            chunked_then_hidden.len()
        ),
        format!(
            "POST {get} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nTransfer-Encoding : chunked\r\n\r\n{chunked_then_hidden}",
            chunked_then_hidden.len()
        ),
        format!(
            "POST {get} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nTransfer-Encoding:\tchunked\r\nTransfer-Encoding: identity\r\n\r\n{chunked_then_hidden}",
            chunked_then_hidden.len()
        ),
        // A line folded header carrying the TE.
        format!(
            "POST {get} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nX-Foo: a\r\n Transfer-Encoding: chunked\r\n\r\n{chunked_then_hidden}",
            chunked_then_hidden.len()
        ),
    ];
    // CL.TE and TE.CL: hyper reads the body as chunked (RFC 9112 §6.3: Transfer-Encoding
    // overrides Content-Length), so the outer request is an ordinary one without a token: 401,
    // with `Connection: close`, and the bytes after the chunked body are never read as a
    // request. Every other shape is refused by hyper's parser: 400.
    let want = [401, 401, 400, 400, 400, 400, 400, 400, 400];
    assert_eq!(shapes.len(), want.len());
    for (shape, want) in shapes.iter().zip(want) {
        let answer = raw_exchange(port, shape.as_bytes());
        assert_eq!(statuses(&answer), vec![want], "shape:\n{shape}\n---\n{answer}");
    }
    let seen = g.seen.lock().unwrap().clone();
    assert!(seen.is_empty(), "the upstream saw: {seen:?}");
    g.assert_still_serving();
}

#[test]
fn deep_nesting_and_huge_filters_are_400_and_the_server_still_answers() {
    let g = gate();
    let col = col_path(COLLECTION_ID);
    let depth = 10_000;
    let nested_arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let cases = [
        format!("{{\"where\": {}{{\"level\": 1}}{}}}", "{\"$and\": [".repeat(depth), "]}".repeat(depth)),
        format!("{{\"where\": {}1{}}}", "{\"a\": ".repeat(depth), "}".repeat(depth)),
        format!("{{\"ids\": {nested_arrays}}}"),
        nested_arrays.clone(),
        format!("{{\"where_document\": {}{{\"$contains\": \"x\"}}{}}}", "{\"$or\": [".repeat(depth), "]}".repeat(depth)),
    ];
    for body in &cases {
        assert_eq!(g.post(&format!("{col}/get"), body, &[]), 400, "{}", &body[..40]);
        assert_eq!(g.post(&format!("{col}/delete"), body, &[]), 400, "{}", &body[..40]);
    }
    let meta = format!("{{\"ids\": [\"f9\"], \"embeddings\": [[0.1, 0.1]], \"metadatas\": [{{\"department\": \"finance\", \"x\": {}1{}}}]}}", "{\"a\": ".repeat(depth), "}".repeat(depth));
    assert_eq!(g.post(&format!("{col}/add"), &meta, &[]), 400);
    g.assert_still_serving();

    // A 5 000-leaf `$or` (default max_filter_terms is 500).
    let leaves: Vec<Value> = (0..5000).map(|i| json!({"level": i})).collect();
    let wide = json!({"where": {"$or": leaves}}).to_string();
    assert_eq!(g.post(&format!("{col}/get"), &wide, &[]), 400);
    assert_eq!(g.post(&format!("{col}/delete"), &wide, &[]), 400);
    let q = json!({"query_embeddings": [[1.0, 0.0]], "where": {"$or": (0..5000).map(|i| json!({"level": i})).collect::<Vec<_>>()}}).to_string();
    assert_eq!(g.post(&format!("{col}/query"), &q, &[]), 400);
    let in_list = json!({"where": {"level": {"$in": (0..5000).collect::<Vec<_>>()}}}).to_string();
    // One `$in` is one term however long its list (Chroma handles long lists): forwarded.
    assert_eq!(g.post(&format!("{col}/get"), &in_list, &[]), 200);
    let forwarded = g.forwarded();
    // The first control and the `$in` get; none of the refused bodies.
    assert_eq!(forwarded.len(), 2, "{forwarded:?}");
    g.assert_still_serving();
}

// ---- real Chroma ------------------------------------------------------------------------

struct Real {
    chroma: ChromaServer,
    vecgate: VecgateServer,
    col_id: String,
}

fn real() -> Real {
    let chroma = ChromaServer::start();
    let col_id = chroma.create_collection("docs");
    chroma.add(
        &col_id,
        &[
            ("f1".into(), json!({"department": "finance", "level": 1, "owner": "alice"}), vec![1.0, 0.0]),
            ("f2".into(), json!({"department": "finance", "level": 2, "owner": "carol"}), vec![0.9, 0.1]),
            ("h1".into(), json!({"department": "hr", "level": 1, "owner": "bob"}), vec![0.0, 1.0]),
            ("h2".into(), json!({"department": "hr", "level": 2, "owner": "dave"}), vec![0.1, 0.9]),
        ],
    );
    let vecgate = VecgateServer::start(&VecgateOptions::chroma(chroma.url(), &policies()));
    Real { chroma, vecgate, col_id }
}

fn ids_of(v: &Value) -> BTreeSet<String> {
    v["ids"]
        .as_array()
        .unwrap_or_else(|| panic!("no ids in {v}"))
        .iter()
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

impl Real {
    fn stored(&self) -> Value {
        self.chroma
            .post_json(&format!("{}/get", col_path(&self.col_id)), &json!({"include": ["metadatas", "embeddings"]}))
            .unwrap()
    }
}

#[test]
fn another_departments_ids_are_never_returned_or_changed() {
    let r = real();
    let (alice, bob) = (alice(), bob());
    let before = r.stored();
    for (id_form, label) in [(r.col_id.clone(), "lower"), (r.col_id.to_uppercase(), "upper-case"), (r.col_id.replace('-', ""), "no hyphens")] {
        let col = col_path(&id_form);
        // get by ids.
        let (status, got) = r.vecgate.call("POST", &format!("{col}/get"), Some(&alice), Some(&json!({"ids": ["h1", "h2"]})));
        assert_eq!(status, 200, "{label}: {got}");
        assert_eq!(ids_of(&got), set(&[]), "{label}");
        let (status, got) = r.vecgate.call("POST", &format!("{col}/get"), Some(&bob), Some(&json!({"ids": ["f1", "f2", "h1"]})));
        assert_eq!(status, 200, "{label}: {got}");
        assert_eq!(ids_of(&got), set(&["h1"]), "{label}");
        // get with the caller's own where that names the other department.
        let (_, got) = r.vecgate.call("POST", &format!("{col}/get"), Some(&alice), Some(&json!({"where": {"department": "hr"}})));
        assert_eq!(ids_of(&got), set(&[]), "{label}");
        let (_, got) = r.vecgate.call("POST", &format!("{col}/get"), Some(&alice), Some(&json!({"where": {"$or": [{"department": "hr"}, {"level": {"$gte": 0}}]}})));
        assert_eq!(ids_of(&got), set(&["f1", "f2"]), "{label}");
        // query near the other department's vectors, with and without ids.
        let (status, got) = r.vecgate.call("POST", &format!("{col}/query"), Some(&alice), Some(&json!({"query_embeddings": [[0.0, 1.0]], "n_results": 4})));
        assert_eq!(status, 200, "{label}: {got}");
        assert_eq!(ids_of(&got), set(&["f1", "f2"]), "{label}");
        let (status, got) = r.vecgate.call("POST", &format!("{col}/query"), Some(&alice), Some(&json!({"query_embeddings": [[0.0, 1.0]], "n_results": 4, "ids": ["h1", "h2"]})));
        // The ids stay and the filter is ANDed in: nothing of hr's comes back.
        assert_eq!(status, 200, "{label}: {got}");
        assert_eq!(ids_of(&got), set(&[]), "{label}");
        // count.
        let (status, got) = r.vecgate.call("GET", &format!("{col}/count"), Some(&alice), None);
        assert_eq!((status, got), (200, json!(2)), "{label}");
        // delete another department's record, by id and by where.
        let (status, got) = r.vecgate.call("POST", &format!("{col}/delete"), Some(&alice), Some(&json!({"ids": ["h1"]})));
        assert_eq!(status, 200, "{label}: {got}");
        // Both are narrowed to what alice may delete (her own records): nothing of hr's goes.
        let (status, got) = r.vecgate.call("POST", &format!("{col}/delete"), Some(&alice), Some(&json!({"where": {"owner": "bob"}})));
        assert_eq!((status, got), (200, json!({"deleted": 0})), "{label}");
        // update of another department's record: alice may not read h1, so it is answered as
        // Chroma answers an update of an id it does not have (200, nothing changes).
        let missing = r.vecgate.call("POST", &format!("{col}/update"), Some(&alice), Some(&json!({"ids": ["no-such-id"], "metadatas": [{"topic": "x"}]})));
        assert_eq!(missing.0, 200, "{label}: update of a missing id");
        for body in [
            json!({"ids": ["h1"], "metadatas": [{"topic": "x"}]}),
            json!({"ids": ["h1"], "metadatas": [{"department": "finance"}]}),
            json!({"ids": ["h1"], "embeddings": [[1.0, 0.0]]}),
        ] {
            let got = r.vecgate.call("POST", &format!("{col}/update"), Some(&alice), Some(&body));
            assert_eq!(got, missing, "{label}: update h1 {body}");
        }
        // upsert over another department's record: refused (the documented divergence).
        let (status, _) = r.vecgate.call("POST", &format!("{col}/upsert"), Some(&alice), Some(&json!({"ids": ["h1"], "embeddings": [[1.0, 0.0]], "metadatas": [{"department": "finance", "level": 1}]})));
        assert_eq!(status, 403, "{label}: upsert h1");
        let (status, _) = r.vecgate.call("POST", &format!("{col}/upsert"), Some(&alice), Some(&json!({"ids": ["f1", "h1"], "embeddings": [[1.0, 0.0], [1.0, 0.0]], "metadatas": [{"department": "finance", "level": 1}, {"department": "hr", "level": 1}]})));
        assert_eq!(status, 403, "{label}: upsert f1+h1");
        // An add naming an existing id is decided as a new record and Chroma ignores it:
        // accepted, and h1 stays as it is (checked below).
        let (status, got) = r.vecgate.call("POST", &format!("{col}/add"), Some(&alice), Some(&json!({"ids": ["h1"], "embeddings": [[1.0, 0.0]], "metadatas": [{"department": "finance", "level": 1}]})));
        assert!(status == 200 || status == 201, "{label}: add over h1: {status} {got}");
    }
    let after = r.stored();
    assert_eq!(ids_of(&after), set(&["f1", "f2", "h1", "h2"]));
    let pick = |v: &Value, id: &str| {
        let i = v["ids"].as_array().unwrap().iter().position(|x| x == id).unwrap();
        (v["metadatas"][i].clone(), v["embeddings"][i].clone())
    };
    for id in ["h1", "h2"] {
        assert_eq!(pick(&after, id), pick(&before, id), "{id} changed");
    }
}
