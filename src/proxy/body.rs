//! Reading a client's request body: bounded, uncompressed, JSON, parsed strictly. Part of the
//! authenticate phase's work: a body is read only once the caller is known.

use super::error::ProxyError;
use crate::json::{parse_strict, parse_strict_keeping, Place};
use crate::config::Limits;
use bytes::Bytes;
use http::header::{HeaderMap, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::Value;

/// JSON nesting accepted from clients. Chroma's own parser stops at 128.
pub const MAX_JSON_DEPTH: usize = 100;

/// Reads the whole body within `limits.body_timeout`, refusing more than
/// `limits.max_body_bytes` and any `Content-Encoding` but `identity` (the databases would
/// decode what we could not inspect).
pub async fn read_body<B>(headers: &HeaderMap, body: B, limits: &Limits) -> Result<Bytes, ProxyError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let limit = limits.max_body_bytes;
    for value in headers.get_all(CONTENT_ENCODING) {
        let text = value.to_str().unwrap_or("?").trim();
        if !text.eq_ignore_ascii_case("identity") {
            return Err(ProxyError::UnsupportedMedia(format!(
                "Content-Encoding {text:?} is not accepted; send the body uncompressed"
            )));
        }
    }
    if let Some(declared) = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if declared > limit as u64 {
            return Err(ProxyError::PayloadTooLarge(limit));
        }
    }
    let collected = tokio::time::timeout(limits.body_timeout, Limited::new(body, limit).collect())
        .await
        .map_err(|_| ProxyError::BodyTimeout(limits.body_timeout))?;
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ProxyError::PayloadTooLarge(limit))
        }
        Err(e) => Err(ProxyError::BadRequest(format!("reading the request body: {e}"))),
    }
}

/// Parses a JSON body strictly, keeping the vectors at `vectors` as the client's text (see
/// [`parse_strict_keeping`]; write the body with [`crate::json::to_vec`]). An empty body is
/// `{}`; a non-empty body must be declared `application/json`.
pub fn parse_json(headers: &HeaderMap, body: &Bytes, vectors: Option<&Place>) -> Result<Value, ProxyError> {
    if body.is_empty() {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(ProxyError::UnsupportedMedia(format!(
            "Content-Type {content_type:?}; expected application/json"
        )));
    }
    Ok(match vectors {
        Some(places) => parse_strict_keeping(body, MAX_JSON_DEPTH, places)?,
        None => parse_strict(body, MAX_JSON_DEPTH)?,
    })
}
