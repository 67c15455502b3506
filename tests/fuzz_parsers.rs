//! Property-driven fuzzing on stable Rust: every parser of untrusted input gets random bytes and
//! random JSON shaped like what it expects, and must answer (accept or refuse) without
//! panicking. The number of cases per parser is proptest's (`PROPTEST_CASES`, default 256);
//! raise it for a longer run, e.g. `PROPTEST_CASES=100000 cargo test --release --test fuzz_parsers`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use vecgate::backends::chroma::request as chroma_request;
use vecgate::backends::chroma::response as chroma_response;
use vecgate::backends::chroma::routes::{self as chroma_routes, Operation as ChromaOp};
use vecgate::json::{parse_strict, parse_strict_keeping, to_vec, Place};
use vecgate::backends::qdrant::request as qdrant_request;
use vecgate::backends::qdrant::request::Trim;
use vecgate::backends::qdrant::response as qdrant_response;
use vecgate::backends::qdrant::routes::{self as qdrant_routes, Operation as QdrantOp};

/// Keys the parsers look for, so random objects hit the interesting paths.
const KEYS: &[&str] = &[
    "ids", "where", "where_document", "include", "limit", "offset", "query_embeddings", "n_results",
    "embeddings", "metadatas", "documents", "uris", "searches", "filter", "select", "keys",
    "points", "batch", "payload", "payloads", "vectors", "vector", "query", "prefetch", "nearest",
    "recommend", "positive", "negative", "discover", "target", "context", "lookup_from",
    "with_lookup", "with_payload", "with_vector", "include", "exclude", "must", "should",
    "must_not", "key", "match", "value", "operations", "upsert", "delete", "set_payload",
    "result", "id", "distances", "scores", "groups", "hits", "collection", "$and", "$or", "$eq",
    "#metadata", "department",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (0u64..20).prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        "[a-z#$]{0,6}".prop_map(Value::String),
        Just(json!("5c56c793-69f3-4fbf-87e6-c4bf54c28c26")),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|entries| {
                Value::Object(entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<Map<_, _>>())
            }),
        ]
    })
}

/// A JSON number as a client might write it, including ones at the edge of `f64`.
fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<f32>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| f.to_string()),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| format!("{f:e}")),
        any::<i64>().prop_map(|n| n.to_string()),
        (prop::sample::select(vec!["-", ""]), "[0-9]{1,3}", prop::option::of("[0-9]{1,4}"), prop::sample::select(vec!["e", "E", "e+", "e-"]), 280u32..320)
            .prop_map(|(sign, int, frac, e, exp)| format!("{sign}{int}{}{e}{exp}", frac.map(|f| format!(".{f}")).unwrap_or_default())),
        "[0-9]{290,310}",
        Just("0".to_string()),
        Just("-0.0".to_string()),
    ]
}

fn acl() -> Value {
    json!({"department": {"$eq": "finance"}})
}

proptest! {
    #[test]
    fn strict_json_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_strict(&bytes, 64);
    }

    /// Keeping vectors as text accepts and refuses exactly what the strict parser does, and
    /// what it writes back means what the strict parser read.
    #[test]
    fn keeping_vectors_changes_nothing_but_the_work(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        v in json_value(),
        key in prop::sample::select(vec![0usize, 1, 2]),
    ) {
        let (name, place) = KEPT_PLACES[key];
        let text = serde_json::to_vec(&v).unwrap();
        let wrapped = serde_json::to_vec(&json!({name: v, "n_results": 3})).unwrap();
        for input in [&bytes, &text, &wrapped] {
            agree(input, place)?;
        }
    }

    /// The same on embedding-shaped bodies written by hand (odd spacing, exponents, long and
    /// edge-of-range literals, the key twice or escaped), each then damaged at one byte: the
    /// fast path for number lists must refuse and accept exactly what the strict parser does.
    #[test]
    fn keeping_number_lists_agrees_with_the_strict_parser(
        vectors in prop::collection::vec(prop::collection::vec(number_text(), 0..5), 0..4),
        flat in any::<bool>(),
        space in prop::sample::select(vec!["", " ", "\n\t ", "\r"]),
        before in prop::sample::select(vec!["", r#""n_results":4,"#, r#""where":{"a":"]}"},"#, r#""\u0071uery_embeddings":1,"#, r#""query_embeddings":[1],"#]),
        after in prop::sample::select(vec!["", r#","include":["metadatas"]"#, r#","x":[[1e999]]"#]),
        damage in damage(),
    ) {
        let items: Vec<String> = if flat {
            vectors.iter().flatten().cloned().collect()
        } else {
            vectors.iter().map(|v| format!("[{space}{}{space}]", v.join(&format!("{space},{space}")))).collect()
        };
        let list = format!("[{space}{}{space}]", items.join(&format!(",{space}")));
        let mut body = format!("{{{before}{space}\"query_embeddings\"{space}:{space}{list}{after}}}").into_bytes();
        apply_damage(&mut body, damage);
        agree(&body, &QUERY_EMBEDDINGS)?;
    }

    /// Qdrant bodies with vectors everywhere a vector can be (and numbers, ids, strings and
    /// objects where one is expected), written with odd spacing and then damaged at one byte,
    /// go through every operation that keeps vectors: parsed strictly and parsed keeping
    /// vectors, each then validated, rewritten (filter, payload, update filter, narrowing),
    /// described as writes and written out. Both ways must accept and refuse alike, refuse
    /// with the same error, read the same ids, and write bodies that mean the same.
    #[test]
    fn qdrant_kept_vectors_change_nothing_but_the_work(node in qdrant_body(), spacing in 0usize..4, damage in damage()) {
        let mut body = node.render(SPACES[spacing]).into_bytes();
        apply_damage(&mut body, damage);
        for (method, path) in QDRANT_VECTOR_ROUTES {
            qdrant_agree(method, path, &body)?;
        }
    }

    /// The same for Chroma's query and write bodies.
    #[test]
    fn chroma_kept_vectors_change_nothing_but_the_work(node in chroma_body(), spacing in 0usize..4, damage in damage()) {
        let mut body = node.render(SPACES[spacing]).into_bytes();
        apply_damage(&mut body, damage);
        for (method, path) in CHROMA_VECTOR_ROUTES {
            chroma_agree(method, path, &body)?;
        }
    }

    #[test]
    fn strict_json_parser_agrees_with_serde_on_valid_documents(v in json_value()) {
        let text = serde_json::to_vec(&v).unwrap();
        // Random objects have no duplicate keys after serde's own map, so they must parse.
        prop_assert_eq!(parse_strict(&text, 64).unwrap(), v);
    }

    #[test]
    fn chroma_routes_never_panic(path in "(/[a-zA-Z0-9%._-]{0,12}){0,9}/?", method in prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]), query in proptest::option::of("[a-z_=&%]{0,20}")) {
        let method = http::Method::from_bytes(method.as_bytes()).unwrap();
        if let Some(route) = chroma_routes::classify(&method, &path) {
            let _ = chroma_routes::check_query(route.op, query.as_deref());
        }
    }

    #[test]
    fn qdrant_routes_never_panic(path in "(/[a-zA-Z0-9%._-]{0,12}){0,8}/{0,2}", method in prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH"]), query in proptest::option::of("[a-z_=&%]{0,20}")) {
        let method = http::Method::from_bytes(method.as_bytes()).unwrap();
        let _ = qdrant_routes::normalise_path(&path);
        if let Some(route) = qdrant_routes::classify(&method, &path) {
            let _ = qdrant_routes::check_query(route.op, query.as_deref());
        }
    }

    #[test]
    fn chroma_request_rewrites_never_panic(body in json_value(), need in any::<bool>()) {
        for op in [ChromaOp::Get, ChromaOp::Query, ChromaOp::Delete, ChromaOp::Search] {
            if let Ok((rewritten, _)) = chroma_request::rewrite_filtered(op, body.clone(), Some(&acl()), need) {
                // Whatever is accepted carries the filter (a search batch of none is vacuous).
                let text = rewritten.to_string();
                let no_requests = body.get("searches").and_then(Value::as_array).is_some_and(Vec::is_empty);
                prop_assert!(no_requests || text.contains("finance"), "{op:?} lost the filter: {text}");
            }
        }
        for op in [ChromaOp::Add, ChromaOp::Upsert, ChromaOp::Update] {
            if let Ok(batch) = chroma_request::parse_write(op, &body) {
                let mut copy = body.clone();
                let _ = chroma_request::set_write_metadatas(&mut copy, &batch.metadatas);
                for m in &batch.metadatas {
                    let _ = chroma_request::merged_metadata(op, m.as_ref(), m.as_ref());
                }
            }
        }
    }

    #[test]
    fn chroma_response_filters_never_panic(mut resp in json_value(), drop in any::<bool>()) {
        let trim = chroma_request::Trim { drop_metadatas: drop };
        let mut keep = |id: &str, _: Option<&Map<String, Value>>| id.len() % 2 == 0;
        let _ = chroma_response::filter_get_response(&mut resp.clone(), &mut keep, trim);
        let _ = chroma_response::filter_query_response(&mut resp.clone(), &mut keep, trim);
        let _ = chroma_response::filter_search_response(&mut resp, &mut keep, trim);
    }

    #[test]
    fn qdrant_request_parsers_never_panic(body in json_value()) {
        let filter = json!({"must": [{"key": "metadata.department", "match": {"value": "finance"}}]});
        for op in QdrantOp::ALL {
            if op.class() == qdrant_routes::Intent::Read {
                if let Ok(rewritten) = qdrant_request::inject_filter(op, body.clone(), Some(&filter)) {
                    // Every request in the body carries the filter (a batch of none is vacuous).
                    let no_requests = body.get("searches").and_then(Value::as_array).is_some_and(Vec::is_empty);
                    prop_assert!(no_requests || rewritten.to_string().contains("finance"), "{op:?} lost the filter");
                }
                let _ = qdrant_request::point_inputs(op, &body);
                let _ = qdrant_request::lookups(op, &body);
                let _ = qdrant_request::force_payload(op, &mut body.clone(), &["metadata".to_string()]);
            }
            if matches!(op.class(), qdrant_routes::Intent::Write | qdrant_routes::Intent::Delete) {
                if let Ok(writes) = qdrant_request::parse_point_writes(op, &body) {
                    for w in &writes {
                        let _ = qdrant_request::payload_after(&w.change, None);
                    }
                }
                let _ = qdrant_request::write_selector(op, &body);
                let _ = qdrant_request::selector_to_filter(op, body.clone(), &filter);
            }
        }
        let _ = qdrant_request::split_batch(&body);
    }

    #[test]
    fn qdrant_response_filter_never_panics(resp in json_value()) {
        let mut keep = |_: &qdrant_request::PointId, p: Option<&Map<String, Value>>| p.is_some();
        for op in QdrantOp::ALL {
            if op.post_filterable() {
                let _ = qdrant_response::filter_points(op, &mut resp.clone(), &mut keep, &Trim::default());
                let _ = qdrant_response::filter_lookups(op, &mut resp.clone(), &mut keep);
            }
        }
    }

    #[test]
    fn cel_parser_never_panics(source in "[a-zA-Z0-9_.()\\[\\]{}\"'!&|<>=+*/%?:, -]{0,80}") {
        let _ = vecgate::policy::cel::parse(&source);
    }

    #[test]
    fn policy_loader_never_panics(yaml in policy_yaml()) {
        let _ = vecgate::policy::load::load_documents(&[("fuzz.yaml".to_string(), yaml)]);
    }

    #[test]
    fn jwt_verification_never_panics_or_accepts_garbage(token in "[A-Za-z0-9_=.-]{0,200}") {
        let auth = authenticator();
        prop_assert!(auth.verify_token(&token).is_err());
        let mut headers = http::HeaderMap::new();
        if let Ok(v) = http::HeaderValue::from_str(&format!("Bearer {token}")) {
            headers.insert(http::header::AUTHORIZATION, v);
            prop_assert!(auth.authenticate(&headers).is_err());
        }
    }
}

/// Random mutations of a valid policy: lines dropped, duplicated, re-indented, or replaced.
fn policy_yaml() -> impl Strategy<Value = String> {
    const BASE: &str = "apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: document\n  version: default\n  importDerivedRoles: [x]\n  rules:\n    - actions: [\"read\", \"*\"]\n      effect: EFFECT_ALLOW\n      roles: [user]\n      condition:\n        match:\n          all:\n            of:\n              - expr: request.resource.attr.department == request.principal.attr.department\n              - expr: R.attr.level <= P.attr.clearance && \"a\" in R.attr.tags\n";
    let lines: Vec<String> = BASE.lines().map(String::from).collect();
    let n = lines.len();
    prop::collection::vec((0..n, 0u8..5, "[ a-z:\\[\\]{}&|\"-]{0,12}"), 0..6).prop_map(move |edits| {
        let mut out = lines.clone();
        for (i, kind, text) in edits {
            let i = i % out.len().max(1);
            if out.is_empty() {
                break;
            }
            match kind {
                0 => {
                    out.remove(i);
                }
                1 => out.insert(i, out[i].clone()),
                2 => out[i] = format!("  {}", out[i]),
                3 => out[i].push_str(&text),
                _ => out[i] = text,
            }
        }
        out.join("\n")
    })
}

fn authenticator() -> vecgate::authn::Authenticator {
    use vecgate::config::{Algorithm, AuthConfig, KeySource, PrincipalMapping};
    std::env::set_var("VECGATE_FUZZ_SECRET", "fuzz-secret-0123456789abcdef0123456789abcdef0123456789abcdef");
    vecgate::authn::Authenticator::from_config(&AuthConfig {
        issuer: None,
        audience: None,
        algorithms: vec![Algorithm::HS256, Algorithm::HS384],
        key: KeySource::HmacSecretEnv("VECGATE_FUZZ_SECRET".into()),
        jwks_ca_file: None,
        leeway: std::time::Duration::ZERO,
        principal: PrincipalMapping {
            id: "sub".into(),
            roles: "roles".into(),
            attr: None,
        },
    })
    .unwrap()
}

// ---- kept vectors: the strict parser as the oracle ----------------------------------------

static QUERY_EMBEDDINGS: Place = Place::Object(&[("query_embeddings", &Place::Each(&Place::Vector))]);
static WHERE_VECTORS: Place = Place::Object(&[("where", &Place::Each(&Place::Vector))]);
static IDS_VECTORS: Place = Place::Object(&[("ids", &Place::Each(&Place::Vector))]);
const KEPT_PLACES: [(&str, &Place); 3] = [("query_embeddings", &QUERY_EMBEDDINGS), ("where", &WHERE_VECTORS), ("ids", &IDS_VECTORS)];

/// Both parses refuse (with the same kind of error) or both accept, and what the kept one
/// writes means what the strict one read.
fn agree(body: &[u8], place: &Place) -> Result<(), TestCaseError> {
    match (parse_strict(body, 64), parse_strict_keeping(body, 64, place)) {
        (Ok(value), Ok(kept)) => {
            let written: Value = serde_json::from_slice(&to_vec(&kept).unwrap()).unwrap();
            prop_assert_eq!(written, value);
        }
        (Err(a), Err(b)) => prop_assert_eq!(a, b),
        (a, b) => prop_assert!(false, "{}: strict {:?} but keeping {:?}", String::from_utf8_lossy(body), a, b),
    }
    Ok(())
}

type Damage = Option<(prop::sample::Index, Option<u8>)>;

fn damage() -> impl Strategy<Value = Damage> {
    prop::option::weighted(
        0.7,
        (any::<prop::sample::Index>(), prop::sample::select(vec![None, Some(b'"'), Some(b','), Some(b']'), Some(b'['), Some(b'{'), Some(b'}'), Some(b'-'), Some(b'e'), Some(b'.'), Some(b'0'), Some(b' '), Some(0xff)])),
    )
}

fn apply_damage(body: &mut Vec<u8>, damage: Damage) {
    if let Some((at, byte)) = damage {
        if body.is_empty() {
            return;
        }
        let i = at.index(body.len());
        match byte {
            None => {
                body.remove(i);
            }
            Some(b) => body[i] = b,
        }
    }
}

const SPACES: [&str; 4] = ["", " ", "\n\t", "\r "];

/// A JSON body written by hand, so numbers keep the spelling `number_text` gave them.
#[derive(Debug, Clone)]
enum Node {
    Object(Vec<(String, Node)>),
    List(Vec<Node>),
    /// A number, or a literal, as written.
    Raw(String),
    Text(String),
}

impl Node {
    fn render(&self, space: &str) -> String {
        match self {
            Node::Object(members) => {
                let inner: Vec<String> = members.iter().map(|(k, v)| format!("{space}{k:?}{space}:{space}{}", v.render(space))).collect();
                format!("{{{}{space}}}", inner.join(","))
            }
            Node::List(items) => {
                let inner: Vec<String> = items.iter().map(|v| format!("{space}{}", v.render(space))).collect();
                format!("[{}{space}]", inner.join(","))
            }
            Node::Raw(text) => text.clone(),
            Node::Text(text) => format!("{text:?}"),
        }
    }
}

fn vector_node() -> impl Strategy<Value = Node> {
    prop::collection::vec(number_text(), 0..6).prop_map(|items| Node::List(items.into_iter().map(Node::Raw).collect()))
}

fn leaf_node() -> BoxedStrategy<Node> {
    prop_oneof![
        4 => vector_node(),
        1 => prop::collection::vec(vector_node(), 0..3).prop_map(Node::List),
        2 => number_text().prop_map(Node::Raw),
        2 => (0u64..5).prop_map(|n| Node::Raw(n.to_string())),
        1 => Just(Node::Text("5c56c793-69f3-4fbf-87e6-c4bf54c28c26".into())),
        1 => "[a-z_]{0,6}".prop_map(Node::Text),
        1 => prop::sample::select(vec!["null", "true", "false"]).prop_map(|l| Node::Raw(l.to_string())),
        1 => Just(Node::Object(vec![("indices".into(), Node::List(vec![Node::Raw("1".into()), Node::Raw("7".into())])), ("values".into(), Node::List(vec![Node::Raw("0.5".into()), Node::Raw("-1e-3".into())]))])),
    ]
    .boxed()
}

fn tree(keys: &'static [&'static str]) -> impl Strategy<Value = Node> {
    leaf_node().prop_recursive(5, 48, 5, move |inner| {
        prop_oneof![
            3 => prop::collection::vec((prop::sample::select(keys), inner.clone()), 0..5)
                .prop_map(|m| Node::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
            1 => prop::collection::vec(inner, 0..4).prop_map(Node::List),
        ]
    })
}

/// Keys of Qdrant's read and write bodies, vector places and their neighbours.
const QDRANT_KEYS: &[&str] = &[
    "query", "prefetch", "nearest", "recommend", "positive", "negative", "discover", "target", "context",
    "relevance_feedback", "feedback", "example", "vector", "vectors", "points", "batch", "ids", "payloads",
    "payload", "id", "operations", "upsert", "update_vectors", "searches", "filter", "limit", "with_payload",
    "name", "indices", "values", "lookup_from", "collection", "using", "must", "has_id", "fusion", "mmr",
    "update_filter", "update_mode", "strategy", "score", "metadata", "department",
];

/// A vector input: a vector, a sparse vector, a multivector, or a point id.
fn vector_input() -> BoxedStrategy<Node> {
    prop_oneof![
        3 => vector_node(),
        1 => (vector_node(), vector_node()).prop_map(|(a, b)| Node::List(vec![a, b])),
        1 => vector_node().prop_map(|v| Node::Object(vec![("indices".into(), Node::List(vec![Node::Raw("3".into()), Node::Raw("9".into())])), ("values".into(), v)])),
        1 => (0u64..4).prop_map(|n| Node::Raw(n.to_string())),
        1 => leaf_node(),
    ]
    .boxed()
}

/// A read body of one of the shapes Qdrant's read operations take (query, search,
/// recommend, discover), its vector places filled with vector inputs.
fn qdrant_read_body() -> BoxedStrategy<Node> {
    let pair = || (vector_input(), vector_input()).prop_map(|(p, n)| Node::Object(vec![("positive".into(), p), ("negative".into(), n)])).boxed();
    let query = prop_oneof![
        3 => vector_input(),
        1 => vector_input().prop_map(|v| Node::Object(vec![("nearest".into(), v)])),
        1 => prop::collection::vec(vector_input(), 0..3).prop_map(|p| Node::Object(vec![("recommend".into(), Node::Object(vec![("positive".into(), Node::List(p))]))])),
        1 => (vector_input(), prop::collection::vec(pair(), 0..2)).prop_map(|(t, c)| Node::Object(vec![("discover".into(), Node::Object(vec![("target".into(), t), ("context".into(), Node::List(c))]))])),
        1 => pair().prop_map(|c| Node::Object(vec![("context".into(), c)])),
        1 => (vector_input(), vector_input()).prop_map(|(t, e)| Node::Object(vec![("relevance_feedback".into(), Node::Object(vec![("target".into(), t), ("feedback".into(), Node::List(vec![Node::Object(vec![("example".into(), e), ("score".into(), Node::Raw("0.5".into()))])]))]))])),
        1 => Just(Node::Object(vec![("fusion".into(), Node::Text("rrf".into()))])),
    ]
    .boxed();
    let with_payload = prop::sample::select(vec!["true", "false", "[\"metadata\"]", "null"]).prop_map(|t| Node::Raw(t.to_string()));
    let filter = prop_oneof![
        Just(None),
        Just(Some(Node::Object(vec![("must".into(), Node::List(vec![Node::Object(vec![("has_id".into(), Node::List(vec![Node::Raw("1".into())]))])]))]))),
    ];
    prop_oneof![
        // query (with prefetches), also the body of query/groups and of a query batch entry
        (query.clone(), prop::collection::vec(query.clone(), 0..3), with_payload.clone(), filter.clone()).prop_map(|(q, prefetch, wp, f)| {
            let mut m = vec![("query".into(), q), ("limit".into(), Node::Raw("4".into())), ("with_payload".into(), wp)];
            if !prefetch.is_empty() {
                let prefetch = prefetch.into_iter().map(|p| Node::Object(vec![("query".into(), p), ("limit".into(), Node::Raw("9".into()))])).collect();
                m.push(("prefetch".into(), Node::List(prefetch)));
            }
            if let Some(f) = f {
                m.push(("filter".into(), f));
            }
            Node::Object(m)
        }),
        // search: a vector or a named one
        (vector_input(), any::<bool>(), with_payload.clone()).prop_map(|(v, named, wp)| {
            let v = if named { Node::Object(vec![("name".into(), Node::Text("dense".into())), ("vector".into(), v)]) } else { v };
            Node::Object(vec![("vector".into(), v), ("limit".into(), Node::Raw("4".into())), ("with_payload".into(), wp)])
        }),
        // recommend
        (prop::collection::vec(vector_input(), 0..3), prop::collection::vec(vector_input(), 0..2)).prop_map(|(p, n)| {
            Node::Object(vec![("positive".into(), Node::List(p)), ("negative".into(), Node::List(n)), ("limit".into(), Node::Raw("4".into()))])
        }),
        // discover
        (vector_input(), prop::collection::vec(pair(), 0..3)).prop_map(|(t, c)| {
            Node::Object(vec![("target".into(), t), ("context".into(), Node::List(c)), ("limit".into(), Node::Raw("4".into()))])
        }),
    ]
    .boxed()
}

fn qdrant_body() -> impl Strategy<Value = Node> {
    prop_oneof![
        1 => tree(QDRANT_KEYS),
        // Well-formed shapes, so most cases get past validation.
        2 => qdrant_read_body(),
        2 => qdrant_read_body().prop_map(|r| Node::Object(vec![("searches".into(), Node::List(vec![r.clone(), r]))])),
        1 => (prop::collection::vec((0u64..4, vector_input(), prop::option::of(tree(QDRANT_KEYS))), 0..4)).prop_map(|points| {
            let points = points.into_iter().map(|(id, v, payload)| {
                let mut p = vec![("id".to_string(), Node::Raw(id.to_string())), ("vector".to_string(), v)];
                if let Some(payload) = payload {
                    p.push(("payload".into(), payload));
                }
                Node::Object(p)
            }).collect();
            Node::Object(vec![("points".into(), Node::List(points))])
        }),
        1 => (prop::collection::vec(vector_input(), 0..4)).prop_map(|vectors| {
            let ids = (0..vectors.len()).map(|i| Node::Raw(i.to_string())).collect();
            Node::Object(vec![("batch".into(), Node::Object(vec![("ids".into(), Node::List(ids)), ("vectors".into(), Node::List(vectors))]))])
        }),
    ]
}

const CHROMA_KEYS: &[&str] = &["query_embeddings", "embeddings", "ids", "metadatas", "documents", "where", "include", "n_results", "department", "$and"];

fn chroma_body() -> impl Strategy<Value = Node> {
    prop_oneof![
        tree(CHROMA_KEYS),
        (prop::collection::vec(vector_node(), 0..3), 0u64..5).prop_map(|(vectors, n)| Node::Object(vec![
            ("query_embeddings".into(), Node::List(vectors)),
            ("n_results".into(), Node::Raw(n.to_string())),
        ])),
        (prop::collection::vec(vector_node(), 0..3)).prop_map(|vectors| {
            let ids = (0..vectors.len()).map(|i| Node::Text(format!("id{i}"))).collect();
            let metadatas = (0..vectors.len()).map(|_| Node::Object(vec![("department".into(), Node::Text("finance".into()))])).collect();
            Node::Object(vec![("ids".into(), Node::List(ids)), ("embeddings".into(), Node::List(vectors)), ("metadatas".into(), Node::List(metadatas))])
        }),
    ]
}

const QDRANT_VECTOR_ROUTES: [(&str, &str); 14] = [
    ("POST", "/collections/c/points/query"),
    ("POST", "/collections/c/points/query/batch"),
    ("POST", "/collections/c/points/query/groups"),
    ("POST", "/collections/c/points/search"),
    ("POST", "/collections/c/points/search/batch"),
    ("POST", "/collections/c/points/search/groups"),
    ("POST", "/collections/c/points/recommend"),
    ("POST", "/collections/c/points/recommend/batch"),
    ("POST", "/collections/c/points/recommend/groups"),
    ("POST", "/collections/c/points/discover"),
    ("POST", "/collections/c/points/discover/batch"),
    ("PUT", "/collections/c/points"),
    ("PUT", "/collections/c/points/vectors"),
    ("POST", "/collections/c/points/batch"),
];

const CHROMA_VECTOR_ROUTES: [(&str, &str); 4] = [
    ("POST", "/api/v2/tenants/t/databases/d/collections/5c56c793-69f3-4fbf-87e6-c4bf54c28c26/query"),
    ("POST", "/api/v2/tenants/t/databases/d/collections/5c56c793-69f3-4fbf-87e6-c4bf54c28c26/add"),
    ("POST", "/api/v2/tenants/t/databases/d/collections/5c56c793-69f3-4fbf-87e6-c4bf54c28c26/upsert"),
    ("POST", "/api/v2/tenants/t/databases/d/collections/5c56c793-69f3-4fbf-87e6-c4bf54c28c26/update"),
];

/// A body as the database gets it, parsed again (`None`: no body).
fn sent(call: &vecgate::backends::seam::Call) -> Option<Value> {
    call.body.json().map(|v| serde_json::from_slice(&to_vec(v).unwrap()).unwrap())
}

fn outgoing<T: std::fmt::Debug>(out: Result<vecgate::backends::seam::Outgoing<T>, impl std::fmt::Debug>) -> String {
    use vecgate::backends::seam::Outgoing;
    match out {
        Ok(Outgoing::Local(answer)) => format!("local {} {}", answer.status, String::from_utf8_lossy(&answer.body)),
        Ok(Outgoing::Send { call, then }) => format!("send {:?} {:?} {:?} then {then:?}", call.method, call.path, sent(&call)),
        Err(e) => format!("refused {e:?}"),
    }
}

fn narrowed(out: Result<vecgate::backends::seam::Narrowed, impl std::fmt::Debug>) -> String {
    use vecgate::backends::seam::Narrowed;
    match out {
        Ok(Narrowed::Send { call, instead }) => format!("send {:?} {:?} instead {instead:?}", call.path, sent(&call)),
        Ok(Narrowed::Answer(a)) => format!("answer {} {}", a.status, String::from_utf8_lossy(&a.body)),
        Err(e) => format!("refused {e:?}"),
    }
}

/// Everything the pipeline asks a database about a body, written down, so two parses of one
/// body can be compared.
fn seam_view<D: vecgate::backends::seam::Database<Body = Value>>(db: &D, method: &str, path: &str, body: Value) -> Vec<String>
where
    D::Then: std::fmt::Debug,
{
    use vecgate::backends::seam::{Intent, Located, Narrowing, ReadScope, Route as _, Scope};
    use vecgate::backends::FieldMapping;
    let method = http::Method::from_bytes(method.as_bytes()).unwrap();
    let route = db.classify(&method, path).unwrap();
    let mapping = FieldMapping::new(if db.name() == "qdrant" { "metadata." } else { "" }, ["department"]);
    let located = Located { name: "c".into(), base: "/base".into() };
    let acl = if db.name() == "qdrant" {
        json!({"must": [{"key": "metadata.department", "match": {"value": "finance"}}]})
    } else {
        json!({"department": {"$eq": "finance"}})
    };
    let mut view = vec![format!("terms {}", db.filter_terms(&route, &body))];
    match route.intent() {
        Intent::Read => {
            view.push(format!("ids {:?}", db.id_inputs(&route, &body)));
            view.push(format!("lookups {:?}", db.lookup_collections(&route, &body)));
            for scope in [Scope::Filter(&acl), Scope::Nothing, Scope::Everything] {
                let read = ReadScope { scope, check_hits: true, mapping: &mapping };
                view.push(outgoing(db.rewrite_read(&route, &located, body.clone(), read)));
            }
        }
        _ => {
            let mut stamped = body.clone();
            let stamp = db.stamp(&route, &mut stamped, &[("department".to_string(), json!("finance"))], &mapping);
            view.push(format!("stamp {stamp:?} {:?}", serde_json::from_slice::<Value>(&to_vec(&stamped).unwrap()).unwrap()));
            let described = db.describe_write(&route, &body);
            view.push(format!("write {described:?}"));
            match db.guard_write(&route, body.clone(), &acl) {
                Ok(guarded) => view.push(format!("guarded {:?}", serde_json::from_slice::<Value>(&to_vec(&guarded).unwrap()).unwrap())),
                Err(e) => view.push(format!("guard refused {e:?}")),
            }
            if let Ok(set) = described {
                let n = set.records.len();
                for left_out in [vec![], vec![0], (0..n).collect::<Vec<_>>()] {
                    let left_out: Vec<usize> = left_out.into_iter().filter(|i| *i < n).collect();
                    let narrowing = Narrowing { left_out: &left_out, from_filter: false, query: None };
                    view.push(narrowed(db.narrow_write(&route, &located, &method, body.clone(), &set.records, narrowing)));
                }
            }
        }
    }
    view
}

fn seam_agree<D: vecgate::backends::seam::Database<Body = Value>>(db: &D, method: &str, path: &str, body: &[u8]) -> Result<(), TestCaseError>
where
    D::Then: std::fmt::Debug,
{
    use vecgate::backends::seam::Refusal;
    let route = db.classify(&http::Method::from_bytes(method.as_bytes()).unwrap(), path).unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    // The face's own parse (vectors kept at its places) against the strict parser.
    let kept = db.parse_body(&route, &headers, &bytes::Bytes::copy_from_slice(body));
    match (parse_strict(body, 100), kept) {
        (_, Ok(None)) => prop_assert!(body.is_empty(), "no body read from {:?}", String::from_utf8_lossy(body)),
        (Ok(value), Ok(Some(kept))) => {
            let written: Value = serde_json::from_slice(&to_vec(&kept).unwrap()).unwrap();
            prop_assert_eq!(&written, &value);
            let strict = seam_view(db, method, path, value);
            let fast = seam_view(db, method, path, kept);
            prop_assert_eq!(strict, fast, "{} {}: {}", method, path, String::from_utf8_lossy(body));
        }
        (Err(a), Err(b)) => prop_assert_eq!(Refusal::Malformed(format!("the body is not acceptable JSON: {a}")), b),
        (a, b) => prop_assert!(false, "{}: strict {:?} but keeping {:?}", String::from_utf8_lossy(body), a, b),
    }
    Ok(())
}

fn qdrant_agree(method: &str, path: &str, body: &[u8]) -> Result<(), TestCaseError> {
    seam_agree(&vecgate::backends::qdrant::Qdrant, method, path, body)
}

fn chroma_agree(method: &str, path: &str, body: &[u8]) -> Result<(), TestCaseError> {
    seam_agree(&vecgate::backends::chroma::Chroma, method, path, body)
}
