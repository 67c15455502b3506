//! The plan IR: an expression tree whose JSON form is Cerbos' `PlanResourcesFilter` operand.

use super::value::{MapKey, Value};
use std::fmt;

/// An operator of the IR. The names are Cerbos' wire names (`Display`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    And,
    Or,
    Not,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Add,
    Sub,
    Mult,
    Div,
    Mod,
    Negate,
    Index,
    GetField,
    If,
    List,
    Struct,
    SetField,
    Lambda,
    All,
    Exists,
    ExistsOne,
    Filter,
    Map,
    /// `has(x.f)`: an existence test. Cerbos' planner folds it to `true`; we keep it.
    Has,
    /// `isTrue(x)`: true when `x` evaluates to exactly `true`, false otherwise (false, an
    /// error, another type). It never errors. vecgate's own operator: the planner puts it where
    /// Cerbos' check reads "the condition is not true" (a DENY or a `none` whose condition
    /// errors is ignored), which CEL's `!` cannot say (`!error` is an error).
    IsTrue,
    /// Any other function, by its CEL name (member calls put the target first).
    Call(String),
}

impl Op {
    pub fn name(&self) -> &str {
        match self {
            Op::And => "and",
            Op::Or => "or",
            Op::Not => "not",
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Lt => "lt",
            Op::Le => "le",
            Op::Gt => "gt",
            Op::Ge => "ge",
            Op::In => "in",
            Op::Add => "add",
            Op::Sub => "sub",
            Op::Mult => "mult",
            Op::Div => "div",
            Op::Mod => "mod",
            Op::Negate => "-_",
            Op::Index => "index",
            Op::GetField => "get-field",
            Op::If => "if",
            Op::List => "list",
            Op::Struct => "struct",
            Op::SetField => "set-field",
            Op::Lambda => "lambda",
            Op::All => "all",
            Op::Exists => "exists",
            Op::ExistsOne => "exists_one",
            Op::Filter => "filter",
            Op::Map => "map",
            Op::Has => "has",
            Op::IsTrue => "isTrue",
            Op::Call(name) => name,
        }
    }

    pub fn from_name(name: &str) -> Op {
        match name {
            "and" => Op::And,
            "or" => Op::Or,
            "not" => Op::Not,
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "lt" => Op::Lt,
            "le" => Op::Le,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "in" => Op::In,
            "add" => Op::Add,
            "sub" => Op::Sub,
            "mult" => Op::Mult,
            "div" => Op::Div,
            "mod" => Op::Mod,
            "-_" => Op::Negate,
            "index" => Op::Index,
            "get-field" => Op::GetField,
            "if" => Op::If,
            "list" => Op::List,
            "struct" => Op::Struct,
            "set-field" => Op::SetField,
            "lambda" => Op::Lambda,
            "all" => Op::All,
            "exists" => Op::Exists,
            "exists_one" => Op::ExistsOne,
            "filter" => Op::Filter,
            "map" => Op::Map,
            "has" => Op::Has,
            "isTrue" => Op::IsTrue,
            other => Op::Call(other.to_string()),
        }
    }

    /// How many trailing operands of this comprehension's `lambda` (of `lambda_len`
    /// operands) are iteration variables; the rest are bodies.
    pub fn lambda_var_count(&self, lambda_len: usize) -> usize {
        match self {
            Op::All | Op::Exists | Op::ExistsOne if lambda_len == 3 => 2,
            Op::Call(name)
                if matches!(
                    name.as_str(),
                    "transformList" | "transformMap" | "transformMapEntry"
                ) =>
            {
                2
            }
            _ => 1,
        }
    }

    /// Operators whose operand order carries no meaning (Cerbos sorts them when comparing).
    pub fn is_commutative(&self) -> bool {
        matches!(self, Op::And | Op::Or | Op::Eq | Op::Ne | Op::Add | Op::Mult)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An expression of the plan IR.
#[derive(Clone, Debug)]
pub enum Expr {
    /// A constant.
    Value(Value),
    /// A dotted name: `request.resource.attr.x`, or a lambda variable (`t`, `x.countries`).
    Variable(String),
    /// An operator applied to operands.
    Call(Op, Vec<Expr>),
}

/// Splits a dotted name into its first segment and the rest (`"a.b.c"` → `("a", "b.c")`).
pub fn split_first_segment(path: &str) -> (&str, &str) {
    match path.find('.') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (path, ""),
    }
}

/// The name of the resource attribute map in variables.
pub const RESOURCE_ATTR: &str = "request.resource.attr";
/// The name of the resource id in variables.
pub const RESOURCE_ID: &str = "request.resource.id";
/// The operator of [`Expr::error`]: a call that always evaluates to an error.
pub const ERROR_OPERATOR: &str = "error";

impl Expr {
    pub fn call(op: Op, args: Vec<Expr>) -> Expr {
        Expr::Call(op, args)
    }

    pub fn bool(b: bool) -> Expr {
        Expr::Value(Value::Bool(b))
    }

    pub fn var(name: &str) -> Expr {
        Expr::Variable(name.to_string())
    }

    /// `not(e)`, without stacking: `not(not x)` is `x`.
    pub fn negate(e: Expr) -> Expr {
        match e {
            Expr::Call(Op::Not, mut args) if args.len() == 1 => args.remove(0),
            other => Expr::Call(Op::Not, vec![other]),
        }
    }

    /// `op(operands…)` with duplicate operands removed, and a single operand unwrapped
    /// (Cerbos deduplicates identical nodes of `and`/`or`).
    pub fn call_unique(op: Op, operands: Vec<Expr>) -> Expr {
        let mut unique: Vec<Expr> = Vec::with_capacity(operands.len());
        for o in operands {
            if !unique.contains(&o) {
                unique.push(o);
            }
        }
        if unique.len() == 1 {
            return unique.remove(0);
        }
        Expr::Call(op, unique)
    }

    /// An expression whose evaluation always errors: what the planner writes where Cerbos'
    /// check would meet an evaluation error known at plan time (`strictEvaluation`), in a
    /// position where "false" would not mean the same. Written `{"operator": "error"}`.
    pub fn error() -> Expr {
        Expr::Call(Op::Call(ERROR_OPERATOR.to_string()), Vec::new())
    }

    /// True for [`Expr::error`].
    pub fn is_error(&self) -> bool {
        matches!(self, Expr::Call(Op::Call(name), args) if name == ERROR_OPERATOR && args.is_empty())
    }

    /// `isTrue(e)`, folded: constants and expressions that never error need no wrapper.
    pub fn is_true(e: Expr) -> Expr {
        match e {
            Expr::Value(Value::Bool(_)) => e,
            Expr::Value(_) => Expr::bool(false),
            e if e.is_error() => Expr::bool(false),
            e if e.never_errors() => e,
            other => Expr::Call(Op::IsTrue, vec![other]),
        }
    }

    /// True when evaluating this expression on any record gives a boolean, never an error:
    /// boolean constants, `isTrue(…)`, `has(R.attr…)`, and `and`/`or`/`not` over such.
    pub fn never_errors(&self) -> bool {
        match self {
            Expr::Value(Value::Bool(_)) => true,
            Expr::Call(Op::IsTrue, args) => args.len() == 1,
            Expr::Call(Op::Has, args) => matches!(args.as_slice(), [Expr::Variable(v)]
                if v.strip_prefix(RESOURCE_ATTR).is_some_and(|rest| rest.starts_with('.') && !rest[1..].contains('.'))),
            Expr::Call(Op::And | Op::Or, args) => args.iter().all(Expr::never_errors),
            Expr::Call(Op::Not, args) => args.len() == 1 && args.iter().all(Expr::never_errors),
            _ => false,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Expr::Value(Value::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    /// If this expression names a resource attribute (`request.resource.attr.x` or
    /// `request.resource.attr["x"]`), its name.
    pub fn resource_attr_name(&self) -> Option<&str> {
        match self {
            Expr::Variable(v) => v
                .strip_prefix(RESOURCE_ATTR)
                .and_then(|rest| rest.strip_prefix('.'))
                .filter(|name| !name.is_empty()),
            Expr::Call(Op::Index, args) | Expr::Call(Op::GetField, args) if args.len() == 2 => {
                match (&args[0], &args[1]) {
                    (Expr::Variable(base), Expr::Value(Value::String(name)))
                        if base == RESOURCE_ATTR =>
                    {
                        Some(name)
                    }
                    (Expr::Variable(base), Expr::Variable(name))
                        if base == RESOURCE_ATTR && matches!(self, Expr::Call(Op::GetField, _)) =>
                    {
                        Some(name)
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// True if this expression names the resource id.
    pub fn is_resource_id(&self) -> bool {
        matches!(self, Expr::Variable(v) if v == RESOURCE_ID)
    }

    /// Number of nodes in the tree.
    pub fn size(&self) -> usize {
        match self {
            Expr::Value(_) | Expr::Variable(_) => 1,
            Expr::Call(_, args) => 1 + args.iter().map(Expr::size).sum::<usize>(),
        }
    }

    /// The Cerbos wire form of this expression as an operand.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Expr::Value(v) => match v {
                Value::Timestamp(_) => json!({"expression": {"operator": "timestamp",
                    "operands": [{"value": v.to_json()}]}}),
                Value::Duration(_) => json!({"expression": {"operator": "duration",
                    "operands": [{"value": v.to_json()}]}}),
                Value::Hierarchy(segments) => json!({"expression": {"operator": "hierarchy",
                    "operands": [{"value": hierarchy_argument(segments)}]}}),
                _ => json!({"value": wire_value(v)}),
            },
            Expr::Variable(name) => json!({"variable": name}),
            Expr::Call(op, args) => {
                if args.is_empty() {
                    json!({"expression": {"operator": op.name()}})
                } else {
                    json!({"expression": {"operator": op.name(),
                        "operands": args.iter().map(Expr::to_json).collect::<Vec<_>>()}})
                }
            }
        }
    }

    /// Reads an operand in Cerbos' wire form. Abbreviated names (`R.`, `P.`, `V.`…) are kept.
    pub fn from_json(v: &serde_json::Value) -> Result<Expr, String> {
        let obj = v.as_object().ok_or("operand must be an object")?;
        if obj.len() != 1 {
            return Err(format!("operand must have exactly one key, got {}", obj.len()));
        }
        if let Some(val) = obj.get("value") {
            return Ok(Expr::Value(Value::from_json(val)));
        }
        if let Some(var) = obj.get("variable") {
            return var
                .as_str()
                .map(Expr::var)
                .ok_or_else(|| "variable must be a string".to_string());
        }
        if let Some(e) = obj.get("expression") {
            let eo = e.as_object().ok_or("expression must be an object")?;
            let op = eo
                .get("operator")
                .and_then(|o| o.as_str())
                .ok_or("expression needs an operator")?;
            let args = match eo.get("operands") {
                None => Vec::new(),
                Some(serde_json::Value::Array(a)) => {
                    a.iter().map(Expr::from_json).collect::<Result<Vec<_>, _>>()?
                }
                Some(_) => return Err("operands must be a list".into()),
            };
            return Ok(Expr::Call(Op::from_name(op), args));
        }
        Err("operand must be one of value, variable, expression".into())
    }

    /// Cerbos' `filterDebug` s-expression form.
    pub fn debug_string(&self) -> String {
        let mut out = String::new();
        self.write_debug(&mut out);
        out
    }

    fn write_debug(&self, out: &mut String) {
        match self {
            Expr::Value(v) => match v {
                Value::Hierarchy(segments) => {
                    out.push_str("(hierarchy ");
                    out.push_str(&hierarchy_argument(segments).to_string());
                    out.push(')');
                }
                Value::Timestamp(_) | Value::Duration(_) => {
                    out.push('(');
                    out.push_str(if matches!(v, Value::Timestamp(_)) {
                        "timestamp "
                    } else {
                        "duration "
                    });
                    out.push_str(&wire_value(v).to_string());
                    out.push(')');
                }
                _ => out.push_str(&wire_value(v).to_string()),
            },
            Expr::Variable(name) => out.push_str(name),
            Expr::Call(op, args) => {
                out.push('(');
                out.push_str(op.name());
                for a in args {
                    out.push(' ');
                    a.write_debug(out);
                }
                out.push(')');
            }
        }
    }
}

/// The argument of `hierarchy(…)` that rebuilds these segments, as Cerbos writes a constant
/// hierarchy: the dotted string, or the list of segments when one holds a dot.
fn hierarchy_argument(segments: &[String]) -> serde_json::Value {
    if segments.iter().any(|s| s.contains('.')) {
        serde_json::Value::Array(segments.iter().map(|s| serde_json::Value::from(s.as_str())).collect())
    } else {
        serde_json::Value::from(segments.join("."))
    }
}

/// A value as the wire carries it: numbers are doubles (protobuf `Value`).
fn wire_value(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Int(i) => float_json(*i as f64),
        Value::Uint(u) => float_json(*u as f64),
        Value::Double(d) => float_json(*d),
        Value::List(l) => J::Array(l.iter().map(wire_value).collect()),
        Value::Map(m) => J::Object(
            m.iter()
                .map(|(k, v)| (map_key_string(k), wire_value(v)))
                .collect(),
        ),
        other => other.to_json(),
    }
}

fn map_key_string(k: &MapKey) -> String {
    k.to_string()
}

/// A double as JSON, written as an integer when it is one (as protojson does).
fn float_json(d: f64) -> serde_json::Value {
    if d.fract() == 0.0 && d.abs() < 9.007_199_254_740_992e15 {
        serde_json::Value::from(d as i64)
    } else {
        serde_json::Number::from_f64(d)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null)
    }
}

impl PartialEq for Expr {
    fn eq(&self, other: &Expr) -> bool {
        match (self, other) {
            (Expr::Value(a), Expr::Value(b)) => a.type_name() == b.type_name() && a.cel_eq(b)
                || a.as_number().is_some() && b.as_number().is_some() && a.cel_eq(b),
            (Expr::Variable(a), Expr::Variable(b)) => a == b,
            (Expr::Call(oa, aa), Expr::Call(ob, ab)) => oa == ob && aa == ab,
            _ => false,
        }
    }
}
