//! The load generator: HTTP/1.1 keep-alive connections (hyper's client connection, no pool
//! library), an open-loop phase at a fixed rate, a closed-loop phase for maximum throughput,
//! and a phase that holds many idle connections open.
//!
//! Runs on a single-threaded tokio runtime so the client takes at most one of the machine's
//! cores. In the open loop a separate OS thread keeps the schedule (tokio's timer rounds up
//! to whole milliseconds; `std::thread::sleep` does not) and each request's latency is
//! measured from its *scheduled* send time, so a server that falls behind is charged for the
//! queueing it causes (no coordinated omission). How late each request actually started is
//! recorded too (`Stats::send_lag`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::HeaderValue;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::workload::{verify, Backend, Kind, Principal, Request};

/// A request that takes longer than this is counted as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

type Sender = SendRequest<Full<Bytes>>;

/// What every phase needs: the request sequence and the tokens.
pub struct Workload {
    pub backend: Backend,
    pub requests: Vec<Request>,
    pub alice: HeaderValue,
    pub ingest: HeaderValue,
}

impl Workload {
    pub fn new(backend: Backend, requests: Vec<Request>, alice: &str, ingest: &str) -> Workload {
        let header = |t: &str| HeaderValue::from_str(&format!("Bearer {t}")).expect("token header");
        Workload {
            backend,
            requests,
            alice: header(alice),
            ingest: header(ingest),
        }
    }

    /// The same requests with tokens whose signature was changed: every proxy that verifies
    /// tokens must refuse them.
    ///
    /// The signature's first character is changed, not its last: the last of an HS256
    /// signature's 43 base64url characters carries 4 bits of the signature and 2 unused bits,
    /// so turning a final `A` into `B` changes only unused bits. A lenient decoder (HAProxy's)
    /// reads the same signature from both, and the "forged" token verified — one token in 16,
    /// by the time it was minted, which is why the check failed in one section and not others.
    pub fn with_forged_tokens(&self) -> Workload {
        let forge = |h: &HeaderValue| {
            let text = h.to_str().expect("token header");
            let at = text.rfind('.').expect("a signed token") + 1;
            let first = text[at..].chars().next().expect("a signature");
            let changed = if first == 'A' { 'g' } else { 'A' };
            HeaderValue::from_str(&format!("{}{changed}{}", &text[..at], &text[at + 1..])).expect("token header")
        };
        Workload { backend: self.backend, requests: self.requests.clone(), alice: forge(&self.alice), ingest: forge(&self.ingest) }
    }

    fn token(&self, p: Principal) -> &HeaderValue {
        match p {
            Principal::Alice => &self.alice,
            Principal::Ingest => &self.ingest,
        }
    }
}

/// Keep-alive connections to one target. Idle connections are reused; a new one is opened
/// when none is idle. `max_in_flight` bounds concurrent requests: beyond it requests wait
/// at the client (which only happens when the server has fallen far behind).
pub struct Pool {
    addr: SocketAddr,
    host: HeaderValue,
    idle: Mutex<std::collections::VecDeque<Sender>>,
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    /// Reuse the connection idle longest (so requests go round the connections opened by
    /// [`Pool::open`]) instead of the one idle shortest.
    round_robin: bool,
}

impl Pool {
    pub fn new(addr: SocketAddr, max_in_flight: usize) -> Arc<Pool> {
        Arc::new(Pool {
            addr,
            host: HeaderValue::from_str(&addr.to_string()).expect("host header"),
            idle: Mutex::new(std::collections::VecDeque::new()),
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            round_robin: false,
        })
    }

    /// A pool that opens `connections` keep-alive connections at once and sends each
    /// request on the one idle longest, so that at a steady rate every connection carries
    /// its share (a connection is added only when all are busy).
    pub async fn open(addr: SocketAddr, connections: usize, max_in_flight: usize) -> Result<Arc<Pool>, String> {
        let pool = Pool {
            addr,
            host: HeaderValue::from_str(&addr.to_string()).expect("host header"),
            idle: Mutex::new(std::collections::VecDeque::new()),
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            round_robin: true,
        };
        for _ in 0..connections {
            let sender = pool.connect().await?;
            pool.idle.lock().expect("pool lock").push_back(sender);
        }
        Ok(Arc::new(pool))
    }

    /// Connections open and idle.
    pub fn idle_connections(&self) -> usize {
        self.idle.lock().expect("pool lock").len()
    }

    /// Closes every idle connection.
    pub fn close_idle(&self) {
        self.idle.lock().expect("pool lock").clear();
    }

    async fn connect(&self) -> Result<Sender, String> {
        let stream = TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connect {}: {e}", self.addr))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }

    async fn checkout(&self) -> Result<Sender, String> {
        loop {
            let candidate = {
                let mut idle = self.idle.lock().expect("pool lock");
                if self.round_robin {
                    idle.pop_front()
                } else {
                    idle.pop_back()
                }
            };
            match candidate {
                Some(mut s) => {
                    if !s.is_closed() && s.ready().await.is_ok() {
                        return Ok(s);
                    }
                }
                None => return self.connect().await,
            }
        }
    }

    fn checkin(&self, s: Sender) {
        if !s.is_closed() {
            self.idle.lock().expect("pool lock").push_back(s);
        }
    }
}

/// One request and its answer's status and body.
async fn exchange(sender: &mut Sender, pool: &Pool, work: &Workload, req: &Request) -> Result<(u16, Bytes), String> {
    let request = http::Request::builder()
        .method(req.method.clone())
        .uri(req.path.as_str())
        .header(HOST, pool.host.clone())
        .header(CONTENT_TYPE, "application/json")
        .header(AUTHORIZATION, work.token(req.principal).clone())
        .body(Full::new(req.body.clone()))
        .map_err(|e| format!("request: {e}"))?;
    let response = sender.send_request(request).await.map_err(|e| format!("send: {e}"))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok((status, body))
}

/// Checkout, exchange, checkin.
async fn call(pool: &Pool, work: &Workload, req: &Request) -> Result<(u16, Bytes), String> {
    let mut sender = pool.checkout().await?;
    let answer = exchange(&mut sender, pool, work, req).await?;
    pool.checkin(sender);
    Ok(answer)
}

fn histogram() -> Histogram<u64> {
    // Microseconds, 1 µs to 60 s, 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

/// Counts and latencies of one measured phase.
pub struct Stats {
    pub latency: Histogram<u64>,
    pub by_kind: BTreeMap<Kind, Histogram<u64>>,
    /// 2xx answers that passed the check.
    pub ok: u64,
    /// Answers with a status other than 2xx.
    pub http_errors: u64,
    /// 2xx answers whose content failed the check (wrong hit count, a hit alice may not see).
    pub bad_answers: u64,
    /// Connection failures and timeouts.
    pub transport_errors: u64,
    /// Requests still running when the phase's drain deadline passed.
    pub unfinished: u64,
    pub first_error: Option<String>,
    pub last_completion: Option<Instant>,
    /// The most requests in flight at once.
    pub peak_in_flight: usize,
    /// Open loop: how late, after its scheduled time, each request's task started (µs).
    pub send_lag: Histogram<u64>,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            latency: histogram(),
            by_kind: BTreeMap::new(),
            ok: 0,
            http_errors: 0,
            bad_answers: 0,
            transport_errors: 0,
            unfinished: 0,
            first_error: None,
            last_completion: None,
            peak_in_flight: 0,
            send_lag: histogram(),
        }
    }

    pub fn errors(&self) -> u64 {
        self.http_errors + self.bad_answers + self.transport_errors + self.unfinished
    }

    pub fn completed(&self) -> u64 {
        self.ok + self.http_errors + self.bad_answers
    }

    fn note_error(&mut self, e: String) {
        if self.first_error.is_none() {
            self.first_error = Some(e);
        }
    }

    fn record(&mut self, backend: Backend, req: &Request, latency: Duration, answer: Result<(u16, Bytes), String>, done: Instant) {
        match answer {
            Ok((status, body)) => {
                let micros = (latency.as_micros() as u64).clamp(1, 60_000_000);
                self.latency.saturating_record(micros);
                self.by_kind
                    .entry(req.kind)
                    .or_insert_with(histogram)
                    .saturating_record(micros);
                self.last_completion = Some(self.last_completion.map_or(done, |l| l.max(done)));
                if !(200..300).contains(&status) {
                    self.http_errors += 1;
                    let text = String::from_utf8_lossy(&body);
                    self.note_error(format!("{} {}: HTTP {status}: {}", req.kind.label(), req.path, text.chars().take(300).collect::<String>()));
                } else if let Some(why) = verify(backend, &req.check, &body) {
                    self.bad_answers += 1;
                    self.note_error(format!("{} {}: {why}", req.kind.label(), req.path));
                } else {
                    self.ok += 1;
                }
            }
            Err(e) => {
                self.transport_errors += 1;
                self.note_error(format!("{} {}: {e}", req.kind.label(), req.path));
            }
        }
    }
}

/// The outcome of an open-loop phase.
pub struct OpenResult {
    pub offered_rps: f64,
    pub achieved_rps: f64,
    pub stats: Stats,
    /// Requests waited at the client because `max_in_flight` were already out.
    pub client_queued: bool,
}

/// Sends `rate` requests per second for `duration` following the sequence from `offset`,
/// then waits up to `drain` for the last answers.
pub async fn open_loop(pool: Arc<Pool>, work: Arc<Workload>, rate: f64, duration: Duration, drain: Duration, offset: usize) -> OpenResult {
    let total = (rate * duration.as_secs_f64()).round() as usize;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    let start = Instant::now() + Duration::from_millis(20);
    let scheduler = std::thread::spawn(move || {
        for i in 0..total {
            let at = start + Duration::from_secs_f64(i as f64 / rate);
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            if tx.send((i, at)).is_err() {
                break;
            }
        }
    });
    let stats = Arc::new(Mutex::new(Stats::new()));
    let mut tasks = JoinSet::new();
    while let Some((i, at)) = rx.recv().await {
        let pool = pool.clone();
        let work = work.clone();
        let stats = stats.clone();
        tasks.spawn(async move {
            let lag = at.elapsed();
            let req = &work.requests[(offset + i) % work.requests.len()];
            let permit = pool.in_flight.clone().acquire_owned().await;
            let in_use = pool.max_in_flight - pool.in_flight.available_permits();
            let answer = match tokio::time::timeout(REQUEST_TIMEOUT, call(&pool, &work, req)).await {
                Ok(a) => a,
                Err(_) => Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
            };
            drop(permit);
            let done = Instant::now();
            let mut s = stats.lock().expect("stats lock");
            s.peak_in_flight = s.peak_in_flight.max(in_use);
            s.send_lag.saturating_record((lag.as_micros() as u64).max(1));
            s.record(work.backend, req, done - at, answer, done);
        });
        while tasks.try_join_next().is_some() {}
    }
    let _ = scheduler.join();
    let deadline = tokio::time::Instant::now() + drain;
    while !tasks.is_empty() {
        match tokio::time::timeout_at(deadline, tasks.join_next()).await {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let unfinished = tasks.len() as u64;
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    let mut stats = Arc::try_unwrap(stats)
        .ok()
        .expect("every task is done")
        .into_inner()
        .expect("stats lock");
    stats.unfinished = unfinished;
    let elapsed = stats
        .last_completion
        .map_or(duration, |l| l.saturating_duration_since(start))
        .max(duration);
    OpenResult {
        offered_rps: rate,
        achieved_rps: stats.completed() as f64 / elapsed.as_secs_f64(),
        client_queued: stats.peak_in_flight >= pool.max_in_flight,
        stats,
    }
}

/// The outcome of a closed-loop phase.
pub struct ClosedResult {
    pub concurrency: usize,
    pub window: Duration,
    /// Answers completed inside the window, per second.
    pub throughput: f64,
    pub stats: Stats,
    /// CPU seconds the measured process (with its children) used during the window.
    pub cpu_seconds: Option<f64>,
}

impl ClosedResult {
    /// CPU time per answer in the window, in microseconds.
    pub fn cpu_us_per_request(&self) -> Option<f64> {
        let completed = self.stats.completed();
        self.cpu_seconds
            .filter(|_| completed > 0)
            .map(|s| s * 1e6 / completed as f64)
    }
}

/// `concurrency` workers each send the next request as soon as the previous one is answered.
/// After `warmup`, answers completed during `window` are counted, and the CPU time of the
/// process `cpu_of` (with its children) over the window is read from /proc.
pub async fn closed_loop(pool: Arc<Pool>, work: Arc<Workload>, concurrency: usize, warmup: Duration, window: Duration, offset: usize, cpu_of: Option<u32>) -> ClosedResult {
    let window_start = Instant::now() + warmup;
    let window_end = window_start + window;
    let cpu = cpu_of.map(|pid| {
        tokio::spawn(async move {
            tokio::time::sleep_until(window_start.into()).await;
            let before = super::memory::cpu_seconds_tree(pid);
            tokio::time::sleep_until(window_end.into()).await;
            super::memory::cpu_seconds_tree(pid) - before
        })
    });
    let next = Arc::new(AtomicUsize::new(offset));
    let stats = Arc::new(Mutex::new(Stats::new()));
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        let (pool, work, next, stats) = (pool.clone(), work.clone(), next.clone(), stats.clone());
        workers.spawn(async move {
            loop {
                let sent = Instant::now();
                if sent >= window_end {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let req = &work.requests[i % work.requests.len()];
                let answer = match tokio::time::timeout(REQUEST_TIMEOUT, call(&pool, &work, req)).await {
                    Ok(a) => a,
                    Err(_) => Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
                };
                let done = Instant::now();
                if done >= window_start && done <= window_end {
                    stats.lock().expect("stats lock").record(work.backend, req, done - sent, answer, done);
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let cpu_seconds = match cpu {
        Some(task) => task.await.ok(),
        None => None,
    };
    let stats = Arc::try_unwrap(stats)
        .ok()
        .expect("every worker is done")
        .into_inner()
        .expect("stats lock");
    ClosedResult {
        concurrency,
        window,
        throughput: stats.completed() as f64 / window.as_secs_f64(),
        stats,
        cpu_seconds,
    }
}

/// Opens `n` connections to `addr`, sends one request (`req`) on each, and returns them,
/// still open, together with the number of requests that failed.
pub async fn hold_connections(addr: SocketAddr, n: usize, work: Arc<Workload>, req: &Request) -> (Vec<Sender>, usize) {
    let pool = Pool::new(addr, n);
    let gate = Arc::new(Semaphore::new(32));
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let (pool, work, gate, req) = (pool.clone(), work.clone(), gate.clone(), req.clone());
        tasks.spawn(async move {
            let _turn = gate.acquire_owned().await;
            let mut sender = pool.connect().await?;
            let (status, _) = tokio::time::timeout(REQUEST_TIMEOUT, exchange(&mut sender, &pool, &work, &req))
                .await
                .map_err(|_| "timeout".to_string())??;
            if !(200..300).contains(&status) {
                return Err(format!("HTTP {status}"));
            }
            Ok::<Sender, String>(sender)
        });
    }
    let mut held = Vec::with_capacity(n);
    let mut failed = 0;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(s)) => held.push(s),
            _ => failed += 1,
        }
    }
    (held, failed)
}

/// Sends `req` once on `pool` and checks the answer.
pub async fn probe_on(pool: &Pool, work: Arc<Workload>, req: &Request) -> Result<(), String> {
    let (status, body) = call(pool, &work, req).await?;
    if !(200..300).contains(&status) {
        return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)));
    }
    match verify(work.backend, &req.check, &body) {
        Some(why) => Err(why),
        None => Ok(()),
    }
}

/// Sends `req` once on a fresh pool and checks the answer: a setup check before measuring.
pub async fn probe(addr: SocketAddr, work: Arc<Workload>, req: &Request) -> Result<(), String> {
    let pool = Pool::new(addr, 1);
    let (status, body) = call(&pool, &work, req).await?;
    if !(200..300).contains(&status) {
        return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)));
    }
    match verify(work.backend, &req.check, &body) {
        Some(why) => Err(why),
        None => Ok(()),
    }
}
