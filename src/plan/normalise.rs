//! Cerbos' plan normalisation: constant folding in `and`/`or`/`not`, duplicate removal, the
//! `in` rewrites, and expansion of abbreviated names. Nesting is kept as it is.

use super::expr::{Expr, Op};
use super::value::Value;
use super::Plan;

/// Normalises a plan condition and folds a constant result into ALWAYS_*.
pub fn normalise_plan(e: Expr) -> Plan {
    Plan::from_expr(normalise(e))
}

/// Normalises an expression tree bottom-up.
pub fn normalise(e: Expr) -> Expr {
    match e {
        Expr::Variable(name) => Expr::Variable(expand_abbreviation(&name)),
        Expr::Value(_) => e,
        Expr::Call(op, args) => {
            let args: Vec<Expr> = args.into_iter().map(normalise).collect();
            match op {
                Op::And => junction(args, false),
                Op::Or => junction(args, true),
                Op::Not => match args.as_slice() {
                    [Expr::Value(Value::Bool(b))] => Expr::bool(!b),
                    // `!!x` is true and false exactly where `x` is.
                    [Expr::Call(Op::Not, inner)] if inner.len() == 1 => inner[0].clone(),
                    _ => Expr::Call(Op::Not, args),
                },
                Op::In => membership(args),
                Op::IsTrue => match args.as_slice() {
                    [a] => Expr::is_true(a.clone()),
                    _ => Expr::Call(Op::IsTrue, args),
                },
                other => Expr::Call(other, args),
            }
        }
    }
}

fn junction(args: Vec<Expr>, is_or: bool) -> Expr {
    let mut kept: Vec<Expr> = Vec::with_capacity(args.len());
    for a in args {
        match a.as_bool() {
            Some(b) if b == is_or => return Expr::bool(is_or),
            Some(_) => {}
            None => {
                if !kept.contains(&a) {
                    kept.push(a)
                }
            }
        }
    }
    match kept.len() {
        0 => Expr::bool(!is_or),
        1 => kept.remove(0),
        _ => Expr::Call(if is_or { Op::Or } else { Op::And }, kept),
    }
}

fn membership(mut args: Vec<Expr>) -> Expr {
    if args.len() != 2 {
        return Expr::Call(Op::In, args);
    }
    let container = args.pop();
    let elem = args.pop();
    match (elem, container) {
        (Some(elem), Some(Expr::Value(Value::List(items)))) => match items.len() {
            0 => Expr::bool(false),
            1 => Expr::Call(Op::Eq, vec![elem, Expr::Value(items[0].clone())]),
            _ => Expr::Call(Op::In, vec![elem, Expr::Value(Value::List(items))]),
        },
        (Some(elem), Some(Expr::Value(Value::Map(m)))) => {
            let keys: Vec<Value> = m.keys().map(|k| k.to_value()).collect();
            match keys.len() {
                0 => Expr::bool(false),
                1 => Expr::Call(Op::Eq, vec![elem, Expr::Value(keys[0].clone())]),
                _ => Expr::Call(Op::In, vec![elem, Expr::Value(Value::list(keys))]),
            }
        }
        // `x in <scalar>`: Cerbos treats it as equality.
        (Some(elem), Some(Expr::Value(v))) if !matches!(v, Value::List(_) | Value::Map(_)) => {
            Expr::Call(Op::Eq, vec![elem, Expr::Value(v)])
        }
        (Some(elem), Some(container)) => Expr::Call(Op::In, vec![elem, container]),
        _ => Expr::bool(false),
    }
}

/// `R.` → `request.resource.`, `P.` → `request.principal.`, `V.` → `variables.`,
/// `C.` → `constants.`, `G.` → `globals.`.
pub fn expand_abbreviation(name: &str) -> String {
    for (short, long) in [
        ("R.", "request.resource."),
        ("P.", "request.principal."),
        ("V.", "variables."),
        ("C.", "constants."),
        ("G.", "globals."),
    ] {
        if let Some(rest) = name.strip_prefix(short) {
            return format!("{long}{rest}");
        }
    }
    match name {
        "R" => "request.resource".into(),
        "P" => "request.principal".into(),
        _ => name.to_string(),
    }
}
