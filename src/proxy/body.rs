//! Reading a client's request body: bounded in size and time, uncompressed. Part of the
//! authenticate phase's work: a body is read only once the caller is known. Parsing it is the
//! database face's ([`crate::backends::seam::Database::parse_body`]).

use super::error::ProxyError;
use crate::config::Limits;
use bytes::Bytes;
use http::header::{HeaderMap, CONTENT_ENCODING, CONTENT_LENGTH};
use http_body_util::{BodyExt, LengthLimitError, Limited};

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
