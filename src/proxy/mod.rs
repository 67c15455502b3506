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

use crate::backends::FieldMapping;
use crate::audit::{AuditEvent, AuditLog};
use crate::authn::{Authenticated, Authenticator};
use crate::config::{BackendKind, CollectionRule, Config, Mode};
use crate::metrics::Metrics;
use crate::policy::store::PolicyStore;
use bytes::Bytes;
use http::request::Parts;
use http::Request;
use respond::{error_response, ProxyError, ProxyResponse};
use std::sync::Arc;
use std::time::{Duration, Instant};
use upstream::Upstream;

/// Resource kind of everything that is neither a record nor a collection (DESIGN §2).
const ADMIN_KIND: &str = "vecgate:admin";

/// Leaf conditions in a filter, for the filter-size metric: object keys that are not
/// `$and`/`$or`/`must`/`should`/`must_not`.
fn count_filter_terms(filter: &serde_json::Value) -> usize {
    use serde_json::Value as Json;
    match filter {
        Json::Object(map) => map
            .iter()
            .map(|(k, v)| match (k.as_str(), v) {
                ("$and" | "$or" | "must" | "should" | "must_not", Json::Array(items)) => {
                    items.iter().map(count_filter_terms).sum()
                }
                ("$and" | "$or" | "must" | "should" | "must_not", nested @ Json::Object(_)) => {
                    count_filter_terms(nested)
                }
                _ => 1,
            })
            .sum(),
        _ => 0,
    }
}

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
    /// The field mapping of each `config.collections` rule, in the same order.
    mappings: Vec<FieldMapping>,
    audit: AuditLog,
    metrics: Arc<Metrics>,
}

/// A request whose answer is still being worked out. If the client goes away first, hyper
/// drops the handler mid-way; the guard then still writes the request's one audit line and
/// counts it, with status 499 (nginx's "client closed request").
struct Unanswered<'g> {
    gateway: &'g Gateway,
    started: Instant,
    answered: bool,
    event: AuditEvent,
}

/// The status recorded for a request its client abandoned.
pub const CLIENT_CLOSED: u16 = 499;

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        let event = &mut self.event;
        event.status = CLIENT_CLOSED;
        event.error = Some("client_closed");
        event.message = Some("the client closed the connection before the answer was ready".into());
        event.latency_ms = elapsed * 1000.0;
        if !self.gateway.audit.record(event) {
            self.gateway.metrics.audit_failure();
        }
        self.gateway.metrics.observe_request(
            event.backend,
            event.operation.unwrap_or("unclassified"),
            if event.decision.is_empty() { "none" } else { event.decision },
            CLIENT_CLOSED,
            elapsed,
        );
    }
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
            config.upstream.ca_file.as_deref(),
            config.upstream.kind.name(),
            metrics.clone(),
            upstream_api_key(&config)?,
            config.limits.max_upstream_requests,
        )?;
        Ok(Gateway {
            authn,
            policies,
            upstream,
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

    /// Answers one client request. Never fails: every error becomes the backend's error
    /// response here, and every request leaves one audit line.
    pub async fn handle<B>(&self, request: Request<B>) -> ProxyResponse
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let started = Instant::now();
        let (parts, body) = request.into_parts();
        let mut pending = Unanswered {
            gateway: self,
            started,
            answered: false,
            event: AuditEvent {
                time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                request_id: uuid::Uuid::new_v4().to_string(),
                backend: self.config.upstream.kind.name(),
                mode: "enforce",
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
                ..AuditEvent::default()
            },
        };
        let result = match self.config.mode {
            Mode::Enforce => self.dispatch(&parts, body, &mut pending.event).await,
            Mode::Shadow => self.shadow(&parts, body, &mut pending.event).await,
        };
        pending.answered = true;
        let mut event = std::mem::take(&mut pending.event);
        let response = match result {
            Ok(response) => response,
            Err(error) => {
                if event.decision.is_empty() || !matches!(error.status().as_u16(), 401 | 403) {
                    event.decision = if error.status().as_u16() == 403 { "deny" } else { "error" };
                }
                event.error = Some(error.kind());
                event.message = Some(error.to_string());
                let mut response = error_response(self.config.upstream.kind, &error);
                if !matches!(error, ProxyError::Database { .. }) {
                    // The request body may not have been read (refused before it was): say so,
                    // so that clients do not reuse a connection hyper is about to close.
                    response
                        .headers_mut()
                        .insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
                }
                response
            }
        };
        event.status = response.status().as_u16();
        let elapsed = started.elapsed().as_secs_f64();
        event.latency_ms = elapsed * 1000.0;
        let mut response = response;
        if !self.audit.record(&event) {
            self.metrics.audit_failure();
            if self.config.audit_on_failure == crate::config::AuditOnFailure::Deny {
                let refusal = ProxyError::AuditUnavailable;
                response = error_response(self.config.upstream.kind, &refusal);
                event.status = response.status().as_u16();
            }
        }
        self.metrics.observe_request(
            event.backend,
            event.operation.unwrap_or("unclassified"),
            if event.decision.is_empty() { "none" } else { event.decision },
            event.status,
            elapsed,
        );
        // Hits stripped under post_filter_only are expected (counted as shortfall instead);
        // any other stripped hit means the pushed-down filter let something through.
        // In shadow mode the database answers the unfiltered original, so stripped hits are
        // expected there too; they are in the audit log, not in this alarm.
        if let Some(n) = event
            .hits_stripped
            .filter(|n| *n > 0 && event.decision != "post_filter" && event.mode == "enforce")
        {
            self.metrics.hits_stripped(event.backend, n);
        }
        response
    }

    async fn dispatch<B>(&self, parts: &Parts, body: B, event: &mut AuditEvent) -> Result<ProxyResponse, ProxyError>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        match self.config.upstream.kind {
            BackendKind::Chroma => self.chroma(parts, body, event).await,
            BackendKind::Qdrant => self.qdrant(parts, body, event).await,
        }
    }

    /// `mode: shadow`: the whole pipeline runs (decisions, filters, checks, stripping are
    /// computed, logged and counted), but the client's request goes to the database
    /// unchanged and the database's answer comes back unchanged. Only the body size limit
    /// still applies, since it protects vecgate itself.
    async fn shadow<B>(&self, parts: &Parts, body: B, event: &mut AuditEvent) -> Result<ProxyResponse, ProxyError>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        event.mode = "shadow";
        let bytes = body::read_body(&parts.headers, body, &self.config.limits).await?;
        let original = upstream::ShadowExchange {
            method: parts.method.clone(),
            path_and_query: upstream::path_and_query(parts).to_string(),
            body: (!bytes.is_empty()).then(|| bytes.clone()),
            answer: None,
        };
        let (verdict, answer) = upstream::SHADOW
            .scope(std::cell::RefCell::new(original), async {
                let verdict = self
                    .dispatch(parts, http_body_util::Full::new(bytes), event)
                    .await;
                if upstream::SHADOW.with(|s| s.borrow().answer.is_none()) {
                    // Decided (or refused) before forwarding: forward the original now.
                    let forwarded = self
                        .upstream
                        .send(
                            parts.method.clone(),
                            upstream::path_and_query(parts),
                            Some(&parts.headers),
                            None,
                            &event.request_id,
                        )
                        .await;
                    if let Err(e) = forwarded {
                        return (verdict, Err(e));
                    }
                }
                let answer = upstream::SHADOW.with(|s| s.borrow_mut().answer.take());
                (verdict, answer.ok_or_else(|| ProxyError::Internal("shadow forward lost".into())))
            })
            .await;
        match &verdict {
            Ok(would_be) => event.enforced_status = Some(would_be.status().as_u16()),
            Err(e) => {
                event.enforced_status = Some(e.status().as_u16());
                event.error = Some(e.kind());
                event.message = Some(e.to_string());
                if event.decision.is_empty() || !matches!(e.status().as_u16(), 401 | 403) {
                    event.decision = if e.status().as_u16() >= 500 { "error" } else { "deny" };
                }
            }
        }
        answer.map(upstream::pass_back)
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

    /// Plans `action` on a collection's records and translates the plan with the backend's
    /// translator; the decision and the filter go into the audit event.
    #[allow(clippy::too_many_arguments)]
    fn record_access(
        &self,
        rule: &CollectionRule,
        mapping: &FieldMapping,
        action: &str,
        post_filter_only: bool,
        translate: authorize::Translate,
        decider: &authorize::Decider<'_>,
        event: &mut AuditEvent,
    ) -> Result<authorize::Access, ProxyError> {
        event.action = Some(action.to_string());
        let access = decider.access(
            &rule.resource_kind,
            action,
            mapping,
            self.config.limits.max_filter_terms,
            post_filter_only,
            translate,
        );
        match &access {
            Ok(a) => {
                event.decision = a.decision();
                event.filter = a.filter().cloned();
                if let Some(filter) = a.filter() {
                    self.metrics.filter_terms(count_filter_terms(filter));
                }
            }
            Err(_) => event.decision = "deny",
        }
        access
    }

    /// Everything that is neither a record nor a collection: resource kind `vecgate:admin`,
    /// the operation name as action; denied unless a policy allows it.
    fn require_admin(
        &self,
        action: &'static str,
        decider: &authorize::Decider<'_>,
        event: &mut AuditEvent,
    ) -> Result<(), ProxyError> {
        event.action = Some(action.to_string());
        let resource = authorize::Resource {
            kind: ADMIN_KIND,
            id: action,
            attr: std::collections::BTreeMap::new(),
        };
        if decider.may(action, &resource) {
            event.decision = "allow";
            Ok(())
        } else {
            event.decision = "deny";
            Err(ProxyError::Forbidden(format!("{ADMIN_KIND} action {action} is not allowed")))
        }
    }

    /// The first collection rule matching `name`, with its field mapping.
    fn collection_rule(&self, name: &str) -> Result<(&CollectionRule, &FieldMapping), ProxyError> {
        self.config
            .collection_rule_index(name)
            .and_then(|i| Some((self.config.collections.get(i)?, self.mappings.get(i)?)))
            .ok_or_else(|| {
                ProxyError::Forbidden(format!("no collection rule in the configuration matches {name:?}"))
            })
    }
}
