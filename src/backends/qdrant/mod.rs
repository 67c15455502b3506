//! Qdrant (REST): routes, translation of plans into `filter` objects, request rewriting and
//! response post-filtering.

pub mod filter;
pub mod request;
pub mod response;
pub mod routes;
