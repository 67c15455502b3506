//! The per-request steps of the proxy pipeline, one benchmark each, on the Cerbos RAG example
//! (`policies/project.yaml`: alice, a `user` of department FINANCE in region EMEA, may read a
//! `project` record when its department and region are hers). Planning itself is measured by
//! `bench/planning.rs`. What each benchmark covers is described in `bench/README.md`.
//! Run: `cargo bench --bench pipeline`.

// A benchmark's setup either works or the run is meaningless: fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value as Json};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use vecgate::audit::AuditLog;
use vecgate::authn::{mint_dev_token, Authenticated, Authenticator};
use vecgate::backends::chroma::{
    filter as chroma_filter, request as chroma_request, response as chroma_response,
    routes::Operation as ChromaOp, vectors as chroma_vectors,
};
use vecgate::json::{parse_strict, parse_strict_keeping, to_vec};
use vecgate::backends::qdrant::{
    filter as qdrant_filter, request as qdrant_request, routes::Operation as QdrantOp, vectors as qdrant_vectors,
};
use vecgate::backends::FieldMapping;
use vecgate::config::{Algorithm, AuthConfig, KeySource, PrincipalMapping};
use vecgate::metrics::Metrics;
use vecgate::plan::eval::{allows, RecordEnv};
use vecgate::plan::functions::CallContext;
use vecgate::plan::value::MapKey;
use vecgate::plan::{Plan, Value};
use vecgate::policy::planner::PlannerOptions;
use vecgate::policy::store::PolicyStore;
use vecgate::backends::chroma::FlatMetadata;
use vecgate::backends::seam::RecordAttributes;
use vecgate::proxy::Authorizer;
use vecgate::proxy::Gateway;

const SECRET: &str = "vecgate-bench-secret-0123456789abcdef0123456789";
const SECRET_ENV: &str = "VECGATE_BENCH_JWT_SECRET";
/// What the proxy itself uses (`proxy::body::MAX_JSON_DEPTH`).
const MAX_JSON_DEPTH: usize = 100;
/// `limits.max_filter_terms`' default.
const MAX_TERMS: usize = 500;
/// Hits in the post-filtered Chroma query response (and in the stub upstream's answer).
const HITS: usize = 100;
const COLLECTION_ID: &str = "8c5a3f0e-2b1d-4c4e-9f7a-0d6b1e2f3a4b";

fn policies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

fn auth_config() -> AuthConfig {
    std::env::set_var(SECRET_ENV, SECRET);
    AuthConfig {
        issuer: Some("https://idp.example".into()),
        audience: Some(vec!["vecgate".into()]),
        algorithms: vec![Algorithm::HS256],
        key: KeySource::HmacSecretEnv(SECRET_ENV.into()),
        jwks_ca_file: None,
        leeway: Duration::from_secs(30),
        principal: PrincipalMapping {
            id: "sub".into(),
            roles: "roles".into(),
            attr: None,
        },
    }
}

/// alice's token; `nonce` makes it distinct (a new cache key) without changing what it means.
fn alice_token(nonce: u64) -> String {
    let claims = [
        ("roles".to_string(), json!(["user"])),
        ("department".to_string(), json!("FINANCE")),
        ("region".to_string(), json!("EMEA")),
        ("nonce".to_string(), json!(nonce)),
    ];
    mint_dev_token(
        SECRET.as_bytes(),
        "alice",
        &claims,
        Duration::from_secs(3600),
        Some("https://idp.example"),
        Some("vecgate"),
    )
    .unwrap()
}

/// A LangChain `Chroma.similarity_search(query, k=4, filter={"source": ...})` body: one
/// 384-dimension embedding (all-MiniLM-L6-v2), a user filter, the default include.
fn langchain_chroma_query() -> Vec<u8> {
    let embedding: Vec<f64> = (0..384).map(|i| ((i * 37 % 101) as f64 - 50.0) / 97.0).collect();
    serde_json::to_vec(&json!({
        "query_embeddings": [embedding],
        "n_results": 4,
        "where": {"source": "handbook.pdf"},
        "include": ["documents", "metadatas", "distances"],
    }))
    .unwrap()
}

/// LangChain's `QdrantVectorStore` in hybrid mode: a sparse and a dense prefetch fused by RRF,
/// with a user filter on the outer query.
fn langchain_qdrant_hybrid_query() -> Vec<u8> {
    let dense: Vec<f64> = (0..384).map(|i| ((i * 53 % 89) as f64 - 44.0) / 91.0).collect();
    serde_json::to_vec(&json!({
        "prefetch": [
            {
                "query": {"indices": [17, 523, 1902, 4410, 9031, 12007], "values": [0.41, 0.22, 0.9, 0.13, 0.35, 0.6]},
                "using": "langchain-sparse",
                "limit": 20,
            },
            {"query": dense, "using": "", "limit": 20},
        ],
        "query": {"fusion": "rrf"},
        "filter": {"must": [{"key": "metadata.source", "match": {"value": "handbook.pdf"}}]},
        "limit": 4,
        "with_payload": true,
    }))
    .unwrap()
}

/// A Chroma query answer with `n` hits, all of which alice may see (the pushed-down filter
/// already restricted the database; the post-filter is the second line of defence and has to
/// evaluate every hit fully).
fn chroma_query_answer(n: usize) -> Json {
    let ids: Vec<String> = (0..n).map(|i| format!("doc-{i}")).collect();
    let documents: Vec<String> =
        (0..n).map(|i| format!("Paragraph {i} of the finance handbook, about expenses.")).collect();
    let metadatas: Vec<Json> = (0..n)
        .map(|i| {
            json!({
                "department": "FINANCE",
                "region": "EMEA",
                "source": "handbook.pdf",
                "page": i / 3,
                "owner": "bob",
            })
        })
        .collect();
    let distances: Vec<f64> = (0..n).map(|i| 0.2 + i as f64 / 1000.0).collect();
    json!({
        "ids": [ids],
        "documents": [documents],
        "metadatas": [metadatas],
        "distances": [distances],
        "embeddings": null,
        "uris": null,
        "data": null,
        "include": ["documents", "metadatas", "distances"],
    })
}

struct Fixture {
    auth: Arc<Authenticated>,
    store: PolicyStore,
    metrics: Arc<Metrics>,
}

fn fixture() -> Fixture {
    let authenticator = Authenticator::from_config(&auth_config()).unwrap();
    let auth = authenticator.verify_token(&alice_token(0)).unwrap();
    let store = PolicyStore::open(&policies_dir(), PlannerOptions::default()).unwrap();
    Fixture {
        auth,
        store,
        metrics: Arc::new(Metrics::new().unwrap()),
    }
}

fn jwt(c: &mut Criterion) {
    let authenticator = Authenticator::from_config(&auth_config()).unwrap();
    let mut g = c.benchmark_group("jwt");
    // Every routine call gets a token minted in setup (not timed) with a fresh nonce, so
    // its SHA-256 is not in the verified-claims cache: a real miss, i.e. header parse, HMAC,
    // claim checks, principal mapping, and the insertion into the cache.
    let next = AtomicU64::new(1);
    g.bench_function("verify HS256 uncached", |b| {
        b.iter_batched(
            || alice_token(next.fetch_add(1, Ordering::Relaxed)),
            |token| black_box(authenticator.verify_token(&token).unwrap()),
            BatchSize::SmallInput,
        )
    });
    // One token, verified once before: SHA-256 of the token, a moka lookup, an Arc clone of
    // the shared Authenticated.
    let token = alice_token(0);
    authenticator.verify_token(&token).unwrap();
    g.bench_function("verify HS256 cached", |b| {
        b.iter(|| black_box(authenticator.verify_token(black_box(&token)).unwrap()))
    });
    g.finish();
}

fn alice_plan(f: &Fixture) -> Plan {
    let decider = Authorizer::new(f.auth.clone(), f.store.snapshot(), f.metrics.clone());
    // Asynchronous (a PDP may be the source); the embedded set answers at once.
    let plan = tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(decider.plan("project", "read")).unwrap();
    assert!(matches!(plan, Plan::Conditional(_)), "expected a conditional plan, got {plan:?}");
    plan
}

fn translate(c: &mut Criterion) {
    let f = fixture();
    let plan = alice_plan(&f);
    let Plan::Conditional(condition) = &plan else { unreachable!() };
    let chroma_mapping = FieldMapping::chroma_default();
    let qdrant_mapping = FieldMapping::qdrant_default();
    let mut g = c.benchmark_group("translate");
    g.bench_function("plan to chroma where", |b| {
        b.iter(|| black_box(chroma_filter::translate(black_box(condition), &chroma_mapping, MAX_TERMS).unwrap()))
    });
    g.bench_function("plan to qdrant filter", |b| {
        b.iter(|| black_box(qdrant_filter::translate(black_box(condition), &qdrant_mapping, MAX_TERMS).unwrap()))
    });
    g.finish();
}

fn rewrite(c: &mut Criterion) {
    let f = fixture();
    let plan = alice_plan(&f);
    let Plan::Conditional(condition) = &plan else { unreachable!() };
    let chroma_acl = chroma_filter::translate(condition, &FieldMapping::chroma_default(), MAX_TERMS).unwrap();
    let qdrant_acl = qdrant_filter::translate(condition, &FieldMapping::qdrant_default(), MAX_TERMS).unwrap();
    let chroma_body = langchain_chroma_query();
    let qdrant_body = langchain_qdrant_hybrid_query();

    let mut g = c.benchmark_group("rewrite");
    g.throughput(Throughput::Bytes(chroma_body.len() as u64));
    g.bench_function("chroma query: parse_strict only", |b| {
        b.iter(|| black_box(parse_strict(black_box(&chroma_body), MAX_JSON_DEPTH).unwrap()))
    });
    g.bench_function("chroma query: parse_strict + rewrite + serialise", |b| {
        b.iter(|| {
            let body = parse_strict(black_box(&chroma_body), MAX_JSON_DEPTH).unwrap();
            let (out, trim) =
                chroma_request::rewrite_filtered(ChromaOp::Query, body, Some(&chroma_acl), true).unwrap();
            black_box((serde_json::to_vec(&out).unwrap(), trim))
        })
    });
    let chroma_places = chroma_vectors::places(ChromaOp::Query).unwrap();
    g.bench_function("chroma query: keep embeddings raw only", |b| {
        b.iter(|| black_box(parse_strict_keeping(black_box(&chroma_body), MAX_JSON_DEPTH, chroma_places).unwrap()))
    });
    // What the proxy now does for a query: the embeddings stay text, the rest is rewritten.
    g.bench_function("chroma query: keep embeddings raw + rewrite + splice", |b| {
        b.iter(|| {
            let kept = parse_strict_keeping(black_box(&chroma_body), MAX_JSON_DEPTH, chroma_places).unwrap();
            let (out, _) = chroma_request::rewrite_filtered(ChromaOp::Query, kept, Some(&chroma_acl), true).unwrap();
            black_box(to_vec(&out).unwrap())
        })
    });
    g.throughput(Throughput::Bytes(qdrant_body.len() as u64));
    g.bench_function("qdrant hybrid query: parse_strict only", |b| {
        b.iter(|| black_box(parse_strict(black_box(&qdrant_body), MAX_JSON_DEPTH).unwrap()))
    });
    g.bench_function("qdrant hybrid query: parse_strict + inject + serialise", |b| {
        b.iter(|| {
            let body = parse_strict(black_box(&qdrant_body), MAX_JSON_DEPTH).unwrap();
            let out = qdrant_request::inject_filter(QdrantOp::QueryPoints, body, Some(&qdrant_acl)).unwrap();
            black_box(serde_json::to_vec(&out).unwrap())
        })
    });
    let qdrant_places = qdrant_vectors::places(QdrantOp::QueryPoints).unwrap();
    g.bench_function("qdrant hybrid query: keep vectors raw only", |b| {
        b.iter(|| black_box(parse_strict_keeping(black_box(&qdrant_body), MAX_JSON_DEPTH, qdrant_places).unwrap()))
    });
    // What the proxy now does for a Qdrant query: vectors stay text, the filter goes in.
    g.bench_function("qdrant hybrid query: keep vectors raw + inject + splice", |b| {
        b.iter(|| {
            let body = parse_strict_keeping(black_box(&qdrant_body), MAX_JSON_DEPTH, qdrant_places).unwrap();
            let out = qdrant_request::inject_filter(QdrantOp::QueryPoints, body, Some(&qdrant_acl)).unwrap();
            black_box(to_vec(&out).unwrap())
        })
    });
    g.finish();
}

fn post_filter(c: &mut Criterion) {
    let f = fixture();
    let plan = alice_plan(&f);
    let decider = Authorizer::new(f.auth.clone(), f.store.snapshot(), f.metrics.clone());
    let answer = chroma_query_answer(HITS);
    let answer_bytes = serde_json::to_vec(&answer).unwrap();
    let keep_all = |decider: &Authorizer, resp: &mut Json| {
        let mut keep = |id: &str, meta: Option<&serde_json::Map<String, Json>>| {
            decider.hit_allowed(&plan, "project", &id, &FlatMetadata { metadata: meta, prefix: "" })
        };
        chroma_response::filter_query_response(resp, &mut keep, chroma_request::Trim { drop_metadatas: false })
            .unwrap()
    };
    // Sanity: every hit stays.
    assert_eq!(keep_all(&decider, &mut answer.clone()), 0);

    let mut g = c.benchmark_group("post_filter");
    g.throughput(Throughput::Elements(HITS as u64));
    // The parsed answer is cloned in setup (not timed); the routine is what the proxy does
    // after parsing: one plan evaluation per hit, then every parallel array retained.
    g.bench_function("chroma query 100 hits: filter_query_response", |b| {
        b.iter_batched(
            || answer.clone(),
            |mut resp| black_box(keep_all(&decider, &mut resp)),
            BatchSize::SmallInput,
        )
    });
    // As the proxy does it: parse the upstream bytes (serde_json, not strict), filter,
    // serialise for the client.
    g.bench_function("chroma query 100 hits: parse + filter + serialise", |b| {
        b.iter(|| {
            let mut resp: Json = serde_json::from_slice(black_box(&answer_bytes)).unwrap();
            keep_all(&decider, &mut resp);
            black_box(serde_json::to_vec(&resp).unwrap())
        })
    });
    g.throughput(Throughput::Elements(1));
    // One hit: metadata → R.attr, RecordEnv, eval of the plan (what `keep` does per hit).
    let meta = answer["metadatas"][0][0].as_object().unwrap().clone();
    g.bench_function("one hit: hit_allowed", |b| {
        b.iter(|| black_box(decider.hit_allowed(&plan, "project", &"doc-0", &FlatMetadata { metadata: Some(black_box(&meta)), prefix: "" })))
    });
    // The way hits were checked before attributes were read on demand: every metadata key
    // converted, copied into an `R.attr` map, a `RecordEnv` built. Kept as the comparison.
    let ctx = CallContext { now: decider.now };
    let whole_record = |meta: &serde_json::Map<String, Json>| {
        let attr = FlatMetadata { metadata: Some(meta), prefix: "" }.all()
            .into_iter()
            .map(|(k, v)| (MapKey::string(&k), v))
            .collect();
        allows(&plan, &RecordEnv::new(Value::string("doc-0"), "project", Value::map(attr), ctx))
    };
    assert!(whole_record(&meta));
    g.bench_function("one hit: whole record converted (before)", |b| {
        b.iter(|| black_box(whole_record(black_box(&meta))))
    });
    // Its first part alone: the hit's JSON metadata converted to `R.attr` values.
    g.bench_function("one hit: R.attr conversion only", |b| {
        b.iter(|| black_box(FlatMetadata { metadata: Some(black_box(&meta)), prefix: "" }.all()))
    });
    g.finish();
}

/// A stub Chroma on 127.0.0.1: the collection lookup by id, and a canned 100-hit query answer.
async fn stub_chroma(hits: usize) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let collection = Bytes::from(
        serde_json::to_vec(&json!({
            "id": COLLECTION_ID, "name": "handbook", "metadata": null, "dimension": 384,
            "tenant": "default_tenant", "database": "default_database", "configuration_json": {},
        }))
        .unwrap(),
    );
    let query = Bytes::from(serde_json::to_vec(&chroma_query_answer(hits)).unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (collection, query) = (collection.clone(), query.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let body = if req.uri().path().ends_with("/query") { query.clone() } else { collection.clone() };
                    async move {
                        // Drain the request body so the connection can be reused.
                        let _ = http_body_util::BodyExt::collect(req.into_body()).await;
                        hyper::Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(body))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn whole_request(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var(SECRET_ENV, SECRET);
    let token = alice_token(0);
    let body = Bytes::from(langchain_chroma_query());
    let path = format!(
        "/api/v2/tenants/default_tenant/databases/default_database/collections/{COLLECTION_ID}/query"
    );
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut g = c.benchmark_group("whole_request");
    // LangChain's default k=4, and a large answer where the post-filter dominates.
    for hits in [4, HITS] {
        let upstream = rt.block_on(stub_chroma(hits));
        let yaml = format!(
            "listen: 127.0.0.1:0\n\
             upstream:\n  kind: chroma\n  url: http://{upstream}\n  timeout: 10s\n\
             auth:\n  issuer: https://idp.example\n  audience: vecgate\n  algorithms: [HS256]\n  \
             hs256_secret_env: {SECRET_ENV}\n  leeway: 30s\n  principal:\n    id: sub\n    roles: roles\n\
             policies:\n  dir: {policies}\n  watch: false\n\
             collections:\n  - name: \"*\"\n    resource_kind: project\n\
             audit:\n  path: {audit}\n",
            policies = policies_dir().display(),
            audit = dir.path().join(format!("audit-{hits}.jsonl")).display(),
        );
        let config = vecgate::config::parse(&yaml, dir.path()).unwrap();
        let authn = Authenticator::from_config(&config.auth).unwrap();
        let policies = Arc::new(PolicyStore::open(config.policies.dir().unwrap(), PlannerOptions::default()).unwrap());
        let audit = AuditLog::open(&config.audit).unwrap();
        let metrics = Arc::new(Metrics::new().unwrap());
        let gateway =
            rt.block_on(async { Gateway::new(Arc::new(config), authn, policies, audit, metrics).unwrap() });
        let request = || {
            http::Request::builder()
                .method("POST")
                .uri(path.as_str())
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(Full::new(body.clone()))
                .unwrap()
        };
        // Warm: token, plan and collection name cached, upstream connection pooled.
        let first = rt.block_on(gateway.handle(request()));
        assert_eq!(first.status(), 200, "{:?}", first.headers());

        g.bench_function(format!("chroma query {hits} hits via loopback stub upstream"), |b| {
            b.iter(|| {
                let resp = rt.block_on(gateway.handle(request()));
                assert_eq!(resp.status(), 200);
                black_box(resp)
            })
        });
        // The same round trip without vecgate: hyper client → stub, the body read. The
        // difference to the line above is vecgate's own cost (plus its audit line).
        let direct = format!("http://{upstream}{path}");
        g.bench_function(format!("loopback baseline {hits} hits: same request straight to the stub"), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let req = http::Request::builder()
                        .method("POST")
                        .uri(direct.as_str())
                        .header("content-type", "application/json")
                        .body(Full::new(body.clone()))
                        .unwrap();
                    let resp = client.request(req).await.unwrap();
                    black_box(http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes())
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, jwt, translate, rewrite, post_filter, whole_request);
criterion_main!(benches);
