//! Load harness: the same workload sent to a database three ways — directly, through nginx
//! as a plain reverse proxy, and through vecgate — at fixed request rates and at maximum
//! throughput, plus vecgate's resident memory idle and with 1,000 keep-alive connections.
//! First against the real Chroma server, then (shorter) against the Qdrant test server.
//!
//!     cargo bench --bench load -- [--quick] [--only chroma|qdrant] [--readme] …
//!
//! `bench/run-load.sh` sets everything up on a fresh machine and runs this; bench/README.md
//! ("Load: vecgate vs direct vs nginx") describes the method. Under `cargo test` (no
//! `--bench` argument) it does nothing.

// A benchmark's setup either works or the run is meaningless: fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "load/client.rs"]
mod client;
#[path = "load/memory.rs"]
mod memory;
#[path = "load/nginx.rs"]
mod nginx;
#[path = "load/report.rs"]
mod report;
#[path = "load/stub.rs"]
mod stub;
#[path = "load/workload.rs"]
mod workload;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::runtime::Runtime;

use client::{ClosedResult, OpenResult, Pool, Workload};
use nginx::NginxServer;
use report::{MemoryRow, Section, PATHS};
use support::chroma::DEFAULT_DB_PATH;
use support::vecgate::{token, VecgateOptions, VecgateServer};
use support::{repo_root, ChromaServer, QdrantServer};
use workload::{Backend, Kind};

/// Requests in flight per target before the client makes further ones wait.
const MAX_IN_FLIGHT: usize = 256;
const COLLECTION: &str = "load-docs";

const USAGE: &str = "\
cargo bench --bench load -- [options]
  --quick                 about two minutes: fewer rates, shorter phases
  --only chroma|stub|qdrant  run one section only (stub: LangChain queries against a
                          canned Chroma-shaped upstream, at the light rates)
  --rates A,B,C           Chroma rates in requests/s (default: 20 %, 45 % and 70 % of the
                          direct path's maximum throughput, measured first)
  --qdrant-rates A,B      Qdrant rates (default: 25 % and 60 % of its maximum); the Qdrant is
                          the real server of QDRANT_BIN / QDRANT_URL when set, else the double
  --light-rates A,B,C     rates for the light request (default 200,500,1000)
  --no-light              skip the light request (GET collection) phases
  --records N             Chroma records (default 10000)
  --qdrant-records N      Qdrant points (default 2000)
  --warmup S --measure S  seconds per open-loop phase (default 3 and 20)
  --concurrency N         closed-loop connections for Chroma (default 16)
  --connections N         keep-alive connections held for the memory reading (default 1000)
  --nginx PATH            nginx binary (default $VECGATE_NGINX, else /usr/sbin/nginx)
  --readme                write the results into bench/README.md between the load-results markers";

struct Options {
    quick: bool,
    chroma: bool,
    stub: bool,
    qdrant: bool,
    /// Fixed rates; `None`: fractions of the direct path's maximum.
    rates: Option<Vec<f64>>,
    qdrant_rates: Option<Vec<f64>>,
    fractions: Vec<f64>,
    qdrant_fractions: Vec<f64>,
    light: bool,
    light_rates: Vec<f64>,
    light_measure: Duration,
    records: usize,
    qdrant_records: usize,
    warmup: Duration,
    measure: Duration,
    drain: Duration,
    closed_warmup: Duration,
    closed_window: Duration,
    concurrency: usize,
    qdrant_concurrency: usize,
    qdrant_measure: Duration,
    connections: usize,
    nginx: Option<PathBuf>,
    readme: bool,
}

fn parse_list(v: &str) -> Vec<f64> {
    v.split(',')
        .map(|x| x.trim().parse::<f64>().unwrap_or_else(|_| panic!("not a number: {x:?}\n{USAGE}")))
        .collect()
}

fn parse_options() -> Option<Options> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this without it.
    if !args.iter().any(|a| a == "--bench") {
        println!("load: skipped (a load run takes minutes; use `cargo bench --bench load`)");
        return None;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let mut o = Options {
        quick,
        chroma: true,
        stub: true,
        qdrant: true,
        rates: None,
        qdrant_rates: None,
        fractions: if quick { vec![0.3, 0.6] } else { vec![0.2, 0.45, 0.7] },
        qdrant_fractions: if quick { vec![0.4] } else { vec![0.25, 0.6] },
        light: true,
        light_rates: if quick { vec![200.0, 500.0] } else { vec![200.0, 500.0, 1000.0] },
        light_measure: Duration::from_secs(if quick { 4 } else { 10 }),
        records: 10_000,
        qdrant_records: if quick { 1000 } else { 2000 },
        warmup: Duration::from_secs(if quick { 1 } else { 3 }),
        measure: Duration::from_secs(if quick { 6 } else { 20 }),
        drain: Duration::from_secs(5),
        closed_warmup: Duration::from_secs(if quick { 1 } else { 3 }),
        closed_window: Duration::from_secs(if quick { 4 } else { 10 }),
        concurrency: 16,
        qdrant_concurrency: 8,
        qdrant_measure: Duration::from_secs(if quick { 4 } else { 10 }),
        connections: 1000,
        nginx: std::env::var_os("VECGATE_NGINX").filter(|v| !v.is_empty()).map(PathBuf::from),
        readme: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{a} needs a value\n{USAGE}")).clone();
        match a.as_str() {
            "--bench" | "--quick" => {}
            "--only" => {
                let only = value();
                if !["chroma", "stub", "qdrant"].contains(&only.as_str()) {
                    panic!("--only {only}: expected chroma, stub or qdrant\n{USAGE}");
                }
                o.chroma = only == "chroma";
                o.stub = only == "stub";
                o.qdrant = only == "qdrant";
            }
            "--rates" => o.rates = Some(parse_list(&value())),
            "--qdrant-rates" => o.qdrant_rates = Some(parse_list(&value())),
            "--light-rates" => o.light_rates = parse_list(&value()),
            "--no-light" => o.light = false,
            "--records" => o.records = value().parse().expect("--records N"),
            "--qdrant-records" => o.qdrant_records = value().parse().expect("--qdrant-records N"),
            "--warmup" => o.warmup = Duration::from_secs_f64(value().parse().expect("--warmup S")),
            "--measure" => o.measure = Duration::from_secs_f64(value().parse().expect("--measure S")),
            "--concurrency" => o.concurrency = value().parse().expect("--concurrency N"),
            "--connections" => o.connections = value().parse().expect("--connections N"),
            "--nginx" => o.nginx = Some(PathBuf::from(value())),
            "--readme" => o.readme = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                return None;
            }
            other => panic!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Some(o)
}

fn nginx_binary(o: &Options) -> PathBuf {
    if let Some(p) = &o.nginx {
        return p.clone();
    }
    let installed = Path::new("/usr/sbin/nginx");
    if installed.exists() {
        return installed.to_path_buf();
    }
    panic!(
        "no nginx: pass --nginx PATH or set VECGATE_NGINX (scripts/nginx.sh prints a path; \
         bench/run-load.sh does all of this)"
    );
}

fn command_output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).current_dir(repo_root()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Cores, CPU model, commit, date, load average: the header of the results.
fn machine() -> Vec<String> {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string());
    let mut commit = command_output("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    if command_output("git", &["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty()) {
        commit.push_str(" with uncommitted changes");
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    vec![
        format!("{cores} cores ({cpu})"),
        format!("commit {commit}"),
        format!("{}", chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")),
        format!("load average at start {}", load.join(" ")),
    ]
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

struct Timing {
    warmup: Duration,
    measure: Duration,
    drain: Duration,
    closed_warmup: Duration,
    closed_window: Duration,
    concurrency: usize,
}

/// Checks one request of each kind on each path before measuring anything.
fn probe_all(rt: &Runtime, targets: &[SocketAddr; 3], works: &[Arc<Workload>; 3]) {
    for kind in [Kind::Query, Kind::GetIds, Kind::GetWhere, Kind::Upsert, Kind::Collection] {
        for (pi, addr) in targets.iter().enumerate() {
            let work = &works[pi];
            let Some(req) = work.requests.iter().find(|r| r.kind == kind) else {
                continue;
            };
            if let Err(e) = rt.block_on(client::probe(*addr, work.clone(), req)) {
                panic!("setup check failed: {} {} via {}: {e}", kind.label(), req.path, PATHS[pi]);
            }
        }
    }
}

/// Rates as fractions of a measured maximum, whole requests per second, at least 2.
fn rates_from(max_rps: f64, fractions: &[f64]) -> Vec<f64> {
    fractions.iter().map(|f| (max_rps * f).floor().max(2.0)).collect()
}

/// First the closed loop on every path (maximum throughput; it also warms everything up),
/// then every rate on every path, the paths taking turns at each rate so drifting background
/// load hits all three alike. `rates` of `Err(fractions)`: fractions of the direct path's
/// maximum.
#[allow(clippy::too_many_arguments)]
fn measure(
    rt: &Runtime,
    targets: &[SocketAddr; 3],
    works: &[Arc<Workload>; 3],
    rates: Result<Vec<f64>, Vec<f64>>,
    t: &Timing,
    vecgate: &VecgateServer,
    cpu_of: [Option<u32>; 3],
    between: &mut dyn FnMut(),
) -> Measured {
    let pools: Vec<Arc<Pool>> = targets.iter().map(|a| Pool::new(*a, MAX_IN_FLIGHT)).collect();
    println!("
maximum throughput (closed loop, {} connections, warm-up {:?}, window {:?}):", t.concurrency, t.closed_warmup, t.closed_window);
    let mut closed = Vec::new();
    let mut closed_inside = None;
    let mut before_closed = report::Totals::default();
    for (pi, pool) in pools.iter().enumerate() {
        if pi == 2 {
            before_closed = report::Totals::scrape(vecgate);
        }
        let r = rt.block_on(client::closed_loop(
            pool.clone(),
            works[pi].clone(),
            t.concurrency,
            t.closed_warmup,
            t.closed_window,
            50_000,
            cpu_of[pi],
        ));
        report::print_closed(PATHS[pi], &r);
        closed.push(r);
        if pi == 2 {
            // The closed loop's warm-up is counted here too.
            closed_inside = report::Inside::between(&before_closed, &report::Totals::scrape(vecgate));
        }
        pool.close_idle();
        between();
    }
    let rates = rates.unwrap_or_else(|fractions| rates_from(closed[0].throughput, &fractions));
    let mut open: Vec<Vec<OpenResult>> = vec![Vec::new(), Vec::new(), Vec::new()];
    let mut open_inside = Vec::new();
    for (ri, &rate) in rates.iter().enumerate() {
        println!("
{rate:.0} requests/s (warm-up {:?}, measured {:?}):", t.warmup, t.measure);
        let warm_offset = ri * 7919;
        let offset = warm_offset + (rate * t.warmup.as_secs_f64()) as usize;
        for (pi, pool) in pools.iter().enumerate() {
            let work = &works[pi];
            rt.block_on(client::open_loop(pool.clone(), work.clone(), rate, t.warmup, t.drain, warm_offset));
            between();
            let before = report::Totals::scrape(vecgate);
            let r = rt.block_on(client::open_loop(pool.clone(), work.clone(), rate, t.measure, t.drain, offset));
            report::print_open(PATHS[pi], &r);
            if pi == 2 {
                let inside = report::Inside::between(&before, &report::Totals::scrape(vecgate));
                if let Some(i) = inside {
                    println!(
                        "           vecgate's metrics: {:.3} ms own time per request ({:.2} ms from receiving to answering)",
                        i.own_ms(),
                        i.total_ms
                    );
                }
                open_inside.push(inside);
            }
            open[pi].push(r);
            between();
        }
    }
    Measured {
        rates,
        open,
        closed,
        open_inside,
        closed_inside,
    }
}

struct Measured {
    rates: Vec<f64>,
    open: Vec<Vec<OpenResult>>,
    closed: Vec<ClosedResult>,
    open_inside: Vec<Option<report::Inside>>,
    closed_inside: Option<report::Inside>,
}

/// The workload per path: reads carry alice's filter on the direct and nginx paths (the
/// application filters by itself), none through vecgate (vecgate adds it).
fn workloads(backend: Backend, collection: &str, records: &[workload::Record], alice: &str, ingest: &str) -> [Arc<Workload>; 3] {
    let filtered = Arc::new(Workload::new(backend, workload::sequence(backend, collection, records, true), alice, ingest));
    let bare = Arc::new(Workload::new(backend, workload::sequence(backend, collection, records, false), alice, ingest));
    [filtered.clone(), filtered, bare]
}

fn rate_note(fixed: bool, fractions: &[f64]) -> String {
    if fixed {
        "Rates fixed on the command line.".to_string()
    } else {
        let percents: Vec<String> = fractions.iter().map(|f| format!("{:.0} %", f * 100.0)).collect();
        format!("Rates: {} of the direct path's maximum throughput below.", percents.join(", "))
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn policies() -> PathBuf {
    repo_root().join("examples/langchain-chroma/policies")
}

fn tokens() -> (String, String) {
    (
        token("alice", &["user"], &json!({"department": "FINANCE", "region": "EMEA"})),
        token("loader", &["ingest"], &json!({})),
    )
}

const COLLECTIONS_YAML: &str =
    "  - name: \"*\"\n    resource_kind: document\n    required_attrs: [department, region]\n";

fn timing(o: &Options, measure: Duration, concurrency: usize) -> Timing {
    Timing {
        warmup: o.warmup,
        measure,
        drain: o.drain,
        closed_warmup: o.closed_warmup,
        closed_window: o.closed_window,
        concurrency,
    }
}

/// Holds `n` connections open to `addr` (each has completed one query) and reads the
/// resident memory of `pid` (with its children when `tree`).
fn memory_with_connections(rt: &Runtime, addr: SocketAddr, pid: u32, tree: bool, n: usize, work: &Arc<Workload>) -> (memory::Rss, usize, usize) {
    let query = work.requests.iter().find(|r| r.kind == Kind::Query).expect("a query").clone();
    let (held, failed) = rt.block_on(client::hold_connections(addr, n, work.clone(), &query));
    std::thread::sleep(Duration::from_millis(500));
    let rss = if tree { memory::rss_tree(pid) } else { memory::rss(pid) };
    drop(held);
    // Let the connection tasks see the close.
    rt.block_on(async { tokio::time::sleep(Duration::from_millis(300)).await });
    (rss, n, failed)
}

fn run_chroma(o: &Options, rt: &Runtime, nginx_bin: &Path) -> Vec<Section> {
    let started = Instant::now();
    println!("\n=== Chroma (real server) ===");
    let chroma = ChromaServer::start();
    let python = support::python();
    let version = command_output(
        python.to_str().expect("python path"),
        &["-c", "import chromadb; print(chromadb.__version__)"],
    )
    .map_or_else(|| "?".to_string(), |v| format!("chromadb {v}"));
    let collection = chroma.create_collection(COLLECTION);
    let records = workload::records(o.records);
    let t_load = Instant::now();
    let add = format!("{DEFAULT_DB_PATH}/collections/{collection}/add");
    for body in workload::chroma_add_bodies(&records, chroma.max_batch_size().min(1000)) {
        if let Err((status, text)) = chroma.post_json(&add, &body) {
            panic!("loading records into Chroma: HTTP {status}: {text}");
        }
    }
    let load_secs = t_load.elapsed().as_secs_f64();
    println!("chroma {version}: {} records loaded in {load_secs:.1} s", records.len());

    let mut options = VecgateOptions::chroma(chroma.url(), &policies());
    options.collections_yaml = COLLECTIONS_YAML.to_string();
    options.extra_yaml = format!("limits:\n  max_connections: {}\n", (o.connections * 2).max(1024));
    options.upstream_timeout = "30s";
    let vecgate = VecgateServer::start(&options);
    std::thread::sleep(Duration::from_millis(500));
    let vecgate_idle = memory::rss(vecgate.pid());
    let nginx = NginxServer::start(nginx_bin, &format!("127.0.0.1:{}", chroma.port()));
    std::thread::sleep(Duration::from_millis(200));
    let nginx_idle = memory::rss_tree(nginx.master_pid());
    let chroma_idle = memory::rss_tree(chroma.pid());
    let workers = nginx.workers().len();

    let (alice, ingest) = tokens();
    let works = workloads(Backend::Chroma, &collection, &records, &alice, &ingest);
    let targets = [addr(chroma.port()), addr(nginx.port()), addr(vecgate.port())];
    probe_all(rt, &targets, &works);
    let m = measure(
        rt,
        &targets,
        &works,
        o.rates.clone().ok_or_else(|| o.fractions.clone()),
        &timing(o, o.measure, o.concurrency),
        &vecgate,
        [Some(chroma.pid()), Some(nginx.master_pid()), Some(vecgate.pid())],
        &mut || {},
    );

    let vecgate_after = memory::rss(vecgate.pid());
    let nginx_after = memory::rss_tree(nginx.master_pid());
    let chroma_after = memory::rss_tree(chroma.pid());
    println!("\nmemory with {} keep-alive connections:", o.connections);
    let vecgate_held = memory_with_connections(rt, targets[2], vecgate.pid(), false, o.connections, &works[2]);
    let nginx_held = memory_with_connections(rt, targets[1], nginx.master_pid(), true, o.connections, &works[1]);
    for (name, idle, after, held) in [
        ("vecgate", vecgate_idle, vecgate_after, vecgate_held),
        ("nginx", nginx_idle, nginx_after, nginx_held),
    ] {
        println!(
            "  {name:<8} idle {:.1} MiB  after load {:.1} MiB (peak {:.1})  with {} connections {:.1} MiB ({} failed)",
            idle.rss_mib(),
            after.rss_mib(),
            after.hwm_mib(),
            held.1,
            held.0.rss_mib(),
            held.2
        );
    }
    let load_end = loadavg();
    let elapsed = started.elapsed().as_secs();
    let mix = Section {
        title: format!("Chroma: the real server ({version})"),
        notes: vec![format!(
            "{} records, {}-d embeddings, loaded directly into Chroma in {load_secs:.0} s before the \
             phases. Mix: 80 % query (n_results 4, include metadatas/documents/distances), 10 % get \
             by 10 ids, 5 % get by filter (limit 10), 5 % upsert of one record. {} Open-loop \
             phases: warm-up {} s, measured {} s per rate and path. nginx: {workers} worker \
             processes. Section took {elapsed} s; load average at its end {load_end}.",
            records.len(),
            workload::DIM,
            rate_note(o.rates.is_some(), &o.fractions),
            o.warmup.as_secs(),
            o.measure.as_secs(),
        )],
        rates: m.rates,
        open: m.open,
        closed: m.closed,
        open_inside: m.open_inside,
        closed_inside: m.closed_inside,
        memory: vec![
            MemoryRow {
                process: "vecgate".to_string(),
                idle: Some(vecgate_idle),
                after_load: Some(vecgate_after),
                held: Some(vecgate_held),
            },
            MemoryRow {
                process: format!("nginx (master + {workers} workers, summed)"),
                idle: Some(nginx_idle),
                after_load: Some(nginx_after),
                held: Some(nginx_held),
            },
            MemoryRow {
                process: "Chroma (for scale)".to_string(),
                idle: Some(chroma_idle),
                after_load: Some(chroma_after),
                held: None,
            },
        ],
        with_targets: true,
    };
    if !o.light {
        return vec![mix];
    }

    println!("\n=== Chroma, light request (GET collection): the proxies set the pace ===");
    let started = Instant::now();
    let light = Arc::new(Workload::new(Backend::Chroma, workload::light_sequence(COLLECTION), &alice, &ingest));
    let works = [light.clone(), light.clone(), light];
    probe_all(rt, &targets, &works);
    let m = measure(
        rt,
        &targets,
        &works,
        Ok(o.light_rates.clone()),
        &timing(o, o.light_measure, o.concurrency),
        &vecgate,
        [Some(chroma.pid()), Some(nginx.master_pid()), Some(vecgate.pid())],
        &mut || {},
    );
    let elapsed = started.elapsed().as_secs();
    let light = Section {
        title: "Chroma, light request: `GET …/collections/load-docs` (proxy-bound)".to_string(),
        notes: vec![format!(
            "Every request opens the collection by name, as LangChain's `Chroma(...)` does at start. \
             Chroma answers it from its catalogue in a fraction of a millisecond, so here the \
             proxies, not the search, set the limits: this is where the issue's rates and vecgate's \
             added latency can be seen. Through vecgate each request is authenticated (cached \
             token) and authorized as `read` on the collection, and the answer is passed through. \
             Same servers as above, same order of phases. Warm-up {} s, measured {} s. Section \
             took {elapsed} s; load average at its end {}.",
            o.warmup.as_secs(),
            o.light_measure.as_secs(),
            loadavg(),
        )],
        rates: m.rates,
        open: m.open,
        closed: m.closed,
        open_inside: m.open_inside,
        closed_inside: m.closed_inside,
        memory: Vec::new(),
        with_targets: true,
    };
    vec![mix, light]
}

/// LangChain's query (n_results 4) against a canned Chroma-shaped upstream: the database costs
/// nothing, so the rows show what each proxy adds to the real request shape at fixed rates.
fn run_stub(o: &Options, rt: &Runtime, nginx_bin: &Path) -> Section {
    println!("\n=== LangChain query against a stub upstream (canned answers): the proxies set the pace ===");
    let started = Instant::now();
    let upstream = stub::start(COLLECTION, 4);
    let mut options = VecgateOptions::chroma(&format!("http://{upstream}"), &policies());
    options.collections_yaml = COLLECTIONS_YAML.to_string();
    options.extra_yaml = format!("limits:\n  max_connections: {}\n", (o.connections * 2).max(1024));
    let vecgate = VecgateServer::start(&options);
    let nginx = NginxServer::start(nginx_bin, &upstream.to_string());
    let (alice, ingest) = tokens();
    let records = workload::records(64);
    let queries_only = |app_filter: bool| {
        let requests = workload::sequence(Backend::Chroma, stub::COLLECTION_ID, &records, app_filter)
            .into_iter()
            .filter(|r| r.kind == Kind::Query)
            .collect();
        Arc::new(Workload::new(Backend::Chroma, requests, &alice, &ingest))
    };
    let filtered = queries_only(true);
    let works = [filtered.clone(), filtered, queries_only(false)];
    let targets = [upstream, addr(nginx.port()), addr(vecgate.port())];
    probe_all(rt, &targets, &works);
    let m = measure(
        rt,
        &targets,
        &works,
        Ok(o.light_rates.clone()),
        &timing(o, o.light_measure, o.concurrency),
        &vecgate,
        // The stub is a thread of this process: its CPU cannot be told apart.
        [None, Some(nginx.master_pid()), Some(vecgate.pid())],
        &mut || {},
    );
    let elapsed = started.elapsed().as_secs();
    Section {
        title: "LangChain query against a stub upstream (proxy-bound)".to_string(),
        notes: vec![format!(
            "The same `query` requests as the Chroma mix (384-d embedding, n_results 4, include \
             metadatas/documents/distances; alice's filter in the body on the direct and nginx \
             paths, added by vecgate on its path), sent to a stub that answers every query at once \
             with 4 FINANCE/EMEA hits (a thread of the harness process, one tokio thread). Through \
             vecgate each request is authenticated, planned, rewritten, forwarded, and its answer \
             parsed, checked hit by hit and re-serialised; nginx only relays. Warm-up {} s, \
             measured {} s. Section took {elapsed} s; load average at its end {}.",
            o.warmup.as_secs(),
            o.light_measure.as_secs(),
            loadavg(),
        )],
        rates: m.rates,
        open: m.open,
        closed: m.closed,
        open_inside: m.open_inside,
        closed_inside: m.closed_inside,
        memory: Vec::new(),
        with_targets: true,
    }
}

fn run_qdrant(o: &Options, rt: &Runtime, nginx_bin: &Path) -> Section {
    let started = Instant::now();
    // The real server when one is configured (QDRANT_BIN / QDRANT_URL; bench/run-load.sh finds
    // one with scripts/qdrant.sh), else the test double.
    let qdrant = QdrantServer::start();
    let real = qdrant.kind().is_real();
    let which = if real {
        format!("real Qdrant {}", qdrant.version())
    } else {
        "Qdrant test double (tests/qdrant_server: Python over Qdrant Edge; not a real server)".to_string()
    };
    println!("\n=== {which} ===");
    qdrant.create_collection(COLLECTION, workload::DIM);
    let records = workload::records(o.qdrant_records);
    let t_load = Instant::now();
    for chunk in records.chunks(250) {
        let points: Vec<_> = chunk
            .iter()
            .map(|r| {
                let p = workload::qdrant_point(r);
                (p["id"].clone(), r.embedding.clone(), p["payload"].clone())
            })
            .collect();
        qdrant.upsert(COLLECTION, &points);
    }
    let load_secs = t_load.elapsed().as_secs_f64();
    qdrant.clear_recorded_requests();
    println!("{which}: {} points loaded in {load_secs:.1} s", records.len());

    // Every path goes to the server itself, not through the tests' recording proxy.
    let direct = qdrant.direct_url();
    let direct_addr: SocketAddr = direct
        .trim_start_matches("http://")
        .parse()
        .unwrap_or_else(|e| panic!("the Qdrant under test must be on a loopback ip:port, not {direct}: {e}"));
    let mut options = VecgateOptions::qdrant(&direct, &policies());
    options.collections_yaml = COLLECTIONS_YAML.to_string();
    options.upstream_timeout = "30s";
    let vecgate = VecgateServer::start(&options);
    let nginx = NginxServer::start(nginx_bin, &direct_addr.to_string());
    let (alice, ingest) = tokens();
    let works = workloads(Backend::Qdrant, COLLECTION, &records, &alice, &ingest);
    let targets = [direct_addr, addr(nginx.port()), addr(vecgate.port())];
    probe_all(rt, &targets, &works);
    // The test double keeps every request for its tests: forget them between phases.
    let mut forget = || qdrant.clear_recorded_requests();
    let m = measure(
        rt,
        &targets,
        &works,
        o.qdrant_rates.clone().ok_or_else(|| o.qdrant_fractions.clone()),
        // The double serves one request at a time; a real server takes Chroma's concurrency.
        &timing(o, o.qdrant_measure, if real { o.concurrency } else { o.qdrant_concurrency }),
        &vecgate,
        [None, Some(nginx.master_pid()), Some(vecgate.pid())],
        &mut forget,
    );
    let elapsed = started.elapsed().as_secs();
    let upstream_note = if real {
        format!(
            "{which} ({}), started on loopback with a temporary storage path; one collection, \
             default settings (HNSW, indexing threshold 10,000, so these points stay in plain \
             segments searched exactly).",
            qdrant.kind().describe()
        )
    } else {
        "The test double is one Python process that serves one request at a time (Qdrant Edge \
         under a lock, JSON converted in Python): these rows show vecgate next to a slow \
         upstream, not Qdrant's performance."
            .to_string()
    };
    Section {
        title: if real {
            format!("{which}: LangChain-shaped queries direct, through nginx, through vecgate")
        } else {
            "Qdrant **test double** (tests/qdrant_server) — not real Qdrant".to_string()
        },
        notes: vec![format!(
            "{upstream_note} {} points, {}-d, LangChain's payload layout. Same mix, LangChain \
             QdrantVectorStore shapes: `points/query` (limit 4, with_payload, `filter` on \
             `metadata.*`), scroll on `has_id` + filter, scroll by filter, `PUT points` of one \
             point. {} Warm-up {} s, measured {} s. Section took {elapsed} s; load average at \
             its end {}.",
            records.len(),
            workload::DIM,
            rate_note(o.qdrant_rates.is_some(), &o.qdrant_fractions),
            o.warmup.as_secs(),
            o.qdrant_measure.as_secs(),
            loadavg(),
        )],
        rates: m.rates,
        open: m.open,
        closed: m.closed,
        open_inside: m.open_inside,
        closed_inside: m.closed_inside,
        memory: Vec::new(),
        with_targets: false,
    }
}

fn main() {
    let Some(o) = parse_options() else {
        return;
    };
    let started = Instant::now();
    // 1,000 client connections here plus 1,000 accepted by the proxy (children inherit this).
    let nofile = rlimit::increase_nofile_limit(65_536).unwrap_or(0);
    let mut o = o;
    if nofile < (o.connections as u64) * 2 + 256 {
        let fit = (nofile.saturating_sub(256) / 2) as usize;
        println!("open-file limit {nofile}: holding {fit} connections instead of {}", o.connections);
        o.connections = fit;
    }
    let nginx_bin = nginx_binary(&o);
    let header = machine();
    println!("load harness: {}", header.join(", "));
    println!("nginx: {}", nginx_bin.display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    let mut sections = Vec::new();
    if o.chroma {
        sections.extend(run_chroma(&o, &rt, &nginx_bin));
    }
    if o.stub {
        sections.push(run_stub(&o, &rt, &nginx_bin));
    }
    if o.qdrant {
        sections.push(run_qdrant(&o, &rt, &nginx_bin));
    }

    let nginx_version = Command::new(&nginx_bin)
        .arg("-v")
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stderr).trim().replace("nginx version: ", ""))
        .unwrap_or_default();
    let mut md = format!(
        "Measured on {}; {}; {}; {}. Whole run {} s{}. Client, databases and proxies share these \
         cores, nothing pinned. {nginx_version}, vecgate release build.\n",
        header[0],
        header[1],
        header[2],
        header[3],
        started.elapsed().as_secs(),
        if o.quick { " (--quick)" } else { "" },
    );
    for s in &sections {
        md.push('\n');
        md.push_str(&report::markdown(s));
    }
    println!("\n{md}");
    let out_dir = repo_root().join(".tmp/load");
    let _ = std::fs::create_dir_all(&out_dir);
    let _ = std::fs::write(out_dir.join("results.md"), &md);
    if o.readme {
        let readme = repo_root().join("bench/README.md");
        match report::write_between_markers(&readme, &md) {
            Ok(()) => println!("results written to {}", readme.display()),
            Err(e) => panic!("could not write the results: {e}"),
        }
    }
}
