//! Chroma (`/api/v2`): route classification, request rewriting, response filtering, and
//! translation of plans into `where` clauses, put together behind the seam by [`Chroma`].

mod answers;
mod attributes;
mod database;
pub mod filter;
mod ranges;
pub mod request;
pub mod response;
pub mod routes;
pub mod vectors;

pub use attributes::FlatMetadata;
pub use database::{Chroma, Then};
