//! Rewriting and reading Qdrant request bodies: the access filter is ANDed into every
//! `filter` and `prefetch`, the payload the post-filter needs is forced into the response,
//! point ids used as query inputs and written points are read out for the per-point checks,
//! and delete selectors are turned into filters. Bodies come from
//! [`crate::json::parse_strict`].
//!
//! Qdrant ignores top-level fields it does not know (a misspelt `fliter` reads everything), so
//! every body and every prefetch is checked against the fields of its schema, and an unknown
//! one is refused. Untagged unions Qdrant resolves by "first variant that fits" (a points
//! selector with both `points` and `filter`, a batch operation with two keys) are refused.

mod batch;
mod fields;
mod inputs;
mod payload;
mod read;
mod write;

pub use super::point_id::PointId;
pub use batch::{join_batch, split_batch};
pub use inputs::{lookups, point_inputs, PointInput};
pub use payload::{force_payload, PayloadTrim, Trim};
pub(crate) use payload::{check_plain_path, covers};
pub use read::inject_filter;
pub use write::{
    and_into_update_filter, delete_selector_to_filter, parse_point_writes, payload_after, selector_to_filter,
    write_selector, PayloadChange, PointWrite, Selector,
};

/// Why a request body is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the body must be a JSON object")]
    NotAnObject,
    #[error("{op} does not take the field {field:?}")]
    UnknownField { op: &'static str, field: String },
    #[error("the field {field:?} is required")]
    MissingField { field: String },
    #[error("the field {field:?} has an invalid value: {reason}")]
    InvalidField { field: String, reason: &'static str },
    #[error("the point id {id} appears twice in one request")]
    DuplicateId { id: String },
    #[error("prefetches nest more than {limit} levels deep")]
    TooDeep { limit: usize },
    #[error("this request shape is not supported by the proxy: {what}")]
    Unsupported { what: &'static str },
    #[error("the operation {op} has no body of this kind")]
    WrongOperation { op: &'static str },
    /// A shape vecgate does not check, refused as a policy matter (403) rather than as a
    /// malformed request.
    #[error("{what}")]
    Refused { what: &'static str },
}

impl From<RequestError> for crate::backends::seam::Refusal {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::Refused { what } => crate::backends::seam::Refusal::Forbidden(what.to_string()),
            other => crate::backends::seam::Refusal::Malformed(other.to_string()),
        }
    }
}

/// Deepest prefetch nesting walked.
pub const MAX_PREFETCH_DEPTH: usize = 32;
