//! Qdrant (REST): translation of plans into `filter` objects.

pub mod filter;
