//! A real Chroma server (the Rust server inside the `chromadb` wheel) for integration tests,
//! plus a small blocking client for seeding data and checking what the server answers.
//!
//! ```ignore
//! let chroma = ChromaServer::start();
//! let col = chroma.create_collection("docs");
//! chroma.add(&col, &[("a".into(), json!({"dept": "eng"}), vec![1.0, 0.0])]);
//! assert_eq!(chroma.get_ids(&col, Some(&json!({"dept": "eng"}))), Ok(vec!["a".to_string()]));
//! ```

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

/// `/api/v2/tenants/default_tenant/databases/default_database`, the prefix of collection routes.
pub const DEFAULT_DB_PATH: &str = "/api/v2/tenants/default_tenant/databases/default_database";

/// How the server is started: the `chroma run` CLI from the chromadb wheel, called in-process
/// exactly as the `chroma` console script does. A watcher thread ends the process when its stdin
/// closes, i.e. when the test process is gone, even if it was killed before `Drop` could run.
/// If `cli` returns (for example because the port was taken), exit with status 3.
const SERVER_SCRIPT: &str = r#"
import os, sys, threading
def _exit_when_parent_is_gone():
    try:
        sys.stdin.buffer.read()
    finally:
        os._exit(0)
threading.Thread(target=_exit_when_parent_is_gone, daemon=True).start()
import chromadb_rust_bindings as c
c.cli(['chroma', 'run', '--path', sys.argv[1], '--host', '127.0.0.1', '--port', sys.argv[2]])
sys.stdout.flush()
os._exit(3)
"#;

/// What the server logs once it has bound its port. Checked, together with the heartbeat, so a
/// heartbeat answered by some other server that grabbed our port first is not mistaken for ours.
const LISTENING_MARKER: &str = "listening on address";
/// What it prints when the port is already taken.
const PORT_TAKEN_MARKER: &str = "is not available";

const START_ATTEMPTS: usize = 5;
const START_TIMEOUT: Duration = Duration::from_secs(30);
const LOG_TAIL_LINES: usize = 40;

/// A running Chroma server on a free loopback port with its own temporary data directory.
/// Dropping it kills the server, waits for it, and deletes the data.
pub struct ChromaServer {
    child: Child,
    /// Held open for the server's lifetime; see [`SERVER_SCRIPT`].
    stdin: Option<ChildStdin>,
    port: u16,
    url: String,
    log_path: PathBuf,
    agent: ureq::Agent,
    // Last: removed after the process is gone.
    _dir: TempDir,
}

enum StartError {
    /// Someone else bound the port between our probe and the server's bind: try another port.
    PortTaken(String),
    /// Anything else: retrying would not help.
    Fatal(String),
}

impl ChromaServer {
    /// Starts a fresh server and waits until it answers `GET /api/v2/heartbeat`.
    /// Panics (failing the test) if the venv is missing or the server does not come up; the
    /// message includes the tail of the server's log.
    pub fn start() -> ChromaServer {
        let python = super::python();
        let mut port_failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(&python) {
                Ok(server) => return server,
                Err(StartError::PortTaken(msg)) => port_failures.push(msg),
                Err(StartError::Fatal(msg)) => panic!("{msg}"),
            }
        }
        panic!(
            "Chroma server did not start: the port was taken {START_ATTEMPTS} times in a row:\n{}",
            port_failures.join("\n")
        );
    }

    fn try_start(python: &Path) -> Result<ChromaServer, StartError> {
        let dir = tempfile::Builder::new()
            .prefix("vecgate-chroma-")
            .tempdir()
            .map_err(|e| StartError::Fatal(format!("cannot create a temp dir: {e}")))?;
        let data_dir = dir.path().join("data");
        let log_path = dir.path().join("chroma.log");
        let port = super::free_port();
        let mut log = File::create(&log_path)
            .map_err(|e| StartError::Fatal(format!("cannot create {}: {e}", log_path.display())))?;
        let _ = writeln!(
            log,
            "$ {} -c <chroma run script> {} {port}",
            python.display(),
            data_dir.display()
        );
        let log_err = log
            .try_clone()
            .map_err(|e| StartError::Fatal(format!("cannot clone log file handle: {e}")))?;

        let mut child = Command::new(python)
            .arg("-c")
            .arg(SERVER_SCRIPT)
            .arg(&data_dir)
            .arg(port.to_string())
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .env("ANONYMIZED_TELEMETRY", "False")
            .stdin(Stdio::piped())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .map_err(|e| StartError::Fatal(format!("cannot run {}: {e}", python.display())))?;
        let stdin = child.stdin.take();

        let agent = ureq::AgentBuilder::new()
            .try_proxy_from_env(false)
            .timeout_connect(Duration::from_secs(5))
            .timeout(Duration::from_secs(120))
            .build();
        let url = format!("http://127.0.0.1:{port}");
        let mut server = ChromaServer {
            child,
            stdin,
            port,
            url,
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
                        "Chroma server (port {port}) exited during startup with {status}.\n\
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
                        "cannot poll the Chroma process: {e}"
                    )))
                }
            }
            if server.heartbeat_ok() && server.log_contains(LISTENING_MARKER) {
                return Ok(server);
            }
            if Instant::now() >= deadline {
                // Returning drops `server`, which kills the process.
                let tail = server.log_tail();
                return Err(StartError::Fatal(format!(
                    "Chroma server (port {port}) did not answer GET /api/v2/heartbeat within {}s.\n\
                     --- log tail ({}) ---\n{tail}",
                    START_TIMEOUT.as_secs(),
                    server.log_path.display()
                )));
            }
            sleep(Duration::from_millis(50));
        }
    }

    fn heartbeat_ok(&self) -> bool {
        self.agent
            .get(&format!("{}/api/v2/heartbeat", self.url))
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

    /// The server's process id (the Python process hosting Chroma's Rust server).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's combined stdout/stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        super::log_tail(&self.log_path, LOG_TAIL_LINES)
    }

    /// `/api/v2/tenants/default_tenant/databases/default_database/collections/{id}`.
    pub fn collection_path(collection_id: &str) -> String {
        format!("{DEFAULT_DB_PATH}/collections/{collection_id}")
    }

    // ---- raw HTTP ---------------------------------------------------------------------

    /// `GET path` (path starts with `/`). HTTP error statuses come back as `Err((status, body))`;
    /// a transport failure (server gone) panics with the server's log tail.
    pub fn get_json(&self, path: &str) -> Result<Value, (u16, String)> {
        let req = self.agent.get(&format!("{}{path}", self.url));
        self.finish(&format!("GET {path}"), req.call())
    }

    /// `POST path` with a JSON body; results as for [`ChromaServer::get_json`].
    pub fn post_json(&self, path: &str, body: &Value) -> Result<Value, (u16, String)> {
        let req = self.agent.post(&format!("{}{path}", self.url));
        self.finish(&format!("POST {path}"), req.send_json(body))
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
                Ok(serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{what}: response is not JSON ({e}): {text}")))
            }
            Err(ureq::Error::Status(status, resp)) => {
                Err((status, resp.into_string().unwrap_or_default()))
            }
            Err(ureq::Error::Transport(t)) => panic!(
                "{what}: no answer from the Chroma server at {}: {t}\n--- log tail ({}) ---\n{}",
                self.url,
                self.log_path.display(),
                self.log_tail()
            ),
        }
    }

    // ---- typed helpers ----------------------------------------------------------------

    /// The server's `max_batch_size` (from `GET /api/v2/pre-flight-checks`).
    pub fn max_batch_size(&self) -> usize {
        let checks = self
            .get_json("/api/v2/pre-flight-checks")
            .unwrap_or_else(|e| panic!("GET /api/v2/pre-flight-checks failed: {e:?}"));
        checks["max_batch_size"]
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n > 0)
            .unwrap_or_else(|| panic!("pre-flight-checks has no usable max_batch_size: {checks}"))
    }

    /// Creates a collection in the default tenant and database; returns its UUID.
    /// Names: 3–512 characters of `[a-zA-Z0-9._-]`, starting and ending alphanumeric.
    pub fn create_collection(&self, name: &str) -> String {
        let path = format!("{DEFAULT_DB_PATH}/collections");
        let created = self
            .post_json(&path, &json!({ "name": name }))
            .unwrap_or_else(|(status, body)| {
                panic!("creating collection {name:?}: HTTP {status}: {body}")
            });
        created["id"]
            .as_str()
            .unwrap_or_else(|| panic!("creating collection {name:?}: no id in {created}"))
            .to_string()
    }

    /// Adds records `(id, metadata, embedding)` without documents, in batches below the
    /// server's `max_batch_size`. A metadata of `Value::Null` stores a record without metadata.
    /// Note that Chroma silently ignores an `add` for an id that already exists.
    pub fn add(&self, collection_id: &str, records: &[(String, Value, Vec<f32>)]) {
        let path = format!("{}/add", Self::collection_path(collection_id));
        let batch = self.max_batch_size();
        for chunk in records.chunks(batch) {
            let body = json!({
                "ids": chunk.iter().map(|r| &r.0).collect::<Vec<_>>(),
                "metadatas": chunk.iter().map(|r| &r.1).collect::<Vec<_>>(),
                "embeddings": chunk.iter().map(|r| &r.2).collect::<Vec<_>>(),
            });
            if let Err((status, body)) = self.post_json(&path, &body) {
                panic!(
                    "adding {} records to {collection_id}: HTTP {status}: {body}",
                    chunk.len()
                );
            }
        }
    }

    /// `POST …/get` with `include: []` and the given `where`; the matching ids, **sorted**.
    /// An HTTP error (for example 400 for a `where` the server refuses) is `Err((status, body))`.
    pub fn get_ids(
        &self,
        collection_id: &str,
        where_: Option<&Value>,
    ) -> Result<Vec<String>, (u16, String)> {
        let path = format!("{}/get", Self::collection_path(collection_id));
        let mut body = json!({ "include": [] });
        if let Some(w) = where_ {
            body["where"] = w.clone();
        }
        let answer = self.post_json(&path, &body)?;
        let mut ids = string_array(&answer["ids"], &answer);
        ids.sort();
        Ok(ids)
    }

    /// `POST …/query` for one embedding with `include: []`; the ids of the `n_results` nearest
    /// matches, **nearest first** (sort them to compare as a set). Errors as for
    /// [`ChromaServer::get_ids`].
    pub fn query_ids(
        &self,
        collection_id: &str,
        embedding: &[f32],
        n_results: usize,
        where_: Option<&Value>,
    ) -> Result<Vec<String>, (u16, String)> {
        let path = format!("{}/query", Self::collection_path(collection_id));
        let mut body = json!({
            "query_embeddings": [embedding],
            "n_results": n_results,
            "include": [],
        });
        if let Some(w) = where_ {
            body["where"] = w.clone();
        }
        let answer = self.post_json(&path, &body)?;
        let per_query = answer["ids"]
            .as_array()
            .filter(|a| a.len() == 1)
            .unwrap_or_else(|| {
                panic!("query answer should hold one id list per query embedding: {answer}")
            });
        Ok(string_array(&per_query[0], &answer))
    }
}

/// The ids in a Chroma answer (`get`'s list, or `query`'s list per query embedding), as a set.
pub fn answer_ids(answer: &Value) -> BTreeSet<String> {
    let ids = answer["ids"].as_array().unwrap_or_else(|| panic!("no ids in {answer}"));
    ids.iter()
        .flat_map(|i| match i {
            Value::Array(inner) => inner.clone(),
            other => vec![other.clone()],
        })
        .map(|i| i.as_str().unwrap_or_else(|| panic!("a non-string id in {answer}")).to_string())
        .collect()
}

/// `["a", "b"]` as a set of owned strings, to compare with [`answer_ids`].
pub fn string_set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_string()).collect()
}

fn string_array(v: &Value, whole: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array of ids in {whole}"))
        .iter()
        .map(|id| {
            id.as_str()
                .unwrap_or_else(|| panic!("expected string ids in {whole}"))
                .to_string()
        })
        .collect()
}

impl Drop for ChromaServer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
