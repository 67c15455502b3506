//! Issue 8's attacks on the Qdrant backend: the JWT suite (shared with the Chroma one through
//! `support::jwt_attacks`), ambiguous and encoded bodies, path tricks, oversized filters, other
//! principals' point ids in every id-taking field, and writes that try to change ACL payload.
//!
//! The upstream is the Qdrant stand-in server, which records every request it receives: that
//! record proves what reached "the database", and the stored points are read back from it
//! directly (not through vecgate) to prove nothing changed. Principals: alice (finance) and
//! bob (hr), with `tests/fixtures/proxy/policies` (read: own department; create/update: own
//! department and level <= 3; delete: own points).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};
use support::jwt_attacks::{self as attacks, hs_token, rs256_auth_yaml, rs_valid, Attack};
use support::vecgate::{token, VecgateOptions, VecgateServer};
use support::{repo_root, QdrantServer};

const HR_UUID: &str = "5c56c793-69f3-4fbf-87e6-c4bf54c28c26";
const SCROLL: &str = "/collections/docs/points/scroll";

fn alice() -> String {
    token("alice", &["user"], &json!({"department": "finance"}))
}

fn bob() -> String {
    token("bob", &["user"], &json!({"department": "hr"}))
}

fn doc(department: &str, level: i64, owner: &str) -> Value {
    json!({"page_content": format!("{department} note"), "metadata": {"department": department, "level": level, "owner": owner}})
}

struct Gate {
    qdrant: QdrantServer,
    vecgate: VecgateServer,
}

/// The stand-in with `docs` (finance: 1, 2; hr: 3, HR_UUID) and `docs_b` (hr: 1, 7; finance: 2, 8),
/// vecgate in front of it, and the seeding forgotten by the recorder.
fn gate_with(options: impl FnOnce(&mut VecgateOptions)) -> Gate {
    let qdrant = QdrantServer::start();
    qdrant.create_collection("docs", 2);
    qdrant.upsert(
        "docs",
        &[
            (json!(1), vec![1.0, 0.0], doc("finance", 1, "alice")),
            (json!(2), vec![0.9, 0.1], doc("finance", 2, "carol")),
            (json!(3), vec![0.0, 1.0], doc("hr", 2, "bob")),
            (json!(HR_UUID), vec![0.1, 0.9], doc("hr", 1, "dave")),
        ],
    );
    qdrant.create_collection("docs_b", 2);
    qdrant.upsert(
        "docs_b",
        &[
            (json!(1), vec![0.0, 1.0], doc("hr", 1, "bob")),
            (json!(2), vec![1.0, 0.0], doc("finance", 2, "alice")),
            (json!(7), vec![0.0, 1.0], doc("hr", 1, "bob")),
            (json!(8), vec![1.0, 0.0], doc("finance", 1, "alice")),
        ],
    );
    let mut opts = VecgateOptions::qdrant(qdrant.url(), &repo_root().join("tests/fixtures/proxy/policies"));
    options(&mut opts);
    let vecgate = VecgateServer::start(&opts);
    qdrant.clear_recorded_requests();
    Gate { qdrant, vecgate }
}

fn gate() -> Gate {
    gate_with(|_| {})
}

/// An answer: status, `WWW-Authenticate`, body (JSON, or a JSON string when it is not JSON).
struct Answer {
    status: u16,
    challenge: Option<String>,
    body: Value,
}

impl Gate {
    /// One request on a fresh connection, with raw body text and the given headers.
    fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Answer {
        let agent = ureq::AgentBuilder::new().max_idle_connections(0).timeout(Duration::from_secs(60)).build();
        let mut request = agent.request(method, &format!("{}{path}", self.vecgate.url()));
        let mut has_type = false;
        for (k, v) in headers {
            has_type |= k.eq_ignore_ascii_case("content-type");
            request = request.set(k, v);
        }
        if !has_type && body.is_some() {
            request = request.set("Content-Type", "application/json");
        }
        let result = match body {
            Some(b) => request.send_string(b),
            None => request.call(),
        };
        let response = match result {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}\n{}", self.vecgate.log_tail()),
        };
        let status = response.status();
        let challenge = response.header("WWW-Authenticate").map(str::to_string);
        let text = response.into_string().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer { status, challenge, body }
    }

    /// `method path` with alice's (or `tok`'s) bearer token and a JSON body.
    fn call(&self, tok: &str, method: &str, path: &str, body: &Value) -> (u16, Value) {
        let a = self.send(method, path, &[("Authorization", &format!("Bearer {tok}"))], Some(&body.to_string()));
        (a.status, a.body)
    }

    /// Raw body text with alice's token; the status.
    fn post_raw(&self, path: &str, body: &str, headers: &[(&str, &str)]) -> u16 {
        let bearer = format!("Bearer {}", alice());
        let mut all = vec![("Authorization", bearer.as_str())];
        all.extend_from_slice(headers);
        self.send("POST", path, &all, Some(body)).status
    }

    /// Requests the stand-in received since the last clear, as `METHOD path`.
    fn recorded(&self) -> Vec<String> {
        self.qdrant
            .recorded_requests()
            .iter()
            .map(|r| format!("{} {}", r["method"].as_str().unwrap(), r["path"].as_str().unwrap()))
            .collect()
    }

    fn assert_nothing_forwarded(&self) {
        let r = self.recorded();
        assert!(r.is_empty(), "reached the database: {r:?}");
    }

    /// Every point of `collection` with payload and vector, read from the stand-in directly.
    fn stored(&self, collection: &str) -> Value {
        let mut points = self.qdrant.result(
            "POST",
            &format!("/collections/{collection}/points/scroll"),
            Some(&json!({"limit": 100, "with_payload": true, "with_vector": true})),
        )["points"]
            .clone();
        // `version` counts update operations, including refused-then-skipped ones; compare
        // content only.
        for p in points.as_array_mut().unwrap() {
            p.as_object_mut().unwrap().remove("version");
        }
        points
    }

    /// One point as stored, payload and vector.
    fn stored_point(&self, id: Value) -> Value {
        let got = self.qdrant.result(
            "POST",
            "/collections/docs/points",
            Some(&json!({"ids": [id], "with_payload": true, "with_vector": true})),
        );
        got[0].clone()
    }

    /// The control: alice's scroll is served and filtered.
    fn assert_still_serving(&self) {
        let (status, got) = self.call(&alice(), "POST", SCROLL, &json!({"limit": 100}));
        assert_eq!(status, 200, "{got}\n{}", self.vecgate.log_tail());
        assert_eq!(ids(&got["result"]["points"]), set(&["1", "2"]));
    }
}

fn ids(points: &Value) -> BTreeSet<String> {
    points
        .as_array()
        .unwrap_or_else(|| panic!("not a point list: {points}"))
        .iter()
        .map(|p| p["id"].to_string().trim_matches('"').to_string())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_string()).collect()
}

/// Qdrant's error envelope: `{"status": {"error": "…"}, "time": …}`.
fn assert_qdrant_error(body: &Value, what: &str) {
    assert!(body["status"]["error"].is_string() && body["time"].is_number(), "{what}: not Qdrant's error shape: {body}");
}

/// Nothing of hr's points in an answer: no hr department, page content or owner.
fn assert_no_hr_data(body: &Value, what: &str) {
    let text = body.to_string();
    for needle in ["\"hr\"", "hr note", "dave", "\"bob\""] {
        assert!(!text.contains(needle), "{what}: {needle} leaked: {text}");
    }
}

// ---- tokens ---------------------------------------------------------------------------------

impl Gate {
    /// Each attack on scroll, as `Authorization: Bearer` and as qdrant-client's `api-key`:
    /// 401, Qdrant's error shape, a Bearer challenge.
    fn assert_all_401(&self, attacks: &[Attack]) {
        assert!(!attacks.is_empty());
        for a in attacks {
            let bearer = format!("Bearer {}", a.token);
            for header in [("Authorization", bearer.as_str()), ("api-key", a.token.as_str())] {
                let got = self.send("POST", SCROLL, &[header], Some("{}"));
                assert_eq!(got.status, 401, "{} via {}: {}", a.label, header.0, got.body);
                assert_qdrant_error(&got.body, &a.label);
                let challenge = got.challenge.unwrap_or_default().to_ascii_lowercase();
                assert!(challenge.starts_with("bearer"), "{}: {challenge:?}", a.label);
            }
        }
    }

    fn assert_control_reaches_upstream(&self, tok: &str) {
        let got = self.send("POST", SCROLL, &[("api-key", tok)], Some("{}"));
        assert_eq!(got.status, 200, "control refused: {}\n{}", got.body, self.vecgate.log_tail());
        assert_eq!(ids(&got.body["result"]["points"]), set(&["1", "2"]));
        assert!(!self.recorded().is_empty(), "the recorder saw nothing for a valid request");
    }
}

#[test]
fn every_jwt_attack_is_401_in_qdrants_shape_and_never_forwarded() {
    let g = gate();
    // Key locations point at the stand-in itself, so a fetch would be recorded.
    let all = attacks::hs256_all(g.qdrant.url());
    assert_eq!(all.len(), 96);
    g.assert_all_401(&all);
    // The helper's own expired token.
    g.assert_all_401(&[Attack {
        label: "expired".into(),
        token: support::vecgate::token_with("alice", &["user"], &json!({"department": "finance"}), -600),
    }]);
    std::thread::sleep(Duration::from_millis(300));
    g.assert_nothing_forwarded();
    g.assert_control_reaches_upstream(&hs_token(&json!({})));
}

#[test]
fn rs256_deployment_on_qdrant_refuses_key_confusion_and_key_locations() {
    let g = gate_with(|o| o.auth_yaml = Some(rs256_auth_yaml()));
    let mut all = attacks::rs256_confusion();
    all.extend(attacks::rs256_key_location_headers(g.qdrant.url()));
    assert_eq!(all.len(), 12);
    g.assert_all_401(&all);
    std::thread::sleep(Duration::from_millis(300));
    g.assert_nothing_forwarded();
    g.assert_control_reaches_upstream(&rs_valid());
}

#[test]
fn a_token_in_the_query_string_is_refused_and_oversized_tokens_are_401() {
    let g = gate();
    let root = hs_token(&json!({"sub": "root", "roles": ["admin"]}));
    for param in ["token", "access_token", "jwt", "api_key", "api-key"] {
        // Qdrant routes take only their own parameters (`wait`, `timeout`, …): the query is
        // checked before the token is looked for, so this is 400, not 401.
        let got = g.send("POST", &format!("{SCROLL}?{param}={root}"), &[], Some("{}"));
        assert_eq!(got.status, 400, "?{param}=: {}", got.body);
        assert_qdrant_error(&got.body, param);
        // On delete, beside its valid `wait` parameter.
        let got = g.send("POST", &format!("/collections/docs/points/delete?wait=true&{param}={root}"), &[], Some(r#"{"points": [3]}"#));
        assert_eq!(got.status, 400, "delete ?{param}=: {}", got.body);
    }
    // Over vecgate's 16 KiB token limit: refused before any decoding, as malformed.
    for size in [20_000, 200_000] {
        let big = hs_token(&json!({"pad": "x".repeat(size)}));
        for header in [("Authorization", format!("Bearer {big}")), ("api-key", big.clone())] {
            let got = g.send("POST", SCROLL, &[(header.0, &header.1)], Some("{}"));
            assert_eq!(got.status, 401, "{size}-byte pad via {}", header.0);
            assert_qdrant_error(&got.body, "oversized");
        }
    }
    g.assert_nothing_forwarded();
    g.assert_still_serving();
}

// ---- bodies ---------------------------------------------------------------------------------

#[test]
fn duplicate_keys_in_bodies_and_filters_are_400_and_not_forwarded() {
    let g = gate();
    let dept = |d: &str| format!(r#"{{"key": "metadata.department", "match": {{"value": "{d}"}}}}"#);
    let cases = [
        ("points/scroll", r#"{"limit": 1, "limit": 100}"#.to_string()),
        ("points/scroll", format!(r#"{{"filter": {{"must": [{}]}}, "filter": {{"must": [{}]}}}}"#, dept("finance"), dept("hr"))),
        ("points/scroll", format!(r#"{{"filter": {{"must": [{}], "must": [{}]}}}}"#, dept("finance"), dept("hr"))),
        ("points/scroll", r#"{"filter": {"must": [{"key": "metadata.department", "match": {"value": "hr", "value": "finance"}}]}}"#.to_string()),
        ("points/scroll", r#"{"filter": {"must": [{"key": "metadata.level", "key": "metadata.department", "match": {"value": "hr"}}]}}"#.to_string()),
        ("points/scroll", r#"{"filter": {"should": [{"has_id": [1], "has_id": [3]}]}}"#.to_string()),
        ("points/scroll", r#"{"with_payload": false, "with_payload": true}"#.to_string()),
        ("points/count", format!(r#"{{"filter": {{"must_not": [{}], "must_not": []}}}}"#, dept("hr"))),
        ("points/query", r#"{"query": [1.0, 0.0], "query": [0.0, 1.0]}"#.to_string()),
        ("points/query", format!(r#"{{"query": [1.0, 0.0], "prefetch": [{{"query": [0.0, 1.0], "filter": {{"must": [{}], "must": []}}}}]}}"#, dept("hr"))),
        ("points/query/batch", format!(r#"{{"searches": [{{"query": [1.0, 0.0], "filter": {{"must": [{}], "must": []}}}}]}}"#, dept("hr"))),
        ("points/search", r#"{"vector": [1.0, 0.0], "limit": 3, "limit": 100}"#.to_string()),
        ("facet", r#"{"key": "metadata.level", "key": "metadata.department"}"#.to_string()),
        ("points", r#"{"ids": [1], "ids": [3]}"#.to_string()),
        ("points/delete", r#"{"points": [1], "points": [3]}"#.to_string()),
        ("points/payload", r#"{"payload": {"metadata": {"department": "finance", "department": "hr"}}, "points": [1]}"#.to_string()),
        ("points/payload", r#"{"payload": {"x": 1}, "points": [1], "points": [3]}"#.to_string()),
        ("points/payload/delete", r#"{"keys": ["x"], "keys": ["metadata.department"], "points": [1]}"#.to_string()),
        ("points/batch", r#"{"operations": [{"set_payload": {"payload": {"x": 1}, "points": [1], "points": [3]}}]}"#.to_string()),
    ];
    for (route, body) in &cases {
        assert_eq!(g.post_raw(&format!("/collections/docs/{route}"), body, &[]), 400, "{route} {body}");
    }
    // Upsert is a PUT.
    let upsert = r#"{"points": [{"id": 20, "vector": [0.2, 0.2], "payload": {"metadata": {"department": "finance", "level": 1, "department": "hr"}}}]}"#;
    let bearer = format!("Bearer {}", alice());
    assert_eq!(g.send("PUT", "/collections/docs/points", &[("Authorization", &bearer)], Some(upsert)).status, 400);
    g.assert_nothing_forwarded();
    g.assert_still_serving();
}

#[test]
fn case_variants_and_unknown_fields_are_400_and_not_forwarded() {
    let g = gate();
    let hr = r#"{"must": [{"key": "metadata.department", "match": {"value": "hr"}}]}"#;
    let cases = [
        ("points/scroll", format!(r#"{{"Filter": {hr}}}"#)),
        ("points/scroll", format!(r#"{{"FILTER": {hr}}}"#)),
        ("points/scroll", format!(r#"{{"filter ": {hr}}}"#)),
        ("points/scroll", r#"{"With_Payload": true}"#.to_string()),
        ("points/scroll", format!(r#"{{"filtr": {hr}}}"#)),
        ("points/scroll", r#"{"limit": 10, "shard_key_selector": 1}"#.to_string()),
        ("points/count", format!(r#"{{"Filter": {hr}}}"#)),
        ("points/query", format!(r#"{{"query": [0.0, 1.0], "Filter": {hr}}}"#)),
        ("points/query", r#"{"query": [0.0, 1.0], "Prefetch": [{"query": [0.0, 1.0]}]}"#.to_string()),
        ("points/query", r#"{"Query": {"nearest": 3}}"#.to_string()),
        ("points/query", r#"{"query": {"Nearest": 3}}"#.to_string()),
        ("points/query", r#"{"query": {"recommend": {"Positive": [3]}}}"#.to_string()),
        ("points/query", r#"{"query": [0.0, 1.0], "lookup_from": {"Collection": "docs_b"}}"#.to_string()),
        ("points/query/batch", format!(r#"{{"Searches": [{{"query": [0.0, 1.0], "filter": {hr}}}]}}"#)),
        ("points/search", format!(r#"{{"vector": [0.0, 1.0], "limit": 10, "Filter": {hr}}}"#)),
        ("points/recommend", r#"{"Positive": [3], "limit": 10}"#.to_string()),
        ("facet", format!(r#"{{"key": "metadata.department", "Filter": {hr}}}"#)),
        ("points", r#"{"IDS": [3]}"#.to_string()),
        ("points/delete", r#"{"Points": [3]}"#.to_string()),
        ("points/delete", format!(r#"{{"Filter": {hr}}}"#)),
        ("points/payload", r#"{"payload": {"x": 1}, "Points": [3]}"#.to_string()),
        ("points/payload", format!(r#"{{"payload": {{"x": 1}}, "Filter": {hr}}}"#)),
        ("points/payload/clear", r#"{"POINTS": [3]}"#.to_string()),
        ("points/batch", r#"{"operations": [{"Set_Payload": {"payload": {"x": 1}, "points": [3]}}]}"#.to_string()),
    ];
    // Request fields (and fields of the objects vecgate reads: query, recommend, lookup_from,
    // batch operations) are checked by vecgate itself: an unknown or miscased one is 400.
    for (route, body) in &cases {
        let status = g.post_raw(&format!("/collections/docs/{route}"), body, &[]);
        assert_eq!(status, 400, "{route} {body}");
    }
    g.assert_nothing_forwarded();

    // Inside the caller's filter, the database's own types decide: vecgate forwards that
    // filter only as one arm of a `must` whose other arm is alice's ACL, so whatever the
    // database makes of a miscased clause, it cannot widen the result. (The statuses are the
    // stand-in's: 400 for an unknown clause or condition key, 422 when an ignored `Match`
    // leaves a condition without an operator. The safety does not depend on them.)
    let inside = [
        (json!({"Must": [{"key": "metadata.department", "match": {"value": "hr"}}]}), 400),
        (json!({"MUST": [{"key": "metadata.department", "match": {"value": "hr"}}]}), 400),
        (json!({"must": [{"Key": "metadata.department", "match": {"value": "hr"}}]}), 400),
        (json!({"must": [{"has_ID": [3]}]}), 400),
        (json!({"must": [{"key": "metadata.department", "Match": {"value": "hr"}}]}), 422),
    ];
    g.qdrant.clear_recorded_requests();
    let (_, alice_scroll) = g.call(&alice(), "POST", SCROLL, &json!({}));
    assert_eq!(ids(&alice_scroll["result"]["points"]), set(&["1", "2"]));
    let acl = g.qdrant.recorded_requests()[0]["body"]["filter"].clone();
    assert!(acl.to_string().contains("finance"), "{acl}");
    for (filter, want) in &inside {
        g.qdrant.clear_recorded_requests();
        let (status, got) = g.call(&alice(), "POST", SCROLL, &json!({"filter": filter, "limit": 100}));
        assert_eq!(status, *want, "{filter}: {got}");
        assert_qdrant_error(&got, "filter case variant");
        let forwarded = g.qdrant.recorded_requests();
        assert_eq!(forwarded.len(), 1, "{forwarded:?}");
        assert_eq!(forwarded[0]["body"]["filter"], json!({"must": [filter, acl]}), "{filter}");
    }
    g.assert_still_serving();
}

#[test]
fn encoded_bodies_are_415_and_never_forwarded() {
    let g = gate();
    // `{}` gzip-compressed.
    let gz: &[u8] = &[0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xab, 0xae, 0x05, 0x00, 0x43, 0xbf, 0xa6, 0xa3, 0x02, 0x00, 0x00, 0x00];
    for route in ["points/scroll", "points/query", "points/count", "points/delete", "points/payload"] {
        for encoding in ["gzip", "br", "deflate", "zstd", "GZIP", "identity, gzip"] {
            let status = g.post_raw(&format!("/collections/docs/{route}"), "{}", &[("Content-Encoding", encoding)]);
            assert_eq!(status, 415, "{route} with Content-Encoding: {encoding}");
        }
        let r = ureq::post(&format!("{}/collections/docs/{route}", g.vecgate.url()))
            .set("Authorization", &format!("Bearer {}", alice()))
            .set("Content-Type", "application/json")
            .set("Content-Encoding", "gzip")
            .send_bytes(gz);
        let (status, body) = match r {
            Ok(resp) => (resp.status(), resp.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(code, resp)) => (code, resp.into_string().unwrap_or_default()),
            Err(e) => panic!("{e}"),
        };
        assert_eq!(status, 415, "real gzip on {route}");
        assert_qdrant_error(&serde_json::from_str(&body).unwrap(), route);
    }
    g.assert_nothing_forwarded();
    g.assert_still_serving();
}

/// Sends a request (which must end with `Connection: close`) and returns the first status.
fn raw_status(port: u16, request: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // No half-close: hyper drops half-closed connections, sometimes before answering.
    let _ = stream.write_all(request.as_bytes());
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    text.lines().next()?.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn path_tricks_are_refused_or_reach_exactly_the_route_qdrant_would_run() {
    let g = gate();
    let port = g.vecgate.port();
    let tok = alice();
    let raw = |path: &str| {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {tok}\r\n\
             Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        );
        raw_status(port, &request)
    };
    // Percent-encoding and dot segments (no route needs them, and actix would decode or resolve
    // them differently from a naive reading), and paths that are not Qdrant routes as written
    // (case of route names, `;` parameters, shard routes): unknown route, 403, nothing forwarded.
    let refused = [
        "/collections/docs%2Fpoints/scroll",
        "/collections/docs/points%2Fscroll",
        "/collections/docs/points/%73croll",
        "/collections/%64ocs/points/scroll",
        "/collections/docs_b%2F..%2Fdocs/points/scroll",
        "/collections/docs/x/../points/scroll",
        "/collections/docs/points/scroll/..",
        "/collections/docs/./points/scroll",
        "/collections/./docs/points/scroll",
        "/collections/docs/x/%2e%2e/points/scroll",
        "/collections/docs/points/scroll%00",
        "/collections/docs/points/scroll;x=1",
        "/collections/docs/points/SCROLL",
        "/Collections/docs/points/scroll",
        "/collections/docs/shards/0/points/scroll",
        "/collections/docs/points/3/../1",
    ];
    for path in refused {
        assert_eq!(raw(path), Some(403), "{path}\n{}", g.vecgate.log_tail());
    }
    g.assert_nothing_forwarded();

    // Merged and trailing slashes: Qdrant's NormalizePath::trim runs the same route, so vecgate
    // serves it, filtered, and forwards the normalised path.
    for path in ["//collections/docs/points/scroll", "/collections//docs/points/scroll", "/collections/docs/points/scroll/", "/collections/docs/points//scroll//"] {
        let (status, got) = g.call(&tok, "POST", path, &json!({"limit": 100}));
        assert_eq!(status, 200, "{path}: {got}");
        assert_eq!(ids(&got["result"]["points"]), set(&["1", "2"]), "{path}");
    }
    let recorded = g.recorded();
    assert_eq!(recorded, vec![format!("POST {SCROLL}"); 4]);

    // Collection names are case-sensitive in Qdrant: `DOCS` is another (missing) collection,
    // and the request for it still carries alice's filter.
    g.qdrant.clear_recorded_requests();
    let (status, got) = g.call(&tok, "POST", "/collections/DOCS/points/scroll", &json!({"limit": 100}));
    assert_eq!(status, 404, "{got}");
    let forwarded = g.qdrant.recorded_requests();
    assert_eq!(forwarded.len(), 1, "{forwarded:?}");
    assert!(forwarded[0]["body"]["filter"].to_string().contains("finance"), "{}", forwarded[0]);
}

#[test]
fn deep_nesting_is_400_and_the_server_still_answers() {
    let g = gate();
    let depth = 10_000;
    let leaf = r#"{"key": "metadata.level", "match": {"value": 1}}"#;
    let nested_filter = format!("{{\"filter\": {}{leaf}{}}}", "{\"must\": [".repeat(depth), "]}".repeat(depth));
    let nested_arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let nested_objects = format!("{{\"limit\": 1, \"x\": {}1{}}}", "{\"a\": ".repeat(depth), "}".repeat(depth));
    for route in ["points/scroll", "points/count", "points/delete", "points/query", "points/payload"] {
        for body in [&nested_filter, &nested_arrays, &nested_objects] {
            assert_eq!(g.post_raw(&format!("/collections/docs/{route}"), body, &[]), 400, "{route} {}", &body[..40]);
        }
    }
    let deep_payload = format!(
        r#"{{"points": [{{"id": 20, "vector": [0.2, 0.2], "payload": {{"metadata": {{"department": "finance", "level": 1}}, "x": {}1{}}}}}]}}"#,
        "{\"a\": ".repeat(depth),
        "}".repeat(depth)
    );
    let bearer = format!("Bearer {}", alice());
    assert_eq!(g.send("PUT", "/collections/docs/points", &[("Authorization", &bearer)], Some(&deep_payload)).status, 400);
    g.assert_nothing_forwarded();
    g.assert_still_serving();
}

#[test]
fn filters_over_max_filter_terms_are_400_and_never_forwarded() {
    // Regression: vecgate enforced `limits.max_filter_terms` on Chroma only, and forwarded a
    // caller's 5 000-leaf Qdrant filter.
    let g = gate();
    // 5 000 leaves (max_filter_terms is 500 by default) in every place a filter goes.
    let leaves: Vec<Value> = (0..5000).map(|i| json!({"key": "metadata.level", "match": {"value": i}})).collect();
    let wide = [
        ("points/scroll", json!({"filter": {"should": leaves}})),
        ("points/count", json!({"filter": {"must_not": leaves}})),
        ("points/delete", json!({"filter": {"should": leaves}})),
        ("points/query", json!({"query": [1.0, 0.0], "prefetch": [{"query": [1.0, 0.0], "filter": {"should": leaves}}]})),
        ("points/payload", json!({"payload": {"x": 1}, "filter": {"should": leaves}})),
        ("points/scroll", json!({"filter": {"min_should": {"conditions": leaves, "min_count": 1}}})),
        ("points/scroll", json!({"filter": {"must": [{"nested": {"key": "metadata.tags", "filter": {"should": leaves}}}]}})),
        ("points/query/batch", json!({"searches": [{"query": [1.0, 0.0]}, {"query": [1.0, 0.0], "filter": {"should": leaves}}]})),
        ("points/search", json!({"vector": [1.0, 0.0], "limit": 3, "filter": {"should": leaves}})),
    ];
    for (route, body) in &wide {
        assert_eq!(g.post_raw(&format!("/collections/docs/{route}"), &body.to_string(), &[]), 400, "{route}");
    }
    let upsert = json!({"points": [{"id": 1, "vector": [1.0, 0.0], "payload": doc("finance", 1, "alice")}],
                        "update_filter": {"should": leaves}});
    let bearer = format!("Bearer {}", alice());
    assert_eq!(g.send("PUT", "/collections/docs/points", &[("Authorization", &bearer)], Some(&upsert.to_string())).status, 400);
    // The limit protects the database, so it holds for an admin (no ACL filter) too.
    let root = token("root", &["admin"], &json!({}));
    let (status, got) = g.call(&root, "POST", SCROLL, &wide[0].1);
    assert_eq!(status, 400, "{got}");
    g.assert_nothing_forwarded();
    // The control: 400 leaves plus alice's ACL fit in the default limit of 500.
    let under: Vec<Value> = (0..400).map(|i| json!({"key": "metadata.level", "match": {"value": i}})).collect();
    let (status, got) = g.call(&alice(), "POST", SCROLL, &json!({"filter": {"should": under}, "limit": 100}));
    assert_eq!((status, ids(&got["result"]["points"])), (200, set(&["1", "2"])), "{got}");
    g.assert_still_serving();
}

#[test]
fn client_headers_that_could_steer_the_database_are_not_forwarded() {
    let g = gate();
    let bearer = format!("Bearer {}", alice());
    let headers = [
        ("Authorization", bearer.as_str()),
        ("X-HTTP-Method-Override", "DELETE"),
        ("X-Original-URL", "/collections/docs"),
        ("X-Rewrite-URL", "/collections/docs/points/delete"),
        ("Forwarded", "for=127.0.0.1;host=qdrant"),
        ("X-Forwarded-Host", "qdrant"),
        ("X-Forwarded-For", "127.0.0.1"),
        ("X-Request-Id", "attacker-chosen"),
        ("Cookie", "session=x"),
        ("Accept-Encoding", "gzip"),
        ("Content-Encoding", "identity"),
        ("Prefer", "return=minimal"),
        ("Accept", "application/json"),
        ("User-Agent", "attack-suite"),
    ];
    let got = g.send("POST", SCROLL, &headers, Some(r#"{"limit": 100}"#));
    assert_eq!((got.status, ids(&got.body["result"]["points"])), (200, set(&["1", "2"])), "{}", got.body);
    let recorded = g.qdrant.recorded_requests();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let sent = recorded[0]["headers"].as_object().unwrap();
    let names: BTreeSet<String> = sent.keys().cloned().collect();
    // Only what vecgate sets itself, plus Accept and User-Agent as the client sent them.
    assert_eq!(names, set(&["accept", "content-length", "content-type", "host", "user-agent", "x-request-id"]), "{sent:?}");
    assert_eq!((&sent["accept"], &sent["user-agent"]), (&json!("application/json"), &json!("attack-suite")));
    assert_ne!(sent["x-request-id"], "attacker-chosen");
}

// ---- other principals' point ids ------------------------------------------------------------

#[test]
fn other_principals_point_ids_in_every_id_taking_field_are_missing_or_refused() {
    let g = gate();
    let before_docs = g.stored("docs");
    let before_b = g.stored("docs_b");
    let alice = alice();
    let hr_ids = [json!(3), json!(HR_UUID)];

    // The answer Qdrant gives for a point that does not exist, as root would get it.
    let root = token("root", &["admin"], &json!({}));
    let (missing_status, missing) = g.call(&root, "POST", "/collections/docs/points/query", &json!({"query": {"nearest": 999}}));
    assert_eq!(missing_status, 404, "{missing}");
    let missing_text = |id: &Value| missing["status"]["error"].as_str().unwrap().replace("999", &id.to_string().replace('"', ""));

    // Reads whose inputs name an hr point: 404 exactly like a missing point.
    for id in &hr_ids {
        let query_inputs = [
            json!({"query": id}),
            json!({"query": {"nearest": id}}),
            json!({"query": {"recommend": {"positive": [id]}}}),
            json!({"query": {"recommend": {"positive": [1], "negative": [id]}}}),
            json!({"query": {"discover": {"target": id, "context": [{"positive": 1, "negative": 2}]}}}),
            json!({"query": {"discover": {"target": 1, "context": [{"positive": 2, "negative": id}]}}}),
            json!({"query": {"context": [{"positive": id, "negative": 1}]}}),
            json!({"query": {"context": {"positive": 1, "negative": id}}}),
            json!({"prefetch": [{"query": {"nearest": id}}], "query": {"fusion": "rrf"}}),
            json!({"prefetch": [{"query": [1.0, 0.0]}, {"query": id}], "query": {"fusion": "rrf"}}),
            json!({"prefetch": [{"prefetch": [{"query": {"recommend": {"positive": [id]}}}], "query": [1.0, 0.0]}], "query": {"fusion": "rrf"}}),
            json!({"prefetch": [{"query": {"nearest": id}}], "query": {"nearest": 1}}),
        ];
        for body in &query_inputs {
            let (status, got) = g.call(&alice, "POST", "/collections/docs/points/query", body);
            assert_eq!((status, got["status"]["error"].as_str().map(str::to_string)), (404, Some(missing_text(id))), "{body}: {got}");
        }
        for body in &query_inputs {
            let batch = json!({"searches": [{"query": [1.0, 0.0]}, body]});
            let (status, got) = g.call(&alice, "POST", "/collections/docs/points/query/batch", &batch);
            assert_eq!(status, 404, "batch {body}: {got}");
            assert_no_hr_data(&got, "batch");
            let mut groups = body.clone();
            groups["group_by"] = json!("metadata.owner");
            let (status, got) = g.call(&alice, "POST", "/collections/docs/points/query/groups", &groups);
            assert_eq!(status, 404, "groups {body}: {got}");
        }
        // Legacy recommend and discover.
        let legacy = [
            ("points/recommend", json!({"positive": [id], "limit": 10})),
            ("points/recommend", json!({"positive": [1], "negative": [id], "limit": 10})),
            ("points/recommend/batch", json!({"searches": [{"positive": [1], "limit": 10}, {"positive": [id], "limit": 10}]})),
            ("points/recommend/groups", json!({"positive": [id], "group_by": "metadata.owner", "limit": 10})),
            ("points/discover", json!({"target": id, "context": [{"positive": 1, "negative": 2}], "limit": 10})),
            ("points/discover", json!({"target": 1, "context": [{"positive": id, "negative": 2}], "limit": 10})),
            ("points/discover/batch", json!({"searches": [{"target": id, "context": [], "limit": 10}]})),
        ];
        for (route, body) in &legacy {
            let (status, got) = g.call(&alice, "POST", &format!("/collections/docs/{route}"), body);
            assert_eq!(status, 404, "{route} {body}: {got}");
            assert_qdrant_error(&got, route);
        }
        // The control: bob, who may read it, gets it.
        let (status, got) = g.call(&bob(), "GET", &format!("/collections/docs/points/{}", id.to_string().trim_matches('"')), &Value::Null);
        assert_eq!((status, &got["result"]["payload"]["metadata"]["department"]), (200, &json!("hr")), "{got}");
        // GET points/{id}: the answer for a point that does not exist.
        let (status, got) = g.call(&alice, "GET", &format!("/collections/docs/points/{}", id.to_string().trim_matches('"')), &Value::Null);
        let (_, absent) = g.call(&root, "GET", "/collections/docs/points/999", &Value::Null);
        assert_eq!(status, 404, "{got}");
        assert_eq!(
            got["status"]["error"].as_str().unwrap(),
            absent["status"]["error"].as_str().unwrap().replace("999", id.to_string().trim_matches('"')),
        );
    }
    // lookup_from into docs_b: its hr point 7 is missing for alice, its finance point 8 is not.
    let (status, got) = g.call(&alice, "POST", "/collections/docs/points/query", &json!({"query": {"nearest": 7}, "lookup_from": {"collection": "docs_b"}}));
    assert_eq!(status, 404, "{got}");
    let (status, got) = g.call(&alice, "POST", "/collections/docs/points/query", &json!({"prefetch": [{"query": {"recommend": {"positive": [7]}}, "lookup_from": {"collection": "docs_b"}}], "query": {"fusion": "rrf"}}));
    assert_eq!(status, 404, "{got}");
    let (status, got) = g.call(&alice, "POST", "/collections/docs/points/query", &json!({"query": {"nearest": 8}, "lookup_from": {"collection": "docs_b"}, "limit": 10}));
    assert_eq!(status, 200, "{got}");
    assert_eq!(ids(&got["result"]["points"]), set(&["1", "2"]));

    // with_lookup into docs_b: groups by level (1, 2) look up docs_b's points 1 (hr) and 2
    // (finance); the hr one is stripped from the answer, the finance one kept.
    let groups = json!({"query": [1.0, 0.0], "group_by": "metadata.level", "limit": 10,
                        "with_lookup": {"collection": "docs_b", "with_payload": true}});
    let (status, got) = g.call(&alice, "POST", "/collections/docs/points/query/groups", &groups);
    assert_eq!(status, 200, "{got}");
    let lookups: Vec<(Value, Value)> = got["result"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|grp| (grp["id"].clone(), grp["lookup"]["id"].clone()))
        .collect();
    assert_eq!(lookups.len(), 2, "{got}");
    for (group, lookup) in &lookups {
        let want = if *group == json!(2) { json!(2) } else { Value::Null };
        assert_eq!(*lookup, want, "group {group}: {got}");
    }
    assert_no_hr_data(&got, "with_lookup");
    // The control: root gets both lookups, so the stand-in does look up docs_b's point 1.
    let (status, got) = g.call(&root, "POST", "/collections/docs/points/query/groups", &groups);
    assert_eq!(status, 200, "{got}");
    let looked_up: BTreeSet<String> = got["result"]["groups"].as_array().unwrap().iter().map(|grp| grp["lookup"]["id"].to_string()).collect();
    assert_eq!(looked_up, set(&["1", "2"]), "{got}");

    // Retrieve by ids, with payload and vectors: hr points left out.
    let (status, got) = g.call(&alice, "POST", "/collections/docs/points", &json!({"ids": [1, 3, HR_UUID], "with_payload": true, "with_vector": true}));
    assert_eq!(status, 200, "{got}");
    assert_eq!(ids(&got["result"]), set(&["1"]));
    assert_no_hr_data(&got, "retrieve");
    // Scroll from an hr id as offset, and a has_id filter naming hr points: finance only.
    // (Scroll pages run in id order; the next page's offset comes from the filtered points.)
    let (status, got) = g.call(&alice, "POST", SCROLL, &json!({"offset": 3, "limit": 100, "with_payload": true}));
    assert_eq!((status, ids(&got["result"]["points"])), (200, set(&[])), "{got}");
    assert_eq!(got["result"]["next_page_offset"], Value::Null, "{got}");
    let (status, got) = g.call(&alice, "POST", SCROLL, &json!({"offset": 2, "limit": 1, "with_payload": true}));
    assert_eq!((status, ids(&got["result"]["points"])), (200, set(&["2"])), "{got}");
    assert_eq!(got["result"]["next_page_offset"], Value::Null, "the next point, 3, is not hers: {got}");
    let (status, got) = g.call(&alice, "POST", SCROLL, &json!({"offset": 1, "limit": 1}));
    assert_eq!((status, ids(&got["result"]["points"]), &got["result"]["next_page_offset"]), (200, set(&["1"]), &json!(2)), "{got}");
    let (status, got) = g.call(&alice, "POST", SCROLL, &json!({"filter": {"must": [{"has_id": [3, HR_UUID]}]}, "with_payload": true}));
    assert_eq!((status, ids(&got["result"]["points"])), (200, set(&[])), "{got}");
    let (status, got) = g.call(&alice, "POST", "/collections/docs/points/count", &json!({"filter": {"must": [{"has_id": [3, HR_UUID]}]}, "exact": true}));
    assert_eq!((status, got["result"]["count"].as_u64()), (200, Some(0)), "{got}");

    // Writes naming hr points. An upsert would overwrite them: refused (the documented
    // divergence). A payload or vector change is answered exactly as Qdrant answers one naming
    // a point it does not have (404 naming the first such point), and nothing is written.
    let upsert = json!({"points": [{"id": 3, "vector": [1.0, 0.0], "payload": doc("finance", 1, "alice")}]});
    for (method, route, body) in [
        ("PUT", "points", upsert.clone()),
        ("PUT", "points", json!({"batch": {"ids": [HR_UUID], "vectors": [[1.0, 0.0]], "payloads": [doc("finance", 1, "alice")]}})),
    ] {
        let (status, got) = g.call(&alice, method, &format!("/collections/docs/{route}?wait=true"), &body);
        assert_eq!(status, 403, "{method} {route} {body}: {got}");
        assert_qdrant_error(&got, route);
    }
    let as_missing = |hidden: &Value| {
        let text = hidden.to_string().replace(&format!("\"{HR_UUID}\""), "\"00000000-0000-4000-8000-000000000999\"");
        serde_json::from_str::<Value>(&text.replace(":3,", ":999,").replace("[3]", "[999]").replace(":3}", ":999}")).unwrap()
    };
    let writes = [
        ("POST", "points/payload", json!({"payload": {"x": 1}, "points": [3]})),
        ("POST", "points/payload", json!({"payload": {"x": 1}, "points": [HR_UUID]})),
        ("PUT", "points/payload", json!({"payload": doc("finance", 1, "alice"), "points": [3]})),
        ("POST", "points/payload/delete", json!({"keys": ["page_content"], "points": [3]})),
        ("POST", "points/payload/clear", json!({"points": [HR_UUID]})),
        ("PUT", "points/vectors", json!({"points": [{"id": 3, "vector": [1.0, 0.0]}]})),
        ("POST", "points/vectors/delete", json!({"points": [3], "vector": [""]})),
    ];
    let without_time = |mut v: Value| {
        v.as_object_mut().unwrap().remove("time");
        v
    };
    for (method, route, body) in &writes {
        let path = format!("/collections/docs/{route}?wait=true");
        let (status, got) = g.call(&alice, method, &path, body);
        assert_eq!(status, 404, "{method} {route} {body}: {got}");
        assert_qdrant_error(&got, route);
        let (missing_status, missing) = g.call(&alice, method, &path, &as_missing(body));
        assert_eq!(missing_status, 404, "{method} {route} (missing id): {missing}");
        assert_eq!(
            without_time(got.clone())["status"]["error"].as_str().unwrap().replace(HR_UUID, "N").replace(" 3 ", " N "),
            without_time(missing)["status"]["error"].as_str().unwrap().replace("00000000-0000-4000-8000-000000000999", "N").replace(" 999 ", " N "),
            "{route}"
        );
    }
    let batch_ops = [
        (json!({"upsert": {"points": [{"id": 3, "vector": [1.0, 0.0], "payload": doc("finance", 1, "alice")}]}}), 403),
        (json!({"set_payload": {"payload": {"x": 1}, "points": [3]}}), 404),
        (json!({"overwrite_payload": {"payload": doc("finance", 1, "alice"), "points": [HR_UUID]}}), 404),
        (json!({"delete_payload": {"keys": ["page_content"], "points": [3]}}), 404),
        (json!({"clear_payload": {"points": [3]}}), 404),
        (json!({"update_vectors": {"points": [{"id": 3, "vector": [1.0, 0.0]}]}}), 404),
        (json!({"delete_vectors": {"points": [3], "vector": [""]}}), 404),
        (json!({"delete": {"points": [3]}}), 403),
    ];
    // A write alice may do that leaves her point as it is.
    let harmless = json!({"set_payload": {"payload": {"page_content": "finance note"}, "points": [1]}});
    for (op, expected) in &batch_ops {
        // Alone, and after an operation alice may do.
        for ops in [json!([op]), json!([harmless, op])] {
            let (status, got) = g.call(&alice, "POST", "/collections/docs/points/batch?wait=true", &json!({"operations": ops}));
            assert_eq!(status, *expected, "batch {ops}: {got}");
        }
    }
    // Delete by ids: only what alice may delete is deleted (hr points are not hers).
    let (status, got) = g.call(&alice, "POST", "/collections/docs/points/delete?wait=true", &json!({"points": [3, HR_UUID]}));
    assert_eq!(status, 200, "{got}");
    let (status, got) = g.call(&alice, "POST", "/collections/docs/points/delete?wait=true", &json!({"filter": {"must": [{"has_id": [3]}]}}));
    assert_eq!(status, 200, "{got}");

    assert_eq!(g.stored("docs"), before_docs, "docs changed");
    assert_eq!(g.stored("docs_b"), before_b, "docs_b changed");
}

// ---- ACL payload writes ---------------------------------------------------------------------

#[test]
fn writes_that_set_or_delete_acl_payload_the_caller_does_not_hold_are_403_and_change_nothing() {
    let g = gate();
    let alice = alice();
    let before = g.stored("docs");
    let original = g.stored_point(json!(1));
    let meta = |department: &str| json!({"department": department, "level": 1, "owner": "alice"});
    let attempts = [
        // A new point tagged for another department, alone and beside a permitted one.
        ("PUT", "points", json!({"points": [{"id": 20, "vector": [0.2, 0.2], "payload": {"metadata": meta("hr")}}]})),
        ("PUT", "points", json!({"points": [{"id": 21, "vector": [0.2, 0.2], "payload": {"metadata": meta("finance")}},
                                             {"id": 22, "vector": [0.2, 0.2], "payload": {"metadata": meta("hr")}}]})),
        ("PUT", "points", json!({"batch": {"ids": [20], "vectors": [[0.2, 0.2]], "payloads": [{"metadata": meta("hr")}]}})),
        // Her own point re-tagged: upsert, set_payload (whole object and nested key),
        // overwrite_payload.
        ("PUT", "points", json!({"points": [{"id": 1, "vector": [1.0, 0.0], "payload": {"metadata": meta("hr")}}]})),
        ("POST", "points/payload", json!({"payload": {"metadata": meta("hr")}, "points": [1]})),
        ("POST", "points/payload", json!({"payload": {"department": "hr"}, "key": "metadata", "points": [1]})),
        ("POST", "points/payload", json!({"payload": {"metadata": meta("hr")}, "filter": {"must": [{"has_id": [1]}]}})),
        ("PUT", "points/payload", json!({"payload": {"metadata": meta("hr")}, "points": [1]})),
        // The ACL key removed: delete_payload, clear_payload, an overwrite without it.
        ("POST", "points/payload/delete", json!({"keys": ["metadata.department"], "points": [1]})),
        ("POST", "points/payload/delete", json!({"keys": ["metadata"], "points": [1]})),
        ("POST", "points/payload/delete", json!({"keys": ["metadata.department"], "filter": {"must": [{"has_id": [1]}]}})),
        ("POST", "points/payload/clear", json!({"points": [1]})),
        ("POST", "points/payload/clear", json!({"filter": {"must": [{"key": "metadata.owner", "match": {"value": "alice"}}]}})),
        ("PUT", "points/payload", json!({"payload": {"page_content": "x"}, "points": [1]})),
        ("POST", "points/payload", json!({"payload": {"metadata": null}, "points": [1]})),
        ("POST", "points/payload", json!({"payload": {"metadata": {"level": 1}}, "points": [1]})),
        // Above the level she may write.
        ("POST", "points/payload", json!({"payload": {"level": 9}, "key": "metadata", "points": [1]})),
    ];
    for (method, route, body) in &attempts {
        let (status, got) = g.call(&alice, method, &format!("/collections/docs/{route}?wait=true"), body);
        assert_eq!(status, 403, "{method} {route} {body}: {got}");
        assert_qdrant_error(&got, route);
    }
    let batch_ops = [
        json!({"upsert": {"points": [{"id": 20, "vector": [0.2, 0.2], "payload": {"metadata": meta("hr")}}]}}),
        json!({"set_payload": {"payload": {"metadata": meta("hr")}, "points": [1]}}),
        json!({"overwrite_payload": {"payload": {"page_content": "x"}, "points": [1]}}),
        json!({"delete_payload": {"keys": ["metadata.department"], "points": [1]}}),
        json!({"clear_payload": {"points": [1]}}),
    ];
    for op in &batch_ops {
        let (status, got) = g.call(&alice, "POST", "/collections/docs/points/batch?wait=true", &json!({"operations": [op]}));
        assert_eq!(status, 403, "batch {op}: {got}");
    }
    assert_eq!(g.stored("docs"), before, "a refused write changed the collection");
    assert_eq!(g.stored_point(json!(1)), original);

    // The control: a change that keeps the ACL payload is written.
    let (status, got) = g.call(&alice, "POST", "/collections/docs/points/payload?wait=true", &json!({"payload": {"reviewed": true}, "points": [1]}));
    assert_eq!(status, 200, "{got}");
    let after = g.stored_point(json!(1));
    assert_eq!(after["payload"]["reviewed"], true);
    assert_eq!(after["payload"]["metadata"], original["payload"]["metadata"]);
}
