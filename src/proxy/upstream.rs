//! The pooled HTTP client to the database (one pool per worker, [`crate::workers`]). It sends
//! what it is given and reads the whole answer; it knows nothing of modes, decisions or
//! databases.
//!
//! `http://` and `https://` upstreams. For `https`, the server certificate is checked against
//! `upstream.tls.ca_file` alone when it is set (it replaces the bundled Mozilla roots rather
//! than extending them: a sidecar talks to one database, usually behind a private CA), else
//! against the bundled Mozilla roots ([`crate::tls`]). ALPN offers HTTP/2 and HTTP/1.1.
//!
//! A gRPC upstream ([`UpstreamSettings::grpc`]) speaks HTTP/2 only (prior knowledge on
//! `http://`), sends `application/grpc` bodies with `te: trailers`, and reads the call's status
//! from the trailers into the [`Answer`]: its HTTP-equivalent status, and the status trailers
//! themselves to pass on. An answer without a gRPC status is the database failing.

use crate::backends::seam::Answer;
use crate::grpc;
use crate::metrics::Metrics;
use crate::workers::PerWorker;
use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use http::response::Parts;
use http::{Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest upstream response read into memory. Responses are parsed whole (to strip hits),
/// so this bounds memory per request.
pub const MAX_RESPONSE_BYTES: usize = 512 * 1024 * 1024;

/// Request headers passed to the database; everything else (credentials, hop-by-hop headers,
/// `Accept-Encoding`, so responses arrive uncompressed and can be filtered) stays here.
const FORWARDED_REQUEST_HEADERS: [HeaderName; 2] = [http::header::ACCEPT, http::header::USER_AGENT];

/// Header names vecgate adds, made once rather than parsed from text on every request.
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const API_KEY: HeaderName = HeaderName::from_static("api-key");
const JSON: HeaderValue = HeaderValue::from_static("application/json");
const GRPC: HeaderValue = HeaderValue::from_static(grpc::CONTENT_TYPE_GRPC);
const TRAILERS: HeaderValue = HeaderValue::from_static("trailers");

/// Why an exchange with the database failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("{0}")]
    Unavailable(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Internal(String),
}

impl UpstreamError {
    /// Every kind, for metrics exported before the first error of each.
    pub const KINDS: [&'static str; 3] = ["upstream_unavailable", "upstream_timeout", "internal"];

    /// The `kind` label of `vecgate_upstream_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Unavailable(_) => "upstream_unavailable",
            UpstreamError::Timeout(_) => "upstream_timeout",
            UpstreamError::Config(_) | UpstreamError::Internal(_) => "internal",
        }
    }
}

pub struct Upstream {
    /// One connection pool per worker (see [`crate::workers`]).
    clients: PerWorker<Client<HttpsConnector<HttpConnector>, Full<Bytes>>>,
    metrics: Arc<Metrics>,
    /// Metric label of the database kind.
    backend: &'static str,
    /// The database's own API key, sent as `api-key` on every request.
    api_key: Option<HeaderValue>,
    /// `scheme://host:port[/prefix]`, no trailing slash.
    base: String,
    timeout: Duration,
    /// `limits.max_upstream_requests` slots: a database that slows down is not sent an
    /// ever-growing number of concurrent requests (and connections).
    slots: tokio::sync::Semaphore,
    /// Speaks gRPC (see the module documentation).
    grpc: bool,
}

/// Where and how to reach the database.
pub struct UpstreamSettings<'a> {
    pub base_url: &'a str,
    pub timeout: Duration,
    /// Trust anchors for an `https` upstream (see the module documentation).
    pub ca_file: Option<&'a Path>,
    pub backend: &'static str,
    pub api_key: Option<HeaderValue>,
    pub max_in_flight: usize,
    /// The database's gRPC port rather than its HTTP API.
    pub grpc: bool,
    /// The proxy's worker count: one connection pool each ([`crate::workers`]).
    pub workers: usize,
}

impl Upstream {
    /// An unreadable or unusable CA file, or a URL that is not http(s), is
    /// [`UpstreamError::Config`].
    pub fn new(settings: UpstreamSettings<'_>, metrics: Arc<Metrics>) -> Result<Upstream, UpstreamError> {
        let base_url = settings.base_url;
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(UpstreamError::Config(format!(
                "upstream url {base_url}: only http:// and https:// upstreams are supported"
            )));
        }
        let versions = if settings.grpc { crate::tls::HttpVersions::Http2 } else { crate::tls::HttpVersions::Http1And2 };
        let connector =
            crate::tls::https_connector(settings.ca_file, true, versions, settings.timeout.min(Duration::from_secs(5)))
                .map_err(|e| UpstreamError::Config(format!("upstream.tls: {e}")))?;
        let clients = PerWorker::new(settings.workers, || {
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(60))
                .http2_only(settings.grpc)
                .build(connector.clone())
        });
        Ok(Upstream {
            clients,
            metrics,
            backend: settings.backend,
            api_key: settings.api_key,
            base: base_url.trim_end_matches('/').to_string(),
            timeout: settings.timeout,
            slots: tokio::sync::Semaphore::new(settings.max_in_flight),
            grpc: settings.grpc,
        })
    }

    /// Sends one request and reads the whole answer, within the configured timeout.
    /// `path_and_query` starts with `/`. A body gets `Content-Type: application/json`.
    /// `client_headers`: the client's request, whose `Accept` and `User-Agent` go along.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        client_headers: Option<&HeaderMap>,
        body: Option<Bytes>,
        request_id: &str,
    ) -> Result<Answer, UpstreamError> {
        let uri = format!("{}{}", self.base, path_and_query);
        let mut builder = Request::builder().method(method).uri(&uri);
        if let Some(headers) = client_headers {
            for name in &FORWARDED_REQUEST_HEADERS {
                for value in headers.get_all(name) {
                    builder = builder.header(name, value);
                }
            }
        }
        builder = builder.header(X_REQUEST_ID, request_id);
        if let Some(key) = &self.api_key {
            builder = builder.header(API_KEY, key);
        }
        let body = match body {
            Some(b) if self.grpc => {
                builder = builder.header(CONTENT_TYPE, GRPC).header(http::header::TE, TRAILERS);
                b
            }
            Some(b) => {
                builder = builder.header(CONTENT_TYPE, JSON);
                b
            }
            None => Bytes::new(),
        };
        let request = builder
            .body(Full::new(body))
            .map_err(|e| UpstreamError::Internal(format!("building the upstream request: {e}")))?;
        let exchange = async {
            // Waiting for a slot counts against the timeout like the exchange itself.
            let _slot = self
                .slots
                .acquire()
                .await
                .map_err(|_| UpstreamError::Internal("the upstream slots are closed".into()))?;
            let response = self
                .clients
                .get()
                .request(request)
                .await
                .map_err(|e| UpstreamError::Unavailable(describe_client_error(&e)))?;
            // Taken apart rather than copied: only the headers' `Content-Type` (and for gRPC
            // a trailers-only answer's status) is read.
            let (Parts { status, mut headers, .. }, incoming) = response.into_parts();
            let content_type = headers.remove(CONTENT_TYPE);
            let collected = Limited::new(incoming, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| UpstreamError::Unavailable(format!("reading the answer: {e}")))?;
            if !self.grpc {
                return Ok(Answer { status, content_type, body: collected.to_bytes(), trailers: None });
            }
            let trailers = collected.trailers().cloned();
            grpc_answer(status, &headers, trailers.as_ref(), content_type, collected.to_bytes())
        };
        let started = Instant::now();
        let result = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(UpstreamError::Timeout(self.timeout)),
        };
        match &result {
            Ok(_) => self.metrics.upstream(self.backend, started.elapsed().as_secs_f64()),
            Err(e) => self.metrics.upstream_error(self.backend, e.kind()),
        }
        result
    }
}

/// A gRPC answer: its status from the trailers, or from the headers of a trailers-only answer.
fn grpc_answer(
    status: http::StatusCode,
    headers: &HeaderMap,
    trailers: Option<&HeaderMap>,
    content_type: Option<HeaderValue>,
    body: Bytes,
) -> Result<Answer, UpstreamError> {
    if status != http::StatusCode::OK {
        return Err(UpstreamError::Unavailable(format!("the gRPC upstream answered HTTP {status}")));
    }
    let (code, _, status_trailers) = trailers
        .and_then(grpc::read_status)
        .or_else(|| grpc::read_status(headers))
        .ok_or_else(|| UpstreamError::Unavailable("the gRPC upstream's answer carries no grpc-status".into()))?;
    Ok(Answer { status: grpc::http_status(code), content_type, body, trailers: Some(Box::new(status_trailers)) })
}

fn describe_client_error(e: &hyper_util::client::legacy::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
