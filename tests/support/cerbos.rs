//! The real Cerbos PDP (the pinned binary `scripts/cerbos.sh` installs from the npm registry)
//! as an oracle: `cerbos server` on free loopback ports with a disk store the test fills and
//! reloads, answering CheckResources and PlanResources; `cerbos compile` for test suites.
//!
//! The binary is `$VECGATE_CERBOS`, else the cached copy under `.tmp/cerbos/`; a missing binary
//! fails the test with the command that installs it. Servers are stopped (killed by their own
//! process id) when dropped.

use serde_json::{json, Value as Json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The pinned version (`scripts/cerbos.sh`).
pub const VERSION: &str = "0.55.0";

/// The admin API's credentials: user `cerbos`, password `vecgate-test`. The hash is bcrypt
/// (cost 4) of that password, base64-encoded as Cerbos' configuration wants it; the admin API
/// listens on loopback only, for the store reloads of a test.
const ADMIN_PASSWORD_HASH: &str =
    "JDJiJDA0JEFydUZ1eVNNeWpWbXlLWXhTYzVFQnVGVWFnWE5wL2M0MFJDVXU2ZjdRUG5CeTMuQjVROS5l";
const ADMIN_AUTH: &str = "Basic Y2VyYm9zOnZlY2dhdGUtdGVzdA==";

/// Resources per CheckResources request (the server is configured to allow it).
pub const CHECK_BATCH: usize = 100;

/// The cerbos binary, or a panic that says how to install it.
pub fn binary() -> PathBuf {
    let (path, source) = match std::env::var_os("VECGATE_CERBOS") {
        Some(p) if !p.is_empty() => (PathBuf::from(p), "VECGATE_CERBOS"),
        _ => (
            super::repo_root()
                .join(".tmp/cerbos")
                .join(VERSION)
                .join("package/cerbos-linux-x64"),
            "the cache of scripts/cerbos.sh",
        ),
    };
    if !path.exists() {
        panic!(
            "the Cerbos PDP binary is missing: {} (from {source}) does not exist.\n\
             Run ./scripts/cerbos.sh (or ./scripts/test.sh, which runs it): it fetches \
             @cerbos/cerbos-linux-x64@{VERSION} from the npm registry, checks its SHA-256 and \
             caches it under .tmp/cerbos/.",
            path.display()
        );
    }
    path
}

/// How a server is configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode {
    /// `engine.strictEvaluation`.
    pub strict: bool,
    /// `engine.lenientScopeSearch`.
    pub lenient: bool,
}

impl Mode {
    pub fn name(&self) -> String {
        format!(
            "{}{}",
            if self.strict { "strictEvaluation" } else { "default" },
            if self.lenient { "+lenientScopeSearch" } else { "" }
        )
    }
}

/// A running `cerbos server` with a disk store.
pub struct Pdp {
    child: Child,
    pub mode: Mode,
    pub port: u16,
    store: tempfile::TempDir,
    _config_dir: tempfile::TempDir,
    agent: ureq::Agent,
}

impl Drop for Pdp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Pdp {
    /// Starts a server in `mode` with these engine globals.
    pub fn start(mode: Mode, globals: &Json) -> Pdp {
        Pdp::start_with(mode, globals, &json!({}))
    }

    /// [`Pdp::start`] with further top-level configuration sections (e.g. `auxData`).
    pub fn start_with(mode: Mode, globals: &Json, extra: &Json) -> Pdp {
        let bin = binary();
        for _attempt in 0..5 {
            let store = tempfile::tempdir().unwrap();
            let config_dir = tempfile::tempdir().unwrap();
            let (http, grpc) = (super::free_port(), super::free_port());
            let config = json!({
                "server": {
                    "httpListenAddr": format!("127.0.0.1:{http}"),
                    "grpcListenAddr": format!("127.0.0.1:{grpc}"),
                    "adminAPI": {"enabled": true, "adminCredentials": {
                        "username": "cerbos", "passwordHash": ADMIN_PASSWORD_HASH}},
                    "requestLimits": {"maxActionsPerResource": 50, "maxResourcesPerRequest": CHECK_BATCH},
                },
                "storage": {"driver": "disk", "disk": {
                    "directory": store.path(), "watchForChanges": false}},
                "engine": {
                    "defaultPolicyVersion": "default",
                    "strictEvaluation": mode.strict,
                    "lenientScopeSearch": mode.lenient,
                    "globals": globals,
                },
                "audit": {"enabled": false},
                "telemetry": {"disabled": true},
            });
            let mut config = config;
            for (key, value) in extra.as_object().into_iter().flatten() {
                config[key] = value.clone();
            }
            let config_file = config_dir.path().join("config.yaml");
            std::fs::write(&config_file, config.to_string()).unwrap();
            let log = std::fs::File::create(config_dir.path().join("server.log")).unwrap();
            let child = Command::new(&bin)
                .arg("server")
                .arg(format!("--config={}", config_file.display()))
                .arg("--log-level=error")
                .env("CERBOS_NO_TELEMETRY", "1")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let mut pdp = Pdp {
                child,
                mode,
                port: http,
                store,
                _config_dir: config_dir,
                agent: ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(30))
                    .build(),
            };
            if pdp.wait_ready() {
                return pdp;
            }
            let log = super::log_tail(&pdp._config_dir.path().join("server.log"), 20);
            drop(pdp);
            eprintln!("cerbos server did not come up (retrying on other ports):\n{log}");
        }
        panic!("cerbos server did not start after 5 attempts");
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(r) = self.agent.get(&self.url("/_cerbos/health")).call() {
                if r.status() == 200 {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Replaces the store with `files` and reloads it; panics (with the server's answer) when
    /// the PDP does not accept the set.
    pub fn load(&self, files: &[(String, String)]) {
        for entry in std::fs::read_dir(self.store.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path).unwrap();
            } else {
                std::fs::remove_file(&path).unwrap();
            }
        }
        for (name, text) in files {
            std::fs::write(self.store.path().join(name), text).unwrap();
        }
        match self
            .agent
            .get(&self.url("/admin/store/reload?wait=true"))
            .set("Authorization", ADMIN_AUTH)
            .call()
        {
            Ok(_) => {}
            Err(ureq::Error::Status(code, r)) => {
                let compiled = Command::new(binary())
                    .arg("compile")
                    .arg("--skip-tests")
                    .arg(self.store.path())
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
                    .unwrap_or_default();
                let listing: String = files
                    .iter()
                    .map(|(name, text)| format!("--- {name}\n{text}\n"))
                    .collect();
                panic!(
                    "the PDP refused the policy set (HTTP {code}): {}\ncerbos compile says:\n{compiled}\n{listing}",
                    r.into_string().unwrap_or_default()
                )
            }
            Err(e) => panic!("store reload failed: {e}"),
        }
    }

    fn post(&self, path: &str, body: &Json) -> Json {
        match self.agent.post(&self.url(path)).send_json(body.clone()) {
            Ok(r) => r.into_json().unwrap(),
            Err(ureq::Error::Status(code, r)) => panic!(
                "POST {path}: HTTP {code}: {}\nrequest: {body}",
                r.into_string().unwrap_or_default()
            ),
            Err(e) => panic!("POST {path}: {e}"),
        }
    }

    /// CheckResources for one principal: per resource, per action, ALLOW or not. Batched.
    pub fn check(&self, principal: &Json, resources: &[Json], actions: &[String]) -> Vec<Vec<bool>> {
        let mut out = Vec::with_capacity(resources.len());
        for chunk in resources.chunks(CHECK_BATCH) {
            let body = json!({
                "requestId": "vecgate-differential",
                "principal": principal,
                "resources": chunk.iter().map(|r| json!({"actions": actions, "resource": r})).collect::<Vec<_>>(),
            });
            let answer = self.post("/api/check/resources", &body);
            let results = answer["results"].as_array().unwrap_or_else(|| {
                panic!("CheckResources answer without results: {answer}")
            });
            assert_eq!(results.len(), chunk.len(), "{answer}");
            for (result, resource) in results.iter().zip(chunk) {
                assert_eq!(result["resource"]["id"], resource["id"], "results in request order");
                out.push(
                    actions
                        .iter()
                        .map(|a| result["actions"][a] == "EFFECT_ALLOW")
                        .collect(),
                );
            }
        }
        out
    }

    /// PlanResources: the `filter` of the answer, or the PDP's error answer.
    pub fn plan(&self, principal: &Json, kind: &str, scope: &str, action: &str) -> Result<Json, String> {
        let body = json!({
            "requestId": "vecgate-differential",
            "action": action,
            "principal": principal,
            "resource": {"kind": kind, "scope": scope},
        });
        match self.agent.post(&self.url("/api/plan/resources")).send_json(body) {
            Ok(r) => Ok(r.into_json::<Json>().unwrap()["filter"].clone()),
            Err(ureq::Error::Status(code, r)) => {
                Err(format!("HTTP {code}: {}", r.into_string().unwrap_or_default()))
            }
            Err(e) => panic!("POST /api/plan/resources: {e}"),
        }
    }
}

/// `cerbos compile DIR` with JSON output: per suite, per test case, passed or not. Panics if
/// the tool cannot run; compile errors come back as `Err` with the tool's output.
pub fn compile(dir: &Path) -> Result<Json, String> {
    let out = Command::new(binary())
        .arg("compile")
        .arg("--output=json")
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run cerbos compile: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    match serde_json::from_str::<Json>(&stdout) {
        Ok(v) => Ok(v),
        Err(_) => Err(format!(
            "cerbos compile exited {:?}:\n{stdout}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}
