//! A recording HTTP forwarder for tests that run against a **real** Qdrant server: it sits on a
//! free loopback port in front of the server, forwards every request unchanged, and keeps a
//! copy of each (`{"method", "path", "query", "headers", "body"}`, the shape the Qdrant test
//! double's `/__test__/requests` gives), so a test can assert what reached "the database"
//! whichever Qdrant it runs against.
//!
//! Invariants: bodies and statuses pass through byte for byte; only hop-by-hop headers are
//! dropped. Recorded paths are normalised the way Qdrant's router sees them (percent-decoded,
//! repeated slashes merged, trailing slash dropped), as the double records them.
//!
//! With [`KeyCheck`] the forwarder also plays Qdrant's `service.api_key` check (for a server
//! given by `QDRANT_URL`, whose key the tests cannot choose): a request without the test's key
//! gets Qdrant's 401 answer; one with it is forwarded with the server's own key instead.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{json, Value};

type Forwarder = Client<HttpConnector, Full<Bytes>>;

/// Qdrant's own API-key check, played by the forwarder: the key callers must send (if any),
/// and the key the upstream server wants (if any). Callers' credentials never reach upstream.
#[derive(Clone, Debug)]
pub struct KeyCheck {
    pub required: Option<String>,
    pub upstream: Option<String>,
}

/// Routes Qdrant serves without credentials.
const OPEN_ROUTES: [&str; 4] = ["/", "/healthz", "/livez", "/readyz"];
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
    "proxy-connection",
];

pub struct RecordingProxy {
    url: String,
    records: Arc<Mutex<Vec<Value>>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl RecordingProxy {
    /// Starts forwarding to `upstream` (`http://host:port`) on a free loopback port.
    pub fn start(upstream: &str, key_check: Option<KeyCheck>) -> RecordingProxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime for the recording proxy");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1:0 for the recording proxy");
        let addr: SocketAddr = listener.local_addr().expect("local_addr");
        let records: Arc<Mutex<Vec<Value>>> = Arc::new(Mutex::new(Vec::new()));
        let client: Forwarder = Client::builder(TokioExecutor::new()).build_http();
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_string(),
            client,
            records: records.clone(),
            key_check,
        });
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = state.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(state.handle(req).await) }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        RecordingProxy {
            url: format!("http://{addr}"),
            records,
            runtime: Some(runtime),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn records(&self) -> Vec<Value> {
        self.records.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn clear(&self) -> usize {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let n = records.len();
        records.clear();
        n
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

struct State {
    upstream: String,
    client: Forwarder,
    records: Arc<Mutex<Vec<Value>>>,
    key_check: Option<KeyCheck>,
}

impl State {
    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let (mut parts, body) = req.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => return plain(StatusCode::BAD_REQUEST, format!("cannot read the body: {e}")),
        };
        let path = normalise(parts.uri.path());
        let headers: serde_json::Map<String, Value> = parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
                )
            })
            .collect();
        let text = String::from_utf8_lossy(&body);
        let recorded_body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.into_owned()))
        };
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(json!({
                "method": parts.method.as_str(),
                "path": path,
                "query": parts.uri.query().unwrap_or(""),
                "headers": headers,
                "body": recorded_body,
            }));

        if let Some(check) = &self.key_check {
            if let Some(required) = check.required.as_deref().filter(|_| !OPEN_ROUTES.contains(&path.as_str())) {
                let sent_key = parts.headers.get("api-key").and_then(|v| v.to_str().ok());
                let bearer = parts
                    .headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "));
                if sent_key != Some(required) && bearer != Some(required) {
                    let message = if sent_key.is_some() || bearer.is_some() {
                        "Invalid API key or JWT"
                    } else {
                        "Must provide an API key or an Authorization bearer token"
                    };
                    return json_answer(StatusCode::UNAUTHORIZED, json!({"status": {"error": message}, "time": 0.0}));
                }
            }
            parts.headers.remove("api-key");
            parts.headers.remove("authorization");
            if let Some(key) = check.upstream.as_deref().and_then(|k| HeaderValue::from_str(k).ok()) {
                parts.headers.insert("api-key", key);
            }
        }

        let target = format!(
            "{}{}",
            self.upstream,
            parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
        );
        parts.uri = match target.parse::<Uri>() {
            Ok(uri) => uri,
            Err(e) => return plain(StatusCode::BAD_REQUEST, format!("bad target {target}: {e}")),
        };
        parts.version = http::Version::HTTP_11;
        parts.headers.remove(http::header::HOST);
        for h in HOP_BY_HOP {
            parts.headers.remove(h);
        }
        let answer = match self.client.request(Request::from_parts(parts, Full::new(body))).await {
            Ok(answer) => answer,
            Err(e) => return plain(StatusCode::BAD_GATEWAY, format!("recording proxy: upstream failed: {e}")),
        };
        let (mut parts, body) = answer.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => return plain(StatusCode::BAD_GATEWAY, format!("recording proxy: upstream body: {e}")),
        };
        for h in HOP_BY_HOP {
            parts.headers.remove(h);
        }
        parts.headers.remove(http::header::CONTENT_LENGTH);
        Response::from_parts(parts, Full::new(body))
    }
}

fn plain(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(text)));
    *resp.status_mut() = status;
    resp
}

fn json_answer(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Percent-decoded, repeated slashes merged, no trailing slash (as actix's `NormalizePath`).
fn normalise(path: &str) -> String {
    let mut bytes = Vec::with_capacity(path.len());
    let raw = path.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' && i + 2 < raw.len() {
            if let Some(Ok(b)) = path.get(i + 1..i + 3).map(|h| u8::from_str_radix(h, 16)) {
                bytes.push(b);
                i += 3;
                continue;
            }
        }
        bytes.push(raw[i]);
        i += 1;
    }
    let decoded = String::from_utf8_lossy(&bytes).into_owned();
    let mut out = String::with_capacity(decoded.len());
    for c in decoded.chars() {
        if c == '/' && out.ends_with('/') {
            continue;
        }
        out.push(c);
    }
    if out.len() > 1 && out.ends_with('/') {
        out.pop();
    }
    out
}
