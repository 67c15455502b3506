//! Why the gRPC face refuses a request, and why it cannot read an answer.

use super::filter::FilterError;
use super::payload::NotJson;
use super::schema::SchemaError;
use crate::backends::qdrant::request::RequestError;
use crate::backends::seam::Refusal;
use crate::grpc::FrameError;

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrpcRequestError {
    /// The refusals both Qdrant faces share (unknown or invalid values, duplicate ids, …).
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("{0}")]
    Schema(#[from] SchemaError),
    #[error("the message cannot be decoded: {0}")]
    Decode(String),
    #[error("{0}")]
    Payload(#[from] NotJson),
    /// The policy's filter has no exact gRPC form: a policy matter (403), like an
    /// untranslatable plan.
    #[error("{0}")]
    Filter(#[from] FilterError),
}

impl From<GrpcRequestError> for Refusal {
    fn from(e: GrpcRequestError) -> Refusal {
        match e {
            GrpcRequestError::Request(e) => e.into(),
            GrpcRequestError::Filter(e) => Refusal::Forbidden(e.to_string()),
            GrpcRequestError::Frame(FrameError::Compressed) => Refusal::Unsupported(e.to_string()),
            other => Refusal::Malformed(other.to_string()),
        }
    }
}

/// Why an answer cannot be read (so cannot be checked: the client gets UNAVAILABLE).
#[derive(Debug, thiserror::Error)]
pub enum GrpcAnswerError {
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("the answer cannot be decoded: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("the answer has an unexpected shape: {0}")]
    Shape(&'static str),
    #[error("{0}")]
    Payload(#[from] NotJson),
}
