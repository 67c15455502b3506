//! vecgate's own policy engine against an existing Cerbos PDP as the policy source, in one run
//! on one machine (issue 16, item 5): the same policy files (tests/fixtures/proxy/policies),
//! the same principal, the real `cerbos server` 0.55.0 on loopback (tests/support/cerbos.rs).
//!
//! ```sh
//! VECGATE_CERBOS=… VECGATE_PYTHON=… cargo bench --bench pdp            # 2000 iterations each
//! cargo bench --bench pdp -- --iterations 5000
//! ```
//!
//! Part 1, the policy questions alone (`Authorizer`, in process, one at a time):
//!
//! - **plan**: the read plan, embedded (its plan cache warm) vs the PDP with its plan cache
//!   warm (a moka lookup) vs the PDP with no plan cache (one PlanResources round trip);
//! - **post-filter check**: `read` decided on 10 and on 100 hits of an answer, embedded (an
//!   evaluation per hit) vs the PDP (one CheckResources per 50 hits).
//!
//! Part 2, end to end: `POST …/query` (10 nearest of 200 records, half of them the caller's)
//! through vecgate in front of the real Chroma, sequentially, with (a) the embedded engine,
//! (b) the PDP with plans cached for 10 s, (c) the PDP with no plan cache. The PDP variants pay
//! the plan (a hit or a round trip) and one CheckResources for the answer's hits. The added
//! latency is (b)/(c) minus (a). No test asserts any of it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/mod.rs"]
mod support;

use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::cerbos::{Mode, Pdp};
use support::chroma::DEFAULT_DB_PATH;
use support::vecgate::{token, VecgateOptions, VecgateServer};
use support::{repo_root, ChromaServer};
use vecgate::authn::Authenticated;
use vecgate::metrics::Metrics;
use vecgate::plan::Value;
use vecgate::policy::pdp::{PdpClient, PdpConfig};
use vecgate::policy::planner::{PlannerOptions, Principal};
use vecgate::policy::store::PolicyStore;
use vecgate::proxy::Authorizer;

fn iterations() -> usize {
    let argv: Vec<String> = std::env::args().collect();
    argv.iter()
        .position(|a| a == "--iterations")
        .and_then(|i| argv.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000)
}

/// Latencies in microseconds: p50, p99, mean.
struct Summary {
    p50: f64,
    p99: f64,
    mean: f64,
}

fn summarise(mut samples: Vec<Duration>) -> Summary {
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let at = |q: f64| us(samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)]);
    Summary { p50: at(0.50), p99: at(0.99), mean: samples.iter().map(|d| us(*d)).sum::<f64>() / samples.len() as f64 }
}

fn report(name: &str, s: &Summary) {
    println!("{name:<58} p50 {:>9.1} µs   p99 {:>9.1} µs   mean {:>9.1} µs", s.p50, s.p99, s.mean);
}

fn time<F: FnMut()>(n: usize, mut f: F) -> Summary {
    for _ in 0..n / 10 {
        f();
    }
    let samples = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    summarise(samples)
}

fn policy_files() -> Vec<(String, String)> {
    let dir = repo_root().join("tests/fixtures/proxy/policies");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().to_string(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    files.sort();
    files
}

fn alice() -> Arc<Authenticated> {
    let mut attr = BTreeMap::new();
    attr.insert("department".to_string(), Value::string("finance"));
    Arc::new(Authenticated::new(Principal { id: "alice".into(), roles: vec!["user".into()], attr, ..Principal::default() }, BTreeMap::new(), None))
}

fn hits(n: usize) -> Vec<(String, BTreeMap<String, Value>)> {
    (0..n)
        .map(|i| {
            let mut attr = BTreeMap::new();
            attr.insert("department".to_string(), Value::string(if i % 2 == 0 { "finance" } else { "hr" }));
            attr.insert("level".to_string(), Value::Int(1 + (i % 5) as i64));
            (format!("doc-{i}"), attr)
        })
        .collect()
}

fn client(pdp: &Pdp, ttl: Duration) -> PdpClient {
    PdpClient::new(&PdpConfig {
        url: format!("http://127.0.0.1:{}", pdp.port),
        timeout: Duration::from_secs(5),
        plan_cache_ttl: ttl,
        ca_file: None,
        send_token: false,
    })
    .unwrap()
}

fn part1(pdp: &Pdp, n: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let metrics = Arc::new(Metrics::new().unwrap());
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in policy_files() {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let store = PolicyStore::open(dir.path(), PlannerOptions::default()).unwrap();
    let embedded = Authorizer::new(alice(), store.snapshot(), metrics.clone());
    let cached = Authorizer::new(alice(), vecgate::policy::source::Source::Pdp(Arc::new(client(pdp, Duration::from_secs(600)))), metrics.clone());
    let uncached = Authorizer::new(alice(), vecgate::policy::source::Source::Pdp(Arc::new(client(pdp, Duration::ZERO))), metrics);

    println!("\n-- part 1: policy questions (Authorizer, one at a time, {n} iterations) --");
    let plan = |a: &Authorizer| {
        let plan = rt.block_on(a.plan("document", "read")).unwrap();
        assert!(matches!(plan, vecgate::plan::Plan::Conditional(_)));
    };
    report("plan: embedded (plan cache warm)", &time(n, || plan(&embedded)));
    report("plan: PDP, plan cache hit", &time(n, || plan(&cached)));
    report("plan: PDP, plan cache miss (PlanResources round trip)", &time(n, || plan(&uncached)));
    for count in [10, 100] {
        let records = hits(count);
        let resources: Vec<(&str, &BTreeMap<String, Value>)> = records.iter().map(|(id, a)| (id.as_str(), a)).collect();
        let check = |a: &Authorizer| {
            let answers = rt.block_on(a.may_each("document", "read", &resources)).unwrap();
            assert_eq!(answers.iter().filter(|x| **x).count(), count / 2);
        };
        report(&format!("post-filter check of {count} hits: embedded"), &time(n, || check(&embedded)));
        report(&format!("post-filter check of {count} hits: PDP (CheckResources)"), &time(n, || check(&cached)));
    }
}

fn part2(pdp: &Pdp, n: usize) {
    let chroma = ChromaServer::start();
    let col_id = chroma.create_collection("docs");
    let records: Vec<(String, Json, Vec<f32>)> = (0..200)
        .map(|i| {
            let x = i as f32 / 200.0;
            (format!("r{i}"), json!({"department": if i % 2 == 0 { "finance" } else { "hr" }, "level": 1 + i % 5}), vec![1.0 - x, x])
        })
        .collect();
    chroma.add(&col_id, &records);
    let col = format!("{DEFAULT_DB_PATH}/collections/{col_id}");
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in policy_files() {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let alice = token("alice", &["user"], &json!({"department": "finance"}));
    let query = json!({"query_embeddings": [[1.0, 0.0]], "n_results": 10, "include": ["metadatas", "distances"]});
    let variants: [(&str, Option<&str>); 3] = [
        ("embedded engine", None),
        ("PDP, plans cached 10 s (+ CheckResources of the hits)", Some("10s")),
        ("PDP, no plan cache (PlanResources + CheckResources)", Some("0s")),
    ];
    let n = n.min(1000);
    println!("\n-- part 2: POST …/query (10 of 200 records) through vecgate → Chroma, sequential, {n} requests --");
    let mut baseline = None;
    for (name, ttl) in variants {
        let mut options = VecgateOptions::chroma(chroma.url(), dir.path());
        options.audit_yaml = Some("  path: /dev/null\n".into());
        if let Some(ttl) = ttl {
            options.policies_pdp_yaml = Some(format!("    url: http://127.0.0.1:{}\n    timeout: 5s\n    plan_cache_ttl: {ttl}\n", pdp.port));
        }
        let vecgate = VecgateServer::start(&options);
        let summary = time(n, || {
            let (status, answer) = vecgate.call("POST", &format!("{col}/query"), Some(&alice), Some(&query));
            assert_eq!(status, 200, "{answer}");
            assert_eq!(answer["ids"][0].as_array().map(Vec::len), Some(10), "{answer}");
        });
        report(name, &summary);
        match baseline {
            None => baseline = Some(summary),
            Some(ref base) => println!(
                "{:<58} p50 {:>+9.1} µs   p99 {:>+9.1} µs   mean {:>+9.1} µs",
                "  added by the PDP",
                summary.p50 - base.p50,
                summary.p99 - base.p99,
                summary.mean - base.mean
            ),
        }
    }
}

fn main() {
    // `cargo bench` passes `--bench`; anything else of libtest's is ignored.
    let n = iterations();
    let pdp = Pdp::start(Mode { strict: false, lenient: false }, &json!({}));
    pdp.load(&policy_files());
    println!("vecgate {} vs cerbos {} (same policy files), {} iterations", env!("CARGO_PKG_VERSION"), support::cerbos::VERSION, n);
    part1(&pdp, n);
    part2(&pdp, n);
}
