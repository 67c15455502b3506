//! Conformance of the Qdrant test double (tests/qdrant_server, Qdrant Edge inside) with a real
//! Qdrant server: the same requests go to both, and the answers must be equal — status, the
//! envelope's `result`, and for errors the error class (the message up to its first `:`, such
//! as `Format error in JSON body` or `Not found`). `time`, the numbers of operations
//! (`operation_id`, a point's `version`) and `segments_count` are ignored; scores and vectors
//! compare to 1e-5; hits of equal score are compared in id order (Qdrant promises no order
//! among them).
//!
//! Runs when a real server is configured (`QDRANT_URL` or `QDRANT_BIN`, see tests/support/
//! qdrant.rs); without one it prints one line saying so and checks nothing. The requests:
//!
//! - **every filter shape vecgate emits**, captured rather than guessed: vecgate runs in front
//!   of the double with policies that make its translator emit equality, ranges, list
//!   membership (`any` plus the `K[]` exclusions), negations over required and optional
//!   attributes, `has()` guards, DENY rules, `is_null`/`is_empty`, `has_id`, match-none and
//!   match-all; random principals read through it the ways LangChain and qdrant-client do
//!   (query, hybrid prefetch + RRF, MMR, scroll, count, retrieve, query by point id, facet,
//!   groups, batches, matrices, legacy search/recommend). Every request vecgate forwarded is
//!   then replayed to both servers, on a collection without payload indexes and on one with;
//! - the 67 filters of ref/qdrant-measured.md §5 on scroll, count, search and query, with and
//!   without keyword indexes, and its request-parsing traps (unknown fields, duplicate keys,
//!   untagged `match`, bad key paths, `limit: 0`, …);
//! - every route vecgate forwards, writes included (each write is followed by a full scroll
//!   of the collection, so the stored state is compared too), and the admin routes the tests
//!   use.
//!
//! Differences that follow from the server's version (the double answers like v1.19) are
//! listed in [`KNOWN_DIFFERENCES`] with their reason; a listed difference that no longer
//! differs fails the test, so the list cannot go stale. Any other difference fails it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Value};
use std::collections::BTreeSet;
use support::vecgate::{token, VecgateOptions, VecgateServer};
use support::{QdrantKind, QdrantServer};

/// (case name contains, server version starts with, why the answers differ).
const KNOWN_DIFFERENCES: &[(&str, &str, &str)] = &[
    (
        "measured row 45 ",
        "1.18.",
        "min_should with no conditions: v1.18 matches every point (upstream bug #9401, fixed in \
         v1.19); the double's engine (Qdrant Edge, 1.20-dev) and v1.19 match none",
    ),
    (
        "measured row 46 ",
        "1.18.",
        "min_should.min_count 0: v1.18 accepts it (every point matches); v1.19 answers 422, and \
         so does the double",
    ),
];

const POINTS: usize = 48;
const DEPARTMENTS: [&str; 3] = ["finance", "hr", "eng"];
const REGIONS: [&str; 3] = ["EMEA", "AMER", "APAC"];
const OWNERS: [&str; 3] = ["u1", "u2", "u3"];
const TAGS: [&str; 3] = ["a", "b", "c"];
const SPARSE: &str = "langchain-sparse";

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn vector(&mut self) -> Vec<f64> {
        (0..4).map(|_| (self.unit() * 2.0 - 1.0 * 0.2).max(0.01)).collect()
    }
    fn uuid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            8 + (b >> 62),
            (b >> 48) & 0xfff,
            b & 0xffff_ffff_ffff
        )
    }
}

/// One request, sent as raw text so malformed bodies reach both servers as written.
struct Case {
    name: String,
    method: &'static str,
    path: String,
    body: Option<String>,
    /// `query` with `sample: random`: only the set of returned ids is comparable.
    ids_only: bool,
}

fn case(name: impl Into<String>, method: &'static str, path: impl Into<String>, body: Option<Value>) -> Case {
    Case { name: name.into(), method, path: path.into(), body: body.map(|b| b.to_string()), ids_only: false }
}

fn raw(name: &str, method: &'static str, path: &str, body: &str) -> Case {
    Case { name: name.into(), method, path: path.into(), body: Some(body.into()), ids_only: false }
}

// ---- the data, identical on both servers ------------------------------------------------------

/// The 18 payloads of ref/qdrant-measured.md §5.
fn measured_payloads() -> Vec<Value> {
    let text = std::fs::read_to_string(support::repo_root().join("tests/fixtures/qdrant-measured.md")).unwrap();
    let start = text.find("Payloads:").unwrap();
    let end = text.find("How to read the table:").unwrap();
    let block = text[start..end].replace('\n', " ");
    let mut out = Vec::new();
    for n in 1..=18 {
        let marker = format!(" {n} `{{");
        let at = block.find(&marker).unwrap_or_else(|| panic!("payload {n} not found"));
        let rest = &block[at + marker.len() - 1..];
        let close = rest.find("}` ").or_else(|| rest.find("}`.")).unwrap();
        out.push(serde_json::from_str(&rest[..=close]).unwrap());
    }
    out
}

/// (row, filter text) of the §5 table.
fn measured_filters() -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(support::repo_root().join("tests/fixtures/qdrant-measured.md")).unwrap();
    let mut rows = Vec::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.trim().trim_matches('|').split(" | ").map(str::trim).collect();
        if cells.len() >= 3 {
            if let Ok(row) = cells[0].parse::<usize>() {
                rows.push((row, cells[1].trim_matches('`').to_string()));
            }
        }
    }
    assert_eq!(rows.len(), 67, "expected the 67 measured filters");
    rows
}

fn measured_vector(i: usize) -> Vec<f64> {
    let f = |k: usize| ((i * k) % 19 + 1) as f64 / 19.0;
    vec![f(7), f(3), f(5), f(11)]
}

fn lc_points(rng: &mut Rng) -> Vec<Value> {
    (0..POINTS)
        .map(|i| {
            let id = if rng.chance(30) { json!(rng.uuid()) } else { json!(i + 1) };
            let mut m = serde_json::Map::new();
            m.insert("department".into(), json!(rng.pick(&DEPARTMENTS)));
            m.insert("region".into(), json!(rng.pick(&REGIONS)));
            if rng.chance(75) {
                m.insert("owner".into(), json!(rng.pick(&OWNERS)));
            }
            if rng.chance(80) {
                m.insert("level".into(), json!(1 + rng.below(5)));
            }
            match rng.below(5) {
                0 => {}
                1 => {
                    m.insert("tags".into(), json!([]));
                }
                _ => {
                    let tags: Vec<&str> = TAGS.iter().copied().filter(|_| rng.chance(50)).collect();
                    m.insert("tags".into(), json!(tags));
                }
            }
            if rng.chance(50) {
                m.insert("public".into(), json!(rng.chance(50)));
            }
            if rng.chance(10) {
                m.insert("owner".into(), Value::Null);
            }
            let indices: Vec<u32> = (0..3).map(|k| (k * 7 + rng.below(7)) as u32).collect();
            let values: Vec<f64> = (0..3).map(|_| rng.unit() + 0.1).collect();
            json!({
                "id": id,
                "vector": {"": rng.vector(), SPARSE: {"indices": indices, "values": values}},
                "payload": {"page_content": format!("text {i}"), "metadata": m},
            })
        })
        .collect()
}

fn put(server: &QdrantServer, path: &str, body: Value) {
    let answer = server.result("PUT", path, Some(&body));
    assert!(answer == json!(true) || answer["status"] == "completed" || answer["status"] == "acknowledged", "PUT {path}: {answer}");
}

fn seed(server: &QdrantServer, lc: &[Value]) {
    let payloads = measured_payloads();
    for (name, indexed) in [("measured", false), ("measured_idx", true)] {
        put(server, &format!("/collections/{name}"), json!({"vectors": {"size": 4, "distance": "Cosine"}}));
        let points: Vec<Value> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| json!({"id": i + 1, "vector": measured_vector(i + 1), "payload": p}))
            .collect();
        put(server, &format!("/collections/{name}/points?wait=true"), json!({"points": points}));
        if indexed {
            for field in ["department", "metadata.department", "metadata[].department", "region"] {
                put(server, &format!("/collections/{name}/index?wait=true"), json!({"field_name": field, "field_schema": "keyword"}));
            }
        }
    }
    for (name, indexed) in [("lc", false), ("lc_idx", true)] {
        put(
            server,
            &format!("/collections/{name}"),
            json!({"vectors": {"": {"size": 4, "distance": "Cosine"}}, "sparse_vectors": {SPARSE: {}}}),
        );
        put(server, &format!("/collections/{name}/points?wait=true"), json!({"points": lc}));
        if indexed {
            for (field, kind) in [
                ("metadata.department", "keyword"),
                ("metadata.region", "keyword"),
                ("metadata.owner", "keyword"),
                ("metadata.tags", "keyword"),
                ("metadata.level", "integer"),
                ("metadata.public", "bool"),
            ] {
                put(server, &format!("/collections/{name}/index?wait=true"), json!({"field_name": field, "field_schema": kind}));
            }
        }
    }
}

// ---- the requests ----------------------------------------------------------------------------

fn measured_cases() -> Vec<Case> {
    let mut out = Vec::new();
    for (row, filter) in measured_filters() {
        for coll in ["measured", "measured_idx"] {
            let bodies = [
                ("scroll", format!(r#"{{"limit":100,"with_payload":false,"filter":{filter}}}"#)),
                ("count", format!(r#"{{"exact":true,"filter":{filter}}}"#)),
                ("search", format!(r#"{{"vector":[0.2,0.1,0.9,0.7],"limit":100,"filter":{filter}}}"#)),
                ("query", format!(r#"{{"query":[0.2,0.1,0.9,0.7],"limit":100,"filter":{filter}}}"#)),
            ];
            for (route, body) in bodies {
                out.push(Case {
                    name: format!("measured row {row} on {coll} {route}"),
                    method: "POST",
                    path: format!("/collections/{coll}/points/{route}"),
                    body: Some(body),
                    ids_only: false,
                });
            }
        }
    }
    out
}

/// Request-parsing traps (ref/qdrant-measured.md §5 point 9, ref/vectordbs.md B.2) and the
/// answers around them.
fn trap_cases() -> Vec<Case> {
    let q = "/collections/measured/points/query";
    let s = "/collections/measured/points/scroll";
    let mut out = vec![
        raw("unknown request field ignored (filtr)", "POST", s, r#"{"limit":100,"with_payload":false,"filtr":{"must":[{"key":"department","match":{"value":"FINANCE"}}]}}"#),
        raw("duplicate filter key", "POST", s, r#"{"limit":100,"filter":{"must":[]},"filter":{"must":[]}}"#),
        raw("duplicate must key", "POST", s, r#"{"limit":100,"filter":{"must":[],"must":[]}}"#),
        raw("body not JSON", "POST", s, r#"{"limit":"#),
        raw("empty body on scroll", "POST", s, ""),
        raw("limit 0 on query", "POST", q, r#"{"query":[0.2,0.1,0.9,0.7],"limit":0}"#),
        raw("negative limit", "POST", s, r#"{"limit":-1}"#),
        raw("filter not an object", "POST", s, r#"{"limit":10,"filter":[1]}"#),
        raw("condition not an object", "POST", s, r#"{"limit":10,"filter":{"must":[1]}}"#),
        raw("has_id not a list", "POST", s, r#"{"limit":10,"filter":{"must":[{"has_id":1}]}}"#),
        raw("has_id with a negative id", "POST", s, r#"{"limit":10,"filter":{"must":[{"has_id":[-1]}]}}"#),
        raw("has_id with a non-UUID string", "POST", s, r#"{"limit":10,"filter":{"must":[{"has_id":["abc"]}]}}"#),
        raw("has_id with a UUID", "POST", s, r#"{"limit":10,"filter":{"must":[{"has_id":["5c56c793-69f3-4fbf-87e6-c4bf54c28c26"]}]}}"#),
        raw("range with a string and a number", "POST", s, r#"{"limit":100,"filter":{"must":[{"key":"department","range":{"gte":1,"lte":"x"}}]}}"#),
        raw("range on numbers", "POST", s, r#"{"limit":100,"with_payload":false,"filter":{"must":[{"key":"department","range":{"gte":40,"lte":50}}]}}"#),
        raw("values_count negative", "POST", s, r#"{"limit":100,"filter":{"must":[{"key":"department","values_count":{"gt":-1}}]}}"#),
        raw("is_empty without key", "POST", s, r#"{"limit":100,"filter":{"must":[{"is_empty":{}}]}}"#),
        raw("nested without filter", "POST", s, r#"{"limit":100,"filter":{"must":[{"nested":{"key":"metadata"}}]}}"#),
        raw("field is_null bool", "POST", s, r#"{"limit":100,"with_payload":false,"filter":{"must":[{"key":"department","is_null":true}]}}"#),
        raw("field is_empty bool", "POST", s, r#"{"limit":100,"with_payload":false,"filter":{"must":[{"key":"department","is_empty":true}]}}"#),
        raw("match value false", "POST", s, r#"{"limit":100,"with_payload":false,"filter":{"must":[{"key":"department","match":{"value":false}}]}}"#),
        raw("match any of integers", "POST", s, r#"{"limit":100,"with_payload":false,"filter":{"must":[{"key":"department","match":{"any":[42,7]}}]}}"#),
        raw("match except of integers", "POST", s, r#"{"limit":100,"with_payload":false,"filter":{"must":[{"key":"department","match":{"except":[42]}}]}}"#),
        raw("match text_any", "POST", s, r#"{"limit":100,"with_payload":false,"filter":{"must":[{"key":"department","match":{"text_any":"FIN HR"}}]}}"#),
        raw("key with [] in the middle", "POST", s, r#"{"limit":100,"with_payload":false,"filter":{"must":[{"key":"metadata[].department[]","match":{"value":"HR"}}]}}"#),
        raw("key with trailing dot", "POST", s, r#"{"limit":100,"filter":{"must":[{"key":"department.","match":{"value":"HR"}}]}}"#),
        raw("min_should without min_count", "POST", s, r#"{"limit":100,"filter":{"min_should":{"conditions":[]}}}"#),
        raw("with_payload include", "POST", s, r#"{"limit":3,"with_payload":{"include":["region"]}}"#),
        raw("with_payload exclude", "POST", s, r#"{"limit":3,"with_payload":{"exclude":["region"]}}"#),
        raw("with_payload list", "POST", s, r#"{"limit":3,"with_payload":["region","metadata"]}"#),
        raw("with_payload bad", "POST", s, r#"{"limit":3,"with_payload":{"includ":["region"]}}"#),
        raw("with_vector true", "POST", s, r#"{"limit":3,"with_vector":true}"#),
        raw("scroll offset", "POST", s, r#"{"limit":3,"offset":5,"with_payload":false}"#),
        raw("scroll offset missing id", "POST", s, r#"{"limit":3,"offset":100,"with_payload":false}"#),
        raw("scroll default limit", "POST", s, r#"{}"#),
        raw("count default", "POST", "/collections/measured/points/count", r#"{}"#),
        raw("query with no body", "POST", q, ""),
        raw("query without vector acts as scroll", "POST", q, r#"{"filter":{"must":[{"key":"region","match":{"value":"EMEA"}}]},"limit":100}"#),
        raw("query with payload", "POST", q, r#"{"query":[0.2,0.1,0.9,0.7],"limit":3,"with_payload":true}"#),
        raw("query offset", "POST", q, r#"{"query":[0.2,0.1,0.9,0.7],"limit":3,"offset":2}"#),
        raw("query score_threshold", "POST", q, r#"{"query":[0.2,0.1,0.9,0.7],"limit":100,"score_threshold":0.9}"#),
        raw("query wrong dimension", "POST", q, r#"{"query":[0.2,0.1,0.9],"limit":3}"#),
        raw("query by point id", "POST", q, r#"{"query":2,"limit":100}"#),
        raw("query by absent point id", "POST", q, r#"{"query":999,"limit":3}"#),
        raw("query nearest by point id under a filter", "POST", q, r#"{"query":{"nearest":2},"limit":100,"filter":{"must":[{"key":"department","match":{"value":"FINANCE"}}]}}"#),
        raw("query by a UUID that is absent", "POST", q, r#"{"query":"5c56c793-69f3-4fbf-87e6-c4bf54c28c26","limit":3}"#),
        raw("query recommend by ids", "POST", q, r#"{"query":{"recommend":{"positive":[2],"negative":[3]}},"limit":100}"#),
        raw("query recommend best_score", "POST", q, r#"{"query":{"recommend":{"positive":[2],"negative":[3],"strategy":"best_score"}},"limit":100}"#),
        raw("query recommend sum_scores", "POST", q, r#"{"query":{"recommend":{"positive":[2,5],"strategy":"sum_scores"}},"limit":100}"#),
        raw("query discover", "POST", q, r#"{"query":{"discover":{"target":1,"context":[{"positive":2,"negative":3}]}},"limit":100}"#),
        raw("query context", "POST", q, r#"{"query":{"context":[{"positive":2,"negative":3}]},"limit":100}"#),
        raw("query order_by without index", "POST", q, r#"{"query":{"order_by":"department"},"limit":5}"#),
        raw("query lookup_from", "POST", q, r#"{"query":2,"limit":100,"lookup_from":{"collection":"measured_idx"}}"#),
        raw("query lookup_from missing collection", "POST", q, r#"{"query":2,"limit":3,"lookup_from":{"collection":"nope"}}"#),
        raw("query prefetch with top filter", "POST", q, r#"{"prefetch":[{"query":[0.2,0.1,0.9,0.7],"limit":10},{"query":[0.9,0.1,0.2,0.7],"limit":10}],"query":{"fusion":"rrf"},"limit":10,"filter":{"must":[{"key":"department","match":{"value":"FINANCE"}}]}}"#),
        raw("query prefetch filter in one", "POST", q, r#"{"prefetch":[{"query":[0.2,0.1,0.9,0.7],"limit":10,"filter":{"must":[{"key":"department","match":{"value":"FINANCE"}}]}},{"query":[0.9,0.1,0.2,0.7],"limit":10}],"query":{"fusion":"rrf"},"limit":10}"#),
        raw("query dbsf", "POST", q, r#"{"prefetch":[{"query":[0.2,0.1,0.9,0.7],"limit":10},{"query":[0.9,0.1,0.2,0.7],"limit":10}],"query":{"fusion":"dbsf"},"limit":10}"#),
        raw("query rrf k", "POST", q, r#"{"prefetch":[{"query":[0.2,0.1,0.9,0.7],"limit":10},{"query":[0.9,0.1,0.2,0.7],"limit":10}],"query":{"rrf":{"k":10}},"limit":10}"#),
        raw("query prefetch without query", "POST", q, r#"{"prefetch":[{"query":[0.2,0.1,0.9,0.7],"limit":4}],"limit":10}"#),
        raw("query mmr", "POST", q, r#"{"query":{"nearest":[0.2,0.1,0.9,0.7],"mmr":{"diversity":0.5,"candidates_limit":10}},"limit":4,"with_vector":true}"#),
        raw("query unknown fusion", "POST", q, r#"{"query":{"fusion":"max"},"limit":3}"#),
        raw("query unknown using", "POST", q, r#"{"query":[0.2,0.1,0.9,0.7],"using":"nope","limit":3}"#),
        raw("retrieve default payload", "POST", "/collections/measured/points", r#"{"ids":[1,2,99]}"#),
        raw("retrieve with payload and vector", "POST", "/collections/measured/points", r#"{"ids":[3,1],"with_payload":true,"with_vector":true}"#),
        raw("retrieve bad id", "POST", "/collections/measured/points", r#"{"ids":["x"]}"#),
        raw("retrieve without ids", "POST", "/collections/measured/points", r#"{}"#),
        case("get point", "GET", "/collections/measured/points/4", None),
        case("get absent point", "GET", "/collections/measured/points/99", None),
        case("get point by bad id", "GET", "/collections/measured/points/abc", None),
        case("get absent UUID point", "GET", "/collections/measured/points/5c56c793-69f3-4fbf-87e6-c4bf54c28c26", None),
        raw("missing collection scroll", "POST", "/collections/nope/points/scroll", r#"{}"#),
        raw("missing collection query", "POST", "/collections/nope/points/query", r#"{"query":[1,0,0,0]}"#),
        raw("missing collection count", "POST", "/collections/nope/points/count", r#"{}"#),
        case("missing collection get", "GET", "/collections/nope", None),
        case("missing collection exists", "GET", "/collections/nope/exists", None),
        case("exists", "GET", "/collections/measured/exists", None),
        raw("facet without index", "POST", "/collections/measured/facet", r#"{"key":"region"}"#),
        raw("facet with index", "POST", "/collections/measured_idx/facet", r#"{"key":"region","exact":true}"#),
        raw("facet with index and filter", "POST", "/collections/measured_idx/facet", r#"{"key":"department","exact":true,"filter":{"must":[{"key":"region","match":{"value":"EMEA"}}]}}"#),
        raw("query groups", "POST", "/collections/measured/points/query/groups", r#"{"query":[0.2,0.1,0.9,0.7],"group_by":"region","limit":3,"group_size":2}"#),
        raw("query groups with payload", "POST", "/collections/measured/points/query/groups", r#"{"query":[0.2,0.1,0.9,0.7],"group_by":"department","limit":10,"group_size":2,"with_payload":true}"#),
        raw("query groups with lookup", "POST", "/collections/measured/points/query/groups", r#"{"query":[0.2,0.1,0.9,0.7],"group_by":"department","limit":3,"group_size":1,"with_lookup":"measured_idx"}"#),
        raw("query batch", "POST", "/collections/measured/points/query/batch", r#"{"searches":[{"query":[0.2,0.1,0.9,0.7],"limit":2},{"query":[0.9,0.1,0.2,0.7],"limit":2,"filter":{"must":[{"key":"region","match":{"value":"EMEA"}}]}}]}"#),
        raw("matrix pairs", "POST", "/collections/measured/points/search/matrix/pairs", r#"{"sample":100,"limit":2}"#),
        raw("matrix offsets", "POST", "/collections/measured/points/search/matrix/offsets", r#"{"sample":100,"limit":2,"filter":{"must":[{"key":"region","match":{"value":"EMEA"}}]}}"#),
        raw("legacy search", "POST", "/collections/measured/points/search", r#"{"vector":[0.2,0.1,0.9,0.7],"limit":3,"with_payload":true}"#),
        raw("legacy search without limit", "POST", "/collections/measured/points/search", r#"{"vector":[0.2,0.1,0.9,0.7]}"#),
        raw("legacy search batch", "POST", "/collections/measured/points/search/batch", r#"{"searches":[{"vector":[0.2,0.1,0.9,0.7],"limit":2},{"vector":[0.9,0.1,0.2,0.7],"limit":2}]}"#),
        raw("legacy recommend", "POST", "/collections/measured/points/recommend", r#"{"positive":[2],"negative":[3],"limit":5}"#),
        raw("legacy recommend batch", "POST", "/collections/measured/points/recommend/batch", r#"{"searches":[{"positive":[2],"limit":2}]}"#),
        raw("legacy discover", "POST", "/collections/measured/points/discover", r#"{"target":1,"context":[{"positive":2,"negative":3}],"limit":5}"#),
        raw("legacy discover batch", "POST", "/collections/measured/points/discover/batch", r#"{"searches":[{"target":1,"context":[{"positive":2,"negative":3}],"limit":2}]}"#),
        raw("legacy search groups", "POST", "/collections/measured/points/search/groups", r#"{"vector":[0.2,0.1,0.9,0.7],"group_by":"region","limit":3,"group_size":2}"#),
        raw("legacy recommend groups", "POST", "/collections/measured/points/recommend/groups", r#"{"positive":[2],"group_by":"region","limit":3,"group_size":2}"#),
        case("healthz", "GET", "/healthz", None),
        case("readyz", "GET", "/readyz", None),
        case("livez", "GET", "/livez", None),
        case("unknown route", "GET", "/no/such/route", None),
        case("trailing slash", "GET", "/collections/measured/exists/", None),
        case("double slash", "POST", "//collections//measured/points/count", Some(json!({}))),
    ];
    // LangChain's own requests (ref/vectordbs.md B.3) on its layout.
    let lq = "/collections/lc/points/query";
    out.push(raw("langchain similarity_search", "POST", lq, r#"{"query":{"nearest":[0.3,0.2,0.5,0.1]},"using":"","filter":{"must":[{"key":"metadata.department","match":{"value":"hr"}}]},"limit":4,"offset":0,"with_vector":false,"with_payload":true}"#));
    out.push(raw("langchain mmr", "POST", lq, r#"{"query":{"nearest":[0.3,0.2,0.5,0.1],"mmr":{"diversity":0.5,"candidates_limit":20}},"using":"","limit":4,"with_vector":true,"with_payload":true}"#));
    out.push(raw("langchain hybrid", "POST", lq, r#"{"prefetch":[{"query":[0.3,0.2,0.5,0.1],"using":"","limit":10},{"query":{"indices":[1,8,15],"values":[0.5,0.3,0.9]},"using":"langchain-sparse","limit":10}],"query":{"fusion":"rrf"},"limit":10,"with_payload":true}"#));
    out.push(raw("langchain get_by_ids", "POST", "/collections/lc/points", r#"{"ids":[1,2,3],"with_payload":true,"with_vector":false}"#));
    out.push(raw("sparse query", "POST", lq, r#"{"query":{"indices":[1,8,15],"values":[0.5,0.3,0.9]},"using":"langchain-sparse","limit":5}"#));
    out.push(raw("dense query on named vector with vectors", "POST", lq, r#"{"query":[0.3,0.2,0.5,0.1],"limit":3,"with_vector":true}"#));
    out.push(raw("order_by level with integer index", "POST", "/collections/lc_idx/points/query", r#"{"query":{"order_by":{"key":"metadata.level","direction":"desc"}},"limit":100,"with_payload":true}"#));
    out.push(raw("scroll order_by level", "POST", "/collections/lc_idx/points/scroll", r#"{"order_by":"metadata.level","limit":100}"#));
    out.push(raw("facet on tags", "POST", "/collections/lc_idx/facet", r#"{"key":"metadata.tags","exact":true}"#));
    out.push(raw("bool match with bool index", "POST", "/collections/lc_idx/points/count", r#"{"filter":{"must":[{"key":"metadata.public","match":{"value":true}}]}}"#));
    out.push(raw("bool match without index", "POST", "/collections/lc/points/count", r#"{"filter":{"must":[{"key":"metadata.public","match":{"value":true}}]}}"#));
    out.push(raw("is_null owner without index", "POST", "/collections/lc/points/count", r#"{"filter":{"must":[{"is_null":{"key":"metadata.owner"}}]}}"#));
    out.push(raw("is_null owner with index", "POST", "/collections/lc_idx/points/count", r#"{"filter":{"must":[{"is_null":{"key":"metadata.owner"}}]}}"#));
    out.push(raw("is_empty tags", "POST", "/collections/lc_idx/points/count", r#"{"filter":{"must":[{"is_empty":{"key":"metadata.tags"}}]}}"#));
    out.push(raw("has_vector sparse", "POST", "/collections/lc/points/count", r#"{"filter":{"must":[{"has_vector":"langchain-sparse"}]}}"#));
    out
}

/// Writes on a scratch collection, each followed by a full scroll (payload and vectors).
fn write_cases() -> Vec<Case> {
    let c = "/collections/w";
    let mut steps: Vec<Case> = vec![
        raw("create w", "PUT", c, r#"{"vectors":{"size":2,"distance":"Dot"}}"#),
        raw("create w again", "PUT", c, r#"{"vectors":{"size":2,"distance":"Dot"}}"#),
        raw("create with bad distance", "PUT", "/collections/w_bad", r#"{"vectors":{"size":2,"distance":"Cos"}}"#),
        raw("upsert list", "PUT", &format!("{c}/points?wait=true"), r#"{"points":[{"id":1,"vector":[1,0],"payload":{"d":"a","n":1}},{"id":2,"vector":[0,1],"payload":{"d":"b","n":2}},{"id":"5c56c793-69f3-4fbf-87e6-c4bf54c28c26","vector":[0.5,0.5],"payload":{"d":"a"}}]}"#),
        raw("upsert batch", "PUT", &format!("{c}/points?wait=true"), r#"{"batch":{"ids":[3,4],"vectors":[[0.2,0.8],[0.9,0.1]],"payloads":[{"d":"c"},{"d":"a","tags":["x"]}]}}"#),
        raw("upsert wrong dimension", "PUT", &format!("{c}/points?wait=true"), r#"{"points":[{"id":9,"vector":[1,0,0]}]}"#),
        raw("upsert bad id", "PUT", &format!("{c}/points?wait=true"), r#"{"points":[{"id":-3,"vector":[1,0]}]}"#),
        raw("upsert with update_filter", "PUT", &format!("{c}/points?wait=true"), r#"{"points":[{"id":1,"vector":[1,0],"payload":{"d":"z"}},{"id":2,"vector":[0,1],"payload":{"d":"z"}}],"update_filter":{"must":[{"key":"d","match":{"value":"a"}}]}}"#),
        raw("upsert insert_only", "PUT", &format!("{c}/points?wait=true"), r#"{"points":[{"id":3,"vector":[1,1],"payload":{"d":"q"}},{"id":5,"vector":[1,1],"payload":{"d":"q"}}],"update_mode":"insert_only"}"#),
        raw("set payload by ids", "POST", &format!("{c}/points/payload?wait=true"), r#"{"payload":{"e":1},"points":[1,2]}"#),
        raw("set payload by filter with key", "POST", &format!("{c}/points/payload?wait=true"), r#"{"payload":{"f":2},"key":"inner","filter":{"must":[{"key":"d","match":{"value":"c"}}]}}"#),
        raw("overwrite payload", "PUT", &format!("{c}/points/payload?wait=true"), r#"{"payload":{"only":true},"points":[4]}"#),
        raw("delete payload keys", "POST", &format!("{c}/points/payload/delete?wait=true"), r#"{"keys":["e"],"points":[1]}"#),
        raw("clear payload by filter", "POST", &format!("{c}/points/payload/clear?wait=true"), r#"{"filter":{"must":[{"key":"d","match":{"value":"b"}}]}}"#),
        raw("update vectors", "PUT", &format!("{c}/points/vectors?wait=true"), r#"{"points":[{"id":1,"vector":[0.3,0.7]}]}"#),
        raw("update vectors of absent point", "PUT", &format!("{c}/points/vectors?wait=true"), r#"{"points":[{"id":77,"vector":[0.3,0.7]}]}"#),
        raw("batch operations", "POST", &format!("{c}/points/batch?wait=true"), r#"{"operations":[{"upsert":{"points":[{"id":6,"vector":[0.6,0.4],"payload":{"d":"b"}}]}},{"set_payload":{"payload":{"g":3},"points":[6]}},{"delete":{"points":[2]}}]}"#),
        raw("batch unknown operation", "POST", &format!("{c}/points/batch?wait=true"), r#"{"operations":[{"upsertt":{"points":[]}}]}"#),
        raw("delete by filter", "POST", &format!("{c}/points/delete?wait=true"), r#"{"filter":{"must":[{"key":"d","match":{"value":"q"}}]}}"#),
        raw("delete by ids", "POST", &format!("{c}/points/delete?wait=true"), r#"{"points":[3,404]}"#),
        raw("delete without selector", "POST", &format!("{c}/points/delete?wait=true"), r#"{}"#),
        raw("create index", "PUT", &format!("{c}/index?wait=true"), r#"{"field_name":"d","field_schema":"keyword"}"#),
        raw("create index bad schema", "PUT", &format!("{c}/index?wait=true"), r#"{"field_name":"d","field_schema":"keywordd"}"#),
        raw("count with index", "POST", &format!("{c}/points/count"), r#"{"filter":{"must":[{"key":"d","match":{"value":"a"}}]}}"#),
        case("delete index", "DELETE", format!("{c}/index/d?wait=true"), None),
        raw("patch metadata", "PATCH", c, r#"{"metadata":{"team":"x"}}"#),
        case("delete w", "DELETE", c, None),
        case("delete w again", "DELETE", c, None),
    ];
    let mut out = Vec::new();
    for step in steps.drain(..) {
        let name = step.name.clone();
        let is_write = step.method != "GET";
        out.push(step);
        if is_write {
            out.push(raw(&format!("state after {name}"), "POST", &format!("{c}/points/scroll"), r#"{"limit":100,"with_payload":true,"with_vector":true}"#));
        }
    }
    out
}

// ---- vecgate's own requests -------------------------------------------------------------------

const COLLECTION_POLICY: &str = "apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: collection\n  version: default\n  rules:\n    - actions: [read]\n      effect: EFFECT_ALLOW\n      roles: [user]\n";

fn policies() -> Vec<(&'static str, String)> {
    let rule = |effect: &str, expr: &str| {
        format!("    - actions: [read]\n      effect: {effect}\n      roles: [user]\n      condition:\n        match:\n          expr: '{expr}'\n")
    };
    let doc = |rules: String| {
        format!("apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: document\n  version: default\n  rules:\n{rules}")
    };
    let allow = |e: &str| rule("EFFECT_ALLOW", e);
    let deny = |e: &str| rule("EFFECT_DENY", e);
    vec![
        ("equality", doc(allow("request.resource.attr.department == request.principal.attr.department"))),
        ("ownership-or-clearance", doc(allow("request.resource.attr.owner == request.principal.id || (request.resource.attr.department == request.principal.attr.department && request.resource.attr.level <= request.principal.attr.clearance)"))),
        ("range", doc(allow("request.resource.attr.level >= 2 && request.resource.attr.level <= request.principal.attr.clearance"))),
        ("lists", doc(allow("request.principal.attr.tag in request.resource.attr.tags || request.resource.attr.region in request.principal.attr.regions"))),
        ("negation-over-required", doc(allow("request.resource.attr.region != \"APAC\" && request.resource.attr.department != request.principal.attr.department"))),
        ("negation-over-optional", doc(allow("request.resource.attr.owner != request.principal.id && request.resource.attr.region == request.principal.attr.region"))),
        ("deny-rule", doc(format!("{}{}", allow("request.resource.attr.region == request.principal.attr.region || request.resource.attr.owner == request.principal.id"), deny("request.resource.attr.level > request.principal.attr.clearance")))),
        ("has-guard", doc(allow("(has(request.resource.attr.owner) && request.resource.attr.owner == request.principal.id) || (has(request.resource.attr.level) && request.resource.attr.level >= 4)"))),
        ("not-has", doc(allow("!has(request.resource.attr.owner) || request.resource.attr.owner == request.principal.id"))),
        ("bool-and-null", doc(allow("request.resource.attr.public == true || request.resource.attr.owner == null"))),
        ("ids", doc(allow("request.resource.id in [\"1\", \"2\", \"3\", \"17\"] || request.resource.attr.department == \"eng\""))),
        ("in-literal-list", doc(allow("request.resource.attr.department in [\"hr\", \"eng\"] && !(request.resource.attr.region in [\"APAC\"])"))),
        ("nobody", doc(allow("false"))),
        ("everybody", doc(allow("true"))),
    ]
}

/// Reads through vecgate (in front of the double) as LangChain and qdrant-client send them.
fn reads(coll: &str, point: &Value) -> Vec<(&'static str, String, Value)> {
    let p = |route: &str| format!("/collections/{coll}/{route}");
    let user = json!({"must": [{"key": "metadata.region", "match": {"any": ["EMEA", "AMER"]}}]});
    vec![
        ("POST", p("points/query"), json!({"query": {"nearest": [0.3, 0.2, 0.5, 0.1]}, "using": "", "limit": 100, "offset": 0, "with_vector": false, "with_payload": true})),
        ("POST", p("points/query"), json!({"prefetch": [{"query": [0.3, 0.2, 0.5, 0.1], "using": "", "filter": user, "limit": 100}, {"query": {"indices": [1, 8, 15], "values": [0.5, 0.3, 0.9]}, "using": SPARSE, "filter": user, "limit": 100}], "query": {"fusion": "rrf"}, "filter": user, "limit": 100, "with_payload": true})),
        ("POST", p("points/query"), json!({"query": {"nearest": [0.3, 0.2, 0.5, 0.1], "mmr": {"diversity": 0.5, "candidates_limit": 100}}, "using": "", "limit": 10, "with_vector": true, "with_payload": true})),
        ("POST", p("points/scroll"), json!({"limit": 100, "with_payload": true})),
        ("POST", p("points/count"), json!({"exact": true})),
        ("POST", p("points"), json!({"ids": [1, 2, 3, 4, 5, point.clone()], "with_payload": true})),
        ("POST", p("points/query"), json!({"query": point, "limit": 100})),
        ("POST", p("points/query/batch"), json!({"searches": [{"query": [0.3, 0.2, 0.5, 0.1], "limit": 100}, {"query": [0.1, 0.5, 0.2, 0.3], "limit": 100, "filter": user}]})),
        ("POST", p("points/query/groups"), json!({"query": [0.3, 0.2, 0.5, 0.1], "group_by": "metadata.department", "limit": 3, "group_size": 100, "with_payload": true})),
        ("POST", p("points/search"), json!({"vector": {"name": "", "vector": [0.3, 0.2, 0.5, 0.1]}, "limit": 100, "with_payload": true})),
        ("POST", p("points/recommend"), json!({"positive": [point], "limit": 100})),
        ("POST", p("points/search/matrix/pairs"), json!({"sample": 100, "limit": 2})),
        ("POST", p("facet"), json!({"key": "metadata.department", "exact": true})),
    ]
}

fn vecgate_cases(double: &QdrantServer, lc: &[Value], rng: &mut Rng) -> Vec<Case> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (name, policy) in policies() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("document.yaml"), &policy).unwrap();
        std::fs::write(dir.path().join("collection.yaml"), COLLECTION_POLICY).unwrap();
        let mut options = VecgateOptions::qdrant(double.url(), dir.path());
        options.collections_yaml = "  - name: \"*\"\n    resource_kind: document\n    required_attrs: [department, region]\n".into();
        let vecgate = VecgateServer::start(&options);
        double.clear_recorded_requests();
        for _ in 0..3 {
            let sub = *[ "u1", "u2", "u3"].get(rng.below(3)).unwrap();
            let claims = json!({
                "department": rng.pick(&DEPARTMENTS),
                "region": rng.pick(&REGIONS),
                "regions": [rng.pick(&REGIONS), rng.pick(&REGIONS)],
                "clearance": 1 + rng.below(5),
                "tag": rng.pick(&TAGS),
            });
            let tok = token(sub, &["user"], &claims);
            let point = lc[rng.below(lc.len())]["id"].clone();
            for coll in ["lc", "lc_idx"] {
                for (method, path, body) in reads(coll, &point) {
                    // The answer does not matter here; what vecgate forwards does.
                    let _ = vecgate.call(method, &path, Some(&tok), Some(&body));
                }
            }
        }
        // A policy vecgate refuses (403), or answers locally (nobody), forwards nothing.
        let forwarded = double.recorded_requests();
        for r in forwarded {
            let method = match r["method"].as_str().unwrap() {
                "GET" => "GET",
                "POST" => "POST",
                "PUT" => "PUT",
                "DELETE" => "DELETE",
                "PATCH" => "PATCH",
                other => panic!("unexpected method {other}"),
            };
            let query = r["query"].as_str().unwrap_or("");
            let path = if query.is_empty() { r["path"].as_str().unwrap().to_string() } else { format!("{}?{query}", r["path"].as_str().unwrap()) };
            let body = (!r["body"].is_null()).then(|| r["body"].to_string());
            if seen.insert((method, path.clone(), body.clone())) {
                out.push(Case { name: format!("vecgate ({name}) {method} {path}"), method, path, body, ids_only: false });
            }
        }
    }
    assert!(out.len() >= 100, "vecgate forwarded only {} distinct requests", out.len());
    out
}

// ---- comparing -------------------------------------------------------------------------------

/// What is compared: `(status, result)` for a success, `(status, error class)` otherwise.
fn outcome(status: u16, text: &str, ids_only: bool) -> Value {
    let body: Value = serde_json::from_str(text).unwrap_or(Value::String(text.to_string()));
    if (200..300).contains(&status) {
        let mut result = if body.get("status").is_some() && body.get("result").is_some() { body["result"].clone() } else { body };
        strip_operation_numbers(&mut result);
        order_ties(&mut result);
        if ids_only {
            let ids: BTreeSet<String> = result["points"].as_array().into_iter().flatten().map(|p| p["id"].to_string()).collect();
            result = json!(ids);
        }
        if let Some(list) = result.get_mut("collections").and_then(Value::as_array_mut) {
            list.sort_by_key(|c| c["name"].to_string());
        }
        json!({"status": status, "result": result})
    } else {
        let message = body["status"]["error"].as_str().unwrap_or(text);
        let class = message.split(':').next().unwrap_or("").trim().to_string();
        json!({"status": status, "error class": class})
    }
}

/// Operation numbers, and `segments_count` (the server makes one appendable segment per CPU
/// of its machine, `default_segment_number: 0`; the double's Edge shard has one).
fn strip_operation_numbers(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.remove("operation_id");
            map.remove("version");
            map.remove("segments_count");
            for child in map.values_mut() {
                strip_operation_numbers(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_operation_numbers),
        _ => {}
    }
}

/// Qdrant promises no order among hits of equal score and order value (the server's
/// segments and the double's one break such ties differently): each run of consecutive hits
/// with the same score and order value is put in id order, on both sides alike.
fn order_ties(v: &mut Value) {
    match v {
        Value::Array(items) => {
            items.iter_mut().for_each(order_ties);
            let ranked = |p: &Value| p.get("score").is_some_and(Value::is_number) || p.get("order_value").is_some();
            if items.iter().all(ranked) {
                let rank = |p: &Value| (p.get("score").map(Value::to_string), p.get("order_value").map(Value::to_string));
                let mut start = 0;
                while start < items.len() {
                    let mut end = start + 1;
                    while end < items.len() && rank(&items[end]) == rank(&items[start]) {
                        end += 1;
                    }
                    items[start..end].sort_by_key(|p| p["id"].to_string());
                    start = end;
                }
            }
        }
        Value::Object(map) => map.values_mut().for_each(order_ties),
        _ => {}
    }
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => (x - y).abs() <= 1e-5 * x.abs().max(y.abs()).max(1.0),
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
        (Value::Object(x), Value::Object(y)) => x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w))),
        _ => a == b,
    }
}

#[test]
fn the_double_answers_like_the_real_server() {
    let kind = QdrantKind::configured();
    if !kind.is_real() {
        eprintln!("qdrant conformance: not run (no real Qdrant given: set QDRANT_BIN or QDRANT_URL; scripts/test.sh finds one)");
        return;
    }
    let real = QdrantServer::start();
    let double = QdrantServer::start_double();
    let version = real.version();
    let mut rng = Rng(0x00c0_ffee_1234_5678);
    let lc = lc_points(&mut rng);
    seed(&real, &lc);
    seed(&double, &lc);

    let started = std::time::Instant::now();
    let mut cases = vecgate_cases(&double, &lc, &mut rng);
    let captured_in = started.elapsed();
    let from_vecgate = cases.len();
    cases.extend(measured_cases());
    cases.extend(trap_cases());
    cases.extend(write_cases());
    // Collections the writes left: the same on both.
    cases.push(case("list collections", "GET", "/collections", None));
    for name in ["measured", "lc_idx"] {
        cases.push(case(format!("collection info {name}"), "GET", format!("/collections/{name}"), None));
    }

    let replay_started = std::time::Instant::now();
    let mut differences = Vec::new();
    let mut known_seen = BTreeSet::new();
    for c in &cases {
        let (rs, rt) = real.call_raw(c.method, &c.path, c.body.as_deref());
        let (ds, dt) = double.call_raw(c.method, &c.path, c.body.as_deref());
        let (want, got) = (outcome(rs, &rt, c.ids_only), outcome(ds, &dt, c.ids_only));
        if same(&want, &got) {
            continue;
        }
        let known = KNOWN_DIFFERENCES.iter().position(|(name, ver, _)| c.name.contains(name) && version.starts_with(ver));
        match known {
            Some(i) => {
                known_seen.insert(i);
            }
            None => differences.push(format!(
                "{}: {} {} {}\n    real:   {}\n    double: {}",
                c.name,
                c.method,
                c.path,
                c.body.as_deref().unwrap_or(""),
                want,
                got
            )),
        }
    }
    let stale: Vec<&str> = KNOWN_DIFFERENCES
        .iter()
        .enumerate()
        .filter(|(i, (_, ver, _))| version.starts_with(ver) && !known_seen.contains(i))
        .map(|(_, (name, _, _))| *name)
        .collect();
    eprintln!(
        "qdrant conformance: double vs real Qdrant {version} ({}): {} requests ({from_vecgate} forwarded by vecgate, captured in {:.0?}; replayed to both in {:.0?}), {} equal, {} known differences, {} unexplained",
        kind.describe(),
        cases.len(),
        captured_in,
        replay_started.elapsed(),
        cases.len() - differences.len() - known_seen.len(),
        known_seen.len(),
        differences.len()
    );
    for i in &known_seen {
        eprintln!("  known: {} — {}", KNOWN_DIFFERENCES[*i].0, KNOWN_DIFFERENCES[*i].2);
    }
    assert!(stale.is_empty(), "listed differences that no longer differ (remove them): {stale:?}");
    assert!(
        differences.is_empty(),
        "{} answers differ between the double and real Qdrant {version}:\n{}",
        differences.len(),
        differences.iter().take(200).cloned().collect::<Vec<_>>().join("\n")
    );
}
