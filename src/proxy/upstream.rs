//! The one pooled HTTP client to the database.

use super::respond::ProxyError;
use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use crate::metrics::Metrics;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest upstream response read into memory. Responses are parsed whole (to strip hits),
/// so this bounds memory per request.
pub const MAX_RESPONSE_BYTES: usize = 512 * 1024 * 1024;

/// Request headers passed to the database; everything else (credentials, hop-by-hop headers,
/// `Accept-Encoding`, so responses arrive uncompressed and can be filtered) stays here.
const FORWARDED_REQUEST_HEADERS: [HeaderName; 2] = [http::header::ACCEPT, http::header::USER_AGENT];

/// An upstream answer, read whole.
pub struct UpstreamResponse {
    pub status: StatusCode,
    pub content_type: Option<HeaderValue>,
    pub body: Bytes,
}

impl UpstreamResponse {
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }
}

pub struct Upstream {
    client: Client<HttpConnector, Full<Bytes>>,
    metrics: Arc<Metrics>,
    /// Metric label of the database kind.
    backend: &'static str,
    /// The database's own API key, sent as `api-key` on every request.
    api_key: Option<HeaderValue>,
    /// `scheme://host:port[/prefix]`, no trailing slash.
    base: String,
    timeout: Duration,
}

impl Upstream {
    pub fn new(
        base_url: &str,
        timeout: Duration,
        backend: &'static str,
        metrics: Arc<Metrics>,
        api_key: Option<HeaderValue>,
    ) -> Result<Upstream, ProxyError> {
        if !base_url.starts_with("http://") {
            return Err(ProxyError::Config(format!(
                "upstream url {base_url}: only http:// upstreams are supported so far"
            )));
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout.min(Duration::from_secs(5))));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(Upstream {
            client,
            metrics,
            backend,
            api_key,
            base: base_url.trim_end_matches('/').to_string(),
            timeout,
        })
    }

    /// Sends one request and reads the whole answer, within the configured timeout.
    /// `path_and_query` starts with `/`. A JSON body gets `Content-Type: application/json`.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        client_headers: Option<&HeaderMap>,
        body: Option<Bytes>,
        request_id: &str,
    ) -> Result<UpstreamResponse, ProxyError> {
        let uri = format!("{}{}", self.base, path_and_query);
        let mut builder = Request::builder().method(method).uri(&uri);
        if let Some(headers) = client_headers {
            for name in &FORWARDED_REQUEST_HEADERS {
                for value in headers.get_all(name) {
                    builder = builder.header(name, value);
                }
            }
        }
        builder = builder.header("x-request-id", request_id);
        if let Some(key) = &self.api_key {
            builder = builder.header("api-key", key);
        }
        let body = match body {
            Some(b) => {
                builder = builder.header(CONTENT_TYPE, "application/json");
                b
            }
            None => Bytes::new(),
        };
        let request = builder
            .body(Full::new(body))
            .map_err(|e| ProxyError::Internal(format!("building the upstream request: {e}")))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| ProxyError::UpstreamUnavailable(describe_client_error(&e)))?;
            let status = response.status();
            let content_type = response.headers().get(CONTENT_TYPE).cloned();
            let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| ProxyError::UpstreamUnavailable(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok(UpstreamResponse {
                status,
                content_type,
                body,
            })
        };
        let started = Instant::now();
        let result = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(ProxyError::UpstreamTimeout(self.timeout)),
        };
        match &result {
            Ok(_) => self.metrics.upstream(self.backend, started.elapsed().as_secs_f64()),
            Err(e) => self.metrics.upstream_error(self.backend, e.kind()),
        }
        result
    }
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

/// The path and query of a client request, forwarded as they came (routes are matched
/// exactly, so nothing needs rewriting).
pub fn path_and_query(parts: &http::request::Parts) -> &str {
    parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path(), |pq| pq.as_str())
}

pub fn to_bytes(value: &serde_json::Value) -> Result<Bytes, ProxyError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| ProxyError::Internal(format!("serialising a body: {e}")))
}

/// The database's answer as JSON; anything else cannot be checked and fails closed.
pub fn parse_answer(answer: &UpstreamResponse) -> Result<serde_json::Value, ProxyError> {
    serde_json::from_slice(&answer.body)
        .map_err(|e| ProxyError::UpstreamUnreadable(format!("the answer is not JSON: {e}")))
}

/// The database's answer, unchanged, for the client.
pub fn pass_back(answer: UpstreamResponse) -> super::respond::ProxyResponse {
    super::respond::raw_response(answer.status, answer.content_type, answer.body)
}
