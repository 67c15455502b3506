//! Qdrant (REST): routes, translation of plans into `filter` objects, request rewriting and
//! response post-filtering, put together behind the seam by [`Qdrant`].

mod answers;
mod attributes;
mod database;
pub mod grpc;
mod narrow;
mod ranges;
pub mod filter;
pub(crate) mod point_id;
pub mod request;
pub mod response;
pub mod routes;
pub mod vectors;

pub use attributes::NestedPayload;
pub use database::{Qdrant, Then};
