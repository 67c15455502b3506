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
use vecgate::json::{parse_strict, parse_strict_keeping_raw};
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

    /// Keeping a list's items as text accepts and refuses exactly what the strict parser does,
    /// and what it writes back means what the strict parser read.
    #[test]
    fn keeping_raw_items_changes_nothing_but_the_work(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        v in json_value(),
        key in prop::sample::select(vec!["query_embeddings", "where", "ids"]),
    ) {
        let text = serde_json::to_vec(&v).unwrap();
        let wrapped = serde_json::to_vec(&json!({key: v, "n_results": 3})).unwrap();
        for input in [&bytes, &text, &wrapped] {
            let strict = parse_strict(input, 64);
            let kept = parse_strict_keeping_raw(input, 64, key);
            match (strict, kept) {
                (Ok(value), Ok(kept)) => {
                    let written: Value = serde_json::from_slice(&kept.to_vec().unwrap()).unwrap();
                    prop_assert_eq!(written, value);
                }
                (Err(a), Err(b)) => prop_assert_eq!(std::mem::discriminant(&a), std::mem::discriminant(&b)),
                (a, b) => prop_assert!(false, "strict {:?} but keeping {:?}", a, b.map(|k| k.value)),
            }
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
        damage in prop::option::of((any::<prop::sample::Index>(), prop::sample::select(vec![None, Some(b'"'), Some(b','), Some(b']'), Some(b'['), Some(b'-'), Some(b'e'), Some(b'.'), Some(b'0'), Some(0xff)]))),
    ) {
        let items: Vec<String> = if flat {
            vectors.iter().flatten().cloned().collect()
        } else {
            vectors.iter().map(|v| format!("[{space}{}{space}]", v.join(&format!("{space},{space}")))).collect()
        };
        let list = format!("[{space}{}{space}]", items.join(&format!(",{space}")));
        let mut body = format!("{{{before}{space}\"query_embeddings\"{space}:{space}{list}{after}}}").into_bytes();
        if let Some((at, byte)) = damage {
            let i = at.index(body.len());
            match byte {
                None => { body.remove(i); }
                Some(b) => body[i] = b,
            }
        }
        match (parse_strict(&body, 64), parse_strict_keeping_raw(&body, 64, "query_embeddings")) {
            (Ok(value), Ok(kept)) => {
                let written: Value = serde_json::from_slice(&kept.to_vec().unwrap()).unwrap();
                prop_assert_eq!(written, value);
            }
            (Err(a), Err(b)) => prop_assert_eq!(std::mem::discriminant(&a), std::mem::discriminant(&b)),
            (a, b) => prop_assert!(false, "{}: strict {:?} but keeping {:?}", String::from_utf8_lossy(&body), a, b.map(|k| k.value)),
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
