//! Cerbos-compatible policies: model, loading, CEL, evaluation and planning.

pub mod cache;
pub mod cel;
pub mod load;
pub mod model;
pub mod suite;
pub mod planner;
pub mod store;
pub mod watch;
