//! Instructions per proxied request, counted by callgrind: load-independent, so builds can be
//! compared on a busy machine where wall-clock numbers are not.
//!
//!     cargo bench --bench profile -- [--requests N] [--binary LABEL=PATH]… [--keep]
//!
//! For each vecgate build (the one cargo built, and each `--binary`) and each request shape
//! (LangChain's Chroma query with 4 and with 100 hits, Qdrant's hybrid query, a 1,000-hit
//! Chroma answer, a 100-record Chroma upsert), a vecgate runs under `valgrind
//! --tool=callgrind` in front of the stub upstream; after a warm-up the counters are zeroed
//! (`callgrind_control -z`), N requests are sent one at a time on one keep-alive connection,
//! and the counts are dumped (`-d`). The total over N is the whole request as vecgate handles
//! it: both HTTP sides, JSON, policy, audit line. `callgrind_annotate` then gives the
//! functions with the largest inclusive share, for the current build. Callgrind's output files
//! are deleted afterwards unless `--keep`.
//!
//! With `--perf SECONDS`, each build runs natively instead, under a closed loop of 8
//! connections for that long: its user and system CPU time per request (from /proc); with
//! `--record` also a `perf record` of the current build (a separate run: sampling slows it),
//! whose report (by shared object and symbol, kernel included where permitted) is printed.
//!
//! `--audit line|buffered|off` chooses the audit log for `--perf`: one write per line (the
//! default, as every other harness runs it), `flush_interval: 1s`, or none.
//!
//! With `--memory N`, each build runs natively in front of the stub and its resident memory
//! is read idle and with N keep-alive connections open, each of which has completed one
//! LangChain query (what the load harness's memory table does, without the rest of its run).

// A benchmark's setup either works or the run is meaningless: fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/mod.rs"]
mod support;

#[allow(dead_code)]
#[path = "load/client.rs"]
mod client;
#[allow(dead_code)]
#[path = "load/stub.rs"]
mod stub;
#[allow(dead_code)]
#[path = "load/workload.rs"]
mod workload;
#[allow(dead_code)]
#[path = "load/memory.rs"]
mod memory;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};

use client::{Pool, Workload};
use support::repo_root;
use support::vecgate::{token, TEST_SECRET};
use workload::{Backend, Check, Kind, Request};

const COLLECTION: &str = "load-docs";

struct Shape {
    name: &'static str,
    backend: Backend,
    hits: usize,
    requests: fn(usize) -> Vec<Request>,
}

fn chroma_queries(hits: usize) -> Vec<Request> {
    let records = workload::records(64);
    workload::sequence(Backend::Chroma, stub::COLLECTION_ID, &records, false)
        .into_iter()
        .filter(|r| r.kind == Kind::Query)
        .map(|mut r| {
            let mut body: Value = serde_json::from_slice(&r.body).unwrap();
            body["n_results"] = json!(hits);
            r.body = Bytes::from(serde_json::to_vec(&body).unwrap());
            r.check = Check::Hits(hits);
            r
        })
        .collect()
}

fn hybrid_queries(_hits: usize) -> Vec<Request> {
    workload::hybrid_queries(COLLECTION, false)
}

fn upserts(_hits: usize) -> Vec<Request> {
    let records = workload::records(400);
    records
        .chunks(100)
        .map(|chunk| Request {
            kind: Kind::Upsert,
            method: http::Method::POST,
            path: format!("/api/v2/tenants/default_tenant/databases/default_database/collections/{}/upsert", stub::COLLECTION_ID),
            body: Bytes::from(
                serde_json::to_vec(&json!({
                    "ids": chunk.iter().map(|r| workload::chroma_id(r.index)).collect::<Vec<_>>(),
                    "embeddings": chunk.iter().map(|r| &r.embedding).collect::<Vec<_>>(),
                    "metadatas": chunk.iter().map(|r| &r.metadata).collect::<Vec<_>>(),
                    "documents": chunk.iter().map(|r| &r.document).collect::<Vec<_>>(),
                }))
                .unwrap(),
            ),
            principal: workload::Principal::Ingest,
            check: Check::Written,
        })
        .collect()
}

const SHAPES: [Shape; 5] = [
    Shape { name: "chroma query, 4 hits", backend: Backend::Chroma, hits: 4, requests: chroma_queries },
    Shape { name: "chroma query, 100 hits", backend: Backend::Chroma, hits: 100, requests: chroma_queries },
    Shape { name: "qdrant hybrid query, 4 hits", backend: Backend::Qdrant, hits: 4, requests: hybrid_queries },
    Shape { name: "chroma query, 1000 hits", backend: Backend::Chroma, hits: 1000, requests: chroma_queries },
    Shape { name: "chroma upsert, 100 records", backend: Backend::Chroma, hits: 4, requests: upserts },
];

/// vecgate under callgrind, its configuration in a temp dir.
struct Profiled {
    child: Child,
    port: u16,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

fn start(binary: &std::path::Path, backend: Backend, upstream: SocketAddr, out: PathBuf) -> Profiled {
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let admin = support::free_port();
    let kind = match backend {
        Backend::Chroma => "chroma",
        Backend::Qdrant => "qdrant",
    };
    let config = format!(
        "listen: 127.0.0.1:{port}\nadmin_listen: 127.0.0.1:{admin}\n\
         upstream:\n  kind: {kind}\n  url: http://{upstream}\n  timeout: 60s\n\
         auth:\n  issuer: {}\n  audience: {}\n  algorithms: [HS256]\n  hs256_secret_env: VECGATE_TEST_JWT_SECRET\n  leeway: 5s\n  principal:\n    id: sub\n    roles: roles\n\
         policies:\n  dir: {}\n  watch: false\n\
         collections:\n  - name: \"*\"\n    resource_kind: document\n    required_attrs: [department, region]\n\
         audit:\n  path: {}\n",
        support::vecgate::ISSUER,
        support::vecgate::AUDIENCE,
        repo_root().join("examples/langchain-chroma/policies").display(),
        dir.path().join("audit.jsonl").display(),
    );
    let config_path = dir.path().join("vecgate.yaml");
    std::fs::write(&config_path, config).unwrap();
    let child = Command::new("valgrind")
        .args(["--tool=callgrind", "--instr-atstart=no", "--dump-instr=no", "--compress-strings=no"])
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(binary)
        .args(["serve", "--config"])
        .arg(&config_path)
        .env("VECGATE_TEST_JWT_SECRET", TEST_SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
        .spawn()
        .expect("valgrind");
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "vecgate under callgrind did not start: {}", std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(100));
    }
    Profiled { child, port, out, _dir: dir }
}

fn control(args: &[&str], pid: u32) {
    let status = Command::new("callgrind_control").args(args).arg(pid.to_string()).stdout(Stdio::null()).status().expect("callgrind_control");
    assert!(status.success(), "callgrind_control {args:?} failed");
}

/// Runs `requests` one at a time; panics on a wrong answer.
fn send(rt: &tokio::runtime::Runtime, pool: &Arc<Pool>, work: &Arc<Workload>, n: usize) {
    for i in 0..n {
        let req = &work.requests[i % work.requests.len()];
        if let Err(e) = rt.block_on(client::probe_on(pool, work.clone(), req)) {
            panic!("request {i}: {e}");
        }
    }
}

/// user and system CPU seconds of a process so far (clock ticks of 1/100 s).
fn cpu_split(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, r)| r).split_whitespace().collect();
    let field = |n: usize| rest.get(n - 3).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 100.0;
    (field(14), field(15))
}

/// Each build natively under a closed loop: CPU per request split into user and system time,
/// and a `perf` profile of the current build.
#[allow(clippy::too_many_arguments)]
fn native(rt: &tokio::runtime::Runtime, binaries: &[(String, PathBuf)], alice: &str, ingest: &str, only: Option<&str>, seconds: u64, top: usize, record: bool, audit_yaml: Option<&str>) {
    for shape in SHAPES.iter().filter(|s| only.is_none_or(|o| s.name.contains(o))) {
        let upstream = stub::start(COLLECTION, shape.hits);
        let work = Arc::new(Workload::new(shape.backend, (shape.requests)(shape.hits), alice, ingest));
        for (label, binary) in binaries {
            let mut options = match shape.backend {
                Backend::Chroma => support::vecgate::VecgateOptions::chroma(&format!("http://{upstream}"), &repo_root().join("examples/langchain-chroma/policies")),
                Backend::Qdrant => support::vecgate::VecgateOptions::qdrant(&format!("http://{upstream}"), &repo_root().join("examples/langchain-chroma/policies")),
            };
            options.collections_yaml = "  - name: \"*\"\n    resource_kind: document\n    required_attrs: [department, region]\n".to_string();
            options.binary = Some(binary.clone());
            if let Some(yaml) = audit_yaml {
                options.audit_yaml = Some(yaml.to_string());
            }
            let vecgate = support::vecgate::VecgateServer::start(&options);
            let pool = Pool::new(SocketAddr::from(([127, 0, 0, 1], vecgate.port())), 64);
            rt.block_on(client::closed_loop(pool.clone(), work.clone(), 8, Duration::from_secs(1), Duration::from_secs(1), 0, None));
            let record = (record && label == "current").then(|| {
                Command::new("perf")
                    .args(["record", "-F", "2000", "-g", "-o"])
                    .arg(repo_root().join(".tmp/profile/perf.data"))
                    .args(["-p", &vecgate.pid().to_string(), "--", "sleep", &seconds.to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .ok()
            });
            let (u0, s0) = cpu_split(vecgate.pid());
            let r = rt.block_on(client::closed_loop(pool.clone(), work.clone(), 8, Duration::ZERO, Duration::from_secs(seconds), 1000, None));
            let (u1, s1) = cpu_split(vecgate.pid());
            let n = r.stats.completed().max(1) as f64;
            println!(
                "{} — {label}: {:.0} requests/s, CPU per request {:.1} µs (user {:.1}, system {:.1}), errors {}",
                shape.name,
                r.throughput,
                (u1 - u0 + s1 - s0) * 1e6 / n,
                (u1 - u0) * 1e6 / n,
                (s1 - s0) * 1e6 / n,
                r.stats.errors()
            );
            if let Some(Some(mut child)) = record {
                let _ = child.wait();
                let report = Command::new("perf")
                    .args(["report", "--stdio", "--no-children", "--sort", "dso,sym", "-g", "none", "--percent-limit", "0.7", "-i"])
                    .arg(repo_root().join(".tmp/profile/perf.data"))
                    .output();
                if let Ok(out) = report {
                    for line in String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).take(top) {
                        println!("    {line}");
                    }
                }
                let _ = std::fs::remove_file(repo_root().join(".tmp/profile/perf.data"));
            }
        }
    }
}

/// Each build's resident memory idle and with `n` keep-alive connections that have each
/// completed one Chroma query.
fn held_memory(rt: &tokio::runtime::Runtime, binaries: &[(String, PathBuf)], alice: &str, ingest: &str, n: usize) {
    let upstream = stub::start(COLLECTION, 4);
    let work = Arc::new(Workload::new(Backend::Chroma, chroma_queries(4), alice, ingest));
    let query = work.requests[0].clone();
    for (label, binary) in binaries {
        let mut options = support::vecgate::VecgateOptions::chroma(&format!("http://{upstream}"), &repo_root().join("examples/langchain-chroma/policies"));
        options.collections_yaml = "  - name: \"*\"\n    resource_kind: document\n    required_attrs: [department, region]\n".to_string();
        options.extra_yaml = format!("limits:\n  max_connections: {}\n", (2 * n).max(1024));
        options.binary = Some(binary.clone());
        let vecgate = support::vecgate::VecgateServer::start(&options);
        std::thread::sleep(Duration::from_millis(500));
        let idle = memory::rss(vecgate.pid());
        let (held, failed) = rt.block_on(client::hold_connections(SocketAddr::from(([127, 0, 0, 1], vecgate.port())), n, work.clone(), &query));
        std::thread::sleep(Duration::from_millis(500));
        let with = memory::rss(vecgate.pid());
        println!(
            "{label}: idle {:.1} MiB, with {} connections {:.1} MiB (peak {:.1}), {failed} failed; {:.1} KiB per connection",
            idle.rss_mib(),
            held.len(),
            with.rss_mib(),
            with.hwm_mib(),
            (with.rss_kib.saturating_sub(idle.rss_kib)) as f64 / held.len().max(1) as f64
        );
        drop(held);
    }
}

/// Total instructions (`Ir`) of a callgrind output file, and its top inclusive functions.
fn annotate(out: &std::path::Path, top: usize) -> (u64, Vec<(f64, String)>) {
    let text = Command::new("callgrind_annotate").arg("--inclusive=yes").arg("--threshold=100").arg(out).output().expect("callgrind_annotate");
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    let number = |s: &str| s.trim().replace(',', "").split_whitespace().next().and_then(|n| n.parse::<u64>().ok());
    let total = text.lines().find(|l| l.contains("PROGRAM TOTALS")).and_then(number).unwrap_or(0);
    let functions = text
        .lines()
        .skip_while(|l| !l.contains("file:function"))
        .skip(2)
        .filter_map(|l| {
            let (count, rest) = l.trim().split_once(' ')?;
            let ir = count.replace(',', "").parse::<u64>().ok()?;
            Some((100.0 * ir as f64 / total.max(1) as f64, rest.trim().trim_start_matches('(').to_string()))
        })
        .take(top)
        .collect();
    (total, functions)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("profile: skipped (use `cargo bench --bench profile`)");
        return;
    }
    let mut n = 300usize;
    let mut binaries: Vec<(String, PathBuf)> = vec![("current".into(), PathBuf::from(env!("CARGO_BIN_EXE_vecgate")))];
    let mut keep = false;
    let mut only: Option<String> = None;
    let mut top = 25;
    let mut perf_seconds: Option<u64> = None;
    let mut record = false;
    let mut held: Option<usize> = None;
    let mut audit = "line".to_string();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--bench" => {}
            "--requests" => n = it.next().expect("--requests N").parse().expect("a number"),
            "--binary" => {
                let v = it.next().expect("--binary LABEL=PATH");
                let (label, path) = v.split_once('=').expect("--binary LABEL=PATH");
                binaries.push((label.to_string(), PathBuf::from(path)));
            }
            "--only" => only = it.next().cloned(),
            "--top" => top = it.next().expect("--top N").parse().expect("a number"),
            "--keep" => keep = true,
            "--perf" => perf_seconds = Some(it.next().expect("--perf SECONDS").parse().expect("a number")),
            "--record" => record = true,
            "--memory" => held = Some(it.next().expect("--memory N").parse().expect("a number")),
            "--audit" => audit = it.next().expect("--audit line|buffered|off").clone(),
            other => panic!("unknown argument {other}"),
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let alice = token("alice", &["user"], &json!({"department": "FINANCE", "region": "EMEA"}));
    let ingest = token("loader", &["ingest"], &json!({}));
    let out_dir = repo_root().join(".tmp/profile");
    std::fs::create_dir_all(&out_dir).unwrap();
    if let Some(n) = held {
        held_memory(&rt, &binaries, &alice, &ingest, n);
        return;
    }
    if let Some(seconds) = perf_seconds {
        let buffered = out_dir.join("audit.jsonl");
        let audit_yaml = match audit.as_str() {
            "line" => None,
            "buffered" => Some(format!("  path: {}\n  flush_interval: 1s\n", buffered.display())),
            "off" => Some("  path: off\n".to_string()),
            other => panic!("--audit {other}: expected line, buffered or off"),
        };
        native(&rt, &binaries, &alice, &ingest, only.as_deref(), seconds, top, record, audit_yaml.as_deref());
        let _ = std::fs::remove_file(buffered);
        return;
    }
    let mut table = Vec::new();
    for shape in SHAPES.iter().filter(|s| only.as_deref().is_none_or(|o| s.name.contains(o))) {
        let upstream = stub::start(COLLECTION, shape.hits);
        let work = Arc::new(Workload::new(shape.backend, (shape.requests)(shape.hits), &alice, &ingest));
        let mut row = vec![shape.name.to_string()];
        for (label, binary) in &binaries {
            let out = out_dir.join(format!("callgrind.{}.{}", label, shape.name.replace([' ', ','], "_")));
            let mut profiled = start(binary, shape.backend, upstream, out.clone());
            let pool = rt.block_on(Pool::open(SocketAddr::from(([127, 0, 0, 1], profiled.port)), 1, 1)).unwrap();
            send(&rt, &pool, &work, 20);
            control(&["-i", "on"], profiled.child.id());
            send(&rt, &pool, &work, 20);
            control(&["-z"], profiled.child.id());
            send(&rt, &pool, &work, n);
            control(&["-d"], profiled.child.id());
            drop(pool);
            let _ = profiled.child.kill();
            let _ = profiled.child.wait();
            // The dump after `-d` is the base name with a counter.
            let dumped = std::fs::read_dir(&out_dir)
                .unwrap()
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_string_lossy().starts_with(&*profiled.out.to_string_lossy()))
                .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
                .expect("a callgrind dump");
            let (total, functions) = annotate(&dumped, top);
            let per_request = total as f64 / n as f64;
            println!("\n{} — {label}: {:.0} instructions per request ({} requests)", shape.name, per_request, n);
            if label == "current" {
                for (share, f) in &functions {
                    println!("  {share:5.1} %  {f}");
                }
            }
            row.push(format!("{:.0}", per_request / 1000.0));
            if !keep {
                for e in std::fs::read_dir(&out_dir).unwrap().filter_map(|e| e.ok()) {
                    if e.path().to_string_lossy().starts_with(&*out.to_string_lossy()) {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
        }
        table.push(row);
    }
    println!("\nthousand instructions per request (callgrind, {n} requests each, one connection):\n");
    println!("| request | {} |", binaries.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>().join(" | "));
    println!("|---|{}", "---:|".repeat(binaries.len()));
    for row in table {
        println!("| {} |", row.join(" | "));
    }
}
