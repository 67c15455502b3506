//! Prometheus metrics (DESIGN §6), served as text on the admin listener's `/metrics`.
//!
//! Labels are bounded by construction: every label value the API accepts is a `&'static str`
//! (a name from the code, never request data such as principal ids, tokens, collection names
//! or paths), a status folded into its class, the policy version number, or a proxy worker's
//! number (1 to `limits.workers`). One [`Metrics`]
//! is created at startup and shared through an `Arc`; it owns its registry, so tests and
//! several instances in one process never see each other's series.
//!
//! Series exist from start-up. A labelled series otherwise appears with its first increment,
//! and `rate()`/`increase()` cannot see an increment from "no series" to its first value: an
//! alert such as `increase(vecgate_hits_stripped_total[5m]) > 0` would stay silent on the first
//! incident. So every series whose label values are known when vecgate starts is exported at 0
//! then: the unlabelled metrics and the reload outcomes by [`Metrics::new`], and, by
//! [`Metrics::export_known_series`] (called once by `vecgate serve`), the configured backend's
//! stripped-hit, shortfall and upstream-latency series, one auth-failure series per
//! [`crate::authn::AuthnError::REASONS`] and one upstream-error series per
//! [`crate::proxy::UpstreamError::KINDS`], and with a PDP as the policy source one
//! policy-source-error series per [`crate::policy::pdp::PdpError::REASONS`]. Per-request series
//! (`vecgate_requests_total`, `vecgate_request_duration_seconds`) are not created in advance:
//! their operation label comes from the backend's route table (35 Chroma, 101 Qdrant
//! operations), times 6 decisions and 6 status classes, most of which never occur together,
//! and the alerts over them are ratios held for minutes (`for:`), which do not hinge on one
//! first increment.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::sync::Mutex;

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Latency buckets in seconds: 0.5 ms (a locally answered denial) up to 10 s (a slow upstream).
const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Leaves in an injected filter; `limits.max_filter_terms` defaults to 500 and Chroma breaks
/// around 1000.
const FILTER_TERM_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot create metric {name}: {source}")]
    Create { name: &'static str, source: prometheus::Error },
}

/// The label values known when vecgate starts, for [`Metrics::export_known_series`].
#[derive(Debug, Clone, Copy)]
pub struct KnownLabels {
    /// The configured database (`upstream.kind`).
    pub backend: &'static str,
    /// Every reason an authentication failure is counted under.
    pub auth_failure_reasons: &'static [&'static str],
    /// Every kind a failed exchange with the database is counted under.
    pub upstream_error_kinds: &'static [&'static str],
    /// Every reason the policy source (a Cerbos PDP) can fail for; empty for an embedded
    /// policy set, which cannot fail that way.
    pub policy_source_error_reasons: &'static [&'static str],
}

/// Every vecgate metric, in its own registry.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    upstream_duration: HistogramVec,
    upstream_errors: IntCounterVec,
    auth_failures: IntCounterVec,
    hits_stripped: IntCounterVec,
    plan_cache_hits: IntCounter,
    plan_cache_misses: IntCounter,
    policy_reloads: IntCounterVec,
    policy_version_info: IntGaugeVec,
    /// The version whose `policy_version_info` series is set, so a reload can remove it.
    current_policy_version: Mutex<Option<u64>>,
    filter_terms: Histogram,
    result_shortfall: IntCounterVec,
    audit_failures: IntCounter,
    policy_source_errors: IntCounterVec,
    worker_connections: IntCounterVec,
    worker_connections_open: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Result<Metrics, MetricsError> {
        let registry = Registry::new();
        let requests = register(
            &registry,
            "vecgate_requests_total",
            IntCounterVec::new(
                Opts::new("vecgate_requests_total", "Client requests answered, by outcome."),
                &["backend", "protocol", "operation", "decision", "status_class"],
            ),
        )?;
        let request_duration = register(
            &registry,
            "vecgate_request_duration_seconds",
            HistogramVec::new(
                HistogramOpts::new(
                    "vecgate_request_duration_seconds",
                    "Time from receiving a client request to answering it.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["backend", "protocol", "operation"],
            ),
        )?;
        let upstream_duration = register(
            &registry,
            "vecgate_upstream_duration_seconds",
            HistogramVec::new(
                HistogramOpts::new(
                    "vecgate_upstream_duration_seconds",
                    "Time the vector database took to answer one forwarded request.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["backend"],
            ),
        )?;
        let upstream_errors = register(
            &registry,
            "vecgate_upstream_errors_total",
            IntCounterVec::new(
                Opts::new(
                    "vecgate_upstream_errors_total",
                    "Forwarded requests that got no usable answer from the vector database.",
                ),
                &["backend", "kind"],
            ),
        )?;
        let auth_failures = register(
            &registry,
            "vecgate_auth_failures_total",
            IntCounterVec::new(
                Opts::new("vecgate_auth_failures_total", "Requests refused with 401, by reason."),
                &["reason"],
            ),
        )?;
        let hits_stripped = register(
            &registry,
            "vecgate_hits_stripped_total",
            IntCounterVec::new(
                Opts::new(
                    "vecgate_hits_stripped_total",
                    "Hits the database returned that the response filter removed.",
                ),
                &["backend"],
            ),
        )?;
        let audit_failures = register(
            &registry,
            "vecgate_audit_failures_total",
            IntCounter::new(
                "vecgate_audit_failures_total",
                "Audit lines that could not be written (audit.on_failure decides what the request got).",
            ),
        )?;
        let plan_cache_hits = register(
            &registry,
            "vecgate_plan_cache_hits_total",
            IntCounter::new("vecgate_plan_cache_hits_total", "Query plans served from the cache."),
        )?;
        let plan_cache_misses = register(
            &registry,
            "vecgate_plan_cache_misses_total",
            IntCounter::new(
                "vecgate_plan_cache_misses_total",
                "Query plans computed because the cache had none.",
            ),
        )?;
        let policy_reloads = register(
            &registry,
            "vecgate_policy_reloads_total",
            IntCounterVec::new(
                Opts::new(
                    "vecgate_policy_reloads_total",
                    "Policy reloads; an error keeps the last good policy set.",
                ),
                &["outcome"],
            ),
        )?;
        // Both outcomes exist from the start, so alerts on `increase(...{outcome="error"})` work
        // before the first failure.
        for outcome in RELOAD_OUTCOMES {
            policy_reloads.with_label_values(&[outcome]).reset();
        }
        let policy_version_info = register(
            &registry,
            "vecgate_policy_version_info",
            IntGaugeVec::new(
                Opts::new(
                    "vecgate_policy_version_info",
                    "Always 1; the label holds the version of the policy set in use.",
                ),
                &["version"],
            ),
        )?;
        let filter_terms = register(
            &registry,
            "vecgate_filter_terms",
            Histogram::with_opts(
                HistogramOpts::new(
                    "vecgate_filter_terms",
                    "Leaf conditions in each filter ANDed into a database request.",
                )
                .buckets(FILTER_TERM_BUCKETS.to_vec()),
            ),
        )?;
        let result_shortfall = register(
            &registry,
            "vecgate_result_shortfall_total",
            IntCounterVec::new(
                Opts::new(
                    "vecgate_result_shortfall_total",
                    "Results missing from post-filtered answers: asked-for count minus returned.",
                ),
                &["backend"],
            ),
        )?;
        let policy_source_errors = register(
            &registry,
            "vecgate_policy_source_errors_total",
            IntCounterVec::new(
                Opts::new(
                    "vecgate_policy_source_errors_total",
                    "Requests answered 503 because the policy source (a Cerbos PDP) gave no usable answer, by reason.",
                ),
                &["reason"],
            ),
        )?;
        let worker_connections = register(
            &registry,
            "vecgate_worker_connections_total",
            IntCounterVec::new(
                Opts::new(
                    "vecgate_worker_connections_total",
                    "Proxy-port connections handed to each worker (limits.workers).",
                ),
                &["worker"],
            ),
        )?;
        let worker_connections_open = register(
            &registry,
            "vecgate_worker_connections_open",
            IntGaugeVec::new(
                Opts::new("vecgate_worker_connections_open", "Proxy-port connections each worker serves now."),
                &["worker"],
            ),
        )?;
        let build_info = register(
            &registry,
            "vecgate_build_info",
            IntGaugeVec::new(
                Opts::new("vecgate_build_info", "Always 1; the label holds the vecgate version."),
                &["version"],
            ),
        )?;
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        Ok(Metrics {
            registry,
            requests,
            request_duration,
            upstream_duration,
            upstream_errors,
            auth_failures,
            hits_stripped,
            plan_cache_hits,
            plan_cache_misses,
            policy_reloads,
            policy_version_info,
            current_policy_version: Mutex::new(None),
            filter_terms,
            result_shortfall,
            audit_failures,
            policy_source_errors,
            worker_connections,
            worker_connections_open,
        })
    }

    /// Exports, at 0, every series built from label values known at start-up (see the module
    /// docs). Call once, before serving; series that already exist keep their values.
    pub fn export_known_series(&self, known: &KnownLabels) {
        let backend = known.backend;
        self.hits_stripped.with_label_values(&[backend]).inc_by(0);
        self.result_shortfall.with_label_values(&[backend]).inc_by(0);
        // A histogram child exists, with no observations, once it is looked up.
        self.upstream_duration.with_label_values(&[backend]);
        for kind in known.upstream_error_kinds {
            self.upstream_errors.with_label_values(&[backend, kind]).inc_by(0);
        }
        for reason in known.auth_failure_reasons {
            self.auth_failures.with_label_values(&[reason]).inc_by(0);
        }
        for reason in known.policy_source_error_reasons {
            self.policy_source_errors.with_label_values(&[reason]).inc_by(0);
        }
    }

    /// One answered client request: `protocol` `http` or `grpc`, `decision` as in the audit
    /// log (allow, deny, filter, post_filter, error), `status` the HTTP status sent (for gRPC,
    /// its status's HTTP equivalent), `seconds` the whole request.
    pub fn observe_request(
        &self,
        backend: &'static str,
        protocol: &'static str,
        operation: &'static str,
        decision: &'static str,
        status: u16,
        seconds: f64,
    ) {
        self.requests.with_label_values(&[backend, protocol, operation, decision, status_class(status)]).inc();
        self.request_duration.with_label_values(&[backend, protocol, operation]).observe(seconds);
    }

    /// One request refused with 401; `reason` as `AuthnError::reason` names it.
    pub fn auth_failure(&self, reason: &'static str) {
        self.auth_failures.with_label_values(&[reason]).inc();
    }

    /// The response filter removed `n` hits from one answer.
    pub fn hits_stripped(&self, backend: &'static str, n: usize) {
        self.hits_stripped.with_label_values(&[backend]).inc_by(to_u64(n));
    }

    /// A plan lookup: found in the cache (`hit`) or computed.
    pub fn plan_cache(&self, hit: bool) {
        if hit {
            self.plan_cache_hits.inc();
        } else {
            self.plan_cache_misses.inc();
        }
    }

    /// The policy set loaded at startup: sets the version without counting a reload.
    pub fn policy_loaded(&self, version: u64) {
        self.show_policy_version(version);
    }

    /// One reload attempt. On success `version` is the new set's version and becomes the only
    /// `vecgate_policy_version_info` series; on failure the shown version stays.
    pub fn policy_reload(&self, ok: bool, version: Option<u64>) {
        let outcome = if ok { RELOAD_SUCCESS } else { RELOAD_ERROR };
        self.policy_reloads.with_label_values(&[outcome]).inc();
        if let (true, Some(version)) = (ok, version) {
            self.show_policy_version(version);
        }
    }

    /// The number of leaf conditions in one injected filter.
    pub fn filter_terms(&self, n: usize) {
        self.filter_terms.observe(n as f64);
    }

    /// The time one forwarded request took at the vector database.
    pub fn upstream(&self, backend: &'static str, seconds: f64) {
        self.upstream_duration.with_label_values(&[backend]).observe(seconds);
    }

    /// A forwarded request that failed: `kind` such as "connect", "timeout", "body".
    pub fn upstream_error(&self, backend: &'static str, kind: &'static str) {
        self.upstream_errors.with_label_values(&[backend, kind]).inc();
    }

    /// A post-filtered answer returned `n` fewer results than the client asked for.
    pub fn shortfall(&self, backend: &'static str, n: usize) {
        self.result_shortfall.with_label_values(&[backend]).inc_by(to_u64(n));
    }

    /// The policy source gave no usable answer; `reason` as `PdpError::reason` names it.
    pub fn policy_source_error(&self, reason: &'static str) {
        self.policy_source_errors.with_label_values(&[reason]).inc();
    }

    /// Worker `worker`'s connection series (1..=`limits.workers`: the label is bounded by the
    /// configuration), exported at 0 from here on, so a worker never given a connection shows
    /// as 0 rather than missing. Looked up once per worker, not per connection.
    pub fn worker_connections(&self, worker: usize) -> WorkerConnections {
        let worker = worker.to_string();
        let handed = self.worker_connections.with_label_values(&[&worker]);
        let open = self.worker_connections_open.with_label_values(&[&worker]);
        handed.inc_by(0);
        open.set(0);
        WorkerConnections { handed, open }
    }

    /// An audit line could not be written.
    pub fn audit_failure(&self) {
        self.audit_failures.inc();
    }

    /// `n` buffered audit lines were lost in one failed write.
    pub fn audit_failures(&self, n: usize) {
        self.audit_failures.inc_by(to_u64(n));
    }

    /// The registry, for callers that add metrics of their own.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// All metrics in the Prometheus text exposition format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut text = String::new();
        if let Err(e) = TextEncoder::new().encode_utf8(&self.registry.gather(), &mut text) {
            tracing::error!("encoding metrics failed: {e}");
            // A comment is valid exposition text; scrapers see an empty but well-formed answer.
            return "# vecgate: encoding metrics failed\n".to_string();
        }
        text
    }

    fn show_policy_version(&self, version: u64) {
        let mut current = self.current_policy_version.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(old) = current.replace(version) {
            if old != version {
                // Absent only if someone else removed it; nothing to do then.
                let _ = self.policy_version_info.remove_label_values(&[&old.to_string()]);
            }
        }
        self.policy_version_info.with_label_values(&[&version.to_string()]).set(1);
    }
}

/// One worker's `vecgate_worker_connections_total` and `vecgate_worker_connections_open`.
#[derive(Debug, Clone)]
pub struct WorkerConnections {
    handed: prometheus::IntCounter,
    open: prometheus::IntGauge,
}

impl WorkerConnections {
    /// A connection handed to this worker; it counts as open until the guard is dropped.
    pub fn opened(&self) -> OpenConnection {
        self.handed.inc();
        self.open.inc();
        OpenConnection(self.open.clone())
    }
}

/// One connection in `vecgate_worker_connections_open`, until dropped.
#[derive(Debug)]
pub struct OpenConnection(prometheus::IntGauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

const RELOAD_SUCCESS: &str = "success";
const RELOAD_ERROR: &str = "error";
/// Every `outcome` of `vecgate_policy_reloads_total`.
pub const RELOAD_OUTCOMES: [&str; 2] = [RELOAD_SUCCESS, RELOAD_ERROR];

/// "2xx" for 200..=299 and so on; anything outside 100..=599 is "other".
pub fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        _ => "other",
    }
}

fn register<M>(
    registry: &Registry,
    name: &'static str,
    metric: Result<M, prometheus::Error>,
) -> Result<M, MetricsError>
where
    M: prometheus::core::Collector + Clone + 'static,
{
    let metric = metric.map_err(|source| MetricsError::Create { name, source })?;
    registry.register(Box::new(metric.clone())).map_err(|source| MetricsError::Create { name, source })?;
    Ok(metric)
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}
