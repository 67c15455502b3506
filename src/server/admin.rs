//! The admin port: `/metrics` (Prometheus), `/healthz` (alive) and `/readyz` (policies
//! loaded and the database answering), and `POST /explain` where `admin_explain` enables it
//! (otherwise a POST is refused as before: GET only). Never the data port's routes.

use crate::proxy::Gateway;
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The admin port's answers (plain bodies, no trailers).
type ProxyResponse = Response<Full<Bytes>>;

fn raw_response(status: StatusCode, content_type: &'static str, body: Bytes) -> ProxyResponse {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> ProxyResponse {
    raw_response(status, "application/json", Bytes::from(body.to_string()))
}

/// `/healthz` (alive) and `/readyz` (policies loaded, or the PDP answering, and the database
/// answering).
pub(super) async fn serve(gateway: Arc<Gateway>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => continue,
            },
        };
        let gateway = gateway.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let gateway = gateway.clone();
                async move { Ok::<ProxyResponse, Infallible>(admin_answer(&gateway, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn admin_answer(gateway: &Gateway, request: Request<Incoming>) -> ProxyResponse {
    if request.uri().path() == "/explain" && gateway.config().admin_explain {
        if request.method() != Method::POST {
            return json_response(StatusCode::METHOD_NOT_ALLOWED, &json!({"error": "POST only"}));
        }
        let (status, body) = super::explain::explain(gateway, request.into_body()).await;
        return json_response(status, &body);
    }
    if request.method() != Method::GET {
        return json_response(StatusCode::METHOD_NOT_ALLOWED, &json!({"error": "GET only"}));
    }
    match request.uri().path() {
        "/healthz" => json_response(StatusCode::OK, &json!({"status": "alive"})),
        "/metrics" => raw_response(StatusCode::OK, crate::metrics::CONTENT_TYPE, Bytes::from(gateway.metrics().render())),
        "/readyz" => {
            let version = gateway.policies().version();
            let ready = match gateway.upstream_ready().await {
                Ok(()) => gateway.policies().ready().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match ready {
                Ok(()) => json_response(
                    StatusCode::OK,
                    &json!({"status": "ready", "policy_version": version}),
                ),
                Err(e) => json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &json!({"status": "not ready", "reason": e}),
                ),
            }
        }
        _ => json_response(StatusCode::NOT_FOUND, &json!({"error": "not found"})),
    }
}
