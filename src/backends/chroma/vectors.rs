//! Where Chroma's request bodies hold vectors, for [`crate::json::parse_strict_keeping`]: a
//! query's `query_embeddings` and a write's `embeddings`, one vector per item. Nothing in
//! vecgate reads their numbers (a write's `embeddings` is only counted against its `ids`).

use super::routes::Operation;
use crate::json::Place;

static QUERY: Place = Place::Object(&[("query_embeddings", &Place::Each(&Place::Vector))]);
static WRITE: Place = Place::Object(&[("embeddings", &Place::Each(&Place::Vector))]);

/// The vector places of `op`'s body, if it has any.
pub fn places(op: Operation) -> Option<&'static Place> {
    match op {
        Operation::Query => Some(&QUERY),
        Operation::Add | Operation::Upsert | Operation::Update => Some(&WRITE),
        _ => None,
    }
}
