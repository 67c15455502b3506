//! The one place errors become HTTP answers, in the database's own error shape so that client
//! SDKs raise their usual exceptions.

use crate::authn::AuthnError;
use crate::backends::TranslateError;
use crate::config::BackendKind;
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::json;
use std::time::Duration;

pub type ProxyResponse = Response<Full<Bytes>>;

/// Everything that stops a request. Messages never contain tokens.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("authentication failed: {0}")]
    Unauthenticated(#[from] AuthnError),
    #[error("vecgate does not allow this route: {0}")]
    UnknownRoute(String),
    #[error("access denied: {0}")]
    Forbidden(String),
    #[error("access denied: the policy's condition {0}; no filter was sent to the database")]
    Untranslatable(TranslateError),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("unsupported media: {0}")]
    UnsupportedMedia(String),
    #[error("request body larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("the request body did not arrive within {0:?}")]
    BodyTimeout(Duration),
    #[error("the database did not answer: {0}")]
    UpstreamUnavailable(String),
    #[error("the database did not answer within {0:?}")]
    UpstreamTimeout(Duration),
    #[error("the database's answer could not be checked: {0}")]
    UpstreamUnreadable(String),
    /// The database's own answer to a lookup the proxy made (for example a missing
    /// collection), passed back to the client unchanged.
    #[error("the database answered {status}")]
    Database {
        status: StatusCode,
        content_type: Option<HeaderValue>,
        body: Bytes,
    },
    /// `audit.on_failure: deny` and the audit line could not be written.
    #[error("the audit log cannot be written; vecgate answers nothing it cannot audit")]
    AuditUnavailable,
    #[error("configuration: {0}")]
    Config(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ProxyError::UnknownRoute(_)
            | ProxyError::Forbidden(_)
            | ProxyError::Untranslatable(_) => StatusCode::FORBIDDEN,
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::UnsupportedMedia(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ProxyError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ProxyError::UpstreamUnavailable(_) | ProxyError::UpstreamUnreadable(_) => {
                StatusCode::BAD_GATEWAY
            }
            ProxyError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Database { status, .. } => super::upstream::gateway_status(*status),
            ProxyError::Config(_) | ProxyError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ProxyError::AuditUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Every value [`ProxyError::kind`] returns, in its order. A new kind goes here too
    /// (tests/metrics.rs compares this list with `kind()` over every variant).
    pub const KINDS: &'static [&'static str] = &[
        "unauthenticated",
        "unknown_route",
        "forbidden",
        "untranslatable",
        "bad_request",
        "unsupported_media",
        "payload_too_large",
        "body_timeout",
        "upstream_unavailable",
        "upstream_timeout",
        "upstream_unreadable",
        "database",
        "audit_unavailable",
        "config",
        "internal",
    ];

    /// The kinds a failed exchange with the database is counted under in
    /// `vecgate_upstream_errors_total{kind}` (upstream.rs: no connection or no complete answer,
    /// no answer in time, no free upstream slot); each series is exported at 0 from start-up.
    pub const UPSTREAM_KINDS: &'static [&'static str] =
        &["upstream_unavailable", "upstream_timeout", "internal"];

    /// A bounded label for metrics and the audit log.
    pub fn kind(&self) -> &'static str {
        match self {
            ProxyError::Unauthenticated(_) => "unauthenticated",
            ProxyError::UnknownRoute(_) => "unknown_route",
            ProxyError::Forbidden(_) => "forbidden",
            ProxyError::Untranslatable(_) => "untranslatable",
            ProxyError::BadRequest(_) => "bad_request",
            ProxyError::UnsupportedMedia(_) => "unsupported_media",
            ProxyError::PayloadTooLarge(_) => "payload_too_large",
            ProxyError::BodyTimeout(_) => "body_timeout",
            ProxyError::UpstreamUnavailable(_) => "upstream_unavailable",
            ProxyError::UpstreamTimeout(_) => "upstream_timeout",
            ProxyError::UpstreamUnreadable(_) => "upstream_unreadable",
            ProxyError::Database { .. } => "database",
            ProxyError::AuditUnavailable => "audit_unavailable",
            ProxyError::Config(_) => "config",
            ProxyError::Internal(_) => "internal",
        }
    }
}

/// The error as the backend's clients expect it.
pub fn error_response(backend: BackendKind, error: &ProxyError) -> ProxyResponse {
    if let ProxyError::Database {
        status,
        content_type,
        body,
    } = error
    {
        return raw_response(super::upstream::gateway_status(*status), content_type.clone(), body.clone());
    }
    let status = error.status();
    let message = error.to_string();
    let body = match backend {
        BackendKind::Chroma => json!({"error": chroma_error_name(status), "message": message}),
        BackendKind::Qdrant => json!({"status": {"error": message}, "time": 0.0}),
    };
    let mut response = json_response(status, &body);
    if let ProxyError::Unauthenticated(e) = error {
        let challenge = match e {
            AuthnError::MissingToken => "Bearer realm=\"vecgate\"",
            _ => "Bearer realm=\"vecgate\", error=\"invalid_token\"",
        };
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    }
    response
}

/// The `error` names the chromadb client maps to its exception classes.
fn chroma_error_name(status: StatusCode) -> &'static str {
    match status {
        // chromadb's AuthorizationError carries 401, its AuthError 403.
        StatusCode::UNAUTHORIZED => "AuthorizationError",
        StatusCode::FORBIDDEN => "AuthError",
        StatusCode::NOT_FOUND => "NotFoundError",
        s if s.is_client_error() => "InvalidArgumentError",
        _ => "InternalError",
    }
}

pub fn json_response(status: StatusCode, body: &serde_json::Value) -> ProxyResponse {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    raw_response(status, Some(HeaderValue::from_static("application/json")), Bytes::from(bytes))
}

pub fn raw_response(
    status: StatusCode,
    content_type: Option<HeaderValue>,
    body: Bytes,
) -> ProxyResponse {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    if let Some(ct) = content_type {
        response.headers_mut().insert(CONTENT_TYPE, ct);
    }
    response
}
