//! The HTTP client to the PDP: one pooled hyper client (rustls for `https`, the CA file
//! replacing the bundled roots when given), a timeout per request, and the plan cache.
//!
//! Invariant: a request that fails in any way (connection, timeout, status, body) yields a
//! [`PdpError`], never a default decision; nothing failed is cached.

use super::translate::plan_from_filter;
use super::wire;
use super::{PdpConfig, PdpError};
use crate::plan::{Plan, Value};
use crate::policy::cache::{fingerprint, Fingerprint, FingerprintHasher};
use crate::policy::planner::Principal;
use crate::workers::PerWorker;
use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::collections::BTreeMap;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

/// Resources per CheckResources request: Cerbos' default `maxResourcesPerRequest`.
pub const CHECK_BATCH: usize = 50;
/// Largest PDP answer read.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;
/// Plans kept at most.
const PLAN_CACHE_CAPACITY: u64 = 10_000;

/// The caller's token for the PDP's `request.auxData.jwt`, with the claims vecgate verified.
#[derive(Clone, Copy, Debug)]
pub struct JwtAux<'a> {
    /// The raw JWT; the PDP verifies it with its own key sets.
    pub token: &'a str,
    pub claims: &'a BTreeMap<String, Value>,
}

/// A client of one PDP.
pub struct PdpClient {
    /// One connection pool per worker (see [`crate::workers`]).
    http: PerWorker<Client<HttpsConnector<HttpConnector>, Full<Bytes>>>,
    base: String,
    timeout: Duration,
    /// `None` when `plan_cache_ttl` is zero.
    plans: Option<moka::sync::Cache<Fingerprint, Arc<Plan>>>,
    /// `policies.pdp.send_token`.
    send_token: bool,
}

impl PdpClient {
    /// A client for callers off the proxy's workers (the CLI's commands, tests).
    pub fn new(config: &PdpConfig) -> Result<PdpClient, PdpError> {
        PdpClient::for_workers(config, 0)
    }

    /// A client with one connection pool for each of `workers` proxy workers
    /// ([`crate::workers`]) and one for every other thread.
    pub fn for_workers(config: &PdpConfig, workers: usize) -> Result<PdpClient, PdpError> {
        if !(config.url.starts_with("http://") || config.url.starts_with("https://")) {
            return Err(PdpError::Config(format!(
                "{}: only http:// and https:// PDP urls are supported",
                config.url
            )));
        }
        let connector = crate::tls::https_connector(
            config.ca_file.as_deref(),
            true,
            crate::tls::HttpVersions::Http1,
            config.timeout,
        )
        .map_err(|e| PdpError::Config(format!("policies.pdp.tls: {e}")))?;
        let http = PerWorker::new(workers, || {
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(60))
                .build(connector.clone())
        });
        let plans = (!config.plan_cache_ttl.is_zero()).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(PLAN_CACHE_CAPACITY)
                .time_to_live(config.plan_cache_ttl)
                .build()
        });
        Ok(PdpClient {
            http,
            base: config.url.trim_end_matches('/').to_string(),
            timeout: config.timeout,
            plans,
            send_token: config.send_token,
        })
    }

    /// The PDP's base URL, as configured (without a trailing `/`).
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Does the PDP want callers' tokens (`policies.pdp.send_token`)? Callers pass a
    /// [`JwtAux`] only then.
    pub fn sends_token(&self) -> bool {
        self.send_token
    }

    /// The plan for `action` on records of `kind` (see the module documentation).
    pub async fn plan(
        &self,
        principal: &Principal,
        jwt: Option<JwtAux<'_>>,
        kind: &str,
        action: &str,
    ) -> Result<Arc<Plan>, PdpError> {
        let key = cache_key(principal, jwt, kind, action);
        if let Some(hit) = self.plans.as_ref().and_then(|c| c.get(&key)) {
            return Ok(hit);
        }
        let body = wire::plan_request(
            &request_id(),
            &wire::principal(principal),
            jwt.map(|j| j.token),
            kind,
            action,
        );
        let answer = self.post("/api/plan/resources", &body).await?;
        let plan = Arc::new(plan_from_filter(wire::plan_answer(&answer)?)?);
        if let Some(cache) = &self.plans {
            cache.insert(key, plan.clone());
        }
        Ok(plan)
    }

    /// Whether `action` is allowed on each resource, in order.
    pub async fn check(
        &self,
        principal: &Principal,
        jwt: Option<JwtAux<'_>>,
        kind: &str,
        action: &str,
        resources: &[(&str, &BTreeMap<String, Value>)],
    ) -> Result<Vec<bool>, PdpError> {
        let principal_json = wire::principal(principal);
        let mut out = Vec::with_capacity(resources.len());
        for batch in resources.chunks(CHECK_BATCH) {
            let body = wire::check_request(
                &request_id(),
                &principal_json,
                jwt.map(|j| j.token),
                kind,
                action,
                batch,
            );
            let answer = self.post("/api/check/resources", &body).await?;
            out.extend(wire::check_answer(&answer, action, batch)?);
        }
        Ok(out)
    }

    /// The PDP's decision on `action` for one resource, with the policy that matched and the
    /// derived roles that were active (CheckResources with `includeMeta`): for explain.
    pub async fn check_explained(
        &self,
        principal: &Principal,
        jwt: Option<JwtAux<'_>>,
        kind: &str,
        action: &str,
        resource: (&str, &BTreeMap<String, Value>),
    ) -> Result<wire::ExplainedEffect, PdpError> {
        let body = wire::explained_check_request(
            &request_id(),
            &wire::principal(principal),
            jwt.map(|j| j.token),
            kind,
            action,
            resource,
        );
        let answer = self.post("/api/check/resources", &body).await?;
        wire::explained_check_answer(&answer, action, resource)
    }

    /// Does the PDP answer its health route (`/_cerbos/health`)? For vecgate's `/readyz`.
    pub async fn ready(&self) -> Result<(), PdpError> {
        let url = format!("{}/_cerbos/health", self.base);
        let request = Request::builder()
            .method(Method::GET)
            .uri(&url)
            .body(Full::new(Bytes::new()))
            .map_err(|e| PdpError::Config(format!("{url}: {e}")))?;
        let (status, bytes) = self.exchange(request).await?;
        if status == StatusCode::OK {
            Ok(())
        } else {
            Err(PdpError::BadAnswer(format!(
                "HTTP {status} from /_cerbos/health: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            )))
        }
    }

    /// POSTs a JSON body and reads a JSON answer, all within the timeout.
    async fn post(&self, path: &str, body: &serde_json::Value) -> Result<serde_json::Value, PdpError> {
        let url = format!("{}{path}", self.base);
        let request = Request::builder()
            .method(Method::POST)
            .uri(&url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| PdpError::Config(format!("{url}: {e}")))?;
        let (status, bytes) = self.exchange(request).await?;
        if status != StatusCode::OK {
            return Err(PdpError::BadAnswer(format!(
                "HTTP {status} from {path}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            )));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| PdpError::BadAnswer(format!("{path} answered with invalid JSON: {e}")))
    }

    /// Sends a request and reads the whole answer, within the timeout.
    async fn exchange(&self, request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), PdpError> {
        let exchange = async {
            let response = self.http.get().request(request).await.map_err(|e| PdpError::Unreachable {
                url: self.base.clone(),
                reason: error_chain(&e),
            })?;
            let status = response.status();
            let bytes = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| PdpError::BadAnswer(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok::<_, PdpError>((status, bytes))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| PdpError::Timeout(self.timeout))?
    }
}

/// What a plan depends on: the principal, the claims sent to the PDP, the kind and the action.
fn cache_key(principal: &Principal, jwt: Option<JwtAux<'_>>, kind: &str, action: &str) -> Fingerprint {
    let mut h = FingerprintHasher::new();
    fingerprint(principal).hash(&mut h);
    if let Some(j) = jwt {
        let claims = Principal {
            attr: j.claims.clone(),
            ..Principal::default()
        };
        fingerprint(&claims).hash(&mut h);
    }
    kind.hash(&mut h);
    action.hash(&mut h);
    h.finish128()
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// An error with its causes, for a message that says why a connection failed.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
