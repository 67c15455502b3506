//! vecgate: an authorization sidecar for vector databases.
//!
//! Cerbos-compatible policies are partially evaluated into query plans ([`plan`]), which the
//! backends translate exactly into Chroma `where` clauses and Qdrant filters.

pub mod audit;
pub mod authn;
pub mod backends;
pub mod cli;
pub mod config;
pub mod grpc;
pub mod explain_request;
pub mod explain_pdp;
pub mod json;
pub mod metrics;
pub mod plan;
pub mod policy;
pub mod proxy;
pub mod server;
pub mod tls;
pub mod workers;
