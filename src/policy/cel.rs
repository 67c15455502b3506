//! CEL source → plan IR. Parsing is the `cel` crate's; the conversion to Cerbos' operator
//! encoding (`ref/cerbos.md` §3.5) is ours. Macros are not expanded by the parser, so
//! `x.all(t, p)` arrives as a call and becomes `all(x, lambda(p, t))` directly.

use crate::plan::expr::split_first_segment;
use crate::plan::value::Value;
use crate::plan::{Expr, Op};
use cel::common::ast::{self as ast, EntryExpr, LiteralValue};

/// Why a CEL expression could not be compiled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CelError {
    #[error("CEL syntax error: {0}")]
    Syntax(String),
    #[error("unsupported CEL construct: {0}")]
    Unsupported(String),
}

/// The macros that take a lambda: `range.op(var, body)` (and two-variable forms).
const LAMBDA_MACROS: &[&str] = &[
    "all",
    "exists",
    "exists_one",
    "existsOne",
    "filter",
    "map",
    "transformList",
    "transformMap",
    "transformMapEntry",
    "sortBy",
];

/// Parses CEL source into the IR, names kept as written (`R.attr.x` stays `R.attr.x`).
pub fn parse(source: &str) -> Result<Expr, CelError> {
    let parsed = cel::Env::default()
        .parser()
        .parse(source)
        .map_err(|e| CelError::Syntax(e.to_string().trim().to_string()))?;
    convert(&parsed.expr)
}

/// Parses CEL source and expands Cerbos' abbreviations (`R.` → `request.resource.`, …).
/// A function vecgate does not implement is refused here, at load time: evaluated, it would
/// be an error on every record, and Cerbos' PDP would decide otherwise.
pub fn compile(source: &str) -> Result<Expr, CelError> {
    let expr = expand_aliases(parse(source)?, &mut Vec::new());
    if let Some(name) = unimplemented_function(&expr, &mut Vec::new()) {
        return Err(CelError::Unsupported(format!(
            "the function `{name}` is not implemented by vecgate"
        )));
    }
    Ok(expr)
}

/// The first function call in `e` that vecgate does not implement. Comprehension variables
/// in `bound` are not namespaces (`lists.range` vs a variable named `lists`).
fn unimplemented_function(e: &Expr, bound: &mut Vec<String>) -> Option<String> {
    let Expr::Call(op, args) = e else {
        return None;
    };
    if let (Op::All | Op::Exists | Op::ExistsOne | Op::Filter | Op::Map, [range, Expr::Call(Op::Lambda, lambda)])
    | (Op::Call(_), [range, Expr::Call(Op::Lambda, lambda)]) = (op, args.as_slice())
    {
        let vars = op.lambda_var_count(lambda.len()).min(lambda.len());
        let (bodies, names) = lambda.split_at(lambda.len() - vars);
        let depth = bound.len();
        bound.extend(names.iter().filter_map(|n| match n {
            Expr::Variable(v) => Some(v.clone()),
            _ => None,
        }));
        let found = unimplemented_function(range, bound)
            .or_else(|| bodies.iter().find_map(|b| unimplemented_function(b, bound)));
        bound.truncate(depth);
        return found;
    }
    if let Op::Call(name) = op {
        let qualified = match args.first() {
            Some(Expr::Variable(ns))
                if crate::plan::eval::FUNCTION_NAMESPACES.contains(&ns.as_str())
                    && !bound.iter().any(|b| b == ns) =>
            {
                format!("{ns}.{name}")
            }
            _ => name.clone(),
        };
        let macro_like = matches!(
            name.as_str(),
            "transformList" | "transformMap" | "transformMapEntry" | "sortBy"
        );
        if !macro_like && !crate::plan::functions::is_implemented(&qualified) {
            return Some(qualified);
        }
    }
    args.iter().find_map(|a| unimplemented_function(a, bound))
}

fn convert(e: &ast::Expr) -> Result<Expr, CelError> {
    match e {
        ast::Expr::Unspecified => Err(CelError::Syntax("empty expression".into())),
        ast::Expr::Literal(lit) => Ok(Expr::Value(literal(lit))),
        ast::Expr::Ident(name) => Ok(Expr::Variable(name.clone())),
        ast::Expr::Select(sel) => {
            if sel.test {
                return Err(CelError::Unsupported("presence test outside has()".into()));
            }
            match convert(&sel.operand.expr)? {
                Expr::Variable(base) => Ok(Expr::Variable(format!("{base}.{}", sel.field))),
                other => Ok(Expr::Call(
                    Op::GetField,
                    vec![other, Expr::Variable(sel.field.clone())],
                )),
            }
        }
        ast::Expr::List(list) => {
            if !list.optional_indices.is_empty() {
                return Err(CelError::Unsupported("optional list elements".into()));
            }
            let items = list
                .elements
                .iter()
                .map(|i| convert(&i.expr))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(list_expr(items))
        }
        ast::Expr::Map(map) => {
            let mut fields = Vec::with_capacity(map.entries.len());
            for entry in &map.entries {
                match &entry.expr {
                    EntryExpr::MapEntry(me) => {
                        if me.optional {
                            return Err(CelError::Unsupported("optional map entries".into()));
                        }
                        fields.push((convert(&me.key.expr)?, convert(&me.value.expr)?));
                    }
                    EntryExpr::StructField(_) => {
                        return Err(CelError::Unsupported("struct field in a map".into()))
                    }
                }
            }
            Ok(struct_expr(fields))
        }
        ast::Expr::Struct(s) => Err(CelError::Unsupported(format!(
            "message construction {}{{…}}",
            s.type_name
        ))),
        ast::Expr::Comprehension(_) => Err(CelError::Unsupported("comprehension".into())),
        ast::Expr::Call(call) => convert_call(call),
    }
}

fn literal(lit: &LiteralValue) -> Value {
    match lit {
        LiteralValue::Boolean(b) => Value::Bool(**b),
        LiteralValue::Bytes(b) => Value::Bytes(b.as_ref().into()),
        LiteralValue::Double(d) => Value::Double(**d),
        LiteralValue::Int(i) => Value::Int(**i),
        LiteralValue::Null => Value::Null,
        LiteralValue::String(s) => Value::string(s.as_ref()),
        LiteralValue::UInt(u) => Value::Uint(**u),
    }
}

/// A list literal: one constant value if every item is constant, else a `list` call.
fn list_expr(items: Vec<Expr>) -> Expr {
    if items.iter().all(|i| matches!(i, Expr::Value(_))) {
        Expr::Value(Value::list(
            items
                .into_iter()
                .filter_map(|i| match i {
                    Expr::Value(v) => Some(v),
                    _ => None,
                })
                .collect(),
        ))
    } else {
        Expr::Call(Op::List, items)
    }
}

/// A map literal as Cerbos encodes it: `struct` of `set-field` pairs. An empty map is a
/// `struct` with no operands.
fn struct_expr(fields: Vec<(Expr, Expr)>) -> Expr {
    Expr::Call(
        Op::Struct,
        fields
            .into_iter()
            .map(|(k, v)| Expr::Call(Op::SetField, vec![k, v]))
            .collect(),
    )
}

/// The keys of a map literal, where CEL uses a map as a list of its keys (`in`, macros).
fn map_keys_as_list(e: Expr) -> Expr {
    match e {
        Expr::Call(Op::Struct, fields) if !fields.is_empty() => list_expr(
            fields
                .into_iter()
                .filter_map(|f| match f {
                    Expr::Call(Op::SetField, mut kv) if kv.len() == 2 => {
                        kv.truncate(1);
                        kv.pop()
                    }
                    _ => None,
                })
                .collect(),
        ),
        other => other,
    }
}

fn convert_call(call: &ast::CallExpr) -> Result<Expr, CelError> {
    let name = call.func_name.as_str();
    let target = match &call.target {
        Some(t) => Some(convert(&t.expr)?),
        None => None,
    };

    if name == "has" && target.is_none() {
        let [arg] = call.args.as_slice() else {
            return Err(CelError::Syntax("has() takes one argument".into()));
        };
        return match &arg.expr {
            ast::Expr::Select(sel) if !sel.test => {
                let selected = convert(&arg.expr)?;
                match selected {
                    Expr::Variable(_) | Expr::Call(Op::GetField, _) => {
                        Ok(Expr::Call(Op::Has, vec![selected]))
                    }
                    _ => Err(CelError::Syntax("invalid argument to has()".into())),
                }
            }
            _ => Err(CelError::Syntax(
                "invalid argument to has() macro: must be a field selection".into(),
            )),
        };
    }

    if let Some(range) = target.clone() {
        if LAMBDA_MACROS.contains(&name) {
            return convert_macro(name, range, &call.args);
        }
    }

    let mut args = Vec::with_capacity(call.args.len() + 1);
    if let Some(t) = target {
        args.push(t);
    }
    for a in &call.args {
        args.push(convert(&a.expr)?);
    }

    let op = match name {
        "_&&_" => Op::And,
        "_||_" => Op::Or,
        "!_" => Op::Not,
        "_==_" => Op::Eq,
        "_!=_" => Op::Ne,
        "_<_" => Op::Lt,
        "_<=_" => Op::Le,
        "_>_" => Op::Gt,
        "_>=_" => Op::Ge,
        "@in" => {
            if let Some(container) = args.pop() {
                args.push(map_keys_as_list(container));
            }
            Op::In
        }
        "_+_" => Op::Add,
        "_-_" => Op::Sub,
        "_*_" => Op::Mult,
        "_/_" => Op::Div,
        "_%_" => Op::Mod,
        "-_" => {
            // Negative literals fold into the literal itself.
            if let [Expr::Value(v)] = args.as_slice() {
                match v {
                    Value::Int(i) => return Ok(Expr::Value(Value::Int(i.wrapping_neg()))),
                    Value::Double(d) => return Ok(Expr::Value(Value::Double(-d))),
                    _ => {}
                }
            }
            Op::Negate
        }
        "_[_]" => Op::Index,
        "_?_:_" => Op::If,
        "_[?_]" | "_?._" => return Err(CelError::Unsupported("optional selection".into())),
        other if other.starts_with('_') && other.ends_with('_') => {
            return Err(CelError::Unsupported(format!("operator {other}")))
        }
        other => Op::Call(other.to_string()),
    };
    Ok(Expr::Call(op, args))
}

/// `range.op(v, body)`, `range.op(k, v, body)`, `range.op(k, v, filter, body)`, and the
/// three-argument `map(v, filter, transform)`.
fn convert_macro(name: &str, range: Expr, args: &[ast::IdedExpr]) -> Result<Expr, CelError> {
    let op = match name {
        "all" => Op::All,
        "exists" => Op::Exists,
        "exists_one" | "existsOne" => Op::ExistsOne,
        "filter" => Op::Filter,
        "map" => Op::Map,
        other => Op::Call(other.to_string()),
    };
    let two_var = matches!(
        name,
        "transformList" | "transformMap" | "transformMapEntry"
    ) || (args.len() == 3 && matches!(name, "all" | "exists" | "exists_one" | "existsOne"));
    let var_count = if two_var { 2 } else { 1 };
    if args.len() < var_count + 1 {
        return Err(CelError::Syntax(format!("{name}() needs a variable and a body")));
    }
    let mut vars = Vec::with_capacity(var_count);
    for a in &args[..var_count] {
        match &a.expr {
            ast::Expr::Ident(v) => vars.push(Expr::Variable(v.clone())),
            _ => {
                return Err(CelError::Syntax(format!(
                    "{name}(): argument must be a simple name"
                )))
            }
        }
    }
    let mut lambda = args[var_count..]
        .iter()
        .map(|a| convert(&a.expr))
        .collect::<Result<Vec<_>, _>>()?;
    if lambda.len() > 2 {
        return Err(CelError::Syntax(format!("{name}(): too many arguments")));
    }
    lambda.extend(vars);
    Ok(Expr::Call(
        op,
        vec![map_keys_as_list(range), Expr::Call(Op::Lambda, lambda)],
    ))
}

/// Expands Cerbos' short names at the root of every variable: `R`, `P`, `V`, `C`, `G`,
/// `request.aux_data`, `runtime.effective_derived_roles`. Lambda variables shadow them.
pub fn expand_aliases(e: Expr, bound: &mut Vec<String>) -> Expr {
    match e {
        Expr::Value(_) => e,
        Expr::Variable(name) => Expr::Variable(expand_name(&name, bound)),
        Expr::Call(op, args)
            if matches!(args.as_slice(), [_, Expr::Call(Op::Lambda, _)]) =>
        {
            let mut args = args.into_iter();
            let (Some(range), Some(Expr::Call(Op::Lambda, lambda))) = (args.next(), args.next())
            else {
                return Expr::Call(op, Vec::new());
            };
            let range = expand_aliases(range, bound);
            let n_vars = op.lambda_var_count(lambda.len()).min(lambda.len());
            let split = lambda.len() - n_vars;
            let vars: Vec<String> = lambda[split..]
                .iter()
                .filter_map(|a| match a {
                    Expr::Variable(v) => Some(v.clone()),
                    _ => None,
                })
                .collect();
            let depth = bound.len();
            bound.extend(vars);
            let out: Vec<Expr> = lambda
                .into_iter()
                .enumerate()
                .map(|(i, a)| if i >= split { a } else { expand_aliases(a, bound) })
                .collect();
            bound.truncate(depth);
            Expr::Call(op, vec![range, Expr::Call(Op::Lambda, out)])
        }
        Expr::Call(op, args) => Expr::Call(
            op,
            args.into_iter().map(|a| expand_aliases(a, bound)).collect(),
        ),
    }
}

fn expand_name(name: &str, bound: &[String]) -> String {
    let (root, rest) = split_first_segment(name);
    if bound.iter().any(|b| b == root) {
        return name.to_string();
    }
    let rest = if rest.is_empty() { String::new() } else { format!(".{rest}") };
    let root = match root {
        "R" => "request.resource",
        "P" => "request.principal",
        "V" => "variables",
        "C" => "constants",
        "G" => "globals",
        other => other,
    };
    let full = format!("{root}{rest}");
    if let Some(tail) = full.strip_prefix("request.aux_data") {
        return format!("request.auxData{tail}");
    }
    if let Some(tail) = full.strip_prefix("runtime.effective_derived_roles") {
        return format!("runtime.effectiveDerivedRoles{tail}");
    }
    full
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections_become_dotted_variables() {
        assert_eq!(parse("R.attr.x").unwrap(), Expr::var("R.attr.x"));
        assert_eq!(
            compile("R.attr.x == P.id").unwrap().debug_string(),
            "(eq request.resource.attr.x request.principal.id)"
        );
    }

    #[test]
    fn has_stays_an_existence_test() {
        assert_eq!(
            compile("has(R.attr.owner)").unwrap().debug_string(),
            "(has request.resource.attr.owner)"
        );
    }

    #[test]
    fn lambda_variables_are_not_expanded() {
        let e = compile("R.attr.xs.exists(P, P == V.y)").unwrap();
        assert_eq!(
            e.debug_string(),
            "(exists request.resource.attr.xs (lambda (eq P variables.y) P))"
        );
    }

    #[test]
    fn syntax_errors_are_reported() {
        assert!(matches!(parse("R.attr.x =="), Err(CelError::Syntax(_))));
    }

    #[test]
    fn negative_literals_fold() {
        assert_eq!(parse("-3").unwrap(), Expr::Value(Value::Int(-3)));
    }
}
