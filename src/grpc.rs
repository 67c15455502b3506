//! gRPC over HTTP/2, as much of it as a proxy of unary calls needs: the length-prefixed
//! message framing, status codes with their HTTP equivalents, and the status trailers. Shared
//! by the gRPC listener's answers, the gRPC upstream client and the database faces that speak
//! gRPC; [`tonic`] encodes and decodes the status headers.
//!
//! Invariants:
//! - **One uncompressed message per call.** Every method vecgate serves is unary: a request or
//!   answer body holding anything but exactly one message with the compressed flag clear is
//!   refused ([`unframe`]), never passed on.
//! - **One mapping** between gRPC codes and HTTP statuses ([`code_for`], [`http_status`]), so
//!   that the pipeline decides, audits and counts a gRPC call by the same statuses as a REST
//!   request, and refusals carry the same messages in both protocols.

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use http::StatusCode;
pub use tonic::Code;

/// The media type of gRPC requests and answers (protobuf is implied).
pub const CONTENT_TYPE_GRPC: &str = "application/grpc";
/// The trailer carrying the call's status code.
pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// The trailer carrying the status message (percent-encoded).
pub const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
/// The trailer carrying the encoded `google.rpc.Status` details, passed on as it came.
pub const GRPC_STATUS_DETAILS: HeaderName = HeaderName::from_static("grpc-status-details-bin");
/// The compression a client used for its message (only `identity` is accepted).
pub const GRPC_ENCODING: HeaderName = HeaderName::from_static("grpc-encoding");

/// The prefix of every message: a compressed flag and a big-endian length.
const PREFIX: usize = 5;

/// Why a gRPC body is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("the gRPC message is truncated")]
    Truncated,
    #[error("the gRPC message is compressed; send it uncompressed (grpc-encoding identity)")]
    Compressed,
    #[error("a unary call carries exactly one message; this one carries {0}")]
    Count(usize),
}

/// One message, framed.
pub fn frame(message: &[u8]) -> Bytes {
    let mut framed = BytesMut::with_capacity(PREFIX + message.len());
    framed.put_u8(0);
    framed.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    framed.put_slice(message);
    framed.freeze()
}

/// The one message of a unary call's body (see the module documentation).
pub fn unframe(body: &[u8]) -> Result<&[u8], FrameError> {
    let [flag, a, b, c, d, rest @ ..] = body else {
        return Err(if body.is_empty() { FrameError::Count(0) } else { FrameError::Truncated });
    };
    if *flag != 0 {
        return Err(FrameError::Compressed);
    }
    let len = usize::try_from(u32::from_be_bytes([*a, *b, *c, *d])).map_err(|_| FrameError::Truncated)?;
    if rest.len() < len {
        return Err(FrameError::Truncated);
    }
    let (message, after) = rest.split_at(len);
    if after.is_empty() {
        return Ok(message);
    }
    // Count what follows, for the message.
    let mut count = 1;
    let mut tail = after;
    while let [_, a, b, c, d, more @ ..] = tail {
        let len = usize::try_from(u32::from_be_bytes([*a, *b, *c, *d])).unwrap_or(usize::MAX);
        count += 1;
        tail = more.get(len..).unwrap_or_default();
    }
    Err(FrameError::Count(count))
}

/// Whether the headers declare a gRPC body (`application/grpc`, `application/grpc+proto`).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct == CONTENT_TYPE_GRPC || ct == "application/grpc+proto")
}

/// The gRPC code of an outcome vecgate states in HTTP terms (its refusals, the pipeline's
/// errors), chosen so that clients raise what they raise for the same outcome of the
/// database itself.
pub fn code_for(status: StatusCode) -> Code {
    match status.as_u16() {
        200..=299 => Code::Ok,
        400 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        408 | 504 => Code::DeadlineExceeded,
        409 => Code::AlreadyExists,
        413 | 429 => Code::ResourceExhausted,
        415 | 501 => Code::Unimplemented,
        499 => Code::Cancelled,
        502 | 503 => Code::Unavailable,
        500 => Code::Internal,
        _ => Code::Unknown,
    }
}

/// The HTTP status of a gRPC outcome: the inverse of [`code_for`] where it has one.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Internal | Code::Unknown | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The trailers ending a call with `code` and `message` (percent-encoded as gRPC requires).
pub fn status_trailers(code: Code, message: &str) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    if tonic::Status::new(code, message).add_header(&mut trailers).is_err() {
        // A message that cannot be encoded (it always can: tonic percent-encodes it) still
        // ends the call with its code.
        trailers.insert(GRPC_STATUS, HeaderValue::from(code as i32));
    }
    trailers
}

/// The status a call ended with, read from its trailers (or, for a trailers-only answer,
/// its headers): the code (a missing or unreadable one is `Unknown`), the message, and the
/// status headers as they came, to be passed on unchanged.
pub fn read_status(headers: &HeaderMap) -> Option<(Code, String, HeaderMap)> {
    let code = headers.get(GRPC_STATUS)?;
    let mut status_headers = HeaderMap::new();
    for name in [GRPC_STATUS, GRPC_MESSAGE, GRPC_STATUS_DETAILS] {
        if let Some(value) = headers.get(&name) {
            status_headers.insert(name, value.clone());
        }
    }
    // Only the code and the message go to tonic (it refuses malformed details by panicking).
    let mut readable = HeaderMap::new();
    readable.insert(GRPC_STATUS, code.clone());
    if let Some(message) = headers.get(GRPC_MESSAGE) {
        readable.insert(GRPC_MESSAGE, message.clone());
    }
    let status = tonic::Status::from_header_map(&readable)?;
    Some((status.code(), status.message().to_string(), status_headers))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn one_message_in_one_frame() {
        let framed = frame(b"abc");
        assert_eq!(framed.as_ref(), b"\0\0\0\0\x03abc");
        assert_eq!(unframe(&framed).unwrap(), b"abc");
        assert_eq!(unframe(&frame(b"")).unwrap(), b"");
    }

    #[test]
    fn anything_but_one_uncompressed_message_is_refused() {
        assert_eq!(unframe(b""), Err(FrameError::Count(0)));
        let two = [frame(b"a"), frame(b"b")].concat();
        assert_eq!(unframe(&two), Err(FrameError::Count(2)));
        assert_eq!(unframe(b"\0\0\0\0\x05ab"), Err(FrameError::Truncated));
        assert_eq!(unframe(b"\0\0\0"), Err(FrameError::Truncated));
        assert_eq!(unframe(b"\x01\0\0\0\x01a"), Err(FrameError::Compressed));
    }

    #[test]
    fn codes_and_statuses_map_both_ways() {
        for code in [
            Code::Ok,
            Code::InvalidArgument,
            Code::Unauthenticated,
            Code::PermissionDenied,
            Code::NotFound,
            Code::DeadlineExceeded,
            Code::AlreadyExists,
            Code::Unimplemented,
            Code::Cancelled,
            Code::Internal,
        ] {
            assert_eq!(code_for(http_status(code)), code, "{code:?}");
        }
        assert_eq!(code_for(StatusCode::BAD_GATEWAY), Code::Unavailable);
        assert_eq!(code_for(StatusCode::PAYLOAD_TOO_LARGE), Code::ResourceExhausted);
    }

    #[test]
    fn status_trailers_round_trip_with_percent_encoding() {
        let trailers = status_trailers(Code::NotFound, "Not found: No point with id 7 found — ü");
        assert_eq!(trailers.get(GRPC_STATUS).unwrap(), "5");
        let (code, message, kept) = read_status(&trailers).unwrap();
        assert_eq!((code, message.as_str()), (Code::NotFound, "Not found: No point with id 7 found — ü"));
        assert_eq!(kept.len(), 2);
        let mut bad_details = trailers.clone();
        bad_details.insert(GRPC_STATUS_DETAILS, HeaderValue::from_static("!!not base64!!"));
        assert_eq!(read_status(&bad_details).unwrap().0, Code::NotFound);
        assert!(read_status(&HeaderMap::new()).is_none());
    }
}
