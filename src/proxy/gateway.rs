//! What every request shares: the configuration, the authenticator, the policy source, the
//! database behind vecgate and the one client to it (one per face: Qdrant's gRPC API has its
//! own), caches, the audit log and metrics.

use super::error::ProxyError;
use super::forward::Forwarding;
use super::respond::ProxyResponse;
use super::translations::Translations;
use super::upstream::{Upstream, UpstreamSettings};
use crate::audit::AuditLog;
use crate::authn::Authenticator;
use crate::backends::chroma::Chroma;
use crate::backends::qdrant::grpc::QdrantGrpc;
use crate::backends::qdrant::Qdrant;
use crate::backends::seam::{Database, Protocol};
use crate::backends::FieldMapping;
use crate::config::{BackendKind, CollectionRule, Config};
use crate::metrics::Metrics;
use crate::policy::source::Policies;
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

/// The gRPC face of the database, where `grpc_listen` is configured.
pub(super) struct GrpcFace {
    db: QdrantGrpc,
    upstream: Upstream,
}

/// Everything a request needs, shared by all connections.
pub struct Gateway {
    pub(super) config: Arc<Config>,
    pub(super) authn: Arc<Authenticator>,
    pub(super) policies: Policies,
    pub(super) backend: Backend,
    pub(super) upstream: Upstream,
    grpc: Option<GrpcFace>,
    pub(super) forwarding: Forwarding,
    /// Collection id (with tenant and database, where the database has them) → name.
    pub(super) collection_names: moka::sync::Cache<String, String>,
    /// The field mapping of each `config.collections` rule, in the same order.
    mappings: Vec<FieldMapping>,
    /// Plans from the plan cache translated into filters, by rule and database.
    pub(super) translations: Translations,
    pub(super) audit: AuditLog,
    pub(super) metrics: Arc<Metrics>,
}

/// The client for the configured database (`upstream`: url, CA file, the database's own key),
/// with at most `max_in_flight` requests at once.
/// The HTTP client to the database at `base_url` (its REST URL, or with `grpc` its gRPC URL).
pub(super) fn upstream_client(config: &Config, base_url: &str, grpc: bool, max_in_flight: usize, metrics: Arc<Metrics>) -> Result<Upstream, ProxyError> {
    Ok(Upstream::new(
        UpstreamSettings {
            base_url,
            timeout: config.upstream.timeout,
            ca_file: config.upstream.ca_file.as_deref(),
            backend: config.upstream.kind.name(),
            api_key: upstream_api_key(config)?,
            max_in_flight,
            grpc,
            workers: crate::workers::count(config.limits.workers),
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
        policies: impl Into<Policies>,
        audit: AuditLog,
        metrics: Arc<Metrics>,
    ) -> Result<Gateway, ProxyError> {
        let upstream = upstream_client(&config, &config.upstream.url, false, config.limits.max_upstream_requests, metrics.clone())?;
        let grpc = match &config.upstream.grpc_url {
            None => None,
            Some(url) => Some(GrpcFace {
                db: QdrantGrpc,
                upstream: upstream_client(&config, url, true, config.limits.max_upstream_requests, metrics.clone())?,
            }),
        };
        Ok(Gateway {
            authn: Arc::new(authn),
            policies: policies.into(),
            backend: Backend::from(config.upstream.kind),
            upstream,
            grpc,
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
            translations: Translations::new(),
            audit,
            metrics,
            config,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Writes the lines a buffered audit log (`audit.flush_interval`) still holds.
    pub fn flush_audit(&self) {
        self.audit.flush();
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

    /// Answers one gRPC call (the `grpc_listen` listener), like [`Gateway::handle`].
    pub async fn handle_grpc<B>(&self, request: Request<B>) -> ProxyResponse
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        match &self.grpc {
            Some(face) => self.pipeline(&face.db, request).await,
            // The listener exists only with the face; answered in gRPC's terms all the same.
            None => self.pipeline(&QdrantGrpc, request).await,
        }
    }

    /// The client to the database for a face's protocol.
    pub(super) fn upstream(&self, protocol: Protocol) -> Result<&Upstream, ProxyError> {
        match (protocol, &self.grpc) {
            (Protocol::Http, _) => Ok(&self.upstream),
            (Protocol::Grpc, Some(face)) => Ok(&face.upstream),
            (Protocol::Grpc, None) => Err(ProxyError::Config("upstream.grpc_url is not configured".into())),
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
        self.indexed_rule(name).map(|(_, rule, mapping)| (rule, mapping))
    }

    /// [`Gateway::collection_rule`] with the rule's position in `config.collections`.
    pub(super) fn indexed_rule(&self, name: &str) -> Result<(usize, &CollectionRule, &FieldMapping), ProxyError> {
        self.config
            .collection_rule_index(name)
            .and_then(|i| Some((i, self.config.collections.get(i)?, self.mappings.get(i)?)))
            .ok_or_else(|| ProxyError::Forbidden(format!("no collection rule in the configuration matches {name:?}")))
    }
}
