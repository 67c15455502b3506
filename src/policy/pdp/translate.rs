//! A PDP's `PlanResourcesFilter` → vecgate's [`Plan`], refusing what vecgate cannot evaluate
//! exactly: an operator or function it does not implement, a name other than the resource's
//! (`request.resource.…`) or a comprehension's own variable, vecgate's own operators (`isTrue`,
//! `error`: a PDP never writes them), a malformed operand. Everything accepted evaluates in
//! vecgate exactly as CEL defines it; `not` is read as CEL's `!` (see the parent module).

use super::PdpError;
use crate::plan::eval::FUNCTION_NAMESPACES;
use crate::plan::expr::ERROR_OPERATOR;
use crate::plan::functions;
use crate::plan::{Expr, Op, Plan};

/// Translates the PDP's filter, or says what in it cannot be translated.
pub fn plan_from_filter(filter: &serde_json::Value) -> Result<Plan, PdpError> {
    let plan = Plan::from_cerbos_json(filter).map_err(PdpError::BadAnswer)?;
    if let Plan::Conditional(e) = &plan {
        check(e, &mut Vec::new())?;
    }
    Ok(plan)
}

fn refuse(what: String) -> PdpError {
    PdpError::Untranslatable(what)
}


fn check(e: &Expr, bound: &mut Vec<String>) -> Result<(), PdpError> {
    match e {
        Expr::Value(_) => Ok(()),
        Expr::Variable(name) => {
            let root = name.split('.').next().unwrap_or_default();
            let resource = name == "request.resource" || name.starts_with("request.resource.");
            if resource || bound.iter().any(|b| b == root) {
                Ok(())
            } else {
                Err(refuse(format!("the name `{name}` is not the resource's")))
            }
        }
        Expr::Call(op, args) => match op {
            Op::IsTrue => Err(refuse("`isTrue` is not an operator of Cerbos' plans".into())),
            Op::Call(name) if name == ERROR_OPERATOR => {
                Err(refuse("`error` is not an operator of Cerbos' plans".into()))
            }
            Op::All | Op::Exists | Op::ExistsOne | Op::Filter | Op::Map => comprehension(op, args, bound),
            Op::Call(name)
                if matches!(
                    name.as_str(),
                    "transformList" | "transformMap" | "transformMapEntry" | "sortBy"
                ) =>
            {
                comprehension(op, args, bound)
            }
            Op::Lambda => Err(refuse("a lambda outside a comprehension".into())),
            Op::GetField => match args.as_slice() {
                [target, Expr::Variable(_)] => check(target, bound),
                _ => Err(refuse("a malformed get-field".into())),
            },
            Op::Call(name) => {
                // `math.greatest(x)` arrives as `greatest(math, x)`.
                let (qualified, operands) = match args.first() {
                    Some(Expr::Variable(ns))
                        if FUNCTION_NAMESPACES.contains(&ns.as_str())
                            && !bound.iter().any(|b| b == ns) =>
                    {
                        (format!("{ns}.{name}"), &args[1..])
                    }
                    _ => (name.clone(), &args[..]),
                };
                if !functions::is_implemented(&qualified) {
                    return Err(refuse(format!("the function `{qualified}`")));
                }
                operands.iter().try_for_each(|a| check(a, bound))
            }
            _ => args.iter().try_for_each(|a| check(a, bound)),
        },
    }
}

/// `op(range, lambda(bodies…, vars…))`: the bodies may name the lambda's variables.
fn comprehension(op: &Op, args: &[Expr], bound: &mut Vec<String>) -> Result<(), PdpError> {
    let [range, Expr::Call(Op::Lambda, lambda)] = args else {
        return Err(refuse(format!("a malformed `{op}`")));
    };
    check(range, bound)?;
    let vars = op.lambda_var_count(lambda.len()).min(lambda.len());
    let (bodies, names) = lambda.split_at(lambda.len() - vars);
    let depth = bound.len();
    for n in names {
        match n {
            Expr::Variable(v) if !v.contains('.') => bound.push(v.clone()),
            _ => return Err(refuse(format!("a malformed `{op}` variable"))),
        }
    }
    let out = bodies.iter().try_for_each(|b| check(b, bound));
    bound.truncate(depth);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cond(c: serde_json::Value) -> serde_json::Value {
        json!({"kind": "KIND_CONDITIONAL", "condition": c})
    }

    #[test]
    fn cerbos_plans_translate_and_foreign_ones_are_refused() {
        let ok = cond(json!({"expression": {"operator": "and", "operands": [
            {"expression": {"operator": "not", "operands": [
                {"expression": {"operator": "eq", "operands": [
                    {"variable": "request.resource.attr.c"}, {"value": "secret"}]}}]}},
            {"expression": {"operator": "exists", "operands": [
                {"variable": "request.resource.attr.tags"},
                {"expression": {"operator": "lambda", "operands": [
                    {"expression": {"operator": "startsWith", "operands": [
                        {"variable": "t"}, {"value": "a"}]}},
                    {"variable": "t"}]}}]}},
        ]}}));
        assert!(matches!(plan_from_filter(&ok), Ok(Plan::Conditional(_))));
        assert_eq!(plan_from_filter(&json!({"kind": "KIND_ALWAYS_DENIED"})), Ok(Plan::AlwaysDenied));

        let unknown_fn = cond(json!({"expression": {"operator": "frobnicate", "operands": [
            {"variable": "request.resource.attr.x"}]}}));
        assert!(matches!(plan_from_filter(&unknown_fn), Err(PdpError::Untranslatable(_))));
        let principal_name = cond(json!({"expression": {"operator": "eq", "operands": [
            {"variable": "request.principal.id"}, {"value": "x"}]}}));
        assert!(matches!(plan_from_filter(&principal_name), Err(PdpError::Untranslatable(_))));
        let unbound = cond(json!({"expression": {"operator": "eq", "operands": [
            {"variable": "t"}, {"value": "x"}]}}));
        assert!(matches!(plan_from_filter(&unbound), Err(PdpError::Untranslatable(_))));
        let ours = cond(json!({"expression": {"operator": "isTrue", "operands": [
            {"variable": "request.resource.attr.f"}]}}));
        assert!(matches!(plan_from_filter(&ours), Err(PdpError::Untranslatable(_))));
        assert!(matches!(plan_from_filter(&json!({"kind": "KIND_WHATEVER"})), Err(PdpError::BadAnswer(_))));
    }
}
