//! Query plans: the backend-neutral IR, its Cerbos JSON form, normalisation, and the
//! reference evaluator. A leaf module: it depends on nothing else in the crate.

pub mod eval;
pub(crate) mod expr;
pub mod functions;
pub mod normalise;
pub mod simplify;
pub mod text;
pub mod value;

pub use expr::{Expr, Op};
pub use value::Value;

use serde_json::json;

/// A runtime error of CEL evaluation. Errors are values in CEL: `false && error` is false.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error("no such key: {0}")]
    NoSuchKey(String),
    #[error("no such attribute or variable: {0}")]
    NoSuchVariable(String),
    #[error("no matching overload for {0}")]
    NoSuchOverload(String),
    #[error("unknown function {0}")]
    UnknownFunction(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("index out of range: {0}")]
    IndexOutOfRange(String),
    #[error("division by zero")]
    DivisionByZero,
    #[error("integer overflow")]
    Overflow,
}

/// The answer of the planner for one (principal, resource kind, action set).
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    AlwaysAllowed,
    AlwaysDenied,
    /// Allowed exactly for the records on which the expression evaluates to `true`.
    Conditional(Expr),
}

impl Plan {
    /// Builds a plan from an expression, folding a constant into ALWAYS_*.
    pub fn from_expr(e: Expr) -> Plan {
        match e.as_bool() {
            Some(true) => Plan::AlwaysAllowed,
            Some(false) => Plan::AlwaysDenied,
            None => Plan::Conditional(e),
        }
    }

    pub fn kind_name(&self) -> &'static str {
        match self {
            Plan::AlwaysAllowed => "KIND_ALWAYS_ALLOWED",
            Plan::AlwaysDenied => "KIND_ALWAYS_DENIED",
            Plan::Conditional(_) => "KIND_CONDITIONAL",
        }
    }

    /// Cerbos' `PlanResourcesFilter` JSON: `{"kind": …, "condition": …}`.
    pub fn to_cerbos_json(&self) -> serde_json::Value {
        match self {
            Plan::Conditional(e) => json!({"kind": self.kind_name(), "condition": e.to_json()}),
            _ => json!({"kind": self.kind_name()}),
        }
    }

    /// Reads Cerbos' `PlanResourcesFilter` JSON.
    pub fn from_cerbos_json(v: &serde_json::Value) -> Result<Plan, String> {
        let kind = v.get("kind").and_then(|k| k.as_str()).ok_or("filter needs a kind")?;
        match kind {
            "KIND_ALWAYS_ALLOWED" => Ok(Plan::AlwaysAllowed),
            "KIND_ALWAYS_DENIED" => Ok(Plan::AlwaysDenied),
            "KIND_CONDITIONAL" => {
                let c = v.get("condition").ok_or("a conditional filter needs a condition")?;
                Ok(Plan::Conditional(Expr::from_json(c)?))
            }
            other => Err(format!("unknown filter kind {other}")),
        }
    }

    /// Cerbos' `filterDebug` string.
    pub fn debug_string(&self) -> String {
        match self {
            Plan::AlwaysAllowed => "(true)".into(),
            Plan::AlwaysDenied => "(false)".into(),
            Plan::Conditional(e) => e.debug_string(),
        }
    }
}
