//! The respond phase: the one place answers and errors become HTTP responses, errors in the
//! database's own error shape so that client SDKs raise their usual exceptions.

use super::error::ProxyError;
use crate::authn::AuthnError;
use crate::backends::seam::{Answer, Database};
use bytes::Bytes;
use http::header::{HeaderValue, CONNECTION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use http_body_util::Full;

pub type ProxyResponse = Response<Full<Bytes>>;

/// The status the client gets for the database's: its own, except that a server error
/// becomes 502 — the gateway's upstream failed (as Envoy and nginx report it). The body still
/// carries the database's message in its own error shape.
pub fn gateway_status(status: StatusCode) -> StatusCode {
    if status.is_server_error() {
        StatusCode::BAD_GATEWAY
    } else {
        status
    }
}

/// An answer (the database's, or one made here) for the client.
pub fn answer(answer: Answer) -> ProxyResponse {
    raw_response(gateway_status(answer.status), answer.content_type, answer.body)
}


fn raw_response(status: StatusCode, content_type: Option<HeaderValue>, body: Bytes) -> ProxyResponse {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    if let Some(ct) = content_type {
        response.headers_mut().insert(CONTENT_TYPE, ct);
    }
    response
}

/// The error as the database's clients expect it.
pub fn error<D: Database>(db: &D, error: &ProxyError) -> ProxyResponse {
    let mut response = match error {
        ProxyError::Database(answer) => return self::answer(answer.clone()),
        other => {
            let made = Answer::json(other.status(), &db.error_body(other.status(), &other.to_string()));
            raw_response(made.status, made.content_type, made.body)
        }
    };
    if let ProxyError::Unauthenticated(e) = error {
        let challenge = match e {
            AuthnError::MissingToken => "Bearer realm=\"vecgate\"",
            _ => "Bearer realm=\"vecgate\", error=\"invalid_token\"",
        };
        response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    }
    // The request body may not have been read (refused before it was): say so, so that
    // clients do not reuse a connection hyper is about to close.
    response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    response
}
