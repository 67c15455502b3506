//! Chroma (`/api/v2`): route classification, request rewriting, response filtering, and
//! translation of plans into `where` clauses.

pub mod filter;
pub mod request;
pub mod response;
pub mod routes;
