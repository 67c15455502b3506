//! The request pipeline (DESIGN §1), one for every database:
//!
//! ```text
//! classify → authenticate → authorize → rewrite → forward → filter → respond
//! ```
//!
//! [`pipeline`] reads top to bottom; each phase is a file of its own ([`classify`],
//! [`authenticate`], [`authorize`] with [`decide`] and the one write rule in [`writes`],
//! [`rewrite`], [`forward`], [`filter`], [`respond`]), and [`context`] carries one request's
//! audit event through them. Databases are reached only through the seam
//! ([`crate::backends::seam::Database`]): nothing here knows a database's JSON, paths or error
//! shapes.
//!
//! Invariants:
//! - **Fail closed.** Anything not understood (route, query, body, plan, answer) stops the
//!   request with an error in the database's own shape; nothing is forwarded for it.
//! - **One decision path.** Every request takes one policy snapshot and every decision about
//!   it (plan, per-record checks, hit checks) comes from that snapshot.
//! - **One audit line** per request, also when the client goes away ([`context`]).
//! - **The same failure is recorded the same way** in enforce and shadow mode
//!   ([`error::ProxyError::decision`]).

mod authenticate;
mod authorize;
mod body;
mod classify;
mod context;
mod decide;
mod error;
mod filter;
mod forward;
mod gateway;
mod hit_plan;
mod pipeline;
mod record_lookup;
mod respond;
mod rewrite;
mod translations;
mod upstream;
mod writes;

pub use context::CLIENT_CLOSED;
pub use decide::{Access, Authorizer, Resource};
pub use error::{ErrorKind, ProxyError};
pub use forward::Forwarding;
pub use gateway::{Backend, Gateway};
pub use record_lookup::{read_record_attributes, RecordAttributes};
pub use respond::ProxyResponse;
pub use upstream::{UpstreamError, MAX_RESPONSE_BYTES};
pub use writes::{missing_required, stamp_values};
