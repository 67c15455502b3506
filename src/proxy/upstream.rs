//! The one pooled HTTP client to the database.
//!
//! `http://` and `https://` upstreams. For `https`, the server certificate is checked against
//! `upstream.tls.ca_file` alone when it is set (it replaces the bundled Mozilla roots rather
//! than extending them: a sidecar talks to one database, usually behind a private CA), else
//! against the bundled Mozilla roots ([`crate::tls`]). ALPN offers HTTP/2 and HTTP/1.1.

use super::respond::ProxyError;
use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use crate::metrics::Metrics;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest upstream response read into memory. Responses are parsed whole (to strip hits),
/// so this bounds memory per request.
pub const MAX_RESPONSE_BYTES: usize = 512 * 1024 * 1024;

/// Request headers passed to the database; everything else (credentials, hop-by-hop headers,
/// `Accept-Encoding`, so responses arrive uncompressed and can be filtered) stays here.
const FORWARDED_REQUEST_HEADERS: [HeaderName; 2] = [http::header::ACCEPT, http::header::USER_AGENT];

/// Shadow mode: the client's request exactly as it came, and the database's answer to it.
/// While a request runs in shadow mode, the pipeline's final forward (the one that carries the
/// client's headers) sends this original instead of the rewritten request, so the client gets
/// the database's unmodified answer, while everything else is still computed.
pub struct ShadowExchange {
    pub method: Method,
    pub path_and_query: String,
    pub body: Option<Bytes>,
    pub answer: Option<UpstreamResponse>,
}

tokio::task_local! {
    /// Set for the duration of one request in shadow mode.
    pub static SHADOW: std::cell::RefCell<ShadowExchange>;
}

/// An upstream answer, read whole.
#[derive(Clone)]
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
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
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
}

impl Upstream {
    /// `ca_file`: trust anchors for an `https` upstream (see the module documentation); an
    /// unreadable or unusable file is [`ProxyError::Config`].
    pub fn new(
        base_url: &str,
        timeout: Duration,
        ca_file: Option<&Path>,
        backend: &'static str,
        metrics: Arc<Metrics>,
        api_key: Option<HeaderValue>,
        max_in_flight: usize,
    ) -> Result<Upstream, ProxyError> {
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(ProxyError::Config(format!(
                "upstream url {base_url}: only http:// and https:// upstreams are supported"
            )));
        }
        let connector = crate::tls::https_connector(
            ca_file,
            true,
            crate::tls::HttpVersions::Http1And2,
            timeout.min(Duration::from_secs(5)),
        )
        .map_err(|e| ProxyError::Config(format!("upstream.tls: {e}")))?;
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
            slots: tokio::sync::Semaphore::new(max_in_flight),
        })
    }

    /// Sends one request and reads the whole answer, within the configured timeout.
    /// `path_and_query` starts with `/`. A JSON body gets `Content-Type: application/json`.
    /// `client_headers` is given only for the forward of the client's own request (not for
    /// the proxy's lookups); in shadow mode that forward sends the original request instead.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        client_headers: Option<&HeaderMap>,
        body: Option<Bytes>,
        request_id: &str,
    ) -> Result<UpstreamResponse, ProxyError> {
        if client_headers.is_some() {
            let original = SHADOW.try_with(|s| {
                let s = s.borrow();
                match &s.answer {
                    Some(answer) => Err(answer.clone()),
                    None => Ok((s.method.clone(), s.path_and_query.clone(), s.body.clone())),
                }
            });
            match original {
                Ok(Err(answer)) => return Ok(answer),
                Ok(Ok((method, path, body))) => {
                    let answer = self
                        .send_now(method, &path, client_headers, body, request_id)
                        .await?;
                    let _ = SHADOW.try_with(|s| s.borrow_mut().answer = Some(answer.clone()));
                    return Ok(answer);
                }
                Err(_) => {}
            }
        }
        self.send_now(method, path_and_query, client_headers, body, request_id)
            .await
    }

    async fn send_now(
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
            // Waiting for a slot counts against the timeout like the exchange itself.
            let _slot = self
                .slots
                .acquire()
                .await
                .map_err(|_| ProxyError::Internal("the upstream slots are closed".into()))?;
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
/// The database's answer for the client, body unchanged; see [`gateway_status`].
pub fn pass_back(answer: UpstreamResponse) -> super::respond::ProxyResponse {
    super::respond::raw_response(gateway_status(answer.status), answer.content_type, answer.body)
}

/// The status the client gets for the database's: its own, except that a server error
/// becomes 502 — the gateway's upstream failed (as Envoy and nginx report it). The body still
/// carries the database's message in its own error shape.
pub fn gateway_status(status: http::StatusCode) -> http::StatusCode {
    if status.is_server_error() {
        http::StatusCode::BAD_GATEWAY
    } else {
        status
    }
}
