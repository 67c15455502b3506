//! One evaluator for three jobs: full evaluation of conditions (every name known), partial
//! evaluation into a residual plan (resource unknown), and the reference evaluation of a
//! plan on one record (`allows`), used by the response post-filter and by tests.
//!
//! CEL errors are values: `false && error` is false, `true && error` is an error. A decision
//! needs exactly `true`. Because a plan only ever asks "is this exactly true?" (or, under a
//! `not`, "is this exactly false?"), an error met at plan time can be replaced by a constant
//! that has the same true-set (under even negations: `false`) or false-set (under odd
//! negations: `true`). [`Polarity`] tracks which one applies; where neither does (inside
//! `==`, arguments of functions…), the error propagates upwards.

use super::expr::{split_first_segment, Expr, Op};
use super::functions::{self, CallContext};
use super::value::{lookup_key, MapKey, Value};
use super::{EvalError, Plan};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The outcome of evaluating an expression with some names unknown.
#[derive(Clone, Debug)]
pub enum Partial {
    Known(Value),
    Error(EvalError),
    /// What is left once everything known has been folded in.
    Residual(Expr),
}

impl Partial {
    fn into_expr(self) -> Result<Expr, EvalError> {
        match self {
            Partial::Known(v) => Ok(Expr::Value(v)),
            Partial::Residual(e) => Ok(e),
            Partial::Error(e) => Err(e),
        }
    }

    /// As an expression, an error kept as the error constant: for operands that are
    /// evaluated only on some records (a branch of `?:`, a lambda body), where a plan-time
    /// error must not become an error for every record.
    fn into_expr_keeping_errors(self) -> Expr {
        match self {
            Partial::Known(v) => Expr::Value(v),
            Partial::Residual(e) => e,
            Partial::Error(_) => Expr::error(),
        }
    }
}

/// Which truth value of a boolean sub-expression the final decision depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Polarity {
    /// Only "is it exactly true" matters: an error is as good as `false`.
    Positive,
    /// Only "is it exactly false" matters: an error is as good as `true`.
    Negative,
    /// The value itself matters: errors propagate.
    Neutral,
}

impl Polarity {
    pub fn flip(self) -> Polarity {
        match self {
            Polarity::Positive => Polarity::Negative,
            Polarity::Negative => Polarity::Positive,
            Polarity::Neutral => Polarity::Neutral,
        }
    }
}

/// What a name resolves to.
#[derive(Clone, Debug)]
pub enum Resolved {
    Known(Value),
    Unknown,
    Error(EvalError),
}

/// The names an evaluation can see.
pub trait Env {
    /// Resolves a full dotted name such as `request.principal.attr.dept`.
    fn resolve(&self, name: &str) -> Resolved;
    fn call_context(&self) -> &CallContext;
}

/// Walks the `.`-separated `path` into `value`.
pub fn walk(value: &Value, path: &str) -> Resolved {
    let mut current = value;
    if path.is_empty() {
        return Resolved::Known(value.clone());
    }
    for seg in path.split('.') {
        match current {
            Value::Map(m) => match m.get(&MapKey::string(seg)) {
                Some(v) => current = v,
                None => return Resolved::Error(EvalError::NoSuchKey(seg.to_string())),
            },
            other => {
                return Resolved::Error(EvalError::NoSuchOverload(format!(
                    "field selection .{seg} on {}",
                    other.type_name()
                )))
            }
        }
    }
    Resolved::Known(current.clone())
}

/// Namespaces whose functions are written `ns.f(x)`; Cerbos encodes them as `f(ns, x)`.
pub const FUNCTION_NAMESPACES: &[&str] = &["lists", "math", "sets", "strings", "base64"];

/// The evaluator, holding lambda bindings while it descends.
pub struct Evaluator<'e> {
    env: &'e dyn Env,
    /// Lambda variables in scope, innermost last; `None` is an unknown binding.
    locals: Vec<(String, Option<Value>)>,
    /// Unroll `exists`/`all` over known collections up to this many items (`None`: always).
    pub unroll_limit: Option<usize>,
    /// How many errors (or non-boolean results) were folded into constants by polarity.
    pub folded_errors: usize,
    /// Depth of lambda bodies being evaluated with their variable unknown. With an unroll
    /// limit set (Cerbos compatibility), nothing is unrolled inside them, as in Cerbos.
    residual_lambda_depth: usize,
    /// How deep the node being evaluated sits below the expression evaluation started at.
    node_depth: usize,
    /// Reproduce Cerbos' rewrites even where they are only exact for the true-set (the
    /// struct matcher under negation). Off: such rewrites happen in positive position only.
    pub cerbos_compat: bool,
}

impl<'e> Evaluator<'e> {
    pub fn new(env: &'e dyn Env) -> Self {
        Evaluator {
            env,
            locals: Vec::new(),
            unroll_limit: None,
            folded_errors: 0,
            residual_lambda_depth: 0,
            node_depth: 0,
            cerbos_compat: false,
        }
    }

    /// Evaluates `e`, folding errors and non-boolean results according to `pol`.
    pub fn eval(&mut self, e: &Expr, pol: Polarity) -> Partial {
        let out = self.eval_node(e, pol);
        match (pol, out) {
            (Polarity::Neutral, out) => out,
            (_, Partial::Known(Value::Bool(b))) => Partial::Known(Value::Bool(b)),
            (_, Partial::Residual(r)) => Partial::Residual(r),
            (pol, Partial::Error(_) | Partial::Known(_)) => {
                self.folded_errors += 1;
                Partial::Known(Value::Bool(pol == Polarity::Negative))
            }
        }
    }

    /// Evaluates a rule condition: like [`Evaluator::eval`], but a known value that is not a
    /// boolean is false (Cerbos reads it as "not met"), not an error.
    pub fn eval_condition(&mut self, e: &Expr, pol: Polarity) -> Partial {
        match self.eval_node(e, pol) {
            Partial::Known(Value::Bool(b)) => Partial::Known(Value::Bool(b)),
            Partial::Known(_) => Partial::Known(Value::Bool(false)),
            Partial::Error(e) if pol == Polarity::Neutral => Partial::Error(e),
            Partial::Error(_) => {
                self.folded_errors += 1;
                Partial::Known(Value::Bool(pol == Polarity::Negative))
            }
            Partial::Residual(r) => Partial::Residual(r),
        }
    }

    fn eval_node(&mut self, e: &Expr, pol: Polarity) -> Partial {
        self.node_depth += 1;
        let out = self.eval_node_inner(e, pol);
        self.node_depth -= 1;
        out
    }

    fn eval_node_inner(&mut self, e: &Expr, pol: Polarity) -> Partial {
        match e {
            Expr::Value(v) => Partial::Known(v.clone()),
            Expr::Variable(name) => self.variable(name),
            Expr::Call(op, args) => match op {
                Op::And => self.junction(args, pol, false),
                Op::Or => self.junction(args, pol, true),
                Op::Not => self.not(args, pol),
                Op::If => self.conditional(args, pol),
                Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge => self.compare(op, args, pol),
                Op::In => self.membership(args, pol),
                Op::Has => self.has(args),
                Op::IsTrue => self.is_true(args),
                Op::All | Op::Exists | Op::ExistsOne | Op::Filter | Op::Map => {
                    self.comprehension(op, args, pol)
                }
                Op::Call(name)
                    if matches!(
                        name.as_str(),
                        "transformList" | "transformMap" | "transformMapEntry" | "sortBy"
                    ) =>
                {
                    self.comprehension(op, args, Polarity::Neutral)
                }
                Op::Lambda => Partial::Error(EvalError::InvalidArgument(
                    "lambda outside a comprehension".into(),
                )),
                _ => self.apply(op, args),
            },
        }
    }

    fn variable(&mut self, name: &str) -> Partial {
        let (root, rest) = split_first_segment(name);
        if let Some((_, binding)) = self.locals.iter().rev().find(|(n, _)| n == root) {
            return match binding {
                Some(v) => resolved(walk(v, rest), name),
                None => Partial::Residual(Expr::Variable(name.to_string())),
            };
        }
        resolved(self.env.resolve(name), name)
    }

    /// `and` (`is_or` false) and `or` (`is_or` true), any number of operands.
    fn junction(&mut self, args: &[Expr], pol: Polarity, is_or: bool) -> Partial {
        let mut j = Junction::new(is_or);
        for a in args {
            if let Some(absorbed) = j.add(self.eval(a, pol)) {
                return absorbed;
            }
        }
        j.finish()
    }

    fn not(&mut self, args: &[Expr], pol: Polarity) -> Partial {
        let [arg] = args else {
            return arity_error("not");
        };
        match self.eval(arg, pol.flip()) {
            Partial::Known(Value::Bool(b)) => Partial::Known(Value::Bool(!b)),
            Partial::Known(other) => overload_error("!", &other),
            Partial::Error(e) => Partial::Error(e),
            Partial::Residual(r) => Partial::Residual(Expr::negate(r)),
        }
    }

    /// `isTrue(x)`: only the records where `x` is exactly true matter, so `x` is evaluated
    /// for its true-set (errors fold to false) and the result never errors.
    fn is_true(&mut self, args: &[Expr]) -> Partial {
        let [arg] = args else {
            return arity_error("isTrue");
        };
        match self.eval(arg, Polarity::Positive) {
            Partial::Known(Value::Bool(b)) => Partial::Known(Value::Bool(b)),
            Partial::Known(_) | Partial::Error(_) => Partial::Known(Value::Bool(false)),
            Partial::Residual(r) => Partial::Residual(Expr::is_true(r)),
        }
    }

    fn conditional(&mut self, args: &[Expr], pol: Polarity) -> Partial {
        let [cond, then, otherwise] = args else {
            return arity_error("?:");
        };
        match self.eval(cond, Polarity::Neutral) {
            Partial::Known(Value::Bool(true)) => self.eval(then, pol),
            Partial::Known(Value::Bool(false)) => self.eval(otherwise, pol),
            Partial::Known(other) => overload_error("?:", &other),
            Partial::Error(e) => Partial::Error(e),
            Partial::Residual(c) => {
                // Only one branch is evaluated on a record: an error in one is not an error
                // for every record.
                let t = self.eval(then, pol).into_expr_keeping_errors();
                let o = self.eval(otherwise, pol).into_expr_keeping_errors();
                Partial::Residual(Expr::Call(Op::If, vec![c, t, o]))
            }
        }
    }

    /// The struct matcher maps "not a key" (an error) to false: exact for the true-set only.
    fn struct_rewrite_allowed(&self, op: &Op, pol: Polarity) -> bool {
        self.cerbos_compat || (pol == Polarity::Positive && !matches!(op, Op::Ne))
    }

    fn compare(&mut self, op: &Op, args: &[Expr], pol: Polarity) -> Partial {
        let [left, right] = args else {
            return arity_error(op.name());
        };
        let l = self.eval(left, Polarity::Neutral);
        let r = self.eval(right, Polarity::Neutral);
        match (l, r) {
            (Partial::Error(e), _) | (_, Partial::Error(e)) => Partial::Error(e),
            (Partial::Known(a), Partial::Known(b)) => compare_known(op, &a, &b),
            (l, r) => {
                if matches!(op, Op::Eq | Op::Ne) && self.struct_rewrite_allowed(op, pol) {
                    if let Some(rewritten) = self.match_struct_index(op, &l, &r) {
                        return rewritten;
                    }
                }
                residual_call(op.clone(), vec![l, r])
            }
        }
    }

    /// Cerbos' struct matcher: `{k1: v1, …}[x] == c` becomes `x == k1 || …` over the keys
    /// whose value equals `c`, so an index of a known map by an unknown key stays expressible.
    /// Field selections after the index (`m[x].role == c`) are followed.
    fn match_struct_index(&mut self, op: &Op, l: &Partial, r: &Partial) -> Option<Partial> {
        let (indexed, constant) = match (l, r) {
            (Partial::Residual(e), Partial::Known(c)) | (Partial::Known(c), Partial::Residual(e)) => {
                (e, c)
            }
            _ => return None,
        };
        let matched = keys_where(indexed, &|v: &Value| Some(v.cel_eq(constant)))?;
        Some(match (op, matched) {
            (Op::Eq, m) => m,
            (_, Partial::Known(Value::Bool(b))) => Partial::Known(Value::Bool(!b)),
            (_, Partial::Residual(e)) => Partial::Residual(Expr::negate(e)),
            (_, other) => other,
        })
    }

    fn membership(&mut self, args: &[Expr], pol: Polarity) -> Partial {
        let rewrite = self.struct_rewrite_allowed(&Op::In, pol);
        let [elem, container] = args else {
            return arity_error("in");
        };
        let e = self.eval(elem, Polarity::Neutral);
        let c = self.eval(container, Polarity::Neutral);
        match (e, c) {
            (Partial::Error(err), _) | (_, Partial::Error(err)) => Partial::Error(err),
            (Partial::Known(e), Partial::Known(c)) => match functions::contains_in(&e, &c) {
                Ok(b) => Partial::Known(Value::Bool(b)),
                Err(err) => Partial::Error(err),
            },
            // `x in "text"` has no overload whatever `x` is (Cerbos' planner reads it as
            // `x == "text"`, which its check does not).
            (Partial::Residual(_), Partial::Known(c))
                if !self.cerbos_compat && !matches!(c, Value::List(_) | Value::Map(_)) =>
            {
                overload_error("in", &c)
            }
            (Partial::Known(e), Partial::Residual(c)) if rewrite => {
                let in_value = |v: &Value| functions::contains_in(&e, v).ok();
                match keys_where(&c, &in_value) {
                    Some(rewritten) => rewritten,
                    None => residual_call(Op::In, vec![Partial::Known(e), Partial::Residual(c)]),
                }
            }
            (e, c) => residual_call(Op::In, vec![e, c]),
        }
    }

    fn has(&mut self, args: &[Expr]) -> Partial {
        let [arg] = args else {
            return arity_error("has");
        };
        let (parent, field) = match arg {
            Expr::Variable(path) => match path.rfind('.') {
                Some(i) => (Expr::Variable(path[..i].to_string()), path[i + 1..].to_string()),
                None => {
                    return Partial::Error(EvalError::InvalidArgument(
                        "has() needs a field selection".into(),
                    ))
                }
            },
            Expr::Call(Op::GetField, ga) => match ga.as_slice() {
                [p, Expr::Variable(f)] => (p.clone(), f.clone()),
                _ => return arity_error("has"),
            },
            _ => {
                return Partial::Error(EvalError::InvalidArgument(
                    "has() needs a field selection".into(),
                ))
            }
        };
        match self.eval(&parent, Polarity::Neutral) {
            Partial::Known(Value::Map(m)) => {
                Partial::Known(Value::Bool(m.contains_key(&MapKey::string(&field))))
            }
            Partial::Known(other) => overload_error("has", &other),
            Partial::Error(e) => Partial::Error(e),
            Partial::Residual(_) => {
                // The parent is not known as a whole, but the field itself may be.
                if let Partial::Known(_) = self.eval(arg, Polarity::Neutral) {
                    return Partial::Known(Value::Bool(true));
                }
                Partial::Residual(Expr::Call(Op::Has, vec![arg.clone()]))
            }
        }
    }

    fn comprehension(&mut self, op: &Op, args: &[Expr], pol: Polarity) -> Partial {
        let [range, Expr::Call(Op::Lambda, lambda)] = args else {
            return arity_error(op.name());
        };
        let var_count = op.lambda_var_count(lambda.len()).min(lambda.len());
        let vars: Vec<String> = lambda[lambda.len() - var_count..]
            .iter()
            .filter_map(|a| match a {
                Expr::Variable(v) => Some(v.clone()),
                _ => None,
            })
            .collect();
        if vars.len() != var_count {
            return arity_error(op.name());
        }
        let bodies = &lambda[..lambda.len() - vars.len()];
        if vars.is_empty() || vars.len() > 2 || bodies.is_empty() || bodies.len() > 2 {
            return arity_error(op.name());
        }
        let body_pol = match op {
            Op::All | Op::Exists => pol,
            _ => Polarity::Neutral,
        };
        match self.eval(range, Polarity::Neutral) {
            Partial::Error(e) => Partial::Error(e),
            Partial::Known(range_value) => {
                let items = match iteration_items(&range_value, vars.len()) {
                    Ok(items) => items,
                    Err(e) => return Partial::Error(e),
                };
                self.comprehension_known(op, &range_value, items, &vars, bodies, body_pol)
            }
            Partial::Residual(r) => {
                let body_exprs = self.residual_bodies(&vars, bodies, body_pol);
                match body_exprs {
                    Ok(mut body_exprs) => {
                        body_exprs.extend(vars.iter().map(|v| Expr::Variable(v.clone())));
                        Partial::Residual(Expr::Call(
                            op.clone(),
                            vec![r, Expr::Call(Op::Lambda, body_exprs)],
                        ))
                    }
                    Err(e) => Partial::Error(e),
                }
            }
        }
    }

    /// Bodies evaluated with their variables unknown, for a lambda that stays in the plan.
    fn residual_bodies(
        &mut self,
        vars: &[String],
        bodies: &[Expr],
        pol: Polarity,
    ) -> Result<Vec<Expr>, EvalError> {
        let depth = self.locals.len();
        self.locals.extend(vars.iter().map(|v| (v.clone(), None)));
        self.residual_lambda_depth += 1;
        // A body is evaluated once per element: over an empty range it never errors.
        let out = Ok(bodies
            .iter()
            .map(|b| self.eval(b, pol).into_expr_keeping_errors())
            .collect::<Vec<_>>());
        self.residual_lambda_depth -= 1;
        self.locals.truncate(depth);
        out
    }

    fn comprehension_known(
        &mut self,
        op: &Op,
        range: &Value,
        items: Vec<Vec<Value>>,
        vars: &[String],
        bodies: &[Expr],
        pol: Polarity,
    ) -> Partial {
        let unroll = match op {
            Op::All | Op::Exists => match self.unroll_limit {
                None => true,
                // Cerbos' planner unrolls a comprehension only when it is the whole
                // condition, and only up to `limit` items.
                Some(limit) => {
                    items.len() <= limit
                        && self.residual_lambda_depth == 0
                        && (!self.cerbos_compat || self.node_depth == 1)
                }
            },
            _ => false,
        };
        let mut results: Vec<Vec<Partial>> = Vec::with_capacity(items.len());
        let depth = self.locals.len();
        for item in &items {
            self.locals
                .extend(vars.iter().cloned().zip(item.iter().cloned().map(Some)));
            results.push(bodies.iter().map(|b| self.eval(b, pol)).collect());
            self.locals.truncate(depth);
        }
        let any_residual = results
            .iter()
            .flatten()
            .any(|p| matches!(p, Partial::Residual(_)));
        if any_residual && !unroll {
            return match self.residual_bodies(vars, bodies, pol) {
                Ok(mut body_exprs) => {
                    body_exprs.extend(vars.iter().map(|v| Expr::Variable(v.clone())));
                    Partial::Residual(Expr::Call(
                        op.clone(),
                        vec![Expr::Value(range.clone()), Expr::Call(Op::Lambda, body_exprs)],
                    ))
                }
                Err(e) => Partial::Error(e),
            };
        }
        match op {
            Op::All | Op::Exists => {
                // The unrolled bodies combine with the same rules as `&&` / `||`, nested to
                // the right (`a || (b || c)`) as Cerbos' planner unrolls them.
                let mut j = Junction::new(matches!(op, Op::Exists));
                for body in results.into_iter().filter_map(|mut r| r.pop()) {
                    if let Some(absorbed) = j.add(body) {
                        return absorbed;
                    }
                }
                match j.finish() {
                    Partial::Residual(Expr::Call(junction @ (Op::And | Op::Or), items))
                        if items.len() > 2 =>
                    {
                        let mut items = items.into_iter().rev();
                        let last = items.next();
                        let nested = items.fold(last, |acc, item| {
                            acc.map(|a| Expr::Call(junction.clone(), vec![item, a]))
                        });
                        match nested {
                            Some(e) => Partial::Residual(e),
                            None => Partial::Known(Value::Bool(junction == Op::And)),
                        }
                    }
                    other => other,
                }
            }
            Op::ExistsOne => {
                let mut count = 0usize;
                for r in results {
                    match r.into_iter().last() {
                        Some(Partial::Known(Value::Bool(true))) => count += 1,
                        Some(Partial::Known(Value::Bool(false))) => {}
                        Some(Partial::Error(e)) => return Partial::Error(e),
                        _ => {
                            return Partial::Error(EvalError::NoSuchOverload(
                                "exists_one body is not a bool".into(),
                            ))
                        }
                    }
                }
                Partial::Known(Value::Bool(count == 1))
            }
            Op::Filter => {
                let mut out = Vec::new();
                for (item, r) in items.into_iter().zip(results) {
                    match r.into_iter().last() {
                        Some(Partial::Known(Value::Bool(true))) => {
                            out.push(item.into_iter().last().unwrap_or(Value::Null))
                        }
                        Some(Partial::Known(Value::Bool(false))) => {}
                        Some(Partial::Error(e)) => return Partial::Error(e),
                        _ => {
                            return Partial::Error(EvalError::NoSuchOverload(
                                "filter body is not a bool".into(),
                            ))
                        }
                    }
                }
                Partial::Known(Value::list(out))
            }
            Op::Map => {
                let mut out = Vec::new();
                for r in results {
                    let (keep, value) = match r.as_slice() {
                        [Partial::Known(v)] => (true, v.clone()),
                        [Partial::Known(Value::Bool(f)), Partial::Known(v)] => (*f, v.clone()),
                        [Partial::Error(e)] | [Partial::Error(e), _] | [_, Partial::Error(e)] => {
                            return Partial::Error(e.clone())
                        }
                        _ => {
                            return Partial::Error(EvalError::NoSuchOverload(
                                "map filter is not a bool".into(),
                            ))
                        }
                    };
                    if keep {
                        out.push(value);
                    }
                }
                Partial::Known(Value::list(out))
            }
            other => self.transform_known(other, items, results),
        }
    }

    fn transform_known(
        &mut self,
        op: &Op,
        items: Vec<Vec<Value>>,
        results: Vec<Vec<Partial>>,
    ) -> Partial {
        let name = op.name().to_string();
        let mut list = Vec::new();
        let mut map = BTreeMap::new();
        let mut keyed: Vec<(Value, Value)> = Vec::new();
        for (item, r) in items.into_iter().zip(results) {
            let mut known = Vec::new();
            for p in r {
                match p {
                    Partial::Known(v) => known.push(v),
                    Partial::Error(e) => return Partial::Error(e),
                    Partial::Residual(_) => {
                        return Partial::Error(EvalError::InvalidArgument(format!(
                            "{name} over unknown values"
                        )))
                    }
                }
            }
            let (keep, value) = match known.as_slice() {
                [v] => (true, v.clone()),
                [Value::Bool(f), v] => (*f, v.clone()),
                _ => return overload_error(&name, &Value::Null),
            };
            if !keep {
                continue;
            }
            match name.as_str() {
                "transformList" => list.push(value),
                "transformMap" => {
                    let Some(k) = item.first().and_then(Value::to_map_key) else {
                        return overload_error(&name, &Value::Null);
                    };
                    map.insert(k, value);
                }
                "transformMapEntry" => match value {
                    Value::Map(entry) => {
                        for (k, v) in entry.iter() {
                            map.insert(k.clone(), v.clone());
                        }
                    }
                    other => return overload_error(&name, &other),
                },
                "sortBy" => keyed.push((item.into_iter().last().unwrap_or(Value::Null), value)),
                _ => return Partial::Error(EvalError::UnknownFunction(name)),
            }
        }
        match name.as_str() {
            "transformList" => Partial::Known(Value::list(list)),
            "sortBy" => {
                keyed.sort_by(|a, b| a.1.cel_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal));
                Partial::Known(Value::list(keyed.into_iter().map(|(v, _)| v).collect()))
            }
            _ => Partial::Known(Value::map(map)),
        }
    }

    /// `struct(set-field(k, v)…)`: a map once every key and value is known.
    fn structure(&mut self, args: &[Expr]) -> Partial {
        let mut known = BTreeMap::new();
        let mut fields = Vec::with_capacity(args.len());
        let mut all_known = true;
        for f in args {
            let Expr::Call(Op::SetField, kv) = f else {
                return arity_error("struct");
            };
            let [k, v] = kv.as_slice() else {
                return arity_error("set-field");
            };
            let k = self.eval(k, Polarity::Neutral);
            let v = self.eval(v, Polarity::Neutral);
            match (&k, &v) {
                (Partial::Error(e), _) | (_, Partial::Error(e)) => return Partial::Error(e.clone()),
                (Partial::Known(kk), Partial::Known(vv)) => match kk.to_map_key() {
                    Some(mk) => {
                        known.insert(mk, vv.clone());
                    }
                    None => return overload_error("map key", kk),
                },
                _ => all_known = false,
            }
            fields.push((k, v));
        }
        if all_known {
            return Partial::Known(Value::map(known));
        }
        let mut out = Vec::with_capacity(fields.len());
        for (k, v) in fields {
            match residual_call(Op::SetField, vec![k, v]) {
                Partial::Residual(e) => out.push(e),
                other => return other,
            }
        }
        Partial::Residual(Expr::Call(Op::Struct, out))
    }

    /// Every other operator: evaluate operands, compute when all are known.
    fn apply(&mut self, op: &Op, args: &[Expr]) -> Partial {
        if matches!(op, Op::Struct) {
            return self.structure(args);
        }
        if let (Op::GetField, [target, Expr::Variable(field)]) = (op, args) {
            return match self.eval(target, Polarity::Neutral) {
                Partial::Known(v) => resolved(walk(&v, field), field),
                Partial::Error(e) => Partial::Error(e),
                Partial::Residual(r) => Partial::Residual(Expr::Call(
                    Op::GetField,
                    vec![r, Expr::Variable(field.clone())],
                )),
            };
        }
        // `lists.range(3)` is encoded as `range(lists, 3)`.
        let namespace = match (op, args.first()) {
            (Op::Call(_), Some(Expr::Variable(ns)))
                if FUNCTION_NAMESPACES.contains(&ns.as_str())
                    && !self.locals.iter().any(|(n, _)| n == ns) =>
            {
                Some(ns.clone())
            }
            _ => None,
        };
        let (name, operands) = match &namespace {
            Some(ns) => (format!("{ns}.{}", op.name()), &args[1..]),
            None => (op.name().to_string(), args),
        };
        if name == super::expr::ERROR_OPERATOR && operands.is_empty() {
            return Partial::Error(EvalError::InvalidArgument(
                "an evaluation error recorded by the planner".into(),
            ));
        }
        if name == "now" && operands.is_empty() {
            return Partial::Known(Value::Timestamp(self.env.call_context().now));
        }
        let mut parts = Vec::with_capacity(operands.len() + 1);
        let mut all_known = true;
        for a in operands {
            let p = self.eval(a, Polarity::Neutral);
            match p {
                Partial::Error(e) => return Partial::Error(e),
                Partial::Residual(_) => all_known = false,
                Partial::Known(_) => {}
            }
            parts.push(p);
        }
        if !all_known {
            if let Some(ns) = namespace {
                parts.insert(0, Partial::Residual(Expr::Variable(ns)));
            }
            return residual_call(op.clone(), parts);
        }
        let values: Vec<Value> = parts
            .into_iter()
            .filter_map(|p| match p {
                Partial::Known(v) => Some(v),
                _ => None,
            })
            .collect();
        let ctx = *self.env.call_context();
        let result = match op {
            Op::Add => values_pair(&values).and_then(|(a, b)| functions::add(a, b)),
            Op::Sub => values_pair(&values).and_then(|(a, b)| functions::sub(a, b)),
            Op::Mult => values_pair(&values).and_then(|(a, b)| functions::mult(a, b)),
            Op::Div => values_pair(&values).and_then(|(a, b)| functions::div(a, b)),
            Op::Mod => values_pair(&values).and_then(|(a, b)| functions::modulo(a, b)),
            Op::Negate => match values.as_slice() {
                [v] => functions::negate(v),
                _ => Err(EvalError::NoSuchOverload("-_".into())),
            },
            Op::Index => values_pair(&values).and_then(|(a, b)| index(a, b)),
            Op::GetField => Err(EvalError::NoSuchOverload("get-field".into())),
            Op::List => Ok(Value::list(values)),
            Op::SetField => Err(EvalError::InvalidArgument("set-field outside struct".into())),
            _ => functions::call(&name, &values, &ctx),
        };
        match result {
            Ok(v) => Partial::Known(v),
            Err(e) => Partial::Error(e),
        }
    }
}

/// For `m[x]` (or `m[x].f.g`) with `m` a known map and `x` unknown: the condition on `x`
/// under which `pred` holds for the selected value, as `x == k1 || x == k2 …`. `None` when
/// the expression has another shape or `pred` cannot be decided for some entry.
fn keys_where(indexed: &Expr, pred: &dyn Fn(&Value) -> Option<bool>) -> Option<Partial> {
    match indexed {
        Expr::Call(Op::Index, ix) => {
            let [Expr::Value(Value::Map(map)), key] = ix.as_slice() else {
                return None;
            };
            let mut alternatives = Vec::new();
            for (k, v) in map.iter() {
                if pred(v)? {
                    alternatives.push(Expr::Call(
                        Op::Eq,
                        vec![key.clone(), Expr::Value(k.to_value())],
                    ));
                }
            }
            Some(match alternatives.len() {
                0 => Partial::Known(Value::Bool(false)),
                1 => Partial::Residual(alternatives.remove(0)),
                _ => Partial::Residual(Expr::Call(Op::Or, alternatives)),
            })
        }
        Expr::Call(Op::GetField, ga) => {
            let [inner, Expr::Variable(field)] = ga.as_slice() else {
                return None;
            };
            let through_field = |v: &Value| match walk(v, field) {
                Resolved::Known(f) => pred(&f),
                _ => Some(false),
            };
            keys_where(inner, &through_field)
        }
        _ => None,
    }
}

fn values_pair(values: &[Value]) -> Result<(&Value, &Value), EvalError> {
    match values {
        [a, b] => Ok((a, b)),
        _ => Err(EvalError::NoSuchOverload("binary operator arity".into())),
    }
}

fn index(container: &Value, key: &Value) -> Result<Value, EvalError> {
    match container {
        Value::List(l) => {
            let i = match key {
                Value::Int(i) => *i,
                Value::Uint(u) => i64::try_from(*u).map_err(|_| EvalError::Overflow)?,
                Value::Double(d) if d.fract() == 0.0 => *d as i64,
                other => {
                    return Err(EvalError::NoSuchOverload(format!(
                        "list index {}",
                        other.type_name()
                    )))
                }
            };
            usize::try_from(i)
                .ok()
                .and_then(|i| l.get(i))
                .cloned()
                .ok_or_else(|| EvalError::IndexOutOfRange(i.to_string()))
        }
        Value::Map(m) => {
            let k = key
                .to_map_key()
                .ok_or_else(|| EvalError::NoSuchOverload(format!("map key {}", key.type_name())))?;
            lookup_key(m, &k)
                .cloned()
                .ok_or_else(|| EvalError::NoSuchKey(k.to_string()))
        }
        Value::Hierarchy(_) => functions::hierarchy_index(container, key),
        other => Err(EvalError::NoSuchOverload(format!(
            "index on {}",
            other.type_name()
        ))),
    }
}

fn iteration_items(range: &Value, vars: usize) -> Result<Vec<Vec<Value>>, EvalError> {
    match (range, vars) {
        (Value::List(l), 1) => Ok(l.iter().map(|v| vec![v.clone()]).collect()),
        (Value::List(l), 2) => Ok(l
            .iter()
            .enumerate()
            .map(|(i, v)| vec![Value::Int(i as i64), v.clone()])
            .collect()),
        (Value::Map(m), 1) => Ok(m.keys().map(|k| vec![k.to_value()]).collect()),
        (Value::Map(m), 2) => Ok(m.iter().map(|(k, v)| vec![k.to_value(), v.clone()]).collect()),
        (other, _) => Err(EvalError::NoSuchOverload(format!(
            "comprehension over {}",
            other.type_name()
        ))),
    }
}

fn compare_known(op: &Op, a: &Value, b: &Value) -> Partial {
    use std::cmp::Ordering::*;
    let result = match op {
        Op::Eq => Some(a.cel_eq(b)),
        Op::Ne => Some(!a.cel_eq(b)),
        _ => a.cel_cmp(b).map(|ord| match op {
            Op::Lt => ord == Less,
            Op::Le => ord != Greater,
            Op::Gt => ord == Greater,
            _ => ord != Less,
        }),
    };
    match result {
        Some(b) => Partial::Known(Value::Bool(b)),
        None => Partial::Error(EvalError::NoSuchOverload(format!(
            "{} between {} and {}",
            op.name(),
            a.type_name(),
            b.type_name()
        ))),
    }
}

fn residual_call(op: Op, parts: Vec<Partial>) -> Partial {
    let mut args = Vec::with_capacity(parts.len());
    for p in parts {
        match p.into_expr() {
            Ok(e) => args.push(e),
            Err(e) => return Partial::Error(e),
        }
    }
    Partial::Residual(Expr::Call(op, args))
}

/// Folds the operands of an `and` (`is_or` false) or `or` (`is_or` true) as CEL does:
/// the absorbing constant wins, neutral constants drop out, residuals remain, and an error
/// (or a non-boolean) makes the result an error unless something absorbs it.
struct Junction {
    is_or: bool,
    residuals: Vec<Expr>,
    error: Option<EvalError>,
}

impl Junction {
    fn new(is_or: bool) -> Self {
        Junction {
            is_or,
            residuals: Vec::new(),
            error: None,
        }
    }

    /// Adds one operand; returns the result early when it absorbs the whole junction.
    fn add(&mut self, operand: Partial) -> Option<Partial> {
        match operand {
            Partial::Known(Value::Bool(b)) if b == self.is_or => {
                return Some(Partial::Known(Value::Bool(b)))
            }
            Partial::Known(Value::Bool(_)) => {}
            Partial::Known(other) => {
                self.error = Some(overload_error_value(
                    if self.is_or { "||" } else { "&&" },
                    &other,
                ))
            }
            Partial::Error(e) => self.error = Some(e),
            Partial::Residual(r) => self.residuals.push(r),
        }
        None
    }

    fn finish(mut self) -> Partial {
        if let Some(e) = self.error {
            // `error && r` is false where `r` is false and an error elsewhere (only reached
            // without polarity, which would have folded the error).
            if self.residuals.is_empty() {
                return Partial::Error(e);
            }
            self.residuals.insert(0, Expr::error());
        }
        match self.residuals.len() {
            0 => Partial::Known(Value::Bool(!self.is_or)),
            1 => Partial::Residual(self.residuals.remove(0)),
            _ => Partial::Residual(Expr::call_unique(
                if self.is_or { Op::Or } else { Op::And },
                self.residuals,
            )),
        }
    }
}

fn resolved(r: Resolved, name: &str) -> Partial {
    match r {
        Resolved::Known(v) => Partial::Known(v),
        Resolved::Unknown => Partial::Residual(Expr::Variable(name.to_string())),
        Resolved::Error(e) => Partial::Error(e),
    }
}

fn arity_error(name: &str) -> Partial {
    Partial::Error(EvalError::NoSuchOverload(format!("{name}: wrong number of operands")))
}

fn overload_error(name: &str, v: &Value) -> Partial {
    Partial::Error(overload_error_value(name, v))
}

fn overload_error_value(name: &str, v: &Value) -> EvalError {
    EvalError::NoSuchOverload(format!("{name} on {}", v.type_name()))
}

/// A record as the reference evaluator sees it: `request.resource` with `id`, `kind`, `attr`.
pub struct RecordEnv {
    resource: Value,
    ctx: CallContext,
}

impl RecordEnv {
    pub fn new(id: Value, kind: &str, attr: Value, ctx: CallContext) -> Self {
        let mut m = BTreeMap::new();
        m.insert(MapKey::string("id"), id);
        m.insert(MapKey::string("kind"), Value::string(kind));
        m.insert(MapKey::string("attr"), attr);
        RecordEnv {
            resource: Value::Map(Arc::new(m)),
            ctx,
        }
    }
}

impl Env for RecordEnv {
    fn resolve(&self, name: &str) -> Resolved {
        match name.strip_prefix("request.resource") {
            Some("") => Resolved::Known(self.resource.clone()),
            Some(rest) => match rest.strip_prefix('.') {
                Some(path) => walk(&self.resource, path),
                None => Resolved::Error(EvalError::NoSuchVariable(name.to_string())),
            },
            None => Resolved::Error(EvalError::NoSuchVariable(name.to_string())),
        }
    }

    fn call_context(&self) -> &CallContext {
        &self.ctx
    }
}

/// Does `plan` allow the record? The reference semantics every translator is checked against.
pub fn allows(plan: &Plan, env: &dyn Env) -> bool {
    match plan {
        Plan::AlwaysAllowed => true,
        Plan::AlwaysDenied => false,
        Plan::Conditional(e) => matches!(
            Evaluator::new(env).eval(e, Polarity::Positive),
            Partial::Known(Value::Bool(true))
        ),
    }
}
