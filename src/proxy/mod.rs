//! The request pipeline (DESIGN §1): authenticate → classify → authorize → rewrite → forward
//! → filter the response → respond, with exactly one audit event per request.
//!
//! [`Gateway::handle`] is the whole path of a request; each backend module (`chroma`) reads
//! top to bottom through the phases for its operations.

pub mod authorize;
pub mod body;
pub mod chroma;
pub mod qdrant;
pub mod records;
pub mod respond;
pub mod upstream;

use crate::audit::{AuditEvent, AuditLog};
use crate::authn::{Authenticated, Authenticator};
use crate::config::{BackendKind, CollectionRule, Config};
use crate::metrics::Metrics;
use crate::policy::store::PolicyStore;
use bytes::Bytes;
use http::request::Parts;
use http::Request;
use respond::{error_response, ProxyError, ProxyResponse};
use std::sync::Arc;
use std::time::{Duration, Instant};
use upstream::Upstream;

/// How long a collection id → name mapping is trusted (renames by other clients).
const COLLECTION_NAME_TTL: Duration = Duration::from_secs(30);

/// Everything a request needs, shared by all connections.
pub struct Gateway {
    config: Arc<Config>,
    authn: Authenticator,
    policies: Arc<PolicyStore>,
    upstream: Upstream,
    /// Chroma collection UUID (with tenant and database) → collection name.
    collection_names: moka::sync::Cache<String, String>,
    audit: AuditLog,
    metrics: Arc<Metrics>,
}

/// The database's API key from the environment variable the configuration names.
fn upstream_api_key(config: &Config) -> Result<Option<http::HeaderValue>, ProxyError> {
    let Some(var) = &config.upstream.api_key_env else {
        return Ok(None);
    };
    let key = std::env::var(var)
        .ok()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ProxyError::Config(format!("upstream.api_key_env: {var} is not set")))?;
    let mut value = http::HeaderValue::from_str(&key)
        .map_err(|_| ProxyError::Config(format!("upstream.api_key_env: {var} is not a valid header value")))?;
    value.set_sensitive(true);
    Ok(Some(value))
}

impl Gateway {
    pub fn new(
        config: Arc<Config>,
        authn: Authenticator,
        policies: Arc<PolicyStore>,
        audit: AuditLog,
        metrics: Arc<Metrics>,
    ) -> Result<Gateway, ProxyError> {
        let upstream = Upstream::new(
            &config.upstream.url,
            config.upstream.timeout,
            config.upstream.kind.name(),
            metrics.clone(),
            upstream_api_key(&config)?,
        )?;
        Ok(Gateway {
            authn,
            policies,
            upstream,
            collection_names: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(COLLECTION_NAME_TTL)
                .build(),
            audit,
            metrics,
            config,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn policies(&self) -> &Arc<PolicyStore> {
        &self.policies
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Answers one client request. Never fails: every error becomes the backend's error
    /// response here, and every request leaves one audit line.
    pub async fn handle<B>(&self, request: Request<B>) -> ProxyResponse
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let started = Instant::now();
        let (parts, body) = request.into_parts();
        let mut event = AuditEvent {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            request_id: uuid::Uuid::new_v4().to_string(),
            backend: self.config.upstream.kind.name(),
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            ..AuditEvent::default()
        };
        let result = match self.config.upstream.kind {
            BackendKind::Chroma => self.chroma(&parts, body, &mut event).await,
            BackendKind::Qdrant => self.qdrant(&parts, body, &mut event).await,
        };
        let response = match result {
            Ok(response) => response,
            Err(error) => {
                if event.decision.is_empty() || !matches!(error.status().as_u16(), 401 | 403) {
                    event.decision = if error.status().as_u16() == 403 { "deny" } else { "error" };
                }
                event.error = Some(error.kind());
                event.message = Some(error.to_string());
                error_response(self.config.upstream.kind, &error)
            }
        };
        event.status = response.status().as_u16();
        let elapsed = started.elapsed().as_secs_f64();
        event.latency_ms = elapsed * 1000.0;
        self.audit.record(&event);
        self.metrics.observe_request(
            event.backend,
            event.operation.unwrap_or("unclassified"),
            if event.decision.is_empty() { "none" } else { event.decision },
            event.status,
            elapsed,
        );
        // Hits stripped under post_filter_only are expected (counted as shortfall instead);
        // any other stripped hit means the pushed-down filter let something through.
        if let Some(n) = event.hits_stripped.filter(|n| *n > 0 && event.decision != "post_filter") {
            self.metrics.hits_stripped(event.backend, n);
        }
        response
    }

    /// Does the database answer its health route?
    pub async fn upstream_ready(&self) -> Result<(), ProxyError> {
        let path = match self.config.upstream.kind {
            BackendKind::Chroma => "/api/v2/heartbeat",
            BackendKind::Qdrant => "/readyz",
        };
        let answer = self
            .upstream
            .send(http::Method::GET, path, None, None, "readiness")
            .await?;
        if answer.is_success() {
            Ok(())
        } else {
            Err(ProxyError::UpstreamUnavailable(format!("health check answered {}", answer.status)))
        }
    }

    fn authenticate(&self, parts: &Parts, event: &mut AuditEvent) -> Result<Authenticated, ProxyError> {
        let auth = self.authn.authenticate(&parts.headers).inspect_err(|e| {
            self.metrics.auth_failure(e.reason());
        })?;
        event.subject = Some(auth.principal.id.clone());
        event.roles.clone_from(&auth.principal.roles);
        Ok(auth)
    }

    fn collection_rule(&self, name: &str) -> Result<&CollectionRule, ProxyError> {
        self.config.collection_rule(name).ok_or_else(|| {
            ProxyError::Forbidden(format!("no collection rule in the configuration matches {name:?}"))
        })
    }
}
