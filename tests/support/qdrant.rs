//! The Qdrant-compatible REST **test double** (`tests/qdrant_server/server.py`, built on
//! qdrant-client's local mode) for integration tests, plus a small blocking client for seeding
//! data and checking what the server answers. See `tests/qdrant_server/README.md` for what it
//! is and is not; vecgate itself must never depend on anything only this double does (such as
//! its `/__test__/requests` route).
//!
//! ```ignore
//! let qdrant = QdrantServer::start();
//! qdrant.create_collection("docs", 4);
//! qdrant.upsert("docs", &[(json!(1), vec![1.0, 0.0, 0.0, 0.0], json!({"dept": "eng"}))]);
//! let filter = json!({"must": [{"key": "dept", "match": {"value": "eng"}}]});
//! assert_eq!(qdrant.scroll_ids("docs", Some(&filter)), Ok(vec![json!(1)]));
//! ```

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

/// What the server prints once it has bound its port.
const LISTENING_MARKER: &str = "qdrant test server listening on";
/// What it prints (before exiting with status 3) when the port is already taken.
const PORT_TAKEN_MARKER: &str = "cannot bind";

const START_ATTEMPTS: usize = 5;
const START_TIMEOUT: Duration = Duration::from_secs(30);
const LOG_TAIL_LINES: usize = 40;

/// A running test server on a free loopback port. Its data lives in memory. Dropping it closes
/// its stdin (the server exits when stdin closes, so a killed test leaves no orphan), kills it
/// and waits for it.
pub struct QdrantServer {
    child: Child,
    /// Held open for the server's lifetime; closing it stops the server.
    stdin: Option<ChildStdin>,
    port: u16,
    url: String,
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

impl QdrantServer {
    /// Starts a fresh server without authentication and waits until it answers `/healthz`.
    /// Panics (failing the test) if the venv is missing or the server does not come up; the
    /// message includes the tail of the server's log.
    pub fn start() -> QdrantServer {
        Self::start_inner(None)
    }

    /// Like [`QdrantServer::start`], but every route except `/`, `/healthz`, `/livez`,
    /// `/readyz` (and the test-only `/__test__/requests`) requires `api-key: KEY` or
    /// `Authorization: Bearer KEY`, as a Qdrant server with `service.api_key` does.
    /// The helpers below send the key.
    pub fn start_with_api_key(key: &str) -> QdrantServer {
        Self::start_inner(Some(key.to_string()))
    }

    fn start_inner(api_key: Option<String>) -> QdrantServer {
        let python = super::python();
        let mut port_failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(&python, api_key.clone()) {
                Ok(server) => return server,
                Err(StartError::PortTaken(msg)) => port_failures.push(msg),
                Err(StartError::Fatal(msg)) => panic!("{msg}"),
            }
        }
        panic!(
            "Qdrant test server did not start: the port was taken {START_ATTEMPTS} times in a \
             row:\n{}",
            port_failures.join("\n")
        );
    }

    fn try_start(python: &Path, api_key: Option<String>) -> Result<QdrantServer, StartError> {
        let dir = tempfile::Builder::new()
            .prefix("vecgate-qdrant-")
            .tempdir()
            .map_err(|e| StartError::Fatal(format!("cannot create a temp dir: {e}")))?;
        let log_path = dir.path().join("qdrant.log");
        let port = super::free_port();
        let script = server_script();
        let mut log = File::create(&log_path)
            .map_err(|e| StartError::Fatal(format!("cannot create {}: {e}", log_path.display())))?;
        let _ = writeln!(
            log,
            "$ {} {} --host 127.0.0.1 --port {port}{}",
            python.display(),
            script.display(),
            if api_key.is_some() {
                " --api-key ***"
            } else {
                ""
            }
        );
        let log_err = log
            .try_clone()
            .map_err(|e| StartError::Fatal(format!("cannot clone log file handle: {e}")))?;

        let mut cmd = Command::new(python);
        cmd.arg(&script)
            .arg("--host")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(port.to_string());
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

        let agent = ureq::AgentBuilder::new()
            .try_proxy_from_env(false)
            .timeout_connect(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .build();
        let url = format!("http://127.0.0.1:{port}");
        let mut server = QdrantServer {
            child,
            stdin,
            port,
            url,
            api_key,
            log_path,
            agent,
            _dir: dir,
        };

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match server.child.try_wait() {
                Ok(Some(status)) => {
                    let tail = server.log_tail();
                    let msg = format!(
                        "Qdrant test server (port {port}) exited during startup with {status}.\n\
                         --- log tail ({}) ---\n{tail}",
                        server.log_path.display()
                    );
                    return Err(if tail.contains(PORT_TAKEN_MARKER) {
                        StartError::PortTaken(msg)
                    } else {
                        StartError::Fatal(msg)
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(StartError::Fatal(format!(
                        "cannot poll the Qdrant test server process: {e}"
                    )))
                }
            }
            // The marker is checked first so a /healthz answered by some other server that
            // grabbed our port is not mistaken for ours.
            if server.log_contains(LISTENING_MARKER) && server.healthz_ok() {
                return Ok(server);
            }
            if Instant::now() >= deadline {
                let tail = server.log_tail();
                return Err(StartError::Fatal(format!(
                    "Qdrant test server (port {port}) did not answer GET /healthz within {}s.\n\
                     --- log tail ({}) ---\n{tail}",
                    START_TIMEOUT.as_secs(),
                    server.log_path.display()
                )));
            }
            sleep(Duration::from_millis(50));
        }
    }

    fn healthz_ok(&self) -> bool {
        self.agent
            .get(&format!("{}/healthz", self.url))
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

    pub fn port(&self) -> u16 {
        self.port
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
    /// it parses, else a string). **Test-only**: real Qdrant has no such route.
    pub fn recorded_requests(&self) -> Vec<Value> {
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

    /// Forgets the recorded requests (`DELETE /__test__/requests`).
    pub fn clear_recorded_requests(&self) {
        self.agent
            .delete(&format!("{}/__test__/requests", self.url))
            .call()
            .unwrap_or_else(|e| panic!("DELETE /__test__/requests: {e}\n{}", self.log_tail()));
    }
}

impl Drop for QdrantServer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
