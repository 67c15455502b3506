//! The Prometheus metrics: names from DESIGN §6, bounded label values, one policy-version
//! series, and text that Prometheus' own `promtool check metrics` accepts.
//!
//! Every series an alert or a dashboard panel needs is exported at 0 from start-up, by the real
//! binary, with each label value from the lists beside the code that produces them
//! (`AuthnError::REASONS`, `ProxyError::UPSTREAM_KINDS`, `RELOAD_OUTCOMES`); those lists are
//! compared here with what `reason()`/`kind()` return for every variant.
//!
//! The promtool test obtains promtool through `scripts/promtool.sh` (Debian's `prometheus`
//! package, unpacked without root into `.tmp/prometheus/`). If that fails the test fails; set
//! `VECGATE_NO_PROMTOOL=1` to skip only that check, explicitly.

// Tests fail loudly on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::exposition::{families, samples, value};
use support::stub_upstream::counting_upstream;
use support::vecgate::{VecgateOptions, VecgateServer};
use vecgate::authn::AuthnError;
use vecgate::backends::TranslateError;
use vecgate::metrics::{status_class, KnownLabels, Metrics, RELOAD_OUTCOMES};
use vecgate::backends::seam::Answer;
use vecgate::policy::pdp::PdpError;
use vecgate::proxy::{ErrorKind, ProxyError, UpstreamError};

/// One observation of everything.
fn observe_everything(metrics: &Metrics) {
    metrics.observe_request("chroma", "http", "query", "filter", 200, 0.012);
    metrics.auth_failure("expired");
    metrics.hits_stripped("chroma", 3);
    metrics.plan_cache(true);
    metrics.plan_cache(false);
    metrics.policy_loaded(1);
    metrics.policy_reload(true, Some(2));
    metrics.filter_terms(7);
    metrics.upstream("chroma", 0.004);
    metrics.upstream_error("chroma", "timeout");
    metrics.shortfall("chroma", 2);
}

#[test]
fn every_design_metric_is_present_after_one_observation_each() {
    let metrics = Metrics::new().unwrap();
    observe_everything(&metrics);
    let text = metrics.render();
    let families = families(&text);
    let expected = [
        ("vecgate_requests_total", "counter"),
        ("vecgate_request_duration_seconds", "histogram"),
        ("vecgate_upstream_duration_seconds", "histogram"),
        ("vecgate_auth_failures_total", "counter"),
        ("vecgate_hits_stripped_total", "counter"),
        ("vecgate_plan_cache_hits_total", "counter"),
        ("vecgate_plan_cache_misses_total", "counter"),
        ("vecgate_policy_reloads_total", "counter"),
        ("vecgate_policy_version_info", "gauge"),
        ("vecgate_filter_terms", "histogram"),
        ("vecgate_result_shortfall_total", "counter"),
        ("vecgate_upstream_errors_total", "counter"),
        ("vecgate_build_info", "gauge"),
    ];
    for (name, kind) in expected {
        assert_eq!(families.get(name).map(String::as_str), Some(kind), "{name} in:\n{text}");
    }

    // The observations arrived where they were sent.
    let request =
        [("backend", "chroma"), ("protocol", "http"), ("operation", "query"), ("decision", "filter"), ("status_class", "2xx")];
    assert_eq!(value(&text, "vecgate_requests_total", &request), Some(1.0));
    assert_eq!(
        value(
            &text,
            "vecgate_request_duration_seconds_count",
            &[("backend", "chroma"), ("protocol", "http"), ("operation", "query")]
        ),
        Some(1.0)
    );
    assert_eq!(value(&text, "vecgate_hits_stripped_total", &[("backend", "chroma")]), Some(3.0));
    assert_eq!(value(&text, "vecgate_result_shortfall_total", &[("backend", "chroma")]), Some(2.0));
    assert_eq!(value(&text, "vecgate_plan_cache_hits_total", &[]), Some(1.0));
    assert_eq!(value(&text, "vecgate_plan_cache_misses_total", &[]), Some(1.0));
    assert_eq!(value(&text, "vecgate_auth_failures_total", &[("reason", "expired")]), Some(1.0));
    assert_eq!(value(&text, "vecgate_filter_terms_sum", &[]), Some(7.0));
    assert_eq!(value(&text, "vecgate_filter_terms_bucket", &[("le", "8")]), Some(1.0));
    assert_eq!(value(&text, "vecgate_filter_terms_bucket", &[("le", "4")]), Some(0.0));
    assert_eq!(
        value(&text, "vecgate_upstream_errors_total", &[("backend", "chroma"), ("kind", "timeout")]),
        Some(1.0)
    );
    assert_eq!(value(&text, "vecgate_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), Some(1.0));
}

#[test]
fn latency_buckets_span_half_a_millisecond_to_ten_seconds() {
    let metrics = Metrics::new().unwrap();
    metrics.observe_request("qdrant", "http", "search", "allow", 200, 0.0004);
    metrics.observe_request("qdrant", "http", "search", "allow", 200, 9.0);
    metrics.upstream("qdrant", 30.0);
    let text = metrics.render();
    let bucket = |name: &str, le: &str, extra: &[(&str, &str)]| {
        let mut labels = extra.to_vec();
        labels.push(("le", le));
        value(&text, name, &labels)
    };
    let request = [("backend", "qdrant"), ("protocol", "http"), ("operation", "search")];
    assert_eq!(bucket("vecgate_request_duration_seconds_bucket", "0.0005", &request), Some(1.0));
    assert_eq!(bucket("vecgate_request_duration_seconds_bucket", "5", &request), Some(1.0));
    assert_eq!(bucket("vecgate_request_duration_seconds_bucket", "10", &request), Some(2.0));
    let upstream = [("backend", "qdrant")];
    assert_eq!(bucket("vecgate_upstream_duration_seconds_bucket", "10", &upstream), Some(0.0));
    assert_eq!(bucket("vecgate_upstream_duration_seconds_bucket", "+Inf", &upstream), Some(1.0));
}

#[test]
fn status_codes_are_folded_into_classes() {
    assert_eq!(status_class(101), "1xx");
    assert_eq!(status_class(200), "2xx");
    assert_eq!(status_class(204), "2xx");
    assert_eq!(status_class(304), "3xx");
    assert_eq!(status_class(401), "4xx");
    assert_eq!(status_class(404), "4xx");
    assert_eq!(status_class(502), "5xx");
    assert_eq!(status_class(599), "5xx");
    assert_eq!(status_class(0), "other");
    assert_eq!(status_class(99), "other");
    assert_eq!(status_class(600), "other");
    assert_eq!(status_class(u16::MAX), "other");
}

#[test]
fn label_values_come_from_the_fixed_sets() {
    let metrics = Metrics::new().unwrap();
    // Many distinct statuses must not produce many series.
    for status in [200, 201, 204, 400, 401, 403, 404, 409, 422, 500, 502, 503, 504, 700] {
        metrics.observe_request("chroma", "http", "get", "deny", status, 0.001);
    }
    for reason in ["missing_token", "expired", "signature"] {
        metrics.auth_failure(reason);
    }
    metrics.policy_reload(false, None);
    metrics.policy_reload(true, Some(5));
    observe_everything(&metrics);
    let text = metrics.render();

    let allowed: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("backend", &["chroma", "qdrant"][..]),
        ("protocol", &["http", "grpc"][..]),
        ("operation", &["query", "get", "search"][..]),
        ("decision", &["allow", "deny", "filter", "post_filter", "error"][..]),
        ("status_class", &["1xx", "2xx", "3xx", "4xx", "5xx", "other"][..]),
        ("reason", &["missing_token", "expired", "signature"][..]),
        ("outcome", &["success", "error"][..]),
        ("kind", &["timeout"][..]),
    ]);
    let all = samples(&text);
    assert!(!all.is_empty());
    for sample in &all {
        for (label, value) in &sample.labels {
            match label.as_str() {
                // Bucket bounds and versions are numbers (build_info: the crate version).
                "le" => assert!(value == "+Inf" || value.parse::<f64>().is_ok(), "{sample:?}"),
                "version" if sample.name == "vecgate_build_info" => {
                    assert_eq!(value, env!("CARGO_PKG_VERSION"))
                }
                "version" => assert!(value.parse::<u64>().is_ok(), "{sample:?}"),
                other => {
                    let set = allowed.get(other).unwrap_or_else(|| panic!("unexpected label {other}"));
                    assert!(set.contains(&value.as_str()), "{other}={value} in {sample:?}");
                }
            }
        }
    }
    let request_series = all.iter().filter(|s| s.name == "vecgate_requests_total").count();
    // get/deny × {2xx, 4xx, 5xx, other} + query/filter/2xx.
    assert_eq!(request_series, 5, "{text}");
    let four_xx =
        [("backend", "chroma"), ("protocol", "http"), ("operation", "get"), ("decision", "deny"), ("status_class", "4xx")];
    assert_eq!(value(&text, "vecgate_requests_total", &four_xx), Some(6.0));
}

#[test]
fn policy_version_info_keeps_exactly_one_series_across_reloads() {
    let metrics = Metrics::new().unwrap();
    let version_series = |text: &str| -> Vec<(String, f64)> {
        samples(text)
            .into_iter()
            .filter(|s| s.name == "vecgate_policy_version_info")
            .map(|s| (s.labels["version"].clone(), s.value))
            .collect()
    };
    let reloads =
        |text: &str, outcome: &str| value(text, "vecgate_policy_reloads_total", &[("outcome", outcome)]);

    metrics.policy_loaded(1);
    let text = metrics.render();
    assert_eq!(version_series(&text), vec![("1".to_string(), 1.0)]);
    // Both outcomes are visible before any reload.
    assert_eq!(reloads(&text, "success"), Some(0.0));
    assert_eq!(reloads(&text, "error"), Some(0.0));

    metrics.policy_reload(true, Some(2));
    let text = metrics.render();
    assert_eq!(version_series(&text), vec![("2".to_string(), 1.0)]);

    // A failed reload keeps the version in use.
    metrics.policy_reload(false, None);
    let text = metrics.render();
    assert_eq!(version_series(&text), vec![("2".to_string(), 1.0)]);

    metrics.policy_reload(true, Some(4));
    metrics.policy_reload(true, Some(4));
    let text = metrics.render();
    assert_eq!(version_series(&text), vec![("4".to_string(), 1.0)]);
    assert_eq!(reloads(&text, "success"), Some(3.0));
    assert_eq!(reloads(&text, "error"), Some(1.0));
}

#[test]
fn each_instance_has_its_own_registry() {
    let first = Metrics::new().unwrap();
    let second = Metrics::new().unwrap();
    first.plan_cache(true);
    first.plan_cache(true);
    assert_eq!(value(&first.render(), "vecgate_plan_cache_hits_total", &[]), Some(2.0));
    assert_eq!(value(&second.render(), "vecgate_plan_cache_hits_total", &[]), Some(0.0));
}

/// Runs scripts/promtool.sh; `None` only when VECGATE_NO_PROMTOOL=1.
fn promtool() -> Option<PathBuf> {
    if std::env::var("VECGATE_NO_PROMTOOL").as_deref() == Ok("1") {
        eprintln!("\n!!! VECGATE_NO_PROMTOOL=1: the metrics text is NOT being checked with promtool !!!\n");
        return None;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("bash")
        .arg(root.join("scripts/promtool.sh"))
        .current_dir(&root)
        .output()
        .expect("bash runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "scripts/promtool.sh could not obtain promtool (set VECGATE_NO_PROMTOOL=1 to skip this \
         check explicitly):\n{stderr}"
    );
    let path = String::from_utf8(output.stdout).unwrap();
    let path = PathBuf::from(path.trim());
    assert!(path.is_file(), "promtool.sh printed {path:?}, which is not a file");
    Some(path)
}

fn promtool_check(promtool: &PathBuf, text: &str) -> (bool, String) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let lint =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), lint)
}

#[test]
fn rendered_text_passes_promtool_check_metrics() {
    let Some(promtool) = promtool() else { return };

    // The check itself can fail: a counter without `_total` and without help is linted.
    let (ok, lint) = promtool_check(&promtool, "# TYPE bad counter\nbad 1\n");
    assert!(!ok && !lint.trim().is_empty(), "promtool accepted a bad counter: {lint}");

    let metrics = Metrics::new().unwrap();
    observe_everything(&metrics);
    metrics.observe_request("qdrant", "http", "search", "error", 502, 1.5);
    let text = metrics.render();
    let (ok, lint) = promtool_check(&promtool, &text);
    assert!(ok, "promtool check metrics failed:\n{lint}\n--- text ---\n{text}");
    assert_eq!(lint.trim(), "", "promtool lint output for:\n{text}");
}

// ---------------------------------------------------------------------------------------
// Series from start-up
// ---------------------------------------------------------------------------------------

/// One value of every `AuthnError` variant. The `match` below stops compiling when a variant
/// is added, so whoever adds one meets this list (and then `REASONS`, by the test below).
fn every_authn_error() -> Vec<AuthnError> {
    let all = vec![
        AuthnError::MissingToken,
        AuthnError::ConflictingTokens,
        AuthnError::Malformed,
        AuthnError::AlgorithmNotAllowed,
        AuthnError::BadSignature,
        AuthnError::UnknownKey,
        AuthnError::KeysUnavailable,
        AuthnError::Expired,
        AuthnError::NotYetValid,
        AuthnError::WrongIssuer,
        AuthnError::WrongAudience,
        AuthnError::MissingClaim { claim: "sub".into() },
        AuthnError::BadClaim { claim: "roles".into(), expected: "a list" },
        AuthnError::Config("key".into()),
        AuthnError::BadMintRequest("ttl".into()),
    ];
    for e in &all {
        match e {
            AuthnError::MissingToken
            | AuthnError::ConflictingTokens
            | AuthnError::Malformed
            | AuthnError::AlgorithmNotAllowed
            | AuthnError::BadSignature
            | AuthnError::UnknownKey
            | AuthnError::KeysUnavailable
            | AuthnError::Expired
            | AuthnError::NotYetValid
            | AuthnError::WrongIssuer
            | AuthnError::WrongAudience
            | AuthnError::MissingClaim { .. }
            | AuthnError::BadClaim { .. }
            | AuthnError::Config(_)
            | AuthnError::BadMintRequest(_) => {}
        }
    }
    all
}

/// One value of every `ProxyError` variant; the `match` plays the same part as above.
fn every_proxy_error() -> Vec<ProxyError> {
    let all = vec![
        ProxyError::Unauthenticated(AuthnError::Expired),
        ProxyError::UnknownRoute("GET /x".into()),
        ProxyError::Forbidden("no".into()),
        ProxyError::Untranslatable(TranslateError::TooManyTerms { terms: 2, limit: 1 }),
        ProxyError::BadRequest("json".into()),
        ProxyError::UnsupportedMedia("text/plain".into()),
        ProxyError::PayloadTooLarge(1),
        ProxyError::BodyTimeout(Duration::from_secs(1)),
        ProxyError::UpstreamUnavailable("refused".into()),
        ProxyError::UpstreamTimeout(Duration::from_secs(1)),
        ProxyError::UpstreamUnreadable("json".into()),
        ProxyError::Database(Answer { status: http::StatusCode::NOT_FOUND, content_type: None, body: bytes::Bytes::new(), trailers: None }),
        ProxyError::PolicySource(PdpError::Timeout(Duration::from_secs(1))),
        ProxyError::AuditUnavailable,
        ProxyError::Config("key".into()),
        ProxyError::Internal("bug".into()),
    ];
    for e in &all {
        match e {
            ProxyError::Unauthenticated(_)
            | ProxyError::UnknownRoute(_)
            | ProxyError::Forbidden(_)
            | ProxyError::Untranslatable(_)
            | ProxyError::BadRequest(_)
            | ProxyError::UnsupportedMedia(_)
            | ProxyError::PayloadTooLarge(_)
            | ProxyError::BodyTimeout(_)
            | ProxyError::UpstreamUnavailable(_)
            | ProxyError::UpstreamTimeout(_)
            | ProxyError::UpstreamUnreadable(_)
            | ProxyError::Database(_)
            | ProxyError::PolicySource(_)
            | ProxyError::AuditUnavailable
            | ProxyError::Config(_)
            | ProxyError::Internal(_) => {}
        }
    }
    all
}

fn unique(list: &[&'static str]) -> BTreeSet<&'static str> {
    let set: BTreeSet<&'static str> = list.iter().copied().collect();
    assert_eq!(set.len(), list.len(), "duplicates in {list:?}");
    set
}

#[test]
fn the_reason_and_kind_lists_are_exactly_what_the_code_returns() {
    let reasons: BTreeSet<&str> = every_authn_error().iter().map(AuthnError::reason).collect();
    assert_eq!(unique(AuthnError::REASONS), reasons, "AuthnError::REASONS vs reason()");
    let kinds: BTreeSet<&str> = every_proxy_error().iter().map(|e| e.kind().as_str()).collect();
    let listed: Vec<&'static str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
    let mut listed = unique(&listed);
    // The one kind that is not an error of a request but of its client going away.
    assert!(listed.remove(ErrorKind::ClientClosed.as_str()));
    assert_eq!(listed, kinds, "ErrorKind::ALL vs kind()");
    // Every kind the upstream exchange produces (src/proxy/upstream.rs) is listed.
    let upstream = unique(&UpstreamError::KINDS);
    for e in [
        UpstreamError::Unavailable("refused".into()),
        UpstreamError::Timeout(Duration::from_secs(1)),
        UpstreamError::Config("ca".into()),
        UpstreamError::Internal("slots".into()),
    ] {
        match e {
            UpstreamError::Unavailable(_) | UpstreamError::Timeout(_) | UpstreamError::Config(_) | UpstreamError::Internal(_) => {}
        }
        assert!(upstream.contains(e.kind()), "{}", e.kind());
    }
}

fn known(backend: &'static str) -> KnownLabels {
    KnownLabels {
        backend,
        auth_failure_reasons: AuthnError::REASONS,
        upstream_error_kinds: &UpstreamError::KINDS,
        policy_source_error_reasons: &PdpError::REASONS,
    }
}

/// A series that must exist at start-up, with its value then.
struct StartSeries {
    name: &'static str,
    labels: Vec<(&'static str, String)>,
    value: f64,
}

/// Every series `known` promises for `backend`.
fn expected_at_start(backend: &str) -> Vec<StartSeries> {
    let series = |name, labels: &[(&'static str, &str)], value| StartSeries {
        name,
        labels: labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        value,
    };
    let b = ("backend", backend);
    let mut want = vec![
        series("vecgate_hits_stripped_total", &[b], 0.0),
        series("vecgate_result_shortfall_total", &[b], 0.0),
        series("vecgate_upstream_duration_seconds_count", &[b], 0.0),
        series("vecgate_upstream_duration_seconds_bucket", &[b, ("le", "+Inf")], 0.0),
        series("vecgate_plan_cache_hits_total", &[], 0.0),
        series("vecgate_plan_cache_misses_total", &[], 0.0),
        series("vecgate_filter_terms_count", &[], 0.0),
        series("vecgate_audit_failures_total", &[], 0.0),
        series("vecgate_build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1.0),
    ];
    for reason in AuthnError::REASONS {
        want.push(series("vecgate_auth_failures_total", &[("reason", reason)], 0.0));
    }
    for kind in UpstreamError::KINDS {
        want.push(series("vecgate_upstream_errors_total", &[b, ("kind", kind)], 0.0));
    }
    for outcome in RELOAD_OUTCOMES {
        want.push(series("vecgate_policy_reloads_total", &[("outcome", outcome)], 0.0));
    }
    want
}

fn check_start_series(text: &str, backend: &str) {
    let mut missing = Vec::new();
    for StartSeries { name, labels, value: want } in expected_at_start(backend) {
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        match value(text, name, &labels) {
            Some(v) if v == want => {}
            other => missing.push(format!("{name}{labels:?} = {other:?}, want {want}")),
        }
    }
    assert!(missing.is_empty(), "at start-up:\n{}\n--- /metrics ---\n{text}", missing.join("\n"));
}

#[test]
fn known_series_start_at_zero_and_keep_values_already_counted() {
    let metrics = Metrics::new().unwrap();
    metrics.export_known_series(&known("qdrant"));
    check_start_series(&metrics.render(), "qdrant");
    // With a PDP as the policy source, each of its failure reasons too.
    for reason in PdpError::REASONS {
        assert_eq!(value(&metrics.render(), "vecgate_policy_source_errors_total", &[("reason", reason)]), Some(0.0), "{reason}");
    }
    // Exporting again (or late) never resets what was counted.
    metrics.hits_stripped("qdrant", 2);
    metrics.auth_failure("expired");
    metrics.upstream_error("qdrant", "upstream_timeout");
    metrics.export_known_series(&known("qdrant"));
    let text = metrics.render();
    assert_eq!(value(&text, "vecgate_hits_stripped_total", &[("backend", "qdrant")]), Some(2.0));
    assert_eq!(value(&text, "vecgate_auth_failures_total", &[("reason", "expired")]), Some(1.0));
    assert_eq!(
        value(&text, "vecgate_upstream_errors_total", &[("backend", "qdrant"), ("kind", "upstream_timeout")]),
        Some(1.0)
    );
    // Only the configured backend's series exist.
    assert!(!text.contains("backend=\"chroma\""), "{text}");
}

#[test]
fn a_fresh_vecgate_exports_every_alerted_series_at_zero() {
    let policies = support::repo_root().join("tests/fixtures/proxy/policies");
    let (upstream, seen) = counting_upstream();
    for options in [VecgateOptions::chroma(&upstream, &policies), VecgateOptions::qdrant(&upstream, &policies)] {
        let vecgate = VecgateServer::start(&options);
        let (status, text) = vecgate.admin_get("/metrics");
        assert_eq!(status, 200, "{text}");
        check_start_series(&text, options.upstream_kind);
        // The policy set in use is shown from the start as well.
        assert!(text.lines().any(|l| l.starts_with("vecgate_policy_version_info{version=") && l.ends_with(" 1")), "{text}");
        // Nothing but the configured backend.
        let other = if options.upstream_kind == "chroma" { "qdrant" } else { "chroma" };
        assert!(!text.contains(&format!("backend=\"{other}\"")), "{text}");
        // Promtool accepts the start-up text too.
        if let Some(promtool) = promtool() {
            let (ok, lint) = promtool_check(&promtool, &text);
            assert!(ok && lint.trim().is_empty(), "promtool check metrics:\n{lint}\n--- text ---\n{text}");
        }
    }
    assert!(seen.lock().unwrap().is_empty(), "start-up sent nothing to the database");
}
