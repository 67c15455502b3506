//! The shipped alert rules and Grafana dashboard, checked end to end: a real Prometheus (Debian's
//! package, through scripts/prometheus.sh) scrapes a real vecgate every second and evaluates
//! deploy/prometheus/vecgate-alerts.yaml as shipped (only the scrape and evaluation intervals
//! are shortened, in Prometheus' own configuration). vecgate stands in front of the real Chroma
//! server through a relay that can drop the filter vecgate injects (a database whose filtering
//! failed, answering in its real shape) or drop connections (a database gone away).
//!
//! In one run, in this order (alert states are read from Prometheus' /api/v1/alerts):
//! 1. a quiet workload — reads, writes, a denial, one expired token, a successful policy
//!    reload — fires nothing, although every alerted series is there;
//! 2. the first hit the database returns that the caller may not read fires
//!    `VecgateHitsStripped`;
//! 3. a burst of bad tokens makes `VecgateAuthFailureSpike` pending;
//! 4. the database becoming unreachable makes `VecgateUpstreamErrors` pending, and, while
//!    requests keep failing, `VecgateServerErrorRatio`;
//! 5. a broken policy file fires `VecgatePolicyReloadFailed`;
//!    no series of an alerted metric appeared after start-up during all this;
//! 6. every query of every dashboard panel returns data over that workload;
//! 7. a second vecgate whose first hit was stripped before Prometheus ever scraped it alarms
//!    too (the rule's second clause), where the increase() clause alone stays silent.
//!
//! Rules with `for:` (5 and 10 minutes) are shown *pending*: their expression is true and
//! Prometheus started the clock; waiting the minutes out would only re-test Prometheus' `for`,
//! which the promtool unit tests (vecgate-alerts.test.yaml) cover on series shaped like the
//! exporter's. The seconds each alert took are printed (`--nocapture`); none is asserted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::chroma::{answer_ids as ids, string_set as set, DEFAULT_DB_PATH};
use support::exposition::samples;
use support::filter_ignoring_relay::{FilterIgnoringRelay, RelayMode};
use support::prometheus::{sample_value, PrometheusServer};
use support::vecgate::{token, token_with, VecgateOptions, VecgateServer, AUDIENCE, ISSUER};
use support::{repo_root, ChromaServer};
use vecgate::authn::AuthnError;
use vecgate::proxy::UpstreamError;

/// How long any one expected change may take before the test fails (expected: 1–6 s).
const LIMIT: Duration = Duration::from_secs(90);

/// The shipped rule before it caught series that appear above 0 (kept to show what it missed).
const INCREASE_ONLY_HITS_STRIPPED: &str =
    "sum by (job, instance, backend) (increase(vecgate_hits_stripped_total[5m])) > 0";

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// `host:port` of a vecgate's admin listener, as Prometheus' `instance` label shows it.
fn target(vecgate: &VecgateServer) -> String {
    vecgate.admin_url().trim_start_matches("http://").to_string()
}

/// The alert `name` for `instance`, if pending or firing now.
fn alert(prometheus: &PrometheusServer, name: &str, instance: &str) -> Option<Value> {
    prometheus
        .alerts()
        .into_iter()
        .find(|a| a["labels"]["alertname"] == name && a["labels"]["instance"] == instance)
}

/// Waits until `name` is in one of `states` for `instance`; the alert and the seconds waited.
fn wait_alert(
    prometheus: &PrometheusServer,
    name: &str,
    instance: &str,
    states: &[&str],
    since: Instant,
) -> (Value, f64) {
    let found = prometheus.wait_for(&format!("{name} {states:?} for {instance}"), LIMIT, |p| {
        alert(p, name, instance).filter(|a| states.iter().any(|s| a["state"] == *s))
    });
    (found, since.elapsed().as_secs_f64())
}

/// The `for:` of an alerting rule, in seconds, as Prometheus loaded it.
fn hold_seconds(prometheus: &PrometheusServer, name: &str) -> f64 {
    prometheus
        .alerting_rules()
        .iter()
        .find(|r| r["name"] == name)
        .and_then(|r| r["duration"].as_f64())
        .unwrap_or_else(|| panic!("no alerting rule {name} loaded"))
}

/// Every series of the metrics alerts and panels count with, as `name{labels}` (the per-request
/// series and the policy version, whose label changes on reload, aside).
fn counted_series(metrics_text: &str) -> BTreeSet<String> {
    samples(metrics_text)
        .into_iter()
        .filter(|s| {
            !s.name.starts_with("vecgate_requests_total")
                && !s.name.starts_with("vecgate_request_duration_seconds")
                && s.name != "vecgate_policy_version_info"
        })
        .map(|s| format!("{}{:?}", s.name, s.labels))
        .collect()
}

/// The sum of `name` over all series in a vecgate's /metrics.
fn metric_sum(vecgate: &VecgateServer, name: &str) -> f64 {
    samples(&vecgate.admin_get("/metrics").1).iter().filter(|s| s.name == name).map(|s| s.value).sum()
}

/// Waits until Prometheus has scraped `instance`'s current request count and has then
/// evaluated the rules a few times, so that the alert states reflect everything sent so far.
fn settle(prometheus: &PrometheusServer, vecgate: &VecgateServer) {
    let want = metric_sum(vecgate, "vecgate_requests_total");
    let query = format!("sum(vecgate_requests_total{{instance=\"{}\"}})", target(vecgate));
    prometheus.wait_for(&format!("Prometheus scraping {want} requests"), LIMIT, |p| {
        p.query(&query).first().map(sample_value).filter(|v| *v == want)
    });
    prometheus.wait_evaluations(3);
}

/// A token signed with a key vecgate does not know.
fn forged_token() -> String {
    let claims = json!({"sub": "mallory", "roles": ["admin"], "iss": ISSUER, "aud": AUDIENCE,
                        "exp": unix_now() as i64 + 3600});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"not-the-secret-vecgate-was-given-000"),
    )
    .unwrap()
}

struct Timings(Vec<(String, f64)>);

impl Timings {
    fn record(&mut self, what: impl Into<String>, seconds: f64) {
        let what = what.into();
        eprintln!("alerts_prometheus: {what}: {seconds:.1} s");
        self.0.push((what, seconds));
    }

    /// An alert seen pending: says after what, and the `for:` it would fire after.
    fn pending(&mut self, prometheus: &PrometheusServer, name: &str, after: &str, seconds: f64) {
        let hold = hold_seconds(prometheus, name);
        self.record(format!("{name} pending after {after} (fires after its for: {hold} s)"), seconds);
    }
}

#[test]
fn shipped_alerts_fire_on_first_incidents_and_every_dashboard_panel_has_data() {
    let mut timings = Timings(Vec::new());
    let chroma = ChromaServer::start();
    let relay = FilterIgnoringRelay::start(chroma.url());
    let policies = tempfile::tempdir().unwrap();
    let fixture = repo_root().join("tests/fixtures/proxy/policies");
    for entry in std::fs::read_dir(&fixture).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, policies.path().join(path.file_name().unwrap())).unwrap();
    }
    let document_policy = policies.path().join("document.yaml");
    let good_policy = std::fs::read_to_string(&document_policy).unwrap();
    let mut options = VecgateOptions::chroma(relay.url(), policies.path());
    options.policies_watch = true;
    let vecgate = VecgateServer::start(&options);
    let instance = target(&vecgate);
    let series_at_start = counted_series(&vecgate.admin_get("/metrics").1);

    let rules = PrometheusServer::shipped_rules();
    let prometheus = PrometheusServer::start(std::slice::from_ref(&rules), &[&instance]);
    let first_scrape = Instant::now();
    prometheus.wait_for("the first scrape of vecgate", LIMIT, |p| {
        let up = p.query(&format!("up{{instance=\"{instance}\"}}"));
        up.first().map(sample_value).filter(|v| *v == 1.0)
    });
    timings.record("Prometheus start to first scrape", first_scrape.elapsed().as_secs_f64());
    let workload_start = unix_now();

    // ---- 1. a quiet workload fires nothing ----------------------------------------------
    let alice = token("alice", &["user"], &json!({"department": "finance"}));
    let bob = token("bob", &["user"], &json!({"department": "hr"}));
    let collections = format!("{DEFAULT_DB_PATH}/collections");
    // The slowest quiet request, as the client saw it (see the latency alert below).
    let slowest = std::cell::Cell::new(0.0f64);
    let call = |path: &str, who: &str, body: &Value| {
        let started = Instant::now();
        let answer = vecgate.call("POST", path, Some(who), Some(body));
        slowest.set(slowest.get().max(started.elapsed().as_secs_f64()));
        answer
    };
    let (status, created) = call(&collections, &alice, &json!({"name": "docs", "get_or_create": true}));
    assert_eq!(status, 200, "{created}");
    let col = format!("{collections}/{}", created["id"].as_str().unwrap());
    let add = |who: &str, id: &str, department: &str, embedding: [f32; 2]| {
        let body = json!({"ids": [id], "embeddings": [embedding],
                          "metadatas": [{"department": department, "level": 1}]});
        call(&format!("{col}/add"), who, &body)
    };
    for (who, id, department, embedding) in
        [(&alice, "f1", "finance", [1.0, 0.0]), (&alice, "f2", "finance", [0.9, 0.1]), (&bob, "h1", "hr", [0.8, 0.2])]
    {
        let (status, body) = add(who, id, department, embedding);
        assert!(status == 200 || status == 201, "add {id}: {status} {body}");
    }
    let query = json!({"query_embeddings": [[1.0, 0.0]], "n_results": 3, "include": ["metadatas"]});
    for _ in 0..10 {
        for (who, want) in [(&alice, set(&["f1", "f2"])), (&bob, set(&["h1"]))] {
            let (status, body) = call(&format!("{col}/query"), who, &query);
            assert_eq!((status, ids(&body)), (200, want.clone()), "{body}");
            let (status, body) = call(&format!("{col}/get"), who, &json!({}));
            assert_eq!((status, ids(&body)), (200, want), "{body}");
        }
    }
    // A denial (bob tagging a record with another department) and one expired token.
    let (status, body) = add(&bob, "f9", "finance", [0.5, 0.5]);
    assert_eq!(status, 403, "{body}");
    let expired = token_with("alice", &["user"], &json!({"department": "finance"}), -600);
    let (status, _) = call(&format!("{col}/get"), &expired, &json!({}));
    assert_eq!(status, 401);
    // A successful policy reload (the same rules, a new file content).
    std::fs::write(&document_policy, format!("{good_policy}\n# reloaded\n")).unwrap();
    prometheus.wait_for("the policy reload being counted", LIMIT, |_| {
        (metric_sum(&vecgate, "vecgate_policy_reloads_total") >= 1.0).then_some(())
    });
    settle(&prometheus, &vecgate);
    let mut alerts = prometheus.alerts();
    // The p99 latency alert is right to be pending if a quiet request took over a second (a
    // slow first Chroma call on a busy machine); nothing else may be.
    if slowest.get() > 1.0 {
        eprintln!("alerts_prometheus: a quiet request took {:.1} s; VecgateHighLatency may be pending", slowest.get());
        alerts.retain(|a| a["labels"]["alertname"] != "VecgateHighLatency");
    }
    assert_eq!(alerts, Vec::<Value>::new(), "alerts after a quiet workload");
    let loaded = prometheus.alerting_rules();
    // Eight rules; VecgatePolicySourceErrors needs a PDP (its promtool unit test covers it).
    assert_eq!(loaded.len(), 8, "the shipped rules, all loaded: {loaded:?}");
    for rule in &loaded {
        assert_eq!(rule["health"], "ok", "{rule}");
    }
    // Silence with the series there: Prometheus has every alerted counter, at 0 (one expired
    // token aside).
    let values = |metric: &str, label: &str| -> BTreeMap<String, f64> {
        prometheus
            .query(&format!("{metric}{{instance=\"{instance}\"}}"))
            .iter()
            .map(|s| (s["metric"][label].as_str().unwrap_or("?").to_string(), sample_value(s)))
            .collect()
    };
    let zeros = |labels: &[&str]| -> BTreeMap<String, f64> { labels.iter().map(|l| (l.to_string(), 0.0)).collect() };
    assert_eq!(values("vecgate_hits_stripped_total", "backend"), zeros(&["chroma"]));
    assert_eq!(values("vecgate_upstream_errors_total", "kind"), zeros(&UpstreamError::KINDS));
    let mut reasons = zeros(AuthnError::REASONS);
    reasons.insert("expired".into(), 1.0);
    assert_eq!(values("vecgate_auth_failures_total", "reason"), reasons);

    // ---- 2. the first stripped hit -------------------------------------------------------
    relay.set_mode(RelayMode::IgnoreFilter);
    let (status, body) = vecgate.call("POST", &format!("{col}/query"), Some(&alice), Some(&query));
    relay.set_mode(RelayMode::Faithful);
    let incident = Instant::now();
    assert_eq!((status, ids(&body)), (200, set(&["f1", "f2"])), "h1 must not reach alice: {body}");
    assert_eq!(metric_sum(&vecgate, "vecgate_hits_stripped_total"), 1.0, "exactly one hit stripped");
    let (stripped, seconds) = wait_alert(&prometheus, "VecgateHitsStripped", &instance, &["firing"], incident);
    timings.record("VecgateHitsStripped firing after the first stripped hit", seconds);
    assert_eq!(stripped["labels"]["backend"], "chroma", "{stripped}");
    assert_eq!(stripped["labels"]["severity"], "critical", "{stripped}");
    assert!(stripped["value"].as_str().unwrap().parse::<f64>().unwrap() >= 1.0, "{stripped}");
    // The increase() clause saw it by itself: the series was there, at 0, before the hit.
    let increase_only = prometheus.query(INCREASE_ONLY_HITS_STRIPPED);
    assert!(
        increase_only.iter().any(|a| a["metric"]["instance"] == json!(instance)),
        "increase() missed the first stripped hit: {increase_only:?}"
    );

    // ---- 3. an authentication failure spike ------------------------------------------------
    let forged = forged_token();
    let bad_tokens: [Option<&str>; 4] = [None, Some("not-a-jwt"), Some(&expired), Some(&forged)];
    let spike = Instant::now();
    // rate() over the rule's 5 minutes must exceed 1/s: more than 300 failures.
    for i in 0..480 {
        let (status, _) = vecgate.call("POST", &format!("{col}/get"), bad_tokens[i % 4], Some(&json!({})));
        assert_eq!(status, 401);
    }
    let burst = spike.elapsed().as_secs_f64();
    let (auth, seconds) = wait_alert(&prometheus, "VecgateAuthFailureSpike", &instance, &["pending"], spike);
    timings.pending(&prometheus, "VecgateAuthFailureSpike", &format!("480 bad tokens in {burst:.1} s"), seconds);
    assert_eq!(auth["labels"]["severity"], "warning", "{auth}");

    // ---- 4. the database unreachable -------------------------------------------------------
    relay.set_mode(RelayMode::Unreachable);
    let outage = Instant::now();
    let mut failed = 0;
    for _ in 0..20 {
        let (status, body) = vecgate.call("POST", &format!("{col}/query"), Some(&alice), Some(&query));
        assert_eq!(status, 502, "{body}");
        failed += 1;
    }
    let (upstream, seconds) = wait_alert(&prometheus, "VecgateUpstreamErrors", &instance, &["pending"], outage);
    timings.pending(&prometheus, "VecgateUpstreamErrors", "20 failed forwards", seconds);
    assert_eq!(upstream["labels"]["backend"], "chroma", "{upstream}");
    // Clients seeing 5xx: requests keep failing until the ratio alert is pending (its series
    // are per operation and appear with their first 5xx, so it needs the failures to go on).
    let (server_errors, seconds) = prometheus.wait_for("VecgateServerErrorRatio pending", LIMIT, |p| {
        let (status, _) = vecgate.call("POST", &format!("{col}/query"), Some(&alice), Some(&query));
        assert_eq!(status, 502);
        failed += 1;
        std::thread::sleep(Duration::from_millis(100));
        alert(p, "VecgateServerErrorRatio", &instance)
            .filter(|a| a["state"] == "pending")
            .map(|a| (a, outage.elapsed().as_secs_f64()))
    });
    timings.pending(&prometheus, "VecgateServerErrorRatio", "failing requests at ~10/s", seconds);
    assert_eq!(server_errors["labels"]["backend"], "chroma", "{server_errors}");
    relay.set_mode(RelayMode::Faithful);
    // Each failed request is one failed exchange, counted as "upstream_unavailable".
    let unavailable = samples(&vecgate.admin_get("/metrics").1)
        .into_iter()
        .find(|s| s.name == "vecgate_upstream_errors_total" && s.labels["kind"] == "upstream_unavailable")
        .map(|s| s.value);
    assert_eq!(unavailable, Some(failed as f64), "upstream errors counted");

    // ---- 5. a broken policy file ---------------------------------------------------------
    std::fs::write(&document_policy, "resourcePolicy: [this is not a policy").unwrap();
    let broken = Instant::now();
    let (reload, seconds) = wait_alert(&prometheus, "VecgatePolicyReloadFailed", &instance, &["firing"], broken);
    timings.record("VecgatePolicyReloadFailed firing after a broken policy file", seconds);
    assert_eq!(reload["labels"]["outcome"], "error", "{reload}");
    std::fs::write(&document_policy, &good_policy).unwrap();

    // Every series the workload touched existed at start-up.
    let series_at_end = counted_series(&vecgate.admin_get("/metrics").1);
    let appeared: Vec<&String> = series_at_end.difference(&series_at_start).collect();
    assert!(appeared.is_empty(), "series that appeared after start-up (not exported at 0): {appeared:?}");

    // ---- 6. every dashboard panel has data ------------------------------------------------
    settle(&prometheus, &vecgate);
    let empty = dashboard_panels_without_data(&prometheus, workload_start, unix_now());
    assert!(empty.is_empty(), "dashboard queries without data after the mixed workload:\n{}", empty.join("\n"));

    // ---- 7. a hit stripped before the first scrape ---------------------------------------
    let late = VecgateServer::start(&options);
    let late_instance = target(&late);
    relay.set_mode(RelayMode::IgnoreFilter);
    let (status, body) = late.call("POST", &format!("{col}/query"), Some(&alice), Some(&query));
    relay.set_mode(RelayMode::Faithful);
    assert_eq!((status, ids(&body)), (200, set(&["f1", "f2"])), "{body}");
    assert_eq!(metric_sum(&late, "vecgate_hits_stripped_total"), 1.0);
    let discovered = Instant::now();
    prometheus.set_targets(&[&instance, &late_instance]);
    let (_, seconds) = wait_alert(&prometheus, "VecgateHitsStripped", &late_instance, &["firing"], discovered);
    timings.record("VecgateHitsStripped firing for a vecgate first scraped after its stripped hit", seconds);
    prometheus.wait_evaluations(3);
    let increase_only = prometheus.query(INCREASE_ONLY_HITS_STRIPPED);
    assert!(
        increase_only.iter().all(|a| a["metric"]["instance"] != json!(late_instance)),
        "the increase() clause alone would have seen it: {increase_only:?}"
    );

    eprintln!("alerts_prometheus: timings {:?}", timings.0);
}

/// Runs every query of deploy/grafana/vecgate-dashboard.json over `[start, end]` as Grafana
/// would (range queries every second, instant ones at `end`; `$job`/`$instance` as "All",
/// `$__rate_interval` as Grafana computes it for a 1 s scrape interval: 4 s); returns the
/// panels whose query gave no series or only NaN, as "panel title [refId]: expr".
fn dashboard_panels_without_data(prometheus: &PrometheusServer, start: f64, end: f64) -> Vec<String> {
    let text = std::fs::read_to_string(repo_root().join("deploy/grafana/vecgate-dashboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let mut panels = Vec::new();
    fn walk(list: &Value, out: &mut Vec<Value>) {
        for panel in list.as_array().into_iter().flatten() {
            out.push(panel.clone());
            walk(&panel["panels"], out);
        }
    }
    walk(&dashboard["panels"], &mut panels);
    let range = format!("{}s", (end - start).ceil());
    let mut empty = Vec::new();
    let mut checked = 0;
    for panel in &panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let Some(expr) = target["expr"].as_str() else { continue };
            let promql = expr
                .replace("$__rate_interval", "4s")
                .replace("$__range", &range)
                .replace("$__interval", "1s")
                .replace("$job", ".*")
                .replace("$instance", ".*");
            let finite: usize = if target["instant"] == true {
                prometheus.query_at(&promql, Some(end)).iter().filter(|s| sample_value(s).is_finite()).count()
            } else {
                prometheus
                    .query_range(&promql, start, end, 1.0)
                    .iter()
                    .flat_map(|s| s["values"].as_array().cloned().unwrap_or_default())
                    .filter(|v| v[1].as_str().and_then(|x| x.parse::<f64>().ok()).is_some_and(f64::is_finite))
                    .count()
            };
            checked += 1;
            let title = panel["title"].as_str().unwrap_or("?");
            let ref_id = target["refId"].as_str().unwrap_or("?");
            eprintln!("alerts_prometheus: panel {title:?} [{ref_id}]: {finite} finite samples");
            if finite == 0 {
                empty.push(format!("{title} [{ref_id}]: {expr}"));
            }
        }
    }
    assert!(checked > 20, "only {checked} dashboard queries found");
    empty
}
