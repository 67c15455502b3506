//! Soak: many keep-alive connections of mixed reads and writes through the real vecgate
//! release binary to a real Chroma server, for minutes. Every answer is checked (status, and
//! every returned record against the policy engine); vecgate's RSS and open files are sampled;
//! at the end the collection is compared with what each principal gets (the differential
//! check of `tests/differential_chroma.rs`) and with the writes the clients made.
//!
//! Not part of `scripts/test.sh`. Run `./scripts/soak.sh` (sets up the venv and `ulimit -n`),
//! or `cargo bench --bench soak -- --duration 600 --connections 1000 --rate 30`.
//! `--help` lists the flags. Exit status 1 when any PASS/FAIL line says FAIL.

// Setup either works or the run is meaningless: fail loudly, as the tests do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/mod.rs"]
mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value as Json};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::chroma::DEFAULT_DB_PATH;
use support::differential::{
    allows, chroma_read_filter, ids_of, principal, random_claims, random_record, reference_ids, Rng,
    DEPARTMENTS,
};
use support::vecgate::{token_with, VecgateOptions, VecgateServer};
use support::ChromaServer;
use tokio::sync::watch;
use vecgate::policy::load::load_dir;
use vecgate::policy::planner::{Planner, PlannerOptions, Principal};

const DIM: usize = 384;
/// Records a connection keeps alive at once; beyond it an add becomes a delete.
const MAX_OWN: usize = 3;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Fresh principals (besides the load's) in the final differential check.
const EXTRA_DIFF_PRINCIPALS: usize = 16;
/// The collection's `required_attrs` (every write through vecgate carries them).
const REQUIRED_ATTRS: &[&str] = &["department", "region"];

const USAGE: &str = "\
cargo bench --bench soak -- [flags]
  --duration SECS        load time (default 600)
  --connections N        concurrent keep-alive connections (default 1000)
  --rate RPS             aggregate request rate, paced by think time (default 30; 0 = no pause)
  --principals N         distinct principals (default 24)
  --records N            records seeded into Chroma (default 1000)
  --reconnect-every N    a connection reopens after ~N requests on average (default 50; 0 = never)
  --sample SECS          sampling interval (default 10)
  --rss-limit-mib MIB    allowed RSS growth after warm-up (default 8)
  --seed N               generator seed (default fixed)";

struct Args {
    duration: Duration,
    connections: usize,
    rate: f64,
    principals: usize,
    records: usize,
    reconnect_every: u64,
    sample: Duration,
    rss_limit_mib: f64,
    seed: u64,
}

fn parse_args() -> Option<Args> {
    let mut a = Args {
        duration: Duration::from_secs(600),
        connections: 1000,
        rate: 30.0,
        principals: 24,
        records: 1000,
        reconnect_every: 50,
        sample: Duration::from_secs(10),
        rss_limit_mib: 8.0,
        seed: 0x50a6_2026,
    };
    let mut bench = false;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--bench" {
            bench = true;
            continue;
        }
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value\n{USAGE}"));
        let num = |v: &str| -> f64 { v.parse().unwrap_or_else(|_| panic!("{flag}: not a number: {v}")) };
        match flag.as_str() {
            "--duration" => a.duration = Duration::from_secs_f64(num(&value)),
            "--connections" => a.connections = num(&value) as usize,
            "--rate" => a.rate = num(&value),
            "--principals" => a.principals = num(&value).max(1.0) as usize,
            "--records" => a.records = num(&value) as usize,
            "--reconnect-every" => a.reconnect_every = num(&value) as u64,
            "--sample" => a.sample = Duration::from_secs_f64(num(&value).max(1.0)),
            "--rss-limit-mib" => a.rss_limit_mib = num(&value),
            "--seed" => a.seed = num(&value) as u64,
            _ => panic!("unknown flag {flag}\n{USAGE}"),
        }
    }
    // `cargo test --all-targets` runs bench binaries without `--bench`: not the place for this.
    bench.then_some(a)
}

// ---- policies ---------------------------------------------------------------------------

/// Users read their department's records and their own, except APAC records outside eng;
/// managers also read level ≥ 3 records of their region. Users create records of their own
/// department and region (owner stamped), update their own records of their department and
/// delete their own records.
const DOCUMENT_POLICY: &str = r#"apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: document
  version: default
  rules:
    - actions: [read]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: R.attr.department == P.attr.department || R.attr.owner == P.id
    - actions: [read]
      effect: EFFECT_ALLOW
      roles: [manager]
      condition:
        match:
          expr: R.attr.region == P.attr.region && R.attr.level >= 3
    - actions: [read]
      effect: EFFECT_DENY
      roles: [user]
      condition:
        match:
          expr: R.attr.region == "APAC" && R.attr.department != "eng"
    - actions: [create]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: R.attr.department == P.attr.department && R.attr.region == P.attr.region && R.attr.owner == P.id
    - actions: [update]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: R.attr.owner == P.id && R.attr.department == P.attr.department
    - actions: [delete]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: R.attr.owner == P.id
"#;

const COLLECTION_POLICY: &str = "apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: collection\n  version: default\n  rules:\n    - actions: [read]\n      effect: EFFECT_ALLOW\n      roles: [user, manager]\n";

// ---- load -------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Query,
    GetIds,
    GetWhere,
    Count,
    Add,
    Upsert,
    Update,
    Delete,
    DeniedWrite,
    BadToken,
}

/// (operation, weight in percent). Reads 70 % (bad-token reads included), writes 30 %.
const MIX: [(Op, usize); 10] = [
    (Op::Query, 30),
    (Op::GetIds, 14),
    (Op::GetWhere, 14),
    (Op::Count, 10),
    (Op::BadToken, 2),
    (Op::Add, 9),
    (Op::Upsert, 6),
    (Op::Update, 6),
    (Op::Delete, 6),
    (Op::DeniedWrite, 3),
];

impl Op {
    fn index(self) -> usize {
        MIX.iter().position(|(op, _)| *op == self).expect("op in MIX")
    }
    fn name(self) -> &'static str {
        match self {
            Op::Query => "query k=4",
            Op::GetIds => "get by ids",
            Op::GetWhere => "get with where",
            Op::Count => "count",
            Op::BadToken => "bad token (401)",
            Op::Add => "add",
            Op::Upsert => "upsert",
            Op::Update => "update",
            Op::Delete => "delete own",
            Op::DeniedWrite => "denied write (403)",
        }
    }
}

/// A latency histogram with power-of-two microsecond buckets.
struct Histogram([AtomicU64; 32]);

impl Histogram {
    fn new() -> Histogram {
        Histogram(std::array::from_fn(|_| AtomicU64::new(0)))
    }
    fn record(&self, d: Duration) {
        let us = d.as_micros().max(1) as u64;
        let bucket = (63 - us.leading_zeros() as usize).min(31);
        self.0[bucket].fetch_add(1, Relaxed);
    }
    fn take(&self) -> [u64; 32] {
        std::array::from_fn(|i| self.0[i].swap(0, Relaxed))
    }
}

/// The upper bound (ms) of the bucket holding quantile `q`.
fn quantile_ms(counts: &[u64; 32], q: f64) -> f64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let want = ((total as f64) * q).ceil() as u64;
    let mut seen = 0;
    for (i, c) in counts.iter().enumerate() {
        seen += c;
        if seen >= want {
            return (1u64 << (i + 1)) as f64 / 1000.0;
        }
    }
    f64::INFINITY
}

#[derive(Default)]
struct Stats {
    sent: AtomicU64,
    by_op: [AtomicU64; 10],
    unexpected_by_op: [AtomicU64; 10],
    micros_by_op: [AtomicU64; 10],
    status_2xx: AtomicU64,
    status_401: AtomicU64,
    status_403: AtomicU64,
    status_other: AtomicU64,
    /// Answers with a status other than the planned one, or a body that is not as expected.
    unexpected: AtomicU64,
    /// Connect failures, broken connections, timeouts.
    transport_errors: AtomicU64,
    /// Returned records the principal may not read.
    violations: AtomicU64,
    records_checked: AtomicU64,
    reconnects: AtomicU64,
    /// Answers that carried `Connection: close` (vecgate sends it with every error answer).
    close_answers: AtomicU64,
    /// Connections the server closed between requests without saying so.
    server_closed: AtomicU64,
    examples: Mutex<Vec<String>>,
}

impl Stats {
    fn note(&self, what: String) {
        let mut ex = self.examples.lock().expect("examples lock");
        if ex.len() < 20 {
            ex.push(what);
        }
    }
}

struct Actor {
    sub: String,
    principal: Principal,
    department: String,
    region: String,
    token: String,
}

struct Load {
    addr: String,
    col: String,
    actors: Vec<Actor>,
    bad_tokens: Vec<String>,
    planner: Planner,
    seed_ids: Vec<String>,
    stats: Stats,
    latency: Histogram,
    interval_latency: Histogram,
    /// Mean pause between one connection's requests.
    think: Duration,
    reconnect_every: u64,
}

fn embedding(rng: &mut Rng) -> Vec<f32> {
    (0..DIM).map(|_| rng.below(1000) as f32 / 1000.0 - 0.5).collect()
}

async fn open(addr: &str) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Json>,
) -> Result<(u16, Json, bool), String> {
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.map(|b| b.to_string()).unwrap_or_default())))
        .map_err(|e| format!("request: {e}"))?;
    let exchange = async {
        sender.ready().await.map_err(|e| format!("not ready: {e}"))?;
        let response = sender.send_request(request).await.map_err(|e| format!("send: {e}"))?;
        let status = response.status().as_u16();
        let close = response
            .headers()
            .get("connection")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Json::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok((status, value, close))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no answer within {REQUEST_TIMEOUT:?}"))?
}

/// What one connection keeps: its principal, its live records (oldest first), counters.
struct Conn {
    index: usize,
    actor: usize,
    rng: Rng,
    own: Vec<String>,
    next_id: u64,
}

impl Conn {
    fn pick_op(&mut self) -> Op {
        let mut roll = self.rng.below(100);
        for (op, weight) in MIX {
            if roll < weight {
                return op;
            }
            roll -= weight;
        }
        Op::Query
    }

    fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}c{}-{}", self.index, self.next_id)
    }

    fn writable_metadata(&mut self, actor: &Actor) -> Json {
        let mut m = json!({"department": actor.department, "region": actor.region, "level": 1 + self.rng.below(5)});
        if self.rng.chance(50) {
            m["tags"] = json!([support::differential::TAGS[self.rng.below(3)]]);
        }
        m
    }
}

/// Runs one connection until `stop`; returns the ids of the records it leaves behind.
async fn connection(load: Arc<Load>, mut conn: Conn, mut stop: watch::Receiver<bool>) -> Vec<String> {
    let stats = &load.stats;
    // Spread the first requests over one think period.
    let first = load.think.mul_f64(conn.rng.below(1000) as f64 / 1000.0);
    tokio::select! {
        _ = tokio::time::sleep(first) => {}
        _ = stop.changed() => return conn.own,
    }
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    let mut requests_on_connection = 0u64;
    let mut reconnect_after = u64::MAX;
    loop {
        if *stop.borrow() {
            break;
        }
        if sender.as_ref().is_some_and(|s| s.is_closed()) {
            stats.server_closed.fetch_add(1, Relaxed);
            sender = None;
        }
        if requests_on_connection >= reconnect_after && sender.is_some() {
            sender = None;
            stats.reconnects.fetch_add(1, Relaxed);
        }
        if sender.is_none() {
            match open(&load.addr).await {
                Ok(s) => sender = Some(s),
                Err(e) => {
                    stats.transport_errors.fetch_add(1, Relaxed);
                    stats.note(format!("connection {}: {e}", conn.index));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
            requests_on_connection = 0;
            reconnect_after = match load.reconnect_every {
                0 => u64::MAX,
                n => 1 + conn.rng.below(2 * n as usize) as u64,
            };
        }
        let started = Instant::now();
        let s = sender.as_mut().expect("connected");
        let ok = one_request(&load, &mut conn, s).await;
        requests_on_connection += 1;
        let took = started.elapsed();
        load.latency.record(took);
        load.interval_latency.record(took);
        if !ok {
            // Broken, or closed by the server after this answer: open a fresh one now, so the
            // connection count stays up (a failure is retried and counted before the next request).
            sender = open(&load.addr).await.ok();
            requests_on_connection = 0;
        }
        // Closed loop with think time: uniform in [0.5, 1.5] of the mean, less the request.
        let think = load.think.mul_f64(0.5 + conn.rng.below(1000) as f64 / 1000.0).saturating_sub(took);
        tokio::select! {
            _ = tokio::time::sleep(think) => {}
            _ = stop.changed() => break,
        }
    }
    conn.own
}

/// One request of a randomly chosen kind, checked. False if the connection cannot be reused
/// (the transport failed, or the answer said `Connection: close`).
async fn one_request(load: &Load, conn: &mut Conn, sender: &mut SendRequest<Full<Bytes>>) -> bool {
    let stats = &load.stats;
    let actor = &load.actors[conn.actor];
    let mut op = conn.pick_op();
    if op == Op::Add && conn.own.len() >= MAX_OWN {
        op = Op::Delete;
    }
    if matches!(op, Op::Update | Op::Delete) && conn.own.is_empty() {
        op = Op::Add;
    }
    let col = &load.col;
    let mut token = actor.token.as_str();
    let mut pending_add: Option<String> = None;
    let mut pending_delete: Option<usize> = None;
    let (method, path, body, want) = match op {
        Op::Query | Op::BadToken => {
            let mut body = json!({
                "query_embeddings": [embedding(&mut conn.rng)],
                "n_results": 4,
                "include": ["metadatas", "documents", "distances"],
            });
            if conn.rng.chance(40) {
                body["where"] = json!({"level": {"$gte": 2}});
            }
            if op == Op::BadToken {
                token = &load.bad_tokens[conn.rng.below(load.bad_tokens.len())];
                ("POST", format!("{col}/query"), Some(body), 401)
            } else {
                ("POST", format!("{col}/query"), Some(body), 200)
            }
        }
        Op::GetIds => {
            let mut ids: Vec<String> =
                (0..6).map(|_| load.seed_ids[conn.rng.below(load.seed_ids.len())].clone()).collect();
            ids.extend(conn.own.iter().cloned());
            ids.sort();
            ids.dedup();
            ("POST", format!("{col}/get"), Some(json!({"ids": ids, "include": ["metadatas"]})), 200)
        }
        Op::GetWhere => {
            let level = 1 + conn.rng.below(5);
            let body = json!({"where": {"level": {"$gte": level}}, "limit": 10, "include": ["metadatas", "documents"]});
            ("POST", format!("{col}/get"), Some(body), 200)
        }
        Op::Count => ("GET", format!("{col}/count"), None, 200),
        Op::Add => {
            let id = conn.new_id("");
            let body = json!({
                "ids": [id],
                "embeddings": [embedding(&mut conn.rng)],
                "metadatas": [conn.writable_metadata(actor)],
                "documents": [format!("soak note {id}")],
            });
            pending_add = Some(id);
            ("POST", format!("{col}/add"), Some(body), 200)
        }
        Op::Upsert => {
            let id = if conn.own.is_empty() || (conn.own.len() < MAX_OWN && conn.rng.chance(50)) {
                let id = conn.new_id("");
                pending_add = Some(id.clone());
                id
            } else {
                conn.own[conn.rng.below(conn.own.len())].clone()
            };
            let body = json!({
                "ids": [id],
                "embeddings": [embedding(&mut conn.rng)],
                "metadatas": [conn.writable_metadata(actor)],
                "documents": [format!("soak note {id}, upserted")],
            });
            ("POST", format!("{col}/upsert"), Some(body), 200)
        }
        Op::Update => {
            let id = conn.own[conn.rng.below(conn.own.len())].clone();
            let body = json!({"ids": [id], "metadatas": [{"level": 1 + conn.rng.below(5)}]});
            ("POST", format!("{col}/update"), Some(body), 200)
        }
        Op::Delete => {
            pending_delete = Some(0);
            ("POST", format!("{col}/delete"), Some(json!({"ids": [conn.own[0]]})), 200)
        }
        Op::DeniedWrite => {
            let id = conn.new_id("denied-");
            let mut meta = conn.writable_metadata(actor);
            let other = DEPARTMENTS.iter().find(|d| **d != actor.department).expect("another department");
            meta["department"] = json!(other);
            let body = json!({"ids": [id], "embeddings": [embedding(&mut conn.rng)], "metadatas": [meta]});
            ("POST", format!("{col}/add"), Some(body), 403)
        }
    };
    stats.sent.fetch_add(1, Relaxed);
    stats.by_op[op.index()].fetch_add(1, Relaxed);
    let started = Instant::now();
    let sent = send(sender, method, &path, token, body.as_ref()).await;
    stats.micros_by_op[op.index()].fetch_add(started.elapsed().as_micros() as u64, Relaxed);
    let (status, answer, close) = match sent {
        Ok(r) => r,
        Err(e) => {
            stats.transport_errors.fetch_add(1, Relaxed);
            stats.note(format!("{} as {}: {e}", op.name(), actor.sub));
            return false;
        }
    };
    match status {
        200..=299 => &stats.status_2xx,
        401 => &stats.status_401,
        403 => &stats.status_403,
        _ => &stats.status_other,
    }
    .fetch_add(1, Relaxed);
    let status_ok = if want == 200 { (200..300).contains(&status) } else { status == want };
    let mut problem = (!status_ok).then(|| format!("status {status}, expected {want}: {answer}"));
    if status_ok && want == 200 {
        match op {
            Op::Query | Op::GetIds | Op::GetWhere => {
                if let Err(e) = check_records(load, actor, op, &answer) {
                    problem = Some(e);
                }
            }
            Op::Count if !answer.is_u64() => problem = Some(format!("count is not a number: {answer}")),
            _ => {}
        }
        if let Some(id) = pending_add {
            conn.own.push(id);
        }
        if let Some(i) = pending_delete {
            conn.own.remove(i);
        }
    }
    if let Some(p) = problem {
        stats.unexpected.fetch_add(1, Relaxed);
        stats.unexpected_by_op[op.index()].fetch_add(1, Relaxed);
        let mut p = p;
        p.truncate(400);
        stats.note(format!("{} as {} {:?}: {p}", op.name(), actor.sub, actor.principal.roles));
    }
    if close {
        stats.close_answers.fetch_add(1, Relaxed);
    }
    !close
}

/// Every returned record must be readable by the principal; parallel arrays must agree.
fn check_records(load: &Load, actor: &Actor, op: Op, answer: &Json) -> Result<(), String> {
    let (ids, metas) = if op == Op::Query {
        (answer["ids"].get(0), answer["metadatas"].get(0))
    } else {
        (Some(&answer["ids"]), Some(&answer["metadatas"]))
    };
    let (Some(Json::Array(ids)), Some(Json::Array(metas))) = (ids, metas) else {
        return Err(format!("no ids/metadatas: {answer}"));
    };
    if ids.len() != metas.len() {
        return Err(format!("{} ids, {} metadatas", ids.len(), metas.len()));
    }
    if op == Op::Query {
        for key in ["documents", "distances"] {
            if answer[key].get(0).and_then(Json::as_array).map(Vec::len) != Some(ids.len()) {
                return Err(format!("{key} does not match the ids: {answer}"));
            }
        }
        if ids.len() > 4 {
            return Err(format!("{} hits for n_results 4", ids.len()));
        }
    }
    for (id, meta) in ids.iter().zip(metas) {
        load.stats.records_checked.fetch_add(1, Relaxed);
        let (Some(id), Some(meta)) = (id.as_str(), meta.as_object()) else {
            load.stats.violations.fetch_add(1, Relaxed);
            return Err(format!("hit without id or metadata: {id} {meta}"));
        };
        if !allows(&load.planner, &actor.principal, "read", id, meta) {
            load.stats.violations.fetch_add(1, Relaxed);
            return Err(format!("LEAK: {} may not read {id} {}", actor.sub, Json::Object(meta.clone())));
        }
    }
    Ok(())
}

// ---- sampling ---------------------------------------------------------------------------

struct Sample {
    t: f64,
    rss_kib: u64,
    chroma_rss_kib: u64,
    fds: usize,
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn nofile_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Sums a counter over all its label sets in Prometheus text, optionally only where
/// `label_filter` occurs in the labels.
fn metric_sum(text: &str, name: &str, label_filter: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, labels) = series.split_once('{').unwrap_or((series, ""));
            (metric == name && labels.contains(label_filter)).then(|| value.parse::<f64>().ok())?
        })
        .fold(0.0, |a, b| a + b)
}

// ---- main -------------------------------------------------------------------------------

fn main() {
    let Some(args) = parse_args() else {
        eprintln!("soak: skipped (run it with `cargo bench --bench soak` or ./scripts/soak.sh)");
        return;
    };
    if let Some(limit) = nofile_limit() {
        let need = args.connections as u64 + 256;
        if limit < need {
            eprintln!("soak: `ulimit -n` is {limit}; {} connections need at least {need} (./scripts/soak.sh raises it)", args.connections);
            std::process::exit(2);
        }
    }
    let code = run(&args);
    std::process::exit(code);
}

/// The whole soak; every server it starts is dropped (stopped) before it returns.
fn run(args: &Args) -> i32 {
    let wall_start = chrono::Utc::now();
    let mut rng = Rng::seeded(args.seed);
    println!(
        "soak: {} connections, target {} req/s, {} s, {} principals, {} seeded records, reconnect every ~{} requests, seed {}",
        args.connections, args.rate, args.duration.as_secs(), args.principals, args.records, args.reconnect_every, args.seed
    );

    let chroma = ChromaServer::start();
    let col_id = chroma.create_collection("soak");
    let seeded: Vec<(String, Json, Vec<f32>)> = (0..args.records)
        .map(|i| (format!("seed-{i:05}"), Json::Object(random_record(&mut rng)), embedding(&mut rng)))
        .collect();
    chroma.add(&col_id, &seeded);
    let seed_ids: Vec<String> = seeded.iter().map(|r| r.0.clone()).collect();

    let policy_dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(policy_dir.path().join("document.yaml"), DOCUMENT_POLICY).expect("write policy");
    std::fs::write(policy_dir.path().join("collection.yaml"), COLLECTION_POLICY).expect("write policy");
    let planner = Planner::new(Arc::new(load_dir(policy_dir.path()).expect("soak policies load")), PlannerOptions::default());
    let mut options = VecgateOptions::chroma(chroma.url(), policy_dir.path());
    options.collections_yaml = "  - name: \"*\"\n    resource_kind: document\n    required_attrs: [department, region]\n    stamp:\n      owner: principal.id\n".into();
    // vecgate closes a keep-alive connection that stays idle for `header_timeout` (hyper's
    // header read timer runs between requests): above the longest think time, so that every
    // connection stays open.
    options.extra_yaml = format!(
        "limits:\n  max_connections: {}\n  header_timeout: {}s\n",
        args.connections + 100,
        (load_think(args).as_secs_f64() * 1.5 + 10.0).ceil()
    );
    options.upstream_timeout = "30s";
    let vecgate = VecgateServer::start(&options);
    let col = format!("{DEFAULT_DB_PATH}/collections/{col_id}");
    let ttl = args.duration.as_secs() as i64 + 3600;

    let claims: Vec<(String, Vec<&'static str>, Json)> = (0..args.principals).map(|_| random_claims(&mut rng)).collect();
    let actors: Vec<Actor> = claims
        .iter()
        .map(|(sub, roles, c)| Actor {
            sub: sub.clone(),
            principal: principal(sub, roles, c),
            department: c["department"].as_str().expect("department").to_string(),
            region: c["region"].as_str().expect("region").to_string(),
            token: token_with(sub, roles, c, ttl),
        })
        .collect();
    let valid = &actors[0].token;
    let mut forged = valid.clone();
    forged.truncate(forged.len() - 4);
    forged.push_str("AAAA");
    let bad_tokens = vec![
        forged,
        token_with("u1", &["user"], &json!({"department": "eng", "region": "EMEA"}), -3600),
        "not-a-jwt".to_string(),
    ];
    let think = load_think(args);
    let load = Arc::new(Load {
        addr: vecgate.url().trim_start_matches("http://").to_string(),
        col: col.clone(),
        actors,
        bad_tokens,
        planner,
        seed_ids: seed_ids.clone(),
        stats: Stats::default(),
        latency: Histogram::new(),
        interval_latency: Histogram::new(),
        think,
        reconnect_every: args.reconnect_every,
    });

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let pid = vecgate.pid();
    let chroma_pid = chroma.pid();
    let admin = vecgate.admin_url().trim_start_matches("http://").to_string();
    let idle_fds = open_fds(pid);
    let idle_rss = rss_kib(pid);
    let (samples, own_ids, interrupted) = runtime.block_on(drive(args, load.clone(), pid, chroma_pid, &admin));
    let after_fds = {
        // Connections are closed by now; give vecgate a moment to notice.
        std::thread::sleep(Duration::from_secs(2));
        open_fds(pid)
    };
    runtime.shutdown_timeout(Duration::from_secs(5));

    let (_, metrics) = vecgate.admin_get("/metrics");
    let stats = &load.stats;

    // ---- final checks, with the load stopped -----------------------------------------
    let stored = chroma
        .post_json(&format!("{col}/get"), &json!({"include": ["metadatas"]}))
        .unwrap_or_else(|e| panic!("reading the collection from Chroma: {e:?}"));
    let records: Vec<(String, Map<String, Json>)> = stored["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .zip(stored["metadatas"].as_array().expect("metadatas"))
        .map(|(id, m)| (id.as_str().expect("id").to_string(), m.as_object().cloned().unwrap_or_default()))
        .collect();
    let stored_ids: BTreeSet<String> = records.iter().map(|r| r.0.clone()).collect();
    let expected_ids: BTreeSet<String> = seed_ids.iter().cloned().chain(own_ids.iter().cloned()).collect();
    let ledger_ok = stored_ids == expected_ids;
    let denied_stored = stored_ids.iter().filter(|id| id.starts_with("denied-")).count();

    let mut diff_principals = claims.clone();
    diff_principals.extend((0..EXTRA_DIFF_PRINCIPALS).map(|_| random_claims(&mut rng)));
    let mut diff_failures = Vec::new();
    let mut diff_compared = 0;
    let mut partial = 0;
    let mut query_shortfall = 0;
    let n_results = records.len() + 5;
    for (sub, roles, c) in &diff_principals {
        let want = reference_ids(&load.planner, sub, roles, c, &records);
        if !want.is_empty() && want.len() < records.len() {
            partial += 1;
        }
        let tok = token_with(sub, roles, c, 3600);
        let who = format!("{sub} {roles:?} {c}");
        let (s, got) = vecgate.call("POST", &format!("{col}/get"), Some(&tok), Some(&json!({"include": []})));
        if s != 200 || ids_of(&got) != want {
            diff_failures.push(format!("get as {who}: status {s}, {} ids, want {}", got["ids"].as_array().map_or(0, Vec::len), want.len()));
        }
        // A query with k above the collection size. Chroma's HNSW search is approximate and
        // may miss a few matching records (deleted and updated neighbours): the answer must
        // equal what Chroma itself returns for the same filter, and hold no record outside
        // the reference.
        let embedding = vec![0.1f32; DIM];
        let (s, got) = vecgate.call(
            "POST",
            &format!("{col}/query"),
            Some(&tok),
            Some(&json!({"query_embeddings": [embedding], "n_results": n_results, "include": []})),
        );
        let got_ids = if s == 200 { ids_of(&got) } else { BTreeSet::new() };
        let direct: BTreeSet<String> = match chroma_read_filter(&load.planner, &principal(sub, roles, c), REQUIRED_ATTRS) {
            Ok(filter) => chroma
                .query_ids(&col_id, &embedding, n_results, filter.as_ref())
                .unwrap_or_else(|e| panic!("direct query: {e:?}"))
                .into_iter()
                .collect(),
            Err(_) => BTreeSet::new(),
        };
        query_shortfall += want.difference(&got_ids).count();
        if s != 200 || got_ids != direct || !got_ids.is_subset(&want) {
            diff_failures.push(format!(
                "query as {who}: status {s}, leaked {:?}, {} missing from the reference, differs from Chroma's own answer by {}",
                got_ids.difference(&want).take(5).collect::<Vec<_>>(),
                want.difference(&got_ids).count(),
                got_ids.symmetric_difference(&direct).count()
            ));
        }
        let (s, got) = vecgate.call("GET", &format!("{col}/count"), Some(&tok), None);
        if (s, got.clone()) != (200, json!(want.len())) {
            diff_failures.push(format!("count as {who}: status {s}, {got}, want {}", want.len()));
        }
        diff_compared += 3;
    }
    // Hits vecgate removed although Chroma's filtered answer held them (the second line of
    // defence at work; under concurrent writes Chroma may return a record whose metadata
    // changed after its filter matched): show where they happened.
    let stripped_lines: Vec<String> = vecgate
        .audit_lines()
        .into_iter()
        .filter(|l| l["hits_stripped"].as_u64().unwrap_or(0) > 0)
        .map(|l| {
            format!(
                "{} {} {:?} stripped {} of {}, filter {}",
                l["time"], l["operation"], l["subject"].as_str(), l["hits_stripped"], l["hits_returned"], l["filter"]
            )
        })
        .collect();
    let log_tail = vecgate.log_tail();
    drop(vecgate);
    drop(chroma);

    // ---- report ------------------------------------------------------------------------
    let sent = stats.sent.load(Relaxed);
    let load_secs = samples.last().map_or(0.0, |s| s.t);
    println!("\n== per operation ==");
    for (op, _) in MIX {
        let n = stats.by_op[op.index()].load(Relaxed);
        println!(
            "  {:<20} {:>9} requests, {} unexpected, mean {:.1} ms",
            op.name(),
            n,
            stats.unexpected_by_op[op.index()].load(Relaxed),
            stats.micros_by_op[op.index()].load(Relaxed) as f64 / n.max(1) as f64 / 1000.0
        );
    }
    let all_latency = load.latency.take();
    println!("\n== totals ==");
    println!(
        "  requests {sent} in {load_secs:.0} s = {:.1} req/s; 2xx {}, 401 {}, 403 {}, other {}",
        sent as f64 / load_secs.max(1.0),
        stats.status_2xx.load(Relaxed),
        stats.status_401.load(Relaxed),
        stats.status_403.load(Relaxed),
        stats.status_other.load(Relaxed)
    );
    // Latencies are power-of-two bucket bounds (the timeline's p50/p99 columns too).
    println!(
        "  latency (bucket upper bounds) p50 ≤ {:.1} ms, p99 ≤ {:.1} ms, p99.9 ≤ {:.1} ms",
        quantile_ms(&all_latency, 0.5),
        quantile_ms(&all_latency, 0.99),
        quantile_ms(&all_latency, 0.999)
    );
    println!(
        "  unexpected answers {}, transport errors {}, records checked {}, violations {}",
        stats.unexpected.load(Relaxed),
        stats.transport_errors.load(Relaxed),
        stats.records_checked.load(Relaxed),
        stats.violations.load(Relaxed)
    );
    println!(
        "  reconnects: {} by the client's choice, {} after an answer with `Connection: close`, {} closed by vecgate unannounced",
        stats.reconnects.load(Relaxed),
        stats.close_answers.load(Relaxed),
        stats.server_closed.load(Relaxed)
    );
    for e in stats.examples.lock().expect("examples lock").iter() {
        println!("  example: {e}");
    }

    let vg_total = metric_sum(&metrics, "vecgate_requests_total", "");
    let vg_2xx = metric_sum(&metrics, "vecgate_requests_total", "status_class=\"2xx\"");
    let vg_4xx = metric_sum(&metrics, "vecgate_requests_total", "status_class=\"4xx\"");
    let vg_5xx = metric_sum(&metrics, "vecgate_requests_total", "status_class=\"5xx\"");
    let vg_auth = metric_sum(&metrics, "vecgate_auth_failures_total", "");
    let vg_stripped = metric_sum(&metrics, "vecgate_hits_stripped_total", "");
    let vg_upstream_errors = metric_sum(&metrics, "vecgate_upstream_errors_total", "");
    println!("\n== vecgate /metrics after the load ==");
    println!(
        "  vecgate_requests_total {vg_total} (2xx {vg_2xx}, 4xx {vg_4xx}, 5xx {vg_5xx}); auth failures {vg_auth}; hits stripped {vg_stripped}; upstream errors {vg_upstream_errors}"
    );
    let client_4xx = stats.status_401.load(Relaxed) + stats.status_403.load(Relaxed);
    let metrics_agree = vg_total as u64 == sent
        && vg_2xx as u64 == stats.status_2xx.load(Relaxed)
        && vg_4xx as u64 == client_4xx
        && vg_auth as u64 == stats.status_401.load(Relaxed);
    // Both per client request (a write may call Chroma twice: read the records, then write).
    let answered = metric_sum(&metrics, "vecgate_request_duration_seconds_count", "").max(1.0);
    let per_request_ms = |name: &str| 1000.0 * metric_sum(&metrics, name, "") / answered;
    println!(
        "  per request: mean duration {:.1} ms, of which waiting for Chroma {:.1} ms",
        per_request_ms("vecgate_request_duration_seconds_sum"),
        per_request_ms("vecgate_upstream_duration_seconds_sum")
    );
    for line in stripped_lines.iter().take(10) {
        println!("  stripped: {line}");
    }
    println!("  client: {sent} requests, 2xx {}, 4xx {client_4xx}, 401 {}", stats.status_2xx.load(Relaxed), stats.status_401.load(Relaxed));

    // RSS: after warm-up, compare the first and the last window of samples.
    let warmup = (args.duration.as_secs_f64() / 5.0).min(60.0);
    let window = ((args.duration.as_secs_f64() - warmup) / 3.0).min(60.0);
    let avg = |from: f64, to: f64| {
        let xs: Vec<u64> = samples.iter().filter(|s| s.t >= from && s.t <= to).map(|s| s.rss_kib).collect();
        (!xs.is_empty()).then(|| xs.iter().sum::<u64>() as f64 / xs.len() as f64 / 1024.0)
    };
    let first_window = avg(warmup, warmup + window);
    let last_window = avg(load_secs - window, load_secs);
    let growth = match (first_window, last_window) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let post: Vec<&Sample> = samples.iter().filter(|s| s.t >= warmup).collect();
    let slope = slope_mib_per_min(&post);
    let rss_start = samples.first().map_or(0, |s| s.rss_kib);
    let rss_max = samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    let rss_end = samples.last().map_or(0, |s| s.rss_kib);
    println!("\n== vecgate memory and files ==");
    println!(
        "  RSS idle before load {:.1} MiB; first sample {:.1}, max {:.1}, end {:.1} MiB",
        mib(idle_rss), mib(rss_start), mib(rss_max), mib(rss_end)
    );
    println!(
        "  after {warmup:.0} s warm-up: first {window:.0} s average {}, last {window:.0} s average {}, growth {}, slope {slope:+.3} MiB/min",
        first_window.map_or("n/a".into(), |v| format!("{v:.1} MiB")),
        last_window.map_or("n/a".into(), |v| format!("{v:.1} MiB")),
        growth.map_or("n/a".into(), |v| format!("{v:+.2} MiB")),
    );
    println!(
        "  open fds: idle {idle_fds}, max under load {}, 2 s after the clients closed {after_fds}",
        samples.iter().map(|s| s.fds).max().unwrap_or(0)
    );
    println!(
        "  Chroma RSS: first sample {:.1} MiB, end {:.1} MiB",
        mib(samples.first().map_or(0, |s| s.chroma_rss_kib)),
        mib(samples.last().map_or(0, |s| s.chroma_rss_kib))
    );

    println!("\n== final checks (load stopped) ==");
    println!(
        "  collection holds {} records ({} seeded + {} left by the clients); ledger {}; denied writes stored: {denied_stored}",
        records.len(),
        seed_ids.len(),
        own_ids.len(),
        if ledger_ok { "matches".to_string() } else {
            format!("differs: {} unexpected, {} missing", stored_ids.difference(&expected_ids).count(), expected_ids.difference(&stored_ids).count())
        }
    );
    println!(
        "  differential: {} principals x get/query/count = {diff_compared} answers, {partial} partial views, {} mismatches",
        diff_principals.len(),
        diff_failures.len()
    );
    println!(
        "  queries with k = collection size: {query_shortfall} readable records not returned in all (HNSW recall: Chroma's own answer for the same filter is compared above)"
    );
    for f in diff_failures.iter().take(10) {
        println!("  mismatch: {f}");
    }

    let verdicts = [
        ("load ran its full duration", !interrupted),
        ("zero unexpected statuses or answers", stats.unexpected.load(Relaxed) == 0),
        ("zero transport errors", stats.transport_errors.load(Relaxed) == 0),
        ("zero leaks (records returned that the principal may not read)", stats.violations.load(Relaxed) == 0),
        (
            "RSS growth after warm-up under the limit",
            growth.is_some_and(|g| g < args.rss_limit_mib),
        ),
        ("vecgate's /metrics agree with the client's counts", metrics_agree),
        ("writes: collection = seeded + surviving client records, no denied write stored", ledger_ok && denied_stored == 0),
        ("final differential: get/query/count equal the reference for every principal", diff_failures.is_empty()),
    ];
    println!("\n== verdict ==");
    let mut failed = false;
    for (what, ok) in verdicts {
        failed |= !ok;
        let detail = if what.starts_with("RSS") {
            format!(" ({} vs limit {} MiB)", growth.map_or("n/a".into(), |g| format!("{g:+.2}")), args.rss_limit_mib)
        } else {
            String::new()
        };
        println!("  {} {what}{detail}", if ok { "PASS" } else { "FAIL" });
    }
    println!(
        "soak {}: {} connections, {sent} requests in {load_secs:.0} s ({:.1} req/s), started {}",
        if failed { "FAILED" } else { "PASSED" },
        args.connections,
        sent as f64 / load_secs.max(1.0),
        wall_start.format("%Y-%m-%d %H:%M UTC")
    );
    if failed {
        println!("--- vecgate log tail ---\n{log_tail}");
    }
    i32::from(failed)
}

/// vecgate's `/metrics` text, or None if the admin listener does not answer.
async fn scrape(admin: &str) -> Option<String> {
    let mut sender = open(admin).await.ok()?;
    match send(&mut sender, "GET", "/metrics", "", None).await {
        Ok((200, Json::String(text), _)) => Some(text),
        _ => None,
    }
}

/// The mean pause between one connection's requests that gives the aggregate rate.
fn load_think(args: &Args) -> Duration {
    if args.rate > 0.0 {
        Duration::from_secs_f64(args.connections as f64 / args.rate)
    } else {
        Duration::ZERO
    }
}

fn slope_mib_per_min(samples: &[&Sample]) -> f64 {
    let n = samples.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mx = samples.iter().map(|s| s.t).sum::<f64>() / n;
    let my = samples.iter().map(|s| mib(s.rss_kib)).sum::<f64>() / n;
    let sxy: f64 = samples.iter().map(|s| (s.t - mx) * (mib(s.rss_kib) - my)).sum();
    let sxx: f64 = samples.iter().map(|s| (s.t - mx).powi(2)).sum();
    if sxx == 0.0 { 0.0 } else { sxy / sxx * 60.0 }
}

/// Opens the connections, runs the load for the duration (or until Ctrl-C/SIGTERM), samples
/// vecgate every interval. Returns the samples, the ids of the records the clients left, and
/// whether it was interrupted.
async fn drive(args: &Args, load: Arc<Load>, pid: u32, chroma_pid: u32, admin: &str) -> (Vec<Sample>, Vec<String>, bool) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::with_capacity(args.connections);
    for index in 0..args.connections {
        let conn = Conn {
            index,
            actor: index % load.actors.len(),
            rng: Rng::seeded(args.seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            own: Vec::new(),
            next_id: 0,
        };
        tasks.push(tokio::spawn(connection(load.clone(), conn, stop_rx.clone())));
    }
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut last_sent = 0;
    let mut interrupted = false;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    println!(
        "\n{:>6} {:>8} {:>10} {:>5} {:>9} {:>7} {:>6} {:>6} {:>6} {:>7} {:>7} {:>9} {:>9} {:>10}",
        "t s", "rss MiB", "chroma MiB", "fds", "requests", "req/s", "unexp", "errors", "leaks", "p50 ms", "p99 ms", "reconnect", "chroma ms", "vecgate ms"
    );
    // vecgate's request and upstream duration sums, to split each interval's mean latency
    // into time waiting for Chroma and vecgate's own time (CPU and queueing included).
    let mut last_durations = (0.0, 0.0, 0.0);
    let mut next = started + args.sample;
    loop {
        let deadline = started + args.duration;
        let wake = next.min(deadline);
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {}
            _ = tokio::signal::ctrl_c() => { interrupted = true; }
            _ = sigterm.recv() => { interrupted = true; }
        }
        let now = Instant::now();
        let stats = &load.stats;
        let sent = stats.sent.load(Relaxed);
        let interval = load.interval_latency.take();
        let elapsed = now.duration_since(started).as_secs_f64();
        let since_last = elapsed - samples.last().map_or(0.0, |s: &Sample| s.t);
        let sample = Sample { t: elapsed, rss_kib: rss_kib(pid), chroma_rss_kib: rss_kib(chroma_pid), fds: open_fds(pid) };
        let durations = match scrape(admin).await {
            Some(text) => (
                metric_sum(&text, "vecgate_request_duration_seconds_count", ""),
                metric_sum(&text, "vecgate_request_duration_seconds_sum", ""),
                metric_sum(&text, "vecgate_upstream_duration_seconds_sum", ""),
            ),
            None => last_durations,
        };
        let answered = (durations.0 - last_durations.0).max(1.0);
        let chroma_ms = 1000.0 * (durations.2 - last_durations.2) / answered;
        let own_ms = 1000.0 * (durations.1 - last_durations.1) / answered - chroma_ms;
        last_durations = durations;
        println!(
            "{:>6.0} {:>8.1} {:>10.1} {:>5} {:>9} {:>7.1} {:>6} {:>6} {:>6} {:>7.1} {:>7.1} {:>9} {:>9.1} {:>10.1}",
            sample.t,
            mib(sample.rss_kib),
            mib(sample.chroma_rss_kib),
            sample.fds,
            sent,
            (sent - last_sent) as f64 / since_last.max(0.001),
            stats.unexpected.load(Relaxed),
            stats.transport_errors.load(Relaxed),
            stats.violations.load(Relaxed),
            quantile_ms(&interval, 0.5),
            quantile_ms(&interval, 0.99),
            stats.reconnects.load(Relaxed),
            chroma_ms,
            own_ms,
        );
        last_sent = sent;
        samples.push(sample);
        if interrupted || now >= deadline {
            break;
        }
        next += args.sample;
    }
    let _ = stop_tx.send(true);
    let mut own = Vec::new();
    for task in tasks {
        match tokio::time::timeout(REQUEST_TIMEOUT + Duration::from_secs(5), task).await {
            Ok(Ok(ids)) => own.extend(ids),
            Ok(Err(e)) => {
                load.stats.unexpected.fetch_add(1, Relaxed);
                load.stats.note(format!("a connection task failed: {e}"));
            }
            Err(_) => {
                load.stats.unexpected.fetch_add(1, Relaxed);
                load.stats.note("a connection task did not stop".into());
            }
        }
    }
    (samples, own, interrupted)
}
