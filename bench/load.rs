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

// Shared with bench/sweep.rs, which uses parts this harness does not.
#[allow(dead_code)]
#[path = "load/client.rs"]
mod client;
#[path = "load/haproxy.rs"]
mod haproxy;
#[allow(dead_code)]
#[path = "load/memory.rs"]
mod memory;
#[path = "load/nginx.rs"]
mod nginx;
#[path = "load/proxies.rs"]
mod proxies;
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
use proxies::{Baseline, Proxies, Role, Target};
use report::{MemoryRow, PathInfo, Section, Targets};
use support::chroma::DEFAULT_DB_PATH;
use support::vecgate::{token, VecgateOptions};
use support::{repo_root, ChromaServer, QdrantServer};
use workload::{Backend, Kind};

/// Requests in flight per target before the client makes further ones wait.
const MAX_IN_FLIGHT: usize = 256;
const COLLECTION: &str = "load-docs";

const USAGE: &str = "\
cargo bench --bench load -- [options]
  --quick                 about two minutes: fewer rates, shorter phases
  --only chroma|stub|qdrant  run one section only (stub: LangChain queries against a
                          canned upstream, Chroma's and Qdrant's hybrid query, at the light rates)
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
  --haproxy PATH          HAProxy binary (default $VECGATE_HAPROXY; without one there is no
                          HAProxy path, and the run says so)
  --readme                write the results into bench/README.md between the load-results markers

Environment: VECGATE_BASELINE_BIN=[LABEL=]PATH[,…] runs older vecgate builds beside the current
one on every path but real Qdrant's (bench/build-baseline.sh builds one from a commit).";

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
    haproxy: Option<PathBuf>,
    baselines: Vec<Baseline>,
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
        haproxy: std::env::var_os("VECGATE_HAPROXY").filter(|v| !v.is_empty()).map(PathBuf::from),
        baselines: proxies::baselines_from_env(),
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
            "--haproxy" => o.haproxy = Some(PathBuf::from(value())),
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

/// Checks one request of each kind on each path before measuring anything, and that the
/// paths that verify tokens refuse a forged one.
fn probe_all(rt: &Runtime, targets: &[Target<'_>]) {
    for kind in [Kind::Query, Kind::GetIds, Kind::GetWhere, Kind::Upsert, Kind::Collection] {
        for t in targets {
            let Some(req) = t.work.requests.iter().find(|r| r.kind == kind) else {
                continue;
            };
            if let Err(e) = rt.block_on(client::probe(t.addr, t.work.clone(), req)) {
                panic!("setup check failed: {} {} via {}: {e}", kind.label(), req.path, t.label);
            }
        }
    }
    for t in targets.iter().filter(|t| matches!(t.role, Role::Haproxy | Role::Vecgate | Role::Baseline)) {
        let forged = Arc::new(t.work.with_forged_tokens());
        let req = forged.requests[0].clone();
        match rt.block_on(client::probe(t.addr, forged, &req)) {
            Err(e) if e.starts_with("HTTP 401") => {}
            other => panic!("setup check failed: {} accepted a forged token ({other:?})", t.label),
        }
    }
}

/// Rates as fractions of a measured maximum, whole requests per second, at least 2.
fn rates_from(max_rps: f64, fractions: &[f64]) -> Vec<f64> {
    fractions.iter().map(|f| (max_rps * f).floor().max(2.0)).collect()
}

/// First the closed loop on every path (maximum throughput; it also warms everything up),
/// then every rate on every path, the paths taking turns at each rate so drifting background
/// load hits them all alike. `rates` of `Err(fractions)`: fractions of the direct path's
/// maximum.
fn measure(rt: &Runtime, targets: &[Target<'_>], rates: Result<Vec<f64>, Vec<f64>>, t: &Timing, between: &mut dyn FnMut()) -> Measured {
    let pools: Vec<Arc<Pool>> = targets.iter().map(|t| Pool::new(t.addr, MAX_IN_FLIGHT)).collect();
    println!("
maximum throughput (closed loop, {} connections, warm-up {:?}, window {:?}, load average {}):", t.concurrency, t.closed_warmup, t.closed_window, loadavg());
    let mut closed = Vec::new();
    let mut closed_inside = Vec::new();
    for (target, pool) in targets.iter().zip(&pools) {
        let before = target.vecgate.map(report::Totals::scrape);
        let r = rt.block_on(client::closed_loop(
            pool.clone(),
            target.work.clone(),
            t.concurrency,
            t.closed_warmup,
            t.closed_window,
            50_000,
            target.cpu_pid,
        ));
        report::print_closed(&target.label, &r);
        closed.push(r);
        // The closed loop's warm-up is counted here too.
        closed_inside.push(target.vecgate.zip(before).and_then(|(v, before)| report::Inside::between(&before, &report::Totals::scrape(v))));
        pool.close_idle();
        between();
    }
    let rates = rates.unwrap_or_else(|fractions| rates_from(closed[0].throughput, &fractions));
    let mut open: Vec<Vec<OpenResult>> = targets.iter().map(|_| Vec::new()).collect();
    let mut open_inside: Vec<Vec<Option<report::Inside>>> = targets.iter().map(|_| Vec::new()).collect();
    for (ri, &rate) in rates.iter().enumerate() {
        println!("
{rate:.0} requests/s (warm-up {:?}, measured {:?}, load average {}):", t.warmup, t.measure, loadavg());
        let warm_offset = ri * 7919;
        let offset = warm_offset + (rate * t.warmup.as_secs_f64()) as usize;
        for (pi, (target, pool)) in targets.iter().zip(&pools).enumerate() {
            rt.block_on(client::open_loop(pool.clone(), target.work.clone(), rate, t.warmup, t.drain, warm_offset));
            between();
            let before = target.vecgate.map(report::Totals::scrape);
            let r = rt.block_on(client::open_loop(pool.clone(), target.work.clone(), rate, t.measure, t.drain, offset));
            report::print_open(&target.label, &r);
            let inside = target.vecgate.zip(before).and_then(|(v, before)| report::Inside::between(&before, &report::Totals::scrape(v)));
            if let Some(i) = inside {
                println!(
                    "           {}'s metrics: {:.3} ms own time per request ({:.2} ms from receiving to answering)",
                    target.label,
                    i.own_ms(),
                    i.total_ms
                );
            }
            open_inside[pi].push(inside);
            open[pi].push(r);
            between();
        }
    }
    Measured { rates, open, closed, open_inside, closed_inside }
}

struct Measured {
    rates: Vec<f64>,
    open: Vec<Vec<OpenResult>>,
    closed: Vec<ClosedResult>,
    open_inside: Vec<Vec<Option<report::Inside>>>,
    closed_inside: Vec<Option<report::Inside>>,
}

impl Measured {
    fn into_section(self, title: String, notes: Vec<String>, targets: &[Target<'_>], memory: Vec<MemoryRow>, goals: Targets) -> Section {
        Section {
            title,
            notes,
            paths: targets.iter().map(|t| PathInfo { label: t.label.clone(), role: t.role }).collect(),
            rates: self.rates,
            open: self.open,
            closed: self.closed,
            open_inside: self.open_inside,
            closed_inside: self.closed_inside,
            memory,
            targets: goals,
        }
    }
}

/// The workload per path: reads carry alice's filter on the direct and nginx paths (the
/// application filters by itself), none through vecgate (vecgate adds it).
fn workloads(backend: Backend, collection: &str, records: &[workload::Record], alice: &str, ingest: &str) -> (Arc<Workload>, Arc<Workload>) {
    let filtered = Arc::new(Workload::new(backend, workload::sequence(backend, collection, records, true), alice, ingest));
    let bare = Arc::new(Workload::new(backend, workload::sequence(backend, collection, records, false), alice, ingest));
    (filtered, bare)
}

fn rate_note(fixed: bool, fractions: &[f64]) -> String {
    if fixed {
        "Rates fixed on the command line.".to_string()
    } else {
        let percents: Vec<String> = fractions.iter().map(|f| format!("{:.0} %", f * 100.0)).collect();
        format!("Rates: {} of the direct path's maximum throughput below.", percents.join(", "))
    }
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

/// The binaries every section starts.
struct Binaries {
    nginx: PathBuf,
    haproxy: Option<PathBuf>,
}

fn memory_row(process: String, idle: Option<memory::Rss>, after: Option<memory::Rss>, held: Option<(memory::Rss, usize, usize)>) -> MemoryRow {
    MemoryRow { process, idle, after_load: after, held }
}

fn run_chroma(o: &Options, rt: &Runtime, bins: &Binaries) -> Vec<Section> {
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
    let upstream = format!("127.0.0.1:{}", chroma.port());
    let proxies = Proxies::start(&bins.nginx, bins.haproxy.as_deref(), &upstream, &options, &o.baselines);
    std::thread::sleep(Duration::from_millis(500));
    let vecgate_idle = memory::rss(proxies.vecgate.pid());
    let nginx_idle = memory::rss_tree(proxies.nginx.master_pid());
    let haproxy_idle = proxies.haproxy.as_ref().map(|h| memory::rss(h.pid()));
    let chroma_idle = memory::rss_tree(chroma.pid());
    let workers = proxies.nginx.workers().len();

    let (alice, ingest) = tokens();
    let (filtered, bare) = workloads(Backend::Chroma, &collection, &records, &alice, &ingest);
    let targets = proxies.targets(SocketAddr::from(([127, 0, 0, 1], chroma.port())), Some(chroma.pid()), &filtered, &bare);
    probe_all(rt, &targets);
    let m = measure(rt, &targets, o.rates.clone().ok_or_else(|| o.fractions.clone()), &timing(o, o.measure, o.concurrency), &mut || {});

    let vecgate_after = memory::rss(proxies.vecgate.pid());
    let nginx_after = memory::rss_tree(proxies.nginx.master_pid());
    let haproxy_after = proxies.haproxy.as_ref().map(|h| memory::rss(h.pid()));
    let chroma_after = memory::rss_tree(chroma.pid());
    println!("\nmemory with {} keep-alive connections:", o.connections);
    let vecgate_held = memory_with_connections(rt, targets_addr(&targets, Role::Vecgate), proxies.vecgate.pid(), false, o.connections, &bare);
    let nginx_held = memory_with_connections(rt, targets_addr(&targets, Role::Nginx), proxies.nginx.master_pid(), true, o.connections, &filtered);
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
    let mut memory_rows = vec![
        memory_row("vecgate".into(), Some(vecgate_idle), Some(vecgate_after), Some(vecgate_held)),
        memory_row(format!("nginx (master + {workers} workers, summed)"), Some(nginx_idle), Some(nginx_after), Some(nginx_held)),
    ];
    if haproxy_idle.is_some() {
        memory_rows.push(memory_row("HAProxy (2 threads)".into(), haproxy_idle, haproxy_after, None));
    }
    memory_rows.push(memory_row("Chroma (for scale)".into(), Some(chroma_idle), Some(chroma_after), None));
    let mix = m.into_section(
        format!("Chroma: the real server ({version})"),
        vec![format!(
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
        &targets,
        memory_rows,
        Targets::Mix,
    );
    if !o.light {
        return vec![mix];
    }

    println!("\n=== Chroma, light request (GET collection): the proxies set the pace ===");
    let started = Instant::now();
    let light = Arc::new(Workload::new(Backend::Chroma, workload::light_sequence(COLLECTION), &alice, &ingest));
    let targets = proxies.targets(SocketAddr::from(([127, 0, 0, 1], chroma.port())), Some(chroma.pid()), &light, &light);
    probe_all(rt, &targets);
    let m = measure(rt, &targets, Ok(o.light_rates.clone()), &timing(o, o.light_measure, o.concurrency), &mut || {});
    let elapsed = started.elapsed().as_secs();
    let light = m.into_section(
        "Chroma, light request: `GET …/collections/load-docs` (proxy-bound)".to_string(),
        vec![format!(
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
        &targets,
        Vec::new(),
        Targets::Light,
    );
    vec![mix, light]
}

fn targets_addr(targets: &[Target<'_>], role: Role) -> SocketAddr {
    targets.iter().find(|t| t.role == role).map(|t| t.addr).expect("a path of this role")
}

/// LangChain's queries against the stub upstream: the database costs nothing, so the rows
/// show what each proxy adds to the real request shape at fixed rates. Chroma's query
/// (`backend` Chroma) or Qdrant's hybrid query (Qdrant).
fn run_stub(o: &Options, rt: &Runtime, bins: &Binaries, backend: Backend) -> Section {
    let name = match backend {
        Backend::Chroma => "Chroma's query",
        Backend::Qdrant => "Qdrant's hybrid query",
    };
    println!("\n=== LangChain: {name} against a stub upstream (canned answers): the proxies set the pace ===");
    let started = Instant::now();
    let upstream = stub::start(COLLECTION, 4);
    let mut options = match backend {
        Backend::Chroma => VecgateOptions::chroma(&format!("http://{upstream}"), &policies()),
        Backend::Qdrant => VecgateOptions::qdrant(&format!("http://{upstream}"), &policies()),
    };
    options.collections_yaml = COLLECTIONS_YAML.to_string();
    options.extra_yaml = format!("limits:\n  max_connections: {}\n", (o.connections * 2).max(1024));
    let proxies = Proxies::start(&bins.nginx, bins.haproxy.as_deref(), &upstream.to_string(), &options, &o.baselines);
    let (alice, ingest) = tokens();
    let records = workload::records(64);
    let queries = |app_filter: bool| {
        let requests = match backend {
            Backend::Chroma => workload::sequence(Backend::Chroma, stub::COLLECTION_ID, &records, app_filter)
                .into_iter()
                .filter(|r| r.kind == Kind::Query)
                .collect(),
            Backend::Qdrant => workload::hybrid_queries(COLLECTION, app_filter),
        };
        Arc::new(Workload::new(backend, requests, &alice, &ingest))
    };
    let (filtered, bare) = (queries(true), queries(false));
    // The stub is a thread of this process: its CPU cannot be told apart.
    let targets = proxies.targets(upstream, None, &filtered, &bare);
    probe_all(rt, &targets);
    let m = measure(rt, &targets, Ok(o.light_rates.clone()), &timing(o, o.light_measure, o.concurrency), &mut || {});
    let elapsed = started.elapsed().as_secs();
    let (title, shape, goal) = match backend {
        Backend::Chroma => (
            "LangChain's Chroma query against a stub upstream (proxy-bound)",
            "the same `query` requests as the Chroma mix (384-d embedding, n_results 4, include \
             metadatas/documents/distances; alice's filter in the body on the direct, nginx and \
             HAProxy paths, added by vecgate on its paths), sent to a stub that answers every \
             query at once with 4 FINANCE/EMEA hits",
            45.0,
        ),
        Backend::Qdrant => (
            "LangChain's Qdrant hybrid query against a stub upstream (proxy-bound)",
            "LangChain QdrantVectorStore's hybrid query (`points/query`: a sparse and a 384-d \
             dense prefetch fused by RRF, limit 4, with_payload; alice's filter in both \
             prefetches on the direct, nginx and HAProxy paths, added by vecgate to the query \
             and both prefetches on its paths), sent to a stub that answers at once with 4 \
             FINANCE/EMEA points in LangChain's payload layout",
            55.0,
        ),
    };
    m.into_section(
        title.to_string(),
        vec![format!(
            "The stub is a thread of the harness process (one tokio thread); {shape}. Through \
             vecgate each request is authenticated, planned, rewritten, forwarded, and its answer \
             checked hit by hit; HAProxy verifies the JWT and relays; nginx only relays. Warm-up \
             {} s, measured {} s. Section took {elapsed} s; load average at its end {}.",
            o.warmup.as_secs(),
            o.light_measure.as_secs(),
            loadavg(),
        )],
        &targets,
        Vec::new(),
        Targets::Stub { cpu_us: goal },
    )
}

fn run_qdrant(o: &Options, rt: &Runtime, bins: &Binaries) -> Section {
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
    // Real Qdrant is the limit here: no baselines, to keep the section short.
    let proxies = Proxies::start(&bins.nginx, bins.haproxy.as_deref(), &direct_addr.to_string(), &options, &[]);
    let (alice, ingest) = tokens();
    let (filtered, bare) = workloads(Backend::Qdrant, COLLECTION, &records, &alice, &ingest);
    let targets = proxies.targets(direct_addr, None, &filtered, &bare);
    probe_all(rt, &targets);
    // The test double keeps every request for its tests: forget them between phases.
    let mut forget = || qdrant.clear_recorded_requests();
    let m = measure(
        rt,
        &targets,
        o.qdrant_rates.clone().ok_or_else(|| o.qdrant_fractions.clone()),
        // The double serves one request at a time; a real server takes Chroma's concurrency.
        &timing(o, o.qdrant_measure, if real { o.concurrency } else { o.qdrant_concurrency }),
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
    m.into_section(
        if real {
            format!("{which}: LangChain-shaped queries direct, through nginx, HAProxy and vecgate")
        } else {
            "Qdrant **test double** (tests/qdrant_server) — not real Qdrant".to_string()
        },
        vec![format!(
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
        &targets,
        Vec::new(),
        Targets::None,
    )
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
    let bins = Binaries { nginx: nginx_binary(&o), haproxy: o.haproxy.clone() };
    let header = machine();
    println!("load harness: {}", header.join(", "));
    println!("nginx: {}", bins.nginx.display());
    match &bins.haproxy {
        Some(h) => println!("haproxy: {} ({})", h.display(), haproxy::HaproxyServer::version(h)),
        None => println!("haproxy: not used (no --haproxy or VECGATE_HAPROXY; bench/run-load.sh sets it)"),
    }
    for b in &o.baselines {
        println!("baseline: {} = {}", b.label, b.binary.display());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    let mut sections = Vec::new();
    if o.chroma {
        sections.extend(run_chroma(&o, &rt, &bins));
    }
    if o.stub {
        sections.push(run_stub(&o, &rt, &bins, Backend::Chroma));
        sections.push(run_stub(&o, &rt, &bins, Backend::Qdrant));
    }
    if o.qdrant {
        sections.push(run_qdrant(&o, &rt, &bins));
    }

    let nginx_version = Command::new(&bins.nginx)
        .arg("-v")
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stderr).trim().replace("nginx version: ", ""))
        .unwrap_or_default();
    let haproxy_version = bins.haproxy.as_deref().map_or_else(|| "no HAProxy".to_string(), haproxy::HaproxyServer::version);
    let baselines = if o.baselines.is_empty() {
        String::new()
    } else {
        format!(
            " Older vecgate builds beside the current one: {}.",
            o.baselines.iter().map(|b| format!("{} (`{}`)", b.label, b.binary.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()))).collect::<Vec<_>>().join(", ")
        )
    };
    let mut md = format!(
        "Measured on {}; {}; {}; {}. Whole run {} s{}. Client, databases and proxies share these \
         cores, nothing pinned. {nginx_version}, {haproxy_version}, vecgate release build.{baselines}\n",
        header[0],
        header[1],
        header[2],
        header[3],
        started.elapsed().as_secs(),
        if o.quick { " (--quick)" } else { "" },
    );
    md.push('\n');
    md.push_str(&report::summary(&sections));
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
