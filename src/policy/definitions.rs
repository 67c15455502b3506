//! Variables, constants and `runtime.effectiveDerivedRoles` in a condition, replaced by what
//! they stand for before evaluation. Cerbos' planner inlines variables textually; its check
//! evaluates them first and leaves an erroring one unset, which errors where it is read: the
//! same outcome, because CEL absorbs an error the same way wherever it comes from.

use crate::plan::eval::{walk, Resolved};
use crate::plan::expr::split_first_segment;
use crate::plan::{Expr, Op};
use crate::policy::model::Definitions;

/// Replaces `variables.x`, `constants.x` and `runtime.effectiveDerivedRoles` with what they
/// stand for. Variables are inlined as expressions (Cerbos inlines them textually).
pub fn inline_definitions(
    e: &Expr,
    defs: &Definitions,
    derived_list: &Expr,
    visiting: &mut Vec<String>,
) -> Expr {
    match e {
        Expr::Value(_) => e.clone(),
        Expr::Variable(name) => {
            if let Some(rest) = name.strip_prefix("variables.") {
                let (var, path) = split_first_segment(rest);
                if let Some(def) = defs.variables.get(var) {
                    if visiting.iter().any(|v| v == var) {
                        return e.clone();
                    }
                    visiting.push(var.to_string());
                    let inlined = inline_definitions(def, defs, derived_list, visiting);
                    visiting.pop();
                    return select_path(inlined, path);
                }
                e.clone()
            } else if let Some(rest) = name.strip_prefix("constants.") {
                let (c, path) = split_first_segment(rest);
                match defs.constants.get(c) {
                    Some(v) => select_path(Expr::Value(v.clone()), path),
                    None => e.clone(),
                }
            } else if let Some(path) = name.strip_prefix("runtime.effectiveDerivedRoles") {
                select_path(derived_list.clone(), path.trim_start_matches('.'))
            } else {
                e.clone()
            }
        }
        Expr::Call(op, args) => Expr::Call(
            op.clone(),
            args.iter()
                .map(|a| inline_definitions(a, defs, derived_list, visiting))
                .collect(),
        ),
    }
}

/// `base.path` as an expression: dotted names concatenate, others get `get-field`s.
fn select_path(base: Expr, path: &str) -> Expr {
    if path.is_empty() {
        return base;
    }
    match base {
        Expr::Variable(v) => Expr::Variable(format!("{v}.{path}")),
        Expr::Value(v) => match walk(&v, path) {
            Resolved::Known(inner) => Expr::Value(inner),
            _ => path.split('.').fold(Expr::Value(v), |acc, f| {
                Expr::Call(Op::GetField, vec![acc, Expr::var(f)])
            }),
        },
        other => path.split('.').fold(other, |acc, f| {
            Expr::Call(Op::GetField, vec![acc, Expr::var(f)])
        }),
    }
}
