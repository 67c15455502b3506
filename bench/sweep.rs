//! How vecgate's cost grows with the work: one thing grows while the rest stays fixed, and
//! for each step the CPU vecgate spends per request and the latency it adds over the direct
//! path are measured, against the stub upstream (so the database costs nothing).
//!
//!     cargo bench --bench sweep -- [--quick] [--only hits|terms|policies|connections|upsert]
//!
//! `bench/run-sweep.sh` runs it and draws the curves (`bench/plot_sweep.py`). The method is in
//! bench/README.md ("How cost grows"). Results go to bench/curves/sweep.json. Under
//! `cargo test` it does nothing.

// A benchmark's setup either works or the run is meaningless: fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/mod.rs"]
mod support;

#[allow(dead_code)]
#[path = "load/client.rs"]
mod client;
#[allow(dead_code)]
#[path = "load/memory.rs"]
mod memory;
#[allow(dead_code)]
#[path = "load/report.rs"]
mod report;
#[allow(dead_code)]
#[path = "load/proxies.rs"]
mod proxies;
#[allow(dead_code)]
#[path = "load/haproxy.rs"]
mod haproxy;
#[allow(dead_code)]
#[path = "load/nginx.rs"]
mod nginx;
#[allow(dead_code)]
#[path = "load/stub.rs"]
mod stub;
#[allow(dead_code)]
#[path = "load/workload.rs"]
mod workload;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::runtime::Runtime;

use client::{OpenResult, Pool, Workload};
use proxies::Baseline;
use report::{ms, Inside, Totals};
use support::repo_root;
use support::vecgate::{token, VecgateOptions, VecgateServer};
use workload::{Backend, Check, Kind, Principal, Request};

const COLLECTION: &str = "load-docs";
const COLLECTIONS_YAML: &str =
    "  - name: \"*\"\n    resource_kind: document\n    required_attrs: [department, region]\n";

const USAGE: &str = "\
cargo bench --bench sweep -- [options]
  --quick              shorter phases (3 s measured instead of 6)
  --only DIMENSION     hits, terms, policies, connections or upsert
  --rate R             requests per second of every phase but the upsert's (default 200)
  --out DIR            where sweep.json goes (default bench/curves)

Environment: VECGATE_BASELINE_BIN=[LABEL=]PATH[,…] sweeps older vecgate builds too.";

struct Options {
    only: Option<String>,
    rate: f64,
    upsert_rate: f64,
    warmup: Duration,
    measure: Duration,
    out: PathBuf,
    baselines: Vec<Baseline>,
}

fn parse_options() -> Option<Options> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("sweep: skipped (a sweep takes minutes; use `cargo bench --bench sweep`)");
        return None;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let mut o = Options {
        only: None,
        rate: 200.0,
        upsert_rate: 10.0,
        warmup: Duration::from_secs(if quick { 1 } else { 2 }),
        measure: Duration::from_secs(if quick { 3 } else { 6 }),
        out: repo_root().join("bench/curves"),
        baselines: proxies::baselines_from_env(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{a} needs a value\n{USAGE}")).clone();
        match a.as_str() {
            "--bench" | "--quick" => {}
            "--only" => o.only = Some(value()),
            "--rate" => o.rate = value().parse().expect("--rate R"),
            "--out" => o.out = PathBuf::from(value()),
            "--help" | "-h" => {
                println!("{USAGE}");
                return None;
            }
            other => panic!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Some(o)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// A policy directory: the collection policy, derived roles, and `document` resource
/// policies as `document` (alice reads FINANCE records through a derived role, with
/// `terms` leaf conditions in all) plus `extra` more resource policies of other kinds.
fn policies(dir: &Path, terms: usize, extra: usize) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(repo_root().join("examples/langchain-chroma/policies/collection.yaml"), dir.join("collection.yaml")).unwrap();
    std::fs::write(
        dir.join("derived_roles.yaml"),
        "apiVersion: api.cerbos.dev/v1\nderivedRoles:\n  name: sweep_roles\n  definitions:\n    - name: department_member\n      parentRoles: [\"user\"]\n      condition:\n        match:\n          expr: R.attr.department == P.attr.department\n",
    )
    .unwrap();
    let resource = |kind: &str| {
        // The derived role's condition is one term; the rule's condition the rest.
        let rest: Vec<String> = (1..terms).map(|k| format!("              - expr: R.attr.page > -{k}\n")).collect();
        let condition = if rest.is_empty() {
            String::new()
        } else {
            format!("      condition:\n        match:\n          all:\n            of:\n{}", rest.concat())
        };
        format!(
            "apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  version: default\n  resource: {kind}\n  importDerivedRoles: [sweep_roles]\n  rules:\n    - actions: [\"read\"]\n      effect: EFFECT_ALLOW\n      derivedRoles: [department_member]\n{condition}    - actions: [\"create\", \"update\", \"read\"]\n      effect: EFFECT_ALLOW\n      roles: [\"ingest\"]\n"
        )
    };
    std::fs::write(dir.join("document.yaml"), resource("document")).unwrap();
    for k in 0..extra {
        std::fs::write(dir.join(format!("other-{k:04}.yaml")), resource(&format!("other_kind_{k}"))).unwrap();
    }
}

/// Leaf conditions of a Chroma `where` (keys that are not `$and`/`$or`).
fn where_terms(filter: &Value) -> usize {
    match filter {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| match (k.as_str(), v) {
                ("$and" | "$or", Value::Array(items)) => items.iter().map(where_terms).sum(),
                _ => 1,
            })
            .sum(),
        _ => 0,
    }
}

/// LangChain's query (one 384-d embedding, n_results = `hits`), as sent directly (alice's
/// filter in it) or to vecgate (none).
fn queries(hits: usize, app_filter: bool) -> Vec<Request> {
    let records = workload::records(64);
    let mut requests: Vec<Request> = workload::sequence(Backend::Chroma, stub::COLLECTION_ID, &records, app_filter)
        .into_iter()
        .filter(|r| r.kind == Kind::Query)
        .collect();
    for r in &mut requests {
        let mut body: Value = serde_json::from_slice(&r.body).unwrap();
        body["n_results"] = json!(hits);
        r.body = Bytes::from(serde_json::to_vec(&body).unwrap());
        r.check = Check::Hits(hits);
    }
    requests
}

/// Chroma upserts of `n` records each (384-d embeddings, metadata, a document), as the
/// loader sends them; about 8 KiB a record (the embedding written by serde_json is most of it).
fn upserts(n: usize) -> (Vec<Request>, usize) {
    let records = workload::records(n.max(1) * 4);
    let requests: Vec<Request> = records
        .chunks(n)
        .take(4)
        .map(|chunk| {
            let body = json!({
                "ids": chunk.iter().map(|r| workload::chroma_id(r.index)).collect::<Vec<_>>(),
                "embeddings": chunk.iter().map(|r| &r.embedding).collect::<Vec<_>>(),
                "metadatas": chunk.iter().map(|r| &r.metadata).collect::<Vec<_>>(),
                "documents": chunk.iter().map(|r| &r.document).collect::<Vec<_>>(),
            });
            Request {
                kind: Kind::Upsert,
                method: http::Method::POST,
                path: format!("/api/v2/tenants/default_tenant/databases/default_database/collections/{}/upsert", stub::COLLECTION_ID),
                body: Bytes::from(serde_json::to_vec(&body).unwrap()),
                principal: Principal::Ingest,
                check: Check::Written,
            }
        })
        .collect();
    let bytes = requests[0].body.len();
    (requests, bytes)
}

/// One step of a dimension.
struct Step {
    x: f64,
    /// What `x` is, as measured (terms: counted in the filter vecgate sent).
    note: String,
    hits: usize,
    terms: usize,
    extra_policies: usize,
    connections: usize,
    upsert_records: usize,
}

impl Step {
    fn base(x: f64) -> Step {
        Step { x, note: String::new(), hits: 4, terms: 2, extra_policies: 0, connections: 8, upsert_records: 0 }
    }
}

fn steps(dimension: &str) -> Vec<Step> {
    match dimension {
        "hits" => [4, 100, 1000].map(|h| Step { hits: h, ..Step::base(h as f64) }).into(),
        "terms" => [1, 10, 100].map(|t| Step { terms: t, ..Step::base(t as f64) }).into(),
        "policies" => [1, 100, 1000].map(|p| Step { extra_policies: p - 1, ..Step::base(p as f64) }).into(),
        "connections" => [1, 100, 1000].map(|c| Step { connections: c, ..Step::base(c as f64) }).into(),
        // About 8 KiB, 100 KiB and 1 MiB bodies.
        "upsert" => [1, 12, 127].map(|n| Step { upsert_records: n, ..Step::base(n as f64) }).into(),
        other => panic!("unknown dimension {other}\n{USAGE}"),
    }
}

/// A fixed-rate phase on one path over `connections` connections: its result and, if
/// `cpu_pid`, the CPU seconds that process used during it.
#[allow(clippy::too_many_arguments)]
fn phase(rt: &Runtime, addr: SocketAddr, work: &Arc<Workload>, rate: f64, connections: usize, o: &Options, cpu_pid: Option<u32>, offset: usize) -> (OpenResult, Option<f64>) {
    let pool = rt.block_on(Pool::open(addr, connections, 4096)).unwrap_or_else(|e| panic!("opening {connections} connections: {e}"));
    rt.block_on(client::open_loop(pool.clone(), work.clone(), rate, o.warmup, Duration::from_secs(5), offset));
    let before = cpu_pid.map(memory::cpu_seconds_precise);
    let r = rt.block_on(client::open_loop(pool.clone(), work.clone(), rate, o.measure, Duration::from_secs(5), offset + 1000));
    let cpu = cpu_pid.zip(before).map(|(pid, before)| memory::cpu_seconds_precise(pid) - before);
    drop(pool);
    (r, cpu)
}

fn main() {
    let Some(o) = parse_options() else { return };
    let nofile = rlimit::increase_nofile_limit(65_536).unwrap_or(0);
    assert!(nofile >= 2600, "open-file limit {nofile}: the connections step needs 2,600");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let started = Instant::now();
    let dims = ["hits", "terms", "policies", "connections", "upsert"];
    let alice = token("alice", &["user"], &json!({"department": "FINANCE", "region": "EMEA"}));
    let ingest = token("loader", &["ingest"], &json!({}));
    let mut builds: Vec<(String, Option<PathBuf>)> = vec![("vecgate".to_string(), None)];
    builds.extend(o.baselines.iter().map(|b| (b.label.clone(), Some(b.binary.clone()))));
    let load_start = loadavg();
    println!("sweep: rate {} rps (upsert {} rps), warm-up {:?}, measured {:?}, load average {load_start}", o.rate, o.upsert_rate, o.warmup, o.measure);
    let mut results = serde_json::Map::new();
    for dim in dims.iter().filter(|d| o.only.as_deref().is_none_or(|only| only == **d)) {
        println!("\n=== {dim} ===");
        let mut points = Vec::new();
        for mut step in steps(dim) {
            let dir = tempfile::tempdir().unwrap();
            policies(dir.path(), step.terms, step.extra_policies);
            let upstream = stub::start(COLLECTION, step.hits);
            let (direct_work, bare_work, rate) = if step.upsert_records > 0 {
                let (requests, bytes) = upserts(step.upsert_records);
                step.note = format!("{} records, {:.0} KiB", step.upsert_records, bytes as f64 / 1024.0);
                let w = Arc::new(Workload::new(Backend::Chroma, requests, &alice, &ingest));
                (w.clone(), w, o.upsert_rate)
            } else {
                (
                    Arc::new(Workload::new(Backend::Chroma, queries(step.hits, true), &alice, &ingest)),
                    Arc::new(Workload::new(Backend::Chroma, queries(step.hits, false), &alice, &ingest)),
                    o.rate,
                )
            };
            let (direct, _) = phase(&rt, upstream, &direct_work, rate, step.connections, &o, None, 0);
            for (label, binary) in &builds {
                let mut options = VecgateOptions::chroma(&format!("http://{upstream}"), dir.path());
                options.collections_yaml = COLLECTIONS_YAML.to_string();
                options.extra_yaml = "limits:\n  max_connections: 4096\n".to_string();
                options.binary = binary.clone();
                let vecgate = VecgateServer::start(&options);
                let addr = SocketAddr::from(([127, 0, 0, 1], vecgate.port()));
                let before = Totals::scrape(&vecgate);
                let (r, cpu) = phase(&rt, addr, &bare_work, rate, step.connections, &o, Some(vecgate.pid()), 0);
                let inside = Inside::between(&before, &Totals::scrape(&vecgate));
                if *dim == "terms" {
                    let filter_terms = vecgate.audit_lines().iter().rev().find_map(|l| l.get("filter").filter(|f| !f.is_null()).map(where_terms));
                    step.note = format!("{} terms in the filter sent", filter_terms.unwrap_or(0));
                }
                let completed = r.stats.completed().max(1) as f64;
                let cpu_us = cpu.map(|s| s * 1e6 / completed);
                let (d, v) = (&direct.stats.latency, &r.stats.latency);
                let point = json!({
                    "x": step.x, "build": label, "note": step.note,
                    "rate": rate, "connections": step.connections,
                    "cpu_us": cpu_us,
                    "own_ms": inside.map(|i| i.own_ms()),
                    "p50_ms": ms(v, 0.5), "p99_ms": ms(v, 0.99),
                    "direct_p50_ms": ms(d, 0.5), "direct_p99_ms": ms(d, 0.99),
                    "added_p50_ms": ms(v, 0.5) - ms(d, 0.5), "added_p99_ms": ms(v, 0.99) - ms(d, 0.99),
                    "errors": r.stats.errors() + direct.stats.errors(),
                    "first_error": r.stats.first_error.clone().or(direct.stats.first_error.clone()),
                    "achieved_rps": r.achieved_rps,
                    "load": loadavg(),
                });
                println!(
                    "  {dim}={:<6} {label:<20} CPU {:>8.1} µs/request  p50 {:.2} ms (+{:.2})  p99 {:.2} ms (+{:.2})  errors {}  {}  load {}",
                    step.x,
                    cpu_us.unwrap_or(f64::NAN),
                    ms(v, 0.5),
                    ms(v, 0.5) - ms(d, 0.5),
                    ms(v, 0.99),
                    ms(v, 0.99) - ms(d, 0.99),
                    r.stats.errors() + direct.stats.errors(),
                    step.note,
                    loadavg(),
                );
                if let Some(e) = &r.stats.first_error {
                    println!("      first error: {e}");
                }
                points.push(point);
            }
        }
        results.insert((*dim).to_string(), Value::Array(points));
    }
    let commit = std::process::Command::new("git").args(["rev-parse", "--short", "HEAD"]).current_dir(repo_root()).output().ok().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default();
    let out = json!({
        "machine": format!("{} cores", std::thread::available_parallelism().map_or(0, |n| n.get())),
        "commit": commit,
        "date": chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        "load_start": load_start,
        "load_end": loadavg(),
        "seconds": started.elapsed().as_secs(),
        "rate": o.rate, "upsert_rate": o.upsert_rate,
        "measure_s": o.measure.as_secs(),
        "dimensions": results,
    });
    std::fs::create_dir_all(&o.out).unwrap();
    let path = o.out.join("sweep.json");
    // A partial run (`--only`) keeps the other dimensions of the last full one.
    let merged = match (o.only.is_some(), std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok())) {
        (true, Some(mut old)) => {
            for (k, v) in out["dimensions"].as_object().unwrap() {
                old["dimensions"][k] = v.clone();
            }
            old
        }
        _ => out,
    };
    std::fs::write(&path, serde_json::to_vec_pretty(&merged).unwrap()).unwrap();
    println!("\nwrote {}", path.display());
}
