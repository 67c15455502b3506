//! "A Qdrant" for integration tests, plus a small blocking client for seeding data and checking
//! what the server answers. Which Qdrant is chosen by the environment ([`QdrantKind::configured`]):
//!
//! - `QDRANT_URL` (optionally `QDRANT_API_KEY`, and `QDRANT_GRPC_URL`, else the same host on
//!   the REST port + 1, as Qdrant's defaults 6333/6334 are): a running real server. It must be one the
//!   tests may use: each test takes a process-wide lock while it holds the server, and deletes
//!   the collections it created when done (collections that existed before are left alone, so
//!   a name clash fails the test instead of touching them);
//! - `QDRANT_BIN`: a real `qdrant` executable, started per [`QdrantServer`] on two free loopback
//!   ports with a temporary storage path (and `service.api_key` when asked), stopped on drop;
//! - neither: the Qdrant test double (`tests/qdrant_server/server.py`, Qdrant Edge inside).
//!
//! In front of a real server sits a [`RecordingProxy`], so [`QdrantServer::recorded_requests`]
//! works for every kind (the double answers it from its test-only `/__test__/requests` route).
//! See `tests/qdrant_server/README.md` for what the double is and is not; vecgate itself must
//! never depend on anything only the double does.
//!
//! ```ignore
//! let qdrant = QdrantServer::start();
//! qdrant.create_collection("docs", 4);
//! qdrant.upsert("docs", &[(json!(1), vec![1.0, 0.0, 0.0, 0.0], json!({"dept": "eng"}))]);
//! let filter = json!({"must": [{"key": "dept", "match": {"value": "eng"}}]});
//! assert_eq!(qdrant.scroll_ids("docs", Some(&filter)), Ok(vec![json!(1)]));
//! ```

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

use super::recording_proxy::{KeyCheck, RecordingProxy};

/// What the double prints once it has bound its port.
const LISTENING_MARKER: &str = "qdrant test server listening on";
/// What it prints (before exiting with status 3) when the port is already taken.
const PORT_TAKEN_MARKER: &str = "cannot bind";
/// What a real server logs when a port is taken.
const REAL_PORT_TAKEN_MARKER: &str = "Address already in use";

const START_ATTEMPTS: usize = 5;
const START_TIMEOUT: Duration = Duration::from_secs(30);
const LOG_TAIL_LINES: usize = 40;

/// Serialises the tests of one process that share a `QDRANT_URL` server.
static EXTERNAL_SERVER: Mutex<()> = Mutex::new(());

/// Which Qdrant the tests use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QdrantKind {
    /// `tests/qdrant_server`: Qdrant's REST API over Qdrant Edge.
    Double,
    /// `QDRANT_BIN`: a real server executable, started per test.
    Binary(PathBuf),
    /// `QDRANT_URL`: a running real server, with its API key if it has one.
    External { url: String, api_key: Option<String> },
}

impl QdrantKind {
    /// `QDRANT_URL`, else `QDRANT_BIN`, else the double. An empty variable counts as unset.
    pub fn configured() -> QdrantKind {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        if let Some(url) = var("QDRANT_URL") {
            return QdrantKind::External {
                url: url.trim_end_matches('/').to_string(),
                api_key: var("QDRANT_API_KEY"),
            };
        }
        if let Some(bin) = var("QDRANT_BIN") {
            let path = PathBuf::from(bin);
            assert!(
                path.is_file(),
                "QDRANT_BIN={} is not a file: point it at a qdrant server executable, or unset it \
                 to test against the Qdrant test double",
                path.display()
            );
            return QdrantKind::Binary(path);
        }
        QdrantKind::Double
    }

    pub fn is_real(&self) -> bool {
        !matches!(self, QdrantKind::Double)
    }

    /// One line for test output.
    pub fn describe(&self) -> String {
        match self {
            QdrantKind::Double => "the Qdrant test double (tests/qdrant_server, Qdrant Edge)".into(),
            QdrantKind::Binary(p) => format!("a real Qdrant server (QDRANT_BIN={})", p.display()),
            QdrantKind::External { url, .. } => format!("a real Qdrant server (QDRANT_URL={url})"),
        }
    }
}

enum Upstream {
    Double { child: Child, stdin: Option<ChildStdin> },
    Binary { child: Child, proxy: RecordingProxy },
    External {
        proxy: RecordingProxy,
        direct_url: String,
        direct_key: Option<String>,
        before: BTreeSet<String>,
        _lease: MutexGuard<'static, ()>,
    },
}

/// A running Qdrant (see the module docs for which one). Dropping it stops what it started.
pub struct QdrantServer {
    upstream: Upstream,
    kind: QdrantKind,
    port: u16,
    url: String,
    /// The server's gRPC port, `http://127.0.0.1:PORT` (no proxy in front of it).
    grpc_url: String,
    api_key: Option<String>,
    log_path: PathBuf,
    agent: ureq::Agent,
    // Last: removed after the process is gone.
    _dir: TempDir,
}

enum StartError {
    PortTaken(String),
    Fatal(String),
}

/// `tests/qdrant_server/server.py` in this repository.
pub fn server_script() -> PathBuf {
    super::repo_root().join("tests/qdrant_server/server.py")
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .try_proxy_from_env(false)
        .timeout_connect(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .build()
}

fn temp_dir() -> Result<TempDir, StartError> {
    tempfile::Builder::new()
        .prefix("vecgate-qdrant-")
        .tempdir()
        .map_err(|e| StartError::Fatal(format!("cannot create a temp dir: {e}")))
}

impl QdrantServer {
    /// Starts (or, for `QDRANT_URL`, takes) a Qdrant without authentication, ready to answer.
    /// Panics (failing the test) if it cannot; the message includes the tail of its log.
    pub fn start() -> QdrantServer {
        Self::start_kind(&QdrantKind::configured(), None)
    }

    /// Like [`QdrantServer::start`], but every route except `/`, `/healthz`, `/livez`,
    /// `/readyz` (and the double's test-only `/__test__/requests`) requires `api-key: KEY` or
    /// `Authorization: Bearer KEY`, as a Qdrant server with `service.api_key` does.
    /// The helpers below send the key.
    pub fn start_with_api_key(key: &str) -> QdrantServer {
        Self::start_kind(&QdrantKind::configured(), Some(key.to_string()))
    }

    /// The double, whatever the environment says (for tests that compare it with a real one).
    pub fn start_double() -> QdrantServer {
        Self::start_kind(&QdrantKind::Double, None)
    }

    /// Which Qdrant this is.
    pub fn kind(&self) -> &QdrantKind {
        &self.kind
    }

    pub fn start_kind(kind: &QdrantKind, api_key: Option<String>) -> QdrantServer {
        if let QdrantKind::External { url, api_key: key } = kind {
            return match Self::take_external(kind, url, key.clone(), api_key) {
                Ok(server) => server,
                Err(StartError::Fatal(msg) | StartError::PortTaken(msg)) => panic!("{msg}"),
            };
        }
        let mut port_failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let attempt = match kind {
                QdrantKind::Binary(bin) => Self::try_start_binary(kind, bin, api_key.clone()),
                _ => Self::try_start_double(&super::python(), api_key.clone()),
            };
            match attempt {
                Ok(server) => return server,
                Err(StartError::PortTaken(msg)) => port_failures.push(msg),
                Err(StartError::Fatal(msg)) => panic!("{msg}"),
            }
        }
        panic!(
            "Qdrant ({}) did not start: the port was taken {START_ATTEMPTS} times in a row:\n{}",
            kind.describe(),
            port_failures.join("\n")
        );
    }

    fn take_external(
        kind: &QdrantKind,
        url: &str,
        direct_key: Option<String>,
        api_key: Option<String>,
    ) -> Result<QdrantServer, StartError> {
        let lease = EXTERNAL_SERVER.lock().unwrap_or_else(|e| e.into_inner());
        let dir = temp_dir()?;
        let log_path = dir.path().join("qdrant.log");
        let _ = std::fs::write(&log_path, format!("(a running server: {url}; its log is elsewhere)\n"));
        let agent = agent();
        let before = list_collections(&agent, url, direct_key.as_deref()).map_err(|e| {
            StartError::Fatal(format!("QDRANT_URL={url}: GET /collections failed: {e}"))
        })?;
        // The proxy plays the test's key (if any) and sends the server's own (if any).
        let key_check = (api_key.is_some() || direct_key.is_some()).then(|| KeyCheck {
            required: api_key.clone(),
            upstream: direct_key.clone(),
        });
        let proxy = RecordingProxy::start(url, key_check);
        let proxy_url = proxy.url().to_string();
        let port = proxy_url.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let grpc_url = std::env::var("QDRANT_GRPC_URL").ok().filter(|u| !u.trim().is_empty()).unwrap_or_else(|| {
            let (base, rest_port) = url.rsplit_once(':').unwrap_or((url, "6333"));
            format!("{base}:{}", rest_port.parse::<u16>().map_or(6334, |p| p + 1))
        });
        Ok(QdrantServer {
            upstream: Upstream::External {
                proxy,
                direct_url: url.to_string(),
                direct_key,
                before,
                _lease: lease,
            },
            kind: kind.clone(),
            port,
            url: proxy_url,
            grpc_url,
            api_key,
            log_path,
            agent,
            _dir: dir,
        })
    }

    fn try_start_binary(
        kind: &QdrantKind,
        bin: &Path,
        api_key: Option<String>,
    ) -> Result<QdrantServer, StartError> {
        let dir = temp_dir()?;
        let log_path = dir.path().join("qdrant.log");
        let http_port = super::free_port();
        let grpc_port = super::free_port();
        let log = File::create(&log_path)
            .map_err(|e| StartError::Fatal(format!("cannot create {}: {e}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(|e| StartError::Fatal(format!("cannot clone log file handle: {e}")))?;
        let mut cmd = Command::new(bin);
        cmd.current_dir(dir.path())
            .env("QDRANT__SERVICE__HOST", "127.0.0.1")
            .env("QDRANT__SERVICE__HTTP_PORT", http_port.to_string())
            .env("QDRANT__SERVICE__GRPC_PORT", grpc_port.to_string())
            .env("QDRANT__STORAGE__STORAGE_PATH", dir.path().join("storage"))
            .env("QDRANT__STORAGE__SNAPSHOTS_PATH", dir.path().join("snapshots"))
            .env("QDRANT__TELEMETRY_DISABLED", "true")
            .env_remove("QDRANT__SERVICE__API_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        if let Some(key) = &api_key {
            cmd.env("QDRANT__SERVICE__API_KEY", key);
        }
        let child = cmd
            .spawn()
            .map_err(|e| StartError::Fatal(format!("cannot run {}: {e}", bin.display())))?;
        let direct = format!("http://127.0.0.1:{http_port}");
        let proxy = RecordingProxy::start(&direct, None);
        let url = proxy.url().to_string();
        let server = QdrantServer {
            upstream: Upstream::Binary { child, proxy },
            kind: kind.clone(),
            port: http_port,
            url,
            grpc_url: format!("http://127.0.0.1:{grpc_port}"),
            api_key,
            log_path,
            agent: agent(),
            _dir: dir,
        };
        let listening = format!("listening on: 127.0.0.1:{http_port}");
        server.wait_ready(&listening, REAL_PORT_TAKEN_MARKER, &format!("{direct}/readyz"))
    }

    fn try_start_double(python: &Path, api_key: Option<String>) -> Result<QdrantServer, StartError> {
        let dir = temp_dir()?;
        let log_path = dir.path().join("qdrant.log");
        let port = super::free_port();
        let grpc_port = super::free_port();
        let script = server_script();
        let mut log = File::create(&log_path)
            .map_err(|e| StartError::Fatal(format!("cannot create {}: {e}", log_path.display())))?;
        let _ = writeln!(
            log,
            "$ {} {} --host 127.0.0.1 --port {port} --grpc-port {grpc_port}{}",
            python.display(),
            script.display(),
            if api_key.is_some() { " --api-key ***" } else { "" }
        );
        let log_err = log
            .try_clone()
            .map_err(|e| StartError::Fatal(format!("cannot clone log file handle: {e}")))?;

        let mut cmd = Command::new(python);
        cmd.arg(&script)
            .arg("--host")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(port.to_string())
            .arg("--grpc-port")
            .arg(grpc_port.to_string())
            .arg("--storage-dir")
            .arg(dir.path());
        if let Some(key) = &api_key {
            cmd.arg("--api-key").arg(key);
        }
        let mut child = cmd
            .current_dir(dir.path())
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .map_err(|e| StartError::Fatal(format!("cannot run {}: {e}", python.display())))?;
        let stdin = child.stdin.take();
        let url = format!("http://127.0.0.1:{port}");
        let server = QdrantServer {
            upstream: Upstream::Double { child, stdin },
            kind: QdrantKind::Double,
            port,
            url: url.clone(),
            grpc_url: format!("http://127.0.0.1:{grpc_port}"),
            api_key,
            log_path,
            agent: agent(),
            _dir: dir,
        };
        server.wait_ready(LISTENING_MARKER, PORT_TAKEN_MARKER, &format!("{url}/healthz"))
    }

    fn child(&mut self) -> Option<&mut Child> {
        match &mut self.upstream {
            Upstream::Double { child, .. } | Upstream::Binary { child, .. } => Some(child),
            Upstream::External { .. } => None,
        }
    }

    /// Waits until the log shows `marker` (so a server of someone else's that grabbed our
    /// port is not mistaken for ours) and `ready_url` answers 200.
    fn wait_ready(
        mut self,
        marker: &str,
        port_taken: &str,
        ready_url: &str,
    ) -> Result<QdrantServer, StartError> {
        let what = self.kind.describe();
        let port = self.port;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let polled = self.child().map(|c| c.try_wait());
            match polled {
                Some(Ok(Some(status))) => {
                    let tail = self.log_tail();
                    let msg = format!(
                        "{what} (port {port}) exited during startup with {status}.\n\
                         --- log tail ({}) ---\n{tail}",
                        self.log_path.display()
                    );
                    return Err(if tail.contains(port_taken) {
                        StartError::PortTaken(msg)
                    } else {
                        StartError::Fatal(msg)
                    });
                }
                Some(Err(e)) => {
                    return Err(StartError::Fatal(format!("cannot poll {what}: {e}")));
                }
                _ => {}
            }
            if self.log_contains(marker) && self.answers_200(ready_url) {
                return Ok(self);
            }
            if Instant::now() >= deadline {
                let tail = self.log_tail();
                return Err(StartError::Fatal(format!(
                    "{what} (port {port}) was not ready ({ready_url}) within {}s.\n\
                     --- log tail ({}) ---\n{tail}",
                    START_TIMEOUT.as_secs(),
                    self.log_path.display()
                )));
            }
            sleep(Duration::from_millis(50));
        }
    }

    fn answers_200(&self, url: &str) -> bool {
        self.agent
            .get(url)
            .timeout(Duration::from_secs(2))
            .call()
            .is_ok()
    }

    fn log_contains(&self, needle: &str) -> bool {
        std::fs::read(&self.log_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).contains(needle))
            .unwrap_or(false)
    }

    /// Base URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The gRPC port's URL, `http://127.0.0.1:PORT` (the server's own: no recording proxy).
    pub fn grpc_url(&self) -> &str {
        &self.grpc_url
    }

    /// The port of [`QdrantServer::direct_url`] (the server's own; for `QDRANT_URL`, the
    /// recording proxy's).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server itself, without the recording proxy a real server has in front (for
    /// measurements; requests sent here are not recorded).
    pub fn direct_url(&self) -> String {
        match &self.upstream {
            Upstream::Binary { .. } => format!("http://127.0.0.1:{}", self.port),
            Upstream::External { direct_url, .. } => direct_url.clone(),
            Upstream::Double { .. } => self.url.clone(),
        }
    }

    /// The API key the server requires, if it was started with one.
    pub fn api_key(&self) -> Option<&str> {
        self.api_key.as_deref()
    }

    /// The server's combined stdout/stderr (one access-log line per request).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        super::log_tail(&self.log_path, LOG_TAIL_LINES)
    }

    // ---- raw HTTP ---------------------------------------------------------------------

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        let req = self.agent.request(method, &format!("{}{path}", self.url));
        match &self.api_key {
            Some(key) => req.set("api-key", key),
            None => req,
        }
    }

    /// `METHOD path` with an optional JSON body, sending the API key if there is one. The whole
    /// answer (Qdrant's envelope) on 2xx; `Err((status, body))` on an HTTP error status; a
    /// transport failure (server gone) panics with the server's log tail.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, (u16, String)> {
        let req = self.request(method, path);
        let result = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        self.finish(&format!("{method} {path}"), result)
    }

    /// `METHOD path` with a raw body text (sent as `application/json`, not re-encoded, so
    /// duplicate keys and other malformed JSON reach the server as written): the status and
    /// the body text, whatever the status. A transport failure panics with the log tail.
    pub fn call_raw(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let req = self.request(method, path);
        let result = match body {
            Some(b) => req.set("Content-Type", "application/json").send_string(b),
            None => req.call(),
        };
        match result {
            Ok(resp) | Err(ureq::Error::Status(_, resp)) => {
                let status = resp.status();
                (status, resp.into_string().unwrap_or_default())
            }
            Err(ureq::Error::Transport(t)) => panic!(
                "{method} {path}: no answer from {} at {}: {t}\n--- log tail ({}) ---\n{}",
                self.kind.describe(),
                self.url,
                self.log_path.display(),
                self.log_tail()
            ),
        }
    }

    /// `GET path`; the envelope, as for [`QdrantServer::call`].
    pub fn get_json(&self, path: &str) -> Result<Value, (u16, String)> {
        self.call("GET", path, None)
    }

    /// `POST path` with a JSON body; the envelope, as for [`QdrantServer::call`].
    pub fn post_json(&self, path: &str, body: &Value) -> Result<Value, (u16, String)> {
        self.call("POST", path, Some(body))
    }

    /// `PUT path` with a JSON body; the envelope, as for [`QdrantServer::call`].
    pub fn put_json(&self, path: &str, body: &Value) -> Result<Value, (u16, String)> {
        self.call("PUT", path, Some(body))
    }

    /// The `result` of a 2xx answer; panics with the status and body otherwise.
    pub fn result(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        match self.call(method, path, body) {
            Ok(envelope) => {
                assert_eq!(envelope["status"], "ok", "{method} {path}: {envelope}");
                envelope["result"].clone()
            }
            Err((status, text)) => panic!("{method} {path}: HTTP {status}: {text}"),
        }
    }

    fn finish(
        &self,
        what: &str,
        result: Result<ureq::Response, ureq::Error>,
    ) -> Result<Value, (u16, String)> {
        match result {
            Ok(resp) => {
                let text = resp
                    .into_string()
                    .unwrap_or_else(|e| panic!("{what}: cannot read the response body: {e}"));
                if text.trim().is_empty() {
                    return Ok(Value::Null);
                }
                Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
            }
            Err(ureq::Error::Status(status, resp)) => {
                Err((status, resp.into_string().unwrap_or_default()))
            }
            Err(ureq::Error::Transport(t)) => panic!(
                "{what}: no answer from the Qdrant test server at {}: {t}\n--- log tail ({}) ---\n{}",
                self.url,
                self.log_path.display(),
                self.log_tail()
            ),
        }
    }

    // ---- typed helpers ----------------------------------------------------------------

    /// `PUT /collections/{name}` with one unnamed dense vector of `dim` floats, Cosine.
    pub fn create_collection(&self, name: &str, dim: usize) {
        let body = json!({"vectors": {"size": dim, "distance": "Cosine"}});
        let created = self.result("PUT", &format!("/collections/{name}"), Some(&body));
        assert_eq!(created, json!(true), "creating collection {name:?}");
    }

    /// `PUT /collections/{name}/points?wait=true` with points `(id, vector, payload)`; ids are
    /// JSON integers or UUID strings.
    pub fn upsert(&self, name: &str, points: &[(Value, Vec<f32>, Value)]) {
        let body = json!({
            "points": points
                .iter()
                .map(|(id, vector, payload)| json!({"id": id, "vector": vector, "payload": payload}))
                .collect::<Vec<_>>(),
        });
        let answer = self.result(
            "PUT",
            &format!("/collections/{name}/points?wait=true"),
            Some(&body),
        );
        assert_eq!(
            answer["status"], "completed",
            "upsert into {name:?}: {answer}"
        );
    }

    /// `POST …/points/scroll` with the given filter (all points when `None`), without payload;
    /// the ids, in the server's order (ascending). An HTTP error (400 for a filter the server
    /// cannot parse, 422 for one it refuses, 404 for a missing collection) is
    /// `Err((status, body))`.
    pub fn scroll_ids(
        &self,
        name: &str,
        filter: Option<&Value>,
    ) -> Result<Vec<Value>, (u16, String)> {
        let mut body = json!({"limit": 10_000, "with_payload": false});
        if let Some(f) = filter {
            body["filter"] = f.clone();
        }
        let answer = self.post_json(&format!("/collections/{name}/points/scroll"), &body)?;
        let points = answer["result"]["points"]
            .as_array()
            .unwrap_or_else(|| panic!("scroll answer without result.points: {answer}"));
        Ok(points.iter().map(|p| p["id"].clone()).collect())
    }

    /// `POST …/points/count` (exact) with the given filter; errors as for
    /// [`QdrantServer::scroll_ids`].
    pub fn count(&self, name: &str, filter: Option<&Value>) -> Result<u64, (u16, String)> {
        let mut body = json!({"exact": true});
        if let Some(f) = filter {
            body["filter"] = f.clone();
        }
        let answer = self.post_json(&format!("/collections/{name}/points/count"), &body)?;
        Ok(answer["result"]["count"]
            .as_u64()
            .unwrap_or_else(|| panic!("count answer without result.count: {answer}")))
    }

    /// Every request the server received since start (or the last clear), oldest first, each
    /// `{"method", "path", "query", "headers", "body"}` (headers lower-cased; body as JSON when
    /// it parses, else a string). **Test-only**: from the double's `/__test__/requests`
    /// route, or from the recording proxy in front of a real server.
    pub fn recorded_requests(&self) -> Vec<Value> {
        match &self.upstream {
            Upstream::Binary { proxy, .. } | Upstream::External { proxy, .. } => proxy.records(),
            Upstream::Double { .. } => {
                let answer = self
                    .agent
                    .get(&format!("{}/__test__/requests", self.url))
                    .call()
                    .map_err(|e| format!("{e}"))
                    .and_then(|r| r.into_json::<Value>().map_err(|e| format!("{e}")))
                    .unwrap_or_else(|e| panic!("GET /__test__/requests: {e}\n{}", self.log_tail()));
                answer["result"]
                    .as_array()
                    .unwrap_or_else(|| panic!("GET /__test__/requests: no result array: {answer}"))
                    .clone()
            }
        }
    }

    /// Forgets the recorded requests.
    pub fn clear_recorded_requests(&self) {
        match &self.upstream {
            Upstream::Binary { proxy, .. } | Upstream::External { proxy, .. } => {
                proxy.clear();
            }
            Upstream::Double { .. } => {
                self.agent
                    .delete(&format!("{}/__test__/requests", self.url))
                    .call()
                    .unwrap_or_else(|e| panic!("DELETE /__test__/requests: {e}\n{}", self.log_tail()));
            }
        }
    }

    /// `GET /` — `{"title", "version", …}`: which server answers.
    pub fn version(&self) -> String {
        self.get_json("/")
            .ok()
            .and_then(|v| v["version"].as_str().map(str::to_string))
            .unwrap_or_else(|| "unknown".into())
    }
}

fn list_collections(agent: &ureq::Agent, url: &str, key: Option<&str>) -> Result<BTreeSet<String>, String> {
    let mut req = agent.get(&format!("{url}/collections"));
    if let Some(k) = key {
        req = req.set("api-key", k);
    }
    let answer: Value = req
        .call()
        .map_err(|e| e.to_string())?
        .into_json()
        .map_err(|e| e.to_string())?;
    Ok(answer["result"]["collections"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["name"].as_str().map(str::to_string)).collect())
        .unwrap_or_default())
}

impl Drop for QdrantServer {
    fn drop(&mut self) {
        match &mut self.upstream {
            Upstream::Double { child, stdin } => {
                drop(stdin.take());
                let _ = child.kill();
                let _ = child.wait();
            }
            Upstream::Binary { child, .. } => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Upstream::External { direct_url, direct_key, before, .. } => {
                // Leave the server as it was: delete what this test created.
                let now = list_collections(&self.agent, direct_url, direct_key.as_deref()).unwrap_or_default();
                for name in now.difference(before) {
                    let mut req = self.agent.delete(&format!("{direct_url}/collections/{name}"));
                    if let Some(k) = direct_key.as_deref() {
                        req = req.set("api-key", k);
                    }
                    let _ = req.call();
                }
            }
        }
    }
}
