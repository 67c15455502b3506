//! CEL's standard functions and Cerbos' extension functions over known values.

use super::value::Value;
use super::EvalError;
use chrono::{DateTime, FixedOffset};

/// What a function call may read besides its arguments.
#[derive(Clone, Copy, Debug)]
pub struct CallContext {
    /// The instant `now()` returns (fixed per request, or per test).
    pub now: DateTime<FixedOffset>,
}

/// Calls the CEL function `name` on known arguments. For a member call (`x.f(y)`) the
/// target comes first (`[x, y]`).
pub fn call(name: &str, args: &[Value], ctx: &CallContext) -> Result<Value, EvalError> {
    let _ = (args, ctx);
    Err(EvalError::UnknownFunction(name.to_string()))
}
