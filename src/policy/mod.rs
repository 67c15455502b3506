//! Cerbos-compatible policies: model, loading, CEL, the rule table, the check, planning, and
//! the suites written for Cerbos.

pub mod cache;
pub mod cel;
pub mod check;
pub mod definitions;
pub mod env;
pub mod evaluation;
pub mod explain;
pub mod load;
pub mod model;
pub mod pdp;
pub mod planner;
pub mod request;
pub mod rules;
pub mod source;
pub mod store;
pub mod suite;
pub mod watch;
pub mod who_can;
