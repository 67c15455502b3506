//! The respond phase: the one place answers and errors become responses, errors in the
//! database's own shape (a JSON error body, or a gRPC status) so that client SDKs raise their
//! usual exceptions.

use super::error::ProxyError;
use crate::authn::AuthnError;
use crate::backends::seam::{Answer, Database};
use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, CONNECTION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use http_body_util::combinators::WithTrailers;
use http_body_util::{BodyExt, Full};
use std::convert::Infallible;
use std::future::{ready, Ready};

/// A response body: the bytes, then the trailers where the answer has them (gRPC's status).
pub type ResponseBody = WithTrailers<Full<Bytes>, Ready<Option<Result<HeaderMap, Infallible>>>>;
pub type ProxyResponse = Response<ResponseBody>;

/// A body of `bytes`, ended by `trailers`.
pub fn body(bytes: Bytes, trailers: Option<HeaderMap>) -> ResponseBody {
    Full::new(bytes).with_trailers(ready(trailers.map(Ok)))
}

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

/// The answer as the pipeline records it: the database's status as the client sees it.
pub fn answered(mut answer: Answer) -> Answer {
    answer.status = gateway_status(answer.status);
    answer
}

/// An answer (the database's, or one made here) as the response that carries it. A gRPC
/// answer (one with trailers) is HTTP 200 whatever its status: the status is in its trailers.
pub fn render(answer: Answer) -> ProxyResponse {
    let status = match answer.trailers {
        Some(_) => StatusCode::OK,
        None => answer.status,
    };
    let mut response = Response::new(body(answer.body, answer.trailers.map(|t| *t)));
    *response.status_mut() = status;
    if let Some(ct) = answer.content_type {
        response.headers_mut().insert(CONTENT_TYPE, ct);
    }
    response
}

/// The error as the database's clients expect it.
pub fn error_answer<D: Database>(db: &D, error: &ProxyError) -> Answer {
    match error {
        ProxyError::Database(answer) => answered(answer.clone()),
        other => db.error_answer(other.status(), &other.to_string()),
    }
}

/// The headers an error response carries besides its answer: the authentication challenge
/// of a 401, and, for HTTP, that the connection closes (the request body may not have been
/// read, so the client must not reuse the connection hyper is about to close).
pub fn error_headers(error: &ProxyError, grpc: bool, response: &mut ProxyResponse) {
    if matches!(error, ProxyError::Database(_)) {
        return;
    }
    if let ProxyError::Unauthenticated(e) = error {
        let challenge = match e {
            AuthnError::MissingToken => "Bearer realm=\"vecgate\"",
            _ => "Bearer realm=\"vecgate\", error=\"invalid_token\"",
        };
        response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    }
    if !grpc {
        response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    }
}
