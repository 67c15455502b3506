//! Chroma (`/api/v2`): translation of plans into `where` clauses.

pub mod filter;
