//! Test suites written for Cerbos, run against vecgate's engine:
//! - [`policy_test`]: `cerbos compile` test suites (`*_test.yaml`, `cerbos.policy.v1.TestSuite`),
//!   checked decision by decision (`vecgate policy test`);
//! - [`planner_suite`]: Cerbos' query-planner suites (`QueryPlannerTestSuite`), plans compared
//!   with the expected `PlanResourcesFilter` (`vecgate plan-suite`, the conformance tests).
//!
//! Both produce structured results; printing them is the command line's job.

pub mod planner_suite;
pub mod policy_test;
pub mod yaml;

pub use yaml::yaml_to_json;
