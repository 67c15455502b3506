//! A real Prometheus server (Debian's `prometheus` package, obtained by scripts/prometheus.sh
//! without root and cached in .tmp/prometheus/) for integration tests: it scrapes the given
//! targets and evaluates the given rule files every second, on a free loopback port, with its
//! own data directory; stopped on drop. Only its HTTP API is used.
//!
//! If the binary cannot be obtained the test fails with scripts/prometheus.sh's account of
//! what it tried: nothing is skipped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

const START_ATTEMPTS: usize = 5;
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// The job name of the scraped targets (the alert rules keep `job` and `instance`).
pub const JOB: &str = "vecgate";

pub struct PrometheusServer {
    child: Child,
    url: String,
    config_path: PathBuf,
    rule_files: Vec<PathBuf>,
    log_path: PathBuf,
    agent: ureq::Agent,
    _dir: TempDir,
}

/// The Prometheus binary, from scripts/prometheus.sh; panics with its explanation if none.
pub fn binary() -> PathBuf {
    let root = super::repo_root();
    let output = Command::new("bash")
        .arg(root.join("scripts/prometheus.sh"))
        .current_dir(root)
        .output()
        .expect("run bash scripts/prometheus.sh");
    assert!(
        output.status.success(),
        "scripts/prometheus.sh could not obtain Debian's prometheus package (it needs `apt-get \
         download` or the Debian mirror in /etc/apt/sources.list*; run `apt-get update` once):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    assert!(path.is_file(), "scripts/prometheus.sh printed {path:?}, which is not a file");
    path
}

fn config(rule_files: &[PathBuf], targets: &[&str]) -> String {
    let rules: Vec<String> = rule_files.iter().map(|f| format!("  - {:?}\n", f.display().to_string())).collect();
    let targets: Vec<String> = targets.iter().map(|t| format!("{t:?}")).collect();
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n{}\
         scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n      - targets: [{}]\n",
        rules.concat(),
        targets.join(", ")
    )
}

impl PrometheusServer {
    /// Starts Prometheus scraping `targets` (`host:port` of /metrics) and evaluating
    /// `rule_files` as they are (by absolute path), both every second.
    pub fn start(rule_files: &[PathBuf], targets: &[&str]) -> PrometheusServer {
        let binary = binary();
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::Builder::new().prefix("vecgate-prometheus-").tempdir().unwrap();
            let config_path = dir.path().join("prometheus.yml");
            std::fs::write(&config_path, config(rule_files, targets)).unwrap();
            let log_path = dir.path().join("prometheus.log");
            let log = std::fs::File::create(&log_path).unwrap();
            let port = super::free_port();
            let child = Command::new(&binary)
                .arg(format!("--config.file={}", config_path.display()))
                .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                // POST /-/reload, for tests that change the targets.
                .arg("--web.enable-lifecycle")
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
            let mut server = PrometheusServer {
                child,
                url: format!("http://127.0.0.1:{port}"),
                config_path,
                rule_files: rule_files.to_vec(),
                log_path,
                agent: ureq::AgentBuilder::new()
                    .try_proxy_from_env(false)
                    .timeout(Duration::from_secs(30))
                    .build(),
                _dir: dir,
            };
            match server.wait_ready() {
                Ok(()) => return server,
                // Most likely the port was taken meanwhile: try another one.
                Err(log) => last = log,
            }
        }
        panic!("Prometheus did not start:\n{last}");
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("prometheus exited with {status}:\n{}", self.log_tail()));
            }
            if let Ok(response) = self.agent.get(&format!("{}/-/ready", self.url)).call() {
                if response.status() == 200 {
                    return Ok(());
                }
            }
            sleep(Duration::from_millis(100));
        }
        Err(format!("prometheus was not ready in time:\n{}", self.log_tail()))
    }

    /// Replaces the scraped targets (configuration reload; the rule files stay).
    pub fn set_targets(&self, targets: &[&str]) {
        std::fs::write(&self.config_path, config(&self.rule_files, targets)).unwrap();
        match self.agent.post(&format!("{}/-/reload", self.url)).call() {
            Ok(_) => {}
            Err(e) => panic!("POST /-/reload: {e}\n{}", self.log_tail()),
        }
    }

    pub fn log_tail(&self) -> String {
        super::log_tail(&self.log_path, 40)
    }

    /// `GET /api/v1/{path_and_query}`'s `data`; panics unless the status is "success".
    pub fn api(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let mut request = self.agent.get(&format!("{}/api/v1/{path}", self.url));
        for (k, v) in query {
            request = request.query(k, v);
        }
        let text = match request.call() {
            Ok(r) => r.into_string().unwrap(),
            Err(ureq::Error::Status(code, r)) => {
                panic!("/api/v1/{path} {query:?}: HTTP {code}: {}", r.into_string().unwrap_or_default())
            }
            Err(e) => panic!("/api/v1/{path}: {e}\n{}", self.log_tail()),
        };
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(answer["status"], "success", "/api/v1/{path} {query:?}: {answer}");
        answer["data"].clone()
    }

    /// An instant query now: the result vector.
    pub fn query(&self, expr: &str) -> Vec<Value> {
        self.query_at(expr, None)
    }

    /// An instant query at `time` (Unix seconds), or now.
    pub fn query_at(&self, expr: &str, time: Option<f64>) -> Vec<Value> {
        let time = time.map(|t| format!("{t:.3}"));
        let mut params = vec![("query", expr)];
        if let Some(t) = &time {
            params.push(("time", t.as_str()));
        }
        let data = self.api("query", &params);
        data["result"].as_array().cloned().unwrap_or_default()
    }

    /// A range query from `start` to `end` (Unix seconds) every `step` seconds: the matrix.
    pub fn query_range(&self, expr: &str, start: f64, end: f64, step: f64) -> Vec<Value> {
        let (start, end, step) = (format!("{start:.3}"), format!("{end:.3}"), format!("{step}"));
        let data = self.api("query_range", &[("query", expr), ("start", &start), ("end", &end), ("step", &step)]);
        data["result"].as_array().cloned().unwrap_or_default()
    }

    /// Every alert pending or firing now.
    pub fn alerts(&self) -> Vec<Value> {
        self.api("alerts", &[])["alerts"].as_array().cloned().unwrap_or_default()
    }

    /// Every alerting rule, with its health, state, last evaluation and `for` (`duration`).
    pub fn alerting_rules(&self) -> Vec<Value> {
        let data = self.api("rules", &[("type", "alert")]);
        data["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// The rule groups' last evaluation times, as Prometheus reports them.
    pub fn last_evaluations(&self) -> Vec<String> {
        let data = self.api("rules", &[]);
        data["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| g["lastEvaluation"].as_str().unwrap_or("").to_string())
            .collect()
    }

    /// Returns once every rule group has been evaluated `n` more times, so that every rule
    /// has seen whatever was scraped before the call.
    pub fn wait_evaluations(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = self.last_evaluations();
        let mut seen = 0;
        while seen < n {
            assert!(Instant::now() < deadline, "rules not evaluated for a minute:\n{}", self.log_tail());
            sleep(Duration::from_millis(100));
            let now = self.last_evaluations();
            if now.iter().zip(&last).all(|(a, b)| a != b) {
                seen += 1;
                last = now;
            }
        }
    }

    /// Polls `check` every 100 ms until it returns `Some`, for at most `limit`.
    pub fn wait_for<T>(&self, what: &str, limit: Duration, mut check: impl FnMut(&Self) -> Option<T>) -> T {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(found) = check(self) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not seen within {}s; alerts now: {:?}\n{}",
                limit.as_secs(),
                self.alerts(),
                self.log_tail()
            );
            sleep(Duration::from_millis(100));
        }
    }

    /// The rule file of the repository, by absolute path.
    pub fn shipped_rules() -> PathBuf {
        super::repo_root().join("deploy/prometheus/vecgate-alerts.yaml")
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first sample value of an instant-query result element.
pub fn sample_value(element: &Value) -> f64 {
    element["value"][1].as_str().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
}
