//! The real `vecgate` binary for integration tests: started with a generated configuration
//! on a free loopback port in front of a given upstream, stopped on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tempfile::TempDir;

pub const TEST_SECRET: &str = "vecgate-test-secret-0123456789abcdef";
pub const ISSUER: &str = "https://idp.test";
pub const AUDIENCE: &str = "vecgate";

const START_ATTEMPTS: usize = 5;
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// What to put in the configuration besides listen/upstream/auth.
#[derive(Clone)]
pub struct VecgateOptions {
    pub upstream_kind: &'static str,
    pub upstream_url: String,
    pub policies_dir: PathBuf,
    /// YAML for the `collections:` list (indented as a top-level key's value).
    pub collections_yaml: String,
    /// Extra top-level YAML appended verbatim (limits, mode, …).
    pub extra_yaml: String,
    pub upstream_timeout: &'static str,
    /// Replaces the default HS256 `auth:` section: its body, each line indented by two
    /// spaces (for example a `jwks_url`).
    pub auth_yaml: Option<String>,
    /// `policies.watch` (reload on change and SIGHUP).
    pub policies_watch: bool,
    /// `policies.evaluation` (default `cerbos`).
    pub policies_evaluation: &'static str,
    /// `upstream.tls.ca_file`.
    pub upstream_ca_file: Option<PathBuf>,
    /// Extra environment variables for the vecgate process.
    pub env: Vec<(String, String)>,
    /// The database's own API key (sent upstream as `api-key`), when it needs one.
    pub upstream_api_key: Option<String>,
    /// Replaces the `audit:` section's body (default: a file in the server's temp dir).
    pub audit_yaml: Option<String>,
    /// The database's gRPC URL: vecgate then also listens for gRPC (`grpc_listen`).
    pub upstream_grpc_url: Option<String>,
    /// Another vecgate binary to run instead of the one cargo built (the load harness runs
    /// an older build beside the current one).
    pub binary: Option<PathBuf>,
    /// `policies.pdp` (its body, each line indented by four spaces) instead of
    /// `policies.dir`: decisions from a Cerbos PDP.
    pub policies_pdp_yaml: Option<String>,
}

impl VecgateOptions {
    pub fn chroma(upstream_url: &str, policies_dir: &Path) -> VecgateOptions {
        VecgateOptions {
            upstream_kind: "chroma",
            upstream_url: upstream_url.to_string(),
            policies_dir: policies_dir.to_path_buf(),
            collections_yaml: "  - name: \"*\"\n    resource_kind: document\n".to_string(),
            extra_yaml: String::new(),
            upstream_timeout: "10s",
            auth_yaml: None,
            policies_watch: false,
            policies_evaluation: "cerbos",
            upstream_ca_file: None,
            env: Vec::new(),
            upstream_api_key: None,
            audit_yaml: None,
            upstream_grpc_url: None,
            binary: None,
            policies_pdp_yaml: None,
        }
    }

    /// In front of Qdrant (payload attributes under `metadata.`, LangChain's layout).
    pub fn qdrant(upstream_url: &str, policies_dir: &Path) -> VecgateOptions {
        VecgateOptions {
            upstream_kind: "qdrant",
            ..VecgateOptions::chroma(upstream_url, policies_dir)
        }
    }
}

pub struct VecgateServer {
    child: Child,
    url: String,
    /// `/metrics`, `/healthz`, `/readyz`.
    admin_url: String,
    /// The gRPC listener, where one was asked for.
    grpc_url: Option<String>,
    log_path: PathBuf,
    audit_path: PathBuf,
    agent: ureq::Agent,
    _dir: TempDir,
}

impl VecgateServer {
    pub fn start(options: &VecgateOptions) -> VecgateServer {
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::tempdir().expect("temp dir");
            let port = super::free_port();
            let admin_port = super::free_port();
            let grpc_port = super::free_port();
            let grpc_yaml = match &options.upstream_grpc_url {
                Some(url) => (format!("grpc_listen: 127.0.0.1:{grpc_port}\n"), format!("  grpc_url: {url}\n")),
                None => (String::new(), String::new()),
            };
            let audit_path = dir.path().join("audit.jsonl");
            let auth = options.auth_yaml.clone().unwrap_or_else(|| {
                format!(
                    "  issuer: {ISSUER}\n  audience: {AUDIENCE}\n  algorithms: [HS256]\n  \
                     hs256_secret_env: VECGATE_TEST_JWT_SECRET\n  leeway: 5s\n  \
                     principal:\n    id: sub\n    roles: roles\n"
                )
            });
            let config = format!(
                "listen: 127.0.0.1:{port}\nadmin_listen: 127.0.0.1:{admin_port}\n{grpc_listen}\
                 upstream:\n  kind: {kind}\n  url: {url}\n  timeout: {timeout}\n{grpc_url}{upstream_tls}{api_key}\
                 auth:\n{auth}\
                 policies:\n{policies}\
                 collections:\n{collections}\
                 audit:\n{audit}\
                 {extra}",
                kind = options.upstream_kind,
                grpc_listen = grpc_yaml.0,
                grpc_url = grpc_yaml.1,
                url = options.upstream_url,
                timeout = options.upstream_timeout,
                upstream_tls = match &options.upstream_ca_file {
                    Some(ca) => format!("  tls:\n    ca_file: {}\n", ca.display()),
                    None => String::new(),
                },
                api_key = if options.upstream_api_key.is_some() {
                    "  api_key_env: VECGATE_TEST_UPSTREAM_KEY\n"
                } else {
                    ""
                },
                policies = match &options.policies_pdp_yaml {
                    Some(pdp) => format!("  pdp:\n{pdp}"),
                    // The default mode is left implicit, so that older builds the load harness
                    // runs beside this one (which lack the key) read the same file.
                    None => format!(
                        "  dir: {}\n  watch: {}\n{}",
                        options.policies_dir.display(),
                        options.policies_watch,
                        match options.policies_evaluation {
                            "cerbos" => String::new(),
                            mode => format!("  evaluation: {mode}\n"),
                        }
                    ),
                },
                collections = options.collections_yaml,
                audit = options
                    .audit_yaml
                    .clone()
                    .unwrap_or_else(|| format!("  path: {}\n", audit_path.display())),
                extra = options.extra_yaml,
            );
            let config_path = dir.path().join("vecgate.yaml");
            std::fs::write(&config_path, config).expect("write config");
            let log_path = dir.path().join("vecgate.log");
            let log = std::fs::File::create(&log_path).expect("log file");
            let binary = options.binary.clone().unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_vecgate")));
            let child = Command::new(&binary)
                .args(["serve", "--config"])
                .arg(&config_path)
                .env("VECGATE_TEST_JWT_SECRET", TEST_SECRET)
                .env("RUST_LOG", "info")
                .envs(options.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .envs(options.upstream_api_key.iter().map(|k| ("VECGATE_TEST_UPSTREAM_KEY", k.as_str())))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn vecgate");
            let mut server = VecgateServer {
                child,
                url: format!("http://127.0.0.1:{port}"),
                admin_url: format!("http://127.0.0.1:{admin_port}"),
                grpc_url: options.upstream_grpc_url.as_ref().map(|_| format!("http://127.0.0.1:{grpc_port}")),
                log_path,
                audit_path,
                agent: ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build(),
                _dir: dir,
            };
            match server.wait_until_listening() {
                Ok(()) => return server,
                // Most likely the port was taken meanwhile: try another one.
                Err(log) => last_log = log,
            }
        }
        panic!("vecgate did not start:\n{last_log}");
    }

    fn wait_until_listening(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("vecgate exited with {status}:\n{}", self.log_tail()));
            }
            if super::log_tail(&self.log_path, 200).contains("vecgate listening") {
                return Ok(());
            }
            sleep(Duration::from_millis(25));
        }
        Err(format!("vecgate did not start in time:\n{}", self.log_tail()))
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The proxy listener's port.
    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port in url")
    }

    /// The vecgate process id (to send it signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// The gRPC listener's URL (panics when the server was started without one).
    pub fn grpc_url(&self) -> &str {
        self.grpc_url.as_deref().expect("vecgate was started without upstream_grpc_url")
    }

    /// The sum of a counter or histogram count across its series on `/metrics`.
    pub fn metric_sum(&self, name: &str) -> f64 {
        let (_, text) = self.admin_get("/metrics");
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum()
    }

    /// GET on the admin listener: status and body text.
    pub fn admin_get(&self, path: &str) -> (u16, String) {
        match self.agent.get(&format!("{}{}", self.admin_url, path)).call() {
            Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
            Err(e) => panic!("admin {path}: {e}\n{}", self.log_tail()),
        }
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            sleep(Duration::from_millis(20));
        }
        None
    }

    /// The configuration file the server was started with (for the CLI's `--config`).
    pub fn config_path(&self) -> PathBuf {
        self._dir.path().join("vecgate.yaml")
    }

    pub fn log_tail(&self) -> String {
        super::log_tail(&self.log_path, 60)
    }

    /// Every audit line written so far, parsed.
    pub fn audit_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.audit_path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
            .collect()
    }

    /// Sends a request with an optional bearer token; returns the status and the body as JSON
    /// (or as a JSON string when it is not JSON).
    pub fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Value) {
        self.call_with_headers(method, path, token, body, &[])
    }

    pub fn call_with_headers(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut request = self.agent.request(method, &format!("{}{}", self.url, path));
        if let Some(t) = token {
            request = request.set("Authorization", &format!("Bearer {t}"));
        }
        for (k, v) in headers {
            request = request.set(k, v);
        }
        let result = match body {
            Some(b) => request.send_json(b.clone()),
            None => request.call(),
        };
        let response = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: transport error {e}\n{}", self.log_tail()),
        };
        let status = response.status();
        let text = response.into_string().unwrap_or_default();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }
}

impl Drop for VecgateServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A signed HS256 token for the test secret.
pub fn token(sub: &str, roles: &[&str], attrs: &Value) -> String {
    token_with(sub, roles, attrs, 3600)
}

/// Like [`token`], expiring `ttl_secs` from now (negative: already expired).
pub fn token_with(sub: &str, roles: &[&str], attrs: &Value, ttl_secs: i64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let mut claims = json!({
        "sub": sub, "roles": roles, "iss": ISSUER, "aud": AUDIENCE,
        "iat": now, "exp": now + ttl_secs,
    });
    if let Value::Object(extra) = attrs {
        for (k, v) in extra {
            claims[k] = v.clone();
        }
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(TEST_SECRET.as_bytes()),
    )
    .expect("sign token")
}
