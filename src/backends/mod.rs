//! Vector database backends: each database's routes, request rewriting, response filtering
//! and filter translator, and what they share.
//!
//! - [`seam`]: the interface every database implements for the pipeline ([`Database`]);
//! - [`lower`]: the lowering algebra every translator uses (plan condition → exact filter or
//!   refusal), with [`TranslateError`] and [`Pushdown`], its outcomes;
//! - [`mapping`]: where a record's attributes live ([`FieldMapping`]);
//! - [`routing`]: collection actions, HTTP verbs and the strict query-string check.

pub mod chroma;
pub mod qdrant;

pub(crate) mod json_body;
pub(crate) mod lower;
pub mod seam;
pub(crate) mod attribute_text;
pub(crate) mod mapping;
pub(crate) mod routing;
#[cfg(test)]
pub(crate) mod testkit;

pub use lower::{Pushdown, TranslateError, MAX_EXACT_INT, MAX_EXPR_DEPTH, MAX_FILTER_DEPTH};
pub use mapping::{FieldMapping, CHROMA_DEFAULT_PREFIX, QDRANT_DEFAULT_PREFIX};
pub use routing::{check_query_params, CollectionAction, RouteError};
pub use seam::Database;
pub(crate) use routing::Verb;
