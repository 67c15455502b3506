//! Reading the JSON body of a REST request, for both REST faces: declared `application/json`,
//! parsed strictly ([`crate::json::parse_strict`]: duplicate keys refused, nesting bounded),
//! optionally keeping the vectors at the face's vector places as the client's text.

use super::seam::Refusal;
use crate::json::{parse_strict, parse_strict_keeping, Place};
use bytes::Bytes;
use http::header::{HeaderMap, CONTENT_TYPE};
use serde_json::Value;

/// JSON nesting accepted from clients. Chroma's own parser stops at 128.
pub const MAX_JSON_DEPTH: usize = 100;

/// Parses a JSON body strictly, keeping the vectors at `vectors` as the client's text (see
/// [`parse_strict_keeping`]; write the body with [`crate::json::to_vec`]). An empty body is no
/// body; a non-empty body must be declared `application/json`.
pub fn parse(headers: &HeaderMap, body: &Bytes, vectors: Option<&Place>) -> Result<Option<Value>, Refusal> {
    if body.is_empty() {
        return Ok(None);
    }
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(Refusal::Unsupported(format!("Content-Type {content_type:?}; expected application/json")));
    }
    let parsed = match vectors {
        Some(places) => parse_strict_keeping(body, MAX_JSON_DEPTH, places),
        None => parse_strict(body, MAX_JSON_DEPTH),
    };
    parsed
        .map(Some)
        .map_err(|e| Refusal::Malformed(format!("the body is not acceptable JSON: {e}")))
}

/// What a request without a body reads as: `{}`.
pub fn empty() -> Value {
    Value::Object(serde_json::Map::new())
}
