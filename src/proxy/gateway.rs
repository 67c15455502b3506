//! What every request shares: the configuration, the authenticator, the live policy set, the
//! database behind vecgate and the one client to it, caches, the audit log and metrics.

use super::error::ProxyError;
use super::forward::Forwarding;
use super::respond::ProxyResponse;
use super::upstream::{Upstream, UpstreamSettings};
use crate::audit::AuditLog;
use crate::authn::Authenticator;
use crate::backends::chroma::Chroma;
use crate::backends::qdrant::Qdrant;
use crate::backends::seam::Database;
use crate::backends::FieldMapping;
use crate::config::{BackendKind, CollectionRule, Config};
use crate::metrics::Metrics;
use crate::policy::store::PolicyStore;
use bytes::Bytes;
use http::Request;
use std::sync::Arc;
use std::time::Duration;

/// How long a collection id → name mapping is trusted (renames by other clients).
const COLLECTION_NAME_TTL: Duration = Duration::from_secs(30);

/// The database behind vecgate: the one place a backend is chosen. A third database is one
/// more variant here and one more arm in [`Gateway::handle`] and [`Gateway::upstream_ready`].
pub enum Backend {
    Chroma(Chroma),
    Qdrant(Qdrant),
}

impl From<BackendKind> for Backend {
    fn from(kind: BackendKind) -> Backend {
        match kind {
            BackendKind::Chroma => Backend::Chroma(Chroma),
            BackendKind::Qdrant => Backend::Qdrant(Qdrant),
        }
    }
}

/// Everything a request needs, shared by all connections.
pub struct Gateway {
    pub(super) config: Arc<Config>,
    pub(super) authn: Authenticator,
    pub(super) policies: Arc<PolicyStore>,
    pub(super) backend: Backend,
    pub(super) upstream: Upstream,
    pub(super) forwarding: Forwarding,
    /// Collection id (with tenant and database, where the database has them) → name.
    pub(super) collection_names: moka::sync::Cache<String, String>,
    /// The field mapping of each `config.collections` rule, in the same order.
    mappings: Vec<FieldMapping>,
    pub(super) audit: AuditLog,
    pub(super) metrics: Arc<Metrics>,
}

/// The client for the configured database (`upstream`: url, CA file, the database's own key),
/// with at most `max_in_flight` requests at once.
pub(super) fn upstream_client(config: &Config, max_in_flight: usize, metrics: Arc<Metrics>) -> Result<Upstream, ProxyError> {
    Ok(Upstream::new(
        UpstreamSettings {
            base_url: &config.upstream.url,
            timeout: config.upstream.timeout,
            ca_file: config.upstream.ca_file.as_deref(),
            backend: config.upstream.kind.name(),
            api_key: upstream_api_key(config)?,
            max_in_flight,
        },
        metrics,
    )?)
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
        let upstream = upstream_client(&config, config.limits.max_upstream_requests, metrics.clone())?;
        Ok(Gateway {
            authn,
            policies,
            backend: Backend::from(config.upstream.kind),
            upstream,
            forwarding: Forwarding::from(config.mode),
            collection_names: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(COLLECTION_NAME_TTL)
                .build(),
            mappings: config
                .collections
                .iter()
                .map(|rule| FieldMapping::new(&rule.attr_prefix, rule.required_attrs.iter().cloned()))
                .collect(),
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

    /// The token verifier (the admin listener's `POST /explain` verifies tokens with it).
    pub fn authenticator(&self) -> &Authenticator {
        &self.authn
    }

    /// Answers one client request. Never fails: every error becomes the database's error
    /// response, and every request leaves one audit line.
    pub async fn handle<B>(&self, request: Request<B>) -> ProxyResponse
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        match &self.backend {
            Backend::Chroma(db) => self.pipeline(db, request).await,
            Backend::Qdrant(db) => self.pipeline(db, request).await,
        }
    }

    /// Does the database answer its health route?
    pub async fn upstream_ready(&self) -> Result<(), ProxyError> {
        let path = match &self.backend {
            Backend::Chroma(db) => db.health_path(),
            Backend::Qdrant(db) => db.health_path(),
        };
        let answer = self.upstream.send(http::Method::GET, path, None, None, "readiness").await?;
        if answer.is_success() {
            Ok(())
        } else {
            Err(ProxyError::UpstreamUnavailable(format!("health check answered {}", answer.status)))
        }
    }

    /// The first collection rule matching `name`, with its field mapping.
    pub(super) fn collection_rule(&self, name: &str) -> Result<(&CollectionRule, &FieldMapping), ProxyError> {
        self.config
            .collection_rule_index(name)
            .and_then(|i| Some((self.config.collections.get(i)?, self.mappings.get(i)?)))
            .ok_or_else(|| ProxyError::Forbidden(format!("no collection rule in the configuration matches {name:?}")))
    }
}
