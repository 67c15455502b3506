//! gRPC through vecgate against gRPC straight to the database, and against REST through
//! vecgate, in one run on one machine (issue 20).
//!
//! ```sh
//! cargo bench --bench grpc                    # the real Qdrant when QDRANT_BIN/QDRANT_URL is set
//! QDRANT_BIN=$(scripts/qdrant.sh) cargo bench --bench grpc -- --seconds 10 --clients 8
//! ```
//!
//! The workload is LangChain-shaped: `QdrantVectorStore.similarity_search(k=4)` with
//! `prefer_grpc=True` is one `Points/Query` with a 384-d `nearest` vector, `limit: 4` and
//! `with_payload: true` on a collection in LangChain's payload layout. The three paths:
//!
//! - **direct gRPC**: client → the database's gRPC port, the request carrying alice's filter
//!   itself (as an application that filters by itself would);
//! - **vecgate gRPC**: client → vecgate's gRPC listener → the database's gRPC port, the request
//!   without a filter (as LangChain sends it): vecgate adds the same filter;
//! - **vecgate REST**: the same query as JSON on `POST …/points/query` through vecgate's HTTP
//!   listener (and the same filter added by vecgate).
//!
//! So the database answers the same filtered search on every path. Each path runs a closed
//! loop of `--clients` concurrent clients (each with its own connection) for `--seconds` after
//! a warm-up; every answer is checked (4 hits, all alice's). Reported per path: requests per
//! second, latency percentiles, vecgate's CPU time per request (user + system, from
//! `/proc/<pid>/stat` over the counting window) and vecgate's own time per request (its
//! `vecgate_request_duration_seconds` minus `vecgate_upstream_duration_seconds`, by protocol).
//! The added latency is vecgate's p50/p99 minus the direct path's. No test asserts any of it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/mod.rs"]
mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::vecgate::{token, VecgateOptions, VecgateServer};
use support::QdrantServer;
use tonic::codec::ProstCodec;
use tonic::transport::{Channel, Endpoint};
use vecgate::backends::qdrant::grpc::proto::qdrant as q;

const DIM: usize = 384;
const DEPARTMENTS: [&str; 4] = ["FINANCE", "HR", "ENG", "SALES"];
const REGIONS: [&str; 3] = ["EMEA", "AMER", "APAC"];
const COLLECTION: &str = "bench";

struct Args {
    points: usize,
    clients: usize,
    seconds: u64,
    warmup: u64,
}

fn args() -> Args {
    let mut a = Args { points: 2000, clients: 8, seconds: 10, warmup: 3 };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < argv.len() {
        let value = || argv.get(i + 1).and_then(|v| v.parse().ok()).expect("a number after the flag");
        match argv[i].as_str() {
            "--points" => a.points = value() as usize,
            "--clients" => a.clients = value() as usize,
            "--seconds" => a.seconds = value(),
            "--warmup" => a.warmup = value(),
            "--bench" => {
                i += 1;
                continue;
            }
            other => panic!("unknown argument {other} (--points N --clients N --seconds S --warmup S)"),
        }
        i += 2;
    }
    a
}

/// xorshift64*: the same vectors and payloads on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit_vector(&mut self) -> Vec<f32> {
        let v: Vec<f32> = (0..DIM).map(|_| (self.next() % 2000) as f32 / 1000.0 - 1.0).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
        v.into_iter().map(|x| x / norm).collect()
    }
}

fn seed(qdrant: &QdrantServer, points: usize, rng: &mut Rng) {
    qdrant.create_collection(COLLECTION, DIM);
    for chunk in (0..points).collect::<Vec<_>>().chunks(250) {
        let batch: Vec<(Value, Vec<f32>, Value)> = chunk
            .iter()
            .map(|i| {
                let meta = json!({"department": DEPARTMENTS[i % 4], "region": REGIONS[i % 3], "source": format!("doc-{i}.pdf"), "page": i % 40});
                (json!(i + 1), rng.unit_vector(), json!({"page_content": format!("passage {i} about quarterly planning and budgets in some detail"), "metadata": meta}))
            })
            .collect();
        qdrant.upsert(COLLECTION, &batch);
    }
}

fn alice_filter() -> q::Filter {
    let keyword = |key: &str, value: &str| q::Condition {
        condition_one_of: Some(q::condition::ConditionOneOf::Field(q::FieldCondition {
            key: key.into(),
            r#match: Some(q::Match { match_value: Some(q::r#match::MatchValue::Keyword(value.into())) }),
            ..Default::default()
        })),
    };
    q::Filter { must: vec![keyword("metadata.department", "FINANCE"), keyword("metadata.region", "EMEA")], ..Default::default() }
}

fn query(vector: &[f32], filtered: bool) -> q::QueryPoints {
    q::QueryPoints {
        collection_name: COLLECTION.into(),
        query: Some(q::Query { variant: Some(q::query::Variant::Nearest(q::VectorInput { variant: Some(q::vector_input::Variant::Dense(q::DenseVector { data: vector.to_vec() })) })) }),
        filter: filtered.then(alice_filter),
        limit: Some(4),
        with_payload: Some(q::WithPayloadSelector { selector_options: Some(q::with_payload_selector::SelectorOptions::Enable(true)) }),
        ..Default::default()
    }
}

/// user + system CPU seconds of a process.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // After the comm field: state is field 3 (index 0 here); utime 14, stime 15.
    (ticks(11) + ticks(12)) / 100.0
}

#[derive(Clone, Copy, PartialEq)]
enum Path {
    DirectGrpc,
    VecgateGrpc,
    VecgateRest,
}

impl Path {
    fn name(self) -> &'static str {
        match self {
            Path::DirectGrpc => "direct gRPC",
            Path::VecgateGrpc => "vecgate gRPC",
            Path::VecgateRest => "vecgate REST",
        }
    }
}

struct Target {
    grpc_url: String,
    rest_url: String,
    token: String,
    vectors: Vec<Vec<f32>>,
}

/// One client's loop until `until`; returns latencies of the requests that finished after
/// `from`, and the number of bad answers.
async fn client(path: Path, target: &Target, offset: usize, from: Instant, until: Instant) -> (Vec<Duration>, usize) {
    let channel: Option<Channel> = match path {
        Path::VecgateRest => None,
        _ => Some(Endpoint::from_shared(target.grpc_url.clone()).unwrap().connect().await.expect("connect")),
    };
    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut latencies = Vec::new();
    let mut bad = 0;
    let mut i = offset;
    while Instant::now() < until {
        let vector = &target.vectors[i % target.vectors.len()];
        i += 1;
        let started = Instant::now();
        let hits: Vec<String> = match path {
            Path::DirectGrpc | Path::VecgateGrpc => {
                let mut request = tonic::Request::new(query(vector, path == Path::DirectGrpc));
                if path == Path::VecgateGrpc {
                    request.metadata_mut().insert("api-key", target.token.parse().unwrap());
                }
                let mut grpc = tonic::client::Grpc::new(channel.clone().unwrap());
                grpc.ready().await.unwrap();
                match grpc.unary(request, http::uri::PathAndQuery::from_static("/qdrant.Points/Query"), ProstCodec::<q::QueryPoints, q::QueryResponse>::default()).await {
                    Ok(r) => r
                        .into_inner()
                        .result
                        .iter()
                        .map(|p| match &p.payload.get("metadata").and_then(|m| m.kind.clone()) {
                            Some(q::value::Kind::StructValue(s)) => format!("{:?}", s.fields.get("department").and_then(|d| d.kind.clone())),
                            _ => "?".into(),
                        })
                        .collect(),
                    Err(_) => Vec::new(),
                }
            }
            Path::VecgateRest => {
                let body = json!({"query": vector, "limit": 4, "with_payload": true}).to_string();
                let request = http::Request::post(format!("{}/collections/{COLLECTION}/points/query", target.rest_url))
                    .header("api-key", &target.token)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .unwrap();
                match http.request(request).await {
                    Ok(r) if r.status() == 200 => {
                        let bytes = r.into_body().collect().await.unwrap().to_bytes();
                        let v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
                        v["result"]["points"]
                            .as_array()
                            .map(|ps| ps.iter().map(|p| format!("{:?}", Some(q::value::Kind::StringValue(p["payload"]["metadata"]["department"].as_str().unwrap_or("?").into())))).collect())
                            .unwrap_or_default()
                    }
                    _ => Vec::new(),
                }
            }
        };
        let elapsed = started.elapsed();
        let finance = format!("{:?}", Some(q::value::Kind::StringValue("FINANCE".into())));
        if hits.len() != 4 || hits.iter().any(|h| *h != finance) {
            bad += 1;
        }
        if started >= from {
            latencies.push(elapsed);
        }
    }
    (latencies, bad)
}

struct Row {
    path: Path,
    rps: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    bad: usize,
    cpu_us: Option<f64>,
    own_us: Option<f64>,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// vecgate's own time (request minus upstream), summed, and its requests, for one protocol.
fn own_time(vecgate: &VecgateServer, protocol: &str) -> (f64, f64, f64) {
    let (_, text) = vecgate.admin_get("/metrics");
    let sum = |prefix: &str, needle: &str| -> f64 {
        text.lines().filter(|l| l.starts_with(prefix) && l.contains(needle)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
    };
    let label = format!("protocol=\"{protocol}\"");
    (
        sum("vecgate_request_duration_seconds_sum", &label),
        sum("vecgate_request_duration_seconds_count", &label),
        sum("vecgate_upstream_duration_seconds_sum", ""),
    )
}

fn run(path: Path, target: &Arc<Target>, vecgate: &VecgateServer, a: &Args, rt: &tokio::runtime::Runtime) -> Row {
    let start = Instant::now();
    let from = start + Duration::from_secs(a.warmup);
    let until = from + Duration::from_secs(a.seconds);
    let protocol = if path == Path::VecgateRest { "http" } else { "grpc" };
    // Read at the start of the counting window, from a thread of the harness.
    let pid = vecgate.pid();
    let sampler = std::thread::spawn(move || {
        std::thread::sleep(from.saturating_duration_since(Instant::now()));
        let begin = cpu_seconds(pid);
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
        cpu_seconds(pid) - begin
    });
    let before = own_time(vecgate, protocol);
    let results = rt.block_on(async {
        let tasks: Vec<_> = (0..a.clients)
            .map(|c| {
                let target = Arc::clone(target);
                tokio::spawn(async move { client(path, &target, c * 97, from, until).await })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let cpu = sampler.join().unwrap();
    let after = own_time(vecgate, protocol);
    let mut latencies: Vec<Duration> = results.iter().flat_map(|(l, _)| l.clone()).collect();
    let bad = results.iter().map(|(_, b)| b).sum();
    latencies.sort();
    let n = latencies.len() as f64;
    let requests = after.1 - before.1;
    let through_vecgate = path != Path::DirectGrpc;
    Row {
        path,
        rps: n / a.seconds as f64,
        p50: percentile(&latencies, 0.5),
        p90: percentile(&latencies, 0.9),
        p99: percentile(&latencies, 0.99),
        bad,
        cpu_us: through_vecgate.then(|| cpu / n * 1e6),
        own_us: (through_vecgate && requests > 0.0).then(|| ((after.0 - before.0) - (after.2 - before.2)) / requests * 1e6),
    }
}

fn main() {
    let a = args();
    let mut rng = Rng(0x6772_7063);
    let qdrant = QdrantServer::start();
    eprintln!("gRPC bench: {} ({} points, {DIM}-d)", qdrant.kind().describe(), a.points);
    seed(&qdrant, a.points, &mut rng);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("document.yaml"),
        "apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: document\n  version: default\n  rules:\n    - actions: [read]\n      effect: EFFECT_ALLOW\n      roles: [user]\n      condition:\n        match:\n          all:\n            of:\n              - expr: R.attr.department == P.attr.department\n              - expr: R.attr.region == P.attr.region\n",
    )
    .unwrap();
    let mut options = VecgateOptions::qdrant(qdrant.url(), dir.path());
    options.collections_yaml = "  - name: \"*\"\n    resource_kind: document\n    required_attrs: [department, region]\n".into();
    options.upstream_grpc_url = Some(qdrant.grpc_url().to_string());
    let vecgate = VecgateServer::start(&options);
    let alice = token("alice", &["user"], &json!({"department": "FINANCE", "region": "EMEA"}));
    let vectors: Vec<Vec<f32>> = (0..64).map(|_| rng.unit_vector()).collect();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut rows = Vec::new();
    for path in [Path::DirectGrpc, Path::VecgateGrpc, Path::VecgateRest] {
        let target = Arc::new(Target {
            grpc_url: if path == Path::DirectGrpc { qdrant.grpc_url().to_string() } else { vecgate.grpc_url().to_string() },
            rest_url: vecgate.url().to_string(),
            token: alice.clone(),
            vectors: vectors.clone(),
        });
        let row = run(path, &target, &vecgate, &a, &rt);
        eprintln!("  {}: {:.0} rps, p50 {:.2} ms, {} bad answers", row.path.name(), row.rps, row.p50, row.bad);
        rows.push(row);
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("\ngRPC bench, {}: {} points ({DIM}-d, LangChain layout), Points/Query limit 4 with payload, {} clients, {} s per path after {} s warm-up; load average {}",
        qdrant.kind().describe(), a.points, a.clients, a.seconds, a.warmup, load.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
    println!("\n| path | rps | p50 ms | p90 ms | p99 ms | bad answers | vecgate CPU per request | vecgate's own time per request |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        let us = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.0} µs"));
        println!("| {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {} |", r.path.name(), r.rps, r.p50, r.p90, r.p99, r.bad, us(r.cpu_us), us(r.own_us));
    }
    let direct = &rows[0];
    println!("\n| through vecgate | added p50 over direct gRPC | added p99 over direct gRPC |");
    println!("|---|---:|---:|");
    for r in &rows[1..] {
        println!("| {} | {:+.2} ms | {:+.2} ms |", r.path.name(), r.p50 - direct.p50, r.p99 - direct.p99);
    }
}
